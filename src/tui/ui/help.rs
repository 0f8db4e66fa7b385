//! The help overlay listing every key.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Clear, Row, Table};
use ratatui::Frame;

use super::{block, centered, theme};
use crate::tui::event::keys::help_rows;

/// Draws the key table over `area`.
pub fn draw(frame: &mut Frame, area: Rect) {
    let r = centered(area, 112, help_rows().count() as u16 + 4);
    frame.render_widget(Clear, r);
    let rows = help_rows().map(|k| {
        Row::new(vec![
            Cell::from(Line::styled(
                k.scope.label(),
                Style::default().fg(theme::DIM),
            )),
            Cell::from(Line::styled(
                k.keys,
                Style::default().add_modifier(Modifier::BOLD),
            )),
            Cell::from(k.action),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(34),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(vec!["screen", "keys", "action"]).style(theme::title()))
    .block(block("Keys (? or Esc closes)"));
    frame.render_widget(table, r);
}
