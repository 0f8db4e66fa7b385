//! The UNet type every caller uses ([`Unet`]), over both architectures, and the blog's first
//! `Unet` ([`BlogUnet`]): init conv, time MLP, down stages, middle, up stages, final block +
//! 1×1 conv.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{Attention, LinearAttention, PreNormResidual};
use super::blocks::{time_activation, ResBlock};
use super::config::{Arch, BlockKind, UnetConfig};
use super::current::CurrentUnet;
use super::embedding::TimeMlp;
use super::layers::{conv2d, conv_transpose2d, Conv2d, ConvTranspose2d};
use super::lucidrains::LucidrainsUnet;

/// One down stage `downs.i`: two blocks, linear attention, and a 4×4 stride-2 conv (not in the
/// last stage).
#[derive(Debug, Clone)]
struct DownStage {
    block1: ResBlock,
    block2: ResBlock,
    /// `None` when the configuration keeps attention to the middle (`stage_attention: false`).
    attn: Option<PreNormResidual<LinearAttention>>,
    down: Option<Conv2d>,
}

/// One up stage `ups.i`: two blocks (the first takes the skip connection), linear attention and
/// a 4×4 stride-2 transposed conv.
#[derive(Debug, Clone)]
struct UpStage {
    block1: ResBlock,
    block2: ResBlock,
    /// `None` when the configuration keeps attention to the middle.
    attn: Option<PreNormResidual<LinearAttention>>,
    up: Option<ConvTranspose2d>,
}

/// The denoising network `ε_θ(x_t, t)` (or `ε_θ(x_t, t, x̂₀)` with self-conditioning), of
/// either architecture: train, sampling, loading and the benches go through this one type.
#[derive(Debug, Clone)]
pub struct Unet {
    config: UnetConfig,
    net: Net,
}

/// The architecture-specific network behind a [`Unet`] (boxed: the two differ in size by
/// hundreds of bytes, and a `Unet` is made once).
#[derive(Debug, Clone)]
enum Net {
    Blog(Box<BlogUnet>),
    Current(Box<CurrentUnet>),
    Lucidrains(Box<LucidrainsUnet>),
}

impl Unet {
    /// Builds the UNet `config.arch` names, reading every parameter under its PyTorch
    /// `state_dict` name from `vb`.
    pub fn new(config: &UnetConfig, vb: VarBuilder) -> Result<Self> {
        config
            .validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let net = match config.arch {
            Arch::Blog => Net::Blog(Box::new(BlogUnet::new(config, vb)?)),
            Arch::Current => Net::Current(Box::new(CurrentUnet::new(config, vb)?)),
            Arch::Lucidrains => Net::Lucidrains(Box::new(LucidrainsUnet::new(config, vb)?)),
        };
        Ok(Self {
            config: config.clone(),
            net,
        })
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &UnetConfig {
        &self.config
    }

    /// The device holding the weights.
    pub fn device(&self) -> &candle_core::Device {
        match &self.net {
            Net::Blog(n) => n.init_conv.weight().device(),
            Net::Current(n) => n.first_weight().device(),
            Net::Lucidrains(n) => n.first_weight().device(),
        }
    }

    /// Whether the network takes an `x_self_cond` input.
    pub fn self_conditioned(&self) -> bool {
        self.config.self_condition
    }

    /// `model(x, time)`: `x` is `(N, C, H, W)` f32, `time` is `(N,)` integer timesteps. A
    /// self-conditioned model sees zeros as its `x_self_cond`.
    pub fn forward(&self, x: &Tensor, time: &Tensor) -> Result<Tensor> {
        self.forward_cond(x, time, None)
    }

    /// `model(x, time, x_self_cond)`: with `self_condition`, the input is
    /// `cat(x_self_cond or zeros, x)` along channels (as the seed); without, `x_self_cond` is
    /// ignored.
    pub fn forward_cond(
        &self,
        x: &Tensor,
        time: &Tensor,
        x_self_cond: Option<&Tensor>,
    ) -> Result<Tensor> {
        crate::ops::on_pool(x.device(), || {
            let input = if self.config.self_condition {
                let cond = match x_self_cond {
                    Some(c) => c.clone(),
                    None => x.zeros_like()?,
                };
                Tensor::cat(&[&cond, x], 1)?
            } else {
                x.clone()
            };
            match &self.net {
                Net::Blog(n) => n.forward(&input, time),
                Net::Current(n) => n.forward(&input, time),
                Net::Lucidrains(n) => n.forward(&input, time),
            }
        })
    }
}

/// `init_conv` of every UNet: the input's channels to `init_dim`, with the configured kernel
/// (padding `kernel / 2`, so the size is kept).
pub(super) fn init_conv(c: &UnetConfig, vb: &VarBuilder) -> Result<Conv2d> {
    let k = c.init_kernel();
    let channels = (c.input_channels(), c.init_dim());
    conv2d(
        channels.0,
        channels.1,
        k,
        1,
        k / 2,
        1,
        true,
        vb.pp("init_conv"),
    )
}

/// The blog's first `Unet` (seeds 000/004).
#[derive(Debug, Clone)]
pub struct BlogUnet {
    init_conv: Conv2d,
    time_mlp: Option<TimeMlp>,
    /// The blocks' kind, whose activation starts every block's time MLP.
    block: BlockKind,
    downs: Vec<DownStage>,
    mid_block1: ResBlock,
    mid_attn: PreNormResidual<Attention>,
    mid_block2: ResBlock,
    ups: Vec<UpStage>,
    final_block: ResBlock,
    final_conv: Conv2d,
}

impl BlogUnet {
    /// Builds the network of `c` (validated by the caller), reading every parameter under its
    /// PyTorch `state_dict` name from `vb`.
    pub fn new(c: &UnetConfig, vb: VarBuilder) -> Result<Self> {
        let time_dim = c.time_dim();
        let in_out = c.in_out();
        let n_res = in_out.len();
        let block = |d_in: usize, d_out: usize, td: Option<usize>, vb: VarBuilder| {
            ResBlock::new(
                c.block,
                d_in,
                d_out,
                td,
                c.convnext_mult,
                c.resnet_block_groups,
                vb,
            )
        };

        let init_conv = init_conv(c, &vb)?;
        let time_mlp = match time_dim {
            Some(td) => Some(TimeMlp::new(c.dim, td, vb.pp("time_mlp"))?),
            None => None,
        };

        let mut downs = Vec::with_capacity(n_res);
        for (i, &(d_in, d_out)) in in_out.iter().enumerate() {
            let vb = vb.pp("downs").pp(i);
            let is_last = i >= n_res - 1;
            downs.push(DownStage {
                block1: block(d_in, d_out, time_dim, vb.pp("0"))?,
                block2: block(d_out, d_out, time_dim, vb.pp("1"))?,
                attn: if c.stage_attention {
                    Some(PreNormResidual::new(d_out, vb.pp("2"), |vb| {
                        LinearAttention::new(d_out, vb)
                    })?)
                } else {
                    None
                },
                down: if is_last {
                    None
                } else {
                    Some(conv2d(d_out, d_out, 4, 2, 1, 1, true, vb.pp("3"))?)
                },
            });
        }

        let mid = *c.dims().last().expect("dims is never empty");
        let mid_block1 = block(mid, mid, time_dim, vb.pp("mid_block1"))?;
        let mid_attn = PreNormResidual::new(mid, vb.pp("mid_attn"), |vb| Attention::new(mid, vb))?;
        let mid_block2 = block(mid, mid, time_dim, vb.pp("mid_block2"))?;

        let mut ups = Vec::with_capacity(n_res.saturating_sub(1));
        for (i, &(d_in, d_out)) in in_out[1..].iter().rev().enumerate() {
            let vb = vb.pp("ups").pp(i);
            let is_last = i >= n_res - 1;
            ups.push(UpStage {
                block1: block(d_out * 2, d_in, time_dim, vb.pp("0"))?,
                block2: block(d_in, d_in, time_dim, vb.pp("1"))?,
                attn: if c.stage_attention {
                    Some(PreNormResidual::new(d_in, vb.pp("2"), |vb| {
                        LinearAttention::new(d_in, vb)
                    })?)
                } else {
                    None
                },
                up: if is_last {
                    None
                } else {
                    Some(conv_transpose2d(d_in, d_in, 4, 2, 1, vb.pp("3"))?)
                },
            });
        }

        let fvb = vb.pp("final_conv");
        let final_block = block(c.dim, c.dim, None, fvb.pp("0"))?;
        let final_conv = conv2d(c.dim, c.out_dim(), 1, 1, 0, 1, true, fvb.pp("1"))?;

        Ok(Self {
            init_conv,
            time_mlp,
            block: c.block,
            downs,
            mid_block1,
            mid_attn,
            mid_block2,
            ups,
            final_block,
            final_conv,
        })
    }

    /// `model(x, time)` on the calling thread (`x` already has `input_channels`).
    fn forward(&self, x: &Tensor, time: &Tensor) -> Result<Tensor> {
        let mut x = self.init_conv.forward(x)?;
        // The blocks' time MLPs all start with the same activation of the same embedding.
        let t = match &self.time_mlp {
            Some(m) => Some(time_activation(self.block, &m.forward(time)?)?),
            None => None,
        };
        let t = t.as_ref();
        let mut skips = Vec::with_capacity(self.downs.len());
        for s in &self.downs {
            x = s.block1.forward_activated(&x, t)?;
            x = s.block2.forward_activated(&x, t)?;
            if let Some(a) = &s.attn {
                x = a.forward(&x)?;
            }
            skips.push(x.clone());
            if let Some(d) = &s.down {
                x = d.forward(&x)?;
            }
        }
        x = self.mid_block1.forward_activated(&x, t)?;
        x = self.mid_attn.forward(&x)?;
        x = self.mid_block2.forward_activated(&x, t)?;
        for s in &self.ups {
            let skip = skips.pop().expect("one skip per down stage");
            x = Tensor::cat(&[&x, &skip], 1)?;
            x = s.block1.forward_activated(&x, t)?;
            x = s.block2.forward_activated(&x, t)?;
            if let Some(a) = &s.attn {
                x = a.forward(&x)?;
            }
            if let Some(u) = &s.up {
                x = u.forward(&x)?;
            }
        }
        let x = self.final_block.forward_activated(&x, None)?;
        self.final_conv.forward(&x)
    }
}
