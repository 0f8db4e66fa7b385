//! Thin constructors for the PyTorch layers the UNet uses (`nn.Conv2d`, `nn.ConvTranspose2d`,
//! `nn.Linear`, `nn.GroupNorm`), reading parameters under their PyTorch names.
//!
//! New parameters are created as zeros; [`crate::model::init::pytorch_default_init`] then gives
//! them PyTorch's default initialisation from a seed.
//!
//! The conv and GroupNorm layers run through the custom CPU kernels of [`crate::ops`] for `f32`
//! tensors on the CPU. On a GPU the convs and conv-transposes run through
//! [`crate::ops::device_conv`], everything else through candle-nn's stock layers
//! ([`crate::ops::route`]).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, Init, VarBuilder};

use crate::ops::{self, Route};

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
    /// standardisation derives one per forward pass).
    pub fn forward_with_weight(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        self.conv(x, w, ops::route(x))
    }

    /// [`Module::forward`] through the implementation `route` (tests compare them on the CPU).
    pub fn forward_on(&self, x: &Tensor, route: Route) -> Result<Tensor> {
        self.conv(x, self.weight(), route)
    }

    fn conv(&self, x: &Tensor, w: &Tensor, route: Route) -> Result<Tensor> {
        match route {
            Route::Cpu if ops::fast_path(x) && ops::fast_path(w) => {
                if self.groups == 1 {
                    return ops::conv::conv2d(x, w, self.bias(), self.stride, self.padding);
                }
                if let (true, Some(b)) = (self.is_depthwise(), self.bias()) {
                    return ops::depthwise::depthwise_conv2d(x, w, b, self.padding);
                }
            }
            Route::Device => {
                if let (1, Some(b)) = (self.groups, self.bias()) {
                    let fused =
                        ops::device_conv::conv2d_with_bias(x, w, b, self.stride, self.padding)?;
                    if let Some(y) = fused {
                        return Ok(y);
                    }
                }
                if let Some(y) = self.device_conv_without_bias(x, w)? {
                    return self.add_bias(y);
                }
            }
            _ => {}
        }
        let y = x.conv2d(w, self.padding, self.stride, 1, self.groups)?;
        self.add_bias(y)
    }

    /// The conv without its bias on the GPU route, where it has one (`None`: the stock conv).
    fn device_conv_without_bias(&self, x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
        if !ops::device_conv::fits(w, self.padding) {
            return Ok(None);
        }
        if self.groups == 1 {
            return ops::device_conv::conv2d(x, w, self.stride, self.padding).map(Some);
        }
        if self.is_depthwise() {
            return ops::device_conv::depthwise_conv2d(x, w, self.padding).map(Some);
        }
        Ok(None)
    }

    /// This conv plus a per-image, per-channel `extra (N, C_out)` (a block's time embedding):
    /// on the GPU route the bias and `extra` are added together, by the depthwise conv's own
    /// kernel where the device has it, else in one pass over the output (one pass instead of
    /// two); elsewhere the conv, then [`add_channel_bias`].
    pub fn forward_plus_channel_bias(&self, x: &Tensor, extra: &Tensor) -> Result<Tensor> {
        if ops::route(x) == Route::Device {
            let (w, padding) = (self.weight(), self.padding);
            let b = match self.bias() {
                Some(b) => extra.broadcast_add(&b.unsqueeze(0)?)?,
                None => extra.clone(),
            };
            // A depthwise conv adds them as it writes its output, where the device can.
            if self.is_depthwise() {
                let fused = ops::device_conv::depthwise_conv2d_plus_plane_bias(x, w, &b, padding)?;
                if let Some(y) = fused {
                    return Ok(y);
                }
            }
            let conv_and_add = || match self.device_conv_without_bias(x, w)? {
                Some(y) => add_channel_bias(&y, &b).map(Some),
                None => Ok(None),
            };
            // Elsewhere a depthwise conv and the add stand in for that one op.
            let y = if self.is_depthwise() {
                let plane = ops::cuda_op_names::DEPTHWISE_CONV_PLANE_BIAS;
                ops::stand_in(plane, x.device(), conv_and_add)?
            } else {
                conv_and_add()?
            };
            if let Some(y) = y {
                return Ok(y);
            }
        }
        add_channel_bias(&self.forward(x)?, extra)
    }

    fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        match self.bias() {
            Some(b) => ops::channel_bias::add(&y, b),
            None => Ok(y),
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_on(x, ops::route(x))
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

    /// [`Module::forward`] through the implementation `route` (tests compare them on the CPU).
    pub fn forward_on(&self, x: &Tensor, route: Route) -> Result<Tensor> {
        let (w, bias) = (self.weight(), self.stock.bias());
        match (route, bias) {
            (Route::Cpu, Some(b)) if ops::fast_path(x) && ops::fast_path(w) => {
                ops::conv_transpose::conv_transpose2d(x, w, b, self.stride, self.padding)
            }
            (Route::Device, Some(b)) if ops::device_conv::fits(w, self.padding) => {
                let y = ops::device_conv::conv_transpose2d(x, w, self.stride, self.padding, 0)?;
                ops::channel_bias::add(&y, b)
            }
            _ => self.stock.forward(x),
        }
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_on(x, ops::route(x))
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
        #[cfg(feature = "cuda")]
        if ops::route(x) == ops::Route::Device
            && ops::cuda::group_norm::supports(x, &self.weight, &self.bias, self.groups)
        {
            return ops::cuda::group_norm::group_norm(
                x,
                &self.weight,
                &self.bias,
                self.groups,
                self.eps,
            );
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
        #[cfg(feature = "cuda")]
        if ops::route(xs) == Route::Device && ops::cuda::elementwise::supports_gelu(xs) {
            return ops::cuda::elementwise::gelu(xs);
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
    v.dims2()?;
    ops::channel_bias::add(x, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    /// The layer's output and the gradients of `Σ out · r` for the input and every parameter,
    /// through `run`.
    fn run_with_grads(
        map: &VarMap,
        x: &Var,
        run: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> (Tensor, Vec<Tensor>) {
        let y = run(x.as_tensor()).unwrap();
        // Fixed weights for the output: sin(0.37·i).
        let r = (Tensor::arange(0u32, y.elem_count() as u32, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            * 0.37)
            .unwrap()
            .sin()
            .unwrap()
            .reshape(y.dims())
            .unwrap();
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let mut grads = vec![g.get(x).unwrap().clone()];
        let mut vars: Vec<(String, Var)> = map.data().lock().unwrap().clone().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, v) in vars {
            let gv = g
                .get(&v)
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            grads.push(gv.clone());
        }
        (y, grads)
    }

    fn close(what: &str, a: &Tensor, b: &Tensor) {
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        let d = d.max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-4, "{what}: differs by {d}");
    }

    /// The GPU route of the conv layers (bias included), run on the CPU, against candle's stock
    /// layers: same outputs, same gradients for the input, weight and bias.
    #[test]
    fn device_route_matches_stock_layers() {
        let dev = Device::Cpu;
        // (c_in, c_out, kernel, stride, padding, groups): 3×3, 1×1, the 4×4 stride-2
        // downsampling, the 7×7 init conv, a depthwise 7×7 (the ConvNeXt blocks').
        for (i, &(ci, co, k, s, p, g)) in [
            (3, 4, 3, 1, 1, 1),
            (3, 5, 1, 1, 0, 1),
            (4, 4, 4, 2, 1, 1),
            (2, 3, 7, 1, 3, 1),
            (4, 4, 7, 1, 3, 4),
        ]
        .iter()
        .enumerate()
        {
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
            let layer = conv2d(ci, co, k, s, p, g, true, vb).unwrap();
            for v in map.all_vars() {
                let init = Tensor::randn(0f32, 0.5, v.dims(), &dev).unwrap();
                v.set(&init).unwrap();
            }
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, ci, 8, 8), &dev).unwrap()).unwrap();
            let (yd, gd) = run_with_grads(&map, &x, |t| layer.forward_on(t, Route::Device));
            let (ys, gs) = run_with_grads(&map, &x, |t| layer.forward_on(t, Route::Stock));
            close(&format!("conv {i} output"), &yd, &ys);
            for (j, (a, b)) in gd.iter().zip(&gs).enumerate() {
                close(&format!("conv {i} gradient {j}"), a, b);
            }
        }
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        let up = conv_transpose2d(4, 3, 4, 2, 1, vb).unwrap();
        for v in map.all_vars() {
            v.set(&Tensor::randn(0f32, 0.5, v.dims(), &dev).unwrap())
                .unwrap();
        }
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 4, 5, 5), &dev).unwrap()).unwrap();
        let (yd, gd) = run_with_grads(&map, &x, |t| up.forward_on(t, Route::Device));
        let (ys, gs) = run_with_grads(&map, &x, |t| up.forward_on(t, Route::Stock));
        assert_eq!(yd.dims(), &[2, 3, 10, 10]);
        close("conv-transpose output", &yd, &ys);
        for (j, (a, b)) in gd.iter().zip(&gs).enumerate() {
            close(&format!("conv-transpose gradient {j}"), a, b);
        }
    }
}
