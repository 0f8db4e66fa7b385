//! The core of the blog's `LinearAttention` as one op, from `to_qkv(x)` to the tensor that
//! enters `to_out`: per batch item and head, with `q, k, v` of shape `(d, n)`,
//! `q̃ = softmax_d(q)·scale`, `k̃ = softmax_n(k)`, `C = k̃ vᵀ` `(d×d)`, `out = Cᵀ q̃` `(d, n)`.
//! The backward is analytic (two small GEMMs per gradient and the two softmax Jacobians), which
//! replaces about twenty candle nodes and the copies that split q, k and v.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::scratch::{par_build_overwrite, with_scratch};
use super::sgemm::{sgemm, MatRef};
use super::simd::{dot, exp_sub_acc, exp_sub_sum, max_into, mul_into};
use super::storage::{contiguous, cpu_slice, cpu_tensor, with_f32};

/// The custom op: `qkv (B, 3·heads·d, H, W) → (B, heads·d, H, W)`.
#[derive(Debug, Clone, Copy)]
pub struct LinearAttentionOp {
    /// Number of heads.
    pub heads: usize,
    /// Width of each head (`d`).
    pub dim_head: usize,
}

/// The linear-attention core through [`LinearAttentionOp`]. CPU `f32` only.
pub fn linear_attention(qkv: &Tensor, heads: usize, dim_head: usize) -> Result<Tensor> {
    contiguous(qkv)?.apply_op1(LinearAttentionOp { heads, dim_head })
}

impl LinearAttentionOp {
    /// `(batch, positions)` after checking the channel count.
    fn dims(&self, shape: &[usize]) -> Result<(usize, usize)> {
        if shape.len() < 3 || shape[1] != 3 * self.heads * self.dim_head {
            candle_core::bail!(
                "linear attention: expected (B, {}, …), got {shape:?}",
                3 * self.heads * self.dim_head
            );
        }
        Ok((shape[0], shape[2..].iter().product()))
    }
}

/// `q̃` (softmax over d of each column, times `scale`) and `k̃` (softmax over n of each row).
/// `tmp` holds `2n` scratch values. Every loop runs along rows, so it vectorises.
#[allow(clippy::too_many_arguments)]
fn softmaxes(
    q: &[f32],
    k: &[f32],
    d: usize,
    n: usize,
    scale: f32,
    qs: &mut [f32],
    ks: &mut [f32],
    tmp: &mut [f32],
) {
    let (m, s) = tmp.split_at_mut(n);
    m.copy_from_slice(&q[..n]);
    for i in 1..d {
        max_into(&q[i * n..(i + 1) * n], m);
    }
    s.fill(0.0);
    for i in 0..d {
        exp_sub_acc(&q[i * n..(i + 1) * n], m, &mut qs[i * n..(i + 1) * n], s);
    }
    s.iter_mut().for_each(|v| *v = scale / *v);
    for i in 0..d {
        mul_into(s, &mut qs[i * n..(i + 1) * n]);
    }
    for i in 0..d {
        let row = &k[i * n..(i + 1) * n];
        let out = &mut ks[i * n..(i + 1) * n];
        let mx = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let r = 1.0 / exp_sub_sum(row, mx, out);
        out.iter_mut().for_each(|o| *o *= r);
    }
}

impl CustomOp1 for LinearAttentionOp {
    fn name(&self) -> &'static str {
        "ddpm-linear-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, n) = self.dims(l.dims())?;
        let (h, d) = (self.heads, self.dim_head);
        let scale = (d as f32).powf(-0.5);
        let qkv = cpu_slice(s, l, "linear attention input")?;
        // SAFETY: the second GEMM writes all `d × n` outputs of the head without reading them.
        let out = unsafe {
            par_build_overwrite(b * h * d * n, d * n, |bh, o| {
                let (bi, hi) = (bh / h, bh % h);
                let base = bi * 3 * h * d * n;
                let q = &qkv[base + hi * d * n..][..d * n];
                let k = &qkv[base + (h + hi) * d * n..][..d * n];
                let v = &qkv[base + (2 * h + hi) * d * n..][..d * n];
                with_scratch(0, 2 * d * n + d * d + 2 * n, |buf| {
                    let (qs, rest) = buf.split_at_mut(d * n);
                    let (ks, rest) = rest.split_at_mut(d * n);
                    let (c, tmp) = rest.split_at_mut(d * d);
                    softmaxes(q, k, d, n, scale, qs, ks, tmp);
                    // C (d×e) = k̃ (d×n) · vᵀ (n×e)
                    sgemm(
                        d,
                        d,
                        n,
                        c,
                        d,
                        false,
                        MatRef::rows(ks, n),
                        MatRef::rows_t(v, n),
                        false,
                    );
                    // out (e×n) = Cᵀ (e×d) · q̃ (d×n)
                    sgemm(
                        d,
                        n,
                        d,
                        o,
                        n,
                        false,
                        MatRef::rows_t(c, d),
                        MatRef::rows(qs, n),
                        false,
                    );
                });
            })
        };
        let mut shape = l.dims().to_vec();
        shape[1] = h * d;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, n) = self.dims(qkv.dims())?;
        let (h, d) = (self.heads, self.dim_head);
        let scale = (d as f32).powf(-0.5);
        let dqkv = with_f32(qkv, |x| {
            with_f32(grad, |g| {
                let mut dqkv = vec![0f32; x.len()];
                dqkv.par_chunks_mut(3 * h * d * n)
                    .enumerate()
                    .for_each(|(bi, dx)| {
                        let base = bi * 3 * h * d * n;
                        for hi in 0..h {
                            let q = &x[base + hi * d * n..][..d * n];
                            let k = &x[base + (h + hi) * d * n..][..d * n];
                            let v = &x[base + (2 * h + hi) * d * n..][..d * n];
                            let go = &g[(bi * h + hi) * d * n..][..d * n];
                            with_scratch(0, 4 * d * n + 2 * d * d + 2 * n, |buf| {
                                let (qs, rest) = buf.split_at_mut(d * n);
                                let (ks, rest) = rest.split_at_mut(d * n);
                                let (dqs, rest) = rest.split_at_mut(d * n);
                                let (dks, rest) = rest.split_at_mut(d * n);
                                let (c, rest) = rest.split_at_mut(d * d);
                                let (dc, tmp) = rest.split_at_mut(d * d);
                                softmaxes(q, k, d, n, scale, qs, ks, tmp);
                                let (rows, rows_t) = (MatRef::rows, MatRef::rows_t);
                                sgemm(d, d, n, c, d, false, rows(ks, n), rows_t(v, n), false);
                                // dC (d×e) = q̃ (d×n) · Gᵀ (n×e)
                                sgemm(d, d, n, dc, d, false, rows(qs, n), rows_t(go, n), false);
                                // dq̃ (d×n) = C (d×e) · G (e×n)
                                sgemm(d, n, d, dqs, n, false, rows(c, d), rows(go, n), false);
                                // dk̃ (d×n) = dC (d×e) · v (e×n)
                                sgemm(d, n, d, dks, n, false, rows(dc, d), rows(v, n), false);
                                let (dq_all, rest) = dx.split_at_mut(h * d * n);
                                let (dk_all, dv_all) = rest.split_at_mut(h * d * n);
                                // dv (e×n) = dCᵀ (e×d) · k̃ (d×n)
                                let dv = &mut dv_all[hi * d * n..][..d * n];
                                sgemm(d, n, d, dv, n, false, rows_t(dc, d), rows(ks, n), false);
                                // q̃ = p·scale, p = softmax_d(q): dq = p ⊙ (dp − Σ_d p·dp), dp = dq̃·scale,
                                // i.e. dq = q̃ ⊙ (dq̃ − Σ_d q̃·dq̃ / scale). Row by row, so it vectorises.
                                let dq = &mut dq_all[hi * d * n..][..d * n];
                                let colsum = &mut tmp[..n];
                                colsum.fill(0.0);
                                for (qr, dqr) in qs.chunks_exact(n).zip(dqs.chunks_exact(n)) {
                                    for ((s, &a), &b) in colsum.iter_mut().zip(qr).zip(dqr) {
                                        *s += a * b;
                                    }
                                }
                                colsum.iter_mut().for_each(|s| *s /= scale);
                                for ((o, qr), dqr) in dq
                                    .chunks_exact_mut(n)
                                    .zip(qs.chunks_exact(n))
                                    .zip(dqs.chunks_exact(n))
                                {
                                    for (((o, &a), &b), &s) in
                                        o.iter_mut().zip(qr).zip(dqr).zip(colsum.iter())
                                    {
                                        *o = a * (b - s);
                                    }
                                }
                                // k̃ = softmax_n(k): dk = k̃ ⊙ (dk̃ − Σ_n k̃·dk̃)
                                let dk = &mut dk_all[hi * d * n..][..d * n];
                                for i in 0..d {
                                    let r = i * n..(i + 1) * n;
                                    let s = dot(&ks[r.clone()], &dks[r.clone()]);
                                    for ((o, &kv), &dv) in
                                        dk[r.clone()].iter_mut().zip(&ks[r.clone()]).zip(&dks[r])
                                    {
                                        *o = kv * (dv - s);
                                    }
                                }
                            });
                        }
                    });
                Ok(dqkv)
            })
        })?;
        Ok(Some(cpu_tensor(dqkv, qkv.dims())?))
    }
}
