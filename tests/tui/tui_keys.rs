//! State tests of key handling (no rendering): tabs, overlays, quitting with and without an
//! unsaved run, training control, configuration editing, sampling and the Compare scheduler.

use crate::tui_support;

use std::time::Duration;

use crossterm::event::KeyCode;
use ddpm_lab::schedule::BetaSchedule;
use ddpm_lab::train::events::{FinishReason, TrainCommand, TrainEvent};
use ddpm_lab::tui::event::{handle_key, map_key, Command};
use ddpm_lab::tui::settings::{CompareMode, ModelPreset};
use ddpm_lab::tui::state::run::RunState;
use ddpm_lab::tui::state::sample::{NOTHING_TO_SAMPLE, NO_CHECKPOINT_YET};
use ddpm_lab::tui::state::{Lifecycle, Overlay, PickerWait, Tab};
use ddpm_lab::tui::workers::lab_engine::LAB_CHECKPOINT_INTERVAL_S;
use ddpm_lab::tui::workers::{
    DataMsg, Estimate, OpenedComparison, RunSummary, SampleMsg, Slot, WorkerMsg,
};
use tui_support::*;

#[test]
fn tabs_switch_by_number_and_tab() {
    let (mut app, _) = app();
    assert_eq!(app.tab, Tab::Data);
    handle_key(&mut app, ch('3'));
    assert_eq!(app.tab, Tab::Train);
    handle_key(&mut app, key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Sample);
    handle_key(&mut app, key(KeyCode::Tab));
    handle_key(&mut app, key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Runs);
    handle_key(&mut app, key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Data);
    handle_key(&mut app, key(KeyCode::BackTab));
    assert_eq!(app.tab, Tab::Runs);
    handle_key(&mut app, ch('5'));
    assert_eq!(app.tab, Tab::Compare);
}

#[test]
fn help_overlay_swallows_keys() {
    let (mut app, _) = app();
    handle_key(&mut app, ch('?'));
    assert_eq!(app.overlay, Overlay::Help);
    assert_eq!(map_key(&app, ch('3')), None);
    handle_key(&mut app, ch('?'));
    assert_eq!(app.overlay, Overlay::None);
}

#[test]
fn quit_without_a_run_is_immediate() {
    let (mut app, _) = app();
    handle_key(&mut app, ch('q'));
    assert!(app.should_exit());
}

#[test]
fn quit_with_a_running_run_asks_then_checkpoints() {
    let (mut app, engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 3, 100);
    handle_key(&mut app, ch('q'));
    assert_eq!(app.overlay, Overlay::ConfirmQuit);
    handle_key(&mut app, ch('n'));
    assert_eq!(app.overlay, Overlay::None);
    assert!(!app.should_exit());
    handle_key(&mut app, ch('q'));
    handle_key(&mut app, ch('y'));
    assert_eq!(engine.commands(Slot::Main), vec![TrainCommand::Stop]);
    assert!(matches!(app.lifecycle, Lifecycle::ShuttingDown(_)));
    app.tick(Duration::from_millis(100));
    assert!(!app.should_exit());
    feed(
        &mut app,
        Slot::Main,
        vec![finished(4, "runs/x", FinishReason::Steps)],
    );
    app.tick(Duration::from_millis(10));
    assert!(app.should_exit());
}

#[test]
fn ctrl_c_checkpoints_without_asking_and_twice_leaves() {
    let (mut app, engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 3, 100);
    assert_eq!(map_key(&app, ctrl_c()), Some(Command::Interrupt));
    handle_key(&mut app, ctrl_c());
    assert_eq!(engine.commands(Slot::Main), vec![TrainCommand::Stop]);
    assert_eq!(app.train.run.state, RunState::Stopping);
    assert!(!app.should_exit());
    handle_key(&mut app, ctrl_c());
    assert!(app.should_exit());
}

#[test]
fn space_starts_pauses_and_resumes() {
    let (mut app, engine) = app();
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    assert!(app.notice.as_ref().unwrap().error, "no data yet");
    assert!(!engine.calls().iter().any(|c| matches!(c, Call::Train(..))));
    load_data(&mut app);
    handle_key(&mut app, ch(' '));
    let train = engine
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::Train(Slot::Main, r) => Some(r),
            _ => None,
        })
        .expect("training requested");
    assert_eq!(train.dataset(), "shapes");
    assert_eq!(
        train.run_dir(),
        std::path::Path::new("runs/20260101-000000-linear")
    );
    assert!(!train.is_resume());
    assert_eq!(app.train.run.state, RunState::Starting);
    // Space while it starts says when it can pause the run.
    handle_key(&mut app, ch(' '));
    assert!(notice(&app)
        .unwrap()
        .contains("space pauses it once it trains"));
    feed(&mut app, Slot::Main, fake_run(0, 2, 100));
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, vec![TrainEvent::Paused { step: 2 }]);
    assert_eq!(app.train.run.state, RunState::Paused);
    handle_key(&mut app, ch(' '));
    handle_key(&mut app, ch('c'));
    assert_eq!(
        engine.commands(Slot::Main),
        vec![
            TrainCommand::Pause,
            TrainCommand::Resume,
            TrainCommand::Checkpoint
        ]
    );
}

#[test]
fn sampler_label_keeps_the_finished_runs_t_when_t_is_edited_for_the_next_run() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    let t0 = app.settings.train.timesteps;
    train_main_run_to_the_end(&mut app, "runs/r");
    handle_key(&mut app, key(KeyCode::Down)); // T
    handle_key(&mut app, key(KeyCode::Right));
    let t1 = app.settings.train.timesteps;
    assert_ne!(t1, t0, "T was edited");
    assert_eq!(app.sample_timesteps(), t0);
    app.tab = Tab::Sample;
    let screen = render(&app, 120, 40);
    assert!(
        screen.contains(&format!("DDPM {t0} steps"))
            && !screen.contains(&format!("DDPM {t1} steps")),
        "{screen}"
    );
}

#[test]
fn configuration_edits_only_while_idle() {
    let (mut app, engine) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    // Field 0 is the schedule.
    handle_key(&mut app, key(KeyCode::Right));
    assert_eq!(app.settings.train.schedule, BetaSchedule::Quadratic);
    handle_key(&mut app, key(KeyCode::Down)); // T
    handle_key(&mut app, key(KeyCode::Right));
    assert_eq!(app.settings.train.timesteps, 300);
    assert_eq!(app.schedules.timesteps, 300, "Schedules follows T");
    handle_key(&mut app, ch('b'));
    assert_eq!(app.settings.train.model, ModelPreset::Blog);
    // The estimate of the quick configuration (asked when the data arrived) comes back late:
    // the blog configuration is measured next.
    let first = settings().train;
    app.handle_msg(WorkerMsg::Estimated(Estimate {
        settings: first,
        result: Ok(500.0),
    }));
    assert!(engine
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Estimate(s) if s.model == ModelPreset::Blog)));
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, fake_run(0, 1, 100));
    let before = app.settings.train.clone();
    handle_key(&mut app, key(KeyCode::Right));
    assert_eq!(app.settings.train, before);
}

/// A letter a screen has no use for says so, and where the screen's keys are listed.
#[test]
fn a_key_a_screen_has_no_use_for_says_so() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Compare;
    assert!(!handle_key(&mut app, ch('e')));
    assert_eq!(
        notice(&app).as_deref(),
        Some("e does nothing on Compare: ? lists the keys")
    );
    // Inside a window, nothing is said (the window's own keys are shown in it).
    handle_key(&mut app, ch('?'));
    app.notice = None;
    handle_key(&mut app, ch('e'));
    assert_eq!(notice(&app), None);
}

/// `e`'s result is said in the status line too: at 80×24 after a run the Progress box has no
/// room for its estimate row.
#[test]
fn an_asked_for_estimate_is_said_when_it_comes() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    assert!(app.train.estimating, "measured when the data arrived");
    handle_key(&mut app, ch('e'));
    assert_eq!(
        notice(&app).as_deref(),
        Some("measuring the time per epoch…")
    );
    app.handle_msg(WorkerMsg::Estimated(Estimate {
        settings: app.settings.train.clone(),
        result: Ok(500.0),
    }));
    let n = app.data.info.as_ref().unwrap().n_train;
    let said = notice(&app).unwrap_or_default();
    assert_eq!(
        said,
        format!(
            "estimate: ≈ {} / epoch with these settings",
            ddpm_lab::clock::human_duration(n as f64 / 500.0)
        )
    );
    // One not asked for stays in the Progress box.
    app.notice = None;
    handle_key(&mut app, ch('b'));
    app.notice = None;
    app.handle_msg(WorkerMsg::Estimated(Estimate {
        settings: app.settings.train.clone(),
        result: Ok(400.0),
    }));
    assert_eq!(notice(&app), None);
}

#[test]
fn down_past_the_last_setting_says_what_the_grey_rows_are() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    // The quick recipe weights the loss by min-SNR: a grey row under the settings.
    handle_key(&mut app, ch('B'));
    assert!(!app.settings.train.recipe_extras().is_empty());
    let n = ddpm_lab::tui::state::train::Field::ALL.len();
    for _ in 0..n - 1 {
        handle_key(&mut app, key(KeyCode::Down));
        assert!(
            !notice(&app).unwrap_or_default().contains("grey rows"),
            "only past the last setting"
        );
    }
    handle_key(&mut app, key(KeyCode::Down));
    let said = notice(&app).unwrap_or_default();
    assert!(
        said.starts_with("the grey rows (min-SNR γ") && said.contains("b and B set them"),
        "{said}"
    );
    assert_eq!(app.train.field, 0, "the highlight wraps to the top");
    // The blog's recipe has none: nothing to say.
    handle_key(&mut app, ch('b'));
    assert!(app.settings.train.recipe_extras().is_empty());
    for _ in 0..n {
        handle_key(&mut app, key(KeyCode::Down));
    }
    assert!(!notice(&app).unwrap_or_default().contains("grey rows"));
}

#[test]
fn schedules_keys_move_t_and_t_max() {
    let (mut app, _) = app();
    load_data(&mut app);
    handle_key(&mut app, ch('2'));
    handle_key(&mut app, key(KeyCode::End));
    assert_eq!(app.schedules.t, 199);
    handle_key(&mut app, key(KeyCode::PageUp));
    assert_eq!(app.schedules.t, 189);
    handle_key(&mut app, ch('-'));
    assert_eq!(app.schedules.timesteps, 100);
    // T here is the view's, and the screen says a new run's is Train's.
    assert_eq!(app.settings.train.timesteps, 200);
    let said = &app.notice.as_ref().unwrap().text;
    assert_eq!(
        said,
        "T = 100 on this screen; a new run's T is Train's, 200 (set there)"
    );
    handle_key(&mut app, ch('+'));
    assert_eq!(app.schedules.timesteps, 200);
    handle_key(&mut app, ch('n'));
    assert_eq!(app.schedules.image_index, 1);
}

#[test]
fn dataset_switch_asks_the_engine() {
    let (mut app, engine) = app();
    handle_key(&mut app, ch('d'));
    assert_eq!(app.data.requested, "fashion_mnist");
    assert_eq!(
        engine.calls()[..2],
        [
            Call::Load("shapes".into()),
            Call::Load("fashion_mnist".into())
        ]
    );
    assert_eq!(app.settings.dataset, "fashion_mnist");
}

#[test]
fn a_training_run_is_sampled_from_its_first_checkpoint_on() {
    let (mut app, engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 30, 570);
    app.tab = Tab::Sample;
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("run      20260101-000000-linear"),
        "{screen}"
    );
    assert!(
        screen.contains("waiting for its first checkpoint"),
        "{screen}"
    );
    handle_key(&mut app, ch('g'));
    let notice = app.notice.clone().unwrap();
    assert!(notice.error);
    assert_eq!(notice.text, NO_CHECKPOINT_YET);
    // The notice names the lab's checkpoint interval and fits the narrowest lab.
    let minutes = LAB_CHECKPOINT_INTERVAL_S / 60.0;
    assert!(NO_CHECKPOINT_YET.contains(&format!(" {minutes} min ")));
    for text in [NO_CHECKPOINT_YET, NOTHING_TO_SAMPLE] {
        assert!(text.chars().count() <= 80, "{text}");
    }
    let sampled = |engine: &FakeEngine| {
        engine
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Sample(Slot::Main, _)))
    };
    assert!(!sampled(&engine));
    feed(
        &mut app,
        Slot::Main,
        vec![TrainEvent::Checkpointed {
            step: 30,
            path: "runs/20260101-000000-linear".into(),
        }],
    );
    let screen = render(&app, 80, 24);
    assert!(
        !screen.contains("waiting for its first checkpoint"),
        "{screen}"
    );
    assert!(screen.contains("ckpt     step 30"), "{screen}");
    handle_key(&mut app, ch('g'));
    assert!(
        sampled(&engine),
        "g samples the checkpoint while the run trains on"
    );
}

#[test]
fn a_run_that_failed_before_its_first_checkpoint_is_not_waited_for() {
    let (mut app, _) = app();
    load_data(&mut app);
    start_main_run(&mut app, 10, 570);
    feed(
        &mut app,
        Slot::Main,
        vec![TrainEvent::Failed {
            step: 11,
            message: "loss is NaN".into(),
        }],
    );
    app.tab = Tab::Sample;
    let screen = render(&app, 80, 24);
    assert!(
        !screen.contains("waiting for its first checkpoint"),
        "{screen}"
    );
    handle_key(&mut app, ch('g'));
    assert_eq!(app.notice.clone().unwrap().text, NOTHING_TO_SAMPLE);
}

#[test]
fn a_run_that_fails_after_a_checkpoint_is_still_named_by_its_directory() {
    let (mut app, _) = app();
    load_data(&mut app);
    start_main_run(&mut app, 30, 570);
    let run = std::path::PathBuf::from("runs/20260101-000000-linear");
    feed(
        &mut app,
        Slot::Main,
        vec![
            TrainEvent::Checkpointed {
                step: 30,
                path: run.join("checkpoints/step-000030"),
            },
            TrainEvent::Failed {
                step: 31,
                message: "loss is NaN".into(),
            },
        ],
    );
    // The exit message, the Sample screen and a resume all go by the run's directory.
    assert_eq!(app.session_runs(), vec![run.clone()]);
    assert_eq!(app.sample_source(), Some(run));
}

#[test]
fn sample_needs_a_checkpoint_then_steps_and_plays() {
    let (mut app, engine) = app();
    load_data(&mut app);
    app.tab = Tab::Sample;
    handle_key(&mut app, ch('g'));
    let notice = app.notice.clone().unwrap();
    assert!(notice.error);
    assert_eq!(notice.text, NOTHING_TO_SAMPLE);
    train_main_run_to_the_end(&mut app, "runs/r");
    app.tab = Tab::Sample;
    handle_key(&mut app, ch('k'));
    handle_key(&mut app, ch(']'));
    handle_key(&mut app, ch('g'));
    let req = engine
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::Sample(Slot::Main, r) => Some(r),
            _ => None,
        })
        .expect("sampling requested");
    assert_eq!(req.run_dir, std::path::PathBuf::from("runs/r"));
    assert!(req.settings.ddim);
    assert_eq!(
        req.settings.ddim_steps, 200,
        "the recipe's 100, one notch up"
    );
    let mut drawn = frames(4, 30);
    drawn.step = Some(5);
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Done(Box::new(drawn)),
    });
    assert_eq!(app.sample.cursor.index, 30, "shows the final images first");
    handle_key(&mut app, key(KeyCode::Home));
    handle_key(&mut app, key(KeyCode::PageDown));
    handle_key(&mut app, key(KeyCode::Right));
    assert_eq!(app.sample.cursor.index, 11);
    handle_key(&mut app, key(KeyCode::Left));
    handle_key(&mut app, key(KeyCode::PageUp));
    assert_eq!(app.sample.cursor.index, 0);
    handle_key(&mut app, ch('p'));
    app.tick(Duration::from_millis(200));
    assert_eq!(app.sample.cursor.index, 5);
    handle_key(&mut app, key(KeyCode::End));
    assert_eq!(app.sample.cursor.index, 30);
    // A new seed and sampler for the next draw: the export is still named after the frames
    // shown (their checkpoint's step, sampler and seed), and the screen says what they are.
    handle_key(&mut app, ch('s'));
    handle_key(&mut app, ch('k'));
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("shown: step 5 · DDIM 200 · seed 0"),
        "{screen}"
    );
    handle_key(&mut app, ch('e'));
    assert!(
        engine.calls().iter().any(|c| matches!(
            c,
            Call::Export(dir, stem)
                if dir.ends_with("runs/r/exports") && stem == "samples-step5-ddim200-seed0-n4"
        )),
        "{:?}",
        engine.calls()
    );
    app.handle_msg(WorkerMsg::Exported(Ok(vec!["runs/r/exports/a.png".into()])));
    assert!(app.notice.as_ref().unwrap().text.contains("a.png"));
}

/// `x` on Train says the run is being saved until it is, then where it stopped (no stale
/// "stopping" line left behind).
#[test]
fn the_train_stop_message_lasts_until_the_run_is_saved() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 3, 100);
    handle_key(&mut app, ch('x'));
    assert!(notice(&app)
        .unwrap()
        .starts_with("stopping: saving a checkpoint"));
    app.tick(Duration::from_secs(30));
    assert!(
        notice(&app).unwrap().starts_with("stopping"),
        "still saving"
    );
    // Space while it saves says it continues once saved.
    handle_key(&mut app, ch(' '));
    assert!(notice(&app)
        .unwrap()
        .contains("space continues the run once it is saved"));
    feed(
        &mut app,
        Slot::Main,
        vec![finished(3, "runs/r", FinishReason::Stopped)],
    );
    assert_eq!(
        notice(&app).as_deref(),
        Some("stopped at step 3, saved: space continues the run")
    );
}

/// A passing message goes at the next key once it has been up long enough to read (a
/// refusal about the fewest steps does not stay after the user has moved on).
#[test]
fn a_read_message_goes_at_the_next_key() {
    let (mut app, _engine) = app();
    app.tab = Tab::Train;
    handle_key(&mut app, ch('c'));
    assert!(notice(&app).is_some());
    app.tick(Duration::from_millis(500));
    handle_key(&mut app, key(KeyCode::Down));
    assert!(notice(&app).is_some(), "too soon to have been read");
    app.tick(Duration::from_secs(3));
    handle_key(&mut app, key(KeyCode::Down));
    assert_eq!(notice(&app), None);
}

/// `x` on Compare says the runs are being saved until they are, then that they are.
#[test]
fn the_compare_stop_message_lasts_while_the_runs_are_saved() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Compare;
    handle_key(&mut app, ch(' '));
    let linear = Slot::Compare(BetaSchedule::Linear);
    feed(&mut app, linear, fake_run(0, 3, 100));
    handle_key(&mut app, ch('x'));
    assert!(notice(&app)
        .unwrap()
        .starts_with("stopping the comparison: each run is saved"));
    app.tick(Duration::from_secs(30));
    assert!(notice(&app).is_some(), "still saving");
    feed(
        &mut app,
        linear,
        vec![finished(3, "runs/c/linear", FinishReason::Steps)],
    );
    app.tick(Duration::from_millis(10));
    assert_eq!(
        notice(&app).as_deref(),
        Some("the comparison is stopped, each run saved: c continues it, space starts anew")
    );
}

#[test]
fn compare_in_turn_starts_the_next_schedule_when_one_finishes() {
    let (mut app, engine) = app();
    load_data(&mut app);
    app.tab = Tab::Compare;
    handle_key(&mut app, ch(' '));
    let trains = |e: &FakeEngine| -> Vec<(Slot, std::path::PathBuf)> {
        e.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Train(s, r) => Some((s, r.run_dir().to_path_buf())),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        trains(&engine),
        vec![(
            Slot::Compare(BetaSchedule::Linear),
            "runs/20260101-000000-compare/linear".into()
        )]
    );
    for (i, s) in ALL.iter().enumerate() {
        feed(&mut app, Slot::Compare(*s), fake_run(0, 3, 3));
        feed(
            &mut app,
            Slot::Compare(*s),
            vec![finished(3, format!("runs/c/{s}"), FinishReason::Steps)],
        );
        assert_eq!(trains(&engine).len(), (i + 2).min(4));
    }
    assert!(app.compare.all_finished());
    handle_key(&mut app, ch('g'));
    let seeds: Vec<u64> = engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Sample(Slot::Compare(_), r) => Some(r.settings.seed),
            _ => None,
        })
        .collect();
    assert_eq!(
        seeds,
        vec![0, 0, 0, 0],
        "same initial noise for every schedule"
    );
}

#[test]
fn compare_round_robin_rotates_every_quantum() {
    let (mut app, engine) = app();
    load_data(&mut app);
    app.tab = Tab::Compare;
    handle_key(&mut app, ch('m'));
    assert_eq!(app.settings.compare_mode, CompareMode::RoundRobin);
    handle_key(&mut app, ch(' '));
    feed(
        &mut app,
        Slot::Compare(BetaSchedule::Linear),
        fake_run(0, ddpm_lab::tui::state::compare::ROUND_ROBIN_QUANTUM, 500),
    );
    assert_eq!(
        engine.commands(Slot::Compare(BetaSchedule::Linear)),
        vec![TrainCommand::Pause]
    );
    assert_eq!(app.compare.active, Some(1));
    assert!(engine
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Train(Slot::Compare(BetaSchedule::Quadratic), _))));
    // User pause / resume goes to the active run.
    handle_key(&mut app, ch(' '));
    assert!(app.compare.paused);
    assert_eq!(
        engine.commands(Slot::Compare(BetaSchedule::Quadratic)),
        vec![TrainCommand::Pause]
    );
}

/// A run whose log goes past its newest checkpoint (a trainer that crashed, or one training
/// it now) is shown saved at its checkpoint, not at its last logged step, and says that
/// continuing goes back there; the lab cannot save those steps, so quitting does not ask.
#[test]
fn an_opened_run_is_saved_at_its_checkpoint_not_its_last_logged_step() {
    let (mut app, engine) = app();
    load_data(&mut app);
    engine.offer_run("runs/crashed", settings().train, 40);
    if let Some(o) = engine.0.lock().unwrap().opened.as_mut() {
        o.summary.step = 30;
    }
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(app.train.run.state, RunState::Opened);
    assert_eq!(app.train.run.step(), 40);
    assert_eq!(app.train.run.checkpoint_step, Some(30));
    let said = notice(&app).unwrap();
    assert!(
        said.contains("step 40 logged, 30 saved; space continues from step 30"),
        "{said}"
    );
    let screen = render(&app, 160, 48);
    assert!(screen.contains("saved step 30"), "{screen}");
    assert!(!app.has_unsaved());
    handle_key(&mut app, ch('q'));
    assert_eq!(app.lifecycle, ddpm_lab::tui::state::Lifecycle::Done);
}

#[test]
fn opening_a_run_loads_history_and_space_resumes_it() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let dir = engine.offer_run("runs/old", settings().train, 40).dir;
    app.tab = Tab::Train;
    // The key only asks: the list is read on a worker and the picker opens when it arrives.
    handle_key(&mut app, ch('o'));
    assert!(app.picker.is_none());
    assert_eq!(app.picker_wait, PickerWait::Listing);
    handle_key(&mut app, ch('o'));
    assert_eq!(
        app.pump(),
        1,
        "a second `o` while listing asks nothing more"
    );
    assert!(app.picker.is_some());
    assert_eq!(app.picker_wait, PickerWait::Idle);
    handle_key(&mut app, key(KeyCode::Enter));
    assert!(app.picker.is_none());
    assert_eq!(app.picker_wait, PickerWait::Opening(dir.clone()));
    assert_ne!(app.train.run.state, RunState::Opened);
    assert_eq!(app.pump(), 1);
    assert_eq!(app.picker_wait, PickerWait::Idle);
    assert_eq!(app.train.run.state, RunState::Opened);
    assert_eq!(app.train.run.losses.len(), 40);
    assert_eq!(app.sample_source(), Some(dir.clone()));
    // The run is watched: steps written by another process appear.
    assert!(engine.calls().contains(&Call::Watch(dir.clone(), 40)));
    feed(&mut app, Slot::Main, vec![TrainEvent::Step(stats(41))]);
    feed(
        &mut app,
        Slot::Main,
        vec![TrainEvent::Checkpointed {
            step: 41,
            path: dir.clone(),
        }],
    );
    assert_eq!(app.train.run.state, RunState::Opened);
    assert_eq!(app.train.run.step(), 41);
    assert_eq!(app.train.run.checkpoint_step, Some(41));
    handle_key(&mut app, ch(' '));
    assert!(
        matches!(
            engine.0.lock().unwrap().watchers[0].try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected)
        ),
        "watching stops when this process continues the run"
    );
    let req = engine.first_train(Slot::Main).unwrap();
    assert!(req.is_resume());
    assert_eq!(req.run_dir(), dir.as_path());
}

/// Opening a run puts its settings on Train; `u` brings back the user's own (and closes the
/// opened run, so that space starts a new run with them).
#[test]
fn u_brings_back_the_settings_an_opened_run_replaced() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let own = app.settings.train.clone();
    let own_origin = app.settings.origin.clone();
    app.settings.sample.ddim = true;
    let own_sample = app.settings.sample.clone();
    let mut theirs = settings().train;
    theirs.lr = 5e-4;
    theirs.steps = 40;
    // The blog's run: it recommends no sampler, and is sampled with DDPM, as `sample` does.
    theirs.recommended_sampler = None;
    assert_ne!(theirs, own);
    engine.offer_run("runs/old", theirs.clone(), 40);
    app.tab = Tab::Train;
    handle_key(&mut app, ch('u'));
    assert!(app
        .notice
        .as_ref()
        .unwrap()
        .text
        .starts_with("these are your own settings"));
    open_from_picker(&mut app);
    assert_eq!(app.train.run.state, RunState::Opened);
    assert_eq!(app.settings.train, theirs);
    assert!(
        app.notice
            .as_ref()
            .unwrap()
            .text
            .ends_with("(u: your own settings back)"),
        "{:?}",
        app.notice
    );
    assert!(!app.settings.sample.ddim, "{:?}", app.settings.sample);
    // Quitting now would remember the user's own settings, not the opened run's.
    assert_eq!(app.settings_to_keep().train, own);
    assert_eq!(app.settings_to_keep().sample, own_sample);
    // Only steps, budget and device apply to the opened run.
    app.train.field = 0;
    handle_key(&mut app, key(KeyCode::Right));
    assert!(app
        .notice
        .as_ref()
        .unwrap()
        .text
        .starts_with("an opened run keeps its configuration"));
    assert_eq!(app.settings.train, theirs);
    handle_key(&mut app, ch('u'));
    assert_eq!(app.settings.train, own);
    assert_eq!(app.settings.origin, own_origin);
    assert_eq!(app.settings.sample, own_sample);
    assert_eq!(
        app.train.run.state,
        RunState::Idle,
        "the opened run is closed"
    );
    assert!(
        matches!(
            engine.0.lock().unwrap().watchers[0].try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected)
        ),
        "and no longer watched"
    );
    assert!(app
        .notice
        .as_ref()
        .unwrap()
        .text
        .starts_with("your own settings are back"));
    // Space now starts a new run with them.
    handle_key(&mut app, ch(' '));
    let req = engine.first_train(Slot::Main).unwrap();
    assert!(!req.is_resume());
    assert_eq!(req.settings(), &own);
}

/// Sample settings changed after a run was opened are the user's own: `u` (and quitting)
/// keeps them rather than going back to those from before the run was opened.
#[test]
fn u_keeps_sample_settings_changed_after_the_run_was_opened() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let mut theirs = settings().train;
    theirs.steps = 40;
    theirs.timesteps = 1000;
    theirs.recommended_sampler = None;
    engine.offer_run("runs/old", theirs, 40);
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(app.train.run.state, RunState::Opened);
    assert_eq!(app.sample_timesteps(), 1000);
    app.tab = Tab::Sample;
    handle_key(&mut app, ch('s'));
    handle_key(&mut app, ch('-'));
    let chosen = app.settings.sample.clone();
    assert_eq!(app.settings_to_keep().sample, chosen, "kept on quitting");
    app.tab = Tab::Train;
    handle_key(&mut app, ch('u'));
    assert_eq!(app.settings.sample, chosen);
    // The Sample screen goes on drawing from the run `u` closed, with that run's T (not the
    // T of the settings that came back).
    assert_eq!(app.settings.train.timesteps, 200);
    assert_eq!(app.sample_timesteps(), 1000);
}

/// An opened run on other data loads its data; `u` loads the user's back (and quitting while
/// the run is open remembers the user's data, not the run's).
#[test]
fn u_brings_back_the_data_an_opened_run_replaced() {
    let (mut app, engine) = app();
    load_data(&mut app);
    app.settings.dataset = "mnist".into();
    let loads = |engine: &FakeEngine| -> Vec<String> {
        let rec = engine.0.lock().unwrap();
        rec.calls
            .iter()
            .filter_map(|c| match c {
                Call::Load(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    };
    let before = loads(&engine).len();
    engine.offer_run("runs/old", settings().train, 40);
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(loads(&engine)[before..], ["shapes"]);
    assert_eq!(app.settings.dataset, "shapes");
    assert_eq!(app.settings_to_keep().dataset, "mnist");
    handle_key(&mut app, ch('u'));
    assert_eq!(loads(&engine)[before..], ["shapes", "mnist"]);
    assert_eq!(app.settings.dataset, "mnist");
    assert_eq!(app.settings_to_keep().dataset, "mnist");
}

/// A run of a comparison, chosen in the run picker, opens the whole comparison on Compare
/// (the Train screen's settings stay as they were); `c` continues it from each run's checkpoint.
#[test]
fn opening_a_comparison_run_shows_the_comparison_and_c_continues_it() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let train_before = app.settings.train.clone();
    let base = std::path::PathBuf::from("runs/20261206-061500-compare");
    let mut saved = settings().train;
    saved.steps = 100;
    let saved_settings = saved.clone();
    let cosine = engine.offer_run(base.join("cosine").to_str().unwrap(), saved.clone(), 40);
    let linear = ddpm_lab::tui::workers::OpenedRun {
        quality: Vec::new(),
        preview: None,
        data_gone: false,
        summary: RunSummary {
            dir: base.join("linear"),
            settings: Some(saved),
            dataset: Some("shapes".into()),
            step: 100,
            held_by: None,
            unsaved: false,
            problem: None,
        },
        history: (1..=100).map(stats).collect(),
    };
    let opened_cosine = engine.0.lock().unwrap().opened.clone().unwrap();
    let mut own = saved_settings.clone();
    own.lr = 7e-4;
    engine.0.lock().unwrap().comparison = Some(OpenedComparison {
        base: base.clone(),
        runs: vec![
            (BetaSchedule::Linear, linear),
            (BetaSchedule::Cosine, opened_cosine),
        ],
        settings: Some(own.clone()),
        dataset: Some(app.settings.dataset.clone()),
    });
    app.tab = Tab::Train;
    handle_key(&mut app, ch('o'));
    app.pump();
    handle_key(&mut app, key(KeyCode::Enter));
    assert_eq!(app.picker_wait, PickerWait::Opening(base.clone()));
    assert_eq!(app.pump(), 1);
    assert!(engine.calls().contains(&Call::OpenComparison(base.clone())));
    assert!(!engine.calls().contains(&Call::OpenRun(cosine.dir.clone())));
    assert_eq!(app.tab, Tab::Compare);
    assert_eq!(
        app.settings.train, train_before,
        "Train's settings are kept"
    );
    assert_eq!(app.settings.compare_steps, 100);
    let c = &app.compare;
    assert_eq!(c.slots[0].run.step(), 100);
    assert_eq!(c.slots[2].run.step(), 40);
    assert_eq!(c.slots[2].run.state, RunState::Opened);
    assert_eq!(c.slots[1].run.state, RunState::Idle, "never reached");
    // c: linear has its 100 steps; quadratic comes first in turn, from nothing, into its folder.
    handle_key(&mut app, ch('c'));
    let req = engine
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::Train(Slot::Compare(s), r) => Some((s, r)),
            _ => None,
        })
        .unwrap();
    assert_eq!(req.0, BetaSchedule::Quadratic);
    assert!(!req.1.is_resume());
    assert_eq!(req.1.run_dir(), base.join("quadratic").as_path());
    assert_eq!(req.1.settings().steps, 100);
    // It trains with the comparison's own settings, not the Train screen's.
    assert_eq!(req.1.settings().lr, 7e-4);
    assert_eq!(
        req.1.settings().schedule,
        BetaSchedule::Quadratic,
        "with its own schedule"
    );
}

/// A comparison's run whose log runs past its checkpoint (its lab was killed) is shown at
/// its checkpoint, towards the steps `c` trains it to.
#[test]
fn an_opened_comparison_shows_its_runs_at_their_checkpoints() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let base = std::path::PathBuf::from("runs/20261206-061500-compare");
    let mut saved = settings().train;
    saved.steps = 20;
    let linear = ddpm_lab::tui::workers::OpenedRun {
        quality: Vec::new(),
        preview: None,
        data_gone: false,
        summary: RunSummary {
            dir: base.join("linear"),
            settings: Some(saved.clone()),
            dataset: Some("shapes".into()),
            step: 20,
            held_by: None,
            unsaved: false,
            problem: None,
        },
        history: (1..=69).map(stats).collect(),
    };
    engine.0.lock().unwrap().comparison = Some(OpenedComparison {
        base: base.clone(),
        runs: vec![(BetaSchedule::Linear, linear)],
        settings: Some(saved),
        dataset: Some(app.settings.dataset.clone()),
    });
    engine.0.lock().unwrap().runs = vec![RunSummary {
        dir: base.join("linear"),
        settings: None,
        dataset: None,
        step: 20,
        held_by: None,
        unsaved: false,
        problem: None,
    }];
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(app.tab, Tab::Compare);
    app.settings.compare_steps = 2000;
    let screen = render(&app, 80, 24);
    let line = screen
        .lines()
        .find(|l| l.contains("linear") && l.contains("saved"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(line.contains("   20/2000"), "{line}");
    // At the steps asked it reads as a run trained here does at its end.
    app.settings.compare_steps = 20;
    let screen = render(&app, 80, 24);
    assert!(
        screen
            .lines()
            .any(|l| l.contains("linear") && l.contains("20/20") && l.contains("finished")),
        "{screen}"
    );
}

#[test]
fn run_picker_answers_come_from_the_worker_and_stale_ones_are_dropped() {
    let (mut app, engine) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    let notice = |app: &ddpm_lab::tui::state::App| app.notice.clone().unwrap();
    // No runs: an error notice and no picker.
    handle_key(&mut app, ch('o'));
    assert!(
        !notice(&app).error,
        "a progress notice while the list is read"
    );
    app.pump();
    assert!(app.picker.is_none());
    assert!(notice(&app).error && notice(&app).text.starts_with("no runs found"));
    // A run the engine cannot read: an error notice, nothing opened, the picker free again.
    let dir = std::path::PathBuf::from("runs/broken");
    engine.0.lock().unwrap().runs = vec![RunSummary {
        dir: dir.clone(),
        settings: None,
        dataset: None,
        step: 3,
        held_by: None,
        unsaved: false,
        problem: None,
    }];
    open_from_picker(&mut app);
    assert!(notice(&app).error && notice(&app).text.contains("cannot open run"));
    assert_ne!(app.train.run.state, RunState::Opened);
    assert_eq!(app.picker_wait, PickerWait::Idle);
    assert_eq!(
        engine
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::ListRuns))
            .count(),
        2
    );
    assert!(engine.calls().contains(&Call::OpenRun(dir)));
    // The list arrives after a training run was started: no picker over the running run.
    handle_key(&mut app, ch('o'));
    handle_key(&mut app, ch(' '));
    app.pump();
    assert!(app.picker.is_none());
    assert_eq!(app.picker_wait, PickerWait::Idle);
}

#[test]
fn quitting_gives_up_waiting_after_the_grace_period() {
    let (mut app, _) = app();
    load_data(&mut app);
    start_main_run(&mut app, 1, 100);
    handle_key(&mut app, ctrl_c());
    app.tick(ddpm_lab::tui::state::SHUTDOWN_GRACE / 2);
    assert!(!app.should_exit());
    app.tick(ddpm_lab::tui::state::SHUTDOWN_GRACE);
    assert!(app.should_exit());
}

#[test]
fn x_stops_a_paused_run_so_that_another_can_be_opened_or_compared() {
    let (mut app, engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 2, 100);
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, vec![TrainEvent::Paused { step: 2 }]);
    assert_eq!(app.train.run.state, RunState::Paused);
    // Paused, it still holds the machine: the Compare screen and the run picker say how to
    // end it, not to pause it.
    app.tab = Tab::Compare;
    handle_key(&mut app, ch(' '));
    let notice = app.notice.as_ref().unwrap().text.clone();
    assert!(notice.contains("x on Train stops it"), "{notice}");
    app.tab = Tab::Train;
    handle_key(&mut app, ch('o'));
    let notice = app.notice.as_ref().unwrap().text.clone();
    assert!(notice.contains("x on its screen stops it"), "{notice}");
    // x: checkpoint and stop; once the worker has finished, the run can be continued later.
    handle_key(&mut app, ch('x'));
    assert_eq!(
        engine.commands(Slot::Main),
        vec![TrainCommand::Pause, TrainCommand::Stop]
    );
    assert_eq!(app.train.run.state, RunState::Stopping);
    feed(
        &mut app,
        Slot::Main,
        vec![finished(2, "runs/r", FinishReason::Steps)],
    );
    assert!(!app.any_active());
    handle_key(&mut app, ch('x'));
    let notice = app.notice.as_ref().unwrap().text.clone();
    assert!(notice.contains("no run is training or paused"), "{notice}");
    // The Compare screen's x stops its runs and starts no other.
    app.tab = Tab::Compare;
    handle_key(&mut app, ch(' '));
    let linear = Slot::Compare(BetaSchedule::Linear);
    feed(&mut app, linear, fake_run(0, 3, 50));
    handle_key(&mut app, ch('x'));
    // Space while it saves neither resumes it nor lets the next schedule start after it.
    handle_key(&mut app, ch(' '));
    assert_eq!(engine.commands(linear), vec![TrainCommand::Stop]);
    feed(
        &mut app,
        linear,
        vec![finished(3, "runs/c/linear", FinishReason::Steps)],
    );
    assert!(!app.compare.any_active());
    let compare_runs = engine
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Train(Slot::Compare(_), _)))
        .count();
    assert_eq!(compare_runs, 1, "no next schedule started after the stop");
}

/// `B` and `b` close the run shown (space would have trained it on) and say so: space now
/// starts a new run. Without one shown, the notice names the recipe alone.
#[test]
fn a_recipe_key_says_that_it_closes_the_opened_run() {
    let (mut app, engine) = app();
    load_data(&mut app);
    engine.offer_run("runs/old", settings().train, 40);
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(app.train.run.state, RunState::Opened);
    handle_key(&mut app, ch('B'));
    assert_ne!(app.train.run.state, RunState::Opened);
    assert_eq!(
        notice(&app).as_deref(),
        Some(
            "quick configuration for this device · space starts a new run (the run shown stays on disk: o opens it)"
        )
    );
    handle_key(&mut app, ch('B'));
    assert_eq!(
        notice(&app).as_deref(),
        Some("quick configuration for this device")
    );
}

#[test]
fn opening_a_finished_run_says_to_raise_its_steps_before_space() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let mut train = settings().train;
    train.steps = 40;
    engine.offer_run("runs/done", train, 40);
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(app.train.run.state, RunState::Opened);
    let notice = app.notice.as_ref().unwrap().text.clone();
    assert!(
        notice.contains("at its last step (40): raise steps"),
        "{notice}"
    );
    // Its 40 steps never crossed an epoch's end: the epochs come from the images loaded (the
    // run's own set), so the progress shows its epoch rather than "epoch 1 0%".
    let batch = app.settings.train.batch_size;
    assert_eq!(app.train.run.steps_per_epoch, 6000usize.div_ceil(batch));
    assert!(app.train.run.epoch_progress().is_some());
}

#[test]
fn frames_keep_the_settings_they_were_drawn_with_until_a_new_job_brings_its_own() {
    let (mut app, engine) = app();
    load_data(&mut app);
    train_main_run_to_the_end(&mut app, "runs/r");
    app.tab = Tab::Sample;
    let seed0 = app.settings.sample.seed;
    handle_key(&mut app, ch('g'));
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Done(Box::new(frames(4, 10))),
    });
    // A new seed and a new job: while it runs, nothing is exported (the frames shown are the
    // old job's, and would be named after the new one).
    handle_key(&mut app, ch('s'));
    handle_key(&mut app, ch('g'));
    handle_key(&mut app, ch('e'));
    let notice = app.notice.as_ref().unwrap().text.clone();
    assert!(notice.contains("export once it has finished"), "{notice}");
    // It fails: the frames shown are still the first job's, and exported under its seed.
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Failed("out of memory".into()),
    });
    assert_eq!(app.sample.drawn_with.as_ref().unwrap().seed, seed0);
    handle_key(&mut app, ch('e'));
    let exports: Vec<String> = engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Export(_, stem) => Some(stem),
            _ => None,
        })
        .collect();
    assert_eq!(exports.len(), 1, "{exports:?}");
    assert!(
        exports[0].ends_with(&format!("-seed{seed0}-n4")),
        "{exports:?}"
    );
}

/// Space after `x` (or a spent budget) continues the run, with a new stop step or budget if
/// those changed; while another setting differs from the run's, space starts a new run.
#[test]
fn space_continues_a_stopped_run_until_the_settings_change() {
    let (mut app, engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 5, 100);
    let dir = std::path::Path::new("runs/20260101-000000-linear");
    feed(
        &mut app,
        Slot::Main,
        vec![finished(5, dir, FinishReason::Stopped)],
    );
    let last_train = |e: &FakeEngine| {
        e.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Train(Slot::Main, r) => Some(r),
                _ => None,
            })
            .last()
            .unwrap()
    };
    handle_key(&mut app, ch(' '));
    let req = last_train(&engine);
    assert!(req.is_resume() && req.run_dir() == dir, "{req:?}");
    feed(
        &mut app,
        Slot::Main,
        vec![finished(8, dir, FinishReason::TimeLimit)],
    );
    // Where it stops applies to the run itself.
    app.train.field = 7;
    handle_key(&mut app, key(KeyCode::Right));
    handle_key(&mut app, ch(' '));
    let req = last_train(&engine);
    assert!(req.is_resume() && req.run_dir() == dir, "{req:?}");
    feed(
        &mut app,
        Slot::Main,
        vec![finished(9, dir, FinishReason::Stopped)],
    );
    // Another schedule is another run.
    app.train.field = 0;
    handle_key(&mut app, key(KeyCode::Right));
    let said = notice(&app).unwrap();
    assert!(said.contains("space now starts a new run"), "{said}");
    // Taken back, the settings are the run's again: space continues it.
    handle_key(&mut app, key(KeyCode::Left));
    let said = notice(&app).unwrap();
    assert!(said.contains("stopped run's settings again"), "{said}");
    handle_key(&mut app, key(KeyCode::Right));
    handle_key(&mut app, ch(' '));
    let req = last_train(&engine);
    assert!(!req.is_resume() && req.run_dir() != dir, "{req:?}");
}

/// A run whose data folder is gone opens without trying to load it, says so, and space
/// trains it on the data loaded now (the run layer checks that it fits).
#[test]
fn a_run_whose_data_folder_is_gone_trains_on_the_data_loaded() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let dir = engine.offer_run("runs/moved", settings().train, 10).dir;
    if let Some(o) = engine.0.lock().unwrap().opened.as_mut() {
        o.summary.dataset = Some("/data/fashion-old".into());
        o.data_gone = true;
    }
    let loads_before = engine
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Load(_)))
        .count();
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    let said = notice(&app).unwrap();
    assert!(
        said.contains("its data /data/fashion-old is gone: space trains it on the data loaded now"),
        "{said}"
    );
    let loads = engine
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Load(_)))
        .count();
    assert_eq!(loads, loads_before, "the gone folder is not loaded");
    handle_key(&mut app, ch(' '));
    let req = engine.first_train(Slot::Main).unwrap();
    assert!(req.is_resume() && req.run_dir() == dir.as_path(), "{req:?}");
    assert_eq!(req.dataset(), app.settings.dataset);
}

/// An opened run another process trains is followed read-only: the lab says who trains it,
/// space does not try to take it (its lock would refuse, and the lab would stop following),
/// and once that process stops, space continues it.
#[test]
fn a_run_trained_elsewhere_is_followed_and_space_waits_for_it() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let dir = engine.offer_run("runs/live", settings().train, 10).dir;
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    app.handle_msg(WorkerMsg::RunHolder(Some("pid 4242".into())));
    let said = notice(&app).unwrap();
    assert!(
        said.contains("pid 4242 trains this run now: followed live"),
        "{said}"
    );
    // Its steps, as the watcher reads them, give its speed and time left.
    let batch = app.settings.train.batch_size;
    feed(
        &mut app,
        Slot::Main,
        vec![TrainEvent::Step(stats(11)), TrainEvent::Step(stats(12))],
    );
    assert!(app.train.run.images_per_s(batch).is_some());
    assert!(app.train.run.eta_s(batch).is_some());
    // It was resumed there with a later stop step: the screen follows once its checkpoint
    // says so.
    app.handle_msg(WorkerMsg::RunStopStep(60));
    assert_eq!(app.train.run.total_steps, 60);
    assert_eq!(app.settings.train.steps, 60);
    // Once that process stops, no stale speed.
    app.handle_msg(WorkerMsg::RunHolder(None));
    assert_eq!(app.train.run.images_per_s(batch), None);
    app.handle_msg(WorkerMsg::RunHolder(Some("pid 4242".into())));
    handle_key(&mut app, ch(' '));
    assert!(engine.first_train(Slot::Main).is_none(), "not started");
    assert!(notice(&app)
        .unwrap()
        .contains("once pid 4242 stops, space continues it here"));
    assert_eq!(app.train.run.state, RunState::Opened);
    // c and x name who trains it, rather than saying nothing trains.
    handle_key(&mut app, ch('x'));
    let said = notice(&app).unwrap();
    assert!(
        said.contains("pid 4242 trains this run, not the lab"),
        "{said}"
    );
    app.handle_msg(WorkerMsg::RunHolder(None));
    assert!(notice(&app)
        .unwrap()
        .contains("nothing trains this run elsewhere"));
    handle_key(&mut app, ch(' '));
    let req = engine.first_train(Slot::Main).unwrap();
    assert!(req.is_resume() && req.run_dir() == dir.as_path());
}

/// A followed run that finished elsewhere is not offered to space as it stands: the lab says
/// to raise its steps first.
#[test]
fn a_run_that_finished_elsewhere_asks_for_more_steps() {
    let (mut app, engine) = app();
    load_data(&mut app);
    engine.offer_run("runs/live", settings().train, 10);
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    app.handle_msg(WorkerMsg::RunHolder(Some("pid 4242".into())));
    app.handle_msg(WorkerMsg::RunStopStep(12));
    feed(
        &mut app,
        Slot::Main,
        vec![TrainEvent::Step(stats(11)), TrainEvent::Step(stats(12))],
    );
    app.handle_msg(WorkerMsg::RunHolder(None));
    let said = notice(&app).unwrap();
    assert!(
        said.contains("it is at its last step (12): raise steps, then space trains it on"),
        "{said}"
    );
}

/// Space without data says whether the data is still loading or could not be loaded.
#[test]
fn space_without_data_says_whether_it_failed() {
    let (mut app, _engine) = app();
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    assert!(notice(&app).unwrap().contains("not loaded yet"));
    let requested = app.data.requested.clone();
    app.handle_msg(WorkerMsg::Data(ddpm_lab::tui::workers::DataMsg::Failed {
        name: requested,
        message: "no such folder".into(),
    }));
    handle_key(&mut app, ch(' '));
    let said = notice(&app).unwrap();
    assert!(
        said.contains("could not be loaded (the Data screen, 1, says why"),
        "{said}"
    );
}

/// The Train run's worker says a checkpoint at `step` was not written (`message`; `last`:
/// the session's last) and that it holds the run, paused.
fn held_by_full_disk(app: &mut ddpm_lab::tui::state::App, step: usize, message: &str, last: bool) {
    feed(
        app,
        Slot::Main,
        vec![
            TrainEvent::CheckpointFailed {
                step,
                message: message.into(),
                last,
            },
            TrainEvent::Paused { step },
        ],
    );
}

/// A checkpoint the disk had no room for: the Train screen says so, cause first, with what to
/// do; the run is paused (its trainer holds the weights).
#[test]
fn a_checkpoint_that_could_not_be_written_is_said_cause_first() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 4, 100);
    held_by_full_disk(
        &mut app,
        4,
        "No space left on device (os error 28): cannot write runs/x/ema.safetensors",
        false,
    );
    assert_eq!(app.train.run.state, RunState::Paused);
    let said = notice(&app).unwrap();
    assert!(
        said.starts_with("checkpoint at step 4 not written: No space left on device"),
        "{said}"
    );
    assert!(said.contains("then c saves"), "{said}");
    assert!(app.has_unsaved(), "quitting asks first");
    // The Progress box and the status bar call it unsaved, not merely paused.
    let screen = render(&app, 80, 24);
    assert!(screen.contains("Progress UNSAVED"), "{screen}");
    assert!(screen.contains("│ run unsaved 4/100"), "{screen}");
    // Quitting asks, saying what holds the run.
    handle_key(&mut app, ch('q'));
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("A run is not saved: its checkpoint could not be written."),
        "{screen}"
    );
}

/// The session's last checkpoint (at the stop step) not written: space cannot train past it
/// and says so instead of doing nothing; `c` tries again, and the run finishes once saved.
#[test]
fn a_last_checkpoint_that_could_not_be_written_can_only_be_saved() {
    let (mut app, engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 4, 4);
    held_by_full_disk(&mut app, 4, "No space left on device (os error 28)", true);
    let said = notice(&app).unwrap();
    assert!(said.ends_with("make room, then c saves"), "{said}");
    handle_key(&mut app, ch(' '));
    assert_eq!(
        notice(&app).unwrap(),
        ddpm_lab::tui::state::train::LAST_CHECKPOINT_HELD
    );
    handle_key(&mut app, ch('c'));
    assert_eq!(engine.commands(Slot::Main), vec![TrainCommand::Checkpoint]);
    feed(
        &mut app,
        Slot::Main,
        vec![finished(
            4,
            "runs/20260101-000000-linear",
            FinishReason::Steps,
        )],
    );
    assert_eq!(app.train.run.held, None);
    assert!(!app.has_unsaved());
}

/// Quitting with a run whose last checkpoint a full disk keeps from being written: the lab
/// tries again by itself every few seconds (room made in another shell saves it), and only
/// for runs that are held.
#[test]
fn quitting_tries_a_held_checkpoint_again_by_itself() {
    use ddpm_lab::tui::state::HELD_RETRY;
    let (mut app, engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 4, 100);
    handle_key(&mut app, ch('q'));
    handle_key(&mut app, ch('y'));
    assert_eq!(engine.commands(Slot::Main), vec![TrainCommand::Stop]);
    app.tick(HELD_RETRY * 2);
    assert!(
        engine.commands(Slot::Main).is_empty(),
        "not held: nothing to retry"
    );
    held_by_full_disk(&mut app, 4, "No space left on device (os error 28)", true);
    app.tick(HELD_RETRY / 2);
    assert!(engine.commands(Slot::Main).is_empty());
    app.tick(HELD_RETRY);
    assert_eq!(engine.commands(Slot::Main), vec![TrainCommand::Checkpoint]);
    assert!(!app.should_exit(), "the lab waits for the run");
}

/// The opened run removed on the Runs screen: the Train screen closes it and the settings
/// from before it was opened come back (as `u` would bring them).
#[test]
fn removing_the_opened_run_brings_back_the_settings_from_before() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let own_lr = app.settings.train.lr;
    let mut theirs = settings().train;
    theirs.lr = own_lr * 3.0;
    let dir = engine.offer_run("runs/opened", theirs, 10).dir;
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(app.settings.train.lr, own_lr * 3.0);
    app.handle_msg(WorkerMsg::RunRemoved(Ok(ddpm_lab::runs::Removed {
        dir: dir.clone(),
        bytes: 1_000_000,
        comparison: None,
    })));
    let said = notice(&app).unwrap();
    assert!(
        said.ends_with("the Train screen no longer shows it"),
        "{said}"
    );
    assert_eq!(app.settings.train.lr, own_lr);
    assert_eq!(app.train.run.run_dir, None);
}

/// A run another process trains towards its first checkpoint opens (followed live), and
/// space does not pretend there is a checkpoint to continue from once that process stops.
#[test]
fn a_run_without_a_checkpoint_yet_is_followed_and_space_says_why_it_cannot_continue() {
    let (mut app, engine) = app();
    load_data(&mut app);
    engine.offer_run("runs/fresh", settings().train, 0);
    if let Some(o) = engine.0.lock().unwrap().opened.as_mut() {
        o.summary.unsaved = true;
    }
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    let said = notice(&app).unwrap();
    assert!(said.contains("no checkpoint yet: followed live"), "{said}");
    assert_eq!(app.train.run.checkpoint_step, None);
    app.handle_msg(WorkerMsg::RunHolder(Some("pid 4242".into())));
    app.handle_msg(WorkerMsg::RunHolder(None));
    assert!(notice(&app)
        .unwrap()
        .contains("stopped before its first checkpoint"));
    handle_key(&mut app, ch(' '));
    assert!(engine.first_train(Slot::Main).is_none(), "not started");
    assert!(notice(&app)
        .unwrap()
        .contains("no checkpoint to continue from"));
}

/// `e` asked for while a run trains says why it measures nothing (it used to be silent).
#[test]
fn e_while_training_says_why_it_does_not_measure() {
    let (mut app, engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 3, 100);
    let asked = engine
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Estimate(_)))
        .count();
    handle_key(&mut app, ch('e'));
    assert!(notice(&app).unwrap().contains("while nothing trains"));
    let now = engine
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Estimate(_)))
        .count();
    assert_eq!(now, asked, "nothing measured");
}

/// Space on an opened run after another dataset was loaded (d on Data) loads the run's own
/// back first, instead of a refusal cut off before its remedy.
#[test]
fn an_opened_run_continues_on_its_own_data_loaded_back_first() {
    let (mut app, engine) = app();
    load_data(&mut app);
    engine.offer_run("runs/r", settings().train, 40);
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    app.tab = Tab::Data;
    handle_key(&mut app, ch('d'));
    assert_eq!(app.data.requested, "fashion_mnist");
    let mut other = data_info();
    other.name = "fashion_mnist".into();
    app.handle_msg(WorkerMsg::Data(DataMsg::Ready(Box::new(other))));
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    assert!(
        engine.first_train(Slot::Main).is_none(),
        "not started on other data"
    );
    assert!(notice(&app)
        .unwrap()
        .contains("this run trains on shapes: loading it"));
    assert_eq!(app.data.requested, "shapes");
    load_data(&mut app);
    handle_key(&mut app, ch(' '));
    let req = engine
        .first_train(Slot::Main)
        .expect("started once its data is back");
    assert_eq!(req.dataset(), "shapes");
}

/// Why a run stopped short stays on Progress after the status line's word on it has passed.
#[test]
fn a_run_stopped_by_its_budget_says_so_on_progress() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.settings.train.steps = 20;
    let dir = std::path::Path::new("runs/20260101-000000-linear");
    start_main_run(&mut app, 5, 20);
    feed(
        &mut app,
        Slot::Main,
        vec![finished(5, dir, FinishReason::TimeLimit)],
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("ETA — (budget spent)"), "{screen}");
}

/// The loss-by-timestep chart describes the run it draws: a recipe picked after the run
/// (another T, no min-SNR weighting) does not relabel its buckets.
#[test]
fn the_bucket_chart_keeps_the_runs_own_timesteps_and_weighting() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.settings.train.timesteps = 1000;
    app.settings.train.min_snr_gamma = Some(5.0);
    app.settings.train.steps = 20;
    let dir = std::path::Path::new("runs/20260101-000000-cosine");
    start_main_run(&mut app, 20, 20);
    feed(
        &mut app,
        Slot::Main,
        vec![finished(20, dir, FinishReason::Steps)],
    );
    let before = render(&app, 120, 40);
    // Beside the learning rate the chart is narrow: its name alone, not a range cut short.
    assert!(before.contains("Unweighted loss by t ─"), "{before}");
    handle_key(&mut app, ch('b'));
    assert_eq!(
        app.settings.train.timesteps, 200,
        "b picks the blog's recipe"
    );
    assert_eq!(app.settings.train.min_snr_gamma, None);
    let after = render(&app, 120, 40);
    // Wider without it: the range, with the shorter name.
    assert!(after.contains("Unweighted by t · 0."), "{after}");
    // The axis still runs to T = 1000 (to 160 for the blog's T = 200).
    assert!(
        after.lines().any(|l| l.contains("200   400   600   800")),
        "{after}"
    );
}

/// A run trained to its end goes on where its steps are raised since (instead of space
/// starting the same run again from scratch), and the Progress title says which space does.
#[test]
fn a_finished_run_trains_on_once_its_steps_are_raised() {
    let (mut app, engine) = app();
    load_data(&mut app);
    app.settings.train.steps = 20;
    let dir = std::path::Path::new("runs/20260101-000000-linear");
    start_main_run(&mut app, 20, 20);
    assert_eq!(app.train.space_does(20), Some("pause"));
    feed(
        &mut app,
        Slot::Main,
        vec![finished(20, dir, FinishReason::Steps)],
    );
    assert_eq!(app.train.space_does(20), Some("new run"));
    app.train.field = 7;
    handle_key(&mut app, key(KeyCode::Right));
    let steps = app.settings.train.steps;
    assert!(steps > 20);
    assert_eq!(
        notice(&app).unwrap(),
        format!("space now trains this run on to step {steps}")
    );
    assert_eq!(app.train.space_does(steps), Some("continue"));
    // Back to where it stopped: space starts a new run again, and says so.
    handle_key(&mut app, key(KeyCode::Left));
    assert!(notice(&app)
        .unwrap()
        .starts_with("space now starts a new run"));
    handle_key(&mut app, key(KeyCode::Right));
    handle_key(&mut app, ch(' '));
    let req = engine.calls().into_iter().filter_map(|c| match c {
        Call::Train(Slot::Main, r) => Some(r),
        _ => None,
    });
    let req = req.last().unwrap();
    assert!(req.is_resume() && req.run_dir() == dir, "{req:?}");
}

/// An opened run trains on from its checkpoint: its steps stop short of it, saying why, and
/// Progress counts towards the steps set.
#[test]
fn an_opened_runs_steps_stay_past_its_checkpoint() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let mut theirs = settings().train;
    theirs.steps = 570;
    engine.offer_run("runs/r", theirs, 53);
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(app.train.space_does(570), Some("continue"));
    app.train.field = 7;
    for _ in 0..10 {
        handle_key(&mut app, key(KeyCode::Left));
    }
    assert!(
        app.settings.train.steps > 53,
        "{}",
        app.settings.train.steps
    );
    assert_eq!(
        notice(&app).unwrap(),
        "this run is at step 53: it trains on to a later step (u brings your settings back for a new run)"
    );
}

/// `u` after an opened run was trained on and stopped: the screen shows no run any more, and
/// the last run is read again (as it now stands) to be named there.
#[test]
fn u_after_training_an_opened_run_clears_the_screen() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let mut theirs = settings().train;
    theirs.steps = 40;
    engine.offer_run("runs/old", theirs, 10);
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    handle_key(&mut app, ch(' '));
    feed(
        &mut app,
        Slot::Main,
        vec![finished(12, "runs/old", FinishReason::Stopped)],
    );
    handle_key(&mut app, ch('u'));
    assert_eq!(app.train.run.state, RunState::Idle);
    assert_eq!(app.train.run.run_dir, None);
    assert_eq!(app.train.space_does(40), Some("start"));
    assert!(engine
        .calls()
        .contains(&Call::ReadLastRun("runs/old".into())));
}

/// A setting at the end of what the lab offers says so instead of doing nothing.
#[test]
fn a_setting_at_its_limit_says_so() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    app.train.field = 1;
    app.settings.train.timesteps = 1000;
    handle_key(&mut app, key(KeyCode::Right));
    assert_eq!(
        notice(&app).unwrap(),
        "T 1000: no higher setting in the lab"
    );
}

/// The speed a run trains at becomes the epoch estimate for its settings (a short measurement
/// at another moment said otherwise).
#[test]
fn a_running_runs_speed_is_the_epoch_estimate() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 5, 100);
    assert_eq!(app.train.run.state, RunState::Running);
    let batch = app.settings.train.batch_size;
    let ips = app.train.run.images_per_s(batch).expect("a measured speed");
    let secs = app
        .train
        .epoch_seconds(&app.settings.train, 6000)
        .expect("an estimate");
    assert!(
        (secs - 6000.0 / ips).abs() < 1e-9,
        "{secs} vs {}",
        6000.0 / ips
    );
}
