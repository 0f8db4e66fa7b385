//! Line charts (ratatui `Chart` with braille markers) with legends, labelled axes, an
//! optional vertical marker, and downsampling of long series to the width available.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition};
use ratatui::Frame;

use super::{block, theme};

/// One curve.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend entry (empty: not in the legend).
    pub name: String,
    /// Colour.
    pub color: Color,
    /// Points `(x, y)` with increasing x.
    pub points: Vec<(f64, f64)>,
}

/// Options of a chart.
#[derive(Debug, Clone, Default)]
pub struct ChartOpts {
    /// Title of the surrounding block.
    pub title: String,
    /// X axis title (at the right of the bottom border; empty: none).
    pub x_title: String,
    /// Y axis title (in the top border after the title, else the bottom one; empty: none).
    pub y_title: String,
    /// Logarithmic y axis (decades labelled `1e-4` … `1`); values ≤ 0 are left out.
    pub y_log: bool,
    /// Y axis bounds (None: from the data).
    pub y_bounds: Option<[f64; 2]>,
    /// X axis bounds (None: from the data).
    pub x_bounds: Option<[f64; 2]>,
    /// A vertical marker line at this x.
    pub marker: Option<f64>,
    /// Where the legend goes (None: hidden).
    pub legend: Option<LegendPosition>,
}

/// Averages consecutive points so at most `max` remain.
pub fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let chunk = points.len().div_ceil(max);
    points
        .chunks(chunk)
        .map(|c| {
            let n = c.len() as f64;
            let x = c.iter().map(|p| p.0).sum::<f64>() / n;
            let y = c.iter().map(|p| p.1).sum::<f64>() / n;
            (x, y)
        })
        .collect()
}

/// Formats a power of ten compactly (`0.01`, `1`, `1e-4`).
pub fn fmt_decade(k: i32) -> String {
    match k {
        -3 => "0.001".into(),
        -2 => "0.01".into(),
        -1 => "0.1".into(),
        0..=4 => format!("{}", 10i64.pow(k as u32)),
        _ => format!("1e{k}"),
    }
}

/// Bounds of a log axis in decades and its labels: whole decades around `[lo, hi]` (log10
/// values), at most four labels, evenly spaced (ratatui spaces labels evenly).
pub fn log_axis(lo: f64, hi: f64) -> ([f64; 2], Vec<String>) {
    let hi = hi.ceil() as i32;
    let mut lo = (lo.floor() as i32).min(hi - 1);
    let span = hi - lo;
    // Whole decades per label, so that at most three intervals remain (span ≥ 1).
    let step = ((span + 2) / 3).max(1);
    lo = hi - step * ((span + step - 1) / step);
    let labels = (0..=(hi - lo) / step)
        .map(|i| fmt_decade(lo + i * step))
        .collect();
    ([lo as f64, hi as f64], labels)
}

/// Three labels of a linear axis: its ends and middle (whole numbers when the ends are whole,
/// as steps and timesteps are, or when the axis spans ten or more). Whole ends an odd number
/// under ten apart get no middle: step 2.5 is no step, and rounding it would put `3` where 2.5
/// is.
pub fn linear_labels(b: [f64; 2]) -> Vec<String> {
    let whole_ends = b[0].fract() == 0.0 && b[1].fract() == 0.0;
    let span = b[1] - b[0];
    if whole_ends && span < 10.0 && span % 2.0 == 1.0 {
        return vec![format!("{}", b[0] as i64), format!("{}", b[1] as i64)];
    }
    let whole = span >= 10.0 || (whole_ends && span >= 2.0);
    [b[0], (b[0] + b[1]) / 2.0, b[1]]
        .iter()
        .map(|&v| {
            if whole {
                format!("{}", v.round() as i64)
            } else {
                fmt_num(v)
            }
        })
        .collect()
}

/// Formats an axis value compactly.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || (v.fract() == 0.0 && a >= 1.0) {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn bounds(series: &[Series], f: impl Fn(&(f64, f64)) -> f64) -> [f64; 2] {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for p in series.iter().flat_map(|s| &s.points) {
        let v = f(p);
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return [0.0, 1.0];
    }
    if hi - lo < 1e-12 {
        [lo - 0.5, hi + 0.5]
    } else {
        [lo, hi]
    }
}

/// Draws `series` as lines in `area` (a bordered block titled `opts.title`).
pub fn draw(frame: &mut Frame, area: Rect, series: &[Series], opts: &ChartOpts) {
    let width = area.width.saturating_sub(10).max(4) as usize * 2;
    // The x axis spans the series' own first and last points, not those of the thinned-out
    // points drawn (whose x is a bucket's mean).
    let xb = opts.x_bounds.unwrap_or_else(|| bounds(series, |p| p.0));
    let plotted: Vec<Series> = series
        .iter()
        .map(|s| {
            let points: Vec<(f64, f64)> = if opts.y_log {
                s.points
                    .iter()
                    .filter(|p| p.1 > 0.0)
                    .map(|&(x, y)| (x, y.log10()))
                    .collect()
            } else {
                s.points.clone()
            };
            Series {
                points,
                ..s.clone()
            }
        })
        .collect();
    // The y axis too spans the series' own values: a thinned-out point is a bucket's mean, and
    // the extremes (cosine's log-SNR at T−1, say) are what the axis is read for.
    let data_yb = bounds(&plotted, |p| p.1);
    let mut series: Vec<Series> = plotted
        .into_iter()
        .map(|s| Series {
            points: downsample(&s.points, width),
            ..s
        })
        .collect();
    let (yb, y_labels) = if opts.y_log {
        let [lo, hi] = opts
            .y_bounds
            .map(|[a, b]| [a.max(f64::MIN_POSITIVE).log10(), b.log10()])
            .unwrap_or(data_yb);
        log_axis(lo, hi)
    } else {
        let yb = opts.y_bounds.unwrap_or(data_yb);
        (
            yb,
            [yb[0], (yb[0] + yb[1]) / 2.0, yb[1]].map(fmt_num).to_vec(),
        )
    };
    if let Some(x) = opts.marker {
        series.push(Series {
            name: String::new(),
            color: Color::White,
            points: vec![(x, yb[0]), (x, yb[1])],
        });
    }
    let datasets: Vec<Dataset> = series
        .iter()
        .map(|s| {
            let mut d = Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(s.color))
                .data(&s.points);
            if !s.name.is_empty() {
                d = d.name(Line::from(s.name.clone()));
            }
            d
        })
        .collect();
    let dim = Style::default().fg(theme::DIM);
    let label = |v: String| Span::styled(v, dim);
    // Three x labels where they fit beside each other, else only the ends.
    let mut x_labels = linear_labels(xb);
    let y_label_w = y_labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    let x_label_w = x_labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    let graph_w = (area.width as usize).saturating_sub(3 + y_label_w);
    if x_labels.len() == 3 && graph_w < 3 * (x_label_w + 2) {
        x_labels.remove(1);
    }
    // The axis titles go in the borders: ratatui draws them inside the graph (the y title on
    // its top row, the x title at the right of its bottom row), over the curves where they
    // matter most (the lr's peak, the first and the latest losses).
    let mut b = block(&opts.title);
    let x_axis = Axis::default()
        .bounds(xb)
        .labels(x_labels.into_iter().map(label));
    let y_axis = Axis::default()
        .bounds(yb)
        .labels(y_labels.into_iter().map(label));
    // The legend's box goes in a corner the curves leave free. Where every corner has some
    // curve, or the box does not fit beside the curves (a short chart at 80×24), the names go
    // in the bottom border instead, each after a mark in its colour; only where the border
    // would cut them does the box go over the curves, in the corner it hides least of.
    let mut legend = None;
    let border_width = area.width.saturating_sub(2) as usize;
    let mut bottom_used = 0;
    if opts.legend.is_some() {
        let inner = b.inner(area);
        let fits = legend_box_fits(&series, inner, y_label_w);
        let corner = fits
            .then(|| {
                let graph = graph_area(inner, y_label_w);
                let cells = covered_cells(&series, graph, xb, yb);
                quietest_corner(&series, graph, &cells)
            })
            .flatten();
        legend = match corner {
            Some((corner, 0)) => Some(corner),
            Some((corner, _)) if !legend_line_is_whole(&series, border_width) => Some(corner),
            _ => None,
        };
        if legend.is_none() {
            let line = legend_line(&series, border_width);
            bottom_used = line.width();
            b = b.title_bottom(line);
        }
    }
    let b = with_axis_titles(b, opts, border_width, bottom_used);
    let chart = Chart::new(datasets)
        .block(b)
        .x_axis(x_axis)
        .y_axis(y_axis)
        .legend_position(legend)
        .hidden_legend_constraints((Constraint::Percentage(60), Constraint::Percentage(100)));
    frame.render_widget(chart, area);
}

/// `b` with the axis titles in its borders: the y title (`lr ×1e-3`) at the right of the top
/// border after the chart's title, else at the left of the bottom one where that is free; the
/// x title (`step`) at the right of the bottom border, after what is there already
/// (`bottom_used` columns: the legend's names). A title that fits nowhere is left out (the
/// labels still say the values), and so is a y title the chart's title names already
/// (`Weighted loss`, `β_t log`).
fn with_axis_titles<'a>(
    mut b: ratatui::widgets::Block<'a>,
    opts: &ChartOpts,
    border_width: usize,
    mut bottom_used: usize,
) -> ratatui::widgets::Block<'a> {
    let caption = |text: &str| Line::styled(format!(" {text} "), Style::default().fg(theme::DIM));
    let named = opts
        .title
        .to_lowercase()
        .contains(&opts.y_title.to_lowercase());
    if !opts.y_title.is_empty() && !named {
        let y = caption(&opts.y_title);
        let title_w = Line::from(format!(" {} ", opts.title)).width();
        if title_w + 1 + y.width() <= border_width {
            b = b.title_top(y.right_aligned());
        } else if bottom_used == 0 && y.width() <= border_width {
            bottom_used = y.width();
            b = b.title_bottom(y);
        }
    }
    if !opts.x_title.is_empty() {
        let x = caption(&opts.x_title);
        if bottom_used + usize::from(bottom_used > 0) + x.width() <= border_width {
            b = b.title_bottom(x.right_aligned());
        }
    }
    b
}

/// Whether ratatui draws the legend box of the named `series` in a chart whose block's inside
/// is `inner` (as its layout decides: the graph is `inner` less the x axis and its labels and
/// the y labels and axis; the box, one line per name and its borders, must fit in its height
/// and in 60 % of its width). On the safe side where unsure.
fn legend_box_fits(series: &[Series], inner: Rect, y_label_w: usize) -> bool {
    let Some((box_w, box_h)) = legend_box_size(series) else {
        return true;
    };
    let graph_h = (inner.height as usize).saturating_sub(2);
    let graph_w = (inner.width as usize).saturating_sub(y_label_w + 2);
    box_h <= graph_h && box_w * 10 <= graph_w * 6
}

/// The size of ratatui's legend box for the named `series`: the widest name and one line per
/// name, inside a border (`None` where no series is named).
fn legend_box_size(series: &[Series]) -> Option<(usize, usize)> {
    let names: Vec<usize> = series
        .iter()
        .filter(|s| !s.name.is_empty())
        .map(|s| Line::from(s.name.as_str()).width())
        .collect();
    Some((names.iter().max()? + 2, names.len() + 2))
}

/// The graph's cells of a chart whose block's inside is `inner`, as ratatui lays it out: less
/// the y labels and the y axis on the left, the x axis and its labels at the bottom.
fn graph_area(inner: Rect, y_label_w: usize) -> Rect {
    let left = (y_label_w as u16 + 1).min(inner.width);
    Rect::new(
        inner.x + left,
        inner.y,
        inner.width - left,
        inner.height.saturating_sub(2),
    )
}

/// Which cells of `graph` the curves of `series` pass through (row-major, `graph.width` a
/// row), with `xb` and `yb` the axes' bounds.
fn covered_cells(series: &[Series], graph: Rect, xb: [f64; 2], yb: [f64; 2]) -> Vec<bool> {
    let (w, h) = (graph.width as usize, graph.height as usize);
    let mut cells = vec![false; w * h];
    if w == 0 || h == 0 {
        return cells;
    }
    // A point's cell, in fractional columns and rows (row 0 at the top).
    let at = |(x, y): (f64, f64)| {
        let cx = (x - xb[0]) / (xb[1] - xb[0]) * (w as f64 - 1.0);
        let cy = (yb[1] - y) / (yb[1] - yb[0]) * (h as f64 - 1.0);
        (cx, cy)
    };
    let mut mark = |(cx, cy): (f64, f64)| {
        let (c, r) = (cx.round(), cy.round());
        if c >= 0.0 && r >= 0.0 && (c as usize) < w && (r as usize) < h {
            cells[r as usize * w + c as usize] = true;
        }
    };
    for s in series {
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(at)
            .collect();
        if let [only] = pts[..] {
            mark(only);
        }
        // Each segment walked at half a cell a sample.
        for pair in pts.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) * 2.0)
                .ceil()
                .min(4096.0) as usize;
            for k in 0..=n.max(1) {
                let t = k as f64 / n.max(1) as f64;
                mark((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
            }
        }
    }
    cells
}

/// The corner of `graph` where the legend box of `series` hides the fewest `cells` of the
/// curves (top right, top left, bottom right, bottom left: the first of equals), with how
/// many it hides; placed as ratatui places it (the axes have no titles inside the graph).
fn quietest_corner(
    series: &[Series],
    graph: Rect,
    cells: &[bool],
) -> Option<(LegendPosition, usize)> {
    let (box_w, box_h) = legend_box_size(series)?;
    let (w, h) = (graph.width as usize, graph.height as usize);
    if box_w > w || box_h > h {
        return None;
    }
    let corners = [
        (LegendPosition::TopRight, w - box_w, 0),
        (LegendPosition::TopLeft, 0, 0),
        (LegendPosition::BottomRight, w - box_w, h - box_h),
        (LegendPosition::BottomLeft, 0, h - box_h),
    ];
    corners
        .into_iter()
        .map(|(corner, x, y)| {
            let hidden = (y..(y + box_h).min(h))
                .flat_map(|r| (x..x + box_w).map(move |c| r * w + c))
                .filter(|&i| cells.get(i).copied().unwrap_or(false))
                .count();
            (corner, hidden)
        })
        .min_by_key(|&(_, hidden)| hidden)
}

/// Whether the bottom border of `width` columns shows every name of `series` whole.
fn legend_line_is_whole(series: &[Series], width: usize) -> bool {
    legend_line_len(&legend_name_lens(series), 1) <= width
}

/// The length of each named series' name, as the bottom border's legend counts it.
fn legend_name_lens(series: &[Series]) -> Vec<usize> {
    series
        .iter()
        .filter(|s| !s.name.is_empty())
        .map(|s| s.name.chars().count())
        .collect()
}

/// The columns of a bottom-border legend of names `lens` long: a space before each entry and
/// one after the last, the mark, and its own space (`gap` 1) or none (0).
fn legend_line_len(lens: &[usize], gap: usize) -> usize {
    let n = lens.len();
    n + 1 + n * (1 + gap) + lens.iter().sum::<usize>()
}

/// The legend as one line for a chart's bottom border, at most `width` columns: ` ■ name`
/// per named series, the mark in its colour; where that is too long, the marks go without
/// their space, then the longest names lose their ends first.
fn legend_line(series: &[Series], width: usize) -> Line<'static> {
    let named: Vec<&Series> = series.iter().filter(|s| !s.name.is_empty()).collect();
    let mut lens = legend_name_lens(series);
    let n = named.len();
    let gap = usize::from(legend_line_len(&lens, 1) <= width);
    while legend_line_len(&lens, gap) > width {
        let Some(longest) = (0..n).filter(|&i| lens[i] > 1).max_by_key(|&i| lens[i]) else {
            break;
        };
        lens[longest] -= 1;
    }
    let mut spans = Vec::with_capacity(2 * n + 1);
    for (s, &len) in named.iter().zip(&lens) {
        let mark = if gap == 1 { " ■ " } else { " ■" };
        spans.push(Span::styled(mark, Style::default().fg(s.color)));
        spans.push(Span::styled(
            super::ellipsize_end(&s.name, len),
            Style::default().fg(theme::DIM),
        ));
    }
    spans.push(Span::raw(" "));
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_averages_chunks() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64)).collect();
        let d = downsample(&pts, 5);
        assert_eq!(
            d,
            vec![(0.5, 0.5), (2.5, 2.5), (4.5, 4.5), (6.5, 6.5), (8.5, 8.5)]
        );
        assert_eq!(downsample(&pts, 20).len(), 10);
        assert_eq!(fmt_num(0.1234), "0.123");
        assert_eq!(fmt_num(200.0), "200");
        assert_eq!(fmt_num(1e-5), "1.0e-5");
    }

    #[test]
    fn the_x_axis_spans_the_first_and_last_step_of_a_thinned_out_series() {
        use ratatui::backend::TestBackend;
        let losses = Series {
            name: String::new(),
            color: Color::White,
            points: (2..=200).map(|i| (i as f64, 1.0 / i as f64)).collect(),
        };
        let mut term = ratatui::Terminal::new(TestBackend::new(30, 10)).unwrap();
        term.draw(|f| {
            draw(
                f,
                f.area(),
                &[losses],
                &ChartOpts {
                    title: "Loss".into(),
                    ..ChartOpts::default()
                },
            )
        })
        .unwrap();
        let screen = format!("{}", term.backend());
        let axis = screen.lines().rev().nth(1).unwrap();
        let labels: Vec<&str> = axis
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(labels.first(), Some(&"2"), "{screen}");
        assert_eq!(labels.last(), Some(&"200"), "{screen}");
    }

    #[test]
    fn the_y_axis_spans_the_extremes_of_a_thinned_out_series() {
        use ratatui::backend::TestBackend;
        // A log-SNR-like curve that plunges at its last point, which a bucket's mean hides.
        let mut points: Vec<(f64, f64)> = (0..200)
            .map(|i| (i as f64, 9.0 - 0.05 * i as f64))
            .collect();
        points[199].1 = -18.9;
        let curve = Series {
            name: String::new(),
            color: Color::White,
            points,
        };
        let mut term = ratatui::Terminal::new(TestBackend::new(30, 10)).unwrap();
        term.draw(|f| {
            draw(
                f,
                f.area(),
                &[curve],
                &ChartOpts {
                    title: "log SNR".into(),
                    ..ChartOpts::default()
                },
            )
        })
        .unwrap();
        let screen = format!("{}", term.backend());
        assert!(screen.contains("│-18.90│"), "{screen}");
        assert!(screen.contains("│9     │"), "{screen}");
    }

    #[test]
    fn every_name_is_shown_once_in_the_box_or_the_bottom_border() {
        use ratatui::backend::TestBackend;
        let names = ["alpha-run", "beta-run", "gamma-run", "delta-run"];
        for n in 1..=names.len() {
            let series: Vec<Series> = names[..n]
                .iter()
                .enumerate()
                .map(|(i, name)| Series {
                    name: name.to_string(),
                    color: Color::Indexed(i as u8 + 1),
                    points: (0..50).map(|x| (x as f64, (x * (i + 1)) as f64)).collect(),
                })
                .collect();
            for (w, h) in [
                (40, 6),
                (60, 8),
                (60, 9),
                (60, 10),
                (60, 12),
                (80, 20),
                (24, 12),
            ] {
                let mut term = ratatui::Terminal::new(TestBackend::new(w, h)).unwrap();
                term.draw(|f| {
                    draw(
                        f,
                        f.area(),
                        &series,
                        &ChartOpts {
                            title: "Loss".into(),
                            x_title: "step".into(),
                            y_title: "loss".into(),
                            legend: Some(LegendPosition::TopRight),
                            ..ChartOpts::default()
                        },
                    )
                })
                .unwrap();
                let screen = format!("{}", term.backend());
                let bottom = screen.lines().last().unwrap().to_string();
                for name in &names[..n] {
                    let shown = screen.matches(name).count();
                    // Cut in the middle where the border is short, each still after its mark.
                    let cut = bottom.matches('■').count() == n;
                    assert!(
                        shown == 1 || (shown == 0 && cut),
                        "{n} names at {w}×{h}: {name} shown {shown} times\n{screen}"
                    );
                }
                if h >= 12 && w >= 60 {
                    // A corner free of curves, or the border: the names are whole either way.
                    for name in &names[..n] {
                        assert_eq!(screen.matches(name).count(), 1, "{w}×{h}\n{screen}");
                    }
                }
                if h <= 8 {
                    assert!(
                        bottom.contains('■'),
                        "no room for the box at {w}×{h}\n{screen}"
                    );
                }
            }
        }
    }

    /// `series` drawn at `w`×`h` with a top-right legend asked for.
    fn drawn(series: &[Series], w: u16, h: u16) -> String {
        let opts = ChartOpts {
            title: "Loss".into(),
            x_title: "step".into(),
            legend: Some(LegendPosition::TopRight),
            ..ChartOpts::default()
        };
        drawn_with(series, w, h, &opts)
    }

    /// `series` drawn at `w`×`h` with `opts`, as TestBackend shows it.
    fn drawn_with(series: &[Series], w: u16, h: u16, opts: &ChartOpts) -> String {
        use ratatui::backend::TestBackend;
        let mut term = ratatui::Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| draw(f, f.area(), series, opts)).unwrap();
        format!("{}", term.backend())
    }

    /// The axis titles go in the borders, never over the curves: the lr chart's peak (its top
    /// left) and its end (bottom right) show at every height; the y title goes top right after
    /// the chart's title, else bottom left; the x title bottom right; a y title the chart's
    /// title names is not said twice.
    #[test]
    fn axis_titles_go_in_the_borders_and_leave_the_curves_whole() {
        let draw_at = |title: &str, y_title: &str, legend: bool, w: u16, h: u16| {
            let series = [Series {
                name: if legend { "lr".into() } else { String::new() },
                color: Color::White,
                // Flat at its top, then down to 0 at the right: curve in both title cells.
                points: (0..=100)
                    .map(|x| (x as f64, if x < 50 { 2.0 } else { (100 - x) as f64 / 25.0 }))
                    .collect(),
            }];
            let opts = ChartOpts {
                title: title.into(),
                x_title: "step".into(),
                y_title: y_title.into(),
                legend: legend.then_some(LegendPosition::TopRight),
                ..ChartOpts::default()
            };
            drawn_with(&series, w, h, &opts)
        };
        // TestBackend shows each row in quotes.
        let rows = |screen: &str| -> Vec<String> {
            screen
                .lines()
                .map(|l| l.trim_matches('"').to_string())
                .collect()
        };
        // Inside the block, no title: the top row shows the flat peak, the graph's last row
        // the curve's end (above the x axis and its labels).
        let curve_whole = |screen: &str| {
            let lines = rows(screen);
            let inside = lines[1..lines.len() - 1].join("\n");
            let (top, end) = (&lines[1], &lines[lines.len() - 4]);
            !inside.contains("lr ×1e-3")
                && !inside.contains("step")
                && top.contains('⠉')
                && !end.trim_end_matches('│').ends_with(' ')
        };
        for (w, h) in [(17, 7), (40, 7), (40, 16), (60, 30)] {
            let screen = draw_at("Learning rate", "lr ×1e-3", false, w, h);
            assert!(curve_whole(&screen), "{w}×{h}\n{screen}");
            assert_eq!(screen.matches("lr ×1e-3").count(), 1, "{w}×{h}\n{screen}");
            let lines = rows(&screen);
            if w >= 40 {
                // Beside the chart's title, and the x title at the bottom right.
                assert!(lines[0].ends_with(" lr ×1e-3 ┐"), "{screen}");
                assert!(lines.last().unwrap().ends_with(" step ┘"), "{screen}");
            } else {
                // 80×24's lr chart (17 columns): bottom left, no room for the x title.
                assert!(lines.last().unwrap().starts_with("└ lr ×1e-3 "), "{screen}");
                assert!(!screen.contains("step"), "{screen}");
            }
        }
        // With the legend's names in the bottom border, the x title goes after them.
        let screen = draw_at("LR", "lr ×1e-3", true, 40, 7);
        let lines = rows(&screen);
        assert!(
            lines[0].contains(" LR ") && lines[0].contains(" lr ×1e-3 "),
            "{screen}"
        );
        // Named by the chart's title: said once.
        let screen = draw_at("Weighted loss", "loss", false, 30, 7);
        assert_eq!(screen.matches("loss").count(), 1, "{screen}");
    }

    #[test]
    fn the_legend_box_goes_where_no_curve_is_and_else_in_the_border() {
        let series = |name: &str, color: u8, f: &dyn Fn(f64) -> f64| Series {
            name: name.into(),
            color: Color::Indexed(color),
            points: (0..100).map(|x| (x as f64, f(x as f64))).collect(),
        };
        // A loss falling from the top left: the box goes top right, over no curve.
        let falling = [series("falling", 1, &|x| 100.0 / (1.0 + x))];
        let screen = drawn(&falling, 60, 16);
        let lines: Vec<&str> = screen.lines().collect();
        let top = lines[1..5].join("\n");
        assert!(top.contains("│falling│"), "{screen}");
        assert!(!lines.last().unwrap().contains('■'), "{screen}");
        // A rising one: top right is taken, top left is free.
        let rising = [series("rising", 2, &|x| x)];
        let screen = drawn(&rising, 60, 16);
        let row = screen.lines().find(|l| l.contains("rising")).unwrap();
        let (graph_left, name) = (row.find('│').unwrap(), row.find("rising").unwrap());
        assert!(name < row.len() / 2, "box on the left: {row}\n{screen}");
        assert!(name > graph_left);
        // Curves in every corner: the names go in the border, whole.
        let everywhere = [series("up", 3, &|x| x), series("down", 4, &|x| 99.0 - x)];
        let screen = drawn(&everywhere, 60, 16);
        let bottom = screen.lines().last().unwrap();
        assert!(
            bottom.contains("■ up") && bottom.contains("■ down"),
            "{screen}"
        );
        assert_eq!(screen.matches("down").count(), 1, "{screen}");
    }

    #[test]
    fn log_axes_label_whole_decades_evenly() {
        // β of the four schedules: 1e-4 … 0.999.
        let (b, labels) = log_axis(-4.0, -0.0004);
        assert_eq!(b, [-4.0, 0.0]);
        assert_eq!(labels, ["1e-4", "0.01", "1"]);
        let (b, labels) = log_axis(-5.3, -1.7);
        assert_eq!(b, [-7.0, -1.0]);
        assert_eq!(labels, ["1e-7", "1e-5", "0.001", "0.1"]);
        let (b, labels) = log_axis(-2.5, -2.1);
        assert_eq!(
            (b, labels),
            ([-3.0, -2.0], vec!["0.001".to_string(), "0.01".into()])
        );
        assert_eq!(linear_labels([0.0, 199.0]), ["0", "100", "199"]);
        assert_eq!(linear_labels([0.0, 0.5]), ["0", "0.250", "0.500"]);
        assert_eq!(linear_labels([1.0, 11.0]), ["1", "6", "11"], "steps");
        assert_eq!(linear_labels([1.0, 5.0]), ["1", "3", "5"], "steps");
        assert_eq!(linear_labels([1.0, 2.0]), ["1", "2"], "no step 1.50");
        assert_eq!(linear_labels([1.0, 4.0]), ["1", "4"], "no `3` where 2.5 is");
        assert_eq!(
            linear_labels([1.0, 10.0]),
            ["1", "10"],
            "no `6` where 5.5 is"
        );
    }
}
