//! Small vector kernels compiled three times — for the baseline target, with AVX2 and with
//! AVX-512F — and picked at run time, like the `gemm` crate does (the crate is built for baseline
//! x86-64, which only vectorises to 4-wide SSE2).

/// Whether the CPU has AVX2 (checked once).
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2"))
}

/// Whether the CPU has AVX-512F (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx512f"))
}

/// Whether the CPU has AVX-512F: never off x86-64.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn has_avx512() -> bool {
    false
}

/// Defines `pub fn $name` that runs `$body` compiled with AVX-512F or AVX2 when the CPU has it.
/// No kernel relies on fused multiply-adds or a reassociation, so every variant gives the same
/// bits.
macro_rules! dispatch {
    ($(#[$m:meta])* fn $name:ident($($a:ident : $t:ty),*) -> $r:ty $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($a: $t),*) -> $r {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn generic($($a: $t),*) -> $r $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($a: $t),*) -> $r {
                    generic($($a),*)
                }
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($a: $t),*) -> $r {
                    generic($($a),*)
                }
                if has_avx512() {
                    // SAFETY: the CPU supports AVX-512F (checked above).
                    return unsafe { avx512($($a),*) };
                }
                if has_avx2() {
                    // SAFETY: the CPU supports AVX2 (checked above).
                    return unsafe { avx2($($a),*) };
                }
            }
            generic($($a),*)
        }
    };
}

dispatch! {
    /// `y += a · x` over the common length.
    fn axpy(a: f32, x: &[f32], y: &mut [f32]) -> () {
        for (yv, xv) in y.iter_mut().zip(x) {
            *yv += a * xv;
        }
    }
}

dispatch! {
    /// `out[l] += Σ_t w[t] · src[off[t] + l]` for `l < out.len()`, taps added in order, one at a
    /// time (the same bits as one [`axpy`] per tap). Blocks of 64 outputs are kept in registers
    /// across all taps, so `out` is read and written once instead of once per tap.
    fn taps_axpy(src: &[f32], off: &[usize], w: &[f32], out: &mut [f32]) -> () {
        const B: usize = 64;
        let mut blocks = out.chunks_exact_mut(B);
        let mut base = 0;
        for blk in &mut blocks {
            let mut acc = [0f32; B];
            acc.copy_from_slice(blk);
            for (&o, &wv) in off.iter().zip(w) {
                let s: &[f32; B] = src[o + base..o + base + B].try_into().unwrap();
                for l in 0..B {
                    acc[l] += wv * s[l];
                }
            }
            blk.copy_from_slice(&acc);
            base += B;
        }
        let rest = blocks.into_remainder();
        let n = rest.len();
        for (&o, &wv) in off.iter().zip(w) {
            for (r, &v) in rest.iter_mut().zip(&src[o + base..o + base + n]) {
                *r += wv * v;
            }
        }
    }
}

dispatch! {
    /// `Σ a·b` over the common length, with 16 independent accumulators (a fixed order, so
    /// results do not depend on the machine's vector width).
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [0f32; 16];
        let (ac, bc) = (a[..n].chunks_exact(16), b[..n].chunks_exact(16));
        let (ar, br) = (ac.remainder(), bc.remainder());
        for (x, y) in ac.zip(bc) {
            for l in 0..16 {
                acc[l] += x[l] * y[l];
            }
        }
        let mut s = 0f32;
        for v in acc {
            s += v;
        }
        for (x, y) in ar.iter().zip(br) {
            s += x * y;
        }
        s
    }
}

dispatch! {
    /// `y = max(y, x)` element-wise.
    fn max_into(x: &[f32], y: &mut [f32]) -> () {
        for (yv, xv) in y.iter_mut().zip(x) {
            *yv = yv.max(*xv);
        }
    }
}

dispatch! {
    /// `y *= x` element-wise.
    fn mul_into(x: &[f32], y: &mut [f32]) -> () {
        for (yv, xv) in y.iter_mut().zip(x) {
            *yv *= xv;
        }
    }
}

dispatch! {
    /// `out = exp(x − m)` element-wise (m per element), `sum += out`; `exp` is a polynomial
    /// approximation with relative error below 2e-7 that vectorises.
    fn exp_sub_acc(x: &[f32], m: &[f32], out: &mut [f32], sum: &mut [f32]) -> () {
        for (((o, &xv), &mv), s) in out.iter_mut().zip(x).zip(m).zip(sum.iter_mut()) {
            let e = exp_approx(xv - mv);
            *o = e;
            *s += e;
        }
    }
}

dispatch! {
    /// `out = exp(x − m)` for a scalar m; returns `Σ out`.
    fn exp_sub_sum(x: &[f32], m: f32, out: &mut [f32]) -> f32 {
        let mut acc = [0f32; 16];
        let (xc, oc) = (x.chunks_exact(16), out.chunks_exact_mut(16));
        let xr = xc.remainder();
        for (xv, ov) in xc.zip(oc) {
            for l in 0..16 {
                let e = exp_approx(xv[l] - m);
                ov[l] = e;
                acc[l] += e;
            }
        }
        let mut s = 0f32;
        for v in acc {
            s += v;
        }
        let done = x.len() - xr.len();
        for (o, &xv) in out[done..].iter_mut().zip(xr) {
            let e = exp_approx(xv - m);
            *o = e;
            s += e;
        }
        s
    }
}

dispatch! {
    /// `Σ x` with 32 accumulators (a fixed order; four independent vector chains with AVX2).
    fn sum(x: &[f32]) -> f32 {
        let mut a = [0f32; 32];
        let c = x.chunks_exact(32);
        let r = c.remainder();
        for v in c {
            for l in 0..32 {
                a[l] += v[l];
            }
        }
        let mut s = 0f32;
        for v in a {
            s += v;
        }
        for &v in r {
            s += v;
        }
        s
    }
}

dispatch! {
    /// `Σ (x − m)²` with 32 accumulators (a fixed order).
    fn sq_dev(x: &[f32], m: f32) -> f32 {
        let mut q = [0f32; 32];
        let c = x.chunks_exact(32);
        let r = c.remainder();
        for v in c {
            for l in 0..32 {
                let d = v[l] - m;
                q[l] += d * d;
            }
        }
        let mut s = 0f32;
        for v in q {
            s += v;
        }
        for &v in r {
            s += (v - m) * (v - m);
        }
        s
    }
}

dispatch! {
    /// `out = x · a + b`.
    fn scale_shift(x: &[f32], a: f32, b: f32, out: &mut [f32]) -> () {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v * a + b;
        }
    }
}

dispatch! {
    /// `(Σ g, Σ g·(x − m)·r)` with 8 accumulators each.
    fn sum_and_xhat_dot(x: &[f32], g: &[f32], m: f32, r: f32) -> (f32, f32) {
        let mut a = [0f32; 8];
        let mut q = [0f32; 8];
        let (xc, gc) = (x.chunks_exact(8), g.chunks_exact(8));
        let (xr, gr) = (xc.remainder(), gc.remainder());
        for (xv, gv) in xc.zip(gc) {
            for l in 0..8 {
                a[l] += gv[l];
                q[l] += gv[l] * ((xv[l] - m) * r);
            }
        }
        let (mut s, mut sx) = (0f32, 0f32);
        for l in 0..8 {
            s += a[l];
            sx += q[l];
        }
        for (&xv, &gv) in xr.iter().zip(gr) {
            s += gv;
            sx += gv * ((xv - m) * r);
        }
        (s, sx)
    }
}

dispatch! {
    /// GroupNorm input gradient: `out = r · (g·γ − m1 − (x − m)·r · m2)`.
    fn group_norm_dx(x: &[f32], g: &[f32], m: f32, r: f32, gamma: f32, m1: f32, m2: f32, out: &mut [f32]) -> () {
        for ((o, &xv), &gv) in out.iter_mut().zip(x).zip(g) {
            *o = r * (gv * gamma - m1 - (xv - m) * r * m2);
        }
    }
}

/// `erf(x)` in f32 as the rational approximation Eigen and TensorFlow use (odd degree-13 over
/// even degree-8 polynomial on `[−4, 4]`, ±1 beyond); vectorises, max error ≈ 1e-7.
#[inline(always)]
pub fn erf_approx(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

dispatch! {
    /// `out = gelu(x) = x·Φ(x)` (erf-based, PyTorch's default).
    fn gelu_fwd(x: &[f32], out: &mut [f32]) -> () {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = 0.5 * v * (1.0 + erf_approx(v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

dispatch! {
    /// `dx = g · (Φ(x) + x·φ(x))`.
    fn gelu_bwd(x: &[f32], g: &[f32], dx: &mut [f32]) -> () {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for ((d, &v), &gv) in dx.iter_mut().zip(x).zip(g) {
            let cdf = 0.5 * (1.0 + erf_approx(v * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * exp_approx(-0.5 * v * v);
            *d = gv * (cdf + v * pdf);
        }
    }
}

dispatch! {
    /// `out = silu(x) = x·σ(x) = x / (1 + e^(−x))`.
    fn silu_fwd(x: &[f32], out: &mut [f32]) -> () {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v / (1.0 + exp_approx(-v));
        }
    }
}

dispatch! {
    /// `dx = g · σ(x)·(1 + x·(1 − σ(x)))`.
    fn silu_bwd(x: &[f32], g: &[f32], dx: &mut [f32]) -> () {
        for ((d, &v), &gv) in dx.iter_mut().zip(x).zip(g) {
            let s = 1.0 / (1.0 + exp_approx(-v));
            *d = gv * s * (1.0 + v * (1.0 - s));
        }
    }
}

/// `exp(x)` for `x ≤ 0` (softmax arguments) and moderate positive values: `2^k · p(r)` with
/// `x = k·ln2 + r`, `|r| ≤ ln2/2`, and a degree-6 Taylor polynomial; below −87 it returns 0.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Round to nearest with the 1.5·2²³ trick: the sum's low mantissa bits hold the integer, so
    // no float → int conversion (whose NaN/saturation checks stop vectorisation) is needed.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let big = x * LOG2E + MAGIC;
    let k = big - MAGIC;
    let ki = (big.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((ki + 127) as u32) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_is_accurate() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 20.0 {
            let want = (x as f64).exp();
            let got = exp_approx(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp_approx(-200.0), exp_approx(-87.0));
    }

    #[test]
    fn erf_approx_is_accurate() {
        let mut worst = 0f64;
        let mut x = -6.0f32;
        while x < 6.0 {
            let want = candle_core::cpu::erf::erf_f64(x as f64);
            worst = worst.max((erf_approx(x) as f64 - want).abs());
            x += 0.001;
        }
        assert!(worst < 1e-6, "worst absolute error {worst}");
    }

    #[test]
    fn kernels_match_scalar_code() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).sin()).collect();
        let mut y: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).cos()).collect();
        let want: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        assert!((dot(&x, &y) - want).abs() < 1e-5);
        let before = y.clone();
        axpy(2.0, &x, &mut y);
        for i in 0..37 {
            assert!((y[i] - (before[i] + 2.0 * x[i])).abs() < 1e-6);
        }
        let mut out = vec![0f32; 37];
        let want: f32 = x.iter().sum();
        assert!((sum(&x) - want).abs() < 1e-5);
        let want: f32 = x.iter().map(|v| (v - 0.2) * (v - 0.2)).sum();
        assert!((sq_dev(&x, 0.2) - want).abs() < 1e-5);
        let s = exp_sub_sum(&x, 1.0, &mut out);
        let want: f32 = x.iter().map(|v| (v - 1.0).exp()).sum();
        assert!((s - want).abs() < 1e-5);
    }

    #[test]
    fn taps_axpy_gives_the_bits_of_one_axpy_per_tap() {
        let src: Vec<f32> = (0..400).map(|i| (i as f32 * 0.13).sin()).collect();
        let off = [0usize, 3, 17, 40, 41];
        let w = [0.5f32, -1.25, 0.3, 2.0, -0.7];
        for len in [0usize, 5, 64, 150, 300] {
            let start: Vec<f32> = (0..len).map(|i| (i as f32 * 0.9).cos()).collect();
            let mut want = start.clone();
            for (&o, &wv) in off.iter().zip(&w) {
                axpy(wv, &src[o..o + len], &mut want);
            }
            let mut got = start;
            taps_axpy(&src, &off, &w, &mut got);
            assert_eq!(got, want, "len {len}");
        }
    }
}
