//! `ddpm-lab` with no subcommand: the terminal lab. Flags preset it (dataset, model, device,
//! schedule...); settings are remembered between sessions.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::device::DeviceSpec;
use crate::schedule::BetaSchedule;
use crate::tui::settings::{config_dir, LabSettings, ModelPreset, TrainSettings};

/// Flags of the lab (the same dataset, model and device flags as `ddpm-lab train`).
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct LabArgs {
    /// Dataset: fashion_mnist, mnist, cifar10, shapes (built-in, offline) or a path.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Model size: tiny, small or blog (default: what the device trains quickly).
    #[arg(long)]
    pub model: Option<ModelPreset>,
    /// Device: cpu, cuda, cuda:N or metal.
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Beta schedule: linear, quadratic, cosine or sigmoid.
    #[arg(long)]
    pub schedule: Option<BetaSchedule>,
    /// Number of diffusion steps T.
    #[arg(long)]
    pub timesteps: Option<usize>,
    /// Images per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Optimisation steps of a run.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of training runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory holding run directories (default: ./runs).
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
    /// Draw images with unicode half-blocks even where the terminal has a graphics protocol.
    #[arg(long)]
    pub halfblocks: bool,
    /// Start with the remembered settings ignored (they are still saved on exit).
    #[arg(long)]
    pub fresh: bool,
}

impl LabArgs {
    /// Applies the flags on top of remembered settings.
    pub fn apply(&self, s: &mut LabSettings) -> anyhow::Result<()> {
        if let Some(d) = &self.dataset {
            s.dataset = d.clone();
        }
        if let Some(device) = self.device {
            if device != s.train.device && self.model.is_none() {
                // A new device gets the configuration it trains quickly.
                s.train = TrainSettings {
                    seed: s.train.seed,
                    ..TrainSettings::for_device(device)
                };
            }
            s.train.device = device;
        }
        if let Some(m) = self.model {
            s.train.model = m;
        }
        if let Some(x) = self.schedule {
            s.train.schedule = x;
        }
        if let Some(t) = self.timesteps {
            anyhow::ensure!(t >= 2, "--timesteps must be at least 2, got {t}");
            s.train.timesteps = t;
        }
        if let Some(b) = self.batch_size {
            anyhow::ensure!(b >= 1, "--batch-size must be at least 1");
            s.train.batch_size = b;
        }
        if let Some(lr) = self.lr {
            anyhow::ensure!(
                lr > 0.0 && lr.is_finite(),
                "--lr must be positive, got {lr}"
            );
            s.train.lr = lr;
        }
        if let Some(n) = self.steps {
            anyhow::ensure!(n >= 1, "--steps must be at least 1");
            s.train.steps = n;
        }
        if let Some(seed) = self.seed {
            s.train.seed = seed;
        }
        if let Some(r) = &self.runs_dir {
            s.runs_dir = Some(r.clone());
        }
        Ok(())
    }

    /// Remembered settings (unless `--fresh`) with the flags applied, and the config directory.
    pub fn settings(&self) -> anyhow::Result<(LabSettings, Option<PathBuf>)> {
        let dir = config_dir().ok();
        let mut s = match (&dir, self.fresh) {
            (Some(d), false) => LabSettings::load_from(d).unwrap_or_else(|e| {
                eprintln!("warning: {e}; using defaults");
                LabSettings::default()
            }),
            _ => LabSettings::default(),
        };
        self.apply(&mut s).context("invalid lab flags")?;
        Ok((s, dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_remembered_settings() {
        let mut s = LabSettings::default();
        let args = LabArgs {
            dataset: Some("shapes".into()),
            device: Some(DeviceSpec::Cuda(0)),
            steps: Some(30),
            ..LabArgs::default()
        };
        args.apply(&mut s).unwrap();
        assert_eq!(s.dataset, "shapes");
        assert_eq!(
            s.train.model,
            ModelPreset::Blog,
            "a GPU gets the blog's model"
        );
        assert_eq!(s.train.steps, 30);
        let bad = LabArgs {
            timesteps: Some(1),
            ..LabArgs::default()
        };
        assert!(bad
            .apply(&mut s)
            .unwrap_err()
            .to_string()
            .contains("--timesteps"));
    }
}
