//! State tests of the mouse (no rendering): clicks on tabs and rows, the wheel on lists and
//! frames, and clicks and drags on the frame bar, at the layout the views draw.

use crate::tui_support;

use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ddpm_lab::tui::event::{handle_key, handle_mouse};
use ddpm_lab::tui::state::{Overlay, Tab};
use ddpm_lab::tui::ui;
use ddpm_lab::tui::workers::{SampleMsg, Slot, WorkerMsg};
use ratatui::layout::Rect;
use tui_support::*;

const AREA: Rect = Rect::new(0, 0, 80, 24);

fn at(kind: MouseEventKind, column: u16, row: u16) -> MouseEvent {
    MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    }
}

fn click(column: u16, row: u16) -> MouseEvent {
    at(MouseEventKind::Down(MouseButton::Left), column, row)
}

fn wheel(down: bool) -> MouseEvent {
    let kind = if down {
        MouseEventKind::ScrollDown
    } else {
        MouseEventKind::ScrollUp
    };
    at(kind, 40, 12)
}

#[test]
fn clicking_a_tab_goes_there() {
    let (mut app, _) = app();
    for (a, b, tab) in ui::tabs::tab_columns() {
        assert!(handle_mouse(&mut app, click((a + b) / 2, 0), AREA));
        assert_eq!(app.tab, tab);
    }
    // The divider, the status lines and a too-small terminal do nothing.
    assert!(!handle_mouse(&mut app, click(8, 0), AREA));
    assert!(!handle_mouse(&mut app, click(3, 23), AREA));
    assert!(!handle_mouse(
        &mut app,
        click(3, 0),
        Rect::new(0, 0, 60, 20)
    ));
}

#[test]
fn the_wheel_scrolls_runs_help_and_settings() {
    let (mut app, engine) = app();
    engine.0.lock().unwrap().records = crate::tui_views::records();
    handle_mouse(&mut app, click(ui::tabs::tab_columns()[5].0 + 1, 0), AREA);
    assert_eq!(app.tab, Tab::Runs);
    app.pump();
    assert_eq!(app.runs.runs.len(), 4);
    handle_mouse(&mut app, wheel(true), AREA);
    handle_mouse(&mut app, wheel(true), AREA);
    assert_eq!(app.runs.selected, 2);
    handle_mouse(&mut app, wheel(false), AREA);
    assert_eq!(app.runs.selected, 1);
    // A click on the fourth row (two lines under the table's top: border, header).
    let body = ui::areas(AREA).unwrap()[1];
    let (table, _) = ui::runs::layout(body, 4);
    handle_mouse(&mut app, click(10, table.y + 2 + 3), AREA);
    assert_eq!(app.runs.selected, 3);
    // Help: the wheel scrolls it, nothing under it moves.
    handle_key(&mut app, ch('?'));
    handle_mouse(&mut app, wheel(true), AREA);
    assert_eq!(app.help_scroll, 3);
    assert_eq!(app.runs.selected, 3);
    handle_key(&mut app, ch('?'));
    assert_eq!(app.overlay, Overlay::None);
    // Train: the wheel picks a setting; a click on a row picks that one.
    app.tab = Tab::Train;
    handle_mouse(&mut app, wheel(true), AREA);
    assert_eq!(app.train.field, 1);
    let cfg = ui::train::config_area(body);
    handle_mouse(&mut app, click(cfg.x + 3, cfg.y + 1 + 5), AREA);
    assert_eq!(app.train.field, 5);
}

#[test]
fn clicking_and_dragging_the_frame_bar_seeks() {
    let (mut app, _) = app();
    load_data(&mut app);
    train_main_run_to_the_end(&mut app, "runs/20260101-000000-linear");
    handle_key(&mut app, ch('4'));
    handle_key(&mut app, ch('g'));
    app.handle_msg(WorkerMsg::Sample {
        slot: Slot::Main,
        msg: SampleMsg::Done(Box::new(frames(4, 20))),
    });
    let body = ui::areas(AREA).unwrap()[1];
    let bar = ui::sample::areas(body)[2];
    let track = ui::sample::scrub_track(ui::block("").inner(bar));
    let y = bar.y + 1;
    handle_mouse(&mut app, click(track.x, y), AREA);
    assert_eq!(app.sample.cursor.index, 0);
    handle_mouse(&mut app, click(track.x + track.width - 1, y), AREA);
    assert_eq!(
        app.sample.cursor.index, 20,
        "the right end: the last of 21 frames"
    );
    // A drag along the track, straying a line below it, still holds the bar.
    let mid = track.x + (track.width - 1) / 2;
    handle_mouse(
        &mut app,
        at(MouseEventKind::Drag(MouseButton::Left), mid, y + 1),
        AREA,
    );
    assert_eq!(
        app.sample.cursor.index,
        ui::sample::seek_index(track, mid, 21)
    );
    assert!((9..=11).contains(&app.sample.cursor.index));
    // Clicking left of the track (on the label) goes to the first frame; the wheel steps.
    handle_mouse(&mut app, click(bar.x + 2, y), AREA);
    assert_eq!(app.sample.cursor.index, 0);
    handle_mouse(&mut app, wheel(true), AREA);
    assert_eq!(app.sample.cursor.index, 1);
}

#[test]
fn the_run_picker_takes_the_mouse_while_open() {
    let (mut app, engine) = app();
    engine.0.lock().unwrap().runs = crate::tui_views::records()
        .into_iter()
        .map(|r| r.summary)
        .collect();
    app.tab = Tab::Train;
    handle_key(&mut app, ch('o'));
    app.pump();
    assert!(app.picker.is_some());
    handle_mouse(&mut app, wheel(true), AREA);
    assert_eq!(app.picker.as_ref().unwrap().selected, 1);
    let body = ui::areas(AREA).unwrap()[1];
    let r = ui::picker_area(body, 4);
    handle_mouse(&mut app, click(r.x + 5, r.y + 2 + 3), AREA);
    assert_eq!(app.picker.as_ref().unwrap().selected, 3);
    // A click on a tab does nothing while the picker is open.
    handle_mouse(&mut app, click(2, 0), AREA);
    assert_eq!(app.tab, Tab::Train);
}
