//! The GEMM + col2im conv_transpose2d op against candle's conv_transpose2d and finite
//! differences.

use crate::ops_common;

use candle_core::{Result, Tensor, Var};
use ddpm_lab::ops::conv_transpose::conv_transpose2d;
use ops_common::{assert_close, check_finite_differences, grads_of, rand};

fn stock(x: &Tensor, w: &Tensor, b: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
    let y = x.conv_transpose2d(w, pad, 0, stride, 1)?;
    y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)
}

#[test]
fn forward_and_gradients_match_candle() {
    // (n, ci, h, w, co, k, stride, pad): the UNet's Upsample (4×4, stride 2, pad 1) and others.
    for (i, &(n, ci, h, w, co, k, s, p)) in [
        (2, 3, 4, 4, 3, 4, 2, 1),
        (9, 2, 3, 5, 4, 4, 2, 1),
        (1, 2, 3, 3, 2, 3, 1, 1),
        (2, 2, 3, 3, 3, 3, 2, 0),
    ]
    .iter()
    .enumerate()
    {
        let seed = 300 + i as u64 * 10;
        let xv = Var::from_tensor(&rand(&[n, ci, h, w], seed)).unwrap();
        let wv = Var::from_tensor(&rand(&[ci, co, k, k], seed + 1)).unwrap();
        let bv = Var::from_tensor(&rand(&[co], seed + 2)).unwrap();
        let vars = [xv.clone(), wv.clone(), bv.clone()];
        let ours = move |t: &[Tensor]| conv_transpose2d(&t[0], &t[1], &t[2], s, p);
        let theirs = move |t: &[Tensor]| stock(&t[0], &t[1], &t[2], s, p);
        let (yo, go) = grads_of(&vars, &ours, seed + 3);
        let (yt, gt) = grads_of(&vars, &theirs, seed + 3);
        assert_close(&format!("case {i} forward"), &yo, &yt, 1e-5);
        for (name, v) in [("dx", &xv), ("dw", &wv), ("db", &bv)] {
            assert_close(
                &format!("case {i} {name}"),
                go.get(v).unwrap(),
                gt.get(v).unwrap(),
                1e-5,
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let (x, w, b) = (
        rand(&[2, 2, 3, 3], 1),
        rand(&[2, 3, 4, 4], 2),
        rand(&[3], 3),
    );
    let vars = [
        Var::from_tensor(&x).unwrap(),
        Var::from_tensor(&w).unwrap(),
        Var::from_tensor(&b).unwrap(),
    ];
    let f = |t: &[Tensor]| conv_transpose2d(&t[0], &t[1], &t[2], 2, 1);
    let (_, g) = grads_of(&vars, &f, 4);
    let inputs = [x, w, b];
    for (i, v) in vars.iter().enumerate() {
        check_finite_differences(&inputs, i, g.get(v).unwrap(), &f, 4, 1e-2, 2e-3);
    }
}

#[test]
fn wrong_weight_shape_is_an_error() {
    let x = rand(&[1, 3, 4, 4], 1);
    assert!(conv_transpose2d(&x, &rand(&[2, 3, 4, 4], 2), &rand(&[3], 3), 2, 1).is_err());
}
