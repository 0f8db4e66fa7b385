//! Inline display of an image grid in the terminal with viuer: kitty/iTerm graphics where the
//! terminal has them, coloured half-blocks otherwise. The grid is upscaled by an integer
//! factor (nearest neighbour) to fit the terminal before viuer sees it, so viuer never has to
//! resample and pixels stay sharp.

use anyhow::Context;

use super::grid::{grid_image, GridLayout};
use crate::imaging::Image8;

/// Largest upscaling factor used for inline display.
pub const MAX_INLINE_SCALE: usize = 8;

/// How to print `n` images of `img_w`×`img_h` px in at most `cols` columns in a terminal of
/// `term_cols`×`term_rows` cells with half-blocks (one pixel per column, two per row), keeping
/// one row free for the prompt: returns `(scale, cols_used, rows_used)`. `scale` is the largest
/// integer factor (≤ [`MAX_INLINE_SCALE`]) whose grid fits, so viuer prints it pixel for pixel;
/// when even scale 1 is too large, `scale` is 1 and `cols_used`/`rows_used` are the shrunk size
/// viuer will resample the grid to (aspect ratio kept). `None` when the images cannot form a
/// grid (see [`GridLayout::new`]).
pub fn inline_fit(
    n: usize,
    cols: usize,
    img_w: usize,
    img_h: usize,
    term_cols: usize,
    term_rows: usize,
) -> Option<(usize, usize, usize)> {
    let max_w = term_cols.max(1);
    let max_h = 2 * term_rows.saturating_sub(1).max(1);
    let base = GridLayout::new(n, cols, img_w, img_h, 1).ok()?;
    let fitting = (1..=MAX_INLINE_SCALE).rev().find_map(|s| {
        let l = GridLayout::new(n, cols, img_w, img_h, s).ok()?;
        (l.width <= max_w && l.height <= max_h).then_some((s, l))
    });
    Some(match fitting {
        Some((s, l)) => (s, l.width, l.height.div_ceil(2)),
        None => {
            // Too large even at scale 1: shrink to fit, preserving the aspect ratio.
            let (w, h) = (base.width, base.height);
            let (w, h) = if w * max_h >= h * max_w {
                (max_w, (h * max_w / w).max(1))
            } else {
                ((w * max_h / h).max(1), max_h)
            };
            (1, w, h.div_ceil(2))
        }
    })
}

/// Prints `images` as a grid with at most `cols` columns at the cursor position, as large as
/// the terminal allows (see [`inline_fit`]).
pub fn show_inline(images: &[Image8], cols: usize) -> anyhow::Result<()> {
    // Validates the images (empty list, mixed sizes) with a clear error.
    grid_image(images, cols, 1).context("cannot show images")?;
    let (term_cols, term_rows) = viuer::terminal_size();
    let (w, h) = (images[0].width, images[0].height);
    let (scale, w_cells, h_cells) = inline_fit(
        images.len(),
        cols,
        w,
        h,
        term_cols as usize,
        term_rows as usize,
    )
    .context("cannot show images: no grid layout")?;
    let grid = grid_image(images, cols, scale).context("cannot show images")?;
    let img = image::DynamicImage::ImageRgb8(grid.to_rgb_image());
    print_image(&img, Some(w_cells as u32), Some(h_cells as u32))
        .context("cannot print images to the terminal")
}

/// Prints `img` at the cursor, `width`×`height` cells where given, with viuer: kitty or iTerm
/// graphics where the environment says the terminal has them, half-blocks otherwise (see
/// [`graphics_terminal_likely`]: elsewhere nothing is asked of the terminal).
pub fn print_image(
    img: &image::DynamicImage,
    width: Option<u32>,
    height: Option<u32>,
) -> anyhow::Result<()> {
    let config = viuer::Config {
        absolute_offset: false,
        width,
        height,
        use_kitty: graphics_terminal_likely(|k| std::env::var(k).ok()),
        ..Default::default()
    };
    viuer::print(img, &config)?;
    Ok(())
}

/// Whether the environment names a terminal that speaks kitty, iTerm2 or sixel graphics
/// (and we are not inside tmux or screen, which do not pass them through by default): where
/// not, the lab and `--show` ask the terminal nothing (a terminal that answers no query would
/// keep them waiting, or its reader would swallow keys) and draw half-blocks.
/// `DDPM_LAB_IMAGES=query` forces the query, `DDPM_LAB_IMAGES=halfblocks` skips it.
pub fn graphics_terminal_likely(env: impl Fn(&str) -> Option<String>) -> bool {
    match env("DDPM_LAB_IMAGES").as_deref() {
        Some("query") => return true,
        Some("halfblocks") => return false,
        _ => {}
    }
    if env("TMUX").is_some() || env("STY").is_some() {
        return false;
    }
    let term = env("TERM").unwrap_or_default().to_ascii_lowercase();
    let program = env("TERM_PROGRAM").unwrap_or_default().to_ascii_lowercase();
    env("KITTY_WINDOW_ID").is_some()
        || env("WEZTERM_EXECUTABLE").is_some()
        || env("KONSOLE_VERSION").is_some()
        || ["kitty", "ghostty", "foot", "mlterm", "contour", "wezterm"]
            .iter()
            .any(|t| term.contains(t))
        || ["iterm.app", "wezterm", "ghostty", "rio"]
            .iter()
            .any(|p| program == *p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn graphics_are_asked_for_where_the_environment_names_such_a_terminal_only() {
        use super::graphics_terminal_likely;
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(graphics_terminal_likely(env(&[("TERM", "xterm-kitty")])));
        assert!(graphics_terminal_likely(env(&[("KITTY_WINDOW_ID", "1")])));
        assert!(graphics_terminal_likely(env(&[(
            "TERM_PROGRAM",
            "WezTerm"
        )])));
        assert!(graphics_terminal_likely(env(&[("TERM", "xterm-ghostty")])));
        assert!(!graphics_terminal_likely(env(&[(
            "TERM",
            "xterm-256color"
        )])));
        assert!(!graphics_terminal_likely(env(&[
            ("TERM", "screen"),
            ("TERM_PROGRAM", "tmux")
        ])));
    }

    use super::*;

    #[test]
    fn picks_largest_integer_scale_that_fits() {
        // 4 Fashion-MNIST images in a row: 4*28*s + 3*2 px wide, 28*s px high.
        assert_eq!(inline_fit(4, 4, 28, 28, 80, 24), Some((1, 80, 9)));
        assert_eq!(inline_fit(4, 4, 28, 28, 240, 60), Some((2, 230, 28)));
        // Height-bound: 2*(24-1) = 46 px rows fit one 28 px row at scale 1 only.
        assert_eq!(inline_fit(1, 1, 28, 28, 200, 24), Some((1, 28, 14)));
        assert_eq!(inline_fit(1, 1, 28, 28, 400, 100), Some((7, 196, 98)));
        // The gap does not scale: 3 tiles of 4 px with 2 px gaps are 64 px wide at scale 5
        // (not 5 × 16 = 80), 2 rows are 42 px high.
        assert_eq!(inline_fit(6, 3, 4, 4, 80, 24), Some((5, 64, 21)));
        assert_eq!(
            inline_fit(1, 1, 2, 2, 1000, 1000).unwrap().0,
            MAX_INLINE_SCALE
        );
        assert_eq!(inline_fit(0, 1, 2, 2, 80, 24), None);
    }

    #[test]
    fn never_exceeds_the_terminal() {
        for (n, cols, w, h) in [
            (1, 1, 5, 5),
            (4, 4, 28, 28),
            (64, 8, 28, 28),
            (10, 10, 100, 2),
        ] {
            for (tc, tr) in [(1, 1), (80, 24), (200, 50)] {
                let (s, c, r) = inline_fit(n, cols, w, h, tc, tr).unwrap();
                assert!(s >= 1 && c >= 1 && r >= 1);
                assert!(c <= tc.max(1), "{n}x{w}x{h} in {tc}x{tr}: {c} cols");
                assert!(
                    r <= tr.saturating_sub(1).max(1),
                    "{n} in {tc}x{tr}: {r} rows"
                );
                if s > 1 {
                    let l = GridLayout::new(n, cols, w, h, s).unwrap();
                    assert_eq!((c, r), (l.width, l.height.div_ceil(2)));
                }
            }
        }
    }
}
