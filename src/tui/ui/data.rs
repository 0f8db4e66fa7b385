//! The Data screen: source and loading progress, a grid of labelled examples, label counts.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph};
use ratatui::Frame;

use super::image::ImageRenderer;
use super::{block, theme};
use crate::tui::settings::BUILTIN_DATASETS;
use crate::tui::state::data::DataStatus;
use crate::tui::state::App;
use crate::tui::workers::{DataInfo, LoadStage};

/// Draws the Data screen.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let [left, right] =
        Layout::horizontal([Constraint::Length(44), Constraint::Min(20)]).areas(area);
    let [source, counts] =
        Layout::vertical([Constraint::Length(13), Constraint::Min(3)]).areas(left);
    draw_source(frame, source, app);
    draw_counts(frame, counts, app.data.info.as_ref());
    draw_examples(frame, right, app, images);
}

fn kv(k: &str, v: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{k:<9}"), theme::label()),
        Span::raw(v),
    ])
}

fn draw_source(frame: &mut Frame, area: Rect, app: &App) {
    let b = block("Dataset");
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [list, info, gauge] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let mut names: Vec<Span> = vec![Span::styled("d/D ", theme::label())];
    for d in BUILTIN_DATASETS {
        let style = if app.data.requested == d {
            theme::selected()
        } else {
            Style::default().fg(theme::DIM)
        };
        names.push(Span::styled(format!(" {d} "), style));
    }
    let custom = !BUILTIN_DATASETS.contains(&app.data.requested.as_str());
    let second = if custom {
        Line::from(vec![
            Span::styled("path     ", theme::label()),
            Span::styled(app.data.requested.clone(), theme::selected()),
        ])
    } else {
        Line::from("")
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(names), second])
            .wrap(ratatui::widgets::Wrap { trim: false }),
        list,
    );

    let mut lines = Vec::new();
    let status = match &app.data.status {
        DataStatus::Idle => Span::raw("—"),
        DataStatus::Loading(stage) => Span::styled(
            match stage {
                LoadStage::Resolving => "resolving…".to_string(),
                LoadStage::Downloading { file, .. } => format!("downloading {file}"),
                LoadStage::Decoding => "decoding…".to_string(),
            },
            Style::default().fg(theme::WARN),
        ),
        DataStatus::Ready => Span::styled("ready", Style::default().fg(theme::OK)),
        DataStatus::Failed(e) => {
            Span::styled(format!("failed: {e}"), Style::default().fg(theme::ERROR))
        }
    };
    lines.push(Line::from(vec![
        Span::styled("status   ", theme::label()),
        status,
    ]));
    if let Some(info) = &app.data.info {
        lines.push(kv("name", info.name.clone()));
        lines.push(kv("source", info.source.clone()));
        lines.push(kv("train", format!("{} images", info.n_train)));
        lines.push(kv(
            "test",
            info.n_test
                .map_or("—".to_string(), |n| format!("{n} images")),
        ));
        let (c, h, w) = info.shape;
        lines.push(kv(
            "shape",
            format!("{c}×{h}×{w} ({})", if c == 1 { "grey" } else { "RGB" }),
        ));
        lines.push(kv("labels", info.label_names.len().to_string()));
        if let Some(secs) = app.train.epoch_seconds(&app.settings.train, info.n_train) {
            lines.push(kv(
                "epoch",
                format!(
                    "≈ {} with model {}",
                    theme::duration(secs),
                    app.settings.train.model
                ),
            ));
        }
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }),
        info,
    );
    if let DataStatus::Loading(LoadStage::Downloading {
        done,
        total,
        bytes_per_s,
        ..
    }) = &app.data.status
    {
        let ratio = total.map_or(0.0, |t| {
            if t == 0 {
                0.0
            } else {
                (*done as f64 / t as f64).clamp(0.0, 1.0)
            }
        });
        let label = format!(
            "{} / {} · {}/s",
            theme::bytes(*done as f64),
            total.map_or("?".to_string(), |t| theme::bytes(t as f64)),
            theme::bytes(*bytes_per_s)
        );
        frame.render_widget(
            Gauge::default()
                .ratio(ratio)
                .label(label)
                .gauge_style(Style::default().fg(theme::ACCENT)),
            gauge,
        );
    }
}

fn draw_counts(frame: &mut Frame, area: Rect, info: Option<&DataInfo>) {
    let b = block("Label counts (train)");
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let Some(info) = info else { return };
    let max = info.label_counts.iter().copied().max().unwrap_or(1).max(1);
    let name_w = info
        .label_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(4)
        .min(14);
    let bar_w = (inner.width as usize).saturating_sub(name_w + 9).max(1);
    let lines: Vec<Line> = info
        .label_counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let name: String = info
                .label_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| i.to_string())
                .chars()
                .take(name_w)
                .collect();
            let len = (c * bar_w).div_ceil(max);
            Line::from(vec![
                Span::styled(format!("{name:<name_w$} "), theme::label()),
                Span::styled("█".repeat(len), Style::default().fg(theme::ACCENT)),
                Span::raw(" ".repeat(bar_w - len.min(bar_w))),
                Span::raw(format!(" {c:>6}")),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Width and height in cells of one example tile (image plus its label line).
pub const TILE: (u16, u16) = (16, 9);

fn draw_examples(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let b = block("Examples");
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let Some(info) = &app.data.info else {
        let msg = match &app.data.status {
            DataStatus::Failed(e) => format!(
                "could not load {}: {e}\n\nd / D picks another dataset.",
                app.data.requested
            ),
            _ => format!("loading {} in the background…", app.data.requested),
        };
        frame.render_widget(
            Paragraph::new(msg).wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
        return;
    };
    let cols = (inner.width / TILE.0).max(1);
    let rows = (inner.height / TILE.1).max(1);
    // Share the spare width between the columns.
    let tile_w = (inner.width / cols).max(TILE.0);
    for (i, (img, label)) in info
        .examples
        .iter()
        .take((cols * rows) as usize)
        .enumerate()
    {
        let (c, r) = (i as u16 % cols, i as u16 / cols);
        let tile = Rect::new(inner.x + c * tile_w, inner.y + r * TILE.1, tile_w, TILE.1)
            .intersection(inner);
        let [pic, text] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(tile);
        let pic = Rect {
            width: pic.width.saturating_sub(1),
            ..pic
        };
        images.render(frame, pic, img);
        let name = info
            .label_names
            .get(*label)
            .cloned()
            .unwrap_or_else(|| label.to_string());
        frame.render_widget(
            Line::styled(name, Style::default().add_modifier(Modifier::ITALIC)).centered(),
            text,
        );
    }
}
