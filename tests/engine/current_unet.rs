//! Today's blog UNet (`arch: current`) against PyTorch: the fixtures in tests/fixtures are made
//! by scripts/make_current_fixtures.py from the seeds' code (001's Unet, 002's constructor with
//! a 7×7 init conv, 8 groups, learned variance), with self-conditioning off and on.

use crate::common::max_abs_diff;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ddpm_lab::model::{self, Arch, UnetConfig};
use ddpm_lab::train::var_tensors;

/// The fixture of `case`: the PyTorch state_dict (without the `w.` prefix) and the rest.
fn fixture(case: &str) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    fixture_file(&format!("current_{case}"), "make_current_fixtures.py")
}

/// `tests/fixtures/NAME.safetensors` (made by `scripts/SCRIPT`): the state_dict under `w.`,
/// without that prefix, and the rest (inputs and outputs).
pub(crate) fn fixture_file(
    name: &str,
    script: &str,
) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"));
    let all = candle_core::safetensors::load(&p, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/{script})", p.display()));
    let (mut w, mut rest) = (HashMap::new(), HashMap::new());
    for (k, v) in all {
        match k.strip_prefix("w.") {
            Some(name) => w.insert(name.to_string(), v),
            None => rest.insert(k, v),
        };
    }
    (w, rest)
}

/// The ddpm-lab config of each fixture case (as the script's `CASES`).
fn config(case: &str) -> UnetConfig {
    let base = UnetConfig {
        dim: 8,
        dim_mults: vec![1, 2],
        ..UnetConfig::current()
    };
    match case {
        "001" => UnetConfig {
            dim_mults: vec![1, 1, 2],
            ..base
        },
        "001_sc" => UnetConfig {
            channels: 3,
            self_condition: true,
            ..base
        },
        "002_sc_var" => UnetConfig {
            self_condition: true,
            learned_variance: true,
            resnet_block_groups: 8,
            init_conv_kernel: Some(7),
            ..base
        },
        other => panic!("no case {other}"),
    }
}

const CASES: [&str; 3] = ["001", "001_sc", "002_sc_var"];

/// Each tensor's shape, by name.
pub(crate) fn shapes(t: &HashMap<String, Tensor>) -> BTreeMap<String, Vec<usize>> {
    t.iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect()
}

#[test]
fn forward_matches_pytorch_with_and_without_self_conditioning() {
    for case in CASES {
        let (w, io) = fixture(case);
        let cfg = config(case);
        assert_eq!(cfg.arch, Arch::Current);
        let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
        let unet = model::Unet::new(&cfg, vb).unwrap();
        let out = unet.forward(&io["x"], &io["t"]).unwrap();
        let e = max_abs_diff(&out, &io["out"]);
        eprintln!("current UNet {case}: max abs error {e:e} (no x_self_cond)");
        assert!(e <= 1e-4, "{case}: output differs from PyTorch by {e}");
        if cfg.self_condition {
            let out = unet
                .forward_cond(&io["x"], &io["t"], Some(&io["x_self_cond"]))
                .unwrap();
            let e = max_abs_diff(&out, &io["out_cond"]);
            eprintln!("current UNet {case}: max abs error {e:e} (with x_self_cond)");
            assert!(e <= 1e-4, "{case}: conditioned output differs by {e}");
            // The condition matters: the seed's model does not ignore it.
            assert!(max_abs_diff(&io["out"], &io["out_cond"]) > 1e-3);
        }
    }
}

#[test]
fn every_pytorch_key_maps_one_to_one_and_saved_weights_have_pytorch_names() {
    for case in CASES {
        let (w, _) = fixture(case);
        let cfg = config(case);
        let (_, varmap) = model::new_trainable(&cfg, 1, &Device::Cpu).unwrap();
        // What ddpm-lab saves (a checkpoint's weights file): no missing, no extra key, same
        // shapes as PyTorch's state_dict.
        let ours = var_tensors(&varmap);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weights.safetensors");
        candle_core::safetensors::save(&ours, &file).unwrap();
        let saved = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
        let (a, b) = (shapes(&w), shapes(&saved));
        let missing: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
        let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{case}: missing {missing:?}, extra {extra:?}"
        );
        assert_eq!(a, b, "{case}: shapes differ");
        assert_eq!(
            ddpm_lab::runs::budget::param_count(&cfg),
            model::num_params(&varmap) as u128
        );
    }
}

#[test]
fn pytorch_weights_load_from_a_file_by_their_names() {
    let (w, io) = fixture("002_sc_var");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notebook.safetensors");
    candle_core::safetensors::save(&w, &file).unwrap();
    let cfg = config("002_sc_var");
    let unet = model::load_weights(&file, &cfg, &Device::Cpu).unwrap();
    let out = unet
        .forward_cond(&io["x"], &io["t"], Some(&io["x_self_cond"]))
        .unwrap();
    assert!(max_abs_diff(&out, &io["out_cond"]) <= 1e-4);
    // The other init kernel does not fit these weights: one line naming the tensor.
    let wrong = UnetConfig {
        init_conv_kernel: Some(1),
        ..cfg
    };
    let e = model::load_weights(&file, &wrong, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("init_conv"), "{e}");
}

#[test]
fn old_configs_without_arch_load_as_the_blog_unet() {
    let json = serde_json::json!({"dim": 28, "dim_mults": [1, 2, 4], "channels": 1});
    let c: UnetConfig = serde_json::from_value(json).unwrap();
    assert_eq!(c.arch, Arch::Blog);
    assert_eq!((c.init_kernel(), c.init_dim()), (7, 18));
    assert!(!c.self_condition && !c.learned_variance);
    let cur = UnetConfig::current();
    assert_eq!((cur.init_kernel(), cur.init_dim()), (1, 28));
    let back: UnetConfig = serde_json::from_str(&serde_json::to_string(&cur).unwrap()).unwrap();
    assert_eq!(back, cur);
}
