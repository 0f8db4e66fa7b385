//! `ddpm-lab` with no subcommand: opens the lab (TUI). It takes the dataset, model and device
//! flags of `ddpm-lab train` to preset it; the lab itself lives in [`crate::tui`].

use clap::Args;

use super::model_args::ModelArgs;
use crate::tui::lab::LabOptions;

/// Flags of the lab.
#[derive(Args, Debug, Clone, Default)]
pub struct LabArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub options: LabOptions,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
}

/// Opens the lab.
pub fn run(args: LabArgs) -> anyhow::Result<()> {
    let custom = args.model.any().then(|| {
        let preset = args.options.model.unwrap_or_default();
        args.model.apply(&preset.unet(1))
    });
    crate::tui::lab::run(args.options, custom)
}
