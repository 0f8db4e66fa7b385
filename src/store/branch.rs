//! Branching a run: one of its checkpoints copied into a new run's folder, which then trains on
//! while the run it came from stays exactly as it was (going back to an earlier checkpoint in
//! place drops the later ones; a branch keeps them).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::dir::{file_digest, RunDir, EMA_FILE, EVAL_FILE, OPTIMIZER_FILE, WEIGHTS_FILE};
use super::layout::Checkpoint;
use super::{METRICS_FILE, QUALITY_FILE};

/// The tensor files a checkpoint may hold (its config.json and state.json are written anew).
const TENSOR_FILES: [&str; 3] = [WEIGHTS_FILE, OPTIMIZER_FILE, EMA_FILE];

impl RunDir {
    /// Copies checkpoint `ck` of this run into `dest`, a new run's folder (missing or empty),
    /// as that run's first checkpoint, with this run's loss log, preview scores, evaluations and
    /// previews up to `ck`'s step: a run that trains on from there while this one stays as it
    /// is. Each copied file is checked against the digest `ck` recorded, so a damaged
    /// checkpoint is refused here rather than carried over. This run is only read (it may be
    /// training meanwhile). On an error, `dest` is left as it was found.
    pub fn branch_to(&self, ck: &Checkpoint, dest: &Path) -> Result<Branch> {
        let existed = check_branch_folder(self.path(), dest)?;
        if !existed {
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            // Made here, not found: a branch started at the same time into the same name
            // fails rather than shares the folder.
            fs::create_dir(dest)
                .with_context(|| format!("cannot create run directory {}", dest.display()))?;
        }
        let made = Branch {
            dest: dest.to_path_buf(),
            existed,
        };
        self.copy_into(ck, dest).inspect_err(|_| made.undo())?;
        Ok(made)
    }

    /// The copy of [`Self::branch_to`], into the folder made for it.
    fn copy_into(&self, ck: &Checkpoint, dest: &Path) -> Result<()> {
        let branch = RunDir::at(dest);
        let _lock = super::RunLock::acquire(dest)?;
        let step = ck.state.step;
        let config = ck.load_config()?;
        let names: Vec<&str> = TENSOR_FILES
            .into_iter()
            .filter(|f| ck.file(f).is_file())
            .collect();
        // The branch's own history starts here: no checkpoints of this run are its to drop.
        let mut state = ck.state.clone();
        state.abandoned.clear();
        for f in &names {
            let from = ck.file(f);
            if let Some(recorded) = ck.state.digests.get(*f) {
                if file_digest(&from)? != *recorded {
                    bail!(
                        "{} is not the file its checkpoint wrote (its BLAKE3 digest differs): it is damaged; branch from another checkpoint",
                        from.display()
                    );
                }
            }
        }
        branch.write_checkpoint(&config, &state, &names, &mut |f, path| {
            let from = ck.file(f);
            fs::copy(&from, path).with_context(|| format!("cannot copy {}", from.display()))?;
            Ok(())
        })?;
        // The logs in step order, cut where the checkpoint was (as a resume cuts them).
        for log in [METRICS_FILE, QUALITY_FILE] {
            if self.file(log).is_file() {
                fs::copy(self.file(log), branch.file(log))
                    .with_context(|| format!("cannot copy {}", self.file(log).display()))?;
                branch.truncate_log(log, step)?;
            }
        }
        copy_evaluations_up_to(&self.file(EVAL_FILE), &branch.file(EVAL_FILE), step)?;
        copy_previews_up_to(self.path(), dest, step)?;
        crate::files::sync_dir(dest)?;
        Ok(())
    }
}

/// Where a branch of the run in `run` from its checkpoint at `step` goes when no folder is
/// named: beside the run, `NAME-from-STEP` (`-2`, `-3` … where that is taken).
pub fn default_branch_path(run: &Path, step: usize) -> PathBuf {
    let name = run
        .file_name()
        .map_or("run".into(), |n| n.to_string_lossy().into_owned());
    super::dir::numbered(run.with_file_name(format!("{name}-from-{step}")))
        .find(|p| !p.exists())
        .expect("the names never run out")
}

/// A branch made by [`RunDir::branch_to`].
#[derive(Debug)]
pub struct Branch {
    dest: PathBuf,
    existed: bool,
}

impl Branch {
    /// Removes the branch again (where the trainer cannot start on it): its folder goes, or is
    /// emptied where it was there, empty, before.
    pub fn undo(&self) {
        let _ = fs::remove_dir_all(&self.dest);
        if self.existed {
            let _ = fs::create_dir(&self.dest);
        }
    }
}

/// Checks that `dest` may hold a branch of the run in `source`: a new or empty folder, not the
/// run itself nor inside a run. Returns whether it exists.
fn check_branch_folder(source: &Path, dest: &Path) -> Result<bool> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(source, dest) {
        bail!(
            "{} is the run itself: a branch needs a new folder",
            dest.display()
        );
    }
    RunDir::check_new_run_path(dest)?;
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: a branch needs a new or empty folder",
                    dest.display()
                );
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dest.display())),
    }
}

/// Copies the evaluations of steps up to `step` (`eval` appends them in the order they were
/// run, not by step, so each line is judged on its own).
fn copy_evaluations_up_to(from: &Path, to: &Path, step: usize) -> Result<()> {
    let text = match fs::read_to_string(from) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", from.display())),
    };
    #[derive(serde::Deserialize)]
    struct Step {
        step: usize,
    }
    let kept: String = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter(|l| serde_json::from_str::<Step>(l).is_ok_and(|s| s.step <= step))
        .collect();
    if !kept.is_empty() {
        crate::files::write_bytes(to, kept.as_bytes())
            .with_context(|| format!("cannot write {}", to.display()))?;
    }
    Ok(())
}

/// Copies the previews of steps up to `step`.
fn copy_previews_up_to(source: &Path, dest: &Path, step: usize) -> Result<()> {
    let from = source.join(super::previews::PREVIEWS_DIR);
    let Ok(entries) = fs::read_dir(&from) else {
        return Ok(());
    };
    let to = dest.join(super::previews::PREVIEWS_DIR);
    fs::create_dir_all(&to).with_context(|| format!("cannot create {}", to.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        if path.is_file() && !crate::files::is_temp_name(&e.file_name().to_string_lossy()) {
            fs::copy(&path, to.join(e.file_name()))
                .with_context(|| format!("cannot copy {}", path.display()))?;
        }
    }
    super::previews::remove_after(dest, step)?;
    Ok(())
}
