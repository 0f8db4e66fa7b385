//! In-place updates of a tensor's own storage (a variable's weights), one kernel each: candle
//! has no in-place arithmetic, so `var.set(&(var − u))` is a subtraction into a new tensor and a
//! copy back, two launches per variable and step on a GPU.

use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Tensor};

/// `y −= x` in `y`'s storage, bit for bit `y − x`: f32 or f64 on the CPU, f32 on CUDA, else
/// (Metal, other dtypes, non-contiguous `y`) through `Var::set`-style replacement by the caller's
/// fallback: this returns `Ok(false)` without touching `y`.
pub fn sub_in_place(y: &Tensor, x: &Tensor) -> Result<bool> {
    if y.dims() != x.dims() {
        candle_core::bail!("in-place subtract: {:?} from {:?}", x.dims(), y.dims());
    }
    let supported = match y.device() {
        candle_core::Device::Cpu => matches!(y.dtype(), DType::F32 | DType::F64),
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(_) => y.dtype() == DType::F32,
        _ => false,
    };
    let whole = y.layout().contiguous_offsets() == Some((0, y.elem_count()));
    if !supported || !whole || x.dtype() != y.dtype() || !x.device().same_device(y.device()) {
        return Ok(false);
    }
    y.inplace_op2(&x.contiguous()?, &SubInPlace)?;
    Ok(true)
}

/// `(y, x) → y −= x`.
struct SubInPlace;

impl InplaceOp2 for SubInPlace {
    fn name(&self) -> &'static str {
        "ddpm-sub-in-place"
    }

    fn cpu_fwd(
        &self,
        ys: &mut CpuStorage,
        yl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> Result<()> {
        let (Some((y0, y1)), Some((x0, x1))) = (yl.contiguous_offsets(), xl.contiguous_offsets())
        else {
            candle_core::bail!("in-place subtract: operands must be contiguous");
        };
        match (ys, xs) {
            (CpuStorage::F32(y), CpuStorage::F32(x)) => {
                for (a, b) in y[y0..y1].iter_mut().zip(&x[x0..x1]) {
                    *a -= b;
                }
            }
            (CpuStorage::F64(y), CpuStorage::F64(x)) => {
                for (a, b) in y[y0..y1].iter_mut().zip(&x[x0..x1]) {
                    *a -= b;
                }
            }
            _ => candle_core::bail!("in-place subtract: f32 or f64 operands of one dtype"),
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        ys: &mut candle_core::CudaStorage,
        yl: &Layout,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
    ) -> Result<()> {
        crate::ops::cuda::elementwise::sub_in_place(ys, yl, xs, xl)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::sub_in_place;

    #[test]
    fn sub_in_place_matches_subtraction_bit_for_bit_and_leaves_others_alone() {
        let dev = Device::Cpu;
        let var =
            Var::from_tensor(&Tensor::new(&[[1.5f32, -2.25, 3.0], [0.1, 0.2, 0.3]], &dev).unwrap())
                .unwrap();
        let flat = Tensor::new(&[9f32, 0.7, -0.01, 1e-3, 5.0, -6.0, 7.0, 8.0], &dev).unwrap();
        // A view into a larger buffer, as Adam's update parts are.
        let part = flat.narrow(0, 1, 6).unwrap().reshape((2, 3)).unwrap();
        let want = (var.as_tensor() - &part).unwrap().to_vec2::<f32>().unwrap();
        assert!(sub_in_place(var.as_tensor(), &part).unwrap());
        assert_eq!(var.as_tensor().to_vec2::<f32>().unwrap(), want);
        assert_eq!(
            flat.to_vec1::<f32>().unwrap(),
            vec![9f32, 0.7, -0.01, 1e-3, 5.0, -6.0, 7.0, 8.0]
        );
        // A view of y is not its whole storage: left to the caller.
        let view = var.as_tensor().narrow(0, 1, 1).unwrap();
        let ones = Tensor::ones((1, 3), candle_core::DType::F32, &dev).unwrap();
        assert!(!sub_in_place(&view, &ones).unwrap());
        assert!(sub_in_place(var.as_tensor(), &ones.squeeze(0).unwrap()).is_err());
    }
}
