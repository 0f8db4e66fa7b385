//! The tab bar at the top, and where each tab lies on it (for mouse clicks).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Tabs;
use ratatui::Frame;

use super::theme;
use crate::tui::state::{App, Tab};

/// Title of a tab in the bar (`3 Train`).
fn title(i: usize, t: Tab) -> String {
    format!("{} {}", i + 1, t.title())
}

/// Columns `[start, end)` of every tab on the bar, in [`Tab::ALL`] order (ratatui's `Tabs`
/// pads each title with a space on both sides and puts a one-column divider between).
pub fn tab_columns() -> Vec<(u16, u16, Tab)> {
    let mut x = 0u16;
    Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let w = title(i, t).chars().count() as u16 + 2;
            let span = (x, x + w, t);
            x += w + 1;
            span
        })
        .collect()
}

/// The tab under column `x` of the bar, if any.
pub fn tab_at(x: u16) -> Option<Tab> {
    tab_columns()
        .into_iter()
        .find(|&(a, b, _)| (a..b).contains(&x))
        .map(|(_, _, t)| t)
}

/// Draws the tab bar, highlighting the current screen; the name and key hints on the right
/// take what the tabs leave (shorter at 80 columns).
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let titles: Vec<Line> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, &t)| Line::from(title(i, t)))
        .collect();
    let tabs = Tabs::new(titles)
        .select(app.tab.index())
        .style(Style::default().fg(theme::DIM))
        .highlight_style(theme::selected())
        .divider(Span::raw("│"));
    let used = tab_columns().last().map_or(0, |c| c.1);
    let [left, right] =
        Layout::horizontal([Constraint::Length(used), Constraint::Min(0)]).areas(area);
    frame.render_widget(tabs, left);
    let dim = Style::default().fg(theme::DIM);
    let spans = if right.width >= 25 {
        vec![
            Span::styled("ddpm-lab", theme::title()),
            Span::styled("  ? keys  q quit", dim),
        ]
    } else {
        vec![Span::styled("? keys · q quit", dim)]
    };
    frame.render_widget(Line::from(spans).right_aligned(), right);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tab_is_found_where_it_is_drawn() {
        let cols = tab_columns();
        assert_eq!(cols[0], (0, 8, Tab::Data), "' 1 Data '");
        assert_eq!(tab_at(0), Some(Tab::Data));
        assert_eq!(tab_at(8), None, "the divider");
        assert_eq!(tab_at(9), Some(Tab::Schedules));
        let last = cols.last().unwrap();
        assert_eq!(last.2, Tab::Runs);
        assert!(last.1 + 15 <= 80, "tabs and hints fit 80 columns");
        assert_eq!(tab_at(last.1), None);
    }
}
