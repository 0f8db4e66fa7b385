//! Image grids: several equally sized images tiled in rows, upscaled by an integer factor with
//! nearest-neighbour sampling (pixels stay crisp), separated by a thin grey gap.
//!
//! [`grid_image`] builds the grid in memory (used by the PNG and GIF exporters and the TUI);
//! [`save_grid_png`] writes it with plotters' bitmap backend.

use std::fmt::Display;
use std::path::Path;

use plotters::backend::{BitMapBackend, DrawingBackend};

use super::atomic::{check_extension, write_atomically};
use super::ExportError;
use crate::imaging::Image8;

/// Gap between tiles, in output pixels (not scaled).
pub const GRID_GAP: usize = 2;
/// Grey level of the gap and of empty cells in the last row: mid grey, so tiles stand apart
/// from both dark and light image backgrounds.
pub const GRID_GAP_VALUE: u8 = 96;
/// Largest width or height of a grid, in pixels.
pub const MAX_GRID_SIDE: usize = 16_384;

/// Why a list of images cannot be laid out as a grid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    /// No images were given.
    #[error("the image list is empty")]
    Empty,
    /// `cols` was 0.
    #[error("the number of columns must be at least 1")]
    ZeroColumns,
    /// `scale` was 0.
    #[error("the scale must be at least 1")]
    ZeroScale,
    /// An image has no pixels.
    #[error("image {index} is empty ({width}x{height} px)")]
    ZeroSize {
        /// Index of the image in the list.
        index: usize,
        /// Its width.
        width: usize,
        /// Its height.
        height: usize,
    },
    /// An image is neither grey (1 channel) nor RGB (3 channels).
    #[error("image {index} has {channels} channels (expected 1 or 3)")]
    BadChannels {
        /// Index of the image in the list.
        index: usize,
        /// Its channel count.
        channels: usize,
    },
    /// An image's pixel buffer does not match its declared size.
    #[error("image {index} has {got} bytes of pixels, expected {want}")]
    BadBuffer {
        /// Index of the image in the list.
        index: usize,
        /// `width * height * channels`.
        want: usize,
        /// Actual buffer length.
        got: usize,
    },
    /// The images do not all have the same size.
    #[error("image {index} is {got_w}x{got_h} px but image 0 is {want_w}x{want_h} px")]
    SizeMismatch {
        /// Index of the first image that differs.
        index: usize,
        /// Width of image 0.
        want_w: usize,
        /// Height of image 0.
        want_h: usize,
        /// Width of the offending image.
        got_w: usize,
        /// Height of the offending image.
        got_h: usize,
    },
    /// The grid would be larger than [`MAX_GRID_SIDE`] on a side.
    #[error("a grid of {cols}x{rows} tiles of {tile_w}x{tile_h} px is too large (max {MAX_GRID_SIDE} px a side)")]
    TooLarge {
        /// Columns of tiles.
        cols: usize,
        /// Rows of tiles.
        rows: usize,
        /// Tile width after scaling.
        tile_w: usize,
        /// Tile height after scaling.
        tile_h: usize,
    },
}

/// Geometry of a grid: where each tile goes and how large the result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLayout {
    /// Columns actually used (`min(cols, n)`).
    pub cols: usize,
    /// Rows of tiles.
    pub rows: usize,
    /// Width of one tile (image width × scale).
    pub tile_w: usize,
    /// Height of one tile (image height × scale).
    pub tile_h: usize,
    /// Width of the whole grid in pixels.
    pub width: usize,
    /// Height of the whole grid in pixels.
    pub height: usize,
}

impl GridLayout {
    /// Layout of `n` images of `w`×`h` px in at most `cols` columns, upscaled by `scale`.
    pub fn new(n: usize, cols: usize, w: usize, h: usize, scale: usize) -> Result<Self, GridError> {
        if n == 0 {
            return Err(GridError::Empty);
        }
        if cols == 0 {
            return Err(GridError::ZeroColumns);
        }
        if scale == 0 {
            return Err(GridError::ZeroScale);
        }
        let cols = cols.min(n);
        let rows = n.div_ceil(cols);
        let too_large = GridError::TooLarge {
            cols,
            rows,
            tile_w: w.saturating_mul(scale),
            tile_h: h.saturating_mul(scale),
        };
        let side = |count: usize, tile: usize| -> Option<usize> {
            let tile = tile.checked_mul(scale)?;
            let total = tile
                .checked_mul(count)?
                .checked_add((count - 1) * GRID_GAP)?;
            (total <= MAX_GRID_SIDE).then_some(total)
        };
        let width = side(cols, w).ok_or(too_large.clone())?;
        let height = side(rows, h).ok_or(too_large)?;
        Ok(Self {
            cols,
            rows,
            tile_w: w * scale,
            tile_h: h * scale,
            width,
            height,
        })
    }

    /// Top-left pixel of tile `index` (row-major order).
    pub fn tile_origin(&self, index: usize) -> (usize, usize) {
        let (r, c) = (index / self.cols, index % self.cols);
        (c * (self.tile_w + GRID_GAP), r * (self.tile_h + GRID_GAP))
    }
}

/// Checks that `images` are non-empty, well-formed and of one size; returns that size.
fn common_size(images: &[Image8]) -> Result<(usize, usize), GridError> {
    let first = images.first().ok_or(GridError::Empty)?;
    let (want_w, want_h) = (first.width, first.height);
    for (index, img) in images.iter().enumerate() {
        if img.channels != 1 && img.channels != 3 {
            return Err(GridError::BadChannels {
                index,
                channels: img.channels,
            });
        }
        if img.width == 0 || img.height == 0 {
            return Err(GridError::ZeroSize {
                index,
                width: img.width,
                height: img.height,
            });
        }
        let want = img.width * img.height * img.channels;
        if img.pixels.len() != want {
            return Err(GridError::BadBuffer {
                index,
                want,
                got: img.pixels.len(),
            });
        }
        if (img.width, img.height) != (want_w, want_h) {
            return Err(GridError::SizeMismatch {
                index,
                want_w,
                want_h,
                got_w: img.width,
                got_h: img.height,
            });
        }
    }
    Ok((want_w, want_h))
}

/// Tiles `images` (row-major) into one image with at most `cols` columns, each pixel
/// repeated `scale`×`scale` times, tiles separated by [`GRID_GAP`] px of [`GRID_GAP_VALUE`].
/// The result is grey when every input is grey, RGB otherwise (grey inputs are expanded).
pub fn grid_image(images: &[Image8], cols: usize, scale: usize) -> Result<Image8, GridError> {
    let (w, h) = common_size(images)?;
    let layout = GridLayout::new(images.len(), cols, w, h, scale)?;
    let channels = if images.iter().all(|i| i.channels == 1) {
        1
    } else {
        3
    };
    let stride = layout.width * channels;
    let mut pixels = vec![GRID_GAP_VALUE; stride * layout.height];
    for (index, img) in images.iter().enumerate() {
        let (ox, oy) = layout.tile_origin(index);
        for y in 0..h {
            // Build one upscaled output row, then copy it `scale` times.
            let mut row = Vec::with_capacity(layout.tile_w * channels);
            for x in 0..w {
                let px: [u8; 3];
                let src: &[u8] = if channels == 1 {
                    std::slice::from_ref(&img.pixels[y * w + x])
                } else {
                    px = img.rgb(x, y);
                    &px
                };
                for _ in 0..scale {
                    row.extend_from_slice(src);
                }
            }
            for dy in 0..scale {
                let start = (oy + y * scale + dy) * stride + ox * channels;
                pixels[start..start + row.len()].copy_from_slice(&row);
            }
        }
    }
    Ok(Image8 {
        width: layout.width,
        height: layout.height,
        channels,
        pixels,
    })
}

/// Interleaved RGB bytes of `img` (grey is repeated into the three channels).
pub(crate) fn rgb_bytes(img: &Image8) -> Vec<u8> {
    if img.channels == 3 {
        return img.pixels.clone();
    }
    img.pixels.iter().flat_map(|&v| [v, v, v]).collect()
}

/// Turns any displayable plotters error into an [`ExportError::Render`] naming `path`.
pub(crate) fn render_error<E: Display>(path: &Path) -> impl Fn(E) -> ExportError + '_ {
    move |e| ExportError::Render {
        path: path.to_path_buf(),
        message: os_error_in_words(&e.to_string()),
    }
}

/// plotters prints an encoder's I/O error in Rust's debug form (`Drawing backend error:
/// GifEncodingError(Io(Os { code: 28, kind: StorageFull, message: "No space left on device"
/// }))`): the operating system's words instead, where there are some.
fn os_error_in_words(message: &str) -> String {
    let code = message
        .split_once("Os { code: ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<i32>().ok());
    match code {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => message.to_string(),
    }
}

/// Writes a grid of `images` (see [`grid_image`]) to `path` as a PNG, through plotters'
/// bitmap backend. `path` must end in `.png` (or have no extension); the file is replaced
/// atomically.
pub fn save_grid_png(
    images: &[Image8],
    cols: usize,
    scale: usize,
    path: &Path,
) -> Result<(), ExportError> {
    check_extension(path, &["png"], ".png")?;
    let grid = grid_image(images, cols, scale).map_err(|error| ExportError::Grid {
        path: path.to_path_buf(),
        error,
    })?;
    write_atomically(path, "png", |tmp| {
        let size = (grid.width as u32, grid.height as u32);
        let mut backend = BitMapBackend::new(tmp, size);
        backend
            .blit_bitmap((0, 0), size, &rgb_bytes(&grid))
            .map_err(render_error(path))?;
        backend.present().map_err(render_error(path))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_encoders_os_error_is_said_in_words() {
        let debug = "Drawing backend error: GifEncodingError(Io(Os { code: 28, kind: StorageFull, message: \"No space left on device\" }))";
        assert_eq!(
            super::os_error_in_words(debug),
            "No space left on device (os error 28)"
        );
        assert_eq!(super::os_error_in_words("bad size"), "bad size");
    }

    use super::*;

    fn grey(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Image8 {
        let mut pixels = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                pixels.push(f(x, y));
            }
        }
        Image8 {
            width: w,
            height: h,
            channels: 1,
            pixels,
        }
    }

    #[test]
    fn layout_clamps_columns_and_counts_rows() {
        let l = GridLayout::new(5, 8, 4, 3, 2).unwrap();
        assert_eq!((l.cols, l.rows), (5, 1));
        let l = GridLayout::new(5, 2, 4, 3, 2).unwrap();
        assert_eq!((l.cols, l.rows), (2, 3));
        assert_eq!(l.width, 2 * 8 + GRID_GAP);
        assert_eq!(l.height, 3 * 6 + 2 * GRID_GAP);
        assert_eq!(l.tile_origin(3), (8 + GRID_GAP, 6 + GRID_GAP));
    }

    #[test]
    fn layout_rejects_degenerate_input() {
        assert_eq!(GridLayout::new(0, 1, 1, 1, 1), Err(GridError::Empty));
        assert_eq!(GridLayout::new(1, 0, 1, 1, 1), Err(GridError::ZeroColumns));
        assert_eq!(GridLayout::new(1, 1, 1, 1, 0), Err(GridError::ZeroScale));
        assert!(matches!(
            GridLayout::new(1000, 1000, 28, 28, 4),
            Err(GridError::TooLarge { .. })
        ));
        assert!(matches!(
            GridLayout::new(2, 2, usize::MAX / 2, 1, 4),
            Err(GridError::TooLarge { .. })
        ));
    }

    #[test]
    fn empty_cells_and_gaps_are_gap_grey() {
        let imgs = vec![grey(2, 2, |_, _| 0); 3];
        let g = grid_image(&imgs, 2, 1).unwrap();
        assert_eq!((g.width, g.height, g.channels), (6, 6, 1));
        assert_eq!(g.get(2, 0, 0), GRID_GAP_VALUE); // gap column
        assert_eq!(g.get(0, 2, 0), GRID_GAP_VALUE); // gap row
        assert_eq!(g.get(5, 5, 0), GRID_GAP_VALUE); // missing 4th tile
        assert_eq!(g.get(4, 0, 0), 0);
    }

    #[test]
    fn mixed_grey_and_rgb_give_rgb() {
        let rgb = Image8 {
            width: 1,
            height: 1,
            channels: 3,
            pixels: vec![10, 20, 30],
        };
        let g = grid_image(&[grey(1, 1, |_, _| 7), rgb], 2, 1).unwrap();
        assert_eq!(g.channels, 3);
        assert_eq!(g.rgb(0, 0), [7, 7, 7]);
        assert_eq!(g.rgb(1 + GRID_GAP, 0), [10, 20, 30]);
    }

    #[test]
    fn malformed_images_are_errors() {
        let mut bad = grey(2, 2, |_, _| 0);
        bad.pixels.pop();
        assert!(matches!(
            grid_image(&[bad], 1, 1),
            Err(GridError::BadBuffer { index: 0, .. })
        ));
        let four = Image8 {
            width: 1,
            height: 1,
            channels: 4,
            pixels: vec![0; 4],
        };
        assert!(matches!(
            grid_image(&[grey(1, 1, |_, _| 0), four], 1, 1),
            Err(GridError::BadChannels {
                index: 1,
                channels: 4
            })
        ));
        assert!(matches!(
            grid_image(&[grey(0, 3, |_, _| 0)], 1, 1),
            Err(GridError::ZeroSize { .. })
        ));
    }
}
