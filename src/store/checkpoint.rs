//! Loading a run's weights for sampling.

use std::path::Path;

use anyhow::{bail, Result};
use candle_core::Device;

use super::dir::{RunDir, CONFIG_FILE, EMA_FILE, WEIGHTS_FILE};
use super::layout::Checkpoint;
use super::TrainConfig;

/// A network ready for sampling, with the configuration it was trained with.
pub struct LoadedModel {
    /// The network (no autograd graph).
    pub model: crate::model::Unet,
    /// The run's training configuration.
    pub config: TrainConfig,
    /// Steps the weights were trained for.
    pub step: usize,
    /// Whether the EMA weights were loaded.
    pub ema: bool,
    /// Whether the weights file was named (not picked from a run or checkpoint folder).
    pub named: bool,
}

impl LoadedModel {
    /// Why the EMA weights asked for (`prefer_ema`) are not the ones loaded, where the run
    /// keeps an EMA: its checkpoint has none (imported without them, or the file is gone). A
    /// weights file named is the one asked for.
    pub fn missing_ema(&self, prefer_ema: bool) -> Option<String> {
        (prefer_ema && !self.ema && !self.named && self.config.ema_decay.is_some()).then(|| {
            format!(
                "note: the checkpoint at step {} has no EMA weights ({EMA_FILE}): its raw weights draw the images",
                self.step
            )
        })
    }
}

/// Checks, without reading the tensors, that the safetensors file at `path` is whole: its
/// header reads and the file is as long as the header says. A listing can afford it for each
/// run (a few kilobytes read); a cut-off or zeroed file is said before `sample` or `--resume`
/// is tried. (Values damaged in place, at the right length, are found only on loading.)
pub fn check_safetensors_whole(path: &Path) -> Result<()> {
    use std::io::Read;
    let damaged = |why: String| anyhow::anyhow!("{} is damaged ({why})", path.display());
    let mut f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {} ({e})", path.display()))?;
    let len = f.metadata()?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| damaged(format!("{len} bytes, shorter than a header")))?;
    let n = u64::from_le_bytes(n);
    // safetensors' own limit on a header.
    if n > 100_000_000 || 8 + n > len {
        return Err(damaged(format!("a header of {n} bytes in a file of {len}")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| damaged(format!("its header cannot be read: {e}")))?;
    let header: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| damaged(format!("its header: {e}")))?;
    let data_end = header
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    if 8 + n + data_end != len {
        return Err(damaged(format!(
            "{len} bytes where its header says {}",
            8 + n + data_end
        )));
    }
    Ok(())
}

/// The weights file `path` names: itself where it is a file, a checkpoint folder's
/// `model.safetensors`, or a run's newest complete checkpoint's (raw weights, not the EMA's,
/// which the run keeps beside them as `ema.safetensors`).
pub fn weights_file_of(path: &Path) -> Result<std::path::PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let file = if Checkpoint::is_checkpoint_folder(path) {
        Checkpoint::open(path)?.file(WEIGHTS_FILE)
    } else {
        let run = RunDir::at(path);
        if !run.is_run() {
            bail!(
                "{} is a folder, not a weights file (a run's weights are RUN/checkpoints/step-N/model.safetensors)",
                path.display()
            );
        }
        run.require_checkpoint()?.file(WEIGHTS_FILE)
    };
    Ok(file)
}

/// Loads a checkpoint for sampling. `path` is a run directory (its newest complete checkpoint
/// is read), one checkpoint folder (`RUN/checkpoints/step-000120`), or a weights file inside
/// either (its `config.json` is read from the same folder). With `prefer_ema`, the EMA weights are
/// used when the run has them.
pub fn load_checkpoint(path: &Path, device: &Device, prefer_ema: bool) -> Result<LoadedModel> {
    if !path.exists() {
        bail!("checkpoint {} does not exist", path.display());
    }
    let (dir, weights) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else if path.extension().is_none_or(|e| e != "safetensors") {
        bail!(
            "{} is not a weights file: give a run directory, one of its checkpoint folders, or a .safetensors weights file in one",
            path.display()
        );
    } else {
        (crate::files::parent_dir(path), Some(path.to_path_buf()))
    };
    // A damaged checkpoint names the run's others, which may be whole.
    let run = RunDir::at(Checkpoint::run_dir_of(&dir));
    let ck = if Checkpoint::is_checkpoint_folder(&dir) {
        Checkpoint::open(&dir).map_err(|e| run.with_other_checkpoints(e, Some(&dir)))?
    } else {
        let parent = dir.parent().filter(|p| p.join(CONFIG_FILE).is_file());
        if let (Some(run), true) = (parent, dir.ends_with(super::layout::CHECKPOINTS_DIR)) {
            bail!(
                "{} is the run's checkpoints folder: pass the run ({}) or one checkpoint in it",
                dir.display(),
                run.display()
            );
        }
        // A run whose own config.json was lost samples from its checkpoints' copies.
        if !run.is_run() {
            bail!(
                "{} has no {CONFIG_FILE}: pass a run directory written by `ddpm-lab train` (bare weights from PyTorch: `ddpm-lab import` makes them a run)",
                dir.display()
            );
        }
        run.require_checkpoint()
            .map_err(|e| run.with_other_checkpoints(e, None))?
    };
    let damaged = |e: anyhow::Error| run.with_other_checkpoints(e, Some(ck.dir()));
    let config = ck.load_config().map_err(damaged)?;
    let named = weights.is_some();
    let (file, ema) = match weights {
        // A weights file named explicitly: the EMA's when it is the EMA's file.
        Some(w) => {
            let ema = w.file_name().is_some_and(|n| n == EMA_FILE);
            (w, ema)
        }
        None if prefer_ema && ck.file(EMA_FILE).is_file() => (ck.file(EMA_FILE), true),
        None => (ck.file(WEIGHTS_FILE), false),
    };
    if !file.is_file() {
        bail!(
            "checkpoint {} is missing {}",
            ck.dir().display(),
            file.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("weights")
        );
    }
    // Refuses NaN or infinite weights instead of drawing black images from them.
    super::dir::load_tensors(&file, &Device::Cpu).map_err(damaged)?;
    let model = crate::model::load_weights(&file, &config.model, device).map_err(damaged)?;
    Ok(LoadedModel {
        model,
        config,
        step: ck.state.step,
        ema,
        named,
    })
}
