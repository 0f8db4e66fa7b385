//! The Data screen: source and loading progress, a grid of labelled examples, label counts.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph};
use ratatui::Frame;

use super::image::{ImageRenderer, Scale};
use super::{block, theme};
use crate::tui::settings::BUILTIN_DATASETS;
use crate::tui::state::data::DataStatus;
use crate::tui::state::App;
use crate::tui::workers::{DataInfo, LoadStage};

/// Draws the Data screen.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let [left, right] =
        Layout::horizontal([Constraint::Length(44), Constraint::Min(20)]).areas(area);
    // Every label count gets its row (ten at 80×24); the source block gives way down to 7.
    let n_labels = app.data.info.as_ref().map_or(0, |i| i.label_counts.len()) as u16;
    let source_h = left
        .height
        .saturating_sub(n_labels + 2)
        .clamp(7.min(left.height), SOURCE_HEIGHT);
    let [source, counts] =
        Layout::vertical([Constraint::Length(source_h), Constraint::Min(0)]).areas(left);
    draw_source(frame, source, app);
    draw_counts(frame, counts, app.data.info.as_ref());
    draw_examples(frame, right, app, images);
}

/// Width of the text inside the Dataset block drawn over `area`.
fn info_area_width(area: Rect) -> u16 {
    area.width.saturating_sub(2)
}

/// Height of the Dataset block when the screen has room for it.
const SOURCE_HEIGHT: u16 = 11;

fn kv(k: &str, v: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{k:<9}"), theme::label()),
        Span::raw(v),
    ])
}

/// `kv(k, text)` with `text` wrapped at word boundaries to `width` columns under the value
/// column, in at most `max_lines` lines (the last cut with `…` where more was left).
fn kv_wrapped(k: &str, text: &str, width: usize, max_lines: usize) -> Vec<Line<'static>> {
    let width = width.max(8);
    let mut rows: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match rows.last_mut() {
            Some(row) if row.chars().count() + 1 + word.chars().count() <= width => {
                row.push(' ');
                row.push_str(word);
            }
            _ => rows.push(word.to_string()),
        }
    }
    // A word wider than the column is cut there.
    for row in &mut rows {
        if row.chars().count() > width {
            *row = super::ellipsize_middle(row, width);
        }
    }
    if rows.len() > max_lines.max(1) {
        rows.truncate(max_lines.max(1));
        let last = rows.last_mut().expect("at least one row");
        let mut cut: String = last.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        *last = cut;
    }
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| kv(if i == 0 { k } else { "" }, row))
        .collect()
}

fn draw_source(frame: &mut Frame, area: Rect, app: &App) {
    let b = block("Dataset");
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let downloading = matches!(
        app.data.status,
        DataStatus::Loading(LoadStage::Downloading { .. })
    );
    let [list, info, gauge] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(1),
        Constraint::Length(u16::from(downloading)),
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
    // The user's own dataset (a folder) is one of the choices, picked or not.
    let own = app
        .settings
        .dataset_choices()
        .into_iter()
        .find(|d| !BUILTIN_DATASETS.contains(&d.as_str()));
    let second = match own {
        Some(own) => {
            let style = if app.data.requested == own {
                theme::selected()
            } else {
                Style::default().fg(theme::DIM)
            };
            Line::from(vec![
                Span::styled("path     ", theme::label()),
                Span::styled(own, style),
            ])
        }
        None => Line::from(""),
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
        // Most important first: a short block (80×24) shows the first five lines.
        if info.name != app.data.requested {
            lines.push(kv("name", info.name.clone()));
        }
        let w = (info_area_width(area) as usize).saturating_sub(9);
        lines.push(kv("source", super::ellipsize_middle(&info.source, w)));
        // A note wraps in the value column, two lines at most, so that the lines after it
        // stay in a short block (a Hub error's reason can be 100 characters).
        for n in &info.notes {
            lines.extend(kv_wrapped("note", n, w, 2));
        }
        lines.push(kv(
            "train",
            format!(
                "{} images{}",
                info.n_train,
                info.n_test
                    .map_or(String::new(), |n| format!(" · test {n}"))
            ),
        ));
        let (c, h, w) = info.shape;
        lines.push(kv(
            "shape",
            format!(
                "{c}×{h}×{w} {} · {} labels",
                if c == 1 { "grey" } else { "RGB" },
                info.label_names.len()
            ),
        ));
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
    // Not trimmed: a wrapped note's second line keeps its indent under the value column.
    frame.render_widget(
        Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }),
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

/// Fewest examples the grid shows: images are drawn 1:1 (or larger) when this many fit, else
/// at the largest reduced scale where they do (and the title says so).
pub const MIN_EXAMPLES: usize = 4;

/// The scale of the example tiles in `inner` and the cells of one tile (image plus its label
/// line, a column of gap).
fn example_tiles(
    inner: Rect,
    img: &crate::imaging::Image8,
    n: usize,
    images: &ImageRenderer,
) -> (Scale, (u16, u16), (u16, u16)) {
    let want = n.min(MIN_EXAMPLES);
    let mut last = (Scale::Down(1), (0, 0), (1, 1));
    for scale in Scale::descending(4, img.width.max(img.height)) {
        let pic = images.cells(scale.apply(img.width), scale.apply(img.height));
        let tile = (pic.0 + 1, pic.1 + 1);
        let fit = (inner.width / tile.0.max(1), inner.height / tile.1.max(1));
        last = (scale, pic, fit);
        if (fit.0 as usize) * (fit.1 as usize) >= want {
            break;
        }
    }
    last
}

fn draw_examples(frame: &mut Frame, area: Rect, app: &App, images: &ImageRenderer) {
    let inner = block("").inner(area);
    let Some(info) = &app.data.info else {
        let b = block("Examples");
        frame.render_widget(b, area);
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
    let Some((first, _)) = info.examples.first() else {
        frame.render_widget(block("Examples"), area);
        return;
    };
    let (scale, pic, (cols, rows)) = example_tiles(inner, first, info.examples.len(), images);
    let title = match scale.note() {
        Some(n) => format!("Examples · {n}"),
        None => format!("Examples · {}×{} px", first.width, first.height),
    };
    frame.render_widget(block(&title), area);
    let (cols, rows) = (cols.max(1), rows.max(1));
    // Share the spare width between the columns.
    let tile_w = inner.width / cols;
    let tile_h = pic.1 + 1;
    for (i, (img, label)) in info
        .examples
        .iter()
        .take((cols * rows) as usize)
        .enumerate()
    {
        let (c, r) = (i as u16 % cols, i as u16 / cols);
        let tile = Rect::new(inner.x + c * tile_w, inner.y + r * tile_h, tile_w, tile_h)
            .intersection(inner);
        let [pic_area, text] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(tile);
        let pic_area = Rect {
            x: pic_area.x + pic_area.width.saturating_sub(pic.0) / 2,
            width: pic.0.min(pic_area.width),
            ..pic_area
        };
        images.render(frame, pic_area, img);
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

#[cfg(test)]
mod tests {
    use super::kv_wrapped;

    fn text(lines: &[ratatui::text::Line]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    /// A long note stays in the value column, two lines at most, cut with `…`.
    #[test]
    fn a_long_note_wraps_under_its_value_column() {
        let why = "Hub unreachable (cannot connect (failed to lookup address information: \
                   Name or service not known)); r retries";
        let lines = text(&kv_wrapped("note", why, 33, 2));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("note     Hub unreachable"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("         ") && lines[1].ends_with('…'),
            "{lines:?}"
        );
        assert!(
            lines.iter().all(|l| l.chars().count() <= 9 + 33),
            "{lines:?}"
        );
        // A short one is one line, as it was.
        assert_eq!(
            text(&kv_wrapped("note", "a note", 33, 2)),
            ["note     a note"]
        );
    }
}
