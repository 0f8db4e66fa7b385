//! The dense convolution on CUDA: im2col of the whole batch into one matrix
//! (`src/ops/cuda/conv.cu`), then cuBLAS strided batched GEMMs, as planned and checked on the CPU
//! by [`crate::ops::batched_conv`]. Square kernels, any stride, padding below the kernel size,
//! f32; a 1×1 conv without stride or padding multiplies the input itself.
//!
//! candle's CUDA conv is im2col + a matrix product too, but its im2col does five 64-bit
//! divisions per element (38 % of a training step on an H200), its output comes out transposed
//! (one more copy), and its backward pass transposes both operands of every weight gradient. Here
//! the forward product writes NCHW directly, the input gradient is a product and a col2im
//! (`ConvTranspose2d`'s forward pass is the same two steps), and the weight gradient one product
//! over the whole batch.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublas::{result as cublas, sys as cublas_sys};
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, CudaViewMut, DevicePtr, DevicePtrMut,
};
use candle_core::cuda_backend::WrapErr;
use candle_core::{
    CudaDevice, CudaStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

use super::{blocks3, grid_stride, int, view, Launch, Module};
use crate::ops::batched_conv::{BatchedConv, Gemm};
use crate::ops::conv_tuner::{Product, TUNER};
use crate::ops::geometry::ConvGeom;
use crate::ops::implicit_conv::{ConvAlgo, ImplicitConv};

/// The kernels' PTX (compiled for compute capability 7.5; the driver compiles it for the GPU).
pub(super) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/conv.ptx"));
/// The kernels of `conv.cu`.
const KERNELS: Module = Module {
    name: "ddpm_lab_conv",
    ptx: PTX,
};
/// Threads per block.
const THREADS: u32 = 256;
/// The implicit-GEMM kernels' PTX (`implicit_conv.cu`, planned by [`crate::ops::implicit_conv`]).
pub(super) const IMPLICIT_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/implicit_conv.ptx"));
/// The kernels of `implicit_conv.cu`.
const IMPLICIT_KERNELS: Module = Module {
    name: "ddpm_lab_implicit_conv",
    ptx: IMPLICIT_PTX,
};

/// Whether [`conv2d`] takes `x (N, C, H, W)` and `w (Co, C, k, k)` with this stride and padding:
/// f32 on one CUDA device, a square kernel that fits the padded input, padding below `k`, sizes
/// the kernels' `int`s hold, and the kernel not switched off ([`super::KERNELS_VAR`]).
pub fn supports(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> bool {
    on_cuda(x, w) && conv_plan(x.dims(), w.dims(), stride, padding).is_some()
}

/// Whether [`conv_transpose2d`] takes `x (N, Ci, h, w)` and `w (Ci, Co, k, k)` with this
/// stride and padding (as [`supports`]).
pub fn supports_transposed(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> bool {
    on_cuda(x, w) && transposed_plan(x.dims(), w.dims(), stride, padding).is_some()
}

fn on_cuda(x: &Tensor, w: &Tensor) -> bool {
    super::enabled("conv")
        && x.device().is_cuda()
        && w.device().same_device(x.device())
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
}

/// `conv2d(x (N, C, H, W), w (Co, C, k, k))`, stride `stride`, zero padding `padding`, no bias,
/// with its backward; errs unless [`supports`] holds.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    if !supports(x, w, stride, padding) {
        candle_core::bail!(
            "CUDA conv: input {:?}, weight {:?}, stride {stride}, padding {padding} not supported",
            x.dims(),
            w.dims()
        );
    }
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        GemmConv(Pass::Forward { stride, padding }),
    )
}

/// Whether [`conv2d_with_bias`] takes `x`, `w` and the bias `b`: [`supports`], and `b` a
/// contiguous f32 vector of `Co` values on the same device.
pub fn supports_with_bias(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    padding: usize,
) -> bool {
    supports(x, w, stride, padding) && super::f32_beside(b, x, &w.dims()[..1])
}

/// `conv2d(x, w) + b[c]` in one op: the output is filled with the bias and the forward product
/// adds into it, so there is no separate pass for the bias and no bias-less output for
/// autograd to keep; `b`'s gradient is `dy` summed over the batch and positions. Errs unless
/// [`supports_with_bias`] holds.
pub fn conv2d_with_bias(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    if !supports_with_bias(x, w, b, stride, padding) {
        candle_core::bail!(
            "CUDA conv with bias: input {:?}, weight {:?}, bias {:?}, stride {stride}, padding \
             {padding} not supported",
            x.dims(),
            w.dims(),
            b.dims()
        );
    }
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        GemmConvBias { stride, padding },
    )
}

/// `ConvTranspose2d(x (N, Ci, h, w))` with weight `w (Ci, Co, k, k)`, stride and padding as in
/// PyTorch (no output padding, no bias): output `(N, Co, (h − 1)·s − 2p + k, …)`, with its
/// backward; errs unless [`supports_transposed`] holds.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let plan = match transposed_plan(x.dims(), w.dims(), stride, padding) {
        Some(plan) if on_cuda(x, w) => plan,
        _ => candle_core::bail!(
            "CUDA conv-transpose: input {:?}, weight {:?}, stride {stride}, padding {padding} \
             not supported",
            x.dims(),
            w.dims()
        ),
    };
    let pass = Pass::InputGrad {
        stride,
        padding,
        h: plan.geom.h,
        w: plan.geom.w,
    };
    x.contiguous()?.apply_op2(&w.contiguous()?, GemmConv(pass))
}

/// The plan of the conv of an `x` of shape `xd` with a weight of shape `wd`, if the kernels
/// take it.
fn conv_plan(xd: &[usize], wd: &[usize], stride: usize, padding: usize) -> Option<BatchedConv> {
    match (xd, wd) {
        (&[n, c, h, w], &[co, wc, k, k2]) if wc == c && k2 == k && padding < k => {
            let geom = ConvGeom::new(c, h, w, k, stride, padding).ok()?;
            fits(BatchedConv { n, c_out: co, geom })
        }
        _ => None,
    }
}

/// The plan of the conv whose input gradient is the transposed conv of an `x` of shape `xd`
/// with a weight of shape `wd` (`(Ci, Co, k, k)`, the conv's `(Co, C, k, k)`), if the kernels
/// take it.
fn transposed_plan(
    xd: &[usize],
    wd: &[usize],
    stride: usize,
    padding: usize,
) -> Option<BatchedConv> {
    match (xd, wd) {
        (&[n, ci, h, w], &[wc, co, k, k2]) if wc == ci && k2 == k && padding < k && stride > 0 => {
            let size = |v: usize| (v.checked_sub(1)? * stride + k).checked_sub(2 * padding);
            let geom = ConvGeom::new(co, size(h)?, size(w)?, k, stride, padding).ok()?;
            // The conv maps that size back onto exactly (h, w).
            if (geom.ho, geom.wo) != (h, w) {
                return None;
            }
            fits(BatchedConv { n, c_out: ci, geom })
        }
        _ => None,
    }
}

/// `plan` if every size the kernels and cuBLAS take as an `int` fits one, with room for a
/// grid-stride loop's last step ([`super::grid_len`]), and none is empty.
fn fits(plan: BatchedConv) -> Option<BatchedConv> {
    let sizes = [
        plan.cols(),
        plan.rows(),
        plan.input_len(),
        plan.output_len(),
        plan.weight_len(),
    ];
    sizes
        .iter()
        .all(|&v| v > 0 && super::grid_len(v).is_ok())
        .then_some(plan)
}

/// Which product of the conv an op computes (its operands in order).
#[derive(Debug, Clone, Copy)]
enum Pass {
    /// `(x, w) → y`.
    Forward { stride: usize, padding: usize },
    /// `(dy, w) → dx (N, C, h, w)`: also `ConvTranspose2d`'s forward pass, with `w` its weight.
    InputGrad {
        stride: usize,
        padding: usize,
        h: usize,
        w: usize,
    },
    /// `(x, dy) → dw (Co, C, k, k)`.
    WeightGrad {
        stride: usize,
        padding: usize,
        k: usize,
    },
}

/// A [`Pass`] as a custom op. `Forward` and `InputGrad` have each other and `WeightGrad` as
/// their gradients; `WeightGrad` is only ever applied without one.
#[derive(Debug, Clone, Copy)]
struct GemmConv(Pass);

impl CustomOp2 for GemmConv {
    fn name(&self) -> &'static str {
        crate::ops::cuda_op_names::GEMM_CONV
    }

    cuda_only_cpu_fwd!(op2);

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = s1.device().clone();
        let unsupported = || {
            candle_core::Error::Msg(format!(
                "CUDA conv {:?}: operands {:?} and {:?} not supported",
                self.0,
                l1.dims(),
                l2.dims()
            ))
        };
        let (a, b) = (view(s1, l1)?, view(s2, l2)?);
        let (out, shape) = match self.0 {
            Pass::Forward { stride, padding } => {
                let plan =
                    conv_plan(l1.dims(), l2.dims(), stride, padding).ok_or_else(unsupported)?;
                let g = plan.geom;
                let shape = Shape::from((plan.n, plan.c_out, g.ho, g.wo));
                (forward(&dev, &plan, &a, &b, None)?, shape)
            }
            Pass::InputGrad {
                stride,
                padding,
                h,
                w,
            } => {
                let (n, co, ho, wo) = l1.shape().dims4()?;
                let (wco, c, k, _) = l2.shape().dims4()?;
                let plan = conv_plan(&[n, c, h, w], &[co, c, k, k], stride, padding)
                    .filter(|p| (p.geom.ho, p.geom.wo) == (ho, wo) && wco == co)
                    .ok_or_else(unsupported)?;
                (input_grad(&dev, &plan, &a, &b)?, Shape::from((n, c, h, w)))
            }
            Pass::WeightGrad { stride, padding, k } => {
                let (n, c, h, w) = l1.shape().dims4()?;
                let (dn, co, ho, wo) = l2.shape().dims4()?;
                let plan = conv_plan(&[n, c, h, w], &[co, c, k, k], stride, padding)
                    .filter(|p| (p.geom.ho, p.geom.wo) == (ho, wo) && dn == n)
                    .ok_or_else(unsupported)?;
                (
                    weight_grad(&dev, &plan, &a, &b)?,
                    Shape::from((co, c, k, k)),
                )
            }
        };
        Ok((CudaStorage::wrap_cuda_slice(out, dev), shape))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        match self.0 {
            // a = x, b = w.
            Pass::Forward { stride, padding } => conv_grads(a, b, &grad, stride, padding),
            Pass::InputGrad {
                stride, padding, ..
            } => {
                // a = x (the transposed conv's input), b = its weight; grad is the gradient of
                // its output, the conv's input.
                let k = b.dim(2)?;
                let dx = a
                    .track_op()
                    .then(|| {
                        let pass = Pass::Forward { stride, padding };
                        grad.apply_op2_no_bwd(&b.detach(), &GemmConv(pass))
                    })
                    .transpose()?;
                let dw = b
                    .track_op()
                    .then(|| {
                        let pass = Pass::WeightGrad { stride, padding, k };
                        grad.apply_op2_no_bwd(&a.detach(), &GemmConv(pass))
                    })
                    .transpose()?;
                Ok((dx, dw))
            }
            Pass::WeightGrad { .. } => {
                candle_core::bail!("the CUDA conv's weight gradient has no gradient of its own")
            }
        }
    }
}

/// `(x, w, b) → conv2d(x, w) + b` ([`conv2d_with_bias`]); its gradients are the conv's
/// ([`GemmConv`]'s passes) and the bias's.
#[derive(Debug, Clone, Copy)]
struct GemmConvBias {
    stride: usize,
    padding: usize,
}

impl CustomOp3 for GemmConvBias {
    fn name(&self) -> &'static str {
        crate::ops::cuda_op_names::GEMM_CONV_BIAS
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
        let dev = xs.device().clone();
        let plan = conv_plan(xl.dims(), wl.dims(), self.stride, self.padding)
            .filter(|p| bl.shape().elem_count() == p.c_out)
            .ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "CUDA conv with bias: operands {:?}, {:?} and {:?} not supported",
                    xl.dims(),
                    wl.dims(),
                    bl.dims()
                ))
            })?;
        let g = plan.geom;
        let (x, w, b) = (view(xs, xl)?, view(ws, wl)?, view(bs, bl)?);
        let y = forward(&dev, &plan, &x, &w, Some(&b))?;
        Ok((
            CudaStorage::wrap_cuda_slice(y, dev),
            Shape::from((plan.n, plan.c_out, g.ho, g.wo)),
        ))
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
        let (dx, dw) = conv_grads(x, w, &grad, self.stride, self.padding)?;
        let db = b
            .track_op()
            .then(|| crate::ops::channel_bias::bias_grad(&grad, false))
            .transpose()?;
        Ok((dx, dw, db))
    }
}

/// The gradients of `conv2d(x, w)` (stride, padding) for its output gradient `grad`
/// (contiguous): `dx` and `dw` through [`GemmConv`]'s passes, each only if tracked.
fn conv_grads(
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let (_, _, h, wd) = x.dims4()?;
    let k = w.dim(2)?;
    let dx = x
        .track_op()
        .then(|| {
            let pass = Pass::InputGrad {
                stride,
                padding,
                h,
                w: wd,
            };
            grad.apply_op2_no_bwd(&w.detach(), &GemmConv(pass))
        })
        .transpose()?;
    let dw = w
        .track_op()
        .then(|| {
            let pass = Pass::WeightGrad { stride, padding, k };
            x.detach().apply_op2_no_bwd(grad, &GemmConv(pass))
        })
        .transpose()?;
    Ok((dx, dw))
}

/// The most elements an im2col matrix (or its gradient) takes at once: a larger batch is
/// processed in chunks of images (256 MiB of f32, 169 images of a 28×28 3×3 conv over 56
/// channels), which bounds the conv's scratch memory on small GPUs and at large batches.
const MAX_COL: usize = 64 << 20;

/// The chunks of `plan`'s batch for [`MAX_COL`]: `(first image, the chunk's plan)`.
fn chunks(plan: &BatchedConv) -> impl Iterator<Item = (usize, BatchedConv)> + '_ {
    let per = plan.images_per_chunk(MAX_COL);
    (0..plan.n)
        .step_by(per)
        .map(move |n0| (n0, plan.with_batch(per.min(plan.n - n0))))
}

/// Images `n0..n0 + n` of a batch buffer whose images hold `per_image` elements each.
fn images<'a>(
    buf: &'a CudaView<'a, f32>,
    n0: usize,
    n: usize,
    per_image: usize,
) -> CudaView<'a, f32> {
    buf.slice(n0 * per_image..(n0 + n) * per_image)
}

/// Untimed runs of a candidate before `auto` times it (the first launch of a kernel loads its
/// module and allocates).
const TUNE_WARMUP: usize = 1;
/// Timed runs of a candidate; `auto` compares the fastest of them.
const TUNE_RUNS: usize = 3;

/// `run` (`product` of the conv `plan`, tuned under `ic`) by its algorithm: the setting
/// ([`ConvAlgo::current`]), or for `auto` the tuner's choice for this shape, which on its first
/// use times `run` with each candidate.
fn run_tuned(
    dev: &CudaDevice,
    product: Product,
    plan: &BatchedConv,
    ic: &ImplicitConv,
    run: impl Fn(ConvAlgo) -> Result<CudaSlice<f32>>,
) -> Result<CudaSlice<f32>> {
    let algo = match ConvAlgo::current() {
        ConvAlgo::Auto => {
            let tf32 = candle_core::cuda::gemm_reduced_precision_f32();
            // cuDNN's ranking is asked only for a shape not timed yet; should that fail, the
            // other candidates are timed without it.
            let cudnn = || {
                super::cudnn::available()
                    .then(|| super::cudnn::auto_candidates(dev, product, plan).ok())
                    .flatten()
                    .unwrap_or_default()
            };
            TUNER.choose(product, ic, tf32, cudnn, |algo| time_ms(dev, || run(algo)))?
        }
        algo => algo,
    };
    run(algo)
}

/// Which of cuDNN's ranked algorithms `algo` runs, if it is one of cuDNN's.
fn cudnn_pick(algo: ConvAlgo) -> Option<super::cudnn::Pick> {
    match algo {
        ConvAlgo::Cudnn => Some(super::cudnn::Pick::First),
        ConvAlgo::CudnnAlgo(id) => Some(super::cudnn::Pick::Algo(u32::from(id))),
        _ => None,
    }
}

/// Milliseconds of the fastest of [`TUNE_RUNS`] runs of `run` on `dev`'s stream, each between
/// two CUDA events, after [`TUNE_WARMUP`] untimed ones. Each run's output is dropped. The
/// stream is shared by the process's threads (`DeviceSpec::open`): work another thread queues
/// meanwhile lands between some of the events, and the fastest run is the one it missed.
fn time_ms(dev: &CudaDevice, run: impl Fn() -> Result<CudaSlice<f32>>) -> Result<f64> {
    use candle_core::cuda_backend::cudarc::driver::sys::CUevent_flags;
    for _ in 0..TUNE_WARMUP {
        drop(run()?);
    }
    let stream = dev.cuda_stream();
    // Timing events (cudarc's default disables timing).
    let flags = Some(CUevent_flags::CU_EVENT_DEFAULT);
    let mut marks = vec![stream.record_event(flags).w()?];
    for _ in 0..TUNE_RUNS {
        drop(run()?);
        marks.push(stream.record_event(flags).w()?);
    }
    let mut fastest = f64::INFINITY;
    for pair in marks.windows(2) {
        fastest = fastest.min(f64::from(pair[0].elapsed_ms(&pair[1]).w()?));
    }
    Ok(fastest)
}

/// `y (N, Co, Ho, Wo)` of `x` and `w`, plus `bias[c]` when given (`Co` values).
fn forward(
    dev: &CudaDevice,
    plan: &BatchedConv,
    x: &CudaView<f32>,
    w: &CudaView<f32>,
    bias: Option<&CudaView<f32>>,
) -> Result<CudaSlice<f32>> {
    let ic = ImplicitConv::forward(plan);
    run_tuned(dev, Product::Forward, plan, &ic, |algo| {
        forward_by(dev, plan, &ic, algo, x, w, bias)
    })
}

/// [`forward`] by `algo` (`ic` is the plan's implicit conv).
fn forward_by(
    dev: &CudaDevice,
    plan: &BatchedConv,
    ic: &ImplicitConv,
    algo: ConvAlgo,
    x: &CudaView<f32>,
    w: &CudaView<f32>,
    bias: Option<&CudaView<f32>>,
) -> Result<CudaSlice<f32>> {
    if let Some(pick) = cudnn_pick(algo) {
        return super::cudnn::forward(dev, plan, x, w, bias, pick);
    }
    if let Some(fp) = ic.forward_plan(algo) {
        return implicit(dev, ic, &fp, x, w, bias);
    }
    // SAFETY: the products write every element of y, chunk by chunk: with β = 0, or with β = 1
    // over the bias that `bias_fill` wrote into every element first.
    let mut y = unsafe { dev.alloc::<f32>(plan.output_len())? };
    let beta = match bias {
        Some(b) => {
            bias_fill(dev, plan, b, &y)?;
            1.0
        }
        None => 0.0,
    };
    if plan.reads_input_directly() {
        gemm(dev, &plan.forward_gemm(), x, w, &mut y.slice_mut(..), beta)?;
        return Ok(y);
    }
    let (img, out) = (plan.geom.image_len(), plan.output_image_len());
    let mut col = None;
    for (n0, chunk) in chunks(plan) {
        let col = col_buffer(dev, &mut col, &chunk)?;
        im2col(dev, &chunk, &images(x, n0, chunk.n, img), col)?;
        let mut y_chunk = y.slice_mut(n0 * out..(n0 + chunk.n) * out);
        gemm(
            dev,
            &chunk.forward_gemm(),
            &col.slice(..),
            w,
            &mut y_chunk,
            beta,
        )?;
    }
    Ok(y)
}

/// The conv `ic` through the implicit-GEMM kernel as `fp` plans it: `x` its input
/// `(n, c, h, w)`, `w` its weight (`(m, c, k, k)`, or `(c, m, k, k)` read flipped), plus
/// `bias[m]` when given; a new `(n, m, ho, wo)` buffer. With channel slices, the kernel writes
/// each slice's partial sums and [`sum_splits`] adds them and the bias.
fn implicit(
    dev: &CudaDevice,
    ic: &ImplicitConv,
    fp: &crate::ops::implicit_conv::ForwardPlan,
    x: &CudaView<f32>,
    w: &CudaView<f32>,
    bias: Option<&CudaView<f32>>,
) -> Result<CudaSlice<f32>> {
    let out_len = ic.cols() * ic.m;
    if x.len() < ic.n * ic.c * ic.h * ic.w
        || w.len() < ic.m * ic.c * ic.k * ic.k
        || bias.is_some_and(|b| b.len() < ic.m)
    {
        candle_core::bail!("CUDA implicit conv: operands too small for {ic:?}");
    }
    // `forward_plan` keeps the grid's y within 65,535 and splits·n·m·ho·wo within an int
    // (slices only for small outputs).
    let splits = fp.grid.2;
    // SAFETY: the blocks' tiles cover every (channel, column) of each slice's output, each
    // written once.
    let y = unsafe { dev.alloc::<f32>(splits * out_len)? };
    // Only a single pass adds the bias itself; `sum_splits` adds it after slices.
    let kernel_bias = bias.filter(|_| splits == 1);
    let launch = Launch {
        kernel: &ic.kernel(fp.tile),
        cfg: blocks3(fp.grid, crate::ops::implicit_conv::THREADS)?,
        // Without a bias the kernel never reads its bias pointer: the weight stands in.
        inputs: &[x.slice(..), w.slice(..), kernel_bias.unwrap_or(w).slice(..)],
        outputs: &[&y],
        ints: &ic.ints(kernel_bias.is_some(), fp.c_slice),
        floats: &[],
    };
    // SAFETY: the parameters match `conv_implicit_k{k}_m{tile}` (x, w, bias, y, then the ints of
    // `ImplicitConv::ints`); it reads x and w within the sizes checked above, bias below m, and
    // writes the splits·n·m·ho·wo elements of y; the plan's sizes fit an int (`fits`), the
    // grid's x too.
    unsafe { IMPLICIT_KERNELS.launch(dev, launch) }?;
    if splits == 1 {
        return Ok(y);
    }
    let per_channel = bias.map(|b| (b, ic.ho * ic.wo, ic.m));
    sum_splits(dev, &y, splits, out_len, per_channel)
}

/// `Σ_s part[s·len..(s + 1)·len]` in order of `s`, into a new buffer of `len`, plus
/// `bias[(i / positions) % channels]` when given as `(bias, positions, channels)` (an NCHW
/// output's channel bias).
fn sum_splits(
    dev: &CudaDevice,
    part: &CudaSlice<f32>,
    splits: usize,
    len: usize,
    bias: Option<(&CudaView<f32>, usize, usize)>,
) -> Result<CudaSlice<f32>> {
    if part.len() < splits * len || bias.is_some_and(|(b, _, c)| b.len() < c) {
        candle_core::bail!("CUDA implicit conv: {splits} slices of {len} past their buffers");
    }
    // SAFETY: the kernel writes every element of out.
    let out = unsafe { dev.alloc::<f32>(len)? };
    let (b, positions, channels) = match bias {
        Some((b, p, c)) => (b.slice(..), p.max(1), c.max(1)),
        None => (part.slice(..), 1, 1),
    };
    let launch = Launch {
        kernel: "conv_implicit_sum_splits",
        cfg: grid_stride(len, THREADS),
        inputs: &[part.slice(..), b],
        outputs: &[&out],
        ints: &[
            len,
            splits,
            positions,
            channels,
            usize::from(bias.is_some()),
        ],
        floats: &[],
    };
    // SAFETY: the parameters match `conv_implicit_sum_splits`; it reads part's splits·len
    // elements and, with a bias, its channels below `channels` (checked above), and writes
    // out's len (an int, as every size of the plans).
    unsafe { IMPLICIT_KERNELS.launch(dev, launch) }?;
    Ok(out)
}

/// `dw (m, c, k, k)` of the conv `ic` (unflipped) from its input `x` and output gradient `dy`
/// through the implicit weight-gradient kernel, slice by slice as `wp` plans, then the slices
/// added in order.
fn implicit_weight_grad(
    dev: &CudaDevice,
    ic: &ImplicitConv,
    wp: &crate::ops::implicit_conv::WgradPlan,
    x: &CudaView<f32>,
    dy: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    let len = ic.m * ic.kdim();
    let splits = wp.grid.2;
    if x.len() < ic.n * ic.c * ic.h * ic.w || dy.len() < ic.cols() * ic.m {
        candle_core::bail!("CUDA implicit weight gradient: operands too small for {ic:?}");
    }
    // SAFETY: every block writes its (channel, column) tile of its slice, an empty one zeros.
    let part = unsafe { dev.alloc::<f32>(splits * len)? };
    let launch = Launch {
        kernel: &ic.weight_grad_kernel(wp.tile),
        cfg: blocks3(wp.grid, crate::ops::implicit_conv::THREADS)?,
        inputs: &[x.slice(..), dy.slice(..)],
        outputs: &[&part],
        ints: &ic.weight_grad_ints(wp.slice),
        floats: &[],
    };
    // SAFETY: the parameters match `conv_implicit_wgrad_k{k}_m{tile}` (x, dy, part, then the
    // ints of `ImplicitConv::weight_grad_ints`); it reads x and dy within the sizes checked
    // above and writes part's splits·m·c·k² elements (an int: `weight_grad_plan`).
    unsafe { IMPLICIT_KERNELS.launch(dev, launch) }?;
    if splits == 1 {
        return Ok(part);
    }
    sum_splits(dev, &part, splits, len, None)
}

/// `y[n, c, p] = b[c]` over the whole output of `plan` (`b` holds `Co` values).
pub(super) fn bias_fill(
    dev: &CudaDevice,
    plan: &BatchedConv,
    b: &CudaView<f32>,
    y: &CudaSlice<f32>,
) -> Result<()> {
    let total = plan.output_len();
    if b.len() < plan.c_out || y.len() < total {
        candle_core::bail!("CUDA conv: bias or output buffer too small for {plan:?}");
    }
    let launch = Launch {
        kernel: "conv_bias_fill",
        cfg: grid_stride(total, THREADS),
        inputs: &[b.slice(..)],
        outputs: &[y],
        ints: &[total, plan.positions(), plan.c_out],
        floats: &[],
    };
    // SAFETY: the parameters match `conv_bias_fill`; it writes y's first `total` elements and
    // reads b below `Co` (both checked above); `total` fits an int (`fits`).
    unsafe { KERNELS.launch(dev, launch) }
}

/// `dx (N, C, H, W)` of the output gradient `dy` and `w`. A stride-1 conv's is the flipped
/// conv of `dy` ([`ImplicitConv::input_grad`]), which the implicit kernels compute too, and is
/// tuned under that conv; a strided conv's under its forward conv.
fn input_grad(
    dev: &CudaDevice,
    plan: &BatchedConv,
    dy: &CudaView<f32>,
    w: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    let flipped = ImplicitConv::input_grad(plan);
    let key = flipped.unwrap_or_else(|| ImplicitConv::forward(plan));
    run_tuned(dev, Product::InputGrad, plan, &key, |algo| {
        input_grad_by(dev, plan, flipped.as_ref(), algo, dy, w)
    })
}

/// [`input_grad`] by `algo`: cuDNN, the implicit kernel of the flipped conv `flipped` (a
/// stride-1 conv's), or im2col's products and col2im (also for an implicit `algo` without a
/// flipped conv).
fn input_grad_by(
    dev: &CudaDevice,
    plan: &BatchedConv,
    flipped: Option<&ImplicitConv>,
    algo: ConvAlgo,
    dy: &CudaView<f32>,
    w: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    if let Some(pick) = cudnn_pick(algo) {
        return super::cudnn::input_grad(dev, plan, dy, w, pick);
    }
    if let Some(ic) = flipped {
        if let Some(fp) = ic.forward_plan(algo) {
            return implicit(dev, ic, &fp, dy, w, None);
        }
    }
    // SAFETY: the products (1×1) or col2im write every element of dx, chunk by chunk.
    let mut dx = unsafe { dev.alloc::<f32>(plan.input_len())? };
    if plan.reads_input_directly() {
        gemm(
            dev,
            &plan.input_grad_gemm(),
            dy,
            w,
            &mut dx.slice_mut(..),
            0.0,
        )?;
        return Ok(dx);
    }
    let out = plan.output_image_len();
    let mut dcol = None;
    for (n0, chunk) in chunks(plan) {
        let dcol = col_buffer(dev, &mut dcol, &chunk)?;
        let dy_chunk = images(dy, n0, chunk.n, out);
        gemm(
            dev,
            &chunk.input_grad_gemm(),
            &dy_chunk,
            w,
            &mut dcol.slice_mut(..),
            0.0,
        )?;
        let mut ints = geometry_ints(&chunk).to_vec();
        ints.push(n0);
        let launch = Launch {
            kernel: "conv_col2im",
            cfg: grid_stride(chunk.input_len(), THREADS),
            inputs: &[dcol.slice(..)],
            outputs: &[&dx],
            ints: &ints,
            floats: &[],
        };
        // SAFETY: the parameters match `conv_col2im`; it reads the chunk's dcol (K, n·Ho·Wo)
        // and writes images n0.. n0 + n of dx (N, C, H, W), inside the buffers sized by the
        // plans.
        unsafe { KERNELS.launch(dev, launch) }?;
    }
    Ok(dx)
}

/// `dw (Co, C, k, k)` of the input `x` and the output gradient `dy`.
fn weight_grad(
    dev: &CudaDevice,
    plan: &BatchedConv,
    x: &CudaView<f32>,
    dy: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    let ic = ImplicitConv::forward(plan);
    run_tuned(dev, Product::WeightGrad, plan, &ic, |algo| {
        weight_grad_by(dev, plan, &ic, algo, x, dy)
    })
}

/// [`weight_grad`] by `algo` (`ic` is the plan's implicit conv): the implicit kernel, or the
/// products of im2col's chunks added (β = 1 after the first).
fn weight_grad_by(
    dev: &CudaDevice,
    plan: &BatchedConv,
    ic: &ImplicitConv,
    algo: ConvAlgo,
    x: &CudaView<f32>,
    dy: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    if let Some(pick) = cudnn_pick(algo) {
        return super::cudnn::weight_grad(dev, plan, x, dy, pick);
    }
    if let Some(wp) = ic.weight_grad_plan(algo) {
        return implicit_weight_grad(dev, ic, &wp, x, dy);
    }
    // SAFETY: the first chunk's product writes every element of dw (β = 0).
    let mut dw = unsafe { dev.alloc::<f32>(plan.weight_len())? };
    let (img, out) = (plan.geom.image_len(), plan.output_image_len());
    let mut col = None;
    for (i, (n0, chunk)) in chunks(plan).enumerate() {
        let x_chunk = images(x, n0, chunk.n, img);
        let owned;
        // A 1×1 conv's im2col matrix is x with batch and channel axes swapped.
        let col: &CudaSlice<f32> = if chunk.reads_input_directly() {
            owned = channels_first(dev, &x_chunk, chunk.n, chunk.geom.c, chunk.positions())?;
            &owned
        } else {
            let col = col_buffer(dev, &mut col, &chunk)?;
            im2col(dev, &chunk, &x_chunk, col)?;
            col
        };
        let dy_chunk = images(dy, n0, chunk.n, out);
        let dyc = channels_first(dev, &dy_chunk, chunk.n, chunk.c_out, chunk.positions())?;
        let beta = if i == 0 { 0.0 } else { 1.0 };
        gemm(
            dev,
            &chunk.weight_grad_gemm(),
            &col.slice(..),
            &dyc.slice(..),
            &mut dw.slice_mut(..),
            beta,
        )?;
    }
    Ok(dw)
}

/// The im2col buffer for `chunk`, allocated on first use at the size of the first (largest)
/// chunk and reused by the next chunks (the stream runs them in order).
fn col_buffer<'a>(
    dev: &CudaDevice,
    buf: &'a mut Option<CudaSlice<f32>>,
    chunk: &BatchedConv,
) -> Result<&'a mut CudaSlice<f32>> {
    let need = chunk.rows() * chunk.cols();
    if buf.as_ref().is_none_or(|b| b.len() < need) {
        // SAFETY: every user writes the elements it reads (im2col, or a product with β = 0).
        *buf = Some(unsafe { dev.alloc::<f32>(need)? });
    }
    Ok(buf.as_mut().expect("allocated above"))
}

/// The im2col matrix `(K, n·Ho·Wo)` of the images `x` of `plan` into the start of `col`.
fn im2col(
    dev: &CudaDevice,
    plan: &BatchedConv,
    x: &CudaView<f32>,
    col: &CudaSlice<f32>,
) -> Result<()> {
    let (rows, cols) = (plan.rows(), plan.cols());
    if col.len() < rows * cols || x.len() < plan.input_len() {
        candle_core::bail!("CUDA conv: im2col buffers too small for {plan:?}");
    }
    let launch = Launch {
        kernel: "conv_im2col",
        cfg: candle_core::cuda_backend::cudarc::driver::LaunchConfig {
            grid_dim: (
                super::blocks_for(cols, THREADS),
                // One block row per input channel (the kernel loops past 65 535).
                int(plan.geom.c.min(65_535))? as u32,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        },
        inputs: &[x.slice(..)],
        outputs: &[col],
        ints: &geometry_ints(plan),
        floats: &[],
    };
    // SAFETY: the parameters match `conv_im2col`; it reads x (n, C, H, W) and writes the first
    // K·n·Ho·Wo elements of col, both checked above.
    unsafe { KERNELS.launch(dev, launch) }
}

/// The `int`s that `conv_im2col` and `conv_col2im` take, in their order:
/// `n, c, h, w, k, stride, pad, ho, wo`.
fn geometry_ints(plan: &BatchedConv) -> [usize; 9] {
    let g = plan.geom;
    [plan.n, g.c, g.h, g.w, g.k, g.stride, g.pad, g.ho, g.wo]
}

/// `(N, C, P)` → `(C, N, P)`.
fn channels_first(
    dev: &CudaDevice,
    src: &CudaView<f32>,
    n: usize,
    c: usize,
    positions: usize,
) -> Result<CudaSlice<f32>> {
    let len = n * c * positions;
    // SAFETY: the kernel writes every element.
    let dst = unsafe { dev.alloc::<f32>(len)? };
    let launch = Launch {
        kernel: "conv_channels_first",
        cfg: grid_stride(len, THREADS),
        inputs: &[src.slice(..)],
        outputs: &[&dst],
        ints: &[n, c, positions],
        floats: &[],
    };
    // SAFETY: the parameters match `conv_channels_first`; src and dst hold N·C·P elements.
    unsafe { KERNELS.launch(dev, launch) }?;
    Ok(dst)
}

/// `c = op(a) · op(b) + β·c` (β 0 or 1; 0 never reads c) on the device's cuBLAS handle, in f32 (TF32 when candle's
/// reduced-precision switch is on, as for its own matmuls), after checking every buffer holds
/// what the product touches.
fn gemm(
    dev: &CudaDevice,
    g: &Gemm,
    a: &CudaView<f32>,
    b: &CudaView<f32>,
    c: &mut CudaViewMut<f32>,
    beta: f32,
) -> Result<()> {
    if g.extent_a() > a.len() || g.extent_b() > b.len() || g.extent_c() > c.len() {
        candle_core::bail!(
            "CUDA conv: a product {g:?} reaches past its buffers ({}, {}, {})",
            a.len(),
            b.len(),
            c.len()
        );
    }
    let op = |t: bool| {
        if t {
            cublas_sys::cublasOperation_t::CUBLAS_OP_T
        } else {
            cublas_sys::cublasOperation_t::CUBLAS_OP_N
        }
    };
    let compute = if candle_core::cuda_backend::gemm_reduced_precision_f32() {
        cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
    } else {
        cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F
    };
    let alpha = 1f32;
    let wide = |v: usize| i64::try_from(v).map_err(|e| candle_core::Error::Msg(e.to_string()));
    let blas = dev.cublas_handle();
    let stream = dev.cuda_stream();
    let (pa, _ga) = a.device_ptr(&stream);
    let (pb, _gb) = b.device_ptr(&stream);
    let (pc, _gc) = c.device_ptr_mut(&stream);
    // SAFETY: the extents checked above keep every read and write inside a, b and c; the sizes
    // fit cuBLAS's ints (checked by `int`), and the handle works on the device's stream.
    unsafe {
        cublas::gemm_strided_batched_ex(
            *blas.handle(),
            op(g.trans_a),
            op(g.trans_b),
            int(g.m)?,
            int(g.n)?,
            int(g.k)?,
            &alpha as *const f32 as *const _,
            pa as *const _,
            cublas_sys::cudaDataType_t::CUDA_R_32F,
            int(g.lda)?,
            wide(g.stride_a)?,
            pb as *const _,
            cublas_sys::cudaDataType_t::CUDA_R_32F,
            int(g.ldb)?,
            wide(g.stride_b)?,
            &beta as *const f32 as *const _,
            pc as *mut _,
            cublas_sys::cudaDataType_t::CUDA_R_32F,
            int(g.ldc)?,
            wide(g.stride_c)?,
            int(g.batch)?,
            compute,
            cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
        )
    }
    .w()?;
    Ok(())
}
