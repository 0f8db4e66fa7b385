//! Worker threads of the lab and the messages they send to the UI thread.
//!
//! The app never calls slow code directly: it asks an [`Engine`] to start work on a thread, and
//! the work reports back only through one `mpsc` channel of [`WorkerMsg`]. Tests replace the
//! engine with a double and inject messages into the same channel, so every screen can be
//! driven deterministically without a model.

pub mod lab_engine;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use crate::imaging::Image8;
use crate::schedule::BetaSchedule;
use crate::train::events::{StepStats, TrainCommand, TrainEvent};

use super::settings::{SampleSettings, TrainSettings};

/// Which training run a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The run of the Train screen (also sampled on the Sample screen).
    Main,
    /// One of the four runs of the Compare screen.
    Compare(BetaSchedule),
}

/// A stage of loading a dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadStage {
    /// Looking for the files (cache, disk).
    Resolving,
    /// Downloading one file.
    Downloading {
        /// File name.
        file: String,
        /// Bytes received.
        done: u64,
        /// Expected size, when known.
        total: Option<u64>,
        /// Current speed in bytes per second.
        bytes_per_s: f64,
    },
    /// Decoding images.
    Decoding,
}

/// What the Data screen shows of a loaded dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DataInfo {
    /// Dataset name.
    pub name: String,
    /// Where it came from (built-in, cache path, download).
    pub source: String,
    /// What the loader had to say about it (a fallback, a cached file replaced), each shown
    /// whole on the Data screen.
    pub notes: Vec<String>,
    /// Training images.
    pub n_train: usize,
    /// Test images, when the dataset has a test split.
    pub n_test: Option<usize>,
    /// Channels, height, width.
    pub shape: (usize, usize, usize),
    /// Name of every label.
    pub label_names: Vec<String>,
    /// Training images per label.
    pub label_counts: Vec<usize>,
    /// A few training examples with their labels (shown in a grid, noised on Schedules).
    pub examples: Vec<(Image8, usize)>,
}

/// Messages of the dataset loader.
#[derive(Debug, Clone)]
pub enum DataMsg {
    /// Progress of the load of `name`.
    Progress {
        /// Dataset being loaded.
        name: String,
        /// Stage reached.
        stage: LoadStage,
    },
    /// The dataset is ready for training.
    Ready(Box<DataInfo>),
    /// Loading failed.
    Failed {
        /// Dataset that failed.
        name: String,
        /// One-line reason.
        message: String,
    },
    /// The Hub dataset `name` could not be reached (no network, not cached): the built-in
    /// set was loaded in its place, so training can start at once.
    FellBack {
        /// Dataset asked for.
        name: String,
        /// Why it could not be loaded.
        reason: String,
        /// The built-in set loaded instead.
        info: Box<DataInfo>,
    },
}

/// Every frame of a denoising run (the sampler's output, as the lab keeps it).
#[derive(Debug, Clone, PartialEq)]
pub struct Frames {
    /// Timestep of each frame (`frames[i]` is `x_{timesteps[i]}`).
    pub timesteps: Vec<usize>,
    /// `x_t` images per frame; the first is pure noise, the last the final images.
    pub frames: Vec<Vec<Image8>>,
    /// Predicted `x̂₀` per frame (may be one shorter than `frames`).
    pub x0_preds: Vec<Vec<Image8>>,
    /// The quality of the final images (`Err`: why they could not be scored).
    pub quality: Result<crate::eval::Quality, String>,
    /// Training steps of the checkpoint they were drawn from, when known.
    pub step: Option<usize>,
}

impl Frames {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether there is no frame at all.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Predicted x̂₀ at frame `i` (the nearest one that exists).
    pub fn x0_at(&self, i: usize) -> Option<&Vec<Image8>> {
        if self.x0_preds.is_empty() {
            None
        } else {
            self.x0_preds.get(i.min(self.x0_preds.len() - 1))
        }
    }
}

/// Messages of a sampling worker.
#[derive(Debug, Clone)]
pub enum SampleMsg {
    /// `done` of `total` denoising steps.
    Progress {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
    },
    /// Progress with the images as they are now (`x_t` after `done` steps), sent a few times
    /// a second so the lab can draw the denoising while it runs.
    Denoising {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
        /// The batch after `done` steps.
        images: Vec<Image8>,
    },
    /// Sampling finished.
    Done(Box<Frames>),
    /// Sampling stopped when asked ([`SampleRequest::stop`]), after `done` of `total` steps.
    Stopped {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
    },
    /// Sampling failed.
    Failed(String),
}

/// Result of an epoch-time estimate (a short timed benchmark of the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Configuration measured.
    pub settings: TrainSettings,
    /// Measured images per second, or why it could not be measured.
    pub result: Result<f64, String>,
}

/// Everything workers report to the UI thread.
#[derive(Debug, Clone)]
pub enum WorkerMsg {
    /// Dataset loading.
    Data(DataMsg),
    /// A training run's event.
    Train {
        /// Run concerned.
        slot: Slot,
        /// What happened.
        event: TrainEvent,
    },
    /// Sampling from a run.
    Sample {
        /// Run sampled.
        slot: Slot,
        /// What happened.
        msg: SampleMsg,
    },
    /// An export finished: the files written, or why it failed.
    Exported(Result<Vec<PathBuf>, String>),
    /// An epoch-time estimate finished.
    Estimated(Estimate),
    /// The runs found under the runs directory, newest first (answer to [`Engine::list_runs`]).
    Runs(Vec<RunSummary>),
    /// A run read from disk, or why it could not be (answer to [`Engine::open_run`]).
    RunOpened(Result<OpenedRun, String>),
    /// A comparison's runs read from disk, or why they could not be (answer to
    /// [`Engine::open_comparison`]).
    ComparisonOpened(Result<OpenedComparison, String>),
    /// Every run under the runs directory with its loss curve and score (answer to
    /// [`Engine::scan_runs`]), newest first.
    RunTable(Vec<RunRecord>),
    /// The run the last session left, as it is on disk now (answer to
    /// [`Engine::read_last_run`]).
    LastRun(RunSummary),
    /// The process training the run the Train screen follows (`pid 4242`), or `None` once
    /// none does: sent by [`Engine::watch_run`] when it changes.
    RunHolder(Option<String>),
    /// The stop step of the run the Train screen follows changed (a `train --resume --steps`
    /// elsewhere): sent by [`Engine::watch_run`] when its checkpoint says so.
    RunStopStep(usize),
    /// A run removed, or why it was not (answer to [`Engine::remove_run`]).
    RunRemoved(Result<crate::runs::Removed, String>),
}

/// A request to train: a new run, or the continuation of one on disk. The engine hands it to
/// the run layer ([`crate::runs::TrainRequest`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TrainRequest {
    /// A new run in `run_dir` with these settings.
    New {
        /// Configuration.
        settings: TrainSettings,
        /// Dataset (name or path) to train on; must be loaded already.
        dataset: String,
        /// Directory of the run (created).
        run_dir: PathBuf,
    },
    /// Continue the run in `run_dir` from its newest checkpoint, with its own configuration;
    /// the settings give only the stop step, the device and the time limit.
    Resume {
        /// Stop step, device and time limit.
        settings: TrainSettings,
        /// Dataset (name or path) the run trains on; must be loaded already.
        dataset: String,
        /// Directory of the run.
        run_dir: PathBuf,
    },
}

impl TrainRequest {
    /// The settings of the request.
    pub fn settings(&self) -> &TrainSettings {
        match self {
            TrainRequest::New { settings, .. } | TrainRequest::Resume { settings, .. } => settings,
        }
    }

    /// The dataset trained on.
    pub fn dataset(&self) -> &str {
        match self {
            TrainRequest::New { dataset, .. } | TrainRequest::Resume { dataset, .. } => dataset,
        }
    }

    /// The run directory.
    pub fn run_dir(&self) -> &std::path::Path {
        match self {
            TrainRequest::New { run_dir, .. } | TrainRequest::Resume { run_dir, .. } => run_dir,
        }
    }

    /// Whether it continues a run on disk.
    pub fn is_resume(&self) -> bool {
        matches!(self, TrainRequest::Resume { .. })
    }
}

/// A request to sample from a trained run.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// Run directory holding the checkpoint.
    pub run_dir: PathBuf,
    /// Sampler settings.
    pub settings: SampleSettings,
    /// Raised by the lab (`x`) to stop the sampling; the worker looks after each step.
    pub stop: StopFlag,
}

/// A flag one side raises and a worker looks at: shared, so a clone raises the same flag.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Raises the flag (for good).
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was raised.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl PartialEq for StopFlag {
    /// The same flag (not merely the same state).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A request to export frames (PNG grid of the final images and an animated GIF).
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Frames to export.
    pub frames: Frames,
    /// Directory to write into.
    pub out_dir: PathBuf,
    /// File name stem.
    pub stem: String,
}

/// A run found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Run directory.
    pub dir: PathBuf,
    /// Its training configuration, as far as the lab understands it.
    pub settings: Option<TrainSettings>,
    /// Dataset it was trained on.
    pub dataset: Option<String>,
    /// Steps saved in its last checkpoint.
    pub step: usize,
    /// The process that trains it now (it holds the run's lock: `pid 4242`), this lab or
    /// `train` elsewhere.
    pub held_by: Option<String>,
    /// It has no checkpoint yet (its `step` is 0): a process trains it towards its first,
    /// or one stopped before it.
    pub unsaved: bool,
    /// Why its newest checkpoint cannot be used, and which one can (see [`RunInfo::problem`]).
    ///
    /// [`RunInfo::problem`]: crate::runs::RunInfo::problem
    pub problem: Option<String>,
}

/// Points a [`RunRecord`]'s loss curve is reduced to (a chart is never wider).
pub const CURVE_POINTS: usize = 400;

/// A run as the Runs screen lists it: what the picker shows, its last smoothed loss, its
/// latest preview score and its smoothed loss curve (at most [`CURVE_POINTS`] points).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Directory, configuration, dataset and saved step.
    pub summary: RunSummary,
    /// Smoothed loss at the last logged step.
    pub last_loss: Option<f64>,
    /// Last logged step.
    pub last_step: usize,
    /// The latest preview score (`quality.jsonl`): step and quality.
    pub quality: Option<(usize, crate::eval::Quality)>,
    /// `ddpm-lab eval`'s evaluation that says most of it (see
    /// [`crate::runs::quality::headline_eval`]).
    pub eval: Option<crate::runs::quality::EvalRecord>,
    /// `(step, smoothed loss)`, reduced to at most [`CURVE_POINTS`] points.
    pub curve: Vec<(f64, f64)>,
    /// Bytes its files take on disk.
    pub bytes: u64,
}

/// A run opened from disk: its configuration and metrics so far.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedRun {
    /// What was found.
    pub summary: RunSummary,
    /// Its metrics history (`metrics.jsonl`).
    pub history: Vec<StepStats>,
    /// Its preview scores (`quality.jsonl`), by step.
    pub quality: Vec<(usize, crate::eval::Quality)>,
    /// Its newest preview (`previews/`): step and images.
    pub preview: Option<(usize, Vec<Image8>)>,
    /// Its data is a folder that is gone (moved or deleted): it trains on with the data
    /// loaded, if that fits.
    pub data_gone: bool,
}

/// A comparison opened from disk: the runs of its schedules that exist there.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedComparison {
    /// The comparison's directory (see [`crate::runs::comparison`]).
    pub base: PathBuf,
    /// Each schedule's run found, in [`crate::schedule::BetaSchedule::ALL`] order.
    pub runs: Vec<(crate::schedule::BetaSchedule, OpenedRun)>,
    /// The settings its runs train with (the schedule aside) and their steps: its
    /// `comparison.json`, else (written before there was one) a run's own.
    pub settings: Option<TrainSettings>,
    /// The dataset it trains on.
    pub dataset: Option<String>,
}

/// The slow machinery behind the lab. Each call returns at once; results arrive as
/// [`WorkerMsg`]s on `tx`.
pub trait Engine {
    /// Starts loading `dataset` (a built-in name or a path).
    fn load_dataset(&mut self, dataset: &str, tx: Sender<WorkerMsg>);
    /// Starts a training run; returns the channel that controls it.
    fn start_training(
        &mut self,
        slot: Slot,
        req: TrainRequest,
        tx: Sender<WorkerMsg>,
    ) -> Result<Sender<TrainCommand>, String>;
    /// Measures images per second of a configuration on the loaded dataset.
    fn estimate(&mut self, settings: TrainSettings, dataset: &str, tx: Sender<WorkerMsg>);
    /// Starts sampling.
    fn sample(&mut self, slot: Slot, req: SampleRequest, tx: Sender<WorkerMsg>);
    /// Starts an export.
    fn export(&mut self, req: ExportRequest, tx: Sender<WorkerMsg>);
    /// Starts listing the runs under the runs directory: they arrive as [`WorkerMsg::Runs`].
    fn list_runs(&mut self, tx: Sender<WorkerMsg>);
    /// Starts removing the run in `dir` with its files ([`crate::runs::remove_run`]): the
    /// answer arrives as [`WorkerMsg::RunRemoved`].
    fn remove_run(&mut self, dir: &std::path::Path, tx: Sender<WorkerMsg>);
    /// Starts reading one run's configuration and metrics: they arrive as
    /// [`WorkerMsg::RunOpened`].
    fn open_run(&mut self, dir: &std::path::Path, tx: Sender<WorkerMsg>);
    /// Starts reading the runs of the comparison at `base` (each schedule's run that has a
    /// configuration): they arrive as [`WorkerMsg::ComparisonOpened`].
    fn open_comparison(&mut self, base: &std::path::Path, tx: Sender<WorkerMsg>);
    /// Starts reading every run under the runs directory with its metrics and score: they
    /// arrive as [`WorkerMsg::RunTable`].
    fn scan_runs(&mut self, tx: Sender<WorkerMsg>);
    /// Starts reading the run in `dir` that the last session left: its summary arrives as
    /// [`WorkerMsg::LastRun`]; nothing arrives where it is gone or unreadable (there is
    /// nothing to point at then).
    fn read_last_run(&mut self, dir: &std::path::Path, tx: Sender<WorkerMsg>);
    /// Follows a run that another process (e.g. `ddpm-lab train`) may be training: steps after
    /// `from_step` and new checkpoints arrive as `Train { slot: Main, .. }` events, and who
    /// trains it as [`WorkerMsg::RunHolder`] when that changes, until the returned handle is
    /// dropped. `None` when the engine cannot watch.
    fn watch_run(
        &mut self,
        dir: &std::path::Path,
        from_step: usize,
        tx: Sender<WorkerMsg>,
    ) -> Option<Sender<()>>;
}
