//! `x (N, C, H, W) + b` with one value per channel (`b (C)`, a conv's bias) or per image and
//! channel (`b (N, C)`, the time embedding of a block), as one op with its backward.
//!
//! On a GPU candle adds a broadcast operand with its strided-index kernel (64-bit divisions per
//! element: the conv biases and time embeddings took 3.4 ms of a 50 ms training step on an
//! H200), and sums the bias gradient with one block per channel over `N·H·W` values. Here the
//! forward pass is one kernel (`src/ops/cuda/elementwise.cu`; a loop on the CPU, which the
//! tests and `check-device` on the CPU run), the input's gradient is the output's, and the
//! bias's is one matrix product, `dy (N·C, H·W) · 1`, then a sum over the batch for a bias per
//! channel.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use crate::ops::{self, Route};

/// `x + b` broadcast over the positions (and over the batch for `b (C)`): ddpm-lab's op on the
/// GPU route (f32), candle's `broadcast_add` elsewhere. `b` is `(C)`, `(1, C)` or `(N, C)`
/// (any shape with those elements, e.g. `(1, C, 1, 1)`).
pub fn add(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let (n, c) = match dims {
        [n, c, ..] if dims.len() >= 2 => (*n, *c),
        _ => candle_core::bail!("channel bias: input {dims:?} has no channel axis"),
    };
    let per_image = match b.elem_count() {
        e if e == c => false,
        e if e == n * c => true,
        _ => candle_core::bail!("channel bias: bias {:?} for input {dims:?}", b.dims()),
    };
    if !supports(x, b) {
        let mut shape = vec![if per_image { n } else { 1 }, c];
        shape.resize(dims.len(), 1);
        return x.broadcast_add(&b.reshape(shape)?);
    }
    x.contiguous()?
        .apply_op2(&b.flatten_all()?.contiguous()?, ChannelBias { per_image })
}

/// Whether [`add`] runs its own op for `x` and `b`: the GPU route, f32 on one device (CUDA with
/// the `bias` kernel on, or the CPU when the route is forced there, as tests do).
fn supports(x: &Tensor, b: &Tensor) -> bool {
    let device_ok = match x.device() {
        candle_core::Device::Cpu => true,
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(_) => ops::cuda::enabled("bias"),
        _ => false,
    };
    ops::route(x) == Route::Device
        && device_ok
        && b.device().same_device(x.device())
        && x.dtype() == DType::F32
        && b.dtype() == DType::F32
        && x.elem_count() <= ops::DEVICE_LEN_MAX
}

/// `(x, b) → x + b`, `b` flat: `C` values, or `N·C` with `per_image`.
#[derive(Debug, Clone, Copy)]
struct ChannelBias {
    per_image: bool,
}

impl CustomOp2 for ChannelBias {
    fn name(&self) -> &'static str {
        "ddpm-channel-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (Some((x0, x1)), Some((b0, b1))) = (xl.contiguous_offsets(), bl.contiguous_offsets())
        else {
            candle_core::bail!("channel bias: operands must be contiguous");
        };
        let (CpuStorage::F32(x), CpuStorage::F32(b)) = (xs, bs) else {
            candle_core::bail!("channel bias: f32 operands only");
        };
        let (x, b) = (&x[x0..x1], &b[b0..b1]);
        let dims = xl.dims();
        let c = dims[1];
        let rows = dims[0] * c;
        let positions = x.len() / rows.max(1);
        let mut y = Vec::with_capacity(x.len());
        for (row, xs) in x.chunks(positions.max(1)).enumerate() {
            let v = b[if self.per_image { row } else { row % c }];
            y.extend(xs.iter().map(|&e| e + v));
        }
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        bs: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        ops::cuda::elementwise::channel_bias_add(xs, xl, bs, bl, self.per_image)
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x.track_op().then(|| dy.clone());
        let db = if b.track_op() {
            Some(bias_grad(dy, self.per_image)?.reshape(b.dims())?)
        } else {
            None
        };
        Ok((dx, db))
    }
}

/// The gradient of a bias added per channel (`(C)`) or per image and channel (`(N, C)`,
/// `per_image`) to an output whose gradient is `dy (N, C, …)`: `dy` summed over the positions
/// as one matrix product with ones, then over the batch for a bias per channel.
pub fn bias_grad(dy: &Tensor, per_image: bool) -> Result<Tensor> {
    let dims = dy.dims();
    let (n, c) = match dims {
        [n, c, ..] => (*n, *c),
        _ => candle_core::bail!("bias gradient: output gradient {dims:?} has no channel axis"),
    };
    let rows = n * c;
    let positions = dy.elem_count() / rows.max(1);
    let ones = ones_column(positions, dy.dtype(), dy.device())?;
    let sums = dy.contiguous()?.reshape((rows, positions))?.matmul(&ones)?;
    let sums = sums.reshape((n, c))?;
    if per_image {
        Ok(sums)
    } else {
        sums.sum(0)
    }
}

/// The most ones [`ones_column`] keeps per device and dtype (a 64×64 map's positions).
const KEPT_ONES: usize = 4096;

/// A `(len, 1)` column of ones on `device`: a view of one kept per dtype for the device last
/// asked (up to [`KEPT_ONES`]), so that the bias gradients of a step do not each fill a new
/// one (on a GPU, one launch and one allocation less per bias). `DeviceSpec::open` opens each
/// GPU once per process, so it is kept for the run; with `DDPM_LAB_CUDA_STREAM=per-thread`
/// each opening is a device of its own to candle, and another device's column replaces it
/// rather than keep that device (its stream, handles and modules) alive for good. A new
/// column is waited for before it is kept, so that it is filled before any thread's product
/// reads it, whichever stream that thread queues to.
fn ones_column(len: usize, dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
    use std::sync::Mutex;
    static KEPT: Mutex<Vec<Tensor>> = Mutex::new(Vec::new());
    if len > KEPT_ONES {
        return Tensor::ones((len, 1), dtype, device);
    }
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let ones = match kept
        .iter()
        .find(|t| t.dtype() == dtype && t.device().same_device(device))
    {
        Some(t) => t.clone(),
        None => {
            let t = Tensor::ones((KEPT_ONES, 1), dtype, device)?;
            device.synchronize()?;
            kept.retain(|k| k.dtype() != dtype);
            kept.push(t.clone());
            t
        }
    };
    drop(kept);
    ones.narrow(0, 0, len)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::ChannelBias;

    /// The op on the CPU (what the GPU route runs there; [`super::add`] picks it by route,
    /// which only a test binary of its own may force) for both bias shapes, against candle's
    /// broadcast add: the sum and both gradients.
    #[test]
    fn ones_columns_are_ones_of_the_asked_length_kept_or_not() {
        let dev = Device::Cpu;
        for len in [1, 49, 784, super::KEPT_ONES, super::KEPT_ONES + 1] {
            for _ in 0..2 {
                let ones = super::ones_column(len, candle_core::DType::F32, &dev).unwrap();
                assert_eq!(ones.dims(), [len, 1]);
                assert!(ones.is_contiguous());
                let v = ones.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(v.iter().all(|&x| x == 1.0), "{len}");
            }
        }
        let f64_ones = super::ones_column(3, candle_core::DType::F64, &dev).unwrap();
        assert_eq!(f64_ones.dtype(), candle_core::DType::F64);
    }

    #[test]
    fn channel_bias_matches_broadcast_add_and_its_gradients() {
        let dev = Device::Cpu;
        let xv: Vec<f32> = (0..2 * 3 * 4 * 5)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(xv, (2, 3, 4, 5), &dev).unwrap()).unwrap();
        let w = Tensor::arange(0f32, 120.0, &dev)
            .unwrap()
            .reshape((2, 3, 4, 5))
            .unwrap()
            .cos()
            .unwrap();
        let per_channel =
            Var::from_tensor(&Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap()).unwrap();
        let per_image =
            Var::from_tensor(&Tensor::new(&[[0.1f32, 0.2, 0.3], [-0.4, 0.5, -0.6]], &dev).unwrap())
                .unwrap();
        for (b, shape) in [(&per_channel, (1, 3, 1, 1)), (&per_image, (2, 3, 1, 1))] {
            let ours = {
                let op = ChannelBias {
                    per_image: shape.0 == 2,
                };
                let y = x.apply_op2(&b.flatten_all().unwrap(), op).unwrap();
                let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (
                    flat(&y),
                    flat(grads.get(&x).unwrap()),
                    flat(grads.get(b).unwrap()),
                )
            };
            let stock = {
                let y = x.broadcast_add(&b.reshape(shape).unwrap()).unwrap();
                let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (
                    flat(&y),
                    flat(grads.get(&x).unwrap()),
                    flat(grads.get(b).unwrap()),
                )
            };
            for (what, a, s) in [
                ("sum", &ours.0, &stock.0),
                ("dx", &ours.1, &stock.1),
                ("db", &ours.2, &stock.2),
            ] {
                assert_eq!(a.len(), s.len(), "{what}");
                for (i, (u, v)) in a.iter().zip(s.iter()).enumerate() {
                    assert!((u - v).abs() < 1e-5, "{shape:?} {what} {i}: {u} vs {v}");
                }
            }
        }
    }
}
