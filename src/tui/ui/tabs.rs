//! The tab bar at the top.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Tabs;
use ratatui::Frame;

use super::theme;
use crate::tui::state::{App, Tab};

/// Draws the tab bar, highlighting the current screen.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let titles: Vec<Line> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| Line::from(format!("{} {}", i + 1, t.title())))
        .collect();
    let tabs = Tabs::new(titles)
        .select(app.tab.index())
        .style(Style::default().fg(theme::DIM))
        .highlight_style(theme::selected())
        .divider(Span::raw("│"));
    let [left, right] = ratatui::layout::Layout::horizontal([
        ratatui::layout::Constraint::Min(0),
        ratatui::layout::Constraint::Length(24),
    ])
    .areas(area);
    frame.render_widget(tabs, left);
    frame.render_widget(
        Line::from(vec![
            Span::styled("ddpm-lab", theme::title()),
            Span::styled("  ? keys  q quit", Style::default().fg(theme::DIM)),
        ])
        .right_aligned()
        .style(Style::default().add_modifier(Modifier::empty())),
        right,
    );
}
