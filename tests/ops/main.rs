//! The custom CPU ops against candle's own and finite differences, in one binary.

#[path = "../common/mod.rs"]
mod common;
mod ops_common;

mod ops_conv;
mod ops_conv_transpose;
mod ops_depthwise;
mod ops_device_conv;
mod ops_direct_conv;
mod ops_gelu;
mod ops_group_norm;
mod ops_linear_attention;
mod ops_resample;
mod ops_scale_shift_silu;
mod ops_silu;
