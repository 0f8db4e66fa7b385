//! Denoising animations: one GIF frame per sampled step, each frame a grid of the whole batch,
//! every frame indexed into one global palette (the 256 greys for grey images, exactly; for
//! RGB, a palette quantised from the first and last frames). The last frame (the finished
//! samples) is held on screen for about [`LAST_FRAME_HOLD_MS`] before the animation loops.

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::Path;

use color_quant::NeuQuant;

use super::atomic::{check_extension, write_atomically};
use super::grid::{grid_image, rgb_bytes};
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

/// The frames of a sampling of `total` frames (the noise, then one per step) that its
/// denoising GIF shows: at most [`DENOISING_GIF_FRAMES`], spread from the noise to the final
/// images. A sampling that keeps only these hands [`save_denoising_gif`] all it shows.
pub fn denoising_gif_frames(total: usize) -> Vec<usize> {
    pick_frames(total, DENOISING_GIF_FRAMES)
}

/// The widest a denoising GIF's grid is scaled up to, in pixels (before the gaps between
/// images): 16 Fashion-MNIST images at 4×, 64 at 2×, 100 or more at 1×.
pub const DENOISING_GIF_WIDTH: usize = 512;

/// The scale of a denoising GIF of `cols` columns of images `width` pixels wide: 4× where it
/// fits [`DENOISING_GIF_WIDTH`], less for wider grids (never below 1×). Every frame is the
/// whole grid, so a 64-image GIF at 4× was 22 MB.
pub fn denoising_gif_scale(cols: usize, width: usize) -> usize {
    let grid = cols.max(1) * width.max(1);
    (DENOISING_GIF_WIDTH / grid).clamp(1, 4)
}

/// The denoising GIF of a sampling, as `sample --gif` and the lab's export both write it: the
/// [`denoising_gif_frames`] of `frames` (all of them where it holds only those), each
/// a grid of `cols` columns at [`denoising_gif_scale`], 80 ms a frame.
pub fn save_denoising_gif(
    frames: &[Vec<Image8>],
    cols: usize,
    path: &Path,
) -> Result<(), ExportError> {
    let picked: Vec<Vec<Image8>> = denoising_gif_frames(frames.len())
        .into_iter()
        .map(|i| frames[i].clone())
        .collect();
    let width = frames
        .first()
        .and_then(|f| f.first())
        .map_or(1, |i| i.width);
    save_denoise_gif(&picked, cols, denoising_gif_scale(cols, width), 80, path)
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
    // GIF delays are in hundredths of a second.
    let delay = effective_delay_ms(frame_delay_ms).div_ceil(10) as u16;
    let extra = hold_repeats(frame_delay_ms);
    let palette = Palette::of(&grids);
    let indexed: Vec<Vec<u8>> = grids.iter().map(|g| palette.indices(g)).collect();
    write_atomically(path, "gif", |tmp| {
        let io = |error: std::io::Error| ExportError::Io {
            path: path.to_path_buf(),
            error,
        };
        let encoding = |e: gif::EncodingError| match e {
            gif::EncodingError::Io(error) => io(error),
            other => ExportError::Render {
                path: path.to_path_buf(),
                message: other.to_string(),
            },
        };
        let file = BufWriter::new(std::fs::File::create(tmp).map_err(io)?);
        let mut encoder =
            gif::Encoder::new(file, w as u16, h as u16, &palette.colors()).map_err(encoding)?;
        encoder
            .set_repeat(gif::Repeat::Infinite)
            .map_err(encoding)?;
        let last = indexed.len() - 1;
        for i in (0..indexed.len()).chain(std::iter::repeat_n(last, extra)) {
            let frame = gif::Frame {
                width: w as u16,
                height: h as u16,
                delay,
                buffer: Cow::Borrowed(&indexed[i]),
                ..gif::Frame::default()
            };
            encoder.write_frame(&frame).map_err(encoding)?;
        }
        encoder.into_inner().map_err(encoding)?.flush().map_err(io)
    })
}

/// The one palette of a GIF's frames.
enum Palette {
    /// Grey frames: index `v` is grey level `v`, so the frames are stored exactly.
    Grey,
    /// RGB frames: 256 colours quantised from the first and last frames (the noise and the
    /// samples), every frame mapped to the nearest.
    Quantised(Box<NeuQuant>),
}

impl Palette {
    /// The palette of `grids`: the greys where every one is grey, else a quantised one.
    fn of(grids: &[Image8]) -> Self {
        if grids.iter().all(|g| g.channels == 1) {
            return Palette::Grey;
        }
        // NeuQuant learns from RGBA pixels.
        let mut rgba = Vec::new();
        for g in [&grids[0], &grids[grids.len() - 1]] {
            for p in rgb_bytes(g).chunks_exact(3) {
                rgba.extend_from_slice(&[p[0], p[1], p[2], 255]);
            }
        }
        Palette::Quantised(Box::new(NeuQuant::new(10, 256, &rgba)))
    }

    /// `[r, g, b, …]` of the global colour table.
    fn colors(&self) -> Vec<u8> {
        match self {
            Palette::Grey => (0..=255u8).flat_map(|v| [v, v, v]).collect(),
            Palette::Quantised(q) => q.color_map_rgb(),
        }
    }

    /// The palette index of each pixel of `img` (grey for [`Palette::Grey`], which
    /// [`Palette::of`] makes for grey frames only).
    fn indices(&self, img: &Image8) -> Vec<u8> {
        match self {
            Palette::Grey => img.pixels.clone(),
            Palette::Quantised(q) => rgb_bytes(img)
                .chunks_exact(3)
                .map(|p| q.index_of(&[p[0], p[1], p[2], 255]) as u8)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denoising_gif_is_scaled_down_as_its_grid_widens() {
        // Fashion-MNIST's 28 pixels: 4 columns (16 images) at 4×, 8 (64) at 2×, 10 at 1×.
        assert_eq!(denoising_gif_scale(4, 28), 4);
        assert_eq!(denoising_gif_scale(8, 28), 2);
        assert_eq!(denoising_gif_scale(10, 28), 1);
        assert_eq!(denoising_gif_scale(100, 28), 1);
        assert_eq!(denoising_gif_scale(1, 8), 4);
        assert_eq!(denoising_gif_scale(0, 0), 4);
    }

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
        // A sampling that kept only its GIF's frames gives the GIF every one of them.
        for total in [2, 51, 61, 201, 1001] {
            let kept = denoising_gif_frames(total);
            assert_eq!(kept.len(), total.min(DENOISING_GIF_FRAMES));
            let all: Vec<usize> = (0..kept.len()).collect();
            assert_eq!(denoising_gif_frames(kept.len()), all, "{total}");
        }
    }

    /// Every frame, decoded, is the grid it was made from: grey frames exactly, through one
    /// global palette and no frame palette (which Pillow decoded as black frames).
    #[test]
    fn frames_use_one_global_palette_and_grey_ones_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let img = |seed: u8, channels: usize| Image8 {
            width: 5,
            height: 3,
            channels,
            pixels: (0..15 * channels)
                .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
                .collect(),
        };
        let frames: Vec<Vec<Image8>> = (0..3u8)
            .map(|k| vec![img(k * 80, 1), img(k * 80 + 1, 1)])
            .collect();
        let path = dir.path().join("grey.gif");
        save_denoise_gif(&frames, 2, 1, 1500, &path).unwrap();
        let mut opts = gif::DecodeOptions::new();
        opts.set_color_output(gif::ColorOutput::Indexed);
        let mut d = opts.read_info(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(d.global_palette().map(|p| p.len()), Some(256 * 3));
        let mut n = 0;
        while let Some(f) = d.read_next_frame().unwrap() {
            assert!(f.palette.is_none(), "frame {n} has a palette of its own");
            let want = grid_image(&frames[n], 2, 1).unwrap();
            assert_eq!(f.buffer.to_vec(), want.pixels, "frame {n}");
            assert_eq!(f.delay, 150);
            n += 1;
        }
        assert_eq!(n, 3);
        // RGB frames: one quantised global palette, no frame palette, colours close.
        let smooth = |shift: usize| Image8 {
            width: 16,
            height: 16,
            channels: 3,
            pixels: (0..16 * 16 * 3)
                .map(|i| ((i / 3 % 16) * 16 + (i % 3) * 40 + shift) as u8)
                .collect(),
        };
        let frames: Vec<Vec<Image8>> = vec![vec![smooth(0)], vec![smooth(7)]];
        let path = dir.path().join("rgb.gif");
        save_denoise_gif(&frames, 1, 1, 1500, &path).unwrap();
        let mut opts = gif::DecodeOptions::new();
        opts.set_color_output(gif::ColorOutput::RGBA);
        let mut d = opts.read_info(std::fs::File::open(&path).unwrap()).unwrap();
        assert!(d.global_palette().is_some());
        let f = d.read_next_frame().unwrap().unwrap();
        assert!(f.palette.is_none());
        let want = &frames[0][0].pixels;
        let got: Vec<u8> = f
            .buffer
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 48, "RGB off by {worst}");
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
