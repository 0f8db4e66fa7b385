//! ddpm-lab: denoising diffusion probabilistic models (Ho et al. 2020, as taught by "The
//! Annotated Diffusion Model") in candle, with a terminal lab on top.
//!
//! The engine (schedules, forward process, UNet, training, sampling, checkpoints) runs headless
//! from the CLI and drives the TUI.

/// A failpoint named `"{name}:{arg}"` (see the `fail` crate): tests configure it to panic (a
/// crash) or to return an error (e.g. a full disk), which the enclosing function returns as an
/// `anyhow` error. Off unless a test turns it on.
#[macro_export]
macro_rules! fail_point {
    ($name:expr, $arg:expr) => {
        if let Some(msg) = fail::eval(&format!("{}:{}", $name, $arg), |a| a.unwrap_or_default()) {
            anyhow::bail!("{msg}");
        }
    };
}

pub mod bench;
pub mod cli;
pub mod clock;
pub mod data;
pub mod device;
pub mod diffusion;
pub mod eval;
pub mod export;
pub mod files;
pub mod imaging;
pub mod memory;
pub mod model;
pub mod ops;
pub mod presets;
pub mod rng;
pub mod runs;
pub mod sampler;
pub mod schedule;
pub mod signals;
pub mod store;
pub mod train;
pub mod tui;
