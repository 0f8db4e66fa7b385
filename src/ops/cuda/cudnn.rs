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
//! operands (one it refuses as not supported is not tried again for the shape), with strict
//! float32 math (`CUDNN_FMA_MATH`) unless TF32 is on (`--tf32`, as for cuBLAS). The ranking is
//! asked once per shape and kept. Like PyTorch's default, that may be an algorithm whose sums
//! use atomics, so two runs can differ in the last bits; `im2col` keeps a run repeatable.
//! `auto` times each algorithm of the ranking too ([`auto_candidates`]), as PyTorch's
//! `cudnn.benchmark` does.
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
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaStream, CudaView, DevicePtr, DevicePtrMut, SyncOnDrop,
};
use candle_core::cuda_backend::{DeviceId, WrapErr};
use candle_core::{CudaDevice, Result};
use cudarc::cudnn::{result, result::CudnnError, sys};

use crate::ops::batched_conv::BatchedConv;
use crate::ops::conv_tuner::Product;
use crate::ops::implicit_conv::ConvAlgo;

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
    /// The descriptors of `plan`, the conv's math strict float32 (`CUDNN_FMA_MATH`) until a
    /// ranking or a run sets its own. Errs if cuDNN does not load, a size does not fit its
    /// `int`s, or cuDNN's output size differs from the plan's.
    pub fn new(plan: &BatchedConv) -> Result<Self> {
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
        descs.set_math(sys::cudnnMathType_t::CUDNN_FMA_MATH)?;
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

/// A shape's ranking: its algorithms in cuDNN's order (at most [`MOST_ALGOS`]), and which of
/// them cuDNN has refused as not supported for the shape (a bit per place), which no call
/// tries again.
struct Ranking<A> {
    entries: Vec<Ranked<A>>,
    refused: AtomicU8,
    /// The place that ran last, plus one (0: none yet), to note a change of algorithm.
    last_ran: AtomicU8,
}

/// Each shape's ranking.
type Table<A> = HashMap<Key, Arc<Ranking<A>>>;

/// The rankings asked so far, per product's algorithm type.
struct Rankings<A>(LazyLock<Mutex<Table<A>>>);

impl<A: Copy> Rankings<A> {
    const fn new() -> Self {
        Rankings(LazyLock::new(|| Mutex::new(HashMap::new())))
    }

    /// The ranking of `key`, asked of `rank` the first time (should two threads ask at once,
    /// the first kept is everyone's).
    fn get(
        &self,
        key: Key,
        rank: impl FnOnce() -> Result<Vec<Ranked<A>>>,
    ) -> Result<Arc<Ranking<A>>> {
        if let Some(r) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(r.clone());
        }
        let mut entries = rank()?;
        entries.truncate(MOST_ALGOS);
        let ranking = Arc::new(Ranking {
            entries,
            refused: AtomicU8::new(0),
            last_ran: AtomicU8::new(0),
        });
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(ranking)
            .clone())
    }
}

/// Which of a shape's ranked algorithms a call tries first. Whichever it is, should its
/// workspace not fit or cuDNN refuse it, the others follow in cuDNN's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The heuristics' first (`DDPM_LAB_CONV_ALGO=cudnn`).
    First,
    /// The algorithm of this number (cuDNN's numbering of the product's algorithms), where the
    /// ranking holds it: one of `auto`'s candidates.
    Algo(u32),
}

/// One of cuDNN's three conv operations: what they share (a ranking of algorithms per shape,
/// a workspace per algorithm) and where they differ.
///
/// # Safety
/// All-zero bytes must be a valid [`Operation::Perf`] (an algorithm, status and math of 0 are
/// valid values of their enums), and `rank` and `workspace` must call cuDNN's functions of this
/// operation with the descriptors in their roles.
unsafe trait Operation {
    /// cuDNN's algorithm type for the operation.
    type Algo: Copy + PartialEq + Debug + Send + 'static;
    /// cuDNN's ranking entry for it (`cudnn…AlgoPerf_t`).
    type Perf: Copy;
    /// How many algorithms cuDNN has for it (at most [`MOST_ALGOS`]).
    const COUNT: usize;
    /// The product, as the rankings are kept.
    const PRODUCT: Product;
    /// Its name in errors.
    const WHAT: &'static str;
    /// The algorithm PyTorch falls back on, run should cuDNN rank none.
    const DEFAULT: Self::Algo;
    /// The rankings asked so far.
    fn rankings() -> &'static Rankings<Self::Algo>;
    /// An entry's algorithm, status and math.
    fn entry(p: &Self::Perf) -> (Self::Algo, sys::cudnnStatus_t, sys::cudnnMathType_t);
    /// An algorithm's number in cuDNN's numbering.
    fn id(algo: Self::Algo) -> u32;
    /// cuDNN's ranking for `d` (`cudnnGet…Algorithm_v7`) into `perfs`: how many it filled.
    ///
    /// # Safety
    /// `h` and `d` live.
    unsafe fn rank(
        h: &Handle,
        d: &ConvDescriptors,
        perfs: &mut [Self::Perf],
    ) -> std::result::Result<usize, CudnnError>;
    /// The workspace `algo` needs for `d` with the math set on it.
    ///
    /// # Safety
    /// `h` and `d` live.
    unsafe fn workspace(
        h: &Handle,
        d: &ConvDescriptors,
        algo: Self::Algo,
    ) -> std::result::Result<usize, CudnnError>;
    /// Queues `out = α·op(a, b) + β·out` by `algo` with the workspace `ws` of `ws_len` bytes:
    /// `(a, b, out)` are `(x, w, y)` for the forward product, `(w, dy, dx)` for the input
    /// gradient and `(x, dy, dw)` for the weight gradient; `alpha` and `beta` point to f32s.
    ///
    /// # Safety
    /// `h` and `d` live; the pointers are the device buffers that `d` describes in those roles,
    /// on `h`'s stream, and `ws` holds what `algo` needs under the math set on `d`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn execute(
        h: &Handle,
        d: &ConvDescriptors,
        algo: Self::Algo,
        ws: *mut c_void,
        ws_len: usize,
        scale: (f32, f32),
        a: *const c_void,
        b: *const c_void,
        out: *mut c_void,
    ) -> std::result::Result<(), CudnnError>;
}

/// The most algorithms any of the operations has (the forward product's 8).
const MOST_ALGOS: usize = 8;

/// Implements [`Operation`] for `$op` with cuDNN's functions and types of that operation; the
/// ranking's and the workspace query's descriptor arguments are given in cuDNN's order, then
/// the operation's call and the descriptors of its operands `(a, b, out)`.
macro_rules! operation {
    ($op:ident, $algo:ty, $perf:ty, $count:expr, $product:expr, $what:expr, $default:expr,
     $rankings:ident, $get:path, $size:path, ($($desc:ident),+), $exec:path,
     ($da:ident, $db:ident, $dout:ident)) => {
        /// The conv operation of its name (an [`Operation`]).
        struct $op;

        static $rankings: Rankings<$algo> = Rankings::new();

        // SAFETY: the perf structs' fields are enums with a 0 variant, a float and ints; the
        // functions are this operation's, with the descriptors in the order cuDNN takes them.
        unsafe impl Operation for $op {
            type Algo = $algo;
            type Perf = $perf;
            const COUNT: usize = $count as usize;
            const PRODUCT: Product = $product;
            const WHAT: &'static str = $what;
            const DEFAULT: $algo = $default;

            fn rankings() -> &'static Rankings<$algo> {
                &$rankings
            }

            fn entry(p: &$perf) -> ($algo, sys::cudnnStatus_t, sys::cudnnMathType_t) {
                (p.algo, p.status, p.mathType)
            }

            fn id(algo: $algo) -> u32 {
                algo as u32
            }

            unsafe fn rank(
                h: &Handle,
                d: &ConvDescriptors,
                perfs: &mut [$perf],
            ) -> std::result::Result<usize, CudnnError> {
                let mut returned: c_int = 0;
                let room = c_int::try_from(perfs.len()).unwrap_or(c_int::MAX);
                // SAFETY: live handle and descriptors (the caller's); room for `room` entries.
                unsafe { $get(h.raw, $(d.$desc.0),+, room, &mut returned, perfs.as_mut_ptr()) }?;
                Ok(usize::try_from(returned).unwrap_or(0).min(perfs.len()))
            }

            unsafe fn workspace(
                h: &Handle,
                d: &ConvDescriptors,
                algo: $algo,
            ) -> std::result::Result<usize, CudnnError> {
                // SAFETY: live handle and descriptors (the caller's).
                unsafe { $size(h.raw, $(d.$desc.0),+, algo) }
            }

            unsafe fn execute(
                h: &Handle,
                d: &ConvDescriptors,
                algo: $algo,
                ws: *mut c_void,
                ws_len: usize,
                (alpha, beta): (f32, f32),
                a: *const c_void,
                b: *const c_void,
                out: *mut c_void,
            ) -> std::result::Result<(), CudnnError> {
                // SAFETY: the caller's contract; cuDNN reads the scales as f32 for float data.
                unsafe {
                    $exec(
                        h.raw,
                        &alpha as *const f32 as *const c_void,
                        d.$da.0,
                        a,
                        d.$db.0,
                        b,
                        d.conv.0,
                        algo,
                        ws,
                        ws_len,
                        &beta as *const f32 as *const c_void,
                        d.$dout.0,
                        out,
                    )
                }
            }
        }
    };
}

operation!(
    Forward,
    sys::cudnnConvolutionFwdAlgo_t,
    sys::cudnnConvolutionFwdAlgoPerf_t,
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
    Product::Forward,
    "forward",
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
    FORWARD,
    result::get_convolution_forward_algorithm,
    result::get_convolution_forward_workspace_size,
    (x, w, conv, y),
    result::convolution_forward,
    (x, w, y)
);
operation!(
    InputGrad,
    sys::cudnnConvolutionBwdDataAlgo_t,
    sys::cudnnConvolutionBwdDataAlgoPerf_t,
    sys::cudnnConvolutionBwdDataAlgo_t::CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
    Product::InputGrad,
    "input gradient",
    sys::cudnnConvolutionBwdDataAlgo_t::CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
    INPUT_GRAD,
    result::get_convolution_backward_data_algorithm,
    result::get_convolution_backward_data_workspace_size,
    (w, y, conv, x),
    result::convolution_backward_data,
    (w, y, x)
);
operation!(
    WeightGrad,
    sys::cudnnConvolutionBwdFilterAlgo_t,
    sys::cudnnConvolutionBwdFilterAlgoPerf_t,
    sys::cudnnConvolutionBwdFilterAlgo_t::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
    Product::WeightGrad,
    "weight gradient",
    sys::cudnnConvolutionBwdFilterAlgo_t::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
    WEIGHT_GRAD,
    result::get_convolution_backward_filter_algorithm,
    result::get_convolution_backward_filter_workspace_size,
    (x, y, conv, w),
    result::convolution_backward_filter,
    (x, y, w)
);

/// The ranking of operation `O` for `d`: the algorithms cuDNN supports for the shape, in its
/// order, each with the math it will run with and its workspace under that math (an algorithm
/// whose size cannot be asked is left out). With `tf32` an algorithm keeps the math cuDNN
/// ranked it with (TF32 tensor cores allowed, never a conversion to half precision); without,
/// only those ranked with FMA or the default math are kept, and they run with
/// `CUDNN_FMA_MATH`, which keeps the default math's off TF32. Should none be left,
/// [`Operation::DEFAULT`] stands alone.
fn ranking<O: Operation>(
    h: &Handle,
    d: &ConvDescriptors,
    tf32: bool,
) -> Result<Vec<Ranked<O::Algo>>> {
    use sys::cudnnMathType_t::{CUDNN_DEFAULT_MATH, CUDNN_FMA_MATH, CUDNN_TENSOR_OP_MATH};
    // The heuristics rank for the math set on the conv: set it here, as a kept descriptor
    // holds the math of the last algorithm that ran.
    let base = if tf32 {
        CUDNN_DEFAULT_MATH
    } else {
        CUDNN_FMA_MATH
    };
    d.set_math(base)?;
    // SAFETY: all-zero is a valid Perf (the trait's contract); cuDNN overwrites what it ranks.
    let mut perfs: [O::Perf; MOST_ALGOS] = unsafe { std::mem::zeroed() };
    let room = O::COUNT.min(MOST_ALGOS);
    // SAFETY: live handle and descriptors.
    let filled = unsafe { O::rank(h, d, &mut perfs[..room]) }.map_err(cudnn_err(O::WHAT))?;
    let mut out = Vec::new();
    for p in &perfs[..filled] {
        let (algo, status, ranked_math) = O::entry(p);
        if status != sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            continue;
        }
        let math = match (ranked_math, tf32) {
            (CUDNN_FMA_MATH | CUDNN_DEFAULT_MATH, false) => CUDNN_FMA_MATH,
            (m @ (CUDNN_FMA_MATH | CUDNN_DEFAULT_MATH | CUDNN_TENSOR_OP_MATH), true) => m,
            _ => continue,
        };
        if d.set_math(math).is_err() {
            continue;
        }
        // SAFETY: live handle and descriptors.
        if let Ok(workspace) = unsafe { O::workspace(h, d, algo) } {
            out.push(Ranked {
                algo,
                workspace,
                math,
            });
        }
    }
    if out.is_empty() {
        d.set_math(base)?;
        // SAFETY: live handle and descriptors.
        let workspace = unsafe { O::workspace(h, d, O::DEFAULT) }.map_err(cudnn_err(O::WHAT))?;
        out.push(Ranked {
            algo: O::DEFAULT,
            workspace,
            math: base,
        });
    }
    Ok(out)
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

/// A shape's ranking, with this thread's handle and the shape's descriptors to run it with.
struct Ready<A> {
    ranking: Arc<Ranking<A>>,
    h: Rc<Handle>,
    d: Rc<ConvDescriptors>,
    tf32: bool,
}

/// The most shapes whose descriptors a thread keeps ([`descriptors`]).
const KEPT_DESCRIPTORS: usize = 256;

thread_local! {
    /// This thread's descriptors of each conv shape it has run, so that a conv does not make
    /// and free four of them on every call (a few microseconds of host time each, many times a
    /// step).
    static DESCRIPTORS: RefCell<HashMap<BatchedConv, Rc<ConvDescriptors>>> =
        RefCell::new(HashMap::new());
}

/// This thread's descriptors of `plan`, made on first use. Every ranking and run sets the math
/// it works with, so a kept one serves every operation of the shape under either TF32
/// setting.
fn descriptors(plan: &BatchedConv) -> Result<Rc<ConvDescriptors>> {
    let kept = DESCRIPTORS
        .try_with(|d| d.borrow().get(plan).cloned())
        .ok()
        .flatten();
    if let Some(d) = kept {
        return Ok(d);
    }
    let d = Rc::new(ConvDescriptors::new(plan)?);
    let _ = DESCRIPTORS.try_with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() >= KEPT_DESCRIPTORS {
            kept.clear();
        }
        kept.insert(*plan, d.clone());
    });
    Ok(d)
}

/// The ranking of operation `O` for `plan` with the TF32 setting of now (asked of cuDNN on the
/// shape's first use), ready to run on the thread, with `dev`'s context current.
fn ranking_of<O: Operation>(dev: &CudaDevice, plan: &BatchedConv) -> Result<Ready<O::Algo>> {
    // cuDNN works on the thread's current context, as candle's own launches make sure of.
    dev.cuda_stream().context().bind_to_thread().w()?;
    let tf32 = candle_core::cuda_backend::gemm_reduced_precision_f32();
    let h = handle(dev)?;
    let d = descriptors(plan)?;
    let key = (dev.id(), O::PRODUCT, *plan, tf32);
    let ranking = O::rankings().get(key, || ranking::<O>(&h, &d, tf32))?;
    Ok(Ready {
        ranking,
        h,
        d,
        tf32,
    })
}

/// The most workspace an algorithm that `auto` times may take: 1 GiB (PyTorch's benchmark
/// mode likewise leaves out what it cannot allocate; a larger workspace would stay in the
/// memory pool for the rest of the run).
const AUTO_WORKSPACE_MAX: usize = 1 << 30;

/// cuDNN's candidates for `auto` for `product` of `plan`: [`ConvAlgo::Cudnn`] (the heuristics'
/// first, whatever its workspace, as `cudnn` runs it) and each other algorithm of the shape's
/// ranking whose workspace is at most [`AUTO_WORKSPACE_MAX`], by number. Asks the ranking if
/// need be.
pub fn auto_candidates(
    dev: &CudaDevice,
    product: Product,
    plan: &BatchedConv,
) -> Result<Vec<ConvAlgo>> {
    Ok(match product {
        Product::Forward => candidates_of::<Forward>(&ranking_of::<Forward>(dev, plan)?.ranking),
        Product::InputGrad => {
            candidates_of::<InputGrad>(&ranking_of::<InputGrad>(dev, plan)?.ranking)
        }
        Product::WeightGrad => {
            candidates_of::<WeightGrad>(&ranking_of::<WeightGrad>(dev, plan)?.ranking)
        }
    })
}

/// The candidates of [`auto_candidates`] from a ranking.
fn candidates_of<O: Operation>(ranking: &Ranking<O::Algo>) -> Vec<ConvAlgo> {
    let mut out = vec![ConvAlgo::Cudnn];
    for r in ranking.entries.iter().skip(1) {
        if let Ok(id) = u8::try_from(O::id(r.algo)) {
            if r.workspace <= AUTO_WORKSPACE_MAX {
                out.push(ConvAlgo::CudnnAlgo(id));
            }
        }
    }
    out
}

/// `out = op(a, b) + beta·out` by operation `O` for `plan` (`(a, b, out)` as in
/// [`Operation::execute`], `out` allocated for the plan), with the ranked algorithm `pick`
/// names, or should its workspace not fit or cuDNN refuse it ([`refused`]), the next in
/// cuDNN's order that runs. An algorithm cuDNN refuses as not supported for the shape is not
/// tried again; one it refuses for a pointer's alignment (the operands of one call) is.
fn run<O: Operation>(
    dev: &CudaDevice,
    plan: &BatchedConv,
    pick: Pick,
    a: &CudaView<f32>,
    b: &CudaView<f32>,
    mut out: CudaSlice<f32>,
    beta: f32,
) -> Result<CudaSlice<f32>> {
    let Ready {
        ranking,
        h,
        d,
        tf32,
    } = ranking_of::<O>(dev, plan)?;
    let n = ranking.entries.len();
    let wanted = match pick {
        Pick::First => 0,
        Pick::Algo(id) => (0..n)
            .find(|&k| O::id(ranking.entries[k].algo) == id)
            .unwrap_or(0),
    };
    let refused_before = ranking.refused.load(Ordering::Relaxed);
    let places: Vec<usize> = std::iter::once(wanted)
        .chain((0..n).filter(|&k| k != wanted))
        .filter(|&k| k < n && refused_before & (1 << k) == 0)
        .collect();
    let stream = dev.cuda_stream();
    let mut skipped = Vec::new();
    let ran = {
        // The pointers' guards end before the output is returned.
        let (pa, _ga) = a.device_ptr(&stream);
        let (pb, _gb) = b.device_ptr(&stream);
        let (pout, _gout) = out.device_ptr_mut(&stream);
        let mut left = places.into_iter();
        loop {
            let Some(place) = left.next() else {
                break false;
            };
            let r = ranking.entries[place];
            let Some(mut ws) = workspace(dev, r.workspace) else {
                skipped.push(format!(
                    "{:?}: {} bytes of workspace not allocated",
                    r.algo, r.workspace
                ));
                continue;
            };
            d.set_math(r.math)?;
            let (ws_ptr, ws_len, _ws_guard) = workspace_ptr(&mut ws, &stream);
            // SAFETY: the descriptors describe a, b and out as they are (contiguous f32 NCHW,
            // their lengths checked by the callers and out allocated for the plan); the
            // workspace holds what the algorithm asked for under its math, set just above; all
            // on the handle's stream.
            let queued = unsafe {
                O::execute(
                    &h,
                    &d,
                    r.algo,
                    ws_ptr,
                    ws_len,
                    (1.0, beta),
                    pa as *const c_void,
                    pb as *const c_void,
                    pout as *mut c_void,
                )
            };
            match queued {
                Ok(()) => {
                    note_ran::<O>(&ranking, place, plan, tf32);
                    break true;
                }
                Err(e) if refused(&e) => {
                    skipped.push(format!("{:?}: {:?}{}", r.algo, e.0, last_error()));
                    if e.0 != sys::cudnnStatus_t::CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER {
                        ranking.refused.fetch_or(1 << place, Ordering::Relaxed);
                    }
                }
                Err(e) => candle_core::bail!(
                    "cuDNN {} of {plan:?} with {:?} ({:?}, {} bytes of workspace): {:?}{}",
                    O::WHAT,
                    r.algo,
                    r.math,
                    r.workspace,
                    e.0,
                    last_error()
                ),
            }
        }
    };
    if ran {
        return Ok(out);
    }
    candle_core::bail!(
        "cuDNN {} of {plan:?}: no algorithm ran ({})",
        O::WHAT,
        if skipped.is_empty() {
            "none left in the ranking".to_string()
        } else {
            skipped.join("; ")
        }
    )
}

/// Notes for `bench` which algorithm ran (`place` of `ranking`) when it is not the one that
/// ran last (`bench` reports them with `DDPM_LAB_CONV_ALGO=cudnn`; `auto`'s timings name each
/// already).
fn note_ran<O: Operation>(
    ranking: &Ranking<O::Algo>,
    place: usize,
    plan: &BatchedConv,
    tf32: bool,
) {
    let mark = u8::try_from(place + 1).unwrap_or(u8::MAX);
    if ranking.last_ran.swap(mark, Ordering::Relaxed) == mark {
        return;
    }
    let r = ranking.entries[place];
    crate::ops::conv_tuner::note_cudnn(crate::ops::conv_tuner::CudnnRecord {
        product: O::PRODUCT.name(),
        conv: crate::ops::implicit_conv::ImplicitConv::forward(plan),
        tf32,
        algo: O::id(r.algo),
        workspace: r.workspace,
    });
}

/// Errs unless operand `what`, of `have` values, holds the `need` that `plan` reads.
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
    pick: Pick,
) -> Result<CudaSlice<f32>> {
    check_len("x", x.len(), plan.input_len(), plan)?;
    check_len("w", w.len(), plan.weight_len(), plan)?;
    // SAFETY: cuDNN writes every element of y (β = 0), or adds into the bias written over every
    // element first (β = 1).
    let y = unsafe { dev.alloc::<f32>(plan.output_len())? };
    let beta = match bias {
        Some(b) => {
            super::conv::bias_fill(dev, plan, b, &y)?;
            1.0
        }
        None => 0.0,
    };
    run::<Forward>(dev, plan, pick, x, w, y, beta)
}

/// `dx (N, C, H, W)` of the output gradient `dy (N, Co, Ho, Wo)` and `w (Co, C, k, k)`.
pub fn input_grad(
    dev: &CudaDevice,
    plan: &BatchedConv,
    dy: &CudaView<f32>,
    w: &CudaView<f32>,
    pick: Pick,
) -> Result<CudaSlice<f32>> {
    check_len("dy", dy.len(), plan.output_len(), plan)?;
    check_len("w", w.len(), plan.weight_len(), plan)?;
    // SAFETY: cuDNN writes every element of dx (β = 0).
    let dx = unsafe { dev.alloc::<f32>(plan.input_len())? };
    run::<InputGrad>(dev, plan, pick, w, dy, dx, 0.0)
}

/// `dw (Co, C, k, k)` of the input `x (N, C, H, W)` and the output gradient `dy`.
pub fn weight_grad(
    dev: &CudaDevice,
    plan: &BatchedConv,
    x: &CudaView<f32>,
    dy: &CudaView<f32>,
    pick: Pick,
) -> Result<CudaSlice<f32>> {
    check_len("x", x.len(), plan.input_len(), plan)?;
    check_len("dy", dy.len(), plan.output_len(), plan)?;
    // SAFETY: cuDNN writes every element of dw (β = 0).
    let dw = unsafe { dev.alloc::<f32>(plan.weight_len())? };
    run::<WeightGrad>(dev, plan, pick, x, dy, dw, 0.0)
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
    fn device_cudnn_auto_times_the_first_and_each_other_algorithm_whose_workspace_fits() {
        use sys::cudnnConvolutionFwdAlgo_t as A;
        let ranked = |algo: A, workspace: usize| Ranked {
            algo,
            workspace,
            math: sys::cudnnMathType_t::CUDNN_FMA_MATH,
        };
        let big = AUTO_WORKSPACE_MAX + 1;
        let ranking = Ranking {
            entries: vec![
                ranked(A::CUDNN_CONVOLUTION_FWD_ALGO_FFT, big),
                ranked(A::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, 0),
                ranked(A::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, big),
                ranked(A::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, AUTO_WORKSPACE_MAX),
            ],
            refused: AtomicU8::new(0),
            last_ran: AtomicU8::new(0),
        };
        // The heuristics' first whatever its workspace (as `cudnn`), then by number.
        assert_eq!(
            candidates_of::<Forward>(&ranking),
            [
                ConvAlgo::Cudnn,
                ConvAlgo::CudnnAlgo(1),
                ConvAlgo::CudnnAlgo(6)
            ]
        );
        assert_eq!(
            ConvAlgo::CudnnAlgo(6).name(),
            "cudnn-algo-6",
            "WINOGRAD is cuDNN's forward algorithm 6"
        );
        let empty = Ranking::<A> {
            entries: Vec::new(),
            refused: AtomicU8::new(0),
            last_ran: AtomicU8::new(0),
        };
        assert_eq!(candidates_of::<Forward>(&empty), [ConvAlgo::Cudnn]);
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
            let err = ConvDescriptors::new(&plans[0])
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
            let d = ConvDescriptors::new(&p).unwrap();
            let g = p.geom;
            assert_eq!(
                d.output_dims().unwrap(),
                [p.n, p.c_out, g.ho, g.wo],
                "{p:?}"
            );
            // Each math a ranking or a run may set is accepted for the shape.
            use sys::cudnnMathType_t::{CUDNN_DEFAULT_MATH, CUDNN_FMA_MATH, CUDNN_TENSOR_OP_MATH};
            for math in [CUDNN_DEFAULT_MATH, CUDNN_TENSOR_OP_MATH, CUDNN_FMA_MATH] {
                d.set_math(math).unwrap();
            }
        }
        // A thread keeps one set of descriptors per shape.
        let kept = descriptors(&plans[1]).unwrap();
        assert!(Rc::ptr_eq(&kept, &descriptors(&plans[1]).unwrap()));
        assert!(!Rc::ptr_eq(&kept, &descriptors(&plans[2]).unwrap()));
        // A size past cuDNN's ints is an error, not a wrapped value.
        let huge = BatchedConv {
            n: 1 << 31,
            ..plans[1]
        };
        assert!(ConvDescriptors::new(&huge).is_err());
    }
}
