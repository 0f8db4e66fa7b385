//! `GroupNorm(G, C)` over `(N, C, H, W)` as one fused op: statistics, normalisation and the
//! per-channel affine in a single pass per group, with the analytic backward
//! `dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))`, `dx̂ = dy · γ`.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::reduce::par_chunk_sum;
use super::scratch::par_build_overwrite;
use super::simd::{group_norm_dx, scale_shift, sq_dev, sum, sum_and_xhat_dot};
use super::storage::{contiguous, cpu_tensor, input_weight_bias, with_f32_3};

/// The custom op: `(x (N, C, …), γ (C), β (C)) → y` of `x`'s shape.
#[derive(Debug, Clone, Copy)]
pub struct GroupNormOp {
    /// Number of groups (divides C).
    pub groups: usize,
    /// Added to the variance.
    pub eps: f64,
}

/// `GroupNorm(groups, C)(x)` with affine `weight`, `bias` through [`GroupNormOp`].
pub fn group_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    groups: usize,
    eps: f64,
) -> Result<Tensor> {
    contiguous(x)?.apply_op3(
        &contiguous(weight)?,
        &contiguous(bias)?,
        GroupNormOp { groups, eps },
    )
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    /// Elements per channel (H·W).
    s: usize,
    /// Channels per group.
    cg: usize,
}

impl GroupNormOp {
    fn dims(&self, x: &[usize]) -> Result<Dims> {
        if x.len() < 2 {
            candle_core::bail!("group_norm: expected at least 2 dims, got {x:?}");
        }
        let (n, c) = (x[0], x[1]);
        if self.groups == 0 || c % self.groups != 0 {
            candle_core::bail!(
                "group_norm: {} groups do not divide {c} channels",
                self.groups
            );
        }
        Ok(Dims {
            n,
            c,
            s: x[2..].iter().product(),
            cg: c / self.groups,
        })
    }
}

/// Mean and 1/σ of one group (two passes; 32-lane f32 partial sums, f64 totals per channel).
fn stats(xg: &[f32], eps: f64, s: usize) -> (f32, f32) {
    let len = xg.len().max(1) as f64;
    let mut total = 0f64;
    for ch in xg.chunks(s.max(1)) {
        total += sum(ch) as f64;
    }
    let mean = (total / len) as f32;
    let mut sq = 0f64;
    for ch in xg.chunks(s.max(1)) {
        sq += sq_dev(ch, mean) as f64;
    }
    (mean, (1.0 / (sq / len + eps).sqrt()) as f32)
}

fn forward(x: &[f32], gamma: &[f32], beta: &[f32], d: Dims, eps: f64) -> Vec<f32> {
    let glen = d.cg * d.s;
    // SAFETY: `scale_shift` writes the `cg` channels of `s` floats of the group, reading none.
    unsafe {
        par_build_overwrite(x.len(), glen, |gi, o| {
            let xg = &x[gi * glen..][..glen];
            let (mean, rstd) = stats(xg, eps, d.s);
            let c0 = (gi * d.cg) % d.c;
            for j in 0..d.cg {
                let (ga, be) = (gamma[c0 + j] * rstd, beta[c0 + j]);
                let sh = be - mean * ga;
                scale_shift(
                    &xg[j * d.s..(j + 1) * d.s],
                    ga,
                    sh,
                    &mut o[j * d.s..(j + 1) * d.s],
                );
            }
        })
    }
}

/// `(dx, dγ, dβ)`.
fn backward(x: &[f32], gamma: &[f32], gy: &[f32], d: Dims, eps: f64) -> [Vec<f32>; 3] {
    let glen = d.cg * d.s;
    let img = d.c * d.s;
    let mut dx = vec![0f32; x.len()];
    // dγ and dβ, summed over chunks of images; each chunk writes its images' dx.
    let mut dg = par_chunk_sum(d.n, 2 * d.c, &mut dx, |images, dxc, partial| {
        let (pg, pb) = partial.split_at_mut(d.c);
        for (i, dxi) in images.zip(dxc.chunks_mut(img)) {
            for g in 0..d.c / d.cg {
                let off = i * img + g * glen;
                let xg = &x[off..off + glen];
                let gg = &gy[off..off + glen];
                let (mean, rstd) = stats(xg, eps, d.s);
                // Σ dx̂ and Σ dx̂·x̂ over the group, per-channel sums for dγ, dβ.
                let (mut s1, mut s2) = (0f64, 0f64);
                for j in 0..d.cg {
                    let c = g * d.cg + j;
                    let r = j * d.s..(j + 1) * d.s;
                    let (sg, sgx) = sum_and_xhat_dot(&xg[r.clone()], &gg[r], mean, rstd);
                    pb[c] += sg;
                    pg[c] += sgx;
                    s1 += (sg * gamma[c]) as f64;
                    s2 += (sgx * gamma[c]) as f64;
                }
                let len = glen as f64;
                let (m1, m2) = ((s1 / len) as f32, (s2 / len) as f32);
                let dxg = &mut dxi[g * glen..(g + 1) * glen];
                for j in 0..d.cg {
                    let ga = gamma[g * d.cg + j];
                    let r = j * d.s..(j + 1) * d.s;
                    group_norm_dx(
                        &xg[r.clone()],
                        &gg[r.clone()],
                        mean,
                        rstd,
                        ga,
                        m1,
                        m2,
                        &mut dxg[r],
                    );
                }
            }
        }
    });
    let db = dg.split_off(d.c);
    [dx, dg, db]
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "ddpm-group-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims(l1.dims())?;
        let [x, g, b] = input_weight_bias("group_norm", (s1, l1), (s2, l2), (s3, l3), d.c)?;
        if g.len() != d.c {
            candle_core::bail!(
                "group_norm: weight has {} elements, expected {}",
                g.len(),
                d.c
            );
        }
        let out = forward(x, g, b, d, self.eps);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims(x.dims())?;
        let eps = self.eps;
        // One kernel on CUDA (ddpm-lab's GroupNorm backward), as its stand-in on the CPU.
        let name = crate::ops::cuda_op_names::GROUP_NORM_BACKWARD;
        crate::ops::stand_in(name, x.device(), || {
            let [dx, dg, db] = with_f32_3(x, gamma, grad, |xs, gs, gy| {
                Ok(backward(xs, gs, gy, d, eps))
            })?;
            Ok((
                Some(cpu_tensor(dx, x.dims())?),
                Some(cpu_tensor(dg, gamma.dims())?),
                Some(cpu_tensor(db, beta.dims())?),
            ))
        })
    }
}
