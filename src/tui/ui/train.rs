//! The Train screen: configuration, progress with ETA, loss charts (full history and recent
//! window), loss by timestep bucket, sample previews; and the picker of earlier runs.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Clear, Gauge, LegendPosition, Paragraph, Row, Table,
};
use ratatui::Frame;

use super::chart::{self, ChartOpts, Series};
use super::image::{compose_grid, grid_cols, ImageRenderer};
use super::{block, centered, theme};
use crate::train::events::LOSS_BUCKETS;
use crate::tui::state::run::{RunProgress, RunState};
use crate::tui::state::train::Field;
use crate::tui::state::App;

/// Steps shown in the recent-window chart.
pub const RECENT_WINDOW: usize = 200;

/// Draws the Train screen.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let [left, right] =
        Layout::horizontal([Constraint::Length(42), Constraint::Min(30)]).areas(area);
    let [cfg, progress] = Layout::vertical([
        Constraint::Length(Field::ALL.len() as u16 + 3),
        Constraint::Min(6),
    ])
    .areas(left);
    draw_config(frame, cfg, app);
    draw_progress(frame, progress, app);
    let [full, mid, previews] = Layout::vertical([
        Constraint::Percentage(36),
        Constraint::Percentage(32),
        Constraint::Min(6),
    ])
    .areas(right);
    let [recent, buckets] =
        Layout::horizontal([Constraint::Percentage(58), Constraint::Min(20)]).areas(mid);
    let run = &app.train.run;
    loss_chart(frame, full, run, "Loss (full history)", 0);
    loss_chart(
        frame,
        recent,
        run,
        &format!("Loss (last {RECENT_WINDOW} steps)"),
        RECENT_WINDOW,
    );
    bucket_chart(frame, buckets, run, app.settings.train.timesteps);
    draw_previews(frame, previews, run, images);
}

fn draw_config(frame: &mut Frame, area: Rect, app: &App) {
    let editable = app.train.editable();
    let title = if editable {
        "Configuration  ↑↓ pick ←→ change"
    } else {
        "Configuration (fixed while training)"
    };
    let s = &app.settings.train;
    let rows: Vec<Row> = Field::ALL
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut value = f.value(s);
            if *f == Field::Model && s.custom_model.is_none() {
                value = format!("{value:<6}{}", s.model.describe());
            }
            let row = Row::new(vec![f.label().to_string(), value]);
            if editable && i == app.train.field {
                row.style(theme::selected())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(rows, [Constraint::Length(13), Constraint::Min(10)]).block(block(title));
    frame.render_widget(table, area);
    let hint = Rect::new(
        area.x + 1,
        area.y + area.height - 1,
        area.width.saturating_sub(2),
        1,
    );
    frame.render_widget(
        Line::styled(" b blog config · B quick · e time/epoch ", theme::label()),
        hint,
    );
}

fn state_span(state: &RunState) -> Span<'static> {
    let color = match state {
        RunState::Running => theme::OK,
        RunState::Paused | RunState::Starting | RunState::Stopping | RunState::Opened => {
            theme::WARN
        }
        RunState::Failed(_) => theme::ERROR,
        _ => theme::ACCENT,
    };
    Span::styled(
        state.label().to_uppercase(),
        Style::default().fg(color).add_modifier(Modifier::BOLD),
    )
}

fn draw_progress(frame: &mut Frame, area: Rect, app: &App) {
    let b = block("Progress  (space start/pause · c ckpt · o open)");
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let run = &app.train.run;
    let batch = app.settings.train.batch_size;
    let [g1, g2, text] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner);
    let total = if run.total_steps > 0 {
        run.total_steps
    } else {
        app.settings.train.steps
    };
    frame.render_widget(
        Gauge::default()
            .ratio(run.fraction())
            .label(format!("step {}/{}", run.step(), total))
            .gauge_style(Style::default().fg(theme::ACCENT)),
        g1,
    );
    let (epoch, ef) = run.epoch_progress().unwrap_or((0, 0.0));
    let epochs = if run.steps_per_epoch > 0 {
        format!("/{}", total.div_ceil(run.steps_per_epoch))
    } else {
        String::new()
    };
    frame.render_widget(
        Gauge::default()
            .ratio(ef)
            .label(format!("epoch {}{epochs} · {:.0}%", epoch + 1, ef * 100.0))
            .gauge_style(Style::default().fg(theme::SMOOTH)),
        g2,
    );
    let mut lines = vec![Line::from(vec![
        Span::styled("state     ", theme::label()),
        state_span(&run.state),
    ])];
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<10}"), theme::label()),
            Span::raw(v),
        ])
    };
    if let Some(last) = &run.last {
        let sm = run.smoothed.last().map_or(last.loss, |p| p.1);
        lines.push(kv("loss", format!("{:.4} (smoothed {:.4})", last.loss, sm)));
        // Averaged over the last steps; nothing stale while paused.
        let idle = match run.state {
            RunState::Paused => "paused",
            _ => "—",
        };
        let speed = run.images_per_s(batch);
        lines.push(kv(
            "speed",
            speed.map_or(idle.into(), |v| format!("{v:.0} img/s")),
        ));
        lines.push(kv("elapsed", theme::duration(last.elapsed_s)));
        lines.push(kv(
            "ETA",
            run.eta_s(batch).map_or(idle.into(), theme::duration),
        ));
    }
    if run.num_params > 0 {
        lines.push(kv("params", theme::count(run.num_params)));
    }
    if let Some(n_train) = app.data.info.as_ref().map(|i| i.n_train) {
        let est = if app.train.estimating {
            "measuring…".to_string()
        } else if let Some(secs) = app.train.epoch_seconds(&app.settings.train, n_train) {
            format!("≈ {} / epoch", theme::duration(secs))
        } else {
            "press e to measure".to_string()
        };
        lines.push(kv("estimate", est));
    }
    if let Some(step) = run.checkpoint_step {
        lines.push(kv("saved", format!("step {step}")));
    }
    if let Some(dir) = &run.run_dir {
        lines.push(kv("run dir", dir.display().to_string()));
    }
    if let RunState::Failed(m) = &run.state {
        lines.push(Line::styled(m.clone(), Style::default().fg(theme::ERROR)));
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }),
        text,
    );
}

/// Draws raw and smoothed loss of `run` (the last `window` steps, or all when 0).
pub fn loss_chart(frame: &mut Frame, area: Rect, run: &RunProgress, title: &str, window: usize) {
    let tail = |v: &Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        if window > 0 && v.len() > window {
            v[v.len() - window..].to_vec()
        } else {
            v.clone()
        }
    };
    let raw = tail(&run.losses);
    let sm = tail(&run.smoothed);
    if raw.is_empty() {
        let b = block(title);
        let inner = b.inner(area);
        frame.render_widget(b, area);
        frame.render_widget(
            Paragraph::new("no steps yet: press space to train").style(theme::label()),
            inner,
        );
        return;
    }
    let y_max = raw.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let y_min = raw.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let pad = ((y_max - y_min) * 0.05).max(1e-4);
    let series = vec![
        Series {
            name: "raw".into(),
            color: theme::RAW,
            points: raw,
        },
        Series {
            name: "smoothed".into(),
            color: theme::SMOOTH,
            points: sm,
        },
    ];
    chart::draw(
        frame,
        area,
        &series,
        &ChartOpts {
            title: title.to_string(),
            x_title: "step".into(),
            y_bounds: Some([(y_min - pad).max(0.0), y_max + pad]),
            legend: Some(LegendPosition::TopRight),
            ..ChartOpts::default()
        },
    );
}

fn bucket_chart(frame: &mut Frame, area: Rect, run: &RunProgress, timesteps: usize) {
    let b = block("Loss by timestep");
    let inner = b.inner(area);
    frame.render_widget(b, area);
    if run.buckets.iter().all(|b| b.is_none()) {
        frame.render_widget(Paragraph::new("—").style(theme::label()), inner);
        return;
    }
    let width = ((inner.width as usize).saturating_sub(LOSS_BUCKETS) / LOSS_BUCKETS).max(1) as u16;
    let bars: Vec<Bar> = run
        .buckets
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v = v.unwrap_or(0.0);
            Bar::default()
                .value((v * 1000.0).round() as u64)
                .text_value(if width >= 4 {
                    format!("{v:.2}")
                } else {
                    String::new()
                })
                .label(Line::from(format!("{}", i * timesteps / LOSS_BUCKETS)))
                .style(Style::default().fg(theme::SMOOTH))
        })
        .collect();
    frame.render_widget(
        BarChart::default()
            .data(BarGroup::default().bars(&bars))
            .bar_width(width)
            .bar_gap(1),
        inner,
    );
}

fn draw_previews(frame: &mut Frame, area: Rect, run: &RunProgress, images: &ImageRenderer) {
    let title = match (&run.preview, run.quality.last()) {
        (Some((step, _)), Some((qs, q))) if qs == step => {
            format!(
                "Samples at step {step} · {}",
                quality_trend(&run.quality, q)
            )
        }
        (Some((step, _)), _) => format!("Samples at step {step}"),
        (None, _) => "Samples (every N steps)".to_string(),
    };
    let b = block(&title);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let Some((_, all)) = &run.preview else {
        frame.render_widget(
            Paragraph::new("previews appear here while training").style(theme::label()),
            inner,
        );
        return;
    };
    // Up to 8 of the scored previews are shown.
    let imgs = &all[..all.len().min(8)];
    // One row of previews when the area is wide, a square grid otherwise.
    let cols = if inner.width as usize >= imgs.len() * 2 * inner.height as usize {
        imgs.len()
    } else {
        grid_cols(imgs.len()).max(imgs.len().div_ceil(2))
    };
    if let Some(grid) = compose_grid(imgs, cols, 1) {
        images.render(frame, inner, &grid);
    }
}

/// The latest preview score with the recognised share of the earlier ones, oldest first
/// (`52% recognised (12→35→52) · FD 40`): the run's quality curve in one line.
fn quality_trend(all: &[(usize, crate::eval::Quality)], last: &crate::eval::Quality) -> String {
    let history: Vec<String> = all
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|(_, q)| format!("{:.0}", q.recognised * 100.0))
        .collect();
    let fd = last
        .frechet
        .map(|f| format!(" · FD {}", crate::eval::score::fmt_fd(f)))
        .unwrap_or_default();
    format!(
        "{:.0}% recognised ({}){fd}",
        last.recognised * 100.0,
        history.join("→")
    )
}

/// Draws the picker of earlier runs over `area`.
pub fn draw_picker(frame: &mut Frame, area: Rect, app: &App) {
    let Some(p) = &app.picker else { return };
    let r = centered(area, 100, (p.runs.len() as u16 + 4).min(area.height));
    frame.render_widget(Clear, r);
    let rows: Vec<Row> = p
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let cfg = run.settings.as_ref().map_or("?".to_string(), |s| {
                format!(
                    "{} T={} {} {}",
                    s.schedule,
                    s.timesteps,
                    s.model_name(),
                    s.loss
                )
            });
            let row = Row::new(vec![
                run.dir.display().to_string(),
                run.dataset.clone().unwrap_or_else(|| "?".into()),
                format!("step {}", run.step),
                cfg,
            ]);
            if i == p.selected {
                row.style(theme::selected())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(30),
            Constraint::Length(14),
            Constraint::Length(11),
            Constraint::Length(32),
        ],
    )
    .header(Row::new(vec!["run", "dataset", "saved", "config"]).style(theme::title()))
    .block(block("Open a run  (↑↓ Enter open · Esc close)"));
    frame.render_widget(table, r);
}
