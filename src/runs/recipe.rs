//! The recipe flags `ddpm-lab train` and the lab share: each overrides one field of a
//! configuration, and both commands apply them here, then check the result with
//! [`TrainConfig::validate_hyperparameters`], so the same words mean the same run.

use clap::Args;

use crate::diffusion::{LossKind, Objective};
use crate::schedule::BetaSchedule;
use crate::store::TrainConfig;

/// Recipe flags common to `ddpm-lab train` and `ddpm-lab` (the lab).
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct RecipeFlags {
    /// Beta schedule: linear, quadratic, cosine or sigmoid [default: the recipe's: train's --preset, the blog's for import]
    #[arg(long)]
    pub schedule: Option<BetaSchedule>,
    /// Diffusion steps T [default: the recipe's: train's --preset, the blog's for import]
    #[arg(long)]
    pub timesteps: Option<usize>,
    /// Loss: huber, l1 or l2 [default: the recipe's: train's --preset, the blog's for import]
    #[arg(long)]
    pub loss: Option<LossKind>,
    /// What the network predicts: noise, x0 or v [default: the recipe's: train's --preset, the blog's for import]
    #[arg(long)]
    pub objective: Option<Objective>,
    /// Images per batch [default: the recipe's: train's --preset, the blog's for import]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate [default: the recipe's: train's --preset, the blog's for import]
    #[arg(long)]
    pub lr: Option<f64>,
}

impl RecipeFlags {
    /// Writes every given flag into `cfg` (unchecked: validate the result).
    pub fn apply(&self, cfg: &mut TrainConfig) {
        if let Some(v) = self.schedule {
            cfg.schedule = v;
        }
        if let Some(v) = self.timesteps {
            cfg.timesteps = v;
        }
        if let Some(v) = self.loss {
            cfg.loss = v;
        }
        if let Some(v) = self.objective {
            cfg.objective = v;
        }
        if let Some(v) = self.batch_size {
            cfg.batch_size = v;
        }
        if let Some(v) = self.lr {
            cfg.lr = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_flags_change_the_config() {
        let base = TrainConfig::default();
        let mut cfg = base.clone();
        RecipeFlags::default().apply(&mut cfg);
        assert_eq!(cfg, base);
        let flags = RecipeFlags {
            timesteps: Some(50),
            lr: Some(2e-4),
            ..RecipeFlags::default()
        };
        flags.apply(&mut cfg);
        assert_eq!((cfg.timesteps, cfg.lr), (50, 2e-4));
        assert_eq!(cfg.schedule, base.schedule);
        let bad = RecipeFlags {
            timesteps: Some(1),
            ..RecipeFlags::default()
        };
        bad.apply(&mut cfg);
        assert!(cfg.validate_hyperparameters().is_err());
    }
}
