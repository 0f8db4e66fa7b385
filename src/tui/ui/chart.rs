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
    /// X axis title.
    pub x_title: String,
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
    let mut series: Vec<Series> = series
        .iter()
        .map(|s| Series {
            points: downsample(&s.points, width),
            ..s.clone()
        })
        .collect();
    let xb = opts.x_bounds.unwrap_or_else(|| bounds(&series, |p| p.0));
    let yb = opts.y_bounds.unwrap_or_else(|| bounds(&series, |p| p.1));
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
    let label = |v: f64| Span::styled(fmt_num(v), Style::default().fg(theme::DIM));
    let x_axis = Axis::default()
        .title(Span::styled(
            opts.x_title.clone(),
            Style::default().fg(theme::DIM),
        ))
        .bounds(xb)
        .labels([label(xb[0]), label((xb[0] + xb[1]) / 2.0), label(xb[1])]);
    let y_axis = Axis::default().bounds(yb).labels([
        label(yb[0]),
        label((yb[0] + yb[1]) / 2.0),
        label(yb[1]),
    ]);
    let chart = Chart::new(datasets)
        .block(block(&opts.title))
        .x_axis(x_axis)
        .y_axis(y_axis)
        .legend_position(opts.legend)
        .hidden_legend_constraints((Constraint::Percentage(60), Constraint::Percentage(100)));
    frame.render_widget(chart, area);
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
}
