//! Run directories on disk: everything needed to inspect, resume or sample a training run.
//!
//! ```text
//! RUN_DIR/
//!   config.json          training + model configuration
//!   model.safetensors    weights, PyTorch state_dict names
//!   ema.safetensors      EMA of the weights (when enabled)
//!   optimizer.safetensors Adam moments and step
//!   state.json           step, epoch, seed, elapsed time
//!   metrics.jsonl        one StepStats JSON object per step
//!   quality.jsonl        the lab's preview scores, one JSON object per preview
//! ```
//! Every file is written atomically (temporary file + rename), so an interrupted write never
//! leaves a half-written checkpoint behind.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;

use super::{RunState, StepStats, TrainConfig};

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
/// Quality scores of the lab's training previews, one JSON object per preview.
pub const QUALITY_FILE: &str = "quality.jsonl";

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

/// Writes `bytes` to `path` durably (see [`crate::files::replace_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_bytes(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Saves named tensors as safetensors durably (see [`crate::files::replace_with`]).
pub fn save_tensors_atomic(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    crate::files::replace_with(path, None, |tmp| candle_core::safetensors::save(tensors, tmp))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot write {}", path.display()))
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

    /// A handle on `path` without any check (for writers of side logs before the first
    /// checkpoint, and readers that check what they need).
    pub(crate) fn at(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
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
        let base = format!("{}-{tag}", crate::clock::utc_stamp());
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
        self.append_line(METRICS_FILE, stats)
    }

    /// Appends `value` as one JSON line to the log `name` (created when missing).
    pub fn append_line(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let p = self.file(name);
        let line = serde_json::to_string(value)? + "\n";
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("cannot append to {}", p.display()))?;
        // One write per line, so a crash can tear only the last line (readers skip it).
        f.write_all(line.as_bytes())
            .with_context(|| format!("cannot append to {}", p.display()))
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


#[cfg(test)]
mod tests {
    use super::*;

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
