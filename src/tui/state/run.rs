//! Progress of one training run as the lab displays it (shared by the Train and Compare
//! screens): its state, loss history, timestep-bucket losses, previews and checkpoints.

use std::path::PathBuf;
use std::sync::mpsc::Sender;

use crate::imaging::Image8;
use crate::train::events::{FinishReason, StepStats, TrainCommand, TrainEvent, LOSS_BUCKETS};

/// Weight of the newest loss in the smoothed curve: an exponential moving average, corrected
/// for its start as TensorBoard's and Adam's are (each point is the mean of the losses so far
/// weighted by `(1 - SMOOTHING)^age`, so the first, highest losses do not linger).
pub const SMOOTHING: f64 = 0.05;
/// Steps over which the training speed (and so the ETA) is averaged: one step's time swings
/// with the machine's load, the time of the last few dozen does not.
pub const SPEED_WINDOW: usize = 50;

/// Lifecycle of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RunState {
    /// Nothing started yet.
    #[default]
    Idle,
    /// Asked to start; waiting for the worker's `Started`.
    Starting,
    /// Training.
    Running,
    /// Paused (can resume).
    Paused,
    /// Asked to checkpoint and stop.
    Stopping,
    /// Ended (at its last step, its budget or a stop); checkpoint written.
    Finished(FinishReason),
    /// Failed with a message.
    Failed(String),
    /// Opened from disk, not training (space continues it).
    Opened,
}

impl RunState {
    /// Short label for status bars.
    pub fn label(&self) -> &'static str {
        match self {
            RunState::Idle => "idle",
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Stopping => "saving",
            RunState::Finished(FinishReason::Steps) => "finished",
            RunState::Finished(FinishReason::Stopped | FinishReason::TimeLimit) => "stopped",
            RunState::Failed(_) => "failed",
            RunState::Opened => "opened",
        }
    }
}

/// Everything known about one run.
#[derive(Debug, Clone, Default)]
pub struct RunProgress {
    /// Lifecycle state.
    pub state: RunState,
    /// Run directory, once known.
    pub run_dir: Option<PathBuf>,
    /// T of the run's noise schedule, once known (edits to the settings do not change it).
    pub timesteps: Option<usize>,
    /// Whether the run's loss is min-SNR weighted, once known (as `timesteps`).
    pub min_snr: Option<bool>,
    /// Step the current session started from.
    pub start_step: usize,
    /// Step at which the run stops.
    pub total_steps: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Trainable parameters.
    pub num_params: usize,
    /// `(step, loss)` of every step.
    pub losses: Vec<(f64, f64)>,
    /// `(step, smoothed loss)` of every step.
    pub smoothed: Vec<(f64, f64)>,
    /// Smoothed loss per timestep bucket.
    pub buckets: Vec<Option<f64>>,
    /// Stats of the latest step.
    pub last: Option<StepStats>,
    /// Latest preview: step and images.
    pub preview: Option<(usize, Vec<Image8>)>,
    /// Quality of the previews over the run: (step, quality), oldest first.
    pub quality: Vec<(usize, crate::eval::Quality)>,
    /// Step of the latest checkpoint.
    pub checkpoint_step: Option<usize>,
    /// Control channel of the worker while it runs.
    pub commands: Option<Sender<TrainCommand>>,
    /// Training time of the current session by the lab's clock, pauses excluded: what the
    /// budget (`time_limit_s`) counts.
    pub session: std::time::Duration,
    /// The process that trains this run now (`pid 4242`), as the watcher of an opened run
    /// last said: its speed and time left are shown as for a run trained here.
    pub trained_by: Option<String>,
    /// A checkpoint of the run could not be written (a full disk): its worker holds it,
    /// paused with its weights in memory, until one can be. `Some(true)` where it was the
    /// session's last, which can only be saved (see [`Self::can_train_on`]).
    pub held: Option<bool>,
    /// `(step, training seconds)` of the last [`SPEED_WINDOW`] steps, for the speed.
    recent: std::collections::VecDeque<(usize, f64)>,
    /// The smoothed curve's running sums.
    ema: LossEma,
}

/// `(step, loss)` points smoothed as the Train and Compare screens smooth a run's losses (the
/// weights of [`SMOOTHING`], corrected for the start): for runs read from disk.
pub fn smoothed(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut ema = LossEma::default();
    points.into_iter().map(|(x, l)| (x, ema.push(l))).collect()
}

/// The running sums `(Σ w·loss, Σ w)` of the smoothed loss, with the weights of [`SMOOTHING`].
#[derive(Debug, Clone, Default)]
struct LossEma(f64, f64);

impl LossEma {
    /// Adds `loss` and returns the new smoothed value.
    fn push(&mut self, loss: f64) -> f64 {
        let keep = 1.0 - SMOOTHING;
        self.0 = keep * self.0 + loss;
        self.1 = keep * self.1 + 1.0;
        self.0 / self.1
    }
}

impl RunProgress {
    /// Steps done so far.
    pub fn step(&self) -> usize {
        self.last.as_ref().map_or(self.start_step, |s| s.step)
    }

    /// Whether a worker is alive for this run.
    pub fn is_active(&self) -> bool {
        matches!(
            self.state,
            RunState::Starting | RunState::Running | RunState::Paused | RunState::Stopping
        )
    }

    /// Whether steps were done since the last checkpoint that a checkpoint can still save. A
    /// failed run's worker is gone: its steps since the last checkpoint are lost already, and
    /// quitting loses nothing more; an opened run's steps past its checkpoint were logged by
    /// another process, which alone can save them.
    pub fn unsaved(&self) -> bool {
        self.is_active()
            || (!matches!(self.state, RunState::Failed(_) | RunState::Opened)
                && self.step() > self.checkpoint_step.unwrap_or(self.start_step))
    }

    /// Sends a command to the worker (ignored when none is running).
    pub fn send(&self, cmd: TrainCommand) -> bool {
        self.commands
            .as_ref()
            .is_some_and(|tx| tx.send(cmd).is_ok())
    }

    /// Asks a live worker to checkpoint and stop; whether it was asked.
    pub fn stop(&mut self) -> bool {
        if self.is_active() && self.send(TrainCommand::Stop) {
            self.state = RunState::Stopping;
            true
        } else {
            false
        }
    }

    /// Clears history for a fresh start.
    pub fn reset(&mut self) {
        *self = RunProgress::default();
    }

    /// Loads a history read from disk (an opened run).
    pub fn load_history(&mut self, history: &[StepStats]) {
        for s in history {
            self.record(s.clone());
        }
        self.start_step = self.step();
    }

    fn record(&mut self, s: StepStats) {
        let x = s.step as f64;
        self.losses.push((x, s.loss));
        self.smoothed.push((x, self.ema.push(s.loss)));
        if self.buckets.len() != LOSS_BUCKETS {
            self.buckets = vec![None; LOSS_BUCKETS];
        }
        for (b, v) in self.buckets.iter_mut().zip(&s.bucket_losses) {
            if let Some(v) = v {
                *b = Some(b.map_or(*v, |old| old + 4.0 * SMOOTHING * (v - old)));
            }
        }
        if self.recent.len() == SPEED_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((s.step, s.elapsed_s));
        if self.steps_per_epoch == 0 {
            if let Some(spe) = crate::runs::steps_per_epoch_between(self.last.as_ref(), &s) {
                self.steps_per_epoch = spe;
            }
        }
        self.last = Some(s);
    }

    /// Applies one event of the worker.
    pub fn apply(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Started {
                run_dir,
                start_step,
                total_steps,
                steps_per_epoch,
                num_params,
                notices: _,
            } => {
                self.state = RunState::Running;
                if run_dir.is_some() {
                    self.run_dir = run_dir;
                }
                self.session = std::time::Duration::ZERO;
                self.start_step = start_step;
                self.total_steps = total_steps;
                self.steps_per_epoch = steps_per_epoch;
                self.num_params = num_params;
                if self.checkpoint_step.is_none() && start_step > 0 {
                    self.checkpoint_step = Some(start_step);
                }
                // A resumed run replays nothing: drop history beyond its checkpoint.
                self.losses.retain(|p| p.0 <= start_step as f64);
                self.smoothed.retain(|p| p.0 <= start_step as f64);
                self.ema = LossEma::default();
                for &(_, loss) in &self.losses {
                    self.ema.push(loss);
                }
                self.recent.clear();
            }
            TrainEvent::Step(s) => {
                if self.state == RunState::Starting {
                    self.state = RunState::Running;
                }
                self.record(s);
            }
            TrainEvent::Preview { step, images } => self.preview = Some((step, images)),
            TrainEvent::Scored { step, quality } => {
                // Scores may arrive out of step order; keep the curve sorted, one per step.
                self.quality.retain(|(s, _)| *s != step);
                let at = self.quality.partition_point(|(s, _)| *s < step);
                self.quality.insert(at, (step, quality));
            }
            TrainEvent::Checkpointed { step, path } => {
                self.held = None;
                self.checkpoint_step = Some(step);
                // The run, not the checkpoint's folder: the exit message, sampling (its newest
                // checkpoint) and a resume go by the run.
                let run = crate::store::layout::Checkpoint::run_dir_of(&path);
                self.run_dir = Some(run.to_path_buf());
            }
            // The pause that follows says what the run does; the screens say why.
            TrainEvent::CheckpointFailed { last, .. } => self.held = Some(last),
            TrainEvent::Paused { .. } => {
                if self.state != RunState::Stopping {
                    self.state = RunState::Paused;
                }
            }
            TrainEvent::Resumed { .. } => {
                self.held = None;
                if self.state != RunState::Stopping {
                    self.state = RunState::Running;
                }
            }
            TrainEvent::Finished { step, run_dir, why } => {
                self.held = None;
                self.state = RunState::Finished(why);
                if run_dir.is_some() {
                    self.run_dir = run_dir;
                    self.checkpoint_step = Some(step);
                }
                self.commands = None;
            }
            TrainEvent::Failed { message, .. } => {
                self.held = None;
                self.state = RunState::Failed(message);
                self.commands = None;
            }
        }
    }

    /// What the screens call the run's state: `unsaved` while a checkpoint that was not
    /// written holds it (paused, its weights in memory), else its state's label.
    pub fn label(&self) -> &'static str {
        if self.is_held() {
            "unsaved"
        } else {
            self.state.label()
        }
    }

    /// Whether a checkpoint that was not written holds the run: its worker keeps it paused,
    /// weights in memory, until one can be.
    pub fn is_held(&self) -> bool {
        self.held.is_some() && self.is_active()
    }

    /// Whether a checkpoint that was not written (`last`: the session's last) leaves the run
    /// free to train on unsaved (space): not past its last one, nor while it is stopping.
    pub fn trains_on_after(&self, last: bool) -> bool {
        !last && self.state != RunState::Stopping
    }

    /// Whether the run, held by a checkpoint that was not written, may train on unsaved.
    pub fn can_train_on(&self) -> bool {
        self.held.is_some_and(|last| self.trains_on_after(last))
    }

    /// Whether the run is training now (not paused, starting, stopped or only opened).
    pub fn is_training(&self) -> bool {
        self.state == RunState::Running
    }

    /// Steps per second over the last [`SPEED_WINDOW`] steps (the latest step's own speed
    /// until there are two), given the batch size; `None` while the run is not training (here,
    /// or elsewhere while followed), so a paused run shows no stale speed.
    pub fn steps_per_s(&self, batch_size: usize) -> Option<f64> {
        let followed = self.trained_by.is_some() && self.state == RunState::Opened;
        if !self.is_training() && !followed {
            return None;
        }
        if let (Some(a), Some(b)) = (self.recent.front(), self.recent.back()) {
            let (steps, secs) = (b.0.saturating_sub(a.0) as f64, b.1 - a.1);
            if steps > 0.0 && secs > 0.0 {
                return Some(steps / secs);
            }
        }
        let s = self.last.as_ref()?;
        (s.images_per_s > 0.0 && batch_size > 0).then(|| s.images_per_s / batch_size as f64)
    }

    /// Images per second over the last steps (see [`Self::steps_per_s`]).
    pub fn images_per_s(&self, batch_size: usize) -> Option<f64> {
        self.steps_per_s(batch_size).map(|r| r * batch_size as f64)
    }

    /// Estimated seconds to the last step, at the averaged speed; `None` while not training.
    pub fn eta_s(&self, batch_size: usize) -> Option<f64> {
        let left = self.total_steps.saturating_sub(self.step());
        self.steps_per_s(batch_size).map(|r| left as f64 / r)
    }

    /// Advances the session's training time by `dt` while the run trains.
    pub fn tick(&mut self, dt: std::time::Duration) {
        if self.is_training() {
            self.session += dt;
        }
    }

    /// Estimated seconds to the end of this session: to the last step at the averaged speed,
    /// or to the end of `budget` (seconds of training a session) where that comes first (then
    /// `true`); `None` while not training.
    pub fn eta_with_budget(&self, batch_size: usize, budget: Option<f64>) -> Option<(f64, bool)> {
        let to_the_end = self.eta_s(batch_size)?;
        match budget.map(|b| (b - self.session.as_secs_f64()).max(0.0)) {
            Some(left) if left < to_the_end => Some((left, true)),
            _ => Some((to_the_end, false)),
        }
    }

    /// `(epoch, fraction of that epoch)` of the latest step.
    pub fn epoch_progress(&self) -> Option<(usize, f64)> {
        if self.steps_per_epoch == 0 {
            return None;
        }
        // The epoch of the last step taken (batch `step − 1`, as `train` counts it), so the
        // last step of an epoch shows it whole (`epoch 1/1 100%`), not the next at 0 %.
        let step = self.step();
        let spe = self.steps_per_epoch;
        let epoch = step.saturating_sub(1) / spe;
        let within = step - epoch * spe;
        Some((epoch, within as f64 / spe as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of a 10-step run (4 steps an epoch) from `start_step`, in `run_dir`.
    fn started(run_dir: Option<&str>, start_step: usize) -> TrainEvent {
        TrainEvent::Started {
            run_dir: run_dir.map(PathBuf::from),
            start_step,
            total_steps: 10,
            steps_per_epoch: 4,
            num_params: 1000,
            notices: Vec::new(),
        }
    }

    #[test]
    fn runs_read_from_disk_are_smoothed_as_the_screens_smooth_them() {
        let losses = [0.9, 0.5, 0.4, 0.45, 0.3, 0.35, 0.2];
        let mut p = RunProgress::default();
        for (i, &l) in losses.iter().enumerate() {
            p.apply(step(i + 1, l));
        }
        let read = smoothed(losses.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l)));
        assert_eq!(read, p.smoothed);
        // Corrected for its start: the first point is the first loss, and the mean of the
        // losses so far weighs in at once (not a curve that starts at 0.9 and decays slowly).
        assert_eq!(read[0].1, 0.9);
        assert!(read[1].1 < 0.72, "{read:?}");
    }

    fn step(i: usize, loss: f64) -> TrainEvent {
        TrainEvent::Step(StepStats {
            step: i,
            epoch: 0,
            loss,
            images_per_s: 64.0,
            elapsed_s: i as f64 / 2.0,
            lr: 1e-3,
            bucket_losses: vec![Some(loss); LOSS_BUCKETS],
        })
    }

    #[test]
    fn preview_scores_stay_in_step_order() {
        let q = |r: f64| crate::eval::Quality {
            n: 64,
            frechet: None,
            recognised: r,
            class_fractions: vec![0.1; 10],
            mean_confidence: r,
        };
        let mut r = RunProgress::default();
        for (step, rec) in [(400, 0.4), (200, 0.2), (600, 0.6), (400, 0.45)] {
            r.apply(TrainEvent::Scored {
                step,
                quality: q(rec),
            });
        }
        let curve: Vec<(usize, f64)> = r.quality.iter().map(|(s, q)| (*s, q.recognised)).collect();
        assert_eq!(curve, vec![(200, 0.2), (400, 0.45), (600, 0.6)]);
    }

    #[test]
    fn the_smoothed_loss_is_the_exponentially_weighted_mean_so_far() {
        let mut r = RunProgress::default();
        let losses: Vec<f64> = std::iter::once(10.0)
            .chain(std::iter::repeat_n(0.2, 19))
            .collect();
        for (i, &l) in losses.iter().enumerate() {
            r.apply(step(i + 1, l));
        }
        let n = losses.len();
        let w = |i: usize| (1.0 - SMOOTHING).powi((n - 1 - i) as i32);
        let expected = (0..n).map(|i| w(i) * losses[i]).sum::<f64>() / (0..n).map(w).sum::<f64>();
        let last = r.smoothed.last().unwrap().1;
        assert!((last - expected).abs() < 1e-12, "{last} vs {expected}");
        // The first loss weighs 3 %, not the 38 % an average started at it would keep.
        assert!(last < 0.5, "{last}");
        // A constant loss smooths to itself from the first step.
        let mut c = RunProgress::default();
        for i in 1..=5 {
            c.apply(step(i, 0.3));
            assert!((c.smoothed.last().unwrap().1 - 0.3).abs() < 1e-12);
        }
    }

    #[test]
    fn a_resumed_run_smooths_on_from_its_checkpoint() {
        let mut r = RunProgress::default();
        for (i, l) in [1.0, 0.5, 9.0, 9.0].into_iter().enumerate() {
            r.apply(step(i + 1, l));
        }
        r.apply(started(None, 2));
        r.apply(step(3, 0.25));
        let mut fresh = RunProgress::default();
        for (i, l) in [1.0, 0.5, 0.25].into_iter().enumerate() {
            fresh.apply(step(i + 1, l));
        }
        assert_eq!(
            r.smoothed, fresh.smoothed,
            "steps 3 and 4 of before are forgotten"
        );
    }

    #[test]
    fn follows_a_run() {
        let mut r = RunProgress::default();
        r.apply(started(None, 0));
        assert_eq!(r.state, RunState::Running);
        r.apply(step(1, 1.0));
        r.apply(step(2, 0.0));
        assert_eq!(r.step(), 2);
        // (0.95 · 1 + 0) / (0.95 + 1)
        assert!((r.smoothed[1].1 - 0.95 / 1.95).abs() < 1e-12);
        // 2 steps a second (averaged over the steps so far), 8 steps left.
        assert_eq!(r.eta_s(32), Some(4.0));
        assert_eq!(r.epoch_progress(), Some((0, 0.5)));
        // The last step of an epoch completes it; the next begins the next one.
        r.steps_per_epoch = 2;
        assert_eq!(r.epoch_progress(), Some((0, 1.0)));
        r.steps_per_epoch = 4;
        assert!(r.unsaved());
        r.apply(TrainEvent::Paused { step: 2 });
        assert_eq!(r.state, RunState::Paused);
        assert_eq!(r.eta_s(32), None, "no ETA while paused");
        r.apply(TrainEvent::Finished {
            step: 2,
            run_dir: Some("runs/x".into()),
            why: FinishReason::Steps,
        });
        assert!(!r.unsaved());
        assert_eq!(r.checkpoint_step, Some(2));
    }

    #[test]
    fn the_eta_ends_at_the_budget_where_that_comes_first() {
        use std::time::Duration;
        let mut r = RunProgress::default();
        r.apply(started(None, 0));
        r.apply(step(1, 1.0));
        r.apply(step(2, 0.5));
        // 8 steps left at 2 a second: 4 s; a 10 s budget does not end first.
        r.tick(Duration::from_secs(7));
        assert_eq!(r.eta_with_budget(32, None), Some((4.0, false)));
        assert_eq!(r.eta_with_budget(32, Some(10.0)), Some((3.0, true)));
        assert_eq!(r.eta_with_budget(32, Some(60.0)), Some((4.0, false)));
        // Paused: the budget's clock stops (and there is no ETA).
        r.apply(TrainEvent::Paused { step: 2 });
        r.tick(Duration::from_secs(100));
        assert_eq!(r.eta_with_budget(32, Some(10.0)), None);
        r.apply(TrainEvent::Resumed { step: 2 });
        assert_eq!(r.session, Duration::from_secs(7));
        assert_eq!(r.eta_with_budget(32, Some(8.0)), Some((1.0, true)));
        // Spent: nothing left, not less than nothing.
        r.tick(Duration::from_secs(5));
        assert_eq!(r.eta_with_budget(32, Some(8.0)), Some((0.0, true)));
        // A new session has its budget whole again.
        r.apply(started(None, 0));
        assert_eq!(r.session, Duration::ZERO);
    }

    #[test]
    fn a_failed_run_has_nothing_left_to_save() {
        let mut r = RunProgress::default();
        r.apply(started(Some("runs/x"), 0));
        r.apply(step(1, 1.0));
        r.apply(step(2, 0.5));
        r.apply(TrainEvent::Failed {
            step: 2,
            message: "training crashed: boom".into(),
        });
        assert_eq!(r.step(), 2);
        assert_eq!(r.checkpoint_step, None);
        assert!(!r.is_active());
        assert!(!r.unsaved(), "quitting cannot lose the failed run's steps");
    }
}
