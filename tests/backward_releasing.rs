//! `Tensor::backward_releasing` (the vendored candle-core's backward pass that releases each
//! node's memory once the rest of the pass no longer reads it, which training uses) against
//! candle's `backward`: the same gradient for every parameter of each UNet on both routes, the
//! tensors the caller holds left intact, and a lower peak of memory. Its own test binary: it
//! counts every allocation (a counting global allocator) and switches the route for the whole
//! process, so it holds one test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Tensor};
use ddpm_lab::model::{new_trainable, BlockKind, UnetConfig};
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

/// Every value of `t`, on the CPU.
fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// `n` fixed one-channel `size`×`size` images on the CPU (a sine of their index).
fn images(n: usize, size: usize) -> Tensor {
    let len = (n * size * size) as f32;
    (Tensor::arange(0f32, len, &Device::Cpu).unwrap() * 0.37)
        .unwrap()
        .sin()
        .unwrap()
        .reshape((n, 1, size, size))
        .unwrap()
}

/// One backward pass of `config`'s UNet (weights from one seed, fixed inputs) with candle's
/// backward or the releasing one: every parameter's gradient by name, the model's output
/// (held by the caller through the pass) and a view of it, and the peak of bytes alive during
/// the backward pass over those alive before it.
#[allow(clippy::type_complexity)]
fn pass(
    config: &UnetConfig,
    releasing: bool,
) -> (Vec<(String, Vec<f32>)>, Vec<f32>, Vec<f32>, Vec<f32>, usize) {
    let dev = Device::Cpu;
    let (model, varmap) = new_trainable(config, 5, &dev).unwrap();
    let x = images(8, 16);
    let t = Tensor::new(&[3u32, 17, 60, 150, 7, 299, 1, 42], &dev).unwrap();
    let y = model.forward(&x, &t).unwrap();
    let view = y.reshape((8, 256)).unwrap();
    let r = y.ones_like().unwrap().affine(0.5, 0.25).unwrap();
    let y_before = values(&y);
    let loss = (&y * &r).unwrap().sum_all().unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let grads = if releasing {
        loss.backward_releasing().unwrap()
    } else {
        loss.backward().unwrap()
    };
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let mut vars: Vec<_> = varmap.data().lock().unwrap().clone().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let grads = vars
        .iter()
        .map(|(name, v)| (name.clone(), values(grads.get(v).expect("a gradient"))))
        .collect();
    assert_eq!(y.dtype(), DType::F32);
    (grads, y_before, values(&y), values(&view), peak)
}

#[test]
fn the_releasing_backward_pass_gives_the_same_gradients_in_less_memory() {
    let blog = UnetConfig {
        dim: 8,
        dim_mults: vec![1, 2],
        resnet_block_groups: 2,
        ..UnetConfig::default()
    };
    let resnet = UnetConfig {
        block: BlockKind::Resnet,
        ..blog.clone()
    };
    let current = UnetConfig {
        dim: 8,
        dim_mults: vec![1, 2],
        ..UnetConfig::current()
    };
    for route in [Route::Cpu, Route::Device] {
        force_route(Some(route));
        for (name, config) in [("blog", &blog), ("resnet", &resnet), ("current", &current)] {
            let what = format!("{name} on {route:?}");
            let (g_plain, _, _, _, peak_plain) = pass(config, false);
            let (g_released, y_before, y_after, view, peak_released) = pass(config, true);
            assert!(g_plain.len() > 50, "{what}: {} gradients", g_plain.len());
            // The same sums in the same order: equal to the last bit.
            assert_eq!(g_plain, g_released, "{what}: the gradients differ");
            // The output the caller holds, and its view, are never released.
            assert_eq!(y_before, y_after, "{what}: the held output changed");
            assert_eq!(y_before, view, "{what}: the held view changed");
            assert!(
                (peak_released as f64) < 0.9 * peak_plain as f64,
                "{what}: peak {peak_released} bytes releasing, {peak_plain} not"
            );
        }
        kept_tensors_stay(route);
        a_released_graph_is_not_differentiated_again(route);
    }
    force_route(None);
}

/// A backward pass over a graph that an earlier releasing pass went through (the same loss, or
/// another loss on a kept output whose graph holds released activations) is an error, not a
/// read of the one-element stand-ins; a plain pass leaves the graph whole, and a new forward
/// pass gives a graph that differentiates.
fn a_released_graph_is_not_differentiated_again(route: Route) {
    // Activations of 16 × 8 × 32 × 32 floats: released (64 KiB and more).
    let (model, x, t) = small_blog_unet(13);
    let forward = || model.forward(&x, &t).unwrap();
    // candle's own pass releases nothing: twice is fine.
    let y = forward();
    let loss = y.sqr().unwrap().mean_all().unwrap();
    loss.backward().unwrap();
    loss.backward().unwrap();
    // After a releasing pass, neither pass goes through the graph again.
    let y = forward();
    let loss = y.sqr().unwrap().mean_all().unwrap();
    loss.backward_releasing().unwrap();
    for again in [loss.backward(), loss.backward_releasing()] {
        let err = again.expect_err("the graph was released").to_string();
        assert!(err.contains("released"), "{route:?}: {err}");
    }
    // The kept output is whole, but its graph is not.
    let other = y.affine(2.0, 0.0).unwrap().sum_all().unwrap();
    assert!(other.backward().is_err(), "{route:?}");
    // A new forward pass is a new graph.
    let loss = forward().sqr().unwrap().mean_all().unwrap();
    loss.backward_releasing().unwrap();
}

/// A blog UNet of width 8 on the CPU, 16 images of 32 × 32 and their timesteps
/// (`i · t_step mod 300`).
fn small_blog_unet(t_step: u32) -> (ddpm_lab::model::Unet, Tensor, Tensor) {
    let dev = Device::Cpu;
    let config = UnetConfig {
        dim: 8,
        dim_mults: vec![1, 2],
        resnet_block_groups: 2,
        ..UnetConfig::default()
    };
    let (model, _) = new_trainable(&config, 5, &dev).unwrap();
    let t: Vec<u32> = (0..16).map(|i| i * t_step % 300).collect();
    let t = Tensor::new(t.as_slice(), &dev).unwrap();
    (model, images(16, 32), t)
}

/// What the caller keeps of a model's output through a releasing backward pass.
#[derive(Debug, Clone, Copy)]
enum Kept {
    /// The output itself: held by one handle more than the graph gives it.
    Output,
    /// A view of it (a reshape), the output's own handle dropped: the view's op holds it.
    View,
    /// A detached copy, the output's own handle dropped: the copy shares its storage only.
    Detached,
}

/// Each kind of tensor the caller may keep of a model output (large enough to be released,
/// and pinned by nothing else: the loss's backward reads neither it nor its storage) is left
/// intact by the releasing pass; one it released would no longer read back.
fn kept_tensors_stay(route: Route) {
    // Its output, 16 × 32 × 32 floats: 64 KiB, the smallest storage the pass releases.
    let (model, x, t) = small_blog_unet(17);
    for kept in [Kept::Output, Kept::View, Kept::Detached] {
        let y = model.forward(&x, &t).unwrap();
        assert_eq!(y.elem_count() * 4, 1 << 16);
        let before = values(&y);
        // affine's and sum's backward passes read neither their input nor its storage.
        let loss = y.affine(0.5, 0.25).unwrap().sum_all().unwrap();
        // The caller's own handle to `y` goes, but for `Output`.
        let held = match kept {
            Kept::Output => y,
            Kept::View => {
                let view = y.reshape((16, 1024)).unwrap();
                drop(y);
                view
            }
            Kept::Detached => {
                let copy = y.detach();
                drop(y);
                copy
            }
        };
        loss.backward_releasing().unwrap();
        drop(loss);
        assert_eq!(
            values(&held),
            before,
            "{route:?}: the kept {kept:?} changed"
        );
    }
}
