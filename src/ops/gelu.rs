//! Exact (erf-based) GELU, PyTorch's default `nn.GELU()`, with a one-pass fused backward
//! `dy · (Φ(x) + x·φ(x))` (candle's stock backward builds ten element-wise ops). The forward uses
//! candle's own `erf`, so values equal `Tensor::gelu_erf` bit for bit.

use candle_core::cpu::erf::erf_f32;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, cpu_slice, cpu_tensor, with_f32};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// The custom op: `gelu_erf(x)` for any shape.
#[derive(Debug, Clone, Copy)]
pub struct GeluOp;

/// `gelu_erf(x)` through [`GeluOp`]. CPU `f32` only.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    contiguous(x)?.apply_op1(GeluOp)
}

#[inline]
fn gelu_f32(v: f32) -> f32 {
    (erf_f32(v * std::f32::consts::FRAC_1_SQRT_2) + 1.) * 0.5 * v
}

/// d gelu / dx = Φ(x) + x φ(x).
#[inline]
fn gelu_grad(v: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
    cdf + v * INV_SQRT_2PI * (-0.5 * v * v).exp()
}

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "ddpm-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, "gelu input")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, xi)| {
                for (ov, &xv) in o.iter_mut().zip(xi) {
                    *ov = gelu_f32(xv);
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(x, |xs| {
            with_f32(grad, |gs| {
                let mut dx = vec![0f32; xs.len()];
                dx.par_chunks_mut(CHUNK)
                    .zip(xs.par_chunks(CHUNK).zip(gs.par_chunks(CHUNK)))
                    .for_each(|(d, (xi, gi))| {
                        for ((dv, &xv), &gv) in d.iter_mut().zip(xi).zip(gi) {
                            *dv = gv * gelu_grad(xv);
                        }
                    });
                Ok(dx)
            })
        })?;
        Ok(Some(cpu_tensor(dx, x.dims())?))
    }
}
