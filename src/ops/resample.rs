//! The resolution changes of today's blog UNet as single-pass copies: pixel unshuffle
//! (`Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2)`, the `Downsample`) and
//! nearest ×2 upsampling (the `Upsample`). Backward, the first is the inverse permutation and
//! the second sums each 2×2 block. Stock candle does them as a strided 6-d copy and, backward,
//! a broadcast reduction.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::scratch::par_build_overwrite;
use super::storage::{contiguous, cpu_slice, cpu_tensor, with_f32};

/// Which resampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// `(N, C, 2H, 2W) → (N, 4C, H, W)`, channel `c·4 + p1·2 + p2` holding pixel
    /// `(2y + p1, 2x + p2)` of channel `c`.
    PixelUnshuffle,
    /// `(N, C, H, W) → (N, C, 2H, 2W)`, every pixel repeated in a 2×2 block.
    Upsample2x,
}

/// Pixel unshuffle by 2 (see [`Resample::PixelUnshuffle`]). CPU `f32` only.
pub fn pixel_unshuffle(x: &Tensor) -> Result<Tensor> {
    contiguous(x)?.apply_op1(Resample::PixelUnshuffle)
}

/// Nearest-neighbour upsampling by 2 (see [`Resample::Upsample2x`]). CPU `f32` only.
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    contiguous(x)?.apply_op1(Resample::Upsample2x)
}

/// `(planes N·C, h, w)` of the small side (the output of unshuffle, the input of upsample).
fn small_dims(op: Resample, dims: &[usize]) -> Result<(usize, usize, usize)> {
    let &[n, c, h, w] = dims else {
        candle_core::bail!("{op:?}: expected a 4-d tensor, got {dims:?}");
    };
    match op {
        Resample::PixelUnshuffle => {
            if h % 2 != 0 || w % 2 != 0 {
                candle_core::bail!("pixel_unshuffle: {h}×{w} is not divisible by 2");
            }
            Ok((n * c, h / 2, w / 2))
        }
        Resample::Upsample2x => Ok((n * c, h, w)),
    }
}

/// Writes the 4 small planes `(p1, p2)` of one big plane `big` (2h × 2w) into `small`
/// (4 · h · w).
fn unshuffle_plane(big: &[f32], small: &mut [f32], h: usize, w: usize) {
    let hw = h * w;
    for p1 in 0..2 {
        for p2 in 0..2 {
            let out = &mut small[(p1 * 2 + p2) * hw..][..hw];
            for y in 0..h {
                let row = &big[(2 * y + p1) * 2 * w..][..2 * w];
                for (x, o) in out[y * w..(y + 1) * w].iter_mut().enumerate() {
                    *o = row[2 * x + p2];
                }
            }
        }
    }
}

/// The inverse of [`unshuffle_plane`]: 4 small planes back into one big plane.
fn shuffle_plane(small: &[f32], big: &mut [f32], h: usize, w: usize) {
    let hw = h * w;
    for y in 0..h {
        for p1 in 0..2 {
            let row = &mut big[(2 * y + p1) * 2 * w..][..2 * w];
            for x in 0..w {
                for p2 in 0..2 {
                    row[2 * x + p2] = small[(p1 * 2 + p2) * hw + y * w + x];
                }
            }
        }
    }
}

/// One small plane (h × w) repeated into a big one (2h × 2w).
fn upsample_plane(small: &[f32], big: &mut [f32], h: usize, w: usize) {
    for y in 0..h {
        let src = &small[y * w..(y + 1) * w];
        for p1 in 0..2 {
            let row = &mut big[(2 * y + p1) * 2 * w..][..2 * w];
            for (x, &v) in src.iter().enumerate() {
                row[2 * x] = v;
                row[2 * x + 1] = v;
            }
        }
    }
}

/// The gradient of [`upsample_plane`]: each 2×2 block of `big` summed into `small`.
fn sum_blocks(big: &[f32], small: &mut [f32], h: usize, w: usize) {
    for y in 0..h {
        let (r0, r1) = (
            &big[2 * y * 2 * w..][..2 * w],
            &big[(2 * y + 1) * 2 * w..][..2 * w],
        );
        for (x, o) in small[y * w..(y + 1) * w].iter_mut().enumerate() {
            *o = (r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1]);
        }
    }
}

impl CustomOp1 for Resample {
    fn name(&self) -> &'static str {
        match self {
            Resample::PixelUnshuffle => "ddpm-pixel-unshuffle",
            Resample::Upsample2x => "ddpm-upsample-nearest2x",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, self.name())?;
        let (planes, h, w) = small_dims(*self, l.dims())?;
        let big = 4 * h * w;
        let d = l.dims();
        // SAFETY: each plane function writes its whole output plane and reads only `x`.
        let (out, shape) = unsafe {
            match self {
                Resample::PixelUnshuffle => (
                    par_build_overwrite(planes * big, big, |p, o| {
                        unshuffle_plane(&x[p * big..][..big], o, h, w)
                    }),
                    Shape::from((d[0], d[1] * 4, h, w)),
                ),
                Resample::Upsample2x => (
                    par_build_overwrite(planes * big, big, |p, o| {
                        upsample_plane(&x[p * h * w..][..h * w], o, h, w)
                    }),
                    Shape::from((d[0], d[1], 2 * h, 2 * w)),
                ),
            }
        };
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (planes, h, w) = small_dims(*self, x.dims())?;
        let big = 4 * h * w;
        let dx = with_f32(grad, |g| {
            // SAFETY: as in `cpu_fwd`, each plane's output is written whole, reading only `g`.
            Ok(unsafe {
                match self {
                    Resample::PixelUnshuffle => par_build_overwrite(planes * big, big, |p, o| {
                        shuffle_plane(&g[p * big..][..big], o, h, w)
                    }),
                    Resample::Upsample2x => par_build_overwrite(planes * h * w, h * w, |p, o| {
                        sum_blocks(&g[p * big..][..big], o, h, w)
                    }),
                }
            })
        })?;
        Ok(Some(cpu_tensor(dx, x.dims())?))
    }
}
