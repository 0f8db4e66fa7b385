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
use crate::sampler::KeepFrames;

/// Arguments of `ddpm-lab sample`.
#[derive(Debug, Clone, Args)]
pub struct SampleArgs {
    /// Run directory written by `ddpm-lab train` or the lab (a path, or a run's name under the
    /// runs directory), one of its checkpoint folders, or a weights file inside either
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Number of images (at most 10000, a 100×100 grid)
    #[arg(long, default_value_t = 16)]
    pub n: usize,
    /// Images drawn at once [default: all of them]; the images after the first batch depend
    /// on it (each batch has its own seed, as `eval --batch-size` draws them)
    #[arg(long)]
    pub batch_size: Option<usize>,
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
    /// Print the grid in the terminal (not with --json, whose stdout is JSON alone)
    #[arg(long, conflicts_with = "json")]
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
    if args.n > runs::budget::MAX_SAMPLE_BATCH {
        anyhow::bail!(
            "--n must be at most {} (a 100×100 grid), got {} (`ddpm-lab eval --n` scores \
             larger sets)",
            runs::budget::MAX_SAMPLE_BATCH,
            args.n
        );
    }
    if args.batch_size == Some(0) {
        anyhow::bail!("--batch-size must be at least 1");
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
    // The GIF's frames, or none: every frame of a large batch would not fit in memory.
    let keep = match &args.gif {
        Some(_) => {
            let steps = runs::budget::sampling_steps(kind, cfg.timesteps);
            KeepFrames::Only(export::denoising_gif_frames(steps + 1))
        }
        None => KeepFrames::last(),
    };
    let batch = args.batch_size.unwrap_or(args.n);
    let on_cpu = loaded.model.device().is_cpu();
    runs::budget::check_sampling(cfg, kind, args.n, batch, &keep, on_cpu).map_err(|e| {
        if args.batch_size.is_none() && args.n > 1 {
            anyhow::anyhow!("{e} (--batch-size draws them a few at a time)")
        } else {
            e
        }
    })?;
    let started = std::time::Instant::now();
    // One batch counts steps; several count images, each batch's in proportion to its steps.
    let unit = if batch >= args.n { "steps" } else { "images" };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "sampling {{bar:40.cyan/blue}} {{pos}}/{{len}} {unit} {{elapsed}} (eta {{eta}})"
        ))
        .expect("valid template"),
    );
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = if batch >= args.n {
        let d = runs::sample_batch(&loaded, kind, args.n, args.seed, &keep, &mut progress);
        d.map(|d| d.frames)
    } else {
        runs::sample_in_batches(
            &loaded,
            kind,
            args.n,
            batch,
            args.seed,
            &keep,
            &mut progress,
        )
        .map(|d| d.frames)
    }?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let images = result.last().map(Vec::as_slice).unwrap_or(&[]);
    let cols = (args.n as f64).sqrt().ceil() as usize;
    export::save_grid_png(images, cols, 4, &args.out)?;
    if let Some(gif) = &args.gif {
        export::save_denoising_gif(&result, cols, gif)?;
    }
    if args.json {
        // Whole paths, as the checkpoint's: a script may read them from another folder.
        let whole = |p: &std::path::Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        let j = serde_json::json!({
            "checkpoint": args.checkpoint.display().to_string(),
            "step": loaded.step,
            "ema": loaded.ema,
            "sampler": kind,
            "n": args.n,
            "batch_size": batch,
            "seed": args.seed,
            "seconds": seconds,
            "out": whole(&args.out),
            "gif": args.gif.as_deref().map(whole),
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
            export::show_inline(images, cols)?;
        } else {
            // viuer would write its terminal queries and escape codes into the file or pipe.
            eprintln!("note: --show draws in a terminal and stdout is not one: grid not drawn");
        }
    }
    Ok(())
}
