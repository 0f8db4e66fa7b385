//! The kernels of `multi_tensor.cu` behind [`crate::ops::multi_tensor`]: gathering many tensors
//! into one flat tensor, and subtracting a flat tensor's parts from many tensors in place, each
//! in one launch per [`MAX_TENSORS`] tensors instead of one per tensor.

use candle_core::cuda_backend::cudarc::driver::{
    DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::WrapErr;
use candle_core::op::BackpropOp;
use candle_core::{CudaStorage, DType, Result, Storage, Tensor};

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
pub const MAX_TENSORS: usize = 128;

/// `multi_tensor.cu`'s `TensorTable`, passed by value as a kernel parameter.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct TensorTable {
    ptrs: [u64; MAX_TENSORS],
    starts: [i32; MAX_TENSORS + 1],
    count: i32,
}

// SAFETY: a plain `repr(C)` struct of integers, laid out as the kernels' `TensorTable` (8-byte
// pointers, then `int`s), which the driver copies into the kernel's parameters.
unsafe impl DeviceRepr for TensorTable {}

/// Whether [`gather`] and [`sub_each`] take `ts`: f32 tensors on one CUDA device, each
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
        && matches!(ts.iter().map(Tensor::elem_count).sum(), n if n > 0 && super::int(n).is_ok())
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
        let n = chunk.iter().map(Tensor::elem_count).sum::<usize>();
        if n > 0 {
            let mut out = flat.slice_mut(base..base + n);
            let (out_ptr, _sync) = out.device_ptr_mut(&stream);
            with_table(chunk, |table| {
                // SAFETY: the table holds `chunk`'s buffers, each with as many elements as
                // its starts say (checked by `with_table`), and `out` holds their total.
                unsafe { launch(&dev, "multi_tensor_gather", table, out_ptr, n) }
            })?;
        }
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
    let (start, _) = layout
        .contiguous_offsets()
        .expect("supports() checked contiguity");
    let mut base = start;
    for chunk in ts.chunks(MAX_TENSORS) {
        let n = chunk.iter().map(Tensor::elem_count).sum::<usize>();
        if n > 0 {
            let part = fs.as_cuda_slice::<f32>()?.slice(base..base + n);
            let (part_ptr, _sync) = part.device_ptr(&stream);
            with_table(chunk, |table| {
                // SAFETY: as in `gather`; `part` holds the chunk's total, and the kernel writes
                // only the tables' buffers, which hold the tensors' own elements.
                unsafe { launch(&dev, "multi_tensor_sub", table, part_ptr, n) }
            })?;
        }
        base += n;
    }
    Ok(())
}

/// The tensors' total length, after checking [`supports`].
fn checked_total(ts: &[Tensor]) -> Result<usize> {
    if !supports(ts) {
        candle_core::bail!(
            "CUDA multi-tensor op: {} tensors that are not all contiguous f32 on one CUDA device \
             (or too many elements for an int)",
            ts.len()
        );
    }
    Ok(ts.iter().map(Tensor::elem_count).sum())
}

fn cuda_device(t: &Tensor) -> Result<candle_core::CudaDevice> {
    match t.device() {
        candle_core::Device::Cuda(d) => Ok(d.clone()),
        _ => candle_core::bail!(
            "CUDA multi-tensor op on a {:?} tensor",
            t.device().location()
        ),
    }
}

/// Calls `f` with the table of `chunk` (at most [`MAX_TENSORS`] contiguous f32 CUDA tensors),
/// their buffers' read locks held throughout.
fn with_table(chunk: &[Tensor], f: impl FnOnce(&TensorTable) -> Result<()>) -> Result<()> {
    if chunk.len() > MAX_TENSORS {
        candle_core::bail!("CUDA multi-tensor op: {} tensors in one table", chunk.len());
    }
    let stream = cuda_device(&chunk[0])?.cuda_stream();
    let guards: Vec<_> = chunk.iter().map(Tensor::storage_and_layout).collect();
    let mut table = TensorTable {
        ptrs: [0; MAX_TENSORS],
        starts: [0; MAX_TENSORS + 1],
        count: chunk.len() as i32,
    };
    let mut syncs = Vec::with_capacity(chunk.len());
    let mut start = 0usize;
    for (k, (storage, layout)) in guards.iter().enumerate() {
        let Storage::Cuda(s) = &**storage else {
            candle_core::bail!("CUDA multi-tensor op: a tensor not on CUDA");
        };
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("CUDA multi-tensor op: a non-contiguous tensor");
        };
        let view = s.as_cuda_slice::<f32>()?.slice(a..b);
        let (ptr, sync) = view.view_ptr(&stream);
        table.ptrs[k] = ptr;
        table.starts[k] = super::int(start)?;
        syncs.push(sync);
        start += b - a;
    }
    table.starts[chunk.len()] = super::int(start)?;
    f(&table)
}

/// Launches `kernel(table, flat)` over `n` flat elements.
///
/// # Safety
/// `table` must hold live buffers of as many f32 elements as its starts say, and `flat` (a
/// device pointer) at least `n` = the table's total; for `multi_tensor_sub`, the table's
/// buffers must not overlap `flat` or each other.
unsafe fn launch(
    dev: &candle_core::CudaDevice,
    kernel: &str,
    table: &TensorTable,
    flat: u64,
    n: usize,
) -> Result<()> {
    let func = dev.get_or_load_custom_func(kernel, KERNELS.name, KERNELS.ptx)?;
    let cfg: LaunchConfig = grid_stride(n, THREADS);
    let mut b = func.builder();
    b.arg(table);
    b.arg(&flat);
    // SAFETY: the caller's contract; the parameters match the kernels' (table, float*).
    unsafe { b.launch(cfg) }.w()?;
    Ok(())
}
