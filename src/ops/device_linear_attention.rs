//! The core of the blog's `LinearAttention` on the GPU route, as one op of `q`, `k` and `v`
//! (each `(B, heads, d, n)`, the outputs of the three `to_qkv` convs): per batch item and head,
//! `q̃ = softmax_d(q)·scale`, `k̃ = softmax_n(k)`, `C = k̃ vᵀ` `(d×d)`, `out = Cᵀ q̃` `(d, n)`.
//!
//! The forward pass launches what the separate ops did (two softmaxes, the scale, two batched
//! matrix products), but candle keeps every op's inputs alive until the backward pass: as
//! separate ops, `q̃` before and after its scale and `k̃` were kept too, three more tensors the
//! size of `q` per attention (about 240 MiB of the blog UNet's training step at batch 128, as
//! much as its 28×28 stage's activations). Here only `q`, `k`, `v` and the output are kept; the
//! backward pass recomputes `q̃`, `k̃` and `C` from them (two softmaxes, a scale and one small
//! product: cheap next to the convs) and then takes the analytic gradients, as the CPU route's
//! [`crate::ops::linear_attention`] does.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::softmax::{fits_kernels, softmax, softmax_backward, SoftmaxStorage};

/// `out (B, heads, d, n)` of `q`, `k` and `v` (each `(B, heads, d, n)`) with the query scale
/// `scale`: one op where its softmax kernels run for `q` ([`fits_kernels`]; on CUDA, switched on
/// as `linear_attention`, on its own, so that a fault in it leaves the plain softmax kernel in
/// use), else the same maths through separate ops.
pub fn linear_attention_core(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let same = q.rank() == 4 && q.dims() == k.dims() && q.dims() == v.dims();
    if same && fits_kernels(q, 2, "linear_attention") {
        let c = |t: &Tensor| t.contiguous();
        return c(q)?.apply_op3(&c(k)?, &c(v)?, LinearAttentionCore { scale });
    }
    let q = (softmax(q, 2)? * scale)?;
    let k = softmax(k, 3)?;
    // context[d, e] = Σ_n k[d, n] v[e, n]
    let context = k.matmul(&v.t()?)?;
    // out[e, n] = Σ_d context[d, e] q[d, n]
    context.t()?.matmul(&q)
}

/// The op behind [`linear_attention_core`].
#[derive(Debug, Clone, Copy)]
struct LinearAttentionCore {
    scale: f64,
}

impl LinearAttentionCore {
    /// The forward pass on any backend's storage: the softmaxes, the scale, `C = k̃ vᵀ` and
    /// `Cᵀ q̃`, each a storage of its own that is dropped once used.
    fn forward<S: SoftmaxStorage>(
        &self,
        (q, ql): (&S, &Layout),
        (k, kl): (&S, &Layout),
        (v, vl): (&S, &Layout),
    ) -> Result<(S, Shape)> {
        let shape = ql.shape().clone();
        let (b, h, d, n) = shape.dims4()?;
        if kl.shape() != &shape || vl.shape() != &shape {
            candle_core::bail!(
                "linear attention: q {:?}, k {:?} and v {:?} differ",
                shape,
                kl.shape(),
                vl.shape()
            );
        }
        let plain = Layout::contiguous(&shape);
        let qs = q.softmax(ql, 2)?.affine(&plain, self.scale, 0.0)?;
        let ks = k.softmax(kl, 3)?;
        // C (b·h, d, d) = k̃ (d, n) · vᵀ (n, d).
        let context = ks.matmul(v, (b * h, d, d, n), &plain, &vl.transpose(2, 3)?)?;
        // out (b·h, d, n) = Cᵀ (d, d) · q̃ (d, n).
        let context_l = Layout::contiguous((b, h, d, d)).transpose(2, 3)?;
        let out = context.matmul(&qs, (b * h, d, n, d), &context_l, &plain)?;
        Ok((out, shape))
    }
}

impl CustomOp3 for LinearAttentionCore {
    fn name(&self) -> &'static str {
        "ddpm-linear-attention-core"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        ql: &Layout,
        k: &CpuStorage,
        kl: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((q, ql), (k, kl), (v, vl))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        q: &candle_core::CudaStorage,
        ql: &Layout,
        k: &candle_core::CudaStorage,
        kl: &Layout,
        v: &candle_core::CudaStorage,
        vl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.forward((q, ql), (k, kl), (v, vl))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _out: &Tensor,
        dout: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The forward's intermediates again, from the kept inputs (detached: no graph).
        let (q, k, v) = (q.detach(), k.detach(), v.detach());
        let p = softmax(&q, 2)?;
        let qs = (&p * self.scale)?;
        let ks = softmax(&k, 3)?;
        let context = ks.matmul(&v.t()?)?;
        let dout = dout.contiguous()?;
        // out = Cᵀ q̃: dq̃ = C · dout, dC = q̃ · doutᵀ.
        let dqs = context.matmul(&dout)?;
        let dcontext = qs.matmul(&dout.t()?)?;
        // C = k̃ vᵀ: dk̃ = dC · v, dv = dCᵀ · k̃.
        let dks = dcontext.matmul(&v)?;
        let dv = dcontext.t()?.matmul(&ks)?;
        // Through the softmaxes (and the scale of q̃).
        let dq = softmax_backward(&p, &(dqs * self.scale)?, 2)?;
        let dk = softmax_backward(&ks, &dks, 3)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::max_abs_diff;
    use candle_core::{DType, Device, Tensor, Var};

    use super::{linear_attention_core, LinearAttentionCore};

    /// The op itself (the tests must not pass through [`linear_attention_core`]'s fallback).
    fn fused_core(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
        let c = |t: &Tensor| t.contiguous();
        c(q)?.apply_op3(&c(k)?, &c(v)?, LinearAttentionCore { scale })
    }

    /// The same maths as separate candle ops, differentiated by candle's autograd (candle-nn's
    /// composite softmax), for the reference.
    fn composite(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Tensor {
        let q = (candle_nn::ops::softmax(q, 2).unwrap() * scale).unwrap();
        let k = candle_nn::ops::softmax(k, 3).unwrap();
        let context = k.matmul(&v.t().unwrap()).unwrap();
        context.t().unwrap().matmul(&q).unwrap()
    }

    /// Deterministic values of `shape` spread over about ±3.
    fn wave(shape: (usize, usize, usize, usize), phase: f64, dtype: DType) -> Var {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let t = Tensor::arange(0u32, n as u32, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let t = ((t * 0.731).unwrap() + phase).unwrap().sin().unwrap() * 3.0;
        Var::from_tensor(&t.unwrap().reshape(shape).unwrap().to_dtype(dtype).unwrap()).unwrap()
    }

    /// The op's output and the gradients of `q`, `k` and `v` against the composite's, in
    /// float64 (tight) and float32, on a shape with d ≠ n and more than one batch item and head.
    #[test]
    fn the_fused_linear_attention_core_matches_its_composite_forward_and_backward() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let shape = (2, 3, 4, 5);
            let (q, k, v) = (
                wave(shape, 0.1, dtype),
                wave(shape, 1.3, dtype),
                wave(shape, 2.9, dtype),
            );
            let r = wave(shape, 0.7, dtype);
            let scale = 0.5;
            let ours = fused_core(&q, &k, &v, scale).unwrap();
            let reference = composite(&q, &k, &v, scale);
            assert!(
                max_abs_diff(&ours, &reference) < tol,
                "{dtype:?}: forward differs"
            );
            let grads = |y: &Tensor| {
                let g = (y * r.as_tensor())
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                [&q, &k, &v].map(|x| g.get(x).unwrap().clone())
            };
            let (a, b) = (grads(&ours), grads(&reference));
            for (name, (ga, gb)) in ["q", "k", "v"].iter().zip(a.iter().zip(&b)) {
                let scale_of = max_abs_diff(gb, &gb.zeros_like().unwrap());
                assert!(scale_of > 1e-3, "{dtype:?}: d{name} is trivially zero");
                let e = max_abs_diff(ga, gb);
                assert!(
                    e < tol * scale_of.max(1.0),
                    "{dtype:?}: d{name} differs by {e}"
                );
            }
        }
    }

    /// Inputs that are views (here transposed, as `to_qkv`'s outputs are not) are made
    /// contiguous first, and shapes that differ are an error, not a panic, from the op and
    /// from the function that falls back to separate ops.
    #[test]
    fn the_fused_core_takes_views_and_rejects_mismatched_shapes() {
        let q = wave((1, 2, 5, 3), 0.2, DType::F32);
        let qt = q.as_tensor().transpose(2, 3).unwrap();
        let k = wave((1, 2, 3, 5), 0.4, DType::F32);
        let v = wave((1, 2, 3, 5), 0.6, DType::F32);
        let reference = composite(&qt, &k, &v, 0.25);
        let ours = linear_attention_core(&qt, &k, &v, 0.25).unwrap();
        assert!(max_abs_diff(&ours, &reference) < 1e-5);
        let short = wave((1, 2, 3, 4), 0.6, DType::F32);
        assert!(fused_core(&qt, &k, &short, 0.25).is_err());
        assert!(linear_attention_core(&qt, &k, &short, 0.25).is_err());
    }
}
