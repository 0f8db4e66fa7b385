//! Colours and styles shared by every screen, so the lab looks the same everywhere.

use ratatui::style::{Color, Modifier, Style};

use crate::schedule::BetaSchedule;

/// Accent colour (titles, highlights).
pub const ACCENT: Color = Color::Cyan;
/// Dimmed text.
pub const DIM: Color = Color::DarkGray;
/// Warnings and flags.
pub const WARN: Color = Color::Yellow;
/// Errors.
pub const ERROR: Color = Color::LightRed;
/// Good news.
pub const OK: Color = Color::Green;
/// Raw loss curve.
pub const RAW: Color = Color::DarkGray;
/// Smoothed loss curve.
pub const SMOOTH: Color = Color::LightCyan;

/// Colour of a schedule in every chart: the Okabe–Ito colours of the exported charts.
pub fn schedule_color(s: BetaSchedule) -> Color {
    match s {
        BetaSchedule::Linear => Color::Rgb(0, 114, 178),
        BetaSchedule::Quadratic => Color::Rgb(230, 159, 0),
        BetaSchedule::Cosine => Color::Rgb(0, 158, 115),
        BetaSchedule::Sigmoid => Color::Rgb(204, 121, 167),
    }
}

/// Style of block titles.
pub fn title() -> Style {
    Style::default().fg(ACCENT).add_modifier(Modifier::BOLD)
}

/// Style of labels in key/value lists.
pub fn label() -> Style {
    Style::default().fg(DIM)
}

/// Style of the highlighted row.
pub fn selected() -> Style {
    Style::default()
        .fg(Color::Black)
        .bg(ACCENT)
        .add_modifier(Modifier::BOLD)
}

/// Formats seconds as `1h02m`, `3m05s` or `12s`.
pub use crate::clock::human_duration as duration;

/// Formats a byte count (`12.3 MB`).
pub fn bytes(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n:.0} B")
    }
}

/// Formats a parameter count (`1.23M`, `45.6k`).
pub fn count(n: usize) -> String {
    let f = n as f64;
    if f >= 1e6 {
        format!("{:.2}M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}k", f / 1e3)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::duration(3725.0), "1h02m");
        assert_eq!(super::duration(185.0), "3m05s");
        assert_eq!(super::duration(f64::NAN), "—");
        assert_eq!(super::bytes(26_421_880.0), "26.4 MB");
        assert_eq!(super::count(2_996_315), "3.00M");
    }
}
