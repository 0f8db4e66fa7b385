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
///
/// The moments of all variables live in two flat tensors, and a step where every variable has
/// a gradient runs its arithmetic once over the concatenated gradients. On CUDA the gradients
/// are gathered and the update subtracted from the variables by multi-tensor kernels
/// ([`crate::ops::multi_tensor`]): about 15 launches for the whole model, where a step per
/// variable took 14 per variable. The arithmetic of each element is the same either way, so
/// the results are bit for bit those of a per-variable Adam.
#[derive(Debug)]
pub struct Adam {
    vars: Vec<(String, Var)>,
    /// Where each variable's elements start in the flat moments (one more entry: the total).
    offsets: Vec<usize>,
    /// First moments of every variable, concatenated in `vars` order.
    m: Tensor,
    /// Second moments, likewise.
    v: Tensor,
    step: usize,
    /// Hyper-parameters (the learning rate may be changed between steps, e.g. for warm-up).
    pub params: AdamParams,
}

/// `var −= update`: in the variable's own storage where [`crate::ops::in_place`] can (one
/// launch on a GPU), else as a new tensor set into it; the same numbers either way.
fn subtract(var: &Var, update: &Tensor) -> Result<()> {
    if !crate::ops::in_place::sub_in_place(var.as_tensor(), update)? {
        var.set(&var.as_tensor().sub(update)?)?;
    }
    Ok(())
}

impl Adam {
    /// Adam over `vars` (sorted by name so state files are stable).
    pub fn new(mut vars: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut offsets = vec![0];
        for (_, v) in &vars {
            offsets.push(offsets[offsets.len() - 1] + v.elem_count());
        }
        let (dtype, device) = match vars.first() {
            Some((_, v)) => (v.dtype(), v.device().clone()),
            None => (candle_core::DType::F32, candle_core::Device::Cpu),
        };
        let total = offsets[vars.len()];
        let m = Tensor::zeros(total, dtype, &device)?;
        let v = m.zeros_like()?;
        Ok(Self {
            vars,
            offsets,
            m,
            v,
            step: 0,
            params,
        })
    }

    /// Variable `i`'s part of a flat tensor, in its shape.
    fn part(&self, flat: &Tensor, i: usize) -> Result<Tensor> {
        let (start, end) = (self.offsets[i], self.offsets[i + 1]);
        flat.narrow(0, start, end - start)?
            .reshape(self.vars[i].1.dims())
    }

    /// Every variable's gradient in `grads`, flattened and concatenated in this optimiser's
    /// order: the input of [`Self::step_flat`]. `None` when some variable has no gradient.
    pub fn flat_gradient(&self, grads: &GradStore) -> Result<Option<Tensor>> {
        let gs: Option<Vec<&Tensor>> = self.vars.iter().map(|(_, var)| grads.get(var)).collect();
        let Some(gs) = gs.filter(|gs| !gs.is_empty()) else {
            return Ok(None);
        };
        let gs: Vec<Tensor> = gs.into_iter().cloned().collect();
        Ok(Some(crate::ops::multi_tensor::concat_flat(&gs)?))
    }

    /// One update from the gradients in `grads`. Variables without a gradient are left alone
    /// (their moments too, as in PyTorch).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        if let Some(g) = self.flat_gradient(grads)? {
            return self.step_flat(g);
        }
        self.step += 1;
        if self.vars.is_empty() {
            return Ok(());
        }
        // Some variable has no gradient: one at a time, then the moments put back together.
        let (mut ms, mut vs) = (Vec::new(), Vec::new());
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let (m, v) = (self.part(&self.m, i)?, self.part(&self.v, i)?);
            let Some(g) = grads.get(var) else {
                ms.push(m.flatten_all()?);
                vs.push(v.flatten_all()?);
                continue;
            };
            let (m, v, update) = self.update(&m, &v, g.clone(), &|| Ok(var.as_tensor().clone()))?;
            subtract(var, &update)?;
            ms.push(m.flatten_all()?);
            vs.push(v.flatten_all()?);
        }
        self.m = Tensor::cat(&ms, 0)?;
        self.v = Tensor::cat(&vs, 0)?;
        Ok(())
    }

    /// One update from every variable's gradient at once, as [`Self::flat_gradient`] lays
    /// them out (a caller that also needs the flat gradient, for its norm, builds it once).
    pub fn step_flat(&mut self, g: Tensor) -> Result<()> {
        let total = self.offsets[self.vars.len()];
        if g.dims() != [total] {
            candle_core::bail!(
                "Adam: a flat gradient of shape {:?} for {total} parameters",
                g.dims()
            );
        }
        self.step += 1;
        if self.vars.is_empty() {
            return Ok(());
        }
        let tensors: Vec<Tensor> = self
            .vars
            .iter()
            .map(|(_, var)| var.as_tensor().clone())
            .collect();
        let params = || crate::ops::multi_tensor::concat_flat(&tensors);
        let (m, v, update) = self.update(&self.m, &self.v, g, &params)?;
        if !crate::ops::multi_tensor::sub_each_in_place(&tensors, &update)? {
            let sub = crate::ops::cuda_op_names::MULTI_TENSOR_SUB;
            crate::ops::stand_in(sub, update.device(), || -> Result<()> {
                for (i, (_, var)) in self.vars.iter().enumerate() {
                    subtract(var, &self.part(&update, i)?)?;
                }
                Ok(())
            })?;
        }
        self.m = m;
        self.v = v;
        Ok(())
    }

    /// The new moments and the update (to subtract) for gradient `g` over the parameters
    /// `param` (read only with weight decay), at the current step.
    fn update(
        &self,
        m: &Tensor,
        v: &Tensor,
        g: Tensor,
        param: &dyn Fn() -> Result<Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let p = self.params;
        let bc1 = 1.0 - p.beta1.powi(self.step as i32);
        let bc2 = 1.0 - p.beta2.powi(self.step as i32);
        let step_size = p.lr / bc1;
        let g = if p.weight_decay != 0.0 {
            (g + (param()? * p.weight_decay)?)?
        } else {
            g
        };
        let m = ((m * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
        let v = ((v * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
        // PyTorch: denom = sqrt(v) / sqrt(bc2) + eps; param -= lr / bc1 * m / denom
        let denom = ((v.sqrt()? / bc2.sqrt())? + p.eps)?;
        let update = ((&m / denom)? * step_size)?;
        Ok((m, v, update))
    }

    /// The optimiser state as named tensors (`exp_avg.<name>`, `exp_avg_sq.<name>`, `step`).
    /// They are on the CPU: each is a view of the flat moments, and reading a view of a GPU
    /// tensor back copies its whole buffer, so the two buffers come over once first.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let cpu = candle_core::Device::Cpu;
        let (m, v) = (self.m.to_device(&cpu)?, self.v.to_device(&cpu)?);
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("exp_avg.{name}"), self.part(&m, i)?);
            out.insert(format!("exp_avg_sq.{name}"), self.part(&v, i)?);
        }
        out.insert("step".into(), Tensor::new(&[self.step as i64], &cpu)?);
        Ok(out)
    }

    /// Restores state saved by [`Self::state_tensors`]; every variable must be present with the
    /// same shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let (mut ms, mut vs) = (Vec::new(), Vec::new());
        for (name, var) in &self.vars {
            for (prefix, flat) in [("exp_avg", &mut ms), ("exp_avg_sq", &mut vs)] {
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
                flat.push(
                    t.to_device(var.device())?
                        .to_dtype(var.dtype())?
                        .flatten_all()?,
                );
            }
        }
        let step = state
            .get("step")
            .ok_or_else(|| candle_core::Error::Msg("optimizer state lacks step".into()))?;
        let step = step.flatten_all()?.to_vec1::<i64>()?[0] as usize;
        if !self.vars.is_empty() {
            self.m = Tensor::cat(&ms, 0)?;
            self.v = Tensor::cat(&vs, 0)?;
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The per-variable Adam this one replaced, as the reference (PyTorch's formulas).
    fn reference_step(
        vars: &[(String, Var)],
        m: &mut [Tensor],
        v: &mut [Tensor],
        step: usize,
        p: AdamParams,
        grads: &GradStore,
    ) {
        let bc1 = 1.0 - p.beta1.powi(step as i32);
        let bc2 = 1.0 - p.beta2.powi(step as i32);
        for (i, (_, var)) in vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let g = if p.weight_decay != 0.0 {
                (g + (var.as_tensor() * p.weight_decay).unwrap()).unwrap()
            } else {
                g.clone()
            };
            m[i] = ((&m[i] * p.beta1).unwrap() + (&g * (1.0 - p.beta1)).unwrap()).unwrap();
            v[i] = ((&v[i] * p.beta2).unwrap() + (g.sqr().unwrap() * (1.0 - p.beta2)).unwrap())
                .unwrap();
            let denom = ((v[i].sqrt().unwrap() / bc2.sqrt()).unwrap() + p.eps).unwrap();
            let update = ((&m[i] / denom).unwrap() * (p.lr / bc1)).unwrap();
            var.set(&var.as_tensor().sub(&update).unwrap()).unwrap();
        }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Three variables; `loss(vars)` uses all but, where `skip_c`, the last.
    fn grads(vars: &[(String, Var)], k: f64, skip_c: bool) -> GradStore {
        let a = vars[0].1.as_tensor();
        let b = vars[1].1.as_tensor();
        let c = vars[2].1.as_tensor();
        let mut loss = ((a.sqr().unwrap() * k).unwrap().sum_all().unwrap()
            + (b.sin().unwrap().sum_all().unwrap()))
        .unwrap();
        if !skip_c {
            loss = (loss + (c.exp().unwrap().sum_all().unwrap() * 0.3).unwrap()).unwrap();
        }
        loss.backward().unwrap()
    }

    fn fresh_vars() -> Vec<(String, Var)> {
        let dev = Device::Cpu;
        let t = |n: usize, s: f32| {
            let v: Vec<f32> = (0..n).map(|i| ((i as f32 + 1.0) * s).sin()).collect();
            Var::from_vec(v, n, &dev).unwrap()
        };
        vec![
            ("a.weight".into(), t(6, 0.7)),
            ("b.bias".into(), t(1, 1.3)),
            ("c.weight".into(), t(10, -0.4)),
        ]
    }

    #[test]
    fn flat_steps_are_bit_for_bit_the_per_variable_ones() {
        for weight_decay in [0.0, 0.01] {
            let p = AdamParams {
                lr: 0.05,
                weight_decay,
                ..AdamParams::default()
            };
            let ours_vars = fresh_vars();
            let ref_vars = fresh_vars();
            let mut opt = Adam::new(ours_vars.clone(), p).unwrap();
            let mut m: Vec<Tensor> = ref_vars
                .iter()
                .map(|(_, v)| v.zeros_like().unwrap())
                .collect();
            let mut v = m.clone();
            // Step 3 leaves `c` without a gradient: the per-variable fallback.
            for step in 1..=5 {
                let skip_c = step == 3;
                let k = 0.5 + step as f64;
                opt.step(&grads(&ours_vars, k, skip_c)).unwrap();
                let g = grads(&ref_vars, k, skip_c);
                reference_step(&ref_vars, &mut m, &mut v, step, p, &g);
                for ((name, a), (_, b)) in ours_vars.iter().zip(&ref_vars) {
                    assert_eq!(
                        values(a.as_tensor()),
                        values(b.as_tensor()),
                        "{name} after step {step} (weight decay {weight_decay})"
                    );
                }
            }
            let state = opt.state_tensors().unwrap();
            for (i, (name, _)) in ref_vars.iter().enumerate() {
                assert_eq!(values(&state[&format!("exp_avg.{name}")]), values(&m[i]));
                assert_eq!(values(&state[&format!("exp_avg_sq.{name}")]), values(&v[i]));
            }
        }
    }

    #[test]
    fn first_step_moves_each_weight_by_the_learning_rate_against_its_gradient() {
        // Step 1: m̂ = g, v̂ = g², so the update is lr · g / (|g| + ε).
        let vars = fresh_vars();
        let before: Vec<Vec<f32>> = vars.iter().map(|(_, v)| values(v.as_tensor())).collect();
        let g = grads(&vars, 2.0, false);
        let gs: Vec<Vec<f32>> = vars
            .iter()
            .map(|(_, v)| values(g.get(v).unwrap()))
            .collect();
        let mut opt = Adam::new(vars.clone(), AdamParams::default()).unwrap();
        opt.step(&g).unwrap();
        for (i, (name, var)) in vars.iter().enumerate() {
            for (j, after) in values(var.as_tensor()).into_iter().enumerate() {
                let gj = gs[i][j] as f64;
                let want = before[i][j] as f64 - 1e-3 * gj / (gj.abs() + 1e-8);
                assert!(
                    (after as f64 - want).abs() < 1e-6,
                    "{name}[{j}]: {after} vs {want}"
                );
            }
        }
    }

    #[test]
    fn state_round_trips_and_the_run_continues_identically() {
        let p = AdamParams {
            lr: 0.02,
            ..AdamParams::default()
        };
        let (va, vb) = (fresh_vars(), fresh_vars());
        let mut a = Adam::new(va.clone(), p).unwrap();
        for k in [1.0, 2.0] {
            a.step(&grads(&va, k, false)).unwrap();
        }
        // `b` takes `a`'s weights and state, then both go on.
        for ((_, x), (_, y)) in va.iter().zip(&vb) {
            y.set(x.as_tensor()).unwrap();
        }
        let mut b = Adam::new(vb.clone(), p).unwrap();
        b.load_state(&a.state_tensors().unwrap()).unwrap();
        for k in [3.0, 4.0] {
            a.step(&grads(&va, k, false)).unwrap();
            b.step(&grads(&vb, k, false)).unwrap();
        }
        for ((name, x), (_, y)) in va.iter().zip(&vb) {
            assert_eq!(values(x.as_tensor()), values(y.as_tensor()), "{name}");
        }
        // A state missing a variable is refused and changes nothing.
        let mut partial = a.state_tensors().unwrap();
        partial.remove("exp_avg.b.bias");
        let e = b.load_state(&partial).unwrap_err().to_string();
        assert!(e.contains("exp_avg.b.bias"), "{e}");
    }
}
