//! Does a device compute what the CPU computes? The UNet, with the same weights and inputs, on a
//! device and on the CPU: its output and the gradient of every parameter, compared. The CPU side
//! runs ddpm-lab's CPU kernels (checked against PyTorch by the parity tests); the device side
//! runs whatever that device runs in training (on a GPU: candle's ops and ddpm-lab's GPU
//! kernels). On the CPU itself the device side takes the GPU route (`ops::device_conv`) so that
//! its maths is checked anywhere. `ddpm-lab check-device` prints the result.

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::model::{new_trainable, UnetConfig};
use crate::ops::{force_route, Route};

/// Tolerance of the output, relative to its largest magnitude.
pub const OUTPUT_TOLERANCE: f32 = 1e-4;
/// Tolerance of each parameter's gradient, relative to that gradient's largest magnitude (a sum
/// over the batch and the image of products in another order: looser than the output).
pub const GRADIENT_TOLERANCE: f32 = 1e-3;

/// The comparison's result.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCheck {
    /// The device checked (candle's name for it).
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
    /// Output and every gradient within tolerance.
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
    let device_route = if device.is_cpu() {
        Some(Route::Device)
    } else {
        None
    };
    let reference = run(config, &Device::Cpu, Some(Route::Cpu), batch, size, seed);
    let checked = run(config, device, device_route, batch, size, seed);
    force_route(None);
    let (y_cpu, g_cpu) = reference?;
    let (y_dev, g_dev) = checked?;
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
        // NaN counts as the worst.
        if e.is_nan() || e > worst.1 || worst.0.is_empty() {
            worst = (name.clone(), e);
        }
        if e.is_nan() || e > GRADIENT_TOLERANCE {
            over.push((name.clone(), e));
        }
    }
    Ok(DeviceCheck {
        device: format!("{:?}", device.location()),
        input: [batch, config.channels, size, size],
        ok: output_error <= OUTPUT_TOLERANCE && over.is_empty(),
        output_error,
        parameters: g_cpu.len(),
        worst_gradient: worst,
        gradients_over_tolerance: over,
    })
}

/// The UNet's output on the fixed inputs and the gradient of `Σ out · r` (a fixed `r`) for
/// every parameter, by name, on `device` with its layers on `route` (`None`: the device's own).
fn run(
    config: &UnetConfig,
    device: &Device,
    route: Option<Route>,
    batch: usize,
    size: usize,
    seed: u64,
) -> anyhow::Result<(Tensor, Vec<(String, Tensor)>)> {
    force_route(route);
    let (model, varmap) = new_trainable(config, seed, device)?;
    let x = wave(&[batch, config.channels, size, size], 0.731)?
        .sin()?
        .to_device(device)?;
    let t: Vec<u32> = (0..batch as u32).map(|i| (i * 97 + 3) % 300).collect();
    let t = Tensor::new(t.as_slice(), device)?;
    let y = model.forward(&x, &t)?;
    let r = wave(y.dims(), 0.37)?.cos()?.to_device(device)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let mut vars: Vec<_> = varmap.data().lock().unwrap().clone().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let grads = vars
        .into_iter()
        .map(|(name, v)| match grads.get(&v) {
            Some(g) => Ok((name, g.to_device(&Device::Cpu)?)),
            None => anyhow::bail!("no gradient for {name} on {:?}", device.location()),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((y.to_device(&Device::Cpu)?, grads))
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
