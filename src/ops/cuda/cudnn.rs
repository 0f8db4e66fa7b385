//! The dense conv's three products through cuDNN (`DDPM_LAB_CONV_ALGO=cudnn`, and a candidate
//! of `auto`): the forward product (`cudnnConvolutionForward`, after the bias is written, as the
//! im2col route adds into it), the input gradient (`cudnnConvolutionBackwardData`, also
//! `ConvTranspose2d`'s forward pass) and the weight gradient (`cudnnConvolutionBackwardFilter`).
//! These are the operations PyTorch's conv and its backward run through cuDNN (PyTorch 2 reaches
//! them through cuDNN's graph API, whose engines may differ from the ones chosen here). candle's
//! own cuDNN conv (its `cudnn` feature) covers only the forward product and takes weight
//! gradients as convs with image-sized kernels, four times slower than im2col on an H200, so it
//! is not used.
//!
//! Each product runs the algorithm cuDNN's heuristics rank first for its shape
//! (`cudnnGet…Algorithm_v7`), as PyTorch's v7 path does with `cudnn.benchmark` off: the first
//! that cuDNN supports, whose workspace can be allocated and that cuDNN agrees to run for the
//! operands (one it refuses is dropped from the shape's ranking and the next runs), with strict
//! float32 math (`CUDNN_FMA_MATH`) unless TF32 is on (`--tf32`, as for cuBLAS). The ranking is
//! asked once per shape and kept. Like PyTorch's default, that may be an algorithm whose sums
//! use atomics, so two runs can differ in the last bits; `im2col` keeps a run repeatable.
//!
//! cuDNN 9 is loaded at run time (cudarc's `dynamic-loading`), from `libcudnn.so.9` (or another
//! name cudarc tries) on the library path, e.g. the `nvidia/cudnn/lib` folder of a PyTorch install
//! (`gpu-check.sh` puts those on `LD_LIBRARY_PATH`). Without it [`available`] is false, `auto`
//! leaves cuDNN out, and `cudnn` is an error when a CUDA device opens.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::fmt::Debug;
use std::rc::Rc;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaStream, CudaView, DevicePtr, DevicePtrMut, SyncOnDrop,
};
use candle_core::cuda_backend::{DeviceId, WrapErr};
use candle_core::{CudaDevice, Result};
use cudarc::cudnn::{result, result::CudnnError, sys};

use crate::ops::batched_conv::BatchedConv;
use crate::ops::conv_tuner::Product;

/// The cuDNN major version that cudarc's bindings (`cudnn-09021`) are for.
const MAJOR: usize = 9;

/// The version number of the cuDNN that loads under cudarc's names, if one does (looked for
/// once). cuDNN 9 numbers its versions major·10000 + minor·100 + patch (cuDNN 8: major·1000 + …).
fn loaded_version() -> Option<usize> {
    static VERSION: OnceLock<Option<usize>> = OnceLock::new();
    // SAFETY: opens the library under the names cudarc knows; `cudnnGetVersion` takes nothing
    // and returns a size_t in every cuDNN.
    *VERSION.get_or_init(|| unsafe { sys::is_culib_present() }.then(result::get_version))
}

/// Whether a cuDNN 9 loads in this process. The bindings are cuDNN 9's, so another major
/// version (say a system cuDNN 8 found first as `libcudnn.so`) counts as none: its status codes
/// and enums differ.
pub fn available() -> bool {
    loaded_version().is_some_and(is_cudnn_9)
}

/// Whether a `cudnnGetVersion` number is a cuDNN 9's.
fn is_cudnn_9(v: usize) -> bool {
    v / 10_000 == MAJOR
}

/// A cuDNN 9 version number as `major.minor.patch`.
fn version_name(v: usize) -> String {
    format!("{}.{}.{}", v / 10_000, v / 100 % 100, v % 100)
}

/// The loaded cuDNN 9's version (`9.28.1`), if it loads.
pub fn version() -> Option<String> {
    loaded_version()
        .filter(|&v| is_cudnn_9(v))
        .map(version_name)
}

/// The error for a cuDNN conv asked for where no cuDNN 9 loads.
pub fn unavailable_message() -> String {
    let found = match loaded_version() {
        Some(v) => format!("the cuDNN that loads reports version number {v}, not a cuDNN 9"),
        None => "cuDNN 9 is not on the library path".to_string(),
    };
    format!(
        "{found} (libcudnn.so.9: PyTorch installs it under site-packages/nvidia/cudnn/lib; put          that folder first on LD_LIBRARY_PATH), so the CUDA conv cannot use it: set          DDPM_LAB_CONV_ALGO to im2col, implicit or auto"
    )
}

/// A cuDNN error as candle's, with what was being done.
fn cudnn_err(what: &str) -> impl Fn(CudnnError) -> candle_core::Error + '_ {
    move |e| candle_core::Error::Msg(format!("cuDNN {what}: {:?}{}", e.0, last_error()))
}

/// cuDNN's message about its last error on this thread (`: …`), or nothing.
fn last_error() -> String {
    let mut buf = [0 as c_char; 512];
    // SAFETY: cuDNN writes at most `len` bytes, NUL included, into the buffer.
    unsafe { sys::cudnnGetLastErrorString(buf.as_mut_ptr(), buf.len()) };
    buf[buf.len() - 1] = 0;
    // SAFETY: the buffer ends in a NUL (set above).
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    if msg.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", msg.trim())
    }
}

/// A cuDNN handle that queues on one device's stream, owned by the thread that made it (cuDNN
/// handles are not to be shared between threads).
struct Handle {
    raw: sys::cudnnHandle_t,
    /// Keeps the stream (and its context) alive as long as the handle queues on it.
    stream: Arc<CudaStream>,
}

impl Handle {
    fn new(dev: &CudaDevice) -> Result<Self> {
        let stream = dev.cuda_stream();
        stream.context().bind_to_thread().w()?;
        let raw = result::create_handle().map_err(cudnn_err("handle"))?;
        let handle = Handle { raw, stream };
        // SAFETY: the handle was just created; the stream lives as long as the handle (held
        // above). cuDNN's stream type is the driver's stream under another name.
        unsafe { result::set_stream(handle.raw, handle.stream.cu_stream() as sys::cudaStream_t) }
            .map_err(cudnn_err("stream"))?;
        Ok(handle)
    }
}

impl Drop for Handle {
    /// Destroys the handle (cuDNN waits for the device first: a thread that ran cuDNN convs
    /// waits for the GPU as it exits). A failure at exit has nowhere to go.
    fn drop(&mut self) {
        // SAFETY: created by `Handle::new` and destroyed once, here.
        let _ = unsafe { result::destroy_handle(self.raw) };
    }
}

/// A thread's handle for one device, or why it could not be made (kept, so that a failure is
/// reported once per device rather than retried for every conv).
type ThreadHandle = std::result::Result<Rc<Handle>, String>;

thread_local! {
    /// This thread's handle for each device it has run a cuDNN conv on.
    static HANDLES: RefCell<Vec<(DeviceId, ThreadHandle)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's handle for `dev`, made on first use.
fn handle(dev: &CudaDevice) -> Result<Rc<Handle>> {
    if !available() {
        candle_core::bail!("{}", unavailable_message());
    }
    let found = HANDLES
        .try_with(|handles| {
            let mut handles = handles.borrow_mut();
            // A handle whose device is gone (nothing else holds its stream) is of no more use:
            // with DDPM_LAB_CUDA_STREAM=per-thread every opening is a device of its own.
            handles.retain(|(_, h)| match h {
                Ok(h) => Arc::strong_count(&h.stream) > 1,
                Err(_) => true,
            });
            if let Some((_, h)) = handles.iter().find(|(id, _)| *id == dev.id()) {
                return h.clone();
            }
            let h = Handle::new(dev).map(Rc::new).map_err(|e| e.to_string());
            handles.push((dev.id(), h.clone()));
            h
        })
        .map_err(|_| candle_core::Error::Msg("cuDNN: the thread is exiting".into()))?;
    found.map_err(|e| candle_core::Error::Msg(format!("cuDNN handle: {e}")))
}

/// A descriptor that cuDNN allocates, freed on drop.
macro_rules! descriptor {
    ($name:ident, $raw:ty, $destroy:path) => {
        struct $name($raw);

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: made by cuDNN's create call for this type and destroyed once, here.
                let _ = unsafe { $destroy(self.0) };
            }
        }
    };
}

descriptor!(
    TensorDesc,
    sys::cudnnTensorDescriptor_t,
    result::destroy_tensor_descriptor
);
descriptor!(
    FilterDesc,
    sys::cudnnFilterDescriptor_t,
    result::destroy_filter_descriptor
);
descriptor!(
    ConvDesc,
    sys::cudnnConvolutionDescriptor_t,
    result::destroy_convolution_descriptor
);

/// The descriptors of one conv of a [`BatchedConv`]: its input `x (n, C, H, W)`, weight
/// `w (Co, C, k, k)` and output `y (n, Co, Ho, Wo)`, all f32 and NCHW, and the conv itself
/// (cross-correlation, as PyTorch's conv, with the plan's stride and padding). Made without a
/// device: cuDNN's descriptors live on the host.
pub struct ConvDescriptors {
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    conv: ConvDesc,
}

impl ConvDescriptors {
    /// The descriptors of `plan`, the conv's math strict float32 (`CUDNN_FMA_MATH`) or, with
    /// `tf32`, cuDNN's default (TF32 tensor cores allowed). Errs if cuDNN does not load, a size
    /// does not fit its `int`s, or cuDNN's output size differs from the plan's.
    pub fn new(plan: &BatchedConv, tf32: bool) -> Result<Self> {
        if !available() {
            candle_core::bail!("{}", unavailable_message());
        }
        let g = plan.geom;
        let i = |v: usize| {
            c_int::try_from(v)
                .map_err(|_| candle_core::Error::Msg(format!("{v} is too large for cuDNN")))
        };
        let f32_type = sys::cudnnDataType_t::CUDNN_DATA_FLOAT;
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let tensor = |dims: [usize; 4]| -> Result<TensorDesc> {
            let desc = TensorDesc(result::create_tensor_descriptor().map_err(cudnn_err("tensor"))?);
            let dims = [i(dims[0])?, i(dims[1])?, i(dims[2])?, i(dims[3])?];
            // SAFETY: a descriptor just created and not freed.
            unsafe { result::set_tensor4d_descriptor(desc.0, nchw, f32_type, dims) }
                .map_err(cudnn_err("tensor"))?;
            Ok(desc)
        };
        let x = tensor([plan.n, g.c, g.h, g.w])?;
        let y = tensor([plan.n, plan.c_out, g.ho, g.wo])?;
        let w = FilterDesc(result::create_filter_descriptor().map_err(cudnn_err("filter"))?);
        // SAFETY: a descriptor just created and not freed.
        unsafe {
            result::set_filter4d_descriptor(
                w.0,
                f32_type,
                nchw,
                [i(plan.c_out)?, i(g.c)?, i(g.k)?, i(g.k)?],
            )
        }
        .map_err(cudnn_err("filter"))?;
        let conv = ConvDesc(result::create_convolution_descriptor().map_err(cudnn_err("conv"))?);
        let (pad, stride) = (i(g.pad)?, i(g.stride)?);
        // SAFETY: a descriptor just created and not freed.
        unsafe {
            result::set_convolution2d_descriptor(
                conv.0,
                pad,
                pad,
                stride,
                stride,
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                f32_type,
            )
        }
        .map_err(cudnn_err("conv"))?;
        let descs = ConvDescriptors { x, w, y, conv };
        descs.set_math(if tf32 {
            sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
        } else {
            sys::cudnnMathType_t::CUDNN_FMA_MATH
        })?;
        let out = descs.output_dims()?;
        if out != [plan.n, plan.c_out, g.ho, g.wo] {
            candle_core::bail!("cuDNN sizes the output of {plan:?} as {out:?}");
        }
        Ok(descs)
    }

    /// The output `(n, Co, Ho, Wo)` that cuDNN computes for these descriptors.
    pub fn output_dims(&self) -> Result<[usize; 4]> {
        let mut d: [c_int; 4] = [0; 4];
        let [n, c, h, w] = &mut d;
        // SAFETY: live descriptors; cuDNN writes the four ints.
        unsafe {
            sys::cudnnGetConvolution2dForwardOutputDim(self.conv.0, self.x.0, self.w.0, n, c, h, w)
        }
        .result()
        .map_err(cudnn_err("output size"))?;
        Ok(d.map(|v| usize::try_from(v).unwrap_or(0)))
    }

    /// Sets the conv's math type (each algorithm runs with the math its ranking gave).
    fn set_math(&self, math: sys::cudnnMathType_t) -> Result<()> {
        // SAFETY: a live descriptor.
        unsafe { result::set_convolution_math_type(self.conv.0, math) }.map_err(cudnn_err("math"))
    }
}

/// One algorithm cuDNN ranked for a shape: the algorithm, its workspace in bytes and the math
/// it runs with.
#[derive(Debug, Clone, Copy)]
struct Ranked<A> {
    algo: A,
    workspace: usize,
    math: sys::cudnnMathType_t,
}

/// A shape as the rankings are kept: the device, the product, the conv and TF32.
type Key = (DeviceId, Product, BatchedConv, bool);

/// Each shape's ranking.
type Table<A> = HashMap<Key, Arc<[Ranked<A>]>>;

/// The rankings asked so far, per product's algorithm type.
struct Rankings<A>(LazyLock<Mutex<Table<A>>>);

impl<A: Copy + PartialEq> Rankings<A> {
    const fn new() -> Self {
        Rankings(LazyLock::new(|| Mutex::new(HashMap::new())))
    }

    /// The ranking of `key`, asked of `rank` the first time.
    fn get(
        &self,
        key: Key,
        rank: impl FnOnce() -> Result<Vec<Ranked<A>>>,
    ) -> Result<Arc<[Ranked<A>]>> {
        if let Some(r) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(r.clone());
        }
        let ranked: Arc<[Ranked<A>]> = rank()?.into();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, ranked.clone());
        Ok(ranked)
    }

    /// Leaves `algo` out of `key`'s ranking: cuDNN refused to run it for the shape.
    fn drop_algo(&self, key: &Key, algo: A) {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = table.get_mut(key) {
            let rest: Vec<Ranked<A>> = r.iter().filter(|x| x.algo != algo).copied().collect();
            *r = rest.into();
        }
    }
}

static FORWARD: Rankings<sys::cudnnConvolutionFwdAlgo_t> = Rankings::new();
static INPUT_GRAD: Rankings<sys::cudnnConvolutionBwdDataAlgo_t> = Rankings::new();
static WEIGHT_GRAD: Rankings<sys::cudnnConvolutionBwdFilterAlgo_t> = Rankings::new();

/// The ranking of a `cudnnGet…Algorithm_v7` answer (`perfs`, the first `returned` filled):
/// the algorithms cuDNN supports for the shape, in its order, each with the math it will run
/// with and its workspace under that math (`size(algo)`, asked with the math set on `d`; an
/// algorithm whose size cannot be asked is left out). With `tf32` an algorithm keeps the math
/// cuDNN ranked it with (TF32 tensor cores allowed, never a conversion to half precision);
/// without, only those ranked with FMA or the default math are kept, and they run with
/// `CUDNN_FMA_MATH`, which keeps the default math's off TF32. Should none be left, `default`
/// (the algorithm PyTorch falls back on) stands alone.
macro_rules! ranking {
    ($perfs:expr, $returned:expr, $tf32:expr, $d:expr, $size:expr, $default:expr) => {{
        use sys::cudnnMathType_t::{CUDNN_DEFAULT_MATH, CUDNN_FMA_MATH, CUDNN_TENSOR_OP_MATH};
        let returned = usize::try_from($returned).unwrap_or(0).min($perfs.len());
        let mut out = Vec::new();
        for p in &$perfs[..returned] {
            if p.status != sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
                continue;
            }
            let math = match (p.mathType, $tf32) {
                (CUDNN_FMA_MATH | CUDNN_DEFAULT_MATH, false) => CUDNN_FMA_MATH,
                (m @ (CUDNN_FMA_MATH | CUDNN_DEFAULT_MATH | CUDNN_TENSOR_OP_MATH), true) => m,
                _ => continue,
            };
            if $d.set_math(math).is_err() {
                continue;
            }
            if let Ok(bytes) = $size(p.algo) {
                out.push(Ranked {
                    algo: p.algo,
                    workspace: bytes,
                    math,
                });
            }
        }
        if out.is_empty() {
            let math = if $tf32 {
                CUDNN_DEFAULT_MATH
            } else {
                CUDNN_FMA_MATH
            };
            $d.set_math(math)?;
            out.push(Ranked {
                algo: $default,
                workspace: $size($default)?,
                math,
            });
        }
        out
    }};
}

/// A workspace of `bytes` (none for 0), or `None` if it cannot be allocated.
fn workspace(dev: &CudaDevice, bytes: usize) -> Option<Option<CudaSlice<u8>>> {
    if bytes == 0 {
        return Some(None);
    }
    // SAFETY: cuDNN's scratch; nothing reads it before cuDNN writes it.
    unsafe { dev.alloc::<u8>(bytes) }.ok().map(Some)
}

/// The device pointer of a workspace (null for none), its size, and the guard to hold until
/// the call that uses it is queued.
fn workspace_ptr<'a>(
    ws: &'a mut Option<CudaSlice<u8>>,
    stream: &'a CudaStream,
) -> (*mut c_void, usize, Option<SyncOnDrop<'a>>) {
    match ws {
        Some(ws) => {
            let len = ws.len();
            let (p, sync) = ws.device_ptr_mut(stream);
            (p as *mut c_void, len, Some(sync))
        }
        None => (std::ptr::null_mut(), 0, None),
    }
}

/// Whether cuDNN refused to start an algorithm for these operands (not supported for them, or a
/// pointer's alignment), so that the next in the ranking may run; other errors are errors.
fn refused(e: &CudnnError) -> bool {
    (3000..4000).contains(&(e.0 as u32))
        || e.0 == sys::cudnnStatus_t::CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER
}

/// Runs `call(algo, workspace, workspace bytes)` (one cuDNN call of `what` for the shape `key`)
/// with the first algorithm of `ranked` whose workspace can be allocated and that cuDNN does
/// not refuse ([`refused`]: it is then dropped from the shape's ranking), its math set on `d`.
fn run_ranked<A: Copy + PartialEq + Debug>(
    dev: &CudaDevice,
    rankings: &Rankings<A>,
    key: &Key,
    ranked: &[Ranked<A>],
    d: &ConvDescriptors,
    what: &str,
    mut call: impl FnMut(A, *mut c_void, usize) -> std::result::Result<(), CudnnError>,
) -> Result<()> {
    let stream = dev.cuda_stream();
    let mut skipped = Vec::new();
    for r in ranked {
        let Some(mut ws) = workspace(dev, r.workspace) else {
            skipped.push(format!(
                "{:?}: {} bytes of workspace not allocated",
                r.algo, r.workspace
            ));
            continue;
        };
        d.set_math(r.math)?;
        let (ws_ptr, ws_len, _ws_guard) = workspace_ptr(&mut ws, &stream);
        match call(r.algo, ws_ptr, ws_len) {
            Ok(()) => return Ok(()),
            Err(e) if refused(&e) => {
                skipped.push(format!("{:?}: {:?}{}", r.algo, e.0, last_error()));
                rankings.drop_algo(key, r.algo);
            }
            Err(e) => candle_core::bail!(
                "cuDNN {what} of {:?} with {:?} ({:?}, {} bytes of workspace): {:?}{}",
                key.2,
                r.algo,
                r.math,
                r.workspace,
                e.0,
                last_error()
            ),
        }
    }
    candle_core::bail!(
        "cuDNN {what} of {:?}: no algorithm ran ({})",
        key.2,
        if skipped.is_empty() {
            "none left in the ranking".to_string()
        } else {
            skipped.join("; ")
        }
    )
}

fn check_len(what: &str, have: usize, need: usize, plan: &BatchedConv) -> Result<()> {
    if have < need {
        candle_core::bail!("cuDNN conv: {what} holds {have} values, {plan:?} needs {need}");
    }
    Ok(())
}

/// `y (N, Co, Ho, Wo)` of `x (N, C, H, W)` and `w (Co, C, k, k)`, plus `bias[c]` when given
/// (`Co` values, written over the output first, which cuDNN then adds into with β = 1).
pub fn forward(
    dev: &CudaDevice,
    plan: &BatchedConv,
    x: &CudaView<f32>,
    w: &CudaView<f32>,
    bias: Option<&CudaView<f32>>,
) -> Result<CudaSlice<f32>> {
    use sys::cudnnConvolutionFwdAlgo_t as Algo;
    check_len("x", x.len(), plan.input_len(), plan)?;
    check_len("w", w.len(), plan.weight_len(), plan)?;
    let tf32 = candle_core::cuda_backend::gemm_reduced_precision_f32();
    let h = handle(dev)?;
    let d = ConvDescriptors::new(plan, tf32)?;
    let key = (dev.id(), Product::Forward, *plan, tf32);
    let ranked = FORWARD.get(key, || {
        const COUNT: usize = Algo::CUDNN_CONVOLUTION_FWD_ALGO_COUNT as usize;
        // SAFETY: all-zero is a valid value of every field (algorithm 0, success, ...); cuDNN
        // overwrites the first `returned`.
        let mut perfs: [sys::cudnnConvolutionFwdAlgoPerf_t; COUNT] = unsafe { std::mem::zeroed() };
        let mut returned: c_int = 0;
        // SAFETY: live handle and descriptors; room for COUNT results.
        unsafe {
            result::get_convolution_forward_algorithm(
                h.raw,
                d.x.0,
                d.w.0,
                d.conv.0,
                d.y.0,
                COUNT as c_int,
                &mut returned,
                perfs.as_mut_ptr(),
            )
        }
        .map_err(cudnn_err("forward algorithms"))?;
        // SAFETY (the size): live handle and descriptors.
        let size = |algo| {
            unsafe {
                result::get_convolution_forward_workspace_size(
                    h.raw, d.x.0, d.w.0, d.conv.0, d.y.0, algo,
                )
            }
            .map_err(cudnn_err("forward workspace"))
        };
        let default = Algo::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
        Ok(ranking!(perfs, returned, tf32, d, size, default))
    })?;
    // SAFETY: cuDNN writes every element of y (β = 0), or adds into the bias written over every
    // element first (β = 1).
    let mut y = unsafe { dev.alloc::<f32>(plan.output_len())? };
    let beta: f32 = match bias {
        Some(b) => {
            super::conv::bias_fill(dev, plan, b, &y)?;
            1.0
        }
        None => 0.0,
    };
    let alpha: f32 = 1.0;
    // The pointers' guards end before the output is returned.
    {
        let stream = dev.cuda_stream();
        let (px, _gx) = x.device_ptr(&stream);
        let (pw, _gw) = w.device_ptr(&stream);
        let (py, _gy) = y.device_ptr_mut(&stream);
        run_ranked(
            dev,
            &FORWARD,
            &key,
            &ranked,
            &d,
            "forward",
            |algo, ws, ws_len| {
                // SAFETY: the descriptors describe x, w and y as they are (contiguous f32 NCHW,
                // lengths checked above and allocated for the plan); the workspace holds what the
                // algorithm asked for under its math; all on the handle's stream.
                unsafe {
                    result::convolution_forward(
                        h.raw,
                        &alpha as *const f32 as *const c_void,
                        d.x.0,
                        px as *const c_void,
                        d.w.0,
                        pw as *const c_void,
                        d.conv.0,
                        algo,
                        ws,
                        ws_len,
                        &beta as *const f32 as *const c_void,
                        d.y.0,
                        py as *mut c_void,
                    )
                }
            },
        )?;
    }
    Ok(y)
}

/// `dx (N, C, H, W)` of the output gradient `dy (N, Co, Ho, Wo)` and `w (Co, C, k, k)`.
pub fn input_grad(
    dev: &CudaDevice,
    plan: &BatchedConv,
    dy: &CudaView<f32>,
    w: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    use sys::cudnnConvolutionBwdDataAlgo_t as Algo;
    check_len("dy", dy.len(), plan.output_len(), plan)?;
    check_len("w", w.len(), plan.weight_len(), plan)?;
    let tf32 = candle_core::cuda_backend::gemm_reduced_precision_f32();
    let h = handle(dev)?;
    let d = ConvDescriptors::new(plan, tf32)?;
    let key = (dev.id(), Product::InputGrad, *plan, tf32);
    let ranked = INPUT_GRAD.get(key, || {
        const COUNT: usize = Algo::CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT as usize;
        // SAFETY: as in `forward`.
        let mut perfs: [sys::cudnnConvolutionBwdDataAlgoPerf_t; COUNT] =
            unsafe { std::mem::zeroed() };
        let mut returned: c_int = 0;
        // SAFETY: live handle and descriptors; room for COUNT results.
        unsafe {
            result::get_convolution_backward_data_algorithm(
                h.raw,
                d.w.0,
                d.y.0,
                d.conv.0,
                d.x.0,
                COUNT as c_int,
                &mut returned,
                perfs.as_mut_ptr(),
            )
        }
        .map_err(cudnn_err("input-gradient algorithms"))?;
        // SAFETY (the size): live handle and descriptors.
        let size = |algo| {
            unsafe {
                result::get_convolution_backward_data_workspace_size(
                    h.raw, d.w.0, d.y.0, d.conv.0, d.x.0, algo,
                )
            }
            .map_err(cudnn_err("input-gradient workspace"))
        };
        let default = Algo::CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
        Ok(ranking!(perfs, returned, tf32, d, size, default))
    })?;
    // SAFETY: cuDNN writes every element of dx (β = 0).
    let mut dx = unsafe { dev.alloc::<f32>(plan.input_len())? };
    let (alpha, beta): (f32, f32) = (1.0, 0.0);
    // The pointers' guards end before the output is returned.
    {
        let stream = dev.cuda_stream();
        let (pdy, _gdy) = dy.device_ptr(&stream);
        let (pw, _gw) = w.device_ptr(&stream);
        let (pdx, _gdx) = dx.device_ptr_mut(&stream);
        let what = "input gradient";
        run_ranked(
            dev,
            &INPUT_GRAD,
            &key,
            &ranked,
            &d,
            what,
            |algo, ws, ws_len| {
                // SAFETY: as in `forward`, with dy described by the output's descriptor and dx by
                // the input's.
                unsafe {
                    result::convolution_backward_data(
                        h.raw,
                        &alpha as *const f32 as *const c_void,
                        d.w.0,
                        pw as *const c_void,
                        d.y.0,
                        pdy as *const c_void,
                        d.conv.0,
                        algo,
                        ws,
                        ws_len,
                        &beta as *const f32 as *const c_void,
                        d.x.0,
                        pdx as *mut c_void,
                    )
                }
            },
        )?;
    }
    Ok(dx)
}

/// `dw (Co, C, k, k)` of the input `x (N, C, H, W)` and the output gradient `dy`.
pub fn weight_grad(
    dev: &CudaDevice,
    plan: &BatchedConv,
    x: &CudaView<f32>,
    dy: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    use sys::cudnnConvolutionBwdFilterAlgo_t as Algo;
    check_len("x", x.len(), plan.input_len(), plan)?;
    check_len("dy", dy.len(), plan.output_len(), plan)?;
    let tf32 = candle_core::cuda_backend::gemm_reduced_precision_f32();
    let h = handle(dev)?;
    let d = ConvDescriptors::new(plan, tf32)?;
    let key = (dev.id(), Product::WeightGrad, *plan, tf32);
    let ranked = WEIGHT_GRAD.get(key, || {
        const COUNT: usize = Algo::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT as usize;
        // SAFETY: as in `forward`.
        let mut perfs: [sys::cudnnConvolutionBwdFilterAlgoPerf_t; COUNT] =
            unsafe { std::mem::zeroed() };
        let mut returned: c_int = 0;
        // SAFETY: live handle and descriptors; room for COUNT results.
        unsafe {
            result::get_convolution_backward_filter_algorithm(
                h.raw,
                d.x.0,
                d.y.0,
                d.conv.0,
                d.w.0,
                COUNT as c_int,
                &mut returned,
                perfs.as_mut_ptr(),
            )
        }
        .map_err(cudnn_err("weight-gradient algorithms"))?;
        // SAFETY (the size): live handle and descriptors.
        let size = |algo| {
            unsafe {
                result::get_convolution_backward_filter_workspace_size(
                    h.raw, d.x.0, d.y.0, d.conv.0, d.w.0, algo,
                )
            }
            .map_err(cudnn_err("weight-gradient workspace"))
        };
        let default = Algo::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
        Ok(ranking!(perfs, returned, tf32, d, size, default))
    })?;
    // SAFETY: cuDNN writes every element of dw (β = 0).
    let mut dw = unsafe { dev.alloc::<f32>(plan.weight_len())? };
    let (alpha, beta): (f32, f32) = (1.0, 0.0);
    // The pointers' guards end before the output is returned.
    {
        let stream = dev.cuda_stream();
        let (px, _gx) = x.device_ptr(&stream);
        let (pdy, _gdy) = dy.device_ptr(&stream);
        let (pdw, _gdw) = dw.device_ptr_mut(&stream);
        let what = "weight gradient";
        run_ranked(
            dev,
            &WEIGHT_GRAD,
            &key,
            &ranked,
            &d,
            what,
            |algo, ws, ws_len| {
                // SAFETY: as in `forward`, with dy described by the output's descriptor and dw by
                // the filter's.
                unsafe {
                    result::convolution_backward_filter(
                        h.raw,
                        &alpha as *const f32 as *const c_void,
                        d.x.0,
                        px as *const c_void,
                        d.y.0,
                        pdy as *const c_void,
                        d.conv.0,
                        algo,
                        ws,
                        ws_len,
                        &beta as *const f32 as *const c_void,
                        d.w.0,
                        pdw as *mut c_void,
                    )
                }
            },
        )?;
    }
    Ok(dw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::geometry::ConvGeom;

    /// Whether a folder on `LD_LIBRARY_PATH` holds `libcudnn.so.9`.
    fn library_path_has_cudnn() -> bool {
        std::env::var("LD_LIBRARY_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|d| !d.is_empty())
            .any(|d| std::path::Path::new(d).join("libcudnn.so.9").is_file())
    }

    fn plan(
        n: usize,
        c: usize,
        hw: usize,
        c_out: usize,
        k: usize,
        s: usize,
        p: usize,
    ) -> BatchedConv {
        BatchedConv {
            n,
            c_out,
            geom: ConvGeom::new(c, hw, hw, k, s, p).unwrap(),
        }
    }

    #[test]
    fn device_cudnn_9_is_told_from_other_versions_and_named() {
        assert!(is_cudnn_9(92_801));
        assert!(is_cudnn_9(90_000));
        // cuDNN 8.9.7 numbers itself 8907; a cuDNN 10 would be 100000 and up.
        assert!(!is_cudnn_9(8_907));
        assert!(!is_cudnn_9(100_100));
        assert_eq!(version_name(92_801), "9.28.1");
        assert_eq!(version_name(91_002), "9.10.2");
    }

    #[test]
    fn device_cudnn_moves_on_only_from_algorithms_it_refuses_to_start() {
        use sys::cudnnStatus_t as S;
        for refused_status in [
            S::CUDNN_STATUS_NOT_SUPPORTED,
            S::CUDNN_STATUS_NOT_SUPPORTED_SHAPE,
            S::CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER,
        ] {
            assert!(refused(&CudnnError(refused_status)), "{refused_status:?}");
        }
        for failed in [
            S::CUDNN_STATUS_BAD_PARAM,
            S::CUDNN_STATUS_EXECUTION_FAILED,
            S::CUDNN_STATUS_INTERNAL_ERROR,
            S::CUDNN_STATUS_ALLOC_FAILED,
        ] {
            assert!(!refused(&CudnnError(failed)), "{failed:?}");
        }
    }

    /// Without cuDNN (CI has none), asking for it is a clear error, not a panic; with it on the
    /// library path (e.g. `LD_LIBRARY_PATH=…/nvidia/cudnn/lib`, from the `nvidia-cudnn-cu13`
    /// wheel), its descriptors of the UNets' conv shapes give the plans' output sizes. Both run
    /// without a GPU: the descriptors live on the host.
    #[test]
    fn device_cudnn_loads_from_the_library_path_and_sizes_each_conv_as_its_plan() {
        let plans = [
            // The blog UNet's 7×7 stem, a 3×3 block conv, a 1×1 shortcut, a stride-2 4×4
            // downsample, and a conv-transpose's conv at batch 256.
            plan(128, 1, 28, 28, 7, 1, 3),
            plan(128, 56, 28, 56, 3, 1, 1),
            plan(128, 112, 14, 56, 1, 1, 0),
            plan(128, 56, 28, 56, 4, 2, 1),
            plan(256, 112, 14, 112, 3, 2, 1),
        ];
        if !available() {
            assert!(
                !library_path_has_cudnn(),
                "libcudnn.so.9 is on LD_LIBRARY_PATH, but cuDNN did not load"
            );
            assert_eq!(version(), None);
            let err = ConvDescriptors::new(&plans[0], false)
                .err()
                .expect("no cuDNN, so no descriptors")
                .to_string();
            assert!(err.contains("LD_LIBRARY_PATH"), "{err}");
            return;
        }
        let v = version().expect("cuDNN loads");
        assert!(v.starts_with("9."), "cuDNN {v}: the bindings are cuDNN 9's");
        // cuDNN's own message joins an error's (the call exists in this cuDNN).
        let err = cudnn_err("test")(CudnnError(sys::cudnnStatus_t::CUDNN_STATUS_BAD_PARAM));
        assert!(
            err.to_string()
                .starts_with("cuDNN test: CUDNN_STATUS_BAD_PARAM"),
            "{err}"
        );
        for p in plans {
            for tf32 in [false, true] {
                let d = ConvDescriptors::new(&p, tf32).unwrap();
                let g = p.geom;
                assert_eq!(
                    d.output_dims().unwrap(),
                    [p.n, p.c_out, g.ho, g.wo],
                    "{p:?}"
                );
            }
        }
        // A size past cuDNN's ints is an error, not a wrapped value.
        let huge = BatchedConv {
            n: 1 << 31,
            ..plans[1]
        };
        assert!(ConvDescriptors::new(&huge, false).is_err());
    }
}
