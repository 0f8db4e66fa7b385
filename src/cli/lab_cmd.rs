//! `ddpm-lab` with no subcommand: opens the lab (TUI). It takes the dataset, model and device
//! flags of `ddpm-lab train` to preset it; the lab itself lives in [`crate::tui`].

use clap::Args;

use super::model_args::ModelArgs;
use crate::model::UnetConfig;
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

impl LabArgs {
    /// The explicit UNet the model flags ask for (on top of `--model`'s preset), if any;
    /// refuses flags that UNet has no use for.
    pub fn custom_model(&self) -> anyhow::Result<Option<UnetConfig>> {
        if !self.model.any() {
            return Ok(None);
        }
        let preset = self.options.model.unwrap_or_default();
        self.model.apply(&preset.unet(1)).map(Some)
    }
}

/// Opens the lab.
pub fn run(args: LabArgs) -> anyhow::Result<()> {
    let custom = args.custom_model()?;
    crate::tui::lab::run(args.options, custom)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::tui::settings::ModelPreset;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        lab: LabArgs,
    }

    #[test]
    fn model_flags_refine_the_preset() {
        let cli = Cli::parse_from(["ddpm-lab", "--dataset", "shapes", "--model", "small"]);
        assert_eq!(cli.lab.options.model, Some(ModelPreset::Small));
        assert_eq!(cli.lab.custom_model().unwrap(), None);
        let cli = Cli::parse_from([
            "ddpm-lab", "--model", "blog", "--dim", "32", "--device", "cpu",
        ]);
        let custom = cli.lab.custom_model().unwrap().unwrap();
        assert_eq!(custom.dim, 32);
        assert_eq!(custom.dim_mults, ModelPreset::Blog.unet(1).dim_mults);
        assert!(Cli::try_parse_from(["ddpm-lab", "--model", "huge"]).is_err());
    }
}
