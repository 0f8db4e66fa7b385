//! Adam with PyTorch's defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8, no weight decay), with its
//! moment estimates exposed so they can be checkpointed and restored.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamParams {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// L2 weight decay added to the gradient (PyTorch `Adam(weight_decay=…)`); 0 by default.
    pub weight_decay: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Adam over a named set of variables.
#[derive(Debug)]
pub struct Adam {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
    /// Hyper-parameters (the learning rate may be changed between steps, e.g. for warm-up).
    pub params: AdamParams,
}

impl Adam {
    /// Adam over `vars` (sorted by name so state files are stable).
    pub fn new(mut vars: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            vars,
            m,
            v,
            step: 0,
            params,
        })
    }

    /// One update from the gradients in `grads`. Variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let p = self.params;
        let bc1 = 1.0 - p.beta1.powi(self.step as i32);
        let bc2 = 1.0 - p.beta2.powi(self.step as i32);
        let step_size = p.lr / bc1;
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let g = if p.weight_decay != 0.0 {
                (g + (var.as_tensor() * p.weight_decay)?)?
            } else {
                g.clone()
            };
            let m = ((&self.m[i] * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            // PyTorch: denom = sqrt(v) / sqrt(bc2) + eps; param -= lr / bc1 * m / denom
            let denom = ((v.sqrt()? / bc2.sqrt())? + p.eps)?;
            let update = ((&m / denom)? * step_size)?;
            var.set(&var.as_tensor().sub(&update)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The optimiser state as named tensors (`exp_avg.<name>`, `exp_avg_sq.<name>`, `step`).
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("exp_avg.{name}"), self.m[i].clone());
            out.insert(format!("exp_avg_sq.{name}"), self.v[i].clone());
        }
        let dev = self
            .m
            .first()
            .map(|t| t.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        out.insert("step".into(), Tensor::new(&[self.step as i64], &dev)?);
        Ok(out)
    }

    /// Restores state saved by [`Self::state_tensors`]; every variable must be present with the
    /// same shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [("exp_avg", &mut self.m[i]), ("exp_avg_sq", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let t = state.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("optimizer state lacks {key}"))
                })?;
                if t.dims() != var.dims() {
                    candle_core::bail!(
                        "optimizer state {key} has shape {:?}, expected {:?}",
                        t.dims(),
                        var.dims()
                    );
                }
                *slot = t.to_device(var.device())?.to_dtype(var.dtype())?;
            }
        }
        let step = state
            .get("step")
            .ok_or_else(|| candle_core::Error::Msg("optimizer state lacks step".into()))?;
        self.step = step.flatten_all()?.to_vec1::<i64>()?[0] as usize;
        Ok(())
    }
}
