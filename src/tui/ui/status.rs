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
use crate::tui::state::{App, Lifecycle};

/// Draws the two status lines.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let t = &app.settings.train;
    let data = app.data.label();
    let run = &app.train.run;
    let mut run_text = run.state.label().to_string();
    if run.total_steps > 0 {
        run_text = format!("{run_text} {}/{}", run.step(), run.total_steps);
    }
    if app.compare.any_active() {
        run_text = format!("{run_text} · compare training");
    }
    if let Lifecycle::ShuttingDown(_) = app.lifecycle {
        run_text = "saving before quit".to_string();
    }
    let sep = Span::styled(" │ ", Style::default().fg(theme::DIM));
    let kv = |k: &'static str, v: String| {
        vec![
            Span::styled(k, theme::label()),
            Span::styled(v, Style::default().add_modifier(Modifier::BOLD)),
        ]
    };
    let mut spans = Vec::new();
    spans.extend(kv("device ", t.device.to_string()));
    spans.push(sep.clone());
    spans.extend(kv("data ", data));
    spans.push(sep.clone());
    spans.extend(kv("model ", t.model_name()));
    if run.num_params > 0 {
        spans.push(Span::raw(format!(" ({})", theme::count(run.num_params))));
    }
    spans.push(sep.clone());
    spans.extend(kv("run ", run_text));
    spans.push(sep);
    spans.extend(kv("images ", images.protocol_name().to_string()));
    let line1 = Line::from(spans);
    let line2 = match &app.notice {
        Some(n) => Line::styled(
            n.text.clone(),
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
