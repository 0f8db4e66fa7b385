//! Sampling a run: its weights loaded on a device, and images drawn from them with a checked
//! sampler. `ddpm-lab sample`, `ddpm-lab eval` and the lab's Sample screen all come here.

use std::path::Path;

use anyhow::{Context, Result};

use super::budget;
use crate::device::DeviceSpec;
use crate::imaging::Image8;
use crate::sampler::{self, Denoising, KeepFrames, SamplerKind};
use crate::store::{load_checkpoint, LoadedModel, RunDir};

/// Loads the run at `path` (a run directory, or a weights file inside one) for sampling on
/// `device` (`None`: the device the run was trained on). With `prefer_ema`, the EMA weights
/// are used when the run has them.
pub fn open_for_sampling(
    path: &Path,
    device: Option<DeviceSpec>,
    prefer_ema: bool,
) -> Result<LoadedModel> {
    // A name found neither here nor under the runs folder: say both places.
    if !path.exists() && path.is_relative() {
        let root = super::runs_root(None);
        anyhow::bail!(
            "no run or checkpoint {}: not in this folder, nor in the runs folder {} (`ddpm-lab runs` lists those)",
            path.display(),
            root.display()
        );
    }
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

/// One batch of `n` images keeping the frames `keep` names (every frame for the lab's frame
/// slider, a GIF's frames, or the images only). `kind` is checked against the run's T first,
/// and `n` against [`budget::MAX_SAMPLE_BATCH`] and the memory available (see
/// [`budget::check_sampling`]).
pub fn sample_batch(
    loaded: &LoadedModel,
    kind: SamplerKind,
    n: usize,
    seed: u64,
    keep: &KeepFrames,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Denoising> {
    let (kind, tables) = prepared(loaded, kind, n, n, keep)?;
    let (model, objective) = (&loaded.model, loaded.config.objective);
    let shape = shape_of(loaded, n);
    sampler::sample(model, &tables, objective, shape, kind, seed, keep, progress)
        .context("sampling failed")
}

/// [`sample_batch`], calling `watch(done, total, x_t)` after each step with the images being
/// denoised; `watch` can stop it (see [`sampler::sample_watching`]).
pub fn sample_batch_watching(
    loaded: &LoadedModel,
    kind: SamplerKind,
    n: usize,
    seed: u64,
    keep: &KeepFrames,
    watch: &mut sampler::Watch,
) -> Result<Denoising> {
    let (kind, tables) = prepared(loaded, kind, n, n, keep)?;
    let (model, objective) = (&loaded.model, loaded.config.objective);
    let shape = shape_of(loaded, n);
    sampler::sample_watching(model, &tables, objective, shape, kind, seed, keep, watch)
        .context("sampling failed")
}

/// `kind` checked against the run's T, and drawing `n` images `batch` at a time keeping
/// `keep`'s frames against the memory available, before the first step is drawn; with the
/// run's schedule tables.
fn prepared(
    loaded: &LoadedModel,
    kind: SamplerKind,
    n: usize,
    batch: usize,
    keep: &KeepFrames,
) -> Result<(SamplerKind, crate::schedule::ScheduleTables)> {
    let cfg = &loaded.config;
    check_config(cfg)?;
    let kind = kind.checked(cfg.timesteps).map_err(anyhow::Error::msg)?;
    let on_cpu = loaded.model.device().is_cpu();
    budget::check_sampling(cfg, kind, n, batch, keep, on_cpu)?;
    Ok((kind, cfg.tables()?))
}

/// The shape of a batch of `n` of the run's images.
fn shape_of(loaded: &LoadedModel, n: usize) -> (usize, usize, usize, usize) {
    let (c, s) = (loaded.config.model.channels, loaded.config.image_size);
    (n, c, s, s)
}

/// The frames kept of images drawn in several batches (see [`sample_in_batches`]).
#[derive(Debug, Clone, Default)]
pub struct SampledFrames {
    /// `frames[i]` holds every image after `frame_steps[i]` steps, batch after batch; the last
    /// frame is the generated images.
    pub frames: Vec<Vec<Image8>>,
    /// The number of steps each frame comes after (0: the noise).
    pub frame_steps: Vec<usize>,
}

impl SampledFrames {
    /// The generated images.
    pub fn final_images(&self) -> &[Image8] {
        self.frames.last().map(Vec::as_slice).unwrap_or(&[])
    }
}

/// `n` images drawn in batches of at most `batch` (the first batch from `seed`, as
/// [`sample_batch`] draws it; the others from seeds [`batch_seed`] derives), keeping the
/// frames `keep` names of each; `progress(done, n)` after each step, a batch's images counted
/// done in proportion to its steps. The whole drawing is checked against the memory
/// available before the first batch.
pub fn sample_in_batches(
    loaded: &LoadedModel,
    kind: SamplerKind,
    n: usize,
    batch: usize,
    seed: u64,
    keep: &KeepFrames,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SampledFrames> {
    let batch = batch.max(1);
    // Checked once for the whole drawing; each batch is then drawn as `sample_batch` would.
    let (kind, tables) = prepared(loaded, kind, n, batch, keep)?;
    let (model, objective) = (&loaded.model, loaded.config.objective);
    let mut out = SampledFrames::default();
    for (k, start) in (0..n).step_by(batch).enumerate() {
        let b = batch.min(n - start);
        // Within a batch, its images count as done in proportion to its steps, so that a
        // long batch (1000 images, 200 DDPM steps) does not sit at 0 for minutes.
        let mut within = |step: usize, steps: usize| {
            progress(start + b * step / steps.max(1), n);
        };
        let (shape, seed) = (shape_of(loaded, b), batch_seed(seed, k));
        let d = sampler::sample(
            model,
            &tables,
            objective,
            shape,
            kind,
            seed,
            keep,
            &mut within,
        )
        .context("sampling failed")?;
        if out.frames.is_empty() {
            out.frames = vec![Vec::with_capacity(n); d.frames.len()];
            out.frame_steps = d.frame_steps;
        }
        for (all, these) in out.frames.iter_mut().zip(d.frames) {
            all.extend(these);
        }
        progress(start + b, n);
    }
    Ok(out)
}

/// `n` final images drawn in batches of at most `batch` (see [`sample_in_batches`]), keeping
/// no intermediate frame.
pub fn sample_images(
    loaded: &LoadedModel,
    kind: SamplerKind,
    n: usize,
    batch: usize,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Image8>> {
    let keep = KeepFrames::last();
    let mut drawn = sample_in_batches(loaded, kind, n, batch, seed, &keep, progress)?;
    Ok(drawn.frames.pop().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A tiny untrained run on the CPU (10 steps, 8×8 images).
    fn tiny_run() -> LoadedModel {
        let cfg = crate::store::TrainConfig {
            model: crate::model::UnetConfig::tiny(),
            image_size: 8,
            timesteps: 10,
            ..Default::default()
        };
        let (_, vars) = crate::model::new_trainable(&cfg.model, 3, &Device::Cpu).unwrap();
        let model = crate::model::detached_copy(&vars, &cfg.model, &Device::Cpu).unwrap();
        LoadedModel {
            model,
            config: cfg,
            step: 0,
            ema: false,
            named: false,
        }
    }

    /// Batches are drawn from their own seeds, as `eval` draws them, and their kept frames
    /// are put together frame by frame; one batch is [`sample_batch`] itself.
    #[test]
    fn batches_are_the_batches_drawn_alone_put_together() {
        let run = tiny_run();
        let kind = SamplerKind::Ddim { steps: 4, eta: 1.0 };
        let keep = KeepFrames::Only(vec![0, 2]);
        let alone =
            |n: usize, seed: u64| sample_batch(&run, kind, n, seed, &keep, &mut |_, _| {}).unwrap();
        let mut seen = Vec::new();
        let drawn =
            sample_in_batches(&run, kind, 5, 2, 9, &keep, &mut |d, n| seen.push((d, n))).unwrap();
        assert_eq!(drawn.frame_steps, vec![0, 2, 4]);
        let parts = [
            alone(2, 9),
            alone(2, batch_seed(9, 1)),
            alone(1, batch_seed(9, 2)),
        ];
        for (i, frame) in drawn.frames.iter().enumerate() {
            let want: Vec<Image8> = parts.iter().flat_map(|d| d.frames[i].clone()).collect();
            assert_eq!(frame, &want, "frame {i}");
        }
        assert_eq!(drawn.final_images().len(), 5);
        assert_ne!(drawn.final_images()[0], drawn.final_images()[2]);
        // Progress counts images, never backwards, to all of them.
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert_eq!(seen.last(), Some(&(5, 5)));
        // One batch of all: the same images as one `sample_batch`.
        let one = sample_in_batches(&run, kind, 5, 5, 9, &keep, &mut |_, _| {}).unwrap();
        assert_eq!(one.frames, alone(5, 9).frames);
        let finals = sample_images(&run, kind, 5, 2, 9, &mut |_, _| {}).unwrap();
        assert_eq!(finals, drawn.final_images());
    }

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
