//! Thin constructors for the PyTorch layers the UNet uses (`nn.Conv2d`, `nn.ConvTranspose2d`,
//! `nn.Linear`, `nn.GroupNorm`), reading parameters under their PyTorch names.
//!
//! New parameters are created as zeros; [`crate::model::init::pytorch_default_init`] then gives
//! them PyTorch's default initialisation from a seed.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Init, VarBuilder};

const ZERO: Init = Init::Const(0.0);
const ONE: Init = Init::Const(1.0);

/// `nn.Conv2d(c_in, c_out, k, stride, padding, groups, bias)`.
pub fn conv2d(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let weight = vb.get_with_hints((c_out, c_in / groups, kernel, kernel), "weight", ZERO)?;
    let bias = if bias {
        Some(vb.get_with_hints(c_out, "bias", ZERO)?)
    } else {
        None
    };
    let cfg = Conv2dConfig {
        padding,
        stride,
        dilation: 1,
        groups,
        cudnn_fwd_algo: None,
    };
    Ok(Conv2d::new(weight, bias, cfg))
}

/// `nn.ConvTranspose2d(c_in, c_out, k, stride, padding)` (weight shape `(c_in, c_out, k, k)`).
pub fn conv_transpose2d(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let weight = vb.get_with_hints((c_in, c_out, kernel, kernel), "weight", ZERO)?;
    let bias = vb.get_with_hints(c_out, "bias", ZERO)?;
    let cfg = ConvTranspose2dConfig {
        padding,
        output_padding: 0,
        stride,
        dilation: 1,
    };
    Ok(ConvTranspose2d::new(weight, Some(bias), cfg))
}

/// `nn.Linear(d_in, d_out)`.
pub fn linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<candle_nn::Linear> {
    let weight = vb.get_with_hints((d_out, d_in), "weight", ZERO)?;
    let bias = vb.get_with_hints(d_out, "bias", ZERO)?;
    Ok(candle_nn::Linear::new(weight, Some(bias)))
}

/// `nn.GroupNorm(groups, channels)` with eps 1e-5 (weight 1, bias 0 when new).
pub fn group_norm(groups: usize, channels: usize, vb: VarBuilder) -> Result<candle_nn::GroupNorm> {
    let weight = vb.get_with_hints(channels, "weight", ONE)?;
    let bias = vb.get_with_hints(channels, "bias", ZERO)?;
    candle_nn::GroupNorm::new(weight, bias, channels, groups, 1e-5)
}

/// PyTorch's default `nn.GELU()` (exact, erf-based).
#[derive(Debug, Clone, Copy)]
pub struct Gelu;

impl Module for Gelu {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.gelu_erf()
    }
}

/// Adds a per-channel vector `(N, C)` to a feature map `(N, C, H, W)`
/// (the blog's `rearrange(condition, "b c -> b c 1 1")` + add).
pub fn add_channel_bias(x: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (n, c) = v.dims2()?;
    x.broadcast_add(&v.reshape((n, c, 1, 1))?)
}
