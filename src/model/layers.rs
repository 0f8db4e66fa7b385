//! Thin constructors for the PyTorch layers the UNet uses (`nn.Conv2d`, `nn.ConvTranspose2d`,
//! `nn.Linear`, `nn.GroupNorm`), reading parameters under their PyTorch names.
//!
//! New parameters are created as zeros; [`crate::model::init::pytorch_default_init`] then gives
//! them PyTorch's default initialisation from a seed.
//!
//! The conv and GroupNorm layers run through the custom CPU kernels of [`crate::ops`] for `f32`
//! tensors on the CPU, and through candle-nn's stock layers on every other device.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, Init, VarBuilder};

use crate::ops;

/// `nn.Conv2d`: a 2-D convolution with optional bias.
#[derive(Debug, Clone)]
pub struct Conv2d {
    stock: candle_nn::Conv2d,
    stride: usize,
    padding: usize,
    groups: usize,
}

impl Conv2d {
    /// The weight `(c_out, c_in / groups, k, k)`.
    pub fn weight(&self) -> &Tensor {
        self.stock.weight()
    }

    /// The bias `(c_out)`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.stock.bias()
    }

    /// Whether this is a depthwise conv the dedicated kernel handles (one filter per channel,
    /// stride 1, with bias).
    fn is_depthwise(&self) -> bool {
        let (c_out, per_group) = (
            self.weight().dim(0).unwrap_or(0),
            self.weight().dim(1).unwrap_or(0),
        );
        self.groups > 1
            && self.groups == c_out
            && per_group == 1
            && self.stride == 1
            && self.bias().is_some()
    }
}

impl Conv2d {
    /// This conv's geometry and bias with another weight of the same shape (weight
    /// standardisation derives one per forward pass); `groups` must be 1.
    pub fn forward_with_weight(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if ops::fast_path(x) && ops::fast_path(w) {
            return ops::conv::conv2d(x, w, self.bias(), self.stride, self.padding);
        }
        let y = x.conv2d(w, self.padding, self.stride, 1, self.groups)?;
        match self.bias() {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if ops::fast_path(x) && ops::fast_path(self.weight()) {
            if self.groups == 1 {
                return ops::conv::conv2d(x, self.weight(), self.bias(), self.stride, self.padding);
            }
            if let (true, Some(b)) = (self.is_depthwise(), self.bias()) {
                return ops::depthwise::depthwise_conv2d(x, self.weight(), b, self.padding);
            }
        }
        self.stock.forward(x)
    }
}

/// `nn.ConvTranspose2d` with bias.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    stock: candle_nn::ConvTranspose2d,
    stride: usize,
    padding: usize,
}

impl ConvTranspose2d {
    /// The weight `(c_in, c_out, k, k)`.
    pub fn weight(&self) -> &Tensor {
        self.stock.weight()
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let (true, true, Some(b)) = (
            ops::fast_path(x),
            ops::fast_path(self.weight()),
            self.stock.bias(),
        ) {
            return ops::conv_transpose::conv_transpose2d(
                x,
                self.weight(),
                b,
                self.stride,
                self.padding,
            );
        }
        self.stock.forward(x)
    }
}

/// `nn.GroupNorm(groups, channels)` with an affine weight and bias.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    stock: candle_nn::GroupNorm,
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if ops::fast_path(x) && ops::fast_path(&self.weight) && x.rank() >= 2 {
            return ops::group_norm::group_norm(x, &self.weight, &self.bias, self.groups, self.eps);
        }
        self.stock.forward(x)
    }
}

const ZERO: Init = Init::Const(0.0);
const ONE: Init = Init::Const(1.0);

/// `nn.Conv2d(c_in, c_out, k, stride, padding, groups, bias)`.
#[allow(clippy::too_many_arguments)] // PyTorch's own argument list, one to one
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
    Ok(Conv2d {
        stock: candle_nn::Conv2d::new(weight, bias, cfg),
        stride,
        padding,
        groups,
    })
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
    Ok(ConvTranspose2d {
        stock: candle_nn::ConvTranspose2d::new(weight, Some(bias), cfg),
        stride,
        padding,
    })
}

/// `nn.Linear(d_in, d_out)`.
pub fn linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<candle_nn::Linear> {
    let weight = vb.get_with_hints((d_out, d_in), "weight", ZERO)?;
    let bias = vb.get_with_hints(d_out, "bias", ZERO)?;
    Ok(candle_nn::Linear::new(weight, Some(bias)))
}

/// `nn.GroupNorm(groups, channels)` with eps 1e-5 (weight 1, bias 0 when new).
pub fn group_norm(groups: usize, channels: usize, vb: VarBuilder) -> Result<GroupNorm> {
    let weight = vb.get_with_hints(channels, "weight", ONE)?;
    let bias = vb.get_with_hints(channels, "bias", ZERO)?;
    let eps = 1e-5;
    Ok(GroupNorm {
        stock: candle_nn::GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?,
        weight,
        bias,
        groups,
        eps,
    })
}

/// PyTorch's default `nn.GELU()` (exact, erf-based).
#[derive(Debug, Clone, Copy)]
pub struct Gelu;

impl Module for Gelu {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if ops::fast_path(xs) {
            return ops::gelu::gelu(xs);
        }
        xs.gelu_erf()
    }
}

/// PyTorch's `nn.SiLU()` / `F.silu` (the ResNet blocks' activation).
pub fn silu(xs: &Tensor) -> Result<Tensor> {
    if ops::fast_path(xs) {
        return ops::silu::silu(xs);
    }
    xs.silu()
}

/// Adds a per-channel vector `(N, C)` to a feature map `(N, C, H, W)`
/// (the blog's `rearrange(condition, "b c -> b c 1 1")` + add).
pub fn add_channel_bias(x: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (n, c) = v.dims2()?;
    x.broadcast_add(&v.reshape((n, c, 1, 1))?)
}
