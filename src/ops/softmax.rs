//! Softmax as one op with its analytic backward.
//!
//! candle-nn's `softmax` is five ops (max, subtract, exp, sum, divide) and autograd differentiates
//! each, `max` included (an equality mask against the broadcast maximum): about fifteen kernels
//! per softmax on a GPU, a tenth of the blog UNet's attention time. Here the forward pass is one
//! kernel on CUDA (candle's own fused `softmax_f32`, the one `candle_nn::ops::softmax_last_dim`
//! launches) or one loop on the CPU, and the backward pass is `dx = y ⊙ (dy − Σ dy ⊙ y)` over the
//! axis: four ops.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, D};

/// Softmax of `x` over axis `dim` (any device; f32 or f64 on the CPU, f32 on CUDA unless
/// `DDPM_LAB_CUDA_KERNELS` leaves `softmax` out, candle-nn's composite softmax elsewhere). An axis other than the last is moved last for the op (one copy)
/// and back (a view).
pub fn softmax(x: &Tensor, dim: usize) -> Result<Tensor> {
    let last = x.rank().saturating_sub(1);
    let fused = match x.device() {
        candle_core::Device::Cpu => matches!(x.dtype(), DType::F32 | DType::F64),
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(_) => {
            x.dtype() == DType::F32 && crate::ops::cuda::enabled("softmax")
        }
        _ => false,
    };
    // candle's CUDA kernel takes one block per row (grid x) and an `int` row length.
    let rows = x.elem_count() / x.dims().get(dim).copied().unwrap_or(1).max(1);
    let fits = rows <= i32::MAX as usize && x.elem_count() <= i32::MAX as usize;
    if !fused || !fits || x.rank() == 0 || dim > last {
        return candle_nn::ops::softmax(x, dim);
    }
    if dim == last {
        return x.contiguous()?.apply_op1(SoftmaxLastDim);
    }
    x.transpose(dim, last)?
        .contiguous()?
        .apply_op1(SoftmaxLastDim)?
        .transpose(dim, last)
}

/// Softmax over the last axis of a contiguous tensor, with its backward.
#[derive(Debug, Clone, Copy)]
struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "ddpm-softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        // Each row: the maximum subtracted, exponentials, their sum divided out.
        macro_rules! rows {
            ($src:expr, $cols:expr, $t:ty) => {{
                let (src, cols): (&[$t], usize) = ($src, $cols);
                let mut out = vec![0 as $t; src.len()];
                for (x, y) in src.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
                    let max = x.iter().fold(<$t>::NEG_INFINITY, |m, &v| m.max(v));
                    let mut sum = 0 as $t;
                    for (o, &v) in y.iter_mut().zip(x) {
                        *o = (v - max).exp();
                        sum += *o;
                    }
                    for o in y.iter_mut() {
                        *o /= sum;
                    }
                }
                out
            }};
        }
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("softmax: the input must be contiguous");
        };
        let shape = layout.shape().clone();
        let cols = shape.dims().last().copied().unwrap_or(1).max(1);
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(rows!(&v[a..b], cols, f32)),
            CpuStorage::F64(v) => CpuStorage::F64(rows!(&v[a..b], cols, f64)),
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
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        use candle_core::cuda_backend::{kernels, WrapErr};

        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("softmax: the input must be contiguous");
        };
        let src = storage.as_cuda_slice::<f32>()?.slice(a..b);
        let dev = storage.device().clone();
        let shape = layout.shape().clone();
        let el = shape.elem_count();
        let cols = shape.dims().last().copied().unwrap_or(1).max(1);
        // SAFETY: the kernel writes every element (one warp per row).
        let dst = unsafe { dev.alloc::<f32>(el)? };
        if el > 0 {
            // As candle_nn::ops::softmax_last_dim launches candle's kernel: one block of one
            // warp per row.
            let cfg = LaunchConfig {
                grid_dim: ((el / cols) as u32, 1, 1),
                block_dim: (1, 32, 1),
                shared_mem_bytes: 0,
            };
            let func = dev.get_or_load_func("softmax_f32", &kernels::REDUCE)?;
            let n_cols = i32::try_from(cols).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
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
        // A softmax over an inner axis gets its gradient transposed: one copy here keeps the
        // four ops below on candle's contiguous kernels.
        let dy = &dy.contiguous()?;
        let dot = (dy * y)?.sum_keepdim(D::Minus1)?;
        Ok(Some((y * dy.broadcast_sub(&dot)?)?))
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
