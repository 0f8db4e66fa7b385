//! The kernels of `elementwise.cu` behind [`crate::ops::channel_bias`] and [`crate::ops::in_place`] on CUDA.

use candle_core::backend::BackendStorage;
use candle_core::{CudaStorage, Layout, Result, Shape};

use super::{grid_stride, view, Launch, Module};

/// The kernels' PTX (compiled for compute capability 7.5; the driver compiles it for the GPU).
pub(super) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/elementwise.ptx"));
/// The kernels of `elementwise.cu`.
const KERNELS: Module = Module {
    name: "ddpm_lab_elementwise",
    ptx: PTX,
};
/// Threads per block.
const THREADS: u32 = 256;

/// `x (N, C, P…) + b`, `b` holding `C` values (one per channel) or `N·C` (`per_image`); both
/// contiguous f32. Errs when `N·C·P` does not fit the kernel's `int`.
pub fn channel_bias_add(
    xs: &CudaStorage,
    xl: &Layout,
    bs: &CudaStorage,
    bl: &Layout,
    per_image: bool,
) -> Result<(CudaStorage, Shape)> {
    let dims = xl.dims();
    let (n, c) = (dims[0], dims[1]);
    let total = xl.shape().elem_count();
    let positions = total / (n * c).max(1);
    let want = if per_image { n * c } else { c };
    if bl.shape().elem_count() != want || super::int(total).is_err() {
        candle_core::bail!(
            "CUDA channel bias: input {dims:?} with a bias of {:?}",
            bl.dims()
        );
    }
    let dev = xs.device().clone();
    // SAFETY: the kernel writes every element.
    let y = unsafe { dev.alloc::<f32>(total)? };
    if total > 0 {
        let launch = Launch {
            kernel: "channel_bias_add",
            cfg: grid_stride(total, THREADS),
            inputs: &[view(xs, xl)?, view(bs, bl)?],
            outputs: &[&y],
            ints: &[total, positions, c, per_image as usize],
            floats: &[],
        };
        // SAFETY: the parameters match `channel_bias_add`; x and y hold `total` elements, b
        // `want` (every row index it reads is below that).
        unsafe { KERNELS.launch(&dev, launch) }?;
    }
    Ok((CudaStorage::wrap_cuda_slice(y, dev), xl.shape().clone()))
}

/// `y −= x` in `y`'s buffer (`y` and `x` contiguous f32 of `n` elements, `y` from its start).
pub fn sub_in_place(
    ys: &mut CudaStorage,
    yl: &Layout,
    xs: &CudaStorage,
    xl: &Layout,
) -> Result<()> {
    let n = yl.shape().elem_count();
    if yl.contiguous_offsets() != Some((0, n)) || xl.shape().elem_count() != n {
        candle_core::bail!(
            "CUDA in-place subtract: {:?} from {:?} (a whole contiguous tensor)",
            xl.dims(),
            yl.dims()
        );
    }
    super::int(n)?;
    if n == 0 {
        return Ok(());
    }
    let dev = ys.device().clone();
    let x = view(xs, xl)?;
    let y = ys.as_cuda_slice_mut::<f32>()?;
    let launch = Launch {
        kernel: "sub_in_place",
        cfg: grid_stride(n, THREADS),
        inputs: &[x],
        outputs: &[&*y],
        ints: &[n],
        floats: &[],
    };
    // SAFETY: the parameters match `sub_in_place`; x holds n elements and y at least n from its
    // start (checked above).
    unsafe { KERNELS.launch(&dev, launch) }
}
