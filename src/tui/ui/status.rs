//! The status bar: device, dataset, model size, run state, the latest message and the keys of
//! the current screen.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::image::ImageRenderer;
use super::theme;
use crate::tui::event::keys::{hints, window_hints, Scope};
use crate::tui::state::notice::Topic;
use crate::tui::state::run::RunState;
use crate::tui::state::sample::SampleStatus;
use crate::tui::state::{App, Lifecycle, Overlay};

/// Draws the status lines into `area` (two rows): the state, then the latest message or the
/// keys. A message longer than a row takes the row above `area` too: the body's last row
/// (mostly its panels' bottom borders), so that nothing in the body moves while it shows.
/// Drawn last, over anything there.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let message = app
        .notice
        .as_ref()
        .map(|n| (n, wrap_words(&message_text(app, n), area.width as usize)));
    let extra = message
        .as_ref()
        .map_or(0, |(_, m)| (m.len() as u16).clamp(1, MESSAGE_LINES) - 1);
    let area = Rect {
        y: area.y.saturating_sub(extra),
        height: area.height + extra,
        ..area
    };
    frame.render_widget(ratatui::widgets::Clear, area);
    let t = &app.settings.train;
    // A dataset given as a long path is shortened (its end names it), so that it does not
    // push the device off the line: to 36 columns, and further, down to its last component,
    // before anything else gives way.
    let data_label = app.data.label();
    let data = shorten_data_label(&data_label, DATA_WIDTH);
    let run = &app.train.run;
    let mut run_text = run.label().to_string();
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
    // columns): the image protocol first, then the device, then the model (a long data path
    // shortens before each of them, see below).
    let build = |device: String, data: &str| {
        [
            (kv("device ", device), 1),
            (kv("data ", data.to_string()), 3),
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
    let width = area.width as usize;
    let short = t.device.to_string();
    let device = app
        .device_names
        .iter()
        .find(|(d, _)| *d == t.device)
        .map(|(_, name)| format!("{short} · {name}"))
        .filter(|long| total(&build(long.clone(), &data), &keep) <= width)
        .unwrap_or(short);
    let mut segments = build(device.clone(), &data);
    // The data's name in the room the segments kept leave it (36 columns at most).
    let fit_data = |keep: &[bool]| {
        let others = total(&build(device.clone(), ""), keep);
        let room = width.saturating_sub(others).min(DATA_WIDTH);
        build(device.clone(), &shorten_data_label(&data_label, room))
    };
    for rank in 0..segments.len() {
        // After the image protocol, before each of the others: a long path gets shorter (and
        // longer again as each gives way).
        if rank >= 1 {
            segments = fit_data(&keep);
        }
        if total(&segments, &keep) <= width {
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
    let style = Style::default().bg(ratatui::style::Color::Rgb(30, 30, 40));
    let [first, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(line1).style(style), first);
    let message = match message {
        // Up to [`MESSAGE_LINES`] lines, the last cut where even they are not enough.
        Some((n, text)) => {
            let shown = text.len().min(rest.height as usize).max(1);
            let cut = text.len() > shown;
            let mut lines: Vec<String> = text.into_iter().take(shown).collect();
            if let (Some(last), true) = (lines.last_mut(), cut) {
                *last = super::ellipsize_end(&format!("{last} …"), rest.width as usize);
            }
            Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>())
                .style(Style::default().fg(if n.error { theme::ERROR } else { theme::OK }))
        }
        None => {
            // An open window takes the keys: its own are the ones to give.
            // What follows `keys: `.
            let width = (rest.width as usize).saturating_sub(6);
            let keys = match (&app.overlay, app.picker.is_some()) {
                (Overlay::Help, _) => window_hints(Scope::Help, width),
                (Overlay::ConfirmQuit, _) => window_hints(Scope::ConfirmQuit, width),
                (Overlay::ConfirmRemove(_), _) => window_hints(Scope::ConfirmRemove, width),
                (Overlay::None, true) => window_hints(Scope::Picker, width),
                (Overlay::None, false) => hints(app.tab.title()).to_string(),
            };
            Paragraph::new(Line::styled(
                format!("keys: {keys}"),
                Style::default().fg(theme::DIM),
            ))
        }
    };
    frame.render_widget(message.style(style), rest);
}

/// Columns the status bar gives a dataset's name where everything fits.
const DATA_WIDTH: usize = 36;

/// `label` (a dataset's name or path) in at most `max` characters where it can be: a path
/// keeps as many of its last components whole as fit after `…/` (`…/data/fashion-mnist`);
/// a last component that does not fit, or another name, is cut in the middle, to no less
/// than 12.
fn shorten_data_label(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        return label.to_string();
    }
    let parts: Vec<&str> = label.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() < 2 {
        return super::ellipsize_middle(label, max.max(12));
    }
    let last = parts[parts.len() - 1];
    if last.chars().count() + 2 > max {
        return super::ellipsize_middle(last, max.max(12));
    }
    let mut tail = format!("…/{last}");
    for part in parts[..parts.len() - 1].iter().rev() {
        let longer = format!("…/{part}/{}", &tail["…/".len()..]);
        if longer.chars().count() > max {
            break;
        }
        tail = longer;
    }
    tail
}

/// Lines the message shown may take at most: a longer one is cut at the end.
const MESSAGE_LINES: u16 = 2;

/// The text of the message `n`, with live progress where it has some.
fn message_text(app: &App, n: &crate::tui::state::Notice) -> String {
    format!("{}{}", n.text, progress_of(app, &n.topic))
}

/// `text` broken into lines of at most `width` characters, between words where it can be
/// (a word longer than a line, a path say, is cut).
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    // `pid 4242` stays on one line.
    let mut words: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match words.last_mut() {
            Some(last) if last == "pid" && word.starts_with(|c: char| c.is_ascii_digit()) => {
                last.push(' ');
                last.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
    }
    for word in &words {
        let (n, w) = (line.chars().count(), word.chars().count());
        if n > 0 && n + 1 + w > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let head: String = line.chars().take(width).collect();
            line = line.chars().skip(width).collect();
            lines.push(head);
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
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

#[cfg(test)]
mod tests {
    use super::{shorten_data_label, wrap_words};

    #[test]
    fn a_long_data_path_keeps_its_last_components_whole() {
        let path = "/work/shared/data/fashion-mnist";
        assert_eq!(shorten_data_label(path, 40), path);
        assert_eq!(shorten_data_label(path, 20), "…/data/fashion-mnist");
        assert_eq!(shorten_data_label(path, 19), "…/fashion-mnist");
        // The last component alone, cut in the middle, to 12 at the least.
        assert_eq!(shorten_data_label(path, 14), "fashion-mnist");
        assert_eq!(shorten_data_label(path, 5), "fas…on-mnist");
        assert_eq!(shorten_data_label("fashion_mnist", 40), "fashion_mnist");
        assert_eq!(shorten_data_label("shapes", 0), "shapes");
        assert_eq!(shorten_data_label("abcdefghijklmnopq", 7), "abc…jklmnopq");
    }

    #[test]
    fn messages_break_between_words_and_long_words_are_cut() {
        assert_eq!(wrap_words("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap_words("one", 10), ["one"]);
        assert_eq!(wrap_words("", 10), [""]);
        assert_eq!(
            wrap_words("trained by pid 4242 now", 15),
            ["trained by", "pid 4242 now"]
        );
        assert_eq!(
            wrap_words("saved in /very/long/path here", 8),
            ["saved in", "/very/lo", "ng/path", "here"]
        );
    }
}
