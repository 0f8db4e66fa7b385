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
use super::image::ImageRenderer;
use super::{block, theme};
use crate::train::events::{FinishReason, LOSS_BUCKETS};
use crate::tui::state::run::{RunProgress, RunState};
use crate::tui::state::train::Field;
use crate::tui::state::App;

/// Steps shown in the recent-window chart.
pub const RECENT_WINDOW: usize = 200;

/// Right-hand width from which the recent-window chart is shown beside loss by timestep.
pub const WIDE: u16 = 70;

/// Whether the learning rate changes during the run (warm-up or a decay), so it is charted.
pub fn lr_varies(s: &crate::tui::settings::TrainSettings) -> bool {
    s.warmup_steps > 0 || s.lr_cosine_decay
}

/// The configuration block of the Train screen in `body` (its rows are the fields, from the
/// line under the top border).
pub fn config_area(body: Rect) -> Rect {
    let [left, _] = Layout::horizontal([Constraint::Length(42), Constraint::Min(30)]).areas(body);
    Rect {
        height: (Field::ALL.len() as u16 + 3).min(left.height),
        ..left
    }
}

/// Draws the Train screen.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let [left, right] =
        Layout::horizontal([Constraint::Length(42), Constraint::Min(30)]).areas(area);
    // The recipe's extra settings get rows of their own where the Progress box keeps room
    // for all its lines (at 80×24 the one spare row shows the first).
    let fields = Field::ALL.len() as u16 + 3;
    let extras = app.settings.train.recipe_extras().len() as u16;
    let cfg_height = (fields + extras.saturating_sub(1))
        .min(left.height.saturating_sub(12))
        .max(fields);
    let [cfg, progress] =
        Layout::vertical([Constraint::Length(cfg_height), Constraint::Min(6)]).areas(left);
    draw_config(frame, cfg, app);
    draw_progress(frame, progress, app);
    let run = &app.train.run;
    let lr = lr_varies(&app.settings.train);
    // Under min-SNR weighting the loss trained on is weighted (the run's own setting, once it
    // has one): said beside the bucket chart's unweighted one. T likewise is the run's.
    let weighted = run
        .min_snr
        .unwrap_or(app.settings.train.min_snr_gamma.is_some());
    let timesteps = run.timesteps.unwrap_or(app.settings.train.timesteps);
    let loss = if weighted { "Weighted loss" } else { "Loss" };
    let h = right.height;
    if right.width >= WIDE {
        // Previews get 16 lines where the height allows: 28-pixel images at 1:1.
        let previews_h = (h * 36 / 100).clamp(6, 16).max(h * 32 / 100);
        let charts = h.saturating_sub(previews_h);
        let [full, mid, previews] = Layout::vertical([
            Constraint::Length(charts * 53 / 100),
            Constraint::Length(charts - charts * 53 / 100),
            Constraint::Min(6),
        ])
        .areas(right);
        let mut cols = vec![Constraint::Percentage(58), Constraint::Min(20)];
        if lr {
            cols = vec![
                Constraint::Percentage(38),
                Constraint::Percentage(32),
                Constraint::Min(20),
            ];
        }
        let mids = Layout::horizontal(cols).split(mid);
        loss_chart(frame, full, run, &format!("{loss} (full history)"), 0);
        loss_chart(
            frame,
            mids[0],
            run,
            &format!("{loss} (last {RECENT_WINDOW} steps)"),
            RECENT_WINDOW,
        );
        bucket_chart(frame, mids[1], run, timesteps, weighted);
        if lr {
            lr_chart(frame, mids[2], app);
        }
        draw_previews(frame, previews, app, images);
    } else {
        // 80×24: the full history (with the learning rate beside it when it varies), loss by
        // timestep across the width, and the previews below.
        let [top, mid, previews] = Layout::vertical([
            Constraint::Length((h * 36 / 100).max(7)),
            Constraint::Length((h * 26 / 100).max(5)),
            Constraint::Min(6),
        ])
        .areas(right);
        if lr {
            let [full, lr_area] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Min(15)]).areas(top);
            loss_chart(frame, full, run, loss, 0);
            lr_chart(frame, lr_area, app);
        } else {
            loss_chart(frame, top, run, &format!("{loss} (full history)"), 0);
        }
        bucket_chart(frame, mid, run, timesteps, weighted);
        draw_previews(frame, previews, app, images);
    }
}

/// The learning rate of every step of the configured run (warm-up, then constant or cosine
/// decay, as the trainer applies it), with a marker at the current step.
fn lr_chart(frame: &mut Frame, area: Rect, app: &App) {
    let s = &app.settings.train;
    let cfg = s.recipe(1);
    let steps = s.steps.max(1);
    let n = 200.min(steps);
    let points: Vec<(f64, f64)> = (0..=n)
        .map(|i| {
            let step = i * steps / n;
            (step as f64, cfg.learning_rate(step.min(steps - 1)))
        })
        .collect();
    // The rate asked is the schedule's peak (warm-up rises to it, the decay falls from it),
    // whether or not a sampled step lands on it.
    let hi = cfg.lr;
    // In units of the rate's power of ten (`lr ×1e-3`: 0, 1, 2): the chart is narrow, and
    // labels such as `1.1e-4` were cut to `1.1e-`.
    let exp = if hi > 0.0 {
        hi.log10().floor() as i32
    } else {
        0
    };
    let unit = 10f64.powi(exp);
    let points: Vec<(f64, f64)> = points.into_iter().map(|(x, y)| (x, y / unit)).collect();
    // Rounded off so that 2e-3 over 1e-3 labels `2` rather than `2.00` (it is 1.9999…).
    let hi = (hi / unit * 1e9).round() / 1e9;
    let step = app.train.run.step();
    chart::draw(
        frame,
        area,
        &[Series {
            name: String::new(),
            color: theme::WARN,
            points,
        }],
        &ChartOpts {
            title: "Learning rate".into(),
            x_title: "step".into(),
            y_title: if exp == 0 {
                "lr".into()
            } else {
                format!("lr ×1e{exp}")
            },
            x_bounds: Some([0.0, steps as f64]),
            // The peak rate on the top line, so the top label is the rate asked (2 for 2e-3).
            y_bounds: Some([0.0, hi]),
            marker: (step > 0).then_some(step as f64),
            ..ChartOpts::default()
        },
    );
}

fn draw_config(frame: &mut Frame, area: Rect, app: &App) {
    let editable = app.train.editable();
    let title = if editable {
        "Configuration  ↑↓ pick ←→ change"
    } else {
        "Configuration (fixed while training)"
    };
    let s = &app.settings.train;
    let n_train = app.data.info.as_ref().map(|i| i.n_train);
    let rows: Vec<Row> = Field::ALL
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let value = match f {
                Field::Steps => epochs_note(f.value(s), s.steps, s.batch_size, n_train),
                Field::Preview => epochs_note(f.value(s), s.preview_every, s.batch_size, n_train),
                _ => f.value(s),
            };
            let row = Row::new(vec![f.label().to_string(), value]);
            if editable && i == app.train.field {
                row.style(theme::selected())
            } else {
                row
            }
        })
        .collect();
    // What the recipe sets that the keys do not (shown, not edited), where the box has room:
    // min-SNR first, since the loss chart is weighted by it.
    let mut rows = rows;
    rows.extend(
        s.recipe_extras()
            .into_iter()
            .map(|(k, v)| Row::new(vec![k.to_string(), v]).style(theme::label())),
    );
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

/// `value` with the whole epochs `steps` make of `n_train` images at `batch` a step, where
/// they are whole (`335 · 5 epochs`): the values the setting offers for the data loaded.
fn epochs_note(value: String, steps: usize, batch: usize, n_train: Option<usize>) -> String {
    let Some(epoch) = n_train.map(|n| crate::data::epoch_steps(n, batch)) else {
        return value;
    };
    match steps {
        0 => value,
        s if s == epoch => format!("{value} · 1 epoch"),
        s if s.is_multiple_of(epoch) => format!("{value} · {} epochs", s / epoch),
        _ => value,
    }
}

fn state_span(run: &RunProgress) -> Span<'static> {
    let color = match &run.state {
        _ if run.is_held() => theme::ERROR,
        RunState::Running => theme::OK,
        RunState::Paused | RunState::Starting | RunState::Stopping | RunState::Opened => {
            theme::WARN
        }
        RunState::Failed(_) => theme::ERROR,
        _ => theme::ACCENT,
    };
    Span::styled(
        run.label().to_uppercase(),
        Style::default().fg(color).add_modifier(Modifier::BOLD),
    )
}

/// What the Train screen says of the run the last session left: its name, then how to open it
/// and where it stands (`o` under the runs folder; elsewhere the command that starts the lab
/// on its folder, first: at 80×24 the panel has room for one line of it).
fn last_run_lines(shown: &crate::tui::state::train::LastRun) -> (String, String) {
    let last = &shown.summary;
    let target = last.settings.as_ref().map_or(0, |s| s.steps);
    let at = match last.step {
        0 => "no checkpoint yet".to_string(),
        n if n >= target => format!("finished at step {n}"),
        n => format!("stopped at step {n} of {target}"),
    };
    match &shown.under_root {
        Some(name) => (name.display().to_string(), format!("{at} · o opens it")),
        None => (
            last.dir.file_name().map_or_else(
                || last.dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            format!(
                "ddpm-lab --runs-dir {} opens it · {at}",
                last.dir
                    .parent()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
        ),
    }
}

fn draw_progress(frame: &mut Frame, area: Rect, app: &App) {
    let run = &app.train.run;
    // What space does now; `c` only where a run trains here (elsewhere it answers that none
    // does).
    let space = app
        .train
        .space_does(app.settings.train.steps)
        .map(|does| format!("space {does}"));
    let keys = match (space, run.is_active()) {
        (Some(space), true) => format!("  {space} · c ckpt "),
        (None, true) => "  c ckpt ".to_string(),
        (Some(space), false) => format!("  {space} "),
        (None, false) => String::new(),
    };
    let title = Line::from(vec![
        Span::styled(" Progress ", theme::title()),
        state_span(run),
        Span::styled(keys, theme::label()),
    ]);
    let b = super::block_titled(title);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let batch = app.settings.train.batch_size;
    let [gauges, text] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    let [g1, g2] =
        Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(gauges);
    // A run at rest on its checkpoint is shown towards the steps space trains it to.
    let total = if run.total_steps > 0 && run.state != RunState::Opened {
        run.total_steps
    } else {
        app.settings.train.steps
    };
    frame.render_widget(
        Gauge::default()
            .ratio(if total > 0 {
                (run.step() as f64 / total as f64).clamp(0.0, 1.0)
            } else {
                0.0
            })
            .label(format!("step {}/{}", run.step(), total))
            .gauge_style(Style::default().fg(theme::ACCENT)),
        g1,
    );
    let (epoch, ef) = run.epoch_progress().unwrap_or((0, 0.0));
    let epochs = crate::data::epochs_suffix(total, run.steps_per_epoch);
    frame.render_widget(
        Gauge::default()
            .ratio(ef)
            .label(format!("epoch {}{epochs} {:.0}%", epoch + 1, ef * 100.0))
            .gauge_style(Style::default().fg(theme::SMOOTH)),
        g2,
    );
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<9}"), theme::label()),
            Span::raw(v),
        ])
    };
    // Most important first: at 80×24 the block shows three lines (loss, time, speed and the
    // step of the last checkpoint).
    let mut lines = Vec::new();
    let mut saved_said = false;
    if let RunState::Failed(m) = &run.state {
        lines.push(Line::styled(m.clone(), Style::default().fg(theme::ERROR)));
    }
    if let Some(last) = &run.last {
        let sm = run.smoothed.last().map_or(last.loss, |p| p.1);
        lines.push(kv("loss", format!("{:.4} (smoothed {:.4})", last.loss, sm)));
        // Averaged over the last steps; nothing stale while paused.
        let idle = match run.state {
            RunState::Paused => "paused",
            _ => "—",
        };
        let budget = run.eta_with_budget(batch, app.settings.train.time_limit_s);
        lines.push(Line::from(vec![
            Span::styled(format!("{:<9}", "elapsed"), theme::label()),
            Span::raw(theme::duration(last.elapsed_s)),
            Span::styled(" · ETA ", theme::label()),
            Span::raw(match (budget, &run.state) {
                (Some((s, true)), _) => format!("{} (budget)", theme::duration(s)),
                (Some((s, false)), _) => theme::duration(s),
                // Why it stopped short, for as long as it is shown (the status line's word
                // on it passes).
                (None, RunState::Finished(FinishReason::TimeLimit)) => "— (budget spent)".into(),
                (None, _) => idle.into(),
            }),
        ]));
        // Where the budget ends the run, short of its stop step (a cosine decay planned to
        // the stop step is cut short there): before the speed, which it is worked out from.
        if let (Some((s, true)), Some(r)) = (budget, run.steps_per_s(batch)) {
            let near = run.step() + (s * r).round() as usize;
            lines.push(kv(
                "budget",
                format!("ends near step {near} of {}", run.total_steps),
            ));
        }
        let speed = run.images_per_s(batch);
        let mut line = kv(
            "speed",
            speed.map_or(idle.into(), |v| format!("{v:.0} img/s")),
        );
        if let Some(step) = run.checkpoint_step {
            line.spans.push(Span::styled(" · saved ", theme::label()));
            line.spans.push(Span::raw(format!("step {step}")));
            saved_said = true;
        }
        lines.push(line);
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
    // Before this session's first run: the one the last session left, and how to open it.
    if let (RunState::Idle, None, Some(last)) = (&run.state, &run.run_dir, &app.train.last_run) {
        let w = (text.width as usize).saturating_sub(9);
        let (name, open) = last_run_lines(last);
        lines.push(kv("last run", super::ellipsize_middle(&name, w)));
        lines.push(Line::styled(open, theme::label()));
    }
    if run.num_params > 0 {
        lines.push(kv("params", theme::count(run.num_params)));
    }
    match run.checkpoint_step {
        Some(step) if !saved_said => lines.push(kv("saved", format!("step {step}"))),
        _ => {}
    }
    if let Some(dir) = &run.run_dir {
        let w = (text.width as usize).saturating_sub(9);
        lines.push(kv(
            "run dir",
            super::ellipsize_middle(&dir.display().to_string(), w),
        ));
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
            Paragraph::new("no steps yet: press space to train")
                .style(theme::label())
                .wrap(ratatui::widgets::Wrap { trim: true }),
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
            y_title: "loss".into(),
            y_bounds: Some([(y_min - pad).max(0.0), y_max + pad]),
            legend: Some(LegendPosition::TopRight),
            ..ChartOpts::default()
        },
    );
}

/// Where the labels of a bar chart's x axis go: `(x offset, text)` of every `stride`-th bar,
/// the stride the smallest that keeps labels a space apart.
pub fn bar_axis_labels(values: &[usize], bar: u16, gap: u16) -> Vec<(u16, String)> {
    let texts: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    let widest = texts.iter().map(|t| t.len()).max().unwrap_or(1) as u16;
    let pitch = (bar + gap).max(1);
    let stride = [1u16, 2, 5, 10]
        .into_iter()
        .find(|k| k * pitch > widest)
        .unwrap_or(values.len().max(1) as u16);
    texts
        .into_iter()
        .enumerate()
        .step_by(stride as usize)
        .map(|(i, t)| (i as u16 * pitch, t))
        .collect()
}

/// The smoothed loss per timestep bucket. With min-SNR weighting the Loss panel shows the
/// weighted loss, and these bars the unweighted one per image (what each t costs), so the
/// title says so. `timesteps` and `weighted` are the run's (the settings' only before it has
/// any): edits after it started describe another run.
fn bucket_chart(
    frame: &mut Frame,
    area: Rect,
    run: &RunProgress,
    timesteps: usize,
    weighted: bool,
) {
    let values: Vec<f64> = run.buckets.iter().flatten().copied().collect();
    let (name, short) = if weighted {
        ("Unweighted loss by t", "Unweighted by t")
    } else {
        ("Loss by timestep t", "Loss by t")
    };
    // The range, where the title has room for it (with a shorter name first).
    let title = match (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => {
            let (long, brief) = (
                format!("{name} · {lo:.2}–{hi:.2}"),
                format!("{short} · {lo:.2}–{hi:.2}"),
            );
            super::title_with_notes(&[&long, &brief, name], &[], area.width)
        }
        _ => name.to_string(),
    };
    let b = block(&title);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    if values.is_empty() {
        frame.render_widget(Paragraph::new("—").style(theme::label()), inner);
        return;
    }
    let n = LOSS_BUCKETS as u16;
    let gap = u16::from(inner.width >= 2 * n - 1);
    let width = ((inner.width + gap) / n).saturating_sub(gap).max(1);
    let [bars_area, axis] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let bars: Vec<Bar> = run
        .buckets
        .iter()
        .map(|v| {
            let v = v.unwrap_or(0.0);
            Bar::default()
                .value((v * 1000.0).round() as u64)
                .text_value(if width >= 4 {
                    format!("{v:.2}")
                } else {
                    String::new()
                })
                .style(Style::default().fg(theme::SMOOTH))
        })
        .collect();
    frame.render_widget(
        BarChart::default()
            .data(BarGroup::default().bars(&bars))
            .bar_width(width)
            .bar_gap(gap),
        bars_area,
    );
    // The x axis: the first t of each bucket, whole numbers, as many as fit.
    let starts: Vec<usize> = (0..LOSS_BUCKETS)
        .map(|i| i * timesteps / LOSS_BUCKETS)
        .collect();
    for (x, text) in bar_axis_labels(&starts, width, gap) {
        if x + text.len() as u16 <= axis.width {
            frame.render_widget(
                Span::styled(text, theme::label()),
                Rect::new(axis.x + x, axis.y, axis.width - x, 1),
            );
        }
    }
}

/// How many of the previews to show in `inner`: at least four at 1:1 if they fit, else as
/// many as fit at ½, else at ⅓, else one (at 80×24 two previews at ½ say more than eight at
/// 1/6).
fn previews_shown(images: &ImageRenderer, inner: Rect, all: &[crate::imaging::Image8]) -> usize {
    let tries: [(f64, &[usize]); 3] = [
        (1.0, &[8, 6, 4]),
        (0.5, &[8, 6, 4, 3, 2]),
        (1.0 / 3.0, &[8, 6, 4, 3, 2]),
    ];
    images.shown_count(inner, &all[..all.len().min(8)], &tries)
}

/// The step the Train screen's run stops at: the run's, else the settings' for the next.
fn run_stop(app: &App) -> usize {
    match app.train.run.total_steps {
        0 => app.settings.train.steps,
        n => n,
    }
}

/// When previews come, said in the panel before the first (`every`: the setting; `steps`:
/// where the run stops).
fn preview_schedule(every: usize, steps: usize) -> String {
    let early: Vec<String> = crate::store::config::EARLY_PREVIEWS
        .iter()
        .filter(|&&s| s < every && s < steps)
        .map(|s| s.to_string())
        .collect();
    let listed = match early.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [.., last] => format!("{} and {last}", early[..early.len() - 1].join(", ")),
    };
    // Every `every` steps, and the last step where that is not one of them.
    let end = if every > 0 && steps.is_multiple_of(every) {
        ""
    } else {
        ", and at the last step"
    };
    match (every, early.is_empty(), every < steps) {
        (0, _, _) => "no previews: preview every is off".to_string(),
        (_, true, false) => format!("a preview appears here at the run's last step ({steps})"),
        (_, false, false) => format!(
            "previews appear here while training: at steps {listed}, and at the last ({steps})"
        ),
        (e, true, true) => format!("previews appear here while training, every {e} steps{end}"),
        (e, false, true) => {
            format!("previews appear here while training: at steps {listed}, then every {e}{end}")
        }
    }
}

fn draw_previews(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let (run, every) = (&app.train.run, app.settings.train.preview_every);
    let mut title = match (&run.preview, run.quality.last()) {
        (Some((step, _)), Some((qs, q))) if qs == step => {
            format!(
                "Samples at step {step} · {}",
                quality_trend(&run.quality, q)
            )
        }
        (Some((step, _)), _) => format!("Samples at step {step}"),
        (None, _) => "Samples".to_string(),
    };
    let inner = block("").inner(area);
    let Some((_, all)) = &run.preview else {
        frame.render_widget(block(&title), area);
        // A run opened from disk without preview images (written before runs kept them, or
        // removed) still has its scores.
        let text = match run.quality.last() {
            Some((step, q)) if run.state == RunState::Opened => format!(
                "scored at step {step}: {} (the run holds no preview images; g on Sample draws new ones)",
                quality_trend(&run.quality, q)
            ),
            _ => preview_schedule(every, run_stop(app)),
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(theme::label())
                .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
        return;
    };
    let shown = previews_shown(images, inner, all);
    if let Some(scale) = images.render_grid(frame, inner, &all[..shown]) {
        let mut notes = Vec::new();
        if shown < all.len() {
            notes.push(format!("{shown} of {} shown", all.len()));
        }
        notes.extend(scale.note());
        if !notes.is_empty() {
            // Too narrow for both: the step and the note; a score outlasts the note.
            let step = run.preview.as_ref().map_or(0, |p| p.0);
            let mut titles = vec![title.clone()];
            let mut keep = 0;
            if let Some((_, q)) = run.quality.last().filter(|(qs, _)| *qs == step) {
                titles.push(format!("step {step} · {}", quality_trend(&run.quality, q)));
                titles.push(format!(
                    "step {step} · {:.0}% recognised",
                    q.recognised * 100.0
                ));
                keep = titles.len();
            }
            titles.push(format!("step {step}"));
            let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
            let note = [notes.join(" · ")];
            title = super::title_with_notes_keeping(&titles, &note, area.width, keep);
        }
    }
    frame.render_widget(block(&title), area);
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
    // The earlier scores once there are some (one score is no trend).
    let trend = if history.len() > 1 {
        format!(" ({})", history.join("→"))
    } else {
        String::new()
    };
    format!("{:.0}% recognised{trend}{fd}", last.recognised * 100.0)
}

/// Width of the run column of a table `inner` wide whose other columns take `others`.
pub fn name_width(inner: u16, others: u16) -> usize {
    inner.saturating_sub(others).max(8) as usize
}

/// Draws the picker of earlier runs over `area`.
pub fn draw_picker(frame: &mut Frame, area: Rect, app: &App) {
    let Some(p) = &app.picker else { return };
    let r = super::picker_area(area, p.runs.len());
    frame.render_widget(Clear, r);
    let root = app.settings.runs_root();
    let wide = r.width >= 90;
    // Fixed columns: dataset, steps, config (shorter below 90 columns), with their spacing.
    let (data_w, step_w, cfg_w) = if wide { (14, 11, 32) } else { (8, 6, 22) };
    let name_w = name_width(r.width.saturating_sub(2), 1 + data_w + step_w + cfg_w + 4);
    // ▶ where a process trains the run now: this lab, or `train` elsewhere (then the lab
    // follows it live once opened).
    // Rows the table shows (borders and header take three) and the first one, so the
    // highlighted run is always on screen.
    let visible = r.height.saturating_sub(3).max(1) as usize;
    let first = p.selected.saturating_sub(visible - 1);
    let rows: Vec<Row> = p
        .runs
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, run)| {
            let cfg = run.settings.as_ref().map_or("?".to_string(), |s| {
                if wide {
                    format!(
                        "{} T={} {} {}",
                        s.schedule_label(),
                        s.timesteps,
                        s.model_name(),
                        s.loss
                    )
                } else {
                    format!(
                        "{} T={} {}",
                        s.schedule_label(),
                        s.timesteps,
                        s.model_name()
                    )
                }
            });
            let dataset = run
                .dataset
                .as_deref()
                .map_or("?".into(), super::runs::dataset_label);
            let row = Row::new(vec![
                if app.trained_now(run) { "▶" } else { "" }.to_string(),
                super::ellipsize_middle(&super::run_name(&run.dir, &root), name_w),
                super::ellipsize_middle(&dataset, data_w as usize),
                // Where it is and, with room, where it stops (as Runs shows it); – before
                // its first checkpoint.
                {
                    let saved = if run.unsaved {
                        "–".to_string()
                    } else {
                        run.step.to_string()
                    };
                    match &run.settings {
                        Some(set) if wide => format!("{saved}/{}", set.steps),
                        _ => saved,
                    }
                },
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
            Constraint::Length(1),
            Constraint::Length(name_w as u16),
            Constraint::Length(data_w),
            Constraint::Length(step_w),
            Constraint::Min(cfg_w),
        ],
    )
    .header(Row::new(vec!["", "run", "dataset", "saved", "config"]).style(theme::title()))
    .block(block("Open a run  (↑↓ Enter open · Esc close)"));
    frame.render_widget(table, r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_epochs_are_named_beside_the_steps() {
        // 8 517 images at 128: 67 steps an epoch.
        let note = |steps: usize| epochs_note(steps.to_string(), steps, 128, Some(8517));
        assert_eq!(note(67), "67 · 1 epoch");
        assert_eq!(note(335), "335 · 5 epochs");
        assert_eq!(note(500), "500");
        assert_eq!(note(0), "0");
        assert_eq!(epochs_note("335".into(), 335, 128, None), "335");
    }

    #[test]
    fn the_preview_panel_says_when_previews_come() {
        assert_eq!(
            preview_schedule(200, 2000),
            "previews appear here while training: at steps 25, 50 and 100, then every 200"
        );
        assert_eq!(
            preview_schedule(60, 570),
            "previews appear here while training: at steps 25 and 50, then every 60, and at the last step"
        );
        assert_eq!(
            preview_schedule(10, 100),
            "previews appear here while training, every 10 steps"
        );
        // A run shorter than the interval: the early ones it reaches, and its last step.
        assert_eq!(
            preview_schedule(1000, 80),
            "previews appear here while training: at steps 25 and 50, and at the last (80)"
        );
        assert_eq!(
            preview_schedule(1000, 20),
            "a preview appears here at the run's last step (20)"
        );
        assert_eq!(preview_schedule(0, 20), "no previews: preview every is off");
    }
}
