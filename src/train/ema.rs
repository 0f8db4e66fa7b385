//! Exponential moving average of the weights (as in denoising-diffusion-pytorch), used for
//! sampling when enabled.

use std::collections::HashMap;

use candle_core::{Result, Tensor};
use candle_nn::VarMap;

/// EMA shadow weights: `ema ← decay · ema + (1 − decay) · w` after every step.
#[derive(Debug, Clone)]
pub struct Ema {
    decay: f64,
    shadow: HashMap<String, Tensor>,
}

impl Ema {
    /// Starts the average at the current weights.
    pub fn new(varmap: &VarMap, decay: f64) -> Result<Self> {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        let shadow = data
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().detach().copy()?)))
            .collect::<Result<_>>()?;
        Ok(Self { decay, shadow })
    }

    /// Restores saved shadow weights (names must match the model's).
    pub fn from_tensors(decay: f64, shadow: HashMap<String, Tensor>) -> Self {
        Self { decay, shadow }
    }

    /// Moves the average towards the current weights.
    pub fn update(&mut self, varmap: &VarMap) -> Result<()> {
        self.update_with(varmap, self.decay)
    }

    /// The configured decay.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// One update with `decay` in place of the configured one (EMA warm-up).
    ///
    /// Each shadow tensor is replaced by a new one, never written in place: the lab samples from
    /// [`Self::tensors`] while training goes on. On CUDA all of them are computed in one pass
    /// ([`crate::ops::multi_tensor::lerp_each`]) instead of three ops per variable.
    pub fn update_with(&mut self, varmap: &VarMap, decay: f64) -> Result<()> {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        let (mut names, mut shadows, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in data.iter() {
            if let Some(s) = self.shadow.get(k) {
                names.push(k.clone());
                shadows.push(s.clone());
                weights.push(v.as_tensor().detach());
            }
        }
        let moved = crate::ops::multi_tensor::lerp_each(&shadows, &weights, decay)?;
        for (name, t) in names.into_iter().zip(moved) {
            self.shadow.insert(name, t);
        }
        Ok(())
    }

    /// The averaged weights by PyTorch name.
    pub fn tensors(&self) -> &HashMap<String, Tensor> {
        &self.shadow
    }
}
