//! The Sample screen: sampler settings, progress, and the denoising frames (x_t beside the
//! predicted x̂₀) with a cursor that steps and plays.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, LineGauge, Paragraph};
use ratatui::Frame;

use super::image::ImageRenderer;
use super::{block, theme};
use crate::tui::state::sample::{FrameCursor, SampleStatus, SampleTarget};
use crate::tui::state::App;
use crate::tui::workers::Frames;

/// The settings column, the two image panels' area and the frame bar of the Sample screen.
pub fn areas(body: Rect) -> [Rect; 3] {
    let [left, right] =
        Layout::horizontal([Constraint::Length(38), Constraint::Min(30)]).areas(body);
    let [panels, scrub] =
        Layout::vertical([Constraint::Min(6), Constraint::Length(3)]).areas(right);
    [left, panels, scrub]
}

/// Draws the Sample screen.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let [left, panels, scrub] = areas(area);
    draw_settings(frame, left, app);
    let [xt, x0] =
        Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(panels);
    let s = &app.sample;
    // While sampling, the images as they are being denoised.
    if let (SampleStatus::Running { done, total }, Some((_, now))) = (&s.status, &s.current) {
        let title = format!("x_t   denoising step {done}/{total}");
        // A step counter, not t (which counts down): said so, short as it is.
        let short = format!("x_t step {done}/{total}");
        panel(frame, xt, &[&title, &short], Some(now), images);
        let x0_titles = ["predicted x̂₀ (when sampling ends)", "x̂₀ (at the end)"];
        panel(frame, x0, &x0_titles, None, images);
        frame.render_widget(block("frames"), scrub);
        return;
    }
    match &s.frames {
        Some(f) if !f.is_empty() => {
            let i = s.cursor.index.min(f.len() - 1);
            let t = frame_t(f, i);
            let (title, short) = (format!("x_t   t = {t}"), format!("x_t t={t}"));
            panel(frame, xt, &[&title, &short], Some(&f.frames[i]), images);
            let x0_titles = ["predicted x̂₀ at this step", "x̂₀ at this step", "x̂₀"];
            panel(frame, x0, &x0_titles, f.x0_at(i), images);
            draw_scrub(frame, scrub, f, &s.cursor, None);
        }
        _ => {
            let msg = match &s.status {
                SampleStatus::Running { .. } => "sampling…",
                _ => "press g to generate samples from the trained run",
            };
            for (r, title) in [(xt, "x_t"), (x0, "predicted x̂₀")] {
                let b = block(title);
                let inner = b.inner(r);
                frame.render_widget(b, r);
                frame.render_widget(
                    Paragraph::new(msg)
                        .style(theme::label())
                        .wrap(ratatui::widgets::Wrap { trim: true }),
                    inner,
                );
            }
            frame.render_widget(block("frames"), scrub);
        }
    }
}

/// The run the Sample screen draws from (named as the run lists name it) in `width` columns,
/// with the step of the checkpoint it would sample when known (`RUN · step 120`): on one line
/// where both fit, else the step on a line of its own; the name is shortened only where it
/// does not fit alone.
fn source_lines(run: &str, step: Option<usize>, width: usize) -> Vec<String> {
    let step = step.map_or(String::new(), |n| format!(" · step {n}"));
    if run.chars().count() + step.chars().count() <= width {
        return vec![format!("{run}{step}")];
    }
    let name = super::ellipsize_middle(run, width);
    if step.is_empty() {
        vec![name]
    } else {
        vec![name, step.trim_start_matches(" · ").to_string()]
    }
}

/// What the frames shown were drawn with (the settings above may have changed since): the
/// checkpoint's step when known, the sampler and the seed (`step 200 · DDIM 25 · seed 1`).
pub(super) fn drawn_label(
    settings: Option<&crate::tui::settings::SampleSettings>,
    step: Option<usize>,
) -> String {
    let mut parts = Vec::new();
    if let Some(n) = step {
        parts.push(format!("step {n}"));
    }
    if let Some(s) = settings {
        parts.push(if s.ddim {
            if s.eta > 0.0 {
                format!("DDIM {} η={}", s.ddim_steps, s.eta)
            } else {
                format!("DDIM {}", s.ddim_steps)
            }
        } else {
            "DDPM".to_string()
        });
        parts.push(format!("seed {}", s.seed));
    }
    if parts.is_empty() {
        "the last samples".to_string()
    } else {
        parts.join(" · ")
    }
}

/// Timestep label of frame `i` ("noise" for the first frame, "final" after the last step).
pub fn frame_t(f: &Frames, i: usize) -> String {
    match f.timesteps.get(i) {
        Some(t) => t.to_string(),
        None if i == 0 => "T (noise)".into(),
        None => "final".into(),
    }
}

/// Draws a titled grid of images: all of them where each shows at ⅓ scale or larger, else the
/// first 16, 9, 4 or 2 that show at ½, then at ⅓ (16 images at 1/7 in a small terminal are
/// blobs). The title says how many are shown and when they are drawn below 1:1 (`titles`: the
/// ways to say it, longest first, see [`super::title_with_note`]).
pub fn panel(
    frame: &mut Frame,
    area: Rect,
    titles: &[&str],
    imgs: Option<&Vec<crate::imaging::Image8>>,
    images: &ImageRenderer,
) {
    let inner = block("").inner(area);
    let notes = imgs.map_or(Vec::new(), |all| render_samples(frame, inner, all, images));
    let title = super::title_with_notes(titles, &notes, area.width);
    frame.render_widget(block(&title), area);
}

/// Draws samples in `inner` as [`panel`] does (all of them, or fewer and larger); returns the
/// ways to say how many are shown at what scale, for the title (see [`count_notes`]).
pub(super) fn render_samples(
    frame: &mut Frame,
    inner: Rect,
    all: &[crate::imaging::Image8],
    images: &ImageRenderer,
) -> Vec<String> {
    let n = all.len();
    let tries: [(f64, &[usize]); 3] = [
        (1.0 / 3.0, &[n]),
        (0.5, &[16, 9, 4, 2]),
        (1.0 / 3.0, &[16, 9, 4, 2]),
    ];
    let shown = images.shown_count(inner, all, &tries);
    let scale = images.render_grid(frame, inner, &all[..shown]);
    count_notes(shown, n, scale.and_then(|s| s.note()))
}

/// The ways to say, longest first, that `shown` of `n` images are drawn at `scale` (a note
/// such as `½ scale`, `None` at 1:1): `2 of 16 · ½ scale` … `2/16`. The count outlasts the
/// scale where room runs out: images left out matter more than their size.
fn count_notes(shown: usize, n: usize, scale: Option<String>) -> Vec<String> {
    let ways = scale.map_or(Vec::new(), super::scale_ways);
    match (shown < n, ways.as_slice()) {
        (false, _) => ways,
        (true, [long, short]) => vec![
            format!("{shown} of {n} · {long}"),
            format!("{shown} of {n} · {short}"),
            format!("{shown}/{n} · {short}"),
            format!("{shown}/{n}"),
        ],
        (true, _) => vec![format!("{shown} of {n}"), format!("{shown}/{n}")],
    }
}

/// The part of a frame bar's line that stands for the frames (after its label): a click or
/// drag at `x` there picks the frame [`seek_index`] gives.
pub fn scrub_track(inner: Rect) -> Rect {
    let label = SCRUB_LABEL.min(inner.width.saturating_sub(4));
    Rect {
        x: inner.x + label,
        width: inner.width - label,
        ..inner
    }
}

/// Width kept for the label of the frame bar (`frame 101/201  t = 100`).
pub const SCRUB_LABEL: u16 = 26;

/// The frame of `len` under column `x` of `track` (clamped to the ends).
pub fn seek_index(track: Rect, x: u16, len: usize) -> usize {
    if len <= 1 || track.width <= 1 {
        return 0;
    }
    let pos = x.saturating_sub(track.x).min(track.width - 1) as f64;
    (pos / (track.width - 1) as f64 * (len - 1) as f64).round() as usize
}

/// Draws the frame position bar: its label, then a track the mouse can click or drag.
pub fn draw_scrub(
    frame: &mut Frame,
    area: Rect,
    f: &Frames,
    cursor: &FrameCursor,
    drawn: Option<&str>,
) {
    let drawn = drawn.map_or(String::new(), |d| format!(" · {d}"));
    let title = if cursor.playing {
        format!("frames{drawn} ▶ playing (p pauses)")
    } else {
        format!("frames{drawn}  ←/→ PgUp/PgDn Home/End · p play · drag")
    };
    let b = block(&title);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let len = f.len().max(1);
    let ratio = if len > 1 {
        cursor.index as f64 / (len - 1) as f64
    } else {
        1.0
    };
    let track = scrub_track(inner);
    frame.render_widget(
        Line::from(format!(
            "frame {}/{}  t = {}",
            cursor.index + 1,
            len,
            frame_t(f, cursor.index)
        )),
        Rect {
            width: inner.width - track.width,
            ..inner
        },
    );
    frame.render_widget(
        LineGauge::default()
            .ratio(ratio.clamp(0.0, 1.0))
            .label("")
            .filled_style(Style::default().fg(theme::ACCENT)),
        track,
    );
}

/// The score of the images on screen: share recognised by the classifier (real test images:
/// about 80 %), the class range, and the Fréchet distance from 64 images on.
fn quality_line(q: &Result<crate::eval::Quality, String>) -> Line<'static> {
    match q {
        Ok(q) => Line::from(vec![
            Span::styled("quality  ", theme::label()),
            Span::styled(q.summary(), Style::default().add_modifier(Modifier::BOLD)),
            Span::styled(" (real ≈ 80% recognised)", theme::label()),
        ]),
        Err(why) => Line::styled(format!("quality  {why}"), theme::label()),
    }
}

fn draw_settings(frame: &mut Frame, area: Rect, app: &App) {
    let b = block("Sampler");
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let s = &app.settings.sample;
    let kv = |k: &str, v: String, key: &str| {
        Line::from(vec![
            Span::styled(format!("{k:<9}"), theme::label()),
            Span::styled(v, Style::default().add_modifier(Modifier::BOLD)),
            Span::styled(format!("  {key}"), theme::label()),
        ])
    };
    // `steps` goes where η is said, so the row and its keys fit 80 columns' panel.
    // DDIM takes at most the run's T steps.
    let ddim_steps = s.for_run(app.sample_timesteps()).ddim_steps;
    let sampler = if s.ddim && s.eta > 0.0 {
        format!("DDIM {ddim_steps} η={}", s.eta)
    } else if s.ddim {
        format!("DDIM {ddim_steps} steps η=0")
    } else {
        format!("DDPM {} steps", app.sample_timesteps())
    };
    let target = app.sample_target();
    // The run as the run lists name it, with the step `g` would sample when known.
    let run_lines = |dir: &std::path::Path, step| {
        let name = super::run_name(dir, &app.settings.runs_root());
        source_lines(&name, step, (inner.width as usize).saturating_sub(9))
    };
    let mut lines = vec![
        kv("sampler", sampler, if s.ddim { "k [ ] n" } else { "k [ ]" }),
        kv("images", s.n.to_string(), "+ −"),
        kv("seed", s.seed.to_string(), "s"),
        Line::from(""),
    ];
    let source = match &target {
        SampleTarget::Run { dir, step } => run_lines(dir, *step),
        SampleTarget::Awaiting(dir) => run_lines(dir, None),
        SampleTarget::Nothing => vec!["none: train one or open one".to_string()],
    };
    for (k, text) in source.into_iter().enumerate() {
        // (A label on the step's own line too: a wrapped paragraph trims leading blanks.)
        let label = if k == 0 { "run      " } else { "ckpt     " };
        lines.push(Line::from(vec![
            Span::styled(label, theme::label()),
            Span::raw(text),
        ]));
    }
    if matches!(target, SampleTarget::Awaiting(_)) {
        lines.push(Line::styled(
            "waiting for its first checkpoint",
            theme::label(),
        ));
    }
    let [text, gauge, export] = Layout::vertical([
        Constraint::Min(6),
        Constraint::Length(1),
        Constraint::Length(6),
    ])
    .areas(inner);
    match &app.sample.status {
        SampleStatus::Failed(e) => lines.push(Line::styled(
            format!("failed: {e}"),
            Style::default().fg(theme::ERROR),
        )),
        SampleStatus::Stopped { done, total } => {
            lines.push(Line::styled(
                format!("stopped at step {done}/{total}"),
                theme::label(),
            ));
            if let Some(f) = &app.sample.frames {
                lines.push(Line::styled(
                    format!(
                        "shown: {}",
                        drawn_label(app.sample.drawn_with.as_ref(), f.step)
                    ),
                    Style::default().fg(theme::OK),
                ));
                lines.push(quality_line(&f.quality));
            }
        }
        SampleStatus::Ready => {
            let step = app.sample.frames.as_ref().and_then(|f| f.step);
            lines.push(Line::styled(
                format!(
                    "shown: {}",
                    drawn_label(app.sample.drawn_with.as_ref(), step)
                ),
                Style::default().fg(theme::OK),
            ));
            if let Some(f) = &app.sample.frames {
                lines.push(quality_line(&f.quality));
            }
        }
        SampleStatus::Running { .. } => {
            // The job's own settings: the ones above are the next `g`'s, and may differ.
            if let Some(job) = app.sample.sampling_with() {
                lines.push(Line::styled(
                    format!(
                        "drawing: {} · {} images",
                        drawn_label(Some(job), None),
                        job.n
                    ),
                    Style::default().fg(theme::WARN),
                ));
            }
        }
        _ => {}
    }
    let keys = if matches!(app.sample.status, SampleStatus::Running { .. }) {
        "x stops it · g once it ends"
    } else {
        "g generate · e export"
    };
    lines.push(Line::styled(keys, theme::label()));
    frame.render_widget(
        Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }),
        text,
    );
    if let SampleStatus::Running { done, total } = app.sample.status {
        let ratio = if total > 0 {
            done as f64 / total as f64
        } else {
            0.0
        };
        frame.render_widget(
            Gauge::default()
                .ratio(ratio.clamp(0.0, 1.0))
                .label(match app.sample.time_left_s() {
                    Some(left) => format!("step {done}/{total} · {} left", theme::duration(left)),
                    None => format!("step {done}/{total}"),
                })
                .gauge_style(Style::default().fg(theme::ACCENT)),
            gauge,
        );
    }
    let exported = match (&app.sample.exported, app.sample.exporting) {
        (_, true) => vec![Line::styled("exporting…", Style::default().fg(theme::WARN))],
        // The folder once (shortened in the middle where it does not fit), then each file by
        // name: whole paths wrapped over lines, and the panel's border cut the last.
        (Some(Ok(paths)), _) => {
            let w = export.width as usize;
            let mut v = vec![Line::styled(
                "exported into",
                Style::default().fg(theme::OK),
            )];
            if let Some(dir) = paths.first().and_then(|p| p.parent()) {
                v.push(Line::from(super::ellipsize_middle(
                    &format!("{}/", dir.display()),
                    w,
                )));
            }
            v.extend(paths.iter().map(|p| {
                let name = p
                    .file_name()
                    .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into());
                Line::from(super::ellipsize_middle(&name, w))
            }));
            v
        }
        (Some(Err(e)), _) => vec![Line::styled(
            format!("export failed: {e}"),
            Style::default().fg(theme::ERROR),
        )],
        (None, _) => vec![],
    };
    frame.render_widget(
        Paragraph::new(exported).wrap(ratatui::widgets::Wrap { trim: false }),
        export,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_shown_as_its_run_and_step() {
        let run = "20261203-133009-cosine";
        assert_eq!(
            source_lines(run, Some(23), 40),
            ["20261203-133009-cosine · step 23"]
        );
        // The name whole, the step below, where both do not fit one line.
        assert_eq!(
            source_lines(run, Some(123), 27),
            ["20261203-133009-cosine", "step 123"]
        );
        assert_eq!(
            source_lines(run, Some(23), 16),
            ["20261…009-cosine", "step 23"]
        );
        assert_eq!(source_lines(run, None, 40), ["20261203-133009-cosine"]);
    }
}
