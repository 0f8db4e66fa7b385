//! The GPU-side convolutions (`ops::device_conv`, built from candle's `conv2d` only) against
//! candle's own conv and conv-transpose gradients and finite differences, run on the CPU: the
//! same tensor code runs on CUDA and Metal.

use crate::ops_common;

use candle_core::{Result, Tensor, Var};
use ddpm_lab::ops::device_conv::{
    conv2d, conv2d_with_bias, conv_transpose2d, depthwise_conv2d, depthwise_conv2d_in_blocks,
    supports,
};
use ops_common::{assert_close, check_finite_differences, grads_of, max_diff, rand};

fn stock_conv(x: &Tensor, w: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
    x.conv2d(w, pad, stride, 1, 1)
}

/// `ours(x, w)` and `theirs(x, w)` with `x` and `w` as variables: checks that their gradients
/// for `x` and `w` have the same shapes and agree to 1e-5, and returns both outputs.
fn outputs_with_matching_grads(
    what: &str,
    x: Tensor,
    w: Tensor,
    seed: u64,
    ours: impl Fn(&[Tensor]) -> Result<Tensor>,
    theirs: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> (Tensor, Tensor) {
    let (xv, wv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap());
    let vars = [xv.clone(), wv.clone()];
    let (yo, go) = grads_of(&vars, &ours, seed);
    let (yt, gt) = grads_of(&vars, &theirs, seed);
    for (name, v) in [("dx", &xv), ("dw", &wv)] {
        let (a, b) = (go.get(v).unwrap(), gt.get(v).unwrap());
        assert_eq!(a.dims(), b.dims(), "{what} {name} shape");
        assert_close(&format!("{what} {name}"), a, b, 1e-5);
    }
    (yo, yt)
}

#[test]
fn conv_forward_and_gradients_match_candle() {
    // (n, ci, h, w, co, k, stride, pad): the blog's 3×3 and 1×1 convs, the 7×7 init conv, its
    // 4×4 stride-2 downsampling, a "valid" conv, strides 2 and 3 whose last input rows no
    // window reaches past (the transposed conv's output padding: 1 and 2), a single image.
    let cases = [
        (2, 3, 6, 6, 4, 3, 1, 1),
        (2, 3, 5, 7, 2, 1, 1, 0),
        (1, 2, 9, 9, 3, 7, 1, 3),
        (2, 3, 8, 8, 4, 4, 2, 1),
        (2, 2, 7, 7, 3, 3, 2, 1),
        (2, 2, 8, 8, 3, 3, 2, 1),
        (1, 2, 6, 5, 2, 3, 1, 0),
        (1, 2, 11, 11, 2, 3, 3, 1),
        (1, 3, 4, 4, 5, 3, 1, 1),
    ];
    for (i, &(n, ci, h, w, co, k, s, p)) in cases.iter().enumerate() {
        let seed = 500 + i as u64 * 10;
        let (yo, yt) = outputs_with_matching_grads(
            &format!("case {i}"),
            rand(&[n, ci, h, w], seed),
            rand(&[co, ci, k, k], seed + 1),
            seed + 3,
            move |t: &[Tensor]| conv2d(&t[0], &t[1], s, p),
            move |t: &[Tensor]| stock_conv(&t[0], &t[1], s, p),
        );
        // The forward pass is candle's conv itself.
        assert_eq!(max_diff(&yo, &yt), 0.0, "case {i} forward");
    }
}

/// The conv with its bias in one op (on the CPU, the GPU route's stand-in: the graph CUDA
/// builds) against candle's conv plus a broadcast bias: the output and the gradients of the
/// input, the weight and the bias; and nothing where its geometry does not fit.
#[test]
fn conv_with_bias_in_one_op_matches_candles_conv_plus_bias() {
    for (i, &(n, ci, h, w, co, k, s, p)) in [
        (2, 3, 6, 6, 4, 3, 1, 1),
        (2, 2, 8, 8, 3, 4, 2, 1),
        (1, 3, 5, 7, 2, 1, 1, 0),
    ]
    .iter()
    .enumerate()
    {
        let seed = 900 + i as u64 * 10;
        let vars = [
            Var::from_tensor(&rand(&[n, ci, h, w], seed)).unwrap(),
            Var::from_tensor(&rand(&[co, ci, k, k], seed + 1)).unwrap(),
            Var::from_tensor(&rand(&[co], seed + 2)).unwrap(),
        ];
        let ours = move |t: &[Tensor]| {
            Ok(conv2d_with_bias(&t[0], &t[1], &t[2], s, p)?.expect("fits on the CPU"))
        };
        let theirs = move |t: &[Tensor]| {
            stock_conv(&t[0], &t[1], s, p)?.broadcast_add(&t[2].reshape((1, co, 1, 1))?)
        };
        let (yo, go) = grads_of(&vars, &ours, seed + 3);
        let (yt, gt) = grads_of(&vars, &theirs, seed + 3);
        assert_eq!(max_diff(&yo, &yt), 0.0, "case {i} forward");
        for (name, v) in ["dx", "dw", "db"].iter().zip(&vars) {
            let (a, b) = (go.get(v).unwrap(), gt.get(v).unwrap());
            assert_eq!(a.dims(), b.dims(), "case {i} {name} shape");
            assert_close(&format!("case {i} {name}"), a, b, 1e-5);
        }
    }
    // A kernel wider than its padding allows is left to the caller.
    let x = rand(&[1, 1, 4, 4], 1);
    let none = conv2d_with_bias(&x, &rand(&[1, 1, 3, 3], 2), &rand(&[1], 3), 1, 3).unwrap();
    assert!(none.is_none());
}

#[test]
fn conv_gradients_match_finite_differences_with_uneven_output_padding() {
    // Stride 2 on 7×8: one input column, but no row, lies past the last window (candle's own
    // backward takes one output padding for both axes).
    let (x, w) = (rand(&[2, 2, 7, 8], 1), rand(&[3, 2, 3, 3], 2));
    let vars = [Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap()];
    let f = |t: &[Tensor]| conv2d(&t[0], &t[1], 2, 1);
    let (y, g) = grads_of(&vars, &f, 3);
    assert_eq!(y.dims(), &[2, 3, 4, 4]);
    let inputs = [x, w];
    for (i, v) in vars.iter().enumerate() {
        assert_eq!(g.get(v).unwrap().dims(), inputs[i].dims());
        check_finite_differences(&inputs, i, g.get(v).unwrap(), &f, 3, 1e-2, 2e-3);
    }
}

#[test]
fn only_tracked_inputs_get_gradients_and_inference_is_candles_conv() {
    let (x, w) = (rand(&[2, 3, 6, 6], 7), rand(&[4, 3, 3, 3], 8));
    // An image that needs no gradient: only the weight gets one.
    let wv = Var::from_tensor(&w).unwrap();
    let y = conv2d(&x, wv.as_tensor(), 1, 1).unwrap();
    let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(g.get(&x).is_none());
    let wv2 = Var::from_tensor(&w).unwrap();
    let yt = stock_conv(&x, wv2.as_tensor(), 1, 1).unwrap();
    let gt = yt.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert_close("dw", g.get(&wv).unwrap(), gt.get(&wv2).unwrap(), 1e-5);
    // Nothing tracked: candle's output, with no op recorded.
    let y = conv2d(&x, &w, 1, 1).unwrap();
    assert!(!y.track_op());
    assert_eq!(max_diff(&y, &stock_conv(&x, &w, 1, 1).unwrap()), 0.0);
}

#[test]
fn conv_transpose_forward_and_gradients_match_candle() {
    // (n, ci, h, w, co, k, stride, pad, output padding): the blog UNet's upsampling (4×4,
    // stride 2, pad 1), a stride-1 one, no padding, output padding 1.
    let cases = [
        (2, 3, 4, 4, 3, 4, 2, 1, 0),
        (2, 2, 3, 5, 4, 4, 2, 1, 0),
        (1, 2, 3, 3, 2, 3, 1, 1, 0),
        (2, 2, 3, 3, 3, 3, 2, 0, 0),
        (1, 2, 3, 4, 2, 3, 2, 1, 1),
    ];
    for (i, &(n, ci, h, w, co, k, s, p, op)) in cases.iter().enumerate() {
        let seed = 700 + i as u64 * 10;
        let (yo, yt) = outputs_with_matching_grads(
            &format!("case {i}"),
            rand(&[n, ci, h, w], seed),
            rand(&[ci, co, k, k], seed + 1),
            seed + 3,
            move |t: &[Tensor]| conv_transpose2d(&t[0], &t[1], s, p, op),
            move |t: &[Tensor]| t[0].conv_transpose2d(&t[1], p, op, s, 1),
        );
        assert_eq!(yo.dims(), yt.dims(), "case {i} output shape");
        assert_close(&format!("case {i} forward"), &yo, &yt, 1e-5);
    }
}

#[test]
fn depthwise_forward_and_gradients_match_candles_grouped_conv() {
    // (n, c, h, w, k, pad): the ConvNeXt blocks' 7×7, a 3×3 on a non-square map, one channel.
    for (i, &(n, c, h, w, k, p)) in [(2, 4, 8, 8, 7, 3), (1, 3, 5, 6, 3, 1), (2, 1, 4, 4, 3, 1)]
        .iter()
        .enumerate()
    {
        let seed = 900 + i as u64 * 10;
        let (yo, yt) = outputs_with_matching_grads(
            &format!("case {i}"),
            rand(&[n, c, h, w], seed),
            rand(&[c, 1, k, k], seed + 1),
            seed + 3,
            move |t: &[Tensor]| depthwise_conv2d(&t[0], &t[1], p),
            move |t: &[Tensor]| t[0].conv2d(&t[1], p, 1, 1, c),
        );
        assert_close(&format!("case {i} forward"), &yo, &yt, 1e-5);
    }
    // In blocks of channels: 7 as 3 + 3 + 1, 4 as 2 + 2, 5 in one.
    for (i, &(c, max_block)) in [(7, 3), (4, 2), (5, 8)].iter().enumerate() {
        let seed = 950 + i as u64 * 10;
        let (yo, yt) = outputs_with_matching_grads(
            &format!("blocks {i}"),
            rand(&[2, c, 6, 5], seed),
            rand(&[c, 1, 3, 3], seed + 1),
            seed + 3,
            move |t: &[Tensor]| depthwise_conv2d_in_blocks(&t[0], &t[1], 1, max_block),
            move |t: &[Tensor]| t[0].conv2d(&t[1], 1, 1, 1, c),
        );
        assert_close(&format!("blocks {i} forward"), &yo, &yt, 1e-5);
    }
    let e = depthwise_conv2d(&rand(&[1, 3, 4, 4], 1), &rand(&[4, 1, 3, 3], 2), 1).unwrap_err();
    assert!(e.to_string().contains("3 input channels"), "{e}");
}

#[test]
fn unsupported_geometry_is_an_error() {
    assert!(supports(3, 2) && supports(1, 0) && !supports(3, 3) && !supports(1, 1));
    let (x, w) = (rand(&[1, 2, 6, 6], 1), rand(&[2, 2, 3, 3], 2));
    let e = conv2d(&x, &w, 1, 3).unwrap_err().to_string();
    assert!(e.contains("padding 3"), "{e}");
    assert!(conv2d(&x, &rand(&[2, 2, 3, 2], 3), 1, 1).is_err());
    assert!(conv_transpose2d(&x, &w, 2, 1, 2).is_err());
}
