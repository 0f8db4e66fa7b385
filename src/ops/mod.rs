//! Custom CPU kernels for the UNet's hot ops, as candle custom ops with forward and backward.
//!
//! candle 0.11's generic CPU paths are slow for this model's training step (the input-gradient of
//! every conv goes through a direct conv-transpose loop, GroupNorm is a dozen small ops, depthwise
//! convs run one conv per channel). These ops compute the same maths with im2col + GEMM and fused
//! loops, over both cores, with fixed reduction splits so results stay deterministic.
//!
//! They only run on CPU `f32` tensors; [`fast_path`] tells callers when to use them. On the
//! other devices (CUDA, Metal) the convolutions go through [`device_conv`] (candle's `conv2d`
//! only, never its conv-transpose kernels) and the rest through candle's stock ops; [`route`]
//! says which. Setting the environment variable `DDPM_LAB_STOCK_OPS=1` (or calling
//! [`set_enabled`]) switches all of it off, for comparisons.

pub mod batched_conv;
pub mod channel_bias;
pub mod conv;
pub mod conv_transpose;
pub mod conv_tuner;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod depthwise;
pub mod depthwise_tiles;
pub mod device_conv;
pub mod device_linear_attention;
pub mod direct_conv;
pub mod elementwise;
pub mod gelu;
pub mod geometry;
pub mod group_norm;
pub mod implicit_conv;
pub mod in_place;
pub mod linear_attention;
pub mod multi_tensor;
mod reduce;
pub mod resample;
pub mod rms_norm;
pub mod scale_shift_silu;
pub mod scratch;
pub mod sgemm;
pub mod silu;
pub mod simd;
pub mod softmax;
mod storage;

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{DType, Tensor};

/// 0: not decided yet (read the environment), 1: on, 2: off.
static ENABLED: AtomicU8 = AtomicU8::new(0);

/// Whether the custom ops are switched on (default on unless `DDPM_LAB_STOCK_OPS` is set to a
/// value other than `0`).
pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let off = std::env::var("DDPM_LAB_STOCK_OPS")
                .map(|v| !v.is_empty() && v != "0")
                .unwrap_or(false);
            ENABLED.store(if off { 2 } else { 1 }, Ordering::Relaxed);
            !off
        }
    }
}

/// Switches the custom ops on or off for the whole process (layers built before keep working:
/// they check at every call).
pub fn set_enabled(on: bool) {
    ENABLED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether `t` can go through the custom CPU ops: they are enabled, and `t` is an `f32` tensor on
/// the CPU.
pub fn fast_path(t: &Tensor) -> bool {
    enabled() && t.device().is_cpu() && t.dtype() == DType::F32
}

/// The most elements ddpm-lab's CUDA kernels take in one grid-stride loop: its `int` index
/// plus one stride (at most 65,535 blocks of 1,024 threads) must stay below `i32::MAX`.
pub const DEVICE_LEN_MAX: usize = i32::MAX as usize - 65_535 * 1_024;

/// Which implementation a layer runs for a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// ddpm-lab's CPU kernels ([`fast_path`]: `f32` on the CPU).
    Cpu,
    /// Formulations made of candle ops that are fast on a GPU ([`device_conv`]): CUDA and Metal.
    Device,
    /// candle's stock ops: the custom ops switched off, or a CPU tensor of another dtype.
    Stock,
}

/// 0: no forced route, else `1 + Route as u8` ([`force_route`]).
static FORCED_ROUTE: AtomicU8 = AtomicU8::new(0);

/// Makes [`route`] answer `route` for every tensor (`None`: decide by device again), for the
/// whole process: the GPU formulations can then run, and be compared, on the CPU. A forced
/// [`Route::Cpu`] still falls back to [`Route::Stock`] where [`fast_path`] does not hold.
pub fn force_route(route: Option<Route>) {
    let v = match route {
        None => 0,
        Some(Route::Cpu) => 1,
        Some(Route::Device) => 2,
        Some(Route::Stock) => 3,
    };
    FORCED_ROUTE.store(v, Ordering::Relaxed);
}

/// The implementation for `t`: [`Route::Cpu`] where [`fast_path`] holds, [`Route::Device`] for
/// tensors on a GPU, [`Route::Stock`] otherwise or when the custom ops are switched off (unless
/// [`force_route`] says otherwise).
pub fn route(t: &Tensor) -> Route {
    match FORCED_ROUTE.load(Ordering::Relaxed) {
        2 => return Route::Device,
        3 => return Route::Stock,
        1 if fast_path(t) => return Route::Cpu,
        1 => return Route::Stock,
        _ => {}
    }
    if !enabled() {
        Route::Stock
    } else if !t.device().is_cpu() {
        Route::Device
    } else if t.dtype() == DType::F32 {
        Route::Cpu
    } else {
        Route::Stock
    }
}

/// The names of ddpm-lab's CUDA ops that composites of candle ops stand in for elsewhere
/// ([`stand_in`]): each CUDA op's `name()` and its stand-in's census entry, so that a census
/// counts them alike on any device.
pub mod cuda_op_names {
    /// The dense conv's products (forward, input gradient, weight gradient; `cuda::conv`).
    pub const GEMM_CONV: &str = "ddpm-cuda-gemm-conv";
    /// The dense conv with its bias (`cuda::conv`).
    pub const GEMM_CONV_BIAS: &str = "ddpm-cuda-gemm-conv-bias";
    /// The depthwise conv (`cuda::depthwise`).
    pub const DEPTHWISE_CONV: &str = "ddpm-cuda-depthwise-conv";
    /// The depthwise conv with a bias per image and channel (`cuda::depthwise`).
    pub const DEPTHWISE_CONV_PLANE_BIAS: &str = "ddpm-cuda-depthwise-conv-plane-bias";
    /// GroupNorm's backward pass (`cuda::group_norm`).
    pub const GROUP_NORM_BACKWARD: &str = "ddpm-cuda-group-norm-backward";
    /// Tensors flattened into one (`cuda::multi_tensor`; it launches outside candle's ops, so
    /// on CUDA too it counts under this name: `ops::multi_tensor`).
    pub const MULTI_TENSOR_GATHER: &str = "ddpm-cuda-multi-tensor-gather";
    /// Each tensor less its part of one flat tensor, in place (`cuda::multi_tensor`).
    pub const MULTI_TENSOR_SUB: &str = "ddpm-cuda-multi-tensor-sub";
    /// Each tensor's blend with another (`cuda::multi_tensor`).
    pub const MULTI_TENSOR_LERP: &str = "ddpm-cuda-multi-tensor-lerp";
}

/// Runs `f`, a composite of candle ops that stands in on the CPU for `cuda_op`, one op of
/// ddpm-lab's CUDA kernels, as that one op in a census of the ops a pass runs
/// (`candle_core::census`, `examples/op_census.rs`), so that a census on the CPU counts what
/// CUDA would run. On other devices (Metal runs these composites for real) it only runs `f`.
pub(crate) fn stand_in<R>(
    cuda_op: &'static str,
    device: &candle_core::Device,
    f: impl FnOnce() -> R,
) -> R {
    if device.is_cpu() {
        candle_core::census::as_one(cuda_op, f)
    } else {
        f()
    }
}

/// Runs `f` on a thread of rayon's pool (directly when already on one). A model pass issues a
/// few hundred parallel ops; started from a thread outside the pool, each would be handed to
/// the pool and the caller put to sleep until it finishes (a futex round trip per op), while
/// from a pool thread they run in place and only the idle worker is woken.
/// Other devices run `f` where they are called: their work does not go through rayon.
pub fn on_pool<R: Send>(device: &candle_core::Device, f: impl FnOnce() -> R + Send) -> R {
    if !device.is_cpu() || rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| f())
}

/// Process-wide CPU settings that the training step needs to be fast; call it at the start of
/// `main`, before any thread is spawned and before the first candle op.
///
/// - candle's own element-wise thread pool is made single-threaded (`CANDLE_NUM_THREADS=1`,
///   unless the user set it): it busy-waits on pinned worker threads, and next to the rayon pool
///   these kernels use on the same cores it cost the training step about 40% on a 2-core
///   machine (the pool is sized once, on first use).
/// - glibc's allocator keeps freed memory up to 32 MiB blocks on its heap instead of returning
///   it to the kernel after every op (each fresh activation buffer otherwise page-faults and is
///   zeroed by the kernel: 10–15% of a training step), and all threads share one heap: the
///   model's passes run on rayon workers, and with an arena per thread each kept its own freed
///   buffers (peak RSS of a batch-128 training run 1.6–2.6 GiB from run to run, 1.6 GiB with
///   one arena, at the same speed).
pub fn configure_cpu_threads() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Only called from `main` before other threads exist, so nothing reads the
        // environment concurrently.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The largest absolute difference between two tensors of one shape (the ops' tests compare
/// each kernel with its stock composite by it).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| {
            d.abs()?
                .flatten_all()?
                .max(0)?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()
        })
        .expect("tensors of one shape")
}
