//! Snapshot tests of every screen, drawn with ratatui's TestBackend from synthetic worker
//! messages (a fake dataset, a fake training run, fake denoising frames).

use crate::tui_support;

use crossterm::event::KeyCode;
use ddpm_lab::train::events::TrainEvent;
use ddpm_lab::tui::event::handle_key;
use ddpm_lab::tui::state::Tab;
use ddpm_lab::tui::workers::{DataMsg, LoadStage, SampleMsg, Slot, WorkerMsg};
use tui_support::*;

const W: u16 = 120;
const H: u16 = 40;

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
    let screen = render(&app, W, H);
    assert!(screen.contains("12.5 MB / 30.9 MB · 4.2 MB/s"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn data_screen_ready() {
    let (mut app, _) = app();
    load_data(&mut app);
    let screen = render(&app, W, H);
    assert!(screen.contains("6000 images"));
    assert!(screen.contains("disc"));
    insta::assert_snapshot!(screen);
}

#[test]
fn schedules_screen() {
    let (mut app, _) = app();
    load_data(&mut app);
    handle_key(&mut app, ch('2'));
    for _ in 0..20 {
        handle_key(&mut app, key(KeyCode::Right));
    }
    let screen = render(&app, W, H);
    assert!(screen.contains("t = 120"), "{screen}");
    assert!(screen.contains("x_T keeps 36% signal"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn train_screen_idle_and_running() {
    let (mut app, _) = app();
    load_data(&mut app);
    app.tab = Tab::Train;
    let idle = render(&app, W, H);
    assert!(idle.contains("no steps yet"));
    insta::assert_snapshot!("train_idle", idle);
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, fake_run(0, 120, 2000));
    let running = render(&app, W, H);
    assert!(running.contains("step 120/2000"), "{running}");
    assert!(running.contains("Samples at step 120"), "{running}");
    insta::assert_snapshot!("train_running", running);
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
        vec![TrainEvent::Finished {
            step: 10,
            run_dir: Some("runs/20260101-000000-linear".into()),
        }],
    );
    handle_key(&mut app, ch('4'));
    handle_key(&mut app, ch('g'));
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Progress { done: 5, total: 20 },
    });
    insta::assert_snapshot!("sample_running", render(&app, W, H));
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Done(Box::new(frames(4, 20))),
    });
    handle_key(&mut app, key(KeyCode::Home));
    handle_key(&mut app, key(KeyCode::PageDown));
    let screen = render(&app, W, H);
    assert!(screen.contains("frame 11/21"), "{screen}");
    insta::assert_snapshot!("sample_frames", screen);
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
    insta::assert_snapshot!("compare_training", render(&app, W, H));
    for s in ALL {
        feed(
            &mut app,
            Slot::Compare(s),
            vec![TrainEvent::Finished {
                step: 60,
                run_dir: Some(format!("runs/20260101-000000-compare/{s}").into()),
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
    let screen = render(&app, W, H);
    assert!(screen.contains("frame 4/11"), "{screen}");
    insta::assert_snapshot!("compare_sampled", screen);
}

#[test]
fn help_overlay_and_quit_question() {
    let (mut app, _) = app();
    load_data(&mut app);
    handle_key(&mut app, ch('?'));
    let help = render(&app, W, H);
    assert!(help.contains("export a PNG grid and an animated GIF"));
    insta::assert_snapshot!("help", help);
    handle_key(&mut app, key(KeyCode::Esc));
    app.tab = Tab::Train;
    handle_key(&mut app, ch(' '));
    feed(&mut app, Slot::Main, fake_run(0, 5, 100));
    handle_key(&mut app, ch('q'));
    let ask = render(&app, W, H);
    assert!(ask.contains("A run is training."));
    insta::assert_snapshot!("confirm_quit", ask);
}

#[test]
fn too_small_terminal_says_so() {
    let (app, _) = app();
    let screen = render(&app, 60, 20);
    assert!(screen.contains("too small: 60×20"), "{screen}");
}
