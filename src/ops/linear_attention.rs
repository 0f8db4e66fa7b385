//! The core of the blog's `LinearAttention` as one op, from `to_qkv(x)` to the tensor that
//! enters `to_out`: per batch item and head, with `q, k, v` of shape `(d, n)`,
//! `q̃ = softmax_d(q)·scale`, `k̃ = softmax_n(k)`, `C = k̃ vᵀ` `(d×d)`, `out = Cᵀ q̃` `(d, n)`.
//! The backward is analytic (two small GEMMs per gradient and the two softmax Jacobians), which
//! replaces about twenty candle nodes and the copies that split q, k and v. lucidrains'
//! `LinearAttention` adds learned memory keys and values before the image's (`mem_kv`): the
//! same op with them ([`linear_attention_with_memory`]) replaces its concatenations, its
//! softmax over a middle axis and its transposed matmuls.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
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

/// One head's keys and values held in memory (lucidrains' `mem_kv`): `m` columns of `d`
/// values each, before the image's `n` (empty for the blog's attention).
#[derive(Clone, Copy)]
struct Memory<'a> {
    k: &'a [f32],
    v: &'a [f32],
    m: usize,
}

/// `q̃` (softmax over d of each column, times `scale`), `k̃` (softmax over n of each row, with
/// the row's `m` memory keys: `kms` gets theirs). `tmp` holds `2n` scratch values. Every loop
/// runs along rows, so it vectorises.
#[allow(clippy::too_many_arguments)]
fn softmaxes(
    q: &[f32],
    k: &[f32],
    mem: Memory,
    d: usize,
    n: usize,
    scale: f32,
    qs: &mut [f32],
    ks: &mut [f32],
    kms: &mut [f32],
    tmp: &mut [f32],
) {
    let (mx, s) = tmp.split_at_mut(n);
    mx.copy_from_slice(&q[..n]);
    for i in 1..d {
        max_into(&q[i * n..(i + 1) * n], mx);
    }
    s.fill(0.0);
    for i in 0..d {
        exp_sub_acc(&q[i * n..(i + 1) * n], mx, &mut qs[i * n..(i + 1) * n], s);
    }
    s.iter_mut().for_each(|v| *v = scale / *v);
    for i in 0..d {
        mul_into(s, &mut qs[i * n..(i + 1) * n]);
    }
    let m = mem.m;
    for i in 0..d {
        let row = &k[i * n..(i + 1) * n];
        let mrow = &mem.k[i * m..(i + 1) * m];
        let out = &mut ks[i * n..(i + 1) * n];
        let mout = &mut kms[i * m..(i + 1) * m];
        let top = row
            .iter()
            .chain(mrow)
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let r = 1.0 / (exp_sub_sum(row, top, out) + exp_sub_sum(mrow, top, mout));
        out.iter_mut().for_each(|o| *o *= r);
        mout.iter_mut().for_each(|o| *o *= r);
    }
}

/// Scratch values [`head_forward`] needs for a head of `d × n` with `m` memory columns.
fn forward_scratch(d: usize, n: usize, m: usize) -> usize {
    2 * d * n + d * m + d * d + 2 * n
}

/// One head's forward: `out (e×n) = Cᵀ q̃` with `C = k̃ vᵀ` over the image's columns and the
/// memory's. `buf` holds [`forward_scratch`] values.
#[allow(clippy::too_many_arguments)]
fn head_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mem: Memory,
    d: usize,
    n: usize,
    scale: f32,
    buf: &mut [f32],
    out: &mut [f32],
) {
    let m = mem.m;
    let (qs, rest) = buf.split_at_mut(d * n);
    let (ks, rest) = rest.split_at_mut(d * n);
    let (kms, rest) = rest.split_at_mut(d * m);
    let (c, tmp) = rest.split_at_mut(d * d);
    softmaxes(q, k, mem, d, n, scale, qs, ks, kms, tmp);
    context(ks, v, kms, mem, d, n, c);
    // out (e×n) = Cᵀ (e×d) · q̃ (d×n)
    sgemm(
        d,
        n,
        d,
        out,
        n,
        false,
        MatRef::rows_t(c, d),
        MatRef::rows(qs, n),
        false,
    );
}

/// `C (d×e) = k̃ (d×n) · vᵀ (n×e) [+ k̃ₘ (d×m) · vₘᵀ (m×e)]`: the context the queries read.
fn context(ks: &[f32], v: &[f32], kms: &[f32], mem: Memory, d: usize, n: usize, c: &mut [f32]) {
    let (rows, rows_t) = (MatRef::rows, MatRef::rows_t);
    sgemm(d, d, n, c, d, false, rows(ks, n), rows_t(v, n), false);
    if mem.m > 0 {
        let m = mem.m;
        sgemm(d, d, m, c, d, true, rows(kms, m), rows_t(mem.v, m), false);
    }
}

/// Scratch values [`head_backward`] needs.
fn backward_scratch(d: usize, n: usize, m: usize) -> usize {
    4 * d * n + 2 * d * m + 2 * d * d + 2 * n
}

/// Where one head's gradients go: its q, k and v (`d × n` each), and where it has memory, the
/// memory's keys and values (`d × m` each, added to: a batch's heads share them).
struct HeadGrads<'a> {
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
    dmk: &'a mut [f32],
    dmv: &'a mut [f32],
}

/// One head's backward for the output's gradient `go` (`e × n`). `buf` holds
/// [`backward_scratch`] values.
#[allow(clippy::too_many_arguments)]
fn head_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mem: Memory,
    go: &[f32],
    d: usize,
    n: usize,
    scale: f32,
    buf: &mut [f32],
    g: HeadGrads,
) {
    let m = mem.m;
    let (qs, rest) = buf.split_at_mut(d * n);
    let (ks, rest) = rest.split_at_mut(d * n);
    let (dqs, rest) = rest.split_at_mut(d * n);
    let (dks, rest) = rest.split_at_mut(d * n);
    let (kms, rest) = rest.split_at_mut(d * m);
    let (dkms, rest) = rest.split_at_mut(d * m);
    let (c, rest) = rest.split_at_mut(d * d);
    let (dc, tmp) = rest.split_at_mut(d * d);
    softmaxes(q, k, mem, d, n, scale, qs, ks, kms, tmp);
    context(ks, v, kms, mem, d, n, c);
    let (rows, rows_t) = (MatRef::rows, MatRef::rows_t);
    // dC (d×e) = q̃ (d×n) · Gᵀ (n×e)
    sgemm(d, d, n, dc, d, false, rows(qs, n), rows_t(go, n), false);
    // dq̃ (d×n) = C (d×e) · G (e×n)
    sgemm(d, n, d, dqs, n, false, rows(c, d), rows(go, n), false);
    // dk̃ (d×n) = dC (d×e) · v (e×n), and the memory's keys' from its values
    sgemm(d, n, d, dks, n, false, rows(dc, d), rows(v, n), false);
    // dv (e×n) = dCᵀ (e×d) · k̃ (d×n), and the memory's values' (added over the batch)
    sgemm(d, n, d, g.dv, n, false, rows_t(dc, d), rows(ks, n), false);
    if m > 0 {
        sgemm(d, m, d, dkms, m, false, rows(dc, d), rows(mem.v, m), false);
        sgemm(d, m, d, g.dmv, m, true, rows_t(dc, d), rows(kms, m), false);
    }
    // q̃ = p·scale, p = softmax_d(q): dq = p ⊙ (dp − Σ_d p·dp), dp = dq̃·scale,
    // i.e. dq = q̃ ⊙ (dq̃ − Σ_d q̃·dq̃ / scale). Row by row, so it vectorises.
    let colsum = &mut tmp[..n];
    colsum.fill(0.0);
    for (qr, dqr) in qs.chunks_exact(n).zip(dqs.chunks_exact(n)) {
        for ((s, &a), &b) in colsum.iter_mut().zip(qr).zip(dqr) {
            *s += a * b;
        }
    }
    colsum.iter_mut().for_each(|s| *s /= scale);
    for ((o, qr), dqr) in
        g.dq.chunks_exact_mut(n)
            .zip(qs.chunks_exact(n))
            .zip(dqs.chunks_exact(n))
    {
        for (((o, &a), &b), &s) in o.iter_mut().zip(qr).zip(dqr).zip(colsum.iter()) {
            *o = a * (b - s);
        }
    }
    // k̃ = softmax over a row's n keys and m memory keys: dk = k̃ ⊙ (dk̃ − Σ k̃·dk̃), the sum
    // over both.
    for i in 0..d {
        let (r, rm) = (i * n..(i + 1) * n, i * m..(i + 1) * m);
        let s = dot(&ks[r.clone()], &dks[r.clone()]) + dot(&kms[rm.clone()], &dkms[rm.clone()]);
        for ((o, &kv), &dv) in g.dk[r.clone()].iter_mut().zip(&ks[r.clone()]).zip(&dks[r]) {
            *o = kv * (dv - s);
        }
        for ((o, &kv), &dv) in g.dmk[rm.clone()]
            .iter_mut()
            .zip(&kms[rm.clone()])
            .zip(&dkms[rm])
        {
            *o += kv * (dv - s);
        }
    }
}

/// The forward of either op: `qkv` (`b` items of `3·h·d·n`) with memory `mem` (`2·h·d·m`,
/// keys then values, per head; empty where `m` is 0).
#[allow(clippy::too_many_arguments)]
fn forward(qkv: &[f32], mem: &[f32], b: usize, h: usize, d: usize, n: usize, m: usize) -> Vec<f32> {
    let scale = (d as f32).powf(-0.5);
    // SAFETY: `head_forward`'s last GEMM writes all `d × n` outputs of the head unread.
    unsafe {
        par_build_overwrite(b * h * d * n, d * n, |bh, o| {
            let (bi, hi) = (bh / h, bh % h);
            let base = bi * 3 * h * d * n;
            let q = &qkv[base + hi * d * n..][..d * n];
            let k = &qkv[base + (h + hi) * d * n..][..d * n];
            let v = &qkv[base + (2 * h + hi) * d * n..][..d * n];
            let memory = Memory {
                k: &mem[hi * d * m..][..d * m],
                v: &mem[(h + hi) * d * m..][..d * m],
                m,
            };
            with_scratch(0, forward_scratch(d, n, m), |buf| {
                head_forward(q, k, v, memory, d, n, scale, buf, o)
            });
        })
    }
}

/// The backward of either op for the output's gradient `g`: the gradients of `qkv` and of
/// `mem` (summed over the batch).
#[allow(clippy::too_many_arguments)]
fn backward(
    x: &[f32],
    mem: &[f32],
    g: &[f32],
    h: usize,
    d: usize,
    n: usize,
    m: usize,
) -> (Vec<f32>, Vec<f32>) {
    let scale = (d as f32).powf(-0.5);
    let mut dqkv = vec![0f32; x.len()];
    let dmem = dqkv
        .par_chunks_mut(3 * h * d * n)
        .enumerate()
        .map(|(bi, dx)| {
            let mut dmem = vec![0f32; 2 * h * d * m];
            let (dq_all, rest) = dx.split_at_mut(h * d * n);
            let (dk_all, dv_all) = rest.split_at_mut(h * d * n);
            let (dmk_all, dmv_all) = dmem.split_at_mut(h * d * m);
            let base = bi * 3 * h * d * n;
            for hi in 0..h {
                let q = &x[base + hi * d * n..][..d * n];
                let k = &x[base + (h + hi) * d * n..][..d * n];
                let v = &x[base + (2 * h + hi) * d * n..][..d * n];
                let memory = Memory {
                    k: &mem[hi * d * m..][..d * m],
                    v: &mem[(h + hi) * d * m..][..d * m],
                    m,
                };
                let go = &g[(bi * h + hi) * d * n..][..d * n];
                let grads = HeadGrads {
                    dq: &mut dq_all[hi * d * n..][..d * n],
                    dk: &mut dk_all[hi * d * n..][..d * n],
                    dv: &mut dv_all[hi * d * n..][..d * n],
                    dmk: &mut dmk_all[hi * d * m..][..d * m],
                    dmv: &mut dmv_all[hi * d * m..][..d * m],
                };
                with_scratch(0, backward_scratch(d, n, m), |buf| {
                    head_backward(q, k, v, memory, go, d, n, scale, buf, grads)
                });
            }
            dmem
        })
        .reduce(
            || vec![0f32; 2 * h * d * m],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
    (dqkv, dmem)
}

impl CustomOp1 for LinearAttentionOp {
    fn name(&self) -> &'static str {
        "ddpm-linear-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, n) = self.dims(l.dims())?;
        let qkv = cpu_slice(s, l, "linear attention input")?;
        let out = forward(qkv, &[], b, self.heads, self.dim_head, n, 0);
        let mut shape = l.dims().to_vec();
        shape[1] = self.heads * self.dim_head;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, n) = self.dims(qkv.dims())?;
        let (h, d) = (self.heads, self.dim_head);
        let dqkv = with_f32(qkv, |x| {
            with_f32(grad, |g| Ok(backward(x, &[], g, h, d, n, 0).0))
        })?;
        Ok(Some(cpu_tensor(dqkv, qkv.dims())?))
    }
}

/// lucidrains' `LinearAttention` core as one op: [`LinearAttentionOp`] with `mem` memory keys
/// and values per head before the image's (its `mem_kv`, `(2, heads, d, mem)`), which take
/// part in k's softmax and in the context `C`. `(qkv, mem_kv) → (B, heads·d, H, W)`; both get
/// gradients.
#[derive(Debug, Clone, Copy)]
pub struct LinearAttentionMemoryOp {
    /// The op without memory (heads and their width).
    pub attention: LinearAttentionOp,
    /// Memory columns per head.
    pub mem: usize,
}

/// lucidrains' linear-attention core through [`LinearAttentionMemoryOp`]: `qkv (B, 3·heads·d,
/// H, W)` and `mem_kv (2, heads, d, m)`. CPU `f32` only.
pub fn linear_attention_with_memory(
    qkv: &Tensor,
    mem_kv: &Tensor,
    heads: usize,
    dim_head: usize,
) -> Result<Tensor> {
    let dims = mem_kv.dims();
    if dims.len() != 4 || dims[..3] != [2, heads, dim_head] {
        candle_core::bail!(
            "linear attention: expected memory (2, {heads}, {dim_head}, m), got {dims:?}"
        );
    }
    let op = LinearAttentionMemoryOp {
        attention: LinearAttentionOp { heads, dim_head },
        mem: dims[3],
    };
    contiguous(qkv)?.apply_op2(&contiguous(mem_kv)?, op)
}

impl CustomOp2 for LinearAttentionMemoryOp {
    fn name(&self) -> &'static str {
        "ddpm-linear-attention-memory"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        sm: &CpuStorage,
        lm: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, n) = self.attention.dims(l.dims())?;
        let (h, d) = (self.attention.heads, self.attention.dim_head);
        let qkv = cpu_slice(s, l, "linear attention input")?;
        let mem = cpu_slice(sm, lm, "linear attention memory")?;
        let out = forward(qkv, mem, b, h, d, n, self.mem);
        let mut shape = l.dims().to_vec();
        shape[1] = h * d;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        mem: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, n) = self.attention.dims(qkv.dims())?;
        let (h, d) = (self.attention.heads, self.attention.dim_head);
        let (dqkv, dmem) = with_f32(qkv, |x| {
            with_f32(mem, |mk| {
                with_f32(grad, |g| Ok(backward(x, mk, g, h, d, n, self.mem)))
            })
        })?;
        Ok((
            Some(cpu_tensor(dqkv, qkv.dims())?),
            Some(cpu_tensor(dmem, mem.dims())?),
        ))
    }
}
