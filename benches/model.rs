//! Whole-model throughput (the same measurement as `ddpm-lab bench`), runnable with
//! `cargo bench --bench model -- [blog|resnet|tiny] [batch] [sample-repeats] [stock]`.

use ddpm_lab::bench::{self, BenchModel, BenchOptions};

fn main() -> anyhow::Result<()> {
    ddpm_lab::ops::configure_cpu_threads();
    // cargo passes `--bench`; keep only our positional arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let model: BenchModel = args
        .first()
        .map(|s| s.parse())
        .transpose()
        .map_err(|e: String| anyhow::anyhow!(e))?
        .unwrap_or(BenchModel::Blog);
    let batch_size = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(128);
    let sample_repeats = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
    if args.get(3).map(String::as_str) == Some("stock") {
        ddpm_lab::ops::set_enabled(false);
    }
    let opts = BenchOptions {
        model,
        batch_size,
        sample_repeats,
        ..BenchOptions::default()
    };
    let report = bench::run(&opts)?;
    println!("{report}");
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
