//! lucidrains' `denoising-diffusion-pytorch` `Unet` as released (2.x, checked against 2.3.4):
//! today's blog UNet with RMSNorm (`F.normalize(x, dim=1) · g · √C`) where it has GroupNorm,
//! plain 3×3 convs in the blocks (no weight standardisation), attention that normalises its own
//! input and attends to four learned memory key/value pairs (`mem_kv`) besides the image, full
//! attention in the lowest stage (`full_attn`'s default) and a 7×7 init conv. Parameters are
//! read under the package's `state_dict` names, so its checkpoints load one to one.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Init, Linear, VarBuilder};

use super::attention::split_qkv_heads;
use super::config::UnetConfig;
use super::current::{scale_shift_silu, Resample};
use super::embedding::TimeMlp;
use super::layers::{conv2d, linear, silu, Conv2d};
use super::unet::init_conv;
use crate::ops::softmax::softmax;

/// Memory key/value pairs of each attention layer (`num_mem_kv`'s default).
pub const NUM_MEM_KV: usize = 4;

/// `F.normalize`'s floor on the norm.
const NORMALIZE_EPS: f64 = 1e-12;

/// `RMSNorm(dim)`: each pixel's channel vector scaled to unit length, times `g · √dim`.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// `g` as `(1, C, 1, 1)` times `√C`.
    gain: Tensor,
}

impl RmsNorm {
    /// Reads `g` `(1, dim, 1, 1)` under `vb` (ones when new).
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let g = vb.get_with_hints((1, dim, 1, 1), "g", Init::Const(1.0))?;
        Ok(Self {
            gain: (g * (dim as f64).sqrt())?,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if crate::ops::fast_path(x) && crate::ops::fast_path(&self.gain) {
            return crate::ops::rms_norm::rms_norm(x, &self.gain.flatten_all()?);
        }
        let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(NORMALIZE_EPS)?;
        x.broadcast_div(&norm)?.broadcast_mul(&self.gain)
    }
}

/// `Block(dim, dim_out)`: conv 3×3 → RMSNorm → (scale-shift) → SiLU (dropout 0, the default).
#[derive(Debug, Clone)]
struct Block {
    proj: Conv2d,
    norm: RmsNorm,
}

impl Block {
    fn new(dim: usize, dim_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            proj: conv2d(dim, dim_out, 3, 1, 1, 1, true, vb.pp("proj"))?,
            norm: RmsNorm::new(dim_out, vb.pp("norm"))?,
        })
    }

    fn forward(&self, x: &Tensor, scale_shift: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
        scale_shift_silu(&self.norm.forward(&self.proj.forward(x)?)?, scale_shift)
    }
}

/// `ResnetBlock(dim, dim_out, time_emb_dim)`: `mlp = (SiLU, Linear(t, 2·dim_out))` gives scale
/// and shift for `block1`; `res_conv` is a 1×1 conv where the widths differ.
#[derive(Debug, Clone)]
struct ResnetBlock {
    mlp: Linear,
    block1: Block,
    block2: Block,
    res_conv: Option<Conv2d>,
}

impl ResnetBlock {
    fn new(dim: usize, dim_out: usize, time_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            mlp: linear(time_dim, dim_out * 2, vb.pp("mlp").pp("1"))?,
            block1: Block::new(dim, dim_out, vb.pp("block1"))?,
            block2: Block::new(dim_out, dim_out, vb.pp("block2"))?,
            res_conv: if dim != dim_out {
                Some(conv2d(dim, dim_out, 1, 1, 0, 1, true, vb.pp("res_conv"))?)
            } else {
                None
            },
        })
    }

    /// Given `SiLU(t)` (the first layer of `mlp`, the same for every block).
    fn forward(&self, x: &Tensor, t_act: &Tensor) -> Result<Tensor> {
        let emb = self.mlp.forward(t_act)?;
        let half = emb.dim(1)? / 2;
        let (scale, shift) = (emb.narrow(1, 0, half)?, emb.narrow(1, half, half)?);
        let h = self.block1.forward(x, Some((&scale, &shift)))?;
        let h = self.block2.forward(&h, None)?;
        match &self.res_conv {
            Some(c) => h + c.forward(x)?,
            None => h + x,
        }
    }
}

/// An attention's heads: how many (`heads`) and how wide (`dim_head`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Number of heads.
    pub heads: usize,
    /// Width of each head.
    pub dim_head: usize,
}

impl Heads {
    /// `heads · dim_head`, the width q, k and v are projected to.
    pub fn hidden(&self) -> usize {
        self.heads * self.dim_head
    }
}

/// What both attentions read their input with: `norm`, the memory `mem_kv` (keys `[0]` and
/// values `[1]`, per head) and the 1×1 conv `to_qkv`.
#[derive(Debug, Clone)]
struct AttentionInput {
    heads: Heads,
    norm: RmsNorm,
    mem_kv: Tensor,
    to_qkv: Conv2d,
}

impl AttentionInput {
    /// Reads `norm`, `mem_kv` (`(2, heads, dim_head, 4)` for linear attention, `(2, heads, 4,
    /// dim_head)` for full) and `to_qkv` (no bias) under `vb`.
    fn new(dim: usize, heads: Heads, linear: bool, vb: &VarBuilder) -> Result<Self> {
        let (h, d) = (heads.heads, heads.dim_head);
        let mem_kv = if linear {
            (2, h, d, NUM_MEM_KV)
        } else {
            (2, h, NUM_MEM_KV, d)
        };
        Ok(Self {
            heads,
            norm: RmsNorm::new(dim, vb.pp("norm"))?,
            mem_kv: vb.get_with_hints(mem_kv, "mem_kv", Init::Const(0.0))?,
            to_qkv: conv2d(dim, heads.hidden() * 3, 1, 1, 0, 1, false, vb.pp("to_qkv"))?,
        })
    }

    /// q, k, v of `to_qkv(norm(x))`, each `(b, heads, dim_head, h·w)`.
    fn qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let qkv = self.to_qkv.forward(&self.norm.forward(x)?)?;
        split_qkv_heads(&qkv, self.heads.heads, self.heads.dim_head)
    }

    /// `mem_kv[i]` repeated over a batch of `b`.
    fn memory(&self, i: usize, b: usize) -> Result<Tensor> {
        let m = self.mem_kv.get(i)?.unsqueeze(0)?;
        let dims: Vec<usize> = std::iter::once(b)
            .chain(m.dims()[1..].iter().copied())
            .collect();
        m.broadcast_as(dims)?.contiguous()
    }
}

/// `LinearAttention(dim)`: the input read, then q softmaxed over features and k over positions
/// and memory (`mem_kv (2, heads, dim_head, 4)` before the image's keys and values), and
/// `to_out = (conv 1×1, RMSNorm)`.
#[derive(Debug, Clone)]
struct LinearAttention {
    input: AttentionInput,
    to_out_conv: Conv2d,
    to_out_norm: RmsNorm,
}

impl LinearAttention {
    fn new(dim: usize, heads: Heads, vb: VarBuilder) -> Result<Self> {
        let hidden = heads.hidden();
        Ok(Self {
            input: AttentionInput::new(dim, heads, true, &vb)?,
            to_out_conv: conv2d(hidden, dim, 1, 1, 0, 1, true, vb.pp("to_out").pp("0"))?,
            to_out_norm: RmsNorm::new(dim, vb.pp("to_out").pp("1"))?,
        })
    }
}

impl Module for LinearAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let heads = self.input.heads;
        if crate::ops::route(x) == crate::ops::Route::Cpu {
            // One op from `to_qkv(norm(x))` to what enters `to_out`, memory included.
            let qkv = self.input.to_qkv.forward(&self.input.norm.forward(x)?)?;
            let out = crate::ops::linear_attention::linear_attention_with_memory(
                &qkv,
                &self.input.mem_kv,
                heads.heads,
                heads.dim_head,
            )?;
            return self.to_out_norm.forward(&self.to_out_conv.forward(&out)?);
        }
        let (q, k, v) = self.input.qkv(x)?;
        let k = Tensor::cat(&[&self.input.memory(0, b)?, &k], D::Minus1)?;
        let v = Tensor::cat(&[&self.input.memory(1, b)?, &v], D::Minus1)?;
        let q = (softmax(&q, 2)? * (heads.dim_head as f64).powf(-0.5))?;
        let k = softmax(&k, 3)?;
        // context[d, e] = Σ_n k[d, n] v[e, n]; out[e, n] = Σ_d context[d, e] q[d, n]
        let context = k.matmul(&v.t()?)?;
        let out = context.t()?.matmul(&q)?;
        let out = out.reshape((b, heads.hidden(), h, w))?;
        self.to_out_norm.forward(&self.to_out_conv.forward(&out)?)
    }
}

/// `Attention(dim)`: the input read, then softmax(q·kᵀ/√d) over the image's positions and the
/// memory (`mem_kv (2, heads, 4, dim_head)`), and `to_out`, a 1×1 conv.
#[derive(Debug, Clone)]
struct Attention {
    input: AttentionInput,
    to_out: Conv2d,
}

impl Attention {
    fn new(dim: usize, heads: Heads, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            input: AttentionInput::new(dim, heads, false, &vb)?,
            to_out: conv2d(heads.hidden(), dim, 1, 1, 0, 1, true, vb.pp("to_out"))?,
        })
    }
}

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let (q, k, v) = self.input.qkv(x)?;
        // "b (h c) x y -> b h (x y) c", memory first.
        let q = q.t()?.contiguous()?;
        let k = Tensor::cat(&[&self.input.memory(0, b)?, &k.t()?], 2)?;
        let v = Tensor::cat(&[&self.input.memory(1, b)?, &v.t()?], 2)?.contiguous()?;
        let heads = self.input.heads;
        let sim = (q.matmul(&k.t()?.contiguous()?)? * (heads.dim_head as f64).powf(-0.5))?;
        let attn = softmax(&sim, 3)?;
        // "b h (x y) d -> b (h d) x y"
        let out = attn.matmul(&v)?.t()?.contiguous()?;
        let out = out.reshape((b, heads.hidden(), h, w))?;
        self.to_out.forward(&out)
    }
}

/// A stage's attention, `x + attn(x)`: linear, or full where `full_attn` says.
#[derive(Debug, Clone)]
enum StageAttention {
    Linear(LinearAttention),
    Full(Attention),
}

impl StageAttention {
    fn new(full: bool, dim: usize, heads: Heads, vb: VarBuilder) -> Result<Self> {
        Ok(if full {
            StageAttention::Full(Attention::new(dim, heads, vb)?)
        } else {
            StageAttention::Linear(LinearAttention::new(dim, heads, vb)?)
        })
    }

    fn residual(&self, x: &Tensor) -> Result<Tensor> {
        let a = match self {
            StageAttention::Linear(a) => a.forward(x)?,
            StageAttention::Full(a) => a.forward(x)?,
        };
        a + x
    }
}

/// One stage `downs.i` or `ups.i`: two blocks, attention, resample.
#[derive(Debug, Clone)]
struct Stage {
    block1: ResnetBlock,
    block2: ResnetBlock,
    attn: StageAttention,
    resample: Resample,
}

/// The released `Unet` (without the `self_condition` concatenation, which [`super::Unet`] does
/// for every architecture).
#[derive(Debug, Clone)]
pub struct LucidrainsUnet {
    init_conv: Conv2d,
    time_mlp: TimeMlp,
    downs: Vec<Stage>,
    mid_block1: ResnetBlock,
    mid_attn: Attention,
    mid_block2: ResnetBlock,
    ups: Vec<Stage>,
    final_res_block: ResnetBlock,
    final_conv: Conv2d,
}

impl LucidrainsUnet {
    /// Builds the network of `c` (validated by the caller), reading every parameter under its
    /// PyTorch name from `vb`.
    pub fn new(c: &UnetConfig, vb: VarBuilder) -> Result<Self> {
        let init_dim = c.init_dim();
        let time_dim = c.dim * 4;
        let in_out = c.in_out();
        let n_res = in_out.len();
        let full = c.full_attention();
        let heads = c.attention_heads();
        let block =
            |d_in: usize, d_out: usize, vb: VarBuilder| ResnetBlock::new(d_in, d_out, time_dim, vb);
        let init_conv = init_conv(c, &vb)?;
        let time_mlp = TimeMlp::new(c.dim, time_dim, vb.pp("time_mlp"))?;

        let mut downs = Vec::with_capacity(n_res);
        for (i, &(d_in, d_out)) in in_out.iter().enumerate() {
            let vb = vb.pp("downs").pp(i);
            let rvb = vb.pp("3");
            downs.push(Stage {
                block1: block(d_in, d_in, vb.pp("0"))?,
                block2: block(d_in, d_in, vb.pp("1"))?,
                attn: StageAttention::new(full[i], d_in, heads[i], vb.pp("2"))?,
                resample: if i + 1 >= n_res {
                    Resample::Same(conv2d(d_in, d_out, 3, 1, 1, 1, true, rvb)?)
                } else {
                    Resample::Down(conv2d(d_in * 4, d_out, 1, 1, 0, 1, true, rvb.pp("1"))?)
                },
            });
        }

        let mid = *c.dims().last().expect("dims is never empty");
        let mid_block1 = block(mid, mid, vb.pp("mid_block1"))?;
        // The package's `mid_attn` takes the last stage's heads.
        let last_heads = *heads.last().expect("a stage at least");
        let mid_attn = Attention::new(mid, last_heads, vb.pp("mid_attn"))?;
        let mid_block2 = block(mid, mid, vb.pp("mid_block2"))?;

        let mut ups = Vec::with_capacity(n_res);
        for (i, &(d_in, d_out)) in in_out.iter().rev().enumerate() {
            let vb = vb.pp("ups").pp(i);
            let rvb = vb.pp("3");
            ups.push(Stage {
                block1: block(d_out + d_in, d_out, vb.pp("0"))?,
                block2: block(d_out + d_in, d_out, vb.pp("1"))?,
                attn: StageAttention::new(
                    full[n_res - 1 - i],
                    d_out,
                    heads[n_res - 1 - i],
                    vb.pp("2"),
                )?,
                resample: if i + 1 == n_res {
                    Resample::Same(conv2d(d_out, d_in, 3, 1, 1, 1, true, rvb)?)
                } else {
                    Resample::Up(conv2d(d_out, d_in, 3, 1, 1, 1, true, rvb.pp("1"))?)
                },
            });
        }

        let final_res_block = block(init_dim * 2, init_dim, vb.pp("final_res_block"))?;
        let final_conv = conv2d(init_dim, c.out_dim(), 1, 1, 0, 1, true, vb.pp("final_conv"))?;
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
        let t = silu(&self.time_mlp.forward(time)?)?;
        let mut h = Vec::with_capacity(self.downs.len() * 2);
        for s in &self.downs {
            x = s.block1.forward(&x, &t)?;
            h.push(x.clone());
            x = s.block2.forward(&x, &t)?;
            x = s.attn.residual(&x)?;
            h.push(x.clone());
            x = s.resample.forward(&x)?;
        }
        x = self.mid_block1.forward(&x, &t)?;
        x = (self.mid_attn.forward(&x)? + &x)?;
        x = self.mid_block2.forward(&x, &t)?;
        for s in &self.ups {
            let skip = h.pop().expect("two skips per down stage");
            x = s.block1.forward(&Tensor::cat(&[&x, &skip], 1)?, &t)?;
            let skip = h.pop().expect("two skips per down stage");
            x = s.block2.forward(&Tensor::cat(&[&x, &skip], 1)?, &t)?;
            x = s.attn.residual(&x)?;
            x = s.resample.forward(&x)?;
        }
        let x = Tensor::cat(&[&x, &r], 1)?;
        let x = self.final_res_block.forward(&x, &t)?;
        self.final_conv.forward(&x)
    }
}
