//! The mouse: a click or wheel turn becomes a [`Command`] by where it lands on the layout the
//! views draw (the same rectangle functions): tabs, list rows, the frame bar.

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::Command;
use crate::tui::state::{App, Overlay, Tab};
use crate::tui::ui;

/// Rows a wheel notch scrolls the help.
const HELP_WHEEL: i32 = 3;

fn inside(r: Rect, x: u16, y: u16) -> bool {
    x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height
}

/// The frame bar of the current screen (Sample or Compare) in `body`.
fn scrub(app: &App, body: Rect) -> Option<Rect> {
    match app.tab {
        Tab::Sample => Some(ui::sample::areas(body)[2]),
        Tab::Compare => Some(ui::compare::scrub_area(body)),
        _ => None,
    }
}

/// Frames the current screen steps through.
fn frames(app: &App) -> usize {
    match app.tab {
        Tab::Sample => app.sample.cursor.len,
        Tab::Compare => app.compare.cursor.len,
        _ => 0,
    }
}

/// The command of a mouse event on a terminal of `area` (None: it does nothing).
pub fn command(app: &App, ev: MouseEvent, area: Rect) -> Option<Command> {
    let [tabs, body, _] = ui::areas(area)?;
    let (x, y) = (ev.column, ev.row);
    let wheel = match ev.kind {
        MouseEventKind::ScrollUp => Some(-1),
        MouseEventKind::ScrollDown => Some(1),
        _ => None,
    };
    // Windows first: they take the mouse while open.
    match app.overlay {
        Overlay::ConfirmQuit | Overlay::ConfirmRemove(_) => return None,
        Overlay::Help => return wheel.map(|d| Command::HelpScroll(d * HELP_WHEEL)),
        Overlay::None => {}
    }
    if let Some(p) = &app.picker {
        if let Some(d) = wheel {
            return Some(Command::PickerMove(d));
        }
        if ev.kind != MouseEventKind::Down(MouseButton::Left) {
            return None;
        }
        let r = ui::picker_area(body, p.runs.len());
        let visible = r.height.saturating_sub(3).max(1) as usize;
        let first = p.selected.saturating_sub(visible - 1);
        let top = r.y + 2;
        if inside(r, x, y) && y >= top && y < r.y + r.height - 1 {
            let i = first + (y - top) as usize;
            if i < p.runs.len() {
                return Some(Command::PickerMove(i as i32 - p.selected as i32));
            }
        }
        return None;
    }
    if let Some(d) = wheel {
        return match app.tab {
            Tab::Runs => Some(Command::RunsMove(d as i64)),
            Tab::Train if app.train.editable() => Some(Command::SelectField(d)),
            Tab::Sample | Tab::Compare => Some(Command::StepFrames(d as i64)),
            Tab::Schedules => Some(Command::MoveT(d as i64)),
            _ => None,
        };
    }
    let click = ev.kind == MouseEventKind::Down(MouseButton::Left);
    let drag = ev.kind == MouseEventKind::Drag(MouseButton::Left);
    if click && y == tabs.y {
        return ui::tabs::tab_at(x.saturating_sub(tabs.x)).map(Command::GoTo);
    }
    // The frame bar: a click or a drag along it picks the frame under the pointer (a drag may
    // stray a line above or below without losing hold).
    if let Some(bar) = scrub(app, body) {
        let len = frames(app);
        let hold = Rect {
            y: bar.y.saturating_sub(1),
            height: bar.height + 2,
            ..bar
        };
        if ((click && inside(bar, x, y)) || (drag && inside(hold, x, y))) && len > 0 {
            let track = ui::sample::scrub_track(block_inner(bar));
            return Some(Command::SeekFrame(ui::sample::seek_index(track, x, len)));
        }
    }
    if !click {
        return None;
    }
    match app.tab {
        Tab::Runs => {
            let (table, _) = ui::runs::layout(body, app.runs.runs.len());
            ui::runs::run_at(table, y, app.runs.runs.len(), app.runs.selected)
                .filter(|_| inside(table, x, y))
                .map(Command::RunsSelect)
        }
        Tab::Train if app.train.editable() => {
            let cfg = ui::train::config_area(body);
            let n = crate::tui::state::train::Field::ALL.len() as u16;
            (inside(cfg, x, y) && y > cfg.y && y <= cfg.y + n)
                .then(|| Command::SelectField((y - cfg.y - 1) as i32 - app.train.field as i32))
        }
        _ => None,
    }
}

/// The inside of a bordered block drawn over `r`.
fn block_inner(r: Rect) -> Rect {
    ui::block("").inner(r)
}

/// Maps and applies a mouse event; returns whether it did anything.
pub fn handle_mouse(app: &mut App, ev: MouseEvent, area: Rect) -> bool {
    match command(app, ev, area) {
        Some(cmd) => {
            app.apply(cmd);
            true
        }
        None => false,
    }
}
