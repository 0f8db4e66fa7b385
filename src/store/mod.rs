//! What a run leaves on disk and how it is read back: the configuration, the per-step records,
//! the run directory and its checkpoints. Everything above (training, the run layer, the CLI
//! and the lab) builds on these types; nothing here knows how training works.

pub mod branch;
pub mod checkpoint;
pub mod config;
pub mod dir;
pub mod layout;
pub mod lock;
pub mod previews;
pub mod records;

pub use checkpoint::{load_checkpoint, LoadedModel};
pub use config::{ResumeChanges, TrainConfig};
pub use dir::{
    check_finite, is_hidden, list_runs, load_tensors, read_metrics_file, save_tensors_atomic,
    write_atomic, RunDir, CONFIG_FILE, EMA_FILE, EVAL_FILE, METRICS_FILE, OPTIMIZER_FILE,
    QUALITY_FILE, STATE_FILE, WEIGHTS_FILE,
};
pub use layout::{Checkpoint, CHECKPOINTS_DIR, KEEP_CHECKPOINTS, LATEST_FILE};
pub use lock::RunLock;
pub use records::{RunState, StepStats, LOSS_BUCKETS};
