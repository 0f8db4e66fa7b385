//! `ddpm-lab train`: trains a UNet headless, with a progress bar or JSON lines.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::model_args::ModelArgs;
use super::{error_event, print_json_error};
use crate::data::{self, DatasetSpec, LoadOptions};
use crate::device::DeviceSpec;
use crate::presets::ModelPreset;
use crate::presets::Preset;
use crate::runs::{runs_root, RecipeFlags, StopAt, TrainRequest};
use crate::signals;
use crate::store::{ResumeChanges, RunDir, TrainConfig};
use crate::train::events::{FinishReason, TrainCommand, TrainEvent};

/// Arguments of `ddpm-lab train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Dataset: fashion_mnist, mnist, cifar10, shapes (built in, offline) or a local PATH
    /// [default: fashion_mnist]; with --resume, other data to train the run on (its folder
    /// moved, say), checked to fit the run
    #[arg(long, value_parser = super::dataset_arg())]
    pub dataset: Option<String>,
    /// Recipe to start from: quick (the lab's CPU default: best samples in 10 minutes on a
    /// 2-core CPU) or blog (the blog's setup, the default); other flags override it
    #[arg(long)]
    pub preset: Option<Preset>,
    /// Model size as in the lab: tiny, small, quick, blog, current, current-sc or lucidrains (model flags
    /// below override it)
    #[arg(long = "model")]
    pub model_size: Option<ModelPreset>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub recipe: RecipeFlags,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    /// Step at which training stops (with --resume: the new stop step)
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    /// Train for this many epochs [default, when neither --steps nor --epochs is given: the
    /// blog's 5 for --preset blog (the default), the quick preset's own stop step]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of initialisation, batches, timesteps and noise [default: 0]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device: cpu, cuda[:N] or metal
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// CUDA only: let float32 matrix products and convolutions use TF32 tensor cores (faster,
    /// about 1e-3 relative error; off by default, as in PyTorch's matmuls)
    #[arg(long)]
    pub tf32: bool,
    /// Run directory to write [default: <runs directory>/<date>-<time>-<schedule>, the runs
    /// directory being $DDPM_LAB_RUNS or ./runs]
    #[arg(long, conflicts_with = "resume")]
    pub run_dir: Option<PathBuf>,
    /// Name of the new run: its folder under the runs directory ($DDPM_LAB_RUNS or ./runs),
    /// instead of the date, time and schedule (as with --run-dir, a folder that holds a run
    /// is refused)
    #[arg(long, conflicts_with_all = ["resume", "run_dir"])]
    pub name: Option<String>,
    /// Continue the run in this directory (a path, or a run's name under the runs directory,
    /// $DDPM_LAB_RUNS or ./runs), or from one of its checkpoints (DIR/checkpoints/step-N)
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// With --resume: train a copy of the run (of the checkpoint named) in a new folder DIR
    /// [default: beside the run, NAME-from-STEP], leaving the run and its later checkpoints
    /// as they are
    #[arg(long, requires = "resume", num_args = 0..=1, value_name = "DIR")]
    pub branch: Option<Option<PathBuf>>,
    /// With --resume: start Adam and the EMA afresh when their saved state is missing or
    /// unreadable (otherwise resuming refuses)
    #[arg(long, requires = "resume")]
    pub reset_optimizer: bool,
    /// Resize (and centre-crop) every training image to this square side [default: the data's
    /// own size]
    #[arg(long)]
    pub image_size: Option<usize>,
    /// EMA decay of the weights (e.g. 0.995), updated every step (denoising-diffusion-pytorch's
    /// trainer updates every 10: its 0.995 averages over ten times as many steps); sampling
    /// then uses the EMA weights. With --resume, this and the flags down to --min-snr-gamma,
    /// --lr and --checkpoint-every are the run's from then on (a run without an EMA gets one,
    /// started from its weights)
    #[arg(long)]
    pub ema: Option<f64>,
    /// Clip the global gradient norm
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// Linear learning-rate warm-up over the run's first N steps [default: the preset's, 0]
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Cosine decay of the learning rate to 10% at the stop step
    #[arg(long)]
    pub lr_cosine: bool,
    /// Warm the EMA up (decay min(d, (1+k)/(10+k)) at step k)
    #[arg(long)]
    pub ema_warmup: bool,
    /// Min-SNR-γ loss weighting (e.g. 5)
    #[arg(long)]
    pub min_snr_gamma: Option<f64>,
    /// Stop after this much time training in this session (e.g. 10m, 90s, 1h; checkpoints
    /// and previews count), with a checkpoint
    #[arg(long, value_parser = parse_duration)]
    pub time_limit: Option<f64>,
    /// Write a checkpoint every N steps (0 = none by steps; the end and --checkpoint-interval
    /// still write theirs) [default: 500]
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Also write a checkpoint after this much training time since the last one (e.g. 2m,
    /// 90s; off = by steps only), so a crash loses at most that much work; with --resume, for
    /// this session
    #[arg(long, value_parser = parse_interval, default_value = "2m")]
    pub checkpoint_interval: f64,
    /// No random horizontal flips
    #[arg(long)]
    pub no_flip: bool,
    /// How long a run whose checkpoint cannot be written (a full disk) waits, paused with its
    /// weights in memory and trying again, before it gives up keeping the last complete
    /// checkpoint (e.g. 5m for a CI job; 0 or off: at once)
    #[arg(long, value_parser = parse_interval, default_value = "60m")]
    pub disk_wait: f64,
    /// JSON lines on stdout instead of a progress bar: one object per event ("event": start,
    /// step, checkpoint, checkpoint_failed, end or error)
    #[arg(long)]
    pub json: bool,
}

/// The flags given that a resumed run does not use (its saved config decides them): the
/// recipe, the model, the seed and the flips (the training settings of [`resume_changes`] it
/// takes).
pub fn ignored_with_resume(args: &TrainArgs) -> Vec<&'static str> {
    let r = &args.recipe;
    [
        ("--preset", args.preset.is_some()),
        ("--model", args.model_size.is_some()),
        ("model flags (--dim …)", args.model.any()),
        ("--schedule", r.schedule.is_some()),
        ("--timesteps", r.timesteps.is_some()),
        ("--loss", r.loss.is_some()),
        ("--objective", r.objective.is_some()),
        ("--batch-size", r.batch_size.is_some()),
        ("--seed", args.seed.is_some()),
        ("--image-size", args.image_size.is_some()),
        ("--no-flip", args.no_flip),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect()
}

/// The run layer's request for these arguments.
pub fn request(args: &TrainArgs) -> anyhow::Result<TrainRequest> {
    let stop = match (args.steps, args.epochs) {
        (Some(s), _) => StopAt::Step(s),
        (None, Some(e)) => StopAt::Epochs(e),
        // A resumed run stops where it was configured to; a new one where its recipe does.
        (None, None) => match args.preset.unwrap_or(Preset::Blog).epochs() {
            Some(e) if args.resume.is_none() => StopAt::Epochs(e),
            _ => StopAt::Configured,
        },
    };
    Ok(match &args.resume {
        Some(dir) => TrainRequest::Resume {
            dir: dir.clone(),
            stop,
            device: Some(args.device),
            // A time limit is for this invocation, not the run's future.
            time_limit_s: args.time_limit,
            checkpoint_interval_s: interval(args),
            reset_optimizer: args.reset_optimizer,
            dataset: args.dataset.clone(),
            changes: resume_changes(args),
            branch: match &args.branch {
                None => None,
                Some(Some(to)) => Some(to.clone()),
                Some(None) => Some(branch_beside(dir)?),
            },
        },
        None => {
            let config = config_from_args(args)?;
            let dir = match named_dir(args)? {
                Some(d) => d,
                // Only a name: `prepare` makes the folder under a name nobody has taken.
                None => RunDir::fresh_path(&runs_root(None), config.schedule.name()),
            };
            TrainRequest::New { config, dir, stop }
        }
    })
}

/// `train --json`'s `error` event of a run that failed at `step`: where it had started (in
/// `dir`), also where it stands, for a script: the steps done, its folder, and the step a
/// resume goes on from (null before the first checkpoint).
fn run_error_event(message: &str, step: usize, dir: Option<&String>) -> serde_json::Value {
    let mut event = error_event(message);
    if let Some(dir) = dir {
        event["step"] = step.into();
        event["run_dir"] = dir.as_str().into();
        event["checkpoint_step"] = last_checkpoint_step(dir).into();
    }
    event
}

/// The step of the newest complete checkpoint of the run in `dir` (`None` before the first).
fn last_checkpoint_step(dir: &str) -> Option<usize> {
    RunDir::at(std::path::Path::new(dir))
        .latest_checkpoint()
        .ok()
        .flatten()
        .map(|c| c.state.step)
}

/// The folder the user named for a new run: `--run-dir`, or `--name` under the runs directory
/// (`None`: the lab's kind of name is made).
fn named_dir(args: &TrainArgs) -> Result<Option<PathBuf>> {
    if let Some(name) = &args.name {
        let plain = std::path::Path::new(name).components().count() == 1
            && !matches!(name.as_str(), "" | "." | "..")
            && !name.contains(std::path::MAIN_SEPARATOR);
        if !plain {
            bail!("--name takes a plain folder name, got {name:?} (--run-dir takes a path)");
        }
        return Ok(Some(runs_root(None).join(name)));
    }
    Ok(args.run_dir.clone())
}

/// Where `--branch` without a folder puts the branch of the run (or checkpoint) `dir`.
fn branch_beside(dir: &std::path::Path) -> Result<PathBuf> {
    let run_dir = crate::store::Checkpoint::run_dir_of(dir);
    let step = RunDir::open(run_dir)?.checkpoint_to_resume(dir)?.state.step;
    Ok(crate::store::branch::default_branch_path(run_dir, step))
}

/// The training settings given with `--resume`, the run's own from then on.
fn resume_changes(args: &TrainArgs) -> ResumeChanges {
    ResumeChanges {
        lr: args.recipe.lr,
        ema_decay: args.ema,
        grad_clip: args.grad_clip,
        warmup_steps: args.warmup,
        lr_cosine_decay: args.lr_cosine,
        ema_warmup: args.ema_warmup,
        min_snr_gamma: args.min_snr_gamma,
        checkpoint_every: args.checkpoint_every,
    }
}

/// A line on stderr; a closed or hung-up terminal is not worth a panic (as `eprintln!` would),
/// least of all while a checkpoint is being written.
pub(super) fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The last line of a `train` that ends without its checkpoint (a second signal, or a stop
/// whose checkpoint a full disk refuses): `why`, then what of the run in `dir` can go on.
fn quitting_at_once(dir: &str, why: &str) -> String {
    // Before its first checkpoint there is nothing to continue from.
    let saved = last_checkpoint_step(dir).is_some();
    let hint = resume_hint(dir);
    let dir = crate::runs::shell_word(dir);
    if saved {
        format!("{why}: the last complete checkpoint in {dir} stays; {hint}")
    } else {
        format!(
            "{why}, before the run's first checkpoint: nothing of {dir} can be continued; start \
             it again"
        )
    }
}

/// How to go on with the run in `dir` (its path quoted for a shell where it needs it).
fn resume_hint(dir: &str) -> String {
    format!(
        "continue with `ddpm-lab train --resume {}`",
        crate::runs::shell_word(dir)
    )
}

/// Steps between the progress lines printed where stderr is not a terminal.
const PLAIN_EVERY: usize = 100;

/// Everything before training: the device, the request, the data, and the run checked
/// against it (a new run's folder made).
fn prepare(args: &TrainArgs) -> Result<crate::runs::start::PreparedRun> {
    // Tests hold the set-up here (`sleep(ms)`) to signal a `train` that has not started.
    crate::fail_point!("train-prepare", 0);
    crate::device::use_tf32(args.device, args.tf32)?;
    // A device that cannot open says so before the data is loaded (or downloaded).
    args.device.open()?;
    if let Some(dir) = args.resume.as_deref().filter(|_| args.branch.is_none()) {
        // Said before the data is loaded (the trainer takes the lock; a branch only reads the
        // run, which may go on training meanwhile).
        crate::store::RunLock::check_free(crate::store::Checkpoint::run_dir_of(dir))?;
    }
    // A folder named for a new run that holds one is refused before the data is loaded (or
    // downloaded); the trainer checks again as it takes the folder.
    if let Some(dir) = named_dir(args)?.filter(|d| d.is_dir()) {
        RunDir::check_new_run_path(&dir)?;
        RunDir::at(&dir).check_holds_no_run()?;
    }
    let mut req = request(args)?;
    let cfg = req.base_config()?;
    // Said once the run is known to be one: a run that is not there is the error alone.
    if args.resume.is_some() {
        let ignored = ignored_with_resume(args);
        if !ignored.is_empty() {
            note(&format!(
                "note: {} {} ignored with --resume (the run's config is used; start a new run to change {})",
                ignored.join(", "),
                if ignored.len() == 1 { "is" } else { "are" },
                if ignored.len() == 1 { "it" } else { "them" },
            ));
        }
    }
    // Data (downloads if needed).
    let spec: DatasetSpec = cfg.dataset.parse().map_err(|e| {
        if args.resume.is_some() && args.dataset.is_none() {
            // The run names a folder that moved: what to do about it, not the list of names.
            // (Runs saved before folders were recorded whole may name one relative to the
            // folder they were trained from.)
            if std::path::Path::new(&cfg.dataset).is_relative() {
                anyhow::anyhow!(
                    "the run names its data by the relative path {}, which is not under this folder ({}): resume it from the folder it was trained from, or --dataset PATH trains it on that data where it is",
                    cfg.dataset,
                    std::env::current_dir().map_or("?".into(), |d| d.display().to_string())
                )
            } else {
                anyhow::anyhow!(
                    "the run was trained on {}, which is not there any more: --dataset PATH trains it on that data where it is now",
                    cfg.dataset
                )
            }
        } else {
            anyhow::Error::from(e)
        }
    })?;
    let opts = req.load_options(LoadOptions {
        image_size: args.image_size,
        channels: args.model.channels,
        ..LoadOptions::default()
    })?;
    // A resumed run takes its own data only: an unreachable Hub's advice leaves the built-in
    // set out (resume would refuse it).
    let dataset = load_with_progress(&spec, &opts, args.json).map_err(|e| match args.resume {
        Some(_) => crate::data::DataError::for_real_images_in(e),
        None => e,
    })?;
    // The new run's folder, made now under a name no other process has taken: runs started
    // in the same second (a seed sweep) each get their own. Left empty by a run that does not
    // start, it is removed again.
    let claimed = match (&mut req, named_dir(args)?) {
        (TrainRequest::New { dir, config, .. }, None) => {
            *dir = RunDir::claim_fresh(&runs_root(None), config.schedule.name())?;
            Some(dir.clone())
        }
        _ => None,
    };
    req.prepare(Arc::new(dataset.train)).inspect_err(|_| {
        if let Some(dir) = &claimed {
            let _ = std::fs::remove_dir(dir);
        }
    })
}

/// Writes `train --json`'s last line when a signal ends it at once (a second one, or one before
/// training started): an `end` event, as every run's stream ends, with the step a resume goes
/// on from (the last complete checkpoint's in `dir`; null before the first) and the run's
/// directory (null before training started). Waits at most a second for stdout: a reader
/// that stopped reading must not keep the process from ending.
fn end_at_once(dir: Option<&str>) {
    use std::io::Write as _;
    let line = serde_json::json!({
        "event": "end",
        "step": dir.and_then(last_checkpoint_step),
        "run_dir": dir,
        "reason": "signal",
    })
    .to_string();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writer = std::thread::Builder::new().spawn(move || {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}").and_then(|_| stdout.flush());
        let _ = done_tx.send(());
    });
    if writer.is_ok() {
        let _ = done_rx.recv_timeout(std::time::Duration::from_secs(1));
    }
}

/// Runs the command.
pub fn run(mut args: TrainArgs) -> Result<()> {
    args.resume = args.resume.map(|p| crate::runs::find_run(&p));
    // SIGINT, SIGTERM and SIGHUP, from the start: before the trainer exists there is nothing to
    // save and the command ends at once; after, the first one checkpoints and stops, a second
    // one ends the command at once (the last complete checkpoint stays).
    let trainer: Arc<OnceLock<Sender<TrainCommand>>> = Arc::new(OnceLock::new());
    let slot = Arc::clone(&trainer);
    // The run's directory once training has started, for the last line of a second signal.
    let started_in: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let dir_of_run = Arc::clone(&started_in);
    let json = args.json;
    let _ = signals::install(move |n| match slot.get() {
        Some(commands) if n == 1 => {
            // Short enough for 80 columns after the terminal's `^C`: a wrapped line would be
            // drawn over by the progress bar.
            note("stopping: saving a checkpoint (again: quit at once, keeping the last one)");
            let _ = commands.send(TrainCommand::Stop);
        }
        _ => {
            match dir_of_run.get() {
                Some(dir) => note(&quitting_at_once(dir, "quitting at once")),
                None => note("stopped before training started: nothing was trained or saved"),
            }
            if json {
                end_at_once(dir_of_run.get().map(String::as_str));
            }
            signals::end_as_signalled()
        }
    });
    // A checkpoint the disk has no room for pauses the run, weights in memory, and this
    // driver tries again for a while (see `DiskWait`) before giving up.
    let prepared = match prepare(&args) {
        Ok(p) => p.holding_on_failed_checkpoints(),
        Err(e) => {
            // A script reading `--json` learns of every failure on stdout, not only of those
            // after training started.
            if args.json {
                print_json_error(&crate::errors::one_line(&e));
            }
            return Err(e);
        }
    };
    let handle = prepared.spawn();
    let _ = trainer.set(handle.commands.clone());
    if signals::received() > 0 {
        // A signal came while the trainer was being set up: stop it as soon as it starts.
        let _ = handle.commands.send(TrainCommand::Stop);
    }
    // JSON lines go to stdout; a reader that goes away (`| head`) stops training with a
    // checkpoint, as a signal does.
    let mut out = JsonLines::new(json, &handle.commands);

    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    // When the time limit comes before the last step, the time left is the limit's.
    let deadline: Arc<std::sync::Mutex<Option<std::time::Instant>>> = Arc::default();
    let bar_deadline = Arc::clone(&deadline);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {left}] {msg}",
        )
        .expect("valid template")
        .with_key(
            "left",
            move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let left = time_to(&bar_deadline).map_or(state.eta(), |l| l.min(state.eta()));
                let secs = left.as_secs();
                let _ = write!(
                    w,
                    "{:02}:{:02}:{:02}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                );
            },
        ),
    );
    let mut failure = None;
    // Where stderr is a file or a pipe (`nohup … 2> log`), the bar does not draw: a line every
    // hundred steps (as the blog prints its loss) and one per checkpoint say how it goes.
    let plain = !json && !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut total = 0;
    // This session's pace, for the plain lines' time left: (its first step, when it started).
    let mut session = (0, std::time::Instant::now());
    let mut steps_per_epoch = 0;
    let mut disk = DiskWait::new(std::time::Duration::from_secs_f64(args.disk_wait));
    loop {
        let ev = match handle
            .events
            .recv_timeout(std::time::Duration::from_millis(200))
        {
            Ok(ev) => ev,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                match disk.tick() {
                    DiskTick::Wait => {}
                    DiskTick::Retry => {
                        let _ = handle.commands.send(TrainCommand::Checkpoint);
                    }
                    // The trainer waits, paused, for a command that will not come: the
                    // process ends with the error, the last complete checkpoint kept.
                    DiskTick::GiveUp(message) => {
                        bar.abandon();
                        out.emit(run_error_event(&message, disk.step, started_in.get()));
                        bail!("{message}");
                    }
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match ev {
            TrainEvent::Started {
                run_dir,
                start_step,
                total_steps,
                num_params,
                steps_per_epoch: spe,
                notices,
            } => {
                for n in &notices {
                    bar.suspend(|| note(&format!("note: {n}")));
                }
                let dir = run_dir.map(|p| p.display().to_string()).unwrap_or_default();
                let _ = started_in.set(dir.clone());
                // On stderr in JSON mode too: a script reads the run's directory there (stdout
                // carries only step objects). Before the bar is drawn, so no stale bar line is
                // left above it.
                note(&format!(
                    "{} parameters, {} steps/epoch, steps {}..{} → {}",
                    num_params, spe, start_step, total_steps, dir
                ));
                out.emit(serde_json::json!({
                    "event": "start",
                    "run_dir": dir,
                    "start_step": start_step,
                    "total_steps": total_steps,
                    "steps_per_epoch": spe,
                    "parameters": num_params,
                }));
                total = total_steps;
                session = (start_step, std::time::Instant::now());
                if let (Some(limit), Ok(mut d)) = (args.time_limit, deadline.lock()) {
                    *d = Some(session.1 + std::time::Duration::from_secs_f64(limit));
                }
                steps_per_epoch = spe;
                bar.set_length(total_steps as u64);
                bar.set_position(start_step as u64);
                // The steps before this session are not this session's pace: a resumed run's
                // ETA counted the jump to its first step as done in no time.
                bar.reset_eta();
                bar.set_prefix("training");
            }
            TrainEvent::Step(s) => {
                if json {
                    out.emit(serde_json::json!({
                        "event": "step",
                        "step": s.step,
                        "epoch": s.epoch,
                        "loss": s.loss,
                        "images_per_s": s.images_per_s,
                        "elapsed_s": s.elapsed_s,
                        "lr": s.lr,
                    }));
                } else if plain {
                    if s.step % PLAIN_EVERY == 0 || s.step == total {
                        let to_limit = time_to(&deadline).map(|d| d.as_secs_f64());
                        note(&plain_line(&s, total, steps_per_epoch, session, to_limit));
                    }
                } else {
                    bar.set_position(s.step as u64);
                    bar.set_message(format!(
                        "epoch {}{} loss {:.4} {:.1} img/s",
                        s.epoch + 1,
                        crate::data::epochs_suffix(total, steps_per_epoch),
                        s.loss,
                        s.images_per_s
                    ));
                }
            }
            TrainEvent::Checkpointed { step, path } => {
                if let Some(waited) = disk.saved() {
                    // Saved at last: the run goes on from where the full disk paused it. The
                    // pause is not training time: the time elapsed and left leave it out.
                    let _ = handle.commands.send(TrainCommand::Resume);
                    session.1 += waited;
                    if let Ok(mut d) = deadline.lock() {
                        *d = d.map(|d| d + waited);
                    }
                    bar.reset_eta();
                }
                out.emit(serde_json::json!({
                    "event": "checkpoint",
                    "step": step,
                    "path": path.display().to_string(),
                }));
                let line = format!("checkpoint at step {step} → {}", path.display());
                if plain {
                    note(&line);
                } else if !json {
                    bar.println(line);
                }
            }
            TrainEvent::Finished { step, run_dir, why } => {
                bar.finish_and_clear();
                let dir = run_dir.map(|p| p.display().to_string()).unwrap_or_default();
                let reason = if out.closed {
                    "stdout_closed"
                } else if signals::received() > 0 {
                    "signal"
                } else {
                    match why {
                        FinishReason::Steps => "steps",
                        FinishReason::TimeLimit => "time_limit",
                        FinishReason::Stopped => "stopped",
                    }
                };
                out.emit(serde_json::json!({
                    "event": "end",
                    "step": step,
                    "run_dir": dir,
                    "reason": reason,
                }));
                if signals::received() > 0 || out.closed {
                    let why = if out.closed {
                        "stdout was closed"
                    } else {
                        "stopped by a signal"
                    };
                    note(&format!(
                        "{why}: checkpoint at step {step} saved in {dir}; {}",
                        resume_hint(&dir)
                    ));
                } else if matches!(why, FinishReason::TimeLimit) && step < total {
                    // Stopped short of its steps: it can go on, as after a signal.
                    note(&format!(
                        "time limit reached at step {step} of {total}: run saved in {dir}; {}",
                        resume_hint(&dir)
                    ));
                } else {
                    note(&format!("done at step {step}; run saved in {dir}"));
                }
            }
            TrainEvent::Failed { step, message } => {
                bar.abandon();
                out.emit(run_error_event(&message, step, started_in.get()));
                failure = Some(message);
            }
            TrainEvent::CheckpointFailed { step, message, .. } => {
                out.emit(serde_json::json!({
                    "event": "checkpoint_failed",
                    "step": step,
                    "message": message,
                }));
                // Asked to stop (a signal, or the JSON reader gone), and the checkpoint that
                // stops it cannot be written either: waiting for room would keep the one who
                // asked waiting; the last complete checkpoint stays.
                if signals::received() > 0 || out.closed {
                    bar.abandon();
                    let dir = started_in.get().cloned().unwrap_or_default();
                    // The stream ends as every run's does: with the step a resume goes on
                    // from (the last complete checkpoint's; null before the first).
                    out.emit(serde_json::json!({
                        "event": "end",
                        "step": last_checkpoint_step(&dir),
                        "run_dir": dir,
                        "reason": "signal",
                    }));
                    note(&quitting_at_once(
                        &dir,
                        &format!("stopping, and the checkpoint at step {step} cannot be written ({message})"),
                    ));
                    if signals::received() > 0 {
                        signals::end_as_signalled();
                    }
                    signals::end_as_broken_pipe();
                }
                if let Some(line) = disk.failed(step, &message) {
                    bar.suspend(|| note(&line));
                }
            }
            TrainEvent::Preview { .. }
            | TrainEvent::Scored { .. }
            | TrainEvent::Paused { .. }
            | TrainEvent::Resumed { .. } => {}
        }
    }
    let stdout_closed = out.closed;
    handle.join();
    match failure {
        Some(m) => bail!("{m}"),
        // Stopped short of its steps because its reader went away: it ends as a write to a
        // closed pipe ends a program (141 in a shell), so `set -o pipefail` sees it.
        None if stdout_closed && signals::received() == 0 => signals::end_as_broken_pipe(),
        None => Ok(()),
    }
}

/// `train --json`'s stdout: one JSON object per line, nothing where JSON was not asked for.
/// When its reader goes away, the first failed write asks the trainer to stop (with its
/// checkpoint) and later objects are dropped.
struct JsonLines<'a> {
    /// Where the lines go, when JSON was asked for. Locked a line at a time, not for the
    /// run: a second signal's thread writes the stream's last line too ([`end_at_once`]).
    stdout: Option<std::io::Stdout>,
    /// The trainer, told to stop when stdout closes.
    commands: &'a std::sync::mpsc::Sender<TrainCommand>,
    /// Whether a write failed (the reader is gone).
    closed: bool,
}

impl<'a> JsonLines<'a> {
    fn new(json: bool, commands: &'a std::sync::mpsc::Sender<TrainCommand>) -> Self {
        JsonLines {
            stdout: json.then(std::io::stdout),
            commands,
            closed: false,
        }
    }

    /// Writes `value` as one line (flushed, so a reader sees each event as it happens).
    fn emit(&mut self, value: serde_json::Value) {
        let Some(stdout) = self.stdout.as_mut() else {
            return;
        };
        if self.closed {
            return;
        }
        let mut stdout = stdout.lock();
        if writeln!(stdout, "{value}")
            .and_then(|_| stdout.flush())
            .is_err()
        {
            self.closed = true;
            let _ = self.commands.send(TrainCommand::Stop);
        }
    }
}

/// How long `train` waits for room on a full disk by default (`--disk-wait`), its run paused
/// with its weights in memory, before it gives up (keeping the last complete checkpoint): long
/// enough for someone to notice and make room, bounded so that a script is not left waiting
/// for ever.
pub const DISK_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Seconds between tries of a checkpoint a full disk kept from being written: soon at first
/// (a temporary file of another program going away), then every half minute.
const DISK_RETRY_S: [u64; 4] = [2, 5, 10, 30];

/// The wait of `train` for room on a full disk: when the run's checkpoint is tried again,
/// and when it is given up.
#[derive(Debug)]
struct DiskWait {
    /// How long it waits before it gives up.
    limit: std::time::Duration,
    /// The step of the checkpoint that failed last.
    step: usize,
    /// Since when the run waits, the tries so far, and the last try.
    held: Option<(std::time::Instant, usize, std::time::Instant)>,
    /// The reason of the last failure, for giving up.
    message: String,
}

impl Default for DiskWait {
    fn default() -> Self {
        Self::new(DISK_WAIT)
    }
}

/// What [`DiskWait::tick`] asks of the driver.
#[derive(Debug, PartialEq)]
enum DiskTick {
    /// Nothing now.
    Wait,
    /// Ask the trainer to try the checkpoint again.
    Retry,
    /// Give up with this error.
    GiveUp(String),
}

impl DiskWait {
    /// A wait that gives up after `limit` (at the first failure where it is zero).
    fn new(limit: std::time::Duration) -> Self {
        DiskWait {
            limit,
            step: 0,
            held: None,
            message: String::new(),
        }
    }

    /// The wait said to a person: `60 min`, `1m30s`.
    fn limit_said(&self) -> String {
        let secs = self.limit.as_secs();
        if secs > 0 && secs.is_multiple_of(60) {
            format!("{} min", secs / 60)
        } else {
            crate::clock::human_duration(self.limit.as_secs_f64())
        }
    }

    /// A checkpoint at `step` was not written; the note to print (at the first failure only).
    fn failed(&mut self, step: usize, message: &str) -> Option<String> {
        self.failed_at(step, message, std::time::Instant::now())
    }

    fn failed_at(&mut self, step: usize, message: &str, now: std::time::Instant) -> Option<String> {
        self.step = step;
        self.message = if self.limit.is_zero() {
            format!(
                "checkpoint at step {step} not written: {message}; the last complete checkpoint is kept (--disk-wait 0: no waiting for room)"
            )
        } else {
            format!(
                "checkpoint at step {step} not written for {}: {message}; the last complete checkpoint is kept",
                self.limit_said()
            )
        };
        match &mut self.held {
            Some((_, tries, last)) => {
                *tries += 1;
                *last = now;
                None
            }
            None if self.limit.is_zero() => {
                self.held = Some((now, 0, now));
                None
            }
            None => {
                self.held = Some((now, 0, now));
                // A full disk wants room; a folder made read-only (or another failure) wants
                // what stops the write mended.
                let lower = message.to_lowercase();
                let fix = if lower.contains("no space left") || lower.contains("quota") {
                    "make room"
                } else {
                    "mend what stops the write"
                };
                Some(format!(
                    "checkpoint at step {step} not written: {message}; paused with the weights in memory, trying again for up to {}: {fix} (Ctrl-C stops)",
                    self.limit_said()
                ))
            }
        }
    }

    /// A checkpoint was written: how long the run waited, if it did (it goes on now).
    fn saved(&mut self) -> Option<std::time::Duration> {
        self.held.take().map(|(since, ..)| since.elapsed())
    }

    /// What to do now.
    fn tick(&mut self) -> DiskTick {
        self.tick_at(std::time::Instant::now())
    }

    fn tick_at(&mut self, now: std::time::Instant) -> DiskTick {
        let Some((since, tries, last)) = &mut self.held else {
            return DiskTick::Wait;
        };
        if now.duration_since(*since) >= self.limit {
            return DiskTick::GiveUp(self.message.clone());
        }
        let delay = DISK_RETRY_S[(*tries).min(DISK_RETRY_S.len() - 1)];
        if now.duration_since(*last).as_secs() >= delay {
            // Counted as tried now, so that one answer is waited for.
            *last = now;
            return DiskTick::Retry;
        }
        DiskTick::Wait
    }
}

/// The configuration of a new run: the preset (the blog's setup when none is named), then the
/// model size, the model flags and every other flag given on top.
pub fn config_from_args(args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let mut cfg = recipe_config(
        args.preset.unwrap_or(Preset::Blog),
        args.model_size,
        &args.model,
        &args.recipe,
    )?;
    if let Some(v) = args.warmup {
        cfg.warmup_steps = v;
    }
    if args.ema.is_some() {
        cfg.ema_decay = args.ema;
    }
    if args.grad_clip.is_some() {
        cfg.grad_clip = args.grad_clip;
    }
    if args.time_limit.is_some() {
        cfg.time_limit_s = args.time_limit;
    }
    if args.min_snr_gamma.is_some() {
        cfg.min_snr_gamma = args.min_snr_gamma;
    }
    cfg.lr_cosine_decay |= args.lr_cosine;
    cfg.ema_warmup |= args.ema_warmup;
    // Only the quick preset names a stop step; the blog's is 5 epochs of the data (see
    // `request`).
    cfg.steps = match (args.steps, args.preset) {
        (Some(s), _) => s,
        (None, Some(Preset::Quick)) => cfg.steps,
        (None, _) => 0,
    };
    cfg.seed = args.seed.unwrap_or(crate::presets::DEFAULT_SEED);
    cfg.device = args.device;
    cfg.dataset = args
        .dataset
        .clone()
        .unwrap_or_else(|| crate::data::DatasetSpec::FashionMnist.to_string());
    cfg.flip = !args.no_flip;
    cfg.checkpoint_every = args.checkpoint_every.unwrap_or(500);
    cfg.checkpoint_interval_s = interval(args);
    Ok(cfg)
}

/// A recipe's configuration with the model size, the model flags and the recipe flags on top
/// (`train` and `import` name a run's model and recipe alike); refuses model flags the UNet
/// has no use for.
pub(super) fn recipe_config(
    preset: Preset,
    model_size: Option<ModelPreset>,
    model: &ModelArgs,
    recipe: &RecipeFlags,
) -> anyhow::Result<TrainConfig> {
    let mut cfg = preset.config();
    if let Some(m) = model_size {
        cfg.model = m.unet(cfg.model.channels);
    }
    cfg.model = model.apply(&cfg.model)?;
    recipe.apply(&mut cfg);
    Ok(cfg)
}

/// The checkpoint interval the arguments ask for (`None`: off).
fn interval(args: &TrainArgs) -> Option<f64> {
    Some(args.checkpoint_interval).filter(|&s| s > 0.0)
}

/// The time left to the time limit's `deadline` (none without a limit, or before the session
/// started): the progress bar and the plain lines both say it where it comes first.
fn time_to(deadline: &std::sync::Mutex<Option<std::time::Instant>>) -> Option<std::time::Duration> {
    let deadline = (*deadline.lock().ok()?)?;
    Some(deadline.saturating_duration_since(std::time::Instant::now()))
}

/// A plain progress line (stderr not a terminal): where the run is, its loss and pace, and
/// this session's time so far and left at its pace (`session`: its first step and start), or
/// to its time limit (`to_limit`, seconds) where that comes first.
fn plain_line(
    s: &crate::store::StepStats,
    total: usize,
    steps_per_epoch: usize,
    session: (usize, std::time::Instant),
    to_limit: Option<f64>,
) -> String {
    let took = session.1.elapsed().as_secs_f64();
    plain_line_after(s, total, steps_per_epoch, session.0, took, to_limit)
}

/// [`plain_line`] `took` seconds into the session that began at step `first`.
fn plain_line_after(
    s: &crate::store::StepStats,
    total: usize,
    steps_per_epoch: usize,
    first: usize,
    took: f64,
    to_limit: Option<f64>,
) -> String {
    use crate::clock::human_duration;
    let epochs = crate::data::epochs_suffix(total, steps_per_epoch);
    let done = s.step.saturating_sub(first);
    let left = match (done, total.saturating_sub(s.step)) {
        (_, 0) => String::new(),
        (0, _) => String::new(),
        (d, rest) => {
            let by_pace = took / d as f64 * rest as f64;
            match to_limit {
                Some(by_limit) if by_limit < by_pace => {
                    format!(", {} left (time limit)", human_duration(by_limit))
                }
                _ => format!(", {} left", human_duration(by_pace)),
            }
        }
    };
    format!(
        "step {}/{total} · epoch {}{epochs} · loss {:.4} · {:.0} img/s · {} elapsed{left}",
        s.step,
        s.epoch + 1,
        s.loss,
        s.images_per_s,
        human_duration(took)
    )
}

/// Parses a checkpoint interval: a duration (see [`parse_duration`]), or `off` / `0` for
/// none (given as 0).
pub fn parse_interval(s: &str) -> Result<f64, String> {
    if s.trim() == "off" {
        return Ok(0.0);
    }
    if seconds(s)? == 0.0 {
        return Ok(0.0);
    }
    parse_duration(s)
}

/// Parses a duration: `90` or `90s` (seconds), `10m`, `1.5h`.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let secs = seconds(s)?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("a duration must be positive, got '{}'", s.trim()));
    }
    Ok(secs)
}

/// The seconds `s` says (`90`, `90s`, `10m`, `1.5h`), of any sign.
fn seconds(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 90s, 10m, 1.5h)"))?;
    let secs = match unit.trim() {
        "s" | "sec" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        u => return Err(format!("unknown unit '{u}' in '{s}' (use s, m or h)")),
    };
    Ok(secs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The plain lines' time left is the time limit's where it comes before the last step.
    #[test]
    fn plain_lines_say_the_time_left_to_a_nearer_time_limit() {
        let s = crate::store::StepStats {
            step: 200,
            epoch: 0,
            loss: 0.1,
            images_per_s: 160.0,
            elapsed_s: 40.0,
            lr: 2e-3,
            bucket_losses: Vec::new(),
        };
        // 200 steps in 40 s: 1900 more take 6m20s at this pace.
        let line = plain_line_after(&s, 2100, 267, 0, 40.0, None);
        assert!(line.ends_with("40s elapsed, 6m20s left"), "{line}");
        // The limit 20 s away, before the last step: its time is the time left.
        let line = plain_line_after(&s, 2100, 267, 0, 40.0, Some(20.0));
        assert!(
            line.ends_with("40s elapsed, 20s left (time limit)"),
            "{line}"
        );
        // At the limit: none left; a far limit changes nothing.
        let line = plain_line_after(&s, 2100, 267, 0, 40.0, Some(0.0));
        assert!(line.ends_with(", 0s left (time limit)"), "{line}");
        let line = plain_line_after(&s, 2100, 267, 0, 40.0, Some(3560.0));
        assert!(line.ends_with("6m20s left"), "{line}");
    }

    #[test]
    fn the_wait_asks_for_room_only_where_the_disk_is_full() {
        let t0 = std::time::Instant::now();
        let said = |message| DiskWait::default().failed_at(34, message, t0).unwrap();
        assert!(
            said("No space left on device (os error 28)").contains(": make room (Ctrl-C stops)")
        );
        assert!(said("Disk quota exceeded (os error 122)").contains(": make room"));
        let ro = said("Read-only file system (os error 30)");
        assert!(
            ro.contains(": mend what stops the write (Ctrl-C stops)"),
            "{ro}"
        );
    }

    #[test]
    fn a_full_disk_is_tried_again_sooner_then_later_and_given_up_after_the_wait() {
        use std::time::{Duration, Instant};
        let mut w = DiskWait::default();
        let t0 = Instant::now();
        assert_eq!(w.tick_at(t0), DiskTick::Wait, "nothing held");
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(w.failed_at(4, "No space left", t0).is_some(), "said once");
        // The note of the first failure; tries after 2 s, then 5, 10 and every 30 s.
        assert_eq!(w.tick_at(at(1)), DiskTick::Wait);
        assert_eq!(w.tick_at(at(3)), DiskTick::Retry);
        assert!(
            w.failed_at(4, "No space left", at(3)).is_none(),
            "not said again"
        );
        assert_eq!(w.tick_at(at(5)), DiskTick::Wait);
        assert_eq!(w.tick_at(at(9)), DiskTick::Retry);
        w.failed_at(4, "No space left", at(9));
        assert_eq!(w.tick_at(at(25)), DiskTick::Retry);
        w.failed_at(4, "No space left", at(25));
        assert_eq!(w.tick_at(at(40)), DiskTick::Wait);
        assert_eq!(w.tick_at(at(60)), DiskTick::Retry);
        match w.tick_at(t0 + DISK_WAIT) {
            DiskTick::GiveUp(m) => assert!(
                m.starts_with("checkpoint at step 4 not written for 60 min: No space left"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(w.saved().is_some(), "a checkpoint written ends the wait");
        assert_eq!(w.tick_at(t0 + DISK_WAIT), DiskTick::Wait);
        // --disk-wait 5m gives up after five minutes; 0 at once, with nothing to wait for said.
        let mut short = DiskWait::new(Duration::from_secs(300));
        let said = short.failed_at(4, "No space left", t0).unwrap_or_default();
        assert!(said.contains("trying again for up to 5 min"), "{said}");
        assert!(matches!(short.tick_at(at(300)), DiskTick::GiveUp(_)));
        let mut none = DiskWait::new(Duration::ZERO);
        assert_eq!(none.failed_at(4, "No space left", t0), None);
        match none.tick_at(t0) {
            DiskTick::GiveUp(m) => {
                assert!(m.ends_with("(--disk-wait 0: no waiting for room)"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        train: TrainArgs,
    }

    fn config(args: &[&str]) -> TrainConfig {
        let cli =
            Cli::try_parse_from(std::iter::once("train").chain(args.iter().copied())).unwrap();
        config_from_args(&cli.train).unwrap()
    }

    fn stop(args: &[&str]) -> StopAt {
        let cli =
            Cli::try_parse_from(std::iter::once("train").chain(args.iter().copied())).unwrap();
        match request(&cli.train).unwrap() {
            TrainRequest::New { stop, .. } | TrainRequest::Resume { stop, .. } => stop,
            TrainRequest::Scratch { .. } => unreachable!("the CLI trains no scratch run"),
        }
    }

    /// The blog's recipe (named or by default) is the blog's run, 5 epochs; quick stops at its
    /// own step; the flags and a resumed run's own stop step come first.
    #[test]
    fn each_recipe_stops_where_its_run_does() {
        assert_eq!(stop(&[]), StopAt::Epochs(crate::presets::BLOG_EPOCHS));
        assert_eq!(stop(&["--preset", "blog"]), StopAt::Epochs(5));
        assert_eq!(stop(&["--preset", "quick"]), StopAt::Configured);
        assert_eq!(
            config(&["--preset", "quick"]).steps,
            crate::presets::QUICK_STEPS
        );
        assert_eq!(stop(&["--epochs", "2"]), StopAt::Epochs(2));
        assert_eq!(stop(&["--steps", "30"]), StopAt::Step(30));
        assert_eq!(stop(&["--resume", "runs/a"]), StopAt::Configured);
    }

    #[test]
    fn checkpoint_interval_is_a_duration_or_off() {
        assert_eq!(config(&[]).checkpoint_interval_s, Some(120.0));
        let cfg = config(&["--checkpoint-interval", "90s"]);
        assert_eq!(cfg.checkpoint_interval_s, Some(90.0));
        for off in ["off", "0", "0s", "0m"] {
            let cfg = config(&["--checkpoint-interval", off]);
            assert_eq!(cfg.checkpoint_interval_s, None, "{off}");
        }
        let err = Cli::try_parse_from(["train", "--checkpoint-interval=-3m"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("must be positive"), "{err}");
    }
}
