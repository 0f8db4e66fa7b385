//! The lab's state: one struct per screen, gathered in [`App`], plus the actions that start
//! and steer work on the [`Engine`]. Nothing here draws or blocks.

pub mod compare;
pub mod data;
pub mod run;
pub mod sample;
pub mod schedules;
pub mod train;

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use crate::schedule::BetaSchedule;
use crate::train::events::{TrainCommand, TrainEvent};

use super::settings::{CompareMode, LabSettings};
use super::workers::{
    DataMsg, Engine, ExportRequest, OpenedRun, RunSummary, SampleMsg, SampleRequest, Slot,
    TrainRequest, WorkerMsg,
};
use compare::{CompareState, ROUND_ROBIN_QUANTUM};
use data::{DataState, DataStatus};
use run::RunState;
use sample::{FrameCursor, SampleState, SampleStatus};
use schedules::SchedulesState;
pub use train::PickerWait;
use train::{RunPicker, TrainState};

/// How long quitting waits for running runs to finish their step and write their checkpoint
/// (a step of a big model on a CPU can take a while; Ctrl-C again leaves at once).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(300);

/// The five screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Dataset source, examples, label counts.
    Data,
    /// Beta schedules side by side.
    Schedules,
    /// Configure and watch a training run.
    Train,
    /// Sample and step through denoising.
    Sample,
    /// One run per schedule, compared.
    Compare,
}

impl Tab {
    /// Every tab, in order (number keys 1–5).
    pub const ALL: [Tab; 5] = [
        Tab::Data,
        Tab::Schedules,
        Tab::Train,
        Tab::Sample,
        Tab::Compare,
    ];

    /// Title shown in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Data => "Data",
            Tab::Schedules => "Schedules",
            Tab::Train => "Train",
            Tab::Sample => "Sample",
            Tab::Compare => "Compare",
        }
    }

    /// Position in [`Tab::ALL`].
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|&t| t == self).unwrap_or(0)
    }
}

/// A window drawn over the current screen.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Overlay {
    /// None.
    #[default]
    None,
    /// Every key.
    Help,
    /// "A run is unsaved: quit?".
    ConfirmQuit,
}

/// Where the app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifecycle {
    /// Normal operation.
    #[default]
    Running,
    /// Waiting for runs to checkpoint before exiting (time waited so far).
    ShuttingDown(Duration),
    /// The main loop should exit.
    Done,
}

/// A one-line message in the status area.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Text.
    pub text: String,
    /// Whether it reports an error.
    pub error: bool,
}

/// The whole lab.
pub struct App {
    /// Current screen.
    pub tab: Tab,
    /// Window over the screen.
    pub overlay: Overlay,
    /// Picker of earlier runs, when open.
    pub picker: Option<RunPicker>,
    /// What the picker is waiting for from the engine, if anything.
    pub picker_wait: PickerWait,
    /// Lifecycle.
    pub lifecycle: Lifecycle,
    /// Remembered settings (saved on exit).
    pub settings: LabSettings,
    /// Data screen.
    pub data: DataState,
    /// Schedules screen.
    pub schedules: SchedulesState,
    /// Train screen.
    pub train: TrainState,
    /// Sample screen.
    pub sample: SampleState,
    /// Compare screen.
    pub compare: CompareState,
    /// Latest message.
    pub notice: Option<Notice>,
    /// A redraw is needed.
    pub dirty: bool,
    /// Base name for new run directories (tests fix it; the lab uses the clock).
    pub run_stamp: Box<dyn FnMut() -> String + Send>,
    engine: Box<dyn Engine>,
    tx: Sender<WorkerMsg>,
    rx: Receiver<WorkerMsg>,
}

/// A time stamp `YYYYmmdd-HHMMSS` (UTC) for run directory names.
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl App {
    /// A lab with `settings`, driving `engine`. Call [`App::start`] to begin loading data.
    pub fn new(settings: LabSettings, engine: Box<dyn Engine>) -> Self {
        let (tx, rx) = channel();
        let schedules = SchedulesState::new(settings.train.timesteps);
        Self {
            tab: Tab::Data,
            overlay: Overlay::None,
            picker: None,
            picker_wait: PickerWait::Idle,
            lifecycle: Lifecycle::Running,
            data: DataState::default(),
            schedules,
            train: TrainState::default(),
            sample: SampleState::default(),
            compare: CompareState::default(),
            notice: None,
            dirty: true,
            run_stamp: Box::new(utc_stamp),
            settings,
            engine,
            tx,
            rx,
        }
    }

    /// A sender into the app's worker channel (tests inject messages with it).
    pub fn sender(&self) -> Sender<WorkerMsg> {
        self.tx.clone()
    }

    /// Starts loading the configured dataset.
    pub fn start(&mut self) {
        let name = self.settings.dataset.clone();
        self.load_dataset(&name);
    }

    /// Whether the main loop should exit.
    pub fn should_exit(&self) -> bool {
        self.lifecycle == Lifecycle::Done
    }

    /// Shows a message in the status area.
    pub fn notify(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
        });
        self.dirty = true;
    }

    /// Handles every message waiting in the channel; returns how many there were.
    pub fn pump(&mut self) -> usize {
        let mut n = 0;
        while let Ok(msg) = self.rx.try_recv() {
            self.handle_msg(msg);
            n += 1;
        }
        n
    }

    /// Advances time-driven state (playback, shutdown timeout) by `dt`.
    pub fn tick(&mut self, dt: Duration) {
        if self.sample.cursor.tick(dt) | self.compare.cursor.tick(dt) {
            self.dirty = true;
        }
        if let Lifecycle::ShuttingDown(waited) = self.lifecycle {
            let waited = waited + dt;
            self.lifecycle = if waited >= SHUTDOWN_GRACE || !self.any_active() {
                Lifecycle::Done
            } else {
                Lifecycle::ShuttingDown(waited)
            };
        }
    }

    // ----- quitting -------------------------------------------------------------------------

    /// Whether any training worker is alive.
    pub fn any_active(&self) -> bool {
        self.train.run.is_active() || self.compare.any_active()
    }

    /// Whether quitting now would lose training progress.
    pub fn has_unsaved(&self) -> bool {
        self.train.run.unsaved() || self.compare.slots.iter().any(|s| s.run.unsaved())
    }

    /// `q`: quit at once, or ask first when a run is unsaved.
    pub fn request_quit(&mut self) {
        if self.has_unsaved() {
            self.overlay = Overlay::ConfirmQuit;
            self.dirty = true;
        } else {
            self.begin_shutdown();
        }
    }

    /// Quits: checkpoints and stops every running run, then exits once they are saved.
    pub fn begin_shutdown(&mut self) {
        if let Lifecycle::ShuttingDown(_) = self.lifecycle {
            // Asked twice (Ctrl-C again): leave now.
            self.lifecycle = Lifecycle::Done;
            return;
        }
        self.overlay = Overlay::None;
        let mut stopping = false;
        for run in std::iter::once(&mut self.train.run)
            .chain(self.compare.slots.iter_mut().map(|s| &mut s.run))
        {
            if run.is_active() && run.send(TrainCommand::Stop) {
                run.state = RunState::Stopping;
                stopping = true;
            }
        }
        if stopping {
            self.lifecycle = Lifecycle::ShuttingDown(Duration::ZERO);
            self.notify(
                "saving checkpoints before quitting… (Ctrl-C again to quit now)",
                false,
            );
        } else {
            self.lifecycle = Lifecycle::Done;
        }
    }

    // ----- data -----------------------------------------------------------------------------

    /// Starts loading `name` (a built-in dataset or a path).
    pub fn load_dataset(&mut self, name: &str) {
        if self.any_active() {
            self.notify("cannot switch dataset while a run is training", true);
            return;
        }
        self.settings.dataset = name.to_string();
        self.data.requested = name.to_string();
        self.data.status = DataStatus::Loading(super::workers::LoadStage::Resolving);
        self.data.info = None;
        self.engine.load_dataset(name, self.tx.clone());
        self.dirty = true;
    }

    /// Switches to the next (`dir > 0`) or previous built-in dataset.
    pub fn cycle_dataset(&mut self, dir: i32) {
        let next = self.data.neighbour(dir);
        self.load_dataset(next);
    }

    // ----- training -------------------------------------------------------------------------

    fn new_run_dir(&mut self, suffix: &str) -> PathBuf {
        let stamp = (self.run_stamp)();
        self.settings.runs_root().join(format!("{stamp}-{suffix}"))
    }

    /// Space on the Train screen: start, pause or resume the run.
    pub fn train_toggle(&mut self) {
        match self.train.run.state {
            RunState::Running => {
                self.train.run.send(TrainCommand::Pause);
            }
            RunState::Paused => {
                self.train.run.send(TrainCommand::Resume);
            }
            RunState::Starting | RunState::Stopping => {}
            RunState::Opened => self.start_main_run(true),
            RunState::Idle | RunState::Finished | RunState::Failed(_) => self.start_main_run(false),
        }
        self.dirty = true;
    }

    fn start_main_run(&mut self, resume: bool) {
        if !self.data.ready() {
            self.notify("the dataset is not loaded yet (see the Data screen)", true);
            return;
        }
        if self.compare.any_active() {
            self.notify(
                "the Compare runs are training; pause or finish them first",
                true,
            );
            return;
        }
        let run_dir = if resume {
            self.train.run.run_dir.clone()
        } else {
            let s = self.settings.train.schedule.name().to_string();
            self.train.run.reset();
            self.train.run.timesteps = Some(self.settings.train.timesteps);
            Some(self.new_run_dir(&s))
        };
        let req = TrainRequest {
            settings: self.settings.train.clone(),
            dataset: self.settings.dataset.clone(),
            run_dir: run_dir.clone(),
            resume,
        };
        // Stop following the run on disk: this process trains it now.
        self.train.watch = None;
        match self.engine.start_training(Slot::Main, req, self.tx.clone()) {
            Ok(commands) => {
                self.train.run.commands = Some(commands);
                self.train.run.state = RunState::Starting;
                self.train.run.run_dir = run_dir;
                self.train.opened = false;
                self.notify(
                    if resume {
                        "continuing the run…"
                    } else {
                        "starting…"
                    },
                    false,
                );
            }
            Err(e) => self.notify(format!("cannot start training: {e}"), true),
        }
    }

    /// `c`: asks the running run for a checkpoint.
    pub fn train_checkpoint(&mut self) {
        if self.train.run.send(TrainCommand::Checkpoint) {
            self.notify("checkpoint requested", false);
        } else {
            self.notify("no run is training", true);
        }
    }

    /// Changes the highlighted configuration field.
    pub fn train_adjust(&mut self, dir: i32) {
        if !self.train.editable() {
            self.notify("the configuration is fixed while the run trains", true);
            return;
        }
        let field = self.train.current_field();
        field.adjust(&mut self.settings.train, dir);
        if field == train::Field::Timesteps {
            self.schedules = SchedulesState::new(self.settings.train.timesteps);
        }
        self.dirty = true;
    }

    /// `b`: the blog's configuration; `B`: back to the device's quick default.
    pub fn train_preset(&mut self, blog: bool) {
        if !self.train.editable() {
            self.notify("the configuration is fixed while the run trains", true);
            return;
        }
        let t = &self.settings.train;
        self.settings.train = if blog {
            t.blog()
        } else {
            super::settings::TrainSettings {
                seed: t.seed,
                ..super::settings::TrainSettings::for_device(t.device)
            }
        };
        // The Sample screen follows with the sampler the recipe recommends.
        self.settings.sample = self
            .settings
            .sample
            .with_recommended(self.settings.train.recommended_sampler);
        self.notify(
            if blog {
                "blog configuration (press E for its time per epoch)"
            } else {
                "quick configuration for this device"
            },
            false,
        );
        self.request_estimate();
    }

    /// `E`: measures images per second of the configuration (on a worker).
    pub fn request_estimate(&mut self) {
        if !self.data.ready() || self.any_active() || self.train.estimating {
            return;
        }
        self.train.estimating = true;
        self.engine.estimate(
            self.settings.train.clone(),
            &self.settings.dataset.clone(),
            self.tx.clone(),
        );
        self.dirty = true;
    }

    /// `o`: asks the engine for the earlier runs; the picker opens when they arrive
    /// ([`WorkerMsg::Runs`]), so a slow disk never holds up the UI.
    pub fn open_picker(&mut self) {
        if self.any_active() {
            self.notify("pause and finish the current run first", true);
            return;
        }
        if self.picker_wait != PickerWait::Idle {
            return;
        }
        self.picker_wait = PickerWait::Listing;
        self.engine.list_runs(self.tx.clone());
        self.notify(
            format!(
                "looking for runs in {}…",
                self.settings.runs_root().display()
            ),
            false,
        );
    }

    /// The engine's list of runs: opens the picker on it.
    fn handle_runs(&mut self, runs: Vec<RunSummary>) {
        if self.picker_wait != PickerWait::Listing {
            return;
        }
        self.picker_wait = PickerWait::Idle;
        if self.any_active() {
            // A run started while the list was being read.
            return;
        }
        if runs.is_empty() {
            self.notify(
                format!("no runs found in {}", self.settings.runs_root().display()),
                true,
            );
            return;
        }
        self.notice = None;
        self.picker = Some(RunPicker { runs, selected: 0 });
        self.dirty = true;
    }

    /// Moves the picker's highlight.
    pub fn picker_move(&mut self, delta: i32) {
        if let Some(p) = &mut self.picker {
            let n = p.runs.len() as i32;
            p.selected = (p.selected as i32 + delta).clamp(0, n - 1) as usize;
            self.dirty = true;
        }
    }

    /// Opens the highlighted run: asks the engine for its configuration and history, which
    /// arrive as [`WorkerMsg::RunOpened`]; space then continues it.
    pub fn picker_open(&mut self) {
        let Some(p) = self.picker.take() else { return };
        let Some(summary) = p.runs.get(p.selected).cloned() else {
            return;
        };
        self.picker_wait = PickerWait::Opening(summary.dir.clone());
        self.engine.open_run(&summary.dir, self.tx.clone());
        self.notify(format!("opening {}…", summary.dir.display()), false);
    }

    /// The engine's answer to [`App::picker_open`].
    fn handle_run_opened(&mut self, result: Result<OpenedRun, String>) {
        let PickerWait::Opening(dir) = std::mem::replace(&mut self.picker_wait, PickerWait::Idle)
        else {
            return;
        };
        let opened = match result {
            Ok(opened) => opened,
            Err(e) => {
                self.notify(format!("cannot open run: {e}"), true);
                return;
            }
        };
        if self.any_active() {
            self.notify(
                format!("{} not opened: a run started meanwhile", dir.display()),
                true,
            );
            return;
        }
        let run = &mut self.train.run;
        run.reset();
        run.load_history(&opened.history);
        run.start_step = opened.summary.step.max(run.step());
        run.checkpoint_step = Some(run.start_step);
        run.run_dir = Some(opened.summary.dir.clone());
        run.state = RunState::Opened;
        if let Some(s) = &opened.summary.settings {
            run.total_steps = s.steps;
            run.timesteps = Some(s.timesteps);
            self.settings.train = s.clone();
            self.schedules = SchedulesState::new(s.timesteps);
        }
        let start = run.start_step;
        self.train.opened = true;
        self.train.watch = self
            .engine
            .watch_run(&opened.summary.dir, start, self.tx.clone());
        self.sample.source = Some(opened.summary.dir.clone());
        let needs = opened.summary.dataset.clone();
        self.notify(
            format!(
                "opened {} at step {start}: new steps appear live; space continues it here",
                opened.summary.dir.display(),
            ),
            false,
        );
        if let Some(ds) = needs {
            if ds != self.settings.dataset {
                self.load_dataset(&ds);
            }
        }
    }

    // ----- sampling -------------------------------------------------------------------------

    /// The run the Sample screen draws from.
    pub fn sample_source(&self) -> Option<PathBuf> {
        let run = &self.train.run;
        if run.checkpoint_step.is_some() {
            run.run_dir.clone()
        } else {
            self.sample.source.clone()
        }
    }

    /// T of the run the Sample screen draws from: the run's own T when it is the run of the
    /// Train screen (editing T afterwards only prepares the next run), else the settings' T.
    pub fn sample_timesteps(&self) -> usize {
        let run = &self.train.run;
        match (run.timesteps, &run.run_dir) {
            (Some(t), Some(dir)) if self.sample_source().as_ref() == Some(dir) => t,
            _ => self.settings.train.timesteps,
        }
    }

    /// `g` on the Sample screen.
    pub fn sample_generate(&mut self) {
        if matches!(self.sample.status, SampleStatus::Running { .. }) {
            return;
        }
        let Some(run_dir) = self.sample_source() else {
            self.notify(
                "no checkpoint yet: train a run (press c for a checkpoint) or open one (o on Train)",
                true,
            );
            return;
        };
        self.sample.status = SampleStatus::Running { done: 0, total: 0 };
        self.sample.source = Some(run_dir.clone());
        self.sample.cursor.playing = false;
        self.sample.exported = None;
        let req = SampleRequest {
            run_dir,
            settings: self.settings.sample.clone(),
        };
        self.engine.sample(Slot::Main, req, self.tx.clone());
        self.dirty = true;
    }

    /// `e`: exports the frames as a PNG grid and a GIF.
    pub fn sample_export(&mut self) {
        let Some(frames) = self.sample.frames.clone() else {
            self.notify("nothing to export: generate samples first (g)", true);
            return;
        };
        if self.sample.exporting {
            return;
        }
        let out_dir = self
            .sample
            .source
            .clone()
            .unwrap_or_else(|| self.settings.runs_root())
            .join("exports");
        let s = &self.settings.sample;
        let stem = if s.ddim {
            format!("samples-ddim{}-seed{}", s.ddim_steps, s.seed)
        } else {
            format!("samples-ddpm-seed{}", s.seed)
        };
        self.sample.exporting = true;
        self.engine.export(
            ExportRequest {
                frames,
                out_dir,
                stem,
            },
            self.tx.clone(),
        );
        self.notify("exporting…", false);
    }

    // ----- compare --------------------------------------------------------------------------

    /// Space on the Compare screen: start the four runs, or pause / resume the comparison.
    pub fn compare_toggle(&mut self) {
        if self.train.run.is_active() {
            self.notify("the Train run is training; pause or finish it first", true);
            return;
        }
        if let Some(i) = self.compare.active {
            let run = &self.compare.slots[i].run;
            if run.is_active() {
                if self.compare.paused {
                    run.send(TrainCommand::Resume);
                    self.compare.paused = false;
                } else {
                    run.send(TrainCommand::Pause);
                    self.compare.paused = true;
                }
                self.dirty = true;
                return;
            }
        }
        if !self.data.ready() {
            self.notify("the dataset is not loaded yet (see the Data screen)", true);
            return;
        }
        // Fresh comparison.
        self.compare = CompareState::default();
        let base = self.new_run_dir("compare");
        for slot in &mut self.compare.slots {
            slot.run.run_dir = Some(base.join(slot.schedule.name()));
        }
        self.compare_start_slot(0);
    }

    fn compare_start_slot(&mut self, i: usize) {
        let slot = &self.compare.slots[i];
        let settings = super::settings::TrainSettings {
            schedule: slot.schedule,
            steps: self.settings.compare_steps,
            ..self.settings.train.clone()
        };
        let req = TrainRequest {
            settings,
            dataset: self.settings.dataset.clone(),
            run_dir: slot.run.run_dir.clone(),
            resume: false,
        };
        let schedule = slot.schedule;
        match self
            .engine
            .start_training(Slot::Compare(schedule), req, self.tx.clone())
        {
            Ok(cmds) => {
                let run = &mut self.compare.slots[i].run;
                run.commands = Some(cmds);
                run.state = RunState::Starting;
                self.compare.active = Some(i);
                self.compare.since_switch = 0;
                self.dirty = true;
            }
            Err(e) => self.notify(format!("cannot start the {schedule} run: {e}"), true),
        }
    }

    /// Hands the machine to slot `i` (resuming or starting it).
    fn compare_switch_to(&mut self, i: usize) {
        if self.compare.slots[i].run.is_active() {
            self.compare.slots[i].run.send(TrainCommand::Resume);
            self.compare.active = Some(i);
            self.compare.since_switch = 0;
        } else {
            self.compare_start_slot(i);
        }
    }

    /// `m`: in turn ↔ round-robin (before starting).
    pub fn compare_toggle_mode(&mut self) {
        if self.compare.any_active() {
            self.notify("the mode is fixed while the comparison trains", true);
            return;
        }
        self.settings.compare_mode = match self.settings.compare_mode {
            CompareMode::InTurn => CompareMode::RoundRobin,
            CompareMode::RoundRobin => CompareMode::InTurn,
        };
        self.dirty = true;
    }

    /// `+`/`−` on Compare: steps per run.
    pub fn compare_steps(&mut self, dir: i32) {
        if self.compare.any_active() {
            return;
        }
        const STEPS: [usize; 8] = [20, 50, 100, 200, 500, 1000, 2000, 5000];
        let cur = self.settings.compare_steps;
        self.settings.compare_steps = if dir > 0 {
            STEPS.iter().copied().find(|&s| s > cur).unwrap_or(cur)
        } else {
            STEPS
                .iter()
                .rev()
                .copied()
                .find(|&s| s < cur)
                .unwrap_or(cur)
        };
        self.dirty = true;
    }

    /// `g` on Compare: samples every finished run from the same noise (same seed).
    pub fn compare_sample(&mut self) {
        if self.compare.any_active() {
            self.notify("wait for the runs to finish", true);
            return;
        }
        let mut any = false;
        for i in 0..self.compare.slots.len() {
            let slot = &mut self.compare.slots[i];
            let Some(run_dir) = slot.run.run_dir.clone() else {
                continue;
            };
            if slot.run.checkpoint_step.is_none() {
                continue;
            }
            slot.sample_status = SampleStatus::Running { done: 0, total: 0 };
            slot.frames = None;
            let schedule = slot.schedule;
            let req = SampleRequest {
                run_dir,
                settings: self.settings.sample.clone(),
            };
            self.engine
                .sample(Slot::Compare(schedule), req, self.tx.clone());
            any = true;
        }
        if any {
            self.compare.cursor = FrameCursor::default();
            self.notify("sampling every schedule from the same noise…", false);
        } else {
            self.notify("no trained run to sample yet (space trains them)", true);
        }
    }

    // ----- worker messages ------------------------------------------------------------------

    /// Applies one worker message.
    pub fn handle_msg(&mut self, msg: WorkerMsg) {
        self.dirty = true;
        match msg {
            WorkerMsg::Data(m) => self.handle_data(m),
            WorkerMsg::Train { slot, event } => self.handle_train(slot, event),
            WorkerMsg::Sample { slot, msg } => self.handle_sample(slot, msg),
            WorkerMsg::Runs(runs) => self.handle_runs(runs),
            WorkerMsg::RunOpened(result) => self.handle_run_opened(result),
            WorkerMsg::Exported(result) => {
                self.sample.exporting = false;
                match &result {
                    Ok(paths) => {
                        let list: Vec<String> =
                            paths.iter().map(|p| p.display().to_string()).collect();
                        self.notify(format!("exported {}", list.join(", ")), false);
                    }
                    Err(e) => self.notify(format!("export failed: {e}"), true),
                }
                self.sample.exported = Some(result);
            }
            WorkerMsg::Estimated(e) => {
                self.train.estimating = false;
                if let Err(msg) = &e.result {
                    self.notify(format!("could not estimate the speed: {msg}"), true);
                }
                let stale = e.settings.unet(1) != self.settings.train.unet(1)
                    || e.settings.batch_size != self.settings.train.batch_size
                    || e.settings.device != self.settings.train.device;
                self.train.estimate = Some(e);
                if stale {
                    // The configuration changed while measuring: measure it again.
                    self.request_estimate();
                }
            }
        }
    }

    fn handle_data(&mut self, m: DataMsg) {
        match m {
            DataMsg::Progress { name, stage } => {
                if name == self.data.requested {
                    self.data.status = DataStatus::Loading(stage);
                }
            }
            DataMsg::Ready(info) => {
                if info.name != self.data.requested
                    && !self.data.requested.ends_with(info.name.as_str())
                {
                    // A late answer to an earlier request.
                    if !matches!(self.data.status, DataStatus::Loading(_)) {
                        return;
                    }
                }
                self.data.status = DataStatus::Ready;
                self.schedules.image_index = 0;
                self.data.info = Some(*info);
                self.request_estimate();
            }
            DataMsg::Failed { name, message } => {
                if name == self.data.requested {
                    self.data.status = DataStatus::Failed(message.clone());
                    self.notify(format!("dataset {name}: {message}"), true);
                }
            }
        }
    }

    fn handle_train(&mut self, slot: Slot, event: TrainEvent) {
        match slot {
            Slot::Main => {
                let checkpoint = matches!(event, TrainEvent::Checkpointed { .. });
                let failed = match &event {
                    TrainEvent::Failed { message, .. } => Some(message.clone()),
                    _ => None,
                };
                self.train.run.apply(event);
                if checkpoint {
                    let step = self.train.run.checkpoint_step.unwrap_or(0);
                    self.notify(format!("checkpoint saved at step {step}"), false);
                }
                if let Some(m) = failed {
                    self.notify(format!("training failed: {m}"), true);
                }
            }
            Slot::Compare(schedule) => {
                let Some(i) = self.compare.index_of(schedule) else {
                    return;
                };
                let is_step = matches!(event, TrainEvent::Step(_));
                let ended = matches!(
                    event,
                    TrainEvent::Finished { .. } | TrainEvent::Failed { .. }
                );
                self.compare.slots[i].run.apply(event);
                if self.lifecycle != Lifecycle::Running {
                    return;
                }
                if is_step && self.compare.active == Some(i) {
                    self.compare.since_switch += 1;
                    if self.settings.compare_mode == CompareMode::RoundRobin
                        && self.compare.since_switch >= ROUND_ROBIN_QUANTUM
                        && !self.compare.paused
                    {
                        if let Some(next) = self.compare.next_unfinished(i) {
                            if next != i {
                                self.compare.slots[i].run.send(TrainCommand::Pause);
                                self.compare_switch_to(next);
                            }
                        }
                    }
                }
                if ended && self.compare.active == Some(i) {
                    match self.compare.next_unfinished(i) {
                        Some(next) if !self.compare.paused => self.compare_switch_to(next),
                        Some(_) => {}
                        None => {
                            self.compare.active = None;
                            if self.compare.all_finished() {
                                self.notify(
                                    "all four runs finished: press g to sample them side by side",
                                    false,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn handle_sample(&mut self, slot: Slot, msg: SampleMsg) {
        let (status, frames) = match slot {
            Slot::Main => (&mut self.sample.status, &mut self.sample.frames),
            Slot::Compare(s) => {
                let Some(i) = self.compare.index_of(s) else {
                    return;
                };
                let slot = &mut self.compare.slots[i];
                (&mut slot.sample_status, &mut slot.frames)
            }
        };
        match msg {
            SampleMsg::Progress { done, total } => *status = SampleStatus::Running { done, total },
            SampleMsg::Done(f) => {
                *status = SampleStatus::Ready;
                *frames = Some(*f);
                match slot {
                    Slot::Main => {
                        let len = self.sample.frames.as_ref().map_or(0, |f| f.len());
                        self.sample.cursor = FrameCursor::new(len);
                        self.sample.cursor.end();
                    }
                    Slot::Compare(_) => {
                        let len = self.compare.frame_len();
                        let index = self.compare.cursor.index;
                        self.compare.cursor = FrameCursor::new(len);
                        self.compare.cursor.index = index.min(len.saturating_sub(1));
                    }
                }
            }
            SampleMsg::Failed(e) => {
                *status = SampleStatus::Failed(e.clone());
                self.notify(format!("sampling failed: {e}"), true);
            }
        }
    }

    /// Schedules shown in the Compare chart, with their slot index.
    pub fn compare_schedules(&self) -> impl Iterator<Item = (usize, BetaSchedule)> + '_ {
        self.compare
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.schedule))
    }
}
