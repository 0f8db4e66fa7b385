//! The direct stride-1 conv kernel (AVX-512F) against the im2col + GEMM path it replaces: every
//! tail of a register tile, input channels split in blocks, output channels that do not fill a tile of four, several images side
//! by side in one padded plane, one image split over threads by output channels, and the
//! stride-1 input gradient that runs through it. Skipped (with a message) on CPUs without
//! AVX-512F, where the op keeps im2col + GEMM.

use crate::ops_common;

use ddpm_lab::ops::conv::{forward, forward_im2col};
use ddpm_lab::ops::direct_conv::{self, PackedWeights};
use ddpm_lab::ops::geometry::ConvGeom;

fn values(len: usize, seed: u64) -> Vec<f32> {
    ops_common::rand(&[len], seed).to_vec1::<f32>().unwrap()
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}: element {i} is {x}, expected {y}"
        );
    }
}

fn skip() -> bool {
    let g = ConvGeom::new(1, 3, 3, 3, 1, 1).unwrap();
    if !direct_conv::supports(&g) {
        crate::common::skip(
            "no AVX-512F here: the direct conv kernel is not used, nothing to test",
            Some(
                "CI's CPU may lack AVX-512F; there conv2d keeps im2col + GEMM, which ops_conv \
                 checks on every CPU",
            ),
        );
        return true;
    }
    false
}

/// (n, ci, h, w, co, k, pad)
const CASES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (16, 7, 28, 28, 6, 3, 1), // 28×28, co not a multiple of 4
    (5, 9, 14, 14, 8, 3, 1),  // several images per plane, a partial last group
    (16, 5, 7, 7, 13, 3, 1),  // eight 7×7 images per plane
    (3, 2, 9, 13, 5, 3, 1),   // non-square
    (2, 3, 11, 11, 4, 7, 3),  // init conv 7×7
    (2, 2, 6, 5, 3, 2, 0),    // even kernel, no padding (one image per plane)
    (4, 3, 5, 8, 2, 3, 0),    // "valid" conv
    (1, 4, 28, 28, 23, 3, 1), // one image split over threads by output channels
    (2, 4, 1, 1, 3, 3, 1),    // 1×1 map
    (2, 70, 28, 28, 5, 3, 1), // input channels in two L1 blocks
    (16, 40, 7, 7, 6, 3, 1),  // two channel blocks with images side by side
];

#[test]
fn direct_forward_matches_im2col_gemm() {
    if skip() {
        return;
    }
    for (i, &(n, ci, h, w, co, k, pad)) in CASES.iter().enumerate() {
        let g = ConvGeom::new(ci, h, w, k, 1, pad).unwrap();
        assert!(direct_conv::supports(&g));
        let seed = 100 * i as u64;
        let (x, wt, b) = (
            values(n * g.image_len(), seed),
            values(co * ci * k * k, seed + 1),
            values(co, seed + 2),
        );
        let want = forward_im2col(&x, &wt, &b, n, g, co);
        let got = forward(&x, &wt, &b, n, g, co);
        assert_close(&format!("case {i}: forward"), &got, &want, 1e-5);
        // The serial entry point gives the same result.
        let packed = PackedWeights::new(&wt, Some(&b), co, ci, k);
        let mut serial = vec![f32::NAN; want.len()];
        direct_conv::conv_images(&x, n, &g, &packed, &mut serial);
        assert_close(&format!("case {i}: conv_images"), &serial, &want, 1e-5);
    }
}

#[test]
fn channel_ranges_of_one_image_tile_the_whole_output() {
    if skip() {
        return;
    }
    let (ci, co, side) = (5, 14, 10);
    let g = ConvGeom::new(ci, side, side, 3, 1, 1).unwrap();
    let (x, wt, b) = (
        values(g.image_len(), 1),
        values(co * ci * 9, 2),
        values(co, 3),
    );
    let want = forward_im2col(&x, &wt, &b, 1, g, co);
    let packed = PackedWeights::new(&wt, Some(&b), co, ci, 3);
    let hw = side * side;
    // Tiles 0..2 are channels 0..8; tiles 2..4 are channels 8..14 (the last tile clipped).
    let mut first = vec![0f32; 8 * hw];
    let mut second = vec![0f32; 6 * hw];
    direct_conv::conv_channels(&x, &g, &packed, 0..2, &mut first);
    direct_conv::conv_channels(&x, &g, &packed, 2..4, &mut second);
    first.extend_from_slice(&second);
    assert_close("channel ranges", &first, &want, 1e-5);
}

#[test]
fn images_share_a_plane_only_for_same_convs() {
    let g = |side, k, pad| ConvGeom::new(4, side, side, k, 1, pad).unwrap();
    assert_eq!(direct_conv::group_size(&g(7, 3, 1)), 8);
    assert_eq!(direct_conv::group_size(&g(14, 3, 1)), 4);
    assert_eq!(direct_conv::group_size(&g(28, 3, 1)), 2);
    // Padding that is not (k − 1)/2 would need more zero columns between images.
    assert_eq!(direct_conv::group_size(&g(7, 3, 0)), 1);
    assert_eq!(direct_conv::group_size(&g(7, 2, 0)), 1);
}

#[test]
fn packed_weights_reject_a_wrong_size() {
    let r = std::panic::catch_unwind(|| PackedWeights::new(&[0.0; 10], None, 2, 1, 3));
    assert!(r.is_err());
}

#[test]
fn flipped_transpose_packing_is_the_flipped_swapped_kernel() {
    if skip() {
        return;
    }
    // A conv of (co → ci) channels with W′[c, o, tap] = W[o, c, k·k − 1 − tap], laid out by hand,
    // then packed the ordinary way: the direct packing must give the same conv bit for bit
    // (same products in the same order). Co and Ci are not multiples of the tile of four.
    for &(co, ci, k) in &[(6, 5, 3), (3, 9, 3), (4, 2, 7)] {
        let kk = k * k;
        let w = values(co * ci * kk, 7);
        let mut wf = vec![0f32; ci * co * kk];
        for o in 0..co {
            for c in 0..ci {
                for tap in 0..kk {
                    wf[(c * co + o) * kk + tap] = w[(o * ci + c) * kk + kk - 1 - tap];
                }
            }
        }
        let tg = ConvGeom::new(co, 9, 9, k, 1, k / 2).unwrap();
        let gy = values(2 * tg.image_len(), 8);
        let run = |p: &PackedWeights| {
            let mut out = vec![0f32; 2 * ci * 81];
            direct_conv::conv_images(&gy, 2, &tg, p, &mut out);
            out
        };
        let by_hand = run(&PackedWeights::new(&wf, None, ci, co, k));
        let direct = run(&PackedWeights::flipped_transpose(&w, co, ci, k));
        assert_eq!(direct, by_hand, "co {co}, ci {ci}, k {k}");
        assert!(direct.iter().any(|&v| v != 0.0));
    }
}

#[test]
fn padding_is_zero_whatever_the_scratch_held() {
    if skip() {
        return;
    }
    // The padded planes live in this thread's reused scratch buffer: fill it with NaN first, so
    // a zero column, row or slack value that the padding step failed to write shows up.
    for (i, &(n, ci, h, w, co, k, pad)) in CASES.iter().enumerate() {
        let g = ConvGeom::new(ci, h, w, k, 1, pad).unwrap();
        let seed = 300 + 10 * i as u64;
        let (x, wt, b) = (
            values(n * g.image_len(), seed),
            values(co * ci * k * k, seed + 1),
            values(co, seed + 2),
        );
        let want = forward_im2col(&x, &wt, &b, n, g, co);
        ddpm_lab::ops::scratch::with_scratch(0, 1 << 20, |s| s.fill(f32::NAN));
        let packed = PackedWeights::new(&wt, Some(&b), co, ci, k);
        let mut got = vec![0f32; want.len()];
        direct_conv::conv_images(&x, n, &g, &packed, &mut got);
        assert_close(&format!("case {i}"), &got, &want, 1e-5);
    }
}

/// `dW[o, c, ky, kx] = Σ_images Σ_(y, x) gy[o, y, x] · x[c, y + ky − p, x + kx − p]`, the
/// definition, in f64 loops.
fn naive_weight_grad(x: &[f32], gy: &[f32], n: usize, g: &ConvGeom, co: usize) -> Vec<f32> {
    let (k, p) = (g.k as isize, g.pad as isize);
    let mut dw = vec![0f64; co * g.c * g.k * g.k];
    for i in 0..n {
        for o in 0..co {
            for c in 0..g.c {
                for ky in 0..k {
                    for kx in 0..k {
                        let mut s = 0f64;
                        for y in 0..g.ho as isize {
                            for xo in 0..g.wo as isize {
                                let (iy, ix) = (y + ky - p, xo + kx - p);
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xv = x[((i * g.c + c) * g.h + iy as usize) * g.w + ix as usize];
                                let gv =
                                    gy[((i * co + o) * g.ho + y as usize) * g.wo + xo as usize];
                                s += xv as f64 * gv as f64;
                            }
                        }
                        dw[((o * g.c + c) * g.k + ky as usize) * g.k + kx as usize] += s;
                    }
                }
            }
        }
    }
    dw.into_iter().map(|v| v as f32).collect()
}

#[test]
fn direct_weight_gradient_matches_its_definition() {
    if skip() {
        return;
    }
    // Every 3×3 case of the forward's (tile tails, images side by side with a partial last
    // group, "valid" convs, output channels not a multiple of the tile of three, a 1×1 map),
    // with the scratch buffer full of NaN first so an unwritten zero of the padded layout shows.
    let mut ran = 0;
    for (i, &(n, ci, h, w, co, k, pad)) in CASES.iter().enumerate() {
        let g = ConvGeom::new(ci, h, w, k, 1, pad).unwrap();
        if !direct_conv::supports_weight_grad(&g) {
            assert_ne!(k, 3, "case {i}: a 3×3 conv the kernel does not take");
            continue;
        }
        let seed = 500 + 10 * i as u64;
        let x = values(n * g.image_len(), seed);
        let gy = values(n * co * g.ho * g.wo, seed + 1);
        let want = naive_weight_grad(&x, &gy, n, &g, co);
        ddpm_lab::ops::scratch::with_scratch(0, 1 << 20, |s| s.fill(f32::NAN));
        // It adds onto what `dw` holds.
        let mut got = vec![1f32; want.len()];
        direct_conv::weight_grad_images(&x, &gy, n, &g, co, &mut got);
        got.iter_mut().for_each(|v| *v -= 1.0);
        assert_close(&format!("case {i}: weight gradient"), &got, &want, 1e-5);
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} cases ran");
}

#[test]
fn direct_weight_gradient_is_taken_where_it_pays() {
    let g = |side, k| ConvGeom::new(8, side, side, k, 1, k / 2).unwrap();
    if skip() {
        return;
    }
    assert!(direct_conv::weight_grad_pays(&g(28, 3)));
    assert!(direct_conv::weight_grad_pays(&g(14, 3)));
    assert!(direct_conv::weight_grad_pays(&g(10, 3)));
    assert!(!direct_conv::weight_grad_pays(&g(7, 3)));
    assert!(!direct_conv::weight_grad_pays(&g(28, 7)));
    assert!(!direct_conv::supports_weight_grad(&g(28, 5)));
    // ops_conv's "valid" case: a 12×10 output.
    let valid = ConvGeom::new(2, 14, 12, 3, 1, 0).unwrap();
    assert!(direct_conv::weight_grad_pays(&valid));
}
