//! Today's blog UNet (seed 001; lucidrains' `denoising-diffusion-pytorch`, seed 002): weight-
//! standardised ResNet blocks with scale-shift time conditioning, two blocks and two skips per
//! stage, `Residual(PreNorm(LinearAttention))`, pixel-unshuffle downsampling, nearest ×2 +
//! 3×3 upsampling and a final ResNet block on `cat(x, r)`. Parameters are read under the
//! seed's `state_dict` names.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};

use super::attention::{Attention, LinearAttention, PreNormResidual};
use super::config::UnetConfig;
use super::embedding::TimeMlp;
use super::layers::{conv2d, group_norm, linear, silu, Conv2d, GroupNorm};
use super::unet::init_conv;

/// `WeightStandardizedConv2d`: the weight is standardised per output channel
/// (`(w − mean) / √(var + eps)`, biased variance) on every forward pass, then convolved.
#[derive(Debug, Clone)]
pub struct WsConv2d {
    conv: Conv2d,
}

/// The seed's `eps` for `f32` inputs (`1e-3` is for half precision, which this crate never uses).
pub const WS_EPS: f64 = 1e-5;

impl WsConv2d {
    /// Reads `weight` and `bias` under `vb` (3×3, padding 1, as `Block.proj`).
    pub fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv2d(c_in, c_out, 3, 1, 1, 1, true, vb)?,
        })
    }

    /// The standardised weight: one small pass over the weights (not the activations), and
    /// differentiable, so training back-propagates through the standardisation.
    pub fn standardized_weight(&self) -> Result<Tensor> {
        let w = self.conv.weight();
        let dims = w.dims().to_vec();
        let flat = w.reshape((dims[0], ()))?;
        let centered = flat.broadcast_sub(&flat.mean_keepdim(D::Minus1)?)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let scale = (var + WS_EPS)?.sqrt()?.recip()?;
        centered.broadcast_mul(&scale)?.reshape(dims)
    }
}

impl Module for WsConv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv
            .forward_with_weight(x, &self.standardized_weight()?)
    }
}

/// `x · (scale + 1) + shift` with per-example, per-channel `scale` and `shift` `(N, C)`.
fn scale_shift(x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let (n, c) = scale.dims2()?;
    let scale = (scale.reshape((n, c, 1, 1))? + 1.0)?;
    x.broadcast_mul(&scale)?
        .broadcast_add(&shift.reshape((n, c, 1, 1))?)
}

/// `Block(dim, dim_out, groups)`: WS conv 3×3 → GroupNorm → (scale-shift) → SiLU.
#[derive(Debug, Clone)]
pub struct WsBlock {
    proj: WsConv2d,
    norm: GroupNorm,
}

impl WsBlock {
    /// Reads `proj` and `norm` under `vb`.
    pub fn new(dim: usize, dim_out: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            proj: WsConv2d::new(dim, dim_out, vb.pp("proj"))?,
            norm: group_norm(groups, dim_out, vb.pp("norm"))?,
        })
    }

    /// `act(norm(proj(x)) · (scale + 1) + shift)`.
    pub fn forward(&self, x: &Tensor, scale_shift: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
        scale_shift_silu(&self.norm.forward(&self.proj.forward(x)?)?, scale_shift)
    }
}

/// The end of a `Block` (this UNet's and lucidrains'): `silu(h · (scale + 1) + shift)`, in one
/// fused op on the CPU, or `silu(h)` without time conditioning.
pub(super) fn scale_shift_silu(
    h: &Tensor,
    scale_shift: Option<(&Tensor, &Tensor)>,
) -> Result<Tensor> {
    match scale_shift {
        Some((scale, shift)) if crate::ops::fast_path(h) => {
            crate::ops::scale_shift_silu::scale_shift_silu(h, scale, shift)
        }
        Some((scale, shift)) => silu(&self::scale_shift(h, scale, shift)?),
        None => silu(h),
    }
}

/// `ResnetBlock(dim, dim_out, time_emb_dim, groups)` of seed 001: `mlp = (SiLU, Linear(t,
/// 2·dim_out))` gives scale and shift for `block1`.
#[derive(Debug, Clone)]
pub struct ScaleShiftResnetBlock {
    mlp: Linear,
    block1: WsBlock,
    block2: WsBlock,
    res_conv: Option<Conv2d>,
}

impl ScaleShiftResnetBlock {
    /// Reads `mlp.1`, `block1`, `block2` and `res_conv` (when widths differ) under `vb`.
    pub fn new(
        dim: usize,
        dim_out: usize,
        time_emb_dim: usize,
        groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            mlp: linear(time_emb_dim, dim_out * 2, vb.pp("mlp").pp("1"))?,
            block1: WsBlock::new(dim, dim_out, groups, vb.pp("block1"))?,
            block2: WsBlock::new(dim_out, dim_out, groups, vb.pp("block2"))?,
            res_conv: if dim != dim_out {
                Some(conv2d(dim, dim_out, 1, 1, 0, 1, true, vb.pp("res_conv"))?)
            } else {
                None
            },
        })
    }

    /// `block2(block1(x, scale_shift(t))) + res_conv(x)`, given `SiLU(t)`, the first layer of
    /// `mlp`, which the UNet computes once for all its blocks.
    pub fn forward_activated(&self, x: &Tensor, t_act: &Tensor) -> Result<Tensor> {
        let emb = self.mlp.forward(t_act)?;
        let half = emb.dim(1)? / 2;
        // `chunk(2, dim=1)`: scale first, then shift.
        let scale = emb.narrow(1, 0, half)?;
        let shift = emb.narrow(1, half, half)?;
        let h = self.block1.forward(x, Some((&scale, &shift)))?;
        let h = self.block2.forward(&h, None)?;
        let res = match &self.res_conv {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        h + res
    }
}

/// `Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2)`: pixel unshuffle.
pub fn pixel_unshuffle(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("pixel_unshuffle: {h}×{w} is not divisible by 2");
    }
    if crate::ops::fast_path(x) {
        return crate::ops::resample::pixel_unshuffle(x);
    }
    x.reshape((b, c, h / 2, 2, w / 2, 2))?
        .permute((0, 1, 3, 5, 2, 4))?
        .contiguous()?
        .reshape((b, c * 4, h / 2, w / 2))
}

/// `nn.Upsample(scale_factor=2, mode="nearest")`, as a broadcast (whose backward is a sum).
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if crate::ops::fast_path(x) {
        return crate::ops::resample::upsample_nearest2x(x);
    }
    x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))?
        .contiguous()?
        .reshape((b, c, h * 2, w * 2))
}

/// A stage's `downs.i.3` / `ups.i.3`: a resolution change followed by a conv, or a 3×3 conv
/// at the last stage.
#[derive(Debug, Clone)]
pub(super) enum Resample {
    /// `Downsample`: pixel unshuffle + 1×1 conv (`.1`).
    Down(Conv2d),
    /// `Upsample`: nearest ×2 + 3×3 conv (`.1`).
    Up(Conv2d),
    /// `nn.Conv2d(dim_in, dim_out, 3, padding=1)`.
    Same(Conv2d),
}

impl Module for Resample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Resample::Down(c) => c.forward(&pixel_unshuffle(x)?),
            Resample::Up(c) => c.forward(&upsample_nearest2x(x)?),
            Resample::Same(c) => c.forward(x),
        }
    }
}

/// One stage `downs.i` or `ups.i`: two blocks, linear attention, resample.
#[derive(Debug, Clone)]
struct Stage {
    block1: ScaleShiftResnetBlock,
    block2: ScaleShiftResnetBlock,
    attn: PreNormResidual<LinearAttention>,
    resample: Resample,
}

/// Today's `Unet` (without the `self_condition` concatenation, which [`super::Unet`] does for
/// both architectures).
#[derive(Debug, Clone)]
pub struct CurrentUnet {
    init_conv: Conv2d,
    time_mlp: TimeMlp,
    downs: Vec<Stage>,
    mid_block1: ScaleShiftResnetBlock,
    mid_attn: PreNormResidual<Attention>,
    mid_block2: ScaleShiftResnetBlock,
    ups: Vec<Stage>,
    final_res_block: ScaleShiftResnetBlock,
    final_conv: Conv2d,
}

impl CurrentUnet {
    /// Builds the network of `c` (validated by the caller), reading every parameter under its
    /// PyTorch name from `vb`.
    pub fn new(c: &UnetConfig, vb: VarBuilder) -> Result<Self> {
        let time_dim = c.dim * 4;
        let groups = c.resnet_block_groups;
        let in_out = c.in_out();
        let n_res = in_out.len();
        let block = |d_in: usize, d_out: usize, vb: VarBuilder| {
            ScaleShiftResnetBlock::new(d_in, d_out, time_dim, groups, vb)
        };
        let lin_attn = |d: usize, vb: VarBuilder| {
            PreNormResidual::new(d, vb, |vb| LinearAttention::new(d, vb))
        };
        let init_conv = init_conv(c, &vb)?;
        let time_mlp = TimeMlp::new(c.dim, time_dim, vb.pp("time_mlp"))?;

        let mut downs = Vec::with_capacity(n_res);
        for (i, &(d_in, d_out)) in in_out.iter().enumerate() {
            let vb = vb.pp("downs").pp(i);
            let is_last = i + 1 >= n_res;
            let rvb = vb.pp("3");
            downs.push(Stage {
                block1: block(d_in, d_in, vb.pp("0"))?,
                block2: block(d_in, d_in, vb.pp("1"))?,
                attn: lin_attn(d_in, vb.pp("2"))?,
                resample: if is_last {
                    Resample::Same(conv2d(d_in, d_out, 3, 1, 1, 1, true, rvb)?)
                } else {
                    Resample::Down(conv2d(d_in * 4, d_out, 1, 1, 0, 1, true, rvb.pp("1"))?)
                },
            });
        }

        let mid = *c.dims().last().expect("dims is never empty");
        let mid_block1 = block(mid, mid, vb.pp("mid_block1"))?;
        let mid_attn = PreNormResidual::new(mid, vb.pp("mid_attn"), |vb| Attention::new(mid, vb))?;
        let mid_block2 = block(mid, mid, vb.pp("mid_block2"))?;

        let mut ups = Vec::with_capacity(n_res);
        for (i, &(d_in, d_out)) in in_out.iter().rev().enumerate() {
            let vb = vb.pp("ups").pp(i);
            let is_last = i + 1 == n_res;
            let rvb = vb.pp("3");
            ups.push(Stage {
                block1: block(d_out + d_in, d_out, vb.pp("0"))?,
                block2: block(d_out + d_in, d_out, vb.pp("1"))?,
                attn: lin_attn(d_out, vb.pp("2"))?,
                resample: if is_last {
                    Resample::Same(conv2d(d_out, d_in, 3, 1, 1, 1, true, rvb)?)
                } else {
                    Resample::Up(conv2d(d_out, d_in, 3, 1, 1, 1, true, rvb.pp("1"))?)
                },
            });
        }

        let final_res_block = block(c.dim * 2, c.dim, vb.pp("final_res_block"))?;
        let final_conv = conv2d(c.dim, c.out_dim(), 1, 1, 0, 1, true, vb.pp("final_conv"))?;
        Ok(Self {
            init_conv,
            time_mlp,
            downs,
            mid_block1,
            mid_attn,
            mid_block2,
            ups,
            final_res_block,
            final_conv,
        })
    }

    /// The init conv's weight (its device is the model's).
    pub fn first_weight(&self) -> &Tensor {
        self.init_conv.weight()
    }

    /// `Unet.forward` after the self-conditioning concatenation: `x` has `input_channels`.
    pub fn forward(&self, x: &Tensor, time: &Tensor) -> Result<Tensor> {
        let mut x = self.init_conv.forward(x)?;
        let r = x.clone();
        // Every block's time MLP starts with SiLU of this same embedding.
        let t = silu(&self.time_mlp.forward(time)?)?;
        let mut h = Vec::with_capacity(self.downs.len() * 2);
        for s in &self.downs {
            x = s.block1.forward_activated(&x, &t)?;
            h.push(x.clone());
            x = s.block2.forward_activated(&x, &t)?;
            x = s.attn.forward(&x)?;
            h.push(x.clone());
            x = s.resample.forward(&x)?;
        }
        x = self.mid_block1.forward_activated(&x, &t)?;
        x = self.mid_attn.forward(&x)?;
        x = self.mid_block2.forward_activated(&x, &t)?;
        for s in &self.ups {
            let skip = h.pop().expect("two skips per down stage");
            x = s
                .block1
                .forward_activated(&Tensor::cat(&[&x, &skip], 1)?, &t)?;
            let skip = h.pop().expect("two skips per down stage");
            x = s
                .block2
                .forward_activated(&Tensor::cat(&[&x, &skip], 1)?, &t)?;
            x = s.attn.forward(&x)?;
            x = s.resample.forward(&x)?;
        }
        let x = Tensor::cat(&[&x, &r], 1)?;
        let x = self.final_res_block.forward_activated(&x, &t)?;
        self.final_conv.forward(&x)
    }
}
