//! Convolution geometry and the im2col / col2im transforms for one image.
//!
//! For a `k×k` kernel with stride `s` and zero padding `p` over a `(C, H, W)` image, im2col
//! builds the `(C·k·k) × (Ho·Wo)` matrix whose row `(c, ky, kx)` and column `(oy, ox)` holds
//! `x[c, oy·s + ky − p, ox·s + kx − p]` (0 outside the image). col2im is its adjoint: it adds
//! every entry back onto the pixel it came from.

use candle_core::Result;

/// The shape of one 2-D convolution (square kernel, same stride and padding on both axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
}

impl ConvGeom {
    /// The geometry of a conv over a `(c, h, w)` image; fails when the kernel does not fit.
    pub fn new(c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Result<Self> {
        if k == 0 || stride == 0 {
            candle_core::bail!("conv: kernel and stride must be at least 1");
        }
        if h + 2 * pad < k || w + 2 * pad < k {
            candle_core::bail!("conv: kernel {k} does not fit a {h}×{w} input with padding {pad}");
        }
        Ok(Self {
            c,
            h,
            w,
            k,
            stride,
            pad,
            ho: (h + 2 * pad - k) / stride + 1,
            wo: (w + 2 * pad - k) / stride + 1,
        })
    }

    /// Rows of the im2col matrix (`C·k·k`).
    pub fn rows(&self) -> usize {
        self.c * self.k * self.k
    }

    /// Columns of the im2col matrix (`Ho·Wo`).
    pub fn cols(&self) -> usize {
        self.ho * self.wo
    }

    /// Elements of one input image.
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// A 1×1 conv with stride 1 and no padding: im2col is the identity.
    pub fn is_pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// The range of output columns `ox` whose input column `ox·s + kx − p` lies inside the image.
    fn valid_range(&self, kx: usize, out: usize, size: usize) -> (usize, usize) {
        let s = self.stride;
        // ox·s + kx ≥ p  ⇔  ox ≥ ceil((p − kx) / s)
        let lo = if kx >= self.pad {
            0
        } else {
            (self.pad - kx).div_ceil(s)
        };
        // ox·s + kx − p ≤ size − 1  ⇔  ox ≤ (size − 1 + p − kx) / s
        let hi = if size + self.pad > kx {
            ((size - 1 + self.pad - kx) / s + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// Fills `cols` (`rows() × cols()`, row-major) from the image `x` (`(C, H, W)`).
    pub fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        self.im2col_ld(x, cols, self.cols());
    }

    /// [`Self::im2col`] into a matrix with row stride `ld ≥ cols()` (several images side by
    /// side: pass `&mut cols[j·cols()..]` for image `j`).
    pub fn im2col_ld(&self, x: &[f32], cols: &mut [f32], ld: usize) {
        self.im2col_band(x, cols, ld, 0, self.ho);
    }

    /// The columns of [`Self::im2col`] for the output rows `oy0..oy1` only (`(oy1 − oy0)·Wo`
    /// columns, row stride `ld`): lets a caller build and consume the matrix one cache-sized band
    /// at a time.
    pub fn im2col_band(&self, x: &[f32], cols: &mut [f32], ld: usize, oy0: usize, oy1: usize) {
        let (k, s, p) = (self.k, self.stride, self.pad);
        assert!(oy0 <= oy1 && oy1 <= self.ho);
        let bw = (oy1 - oy0) * self.wo;
        assert!(ld >= bw && x.len() >= self.image_len());
        if bw == 0 {
            return;
        }
        assert!(cols.len() >= (self.rows() - 1) * ld + bw);
        // A stride-s conv reads, for each tap, one of the s² polyphase components of the image
        // (`poly[py][px][r][j] = plane[r·s + py][j·s + px]`). When a component is as wide as
        // the output (always for s = 1 'same' convs and for the UNet's Downsample), the valid
        // outputs of a tap form one contiguous run in both the component and the matrix row:
        // copy it in one go, then zero the padding columns it wrapped into.
        let (pw, ph) = (self.w.div_ceil(s), self.h.div_ceil(s));
        let fast = pw == self.wo;
        let mut poly = if fast && s > 1 {
            vec![0f32; s * s * ph * pw]
        } else {
            Vec::new()
        };
        for c in 0..self.c {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            if fast && s > 1 {
                for (iy, src) in plane.chunks_exact(self.w).enumerate() {
                    for px in 0..s {
                        let at = (((iy % s) * s + px) * ph + iy / s) * pw;
                        for (d, &v) in poly[at..at + pw]
                            .iter_mut()
                            .zip(src.iter().skip(px).step_by(s))
                        {
                            *d = v;
                        }
                    }
                }
            }
            for ky in 0..k {
                let (ylo, yhi) = self.valid_range(ky, self.ho, self.h);
                let (ylo, yhi) = (ylo.clamp(oy0, oy1), yhi.clamp(oy0, oy1));
                for kx in 0..k {
                    let row = (c * k + ky) * k + kx;
                    let dst = &mut cols[row * ld..row * ld + bw];
                    let (xlo, xhi) = self.valid_range(kx, self.wo, self.w);
                    if ylo >= yhi || xlo >= xhi {
                        dst.fill(0.0);
                        continue;
                    }
                    if fast {
                        // Input (iy, ix) = (oy·s + ky − p, ox·s + kx − p) lives in component
                        // ((ky − p) mod s, (kx − p) mod s) at (oy + ⌊(ky − p)/s⌋, ox + ⌊(kx − p)/s⌋).
                        let (dy, dx) = (ky as isize - p as isize, kx as isize - p as isize);
                        let si = s as isize;
                        let comp: &[f32] = if s == 1 {
                            plane
                        } else {
                            let at = (dy.rem_euclid(si) as usize * s + dx.rem_euclid(si) as usize)
                                * ph
                                * pw;
                            &poly[at..at + ph * pw]
                        };
                        let w = self.wo;
                        let start = (ylo - oy0) * w + xlo;
                        let end = (yhi - 1 - oy0) * w + xhi;
                        let src0 = ((ylo as isize + dy.div_euclid(si)) * w as isize
                            + xlo as isize
                            + dx.div_euclid(si)) as usize;
                        dst[start..end].copy_from_slice(&comp[src0..src0 + (end - start)]);
                        dst[..start].fill(0.0);
                        dst[end..].fill(0.0);
                        // The padding columns (at most ⌈p/s⌉ on each side), as strided stores:
                        // a `fill` per output row would be a memset call for one or two floats.
                        for j in (0..xlo).chain(xhi..w) {
                            for oy in ylo..yhi {
                                dst[(oy - oy0) * w + j] = 0.0;
                            }
                        }
                        continue;
                    }
                    for oy in oy0..oy1 {
                        let drow = &mut dst[(oy - oy0) * self.wo..(oy + 1 - oy0) * self.wo];
                        if oy < ylo || oy >= yhi {
                            drow.fill(0.0);
                            continue;
                        }
                        let iy = oy * s + ky - p;
                        let src = &plane[iy * self.w..(iy + 1) * self.w];
                        drow[..xlo].fill(0.0);
                        drow[xhi..].fill(0.0);
                        let ix0 = xlo * s + kx - p;
                        for (j, d) in drow[xlo..xhi].iter_mut().enumerate() {
                            *d = src[ix0 + j * s];
                        }
                    }
                }
            }
        }
    }

    /// Adds `cols` (`rows() × cols()`) back onto the image `x` (`(C, H, W)`): `x += col2im(cols)`.
    pub fn col2im_add(&self, cols: &[f32], x: &mut [f32]) {
        self.col2im_add_ld(cols, self.cols(), x);
    }

    /// [`Self::col2im_add`] from a matrix with row stride `ld ≥ cols()`.
    pub fn col2im_add_ld(&self, cols: &[f32], ld: usize, x: &mut [f32]) {
        let (k, s, p) = (self.k, self.stride, self.pad);
        let hw = self.cols();
        assert!(ld >= hw && x.len() >= self.image_len());
        assert!(cols.len() >= (self.rows() - 1) * ld + hw);
        for c in 0..self.c {
            let plane = &mut x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..k {
                let (ylo, yhi) = self.valid_range(ky, self.ho, self.h);
                for kx in 0..k {
                    let row = (c * k + ky) * k + kx;
                    let src = &cols[row * ld..row * ld + hw];
                    let (xlo, xhi) = self.valid_range(kx, self.wo, self.w);
                    if xlo >= xhi {
                        continue;
                    }
                    for oy in ylo..yhi {
                        let iy = oy * s + ky - p;
                        let dst = &mut plane[iy * self.w..(iy + 1) * self.w];
                        let srow = &src[oy * self.wo + xlo..oy * self.wo + xhi];
                        let ix0 = xlo * s + kx - p;
                        if s == 1 {
                            for (d, v) in dst[ix0..ix0 + srow.len()].iter_mut().zip(srow) {
                                *d += *v;
                            }
                        } else {
                            for (j, v) in srow.iter().enumerate() {
                                dst[ix0 + j * s] += *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_im2col(g: &ConvGeom, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; g.rows() * g.cols()];
        for c in 0..g.c {
            for ky in 0..g.k {
                for kx in 0..g.k {
                    let row = (c * g.k + ky) * g.k + kx;
                    for oy in 0..g.ho {
                        for ox in 0..g.wo {
                            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                            let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                out[row * g.cols() + oy * g.wo + ox] =
                                    x[(c * g.h + iy as usize) * g.w + ix as usize];
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn im2col_matches_naive_and_col2im_is_its_adjoint() {
        for &(c, h, w, k, s, p) in &[
            (2, 5, 6, 3, 1, 1),
            (3, 6, 6, 3, 1, 1),
            (2, 9, 9, 5, 1, 2),
            (1, 4, 4, 7, 1, 3),
            (3, 7, 7, 7, 1, 3),
            (2, 8, 8, 4, 2, 1),
            (1, 5, 5, 1, 1, 0),
            (2, 3, 4, 3, 2, 0),
            // Strided convs whose polyphase components are as wide as the output (fast path),
            // with odd sizes, h ≠ w, stride 3, padding larger than the stride; and two that
            // are not.
            (2, 7, 7, 3, 2, 1),
            (2, 9, 9, 3, 3, 1),
            (1, 10, 6, 4, 2, 1),
            (2, 6, 6, 2, 2, 0),
            (2, 5, 5, 5, 2, 2),
            (2, 7, 7, 4, 2, 1),
            (3, 8, 8, 3, 2, 0),
        ] {
            let g = ConvGeom::new(c, h, w, k, s, p).unwrap();
            let x: Vec<f32> = (0..g.image_len()).map(|i| (i as f32 * 0.7).sin()).collect();
            let mut cols = vec![f32::NAN; g.rows() * g.cols()];
            g.im2col(&x, &mut cols);
            assert_eq!(cols, naive_im2col(&g, &x), "{c} {h} {w} {k} {s} {p}");
            // Every band of output rows gives the matching columns.
            for (oy0, oy1) in [(0, 1), (1, g.ho), (g.ho / 2, g.ho), (0, g.ho)] {
                let bw = (oy1 - oy0) * g.wo;
                let mut band = vec![f32::NAN; g.rows() * bw];
                g.im2col_band(&x, &mut band, bw, oy0, oy1);
                for r in 0..g.rows() {
                    assert_eq!(
                        band[r * bw..(r + 1) * bw],
                        cols[r * g.cols() + oy0 * g.wo..r * g.cols() + oy1 * g.wo],
                        "band {oy0}..{oy1} of {c} {h} {w} {k} {s} {p}"
                    );
                }
            }
            // <im2col(x), y> == <x, col2im(y)>
            let y: Vec<f32> = (0..cols.len()).map(|i| (i as f32 * 0.3).cos()).collect();
            let mut back = vec![0.0f32; g.image_len()];
            g.col2im_add(&y, &mut back);
            let lhs: f64 = cols
                .iter()
                .zip(&y)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let rhs: f64 = x
                .iter()
                .zip(&back)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
        }
    }
}
