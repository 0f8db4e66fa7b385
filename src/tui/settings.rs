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

pub use crate::presets::BLOG_EPOCHS;
/// Training images of the full Fashion-MNIST (the blog's 469 batches of 128 an epoch).
pub const FASHION_MNIST_TRAIN: usize = 60_000;

/// Steps between the previews of the lab's quick recipe.
pub const QUICK_PREVIEW_EVERY: usize = 300;

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
    /// The β of each step where they are not the schedule's (an imported run's, see
    /// [`TrainConfig::betas`]); choosing a schedule or T drops them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub betas: Option<Vec<f64>>,
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
    /// The settings a recipe sets that the Configuration keys do not change, as `(label, value)`,
    /// most telling first; empty where the recipe sets none (the blog's).
    pub fn recipe_extras(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(g) = self.min_snr_gamma {
            v.push(("min-SNR γ", format!("{g} (loss weighting)")));
        }
        if self.warmup_steps > 0 {
            v.push(("lr warm-up", format!("{} steps", self.warmup_steps)));
        }
        if self.lr_cosine_decay {
            v.push(("lr decay", "cosine, to the stop step".to_string()));
        }
        if let Some(d) = self.ema_decay {
            v.push((
                "EMA",
                format!("{d}{}", if self.ema_warmup { " (warmed up)" } else { "" }),
            ));
        }
        if let Some(c) = self.grad_clip {
            v.push(("grad clip", format!("{c}")));
        }
        v
    }

    /// Settings a device trains quickly: the `quick` recipe on a CPU, the blog's on a GPU.
    pub fn for_device(device: DeviceSpec) -> Self {
        RecipeName::for_device(device).settings(device, crate::presets::DEFAULT_SEED)
    }

    /// The lab's settings for a recipe's configuration (`preview_every`: steps between
    /// previews). The model preset is the one whose UNet the recipe trains, else custom.
    pub fn from_recipe(cfg: &TrainConfig, preview_every: usize) -> Self {
        let preset = ModelPreset::of_unet(&cfg.model);
        Self {
            schedule: cfg.schedule,
            betas: cfg.betas.clone(),
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
            betas: self.betas.clone(),
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

    /// What a run's loss measures: the loss, then the objective and Min-SNR weighting where
    /// they are not the blog's (`l2`, `huber·v`, `huber·snr`). Losses of different kinds are
    /// not comparable, so the Runs table names the kind when the listed runs mix them.
    pub fn loss_kind(&self) -> String {
        crate::diffusion::loss_kind_name(self.loss, self.objective, self.min_snr_gamma.is_some())
    }

    /// The schedule as shown: its name, or `imported β` (see [`TrainConfig::schedule_label`]).
    pub fn schedule_label(&self) -> String {
        crate::store::config::schedule_label(self.schedule, self.betas.is_some())
    }

    /// Name of the model shown in the lab.
    pub fn model_name(&self) -> String {
        match &self.custom_model {
            Some(c) => format!("custom {}", describe_unet(c)),
            None => self.model.name().to_string(),
        }
    }

    /// The blog's configuration: its UNet, T = 200, linear schedule, Huber loss, batch 128,
    /// lr 1e-3, 5 epochs of Fashion-MNIST (469 steps each), a preview every epoch. Keeps
    /// device and seed.
    pub fn blog(&self) -> Self {
        self.blog_for(FASHION_MNIST_TRAIN)
    }

    /// The blog's configuration for a dataset of `n_train` training images: 5 epochs of it,
    /// a preview every epoch.
    pub fn blog_for(&self, n_train: usize) -> Self {
        let cfg = Preset::Blog.config();
        let epoch = crate::data::epoch_steps(n_train, cfg.batch_size);
        Self {
            steps: BLOG_EPOCHS * epoch,
            device: self.device,
            seed: self.seed,
            ..Self::from_recipe(&cfg, epoch)
        }
    }
}

/// A recipe the lab's Train settings are set from as a whole (first start, `b`, `B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipeName {
    /// The quick recipe (the CPU default).
    Quick,
    /// The blog's configuration: 5 epochs of a dataset of `n_train` images (the GPU default,
    /// with Fashion-MNIST's 60 000).
    Blog {
        /// Training images of the dataset it was set for.
        n_train: usize,
    },
}

impl RecipeName {
    /// The recipe a device trains quickly: the quick one on a CPU, the blog's on a GPU.
    pub fn for_device(device: DeviceSpec) -> Self {
        match ModelPreset::for_device(device) {
            ModelPreset::Blog => RecipeName::Blog {
                n_train: FASHION_MNIST_TRAIN,
            },
            _ => RecipeName::Quick,
        }
    }

    /// This recipe's settings as they are now, on `device` with `seed`.
    pub fn settings(self, device: DeviceSpec, seed: u64) -> TrainSettings {
        let quick = TrainSettings {
            device,
            seed,
            // Seven previews of its 2100 steps (a minute and a half apart on the CPU it was
            // measured on) after the early ones at steps 25, 50 and 100.
            ..TrainSettings::from_recipe(&Preset::Quick.config(), QUICK_PREVIEW_EVERY)
        };
        match self {
            RecipeName::Quick => quick,
            // `blog_for` keeps only the device and the seed of what it is called on.
            RecipeName::Blog { n_train } => quick.blog_for(n_train),
        }
    }

    /// Name shown in the lab.
    pub fn name(self) -> &'static str {
        match self {
            RecipeName::Quick => "quick",
            RecipeName::Blog { .. } => "blog",
        }
    }
}

/// The recipe the Train settings were last set from, with its values at the time. On the next
/// start every setting still at that value follows the recipe as it is then (see
/// [`LabSettings::follow_recipe`]): a better default reaches a user who never changed the
/// setting, and what the user changed is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeBase {
    /// Which recipe.
    pub name: RecipeName,
    /// Its settings when they were set.
    pub values: TrainSettings,
}

/// Where the Train settings come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingsOrigin {
    /// A recipe (first start, `b`, `B`, a new device), edited or not since.
    Recipe(Box<RecipeBase>),
    /// An opened run's configuration: they follow no recipe.
    Run,
}

/// One setting that followed its recipe (see [`LabSettings::follow_recipe`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeChange {
    /// The setting's name in the settings file (`steps`).
    pub key: String,
    /// Its value before, as JSON.
    pub old: serde_json::Value,
    /// Its value now, as JSON.
    pub new: serde_json::Value,
}

impl std::fmt::Display for RecipeChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "none".to_string(),
            v => v.to_string(),
        };
        write!(
            f,
            "{} {} → {}",
            setting_label(&self.key),
            show(&self.old),
            show(&self.new)
        )
    }
}

/// A Train setting's name as the Configuration box shows it (`batch` for the file's
/// `batch_size`); a key it does not show has its underscores read as spaces.
fn setting_label(key: &str) -> String {
    match key {
        "batch_size" => "batch",
        "timesteps" => "T",
        "time_limit_s" => "budget (s)",
        "preview_every" => "preview every",
        "min_snr_gamma" => "min-SNR γ",
        "warmup_steps" => "lr warm-up",
        "lr_cosine_decay" => "lr decay",
        "ema_decay" => "EMA",
        "ema_warmup" => "EMA warm-up",
        other => return other.replace('_', " "),
    }
    .to_string()
}

/// The Train settings as the settings file names their fields.
fn fields(t: &TrainSettings) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// Reads the settings' origin leniently: one the lab cannot read (a newer version's, a broken
/// one) counts as unknown, like a file from before origins were saved, instead of making the
/// whole file unreadable.
fn lenient_origin<'de, D>(d: D) -> Result<Option<SettingsOrigin>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
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

    /// These settings as a run of `timesteps` steps samples them: DDIM takes at most T steps
    /// (as [`SamplerKind::checked`] makes it), so that what is shown and named is what runs.
    pub fn for_run(&self, timesteps: usize) -> Self {
        Self {
            ddim_steps: self.ddim_steps.min(timesteps.max(1)),
            ..self.clone()
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
    #[serde(serialize_with = "utf8_path_or_none")]
    pub runs_dir: Option<PathBuf>,
    /// Where the Train settings come from (`None` in files saved before it was remembered:
    /// not the default's, which would hide what their recipe was).
    #[serde(default, deserialize_with = "lenient_origin")]
    pub origin: Option<SettingsOrigin>,
    /// The run the last session trained or opened (absolute), named on the Train screen at
    /// the next start.
    #[serde(serialize_with = "utf8_path_or_none")]
    pub last_run: Option<PathBuf>,
    /// The last dataset chosen that is none of [`BUILTIN_DATASETS`] (a folder given with
    /// `--dataset PATH`): d/D on the Data screen cycle back to it from the built-in sets.
    pub own_dataset: Option<String>,
}

impl Default for LabSettings {
    fn default() -> Self {
        let mut s = Self {
            dataset: "fashion_mnist".to_string(),
            origin: None,
            train: TrainSettings::default(),
            sample: SampleSettings::default(),
            compare_mode: CompareMode::InTurn,
            compare_steps: 500,
            runs_dir: None,
            last_run: None,
            own_dataset: None,
        };
        s.set_recipe(RecipeName::Quick);
        s
    }
}

/// Writes a path as the JSON string it is, or none where it is not UTF-8 (which JSON cannot
/// hold): such a path is not remembered, instead of the settings not being saved at all.
fn utf8_path_or_none<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p.as_deref().and_then(Path::to_str) {
        Some(text) => s.serialize_some(text),
        None => s.serialize_none(),
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

/// Where a settings file the lab could not use is kept (it would be overwritten on exit).
pub const BAD_SETTINGS_FILE: &str = "settings.json.bad";

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
    /// Sets the Train settings from the recipe `name` as it is now (keeping device and seed),
    /// and the Sample screen's sampler to the one it recommends; remembers it as their origin.
    pub fn set_recipe(&mut self, name: RecipeName) {
        self.train = name.settings(self.train.device, self.train.seed);
        // The Sample screen follows with the sampler the recipe recommends.
        self.sample = self.sample.with_recommended(self.train.recommended_sampler);
        self.origin = Some(SettingsOrigin::Recipe(Box::new(RecipeBase {
            name,
            values: self.train.clone(),
        })));
    }

    /// Sets the Train settings to an opened run's: they follow no recipe from now on.
    pub fn set_from_run(&mut self, train: TrainSettings) {
        // The Sample screen draws from it as `sample` and `eval` do: with the sampler its
        // recipe recommends, DDPM over its T where it names none (the blog's, an import).
        self.sample = self.sample.with_recommended(train.recommended_sampler);
        self.train = train;
        self.origin = Some(SettingsOrigin::Run);
    }

    /// The recipe the Train settings come from, if they come from one.
    pub fn recipe(&self) -> Option<&RecipeBase> {
        match &self.origin {
            Some(SettingsOrigin::Recipe(base)) => Some(base),
            _ => None,
        }
    }

    /// Every Train setting still at the value its recipe gave it takes the value the recipe
    /// gives it now (and the Sample screen the sampler it recommends now); settings the user
    /// changed are kept. Returns what changed.
    pub fn follow_recipe(&mut self) -> Vec<RecipeChange> {
        let base = match &self.origin {
            Some(SettingsOrigin::Recipe(base)) => (**base).clone(),
            Some(SettingsOrigin::Run) => return Vec::new(),
            None => match self.legacy_recipe() {
                Some(base) => base,
                None => return Vec::new(),
            },
        };
        let now = base.name.settings(self.train.device, self.train.seed);
        let (mut mine, then, today) = (fields(&self.train), fields(&base.values), fields(&now));
        let mut changes = Vec::new();
        for (key, value) in mine.iter_mut() {
            let (Some(old), Some(new)) = (then.get(key), today.get(key)) else {
                continue;
            };
            if value == old && old != new {
                changes.push(RecipeChange {
                    key: key.clone(),
                    old: old.clone(),
                    new: new.clone(),
                });
                *value = new.clone();
            }
        }
        let Ok(train) = serde_json::from_value::<TrainSettings>(serde_json::Value::Object(mine))
        else {
            return Vec::new();
        };
        if train.recommended_sampler != self.train.recommended_sampler {
            self.sample = self.sample.with_recommended(train.recommended_sampler);
        }
        self.train = train;
        self.origin = Some(SettingsOrigin::Recipe(Box::new(RecipeBase {
            name: base.name,
            values: now,
        })));
        changes
    }

    /// Those of `changes` that the Train settings still hold (flags given after
    /// [`Self::follow_recipe`] may have set others).
    pub fn changes_kept(&self, changes: Vec<RecipeChange>) -> Vec<RecipeChange> {
        let now = fields(&self.train);
        changes
            .into_iter()
            .filter(|c| now.get(&c.key) == Some(&c.new))
            .collect()
    }

    /// The recipe of settings saved before recipes were remembered: the quick recipe of that
    /// time where the model is the quick one (the blog's has not changed since).
    fn legacy_recipe(&self) -> Option<RecipeBase> {
        let t = &self.train;
        (t.model == ModelPreset::Quick && t.custom_model.is_none()).then(|| RecipeBase {
            name: RecipeName::Quick,
            values: TrainSettings {
                // Its UNet is saved by name, so only the steps, the batch, T, the sampler and
                // the previews' interval are left behind.
                steps: crate::presets::QUICK_STEPS_WITHOUT_SELF_CONDITIONING,
                batch_size: 128,
                timesteps: 1000,
                recommended_sampler: Some(crate::sampler::SamplerKind::Ddim {
                    steps: 50,
                    eta: 0.0,
                }),
                preview_every: 200,
                ..RecipeName::Quick.settings(t.device, t.seed)
            },
        })
    }

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

    /// Reads `dir/settings.json` for the lab: a missing file gives `defaults`; a file that is
    /// not settings is moved to [`BAD_SETTINGS_FILE`] and `defaults` are used; values out of
    /// range are put back to their defaults (see [`Self::repair`]) and the file is copied to
    /// [`BAD_SETTINGS_FILE`]. Returns the settings and what was wrong, in the lab's words, for
    /// the status line.
    pub fn load_checked(dir: &Path, defaults: LabSettings) -> (Self, Vec<String>) {
        let path = dir.join(SETTINGS_FILE);
        let bad = dir.join(BAD_SETTINGS_FILE);
        let kept = |ok: bool| {
            if ok {
                format!("the file is kept as {}", bad.display())
            } else {
                format!("it could not be kept as {}", bad.display())
            }
        };
        match Self::load_from(dir) {
            Ok(mut s) => {
                // A value out of range goes back to the file's own recipe where it has one
                // (a blog configuration keeps the blog's learning rate on any machine).
                let own = match s.recipe() {
                    Some(base) => LabSettings {
                        train: base.name.settings(s.train.device, s.train.seed),
                        origin: s.origin.clone(),
                        ..defaults
                    },
                    None => defaults,
                };
                let mut problems = s.repair(&own);
                if !problems.is_empty() {
                    problems.push(kept(std::fs::copy(&path, &bad).is_ok()));
                }
                (s, problems)
            }
            Err(SettingsError::Parse { source, .. }) => {
                let moved = std::fs::rename(&path, &bad).is_ok();
                let why = format!("{SETTINGS_FILE} is not valid ({source}): defaults used");
                (defaults, vec![why, kept(moved)])
            }
            Err(e) => (defaults, vec![format!("{e}: defaults used")]),
        }
    }

    /// Makes `name` the dataset (a built-in name, or a folder that is then
    /// [`Self::own_dataset`]).
    pub fn choose_dataset(&mut self, name: &str) {
        self.dataset = name.to_string();
        if !BUILTIN_DATASETS.contains(&name) {
            self.own_dataset = Some(name.to_string());
        }
    }

    /// The datasets d/D cycle through: the built-in sets, then the user's own (settings saved
    /// before it was remembered name it as their dataset).
    pub fn dataset_choices(&self) -> Vec<String> {
        let own = self.own_dataset.clone().or_else(|| {
            (!BUILTIN_DATASETS.contains(&self.dataset.as_str())).then(|| self.dataset.clone())
        });
        BUILTIN_DATASETS
            .iter()
            .map(|d| d.to_string())
            .chain(own)
            .collect()
    }

    /// Puts every value the lab cannot use back to its value in `defaults`; returns what it
    /// changed, named as the lab's screens name it.
    pub fn repair(&mut self, defaults: &LabSettings) -> Vec<String> {
        use crate::store::config::{MAX_BATCH_SIZE, MAX_TIMESTEPS};
        let mut fixes = Vec::new();
        let mut fix = |bad: bool, what: String, range: &str, default: String| {
            if bad {
                fixes.push(format!("{what} is not {range}, so {default} is used"));
            }
            bad
        };
        let (t, d) = (&mut self.train, &defaults.train);
        let pos = |x: f64| x.is_finite() && x > 0.0;
        let opt = |x: Option<f64>| x.map_or("none".to_string(), |v| v.to_string());
        if self.dataset.trim().is_empty() {
            fix(
                true,
                "dataset \"\"".into(),
                "a name or a path",
                defaults.dataset.clone(),
            );
            self.dataset = defaults.dataset.clone();
        }
        let range = format!("between 2 and {MAX_TIMESTEPS}");
        if fix(
            !(2..=MAX_TIMESTEPS).contains(&t.timesteps),
            format!("T = {}", t.timesteps),
            &range,
            d.timesteps.to_string(),
        ) {
            t.timesteps = d.timesteps;
        }
        let range = format!("between 1 and {MAX_BATCH_SIZE}");
        if fix(
            !(1..=MAX_BATCH_SIZE).contains(&t.batch_size),
            format!("batch = {}", t.batch_size),
            &range,
            d.batch_size.to_string(),
        ) {
            t.batch_size = d.batch_size;
        }
        if fix(
            !pos(t.lr),
            format!("lr = {}", t.lr),
            "a positive number",
            d.lr.to_string(),
        ) {
            t.lr = d.lr;
        }
        if fix(
            t.steps == 0,
            "steps = 0".into(),
            "at least 1",
            d.steps.to_string(),
        ) {
            t.steps = d.steps;
        }
        if fix(
            t.time_limit_s.is_some_and(|x| !pos(x)),
            format!("budget = {} s", opt(t.time_limit_s)),
            "a positive time",
            opt(d.time_limit_s),
        ) {
            t.time_limit_s = d.time_limit_s;
        }
        if fix(
            t.ema_decay.is_some_and(|x| !(0.0..1.0).contains(&x)),
            format!("EMA decay = {}", opt(t.ema_decay)),
            "in [0, 1)",
            opt(d.ema_decay),
        ) {
            t.ema_decay = d.ema_decay;
        }
        if fix(
            t.grad_clip.is_some_and(|x| !pos(x)),
            format!("gradient clip = {}", opt(t.grad_clip)),
            "a positive number",
            opt(d.grad_clip),
        ) {
            t.grad_clip = d.grad_clip;
        }
        if fix(
            t.min_snr_gamma.is_some_and(|x| !pos(x)),
            format!("min-SNR γ = {}", opt(t.min_snr_gamma)),
            "a positive number",
            opt(d.min_snr_gamma),
        ) {
            t.min_snr_gamma = d.min_snr_gamma;
        }
        if let Some(Err(e)) = t.custom_model.as_ref().map(UnetConfig::validate) {
            fix(
                true,
                format!("the custom model ({e})"),
                "usable",
                format!("the {} model", t.model.name()),
            );
            t.custom_model = None;
        }
        let (sm, sd) = (&mut self.sample, &defaults.sample);
        let range = format!("between 1 and {}", crate::runs::budget::MAX_SAMPLE_BATCH);
        if fix(
            !(1..=crate::runs::budget::MAX_SAMPLE_BATCH).contains(&sm.n),
            format!("images = {}", sm.n),
            &range,
            sd.n.to_string(),
        ) {
            sm.n = sd.n;
        }
        if fix(
            sm.ddim_steps == 0,
            "DDIM steps = 0".into(),
            "at least 1",
            sd.ddim_steps.to_string(),
        ) {
            sm.ddim_steps = sd.ddim_steps;
        }
        if fix(
            !(0.0..=1.0).contains(&sm.eta),
            format!("DDIM η = {}", sm.eta),
            "between 0 and 1",
            sd.eta.to_string(),
        ) {
            sm.eta = sd.eta;
        }
        if fix(
            self.compare_steps == 0,
            "Compare steps = 0".into(),
            "at least 1",
            defaults.compare_steps.to_string(),
        ) {
            self.compare_steps = defaults.compare_steps;
        }
        // Anything else training would refuse (the engine's own checks, in its words).
        if let Err(e) = self.train.recipe(1).validate_hyperparameters() {
            fixes.push(format!(
                "the training settings are not usable ({e}), so the defaults are used"
            ));
            self.train = defaults.train.clone();
            self.origin = defaults.origin.clone();
        }
        fixes
    }

    /// Writes `dir/settings.json` (creating `dir`), atomically via a temporary file.
    pub fn save_to(&self, dir: &Path) -> Result<PathBuf, SettingsError> {
        let path = dir.join(SETTINGS_FILE);
        let io = |source| SettingsError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
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

    #[cfg(unix)]
    #[test]
    fn a_runs_folder_that_is_not_utf8_is_not_remembered_and_the_rest_is_saved() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let odd = PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/bad\xffroot"));
        let s = LabSettings {
            dataset: "mnist".into(),
            runs_dir: Some(odd.clone()),
            last_run: Some(odd.join("run")),
            ..LabSettings::default()
        };
        s.save_to(dir.path()).unwrap();
        let back = LabSettings::load_from(dir.path()).unwrap();
        assert_eq!(back.dataset, "mnist");
        assert_eq!((back.runs_dir, back.last_run), (None, None));
    }

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

    /// Settings saved before recipes were remembered: the quick recipe's of the time (650
    /// steps of batch 128, a preview every 200) with the learning rate changed by the user.
    fn legacy_file(dir: &Path, model: &str) {
        let mut train = serde_json::to_value(TrainSettings {
            steps: 650,
            batch_size: 128,
            preview_every: 200,
            lr: 5e-4,
            ..TrainSettings::default()
        })
        .unwrap();
        train["model"] = model.into();
        let text = serde_json::json!({ "dataset": "mnist", "train": train });
        std::fs::write(dir.join(SETTINGS_FILE), text.to_string()).unwrap();
    }

    #[test]
    fn settings_left_at_their_recipe_follow_it_and_changed_ones_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        legacy_file(dir.path(), "quick");
        let mut s = LabSettings::load_from(dir.path()).unwrap();
        assert_eq!(
            s.origin, None,
            "a file without an origin does not get the default's"
        );
        let changes = s.follow_recipe();
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "batch 128 → 32",
                "preview every 200 → 300",
                "steps 650 → 2100"
            ]
        );
        assert_eq!(
            (s.train.steps, s.train.lr),
            (crate::presets::QUICK_STEPS, 5e-4)
        );
        assert_eq!(s.dataset, "mnist");
        // Saved again, the recipe is remembered, and nothing more follows.
        s.save_to(dir.path()).unwrap();
        let mut again = LabSettings::load_from(dir.path()).unwrap();
        assert_eq!(again.recipe().unwrap().name, RecipeName::Quick);
        assert!(again.follow_recipe().is_empty());
        assert_eq!(again, s);
        // The blog's configuration has not changed: such files stay as they are.
        legacy_file(dir.path(), "blog");
        let mut blog = LabSettings::load_from(dir.path()).unwrap();
        let before = blog.train.clone();
        assert!(blog.follow_recipe().is_empty());
        assert_eq!(blog.train, before);
        // An origin this version cannot read counts as unknown; the rest of the file is kept.
        legacy_file(dir.path(), "quick");
        let path = dir.path().join(SETTINGS_FILE);
        let mut text: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        text["origin"] = serde_json::json!({"recipe_of_the_future": 3});
        std::fs::write(&path, text.to_string()).unwrap();
        let future = LabSettings::load_from(dir.path()).unwrap();
        assert_eq!((future.origin, future.dataset.as_str()), (None, "mnist"));
    }

    #[test]
    fn out_of_range_values_go_back_to_the_files_own_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LabSettings::default();
        s.set_recipe(RecipeName::Blog { n_train: 60_000 });
        s.train.lr = -1.0;
        std::fs::write(
            dir.path().join(SETTINGS_FILE),
            serde_json::to_string(&s).unwrap(),
        )
        .unwrap();
        // This machine's first start would be the quick recipe (lr 2e-3); the file's is the
        // blog's (1e-3).
        let (loaded, problems) = LabSettings::load_checked(dir.path(), LabSettings::default());
        assert_eq!(loaded.train.lr, 1e-3, "{problems:?}");
        assert!(problems[0].contains("so 0.001 is used"), "{problems:?}");
        assert_eq!(
            loaded.recipe().unwrap().name,
            RecipeName::Blog { n_train: 60_000 }
        );
    }

    #[test]
    fn an_opened_runs_settings_follow_no_recipe() {
        let mut s = LabSettings::default();
        let run = TrainSettings {
            steps: 650,
            batch_size: 64,
            ..TrainSettings::default()
        };
        s.set_from_run(run.clone());
        // Even where they equal an old recipe's values, nothing follows.
        assert!(s.follow_recipe().is_empty());
        assert_eq!(s.train, run);
        assert!(s.recipe().is_none());
    }

    /// The Sample screen draws from an opened run as `sample` and `eval` do: the blog's run,
    /// or an imported one, recommends no sampler (DDPM over its T); the quick one its DDIM.
    #[test]
    fn an_opened_run_is_sampled_with_the_sampler_it_recommends() {
        let mut s = LabSettings::default();
        s.sample.n = 9;
        assert!(s.sample.ddim, "the quick recipe's DDIM 100");
        s.set_from_run(TrainSettings {
            recommended_sampler: None,
            ..TrainSettings::default()
        });
        assert!(!s.sample.ddim);
        assert_eq!(s.sample.n, 9, "the rest stays the user's");
        s.set_from_run(TrainSettings {
            recommended_sampler: Some(SamplerKind::Ddim {
                steps: 20,
                eta: 0.0,
            }),
            ..TrainSettings::default()
        });
        assert!(s.sample.ddim && s.sample.ddim_steps == 20, "{:?}", s.sample);
    }

    #[test]
    fn a_recipes_new_sampler_reaches_the_sample_screen() {
        let mut s = LabSettings::default();
        let Some(SettingsOrigin::Recipe(base)) = s.origin.as_mut() else {
            panic!("the default comes from a recipe");
        };
        // As if the quick recipe had recommended DDPM when it was set.
        base.values.recommended_sampler = None;
        s.train.recommended_sampler = None;
        s.sample.ddim = false;
        s.follow_recipe();
        assert_eq!(
            s.train.recommended_sampler,
            TrainSettings::default().recommended_sampler
        );
        assert!(
            s.sample.ddim,
            "the Sample screen follows the recommended DDIM"
        );
    }

    #[test]
    fn changes_that_flags_overrode_are_not_reported() {
        let mut s = LabSettings::default();
        if let Some(SettingsOrigin::Recipe(base)) = s.origin.as_mut() {
            base.values.steps = 650;
            base.values.lr = 1e-3;
        }
        s.train.steps = 650;
        s.train.lr = 1e-3;
        let changes = s.follow_recipe();
        assert_eq!(changes.len(), 2);
        s.train.lr = 5e-4; // as `--lr 5e-4` would
        let kept = s.changes_kept(changes);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].key, "steps");
    }

    #[test]
    fn a_remembered_recipe_brings_its_new_values_to_untouched_settings() {
        let mut s = LabSettings::default();
        s.set_recipe(RecipeName::Blog { n_train: 1280 });
        assert_eq!((s.train.steps, s.train.preview_every), (50, 10));
        // As if the blog recipe had used 300 steps and no warm-up when it was set, and the
        // user then changed the batch size and the warm-up.
        let Some(SettingsOrigin::Recipe(base)) = s.origin.as_mut() else {
            panic!("set from a recipe");
        };
        base.values.steps = 300;
        base.values.warmup_steps = 7;
        s.train.steps = 300;
        s.train.warmup_steps = 9;
        s.train.batch_size = 64;
        let changes: Vec<String> = s.follow_recipe().iter().map(ToString::to_string).collect();
        assert_eq!(changes, vec!["steps 300 → 50".to_string()]);
        assert_eq!(
            (s.train.steps, s.train.warmup_steps, s.train.batch_size),
            (50, 9, 64)
        );
        assert_eq!(
            s.recipe().unwrap().values,
            RecipeName::Blog { n_train: 1280 }.settings(DeviceSpec::Cpu, 0)
        );
    }

    #[test]
    fn broken_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SETTINGS_FILE), "{not json").unwrap();
        let err = LabSettings::load_from(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not valid"), "{err}");
    }

    #[test]
    fn garbage_is_kept_aside_and_reported_in_the_labs_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SETTINGS_FILE);
        std::fs::write(&path, "{not json").unwrap();
        let (s, problems) = LabSettings::load_checked(dir.path(), LabSettings::default());
        assert_eq!(s, LabSettings::default());
        assert!(
            problems[0].contains("settings.json is not valid"),
            "{problems:?}"
        );
        assert!(problems[1].contains("settings.json.bad"), "{problems:?}");
        assert!(
            !path.exists(),
            "moved aside, so exiting cannot overwrite it"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(BAD_SETTINGS_FILE)).unwrap(),
            "{not json"
        );
    }

    #[test]
    fn out_of_range_values_are_repaired_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{"train": {"timesteps": 1, "batch_size": 0, "lr": -1.0, "ema_decay": 1.5,
                       "steps": 30}, "sample": {"n": 0, "eta": 3.0}, "compare_steps": 0}"#;
        std::fs::write(dir.path().join(SETTINGS_FILE), text).unwrap();
        let d = LabSettings::default();
        let (s, problems) = LabSettings::load_checked(dir.path(), d.clone());
        assert_eq!(
            (s.train.timesteps, s.train.batch_size, s.train.lr),
            (d.train.timesteps, d.train.batch_size, d.train.lr)
        );
        assert_eq!(s.train.ema_decay, d.train.ema_decay);
        assert_eq!(s.train.steps, 30, "good values stay");
        assert_eq!((s.sample.n, s.sample.eta), (d.sample.n, d.sample.eta));
        assert_eq!(s.compare_steps, d.compare_steps);
        let all = problems.join("; ");
        assert!(all.contains("T = 1 is not between 2 and"), "{all}");
        assert!(all.contains("batch = 0"), "{all}");
        assert!(all.contains("EMA decay = 1.5"), "{all}");
        assert!(!all.contains("--"), "lab wording, not flags: {all}");
        assert!(
            all.contains("kept as") && all.contains(BAD_SETTINGS_FILE),
            "{all}"
        );
        assert!(dir.path().join(BAD_SETTINGS_FILE).exists());
        assert!(s.train.recipe(1).validate_hyperparameters().is_ok());
        // Good settings load without a word.
        let dir = tempfile::tempdir().unwrap();
        d.save_to(dir.path()).unwrap();
        assert_eq!(
            LabSettings::load_checked(dir.path(), d.clone()),
            (d, Vec::new())
        );
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
                steps: 100,
                eta: 0.0
            })
        );
        let sample = SampleSettings::default().with_recommended(cpu.recommended_sampler);
        assert!(sample.ddim && sample.ddim_steps == 100);
        // A run's settings read back from its configuration give the same recipe.
        assert_eq!(
            TrainSettings::from_recipe(&cpu.recipe(1), QUICK_PREVIEW_EVERY),
            cpu
        );
        // A run's own β go to the settings and back to the run they start.
        let own = TrainConfig {
            betas: Some(vec![0.01; 200]),
            timesteps: 200,
            ..cpu.recipe(1)
        };
        let settings = TrainSettings::from_recipe(&own, 200);
        assert_eq!(settings.schedule_label(), "imported β");
        assert_eq!(settings.recipe(1).betas, own.betas);
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
        assert_eq!(b.preview_every, 469);
        // Five epochs of the data actually loaded: 8 517 images are 67 batches of 128.
        let small = TrainSettings::default().blog_for(8517);
        assert_eq!((small.steps, small.preview_every), (5 * 67, 67));
        assert_eq!(TrainSettings::default().blog_for(0).steps, 5);
        assert_eq!("SMALL".parse::<ModelPreset>(), Ok(ModelPreset::Small));
    }
}
