//! Convolutions for the devices that ddpm-lab has no kernels of its own for (CUDA, Metal), made
//! only of candle's `conv2d` (im2col and one cuBLAS / MPS matrix product there) and cheap
//! reshapes, so that neither the forward pass nor the backward pass reaches candle's
//! conv-transpose kernels.
//!
//! On those devices candle computes a conv's input gradient, and the forward pass of
//! `nn.ConvTranspose2d`, with a direct loop of one GPU thread per output element that reads its
//! inputs from global memory without any tiling (candle's own CPU conv-transpose is the same kind
//! of loop, and replacing it was most of the CPU kernels' gain). Here both are the convolution
//! they are equal to:
//!
//! - the input gradient of a stride-`s` conv is a stride-1 conv of the output gradient, spread
//!   out with `s − 1` zeros between neighbours and padded by `k − 1 − p`, with the kernel
//!   flipped in space and its two channel axes swapped ([`conv_transpose2d`]);
//! - `ConvTranspose2d(x)` is that same conv of `x`, so its own gradients follow from
//!   [`conv2d`]'s.
//!
//! The weight gradient is candle's (a conv of the input with the output gradient, both with
//! batch and channel axes swapped), which is already im2col + one matrix product.
//!
//! On CUDA each of [`conv2d`], [`conv_transpose2d`] and [`depthwise_conv2d`] hands the tensors
//! to ddpm-lab's own kernels ([`crate::ops::cuda`]) where they take them, and falls back to the
//! formulations below otherwise (or when `DDPM_LAB_CUDA_KERNELS` switches a kernel off).
//!
//! [`conv2d`] computes its output with candle's `conv2d` and hands it to a custom op
//! ([`GemmGradConv`]) that only attaches this backward: its forward is a copy of that output,
//! taken only when a gradient is tracked (training); inference gets candle's conv as it is.
//! Every function here runs on any device, so the CPU tests check the maths against candle's
//! own gradients; the CPU itself keeps the faster kernels of [`crate::ops::conv`].

use std::sync::Mutex;

use crate::ops::cuda_op_names::{DEPTHWISE_CONV, GEMM_CONV, GEMM_CONV_BIAS};

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp2, CustomOp3, Layout, MetalStorage, Result, Shape, Storage,
    Tensor,
};

/// Whether [`conv2d`] (and [`conv_transpose2d`]) handle this geometry: a kernel `k` with
/// padding of at most `k − 1` (the transposed conv pads by `k − 1 − p`).
pub fn supports(kernel: usize, padding: usize) -> bool {
    kernel >= 1 && padding < kernel
}

/// Whether the weight `w` (`(·, ·, kh, kw)`) fits [`conv2d`], [`conv_transpose2d`] and
/// [`depthwise_conv2d`] with this padding: a square kernel that [`supports`] it.
pub fn fits(w: &Tensor, padding: usize) -> bool {
    matches!(w.dims(), &[_, _, kh, kw] if kh == kw && supports(kh, padding))
}

/// `conv2d(x (N, Ci, H, W), w (Co, Ci, k, k))`, stride `stride`, zero padding `padding`, no
/// groups or dilation, no bias: candle's `conv2d` forward, with a backward built from convs
/// ([module docs](self)). Errs unless [`supports`] holds for `w`'s kernel.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if crate::ops::cuda::conv::supports(x, w, stride, padding) {
        return crate::ops::cuda::conv::conv2d(x, w, stride, padding);
    }
    let (_, _, kh, kw) = w.dims4()?;
    if !fits(w, padding) || stride == 0 {
        candle_core::bail!(
            "device conv: kernel {kh}×{kw}, padding {padding}, stride {stride} not supported"
        );
    }
    crate::ops::stand_in(GEMM_CONV, x.device(), || {
        let y = x.detach().conv2d(&w.detach(), padding, stride, 1, 1)?;
        if !x.track_op() && !w.track_op() {
            return Ok(y);
        }
        let op = GemmGradConv {
            stride,
            padding,
            y: Mutex::new(Some(y)),
        };
        x.apply_op2(w, op)
    })
}

/// [`conv2d`] plus a bias per output channel in one op, where the device has one (ddpm-lab's
/// CUDA conv: the bias is written before the product adds into it; on the CPU, the GPU route's
/// stand-in, candle's conv and add behind one op, so that the training graph is the one CUDA
/// builds: no bias-less output kept); `None` where the caller should run [`conv2d`] and add the
/// bias itself.
pub fn conv2d_with_bias(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Option<Tensor>> {
    #[cfg(feature = "cuda")]
    if crate::ops::cuda::conv::supports_with_bias(x, w, b, stride, padding) {
        return crate::ops::cuda::conv::conv2d_with_bias(x, w, b, stride, padding).map(Some);
    }
    if !x.device().is_cpu() || !fits(w, padding) || stride == 0 || b.dims() != [w.dim(0)?] {
        return Ok(None);
    }
    crate::ops::stand_in(GEMM_CONV_BIAS, x.device(), || {
        conv2d_with_bias_on_cpu(x, w, b, stride, padding).map(Some)
    })
}

/// [`conv2d_with_bias`] on the CPU: candle's conv and add behind [`GemmGradConvBias`].
fn conv2d_with_bias_on_cpu(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let y = x.detach().conv2d(&w.detach(), padding, stride, 1, 1)?;
    let y = y.broadcast_add(&b.detach().reshape((1, b.elem_count(), 1, 1))?)?;
    if !x.track_op() && !w.track_op() && !b.track_op() {
        return Ok(y);
    }
    let op = GemmGradConvBias(GemmGradConv {
        stride,
        padding,
        y: Mutex::new(Some(y)),
    });
    x.apply_op3(w, b, op)
}

/// `ConvTranspose2d(x (N, Ci, h, w))` with weight `w (Ci, Co, k, k)`, stride, padding and
/// output padding as in PyTorch: output `(N, Co, (h − 1)·s − 2p + k + op, …)`. Computed as the
/// stride-1 [`conv2d`] of `x` spread out by the stride (plus `op` zero rows and columns at the
/// end), padded by `k − 1 − p`, with the kernel flipped and its channel axes swapped; gradients
/// flow to both `x` and `w`.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if output_padding == 0 && crate::ops::cuda::conv::supports_transposed(x, w, stride, padding) {
        return crate::ops::cuda::conv::conv_transpose2d(x, w, stride, padding);
    }
    let (_, _, k, k2) = w.dims4()?;
    if !fits(w, padding) || stride == 0 || output_padding >= stride {
        candle_core::bail!(
            "device conv-transpose: kernel {k}×{k2}, padding {padding}, stride {stride}, \
             output padding {output_padding} not supported"
        );
    }
    crate::ops::stand_in(GEMM_CONV, x.device(), || {
        transposed(x, w, stride, padding, (output_padding, output_padding))
    })
}

/// Channels per dense conv in [`depthwise_conv2d`].
pub const DEPTHWISE_CHANNELS_PER_CONV: usize = 64;

/// The depthwise conv `x (N, C, H, W)`, `w (C, 1, k, k)` (one filter per channel, stride 1)
/// as dense [`conv2d`]s over blocks of at most [`DEPTHWISE_CHANNELS_PER_CONV`] channels, each
/// weight `(b, b, k, k)` zero off its diagonal. candle runs a grouped conv as one conv per group,
/// and the blog UNet's ConvNeXt blocks have 18 to 224 channels: hundreds of small GPU launches
/// per layer, each way. A dense block does `b` times the depthwise arithmetic in one im2col and
/// one matrix product; blocks bound that factor. The weight's gradient flows back through the
/// diagonal (the off-diagonal entries' gradients are dropped).
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, padding: usize) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if crate::ops::cuda::depthwise::supports(x, w, padding) {
        return crate::ops::cuda::depthwise::depthwise_conv2d(x, w, padding);
    }
    crate::ops::stand_in(DEPTHWISE_CONV, x.device(), || {
        depthwise_conv2d_in_blocks(x, w, padding, DEPTHWISE_CHANNELS_PER_CONV)
    })
}

/// [`depthwise_conv2d`] plus `b[n, c]` (a bias per image and channel: a ConvNeXt block's conv
/// bias plus its time embedding) in one op, where the device has one (ddpm-lab's CUDA depthwise
/// kernel adds it as it writes the output, so the bias-less output is never made or kept);
/// `None` where the caller should run [`depthwise_conv2d`] and add `b` itself.
pub fn depthwise_conv2d_plus_plane_bias(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    padding: usize,
) -> Result<Option<Tensor>> {
    #[cfg(feature = "cuda")]
    if crate::ops::cuda::depthwise::supports_plane_bias(x, w, b, padding) {
        return crate::ops::cuda::depthwise::depthwise_conv2d_plus_plane_bias(x, w, b, padding)
            .map(Some);
    }
    let _ = (x, w, b, padding);
    Ok(None)
}

/// [`depthwise_conv2d`] with blocks of at most `max_block` channels (as equal as can be).
pub fn depthwise_conv2d_in_blocks(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    max_block: usize,
) -> Result<Tensor> {
    let (c, per_group, _, _) = w.dims4()?;
    if per_group != 1 || x.dim(1)? != c || c == 0 || max_block == 0 {
        candle_core::bail!(
            "device depthwise conv: weight {:?} for {} input channels",
            w.dims(),
            x.dim(1)?
        );
    }
    let block = c.div_ceil(c.div_ceil(max_block));
    let dense = |w: &Tensor| -> Result<Tensor> {
        let b = w.dim(0)?;
        let eye = Tensor::eye(b, w.dtype(), w.device())?.reshape((b, b, 1, 1))?;
        w.broadcast_mul(&eye)
    };
    // One block is one conv (`cat` of a single part is that part).
    let parts = (0..c)
        .step_by(block)
        .map(|c0| {
            let b = block.min(c - c0);
            conv2d(
                &x.narrow(1, c0, b)?,
                &dense(&w.narrow(0, c0, b)?)?,
                1,
                padding,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, 1)
}

/// [`conv_transpose2d`] with its output padding given for rows and columns apart.
fn transposed(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    extra: (usize, usize),
) -> Result<Tensor> {
    let k = w.dim(2)?;
    let spread = spread(x, stride, extra)?;
    let flipped = w.flip(&[2, 3])?.transpose(0, 1)?.contiguous()?;
    conv2d(&spread, &flipped, 1, k - 1 - padding)
}

/// `x (N, C, h, w)` with `s − 1` zeros between neighbouring rows and columns, and `extra.0`
/// more zero rows and `extra.1` more zero columns after the last: `(N, C, (h − 1)·s + 1 +
/// extra.0, (w − 1)·s + 1 + extra.1)`. Both extras are below `s`.
fn spread(x: &Tensor, s: usize, extra: (usize, usize)) -> Result<Tensor> {
    if s == 1 {
        return Ok(x.clone());
    }
    let (n, c, h, w) = x.dims4()?;
    let hs = (h - 1) * s + 1 + extra.0;
    x.unsqueeze(3)?
        .pad_with_zeros(3, 0, s - 1)?
        .reshape((n, c, h * s, w))?
        .narrow(2, 0, hs)?
        .unsqueeze(4)?
        .pad_with_zeros(4, 0, s - 1)?
        .reshape((n, c, hs, w * s))?
        .narrow(3, 0, (w - 1) * s + 1 + extra.1)
}

/// The custom op behind [`conv2d`]: `(x, w) → y`, a copy of the conv output `y` computed
/// outside it, whose backward gives the gradients of `x` and `w` from convs. The op holds `y`
/// only until its forward pass has copied it, so a training graph keeps one copy of each conv's
/// output, not two.
#[derive(Debug)]
pub struct GemmGradConv {
    /// Stride of the conv.
    pub stride: usize,
    /// Zero padding of the conv.
    pub padding: usize,
    y: Mutex<Option<Tensor>>,
}

impl GemmGradConv {
    /// The forward pass's output: a copy of `y`, taken from the op, which must be on the device
    /// `pick` reads and laid out as a fresh contiguous tensor (candle's conv2d output is).
    fn take_output<S: BackendStorage>(
        &self,
        pick: impl Fn(&Storage) -> Option<&S>,
    ) -> Result<(S, Shape)> {
        let y = self
            .y
            .lock()
            .map_err(|_| candle_core::Error::Msg("device conv: output lock poisoned".into()))?
            .take()
            .ok_or_else(|| candle_core::Error::Msg("device conv: output taken twice".into()))?;
        let (storage, l) = y.storage_and_layout();
        if !l.is_contiguous() || l.start_offset() != 0 {
            candle_core::bail!("device conv: the conv output is not a fresh contiguous tensor");
        }
        let s = pick(&storage).ok_or_else(|| {
            candle_core::Error::Msg("device conv: output on another device".into())
        })?;
        Ok((s.try_clone(l)?, l.shape().clone()))
    }
}

/// [`GemmGradConv`] with the bias: `(x, w, b) → y`, `y` computed outside it with the bias
/// added ([`conv2d_with_bias`] on the CPU); the bias's gradient is the output gradient's sum
/// per channel.
#[derive(Debug)]
struct GemmGradConvBias(GemmGradConv);

impl CustomOp3 for GemmGradConvBias {
    fn name(&self) -> &'static str {
        "ddpm-gemm-grad-conv-bias"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0.take_output(|s| match s {
            Storage::Cpu(s) => Some(s),
            _ => None,
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = self.0.bwd(x, w, res, grad)?;
        let db = if b.track_op() {
            Some(crate::ops::channel_bias::bias_grad(&grad.detach(), false)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for GemmGradConv {
    fn name(&self) -> &'static str {
        "ddpm-gemm-grad-conv"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.take_output(|s| match s {
            Storage::Cpu(s) => Some(s),
            _ => None,
        })
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.take_output(|s| match s {
            Storage::Cuda(s) => Some(s),
            _ => None,
        })
    }

    fn metal_fwd(
        &self,
        _: &MetalStorage,
        _: &Layout,
        _: &MetalStorage,
        _: &Layout,
    ) -> Result<(MetalStorage, Shape)> {
        self.take_output(|s| match s {
            Storage::Metal(s) => Some(s),
            _ => None,
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Only what is tracked (an input image needs no gradient); values only, nothing here
        // needs a gradient of its own.
        let (need_dx, need_dw) = (x.track_op(), w.track_op());
        let (x, w, grad) = (x.detach(), w.detach(), grad.detach());
        let (_, _, h, wd) = x.dims4()?;
        let (_, _, k, _) = w.dims4()?;
        let (_, _, ho, wo) = grad.dims4()?;
        let (s, p) = (self.stride, self.padding);
        let dx = if need_dx {
            // The input rows and columns past the last output's window (`(h + 2p − k) mod s`):
            // the transposed conv's output padding.
            let extra = (h + 2 * p - k - (ho - 1) * s, wd + 2 * p - k - (wo - 1) * s);
            Some(crate::ops::stand_in(GEMM_CONV, grad.device(), || {
                transposed(&grad, &w, s, p, extra)
            })?)
        } else {
            None
        };
        let dw = if need_dw {
            // candle's weight gradient: the input's channels convolved with the output
            // gradient's, the batch as the summed axis; the conv's stride becomes a dilation.
            Some(crate::ops::stand_in(GEMM_CONV, x.device(), || {
                let dw = x
                    .transpose(0, 1)?
                    .conv2d(&grad.transpose(0, 1)?, p, 1, s, 1)?
                    .transpose(0, 1)?;
                let dw = if dw.dim(2)? != k || dw.dim(3)? != k {
                    dw.narrow(2, 0, k)?.narrow(3, 0, k)?
                } else {
                    dw
                };
                dw.contiguous()
            })?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}
