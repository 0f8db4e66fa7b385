//! `silu(h · (1 + scale) + shift)` with per-example, per-channel `scale` and `shift` `(N, C)`:
//! the time conditioning of today's blog UNet (`Block` after its GroupNorm) in one pass per
//! channel plane, and its backward in one more (`du = dy · silu'(u)`, `dh = du · (1 + scale)`,
//! `dscale = Σ du · h`, `dshift = Σ du` over the plane). Stock candle makes this two broadcast
//! ops, an activation and, backward, two broadcast reductions.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::scratch::{par_build_overwrite, with_scratch};
use super::simd::{scale_shift, silu_bwd, silu_fwd};
use super::storage::{contiguous, cpu_slice, cpu_tensor, with_f32, with_f32_3};

/// The custom op: `(h (N, C, H, W), scale (N, C), shift (N, C)) → silu(h · (1 + scale) + shift)`.
#[derive(Debug, Clone, Copy)]
pub struct ScaleShiftSiluOp;

/// `silu(h · (1 + scale) + shift)` through [`ScaleShiftSiluOp`]. CPU `f32` only.
pub fn scale_shift_silu(h: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    contiguous(h)?.apply_op3(&contiguous(scale)?, &contiguous(shift)?, ScaleShiftSiluOp)
}

/// `(planes N·C, plane size H·W)`, checking the shapes fit.
fn dims(h: &[usize], scale: &[usize], shift: &[usize]) -> Result<(usize, usize)> {
    if h.len() < 2 || scale != [h[0], h[1]] || shift != scale {
        candle_core::bail!("scale_shift_silu: h {h:?} needs scale and shift of shape (N, C), got {scale:?} and {shift:?}");
    }
    Ok((h[0] * h[1], h[2..].iter().product()))
}

/// Planes per parallel task, so that a task holds about 4 K floats.
fn min_planes(s: usize) -> usize {
    (4096 / s.max(1)).max(1)
}

impl CustomOp3 for ScaleShiftSiluOp {
    fn name(&self) -> &'static str {
        "ddpm-scale-shift-silu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, s) = dims(l1.dims(), l2.dims(), l3.dims())?;
        let h = cpu_slice(s1, l1, "scale_shift_silu input")?;
        let sc = cpu_slice(s2, l2, "scale_shift_silu scale")?;
        let sh = cpu_slice(s3, l3, "scale_shift_silu shift")?;
        let chunk = s * min_planes(s);
        // SAFETY: every plane of the chunk is written by `silu_fwd` without being read.
        let out = unsafe {
            par_build_overwrite(h.len(), chunk, |i, o| {
                with_scratch(0, s, |u| {
                    for (j, op) in o.chunks_mut(s).enumerate() {
                        let p = i * chunk / s + j;
                        scale_shift(&h[p * s..(p + 1) * s], 1.0 + sc[p], sh[p], u);
                        silu_fwd(u, op);
                    }
                })
            })
        };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        h: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (planes, s) = dims(h.dims(), scale.dims(), shift.dims())?;
        let (dh, dsc, dsh) = with_f32_3(h, scale, grad, |hs, sc, gy| {
            with_f32(shift, |sh| {
                let mut dh = vec![0f32; hs.len()];
                let mut dsc = vec![0f32; planes];
                let mut dsh = vec![0f32; planes];
                dh.par_chunks_mut(s)
                    .zip(dsc.par_iter_mut().zip(dsh.par_iter_mut()))
                    .enumerate()
                    .with_min_len(min_planes(s))
                    .for_each(|(p, (dhp, (ds, db)))| {
                        let r = p * s..(p + 1) * s;
                        let a = 1.0 + sc[p];
                        with_scratch(0, s, |u| {
                            with_scratch(1, s, |du| {
                                scale_shift(&hs[r.clone()], a, sh[p], u);
                                silu_bwd(u, &gy[r.clone()], du);
                                let (mut sum_du, mut sum_duh) = (0f64, 0f64);
                                for (&d, &x) in du.iter().zip(&hs[r.clone()]) {
                                    sum_du += d as f64;
                                    sum_duh += (d * x) as f64;
                                }
                                *ds = sum_duh as f32;
                                *db = sum_du as f32;
                                scale_shift(du, a, 0.0, dhp);
                            })
                        })
                    });
                Ok((dh, dsc, dsh))
            })
        })?;
        Ok((
            Some(cpu_tensor(dh, h.dims())?),
            Some(cpu_tensor(dsc, scale.dims())?),
            Some(cpu_tensor(dsh, shift.dims())?),
        ))
    }
}
