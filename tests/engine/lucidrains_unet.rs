//! lucidrains' released UNet (`arch: lucidrains`) against the package itself: the fixtures in
//! tests/fixtures are made by scripts/make_lucidrains_fixtures.py with denoising-diffusion-pytorch
//! 2.3.4's `Unet` (its defaults, and every option ddpm-lab takes).

use crate::common::max_abs_diff;
use crate::current_unet::{fixture_file, shapes};

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ddpm_lab::diffusion::{p_losses, LossKind, Objective};
use ddpm_lab::model::{self, Arch, UnetConfig};
use ddpm_lab::rng::LabRng;
use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};
use ddpm_lab::train::adam::{Adam, AdamParams};
use ddpm_lab::train::{named_vars, var_tensors};

/// The fixture of `case`: the package's state_dict (without the `w.` prefix) and the rest.
fn fixture(case: &str) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    fixture_file(&format!("lucidrains_{case}"), "make_lucidrains_fixtures.py")
}

/// The ddpm-lab config of each fixture case (as the script's `CASES`).
fn config(case: &str) -> UnetConfig {
    match case {
        "default" => UnetConfig {
            dim: 8,
            dim_mults: vec![1, 2, 2],
            ..UnetConfig::lucidrains()
        },
        "options" => UnetConfig {
            dim: 8,
            dim_mults: vec![1, 2],
            channels: 3,
            init_dim: Some(12),
            self_condition: true,
            learned_variance: true,
            full_attn: Some(vec![true, false]),
            ..UnetConfig::lucidrains()
        },
        "heads" => UnetConfig {
            dim: 8,
            dim_mults: vec![1, 2],
            attn_heads: Some(vec![2, 3]),
            attn_dim_head: Some(vec![8, 16]),
            ..UnetConfig::lucidrains()
        },
        other => panic!("no case {other}"),
    }
}

const CASES: [&str; 3] = ["default", "options", "heads"];

#[test]
fn forward_matches_the_package_with_and_without_self_conditioning() {
    for case in CASES {
        let (w, io) = fixture(case);
        let cfg = config(case);
        assert_eq!(cfg.arch, Arch::Lucidrains);
        let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
        let unet = model::Unet::new(&cfg, vb).unwrap();
        let out = unet.forward(&io["x"], &io["t"]).unwrap();
        let e = max_abs_diff(&out, &io["out"]);
        eprintln!("lucidrains UNet {case}: max abs error {e:e} (no x_self_cond)");
        assert!(e <= 1e-4, "{case}: output differs from PyTorch by {e}");
        if cfg.self_condition {
            let out = unet
                .forward_cond(&io["x"], &io["t"], Some(&io["x_self_cond"]))
                .unwrap();
            let e = max_abs_diff(&out, &io["out_cond"]);
            eprintln!("lucidrains UNet {case}: max abs error {e:e} (with x_self_cond)");
            assert!(e <= 1e-4, "{case}: conditioned output differs by {e}");
            assert!(max_abs_diff(&io["out"], &io["out_cond"]) > 1e-3);
        }
    }
}

#[test]
fn every_package_key_maps_one_to_one_and_counts_match() {
    for case in CASES {
        let (w, _) = fixture(case);
        let cfg = config(case);
        let (_, varmap) = model::new_trainable(&cfg, 1, &Device::Cpu).unwrap();
        let ours = var_tensors(&varmap);
        let (a, b) = (shapes(&w), shapes(&ours));
        let missing: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
        let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{case}: missing {missing:?}, extra {extra:?}"
        );
        assert_eq!(a, b, "{case}: shapes differ");
        assert_eq!(
            ddpm_lab::runs::budget::param_count(&cfg),
            model::num_params(&varmap) as u128,
            "{case}"
        );
        // New weights start as the package's do: gains at 1, memory drawn from N(0, 1).
        for (name, t) in &ours {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            if name.ends_with(".g") {
                assert!(v.iter().all(|&g| g == 1.0), "{name}");
            }
            if name.ends_with(".mem_kv") {
                let mean = v.iter().sum::<f32>() / v.len() as f32;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
                assert!(
                    mean.abs() < 0.2 && (0.7..1.3).contains(&var),
                    "{name}: {mean} {var}"
                );
            }
        }
    }
}

#[test]
fn the_packages_weights_load_from_a_file_and_a_wrong_attention_is_named() {
    let (w, io) = fixture("options");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unet.safetensors");
    candle_core::safetensors::save(&w, &file).unwrap();
    let cfg = config("options");
    let unet = model::load_weights(&file, &cfg, &Device::Cpu).unwrap();
    let out = unet
        .forward_cond(&io["x"], &io["t"], Some(&io["x_self_cond"]))
        .unwrap();
    assert!(max_abs_diff(&out, &io["out_cond"]) <= 1e-4);
    // The package's default attention (full in the last stage) does not fit these weights.
    let wrong = UnetConfig {
        full_attn: None,
        ..cfg
    };
    let e = model::load_weights(&file, &wrong, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "the attention at downs.0.2 is full in one and linear in the other (--full-attn"
        ),
        "{e}"
    );
    // Nor does the default init width: the file's is named, with its flag.
    let wrong = UnetConfig {
        init_dim: None,
        ..config("options")
    };
    let e = model::load_weights(&file, &wrong, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("init conv makes 12 channels (--init-dim 12"),
        "{e}"
    );
    // Another number of stages: said first, not as attention that differs.
    let (w, _) = fixture("default");
    candle_core::safetensors::save(&w, &file).unwrap();
    let two = UnetConfig {
        dim_mults: vec![1, 2],
        ..config("default")
    };
    let e = model::load_weights(&file, &two, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the file's UNet has 3 stages and the model 2 (--dim-mults"),
        "{e}"
    );
    assert!(!e.contains("full in one and linear"), "{e}");
    // Another width: the file's dim is named first (it sets the init width too), with its flag.
    let default = config("default");
    let wider = UnetConfig {
        dim: default.dim + 4,
        ..default.clone()
    };
    let e = model::load_weights(&file, &wider, &Device::Cpu)
        .unwrap_err()
        .to_string();
    let hint = format!(
        "its time embedding is for dim = {0} (--dim {0})",
        default.dim
    );
    let at = e.find(&hint).unwrap_or_else(|| panic!("{e}"));
    assert!(e.find("init conv makes").is_none_or(|i| at < i), "{e}");
    // A learned Fourier time embedding: named as what no flag gives.
    let mut fourier = w.clone();
    fourier.insert(
        "time_mlp.0.weights".into(),
        Tensor::zeros(8, DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&fourier, &file).unwrap();
    let e = model::load_weights(&file, &config("default"), &Device::Cpu).unwrap_err();
    let e = model::state_dict::with_model_flags_hint(e).to_string();
    assert!(
        e.contains("learned_sinusoidal_cond or random_fourier_features"),
        "{e}"
    );
    assert!(!e.contains("give the model flags"), "{e}");
    // Other heads: the first attention that differs is named, with the flags.
    let (w, _) = fixture("heads");
    candle_core::safetensors::save(&w, &file).unwrap();
    let wrong = UnetConfig {
        attn_heads: None,
        ..config("heads")
    };
    let e = model::load_weights(&file, &wrong, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "the attention at downs.0.2 has 2 heads of 8 (--attn-heads 2 --attn-dim-head 8; a \
             comma list gives each stage its own)"
        ),
        "{e}"
    );
}

#[test]
fn every_parameter_receives_a_gradient_and_a_tiny_model_overfits() {
    let cfg = UnetConfig {
        self_condition: false,
        learned_variance: false,
        ..config("options")
    };
    let (m, varmap) = model::new_trainable(&cfg, 2, &Device::Cpu).unwrap();
    let tables = ScheduleTables::new(BetaSchedule::Cosine, 50).unwrap();
    let mut rng = LabRng::new(9);
    let x0 = rng
        .randn(&[4, 3, 8, 8], &Device::Cpu)
        .unwrap()
        .tanh()
        .unwrap();
    let noise = rng.randn(&[4, 3, 8, 8], &Device::Cpu).unwrap();
    let t = [3, 17, 30, 44];
    let loss = |m: &model::Unet| {
        p_losses(m, &tables, Objective::Noise, LossKind::L2, &x0, &t, &noise)
            .unwrap()
            .0
    };
    let grads = loss(&m).backward().unwrap();
    let vars = named_vars(&varmap);
    for (name, var) in &vars {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let s = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(s > 0.0 && s.is_finite(), "gradient of {name} is {s}");
    }
    let mut opt = Adam::new(
        vars,
        AdamParams {
            lr: 3e-3,
            ..AdamParams::default()
        },
    )
    .unwrap();
    let first = loss(&m).to_scalar::<f32>().unwrap();
    let mut last = first;
    for _ in 0..60 {
        let l = loss(&m);
        last = l.to_scalar::<f32>().unwrap();
        opt.step(&l.backward().unwrap()).unwrap();
    }
    assert!(last * 10.0 < first, "loss {first} → {last}, not 10× lower");
}

#[test]
fn lucidrains_configs_round_trip_and_need_one_full_attn_entry_per_stage() {
    let c = UnetConfig::lucidrains();
    assert_eq!((c.init_kernel(), c.init_dim()), (7, 28));
    assert_eq!(c.full_attention(), vec![false, false, true]);
    let back: UnetConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    let short = UnetConfig {
        full_attn: Some(vec![true, false]),
        ..UnetConfig::lucidrains()
    };
    let e = short.validate().unwrap_err().to_string();
    assert!(
        e.contains("one entry per stage (3), or one for all, got 2"),
        "{e}"
    );
    let blog = UnetConfig {
        full_attn: Some(vec![false, false, true]),
        ..UnetConfig::blog()
    };
    assert!(blog
        .validate()
        .unwrap_err()
        .to_string()
        .contains("lucidrains"));
}
