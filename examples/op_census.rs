//! How many ops each benchmark workload of the blog UNet runs, by op name: `cargo run --release
//! --example op_census -- [device|cpu] [--json]`.
//!
//! On a GPU each op is a kernel launch or more, and a small kernel costs a few microseconds
//! however little it does, so the count bounds how fast a pass can be. `device` (the default)
//! runs the GPU route's formulations on the CPU (`ops::force_route`), `cpu` the CPU route. The
//! counts come from the vendored candle-core's census (`candle_core::census`): every op that
//! writes a storage counts one, under its name. They do not depend on the batch, so the
//! workloads are `ddpm-lab bench`'s at batch 4 (`bench::run`, whose report holds them by
//! name): a forward pass without gradients, a training step after the timed ones (Adam's
//! moments made), and a DDPM sampling run's ops divided by its steps.
//!
//! Where a composite of candle ops stands in on the CPU for one of ddpm-lab's CUDA ops (the
//! convs and their gradients, the depthwise conv with its bias, GroupNorm's backward pass, the
//! multi-tensor kernels of Adam and the EMA), it counts as that one op (`ops::stand_in`). What
//! still differs from CUDA: the backward passes of the transposed and the depthwise convs'
//! stand-ins are made of candle's ops (a few dozen more per training step than CUDA's two ops
//! each), and each of CUDA's convs is two launches (its column matrix and its product).
//! `scripts/roofline.py` counts PyTorch eager's ops for the same workloads.

use ddpm_lab::bench::{self, BenchModel, BenchOptions, OpCounts};
use ddpm_lab::ops::{force_route, Route};

/// Images in each workload: the counts do not depend on it.
const BATCH: usize = 4;

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
    let report = bench::run(&BenchOptions {
        model: BenchModel::Blog,
        batch_size: BATCH,
        forward_batch: BATCH,
        sample_batch: BATCH,
        sample_steps: 20,
        warmup: 1,
        repeats: 1,
        sample_repeats: 1,
        ..BenchOptions::default()
    })?;
    let ops = &report.ops_by_name;
    let total = |m: &OpCounts| m.values().sum::<f64>();
    if json {
        let out = serde_json::json!({
            "route": route,
            "forward": ops.forward,
            "train_step": ops.train_step,
            "sample_step": ops.sample_step,
            "totals": {
                "forward": total(&ops.forward),
                "train_step": total(&ops.train_step),
                "sample_step": total(&ops.sample_step),
            },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "blog UNet, {route} route: {} ops per forward pass, {} per training step, {:.1} per \
         DDPM sampling step",
        total(&ops.forward),
        total(&ops.train_step),
        total(&ops.sample_step)
    );
    for (name, m) in [
        ("forward", &ops.forward),
        ("training step", &ops.train_step),
    ] {
        let mut by_count: Vec<_> = m.iter().collect();
        by_count.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = by_count.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("{name}: {}", list.join(", "));
    }
    Ok(())
}
