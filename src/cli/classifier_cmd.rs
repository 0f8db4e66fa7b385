//! `ddpm-lab train-classifier` (hidden): trains the Fashion-MNIST classifier that `eval` and the
//! lab score samples with, and writes its weights and a JSON card (accuracy, data, epochs).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::data::{DatasetSpec, LoadOptions};
use crate::eval::classifier::{self, Classifier};

/// Arguments of `ddpm-lab train-classifier`.
#[derive(Debug, Clone, Args)]
pub struct ClassifierArgs {
    /// Fashion-MNIST images (the Hub name or a folder with the IDX files)
    #[arg(long, value_parser = super::dataset_arg(), default_value = "fashion_mnist")]
    pub dataset: String,
    /// Passes over the training split (the shipped classifier's 20)
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Seed of initialisation and shuffling
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Weights to write (a JSON card is written beside it)
    #[arg(long, default_value = "assets/classifier/fashion_mnist.safetensors")]
    pub out: PathBuf,
}

/// Runs the command.
pub fn run(args: ClassifierArgs) -> Result<()> {
    anyhow::ensure!(args.epochs >= 1, "--epochs must be at least 1");
    let spec: DatasetSpec = args.dataset.parse()?;
    let ds = super::train_cmd::load_with_progress(&spec, &LoadOptions::default(), false)?;
    let test = ds.test.as_ref();
    let started = std::time::Instant::now();
    let varmap = classifier::train(&ds.train, test, args.epochs, args.seed, &mut |r| {
        eprintln!(
            "epoch {:>2}  loss {:.4}  test accuracy {}",
            r.epoch,
            r.loss,
            r.test_accuracy
                .map(|a| format!("{:.2}%", a * 100.0))
                .unwrap_or_else(|| "–".into())
        );
    })?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    varmap
        .save(&args.out)
        .and_then(|()| Ok(crate::files::use_default_mode(&args.out)?))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    // Read back what was written, so the card states the shipped file's accuracy.
    let bytes = std::fs::read(&args.out)?;
    let model = Classifier::from_safetensors(&bytes, &candle_core::Device::Cpu)?;
    let accuracy = match test {
        Some(t) => Some(classifier::accuracy(&model, t)?),
        None => None,
    };
    let card = serde_json::json!({
        "dataset": spec.to_string(),
        "source": ds.source.to_string(),
        "train_images": ds.train.len(),
        "test_images": test.map(|t| t.len()),
        "test_accuracy": accuracy,
        "epochs": args.epochs,
        "seed": args.seed,
        "parameters": varmap.all_vars().iter().map(|v| v.elem_count()).sum::<usize>(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    let card_path = args.out.with_extension("json");
    std::fs::write(&card_path, serde_json::to_string_pretty(&card)? + "\n")
        .with_context(|| format!("cannot write {}", card_path.display()))?;
    eprintln!(
        "wrote {} and {}{}",
        args.out.display(),
        card_path.display(),
        accuracy
            .map(|a| format!(" (test accuracy {:.2}%)", a * 100.0))
            .unwrap_or_default()
    );
    Ok(())
}
