//! Variance (beta) schedules of the forward process and every table derived from them.
//!
//! Everything is computed in `f64` and handed to the model as `f32` tensors, exactly as the
//! blog post "The Annotated Diffusion Model" defines it (0-based `t ∈ {0 … T−1}`).

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// First beta of the linear, quadratic and sigmoid schedules (Ho et al. 2020).
pub const BETA_START: f64 = 1e-4;
/// Last beta of the linear, quadratic and sigmoid schedules.
pub const BETA_END: f64 = 0.02;
/// Offset `s` of the cosine schedule (Nichol & Dhariwal 2021).
pub const COSINE_S: f64 = 0.008;

/// The four beta schedules of the blog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BetaSchedule {
    /// `linspace(1e-4, 0.02, T)`.
    #[default]
    Linear,
    /// `linspace(√1e-4, √0.02, T)²`.
    Quadratic,
    /// Cosine schedule with `s = 0.008`, betas clipped to `[1e-4, 0.9999]`.
    Cosine,
    /// `sigmoid(linspace(−6, 6, T))` scaled into `[1e-4, 0.02]`.
    Sigmoid,
}

impl BetaSchedule {
    /// All schedules, in the order the lab shows them.
    pub const ALL: [BetaSchedule; 4] = [
        BetaSchedule::Linear,
        BetaSchedule::Quadratic,
        BetaSchedule::Cosine,
        BetaSchedule::Sigmoid,
    ];

    /// Lower-case name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            BetaSchedule::Linear => "linear",
            BetaSchedule::Quadratic => "quadratic",
            BetaSchedule::Cosine => "cosine",
            BetaSchedule::Sigmoid => "sigmoid",
        }
    }

    /// The betas `β_0 … β_{T−1}` of this schedule.
    pub fn betas(self, timesteps: usize) -> Result<Vec<f64>, ScheduleError> {
        if timesteps < 2 {
            return Err(ScheduleError::TooFewTimesteps(timesteps));
        }
        let t = timesteps;
        Ok(match self {
            BetaSchedule::Linear => linspace(BETA_START, BETA_END, t),
            BetaSchedule::Quadratic => linspace(BETA_START.sqrt(), BETA_END.sqrt(), t)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            BetaSchedule::Sigmoid => linspace(-6.0, 6.0, t)
                .into_iter()
                .map(|x| sigmoid(x) * (BETA_END - BETA_START) + BETA_START)
                .collect(),
            BetaSchedule::Cosine => {
                let steps = t + 1;
                let tf = t as f64;
                let ac: Vec<f64> = linspace(0.0, tf, steps)
                    .into_iter()
                    .map(|x| {
                        let v =
                            ((x / tf + COSINE_S) / (1.0 + COSINE_S) * std::f64::consts::PI * 0.5)
                                .cos();
                        v * v
                    })
                    .collect();
                let first = ac[0];
                let ac: Vec<f64> = ac.into_iter().map(|a| a / first).collect();
                (0..t)
                    .map(|i| (1.0 - ac[i + 1] / ac[i]).clamp(1e-4, 0.9999))
                    .collect()
            }
        })
    }
}

impl fmt::Display for BetaSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BetaSchedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BetaSchedule::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ScheduleError::UnknownSchedule(s.to_string()))
    }
}

/// Errors of schedule construction.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    /// Fewer than two timesteps were asked for.
    #[error("timesteps must be at least 2, got {0}")]
    TooFewTimesteps(usize),
    /// A schedule name that is not one of linear, quadratic, cosine, sigmoid.
    #[error("unknown schedule '{0}' (expected linear, quadratic, cosine or sigmoid)")]
    UnknownSchedule(String),
}

/// `n` evenly spaced values from `start` to `end` inclusive, like `torch.linspace`.
pub fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f64;
    (0..n)
        .map(|i| {
            if i == n - 1 {
                end
            } else {
                start + step * i as f64
            }
        })
        .collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Every table the blog derives from a beta schedule, in `f64`, each of length `T`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleTables {
    /// Which schedule produced the betas.
    pub schedule: BetaSchedule,
    /// `β_t`.
    pub betas: Vec<f64>,
    /// `α_t = 1 − β_t`.
    pub alphas: Vec<f64>,
    /// `ᾱ_t = Π_{s≤t} α_s`.
    pub alphas_cumprod: Vec<f64>,
    /// `ᾱ_{t−1}`, with `ᾱ_{−1} = 1`.
    pub alphas_cumprod_prev: Vec<f64>,
    /// `√(1/α_t)`.
    pub sqrt_recip_alphas: Vec<f64>,
    /// `√ᾱ_t`.
    pub sqrt_alphas_cumprod: Vec<f64>,
    /// `√(1 − ᾱ_t)`.
    pub sqrt_one_minus_alphas_cumprod: Vec<f64>,
    /// `β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)`.
    pub posterior_variance: Vec<f64>,
    /// Signal-to-noise ratio `ᾱ_t / (1 − ᾱ_t)`.
    pub snr: Vec<f64>,
}

impl ScheduleTables {
    /// Builds all tables for `schedule` with `timesteps` steps.
    pub fn new(schedule: BetaSchedule, timesteps: usize) -> Result<Self, ScheduleError> {
        let betas = schedule.betas(timesteps)?;
        Ok(Self::from_betas(schedule, betas))
    }

    /// Builds the derived tables from explicit betas.
    pub fn from_betas(schedule: BetaSchedule, betas: Vec<f64>) -> Self {
        let alphas: Vec<f64> = betas.iter().map(|b| 1.0 - b).collect();
        let mut alphas_cumprod = Vec::with_capacity(alphas.len());
        let mut acc = 1.0;
        for a in &alphas {
            acc *= a;
            alphas_cumprod.push(acc);
        }
        let mut alphas_cumprod_prev = vec![1.0];
        alphas_cumprod_prev.extend_from_slice(&alphas_cumprod[..alphas_cumprod.len() - 1]);
        let sqrt_recip_alphas = alphas.iter().map(|a| (1.0 / a).sqrt()).collect();
        let sqrt_alphas_cumprod = alphas_cumprod.iter().map(|a| a.sqrt()).collect();
        let sqrt_one_minus_alphas_cumprod =
            alphas_cumprod.iter().map(|a| (1.0 - a).sqrt()).collect();
        let posterior_variance = betas
            .iter()
            .zip(&alphas_cumprod_prev)
            .zip(&alphas_cumprod)
            .map(|((b, prev), ac)| b * (1.0 - prev) / (1.0 - ac))
            .collect();
        let snr = alphas_cumprod.iter().map(|a| a / (1.0 - a)).collect();
        Self {
            schedule,
            betas,
            alphas,
            alphas_cumprod,
            alphas_cumprod_prev,
            sqrt_recip_alphas,
            sqrt_alphas_cumprod,
            sqrt_one_minus_alphas_cumprod,
            posterior_variance,
            snr,
        }
    }

    /// Number of timesteps `T`.
    pub fn timesteps(&self) -> usize {
        self.betas.len()
    }

    /// `√ᾱ` at the last step: how much of the image x_T still carries.
    pub fn final_signal(&self) -> f64 {
        *self.sqrt_alphas_cumprod.last().expect("T >= 2")
    }

    /// Looks up `table` at the timesteps `t` and returns an `f32` tensor of shape `(N, 1, 1, 1)`
    /// ready to broadcast against images (the blog's `extract`).
    pub fn extract(table: &[f64], t: &[usize], device: &Device) -> candle_core::Result<Tensor> {
        let vals: Vec<f32> = t.iter().map(|&i| table[i] as f32).collect();
        Tensor::from_vec(vals, (t.len(), 1, 1, 1), device)
    }
}

/// A schedule's value in `[0, 1]` (ᾱ, √ᾱ) with `digits` decimals, or in powers of ten with
/// `exp_digits` below 0.001, where fixed decimals would say `0.000…` (√ᾱ_T of cosine at
/// T = 1000 is 1.6e-5).
pub fn fmt_fraction(v: f64, digits: usize, exp_digits: usize) -> String {
    if v >= 1e-3 {
        format!("{v:.digits$}")
    } else {
        format!("{v:.exp_digits$e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in BetaSchedule::ALL {
            assert_eq!(s.name().parse::<BetaSchedule>().unwrap(), s);
        }
        assert!("cosinus".parse::<BetaSchedule>().is_err());
    }

    #[test]
    fn too_few_steps_is_an_error() {
        assert_eq!(
            BetaSchedule::Linear.betas(1),
            Err(ScheduleError::TooFewTimesteps(1))
        );
    }
}
