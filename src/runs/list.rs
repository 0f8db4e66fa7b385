//! Finding runs: every run directory under a runs directory, with what a list shows of it.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::store::{list_runs, RunDir, StepStats, TrainConfig, CONFIG_FILE};

/// What a run list shows of one run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: TrainConfig,
    /// Steps of its newest checkpoint (0 before the first).
    pub step: usize,
}

impl RunInfo {
    /// Reads the run in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        Self::of(&RunDir::open(dir)?)
    }

    /// Reads an opened run.
    pub fn of(run: &RunDir) -> Result<Self> {
        Ok(Self {
            dir: run.path().to_path_buf(),
            config: run.load_config()?,
            step: run.saved_step().unwrap_or(0),
        })
    }

    /// The run with its metrics history (one directory read for both).
    pub fn with_history(dir: &Path) -> Result<(Self, Vec<StepStats>)> {
        let run = RunDir::open(dir)?;
        Ok((Self::of(&run)?, run.read_metrics()?))
    }
}

/// The runs under `root`, newest first, then those kept one directory further down (the lab's
/// Compare runs); folders that are not readable runs are left out.
pub fn find_runs(root: &Path) -> Vec<RunInfo> {
    let mut dirs = list_runs(root);
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.join(CONFIG_FILE).exists() {
                dirs.extend(list_runs(&p));
            }
        }
    }
    dirs.iter().filter_map(|d| RunInfo::read(d).ok()).collect()
}
