//! The status bar: device, dataset, model size, run state, the latest message and the keys of
//! the current screen.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::image::ImageRenderer;
use super::theme;
use crate::tui::event::keys::hints;
use crate::tui::state::notice::Topic;
use crate::tui::state::run::RunState;
use crate::tui::state::sample::SampleStatus;
use crate::tui::state::{App, Lifecycle};

/// Draws the two status lines.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let t = &app.settings.train;
    // A dataset given as a long path is shortened in the middle (its end names it), so that
    // it does not push the device off the line.
    let data = super::ellipsize_middle(&app.data.label(), 36);
    let run = &app.train.run;
    let mut run_text = run.state.label().to_string();
    if run.total_steps > 0 {
        run_text = format!("{run_text} {}/{}", run.step(), run.total_steps);
    }
    if app.compare.any_active() {
        let what = if app.compare.paused {
            "paused"
        } else {
            "training"
        };
        run_text = format!("{run_text} · compare {what}");
    }
    if let Lifecycle::ShuttingDown(_) = app.lifecycle {
        run_text = "saving before quit".to_string();
    }
    let kv = |k: &'static str, v: String| {
        vec![
            Span::styled(k, theme::label()),
            Span::styled(v, Style::default().add_modifier(Modifier::BOLD)),
        ]
    };
    let mut model = kv("model ", t.model_name());
    // The run's parameters, where it is the model the settings name (training or opened); a
    // run that has ended may have another model than the settings now do (after b, say).
    if run.num_params > 0 && (run.is_active() || run.state == RunState::Opened) {
        model.push(Span::raw(format!(" ({})", theme::count(run.num_params))));
    }
    // In display order, with the order in which they give way on a narrow terminal (80
    // columns): the image protocol first, then the device, then the model.
    let build = |device: String| {
        [
            (kv("device ", device), 1),
            (kv("data ", data.clone()), 3),
            (model.clone(), 2),
            (kv("run ", run_text.clone()), 4),
            (kv("images ", images.protocol_name().to_string()), 0),
        ]
    };
    let width = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>();
    let total = |segments: &[(Vec<Span>, usize)], keep: &[bool]| -> usize {
        let shown: Vec<usize> = segments
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|((s, _), _)| width(s))
            .collect();
        shown.iter().sum::<usize>() + 3 * shown.len().saturating_sub(1)
    };
    // A GPU's name and memory where everything fits with them ("cuda · NVIDIA H200 · 140 GiB").
    let mut keep = [true; 5];
    let short = t.device.to_string();
    let segments = app
        .device_names
        .iter()
        .find(|(d, _)| *d == t.device)
        .map(|(_, name)| build(format!("{short} · {name}")))
        .filter(|long| total(long, &keep) <= area.width as usize)
        .unwrap_or_else(|| build(short));
    for rank in 0..segments.len() {
        if total(&segments, &keep) <= area.width as usize {
            break;
        }
        if let Some(i) = segments.iter().position(|(_, r)| *r == rank) {
            keep[i] = false;
        }
    }
    let sep = Span::styled(" │ ", Style::default().fg(theme::DIM));
    let mut spans = Vec::new();
    for ((seg, _), _) in segments.into_iter().zip(&keep).filter(|(_, k)| **k) {
        if !spans.is_empty() {
            spans.push(sep.clone());
        }
        spans.extend(seg);
    }
    let line1 = Line::from(spans);
    let line2 = match &app.notice {
        Some(n) => Line::styled(
            super::ellipsize_end(
                &format!("{}{}", n.text, progress_of(app, &n.topic)),
                area.width as usize,
            ),
            Style::default().fg(if n.error { theme::ERROR } else { theme::OK }),
        ),
        None => Line::styled(
            format!("keys: {}", hints(app.tab.title())),
            Style::default().fg(theme::DIM),
        ),
    };
    let style = Style::default().bg(ratatui::style::Color::Rgb(30, 30, 40));
    frame.render_widget(Paragraph::new(vec![line1, line2]).style(style), area);
}

/// Live progress after a message about work in steps: Compare's sampling says how far its
/// slowest schedule is (` step 12/200`); other messages get nothing.
fn progress_of(app: &App, topic: &Topic) -> String {
    if *topic != Topic::CompareSampling {
        return String::new();
    }
    app.compare
        .slots
        .iter()
        .filter_map(|s| match s.sample_status {
            SampleStatus::Running { done, total } if total > 0 => Some((done, total)),
            _ => None,
        })
        .min_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)))
        .map(|(done, total)| format!(" step {done}/{total}"))
        .unwrap_or_default()
}
