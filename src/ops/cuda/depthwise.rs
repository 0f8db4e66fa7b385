//! The depthwise conv on CUDA with kernels of its own (`src/ops/cuda/depthwise.cu`, compiled to
//! PTX by `build.rs`): stride 1, a square 3×3, 5×5 or 7×7 kernel, zero padding below the kernel
//! size, f32. The blog UNet's ConvNeXt blocks open with a depthwise 7×7 conv; without these
//! kernels a GPU runs it as dense convs over blocks of channels
//! ([`crate::ops::device_conv::depthwise_conv2d`]), multiplying mostly zeros.
//!
//! The forward pass and the input gradient are one kernel (the input gradient is the conv of the
//! output gradient with the flipped kernel, padded by `k − 1 − p`); the weight gradient is a
//! second kernel that sums over slices of the batch, the slices then added by candle in a fixed
//! order, so results do not depend on scheduling.

use candle_core::backend::BackendStorage;
use candle_core::{CudaStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::{blocks, view, Launch, Module};
use crate::ops::depthwise_tiles::{wgrad_staged, DepthwiseTiles, TILE_FLOATS};

/// The kernels' PTX (compiled for compute capability 7.5; the driver compiles it for the GPU).
pub(super) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/depthwise.ptx"));
/// The kernels of `depthwise.cu`.
const KERNELS: Module = Module {
    name: "ddpm_lab_depthwise",
    ptx: PTX,
};
/// Threads per block; the weight-gradient kernel's reduction is written for this many
/// (`WGRAD_THREADS` in depthwise.cu).
pub(super) const THREADS: u32 = 256;

/// Whether [`depthwise_conv2d`] takes `x (N, C, H, W)` and `w (C, 1, k, k)` with this padding:
/// both f32 on a CUDA device, `k` 3, 5 or 7, padding below `k`, a padded map that holds the
/// kernel, and the kernel not switched off
/// ([`super::KERNELS_VAR`]).
pub fn supports(x: &Tensor, w: &Tensor, padding: usize) -> bool {
    fits(x, w, padding) && super::enabled("depthwise")
}

/// [`supports`] but for the kernel's switch: shapes, types and device.
fn fits(x: &Tensor, w: &Tensor, padding: usize) -> bool {
    // The padded map must hold the kernel at least once (`h + 2p + 1 ≥ k`).
    // The weight gradient indexes one channel's positions over the batch with an `int`, for
    // this conv and for its input gradient's (whose maps are at most the padded size).
    let square = matches!((w.dims(), x.dims()), (&[c, 1, kh, kw], &[n, xc, h, wd])
        if kh == kw && matches!(kh, 3 | 5 | 7) && padding < kh && xc == c
            && h + 2 * padding + 1 >= kh && wd + 2 * padding + 1 >= kh
            && n * (h + 2 * padding) * (wd + 2 * padding) < i32::MAX as usize - 1024);
    square
        && x.device().is_cuda()
        && w.device().same_device(x.device())
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
}

/// The depthwise conv `x (N, C, H, W)` ⋆ `w (C, 1, k, k)`, stride 1, zero padding `padding`, no
/// bias, with its backward; errs unless [`supports`] holds.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, padding: usize) -> Result<Tensor> {
    if !supports(x, w, padding) {
        candle_core::bail!(
            "CUDA depthwise conv: input {:?} and weight {:?} ({:?}, {:?}) with padding {padding} \
             not supported",
            x.dims(),
            w.dims(),
            x.dtype(),
            x.device().location()
        );
    }
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        DepthwiseConv {
            padding,
            flip: false,
        },
    )
}

/// Whether [`depthwise_conv2d_plus_plane_bias`] takes these: the shapes and types [`supports`]
/// takes for `x` and `w`, `b` an f32 `(N, C)` on their device, and the kernel switched on as
/// `depthwise_bias` ([`super::KERNELS_VAR`]; on its own, so that a fault in it leaves the plain
/// depthwise kernel in use, and only with `depthwise`, whose kernels it runs).
pub fn supports_plane_bias(x: &Tensor, w: &Tensor, b: &Tensor, padding: usize) -> bool {
    fits(x, w, padding)
        && super::enabled("depthwise_bias")
        && super::f32_beside(b, x, &x.dims()[..2])
}

/// The depthwise conv of `x (N, C, H, W)` with `w (C, 1, k, k)` plus `b[n, c]` on every output
/// of image n's channel c (a ConvNeXt block's conv bias plus that image's time embedding), in
/// one kernel: the conv's bias-less output is never made, nor kept for the backward pass. Errs
/// unless [`supports_plane_bias`] holds.
pub fn depthwise_conv2d_plus_plane_bias(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    padding: usize,
) -> Result<Tensor> {
    if !supports_plane_bias(x, w, b, padding) {
        candle_core::bail!(
            "CUDA depthwise conv with a bias per image and channel: input {:?}, weight {:?}, \
             bias {:?} with padding {padding} not supported",
            x.dims(),
            w.dims(),
            b.dims()
        );
    }
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        DepthwiseConvPlaneBias { padding },
    )
}

/// `(x, w) → y`: the conv, through `depthwise_fwd_k*`; `flip` convolves with the kernel
/// rotated by 180° (the input gradient's conv).
#[derive(Debug, Clone, Copy)]
struct DepthwiseConv {
    padding: usize,
    flip: bool,
}

/// `(x, w, b) → y + b[n, c]`: [`DepthwiseConv`] (not flipped) with a bias per plane, added by
/// the same kernel.
#[derive(Debug, Clone, Copy)]
struct DepthwiseConvPlaneBias {
    padding: usize,
}

/// `(x, dy) → dw (C, 1, k, k)`'s partial sums `(C, splits, k²)`, through `depthwise_wgrad_k*`.
#[derive(Debug, Clone, Copy)]
struct DepthwiseWeightGrad {
    padding: usize,
    k: usize,
    splits: usize,
}

impl CustomOp2 for DepthwiseConv {
    fn name(&self) -> &'static str {
        crate::ops::cuda_op_names::DEPTHWISE_CONV
    }

    cuda_only_cpu_fwd!(op2);

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        forward((xs, xl), (ws, wl), None, self.padding, self.flip)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        conv_grads(x, w, &grad.contiguous()?, self.padding, self.flip)
    }
}

impl CustomOp3 for DepthwiseConvPlaneBias {
    fn name(&self) -> &'static str {
        crate::ops::cuda_op_names::DEPTHWISE_CONV_PLANE_BIAS
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
        forward((xs, xl), (ws, wl), Some((bs, bl)), self.padding, false)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (dx, dw) = conv_grads(x, w, &grad, self.padding, false)?;
        let db = if b.track_op() {
            Some(crate::ops::channel_bias::bias_grad(&grad, true)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// The depthwise conv of `x` with `w` (rotated by 180° with `flip`), zero padding `padding`,
/// plus `plane_bias[n·C + c]` on each plane when given, through `depthwise_fwd_k*`.
fn forward(
    (xs, xl): (&CudaStorage, &Layout),
    (ws, wl): (&CudaStorage, &Layout),
    plane_bias: Option<(&CudaStorage, &Layout)>,
    padding: usize,
    flip: bool,
) -> Result<(CudaStorage, Shape)> {
    let (n, c, h, wd) = xl.shape().dims4()?;
    let (_, _, k, _) = wl.shape().dims4()?;
    let p = padding;
    if plane_bias.is_some_and(|(_, bl)| bl.shape().elem_count() != n * c) {
        candle_core::bail!(
            "CUDA depthwise conv: a bias per plane needs {} values",
            n * c
        );
    }
    let (ho, wo) = (h + 2 * p + 1 - k, wd + 2 * p + 1 - k);
    let dev = xs.device().clone();
    let total = n * c * ho * wo;
    // SAFETY: every element is written by the kernel below.
    let y = unsafe { dev.alloc::<f32>(total)? };
    if let Some(t) = DepthwiseTiles::plan(n * c, ho, wo, k) {
        if t.staged_floats(k) > TILE_FLOATS {
            candle_core::bail!("CUDA depthwise conv: tiles {t:?} overflow shared memory");
        }
        let launch = Launch {
            kernel: &format!("depthwise_fwd_k{k}"),
            cfg: blocks((t.grid_x(), t.grid_y), THREADS)?,
            // Without a bias the kernel never reads its pointer: the weight stands in.
            inputs: &[
                view(xs, xl)?,
                view(ws, wl)?,
                match plane_bias {
                    Some((bs, bl)) => view(bs, bl)?,
                    None => view(ws, wl)?,
                },
            ],
            outputs: &[&y],
            ints: &[
                n * c,
                c,
                h,
                wd,
                ho,
                wo,
                p,
                flip as usize,
                t.tile_h,
                t.tile_w,
                t.tiles_x,
                t.planes_per_block,
                plane_bias.is_some() as usize,
            ],
            floats: &[],
        };
        // SAFETY: the parameters match `depthwise_fwd_k*`; every index stays inside the
        // contiguous buffers sized by the shapes above (the plane bias: n·c values,
        // checked above, read only with has_bias).
        unsafe { KERNELS.launch(&dev, launch) }?;
    }
    Ok((
        CudaStorage::wrap_cuda_slice(y, dev),
        Shape::from((n, c, ho, wo)),
    ))
}

/// The gradients of `x` and `w` (those tracked) of their depthwise conv with padding `padding`
/// (the kernel rotated with `flip`), given the output gradient `grad` (contiguous).
fn conv_grads(
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
    padding: usize,
    flip: bool,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let k = w.dim(2)?;
    let dx = if x.track_op() {
        let op = DepthwiseConv {
            padding: k - 1 - padding,
            flip: !flip,
        };
        Some(grad.apply_op2_no_bwd(&w.detach(), &op)?)
    } else {
        None
    };
    let dw = if w.track_op() {
        let dw = weight_grad(&x.detach(), grad, padding, k)?;
        Some(if flip {
            dw.flip(&[2, 3])?.contiguous()?
        } else {
            dw
        })
    } else {
        None
    };
    Ok((dx, dw))
}

/// `dw (C, 1, k, k)` of the depthwise conv of `x` with padding `padding`, given its output
/// gradient `dy`: partial sums over slices of the batch, then their sum.
fn weight_grad(x: &Tensor, dy: &Tensor, padding: usize, k: usize) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    // Enough blocks for a few waves over the GPU's multiprocessors, each with a slice of the
    // batch big enough to keep its threads busy.
    let splits = (1024usize.div_ceil(c.max(1))).clamp(1, n.max(1));
    let op = DepthwiseWeightGrad { padding, k, splits };
    x.contiguous()?
        .apply_op2_no_bwd(dy, &op)?
        .sum(1)?
        .reshape((c, 1, k, k))
}

impl CustomOp2 for DepthwiseWeightGrad {
    fn name(&self) -> &'static str {
        "ddpm-cuda-depthwise-weight-grad"
    }

    cuda_only_cpu_fwd!(op2);

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (n, c, h, wd) = xl.shape().dims4()?;
        let (_, _, ho, wo) = gl.shape().dims4()?;
        let (k, splits) = (self.k, self.splits);
        let dev = xs.device().clone();
        let len = c * splits * k * k;
        // SAFETY: the kernel writes every (channel, slice, tap) entry once.
        let part = unsafe { dev.alloc::<f32>(len)? };
        if len > 0 {
            let launch = Launch {
                kernel: &format!("depthwise_wgrad_k{k}"),
                cfg: blocks((c, splits), THREADS)?,
                inputs: &[view(xs, xl)?, view(gs, gl)?],
                outputs: &[&part],
                ints: &[
                    n,
                    c,
                    h,
                    wd,
                    ho,
                    wo,
                    self.padding,
                    splits,
                    wgrad_staged(h, wd, ho, wo, self.padding) as usize,
                ],
                floats: &[],
            };
            // SAFETY: as in DepthwiseConv::cuda_fwd; the grid is one block per (channel, slice).
            unsafe { KERNELS.launch(&dev, launch) }?;
        }
        Ok((
            CudaStorage::wrap_cuda_slice(part, dev),
            Shape::from((c, splits, k * k)),
        ))
    }
}
