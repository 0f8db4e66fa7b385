//! The forward process `q(x_t | x_0)`, the training losses and the three prediction objectives.

use std::fmt;
use std::str::FromStr;

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::schedule::ScheduleTables;

/// Loss between the network output and its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// PyTorch `smooth_l1_loss` with β = 1 (the blog's choice).
    #[default]
    Huber,
    /// Mean absolute error.
    L1,
    /// Mean squared error.
    L2,
}

/// What the network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// The noise ε (Ho et al., the blog).
    #[default]
    Noise,
    /// The clean image x_0.
    X0,
    /// The velocity v = √ᾱ ε − √(1−ᾱ) x_0 (Salimans & Ho 2022).
    V,
}

macro_rules! named_enum {
    ($t:ty, $what:literal, $($v:path => $n:literal),+; aliases $($alias:literal => $av:path),*) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($v => $n),+ })
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($n => Ok($v),)+
                    $($alias => Ok($av),)*
                    other => Err(format!(
                        concat!("unknown ", $what, " '{}' (expected {}; PyTorch's names {} are taken too)"),
                        other,
                        [$($n),+].join(", "),
                        [$($alias),*].join(", "),
                    )),
                }
            }
        }
    };
}
// The aliases are the same things under PyTorch's names: F.smooth_l1_loss (β = 1) is the
// blog's Huber loss, F.mse_loss is l2; denoising-diffusion-pytorch's objectives are
// pred_noise, pred_x0 and pred_v, diffusers' prediction types epsilon, sample and
// v_prediction.
named_enum!(LossKind, "loss", LossKind::Huber => "huber", LossKind::L1 => "l1", LossKind::L2 => "l2";
    aliases "smooth_l1" => LossKind::Huber, "mse" => LossKind::L2);
named_enum!(Objective, "objective", Objective::Noise => "noise", Objective::X0 => "x0", Objective::V => "v";
    aliases "pred_noise" => Objective::Noise, "epsilon" => Objective::Noise,
    "pred_x0" => Objective::X0, "sample" => Objective::X0,
    "pred_v" => Objective::V, "v_prediction" => Objective::V);

/// The loss a run trains on, as run lists name it (`huber`, `l2·v·snr`): the loss, the
/// objective where it is not the noise, and `snr` with min-SNR weighting. Losses of other
/// kinds are not comparable.
pub fn loss_kind_name(loss: LossKind, objective: Objective, min_snr: bool) -> String {
    let mut kind = loss.to_string();
    if objective != Objective::Noise {
        kind = format!("{kind}·{objective}");
    }
    if min_snr {
        kind.push_str("·snr");
    }
    kind
}

/// Tables of one schedule looked up at a batch of timesteps, as `(N, 1, 1, 1)` f32 tensors.
struct At {
    sqrt_ac: Tensor,
    sqrt_1m_ac: Tensor,
}

impl At {
    fn new(tables: &ScheduleTables, t: &[usize], x: &Tensor) -> Result<Self> {
        let d = x.device();
        Ok(Self {
            sqrt_ac: ScheduleTables::extract(&tables.sqrt_alphas_cumprod, t, d)?,
            sqrt_1m_ac: ScheduleTables::extract(&tables.sqrt_one_minus_alphas_cumprod, t, d)?,
        })
    }
}

/// `q_sample`: `x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε`.
pub fn q_sample(
    tables: &ScheduleTables,
    x0: &Tensor,
    t: &[usize],
    noise: &Tensor,
) -> Result<Tensor> {
    let at = At::new(tables, t, x0)?;
    x0.broadcast_mul(&at.sqrt_ac)? + noise.broadcast_mul(&at.sqrt_1m_ac)?
}

/// The training target of `objective` for clean images `x0` and noise `noise` at `t`.
pub fn target(
    objective: Objective,
    tables: &ScheduleTables,
    x0: &Tensor,
    t: &[usize],
    noise: &Tensor,
) -> Result<Tensor> {
    match objective {
        Objective::Noise => Ok(noise.clone()),
        Objective::X0 => Ok(x0.clone()),
        Objective::V => {
            let at = At::new(tables, t, x0)?;
            noise.broadcast_mul(&at.sqrt_ac)? - x0.broadcast_mul(&at.sqrt_1m_ac)?
        }
    }
}

/// Converts a network output into the predicted `(x̂_0, ε̂)` at `x_t`.
pub fn predict_x0_and_noise(
    objective: Objective,
    tables: &ScheduleTables,
    x_t: &Tensor,
    t: &[usize],
    pred: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let at = At::new(tables, t, x_t)?;
    match objective {
        Objective::Noise => {
            let x0 = (x_t - pred.broadcast_mul(&at.sqrt_1m_ac)?)?.broadcast_div(&at.sqrt_ac)?;
            Ok((x0, pred.clone()))
        }
        Objective::X0 => {
            let eps = (x_t - pred.broadcast_mul(&at.sqrt_ac)?)?.broadcast_div(&at.sqrt_1m_ac)?;
            Ok((pred.clone(), eps))
        }
        Objective::V => {
            let x0 = (x_t.broadcast_mul(&at.sqrt_ac)? - pred.broadcast_mul(&at.sqrt_1m_ac)?)?;
            let eps = (x_t.broadcast_mul(&at.sqrt_1m_ac)? + pred.broadcast_mul(&at.sqrt_ac)?)?;
            Ok((x0, eps))
        }
    }
}

/// The mean of `p(x_{t−1} | x_t)` given the predicted noise, as the blog's `p_sample` computes it:
/// `√(1/α_t) · (x_t − β_t / √(1−ᾱ_t) · ε̂)`.
pub fn posterior_mean(
    tables: &ScheduleTables,
    x_t: &Tensor,
    t: &[usize],
    eps: &Tensor,
) -> Result<Tensor> {
    let d = x_t.device();
    let coef: Vec<f64> = t
        .iter()
        .map(|&i| tables.betas[i] / tables.sqrt_one_minus_alphas_cumprod[i])
        .collect();
    let coef = ScheduleTables::extract(&coef, &(0..t.len()).collect::<Vec<_>>(), d)?;
    let sra = ScheduleTables::extract(&tables.sqrt_recip_alphas, t, d)?;
    (x_t - eps.broadcast_mul(&coef)?)?.broadcast_mul(&sra)
}

/// Elementwise loss between `pred` and `target` (same shape, no reduction).
pub fn elementwise_loss(kind: LossKind, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let diff = (pred - target)?;
    match kind {
        LossKind::L1 => diff.abs(),
        LossKind::L2 => diff.sqr(),
        LossKind::Huber => {
            let a = diff.abs()?;
            let small = a.lt(1.0)?;
            let quad = (a.sqr()? * 0.5)?;
            let lin = (a - 0.5)?;
            small.where_cond(&quad, &lin)
        }
    }
}

/// Mean loss over all elements, plus each example's mean (for loss-by-timestep views).
pub fn loss_with_per_example(
    kind: LossKind,
    pred: &Tensor,
    target: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let el = elementwise_loss(kind, pred, target)?;
    let n = el.dim(0)?;
    let per_example = el.reshape((n, ()))?.mean(1)?;
    Ok((el.mean_all()?, per_example))
}

/// The blog's `p_losses`: noise `x0` to `x_t`, run the model, compare with the objective's target.
/// Returns the mean loss and the per-example losses.
#[allow(clippy::too_many_arguments)]
pub fn p_losses(
    model: &crate::model::Unet,
    tables: &ScheduleTables,
    objective: Objective,
    loss: LossKind,
    x0: &Tensor,
    t: &[usize],
    noise: &Tensor,
) -> Result<(Tensor, Tensor)> {
    p_losses_self_cond(model, tables, objective, loss, x0, t, noise, false)
}

/// [`p_losses`] as `GaussianDiffusion.p_losses` of seed 002 runs it on a step that
/// self-conditions (`self_cond`, drawn by the caller with probability ½): the model first
/// predicts x̂₀ from `x_t` with zeros as its condition, outside the graph (`detach`, the seed's
/// `no_grad`; not clipped, as `clip_x_start=False` there), and is then trained with that x̂₀
/// as `x_self_cond`. Without `self_cond` (or on a model without self-conditioning) it is
/// exactly [`p_losses`].
#[allow(clippy::too_many_arguments)]
pub fn p_losses_self_cond(
    model: &crate::model::Unet,
    tables: &ScheduleTables,
    objective: Objective,
    loss: LossKind,
    x0: &Tensor,
    t: &[usize],
    noise: &Tensor,
    self_cond: bool,
) -> Result<(Tensor, Tensor)> {
    let x_t = q_sample(tables, x0, t, noise)?;
    let tt = crate::model::timesteps_tensor(t, x0.device())?;
    let cond = if self_cond && model.self_conditioned() {
        let first = model.forward(&x_t, &tt)?.detach();
        let (x0_hat, _) = predict_x0_and_noise(objective, tables, &x_t, t, &first)?;
        Some(x0_hat.detach())
    } else {
        None
    };
    let pred = model.forward_cond(&x_t, &tt, cond.as_ref())?;
    let tgt = target(objective, tables, x0, t, noise)?;
    loss_with_per_example(loss, &pred, &tgt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::BetaSchedule;
    use candle_core::Device;

    fn t1(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, (1, 1, 1, v.len()), &Device::Cpu).unwrap()
    }

    #[test]
    fn huber_matches_smooth_l1() {
        let p = t1(&[0.0, 0.5, 2.0, -3.0]);
        let z = t1(&[0.0, 0.0, 0.0, 0.0]);
        let l: Vec<f32> = elementwise_loss(LossKind::Huber, &p, &z)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(l, vec![0.0, 0.125, 1.5, 2.5]);
    }

    #[test]
    fn objectives_invert() {
        let tables = ScheduleTables::new(BetaSchedule::Cosine, 50).unwrap();
        let dev = Device::Cpu;
        let x0 = Tensor::new(&[[[[0.3f32, -0.7]]], [[[0.9, 0.1]]]], &dev).unwrap();
        let eps = Tensor::new(&[[[[1.1f32, -0.2]]], [[[-0.4, 0.6]]]], &dev).unwrap();
        let t = [3usize, 40];
        let x_t = q_sample(&tables, &x0, &t, &eps).unwrap();
        for obj in [Objective::Noise, Objective::X0, Objective::V] {
            let pred = target(obj, &tables, &x0, &t, &eps).unwrap();
            let (x0h, epsh) = predict_x0_and_noise(obj, &tables, &x_t, &t, &pred).unwrap();
            let e1 = (x0h - &x0)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let e2 = (epsh - &eps)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(e1 < 1e-4 && e2 < 1e-4, "{obj}: {e1} {e2}");
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!("HUBER".parse::<LossKind>().unwrap(), LossKind::Huber);
        assert_eq!("v".parse::<Objective>().unwrap(), Objective::V);
        // PyTorch's names for the same things.
        assert_eq!("pred_noise".parse::<Objective>().unwrap(), Objective::Noise);
        assert_eq!("v_prediction".parse::<Objective>().unwrap(), Objective::V);
        assert_eq!("epsilon".parse::<Objective>().unwrap(), Objective::Noise);
        assert_eq!("smooth_l1".parse::<LossKind>().unwrap(), LossKind::Huber);
        assert_eq!("mse".parse::<LossKind>().unwrap(), LossKind::L2);
        assert!("l3"
            .parse::<LossKind>()
            .unwrap_err()
            .contains("huber, l1, l2"));
    }
}
