//! Starting a run: a request is resolved into one validated configuration, checked against
//! the data, and spawned as a training worker with its batch source.
//!
//! The CLI and the lab differ only in how they build the request and show the events.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::data::{DataFingerprint, ImageSet, LoadOptions};
use crate::device::DeviceSpec;
use crate::store::{ResumeChanges, RunDir, TrainConfig};
use crate::train::source::ImageSetSource;
use crate::train::{spawn_training, BatchSource, ResumeOptions, TrainHandle, Trainer};

/// Where a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopAt {
    /// The configuration's stop step; for a new run whose configuration names none (0), one
    /// epoch of the data.
    #[default]
    Configured,
    /// At this step (for a resumed run: the new stop step).
    Step(usize),
    /// After this many epochs of the data.
    Epochs(usize),
}

/// What to train.
#[derive(Debug, Clone)]
pub enum TrainRequest {
    /// A new run, saved in `dir` (created; a directory that holds a run is refused).
    New {
        /// The run's configuration (its image size and channels are taken from the data).
        config: TrainConfig,
        /// Run directory.
        dir: PathBuf,
        /// Where it stops.
        stop: StopAt,
    },
    /// Continue the run saved in `dir` with its own configuration.
    Resume {
        /// Run directory.
        dir: PathBuf,
        /// Where it stops now.
        stop: StopAt,
        /// Train on this device instead of the saved one.
        device: Option<DeviceSpec>,
        /// Time limit of this session (never saved as the run's own).
        time_limit_s: Option<f64>,
        /// Checkpoint interval of this session (see [`TrainConfig::checkpoint_interval_s`]):
        /// runs saved before there was one get it too.
        checkpoint_interval_s: Option<f64>,
        /// Start Adam and the EMA afresh when their saved state is missing or unreadable
        /// (otherwise resuming refuses).
        reset_optimizer: bool,
        /// Train on this data instead of the run's own (its folder moved, say): checked to fit
        /// the run, and named by the run's configuration from now on.
        dataset: Option<String>,
        /// Training settings from now on, instead of the run's (a lower learning rate to
        /// fine-tune, an EMA for an imported run, say): the run's own from then on.
        changes: ResumeChanges,
        /// Train a copy of the checkpoint in this new run folder (missing or empty) instead,
        /// leaving the run as it is (see [`RunDir::branch_to`]).
        branch: Option<PathBuf>,
    },
    /// A run that is not saved anywhere (speed estimates): `config.steps` steps.
    Scratch {
        /// The configuration (its image size and channels are taken from the data).
        config: TrainConfig,
    },
}

impl TrainRequest {
    /// The configuration this request starts from: the given one, or the saved one of the
    /// run being resumed (with the device and time limit of this session applied). Checks
    /// everything that does not depend on the data.
    pub fn base_config(&self) -> Result<TrainConfig> {
        let cfg = match self {
            TrainRequest::New { config, .. } | TrainRequest::Scratch { config } => config.clone(),
            TrainRequest::Resume {
                dir,
                device,
                time_limit_s,
                checkpoint_interval_s,
                dataset,
                changes,
                ..
            } => {
                let run = RunDir::open(crate::store::Checkpoint::run_dir_of(dir))?;
                let ck = run.checkpoint_to_resume(dir)?;
                let mut cfg = run.resume_config(&ck)?;
                if let Some(ds) = dataset {
                    check_same_data(&cfg.dataset, ds)?;
                    cfg.dataset = ds.clone();
                }
                // The user's own values: said as theirs, not as the run's config.json.
                changes.check(ck.state.step)?;
                changes.apply_to(&mut cfg);
                if let Some(d) = device {
                    cfg.device = *d;
                }
                cfg.time_limit_s = *time_limit_s;
                cfg.checkpoint_interval_s = *checkpoint_interval_s;
                cfg
            }
        };
        match self {
            TrainRequest::Resume { dir, .. } => {
                cfg.validate_hyperparameters().with_context(|| {
                    format!("the run at {} has an unusable config.json", dir.display())
                })?
            }
            _ => cfg.validate_hyperparameters()?,
        }
        Ok(cfg)
    }

    /// How to load the data for this request: a resumed run's own image size and channels,
    /// else `requested`.
    pub fn load_options(&self, requested: LoadOptions) -> Result<LoadOptions> {
        Ok(match self {
            TrainRequest::Resume { .. } => {
                let cfg = self.base_config()?;
                LoadOptions {
                    image_size: Some(cfg.image_size),
                    channels: Some(cfg.model.channels),
                    ..requested
                }
            }
            _ => requested,
        })
    }

    /// Resolves the request against the training images `set`: the final configuration
    /// (image size, channels and stop step filled in, everything validated) and the checks
    /// that the data fits the run.
    pub fn prepare(self, set: Arc<ImageSet>) -> Result<PreparedRun> {
        self.prepare_known(set, None)
    }

    /// [`prepare`](Self::prepare) with `set`'s fingerprint worked out already, where it is
    /// given (the lab hashes a set on its data thread when it loads, so that starting a run
    /// does not hash 47 MB on the UI's thread).
    pub fn prepare_known(
        self,
        set: Arc<ImageSet>,
        fingerprint: Option<DataFingerprint>,
    ) -> Result<PreparedRun> {
        let mut cfg = self.base_config()?;
        let resume = matches!(self, TrainRequest::Resume { .. });
        if resume {
            check_data_fits(&cfg, &set)?;
        } else {
            if set.height != set.width {
                bail!(
                    "training images must be square, got {}×{}",
                    set.height,
                    set.width
                );
            }
            cfg.model.channels = set.channels;
            cfg.image_size = set.height;
        }
        let steps_per_epoch = set.len().div_ceil(cfg.batch_size.max(1));
        let stop = match &self {
            TrainRequest::New { stop, .. } | TrainRequest::Resume { stop, .. } => *stop,
            TrainRequest::Scratch { .. } => StopAt::Configured,
        };
        match stop {
            StopAt::Step(0) => bail!("--steps must be at least 1"),
            StopAt::Epochs(0) => bail!("--epochs must be at least 1"),
            StopAt::Step(s) => cfg.steps = s,
            StopAt::Epochs(e) => cfg.steps = e.saturating_mul(steps_per_epoch),
            StopAt::Configured if !resume && cfg.steps == 0 => cfg.steps = steps_per_epoch,
            StopAt::Configured => {}
        }
        // A run's own stop step (a throw-away run may train without end).
        if !matches!(self, TrainRequest::Scratch { .. }) {
            crate::store::config::check_stop_step(
                cfg.steps,
                "the stop step (--steps, or --epochs of the data)",
            )?;
        }
        if let TrainRequest::Resume { dir, .. } = &self {
            // A stop step the run has reached already would train nothing.
            let run = RunDir::open(crate::store::Checkpoint::run_dir_of(dir))?;
            let at = run.checkpoint_to_resume(dir)?.state.step;
            if cfg.steps <= at {
                bail!(
                    "the run is at step {at} already and stops at step {}: a later stop step (--steps; the lab's steps setting) trains it on",
                    cfg.steps
                );
            }
        }
        cfg.validate()?;
        // Before the trainer allocates anything sized by the batch, the model or the images.
        super::budget::check_training(&cfg)?;
        // A saved run knows its images: a resume goes on with those alone, and a new run
        // records them (a throw-away run has nothing to resume).
        let fingerprint = match &self {
            TrainRequest::Scratch { .. } => None,
            _ => Some(fingerprint.unwrap_or_else(|| set.fingerprint())),
        };
        if let (true, Some(own), Some(now)) = (resume, &cfg.data_fingerprint, &fingerprint) {
            check_same_images(&cfg.dataset, own, now)?;
        }
        if cfg.data_fingerprint.is_none() {
            cfg.data_fingerprint = fingerprint.clone();
        }
        // A folder is named by its whole path, so the run finds it again from anywhere.
        cfg.dataset = absolute_dataset(&cfg.dataset);
        let dir = match self {
            TrainRequest::New { dir, .. } => Some(Target::New(dir)),
            TrainRequest::Resume {
                dir,
                reset_optimizer,
                dataset,
                changes,
                branch,
                ..
            } => Some(Target::Resume {
                dir,
                opts: Box::new(ResumeOptions {
                    reset_optimizer,
                    dataset: dataset.map(|d| absolute_dataset(&d)),
                    data_fingerprint: fingerprint,
                    changes,
                    ..ResumeOptions::default()
                }),
                branch,
            }),
            TrainRequest::Scratch { .. } => None,
        };
        Ok(PreparedRun {
            config: cfg,
            target: dir,
            set,
            hold: false,
        })
    }
}

/// Checks that `other`, given to resume a run trained on `own`, can be the same data where it
/// is now (a folder that moved, the Hub's copy of a folder's set): another named set (mnist
/// for fashion_mnist), or the built-in shapes for a run not trained on them, cannot.
pub fn check_same_data(own: &str, other: &str) -> Result<()> {
    use crate::data::DatasetSpec;
    // A path that is gone does not parse: it names data of its own.
    let named = |s: &str| match s.parse::<DatasetSpec>() {
        Ok(DatasetSpec::Path(_)) | Err(_) => None,
        Ok(d) => Some(d),
    };
    // The built-in shapes are nowhere but here: no folder holds them.
    let other_data = match (named(own), named(other)) {
        (Some(a), Some(b)) => a != b,
        (None, Some(b)) => b == DatasetSpec::Shapes,
        (Some(a), None) => a == DatasetSpec::Shapes,
        (None, None) => false,
    };
    if other_data {
        bail!(
            "the run was trained on {own}: resuming it takes that data where it is now, not other data ({other}); start a new run to train on {other}"
        );
    }
    Ok(())
}

/// Checks that the images a run resumes on (`now`) are those it was trained on (`own`, as its
/// configuration records them, with `dataset` its name for them).
pub fn check_same_images(
    dataset: &str,
    own: &DataFingerprint,
    now: &DataFingerprint,
) -> Result<()> {
    if own != now {
        bail!(
            "these are not the images the run was trained on (it trained on {own}; {dataset} holds {now}): resuming on other images would not go on with its training; start a new run to train on them"
        );
    }
    Ok(())
}

/// `dataset` with a relative folder's path made whole (against the current folder), so a run
/// records where its data is wherever it is resumed from; a name (or a path that does not
/// parse) is kept as given.
pub fn absolute_dataset(dataset: &str) -> String {
    use crate::data::DatasetSpec;
    match dataset.parse::<DatasetSpec>() {
        Ok(DatasetSpec::Path(p)) if p.is_relative() => std::path::absolute(&p)
            .map(|a| a.display().to_string())
            .unwrap_or_else(|_| dataset.to_string()),
        _ => dataset.to_string(),
    }
}

/// Checks that training images `set` fit the run configured by `cfg` (channels and size).
pub fn check_data_fits(cfg: &TrainConfig, set: &ImageSet) -> Result<()> {
    if set.channels != cfg.model.channels
        || set.height != cfg.image_size
        || set.width != cfg.image_size
    {
        bail!(
            "the data ({}×{}×{}) does not fit the run ({}×{}×{})",
            set.channels,
            set.height,
            set.width,
            cfg.model.channels,
            cfg.image_size,
            cfg.image_size
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Target {
    New(PathBuf),
    /// The run (or checkpoint folder) and how it reopens (its stop step and device are the
    /// final configuration's), in place or as a copy in `branch`.
    Resume {
        dir: PathBuf,
        opts: Box<ResumeOptions>,
        branch: Option<PathBuf>,
    },
}

/// Copies the checkpoint `dir` names (a run: its latest) into the new run folder `dest` and
/// reopens that to train on; the copy goes again where the trainer cannot start on it.
fn resume_branch(dir: &Path, dest: &Path, opts: ResumeOptions) -> Result<Trainer> {
    let run = RunDir::open(crate::store::Checkpoint::run_dir_of(dir))?;
    let ck = run.checkpoint_to_resume(dir)?;
    let made = run.branch_to(&ck, dest)?;
    let mut trainer = Trainer::resume_with(dest, opts).inspect_err(|_| made.undo())?;
    trainer.add_notice(format!(
        "a branch of {} at step {}, which stays as it is",
        run.path().display(),
        ck.state.step
    ));
    Ok(trainer)
}

/// A request resolved against its data, ready to spawn.
pub struct PreparedRun {
    config: TrainConfig,
    target: Option<Target>,
    set: Arc<ImageSet>,
    hold: bool,
}

impl PreparedRun {
    /// The final configuration the run trains with.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The run directory (`None` for a throw-away run; the run of a checkpoint folder resumed
    /// from).
    pub fn dir(&self) -> Option<&Path> {
        match &self.target {
            Some(Target::New(d)) => Some(d),
            Some(Target::Resume {
                branch: Some(b), ..
            }) => Some(b),
            Some(Target::Resume { dir, .. }) => Some(crate::store::Checkpoint::run_dir_of(dir)),
            None => None,
        }
    }

    /// Whether the run continues a saved one.
    pub fn is_resume(&self) -> bool {
        matches!(self.target, Some(Target::Resume { .. }))
    }

    /// A checkpoint that cannot be written pauses the run, weights in memory, until one can be
    /// (see [`Trainer::hold_on_failed_checkpoints`]): for a driver that can ask again.
    pub fn holding_on_failed_checkpoints(mut self) -> Self {
        self.hold = true;
        self
    }

    /// The trainer and its batch source, built on the calling thread.
    pub fn build(self) -> Result<(Trainer, Box<dyn BatchSource>)> {
        let hold = self.hold;
        let cfg = self.config;
        let trainer = match self.target {
            Some(Target::Resume { dir, opts, branch }) => {
                let opts = ResumeOptions {
                    steps: Some(cfg.steps),
                    device: Some(cfg.device),
                    ..*opts
                };
                let mut t = match branch {
                    Some(dest) => resume_branch(&dir, &dest, opts)?,
                    None => Trainer::resume_with(&dir, opts)?,
                };
                t.set_time_limit(cfg.time_limit_s);
                t.set_checkpoint_interval(cfg.checkpoint_interval_s);
                t
            }
            Some(Target::New(dir)) => Trainer::new(cfg, Some(&dir))?,
            None => Trainer::new(cfg, None)?,
        };
        let mut trainer = trainer;
        if hold {
            trainer.hold_on_failed_checkpoints();
        }
        // The saved configuration was checked against the data in `prepare`; this guards a
        // run directory changed in between.
        check_data_fits(trainer.config(), &self.set)?;
        let c = trainer.config();
        let source = ImageSetSource::new(
            self.set,
            c.batch_size,
            c.seed,
            c.flip,
            trainer.device().clone(),
        );
        Ok((trainer, Box::new(source)))
    }

    /// Builds the trainer on a worker thread and trains there (see [`spawn_training`]).
    pub fn spawn(self) -> TrainHandle {
        spawn_training(move || self.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_on_other_data_is_refused_and_moved_data_is_not() {
        assert!(check_same_data("fashion_mnist", "fashion_mnist").is_ok());
        assert!(check_same_data("/gone/fashion-mnist", "fashion_mnist").is_ok());
        let e = check_same_data("fashion_mnist", "mnist")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("the run was trained on fashion_mnist: resuming it takes that data"),
            "{e}"
        );
        assert!(check_same_data("/gone/fashion-mnist", "shapes").is_err());
        assert!(check_same_data("shapes", "shapes").is_ok());
        assert!(check_same_data("shapes", "/data/fashion-mnist").is_err());
        assert!(check_same_data("fashion_mnist", "/data/fashion-mnist").is_ok());
    }
    use crate::model::UnetConfig;

    fn set(n: usize, c: usize, h: usize, w: usize) -> Arc<ImageSet> {
        Arc::new(ImageSet {
            images: vec![128; n * c * h * w],
            labels: vec![0; n],
            channels: c,
            height: h,
            width: w,
        })
    }

    /// A resume of `dir` to `stop` with nothing else asked.
    fn plain_resume(dir: PathBuf, stop: StopAt) -> TrainRequest {
        TrainRequest::Resume {
            dir,
            stop,
            device: None,
            time_limit_s: None,
            checkpoint_interval_s: None,
            reset_optimizer: false,
            dataset: None,
            changes: ResumeChanges::default(),
            branch: None,
        }
    }

    fn tiny() -> TrainConfig {
        TrainConfig {
            model: UnetConfig::tiny(),
            batch_size: 4,
            timesteps: 10,
            steps: 0,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn a_new_run_takes_its_shape_from_the_data_and_one_epoch_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let req = TrainRequest::New {
            config: tiny(),
            dir: dir.path().join("r"),
            stop: StopAt::Configured,
        };
        let p = req.prepare(set(10, 3, 16, 16)).unwrap();
        assert_eq!((p.config().model.channels, p.config().image_size), (3, 16));
        assert_eq!(p.config().steps, 3, "10 images in batches of 4");
        assert!(!p.is_resume());
        let epochs = TrainRequest::New {
            config: tiny(),
            dir: dir.path().join("r"),
            stop: StopAt::Epochs(2),
        };
        assert_eq!(
            epochs.prepare(set(10, 1, 28, 28)).unwrap().config().steps,
            6
        );
        let steps = TrainRequest::Scratch {
            config: TrainConfig { steps: 7, ..tiny() },
        };
        let p = steps.prepare(set(10, 1, 28, 28)).unwrap();
        assert_eq!((p.config().steps, p.dir()), (7, None));
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let new = |config| TrainRequest::New {
            config,
            dir: dir.path().join("r"),
            stop: StopAt::Step(5),
        };
        let err = new(tiny()).prepare(set(4, 1, 28, 20)).err().unwrap();
        assert!(err.to_string().contains("square"), "{err}");
        let bad = TrainConfig {
            timesteps: 1,
            ..tiny()
        };
        assert!(new(bad).prepare(set(4, 1, 28, 28)).is_err());
        let missing = plain_resume(dir.path().join("nothing"), StopAt::Configured);
        let err = missing.prepare(set(4, 1, 28, 28)).err().unwrap();
        assert!(err.to_string().contains("not a run directory"), "{err}");
        // A run directory whose first checkpoint never completed is refused, not step 0.
        let fresh = dir.path().join("fresh");
        std::fs::create_dir_all(&fresh).unwrap();
        crate::store::RunDir::create(&fresh)
            .unwrap()
            .save_config(&tiny())
            .unwrap();
        let err = plain_resume(fresh, StopAt::Configured)
            .prepare(set(4, 1, 28, 28))
            .err()
            .unwrap();
        assert!(err.to_string().contains("no checkpoint yet"), "{err}");
    }

    /// A tiny run in `run` trained for `steps` steps on 8 images of 16×16, with a checkpoint
    /// at each step of `checkpoints`.
    fn trained(run: &Path, steps: usize, checkpoints: &[usize]) {
        let first = TrainRequest::New {
            config: tiny(),
            dir: run.to_path_buf(),
            stop: StopAt::Step(steps),
        }
        .prepare(set(8, 1, 16, 16))
        .unwrap();
        let (mut trainer, mut source) = first.build().unwrap();
        for step in 0..steps {
            let (x, epoch) = source.batch(step).unwrap();
            trainer.train_step(&x, epoch).unwrap();
            if checkpoints.contains(&(step + 1)) {
                trainer.checkpoint().unwrap();
            }
        }
    }

    #[test]
    fn a_resume_gives_a_run_training_settings_of_its_own_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        trained(&run, 2, &[2]);
        let with = |given: ResumeChanges| {
            let mut req = plain_resume(run.clone(), StopAt::Step(6));
            if let TrainRequest::Resume { changes, .. } = &mut req {
                *changes = given;
            }
            req
        };
        // The user's values are checked in the words of their flags.
        for (bad, said) in [
            (
                ResumeChanges {
                    ema_decay: Some(1.5),
                    ..Default::default()
                },
                "--ema must be in [0, 1), got 1.5",
            ),
            (
                ResumeChanges {
                    grad_clip: Some(-1.0),
                    ..Default::default()
                },
                "--grad-clip must be a positive number, got -1",
            ),
            (
                ResumeChanges {
                    min_snr_gamma: Some(0.0),
                    ..Default::default()
                },
                "--min-snr-gamma must be a positive number, got 0",
            ),
            (
                ResumeChanges {
                    warmup_steps: Some(2),
                    ..Default::default()
                },
                "--warmup 2 counts from the run's step 0 and the run is at step 2: it would change nothing (--lr sets the rate from now on)",
            ),
        ] {
            let err = with(bad).prepare(set(8, 1, 16, 16)).err().unwrap();
            assert_eq!(err.to_string(), said);
        }
        let changes = ResumeChanges {
            ema_decay: Some(0.99),
            grad_clip: Some(1.0),
            warmup_steps: Some(4),
            lr_cosine_decay: true,
            ema_warmup: true,
            min_snr_gamma: Some(5.0),
            checkpoint_every: Some(3),
            ..Default::default()
        };
        let p = with(changes).prepare(set(8, 1, 16, 16)).unwrap();
        let (mut trainer, mut source) = p.build().unwrap();
        let c = trainer.config().clone();
        assert_eq!(
            (c.ema_decay, c.grad_clip, c.warmup_steps, c.min_snr_gamma),
            (Some(0.99), Some(1.0), 4, Some(5.0))
        );
        assert!(c.lr_cosine_decay && c.ema_warmup && c.checkpoint_every == 3);
        let notices = trainer.notices().join("\n");
        for said in [
            "an EMA of the weights (decay 0.99) starts from them now (the run had none)",
            "gradients are clipped at norm 1 now (before: none)",
            "the learning rate warms up over the run's first 4 steps now (before: 0)",
            "the learning rate decays on a cosine to 10 % at step 6 now (it was constant)",
            "the EMA warms up now (it did not)",
            "the loss is weighted by Min-SNR (γ = 5) now (before: none)",
            "checkpoints are written every 3 steps now (before: at the end and by time only)",
            "the warm-up over the run's first 4 steps applies from here: the lr goes from 1.00e-3 at step 2 to 7.50e-4 at step 3",
        ] {
            assert!(notices.contains(said), "{said:?} in {notices}");
        }
        // The run's own from then on, before its next checkpoint too.
        let saved = RunDir::open(&run).unwrap().load_config().unwrap();
        assert_eq!(saved.ema_decay, Some(0.99));
        assert_eq!(saved.min_snr_gamma, Some(5.0));
        // The new EMA trains and is saved with the weights.
        let (x, epoch) = source.batch(2).unwrap();
        trainer.train_step(&x, epoch).unwrap();
        trainer.checkpoint().unwrap();
        let ck = RunDir::open(&run)
            .unwrap()
            .latest_checkpoint()
            .unwrap()
            .unwrap();
        assert_eq!(ck.state.step, 3);
        assert!(ck.file(crate::store::EMA_FILE).exists());
        drop(trainer);
        // Resumed again without flags: the settings stay and nothing is announced.
        let again = plain_resume(run.clone(), StopAt::Configured)
            .prepare(set(8, 1, 16, 16))
            .unwrap();
        let (trainer, _) = again.build().unwrap();
        assert_eq!(trainer.config().ema_decay, Some(0.99));
        assert!(
            !trainer.notices().iter().any(|n| n.contains(" now (")),
            "{:?}",
            trainer.notices()
        );
        drop(trainer);
        // Back to the checkpoint the EMA was added at, which has no EMA of its own: it
        // starts from the weights again, rather than being taken for a damaged one.
        let back = RunDir::open(&run)
            .unwrap()
            .checkpoints_dir()
            .join("step-000002");
        let (trainer, _) = plain_resume(back, StopAt::Configured)
            .prepare(set(8, 1, 16, 16))
            .unwrap()
            .build()
            .unwrap();
        assert!(
            trainer.notices().iter().any(|n| n
                == "the EMA starts from the weights: the checkpoint at step 2 was written before the run had one"),
            "{:?}",
            trainer.notices()
        );
    }

    #[test]
    fn a_branch_trains_a_copy_and_leaves_the_run_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        trained(&run, 4, &[2, 4]);
        let original = RunDir::open(&run).unwrap();
        let metrics_before = std::fs::read(original.file(crate::store::METRICS_FILE)).unwrap();
        let from = original.checkpoints_dir().join("step-000002");
        let branch_of = |to: &Path| {
            let mut req = plain_resume(from.clone(), StopAt::Step(6));
            if let TrainRequest::Resume { branch, .. } = &mut req {
                *branch = Some(to.to_path_buf());
            }
            req
        };
        // A folder that is not empty, or the run itself, is refused and left alone.
        let busy = dir.path().join("busy");
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("notes.txt"), "mine").unwrap();
        let err = branch_of(&busy)
            .prepare(set(8, 1, 16, 16))
            .unwrap()
            .build()
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("needs a new or empty folder"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
        let err = branch_of(&run)
            .prepare(set(8, 1, 16, 16))
            .unwrap()
            .build()
            .err()
            .unwrap();
        assert!(err.to_string().contains("is the run itself"), "{err}");
        // The branch starts at step 2 with the run's log up to there.
        let to = dir.path().join("b");
        let p = branch_of(&to).prepare(set(8, 1, 16, 16)).unwrap();
        assert_eq!(p.dir(), Some(to.as_path()));
        let (trainer, _) = p.build().unwrap();
        assert_eq!(trainer.step(), 2);
        assert!(
            trainer.notices()[0].starts_with("a branch of ")
                && trainer.notices()[0].ends_with("at step 2, which stays as it is"),
            "{:?}",
            trainer.notices()
        );
        assert!(
            !trainer.notices().iter().any(|n| n.contains("going back")),
            "{:?}",
            trainer.notices()
        );
        drop(trainer);
        let branch = RunDir::open(&to).unwrap();
        let logged = branch.read_metrics().unwrap();
        assert_eq!(logged.last().map(|s| s.step), Some(2));
        assert_eq!(branch.latest_checkpoint().unwrap().unwrap().state.step, 2);
        // The run itself: untouched, its later checkpoint still its latest.
        assert_eq!(original.checkpoint_names(), ["step-000002", "step-000004"]);
        assert_eq!(original.latest_checkpoint().unwrap().unwrap().state.step, 4);
        assert_eq!(
            std::fs::read(original.file(crate::store::METRICS_FILE)).unwrap(),
            metrics_before
        );
        // A checkpoint changed in place is not carried over: refused, and no folder is left.
        let weights = from.join(crate::store::WEIGHTS_FILE);
        let mut bytes = std::fs::read(&weights).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&weights, bytes).unwrap();
        let damaged = dir.path().join("d");
        let err = branch_of(&damaged)
            .prepare(set(8, 1, 16, 16))
            .unwrap()
            .build()
            .err()
            .unwrap();
        assert!(err.to_string().contains("is damaged"), "{err:#}");
        assert!(!damaged.exists());
    }

    #[test]
    fn a_resumed_run_keeps_its_config_and_refuses_other_data() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        let first = TrainRequest::New {
            config: TrainConfig { seed: 9, ..tiny() },
            dir: run.clone(),
            stop: StopAt::Step(2),
        }
        .prepare(set(8, 1, 16, 16))
        .unwrap();
        let (mut trainer, _) = first.build().unwrap();
        trainer.checkpoint().unwrap();
        let moved = |stop, dataset: Option<&str>| TrainRequest::Resume {
            dir: run.clone(),
            stop,
            device: None,
            time_limit_s: Some(30.0),
            checkpoint_interval_s: Some(60.0),
            reset_optimizer: false,
            dataset: dataset.map(String::from),
            changes: ResumeChanges::default(),
            branch: None,
        };
        let resume = |stop| moved(stop, None);
        let opts = resume(StopAt::Configured)
            .load_options(LoadOptions::default())
            .unwrap();
        assert_eq!((opts.image_size, opts.channels), (Some(16), Some(1)));
        let p = resume(StopAt::Step(4)).prepare(set(8, 1, 16, 16)).unwrap();
        assert_eq!((p.config().seed, p.config().steps), (9, 4));
        assert_eq!(p.config().time_limit_s, Some(30.0));
        assert_eq!(p.config().checkpoint_interval_s, Some(60.0));
        assert!(p.is_resume());
        let err = resume(StopAt::Configured)
            .prepare(set(8, 3, 16, 16))
            .err()
            .unwrap();
        assert!(err.to_string().contains("does not fit the run"), "{err}");
        drop(trainer);
        // Other data that fits (the run's folder moved): trained on, and named by the run's
        // configuration from now on, with a notice.
        let p = moved(StopAt::Step(4), Some("/data/moved"))
            .prepare(set(8, 1, 16, 16))
            .unwrap();
        assert_eq!(p.config().dataset, "/data/moved");
        let (trainer, _) = p.build().unwrap();
        assert!(trainer
            .notices()
            .iter()
            .any(|n| n.contains("trains on /data/moved now")));
        assert_eq!(
            trainer.config().dataset,
            "/data/moved",
            "what its checkpoints save"
        );
        drop(trainer);
        // A learning rate that is no number is the user's flag, not the run's file.
        let mut nan = resume(StopAt::Step(4));
        if let TrainRequest::Resume { changes, .. } = &mut nan {
            changes.lr = Some(f64::NAN);
        }
        let err = nan.base_config().unwrap_err().to_string();
        assert_eq!(err, "--lr must be a positive number, got NaN");
        // A learning rate of its own from now on (to fine-tune lower).
        let mut lowered = resume(StopAt::Step(4));
        if let TrainRequest::Resume { changes, .. } = &mut lowered {
            changes.lr = Some(2e-4);
        }
        let p = lowered.prepare(set(8, 1, 16, 16)).unwrap();
        assert_eq!(p.config().lr, 2e-4);
        let (trainer, _) = p.build().unwrap();
        assert_eq!(trainer.config().lr, 2e-4);
        assert!(
            trainer
                .notices()
                .iter()
                .any(|n| n.contains("learning rate is 2e-4 now (it trained at 1e-3)")),
            "{:?}",
            trainer.notices()
        );
        // Stopped before its next checkpoint: the settings given with the resume are the
        // run's all the same, in its listing and for the next resume.
        drop(trainer);
        let listed = RunDir::open(&run).unwrap().load_config().unwrap();
        assert_eq!(
            (listed.lr, listed.steps, listed.dataset.as_str()),
            (2e-4, 4, "/data/moved")
        );
        let again = resume(StopAt::Configured)
            .prepare(set(8, 1, 16, 16))
            .unwrap();
        assert_eq!((again.config().lr, again.config().steps), (2e-4, 4));
        let (trainer, _) = again.build().unwrap();
        assert!(
            !trainer
                .notices()
                .iter()
                .any(|n| n.contains("learning rate")),
            "{:?}",
            trainer.notices()
        );
        drop(trainer);
        // Other images of the same size and number, under the run's own name or another
        // folder's: refused, naming both.
        let mut other = (*set(8, 1, 16, 16)).clone();
        other.images[5] = 3;
        let other = Arc::new(other);
        for dataset in [None, Some("/data/other")] {
            let err = moved(StopAt::Step(4), dataset)
                .prepare(other.clone())
                .err()
                .unwrap()
                .to_string();
            // The run's images are named as the run's, the other folder's by its name.
            let holds = match dataset {
                Some(name) => format!("; {name} holds 8 images"),
                None => " holds 8 images".to_string(),
            };
            assert!(
                err.starts_with("these are not the images the run was trained on (it trained on 8 images of 1×16×16")
                    && err.contains(&holds),
                "{err}"
            );
        }
    }

    #[test]
    fn a_run_records_its_images_and_a_folders_whole_path() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        // A folder given relative to the current one (which exists: the path parses).
        let here = std::env::current_dir().unwrap();
        let rel = "src";
        let p = TrainRequest::New {
            config: TrainConfig {
                dataset: rel.into(),
                ..tiny()
            },
            dir: run.clone(),
            stop: StopAt::Step(2),
        }
        .prepare(set(8, 1, 16, 16))
        .unwrap();
        assert_eq!(p.config().dataset, here.join(rel).display().to_string());
        let recorded = p.config().data_fingerprint.clone().unwrap();
        assert_eq!(recorded, set(8, 1, 16, 16).fingerprint());
        assert_ne!(recorded.blake3, set(8, 1, 16, 17).fingerprint().blake3);
        // Names stay names.
        assert_eq!(absolute_dataset("fashion_mnist"), "fashion_mnist");
        assert_eq!(absolute_dataset("/data/x"), "/data/x");
        // A run saved before fingerprints (or imported) records one at its first resume.
        let (mut trainer, _) = p.build().unwrap();
        trainer.checkpoint().unwrap();
        drop(trainer);
        let saved = RunDir::open(&run).unwrap();
        let mut cfg = saved.load_config().unwrap();
        assert_eq!(cfg.data_fingerprint.as_ref(), Some(&recorded));
        cfg.data_fingerprint = None;
        let ck = saved.checkpoint_to_resume(&run).unwrap();
        saved.save_settings_from(&ck, &cfg).unwrap();
        let p = plain_resume(run.clone(), StopAt::Step(4))
            .prepare(set(8, 1, 16, 16))
            .unwrap();
        let (trainer, _) = p.build().unwrap();
        assert_eq!(trainer.config().data_fingerprint.as_ref(), Some(&recorded));
        drop(trainer);
        let listed = RunDir::open(&run).unwrap().load_config().unwrap();
        assert_eq!(listed.data_fingerprint, Some(recorded));
    }
}
