//! Sampling a run: its weights loaded on a device, and images drawn from them with a checked
//! sampler. `ddpm-lab sample`, `ddpm-lab eval` and the lab's Sample screen all come here.

use std::path::Path;

use anyhow::{Context, Result};

use super::budget;
use crate::device::DeviceSpec;
use crate::imaging::Image8;
use crate::sampler::{self, Denoising, SamplerKind};
use crate::store::{load_checkpoint, LoadedModel, RunDir};

/// Loads the run at `path` (a run directory, or a weights file inside one) for sampling on
/// `device` (`None`: the device the run was trained on). With `prefer_ema`, the EMA weights
/// are used when the run has them.
pub fn open_for_sampling(
    path: &Path,
    device: Option<DeviceSpec>,
    prefer_ema: bool,
) -> Result<LoadedModel> {
    let device = match device {
        Some(d) => d,
        None => {
            let dir = if path.is_file() {
                crate::files::parent_dir(path)
            } else {
                path.to_path_buf()
            };
            RunDir::open(&dir)?.load_config()?.device
        }
    };
    let loaded = load_checkpoint(path, &device.open()?, prefer_ema)?;
    check_config(&loaded.config)
        .with_context(|| format!("the run at {} has an unusable config.json", path.display()))?;
    Ok(loaded)
}

/// The sizes of a run's configuration that sampling allocates by (T, image size, model): read
/// from a file, so checked before use.
fn check_config(cfg: &crate::store::TrainConfig) -> Result<()> {
    cfg.validate_limits()?;
    let s = cfg.image_size;
    cfg.model.validate_for_images(cfg.model.channels, s, s)?;
    Ok(())
}

/// One batch of `n` images with every intermediate frame (for grids, GIFs and the lab's
/// frame slider). `kind` is checked against the run's T first, and `n` against
/// [`budget::MAX_SAMPLE_BATCH`] and the memory available (see [`budget::check_sampling`]).
pub fn sample_batch(
    loaded: &LoadedModel,
    kind: SamplerKind,
    n: usize,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Denoising> {
    let mut watch = |done: usize, total: usize, _: &[Image8]| {
        progress(done, total);
        std::ops::ControlFlow::Continue(())
    };
    sample_batch_watching(loaded, kind, n, seed, &mut watch)
}

/// [`sample_batch`], calling `watch(done, total, x_t)` after each step with the images being
/// denoised; `watch` can stop it (see [`sampler::sample_watching`]).
pub fn sample_batch_watching(
    loaded: &LoadedModel,
    kind: SamplerKind,
    n: usize,
    seed: u64,
    watch: &mut sampler::Watch,
) -> Result<Denoising> {
    let cfg = &loaded.config;
    check_config(cfg)?;
    let kind = kind.checked(cfg.timesteps).map_err(anyhow::Error::msg)?;
    // Every frame is kept: refuse what cannot fit before the first one is drawn.
    budget::check_sampling(cfg, kind, n, loaded.model.device().is_cpu())?;
    let tables = cfg.tables()?;
    let (c, s) = (cfg.model.channels, cfg.image_size);
    sampler::sample_watching(
        &loaded.model,
        &tables,
        cfg.objective,
        (n, c, s, s),
        kind,
        seed,
        watch,
    )
    .context("sampling failed")
}

/// `n` final images drawn in batches of at most `batch` (seeds `seed`, `seed + 1`, … per
/// batch), keeping no intermediate frames; `progress(done, n)` after each step, a batch's
/// images counted done in proportion to its steps.
pub fn sample_images(
    loaded: &LoadedModel,
    kind: SamplerKind,
    n: usize,
    batch: usize,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Image8>> {
    let batch = batch.max(1);
    let mut out = Vec::with_capacity(n);
    for (k, start) in (0..n).step_by(batch).enumerate() {
        let b = batch.min(n - start);
        // Within a batch, its images count as done in proportion to its steps, so that a
        // long batch (1000 images, 200 DDPM steps) does not sit at 0 for minutes.
        let mut within = |step: usize, steps: usize| {
            progress(start + b * step / steps.max(1), n);
        };
        let d = sample_batch(loaded, kind, b, seed.wrapping_add(k as u64), &mut within)?;
        out.extend_from_slice(d.final_images());
        progress(out.len(), n);
    }
    Ok(out)
}
