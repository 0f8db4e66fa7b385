//! GroupNorm on CUDA with kernels of its own (`src/ops/cuda/group_norm.cu`): one kernel forward
//! (which also keeps the group statistics for the backward pass), two backward (per-channel
//! sums, the input gradient), where
//! candle-nn's GroupNorm runs a dozen element-wise ops and reductions over the whole tensor
//! forward and twice that backward. The γ and β gradients are the per-image channel sums added
//! over the batch by candle, in a fixed order.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig};
use candle_core::{CudaStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor};

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
/// Threads per block of the per-channel kernel (spatial maps of 7×7 to 28×28 here).
const CHANNEL_THREADS: u32 = 128;

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
        // Only what is tracked; every gradient needs the channel sums.
        let need = (x.track_op(), weight.track_op(), bias.track_op());
        let (x, weight, grad) = (x.detach(), weight.detach(), grad.contiguous()?);
        let n = x.dim(0)?;
        let c = x.dim(1)?;
        let kept = self.stats.lock().unwrap_or_else(|e| e.into_inner()).take();
        let stats = x.apply_op1_no_bwd(&Stats {
            groups: self.groups,
            eps: self.eps,
            kept: Mutex::new(kept),
        })?;
        let sums = x.apply_op3_no_bwd(
            &grad,
            &stats,
            &ChannelSums {
                groups: self.groups,
            },
        )?;
        let dx = if need.0 {
            let params = Tensor::cat(
                &[
                    stats.flatten_all()?,
                    sums.flatten_all()?,
                    weight.flatten_all()?,
                ],
                0,
            )?;
            Some(x.apply_op3_no_bwd(
                &grad,
                &params,
                &InputGrad {
                    groups: self.groups,
                },
            )?)
        } else {
            None
        };
        // (N, C, 2): Σ dy and Σ dy·x̂ per image and channel; β's and γ's gradients sum them.
        let per_channel = sums.reshape((n, c, 2))?.sum(0)?;
        let dbeta = per_channel.narrow(1, 0, 1)?.reshape(c)?;
        let dgamma = per_channel.narrow(1, 1, 1)?.reshape(c)?;
        Ok((dx, need.1.then_some(dgamma), need.2.then_some(dbeta)))
    }
}

/// A launch of one block of [`GROUP_THREADS`] per image and group.
fn per_group(n_groups: usize) -> Result<LaunchConfig> {
    blocks((n_groups, 1), GROUP_THREADS)
}

/// `x → (N·G, 2)`: mean and 1/sqrt(var + eps) per image and group: the forward pass's, when
/// `kept` holds them, else through `group_norm_stats`.
#[derive(Debug)]
struct Stats {
    groups: usize,
    eps: f32,
    kept: Mutex<Option<CudaSlice<f32>>>,
}

impl CustomOp1 for Stats {
    fn name(&self) -> &'static str {
        "ddpm-cuda-group-norm-stats"
    }

    cuda_only_cpu_fwd!(op1);

    fn cuda_fwd(&self, xs: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let (n, c, s) = dims(xl)?;
        let dev = xs.device().clone();
        let blocks = n * self.groups;
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(stats) = kept.filter(|s| s.len() == 2 * blocks) {
            return Ok((
                CudaStorage::wrap_cuda_slice(stats, dev),
                Shape::from((blocks, 2)),
            ));
        }
        // SAFETY: one block per (image, group) writes its two values.
        let stats = unsafe { dev.alloc::<f32>(2 * blocks)? };
        if blocks > 0 && c * s > 0 {
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
        }
        Ok((
            CudaStorage::wrap_cuda_slice(stats, dev),
            Shape::from((blocks, 2)),
        ))
    }
}

/// `(x, dy, stats) → (N·C, 2)`: Σ dy and Σ dy·x̂ per image and channel, through
/// `group_norm_channel_sums`.
#[derive(Debug, Clone, Copy)]
struct ChannelSums {
    groups: usize,
}

impl CustomOp3 for ChannelSums {
    fn name(&self) -> &'static str {
        "ddpm-cuda-group-norm-channel-sums"
    }

    cuda_only_cpu_fwd!(op3);

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
        ss: &CudaStorage,
        sl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (n, c, s) = dims(xl)?;
        let dev = xs.device().clone();
        // SAFETY: one block per (image, channel) writes its two sums.
        let sums = unsafe { dev.alloc::<f32>(2 * n * c)? };
        if n * c > 0 {
            let launch = Launch {
                kernel: "group_norm_channel_sums",
                cfg: blocks((n * c, 1), CHANNEL_THREADS)?,
                inputs: &[view(xs, xl)?, view(gs, gl)?, view(ss, sl)?],
                outputs: &[&sums],
                ints: &[c, s, self.groups],
                floats: &[],
            };
            // SAFETY: each block reads its own channel of x and dy and its group's statistics.
            unsafe { KERNELS.launch(&dev, launch) }?;
        }
        Ok((
            CudaStorage::wrap_cuda_slice(sums, dev),
            Shape::from((n * c, 2)),
        ))
    }
}

/// `(x, dy, params) → dx`, through `group_norm_input_grad`; `params` is the statistics, the
/// channel sums and γ, flattened and concatenated in this order.
#[derive(Debug, Clone, Copy)]
struct InputGrad {
    groups: usize,
}

impl CustomOp3 for InputGrad {
    fn name(&self) -> &'static str {
        "ddpm-cuda-group-norm-input-grad"
    }

    cuda_only_cpu_fwd!(op3);

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
        ps: &CudaStorage,
        pl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (n, c, s) = dims(xl)?;
        let want = 2 * n * self.groups + 2 * n * c + c;
        if pl.shape().elem_count() != want {
            candle_core::bail!(
                "CUDA GroupNorm: {} packed parameters, expected {want}",
                pl.shape().elem_count()
            );
        }
        let dev = xs.device().clone();
        // SAFETY: one block per (image, group) writes all of its values.
        let dx = unsafe { dev.alloc::<f32>(n * c * s)? };
        if n * c * s > 0 {
            let launch = Launch {
                kernel: "group_norm_input_grad",
                cfg: per_group(n * self.groups)?,
                inputs: &[view(xs, xl)?, view(gs, gl)?, view(ps, pl)?],
                outputs: &[&dx],
                ints: &[n, c, s, self.groups],
                floats: &[],
            };
            // SAFETY: as in GroupNorm::cuda_fwd; the packed parameters' length is checked above.
            unsafe { KERNELS.launch(&dev, launch) }?;
        }
        Ok((CudaStorage::wrap_cuda_slice(dx, dev), xl.shape().clone()))
    }
}
