//! Training (Algorithm 1): the step, checkpoints, and a worker thread that
//! reports [`events::TrainEvent`]s and obeys [`events::TrainCommand`]s.

pub mod adam;
pub mod ema;
pub mod events;
pub mod source;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::device::DeviceSpec;
use crate::diffusion::{p_losses_self_cond, Objective};
use crate::imaging::Image8;
use crate::model::{self, Unet};
use crate::rng::LabRng;
use crate::sampler::{self, SamplerKind};
use crate::schedule::ScheduleTables;
use crate::store::{self, RunDir, RunLock, RunState};

pub use crate::store::TrainConfig;

use adam::{Adam, AdamParams};
use ema::Ema;
use events::{FinishReason, StepStats, TrainCommand, TrainEvent, LOSS_BUCKETS};

/// Supplies clean training batches `(B, C, H, W)` in `[-1, 1]`, by global step.
pub trait BatchSource: Send {
    /// Optimisation steps per epoch.
    fn steps_per_epoch(&self) -> usize;
    /// The batch for global step `step` (0-based) and the epoch it belongs to.
    fn batch(&mut self, step: usize) -> Result<(Tensor, usize)>;
}

/// A failure that stops training; the last good checkpoint stays on disk.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss or the gradient became NaN or infinite.
    #[error("{what} became {value} at step {step}; training stopped (try a lower --lr or --grad-clip 1.0){kept}")]
    NonFinite {
        /// Step that produced it.
        step: usize,
        /// What became non-finite ("loss", "gradient norm").
        what: &'static str,
        /// The value.
        value: f64,
        /// Where the last good checkpoint is, if any.
        kept: String,
    },
}

/// A model being trained, with its optimiser and (optionally) its run directory.
pub struct Trainer {
    cfg: TrainConfig,
    device: Device,
    model: Unet,
    varmap: VarMap,
    opt: Adam,
    ema: Option<Ema>,
    tables: ScheduleTables,
    step: usize,
    epoch: usize,
    elapsed_s: f64,
    last_checkpoint: Option<usize>,
    run: Option<RunDir>,
    /// Held while this trainer owns its run directory (one writer per run).
    _lock: Option<RunLock>,
    notices: Vec<String>,
    /// The next step's random draws, made while the device ran this step's backward pass.
    next_draws: Option<StepDraws>,
    /// A checkpoint that cannot be written pauses the run, weights in memory, instead of
    /// ending it (see [`TrainEvent::CheckpointFailed`]).
    hold_on_failed_checkpoints: bool,
    /// Checkpoints of the branch this run went back from, removed with its next checkpoint
    /// (see [`RunState::abandoned`]).
    abandoned: Vec<String>,
    /// Steps whose metrics line could not be written yet (a full disk), oldest first: tried
    /// again after every step and written before the next checkpoint, which fails while they
    /// cannot be (a checkpoint's history has no gap). Training goes on meanwhile.
    unlogged: Vec<StepStats>,
}

/// Metrics lines a run keeps in memory while they cannot be written before it fails (about
/// 30 MB; a full disk is met at the next checkpoint long before).
const MAX_UNLOGGED: usize = 100_000;

/// A training step's random draws, all from its own stream (seed and step number): the
/// timesteps, then the noise, then (with self-conditioning) the coin.
struct StepDraws {
    /// The step (0-based) and batch shape they are for.
    step: usize,
    dims: Vec<usize>,
    t: Vec<usize>,
    noise: Tensor,
    self_cond: bool,
}

/// How [`Trainer::resume_with`] reopens a run.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    /// The new stop step (`None`: the saved one).
    pub steps: Option<usize>,
    /// Train on this device instead of the saved one.
    pub device: Option<DeviceSpec>,
    /// Start Adam (and the EMA, from the weights) afresh when their saved state is missing or
    /// unreadable, instead of refusing to resume.
    pub reset_optimizer: bool,
    /// Train on this data instead of the run's own (whose folder moved, say); the run's
    /// configuration names it from now on. The caller checks that it fits.
    pub dataset: Option<String>,
    /// The fingerprint of the images it trains on now, recorded where the run has none yet
    /// (saved before there was one, or imported). The caller checks it against the run's.
    pub data_fingerprint: Option<crate::data::DataFingerprint>,
    /// Training settings from now on (a lower learning rate to fine-tune, an EMA or Min-SNR
    /// for an imported run, say), instead of the saved ones; checked by the caller.
    ///
    /// The stop step, data and settings a resume changes are saved into the checkpoint it
    /// continues from at once (see [`crate::store::RunDir::save_settings_from`]).
    pub changes: crate::store::ResumeChanges,
}

/// The environment variable that picks training's backward pass: `release` (the default: each
/// activation's memory released once the rest of the pass no longer reads it) or `plain`
/// (candle's own pass, which holds them all to its end), for comparisons. The gradients are the
/// same.
pub const BACKWARD_VAR: &str = "DDPM_LAB_BACKWARD";

/// Whether training's backward pass releases as it goes ([`BACKWARD_VAR`]); a value other than
/// `release` or `plain` is an error.
fn releasing_backward() -> Result<bool> {
    backward_choice(std::env::var(BACKWARD_VAR).ok().as_deref())
}

/// [`releasing_backward`] for this value of [`BACKWARD_VAR`] (`None`: unset).
fn backward_choice(value: Option<&str>) -> Result<bool> {
    match value.map(str::trim) {
        None | Some("release") => Ok(true),
        Some("plain") => Ok(false),
        Some(other) => bail!("{BACKWARD_VAR}={other}: expected release (the default) or plain"),
    }
}

impl Trainer {
    /// A fresh model for `cfg`. With `run_dir`, the directory is created and the config saved.
    pub fn new(cfg: TrainConfig, run_dir: Option<&Path>) -> Result<Self> {
        cfg.validate()?;
        releasing_backward()?;
        let device = cfg.device.open()?;
        let (model, varmap) = model::new_trainable(&cfg.model, cfg.seed, &device)?;
        let opt = Adam::new(
            named_vars(&varmap),
            AdamParams {
                lr: cfg.lr,
                ..AdamParams::default()
            },
        )?;
        let ema = match cfg.ema_decay {
            Some(d) => Some(Ema::new(&varmap, d)?),
            None => None,
        };
        let mut notices = Vec::new();
        let (run, lock) = match run_dir {
            Some(p) => {
                RunDir::check_new_run_path(p)?;
                let r = RunDir::create(p)?;
                let lock = RunLock::acquire(r.path())?;
                r.check_holds_no_run()?;
                notices.extend(r.remove_leftovers());
                notices.extend(cfg.learning_rate_notices(0));
                r.save_config(&cfg)?;
                // A new run starts a new curve.
                r.truncate_log(store::METRICS_FILE, 0)?;
                r.truncate_log(store::QUALITY_FILE, 0)?;
                (Some(r), Some(lock))
            }
            None => (None, None),
        };
        let abandoned = Vec::new();
        Ok(Self {
            tables: cfg.tables()?,
            cfg,
            device,
            model,
            varmap,
            opt,
            ema,
            step: 0,
            epoch: 0,
            elapsed_s: 0.0,
            last_checkpoint: None,
            run,
            _lock: lock,
            notices,
            next_draws: None,
            hold_on_failed_checkpoints: false,
            abandoned,
            unlogged: Vec::new(),
        })
    }

    /// Reopens a run directory to continue training. `steps`, when given, replaces the stop step;
    /// `device` replaces the saved device.
    pub fn resume(
        run_dir: &Path,
        steps: Option<usize>,
        device: Option<DeviceSpec>,
    ) -> Result<Self> {
        Self::resume_with(
            run_dir,
            ResumeOptions {
                steps,
                device,
                reset_optimizer: false,
                dataset: None,
                data_fingerprint: None,
                changes: Default::default(),
            },
        )
    }

    /// Reopens a run directory at its newest complete checkpoint. Refuses (one line naming the
    /// file and the reason) what it cannot trust: no checkpoint, a config that lacks fields,
    /// tensors with NaN or infinities, shapes that do not fit, and a missing optimizer or EMA
    /// state unless `opts.reset_optimizer`.
    ///
    /// `run_dir` may also be one checkpoint's folder (`RUN/checkpoints/step-N`): the run
    /// continues from that checkpoint instead of its newest (when the newest is damaged, or to
    /// go back), and its later steps are dropped from the logs as for any resume.
    pub fn resume_with(run_dir: &Path, opts: ResumeOptions) -> Result<Self> {
        let run = RunDir::open(store::Checkpoint::run_dir_of(run_dir))?;
        let lock = RunLock::acquire(run.path())?;
        // A damaged checkpoint names the run's others, from which it can go on.
        let asked = store::Checkpoint::is_checkpoint_folder(run_dir).then_some(run_dir);
        let ck = run.checkpoint_to_resume(run_dir)?;
        let damaged = |e: anyhow::Error| run.with_other_checkpoints(e, Some(ck.dir()));
        let mut cfg = run.resume_config(&ck)?;
        let trained_with = cfg.clone();
        if let Some(s) = opts.steps {
            cfg.steps = s;
        }
        opts.changes.apply_to(&mut cfg);
        if let Some(d) = opts.device {
            cfg.device = d;
        }
        cfg.validate()?;
        releasing_backward()?;
        let state = ck.state.clone();
        let device = cfg.device.open()?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let model = Unet::new(&cfg.model, vb)?;
        let weights_file = ck.file(store::WEIGHTS_FILE);
        let weights = store::load_tensors(&weights_file, &device).map_err(damaged)?;
        load_into_varmap(&varmap, &weights, &weights_file).map_err(damaged)?;
        let mut opt = Adam::new(
            named_vars(&varmap),
            AdamParams {
                lr: cfg.lr,
                ..AdamParams::default()
            },
        )?;
        let mut notices = run.remove_leftovers();
        notices.extend(store::ResumeChanges::notices(&trained_with, &cfg));
        if let Some(ds) = opts.dataset.filter(|ds| *ds != cfg.dataset) {
            notices.push(format!(
                "it trains on {ds} now (it was trained on {})",
                cfg.dataset
            ));
            cfg.dataset = ds;
        }
        if cfg.data_fingerprint.is_none() {
            cfg.data_fingerprint = opts.data_fingerprint;
        }
        let opt_file = ck.file(store::OPTIMIZER_FILE);
        let restored = store::load_tensors(&opt_file, &device).and_then(|st| {
            opt.load_state(&st)
                .with_context(|| format!("{} does not fit the model", opt_file.display()))
        });
        // Imported weights come without Adam's state (and maybe without EMA weights): they
        // start afresh, as `--reset-optimizer` would make them.
        let reset = opts.reset_optimizer || state.imported;
        if state.imported && !opt_file.exists() {
            notices.push(
                "Adam starts from zero moments: imported weights carry no optimizer state".into(),
            );
        } else if let Err(e) = restored {
            if !reset {
                let e = e.context(
                    "the optimizer state cannot be restored (--reset-optimizer starts Adam afresh)",
                );
                // An earlier checkpoint whose state is whole goes on exactly.
                let run = store::RunDir::at(store::Checkpoint::run_dir_of(ck.dir()));
                return Err(run.with_other_checkpoints(e, Some(ck.dir())));
            }
            let why = crate::errors::one_line(&e);
            notices.push(format!("Adam restarts from zero moments ({why})"));
        }
        let ema = match cfg.ema_decay {
            // An EMA new with this resume starts from the weights (its notice says so).
            Some(d) if trained_with.ema_decay.is_none() => Some(Ema::new(&varmap, d)?),
            Some(d) => {
                let ema_file = ck.file(store::EMA_FILE);
                // Checked to be the model's tensors, each of its shape, as the weights are: an
                // EMA that does not fit would be saved into every later checkpoint.
                let loaded = store::load_tensors(&ema_file, &device).and_then(|t| {
                    Ok(crate::model::state_dict::state_dict_of(t, &ema_file, &cfg.model)?.tensors)
                });
                match loaded {
                    Ok(t) => Some(Ema::from_tensors(d, t)),
                    Err(_) if state.imported && !ema_file.exists() => {
                        notices.push(
                            "the EMA starts from the weights: none were imported beside them"
                                .into(),
                        );
                        Some(Ema::new(&varmap, d)?)
                    }
                    // A checkpoint written before a resume gave the run its EMA (its digests
                    // list every file it wrote) has none to restore: not a damaged one.
                    Err(_) if written_without(&state, store::EMA_FILE) && !ema_file.exists() => {
                        notices.push(format!(
                            "the EMA starts from the weights: the checkpoint at step {} was written before the run had one",
                            state.step
                        ));
                        Some(Ema::new(&varmap, d)?)
                    }
                    Err(e) if reset => {
                        let why = crate::errors::one_line(&e);
                        notices.push(format!("the EMA restarts from the weights ({why})"));
                        Some(Ema::new(&varmap, d)?)
                    }
                    Err(e) => {
                        return Err(damaged(e.context(
                            "the EMA weights cannot be restored (--reset-optimizer restarts the EMA from the weights)",
                        )))
                    }
                }
            }
            None => None,
        };
        let later = run.checkpoints_past(&ck);
        // Also those a crash left before the checkpoint this one branched from dropped them.
        let existing = run.checkpoint_names();
        let abandoned: Vec<String> = later
            .iter()
            .chain(state.abandoned.iter().filter(|n| existing.contains(n)))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let (s, are) = if later.len() == 1 {
            ("", "is")
        } else {
            ("s", "are")
        };
        if !later.is_empty() && asked.is_some() {
            notices.push(format!(
                "going back to step {}: the later checkpoint{s} {} {are} removed at this run's next checkpoint, and the logs and previews after step {} are dropped now",
                state.step,
                later.join(", "),
                state.step,
            ));
        } else if !later.is_empty() {
            // Past the one `latest` names: left by a trainer that stopped between writing a
            // checkpoint and switching to it, or by the branch the run went back from.
            notices.push(format!(
                "continuing from step {}, the run's latest checkpoint: the later checkpoint{s} {} (never switched to) {are} removed at its next checkpoint, and the logs after step {} are dropped now; --resume {} continues from {} instead",
                state.step,
                later.join(", "),
                state.step,
                run.checkpoints_dir().join(later.last().expect("not empty")).display(),
                if later.len() == 1 { "it" } else { "the newest" },
            ));
        }
        notices.extend(cfg.learning_rate_notices(state.step));
        notices.extend(cfg.decay_change_notice(&trained_with, state.step));
        if asked.is_some() {
            run.switch_latest_to(&ck)?;
        }
        // The stop step, training settings and data given with this resume are the run's from
        // now on, kept even if this trainer stops before its first checkpoint.
        let mut settings = trained_with.clone();
        opts.changes.apply_to(&mut settings);
        settings.steps = cfg.steps;
        settings.dataset = cfg.dataset.clone();
        settings.data_fingerprint = cfg.data_fingerprint.clone();
        if settings != trained_with {
            if let Err(e) = run.save_settings_from(&ck, &settings) {
                notices.push(format!(
                    "the new settings are saved with the next checkpoint ({e:#})"
                ));
            }
        }
        let logged = run.truncate_log(store::METRICS_FILE, state.step)?;
        // Steps the loss log lacks (cut or deleted by hand, or lost with a disk): the curve
        // jumps over them, which is said rather than drawn as if trained so. An imported run's
        // log starts at its import.
        if logged.unwrap_or(0) < state.step && !(state.imported && logged.is_none()) {
            notices.push(format!(
                "the loss log ({}) {} and the checkpoint is at step {}: steps {}–{} are missing from it, and its curve jumps there",
                store::METRICS_FILE,
                logged.map_or("is empty".to_string(), |l| format!("ends at step {l}")),
                state.step,
                logged.unwrap_or(0) + 1,
                state.step
            ));
        }
        run.truncate_log(store::QUALITY_FILE, state.step)?;
        store::previews::remove_after(run.path(), state.step)?;
        Ok(Self {
            tables: cfg.tables()?,
            cfg,
            device,
            model,
            varmap,
            opt,
            ema,
            step: state.step,
            epoch: state.epoch,
            elapsed_s: state.elapsed_s,
            last_checkpoint: Some(state.step),
            run: Some(run),
            _lock: Some(lock),
            notices,
            next_draws: None,
            hold_on_failed_checkpoints: false,
            abandoned,
            unlogged: Vec::new(),
        })
    }

    /// What opening the run cleaned up or reset, for the user (leftovers of a crash removed, an
    /// optimizer restarted on request).
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Puts `notice` first among [`Self::notices`] (what the caller did to open the run).
    pub fn add_notice(&mut self, notice: String) {
        self.notices.insert(0, notice);
    }

    /// Replaces the checkpoint interval of this session (see
    /// [`TrainConfig::checkpoint_interval_s`]).
    pub fn set_checkpoint_interval(&mut self, seconds: Option<f64>) {
        self.cfg.checkpoint_interval_s = seconds;
    }

    /// Replaces the time limit of this session (see [`TrainConfig::time_limit_s`]).
    pub fn set_time_limit(&mut self, seconds: Option<f64>) {
        self.cfg.time_limit_s = seconds;
    }

    /// The run's configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The device in use.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The run directory, if saved to disk.
    pub fn run_dir(&self) -> Option<&Path> {
        self.run.as_ref().map(|r| r.path())
    }

    /// The trainable network (its weights are `Var`s).
    pub fn model(&self) -> &Unet {
        &self.model
    }

    /// The variables, by PyTorch name.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Trainable parameters.
    pub fn num_params(&self) -> usize {
        model::num_params(&self.varmap)
    }

    fn kept_note(&self) -> String {
        match (&self.run, self.last_checkpoint) {
            (Some(r), Some(s)) => format!(
                "; the last good checkpoint (step {s}) is kept in {}",
                r.path().display()
            ),
            _ => String::new(),
        }
    }

    /// One optimisation step on clean images `x0` (Algorithm 1): random t and noise from the
    /// seed and the step number, loss, backward, (clip), Adam, (EMA).
    pub fn train_step(&mut self, x0: &Tensor, epoch: usize) -> Result<StepStats> {
        let started = Instant::now();
        // Tests make step N fail ("return(msg)") or crash ("panic") here.
        crate::fail_point!("train-step", self.step + 1);
        let n = x0.dim(0)?;
        let draws = match self.next_draws.take() {
            Some(d) if d.step == self.step && d.dims == x0.dims() => d,
            _ => self.draws(self.step, x0.dims())?,
        };
        let (t, noise, self_cond) = (draws.t, draws.noise, draws.self_cond);
        let (loss, per_example) = p_losses_self_cond(
            &self.model,
            &self.tables,
            self.cfg.objective,
            self.cfg.loss,
            x0,
            &t,
            &noise,
            self_cond,
        )?;
        let loss = match self.cfg.min_snr_gamma {
            Some(gamma) => {
                let w = min_snr_weights(&self.tables, self.cfg.objective, &t, gamma);
                let w = Tensor::from_vec(w, n, per_example.device())?;
                (&per_example * &w)?.mean_all()?
            }
            None => loss,
        };
        // Each activation's memory goes as soon as the rest of the pass no longer reads it
        // (the vendored candle-core's `backward_releasing`; `loss` and `per_example`, read
        // below, are kept), unless DDPM_LAB_BACKWARD=plain.
        let mut grads = if releasing_backward()? {
            crate::ops::on_pool(loss.device(), || loss.backward_releasing())?
        } else {
            crate::ops::on_pool(loss.device(), || loss.backward())?
        };
        // The next step's draws (host work: some 10⁵ normals) while a GPU runs this step,
        // before the read below waits for it. Unused if the next batch has another shape.
        self.next_draws = Some(self.draws(self.step + 1, x0.dims())?);
        // One read from the device per step, once the backward pass is queued: the loss, each
        // example's loss and the gradient norm together (a GPU is never idle waiting for the
        // host to read the loss before it queues the backward pass).
        let vars = named_vars(&self.varmap);
        // Adam's flat gradient (all of them in one tensor) serves the norm and the clipping too.
        let flat = self.opt.flat_gradient(&grads)?;
        let sums = match &flat {
            Some(g) => flat_squared_sums(g)?,
            None => squared_sums(&vars, &grads)?,
        };
        let (loss_value, per, norm) = read_step_values(&loss, &per_example, sums)?;
        if !loss_value.is_finite() {
            return Err(TrainError::NonFinite {
                step: self.step + 1,
                what: "loss",
                value: loss_value,
                kept: self.kept_note(),
            }
            .into());
        }
        if !norm.is_finite() {
            // Stop before Adam touches weights or moments: the model stays finite.
            return Err(TrainError::NonFinite {
                step: self.step + 1,
                what: "gradient norm",
                value: norm,
                kept: self.kept_note(),
            }
            .into());
        }
        let lr = self.cfg.learning_rate(self.step);
        self.opt.params.lr = lr;
        let max_norm = self.cfg.grad_clip.unwrap_or(f64::INFINITY);
        match flat {
            Some(g) => {
                let g = match clip_scale(norm, max_norm) {
                    Some(scale) => (g * scale)?,
                    None => g,
                };
                self.opt.step_flat(g)?;
            }
            None => {
                clip_to(&vars, &mut grads, norm, max_norm)?;
                self.opt.step(&grads)?;
            }
        }
        if let Some(ema) = &mut self.ema {
            let decay = ema.decay();
            let decay = if self.cfg.ema_warmup {
                decay.min((1 + self.step) as f64 / (10 + self.step) as f64)
            } else {
                decay
            };
            ema.update_with(&self.varmap, decay)?;
        }
        let secs = started.elapsed().as_secs_f64();
        self.step += 1;
        self.epoch = epoch;
        self.elapsed_s += secs;
        let stats = StepStats {
            step: self.step,
            epoch,
            loss: loss_value,
            images_per_s: n as f64 / secs.max(1e-9),
            elapsed_s: self.elapsed_s,
            lr,
            bucket_losses: bucket_losses(&t, &per, self.cfg.timesteps),
        };
        self.log_metrics(&stats)?;
        Ok(stats)
    }

    /// Writes `stats` to the run's metrics log after the lines still unwritten; a line that
    /// cannot be written (a full disk) waits in memory (see [`Self::unlogged`]) instead of
    /// ending the run.
    fn log_metrics(&mut self, stats: &StepStats) -> Result<()> {
        if self.run.is_none() {
            return Ok(());
        }
        self.unlogged.push(stats.clone());
        match self.flush_metrics() {
            Err(e) if self.unlogged.len() > MAX_UNLOGGED => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes the metrics lines still unwritten, in step order; those it cannot write stay.
    fn flush_metrics(&mut self) -> Result<()> {
        let Some(run) = &self.run else {
            return Ok(());
        };
        let mut written = 0;
        let result = self
            .unlogged
            .iter()
            .try_for_each(|s| run.append_metrics(s).map(|()| written += 1));
        self.unlogged.drain(..written);
        result
    }

    /// Step `step`'s random draws for a batch of shape `dims`, from its own stream.
    fn draws(&self, step: usize, dims: &[usize]) -> Result<StepDraws> {
        let mut rng = LabRng::derived(self.cfg.seed, 1_000 + step as u64);
        let t = rng.uniform_indices(dims[0], self.cfg.timesteps);
        let noise = rng.randn(dims, &self.device)?;
        // Self-conditioning on half of the steps (seed 002's `random() < 0.5`), drawn after t
        // and the noise from the step's own stream: resuming replays it exactly, and runs
        // without self-conditioning draw nothing more than before.
        let self_cond = self.cfg.model.self_condition && rng.coin();
        Ok(StepDraws {
            step,
            dims: dims.to_vec(),
            t,
            noise,
            self_cond,
        })
    }

    /// The newest checkpoint, where this trainer wrote it (or resumed from it) at this step.
    fn checkpoint_of_this_step(&self) -> Option<PathBuf> {
        let run = self.run.as_ref()?;
        if self.last_checkpoint != Some(self.step) {
            return None;
        }
        let ck = run.latest_checkpoint().ok()??;
        (ck.state.step == self.step).then(|| ck.dir().to_path_buf())
    }

    /// Writes weights, optimiser, EMA, configuration and progress to the run directory (if
    /// any) as one checkpoint (see [`crate::store::layout`]). Everything is checked finite
    /// before anything is written, so the newest checkpoint is always one training can go on
    /// from.
    pub fn checkpoint(&mut self) -> Result<Option<PathBuf>> {
        Ok(self.checkpoint_once()?.map(|(dir, _)| dir))
    }

    /// [`Self::checkpoint`], with whether it wrote one now: asked again at the step of the
    /// newest checkpoint (the time limit right after a timed checkpoint, `c` twice), the
    /// checkpoint is that one, not a second copy.
    fn checkpoint_once(&mut self) -> Result<Option<(PathBuf, bool)>> {
        // The history up to this step first: a checkpoint never has steps its log lacks.
        self.flush_metrics()?;
        let Some(run) = &self.run else {
            return Ok(None);
        };
        if let Some(dir) = self.checkpoint_of_this_step() {
            return Ok(Some((dir, false)));
        }
        let weights = var_tensors(&self.varmap);
        let optimizer = self.opt.state_tensors()?;
        let refuse = |what: &str, e: anyhow::Error| {
            e.context(format!(
                "refusing to checkpoint non-finite {what}; the last good checkpoint is kept"
            ))
        };
        store::check_finite(&weights, Path::new("weights")).map_err(|e| refuse("weights", e))?;
        store::check_finite(&optimizer, Path::new("optimizer state"))
            .map_err(|e| refuse("optimizer state", e))?;
        if let Some(ema) = &self.ema {
            store::check_finite(ema.tensors(), Path::new("EMA weights"))
                .map_err(|e| refuse("EMA weights", e))?;
        }
        let mut names = vec![store::WEIGHTS_FILE, store::OPTIMIZER_FILE];
        if self.ema.is_some() {
            names.push(store::EMA_FILE);
        }
        let state = RunState {
            step: self.step,
            epoch: self.epoch,
            seed: self.cfg.seed,
            elapsed_s: self.elapsed_s,
            imported: false,
            abandoned: self.abandoned.clone(),
            // Filled in as the files are written.
            digests: Default::default(),
        };
        let ema = self.ema.as_ref();
        let dir = run.write_checkpoint(&self.cfg, &state, &names, &mut |name, path| {
            let tensors = match name {
                store::WEIGHTS_FILE => &weights,
                store::OPTIMIZER_FILE => &optimizer,
                _ => ema.expect("EMA is on").tensors(),
            };
            Ok(candle_core::safetensors::save(tensors, path)?)
        })?;
        self.last_checkpoint = Some(self.step);
        // The branch the run went back from is gone now.
        self.abandoned.clear();
        Ok(Some((dir, true)))
    }

    /// A detached copy of the network for sampling (the EMA weights when enabled).
    pub fn sampling_model(&self) -> Result<Unet> {
        match &self.ema {
            Some(ema) => {
                let vb = VarBuilder::from_tensors(ema.tensors().clone(), DType::F32, &self.device);
                Ok(Unet::new(&self.cfg.model, vb)?)
            }
            None => model::detached_copy(&self.varmap, &self.cfg.model, &self.device),
        }
    }

    /// `n` preview images drawn with DDIM from the current weights (same seed every time, so
    /// previews show how the same noise is denoised as training goes on).
    pub fn preview(&self, n: usize) -> Result<Vec<Image8>> {
        let m = self.sampling_model()?;
        let c = self.cfg.model.channels;
        let s = self.cfg.image_size;
        let d = sampler::sample(
            &m,
            &self.tables,
            self.cfg.objective,
            (n, c, s, s),
            SamplerKind::Ddim {
                steps: self.cfg.preview_steps.max(1),
                eta: 0.0,
            },
            self.cfg.seed,
            &sampler::KeepFrames::last(),
            &mut |_, _| {},
        )?;
        Ok(d.final_images().to_vec())
    }

    /// Trains until the configured stop step, reporting to `events` and obeying `commands`.
    /// Returns when done or stopped (after a final checkpoint) or on the first error.
    /// Makes a checkpoint that cannot be written (a full disk) pause the run with its weights
    /// in memory until one can be, instead of ending it: for a driver that asks again (the lab
    /// when told to, `train` by itself for a while) and gives up by going away.
    pub fn hold_on_failed_checkpoints(&mut self) {
        self.hold_on_failed_checkpoints = true;
    }

    /// A checkpoint, or (holding on failed checkpoints) `Ok(None)` after saying why it could
    /// not be written.
    fn checkpoint_or_hold(&mut self, events: &Sender<TrainEvent>) -> Result<Option<PathBuf>> {
        match self.checkpoint() {
            Err(e) if self.hold_on_failed_checkpoints => {
                let _ = events.send(TrainEvent::CheckpointFailed {
                    step: self.step,
                    message: crate::errors::cause_first(&e),
                    last: false,
                });
                Ok(None)
            }
            other => other,
        }
    }

    /// Ends the session as `why` says once its final checkpoint is written; holding on failed
    /// checkpoints, a final checkpoint that cannot be written waits, paused, for a command to
    /// try again (any but `Resume`, which has nothing to train), and fails only once the
    /// driver is gone.
    fn finish_or_hold(
        &mut self,
        events: &Sender<TrainEvent>,
        commands: &Receiver<TrainCommand>,
        why: FinishReason,
    ) -> Result<()> {
        loop {
            let e = match self.finish(events, why) {
                Err(e) if self.hold_on_failed_checkpoints => e,
                done => return done,
            };
            let _ = events.send(TrainEvent::CheckpointFailed {
                step: self.step,
                message: crate::errors::cause_first(&e),
                last: true,
            });
            let _ = events.send(TrainEvent::Paused { step: self.step });
            loop {
                match commands.recv() {
                    Ok(TrainCommand::Resume) => {}
                    Ok(_) => break,
                    Err(_) => return Err(e),
                }
            }
        }
    }

    pub fn run_loop(
        &mut self,
        source: &mut dyn BatchSource,
        events: &Sender<TrainEvent>,
        commands: &Receiver<TrainCommand>,
    ) -> Result<()> {
        let send = |e: TrainEvent| {
            let _ = events.send(e);
        };
        send(TrainEvent::Started {
            run_dir: self.run_dir().map(Path::to_path_buf),
            start_step: self.step,
            total_steps: self.cfg.steps,
            steps_per_epoch: source.steps_per_epoch(),
            num_params: self.num_params(),
            notices: self.notices.clone(),
        });
        // Training time of this session, for the time limit and the checkpoint interval.
        let mut clock = ActiveClock::start();
        // Training time at the last checkpoint, for `checkpoint_interval_s`.
        let mut checkpointed_at = Duration::ZERO;
        // The step of this session's last preview.
        let mut previewed_at = None;
        while self.step < self.cfg.steps {
            if let Some(limit) = self.cfg.time_limit_s {
                if clock.now().as_secs_f64() >= limit {
                    // The budget's end is the session's last step: where previews are on, one
                    // shows where it stopped (a slow machine may stop far from the next one).
                    if self.cfg.preview_every > 0
                        && self.step > 0
                        && previewed_at != Some(self.step)
                    {
                        self.send_preview(events)?;
                    }
                    return self.finish_or_hold(events, commands, FinishReason::TimeLimit);
                }
            }
            // Commands: non-blocking while running, blocking while paused.
            loop {
                let cmd = if clock.paused() {
                    match commands.recv_timeout(Duration::from_millis(200)) {
                        Ok(c) => Some(c),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => Some(TrainCommand::Stop),
                    }
                } else {
                    commands.try_recv().ok()
                };
                match cmd {
                    None => break,
                    Some(TrainCommand::Pause) if !clock.paused() => {
                        clock.pause();
                        send(TrainEvent::Paused { step: self.step });
                    }
                    Some(TrainCommand::Resume) if clock.paused() => {
                        clock.resume();
                        send(TrainEvent::Resumed { step: self.step });
                        break;
                    }
                    Some(TrainCommand::Checkpoint) => match self.checkpoint_or_hold(events)? {
                        Some(p) => {
                            checkpointed_at = clock.now();
                            send(TrainEvent::Checkpointed {
                                step: self.step,
                                path: p,
                            });
                        }
                        // Not written: the run waits, paused, for space to be made.
                        None if self.run_dir().is_some() && !clock.paused() => {
                            clock.pause();
                            send(TrainEvent::Paused { step: self.step });
                        }
                        None => {}
                    },
                    Some(TrainCommand::Stop) => {
                        return self.finish_or_hold(events, commands, FinishReason::Stopped);
                    }
                    Some(_) => {}
                }
                if !clock.paused() {
                    break;
                }
            }
            let (x0, epoch) = source.batch(self.step)?;
            let logged = self.unlogged.is_empty();
            let stats = self.train_step(&x0, epoch)?;
            send(TrainEvent::Step(stats));
            let every = self.cfg.checkpoint_every;
            let now = clock.now();
            let by_steps = every > 0 && self.step.is_multiple_of(every);
            let by_time = self
                .cfg
                .checkpoint_interval_s
                .is_some_and(|s| (now - checkpointed_at).as_secs_f64() >= s);
            // The disk just filled up (the step's metrics line was not written): a driver
            // that can ask again hears of it now, its run held with its weights in memory,
            // rather than at the next checkpoint.
            let by_disk = logged && !self.unlogged.is_empty() && self.hold_on_failed_checkpoints;
            if (by_steps || by_time || by_disk) && self.step < self.cfg.steps {
                checkpointed_at = now;
                match self.checkpoint_or_hold(events)? {
                    Some(p) => send(TrainEvent::Checkpointed {
                        step: self.step,
                        path: p,
                    }),
                    // Not written: the run waits, its weights in memory, for space to be made.
                    None if self.hold_on_failed_checkpoints && self.run_dir().is_some() => {
                        clock.pause();
                        send(TrainEvent::Paused { step: self.step });
                    }
                    None => {}
                }
            }
            if self.cfg.preview_due(self.step) {
                self.send_preview(events)?;
                previewed_at = Some(self.step);
            }
        }
        self.finish_or_hold(events, commands, FinishReason::Steps)
    }

    /// Draws the preview of the current step, keeps it with the run and sends it.
    fn send_preview(&self, events: &Sender<TrainEvent>) -> Result<()> {
        let images = self.preview(self.cfg.preview_count.max(1))?;
        if let Some(dir) = self.run_dir() {
            // Kept for a later look (an opened run shows its last). A grid that cannot be
            // written is still shown: training goes on.
            let _ = store::previews::save_preview(dir, self.step, &images);
        }
        let _ = events.send(TrainEvent::Preview {
            step: self.step,
            images,
        });
        Ok(())
    }

    /// Writes the final checkpoint and says the session ended, and why.
    fn finish(&mut self, events: &Sender<TrainEvent>, why: FinishReason) -> Result<()> {
        // A stop right after a scheduled checkpoint (or at the step resumed from) writes
        // nothing new: it is not announced twice.
        if let Some((p, true)) = self.checkpoint_once()? {
            let _ = events.send(TrainEvent::Checkpointed {
                step: self.step,
                path: p,
            });
        }
        let _ = events.send(TrainEvent::Finished {
            step: self.step,
            run_dir: self.run_dir().map(Path::to_path_buf),
            why,
        });
        Ok(())
    }
}

/// Training time of one session: wall-clock time with the pauses left out.
struct ActiveClock {
    /// Time before the current stretch.
    before: Duration,
    /// Start of the current stretch (`None` while paused).
    since: Option<Instant>,
}

impl ActiveClock {
    fn start() -> Self {
        Self {
            before: Duration::ZERO,
            since: Some(Instant::now()),
        }
    }

    fn now(&self) -> Duration {
        self.before + self.since.map_or(Duration::ZERO, |s| s.elapsed())
    }

    fn paused(&self) -> bool {
        self.since.is_none()
    }

    fn pause(&mut self) {
        if let Some(s) = self.since.take() {
            self.before += s.elapsed();
        }
    }

    fn resume(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }
}

/// A training worker running on its own thread.
pub struct TrainHandle {
    /// Events from the worker.
    pub events: Receiver<TrainEvent>,
    /// Commands to the worker.
    pub commands: Sender<TrainCommand>,
    join: Option<JoinHandle<()>>,
}

impl TrainHandle {
    /// Waits for the worker thread to end.
    pub fn join(mut self) {
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Runs `make` and then the training loop on a worker thread. Errors (including a failing
/// `make`) arrive as [`TrainEvent::Failed`]; panics are caught and reported the same way.
pub fn spawn_training<F>(make: F) -> TrainHandle
where
    F: FnOnce() -> Result<(Trainer, Box<dyn BatchSource>)> + Send + 'static,
{
    let (etx, erx) = mpsc::channel();
    let (ctx, crx) = mpsc::channel();
    let join = std::thread::Builder::new()
        .name("ddpm-train".into())
        .spawn(move || {
            let etx2 = etx.clone();
            let result = crate::catch_panic(move || {
                let (mut trainer, mut source) = make()?;
                // Keep the last good checkpoint; report the step reached.
                // A divergence names its own step (the one that produced it).
                let r = trainer
                    .run_loop(source.as_mut(), &etx, &crx)
                    .map_err(|e| match e.downcast_ref::<TrainError>() {
                        Some(TrainError::NonFinite { .. }) => e,
                        None => e.context(format!("at step {}", trainer.step())),
                    });
                // The memory the run held, back to the GPU's driver (the pool keeps what is
                // freed; the lab may sit idle, or another process want the GPU). Nothing to do
                // off CUDA.
                let device = trainer.device().clone();
                drop((trainer, source));
                let _ = crate::device::release_cached_memory(&device);
                r
            });
            let msg = match result {
                Ok(Ok(())) => return,
                Ok(Err(e)) => crate::errors::cause_first(&e),
                Err(panic) => format!("training crashed: {panic}"),
            };
            let _ = etx2.send(TrainEvent::Failed {
                step: 0,
                message: msg,
            });
        })
        .expect("cannot spawn the training thread");
    TrainHandle {
        events: erx,
        commands: ctx,
        join: Some(join),
    }
}

/// Min-SNR-γ weights of examples at timesteps `t` for `objective` (Hang et al. 2023).
pub fn min_snr_weights(
    tables: &ScheduleTables,
    objective: Objective,
    t: &[usize],
    gamma: f64,
) -> Vec<f32> {
    t.iter()
        .map(|&ti| {
            let snr = tables.snr[ti];
            let clipped = snr.min(gamma);
            let w = match objective {
                Objective::Noise => clipped / snr,
                Objective::V => clipped / (snr + 1.0),
                Objective::X0 => clipped,
            };
            w as f32
        })
        .collect()
}

/// Mean loss per timestep bucket (`LOSS_BUCKETS` equal ranges of `0..T`).
pub fn bucket_losses(t: &[usize], per_example: &[f32], timesteps: usize) -> Vec<Option<f64>> {
    let mut sum = [0f64; LOSS_BUCKETS];
    let mut count = [0usize; LOSS_BUCKETS];
    for (&ti, &l) in t.iter().zip(per_example) {
        let b = (ti * LOSS_BUCKETS / timesteps).min(LOSS_BUCKETS - 1);
        sum[b] += l as f64;
        count[b] += 1;
    }
    (0..LOSS_BUCKETS)
        .map(|b| (count[b] > 0).then(|| sum[b] / count[b] as f64))
        .collect()
}

/// Whether the checkpoint whose state is `state` was written without the file `name`: its
/// digests list every file it wrote (a checkpoint from before digests cannot say).
fn written_without(state: &store::RunState, name: &str) -> bool {
    !state.digests.is_empty() && !state.digests.contains_key(name)
}

/// The variables of `varmap` with their names.
pub fn named_vars(varmap: &VarMap) -> Vec<(String, candle_core::Var)> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Current values of all variables by name.
pub fn var_tensors(varmap: &VarMap) -> std::collections::HashMap<String, Tensor> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    data.iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect()
}

/// Sets every variable from `tensors`, naming the first missing or mis-shaped tensor.
pub fn load_into_varmap(
    varmap: &VarMap,
    tensors: &std::collections::HashMap<String, Tensor>,
    source: &Path,
) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let t = tensors
            .get(name)
            .with_context(|| format!("{} lacks tensor {name}", source.display()))?;
        if t.dims() != var.dims() {
            bail!(
                "{}: tensor {name} has shape {:?} but the model config needs {:?}",
                source.display(),
                t.dims(),
                var.dims()
            );
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}

/// `Σ g²` over every variable's gradient: one sum per variable (in f32, as PyTorch's per-tensor
/// norms), added in f64 in name order. The per-variable sums are read back together, so a GPU
/// waits for them once per step rather than once per variable.
fn sum_of_squares(
    vars: &[(String, candle_core::Var)],
    grads: &candle_core::backprop::GradStore,
) -> Result<f64> {
    let sums = match squared_sums(vars, grads)? {
        Some(sums) => sums.to_vec1::<f32>()?,
        None => Vec::new(),
    };
    Ok(add_sums(&sums))
}

/// The per-variable `Σ g²` of [`sum_of_squares`] as one f32 tensor on the device, in name order
/// (`None` when no variable has a gradient).
fn squared_sums(
    vars: &[(String, candle_core::Var)],
    grads: &candle_core::backprop::GradStore,
) -> Result<Option<Tensor>> {
    let mut vars: Vec<_> = vars.iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let sums = vars
        .iter()
        .filter_map(|(_, v)| grads.get(v))
        .map(|g| g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F32))
        .collect::<candle_core::Result<Vec<_>>>()?;
    if sums.is_empty() {
        return Ok(None);
    }
    Ok(Some(Tensor::stack(&sums, 0)?))
}

/// The per-variable sums of squares added in f64, in their order.
fn add_sums(sums: &[f32]) -> f64 {
    sums.iter().map(|&s| s as f64).sum()
}

/// A training step's values, read from the device in one transfer: the loss, each example's
/// loss and the global gradient norm from `sums`, partial sums of squares that add up to it
/// ([`squared_sums`] or [`flat_squared_sums`]; f32 each, added in f64 here).
fn read_step_values(
    loss: &Tensor,
    per_example: &Tensor,
    sums: Option<Tensor>,
) -> Result<(f64, Vec<f32>, f64)> {
    let f32 = candle_core::DType::F32;
    let n = per_example.elem_count();
    let mut parts = vec![
        loss.to_dtype(f32)?.reshape(1)?,
        per_example.to_dtype(f32)?.flatten_all()?,
    ];
    parts.extend(sums);
    let values = Tensor::cat(&parts, 0)?.to_vec1::<f32>()?;
    let (head, sums) = values.split_at(1 + n);
    Ok((head[0] as f64, head[1..].to_vec(), add_sums(sums).sqrt()))
}

/// `Σ g²` of a flat gradient `g` as partial sums over slices of 4096 elements: one wide
/// reduction, where [`squared_sums`] takes one per variable (`None` when `g` is empty).
fn flat_squared_sums(g: &Tensor) -> Result<Option<Tensor>> {
    const SLICE: usize = 4096;
    let sq = g.to_dtype(candle_core::DType::F32)?.sqr()?;
    let len = sq.elem_count();
    let full = len / SLICE * SLICE;
    let mut parts = Vec::new();
    if full > 0 {
        parts.push(
            sq.narrow(0, 0, full)?
                .reshape((full / SLICE, SLICE))?
                .sum(1)?,
        );
    }
    if len > full {
        parts.push(sq.narrow(0, full, len - full)?.sum_keepdim(0)?);
    }
    Ok(match parts.len() {
        0 => None,
        _ => Some(Tensor::cat(&parts, 0)?),
    })
}

/// The factor that brings gradients of global norm `norm` to at most `max_norm`, as PyTorch's
/// `clip_grad_norm_` (`max_norm / (norm + 1e-6)`), or `None` when they are within it.
fn clip_scale(norm: f64, max_norm: f64) -> Option<f64> {
    (norm > max_norm).then(|| max_norm / (norm + 1e-6))
}

/// Scales all gradients so their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm(
    varmap: &VarMap,
    grads: &mut candle_core::backprop::GradStore,
    max_norm: f64,
) -> Result<f64> {
    let vars = named_vars(varmap);
    let norm = sum_of_squares(&vars, grads)?.sqrt();
    clip_to(&vars, grads, norm, max_norm)?;
    Ok(norm)
}

/// Scales the gradients of `vars`, whose global L2 norm is `norm`, to a norm of at most
/// `max_norm` (PyTorch's `clip_grad_norm_`: by `max_norm / (norm + 1e-6)` when over it).
fn clip_to(
    vars: &[(String, candle_core::Var)],
    grads: &mut candle_core::backprop::GradStore,
    norm: f64,
    max_norm: f64,
) -> Result<()> {
    if let Some(scale) = clip_scale(norm, max_norm) {
        for (_, v) in vars {
            if let Some(g) = grads.get(v) {
                let scaled = (g * scale)?;
                grads.insert(v, scaled);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::BetaSchedule;

    #[test]
    fn the_backward_pass_is_the_releasing_one_unless_told_plain_and_a_typo_is_an_error() {
        assert!(backward_choice(None).unwrap());
        assert!(backward_choice(Some("release")).unwrap());
        assert!(!backward_choice(Some(" plain ")).unwrap());
        let err = backward_choice(Some("plane")).unwrap_err().to_string();
        assert!(
            err.contains("DDPM_LAB_BACKWARD=plane") && err.contains("plain"),
            "{err}"
        );
    }

    #[test]
    fn each_step_prepares_the_next_steps_draws_for_its_batch_shape() {
        let cfg = TrainConfig {
            model: crate::model::UnetConfig::tiny(),
            timesteps: 50,
            batch_size: 3,
            image_size: 8,
            steps: 10,
            seed: 5,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(cfg, None).unwrap();
        let x0 = LabRng::new(1)
            .randn(&[3, 1, 8, 8], &candle_core::Device::Cpu)
            .unwrap();
        for step in 1..=2 {
            trainer.train_step(&x0, 0).unwrap();
            let next = trainer.next_draws.as_ref().expect("drawn during the step");
            // For the step that comes next and this batch's shape: the next call takes them.
            assert_eq!((next.step, next.dims.as_slice()), (step, x0.dims()));
            // And they are the draws that step would make itself.
            let fresh = trainer.draws(step, x0.dims()).unwrap();
            assert_eq!(next.t, fresh.t);
            let (a, b) = (
                next.noise.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                fresh.noise.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert_eq!(a, b);
        }
    }

    #[test]
    fn buckets_average_by_timestep_range() {
        let b = bucket_losses(&[0, 5, 199, 100], &[1.0, 3.0, 4.0, 2.0], 200);
        assert_eq!(b.len(), LOSS_BUCKETS);
        assert_eq!(b[0], Some(2.0));
        assert_eq!(b[5], Some(2.0));
        assert_eq!(b[9], Some(4.0));
        assert_eq!(b[3], None);
    }

    #[test]
    fn learning_rate_warms_up_then_decays() {
        let c = TrainConfig {
            lr: 1e-3,
            warmup_steps: 10,
            steps: 110,
            lr_cosine_decay: true,
            ..TrainConfig::default()
        };
        assert!((c.learning_rate(0) - 1e-4).abs() < 1e-12);
        assert!((c.learning_rate(9) - 1e-3).abs() < 1e-12);
        assert!((c.learning_rate(10) - 1e-3).abs() < 1e-12);
        assert!(
            (c.learning_rate(60) - 0.55e-3).abs() < 1e-12,
            "half way: 10% + 90%/2"
        );
        assert!((c.learning_rate(110) - 1e-4).abs() < 1e-12);
        let constant = TrainConfig {
            lr_cosine_decay: false,
            ..c
        };
        assert_eq!(constant.learning_rate(60), 1e-3);
    }

    #[test]
    fn min_snr_weights_clip_at_gamma() {
        let tables = ScheduleTables::new(BetaSchedule::Cosine, 100).unwrap();
        let (lo, hi) = (99, 0); // low SNR at the end, high SNR at the start
        assert!(tables.snr[hi] > 5.0 && tables.snr[lo] < 5.0);
        let w = min_snr_weights(&tables, Objective::Noise, &[hi, lo], 5.0);
        assert!((w[0] as f64 - 5.0 / tables.snr[hi]).abs() < 1e-6);
        assert_eq!(w[1], 1.0, "below γ the noise objective keeps weight 1");
        let v = min_snr_weights(&tables, Objective::V, &[hi, lo], 5.0);
        assert!((v[0] as f64 - 5.0 / (tables.snr[hi] + 1.0)).abs() < 1e-6);
        assert!((v[1] as f64 - tables.snr[lo] / (tables.snr[lo] + 1.0)).abs() < 1e-6);
        let x0 = min_snr_weights(&tables, Objective::X0, &[hi], 5.0);
        assert_eq!(x0[0], 5.0);
    }

    #[test]
    fn config_validation_messages() {
        let mut c = TrainConfig::default();
        c.validate().unwrap();
        c.batch_size = 0;
        assert!(c.validate().unwrap_err().to_string().contains("batch-size"));
        c = TrainConfig {
            lr: -1.0,
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("--lr"));
        c = TrainConfig {
            image_size: 30,
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("divisible"));
    }

    /// The step's values read through Adam's flat gradient (the trainer's path) are those of
    /// the per-variable sums: the same loss and per-example losses, the same norm up to f32
    /// rounding; and clipping scales by PyTorch's factor only above the limit.
    #[test]
    fn flat_gradient_norm_matches_the_per_variable_norm() {
        use candle_core::{Device, Var};
        let dev = Device::Cpu;
        // Sizes that leave a partial slice (4096) and one that fills several.
        let sizes = [3usize, 4096 * 2 + 17, 5000];
        let vars: Vec<(String, Var)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("v{i}"), Var::zeros(n, DType::F32, &dev).unwrap()))
            .collect();
        let coeffs: Vec<Tensor> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let v: Vec<f32> = (0..n).map(|j| ((j * 7 + i) % 13) as f32 - 6.0).collect();
                Tensor::from_vec(v, n, &dev).unwrap()
            })
            .collect();
        let loss = vars
            .iter()
            .zip(&coeffs)
            .map(|((_, v), c)| (v.as_tensor() * c).unwrap().sum_all().unwrap())
            .reduce(|a, b| (a + b).unwrap())
            .unwrap();
        let grads = loss.backward().unwrap();
        let per = Tensor::new(&[0.5f32, 1.5], &dev).unwrap();
        let opt = crate::train::adam::Adam::new(vars.clone(), Default::default()).unwrap();
        let flat = opt.flat_gradient(&grads).unwrap().unwrap();
        let a = read_step_values(&loss, &per, squared_sums(&vars, &grads).unwrap()).unwrap();
        let b = read_step_values(&loss, &per, flat_squared_sums(&flat).unwrap()).unwrap();
        assert_eq!((a.0, &a.1), (b.0, &b.1));
        let exact: f64 = coeffs
            .iter()
            .flat_map(|c| c.to_vec1::<f32>().unwrap())
            .map(|v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        for norm in [a.2, b.2] {
            assert!((norm - exact).abs() < 1e-6 * exact, "{norm} vs {exact}");
        }
        assert_eq!(clip_scale(exact, f64::INFINITY), None);
        assert_eq!(clip_scale(0.5, 1.0), None);
        assert_eq!(clip_scale(2.0, 1.0), Some(1.0 / (2.0 + 1e-6)));
    }
}
