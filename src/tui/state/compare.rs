//! State of the Compare screen: one run per schedule, trained in turn or round-robin, then
//! sampled from the same noise and stepped through together.

use std::sync::mpsc::Sender;

use crate::schedule::BetaSchedule;
use crate::train::events::{FinishReason, TrainCommand, TrainEvent};

use super::super::event::Command;
use super::super::settings::{CompareMode, SampleSettings, TrainSettings};
use super::super::workers::{Frames, OpenedComparison, SampleMsg, Slot, StopFlag};
use super::effect::{Ctx, Effect, Topic};
use super::run::{RunProgress, RunState};
use super::sample::{FrameCursor, SampleStatus};
use super::train::notch;
use crate::runs::comparison;

/// Most steps a round-robin run trains before the next one takes over.
pub const ROUND_ROBIN_QUANTUM: usize = 20;
/// Turns each run gets at least, round-robin: a run trains at most this fraction of its steps
/// before the next one takes over, so the four curves grow together even on short runs.
pub const ROUND_ROBIN_TURNS: usize = 20;

/// Steps a round-robin run trains per turn when each run trains `steps` steps: a twentieth of
/// them (at least 1, at most [`ROUND_ROBIN_QUANTUM`]).
pub fn round_robin_quantum(steps: usize) -> usize {
    (steps / ROUND_ROBIN_TURNS).clamp(1, ROUND_ROBIN_QUANTUM)
}

/// Steps per run that `+` / `−` step through.
const STEPS: [usize; 8] = [20, 50, 100, 200, 500, 1000, 2000, 5000];

/// What a run's event means to the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// One more training step.
    Step,
    /// The run finished or failed.
    Ended,
    /// Anything else.
    Other,
}

impl Tick {
    /// The tick of `event`.
    pub fn of(event: &TrainEvent) -> Self {
        match event {
            TrainEvent::Step(_) => Tick::Step,
            TrainEvent::Finished { .. } | TrainEvent::Failed { .. } => Tick::Ended,
            _ => Tick::Other,
        }
    }
}

/// The scheduler's decision after an event of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Nothing changes hands.
    Stay,
    /// Round-robin: `from` used up its quantum; pause it and hand the machine to `to`.
    Rotate {
        /// The run to pause.
        from: usize,
        /// The run to resume or start.
        to: usize,
    },
    /// The active run ended: hand the machine to this run.
    Next(usize),
    /// The active run ended and no run is left to train.
    Done,
}

/// One schedule's run and samples.
#[derive(Debug, Clone)]
pub struct CompareSlot {
    /// Schedule of this run.
    pub schedule: BetaSchedule,
    /// Its training progress.
    pub run: RunProgress,
    /// Status of its sampling.
    pub sample_status: SampleStatus,
    /// Its frames.
    pub frames: Option<Frames>,
}

/// State of the Compare screen.
#[derive(Debug, Clone)]
pub struct CompareState {
    /// One slot per schedule, in [`BetaSchedule::ALL`] order.
    pub slots: Vec<CompareSlot>,
    /// Slot currently training.
    pub active: Option<usize>,
    /// The user paused the comparison.
    pub paused: bool,
    /// Steps the active slot did since it took over.
    pub since_switch: usize,
    /// Steps a run trains per turn, round-robin (see [`round_robin_quantum`]).
    pub quantum: usize,
    /// Shared playback cursor of the four denoising sequences.
    pub cursor: FrameCursor,
    /// The settings the comparison's runs train with (each with its own schedule): the Train
    /// settings when it started, or its own when opened from disk. `None` before the first.
    pub settings: Option<TrainSettings>,
    /// The dataset the comparison trains on (as the lab names it).
    pub dataset: Option<String>,
    /// The sampler and seed the samples shown were drawn with (`s` may have changed the
    /// seed since).
    pub drawn_with: Option<SampleSettings>,
    /// What stops the sampling under way (`x`), one flag for every run's.
    sample_stop: Option<StopFlag>,
    /// The sampler and seed of the sampling under way: [`Self::drawn_with`] once its frames
    /// come.
    pending_drawn: Option<SampleSettings>,
}

impl Default for CompareState {
    fn default() -> Self {
        Self {
            slots: BetaSchedule::ALL
                .iter()
                .map(|&schedule| CompareSlot {
                    schedule,
                    run: RunProgress::default(),
                    sample_status: SampleStatus::Idle,
                    frames: None,
                })
                .collect(),
            active: None,
            paused: false,
            since_switch: 0,
            quantum: ROUND_ROBIN_QUANTUM,
            cursor: FrameCursor::default(),
            settings: None,
            dataset: None,
            drawn_with: None,
            sample_stop: None,
            pending_drawn: None,
        }
    }
}

impl CompareState {
    /// Whether one of the runs shown is the one in `dir`.
    pub fn holds(&self, dir: &std::path::Path) -> bool {
        self.slots
            .iter()
            .any(|s| s.run.run_dir.as_deref() == Some(dir))
    }

    /// Index of a schedule's slot.
    pub fn index_of(&self, schedule: BetaSchedule) -> Option<usize> {
        self.slots.iter().position(|s| s.schedule == schedule)
    }

    /// Whether any run has a live worker.
    pub fn any_active(&self) -> bool {
        self.slots.iter().any(|s| s.run.is_active())
    }

    /// Whether a run is stopping (`x`: its checkpoint is being written).
    pub fn stopping(&self) -> bool {
        self.slots.iter().any(|s| s.run.state == RunState::Stopping)
    }

    /// Whether every run reached its steps (a stopped one has not).
    pub fn all_finished(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.run.state == RunState::Finished(FinishReason::Steps))
    }

    /// The next slot after `from` (cyclically) that has not finished or failed.
    pub fn next_unfinished(&self, from: usize) -> Option<usize> {
        let n = self.slots.len();
        (1..=n).map(|k| (from + k) % n).find(|&i| {
            !matches!(
                self.slots[i].run.state,
                RunState::Finished(_) | RunState::Failed(_)
            )
        })
    }

    /// Length of the longest frame sequence.
    pub fn frame_len(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.frames.as_ref().map(|f| f.len()))
            .max()
            .unwrap_or(0)
    }

    /// Handles a command of the Compare screen.
    pub fn handle(&mut self, cmd: Command, ctx: &mut Ctx) -> Vec<Effect> {
        match cmd {
            Command::CompareToggle => return self.toggle(ctx),
            Command::CompareContinue => return self.continue_runs(ctx),
            Command::CompareStop if self.sampling() => {
                if let Some(stop) = &self.sample_stop {
                    stop.raise();
                }
                return vec![Effect::info_about(
                    Topic::CompareSampling,
                    "stopping the sampling…",
                )];
            }
            Command::CompareStop => {
                // Paused, the scheduler hands nothing on when the stopped run ends.
                self.paused = true;
                return if self.stop_all() {
                    // Until the runs are saved; the panel's hint then says what comes next.
                    vec![Effect::info_about(
                        Topic::CompareStopping,
                        "stopping the comparison: each run is saved (c continues it, space starts anew)",
                    )]
                } else {
                    vec![Effect::error(
                        "nothing to stop: no comparison is training, paused or sampling",
                    )]
                };
            }
            Command::CompareMode => {
                if self.any_active() {
                    return vec![Effect::error_about(
                        Topic::WhileTraining,
                        "the mode is fixed while the comparison trains",
                    )];
                }
                ctx.settings.compare_mode = match ctx.settings.compare_mode {
                    CompareMode::InTurn => CompareMode::RoundRobin,
                    CompareMode::RoundRobin => CompareMode::InTurn,
                };
            }
            Command::CompareSteps(_) if self.any_active() => {
                return vec![Effect::error_about(
                    Topic::WhileTraining,
                    "the steps per run are fixed while the comparison trains (x stops it)",
                )];
            }
            Command::CompareSteps(dir) => {
                let steps = &mut ctx.settings.compare_steps;
                let before = *steps;
                *steps = notch(&STEPS, before, dir);
                if *steps == before {
                    return vec![Effect::error(format!(
                        "{before} steps per run is the {} the lab offers",
                        if dir < 0 { "fewest" } else { "most" }
                    ))];
                }
            }
            Command::Generate => return self.sample(&ctx.settings.sample),
            Command::StepFrames(delta) => self.cursor.step(delta),
            Command::FirstFrame => self.cursor.home(),
            Command::LastFrame => self.cursor.end(),
            Command::TogglePlay => self.cursor.toggle_play(),
            Command::NewSeed(dir) => {
                let s = &mut ctx.settings.sample;
                s.seed = super::sample::next_seed(s.seed, dir);
                return vec![Effect::info(format!(
                    "sampling seed {}: g samples all four with it",
                    s.seed
                ))];
            }
            _ => {}
        }
        Vec::new()
    }

    /// Space: starts a fresh comparison (one run per schedule, under one directory), or
    /// pauses / resumes the one under way.
    fn toggle(&mut self, ctx: &mut Ctx) -> Vec<Effect> {
        if ctx.train_active {
            return vec![Effect::error(
                "the Train run is still going (x on Train stops it)",
            )];
        }
        if self.stopping() {
            // Stopping (x): its checkpoint is being written, and nothing is handed on after.
            return Vec::new();
        }
        if let Some(i) = self.active.filter(|&i| self.slots[i].run.is_held()) {
            let slot = &mut self.slots[i];
            if !slot.run.can_train_on() {
                return vec![Effect::error(format!(
                    "the {} run's last checkpoint is not written: make room, then c saves it (space cannot train past it)",
                    slot.schedule
                ))];
            }
            // Its checkpoint was not written: space trains on, as on the Train screen.
            slot.run.send(TrainCommand::Resume);
            return vec![Effect::info(format!(
                "the {} run trains on, its steps since step {} unsaved until a checkpoint is written",
                slot.schedule,
                slot.run.checkpoint_step.unwrap_or(0)
            ))];
        }
        if let Some(i) = self.active {
            let run = &self.slots[i].run;
            if run.is_active() {
                run.send(if self.paused {
                    TrainCommand::Resume
                } else {
                    TrainCommand::Pause
                });
                self.paused = !self.paused;
                return Vec::new();
            }
        }
        if !ctx.data_ready {
            return vec![ctx.data_not_ready()];
        }
        *self = CompareState {
            quantum: round_robin_quantum(ctx.settings.compare_steps),
            // Fixed for this comparison: its runs that start later train as the first did.
            settings: Some(ctx.settings.train.clone()),
            dataset: Some(ctx.settings.dataset.clone()),
            ..CompareState::default()
        };
        let base = ctx.new_run_dir(comparison::TAG);
        for slot in &mut self.slots {
            slot.run.run_dir = Some(comparison::member(&base, slot.schedule));
        }
        // Named: after a finished or opened comparison, space starts another beside it.
        let name = base.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut fx: Vec<Effect> = name
            .map(|n| Effect::info(format!("starting a new comparison, {n}…")))
            .into_iter()
            .collect();
        fx.extend(self.start_slot(0));
        fx
    }

    /// Whether the comparison on screen (trained here or opened from disk) has a run short of
    /// `steps` that `c` would continue.
    pub fn can_continue(&self, steps: usize) -> bool {
        !self.any_active()
            && self.slots.iter().any(|s| s.run.run_dir.is_some())
            && self
                .slots
                .iter()
                .any(|s| s.run.checkpoint_step.unwrap_or(0) < steps)
    }

    /// `c`: continues the comparison on screen (stopped, or opened from disk): each run short of
    /// the steps per run resumes from its checkpoint (or starts, where it has none) and trains
    /// on to them, in turn or round-robin as a new comparison would.
    fn continue_runs(&mut self, ctx: &mut Ctx) -> Vec<Effect> {
        // A run whose checkpoint was not written: `c` tries again (the run goes on once it is
        // saved, or ends where it was stopping).
        let held: Vec<&CompareSlot> = self.slots.iter().filter(|s| s.run.is_held()).collect();
        if !held.is_empty() {
            for slot in &held {
                slot.run.send(TrainCommand::Checkpoint);
            }
            let names: Vec<String> = held.iter().map(|s| s.schedule.to_string()).collect();
            return vec![Effect::info(format!(
                "saving the {} run's checkpoint again…",
                names.join(" and ")
            ))];
        }
        if ctx.train_active {
            return vec![Effect::error(
                "the Train run is still going (x on Train stops it)",
            )];
        }
        if self.any_active() {
            return vec![Effect::error(
                "the comparison is still training (space pauses it, x stops it)",
            )];
        }
        if self.slots.iter().all(|s| s.run.run_dir.is_none()) {
            return vec![Effect::error(
                "no comparison to continue: space starts one, o on Runs opens an earlier one",
            )];
        }
        if let Some(ds) = self
            .dataset
            .clone()
            .filter(|ds| *ds != ctx.settings.dataset)
        {
            return vec![
                Effect::LoadDataset(ds.clone()),
                Effect::info(format!(
                    "the comparison trains on {ds}: loading it (c again once it is loaded)"
                )),
            ];
        }
        if !ctx.data_ready {
            return vec![ctx.data_not_ready()];
        }
        let steps = ctx.settings.compare_steps;
        // Nothing to train: said, and the runs keep their states (stopped stays stopped).
        if !self
            .slots
            .iter()
            .any(|s| s.run.checkpoint_step.unwrap_or(0) < steps)
        {
            return vec![Effect::info(format!(
                "every run is at {steps} steps or more already: + raises the steps per run, g samples them"
            ))];
        }
        let mut first = None;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.run.checkpoint_step.unwrap_or(0) >= steps {
                slot.run.state = RunState::Finished(FinishReason::Steps);
            } else {
                // Waiting for its turn: from its checkpoint on disk, or from nothing.
                slot.run.state = if slot.run.checkpoint_step.is_some() {
                    RunState::Opened
                } else {
                    RunState::Idle
                };
                first = first.or(Some(i));
            }
        }
        let Some(first) = first else {
            return Vec::new();
        };
        self.active = None;
        self.paused = false;
        self.since_switch = 0;
        self.quantum = round_robin_quantum(steps);
        let mut fx = self.start_slot(first);
        fx.push(Effect::info(format!(
            "continuing the comparison: each run trains on to {steps} steps"
        )));
        fx
    }

    /// Shows a comparison read from disk: each schedule's run with its history, at its last
    /// checkpoint (a schedule the comparison never reached is waiting). The steps per run
    /// become the runs' own stop step; `c` continues them, `g` samples them.
    pub fn open(&mut self, opened: OpenedComparison, ctx: &mut Ctx) -> Vec<Effect> {
        *self = CompareState {
            settings: opened.settings.clone(),
            dataset: opened.dataset.clone(),
            ..CompareState::default()
        };
        for slot in &mut self.slots {
            slot.run.run_dir = Some(comparison::member(&opened.base, slot.schedule));
        }
        let mut steps = opened.settings.as_ref().map_or(0, |s| s.steps);
        for (schedule, found) in opened.runs {
            let Some(i) = self.index_of(schedule) else {
                continue;
            };
            let run = &mut self.slots[i].run;
            run.load_history(&found.history);
            run.quality = found.quality;
            run.start_step = found.summary.step;
            run.checkpoint_step = (found.summary.step > 0).then_some(found.summary.step);
            run.state = RunState::Opened;
            if let Some(s) = &found.summary.settings {
                run.total_steps = s.steps;
                run.timesteps = Some(s.timesteps);
                run.min_snr = Some(s.min_snr_gamma.is_some());
                if opened.settings.is_none() {
                    steps = steps.max(s.steps);
                }
            }
        }
        if steps > 0 {
            ctx.settings.compare_steps = steps;
        }
        let at: Vec<String> = self
            .slots
            .iter()
            .map(|s| format!("{} {}", s.schedule, s.run.checkpoint_step.unwrap_or(0)))
            .collect();
        let next = if self.can_continue(ctx.settings.compare_steps) {
            format!(
                "c trains each on to {} steps, g samples them",
                ctx.settings.compare_steps
            )
        } else {
            "g samples them, + then c trains them further".to_string()
        };
        let name = opened.base.file_name().map_or_else(
            || opened.base.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        let mut fx = vec![Effect::info(format!(
            "opened {name}: {next} (at {})",
            at.join(", "),
        ))];
        // Its runs go on with the data they were trained on.
        if let Some(ds) = opened.dataset.filter(|ds| *ds != ctx.settings.dataset) {
            fx.push(Effect::LoadDataset(ds));
        }
        fx
    }

    fn start_slot(&self, i: usize) -> Vec<Effect> {
        let slot = &self.slots[i];
        let Some(run_dir) = slot.run.run_dir.clone() else {
            return vec![Effect::error(format!(
                "the {} run has no directory",
                slot.schedule
            ))];
        };
        vec![Effect::Train {
            slot: Slot::Compare(slot.schedule),
            run_dir,
            // A run with a checkpoint (stopped, or opened from disk) continues from it.
            resume: slot.run.checkpoint_step.is_some(),
        }]
    }

    /// Hands the machine to slot `i`: resumes its run, or starts it.
    fn switch_to(&mut self, i: usize) -> Vec<Effect> {
        if self.slots[i].run.is_active() {
            self.slots[i].run.send(TrainCommand::Resume);
            self.active = Some(i);
            self.since_switch = 0;
            Vec::new()
        } else {
            self.start_slot(i)
        }
    }

    /// The engine's answer to [`Effect::Train`] for the run of `schedule`.
    pub fn on_started(
        &mut self,
        schedule: BetaSchedule,
        started: Result<Sender<TrainCommand>, String>,
    ) -> Vec<Effect> {
        let Some(i) = self.index_of(schedule) else {
            return Vec::new();
        };
        match started {
            Ok(commands) => {
                let run = &mut self.slots[i].run;
                run.commands = Some(commands);
                run.state = RunState::Starting;
                self.active = Some(i);
                self.since_switch = 0;
                Vec::new()
            }
            Err(e) => vec![Effect::error(format!(
                "cannot start the {schedule} run: {e}"
            ))],
        }
    }

    /// The scheduler: after a `tick` of run `i` (already recorded), counts the active run's
    /// steps and decides who trains next. In turn, each run trains to its end; round-robin,
    /// each trains [`Self::quantum`] steps, then the next unfinished one takes over. A paused
    /// comparison hands nothing on.
    pub fn turn(&mut self, i: usize, tick: Tick, mode: CompareMode) -> Turn {
        if self.active != Some(i) {
            return Turn::Stay;
        }
        match tick {
            Tick::Step => {
                self.since_switch += 1;
                if mode == CompareMode::RoundRobin
                    && self.since_switch >= self.quantum.max(1)
                    && !self.paused
                {
                    if let Some(next) = self.next_unfinished(i).filter(|&n| n != i) {
                        return Turn::Rotate { from: i, to: next };
                    }
                }
                Turn::Stay
            }
            Tick::Ended => match self.next_unfinished(i) {
                Some(next) if !self.paused => Turn::Next(next),
                Some(_) => Turn::Stay,
                None => Turn::Done,
            },
            Tick::Other => Turn::Stay,
        }
    }

    /// An event of the run of `schedule`: records it and, unless the lab is quitting, carries
    /// out the scheduler's [`turn`](Self::turn).
    pub fn on_train(
        &mut self,
        schedule: BetaSchedule,
        event: TrainEvent,
        ctx: &Ctx,
    ) -> Vec<Effect> {
        let Some(i) = self.index_of(schedule) else {
            return Vec::new();
        };
        let tick = Tick::of(&event);
        // What starting the run cleaned up or found (a warm-up longer than the run, a branch
        // gone back from), said in the status line as the Train screen says it.
        let mut said: Vec<Effect> = match &event {
            TrainEvent::Started { notices, .. } => notices
                .iter()
                .map(|n| Effect::info(format!("{schedule}: {n}")))
                .collect(),
            _ => Vec::new(),
        };
        let was_stopping = self.slots[i].run.state == RunState::Stopping;
        said.extend(self.on_checkpoint_news(i, &event));
        // A run that fails is said; one that could not even start (a full disk, a folder it
        // may not write) pauses the comparison: the next would fail alike, one after another.
        if let TrainEvent::Failed { message, .. } = &event {
            let trained = matches!(
                self.slots[i].run.state,
                RunState::Running | RunState::Paused | RunState::Stopping
            );
            if !trained {
                self.paused = true;
                said.push(Effect::error(format!(
                    "the {schedule} run could not start: {message}; the comparison is paused (c continues it)"
                )));
            } else {
                said.push(Effect::error(format!(
                    "the {schedule} run failed: {message}"
                )));
            }
        }
        self.slots[i].run.apply(event);
        // `x` stopped the comparison: said once the last run is saved.
        if was_stopping && !self.any_active() {
            said.push(Effect::info(
                "the comparison is stopped, each run saved: c continues it, space starts anew",
            ));
        }
        if !ctx.running {
            return said;
        }
        let fx = self.on_turn(i, tick, ctx);
        said.extend(fx);
        said
    }

    /// What a checkpoint of run `i` that was not written, or one written after that, means
    /// (said before the event is applied): a run that could not save waits, paused with its
    /// weights in memory (the trainer holds it), and the comparison with it; saved at last, it
    /// goes on unless it was stopping or the comparison was paused meanwhile.
    fn on_checkpoint_news(&mut self, i: usize, event: &TrainEvent) -> Vec<Effect> {
        let paused = self.paused;
        let slot = &self.slots[i];
        match event {
            TrainEvent::CheckpointFailed {
                step,
                message,
                last,
            } => {
                vec![Effect::error(format!(
                    "{}: checkpoint at step {step} not written: {message}; the comparison waits, weights kept in memory: {}",
                    slot.schedule,
                    super::train::held_keys(slot.run.trains_on_after(*last))
                ))]
            }
            TrainEvent::Checkpointed { step, .. } | TrainEvent::Finished { step, .. }
                if slot.run.is_held() =>
            {
                let goes_on = matches!(event, TrainEvent::Checkpointed { .. })
                    && slot.run.state == RunState::Paused
                    && !paused;
                if goes_on {
                    slot.run.send(TrainCommand::Resume);
                }
                vec![Effect::info(format!(
                    "{}: checkpoint saved at step {step}{}",
                    slot.schedule,
                    if goes_on {
                        "; the comparison goes on"
                    } else {
                        ""
                    }
                ))]
            }
            _ => Vec::new(),
        }
    }

    /// Carries out the scheduler's [`turn`](Self::turn) after an event of run `i`.
    fn on_turn(&mut self, i: usize, tick: Tick, ctx: &Ctx) -> Vec<Effect> {
        match self.turn(i, tick, ctx.settings.compare_mode) {
            Turn::Stay => Vec::new(),
            Turn::Rotate { from, to } => {
                self.slots[from].run.send(TrainCommand::Pause);
                self.switch_to(to)
            }
            Turn::Next(to) => self.switch_to(to),
            Turn::Done => {
                self.active = None;
                if self.all_finished() {
                    vec![Effect::info(
                        "all four runs finished: press g to sample them side by side",
                    )]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// `g`: samples every run that has a checkpoint with `settings`, all from the same noise
    /// (same seed).
    fn sample(&mut self, settings: &SampleSettings) -> Vec<Effect> {
        if self.any_active() {
            return vec![Effect::error_about(
                Topic::WhileTraining,
                "wait for the runs to finish",
            )];
        }
        let mut fx = Vec::new();
        let stop = StopFlag::default();
        for slot in &mut self.slots {
            let Some(run_dir) = slot.run.run_dir.clone() else {
                continue;
            };
            if slot.run.checkpoint_step.is_none() {
                continue;
            }
            // The frames shown stay until the new ones come: a stopped sampling keeps them.
            slot.sample_status = SampleStatus::Running { done: 0, total: 0 };
            fx.push(Effect::Sample {
                slot: Slot::Compare(slot.schedule),
                run_dir,
                stop: stop.clone(),
            });
        }
        if fx.is_empty() {
            fx.push(Effect::error(
                "no trained run to sample yet (space trains them)",
            ));
        } else {
            // Labelled with the steps DDIM runs: at most the runs' T.
            let drawn = match self.slots.iter().find_map(|s| s.run.timesteps) {
                Some(t) => settings.for_run(t),
                None => settings.clone(),
            };
            self.pending_drawn = Some(drawn);
            self.sample_stop = Some(stop);
            fx.push(Effect::info_about(
                Topic::CompareSampling,
                "sampling every schedule from the same noise…",
            ));
        }
        fx
    }

    /// A message of the sampling worker of `schedule`'s run; the shared cursor keeps its
    /// frame as far as the longest sequence allows.
    pub fn on_sample(&mut self, schedule: BetaSchedule, msg: SampleMsg) -> Vec<Effect> {
        let Some(i) = self.index_of(schedule) else {
            return Vec::new();
        };
        let slot = &mut self.slots[i];
        match msg {
            SampleMsg::Progress { done, total } | SampleMsg::Denoising { done, total, .. } => {
                slot.sample_status = SampleStatus::Running { done, total }
            }
            SampleMsg::Done(frames) => {
                slot.sample_status = SampleStatus::Ready;
                slot.frames = Some(*frames);
                if let Some(drawn) = &self.pending_drawn {
                    self.drawn_with = Some(drawn.clone());
                }
                // The final images first, as on Sample (←/Home step back through the
                // denoising), unless the user has moved the cursor meanwhile.
                let len = self.frame_len();
                let (index, at_end) = (self.cursor.index, self.cursor.index + 1 >= self.cursor.len);
                self.cursor = FrameCursor::new(len);
                if at_end {
                    self.cursor.end();
                } else {
                    self.cursor.index = index.min(len.saturating_sub(1));
                }
            }
            SampleMsg::Stopped { done, total } => {
                slot.sample_status = SampleStatus::Stopped { done, total };
                // Said once, when the last run has stopped.
                if !self.sampling() {
                    self.pending_drawn = None;
                    let kept = self.slots.iter().any(|s| s.frames.is_some());
                    return vec![Effect::info(format!(
                        "sampling stopped{}",
                        super::sample::what_stays(kept)
                    ))];
                }
            }
            SampleMsg::Failed(e) => {
                slot.sample_status = SampleStatus::Failed(e.clone());
                return vec![Effect::error(format!("sampling failed: {e}"))];
            }
        }
        Vec::new()
    }

    /// Whether any run is being sampled.
    pub fn sampling(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.sample_status, SampleStatus::Running { .. }))
    }

    /// Asks every live run to checkpoint and stop; whether any was asked.
    pub fn stop_all(&mut self) -> bool {
        let mut any = false;
        for slot in &mut self.slots {
            any |= slot.run.stop();
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::mpsc::{channel, Receiver};

    use super::*;
    use crate::train::events::StepStats;
    use crate::tui::settings::LabSettings;

    fn step(i: usize) -> TrainEvent {
        TrainEvent::Step(StepStats {
            step: i,
            epoch: 0,
            loss: 0.1,
            images_per_s: 1.0,
            elapsed_s: 0.0,
            lr: 1e-3,
            bucket_losses: Vec::new(),
        })
    }

    fn finished(step: usize) -> TrainEvent {
        TrainEvent::Finished {
            step,
            run_dir: Some(PathBuf::from("runs/x")),
            why: FinishReason::Steps,
        }
    }

    /// Runs `f` with a context of a lab whose dataset is loaded and nothing else trains.
    fn with_ctx<R>(mode: CompareMode, f: impl FnOnce(&mut Ctx) -> R) -> R {
        let mut settings = LabSettings {
            compare_mode: mode,
            runs_dir: Some("runs".into()),
            ..LabSettings::default()
        };
        let mut make = |root: &std::path::Path, tag: &str| root.join(format!("stamp-{tag}"));
        let mut ctx = Ctx {
            loaded: None,
            settings: &mut settings,
            data_ready: true,
            data_failed: false,
            n_train: Some(100),
            train_active: false,
            compare_active: false,
            running: true,
            make_run_dir: &mut make,
        };
        f(&mut ctx)
    }

    /// Answers the start of slot `i` as the engine would; returns the run's command receiver.
    fn started(c: &mut CompareState, i: usize) -> Receiver<TrainCommand> {
        let (tx, rx) = channel();
        assert!(c.on_started(BetaSchedule::ALL[i], Ok(tx)).is_empty());
        rx
    }

    fn starts(fx: &[Effect]) -> Vec<Slot> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Train { slot, resume, .. } => {
                    assert!(!resume);
                    Some(*slot)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn space_starts_the_first_schedule_under_one_directory() {
        with_ctx(CompareMode::InTurn, |ctx| {
            let mut c = CompareState::default();
            let fx = c.handle(Command::CompareToggle, ctx);
            assert!(matches!(
                &fx[..],
                [Effect::Notify(n), Effect::Train { slot: Slot::Compare(BetaSchedule::Linear), run_dir: d, .. }]
                    if d == &PathBuf::from("runs/stamp-compare/linear")
                        && n.text == "starting a new comparison, stamp-compare…"
            ));
            let rx = started(&mut c, 0);
            assert_eq!(c.active, Some(0));
            // Space again pauses, then resumes, the active run.
            assert!(c.handle(Command::CompareToggle, ctx).is_empty());
            assert!(c.paused);
            c.handle(Command::CompareToggle, ctx);
            assert!(!c.paused);
            let sent: Vec<_> = rx.try_iter().collect();
            assert_eq!(sent, vec![TrainCommand::Pause, TrainCommand::Resume]);
        });
    }

    #[test]
    fn in_turn_starts_the_next_run_when_one_ends() {
        with_ctx(CompareMode::InTurn, |ctx| {
            let mut c = CompareState::default();
            c.handle(Command::CompareToggle, ctx);
            let _rx = started(&mut c, 0);
            for i in 1..=3 * ROUND_ROBIN_QUANTUM {
                assert!(c.on_train(BetaSchedule::Linear, step(i), ctx).is_empty());
            }
            let fx = c.on_train(BetaSchedule::Linear, finished(60), ctx);
            assert_eq!(starts(&fx), vec![Slot::Compare(BetaSchedule::Quadratic)]);
            for i in 1..4 {
                let _rx = started(&mut c, i);
                let fx = c.on_train(BetaSchedule::ALL[i], finished(60), ctx);
                if i < 3 {
                    assert_eq!(starts(&fx), vec![Slot::Compare(BetaSchedule::ALL[i + 1])]);
                } else {
                    assert!(
                        matches!(&fx[..], [Effect::Notify(n)] if n.text.starts_with("all four"))
                    );
                }
            }
            assert_eq!(c.active, None);
            assert!(c.all_finished());
        });
    }

    #[test]
    fn round_robin_rotates_every_quantum_and_resumes_started_runs() {
        with_ctx(CompareMode::RoundRobin, |ctx| {
            let mut c = CompareState::default();
            c.handle(Command::CompareToggle, ctx);
            let rx0 = started(&mut c, 0);
            for i in 1..ROUND_ROBIN_QUANTUM {
                assert!(c.on_train(BetaSchedule::Linear, step(i), ctx).is_empty());
            }
            let fx = c.on_train(BetaSchedule::Linear, step(ROUND_ROBIN_QUANTUM), ctx);
            assert_eq!(
                rx0.try_iter().collect::<Vec<_>>(),
                vec![TrainCommand::Pause]
            );
            assert_eq!(starts(&fx), vec![Slot::Compare(BetaSchedule::Quadratic)]);
            let mut rxs = vec![rx0, started(&mut c, 1)];
            for (i, s) in BetaSchedule::ALL.iter().enumerate().skip(1) {
                if i > 1 {
                    rxs.push(started(&mut c, i));
                }
                c.slots[i].run.state = RunState::Running;
                for k in 1..=ROUND_ROBIN_QUANTUM {
                    c.on_train(*s, step(k), ctx);
                }
            }
            // Back to the first run, which was started: resumed, not started again.
            assert_eq!(c.active, Some(0));
            assert_eq!(
                rxs[0].try_iter().collect::<Vec<_>>(),
                vec![TrainCommand::Resume]
            );
            assert_eq!(c.since_switch, 0);
        });
    }

    #[test]
    fn round_robin_chunks_are_small_enough_for_the_curves_to_grow_together() {
        assert_eq!(round_robin_quantum(20), 1);
        assert_eq!(round_robin_quantum(100), 5);
        assert_eq!(round_robin_quantum(5000), ROUND_ROBIN_QUANTUM);
        assert_eq!(round_robin_quantum(0), 1);
        // Four runs of 20 steps: every run has trained before any has done a tenth of its
        // steps, and at every moment the runs are at most one turn apart.
        with_ctx(CompareMode::RoundRobin, |ctx| {
            ctx.settings.compare_steps = 20;
            let mut c = CompareState::default();
            let fx = c.handle(Command::CompareToggle, ctx);
            assert_eq!(starts(&fx), vec![Slot::Compare(BetaSchedule::Linear)]);
            let mut rxs: Vec<Option<Receiver<TrainCommand>>> = vec![None, None, None, None];
            rxs[0] = Some(started(&mut c, 0));
            let mut done = [0usize; 4];
            for _ in 0..80 {
                let i = c.active.expect("a run trains");
                c.slots[i].run.state = RunState::Running;
                done[i] += 1;
                let fx = c.on_train(BetaSchedule::ALL[i], step(done[i]), ctx);
                for slot in starts(&fx) {
                    let Slot::Compare(s) = slot else { panic!() };
                    let j = c.index_of(s).unwrap();
                    rxs[j] = Some(started(&mut c, j));
                }
                let (lo, hi) = (done.iter().min().unwrap(), done.iter().max().unwrap());
                assert!(hi - lo <= 1, "runs drift apart: {done:?}");
            }
            assert_eq!(done, [20, 20, 20, 20]);
        });
    }

    #[test]
    fn a_paused_comparison_or_a_quitting_lab_hands_nothing_on() {
        let mut c = CompareState {
            active: Some(0),
            paused: true,
            since_switch: ROUND_ROBIN_QUANTUM,
            ..CompareState::default()
        };
        assert_eq!(c.turn(0, Tick::Step, CompareMode::RoundRobin), Turn::Stay);
        assert_eq!(
            c.turn(1, Tick::Ended, CompareMode::InTurn),
            Turn::Stay,
            "not active"
        );
        c.slots[0].run.state = RunState::Finished(FinishReason::Steps);
        assert_eq!(c.turn(0, Tick::Ended, CompareMode::InTurn), Turn::Stay);
        c.paused = false;
        assert_eq!(c.turn(0, Tick::Ended, CompareMode::InTurn), Turn::Next(1));
        for slot in &mut c.slots {
            slot.run.state = RunState::Failed("x".into());
        }
        assert_eq!(c.turn(0, Tick::Ended, CompareMode::InTurn), Turn::Done);
        with_ctx(CompareMode::InTurn, |ctx| {
            ctx.running = false;
            let mut c = CompareState {
                active: Some(0),
                ..CompareState::default()
            };
            assert!(c
                .on_train(BetaSchedule::Linear, finished(3), ctx)
                .is_empty());
            assert_eq!(c.active, Some(0));
        });
    }

    /// The end of the run in `dir` at `step`.
    fn finished_in(dir: &std::path::Path, step: usize) -> TrainEvent {
        TrainEvent::Finished {
            step,
            run_dir: Some(dir.to_path_buf()),
            why: FinishReason::Steps,
        }
    }

    /// A checkpoint at `step` of the run in `dir` (the event names its checkpoint folder).
    fn checkpointed(dir: &std::path::Path, step: usize) -> TrainEvent {
        TrainEvent::Checkpointed {
            step,
            path: dir.join(format!("checkpoints/step-{step:06}")),
        }
    }

    /// The runs the effects start, each with whether it resumes.
    fn trains(fx: &[Effect]) -> Vec<(Slot, PathBuf, bool)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Train {
                    slot,
                    run_dir,
                    resume,
                } => Some((*slot, run_dir.clone(), *resume)),
                _ => None,
            })
            .collect()
    }

    fn notices(fx: &[Effect]) -> Vec<String> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Notify(n) => Some(n.text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn c_continues_a_stopped_comparison_from_each_runs_checkpoint() {
        with_ctx(CompareMode::InTurn, |ctx| {
            ctx.settings.compare_steps = 20;
            let mut c = CompareState::default();
            let err = notices(&c.handle(Command::CompareContinue, ctx));
            assert!(err[0].starts_with("no comparison to continue"), "{err:?}");
            c.handle(Command::CompareToggle, ctx);
            let _rx = started(&mut c, 0);
            for i in 1..=5 {
                c.on_train(BetaSchedule::Linear, step(i), ctx);
            }
            let base = PathBuf::from("runs/stamp-compare");
            c.on_train(
                BetaSchedule::Linear,
                checkpointed(&base.join("linear"), 5),
                ctx,
            );
            let err = notices(&c.handle(Command::CompareContinue, ctx));
            assert!(
                err[0].starts_with("the comparison is still training"),
                "{err:?}"
            );
            // x: the run saves and ends; nothing is handed on, and that is said.
            let said = notices(&c.handle(Command::CompareStop, ctx));
            assert!(said[0].contains("c continues it"), "{said:?}");
            let said = c.on_train(
                BetaSchedule::Linear,
                finished_in(&base.join("linear"), 5),
                ctx,
            );
            assert_eq!(
                notices(&said),
                ["the comparison is stopped, each run saved: c continues it, space starts anew"]
            );
            assert!(!c.any_active());
            assert!(c.can_continue(20));
            // The Train settings change meanwhile: the comparison keeps its own.
            let started_with = ctx.settings.train.clone();
            ctx.settings.train.lr *= 2.0;
            assert_eq!(c.settings.as_ref(), Some(&started_with));
            // On other data, c loads the comparison's first.
            let own_data = ctx.settings.dataset.clone();
            ctx.settings.dataset = "mnist".into();
            let fx = c.handle(Command::CompareContinue, ctx);
            assert!(
                matches!(&fx[0], Effect::LoadDataset(d) if *d == own_data),
                "{fx:?}"
            );
            assert!(trains(&fx).is_empty());
            ctx.settings.dataset = own_data;
            // c: linear resumes from its checkpoint, and the next schedules start after it.
            let fx = c.handle(Command::CompareContinue, ctx);
            assert_eq!(
                trains(&fx),
                [(
                    Slot::Compare(BetaSchedule::Linear),
                    base.join("linear"),
                    true
                )]
            );
            assert!(notices(&fx)[0].contains("each run trains on to 20 steps"));
            let _rx = started(&mut c, 0);
            c.on_train(
                BetaSchedule::Linear,
                checkpointed(&base.join("linear"), 20),
                ctx,
            );
            let fx = c.on_train(
                BetaSchedule::Linear,
                finished_in(&base.join("linear"), 20),
                ctx,
            );
            assert_eq!(
                trains(&fx),
                [(
                    Slot::Compare(BetaSchedule::Quadratic),
                    base.join("quadratic"),
                    false
                )]
            );
        });
    }

    #[test]
    fn an_opened_comparison_continues_where_each_run_stopped() {
        with_ctx(CompareMode::InTurn, |ctx| {
            let base = PathBuf::from("runs/20261206-061500-compare");
            let run = |schedule: BetaSchedule, at: usize| {
                let dir = comparison::member(&base, schedule);
                let settings = crate::tui::settings::TrainSettings {
                    steps: 500,
                    ..Default::default()
                };
                let history = (1..=at)
                    .map(|i| match step(i) {
                        TrainEvent::Step(s) => s,
                        _ => unreachable!(),
                    })
                    .collect();
                (
                    schedule,
                    crate::tui::workers::OpenedRun {
                        quality: Vec::new(),
                        preview: None,
                        data_gone: false,
                        summary: crate::tui::workers::RunSummary {
                            dir,
                            settings: Some(settings),
                            dataset: Some("shapes".into()),
                            step: at,
                            held_by: None,
                            unsaved: false,
                            problem: None,
                        },
                        history,
                    },
                )
            };
            let opened = OpenedComparison {
                base: base.clone(),
                runs: vec![
                    run(BetaSchedule::Linear, 500),
                    run(BetaSchedule::Quadratic, 120),
                ],
                settings: None,
                dataset: Some(ctx.settings.dataset.clone()),
            };
            let mut c = CompareState::default();
            let said = notices(&c.open(opened, ctx));
            assert_eq!(ctx.settings.compare_steps, 500, "the runs' own stop step");
            assert!(
                said[0]
                    == "opened 20261206-061500-compare: c trains each on to 500 steps, g samples them (at linear 500, quadratic 120, cosine 0, sigmoid 0)",
                "{said:?}"
            );
            assert_eq!(c.slots[1].run.step(), 120, "its history is shown");
            // c: linear has its steps; quadratic resumes, cosine and sigmoid start afterwards.
            let fx = c.handle(Command::CompareContinue, ctx);
            assert_eq!(
                trains(&fx),
                [(
                    Slot::Compare(BetaSchedule::Quadratic),
                    base.join("quadratic"),
                    true
                )]
            );
            assert_eq!(
                c.slots[0].run.state,
                RunState::Finished(FinishReason::Steps)
            );
            let _rx = started(&mut c, 1);
            c.on_train(
                BetaSchedule::Quadratic,
                checkpointed(&base.join("quadratic"), 500),
                ctx,
            );
            let fx = c.on_train(
                BetaSchedule::Quadratic,
                finished_in(&base.join("quadratic"), 500),
                ctx,
            );
            assert_eq!(
                trains(&fx),
                [(
                    Slot::Compare(BetaSchedule::Cosine),
                    base.join("cosine"),
                    false
                )]
            );
        });
    }

    /// A comparison whose runs were stopped (x, or the lab quitting) has not finished: it
    /// is not said to be, and c continues it.
    #[test]
    fn stopped_runs_have_not_finished() {
        let mut c = CompareState::default();
        for slot in &mut c.slots {
            slot.run.run_dir = Some(PathBuf::from("runs/s").join(slot.schedule.name()));
            slot.run.checkpoint_step = Some(48);
            slot.run.state = RunState::Finished(FinishReason::Stopped);
        }
        assert!(!c.all_finished());
        assert!(c.can_continue(100));
        for slot in &mut c.slots {
            slot.run.state = RunState::Finished(FinishReason::Steps);
        }
        assert!(c.all_finished());
    }

    #[test]
    fn c_says_so_when_every_run_has_its_steps() {
        with_ctx(CompareMode::InTurn, |ctx| {
            ctx.settings.compare_steps = 20;
            let mut c = CompareState::default();
            for slot in &mut c.slots {
                slot.run.run_dir = Some(PathBuf::from("runs/b").join(slot.schedule.name()));
                slot.run.checkpoint_step = Some(20);
                slot.run.state = RunState::Opened;
            }
            assert!(!c.can_continue(20));
            let fx = c.handle(Command::CompareContinue, ctx);
            assert!(trains(&fx).is_empty());
            assert!(notices(&fx)[0].starts_with("every run is at 20 steps or more already"));
            assert!(
                c.slots.iter().all(|s| s.run.state == RunState::Opened),
                "the runs keep their states"
            );
            // More steps per run: each continues.
            ctx.settings.compare_steps = 50;
            let fx = c.handle(Command::CompareContinue, ctx);
            assert_eq!(trains(&fx).len(), 1);
            assert!(trains(&fx)[0].2, "from its checkpoint");
        });
    }

    /// Sampled runs show their final images first, as on Sample; a cursor the user moved
    /// stays where it is when the next run's frames arrive.
    #[test]
    fn sampled_frames_open_at_the_final_images() {
        let frames = |n: usize| {
            Box::new(Frames {
                timesteps: (0..n).rev().collect(),
                frames: vec![Vec::new(); n],
                x0_preds: Vec::new(),
                quality: Err("not scored".into()),
                step: Some(10),
            })
        };
        let mut c = CompareState::default();
        c.on_sample(BetaSchedule::Linear, SampleMsg::Done(frames(5)));
        assert_eq!(c.cursor.index, 4);
        c.cursor.home();
        c.on_sample(BetaSchedule::Cosine, SampleMsg::Done(frames(5)));
        assert_eq!(c.cursor.index, 0, "the user's frame is kept");
        c.cursor.end();
        c.on_sample(BetaSchedule::Sigmoid, SampleMsg::Done(frames(7)));
        assert_eq!(
            c.cursor.index, 6,
            "at the end, it follows the longest sequence"
        );
    }

    /// What a run's start found is said, named by its schedule.
    #[test]
    fn a_runs_start_notices_are_said() {
        with_ctx(CompareMode::InTurn, |ctx| {
            let mut c = CompareState::default();
            c.handle(Command::CompareToggle, ctx);
            let _rx = started(&mut c, 0);
            let fx = c.on_train(
                BetaSchedule::Linear,
                TrainEvent::Started {
                    run_dir: None,
                    start_step: 0,
                    total_steps: 20,
                    steps_per_epoch: 5,
                    num_params: 10,
                    notices: vec!["warm-up (50 steps) > run (20 steps)".into()],
                },
                ctx,
            );
            assert_eq!(
                notices(&fx),
                ["linear: warm-up (50 steps) > run (20 steps)"]
            );
        });
    }

    /// A fresh comparison whose first run (linear) trains, and that run's command receiver.
    fn linear_running(ctx: &mut Ctx) -> (CompareState, Receiver<TrainCommand>) {
        let mut c = CompareState::default();
        c.handle(Command::CompareToggle, ctx);
        let rx = started(&mut c, 0);
        c.slots[0].run.state = RunState::Running;
        (c, rx)
    }

    /// The events of a checkpoint that a full disk kept from being written: the failure, then
    /// the pause the trainer holds the run in.
    fn disk_full(c: &mut CompareState, step: usize, last: bool, ctx: &Ctx) -> Vec<Effect> {
        let mut fx = c.on_train(
            BetaSchedule::Linear,
            TrainEvent::CheckpointFailed {
                step,
                message: "No space left on device (os error 28)".into(),
                last,
            },
            ctx,
        );
        fx.extend(c.on_train(BetaSchedule::Linear, TrainEvent::Paused { step }, ctx));
        fx
    }

    #[test]
    fn a_checkpoint_not_written_holds_the_comparison_until_c_saves_it() {
        with_ctx(CompareMode::RoundRobin, |ctx| {
            let (mut c, rx) = linear_running(ctx);
            let dir = c.slots[0].run.run_dir.clone().unwrap();
            assert!(c.on_train(BetaSchedule::Linear, step(1), ctx).is_empty());
            let said = notices(&disk_full(&mut c, 1, false, ctx));
            assert_eq!(said.len(), 1, "{said:?}");
            assert!(
                said[0].starts_with(
                    "linear: checkpoint at step 1 not written: No space left on device"
                ) && said[0].contains("c saves"),
                "{said:?}"
            );
            assert!(c.slots[0].run.held.is_some());
            assert_eq!(c.slots[0].run.state, RunState::Paused);
            // Held, the run is still the comparison's: nothing else starts, and the quit
            // dialog knows its steps are unsaved.
            assert_eq!(c.active, Some(0));
            assert!(c.slots[0].run.unsaved());
            // `c` asks the run to save again (not to continue the comparison afresh).
            let fx = c.handle(Command::CompareContinue, ctx);
            assert!(trains(&fx).is_empty());
            assert_eq!(notices(&fx), ["saving the linear run's checkpoint again…"]);
            assert_eq!(
                rx.try_iter().collect::<Vec<_>>(),
                vec![TrainCommand::Checkpoint]
            );
            // Still full: it waits on.
            disk_full(&mut c, 1, false, ctx);
            assert!(c.slots[0].run.held.is_some());
            c.handle(Command::CompareContinue, ctx);
            let fx = c.on_train(BetaSchedule::Linear, checkpointed(&dir, 1), ctx);
            assert_eq!(
                notices(&fx),
                ["linear: checkpoint saved at step 1; the comparison goes on"]
            );
            assert_eq!(c.slots[0].run.held, None);
            assert_eq!(
                rx.try_iter().collect::<Vec<_>>(),
                vec![TrainCommand::Checkpoint, TrainCommand::Resume]
            );
        });
    }

    #[test]
    fn space_trains_a_held_run_on_and_a_stopped_one_only_saves() {
        with_ctx(CompareMode::InTurn, |ctx| {
            let (mut c, rx) = linear_running(ctx);
            c.on_train(BetaSchedule::Linear, step(1), ctx);
            disk_full(&mut c, 1, false, ctx);
            let fx = c.handle(Command::CompareToggle, ctx);
            assert_eq!(
                notices(&fx),
                ["the linear run trains on, its steps since step 0 unsaved until a checkpoint is written"]
            );
            assert!(!c.paused);
            assert_eq!(
                rx.try_iter().collect::<Vec<_>>(),
                vec![TrainCommand::Resume]
            );
            // `x`: the final checkpoint fails too; `c` saves it, and the stopped comparison
            // hands nothing on once it is written.
            c.on_train(BetaSchedule::Linear, TrainEvent::Resumed { step: 1 }, ctx);
            assert_eq!(c.slots[0].run.held, None, "trains on: no longer held");
            c.handle(Command::CompareStop, ctx);
            let said = notices(&disk_full(&mut c, 1, true, ctx));
            assert!(
                said[0].ends_with("make room, then c saves"),
                "stopping, space cannot train on: {said:?}"
            );
            assert!(c.handle(Command::CompareToggle, ctx).is_empty());
            c.handle(Command::CompareContinue, ctx);
            let fx = c.on_train(
                BetaSchedule::Linear,
                TrainEvent::Finished {
                    step: 1,
                    run_dir: c.slots[0].run.run_dir.clone(),
                    why: FinishReason::Stopped,
                },
                ctx,
            );
            assert!(trains(&fx).is_empty(), "paused: nothing handed on");
            assert!(notices(&fx).contains(&"linear: checkpoint saved at step 1".to_string()));
            assert_eq!(
                rx.try_iter().collect::<Vec<_>>(),
                vec![TrainCommand::Stop, TrainCommand::Checkpoint]
            );
            assert_eq!(c.slots[0].run.held, None);
        });
    }

    #[test]
    fn a_run_held_at_its_stop_step_can_only_be_saved() {
        with_ctx(CompareMode::InTurn, |ctx| {
            let (mut c, rx) = linear_running(ctx);
            c.on_train(BetaSchedule::Linear, step(1), ctx);
            c.on_train(BetaSchedule::Linear, step(2), ctx);
            let said = notices(&disk_full(&mut c, 2, true, ctx));
            assert!(said[0].ends_with("make room, then c saves"), "{said:?}");
            assert!(!c.slots[0].run.can_train_on());
            // Space cannot train past the stop step: it says what can be done.
            let fx = c.handle(Command::CompareToggle, ctx);
            assert_eq!(
                notices(&fx),
                ["the linear run's last checkpoint is not written: make room, then c saves it (space cannot train past it)"]
            );
            assert!(rx.try_iter().next().is_none());
            c.handle(Command::CompareContinue, ctx);
            let fx = c.on_train(BetaSchedule::Linear, finished(2), ctx);
            assert_eq!(starts(&fx), vec![Slot::Compare(BetaSchedule::Quadratic)]);
            assert_eq!(
                rx.try_iter().collect::<Vec<_>>(),
                vec![TrainCommand::Checkpoint]
            );
        });
    }

    #[test]
    fn a_run_that_cannot_start_pauses_the_comparison_one_that_fails_later_is_said() {
        with_ctx(CompareMode::InTurn, |ctx| {
            let mut c = CompareState::default();
            c.handle(Command::CompareToggle, ctx);
            let _rx = started(&mut c, 0);
            let fx = c.on_train(
                BetaSchedule::Linear,
                TrainEvent::Failed {
                    step: 0,
                    message: "cannot create runs/x: No space left on device (os error 28)".into(),
                },
                ctx,
            );
            assert!(trains(&fx).is_empty(), "the next would fail alike");
            assert_eq!(
                notices(&fx),
                ["the linear run could not start: cannot create runs/x: No space left on device (os error 28); the comparison is paused (c continues it)"]
            );
            assert!(c.paused);
            // `c` starts it again (from nothing: it has no checkpoint).
            let fx = c.handle(Command::CompareContinue, ctx);
            assert_eq!(trains(&fx).len(), 1, "{fx:?}");
            let _rx = started(&mut c, 0);
            c.slots[0].run.state = RunState::Running;
            c.on_train(BetaSchedule::Linear, step(1), ctx);
            let fx = c.on_train(
                BetaSchedule::Linear,
                TrainEvent::Failed {
                    step: 1,
                    message: "loss is NaN".into(),
                },
                ctx,
            );
            assert_eq!(notices(&fx)[0], "the linear run failed: loss is NaN");
            assert_eq!(starts(&fx), vec![Slot::Compare(BetaSchedule::Quadratic)]);
        });
    }
}
