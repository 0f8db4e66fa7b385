//! The UNets with their convs on the GPU route (`ops::device_conv`, forced onto the CPU) against
//! the same models on the CPU kernels: the same outputs and the same gradient for every
//! parameter (`ddpm_lab::device_check`, which `ddpm-lab check-device` runs on a GPU). Its own
//! test binary, as the route is switched for the whole process.

use candle_core::Device;
use ddpm_lab::device_check::check_device;
use ddpm_lab::model::{BlockKind, UnetConfig};

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
        // On the CPU, check_device runs its checked side on the GPU route.
        let check = check_device(&config, &Device::Cpu, 2, 16, 3).unwrap();
        assert!(check.ok, "{name}: {check:?}");
        assert!(check.parameters > 50, "{name}: {check:?}");
    }
}
