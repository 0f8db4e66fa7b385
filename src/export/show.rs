//! Inline display of an image grid in the terminal with viuer: kitty/iTerm graphics where the
//! terminal has them, coloured half-blocks otherwise. The grid is upscaled by an integer
//! factor (nearest neighbour) to fit the terminal before viuer sees it, so viuer never has to
//! resample and pixels stay sharp.

use anyhow::Context;

use super::grid::grid_image;
use crate::imaging::Image8;

/// Largest upscaling factor used for inline display.
pub const MAX_INLINE_SCALE: usize = 8;

/// How to print a grid of `grid_w`×`grid_h` px (at scale 1) in a terminal of
/// `term_cols`×`term_rows` cells with half-blocks (one pixel per column, two per row), keeping
/// one row free for the prompt: returns `(scale, cols_used, rows_used)`. `scale` is the largest
/// integer factor (≤ [`MAX_INLINE_SCALE`], ≥ 1) that fits; at scale 1 a grid that is still too
/// large is shrunk by viuer to fit the width, which `cols_used`/`rows_used` reflect.
pub fn inline_fit(
    grid_w: usize,
    grid_h: usize,
    term_cols: usize,
    term_rows: usize,
) -> (usize, usize, usize) {
    let cols = term_cols.max(1);
    let px_rows = 2 * term_rows.saturating_sub(1).max(1);
    let (gw, gh) = (grid_w.max(1), grid_h.max(1));
    let scale = (cols / gw).min(px_rows / gh).clamp(1, MAX_INLINE_SCALE);
    let (w, h) = (gw * scale, gh * scale);
    if w <= cols && h <= px_rows {
        (scale, w, h.div_ceil(2))
    } else {
        // Too large even at scale 1: shrink to fit, preserving the aspect ratio.
        let (w, h) = if w * px_rows >= h * cols {
            (cols, (h * cols / w).max(1))
        } else {
            ((w * px_rows / h).max(1), px_rows)
        };
        (1, w, h.div_ceil(2))
    }
}

/// Prints `images` as a grid with at most `cols` columns at the cursor position, as large as
/// the terminal allows (see [`inline_fit`]).
pub fn show_inline(images: &[Image8], cols: usize) -> anyhow::Result<()> {
    let base = grid_image(images, cols, 1).context("cannot show images")?;
    let (term_cols, term_rows) = viuer::terminal_size();
    let (scale, w_cells, h_cells) = inline_fit(
        base.width,
        base.height,
        term_cols as usize,
        term_rows as usize,
    );
    let grid = if scale == 1 {
        base
    } else {
        grid_image(images, cols, scale).context("cannot show images")?
    };
    let img = image::DynamicImage::ImageRgb8(grid.to_rgb_image());
    let config = viuer::Config {
        absolute_offset: false,
        width: Some(w_cells as u32),
        height: Some(h_cells as u32),
        ..Default::default()
    };
    viuer::print(&img, &config).context("cannot print images to the terminal")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_largest_integer_scale_that_fits() {
        // 4 Fashion-MNIST tiles in a row: 4*28 + 3*2 = 118 px wide, 28 px high.
        assert_eq!(inline_fit(118, 28, 80, 24), (1, 80, 9));
        assert_eq!(inline_fit(118, 28, 240, 60), (2, 236, 28));
        // Height-bound: 2*(24-1) = 46 px rows fit one 28 px row at scale 1 only.
        assert_eq!(inline_fit(28, 28, 200, 24), (1, 28, 14));
        assert_eq!(inline_fit(28, 28, 400, 100), (7, 196, 98));
        assert_eq!(inline_fit(10, 10, 1000, 1000).0, MAX_INLINE_SCALE);
    }

    #[test]
    fn never_exceeds_the_terminal() {
        for (w, h) in [(5, 5), (118, 28), (300, 300), (1000, 20)] {
            for (tc, tr) in [(1, 1), (80, 24), (200, 50)] {
                let (s, c, r) = inline_fit(w, h, tc, tr);
                assert!(s >= 1 && c >= 1 && r >= 1);
                assert!(c <= tc.max(1), "{w}x{h} in {tc}x{tr}: {c} cols");
                assert!(
                    r <= tr.saturating_sub(1).max(1),
                    "{w}x{h} in {tc}x{tr}: {r} rows"
                );
            }
        }
    }
}
