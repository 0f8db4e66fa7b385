//! Messages between a training worker thread and whoever drives it (the CLI or the TUI).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::imaging::Image8;

/// Metrics of one optimisation step; also one line of a run's `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Number of optimisation steps done after this one (1-based: the first step reports 1).
    pub step: usize,
    /// Epoch this step belongs to (0-based).
    pub epoch: usize,
    /// Training loss of the batch.
    pub loss: f64,
    /// Throughput of this step (images per second).
    pub images_per_s: f64,
    /// Seconds of training since the run began, summed over resumes.
    pub elapsed_s: f64,
    /// Learning rate used for this step.
    pub lr: f64,
    /// Mean loss of the batch's examples in each of [`LOSS_BUCKETS`] equal timestep ranges
    /// (`None` where the batch had no example in that range).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bucket_losses: Vec<Option<f64>>,
}

/// Number of timestep buckets in [`StepStats::bucket_losses`].
pub const LOSS_BUCKETS: usize = 10;

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
    /// Training reached its last step or was stopped; the final checkpoint is written.
    Finished {
        /// Steps done.
        step: usize,
        /// Run directory, when saved to disk.
        run_dir: Option<PathBuf>,
    },
    /// Training failed (NaN loss, I/O error, ...). The last good checkpoint is kept.
    Failed {
        /// Steps done when it failed.
        step: usize,
        /// One-line explanation.
        message: String,
    },
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
