//! The UNet's residual blocks: `ConvNextBlock` and `ResnetBlock` (with its inner `Block`).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::config::BlockKind;
use super::layers::{add_channel_bias, conv2d, group_norm, linear, silu, Conv2d, Gelu, GroupNorm};

/// `ConvNextBlock(dim, dim_out, time_emb_dim, mult)`.
#[derive(Debug, Clone)]
pub struct ConvNextBlock {
    mlp: Option<Linear>,
    ds_conv: Conv2d,
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    res_conv: Option<Conv2d>,
}

impl ConvNextBlock {
    /// Reads `mlp.1`, `ds_conv`, `net.{0,1,3,4}` and `res_conv` under `vb`.
    pub fn new(
        dim: usize,
        dim_out: usize,
        time_emb_dim: Option<usize>,
        mult: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mlp = match time_emb_dim {
            Some(td) => Some(linear(td, dim, vb.pp("mlp").pp("1"))?),
            None => None,
        };
        let net = vb.pp("net");
        let hidden = dim_out * mult;
        Ok(Self {
            mlp,
            ds_conv: conv2d(dim, dim, 7, 1, 3, dim, true, vb.pp("ds_conv"))?,
            norm1: group_norm(1, dim, net.pp("0"))?,
            conv1: conv2d(dim, hidden, 3, 1, 1, 1, true, net.pp("1"))?,
            norm2: group_norm(1, hidden, net.pp("3"))?,
            conv2: conv2d(hidden, dim_out, 3, 1, 1, 1, true, net.pp("4"))?,
            res_conv: if dim != dim_out {
                Some(conv2d(dim, dim_out, 1, 1, 0, 1, true, vb.pp("res_conv"))?)
            } else {
                None
            },
        })
    }

    /// `net(ds_conv(x) + mlp(t)) + res_conv(x)`, given `GELU(t)`, the first layer of `mlp`,
    /// which the UNet applies once for all its blocks ([`time_activation`]).
    pub fn forward_activated(&self, x: &Tensor, t_act: Option<&Tensor>) -> Result<Tensor> {
        let h = match (&self.mlp, t_act) {
            (Some(mlp), Some(t_act)) => {
                let cond = mlp.forward(t_act)?;
                self.ds_conv.forward_plus_channel_bias(x, &cond)?
            }
            _ => self.ds_conv.forward(x)?,
        };
        let h = self.norm1.forward(&h)?;
        let h = Gelu.forward(&self.conv1.forward(&h)?)?;
        let h = self.conv2.forward(&self.norm2.forward(&h)?)?;
        let res = match &self.res_conv {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        h + res
    }
}

/// `Block(dim, dim_out, groups)`: conv 3×3 → GroupNorm → SiLU.
#[derive(Debug, Clone)]
pub struct ResnetInnerBlock {
    proj: Conv2d,
    norm: GroupNorm,
}

impl ResnetInnerBlock {
    /// Reads `proj` and `norm` under `vb`.
    pub fn new(dim: usize, dim_out: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            proj: conv2d(dim, dim_out, 3, 1, 1, 1, true, vb.pp("proj"))?,
            norm: group_norm(groups, dim_out, vb.pp("norm"))?,
        })
    }
}

impl Module for ResnetInnerBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        silu(&self.norm.forward(&self.proj.forward(x)?)?)
    }
}

/// `ResnetBlock(dim, dim_out, time_emb_dim, groups)`.
#[derive(Debug, Clone)]
pub struct ResnetBlock {
    mlp: Option<Linear>,
    block1: ResnetInnerBlock,
    block2: ResnetInnerBlock,
    res_conv: Option<Conv2d>,
}

impl ResnetBlock {
    /// Reads `mlp.1`, `block1`, `block2` and `res_conv` under `vb`.
    pub fn new(
        dim: usize,
        dim_out: usize,
        time_emb_dim: Option<usize>,
        groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mlp = match time_emb_dim {
            Some(td) => Some(linear(td, dim_out, vb.pp("mlp").pp("1"))?),
            None => None,
        };
        Ok(Self {
            mlp,
            block1: ResnetInnerBlock::new(dim, dim_out, groups, vb.pp("block1"))?,
            block2: ResnetInnerBlock::new(dim_out, dim_out, groups, vb.pp("block2"))?,
            res_conv: if dim != dim_out {
                Some(conv2d(dim, dim_out, 1, 1, 0, 1, true, vb.pp("res_conv"))?)
            } else {
                None
            },
        })
    }

    /// `block2(block1(x) + mlp(t)) + res_conv(x)`.
    pub fn forward(&self, x: &Tensor, t: Option<&Tensor>) -> Result<Tensor> {
        let t_act = t.map(silu).transpose()?;
        self.forward_activated(x, t_act.as_ref())
    }

    /// [`Self::forward`] given `SiLU(t)`, the first layer of `mlp` ([`time_activation`]).
    pub fn forward_activated(&self, x: &Tensor, t_act: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.block1.forward(x)?;
        if let (Some(mlp), Some(t_act)) = (&self.mlp, t_act) {
            let cond = mlp.forward(t_act)?;
            h = add_channel_bias(&h, &cond)?;
        }
        let h = self.block2.forward(&h)?;
        let res = match &self.res_conv {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        h + res
    }
}

/// The first layer of the time MLP of every block of `kind` (`mlp = Sequential(act, Linear)`
/// over the UNet's one time embedding): GELU for ConvNeXt, SiLU for ResNet. The UNet applies it
/// once per forward pass and hands the result to each block ([`ResBlock::forward_activated`]),
/// where PyTorch's blocks each apply it to the same tensor again (the same values; the
/// embedding's gradient adds the blocks' before the activation's backward instead of after).
pub fn time_activation(kind: BlockKind, t: &Tensor) -> Result<Tensor> {
    match kind {
        BlockKind::Convnext => Gelu.forward(t),
        BlockKind::Resnet => silu(t),
    }
}

/// Either block kind, as the UNet's `block_klass`.
#[derive(Debug, Clone)]
pub enum ResBlock {
    /// A ConvNeXt block.
    ConvNext(ConvNextBlock),
    /// A ResNet block.
    Resnet(ResnetBlock),
}

impl ResBlock {
    /// Builds a block of `kind` (`mult` for ConvNeXt, `groups` for ResNet).
    pub fn new(
        kind: BlockKind,
        dim: usize,
        dim_out: usize,
        time_emb_dim: Option<usize>,
        mult: usize,
        groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(match kind {
            BlockKind::Convnext => {
                ResBlock::ConvNext(ConvNextBlock::new(dim, dim_out, time_emb_dim, mult, vb)?)
            }
            BlockKind::Resnet => {
                ResBlock::Resnet(ResnetBlock::new(dim, dim_out, time_emb_dim, groups, vb)?)
            }
        })
    }

    /// Runs the block with [`time_activation`] of the time embedding (if any).
    pub fn forward_activated(&self, x: &Tensor, t_act: Option<&Tensor>) -> Result<Tensor> {
        match self {
            ResBlock::ConvNext(b) => b.forward_activated(x, t_act),
            ResBlock::Resnet(b) => b.forward_activated(x, t_act),
        }
    }
}
