//! Sampling: Algorithm 2 step by step, frames and x̂0 for every step, DDIM, determinism.

use crate::common;

use candle_core::{Device, Tensor};
use ddpm_lab::diffusion::{posterior_mean, predict_x0_and_noise, Objective};
use ddpm_lab::model::{self, timesteps_tensor, UnetConfig};
use ddpm_lab::rng::LabRng;
use ddpm_lab::sampler::{sample, KeepFrames, SamplerKind};
use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};

fn tiny() -> model::Unet {
    model::new_trainable(&UnetConfig::tiny(), 11, &Device::Cpu)
        .unwrap()
        .0
}

#[test]
fn ddpm_is_algorithm_2() {
    let m = tiny();
    let tables = ScheduleTables::new(BetaSchedule::Linear, 4).unwrap();
    let d = sample(
        &m,
        &tables,
        Objective::Noise,
        (2, 1, 8, 8),
        SamplerKind::Ddpm,
        5,
        &KeepFrames::All,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(d.timesteps, vec![3, 2, 1, 0]);
    assert_eq!(d.frames.len(), 5);
    assert_eq!(d.x0_preds.len(), 5);
    assert_eq!(d.frames[0].len(), 2);

    // The same walk by hand: x_T ~ N(0, I); mean + √σ²_t z for t > 0; the mean alone at t = 0.
    let mut rng = LabRng::derived(5, 7);
    let dev = Device::Cpu;
    let mut x = rng.randn(&[2, 1, 8, 8], &dev).unwrap();
    for t in (0..4).rev() {
        let ts = [t, t];
        let eps = m
            .forward(&x, &timesteps_tensor(&ts, &dev).unwrap())
            .unwrap();
        let mean = posterior_mean(&tables, &x, &ts, &eps).unwrap();
        x = if t == 0 {
            mean
        } else {
            let z = rng.randn(&[2, 1, 8, 8], &dev).unwrap();
            (mean + (z * tables.posterior_variance[t].sqrt()).unwrap()).unwrap()
        };
    }
    assert_eq!(common::max_abs_diff(&d.images, &x), 0.0);
    assert_eq!(
        d.final_images(),
        ddpm_lab::imaging::tensor_to_images(&x).unwrap().as_slice()
    );
}

#[test]
fn x0_predictions_follow_the_objective() {
    let m = tiny();
    let tables = ScheduleTables::new(BetaSchedule::Cosine, 3).unwrap();
    let d = sample(
        &m,
        &tables,
        Objective::V,
        (1, 1, 8, 8),
        SamplerKind::Ddpm,
        1,
        &KeepFrames::All,
        &mut |_, _| {},
    )
    .unwrap();
    // First prediction, from pure noise at t = T − 1.
    let dev = Device::Cpu;
    let x_t = LabRng::derived(1, 7).randn(&[1, 1, 8, 8], &dev).unwrap();
    let pred = m
        .forward(&x_t, &timesteps_tensor(&[2], &dev).unwrap())
        .unwrap();
    let (x0, _) = predict_x0_and_noise(Objective::V, &tables, &x_t, &[2], &pred).unwrap();
    assert_eq!(
        d.x0_preds[0],
        ddpm_lab::imaging::tensor_to_images(&x0).unwrap()
    );
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let m = tiny();
    let tables = ScheduleTables::new(BetaSchedule::Sigmoid, 10).unwrap();
    let run = |seed, kind| {
        sample(
            &m,
            &tables,
            Objective::Noise,
            (2, 1, 8, 8),
            kind,
            seed,
            &KeepFrames::All,
            &mut |_, _| {},
        )
        .unwrap()
        .images
    };
    let d = |a: &Tensor, b: &Tensor| common::max_abs_diff(a, b);
    assert_eq!(
        d(&run(1, SamplerKind::Ddpm), &run(1, SamplerKind::Ddpm)),
        0.0
    );
    assert!(d(&run(1, SamplerKind::Ddpm), &run(2, SamplerKind::Ddpm)) > 0.0);
    let ddim = SamplerKind::Ddim { steps: 4, eta: 0.0 };
    assert_eq!(d(&run(3, ddim), &run(3, ddim)), 0.0);
    let mut calls = Vec::new();
    let out = sample(
        &m,
        &tables,
        Objective::Noise,
        (1, 1, 8, 8),
        ddim,
        3,
        &KeepFrames::All,
        &mut |a, b| calls.push((a, b)),
    )
    .unwrap();
    assert_eq!(calls, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
    assert_eq!(out.timesteps, vec![9, 6, 4, 1]);
    assert_eq!(out.frames.len(), 5);
}

#[test]
fn ddim_with_eta_zero_is_the_deterministic_update() {
    let m = tiny();
    let tables = ScheduleTables::new(BetaSchedule::Linear, 6).unwrap();
    let kind = SamplerKind::Ddim { steps: 2, eta: 0.0 };
    let d = sample(
        &m,
        &tables,
        Objective::Noise,
        (1, 1, 8, 8),
        kind,
        4,
        &KeepFrames::All,
        &mut |_, _| {},
    )
    .unwrap();
    let dev = Device::Cpu;
    let mut x = LabRng::derived(4, 7).randn(&[1, 1, 8, 8], &dev).unwrap();
    for (t, next) in ddpm_lab::sampler::ddim_timesteps(6, 2) {
        let eps = m
            .forward(&x, &timesteps_tensor(&[t], &dev).unwrap())
            .unwrap();
        let (x0, eps) = predict_x0_and_noise(Objective::Noise, &tables, &x, &[t], &eps).unwrap();
        x = if next < 0 {
            x0
        } else {
            let a = tables.alphas_cumprod[next as usize];
            ((x0 * a.sqrt()).unwrap() + (eps * (1.0 - a).sqrt()).unwrap()).unwrap()
        };
    }
    assert!(common::max_abs_diff(&d.images, &x) < 1e-6);
}
