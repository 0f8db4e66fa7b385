//! A weights file read as a UNet's `state_dict`, as strictly as PyTorch's
//! `load_state_dict(strict=True)`: every tensor the model has, of its shape, and nothing else.
//! The prefixes PyTorch wrappers add (`model.` of a `GaussianDiffusion`, `module.` of
//! `DataParallel`, `_orig_mod.` of `torch.compile`, `ema_model.` of an EMA) are taken off, one
//! or several (`ema_model.model.`: the EMA of a `GaussianDiffusion`, as lucidrains' trainer
//! saves it).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::{Arch, Unet, UnetConfig};

/// Prefixes taken off names where the file holds the model inside wrappers (one wrapper, or
/// one inside another); where a file holds the model twice (an EMA's `ema_model.` and
/// `online_model.`), the first listed is read.
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
    /// The wrapper prefixes taken off the names (`model.`, `ema_model.model.`), if any.
    pub prefix: Option<String>,
    /// Tensors of the file outside the model that a wrapper holds (a `GaussianDiffusion`'s
    /// schedule buffers, say): left out.
    pub ignored: Vec<String>,
    /// The wrapper's `betas` buffer (a `GaussianDiffusion`'s noise schedule), where it has
    /// one: the schedule the weights were trained with.
    pub betas: Option<Vec<f64>>,
    /// The wrapper's `loss_weight` buffer (a `GaussianDiffusion`'s per-step loss weight, which
    /// its objective decides), where it has one.
    pub loss_weight: Option<Vec<f64>>,
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
    let data = std::fs::read(path).map_err(|e| not_safetensors(path, &e.to_string()))?;
    let file = safetensors::SafeTensors::deserialize(&data)
        .map_err(|e| not_safetensors(path, &e.to_string()))?;
    let mut tensors = HashMap::new();
    for (name, view) in file.tensors() {
        let t = match view.dtype() {
            // A wrapper's flag (ema-pytorch's `initted`), never a weight: kept as bytes, so it
            // is left out with the wrapper's other buffers.
            safetensors::Dtype::BOOL => {
                Tensor::from_raw_buffer(view.data(), DType::U8, view.shape(), device)?
            }
            _ => candle_core::safetensors::Load::load(&view, device).map_err(|e| {
                anyhow::anyhow!("cannot read tensor {name} of {}: {e}", path.display())
            })?,
        };
        tensors.insert(name, t);
    }
    Ok(tensors)
}

/// [`read_state_dict`] of the tensors already read from `path` (see [`load_weights_file`]).
pub fn state_dict_of(
    file: HashMap<String, Tensor>,
    path: &Path,
    config: &UnetConfig,
) -> Result<StateDict> {
    let expected = expected_shapes(config)?;
    let prefix = model_prefix(file.keys().map(String::as_str), &expected);
    let mut tensors = HashMap::new();
    let mut ignored = Vec::new();
    let mut unexpected = Vec::new();
    let mut betas = None;
    let mut loss_weight = None;
    for (name, t) in file {
        let own = match &prefix {
            Some(p) => match name.strip_prefix(p.as_str()) {
                Some(n) => n.to_string(),
                None => {
                    let buffer = match &name[wrapper_path(&name).len()..] {
                        "betas" => Some(&mut betas),
                        "loss_weight" => Some(&mut loss_weight),
                        _ => None,
                    };
                    if let (Some(b), 1) = (buffer, t.rank()) {
                        *b = t.to_dtype(DType::F64)?.to_vec1::<f64>().ok();
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
            loss_weight,
        });
    }
    missing.sort_by_key(|k| in_model_order(k));
    unexpected.sort_by_key(|k| in_model_order(k));
    mismatched.sort_by_key(|k| in_model_order(k));
    let mut parts = Vec::new();
    if let Some(first) = mismatched.first() {
        parts.push(format!(
            "{} {} in shape, the first {first}: {:?} in the file, {:?} in the model",
            tensors_counted(mismatched.len()),
            if mismatched.len() == 1 {
                "differs"
            } else {
                "differ"
            },
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
    // Names of the file's tensors, the model's and not.
    let file_names = || tensors.keys().chain(unexpected.iter());
    // The file's stages, counted by its `downs.{i}`; the model has one per `dim_mults` entry.
    let in_file = file_names()
        .filter_map(|n| {
            n.strip_prefix("downs.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |i| i + 1);
    let in_model = config.dim_mults.len();
    if in_file > 0 && in_file != in_model {
        // Every other shape follows from the stages: the hints below would mislead.
        parts.push(format!(
            "the file's UNet has {in_file} stages and the model {in_model} (--dim-mults, one \
             entry per stage)"
        ));
    } else {
        parts.extend(shape_hints(&tensors, &expected));
    }
    // The blog's `Unet(with_time_emb=False)`: no time MLP at all, which no flag gives (every
    // UNet here is told its timestep).
    let timeless = !file_names().any(|n| n.starts_with("time_mlp."))
        && missing.iter().any(|n| n.starts_with("time_mlp."));
    if timeless {
        parts.push(
            "the file's UNet has no time embedding (the blog's with_time_emb=False), which \
             ddpm-lab's UNets all have"
                .to_string(),
        );
    }
    // lucidrains' time embedding of learned (or random) Fourier features: no flag gives it.
    let fourier = file_names().any(|n| n == "time_mlp.0.weights");
    if fourier {
        parts.push(
            "`time_mlp.0.weights` is the package's learned_sinusoidal_cond or \
             random_fourier_features time embedding (for its continuous-time diffusions; its \
             GaussianDiffusion refuses it), which ddpm-lab does not have"
                .to_string(),
        );
    }
    // lucidrains' released `Unet` normalises with gains named `g` (RMSNorm; LayerNorm before
    // 2.0) and its 2.x attention keeps `mem_kv`, names the blog's UNets lack.
    let released = |n: &String| n.ends_with(".g") || n.ends_with(".mem_kv");
    if config.arch != Arch::Lucidrains && unexpected.iter().any(released) {
        parts.push(
            "tensors named `….g` and `….mem_kv` are denoising-diffusion-pytorch's released `Unet`'s \
             (RMSNorm where the blog has GroupNorm, attention memory): give --unet lucidrains"
                .to_string(),
        );
    }
    Err(WeightsMisfit {
        message: format!(
            "the weights in {} do not fit the model ({})",
            path.display(),
            parts.join("; ")
        ),
        flags_help: !fourier,
    }
    .into())
}

/// What the shapes in a file say of the flags it needs, where they differ from the model's:
/// the init conv's widths and kernel, and a stage whose attention is full in one and linear in
/// the other (lucidrains' `mem_kv` is `(2, heads, 4, d)` for full attention, `(2, heads, d, 4)`
/// for linear).
fn shape_hints(
    tensors: &HashMap<String, Tensor>,
    expected: &HashMap<String, Vec<usize>>,
) -> Vec<String> {
    let mut hints = Vec::new();
    let differs = |name: &str| {
        tensors
            .get(name)
            .zip(expected.get(name))
            .filter(|(t, want)| t.dims() != want.as_slice())
            .map(|(t, want)| (t.dims().to_vec(), want.clone()))
    };
    // The time embedding's first linear reads the sinusoidal embedding of `dim` values, in
    // every UNet here: the file's dim, which sets the other widths (the blog's init width
    // is dim/3·2), so it goes first.
    if let Some((file, _)) = differs("time_mlp.1.weight").filter(|(f, _)| f.len() == 2) {
        hints.push(format!(
            "its time embedding is for dim = {0} (--dim {0})",
            file[1]
        ));
    }
    if let Some((file, model)) = differs("init_conv.weight").filter(|(f, _)| f.len() == 4) {
        if file[0] != model[0] {
            hints.push(format!(
                "the file's init conv makes {} channels (--init-dim {0}, or --dim where the init width is dim)",
                file[0]
            ));
        }
        if file[1] != model[1] {
            hints.push(format!(
                "it reads {} input channels (--channels; --self-condition doubles them)",
                file[1]
            ));
        }
        if file[2] != model[2] {
            hints.push(format!("its kernel is {0}×{0} (--init-conv {0})", file[2]));
        }
    }
    // Twice the image channels out: a learned variance beside the mean (the blog's out_dim).
    // The blog's final conv follows a ResNet block (`final_conv.1`), the others' stands alone.
    let final_conv = ["final_conv.1.weight", "final_conv.weight"]
        .into_iter()
        .find_map(&differs);
    if let Some((file, model)) = final_conv.filter(|(f, _)| f.len() == 4) {
        if file[0] == 2 * model[0] {
            hints.push(format!(
                "its final conv makes {} channels, a variance beside the mean (--learned-variance)",
                file[0]
            ));
        }
    }
    let mut flipped: Vec<&String> = expected
        .keys()
        .filter(|k| k.ends_with(".mem_kv"))
        .filter(|k| {
            differs(k).is_some_and(|(f, m)| {
                f.len() == 4 && m.len() == 4 && (f[0], f[1], f[2], f[3]) == (m[0], m[1], m[3], m[2])
            })
        })
        .collect();
    flipped.sort_by_key(|k| in_model_order(k));
    if let Some(first) = flipped.first() {
        hints.push(format!(
            "the attention at {} is full in one and linear in the other (--full-attn, one true or false per stage; the package's full_attn=False is its default, the last stage full)",
            first.trim_end_matches(".mem_kv")
        ));
    }
    // Same kind of attention, other heads: `(2, heads, dim_head, 4)` linear, `(2, heads, 4,
    // dim_head)` full.
    let mem = crate::model::lucidrains::NUM_MEM_KV;
    let mut reheaded: Vec<(&String, usize, usize)> = expected
        .keys()
        .filter(|k| k.ends_with(".mem_kv") && !flipped.contains(k))
        .filter_map(|k| {
            let (f, m) = differs(k).filter(|(f, m)| f.len() == 4 && m.len() == 4)?;
            match (m[3] == mem, f[2] == mem, f[3] == mem) {
                (true, _, true) => Some((k, f[1], f[2])),
                (false, true, _) => Some((k, f[1], f[3])),
                _ => None,
            }
        })
        .collect();
    reheaded.sort_by_key(|(k, _, _)| in_model_order(k));
    if let Some((first, heads, dim_head)) = reheaded.first() {
        hints.push(format!(
            "the attention at {} has {heads} heads of {dim_head} (--attn-heads {heads} \
             --attn-dim-head {dim_head}; a comma list gives each stage its own)",
            first.trim_end_matches(".mem_kv")
        ));
    }
    hints
}

/// Weights whose tensors are not the model's (missing, extra or of another shape).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct WeightsMisfit {
    /// What differs, naming the first tensors.
    message: String,
    /// Whether some model flags could make a model they fit.
    flags_help: bool,
}

/// The wrapper prefixes `name` starts with (`ema_model.model.` of
/// `ema_model.model.downs.0.…`; empty where none).
fn wrapper_path(name: &str) -> &str {
    let mut rest = name;
    while let Some(p) = WRAPPER_PREFIXES.iter().find(|p| rest.starts_with(**p)) {
        rest = &rest[p.len()..];
    }
    &name[..name.len() - rest.len()]
}

/// The wrapper prefixes before the model's names in a file of `names`: none where any of the
/// model's names is there bare, else the prefixes before most of them (ties go to the
/// outermost wrapper listed first in [`WRAPPER_PREFIXES`]: an EMA's `ema_model.` before its
/// `online_model.`).
fn model_prefix<'a>(
    names: impl Iterator<Item = &'a str> + Clone,
    expected: &HashMap<String, Vec<usize>>,
) -> Option<String> {
    if names.clone().any(|n| expected.contains_key(n)) {
        return None;
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for name in names {
        let p = wrapper_path(name);
        if !p.is_empty() && expected.contains_key(&name[p.len()..]) {
            *counts.entry(p).or_default() += 1;
        }
    }
    let rank = |p: &str| WRAPPER_PREFIXES.iter().position(|w| p.starts_with(w));
    counts
        .into_iter()
        .max_by_key(|&(p, n)| (n, std::cmp::Reverse((rank(p), p))))
        .map(|(p, _)| p.to_string())
}

/// `1 tensor`, `3 tensors`.
fn tensors_counted(n: usize) -> String {
    format!("{n} tensor{}", if n == 1 { "" } else { "s" })
}

/// `e` (weights that do not fit the model), for a command whose model flags say what the model
/// is (`import`, `forward`): with which flags to give. A run's checkpoint has no such flags:
/// its config.json says what it trained.
/// Other errors (no such file, not safetensors) are left as they are: no flag mends them.
pub fn with_model_flags_hint(e: anyhow::Error) -> anyhow::Error {
    if !e
        .downcast_ref::<WeightsMisfit>()
        .is_some_and(|m| m.flags_help)
    {
        return e;
    }
    let e = crate::errors::one_line(&e);
    anyhow::anyhow!(
        "{e}; give the model flags the weights were trained with (--unet, --dim, --init-dim, --dim-mults, --block, --convnext-mult, --init-conv, --resnet-groups, --full-attn, --attn-heads, --attn-dim-head, --self-condition, --learned-variance, --channels; a ddpm-lab run's are in its config.json)"
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
            "{} is a PyTorch pickle (torch.save), not safetensors: save the weights with safetensors.torch.save_file(model.state_dict(), \"unet.safetensors\") (from denoising-diffusion-pytorch's Trainer checkpoint, model-N.pt: d = torch.load(\"model-N.pt\"); save_file(d[\"model\"], \"diffusion.safetensors\"), and d[\"ema\"] for its EMA)",
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

    /// lucidrains' trainer saves an ema-pytorch `EMA` of a `GaussianDiffusion`: the UNet twice
    /// under two wrappers each (`ema_model.model.`, `online_model.model.`), the schedule's
    /// buffers, a step count and a bool flag (`initted`), which candle cannot read.
    #[test]
    fn an_ema_of_a_gaussian_diffusion_reads_the_ema_and_leaves_the_rest_out() {
        let cfg = tiny();
        let mut map = state_dict(&cfg, "online_model.model.");
        let ema = state_dict(&cfg, "");
        for (k, t) in &ema {
            map.insert(format!("ema_model.model.{k}"), (t + 1.0).unwrap());
        }
        let betas = Tensor::new(&[0.1f32, 0.2], &Device::Cpu).unwrap();
        map.insert("ema_model.betas".into(), betas.clone());
        map.insert("online_model.betas".into(), betas);
        map.insert("step".into(), Tensor::new(&[7i64], &Device::Cpu).unwrap());
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("ema.safetensors");
        candle_core::safetensors::save(&map, &f).unwrap();
        // Add the bool flag as ema-pytorch writes it.
        let bytes = std::fs::read(&f).unwrap();
        let read = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut views = read.tensors();
        let flag = [1u8];
        views.push((
            "initted".into(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::BOOL, vec![1], &flag).unwrap(),
        ));
        safetensors::serialize_to_file(views, None, &f).unwrap();

        let sd = read_state_dict(&f, &cfg, &Device::Cpu).unwrap();
        assert_eq!(sd.prefix.as_deref(), Some("ema_model.model."));
        let first = "init_conv.weight";
        let want = (&ema[first] + 1.0).unwrap().flatten_all().unwrap();
        let got = sd.tensors[first].flatten_all().unwrap();
        assert_eq!(
            want.to_vec1::<f32>().unwrap(),
            got.to_vec1::<f32>().unwrap()
        );
        assert_eq!(sd.betas.as_deref().map(|b| b.len()), Some(2));
        assert!(
            sd.ignored.contains(&"initted".to_string()),
            "{:?}",
            sd.ignored
        );
        assert!(sd.ignored.contains(&"step".to_string()));
        assert!(sd
            .ignored
            .iter()
            .any(|n| n.starts_with("online_model.model.")));
        unet_from(sd, &cfg, &Device::Cpu).unwrap();

        // DataParallel around a GaussianDiffusion, and torch.compile around that.
        for prefix in ["module.model.", "_orig_mod.model.", "model.module."] {
            let (_d, f) = saved(prefix, &[]);
            let sd = read_state_dict(&f, &cfg, &Device::Cpu).unwrap();
            assert_eq!(sd.prefix.as_deref(), Some(prefix));
        }
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
        // A variance beside the mean (the blog's out_dim = 2): the flag that loads it is named.
        let mut t = candle_core::safetensors::load(&f, &Device::Cpu).unwrap();
        for name in ["final_conv.1.weight", "final_conv.1.bias"] {
            if let Some(w) = t.get(name) {
                let mut dims = w.dims().to_vec();
                dims[0] *= 2;
                let doubled = Tensor::zeros(dims, candle_core::DType::F32, &Device::Cpu).unwrap();
                t.insert(name.to_string(), doubled);
            }
        }
        let variance = f.with_file_name("variance.safetensors");
        candle_core::safetensors::save(&t, &variance).unwrap();
        let e = read_state_dict(&variance, &tiny(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a variance beside the mean (--learned-variance)"),
            "{e}"
        );
        // No time MLP at all (the blog's with_time_emb=False): said as what no flag gives.
        let mut t = candle_core::safetensors::load(&f, &Device::Cpu).unwrap();
        t.retain(|name, _| !name.starts_with("time_mlp."));
        let timeless = f.with_file_name("timeless.safetensors");
        candle_core::safetensors::save(&t, &timeless).unwrap();
        let e = read_state_dict(&timeless, &tiny(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has no time embedding (the blog's with_time_emb=False), which ddpm-lab's"),
            "{e}"
        );
    }

    /// Flags can mend weights of another size, not a missing file nor another library's layout.
    #[test]
    fn the_model_flags_hint_is_given_where_flags_can_help() {
        let hint = |e: anyhow::Error| with_model_flags_hint(e).to_string();
        let (_d, f) = saved("", &[]);
        let wider = UnetConfig { dim: 12, ..tiny() };
        let e = hint(read_state_dict(&f, &wider, &Device::Cpu).unwrap_err());
        assert!(
            e.contains("1 tensor differs in shape") || e.contains("tensors differ in shape"),
            "{e}"
        );
        assert!(e.contains("; give the model flags"), "{e}");
        assert!(
            e.contains("--block, --convnext-mult,"),
            "every model flag: {e}"
        );
        let e = hint(read_state_dict(f.parent().unwrap(), &tiny(), &Device::Cpu).unwrap_err());
        assert!(
            e.contains("is a folder") && !e.contains("model flags"),
            "{e}"
        );
        // lucidrains' released Unet: RMSNorm gains `g` where the blog has GroupNorm.
        let d = tempfile::tempdir().unwrap();
        let g = d.path().join("lucidrains.safetensors");
        let cfg = UnetConfig {
            block: crate::model::BlockKind::Resnet,
            ..tiny()
        };
        let mut map = state_dict(&cfg, "");
        let w = map.remove("downs.0.0.block1.norm.weight").unwrap();
        map.remove("downs.0.0.block1.norm.bias");
        map.insert("downs.0.0.block1.norm.g".into(), w);
        candle_core::safetensors::save(&map, &g).unwrap();
        let e = hint(read_state_dict(&g, &cfg, &Device::Cpu).unwrap_err());
        assert!(
            e.contains("denoising-diffusion-pytorch's released `Unet`'s")
                && e.contains("give --unet lucidrains"),
            "{e}"
        );
        // Given that, the message no longer says it.
        let lucid = UnetConfig {
            dim_mults: vec![1, 2],
            ..UnetConfig::lucidrains()
        };
        let e = hint(read_state_dict(&g, &lucid, &Device::Cpu).unwrap_err());
        assert!(!e.contains("give --unet lucidrains"), "{e}");
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
            e.contains("is a PyTorch pickle")
                && e.contains("save_file")
                && e.contains("save_file(d[\"model\"]"),
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
