//! The Schedules screen: β_t, ᾱ_t and log-SNR of every schedule overlaid, and one image
//! noised at several timesteps under each schedule, one row per schedule.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LegendPosition, Paragraph};
use ratatui::Frame;

use super::chart::{self, ChartOpts, Series};
use super::image::{ImageRenderer, Scale};
use super::{block, theme};
use crate::schedule::fmt_fraction;
use crate::tui::noise;
use crate::tui::state::schedules::{SchedulesState, SIGNAL_FLAG};
use crate::tui::state::App;

/// Draws the Schedules screen.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let s = &app.schedules;
    let [charts, grid] =
        Layout::vertical([Constraint::Percentage(38), Constraint::Min(8)]).areas(area);
    let [c1, c2, c3] = Layout::horizontal([
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
    ])
    .areas(charts);
    let t_max = (s.timesteps - 1) as f64;
    let series = |f: &dyn Fn(usize, &crate::schedule::ScheduleTables) -> f64| -> Vec<Series> {
        s.tables
            .iter()
            .map(|tab| Series {
                name: tab.schedule.name().to_string(),
                color: theme::schedule_color(tab.schedule),
                points: (0..s.timesteps).map(|t| (t as f64, f(t, tab))).collect(),
            })
            .collect()
    };
    let opts = |title: String, legend: Option<LegendPosition>| ChartOpts {
        title,
        x_title: "t".into(),
        x_bounds: Some([0.0, t_max]),
        marker: Some(s.t as f64),
        legend,
        ..ChartOpts::default()
    };
    chart::draw(
        frame,
        c1,
        &series(&|t, tab| tab.betas[t]),
        // Log axis: cosine's β reaches 0.999 and would flatten the other three to one line.
        &ChartOpts {
            y_log: true,
            y_title: "β".into(),
            ..opts(format!("β_t log  T = {}", s.timesteps), None)
        },
    );
    chart::draw(
        frame,
        c2,
        &series(&|t, tab| tab.alphas_cumprod[t]),
        &ChartOpts {
            y_bounds: Some([0.0, 1.0]),
            y_title: "ᾱ".into(),
            ..opts(
                format!("ᾱ_t   t = {}", s.t),
                Some(LegendPosition::BottomLeft),
            )
        },
    );
    chart::draw(
        frame,
        c3,
        &series(&|t, tab| SchedulesState::log_snr(tab, t)),
        &ChartOpts {
            y_title: "ln".into(),
            ..opts("log SNR = ln ᾱ/(1−ᾱ)".into(), None)
        },
    );
    draw_grid(frame, grid, app, images);
}

/// The lines beside a schedule's row, most important first: its name with ᾱ_t at the marker
/// (what the images show), then ᾱ_T, or when x_T keeps too much signal the warning first and
/// ᾱ_T after it. Every row has the same height; a short one (two lines at 80×24) drops the
/// last line only.
fn schedule_lines(tab: &crate::schedule::ScheduleTables, s: &SchedulesState) -> Vec<Line<'static>> {
    let color = theme::schedule_color(tab.schedule);
    let signal = tab.final_signal();
    let ac_t = tab.alphas_cumprod[s.t];
    let final_line = Line::from(vec![
        Span::styled("ᾱ_T ", theme::label()),
        Span::raw(format!("{:.1e}", tab.alphas_cumprod[s.timesteps - 1])),
        Span::styled("  √ᾱ_T ", theme::label()),
        Span::raw(fmt_fraction(signal, 3, 0)),
    ]);
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!("{:<10}", tab.schedule.name()),
            Style::default().fg(color).add_modifier(Modifier::BOLD),
        ),
        Span::styled("ᾱ_t ", theme::label()),
        // `ᾱ_t` near T shows `4.0e-5`, not `0.0000`.
        Span::raw(fmt_fraction(ac_t, 4, 1)),
    ])];
    if signal > SIGNAL_FLAG {
        lines.push(Line::styled(
            // The amplitudes, as `schedules` prints them: √ᾱ_T is not a share of the variance.
            format!(
                "⚠ x_T={signal:.2}·x₀+{:.2}·ε",
                (1.0 - signal * signal).max(0.0).sqrt()
            ),
            Style::default().fg(theme::WARN),
        ));
    }
    lines.push(final_line);
    lines
}

fn draw_grid(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let s = &app.schedules;
    let inner = block("").inner(area);
    let label_w = 22u16;
    let cols = s.columns();
    let [header, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(4)]).areas(inner);
    let [_, head_imgs] =
        Layout::horizontal([Constraint::Length(label_w), Constraint::Min(10)]).areas(header);
    let col_areas = Layout::horizontal(vec![Constraint::Ratio(1, cols.len() as u32); cols.len()])
        .split(head_imgs);
    for (i, (&t, r)) in cols.iter().zip(col_areas.iter()).enumerate() {
        let text = if i == cols.len() - 1 && r.width >= 14 {
            format!("t = {t} (←/→)")
        } else {
            format!("t = {t}")
        };
        let style = if i == cols.len() - 1 {
            Style::default()
                .fg(theme::ACCENT)
                .add_modifier(Modifier::BOLD)
        } else {
            theme::label()
        };
        frame.render_widget(Line::styled(text, style).centered(), *r);
    }
    // Rows of one height (the rows left over stay empty below), so that every schedule's
    // images are drawn at the same size.
    let n = s.tables.len().max(1) as u16;
    let rows = Layout::vertical(vec![Constraint::Length(body.height / n); n as usize]).split(body);
    let example = app
        .data
        .info
        .as_ref()
        .and_then(|i| i.examples.get(s.image_index % i.examples.len().max(1)));
    let eps = example.map(|(img, _)| noise::noise_like(img, s.noise_seed));
    let mut scale = None;
    for (tab, row) in s.tables.iter().zip(rows.iter()) {
        let [label, imgs] =
            Layout::horizontal([Constraint::Length(label_w), Constraint::Min(10)]).areas(*row);
        let lines = schedule_lines(tab, s);
        frame.render_widget(Paragraph::new(lines), label);
        let (Some((img, _)), Some(eps)) = (example, eps.as_ref()) else {
            if tab.schedule == s.tables[0].schedule {
                frame.render_widget(
                    Paragraph::new("waiting for the dataset…").style(theme::label()),
                    imgs,
                );
            }
            continue;
        };
        let cells = Layout::horizontal(vec![Constraint::Ratio(1, cols.len() as u32); cols.len()])
            .split(imgs);
        for (&t, cell) in cols.iter().zip(cells.iter()) {
            let noised = noise::q_sample(img, tab, t, eps);
            if let Some(sc) = images.render(frame, *cell, &noised) {
                scale = Some(scale.map_or(sc, |s: Scale| s.min(sc)));
            }
        }
    }
    // The block goes on last: its title says how small the images had to be drawn.
    let note = scale
        .and_then(Scale::note)
        .map(|n| format!(" · {n}"))
        .unwrap_or_default();
    let title = format!("x_t of one image under each schedule (same ε){note}   ←/→ t · n image");
    frame.render_widget(block(&title), area);
}
