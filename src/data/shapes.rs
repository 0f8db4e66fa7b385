//! The built-in `shapes` set: labelled 28×28 grey images of simple shapes (circle, ring,
//! square, triangle, cross, stripes) at random sizes, positions, angles and brightness, drawn
//! anti-aliased on black from a seed. It needs no file and no network, so it is the offline
//! fallback of the TUI, and small models learn it in minutes on a CPU.

use super::convert::par_map;
use super::error::DataError;
use super::imageset::{DataSource, Dataset, ImageSet};
use super::spec::{LoadOptions, LoadProgress};
use crate::rng::LabRng;

/// Side of the images.
pub const SHAPES_SIZE: usize = 28;

/// The classes, by label id.
pub const SHAPES_LABELS: [&str; 6] = ["circle", "ring", "square", "triangle", "cross", "stripes"];

/// Stream offset separating the test split's images from the train split's.
const TEST_STREAM: u64 = 1 << 40;

/// Sub-samples per pixel side (anti-aliasing).
const SUPER: usize = 4;

/// A shape placed in the image: class, centre, radius, angle.
struct Placed {
    class: usize,
    cx: f32,
    cy: f32,
    r: f32,
    cos: f32,
    sin: f32,
    period: f32,
}

impl Placed {
    /// Whether the point (x, y) (pixel units) is inside the shape.
    fn contains(&self, x: f32, y: f32) -> bool {
        let (dx, dy) = (x - self.cx, y - self.cy);
        // Coordinates in the shape's rotated frame.
        let u = dx * self.cos + dy * self.sin;
        let v = -dx * self.sin + dy * self.cos;
        let r = self.r;
        match self.class {
            0 => dx * dx + dy * dy <= r * r,
            1 => {
                let d2 = dx * dx + dy * dy;
                d2 <= r * r && d2 >= (0.55 * r) * (0.55 * r)
            }
            2 => u.abs() <= 0.72 * r && v.abs() <= 0.72 * r,
            3 => {
                // Equilateral triangle with circumradius r: three half-planes.
                (0..3).all(|k| {
                    let a =
                        std::f32::consts::PI / 2.0 + k as f32 * 2.0 * std::f32::consts::PI / 3.0;
                    u * a.cos() + v * a.sin() >= -0.5 * r
                })
            }
            4 => {
                let t = 0.28 * r;
                (u.abs() <= t && v.abs() <= r) || (v.abs() <= t && u.abs() <= r)
            }
            _ => {
                let s = 0.8 * r;
                u.abs() <= s && v.abs() <= s && ((u + s) / self.period).floor() as i64 % 2 == 0
            }
        }
    }
}

/// Draws one image of `class`; size, position, angle, brightness and stripe period come from
/// `rng`. Returns 28×28 grey pixels.
fn draw(class: usize, rng: &mut LabRng) -> Vec<u8> {
    let n = SHAPES_SIZE as f32;
    let r = rng.uniform(5.0, 11.5);
    let margin = r + 1.0;
    let cx = rng.uniform(margin, n - margin);
    let cy = rng.uniform(margin, n - margin);
    let angle = rng.uniform(0.0, std::f32::consts::TAU);
    let brightness = rng.uniform(150.0, 255.0);
    let period = rng.uniform(0.3, 0.45) * r;
    let shape = Placed {
        class,
        cx,
        cy,
        r,
        cos: angle.cos(),
        sin: angle.sin(),
        period,
    };
    let mut out = vec![0u8; SHAPES_SIZE * SHAPES_SIZE];
    let step = 1.0 / SUPER as f32;
    for py in 0..SHAPES_SIZE {
        for px in 0..SHAPES_SIZE {
            let mut hits = 0;
            for sy in 0..SUPER {
                for sx in 0..SUPER {
                    let x = px as f32 + (sx as f32 + 0.5) * step;
                    let y = py as f32 + (sy as f32 + 0.5) * step;
                    if shape.contains(x, y) {
                        hits += 1;
                    }
                }
            }
            let cover = hits as f32 / (SUPER * SUPER) as f32;
            out[py * SHAPES_SIZE + px] = (cover * brightness).round() as u8;
        }
    }
    out
}

/// `count` images for the split whose random streams start at `stream0`.
fn split(seed: u64, stream0: u64, count: usize) -> ImageSet {
    let n_classes = SHAPES_LABELS.len();
    let images = par_map(count, |i| {
        let mut rng = LabRng::derived(seed, stream0 + i as u64);
        draw(i % n_classes, &mut rng)
    });
    ImageSet {
        images: images.concat(),
        labels: (0..count).map(|i| (i % n_classes) as u32).collect(),
        channels: 1,
        height: SHAPES_SIZE,
        width: SHAPES_SIZE,
    }
}

/// Generates the built-in set: `opts.shapes_count` training images and a sixth as many test
/// images (at least one), from `opts.seed`; `channels`/`image_size` options convert it.
pub fn generate(
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Dataset, DataError> {
    if opts.shapes_count == 0 {
        return Err(DataError::InvalidOption(
            "the built-in shapes set needs at least one image (shapes_count is 0)".into(),
        ));
    }
    progress(LoadProgress::Decoding {
        split: "train".into(),
    });
    let train =
        split(opts.seed, 0, opts.shapes_count).try_converted(opts.channels, opts.image_size)?;
    progress(LoadProgress::Decoding {
        split: "test".into(),
    });
    let test_count = (opts.shapes_count / 6).max(1);
    let test =
        split(opts.seed, TEST_STREAM, test_count).try_converted(opts.channels, opts.image_size)?;
    progress(LoadProgress::Ready);
    Ok(Dataset {
        name: "shapes".to_string(),
        source: DataSource::BuiltIn,
        train,
        test: Some(test),
        label_names: SHAPES_LABELS.iter().map(|s| s.to_string()).collect(),
    })
}
