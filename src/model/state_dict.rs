//! A weights file read as a UNet's `state_dict`, as strictly as PyTorch's
//! `load_state_dict(strict=True)`: every tensor the model has, of its shape, and nothing else.
//! The prefixes PyTorch wrappers add (`model.` of a `GaussianDiffusion`, `module.` of
//! `DataParallel`, `_orig_mod.` of `torch.compile`, `ema_model.` of an EMA) are taken off.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::{Unet, UnetConfig};

/// Prefixes taken off names where the file holds the model inside a wrapper, outermost first.
const WRAPPER_PREFIXES: [&str; 6] = [
    "ema_model.",
    "online_model.",
    "model.",
    "module.",
    "_orig_mod.",
    "unet.",
];

/// The weights of a UNet read from a file.
#[derive(Debug)]
pub struct StateDict {
    /// The model's tensors by PyTorch name, as float32.
    pub tensors: HashMap<String, Tensor>,
    /// The wrapper prefix taken off the names (`model.`), if any.
    pub prefix: Option<String>,
    /// Tensors of the file outside the model that a wrapper holds (a `GaussianDiffusion`'s
    /// schedule buffers, say): left out.
    pub ignored: Vec<String>,
    /// The wrapper's `betas` buffer (a `GaussianDiffusion`'s noise schedule), where it has
    /// one: the schedule the weights were trained with.
    pub betas: Option<Vec<f64>>,
}

/// Reads `path` as the weights of a UNet of `config`: refused, in one message, where the file
/// is not safetensors (a `torch.save` pickle is named as such), or where tensors are missing,
/// unexpected or of another shape (up to four of each are named).
pub fn read_state_dict(path: &Path, config: &UnetConfig, device: &Device) -> Result<StateDict> {
    state_dict_of(load_weights_file(path, device)?, path, config)
}

/// The tensors of the safetensors file `path`, by name: refused, in one message, where it is
/// a folder, missing, or not safetensors (a `torch.save` pickle is named as such).
pub fn load_weights_file(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if path.is_dir() {
        bail!(
            "{} is a folder, not a weights file (a run's weights are RUN/checkpoints/step-N/model.safetensors)",
            path.display()
        );
    }
    candle_core::safetensors::load(path, device).map_err(|e| not_safetensors(path, &e.to_string()))
}

/// [`read_state_dict`] of the tensors already read from `path` (see [`load_weights_file`]).
pub fn state_dict_of(
    file: HashMap<String, Tensor>,
    path: &Path,
    config: &UnetConfig,
) -> Result<StateDict> {
    let expected = expected_shapes(config)?;
    let prefix = WRAPPER_PREFIXES.iter().map(|p| p.to_string()).find(|p| {
        !expected.keys().any(|k| file.contains_key(k))
            && expected
                .keys()
                .any(|k| file.contains_key(&format!("{p}{k}")))
    });
    let mut tensors = HashMap::new();
    let mut ignored = Vec::new();
    let mut unexpected = Vec::new();
    let mut betas = None;
    for (name, t) in file {
        let own = match &prefix {
            Some(p) => match name.strip_prefix(p.as_str()) {
                Some(n) => n.to_string(),
                None => {
                    if name == "betas" && t.rank() == 1 {
                        betas = t.to_dtype(DType::F64)?.to_vec1::<f64>().ok();
                    }
                    ignored.push(name);
                    continue;
                }
            },
            None => name,
        };
        if expected.contains_key(&own) {
            tensors.insert(own, t.to_dtype(DType::F32)?);
        } else {
            unexpected.push(own);
        }
    }
    let mut missing: Vec<&String> = expected
        .keys()
        .filter(|k| !tensors.contains_key(*k))
        .collect();
    let mut mismatched: Vec<&String> = tensors
        .iter()
        .filter(|(k, t)| expected[*k] != t.dims())
        .map(|(k, _)| k)
        .collect();
    if missing.is_empty() && unexpected.is_empty() && mismatched.is_empty() {
        ignored.sort();
        return Ok(StateDict {
            tensors,
            prefix,
            ignored,
            betas,
        });
    }
    missing.sort_by_key(|k| in_model_order(k));
    unexpected.sort_by_key(|k| in_model_order(k));
    mismatched.sort_by_key(|k| in_model_order(k));
    let mut parts = Vec::new();
    if let Some(first) = mismatched.first() {
        parts.push(format!(
            "{} differ in shape, the first {first}: {:?} in the file, {:?} in the model",
            tensors_counted(mismatched.len()),
            tensors[*first].dims(),
            expected[*first]
        ));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "{} of the model's {} tensors {} missing: {}",
            missing.len(),
            expected.len(),
            if missing.len() == 1 { "is" } else { "are" },
            first_names(&missing, 4)
        ));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} {} not the model's: {}",
            tensors_counted(unexpected.len()),
            if unexpected.len() == 1 { "is" } else { "are" },
            first_names(&unexpected, 4)
        ));
    }
    bail!(
        "the weights in {} do not fit the model ({})",
        path.display(),
        parts.join("; ")
    )
}

/// `1 tensor`, `3 tensors`.
fn tensors_counted(n: usize) -> String {
    format!("{n} tensor{}", if n == 1 { "" } else { "s" })
}

/// `e` (weights that do not fit the model), for a command whose model flags say what the model
/// is (`import`, `forward`): with which flags to give. A run's checkpoint has no such flags:
/// its config.json says what it trained.
pub fn with_model_flags_hint(e: anyhow::Error) -> anyhow::Error {
    let e = crate::errors::one_line(&e);
    anyhow::anyhow!(
        "{e}; give the model flags the weights were trained with (--unet, --dim, --dim-mults, --block, --init-conv, --resnet-groups, --self-condition, --learned-variance, --channels; a ddpm-lab run's are in its config.json)"
    )
}

/// A UNet of `config` built from weights already read by [`read_state_dict`].
pub fn unet_from(state: StateDict, config: &UnetConfig, device: &Device) -> Result<Unet> {
    let vb = VarBuilder::from_tensors(state.tensors, DType::F32, device);
    Ok(Unet::new(config, vb)?)
}

/// The name and shape of every tensor a UNet of `config` has.
fn expected_shapes(config: &UnetConfig) -> Result<HashMap<String, Vec<usize>>> {
    config.validate()?;
    let varmap = VarMap::new();
    Unet::new(
        config,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )?;
    let data = varmap.data().lock().expect("varmap lock poisoned");
    Ok(data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().dims().to_vec()))
        .collect())
}

/// A name's place in the model, roughly as the forward pass meets it (the first layers
/// first), for the names an error shows.
fn in_model_order(name: &str) -> (usize, String, bool) {
    const STAGES: [&str; 7] = [
        "init_conv",
        "time_mlp",
        "downs",
        "mid",
        "ups",
        "final_res_block",
        "final_conv",
    ];
    let rank = STAGES
        .iter()
        .position(|s| name.starts_with(s))
        .unwrap_or(STAGES.len());
    // A layer's weight before its bias, as PyTorch lists them.
    let (module, last) = name.rsplit_once('.').unwrap_or((name, ""));
    (rank, module.to_string(), last == "bias")
}

/// The first `shown` of `names`, then how many more there are (`a, b, c and 2 more`).
pub fn first_names(names: &[impl std::fmt::Display], shown: usize) -> String {
    let listed: Vec<String> = names.iter().take(shown).map(|n| n.to_string()).collect();
    match names.len().saturating_sub(shown) {
        0 => listed.join(", "),
        more => format!("{} and {more} more", listed.join(", ")),
    }
}

/// Why `path` could not be read as safetensors: a PyTorch pickle (`torch.save`) is named, with
/// the line that converts it.
fn not_safetensors(path: &Path, error: &str) -> anyhow::Error {
    if !path.exists() {
        return anyhow::anyhow!("{} does not exist", path.display());
    }
    let head = std::fs::read(path)
        .map(|b| b.into_iter().take(4).collect::<Vec<u8>>())
        .unwrap_or_default();
    // torch.save writes a zip archive (PK\x03\x04), or a bare pickle (0x80) before 1.6.
    if head.starts_with(b"PK\x03\x04") || head.first() == Some(&0x80) {
        return anyhow::anyhow!(
            "{} is a PyTorch pickle (torch.save), not safetensors: save the weights with safetensors.torch.save_file(model.state_dict(), \"unet.safetensors\")",
            path.display()
        );
    }
    anyhow::anyhow!(
        "cannot read weights from {} (not a safetensors file: {error})",
        path.display()
    )
}

/// Small models and their state_dicts, for the tests of reading and importing weights.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The blog's UNet at width 8 and two stages.
    pub fn tiny() -> UnetConfig {
        UnetConfig {
            dim: 8,
            dim_mults: vec![1, 2],
            ..UnetConfig::blog()
        }
    }

    /// A fresh model's state_dict, its names behind `prefix`.
    pub fn state_dict(cfg: &UnetConfig, prefix: &str) -> HashMap<String, Tensor> {
        let (_, varmap) = crate::model::new_trainable(cfg, 1, &Device::Cpu).unwrap();
        let data = varmap.data().lock().unwrap();
        data.iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v.as_tensor().clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{state_dict, tiny};
    use super::*;

    fn saved(
        prefix: &str,
        extra: &[(&str, Vec<usize>)],
    ) -> (tempfile::TempDir, std::path::PathBuf) {
        let mut map = state_dict(&tiny(), prefix);
        for (k, shape) in extra {
            map.insert(
                k.to_string(),
                Tensor::zeros(shape.as_slice(), DType::F32, &Device::Cpu).unwrap(),
            );
        }
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("w.safetensors");
        candle_core::safetensors::save(&map, &f).unwrap();
        (d, f)
    }

    #[test]
    fn a_state_dict_of_the_model_is_read_whole() {
        let (_d, f) = saved("", &[]);
        let sd = read_state_dict(&f, &tiny(), &Device::Cpu).unwrap();
        assert_eq!(sd.prefix, None);
        assert!(sd.ignored.is_empty());
        unet_from(sd, &tiny(), &Device::Cpu).unwrap();
    }

    /// A `GaussianDiffusion`'s state_dict: the UNet under `model.`, the schedule's buffers
    /// beside it (left out).
    #[test]
    fn a_wrappers_prefix_is_taken_off_and_its_buffers_left_out() {
        let (_d, f) = saved(
            "model.",
            &[("betas", vec![200]), ("alphas_cumprod", vec![200])],
        );
        let sd = read_state_dict(&f, &tiny(), &Device::Cpu).unwrap();
        assert_eq!(sd.prefix.as_deref(), Some("model."));
        assert_eq!(sd.ignored, ["alphas_cumprod", "betas"]);
    }

    #[test]
    fn extra_missing_or_misshapen_tensors_are_named() {
        let (_d, f) = saved("", &[("extra.weight", vec![3])]);
        let e = read_state_dict(&f, &tiny(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1 tensor is not the model's: extra.weight"),
            "{e}"
        );
        let wider = UnetConfig { dim: 12, ..tiny() };
        let e = read_state_dict(&f, &wider, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("149 tensors differ in shape, the first init_conv.weight: [4, 1, 7, 7] in the file, [8, 1, 7, 7] in the model"),
            "{e}"
        );
        assert!(!e.contains("give the model flags"), "{e}");
        let deeper = UnetConfig {
            dim_mults: vec![1, 2, 4],
            ..tiny()
        };
        let e = read_state_dict(&f, &deeper, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("are missing: ") && e.contains(" more"), "{e}");
    }

    #[test]
    fn a_pickle_or_a_folder_is_named_as_such() {
        let d = tempfile::tempdir().unwrap();
        let pt = d.path().join("unet.pt");
        std::fs::write(&pt, b"PK\x03\x04rest of a zip").unwrap();
        let e = read_state_dict(&pt, &tiny(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is a PyTorch pickle") && e.contains("save_file"),
            "{e}"
        );
        let e = read_state_dict(d.path(), &tiny(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a folder"), "{e}");
        let junk = d.path().join("junk.safetensors");
        std::fs::write(&junk, b"nothing").unwrap();
        let e = read_state_dict(&junk, &tiny(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a safetensors file"), "{e}");
    }
}
