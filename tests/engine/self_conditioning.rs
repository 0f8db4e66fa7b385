//! Self-conditioning (seed 002): training on half the steps with the model's own detached x̂₀,
//! sampling that passes the previous step's x̂₀, and resume staying bit-exact with it.

use crate::common::max_abs_diff;

use std::sync::mpsc;

use anyhow::Result;
use candle_core::{Device, Tensor};
use ddpm_lab::diffusion::{p_losses_self_cond, predict_x0_and_noise, LossKind, Objective};
use ddpm_lab::model::{self, timesteps_tensor, UnetConfig};
use ddpm_lab::rng::LabRng;
use ddpm_lab::sampler::{self, SamplerKind};
use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};
use ddpm_lab::train::adam::{Adam, AdamParams};
use ddpm_lab::train::{named_vars, var_tensors, BatchSource, TrainConfig, Trainer};

/// A tiny current UNet with self-conditioning.
fn tiny_sc() -> UnetConfig {
    UnetConfig {
        dim: 8,
        dim_mults: vec![1, 2],
        self_condition: true,
        ..UnetConfig::current()
    }
}

#[test]
fn the_condition_changes_the_output_and_zeros_are_the_default() {
    let (m, _) = model::new_trainable(&tiny_sc(), 4, &Device::Cpu).unwrap();
    let mut rng = LabRng::new(1);
    let x = rng.randn(&[2, 1, 8, 8], &Device::Cpu).unwrap();
    let c = rng.randn(&[2, 1, 8, 8], &Device::Cpu).unwrap();
    let t = timesteps_tensor(&[5, 40], &Device::Cpu).unwrap();
    let plain = m.forward(&x, &t).unwrap();
    let zeros = m
        .forward_cond(&x, &t, Some(&x.zeros_like().unwrap()))
        .unwrap();
    assert_eq!(max_abs_diff(&plain, &zeros), 0.0);
    let cond = m.forward_cond(&x, &t, Some(&c)).unwrap();
    assert!(max_abs_diff(&plain, &cond) > 1e-4);
}

/// DDIM with eta 0 over two steps, written out: the second step must see the first step's
/// clipped x̂₀ (the seed's `self_cond = x_start`).
#[test]
fn ddim_passes_the_previous_x0_to_the_model() {
    let (m, varmap) = model::new_trainable(&tiny_sc(), 4, &Device::Cpu).unwrap();
    let m = model::detached_copy(&varmap, m.config(), &Device::Cpu).unwrap();
    let tables = ScheduleTables::new(BetaSchedule::Cosine, 20).unwrap();
    let kind = SamplerKind::Ddim { steps: 2, eta: 0.0 };
    let d = sampler::sample(
        &m,
        &tables,
        Objective::Noise,
        (2, 1, 8, 8),
        kind,
        5,
        &sampler::KeepFrames::last(),
        &mut |_, _| {},
    )
    .unwrap();
    let pairs = sampler::ddim_timesteps(20, 2);
    assert_eq!(pairs.len(), 2);
    // The sampler's noise stream (`SAMPLE_STREAM` = 7 in sampler.rs).
    let x_t = LabRng::derived(5, 7)
        .randn(&[2, 1, 8, 8], &Device::Cpu)
        .unwrap();
    let step = |x: &Tensor, t: usize, cond: Option<&Tensor>| {
        let ts = vec![t; 2];
        let tt = timesteps_tensor(&ts, &Device::Cpu).unwrap();
        let pred = m.forward_cond(x, &tt, cond).unwrap();
        predict_x0_and_noise(Objective::Noise, &tables, x, &ts, &pred).unwrap()
    };
    let (t1, t2) = (pairs[0].0, pairs[1].0);
    let (x0, eps) = step(&x_t, t1, None);
    let a_next = tables.alphas_cumprod[t2];
    let x = ((&x0 * a_next.sqrt()).unwrap() + (&eps * (1.0 - a_next).sqrt()).unwrap()).unwrap();
    let clipped = x0.clamp(-1f32, 1f32).unwrap();
    let (with, _) = step(&x, t2, Some(&clipped));
    let (without, _) = step(&x, t2, None);
    let e = max_abs_diff(&d.images, &with);
    assert!(
        e <= 1e-5,
        "DDIM's last x̂0 differs from the hand-written one by {e}"
    );
    assert!(
        max_abs_diff(&d.images, &without) > 1e-4,
        "the sampler's result does not depend on x_self_cond"
    );
}

/// DDPM: the same model with the condition's input weights zeroed (blind to x_self_cond)
/// samples differently, so the sampler feeds it something other than zeros.
#[test]
fn ddpm_feeds_the_condition_to_the_model() {
    let (m, varmap) = model::new_trainable(&tiny_sc(), 4, &Device::Cpu).unwrap();
    let tables = ScheduleTables::new(BetaSchedule::Cosine, 10).unwrap();
    let draw = |m: &model::Unet| {
        sampler::sample(
            m,
            &tables,
            Objective::Noise,
            (2, 1, 8, 8),
            SamplerKind::Ddpm,
            5,
            &sampler::KeepFrames::last(),
            &mut |_, _| {},
        )
        .unwrap()
        .images
    };
    let with = draw(&model::detached_copy(&varmap, m.config(), &Device::Cpu).unwrap());
    {
        let data = varmap.data().lock().unwrap();
        let w = &data["init_conv.weight"];
        // Input channel 0 is x_self_cond (the seed's `cat((x_self_cond, x))`).
        let blind = Tensor::cat(
            &[
                &w.narrow(1, 0, 1).unwrap().zeros_like().unwrap(),
                &w.narrow(1, 1, 1).unwrap(),
            ],
            1,
        )
        .unwrap();
        w.set(&blind).unwrap();
    }
    let blind = draw(&model::detached_copy(&varmap, m.config(), &Device::Cpu).unwrap());
    assert!(max_abs_diff(&with, &blind) > 1e-4);
}

#[test]
fn a_self_conditioned_model_overfits_one_batch() {
    let (m, varmap) = model::new_trainable(&tiny_sc(), 2, &Device::Cpu).unwrap();
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
    let mut losses = Vec::new();
    for step in 0..60 {
        // Alternate as the trainer's coin would, so both paths are trained.
        let (loss, _) = p_losses_self_cond(
            &m,
            &tables,
            Objective::Noise,
            LossKind::L2,
            &x0,
            &t,
            &noise,
            step % 2 == 1,
        )
        .unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    let (first, last) = (losses[0].max(losses[1]), losses[58].max(losses[59]));
    assert!(last * 5.0 < first, "loss {first} → {last}, not 5× lower");
}

/// Synthetic images, the same for a given step.
struct Synthetic;

impl BatchSource for Synthetic {
    fn steps_per_epoch(&self) -> usize {
        4
    }
    fn batch(&mut self, step: usize) -> Result<(Tensor, usize)> {
        let mut rng = LabRng::new(20_000 + (step % 4) as u64);
        Ok((rng.randn(&[4, 1, 8, 8], &Device::Cpu)?.tanh()?, step / 4))
    }
}

fn run(trainer: &mut Trainer) {
    let (etx, _erx) = mpsc::channel();
    let (_ctx, crx) = mpsc::channel();
    trainer.run_loop(&mut Synthetic, &etx, &crx).unwrap();
}

#[test]
fn resume_with_self_conditioning_is_bit_exact() {
    let cfg = TrainConfig {
        model: tiny_sc(),
        timesteps: 50,
        batch_size: 4,
        image_size: 8,
        steps: 8,
        seed: 3,
        ema_decay: Some(0.9),
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let mut straight = Trainer::new(cfg.clone(), Some(&a_dir)).unwrap();
    run(&mut straight);
    let mut first = Trainer::new(TrainConfig { steps: 5, ..cfg }, Some(&b_dir)).unwrap();
    run(&mut first);
    drop(first);
    let mut second = Trainer::resume(&b_dir, Some(8), None).unwrap();
    run(&mut second);
    let (a, b) = (var_tensors(straight.varmap()), var_tensors(second.varmap()));
    for (name, t) in &a {
        assert_eq!(
            max_abs_diff(t, &b[name]),
            0.0,
            "{name} differs after resume"
        );
    }
    let m1 = ddpm_lab::store::RunDir::open(&a_dir)
        .unwrap()
        .read_metrics()
        .unwrap();
    let m2 = ddpm_lab::store::RunDir::open(&b_dir)
        .unwrap()
        .read_metrics()
        .unwrap();
    assert_eq!(m1.len(), 8);
    for (x, y) in m1.iter().zip(&m2) {
        assert_eq!(x.loss, y.loss, "loss at step {} differs", x.step);
    }
}

#[test]
fn learned_variance_is_refused_for_training_with_a_reason() {
    let cfg = TrainConfig {
        model: UnetConfig {
            learned_variance: true,
            ..tiny_sc()
        },
        image_size: 8,
        ..TrainConfig::default()
    };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("--learned-variance"), "{e}");
}
