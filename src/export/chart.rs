//! Charts drawn with plotters: the beta schedules (β_t, ᾱ_t and log-SNR against t) and
//! training-loss curves. Written as PNG, or as SVG when the path ends in `.svg`; also
//! renderable into an in-memory [`Image8`] for the TUI.

use std::error::Error;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::atomic::{extension, write_atomically};
use super::fonts::ensure_fonts;
use super::grid::render_error;
use super::ExportError;
use crate::imaging::Image8;
use crate::schedule::{BetaSchedule, ScheduleTables};

/// One colour per schedule, in the order of [`BetaSchedule::ALL`] (linear, quadratic, cosine,
/// sigmoid): blue, orange, bluish green, reddish purple from the Okabe–Ito colour-blind-safe
/// palette. The TUI uses the same colours.
pub const SCHEDULE_COLORS: [(u8, u8, u8); 4] =
    [(0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167)];

/// Further colours for series that are not named after a schedule (after
/// [`SCHEDULE_COLORS`]): sky blue, vermillion, dark grey, yellow-brown.
pub const EXTRA_COLORS: [(u8, u8, u8); 4] =
    [(86, 180, 233), (213, 94, 0), (64, 64, 64), (160, 130, 0)];

/// Default size of the schedule chart (three panels side by side), in pixels.
pub const SCHEDULE_CHART_SIZE: (u32, u32) = (1650, 560);

/// The colour of `schedule` in [`SCHEDULE_COLORS`].
pub fn schedule_color(schedule: BetaSchedule) -> (u8, u8, u8) {
    let i = BetaSchedule::ALL
        .iter()
        .position(|&s| s == schedule)
        .unwrap_or(0);
    SCHEDULE_COLORS[i]
}

/// The `index`-th colour of the general palette ([`SCHEDULE_COLORS`] then [`EXTRA_COLORS`],
/// cycling).
pub fn palette_color(index: usize) -> (u8, u8, u8) {
    let n = SCHEDULE_COLORS.len() + EXTRA_COLORS.len();
    let i = index % n;
    if i < SCHEDULE_COLORS.len() {
        SCHEDULE_COLORS[i]
    } else {
        EXTRA_COLORS[i - SCHEDULE_COLORS.len()]
    }
}

/// Colours for named series: when every name mentions a different schedule (e.g. "linear",
/// "cosine-run2"), each gets its schedule's colour; otherwise colours follow the palette.
pub fn series_colors(names: &[&str]) -> Vec<(u8, u8, u8)> {
    let by_schedule: Vec<Option<BetaSchedule>> = names
        .iter()
        .map(|n| {
            let n = n.to_ascii_lowercase();
            BetaSchedule::ALL.into_iter().find(|s| n.contains(s.name()))
        })
        .collect();
    let distinct = by_schedule
        .iter()
        .enumerate()
        .all(|(i, s)| s.is_some() && by_schedule[..i].iter().all(|other| other != s));
    if distinct {
        // Every entry is Some here, so flattening keeps one colour per name.
        by_schedule
            .into_iter()
            .flatten()
            .map(schedule_color)
            .collect()
    } else {
        (0..names.len()).map(palette_color).collect()
    }
}

type DrawResult = Result<(), Box<dyn Error + Send + Sync>>;

/// Bitmaps are drawn at this multiple of their size and downsampled, which anti-aliases the
/// curves (plotters' bitmap backend draws lines without anti-aliasing).
pub const SUPERSAMPLE: u32 = 2;

/// A figure that can be drawn on any plotters backend.
trait Figure {
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole figure (background included) on `root`, with every length in pixels
    /// multiplied by `k` (`root` is `k` times [`Figure::size`]).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, k: u32) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Smallest chart size accepted, in pixels.
pub const MIN_CHART_SIZE: (u32, u32) = (200, 150);
/// Largest chart side accepted, in pixels.
pub const MAX_CHART_SIDE: u32 = 8192;

/// Checks that `size` is within [`MIN_CHART_SIZE`] … [`MAX_CHART_SIDE`].
fn check_size((w, h): (u32, u32), path: &Path) -> Result<(), ExportError> {
    let ok = (MIN_CHART_SIZE.0..=MAX_CHART_SIDE).contains(&w)
        && (MIN_CHART_SIZE.1..=MAX_CHART_SIDE).contains(&h);
    if ok {
        Ok(())
    } else {
        Err(ExportError::ChartSize {
            path: path.to_path_buf(),
            width: w,
            height: h,
        })
    }
}

/// Draws `fig` at [`SUPERSAMPLE`] times its size and downsamples it to [`Figure::size`].
/// `path` only names the file in errors.
fn rasterize(fig: &impl Figure, path: &Path) -> Result<image::RgbImage, ExportError> {
    ensure_fonts()?;
    let (w, h) = fig.size();
    check_size((w, h), path)?;
    let k = SUPERSAMPLE;
    let (bw, bh) = (w * k, h * k);
    let mut pixels = vec![255u8; bw as usize * bh as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (bw, bh)).into_drawing_area();
        fig.draw(&root, k).map_err(render_error(path))?;
        root.present().map_err(render_error(path))?;
    }
    let big = image::RgbImage::from_raw(bw, bh, pixels).ok_or_else(|| ExportError::Render {
        path: path.to_path_buf(),
        message: "chart buffer has the wrong size".into(),
    })?;
    Ok(image::imageops::resize(
        &big,
        w,
        h,
        image::imageops::FilterType::Triangle,
    ))
}

/// Writes `fig` to `path`: SVG for `.svg`, PNG for `.png` or no extension (rasterized with
/// [`rasterize`], then written by plotters' bitmap backend).
fn save_figure(fig: &impl Figure, path: &Path) -> Result<(), ExportError> {
    let svg = match extension(path).as_deref() {
        Some("svg") => true,
        Some("png") | None => false,
        Some(_) => {
            return Err(ExportError::UnsupportedFormat {
                path: path.to_path_buf(),
                expected: ".png or .svg",
            })
        }
    };
    ensure_fonts()?;
    let size = fig.size();
    check_size(size, path)?;
    if svg {
        return write_atomically(path, "svg", |tmp| {
            let root = SVGBackend::new(tmp, size).into_drawing_area();
            fig.draw(&root, 1).map_err(render_error(path))?;
            root.present().map_err(render_error(path))
        });
    }
    let img = rasterize(fig, path)?;
    write_atomically(path, "png", |tmp| {
        let mut backend = BitMapBackend::new(tmp, size);
        backend
            .blit_bitmap((0, 0), size, img.as_raw())
            .map_err(render_error(path))?;
        backend.present().map_err(render_error(path))
    })
}

/// Renders `fig` into an RGB image in memory.
fn render_figure(fig: &impl Figure) -> Result<Image8, ExportError> {
    let img = rasterize(fig, &PathBuf::from("<in-memory chart>"))?;
    Ok(Image8 {
        width: img.width() as usize,
        height: img.height() as usize,
        channels: 3,
        pixels: img.into_raw(),
    })
}

/// One curve of a panel.
#[derive(Clone)]
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    /// Stroke width in output pixels.
    width: u32,
    /// Faint lines are drawn pale, under the others, and get no legend entry.
    faint: bool,
}

/// One chart: title, axes and curves.
struct Panel {
    caption: String,
    x_desc: String,
    y_desc: String,
    x: Range<f64>,
    lines: Vec<Line>,
    legend: SeriesLabelPosition,
    caption_size: u32,
    /// Every length in pixels (fonts, margins, strokes) is multiplied by it: the
    /// supersampling factor times the figure's size-dependent scale.
    scale: f64,
}

/// Draws `panel` on `area` with `y` as the y coordinate (linear or log) and `y_fmt` for its
/// tick labels.
fn draw_panel<DB, YR>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    y: YR,
    y_fmt: &dyn Fn(&f64) -> String,
) -> DrawResult
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    YR: AsRangedCoord<Value = f64>,
    YR::CoordDescType: ValueFormatter<f64>,
{
    let px = |n: u32| scaled(n, panel.scale);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, ("sans-serif", px(panel.caption_size)))
        .margin(px(14))
        .x_label_area_size(px(46))
        .y_label_area_size(px(78))
        .build_cartesian_2d(panel.x.clone(), y)?;
    let x_fmt = |v: &f64| format_tick(*v);
    chart
        .configure_mesh()
        .x_desc(panel.x_desc.as_str())
        .y_desc(panel.y_desc.as_str())
        .label_style(("sans-serif", px(15)))
        .axis_desc_style(("sans-serif", px(17)))
        .axis_style(BLACK.stroke_width(px(1)))
        .bold_line_style(BLACK.mix(0.12).stroke_width(px(1)))
        .light_line_style(BLACK.mix(0.04).stroke_width(px(1)))
        .set_all_tick_mark_size(px(5))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(y_fmt)
        .x_labels(8)
        .y_labels(8)
        .draw()?;
    for line in panel.lines.iter().filter(|l| l.faint) {
        let style = line.color.mix(0.3).stroke_width(px(line.width));
        chart.draw_series(LineSeries::new(line.points.iter().copied(), style))?;
    }
    for line in panel.lines.iter().filter(|l| !l.faint) {
        let color = line.color;
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(px(line.width)),
            ))?
            .label(line.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + px(24) as i32, y)],
                    color.stroke_width(px(4)),
                )
            });
    }
    chart
        .configure_series_labels()
        .position(panel.legend.clone())
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.35))
        .label_font(("sans-serif", px(16)))
        .legend_area_size(px(34))
        .margin(px(12))
        .draw()?;
    Ok(())
}

/// `n` pixels at `scale`, rounded, at least 1.
fn scaled(n: u32, scale: f64) -> u32 {
    ((n as f64 * scale).round() as u32).max(1)
}

/// Size-dependent scale of a figure designed at `design` px shown at `size` px, so fonts and
/// margins shrink with small in-memory charts and grow with large ones.
fn size_scale(size: (u32, u32), design: (u32, u32)) -> f64 {
    let s = (size.0 as f64 / design.0 as f64).min(size.1 as f64 / design.1 as f64);
    s.clamp(0.55, 2.0)
}

/// A short tick label: integers plainly, small or large magnitudes in scientific notation.
fn format_tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

/// `√ᾱ_T` for a legend: two decimals, or scientific notation when tiny.
fn format_signal(v: f64) -> String {
    if v >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.1e}")
    }
}

/// Tick positions for a log axis over `lo..hi`: the 1-2-5 sequence, thinned to powers of ten
/// when it would give more than 12 ticks, and widened to 1…9 when it gives fewer than 3.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let ticks = |mantissas: &[f64]| -> Vec<f64> {
        let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (d0..=d1)
            .flat_map(|d| mantissas.iter().map(move |m| m * 10f64.powi(d)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let nice = ticks(&[1.0, 2.0, 5.0]);
    if nice.len() > 12 {
        ticks(&[1.0])
    } else if nice.len() >= 3 {
        nice
    } else {
        let fine = ticks(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        if fine.len() >= 3 {
            return fine;
        }
        // A narrow range inside one decade: five geometric steps, rounded to two digits.
        (0..5)
            .map(|i| round_sig(lo * (hi / lo).powf(i as f64 / 4.0), 2))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    }
}

/// `v` rounded to `digits` significant digits.
fn round_sig(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// A log-axis tick label, e.g. `1e-4`, `0.02`.
fn format_log_tick(v: f64) -> String {
    if (1e-2..1e3).contains(&v.abs()) {
        format_tick(v)
    } else {
        format!("{v:.0e}")
    }
}

/// Smallest and largest finite value of `values` (None when there is none).
fn finite_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Widens `lo..hi` by `frac` of its span on each side (by 0.5 when the span is zero).
fn padded(lo: f64, hi: f64, frac: f64) -> Range<f64> {
    let span = hi - lo;
    if span <= 0.0 {
        (lo - 0.5)..(hi + 0.5)
    } else {
        (lo - span * frac)..(hi + span * frac)
    }
}

fn rgb((r, g, b): (u8, u8, u8)) -> RGBColor {
    RGBColor(r, g, b)
}

// ---------------------------------------------------------------------------------------------
// Schedule chart

/// The three-panel schedule chart.
struct ScheduleChart<'a> {
    tables: &'a [ScheduleTables],
    size: (u32, u32),
}

impl ScheduleChart<'_> {
    /// Legend label of table `i`: the schedule name, with T when the tables differ in T.
    fn label(&self, t: &ScheduleTables) -> String {
        let same_t = self
            .tables
            .iter()
            .all(|o| o.timesteps() == self.tables[0].timesteps());
        if same_t {
            t.schedule.name().to_string()
        } else {
            format!("{} (T={})", t.schedule.name(), t.timesteps())
        }
    }

    fn lines(
        &self,
        f: impl Fn(&ScheduleTables) -> Vec<f64>,
        label_suffix: impl Fn(&ScheduleTables) -> String,
    ) -> Vec<Line> {
        self.tables
            .iter()
            .map(|t| Line {
                label: format!("{}{}", self.label(t), label_suffix(t)),
                color: rgb(schedule_color(t.schedule)),
                points: f(t)
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i as f64, v))
                    .filter(|(_, v)| v.is_finite())
                    .collect(),
                width: 3,
                faint: false,
            })
            .collect()
    }

    fn title(&self) -> String {
        let mut ts: Vec<usize> = self.tables.iter().map(|t| t.timesteps()).collect();
        ts.sort_unstable();
        ts.dedup();
        let ts: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
        format!("Forward-process noise schedules, T = {}", ts.join(" / "))
    }
}

impl Figure for ScheduleChart<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, k: u32) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let scale = k as f64 * size_scale(self.size, SCHEDULE_CHART_SIZE);
        let body = root
            .margin(scaled(10, scale), 0, 0, 0)
            .titled(&self.title(), ("sans-serif", scaled(28, scale)))?;
        let areas = body.split_evenly((1, 3));
        let t_max = self.tables.iter().map(|t| t.timesteps()).max().unwrap_or(2);
        let x = 0.0..((t_max.max(2) - 1) as f64);
        let no_suffix = |_: &ScheduleTables| String::new();

        // β_t spans 1e-4 … ~1 (the cosine schedule's last betas), so it needs a log axis.
        let betas = Panel {
            caption: "βₜ  (log scale)".into(),
            x_desc: "t".into(),
            y_desc: "βₜ".into(),
            x: x.clone(),
            // Non-positive betas cannot sit on a log axis: drop them (NaN is skipped).
            lines: self.lines(
                |t| {
                    t.betas
                        .iter()
                        .map(|&b| if b > 0.0 { b } else { f64::NAN })
                        .collect()
                },
                no_suffix,
            ),
            legend: SeriesLabelPosition::LowerRight,
            caption_size: 22,
            scale,
        };
        let (lo, hi) = finite_range(
            self.tables
                .iter()
                .flat_map(|t| t.betas.iter().copied())
                .filter(|b| *b > 0.0),
        )
        .unwrap_or((1e-4, 1.0));
        let (lo, hi) = (lo * 0.6, hi * 1.6);
        draw_panel(
            &areas[0],
            &betas,
            (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
            &|v| format_log_tick(*v),
        )?;

        let alphas = Panel {
            caption: "ᾱₜ  (signal variance left)".into(),
            x_desc: "t".into(),
            y_desc: "ᾱₜ".into(),
            x: x.clone(),
            lines: self.lines(
                |t| t.alphas_cumprod.clone(),
                |t| format!("  (√ᾱ at T: {})", format_signal(t.final_signal())),
            ),
            legend: SeriesLabelPosition::LowerLeft,
            caption_size: 22,
            scale,
        };
        draw_panel(&areas[1], &alphas, 0.0..1.02, &|v| format_tick(*v))?;

        let log_snr = |t: &ScheduleTables| t.snr.iter().map(|s| s.ln()).collect::<Vec<f64>>();
        let snr = Panel {
            caption: "log-SNR = ln(ᾱₜ / (1 − ᾱₜ))".into(),
            x_desc: "t".into(),
            y_desc: "ln SNR".into(),
            x,
            lines: self.lines(log_snr, no_suffix),
            legend: SeriesLabelPosition::UpperRight,
            caption_size: 22,
            scale,
        };
        let (lo, hi) = finite_range(self.tables.iter().flat_map(log_snr)).unwrap_or((-1.0, 1.0));
        draw_panel(&areas[2], &snr, padded(lo, hi, 0.05), &|v| format_tick(*v))?;
        Ok(())
    }
}

/// Checks the tables are drawable.
fn check_tables(tables: &[ScheduleTables], path: &Path) -> Result<(), ExportError> {
    if tables.is_empty() {
        return Err(ExportError::NothingToPlot {
            path: path.to_path_buf(),
            what: "no schedules given".into(),
        });
    }
    if let Some(t) = tables.iter().find(|t| t.betas.is_empty()) {
        return Err(ExportError::NothingToPlot {
            path: path.to_path_buf(),
            what: format!("the {} schedule has no timesteps", t.schedule),
        });
    }
    Ok(())
}

/// Writes a chart of β_t (log scale), ᾱ_t and ln SNR_t against t for all `tables` overlaid,
/// coloured with [`SCHEDULE_COLORS`], with legends and a title giving T. SVG when `path` ends
/// in `.svg`, PNG for `.png` or no extension ([`SCHEDULE_CHART_SIZE`] px); replaced atomically.
pub fn save_schedule_chart(tables: &[ScheduleTables], path: &Path) -> Result<(), ExportError> {
    check_tables(tables, path)?;
    save_figure(
        &ScheduleChart {
            tables,
            size: SCHEDULE_CHART_SIZE,
        },
        path,
    )
}

/// Renders the schedule chart (see [`save_schedule_chart`]) into an RGB image of `size` px.
pub fn render_schedule_chart(
    tables: &[ScheduleTables],
    size: (u32, u32),
) -> Result<Image8, ExportError> {
    check_tables(tables, Path::new("<in-memory chart>"))?;
    render_figure(&ScheduleChart { tables, size })
}

// ---------------------------------------------------------------------------------------------
// Loss chart

/// How a loss chart looks.
#[derive(Debug, Clone, PartialEq)]
pub struct LossChartOptions {
    /// Title above the plot.
    pub title: String,
    /// Logarithmic loss axis (ignored, i.e. linear, when some loss is ≤ 0).
    pub log_y: bool,
    /// When set, each series is also smoothed with an exponential moving average with this
    /// weight on the past (e.g. 0.9, bias-corrected like TensorBoard): the raw curve is drawn
    /// faint and the smoothed one bold.
    pub ema: Option<f64>,
    /// Size in pixels.
    pub size: (u32, u32),
    /// X axis description.
    pub x_desc: String,
    /// Y axis description.
    pub y_desc: String,
}

impl Default for LossChartOptions {
    fn default() -> Self {
        Self {
            title: "Training loss".into(),
            log_y: true,
            ema: None,
            size: (1000, 560),
            x_desc: "step".into(),
            y_desc: "loss".into(),
        }
    }
}

/// Exponential moving average of `ys` with weight `beta` on the past, bias-corrected.
pub fn ema(ys: &[f64], beta: f64) -> Vec<f64> {
    let beta = beta.clamp(0.0, 0.9999);
    let mut acc = 0.0;
    let mut weight = 0.0;
    ys.iter()
        .map(|&y| {
            acc = beta * acc + (1.0 - beta) * y;
            weight = beta * weight + (1.0 - beta);
            acc / weight
        })
        .collect()
}

/// The loss chart, with its series already cleaned.
struct LossChart {
    lines: Vec<Line>,
    options: LossChartOptions,
    log_y: bool,
    x: Range<f64>,
    y: (f64, f64),
}

impl LossChart {
    fn new(
        series: &[(String, Vec<(f64, f64)>)],
        options: &LossChartOptions,
        path: &Path,
    ) -> Result<Self, ExportError> {
        let finite: Vec<Vec<(f64, f64)>> = series
            .iter()
            .map(|(_, pts)| {
                pts.iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect()
            })
            .collect();
        let ys = || finite.iter().flatten().map(|p| p.1);
        let Some((y_lo, y_hi)) = finite_range(ys()) else {
            return Err(ExportError::NothingToPlot {
                path: path.to_path_buf(),
                what: if series.is_empty() {
                    "no loss series given".into()
                } else {
                    "the loss series have no finite points".into()
                },
            });
        };
        let (x_lo, x_hi) = finite_range(finite.iter().flatten().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let log_y = options.log_y && y_lo > 0.0;
        let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
        let colors = series_colors(&names);
        let mut lines = Vec::new();
        for ((name, pts), color) in series.iter().map(|s| &s.0).zip(finite).zip(colors) {
            if pts.is_empty() {
                continue;
            }
            let color = rgb(color);
            match options.ema {
                Some(beta) => {
                    let ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
                    let smooth = ema(&ys, beta);
                    lines.push(Line {
                        label: String::new(),
                        color,
                        points: pts.clone(),
                        width: 1,
                        faint: true,
                    });
                    lines.push(Line {
                        label: name.clone(),
                        color,
                        points: pts.iter().map(|p| p.0).zip(smooth).collect(),
                        width: 2,
                        faint: false,
                    });
                }
                None => lines.push(Line {
                    label: name.clone(),
                    color,
                    // Dense, noisy curves read better thin.
                    width: if pts.len() > 400 { 1 } else { 2 },
                    points: pts,
                    faint: false,
                }),
            }
        }
        Ok(Self {
            lines,
            options: options.clone(),
            log_y,
            x: if x_hi > x_lo {
                x_lo..x_hi
            } else {
                padded(x_lo, x_hi, 0.0)
            },
            y: (y_lo, y_hi),
        })
    }
}

impl Figure for LossChart {
    fn size(&self) -> (u32, u32) {
        self.options.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, k: u32) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let panel = Panel {
            scale: k as f64 * size_scale(self.options.size, LossChartOptions::default().size),
            caption: self.options.title.clone(),
            x_desc: self.options.x_desc.clone(),
            y_desc: if self.log_y {
                format!("{} (log scale)", self.options.y_desc)
            } else {
                self.options.y_desc.clone()
            },
            x: self.x.clone(),
            lines: self.lines.clone(),
            legend: SeriesLabelPosition::UpperRight,
            caption_size: 24,
        };
        let (lo, hi) = self.y;
        if self.log_y {
            let (lo, hi) = if hi > lo {
                (lo / 1.15, hi * 1.15)
            } else {
                (lo / 2.0, hi * 2.0)
            };
            draw_panel(
                root,
                &panel,
                (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
                &|v| format_log_tick(*v),
            )
        } else {
            draw_panel(root, &panel, padded(lo, hi, 0.05), &|v| format_tick(*v))
        }
    }
}

/// Writes a chart of loss curves with default [`LossChartOptions`] (log loss axis). Each series
/// is `(name, [(step, loss), …])`; non-finite points are skipped. SVG for `.svg`, PNG
/// otherwise; replaced atomically.
pub fn save_loss_chart(
    series: &[(String, Vec<(f64, f64)>)],
    path: &Path,
) -> Result<(), ExportError> {
    save_loss_chart_with(series, path, &LossChartOptions::default())
}

/// [`save_loss_chart`] with explicit options.
pub fn save_loss_chart_with(
    series: &[(String, Vec<(f64, f64)>)],
    path: &Path,
    options: &LossChartOptions,
) -> Result<(), ExportError> {
    let chart = LossChart::new(series, options, path)?;
    save_figure(&chart, path)
}

/// Renders a loss chart (see [`save_loss_chart_with`]) into an RGB image of `options.size`.
pub fn render_loss_chart(
    series: &[(String, Vec<(f64, f64)>)],
    options: &LossChartOptions,
) -> Result<Image8, ExportError> {
    let chart = LossChart::new(series, options, Path::new("<in-memory chart>"))?;
    render_figure(&chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_follow_schedules_when_names_allow() {
        assert_eq!(
            series_colors(&["cosine", "Linear-run"]),
            vec![SCHEDULE_COLORS[2], SCHEDULE_COLORS[0]]
        );
        // Two runs of one schedule: fall back to distinct palette colours.
        let c = series_colors(&["cosine a", "cosine b"]);
        assert_ne!(c[0], c[1]);
        assert_eq!(
            series_colors(&["a", "b"]),
            vec![palette_color(0), palette_color(1)]
        );
        assert_eq!(schedule_color(BetaSchedule::Sigmoid), SCHEDULE_COLORS[3]);
    }

    #[test]
    fn ema_is_bias_corrected() {
        let s = ema(&[1.0, 1.0, 1.0], 0.9);
        assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-12), "{s:?}");
        let s = ema(&[0.0, 10.0], 0.5);
        assert!((s[1] - 10.0 * 0.5 / 0.75).abs() < 1e-12);
    }

    #[test]
    fn log_ticks_are_nice_and_inside() {
        assert_eq!(log_ticks(0.04, 0.6), vec![0.05, 0.1, 0.2, 0.5]);
        assert_eq!(log_ticks(6e-5, 1.6), vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0]);
        assert_eq!(
            log_ticks(0.02, 0.09),
            vec![0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09]
        );
        let narrow = log_ticks(0.11, 0.19);
        assert!(narrow.len() >= 3, "{narrow:?}");
        assert!(
            narrow.iter().all(|v| (0.11..=0.19).contains(v)),
            "{narrow:?}"
        );
        assert!(log_ticks(0.0, 1.0).is_empty());
    }

    #[test]
    fn chart_sizes_are_checked_and_small_charts_render() {
        let series = vec![("a".to_string(), vec![(0.0, 1.0), (1.0, 0.5)])];
        for size in [(0, 0), (199, 400), (400, 9000)] {
            let opts = LossChartOptions {
                size,
                ..Default::default()
            };
            let err = render_loss_chart(&series, &opts).unwrap_err();
            assert!(matches!(err, ExportError::ChartSize { .. }), "{err}");
        }
        let opts = LossChartOptions {
            size: MIN_CHART_SIZE,
            ..Default::default()
        };
        let img = render_loss_chart(&series, &opts).unwrap();
        assert_eq!((img.width, img.height), (200, 150));
        let tables = [ScheduleTables::new(BetaSchedule::Cosine, 2).unwrap()];
        let img = render_schedule_chart(&tables, MIN_CHART_SIZE).unwrap();
        assert_eq!(img.pixels.len(), 200 * 150 * 3);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(format_tick(0.0), "0");
        assert_eq!(format_tick(150.0), "150");
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(-12.5), "-12.5");
        assert_eq!(format_log_tick(1e-4), "1e-4");
        assert_eq!(format_log_tick(0.02), "0.02");
    }

    #[test]
    fn loss_chart_drops_non_finite_points_and_falls_back_to_linear() {
        let series = vec![(
            "a".to_string(),
            vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, -0.5)],
        )];
        let c = LossChart::new(&series, &LossChartOptions::default(), Path::new("x.png")).unwrap();
        assert!(!c.log_y);
        assert_eq!(c.lines[0].points, vec![(0.0, 1.0), (2.0, -0.5)]);
        let nan = vec![("a".to_string(), vec![(0.0, f64::NAN)])];
        assert!(LossChart::new(&nan, &LossChartOptions::default(), Path::new("x.png")).is_err());
    }
}
