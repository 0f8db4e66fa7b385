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

/// The seed of batch `k` of a sampling from `seed`: `seed` itself for the first, a hash of both
/// for the others, so that the batches of one seed are not those of the next (`seed + k`
/// made seed 1's first batches seed 0's later ones).
pub fn batch_seed(seed: u64, k: usize) -> u64 {
    // SplitMix64's finaliser: consecutive inputs give unrelated outputs.
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    match k {
        0 => seed,
        k => mix(seed ^ mix(k as u64).rotate_left(17)),
    }
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

/// `n` final images drawn in batches of at most `batch` (the first batch from `seed`, as
/// [`sample_batch`] draws it; the others from seeds [`batch_seed`] derives), keeping no
/// intermediate frames; `progress(done, n)` after each step, a batch's images counted done in
/// proportion to its steps.
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
        let d = sample_batch(loaded, kind, b, batch_seed(seed, k), &mut within)?;
        out.extend_from_slice(d.final_images());
        progress(out.len(), n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::batch_seed;

    /// A seed's batches are not the next seed's (they were `seed + k`), and the first batch
    /// is the seed's own, as `sample` draws it.
    #[test]
    fn batch_seeds_of_two_seeds_do_not_overlap() {
        let of = |s: u64| (0..64).map(|k| batch_seed(s, k)).collect::<Vec<_>>();
        assert_eq!(of(7)[0], 7);
        let (a, b) = (of(0), of(1));
        assert!(a.iter().all(|x| !b.contains(x)), "{a:?} {b:?}");
        let mut all = a.clone();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 64);
    }
}
