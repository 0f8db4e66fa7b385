//! Memory budgets: how much memory a training run or a sampling batch will need, estimated from
//! its configuration before anything is allocated, and the check against the memory the
//! machine has available.
//!
//! The estimates are rough on purpose, within about 20 % of the peak resident size of this
//! build as `/usr/bin/time -v` measures it on the tiny and blog models (training at batch 8 to
//! 128 on 28 to 64 px: blog at batch 128 on 28 px is 1.9 GB estimated, 1.6 GB measured;
//! sampling 64 to 512 images: tiny, 512 images, 1.7 GB estimated, 1.5 GB measured). They exist
//! to refuse requests that cannot fit with a clear message instead of an allocation failure
//! that aborts the process. Everything is computed in saturating `u128` arithmetic, so no
//! configuration can overflow it.
//!
//! - Parameters are counted layer by layer from [`UnetConfig`], as [`crate::model::Unet::new`]
//!   builds them (checked against the real count in the tests).
//! - Training keeps every activation of the forward pass for the backward pass (which frees
//!   the gradient of each as it goes); on top come the weights, their gradients, Adam's two
//!   moments, the EMA copy and the copy previews sample from.
//! - Sampling runs the network without a graph, so only the skip connections and a few of the
//!   largest tensors are alive at once; but it keeps every frame of the denoising (and the
//!   predicted x̂₀ of each) as bytes, for the GIF and the lab's frame slider.
//!
//! The available memory is [`crate::memory::available_memory`]; where it is unknown, the memory
//! check is skipped (the hard limits of the validators still hold). Only host memory is known: on a GPU, the model and its activations
//! are not checked, the sampled frames (kept on the host) are.

use anyhow::{bail, Result};

pub use crate::memory::{available_memory, check_fits, human_bytes};

use crate::device::DeviceSpec;
use crate::model::attention::{DIM_HEAD, HEADS};
use crate::model::lucidrains::Heads;
use crate::model::{Arch, BlockKind, UnetConfig};
use crate::sampler::{KeepFrames, SamplerKind};
use crate::store::TrainConfig;

/// Images drawn in one batch at most, and `ddpm-lab sample`'s most (a 100×100 grid). Larger
/// sets are for `ddpm-lab eval`, which samples them in batches and scores them.
pub const MAX_SAMPLE_BATCH: usize = 10_000;

/// Bytes of an `f32`.
const F32: u128 = 4;

/// Parameters of `nn.Conv2d(c_in, c_out, k, groups, bias)`.
fn conv(c_in: u128, c_out: u128, k: u128, groups: u128, bias: bool) -> u128 {
    let w = c_out
        .saturating_mul(c_in / groups.max(1))
        .saturating_mul(k * k);
    w.saturating_add(if bias { c_out } else { 0 })
}

/// Parameters of `nn.Linear(d_in, d_out)`.
fn linear(d_in: u128, d_out: u128) -> u128 {
    d_in.saturating_mul(d_out).saturating_add(d_out)
}

/// Parameters of `nn.GroupNorm(_, ch)`.
fn norm(ch: u128) -> u128 {
    ch.saturating_mul(2)
}

/// Parameters of one residual block (see `model::blocks`).
fn block(c: &UnetConfig, d_in: u128, d_out: u128, time: Option<u128>) -> u128 {
    let res = if d_in != d_out {
        conv(d_in, d_out, 1, 1, true)
    } else {
        0
    };
    let body = match c.block {
        BlockKind::Convnext => {
            let hidden = d_out.saturating_mul(c.convnext_mult as u128);
            let mlp = time.map_or(0, |t| linear(t, d_in));
            mlp.saturating_add(conv(d_in, d_in, 7, d_in, true))
                .saturating_add(norm(d_in))
                .saturating_add(conv(d_in, hidden, 3, 1, true))
                .saturating_add(norm(hidden))
                .saturating_add(conv(hidden, d_out, 3, 1, true))
        }
        BlockKind::Resnet => {
            let mlp = time.map_or(0, |t| linear(t, d_out));
            mlp.saturating_add(conv(d_in, d_out, 3, 1, true))
                .saturating_add(norm(d_out))
                .saturating_add(conv(d_out, d_out, 3, 1, true))
                .saturating_add(norm(d_out))
        }
    };
    body.saturating_add(res)
}

/// Parameters of `Residual(PreNorm(dim, LinearAttention(dim)))` (or full `Attention`, which
/// lacks the output GroupNorm).
fn attention(dim: u128, linear_attention: bool) -> u128 {
    let hidden = (HEADS * DIM_HEAD) as u128;
    let out_norm = if linear_attention { norm(dim) } else { 0 };
    norm(dim)
        .saturating_add(conv(dim, hidden * 3, 1, 1, false))
        .saturating_add(conv(hidden, dim, 1, 1, true))
        .saturating_add(out_norm)
}

/// Number of scalar parameters of the UNet `c` builds (as [`crate::model::num_params`] counts
/// them on a built model), without building it.
pub fn param_count(c: &UnetConfig) -> u128 {
    if matches!(c.arch, Arch::Current | Arch::Lucidrains) {
        return param_count_current(c);
    }
    let u = |v: usize| v as u128;
    let time = c.time_dim().map(u);
    let in_out = c.in_out();
    let n_res = in_out.len();
    let mut p = conv(
        u(c.input_channels()),
        u(c.init_dim()),
        u(c.init_kernel()),
        1,
        true,
    );
    if let Some(t) = time {
        p = p
            .saturating_add(linear(u(c.dim), t))
            .saturating_add(linear(t, t));
    }
    for (i, &(d_in, d_out)) in in_out.iter().enumerate() {
        let (d_in, d_out) = (u(d_in), u(d_out));
        p = p
            .saturating_add(block(c, d_in, d_out, time))
            .saturating_add(block(c, d_out, d_out, time));
        if c.stage_attention {
            p = p.saturating_add(attention(d_out, true));
        }
        if i + 1 < n_res {
            p = p.saturating_add(conv(d_out, d_out, 4, 1, true));
        }
    }
    let mid = u(*c.dims().last().unwrap_or(&c.dim));
    p = p
        .saturating_add(block(c, mid, mid, time))
        .saturating_add(attention(mid, false))
        .saturating_add(block(c, mid, mid, time));
    for &(d_in, d_out) in in_out.iter().skip(1).rev() {
        let (d_in, d_out) = (u(d_in), u(d_out));
        p = p
            .saturating_add(block(c, d_out.saturating_mul(2), d_in, time))
            .saturating_add(block(c, d_in, d_in, time));
        if c.stage_attention {
            p = p.saturating_add(attention(d_in, true));
        }
        // ConvTranspose2d(d_in, d_in, 4): every up stage has one (see `Unet::new`).
        p = p.saturating_add(
            d_in.saturating_mul(d_in)
                .saturating_mul(16)
                .saturating_add(d_in),
        );
    }
    p.saturating_add(block(c, u(c.dim), u(c.dim), None))
        .saturating_add(conv(u(c.dim), u(c.out_dim()), 1, 1, true))
}

/// Parameters of today's UNet (`model::current`) or lucidrains' (`model::lucidrains`: RMSNorm
/// gains instead of GroupNorm's two vectors, attention with its own norm and memory), layer by
/// layer as they build them.
fn param_count_current(c: &UnetConfig) -> u128 {
    let u = |v: usize| v as u128;
    let t = u(c.dim).saturating_mul(4);
    let lucidrains = c.arch == Arch::Lucidrains;
    let norm = |ch: u128| if lucidrains { ch } else { norm(ch) };
    let full = c.full_attention();
    let heads = c.attention_heads();
    // The attention of stage `i` (`None`: the middle's, full attention with the last stage's
    // heads).
    let attention_at = |dim: u128, stage: Option<usize>| {
        if !lucidrains {
            return attention(dim, stage.is_some());
        }
        let at = stage.unwrap_or(heads.len().saturating_sub(1));
        let hidden = heads.get(at).map_or(HEADS * DIM_HEAD, Heads::hidden) as u128;
        let memory = 2 * hidden * crate::model::lucidrains::NUM_MEM_KV as u128;
        let linear = stage.is_some_and(|i| !full.get(i).copied().unwrap_or(false));
        norm(dim)
            .saturating_add(memory)
            .saturating_add(conv(dim, hidden * 3, 1, 1, false))
            .saturating_add(conv(hidden, dim, 1, 1, true))
            .saturating_add(if linear { norm(dim) } else { 0 })
    };
    // ResnetBlock: mlp to scale and shift, two convs 3×3 with their norms, res_conv.
    let block = |d_in: u128, d_out: u128| {
        let res = if d_in != d_out {
            conv(d_in, d_out, 1, 1, true)
        } else {
            0
        };
        linear(t, d_out.saturating_mul(2))
            .saturating_add(conv(d_in, d_out, 3, 1, true))
            .saturating_add(norm(d_out))
            .saturating_add(conv(d_out, d_out, 3, 1, true))
            .saturating_add(norm(d_out))
            .saturating_add(res)
    };
    let in_out = c.in_out();
    let n_res = in_out.len();
    let mut p = conv(
        u(c.input_channels()),
        u(c.init_dim()),
        u(c.init_kernel()),
        1,
        true,
    )
    .saturating_add(linear(u(c.dim), t))
    .saturating_add(linear(t, t));
    for (i, &(d_in, d_out)) in in_out.iter().enumerate() {
        let (d_in, d_out) = (u(d_in), u(d_out));
        let resample = if i + 1 < n_res {
            conv(d_in.saturating_mul(4), d_out, 1, 1, true)
        } else {
            conv(d_in, d_out, 3, 1, true)
        };
        p = p
            .saturating_add(block(d_in, d_in).saturating_mul(2))
            .saturating_add(attention_at(d_in, Some(i)))
            .saturating_add(resample);
    }
    let mid = u(*c.dims().last().unwrap_or(&c.dim));
    p = p
        .saturating_add(block(mid, mid).saturating_mul(2))
        .saturating_add(attention_at(mid, None));
    for (i, &(d_in, d_out)) in in_out.iter().enumerate().rev() {
        let (d_in, d_out) = (u(d_in), u(d_out));
        // Upsample's conv and the last stage's plain conv are both 3×3 d_out → d_in.
        p = p
            .saturating_add(block(d_out.saturating_add(d_in), d_out).saturating_mul(2))
            .saturating_add(attention_at(d_out, Some(i)))
            .saturating_add(conv(d_out, d_in, 3, 1, true));
    }
    // Today's blog ends on `dim`, lucidrains' on `init_dim`.
    let last = u(if lucidrains { c.init_dim() } else { c.dim });
    p.saturating_add(block(last * 2, last))
        .saturating_add(conv(last, u(c.out_dim()), 1, 1, true))
}

/// The activations of one forward pass of one image, in floats: every tensor made (what a
/// training step keeps for the backward pass), the skip connections, and the largest single
/// tensor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activations {
    /// Sum of every intermediate tensor of the forward pass.
    pub total: u128,
    /// The skip connections kept from the down stages to the up stages.
    pub skips: u128,
    /// The largest single tensor (the attention matrix of the middle, at large images).
    pub largest: u128,
}

impl Activations {
    fn add(&mut self, floats: u128) {
        self.total = self.total.saturating_add(floats);
        self.largest = self.largest.max(floats);
    }

    /// Floats alive at once while sampling (no graph): the skips, and the few largest tensors
    /// an operation reads and writes.
    pub fn inference_peak(&self) -> u128 {
        self.skips.saturating_add(self.largest.saturating_mul(2))
    }
}

/// Walks the forward pass of `c` on one `size`×`size` image, as [`crate::model::Unet`] runs it.
pub fn activations(c: &UnetConfig, size: usize) -> Activations {
    let u = |v: usize| v as u128;
    let mut a = Activations::default();
    let hidden = (HEADS * DIM_HEAD) as u128;
    let heads = HEADS as u128;
    // Pixels at the current resolution.
    let mut side = u(size);
    let px = |side: u128| side.saturating_mul(side);
    let block = |a: &mut Activations, p: u128, d_in: u128, d_out: u128| match c.block {
        BlockKind::Convnext => {
            let h = d_out.saturating_mul(c.convnext_mult as u128);
            // ds_conv, + time, norm1; conv1, gelu, norm2; conv2, res_conv, sum.
            for w in [d_in, d_in, d_in, h, h, h, d_out, d_out, d_out] {
                a.add(p.saturating_mul(w));
            }
        }
        BlockKind::Resnet => {
            // conv, norm, silu, + time; conv, norm, silu; res_conv, sum.
            for w in [d_out; 9] {
                a.add(p.saturating_mul(w));
            }
        }
    };
    let linear_attention = |a: &mut Activations, p: u128, d: u128, hidden: u128| {
        // prenorm; qkv and its split; softmax q, k; scaled q; out; to_out conv, norm; residual.
        for w in [
            d,
            3 * hidden,
            3 * hidden,
            hidden,
            hidden,
            hidden,
            hidden,
            d,
            d,
            d,
        ] {
            a.add(p.saturating_mul(w));
        }
    };
    a.add(px(side).saturating_mul(u(c.input_channels())));
    a.add(px(side).saturating_mul(u(c.init_dim())));
    if matches!(c.arch, Arch::Current | Arch::Lucidrains) {
        // lucidrains' stages may attend fully (the last by default), at their resolution.
        let full_at = c.full_attention();
        let stage_full =
            |i: usize| c.arch == Arch::Lucidrains && full_at.get(i).copied().unwrap_or(false);
        // Each stage's heads (lucidrains' may differ; today's UNet has the blog's).
        let heads_at = c.attention_heads();
        let default_heads = Heads {
            heads: HEADS,
            dim_head: DIM_HEAD,
        };
        let hidden_at = |i: usize| heads_at.get(i).map_or(hidden, |h| h.hidden() as u128);
        let full = |a: &mut Activations, p: u128, mid: u128, h: Heads| {
            let (hidden, heads) = (h.hidden() as u128, h.heads as u128);
            // Full attention: the (heads, p, p) similarity matrix, its transposed copy and its
            // softmax, between the tensors of the qkv projection and the output.
            for w in [mid, 3 * hidden, 3 * hidden, hidden] {
                a.add(p.saturating_mul(w));
            }
            for _ in 0..3 {
                a.add(heads.saturating_mul(p).saturating_mul(p));
            }
            for w in [hidden, hidden, mid, mid] {
                a.add(p.saturating_mul(w));
            }
        };
        // ResnetBlock: conv, norm, scale, shift, silu; conv, norm, silu; res_conv, sum.
        let block = |a: &mut Activations, p: u128, d_out: u128| {
            for w in [d_out; 10] {
                a.add(p.saturating_mul(w));
            }
        };
        let in_out = c.in_out();
        let n_res = in_out.len();
        for (i, &(d_in, d_out)) in in_out.iter().enumerate() {
            let p = px(side);
            block(&mut a, p, u(d_in));
            block(&mut a, p, u(d_in));
            if stage_full(i) {
                full(&mut a, p, u(d_in), heads_at[i]);
            } else {
                linear_attention(&mut a, p, u(d_in), hidden_at(i));
            }
            a.skips = a
                .skips
                .saturating_add(p.saturating_mul(u(d_in)).saturating_mul(2));
            if i + 1 < n_res {
                side /= 2;
                a.add(p.saturating_mul(u(d_in)));
            }
            a.add(px(side).saturating_mul(u(d_out)));
        }
        let mid = u(*c.dims().last().unwrap_or(&c.dim));
        let p = px(side);
        block(&mut a, p, mid);
        full(&mut a, p, mid, *heads_at.last().unwrap_or(&default_heads));
        block(&mut a, p, mid);
        for (i, &(d_in, d_out)) in in_out.iter().rev().enumerate() {
            let p = px(side);
            for _ in 0..2 {
                a.add(p.saturating_mul(u(d_out) + u(d_in)));
                block(&mut a, p, u(d_out));
            }
            let stage = n_res - 1 - i;
            if stage_full(stage) {
                full(&mut a, p, u(d_out), heads_at[stage]);
            } else {
                linear_attention(&mut a, p, u(d_out), hidden_at(stage));
            }
            if i + 1 < n_res {
                side = side.saturating_mul(2);
                a.add(px(side).saturating_mul(u(d_out)));
            }
            a.add(px(side).saturating_mul(u(d_in)));
        }
        let p = px(side);
        a.add(p.saturating_mul(u(c.dim) * 2));
        block(&mut a, p, u(c.dim));
        a.add(p.saturating_mul(u(c.out_dim())));
        return a;
    }
    let in_out = c.in_out();
    let n_res = in_out.len();
    for (i, &(d_in, d_out)) in in_out.iter().enumerate() {
        let p = px(side);
        block(&mut a, p, u(d_in), u(d_out));
        block(&mut a, p, u(d_out), u(d_out));
        if c.stage_attention {
            linear_attention(&mut a, p, u(d_out), hidden);
        }
        a.skips = a.skips.saturating_add(p.saturating_mul(u(d_out)));
        if i + 1 < n_res {
            side /= 2;
            a.add(px(side).saturating_mul(u(d_out)));
        }
    }
    let mid = u(*c.dims().last().unwrap_or(&c.dim));
    let p = px(side);
    block(&mut a, p, mid, mid);
    // Full attention: the (heads, p, p) similarity matrix, its transposed copy and its softmax.
    for w in [mid, 3 * hidden, 3 * hidden, hidden] {
        a.add(p.saturating_mul(w));
    }
    for _ in 0..3 {
        a.add(heads.saturating_mul(p).saturating_mul(p));
    }
    for w in [hidden, hidden, mid, mid] {
        a.add(p.saturating_mul(w));
    }
    block(&mut a, p, mid, mid);
    for &(d_in, d_out) in in_out.iter().skip(1).rev() {
        let p = px(side);
        a.add(p.saturating_mul(u(d_out) * 2));
        block(&mut a, p, u(d_out) * 2, u(d_in));
        block(&mut a, p, u(d_in), u(d_in));
        if c.stage_attention {
            linear_attention(&mut a, p, u(d_in), hidden);
        }
        side = side.saturating_mul(2);
        a.add(px(side).saturating_mul(u(d_in)));
    }
    let p = px(side);
    block(&mut a, p, u(c.dim), u(c.dim));
    a.add(p.saturating_mul(u(c.out_dim())));
    a
}

/// What a request needs, in bytes, split by what holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Weights and everything sized like them (gradients, Adam moments, EMA, copies).
    pub model: u128,
    /// Activations (and their gradients when training).
    pub activations: u128,
    /// Sampled frames and predicted x̂₀ kept as bytes (on the host whatever the device).
    pub frames: u128,
}

impl Estimate {
    /// Everything.
    pub fn total(&self) -> u128 {
        self.model
            .saturating_add(self.activations)
            .saturating_add(self.frames)
    }

    /// What lives in host memory: everything when the model runs on the CPU, else the frames.
    pub fn host(&self, on_cpu: bool) -> u128 {
        if on_cpu {
            self.total()
        } else {
            self.frames
        }
    }
}

/// Memory of a training step of `cfg` at its batch size and image size.
pub fn training(cfg: &TrainConfig) -> Estimate {
    let p = param_count(&cfg.model);
    // Weights, gradients, Adam's m and v; the EMA copy; the copy previews sample from.
    let mut copies = 4u128;
    if cfg.ema_decay.is_some() {
        copies += 1;
    }
    if cfg.preview_every > 0 {
        copies += 1;
    }
    let act = activations(&cfg.model, cfg.image_size);
    Estimate {
        model: p.saturating_mul(copies * F32),
        // Values kept for the backward pass (which frees each one's gradient as it goes).
        activations: act
            .total
            .saturating_mul(cfg.batch_size as u128)
            .saturating_mul(F32),
        frames: 0,
    }
}

/// Network passes (and so frames after the first) of sampling with `kind` from a model with
/// `timesteps` steps.
pub fn sampling_steps(kind: SamplerKind, timesteps: usize) -> usize {
    match kind {
        SamplerKind::Ddpm => timesteps,
        SamplerKind::Ddim { steps, .. } => steps.clamp(1, timesteps.max(1)),
    }
}

/// Memory of drawing `n` images from a run configured by `cfg` with `kind`, `batch` at a time,
/// keeping the frames `keep` names of each (see [`crate::sampler::Denoising`]).
pub fn sampling(
    cfg: &TrainConfig,
    kind: SamplerKind,
    n: usize,
    batch: usize,
    keep: &KeepFrames,
) -> Estimate {
    let kept = keep.count(sampling_steps(kind, cfg.timesteps)) as u128;
    let s = cfg.image_size as u128;
    let image = (cfg.model.channels as u128).saturating_mul(s.saturating_mul(s));
    let act = activations(&cfg.model, cfg.image_size);
    Estimate {
        model: param_count(&cfg.model).saturating_mul(F32),
        activations: act
            .inference_peak()
            .saturating_mul(batch.min(n) as u128)
            .saturating_mul(F32),
        // frames and x0_preds: an entry each per kept frame, n images of C×H×W bytes.
        frames: kept
            .saturating_mul(n as u128)
            .saturating_mul(image)
            .saturating_mul(2),
    }
}

/// Memory of a no-gradient forward pass of `n` images of `size`×`size` through `model` (the
/// benchmarks', `forward`'s).
pub fn inference(model: &UnetConfig, size: usize, n: usize) -> Estimate {
    Estimate {
        model: param_count(model).saturating_mul(F32),
        activations: activations(model, size)
            .inference_peak()
            .saturating_mul(n as u128)
            .saturating_mul(F32),
        frames: 0,
    }
}

/// Refuses a forward pass of `n` images of `size`×`size` through `model` that cannot fit in
/// the host memory available now (`on_cpu`: the model runs on the CPU; on a GPU the host holds
/// none of it).
pub fn check_inference(model: &UnetConfig, size: usize, n: usize, on_cpu: bool) -> Result<()> {
    let what = format!(
        "a forward pass of {n} images of {size}×{size} through this model ({} parameters)",
        param_count(model)
    );
    check_fits(
        &what,
        inference(model, size, n).host(on_cpu),
        available_memory(),
    )
}

/// Refuses a training run of `cfg` that cannot fit in `available` bytes of host memory.
pub fn check_training_with(cfg: &TrainConfig, available: Option<u128>) -> Result<()> {
    let e = training(cfg);
    let what = format!(
        "training this model ({} parameters, --dim {}) at --batch-size {} on {}×{} images",
        param_count(&cfg.model),
        cfg.model.dim,
        cfg.batch_size,
        cfg.image_size,
        cfg.image_size
    );
    check_fits(&what, e.host(cfg.device == DeviceSpec::Cpu), available)
}

/// [`check_training_with`] against the memory available now.
pub fn check_training(cfg: &TrainConfig) -> Result<()> {
    check_training_with(cfg, available_memory())
}

/// Refuses drawing `n` images with `kind` from a run configured by `cfg`, `batch` at a time and
/// keeping `keep`'s frames, when a batch is beyond [`MAX_SAMPLE_BATCH`] or the drawing cannot
/// fit in `available` bytes of host memory (`on_cpu`: the model runs on the CPU).
pub fn check_sampling_with(
    cfg: &TrainConfig,
    kind: SamplerKind,
    n: usize,
    batch: usize,
    keep: &KeepFrames,
    on_cpu: bool,
    available: Option<u128>,
) -> Result<()> {
    if n == 0 {
        bail!("--n must be at least 1");
    }
    if n > MAX_SAMPLE_BATCH && batch >= n {
        bail!(
            "--n must be at most {MAX_SAMPLE_BATCH} images in one batch, got {n} (use \
             `ddpm-lab eval --n`, which scores larger sets)"
        );
    }
    if batch.min(n) > MAX_SAMPLE_BATCH {
        bail!("--batch-size must be at most {MAX_SAMPLE_BATCH}, got {batch}");
    }
    let steps = sampling_steps(kind, cfg.timesteps);
    let kept = match keep.count(steps) {
        k if k == steps + 1 => "every frame kept".to_string(),
        1 => "final images kept".to_string(),
        k => format!("{k} frames kept"),
    };
    let at_once = if batch < n {
        format!(", {batch} at a time")
    } else {
        String::new()
    };
    let what = format!(
        "sampling --n {n} images of {}×{}×{} over {steps} steps ({kept}{at_once})",
        cfg.model.channels, cfg.image_size, cfg.image_size
    );
    let e = sampling(cfg, kind, n, batch, keep);
    check_fits(&what, e.host(on_cpu), available)
}

/// [`check_sampling_with`] against the memory available now.
pub fn check_sampling(
    cfg: &TrainConfig,
    kind: SamplerKind,
    n: usize,
    batch: usize,
    keep: &KeepFrames,
    on_cpu: bool,
) -> Result<()> {
    check_sampling_with(cfg, kind, n, batch, keep, on_cpu, available_memory())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn built(c: &UnetConfig) -> u128 {
        let (_, vars) = crate::model::new_trainable(c, 0, &Device::Cpu).unwrap();
        crate::model::num_params(&vars) as u128
    }

    #[test]
    fn parameter_count_matches_the_built_model() {
        let mut configs = vec![UnetConfig::tiny(), UnetConfig::blog()];
        configs.push(UnetConfig {
            stage_attention: false,
            convnext_mult: 3,
            ..UnetConfig::tiny()
        });
        configs.push(UnetConfig {
            block: BlockKind::Resnet,
            resnet_block_groups: 4,
            dim_mults: vec![1, 2, 2, 4],
            ..UnetConfig::blog()
        });
        configs.push(UnetConfig {
            with_time_emb: false,
            channels: 3,
            out_dim: Some(6),
            init_dim: Some(16),
            dim_mults: vec![2],
            ..UnetConfig::tiny()
        });
        configs.push(UnetConfig {
            dim: 8,
            dim_mults: vec![1, 2],
            ..UnetConfig::current()
        });
        configs.push(UnetConfig {
            dim: 16,
            dim_mults: vec![1, 2, 4],
            resnet_block_groups: 8,
            init_conv_kernel: Some(7),
            self_condition: true,
            learned_variance: true,
            ..UnetConfig::current()
        });
        configs.push(UnetConfig {
            self_condition: true,
            learned_variance: true,
            init_conv_kernel: Some(3),
            ..UnetConfig::tiny()
        });
        for c in configs {
            assert_eq!(param_count(&c), built(&c), "{c:?}");
        }
    }

    #[test]
    fn the_widest_model_allowed_is_counted_without_building_it() {
        let widest = UnetConfig {
            dim: crate::model::config::MAX_DIM,
            ..UnetConfig::blog()
        };
        widest.validate().unwrap();
        let p = param_count(&widest);
        assert!(p > 3_000_000_000 && p < 5_000_000_000, "{p}");
    }

    #[test]
    fn estimates_grow_with_what_sizes_them() {
        let cfg = TrainConfig {
            model: UnetConfig::tiny(),
            batch_size: 8,
            ..TrainConfig::default()
        };
        let base = training(&cfg).total();
        assert!(base > 0);
        let bigger = |f: &dyn Fn(&mut TrainConfig)| {
            let mut c = cfg.clone();
            f(&mut c);
            training(&c).total()
        };
        assert!(bigger(&|c| c.batch_size = 16) > base);
        assert!(bigger(&|c| c.image_size = 56) > base);
        assert!(bigger(&|c| c.model.dim = 16) > base);
        assert!(bigger(&|c| c.ema_decay = Some(0.99)) > base);
        let all = KeepFrames::All;
        let ddpm = sampling(&cfg, SamplerKind::Ddpm, 4, 4, &all);
        assert_eq!(ddpm.frames, 201 * 4 * 28 * 28 * 2);
        let ddim = SamplerKind::Ddim {
            steps: 10,
            eta: 0.0,
        };
        let ddim_all = sampling(&cfg, ddim, 4, 4, &all);
        assert_eq!(ddim_all.frames, 11 * 4 * 28 * 28 * 2);
        assert_eq!(ddpm.model, ddim_all.model);
        // Kept frames and the images drawn at once are what scale.
        let two = sampling(&cfg, ddim, 4, 4, &KeepFrames::Only(vec![0])).frames;
        assert_eq!(two, 2 * 4 * 28 * 28 * 2);
        let last = sampling(&cfg, SamplerKind::Ddpm, 4, 4, &KeepFrames::last());
        assert_eq!(last.frames, 4 * 28 * 28 * 2);
        assert_eq!(last.activations, ddpm.activations);
        let by_one = sampling(&cfg, SamplerKind::Ddpm, 4, 1, &KeepFrames::last());
        assert_eq!(by_one.activations * 4, ddpm.activations);
        assert_eq!(by_one.frames, last.frames);
    }

    #[test]
    fn the_blog_setup_fits_a_small_machine_and_absurd_requests_do_not() {
        let blog = TrainConfig::default();
        let gb = 1_000_000_000u128;
        // The blog's model at batch 128 on 28×28 trains in a few GB.
        let e = training(&blog).total();
        assert!(e < 8 * gb, "{}", human_bytes(e));
        check_training_with(&blog, Some(8 * gb)).unwrap();
        // 1024×1024 images: the middle attention alone is terabytes.
        let huge = TrainConfig {
            image_size: 1024,
            ..blog.clone()
        };
        let err = check_training_with(&huge, Some(64 * gb))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--batch-size 128") && err.contains("1024×1024"),
            "{err}"
        );
        assert!(err.contains("only 64.0 GB is available"), "{err}");
        check_training_with(&huge, None).unwrap();
        // Every frame of 10 000 images of 28×28 over 200 steps is ~3 GB; the final images
        // alone 16 MB.
        let (ddpm, all, last) = (SamplerKind::Ddpm, KeepFrames::All, KeepFrames::last());
        let s = sampling(&blog, ddpm, 10_000, 10_000, &all).frames;
        assert!(s > 3 * gb && s < 4 * gb, "{}", human_bytes(s));
        let s = sampling(&blog, ddpm, 10_000, 10_000, &last).frames;
        assert_eq!(s, 10_000 * 28 * 28 * 2);
        let err = check_sampling_with(&blog, ddpm, 10_000, 10_000, &all, true, Some(gb))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--n 10000") && err.contains("200 steps (every frame kept)"),
            "{err}"
        );
        let err = check_sampling_with(&blog, ddpm, 10_000, 500, &last, true, Some(gb / 100))
            .unwrap_err()
            .to_string();
        assert!(err.contains("(final images kept, 500 at a time)"), "{err}");
        let gif = KeepFrames::Only((0..60).collect());
        let err = check_sampling_with(&blog, ddpm, 10_000, 500, &gif, true, Some(gb / 100))
            .unwrap_err()
            .to_string();
        assert!(err.contains("(61 frames kept, 500 at a time)"), "{err}");
        let err = check_sampling_with(&blog, ddpm, 100_000, 100_000, &last, true, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 10000"), "{err}");
        // In batches, a large set is checked by its batches and its kept frames.
        check_sampling_with(&blog, ddpm, 100_000, 250, &last, true, Some(8 * gb)).unwrap();
        let err = check_sampling_with(&blog, ddpm, 100_000, 20_000, &last, true, None)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "--batch-size must be at most 10000, got 20000");
        // On a GPU only the frames are host memory.
        let gpu = sampling(&huge, ddpm, 1, 1, &all);
        assert_eq!(gpu.host(false), gpu.frames);
    }
}
