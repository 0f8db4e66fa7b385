//! Views: pure functions from the [`App`] to a frame, one file per screen or panel.

pub mod chart;
pub mod compare;
pub mod data;
pub mod help;
pub mod image;
pub mod sample;
pub mod schedules;
pub mod status;
pub mod tabs;
pub mod theme;
pub mod train;

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::state::{App, Overlay, Tab};
pub use image::ImageRenderer;

/// Smallest terminal the lab draws into.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// Draws the whole lab.
pub fn draw(frame: &mut Frame, app: &App, images: &ImageRenderer) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        too_small(frame, area);
        return;
    }
    let [tabs_area, body, status_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(2),
    ])
    .areas(area);
    tabs::draw(frame, tabs_area, app);
    match app.tab {
        Tab::Data => data::draw(frame, body, app, images),
        Tab::Schedules => schedules::draw(frame, body, app, images),
        Tab::Train => train::draw(frame, body, app, images),
        Tab::Sample => sample::draw(frame, body, app, images),
        Tab::Compare => compare::draw(frame, body, app, images),
    }
    status::draw(frame, status_area, app, images);
    if app.picker.is_some() {
        train::draw_picker(frame, body, app);
    }
    match app.overlay {
        Overlay::None => {}
        Overlay::Help => help::draw(frame, body),
        Overlay::ConfirmQuit => confirm_quit(frame, body, app),
    }
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = vec![
        Line::from("ddpm-lab"),
        Line::from(format!(
            "The terminal is too small: {}×{}, the lab needs at least {}×{}.",
            area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
        )),
        Line::from("Enlarge the window, or press q to quit."),
    ];
    let p = Paragraph::new(text)
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true });
    let y = area.height.saturating_sub(3) / 2;
    frame.render_widget(
        p,
        Rect::new(area.x, area.y + y, area.width, 3.min(area.height)),
    );
}

/// A rectangle of `w`×`h` centred in `area` (clamped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// A bordered block with the lab's title style.
pub fn block(title: &str) -> Block<'_> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(theme::DIM))
        .title(Line::styled(format!(" {title} "), theme::title()))
}

fn confirm_quit(frame: &mut Frame, area: Rect, app: &App) {
    let r = centered(area, 62, 7);
    frame.render_widget(Clear, r);
    let what = if app.any_active() {
        "A run is training."
    } else {
        "A run has steps that are not in a checkpoint."
    };
    let text = vec![
        Line::from(what),
        Line::from("Quit? Running runs are checkpointed first."),
        Line::from(""),
        Line::styled(
            "y / Enter: save and quit     n / Esc: stay",
            Style::default().add_modifier(Modifier::BOLD),
        ),
    ];
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .block(block("Quit?")),
        r,
    );
}
