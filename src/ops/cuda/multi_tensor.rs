//! The kernels of `multi_tensor.cu` behind [`crate::ops::multi_tensor`]: gathering many tensors
//! into one flat tensor, subtracting a flat tensor's parts from many tensors in place, and
//! `a·keep + b·(1 − keep)` over many pairs, each in one launch per [`MAX_TENSORS`] tensors
//! instead of one or more per tensor.

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, PushKernelArg, SyncOnDrop,
};
use candle_core::cuda_backend::WrapErr;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result, Storage, StorageRef, Tensor};

use super::{grid_stride, Module};

/// The kernels' PTX (compiled for compute capability 7.5; the driver compiles it for the GPU).
pub(super) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/multi_tensor.ptx"));
/// The kernels of `multi_tensor.cu`.
const KERNELS: Module = Module {
    name: "ddpm_lab_multi_tensor",
    ptx: PTX,
};
/// Threads per block.
const THREADS: u32 = 256;
/// The most tensors one launch takes (`MT_MAX_TENSORS` in multi_tensor.cu).
pub const MAX_TENSORS: usize = 64;

/// `multi_tensor.cu`'s `TensorTable`, passed by value as a kernel parameter: up to three
/// pointer lists (unused ones stay 0) over the same lengths.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct TensorTable {
    a: [u64; MAX_TENSORS],
    b: [u64; MAX_TENSORS],
    out: [u64; MAX_TENSORS],
    starts: [i32; MAX_TENSORS + 1],
    count: i32,
}

// SAFETY: a plain `repr(C)` struct of integers, laid out as the kernels' `TensorTable` (8-byte
// pointers, then `int`s), which the driver copies into the kernel's parameters.
unsafe impl DeviceRepr for TensorTable {}

impl TensorTable {
    /// The table of tensors with these lengths and pointers (`b` and `out` may be empty).
    fn new(lens: &[usize], a: &[u64], b: &[u64], out: &[u64]) -> Result<Self> {
        if lens.len() > MAX_TENSORS || a.len() != lens.len() {
            candle_core::bail!("CUDA multi-tensor op: a table of {} tensors", lens.len());
        }
        let mut t = Self {
            a: [0; MAX_TENSORS],
            b: [0; MAX_TENSORS],
            out: [0; MAX_TENSORS],
            starts: [0; MAX_TENSORS + 1],
            count: lens.len() as i32,
        };
        t.a[..a.len()].copy_from_slice(a);
        t.b[..b.len()].copy_from_slice(b);
        t.out[..out.len()].copy_from_slice(out);
        let mut start = 0;
        for (k, len) in lens.iter().enumerate() {
            t.starts[k] = super::int(start)?;
            start += len;
        }
        t.starts[lens.len()] = super::int(start)?;
        Ok(t)
    }
}

/// Whether the multi-tensor kernels take `ts`: f32 tensors on one CUDA device, each
/// contiguous, their total above 0 and within the kernels' `int`, and the kernels not switched
/// off ([`super::KERNELS_VAR`]: `multi_tensor`).
pub fn supports(ts: &[Tensor]) -> bool {
    let Some(first) = ts.first() else {
        return false;
    };
    super::enabled("multi_tensor")
        && first.device().is_cuda()
        && ts.iter().all(|t| {
            t.dtype() == DType::F32
                && t.device().same_device(first.device())
                && t.layout().contiguous_offsets().is_some()
        })
        && matches!(ts.iter().map(Tensor::elem_count).sum(), n if n > 0 && super::grid_len(n).is_ok())
}

/// `ts`, each flattened, concatenated into one new 1-D tensor; errs unless [`supports`] holds.
pub fn gather(ts: &[Tensor]) -> Result<Tensor> {
    let total = checked_total(ts)?;
    let dev = cuda_device(&ts[0])?;
    let stream = dev.cuda_stream();
    // SAFETY: the launches below write every element: each chunk's part, chunk after chunk.
    let mut flat = unsafe { dev.alloc::<f32>(total)? };
    let mut base = 0;
    for chunk in ts.chunks(MAX_TENSORS) {
        let guards = locks(chunk);
        let (a, _reads) = pointers(&guards, &stream)?;
        let lens = lengths(chunk);
        let n: usize = lens.iter().sum();
        let mut out = flat.slice_mut(base..base + n);
        let (out_ptr, _write) = out.device_ptr_mut(&stream);
        let table = TensorTable::new(&lens, &a, &[], &[])?;
        // SAFETY: the table holds the chunk's live buffers with their lengths, and `out` the
        // chunk's total; the kernel only reads the table's buffers.
        unsafe { launch(&dev, "multi_tensor_gather", &table, n, &[out_ptr], &[]) }?;
        base += n;
    }
    Ok(Tensor::from_storage(
        Storage::Cuda(CudaStorage::wrap_cuda_slice(flat, dev)),
        total,
        BackpropOp::none(),
        false,
    ))
}

/// `t −= flat[start_t .. start_t + |t|]` for every `t` of `ts`, in `t`'s own buffer, where the
/// parts follow one another as [`gather`] lays them out; errs unless [`supports`] holds for `ts`
/// and `flat` is a contiguous f32 tensor of their total length on the same device.
///
/// The tensors must not share buffers with each other or with `flat` (variables do not).
pub fn sub_each(ts: &[Tensor], flat: &Tensor) -> Result<()> {
    let total = checked_total(ts)?;
    if flat.dims() != [total]
        || !supports(std::slice::from_ref(flat))
        || !flat.device().same_device(ts[0].device())
    {
        candle_core::bail!(
            "CUDA multi-tensor subtract: a flat {:?} {:?} for {total} elements",
            flat.dims(),
            flat.dtype()
        );
    }
    let dev = cuda_device(&ts[0])?;
    let stream = dev.cuda_stream();
    let (storage, layout) = flat.storage_and_layout();
    let Storage::Cuda(fs) = &*storage else {
        candle_core::bail!("CUDA multi-tensor subtract: flat is not on CUDA");
    };
    let Some((mut base, _)) = layout.contiguous_offsets() else {
        candle_core::bail!("CUDA multi-tensor subtract: flat is not contiguous");
    };
    for chunk in ts.chunks(MAX_TENSORS) {
        let guards = locks(chunk);
        let (a, _reads) = pointers(&guards, &stream)?;
        let lens = lengths(chunk);
        let n: usize = lens.iter().sum();
        let part = fs.as_cuda_slice::<f32>()?.slice(base..base + n);
        let (part_ptr, _read) = part.device_ptr(&stream);
        let table = TensorTable::new(&lens, &a, &[], &[])?;
        // SAFETY: as in `gather`; `part` holds the chunk's total, and the kernel writes only
        // the table's buffers, each the tensor's own elements, none overlapping another or
        // `flat` (the caller's contract). candle runs a device's work on one stream, so the
        // writes are ordered with every other use of these buffers.
        unsafe { launch(&dev, "multi_tensor_sub", &table, n, &[part_ptr], &[]) }?;
        base += n;
    }
    Ok(())
}

/// `a_k·keep + b_k·(1 − keep)` for every pair, as new tensors in `a`'s shapes; errs unless
/// [`supports`] holds for `a` and for `b` and each pair has one shape on one device.
pub fn lerp(a: &[Tensor], b: &[Tensor], keep: f64) -> Result<Vec<Tensor>> {
    checked_total(a)?;
    checked_total(b)?;
    if a.len() != b.len()
        || a.iter().zip(b).any(|(x, y)| x.dims() != y.dims())
        || !a[0].device().same_device(b[0].device())
    {
        candle_core::bail!("CUDA multi-tensor lerp: operands of different shapes or devices");
    }
    let dev = cuda_device(&a[0])?;
    let stream = dev.cuda_stream();
    let mut outs = Vec::with_capacity(a.len());
    for (ca, cb) in a.chunks(MAX_TENSORS).zip(b.chunks(MAX_TENSORS)) {
        let lens = lengths(ca);
        // SAFETY: the launch below writes every element of every output (its whole length).
        let mut bufs = lens
            .iter()
            .map(|&n| unsafe { dev.alloc::<f32>(n) })
            .collect::<Result<Vec<CudaSlice<f32>>>>()?;
        {
            let (ga, gb) = (locks(ca), locks(cb));
            let (pa, _ra) = pointers(&ga, &stream)?;
            let (pb, _rb) = pointers(&gb, &stream)?;
            let (po, _writes): (Vec<u64>, Vec<_>) =
                bufs.iter_mut().map(|s| s.device_ptr_mut(&stream)).unzip();
            let table = TensorTable::new(&lens, &pa, &pb, &po)?;
            let n: usize = lens.iter().sum();
            let floats = [keep as f32, (1.0 - keep) as f32];
            // SAFETY: the table holds the pairs' live buffers and the new outputs, all with the
            // lengths its starts say; the kernel writes only the new outputs.
            unsafe { launch(&dev, "multi_tensor_lerp", &table, n, &[], &floats) }?;
        }
        for (buf, t) in bufs.into_iter().zip(ca) {
            outs.push(Tensor::from_storage(
                Storage::Cuda(CudaStorage::wrap_cuda_slice(buf, dev.clone())),
                t.shape().clone(),
                BackpropOp::none(),
                false,
            ));
        }
    }
    Ok(outs)
}

/// The tensors' total length, after checking [`supports`].
fn checked_total(ts: &[Tensor]) -> Result<usize> {
    if !supports(ts) {
        candle_core::bail!(
            "CUDA multi-tensor op: {} tensors that are not all contiguous f32 on one CUDA device \
             (or no elements, or too many for an int)",
            ts.len()
        );
    }
    Ok(ts.iter().map(Tensor::elem_count).sum())
}

fn cuda_device(t: &Tensor) -> Result<CudaDevice> {
    match t.device() {
        candle_core::Device::Cuda(d) => Ok(d.clone()),
        _ => candle_core::bail!(
            "CUDA multi-tensor op on a {:?} tensor",
            t.device().location()
        ),
    }
}

fn lengths(ts: &[Tensor]) -> Vec<usize> {
    ts.iter().map(Tensor::elem_count).collect()
}

/// The tensors' storages, read-locked while their pointers are in use.
fn locks(ts: &[Tensor]) -> Vec<(StorageRef<'_>, &Layout)> {
    ts.iter().map(Tensor::storage_and_layout).collect()
}

/// The device pointer of each locked contiguous f32 CUDA tensor's first element, and the
/// guards that order their use on `stream` (held until after the launch).
fn pointers<'a>(
    guards: &'a [(StorageRef<'a>, &'a Layout)],
    stream: &'a CudaStream,
) -> Result<(Vec<u64>, Vec<SyncOnDrop<'a>>)> {
    let mut ptrs = Vec::with_capacity(guards.len());
    let mut syncs = Vec::with_capacity(guards.len());
    for (storage, layout) in guards {
        let Storage::Cuda(s) = &**storage else {
            candle_core::bail!("CUDA multi-tensor op: a tensor not on CUDA");
        };
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("CUDA multi-tensor op: a non-contiguous tensor");
        };
        let (ptr, sync) = s.as_cuda_slice::<f32>()?.slice(a..b).view_ptr(stream);
        ptrs.push(ptr);
        syncs.push(sync);
    }
    Ok((ptrs, syncs))
}

/// Launches `kernel(table, ptrs…, floats…)` over `n` flat elements.
///
/// # Safety
/// The table's lists must hold live buffers of as many f32 elements as its starts say, each
/// pointer of `ptrs` a buffer of at least `n` elements, and the parameters must match the
/// kernel's; buffers the kernel writes must not overlap any other it touches.
unsafe fn launch(
    dev: &CudaDevice,
    kernel: &str,
    table: &TensorTable,
    n: usize,
    ptrs: &[u64],
    floats: &[f32],
) -> Result<()> {
    let func = dev.get_or_load_custom_func(kernel, KERNELS.name, KERNELS.ptx)?;
    let mut b = func.builder();
    b.arg(table);
    for p in ptrs {
        b.arg(p);
    }
    for f in floats {
        b.arg(f);
    }
    // SAFETY: the caller's contract.
    unsafe { b.launch(grid_stride(n, THREADS)) }.w()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{TensorTable, MAX_TENSORS};

    #[test]
    fn device_multi_tensor_table_starts_follow_the_lengths() {
        let t = TensorTable::new(&[5, 0, 3], &[10, 20, 30], &[], &[7, 8, 9]).unwrap();
        assert_eq!(t.count, 3);
        assert_eq!(&t.starts[..4], &[0, 5, 5, 8]);
        assert_eq!(&t.a[..3], &[10, 20, 30]);
        assert_eq!(&t.out[..3], &[7, 8, 9]);
        assert!(t.b.iter().all(|&p| p == 0));
        let many = vec![1; MAX_TENSORS + 1];
        assert!(
            TensorTable::new(&many, &many.iter().map(|_| 1).collect::<Vec<_>>(), &[], &[]).is_err()
        );
        // The total must fit the kernels' int.
        assert!(TensorTable::new(&[i32::MAX as usize, 1], &[1, 2], &[], &[]).is_err());
    }
}
