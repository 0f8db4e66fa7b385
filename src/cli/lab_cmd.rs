//! `ddpm-lab` with no subcommand: the lab (TUI). Being wired in from the `tui` branch.

use clap::Args;

/// Flags of the lab.
#[derive(Args, Debug, Clone, Default)]
pub struct LabArgs {}

/// Opens the lab.
pub fn run(_args: LabArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "the lab is not wired into this build yet; use the headless commands (ddpm-lab --help)"
    )
}
