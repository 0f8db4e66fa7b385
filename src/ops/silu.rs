//! SiLU (`x·σ(x)`, PyTorch's `nn.SiLU()` / `F.silu`) in one vectorised pass, with a fused
//! backward `dy · σ(x)·(1 + x·(1 − σ(x)))`; candle's stock op calls the scalar `expf` per element
//! and builds its backward from several element-wise ops.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::scratch::par_build;
use super::simd::{silu_bwd, silu_fwd};
use super::{contiguous, cpu_slice, cpu_tensor, with_f32};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// The custom op: `silu(x)` for any shape.
#[derive(Debug, Clone, Copy)]
pub struct SiluOp;

/// `silu(x)` through [`SiluOp`]. CPU `f32` only.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    contiguous(x)?.apply_op1(SiluOp)
}

impl CustomOp1 for SiluOp {
    fn name(&self) -> &'static str {
        "ddpm-silu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, "silu input")?;
        let out = par_build(x.len(), CHUNK, |i, o| {
            silu_fwd(&x[i * CHUNK..][..o.len()], o)
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(x, |xs| {
            with_f32(grad, |gs| {
                Ok(par_build(xs.len(), CHUNK, |i, d| {
                    let r = i * CHUNK..i * CHUNK + d.len();
                    silu_bwd(&xs[r.clone()], &gs[r], d)
                }))
            })
        })?;
        Ok(Some(cpu_tensor(dx, x.dims())?))
    }
}
