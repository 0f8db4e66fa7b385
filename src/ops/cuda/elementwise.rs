//! The kernels of `elementwise.cu` behind [`crate::ops::channel_bias`] and [`crate::ops::in_place`] on CUDA.

use candle_core::backend::BackendStorage;
use candle_core::{CudaStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

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
    if bl.shape().elem_count() != want || super::grid_len(total).is_err() {
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
    super::grid_len(n)?;
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

/// Whether [`gelu`] takes `x`: f32 on CUDA, a size the kernels' `int` holds, and the kernel not
/// switched off ([`super::KERNELS_VAR`]: `gelu`).
pub fn supports_gelu(x: &Tensor) -> bool {
    super::enabled("gelu")
        && x.device().is_cuda()
        && x.dtype() == DType::F32
        && super::grid_len(x.elem_count()).is_ok()
}

/// PyTorch's `nn.GELU()` (the erf form) with its backward in one kernel each way; errs unless
/// [`supports_gelu`] holds.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if !supports_gelu(x) {
        candle_core::bail!(
            "CUDA GELU: {:?} {:?} not supported",
            x.dtype(),
            x.device().location()
        );
    }
    x.contiguous()?.apply_op1(Gelu)
}

/// `x → GELU(x)`, through `gelu_fwd`.
struct Gelu;

/// `(x, dy) → dx`, through `gelu_bwd`.
struct GeluGrad;

/// Launches `kernel` over the `n` elements of `inputs` (contiguous f32) into a new buffer.
fn map(kernel: &str, inputs: &[(&CudaStorage, &Layout)]) -> Result<(CudaStorage, Shape)> {
    let (s0, l0) = inputs[0];
    let n = l0.shape().elem_count();
    if inputs.iter().any(|(_, l)| l.shape().elem_count() != n) {
        candle_core::bail!("{kernel}: operands of different sizes");
    }
    let dev = s0.device().clone();
    // SAFETY: the kernel writes every element.
    let out = unsafe { dev.alloc::<f32>(n)? };
    if n > 0 {
        let views = inputs
            .iter()
            .map(|(s, l)| view(s, l))
            .collect::<Result<Vec<_>>>()?;
        let launch = Launch {
            kernel,
            cfg: grid_stride(n, THREADS),
            inputs: &views,
            outputs: &[&out],
            ints: &[n],
            floats: &[],
        };
        // SAFETY: `gelu_fwd` and `gelu_bwd` take (inputs…, out, n), every buffer n long.
        unsafe { KERNELS.launch(&dev, launch) }?;
    }
    Ok((CudaStorage::wrap_cuda_slice(out, dev), l0.shape().clone()))
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "ddpm-cuda-gelu"
    }

    cuda_only_cpu_fwd!(op1);

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        map("gelu_fwd", &[(s, l)])
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&dy.contiguous()?, &GeluGrad)?))
    }
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "ddpm-cuda-gelu-grad"
    }

    cuda_only_cpu_fwd!(op2);

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        map("gelu_bwd", &[(xs, xl), (gs, gl)])
    }
}
