//! The depthwise conv kernel against candle's grouped conv2d and finite differences.

use crate::ops_common;

use candle_core::{Result, Tensor, Var};
use ddpm_lab::ops::depthwise::depthwise_conv2d;
use ops_common::{assert_close, check_finite_differences, grads_of, rand};

fn stock(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize) -> Result<Tensor> {
    let c = x.dim(1)?;
    let y = x.conv2d(w, pad, 1, 1, c)?;
    y.broadcast_add(&b.reshape((1, c, 1, 1))?)
}

#[test]
fn forward_and_gradients_match_candle() {
    // (n, c, h, w, k, pad): the ConvNeXt 7×7 (pad 3) at several resolutions, and a 3×3.
    for (i, &(n, c, h, w, k, p)) in [
        (2, 3, 12, 12, 7, 3),
        (3, 4, 7, 7, 7, 3),
        (9, 2, 5, 6, 3, 1),
        (1, 2, 4, 4, 3, 0),
    ]
    .iter()
    .enumerate()
    {
        let seed = 100 + i as u64 * 10;
        let xv = Var::from_tensor(&rand(&[n, c, h, w], seed)).unwrap();
        let wv = Var::from_tensor(&rand(&[c, 1, k, k], seed + 1)).unwrap();
        let bv = Var::from_tensor(&rand(&[c], seed + 2)).unwrap();
        let vars = [xv.clone(), wv.clone(), bv.clone()];
        let ours = move |t: &[Tensor]| depthwise_conv2d(&t[0], &t[1], &t[2], p);
        let theirs = move |t: &[Tensor]| stock(&t[0], &t[1], &t[2], p);
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
        rand(&[2, 2, 8, 8], 1),
        rand(&[2, 1, 7, 7], 2),
        rand(&[2], 3),
    );
    let vars = [
        Var::from_tensor(&x).unwrap(),
        Var::from_tensor(&w).unwrap(),
        Var::from_tensor(&b).unwrap(),
    ];
    let f = |t: &[Tensor]| depthwise_conv2d(&t[0], &t[1], &t[2], 3);
    let (_, g) = grads_of(&vars, &f, 4);
    let inputs = [x, w, b];
    for (i, v) in vars.iter().enumerate() {
        check_finite_differences(&inputs, i, g.get(v).unwrap(), &f, 4, 1e-2, 2e-3);
    }
}

#[test]
fn wrong_weight_shape_is_an_error() {
    let x = rand(&[1, 3, 8, 8], 1);
    assert!(depthwise_conv2d(&x, &rand(&[3, 2, 7, 7], 2), &rand(&[3], 3), 3).is_err());
    assert!(depthwise_conv2d(&x, &rand(&[4, 1, 7, 7], 2), &rand(&[4], 3), 3).is_err());
}
