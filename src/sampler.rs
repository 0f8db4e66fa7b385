//! Reverse process: the blog's Algorithm 2 (ancestral DDPM sampling) and DDIM (Song et al. 2021),
//! keeping every intermediate `x_t` and the predicted `x̂_0` at each step.

use std::fmt;
use std::str::FromStr;

use candle_core::{Result, Tensor};
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

/// The whole trajectory of a sampling run.
#[derive(Debug, Clone)]
pub struct Denoising {
    /// The timestep the network saw at each step (descending); `timesteps.len()` steps in all.
    pub timesteps: Vec<usize>,
    /// `frames[0]` is the initial noise x_T, `frames[k]` the batch after `k` steps; the last
    /// frame is the generated images.
    pub frames: Vec<Vec<Image8>>,
    /// `x0_preds[k]` is the network's estimate of x̂_0 made from `frames[k]`; the last entry
    /// repeats the final images so both lists have one entry per frame.
    pub x0_preds: Vec<Vec<Image8>>,
    /// The generated batch as a tensor `(N, C, H, W)` in about `[-1, 1]`.
    pub images: Tensor,
}

impl Denoising {
    /// Number of frames (`steps + 1`).
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

/// Generates `shape.0` images with `model`, calling `progress(done, total)` after each step.
pub fn sample(
    model: &Unet,
    tables: &ScheduleTables,
    objective: Objective,
    shape: (usize, usize, usize, usize),
    kind: SamplerKind,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Denoising> {
    let mut watch = |done: usize, total: usize, _: &[Image8]| progress(done, total);
    sample_watching(model, tables, objective, shape, kind, seed, &mut watch)
}

/// [`sample`], calling `watch(done, total, x_t)` after each step with the images as they are
/// denoised (the lab draws them while it waits).
pub fn sample_watching(
    model: &Unet,
    tables: &ScheduleTables,
    objective: Objective,
    shape: (usize, usize, usize, usize),
    kind: SamplerKind,
    seed: u64,
    watch: &mut dyn FnMut(usize, usize, &[Image8]),
) -> Result<Denoising> {
    let device = model.device().clone();
    let (n, c, h, w) = shape;
    let mut rng = LabRng::derived(seed, SAMPLE_STREAM);
    let mut x = rng.randn(&[n, c, h, w], &device)?;
    let mut frames = vec![tensor_to_images(&x)?];
    let mut x0_preds = Vec::new();
    let mut timesteps = Vec::new();
    // The previous step's x̂₀ for a self-conditioned model.
    let mut self_cond: Option<Tensor> = None;
    match kind {
        SamplerKind::Ddpm => {
            let total = tables.timesteps();
            for (k, t) in (0..total).rev().enumerate() {
                let ts = vec![t; n];
                let pred = predict(model, &x, &ts, self_cond.as_ref())?;
                let (x0, eps) = predict_x0_and_noise(objective, tables, &x, &ts, &pred)?;
                self_cond = next_self_cond(model, &x0)?;
                let mean = posterior_mean(tables, &x, &ts, &eps)?;
                x = if t == 0 {
                    mean
                } else {
                    let z = rng.randn(&[n, c, h, w], &device)?;
                    (mean + (z * tables.posterior_variance[t].sqrt())?)?
                };
                x0_preds.push(tensor_to_images(&x0)?);
                frames.push(tensor_to_images(&x)?);
                timesteps.push(t);
                watch(k + 1, total, frames.last().map_or(&[][..], Vec::as_slice));
            }
        }
        SamplerKind::Ddim { steps, eta } => {
            let pairs = ddim_timesteps(tables.timesteps(), steps);
            let total = pairs.len();
            for (k, &(t, t_next)) in pairs.iter().enumerate() {
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
                        let z = rng.randn(&[n, c, h, w], &device)?;
                        next = (next + (z * sigma)?)?;
                    }
                    next
                };
                x0_preds.push(tensor_to_images(&x0)?);
                frames.push(tensor_to_images(&x)?);
                timesteps.push(t);
                watch(k + 1, total, frames.last().map_or(&[][..], Vec::as_slice));
            }
        }
    }
    x0_preds.push(frames.last().cloned().unwrap_or_default());
    Ok(Denoising {
        timesteps,
        frames,
        x0_preds,
        images: x,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
