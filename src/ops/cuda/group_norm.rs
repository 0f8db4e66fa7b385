//! GroupNorm on CUDA with kernels of its own (`src/ops/cuda/group_norm.cu`): one kernel forward
//! (which also keeps the group statistics for the backward pass), one backward (per-channel
//! sums and the input gradient together), where
//! candle-nn's GroupNorm runs a dozen element-wise ops and reductions over the whole tensor
//! forward and twice that backward. The γ and β gradients are the per-image channel sums added
//! over the batch by candle, in a fixed order.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig};
use candle_core::{CudaStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::{blocks, view, Launch, Module};

/// The kernels' PTX.
pub(super) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/group_norm.ptx"));
/// The kernels of `group_norm.cu`.
const KERNELS: Module = Module {
    name: "ddpm_lab_group_norm",
    ptx: PTX,
};
/// Threads per block of the per-group kernels (`GN_GROUP_THREADS` in group_norm.cu, which
/// bounds their registers for it): one block per group of one image is few blocks for a small
/// batch (128 at batch 128 for the blog UNet's `GroupNorm(1, C)`), so each is as wide as can be.
pub(super) const GROUP_THREADS: u32 = 1024;

/// Whether [`group_norm`] takes `x (N, C, …)` with weight and bias of `C` values: all f32 on one
/// CUDA device, `groups` dividing `C`, one image's `C·S` values within the kernels' `int`
/// indices, and the kernel not switched off ([`super::KERNELS_VAR`]).
pub fn supports(x: &Tensor, weight: &Tensor, bias: &Tensor, groups: usize) -> bool {
    let c = x.dims().get(1).copied().unwrap_or(0);
    let image = x.elem_count() / x.dims().first().copied().unwrap_or(1).max(1);
    super::enabled("group_norm")
        && x.rank() >= 2
        && image < i32::MAX as usize - 1024
        && groups > 0
        && c > 0
        && c % groups == 0
        && weight.dims() == [c]
        && bias.dims() == [c]
        && x.device().is_cuda()
        && weight.device().same_device(x.device())
        && bias.device().same_device(x.device())
        && [x.dtype(), weight.dtype(), bias.dtype()] == [DType::F32; 3]
}

/// `nn.GroupNorm(groups, C, eps)` of `x (N, C, …)` with `weight` and `bias` (`C`), with its
/// backward; errs unless [`supports`] holds.
pub fn group_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    groups: usize,
    eps: f64,
) -> Result<Tensor> {
    if !supports(x, weight, bias, groups) {
        candle_core::bail!(
            "CUDA GroupNorm: input {:?} ({:?}), {groups} groups, weight {:?} not supported",
            x.dims(),
            x.dtype(),
            weight.dims()
        );
    }
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        GroupNorm {
            groups,
            eps: eps as f32,
            stats: Mutex::new(None),
        },
    )
}

/// `(x, γ, β) → y`, through `group_norm_fwd`, which also writes each image's and group's mean
/// and 1/std: kept in `stats` for the backward pass (taken once; a second backward pass
/// recomputes them).
#[derive(Debug)]
struct GroupNorm {
    groups: usize,
    eps: f32,
    stats: Mutex<Option<CudaSlice<f32>>>,
}

/// `(N, C, S…)` as `(N, C, S)`.
fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    let d = l.shape().dims();
    match d {
        [n, c, rest @ ..] => Ok((*n, *c, rest.iter().product())),
        _ => candle_core::bail!("CUDA GroupNorm: input of rank {} (needs N, C, …)", d.len()),
    }
}

impl CustomOp3 for GroupNorm {
    fn name(&self) -> &'static str {
        "ddpm-cuda-group-norm"
    }

    cuda_only_cpu_fwd!(op3);

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
        bs: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (n, c, s) = dims(xl)?;
        let dev = xs.device().clone();
        // SAFETY: every element is written below (one block per image and group covers all).
        let y = unsafe { dev.alloc::<f32>(n * c * s)? };
        let stats = unsafe { dev.alloc::<f32>(2 * n * self.groups)? };
        if n * c * s > 0 {
            let launch = Launch {
                kernel: "group_norm_fwd",
                cfg: per_group(n * self.groups)?,
                inputs: &[view(xs, xl)?, view(ws, wl)?, view(bs, bl)?],
                outputs: &[&y, &stats],
                ints: &[c, s, self.groups],
                floats: &[self.eps],
            };
            // SAFETY: the parameters match `group_norm_fwd`; each block stays inside its image
            // and group of the contiguous buffers sized above.
            unsafe { KERNELS.launch(&dev, launch) }?;
            *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
        }
        Ok((CudaStorage::wrap_cuda_slice(y, dev), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The kernel gives dx and the channel sums together (dx is needed in practice: a
        // GroupNorm's input is an activation).
        let need = (x.track_op(), weight.track_op(), bias.track_op());
        let (x, weight, grad) = (x.detach(), weight.detach(), grad.contiguous()?);
        let (n, c) = (x.dim(0)?, x.dim(1)?);
        let len = x.elem_count();
        let kept = self.stats.lock().unwrap_or_else(|e| e.into_inner()).take();
        let packed = x.apply_op3_no_bwd(
            &grad,
            &weight,
            &Backward {
                groups: self.groups,
                eps: self.eps,
                kept: Mutex::new(kept),
            },
        )?;
        let dx = if need.0 {
            Some(packed.narrow(0, 0, len)?.reshape(x.shape())?)
        } else {
            None
        };
        // (N, C, 2): Σ dy and Σ dy·x̂ per image and channel; β's and γ's gradients sum them.
        let per_channel = packed
            .narrow(0, len, 2 * n * c)?
            .reshape((n, c, 2))?
            .sum(0)?;
        let dbeta = per_channel.narrow(1, 0, 1)?.reshape(c)?;
        let dgamma = per_channel.narrow(1, 1, 1)?.reshape(c)?;
        Ok((dx, need.1.then_some(dgamma), need.2.then_some(dbeta)))
    }
}

/// A launch of one block of [`GROUP_THREADS`] per image and group.
fn per_group(n_groups: usize) -> Result<LaunchConfig> {
    blocks((n_groups, 1), GROUP_THREADS)
}

/// `(x, dy, γ) → [dx, then (N·C, 2) channel sums]` flattened into one tensor, through
/// `group_norm_backward`, with the forward pass's statistics when `kept` holds them (else
/// `group_norm_stats` first).
#[derive(Debug)]
struct Backward {
    groups: usize,
    eps: f32,
    kept: Mutex<Option<CudaSlice<f32>>>,
}

impl CustomOp3 for Backward {
    fn name(&self) -> &'static str {
        crate::ops::cuda_op_names::GROUP_NORM_BACKWARD
    }

    cuda_only_cpu_fwd!(op3);

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (n, c, s) = dims(xl)?;
        if gl.shape() != xl.shape() || wl.shape().elem_count() != c {
            candle_core::bail!(
                "CUDA GroupNorm backward: dy {:?} and γ {:?} for x {:?}",
                gl.dims(),
                wl.dims(),
                xl.dims()
            );
        }
        let dev = xs.device().clone();
        let blocks = n * self.groups;
        let total = n * c * s + 2 * n * c;
        if n * c * s == 0 {
            // No positions: dx is empty and every channel's sums are 0.
            let out = dev.alloc_zeros::<f32>(total)?;
            return Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from(total)));
        }
        // SAFETY: one block per (image, group) writes its part of dx and its channels' sums.
        let out = unsafe { dev.alloc::<f32>(total)? };
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner()).take();
        let stats = match kept.filter(|k| k.len() == 2 * blocks) {
            Some(stats) => stats,
            None => {
                // SAFETY: one block per (image, group) writes its two values.
                let stats = unsafe { dev.alloc::<f32>(2 * blocks)? };
                let launch = Launch {
                    kernel: "group_norm_stats",
                    cfg: per_group(blocks)?,
                    inputs: &[view(xs, xl)?],
                    outputs: &[&stats],
                    ints: &[c, s, self.groups],
                    floats: &[self.eps],
                };
                // SAFETY: as in GroupNorm::cuda_fwd.
                unsafe { KERNELS.launch(&dev, launch) }?;
                stats
            }
        };
        let launch = Launch {
            kernel: "group_norm_backward",
            cfg: per_group(blocks)?,
            inputs: &[view(xs, xl)?, view(gs, gl)?, stats.slice(..), view(ws, wl)?],
            outputs: &[&out],
            ints: &[n, c, s, self.groups],
            floats: &[],
        };
        // SAFETY: the parameters match `group_norm_backward`; each block reads its image and
        // group of x and dy (shapes checked equal), its statistics (2·N·G) and γ (C), and
        // writes its part of dx and its channels' sums, all inside `out` (N·C·S + 2·N·C).
        unsafe { KERNELS.launch(&dev, launch) }?;
        Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from(total)))
    }
}
