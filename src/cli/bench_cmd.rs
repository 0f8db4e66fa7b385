//! `ddpm-lab bench`: times a training step, a forward pass and a sampling run (medians after
//! warm-up) and prints them, or one JSON object with `--json`.

use anyhow::Result;
use clap::Args;

use crate::bench::{self, BenchModel, BenchOptions};
use crate::device::DeviceSpec;

/// Arguments of `ddpm-lab bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
    /// Images per training step
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Model: blog (the blog's ConvNeXt UNet), resnet (ResNet blocks), quick (the lab's CPU default, 28×28), current (today's blog UNet, seed 001), lucidrains (denoising-diffusion-pytorch's released Unet) or tiny (8×8 smoke test)
    #[arg(long, default_value = "blog")]
    pub config: BenchModel,
    /// Device: cpu, cuda[:N] or metal
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Images per forward pass
    #[arg(long, default_value_t = 64)]
    pub forward_batch: usize,
    /// Images per sampling run
    #[arg(long, default_value_t = 16)]
    pub sample_batch: usize,
    /// Denoising steps per sampling run (the schedule's T)
    #[arg(long, default_value_t = 200)]
    pub sample_steps: usize,
    /// Untimed warm-up runs of the training step and the forward pass
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed runs of the training step and the forward pass (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Timed sampling runs (0 skips sampling)
    #[arg(long, default_value_t = 1)]
    pub sample_repeats: usize,
    /// Use candle's stock ops instead of ddpm-lab's (its CPU kernels, and its convolutions on a
    /// GPU), for comparison
    #[arg(long)]
    pub stock_ops: bool,
    /// CUDA only: let float32 matrix products and convolutions use TF32 tensor cores (faster,
    /// about 1e-3 relative error; off by default, as in PyTorch's matmuls)
    #[arg(long)]
    pub tf32: bool,
    /// Time only these workloads, comma-separated: train, forward, sample (e.g. under a
    /// profiler) [default: all three]
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Workload>,
}

/// A workload `bench` can time on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// The training step (forward, backward, Adam).
    Train,
    /// The no-gradient forward pass.
    Forward,
    /// DDPM sampling over every step.
    Sample,
}

impl BenchArgs {
    /// The benchmark options these arguments describe.
    pub fn options(&self) -> BenchOptions {
        let picked = |w: Workload| self.only.is_empty() || self.only.contains(&w);
        BenchOptions {
            model: self.config,
            batch_size: self.batch_size,
            forward_batch: self.forward_batch,
            sample_batch: self.sample_batch,
            sample_steps: self.sample_steps,
            warmup: self.warmup,
            repeats: self.repeats,
            sample_repeats: if picked(Workload::Sample) {
                self.sample_repeats
            } else {
                0
            },
            device: self.device,
            seed: 0,
            tf32: self.tf32,
            train: picked(Workload::Train),
            forward: picked(Workload::Forward),
        }
    }
}

/// Runs the command. `main` should have called [`crate::ops::configure_cpu_threads`] first.
pub fn run(args: BenchArgs) -> Result<()> {
    if args.stock_ops {
        crate::ops::set_enabled(false);
    }
    let opts = args.options();
    opts.validate()?;
    // A device this binary is not built for is said before any "benchmarking … on cuda".
    opts.device.check_built()?;
    // Said on stderr with --json as well: a benchmark runs for minutes, and stdout stays the
    // one JSON object.
    {
        let mut what = Vec::new();
        if opts.train {
            what.push(format!("training batch {}", opts.batch_size));
        }
        if opts.forward {
            what.push(format!("forward batch {}", opts.forward_batch));
        }
        if opts.sample_repeats > 0 {
            what.push(format!(
                "{}-step sampling of {}",
                opts.sample_steps, opts.sample_batch
            ));
        }
        eprintln!(
            "benchmarking {} on {}: {} …",
            opts.model,
            opts.device,
            what.join(", ")
        );
    }
    let report = bench::run(&opts)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn defaults_are_the_issue_workloads() {
        let o = Cli::parse_from(["bench"]).args.options();
        assert_eq!(o, BenchOptions::default());
    }

    #[test]
    fn flags_reach_the_options() {
        let a = Cli::parse_from([
            "bench",
            "--json",
            "--config",
            "tiny",
            "--batch-size",
            "4",
            "--sample-repeats",
            "0",
            "--device",
            "cpu",
        ])
        .args;
        assert!(a.json);
        let o = a.options();
        assert_eq!(o.model, BenchModel::Tiny);
        assert_eq!(o.batch_size, 4);
        assert_eq!(o.sample_repeats, 0);
        assert!(o.train && o.forward);
        let only = Cli::parse_from(["bench", "--only", "train"]).args.options();
        assert!(only.train && !only.forward && only.sample_repeats == 0);
        let two = Cli::parse_from(["bench", "--only", "forward,sample"])
            .args
            .options();
        assert!(!two.train && two.forward && two.sample_repeats == 1);
        assert!(Cli::try_parse_from(["bench", "--only", "backward"]).is_err());
        let none = Cli::parse_from(["bench", "--only", "sample", "--sample-repeats", "0"]);
        let e = none.args.options().validate().unwrap_err().to_string();
        assert!(e.contains("nothing to time"), "{e}");
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        let e = Cli::try_parse_from(["bench", "--config", "huge"]).unwrap_err();
        assert!(e.to_string().contains("unknown bench config 'huge'"), "{e}");
        assert!(Cli::try_parse_from(["bench", "--device", "tpu"]).is_err());
        let zero = Cli::parse_from(["bench", "--repeats", "0"]).args;
        assert!(zero.options().validate().is_err());
        let tf32_on_cpu = Cli::parse_from(["bench", "--tf32"]).args.options();
        let e = tf32_on_cpu.validate().unwrap_err().to_string();
        assert!(e.contains("--tf32 is for CUDA"), "{e}");
        let tf32 = Cli::parse_from(["bench", "--tf32", "--device", "cuda"]).args;
        assert!(tf32.options().tf32 && tf32.options().validate().is_ok());
    }
}
