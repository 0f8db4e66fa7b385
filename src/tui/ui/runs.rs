//! The Runs screen: every run in the runs directory with its configuration, progress, last
//! loss and latest preview score, and the loss curves of the marked runs overlaid.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LegendPosition, Paragraph, Row, Table};
use ratatui::Frame;

use super::chart::{self, ChartOpts, Series};
use super::{block, ellipsize_middle, run_label, run_name, theme};
use crate::tui::settings::TrainSettings;
use crate::tui::state::App;
use crate::tui::workers::RunRecord;

/// Colours of overlaid curves, in the order runs are marked (Okabe–Ito, then greys).
pub const PALETTE: [Color; 8] = [
    Color::Rgb(0, 114, 178),
    Color::Rgb(230, 159, 0),
    Color::Rgb(0, 158, 115),
    Color::Rgb(204, 121, 167),
    Color::Rgb(86, 180, 233),
    Color::Rgb(213, 94, 0),
    Color::Rgb(240, 228, 66),
    Color::Rgb(200, 200, 200),
];

/// Colour of the `i`-th marked run.
pub fn color(i: usize) -> Color {
    PALETTE[i % PALETTE.len()]
}

/// The kinds of loss of `runs` (see [`TrainSettings::loss_kind`]), each once, sorted.
fn loss_kinds<'a>(runs: impl Iterator<Item = &'a RunRecord>) -> Vec<String> {
    let mut kinds: Vec<String> = runs
        .filter_map(|r| r.summary.settings.as_ref().map(TrainSettings::loss_kind))
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// A dataset as a run list names it: a built-in by its name, a folder by its last part.
pub fn dataset_label(dataset: &str) -> String {
    std::path::Path::new(dataset)
        .file_name()
        .map_or_else(|| dataset.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The legend's names of overlaid runs, at most `width` characters: without their run stamps
/// where the rest tells them apart (the stamp is what a cut name loses first otherwise), and
/// without the start they share (`compare/`: a comparison's runs are their schedules), so that
/// a legend line that cuts each name's end keeps what tells them apart.
fn legend_names(names: Vec<String>, width: usize) -> Vec<String> {
    let short: Vec<&str> = names
        .iter()
        .map(|n| crate::clock::without_stamp(n))
        .collect();
    let distinct = short
        .iter()
        .enumerate()
        .all(|(i, a)| short[..i].iter().all(|b| a != b));
    if distinct {
        without_shared_start(&short)
            .iter()
            .map(|n| ellipsize_middle(n, width))
            .collect()
    } else {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        without_shared_start(&names)
            .iter()
            .map(|n| run_label(n, width))
            .collect()
    }
}

/// `names` without the start all of them share, cut after a `/` or `-` (whole words go), where
/// there are two or more; each keeps something.
fn without_shared_start<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let [first, rest @ ..] = names else {
        return Vec::new();
    };
    if rest.is_empty() {
        return vec![first];
    }
    let shared = rest.iter().fold(first.len(), |n, other| {
        first
            .char_indices()
            .zip(other.chars())
            .take_while(|((i, a), b)| *i < n && a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
    });
    let cut = first[..shared].rfind(['/', '-']).map_or(0, |i| i + 1);
    if names.iter().any(|n| n.len() <= cut) {
        return names.to_vec();
    }
    names.iter().map(|n| &n[cut..]).collect()
}

/// The table and chart areas of the screen in `body` for `n` runs: the table takes what its
/// rows need, at most 55% of the height (at least five lines), the chart the rest.
pub fn layout(body: Rect, n: usize) -> (Rect, Rect) {
    let max = (body.height as usize * 55 / 100).max(5);
    let h = (n + 3).clamp(5, max) as u16;
    let [table, chart] = Layout::vertical([Constraint::Length(h), Constraint::Min(0)]).areas(body);
    (table, chart)
}

/// Rows of the table area that show runs (borders and header take three lines).
pub fn visible_rows(table: Rect) -> usize {
    table.height.saturating_sub(3).max(1) as usize
}

/// The first run shown, so the highlighted one is on screen.
pub fn first_row(visible: usize, selected: usize) -> usize {
    selected.saturating_sub(visible.max(1) - 1)
}

/// The run under screen row `y` of the table area, if any.
pub fn run_at(table: Rect, y: u16, n: usize, selected: usize) -> Option<usize> {
    let top = table.y + 2;
    if y < top || y >= table.y + table.height.saturating_sub(1) {
        return None;
    }
    let i = first_row(visible_rows(table), selected) + (y - top) as usize;
    (i < n).then_some(i)
}

/// The terminal width from which the Runs table shows `ddpm-lab eval`'s results as a column.
pub const EVAL_COLUMN_FROM: u16 = 150;

/// The score column: share recognised, with the Fréchet distance where wide; narrow and
/// sorted by score (`by_fd`), the Fréchet distance the order follows (the share where a
/// preview had too few images for one).
fn score(r: &RunRecord, wide: bool, by_fd: bool) -> String {
    match &r.quality {
        Some((_, q)) if by_fd && !wide => match q.frechet {
            Some(fd) => crate::eval::score::fmt_fd(fd),
            None => format!("{:.0}%", q.recognised * 100.0),
        },
        Some((step, q)) if wide => match q.frechet {
            Some(fd) => format!(
                "{:.0}% · FD {} (step {step})",
                q.recognised * 100.0,
                crate::eval::score::fmt_fd(fd)
            ),
            None => format!("{:.0}% (step {step})", q.recognised * 100.0),
        },
        Some((_, q)) => format!("{:.0}%", q.recognised * 100.0),
        None => "—".into(),
    }
}

/// Draws the Runs screen.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let s = &app.runs;
    let root = app.settings.runs_root();
    let (table_area, chart_area) = layout(area, s.runs.len());
    let title = runs_title(app, &s.runs.len().to_string());
    if s.runs.is_empty() {
        let b = block(&title);
        let inner = b.inner(area);
        frame.render_widget(b, area);
        let msg = if s.scanning || !s.scanned {
            format!("reading the runs in {}…", root.display())
        } else {
            format!(
                "no runs in {} yet: train one on the Train screen (3), then r reads again",
                root.display()
            )
        };
        frame.render_widget(
            Paragraph::new(msg)
                .style(theme::label())
                .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
        return;
    }
    draw_table(frame, table_area, app);
    draw_curves(frame, chart_area, app);
}

/// The Runs screen's title: where the runs are, how many (`shown`), in which order, and the
/// keys.
fn runs_title(app: &App, shown: &str) -> String {
    format!(
        "Runs in {}  ({shown} · {} · space overlays · o opens)",
        app.settings.runs_root().display(),
        app.runs.order.label()
    )
}

/// Width of the Runs screen's `saved` column.
const SAVED_W: usize = 9;

/// The `saved` cell: the step saved of the steps to train (`2650/5000`), in thousands where
/// that is too long for the column (`2650/100k`, not `26…100000`). A stop step of 10 000 or
/// more is always in thousands, so that runs read alike down the column (`105/50k` beside
/// `1000/20k`).
fn saved_of(step: usize, steps: usize) -> String {
    let exact = (steps < 10_000).then(|| format!("{step}/{steps}"));
    exact
        .into_iter()
        .chain([format!(
            "{}/{}",
            steps_short(step, true),
            steps_short(steps, true)
        )])
        .find(|s| s.chars().count() <= SAVED_W)
        .unwrap_or_else(|| format!("{}/{}", steps_short(step, false), steps_short(steps, false)))
}

/// A step count in few characters: exact below 10 000, else in thousands (with a tenth below
/// 100k where `tenths`) or millions, rounded down: a run at step 99 950 has not reached 100k.
fn steps_short(n: usize, tenths: bool) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=99_999 if tenths && !n.is_multiple_of(1000) => {
            format!("{}.{}k", n / 1000, n % 1000 / 100)
        }
        10_000..=999_999 => format!("{}k", n / 1000),
        _ => format!("{}M", n / 1_000_000),
    }
}

fn draw_table(frame: &mut Frame, area: Rect, app: &App) {
    let s = &app.runs;
    let root = app.settings.runs_root();
    let wide = area.width >= 120;
    // mark, schedule, model, steps, loss, score (+ dataset when wide), with their spacing.
    // Wide, the model column has room for most custom UNets' descriptions; narrow, as much
    // as the names listed take, up to every size's (`current-sc`), a custom UNet named by its
    // size alone (`16×(1,2)`), so the run names keep their room.
    let model_label = |st: &TrainSettings| match &st.custom_model {
        Some(c) if !wide => crate::presets::describe_unet_compact(c),
        _ => st.model_name(),
    };
    let (score_w, data_w, model_w) = if wide {
        (24u16, 14u16, 16u16)
    } else {
        let longest = s
            .runs
            .iter()
            .filter_map(|r| r.summary.settings.as_ref())
            .map(|st| model_label(st).chars().count())
            .max()
            .unwrap_or(0);
        (5, 0, longest.clamp(5, 10) as u16)
    };
    // Sorted by score, the narrow column shows what the order follows first.
    let by_fd = s.order == crate::tui::state::runs::RunsOrder::Score;
    // Runs trained on different losses name theirs beside the value.
    let kinds = loss_kinds(s.runs.iter());
    let mixed = kinds.len() > 1;
    let loss_w = if mixed {
        8 + kinds.iter().map(|k| k.chars().count()).max().unwrap_or(0) as u16
    } else {
        7
    };
    // As wide as the schedules listed take (`quadratic`, `imported β`), the header at least.
    let sched_w = s
        .runs
        .iter()
        .filter_map(|r| r.summary.settings.as_ref())
        .map(|st| st.schedule_label().chars().count())
        .max()
        .unwrap_or(0)
        .max("schedule".len()) as u16;
    // Very wide, `ddpm-lab eval`'s result too (`48% · FD 77.1 (step 600, n 1000)`).
    let eval_w: u16 = if area.width >= EVAL_COLUMN_FROM {
        33
    } else {
        0
    };
    // The columns; the name's (second) takes what the others and the cell between each two
    // leave.
    let mut widths = vec![Constraint::Length(2), Constraint::Length(0)];
    let mut header = vec!["", "run"];
    if wide {
        widths.push(Constraint::Length(data_w));
        header.push("dataset");
    }
    widths.extend([
        Constraint::Length(sched_w),
        Constraint::Length(model_w),
        Constraint::Length(SAVED_W as u16),
        Constraint::Length(loss_w),
        Constraint::Min(score_w),
    ]);
    if eval_w > 0 {
        widths.push(Constraint::Length(eval_w));
    }
    let others: u16 = widths
        .iter()
        .map(|c| match c {
            Constraint::Length(w) | Constraint::Min(w) => *w,
            _ => 0,
        })
        .sum();
    let gaps = widths.len() as u16 - 1;
    let name_w = super::train::name_width(area.width.saturating_sub(2), others + gaps);
    widths[1] = Constraint::Length(name_w as u16);
    let visible = visible_rows(area);
    let first = first_row(visible, s.selected);
    // Where the table holds fewer rows than there are runs, which of them it shows (↑↓
    // scroll to the others).
    let n = s.runs.len();
    let title = &if visible < n {
        runs_title(
            app,
            &format!("{}–{} of {n}", first + 1, (first + visible).min(n)),
        )
    } else {
        runs_title(app, &n.to_string())
    };
    let rows: Vec<Row> = s
        .runs
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, r)| {
            // Marked for the chart, else ▶ where a process trains it now: this lab (its saved
            // step and curve lag behind the Train or Compare screen) or `train` elsewhere.
            let mark = match s.mark_of(&r.summary.dir) {
                Some(m) => Span::styled("■", Style::default().fg(color(m))),
                None if app.trained_now(&r.summary) => {
                    Span::styled("▶", Style::default().fg(theme::ACCENT))
                }
                None => Span::raw("·"),
            };
            let set = r.summary.settings.as_ref();
            // – where nothing is saved yet (the first checkpoint is to come); ? where the newest
            // checkpoint cannot be used (opening the run says why), as `ddpm-lab runs` says it.
            let steps = match set {
                Some(st) if st.steps > 0 && r.summary.unsaved => {
                    format!("–/{}", steps_short(st.steps, false))
                }
                Some(st) if st.steps > 0 && r.summary.problem.is_some() => {
                    format!("?/{}", steps_short(st.steps, false))
                }
                Some(st) if st.steps > 0 => saved_of(r.summary.step, st.steps),
                _ if r.summary.unsaved => "–".to_string(),
                _ => r.summary.step.to_string(),
            };
            let mut cells = vec![
                Line::from(mark),
                Line::from(run_label(&run_name(&r.summary.dir, &root), name_w)),
            ];
            if wide {
                cells.push(Line::from(ellipsize_middle(
                    &r.summary
                        .dataset
                        .as_deref()
                        .map_or("?".into(), dataset_label),
                    data_w as usize,
                )));
            }
            cells.extend([
                Line::from(set.map_or("?".into(), |st| st.schedule_label())),
                Line::from(set.map_or("?".into(), |st| {
                    ellipsize_middle(&model_label(st), model_w as usize)
                })),
                Line::from(ellipsize_middle(&steps, SAVED_W)),
                Line::from(match (r.last_loss, set) {
                    (None, _) => "—".into(),
                    (Some(l), Some(st)) if mixed => format!("{l:.4} {}", st.loss_kind()),
                    (Some(l), _) => format!("{l:.4}"),
                }),
                Line::from(score(r, wide, by_fd)),
            ]);
            if eval_w > 0 {
                cells.push(Line::from(
                    r.eval.as_ref().map_or("—".to_string(), |e| e.cell()),
                ));
            }
            let row = Row::new(cells);
            if i == s.selected {
                row.style(theme::selected())
            } else {
                row
            }
        })
        .collect();
    // The score is the latest preview's (share recognised, and the Fréchet distance where
    // there is room): it lags the Sample screen's, drawn from the newest checkpoint.
    let score_title = match (wide, by_fd) {
        (true, _) => "preview score",
        (false, true) => "FD",
        (false, false) => "score",
    };
    header.extend(["schedule", "model", "saved", "loss", score_title]);
    if eval_w > 0 {
        header.push("eval");
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme::title()))
        .block(block(title));
    frame.render_widget(table, area);
}

/// The "remove this run?" window: what goes (the run's name, its saved steps, its size on
/// disk) and the keys. Only `y` removes: Enter, pressed out of habit, keeps the run.
pub fn confirm_remove(frame: &mut Frame, area: Rect, app: &App, dir: &std::path::Path) {
    let root = app.settings.runs_root();
    let record = app.runs.runs.iter().find(|r| r.summary.dir == dir);
    let w = area.width.saturating_sub(4).min(70);
    let r = super::centered(area, w, 9);
    frame.render_widget(ratatui::widgets::Clear, r);
    let name = ellipsize_middle(&run_name(dir, &root), w.saturating_sub(12) as usize);
    let mut what = Vec::new();
    if let Some(rec) = record {
        if let Some(st) = rec.summary.settings.as_ref().filter(|st| st.steps > 0) {
            what.push(format!("{} of {} steps saved", rec.summary.step, st.steps));
        }
        what.push(crate::memory::human_bytes(rec.bytes.into()));
    }
    // What goes with it: a comparison's folder with its last run; the comparison on Compare
    // closes.
    let mut also = Vec::new();
    if app.train.shows(dir) {
        also.push("the Train screen closes it".to_string());
    }
    if let Some((base, _)) = crate::runs::comparison::comparison_of(dir) {
        let siblings = app
            .runs
            .runs
            .iter()
            .filter(|r| r.summary.dir != dir && r.summary.dir.parent() == Some(base.as_path()))
            .count();
        if siblings == 0 {
            also.push("its comparison's folder goes too".to_string());
        }
        if app.compare.holds(dir) {
            also.push("Compare closes the comparison".to_string());
        }
    }
    let also = if also.is_empty() {
        String::new()
    } else {
        format!(" ({})", also.join("; "))
    };
    let text = vec![
        Line::from(format!("Remove {name}?")),
        Line::from(what.join(" · ")),
        Line::from(format!(
            "Its checkpoints, metrics, previews and samples go for good{also}."
        )),
        Line::from(""),
        Line::styled(
            "y: remove     n / Esc: keep it",
            Style::default().add_modifier(ratatui::style::Modifier::BOLD),
        ),
    ];
    frame.render_widget(
        Paragraph::new(text)
            .alignment(ratatui::layout::Alignment::Center)
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(block("Remove run?")),
        r,
    );
}

fn draw_curves(frame: &mut Frame, area: Rect, app: &App) {
    let s = &app.runs;
    let root = app.settings.runs_root();
    let charted = s.charted();
    let drawn: Vec<_> = charted
        .iter()
        .filter(|(_, r)| !r.curve.is_empty())
        .collect();
    let names = legend_names(
        drawn
            .iter()
            .map(|(_, r)| run_name(&r.summary.dir, &root))
            .collect(),
        (area.width as usize / 4).clamp(18, 36),
    );
    let series: Vec<Series> = drawn
        .iter()
        .zip(names)
        .map(|((i, r), name)| Series {
            name,
            color: color(*i),
            points: r.curve.clone(),
        })
        .collect();
    let mut title = if s.marked.is_empty() {
        "Loss (smoothed) of the highlighted run · space overlays runs".to_string()
    } else {
        match s.marked.len() {
            1 => "Loss (smoothed) of the marked run".to_string(),
            n => format!("Loss (smoothed) of {n} marked runs"),
        }
    };
    // Curves of other losses, or of other data, cannot be read against each other.
    let kinds = loss_kinds(charted.iter().map(|(_, r)| *r));
    let mut datasets: Vec<String> = charted
        .iter()
        .filter_map(|(_, r)| r.summary.dataset.as_deref().map(dataset_label))
        .collect();
    datasets.sort();
    datasets.dedup();
    let reasons: Vec<String> = [kinds, datasets]
        .into_iter()
        .filter(|v| v.len() > 1)
        .map(|v| v.join(", "))
        .collect();
    if !reasons.is_empty() {
        title = format!("{title} · not comparable: {}", reasons.join("; "));
    }
    if series.is_empty() {
        let b = block(&title);
        let inner = b.inner(area);
        frame.render_widget(b, area);
        frame.render_widget(
            Paragraph::new("no steps logged for this run").style(theme::label()),
            inner,
        );
        return;
    }
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let y_max = ys().fold(f64::MIN, f64::max);
    let y_min = ys().fold(f64::MAX, f64::min);
    let pad = ((y_max - y_min) * 0.05).max(1e-4);
    chart::draw(
        frame,
        area,
        &series,
        &ChartOpts {
            title,
            x_title: "step".into(),
            y_title: "loss".into(),
            y_bounds: Some([(y_min - pad).max(0.0), y_max + pad]),
            legend: Some(LegendPosition::TopRight),
            ..ChartOpts::default()
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_step_counts_are_saved_in_thousands() {
        assert_eq!(saved_of(2650, 5000), "2650/5000");
        assert_eq!(saved_of(105, 50_000), "105/50k");
        assert_eq!(saved_of(2650, 100_000), "2650/100k");
        assert_eq!(saved_of(12_345, 50_000), "12.3k/50k");
        assert_eq!(saved_of(99_950, 100_000), "99k/100k");
        assert_eq!(saved_of(123_456, 200_000), "123k/200k");
        assert_eq!(saved_of(2_500_000, 3_000_000), "2M/3M");
        for (step, steps) in [(99_950, 100_000), (123_456, 999_999), (9_999, 10_001)] {
            assert!(saved_of(step, steps).chars().count() <= SAVED_W);
        }
    }

    #[test]
    fn legend_names_drop_the_stamp_where_the_rest_tells_runs_apart() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            legend_names(
                names(&[
                    "20260102-093000-cosine-long-name",
                    "20260101-000000-compare/linear"
                ]),
                18
            ),
            ["cosine-long-name", "compare/linear"]
        );
        // Two runs of the same schedule keep their stamps' times, which tell them apart.
        assert_eq!(
            legend_names(
                names(&["20260102-093000-linear", "20260103-100000-linear"]),
                18
            ),
            ["…093000-linear", "…100000-linear"]
        );
        // Two comparisons' runs of a schedule, at 80 columns: apart, not alike.
        let two = legend_names(
            names(&[
                "20261206-114539-compare/sigmoid",
                "20261206-120211-compare/sigmoid",
            ]),
            24,
        );
        assert_eq!(two, ["114539-compare/sigmoid", "120211-compare/sigmoid"]);
        // A comparison's four runs are their schedules: a legend line that cuts each name's
        // end keeps them apart (`■compa… ■compa…` told nothing).
        let four = legend_names(
            names(&[
                "20261206-114539-compare/linear",
                "20261206-114539-compare/quadratic",
                "20261206-114539-compare/cosine",
                "20261206-114539-compare/sigmoid",
            ]),
            18,
        );
        assert_eq!(four, ["linear", "quadratic", "cosine", "sigmoid"]);
        assert_eq!(
            without_shared_start(&["run-a", "run-b"]),
            ["a", "b"],
            "after the last separator shared"
        );
        assert_eq!(without_shared_start(&["ab/c", "ab"]), ["ab/c", "ab"]);
        assert_eq!(without_shared_start(&["linear"]), ["linear"]);
        // Where even the time does not fit: cut in the middle.
        assert_eq!(
            super::super::run_label("20261206-114539-compare/sigmoid", 12),
            "202…/sigmoid"
        );
    }

    #[test]
    fn rows_are_found_under_the_pointer() {
        let body = Rect::new(0, 1, 80, 21);
        let (table, chart) = layout(body, 30);
        assert_eq!(table.height, 11, "55% of 21");
        assert_eq!(chart.y, table.y + table.height);
        assert_eq!(visible_rows(table), 8);
        // Row 0 of the list is two lines below the table's top (border, header).
        assert_eq!(run_at(table, table.y + 2, 30, 0), Some(0));
        assert_eq!(run_at(table, table.y + 1, 30, 0), None, "the header");
        // Scrolled so that the 13th run is the last shown.
        assert_eq!(run_at(table, table.y + 2, 30, 12), Some(5));
        assert_eq!(run_at(table, table.y + 9, 30, 12), Some(12));
        assert_eq!(run_at(table, table.y + 10, 30, 12), None, "the border");
        assert_eq!(run_at(table, table.y + 3, 1, 0), None, "past the last run");
    }
}
