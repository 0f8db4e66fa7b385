//! Lab settings remembered between sessions: a JSON file in the platform's config directory
//! (`DDPM_LAB_CONFIG_DIR` overrides the directory, which keeps tests out of the real home).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::diffusion::{LossKind, Objective};
use crate::model::UnetConfig;
use crate::presets::Preset;
use crate::sampler::SamplerKind;
use crate::schedule::BetaSchedule;
use crate::store::TrainConfig;

/// Environment variable that replaces the config directory (used by tests and packagers).
pub const CONFIG_DIR_ENV: &str = "DDPM_LAB_CONFIG_DIR";
/// File name of the settings inside the config directory.
pub const SETTINGS_FILE: &str = "settings.json";

/// Datasets the Data screen cycles through (any other path can be given with `--dataset`).
pub const BUILTIN_DATASETS: [&str; 4] = ["shapes", "fashion_mnist", "mnist", "cifar10"];

pub use crate::presets::{describe_unet, ModelPreset};

/// How the Compare screen shares the machine between its four runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    /// One schedule after the other.
    #[default]
    InTurn,
    /// Alternate between the runs every few steps, so the curves grow together.
    RoundRobin,
}

impl CompareMode {
    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            CompareMode::InTurn => "in turn",
            CompareMode::RoundRobin => "round-robin",
        }
    }
}

/// Everything the Train screen lets the user edit before a run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    /// Beta schedule.
    pub schedule: BetaSchedule,
    /// Number of diffusion steps T.
    pub timesteps: usize,
    /// Training loss.
    pub loss: LossKind,
    /// Prediction target.
    pub objective: Objective,
    /// UNet size.
    pub model: ModelPreset,
    /// An explicit UNet (from model flags) that replaces the preset.
    pub custom_model: Option<UnetConfig>,
    /// Images per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Optimisation steps of a run.
    pub steps: usize,
    /// Where to train.
    pub device: DeviceSpec,
    /// Seed of the run.
    pub seed: u64,
    /// Steps between preview samples (0 = never).
    pub preview_every: usize,
    /// EMA decay (`None` = no EMA).
    pub ema_decay: Option<f64>,
    /// Warm the EMA up (see [`TrainConfig::ema_warmup`]).
    pub ema_warmup: bool,
    /// Linear learning-rate warm-up steps.
    pub warmup_steps: usize,
    /// Cosine learning-rate decay to the stop step.
    pub lr_cosine_decay: bool,
    /// Min-SNR-γ loss weighting.
    pub min_snr_gamma: Option<f64>,
    /// Gradient-norm clipping.
    pub grad_clip: Option<f64>,
    /// Training-time budget of one press of space, in seconds (`None` = to the stop step).
    pub time_limit_s: Option<f64>,
    /// The sampler the recipe recommends (the Sample screen starts with it).
    pub recommended_sampler: Option<SamplerKind>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self::for_device(DeviceSpec::Cpu)
    }
}

impl TrainSettings {
    /// Settings a device trains quickly: the `quick` recipe on a CPU, the blog's on a GPU.
    pub fn for_device(device: DeviceSpec) -> Self {
        let base = match ModelPreset::for_device(device) {
            // 5 epochs of Fashion-MNIST, as the blog trains.
            ModelPreset::Blog => Self {
                steps: 2345,
                ..Self::from_recipe(&Preset::Blog.config(), 200)
            },
            _ => Self::from_recipe(&Preset::Quick.config(), 200),
        };
        Self {
            device,
            seed: 42,
            ..base
        }
    }

    /// The lab's settings for a recipe's configuration (`preview_every`: steps between
    /// previews). The model preset is the one whose UNet the recipe trains, else custom.
    pub fn from_recipe(cfg: &TrainConfig, preview_every: usize) -> Self {
        let preset = ModelPreset::ALL
            .into_iter()
            .find(|p| p.unet(cfg.model.channels) == cfg.model);
        Self {
            schedule: cfg.schedule,
            timesteps: cfg.timesteps,
            loss: cfg.loss,
            objective: cfg.objective,
            model: preset.unwrap_or_default(),
            custom_model: if preset.is_none() {
                Some(cfg.model.clone())
            } else {
                None
            },
            batch_size: cfg.batch_size,
            lr: cfg.lr,
            steps: cfg.steps,
            device: cfg.device,
            seed: cfg.seed,
            preview_every,
            ema_decay: cfg.ema_decay,
            ema_warmup: cfg.ema_warmup,
            warmup_steps: cfg.warmup_steps,
            lr_cosine_decay: cfg.lr_cosine_decay,
            min_snr_gamma: cfg.min_snr_gamma,
            grad_clip: cfg.grad_clip,
            time_limit_s: cfg.time_limit_s,
            recommended_sampler: cfg.recommended_sampler,
        }
    }

    /// The recipe part of a training configuration (everything but data, previews and
    /// checkpoints), for images with `channels` channels.
    pub fn recipe(&self, channels: usize) -> TrainConfig {
        TrainConfig {
            model: self.unet(channels),
            schedule: self.schedule,
            timesteps: self.timesteps,
            loss: self.loss,
            objective: self.objective,
            batch_size: self.batch_size,
            lr: self.lr,
            steps: self.steps,
            seed: self.seed,
            device: self.device,
            ema_decay: self.ema_decay,
            ema_warmup: self.ema_warmup,
            warmup_steps: self.warmup_steps,
            lr_cosine_decay: self.lr_cosine_decay,
            min_snr_gamma: self.min_snr_gamma,
            grad_clip: self.grad_clip,
            time_limit_s: self.time_limit_s,
            recommended_sampler: self.recommended_sampler,
            preview_every: self.preview_every,
            ..TrainConfig::default()
        }
    }

    /// The UNet to train for images with `channels` channels.
    pub fn unet(&self, channels: usize) -> UnetConfig {
        match &self.custom_model {
            Some(c) => UnetConfig {
                channels,
                ..c.clone()
            },
            None => self.model.unet(channels),
        }
    }

    /// Name of the model shown in the lab.
    pub fn model_name(&self) -> String {
        match &self.custom_model {
            Some(c) => format!("custom {}", describe_unet(c)),
            None => self.model.name().to_string(),
        }
    }

    /// The blog's configuration: its UNet, T = 200, linear schedule, Huber loss, batch 128,
    /// lr 1e-3, 5 epochs of Fashion-MNIST (469 steps each). Keeps device and seed.
    pub fn blog(&self) -> Self {
        Self {
            steps: 5 * 469,
            device: self.device,
            seed: self.seed,
            ..Self::from_recipe(&Preset::Blog.config(), 469)
        }
    }

    /// The quick recipe (the CPU default). Keeps device and seed.
    pub fn quick(&self) -> Self {
        Self {
            device: self.device,
            seed: self.seed,
            ..Self::from_recipe(&Preset::Quick.config(), 200)
        }
    }
}

/// Sampling settings of the Sample screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SampleSettings {
    /// Number of images drawn.
    pub n: usize,
    /// Use DDIM instead of ancestral DDPM sampling.
    pub ddim: bool,
    /// DDIM steps.
    pub ddim_steps: usize,
    /// DDIM eta (0 = deterministic).
    pub eta: f64,
    /// Seed of the initial noise.
    pub seed: u64,
}

impl SampleSettings {
    /// These settings with the sampler a recipe recommends (DDIM with its steps and eta), or
    /// DDPM when it recommends none.
    pub fn with_recommended(&self, recommended: Option<SamplerKind>) -> Self {
        match recommended {
            Some(SamplerKind::Ddim { steps, eta }) => Self {
                ddim: true,
                ddim_steps: steps,
                eta,
                ..self.clone()
            },
            _ => Self {
                ddim: false,
                ..self.clone()
            },
        }
    }
}

impl Default for SampleSettings {
    fn default() -> Self {
        Self {
            n: 16,
            ddim: false,
            ddim_steps: 50,
            eta: 0.0,
            seed: 0,
        }
    }
}

/// Everything remembered between sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LabSettings {
    /// Dataset name or path.
    pub dataset: String,
    /// Train screen configuration.
    pub train: TrainSettings,
    /// Sample screen configuration.
    pub sample: SampleSettings,
    /// Compare screen scheduling.
    pub compare_mode: CompareMode,
    /// Steps each Compare run trains.
    pub compare_steps: usize,
    /// Directory holding run directories (None = `runs` in the working directory).
    pub runs_dir: Option<PathBuf>,
}

impl Default for LabSettings {
    fn default() -> Self {
        Self {
            dataset: "fashion_mnist".to_string(),
            train: TrainSettings::default(),
            sample: SampleSettings::default(),
            compare_mode: CompareMode::InTurn,
            compare_steps: 500,
            runs_dir: None,
        }
    }
}

/// Errors reading or writing the settings file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No config directory could be found (no `$HOME` and no override).
    #[error("no config directory: set {CONFIG_DIR_ENV} or HOME")]
    NoConfigDir,
    /// File-system error.
    #[error("settings file {path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid settings JSON.
    #[error("settings file {path} is not valid: {source}")]
    Parse {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
}

/// Directory of the lab's config: `$DDPM_LAB_CONFIG_DIR`, else `<config_dir>/ddpm-lab`.
pub fn config_dir() -> Result<PathBuf, SettingsError> {
    if let Some(dir) = std::env::var_os(CONFIG_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir()
        .map(|d| d.join("ddpm-lab"))
        .ok_or(SettingsError::NoConfigDir)
}

impl LabSettings {
    /// Reads `dir/settings.json`; a missing file gives the defaults.
    pub fn load_from(dir: &Path) -> Result<Self, SettingsError> {
        let path = dir.join(SETTINGS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| SettingsError::Parse {
                path: path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(SettingsError::Io { path, source }),
        }
    }

    /// Writes `dir/settings.json` (creating `dir`), atomically via a temporary file.
    pub fn save_to(&self, dir: &Path) -> Result<PathBuf, SettingsError> {
        let path = dir.join(SETTINGS_FILE);
        let io = |source| SettingsError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = serde_json::to_string_pretty(self).expect("settings serialise");
        crate::files::write_bytes(&path, text.as_bytes()).map_err(io)?;
        Ok(path)
    }

    /// Directory holding run directories (see [`crate::runs::runs_root`]: this setting, else
    /// `$DDPM_LAB_RUNS`, else `./runs`).
    pub fn runs_root(&self) -> PathBuf {
        crate::runs::runs_root(self.runs_dir.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_defaults_missing_fields() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            LabSettings::load_from(dir.path()).unwrap(),
            LabSettings::default()
        );
        let mut s = LabSettings {
            dataset: "shapes".into(),
            ..LabSettings::default()
        };
        s.train.timesteps = 300;
        s.train.device = DeviceSpec::Cuda(1);
        s.save_to(dir.path()).unwrap();
        assert_eq!(LabSettings::load_from(dir.path()).unwrap(), s);
        std::fs::write(dir.path().join(SETTINGS_FILE), r#"{"dataset":"mnist"}"#).unwrap();
        let partial = LabSettings::load_from(dir.path()).unwrap();
        assert_eq!(partial.dataset, "mnist");
        assert_eq!(partial.train, TrainSettings::default());
    }

    #[test]
    fn broken_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SETTINGS_FILE), "{not json").unwrap();
        let err = LabSettings::load_from(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not valid"), "{err}");
    }

    #[test]
    fn device_defaults_are_the_presets() {
        let cpu = TrainSettings::for_device(DeviceSpec::Cpu);
        assert_eq!(cpu.model, ModelPreset::Quick);
        assert_eq!(cpu.recipe(1).model, Preset::Quick.unet());
        assert_eq!(cpu.time_limit_s, Some(600.0));
        assert_eq!(
            cpu.recommended_sampler,
            Some(SamplerKind::Ddim {
                steps: 50,
                eta: 0.0
            })
        );
        let sample = SampleSettings::default().with_recommended(cpu.recommended_sampler);
        assert!(sample.ddim && sample.ddim_steps == 50);
        // A run's settings read back from its configuration give the same recipe.
        assert_eq!(TrainSettings::from_recipe(&cpu.recipe(1), 200), cpu);
        let gpu = TrainSettings::for_device(DeviceSpec::Cuda(0));
        assert_eq!((gpu.model, gpu.time_limit_s), (ModelPreset::Blog, None));
        assert!(
            !SampleSettings::default()
                .with_recommended(gpu.recommended_sampler)
                .ddim
        );
    }

    #[test]
    fn blog_preset_matches_the_post() {
        let b = TrainSettings::default().blog();
        assert_eq!(b.model, ModelPreset::Blog);
        assert_eq!((b.timesteps, b.batch_size, b.steps), (200, 128, 2345));
        assert_eq!("SMALL".parse::<ModelPreset>(), Ok(ModelPreset::Small));
    }
}
