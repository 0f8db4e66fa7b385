//! Softmax as one op with its analytic backward.
//!
//! candle-nn's `softmax` is five ops (max, subtract, exp, sum, divide) and autograd differentiates
//! each, `max` included (an equality mask against the broadcast maximum): about fifteen kernels
//! per softmax on a GPU, a tenth of the blog UNet's attention time. Here each way is one kernel
//! on CUDA or one loop on the CPU, over any axis in place (no transposed copies): forward,
//! candle's own fused `softmax_f32` over the last axis (the one
//! `candle_nn::ops::softmax_last_dim` launches) or `softmax.cu` over an inner one; backward,
//! `dx = y ⊙ (dy − Σ dy ⊙ y)` over the axis (`softmax.cu`).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// Softmax of `x` over axis `dim` (any device; f32 or f64 on the CPU, f32 on CUDA unless
/// `DDPM_LAB_CUDA_KERNELS` leaves `softmax` out; candle-nn's composite softmax elsewhere, and
/// when the custom ops are off, [`crate::ops::Route::Stock`]).
pub fn softmax(x: &Tensor, dim: usize) -> Result<Tensor> {
    if !fused(x, dim) {
        return candle_nn::ops::softmax(x, dim);
    }
    x.contiguous()?.apply_op1(Softmax { dim })
}

/// Whether [`softmax`] of `x` over `dim` runs as one op here (else candle-nn's composite).
fn fused(x: &Tensor, dim: usize) -> bool {
    fits_kernels(x, dim, "softmax")
}

/// Whether an op built of these softmax kernels runs for `x` over `dim`: not on candle's stock
/// route, a CPU tensor of f32 or f64, or an f32 CUDA tensor with `kernel` switched on
/// ([`crate::ops::cuda::KERNELS_VAR`]), within the CUDA kernels' sizes.
pub(crate) fn fits_kernels(x: &Tensor, dim: usize, kernel: &str) -> bool {
    let stock = crate::ops::route(x) == crate::ops::Route::Stock;
    let supported = match x.device() {
        candle_core::Device::Cpu => matches!(x.dtype(), DType::F32 | DType::F64),
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(_) => {
            x.dtype() == DType::F32 && crate::ops::cuda::enabled(kernel)
        }
        _ => {
            let _ = kernel;
            false
        }
    };
    // The CUDA kernels index with `int`s (rows and sizes).
    let fits = x.elem_count() <= crate::ops::DEVICE_LEN_MAX;
    !stock && supported && fits && dim < x.rank()
}

/// `dx = y ⊙ (dy − Σ_dim dy ⊙ y)`: the gradient through a softmax over `dim` from its output
/// `y`, as one op without a backward of its own. Where [`fits_kernels`] holds for `y`.
pub(crate) fn softmax_backward(y: &Tensor, dy: &Tensor, dim: usize) -> Result<Tensor> {
    y.contiguous()?
        .apply_op2_no_bwd(&dy.contiguous()?, &SoftmaxGrad { dim })
}

/// [`Softmax`]'s forward pass on a backend's storage, for ops built of several (CPU and CUDA).
pub(crate) trait SoftmaxStorage: BackendStorage {
    /// The softmax over `dim` of the contiguous data at `layout`, a contiguous new storage.
    fn softmax(&self, layout: &Layout, dim: usize) -> Result<Self>;
}

impl SoftmaxStorage for CpuStorage {
    fn softmax(&self, layout: &Layout, dim: usize) -> Result<Self> {
        Ok(Softmax { dim }.cpu_fwd(self, layout)?.0)
    }
}

#[cfg(feature = "cuda")]
impl SoftmaxStorage for candle_core::CudaStorage {
    fn softmax(&self, layout: &Layout, dim: usize) -> Result<Self> {
        Ok(Softmax { dim }.cuda_fwd(self, layout)?.0)
    }
}

/// A contiguous shape seen as `(outer, axis, inner)` around axis `dim`.
fn geometry(shape: &Shape, dim: usize) -> (usize, usize, usize) {
    let dims = shape.dims();
    let outer = dims[..dim].iter().product();
    let inner = dims[dim + 1..].iter().product();
    (outer, dims[dim], inner)
}

/// Softmax over axis `dim` of a contiguous tensor, with its backward ([`SoftmaxGrad`]).
#[derive(Debug, Clone, Copy)]
struct Softmax {
    dim: usize,
}

/// `(y, dy) → dx = y ⊙ (dy − Σ_dim dy ⊙ y)`: the gradient of [`Softmax`] from its output `y`.
#[derive(Debug, Clone, Copy)]
struct SoftmaxGrad {
    dim: usize,
}

/// Runs `f(base)` for the start of every line along the axis of an `(outer, axis, inner)`
/// geometry (its elements `inner` apart).
fn for_each_line(outer: usize, axis: usize, inner: usize, mut f: impl FnMut(usize)) {
    for o in 0..outer {
        for i in 0..inner {
            f(o * axis * inner + i);
        }
    }
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "ddpm-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        // Each line: the maximum subtracted, exponentials, their sum divided out.
        macro_rules! lines {
            ($src:expr, $t:ty, $g:expr) => {{
                let (src, (outer, axis, inner)): (&[$t], _) = ($src, $g);
                let mut out = vec![0 as $t; src.len()];
                for_each_line(outer, axis, inner, |base| {
                    let at = |a: usize| base + a * inner;
                    let max = (0..axis).fold(<$t>::NEG_INFINITY, |m, a| m.max(src[at(a)]));
                    let mut sum = 0 as $t;
                    for a in 0..axis {
                        out[at(a)] = (src[at(a)] - max).exp();
                        sum += out[at(a)];
                    }
                    for a in 0..axis {
                        out[at(a)] /= sum;
                    }
                });
                out
            }};
        }
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("softmax: the input must be contiguous");
        };
        let shape = layout.shape().clone();
        let g = geometry(&shape, self.dim);
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(lines!(&v[a..b], f32, g)),
            CpuStorage::F64(v) => CpuStorage::F64(lines!(&v[a..b], f64, g)),
            s => candle_core::bail!("softmax: {:?} on the CPU is not supported", s.dtype()),
        };
        Ok((out, shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (outer, axis, inner) = geometry(layout.shape(), self.dim);
        if inner > 1 {
            return crate::ops::cuda::softmax::inner_forward(storage, layout, outer, axis, inner);
        }
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        use candle_core::cuda_backend::{kernels, WrapErr};

        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("softmax: the input must be contiguous");
        };
        let src = storage.as_cuda_slice::<f32>()?.slice(a..b);
        let dev = storage.device().clone();
        let shape = layout.shape().clone();
        let el = shape.elem_count();
        // SAFETY: the kernel writes every element (one warp per row).
        let dst = unsafe { dev.alloc::<f32>(el)? };
        if el > 0 {
            // As candle_nn::ops::softmax_last_dim launches candle's kernel: one block of one
            // warp per row.
            let cfg = LaunchConfig {
                grid_dim: (outer as u32, 1, 1),
                block_dim: (1, 32, 1),
                shared_mem_bytes: 0,
            };
            let func = dev.get_or_load_func("softmax_f32", &kernels::REDUCE)?;
            let n_cols = i32::try_from(axis).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let mut builder = func.builder();
            builder.arg(&src);
            builder.arg(&dst);
            builder.arg(&n_cols);
            // SAFETY: the arguments are the kernel's (src, dst, n_cols), both buffers `el` long.
            unsafe { builder.launch(cfg) }.w()?;
        }
        Ok((candle_core::CudaStorage::wrap_cuda_slice(dst, dev), shape))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let op = SoftmaxGrad { dim: self.dim };
        Ok(Some(y.apply_op2_no_bwd(&dy.contiguous()?, &op)?))
    }
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "ddpm-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        macro_rules! lines {
            ($y:expr, $g:expr, $t:ty, $geom:expr) => {{
                let (y, g, (outer, axis, inner)): (&[$t], &[$t], _) = ($y, $g, $geom);
                let mut out = vec![0 as $t; y.len()];
                for_each_line(outer, axis, inner, |base| {
                    let at = |a: usize| base + a * inner;
                    let dot = (0..axis).fold(0 as $t, |s, a| s + g[at(a)] * y[at(a)]);
                    for a in 0..axis {
                        out[at(a)] = y[at(a)] * (g[at(a)] - dot);
                    }
                });
                out
            }};
        }
        let (Some((y0, y1)), Some((g0, g1))) = (yl.contiguous_offsets(), gl.contiguous_offsets())
        else {
            candle_core::bail!("softmax gradient: the operands must be contiguous");
        };
        let shape = yl.shape().clone();
        let geom = geometry(&shape, self.dim);
        let out = match (ys, gs) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => {
                CpuStorage::F32(lines!(&y[y0..y1], &g[g0..g1], f32, geom))
            }
            (CpuStorage::F64(y), CpuStorage::F64(g)) => {
                CpuStorage::F64(lines!(&y[y0..y1], &g[g0..g1], f64, geom))
            }
            _ => candle_core::bail!("softmax gradient: f32 or f64 operands of one dtype"),
        };
        Ok((out, shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        ys: &candle_core::CudaStorage,
        yl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (outer, axis, inner) = geometry(yl.shape(), self.dim);
        crate::ops::cuda::softmax::backward(ys, yl, gs, gl, outer, axis, inner)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::softmax;

    /// Forward and gradient against candle-nn's composite softmax (autograd through max, exp,
    /// sum and divide), over the last axis and over an inner one, with a weighting of the
    /// output so the gradient is not trivially zero.
    #[test]
    fn softmax_matches_candle_nn_forward_and_backward() {
        let dev = Device::Cpu;
        let data: Vec<f32> = (0..2 * 3 * 5 * 7)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(data, (2, 3, 5, 7), &dev).unwrap()).unwrap();
        let w = Tensor::arange(0f32, 210.0, &dev)
            .unwrap()
            .reshape((2, 3, 5, 7))
            .unwrap()
            .sin()
            .unwrap();
        for dim in [3, 2, 1] {
            let ours = softmax(&x, dim).unwrap();
            let stock = candle_nn::ops::softmax(x.as_tensor(), dim).unwrap();
            let diff = (&ours - &stock)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-6, "dim {dim}: forward differs by {diff}");
            let g = |y: &Tensor| {
                let grads = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                grads
                    .get(&x)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            };
            let (a, b) = (g(&ours), g(&stock));
            let norm = b.iter().map(|v| v.abs()).fold(0f32, f32::max);
            assert!(norm > 1e-3, "dim {dim}: the gradient is not trivially zero");
            for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                assert!((u - v).abs() < 1e-5, "dim {dim}: gradient {i}: {u} vs {v}");
            }
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_without_overflow() {
        let x = Tensor::new(&[[1000f32, 1001.0, 999.0], [-1e4, 0.0, 1e4]], &Device::Cpu).unwrap();
        let y = softmax(&x, 1).unwrap().to_vec2::<f32>().unwrap();
        for row in &y {
            assert!(row.iter().all(|v| v.is_finite()));
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!((y[1][2] - 1.0).abs() < 1e-6);
    }
}
