//! Feeds the trainer from an in-memory [`ImageSet`] through the data layer's prefetching
//! [`Batcher`], so batches are built off the training thread's critical path.

use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};

use super::BatchSource;
use crate::data::{Batcher, ImageSet, Prefetcher};

/// Batches to build ahead of the trainer.
const PREFETCH_DEPTH: usize = 3;

/// A [`BatchSource`] over an image set: seeded shuffles per epoch, random flips, prefetch.
pub struct ImageSetSource {
    set: Arc<ImageSet>,
    batch_size: usize,
    seed: u64,
    flip: bool,
    device: Device,
    steps_per_epoch: usize,
    prefetch: Option<(usize, Prefetcher)>,
}

impl ImageSetSource {
    /// A source of batches of `batch_size` images from `set` on `device`.
    pub fn new(
        set: Arc<ImageSet>,
        batch_size: usize,
        seed: u64,
        flip: bool,
        device: Device,
    ) -> Self {
        let steps_per_epoch =
            Batcher::new(set.clone(), batch_size, seed, flip, device.clone()).steps_per_epoch();
        Self {
            set,
            batch_size,
            seed,
            flip,
            device,
            steps_per_epoch,
            prefetch: None,
        }
    }
}

impl BatchSource for ImageSetSource {
    fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    fn batch(&mut self, step: usize) -> Result<(Tensor, usize)> {
        // Restart the prefetcher whenever the trainer asks for a step out of sequence.
        let in_sequence = matches!(&self.prefetch, Some((next, _)) if *next == step);
        if !in_sequence {
            let batcher = Batcher::new(
                self.set.clone(),
                self.batch_size,
                self.seed,
                self.flip,
                self.device.clone(),
            );
            self.prefetch = Some((step, batcher.prefetch(step, PREFETCH_DEPTH)));
        }
        let (next, pf) = self.prefetch.as_mut().expect("prefetcher was just created");
        let batch = pf
            .next()
            .context("the batch thread stopped unexpectedly")?
            .context("cannot build a training batch")?;
        *next += 1;
        Ok((batch.x, batch.epoch))
    }
}
