//! Seeded random numbers for everything stochastic in training and sampling, so that a run is
//! reproducible on the CPU for a given seed (candle's own RNG is not seedable per call).

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// A seedable random stream that makes candle tensors.
#[derive(Debug, Clone)]
pub struct LabRng {
    inner: ChaCha8Rng,
}

impl LabRng {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A stream derived from `seed` and a purpose tag (so streams do not overlap).
    pub fn derived(seed: u64, stream: u64) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream);
        Self { inner }
    }

    /// Standard normal `f32` tensor of the given shape.
    pub fn randn(&mut self, shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.inner.sample(StandardNormal)).collect();
        Tensor::from_vec(v, shape, device)
    }

    /// `n` integers uniform in `0..high`.
    pub fn uniform_indices(&mut self, n: usize, high: usize) -> Vec<usize> {
        (0..n).map(|_| self.inner.random_range(0..high)).collect()
    }

    /// A uniform `f32` in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.inner.random_range(lo..hi)
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.inner.random_bool(0.5)
    }

    /// The underlying generator, for `rand` APIs (shuffles...).
    pub fn inner(&mut self) -> &mut ChaCha8Rng {
        &mut self.inner
    }
}
