//! The timestep embedding: `SinusoidalPositionEmbeddings(dim)` followed by the `time_mlp`.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::{linear, Gelu};

/// Sinusoidal embedding of timesteps: `[sin(t·f_k), cos(t·f_k)]` with
/// `f_k = exp(−ln(10000)/(half−1) · k)`, `k = 0 … half−1`, `half = dim/2`.
pub fn sinusoidal_embedding(t: &Tensor, dim: usize) -> Result<Tensor> {
    let device = t.device();
    let half = dim / 2;
    // Computed in f32 the way PyTorch does: exp(arange(half) * -scale).
    let scale = ((10000f64).ln() / (half as f64 - 1.0)) as f32;
    let freqs: Vec<f32> = (0..half).map(|k| (k as f32 * -scale).exp()).collect();
    let freqs = Tensor::from_vec(freqs, (1, half), device)?;
    let t = t.to_dtype(DType::F32)?.reshape(((), 1))?;
    let args = t.broadcast_mul(&freqs)?;
    Tensor::cat(&[args.sin()?, args.cos()?], 1)
}

/// Builds the `t` tensor (i64 timesteps, shape `(N,)`) the UNet takes.
pub fn timesteps_tensor(t: &[usize], device: &Device) -> Result<Tensor> {
    Tensor::from_vec(
        t.iter().map(|&v| v as i64).collect::<Vec<_>>(),
        t.len(),
        device,
    )
}

/// `time_mlp = Sequential(SinusoidalPositionEmbeddings(dim), Linear(dim, 4dim), GELU, Linear(4dim, 4dim))`.
#[derive(Debug, Clone)]
pub struct TimeMlp {
    dim: usize,
    lin1: Linear,
    lin2: Linear,
}

impl TimeMlp {
    /// Reads `time_mlp.1.*` and `time_mlp.3.*` under `vb`.
    pub fn new(dim: usize, time_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            dim,
            lin1: linear(dim, time_dim, vb.pp("1"))?,
            lin2: linear(time_dim, time_dim, vb.pp("3"))?,
        })
    }
}

impl Module for TimeMlp {
    fn forward(&self, t: &Tensor) -> Result<Tensor> {
        let e = sinusoidal_embedding(t, self.dim)?;
        self.lin2.forward(&Gelu.forward(&self.lin1.forward(&e)?)?)
    }
}
