//! Reverse process: the blog's Algorithm 2 (ancestral DDPM sampling) and DDIM (Song et al. 2021),
//! keeping the intermediate `x_t` and the predicted `x̂_0` of the steps the caller asks for
//! ([`KeepFrames`]).

use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;
use std::time::{Duration, Instant};

use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::diffusion::{posterior_mean, predict_x0_and_noise, Objective};
use crate::imaging::{tensor_to_images, Image8};
use crate::model::{timesteps_tensor, Unet};
use crate::rng::LabRng;
use crate::schedule::ScheduleTables;

/// Random stream used for sampling noise (distinct from training's streams).
const SAMPLE_STREAM: u64 = 7;

/// How to walk from noise to images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum SamplerKind {
    /// Ancestral sampling over all T steps with the posterior variance (Algorithm 2).
    #[default]
    Ddpm,
    /// DDIM over `steps` evenly spaced timesteps; `eta = 0` is deterministic.
    Ddim {
        /// Number of denoising steps.
        steps: usize,
        /// Amount of fresh noise (0 = deterministic DDIM, 1 ≈ DDPM).
        eta: f64,
    },
}

impl SamplerKind {
    /// This sampler made to fit a model with `timesteps` steps: DDIM needs 0 ≤ eta ≤ 1 and at
    /// least one step, and more steps than T are clamped to T (DDIM over every timestep; see
    /// [`Self::clamp_note`]). The one check of sampler settings, for the CLI and the lab alike.
    pub fn checked(self, timesteps: usize) -> std::result::Result<Self, String> {
        match self {
            SamplerKind::Ddim { steps, eta } => {
                if !(eta.is_finite() && (0.0..=1.0).contains(&eta)) {
                    return Err(format!("--eta must be between 0 and 1, got {eta}"));
                }
                if steps == 0 {
                    return Err("DDIM needs at least 1 step (--steps)".into());
                }
                Ok(SamplerKind::Ddim {
                    steps: steps.min(timesteps.max(1)),
                    eta,
                })
            }
            SamplerKind::Ddpm => Ok(self),
        }
    }

    /// What [`Self::checked`] changes for a model with `timesteps` steps, as a note for the
    /// user (`None` when nothing).
    pub fn clamp_note(self, timesteps: usize) -> Option<String> {
        match self {
            SamplerKind::Ddim { steps, .. } if steps > timesteps => Some(format!(
                "DDIM {steps} steps is more than the run's T = {timesteps}: using {timesteps}"
            )),
            _ => None,
        }
    }
}

impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplerKind::Ddpm => f.write_str("ddpm"),
            SamplerKind::Ddim { steps, eta } if *eta == 0.0 => write!(f, "ddim ({steps} steps)"),
            SamplerKind::Ddim { steps, eta } => write!(f, "ddim ({steps} steps, eta {eta})"),
        }
    }
}

/// Names accepted by `--sampler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerName {
    /// Algorithm 2.
    #[default]
    Ddpm,
    /// DDIM.
    Ddim,
}

impl FromStr for SamplerName {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ddpm" => Ok(SamplerName::Ddpm),
            "ddim" => Ok(SamplerName::Ddim),
            o => Err(format!("unknown sampler '{o}' (expected ddpm or ddim)")),
        }
    }
}

/// Which frames of a sampling run a [`Denoising`] keeps. Frame `k` is the batch after `k`
/// steps (frame 0 the initial noise x_T); the last frame, the generated images, is always kept.
/// Each kept frame costs `n·C·H·W` bytes twice (the frame and the x̂₀ made from it): every
/// frame of a 10 000-image DDPM run of 300 steps would take 4.7 GB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepFrames {
    /// Every frame (the lab's frame slider).
    All,
    /// These frames and the last (a GIF's frames; none: the generated images only).
    Only(Vec<usize>),
}

impl KeepFrames {
    /// The generated images and nothing before them.
    pub fn last() -> Self {
        KeepFrames::Only(Vec::new())
    }

    /// Whether frame `k` of a run of `total` steps is kept.
    pub fn keeps(&self, k: usize, total: usize) -> bool {
        k == total
            || match self {
                KeepFrames::All => k < total,
                KeepFrames::Only(frames) => frames.contains(&k),
            }
    }

    /// How many frames of a run of `total` steps are kept.
    pub fn count(&self, total: usize) -> usize {
        match self {
            KeepFrames::All => total + 1,
            // The distinct frames before the last, and the last.
            KeepFrames::Only(frames) => {
                let mut before: Vec<usize> =
                    frames.iter().copied().filter(|&k| k < total).collect();
                before.sort_unstable();
                before.dedup();
                before.len() + 1
            }
        }
    }
}

/// The trajectory of a sampling run: the frames [`KeepFrames`] asked for.
#[derive(Debug, Clone)]
pub struct Denoising {
    /// The timestep the network saw at each step (descending); `timesteps.len()` steps in all.
    pub timesteps: Vec<usize>,
    /// The kept frames in order: `frames[i]` is the batch after `frame_steps[i]` steps (with
    /// every frame kept, `frames[0]` is the initial noise x_T and `frames[k]` the batch after
    /// `k` steps); the last frame is the generated images.
    pub frames: Vec<Vec<Image8>>,
    /// The number of steps each kept frame comes after (0: the noise).
    pub frame_steps: Vec<usize>,
    /// `x0_preds[i]` is the network's estimate of x̂_0 made from `frames[i]`; the last entry
    /// repeats the final images so both lists have one entry per frame.
    pub x0_preds: Vec<Vec<Image8>>,
    /// The generated batch as a tensor `(N, C, H, W)` in about `[-1, 1]`.
    pub images: Tensor,
}

impl Denoising {
    /// Number of kept frames (`steps + 1` when every frame is kept).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether there is no frame (never for a finished run).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The final images.
    pub fn final_images(&self) -> &[Image8] {
        self.frames.last().map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The DDIM timestep pairs `(t, t_next)` for `steps` steps over `T` timesteps, as
/// denoising-diffusion-pytorch computes them (`t_next = −1` marks the final step).
pub fn ddim_timesteps(total: usize, steps: usize) -> Vec<(usize, i64)> {
    let steps = steps.clamp(1, total);
    let times: Vec<i64> = (0..=steps)
        .map(|i| {
            let v = -1.0 + (total as f64) * i as f64 / steps as f64;
            v as i64 // truncation toward zero, like torch's .int()
        })
        .rev()
        .collect();
    times.windows(2).map(|w| (w[0] as usize, w[1])).collect()
}

/// Runs `model` at `x`, `t`; a self-conditioned model gets the previous step's x̂₀ (`prev`,
/// zeros at the first step), as seed 002's `p_sample_loop` and `ddim_sample` pass it.
fn predict(model: &Unet, x: &Tensor, ts: &[usize], prev: Option<&Tensor>) -> Result<Tensor> {
    let tt = timesteps_tensor(ts, x.device())?;
    model.forward_cond(x, &tt, prev)
}

/// The x̂₀ a self-conditioned model sees at the next step: clipped to `[-1, 1]`, as the seed's
/// samplers clip `x_start` (`clip_denoised=True`, `clip_x_start=True`) before passing it on.
fn next_self_cond(model: &Unet, x0: &Tensor) -> Result<Option<Tensor>> {
    if model.self_conditioned() {
        Ok(Some(x0.clamp(-1f32, 1f32)?))
    } else {
        Ok(None)
    }
}

/// What a sampler calls after each step with `(done, total, x_t)`, the images as they are
/// denoised: `Break` stops the sampling, which then ends with an error that says where (see
/// [`sample_watching`]).
pub type Watch<'a> = dyn FnMut(usize, usize, &[Image8]) -> ControlFlow<()> + 'a;

/// Generates `shape.0` images with `model`, keeping the frames `keep` names and calling
/// `progress(done, total)` after each step. A step whose frame is not kept is never copied
/// from the device nor converted.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    model: &Unet,
    tables: &ScheduleTables,
    objective: Objective,
    shape: (usize, usize, usize, usize),
    kind: SamplerKind,
    seed: u64,
    keep: &KeepFrames,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Denoising> {
    let mut watch = |done: usize, total: usize, _: &[Image8]| {
        progress(done, total);
        ControlFlow::Continue(())
    };
    let batched = !model.device().is_cpu();
    let observe = Observe {
        keep,
        watch_images: false,
        batched,
    };
    sample_recorded(
        model, tables, objective, shape, kind, seed, &mut watch, observe,
    )
}

/// At most this many steps' images wait on a GPU before one copy brings them to the host.
const MAX_PENDING_STEPS: usize = 16;
/// And they wait at most about this long, so that the lab's view of the denoising keeps moving.
const MAX_PENDING_TIME: Duration = Duration::from_millis(200);
/// And hold at most about this many values (64 MiB of f32; the copy takes as much again on the
/// device and on the host), so that a large batch (`--n 10000`) copies every step or two.
const MAX_PENDING_VALUES: usize = 1 << 24;

/// What a sampling run hands back as it goes: the frames kept, whether `watch` is shown each
/// step's images (else it gets an empty slice), and whether the images wait to be copied in
/// batches (on a GPU, see [`Frames`]).
#[derive(Debug, Clone, Copy)]
struct Observe<'a> {
    keep: &'a KeepFrames,
    watch_images: bool,
    batched: bool,
}

/// A step's tensors waiting to be copied: its timestep, the x̂₀ when the frame it was made
/// from is kept, the x_t when its frame is kept or watched.
type PendingStep = (usize, Option<Tensor>, Option<Tensor>);

/// The images of each step (x̂₀ and x_t) on their way to the host, and the `watch` calls made
/// once they are there. On the CPU every step is converted at once. On a GPU the steps' tensors
/// wait (up to [`MAX_PENDING_STEPS`], [`MAX_PENDING_TIME`] or [`MAX_PENDING_VALUES`]) and go
/// over in one copy, since
/// each copy waits for the device to finish everything queued, which would leave it idle
/// twice a step while the host converts images and queues the next step. Images neither kept
/// nor watched are not copied at all.
struct Frames {
    batched: bool,
    /// [`MAX_PENDING_VALUES`] (a field, so that a test can make it small).
    max_values: usize,
    n: usize,
    total: usize,
    keep: KeepFrames,
    watch_images: bool,
    pending: Vec<PendingStep>,
    since: Instant,
    frames: Vec<Vec<Image8>>,
    frame_steps: Vec<usize>,
    x0_preds: Vec<Vec<Image8>>,
    timesteps: Vec<usize>,
}

impl Frames {
    /// A recorder of `total` steps of `n` images, starting from the noise `x_t`.
    fn new(x_t: &Tensor, total: usize, observe: Observe) -> Result<Self> {
        let keep = observe.keep.clone();
        let (frames, frame_steps) = if keep.keeps(0, total) {
            (vec![tensor_to_images(x_t)?], vec![0])
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Frames {
            batched: observe.batched,
            max_values: MAX_PENDING_VALUES,
            n: x_t.dim(0)?,
            total,
            keep,
            watch_images: observe.watch_images,
            pending: Vec::new(),
            since: Instant::now(),
            frames,
            frame_steps,
            x0_preds: Vec::new(),
            timesteps: Vec::with_capacity(total),
        })
    }

    /// Step `t`'s estimate `x0` and result `x`; converted now, or with the next batch.
    fn push(&mut self, t: usize, x0: &Tensor, x: &Tensor, watch: &mut Watch) -> Result<()> {
        // This step makes frame `step` from frame `step - 1`.
        let step = self.timesteps.len() + self.pending.len() + 1;
        let x0 = self.keep.keeps(step - 1, self.total).then(|| x0.clone());
        let x = (self.watch_images || self.keep.keeps(step, self.total)).then(|| x.clone());
        let step_values = |p: &PendingStep| {
            p.1.as_ref().map_or(0, Tensor::elem_count) + p.2.as_ref().map_or(0, Tensor::elem_count)
        };
        let this = (t, x0, x);
        let one = step_values(&this);
        self.pending.push(this);
        let last = step == self.total;
        // The values the next step would add (about as many as this one).
        let values = self.pending.iter().map(step_values).sum::<usize>() + one;
        if !self.batched
            || last
            || self.pending.len() >= MAX_PENDING_STEPS
            || values > self.max_values
            || self.since.elapsed() >= MAX_PENDING_TIME
        {
            self.flush(watch)?;
        }
        Ok(())
    }

    /// Converts the waiting steps (one copy of all their images), then calls `watch` for each.
    fn flush(&mut self, watch: &mut Watch) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let tensors: Vec<&Tensor> = self
            .pending
            .iter()
            .flat_map(|(_, a, b)| [a.as_ref(), b.as_ref()])
            .flatten()
            .collect();
        let images = if tensors.is_empty() {
            Vec::new()
        } else {
            tensor_to_images(&Tensor::cat(&tensors, 0)?)?
        };
        let mut chunks = images.chunks(self.n.max(1));
        let mut next = |wanted: bool| -> Result<Option<&[Image8]>> {
            if !wanted {
                return Ok(None);
            }
            match chunks.next() {
                Some(c) => Ok(Some(c)),
                None => candle_core::bail!("sampler: a step's images are missing from the copy"),
            }
        };
        for (t, x0, x) in self.pending.drain(..) {
            let step = self.timesteps.len() + 1;
            if let Some(x0) = next(x0.is_some())? {
                self.x0_preds.push(x0.to_vec());
            }
            let x = next(x.is_some())?.unwrap_or(&[]);
            if self.keep.keeps(step, self.total) {
                self.frames.push(x.to_vec());
                self.frame_steps.push(step);
            }
            self.timesteps.push(t);
            let shown = if self.watch_images { x } else { &[] };
            if watch(step, self.total, shown).is_break() {
                return Err(candle_core::Error::Msg(format!(
                    "sampling was stopped at step {} of {}",
                    self.timesteps.len(),
                    self.total
                )));
            }
        }
        self.since = Instant::now();
        Ok(())
    }

    /// The run's record, with `images` its final batch.
    fn finish(mut self, images: Tensor, watch: &mut Watch) -> Result<Denoising> {
        self.flush(watch)?;
        let mut x0_preds = self.x0_preds;
        x0_preds.push(self.frames.last().cloned().unwrap_or_default());
        Ok(Denoising {
            timesteps: self.timesteps,
            frames: self.frames,
            frame_steps: self.frame_steps,
            x0_preds,
            images,
        })
    }
}

/// The fresh noise of a run's steps, drawn from the sampler's generator in the order the steps
/// take it (so the values are those of one draw per step), but made and sent to the device a
/// few steps at a time: up to [`MAX_PENDING_STEPS`] steps' worth (and [`MAX_PENDING_VALUES`]
/// values) when `batched`. A copy from the host's ordinary (pageable) memory to a GPU may wait
/// for the work queued before it, as a copy back does; one every step would drain the device
/// every step. Each step takes a view of its part.
struct StepNoise {
    rng: LabRng,
    shape: [usize; 4],
    per_upload: usize,
    /// The most draws the run can still ask for.
    left: usize,
    /// The steps' noise made last, `(k, n, c, h, w)`, and how many of its steps were taken.
    chunk: Option<(Tensor, usize)>,
    device: Device,
}

impl StepNoise {
    /// Noise of `shape` for at most `draws` steps, from `rng` (after the run's first draw).
    fn new(rng: LabRng, shape: [usize; 4], draws: usize, batched: bool, device: &Device) -> Self {
        let per_step = shape.iter().product::<usize>().max(1);
        let per_upload = if batched {
            (MAX_PENDING_VALUES / per_step).clamp(1, MAX_PENDING_STEPS)
        } else {
            1
        };
        Self {
            rng,
            shape,
            per_upload,
            left: draws,
            chunk: None,
            device: device.clone(),
        }
    }

    /// The next step's noise.
    fn take(&mut self) -> Result<Tensor> {
        let (chunk, taken) = match self.chunk.take() {
            Some((chunk, taken)) if taken < chunk.dim(0)? => (chunk, taken),
            _ => {
                let k = self.per_upload.min(self.left).max(1);
                let [n, c, h, w] = self.shape;
                (self.rng.randn(&[k, n, c, h, w], &self.device)?, 0)
            }
        };
        let z = chunk.get(taken)?;
        self.chunk = Some((chunk, taken + 1));
        self.left = self.left.saturating_sub(1);
        Ok(z)
    }
}

/// [`sample`], calling `watch(done, total, x_t)` after each step with the images as they are
/// denoised (the lab draws them while it waits). On a GPU the calls come in small bursts
/// ([`Frames`]). When `watch` answers `Break`, the sampling stops there and returns an error
/// (`sampling was stopped at step 3 of 50`).
#[allow(clippy::too_many_arguments)]
pub fn sample_watching(
    model: &Unet,
    tables: &ScheduleTables,
    objective: Objective,
    shape: (usize, usize, usize, usize),
    kind: SamplerKind,
    seed: u64,
    keep: &KeepFrames,
    watch: &mut Watch,
) -> Result<Denoising> {
    let observe = Observe {
        keep,
        watch_images: true,
        batched: !model.device().is_cpu(),
    };
    sample_recorded(model, tables, objective, shape, kind, seed, watch, observe)
}

/// [`sample_watching`] with what is kept, shown and copied when set by `observe`.
#[allow(clippy::too_many_arguments)]
fn sample_recorded(
    model: &Unet,
    tables: &ScheduleTables,
    objective: Objective,
    shape: (usize, usize, usize, usize),
    kind: SamplerKind,
    seed: u64,
    watch: &mut Watch,
    observe: Observe,
) -> Result<Denoising> {
    let device = model.device().clone();
    let (n, c, h, w) = shape;
    let mut rng = LabRng::derived(seed, SAMPLE_STREAM);
    let mut x = rng.randn(&[n, c, h, w], &device)?;
    let total = match kind {
        SamplerKind::Ddpm => tables.timesteps(),
        SamplerKind::Ddim { steps, .. } => ddim_timesteps(tables.timesteps(), steps).len(),
    };
    let mut record = Frames::new(&x, total, observe)?;
    // Every step but the last may add noise.
    let batched = observe.batched;
    let mut noise = StepNoise::new(rng, [n, c, h, w], total.saturating_sub(1), batched, &device);
    // The previous step's x̂₀ for a self-conditioned model.
    let mut self_cond: Option<Tensor> = None;
    match kind {
        SamplerKind::Ddpm => {
            for t in (0..total).rev() {
                let ts = vec![t; n];
                let pred = predict(model, &x, &ts, self_cond.as_ref())?;
                let (x0, eps) = predict_x0_and_noise(objective, tables, &x, &ts, &pred)?;
                self_cond = next_self_cond(model, &x0)?;
                let mean = posterior_mean(tables, &x, &ts, &eps)?;
                x = if t == 0 {
                    mean
                } else {
                    let z = noise.take()?;
                    (mean + (z * tables.posterior_variance[t].sqrt())?)?
                };
                record.push(t, &x0, &x, watch)?;
            }
        }
        SamplerKind::Ddim { steps, eta } => {
            for (t, t_next) in ddim_timesteps(tables.timesteps(), steps) {
                let ts = vec![t; n];
                let pred = predict(model, &x, &ts, self_cond.as_ref())?;
                let (x0, eps) = predict_x0_and_noise(objective, tables, &x, &ts, &pred)?;
                self_cond = next_self_cond(model, &x0)?;
                x = if t_next < 0 {
                    x0.clone()
                } else {
                    let a = tables.alphas_cumprod[t];
                    let a_next = tables.alphas_cumprod[t_next as usize];
                    let sigma = eta * ((1.0 - a / a_next) * (1.0 - a_next) / (1.0 - a)).sqrt();
                    let coef = (1.0 - a_next - sigma * sigma).max(0.0).sqrt();
                    let mut next = ((&x0 * a_next.sqrt())? + (&eps * coef)?)?;
                    if sigma > 0.0 {
                        let z = noise.take()?;
                        next = (next + (z * sigma)?)?;
                    }
                    next
                };
                record.push(t, &x0, &x, watch)?;
            }
        }
    }
    record.finish(x, watch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `watch` call: (done, total, the images).
    type Calls = Vec<(usize, usize, Vec<Image8>)>;

    fn run(kind: SamplerKind, batched: bool) -> (Denoising, Calls) {
        run_keeping(kind, &KeepFrames::All, true, batched)
    }

    fn run_keeping(
        kind: SamplerKind,
        keep: &KeepFrames,
        watch_images: bool,
        batched: bool,
    ) -> (Denoising, Calls) {
        let cfg = crate::model::UnetConfig::tiny();
        let (model, _vars) =
            crate::model::new_trainable(&cfg, 3, &candle_core::Device::Cpu).unwrap();
        let tables = ScheduleTables::new(crate::schedule::BetaSchedule::Linear, 40).unwrap();
        let mut calls = Vec::new();
        let mut watch = |done: usize, total: usize, x: &[Image8]| {
            calls.push((done, total, x.to_vec()));
            ControlFlow::Continue(())
        };
        let d = sample_recorded(
            &model,
            &tables,
            Objective::Noise,
            (3, 1, 8, 8),
            kind,
            11,
            &mut watch,
            Observe {
                keep,
                watch_images,
                batched,
            },
        )
        .unwrap();
        (d, calls)
    }

    /// The noise drawn a few steps at a time is the noise of one draw per step, in order,
    /// whatever the chunk size, to the last (partial) chunk.
    #[test]
    fn step_noise_in_chunks_is_the_noise_of_one_draw_per_step() {
        let dev = candle_core::Device::Cpu;
        let shape = [2, 1, 3, 3];
        let mut one_by_one = LabRng::derived(5, 1);
        let want: Vec<Vec<f32>> = (0..11)
            .map(|_| {
                let z = one_by_one.randn(&shape, &dev).unwrap();
                z.flatten_all().unwrap().to_vec1().unwrap()
            })
            .collect();
        for batched in [false, true] {
            let mut noise = StepNoise::new(LabRng::derived(5, 1), shape, 11, batched, &dev);
            assert_eq!(
                noise.per_upload,
                if batched { MAX_PENDING_STEPS } else { 1 }
            );
            // A chunk of 4 steps, so that the last of 11 is partial.
            noise.per_upload = noise.per_upload.min(4);
            for (k, w) in want.iter().enumerate() {
                let z = noise.take().unwrap();
                assert_eq!(z.dims(), shape, "step {k}");
                assert_eq!(
                    &z.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    w,
                    "step {k}"
                );
            }
        }
    }

    #[test]
    fn batched_copies_record_the_same_steps_and_calls_as_step_by_step() {
        for kind in [SamplerKind::Ddpm, SamplerKind::Ddim { steps: 7, eta: 0.5 }] {
            let (a, calls_a) = run(kind, false);
            let (b, calls_b) = run(kind, true);
            let total = a.timesteps.len();
            assert_eq!(total, if kind == SamplerKind::Ddpm { 40 } else { 7 });
            // 40 steps take three copies of up to 16 steps; the calls are the same.
            assert_eq!(calls_a, calls_b, "{kind:?}");
            assert_eq!(calls_a.len(), total);
            assert_eq!(a.timesteps, b.timesteps);
            assert_eq!(a.frames, b.frames);
            assert_eq!(a.x0_preds, b.x0_preds);
            assert_eq!(a.frames.len(), total + 1);
            assert_eq!(a.x0_preds.len(), total + 1);
            // Against the tensors themselves: the last frame, the last call and the repeated
            // last estimate are the generated batch, and each call shows its step's frame.
            let last = tensor_to_images(&b.images).unwrap();
            assert_eq!(b.frames[total], last);
            assert_eq!(b.x0_preds[total], last);
            assert_eq!(calls_b[total - 1], (total, total, last));
            for (k, call) in calls_b.iter().enumerate() {
                assert_eq!((call.0, &call.2), (k + 1, &b.frames[k + 1]));
            }
            assert_ne!(a.frames[1], a.frames[2]);
        }
    }

    /// Keeping some frames keeps exactly those of the full record (each with the x̂₀ made
    /// from it) and the last, copied step by step or in batches; a watcher not shown images
    /// is still called at every step.
    #[test]
    fn kept_frames_are_those_of_the_full_record() {
        for kind in [SamplerKind::Ddpm, SamplerKind::Ddim { steps: 7, eta: 0.5 }] {
            let (all, all_calls) = run(kind, false);
            let total = all.timesteps.len();
            // Repeated frames, and frames past the last, count once or not at all.
            assert_eq!(
                KeepFrames::Only(vec![2, 2, total, total + 5]).count(total),
                2
            );
            assert_eq!(KeepFrames::All.count(total), total + 1);
            assert_eq!(all.frame_steps, (0..=total).collect::<Vec<_>>());
            for (keep, want) in [
                (KeepFrames::last(), vec![total]),
                (KeepFrames::Only(vec![0, 3, total]), vec![0, 3, total]),
                (KeepFrames::Only(vec![5, 1]), vec![1, 5, total]),
            ] {
                assert_eq!(keep.count(total), want.len());
                for batched in [false, true] {
                    let (d, calls) = run_keeping(kind, &keep, false, batched);
                    let what = format!("{kind:?} {keep:?} batched {batched}");
                    assert_eq!(d.frame_steps, want, "{what}");
                    assert_eq!(d.timesteps, all.timesteps, "{what}");
                    let frames: Vec<_> = want.iter().map(|&k| all.frames[k].clone()).collect();
                    let x0s: Vec<_> = want.iter().map(|&k| all.x0_preds[k].clone()).collect();
                    assert_eq!(d.frames, frames, "{what}");
                    assert_eq!(d.x0_preds, x0s, "{what}");
                    assert_eq!(d.final_images(), all.final_images(), "{what}");
                    let steps: Vec<_> = calls.iter().map(|c| (c.0, c.1, c.2.len())).collect();
                    let want_calls: Vec<_> = (1..=total).map(|k| (k, total, 0)).collect();
                    assert_eq!(steps, want_calls, "{what}");
                }
            }
            // Shown the images, the watcher sees every step's, whatever is kept.
            let (_, calls) = run_keeping(kind, &KeepFrames::last(), true, true);
            assert_eq!(calls, all_calls);
        }
    }

    /// A watcher that answers `Break` stops the sampling at that step, copied step by step or
    /// in batches, and the error says where.
    #[test]
    fn a_watcher_can_stop_the_sampling() {
        let cfg = crate::model::UnetConfig::tiny();
        let (model, _vars) =
            crate::model::new_trainable(&cfg, 3, &candle_core::Device::Cpu).unwrap();
        let tables = ScheduleTables::new(crate::schedule::BetaSchedule::Linear, 40).unwrap();
        for batched in [false, true] {
            let mut seen = 0;
            let mut watch = |done: usize, _: usize, _: &[Image8]| {
                seen = done;
                if done == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            };
            let err = sample_recorded(
                &model,
                &tables,
                Objective::Noise,
                (2, 1, 8, 8),
                SamplerKind::Ddpm,
                11,
                &mut watch,
                Observe {
                    keep: &KeepFrames::All,
                    watch_images: true,
                    batched,
                },
            )
            .unwrap_err()
            .to_string();
            assert_eq!(
                err, "sampling was stopped at step 3 of 40",
                "batched {batched}"
            );
            assert_eq!(seen, 3, "no call after the one that stopped it");
        }
    }

    #[test]
    fn the_recorder_keeps_each_steps_estimate_and_sample_apart_and_in_order() {
        let dev = candle_core::Device::Cpu;
        let full = |v: f32| Tensor::full(v, (2, 1, 2, 2), &dev).unwrap();
        // The pixel of v: ((v + 1)·127.5).round().
        let pixel = |v: f32| ((v + 1.0) * 127.5).round() as u8;
        for batched in [false, true] {
            let total = 20;
            let observe = Observe {
                keep: &KeepFrames::All,
                watch_images: true,
                batched,
            };
            let mut rec = Frames::new(&full(0.0), total, observe).unwrap();
            let mut calls = Vec::new();
            let mut watch = |done: usize, all: usize, x: &[Image8]| {
                calls.push((done, all, x.len(), x[1].pixels[3]));
                ControlFlow::Continue(())
            };
            for k in 0..total {
                let x0 = full(-0.9 + 0.01 * k as f32);
                let x = full(0.5 - 0.02 * k as f32);
                rec.push(100 - k, &x0, &x, &mut watch).unwrap();
            }
            // The last step flushes: every call is made by then, not left to `finish`.
            assert_eq!(calls.len(), total);
            let d = rec
                .finish(full(0.25), &mut |_, _, _| {
                    panic!("a call after the last step")
                })
                .unwrap();
            assert_eq!(d.timesteps, (0..total).map(|k| 100 - k).collect::<Vec<_>>());
            assert_eq!(d.frames[0][0].pixels, [pixel(0.0); 4]);
            for (k, call) in calls.iter().enumerate() {
                let x = 0.5 - 0.02 * k as f32;
                let x0 = -0.9 + 0.01 * k as f32;
                assert_eq!(d.frames[k + 1].len(), 2);
                assert_eq!(d.frames[k + 1][1].pixels, [pixel(x); 4], "step {k}");
                assert_eq!(d.x0_preds[k][0].pixels, [pixel(x0); 4], "step {k}");
                assert_eq!(*call, (k + 1, total, 2, pixel(x)));
            }
            assert_eq!(d.x0_preds[total], d.frames[total]);
        }
    }

    #[test]
    fn large_batches_are_copied_before_they_pass_the_cap() {
        let dev = candle_core::Device::Cpu;
        let full = |v: f32| Tensor::full(v, (2, 1, 2, 2), &dev).unwrap();
        let observe = Observe {
            keep: &KeepFrames::All,
            watch_images: true,
            batched: true,
        };
        let mut rec = Frames::new(&full(0.0), 10, observe).unwrap();
        // Two steps' x̂₀ and x_t hold 32 values: past a cap of 24, each step goes at once.
        rec.max_values = 24;
        let mut calls = 0;
        for k in 0..3 {
            rec.push(9 - k, &full(0.1), &full(0.2), &mut |_, _, _| {
                calls += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(calls, k + 1);
        }
        // Under the cap they wait (for the step count or the time limit, restarted here).
        rec.max_values = 1000;
        rec.since = Instant::now();
        rec.push(6, &full(0.1), &full(0.2), &mut |_, _, _| {
            calls += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(calls, 3);
    }

    #[test]
    fn ddim_pairs_cover_the_schedule() {
        let p = ddim_timesteps(200, 4);
        assert_eq!(p, vec![(199, 149), (149, 99), (99, 49), (49, -1)]);
        let full = ddim_timesteps(10, 10);
        assert_eq!(full.len(), 10);
        assert_eq!(full[0], (9, 8));
        assert_eq!(*full.last().unwrap(), (0, -1));
        // More steps than timesteps are clamped.
        assert_eq!(ddim_timesteps(5, 50).len(), 5);
    }
}
