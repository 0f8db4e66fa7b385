//! `ddpm-lab forward`: runs the UNet once on tensors from a safetensors file — the parity tool
//! for moving weights between PyTorch and ddpm-lab.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use clap::Args;

use super::model_args::ModelArgs;
use super::train_cmd::note;
use crate::device::DeviceSpec;
use crate::model::{self, UnetConfig};

/// Arguments of `ddpm-lab forward`.
#[derive(Debug, Clone, Args)]
pub struct ForwardArgs {
    /// Weights (safetensors with PyTorch state_dict names), or a run (path or name) or one of
    /// its checkpoint folders: its newest checkpoint's model.safetensors (not the EMA's)
    #[arg(long)]
    pub weights: PathBuf,
    /// Input safetensors holding `x` (f32, N×C×H×W) and `t` (integer, N), and for a
    /// self-conditioned model (`--self-condition`) optionally `x_self_cond` (like `x`)
    #[arg(long)]
    pub input: PathBuf,
    /// Output safetensors; receives tensor `out`
    #[arg(long)]
    pub out: PathBuf,
    /// Device: cpu, cuda[:N] or metal
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
}

/// Runs the command.
pub fn run(mut args: ForwardArgs) -> Result<()> {
    // A run (by path or name) or a checkpoint folder stands for its newest weights file.
    args.weights =
        crate::store::checkpoint::weights_file_of(&crate::runs::find_run(&args.weights))?;
    // Before any work, and in words (the writer's temporary file would be named otherwise).
    let out_dir = crate::files::parent_dir(&args.out);
    if !out_dir.is_dir() {
        bail!(
            "cannot write {}: the folder {} does not exist",
            args.out.display(),
            out_dir.display()
        );
    }
    let same = |a: &std::path::Path, b: &std::path::Path| match (a.canonicalize(), b.canonicalize())
    {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if same(&args.out, &args.input) || same(&args.out, &args.weights) {
        bail!(
            "--out {} would overwrite an input: name another file",
            args.out.display()
        );
    }
    let device: Device = args.device.open()?;
    let input = candle_core::safetensors::load(&args.input, &device).with_context(|| {
        format!(
            "cannot read {} (not a safetensors file?)",
            args.input.display()
        )
    })?;
    let x = input
        .get("x")
        .with_context(|| format!("{} has no tensor `x`", args.input.display()))?;
    let t = input
        .get("t")
        .with_context(|| format!("{} has no tensor `t`", args.input.display()))?;
    let (n, c, _h, _w) = x
        .dims4()
        .map_err(|_| anyhow::anyhow!("`x` must have shape N×C×H×W, got {:?}", x.dims()))?;
    if t.dims() != [n] {
        bail!("`t` must have shape [{n}] to match `x`, got {:?}", t.dims());
    }
    let x = x.to_dtype(DType::F32)?;
    // A float `t` must hold whole steps: truncating 50.5 to 50 would answer another question
    // than PyTorch's embedding of 50.5 does.
    if t.dtype().is_float() {
        let t64 = t.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        if let Some(v) = t64.iter().find(|v| v.fract() != 0.0 || !v.is_finite()) {
            bail!("`t` must hold whole timesteps, got {v} (give `t` as integers)");
        }
    }
    let t = t.to_dtype(DType::I64)?;
    // Weights inside a run or checkpoint folder come with the model they were trained as;
    // other weights (from PyTorch) are the blog's model unless the flags say otherwise.
    let base = match saved_model_beside(&args.weights) {
        Some((model, file)) => {
            note(&format!(
                "note: the model of {} (model flags change it)",
                file.display()
            ));
            model
        }
        None => UnetConfig {
            channels: c,
            ..UnetConfig::blog()
        },
    };
    let cfg = args.model.apply(&base)?;
    if cfg.channels != c {
        bail!(
            "`x` has {c} channel(s) but the model takes {} (the weights decide: give `x` of {} channel(s))",
            cfg.channels,
            cfg.channels
        );
    }
    let (_, _, h, w) = x.dims4()?;
    cfg.validate_for_images(c, h, w)?;
    crate::runs::budget::check_inference(&cfg, h.max(w), n, args.device == DeviceSpec::Cpu)?;
    let state = model::state_dict::read_state_dict(&args.weights, &cfg, &device)
        .map_err(model::state_dict::with_model_flags_hint)?;
    if let Some(p) = &state.prefix {
        note(&format!(
            "note: the UNet's tensors are read from under `{p}`{}",
            match state.ignored.len() {
                0 => String::new(),
                n => format!(" ({n} other tensors left out, e.g. {})", state.ignored[0]),
            }
        ));
    }
    let unet = model::state_dict::unet_from(state, &cfg, &device)?;
    let cond = match input.get("x_self_cond") {
        Some(c) if cfg.self_condition => {
            if c.dims() != x.dims() {
                bail!(
                    "`x_self_cond` must have the shape of `x` {:?}, got {:?}",
                    x.dims(),
                    c.dims()
                );
            }
            Some(c.to_dtype(DType::F32)?)
        }
        Some(_) => bail!(
            "the input has `x_self_cond` but the model is not self-conditioned (--self-condition)"
        ),
        None => None,
    };
    let out = unet.forward_cond(&x, &t, cond.as_ref())?;
    let mut map = HashMap::new();
    map.insert("out".to_string(), out);
    crate::store::save_tensors_atomic(&map, &args.out)?;
    note(&format!("wrote `out` to {}", args.out.display()));
    Ok(())
}

/// The model of the ddpm-lab run configuration beside `weights` (a checkpoint folder's or an
/// old flat run's `config.json`), and that file; `None` where there is none, or where the file
/// is something else (a diffusers `config.json`, say).
fn saved_model_beside(weights: &std::path::Path) -> Option<(UnetConfig, PathBuf)> {
    let file = crate::files::parent_dir(weights).join(crate::store::CONFIG_FILE);
    if !file.is_file() {
        return None;
    }
    match crate::store::config::read_config_file(&file) {
        Ok(cfg) => Some((cfg.model, file)),
        Err(e) => {
            note(&format!(
                "note: {} is not used ({e:#}); the model is the blog's unless model flags say otherwise",
                file.display(),
            ));
            None
        }
    }
}
