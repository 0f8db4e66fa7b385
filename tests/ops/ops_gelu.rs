//! The fused GELU op against candle's `gelu_erf` and finite differences.

use crate::ops_common;

use ddpm_lab::ops::gelu::gelu;
use ops_common::check_elementwise_op;

#[test]
fn forward_and_backward_match_candle_and_finite_differences() {
    check_elementwise_op(gelu, |x| x.gelu_erf());
}
