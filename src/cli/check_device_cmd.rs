//! `ddpm-lab check-device`: the UNet's output and every parameter's gradient on a device against
//! the CPU ([`crate::device_check`]). Exits with an error when they differ beyond tolerance.

use anyhow::{bail, Result};
use clap::Args;

use super::model_args::ModelArgs;
use crate::device::DeviceSpec;
use crate::device_check::{
    self, EMA_TOLERANCE, GRADIENT_TOLERANCE, OPTIMIZER_TOLERANCE, OUTPUT_TOLERANCE,
};
use crate::model::UnetConfig;

/// Arguments of `ddpm-lab check-device`.
#[derive(Debug, Clone, Args)]
pub struct CheckDeviceArgs {
    /// Device to check against the CPU: cuda[:N], metal, or cpu (checks the GPU code path's
    /// maths on the CPU)
    #[arg(long, default_value = "cuda")]
    pub device: DeviceSpec,
    /// Images in the batch
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Image side in pixels
    #[arg(long, default_value_t = 28)]
    pub size: usize,
    /// Seed of the weights
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
}

/// Runs the command.
pub fn run(args: CheckDeviceArgs) -> Result<()> {
    let device = args.device.open()?;
    let config = args.model.apply(&UnetConfig::blog())?;
    let check = device_check::check_device(&config, &device, args.batch, args.size, args.seed)?;
    if args.json {
        println!("{}", serde_json::to_string(&check)?);
    } else {
        println!(
            "checked {} against the CPU, input {:?}: output {:.2e} (tolerance {OUTPUT_TOLERANCE:.0e}); \
             {} parameter gradients, worst {} at {:.2e} (tolerance {GRADIENT_TOLERANCE:.0e})",
            check.device,
            check.input,
            check.output_error,
            check.parameters,
            check.worst_gradient.0,
            check.worst_gradient.1,
        );
        for (name, e) in &check.gradients_over_tolerance {
            println!("  over tolerance: {name} {e:.2e}");
        }
        println!(
            "one Adam step from those gradients against the CPU's: worst {} at {:.2e} \
             (tolerance {OPTIMIZER_TOLERANCE:.0e})",
            check.worst_optimizer_step.0, check.worst_optimizer_step.1
        );
        println!(
            "one EMA update across that step against the CPU's: worst {} at {:.2e} \
             (tolerance {EMA_TOLERANCE:.0e})",
            check.worst_ema_update.0, check.worst_ema_update.1
        );
    }
    if !check.ok {
        bail!("{} does not compute what the CPU computes", check.device);
    }
    Ok(())
}
