//! The run layer: one way to start, resume, find and sample a run, shared by every CLI command
//! and the lab's engine (as cargo's `ops` are shared by its commands).
//!
//! - [`start`]: a [`TrainRequest`] (new, resumed or throw-away run) is resolved into one
//!   validated [`crate::store::TrainConfig`], checked against the data it will train on, and
//!   spawned as a training worker with its batch source.
//! - [`sample`]: a run's weights loaded for sampling, and images drawn from them.
//! - [`budget`]: the memory a training run or a sampling batch needs, checked before allocating.
//! - [`list`]: the runs under a runs directory, newest first.
//! - [`quality`]: a run's preview scores.
//! - [`import`]: weights trained elsewhere (PyTorch) made a run.
//! - [`comparison`]: one run per schedule under one directory (the lab's Compare screen).
//! - [`recipe`]: the recipe flags the CLI and the lab share.
//! - [`remove`]: removing a run for good.
//! - [`root`]: where runs live (`$DDPM_LAB_RUNS`, else `./runs`).
//!
//! Below this layer sit the schema and files of a run ([`crate::store`]) and the training loop
//! ([`crate::train`]); above it, the CLI ([`crate::cli`]) and the lab ([`crate::tui`]) only turn
//! their users' words into requests and show what comes back.

pub mod budget;
pub mod comparison;
pub mod import;
pub mod list;
pub mod quality;
pub mod recipe;
pub mod remove;
pub mod root;
pub mod sample;
pub mod start;

pub use list::{
    find_all_runs, find_openable_runs, find_runs, open_openable, recent_loss, run_name, shell_word,
    steps_per_epoch, steps_per_epoch_between, RunInfo, RECENT_LOSS_STEPS,
};
pub use recipe::RecipeFlags;
pub use remove::{remove_run, Removed};
pub use root::{find_run, runs_root, RUNS_ENV};
pub use sample::{
    batch_seed, open_for_sampling, sample_batch, sample_batch_watching, sample_images,
    sample_in_batches, SampledFrames,
};
pub use start::{check_data_fits, PreparedRun, StopAt, TrainRequest};
