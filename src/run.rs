//! Run directories: everything needed to inspect, resume or sample a training run.
//!
//! ```text
//! RUN_DIR/
//!   config.json          training + model configuration
//!   model.safetensors    weights, PyTorch state_dict names
//!   ema.safetensors      EMA of the weights (when enabled)
//!   optimizer.safetensors Adam moments and step
//!   state.json           step, epoch, seed, elapsed time
//!   metrics.jsonl        one StepStats JSON object per step
//! ```
//! Every file is written atomically (temporary file + rename), so an interrupted write never
//! leaves a half-written checkpoint behind.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::train::events::StepStats;
use crate::train::TrainConfig;

/// File names inside a run directory.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// EMA weights file.
pub const EMA_FILE: &str = "ema.safetensors";
/// Optimiser state file.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Progress file.
pub const STATE_FILE: &str = "state.json";
/// Metrics log.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Progress saved with a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct RunState {
    /// Optimisation steps done.
    pub step: usize,
    /// Epoch of the last step.
    pub epoch: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Training seconds so far.
    pub elapsed_s: f64,
}

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

/// Runs `write` on a temporary path next to `path`, then renames it into place, so `path` is
/// either the old file or the complete new one, never half written.
fn replace_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    if let Err(e) = write(&tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_atomically(path, |tmp| {
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all().ok();
        Ok(())
    })
}

/// Saves named tensors as safetensors atomically.
pub fn save_tensors_atomic(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    replace_atomically(path, |tmp| {
        Ok(candle_core::safetensors::save(tensors, tmp)?)
    })
}

impl RunDir {
    /// Creates (or reuses) a run directory at `path`.
    pub fn create(path: &Path) -> Result<Self> {
        fs::create_dir_all(path)
            .with_context(|| format!("cannot create run directory {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing run directory, checking that it holds a checkpoint.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            bail!(
                "{} is not a run directory (it does not exist or is not a folder)",
                path.display()
            );
        }
        let run = Self {
            path: path.to_path_buf(),
        };
        for f in [CONFIG_FILE, WEIGHTS_FILE] {
            if !run.file(f).is_file() {
                bail!(
                    "{} is not a run directory: {} is missing",
                    path.display(),
                    f
                );
            }
        }
        Ok(run)
    }

    /// A fresh directory name under `root`: `runs/20261125-061500-linear`.
    pub fn fresh_path(root: &Path, tag: &str) -> PathBuf {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (y, mo, d, h, mi, s) = civil_time(now);
        let base = format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{tag}");
        let mut p = root.join(&base);
        let mut i = 1;
        while p.exists() {
            i += 1;
            p = root.join(format!("{base}-{i}"));
        }
        p
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes the training configuration.
    pub fn save_config(&self, cfg: &TrainConfig) -> Result<()> {
        write_atomic(
            &self.file(CONFIG_FILE),
            serde_json::to_string_pretty(cfg)?.as_bytes(),
        )
    }

    /// Reads the training configuration.
    pub fn load_config(&self) -> Result<TrainConfig> {
        let p = self.file(CONFIG_FILE);
        let text =
            fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid run config", p.display()))
    }

    /// Writes the progress file.
    pub fn save_state(&self, st: &RunState) -> Result<()> {
        write_atomic(
            &self.file(STATE_FILE),
            serde_json::to_string_pretty(st)?.as_bytes(),
        )
    }

    /// Reads the progress file (absent → step 0).
    pub fn load_state(&self) -> Result<RunState> {
        let p = self.file(STATE_FILE);
        if !p.exists() {
            return Ok(RunState::default());
        }
        let text =
            fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is corrupt", p.display()))
    }

    /// Loads a safetensors file of the run onto `device`.
    pub fn load_tensors(&self, name: &str, device: &Device) -> Result<HashMap<String, Tensor>> {
        let p = self.file(name);
        candle_core::safetensors::load(&p, device).with_context(|| {
            format!(
                "cannot read {} (missing or corrupt checkpoint)",
                p.display()
            )
        })
    }

    /// Appends one line to the metrics log.
    pub fn append_metrics(&self, stats: &StepStats) -> Result<()> {
        let p = self.file(METRICS_FILE);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("cannot append to {}", p.display()))?;
        writeln!(f, "{}", serde_json::to_string(stats)?)?;
        Ok(())
    }

    /// Reads the metrics log (lines that do not parse, e.g. a torn last line, are skipped).
    pub fn read_metrics(&self) -> Result<Vec<StepStats>> {
        read_metrics_file(&self.file(METRICS_FILE))
    }

    /// Drops metric lines after `step` (written after the last checkpoint), so a resumed run
    /// continues the curve exactly where the checkpoint left it.
    pub fn truncate_metrics(&self, step: usize) -> Result<Vec<StepStats>> {
        let kept: Vec<StepStats> = self
            .read_metrics()?
            .into_iter()
            .filter(|s| s.step <= step)
            .collect();
        let mut text = String::new();
        for s in &kept {
            text.push_str(&serde_json::to_string(s)?);
            text.push('\n');
        }
        write_atomic(&self.file(METRICS_FILE), text.as_bytes())?;
        Ok(kept)
    }
}

/// Reads a metrics JSON-lines file; a missing file is empty.
pub fn read_metrics_file(path: &Path) -> Result<Vec<StepStats>> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(BufReader::new(f)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect())
}

/// Lists run directories under `root`, newest first.
pub fn list_runs(root: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join(CONFIG_FILE).is_file())
        .map(|p| {
            let t = fs::metadata(p.join(CONFIG_FILE))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.0));
    runs.into_iter().map(|(_, p)| p).collect()
}

/// UTC calendar time from a Unix timestamp (days-from-civil inverse, Howard Hinnant).
fn civil_time(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem / 60) % 60) as u32,
        (rem % 60) as u32,
    )
}

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
}

/// Loads a checkpoint for sampling. `path` is a run directory, or a weights file inside one
/// (its `config.json` is read from the same folder). With `prefer_ema`, the EMA weights are
/// used when the run has them.
pub fn load_checkpoint(path: &Path, device: &Device, prefer_ema: bool) -> Result<LoadedModel> {
    if !path.exists() {
        bail!("checkpoint {} does not exist", path.display());
    }
    let (dir, weights) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        (dir, Some(path.to_path_buf()))
    };
    let run = RunDir { path: dir.clone() };
    if !run.file(CONFIG_FILE).is_file() {
        bail!(
            "{} has no {CONFIG_FILE}: pass a run directory written by `ddpm-lab train` (for bare weights use `ddpm-lab forward`)",
            dir.display()
        );
    }
    let config = run.load_config()?;
    let state = run.load_state()?;
    let (file, ema) = match weights {
        Some(w) => (w, false),
        None if prefer_ema && run.file(EMA_FILE).is_file() => (run.file(EMA_FILE), true),
        None => (run.file(WEIGHTS_FILE), false),
    };
    if !file.is_file() {
        bail!(
            "checkpoint {} is missing {}",
            dir.display(),
            file.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("weights")
        );
    }
    let model = crate::model::load_weights(&file, &config.model, device)?;
    Ok(LoadedModel {
        model,
        config,
        step: state.step,
        ema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_known_dates() {
        assert_eq!(civil_time(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_time(1_795_000_000), (2026, 11, 18, 11, 6, 40));
    }

    #[test]
    fn atomic_write_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left behind"
        );
    }
}
