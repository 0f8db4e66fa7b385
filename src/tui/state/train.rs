//! State of the Train screen: the editable configuration, the run and the epoch estimate, and
//! how the screen handles its keys and its run's events.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use crate::device::DeviceSpec;
use crate::diffusion::{LossKind, Objective};
use crate::schedule::BetaSchedule;
use crate::train::events::{FinishReason, TrainCommand, TrainEvent};

use super::super::event::Command;
use super::super::settings::{
    ModelPreset, RecipeName, SampleSettings, SettingsOrigin, TrainSettings,
};
use super::super::workers::{Estimate, OpenedRun, Slot};
use super::effect::{Ctx, Effect, Topic};
use super::run::{RunProgress, RunState};

/// What the status line says while a stopped run saves its checkpoint.
const STOPPING: &str = "stopping: saving a checkpoint (space continues the run once it is saved)";

/// One editable line of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Beta schedule.
    Schedule,
    /// T.
    Timesteps,
    /// Loss.
    Loss,
    /// Prediction target.
    Objective,
    /// Model size.
    Model,
    /// Batch size.
    Batch,
    /// Learning rate.
    Lr,
    /// Steps of the run.
    Steps,
    /// Training-time budget of one press of space.
    Budget,
    /// Device.
    Device,
    /// Seed.
    Seed,
    /// Preview interval.
    Preview,
}

impl Field {
    /// Every field, in display order.
    pub const ALL: [Field; 12] = [
        Field::Schedule,
        Field::Timesteps,
        Field::Loss,
        Field::Objective,
        Field::Model,
        Field::Batch,
        Field::Lr,
        Field::Steps,
        Field::Budget,
        Field::Device,
        Field::Seed,
        Field::Preview,
    ];

    /// Label shown in the table.
    pub fn label(self) -> &'static str {
        match self {
            Field::Schedule => "schedule",
            Field::Timesteps => "T",
            Field::Loss => "loss",
            Field::Objective => "objective",
            Field::Model => "model",
            Field::Batch => "batch",
            Field::Lr => "lr",
            Field::Steps => "steps",
            Field::Budget => "budget",
            Field::Device => "device",
            Field::Seed => "seed",
            Field::Preview => "preview every",
        }
    }

    /// The field's value in `s`, as shown.
    pub fn value(self, s: &TrainSettings) -> String {
        match self {
            Field::Schedule => s.schedule_label(),
            Field::Timesteps => s.timesteps.to_string(),
            Field::Loss => s.loss.to_string(),
            Field::Objective => s.objective.to_string(),
            Field::Model => match &s.custom_model {
                None => format!("{:<5} {}", s.model.name(), s.model.describe_compact()),
                // Not a preset's name: a custom model (from model flags or an opened run).
                Some(c) => crate::presets::describe_unet_compact(c),
            },
            Field::Batch => s.batch_size.to_string(),
            Field::Lr => format!("{:.0e}", s.lr),
            Field::Steps => s.steps.to_string(),
            Field::Budget => match s.time_limit_s {
                Some(t) => format!("{:.0} min", t / 60.0),
                None => "none".to_string(),
            },
            Field::Device => s.device.to_string(),
            Field::Seed => s.seed.to_string(),
            Field::Preview => {
                if s.preview_every == 0 {
                    "off".to_string()
                } else {
                    format!("{} steps", s.preview_every)
                }
            }
        }
    }

    /// Changes the field in `s` one notch up (`dir > 0`) or down; the steps and the preview
    /// interval also offer whole epochs of `n_train` images, where the data is loaded.
    pub fn adjust(self, s: &mut TrainSettings, dir: i32, n_train: Option<usize>) {
        let epoch = n_train.map(|n| crate::data::epoch_steps(n, s.batch_size));
        match self {
            // A schedule or T chosen replaces an imported run's own β (one per step of its T).
            Field::Schedule => {
                s.schedule = cycle(&BetaSchedule::ALL, s.schedule, dir);
                s.betas = None;
            }
            Field::Timesteps => {
                s.timesteps = notch(&[10, 50, 100, 200, 300, 500, 1000], s.timesteps, dir);
                s.betas = None;
            }
            Field::Loss => {
                s.loss = cycle(&[LossKind::Huber, LossKind::L1, LossKind::L2], s.loss, dir)
            }
            Field::Objective => {
                s.objective = cycle(
                    &[Objective::Noise, Objective::X0, Objective::V],
                    s.objective,
                    dir,
                )
            }
            Field::Model => {
                s.model = cycle(&ModelPreset::ALL, s.model, dir);
                s.custom_model = None;
            }
            Field::Batch => s.batch_size = notch(&[8, 16, 32, 64, 128, 256], s.batch_size, dir),
            Field::Lr => {
                const LRS: [f64; 6] = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3];
                let i = LRS
                    .iter()
                    .position(|&l| l >= s.lr * 0.999)
                    .unwrap_or(LRS.len() - 1);
                let i = (i as i32 + dir.signum()).clamp(0, LRS.len() as i32 - 1) as usize;
                s.lr = LRS[i];
            }
            Field::Steps => {
                // Round counts, the quick recipe's (so ← → come back to it), and whole
                // epochs (the blog recipe's 5 among them).
                const ROUND: [usize; 11] = [
                    20,
                    100,
                    200,
                    500,
                    1000,
                    2000,
                    crate::presets::QUICK_STEPS,
                    5000,
                    10000,
                    20000,
                    50000,
                ];
                let epochs = epoch.map_or(Vec::new(), |e| vec![e, 5 * e, 10 * e]);
                s.steps = notch(&with_epochs(&ROUND, &epochs), s.steps, dir)
            }
            Field::Budget => {
                // Minutes; 0 = no budget.
                let cur = s
                    .time_limit_s
                    .map(|t| (t / 60.0).round() as usize)
                    .unwrap_or(0);
                let m = notch(&[0, 2, 5, 10, 20, 30, 60, 120], cur, dir);
                s.time_limit_s = (m > 0).then_some(m as f64 * 60.0);
            }
            // Only what the binary can run on: a CPU build offered cuda, then failed to start.
            Field::Device => s.device = cycle(&DeviceSpec::built_for(), s.device, dir),
            Field::Seed => s.seed = (s.seed as i64 + dir as i64).max(0) as u64,
            Field::Preview => {
                let epochs = epoch.map_or(Vec::new(), |e| vec![e]);
                s.preview_every = notch(
                    &with_epochs(&[0, 50, 100, 200, 300, 500, 1000], &epochs),
                    s.preview_every,
                    dir,
                )
            }
        }
    }
}

/// `round` with the step counts of whole epochs added, sorted and without repeats.
fn with_epochs(round: &[usize], epochs: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> = round.iter().chain(epochs).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// What the lab says when a checkpoint could not be written: the cause first (a status line
/// cut to 80 columns keeps it), then what the run does and what to do (`trains_on`: see
/// [`RunProgress::trains_on_after`]).
///
/// [`RunProgress::trains_on_after`]: super::run::RunProgress::trains_on_after
pub fn checkpoint_failed(step: usize, message: &str, trains_on: bool) -> Effect {
    Effect::error(format!(
        "checkpoint at step {step} not written: {message}; paused, weights kept in memory: {}",
        held_keys(trains_on)
    ))
}

/// The keys for a run a checkpoint that was not written holds (Train and Compare alike);
/// `trains_on`: it may also train on unsaved.
pub fn held_keys(trains_on: bool) -> &'static str {
    if trains_on {
        "make room, then c saves (x stops and saves, space trains on)"
    } else {
        "make room, then c saves"
    }
}

/// What space says on a run held by its last checkpoint, which was not written.
pub const LAST_CHECKPOINT_HELD: &str =
    "the run's last checkpoint is not written: make room, then c saves it (space cannot train past it)";

/// What space does on the Train screen, decided in one place ([`TrainState::space_action`])
/// for the key and the Progress panel's title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpaceAction {
    /// Pause the training run.
    Pause,
    /// Resume the paused run.
    Resume,
    /// Train on a run a checkpoint that could not be written holds (unsaved).
    TrainOn,
    /// Nothing: the run's last checkpoint was not written, and only `c` can save it.
    SaveOnly,
    /// Nothing yet: the run is starting.
    WaitStarting,
    /// Nothing yet: the run is saving its checkpoint to stop.
    WaitStopping,
    /// Nothing: another process trains the opened run, which the lab follows.
    FollowOther,
    /// Nothing: the opened run has no checkpoint to continue from.
    NoCheckpoint,
    /// Continue the run shown from its checkpoint.
    Continue,
    /// Start the first run.
    Start,
    /// Start a new run after the one shown.
    NewRun,
}

impl SpaceAction {
    /// The Progress panel's word for it (`None` where space does nothing but say why).
    fn label(self) -> Option<&'static str> {
        match self {
            SpaceAction::Pause => Some("pause"),
            SpaceAction::Resume => Some("resume"),
            SpaceAction::TrainOn => Some("train on"),
            SpaceAction::Continue => Some("continue"),
            SpaceAction::Start => Some("start"),
            SpaceAction::NewRun => Some("new run"),
            SpaceAction::SaveOnly
            | SpaceAction::WaitStarting
            | SpaceAction::WaitStopping
            | SpaceAction::FollowOther
            | SpaceAction::NoCheckpoint => None,
        }
    }
}

/// `dir` at the end of `runs`, where it is not among them yet.
fn remember(runs: &mut Vec<PathBuf>, dir: &std::path::Path) {
    if !runs.iter().any(|r| r == dir) {
        runs.push(dir.to_path_buf());
    }
}

/// The refusal of a configuration edit while the run trains (it goes when the run stops).
fn fixed_while_training() -> Effect {
    Effect::error_about(
        Topic::WhileTraining,
        "the configuration is fixed while the run trains",
    )
}

fn cycle<T: Copy + PartialEq>(all: &[T], cur: T, dir: i32) -> T {
    let i = all.iter().position(|&x| x == cur).unwrap_or(0) as i32;
    all[(i + dir.signum()).rem_euclid(all.len() as i32) as usize]
}

/// The next value of `values` (sorted) above `cur` (`dir > 0`) or below it; `cur` at the ends.
pub(super) fn notch(values: &[usize], cur: usize, dir: i32) -> usize {
    if dir > 0 {
        values.iter().copied().find(|&v| v > cur).unwrap_or(cur)
    } else {
        values
            .iter()
            .rev()
            .copied()
            .find(|&v| v < cur)
            .unwrap_or(cur)
    }
}

/// The run the last session left, as the Train screen names it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    /// The run as it is on disk.
    pub summary: crate::tui::workers::RunSummary,
    /// Its path under the runs folder, where it lies there (`o` lists it then).
    pub under_root: Option<PathBuf>,
}

impl LastRun {
    /// `summary`, placed against the runs folder `root` (resolved once, here: the screen
    /// draws it every frame).
    pub fn new(summary: crate::tui::workers::RunSummary, root: &Path) -> Self {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let under_root = summary.dir.strip_prefix(&root).ok().map(Path::to_path_buf);
        Self {
            summary,
            under_root,
        }
    }
}

/// What an opened run replaced, for `u` (and the run's removal) to bring back.
#[derive(Debug, Clone)]
pub struct OwnSettings {
    /// The Train settings.
    pub train: TrainSettings,
    /// Where they came from.
    pub origin: Option<SettingsOrigin>,
    /// The dataset chosen.
    pub dataset: String,
    /// The Sample settings (an opened run sets its recommended sampler).
    pub sample: SampleSettings,
    /// The Sample settings the opened run set: changed since, they are the user's own.
    pub run_sample: SampleSettings,
}

impl OwnSettings {
    /// The Sample settings to keep where `now` are the Sample screen's: the user's own from
    /// before the run was opened, unless they changed them after (then those).
    pub fn sample_to_keep(&self, now: &SampleSettings) -> SampleSettings {
        if *now == self.run_sample {
            self.sample.clone()
        } else {
            now.clone()
        }
    }
}

/// State of the Train screen.
#[derive(Debug, Clone, Default)]
pub struct TrainState {
    /// The run.
    pub run: RunProgress,
    /// Highlighted configuration field.
    pub field: usize,
    /// Latest estimate of the training speed.
    pub estimate: Option<Estimate>,
    /// An estimate is being measured.
    pub estimating: bool,
    /// The estimate being measured was asked for (`e`): its result is said in the status
    /// line too, where the Progress box may have no room for it (80×24 after a run).
    pub estimate_asked: bool,
    /// Whether the current run was opened from disk (continue with resume).
    pub opened: bool,
    /// Keeps the watcher of an opened run alive (dropping it stops the watcher).
    pub watch: Option<std::sync::mpsc::Sender<()>>,
    /// The user's own Train settings (and where they came from) and dataset from before the
    /// first run opened this session replaced them, for `u` to bring back.
    pub own_settings: Option<Box<OwnSettings>>,
    /// The run the last session left (named while no run is shown).
    pub last_run: Option<LastRun>,
    /// The dataset of the run opened from disk, for its epochs (see [`Self::count_epochs`]).
    pub opened_dataset: Option<String>,
    /// `c` asked for a checkpoint: the next one is said in the status line (the periodic ones
    /// only in the Progress box).
    pub checkpoint_asked: bool,
    /// Every run the Train screen trained or opened this session that has a checkpoint, oldest
    /// first (the one shown now among them): what the exit message names.
    pub session_runs: Vec<PathBuf>,
    /// A setting other than where the run stops, its budget or its device differs from the
    /// run shown (or a recipe or `u` asked for a new run): space starts a new run with the
    /// settings instead of continuing it.
    pub new_run_next: bool,
    /// The settings the run shown was started or continued with: edits that bring the
    /// settings back to them make space continue it again.
    pub run_settings: Option<TrainSettings>,
}

/// Whether settings `a` and `b` train the same run: all but where it stops, the session's
/// budget and the device are the same.
fn same_run(a: &TrainSettings, b: &TrainSettings) -> bool {
    let session_only = |s: &TrainSettings| TrainSettings {
        steps: 0,
        time_limit_s: None,
        device: DeviceSpec::default(),
        ..s.clone()
    };
    session_only(a) == session_only(b)
}

impl TrainState {
    /// Whether the configuration may be edited (no worker alive).
    pub fn editable(&self) -> bool {
        !self.run.is_active()
    }

    /// The highlighted field.
    pub fn current_field(&self) -> Field {
        Field::ALL[self.field.min(Field::ALL.len() - 1)]
    }

    /// Moves the highlight.
    pub fn select(&mut self, delta: i32) {
        let n = Field::ALL.len() as i32;
        self.field = (self.field as i32 + delta).rem_euclid(n) as usize;
    }

    /// Seconds per epoch of `n_train` images, when the estimate matches `settings`.
    pub fn epoch_seconds(&self, settings: &TrainSettings, n_train: usize) -> Option<f64> {
        let e = self.estimate.as_ref()?;
        match (&e.result, same_speed(&e.settings, settings)) {
            (Ok(ips), true) if *ips > 0.0 => Some(n_train as f64 / ips),
            _ => None,
        }
    }

    /// Handles a command of the Train screen.
    pub fn handle(&mut self, cmd: Command, ctx: &mut Ctx) -> Vec<Effect> {
        match cmd {
            Command::TrainToggle => self.toggle(ctx),
            Command::Checkpoint => {
                if self.run.send(TrainCommand::Checkpoint) {
                    self.checkpoint_asked = true;
                    vec![Effect::info("checkpoint requested")]
                } else {
                    vec![self.not_trained_here("no run is training")]
                }
            }
            Command::TrainStop => {
                if self.run.stop() {
                    vec![Effect::info_about(Topic::TrainStopping, STOPPING)]
                } else {
                    vec![self.not_trained_here("no run is training or paused")]
                }
            }
            Command::SelectField(delta) => {
                // ↓ past the last setting, towards the grey rows under it: they cannot be
                // picked, and the user is told why (the highlight wraps to the top).
                let past_last = delta > 0 && self.field + 1 == Field::ALL.len();
                self.select(delta);
                let extras = ctx.settings.train.recipe_extras();
                if past_last && self.editable() && !extras.is_empty() {
                    let names: Vec<&str> = extras.iter().map(|(k, _)| *k).collect();
                    return vec![Effect::info(format!(
                        "the grey rows ({}) are the recipe's: b and B set them, `ddpm-lab train` flags too; no key here changes them",
                        names.join(", ")
                    ))];
                }
                Vec::new()
            }
            Command::AdjustField(dir) => self.adjust(dir, ctx),
            Command::Preset(blog) => self.preset(blog, ctx),
            // Asked for by the user, it says why it cannot measure (automatic ones stay quiet).
            Command::Estimate => match self.request_estimate(ctx) {
                fx if !fx.is_empty() => {
                    self.estimate_asked = true;
                    fx
                }
                _ if self.run.is_active() || ctx.compare_active => vec![Effect::info(
                    "the time per epoch is measured while nothing trains (a run's own speed shows on Progress)",
                )],
                _ if self.estimating => {
                    self.estimate_asked = true;
                    vec![Effect::info("measuring the time per epoch…")]
                }
                _ if !ctx.data_ready => vec![Effect::info(
                    "the time per epoch is measured once the data is loaded",
                )],
                _ => vec![Effect::info("measuring the time per epoch…")],
            },
            Command::OwnSettings => self.own_settings(ctx),
            _ => Vec::new(),
        }
    }

    /// Why `c` or `x` do nothing: `otherwise`, or, for an opened run another process trains,
    /// who does (the lab only follows it).
    fn not_trained_here(&self, otherwise: &str) -> Effect {
        match (&self.run.state, &self.run.trained_by) {
            (RunState::Opened, Some(who)) => Effect::error(format!(
                "{who} trains this run, not the lab: its checkpoints and its end are up to {who}"
            )),
            _ => Effect::error(otherwise.to_string()),
        }
    }

    /// The followed run's stop step changed (another process resumed it with a new one): the
    /// screen and the opened run's steps setting follow.
    pub fn on_stop_step(&mut self, steps: usize, ctx: &mut Ctx) -> Vec<Effect> {
        if self.run.state != RunState::Opened || self.run.total_steps == steps {
            return Vec::new();
        }
        self.run.total_steps = steps;
        ctx.settings.train.steps = steps;
        Vec::new()
    }

    /// Who trains the followed run changed: said while the run is open here.
    pub fn on_holder(&mut self, holder: Option<String>) -> Vec<Effect> {
        let was = std::mem::replace(&mut self.run.trained_by, holder.clone());
        if self.run.state != RunState::Opened || was == holder {
            return Vec::new();
        }
        vec![Effect::info(match holder {
            Some(who) => format!(
                "{who} trains this run now: followed live, read-only (once {who} stops, space continues it here)"
            ),
            None if self.run.checkpoint_step.is_none() => {
                "nothing trains this run any more, and it stopped before its first checkpoint: u brings your settings back for a new run".to_string()
            }
            // Finished there: space would be refused until steps are raised.
            None if self.run.total_steps > 0 && self.run.step() >= self.run.total_steps => format!(
                "nothing trains this run elsewhere any more, and it is at its last step ({}): raise steps, then space trains it on",
                self.run.step()
            ),
            None => "nothing trains this run elsewhere any more: space continues it".to_string(),
        })]
    }

    /// Closes an opened run (it stays on disk and is no longer followed), so that space starts
    /// a new one; anything else is left as it is.
    fn close_opened(&mut self) {
        if self.run.state == RunState::Opened {
            self.let_go();
        }
    }

    /// What names the last run while no run is shown, read again from disk (it may have
    /// trained on since it was read): the newest run of this session, else the one the last
    /// session left.
    pub fn refresh_last_run(&self) -> Option<Effect> {
        let dir = self
            .session_runs
            .last()
            .cloned()
            .or_else(|| self.last_run.as_ref().map(|l| l.summary.dir.clone()))?;
        Some(Effect::ReadLastRun(dir))
    }

    /// Shows no run any more: its progress goes, and it is no longer followed on disk.
    fn let_go(&mut self) {
        self.run.reset();
        self.opened = false;
        self.watch = None;
    }

    /// The run in `dir` is gone from disk (removed on the Runs screen): the screen no longer
    /// shows it (unless it trains it: removal refuses those), nor offers to go on with it; the
    /// settings (and data) from before it was opened come back. Returns `None` where it was not
    /// shown, else the effects that bring the user's data back.
    pub fn forget(&mut self, dir: &Path, ctx: &mut Ctx) -> Option<Vec<Effect>> {
        let shown = self.run.run_dir.as_deref() == Some(dir) && !self.run.is_active();
        let mut back = None;
        if shown {
            self.let_go();
            self.run_settings = None;
            back = Some(self.bring_back_own_settings(ctx).unwrap_or_default());
        }
        self.session_runs.retain(|d| d != dir);
        if self.last_run.as_ref().is_some_and(|l| l.summary.dir == dir) {
            self.last_run = None;
        }
        back
    }

    /// Whether the screen shows the run in `dir`.
    pub fn shows(&self, dir: &Path) -> bool {
        self.run.run_dir.as_deref() == Some(dir)
    }

    /// The settings from before a run was opened replace the opened run's, where there are
    /// some (`None` where not), with the effect that loads the user's data again where the
    /// run's replaced it.
    fn bring_back_own_settings(&mut self, ctx: &mut Ctx) -> Option<Vec<Effect>> {
        let own = *self.own_settings.take()?;
        ctx.settings.sample = own.sample_to_keep(&ctx.settings.sample);
        ctx.settings.train = own.train;
        ctx.settings.origin = own.origin;
        Some(if own.dataset != ctx.settings.dataset {
            vec![Effect::LoadDataset(own.dataset)]
        } else {
            Vec::new()
        })
    }

    /// `u`: the settings from before a run was opened come back (an opened run had replaced
    /// them with its own), and the opened run is closed, so that space starts a new run with
    /// them.
    fn own_settings(&mut self, ctx: &mut Ctx) -> Vec<Effect> {
        if self.run.is_active() {
            return vec![Effect::error_about(
                Topic::WhileTraining,
                "the run is still going (x stops it, then u brings your settings back)",
            )];
        }
        let Some(data) = self.bring_back_own_settings(ctx) else {
            return vec![Effect::error(
                "these are your own settings (u brings them back after o has opened a run)",
            )];
        };
        // The run shown (opened, or trained on and ended) goes from the panels: space starts a
        // new one, and the last run is named as it now stands.
        self.let_go();
        self.new_run_next = true;
        let mut fx = data;
        fx.extend([
            Effect::Timesteps(ctx.settings.train.timesteps),
            Effect::info("your own settings are back: space starts a new run with them"),
        ]);
        fx.extend(self.refresh_last_run());
        fx.extend(self.request_estimate(ctx));
        fx
    }

    /// Space: starts, pauses or resumes the run (an opened run continues from its checkpoint).
    fn toggle(&mut self, ctx: &mut Ctx) -> Vec<Effect> {
        match self.space_action(ctx.settings.train.steps) {
            SpaceAction::Pause => {
                self.run.send(TrainCommand::Pause);
                Vec::new()
            }
            SpaceAction::Resume | SpaceAction::TrainOn => {
                self.run.send(TrainCommand::Resume);
                Vec::new()
            }
            SpaceAction::SaveOnly => vec![Effect::error(LAST_CHECKPOINT_HELD)],
            SpaceAction::WaitStarting => vec![Effect::info(
                "the run is starting: space pauses it once it trains",
            )],
            SpaceAction::WaitStopping => vec![Effect::info_about(Topic::TrainStopping, STOPPING)],
            SpaceAction::FollowOther => {
                let who = self.run.trained_by.as_deref().unwrap_or("another process");
                vec![Effect::error(format!(
                    "{who} trains this run now: the lab follows it live; once {who} stops, space continues it here"
                ))]
            }
            SpaceAction::NoCheckpoint => vec![Effect::error(
                "this run has no checkpoint to continue from (its training stopped before its first): u brings your settings back for a new run",
            )],
            SpaceAction::Continue => self.start(true, ctx),
            SpaceAction::Start | SpaceAction::NewRun => self.start(false, ctx),
        }
    }

    /// What space does now, with the run's state and `steps` (the steps setting): the one
    /// place that decides it, for the key and for the Progress panel's title.
    fn space_action(&self, steps: usize) -> SpaceAction {
        match self.run.state {
            RunState::Running => SpaceAction::Pause,
            RunState::Paused if self.run.is_held() => {
                if self.run.can_train_on() {
                    SpaceAction::TrainOn
                } else {
                    SpaceAction::SaveOnly
                }
            }
            RunState::Paused => SpaceAction::Resume,
            RunState::Starting => SpaceAction::WaitStarting,
            RunState::Stopping => SpaceAction::WaitStopping,
            // Its trainer's lock would refuse the lab, and the lab would stop following it.
            RunState::Opened if self.run.trained_by.is_some() => SpaceAction::FollowOther,
            RunState::Opened if self.run.checkpoint_step.is_none() => SpaceAction::NoCheckpoint,
            RunState::Opened => SpaceAction::Continue,
            // Stopped by `x` or its budget, or finished and its steps raised since: it goes
            // on, unless the settings changed since.
            RunState::Finished(_) if self.continues(steps) => SpaceAction::Continue,
            RunState::Idle => SpaceAction::Start,
            RunState::Finished(_) | RunState::Failed(_) => SpaceAction::NewRun,
        }
    }

    /// What space does now, as the Progress panel's title says it (`None`: nothing, or a
    /// refusal that says why).
    pub fn space_does(&self, steps: usize) -> Option<&'static str> {
        self.space_action(steps).label()
    }

    /// Whether space continues the run shown: saved, the settings unchanged since but for
    /// where it stops, its budget and its device, and stopped before its end (by `x` or its
    /// budget) or finished with `steps` raised since it started.
    fn continues(&self, steps: usize) -> bool {
        let own =
            !self.new_run_next && self.run.run_dir.is_some() && self.run.checkpoint_step.is_some();
        own && match self.run.state {
            RunState::Finished(FinishReason::Stopped | FinishReason::TimeLimit) => true,
            // Raised past where it was set to stop when it started.
            RunState::Finished(FinishReason::Steps) => {
                self.run_settings
                    .as_ref()
                    .is_some_and(|own| steps > own.steps)
                    && steps > self.run.step()
            }
            _ => false,
        }
    }

    /// Whether space would train the run shown on from its checkpoint (opened, or stopped
    /// and continued), so its steps may not be set at or below the step it is at.
    fn trains_on_from_checkpoint(&self) -> Option<usize> {
        let on = match self.run.state {
            RunState::Opened => self.run.trained_by.is_none(),
            RunState::Finished(FinishReason::Stopped | FinishReason::TimeLimit) => {
                self.continues(usize::MAX)
            }
            _ => false,
        };
        on.then_some(self.run.checkpoint_step).flatten()
    }

    /// The settings changed: a stopped run is continued by space only while they are its
    /// own (but for where it stops, its budget and device); each change of which says so.
    fn settings_changed(&mut self, now: &TrainSettings) -> Option<Effect> {
        let before = self.continues(now.steps);
        self.new_run_next = !self
            .run_settings
            .as_ref()
            .is_some_and(|own| same_run(own, now));
        match (before, self.continues(now.steps)) {
            (true, false) => Some(Effect::info(
                "space now starts a new run with these settings (the stopped run stays on disk: o opens it)",
            )),
            (false, true) => Some(Effect::info(
                "these are the stopped run's settings again: space continues it",
            )),
            _ => None,
        }
    }

    fn start(&mut self, resume: bool, ctx: &mut Ctx) -> Vec<Effect> {
        if !ctx.data_ready {
            return vec![ctx.data_not_ready()];
        }
        if ctx.compare_active {
            return vec![Effect::error_about(
                Topic::WhileTraining,
                "the Compare runs are still going (x on Compare stops them)",
            )];
        }
        // An opened run goes on with its own data: where another set was loaded since (d on
        // Data), its own is loaded back first, instead of the engine refusing the other.
        if let (true, RunState::Opened, Some(ds)) =
            (resume, &self.run.state, self.opened_dataset.clone())
        {
            let there = ds.parse::<crate::data::DatasetSpec>().is_ok();
            if there && ctx.loaded != Some(ds.as_str()) && ctx.settings.dataset != ds {
                return vec![
                    Effect::info(format!(
                        "this run trains on {ds}: loading it; space continues the run once it is loaded"
                    )),
                    Effect::LoadDataset(ds),
                ];
            }
        }
        let run_dir = if resume {
            match self.run.run_dir.clone() {
                Some(d) => d,
                None => return vec![Effect::error("there is no run on disk to continue")],
            }
        } else {
            let s = ctx.settings.train.schedule.name().to_string();
            self.run.reset();
            self.run.timesteps = Some(ctx.settings.train.timesteps);
            self.run.min_snr = Some(ctx.settings.train.min_snr_gamma.is_some());
            ctx.new_run_dir(&s)
        };
        // Stop following the run on disk: this process trains it now.
        self.watch = None;
        self.run.trained_by = None;
        self.new_run_next = false;
        self.run_settings = Some(ctx.settings.train.clone());
        vec![Effect::Train {
            slot: Slot::Main,
            run_dir,
            resume,
        }]
    }

    /// The engine's answer to [`Effect::Train`] for this screen's run: its control channel, or
    /// why it could not start.
    pub fn on_started(
        &mut self,
        started: Result<Sender<TrainCommand>, String>,
        run_dir: Option<PathBuf>,
        resume: bool,
    ) -> Vec<Effect> {
        match started {
            Ok(commands) => {
                // Named: after an opened or finished run, space may start a new one (other
                // settings) or continue that one, and the line says which.
                let name = run_dir
                    .as_deref()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                self.run.commands = Some(commands);
                self.run.state = RunState::Starting;
                self.run.run_dir = run_dir;
                self.opened = false;
                vec![Effect::info_about(
                    Topic::TrainStart,
                    match (resume, name) {
                        (true, Some(n)) => format!("continuing {n}…"),
                        (true, None) => "continuing the run…".to_string(),
                        (false, Some(n)) => format!("starting a new run, {n}…"),
                        (false, None) => "starting…".to_string(),
                    },
                )]
            }
            Err(e) => vec![Effect::error(format!("cannot start training: {e}"))],
        }
    }

    fn adjust(&mut self, dir: i32, ctx: &mut Ctx) -> Vec<Effect> {
        if !self.editable() {
            return vec![fixed_while_training()];
        }
        let field = self.current_field();
        // An opened run continues with its own configuration: only where it stops, how long
        // this session may train it and on which device apply to it.
        if self.run.state == RunState::Opened
            && !matches!(field, Field::Steps | Field::Budget | Field::Device)
        {
            return vec![Effect::error(
                "an opened run keeps its configuration (steps, budget and device apply): u brings your settings back for a new run",
            )];
        }
        let before = ctx.settings.train.clone();
        field.adjust(&mut ctx.settings.train, dir, ctx.n_train);
        if field == Field::Device && DeviceSpec::built_for().len() == 1 {
            return vec![Effect::info(
                "this binary runs on the CPU only: cargo install --path . --features cuda (or metal) builds one for a GPU",
            )];
        }
        if ctx.settings.train == before {
            return vec![Effect::info(format!(
                "{} {}: no {} setting in the lab",
                field.label(),
                field.value(&before),
                if dir > 0 { "higher" } else { "lower" }
            ))];
        }
        if field == Field::Steps {
            // A run trained on from its checkpoint stops after it.
            if let Some(at) = self
                .trains_on_from_checkpoint()
                .filter(|&at| ctx.settings.train.steps <= at)
            {
                ctx.settings.train = before;
                return vec![Effect::info(format!(
                    "this run is at step {at}: it trains on to a later step (u brings your settings back for a new run)"
                ))];
            }
            // A finished run: raising its steps trains it on, instead of a new run.
            if self.run.state == RunState::Finished(FinishReason::Steps) {
                let (was, now) = (
                    self.continues(before.steps),
                    self.continues(ctx.settings.train.steps),
                );
                if was != now {
                    return vec![Effect::info(if now {
                        format!(
                            "space now trains this run on to step {}",
                            ctx.settings.train.steps
                        )
                    } else {
                        "space now starts a new run (the finished one stays on disk)".to_string()
                    })];
                }
            }
        }
        let mut said = Vec::new();
        if ctx.settings.train != before
            && !matches!(field, Field::Steps | Field::Budget | Field::Device)
        {
            said.extend(self.settings_changed(&ctx.settings.train));
        }
        if field == Field::Timesteps {
            said.push(Effect::Timesteps(ctx.settings.train.timesteps));
        }
        said
    }

    /// `b`: the blog's configuration; `B`: back to the device's quick default.
    fn preset(&mut self, blog: bool, ctx: &mut Ctx) -> Vec<Effect> {
        if !self.editable() {
            return vec![fixed_while_training()];
        }
        // A recipe is for a new run: the opened run is closed (it stays on disk), a stopped one
        // is not continued; the notice says so where space would have trained it on.
        let was_next = self.run.state == RunState::Opened || self.continues(usize::MAX);
        self.close_opened();
        self.new_run_next = true;
        let n_train = ctx.n_train;
        let settings = &mut *ctx.settings;
        settings.set_recipe(if blog {
            // Five epochs of the data loaded (the blog's 2 345 steps are 5 epochs of 60 000).
            RecipeName::Blog {
                n_train: n_train.unwrap_or(super::super::settings::FASHION_MNIST_TRAIN),
            }
        } else {
            RecipeName::for_device(settings.train.device)
        });
        let mut said = match (blog, n_train) {
            (true, Some(n)) => format!(
                "blog configuration: {} epochs of these {n} images = {} steps",
                super::super::settings::BLOG_EPOCHS,
                settings.train.steps
            ),
            (true, None) => "blog configuration (5 epochs of Fashion-MNIST)".to_string(),
            (false, _) => "quick configuration for this device".to_string(),
        };
        if was_next {
            said.push_str(" · space starts a new run (the run shown stays on disk: o opens it)");
        }
        let mut fx = vec![Effect::info(said)];
        fx.extend(self.request_estimate(ctx));
        fx
    }

    /// `E`: measures images per second of the configuration, when the data is loaded and
    /// nothing trains.
    pub fn request_estimate(&mut self, ctx: &Ctx) -> Vec<Effect> {
        if !ctx.data_ready || self.run.is_active() || ctx.compare_active || self.estimating {
            return Vec::new();
        }
        self.estimating = true;
        vec![Effect::Estimate]
    }

    /// The engine's estimate; measures again when the configuration changed meanwhile.
    pub fn on_estimate(&mut self, e: Estimate, ctx: &Ctx) -> Vec<Effect> {
        self.estimating = false;
        let mut fx = Vec::new();
        if let Err(msg) = &e.result {
            fx.push(Effect::error(format!(
                "could not estimate the speed: {msg}"
            )));
        }
        let stale = !same_speed(&e.settings, &ctx.settings.train);
        self.estimate = Some(e);
        if stale {
            fx.extend(self.request_estimate(ctx));
        } else if std::mem::take(&mut self.estimate_asked) {
            let secs = ctx
                .n_train
                .and_then(|n| self.epoch_seconds(&ctx.settings.train, n));
            if let Some(secs) = secs {
                fx.push(Effect::info(format!(
                    "estimate: ≈ {} / epoch with these settings",
                    crate::clock::human_duration(secs)
                )));
            }
        }
        fx
    }

    /// An event of this screen's run (trained here or followed on disk).
    pub fn on_event(&mut self, event: TrainEvent) -> Vec<Effect> {
        let checkpoint = matches!(event, TrainEvent::Checkpointed { .. });
        let failed = match &event {
            TrainEvent::Failed { message, .. } => Some(message.clone()),
            _ => None,
        };
        let unsaved = match &event {
            TrainEvent::CheckpointFailed {
                step,
                message,
                last,
            } => Some(checkpoint_failed(
                *step,
                message,
                self.run.trains_on_after(*last),
            )),
            _ => None,
        };
        // What opening the run cleaned up or reset (e.g. a checkpoint left half-written by a
        // crash), said once in the status line.
        let notices = match &event {
            TrainEvent::Started { notices, .. } => notices.clone(),
            _ => Vec::new(),
        };
        let stopped = match &event {
            TrainEvent::Finished {
                step,
                why: FinishReason::Stopped,
                ..
            } if self.run.state == RunState::Stopping => Some(*step),
            _ => None,
        };
        let budget_spent = match &event {
            TrainEvent::Finished {
                step,
                why: FinishReason::TimeLimit,
                ..
            } => Some(*step),
            _ => None,
        };
        self.run.apply(event);
        self.remember_run();
        // The speed the run trains at is the estimate for its settings from now on: it counts
        // what a short measurement leaves out (previews, checkpoints, a busier machine).
        if let (RunState::Running, Some(own)) = (&self.run.state, &self.run_settings) {
            if let Some(ips) = self.run.images_per_s(own.batch_size) {
                self.estimate = Some(Estimate {
                    settings: own.clone(),
                    result: Ok(ips),
                });
            }
        }
        let mut fx: Vec<Effect> = notices.into_iter().map(Effect::info).collect();
        if checkpoint && std::mem::take(&mut self.checkpoint_asked) {
            let step = self.run.checkpoint_step.unwrap_or(0);
            fx.push(Effect::info(format!("checkpoint saved at step {step}")));
        }
        if let Some(step) = stopped {
            fx.push(Effect::info(format!(
                "stopped at step {step}, saved: space continues the run"
            )));
        }
        if let Some(step) = budget_spent {
            fx.push(Effect::info(format!(
                "the training budget is spent at step {step} of {}: space trains it on",
                self.run.total_steps
            )));
        }
        if let Some(m) = failed {
            fx.push(Effect::error(format!("training failed: {m}")));
        }
        fx.extend(unsaved);
        fx
    }

    /// Adds the run shown to [`Self::session_runs`] once it has a checkpoint.
    fn remember_run(&mut self) {
        if let (Some(dir), Some(_)) = (&self.run.run_dir, self.run.checkpoint_step) {
            remember(&mut self.session_runs, dir);
        }
    }

    /// Shows a run read from disk: its history, and its configuration, which becomes the
    /// settings; the run is then followed on disk, and the Sample screen draws from it.
    pub fn open(&mut self, opened: OpenedRun, ctx: &mut Ctx) -> Vec<Effect> {
        let dir = opened.summary.dir.clone();
        let run = &mut self.run;
        run.reset();
        run.load_history(&opened.history);
        run.quality = opened.quality.clone();
        run.preview = opened.preview.clone();
        // Followed from its last logged step; saved is what its newest checkpoint holds (the
        // log may run past it: steps a trainer did before it crashed, or is doing now).
        let saved = opened.summary.step;
        run.start_step = saved.max(run.step());
        // A run a process trains towards its first checkpoint has none to continue from yet.
        run.checkpoint_step = (!opened.summary.unsaved).then_some(saved);
        run.run_dir = Some(dir.clone());
        run.state = RunState::Opened;
        remember(&mut self.session_runs, &dir);
        let mut fx = Vec::new();
        if let Some(s) = &opened.summary.settings {
            run.total_steps = s.steps;
            run.timesteps = Some(s.timesteps);
            run.min_snr = Some(s.min_snr_gamma.is_some());
            if self.own_settings.is_none() {
                self.own_settings = Some(Box::new(OwnSettings {
                    train: ctx.settings.train.clone(),
                    origin: ctx.settings.origin.clone(),
                    dataset: ctx.settings.dataset.clone(),
                    sample: ctx.settings.sample.clone(),
                    run_sample: ctx.settings.sample.clone(),
                }));
            }
            ctx.settings.set_from_run(s.clone());
            if let Some(own) = self.own_settings.as_mut() {
                own.run_sample = ctx.settings.sample.clone();
            }
            fx.push(Effect::Timesteps(s.timesteps));
        }
        let start = run.start_step;
        self.opened = true;
        let own = if self.own_settings.is_some() {
            " (u: your own settings back)"
        } else {
            ""
        };
        fx.push(Effect::WatchRun {
            dir: dir.clone(),
            from_step: start,
        });
        fx.push(Effect::SampleFrom(dir.clone()));
        // The run's name (its folder is on Runs): the line has room for what to do next.
        let name = dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        fx.push(if let Some(problem) = &opened.summary.problem {
            // Its newest checkpoint cannot be used: what is wrong and which one can, not a
            // step it would continue from.
            Effect::error(format!("opened {name}: {problem}"))
        } else {
            Effect::info(if opened.summary.unsaved {
            format!("opened {name}: step {start} logged, no checkpoint yet: followed live while it trains elsewhere{own}")
        } else if start > saved {
            // Logged past its checkpoint: a process trains it now (its checkpoints come), or
            // one stopped without saving them; continuing goes back to the checkpoint.
            format!("opened {name}: step {start} logged, {saved} saved; space continues from step {saved} (a run trained elsewhere is followed live){own}")
        } else if run.total_steps > 0 && saved >= run.total_steps {
            format!("opened {name} at its last step ({saved}): raise steps, then space trains it on{own}")
        } else {
            // Whether a process trains it elsewhere is said when the watcher finds out.
            format!("opened {name} at step {saved}: space continues it{own}")
        })
        });
        self.opened_dataset = opened.summary.dataset.clone();
        if let (true, Some(ds)) = (opened.data_gone, &opened.summary.dataset) {
            // Its folder moved: loading it would only fail. It trains on with the data loaded
            // (checked to fit when space starts it; the run then names that data).
            fx.push(Effect::error(format!(
                "its data {ds} is gone: space trains it on the data loaded now ({}), if that fits; ddpm-lab --dataset PATH loads another",
                ctx.loaded.unwrap_or("none yet")
            )));
        } else if let Some(ds) = opened.summary.dataset {
            if ds != ctx.settings.dataset {
                // Its epochs once its data is loaded (see `count_epochs`).
                fx.push(Effect::LoadDataset(ds));
            } else {
                self.count_epochs(ctx);
            }
        }
        fx
    }

    /// The epochs of an opened run shown without them (its history never crossed an epoch's
    /// end), from the images loaded where they are the run's own set; called on opening and
    /// when a dataset is loaded.
    pub fn count_epochs(&mut self, ctx: &Ctx) {
        if let (0, RunState::Opened, Some(n), true) = (
            self.run.steps_per_epoch,
            &self.run.state,
            ctx.n_train,
            ctx.loaded.is_some() && ctx.loaded == self.opened_dataset.as_deref(),
        ) {
            self.run.steps_per_epoch = crate::data::epoch_steps(n, ctx.settings.train.batch_size);
        }
    }
}

/// Whether two configurations train at the same speed (same network, batch and device).
fn same_speed(a: &TrainSettings, b: &TrainSettings) -> bool {
    a.unet(1) == b.unet(1) && a.batch_size == b.batch_size && a.device == b.device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cycle_and_clamp() {
        let mut s = TrainSettings {
            schedule: BetaSchedule::Linear,
            ..TrainSettings::default()
        };
        Field::Schedule.adjust(&mut s, 1, None);
        assert_eq!(s.schedule, BetaSchedule::Quadratic);
        Field::Schedule.adjust(&mut s, -1, None);
        Field::Schedule.adjust(&mut s, -1, None);
        assert_eq!(s.schedule, BetaSchedule::Sigmoid);
        // An imported run's own β hold for its T only: a T chosen drops them, as a schedule does.
        s.betas = Some(vec![0.02; s.timesteps]);
        assert_eq!(s.schedule_label(), "imported β");
        Field::Timesteps.adjust(&mut s, 1, None);
        assert_eq!(
            (s.betas.as_ref(), s.schedule_label().as_str()),
            (None, "sigmoid")
        );
        s.batch_size = 256;
        Field::Batch.adjust(&mut s, 1, None);
        assert_eq!(s.batch_size, 256);
        Field::Batch.adjust(&mut s, -1, None);
        assert_eq!(s.batch_size, 128);
        s.lr = 1e-3;
        Field::Lr.adjust(&mut s, 1, None);
        assert_eq!(s.lr, 2e-3);
        assert_eq!(Field::Lr.value(&s), "2e-3");
        // The devices of this build only (the CPU alone without the cuda and metal features).
        let built = DeviceSpec::built_for();
        Field::Device.adjust(&mut s, 1, None);
        assert_eq!(s.device, built[1 % built.len()]);
        s.device = DeviceSpec::Cpu;
        s.seed = 0;
        Field::Seed.adjust(&mut s, -1, None);
        assert_eq!(s.seed, 0);
        // The budget: 10 minutes by default on a CPU, up a notch, down to none.
        assert_eq!(Field::Budget.value(&s), "10 min");
        Field::Budget.adjust(&mut s, 1, None);
        assert_eq!(s.time_limit_s, Some(1200.0));
        for _ in 0..5 {
            Field::Budget.adjust(&mut s, -1, None);
        }
        assert_eq!(
            (s.time_limit_s, Field::Budget.value(&s).as_str()),
            (None, "none")
        );
        Field::Budget.adjust(&mut s, 1, None);
        assert_eq!(s.time_limit_s, Some(120.0));
    }

    /// The steps and the preview interval offer whole epochs of the data loaded (5 epochs of
    /// 8 517 images at 128 are 335 steps; Fashion-MNIST's 2345 is not offered on it), and
    /// round numbers alone before it is loaded.
    #[test]
    fn steps_offer_epochs_of_the_data_loaded() {
        let walk = |field: Field, start: usize, n_train: Option<usize>| {
            let mut s = TrainSettings {
                batch_size: 128,
                steps: start,
                preview_every: start,
                ..TrainSettings::default()
            };
            let mut seen = Vec::new();
            for _ in 0..16 {
                field.adjust(&mut s, 1, n_train);
                seen.push(match field {
                    Field::Steps => s.steps,
                    _ => s.preview_every,
                });
            }
            seen.dedup();
            seen
        };
        assert_eq!(
            walk(Field::Steps, 20, Some(8517)),
            [67, 100, 200, 335, 500, 670, 1000, 2000, 2100, 5000, 10000, 20000, 50000]
        );
        assert_eq!(
            walk(Field::Steps, 1000, Some(60_000)),
            [2000, 2100, 2345, 4690, 5000, 10000, 20000, 50000]
        );
        assert_eq!(
            walk(Field::Steps, 20, None),
            [100, 200, 500, 1000, 2000, 2100, 5000, 10000, 20000, 50000]
        );
        assert_eq!(
            walk(Field::Preview, 0, Some(8517)),
            [50, 67, 100, 200, 300, 500, 1000]
        );
        assert_eq!(
            walk(Field::Preview, 0, None),
            [50, 100, 200, 300, 500, 1000]
        );
    }
}
