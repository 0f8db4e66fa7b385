//! Snapshot tests of every screen and window at the advertised minimum (80×24) and at 160×48,
//! drawn with ratatui's TestBackend from synthetic worker messages (a fake dataset, a fake
//! training run, fake denoising frames, fake runs on disk). At 80×24 the numbers a screen is
//! for are asserted on screen: ETA and elapsed, all ten label counts, all four ᾱ_T.

use crate::tui_support;

use crossterm::event::KeyCode;
use ddpm_lab::diffusion::{LossKind, Objective};
use ddpm_lab::eval::Quality;
use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};
use ddpm_lab::train::events::{FinishReason, TrainEvent};
use ddpm_lab::tui::event::{handle_key, handle_key_in_small_terminal};
use ddpm_lab::tui::settings::TrainSettings;
use ddpm_lab::tui::state::{App, Overlay, Tab};
use ddpm_lab::tui::workers::{
    DataMsg, LoadStage, RunRecord, RunSummary, SampleMsg, Slot, WorkerMsg,
};
use std::path::Path;
use tui_support::*;

/// The advertised minimum and a roomy terminal.
const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

/// Renders at both sizes and snapshots each as `{name}_{w}x{h}`; returns the 80×24 screen.
fn snap_both(app: &App, name: &str) -> String {
    let mut small = String::new();
    for (w, h) in SIZES {
        let screen = render(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen);
        if w == 80 {
            small = screen;
        }
    }
    small
}

#[test]
fn data_screen_while_downloading() {
    let (mut app, _) = app();
    app.handle_msg(WorkerMsg::Data(DataMsg::Progress {
        name: "shapes".into(),
        stage: LoadStage::Downloading {
            file: "train-00000-of-00001.parquet".into(),
            done: 12_500_000,
            total: Some(30_900_000),
            bytes_per_s: 4_200_000.0,
        },
    }));
    let screen = snap_both(&app, "data_downloading");
    assert!(screen.contains("12.5 MB / 30.9 MB · 4.2 MB/s"), "{screen}");
}

#[test]
fn data_screen_shows_all_ten_label_counts_at_80x24() {
    let (mut app, _) = app();
    app.data.requested = "fashion_mnist".into();
    app.handle_msg(WorkerMsg::Data(DataMsg::Ready(Box::new(data_info_ten()))));
    let screen = snap_both(&app, "data_ready");
    for count in ten_counts() {
        assert!(screen.contains(&format!(" {count}")), "{count}:\n{screen}");
    }
    for name in ["T-shirt/top", "Ankle boot"] {
        assert!(screen.contains(name), "{name}:\n{screen}");
    }
    assert!(screen.contains("60000 images · test 10000"), "{screen}");
    // Four examples at half size (one 1:1 example would not fit four), and the title says so.
    assert!(screen.contains("Examples · ½ scale"), "{screen}");
    let big = render(&app, 160, 48);
    assert!(big.contains("Examples · 28×28 px"), "1:1 at 160×48:\n{big}");
}

#[test]
fn schedules_screen_shows_every_final_alpha_bar_at_80x24() {
    let (mut app, _) = app();
    load_data(&mut app);
    handle_key(&mut app, ch('2'));
    for _ in 0..20 {
        handle_key(&mut app, key(KeyCode::Right));
    }
    let screen = snap_both(&app, "schedules");
    assert!(screen.contains("t = 120"), "{screen}");
    assert!(screen.contains("x_T=0.36·x₀+0.93·ε"), "{screen}");
    let big = render(&app, 160, 48);
    for s in BetaSchedule::ALL {
        let tab = ScheduleTables::new(s, 200).unwrap();
        // ᾱ_t at the marker beside every schedule's name, at 80×24 too.
        let now = tab.alphas_cumprod[120];
        let now = if now >= 1e-3 {
            format!("{now:.4}")
        } else {
            format!("{now:.1e}")
        };
        assert!(
            screen.contains(&format!("{:<10}ᾱ_t {now}", s.name())),
            "{s} ᾱ_t {now}:\n{screen}"
        );
        // ᾱ_T of each: at 80×24 where no warning takes its line, and always at 160×48.
        let last = format!("ᾱ_T {:.1e}", tab.alphas_cumprod[199]);
        assert!(big.contains(&last), "{s} {last}:\n{big}");
        if tab.final_signal() <= ddpm_lab::tui::state::schedules::SIGNAL_FLAG {
            assert!(screen.contains(&last), "{s} {last}:\n{screen}");
        }
    }
    // β on a log axis: labelled in decades.
    assert!(screen.contains("β_t log"), "{screen}");
    assert!(screen.contains("1e-4"), "{screen}");
}

#[test]
fn train_screen_idle_and_running() {
    let (mut app, _) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    let idle = snap_both(&app, "train_idle");
    assert!(idle.contains("no steps yet"), "{idle}");
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, fake_run(0, 120, 2000));
    let running = snap_both(&app, "train_running");
    assert!(running.contains("step 120/2000"), "{running}");
    assert!(
        running.contains("step 120 · 2 of 8 shown · ½ scale"),
        "{running}"
    );
    let big = render(&app, 160, 48);
    assert!(
        big.contains("Samples at step 120 · 4 of 8 shown ─"),
        "1:1 at 160×48:\n{big}"
    );
    // Elapsed (12 s at 0.1 s per step) and the ETA are on screen at 80×24.
    assert!(running.contains("elapsed  12s · ETA "), "{running}");
    let eta = app.train.run.eta_s(app.settings.train.batch_size).unwrap();
    let eta = ddpm_lab::tui::ui::theme::duration(eta);
    assert!(
        running.contains(&format!("ETA {eta}")),
        "ETA {eta}:\n{running}"
    );
    // The loss-by-timestep axis reads whole numbers, not "0 2 4 6 8 1 1 1 1".
    assert!(running.contains("0     40    80    120   160"), "{running}");
    assert!(!running.contains("1 1 1"), "{running}");
}

#[test]
fn train_screen_charts_the_learning_rate_when_it_varies() {
    let (mut app, _) = app();
    load_data(&mut app);
    app.settings.train.warmup_steps = 100;
    app.settings.train.lr_cosine_decay = true;
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, fake_run(0, 120, 2000));
    let screen = snap_both(&app, "train_lr");
    assert!(screen.contains("Learning rate"), "{screen}");
    let plain = {
        let (mut app, _) = tui_support::app();
        app.settings.train.warmup_steps = 0;
        app.settings.train.lr_cosine_decay = false;
        app.tab = Tab::Train;
        render(&app, 80, 24)
    };
    assert!(
        !plain.contains("Learning rate"),
        "constant lr: no chart\n{plain}"
    );
}

#[test]
fn sample_screen_steps_through_frames() {
    let (mut app, _) = app();
    load_data(&mut app);
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, fake_run(0, 10, 10));
    feed(
        &mut app,
        Slot::Main,
        vec![finished(
            10,
            "runs/20260101-000000-linear",
            FinishReason::Steps,
        )],
    );
    handle_key(&mut app, ch('4'));
    handle_key(&mut app, ch('g'));
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Progress { done: 5, total: 20 },
    });
    snap_both(&app, "sample_running");
    // Settings changed meanwhile are the next `g`'s: the job under way is said as it is.
    handle_key(&mut app, ch('s'));
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("drawing: DDPM · seed 0 · 16 images"),
        "{screen}"
    );
    assert!(screen.contains("seed     1"), "{screen}");
    handle_key(&mut app, ch('S'));
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Done(Box::new(frames(4, 20))),
    });
    handle_key(&mut app, key(KeyCode::Home));
    handle_key(&mut app, key(KeyCode::PageDown));
    let screen = snap_both(&app, "sample_frames");
    assert!(screen.contains("frame 11/21"), "{screen}");
    // Four 28×28 images fit half of 80 columns at ¼ only (7 pixels: blobs): the panels show
    // two at ½, and say so, the count before the scale where room runs out.
    assert!(screen.contains("x_t t=10 · 2/4"), "{screen}");
    assert!(screen.contains("x̂₀ · 2 of 4 · ½"), "{screen}");
    let big = render(&app, 160, 48);
    assert!(!big.contains(" scale"), "1:1 at 160×48:\n{big}");
    assert!(!big.contains(" of 4"), "all four at 160×48:\n{big}");
}

#[test]
fn compare_screen_training_and_sampled() {
    let (mut app, _) = app();
    load_data(&mut app);
    handle_key(&mut app, ch('5'));
    handle_key(&mut app, ch(' '));
    for (k, s) in ALL.iter().enumerate() {
        let mut run = fake_run(0, 60 - 10 * k, 60);
        for ev in &mut run {
            if let TrainEvent::Step(st) = ev {
                st.loss *= 1.0 + 0.2 * k as f64;
            }
        }
        feed(&mut app, Slot::Compare(*s), run);
    }
    snap_both(&app, "compare_training");
    // The first run reached its 60 steps; x stopped the others where they were.
    for (k, s) in ALL.iter().enumerate() {
        feed(
            &mut app,
            Slot::Compare(*s),
            vec![TrainEvent::Finished {
                step: 60 - 10 * k,
                run_dir: Some(format!("runs/20260101-000000-compare/{s}").into()),
                why: if k == 0 {
                    FinishReason::Steps
                } else {
                    FinishReason::Stopped
                },
            }],
        );
    }
    handle_key(&mut app, ch('g'));
    for s in ALL {
        app.handle_msg(WorkerMsg::Sample {
            slot: Slot::Compare(s),
            msg: SampleMsg::Done(Box::new(frames(4, 10))),
        });
    }
    handle_key(&mut app, key(KeyCode::Home));
    for _ in 0..3 {
        handle_key(&mut app, key(KeyCode::Right));
    }
    let screen = snap_both(&app, "compare_sampled");
    assert!(screen.contains("frame 4/11"), "{screen}");
    for s in ALL {
        assert!(screen.contains(s.name()), "{s}:\n{screen}");
    }
    // At 80×24 each panel shows one of its four at ½, and every title says so.
    let small = render(&app, 80, 24);
    for s in ALL {
        let said = [
            format!("{} t=7 · 1/4", s.name()),
            format!("{} · 1/4", s.name()),
        ];
        assert!(said.iter().any(|t| small.contains(t)), "{s}:\n{small}");
    }
    // Scored, the score outlasts t and the images' count there: the four compare at a glance.
    handle_key(&mut app, ch('g'));
    for (k, s) in ALL.iter().enumerate() {
        let mut scored = frames(4, 10);
        scored.quality = Ok(Quality {
            n: 16,
            frechet: Some(40.0 + k as f64),
            recognised: 0.25 + 0.1 * k as f64,
            class_fractions: vec![0.1; 10],
            mean_confidence: 0.7,
        });
        app.handle_msg(WorkerMsg::Sample {
            slot: Slot::Compare(*s),
            msg: SampleMsg::Done(Box::new(scored)),
        });
    }
    let small = render(&app, 80, 24);
    for (k, s) in ALL.iter().enumerate() {
        let score = format!("{} {}%", s.name(), 25 + 10 * k);
        assert!(small.contains(&score), "{score}:\n{small}");
    }
}

#[test]
fn help_scrolls_where_it_does_not_fit_and_quit_question() {
    let (mut app, _) = app();
    load_data(&mut app);
    app.tab = Tab::Sample;
    handle_key(&mut app, ch('?'));
    let help = snap_both(&app, "help");
    // The current screen's keys come right after the global ones.
    assert!(help.contains("export a PNG grid"), "{help}");
    assert!(help.contains("↑↓ PgUp/PgDn scroll"), "{help}");
    let big = render(&app, 160, 48);
    assert!(
        big.contains("Keys (? or Esc closes)"),
        "all rows fit:\n{big}"
    );
    for _ in 0..40 {
        handle_key(&mut app, key(KeyCode::Down));
    }
    let end = render(&app, 80, 24);
    insta::assert_snapshot!("help_scrolled_80x24", end);
    assert!(end.contains("click a row"), "the last row:\n{end}");
    handle_key(&mut app, key(KeyCode::Esc));
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, fake_run(0, 5, 100));
    handle_key(&mut app, ch('q'));
    let ask = snap_both(&app, "confirm_quit");
    assert!(ask.contains("A run is training."), "{ask}");
}

/// A run on disk as the Runs screen gets it from the engine.
pub fn record(name: &str, schedule: BetaSchedule, step: usize, scale: f64) -> RunRecord {
    let settings = TrainSettings {
        schedule,
        steps: 400,
        ..TrainSettings::default()
    };
    let curve: Vec<(f64, f64)> = (1..=step)
        .map(|i| (i as f64, scale * stats(i).loss))
        .collect();
    RunRecord {
        summary: RunSummary {
            dir: format!("runs/{name}").into(),
            settings: Some(settings),
            dataset: Some("fashion_mnist".into()),
            step,
            held_by: None,
            unsaved: false,
            problem: None,
        },
        eval: None,
        last_loss: curve.last().map(|p| p.1),
        last_step: step,
        quality: (step >= 200).then(|| {
            (
                step,
                Quality {
                    n: 64,
                    frechet: Some(41.5),
                    recognised: 0.52,
                    class_fractions: vec![0.1; 10],
                    mean_confidence: 0.7,
                },
            )
        }),
        curve,
        bytes: 0,
    }
}

/// Four runs, one of them a Compare run one directory down.
pub fn records() -> Vec<RunRecord> {
    vec![
        record(
            "20260102-093000-cosine-long-name",
            BetaSchedule::Cosine,
            400,
            1.0,
        ),
        record("20260101-120000-linear", BetaSchedule::Linear, 200, 1.3),
        record(
            "20260101-000000-compare/quadratic",
            BetaSchedule::Quadratic,
            60,
            1.6,
        ),
        record("20251231-235959-sigmoid", BetaSchedule::Sigmoid, 0, 1.0),
    ]
}

#[test]
fn runs_screen_lists_runs_and_overlays_the_marked_curves() {
    let (mut app, engine) = app();
    engine.0.lock().unwrap().records = records();
    handle_key(&mut app, ch('6'));
    let reading = render(&app, 80, 24);
    assert!(reading.contains("reading the runs"), "{reading}");
    app.pump();
    handle_key(&mut app, ch(' '));
    handle_key(&mut app, key(KeyCode::Down));
    handle_key(&mut app, key(KeyCode::Down));
    handle_key(&mut app, ch(' '));
    let screen = snap_both(&app, "runs");
    assert!(screen.contains("2 marked runs"), "{screen}");
    // Every run with its schedule, its progress and the distinctive end of its name.
    for (end, schedule, steps) in [
        ("cosine-long-name", "cosine", "400/400"),
        ("120000-linear", "linear", "200/400"),
        ("compare/quadratic", "quadratic", "60/400"),
        ("235959-sigmoid", "sigmoid", "0/400"),
    ] {
        let line = screen
            .lines()
            .find(|l| l.contains(end))
            .unwrap_or_else(|| panic!("{end}:\n{screen}"));
        assert!(line.contains(schedule) && line.contains(steps), "{line}");
    }
    assert!(
        screen.contains("52%"),
        "the score of runs with one:\n{screen}"
    );
    let empty = {
        let (mut app, _) = tui_support::app();
        handle_key(&mut app, ch('6'));
        app.pump();
        render(&app, 80, 24)
    };
    assert!(empty.contains("no runs in runs yet"), "{empty}");
}

/// `d` asks first and only `y` removes (Enter, pressed out of habit, does not); the removed
/// run leaves the list, and the Train screen that showed it shows it no more.
#[test]
fn a_run_is_removed_from_the_runs_screen_after_asking() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let linear = "runs/20260101-120000-linear";
    train_main_run_to_the_end(&mut app, linear);
    let mut runs = records();
    runs[1].bytes = 3_400_000;
    runs[0].summary.held_by = Some("pid 4242".into());
    engine.0.lock().unwrap().records = runs;
    handle_key(&mut app, ch('6'));
    app.pump();
    // A run another process trains is not removed.
    handle_key(&mut app, ch('d'));
    assert_eq!(app.overlay, Overlay::None);
    let why = notice(&app).unwrap();
    assert!(why.contains("cosine-long-name is being trained"), "{why}");

    handle_key(&mut app, key(KeyCode::Down));
    handle_key(&mut app, ch('d'));
    assert_eq!(app.overlay, Overlay::ConfirmRemove(linear.into()));
    let ask = snap_both(&app, "confirm_remove");
    for part in [
        "Remove 20260101-120000-linear?",
        "200 of 400 steps saved · 4 MB",
        "go for good (the",
        "Train screen closes it).",
        "y: remove",
    ] {
        assert!(ask.contains(part), "{part}:\n{ask}");
    }
    handle_key(&mut app, key(KeyCode::Enter));
    handle_key(&mut app, ch('n'));
    assert_eq!(app.overlay, Overlay::None);
    let removals = |e: &FakeEngine| {
        e.calls()
            .iter()
            .filter(|c| matches!(c, Call::RemoveRun(_)))
            .count()
    };
    assert_eq!(removals(&engine), 0, "kept");

    handle_key(&mut app, ch('d'));
    handle_key(&mut app, ch('y'));
    app.pump();
    assert_eq!(
        engine
            .calls()
            .iter()
            .rev()
            .find(|c| matches!(c, Call::RemoveRun(_))),
        Some(&Call::RemoveRun(linear.into()))
    );
    app.pump();
    let said = notice(&app).unwrap();
    assert_eq!(
        said,
        "removed 20260101-120000-linear (4 MB); the Train screen no longer shows it"
    );
    assert!(app
        .runs
        .runs
        .iter()
        .all(|r| r.summary.dir != Path::new(linear)));
    assert_eq!(app.runs.runs.len(), 3);
    assert_eq!(app.train.run.run_dir, None, "Train no longer shows it");
    assert!(app.session_runs().is_empty(), "nor offers to go on with it");
}

/// A run of the comparison open on Compare is removed once that comparison rests (the dialog
/// says Compare closes it, and its folder goes with its last run); not while it trains.
#[test]
fn a_run_of_the_comparison_on_compare_is_removed_when_it_rests() {
    let (mut app, engine) = app();
    let quadratic = Path::new("runs/20260101-000000-compare/quadratic");
    engine.0.lock().unwrap().records = records();
    let slot = app.compare.index_of(BetaSchedule::Quadratic).unwrap();
    app.compare.slots[slot].run.run_dir = Some(quadratic.into());
    app.compare.slots[slot].run.state = ddpm_lab::tui::state::run::RunState::Running;
    handle_key(&mut app, ch('6'));
    app.pump();
    handle_key(&mut app, key(KeyCode::Down));
    handle_key(&mut app, key(KeyCode::Down));
    handle_key(&mut app, ch('d'));
    assert_eq!(app.overlay, Overlay::None);
    let why = notice(&app).unwrap();
    assert!(
        why.contains(
            "in the comparison on Compare, which is training, paused or sampling: x there stops it"
        ),
        "{why}"
    );
    app.compare.slots[slot].run.state = ddpm_lab::tui::state::run::RunState::Opened;
    handle_key(&mut app, ch('d'));
    assert_eq!(app.overlay, Overlay::ConfirmRemove(quadratic.into()));
    let ask = render(&app, 80, 24);
    for part in ["comparison's folder goes", "Compare closes the"] {
        assert!(ask.contains(part), "{part}:\n{ask}");
    }
    handle_key(&mut app, ch('y'));
    app.pump();
    app.pump();
    let said = notice(&app).unwrap();
    assert!(
        said.ends_with("; the comparison on Compare is closed"),
        "{said}"
    );
    assert!(!app.compare.holds(quadratic));
}

/// `s` orders the runs by loss, then by preview score, then newest first again, keeping the
/// highlighted run highlighted.
#[test]
fn runs_are_ordered_by_loss_or_score() {
    let (mut app, engine) = app();
    let mut runs = records();
    for (r, loss) in runs.iter_mut().zip([0.09, 0.03, 0.05, 0.07]) {
        r.last_loss = Some(loss);
    }
    runs[2].quality = runs[0].quality.clone().map(|(s, q)| {
        (
            s,
            Quality {
                frechet: Some(12.0),
                ..q
            },
        )
    });
    engine.0.lock().unwrap().records = runs;
    handle_key(&mut app, ch('6'));
    app.pump();
    let order = |app: &App| -> Vec<String> {
        app.runs
            .runs
            .iter()
            .map(|r| r.summary.dir.display().to_string())
            .collect()
    };
    let newest = order(&app);
    handle_key(&mut app, ch('s'));
    let by_loss = order(&app);
    assert_eq!(
        by_loss,
        [1, 2, 3, 0].map(|i| newest[i].clone()),
        "lowest loss first"
    );
    assert_eq!(app.runs.selected, 3, "the highlight follows its run");
    assert!(render(&app, 80, 24).contains("by loss"));
    handle_key(&mut app, ch('s'));
    assert_eq!(
        order(&app),
        [2, 0, 1, 3].map(|i| newest[i].clone()),
        "lowest Fréchet distance first (12 before 41.5), unscored last"
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("by preview score"));
    // At 80 columns the score column shows the Fréchet distance the order follows.
    assert!(
        screen.contains(" FD") && screen.contains("12.0") && screen.contains("41.5"),
        "{screen}"
    );
    assert!(render(&app, 200, 50).contains("preview score"));
    handle_key(&mut app, ch('s'));
    assert_eq!(order(&app), newest);
}

#[test]
fn runs_of_different_losses_say_which_loss_their_value_is() {
    let (mut app, engine) = app();
    let mut runs = records();
    // The lab's default kind (l2 on v, Min-SNR weighted), the blog's (huber on the noise), and
    // l2 on the noise with Min-SNR.
    let st = |r: &RunRecord| r.summary.settings.clone().unwrap();
    let blog = TrainSettings {
        loss: LossKind::Huber,
        objective: Objective::Noise,
        min_snr_gamma: None,
        ..st(&runs[1])
    };
    runs[1].summary.settings = Some(blog);
    let noise = TrainSettings {
        objective: Objective::Noise,
        ..st(&runs[2])
    };
    runs[2].summary.settings = Some(noise);
    engine.0.lock().unwrap().records = runs;
    handle_key(&mut app, ch('6'));
    app.pump();
    // The highlighted (huber) and the l2 run overlaid.
    handle_key(&mut app, ch(' '));
    handle_key(&mut app, key(KeyCode::Down));
    handle_key(&mut app, ch(' '));
    for (w, h) in [(80, 24), (160, 40)] {
        let screen = render(&app, w, h);
        for (end, kind) in [
            ("cosine-long-name", " l2·v·snr"),
            ("120000-linear", " huber"),
            ("ompare/quadratic", " l2·snr"),
        ] {
            let line = screen
                .lines()
                .find(|l| l.contains(end))
                .unwrap_or_else(|| panic!("{end}:\n{screen}"));
            assert!(line.contains(kind), "{w}×{h}: {kind}: {line}");
        }
        assert!(
            screen.contains("not comparable: huber, l2·v·snr"),
            "{w}×{h}:\n{screen}"
        );
    }
    // Of one kind on other data: not comparable either, and said so.
    let (mut app, engine) = tui_support::app();
    let mut runs = records();
    runs[1].summary.dataset = Some("/data/sets/my-garments".into());
    engine.0.lock().unwrap().records = runs;
    handle_key(&mut app, ch('6'));
    app.pump();
    handle_key(&mut app, ch(' '));
    handle_key(&mut app, key(KeyCode::Down));
    handle_key(&mut app, ch(' '));
    let screen = render(&app, 160, 40);
    assert!(
        screen.contains("not comparable: fashion_mnist, my-garments"),
        "{screen}"
    );
    // Of one kind, the values stand alone.
    let (mut app, engine) = tui_support::app();
    engine.0.lock().unwrap().records = records();
    handle_key(&mut app, ch('6'));
    app.pump();
    let screen = render(&app, 80, 24);
    assert!(
        !screen.contains("l2·v·snr") && !screen.contains("not comparable"),
        "{screen}"
    );
}

/// A run imported with β of its own (a PyTorch wrapper's sigmoid, say) is not called by the
/// schedule name its config keeps: the Runs table, the Train screen's panel and its run line
/// say `imported β`, whole, at 80×24 and wide; choosing a schedule drops the β.
#[test]
fn an_imported_runs_own_betas_are_named_so_not_by_a_schedule() {
    let (mut app, engine) = app();
    let mut runs = records();
    let own = TrainSettings {
        betas: Some(vec![0.01; 400]),
        ..runs[1].summary.settings.clone().unwrap()
    };
    runs[1].summary.settings = Some(own.clone());
    engine.0.lock().unwrap().records = runs;
    handle_key(&mut app, ch('6'));
    app.pump();
    for (w, h) in [(80, 24), (160, 40)] {
        let screen = render(&app, w, h);
        let line = screen
            .lines()
            .find(|l| l.contains("120000-linear"))
            .unwrap_or_else(|| panic!("{screen}"));
        assert!(
            line.contains("imported β") && !line.contains(" linear "),
            "{w}×{h}: {line}"
        );
        let cosine = screen.lines().find(|l| l.contains("cosine-long-name"));
        assert!(cosine.is_some_and(|l| l.contains(" cosine ")), "{screen}");
    }
    load_data(&mut app);
    app.settings.train = own;
    app.tab = Tab::Train;
    let schedule_row = |app: &App| {
        let screen = render(app, 80, 24);
        screen
            .lines()
            .find(|l| l.contains("│schedule "))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        schedule_row(&app).contains("imported β"),
        "{}",
        schedule_row(&app)
    );
    // The field cycles to a named schedule, and the run it starts trains that one's β.
    app.train.field = 0;
    handle_key(&mut app, key(KeyCode::Right));
    assert!(app.settings.train.betas.is_none());
    let row = schedule_row(&app);
    assert!(
        !row.contains("imported") && row.contains("│schedule "),
        "{row}"
    );
}

/// Very wide, the Runs table shows `ddpm-lab eval`'s result of each run, as `ddpm-lab runs`
/// does; narrower, the preview score alone.
#[test]
fn runs_show_their_eval_where_the_terminal_is_very_wide() {
    use ddpm_lab::runs::quality::{EvalRecord, SamplerRecord};
    let (mut app, engine) = app();
    let mut runs = records();
    let q = |recognised: f64, frechet: f64| Quality {
        n: 1000,
        frechet: Some(frechet),
        recognised,
        class_fractions: vec![0.1; 10],
        mean_confidence: 0.7,
    };
    runs[0].eval = Some(EvalRecord {
        step: 400,
        ema: true,
        sampler: SamplerRecord::Words("ddim (50 steps)".into()),
        n: 1000,
        seed: 0,
        batch_size: Some(250),
        dataset: "fashion_mnist".into(),
        real_split: Some("test".into()),
        samples: q(0.48, 77.1),
        real: q(0.77, 3.25),
        frechet_ratio: Some(23.7),
    });
    engine.0.lock().unwrap().records = runs;
    handle_key(&mut app, ch('6'));
    app.pump();
    let cell = "48% · FD 77.1 (step 400, n 1000)";
    let wide = render(&app, 200, 50);
    let line = wide
        .lines()
        .find(|l| l.contains("cosine-long-name"))
        .unwrap();
    assert!(line.contains(cell), "{line}");
    assert!(wide.lines().any(|l| l.contains(" eval")), "{wide}");
    for (w, h) in [(80, 24), (120, 40)] {
        let screen = render(&app, w, h);
        assert!(!screen.contains("n 1000"), "{w}×{h}:\n{screen}");
    }
}

/// A run whose newest checkpoint cannot be used reads `?/steps` on Runs, as `ddpm-lab runs`
/// has it, and opening it says what is wrong and which checkpoint goes on, not a step it
/// would continue from.
#[test]
fn a_run_whose_newest_checkpoint_is_damaged_says_so() {
    let (mut app, engine) = app();
    let mut runs = records();
    let why = "runs/x/checkpoints/step-000200/model.safetensors is damaged (10 bytes, shorter than a header); the run's other checkpoints: step-000180";
    runs[1].summary.problem = Some(why.into());
    engine.0.lock().unwrap().records = runs;
    handle_key(&mut app, ch('6'));
    app.pump();
    let screen = render(&app, 80, 24);
    let line = screen
        .lines()
        .find(|l| l.contains("120000-linear"))
        .unwrap();
    assert!(
        line.contains("?/400") && !line.contains("200/400"),
        "{line}"
    );
    let (mut app, engine) = tui_support::app();
    load_data(&mut app);
    let mut summary = engine.offer_run("runs/x", settings().train, 200);
    summary.problem = Some(why.into());
    {
        let mut rec = engine.0.lock().unwrap();
        rec.runs = vec![summary.clone()];
        rec.opened.as_mut().unwrap().summary = summary;
    }
    app.tab = Tab::Train;
    open_from_picker(&mut app);
    let notice = app.notice.as_ref().unwrap();
    assert!(
        notice.text.starts_with("opened x: runs/x/checkpoints"),
        "{notice:?}"
    );
    assert!(
        notice.error && notice.text.contains("step-000180"),
        "{notice:?}"
    );
}

#[test]
fn runs_marks_the_run_this_lab_trains_now() {
    let (mut app, engine) = app();
    load_data(&mut app);
    let mut runs = records();
    runs[1].summary.dir = "runs/20260101-000000-linear".into();
    engine.0.lock().unwrap().records = runs;
    // The Train screen's run (fake runs train in runs/20260101-000000-linear).
    start_main_run(&mut app, 3, 400);
    handle_key(&mut app, ch('6'));
    app.pump();
    let row = |app: &App, end: &str| {
        render(app, 80, 24)
            .lines()
            .find(|l| l.contains(end))
            .unwrap_or_else(|| panic!("{end}"))
            .to_string()
    };
    assert!(
        row(&app, "000000-linear").contains("│▶  2026"),
        "{}",
        row(&app, "000000-linear")
    );
    assert!(row(&app, "cosine-long-name").contains("│·  2026"));
    // Stopped and saved: nothing runs.
    feed(
        &mut app,
        Slot::Main,
        vec![finished(
            3,
            "runs/20260101-000000-linear",
            FinishReason::Steps,
        )],
    );
    assert!(row(&app, "000000-linear").contains("│·  2026"));
    // A run another process trains (it holds the run's lock) is marked too; before its first
    // checkpoint it has nothing saved, not step 0.
    let mut runs = records();
    runs[0].summary.held_by = Some("pid 4242".into());
    runs[0].summary.unsaved = true;
    runs[0].summary.step = 0;
    engine.0.lock().unwrap().records = runs;
    handle_key(&mut app, ch('r'));
    app.pump();
    let held = row(&app, "cosine-long-name");
    assert!(held.contains("│▶  2026"), "{held}");
    assert!(held.contains(" –/"), "{held}");
}

#[test]
fn open_run_dialog_keeps_the_end_of_run_names_at_80x24() {
    let (mut app, engine) = app();
    // One of them another process trains, towards its first checkpoint: the picker marks it,
    // and shows nothing saved (not step 0).
    let mut runs: Vec<_> = records().into_iter().map(|r| r.summary).collect();
    runs[1].held_by = Some("pid 4242".into());
    runs[1].unsaved = true;
    runs[1].step = 0;
    // A folder's dataset by its own name (`/w…mnist` told no folder from mnist).
    runs[2].dataset = Some("/data/sets/fashion-mnist".into());
    engine.0.lock().unwrap().runs = runs;
    app.tab = Tab::Train;
    handle_key(&mut app, ch('o'));
    app.pump();
    let screen = snap_both(&app, "open_run");
    for end in ["cosine-long-name", "compare/quadratic", "235959-sigmoid"] {
        assert!(screen.contains(end), "{end}:\n{screen}");
    }
    let marked: Vec<&str> = screen.lines().filter(|l| l.contains('▶')).collect();
    assert_eq!(marked.len(), 1, "{screen}");
    assert!(marked[0].contains("120000-linear"), "{screen}");
    assert!(marked[0].contains(" – "), "{screen}");
    let wide = render(&app, 160, 48);
    assert!(
        wide.contains(" fashion-mnist ") && !wide.contains("/data/sets"),
        "{wide}"
    );
}

#[test]
fn too_small_terminal_says_so() {
    let (mut app, engine) = app();
    // Every line shows, down to 40 columns (the sentence wrapped into three rows lost its
    // third before).
    for (w, h) in [(60, 20), (40, 12)] {
        let screen = render(&app, w, h);
        for part in [
            format!("too small: {w}×{h}"),
            "needs at least 80×24".to_string(),
            "press q to quit".to_string(),
        ] {
            assert!(screen.contains(&part), "{part}:\n{screen}");
        }
    }
    // Only the quit keys act: the screens' keys would act on what the user cannot see.
    app.tab = Tab::Train;
    assert!(!handle_key_in_small_terminal(&mut app, ch(' ')));
    assert!(!handle_key_in_small_terminal(&mut app, ch('4')));
    assert_eq!(app.tab, Tab::Train);
    assert!(
        !engine.calls().iter().any(|c| matches!(c, Call::Train(..))),
        "no run started"
    );
    // With a run training, q asks first, and the question shows on the small screen.
    start_main_run(&mut app, 100, 1);
    assert!(handle_key_in_small_terminal(&mut app, ch('q')));
    assert_eq!(app.overlay, Overlay::ConfirmQuit);
    let screen = render(&app, 60, 20);
    assert!(
        screen.contains("Quit? Running runs are checkpointed"),
        "{screen}"
    );
    assert!(handle_key_in_small_terminal(&mut app, ch('n')));
    assert_eq!(app.overlay, Overlay::None);
    // A window open when the terminal shrank (help here) closes with q or Esc, as drawn.
    assert!(!handle_key_in_small_terminal(&mut app, ch('?')));
    app.overlay = Overlay::Help;
    assert!(handle_key_in_small_terminal(&mut app, key(KeyCode::Esc)));
    assert_eq!(app.overlay, Overlay::None);
}

#[test]
fn every_model_fits_the_configuration_panel_at_80x24() {
    use ddpm_lab::model::{Arch, UnetConfig};
    use ddpm_lab::tui::settings::ModelPreset;
    let (mut app, _) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    let model_row = |app: &App| {
        let screen = render(app, 80, 24);
        let row = screen.lines().find(|l| l.contains("│model ")).unwrap_or("");
        // The panel's text between its borders.
        row.split('│').nth(1).unwrap_or("").trim_end().to_string()
    };
    for preset in ModelPreset::ALL {
        app.settings.train.model = preset;
        let row = model_row(&app);
        let want = format!("{:<5} {}", preset.name(), preset.describe_compact());
        assert!(row.ends_with(&want), "{preset:?}: {row:?}");
    }
    app.settings.train.custom_model = Some(UnetConfig {
        dim: 64,
        dim_mults: vec![1, 2, 4, 8],
        arch: Arch::Current,
        self_condition: true,
        ..UnetConfig::default()
    });
    let row = model_row(&app);
    assert!(
        row.ends_with("model         64×(1,2,4,8) current +sc"),
        "{row:?}"
    );
}

/// At 80×24 the Progress box has three lines under its gauge; the step of the last checkpoint
/// shares the speed's, so that it shows while the run trains.
#[test]
fn the_last_checkpoint_shows_in_the_progress_box_at_80x24() {
    let (mut app, _) = app();
    load_data(&mut app);
    start_main_run(&mut app, 5, 100);
    feed(
        &mut app,
        Slot::Main,
        vec![TrainEvent::Checkpointed {
            step: 5,
            path: "runs/x/checkpoints/step-000005".into(),
        }],
    );
    let screen = render(&app, 80, 24);
    let progress: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.contains("Progress"))
        .take(5)
        .collect();
    assert!(
        progress.iter().any(|l| l.contains("saved step 5")),
        "{}",
        progress.join("\n")
    );
}

/// A message longer than the status line takes the row above it (the body's last), so the
/// body does not move; one longer than two lines ends in `…`.
#[test]
fn a_long_message_takes_a_second_line_over_the_body_and_is_cut_with_an_ellipsis() {
    use ddpm_lab::tui::state::Notice;
    let (mut app, _engine) = app();
    app.tab = Tab::Train;
    let rows = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
    let plain = rows(&render(&app, 80, 24));
    let long = "word ".repeat(20) + "end-of-the-message";
    app.show(Notice::new(long.trim_end(), false));
    let two = rows(&render(&app, 80, 24));
    assert_eq!(
        two[..21],
        plain[..21],
        "the body above its last row is as it was"
    );
    assert!(two[22].contains("word word"), "{two:?}");
    assert!(two[23].contains("end-of-the-message"), "{two:?}");
    app.show(Notice::new("word ".repeat(40).trim_end(), false));
    let cut = rows(&render(&app, 80, 24));
    assert!(
        cut[23].trim_end_matches(['"', ' ']).ends_with('…'),
        "{cut:?}"
    );
}

/// A folder given with `--dataset PATH` stays one of the Data screen's choices: an arrow key
/// that moves to a built-in set does not lose it.
#[test]
fn the_data_screen_cycles_back_to_the_users_own_folder() {
    let (mut app, engine) = app();
    app.settings.choose_dataset("/data/my-set");
    app.tab = Tab::Data;
    // From the first built-in set back to the last choice, the folder.
    assert_eq!(app.data.requested, "shapes");
    handle_key(&mut app, key(KeyCode::Up));
    assert_eq!(app.data.requested, "/data/my-set");
    handle_key(&mut app, key(KeyCode::Down));
    assert_eq!(
        (app.data.requested.as_str(), app.settings.dataset.as_str()),
        ("shapes", "shapes")
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("path     /data/my-set"), "{screen}");
    // On through the built-in sets, back to the folder; D goes the other way.
    for _ in 0..4 {
        handle_key(&mut app, ch('d'));
    }
    assert_eq!(app.data.requested, "/data/my-set");
    handle_key(&mut app, ch('D'));
    assert_eq!(app.data.requested, "cifar10");
    assert_eq!(app.settings.own_dataset.as_deref(), Some("/data/my-set"));
    assert!(engine
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Load(d) if d == "/data/my-set")));
}

/// The quit question asked while a run stops says so once the run is saved, instead of
/// claiming unsaved steps.
#[test]
fn the_quit_question_follows_a_run_that_is_saved_meanwhile() {
    let (mut app, _engine) = app();
    load_data(&mut app);
    start_main_run(&mut app, 3, 100);
    handle_key(&mut app, ch('q'));
    assert_eq!(app.overlay, Overlay::ConfirmQuit);
    assert!(render(&app, 80, 24).contains("A run is training."));
    feed(
        &mut app,
        Slot::Main,
        vec![finished(4, "runs/x", FinishReason::Stopped)],
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("Every run is saved now."), "{screen}");
    assert!(screen.contains("y / Enter: quit "), "{screen}");
    assert!(!screen.contains("not in a checkpoint"), "{screen}");
}
