//! The ResNet-block variant of the UNet (no PyTorch fixture exists for it): parameter names and
//! shapes as PyTorch would name them, and a block checked against the formulas by hand.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ddpm_lab::model::blocks::ResnetBlock;
use ddpm_lab::model::{self, BlockKind, UnetConfig};
use ddpm_lab::rng::LabRng;

fn resnet_blog() -> UnetConfig {
    UnetConfig {
        block: BlockKind::Resnet,
        resnet_block_groups: 4,
        ..UnetConfig::blog()
    }
}

#[test]
fn names_and_shapes_follow_pytorch() {
    let (m, varmap) = model::new_trainable(&resnet_blog(), 0, &Device::Cpu).unwrap();
    let data = varmap.data().lock().unwrap();
    let shape = |k: &str| {
        data.get(k)
            .unwrap_or_else(|| panic!("missing {k}"))
            .dims()
            .to_vec()
    };
    assert_eq!(shape("downs.0.0.block1.proj.weight"), [28, 18, 3, 3]);
    assert_eq!(shape("downs.0.0.block1.norm.weight"), [28]);
    assert_eq!(shape("downs.0.0.block2.proj.weight"), [28, 28, 3, 3]);
    assert_eq!(shape("downs.0.0.mlp.1.weight"), [28, 112]);
    assert_eq!(shape("downs.0.0.res_conv.weight"), [28, 18, 1, 1]);
    assert_eq!(shape("downs.2.2.fn.fn.to_qkv.weight"), [384, 112, 1, 1]);
    assert_eq!(shape("mid_attn.fn.fn.to_out.weight"), [112, 128, 1, 1]);
    assert_eq!(shape("ups.0.0.block1.proj.weight"), [56, 224, 3, 3]);
    assert_eq!(shape("ups.1.3.weight"), [28, 28, 4, 4]);
    assert_eq!(shape("final_conv.0.block1.proj.weight"), [28, 28, 3, 3]);
    assert_eq!(shape("final_conv.1.weight"), [1, 28, 1, 1]);
    assert!(
        !data.contains_key("final_conv.0.mlp.1.weight"),
        "the final block has no time input"
    );
    assert!(
        !data.contains_key("downs.1.1.res_conv.weight"),
        "no res_conv when widths match"
    );
    assert!(
        !data.keys().any(|k| k.contains("ds_conv")),
        "no ConvNeXt layers"
    );
    drop(data);
    let x = LabRng::new(1).randn(&[2, 1, 28, 28], &Device::Cpu).unwrap();
    let t = model::timesteps_tensor(&[0, 199], &Device::Cpu).unwrap();
    assert_eq!(m.forward(&x, &t).unwrap().dims(), [2, 1, 28, 28]);
}

/// GroupNorm by hand in f64: per sample and group, subtract the mean, divide by √(var + 1e-5).
fn group_norm_by_hand(
    x: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
) -> Vec<f32> {
    let cg = c / groups;
    let mut out = vec![0f32; x.len()];
    for b in 0..n {
        for g in 0..groups {
            let range = (b * c + g * cg) * hw..(b * c + (g + 1) * cg) * hw;
            let vals = &x[range.clone()];
            let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / vals.len() as f64;
            let var =
                vals.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            for (i, idx) in range.enumerate() {
                let ch = g * cg + i / hw;
                out[idx] = (((x[idx] as f64 - mean) / (var + 1e-5).sqrt()) * gamma[ch] as f64
                    + beta[ch] as f64) as f32;
            }
        }
    }
    out
}

fn silu(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| x / (1.0 + (-x).exp())).collect()
}

#[test]
fn resnet_block_matches_the_formulas() {
    let dev = Device::Cpu;
    let (c_in, c_out, groups, td, n, s) = (6, 8, 4, 16, 2, 5);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let block = ResnetBlock::new(c_in, c_out, Some(td), groups, vb).unwrap();
    model::init::pytorch_default_init(&varmap, 4).unwrap();
    // Non-trivial norm parameters.
    let data = varmap.data().lock().unwrap();
    let mut rng = LabRng::new(8);
    for k in [
        "block1.norm.weight",
        "block1.norm.bias",
        "block2.norm.weight",
        "block2.norm.bias",
    ] {
        data[k].set(&rng.randn(&[c_out], &dev).unwrap()).unwrap();
    }
    let p = |k: &str| data[k].as_tensor().clone();
    let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let x = rng.randn(&[n, c_in, s, s], &dev).unwrap();
    let temb = rng.randn(&[n, td], &dev).unwrap();

    let conv = |x: &Tensor, w: &str, b: &str, pad: usize| {
        x.conv2d(&p(w), pad, 1, 1, 1)
            .unwrap()
            .broadcast_add(&p(b).reshape((1, (), 1, 1)).unwrap())
            .unwrap()
    };
    let gn = |t: &Tensor, prefix: &str| {
        let o = group_norm_by_hand(
            &v(t),
            n,
            c_out,
            s * s,
            groups,
            &v(&p(&format!("{prefix}.weight"))),
            &v(&p(&format!("{prefix}.bias"))),
        );
        Tensor::from_vec(silu(&o), (n, c_out, s, s), &dev).unwrap()
    };
    let h = gn(
        &conv(&x, "block1.proj.weight", "block1.proj.bias", 1),
        "block1.norm",
    );
    let cond = candle_nn::Linear::new(p("mlp.1.weight"), Some(p("mlp.1.bias")))
        .forward(&Tensor::from_vec(silu(&v(&temb)), (n, td), &dev).unwrap())
        .unwrap();
    let h = h
        .broadcast_add(&cond.reshape((n, c_out, 1, 1)).unwrap())
        .unwrap();
    let h = gn(
        &conv(&h, "block2.proj.weight", "block2.proj.bias", 1),
        "block2.norm",
    );
    let expected = (h + conv(&x, "res_conv.weight", "res_conv.bias", 0)).unwrap();
    drop(data);

    let got = block.forward(&x, Some(&temb)).unwrap();
    let err = (got - expected)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(err < 1e-5, "ResnetBlock differs from the formulas by {err}");
}
