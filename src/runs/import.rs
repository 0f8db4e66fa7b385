//! Importing weights trained elsewhere (PyTorch: the blog's notebook, denoising-diffusion-pytorch
//! with the blog's UNet) as a run: a run directory with the configuration they were trained
//! with and one checkpoint holding them, so that `sample`, `eval`, the lab and `train --resume`
//! take them as they take a run trained here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diffusion::Objective;
use crate::schedule::ScheduleTables;
use anyhow::{bail, Context, Result};
use candle_core::Device;

use crate::model::state_dict::{
    first_names, load_weights_file, read_state_dict, state_dict_of, with_model_flags_hint,
    StateDict,
};
use crate::store::{RunDir, RunLock, RunState, TrainConfig, CONFIG_FILE, EMA_FILE, WEIGHTS_FILE};

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The model's weights (safetensors, PyTorch `state_dict` names).
    pub weights: PathBuf,
    /// Its EMA weights, where there are some (sampling prefers them, as for a run trained
    /// here with `--ema`).
    pub ema_weights: Option<PathBuf>,
    /// The configuration they were trained with: model, schedule, T, objective, dataset and
    /// image size; the model's channels are the weights' where `channels_given` is false.
    pub config: TrainConfig,
    /// The model flags named the channels (otherwise they are read off the weights).
    pub channels_given: bool,
    /// `--loss` was given (otherwise a `GaussianDiffusion`'s weights train on with its MSE).
    pub loss_given: bool,
    /// Steps they were trained for (the checkpoint's step; 0 where unknown).
    pub step: usize,
    /// The run directory to create (one holding a run is refused).
    pub dir: PathBuf,
}

/// A run made by [`import`].
#[derive(Debug, Clone)]
pub struct Imported {
    /// Its directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: TrainConfig,
    /// Tensors of the model.
    pub tensors: usize,
    /// What was noticed on the way (a wrapper's prefix taken off, tensors left out).
    pub notes: Vec<String>,
}

/// Makes a run of `req`: the weights are checked as strictly as PyTorch's `load_state_dict`
/// against the model of the configuration (every tensor, of its shape, nothing else) before
/// anything is written; the checkpoint is written as training writes its own (complete, then
/// switched to). It holds no optimizer state, and says so: training it on starts Adam afresh.
pub fn import(req: ImportRequest) -> Result<Imported> {
    let mut cfg = req.config.clone();
    let device = Device::Cpu;
    let file = load_weights_file(&req.weights, &device)?;
    if !req.channels_given {
        // A self-conditioned UNet's first convolution takes its own estimate beside the image.
        let per_image = if cfg.model.self_condition { 2 } else { 1 };
        if let Some(c) = channels_of(&file) {
            cfg.model.channels = (c / per_image).max(1);
        }
        // A named set's images have known channels: weights for others were not trained on
        // it (a folder's are known once loaded, when the run samples or trains).
        let spec = crate::data::DatasetSpec::parse_unchecked(&cfg.dataset);
        let data_channels = match &spec {
            crate::data::DatasetSpec::Shapes => Some(1),
            other => other.hub().map(|h| h.channels),
        };
        if let Some(dc) = data_channels.filter(|&dc| dc != cfg.model.channels) {
            bail!(
                "the weights take images of {} channel(s) but {} has {dc}: give the --dataset they were trained on (or --channels {} to use them on that data, {})",
                cfg.model.channels,
                cfg.dataset,
                cfg.model.channels,
                if dc == 1 { "its grey images repeated as RGB" } else { "its images made grey" }
            );
        }
    }
    cfg.validate()
        .context("the run's configuration is not usable")?;
    crate::store::config::check_stop_step(req.step, "--step")?;
    let mut notes = Vec::new();
    let model = state_dict_of(file, &req.weights, &cfg.model).map_err(with_model_flags_hint)?;
    notes.extend(wrapper_note(&req.weights, &model));
    if let Some(betas) = &model.betas {
        // Their schedule's tables (ᾱ, SNR), for both checks.
        let theirs = ScheduleTables::from_betas(cfg.schedule, betas.clone());
        // β no chain can walk (0, 1 or beyond) are only said; the others the run keeps.
        let keeps = crate::store::config::check_betas(betas, cfg.timesteps).is_ok();
        let note = schedule_check(&theirs, &cfg, keeps)?;
        if note.is_some() && keeps {
            cfg.betas = Some(betas.clone());
        }
        notes.extend(note);
        // A wrapper with a `betas` buffer is denoising-diffusion-pytorch's GaussianDiffusion,
        // whose loss is the mean squared error.
        if !req.loss_given && cfg.loss != crate::diffusion::LossKind::L2 {
            notes.push(format!(
                "training the run on uses the l2 loss, GaussianDiffusion's mean squared error, not the recipe's {} (--loss names another)",
                cfg.loss
            ));
            cfg.loss = crate::diffusion::LossKind::L2;
        }
        if let Some(weights) = &model.loss_weight {
            objective_check(&theirs, weights, cfg.objective)?;
        }
    }
    let ema = match &req.ema_weights {
        Some(p) => {
            if !p.exists() {
                bail!("the EMA weights {} do not exist", p.display());
            }
            let sd = read_state_dict(p, &cfg.model, &device)
                .map_err(with_model_flags_hint)
                .with_context(|| format!("the EMA weights {} do not fit", p.display()))?;
            notes.extend(wrapper_note(p, &sd));
            Some(sd)
        }
        None => None,
    };
    crate::store::check_finite(&model.tensors, &req.weights)?;
    if let (Some(sd), Some(p)) = (&ema, &req.ema_weights) {
        crate::store::check_finite(&sd.tensors, p)?;
    }
    // As for a new run of `train`: no folder of other files, none inside a run.
    RunDir::check_new_run_path(&req.dir)?;
    if req.dir.join(CONFIG_FILE).exists() {
        bail!(
            "{} already holds a run: name another folder with --run-dir",
            req.dir.display()
        );
    }
    let run = RunDir::create(&req.dir)?;
    let _lock = RunLock::acquire(&req.dir)?;
    cfg.steps = cfg.steps.max(req.step);
    // An imported run keeps the ddpm-lab defaults for what training here would add (previews,
    // checkpoints), so that a resumed import trains as a run started here.
    run.save_config(&cfg)?;
    let state = RunState {
        step: req.step,
        epoch: 0,
        seed: cfg.seed,
        elapsed_s: 0.0,
        imported: true,
        ..RunState::default()
    };
    let tensors = model.tensors.len();
    let mut files: Vec<(&str, HashMap<String, candle_core::Tensor>)> =
        vec![(WEIGHTS_FILE, model.tensors)];
    if let Some(e) = ema {
        files.push((EMA_FILE, e.tensors));
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    run.write_checkpoint(&cfg, &state, &names, &mut |name, path| {
        let (_, t) = files
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a file named above");
        candle_core::safetensors::save(t, path).map_err(anyhow::Error::from)
    })?;
    Ok(Imported {
        dir: req.dir,
        config: cfg,
        tensors,
        notes,
    })
}

/// The image channels a UNet's weights take, read off its first convolution (`init_conv`,
/// whose input is the image, with the self-conditioning image beside it where there is one);
/// `None` where the file has no such tensor (the strict check then names what is missing).
fn channels_of(file: &HashMap<String, candle_core::Tensor>) -> Option<usize> {
    file.iter()
        .find(|(name, _)| *name == "init_conv.weight" || name.ends_with(".init_conv.weight"))
        .and_then(|(_, t)| t.dims().get(1).copied())
}

/// Checks a wrapper's `betas` buffer (the schedule the weights were trained with) against the
/// run's schedule: another number of steps is refused (sampling would walk another chain);
/// other values are noted with how far they are off (denoising-diffusion-pytorch's `linear`
/// scales β by 1000/T, its `sigmoid` is not the blog's), and with `keeps` (the caller keeps
/// the file's β with the run), that the run samples with them. What sampling feels is the
/// noising's √ᾱ and √(1−ᾱ): where those agree to [`SIGNAL_GAP`], the difference is said to
/// be harmless (diffusers' cosine clips its last β at 0.999, the blog's at 0.9999).
fn schedule_check(
    theirs: &ScheduleTables,
    cfg: &TrainConfig,
    keeps: bool,
) -> Result<Option<String>> {
    let betas = &theirs.betas;
    if betas.len() != cfg.timesteps {
        bail!(
            "the weights were trained with T = {} (their `betas` buffer), the run would have T = {}: give --timesteps {} (and the --schedule they used)",
            betas.len(),
            cfg.timesteps,
            betas.len()
        );
    }
    let tables = cfg.tables()?;
    let (at, worst) = betas
        .iter()
        .zip(&tables.betas)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-12))
        .enumerate()
        .fold((0, 0.0_f64), |m, (t, d)| if d > m.1 { (t, d) } else { m });
    if worst <= 1e-4 {
        return Ok(None);
    }
    // The largest gap in √ᾱ or √(1−ᾱ) between their schedule and `tables`, and its step.
    let gap_to = |tables: &ScheduleTables| {
        theirs
            .alphas_cumprod
            .iter()
            .zip(&tables.alphas_cumprod)
            .map(|(a, ours)| {
                let signal = (a.max(0.0).sqrt() - ours.sqrt()).abs();
                let noise = ((1.0 - a).max(0.0).sqrt() - (1.0 - ours).sqrt()).abs();
                signal.max(noise)
            })
            .enumerate()
            .fold((0, 0.0_f64), |m, (t, g)| if g > m.1 { (t, g) } else { m })
    };
    let (gap_at, gap) = gap_to(&tables);
    let schedule = cfg.schedule.name();
    let kept =
        "the run keeps the file's β, so it samples (and trains on) as the weights were trained";
    if gap < SIGNAL_GAP {
        return Ok(Some(format!(
            "the weights' `betas` buffer differs slightly from the {schedule} schedule (β off by {} at step {}, √ᾱ and √(1−ᾱ) within {gap:.0e}): {}",
            percent(worst),
            at + 1,
            if keeps { kept } else { "no visible effect on samples" }
        )));
    }
    let off = format!(
        "β off by up to {} (step {}), √ᾱ or √(1−ᾱ) by up to {} (step {})",
        percent(worst),
        at + 1,
        significant(gap),
        gap_at + 1
    );
    // Another of ddpm-lab's schedules may be the one they were trained with, or nearer.
    let nearest = crate::schedule::BetaSchedule::ALL
        .into_iter()
        .filter(|&s| s != cfg.schedule)
        .filter_map(|s| Some((s, gap_to(&ScheduleTables::new(s, cfg.timesteps).ok()?).1)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|(_, g)| *g < gap / 2.0);
    let why = match cfg.schedule {
        crate::schedule::BetaSchedule::Linear => " (denoising-diffusion-pytorch's linear scales β by 1000/T; see README, Moving weights)",
        crate::schedule::BetaSchedule::Cosine => " (the blog clips the cosine's β to [1e-4, 0.9999], denoising-diffusion-pytorch to [0, 0.999])",
        crate::schedule::BetaSchedule::Sigmoid => " (denoising-diffusion-pytorch's sigmoid is Chen's, not the blog's)",
        crate::schedule::BetaSchedule::Quadratic => "",
    };
    if keeps {
        let nearest = match nearest {
            Some((other, g)) => format!(
                "; of ddpm-lab's schedules, {other} is the nearest (within {})",
                significant(g)
            ),
            None => String::new(),
        };
        return Ok(Some(format!(
            "the weights' `betas` buffer is not the {schedule} schedule ({off}){why}: {kept}{nearest}"
        )));
    }
    Ok(Some(match nearest {
        Some((other, g)) => format!(
            "the weights' `betas` buffer is not the {schedule} schedule ({off}): samples will be poor; --schedule {other} is nearer (within {})",
            significant(g)
        ),
        None => format!(
            "the weights' `betas` buffer is not exactly the {schedule} schedule ({off}), and none of ddpm-lab's schedules is nearer: the run samples with the blog's {schedule}, {} the schedule the weights learnt{}",
            if gap < COARSE_GAP {
                "a little off from"
            } else {
                "too far for good samples from"
            },
            why
        ),
    }))
}

/// A gap in √ᾱ or √(1−ᾱ) past which samples of another schedule are poor, not just a little
/// off (a tenth of the noise's or the signal's share).
const COARSE_GAP: f64 = 0.1;

/// `v` with two significant digits (`0.0036`, `0.21`).
fn significant(v: f64) -> String {
    if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.1e}")
    }
}

/// Checks a `GaussianDiffusion`'s `loss_weight` buffer against the run's objective: its
/// objective decides it (with SNR_t = ᾱ_t/(1−ᾱ_t), clipped at γ under min-SNR weighting: 1 ⋅
/// clip/SNR for the noise, clip for x0, clip/(SNR+1) for v), and a run sampling with another
/// objective than its weights were trained for draws noise. Refused, naming the flag.
fn objective_check(theirs: &ScheduleTables, loss_weight: &[f64], ours: Objective) -> Result<()> {
    if loss_weight.len() != theirs.betas.len() {
        return Ok(());
    }
    // SNR_t, kept finite where ᾱ_t is 1.
    let snr: Vec<f64> = theirs
        .alphas_cumprod
        .iter()
        .map(|a| a / (1.0 - a).max(1e-20))
        .collect();
    // The SNR each objective's weight implies (clipped at γ, or not at all).
    let fits = |factor: &dyn Fn(f64) -> f64| {
        let clipped: Vec<f64> = loss_weight
            .iter()
            .zip(&snr)
            .map(|(w, s)| w * factor(*s))
            .collect();
        let gamma = clipped.iter().copied().fold(0.0_f64, f64::max);
        clipped
            .iter()
            .zip(&snr)
            .all(|(c, s)| (c - s.min(gamma)).abs() <= 1e-3 * s.min(gamma).max(1e-6))
    };
    let trained = [
        (Objective::Noise, &(|s: f64| s) as &dyn Fn(f64) -> f64),
        (Objective::X0, &|_| 1.0),
        (Objective::V, &|s: f64| s + 1.0),
    ]
    .into_iter()
    .find(|(_, factor)| fits(*factor))
    .map(|(o, _)| o);
    match trained {
        Some(theirs) if theirs != ours => bail!(
            "the weights' `loss_weight` buffer is a GaussianDiffusion's for the {} objective ({}), the run would predict {}: give --objective {theirs}",
            theirs,
            match theirs {
                Objective::Noise => "pred_noise",
                Objective::X0 => "pred_x0",
                Objective::V => "pred_v",
            },
            ours
        ),
        _ => Ok(()),
    }
}

/// Largest difference of √ᾱ_t or √(1−ᾱ_t) (the noising's coefficients) between two schedules
/// that sampling does not show.
const SIGNAL_GAP: f64 = 1e-3;

/// A share as a percentage, with the decimals a small one needs (`400%`, `2.5%`, `0.09%`).
fn percent(share: f64) -> String {
    let p = share * 100.0;
    match p {
        p if p >= 10.0 => format!("{p:.0}%"),
        p if p >= 1.0 => format!("{p:.1}%"),
        // One significant digit (the check starts at 0.01 %).
        p => format!("{p:.*}%", (-p.log10().floor()).clamp(1.0, 6.0) as usize),
    }
}

/// The note of a wrapper prefix taken off `path`'s names, if one was.
fn wrapper_note(path: &Path, sd: &StateDict) -> Option<String> {
    let p = sd.prefix.as_ref()?;
    let left = match sd.ignored.len() {
        0 => String::new(),
        n => format!(
            "; {n} other tensor{} left out ({})",
            if n == 1 { "" } else { "s" },
            first_names(&sd.ignored, 3)
        ),
    };
    Some(format!(
        "the UNet of {} is read from under `{p}`{left}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::state_dict::testing::{state_dict, tiny};
    use crate::model::UnetConfig;

    fn request(weights: &Path, dir: &Path) -> ImportRequest {
        ImportRequest {
            weights: weights.to_path_buf(),
            ema_weights: None,
            config: TrainConfig {
                model: UnetConfig {
                    channels: 7,
                    ..tiny()
                },
                ..TrainConfig::default()
            },
            channels_given: false,
            loss_given: false,
            step: 40,
            dir: dir.to_path_buf(),
        }
    }

    /// denoising-diffusion-pytorch's `loss_weight` buffer names the objective: 1 for the noise
    /// (min(SNR, γ)/SNR under min-SNR weighting), SNR/(SNR+1) = ᾱ for v.
    #[test]
    fn a_wrappers_loss_weight_names_the_objective_the_run_needs() {
        let cfg = TrainConfig::default();
        let tables = cfg.tables().unwrap();
        let (betas, ac) = (&tables.betas, &tables.alphas_cumprod);
        let snr: Vec<f64> = ac.iter().map(|a| a / (1.0 - a)).collect();
        let ones = vec![1.0; betas.len()];
        let clipped_noise: Vec<f64> = snr.iter().map(|s| s.min(5.0) / s).collect();
        let v: Vec<f64> = ac.iter().map(|a| *a as f32 as f64).collect();
        let clipped_v: Vec<f64> = snr.iter().map(|s| s.min(5.0) / (s + 1.0)).collect();
        let x0: Vec<f64> = snr.clone();
        assert!(objective_check(&tables, &ones, Objective::Noise).is_ok());
        assert!(objective_check(&tables, &clipped_noise, Objective::Noise).is_ok());
        for (w, theirs) in [(&v, "v"), (&clipped_v, "v"), (&x0, "x0")] {
            let e = objective_check(&tables, w, Objective::Noise)
                .unwrap_err()
                .to_string();
            assert!(
                e.ends_with(&format!(
                    "the run would predict noise: give --objective {theirs}"
                )),
                "{e}"
            );
        }
        assert!(objective_check(&tables, &v, Objective::V).is_ok());
        let e = objective_check(&tables, &ones, Objective::V)
            .unwrap_err()
            .to_string();
        assert!(e.contains("for the noise objective (pred_noise)"), "{e}");
        // Weights of no objective's form (another library's): nothing is said.
        assert!(objective_check(&tables, betas, Objective::V).is_ok());
    }

    #[test]
    fn weights_for_other_channels_than_the_named_data_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let w = d.path().join("rgb.safetensors");
        let rgb = UnetConfig {
            channels: 3,
            ..tiny()
        };
        candle_core::safetensors::save(&state_dict(&rgb, ""), &w).unwrap();
        let mut req = request(&w, &d.path().join("a"));
        req.config.dataset = "fashion_mnist".into();
        let e = import(req.clone()).unwrap_err().to_string();
        assert!(
            e.starts_with("the weights take images of 3 channel(s) but fashion_mnist has 1: give the --dataset they were trained on (or --channels 3"),
            "{e}"
        );
        assert!(!d.path().join("a").exists());
        req.config.dataset = "cifar10".into();
        assert_eq!(import(req.clone()).unwrap().config.model.channels, 3);
        // Asked for: the data is converted to the model's channels.
        let mut req = request(&w, &d.path().join("b"));
        req.config.dataset = "fashion_mnist".into();
        req.config.model.channels = 3;
        req.channels_given = true;
        import(req).unwrap();
    }

    #[test]
    fn imported_weights_are_a_run_that_loads_as_they_were() {
        let d = tempfile::tempdir().unwrap();
        let w = d.path().join("unet.safetensors");
        let sd = state_dict(&tiny(), "model.");
        candle_core::safetensors::save(&sd, &w).unwrap();
        let dir = d.path().join("runs/imported");
        let done = import(request(&w, &dir)).unwrap();
        assert_eq!(done.config.model.channels, 1, "read off init_conv");
        assert_eq!(done.config.steps, 1000, "the recipe's, past the step");
        assert!(
            done.notes[0].contains("from under `model.`"),
            "{:?}",
            done.notes
        );
        let loaded = crate::store::load_checkpoint(&dir, &Device::Cpu, true).unwrap();
        assert_eq!(loaded.step, 40);
        assert!(!loaded.ema);
        let run = RunDir::open(&dir).unwrap();
        let ck = run.latest_checkpoint().unwrap().unwrap();
        let saved = crate::store::load_tensors(&ck.file(WEIGHTS_FILE), &Device::Cpu).unwrap();
        let values = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let key = "init_conv.weight";
        assert_eq!(values(&saved[key]), values(&sd[&format!("model.{key}")]));
        // A second import into the same folder is refused; nothing there changes.
        let again = import(request(&w, &dir)).unwrap_err().to_string();
        assert!(again.contains("already holds a run"), "{again}");
    }

    #[test]
    fn an_imported_run_trains_on_with_adam_afresh_and_an_ema_from_the_weights() {
        let d = tempfile::tempdir().unwrap();
        let w = d.path().join("unet.safetensors");
        candle_core::safetensors::save(&state_dict(&tiny(), ""), &w).unwrap();
        let dir = d.path().join("imported");
        let mut req = request(&w, &dir);
        req.config.ema_decay = Some(0.9);
        req.config.timesteps = 20;
        import(req).unwrap();
        // No --reset-optimizer needed: the checkpoint says why it has no optimizer state.
        let mut t = crate::train::Trainer::resume(&dir, Some(42), None).unwrap();
        assert_eq!(t.step(), 40);
        assert_eq!(
            t.notices(),
            [
                "Adam starts from zero moments: imported weights carry no optimizer state",
                "the EMA starts from the weights: none were imported beside them"
            ]
        );
        let x = candle_core::Tensor::zeros((2, 1, 28, 28), candle_core::DType::F32, &Device::Cpu)
            .unwrap();
        t.train_step(&x, 0).unwrap();
        t.checkpoint().unwrap();
        drop(t);
        // Its own checkpoints are whole again: a damaged optimizer file is refused as for any.
        let ck = RunDir::open(&dir)
            .unwrap()
            .latest_checkpoint()
            .unwrap()
            .unwrap();
        assert_eq!(ck.state.step, 41);
        assert!(!ck.state.imported);
        std::fs::remove_file(ck.file(crate::store::OPTIMIZER_FILE)).unwrap();
        let e = crate::train::Trainer::resume(&dir, Some(42), None)
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("--reset-optimizer"), "{e:#}");
    }

    #[test]
    fn a_wrappers_schedule_is_checked_against_the_runs() {
        let d = tempfile::tempdir().unwrap();
        let w = d.path().join("diffusion.safetensors");
        let mut sd = state_dict(&tiny(), "model.");
        let cfg = request(&w, d.path()).config;
        let ours = cfg.tables().unwrap().betas;
        let put = |sd: &mut HashMap<String, candle_core::Tensor>, betas: &[f64]| {
            sd.insert(
                "betas".into(),
                candle_core::Tensor::new(betas, &Device::Cpu).unwrap(),
            );
            for extra in ["alphas_cumprod", "posterior_variance", "loss_weight"] {
                sd.insert(
                    extra.into(),
                    candle_core::Tensor::new(betas, &Device::Cpu).unwrap(),
                );
            }
            candle_core::safetensors::save(sd, &w).unwrap();
        };
        // Its own schedule: nothing to say beyond the buffers left out, all counted.
        put(&mut sd, &ours);
        let done = import(request(&w, &d.path().join("a"))).unwrap();
        assert_eq!(done.notes.len(), 2, "{:?}", done.notes);
        assert!(
            done.notes[0].ends_with(
                "; 4 other tensors left out (alphas_cumprod, betas, loss_weight and 1 more)"
            ),
            "{:?}",
            done.notes
        );
        // GaussianDiffusion's loss is the mean squared error: the run trains on with it,
        // unless --loss named one.
        assert!(
            done.notes[1].starts_with("training the run on uses the l2 loss"),
            "{:?}",
            done.notes
        );
        assert_eq!(done.config.loss, crate::diffusion::LossKind::L2);
        let given = import(ImportRequest {
            loss_given: true,
            ..request(&w, &d.path().join("a2"))
        })
        .unwrap();
        assert_eq!(given.config.loss, crate::diffusion::LossKind::Huber);
        assert_eq!(given.notes.len(), 1, "{:?}", given.notes);
        assert_eq!(done.config.betas, None);
        let kept =
            "the run keeps the file's β, so it samples (and trains on) as the weights were trained";
        // denoising-diffusion-pytorch's linear at another T is scaled: said, by how much, and
        // the run keeps the file's β (its tables are theirs, through config.json too).
        let scaled: Vec<f64> = ours.iter().map(|b| b * 5.0).collect();
        put(&mut sd, &scaled);
        let done = import(request(&w, &d.path().join("b"))).unwrap();
        assert!(
            done.notes[1].contains("is not the linear schedule (β off by up to 400% (step ")
                && done.notes[1].contains("scales β by 1000/T")
                && done.notes[1].ends_with(kept),
            "{:?}",
            done.notes
        );
        assert_eq!(done.config.betas.as_deref(), Some(scaled.as_slice()));
        assert_eq!(done.config.tables().unwrap().betas, scaled);
        assert_eq!(done.config.schedule_label(), "imported β");
        let json = serde_json::to_string(&done.config).unwrap();
        let back: TrainConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.tables().unwrap().betas, scaled);
        // Another of ddpm-lab's schedules: kept, and named as the nearest.
        let cosine = ScheduleTables::new(crate::schedule::BetaSchedule::Cosine, ours.len())
            .unwrap()
            .betas;
        put(&mut sd, &cosine);
        let done = import(request(&w, &d.path().join("e"))).unwrap();
        assert!(
            done.notes[1].contains(&format!(
                "{kept}; of ddpm-lab's schedules, cosine is the nearest (within 0"
            )),
            "{:?}",
            done.notes
        );
        assert_eq!(done.config.betas.as_deref(), Some(cosine.as_slice()));
        // Only the last β clipped otherwise (diffusers' cosine): kept too, said to be slight.
        let mut clipped = ours.clone();
        *clipped.last_mut().unwrap() *= 1.0009;
        put(&mut sd, &clipped);
        let done = import(request(&w, &d.path().join("d"))).unwrap();
        assert!(
            done.notes[1].contains(&format!(
                "differs slightly from the linear schedule (β off by 0.09% at step {}",
                ours.len()
            )) && done.notes[1].ends_with(kept),
            "{:?}",
            done.notes
        );
        // β no chain can walk (a 1): said, not kept.
        let mut broken = scaled.clone();
        *broken.last_mut().unwrap() = 1.0;
        put(&mut sd, &broken);
        let done = import(request(&w, &d.path().join("f"))).unwrap();
        assert!(
            done.notes[1].contains("too far for good samples from the schedule the weights learnt"),
            "{:?}",
            done.notes
        );
        assert_eq!(done.config.betas, None);
        // Another number of steps: refused, nothing written.
        put(&mut sd, &ours[..ours.len() / 2]);
        let e = import(request(&w, &d.path().join("c")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "the weights were trained with T = {}",
                ours.len() / 2
            )),
            "{e}"
        );
        assert!(!d.path().join("c").exists());
    }

    #[test]
    fn weights_of_another_model_write_nothing() {
        let d = tempfile::tempdir().unwrap();
        let w = d.path().join("unet.safetensors");
        let wider = UnetConfig { dim: 12, ..tiny() };
        candle_core::safetensors::save(&state_dict(&wider, ""), &w).unwrap();
        let dir = d.path().join("imported");
        let e = import(request(&w, &dir)).unwrap_err().to_string();
        assert!(e.contains("do not fit the model"), "{e}");
        assert!(!dir.exists(), "no run is made");
    }
}
