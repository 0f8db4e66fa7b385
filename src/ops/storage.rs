//! The data of CPU `f32` tensors as the custom ops see it: the contiguous slices their `cpu_fwd`
//! and `bwd` work on, and the tensors built from their results.

use std::fmt::Display;

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// The contiguous `f32` data of a CPU storage seen through `layout`; errs naming `what` when the
/// layout is not contiguous.
pub(crate) fn cpu_slice<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    what: impl Display,
) -> Result<&'a [f32]> {
    let all = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => candle_core::bail!("{what}: expected a contiguous tensor"),
    }
}

/// The opening of a three-argument op's `cpu_fwd`: its input, weight and bias as contiguous
/// `f32` slices, with the bias checked to hold `bias_len` values. Errors name `op`.
pub(crate) fn input_weight_bias<'a>(
    op: &str,
    (sx, lx): (&'a CpuStorage, &Layout),
    (sw, lw): (&'a CpuStorage, &Layout),
    (sb, lb): (&'a CpuStorage, &Layout),
    bias_len: usize,
) -> Result<[&'a [f32]; 3]> {
    let x = cpu_slice(sx, lx, format_args!("{op} input"))?;
    let w = cpu_slice(sw, lw, format_args!("{op} weight"))?;
    let b = cpu_slice(sb, lb, format_args!("{op} bias"))?;
    if b.len() != bias_len {
        candle_core::bail!("{op}: bias has {} elements, expected {bias_len}", b.len());
    }
    Ok([x, w, b])
}

/// Runs `f` on the contiguous `f32` data of the CPU tensor `t` (made contiguous first if needed).
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = contiguous(t)?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(cpu_slice(c, l, "custom op")?),
        _ => candle_core::bail!("custom CPU op called on a non-CPU tensor"),
    }
}

/// [`with_f32`] on three tensors at once (a three-argument op's backward: input, weight and
/// output gradient).
pub(crate) fn with_f32_3<R>(
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    f: impl FnOnce(&[f32], &[f32], &[f32]) -> Result<R>,
) -> Result<R> {
    with_f32(a, |a| with_f32(b, |b| with_f32(c, |c| f(a, b, c))))
}

/// A CPU `f32` tensor of `shape` holding `data`.
pub(crate) fn cpu_tensor(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &candle_core::Device::Cpu)
}

/// Makes `t` contiguous only when it is not already.
pub(crate) fn contiguous(t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}
