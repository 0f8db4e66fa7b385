//! Messages between a training worker thread and whoever drives it (the CLI or the TUI).

use std::path::PathBuf;

use crate::imaging::Image8;

pub use crate::store::{StepStats, LOSS_BUCKETS};

/// What a training worker reports.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// The worker built the model and is about to run `start_step + 1 ..= total_steps`.
    Started {
        /// Run directory, when the run is saved to disk.
        run_dir: Option<PathBuf>,
        /// Steps already done (non-zero when resuming).
        start_step: usize,
        /// Step at which training stops.
        total_steps: usize,
        /// Optimisation steps per epoch.
        steps_per_epoch: usize,
        /// Trainable parameters of the model.
        num_params: usize,
        /// What opening the run cleaned up or reset (see `Trainer::notices`).
        notices: Vec<String>,
    },
    /// One optimisation step finished.
    Step(StepStats),
    /// Images sampled from the current weights (every `preview_every` steps).
    Preview {
        /// Step at which they were drawn.
        step: usize,
        /// The images.
        images: Vec<Image8>,
    },
    /// The quality of the previews drawn at `step` (scored by the lab, not the trainer).
    Scored {
        /// Step of the previews.
        step: usize,
        /// Their quality.
        quality: crate::eval::Quality,
    },
    /// A checkpoint was written.
    Checkpointed {
        /// Step saved.
        step: usize,
        /// Run directory holding it.
        path: PathBuf,
    },
    /// Training is paused (after a [`TrainCommand::Pause`]).
    Paused {
        /// Steps done.
        step: usize,
    },
    /// Training resumed after a pause.
    Resumed {
        /// Steps done.
        step: usize,
    },
    /// Training reached its last step, its time limit, or was stopped; the final checkpoint is
    /// written.
    Finished {
        /// Steps done.
        step: usize,
        /// Run directory, when saved to disk.
        run_dir: Option<PathBuf>,
        /// Why it ended.
        why: FinishReason,
    },
    /// A checkpoint could not be written (a full disk, say) and the trainer holds its weights
    /// in memory, paused, until one can be ([`Trainer::hold_on_failed_checkpoints`]): a
    /// [`TrainCommand::Checkpoint`] or [`TrainCommand::Stop`] tries again, a
    /// [`TrainCommand::Resume`] trains on without one (not past the session's last). The last
    /// good checkpoint is kept.
    ///
    /// [`Trainer::hold_on_failed_checkpoints`]: super::Trainer::hold_on_failed_checkpoints
    CheckpointFailed {
        /// Steps done.
        step: usize,
        /// One-line explanation, the operating system's cause first.
        message: String,
        /// It was the session's last (at the stop step, the time limit, or stopping): the
        /// run can only be saved, not train on.
        last: bool,
    },
    /// Training failed (NaN loss, I/O error, ...). The last good checkpoint is kept.
    Failed {
        /// Steps done when it failed.
        step: usize,
        /// One-line explanation.
        message: String,
    },
}

/// Why a training session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// It reached its stop step.
    Steps,
    /// Its time limit (`time_limit_s`, the lab's budget) ran out first.
    TimeLimit,
    /// A [`TrainCommand::Stop`] (or its driver going away) ended it.
    Stopped,
}

/// What a driver can ask a training worker to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainCommand {
    /// Pause after the current step.
    Pause,
    /// Resume a paused run.
    Resume,
    /// Write a checkpoint after the current step.
    Checkpoint,
    /// Checkpoint and stop.
    Stop,
}
