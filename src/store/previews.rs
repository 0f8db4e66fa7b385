//! The preview grids a run leaves in `previews/`: one PNG per preview, named after its step and
//! its number of images (`step-000400-n64.png`), so that a run opened later shows its last
//! preview and a user can look back at how the samples grew.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::export::{save_grid_png, GridLayout};
use crate::imaging::Image8;

/// Folder of a run's preview grids.
pub const PREVIEWS_DIR: &str = "previews";

/// Columns of a preview grid of `n` images: as square as it can be (8 for 64).
pub fn preview_cols(n: usize) -> usize {
    (1..=n.max(1)).find(|c| c * c >= n).unwrap_or(1)
}

/// Where the grid of the `n` images previewed at `step` goes.
pub fn preview_path(run_dir: &Path, step: usize, n: usize) -> PathBuf {
    run_dir
        .join(PREVIEWS_DIR)
        .join(format!("step-{step:06}-n{n}.png"))
}

/// The step and number of images a preview file's name says, for names this module writes.
fn parse_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("step-")?.strip_suffix(".png")?;
    let (step, n) = rest.split_once("-n")?;
    Some((step.parse().ok()?, n.parse().ok()?))
}

/// Writes the grid of `images` previewed at `step` (atomically: a crash leaves the old file or
/// none, never half of one); returns its path.
pub fn save_preview(run_dir: &Path, step: usize, images: &[Image8]) -> Result<PathBuf> {
    let path = preview_path(run_dir, step, images.len());
    let dir = run_dir.join(PREVIEWS_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    save_grid_png(images, preview_cols(images.len()), 1, &path)?;
    Ok(path)
}

/// The previews in `run_dir` as `(step, n, path)`, by step.
fn list(run_dir: &Path) -> Vec<(usize, usize, PathBuf)> {
    let Ok(entries) = fs::read_dir(run_dir.join(PREVIEWS_DIR)) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, usize, PathBuf)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let (step, n) = parse_name(e.file_name().to_str()?)?;
            Some((step, n, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// The newest preview of `run_dir` cut back into its images of `channels` channels (1: grey,
/// 3: RGB): its step and images. `None` without one, or where the newest cannot be read or is
/// not the grid its name says.
pub fn latest_preview(run_dir: &Path, channels: usize) -> Option<(usize, Vec<Image8>)> {
    let (step, n, path) = list(run_dir).pop()?;
    let grid = image::open(&path).ok()?.to_rgb8();
    let images = split_grid(&grid, n, channels)?;
    Some((step, images))
}

/// The `n` tiles of a grid [`save_preview`] wrote; `None` where the size does not fit `n`.
fn split_grid(grid: &image::RgbImage, n: usize, channels: usize) -> Option<Vec<Image8>> {
    if n == 0 {
        return None;
    }
    let cols = preview_cols(n).min(n);
    let rows = n.div_ceil(cols);
    let gap = crate::export::grid::GRID_GAP;
    let (w, h) = (grid.width() as usize, grid.height() as usize);
    let tile = |side: usize, count: usize| {
        let inner = side.checked_sub((count - 1) * gap)?;
        inner.is_multiple_of(count).then_some(inner / count)
    };
    let (tw, th) = (tile(w, cols)?, tile(h, rows)?);
    let layout = GridLayout::new(n, cols, tw, th, 1).ok()?;
    if (layout.width, layout.height) != (w, h) || !(channels == 1 || channels == 3) {
        return None;
    }
    let images = (0..n)
        .map(|i| {
            let (ox, oy) = layout.tile_origin(i);
            let mut pixels = Vec::with_capacity(tw * th * channels);
            for y in 0..th {
                for x in 0..tw {
                    let p = grid.get_pixel((ox + x) as u32, (oy + y) as u32).0;
                    pixels.extend_from_slice(&p[..channels]);
                }
            }
            Image8 {
                width: tw,
                height: th,
                channels,
                pixels,
            }
        })
        .collect();
    Some(images)
}

/// Removes the previews after `step` (a resume from an earlier checkpoint drops the later
/// history, as it drops the logs' later lines); returns how many it removed.
pub fn remove_after(run_dir: &Path, step: usize) -> Result<usize> {
    let mut removed = 0;
    for (s, _, path) in list(run_dir) {
        if s > step {
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: usize, w: usize, h: usize, channels: usize) -> Vec<Image8> {
        (0..n)
            .map(|k| Image8 {
                width: w,
                height: h,
                channels,
                pixels: (0..w * h * channels)
                    .map(|i| ((i * 7 + k * 31) % 256) as u8)
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn a_saved_preview_reads_back_image_for_image() {
        // Grey and RGB, square and not, one image.
        for (n, w, h, c) in [(64, 28, 28, 1), (5, 8, 6, 3), (1, 4, 4, 1), (10, 3, 5, 1)] {
            let d = tempfile::tempdir().unwrap();
            let imgs = images(n, w, h, c);
            let path = save_preview(d.path(), 100 + n, &imgs).unwrap();
            assert_eq!(
                path,
                d.path()
                    .join(format!("previews/step-{:06}-n{n}.png", 100 + n))
            );
            let (step, back) = latest_preview(d.path(), c).unwrap();
            assert_eq!(step, 100 + n);
            assert_eq!(back, imgs, "n {n}, {w}×{h}×{c}");
        }
        assert_eq!(preview_cols(64), 8);
        assert_eq!(preview_cols(5), 3);
        assert_eq!(preview_cols(1), 1);
    }

    #[test]
    fn the_newest_is_by_step_and_a_foreign_or_damaged_file_is_no_preview() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(latest_preview(d.path(), 1), None, "no folder");
        save_preview(d.path(), 900, &images(4, 6, 6, 1)).unwrap();
        save_preview(d.path(), 1000, &images(4, 6, 6, 1)).unwrap();
        // Not the name of a preview: ignored.
        fs::write(d.path().join("previews/notes.png"), b"x").unwrap();
        assert_eq!(latest_preview(d.path(), 1).unwrap().0, 1000);
        // A name that says 9 images on a grid of 4: not read as anything.
        fs::copy(
            preview_path(d.path(), 1000, 4),
            preview_path(d.path(), 2000, 9),
        )
        .unwrap();
        assert_eq!(latest_preview(d.path(), 1), None);
        // Going back to step 950 drops the later two.
        assert_eq!(remove_after(d.path(), 950).unwrap(), 2);
        assert_eq!(latest_preview(d.path(), 1).unwrap().0, 900);
    }
}
