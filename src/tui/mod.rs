//! The lab's terminal UI: six screens (Data, Schedules, Train, Sample, Compare, Runs) over
//! the engine, which runs on worker threads.
//!
//! Layout of the module (gitui style):
//! - [`state`]: one controller per screen (its state, commands and worker messages, returning
//!   [`state::Effect`]s) and the [`App`] that routes between them and the engine.
//! - [`event`]: key → [`event::Command`] through the one key table, mouse → command by the
//!   drawn layout; pure and unit-tested.
//! - [`ui`]: views only, one file per screen or panel.
//! - [`workers`]: the [`Engine`] interface and the messages workers send back.
//!
//! [`run_app`] is the main loop, generic over the ratatui backend so tests can drive the real
//! app with a `TestBackend` and a scripted [`EventSource`].

pub mod autosave;
pub mod event;
pub mod input;
pub mod lab;
pub mod noise;
pub mod settings;
pub mod state;
pub mod ui;
pub mod workers;

use std::io;
use std::time::{Duration, Instant};

use crossterm::event::Event;
use ratatui::backend::Backend;
use ratatui::Terminal;

pub use state::App;
pub use ui::ImageRenderer;
pub use workers::{Engine, WorkerMsg};

/// Minimum time between two redraws (at most ~30 frames per second).
pub const FRAME_TIME: Duration = Duration::from_millis(33);
/// Longest wait for input before the loop looks at worker messages again.
pub const INPUT_POLL: Duration = Duration::from_millis(16);

/// Where input events come from.
pub trait EventSource {
    /// Waits up to `timeout` for one event; `None` when none came.
    fn poll(&mut self, timeout: Duration) -> io::Result<Option<Event>>;
}

/// Runs the lab until it quits: handles worker messages and input, and redraws when something
/// changed (never more often than [`FRAME_TIME`]). The UI thread never blocks on work. A
/// termination signal counted by [`crate::signals`] starts the same shutdown as Ctrl-C.
pub fn run_app<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    images: &ImageRenderer,
    events: &mut dyn EventSource,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut last_draw: Option<Instant> = None;
    let mut last_tick = Instant::now();
    let mut signals_seen = crate::signals::received();
    loop {
        // SIGTERM, SIGHUP or SIGINT (see `crate::signals`): the shutdown of Ctrl-C.
        let signals = crate::signals::received();
        if signals > signals_seen {
            signals_seen = signals;
            app.begin_shutdown();
            app.dirty = true;
        }
        app.pump();
        let now = Instant::now();
        app.tick(now.saturating_duration_since(last_tick));
        last_tick = now;
        if app.should_exit() {
            break;
        }
        let due = last_draw.is_none_or(|t| now.duration_since(t) >= FRAME_TIME);
        if app.dirty && due {
            terminal.draw(|f| ui::draw(f, app, images))?;
            app.dirty = false;
            last_draw = Some(now);
        }
        let timeout = match last_draw {
            Some(t) if app.dirty => FRAME_TIME.saturating_sub(now.duration_since(t)),
            _ => INPUT_POLL,
        }
        .min(INPUT_POLL);
        let mut next = events.poll(timeout)?;
        // Take every event already waiting before drawing again.
        while let Some(ev) = next {
            match ev {
                Event::Key(key) => {
                    // Tests make a key crash the loop (`lab-key:x=panic`) or end it with an error.
                    if let crossterm::event::KeyCode::Char(c) = key.code {
                        crate::fail_point!("lab-key", c);
                    }
                    let size = terminal.size()?;
                    let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
                    if ui::fits(area) {
                        event::handle_key(app, key);
                    } else {
                        event::handle_key_in_small_terminal(app, key);
                    }
                }
                Event::Mouse(m) => {
                    let size = terminal.size()?;
                    let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
                    event::handle_mouse(app, m, area);
                }
                Event::Resize(..) => {
                    terminal.autoresize()?;
                    app.dirty = true;
                }
                _ => {}
            }
            if app.should_exit() {
                break;
            }
            next = events.poll(Duration::ZERO)?;
        }
    }
    Ok(())
}
