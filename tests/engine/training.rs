//! Training: gradients, overfitting a batch, deterministic resume, NaN handling.

use crate::common;

use std::sync::mpsc;

use anyhow::Result;
use candle_core::{Device, Tensor};
use ddpm_lab::diffusion::{p_losses, LossKind, Objective};
use ddpm_lab::model::{self, BlockKind, UnetConfig};
use ddpm_lab::rng::LabRng;
use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};
use ddpm_lab::store::{RunDir, METRICS_FILE};
use ddpm_lab::train::adam::{Adam, AdamParams};
use ddpm_lab::train::events::{FinishReason, TrainCommand, TrainEvent};
use ddpm_lab::train::{named_vars, var_tensors, BatchSource, TrainConfig, Trainer};

/// Synthetic images, the same for a given step.
struct Synthetic {
    n: usize,
    size: usize,
    poison_at: Option<usize>,
}

impl BatchSource for Synthetic {
    fn steps_per_epoch(&self) -> usize {
        4
    }
    fn batch(&mut self, step: usize) -> Result<(Tensor, usize)> {
        if Some(step) == self.poison_at {
            let v = vec![f32::NAN; self.n * self.size * self.size];
            return Ok((
                Tensor::from_vec(v, (self.n, 1, self.size, self.size), &Device::Cpu)?,
                step / 4,
            ));
        }
        let mut rng = LabRng::new(10_000 + (step % 4) as u64);
        let x = rng
            .randn(&[self.n, 1, self.size, self.size], &Device::Cpu)?
            .tanh()?;
        Ok((x, step / 4))
    }
}

fn tiny_cfg(block: BlockKind) -> TrainConfig {
    TrainConfig {
        model: UnetConfig {
            block,
            ..UnetConfig::tiny()
        },
        timesteps: 50,
        batch_size: 4,
        image_size: 8,
        steps: 10,
        seed: 3,
        ..TrainConfig::default()
    }
}

#[test]
fn every_parameter_receives_a_gradient() {
    for block in [BlockKind::Convnext, BlockKind::Resnet] {
        let cfg = UnetConfig {
            block,
            ..UnetConfig::tiny()
        };
        let (m, varmap) = model::new_trainable(&cfg, 1, &Device::Cpu).unwrap();
        let tables = ScheduleTables::new(BetaSchedule::Linear, 50).unwrap();
        let mut rng = LabRng::new(5);
        let x0 = rng.randn(&[3, 1, 8, 8], &Device::Cpu).unwrap();
        let noise = rng.randn(&[3, 1, 8, 8], &Device::Cpu).unwrap();
        let (loss, _) = p_losses(
            &m,
            &tables,
            Objective::Noise,
            LossKind::Huber,
            &x0,
            &[1, 20, 49],
            &noise,
        )
        .unwrap();
        let grads = loss.backward().unwrap();
        let vars = named_vars(&varmap);
        assert!(vars.len() > 50, "{block}: only {} variables", vars.len());
        for (name, var) in vars {
            let g = grads
                .get(&var)
                .unwrap_or_else(|| panic!("{block}: {name} has no gradient"));
            let s = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                s > 0.0 && s.is_finite(),
                "{block}: gradient of {name} is {s}"
            );
        }
    }
}

#[test]
fn fresh_blog_model_starts_near_the_blogs_first_loss() {
    // The blog prints Huber loss ≈ 0.46 at step 0; candle's default init would give 2–5.
    let (m, _) = model::new_trainable(&UnetConfig::blog(), 0, &Device::Cpu).unwrap();
    let tables = ScheduleTables::new(BetaSchedule::Linear, 200).unwrap();
    let mut rng = LabRng::new(1);
    let x0 = rng
        .randn(&[8, 1, 28, 28], &Device::Cpu)
        .unwrap()
        .tanh()
        .unwrap();
    let noise = rng.randn(&[8, 1, 28, 28], &Device::Cpu).unwrap();
    let t = rng.uniform_indices(8, 200);
    let (loss, _) = p_losses(
        &m,
        &tables,
        Objective::Noise,
        LossKind::Huber,
        &x0,
        &t,
        &noise,
    )
    .unwrap();
    let l = loss.to_scalar::<f32>().unwrap();
    assert!((0.35..0.6).contains(&l), "first Huber loss {l}");
}

#[test]
fn tiny_model_overfits_one_batch() {
    for objective in [Objective::Noise, Objective::V] {
        let (m, varmap) = model::new_trainable(&UnetConfig::tiny(), 2, &Device::Cpu).unwrap();
        let tables = ScheduleTables::new(BetaSchedule::Cosine, 50).unwrap();
        let mut rng = LabRng::new(9);
        let x0 = rng
            .randn(&[4, 1, 8, 8], &Device::Cpu)
            .unwrap()
            .tanh()
            .unwrap();
        let noise = rng.randn(&[4, 1, 8, 8], &Device::Cpu).unwrap();
        let t = [3, 17, 30, 44];
        let mut opt = Adam::new(
            named_vars(&varmap),
            AdamParams {
                lr: 3e-3,
                ..AdamParams::default()
            },
        )
        .unwrap();
        let mut first = None;
        let mut last = 0.0;
        for _ in 0..60 {
            let (loss, _) =
                p_losses(&m, &tables, objective, LossKind::L2, &x0, &t, &noise).unwrap();
            last = loss.to_scalar::<f32>().unwrap();
            first.get_or_insert(last);
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        let first = first.unwrap();
        assert!(
            last * 10.0 < first,
            "{objective}: loss {first} → {last}, not 10× lower"
        );
    }
}

fn run_steps(trainer: &mut Trainer, source: &mut Synthetic) -> Vec<TrainEvent> {
    let (etx, erx) = mpsc::channel();
    let (_ctx, crx) = mpsc::channel();
    trainer.run_loop(source, &etx, &crx).unwrap();
    drop(etx);
    erx.iter().collect()
}

#[test]
fn resume_continues_exactly_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let straight_dir = dir.path().join("straight");
    let split_dir = dir.path().join("split");
    let mut src = Synthetic {
        n: 4,
        size: 8,
        poison_at: None,
    };

    let mut straight = Trainer::new(tiny_cfg(BlockKind::Convnext), Some(&straight_dir)).unwrap();
    run_steps(&mut straight, &mut src);

    let mut first = Trainer::new(
        TrainConfig {
            steps: 6,
            ..tiny_cfg(BlockKind::Convnext)
        },
        Some(&split_dir),
    )
    .unwrap();
    run_steps(&mut first, &mut src);
    drop(first);
    // The loss log as the checkpoint left it: nothing said of it.
    let log = split_dir.join(ddpm_lab::store::METRICS_FILE);
    let whole = std::fs::read_to_string(&log).unwrap();
    let missing = |t: &Trainer| t.notices().iter().find(|n| n.contains("missing")).cloned();
    assert_eq!(
        missing(&Trainer::resume(&split_dir, Some(10), None).unwrap()),
        None
    );
    // Cut by hand, or deleted: the gap the curve jumps is said.
    let two: String = whole.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, two).unwrap();
    let said = missing(&Trainer::resume(&split_dir, Some(10), None).unwrap()).unwrap();
    assert!(
        said.contains("ends at step 2 and the checkpoint is at step 6: steps 3–6"),
        "{said}"
    );
    std::fs::remove_file(&log).unwrap();
    let said = missing(&Trainer::resume(&split_dir, Some(10), None).unwrap()).unwrap();
    assert!(
        said.contains("is empty") && said.contains("steps 1–6"),
        "{said}"
    );
    std::fs::write(&log, whole).unwrap();
    let mut second = Trainer::resume(&split_dir, Some(10), None).unwrap();
    assert_eq!(second.step(), 6);
    let events = run_steps(&mut second, &mut src);
    assert!(matches!(
        events[0],
        TrainEvent::Started {
            start_step: 6,
            total_steps: 10,
            ..
        }
    ));

    let a = var_tensors(straight.varmap());
    let b = var_tensors(second.varmap());
    for (name, t) in &a {
        let e = common::max_abs_diff(t, &b[name]);
        assert!(e == 0.0, "{name} differs by {e} after resume");
    }
    let m1 = RunDir::open(&straight_dir).unwrap().read_metrics().unwrap();
    let m2 = RunDir::open(&split_dir).unwrap().read_metrics().unwrap();
    assert_eq!(
        m2.iter().map(|s| s.step).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    for (x, y) in m1.iter().zip(&m2) {
        assert_eq!(x.loss, y.loss, "loss at step {} differs", x.step);
    }
    assert!(split_dir.join(METRICS_FILE).exists());
}

/// The step and reason of a session's `Finished` event (its last).
fn finished(events: &[TrainEvent]) -> (usize, FinishReason) {
    match events.last() {
        Some(TrainEvent::Finished { step, why, .. }) => (*step, *why),
        other => panic!("the last event is not Finished: {other:?}"),
    }
}

#[test]
fn a_session_says_why_it_ended() {
    let mut src = Synthetic {
        n: 4,
        size: 8,
        poison_at: None,
    };
    let cfg = TrainConfig {
        steps: 3,
        ..tiny_cfg(BlockKind::Resnet)
    };
    // All its steps.
    let mut t = Trainer::new(cfg.clone(), None).unwrap();
    assert_eq!(
        finished(&run_steps(&mut t, &mut src)),
        (3, FinishReason::Steps)
    );
    // A time limit already spent: ended before its first step.
    let spent = TrainConfig {
        time_limit_s: Some(0.0),
        ..cfg.clone()
    };
    let mut t = Trainer::new(spent, None).unwrap();
    assert_eq!(
        finished(&run_steps(&mut t, &mut src)),
        (0, FinishReason::TimeLimit)
    );
    // A budget spent between previews ends with one of the step it stopped at (previews
    // every 100 steps here: none was due at step 1). The first batch takes longer than the
    // budget, so the session stops before its second step.
    struct SlowFirst(Synthetic);
    impl BatchSource for SlowFirst {
        fn steps_per_epoch(&self) -> usize {
            self.0.steps_per_epoch()
        }
        fn batch(&mut self, step: usize) -> Result<(Tensor, usize)> {
            if step == 0 {
                std::thread::sleep(std::time::Duration::from_millis(600));
            }
            self.0.batch(step)
        }
    }
    let mut t = Trainer::new(
        TrainConfig {
            steps: 50,
            preview_every: 100,
            preview_count: 2,
            time_limit_s: Some(0.3),
            ..cfg.clone()
        },
        None,
    )
    .unwrap();
    let (etx, erx) = mpsc::channel();
    let (_ctx, crx) = mpsc::channel();
    let mut slow = SlowFirst(Synthetic {
        n: 4,
        size: 8,
        poison_at: None,
    });
    t.run_loop(&mut slow, &etx, &crx).unwrap();
    drop(etx);
    let events: Vec<TrainEvent> = erx.iter().collect();
    assert_eq!(finished(&events), (1, FinishReason::TimeLimit));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TrainEvent::Preview { step: 1, images } if images.len() == 2)),
        "{events:?}"
    );
    // Asked to stop before it began.
    let mut t = Trainer::new(cfg, None).unwrap();
    let (etx, erx) = mpsc::channel();
    let (ctx, crx) = mpsc::channel();
    ctx.send(TrainCommand::Stop).unwrap();
    t.run_loop(&mut src, &etx, &crx).unwrap();
    drop(etx);
    let events: Vec<TrainEvent> = erx.iter().collect();
    assert_eq!(finished(&events), (0, FinishReason::Stopped));
}

#[test]
fn previews_are_kept_in_the_run_and_a_resume_drops_the_later_ones() {
    use ddpm_lab::store::previews;
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let cfg = TrainConfig {
        steps: 4,
        preview_every: 2,
        preview_count: 3,
        preview_steps: 2,
        checkpoint_every: 2,
        ..tiny_cfg(BlockKind::Resnet)
    };
    let mut src = Synthetic {
        n: 4,
        size: 8,
        poison_at: None,
    };
    let mut t = Trainer::new(cfg, Some(&run)).unwrap();
    let shown: Vec<(usize, Vec<_>)> = run_steps(&mut t, &mut src)
        .into_iter()
        .filter_map(|e| match e {
            TrainEvent::Preview { step, images } => Some((step, images)),
            _ => None,
        })
        .collect();
    drop(t);
    assert_eq!(shown.iter().map(|p| p.0).collect::<Vec<_>>(), [2, 4]);
    for (step, _) in &shown {
        assert!(
            previews::preview_path(&run, *step, 3).is_file(),
            "step {step}"
        );
    }
    // The newest, read back, is the preview the lab was shown.
    assert_eq!(previews::latest_preview(&run, 1).as_ref(), shown.last());
    // Going back to step 2 drops step 4's preview with its logs.
    let older = run.join("checkpoints/step-000002");
    drop(Trainer::resume(&older, None, None).unwrap());
    assert_eq!(previews::latest_preview(&run, 1).map(|p| p.0), Some(2));
}

#[test]
fn nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let cfg = TrainConfig {
        checkpoint_every: 3,
        ..tiny_cfg(BlockKind::Resnet)
    };
    let mut trainer = Trainer::new(cfg, Some(&run)).unwrap();
    let mut src = Synthetic {
        n: 4,
        size: 8,
        poison_at: Some(4),
    };
    let (etx, _erx) = mpsc::channel();
    let (_ctx, crx) = mpsc::channel();
    let err = trainer
        .run_loop(&mut src, &etx, &crx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("NaN") && err.contains("step 5"), "{err}");
    assert!(err.contains("last good checkpoint (step 3)"), "{err}");
    // One writer per run: the failed trainer lets go of the run before it is resumed.
    drop(trainer);
    let resumed = Trainer::resume(&run, None, None).unwrap();
    assert_eq!(resumed.step(), 3);
    for (name, t) in var_tensors(resumed.varmap()) {
        let s = t.sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(s.is_finite(), "{name} is not finite in the kept checkpoint");
    }
    // On the worker, as `train` and the lab run it, the message names the step that
    // diverged only (it was `at step 4: loss became NaN at step 5`).
    let handle = ddpm_lab::train::spawn_training(|| {
        let trainer = Trainer::new(tiny_cfg(BlockKind::Resnet), None)?;
        let src: Box<dyn BatchSource> = Box::new(Synthetic {
            n: 4,
            size: 8,
            poison_at: Some(4),
        });
        Ok((trainer, src))
    });
    let message = handle
        .events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Failed { message, .. } => Some(message),
            _ => None,
        })
        .unwrap();
    assert!(
        message.starts_with("loss became NaN at step 5"),
        "{message}"
    );
    assert!(!message.contains("at step 4"), "{message}");
}

/// The steps at which a run of `cfg` wrote checkpoints.
fn checkpointed_steps(cfg: TrainConfig) -> Vec<usize> {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::new(cfg, Some(&dir.path().join("run"))).unwrap();
    let mut src = Synthetic {
        n: 4,
        size: 8,
        poison_at: None,
    };
    run_steps(&mut trainer, &mut src)
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Checkpointed { step, .. } => Some(*step),
            _ => None,
        })
        .collect()
}

#[test]
fn checkpoints_follow_training_time_as_well_as_steps() {
    let base = TrainConfig {
        steps: 4,
        ..tiny_cfg(BlockKind::Resnet)
    };
    // Every step takes longer than a nanosecond: a checkpoint after each.
    let each = TrainConfig {
        checkpoint_interval_s: Some(1e-9),
        ..base.clone()
    };
    assert_eq!(checkpointed_steps(each), vec![1, 2, 3, 4]);
    // An interval never reached leaves the steps' checkpoints and the final one.
    let never = TrainConfig {
        checkpoint_interval_s: Some(1e6),
        checkpoint_every: 3,
        ..base.clone()
    };
    assert_eq!(checkpointed_steps(never), vec![3, 4]);
    // Asked twice at one step (the time limit right after a timed checkpoint, `c` twice),
    // a checkpoint is written once: the two kept stay two different steps.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut trainer = Trainer::new(base.clone(), Some(&run)).unwrap();
    let first = trainer.checkpoint().unwrap().unwrap();
    assert_eq!(trainer.checkpoint().unwrap().unwrap(), first);
    let folders = std::fs::read_dir(run.join("checkpoints")).unwrap().count();
    assert_eq!(folders, 1, "one checkpoint folder for one step");
    // Stopped at the step of its newest checkpoint (here the one it resumed from; a stop
    // right after a scheduled one alike), a run writes and announces no second one.
    drop(trainer);
    let mut resumed = Trainer::resume(&run, Some(4), None).unwrap();
    let (etx, erx) = mpsc::channel();
    let (ctx, crx) = mpsc::channel();
    ctx.send(TrainCommand::Stop).unwrap();
    let mut src = Synthetic {
        n: 4,
        size: 8,
        poison_at: None,
    };
    resumed.run_loop(&mut src, &etx, &crx).unwrap();
    drop(etx);
    let events: Vec<TrainEvent> = erx.iter().collect();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TrainEvent::Checkpointed { .. })),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TrainEvent::Finished { step: 0, .. })),
        "{events:?}"
    );
    let bad = TrainConfig {
        checkpoint_interval_s: Some(0.0),
        ..base
    };
    let err = bad.validate_hyperparameters().unwrap_err().to_string();
    assert!(
        err.contains("--checkpoint-interval must be a positive time"),
        "{err}"
    );
}

#[test]
fn warmup_ema_and_gradient_clipping() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let cfg = TrainConfig {
        steps: 6,
        warmup_steps: 4,
        ema_decay: Some(0.9),
        grad_clip: Some(0.05),
        ..tiny_cfg(BlockKind::Convnext)
    };
    let mut trainer = Trainer::new(cfg, Some(&run)).unwrap();
    let events = run_steps(
        &mut trainer,
        &mut Synthetic {
            n: 4,
            size: 8,
            poison_at: None,
        },
    );
    let lrs: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Step(s) => Some(s.lr),
            _ => None,
        })
        .collect();
    let expect = [0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3];
    for (a, b) in lrs.iter().zip(expect) {
        assert!((a - b).abs() < 1e-12, "lr {lrs:?}");
    }
    let ck = ddpm_lab::store::RunDir::open(&run)
        .unwrap()
        .require_checkpoint()
        .unwrap();
    assert!(ck.file("ema.safetensors").is_file());
    let loaded = ddpm_lab::store::load_checkpoint(&run, &Device::Cpu, true).unwrap();
    assert!(loaded.ema, "sampling prefers the EMA weights");
    let raw = ddpm_lab::store::load_checkpoint(&run, &Device::Cpu, false).unwrap();
    assert!(!raw.ema);
    // A weights file named explicitly is what it is, whatever the preference.
    let named = |file: &str, prefer_ema| {
        ddpm_lab::store::load_checkpoint(&ck.file(file), &Device::Cpu, prefer_ema)
            .unwrap()
            .ema
    };
    assert!(named("ema.safetensors", false));
    assert!(!named("model.safetensors", true));
    let x = LabRng::new(3).randn(&[1, 1, 8, 8], &Device::Cpu).unwrap();
    let t = model::timesteps_tensor(&[5], &Device::Cpu).unwrap();
    let d = common::max_abs_diff(
        &loaded.model.forward(&x, &t).unwrap(),
        &raw.model.forward(&x, &t).unwrap(),
    );
    assert!(d > 0.0, "EMA weights differ from the raw weights");
}

#[test]
fn clipping_bounds_the_global_gradient_norm() {
    let (m, varmap) = model::new_trainable(&UnetConfig::tiny(), 1, &Device::Cpu).unwrap();
    let tables = ScheduleTables::new(BetaSchedule::Linear, 50).unwrap();
    let mut rng = LabRng::new(5);
    let x0 = rng.randn(&[2, 1, 8, 8], &Device::Cpu).unwrap();
    let noise = rng.randn(&[2, 1, 8, 8], &Device::Cpu).unwrap();
    let (loss, _) = p_losses(
        &m,
        &tables,
        Objective::Noise,
        LossKind::L2,
        &x0,
        &[3, 30],
        &noise,
    )
    .unwrap();
    let mut grads = loss.backward().unwrap();
    let before = ddpm_lab::train::clip_grad_norm(&varmap, &mut grads, 0.01).unwrap();
    assert!(
        before > 0.01,
        "the test needs a norm above the limit, got {before}"
    );
    let after = ddpm_lab::train::clip_grad_norm(&varmap, &mut grads, 1e9).unwrap();
    assert!((after - 0.01).abs() < 1e-4, "norm after clipping {after}");
}

/// Weights changed after their checkpoint wrote them, at the same length and with finite
/// values (a bit flipped on disk, a copy gone wrong), are refused by sampling and resuming
/// alike: the digest kept in the checkpoint's state.json no longer matches. Before digests,
/// such weights sampled black images and resumed "from the last good checkpoint".
#[test]
fn weights_changed_after_their_checkpoint_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut t = Trainer::new(tiny_cfg(BlockKind::Resnet), Some(&run)).unwrap();
    let ck = t.checkpoint().unwrap().unwrap();
    drop(t);
    let weights = ck.join(ddpm_lab::store::WEIGHTS_FILE);
    // Both load while the file is what was written.
    ddpm_lab::store::checkpoint::load_checkpoint(&run, &Device::Cpu, true).unwrap();
    drop(Trainer::resume(&run, None, None).unwrap());
    // Every value after the header 1000.0: finite, the same length.
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for chunk in bytes[8 + n..].chunks_exact_mut(4) {
        chunk.copy_from_slice(&1000.0f32.to_le_bytes());
    }
    std::fs::write(&weights, &bytes).unwrap();
    let refused = |e: anyhow::Error| format!("{e:#}");
    let sampling = refused(
        ddpm_lab::store::checkpoint::load_checkpoint(&run, &Device::Cpu, false)
            .err()
            .expect("refused"),
    );
    let resuming = refused(Trainer::resume(&run, None, None).err().expect("refused"));
    for said in [sampling, resuming] {
        assert!(
            said.contains("is damaged: it is not the file its checkpoint wrote"),
            "{said}"
        );
    }
}
