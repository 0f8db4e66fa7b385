//! What screens hand back to the router: [`Effect`]s (engine calls to make and changes that
//! cross screens), how the router carries them out, and the [`Ctx`] through which a screen sees
//! the rest of the lab.

use std::path::PathBuf;

use super::super::settings::{LabSettings, TrainSettings};
use super::super::workers::{
    ExportRequest, OpenedComparison, OpenedRun, SampleRequest, Slot, StopFlag, TrainRequest,
};
use super::picker::RunPicker;
use super::schedules::SchedulesState;
use super::{App, Lifecycle};

pub use super::notice::{Notice, Topic};

/// Something a screen asks the router to do after handling a key or a worker message. The
/// router carries them out in order, feeding any answer back to the screen that asked.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Shows a message in the status area.
    Notify(Notice),
    /// Loads a dataset (a built-in name or a path); refused while a run trains.
    LoadDataset(String),
    /// The dataset arrived: Schedules starts again from the first example and Train measures
    /// its configuration.
    DataReady,
    /// Measures the images per second of the training configuration on the engine.
    Estimate,
    /// Starts (or, with `resume`, continues) the run of `slot` with the current settings.
    Train {
        /// Run to start.
        slot: Slot,
        /// Its directory.
        run_dir: PathBuf,
        /// Continue from the run's last checkpoint.
        resume: bool,
    },
    /// Samples from a run's checkpoint with the Sample settings.
    Sample {
        /// Run sampled.
        slot: Slot,
        /// Its directory.
        run_dir: PathBuf,
        /// What stops it (kept by the screen that asked).
        stop: StopFlag,
    },
    /// Exports frames.
    Export(ExportRequest),
    /// Asks the engine for the runs on disk (they arrive as `WorkerMsg::Runs`).
    ListRuns,
    /// Asks the engine for every run with its curve and score (they arrive as
    /// `WorkerMsg::RunTable`).
    ScanRuns,
    /// Asks the engine for the run the last session left (it arrives as
    /// `WorkerMsg::LastRun`).
    ReadLastRun(PathBuf),
    /// Removes a run for good (the answer arrives as `WorkerMsg::RunRemoved`).
    RemoveRun(PathBuf),
    /// Asks the engine for one run (it arrives as `WorkerMsg::RunOpened`).
    OpenRun(PathBuf),
    /// Asks the engine for a comparison's runs (they arrive as `WorkerMsg::ComparisonOpened`).
    OpenComparison(PathBuf),
    /// Opens the run picker over these runs.
    ShowPicker(RunPicker),
    /// Shows a run read from disk on the Train screen.
    ShowRun(Box<OpenedRun>),
    /// Shows a comparison read from disk on the Compare screen.
    ShowComparison(Box<OpenedComparison>),
    /// Follows the Train screen's run on disk from a step.
    WatchRun {
        /// Run directory.
        dir: PathBuf,
        /// Last step already known.
        from_step: usize,
    },
    /// T of the training configuration changed: Schedules follows.
    Timesteps(usize),
    /// The Sample screen draws from this run.
    SampleFrom(PathBuf),
}

impl Effect {
    /// A passing message.
    pub fn info(text: impl Into<String>) -> Self {
        Effect::Notify(Notice::new(text, false))
    }

    /// A passing error message.
    pub fn error(text: impl Into<String>) -> Self {
        Effect::Notify(Notice::new(text, true))
    }

    /// A message that stays while `topic` lasts.
    pub fn info_about(topic: Topic, text: impl Into<String>) -> Self {
        Effect::Notify(Notice::new(text, false).about(topic))
    }

    /// An error message that stays while `topic` lasts.
    pub fn error_about(topic: Topic, text: impl Into<String>) -> Self {
        Effect::Notify(Notice::new(text, true).about(topic))
    }
}

impl App {
    /// Carries out effects in order (with the effects of any answer they get).
    pub(super) fn run(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            self.run_one(effect);
        }
    }

    fn run_one(&mut self, effect: Effect) {
        let tx = self.tx.clone();
        match effect {
            Effect::Notify(n) => self.show(n),
            Effect::LoadDataset(name) => {
                if self.any_active() {
                    self.notify("cannot switch dataset while a run is training", true);
                    return;
                }
                self.settings.choose_dataset(&name);
                self.data.begin_load(&name);
                self.engine.load_dataset(&name, tx);
                self.dirty = true;
            }
            Effect::DataReady => {
                self.schedules.image_index = 0;
                self.train.count_epochs(&ctx!(self));
                let effects = self.train.request_estimate(&ctx!(self));
                self.run(effects);
            }
            Effect::Estimate => {
                let dataset = self.train_dataset();
                self.engine
                    .estimate(self.settings.train.clone(), &dataset, tx);
            }
            Effect::Train {
                slot,
                run_dir,
                resume,
            } => {
                let req = self.train_request(slot, run_dir.clone(), resume);
                let started = self.engine.start_training(slot, req, tx);
                let effects = match slot {
                    Slot::Main => self.train.on_started(started, Some(run_dir), resume),
                    Slot::Compare(s) => self.compare.on_started(s, started),
                };
                self.run(effects);
            }
            Effect::Sample {
                slot,
                run_dir,
                stop,
            } => {
                let settings = self.settings.sample.clone();
                let req = SampleRequest {
                    run_dir,
                    settings,
                    stop,
                };
                self.engine.sample(slot, req, tx);
            }
            Effect::Export(req) => self.engine.export(req, tx),
            Effect::ListRuns => self.engine.list_runs(tx),
            Effect::ScanRuns => self.engine.scan_runs(tx),
            Effect::ReadLastRun(dir) => self.engine.read_last_run(&dir, tx),
            Effect::OpenRun(dir) => self.engine.open_run(&dir, tx),
            Effect::RemoveRun(dir) => self.engine.remove_run(&dir, tx),
            Effect::OpenComparison(base) => self.engine.open_comparison(&base, tx),
            Effect::ShowPicker(picker) => {
                self.notice = None;
                self.picker = Some(picker);
            }
            Effect::ShowRun(opened) => {
                // Opened from the picker (on Train) or the Runs screen: Train shows it.
                self.tab = super::Tab::Train;
                let effects = self.train.open(*opened, &mut ctx!(self));
                self.run(effects);
            }
            Effect::ShowComparison(opened) => {
                // A comparison's run chosen in the picker or on Runs: Compare shows them all.
                self.tab = super::Tab::Compare;
                let effects = self.compare.open(*opened, &mut ctx!(self));
                self.run(effects);
            }
            Effect::WatchRun { dir, from_step } => {
                self.train.run.trained_by = None;
                self.train.watch = self.engine.watch_run(&dir, from_step, tx);
            }
            Effect::Timesteps(t) => self.schedules = SchedulesState::new(t),
            Effect::SampleFrom(dir) => {
                self.sample.source = Some(dir);
                self.sample.source_timesteps = self.train.run.timesteps;
            }
        }
    }

    /// The dataset runs train on: the loaded one (the built-in set when it stands in for an
    /// unreachable Hub dataset), else the one asked for.
    pub fn train_dataset(&self) -> String {
        match (&self.data.fallback, self.data.loaded_name()) {
            (Some(_), Some(name)) => name.to_string(),
            _ => self.settings.dataset.clone(),
        }
    }

    /// The one place the lab builds a [`TrainRequest`]: the Train screen's run trains the
    /// settings; a Compare run trains the comparison's with its schedule and steps.
    fn train_request(&self, slot: Slot, run_dir: PathBuf, resume: bool) -> TrainRequest {
        let settings = match slot {
            Slot::Main => self.settings.train.clone(),
            // The comparison's own settings (fixed when it started, or read with it), so that
            // a run that starts late trains as the others did.
            Slot::Compare(schedule) => TrainSettings {
                schedule,
                steps: self.settings.compare_steps,
                ..self
                    .compare
                    .settings
                    .clone()
                    .unwrap_or_else(|| self.settings.train.clone())
            },
        };
        let dataset = self.train_dataset();
        if resume {
            TrainRequest::Resume {
                settings,
                dataset,
                run_dir,
            }
        } else {
            TrainRequest::New {
                settings,
                dataset,
                run_dir,
            }
        }
    }
}

/// What a screen may see and change of the rest of the lab while it handles a command or a
/// message (the router builds one for each).
pub struct Ctx<'a> {
    /// Remembered settings; each screen edits its own part.
    pub settings: &'a mut LabSettings,
    /// The dataset is loaded.
    pub data_ready: bool,
    /// Loading the dataset failed.
    pub data_failed: bool,
    /// Training images of the loaded dataset.
    pub n_train: Option<usize>,
    /// Name of the loaded dataset (a built-in set standing in for the one asked for is named
    /// as itself).
    pub loaded: Option<&'a str>,
    /// The Train screen's run has a live worker.
    pub train_active: bool,
    /// A Compare run has a live worker.
    pub compare_active: bool,
    /// The lab runs normally (it is not quitting).
    pub running: bool,
    /// Makes a new run directory under a root, named after a tag (see
    /// [`claim_run_dir`]).
    pub make_run_dir: &'a mut MakeRunDir,
}

impl Ctx<'_> {
    /// Why a run cannot start without data: still loading, or failed.
    pub fn data_not_ready(&self) -> Effect {
        Effect::error(if self.data_failed {
            "the dataset could not be loaded (the Data screen, 1, says why; d there picks another)"
        } else {
            "the dataset is not loaded yet (see the Data screen)"
        })
    }

    /// A new run directory under the runs root, named after the time and `suffix`.
    pub fn new_run_dir(&mut self, suffix: &str) -> PathBuf {
        let root = self.settings.runs_root();
        (self.make_run_dir)(&root, suffix)
    }
}

/// What makes a new run directory under a root, named after a tag.
pub type MakeRunDir = dyn FnMut(&std::path::Path, &str) -> PathBuf + Send;

/// The lab's new run directory under `root`: made at once under a name no other process has
/// taken (`…-linear-2` where a `train` started in the same second has `…-linear`), one mkdir.
/// Where it cannot be made, only named: starting the run then says why.
pub fn claim_run_dir(root: &std::path::Path, tag: &str) -> PathBuf {
    crate::store::RunDir::claim_fresh(root, tag)
        .unwrap_or_else(|_| crate::store::RunDir::fresh_path(root, tag))
}
