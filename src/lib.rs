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

/// Turns on the failpoints named in `$FAILPOINTS` (the `fail` crate's syntax:
/// `name=actions;name=actions`, e.g. `train-step:3=panic`), so end-to-end tests can make the
/// real binary crash or fail at a chosen point. A malformed entry is an error, not a panic.
pub fn failpoints_from_env() -> anyhow::Result<()> {
    let Some(spec) = std::env::var_os("FAILPOINTS") else {
        return Ok(());
    };
    let spec = spec
        .into_string()
        .map_err(|_| anyhow::anyhow!("FAILPOINTS is not UTF-8"))?;
    failpoints_from(&spec)
}

/// Turns on the failpoints of `spec` (`name=actions;name=actions`).
pub fn failpoints_from(spec: &str) -> anyhow::Result<()> {
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, actions) = entry
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("FAILPOINTS: `{entry}` is not name=actions"))?;
        fail::cfg(name.trim(), actions.trim())
            .map_err(|e| anyhow::anyhow!("FAILPOINTS: `{entry}`: {e}"))?;
    }
    Ok(())
}

/// The text a panic was raised with (`panic!("...")` and formatted panics), or "panic".
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("panic")
}

/// Runs `f`, a panic in it returned as `Err` with the panic's message, so a worker (or the
/// lab's loop) can report it like any failure.
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| panic_message(p.as_ref()).to_string())
}

#[cfg(test)]
mod failpoint_tests {
    #[test]
    fn failpoints_are_read_and_a_bad_entry_is_an_error() {
        super::failpoints_from("lib-test-point:1=return(from the spec); ").unwrap();
        let hit = fail::eval("lib-test-point:1", |a| a.unwrap_or_default());
        assert_eq!(hit.as_deref(), Some("from the spec"));
        let no_equals = super::failpoints_from("lib-test-point:2").unwrap_err();
        assert!(
            no_equals.to_string().contains("not name=actions"),
            "{no_equals}"
        );
        let bad_action = super::failpoints_from("lib-test-point:3=explode").unwrap_err();
        assert!(
            bad_action.to_string().contains("lib-test-point:3"),
            "{bad_action}"
        );
        fail::remove("lib-test-point:1");
    }
}

pub mod bench;
pub mod cli;
pub mod clock;
pub mod data;
pub mod device;
pub mod device_check;
pub mod diffusion;
pub mod errors;
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
