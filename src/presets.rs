//! Training recipes by name, one place for the CLI (`ddpm-lab train --preset`) and the lab:
//!
//! - `quick`: the lab's CPU default, chosen by measurement (`scripts/quality-recipes.sh`, the
//!   README's quality table) as the recipe with the best samples after 10 minutes of training on
//!   a 2-core CPU: a UNet with ResNet blocks and attention only at the lowest resolution, the
//!   cosine schedule with T = 500, the v objective with min-SNR-5 weighting, batch 32 (3.7
//!   times the steps of batch 128 in the same time), Adam 2e-3 with warm-up and cosine decay, a
//!   warmed-up EMA, and DDIM-100 sampling.
//! - `blog`: the blog's exact setup (its UNet, linear schedule, T = 200, Huber loss, batch 128,
//!   Adam 1e-3, DDPM sampling).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::diffusion::{LossKind, Objective};
use crate::model::{BlockKind, UnetConfig};
use crate::sampler::SamplerKind;
use crate::schedule::BetaSchedule;
use crate::store::TrainConfig;

/// A named training recipe: model and hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The best samples in 10 minutes on a 2-core CPU (the lab's CPU default).
    Quick,
    /// The blog post's setup, unchanged.
    Blog,
}

impl Preset {
    /// All presets.
    pub const ALL: [Preset; 2] = [Preset::Quick, Preset::Blog];

    /// Lower-case name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Quick => "quick",
            Preset::Blog => "blog",
        }
    }

    /// Epochs this recipe trains for, where it is counted in epochs of the data (the blog's
    /// 5); `None` where its configuration names a stop step (`quick`).
    pub fn epochs(self) -> Option<usize> {
        match self {
            Preset::Quick => None,
            Preset::Blog => Some(BLOG_EPOCHS),
        }
    }

    /// The UNet of this recipe for grey images (`channels` replaces 1 for other data).
    pub fn unet(self) -> UnetConfig {
        match self {
            // Self-conditioning (seed 002): at equal training time (10 min, 0.88× the steps)
            // it scored better than without on three seeds (README, Sample quality).
            Preset::Quick => UnetConfig {
                dim: 16,
                dim_mults: vec![1, 2, 4],
                block: BlockKind::Resnet,
                resnet_block_groups: 8,
                stage_attention: false,
                self_condition: true,
                ..UnetConfig::default()
            },
            Preset::Blog => UnetConfig::blog(),
        }
    }

    /// The whole recipe for Fashion-MNIST (28×28 grey). `steps` is where training stops; for
    /// `quick` it is about what a 2-core CPU trains in 10 minutes, and `time_limit_s` stops it
    /// there on a slower machine.
    pub fn config(self) -> TrainConfig {
        match self {
            Preset::Quick => TrainConfig {
                model: self.unet(),
                schedule: BetaSchedule::Cosine,
                // At the same 2100 steps T = 500 drew closer to real images than 1000 on all
                // four training seeds tried (README, Sample quality).
                timesteps: QUICK_TIMESTEPS,
                loss: LossKind::L2,
                objective: Objective::V,
                // At equal training time, batch 32 (3.7× the steps of batch 128) scored far
                // better than 128 and 64, and a little better than 16 (README, Sample quality).
                batch_size: QUICK_BATCH,
                lr: 2e-3,
                steps: QUICK_STEPS,
                warmup_steps: 50,
                lr_cosine_decay: true,
                ema_decay: Some(0.995),
                ema_warmup: true,
                min_snr_gamma: Some(5.0),
                grad_clip: Some(1.0),
                time_limit_s: Some(QUICK_MINUTES * 60.0),
                // DDIM 100 recognised 1.2 points more than 50 and drew closer to real images
                // on all four seeds tried, at twice the sampling time (a few seconds for the
                // Sample screen's 16; the previews draw with their own 20 steps).
                recommended_sampler: Some(SamplerKind::Ddim {
                    steps: QUICK_SAMPLER_STEPS,
                    eta: 0.0,
                }),
                ..TrainConfig::default()
            },
            Preset::Blog => TrainConfig {
                model: self.unet(),
                schedule: BetaSchedule::Linear,
                timesteps: 200,
                loss: LossKind::Huber,
                objective: Objective::Noise,
                batch_size: 128,
                lr: 1e-3,
                ..TrainConfig::default()
            },
        }
    }
}

/// The training seed of a run that names none, in the CLI and the lab alike (so `train
/// --preset quick` is the lab's default run).
pub const DEFAULT_SEED: u64 = 0;

/// Epochs the blog trains for (its 2 345 steps are 5 epochs of Fashion-MNIST's 60 000 images
/// at batch 128): where the `blog` recipe stops unless told otherwise.
pub const BLOG_EPOCHS: usize = 5;

/// Minutes of training the `quick` recipe is made for.
pub const QUICK_MINUTES: f64 = 10.0;
/// Images per step of the `quick` recipe.
pub const QUICK_BATCH: usize = 32;
/// Steps of the `quick` recipe: what the 2-core CPU it was measured on trains in
/// [`QUICK_MINUTES`] at [`QUICK_BATCH`] (its learning rate decays to 10 % there): 3.7× the
/// 570 steps of batch 128 in the same time.
pub const QUICK_STEPS: usize = 2100;
/// Diffusion steps T of the `quick` recipe (1000 before 2026-12-07).
pub const QUICK_TIMESTEPS: usize = 500;
/// DDIM steps the `quick` recipe's runs are sampled with (50 before 2026-12-07).
pub const QUICK_SAMPLER_STEPS: usize = 100;
/// The `quick` recipe's steps without self-conditioning (its steps before 2026-12-03).
pub const QUICK_STEPS_WITHOUT_SELF_CONDITIONING: usize = 650;

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown preset '{s}' (expected quick or blog)"))
    }
}

/// Size presets of the UNet, the same words in the lab and in `ddpm-lab train --model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelPreset {
    /// A very small UNet (dim 8, three stages of ResNet blocks, attention in the middle only),
    /// the quickest to train on a CPU.
    #[default]
    Tiny,
    /// A mid-sized UNet (dim 16, three stages): between the tiny one and the blog's.
    Small,
    /// The `quick` recipe's UNet: dim 16, three stages, ResNet blocks, attention only in the
    /// middle (the fastest to good samples on a CPU).
    Quick,
    /// The blog's `Unet(dim=28, channels=1, dim_mults=(1,2,4))` with ConvNeXt blocks.
    Blog,
    /// Today's blog UNet (seed 001): `Unet(dim=28, channels=1, dim_mults=(1,2,4))`.
    Current,
    /// [`Self::Current`] with self-conditioning (seed 002's training and sampling).
    #[serde(rename = "current-sc")]
    CurrentSc,
    /// lucidrains' released `Unet(dim=28, channels=1, dim_mults=(1,2,4))`
    /// (denoising-diffusion-pytorch 2.x).
    Lucidrains,
}

impl ModelPreset {
    /// All presets, smallest first.
    pub const ALL: [ModelPreset; 7] = [
        ModelPreset::Tiny,
        ModelPreset::Small,
        ModelPreset::Quick,
        ModelPreset::Blog,
        ModelPreset::Current,
        ModelPreset::CurrentSc,
        ModelPreset::Lucidrains,
    ];

    /// The preset whose UNet `model` is (for its channel count), if any.
    pub fn of_unet(model: &UnetConfig) -> Option<ModelPreset> {
        ModelPreset::ALL
            .into_iter()
            .find(|p| p.unet(model.channels) == *model)
    }

    /// Lower-case name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            ModelPreset::Tiny => "tiny",
            ModelPreset::Small => "small",
            ModelPreset::Quick => "quick",
            ModelPreset::Blog => "blog",
            ModelPreset::Current => "current",
            ModelPreset::CurrentSc => "current-sc",
            ModelPreset::Lucidrains => "lucidrains",
        }
    }

    /// The UNet of this preset for images with `channels` channels.
    pub fn unet(self, channels: usize) -> UnetConfig {
        let base = match self {
            // Three stages of ResNet blocks with attention in the middle only, so that its
            // full attention runs at a quarter of the image side: at 28×28 it trains about
            // 2.5× as fast as `quick` (a two-stage model attends at 14×14 and was slower
            // than `quick`).
            ModelPreset::Tiny => UnetConfig {
                dim_mults: vec![1, 2, 4],
                block: crate::model::BlockKind::Resnet,
                stage_attention: false,
                ..UnetConfig::tiny()
            },
            ModelPreset::Small => UnetConfig {
                dim: 16,
                dim_mults: vec![1, 2, 4],
                ..UnetConfig::default()
            },
            ModelPreset::Quick => Preset::Quick.unet(),
            ModelPreset::Blog => UnetConfig::blog(),
            ModelPreset::Current => UnetConfig::current(),
            ModelPreset::CurrentSc => UnetConfig {
                self_condition: true,
                ..UnetConfig::current()
            },
            ModelPreset::Lucidrains => UnetConfig::lucidrains(),
        };
        UnetConfig { channels, ..base }
    }

    /// One-line description of the architecture.
    pub fn describe(self) -> String {
        describe_unet(&self.unet(1))
    }

    /// What the preset's name does not already say, in as few columns as it can (see
    /// [`describe_unet_compact`]): the current UNets' names say their architecture and
    /// self-conditioning, so only their shape is left.
    pub fn describe_compact(self) -> String {
        let c = self.unet(1);
        match self {
            ModelPreset::Current | ModelPreset::CurrentSc | ModelPreset::Lucidrains => {
                format!("{}×({})", c.dim, dim_mults(&c))
            }
            _ => describe_unet_compact(&c),
        }
    }

    /// The preset a device trains quickly: the quick recipe's on a CPU, the blog's on a GPU.
    pub fn for_device(device: DeviceSpec) -> Self {
        match device {
            DeviceSpec::Cpu => ModelPreset::Quick,
            _ => ModelPreset::Blog,
        }
    }
}

/// `dim 28 ×(1,2,4)` (the blog's first UNet with ConvNeXt blocks unless `res` is named;
/// `current` for today's UNet, `+sc` with self-conditioning, `+var` with a learned variance).
pub fn describe_unet(c: &UnetConfig) -> String {
    format!("dim {} ×{}", c.dim, unet_shape_and_options(c))
}

/// [`describe_unet`] in as few columns as it can (`16×(1,2,4) res +sc`), for the lab's
/// configuration panel.
pub fn describe_unet_compact(c: &UnetConfig) -> String {
    format!("{}×{}", c.dim, unet_shape_and_options(c))
}

/// What both descriptions share after the width: `(1,2,4) res +sc`.
fn unet_shape_and_options(c: &UnetConfig) -> String {
    let block = match (c.arch, c.block) {
        (crate::model::Arch::Current, _) => " current",
        (crate::model::Arch::Lucidrains, _) => " lucidrains",
        (_, crate::model::BlockKind::Convnext) => "",
        (_, crate::model::BlockKind::Resnet) => " res",
    };
    let sc = if c.self_condition { " +sc" } else { "" };
    let var = if c.learned_variance { " +var" } else { "" };
    format!("({}){block}{sc}{var}", dim_mults(c))
}

/// The width multipliers, `1,2,4`.
fn dim_mults(c: &UnetConfig) -> String {
    let mults: Vec<String> = c.dim_mults.iter().map(|m| m.to_string()).collect();
    mults.join(",")
}

impl fmt::Display for ModelPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelPreset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ModelPreset::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown model size '{s}' (expected tiny, small, quick, blog, current, current-sc or lucidrains)"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_named() {
        for p in Preset::ALL {
            p.config().validate().unwrap();
            assert_eq!(p.name().parse::<Preset>(), Ok(p));
        }
        assert!("fast".parse::<Preset>().is_err());
    }

    #[test]
    fn model_presets_build_and_parse() {
        for m in ModelPreset::ALL {
            m.unet(1).validate().unwrap();
            assert_eq!(m.name().parse::<ModelPreset>(), Ok(m));
            // Each preset's UNet names it back, at either channel count (no two alike).
            assert_eq!(ModelPreset::of_unet(&m.unet(1)), Some(m));
            assert_eq!(ModelPreset::of_unet(&m.unet(3)), Some(m));
        }
        let custom = UnetConfig {
            dim: 12,
            ..ModelPreset::Quick.unet(1)
        };
        assert_eq!(ModelPreset::of_unet(&custom), None);
        assert_eq!(ModelPreset::Current.unet(1), UnetConfig::current());
        assert!(ModelPreset::CurrentSc.unet(3).self_condition);
        assert_eq!(
            ModelPreset::CurrentSc.describe(),
            "dim 28 ×(1,2,4) current +sc"
        );
        assert_eq!(ModelPreset::Quick.describe_compact(), "16×(1,2,4) res +sc");
        // The smallest is also the quickest at 28×28: its full attention runs at 7×7 (two
        // stages put it at 14×14, and made `tiny` slower than `quick`), none in the stages.
        let tiny = ModelPreset::Tiny.unet(1);
        assert_eq!((tiny.dim, tiny.downsamplings()), (8, 2));
        assert!(!tiny.stage_attention);
        assert!(
            crate::runs::budget::param_count(&tiny)
                < crate::runs::budget::param_count(&ModelPreset::Quick.unet(1)) / 3
        );
        assert_eq!(
            serde_json::to_string(&ModelPreset::CurrentSc).unwrap(),
            "\"current-sc\""
        );
    }

    #[test]
    fn blog_is_the_post_unchanged() {
        let b = Preset::Blog.config();
        assert_eq!(b.model, UnetConfig::blog());
        assert_eq!((b.schedule, b.timesteps), (BetaSchedule::Linear, 200));
        assert_eq!((b.loss, b.objective), (LossKind::Huber, Objective::Noise));
        assert_eq!((b.batch_size, b.lr), (128, 1e-3));
        assert_eq!(b.ema_decay, None);
        assert_eq!(b.recommended_sampler, None);
        assert!(!b.lr_cosine_decay && !b.ema_warmup && b.min_snr_gamma.is_none());
    }
}
