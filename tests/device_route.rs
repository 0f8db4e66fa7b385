//! The UNets with their convs on the GPU route (`ops::device_conv`, forced onto the CPU) against
//! the same models on the CPU kernels: the same outputs and the same gradient for every
//! parameter. Its own test binary, as the route is switched for the whole process.

mod common;

use candle_core::{DType, Device, Tensor};
use ddpm_lab::model::{new_trainable, BlockKind, UnetConfig};
use ddpm_lab::ops::{force_route, Route};

/// The model's output on fixed inputs and the gradients of `Σ out · r` for every parameter,
/// by name, with every layer on `route`.
fn output_and_grads(config: &UnetConfig, route: Route) -> (Tensor, Vec<(String, Tensor)>) {
    force_route(Some(route));
    let dev = Device::Cpu;
    let (model, varmap) = new_trainable(config, 3, &dev).unwrap();
    let n = 2 * config.channels * 16 * 16;
    let x = (Tensor::arange(0u32, n as u32, &dev)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        * 0.731)
        .unwrap()
        .sin()
        .unwrap()
        .reshape((2, config.channels, 16, 16))
        .unwrap();
    let t = Tensor::new(&[3u32, 150], &dev).unwrap();
    let y = model.forward(&x, &t).unwrap();
    let r = (Tensor::arange(0u32, y.elem_count() as u32, &dev)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        * 0.37)
        .unwrap()
        .cos()
        .unwrap()
        .reshape(y.dims())
        .unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut vars: Vec<_> = varmap.data().lock().unwrap().clone().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let grads = vars
        .into_iter()
        .map(|(name, v)| {
            let g = grads
                .get(&v)
                .unwrap_or_else(|| panic!("{route:?}: no gradient for {name}"))
                .clone();
            (name, g)
        })
        .collect();
    force_route(None);
    (y, grads)
}

use common::max_abs_diff as max_diff;

/// Max |a|, at least 1e-3 (the scale the tolerances are relative to).
fn scale(a: &Tensor) -> f32 {
    max_diff(a, &a.zeros_like().unwrap()).max(1e-3)
}

#[test]
fn the_unets_on_the_gpu_route_match_the_cpu_kernels() {
    // The blog's UNet (ConvNeXt: depthwise 7×7, 4×4 stride-2 downsampling, conv-transpose
    // upsampling), with ResNet blocks, and today's (pixel-unshuffle down, nearest up).
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
    for (name, config) in [("blog", blog), ("resnet", resnet), ("current", current)] {
        let (yc, gc) = output_and_grads(&config, Route::Cpu);
        let (yd, gd) = output_and_grads(&config, Route::Device);
        let e = max_diff(&yd, &yc);
        assert!(e <= 1e-4 * scale(&yc), "{name}: outputs differ by {e}");
        assert_eq!(gc.len(), gd.len());
        for ((pn, a), (_, b)) in gd.iter().zip(&gc) {
            let e = max_diff(a, b);
            assert!(
                e <= 1e-3 * scale(b),
                "{name} {pn}: gradients differ by {e} (scale {})",
                scale(b)
            );
        }
    }
}
