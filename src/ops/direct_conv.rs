//! A direct stride-1 convolution for CPUs with AVX-512F: no im2col matrix and no GEMM packing.
//!
//! The image is copied once into zero-padded channel planes of width `pw = w + 2p`. In that
//! "padded-width" layout the output pixel `(oy, ox)` sits at flat index `q = oy·pw + ox`, and tap
//! `(ky, kx)` of every output reads the input at `q + ky·pw + kx`: for 16 consecutive `q` that is
//! one contiguous vector load. The kernel holds a tile of 4 output channels × 96 flat outputs
//! (24 AVX-512 accumulators, the shape of the `gemm` crate's own 4×6 microkernel) in registers
//! across every tap and a block of input channels whose rows stay in L1, broadcasting one weight
//! per channel of the tile; the next block adds onto the stored partial sums. The `pw − wo`
//! columns past each output row are computed and dropped. At low resolution several images sit
//! side by side in one plane, sharing their zero columns ([`group_size`]).
//!
//! This replaces im2col + GEMM for stride-1 convs with `k > 1` (the 3×3 convs of every block) and
//! the stride-1 input gradient (a conv with the flipped, transposed kernel): the nine-fold im2col
//! copy and the GEMM's operand packing were a quarter of a sampling step. The weight gradient of
//! 3×3 convs reads the same layout ([`weight_grad_images`]).

use std::ops::Range;

use super::geometry::ConvGeom;
use super::scratch::{par_build_overwrite, with_scratch};
use super::simd::has_avx512;

/// Output channels per register tile.
const CO_TILE: usize = 4;
/// 16-float vectors per register tile.
const MAX_VECS: usize = 6;
/// Floats per vector.
const LANES: usize = 16;

/// Whether [`conv_images`] and [`forward`] can run this conv here: stride 1, a kernel bigger than 1×1 (a 1×1 conv
/// is a plain GEMM already) and a CPU with AVX-512F.
pub fn supports(g: &ConvGeom) -> bool {
    g.stride == 1 && g.k > 1 && has_avx512()
}

/// Conv weights `(Co, Ci, k, k)` re-laid out for the kernel: for each tile of 4 output channels,
/// `[ci][tap][4]` (the last tile padded with zero channels), and the bias padded alike.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    data: Vec<f32>,
    bias: Vec<f32>,
    co: usize,
    ci: usize,
    k: usize,
}

impl PackedWeights {
    /// Packs `w` `(co, ci, k, k)` and `bias` (`co` values, or none for zeros).
    pub fn new(w: &[f32], bias: Option<&[f32]>, co: usize, ci: usize, k: usize) -> Self {
        let kk = k * k;
        assert_eq!(w.len(), co * ci * kk, "direct conv: weight size");
        Self::pack(co, ci, k, bias, |o, c, tap| w[(o * ci + c) * kk + tap])
    }

    /// Packs the weights of the conv that gives the input gradient of a stride-1 conv with
    /// weights `w` `(co, ci, k, k)`: `W′[c, o, tap] = W[o, c, k·k − 1 − tap]` (the kernel flipped
    /// and its channel axes swapped, so the packed conv maps `co` channels to `ci`), no bias.
    /// The same as [`PackedWeights::new`] on that re-laid-out array, without building it.
    pub fn flipped_transpose(w: &[f32], co: usize, ci: usize, k: usize) -> Self {
        let kk = k * k;
        assert_eq!(w.len(), co * ci * kk, "direct conv: weight size");
        Self::pack(ci, co, k, None, |c, o, tap| {
            w[(o * ci + c) * kk + kk - 1 - tap]
        })
    }

    /// `[tile][ci][tap][4]` from `weight(o, c, tap)`, one tile per parallel task; each task
    /// writes its tile in order (the zero channels of a partial last tile included).
    fn pack(
        co: usize,
        ci: usize,
        k: usize,
        bias: Option<&[f32]>,
        weight: impl Fn(usize, usize, usize) -> f32 + Sync,
    ) -> Self {
        let kk = k * k;
        let tiles = co.div_ceil(CO_TILE);
        let tlen = ci * kk * CO_TILE;
        // SAFETY: each tile writes all `ci·kk·CO_TILE` of its floats (zeros past `co` in the
        // last tile), reading none.
        let data = unsafe {
            par_build_overwrite(tiles * tlen, tlen, |t, d| {
                let chans = CO_TILE.min(co - t * CO_TILE);
                for (i, lane) in d.chunks_exact_mut(CO_TILE).enumerate() {
                    let (c, tap) = (i / kk, i % kk);
                    for (j, v) in lane.iter_mut().enumerate() {
                        *v = if j < chans {
                            weight(t * CO_TILE + j, c, tap)
                        } else {
                            0.0
                        };
                    }
                }
            })
        };
        let mut b = vec![0f32; tiles * CO_TILE];
        if let Some(bias) = bias {
            b[..co].copy_from_slice(&bias[..co]);
        }
        Self {
            data,
            bias: b,
            co,
            ci,
            k,
        }
    }

    /// Tiles of 4 output channels (the last one maybe partial).
    fn tiles(&self) -> usize {
        self.co.div_ceil(CO_TILE)
    }
}

/// Images laid side by side in one padded plane at this geometry: enough that a plane row holds
/// about 64 floats (a 7×7 map alone computes 64 outputs of which 49 are real, and its weights
/// would be streamed once per image). Only "same" convs (`k = 2p + 1`) share the `p` zero
/// columns between neighbours.
pub fn group_size(g: &ConvGeom) -> usize {
    if g.k != 2 * g.pad + 1 {
        return 1;
    }
    (64 / (g.w + g.pad)).clamp(1, 8)
}

/// Sizes of the padded-width layout of `m` images side by side.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Padded plane width: `m·(w + p) + p`.
    pw: usize,
    /// Columns from one image to the next (`w + p`).
    step: usize,
    /// Flat outputs computed per channel (`ho·pw` rounded up to whole vectors).
    olen: usize,
    /// Floats per padded input channel, including the slack the last vectors read past the plane.
    cstride: usize,
}

impl Layout {
    fn new(g: &ConvGeom, m: usize) -> Self {
        let step = g.w + g.pad;
        let pw = m * step + g.pad;
        let ph = g.h + 2 * g.pad;
        let olen = (g.ho * pw).div_ceil(LANES) * LANES;
        let reach = olen + (g.k - 1) * (pw + 1);
        let cstride = reach.max(ph * pw).div_ceil(LANES) * LANES;
        Self {
            pw,
            step,
            olen,
            cstride,
        }
    }
}

fn check(x: &[f32], m: usize, g: &ConvGeom, w: &PackedWeights) {
    assert!(
        supports(g),
        "direct conv: unsupported geometry {g:?} or CPU"
    );
    assert!(
        w.ci == g.c && w.k == g.k,
        "direct conv: weights do not fit {g:?}"
    );
    assert_eq!(x.len(), m * g.image_len(), "direct conv: input size");
}

/// `out (m, Co, Ho, Wo) = conv(x (m, Ci, H, W), w) + bias` on this thread, stride 1. Panics
/// unless [`supports`] holds and the sizes fit `g` and `w`.
pub fn conv_images(x: &[f32], m: usize, g: &ConvGeom, w: &PackedWeights, out: &mut [f32]) {
    check(x, m, g, w);
    let (img, oimg) = (g.image_len(), w.co * g.ho * g.wo);
    assert_eq!(out.len(), m * oimg, "direct conv: output size");
    let gs = group_size(g);
    for (xs, os) in x.chunks(gs * img).zip(out.chunks_mut(gs * oimg)) {
        run(xs, xs.len() / img, g, w, 0..w.tiles(), os);
    }
}

/// The output channels of tiles `tiles` (4 channels each, the last tile clipped to `Co`) of one
/// image, `out (channels, Ho, Wo)`: lets several threads share a single image.
pub fn conv_channels(
    x: &[f32],
    g: &ConvGeom,
    w: &PackedWeights,
    tiles: Range<usize>,
    out: &mut [f32],
) {
    check(x, 1, g, w);
    let chans = (tiles.end * CO_TILE).min(w.co) - tiles.start * CO_TILE;
    assert_eq!(out.len(), chans * g.ho * g.wo, "direct conv: output size");
    run(x, 1, g, w, tiles, out);
}

/// `conv(x, w) + bias` over a batch of `n` images, in parallel: groups of images when there are
/// enough to keep every core busy, otherwise one image at a time split by output channels.
pub fn forward(x: &[f32], n: usize, g: &ConvGeom, w: &PackedWeights) -> Vec<f32> {
    check(x, n, g, w);
    let (img, hw) = (g.image_len(), g.ho * g.wo);
    let oimg = w.co * hw;
    let threads = rayon::current_num_threads().max(1);
    if n >= threads {
        let m = group_size(g).min(n / threads).max(1);
        // SAFETY: `run` ends by copying every output of its images from its scratch
        // accumulators, and reads none of `o`.
        return unsafe {
            par_build_overwrite(n * oimg, m * oimg, |i, o| {
                let k = o.len() / oimg;
                conv_images(&x[i * m * img..][..k * img], k, g, w, o);
            })
        };
    }
    let tiles = w.tiles();
    let per = tiles.div_ceil(threads);
    let mut out = vec![0f32; n * oimg];
    for (xi, oi) in x.chunks(img).zip(out.chunks_mut(oimg)) {
        use rayon::prelude::*;
        oi.par_chunks_mut(per * CO_TILE * hw)
            .enumerate()
            .for_each(|(c, part)| {
                let t0 = c * per;
                conv_channels(xi, g, w, t0..(t0 + per).min(tiles), part)
            });
    }
    out
}

/// `m` images side by side through the kernel, output channel tiles `tiles` only;
/// `out` is `(m, channels of tiles, Ho, Wo)`.
fn run(x: &[f32], m: usize, g: &ConvGeom, w: &PackedWeights, tiles: Range<usize>, out: &mut [f32]) {
    let l = Layout::new(g, m);
    let hw = g.ho * g.wo;
    let c0 = tiles.start * CO_TILE;
    let chans = (tiles.end * CO_TILE).min(w.co) - c0;
    let ntiles = tiles.len();
    with_scratch(0, g.c * l.cstride + ntiles * CO_TILE * l.olen, |buf| {
        let (padded, acc) = buf.split_at_mut(g.c * l.cstride);
        pad_images(x, m, g, &l, padded);
        let offsets: Vec<usize> = (0..g.k * g.k).map(|t| (t / g.k) * l.pw + t % g.k).collect();
        let kk = g.k * g.k;
        let wlen = g.c * kk * CO_TILE;
        // Input channels per pass: the tile's input rows of a block of channels stay in L1
        // (about 24 KiB) while every output-channel tile reads them; later blocks add onto the
        // partial sums stored by the earlier ones.
        let span = MAX_VECS * LANES + (g.k - 1) * (l.pw + 1);
        let cblock = (24 * 1024 / (4 * span)).max(8).min(g.c.max(1));
        let mut q = 0;
        while q < l.olen {
            let nv = ((l.olen - q) / LANES).min(MAX_VECS);
            let mut c = 0;
            while c < g.c {
                let cn = cblock.min(g.c - c);
                for (i, t) in tiles.clone().enumerate() {
                    let wt = &w.data[t * wlen + c * kk * CO_TILE..][..cn * kk * CO_TILE];
                    let bt = &w.bias[t * CO_TILE..(t + 1) * CO_TILE];
                    // SAFETY: `supports` (checked by every caller) means AVX-512F. The tile
                    // reads `padded` at `(c + i)·cstride + q + off + 16·nv ≤ (c + i + 1)·cstride`
                    // for `i < cn` (cstride covers `olen` plus the farthest tap), `wt` holds
                    // `cn·kk·4` weights, and the tile reads and writes `acc` at
                    // `(4i + j)·olen + q .. + 16·nv ≤ (4i + j + 1)·olen`.
                    unsafe {
                        tile_any(
                            nv,
                            TileArgs {
                                x: padded.as_ptr().add(c * l.cstride + q),
                                cstride: l.cstride,
                                ci: cn,
                                offsets: &offsets,
                                w: wt.as_ptr(),
                                bias: (c == 0).then_some(bt),
                                out: acc.as_mut_ptr().add(i * CO_TILE * l.olen + q),
                                ostride: l.olen,
                            },
                        );
                    }
                }
                c += cn;
            }
            q += nv * LANES;
        }
        // Keep the `wo` real columns of each row of each image.
        for j in 0..m {
            for c in 0..chans {
                let o = &mut out[(j * chans + c) * hw..][..hw];
                let a = &acc[c * l.olen + j * l.step..];
                for oy in 0..g.ho {
                    o[oy * g.wo..(oy + 1) * g.wo].copy_from_slice(&a[oy * l.pw..][..g.wo]);
                }
            }
        }
    });
}

/// Output channels per register tile of the weight-gradient kernel ([`weight_tile`]): 3 × 9 taps
/// = 27 AVX-512 accumulators, each input vector loaded once for three of them.
const DW_TILE: usize = 3;
// `weight_tile` spells out three rows of accumulators.
const _: () = assert!(DW_TILE == 3);

/// Whether [`weight_grad_images`] can run this conv here: [`supports`] and a 3×3 kernel (the
/// register tile holds nine taps).
pub fn supports_weight_grad(g: &ConvGeom) -> bool {
    supports(g) && g.k == 3
}

/// Whether [`weight_grad_images`] is taken over im2col + GEMM at this geometry: maps of 10×10 and
/// more. Each tile ends by adding up the lanes of its 27 accumulators, which a 7×7 map's short
/// rows do not amortise (on an AVX-512 Xeon, batch 32, one thread, against im2col + GEMM: 1.6–2.1×
/// as fast at 28×28, even at 14×14 (0.7–1.25× over five runs), 0.8× at 7×7;
/// `cargo bench --bench ops -- conv_weight_grad`).
pub fn weight_grad_pays(g: &ConvGeom) -> bool {
    supports_weight_grad(g) && g.ho * g.wo >= 100
}

/// `dw (Co, Ci, 3, 3) += Σ_images Σ_(y, x) gy[o, y, x] · xpad[c, y + ky, x + kx]`: the weight
/// gradient of a stride-1 3×3 conv over `m` images of `x (m, Ci, H, W)` and the output gradient
/// `gy (m, Co, Ho, Wo)`, on this thread, without an im2col matrix or GEMM packing. In the
/// padded-width layout of the forward kernel, tap `(ky, kx)` of every output reads the input at
/// a fixed offset, so each weight's gradient is a dot product of the output gradient's rows with
/// the padded input shifted by that offset; a register tile holds 3 output channels × 9 taps of
/// such dot products as vectors and adds up their lanes once per group of images side by side.
/// Panics unless [`supports_weight_grad`] holds and the sizes fit.
pub fn weight_grad_images(
    x: &[f32],
    gy: &[f32],
    m: usize,
    g: &ConvGeom,
    co: usize,
    dw: &mut [f32],
) {
    assert!(
        supports_weight_grad(g),
        "direct conv weight gradient: unsupported geometry {g:?} or CPU"
    );
    let (img, oimg) = (g.image_len(), co * g.ho * g.wo);
    assert_eq!(x.len(), m * img, "direct conv weight gradient: input size");
    assert_eq!(
        gy.len(),
        m * oimg,
        "direct conv weight gradient: output gradient size"
    );
    assert_eq!(
        dw.len(),
        co * g.c * 9,
        "direct conv weight gradient: weight size"
    );
    let gs = group_size(g);
    for (xs, gys) in x.chunks(gs * img).zip(gy.chunks(gs * oimg)) {
        weight_grad_group(xs, gys, xs.len() / img, g, co, dw);
    }
}

/// [`weight_grad_images`] for `m` images that share one padded plane.
fn weight_grad_group(x: &[f32], gy: &[f32], m: usize, g: &ConvGeom, co: usize, dw: &mut [f32]) {
    let l = Layout::new(g, m);
    // Output-gradient rows up to a whole number of tiles; the extra rows are zeros.
    let rows = co.div_ceil(DW_TILE) * DW_TILE;
    with_scratch(0, g.c * l.cstride + rows * l.olen, |buf| {
        let (padded, gext) = buf.split_at_mut(g.c * l.cstride);
        pad_images(x, m, g, &l, padded);
        spread_outputs(gy, m, g, co, &l, gext);
        let offsets: [usize; 9] = std::array::from_fn(|t| (t / 3) * l.pw + t % 3);
        let nq = l.olen / LANES;
        let mut o = 0;
        while o < co {
            let no = DW_TILE.min(co - o);
            for c in 0..g.c {
                let mut sums = [[0f32; 9]; DW_TILE];
                // SAFETY: `supports` means AVX-512F. The tile reads `gext` at
                // `(o + j)·olen + q` for `j < 3` (`o + 3 ≤ rows`) and `q < olen`, and `padded`
                // at `c·cstride + off + q < (c + 1)·cstride` (cstride covers `olen` plus the
                // farthest tap).
                unsafe {
                    weight_tile(
                        padded.as_ptr().add(c * l.cstride),
                        &offsets,
                        gext.as_ptr().add(o * l.olen),
                        l.olen,
                        nq,
                        &mut sums,
                    );
                }
                for (j, s) in sums.iter().take(no).enumerate() {
                    let d = &mut dw[((o + j) * g.c + c) * 9..][..9];
                    d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
                }
            }
            o += no;
        }
    });
}

/// Lays the output gradient `gy (m, Co, Ho, Wo)` out like the forward kernel's outputs: channel
/// `o` as `olen` flat values, image `j`'s pixel `(y, x)` at `y·pw + j·step + x`, zeros in the
/// columns the forward kernel computes and drops, and zero rows for channels `≥ Co` that fill
/// `out`.
fn spread_outputs(gy: &[f32], m: usize, g: &ConvGeom, co: usize, l: &Layout, out: &mut [f32]) {
    let hw = g.ho * g.wo;
    for (o, dst) in out.chunks_exact_mut(l.olen).enumerate() {
        dst.fill(0.0);
        if o >= co {
            continue;
        }
        for j in 0..m {
            let src = &gy[(j * co + o) * hw..][..hw];
            for (y, row) in src.chunks_exact(g.wo).enumerate() {
                dst[y * l.pw + j * l.step..][..g.wo].copy_from_slice(row);
            }
        }
    }
}

/// One weight-gradient tile: for `j < 3` and each tap `t`,
/// `sums[j][t] = Σ_(l < 16·nq) gy[j·gstride + l] · x[offsets[t] + l]`, accumulated in sixteen
/// lanes with fused multiply-adds along `l` and the lanes added up at the end ([`hsum`]).
///
/// # Safety
/// AVX-512F must be available; `gy` must be readable at `j·gstride + l` for `j < 3` and
/// `x` at `offsets[t] + l`, for `l < 16·nq`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weight_tile(
    x: *const f32,
    offsets: &[usize; 9],
    gy: *const f32,
    gstride: usize,
    nq: usize,
    sums: &mut [[f32; 9]; DW_TILE],
) {
    use std::arch::x86_64::*;
    let z = _mm512_setzero_ps();
    let (mut a00, mut a01, mut a02, mut a03, mut a04, mut a05, mut a06, mut a07, mut a08) =
        (z, z, z, z, z, z, z, z, z);
    let (mut a10, mut a11, mut a12, mut a13, mut a14, mut a15, mut a16, mut a17, mut a18) =
        (z, z, z, z, z, z, z, z, z);
    let (mut a20, mut a21, mut a22, mut a23, mut a24, mut a25, mut a26, mut a27, mut a28) =
        (z, z, z, z, z, z, z, z, z);
    let xs: [*const f32; 9] = std::array::from_fn(|t| x.add(offsets[t]));
    let (g0p, g1p, g2p) = (gy, gy.add(gstride), gy.add(2 * gstride));
    macro_rules! tap {
        ($t:expr, $q:expr, $g0:expr, $g1:expr, $g2:expr, $a:ident, $b:ident, $c:ident) => {
            let xv = _mm512_loadu_ps(xs[$t].add($q));
            $a = _mm512_fmadd_ps($g0, xv, $a);
            $b = _mm512_fmadd_ps($g1, xv, $b);
            $c = _mm512_fmadd_ps($g2, xv, $c);
        };
    }
    for v in 0..nq {
        let q = v * LANES;
        let g0 = _mm512_loadu_ps(g0p.add(q));
        let g1 = _mm512_loadu_ps(g1p.add(q));
        let g2 = _mm512_loadu_ps(g2p.add(q));
        tap!(0, q, g0, g1, g2, a00, a10, a20);
        tap!(1, q, g0, g1, g2, a01, a11, a21);
        tap!(2, q, g0, g1, g2, a02, a12, a22);
        tap!(3, q, g0, g1, g2, a03, a13, a23);
        tap!(4, q, g0, g1, g2, a04, a14, a24);
        tap!(5, q, g0, g1, g2, a05, a15, a25);
        tap!(6, q, g0, g1, g2, a06, a16, a26);
        tap!(7, q, g0, g1, g2, a07, a17, a27);
        tap!(8, q, g0, g1, g2, a08, a18, a28);
    }
    let acc = [
        [a00, a01, a02, a03, a04, a05, a06, a07, a08],
        [a10, a11, a12, a13, a14, a15, a16, a17, a18],
        [a20, a21, a22, a23, a24, a25, a26, a27, a28],
    ];
    for (s, row) in sums.iter_mut().zip(&acc) {
        for (s, &a) in s.iter_mut().zip(row) {
            *s = hsum(a);
        }
    }
}

/// The sum of the 16 lanes of `a`, with 512-bit shuffles only: `_mm512_reduce_add_ps` works on
/// 256- and 128-bit halves, which AVX-512F alone cannot keep in registers 16–31, and LLVM then
/// kept the kernel's accumulators in registers 0–15 and spilled the rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn hsum(a: std::arch::x86_64::__m512) -> f32 {
    use std::arch::x86_64::*;
    let t = _mm512_add_ps(a, _mm512_shuffle_f32x4::<0b01_00_11_10>(a, a));
    let t = _mm512_add_ps(t, _mm512_shuffle_f32x4::<0b10_11_00_01>(t, t));
    let t = _mm512_add_ps(t, _mm512_permute_ps::<0b01_00_11_10>(t));
    let t = _mm512_add_ps(t, _mm512_permute_ps::<0b10_11_00_01>(t));
    _mm512_cvtss_f32(t)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn weight_tile(
    _: *const f32,
    _: &[usize; 9],
    _: *const f32,
    _: usize,
    _: usize,
    _: &mut [[f32; 9]; DW_TILE],
) {
    unreachable!("direct conv: needs x86-64 with AVX-512F")
}

/// Writes `m` images of `x` side by side into zero-padded planes of `cstride` floats each. Each
/// float is written once (the zeros only where no image goes): the buffer is scratch reused
/// from the last call.
fn pad_images(x: &[f32], m: usize, g: &ConvGeom, l: &Layout, padded: &mut [f32]) {
    let (p, plane) = (g.pad, g.h * g.w);
    for (c, dst) in padded.chunks_exact_mut(l.cstride).enumerate() {
        let (top, rest) = dst.split_at_mut(p * l.pw);
        top.fill(0.0);
        let (rows, below) = rest.split_at_mut(g.h * l.pw);
        for (y, row) in rows.chunks_exact_mut(l.pw).enumerate() {
            row[..p].fill(0.0);
            for j in 0..m {
                let src = &x[(j * g.c + c) * plane + y * g.w..][..g.w];
                let o = p + j * l.step;
                row[o..o + g.w].copy_from_slice(src);
                // The `p` zero columns after this image (the next one's left padding).
                row[o + g.w..o + l.step].fill(0.0);
            }
        }
        below.fill(0.0);
    }
}

/// Where one register tile reads and writes (see [`tile`]).
#[derive(Clone, Copy)]
struct TileArgs<'a> {
    /// First input value of channel 0 for the tile's first output.
    x: *const f32,
    /// Floats from one padded input channel to the next.
    cstride: usize,
    /// Input channels to accumulate.
    ci: usize,
    /// Offset of each tap from an output's flat index.
    offsets: &'a [usize],
    /// Packed weights of the tile's 4 output channels, `[ci][tap][4]`.
    w: *const f32,
    /// The 4 biases to start from, or `None` to add onto what `out` holds.
    bias: Option<&'a [f32]>,
    /// The tile's first output of its first channel.
    out: *mut f32,
    /// Floats from one output channel to the next.
    ostride: usize,
}

/// [`tile`] with `nv` (1 to 6) vectors.
///
/// # Safety
/// AVX-512F must be available, and the pointers valid as [`tile`] describes.
#[cfg(target_arch = "x86_64")]
unsafe fn tile_any(nv: usize, a: TileArgs) {
    match nv {
        6 => tile::<6>(a),
        5 => tile::<5>(a),
        4 => tile::<4>(a),
        3 => tile::<3>(a),
        2 => tile::<2>(a),
        1 => tile::<1>(a),
        _ => unreachable!("direct conv: tile of {nv} vectors"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_any(_: usize, _: TileArgs) {
    unreachable!("direct conv: needs x86-64 with AVX-512F")
}

/// One register tile: for `j < 4` and the `NV·16` flat outputs starting at `out`,
/// `out[j·ostride + l] = s + Σ_c Σ_tap w[(c·taps + tap)·4 + j] · x[c·cstride + off_tap + l]`,
/// the channels and taps accumulated in order with fused multiply-adds, where `s` is `bias[j]`
/// or, without a bias, the value `out` already holds (a partial sum over earlier channels).
///
/// # Safety
/// AVX-512F must be available; `x` must be readable at `c·cstride + off + l` for every channel
/// `c < ci`, offset and `l < 16·NV`; `w` must hold `ci·offsets.len()·4` floats; `out` must be
/// readable (without a bias) and writable at `j·ostride + l` for `j < 4`, `l < 16·NV`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const NV: usize>(a: TileArgs) {
    let TileArgs {
        x,
        cstride,
        ci,
        offsets,
        w,
        bias,
        out,
        ostride,
    } = a;
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); NV]; CO_TILE];
    for (j, row) in acc.iter_mut().enumerate() {
        match bias {
            Some(bias) => {
                let b = _mm512_set1_ps(bias[j]);
                for a in row.iter_mut() {
                    *a = b;
                }
            }
            None => {
                for (v, a) in row.iter_mut().enumerate() {
                    *a = _mm512_loadu_ps(out.add(j * ostride + v * LANES));
                }
            }
        }
    }
    let mut wp = w;
    for c in 0..ci {
        let xc = x.add(c * cstride);
        for &off in offsets {
            let s = xc.add(off);
            let mut xv = [_mm512_setzero_ps(); NV];
            for (v, xr) in xv.iter_mut().enumerate() {
                *xr = _mm512_loadu_ps(s.add(v * LANES));
            }
            for (j, row) in acc.iter_mut().enumerate() {
                let wj = _mm512_set1_ps(*wp.add(j));
                for (a, &xr) in row.iter_mut().zip(&xv) {
                    *a = _mm512_fmadd_ps(xr, wj, *a);
                }
            }
            wp = wp.add(CO_TILE);
        }
    }
    for (j, row) in acc.iter().enumerate() {
        for (v, &a) in row.iter().enumerate() {
            _mm512_storeu_ps(out.add(j * ostride + v * LANES), a);
        }
    }
}
