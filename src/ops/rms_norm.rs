//! lucidrains' `RMSNorm` (`F.normalize(x, dim=1) · γ`, γ = `g · √C`) over `(N, C, …)` as one
//! fused op: each position's channel vector scaled to unit length (its norm floored at 1e-12,
//! as `F.normalize`) and by the per-channel gain, in two passes per image; the backward
//! `dx = (dû − û · Σ_c dû·û) / ‖x‖` (`dû = dy · γ`; where the floor holds, `dû / 1e-12`) and
//! `dγ = Σ dy · û` in two more. Stock candle builds it of six ops forward and a dozen back.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::storage::{contiguous, cpu_slice, cpu_tensor, with_f32_3};

/// `F.normalize`'s floor on the norm.
pub const EPS: f32 = 1e-12;

/// The custom op: `(x (N, C, …), γ (C)) → x / max(‖x‖_C, EPS) · γ`.
#[derive(Debug, Clone, Copy)]
pub struct RmsNormOp;

/// `x / max(‖x‖ over channels, 1e-12) · gain` through [`RmsNormOp`]. CPU `f32` only.
pub fn rms_norm(x: &Tensor, gain: &Tensor) -> Result<Tensor> {
    contiguous(x)?.apply_op2(&contiguous(gain)?, RmsNormOp)
}

/// `(N, C, positions per channel)`, checking the gain fits.
fn dims(x: &[usize], gain: &[usize]) -> Result<(usize, usize, usize)> {
    if x.len() < 2 || gain.iter().product::<usize>() != x[1] {
        candle_core::bail!("rms_norm: x {x:?} needs a gain of C = x[1] values, got {gain:?}");
    }
    Ok((x[0], x[1], x[2..].iter().product()))
}

/// `1 / max(‖x‖, EPS)` at each of the `s` positions of one image `x` (`C × s`).
fn inverse_norms(x: &[f32], c: usize, s: usize) -> Vec<f32> {
    let mut acc = vec![0f32; s];
    for ch in 0..c {
        for (a, &v) in acc.iter_mut().zip(&x[ch * s..(ch + 1) * s]) {
            *a += v * v;
        }
    }
    acc.iter().map(|&q| 1.0 / q.sqrt().max(EPS)).collect()
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "ddpm-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, s) = dims(l1.dims(), l2.dims())?;
        let x = cpu_slice(s1, l1, "rms_norm input")?;
        let g = cpu_slice(s2, l2, "rms_norm gain")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut((c * s).max(1))
            .zip(x.par_chunks((c * s).max(1)))
            .for_each(|(o, xi)| {
                let inv = inverse_norms(xi, c, s);
                for ((oc, xc), &gc) in o.chunks_mut(s.max(1)).zip(xi.chunks(s.max(1))).zip(g) {
                    for ((y, &v), &k) in oc.iter_mut().zip(xc).zip(&inv) {
                        *y = v * k * gc;
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gain: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, c, s) = dims(x.dims(), gain.dims())?;
        let per_image = (c * s).max(1);
        let (dx, dg) = with_f32_3(x, grad, gain, |xs, gy, g| {
            let mut dx = vec![0f32; xs.len()];
            let dg = dx
                .par_chunks_mut(per_image)
                .zip(xs.par_chunks(per_image).zip(gy.par_chunks(per_image)))
                .map(|(dxi, (xi, gi))| {
                    let inv = inverse_norms(xi, c, s);
                    // Σ_c dû·û at each position, and this image's share of dγ.
                    let mut dot = vec![0f32; s];
                    let mut dg = vec![0f64; c];
                    for ch in 0..c {
                        let r = ch * s..(ch + 1) * s;
                        let mut gsum = 0f64;
                        for (((d, &v), &dy), &k) in
                            dot.iter_mut().zip(&xi[r.clone()]).zip(&gi[r]).zip(&inv)
                        {
                            let u = v * k;
                            gsum += (dy * u) as f64;
                            *d += dy * g[ch] * u;
                        }
                        dg[ch] = gsum;
                    }
                    let planes = dxi
                        .chunks_mut(s.max(1))
                        .zip(xi.chunks(s.max(1)))
                        .zip(gi.chunks(s.max(1)));
                    for (((dxc, xc), gc), &gain) in planes.zip(g) {
                        for ((((o, &v), &dy), &k), &d) in
                            dxc.iter_mut().zip(xc).zip(gc).zip(&inv).zip(&dot)
                        {
                            // Where the floor holds, the norm is a constant: no projection.
                            let d = if k >= 1.0 / EPS { 0.0 } else { d };
                            *o = k * (dy * gain - v * k * d);
                        }
                    }
                    dg
                })
                .reduce(
                    || vec![0f64; c],
                    |mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                        a
                    },
                );
            Ok((dx, dg.into_iter().map(|v| v as f32).collect::<Vec<f32>>()))
        })?;
        Ok((
            Some(cpu_tensor(dx, x.dims())?),
            Some(cpu_tensor(dg, gain.dims())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The composite `F.normalize(x, dim=1) · γ` the op replaces.
    fn composite(x: &Tensor, gain: &Tensor) -> Result<Tensor> {
        let c = gain.dim(0)?;
        let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(EPS as f64)?;
        x.broadcast_div(&norm)?
            .broadcast_mul(&gain.reshape((1, c, 1, 1))?)
    }

    #[test]
    fn forward_and_gradients_match_the_composite() {
        let mut rng = crate::rng::LabRng::new(4);
        let dev = Device::Cpu;
        let xv = rng.randn(&[3, 5, 4, 3], &dev).unwrap();
        let x = Var::from_tensor(&xv).unwrap();
        let g = Var::from_tensor(&(rng.randn(&[5], &dev).unwrap() + 1.0).unwrap()).unwrap();
        let w = rng.randn(&[3, 5, 4, 3], &dev).unwrap();
        let ours = rms_norm(x.as_tensor(), g.as_tensor()).unwrap();
        let theirs = composite(x.as_tensor(), g.as_tensor()).unwrap();
        let diff = crate::ops::max_abs_diff;
        assert!(diff(&ours, &theirs) < 1e-5);
        let ga = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (theirs * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &g] {
            let (a, b) = (ga.get(v).unwrap(), gb.get(v).unwrap());
            assert!(diff(a, b) < 1e-4, "gradient differs by {}", diff(a, b));
        }
    }

    /// A position whose channels are all zero stays zero and keeps a finite gradient (the
    /// floor is a constant there), where the composite's square root gives NaN.
    #[test]
    fn a_zero_vector_stays_zero_with_a_finite_gradient() {
        let dev = Device::Cpu;
        let x =
            Var::from_tensor(&Tensor::zeros((1, 3, 2, 1), candle_core::DType::F32, &dev).unwrap())
                .unwrap();
        let g = Tensor::ones(3, candle_core::DType::F32, &dev).unwrap();
        let y = rms_norm(x.as_tensor(), &g).unwrap();
        let ys: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert!(ys.iter().all(|&v| v == 0.0));
        let grads = y.sum_all().unwrap().backward().unwrap();
        let dx: Vec<f32> = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(dx.iter().all(|v| v.is_finite()), "{dx:?}");
    }
}
