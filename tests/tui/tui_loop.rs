//! The real main loop (`run_app`) on a TestBackend with scripted input: it draws the first
//! frame at once, answers keys, handles resizes and exits on `q`.

use crate::tui_support;

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode};
use ddpm_lab::tui::state::Tab;
use ddpm_lab::tui::ui::ImageRenderer;
use ddpm_lab::tui::{run_app, EventSource};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tui_support::*;

struct Script(VecDeque<Event>);

impl EventSource for Script {
    fn poll(&mut self, _timeout: Duration) -> io::Result<Option<Event>> {
        Ok(self.0.pop_front())
    }
}

#[test]
fn loop_draws_answers_keys_resizes_and_quits() {
    let (mut app, _) = app();
    load_data(&mut app);
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let mut script = Script(
        [
            Event::Key(ch('2')),
            Event::Key(key(KeyCode::Right)),
            Event::Resize(100, 30),
            Event::Key(ch('q')),
        ]
        .into(),
    );
    let start = Instant::now();
    run_app(
        &mut term,
        &mut app,
        &ImageRenderer::halfblocks(),
        &mut script,
    )
    .unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(app.tab, Tab::Schedules);
    assert_eq!(app.schedules.t, 101);
    assert!(app.should_exit());
    let screen = format!("{}", term.backend());
    assert!(screen.contains("2 Schedules"), "{screen}");
}

#[test]
fn worker_messages_arrive_through_the_channel() {
    let (mut app, _) = app();
    let tx = app.sender();
    tx.send(ddpm_lab::tui::WorkerMsg::Data(
        ddpm_lab::tui::workers::DataMsg::Ready(Box::new(data_info())),
    ))
    .unwrap();
    assert_eq!(app.pump(), 1);
    assert!(app.data.ready());
}

/// Input that crashes, standing in for any bug in the loop.
struct Crashes;

impl EventSource for Crashes {
    fn poll(&mut self, _timeout: Duration) -> io::Result<Option<Event>> {
        panic!("input boom")
    }
}

#[test]
fn a_panic_in_the_loop_comes_back_as_an_error_naming_it() {
    let (mut app, _) = app();
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let err = ddpm_lab::tui::lab::run_guarded(
        &mut term,
        &mut app,
        &ImageRenderer::halfblocks(),
        &mut Crashes,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("internal error") && err.contains("input boom"),
        "{err}"
    );
}
