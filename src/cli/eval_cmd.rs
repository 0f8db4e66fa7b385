//! `ddpm-lab eval`: samples n images from a run and scores them against real images with the
//! shipped classifier (Fréchet distance, share recognised, class histogram), beside the same
//! figures for n real test images.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::sampler_args::SamplerArgs;
use crate::data::{DatasetSpec, LoadOptions};
use crate::device::DeviceSpec;
use crate::eval::{self, score::fmt_fd, EvalReport, Quality, RECOGNISED_CONFIDENCE};
use crate::export;
use crate::runs;

/// Arguments of `ddpm-lab eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Run directory written by `ddpm-lab train` or the lab (a path, or a run's name under the
    /// runs directory), one of its checkpoint folders, or a weights file inside either
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Number of images to sample and score
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sampling: SamplerArgs,
    /// Seed of the initial noise
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images sampled at once; the samples after the first batch depend on it (it is kept with
    /// the result)
    #[arg(long, default_value_t = 250)]
    pub batch_size: usize,
    /// Real images to compare with [default: the run's dataset]
    #[arg(long, value_parser = super::dataset_arg())]
    pub dataset: Option<String>,
    /// Also write a PNG grid of the first 100 samples
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Use the raw weights even when the run has EMA weights
    #[arg(long)]
    pub no_ema: bool,
    /// Device: cpu, cuda[:N] or metal
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(mut args: EvalArgs) -> Result<()> {
    args.checkpoint = runs::find_run(&args.checkpoint);
    eval::check_n(args.n)?;
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    // Before sampling: a grid that cannot be written would waste the evaluation.
    if let Some(out) = &args.out {
        export::check_png_target(out)?;
    }
    let loaded = super::sampler_args::open_run(&args.checkpoint, args.device, args.no_ema)?;
    if let Some(why) = loaded.missing_ema(!args.no_ema) {
        super::train_cmd::note(&why);
    }
    let cfg = &loaded.config;
    let kind = args.sampling.kind(cfg.timesteps, cfg.recommended_sampler)?;
    // The shipped classifier knows garments: samples of a run on other built-in data would get
    // scores that mean nothing, whatever real images they are compared with.
    let own = DatasetSpec::parse_unchecked(&cfg.dataset);
    if matches!(
        own,
        DatasetSpec::Mnist | DatasetSpec::Cifar10 | DatasetSpec::Shapes
    ) {
        anyhow::bail!(
            "this run trained on {own}: eval scores Fashion-MNIST samples only (its classifier knows the ten garments), so its scores of these would mean nothing"
        );
    }
    let spec: DatasetSpec = args
        .dataset
        .as_deref()
        .unwrap_or(&cfg.dataset)
        .parse()
        .context(if args.dataset.is_some() {
            "cannot find the dataset to compare with"
        } else {
            "cannot find the run's dataset to compare with (pass --dataset)"
        })?;
    // Fails early, before sampling, when no classifier fits the data.
    eval::check_classifier(&spec)?;
    // Only the real images will do: an unreachable Hub's advice leaves the built-in set out.
    // They are read as the run read them (its size and channels: a folder of mixed sizes
    // trained with --image-size loads only so), to be compared with its samples.
    let opts = LoadOptions {
        image_size: Some(cfg.image_size),
        channels: Some(cfg.model.channels),
        ..LoadOptions::default()
    };
    let dataset = super::train_cmd::load_with_progress(&spec, &opts, args.json)
        .map_err(crate::data::DataError::for_real_images_in)?;
    let scorer = eval::scorer_for(&spec, &dataset.train)?;

    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.n as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "sampling {bar:40.cyan/blue} {pos}/{len} images {elapsed} (eta {eta})",
        )
        .expect("valid template"),
    );
    let started = std::time::Instant::now();
    let samples = runs::sample_images(
        &loaded,
        kind,
        args.n,
        args.batch_size,
        args.seed,
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let sample_seconds = started.elapsed().as_secs_f64();
    // The batches the images were drawn in (fewer images than --batch-size: one of them all).
    let batch_size = args.batch_size.min(args.n);
    let report = eval::evaluate(&scorer, &dataset, &samples)?;
    let real_split = if report.real_from_train {
        "train"
    } else {
        "test"
    };
    // Kept with the run (`ddpm-lab runs` lists it); a result that cannot be kept is still
    // printed.
    let kept = runs::quality::run_of(&args.checkpoint).and_then(|run| {
        let record = runs::quality::EvalRecord {
            step: loaded.step,
            ema: loaded.ema,
            sampler: runs::quality::SamplerRecord::Kind(kind),
            n: args.n,
            seed: args.seed,
            batch_size: Some(batch_size),
            dataset: spec.to_string(),
            real_split: Some(real_split.to_string()),
            samples: report.samples.clone(),
            real: report.real.clone(),
            frechet_ratio: report.frechet_ratio,
        };
        match runs::quality::record_eval(&run, &record) {
            Ok(()) => Some(run.join(crate::store::EVAL_FILE)),
            Err(e) => {
                super::train_cmd::note(&format!(
                    "note: the result is not kept with the run ({e:#})"
                ));
                None
            }
        }
    });
    if args.json {
        let j = serde_json::json!({
            "checkpoint": args.checkpoint.display().to_string(),
            "step": loaded.step,
            "ema": loaded.ema,
            "sampler": kind,
            "n": args.n,
            "seed": args.seed,
            "batch_size": batch_size,
            "dataset": spec.to_string(),
            "real_split": real_split,
            "sample_seconds": sample_seconds,
            "recognised_confidence": RECOGNISED_CONFIDENCE,
            "samples": report.samples,
            "real": report.real,
            "reference_n": report.reference_n,
            "frechet_ratio": report.frechet_ratio,
            "class_names": report.class_names,
            "kept_in": kept.as_ref().map(|k| k.display().to_string()),
        });
        println!("{j}");
    } else {
        print!("{}", table(&report));
        // Where the FD row is `–`, why: too few samples for a Fréchet distance.
        let min = crate::eval::MIN_FRECHET_N;
        let fd = if args.n < min {
            format!("no Fréchet distance below {min} samples (--n {min} or more gives one)")
        } else {
            format!(
                "Fréchet distances on the classifier's features against {} training images",
                report.reference_n
            )
        };
        println!(
            "{} samples from {} (step {}{}) with {kind} in {sample_seconds:.1}s; {fd}",
            args.n,
            args.checkpoint.display(),
            loaded.step,
            if loaded.ema { ", EMA" } else { "" },
        );
        if report.real_from_train {
            println!(
                "real: training images ({spec} has no test split): the classifier learnt them and they are in the reference, so this baseline is better than unseen images would be"
            );
        }
        if let Some(file) = kept {
            println!("kept in {}", file.display());
        }
    }
    // Last: the result is printed and kept whatever becomes of the grid.
    if let Some(out) = &args.out {
        let k = samples.len().min(100);
        export::save_grid_png(&samples[..k], (k as f64).sqrt().ceil() as usize, 4, out)?;
    }
    Ok(())
}

/// The report as a text table: samples beside real images, then the class histogram.
pub fn table(r: &EvalReport) -> String {
    let fd = |q: &Quality| q.frechet.map(fmt_fd).unwrap_or_else(|| "–".into());
    let mut s = String::new();
    s.push_str(&format!("{:<28} {:>10} {:>10}\n", "", "samples", "real"));
    s.push_str(&format!(
        "{:<28} {:>10} {:>10}\n",
        "images", r.samples.n, r.real.n
    ));
    s.push_str(&format!(
        "{:<28} {:>10} {:>10}{}\n",
        "Fréchet distance",
        fd(&r.samples),
        fd(&r.real),
        match (r.frechet_ratio, r.samples.frechet) {
            (Some(x), _) => format!("   ({x:.1}× real)"),
            // Too few samples to fit a 64-feature Gaussian: say so, not just "–".
            (None, None) => format!(
                "   (needs --n {} or more)",
                crate::eval::score::MIN_FRECHET_N
            ),
            (None, Some(_)) => String::new(),
        }
    ));
    s.push_str(&format!(
        "{:<28} {:>9.1}% {:>9.1}%\n",
        format!("recognised (p ≥ {RECOGNISED_CONFIDENCE})"),
        r.samples.recognised * 100.0,
        r.real.recognised * 100.0
    ));
    s.push_str(&format!(
        "{:<28} {:>10.3} {:>10.3}\n",
        "mean confidence", r.samples.mean_confidence, r.real.mean_confidence
    ));
    for (i, (a, b)) in r
        .samples
        .class_fractions
        .iter()
        .zip(&r.real.class_fractions)
        .enumerate()
    {
        let name = r
            .class_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| i.to_string());
        s.push_str(&format!(
            "  {:<26} {:>9.1}% {:>9.1}%\n",
            name,
            a * 100.0,
            b * 100.0
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(n: usize, frechet: Option<f64>) -> Quality {
        Quality {
            n,
            frechet,
            recognised: 0.5,
            class_fractions: vec![0.5, 0.5],
            mean_confidence: 0.7,
        }
    }

    /// The Fréchet row gives the ratio to real images, or why there is no distance.
    #[test]
    fn the_frechet_row_says_why_it_is_empty() {
        let report = |samples| EvalReport {
            samples,
            real: quality(1000, Some(3.0)),
            reference_n: 1000,
            frechet_ratio: None,
            class_names: vec!["a".into(), "b".into()],
            real_from_train: false,
        };
        let few = table(&report(quality(16, None)));
        let row = few.lines().find(|l| l.starts_with("Fréchet")).unwrap();
        assert!(
            row.contains("–") && row.ends_with("(needs --n 64 or more)"),
            "{row}"
        );
        let many = table(&EvalReport {
            frechet_ratio: Some(2.0),
            ..report(quality(100, Some(6.0)))
        });
        let row = many.lines().find(|l| l.starts_with("Fréchet")).unwrap();
        assert!(row.ends_with("(2.0× real)"), "{row}");
    }
}
