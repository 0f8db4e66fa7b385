//! Parity with the blog's PyTorch model: fixtures exported from torch (../shared/fixtures).

use crate::common;

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use common::{max_abs_diff, shared};
use ddpm_lab::diffusion::{self, LossKind, Objective};
use ddpm_lab::model::{self, embedding, UnetConfig};
use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};

fn load(name: &str) -> Option<HashMap<String, Tensor>> {
    let p = shared(&format!("fixtures/{name}"))?;
    Some(candle_core::safetensors::load(p, &Device::Cpu).unwrap())
}

fn t_vec(t: &Tensor) -> Vec<usize> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

#[test]
fn forward_matches_pytorch() {
    let (Some(weights), Some(case)) = (
        load("unet_convnext_init.safetensors"),
        load("forward_case.safetensors"),
    ) else {
        return;
    };
    let dev = Device::Cpu;
    let cfg = UnetConfig::blog();
    let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, &dev);
    let t = &case["t"];

    let emb = embedding::sinusoidal_embedding(t, 28).unwrap();
    let e = max_abs_diff(&emb, &case["sinusoidal_emb"]);
    assert!(e <= 1e-5, "sinusoidal embedding differs by {e}");

    let mlp = embedding::TimeMlp::new(28, 112, vb.pp("time_mlp")).unwrap();
    let e = max_abs_diff(&mlp.forward(t).unwrap(), &case["time_mlp_convnext"]);
    assert!(e <= 1e-4, "time_mlp differs by {e}");

    let init = model::layers::conv2d(1, 18, 7, 1, 3, 1, true, vb.pp("init_conv")).unwrap();
    let e = max_abs_diff(
        &init.forward(&case["x"]).unwrap(),
        &case["init_conv_convnext"],
    );
    assert!(e <= 1e-4, "init_conv differs by {e}");

    let unet = model::Unet::new(&cfg, vb).unwrap();
    let out = unet.forward(&case["x"], t).unwrap();
    let e = max_abs_diff(&out, &case["out_convnext"]);
    eprintln!("UNet output max abs error vs PyTorch: {e:e}");
    assert!(e <= 1e-4, "UNet output differs by {e}");
}

#[test]
fn every_fixture_tensor_is_used_and_parameter_count_matches() {
    let Some(weights) = load("unet_convnext_init.safetensors") else {
        return;
    };
    let dev = Device::Cpu;
    // Build a fresh trainable model and compare names and shapes with the PyTorch state_dict.
    let (_m, varmap) = model::new_trainable(&UnetConfig::blog(), 0, &dev).unwrap();
    let ours: HashMap<String, Vec<usize>> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    let theirs: HashMap<String, Vec<usize>> = weights
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(model::num_params(&varmap), 2_996_315);
}

#[test]
fn q_sample_loss_and_mean_match_pytorch() {
    let (Some(weights), Some(case)) = (
        load("unet_convnext_init.safetensors"),
        load("q_sample_case.safetensors"),
    ) else {
        return;
    };
    let dev = Device::Cpu;
    let tables = ScheduleTables::new(BetaSchedule::Linear, 200).unwrap();
    let t = t_vec(&case["t"]);
    let x0 = &case["x0"];
    let noise = &case["noise"];

    for (name, table) in [
        ("sqrt_alphas_cumprod_t", &tables.sqrt_alphas_cumprod),
        (
            "sqrt_one_minus_alphas_cumprod_t",
            &tables.sqrt_one_minus_alphas_cumprod,
        ),
        ("posterior_variance_t", &tables.posterior_variance),
    ] {
        let ours = ScheduleTables::extract(table, &t, &dev).unwrap();
        let theirs = case[name].reshape(ours.dims()).unwrap();
        let e = max_abs_diff(&ours, &theirs);
        assert!(e <= 1e-6, "{name} differs by {e}");
    }

    let x_t = diffusion::q_sample(&tables, x0, &t, noise).unwrap();
    let e = max_abs_diff(&x_t, &case["x_t"]);
    assert!(e <= 1e-6, "q_sample differs by {e}");

    let vb = VarBuilder::from_tensors(weights, DType::F32, &dev);
    let unet = model::Unet::new(&UnetConfig::blog(), vb).unwrap();
    let tt = model::timesteps_tensor(&t, &dev).unwrap();
    let eps = unet.forward(&x_t, &tt).unwrap();
    let e = max_abs_diff(&eps, &case["eps_convnext"]);
    assert!(e <= 1e-4, "eps differs by {e}");

    let (loss, _) = diffusion::p_losses(
        &unet,
        &tables,
        Objective::Noise,
        LossKind::Huber,
        x0,
        &t,
        noise,
    )
    .unwrap();
    let e = max_abs_diff(&loss.reshape(1).unwrap(), &case["loss_huber_convnext"]);
    assert!(e <= 1e-5, "huber loss differs by {e}");

    let mean = diffusion::posterior_mean(&tables, &x_t, &t, &eps).unwrap();
    let e = max_abs_diff(&mean, &case["model_mean_convnext"]);
    assert!(e <= 1e-4, "p_sample mean differs by {e}");
}
