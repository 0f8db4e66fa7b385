//! The lab's state: one controller per screen, and [`App`], which routes between them. A screen
//! handles its own commands and worker messages and returns [`Effect`]s; the router owns the
//! [`Engine`] and the channel, carries the effects out, and passes what crosses screens (the
//! Train screen's run is the one the Sample screen draws from). Nothing here draws or blocks.

/// The [`Ctx`] of `$app`, borrowing only its settings and run stamp, so that a screen of the
/// same app can be borrowed beside it.
macro_rules! ctx {
    ($app:ident) => {
        Ctx {
            data_ready: $app.data.ready(),
            data_failed: matches!(
                $app.data.status,
                $crate::tui::state::data::DataStatus::Failed(_)
            ),
            n_train: $app.data.info.as_ref().map(|i| i.n_train),
            loaded: $app.data.loaded_name(),
            train_active: $app.train.run.is_active(),
            compare_active: $app.compare.any_active(),
            running: $app.lifecycle == Lifecycle::Running,
            settings: &mut $app.settings,
            make_run_dir: &mut *$app.make_run_dir,
        }
    };
}

pub mod compare;
pub mod data;
pub mod effect;
pub mod notice;
pub mod picker;
pub mod run;
pub mod runs;
pub mod sample;
pub mod schedules;
pub mod tab;
pub mod train;

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use super::event::Command;
use super::settings::LabSettings;
use super::workers::{Engine, RunSummary, Slot, WorkerMsg};
use crate::runs::run_name;
use crate::train::events::TrainCommand;
use compare::CompareState;
use data::DataState;
pub use effect::{claim_run_dir, Ctx, Effect, Notice, Topic};
pub use picker::{PickerWait, RunPicker};
use runs::RunsState;
use sample::SampleState;
use schedules::SchedulesState;
pub use tab::{Lifecycle, Overlay, Tab};
use train::TrainState;

/// How long quitting waits for running runs to finish their step and write their checkpoint
/// (a step of a big model on a CPU can take a while; Ctrl-C again leaves at once).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(300);

/// While quitting, how often a run held by a checkpoint a full disk kept from being written
/// tries again by itself: room made meanwhile (in another shell, after a hang-up where no key
/// can ask) saves it before the lab ends.
pub const HELD_RETRY: Duration = Duration::from_secs(5);

/// Opening a run while another trains or is paused (one run trains at a time).
pub const RUN_IN_PROGRESS: &str =
    "a run is still going (training or paused): x on its screen stops it";

/// The whole lab: the screens' states and the router between them.
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
    /// Runs screen.
    pub runs: RunsState,
    /// First row of the help window shown (it scrolls on small terminals).
    pub help_scroll: usize,
    /// Latest message.
    pub notice: Option<Notice>,
    /// What the GPUs are, for the status bar ("NVIDIA H200 · 140 GiB"; see
    /// [`crate::device::describe`]), asked once when the lab starts.
    pub device_names: Vec<(crate::device::DeviceSpec, String)>,
    /// A redraw is needed.
    pub dirty: bool,
    /// Makes a new run directory under a root, named after the clock and a tag (see
    /// [`crate::store::RunDir::claim_fresh`]: the folder is made at once, so that a `train`
    /// started in the same second takes another name); tests only name one.
    pub make_run_dir: Box<effect::MakeRunDir>,
    /// Saves the settings whenever the run to name at the next start changes (the lab; tests
    /// leave it out), so a lab killed outright still names it.
    pub autosave: Option<crate::tui::autosave::SettingsSaver>,
    /// The last run the settings were saved naming.
    saved_last_run: Option<std::path::PathBuf>,
    engine: Box<dyn Engine>,
    tx: Sender<WorkerMsg>,
    rx: Receiver<WorkerMsg>,
}

impl App {
    /// A lab with `settings`, driving `engine`. Call [`App::start`] to begin loading data.
    pub fn new(settings: LabSettings, engine: Box<dyn Engine>) -> Self {
        let (tx, rx) = channel();
        Self {
            tab: Tab::Data,
            overlay: Overlay::None,
            picker: None,
            picker_wait: PickerWait::Idle,
            lifecycle: Lifecycle::Running,
            data: DataState::default(),
            schedules: SchedulesState::new(settings.train.timesteps),
            train: TrainState::default(),
            sample: SampleState::default(),
            compare: CompareState::default(),
            runs: RunsState::default(),
            help_scroll: 0,
            notice: None,
            device_names: Vec::new(),
            dirty: true,
            make_run_dir: Box::new(claim_run_dir),
            autosave: None,
            saved_last_run: settings.last_run.clone(),
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

    /// Starts loading the configured dataset, and reading the run the last session left (the
    /// Train screen names it until a run takes its place).
    pub fn start(&mut self) {
        let mut effects = vec![Effect::LoadDataset(self.settings.dataset.clone())];
        effects.extend(self.settings.last_run.clone().map(Effect::ReadLastRun));
        self.run(effects);
    }

    /// Whether the main loop should exit.
    pub fn should_exit(&self) -> bool {
        self.lifecycle == Lifecycle::Done
    }

    /// Shows a passing message in the status area.
    pub fn notify(&mut self, text: impl Into<String>, error: bool) {
        self.show(Notice::new(text, error));
    }

    /// Shows a message in the status area (it stays while its topic lasts).
    pub fn show(&mut self, notice: Notice) {
        // While quitting, the line says that the lab saves its runs; only errors cut in.
        let quitting = matches!(self.lifecycle, Lifecycle::ShuttingDown(_))
            && self
                .notice
                .as_ref()
                .is_some_and(|n| n.topic == Topic::Shutdown);
        if quitting && notice.topic != Topic::Shutdown && !notice.error {
            return;
        }
        // What was wrong with the settings file stays said over a stand-in set's notice (the
        // status bar and the Data screen say which set stands in; a set that failed cuts in).
        let stand_in = matches!(notice.topic, Topic::Dataset(_))
            && !matches!(self.data.status, data::DataStatus::Failed(_));
        if stand_in
            && self
                .notice
                .as_ref()
                .is_some_and(|n| n.topic == Topic::Sticky && n.error)
        {
            return;
        }
        self.notice = Some(notice);
        self.dirty = true;
    }

    /// Whether the cause of `n` still lasts (see [`Topic`]).
    pub fn notice_holds(&self, n: &Notice) -> bool {
        match &n.topic {
            Topic::Passing => !n.passed(),
            Topic::TrainStart => self.train.run.state == run::RunState::Starting,
            Topic::WhileTraining => !n.passed() && self.any_active(),
            Topic::WhileSampling => !n.passed() && self.sample.is_sampling(),
            // A set that failed to load stays said; a stand-in that works gives the line back
            // to the keys after a while (the status bar and the Data screen keep saying it).
            Topic::Dataset(name) => {
                self.data.requested == *name
                    && self.data.has_problem()
                    && (matches!(self.data.status, data::DataStatus::Failed(_))
                        || n.age < notice::FALLBACK_SHOWN)
            }
            Topic::Sampling => self.sample.is_sampling(),
            Topic::CompareSampling => self.compare.sampling(),
            Topic::CompareStopping => self.compare.stopping(),
            Topic::TrainStopping => self.train.run.state == run::RunState::Stopping,
            Topic::Export => self.sample.exporting,
            Topic::Shutdown => matches!(self.lifecycle, Lifecycle::ShuttingDown(_)),
            Topic::Sticky => true,
        }
    }

    /// Drops the message once its cause has ended.
    /// A key is about to act: a passing message (or a lasting one that is no error) shown
    /// long enough to be read goes (the user moved on; the key's own message, if any, takes
    /// the line).
    pub fn key_handled(&mut self) {
        if let Some(n) = &self.notice {
            let passing = match n.topic {
                Topic::Passing | Topic::WhileTraining | Topic::WhileSampling => true,
                Topic::Sticky => !n.error,
                // A stand-in set that works: the status bar and the Data screen keep saying
                // so, and the line goes back to the keys (a set that failed stays said).
                Topic::Dataset(_) => !matches!(self.data.status, data::DataStatus::Failed(_)),
                _ => false,
            };
            if passing && n.age >= notice::READ_AT_LEAST {
                self.notice = None;
                self.dirty = true;
            }
        }
    }

    fn expire_notice(&mut self) {
        if self.notice.as_ref().is_some_and(|n| !self.notice_holds(n)) {
            self.notice = None;
            self.dirty = true;
        }
    }

    /// Handles every message waiting in the channel; returns how many there were.
    pub fn pump(&mut self) -> usize {
        let mut n = 0;
        while let Ok(msg) = self.rx.try_recv() {
            self.handle_msg(msg);
            n += 1;
        }
        if n > 0 {
            self.autosave_last_run();
        }
        n
    }

    /// Saves the settings (on the saver's thread) where the run to name at the next start
    /// has changed since they were last saved.
    fn autosave_last_run(&mut self) {
        let Some(saver) = &self.autosave else {
            return;
        };
        let last = self.last_run_to_keep();
        if last.is_some() && last != self.saved_last_run {
            self.saved_last_run = last;
            saver.save(self.settings_to_keep());
        }
    }

    /// The run to name at the next start, wherever that starts from: the Train screen's
    /// latest, else a Compare run (as an absolute path).
    fn last_run_to_keep(&self) -> Option<std::path::PathBuf> {
        self.train
            .session_runs
            .last()
            .cloned()
            .or_else(|| self.session_runs().into_iter().next())
            .map(|dir| std::path::absolute(&dir).unwrap_or(dir))
    }

    /// Advances time-driven state (playback, shutdown timeout) by `dt`.
    pub fn tick(&mut self, dt: Duration) {
        if self.sample.cursor.tick(dt) | self.compare.cursor.tick(dt) {
            self.dirty = true;
        }
        if self.sample.tick(dt) {
            self.dirty = true;
        }
        self.train.run.tick(dt);
        for slot in &mut self.compare.slots {
            slot.run.tick(dt);
        }
        if let Some(n) = &mut self.notice {
            n.age += dt;
        }
        self.expire_notice();
        if let Lifecycle::ShuttingDown(before) = self.lifecycle {
            let waited = before + dt;
            let retry = HELD_RETRY.as_millis();
            if waited.as_millis() / retry > before.as_millis() / retry {
                for run in self.runs().filter(|r| r.is_held()) {
                    run.send(TrainCommand::Checkpoint);
                }
            }
            self.lifecycle = if waited >= SHUTDOWN_GRACE || !self.any_active() {
                Lifecycle::Done
            } else {
                Lifecycle::ShuttingDown(waited)
            };
        }
    }

    /// Whether any training worker is alive.
    pub fn any_active(&self) -> bool {
        self.train.run.is_active() || self.compare.any_active()
    }

    /// The runs of the lab's screens: the Train run, then each Compare run.
    pub fn runs(&self) -> impl Iterator<Item = &run::RunProgress> {
        std::iter::once(&self.train.run).chain(self.compare.slots.iter().map(|s| &s.run))
    }

    /// The runs this session trained or opened that have a checkpoint on disk: every run of
    /// the Train screen, oldest first, then the Compare runs (what the exit message tells how to
    /// go on with), but not one another process trains now.
    pub fn session_runs(&self) -> Vec<PathBuf> {
        let compare = self
            .compare
            .slots
            .iter()
            .map(|s| &s.run)
            .filter(|r| r.checkpoint_step.is_some())
            .filter_map(|r| r.run_dir.clone());
        let mut runs = self.train.session_runs.clone();
        // A run another process trains now is that process's to save and to name.
        if self.train.run.trained_by.is_some() {
            if let Some(shown) = &self.train.run.run_dir {
                runs.retain(|d| d != shown);
            }
        }
        for dir in compare {
            if !runs.contains(&dir) {
                runs.push(dir);
            }
        }
        runs
    }

    /// The directories of the runs this lab trains now (running, paused, starting or saving).
    pub fn active_run_dirs(&self) -> Vec<&std::path::Path> {
        self.active_runs().collect()
    }

    /// The directories of the runs this lab trains now.
    fn active_runs(&self) -> impl Iterator<Item = &std::path::Path> {
        std::iter::once(&self.train.run)
            .chain(self.compare.slots.iter().map(|s| &s.run))
            .filter(|r| r.is_active())
            .filter_map(|r| r.run_dir.as_deref())
    }

    /// Whether a process trains `run` now: this lab, or another (its lock was held when the
    /// run was listed). The Runs screen and the picker mark it ▶.
    pub fn trained_now(&self, run: &RunSummary) -> bool {
        run.held_by.is_some() || self.active_runs().any(|d| d == run.dir)
    }

    /// The settings remembered for the next session: the user's own Train settings where an
    /// opened run replaced them (the run keeps its own on disk).
    pub fn settings_to_keep(&self) -> LabSettings {
        let mut keep = self.settings.clone();
        if let Some(dir) = self.last_run_to_keep() {
            keep.last_run = Some(dir);
        }
        if let Some(own) = &self.train.own_settings {
            keep.train = own.train.clone();
            keep.origin = own.origin.clone();
            keep.dataset = own.dataset.clone();
            keep.sample = own.sample_to_keep(&self.settings.sample);
        }
        keep
    }

    /// Whether quitting now would lose training progress.
    pub fn has_unsaved(&self) -> bool {
        self.runs().any(|r| r.unsaved())
    }

    /// Quits: checkpoints and stops every running run, then exits once they are saved; asked
    /// twice (Ctrl-C again), leaves at once.
    pub fn begin_shutdown(&mut self) {
        if let Lifecycle::ShuttingDown(_) = self.lifecycle {
            self.lifecycle = Lifecycle::Done;
            return;
        }
        self.overlay = Overlay::None;
        if self.train.run.stop() | self.compare.stop_all() {
            self.lifecycle = Lifecycle::ShuttingDown(Duration::ZERO);
            self.show(
                Notice::new(
                    "saving checkpoints before quitting… (Ctrl-C again to quit now)",
                    false,
                )
                .about(Topic::Shutdown),
            );
        } else {
            self.lifecycle = Lifecycle::Done;
        }
    }

    /// The run the Sample screen draws from: the Train screen's run once it has a checkpoint,
    /// else the run sampled last.
    pub fn sample_source(&self) -> Option<PathBuf> {
        let run = &self.train.run;
        if run.checkpoint_step.is_some() {
            run.run_dir.clone()
        } else {
            self.sample.source.clone()
        }
    }

    /// What the Sample screen draws from: [`Self::sample_source`] with the step of its newest
    /// checkpoint when it is the Train screen's run, else that run while it trains towards
    /// its first checkpoint.
    pub fn sample_target(&self) -> sample::SampleTarget {
        use sample::SampleTarget;
        let run = &self.train.run;
        match (self.sample_source(), &run.run_dir) {
            (Some(dir), _) => SampleTarget::Run {
                step: run
                    .checkpoint_step
                    .filter(|_| run.run_dir.as_ref() == Some(&dir)),
                dir,
            },
            (None, Some(dir)) if run.is_active() => SampleTarget::Awaiting(dir.clone()),
            (None, _) => SampleTarget::Nothing,
        }
    }

    /// T of the run the Sample screen draws from: the run's own T when it is the run of the
    /// Train screen (editing T afterwards only prepares the next run), else the settings' T.
    pub fn sample_timesteps(&self) -> usize {
        let run = &self.train.run;
        let source = self.sample_source();
        match (run.timesteps, &run.run_dir) {
            (Some(t), Some(dir)) if source.as_ref() == Some(dir) => t,
            // A run the Train screen no longer shows (`u` closed it) keeps the T it said.
            _ => match self.sample.source_timesteps {
                Some(t) if source.is_some() && source == self.sample.source => t,
                _ => self.settings.train.timesteps,
            },
        }
    }

    /// Applies a command: the router's own (screens, windows, quitting, the run picker), or
    /// the current screen's.
    pub fn apply(&mut self, cmd: Command) {
        self.dirty = true;
        let effects = match cmd {
            Command::Quit if self.has_unsaved() => {
                self.overlay = Overlay::ConfirmQuit;
                Vec::new()
            }
            Command::Quit | Command::Interrupt | Command::ConfirmQuit(true) => {
                self.begin_shutdown();
                Vec::new()
            }
            Command::ConfirmQuit(false) | Command::Close => {
                self.overlay = Overlay::None;
                self.picker = None;
                Vec::new()
            }
            Command::GoTo(tab) => self.go_to(tab),
            Command::CycleTab(d) => self.go_to(self.tab.cycle(d)),
            Command::ToggleHelp => {
                self.overlay = match self.overlay {
                    Overlay::Help => Overlay::None,
                    _ => Overlay::Help,
                };
                self.help_scroll = 0;
                Vec::new()
            }
            Command::HelpScroll(d) => {
                let last = super::event::keys::help_rows().count().saturating_sub(1) as i64;
                self.help_scroll = (self.help_scroll as i64 + d as i64).clamp(0, last) as usize;
                Vec::new()
            }
            Command::SeekFrame(i) => {
                match self.tab {
                    Tab::Sample => self.sample.cursor.seek(i),
                    Tab::Compare => self.compare.cursor.seek(i),
                    _ => {}
                }
                Vec::new()
            }
            Command::RunsOpen => self.open_highlighted_run(),
            Command::RunsRemove => self.ask_to_remove(),
            Command::ConfirmRemove(yes) => match std::mem::take(&mut self.overlay) {
                Overlay::ConfirmRemove(dir) if yes => vec![Effect::RemoveRun(dir)],
                _ => Vec::new(),
            },
            Command::OpenRun => {
                let root = self.settings.runs_root();
                self.picker_wait.request(self.any_active(), &root)
            }
            Command::PickerMove(delta) => {
                self.picker.iter_mut().for_each(|p| p.move_by(delta));
                Vec::new()
            }
            Command::PickerOpen => match self.picker.take() {
                Some(p) => self.picker_wait.open(p),
                None => Vec::new(),
            },
            _ => match self.tab {
                Tab::Data => self.data.handle(cmd, &self.settings.dataset_choices()),
                Tab::Schedules => {
                    let said = self.schedules.handle(cmd, self.data.n_examples());
                    match said {
                        Some(why) => vec![Effect::error(why)],
                        // T here is the view's: a new run's T is Train's, and a student who
                        // changed it here should not take it for that one.
                        None if matches!(cmd, Command::ChangeT(_))
                            && self.schedules.timesteps != self.settings.train.timesteps =>
                        {
                            vec![Effect::info(format!(
                                "T = {} on this screen; a new run's T is Train's, {} (set there)",
                                self.schedules.timesteps, self.settings.train.timesteps
                            ))]
                        }
                        None => Vec::new(),
                    }
                }
                Tab::Train => self.train.handle(cmd, &mut ctx!(self)),
                Tab::Sample => {
                    let target = self.sample_target();
                    let timesteps = self.sample_timesteps();
                    self.sample.handle(cmd, target, timesteps, &mut ctx!(self))
                }
                Tab::Compare => self.compare.handle(cmd, &mut ctx!(self)),
                Tab::Runs => self.runs.handle(cmd),
            },
        };
        self.run(effects);
        self.expire_notice();
    }

    /// Shows `tab`; the Runs screen reads the runs directory again each time it is shown.
    fn go_to(&mut self, tab: Tab) -> Vec<Effect> {
        self.tab = tab;
        if tab == Tab::Runs {
            self.runs.refresh()
        } else {
            Vec::new()
        }
    }

    /// `o` on the Runs screen: reads the highlighted run as the picker would and shows it on
    /// the Train screen (refused while a run trains).
    fn open_highlighted_run(&mut self) -> Vec<Effect> {
        if self.any_active() {
            return vec![Effect::error(RUN_IN_PROGRESS)];
        }
        match self.runs.highlighted() {
            Some(r) => self.picker_wait.open(RunPicker {
                runs: vec![r.summary.clone()],
                selected: 0,
            }),
            None => Vec::new(),
        }
    }

    /// `d` on the Runs screen: asks whether to remove the highlighted run, unless a process
    /// trains it or a screen draws from it (the comparison on Compare, while it trains or
    /// samples; the Sample screen, while it samples).
    fn ask_to_remove(&mut self) -> Vec<Effect> {
        let Some(r) = self.runs.highlighted() else {
            return Vec::new();
        };
        let dir = r.summary.dir.clone();
        let name = run_name(&dir, &self.settings.runs_root());
        // One of the comparison on Compare: removable while that comparison rests (the
        // screen then closes it).
        if self.compare.holds(&dir) && (self.compare.any_active() || self.compare.sampling()) {
            return vec![Effect::error(format!(
                "{name} is in the comparison on Compare, which is training, paused or sampling: x there stops it, then it can be removed"
            ))];
        }
        if self.active_run_dirs().contains(&dir.as_path()) {
            return vec![Effect::error(format!(
                "{name} is being trained here: stop it (x) before removing it"
            ))];
        }
        if let Some(who) = &r.summary.held_by {
            return vec![Effect::error(format!(
                "{name} is being trained by {who}: remove it once that stops"
            ))];
        }
        if self.sample.source.as_ref() == Some(&dir) && self.sample.is_sampling() {
            return vec![Effect::error(format!(
                "the Sample screen is drawing from {name}: x there stops it"
            ))];
        }
        self.notice = None;
        self.overlay = Overlay::ConfirmRemove(dir);
        Vec::new()
    }

    /// A run was removed: no screen points at it any more (Train's view of it closes), and the
    /// list is read again.
    fn on_removed(&mut self, result: Result<crate::runs::Removed, String>) -> Vec<Effect> {
        let removed = match result {
            Ok(r) => r,
            Err(e) => return vec![Effect::error(e), Effect::ScanRuns],
        };
        let dir = &removed.dir;
        let data_back = self.train.forget(dir, &mut ctx!(self));
        let on_train = data_back.is_some();
        let closed = self.compare.holds(dir);
        if closed {
            self.compare = compare::CompareState::default();
        }
        if self.sample.source.as_ref() == Some(dir) {
            self.sample.source = None;
            self.sample.source_timesteps = None;
        }
        self.runs.marked.retain(|d| d != dir);
        let root = self.settings.runs_root();
        let mut text = format!(
            "removed {} ({})",
            run_name(dir, &root),
            crate::memory::human_bytes(removed.bytes.into())
        );
        if let Some(base) = &removed.comparison {
            text += &format!(", and its comparison's folder {}", run_name(base, &root));
        }
        if closed {
            text += "; the comparison on Compare is closed";
        }
        if on_train {
            text += "; the Train screen no longer shows it";
        }
        let mut fx = vec![Effect::info(text)];
        fx.extend(data_back.unwrap_or_default());
        fx.extend(self.runs.refresh());
        if self.train.run.run_dir.is_none() {
            // Train names the last run while it shows none: as it now stands.
            fx.extend(self.train.refresh_last_run());
        }
        fx
    }

    /// Applies one worker message: hands it to the screen it belongs to.
    pub fn handle_msg(&mut self, msg: WorkerMsg) {
        self.dirty = true;
        let effects = match msg {
            WorkerMsg::Data(m) => self.data.on_msg(m, self.settings.own_dataset.as_deref()),
            WorkerMsg::Train { slot, event } => match slot {
                Slot::Main => self.train.on_event(event),
                Slot::Compare(s) => self.compare.on_train(s, event, &ctx!(self)),
            },
            WorkerMsg::Sample { slot, msg } => match slot {
                Slot::Main => self.sample.on_msg(msg),
                Slot::Compare(s) => self.compare.on_sample(s, msg),
            },
            WorkerMsg::Exported(result) => self.sample.on_exported(result),
            WorkerMsg::Estimated(e) => self.train.on_estimate(e, &ctx!(self)),
            WorkerMsg::Runs(runs) => {
                let (busy, root) = (self.any_active(), self.settings.runs_root());
                let named = self.train.last_run.as_ref().map(|l| l.summary.dir.clone());
                self.picker_wait
                    .on_runs(runs, busy, &root, named.as_deref())
            }
            WorkerMsg::RunOpened(result) => self.picker_wait.on_opened(result, self.any_active()),
            WorkerMsg::ComparisonOpened(result) => self
                .picker_wait
                .on_comparison_opened(result, self.any_active()),
            WorkerMsg::RunTable(runs) => {
                self.runs.on_runs(runs);
                Vec::new()
            }
            WorkerMsg::RunRemoved(result) => self.on_removed(result),
            WorkerMsg::RunStopStep(steps) => self.train.on_stop_step(steps, &mut ctx!(self)),
            WorkerMsg::RunHolder(holder) => {
                // The Runs screen's ▶ (and what `d` refuses) follow who trains the run.
                let mut fx = self.train.on_holder(holder);
                if self.runs.scanned {
                    fx.extend(self.runs.refresh());
                }
                fx
            }
            WorkerMsg::LastRun(summary) => {
                let root = self.settings.runs_root();
                self.train.last_run = Some(train::LastRun::new(summary, &root));
                Vec::new()
            }
        };
        self.run(effects);
        self.expire_notice();
    }
}
