//! How much memory a training step's graph keeps alive between the forward and the backward
//! pass, on the CPU: `cargo run --release --example kept_memory -- [BATCH] [device|cpu]`.
//!
//! candle keeps every op's inputs until the graph is dropped, where PyTorch keeps only what
//! each backward needs, so the GPU route's memory is mostly decided by which ops it is made
//! of. `device` (the default) builds the blog UNet's graph as on a GPU (`ops::force_route`:
//! the GPU route's formulations, run on the CPU), `cpu` as the CPU route does. Every
//! allocation is counted (a counting global allocator), so the figure is the bytes alive after
//! the forward pass and loss less those alive before, and the peak through the backward pass.
//! `scripts/pytorch_saved_memory.py` gives PyTorch's side for the same model and batch.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Device, Tensor};
use ddpm_lab::ops::{force_route, Route};

/// The system allocator, counting the bytes alive and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let batch: usize = match args.next() {
        Some(b) => b.parse()?,
        None => 128,
    };
    let route = args.next().unwrap_or_else(|| "device".into());
    force_route(Some(match route.as_str() {
        "device" => Route::Device,
        "cpu" => Route::Cpu,
        other => anyhow::bail!("route {other}: expected device or cpu"),
    }));
    let config = ddpm_lab::model::UnetConfig::blog();
    let (model, _vars) = ddpm_lab::model::new_trainable(&config, 0, &Device::Cpu)?;
    let shape = (batch, config.channels, 28, 28);
    let x = Tensor::randn(0f32, 1f32, shape, &Device::Cpu)?;
    let noise = Tensor::randn(0f32, 1f32, shape, &Device::Cpu)?;
    let t: Vec<u32> = (0..batch as u32).map(|i| (i * 97 + 3) % 300).collect();
    let t = Tensor::new(t.as_slice(), &Device::Cpu)?;

    // The same step twice: with candle's backward pass, then with the one that releases each
    // node's memory once the rest of the pass no longer reads it (what training uses).
    let mut peaks = Vec::new();
    let mut kept = 0;
    for releasing in [false, true] {
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let loss = (model.forward(&x, &t)? - &noise)?.sqr()?.mean_all()?;
        kept = LIVE.load(Ordering::Relaxed) - before;
        let grads = if releasing {
            loss.backward_releasing()?
        } else {
            loss.backward()?
        };
        peaks.push(PEAK.load(Ordering::Relaxed) - before);
        drop((grads, loss));
    }
    println!(
        "blog UNet, batch {batch}, {route} route: the graph keeps {:.1} MiB after the forward \
         pass; peak {:.1} MiB through candle's backward pass, {:.1} MiB through the one that \
         releases as it goes",
        mib(kept),
        mib(peaks[0]),
        mib(peaks[1])
    );
    Ok(())
}
