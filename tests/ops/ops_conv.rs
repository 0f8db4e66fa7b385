//! The im2col + GEMM conv2d op against candle's own conv2d (forward and all three gradients)
//! and against finite differences.

use crate::ops_common;

use candle_core::{Result, Tensor, Var};
use ddpm_lab::ops::conv::conv2d;
use ops_common::{assert_close, check_finite_differences, grads_of, rand};

fn stock(x: &Tensor, w: &Tensor, b: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
    let y = x.conv2d(w, pad, stride, 1, 1)?;
    y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)
}

/// (n, ci, h, w, co, k, stride, pad).
type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

/// The blog UNet's conv shapes, scaled down.
const CASES: &[Case] = &[
    (2, 3, 9, 9, 5, 3, 1, 1),    // ConvNeXt 3×3
    (3, 4, 7, 7, 6, 1, 1, 0),    // 1×1 (res_conv, to_qkv, to_out)
    (2, 1, 11, 11, 4, 7, 1, 3),  // init_conv 7×7
    (2, 3, 8, 8, 3, 4, 2, 1),    // Downsample 4×4 stride 2
    (1, 2, 7, 7, 3, 3, 2, 0),    // odd size, stride 2, no padding
    (9, 2, 5, 5, 2, 3, 1, 1),    // more images than reduction chunks
    (10, 3, 12, 12, 7, 3, 1, 1), // 3×3 on 12×12: the direct weight gradient (AVX-512F)
    (3, 2, 14, 12, 4, 3, 1, 0),  // the same, "valid" (no padding): a 12×10 output
];

#[test]
fn forward_and_gradients_match_candle() {
    for (i, &(n, ci, h, w, co, k, s, p)) in CASES.iter().enumerate() {
        let seed = i as u64 * 10;
        let xv = Var::from_tensor(&rand(&[n, ci, h, w], seed)).unwrap();
        let wv = Var::from_tensor(&rand(&[co, ci, k, k], seed + 1)).unwrap();
        let bv = Var::from_tensor(&rand(&[co], seed + 2)).unwrap();
        let vars = [xv.clone(), wv.clone(), bv.clone()];
        let ours = move |t: &[Tensor]| conv2d(&t[0], &t[1], Some(&t[2]), s, p);
        let theirs = move |t: &[Tensor]| stock(&t[0], &t[1], &t[2], s, p);
        let (yo, go) = grads_of(&vars, &ours, seed + 3);
        let (yt, gt) = grads_of(&vars, &theirs, seed + 3);
        let case = format!("case {i}");
        assert_close(&format!("{case} forward"), &yo, &yt, 1e-5);
        for (name, v) in [("dx", &xv), ("dw", &wv), ("db", &bv)] {
            assert_close(
                &format!("{case} {name}"),
                go.get(v).unwrap(),
                gt.get(v).unwrap(),
                1e-5,
            );
        }
    }
}

#[test]
fn no_bias_adds_nothing() {
    let x = rand(&[2, 3, 5, 5], 1);
    let w = rand(&[4, 3, 1, 1], 2);
    let ours = conv2d(&x, &w, None, 1, 0).unwrap();
    let theirs = x.conv2d(&w, 0, 1, 1, 1).unwrap();
    assert_close("no bias", &ours, &theirs, 1e-6);
}

#[test]
fn gradients_match_finite_differences() {
    // Non-square and odd: candle's own conv backward cannot do this one (its input gradient
    // takes the output padding from the height only).
    let (x, w, b) = (
        rand(&[2, 2, 5, 6], 7),
        rand(&[3, 2, 3, 3], 8),
        rand(&[3], 9),
    );
    let vars = [
        Var::from_tensor(&x).unwrap(),
        Var::from_tensor(&w).unwrap(),
        Var::from_tensor(&b).unwrap(),
    ];
    let f = |t: &[Tensor]| conv2d(&t[0], &t[1], Some(&t[2]), 2, 1);
    let (_, g) = grads_of(&vars, &f, 11);
    let inputs = [x, w, b];
    for (i, v) in vars.iter().enumerate() {
        check_finite_differences(&inputs, i, g.get(v).unwrap(), &f, 11, 1e-2, 2e-3);
    }
}

#[test]
fn input_gradient_is_skipped_for_constant_inputs() {
    // The first conv of the UNet sees the (constant) noisy images: only dw and db are needed.
    // 6×6 runs im2col + GEMM; 12×12 the direct weight gradient where the CPU has AVX-512F.
    for (side, seed) in [(6, 3), (12, 13)] {
        let x = rand(&[2, 1, side, side], seed);
        let wv = Var::from_tensor(&rand(&[2, 1, 3, 3], seed + 1)).unwrap();
        let bv = Var::from_tensor(&rand(&[2], seed + 2)).unwrap();
        let y = conv2d(&x, wv.as_tensor(), Some(bv.as_tensor()), 1, 1).unwrap();
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&x).is_none());
        let want = stock(&x, wv.as_tensor(), bv.as_tensor(), 1, 1)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, v) in [("dw", &wv), ("db", &bv)] {
            assert_close(
                &format!("{side}×{side} {name}"),
                g.get(v).unwrap(),
                want.get(v).unwrap(),
                1e-5,
            );
        }
    }
}

#[test]
fn results_are_bitwise_deterministic() {
    // 7×7 (im2col + GEMM for dW) and 12×12 (the direct weight gradient on AVX-512F).
    for side in [7, 12] {
        let x = Var::from_tensor(&rand(&[16, 4, side, side], 1)).unwrap();
        let w = Var::from_tensor(&rand(&[5, 4, 3, 3], 2)).unwrap();
        let b = Var::from_tensor(&rand(&[5], 3)).unwrap();
        let run = || {
            let y = conv2d(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), 1, 1).unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            [&w, &b, &x].map(|v| {
                g.get(v)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
        };
        assert_eq!(run(), run(), "{side}×{side}");
    }
}

#[test]
fn mismatched_shapes_are_errors() {
    let x = rand(&[1, 3, 5, 5], 1);
    assert!(conv2d(&x, &rand(&[2, 4, 3, 3], 2), None, 1, 1).is_err());
    assert!(conv2d(&x, &rand(&[2, 3, 7, 7], 2), None, 1, 0).is_err());
}
