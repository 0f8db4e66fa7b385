//! Does a device compute what the CPU computes? The UNet, with the same weights and inputs, on a
//! device and on the CPU: its output and the gradient of every parameter, compared. The CPU side
//! runs ddpm-lab's CPU kernels (checked against PyTorch by the parity tests); the device side
//! runs whatever that device runs in training (on a GPU: candle's ops and ddpm-lab's GPU
//! kernels). On the CPU itself the device side takes the GPU route (`ops::device_conv`) so that
//! its maths is checked anywhere. Then one Adam step from those gradients on the device, against
//! the same step replayed on the CPU from the device's own gradients: the optimiser's mechanics
//! on the device (its flat gradient, its in-place updates), not the gradients again; and one
//! EMA update of the weights across that step, against its replay on the CPU.
//! `ddpm-lab check-device` prints the result.

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::model::{new_trainable, UnetConfig};
use crate::ops::{force_route, Route};
use crate::train::adam::{Adam, AdamParams};
use crate::train::ema::Ema;

/// Tolerance of the output, relative to its largest magnitude.
pub const OUTPUT_TOLERANCE: f32 = 1e-4;
/// Tolerance of each parameter's gradient, relative to that gradient's largest magnitude (a sum
/// over the batch and the image of products in another order: looser than the output).
pub const GRADIENT_TOLERANCE: f32 = 1e-3;
/// Tolerance of each parameter's Adam step on the device against the same step on the CPU from
/// the same gradients, relative to the step's largest magnitude (element-wise maths only).
pub const OPTIMIZER_TOLERANCE: f32 = 1e-4;
/// Tolerance of each shadow weight after one EMA update on the device against the update
/// replayed on the CPU, relative to its largest magnitude (two products and a sum per element).
pub const EMA_TOLERANCE: f32 = 1e-5;
/// The EMA decay of the check (far from 1, so that a step's weights weigh in the average).
const EMA_DECAY: f64 = 0.75;

/// The comparison's result.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCheck {
    /// The device checked, as `--device` names it (`cuda`, `cuda:1`, `cpu`).
    pub device: String,
    /// The input's shape `(N, C, H, W)`.
    pub input: [usize; 4],
    /// Max |device − cpu| of the output, over its max |cpu|.
    pub output_error: f32,
    /// Parameters compared (every one has a gradient on both sides).
    pub parameters: usize,
    /// The worst parameter gradient: its name and max |device − cpu| over its max |cpu|.
    pub worst_gradient: (String, f32),
    /// Parameters whose relative gradient error is over [`GRADIENT_TOLERANCE`].
    pub gradients_over_tolerance: Vec<(String, f32)>,
    /// The worst parameter's Adam step on the device against the CPU's replay of it: its name
    /// and max |device − cpu| over the step's max magnitude.
    pub worst_optimizer_step: (String, f32),
    /// The worst shadow weight after one EMA update (decay 0.75) on the device, from the
    /// weights before and after the Adam step, against the CPU's replay: its name and max
    /// |device − cpu| over its max magnitude.
    pub worst_ema_update: (String, f32),
    /// Output, every gradient, the Adam step and the EMA update within tolerance.
    pub ok: bool,
}

/// Compares `config`'s UNet on `device` against the CPU on a batch of `batch` images of
/// `size`×`size` (weights from `seed`, fixed deterministic inputs).
pub fn check_device(
    config: &UnetConfig,
    device: &Device,
    batch: usize,
    size: usize,
    seed: u64,
) -> anyhow::Result<DeviceCheck> {
    config.validate_for_images(config.channels, size, size)?;
    if batch == 0 {
        anyhow::bail!("the batch must hold at least one image");
    }
    // Both sides train a step: refused in one line, in check-device's own flags, before
    // allocating, where the CPU's (the larger, with the device's results copied back) cannot
    // fit.
    use crate::store::config::{MAX_BATCH_SIZE, MAX_IMAGE_SIZE};
    if batch > MAX_BATCH_SIZE {
        anyhow::bail!("--batch must be at most {MAX_BATCH_SIZE}, got {batch}");
    }
    if size > MAX_IMAGE_SIZE {
        anyhow::bail!("--size must be at most {MAX_IMAGE_SIZE} pixels, got {size}");
    }
    let cpu_step = crate::store::TrainConfig {
        model: config.clone(),
        batch_size: batch,
        image_size: size,
        ema_decay: None,
        preview_every: 0,
        ..crate::store::TrainConfig::default()
    };
    let needed = crate::runs::budget::training(&cpu_step).host(true);
    crate::runs::budget::check_fits(
        &format!("checking this model on {batch} images of {size}×{size}"),
        needed,
        crate::runs::budget::available_memory(),
    )?;
    let device_route = if device.is_cpu() {
        Some(Route::Device)
    } else {
        None
    };
    let reference = run(config, &Device::Cpu, Some(Route::Cpu), batch, size, seed);
    let checked = run(config, device, device_route, batch, size, seed);
    force_route(None);
    let Run {
        output: y_cpu,
        grads: g_cpu,
        ..
    } = reference?;
    let Run {
        output: y_dev,
        grads: g_dev,
        before,
        after,
        ema,
    } = checked?;
    let worst_step = optimizer_step_error(&before, &g_dev, &after)?;
    let worst_ema = ema_update_error(&before, &after, &ema)?;
    let output_error = relative_error(&y_dev, &y_cpu)?;
    let mut worst = (String::new(), 0f32);
    let mut over = Vec::new();
    if g_cpu.len() != g_dev.len() {
        anyhow::bail!(
            "{} parameters on the CPU, {} on the device",
            g_cpu.len(),
            g_dev.len()
        );
    }
    for ((name, a), (cpu_name, b)) in g_dev.iter().zip(&g_cpu) {
        if name != cpu_name {
            anyhow::bail!("parameter {name} on the device against {cpu_name} on the CPU");
        }
        let e = relative_error(a, b)?;
        keep_worst(&mut worst, name, e);
        if e.is_nan() || e > GRADIENT_TOLERANCE {
            over.push((name.clone(), e));
        }
    }
    Ok(DeviceCheck {
        device: crate::device::DeviceSpec::of(device).to_string(),
        input: [batch, config.channels, size, size],
        ok: output_error <= OUTPUT_TOLERANCE
            && over.is_empty()
            && worst_step.1 <= OPTIMIZER_TOLERANCE
            && worst_ema.1 <= EMA_TOLERANCE,
        output_error,
        parameters: g_cpu.len(),
        worst_gradient: worst,
        gradients_over_tolerance: over,
        worst_optimizer_step: worst_step,
        worst_ema_update: worst_ema,
    })
}

/// One side's results, every tensor on the CPU and by parameter name (sorted).
struct Run {
    /// The UNet's output.
    output: Tensor,
    /// Each parameter's gradient.
    grads: Vec<(String, Tensor)>,
    /// Each parameter before the Adam step.
    before: Vec<(String, Tensor)>,
    /// Each parameter after one Adam step from `grads`.
    after: Vec<(String, Tensor)>,
    /// Each shadow weight of an EMA started at `before` and updated once at `after`.
    ema: Vec<(String, Tensor)>,
}

/// The worst parameter's Adam step from `before` with gradients `grads` as taken on a device
/// (`after`) against the same step on the CPU: its name and relative error (NaN counts as the
/// worst).
fn optimizer_step_error(
    before: &[(String, Tensor)],
    grads: &[(String, Tensor)],
    after: &[(String, Tensor)],
) -> anyhow::Result<(String, f32)> {
    let vars = before
        .iter()
        .map(|(name, t)| Ok((name.clone(), candle_core::Var::from_tensor(t)?)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let mut adam = Adam::new(vars.clone(), AdamParams::default())?;
    let gs: Vec<Tensor> = grads.iter().map(|(_, g)| g.clone()).collect();
    adam.step_flat(crate::ops::multi_tensor::concat_flat(&gs)?)?;
    let mut worst = (String::new(), 0f32);
    for (((name, var), (_, b)), (_, a)) in vars.iter().zip(before).zip(after) {
        let replayed = (var.as_tensor() - b)?;
        keep_worst(&mut worst, name, relative_error(&(a - b)?, &replayed)?);
    }
    Ok(worst)
}

/// The worst shadow weight of an EMA update on a device (`ema`, from `before` towards `after`,
/// decay [`EMA_DECAY`]) against the same update on the CPU: its name and relative error (NaN
/// counts as the worst).
fn ema_update_error(
    before: &[(String, Tensor)],
    after: &[(String, Tensor)],
    ema: &[(String, Tensor)],
) -> anyhow::Result<(String, f32)> {
    if ema.len() != before.len() {
        anyhow::bail!("{} EMA weights for {} parameters", ema.len(), before.len());
    }
    let mut worst = (String::new(), 0f32);
    for (((name, b), (_, a)), (ema_name, e)) in before.iter().zip(after).zip(ema) {
        if name != ema_name {
            anyhow::bail!("EMA weight {ema_name} against parameter {name}");
        }
        let replayed = ((b * EMA_DECAY)? + (a * (1.0 - EMA_DECAY))?)?;
        keep_worst(&mut worst, name, relative_error(e, &replayed)?);
    }
    Ok(worst)
}

/// `worst` becomes `(name, e)` if `e` is larger, NaN (which counts as the worst) or the first.
fn keep_worst(worst: &mut (String, f32), name: &str, e: f32) {
    if e.is_nan() || e > worst.1 || worst.0.is_empty() {
        *worst = (name.to_string(), e);
    }
}

/// The UNet's output on the fixed inputs, the gradient of `Σ out · r` (a fixed `r`) for every
/// parameter, the parameters before and after one Adam step from those gradients, and an EMA
/// of the weights across that step, on
/// `device` with its layers on `route` (`None`: the device's own).
fn run(
    config: &UnetConfig,
    device: &Device,
    route: Option<Route>,
    batch: usize,
    size: usize,
    seed: u64,
) -> anyhow::Result<Run> {
    force_route(route);
    let (model, varmap) = new_trainable(config, seed, device)?;
    let x = wave(&[batch, config.channels, size, size], 0.731)?
        .sin()?
        .to_device(device)?;
    let t: Vec<u32> = (0..batch as u32).map(|i| (i * 97 + 3) % 300).collect();
    let t = Tensor::new(t.as_slice(), device)?;
    let y = model.forward(&x, &t)?;
    let r = wave(y.dims(), 0.37)?.cos()?.to_device(device)?;
    // The checked side runs the backward pass training runs (releasing each activation once
    // the pass is done with it); the CPU reference runs candle's own.
    let loss = (&y * &r)?.sum_all()?;
    let store = if route == Some(Route::Cpu) {
        loss.backward()?
    } else {
        loss.backward_releasing()?
    };
    let mut vars: Vec<_> = varmap.data().lock().unwrap().clone().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let grads = vars
        .iter()
        .map(|(name, v)| match store.get(v) {
            Some(g) => Ok((name.clone(), g.to_device(&Device::Cpu)?)),
            None => anyhow::bail!(
                "no gradient for {name} on {}",
                crate::device::DeviceSpec::of(device)
            ),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let values = |vars: &[(String, candle_core::Var)]| {
        vars.iter()
            // A copy: on the CPU `to_device` shares the storage that Adam updates in place.
            .map(|(name, v)| Ok((name.clone(), v.as_tensor().to_device(&Device::Cpu)?.copy()?)))
            .collect::<candle_core::Result<Vec<_>>>()
    };
    let before = values(&vars)?;
    let mut ema_weights = Ema::new(&varmap, EMA_DECAY)?;
    Adam::new(vars.clone(), AdamParams::default())?.step(&store)?;
    let after = values(&vars)?;
    ema_weights.update(&varmap)?;
    let ema = vars
        .iter()
        .map(|(name, _)| match ema_weights.tensors().get(name) {
            Some(t) => Ok((name.clone(), t.to_device(&Device::Cpu)?)),
            None => anyhow::bail!("no EMA weight for {name}"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Run {
        output: y.to_device(&Device::Cpu)?,
        grads,
        before,
        after,
        ema,
    })
}

/// `0, step, 2·step, …` shaped `dims`, on the CPU (inputs are made there, so that both sides
/// see the same numbers).
fn wave(dims: &[usize], step: f64) -> candle_core::Result<Tensor> {
    let n: usize = dims.iter().product();
    (Tensor::arange(0u32, n as u32, &Device::Cpu)?.to_dtype(DType::F32)? * step)?.reshape(dims)
}

/// max |a − b| over max(max |b|, 1e-3); NaN if either holds a NaN.
fn relative_error(a: &Tensor, b: &Tensor) -> candle_core::Result<f32> {
    let a = a.flatten_all()?.to_vec1::<f32>()?;
    let b = b.flatten_all()?.to_vec1::<f32>()?;
    if a.len() != b.len() {
        candle_core::bail!("shapes differ: {} and {} elements", a.len(), b.len());
    }
    let mut diff = 0f32;
    let mut scale = 1e-3f32;
    for (x, y) in a.iter().zip(&b) {
        let d = (x - y).abs();
        if d.is_nan() {
            return Ok(f32::NAN);
        }
        diff = diff.max(d);
        scale = scale.max(y.abs());
    }
    Ok(diff / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device whose Adam step matches the CPU's replay passes; one that skipped a parameter's
    /// update, or half-applied it, is caught and named.
    #[test]
    fn optimizer_step_error_names_a_parameter_the_device_updated_wrongly() {
        let dev = Device::Cpu;
        let before = vec![
            (
                "a".to_string(),
                Tensor::new(&[0.5f32, -0.25, 1.0], &dev).unwrap(),
            ),
            (
                "b".to_string(),
                Tensor::new(&[[0.1f32, 0.2], [0.3, 0.4]], &dev).unwrap(),
            ),
        ];
        let grads = vec![
            (
                "a".to_string(),
                Tensor::new(&[1f32, -2.0, 0.5], &dev).unwrap(),
            ),
            (
                "b".to_string(),
                Tensor::new(&[[0.3f32, -0.1], [0.0, 2.0]], &dev).unwrap(),
            ),
        ];
        // The right step, taken here as a device would.
        let vars: Vec<_> = before
            .iter()
            .map(|(n, t)| (n.clone(), candle_core::Var::from_tensor(t).unwrap()))
            .collect();
        let mut adam = Adam::new(vars.clone(), AdamParams::default()).unwrap();
        let gs: Vec<Tensor> = grads.iter().map(|(_, g)| g.clone()).collect();
        adam.step_flat(crate::ops::multi_tensor::concat_flat(&gs).unwrap())
            .unwrap();
        let right: Vec<_> = vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().copy().unwrap()))
            .collect();
        let (_, e) = optimizer_step_error(&before, &grads, &right).unwrap();
        assert!(e < 1e-6, "{e}");
        // "b" not updated at all; then "a" with half its step.
        let skipped = vec![right[0].clone(), before[1].clone()];
        let (name, e) = optimizer_step_error(&before, &grads, &skipped).unwrap();
        assert_eq!(name, "b");
        assert!(e > 0.9, "{e}");
        let half_a = ((&right[0].1 + &before[0].1).unwrap() * 0.5).unwrap();
        let half = vec![("a".to_string(), half_a), right[1].clone()];
        let (name, e) = optimizer_step_error(&before, &grads, &half).unwrap();
        assert_eq!(name, "a");
        assert!(e > OPTIMIZER_TOLERANCE, "{e}");
    }

    /// An EMA update that matches the CPU's replay passes; one that left a weight's shadow
    /// where it was, or that used the decay the wrong way round, is caught and named.
    #[test]
    fn ema_update_error_names_a_weight_the_device_averaged_wrongly() {
        let dev = Device::Cpu;
        let t = |v: &[f32]| Tensor::new(v, &dev).unwrap();
        let before = vec![
            ("a".to_string(), t(&[1.0, -2.0])),
            ("b".to_string(), t(&[0.5])),
        ];
        let after = vec![
            ("a".to_string(), t(&[3.0, 2.0])),
            ("b".to_string(), t(&[-0.5])),
        ];
        // 0.75·before + 0.25·after.
        let right = vec![
            ("a".to_string(), t(&[1.5, -1.0])),
            ("b".to_string(), t(&[0.25])),
        ];
        let (_, e) = ema_update_error(&before, &after, &right).unwrap();
        assert!(e < 1e-7, "{e}");
        let stale = vec![right[0].clone(), before[1].clone()];
        let (name, e) = ema_update_error(&before, &after, &stale).unwrap();
        assert_eq!(name, "b");
        assert!(e > EMA_TOLERANCE, "{e}");
        let swapped = vec![("a".to_string(), t(&[2.5, 1.0])), right[1].clone()];
        let (name, e) = ema_update_error(&before, &after, &swapped).unwrap();
        assert_eq!(name, "a");
        assert!(e > EMA_TOLERANCE, "{e}");
        assert!(ema_update_error(&before, &after, &right[..1]).is_err());
    }

    #[test]
    fn relative_error_is_the_largest_difference_over_the_largest_reference() {
        let dev = Device::Cpu;
        let b = Tensor::new(&[2f32, -4.0, 1.0], &dev).unwrap();
        assert_eq!(relative_error(&b, &b).unwrap(), 0.0);
        let a = Tensor::new(&[2f32, -4.0, 1.5], &dev).unwrap();
        assert_eq!(relative_error(&a, &b).unwrap(), 0.5 / 4.0);
        // Tiny references are measured against 1e-3, not against themselves.
        let z = Tensor::new(&[0f32, 1e-6], &dev).unwrap();
        let e = relative_error(&Tensor::new(&[1e-5f32, 1e-6], &dev).unwrap(), &z).unwrap();
        assert!((e - 1e-2).abs() < 1e-6, "{e}");
        // A NaN anywhere is never within tolerance.
        let n = Tensor::new(&[2f32, f32::NAN, 1.0], &dev).unwrap();
        assert!(relative_error(&n, &b).unwrap().is_nan());
        assert!(relative_error(&b, &Tensor::new(&[1f32, 2.0], &dev).unwrap()).is_err());
    }
}
