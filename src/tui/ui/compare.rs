//! The Compare screen: one run per schedule, their loss curves overlaid, then their samples
//! from the same noise and denoising frames side by side, stepping together.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LegendPosition, Paragraph};
use ratatui::Frame;

use super::chart::{self, ChartOpts, Series};
use super::image::ImageRenderer;
use super::sample::{draw_scrub, drawn_label, frame_t};
use super::{block, theme};
use crate::tui::state::run::RunState;
use crate::tui::state::sample::SampleStatus;
use crate::tui::state::App;

/// Draws the Compare screen.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let [top, bottom] = halves(area);
    let [status, losses] =
        Layout::horizontal([Constraint::Length(40), Constraint::Min(30)]).areas(top);
    draw_status(frame, status, app);
    let series: Vec<Series> = app
        .compare
        .slots
        .iter()
        .filter(|s| !s.run.smoothed.is_empty())
        .map(|s| Series {
            name: s.schedule.name().to_string(),
            color: theme::schedule_color(s.schedule),
            points: s.run.smoothed.clone(),
        })
        .collect();
    if series.is_empty() {
        let b = block("Loss by schedule (smoothed)");
        let inner = b.inner(losses);
        frame.render_widget(b, losses);
        frame.render_widget(
            Paragraph::new("space trains one model per schedule: same data, seed and model")
                .style(theme::label())
                .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
    } else {
        let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let y_max = ys().fold(f64::MIN, f64::max);
        let y_min = ys().fold(f64::MAX, f64::min);
        let pad = ((y_max - y_min) * 0.05).max(1e-4);
        // The loss the runs train on (min-SNR weighting included), named: each schedule's
        // loss is over its own noise levels, so the curves say how each learns, and the
        // samples say which is better.
        let s = app.compare.settings.as_ref().unwrap_or(&app.settings.train);
        chart::draw(
            frame,
            losses,
            &series,
            &ChartOpts {
                title: format!("Loss by schedule ({}, smoothed)", s.loss_kind()),
                x_title: "step".into(),
                y_title: "loss".into(),
                y_bounds: Some([(y_min - pad).max(0.0), y_max + pad]),
                legend: Some(LegendPosition::TopRight),
                ..ChartOpts::default()
            },
        );
    }
    draw_samples(frame, bottom, app, images);
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let c = &app.compare;
    let title = format!(
        "Runs · {} · {} steps each",
        app.settings.compare_mode.name(),
        app.settings.compare_steps
    );
    let b = block(&title);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let mut lines = Vec::new();
    for (i, s) in c.slots.iter().enumerate() {
        let color = theme::schedule_color(s.schedule);
        let marker = if c.active == Some(i) && s.run.is_active() {
            "▶ "
        } else {
            "  "
        };
        let loss = s
            .run
            .smoothed
            .last()
            .map_or("—".to_string(), |p| format!("{:.4}", p.1));
        // A run at rest is shown at its checkpoint (its log may run past it: steps of a session
        // that ended without saving them, which `c` goes back past) and towards the steps `c`
        // trains it to; a live one at its step, towards its own stop step.
        let at_rest = matches!(s.run.state, RunState::Opened | RunState::Idle);
        let shown_step = if s.run.state == RunState::Opened {
            s.run.checkpoint_step.unwrap_or(0)
        } else {
            s.run.step()
        };
        let shown_total = if at_rest || s.run.total_steps == 0 {
            app.settings.compare_steps
        } else {
            s.run.total_steps
        };
        let state = match &s.run.state {
            // Its checkpoint could not be written: it waits, weights in memory.
            _ if s.run.is_held() => s.run.label().to_string(),
            RunState::Idle => "waiting".to_string(),
            // At its checkpoint on disk: its turn comes while the comparison trains.
            RunState::Opened if c.any_active() => "waiting".to_string(),
            // Round-robin: a run the scheduler paused (or is pausing) waits for its next turn;
            // only the user's pause is "paused".
            RunState::Running | RunState::Paused if c.active != Some(i) && !c.paused => {
                "waiting".to_string()
            }
            // The user paused the comparison: every run waits for space; the one whose turn it
            // is pauses after the step it is on.
            RunState::Running if c.paused && c.active == Some(i) => "pausing".to_string(),
            RunState::Running | RunState::Paused if c.paused => "paused".to_string(),
            // As a run trained here reads at its end: finished at the steps asked, else saved
            // short of them (`c` trains it on).
            RunState::Opened if shown_step >= shown_total => "finished".to_string(),
            RunState::Opened => "saved".to_string(),
            _ => s.run.state.label().to_string(),
        };
        lines.push(Line::from(vec![
            Span::raw(marker),
            Span::styled(
                format!("{:<10}", s.schedule.name()),
                Style::default().fg(color).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{:>5}/{:<5} ", shown_step, shown_total)),
            Span::styled(format!("{state:<9}"), theme::label()),
            Span::raw(loss),
            Span::styled(
                s.run
                    .quality
                    .last()
                    .map(|(_, q)| format!("  {:.0}% recognised", q.recognised * 100.0))
                    .unwrap_or_default(),
                theme::label(),
            ),
        ]));
    }
    lines.push(Line::from(""));
    // Paused by space while a run is alive; `x` pauses the scheduler too, but once its runs
    // have ended there is nothing to resume.
    let held = c.slots.iter().find(|s| s.run.is_held());
    let hint = if let Some(h) = held {
        // Its last checkpoint can only be saved; one on the way may also train on.
        if h.run.can_train_on() {
            "not saved: c saves · space trains on"
        } else {
            "not saved: make room, c saves"
        }
    } else if c.stopping() {
        "stopping: writing the checkpoints"
    } else if c.paused && c.any_active() {
        "paused: space resumes"
    } else if c.any_active() {
        "space pauses"
    } else if c.sampling() {
        "sampling: x stops it"
    } else if c.can_continue(app.settings.compare_steps) {
        "c: continue · g: sample · space: new"
    } else if c.all_finished() || c.slots.iter().any(|s| s.run.checkpoint_step.is_some()) {
        // Space starts a new comparison (this one stays on disk).
        "g: sample · +,c: train on · space: new"
    } else {
        "space starts · m mode · +/− steps"
    };
    lines.push(Line::styled(hint, theme::label()));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The frame bar of the Compare screen in `body`.
pub fn scrub_area(body: Rect) -> Rect {
    samples_areas(halves(body)[1])[1]
}

fn halves(body: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Percentage(40), Constraint::Min(8)]).areas(body)
}

fn samples_areas(area: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Min(5), Constraint::Length(3)]).areas(area)
}

fn draw_samples(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let c = &app.compare;
    let [panels, scrub] = samples_areas(area);
    let cols = Layout::horizontal(vec![
        Constraint::Ratio(1, c.slots.len() as u32);
        c.slots.len()
    ])
    .split(panels);
    let mut longest = None;
    for (slot, r) in c.slots.iter().zip(cols.iter()) {
        let name = slot.schedule.name();
        // The ways to say the title, longest first (see `title_with_note`).
        let mut titles = vec![name.to_string()];
        // How many titles carry the score (kept before the images' count and scale).
        let mut scored_titles = 0;
        if let Some(f) = &slot.frames {
            if !f.is_empty() {
                let i = c.cursor.index.min(f.len() - 1);
                let t = frame_t(f, i);
                // The checkpoint drawn from, where there is room: training may have gone on.
                let at = f.step.map(|s| format!(" · step {s}")).unwrap_or_default();
                let (long, short) = (format!("{name}  t = {t}{at}"), format!("{name} t={t}"));
                titles = vec![long.clone(), format!("{short}{at}"), short.clone()];
                // The score of the final images, the same for every frame.
                if let Ok(q) = &f.quality {
                    let pct = format!("{:.0}%", q.recognised * 100.0);
                    // Of how many images: a point or two between schedules may be one image.
                    let scored = format!("{long} · {pct} of {} recognised", q.n);
                    titles = vec![scored.clone(), format!("{short}{at} {pct}")];
                    if let Some(fd) = q.frechet {
                        let fd = crate::eval::score::fmt_fd(fd);
                        titles.insert(0, format!("{scored} · FD {fd}"));
                    }
                    // Narrow (80 columns: 16 cells a title), the score without t (the frame bar
                    // says t for all four) outlasts the images' count and scale.
                    titles.extend([format!("{short} {pct}"), format!("{name} {pct}"), short]);
                    scored_titles = titles.len() - 1;
                }
                // Last, the name alone: the images' count and scale outlast t (the frame bar
                // says it for all four).
                titles.push(name.to_string());
                if longest.is_none_or(|l: &crate::tui::workers::Frames| l.len() < f.len()) {
                    longest = Some(f);
                }
            }
        }
        let inner = block("").inner(*r);
        let mut notes = Vec::new();
        match (&slot.frames, &slot.sample_status) {
            // While sampling, its progress (the earlier frames come back if it is stopped).
            (_, SampleStatus::Running { done, total }) => frame.render_widget(
                Paragraph::new(if *total == 0 {
                    // The samplers take turns: this one has not begun.
                    "waiting to sample…".to_string()
                } else {
                    format!("sampling {done}/{total}…")
                })
                .style(theme::label()),
                inner,
            ),
            (Some(f), _) if !f.is_empty() => {
                let i = c.cursor.index.min(f.len() - 1);
                notes = super::sample::render_samples(frame, inner, &f.frames[i], images);
            }
            (_, SampleStatus::Stopped { done, total }) => frame.render_widget(
                Paragraph::new(format!("stopped at {done}/{total} (g samples again)"))
                    .style(theme::label()),
                inner,
            ),
            (_, SampleStatus::Failed(e)) => frame.render_widget(
                Paragraph::new(format!("failed: {e}")).style(Style::default().fg(theme::ERROR)),
                inner,
            ),
            _ => frame.render_widget(
                Paragraph::new("not sampled yet").style(theme::label()),
                inner,
            ),
        }
        // The border goes on last, its title saying how small the images are.
        let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
        let title = super::title_with_notes_keeping(&titles, &notes, r.width, scored_titles);
        let b =
            block(&title).border_style(Style::default().fg(theme::schedule_color(slot.schedule)));
        frame.render_widget(b, *r);
    }
    match longest {
        Some(f) => {
            // The sampler and seed, so that `s` and `g` say what changed.
            let drawn = c.drawn_with.as_ref().map(|s| drawn_label(Some(s), None));
            draw_scrub(frame, scrub, f, &c.cursor, drawn.as_deref())
        }
        None => frame.render_widget(block("frames (all four step together)"), scrub),
    }
}
