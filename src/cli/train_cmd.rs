//! `ddpm-lab train`: trains a UNet headless, with a progress bar or JSON lines.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::model_args::ModelArgs;
use crate::data::{self, DatasetSpec, LoadOptions};
use crate::device::DeviceSpec;
use crate::diffusion::{LossKind, Objective};
use crate::run::RunDir;
use crate::schedule::BetaSchedule;
use crate::train::events::{TrainCommand, TrainEvent};
use crate::train::source::ImageSetSource;
use crate::train::{spawn_training, BatchSource, TrainConfig, Trainer};

/// Arguments of `ddpm-lab train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Dataset: fashion_mnist, mnist, cifar10, shapes (built in, offline) or a local PATH
    #[arg(long, default_value = "fashion_mnist")]
    pub dataset: String,
    /// Beta schedule: linear, quadratic, cosine or sigmoid
    #[arg(long, default_value = "linear")]
    pub schedule: BetaSchedule,
    /// Diffusion steps T
    #[arg(long, default_value_t = 200)]
    pub timesteps: usize,
    /// Loss: huber, l1 or l2
    #[arg(long, default_value = "huber")]
    pub loss: LossKind,
    /// What the network predicts: noise, x0 or v
    #[arg(long, default_value = "noise")]
    pub objective: Objective,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    /// Images per batch
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Adam learning rate
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Step at which training stops (with --resume: the new stop step)
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    /// Train for this many epochs [default: 1 when neither --steps nor --epochs is given]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of initialisation, batches, timesteps and noise
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, cuda[:N] or metal
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Run directory to write [default: runs/<date>-<time>-<schedule>]
    #[arg(long, conflicts_with = "resume")]
    pub run_dir: Option<PathBuf>,
    /// Continue the run in this directory
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Resize local images to this size (IDX/parquet data keep their own size)
    #[arg(long)]
    pub image_size: Option<usize>,
    /// EMA decay of the weights (e.g. 0.995); sampling then uses the EMA weights
    #[arg(long)]
    pub ema: Option<f64>,
    /// Clip the global gradient norm
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// Linear learning-rate warm-up steps
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Write a checkpoint every N steps (0 = at the end only)
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: usize,
    /// No random horizontal flips
    #[arg(long)]
    pub no_flip: bool,
    /// One JSON object per step on stdout instead of a progress bar
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: TrainArgs) -> Result<()> {
    let (cfg, resume_dir) = match &args.resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let mut cfg = run.load_config()?;
            if args.model.any() {
                eprintln!("note: model flags are ignored with --resume (the run's config is used)");
            }
            cfg.device = args.device;
            (cfg, Some(dir.clone()))
        }
        None => (config_from_args(&args), None),
    };

    cfg.validate_hyperparameters()?;
    // Data (downloads if needed).
    let spec: DatasetSpec = cfg.dataset.parse()?;
    let opts = LoadOptions {
        image_size: args
            .image_size
            .or(resume_dir.as_ref().map(|_| cfg.image_size)),
        channels: args
            .model
            .channels
            .or(resume_dir.as_ref().map(|_| cfg.model.channels)),
        ..LoadOptions::default()
    };
    let dataset = load_with_progress(&spec, &opts, args.json)?;
    let set = Arc::new(dataset.train);
    let mut cfg = cfg;
    if resume_dir.is_none() {
        cfg.model.channels = set.channels;
        cfg.image_size = set.height;
        if set.height != set.width {
            bail!(
                "training images must be square, got {}×{}",
                set.height,
                set.width
            );
        }
    } else if set.channels != cfg.model.channels || set.height != cfg.image_size {
        bail!(
            "the data ({}×{}×{}) does not fit the run being resumed ({}×{}×{})",
            set.channels,
            set.height,
            set.width,
            cfg.model.channels,
            cfg.image_size,
            cfg.image_size
        );
    }
    let steps_per_epoch = set.len().div_ceil(cfg.batch_size);
    match (args.steps, args.epochs) {
        (Some(s), _) => cfg.steps = s,
        (None, Some(e)) => cfg.steps = e * steps_per_epoch,
        (None, None) if resume_dir.is_none() => cfg.steps = steps_per_epoch,
        (None, None) => {}
    }
    cfg.validate()?;

    let run_dir = match (&resume_dir, &args.run_dir) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => RunDir::fresh_path(&super::runs_root(), cfg.schedule.name()),
    };
    let (batch_size, seed, flip) = (cfg.batch_size, cfg.seed, cfg.flip);
    let json = args.json;
    let resume = resume_dir.is_some();
    let stop_at = cfg.steps;
    let handle = spawn_training(move || {
        let trainer = if resume {
            Trainer::resume(&run_dir, Some(stop_at), Some(cfg.device))?
        } else {
            Trainer::new(cfg, Some(&run_dir))?
        };
        let source = ImageSetSource::new(set, batch_size, seed, flip, trainer.device().clone());
        Ok((trainer, Box::new(source) as Box<dyn BatchSource>))
    });

    // Ctrl-C: checkpoint and stop instead of losing work.
    let commands = handle.commands.clone();
    let _ = ctrlc::set_handler(move || {
        let _ = commands.send(TrainCommand::Stop);
    });

    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .expect("valid template"),
    );
    let mut failure = None;
    for ev in handle.events.iter() {
        match ev {
            TrainEvent::Started {
                run_dir,
                start_step,
                total_steps,
                num_params,
                steps_per_epoch,
            } => {
                bar.set_length(total_steps as u64);
                bar.set_position(start_step as u64);
                bar.set_prefix("training");
                if !json {
                    eprintln!(
                        "{} parameters, {} steps/epoch, steps {}..{} → {}",
                        num_params,
                        steps_per_epoch,
                        start_step,
                        total_steps,
                        run_dir.map(|p| p.display().to_string()).unwrap_or_default()
                    );
                }
            }
            TrainEvent::Step(s) => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "step": s.step,
                            "epoch": s.epoch,
                            "loss": s.loss,
                            "images_per_s": s.images_per_s,
                            "elapsed_s": s.elapsed_s,
                        })
                    );
                } else {
                    bar.set_position(s.step as u64);
                    bar.set_message(format!(
                        "epoch {} loss {:.4} {:.1} img/s",
                        s.epoch, s.loss, s.images_per_s
                    ));
                }
            }
            TrainEvent::Checkpointed { step, path } => {
                if !json {
                    bar.println(format!("checkpoint at step {step} → {}", path.display()));
                }
            }
            TrainEvent::Finished { step, run_dir } => {
                bar.finish_and_clear();
                if !json {
                    eprintln!(
                        "done at step {step}; run saved in {}",
                        run_dir.map(|p| p.display().to_string()).unwrap_or_default()
                    );
                }
            }
            TrainEvent::Failed { message, .. } => {
                bar.abandon();
                failure = Some(message);
            }
            TrainEvent::Preview { .. } | TrainEvent::Paused { .. } | TrainEvent::Resumed { .. } => {
            }
        }
    }
    handle.join();
    match failure {
        Some(m) => bail!("{m}"),
        None => Ok(()),
    }
}

fn config_from_args(args: &TrainArgs) -> TrainConfig {
    let model = args.model.apply(&crate::model::UnetConfig::blog());
    TrainConfig {
        model,
        schedule: args.schedule,
        timesteps: args.timesteps,
        loss: args.loss,
        objective: args.objective,
        batch_size: args.batch_size,
        lr: args.lr,
        steps: args.steps.unwrap_or(0),
        seed: args.seed,
        device: args.device,
        dataset: args.dataset.clone(),
        image_size: 28,
        flip: !args.no_flip,
        ema_decay: args.ema,
        grad_clip: args.grad_clip,
        warmup_steps: args.warmup,
        preview_every: 0,
        preview_count: 8,
        preview_steps: 20,
        checkpoint_every: args.checkpoint_every,
    }
}

/// Loads a dataset, showing the data command's download progress on stderr unless `quiet`.
pub fn load_with_progress(
    spec: &DatasetSpec,
    opts: &LoadOptions,
    quiet: bool,
) -> Result<data::Dataset> {
    if quiet {
        return Ok(data::load_dataset(spec, opts, &mut |_| {})?);
    }
    let (bar, mut report) = super::data_cmd::console_progress();
    let ds = data::load_dataset(spec, opts, &mut report);
    bar.finish_and_clear();
    Ok(ds?)
}
