//! Training batches: seeded shuffling per epoch, random horizontal flips, scaling to [-1, 1],
//! on the chosen device, with a background prefetcher.
//!
//! Batch number `step` counts across epochs: epoch `step / steps_per_epoch`, position
//! `step % steps_per_epoch`. The order of epoch `e` depends only on (seed, e) and the flips of a
//! batch only on (seed, e, position), so a run resumed at step `s` sees exactly the batches it
//! would have seen.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;

use super::imageset::ImageSet;
use crate::rng::LabRng;

/// Stream tags separating the shuffle and flip randomness.
const SHUFFLE_TAG: u64 = 0x5348_5546_464c_4531;
const FLIP_TAG: u64 = 0x464c_4950_5331_3233;

/// One training batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images `(B, C, H, W)`, f32 in [-1, 1], on the batcher's device.
    pub x: Tensor,
    /// The class of each image.
    pub labels: Vec<u32>,
    /// The epoch this batch belongs to (0-based).
    pub epoch: usize,
    /// The batch number across epochs (0-based).
    pub step: usize,
}

/// Steps an epoch of `n_images` takes at `batch_size` images a step, as a [`Batcher`] counts
/// them (at least one, for the screens that plan runs before any data is loaded).
pub fn epoch_steps(n_images: usize, batch_size: usize) -> usize {
    n_images.max(1).div_ceil(batch_size.max(1))
}

/// `/5`: the epochs a run of `total` steps spans at `steps_per_epoch` (as the lab and
/// `train` show them: `epoch 2/5`), or nothing where the epoch's length is unknown (0).
pub fn epochs_suffix(total: usize, steps_per_epoch: usize) -> String {
    match steps_per_epoch {
        0 => String::new(),
        n => format!("/{}", total.div_ceil(n)),
    }
}

/// Builds batches from an [`ImageSet`] deterministically from a seed.
#[derive(Debug)]
pub struct Batcher {
    set: Arc<ImageSet>,
    batch_size: usize,
    seed: u64,
    flip: bool,
    device: Device,
    /// The permutation of the last epoch asked for.
    order: Mutex<Option<(usize, Arc<Vec<u32>>)>>,
}

impl Batcher {
    /// A batcher over `set` (a `batch_size` of 0 is taken as 1); `flip` enables random
    /// horizontal flips.
    pub fn new(
        set: Arc<ImageSet>,
        batch_size: usize,
        seed: u64,
        flip: bool,
        device: Device,
    ) -> Self {
        Self {
            set,
            batch_size: batch_size.max(1),
            seed,
            flip,
            device,
            order: Mutex::new(None),
        }
    }

    /// Batches per epoch: `ceil(len / batch_size)`; the last batch of an epoch may be smaller
    /// (like PyTorch's `DataLoader(drop_last=False)`).
    pub fn steps_per_epoch(&self) -> usize {
        self.set.len().div_ceil(self.batch_size)
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The image set.
    pub fn set(&self) -> &Arc<ImageSet> {
        &self.set
    }

    /// (epoch, position within the epoch) of batch `step`.
    pub fn locate(&self, step: usize) -> (usize, usize) {
        let spe = self.steps_per_epoch().max(1);
        (step / spe, step % spe)
    }

    /// The image order of `epoch`: a permutation of `0..len` from (seed, epoch).
    pub fn epoch_order(&self, epoch: usize) -> Arc<Vec<u32>> {
        let mut cache = self.order.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((e, order)) = cache.as_ref() {
            if *e == epoch {
                return Arc::clone(order);
            }
        }
        let mut order: Vec<u32> = (0..self.set.len() as u32).collect();
        let mut rng = LabRng::derived(self.seed ^ SHUFFLE_TAG, epoch as u64);
        order.shuffle(rng.inner());
        let order = Arc::new(order);
        *cache = Some((epoch, Arc::clone(&order)));
        order
    }

    /// Batch number `step` (0-based, counting across epochs).
    pub fn batch(&self, step: usize) -> candle_core::Result<Batch> {
        if self.set.is_empty() {
            candle_core::bail!("cannot make batches: the training set has no image");
        }
        let (epoch, pos) = self.locate(step);
        let order = self.epoch_order(epoch);
        let start = pos * self.batch_size;
        let idx = &order[start..(start + self.batch_size).min(order.len())];
        let (c, h, w) = (self.set.channels, self.set.height, self.set.width);
        let per = c * h * w;
        let mut flips = LabRng::derived(self.seed ^ FLIP_TAG, step as u64);
        let mut data = Vec::with_capacity(idx.len() * per);
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            let px = self.set.pixels(i as usize);
            let flip = self.flip && flips.coin();
            for ch in 0..c {
                for y in 0..h {
                    let row = &px[(ch * h + y) * w..(ch * h + y + 1) * w];
                    if flip {
                        data.extend(row.iter().rev().map(|&v| v as f32 / 127.5 - 1.0));
                    } else {
                        data.extend(row.iter().map(|&v| v as f32 / 127.5 - 1.0));
                    }
                }
            }
            labels.push(self.set.labels[i as usize]);
        }
        let x = Tensor::from_vec(data, (idx.len(), c, h, w), &self.device)?;
        Ok(Batch {
            x,
            labels,
            epoch,
            step,
        })
    }

    /// Builds batches `start_step, start_step + 1, ...` on a background thread, `depth` ahead
    /// (at least 1).
    pub fn prefetch(self, start_step: usize, depth: usize) -> Prefetcher {
        let (tx, rx) = sync_channel(depth.max(1));
        let handle = std::thread::Builder::new()
            .name("ddpm-lab-batches".into())
            .spawn(move || {
                for step in start_step.. {
                    let b = self.batch(step);
                    let failed = b.is_err();
                    if tx.send(b).is_err() || failed {
                        break;
                    }
                }
            })
            .expect("spawning the batch thread");
        Prefetcher {
            rx: Some(rx),
            handle: Some(handle),
        }
    }
}

/// Batches built ahead on a background thread; an endless iterator (it stops after an error).
#[derive(Debug)]
pub struct Prefetcher {
    rx: Option<Receiver<candle_core::Result<Batch>>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for Prefetcher {
    type Item = candle_core::Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the channel makes the worker's next send fail, so it ends.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
