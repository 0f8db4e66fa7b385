//! `ddpm-lab import`: makes a run of weights trained elsewhere (a PyTorch `state_dict` saved as
//! safetensors), so that `sample`, `eval`, the lab and `train --resume` take them.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::model_args::ModelArgs;
use super::train_cmd::{note, recipe_config};
use crate::data::DatasetSpec;
use crate::presets::{ModelPreset, Preset};
use crate::runs::import::{import, ImportRequest};
use crate::runs::{shell_word, RecipeFlags};
use crate::store::RunDir;

/// Arguments of `ddpm-lab import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The weights: a UNet's PyTorch state_dict saved with safetensors
    /// (`safetensors.torch.save_file(model.state_dict(), "unet.safetensors")`); a wrapper's
    /// prefix (`model.` of a GaussianDiffusion, `module.`, `ema_model.`, `_orig_mod.`) is taken off
    #[arg(long)]
    pub weights: PathBuf,
    /// The EMA weights beside them, if any (sampling prefers them)
    #[arg(long)]
    pub ema_weights: Option<PathBuf>,
    /// EMA decay per step for training the run on (as `train --ema`): the EMA goes on from
    /// --ema-weights, else starts from the weights [default: with --ema-weights, 0.9995, about
    /// denoising-diffusion-pytorch's 0.995 every 10 steps; without, no EMA]
    #[arg(long)]
    pub ema: Option<f64>,
    /// What they were trained on: fashion_mnist, mnist, cifar10, shapes or a PATH (eval's
    /// real images, and `train --resume`'s data) [default: fashion_mnist]
    #[arg(long, value_parser = super::dataset_arg())]
    pub dataset: Option<String>,
    /// Side of the images they make [default: the dataset's, else 28]
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Model size as in the lab: tiny, small, quick, blog, current, current-sc or lucidrains [default:
    /// the blog's model; model flags below override it]
    #[arg(long = "model")]
    pub model_size: Option<ModelPreset>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub recipe: RecipeFlags,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    /// Steps they were trained for: the run's step, and its stop step where that is past
    /// 1000 (training on past it takes a later --steps)
    #[arg(long, default_value_t = 0)]
    pub step: usize,
    /// Run directory to create [default: <runs directory>/<date>-<time>-<schedule>-import,
    /// the runs directory being $DDPM_LAB_RUNS or ./runs]
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
}

/// The EMA decay per step of imported EMA weights where `--ema` names none: about what
/// denoising-diffusion-pytorch's trainer (0.995, updated every 10 steps) averages over.
const IMPORTED_EMA_DECAY: f64 = 0.9995;

/// Runs the command: the run's directory on stdout (for scripts), what was done on stderr.
pub fn run(args: ImportArgs) -> Result<()> {
    let mut config = recipe_config(Preset::Blog, args.model_size, &args.model, &args.recipe)?;
    let dataset: DatasetSpec = args.dataset.as_deref().unwrap_or("fashion_mnist").parse()?;
    config.image_size = args
        .image_size
        .or(dataset.hub().map(|h| h.image_size))
        .unwrap_or(crate::data::shapes::SHAPES_SIZE);
    // A folder by its whole path, as `train` records it, so the run finds it from anywhere.
    config.dataset = crate::runs::start::absolute_dataset(&dataset.to_string());
    config.ema_decay = args
        .ema
        .or(args.ema_weights.is_some().then_some(IMPORTED_EMA_DECAY));
    config.checkpoint_every = 500;
    config.checkpoint_interval_s = Some(120.0);
    // A folder made now under a name no other process has taken (see `RunDir::claim_fresh`),
    // removed again if the import fails.
    let (dir, claimed) = match &args.run_dir {
        Some(dir) => (dir.clone(), false),
        None => {
            let tag = format!("{}-import", config.schedule.name());
            (
                RunDir::claim_fresh(&crate::runs::runs_root(None), &tag)?,
                true,
            )
        }
    };
    let default_ema = args.ema.is_none() && args.ema_weights.is_some();
    let done = import(ImportRequest {
        weights: args.weights,
        ema_weights: args.ema_weights,
        config,
        channels_given: args.model.channels.is_some(),
        loss_given: args.recipe.loss.is_some(),
        step: args.step,
        dir: dir.clone(),
    })
    .inspect_err(|_| {
        if claimed {
            let _ = std::fs::remove_dir(&dir);
        }
    })?;
    for n in &done.notes {
        note(&format!("note: {n}"));
    }
    if default_ema {
        note(&format!(
            "note: training the run on keeps the EMA weights up to date with decay {IMPORTED_EMA_DECAY} per step (--ema sets another)"
        ));
    }
    let cfg = &done.config;
    let d = shell_word(&done.dir.display().to_string());
    note(&format!(
        "imported {} tensors as a run (UNet {}, {} schedule, T = {}, objective {}): sample it with `ddpm-lab sample --checkpoint {d}`, train it on with `ddpm-lab train --resume {d} --steps N` (Adam starts afresh; --ema, --min-snr-gamma, --lr-cosine … give it a recipe of its own)",
        done.tensors,
        crate::presets::describe_unet(&cfg.model),
        cfg.schedule_label(),
        cfg.timesteps,
        cfg.objective,
    ));
    writeln!(std::io::stdout(), "{}", done.dir.display())?;
    Ok(())
}
