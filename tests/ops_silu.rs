//! The fused SiLU op against candle's `silu` and finite differences.

mod ops_common;

use candle_core::{Tensor, Var};
use ddpm_lab::ops::silu::silu;
use ops_common::{assert_close, check_finite_differences, grads_of, max_diff, rand};

#[test]
fn forward_and_backward_match_candle() {
    let x = (rand(&[3, 5, 7, 11], 1) * 4.0).unwrap();
    let xv = Var::from_tensor(&x).unwrap();
    let ours = |t: &[Tensor]| silu(&t[0]);
    let theirs = |t: &[Tensor]| t[0].silu();
    let (yo, go) = grads_of(&[xv.clone()], &ours, 2);
    let (yt, gt) = grads_of(&[xv.clone()], &theirs, 2);
    assert!(
        max_diff(&yo, &yt) < 1e-6,
        "forward differs by {}",
        max_diff(&yo, &yt)
    );
    assert_close("dx", go.get(&xv).unwrap(), gt.get(&xv).unwrap(), 1e-5);
}

#[test]
fn gradient_matches_finite_differences() {
    let x = (rand(&[4, 9], 3) * 3.0).unwrap();
    let xv = Var::from_tensor(&x).unwrap();
    let f = |t: &[Tensor]| silu(&t[0]);
    let (_, g) = grads_of(&[xv.clone()], &f, 4);
    check_finite_differences(&[x], 0, g.get(&xv).unwrap(), &f, 4, 1e-3, 1e-2);
}

#[test]
fn extreme_inputs_stay_finite_and_match_candle() {
    let x = Tensor::new(
        &[-200f32, -90.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 90.0, 200.0],
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let ours = silu(&x).unwrap();
    let theirs = x.silu().unwrap();
    assert!(max_diff(&ours, &theirs) < 1e-5, "{ours} vs {theirs}");
}
