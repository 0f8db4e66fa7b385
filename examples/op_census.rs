//! How many ops each benchmark workload of the blog UNet runs, by op name: `cargo run --release
//! --example op_census -- [device|cpu] [--json]`.
//!
//! On a GPU each op is a kernel launch or more, and a small kernel costs a few microseconds
//! however little it does, so the count bounds how fast a pass can be. `device` (the default)
//! runs the GPU route's formulations on the CPU (`ops::force_route`), `cpu` the CPU route. The
//! counts come from the vendored candle-core's census (`candle_core::census`): every op that
//! writes a storage counts one, under its name. They do not depend on the batch, so the
//! workloads run at batch 4: a forward pass without gradients, a training step (the second:
//! the first makes Adam's moments), and a DDPM sampling run of 20 steps, divided by 20.
//!
//! Where a composite of candle ops stands in on the CPU for one of ddpm-lab's CUDA ops (the
//! convs and their gradients, the depthwise conv with its bias, GroupNorm's backward pass, the
//! multi-tensor kernels of Adam and the EMA), it counts as that one op (`ops::stand_in`). What
//! still differs from CUDA: the backward passes of the transposed and the depthwise convs'
//! stand-ins are made of candle's ops (a few dozen more per training step than CUDA's two ops
//! each), and each of CUDA's convs is two launches (its column matrix and its product).
//! `scripts/roofline.py` counts PyTorch eager's ops for the same workloads.

use std::collections::BTreeMap;

use candle_core::Device;
use ddpm_lab::bench::ops_by_name as counted;
use ddpm_lab::device::DeviceSpec;
use ddpm_lab::model;
use ddpm_lab::ops::{force_route, Route};
use ddpm_lab::rng::LabRng;
use ddpm_lab::sampler::{self, SamplerKind};
use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};
use ddpm_lab::store::config::TrainConfig;
use ddpm_lab::train::Trainer;

const BATCH: usize = 4;
const SAMPLE_STEPS: usize = 20;
const TIMESTEPS: usize = 200;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let route = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("device", String::as_str);
    force_route(Some(match route {
        "device" => Route::Device,
        "cpu" => Route::Cpu,
        other => anyhow::bail!("route {other}: expected device or cpu"),
    }));
    let config = model::UnetConfig::blog();
    let device = Device::Cpu;

    let (_, varmap) = model::new_trainable(&config, 0, &device)?;
    let unet = model::detached_copy(&varmap, &config, &device)?;
    let mut rng = LabRng::derived(0, 98);
    let x = rng
        .randn(&[BATCH, config.channels, 28, 28], &device)?
        .tanh()?;
    let t = model::timesteps_tensor(&rng.uniform_indices(BATCH, TIMESTEPS), &device)?;
    let forward = counted(|| {
        unet.forward(&x, &t)?;
        Ok(())
    })?;

    let mut trainer = Trainer::new(
        TrainConfig {
            model: config.clone(),
            batch_size: BATCH,
            image_size: 28,
            timesteps: TIMESTEPS,
            device: DeviceSpec::Cpu,
            steps: usize::MAX,
            ..TrainConfig::default()
        },
        None,
    )?;
    let x0 = rng
        .randn(&[BATCH, config.channels, 28, 28], &device)?
        .tanh()?;
    trainer.train_step(&x0, 0)?;
    let train = counted(|| {
        trainer.train_step(&x0, 0)?;
        Ok(())
    })?;

    let tables = ScheduleTables::new(BetaSchedule::Linear, SAMPLE_STEPS)?;
    let sample = counted(|| {
        sampler::sample(
            &unet,
            &tables,
            ddpm_lab::diffusion::Objective::Noise,
            (BATCH, config.channels, 28, 28),
            SamplerKind::Ddpm,
            0,
            &mut |_, _| {},
        )?;
        Ok(())
    })?;
    let per_step: BTreeMap<&str, f64> = sample
        .iter()
        .map(|(&k, &n)| (k, n as f64 / SAMPLE_STEPS as f64))
        .collect();

    let total = |m: &BTreeMap<&str, usize>| m.values().sum::<usize>();
    if json {
        let out = serde_json::json!({
            "route": route,
            "forward": forward,
            "train_step": train,
            "sample_step": per_step,
            "totals": {
                "forward": total(&forward),
                "train_step": total(&train),
                "sample_step": total(&sample) as f64 / SAMPLE_STEPS as f64,
            },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "blog UNet, {route} route: {} ops per forward pass, {} per training step, {:.1} per \
         DDPM sampling step",
        total(&forward),
        total(&train),
        total(&sample) as f64 / SAMPLE_STEPS as f64
    );
    for (name, m) in [("forward", &forward), ("training step", &train)] {
        let mut by_count: Vec<_> = m.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = by_count.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("{name}: {}", list.join(", "));
    }
    Ok(())
}
