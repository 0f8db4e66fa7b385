//! Denoising animations: one GIF frame per sampled step, each frame a grid of the whole batch,
//! written with plotters' GIF bitmap backend. The last frame (the finished samples) is held
//! on screen for about [`LAST_FRAME_HOLD_MS`] before the animation loops.

use std::path::Path;

use plotters::backend::{BitMapBackend, DrawingBackend};

use super::atomic::{check_extension, write_atomically};
use super::grid::{grid_image, render_error, rgb_bytes};
use super::ExportError;
use crate::imaging::Image8;

/// How long the final frame stays on screen, in milliseconds (approximately: it is shown by
/// repeating it, so the hold is a whole number of frame delays).
pub const LAST_FRAME_HOLD_MS: u32 = 1500;
/// Shortest frame delay written; many viewers slow down anything faster.
pub const MIN_FRAME_DELAY_MS: u32 = 20;
/// Longest frame delay GIF can store (65535 hundredths of a second).
pub const MAX_FRAME_DELAY_MS: u32 = 655_350;

/// Indices of at most `max_frames` frames out of `total`, evenly spaced, always including the
/// first and the last frame (`max_frames` below 2 is treated as 2). Empty when `total` is 0.
pub fn pick_frames(total: usize, max_frames: usize) -> Vec<usize> {
    if total == 0 {
        return Vec::new();
    }
    let m = max_frames.max(2).min(total);
    if m == total {
        return (0..total).collect();
    }
    // With m ≤ total the step is ≥ 1, so the rounded indices are strictly increasing.
    let step = (total - 1) as f64 / (m - 1) as f64;
    (0..m).map(|i| (i as f64 * step).round() as usize).collect()
}

/// Most frames of a denoising GIF ([`save_denoising_gif`]): a 1000-step DDPM sampling keeps
/// every 17th step, a few seconds of animation and a file of about a megabyte or two.
pub const DENOISING_GIF_FRAMES: usize = 60;

/// The denoising GIF of a sampling, as `sample --gif` and the lab's export both write it: at
/// most [`DENOISING_GIF_FRAMES`] of `frames` spread from the noise to the final images, each
/// a grid of `cols` columns at 4× scale, 80 ms a frame.
pub fn save_denoising_gif(
    frames: &[Vec<Image8>],
    cols: usize,
    path: &Path,
) -> Result<(), ExportError> {
    let picked: Vec<Vec<Image8>> = pick_frames(frames.len(), DENOISING_GIF_FRAMES)
        .into_iter()
        .map(|i| frames[i].clone())
        .collect();
    save_denoise_gif(&picked, cols, 4, 80, path)
}

/// The frame delay actually written for a requested `frame_delay_ms`.
pub fn effective_delay_ms(frame_delay_ms: u32) -> u32 {
    frame_delay_ms.clamp(MIN_FRAME_DELAY_MS, MAX_FRAME_DELAY_MS)
}

/// How many extra copies of the last frame are appended so that it stays on screen about
/// [`LAST_FRAME_HOLD_MS`] in total.
pub fn hold_repeats(frame_delay_ms: u32) -> usize {
    let d = effective_delay_ms(frame_delay_ms);
    (LAST_FRAME_HOLD_MS.div_ceil(d) as usize).saturating_sub(1)
}

/// Writes an animated, looping GIF to `path`: frame `i` is the grid (see
/// [`grid_image`]) of `frames[i]`, shown for `frame_delay_ms` (clamped to
/// [`MIN_FRAME_DELAY_MS`]..=[`MAX_FRAME_DELAY_MS`]); the last frame is repeated
/// [`hold_repeats`] more times. All frames must give grids of the same size. `path` must end
/// in `.gif` (or have no extension); the file is replaced atomically.
pub fn save_denoise_gif(
    frames: &[Vec<Image8>],
    cols: usize,
    scale: usize,
    frame_delay_ms: u32,
    path: &Path,
) -> Result<(), ExportError> {
    check_extension(path, &["gif"], ".gif")?;
    if frames.is_empty() {
        return Err(ExportError::NoFrames {
            path: path.to_path_buf(),
        });
    }
    let mut grids = Vec::with_capacity(frames.len());
    for frame in frames {
        let grid = grid_image(frame, cols, scale).map_err(|error| ExportError::Grid {
            path: path.to_path_buf(),
            error,
        })?;
        let (want_w, want_h) = grids
            .first()
            .map(|g: &Image8| (g.width, g.height))
            .unwrap_or((grid.width, grid.height));
        if (grid.width, grid.height) != (want_w, want_h) {
            return Err(ExportError::FrameSizeMismatch {
                path: path.to_path_buf(),
                index: grids.len(),
                want_w,
                want_h,
                got_w: grid.width,
                got_h: grid.height,
            });
        }
        grids.push(grid);
    }
    let (w, h) = (grids[0].width, grids[0].height);
    if w > u16::MAX as usize || h > u16::MAX as usize {
        return Err(ExportError::TooLarge {
            path: path.to_path_buf(),
            width: w,
            height: h,
            limit: "GIF stores at most 65535 px a side",
        });
    }
    let delay = effective_delay_ms(frame_delay_ms);
    let extra = hold_repeats(frame_delay_ms);
    write_atomically(path, "gif", |tmp| {
        let size = (w as u32, h as u32);
        let mut backend = BitMapBackend::gif(tmp, size, delay).map_err(render_error(path))?;
        let last = grids.len() - 1;
        let order = (0..grids.len()).chain(std::iter::repeat_n(last, extra));
        for i in order {
            backend
                .blit_bitmap((0, 0), size, &rgb_bytes(&grids[i]))
                .map_err(render_error(path))?;
            backend.present().map_err(render_error(path))?;
        }
        // Dropping the backend drops the encoder, which writes the GIF trailer.
        drop(backend);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_frames_spans_first_to_last() {
        assert_eq!(pick_frames(0, 10), Vec::<usize>::new());
        assert_eq!(pick_frames(1, 10), vec![0]);
        assert_eq!(pick_frames(5, 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(pick_frames(201, 5), vec![0, 50, 100, 150, 200]);
        assert_eq!(pick_frames(10, 1), vec![0, 9]);
        assert_eq!(pick_frames(10, 0), vec![0, 9]);
        for total in 2..60 {
            for max in 2..70 {
                let p = pick_frames(total, max);
                assert_eq!(p.len(), max.min(total), "total {total} max {max}");
                assert_eq!(p[0], 0);
                assert_eq!(*p.last().unwrap(), total - 1);
                assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
            }
        }
    }

    #[test]
    fn hold_covers_the_hold_time() {
        assert_eq!(hold_repeats(100), 14);
        assert_eq!(hold_repeats(1500), 0);
        assert_eq!(hold_repeats(5000), 0);
        assert_eq!(hold_repeats(0), 74); // clamped to 20 ms
        assert_eq!(effective_delay_ms(u32::MAX), MAX_FRAME_DELAY_MS);
    }
}
