//! Depthwise `conv2d` (`groups = C`, one `k×k` filter per channel, stride 1, with bias) as a
//! direct kernel over padded planes, with input, weight and bias gradients. candle runs this as
//! C separate convolutions.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::reduce::par_chunk_sum;
use super::scratch::{par_build_overwrite, with_scratch};
use super::simd::{axpy, dot, taps_axpy};
use super::storage::{contiguous, cpu_tensor, input_weight_bias, with_f32_3};

/// The custom op: `(x (N, C, H, W), w (C, 1, k, k), b (C)) → (N, C, H', W')` with stride 1 and
/// padding `pad`.
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseConv2dOp {
    /// Zero padding on each side.
    pub pad: usize,
}

/// `conv2d(x, w, groups = C) + b` through [`DepthwiseConv2dOp`]. CPU `f32` only.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize) -> Result<Tensor> {
    contiguous(x)?.apply_op3(&contiguous(w)?, &contiguous(b)?, DepthwiseConv2dOp { pad })
}

/// Plane sizes of one depthwise conv.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    pad: usize,
    ho: usize,
    wo: usize,
    /// Padded plane width and height.
    pw: usize,
    ph: usize,
}

impl Dims {
    fn new(x: &[usize], w: &[usize], pad: usize) -> Result<Self> {
        let (&[n, c, h, wd], &[wc, one, k, k2]) = (x, w) else {
            candle_core::bail!("depthwise conv: expected 4-d input and weight, got {x:?}, {w:?}");
        };
        if wc != c || one != 1 || k != k2 || h + 2 * pad < k || wd + 2 * pad < k {
            candle_core::bail!("depthwise conv: weight {w:?} does not fit input {x:?}");
        }
        Ok(Self {
            n,
            c,
            h,
            w: wd,
            k,
            pad,
            ho: h + 2 * pad - k + 1,
            wo: wd + 2 * pad - k + 1,
            pw: wd + 2 * pad,
            ph: h + 2 * pad,
        })
    }

    /// Copies plane `src` (`h×w`) into the zero-padded `dst` (`ph×pw`).
    fn pad_plane(&self, src: &[f32], dst: &mut [f32]) {
        dst.fill(0.0);
        for y in 0..self.h {
            let o = (y + self.pad) * self.pw + self.pad;
            dst[o..o + self.w].copy_from_slice(&src[y * self.w..(y + 1) * self.w]);
        }
    }
}

// Both passes work in "padded-width" layout: an output row `oy` is stored at `oy·pw` with
// `pw − wo` garbage columns after it, so every filter tap becomes one long contiguous axpy (or
// dot product) over `ho·pw` elements that vectorises fully; the garbage columns are dropped
// (forward) or held at zero (backward).

/// Length of the padded-width output span touched by one tap.
fn span(d: &Dims) -> usize {
    (d.ho - 1) * d.pw + d.wo
}

fn forward(x: &[f32], wt: &[f32], b: &[f32], d: Dims) -> Vec<f32> {
    let (hw, ohw, kk) = (d.h * d.w, d.ho * d.wo, d.k * d.k);
    let len = span(&d);
    // Start of each tap (ky, kx) in the padded plane, in the weight's order.
    let offsets: Vec<usize> = (0..kk).map(|t| (t / d.k) * d.pw + t % d.k).collect();
    // SAFETY: the body copies `ho` rows of `wo` floats into each `ho·wo` plane, reading none.
    unsafe {
        par_build_overwrite(d.n * d.c * ohw, ohw, |plane, o| {
            let xi = &x[plane * hw..][..hw];
            let c = plane % d.c;
            let wc = &wt[c * kk..(c + 1) * kk];
            with_scratch(0, d.ph * d.pw + len, |buf| {
                let (padded, acc) = buf.split_at_mut(d.ph * d.pw);
                d.pad_plane(xi, padded);
                acc.fill(b[c]);
                taps_axpy(padded, &offsets, wc, acc);
                for oy in 0..d.ho {
                    o[oy * d.wo..(oy + 1) * d.wo].copy_from_slice(&acc[oy * d.pw..][..d.wo]);
                }
            });
        })
    }
}

/// `(dx, dw, db)`; `dx` is empty when not needed.
fn backward(x: &[f32], wt: &[f32], gy: &[f32], d: Dims, need_dx: bool) -> [Vec<f32>; 3] {
    let (hw, ohw, kk) = (d.h * d.w, d.ho * d.wo, d.k * d.k);
    let len = span(&d);
    let img = d.c * hw;
    let mut dx = if need_dx {
        vec![0f32; d.n * img]
    } else {
        Vec::new()
    };
    let plen = d.ph * d.pw;
    // dW and dB, summed over chunks of images; each chunk writes its images' dx.
    let mut dw = par_chunk_sum(d.n, d.c * kk + d.c, &mut dx, |images, dxc, partial| {
        let (pw, pb) = partial.split_at_mut(d.c * kk);
        let (first, last) = (images.start, images.end);
        with_scratch(0, 2 * plen + len, |buf| {
            let (padded, rest) = buf.split_at_mut(plen);
            let (dpad, gp) = rest.split_at_mut(plen);
            // Garbage columns of the padded-width gradient stay zero.
            gp.fill(0.0);
            for i in first..last {
                for c in 0..d.c {
                    let plane = i * d.c + c;
                    let gi = &gy[plane * ohw..(plane + 1) * ohw];
                    pb[c] += gi.iter().sum::<f32>();
                    for oy in 0..d.ho {
                        gp[oy * d.pw..][..d.wo].copy_from_slice(&gi[oy * d.wo..][..d.wo]);
                    }
                    d.pad_plane(&x[plane * hw..(plane + 1) * hw], padded);
                    let dwc = &mut pw[c * kk..(c + 1) * kk];
                    let wc = &wt[c * kk..(c + 1) * kk];
                    if need_dx {
                        dpad.fill(0.0);
                    }
                    for ky in 0..d.k {
                        for kx in 0..d.k {
                            let off = ky * d.pw + kx;
                            let src = &padded[off..off + len];
                            dwc[ky * d.k + kx] += dot(gp, src);
                            if need_dx {
                                axpy(wc[ky * d.k + kx], gp, &mut dpad[off..off + len]);
                            }
                        }
                    }
                    if need_dx {
                        let local = (i - first) * img + c * hw;
                        let dst = &mut dxc[local..local + hw];
                        for y in 0..d.h {
                            let o = (y + d.pad) * d.pw + d.pad;
                            dst[y * d.w..(y + 1) * d.w].copy_from_slice(&dpad[o..o + d.w]);
                        }
                    }
                }
            }
        })
    });
    let db = dw.split_off(d.c * kk);
    [dx, dw, db]
}

impl CustomOp3 for DepthwiseConv2dOp {
    fn name(&self) -> &'static str {
        "ddpm-depthwise-conv2d"
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
        let d = Dims::new(l1.dims(), l2.dims(), self.pad)?;
        let [x, w, b] = input_weight_bias("depthwise conv", (s1, l1), (s2, l2), (s3, l3), d.c)?;
        let out = forward(x, w, b, d);
        Ok((CpuStorage::F32(out), Shape::from((d.n, d.c, d.ho, d.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = Dims::new(x.dims(), w.dims(), self.pad)?;
        let need_dx = x.track_op();
        let [dx, dw, db] = with_f32_3(x, w, grad, |xs, ws, gs| {
            Ok(backward(xs, ws, gs, d, need_dx))
        })?;
        let dx = if need_dx {
            Some(cpu_tensor(dx, x.dims())?)
        } else {
            None
        };
        Ok((
            dx,
            Some(cpu_tensor(dw, w.dims())?),
            Some(cpu_tensor(db, &[d.c])?),
        ))
    }
}
