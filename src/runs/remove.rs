//! Removing a run for good (the lab's Runs screen, `d`): refused while a process trains it,
//! and done so that a crash half-way never leaves something that looks like a run with
//! files missing.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::store::{RunLock, CONFIG_FILE};

/// What the name of a run being removed starts with: the run is renamed to
/// `.removing-<name>` before its files go, and run lists skip hidden folders.
pub const REMOVING_PREFIX: &str = ".removing-";

/// A run that was removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    /// Where it was.
    pub dir: PathBuf,
    /// The bytes its files took.
    pub bytes: u64,
    /// Its comparison's folder, removed with it as the comparison's last run.
    pub comparison: Option<PathBuf>,
}

/// Removes the run in `dir` with every file in it (checkpoints, metrics, previews, samples).
///
/// Refused where `dir` is not a run (no configuration, nor checkpoints keeping one) or a
/// process trains it (its lock is
/// held; the error names the process). The run is renamed to a hidden folder first, under its
/// lock, so a trainer that comes later finds no run there, and a removal cut short leaves a
/// hidden folder (removed by the next removal beside it) rather than half a run. The folder of
/// a comparison goes with its last run.
pub fn remove_run(dir: &Path) -> Result<Removed> {
    if !crate::store::RunDir::at(dir).is_run() {
        bail!(
            "{} is not a run (it holds no {CONFIG_FILE}); nothing was removed",
            dir.display()
        );
    }
    let name = dir
        .file_name()
        .with_context(|| format!("{} has no folder name", dir.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = dir.parent().unwrap_or(Path::new("."));
    let lock = RunLock::acquire(dir)?;
    let bytes = size_of(dir);
    let doomed = parent.join(format!("{REMOVING_PREFIX}{name}"));
    if doomed.exists() {
        fs::remove_dir_all(&doomed)
            .with_context(|| format!("cannot remove {}", doomed.display()))?;
    }
    fs::rename(dir, &doomed).with_context(|| format!("cannot remove {}", dir.display()))?;
    drop(lock);
    fs::remove_dir_all(&doomed).with_context(|| {
        format!(
            "{} was taken out of the run list, but its files could not all be removed from {}",
            dir.display(),
            doomed.display()
        )
    })?;
    sweep_leftovers(parent);
    let comparison = super::comparison::comparison_of(dir)
        .map(|(base, _)| base)
        .filter(|base| holds_no_run(base))
        .filter(|base| fs::remove_dir_all(base).is_ok());
    Ok(Removed {
        dir: dir.to_path_buf(),
        bytes,
        comparison,
    })
}

/// Bytes of the files under `path` (what cannot be read counts as nothing).
pub fn size_of(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| size_of(&e.path()))
        .sum()
}

/// Removes what removals cut short left in `parent` (best effort).
fn sweep_leftovers(parent: &Path) {
    for e in fs::read_dir(parent).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(REMOVING_PREFIX) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Whether the comparison folder `base` holds no run any more (only its own files).
fn holds_no_run(base: &Path) -> bool {
    fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .all(|e| !e.path().is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::comparison;
    use crate::schedule::BetaSchedule;
    use crate::store::{list_runs, RunDir, TrainConfig};

    fn make_run(dir: &Path) {
        let run = RunDir::create(dir).unwrap();
        run.save_config(&TrainConfig::default()).unwrap();
        fs::create_dir_all(dir.join("checkpoints/step-10")).unwrap();
        fs::write(
            dir.join("checkpoints/step-10/model.safetensors"),
            [0u8; 1000],
        )
        .unwrap();
    }

    #[test]
    fn a_run_is_removed_with_its_files_and_its_size_is_told() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("20261206-120000-linear");
        make_run(&run);
        let size = size_of(&run);
        assert!(size >= 1000, "{size}");
        let removed = remove_run(&run).unwrap();
        // Its files, and the lock file that names the remover.
        assert!((size..size + 32).contains(&removed.bytes), "{removed:?}");
        assert_eq!(removed.comparison, None);
        assert!(!run.exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0, "nothing left");
    }

    #[test]
    fn a_run_being_trained_or_a_folder_that_is_not_a_run_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("r");
        make_run(&run);
        let lock = RunLock::acquire(&run).unwrap();
        let err = remove_run(&run).unwrap_err().to_string();
        assert!(err.contains("is being trained by"), "{err}");
        assert!(run.join(CONFIG_FILE).is_file(), "kept whole");
        drop(lock);

        let other = d.path().join("notes");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("a.txt"), "keep me").unwrap();
        let err = remove_run(&other).unwrap_err().to_string();
        assert!(err.contains("is not a run"), "{err}");
        assert!(other.join("a.txt").is_file());
        let err = remove_run(&d.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a run"), "{err}");
    }

    /// A removal cut short (after the rename) leaves a hidden folder: no list shows it, and
    /// the next removal beside it takes it away.
    #[test]
    fn what_a_removal_cut_short_leaves_is_hidden_and_swept_later() {
        let d = tempfile::tempdir().unwrap();
        let cut = d.path().join(format!("{REMOVING_PREFIX}old"));
        make_run(&cut);
        let run = d.path().join("new");
        make_run(&run);
        assert_eq!(list_runs(d.path()), vec![run.clone()]);
        assert!(crate::runs::find_all_runs(d.path())
            .iter()
            .all(|r| r.dir == run));
        remove_run(&run).unwrap();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0, "swept");
    }

    #[test]
    fn a_comparisons_folder_goes_with_its_last_run() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("20261206-061500-compare");
        comparison::save_config(&base, &TrainConfig::default()).unwrap();
        let linear = comparison::member(&base, BetaSchedule::Linear);
        let cosine = comparison::member(&base, BetaSchedule::Cosine);
        make_run(&linear);
        make_run(&cosine);
        assert_eq!(remove_run(&linear).unwrap().comparison, None);
        assert!(
            base.join(comparison::CONFIG_FILE).is_file(),
            "cosine is left"
        );
        assert_eq!(remove_run(&cosine).unwrap().comparison, Some(base.clone()));
        assert!(!base.exists());
    }
}
