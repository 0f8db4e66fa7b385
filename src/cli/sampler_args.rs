//! Sampler flags shared by `sample` and `eval` (`--sampler --steps --eta`).

use super::train_cmd::note;
use anyhow::Result;
use clap::Args;

use crate::sampler::{SamplerKind, SamplerName};

/// How to sample; unset flags fall back to the run's recommended sampler, else DDPM.
#[derive(Debug, Clone, Args, Default)]
pub struct SamplerArgs {
    /// Sampler: ddpm (Algorithm 2, all T steps) or ddim [default: the run's recommended sampler, else ddpm]
    #[arg(long)]
    pub sampler: Option<SamplerName>,
    /// DDIM steps [default: the run's recommendation, else 50]
    #[arg(long)]
    pub steps: Option<usize>,
    /// DDIM eta, 0 (deterministic) to 1 [default: the run's recommendation, else 0]
    #[arg(long)]
    pub eta: Option<f64>,
}

impl SamplerArgs {
    /// The sampler for a run with `timesteps` steps whose preset recommends `recommended`.
    /// Prints a note when `--steps` is given to DDPM.
    pub fn kind(&self, timesteps: usize, recommended: Option<SamplerKind>) -> Result<SamplerKind> {
        if let Some(eta) = self.eta {
            // Checked even where DDPM ignores it: a bad value is a typo worth reporting.
            SamplerKind::Ddim { steps: 1, eta }
                .checked(1)
                .map_err(anyhow::Error::msg)?;
        }
        let (rec_steps, rec_eta) = match recommended {
            Some(SamplerKind::Ddim { steps, eta }) => (Some(steps), Some(eta)),
            _ => (None, None),
        };
        let name = match (self.sampler, recommended) {
            (Some(n), _) => n,
            (None, Some(SamplerKind::Ddim { .. })) => SamplerName::Ddim,
            (None, _) => SamplerName::Ddpm,
        };
        match name {
            SamplerName::Ddpm => {
                if self.steps.is_some() {
                    note(&format!(
                        "note: --steps applies to --sampler ddim; ddpm runs all {timesteps} steps"
                    ));
                }
                if self.eta.is_some() {
                    note(
                        "note: --eta applies to --sampler ddim; ddpm adds its own noise back at every step",
                    );
                }
                Ok(SamplerKind::Ddpm)
            }
            SamplerName::Ddim => {
                let steps = self.steps.or(rec_steps).unwrap_or(50);
                let kind = SamplerKind::Ddim {
                    steps,
                    eta: self.eta.or(rec_eta).unwrap_or(0.0),
                };
                if let Some(clamped) = kind.clamp_note(timesteps) {
                    note(&format!("note: {clamped}"));
                }
                kind.checked(timesteps).map_err(anyhow::Error::msg)
            }
        }
    }
}

/// [`crate::runs::open_for_sampling`] for `sample` and `eval`: where the EMA weights it picked
/// are damaged but the checkpoint's raw weights load, the error says that `--no-ema` samples
/// those.
pub fn open_run(
    path: &std::path::Path,
    device: crate::device::DeviceSpec,
    no_ema: bool,
) -> Result<crate::store::LoadedModel> {
    let e = match crate::runs::open_for_sampling(path, Some(device), !no_ema) {
        Ok(loaded) => return Ok(loaded),
        Err(e) => e,
    };
    if !no_ema && crate::runs::open_for_sampling(path, Some(device), false).is_ok() {
        anyhow::bail!(
            "{}; --no-ema samples the checkpoint's raw weights",
            crate::errors::one_line(&e)
        );
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_recommendation() {
        let none = SamplerArgs::default();
        assert_eq!(none.kind(200, None).unwrap(), SamplerKind::Ddpm);
        let rec = Some(SamplerKind::Ddim {
            steps: 40,
            eta: 0.0,
        });
        assert_eq!(
            none.kind(200, rec).unwrap(),
            SamplerKind::Ddim {
                steps: 40,
                eta: 0.0
            }
        );
        let ddpm = SamplerArgs {
            sampler: Some(SamplerName::Ddpm),
            ..SamplerArgs::default()
        };
        assert_eq!(ddpm.kind(200, rec).unwrap(), SamplerKind::Ddpm);
        let steps = SamplerArgs {
            steps: Some(10),
            ..SamplerArgs::default()
        };
        assert_eq!(
            steps.kind(200, rec).unwrap(),
            SamplerKind::Ddim {
                steps: 10,
                eta: 0.0
            }
        );
        assert_eq!(
            steps.kind(200, None).unwrap(),
            SamplerKind::Ddpm,
            "as before: --steps alone keeps ddpm"
        );
    }

    #[test]
    fn rejects_bad_values_and_clamps_steps_to_t() {
        let big = SamplerArgs {
            sampler: Some(SamplerName::Ddim),
            steps: Some(300),
            eta: None,
        };
        assert_eq!(
            big.kind(200, None).unwrap(),
            SamplerKind::Ddim {
                steps: 200,
                eta: 0.0
            },
            "more steps than T are clamped to T, as in the lab"
        );
        let zero = SamplerArgs {
            sampler: Some(SamplerName::Ddim),
            steps: Some(0),
            eta: None,
        };
        assert!(zero
            .kind(200, None)
            .unwrap_err()
            .to_string()
            .contains("at least 1"));
        for eta in [f64::NAN, -0.1, 1.5] {
            let a = SamplerArgs {
                eta: Some(eta),
                ..SamplerArgs::default()
            };
            assert!(a.kind(200, None).unwrap_err().to_string().contains("--eta"));
        }
    }
}
