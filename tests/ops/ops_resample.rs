//! Pixel unshuffle and nearest ×2 upsampling (today's blog UNet) against candle's reshapes and
//! finite differences.

use crate::ops_common;

use candle_core::{Result, Tensor, Var};
use ddpm_lab::ops::resample::{pixel_unshuffle, upsample_nearest2x};
use ops_common::{assert_close, check_finite_differences, grads_of, max_diff, rand};

fn stock_unshuffle(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h / 2, 2, w / 2, 2))?
        .permute((0, 1, 3, 5, 2, 4))?
        .contiguous()?
        .reshape((b, c * 4, h / 2, w / 2))
}

fn stock_upsample(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.upsample_nearest2d(h * 2, w * 2)
}

#[test]
fn both_match_candle_forward_and_backward() {
    type Op = fn(&Tensor) -> Result<Tensor>;
    let cases: [(&str, Op, Op, [usize; 4]); 4] = [
        ("unshuffle", pixel_unshuffle, stock_unshuffle, [2, 3, 8, 6]),
        (
            "unshuffle",
            pixel_unshuffle,
            stock_unshuffle,
            [1, 5, 28, 28],
        ),
        ("upsample", upsample_nearest2x, stock_upsample, [2, 3, 4, 3]),
        ("upsample", upsample_nearest2x, stock_upsample, [3, 4, 7, 7]),
    ];
    for (i, (name, ours, theirs, shape)) in cases.into_iter().enumerate() {
        let xv = Var::from_tensor(&rand(&shape, 900 + i as u64)).unwrap();
        let vars = [xv.clone()];
        let (yo, go) = grads_of(&vars, &|t: &[Tensor]| ours(&t[0]), 5);
        let (yt, gt) = grads_of(&vars, &|t: &[Tensor]| theirs(&t[0]), 5);
        assert_eq!(yo.dims(), yt.dims(), "{name} {shape:?}");
        assert_eq!(
            max_diff(&yo, &yt),
            0.0,
            "{name} {shape:?}: a copy must be exact"
        );
        assert_close(
            &format!("{name} {shape:?} dx"),
            go.get(&xv).unwrap(),
            gt.get(&xv).unwrap(),
            1e-6,
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    for f in [
        pixel_unshuffle as fn(&Tensor) -> Result<Tensor>,
        upsample_nearest2x,
    ] {
        let x = rand(&[1, 2, 4, 4], 3);
        let xv = Var::from_tensor(&x).unwrap();
        let g = |t: &[Tensor]| f(&t[0]);
        let (_, gr) = grads_of(std::slice::from_ref(&xv), &g, 6);
        check_finite_differences(&[x], 0, gr.get(&xv).unwrap(), &g, 6, 1e-3, 1e-2);
    }
}

#[test]
fn odd_sizes_are_errors() {
    let e = pixel_unshuffle(&rand(&[1, 1, 5, 4], 1)).unwrap_err();
    assert!(e.to_string().contains("divisible by 2"), "{e}");
}
