//! The help window listing every key: the global keys and the current screen's first, then
//! the other screens' and the mouse; it scrolls where the terminal is too short for all.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Cell, Clear, Row, Table};
use ratatui::Frame;

use super::{block, centered, theme};
use crate::tui::event::keys::{help_rows, KeyHelp, Scope};
use crate::tui::state::{App, Tab};

/// Widths of the screen and keys columns.
const SCOPE_W: u16 = 10;
const KEYS_W: u16 = 34;
const KEYS_W_NARROW: u16 = 20;

/// The help rows in the order shown on `tab`: global keys, that screen's, the other screens'
/// in tab order, then the mouse.
pub fn ordered_rows(tab: Tab) -> Vec<&'static KeyHelp> {
    let rank = |r: &KeyHelp| match r.scope {
        Scope::Always | Scope::Global => 0,
        Scope::Screen(t) if t == tab => 1,
        Scope::Screen(t) => 2 + t.index(),
        _ => 2 + Tab::ALL.len(),
    };
    let mut rows: Vec<&KeyHelp> = help_rows().collect();
    rows.sort_by_key(|r| rank(r));
    rows
}

/// `text` broken into lines of at most `width` characters at spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line");
        let len = last.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if len > 0 {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Draws the key table over `area`, from the row `app.help_scroll` on.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let all = ordered_rows(app.tab);
    let r = centered(area, 112, area.height);
    // Narrow terminals wrap the keys too, leaving the actions room.
    let keys_w = if r.width >= 100 {
        KEYS_W
    } else {
        KEYS_W_NARROW
    };
    let action_w = r.width.saturating_sub(2 + SCOPE_W + keys_w + 2).max(10) as usize;
    let wrapped: Vec<(&KeyHelp, Vec<String>, Vec<String>)> = all
        .iter()
        .map(|k| (*k, wrap(k.keys, keys_w as usize), wrap(k.action, action_w)))
        .collect();
    let height =
        |(_, keys, action): &(&KeyHelp, Vec<String>, Vec<String>)| keys.len().max(action.len());
    let total_lines: usize = wrapped.iter().map(height).sum();
    // Borders and header take three lines.
    let room = r.height.saturating_sub(3) as usize;
    let r = centered(
        area,
        112,
        (total_lines + 3).min(area.height as usize) as u16,
    );
    // The first row shown: the scroll, but never past the point where the last row shows.
    let mut first = app.help_scroll.min(wrapped.len().saturating_sub(1));
    while first > 0 && wrapped[first - 1..].iter().map(height).sum::<usize>() <= room {
        first -= 1;
    }
    let mut used = 0;
    let mut shown = 0;
    for row in &wrapped[first..] {
        if used + height(row) > room {
            break;
        }
        used += height(row);
        shown += 1;
    }
    frame.render_widget(Clear, r);
    let lines_of =
        |v: &[String]| Text::from(v.iter().map(|l| Line::from(l.clone())).collect::<Vec<_>>());
    let rows = wrapped[first..first + shown].iter().map(|row| {
        let (k, keys, action) = row;
        let here = k.scope == Scope::Screen(app.tab);
        Row::new(vec![
            Cell::from(Line::styled(
                k.scope.label(),
                if here {
                    Style::default().fg(theme::ACCENT)
                } else {
                    Style::default().fg(theme::DIM)
                },
            )),
            Cell::from(lines_of(keys).style(Style::default().add_modifier(Modifier::BOLD))),
            Cell::from(lines_of(action)),
        ])
        .height(height(row) as u16)
    });
    let title = if shown < wrapped.len() {
        format!(
            "Keys {}–{} of {}  (↑↓ PgUp/PgDn scroll · ? or Esc closes)",
            first + 1,
            first + shown,
            wrapped.len()
        )
    } else {
        "Keys (? or Esc closes)".to_string()
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(SCOPE_W),
            Constraint::Length(keys_w),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(vec!["screen", "keys", "action"]).style(theme::title()))
    .block(block(&title));
    frame.render_widget(table, r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_puts_the_current_screen_first_and_wraps_at_spaces() {
        let rows = ordered_rows(Tab::Sample);
        assert_eq!(rows.len(), help_rows().count());
        let first_screen = rows
            .iter()
            .find(|r| matches!(r.scope, Scope::Screen(_)))
            .unwrap();
        assert_eq!(first_screen.scope, Scope::Screen(Tab::Sample));
        assert_eq!(rows.last().unwrap().scope, Scope::Mouse);
        assert_eq!(wrap("one two three", 7), ["one two", "three"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcdefghij"]);
    }
}
