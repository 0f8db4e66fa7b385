//! The configuration of a training run, saved as `config.json` in its run directory.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::diffusion::{LossKind, Objective};
use crate::model::UnetConfig;
use crate::sampler::SamplerKind;
use crate::schedule::{BetaSchedule, ScheduleTables};

/// Largest number of diffusion steps T: the schedule tables hold T values each, and DDPM
/// sampling runs the network T times and keeps T + 1 frames; 100 000 is 100× the largest T in
/// the DDPM papers (1000 to 4000).
pub const MAX_TIMESTEPS: usize = 100_000;

/// Largest side of the training images (the data loaders' limit too).
pub const MAX_IMAGE_SIZE: usize = crate::data::MAX_IMAGE_SIZE;

/// Largest batch: more than the largest built-in training set (60 000 images), so one batch is
/// at most about one epoch; what fits in memory is checked separately (`runs::budget`).
pub const MAX_BATCH_SIZE: usize = 65_536;

/// Largest number of preview images drawn during training (a grid in the lab).
pub const MAX_PREVIEW_COUNT: usize = 256;
/// The latest stop step a run may have: a billion steps, years of training on any machine,
/// so that a typo (`--epochs 100000000000`) is an error, not an ETA of 10⁸ hours.
pub const MAX_STEPS: usize = 1_000_000_000;
/// Refuses a stop step past [`MAX_STEPS`]; `what` names where it came from (a flag).
pub fn check_stop_step(steps: usize, what: &str) -> Result<()> {
    if steps > MAX_STEPS {
        bail!("{what} must be at most {MAX_STEPS}, got {steps}");
    }
    Ok(())
}

/// Steps with a preview before the first regular one (see [`TrainConfig::preview_due`]).
pub const EARLY_PREVIEWS: [usize; 3] = [25, 50, 100];

/// Everything that defines a training run; saved as `config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The UNet.
    pub model: UnetConfig,
    /// Beta schedule.
    pub schedule: BetaSchedule,
    /// The β of each step where they are not [`Self::schedule`]'s: the `betas` buffer of
    /// weights imported from a PyTorch wrapper that trained with another schedule
    /// (denoising-diffusion-pytorch's sigmoid, say), so that the run samples as they were
    /// trained. `None`: the schedule's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub betas: Option<Vec<f64>>,
    /// Number of diffusion steps T.
    pub timesteps: usize,
    /// Loss function.
    pub loss: LossKind,
    /// What the network predicts.
    pub objective: Objective,
    /// Images per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// The step at which training stops.
    pub steps: usize,
    /// Seed of initialisation, batches, timesteps and noise.
    pub seed: u64,
    /// Device to train on.
    pub device: DeviceSpec,
    /// Dataset name or path (for display and for reopening the run).
    pub dataset: String,
    /// The training images' fingerprint, recorded when the run starts (or first resumes, for
    /// a run saved before there was one, or imported): a resume on other images is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_fingerprint: Option<crate::data::DataFingerprint>,
    /// Side of the (square) training images.
    pub image_size: usize,
    /// Random horizontal flip of training images.
    pub flip: bool,
    /// EMA decay of the weights (`None` = no EMA).
    pub ema_decay: Option<f64>,
    /// Clip the global gradient norm to this value (`None` = no clipping).
    pub grad_clip: Option<f64>,
    /// Linear learning-rate warm-up over this many steps (0 = none).
    pub warmup_steps: usize,
    /// Cosine decay of the learning rate after the warm-up, down to 10 % at the stop step
    /// (`false`: constant, the blog's).
    pub lr_cosine_decay: bool,
    /// Warm the EMA up: the decay at step k is `min(decay, (1 + k) / (10 + k))`, so early EMA
    /// weights follow the model instead of lagging behind its random start.
    pub ema_warmup: bool,
    /// Min-SNR-γ loss weighting (Hang et al. 2023): each example's loss is weighted by
    /// `min(SNR_t, γ)` over `SNR_t` (noise objective), `SNR_t + 1` (v) or 1 (x0).
    pub min_snr_gamma: Option<f64>,
    /// Draw preview samples every N steps (0 = never).
    pub preview_every: usize,
    /// Number of preview images.
    pub preview_count: usize,
    /// DDIM steps used for previews.
    pub preview_steps: usize,
    /// Write a checkpoint every N steps (0 = none by steps; the end, the time limit and
    /// [`Self::checkpoint_interval_s`] still write theirs).
    pub checkpoint_every: usize,
    /// Also write one whenever this many seconds of training (pauses excluded) have passed
    /// since the last checkpoint, so a crash loses at most that much work whatever the pace
    /// (`None` = by steps only).
    pub checkpoint_interval_s: Option<f64>,
    /// Stop (with a checkpoint) after this many seconds of training in one session, pauses
    /// excluded; `None`: run to the stop step.
    pub time_limit_s: Option<f64>,
    /// The sampler the run's preset recommends (`sample` and `eval` use it unless told
    /// otherwise; `None`: DDPM, Algorithm 2).
    pub recommended_sampler: Option<SamplerKind>,
}

impl Default for TrainConfig {
    /// The blog's setup: linear schedule, T = 200, Huber loss, batch 128, Adam 1e-3.
    fn default() -> Self {
        Self {
            model: UnetConfig::blog(),
            schedule: BetaSchedule::Linear,
            betas: None,
            timesteps: 200,
            loss: LossKind::Huber,
            objective: Objective::Noise,
            batch_size: 128,
            lr: 1e-3,
            steps: 1000,
            seed: 0,
            device: DeviceSpec::Cpu,
            dataset: "fashion_mnist".into(),
            data_fingerprint: None,
            image_size: 28,
            flip: true,
            ema_decay: None,
            grad_clip: None,
            warmup_steps: 0,
            lr_cosine_decay: false,
            ema_warmup: false,
            min_snr_gamma: None,
            preview_every: 0,
            preview_count: 8,
            preview_steps: 20,
            checkpoint_every: 0,
            checkpoint_interval_s: None,
            time_limit_s: None,
            recommended_sampler: None,
        }
    }
}

/// The training settings a resume may change, the run's own from then on (`train --resume`
/// with `--lr`, `--ema`, `--grad-clip`, `--warmup`, `--lr-cosine`, `--ema-warmup`,
/// `--min-snr-gamma` or `--checkpoint-every`): how an imported run gets a training recipe of
/// its own. `None` (or `false`) keeps the run's; the rest of a run's configuration (model,
/// schedule, objective, batch, seed, data) stays as it was trained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeChanges {
    /// Adam's learning rate (lowered to fine-tune, say).
    pub lr: Option<f64>,
    /// EMA decay: a run without an EMA gets one, started from its weights.
    pub ema_decay: Option<f64>,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// Linear warm-up of the learning rate over the run's first N steps.
    pub warmup_steps: Option<usize>,
    /// Turn on the cosine decay of the learning rate to 10 % at the stop step.
    pub lr_cosine_decay: bool,
    /// Turn on the EMA's warm-up.
    pub ema_warmup: bool,
    /// Min-SNR-γ loss weighting.
    pub min_snr_gamma: Option<f64>,
    /// Checkpoint every N steps.
    pub checkpoint_every: Option<usize>,
}

impl ResumeChanges {
    /// Checks the values as the user's own, in the words of their flags, for a run resumed at
    /// `step`: a warm-up counts from the run's step 0, so one that is over by `step` would
    /// change nothing and is refused rather than ignored.
    pub fn check(&self, step: usize) -> Result<()> {
        let positive = |v: Option<f64>, flag: &str| match v {
            Some(x) if !(x.is_finite() && x > 0.0) => {
                bail!("{flag} must be a positive number, got {x}")
            }
            _ => Ok(()),
        };
        positive(self.lr, "--lr")?;
        positive(self.grad_clip, "--grad-clip")?;
        positive(self.min_snr_gamma, "--min-snr-gamma")?;
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                bail!("--ema must be in [0, 1), got {d}");
            }
        }
        if let Some(w) = self.warmup_steps {
            if w > 0 && w <= step {
                bail!(
                    "--warmup {w} counts from the run's step 0 and the run is at step {step}: it \
                     would change nothing (--lr sets the rate from now on)"
                );
            }
        }
        Ok(())
    }

    /// `cfg` with these changes.
    pub fn apply_to(&self, cfg: &mut TrainConfig) {
        if let Some(lr) = self.lr {
            cfg.lr = lr;
        }
        if let Some(d) = self.ema_decay {
            cfg.ema_decay = Some(d);
        }
        if let Some(c) = self.grad_clip {
            cfg.grad_clip = Some(c);
        }
        if let Some(w) = self.warmup_steps {
            cfg.warmup_steps = w;
        }
        cfg.lr_cosine_decay |= self.lr_cosine_decay;
        cfg.ema_warmup |= self.ema_warmup;
        if let Some(g) = self.min_snr_gamma {
            cfg.min_snr_gamma = Some(g);
        }
        if let Some(n) = self.checkpoint_every {
            cfg.checkpoint_every = n;
        }
    }

    /// One line per training setting that `now` (the configuration a resume goes on with)
    /// changes from `before` (the one the run was trained with), said as a resume's notice.
    pub fn notices(before: &TrainConfig, now: &TrainConfig) -> Vec<String> {
        let mut out = Vec::new();
        let mut changed = |what: String, was: String| out.push(format!("{what} now ({was})"));
        if now.lr != before.lr {
            changed(
                format!("Adam's learning rate is {:e}", now.lr),
                format!("it trained at {:e}", before.lr),
            );
        }
        match (before.ema_decay, now.ema_decay) {
            (None, Some(d)) => changed(
                format!("an EMA of the weights (decay {d}) starts from them"),
                "the run had none".into(),
            ),
            (Some(a), Some(b)) if a != b => {
                changed(format!("the EMA decay is {b}"), format!("it was {a}"))
            }
            _ => {}
        }
        let clip = |c: Option<f64>| c.map_or("none".to_string(), |c| format!("norm {c}"));
        if now.grad_clip != before.grad_clip {
            changed(
                format!("gradients are clipped at {}", clip(now.grad_clip)),
                format!("before: {}", clip(before.grad_clip)),
            );
        }
        if now.warmup_steps != before.warmup_steps {
            changed(
                format!(
                    "the learning rate warms up over the run's first {} steps",
                    now.warmup_steps
                ),
                format!("before: {}", before.warmup_steps),
            );
        }
        if now.lr_cosine_decay && !before.lr_cosine_decay {
            changed(
                format!(
                    "the learning rate decays on a cosine to 10 % at step {}",
                    now.steps
                ),
                "it was constant".into(),
            );
        }
        if now.ema_warmup && !before.ema_warmup {
            changed("the EMA warms up".into(), "it did not".into());
        }
        let snr = |g: Option<f64>| g.map_or("none".to_string(), |g| format!("γ = {g}"));
        if now.min_snr_gamma != before.min_snr_gamma {
            changed(
                format!(
                    "the loss is weighted by Min-SNR ({})",
                    snr(now.min_snr_gamma)
                ),
                format!("before: {}", snr(before.min_snr_gamma)),
            );
        }
        let every = |n: usize| match n {
            0 => "at the end and by time only".to_string(),
            n => format!("every {n} steps"),
        };
        if now.checkpoint_every != before.checkpoint_every {
            changed(
                format!("checkpoints are written {}", every(now.checkpoint_every)),
                format!("before: {}", every(before.checkpoint_every)),
            );
        }
        out
    }
}

impl TrainConfig {
    /// Checks values that would make training meaningless or crash.
    pub fn validate(&self) -> Result<()> {
        self.validate_hyperparameters()?;
        self.model
            .validate_for_images(self.model.channels, self.image_size, self.image_size)?;
        Ok(())
    }

    /// Like [`Self::validate`] but without the image size (for checks before data is loaded).
    pub fn validate_hyperparameters(&self) -> Result<()> {
        self.validate_limits()?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr must be a positive number, got {}", self.lr);
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                bail!("EMA decay must be in [0, 1), got {d}");
            }
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                bail!("gradient clip must be a positive number, got {c}");
            }
        }
        if let Some(s) = self.checkpoint_interval_s {
            if !(s.is_finite() && s > 0.0) {
                bail!("--checkpoint-interval must be a positive time, got {s} s");
            }
        }
        if let Some(g) = self.min_snr_gamma {
            if !(g.is_finite() && g > 0.0) {
                bail!("--min-snr-gamma must be a positive number, got {g}");
            }
        }
        if self.model.learned_variance || self.model.out_dim() != self.model.channels {
            // Seed 002's GaussianDiffusion refuses it too: the variance half needs the
            // variational-bound loss of improved DDPM, which ddpm-lab does not train.
            bail!(
                "a model with {} output channels for {}-channel images (--learned-variance) can be \
                 loaded and run (ddpm-lab forward) but not trained or sampled: the variance half \
                 needs improved DDPM's variational-bound loss",
                self.model.out_dim(),
                self.model.channels
            );
        }
        Ok(())
    }

    /// The bounds that keep a run's memory finite, whatever a `config.json` says: T, batch,
    /// image size (an upper bound only: a new run's size comes from its data), preview count
    /// and the model's widths (see [`crate::model::UnetConfig::validate`]). Checked before
    /// anything sized by them is allocated, by [`Self::validate_hyperparameters`] and before
    /// sampling a run.
    pub fn validate_limits(&self) -> Result<()> {
        if self.timesteps < 2 {
            bail!("--timesteps must be at least 2, got {}", self.timesteps);
        }
        if self.timesteps > MAX_TIMESTEPS {
            bail!(
                "--timesteps must be at most {MAX_TIMESTEPS}, got {}",
                self.timesteps
            );
        }
        if let Some(betas) = &self.betas {
            check_betas(betas, self.timesteps)?;
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.batch_size > MAX_BATCH_SIZE {
            bail!(
                "--batch-size must be at most {MAX_BATCH_SIZE}, got {}",
                self.batch_size
            );
        }
        if self.image_size > MAX_IMAGE_SIZE {
            bail!(
                "--image-size must be at most {MAX_IMAGE_SIZE} pixels, got {}",
                self.image_size
            );
        }
        // Images are grey or RGB: a run of other channels has no data to train or show.
        if !matches!(self.model.channels, 1 | 3) {
            bail!(
                "channels must be 1 (grey) or 3 (RGB), got {}",
                self.model.channels
            );
        }
        if self.preview_count > MAX_PREVIEW_COUNT {
            bail!(
                "preview_count must be at most {MAX_PREVIEW_COUNT}, got {}",
                self.preview_count
            );
        }
        self.model.validate()?;
        Ok(())
    }

    /// Whether training draws preview images after `step` steps: every `preview_every` steps,
    /// before the first of those at [`EARLY_PREVIEWS`] too, so shapes are seen emerging
    /// minutes earlier, and at the run's last step, so a run shorter than the interval still
    /// shows (and scores) what it learnt (previews are DDIM with `preview_steps` steps: cheap).
    pub fn preview_due(&self, step: usize) -> bool {
        let every = self.preview_every;
        every > 0
            && (step.is_multiple_of(every)
                || (step < every && EARLY_PREVIEWS.contains(&step))
                || step == self.steps)
    }

    /// The learning rate of the step after `step` steps: warm-up, then constant or cosine decay.
    pub fn learning_rate(&self, step: usize) -> f64 {
        let warm = self.warmup_steps;
        if warm > 0 && step < warm {
            return self.lr * (step + 1) as f64 / warm as f64;
        }
        if !self.lr_cosine_decay || self.steps <= warm {
            return self.lr;
        }
        let progress = ((step - warm) as f64 / (self.steps - warm) as f64).min(1.0);
        self.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
    }

    /// What a run of this configuration from `step` should be told about its learning rate:
    /// a warm-up that lasts as long as the run (or longer) never reaches the rate asked for.
    pub fn learning_rate_notices(&self, step: usize) -> Vec<String> {
        let warm = self.warmup_steps;
        if warm == 0 || self.steps == 0 || self.steps >= warm || step >= self.steps {
            return Vec::new();
        }
        vec![format!(
            "warm-up ({warm} steps) > run ({} steps): lr peaks at {:.1e}, not {:.0e}",
            self.steps,
            self.learning_rate(self.steps - 1),
            self.lr
        )]
    }

    /// What a run resumed at `step` with this configuration should be told where the course of
    /// its learning rate changes from `before` (the configuration it was trained with): a
    /// warm-up new with the resume that is not over yet, a cosine decay new or planned to
    /// another stop step. `None` where the rate goes on as it was (within 5 %).
    pub fn decay_change_notice(&self, before: &TrainConfig, step: usize) -> Option<String> {
        let warm_up_now = self.warmup_steps != before.warmup_steps && step < self.warmup_steps;
        let replanned =
            self.lr_cosine_decay && (self.steps != before.steps || !before.lr_cosine_decay);
        if !(warm_up_now || replanned) || step == 0 || step >= self.steps {
            return None;
        }
        let (was, now) = (before.learning_rate(step - 1), self.learning_rate(step));
        // A rate that barely moves (a run at its floor trained on by a step) is no news.
        if (now - was).abs() <= 0.05 * was.abs() {
            return None;
        }
        let course = if warm_up_now {
            format!(
                "the warm-up over the run's first {} steps applies from here",
                self.warmup_steps
            )
        } else if before.lr_cosine_decay {
            format!(
                "the cosine decay now runs to step {} (it ran to {})",
                self.steps, before.steps
            )
        } else {
            format!("the cosine decay to step {} starts now", self.steps)
        };
        Some(format!(
            "{course}: the lr goes from {was:.2e} at step {step} to {now:.2e} at step {}",
            step + 1
        ))
    }

    /// The schedule tables of this run.
    pub fn tables(&self) -> Result<ScheduleTables> {
        match &self.betas {
            Some(betas) => {
                check_betas(betas, self.timesteps)?;
                Ok(ScheduleTables::from_betas(self.schedule, betas.clone()))
            }
            None => Ok(ScheduleTables::new(self.schedule, self.timesteps)?),
        }
    }

    /// The schedule as said to a person: its name, or where the run has β of its own,
    /// `imported β` (see [`Self::betas`]).
    pub fn schedule_label(&self) -> String {
        schedule_label(self.schedule, self.betas.is_some())
    }
}

/// A schedule as said to a person: its name, or `imported β` where the run has β of its own
/// (`own_betas`) that the name no longer describes.
pub fn schedule_label(schedule: BetaSchedule, own_betas: bool) -> String {
    if own_betas {
        "imported β".to_string()
    } else {
        schedule.name().to_string()
    }
}

/// Refuses β that no chain can be walked with: one per step of `timesteps`, each finite and
/// strictly between 0 and 1.
pub fn check_betas(betas: &[f64], timesteps: usize) -> Result<()> {
    if betas.len() != timesteps {
        bail!(
            "betas holds {} values for T = {timesteps}: one per step is needed",
            betas.len()
        );
    }
    if let Some((t, b)) = betas
        .iter()
        .enumerate()
        .find(|(_, b)| !(b.is_finite() && **b > 0.0 && **b < 1.0))
    {
        bail!(
            "betas must each be strictly between 0 and 1, got {b} at step {}",
            t + 1
        );
    }
    Ok(())
}

/// Fields every `config.json` has held since the first release. A file without one is refused
/// rather than completed with a default the run may never have used (a missing `timesteps`
/// once became T = 200 for a run trained with T = 50). Fields added later have defaults that
/// reproduce the behaviour of runs written before them.
const REQUIRED_FIELDS: &[&str] = &[
    "model",
    "schedule",
    "timesteps",
    "loss",
    "objective",
    "batch_size",
    "lr",
    "steps",
    "seed",
    "device",
    "dataset",
    "image_size",
    "flip",
    "ema_decay",
    "grad_clip",
    "warmup_steps",
];

/// Fields of `model` required likewise.
const REQUIRED_MODEL_FIELDS: &[&str] = &[
    "dim",
    "dim_mults",
    "channels",
    "block",
    "resnet_block_groups",
    "convnext_mult",
];

/// Parses a run's `config.json` text, refusing one that lacks a field (see
/// [`REQUIRED_FIELDS`]) or holds a value out of range; `what` names the file in errors.
pub fn parse_config(text: &str, what: &str) -> Result<TrainConfig> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{what} is not valid JSON ({e})"))?;
    let Some(obj) = value.as_object() else {
        bail!("{what} is not a run configuration (expected a JSON object)");
    };
    if let Some(f) = REQUIRED_FIELDS.iter().find(|f| !obj.contains_key(**f)) {
        bail!("{what} lacks \"{f}\": refusing to guess it (the run may have used another value)");
    }
    let model = obj["model"].as_object();
    if let Some(f) = REQUIRED_MODEL_FIELDS
        .iter()
        .find(|f| !model.is_some_and(|m| m.contains_key(**f)))
    {
        bail!("{what} lacks \"model.{f}\": refusing to guess it (the run may have used another value)");
    }
    let cfg: TrainConfig = serde_json::from_value(value)
        .map_err(|e| anyhow::anyhow!("{what} is not a valid run config ({e})"))?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("{what}: {e:#}"))?;
    Ok(cfg)
}

/// Reads and checks a run's `config.json` (see [`parse_config`]).
pub fn read_config_file(path: &std::path::Path) -> Result<TrainConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {} ({e})", path.display()))?;
    parse_config(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's own β replace its schedule's, and β no chain can walk are refused.
    #[test]
    fn a_runs_own_betas_are_its_tables_and_bad_ones_are_refused() {
        let own: Vec<f64> = (1..=4).map(|t| 0.1 * t as f64).collect();
        let cfg = TrainConfig {
            timesteps: 4,
            betas: Some(own.clone()),
            ..TrainConfig::default()
        };
        cfg.validate_limits().unwrap();
        let tables = cfg.tables().unwrap();
        assert_eq!(tables.betas, own);
        assert!((tables.alphas_cumprod[1] - 0.9 * 0.8).abs() < 1e-12);
        assert_eq!(cfg.schedule_label(), "imported β");
        for (betas, says) in [
            (vec![0.1, 0.2, 0.3], "betas holds 3 values for T = 4"),
            (
                vec![0.1, 0.2, 1.0, 0.3],
                "strictly between 0 and 1, got 1 at step 3",
            ),
            (vec![0.0, 0.2, 0.3, 0.3], "got 0 at step 1"),
            (vec![0.1, f64::NAN, 0.3, 0.3], "got NaN at step 2"),
        ] {
            let bad = TrainConfig {
                betas: Some(betas),
                ..cfg.clone()
            };
            let e = bad.validate_limits().unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
            assert!(bad.tables().is_err());
        }
    }

    /// A config.json of other channels than grey or RGB is refused as the run's (the file
    /// then named by its reader), not left to the data loader.
    #[test]
    fn a_run_has_grey_or_rgb_images() {
        let mut cfg = TrainConfig::default();
        for ok in [1, 3] {
            cfg.model.channels = ok;
            cfg.validate_limits().unwrap();
        }
        cfg.model.channels = 7;
        let e = cfg.validate_limits().unwrap_err().to_string();
        assert_eq!(e, "channels must be 1 (grey) or 3 (RGB), got 7");
    }

    /// A warm-up given with a resume before it is over changes the rate's course there, and
    /// says so as the warm-up's doing (not the cosine decay's, new with it).
    #[test]
    fn a_warm_up_new_with_a_resume_says_the_rate_drops() {
        let before = TrainConfig {
            lr: 1e-3,
            steps: 40,
            ..TrainConfig::default()
        };
        let now = TrainConfig {
            steps: 60,
            warmup_steps: 50,
            lr_cosine_decay: true,
            ..before.clone()
        };
        assert_eq!(
            now.decay_change_notice(&before, 40).as_deref(),
            Some("the warm-up over the run's first 50 steps applies from here: the lr goes from 1.00e-3 at step 40 to 8.20e-4 at step 41")
        );
        // Without the warm-up: the cosine's doing.
        let cosine = TrainConfig {
            warmup_steps: 0,
            ..now.clone()
        };
        let said = cosine.decay_change_notice(&before, 40).unwrap_or_default();
        assert!(
            said.starts_with("the cosine decay to step 60 starts now"),
            "{said}"
        );
    }

    /// A warm-up longer than the run is said, with the rate the run does reach.
    #[test]
    fn a_warm_up_that_outlasts_the_run_is_said() {
        let cfg = TrainConfig {
            lr: 2e-3,
            warmup_steps: 50,
            steps: 20,
            ..TrainConfig::default()
        };
        assert_eq!(
            cfg.learning_rate_notices(0),
            ["warm-up (50 steps) > run (20 steps): lr peaks at 8.0e-4, not 2e-3"]
        );
        assert!(
            cfg.learning_rate_notices(20).is_empty(),
            "nothing left to train"
        );
        for steps in [50, 570] {
            let long = TrainConfig {
                steps,
                ..cfg.clone()
            };
            assert!(long.learning_rate_notices(0).is_empty(), "{steps}");
        }
    }

    #[test]
    fn a_resume_that_moves_the_stop_step_says_where_the_decay_changes_course() {
        let before = TrainConfig {
            lr: 2e-3,
            steps: 500,
            warmup_steps: 50,
            lr_cosine_decay: true,
            ..TrainConfig::default()
        };
        let longer = TrainConfig {
            steps: 1000,
            ..before.clone()
        };
        let said = longer.decay_change_notice(&before, 133).unwrap();
        let (was, now) = (before.learning_rate(132), longer.learning_rate(133));
        assert!(
            now > was,
            "a later stop step raises the rate: {was} → {now}"
        );
        assert_eq!(
            said,
            format!("the cosine decay now runs to step 1000 (it ran to 500): the lr goes from {was:.2e} at step 133 to {now:.2e} at step 134")
        );
        // The same stop step, a constant rate, or nothing left to train: nothing to say.
        assert_eq!(before.decay_change_notice(&before, 133), None);
        let constant = TrainConfig {
            lr_cosine_decay: false,
            ..longer.clone()
        };
        assert_eq!(constant.decay_change_notice(&before, 133), None);
        assert_eq!(longer.decay_change_notice(&before, 1000), None);
        // A run at its floor trained on by a step: the rate barely moves, no news.
        let one_more = TrainConfig {
            steps: 501,
            ..before.clone()
        };
        assert_eq!(one_more.decay_change_notice(&before, 500), None);
    }

    #[test]
    fn previews_come_early_then_every_n_steps() {
        let at = |every: usize| -> Vec<usize> {
            let cfg = TrainConfig {
                preview_every: every,
                steps: 10_000,
                ..TrainConfig::default()
            };
            (1..=700).filter(|&s| cfg.preview_due(s)).collect()
        };
        assert_eq!(at(200), vec![25, 50, 100, 200, 400, 600]);
        assert_eq!(
            at(60),
            vec![25, 50, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 660]
        );
        assert_eq!(
            at(20).len(),
            35,
            "no extra previews when they come often anyway"
        );
        assert!(at(0).is_empty(), "never means never");
    }

    #[test]
    fn a_run_shorter_than_its_preview_interval_previews_its_last_step() {
        let due = |steps: usize, every: usize| -> Vec<usize> {
            let cfg = TrainConfig {
                preview_every: every,
                steps,
                ..TrainConfig::default()
            };
            (1..=steps).filter(|&s| cfg.preview_due(s)).collect()
        };
        assert_eq!(due(20, 200), vec![20]);
        assert_eq!(due(70, 200), vec![25, 50, 70]);
        assert_eq!(due(450, 200), vec![25, 50, 100, 200, 400, 450]);
        assert_eq!(
            due(400, 200),
            vec![25, 50, 100, 200, 400],
            "once at the end"
        );
        assert!(due(20, 0).is_empty(), "never still means never");
    }

    #[test]
    fn a_saved_config_reads_back() {
        let cfg = TrainConfig {
            timesteps: 50,
            ..TrainConfig::default()
        };
        let text = serde_json::to_string_pretty(&cfg).unwrap();
        assert_eq!(parse_config(&text, "config.json").unwrap(), cfg);
    }

    #[test]
    fn missing_fields_and_bad_values_are_refused_by_name() {
        let cfg = TrainConfig::default();
        let mut v = serde_json::to_value(&cfg).unwrap();
        v.as_object_mut().unwrap().remove("timesteps");
        let err = parse_config(&v.to_string(), "run/config.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("run/config.json lacks \"timesteps\""), "{err}");
        let err = parse_config("{}", "c.json").unwrap_err().to_string();
        assert!(err.contains("lacks \"model\""), "{err}");
        let mut v = serde_json::to_value(&cfg).unwrap();
        v["model"].as_object_mut().unwrap().remove("dim");
        assert!(parse_config(&v.to_string(), "c")
            .unwrap_err()
            .to_string()
            .contains("model.dim"));
        let mut v = serde_json::to_value(&cfg).unwrap();
        v["timesteps"] = serde_json::json!(1);
        assert!(parse_config(&v.to_string(), "c").is_err());
        assert!(parse_config("[1]", "c")
            .unwrap_err()
            .to_string()
            .contains("JSON object"));
        assert!(parse_config("{", "c")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
    }
}
