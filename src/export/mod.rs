//! Export layer: image grids (PNG), denoising animations (GIF), schedule and loss charts
//! (PNG/SVG), and inline display of image grids in the terminal.
//!
//! Files are written atomically: everything is rendered into a temporary file in the target's
//! directory which is then renamed over the target, so a failed export never leaves a
//! half-written file behind.

mod atomic;
pub mod chart;
pub mod fonts;
pub mod gif;
pub mod grid;
pub mod show;

use std::path::{Path, PathBuf};

pub use chart::{
    render_loss_chart, render_schedule_chart, save_loss_chart, save_loss_chart_with,
    save_schedule_chart, schedule_color, LossChartOptions, SCHEDULE_COLORS,
};
pub use gif::{
    denoising_gif_frames, pick_frames, save_denoise_gif, save_denoising_gif, DENOISING_GIF_FRAMES,
};
pub use grid::{grid_image, save_grid_png, GridError, GridLayout};
pub use show::show_inline;

/// Checks before any work that a PNG grid could be written to `path` (its extension, its
/// folder, that a file can be made there), as [`save_grid_png`] would find when it writes it.
pub fn check_png_target(path: &Path) -> Result<(), ExportError> {
    atomic::check_extension(path, &["png"], ".png")?;
    atomic::check_folder(path)?;
    atomic::check_writable(path)
}

/// Likewise for an animated GIF ([`save_denoise_gif`]).
pub fn check_gif_target(path: &Path) -> Result<(), ExportError> {
    atomic::check_extension(path, &["gif"], ".gif")?;
    atomic::check_folder(path)?;
    atomic::check_writable(path)
}

/// Why an export failed. Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The images could not be laid out as a grid (empty list, sizes differ, ...).
    #[error("cannot export {}: {error}", path.display())]
    Grid {
        /// The file that was to be written.
        path: PathBuf,
        /// What was wrong with the images.
        error: GridError,
    },
    /// A GIF was asked for without any frame.
    #[error("cannot export {}: no frames to animate", path.display())]
    NoFrames {
        /// The file that was to be written.
        path: PathBuf,
    },
    /// The frames of an animation do not all have the same grid size.
    #[error(
        "cannot export {}: frame {index} is {got_w}x{got_h} px but frame 0 is {want_w}x{want_h} px",
        path.display()
    )]
    FrameSizeMismatch {
        /// The file that was to be written.
        path: PathBuf,
        /// Index of the first frame that differs.
        index: usize,
        /// Width of frame 0.
        want_w: usize,
        /// Height of frame 0.
        want_h: usize,
        /// Width of the offending frame.
        got_w: usize,
        /// Height of the offending frame.
        got_h: usize,
    },
    /// The output would exceed what the file format can store.
    #[error("cannot export {}: {width}x{height} px is too large ({limit})", path.display())]
    TooLarge {
        /// The file that was to be written.
        path: PathBuf,
        /// Requested width in pixels.
        width: usize,
        /// Requested height in pixels.
        height: usize,
        /// The limit that was hit.
        limit: &'static str,
    },
    /// A chart size outside the accepted range.
    #[error(
        "cannot export {}: a chart of {width}x{height} px is outside 200x150 … 8192x8192 px",
        path.display()
    )]
    ChartSize {
        /// The file that was to be written.
        path: PathBuf,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// There is nothing to plot (no schedules, no series, or no finite points).
    #[error("cannot export {}: {what}", path.display())]
    NothingToPlot {
        /// The file that was to be written.
        path: PathBuf,
        /// What was missing.
        what: String,
    },
    /// The file name has an extension this exporter does not write.
    #[error("cannot export {}: unsupported file type (expected {expected})", path.display())]
    UnsupportedFormat {
        /// The file that was to be written.
        path: PathBuf,
        /// The accepted extensions, e.g. ".png".
        expected: &'static str,
    },
    /// The directory that should hold the file does not exist or is not a directory.
    #[error("cannot export {}: directory {} does not exist", path.display(), dir.display())]
    NoSuchDirectory {
        /// The file that was to be written.
        path: PathBuf,
        /// Its parent directory.
        dir: PathBuf,
    },
    /// The target path is an existing directory.
    #[error("cannot export {}: it is a directory", path.display())]
    IsADirectory {
        /// The file that was to be written.
        path: PathBuf,
    },
    /// Reading or writing the file failed.
    #[error("cannot write {}: {error}", path.display())]
    Io {
        /// The file concerned (the target, or its temporary sibling).
        path: PathBuf,
        /// The underlying error (in the message, so not also a `source`: it would show twice
        /// in an error chain).
        error: std::io::Error,
    },
    /// Plotters failed while drawing or encoding.
    #[error("cannot write {}: {message}", path.display())]
    Render {
        /// The file that was to be written.
        path: PathBuf,
        /// Plotters' error, as text.
        message: String,
    },
    /// The embedded chart font could not be loaded.
    #[error("cannot load the embedded chart font: {0}")]
    Font(String),
}
