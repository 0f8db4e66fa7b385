//! The records a run writes besides its weights: one line of `metrics.jsonl` per step and the
//! progress saved with each checkpoint.

use serde::{Deserialize, Serialize};

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

/// Progress saved with a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunState {
    /// Optimisation steps done.
    pub step: usize,
    /// Epoch of the last step.
    pub epoch: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Training seconds so far.
    pub elapsed_s: f64,
    /// The weights were imported (`ddpm-lab import`): the checkpoint holds no optimizer state
    /// on purpose, and training on starts Adam afresh (and the EMA from the weights where it
    /// has none).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
    /// Checkpoints of the branch the run went back from (it was resumed from an earlier
    /// checkpoint than its newest), removed once this checkpoint is in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abandoned: Vec<String>,
    /// The BLAKE3 digest (hex) of each file the checkpoint wrote beside this state, by name:
    /// a file changed after it was written (a bit flipped on disk, a copy gone wrong, values
    /// overwritten at the same length) is refused on loading instead of sampled or trained
    /// on. Empty in checkpoints written before digests were kept (nothing to check).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub digests: std::collections::BTreeMap<String, String>,
}
