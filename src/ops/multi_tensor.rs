//! Operations over a list of tensors at once (Adam's step and the EMA update touch every
//! variable): on CUDA one
//! launch per [`crate::ops::cuda::multi_tensor::MAX_TENSORS`] tensors (`multi_tensor.cu`),
//! elsewhere candle's ops tensor by tensor, with the same numbers.

use candle_core::{Result, Tensor};

// The names the multi-tensor kernels count under in a census of ops (`candle_core::census`):
// on CUDA they launch outside candle's ops, and elsewhere candle's ops tensor by tensor stand in
// for them.
use crate::ops::cuda_op_names as names;
use crate::ops::stand_in;

/// Every tensor of `ts` flattened, concatenated in order into one 1-D tensor (no gradient
/// tracking: for gradients and weights as data). Errs for an empty list.
pub fn concat_flat(ts: &[Tensor]) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if crate::ops::cuda::multi_tensor::supports(ts) {
        return candle_core::census::as_one(names::MULTI_TENSOR_GATHER, || {
            crate::ops::cuda::multi_tensor::gather(ts)
        });
    }
    let Some(first) = ts.first() else {
        candle_core::bail!("concat_flat: no tensors");
    };
    stand_in(names::MULTI_TENSOR_GATHER, first.device(), || {
        let flat = ts
            .iter()
            .map(Tensor::flatten_all)
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&flat, 0)
    })
}

/// `t −= flat[part t]` for every `t` of `ts` in one pass, in `t`'s own storage, where `flat`
/// lays the parts out as [`concat_flat`] does: `Ok(true)` when done so (CUDA), `Ok(false)`
/// without touching anything when the caller should subtract tensor by tensor.
///
/// The tensors must not share storage with each other or with `flat`.
pub fn sub_each_in_place(ts: &[Tensor], flat: &Tensor) -> Result<bool> {
    #[cfg(feature = "cuda")]
    if crate::ops::cuda::multi_tensor::supports(ts)
        && ts
            .iter()
            .all(|t| t.layout().contiguous_offsets() == Some((0, t.elem_count())))
    {
        candle_core::census::as_one(names::MULTI_TENSOR_SUB, || {
            crate::ops::cuda::multi_tensor::sub_each(ts, flat)
        })?;
        return Ok(true);
    }
    let _ = (ts, flat);
    Ok(false)
}

/// `a_k·keep + b_k·(1 − keep)` for every pair `(a_k, b_k)` (same shapes), as new tensors: in
/// one pass on CUDA, pair by pair elsewhere.
pub fn lerp_each(a: &[Tensor], b: &[Tensor], keep: f64) -> Result<Vec<Tensor>> {
    #[cfg(feature = "cuda")]
    if crate::ops::cuda::multi_tensor::supports(a) && crate::ops::cuda::multi_tensor::supports(b) {
        return candle_core::census::as_one(names::MULTI_TENSOR_LERP, || {
            crate::ops::cuda::multi_tensor::lerp(a, b, keep)
        });
    }
    let Some(first) = a.first() else {
        return Ok(Vec::new());
    };
    stand_in(names::MULTI_TENSOR_LERP, first.device(), || {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a * keep)? + (b * (1.0 - keep))?)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn concat_flat_lays_tensors_out_in_order() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1f32, 2.], [3., 4.]], &dev).unwrap();
        let b = Tensor::new(&[5f32], &dev).unwrap();
        let c = Tensor::new(&[[6f32, 7., 8.]], &dev).unwrap().t().unwrap();
        let flat = super::concat_flat(&[a, b, c]).unwrap();
        assert_eq!(
            flat.to_vec1::<f32>().unwrap(),
            [1., 2., 3., 4., 5., 6., 7., 8.]
        );
        assert!(super::concat_flat(&[]).is_err());
    }
}
