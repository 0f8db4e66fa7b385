//! Throughput benchmarks of the engine: one training step (forward + backward + Adam), one
//! no-gradient forward pass and a DDPM sampling run, each timed as the median of several runs
//! after warm-up, plus the process's peak resident memory and, on a GPU, each workload's peak
//! GPU memory. `ddpm-lab bench` prints them.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::device::DeviceSpec;
use crate::diffusion::Objective;
use crate::model::{self, BlockKind, UnetConfig};
use crate::rng::LabRng;
use crate::sampler::{self, SamplerKind};
use crate::schedule::{BetaSchedule, ScheduleTables};
use crate::train::{TrainConfig, Trainer};

/// The model a benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchModel {
    /// The blog's UNet (dim 28, mults 1,2,4, ConvNeXt) on 28×28×1 images.
    Blog,
    /// The same UNet with ResNet blocks (GroupNorm with 4 groups).
    Resnet,
    /// The `quick` preset's UNet (ResNet blocks, attention in the middle only) on 28×28×1
    /// images: the lab's CPU default.
    Quick,
    /// Today's blog UNet (seed 001: dim 28, mults 1,2,4, 4 groups, 1×1 init conv) on 28×28×1.
    Current,
    /// lucidrains' released UNet (denoising-diffusion-pytorch 2.x: dim 28, mults 1,2,4) on
    /// 28×28×1.
    Lucidrains,
    /// A tiny UNet on 8×8 images: a smoke test of the benchmark, not a figure for 28×28 data.
    Tiny,
}

impl BenchModel {
    /// The UNet configuration.
    pub fn unet_config(self) -> UnetConfig {
        match self {
            BenchModel::Blog => UnetConfig::blog(),
            BenchModel::Resnet => UnetConfig {
                block: BlockKind::Resnet,
                resnet_block_groups: 4,
                ..UnetConfig::blog()
            },
            BenchModel::Quick => crate::presets::Preset::Quick.unet(),
            BenchModel::Current => UnetConfig::current(),
            BenchModel::Lucidrains => UnetConfig::lucidrains(),
            BenchModel::Tiny => UnetConfig::tiny(),
        }
    }

    /// Side of the square images.
    pub fn image_size(self) -> usize {
        match self {
            BenchModel::Blog
            | BenchModel::Resnet
            | BenchModel::Quick
            | BenchModel::Current
            | BenchModel::Lucidrains => 28,
            BenchModel::Tiny => 8,
        }
    }
}

impl fmt::Display for BenchModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BenchModel::Blog => "blog",
            BenchModel::Resnet => "resnet",
            BenchModel::Quick => "quick",
            BenchModel::Current => "current",
            BenchModel::Lucidrains => "lucidrains",
            BenchModel::Tiny => "tiny",
        })
    }
}

impl FromStr for BenchModel {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "blog" => Ok(BenchModel::Blog),
            "resnet" => Ok(BenchModel::Resnet),
            "quick" => Ok(BenchModel::Quick),
            "current" => Ok(BenchModel::Current),
            "lucidrains" => Ok(BenchModel::Lucidrains),
            "tiny" => Ok(BenchModel::Tiny),
            o => Err(format!(
                "unknown bench config '{o}' (expected blog, resnet, quick, current, lucidrains or tiny)"
            )),
        }
    }
}

/// What to run and how often.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchOptions {
    /// The model.
    pub model: BenchModel,
    /// Images per training step.
    pub batch_size: usize,
    /// Images per forward pass.
    pub forward_batch: usize,
    /// Images per sampling run.
    pub sample_batch: usize,
    /// Diffusion steps of the sampling run (DDPM, every step).
    pub sample_steps: usize,
    /// Untimed runs before timing (training steps and forward passes).
    pub warmup: usize,
    /// Timed training steps and forward passes (the median is reported).
    pub repeats: usize,
    /// Timed sampling runs (0 skips sampling).
    pub sample_repeats: usize,
    /// Device.
    pub device: DeviceSpec,
    /// Seed of weights and data.
    pub seed: u64,
    /// Let CUDA's float32 matrix products (and so convolutions) use TF32 tensor cores.
    pub tf32: bool,
    /// Time the training step.
    pub train: bool,
    /// Time the forward pass.
    pub forward: bool,
}

impl Default for BenchOptions {
    /// The workloads of the performance issue: training at batch 128, forward at 64, 200-step
    /// sampling of 16 images, on the CPU.
    fn default() -> Self {
        Self {
            model: BenchModel::Blog,
            batch_size: 128,
            forward_batch: 64,
            sample_batch: 16,
            sample_steps: 200,
            warmup: 1,
            repeats: 3,
            sample_repeats: 1,
            device: DeviceSpec::Cpu,
            seed: 0,
            tf32: false,
            train: true,
            forward: true,
        }
    }
}

impl BenchOptions {
    /// Rejects sizes that cannot run.
    pub fn validate(&self) -> Result<()> {
        for (flag, n) in [
            ("--batch-size", self.batch_size),
            ("--forward-batch", self.forward_batch),
            ("--sample-batch", self.sample_batch),
        ] {
            if n == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        if self.repeats == 0 {
            bail!("--repeats must be at least 1");
        }
        if self.sample_steps < 2 {
            bail!("--sample-steps must be at least 2");
        }
        // Refused in one line before allocating (an allocation failure aborts the process).
        let train = TrainConfig {
            model: self.model.unet_config(),
            batch_size: self.batch_size,
            image_size: self.model.image_size(),
            timesteps: self.sample_steps,
            device: self.device,
            ema_decay: None,
            preview_every: 0,
            ..TrainConfig::default()
        };
        let max_steps = crate::store::config::MAX_TIMESTEPS;
        if self.sample_steps > max_steps {
            bail!(
                "--sample-steps must be at most {max_steps}, got {}",
                self.sample_steps
            );
        }
        let on_cpu = self.device == DeviceSpec::Cpu;
        if self.train {
            train.validate_limits()?;
            crate::runs::budget::check_training(&train)?;
        }
        let size = self.model.image_size();
        for (n, on) in [
            (self.forward_batch, self.forward),
            (self.sample_batch, self.sample_repeats > 0),
        ] {
            if on {
                crate::runs::budget::check_inference(&train.model, size, n, on_cpu)?;
            }
        }
        if !self.train && !self.forward && self.sample_repeats == 0 {
            bail!("nothing to time: training, the forward pass and sampling are all skipped");
        }
        crate::device::check_tf32(self.device, self.tf32)
    }
}

/// ddpm-lab's own CUDA kernels that run on `device` (none off CUDA, or with the custom ops off).
fn cuda_kernels(device: DeviceSpec) -> Vec<String> {
    #[cfg(feature = "cuda")]
    if matches!(device, DeviceSpec::Cuda(_)) && crate::ops::enabled() {
        return crate::ops::cuda::enabled_kernels()
            .iter()
            .map(|k| k.to_string())
            .collect();
    }
    let _ = device;
    Vec::new()
}

/// The CUDA conv's algorithm, where ddpm-lab's CUDA conv is among the `cuda_kernels` that run.
fn conv_algo(cuda_kernels: &[String]) -> Option<String> {
    cuda_kernels.iter().any(|k| k == "conv").then(|| {
        crate::ops::implicit_conv::ConvAlgo::current()
            .name()
            .to_string()
    })
}

/// The version of the cuDNN that ddpm-lab's CUDA conv can use (`DDPM_LAB_CONV_ALGO=cudnn`,
/// or among `auto`'s candidates), where that conv runs (`cuda_kernels` holds `conv`) and cuDNN
/// loads.
fn cudnn_version(cuda_kernels: &[String]) -> Option<String> {
    #[cfg(feature = "cuda")]
    if cuda_kernels.iter().any(|k| k == "conv") {
        return crate::ops::cuda::cudnn::version();
    }
    let _ = cuda_kernels;
    None
}

/// Which of cuDNN's algorithms ran for each conv shape, with `DDPM_LAB_CONV_ALGO=cudnn` where
/// ddpm-lab's CUDA conv runs (with `auto`, its timings name them; the records there are the
/// candidates timed).
fn cudnn_algos(cuda_kernels: &[String]) -> Vec<crate::ops::conv_tuner::CudnnRecord> {
    use crate::ops::implicit_conv::ConvAlgo;
    if cuda_kernels.iter().any(|k| k == "conv") && ConvAlgo::current() == ConvAlgo::Cudnn {
        crate::ops::conv_tuner::cudnn_records()
    } else {
        Vec::new()
    }
}

/// Measured figures (times in seconds, medians over the timed runs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Model name (`blog`, `resnet`, `quick`, `current`, `tiny`).
    pub config: String,
    /// Device name.
    pub device: String,
    /// What the device is ("NVIDIA H200 · 140 GiB"; GPUs only).
    pub device_name: Option<String>,
    /// Whether float32 products on CUDA used TF32.
    pub tf32: bool,
    /// Whether ddpm-lab's own ops were on (the CPU kernels; on a GPU, its convolutions).
    pub custom_ops: bool,
    /// ddpm-lab's CUDA kernels that ran (`DDPM_LAB_CUDA_KERNELS`; empty off CUDA).
    pub cuda_kernels: Vec<String>,
    /// How the CUDA device was set up (`DDPM_LAB_CUDA_STREAM`, `DDPM_LAB_CUDA_POOL`: e.g.
    /// `stream=shared pool=keep`; `None` off CUDA).
    pub cuda_setup: Option<String>,
    /// The CUDA conv's algorithm as set (`DDPM_LAB_CONV_ALGO`: `im2col`, `auto`, `cudnn` or an
    /// `implicit` variant; `None` where ddpm-lab's CUDA conv does not run). The setting: 1×1
    /// and 7×7 convs have no implicit kernel, and a stride-2 conv's input gradient stays
    /// im2col's col2im unless the algorithm is `cudnn` (or `auto` chose it).
    pub conv_algo: Option<String>,
    /// The cuDNN that the CUDA conv's `cudnn` algorithm would run (`9.28.1`), if it loads
    /// (`None` too where ddpm-lab's CUDA conv does not run).
    pub cudnn: Option<String>,
    /// With `auto`: each conv shape and product the process timed, every candidate's
    /// milliseconds per run and the one kept (empty otherwise).
    pub conv_tuning: Vec<crate::ops::conv_tuner::TuneRecord>,
    /// With `cudnn`: which of cuDNN's algorithms ran for each conv shape and product, by
    /// cuDNN's number (empty otherwise; with `auto`, `conv_tuning` names them).
    pub cudnn_algos: Vec<crate::ops::conv_tuner::CudnnRecord>,
    /// Worker threads of the CPU kernels.
    pub threads: usize,
    /// Trainable parameters.
    pub params: usize,
    /// Side of the (square) images every workload runs on (`tiny`'s are 8×8).
    pub image_size: usize,
    /// Images per training step.
    pub batch_size: usize,
    /// Median seconds per training step (`None` when skipped).
    pub train_step_seconds: Option<f64>,
    /// `batch_size / train_step_seconds`.
    pub train_images_per_s: Option<f64>,
    /// Every timed training step.
    pub train_runs: Vec<f64>,
    /// Median seconds until the host had queued a training step (see [`Runs::queued`]; the
    /// step reads its loss from the device once, after queuing the backward pass, so this
    /// includes the wait for the forward and backward passes: no launch-bound reading).
    pub train_queued_seconds: Option<f64>,
    /// Images per forward pass.
    pub forward_batch: usize,
    /// Median seconds per forward pass (`None` when skipped).
    pub forward_seconds: Option<f64>,
    /// `forward_batch / forward_seconds`.
    pub forward_images_per_s: Option<f64>,
    /// Every timed forward pass.
    pub forward_runs: Vec<f64>,
    /// Median seconds until the host had queued a forward pass ([`Runs::queued`]): close to
    /// `forward_seconds` on a GPU, the host's kernel launches were the bottleneck.
    pub forward_queued_seconds: Option<f64>,
    /// Images per sampling run.
    pub sample_batch: usize,
    /// Denoising steps per sampling run.
    pub sample_steps: usize,
    /// Median seconds per sampling run (`None` when skipped).
    pub sample_seconds: Option<f64>,
    /// Median seconds until the host had queued a sampling run ([`Runs::queued`]; it waits for
    /// the device whenever it copies the steps' images, the last time at its end: no
    /// launch-bound reading).
    pub sample_queued_seconds: Option<f64>,
    /// Peak resident memory of the process so far, in MiB (Linux only).
    pub peak_rss_mb: Option<f64>,
    /// The GPU's peak used memory (device-wide, as `nvidia-smi` shows it, the CUDA context
    /// included) while the training steps ran, in MiB; `None` off CUDA or when skipped.
    pub peak_gpu_mb_train: Option<f64>,
    /// Likewise while the forward passes ran.
    pub peak_gpu_mb_forward: Option<f64>,
    /// Likewise while sampling ran.
    pub peak_gpu_mb_sample: Option<f64>,
    /// The ops a training step runs (`candle_core::census`; on a GPU each is one kernel launch
    /// or more; PyTorch eager runs 504 for the blog UNet's step: `scripts/roofline.py`).
    pub ops_train_step: Option<f64>,
    /// The ops a forward pass runs (PyTorch eager: 218, the blog UNet).
    pub ops_forward: Option<f64>,
    /// The ops a DDPM sampling step runs, its run's setup shared out over its steps (PyTorch
    /// eager: 231, the blog UNet).
    pub ops_sample_step: Option<f64>,
    /// The same three counts by op name (`examples/op_census` prints them).
    pub ops_by_name: OpsByName,
}

/// Ops by name (`candle_core::census`) per run of each workload; empty for a workload not run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpsByName {
    /// A training step's.
    pub train_step: OpCounts,
    /// A forward pass's.
    pub forward: OpCounts,
    /// A DDPM sampling step's (its run's, shared out over the steps).
    pub sample_step: OpCounts,
}

/// How often each op ran, by name.
pub type OpCounts = std::collections::BTreeMap<&'static str, f64>;

/// The ops of `counts`, summed (`None` for a workload not run).
fn total(counts: &Option<OpCounts>) -> Option<f64> {
    counts.as_ref().map(|c| c.values().sum())
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "config {} on {}{}{} ({}×{} images, {} params, custom CPU ops {}, {} threads)",
            self.config,
            self.device,
            self.device_name
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            if self.tf32 { ", TF32" } else { "" },
            self.image_size,
            self.image_size,
            self.params,
            if self.custom_ops { "on" } else { "off" },
            self.threads
        )?;
        // One line per timed workload: seconds per run and images per second.
        let timed =
            |f: &mut fmt::Formatter<'_>, name: &str, batch: usize, secs: Option<f64>| match secs {
                Some(s) => writeln!(
                    f,
                    "{name:<12} batch {batch:>4}: {s:>8.3} s  {:>8.1} img/s",
                    batch as f64 / s.max(1e-12)
                ),
                None => writeln!(f, "{name}: skipped"),
            };
        if !self.cuda_kernels.is_empty() {
            writeln!(f, "CUDA kernels: {}", self.cuda_kernels.join(", "))?;
        }
        if let Some(setup) = &self.cuda_setup {
            writeln!(f, "CUDA device: {setup}")?;
        }
        if let Some(algo) = &self.conv_algo {
            write!(f, "CUDA conv: {algo}")?;
            if !self.conv_tuning.is_empty() {
                let chosen = crate::ops::conv_tuner::chosen_counts(&self.conv_tuning);
                let chosen: Vec<String> = chosen.iter().map(|(a, n)| format!("{n} {a}")).collect();
                write!(
                    f,
                    " ({} shapes timed, kept: {})",
                    self.conv_tuning.len(),
                    chosen.join(", ")
                )?;
            }
            if let Some(v) = &self.cudnn {
                write!(f, "; cuDNN {v}")?;
            }
            writeln!(f)?;
        }
        timed(f, "train step", self.batch_size, self.train_step_seconds)?;
        timed(f, "forward", self.forward_batch, self.forward_seconds)?;
        match self.sample_seconds {
            Some(s) => writeln!(
                f,
                "sampling {:>4} steps, batch {:>3}: {:>8.2} s",
                self.sample_steps, self.sample_batch, s
            )?,
            None => writeln!(f, "sampling: skipped")?,
        }
        let ops: Vec<String> = [
            ("train step", self.ops_train_step),
            ("forward", self.ops_forward),
            ("sampling step", self.ops_sample_step),
        ]
        .iter()
        .filter_map(|(what, n)| n.map(|n| format!("{what} {n:.0}")))
        .collect();
        if !ops.is_empty() {
            // Each is a kernel launch or more on a GPU.
            writeln!(f, "ops per pass: {}", ops.join(", "))?;
        }
        // On a GPU, how much of a forward pass the host spent queuing it (near 100 %: bound by
        // kernel launches, not by the GPU). Only the forward pass has no device read inside;
        // the training step and sampling wait for the device along the way.
        if let (true, Some(q), Some(w)) = (
            self.device != "cpu",
            self.forward_queued_seconds,
            self.forward_seconds,
        ) {
            writeln!(
                f,
                "host queuing time of a forward pass: {:.0}% of it",
                100.0 * q / w.max(1e-12)
            )?;
        }
        let gpu = [
            ("train", self.peak_gpu_mb_train),
            ("forward", self.peak_gpu_mb_forward),
            ("sampling", self.peak_gpu_mb_sample),
        ];
        let gpu: Vec<String> = gpu
            .iter()
            .filter_map(|(name, mb)| mb.map(|m| format!("{name} {m:.0} MiB")))
            .collect();
        if !gpu.is_empty() {
            writeln!(f, "peak GPU memory (device-wide): {}", gpu.join(", "))?;
        }
        match self.peak_rss_mb {
            Some(m) => write!(f, "peak RSS: {m:.0} MiB"),
            None => write!(f, "peak RSS: unavailable on this platform"),
        }
    }
}

/// The peak of a GPU's used memory while a workload runs: a thread reads it every 2 ms until
/// [`PeakWatch::finish`].
struct PeakWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl PeakWatch {
    /// Starts watching `spec`'s memory; `None` where there is no [`MemoryProbe`] to read.
    ///
    /// [`MemoryProbe`]: crate::device::MemoryProbe
    fn start(spec: DeviceSpec) -> Option<Self> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let probe = crate::device::MemoryProbe::new(spec)?;
        let first = probe.used_bytes()?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = first;
            loop {
                let done = stopped.load(Ordering::Acquire);
                peak = peak.max(probe.used_bytes().unwrap_or(0));
                if done {
                    return peak;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        Some(Self { stop, thread })
    }

    /// Stops watching: the peak in MiB.
    fn finish(self) -> Option<f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let peak = self.thread.join().ok()?;
        Some(peak as f64 / (1024.0 * 1024.0))
    }
}

/// Runs `f` while a [`PeakWatch`] reads `spec`'s memory: its result and the peak in MiB. The
/// memory that CUDA's pool kept from the workload before is given back first, so the peak is
/// this workload's own.
fn watching<T>(spec: DeviceSpec, f: impl FnOnce() -> Result<T>) -> Result<(T, Option<f64>)> {
    if matches!(spec, DeviceSpec::Cuda(_)) {
        crate::device::release_cached_memory(&spec.open()?)?;
    }
    let watch = PeakWatch::start(spec);
    let out = f();
    let peak = watch.and_then(PeakWatch::finish);
    Ok((out?, peak))
}

/// Peak resident set size of this process in MiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The median of `v` (mean of the middle two for even lengths); 0 for an empty slice.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The seconds of each timed run of a workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Runs {
    /// Until the device had finished the run.
    pub wall: Vec<f64>,
    /// Until the host had queued it (before the final device sync; the same as `wall` on the
    /// CPU). On a GPU, a queue time close to the wall time means the host, launching kernels,
    /// was the bottleneck rather than the GPU running them.
    pub queued: Vec<f64>,
    /// The ops one run (one step, for sampling) runs by name, counted in one more run after
    /// the timed ones ([`ops_of`]).
    pub ops: Option<OpCounts>,
}

/// The ops `f` runs, by name (`candle_core::census`: every op that writes a storage, and each
/// of ddpm-lab's multi-tensor launches; on a GPU each is one kernel launch or more). The
/// census counts every thread's ops: nothing else should run meanwhile.
pub fn ops_by_name(
    f: impl FnOnce() -> Result<()>,
) -> Result<std::collections::BTreeMap<&'static str, usize>> {
    candle_core::census::open();
    let result = f();
    let counts = candle_core::census::close();
    result.map(|()| counts)
}

/// The ops `f` runs by name ([`ops_by_name`]), each count divided by `per` (the steps of a
/// sampling run).
fn ops_of(per: usize, f: impl FnOnce() -> Result<()>) -> Result<OpCounts> {
    Ok(ops_by_name(f)?
        .into_iter()
        .map(|(name, n)| (name, n as f64 / per.max(1) as f64))
        .collect())
}

/// Runs `f` `warmup` times untimed, then `repeats` times timed (after a device sync each).
fn time_runs(
    device: &Device,
    warmup: usize,
    repeats: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Runs> {
    for _ in 0..warmup {
        f()?;
    }
    device.synchronize()?;
    let mut out = Runs::default();
    for _ in 0..repeats {
        let t0 = Instant::now();
        f()?;
        out.queued.push(t0.elapsed().as_secs_f64());
        device.synchronize()?;
        out.wall.push(t0.elapsed().as_secs_f64());
    }
    Ok(out)
}

/// Random images in `[-1, 1]` of shape `(n, c, s, s)`.
fn images(rng: &mut LabRng, n: usize, c: usize, s: usize, device: &Device) -> Result<Tensor> {
    Ok(rng.randn(&[n, c, s, s], device)?.tanh()?)
}

/// Times training steps at `opts.batch_size`.
pub fn bench_train(opts: &BenchOptions) -> Result<Runs> {
    let cfg = TrainConfig {
        model: opts.model.unet_config(),
        batch_size: opts.batch_size,
        image_size: opts.model.image_size(),
        timesteps: opts.sample_steps,
        seed: opts.seed,
        device: opts.device,
        steps: usize::MAX,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(cfg, None)?;
    let device = trainer.device().clone();
    let s = opts.model.image_size();
    let c = opts.model.unet_config().channels;
    let x0 = images(
        &mut LabRng::derived(opts.seed, 99),
        opts.batch_size,
        c,
        s,
        &device,
    )?;
    let mut runs = time_runs(&device, opts.warmup, opts.repeats, || {
        trainer.train_step(&x0, 0)?;
        Ok(())
    })?;
    runs.ops = Some(ops_of(1, || trainer.train_step(&x0, 0).map(|_| ()))?);
    Ok(runs)
}

/// A detached (no-gradient) model with PyTorch's initialisation for `opts`.
fn inference_model(opts: &BenchOptions) -> Result<model::Unet> {
    let device = opts.device.open()?;
    let cfg = opts.model.unet_config();
    let (_, varmap) = model::new_trainable(&cfg, opts.seed, &device)?;
    model::detached_copy(&varmap, &cfg, &device)
}

/// Times no-gradient forward passes at `opts.forward_batch`.
pub fn bench_forward(opts: &BenchOptions) -> Result<Runs> {
    let unet = inference_model(opts)?;
    let device = unet.device().clone();
    let s = opts.model.image_size();
    let mut rng = LabRng::derived(opts.seed, 98);
    let x = images(
        &mut rng,
        opts.forward_batch,
        unet.config().channels,
        s,
        &device,
    )?;
    let t = rng.uniform_indices(opts.forward_batch, opts.sample_steps);
    let t = model::timesteps_tensor(&t, &device)?;
    let mut runs = time_runs(&device, opts.warmup, opts.repeats, || {
        unet.forward(&x, &t)?;
        Ok(())
    })?;
    runs.ops = Some(ops_of(1, || Ok(unet.forward(&x, &t).map(|_| ())?))?);
    Ok(runs)
}

/// Times full DDPM sampling runs (`opts.sample_steps` steps, `opts.sample_batch` images).
pub fn bench_sample(opts: &BenchOptions) -> Result<Runs> {
    let unet = inference_model(opts)?;
    let device = unet.device().clone();
    let tables = ScheduleTables::new(BetaSchedule::Linear, opts.sample_steps)?;
    let s = opts.model.image_size();
    let shape = (opts.sample_batch, unet.config().channels, s, s);
    // One untimed forward pass at the sampling batch instead of a whole untimed run: it loads
    // the kernels and, with `DDPM_LAB_CONV_ALGO=auto`, times the convs of that batch size.
    let warm = LabRng::derived(opts.seed, 97).randn(&[shape.0, shape.1, s, s], &device)?;
    let t = model::timesteps_tensor(&vec![opts.sample_steps - 1; shape.0], &device)?;
    unet.forward(&warm, &t)?;
    let mut runs = time_runs(&device, 0, opts.sample_repeats, || {
        sampler::sample(
            &unet,
            &tables,
            Objective::Noise,
            shape,
            SamplerKind::Ddpm,
            opts.seed,
            // As `sample` without `--gif` draws: no step but the last leaves the device.
            &sampler::KeepFrames::last(),
            &mut |_, _| {},
        )?;
        Ok(())
    })?;
    // Per step: a short run of the same sampler, its setup shared out over its steps.
    let steps = SAMPLE_OPS_STEPS.min(opts.sample_steps);
    let short = ScheduleTables::new(BetaSchedule::Linear, steps)?;
    runs.ops = Some(ops_of(steps, || {
        let kind = SamplerKind::Ddpm;
        sampler::sample(
            &unet,
            &short,
            Objective::Noise,
            shape,
            kind,
            opts.seed,
            // As `sample` without `--gif` draws: no step but the last leaves the device.
            &sampler::KeepFrames::last(),
            &mut |_, _| {},
        )?;
        Ok(())
    })?);
    Ok(runs)
}

/// The steps of the sampling run whose ops [`bench_sample`] counts.
const SAMPLE_OPS_STEPS: usize = 10;

/// Runs all three benchmarks (training first, so the peak memory is the training step's).
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    opts.validate()?;
    // Process-wide in candle: set for this benchmark, put back after it.
    let reduced_before = candle_core::cuda::gemm_reduced_precision_f32();
    candle_core::cuda::set_gemm_reduced_precision_f32(opts.tf32);
    let report = run_all(opts);
    candle_core::cuda::set_gemm_reduced_precision_f32(reduced_before);
    report
}

fn run_all(opts: &BenchOptions) -> Result<BenchReport> {
    let (train_runs, peak_gpu_mb_train) = if opts.train {
        watching(opts.device, || bench_train(opts))?
    } else {
        (Runs::default(), None)
    };
    let (forward_runs, peak_gpu_mb_forward) = if opts.forward {
        watching(opts.device, || bench_forward(opts))?
    } else {
        (Runs::default(), None)
    };
    let (sample_runs, peak_gpu_mb_sample) = if opts.sample_repeats > 0 {
        watching(opts.device, || bench_sample(opts))?
    } else {
        (Runs::default(), None)
    };
    let median_of = |v: &[f64]| (!v.is_empty()).then(|| median(v));
    let params = crate::runs::budget::param_count(&opts.model.unet_config()) as usize;
    let cuda_kernels = cuda_kernels(opts.device);
    let train = median_of(&train_runs.wall);
    let fwd = median_of(&forward_runs.wall);
    Ok(BenchReport {
        config: opts.model.to_string(),
        image_size: opts.model.image_size(),
        device: opts.device.to_string(),
        device_name: crate::device::describe(opts.device),
        tf32: opts.tf32,
        custom_ops: crate::ops::enabled() && opts.device == DeviceSpec::Cpu,
        conv_algo: conv_algo(&cuda_kernels),
        cudnn: cudnn_version(&cuda_kernels),
        cuda_setup: matches!(opts.device, DeviceSpec::Cuda(_))
            .then(|| crate::device::CudaSetup::from_env().ok())
            .flatten()
            .map(|setup| setup.to_string()),
        conv_tuning: crate::ops::conv_tuner::TUNER.records(),
        cudnn_algos: cudnn_algos(&cuda_kernels),
        cuda_kernels,
        threads: rayon::current_num_threads(),
        params,
        batch_size: opts.batch_size,
        train_step_seconds: train,
        train_images_per_s: train.map(|t| opts.batch_size as f64 / t.max(1e-12)),
        train_queued_seconds: median_of(&train_runs.queued),
        train_runs: train_runs.wall,
        forward_batch: opts.forward_batch,
        forward_seconds: fwd,
        forward_images_per_s: fwd.map(|t| opts.forward_batch as f64 / t.max(1e-12)),
        forward_queued_seconds: median_of(&forward_runs.queued),
        forward_runs: forward_runs.wall,
        sample_batch: opts.sample_batch,
        sample_steps: opts.sample_steps,
        sample_seconds: median_of(&sample_runs.wall),
        sample_queued_seconds: median_of(&sample_runs.queued),
        peak_rss_mb: peak_rss_mb(),
        peak_gpu_mb_train,
        peak_gpu_mb_forward,
        peak_gpu_mb_sample,
        ops_train_step: total(&train_runs.ops),
        ops_forward: total(&forward_runs.ops),
        ops_sample_step: total(&sample_runs.ops),
        ops_by_name: OpsByName {
            train_step: train_runs.ops.unwrap_or_default(),
            forward: forward_runs.ops.unwrap_or_default(),
            sample_step: sample_runs.ops.unwrap_or_default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn tiny_bench_reports_every_figure() {
        let opts = BenchOptions {
            model: BenchModel::Tiny,
            batch_size: 4,
            forward_batch: 3,
            sample_batch: 2,
            sample_steps: 5,
            warmup: 1,
            repeats: 2,
            sample_repeats: 1,
            ..BenchOptions::default()
        };
        let r = run(&opts).unwrap();
        assert_eq!(r.train_runs.len(), 2);
        assert_eq!(r.forward_runs.len(), 2);
        // The op counts themselves are checked in tests/op_census.rs: the census counts the
        // ops of every thread, and this binary's other tests run beside this one.
        assert!(r.ops_train_step.is_some() && r.ops_forward.is_some());
        assert!(r.ops_sample_step.is_some());
        let (train, forward) = (
            r.train_images_per_s.unwrap(),
            r.forward_images_per_s.unwrap(),
        );
        assert!(train > 0.0 && train.is_finite());
        assert!(forward > 0.0 && forward.is_finite());
        assert!(r.sample_seconds.unwrap() > 0.0);
        // Queued before the final sync: never after the run ended.
        for (queued, wall) in [
            (r.train_queued_seconds, r.train_step_seconds),
            (r.forward_queued_seconds, r.forward_seconds),
            (r.sample_queued_seconds, r.sample_seconds),
        ] {
            let (queued, wall) = (queued.unwrap(), wall.unwrap());
            assert!(queued > 0.0 && queued <= wall, "{queued} > {wall}");
        }
        assert!(r.params > 1000);
        assert_eq!(r.config, "tiny");
        if cfg!(target_os = "linux") {
            assert!(r.peak_rss_mb.unwrap() > 1.0);
        }
        // No GPU memory to watch on the CPU.
        assert_eq!(r.peak_gpu_mb_train, None);
        // The host's share of each run is shown for a GPU (on the CPU it is all of it).
        assert!(!r.to_string().contains("host queuing"), "{r}");
        let on_gpu = BenchReport {
            device: "cuda".into(),
            train_queued_seconds: Some(0.25),
            train_step_seconds: Some(1.0),
            forward_queued_seconds: Some(0.5),
            forward_seconds: Some(0.5),
            ..r.clone()
        };
        let text = on_gpu.to_string();
        assert!(
            text.contains("host queuing time of a forward pass: 100% of it"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "train_images_per_s",
            "forward_images_per_s",
            "sample_seconds",
            "forward_queued_seconds",
            "peak_rss_mb",
            "peak_gpu_mb_train",
            "peak_gpu_mb_forward",
            "peak_gpu_mb_sample",
            "ops_train_step",
            "ops_forward",
            "ops_sample_step",
            "ops_by_name",
            "config",
            "device",
            "device_name",
            "tf32",
            "cuda_setup",
            "cudnn",
            "cudnn_algos",
        ] {
            assert!(json.get(key).is_some(), "json lacks {key}");
        }
    }

    #[test]
    fn bad_options_are_rejected() {
        let o = BenchOptions {
            repeats: 0,
            ..BenchOptions::default()
        };
        assert!(o.validate().is_err());
        assert!("huge".parse::<BenchModel>().is_err());
        assert_eq!("Blog".parse::<BenchModel>(), Ok(BenchModel::Blog));
    }
}
