//! Element-wise activations as candle custom ops: one vectorised pass forward, and a fused
//! backward `dx = dy · f'(x)` computed in one pass from the input (candle's stock activations
//! call scalar libm functions per element and build their backward from several ops).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::scratch::par_build_overwrite;
use super::storage::{contiguous, cpu_slice, cpu_tensor, with_f32};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// An element-wise activation given by its two kernels: `fwd(x, out)` writes `f(x)`, and
/// `bwd(x, dy, dx)` writes `dy · f'(x)`; each must write every element of its output without
/// reading it (the output is handed out uninitialised). Applies to CPU `f32` tensors of any shape.
#[derive(Debug, Clone, Copy)]
pub struct ElementwiseOp {
    name: &'static str,
    fwd: fn(&[f32], &mut [f32]),
    bwd: fn(&[f32], &[f32], &mut [f32]),
}

impl ElementwiseOp {
    /// The op named `name` (candle's op name) with kernels `fwd` and `bwd`.
    pub const fn new(
        name: &'static str,
        fwd: fn(&[f32], &mut [f32]),
        bwd: fn(&[f32], &[f32], &mut [f32]),
    ) -> Self {
        Self { name, fwd, bwd }
    }

    /// `f(x)`, with `dy · f'(x)` as its backward.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        contiguous(x)?.apply_op1(self)
    }
}

impl CustomOp1 for ElementwiseOp {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, self.name)?;
        // SAFETY: `fwd` writes each element of its output slice without reading it.
        let out = unsafe {
            par_build_overwrite(x.len(), CHUNK, |i, o| {
                (self.fwd)(&x[i * CHUNK..][..o.len()], o)
            })
        };
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(x, |xs| {
            with_f32(grad, |gs| {
                // SAFETY: `bwd` writes each element of its output slice without reading it.
                Ok(unsafe {
                    par_build_overwrite(xs.len(), CHUNK, |i, d| {
                        let r = i * CHUNK..i * CHUNK + d.len();
                        (self.bwd)(&xs[r.clone()], &gs[r], d)
                    })
                })
            })
        })?;
        Ok(Some(cpu_tensor(dx, x.dims())?))
    }
}
