//! Self-attention layers of the UNet: full `Attention` (middle of the net), `LinearAttention`
//! (every stage), and the `Residual(PreNorm(dim, fn))` wrapper around them.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{conv2d, group_norm, Conv2d, GroupNorm};
use crate::ops::softmax::softmax;

/// Heads of both attention layers.
pub const HEADS: usize = 4;
/// Width of each head.
pub const DIM_HEAD: usize = 32;

/// Splits `to_qkv(x)` `(b, 3·heads·d, h, w)` into q, k, v of shape `(b, heads, d, h·w)`, with
/// the blog's [`HEADS`] heads of [`DIM_HEAD`].
pub(super) fn split_qkv(qkv: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    split_qkv_heads(qkv, HEADS, DIM_HEAD)
}

/// [`split_qkv`] with `heads` heads of `dim_head`.
pub(super) fn split_qkv_heads(
    qkv: &Tensor,
    heads: usize,
    dim_head: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, _, h, w) = qkv.dims4()?;
    let qkv = qkv.reshape((b, 3, heads, dim_head, h * w))?;
    let part = |i: usize| qkv.narrow(1, i, 1)?.squeeze(1)?.contiguous();
    Ok((part(0)?, part(1)?, part(2)?))
}

/// `q, k, v` (each `(b, heads, dim_head, h·w)`) of `x` through the 1×1 conv `to_qkv`.
///
/// On a GPU they are three convs, each with its third of the weight: the split of one conv's
/// output would be differentiated as three `narrow`s, each padding its gradient with zeros to
/// the full `3·hidden` channels and adding it to the others (two adds and three copies of a
/// tensor of 3·128 channels per attention, the largest of the blog UNet's training step).
fn qkv(to_qkv: &Conv2d, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    if crate::ops::route(x) != crate::ops::Route::Device {
        return split_qkv(&to_qkv.forward(x)?);
    }
    let (b, _, h, w) = x.dims4()?;
    let hidden = HEADS * DIM_HEAD;
    let part = |i: usize| {
        let wi = to_qkv.weight().narrow(0, i * hidden, hidden)?;
        to_qkv
            .forward_with_weight(x, &wi)?
            .reshape((b, HEADS, DIM_HEAD, h * w))
    };
    Ok((part(0)?, part(1)?, part(2)?))
}

/// `Attention(dim, heads=4, dim_head=32)`: softmax(qᵀk / √d) over positions.
#[derive(Debug, Clone)]
pub struct Attention {
    to_qkv: Conv2d,
    to_out: Conv2d,
}

impl Attention {
    /// Reads `to_qkv` (no bias) and `to_out` under `vb`.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = HEADS * DIM_HEAD;
        Ok(Self {
            to_qkv: conv2d(dim, hidden * 3, 1, 1, 0, 1, false, vb.pp("to_qkv"))?,
            to_out: conv2d(hidden, dim, 1, 1, 0, 1, true, vb.pp("to_out"))?,
        })
    }
}

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let (q, k, v) = qkv(&self.to_qkv, x)?;
        let q = (q * (DIM_HEAD as f64).powf(-0.5))?;
        // sim[i, j] = Σ_d q[d, i] k[d, j]
        // cuBLAS (and candle's CPU matmul) take the transposed operands as they are.
        let sim = q.t()?.matmul(&k)?;
        let attn = softmax(&sim, 3)?;
        // out[i, d] = Σ_j attn[i, j] v[d, j]; then "b h (x y) d -> b (h d) x y"
        let out = v.matmul(&attn.t()?)?; // (b, h, d, n)
        let out = out.reshape((b, HEADS * DIM_HEAD, h, w))?;
        self.to_out.forward(&out)
    }
}

/// `LinearAttention(dim, heads=4, dim_head=32)`: q softmaxed over features, k over positions.
#[derive(Debug, Clone)]
pub struct LinearAttention {
    to_qkv: Conv2d,
    to_out_conv: Conv2d,
    to_out_norm: GroupNorm,
}

impl LinearAttention {
    /// Reads `to_qkv`, `to_out.0` (conv) and `to_out.1` (GroupNorm) under `vb`.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = HEADS * DIM_HEAD;
        Ok(Self {
            to_qkv: conv2d(dim, hidden * 3, 1, 1, 0, 1, false, vb.pp("to_qkv"))?,
            to_out_conv: conv2d(hidden, dim, 1, 1, 0, 1, true, vb.pp("to_out").pp("0"))?,
            to_out_norm: group_norm(1, dim, vb.pp("to_out").pp("1"))?,
        })
    }
}

impl Module for LinearAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        if crate::ops::route(x) == crate::ops::Route::Cpu {
            let qkv = self.to_qkv.forward(x)?;
            let out = crate::ops::linear_attention::linear_attention(&qkv, HEADS, DIM_HEAD)?;
            return self.to_out_norm.forward(&self.to_out_conv.forward(&out)?);
        }
        let (q, k, v) = qkv(&self.to_qkv, x)?;
        let scale = (DIM_HEAD as f64).powf(-0.5);
        let out = crate::ops::device_linear_attention::linear_attention_core(&q, &k, &v, scale)?;
        let out = out.reshape((b, HEADS * DIM_HEAD, h, w))?;
        self.to_out_norm.forward(&self.to_out_conv.forward(&out)?)
    }
}

/// `Residual(PreNorm(dim, fn))`: `x + fn(GroupNorm(1, dim)(x))`.
#[derive(Debug, Clone)]
pub struct PreNormResidual<M: Module> {
    norm: GroupNorm,
    inner: M,
}

impl<M: Module> PreNormResidual<M> {
    /// Reads `fn.norm` and builds `fn.fn` with `make` under `vb` (the Residual's prefix).
    pub fn new(
        dim: usize,
        vb: VarBuilder,
        make: impl FnOnce(VarBuilder) -> Result<M>,
    ) -> Result<Self> {
        let pre = vb.pp("fn");
        Ok(Self {
            norm: group_norm(1, dim, pre.pp("norm"))?,
            inner: make(pre.pp("fn"))?,
        })
    }
}

impl<M: Module> Module for PreNormResidual<M> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(&self.norm.forward(x)?)? + x
    }
}
