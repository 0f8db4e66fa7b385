//! The fused SiLU op against candle's `silu` and finite differences.

use crate::ops_common;

use candle_core::Tensor;
use ddpm_lab::ops::silu::silu;
use ops_common::{check_elementwise_op, max_diff};

#[test]
fn forward_and_backward_match_candle_and_finite_differences() {
    check_elementwise_op(silu, |x| x.silu());
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
