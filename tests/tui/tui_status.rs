//! Honest status: every message of the status line goes when its cause ends, the speed and ETA
//! are averaged and absent while paused, long work shows its progress, the offline fallback,
//! and the numbers that must agree (epochs of a reopened run, the blog preset's steps).

use crate::tui_support;

use std::time::Duration;

use crossterm::event::KeyCode;
use ddpm_lab::train::events::{FinishReason, TrainEvent};
use ddpm_lab::tui::event::handle_key;
use ddpm_lab::tui::settings::TrainSettings;
use ddpm_lab::tui::state::data::{fallback_notice, DataStatus};
use ddpm_lab::tui::state::notice::{PASSING_ERROR, PASSING_INFO};
use ddpm_lab::tui::state::run::RunState;
use ddpm_lab::tui::state::sample::SampleStatus;
use ddpm_lab::tui::state::{App, Tab};
use ddpm_lab::tui::workers::{DataMsg, RunSummary, SampleMsg, Slot, StopFlag, WorkerMsg};
use tui_support::*;

#[test]
fn starting_goes_once_the_run_trains() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    // The new run by name (space after an opened run may start a new one or continue it).
    let starting = "starting a new run, 20260101-000000-linear…";
    assert_eq!(notice(&app).as_deref(), Some(starting));
    // Minutes of building the model: the message stays while the run starts.
    app.tick(Duration::from_secs(120));
    assert_eq!(notice(&app).as_deref(), Some(starting));
    feed(&mut app, Slot::Main, fake_run(0, 1, 100));
    assert_eq!(notice(&app), None, "the run trains: nothing is starting");
}

#[test]
fn a_dataset_error_goes_when_another_dataset_is_asked_for() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Data;
    handle_key(&mut app, ch('d')); // shapes → fashion_mnist
    assert_eq!(app.data.requested, "fashion_mnist");
    app.handle_msg(WorkerMsg::Data(DataMsg::Failed {
        name: "fashion_mnist".into(),
        message: "the Hub refused it".into(),
    }));
    let text = notice(&app).unwrap();
    assert!(text.starts_with("dataset fashion_mnist:"), "{text}");
    // It stays while it is true, however long…
    app.tick(PASSING_ERROR * 3);
    assert!(notice(&app).is_some());
    // …and goes when the user switches back.
    handle_key(&mut app, ch('D'));
    assert_eq!(app.data.requested, "shapes");
    assert_eq!(notice(&app), None);
    load_data(&mut app);
    assert_eq!(notice(&app), None);
}

#[test]
fn a_retry_clears_the_error_it_retries() {
    let (mut app, _engine) = app();
    app.handle_msg(WorkerMsg::Data(DataMsg::Failed {
        name: "shapes".into(),
        message: "disk full".into(),
    }));
    assert!(notice(&app).is_some());
    app.tab = Tab::Data;
    handle_key(&mut app, ch('r'));
    assert!(matches!(app.data.status, DataStatus::Loading(_)));
    assert_eq!(notice(&app), None);
}

/// An app whose four Compare runs have checkpoints, after `g` on Compare: the slots the engine
/// was asked to sample.
fn compare_sampling() -> (App, Vec<Slot>) {
    compare_sampling_with(|_| {})
}

/// [`compare_sampling`], with `setup` applied to the app before `g`.
fn compare_sampling_with(setup: impl FnOnce(&mut App)) -> (App, Vec<Slot>) {
    let (mut app, engine) = app();
    load_data(&mut app);
    for slot in &mut app.compare.slots {
        slot.run.run_dir = Some(format!("runs/c/{}", slot.schedule.name()).into());
        slot.run.checkpoint_step = Some(20);
    }
    setup(&mut app);
    app.tab = Tab::Compare;
    handle_key(&mut app, ch('g'));
    let slots = engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Sample(s, _) => Some(s),
            _ => None,
        })
        .collect();
    (app, slots)
}

#[test]
fn a_refusal_because_a_run_trains_goes_when_the_run_stops() {
    let (mut app, _) = app();
    load_data(&mut app);
    start_main_run(&mut app, 5, 10);
    handle_key(&mut app, key(KeyCode::Right));
    let refusal = "the configuration is fixed while the run trains";
    assert_eq!(notice(&app).as_deref(), Some(refusal));
    app.tick(PASSING_INFO / 2);
    assert_eq!(notice(&app).as_deref(), Some(refusal), "still training");
    feed(
        &mut app,
        Slot::Main,
        vec![finished(10, "runs/r", FinishReason::Steps)],
    );
    app.tick(Duration::from_millis(1));
    assert_ne!(
        notice(&app).as_deref(),
        Some(refusal),
        "the run has stopped: the configuration can change"
    );
    // While the run trains on, the refusal passes as any error does.
    let (mut app, _) = tui_support::app();
    load_data(&mut app);
    start_main_run(&mut app, 5, 10);
    handle_key(&mut app, key(KeyCode::Right));
    app.tick(PASSING_ERROR);
    assert_eq!(notice(&app), None);
}

#[test]
fn sample_screen_refusals_while_sampling_go_when_it_ends() {
    let (mut app, _) = app();
    load_data(&mut app);
    train_main_run_to_the_end(&mut app, "runs/r");
    app.tab = Tab::Sample;
    let done = |app: &mut App| {
        app.handle_msg(WorkerMsg::Sample {
            slot: Slot::Main,
            msg: SampleMsg::Done(Box::new(frames(4, 10))),
        })
    };
    handle_key(&mut app, ch('g'));
    done(&mut app);
    handle_key(&mut app, ch('g'));
    handle_key(&mut app, ch('g'));
    assert_eq!(
        notice(&app).as_deref(),
        Some("already sampling: g again once it has finished")
    );
    handle_key(&mut app, ch('e'));
    let refusal = "sampling is under way: export once it has finished";
    assert_eq!(notice(&app).as_deref(), Some(refusal));
    app.tick(PASSING_INFO / 2);
    assert_eq!(notice(&app).as_deref(), Some(refusal), "still sampling");
    done(&mut app);
    app.tick(Duration::from_millis(1));
    assert_eq!(notice(&app), None, "sampled: e exports now");
}

/// The stop flags the engine was given with each sampling it was asked for, in order.
fn stop_flags(engine: &FakeEngine) -> Vec<StopFlag> {
    engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Sample(_, req) => Some(req.stop),
            _ => None,
        })
        .collect()
}

#[test]
fn x_stops_a_sampling_and_keeps_the_images_shown_before() {
    let (mut app, engine) = app();
    load_data(&mut app);
    train_main_run_to_the_end(&mut app, "runs/r");
    app.tab = Tab::Sample;
    handle_key(&mut app, ch('x'));
    assert_eq!(
        notice(&app).as_deref(),
        Some("nothing is sampling (x stops a sampling under way)")
    );
    // A first sampling ends; a second, with another seed, is stopped at step 40 of 200.
    handle_key(&mut app, ch('g'));
    let said = notice(&app).unwrap_or_default();
    assert!(
        said.starts_with("sampling ") && said.ends_with("(x stops it)"),
        "the refusal gives way to the sampling: {said}"
    );
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Done(Box::new(frames(4, 10))),
    });
    let first_seed = app.settings.sample.seed;
    handle_key(&mut app, ch('s'));
    handle_key(&mut app, ch('g'));
    let flags = stop_flags(&engine);
    assert_eq!(flags.len(), 2);
    assert!(!flags[1].is_raised());
    handle_key(&mut app, ch('x'));
    assert!(
        flags[1].is_raised(),
        "x raises the flag of the sampling under way"
    );
    assert!(!flags[0].is_raised(), "and no other");
    assert_eq!(notice(&app).as_deref(), Some("stopping the sampling…"));
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Stopped {
            done: 40,
            total: 200,
        },
    });
    assert_eq!(
        app.sample.status,
        SampleStatus::Stopped {
            done: 40,
            total: 200
        }
    );
    assert_eq!(
        notice(&app).as_deref(),
        Some("sampling stopped at step 40 of 200: the images shown are the earlier ones")
    );
    // The earlier images, named with the seed they were drawn with; g and e work again.
    assert_eq!(
        app.sample.frames.as_ref().map(|f| f.len()),
        Some(frames(4, 10).len())
    );
    assert_eq!(
        app.sample.drawn_with.as_ref().map(|s| s.seed),
        Some(first_seed)
    );
    // With their score: it goes with the images.
    let screen = render(&app, 80, 24);
    for said in ["stopped at step 40/200", "shown: ", "quality  "] {
        assert!(screen.contains(said), "{said}:\n{screen}");
    }
    handle_key(&mut app, ch('g'));
    assert_eq!(stop_flags(&engine).len(), 3);
}

#[test]
fn x_on_compare_stops_the_sampling_of_every_run() {
    let (mut app, engine) = app();
    load_data(&mut app);
    for slot in &mut app.compare.slots {
        slot.run.run_dir = Some(format!("runs/c/{}", slot.schedule.name()).into());
        slot.run.checkpoint_step = Some(20);
    }
    app.tab = Tab::Compare;
    handle_key(&mut app, ch('g'));
    let slots: Vec<Slot> = engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Sample(s, _) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(slots.len(), 4);
    let flags = stop_flags(&engine);
    assert!(flags.iter().all(|f| !f.is_raised()));
    handle_key(&mut app, ch('x'));
    assert!(
        flags.iter().all(StopFlag::is_raised),
        "one x stops all four"
    );
    assert_eq!(notice(&app).as_deref(), Some("stopping the sampling…"));
    for (k, slot) in slots.iter().enumerate() {
        app.handle_msg(WorkerMsg::Sample {
            slot: *slot,
            msg: SampleMsg::Stopped {
                done: 10 + k,
                total: 50,
            },
        });
    }
    assert!(!app.compare.sampling());
    assert_eq!(
        notice(&app).as_deref(),
        Some("sampling stopped (g samples again)")
    );
    // The runs were not training: nothing else was stopped.
    assert!(app.compare.slots.iter().all(|s| !s.run.is_active()));
    // Sampled once, then stopped on the next seed: the first samples stay, with their seed.
    handle_key(&mut app, ch('g'));
    for slot in &slots {
        app.handle_msg(WorkerMsg::Sample {
            slot: *slot,
            msg: SampleMsg::Done(Box::new(frames(4, 10))),
        });
    }
    let seed = app.settings.sample.seed;
    assert_eq!(app.compare.drawn_with.as_ref().map(|d| d.seed), Some(seed));
    handle_key(&mut app, ch('s'));
    handle_key(&mut app, ch('g'));
    let during = render(&app, 160, 48);
    // The samplers take turns: those not begun say they wait.
    assert!(during.contains("waiting to sample…"), "{during}");
    handle_key(&mut app, ch('x'));
    for slot in &slots {
        app.handle_msg(WorkerMsg::Sample {
            slot: *slot,
            msg: SampleMsg::Stopped { done: 3, total: 50 },
        });
    }
    assert_eq!(
        notice(&app).as_deref(),
        Some("sampling stopped: the images shown are the earlier ones")
    );
    assert!(app.compare.slots.iter().all(|s| s.frames.is_some()));
    assert_eq!(app.compare.drawn_with.as_ref().map(|d| d.seed), Some(seed));
    let after = render(&app, 160, 48);
    assert!(
        !after.contains("stopped at"),
        "the images, not a note:\n{after}"
    );
    // x with nothing to stop says what it stops.
    handle_key(&mut app, ch('x'));
    assert_eq!(
        notice(&app).as_deref(),
        Some("nothing to stop: no comparison is training, paused or sampling")
    );
}

#[test]
fn s_and_shift_s_step_the_seed_both_ways() {
    let (mut app, _) = app();
    load_data(&mut app);
    for tab in [Tab::Sample, Tab::Compare] {
        app.tab = tab;
        app.settings.sample.seed = 0;
        handle_key(&mut app, ch('S'));
        assert_eq!(app.settings.sample.seed, 0, "{tab:?}: not below 0");
        handle_key(&mut app, ch('s'));
        handle_key(&mut app, ch('s'));
        handle_key(&mut app, ch('S'));
        assert_eq!(app.settings.sample.seed, 1, "{tab:?}");
    }
}

#[test]
fn ddim_steps_on_ddpm_say_that_they_switch_the_sampler() {
    let (mut app, _) = app();
    load_data(&mut app);
    app.tab = Tab::Sample;
    app.settings.sample.ddim = false;
    let steps = app.settings.sample.ddim_steps;
    handle_key(&mut app, ch('['));
    assert!(app.settings.sample.ddim);
    assert_eq!(
        app.settings.sample.ddim_steps, steps,
        "switched, not changed"
    );
    assert_eq!(
        notice(&app),
        Some(format!(
            "sampler DDIM {steps} steps (DDPM takes all T steps; k switches back)"
        ))
    );
    handle_key(&mut app, ch('['));
    assert!(
        app.settings.sample.ddim_steps < steps,
        "on DDIM, [ takes fewer"
    );
}

#[test]
fn n_changes_the_ddim_eta_which_names_the_samples_and_their_export() {
    let (mut app, engine) = app();
    load_data(&mut app);
    train_main_run_to_the_end(&mut app, "runs/r");
    app.tab = Tab::Sample;
    app.settings.sample.ddim = false;
    app.settings.sample.eta = 0.0;
    // On DDPM the key switches, as [ and ] do.
    handle_key(&mut app, ch('n'));
    assert!(app.settings.sample.ddim);
    assert_eq!(app.settings.sample.eta, 0.0, "switched, not changed");
    let steps = app.settings.sample.ddim_steps;
    assert_eq!(
        notice(&app),
        Some(format!(
            "sampler DDIM {steps} steps, η = 0 (DDPM has no η; k switches back)"
        ))
    );
    handle_key(&mut app, ch('n'));
    handle_key(&mut app, ch('n'));
    handle_key(&mut app, ch('N'));
    assert_eq!(app.settings.sample.eta, 0.2);
    let screen = render(&app, 80, 24);
    // On one row with its keys (the `n` used to wrap alone onto the next).
    assert!(
        screen.contains(&format!("DDIM {steps} η=0.2  k [ ] n")),
        "{screen}"
    );
    // The samples drawn with it say so, and their files are named with it.
    handle_key(&mut app, ch('g'));
    let eta = engine.calls().into_iter().rev().find_map(|c| match c {
        Call::Sample(_, req) => Some(req.settings.eta),
        _ => None,
    });
    assert_eq!(eta, Some(0.2));
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Done(Box::new(frames(4, 10))),
    });
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains(&format!("DDIM {steps} η=0.2 · seed")),
        "{screen}"
    );
    handle_key(&mut app, ch('e'));
    let stem = engine.calls().into_iter().find_map(|c| match c {
        Call::Export(_, stem) => Some(stem),
        _ => None,
    });
    assert_eq!(stem, Some(format!("samples-ddim{steps}-eta0.2-seed0-n4")));
}

#[test]
fn exported_files_are_named_whole_under_their_folder_at_80x24() {
    let (mut app, _) = app();
    load_data(&mut app);
    app.tab = Tab::Sample;
    let dir = "/home/someone/experiments/ddpm/runs/20261206-082159-cosine/exports";
    let names = [
        "samples-step570-ddim50-seed0-n16.png",
        "samples-step570-ddim50-seed0-n16.gif",
    ];
    app.handle_msg(WorkerMsg::Exported(Ok(names
        .iter()
        .map(|n| format!("{dir}/{n}").into())
        .collect())));
    let screen = render(&app, 80, 24);
    for name in names {
        assert!(screen.contains(name), "{name}:\n{screen}");
    }
    assert!(screen.contains("cosine/exports/"), "{screen}");
    // The status line says the shared stem once, so the GIF is not cut off.
    let said = notice(&app).unwrap();
    assert!(said.ends_with("seed0-n16.png and .gif"), "{said}");
}

#[test]
fn a_run_the_budget_ended_says_so_and_only_asked_checkpoints_are_announced() {
    let (mut app, _) = app();
    load_data(&mut app);
    start_main_run(&mut app, 5, 100);
    let run = std::path::PathBuf::from("runs/r");
    // A checkpoint of the two-minute rhythm: the Progress box says it, the status line not.
    feed(
        &mut app,
        Slot::Main,
        vec![TrainEvent::Checkpointed {
            step: 5,
            path: run.join("checkpoints/step-000005"),
        }],
    );
    assert_eq!(notice(&app), None);
    handle_key(&mut app, ch('c'));
    feed(
        &mut app,
        Slot::Main,
        vec![TrainEvent::Checkpointed {
            step: 6,
            path: run.join("checkpoints/step-000006"),
        }],
    );
    assert_eq!(notice(&app).as_deref(), Some("checkpoint saved at step 6"));
    // The worker ended it at step 8 of 100: the budget.
    feed(
        &mut app,
        Slot::Main,
        vec![finished(8, run.clone(), FinishReason::TimeLimit)],
    );
    assert_eq!(
        notice(&app).as_deref(),
        Some("the training budget is spent at step 8 of 100: space trains it on")
    );
    // Stopped with x: no budget to speak of.
    let (mut app, _) = tui_support::app();
    load_data(&mut app);
    start_main_run(&mut app, 5, 100);
    handle_key(&mut app, ch('x'));
    feed(
        &mut app,
        Slot::Main,
        vec![finished(5, run, FinishReason::Stopped)],
    );
    assert!(
        !notice(&app).unwrap_or_default().contains("budget"),
        "{:?}",
        notice(&app)
    );
}

/// A run opened from disk brings its preview scores and its last preview: the preview panel
/// shows the images under the last score with its trend, or the score alone where the run
/// holds no images.
#[test]
fn an_opened_run_shows_its_preview_scores() {
    let (mut app, engine) = app();
    load_data(&mut app);
    engine.offer_run("runs/old", settings().train, 40);
    let score = |recognised: f64| ddpm_lab::eval::Quality {
        n: 64,
        frechet: Some(41.5),
        recognised,
        class_fractions: vec![0.1; 10],
        mean_confidence: 0.7,
    };
    engine.0.lock().unwrap().opened.as_mut().unwrap().quality =
        vec![(25, score(0.12)), (50, score(0.35)), (100, score(0.52))];
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(app.train.run.quality.len(), 3);
    let screen = render(&app, 160, 48);
    assert!(
        screen.contains("scored at step 100: 52% recognised (12→35→52) · FD 41.5"),
        "{screen}"
    );
    assert!(
        screen.contains("the run holds no preview images"),
        "{screen}"
    );
    // With its last preview on disk.
    let images = frames(4, 1).frames[0].clone();
    engine.0.lock().unwrap().opened.as_mut().unwrap().preview = Some((100, images.clone()));
    open_from_picker(&mut app);
    assert_eq!(app.train.run.preview, Some((100, images)));
    let screen = render(&app, 160, 48);
    assert!(
        screen.contains("Samples at step 100 · 52% recognised (12→35→52) · FD 41.5"),
        "{screen}"
    );
    assert!(!screen.contains("no preview images"), "{screen}");
    // At 120×40 with 64 previews, too narrow for the score and the note on what is shown: the
    // score stays.
    let many = frames(64, 1).frames[0].clone();
    engine.0.lock().unwrap().opened.as_mut().unwrap().preview = Some((100, many));
    open_from_picker(&mut app);
    let screen = render(&app, 120, 40);
    assert!(screen.contains("step 100 · 52% recognised"), "{screen}");
}

/// Where the budget ends the run before its stop step, the ETA says so, and where the line has
/// room, near which step.
#[test]
fn the_eta_says_where_the_budget_ends_the_run() {
    let (mut app, _) = app();
    load_data(&mut app);
    app.settings.train.time_limit_s = Some(120.0);
    start_main_run(&mut app, 30, 5000);
    // 10 steps a second (0.1 s each); 110 s of this session's budget gone: 10 s left.
    app.tick(Duration::from_secs(110));
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = render(&app, w, h);
        for said in ["ETA 10s (budget)", "budget   ends near step 130 of 5000"] {
            assert!(screen.contains(said), "{w}×{h}: {said}:\n{screen}");
        }
    }
}

#[test]
fn compare_frames_say_the_seed_they_were_drawn_with() {
    let (mut app, slots) = compare_sampling();
    let seed = app.settings.sample.seed;
    for slot in &slots {
        app.handle_msg(WorkerMsg::Sample {
            slot: *slot,
            msg: SampleMsg::Done(Box::new(frames(2, 4))),
        });
    }
    let frame_bar = |app: &App| {
        render(app, 80, 24)
            .lines()
            .find(|l| l.contains("frames"))
            .unwrap_or_default()
            .to_string()
    };
    let drawn = format!("seed {seed}");
    assert!(frame_bar(&app).contains(&drawn), "{}", frame_bar(&app));
    // A new seed is for the next `g`: the frames shown keep theirs.
    handle_key(&mut app, ch('s'));
    assert!(frame_bar(&app).contains(&drawn), "{}", frame_bar(&app));
    handle_key(&mut app, ch('g'));
    for slot in &slots {
        app.handle_msg(WorkerMsg::Sample {
            slot: *slot,
            msg: SampleMsg::Done(Box::new(frames(2, 4))),
        });
    }
    let redrawn = format!("seed {}", seed + 1);
    assert!(frame_bar(&app).contains(&redrawn), "{}", frame_bar(&app));
}

/// A run opened while the lab holds another dataset counts its epochs once its own is loaded
/// (they stayed unknown: `epoch 1 0%` at the run's last step).
#[test]
fn a_run_on_another_dataset_counts_its_epochs_once_that_is_loaded() {
    let (mut app, engine) = app();
    app.settings.dataset = "fashion_mnist".into();
    let mut saved = settings().train;
    saved.batch_size = 128;
    saved.steps = 100;
    // 40 steps: its history never crosses an epoch's end.
    engine.offer_run("runs/20260101-000000-linear", saved, 40);
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    assert_eq!(
        app.settings.dataset, "shapes",
        "its own data is being loaded"
    );
    assert_eq!(app.train.run.steps_per_epoch, 0);
    load_data(&mut app);
    // 6000 images, 128 a batch.
    assert_eq!(app.train.run.steps_per_epoch, 47);
    assert_eq!(app.train.run.epoch_progress(), Some((0, 40.0 / 47.0)));
}

#[test]
fn compare_sampling_message_goes_when_the_last_run_is_sampled() {
    let (mut app, slots) = compare_sampling();
    assert_eq!(
        notice(&app).as_deref(),
        Some("sampling every schedule from the same noise…")
    );
    assert_eq!(slots.len(), 4);
    for (k, slot) in slots.iter().enumerate() {
        app.tick(PASSING_INFO * 2);
        assert!(notice(&app).is_some(), "still sampling after {k} of 4");
        app.handle_msg(WorkerMsg::Sample {
            slot: *slot,
            msg: SampleMsg::Done(Box::new(frames(1, 4))),
        });
    }
    assert_eq!(notice(&app), None, "sampling ended");
}

#[test]
fn compare_sampling_says_how_far_the_slowest_schedule_is() {
    let (mut app, slots) = compare_sampling();
    // Nothing reported yet: no step count.
    let screen = render(&app, 120, 40);
    assert!(screen.contains("from the same noise…"), "{screen}");
    assert!(!screen.contains("step 0/"), "{screen}");
    for (slot, done) in slots.iter().zip([150, 40, 90, 200]) {
        app.handle_msg(WorkerMsg::Sample {
            slot: *slot,
            msg: SampleMsg::Progress { done, total: 200 },
        });
    }
    let screen = render(&app, 120, 40);
    assert!(
        screen.contains("sampling every schedule from the same noise… step 40/200"),
        "{screen}"
    );
}

#[test]
fn passing_messages_pass() {
    let (mut app, _engine) = app();
    app.tab = Tab::Train;
    handle_key(&mut app, ch('c')); // no run: an error that passes
    assert_eq!(notice(&app).as_deref(), Some("no run is training"));
    app.tick(PASSING_INFO);
    assert!(notice(&app).is_some(), "errors stay longer than news");
    app.tick(PASSING_ERROR);
    assert_eq!(notice(&app), None);
}

#[test]
fn paused_runs_show_no_speed_and_the_eta_is_steady() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    let batch = app.settings.train.batch_size;
    // Step times that alternate between 0.05 s and 0.5 s (a busy machine): one step's own speed
    // would swing the ETA tenfold from one step to the next.
    let mut events = fake_run(0, 0, 1000);
    let mut elapsed = 0.0;
    for i in 1..=300 {
        elapsed += if i % 2 == 0 { 0.05 } else { 0.5 };
        let mut s = stats(i);
        s.elapsed_s = elapsed;
        s.images_per_s = batch as f64 / if i % 2 == 0 { 0.05 } else { 0.5 };
        events.push(TrainEvent::Step(s));
    }
    let mut etas = Vec::new();
    for e in events {
        app.handle_msg(WorkerMsg::Train {
            slot: Slot::Main,
            event: e,
        });
        if app.train.run.step() > 100 {
            etas.push(app.train.run.eta_s(batch).unwrap());
        }
    }
    for w in etas.windows(2) {
        assert!(
            w[1] <= w[0] * 1.15 && w[1] >= w[0] * 0.85,
            "the ETA swings: {w:?}"
        );
    }
    // 700 steps left at 0.275 s a step.
    let eta = *etas.last().unwrap();
    assert!((eta - 700.0 * 0.275).abs() < 5.0, "{eta}");
    let screen = render(&app, 160, 48);
    assert!(screen.contains("img/s"), "{screen}");
    feed(&mut app, Slot::Main, vec![TrainEvent::Paused { step: 300 }]);
    assert_eq!(app.train.run.eta_s(batch), None);
    assert_eq!(app.train.run.images_per_s(batch), None);
    let screen = render(&app, 160, 48);
    assert!(
        !screen.contains("img/s"),
        "no stale speed while paused:\n{screen}"
    );
    assert!(screen.contains("paused"), "{screen}");
}

#[test]
fn sampling_shows_its_step_time_left_and_the_images_being_denoised() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.sample.source = Some("runs/x".into());
    app.tab = Tab::Sample;
    handle_key(&mut app, ch('g'));
    assert!(matches!(app.sample.status, SampleStatus::Running { .. }));
    app.tick(Duration::from_secs(10));
    let images = frames(4, 2).frames[1].clone();
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Denoising {
            done: 50,
            total: 200,
            images,
        },
    });
    assert_eq!(app.sample.time_left_s(), Some(30.0));
    let screen = render(&app, 160, 48);
    assert!(screen.contains("step 50/200"), "{screen}");
    assert!(screen.contains("30s left"), "{screen}");
    assert!(screen.contains("denoising step 50/200"), "{screen}");
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Done(Box::new(frames(4, 10))),
    });
    assert!(app.sample.current.is_none());
    assert_eq!(app.sample.time_left_s(), None);
}

/// Starts `app` asking for Fashion-MNIST, which the Hub cannot give: the built-in shapes set
/// stands in.
fn fall_back_to_shapes(app: &mut App) {
    app.settings.dataset = "fashion_mnist".into();
    app.start();
    let mut info = data_info();
    info.name = "shapes".into();
    app.handle_msg(WorkerMsg::Data(DataMsg::FellBack {
        name: "fashion_mnist".into(),
        reason: "cannot download zalando-datasets/fashion_mnist: connection refused".into(),
        info: Box::new(info),
    }));
}

/// Offline, the notice points at the user's folder where the lab knows one (d picks it),
/// else at the flag that opens one.
#[test]
fn without_the_hub_the_notice_says_how_to_train_on_a_local_copy() {
    let (mut lab, _engine) = app();
    fall_back_to_shapes(&mut lab);
    let said = notice(&lab).unwrap_or_default();
    assert!(
        said.ends_with("your copy: ddpm-lab --dataset DIR"),
        "{said}"
    );
    let (mut app, _engine) = app();
    app.settings.own_dataset = Some("/data/fashion".into());
    fall_back_to_shapes(&mut app);
    let said = notice(&app).unwrap_or_default();
    assert!(said.ends_with("d picks your folder"), "{said}");
    assert!(said.chars().count() <= 80, "{said}");
}

#[test]
fn without_the_hub_the_builtin_set_stands_in_until_a_retry_succeeds() {
    let (mut app, engine) = app();
    fall_back_to_shapes(&mut app);
    assert!(app.data.ready());
    assert_eq!(
        notice(&app).as_deref(),
        Some(fallback_notice(None).as_str())
    );
    assert_eq!(app.data.label(), "shapes (no fashion_mnist: offline)");
    assert_eq!(
        app.settings.dataset, "fashion_mnist",
        "remembered for next time"
    );
    // Space trains at once, on the built-in set.
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    let req = engine
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::Train(Slot::Main, r) => Some(r),
            _ => None,
        })
        .expect("training starts");
    assert_eq!(req.dataset(), "shapes");
    feed(&mut app, Slot::Main, fake_run(0, 3, 3));
    feed(
        &mut app,
        Slot::Main,
        vec![finished(3, "runs/x", FinishReason::Steps)],
    );
    // r retries the download; the notice goes with the fallback, and a success switches.
    app.tab = Tab::Data;
    handle_key(&mut app, ch('r'));
    assert_eq!(
        engine.calls().last(),
        Some(&Call::Load("fashion_mnist".into()))
    );
    assert_eq!(notice(&app), None);
    let mut fashion = data_info();
    fashion.name = "fashion_mnist".into();
    app.handle_msg(WorkerMsg::Data(DataMsg::Ready(Box::new(fashion))));
    assert!(app.data.ready() && app.data.fallback.is_none());
    assert_eq!(app.data.label(), "fashion_mnist");
    assert_eq!(app.train_dataset(), "fashion_mnist");
}

#[test]
fn the_blog_preset_is_five_epochs_of_the_loaded_data() {
    let (mut app, _engine) = app();
    load_data(&mut app); // 6 000 images: 47 batches of 128
    app.tab = Tab::Train;
    handle_key(&mut app, ch('b'));
    assert_eq!(app.settings.train.steps, 5 * 47);
    assert_eq!(app.settings.train.preview_every, 47);
    let text = notice(&app).unwrap();
    assert!(
        text.contains("5 epochs of these 6000 images = 235 steps"),
        "{text}"
    );
}

#[test]
fn a_reopened_run_counts_epochs_as_it_did_while_training() {
    let (mut app, engine) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    // Trained here: 50 steps an epoch (the worker says so), stopped at step 120 of 1000.
    feed(&mut app, Slot::Main, fake_run(0, 120, 1000));
    let training = (
        app.train.run.steps_per_epoch,
        app.train.run.epoch_progress(),
        app.train.run.total_steps,
    );
    assert_eq!(training.0, 50);
    // Reopened from disk at the same step: the same epoch and the same number of epochs.
    let mut saved = settings().train;
    saved.steps = 1000;
    let dir = engine
        .offer_run("runs/20260101-000000-linear", saved, 120)
        .dir;
    feed(
        &mut app,
        Slot::Main,
        vec![finished(120, dir.clone(), FinishReason::Steps)],
    );
    open_from_picker(&mut app);
    let reopened = (
        app.train.run.steps_per_epoch,
        app.train.run.epoch_progress(),
        app.train.run.total_steps,
    );
    assert_eq!(reopened, training);
    // Also from a history that starts mid-run (a run resumed after its metrics were cut).
    let mut r = ddpm_lab::tui::state::run::RunProgress::default();
    r.load_history(&(77..=120).map(stats).collect::<Vec<_>>());
    assert_eq!(r.steps_per_epoch, 50);
}

/// Compare's sample panels say which checkpoint they were drawn from where they have room
/// (training may have gone on since).
#[test]
fn compare_samples_name_their_checkpoint_step_where_they_fit() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Compare;
    for slot in &mut app.compare.slots {
        slot.frames = Some(ddpm_lab::tui::workers::Frames {
            step: Some(20),
            quality: Err("not scored".into()),
            ..frames(3, 3)
        });
    }
    let wide = render(&app, 160, 48);
    assert!(wide.contains("linear  t = 3 · step 20"), "{wide}");
    let narrow = render(&app, 80, 24);
    assert!(narrow.contains("linear t=3"), "{narrow}");
}

/// The status bar gives the parameters of the run training, not of an ended run whose model
/// the settings no longer name.
#[test]
fn the_status_bar_names_parameters_only_of_the_model_the_settings_name() {
    let (mut app, _) = app();
    load_data(&mut app);
    let status = |app: &App| status_bar(app, 160, 40);
    start_main_run(&mut app, 3, 10);
    assert!(
        status(&app).contains("model quick (123.5k)"),
        "{}",
        status(&app)
    );
    feed(
        &mut app,
        Slot::Main,
        vec![finished(10, "runs/r", FinishReason::Steps)],
    );
    handle_key(&mut app, ch('b'));
    let after = status(&app);
    assert!(
        after.contains("model blog") && !after.contains("123.5k"),
        "{after}"
    );
}

/// A binary built for the CPU alone offers no GPU to train on (it offered cuda, which then
/// failed to start), and says how to build one that does.
#[test]
fn the_device_setting_offers_what_the_binary_is_built_for() {
    use ddpm_lab::device::DeviceSpec;
    use ddpm_lab::tui::state::train::Field;
    let (mut app, _) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    app.train.field = Field::ALL.iter().position(|f| *f == Field::Device).unwrap();
    handle_key(&mut app, key(KeyCode::Right));
    let built = DeviceSpec::built_for();
    assert_eq!(app.settings.train.device, built[1 % built.len()]);
    if built.len() == 1 {
        assert!(
            notice(&app)
                .unwrap_or_default()
                .contains("runs on the CPU only"),
            "{:?}",
            notice(&app)
        );
    }
}

/// A dataset given as a long path is shortened in the status bar; the device stays on it.
#[test]
fn a_long_dataset_path_leaves_the_device_on_the_status_bar() {
    let (mut app, _) = app();
    load_data(&mut app);
    app.data.requested = "/home/someone/datasets/fashion-mnist-idx-files".into();
    let status = status_bar(&app, 80, 24);
    assert!(status.contains("device cpu"), "{status}");
    assert!(
        status.contains("…") && status.contains("idx-files"),
        "{status}"
    );
    // While a run trains its progress takes room too: the path gets shorter still (to its
    // last component, cut in the middle where even that is too long), and the device and the
    // model stay.
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, fake_run(0, 120, 2000));
    for (path, shown) in [
        (
            "/home/someone/datasets/fashion-mnist",
            "data …/fashion-mnist │",
        ),
        (
            "/home/someone/datasets/fashion-mnist-idx-files",
            "data fashi…-idx-files │",
        ),
    ] {
        app.data.requested = path.into();
        let status = status_bar(&app, 80, 24);
        let first = status.lines().next().unwrap();
        assert!(
            first.contains("device cpu │")
                && first.contains(shown)
                && first.contains("│ model quick")
                && first.contains("│ run running 120/2000"),
            "{status}"
        );
    }
    // With a comparison training too, the device and then the model give way, and the path
    // gets the room back (it was left cut to 12 columns in the middle of its name).
    app.data.requested = "/home/someone/datasets/fashion-mnist".into();
    app.compare.active = Some(0);
    app.compare.slots[0].run.state = RunState::Running;
    let status = status_bar(&app, 80, 24);
    let first = status.lines().next().unwrap();
    assert!(
        first.contains("/fashion-mnist │")
            && !first.contains("fas…")
            && first.contains("compare training"),
        "{status}"
    );
}

#[test]
fn the_session_runs_are_what_the_exit_message_names() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    assert!(app.session_runs().is_empty());
    train_main_run_to_the_end(&mut app, "runs/done");
    assert_eq!(
        app.session_runs(),
        vec![std::path::PathBuf::from("runs/done")]
    );
    // The message reads the runs on disk: a directory that holds no run is left out.
    assert!(ddpm_lab::tui::lab::exit_message(&app.session_runs()).is_empty());
    // A second run of the Train screen: both are named, and the latest is the one the next
    // start names.
    train_main_run_to_the_end(&mut app, "runs/again");
    assert_eq!(
        app.session_runs(),
        vec![
            std::path::PathBuf::from("runs/done"),
            std::path::PathBuf::from("runs/again")
        ]
    );
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        app.settings_to_keep().last_run,
        Some(cwd.join("runs/again"))
    );
}

/// The run a session trained is remembered (absolute, wherever the next start is from), and
/// A lab killed outright (no quit, no save on exit) still names its last run at the next
/// start: the settings are saved as soon as a run has its first checkpoint.
#[test]
fn the_run_to_name_next_is_saved_once_it_has_a_checkpoint() {
    let (mut app, _engine) = app();
    let config = tempfile::tempdir().unwrap();
    app.autosave =
        Some(ddpm_lab::tui::autosave::SettingsSaver::start(config.path().to_path_buf()).unwrap());
    load_data(&mut app);
    start_main_run(&mut app, 5, 20);
    assert!(
        !config.path().join("settings.json").exists(),
        "no checkpoint yet"
    );
    let dir = std::path::PathBuf::from("runs/20261207-040000-cosine");
    app.sender()
        .send(WorkerMsg::Train {
            slot: Slot::Main,
            event: TrainEvent::Checkpointed {
                step: 5,
                path: dir.join("checkpoints/step-000005"),
            },
        })
        .unwrap();
    app.pump();
    // The saver's thread writes it (finish waits for it, as the lab's exit does).
    app.autosave.take().unwrap().finish();
    let saved = ddpm_lab::tui::settings::LabSettings::load_from(config.path()).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(saved.last_run, Some(cwd.join(&dir)));
}

/// the next session's Train screen names it, with where it stands and how to open it, until a
/// run takes its place.
#[test]
fn the_next_start_names_the_run_the_last_session_left() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    assert_eq!(app.settings_to_keep().last_run, None, "nothing trained yet");
    train_main_run_to_the_end(&mut app, "runs/20261206-082159-cosine");
    let cwd = std::env::current_dir().unwrap();
    let kept = app.settings_to_keep().last_run.unwrap();
    assert_eq!(kept, cwd.join("runs/20261206-082159-cosine"));

    let start_with = |last: &std::path::Path, listed: Vec<RunSummary>| {
        let engine = FakeEngine::default();
        engine.0.lock().unwrap().runs = listed;
        let mut settings = settings();
        settings.last_run = Some(last.to_path_buf());
        let mut app = App::new(settings, Box::new(engine.clone()));
        app.start();
        app.pump();
        load_data(&mut app);
        app.tab = Tab::Train;
        app
    };
    let summary = |dir: &std::path::Path, step: usize| RunSummary {
        dir: dir.to_path_buf(),
        settings: Some(TrainSettings {
            steps: 570,
            ..TrainSettings::default()
        }),
        dataset: Some("shapes".into()),
        step,
        held_by: None,
        unsaved: false,
        problem: None,
    };
    let mut app = start_with(&kept, vec![summary(&kept, 222)]);
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = render(&app, w, h);
        for said in [
            "last run 20261206-082159-cosine",
            "stopped at step 222 of 570 · o opens it",
        ] {
            assert!(screen.contains(said), "{w}×{h}: {said}:\n{screen}");
        }
    }
    insta::assert_snapshot!("last_run_80x24", render(&app, 80, 24));
    // Once a run trains, its curve takes the place.
    start_main_run(&mut app, 3, 10);
    assert!(!render(&app, 160, 48).contains("last run:"));
    // Finished; in another runs folder; gone from disk.
    let app = start_with(&kept, vec![summary(&kept, 570)]);
    assert!(render(&app, 160, 48).contains("finished at step 570 · o opens it"));
    let elsewhere = std::path::Path::new("/elsewhere/runs/20261206-082159-cosine");
    let app = start_with(elsewhere, vec![summary(elsewhere, 222)]);
    // The command comes first: at 80×24 as well, where the box has room for one line of it.
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = render(&app, w, h);
        for said in [
            "last run 20261206-082159-cosine",
            "ddpm-lab --runs-dir /elsewhere/runs ",
        ] {
            assert!(screen.contains(said), "{w}×{h}: {said}:\n{screen}");
        }
    }
    let app = start_with(&kept, Vec::new());
    assert!(!render(&app, 160, 48).contains("last run"));
}

/// On a GPU the status bar names it and its memory where the line has room; where it has not,
/// the device keeps its short name before anything else gives way.
#[test]
fn the_status_bar_names_the_gpu_where_it_fits() {
    use ddpm_lab::device::DeviceSpec;
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.settings.train.device = DeviceSpec::Cuda(0);
    app.device_names = vec![(DeviceSpec::Cuda(0), "NVIDIA H200 · 140 GiB".into())];
    let status = status_bar;
    let wide = status(&app, 160, 40);
    assert!(
        wide.contains("device cuda · NVIDIA H200 · 140 GiB"),
        "{wide}"
    );
    let narrow = status(&app, 80, 24);
    assert!(narrow.contains("device cuda │"), "{narrow}");
    assert!(!narrow.contains("H200"), "{narrow}");
    // On the CPU (or another GPU than the one described) there is nothing to add.
    app.settings.train.device = DeviceSpec::Cuda(1);
    assert!(!status(&app, 160, 40).contains("H200"));
}

#[test]
fn the_stand_in_notice_gives_the_status_line_back_to_the_keys_after_a_while() {
    let (mut app, _engine) = app();
    fall_back_to_shapes(&mut app);
    app.tick(Duration::from_secs(20));
    assert_eq!(
        notice(&app).as_deref(),
        Some(fallback_notice(None).as_str())
    );
    app.tick(Duration::from_secs(15));
    assert_eq!(notice(&app), None);
    let screen = render(&app, 80, 24);
    assert!(screen.contains("keys: "), "{screen}");
    // The status bar still says which set stands in, and why.
    assert!(screen.contains("no fashion_mnist: offline"), "{screen}");
    // A set that failed to load, with nothing standing in, stays said.
    app.handle_msg(WorkerMsg::Data(DataMsg::Failed {
        name: "fashion_mnist".into(),
        message: "no such file".into(),
    }));
    app.tick(Duration::from_secs(120));
    assert!(notice(&app).unwrap().contains("no such file"));
}

/// What was wrong with the settings file stays said when a stand-in set comes in (the status
/// bar says which set stands in); a set that fails to load cuts in.
#[test]
fn the_settings_files_problems_stay_said_over_a_stand_in_notice() {
    use ddpm_lab::tui::state::notice::{Notice, Topic};
    let (mut app, _engine) = app();
    app.show(Notice::new("settings: settings.json is not valid", true).about(Topic::Sticky));
    fall_back_to_shapes(&mut app);
    assert_eq!(
        notice(&app).as_deref(),
        Some("settings: settings.json is not valid")
    );
    app.handle_msg(WorkerMsg::Data(DataMsg::Failed {
        name: "fashion_mnist".into(),
        message: "no such file".into(),
    }));
    assert!(notice(&app).unwrap().contains("no such file"));
}

/// A key read after the stand-in notice has been up a while gives the line back to the keys
/// (the status bar and the Data screen keep saying which set stands in).
#[test]
fn a_key_gives_the_stand_in_notices_line_back() {
    let (mut app, _engine) = app();
    fall_back_to_shapes(&mut app);
    app.tab = Tab::Schedules;
    handle_key(&mut app, key(KeyCode::Right));
    assert_eq!(
        notice(&app).as_deref(),
        Some(fallback_notice(None).as_str()),
        "not before it could be read"
    );
    app.tick(Duration::from_secs(3));
    handle_key(&mut app, key(KeyCode::Right));
    assert_eq!(notice(&app), None);
}

/// A paused comparison says so of each of its runs, and while `x` saves them, that it stops.
#[test]
fn a_paused_comparisons_runs_read_paused() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    app.tab = Tab::Compare;
    handle_key(&mut app, ch(' '));
    app.compare.active = Some(0);
    app.compare.slots[0].run.state = RunState::Running;
    app.compare.slots[1].run.state = RunState::Paused;
    app.compare.slots[2].run.state = RunState::Running;
    app.compare.paused = true;
    let screen = render(&app, 80, 24);
    let row = |name: &str| {
        screen
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row("linear").contains("pausing"), "{screen}");
    assert!(row("quadratic").contains("paused"), "{screen}");
    assert!(row("cosine").contains("paused"), "{screen}");
    assert!(!screen.contains("running"), "{screen}");
    assert!(screen.contains("paused: space resumes"), "{screen}");
    app.compare.slots[0].run.state = RunState::Stopping;
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("stopping: writing the checkpoints"),
        "{screen}"
    );
}

/// Compare's samples are labelled with the steps DDIM ran: at most the runs' T.
#[test]
fn compare_samples_name_the_ddim_steps_that_ran() {
    let (mut app, slots) = compare_sampling_with(|app| {
        app.settings.sample.ddim = true;
        app.settings.sample.ddim_steps = 50;
        for slot in &mut app.compare.slots {
            slot.run.timesteps = Some(20);
        }
    });
    for slot in &slots {
        app.handle_msg(WorkerMsg::Sample {
            slot: *slot,
            msg: SampleMsg::Done(Box::new(frames(4, 10))),
        });
    }
    assert_eq!(
        app.compare.drawn_with.as_ref().map(|d| d.ddim_steps),
        Some(20)
    );
}

/// The lab makes each new run's folder as it names it, so that a `train` started in the same
/// second (which claims its folder the same way) takes another name rather than this one.
#[test]
fn the_lab_claims_each_new_run_folder_as_it_names_it() {
    let root = tempfile::tempdir().unwrap();
    let mut lab = App::new(settings(), Box::new(FakeEngine::default()));
    let first = (lab.make_run_dir)(root.path(), "linear");
    let taken = ddpm_lab::store::RunDir::claim_fresh(root.path(), "linear").unwrap();
    let next = (lab.make_run_dir)(root.path(), "linear");
    assert!(first.is_dir() && next.is_dir());
    assert!(first != taken && next != taken && first != next);
}
