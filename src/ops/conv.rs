//! `conv2d` (groups = 1, square kernel, any stride and padding, with bias): stride-1 convs with
//! a kernel bigger than 1×1 through the direct kernel of [`direct_conv`] on CPUs with AVX-512F,
//! the rest as im2col + GEMM. The backward computes the weight gradient by GEMM against im2col (or,
//! for 3×3 stride-1 convs on maps of 10×10 and more whose input gradient also runs through the
//! direct kernel or is not needed, by the direct kernel's weight-gradient tile)
//! and the input gradient as a conv with the flipped, transposed kernel (stride 1, direct or GEMM)
//! or by GEMM + col2im (no conv-transpose loop), parallel over images.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::direct_conv::{self, PackedWeights};
use super::geometry::ConvGeom;
use super::reduce::par_chunk_sum;
use super::scratch::{par_build_overwrite, with_scratch};
use super::sgemm::{sgemm, MatRef};
use super::simd::sum;
use super::storage::{contiguous, cpu_tensor, input_weight_bias, with_f32_3};

/// The custom op: `(x (N, Ci, H, W), w (Co, Ci, k, k), b (Co)) → (N, Co, Ho, Wo)`.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dOp {
    /// Stride on both axes.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

/// `conv2d(x, w) + b` through [`Conv2dOp`]; `b = None` adds nothing. CPU `f32` only.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    let co = w.dim(0)?;
    let b = match b {
        Some(b) => b.clone(),
        None => Tensor::zeros(co, w.dtype(), w.device())?,
    };
    contiguous(x)?.apply_op3(&contiguous(w)?, &contiguous(&b)?, Conv2dOp { stride, pad })
}

impl Conv2dOp {
    fn geometry(&self, x: &[usize], w: &[usize]) -> Result<(usize, ConvGeom, usize)> {
        let (&[n, ci, h, wd], &[co, wci, k, k2]) = (x, w) else {
            candle_core::bail!("conv2d: expected 4-d input and weight, got {x:?} and {w:?}");
        };
        if wci != ci || k != k2 {
            candle_core::bail!("conv2d: weight {w:?} does not fit input {x:?}");
        }
        Ok((n, ConvGeom::new(ci, h, wd, k, self.stride, self.pad)?, co))
    }
}

/// Images per GEMM: at low resolution several images go side by side so the GEMM's N
/// (images · Ho · Wo) reaches about 512 columns (a 7×7 map alone gives N = 49, which runs far
/// below the GEMM's peak).
fn group_size(hw: usize) -> usize {
    (512 / hw.max(1)).clamp(1, 16)
}

/// [`group_size`] shrunk (down to half) so that `n` images split into groups that keep all
/// `threads` cores busy: 16 images at 7×7 run as 8 + 8, not 10 + 6.
fn balanced_group_size(n: usize, hw: usize, threads: usize) -> usize {
    let gs = group_size(hw);
    let threads = threads.max(1);
    // The busiest core's images when the groups (the last one partial) are dealt out in turn;
    // ties go to bigger groups.
    let makespan = |g: usize| {
        let groups = n.div_ceil(g);
        (0..threads.min(groups))
            .map(|t| {
                (t..groups)
                    .step_by(threads)
                    .map(|i| g.min(n - i * g))
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0)
    };
    (gs.div_ceil(2)..=gs)
        .rev()
        .min_by_key(|&g| makespan(g))
        .unwrap_or(gs)
}

/// Output rows per im2col band: the band's column matrix (`rows × band·wo` floats) stays within
/// about 256 KiB, a fraction of a core's L2, but holds at least 64 columns so the GEMM stays
/// efficient.
fn band_rows(rows: usize, wo: usize, ho: usize) -> usize {
    let budget = (64 * 1024) / rows.max(1);
    (budget.max(64) / wo.max(1)).clamp(1, ho.max(1))
}

/// Copies `m` images' `(rows, hw)` planes side by side into `dst` (`rows × m·hw`).
fn gather(src: &[f32], rows: usize, hw: usize, m: usize, dst: &mut [f32]) {
    let ld = m * hw;
    for j in 0..m {
        for r in 0..rows {
            dst[r * ld + j * hw..][..hw].copy_from_slice(&src[(j * rows + r) * hw..][..hw]);
        }
    }
}

/// The inverse of [`gather`]: `dst` holds `m` images of `(rows, hw)`.
fn scatter(src: &[f32], rows: usize, hw: usize, m: usize, dst: &mut [f32]) {
    let ld = m * hw;
    for j in 0..m {
        for r in 0..rows {
            dst[(j * rows + r) * hw..][..hw].copy_from_slice(&src[r * ld + j * hw..][..hw]);
        }
    }
}

/// Forward over a contiguous batch: returns `(N, Co, Ho, Wo)` data. Stride-1 convs with a
/// kernel bigger than 1×1 run through the direct kernel where the CPU has it
/// ([`direct_conv::supports`]), the rest as im2col + GEMM ([`forward_im2col`]).
pub fn forward(x: &[f32], w: &[f32], b: &[f32], n: usize, g: ConvGeom, co: usize) -> Vec<f32> {
    if !direct_conv::supports(&g) {
        return forward_im2col(x, w, b, n, g, co);
    }
    let packed = PackedWeights::new(w, Some(b), co, g.c, g.k);
    direct_conv::forward(x, n, &g, &packed)
}

/// [`forward`] as im2col + GEMM whatever the geometry and CPU.
pub fn forward_im2col(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    n: usize,
    g: ConvGeom,
    co: usize,
) -> Vec<f32> {
    let hw = g.cols();
    let rows = g.rows();
    let img = g.image_len();
    let gs = balanced_group_size(n, hw, rayon::current_num_threads());
    // SAFETY: one image: the bias fill writes all `co` rows before the GEMM adds onto them;
    // several: `scatter` writes every output of the group from the GEMM's result.
    unsafe {
        par_build_overwrite(n * co * hw, gs * co * hw, |i, o| {
            let m = o.len() / (co * hw);
            let xs = &x[i * gs * img..][..m * img];
            let ld = m * hw;
            if m == 1 {
                for (c, &bc) in b.iter().enumerate() {
                    o[c * hw..(c + 1) * hw].fill(bc);
                }
                if g.is_pointwise() {
                    let (lhs, rhs) = (MatRef::rows(w, rows), MatRef::rows(xs, hw));
                    sgemm(co, hw, rows, o, hw, true, lhs, rhs, false);
                } else {
                    // One band of output rows at a time, so the column matrix stays in L2.
                    let band = band_rows(rows, g.wo, g.ho);
                    with_scratch(0, rows * band * g.wo, |cols| {
                        let mut oy0 = 0;
                        while oy0 < g.ho {
                            let oy1 = (oy0 + band).min(g.ho);
                            let bw = (oy1 - oy0) * g.wo;
                            g.im2col_band(xs, cols, bw, oy0, oy1);
                            let (lhs, rhs) = (MatRef::rows(w, rows), MatRef::rows(cols, bw));
                            sgemm(
                                co,
                                bw,
                                rows,
                                &mut o[oy0 * g.wo..],
                                hw,
                                true,
                                lhs,
                                rhs,
                                false,
                            );
                            oy0 = oy1;
                        }
                    });
                }
                return;
            }
            with_scratch(0, rows * ld, |cols| {
                if g.is_pointwise() {
                    gather(xs, rows, hw, m, cols);
                } else {
                    for j in 0..m {
                        g.im2col_ld(&xs[j * img..(j + 1) * img], &mut cols[j * hw..], ld);
                    }
                }
                with_scratch(1, co * ld, |tmp| {
                    let (lhs, rhs) = (MatRef::rows(w, rows), MatRef::rows(cols, ld));
                    sgemm(co, ld, rows, tmp, ld, false, lhs, rhs, false);
                    for (c, &bc) in b.iter().enumerate() {
                        let row = &mut tmp[c * ld..(c + 1) * ld];
                        row.iter_mut().for_each(|v| *v += bc);
                    }
                    scatter(tmp, co, hw, m, o);
                });
            });
        })
    }
}

/// The three gradients of the op.
pub struct ConvGrads {
    /// Input gradient `(N, Ci, H, W)` (when asked for).
    pub dx: Option<Vec<f32>>,
    /// Weight gradient `(Co, Ci, k, k)`.
    pub dw: Vec<f32>,
    /// Bias gradient `(Co)`.
    pub db: Vec<f32>,
}

/// Backward over a contiguous batch, given the output gradient `gy` `(N, Co, Ho, Wo)`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    w: &[f32],
    gy: &[f32],
    n: usize,
    g: ConvGeom,
    co: usize,
    need_dx: bool,
) -> ConvGrads {
    let hw = g.cols();
    let rows = g.rows();
    let img = g.image_len();
    let gs = group_size(hw);
    let mut dx = if need_dx {
        vec![0f32; n * img]
    } else {
        Vec::new()
    };
    // Stride 1: dx is a conv of gy with the flipped, transposed kernel, through the direct
    // kernel where it runs (no im2col of gy; its weights packed straight from `w`), otherwise
    // as a GEMM over that kernel laid out as a matrix.
    let flip_geom = if need_dx && !g.is_pointwise() {
        flipped_geometry(g, co)
    } else {
        None
    };
    let direct = flip_geom
        .filter(direct_conv::supports)
        .map(|_| PackedWeights::flipped_transpose(w, co, g.c, g.k));
    let flipped = match (flip_geom, &direct) {
        (Some(tg), None) => Some((tg, flipped_transpose(w, g, co))),
        _ => None,
    };
    let trows = flipped.as_ref().map_or(0, |(tg, _)| tg.rows());
    let ci = g.c;
    let plane = g.h * g.w;
    // dW and dB, summed over chunks of images; each chunk writes its images' dx.
    // 3×3 stride-1 convs on maps of 10×10 and more take their weight gradient from the direct
    // kernel too, where their input gradient also runs through the direct kernel or is not
    // needed (a padding of 3 or more has no flipped direct conv: that stays on the GEMM path).
    let direct_dw = direct_conv::weight_grad_pays(&g) && (!need_dx || direct.is_some());
    let mut dw = par_chunk_sum(n, co * rows + co, &mut dx, |images, dxc, partial| {
        let (pw, pb) = partial.split_at_mut(co * rows);
        let (first, last) = (images.start, images.end);
        if direct_dw {
            let m = last - first;
            let xs = &x[first * img..last * img];
            let gys = &gy[first * co * hw..last * co * hw];
            for (c, row) in gys.chunks_exact(hw).enumerate() {
                pb[c % co] += sum(row);
            }
            direct_conv::weight_grad_images(xs, gys, m, &g, co, pw);
            if let (Some(tg), Some(packed)) = (&flip_geom, &direct) {
                direct_conv::conv_images(gys, m, tg, packed, dxc);
            }
            return;
        }
        let mut sub = first;
        while sub < last {
            let m = gs.min(last - sub);
            let ld = m * hw;
            let xs = &x[sub * img..(sub + m) * img];
            let gys = &gy[sub * co * hw..(sub + m) * co * hw];
            // Scratch 1: gathered gy (co × ld), then the dx work matrix.
            // The flipped conv runs over input pixels: its GEMM has N = m·H·W.
            let lt = m * plane;
            let work = if direct.is_some() {
                0
            } else if flipped.is_some() {
                trows * lt + ci * lt
            } else {
                rows * ld
            };
            with_scratch(1, co * ld + work, |buf| {
                let (gbuf, work) = buf.split_at_mut(co * ld);
                let gg: &[f32] = if m == 1 {
                    gys
                } else {
                    gather(gys, co, hw, m, gbuf);
                    gbuf
                };
                for (c, acc) in pb.iter_mut().enumerate() {
                    *acc += gg[c * ld..(c + 1) * ld].iter().sum::<f32>();
                }
                // dW += gy (Co × ld) · colsᵀ (ld × rows)
                if g.is_pointwise() && m == 1 {
                    let (lhs, rhs) = (MatRef::rows(gg, ld), MatRef::rows_t(xs, ld));
                    sgemm(co, rows, ld, pw, rows, true, lhs, rhs, false);
                } else {
                    with_scratch(0, rows * ld, |cols| {
                        if g.is_pointwise() {
                            gather(xs, rows, hw, m, cols);
                        } else {
                            for j in 0..m {
                                let xi = &xs[j * img..(j + 1) * img];
                                g.im2col_ld(xi, &mut cols[j * hw..], ld);
                            }
                        }
                        let (lhs, rhs) = (MatRef::rows(gg, ld), MatRef::rows_t(cols, ld));
                        sgemm(co, rows, ld, pw, rows, true, lhs, rhs, false);
                    });
                }
                if !need_dx {
                    return;
                }
                let dxs = &mut dxc[(sub - first) * img..(sub - first + m) * img];
                if let (Some(tg), Some(packed)) = (&flip_geom, &direct) {
                    direct_conv::conv_images(gys, m, tg, packed, dxs);
                } else if let Some((tg, wf)) = &flipped {
                    // Stride 1: dx = conv(gy, flipped Wᵀ) — a GEMM with K = Co·k·k and no
                    // col2im (the (rows × ld) GEMM with K = Co would be memory-bound).
                    let (tcols, dtmp) = work.split_at_mut(trows * lt);
                    for j in 0..m {
                        let gi = &gys[j * co * hw..(j + 1) * co * hw];
                        tg.im2col_ld(gi, &mut tcols[j * plane..], lt);
                    }
                    let (lhs, rhs) = (MatRef::rows(wf, trows), MatRef::rows(tcols, lt));
                    if m == 1 {
                        sgemm(ci, lt, trows, dxs, lt, false, lhs, rhs, false);
                    } else {
                        sgemm(ci, lt, trows, dtmp, lt, false, lhs, rhs, false);
                        scatter(dtmp, ci, plane, m, dxs);
                    }
                } else {
                    // dcols = Wᵀ (rows × Co) · gy (Co × ld)
                    let (lhs, rhs) = (MatRef::rows_t(w, rows), MatRef::rows(gg, ld));
                    if g.is_pointwise() && m == 1 {
                        sgemm(rows, ld, co, dxs, ld, false, lhs, rhs, false);
                    } else {
                        sgemm(rows, ld, co, work, ld, false, lhs, rhs, false);
                        if g.is_pointwise() {
                            scatter(work, rows, hw, m, dxs);
                        } else {
                            for j in 0..m {
                                let dxi = &mut dxs[j * img..(j + 1) * img];
                                g.col2im_add_ld(&work[j * hw..], ld, dxi);
                            }
                        }
                    }
                }
            });
            sub += m;
        }
    });
    let db = dw.split_off(co * rows);
    ConvGrads {
        dx: need_dx.then_some(dx),
        dw,
        db,
    }
}

/// For a stride-1 conv, the geometry of `conv(gy, W′)` that gives the input gradient: over the
/// `(Co, Ho, Wo)` output gradient with padding `k − 1 − p`. `None` for other strides.
fn flipped_geometry(g: ConvGeom, co: usize) -> Option<ConvGeom> {
    let k = g.k;
    if g.stride != 1 || g.pad + 1 > k {
        return None;
    }
    let tg = ConvGeom::new(co, g.ho, g.wo, k, 1, k - 1 - g.pad).ok()?;
    (tg.ho == g.h && tg.wo == g.w).then_some(tg)
}

/// `W′ (Ci × Co·k·k)` for [`flipped_geometry`], `W′[ci, (co, a, b)] = W[co, ci, k−1−a, k−1−b]`.
fn flipped_transpose(w: &[f32], g: ConvGeom, co: usize) -> Vec<f32> {
    let kk = g.k * g.k;
    let mut wf = vec![0f32; g.c * co * kk];
    for o in 0..co {
        for c in 0..g.c {
            let src = &w[(o * g.c + c) * kk..][..kk];
            let dst = &mut wf[(c * co + o) * kk..][..kk];
            for (i, d) in dst.iter_mut().enumerate() {
                *d = src[kk - 1 - i];
            }
        }
    }
    wf
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "ddpm-conv2d"
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
        let (n, g, co) = self.geometry(l1.dims(), l2.dims())?;
        let [x, w, b] = input_weight_bias("conv2d", (s1, l1), (s2, l2), (s3, l3), co)?;
        let out = forward(x, w, b, n, g, co);
        Ok((CpuStorage::F32(out), Shape::from((n, co, g.ho, g.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, g, co) = self.geometry(x.dims(), w.dims())?;
        let need_dx = x.track_op();
        let grads = with_f32_3(x, w, grad, |xs, ws, gs| {
            Ok(backward(xs, ws, gs, n, g, co, need_dx))
        })?;
        let dx = match grads.dx {
            Some(d) => Some(cpu_tensor(d, x.dims())?),
            None => None,
        };
        Ok((
            dx,
            Some(cpu_tensor(grads.dw, w.dims())?),
            Some(cpu_tensor(grads.db, &[co])?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_both_cores_busy() {
        // 7×7 maps: ten images per GEMM alone, but 16 images split as 8 + 8 on two cores.
        assert_eq!(group_size(49), 10);
        assert_eq!(balanced_group_size(16, 49, 2), 8);
        assert_eq!(balanced_group_size(128, 49, 2), 8);
        assert_eq!(balanced_group_size(64, 49, 2), 8);
        // Already balanced, or one core: the full group.
        assert_eq!(balanced_group_size(20, 49, 2), 10);
        assert_eq!(balanced_group_size(16, 49, 1), 10);
        // 28×28 maps: one image per GEMM whatever the batch.
        assert_eq!(balanced_group_size(3, 784, 2), 1);
    }
}
