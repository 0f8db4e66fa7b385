//! `ddpm-lab sample`: generates images from a trained run, writing a PNG grid and an animated GIF
//! of the denoising.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::sampler_args::SamplerArgs;
use crate::device::DeviceSpec;
use crate::export;
use crate::runs;

/// Arguments of `ddpm-lab sample`.
#[derive(Debug, Clone, Args)]
pub struct SampleArgs {
    /// Run directory written by `ddpm-lab train` or the lab (a path, or a run's name under the
    /// runs directory), one of its checkpoint folders, or a weights file inside either
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Number of images
    #[arg(long, default_value_t = 16)]
    pub n: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sampling: SamplerArgs,
    /// Seed of the initial noise
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// PNG grid of the final images
    #[arg(long, default_value = "samples.png")]
    pub out: PathBuf,
    /// Animated GIF of the denoising
    #[arg(long)]
    pub gif: Option<PathBuf>,
    /// Print the grid in the terminal
    #[arg(long)]
    pub show: bool,
    /// Use the raw weights even when the run has EMA weights
    #[arg(long)]
    pub no_ema: bool,
    /// Device: cpu, cuda[:N] or metal
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// CUDA only: let float32 matrix products and convolutions use TF32 tensor cores (faster,
    /// about 1e-3 relative error; off by default, as in PyTorch's matmuls)
    #[arg(long)]
    pub tf32: bool,
    /// Print a JSON summary instead of a progress bar
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(mut args: SampleArgs) -> Result<()> {
    args.checkpoint = runs::find_run(&args.checkpoint);
    crate::device::use_tf32(args.device, args.tf32)?;
    if args.n == 0 {
        anyhow::bail!("--n must be at least 1");
    }
    // Before loading and sampling: a file that cannot be written would waste the run.
    export::check_png_target(&args.out)?;
    let mut outputs = vec![args.out.as_path()];
    outputs.extend(args.gif.as_deref());
    crate::files::check_json_beside(args.json, &outputs)?;
    if let Some(gif) = &args.gif {
        export::check_gif_target(gif)?;
    }
    let loaded = super::sampler_args::open_run(&args.checkpoint, args.device, args.no_ema)?;
    if let Some(why) = loaded.missing_ema(!args.no_ema) {
        super::train_cmd::note(&why);
    }
    let cfg = &loaded.config;
    let kind = args.sampling.kind(cfg.timesteps, cfg.recommended_sampler)?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "sampling {bar:40.cyan/blue} {pos}/{len} steps {elapsed} (eta {eta})",
        )
        .expect("valid template"),
    );
    let started = std::time::Instant::now();
    let result = runs::sample_batch(&loaded, kind, args.n, args.seed, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let cols = (args.n as f64).sqrt().ceil() as usize;
    export::save_grid_png(result.final_images(), cols, 4, &args.out)?;
    if let Some(gif) = &args.gif {
        export::save_denoising_gif(&result.frames, cols, gif)?;
    }
    if args.json {
        let j = serde_json::json!({
            "checkpoint": args.checkpoint.display().to_string(),
            "step": loaded.step,
            "ema": loaded.ema,
            "sampler": kind,
            "n": args.n,
            "seed": args.seed,
            "seconds": seconds,
            "out": args.out.display().to_string(),
            "gif": args.gif.as_ref().map(|g| g.display().to_string()),
        });
        println!("{j}");
    } else {
        println!(
            "{} image(s) from {} (step {}{}) with {kind} in {seconds:.1}s → {}{}",
            args.n,
            args.checkpoint.display(),
            loaded.step,
            if loaded.ema { ", EMA" } else { "" },
            args.out.display(),
            args.gif
                .as_ref()
                .map(|g| format!(", {}", g.display()))
                .unwrap_or_default()
        );
    }
    if args.show {
        if std::io::stdout().is_terminal() {
            export::show_inline(result.final_images(), cols)?;
        } else {
            // viuer would write its terminal queries and escape codes into the file or pipe.
            eprintln!("note: --show draws in a terminal and stdout is not one: grid not drawn");
        }
    }
    Ok(())
}
