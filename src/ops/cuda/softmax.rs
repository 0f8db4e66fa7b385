//! The kernels of `softmax.cu` behind [`crate::ops::softmax`] on CUDA: the forward pass over an
//! inner axis, and the backward pass over any axis.

use candle_core::backend::BackendStorage;
use candle_core::{CudaStorage, Layout, Result, Shape};

use super::{grid_stride, view, Launch, Module};

/// The kernels' PTX (compiled for compute capability 7.5; the driver compiles it for the GPU).
pub(super) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/softmax.ptx"));
/// The kernels of `softmax.cu`.
const KERNELS: Module = Module {
    name: "ddpm_lab_softmax",
    ptx: PTX,
};
/// Threads per block (8 warps: 8 rows at a time for `softmax_rows_bwd`).
const THREADS: u32 = 256;

/// Softmax over the middle axis of a contiguous `x` seen as `(outer, axis, inner)`, `inner > 1`.
pub fn inner_forward(
    xs: &CudaStorage,
    xl: &Layout,
    outer: usize,
    axis: usize,
    inner: usize,
) -> Result<(CudaStorage, Shape)> {
    check(xl, outer, axis, inner)?;
    let dev = xs.device().clone();
    let total = outer * axis * inner;
    // SAFETY: the kernel writes every element (each line of each (o, i)).
    let y = unsafe { dev.alloc::<f32>(total)? };
    if total > 0 {
        let launch = Launch {
            kernel: "softmax_inner_fwd",
            cfg: grid_stride(outer * inner, THREADS),
            inputs: &[view(xs, xl)?],
            outputs: &[&y],
            ints: &[outer, axis, inner],
            floats: &[],
        };
        // SAFETY: the parameters match `softmax_inner_fwd`; x and y hold outer·axis·inner
        // elements (checked), the kernel's every index is below that.
        unsafe { KERNELS.launch(&dev, launch) }?;
    }
    Ok((CudaStorage::wrap_cuda_slice(y, dev), xl.shape().clone()))
}

/// `dx = y ⊙ (dy − Σ_axis dy ⊙ y)` for the softmax output `y` and its gradient `dy`, both
/// contiguous `(outer, axis, inner)`.
pub fn backward(
    ys: &CudaStorage,
    yl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    outer: usize,
    axis: usize,
    inner: usize,
) -> Result<(CudaStorage, Shape)> {
    check(yl, outer, axis, inner)?;
    check(gl, outer, axis, inner)?;
    let dev = ys.device().clone();
    let total = outer * axis * inner;
    // SAFETY: the kernel writes every element.
    let dx = unsafe { dev.alloc::<f32>(total)? };
    if total > 0 {
        let (kernel, cfg, ints) = if inner == 1 {
            // One warp (32 threads) per row, in blocks of 8 warps (the kernel loops past the
            // grid).
            let cfg = grid_stride(outer * 32, THREADS);
            ("softmax_rows_bwd", cfg, vec![outer, axis])
        } else {
            (
                "softmax_inner_bwd",
                grid_stride(outer * inner, THREADS),
                vec![outer, axis, inner],
            )
        };
        let launch = Launch {
            kernel,
            cfg,
            inputs: &[view(ys, yl)?, view(gs, gl)?],
            outputs: &[&dx],
            ints: &ints,
            floats: &[],
        };
        // SAFETY: the parameters match the kernel's (y, dy, dx, sizes); all three buffers hold
        // outer·axis·inner elements (checked).
        unsafe { KERNELS.launch(&dev, launch) }?;
    }
    Ok((CudaStorage::wrap_cuda_slice(dx, dev), yl.shape().clone()))
}

/// That `l` is a contiguous layout of `outer·axis·inner` elements within the kernels' `int`s.
fn check(l: &Layout, outer: usize, axis: usize, inner: usize) -> Result<()> {
    let total = outer * axis * inner;
    if l.shape().elem_count() != total || l.contiguous_offsets().is_none() {
        candle_core::bail!(
            "CUDA softmax: a layout {:?} for ({outer}, {axis}, {inner})",
            l.dims()
        );
    }
    super::grid_len(total)?;
    Ok(())
}
