//! Exact (erf-based) GELU, PyTorch's default `nn.GELU()`, with a one-pass fused backward
//! `dy · (Φ(x) + x·φ(x))` (candle's stock backward builds ten element-wise ops). `erf` is a
//! vectorised rational approximation (error ≈ 1e-7, like PyTorch's own vectorised GELU).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::scratch::par_build;
use super::simd::{gelu_bwd, gelu_fwd};
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

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "ddpm-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, "gelu input")?;
        let out = par_build(x.len(), CHUNK, |i, o| {
            gelu_fwd(&x[i * CHUNK..][..o.len()], o)
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(x, |xs| {
            with_f32(grad, |gs| {
                let mut dx = vec![0f32; xs.len()];
                dx.par_chunks_mut(CHUNK)
                    .zip(xs.par_chunks(CHUNK).zip(gs.par_chunks(CHUNK)))
                    .for_each(|(d, (xi, gi))| gelu_bwd(xi, gi, d));
                Ok(dx)
            })
        })?;
        Ok(Some(cpu_tensor(dx, x.dims())?))
    }
}
