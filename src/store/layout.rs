//! The checkpoint layout of a run directory, and the one way checkpoints are written.
//!
//! ```text
//! RUN_DIR/
//!   config.json                 the run's configuration (for listings; resume reads the copy
//!                               inside the checkpoint)
//!   metrics.jsonl, quality.jsonl
//!   lock                        held (advisory lock) by the process training the run
//!   latest                      name of the newest complete checkpoint, e.g. `step-000120`
//!   checkpoints/
//!     step-000100/              model, optimizer, ema (when on), config.json, state.json
//!     step-000120/
//! ```
//!
//! A checkpoint is written into a temporary folder (`checkpoints/.tmp-…`), every file and the
//! folder fsynced, then renamed to its final name, and only then is `latest` switched (written
//! durably by rename). A crash at any point leaves `latest` naming a complete checkpoint (or
//! no checkpoint at all, before the first); readers follow `latest` only. The last
//! [`KEEP_CHECKPOINTS`] complete checkpoints are kept; temporary folders left by a crash are
//! removed at the next checkpoint.
//!
//! Run directories written before this layout (all files flat in the run directory) still
//! load: with no `latest`, a flat `state.json` + `model.safetensors` is the checkpoint.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::dir::{RunDir, CONFIG_FILE, STATE_FILE, WEIGHTS_FILE};
use super::{RunState, TrainConfig};
use crate::files;

/// Folder of a run's checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Where a checkpoint named by an error goes: errors of the store are read by `train`,
/// `sample` and `eval` alike, so each user finds the flag of the command they ran.
const FLAGS_TAKING_A_CHECKPOINT: &str =
    "train goes on from it with --resume, sample and eval draw from it with --checkpoint";

/// The pointer file naming the newest complete checkpoint.
pub const LATEST_FILE: &str = "latest";
/// Complete checkpoints kept (the newest and the one before, in case the newest is damaged
/// later by something outside ddpm-lab).
pub const KEEP_CHECKPOINTS: usize = 2;
/// Prefix of temporary checkpoint folders.
const TEMP_PREFIX: &str = ".tmp-";

/// One complete checkpoint on disk.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
    name: Option<String>,
    /// Progress saved with it.
    pub state: RunState,
}

impl Checkpoint {
    /// A file of the checkpoint (`model.safetensors`, `optimizer.safetensors`, …).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Its folder (the run directory itself for a run in the flat layout).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its name under `checkpoints/` (`None` for the flat layout).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether `dir` is one checkpoint's folder (`…/checkpoints/step-…`).
    pub fn is_checkpoint_folder(dir: &Path) -> bool {
        dir.parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == CHECKPOINTS_DIR)
            && dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
    }

    /// The run directory a path stands for: the run of a checkpoint folder, else the path.
    pub fn run_dir_of(dir: &Path) -> &Path {
        match dir.parent().and_then(Path::parent) {
            // `checkpoints/step-N`, relative: the run is the current folder.
            Some(run) if Self::is_checkpoint_folder(dir) && run.as_os_str().is_empty() => {
                Path::new(".")
            }
            Some(run) if Self::is_checkpoint_folder(dir) => run,
            _ => dir,
        }
    }

    /// Opens one checkpoint folder, checking that it is complete.
    pub fn open(dir: &Path) -> Result<Self> {
        let ck = Checkpoint {
            dir: dir.to_path_buf(),
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()),
            state: RunState::default(),
        };
        for f in REQUIRED_FILES {
            if !ck.file(f).is_file() {
                bail!("checkpoint {} is incomplete: {f} is missing", dir.display());
            }
        }
        // Read now so that a config the run cannot use is refused when the checkpoint is
        // opened, naming the file.
        ck.load_config()?;
        let state = read_state(&ck.file(STATE_FILE))?;
        // A `step-N` folder holds step N: another step is a state.json from elsewhere.
        if let Some((step, _)) = ck.name.as_deref().and_then(step_of_name) {
            if step != state.step {
                bail!(
                    "{} says step {}, but its checkpoint folder is step {step}: the checkpoint is damaged",
                    ck.file(STATE_FILE).display(),
                    state.step
                );
            }
        }
        Ok(Checkpoint { state, ..ck })
    }

    /// Reads the configuration saved with the checkpoint.
    pub fn load_config(&self) -> Result<TrainConfig> {
        super::config::read_config_file(&self.file(CONFIG_FILE))
    }
}

/// The folder name of the checkpoint at `step` (`k` > 0 for a second checkpoint at one step).
fn step_name(step: usize, k: usize) -> String {
    if k == 0 {
        format!("step-{step:06}")
    } else {
        format!("step-{step:06}.{k}")
    }
}

/// The files without which a checkpoint folder is unusable. The optimizer and EMA states are
/// written with every checkpoint too, but only resuming needs them: it refuses when they are
/// missing unless told to restart them (`--reset-optimizer`), while sampling does without.
pub const REQUIRED_FILES: [&str; 3] = [CONFIG_FILE, WEIGHTS_FILE, STATE_FILE];

fn read_state(path: &Path) -> Result<RunState> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))
}

impl RunDir {
    /// The folder holding the run's checkpoints.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.file(CHECKPOINTS_DIR)
    }

    /// The newest complete checkpoint: the one `latest` names, or the flat layout of older
    /// runs; `None` before the first checkpoint. A `latest` that names a missing or
    /// incomplete checkpoint (changed outside ddpm-lab) is an error naming what is missing.
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let pointer = self.file(LATEST_FILE);
        match fs::read_to_string(&pointer) {
            Ok(text) => {
                let name = text.trim();
                if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                    bail!("{} is corrupt (names {name:?})", pointer.display());
                }
                let dir = self.checkpoints_dir().join(name);
                if !dir.is_dir() {
                    bail!(
                        "{} names checkpoint {name}, which is missing from {}",
                        pointer.display(),
                        self.checkpoints_dir().display()
                    );
                }
                Checkpoint::open(&dir).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.flat_checkpoint(),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", pointer.display())),
        }
    }

    /// The checkpoint a resume given `path` continues from: `path` itself when it is one
    /// checkpoint's folder of this run (`RUN/checkpoints/step-N`: to go back, or past a newest
    /// checkpoint that is damaged), else the run's newest complete one. Open the run with
    /// `RunDir::open(Checkpoint::run_dir_of(path))`.
    ///
    /// An error for a damaged checkpoint names the run's others (see
    /// [`Self::with_other_checkpoints`]); so does its config.json, read by
    /// [`Self::resume_config`].
    pub fn checkpoint_to_resume(&self, path: &Path) -> Result<Checkpoint> {
        let asked = Checkpoint::is_checkpoint_folder(path).then_some(path);
        self.find_checkpoint_to_resume(path)
            .map_err(|e| match asked {
                // One that is not there: the error lists the run's checkpoints already.
                Some(p) if !p.is_dir() => e,
                _ => self.with_other_checkpoints(e, asked),
            })
    }

    /// The configuration saved with `ck` (one of this run's checkpoints), or an error that
    /// names the run's other checkpoints.
    pub fn resume_config(&self, ck: &Checkpoint) -> Result<TrainConfig> {
        ck.load_config()
            .map_err(|e| self.with_other_checkpoints(e, Some(ck.dir())))
    }

    fn find_checkpoint_to_resume(&self, path: &Path) -> Result<Checkpoint> {
        if Checkpoint::is_checkpoint_folder(path) {
            if !path.is_dir() {
                let names = self.checkpoint_names();
                // `step-100` for `step-000100`: the one folder of that step, where there is one.
                let asked = path
                    .file_name()
                    .and_then(|n| step_of_name(&n.to_string_lossy()));
                let same: Vec<&String> = names
                    .iter()
                    .filter(|n| asked.is_some_and(|(step, k)| sort_key(n) == (step, k)))
                    .collect();
                if let [one] = same.as_slice() {
                    return Checkpoint::open(&self.checkpoints_dir().join(one));
                }
                bail!(
                    "{} does not exist; {}",
                    path.display(),
                    if names.is_empty() {
                        "the run has no checkpoint folder".to_string()
                    } else {
                        format!("the run's checkpoints are {}", names.join(", "))
                    }
                );
            }
            Checkpoint::open(path)
        } else {
            self.require_checkpoint()
        }
    }

    /// Whether `checkpoints/` holds any checkpoint folder (complete or not).
    pub fn has_checkpoint_folders(&self) -> bool {
        !self.checkpoint_names().is_empty()
    }

    /// Whether the run has checkpoints (`latest`, or checkpoint folders), whatever else it
    /// lacks.
    pub fn has_checkpoints(&self) -> bool {
        self.file(LATEST_FILE).is_file() || self.has_checkpoint_folders()
    }

    /// Whether the folder is a run: its own config.json, or checkpoints that keep one each (a
    /// run whose config.json was lost). What listing, opening, sampling and removing go by.
    pub fn is_run(&self) -> bool {
        self.file(CONFIG_FILE).is_file() || self.has_checkpoints()
    }

    /// The newest complete checkpoint, or an error saying there is none yet.
    pub fn require_checkpoint(&self) -> Result<Checkpoint> {
        if let Some(ck) = self.latest_checkpoint()? {
            return Ok(ck);
        }
        match self.checkpoint_names().last() {
            Some(newest) => bail!(
                "{} has checkpoints but no {LATEST_FILE} naming the newest: the newest is {} ({FLAGS_TAKING_A_CHECKPOINT})",
                self.path().display(),
                self.checkpoints_dir().join(newest).display()
            ),
            None => Err(self.no_checkpoint_error()),
        }
    }

    /// The checkpoint of a run in the flat layout (before `checkpoints/`), if any.
    fn flat_checkpoint(&self) -> Result<Option<Checkpoint>> {
        if !self.file(WEIGHTS_FILE).is_file() {
            return Ok(None);
        }
        let state_file = self.file(STATE_FILE);
        if !state_file.is_file() {
            bail!(
                "{} has weights but no {STATE_FILE}: the step they belong to is unknown, so the run cannot be resumed",
                self.path().display()
            );
        }
        Ok(Some(Checkpoint {
            dir: self.path().to_path_buf(),
            name: None,
            state: read_state(&state_file)?,
        }))
    }

    /// Writes a checkpoint as one unit (see the module docs): `write(file, path)` is called for
    /// each of `names` with the path to fill; `config` and `state` are saved beside them.
    /// Returns the checkpoint's folder. On an error nothing is switched: the previous
    /// checkpoint stays the newest, and the temporary folder is removed.
    pub fn write_checkpoint(
        &self,
        config: &TrainConfig,
        state: &RunState,
        names: &[&str],
        write: &mut dyn FnMut(&str, &Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let root = self.checkpoints_dir();
        fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
        let name = (0..)
            .map(|k| step_name(state.step, k))
            .find(|n| !root.join(n).exists())
            .expect("a free name");
        let tmp = root.join(format!("{TEMP_PREFIX}{name}-{}", std::process::id()));
        let mut state = state.clone();
        let result = (|| -> Result<()> {
            if tmp.exists() {
                fs::remove_dir_all(&tmp)?;
            }
            fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            for f in names {
                crate::fail_point!("checkpoint-before-file", f);
                let path = tmp.join(f);
                write(f, &path).with_context(|| format!("cannot write {}", path.display()))?;
                // Weights are written private by safetensors; every run file gets one mode.
                crate::files::use_default_mode(&path)
                    .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
                crate::fail_point!("checkpoint-before-sync", f);
                sync_file(&path)?;
                crate::fail_point!("checkpoint-after-file", f);
                // What was written, read back: loading checks the file is still this.
                state
                    .digests
                    .insert(f.to_string(), super::dir::file_digest(&path)?);
            }
            let cfg_json = serde_json::to_string_pretty(config)?;
            write_synced(&tmp.join(CONFIG_FILE), cfg_json.as_bytes())?;
            crate::fail_point!("checkpoint-after-file", CONFIG_FILE);
            let state_json = serde_json::to_string_pretty(&state)?;
            write_synced(&tmp.join(STATE_FILE), state_json.as_bytes())?;
            crate::fail_point!("checkpoint-after-file", STATE_FILE);
            files::sync_dir(&tmp)?;
            crate::fail_point!("checkpoint-before-rename", "");
            fs::rename(&tmp, root.join(&name))
                .with_context(|| format!("cannot move {} into place", tmp.display()))?;
            files::sync_dir(&root)?;
            crate::fail_point!("checkpoint-before-switch", "");
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        // The run's config.json before the switch (it only follows the checkpoints' own, which
        // resumes read): a failure either way leaves `latest` where it was.
        let switched = self
            .follow_config(config)
            .and_then(|()| self.point_latest_at(&name));
        if let Err(e) = switched {
            // A pointer written whole but not synced still names the new folder: it is the
            // run's latest. Otherwise nothing names it, and it goes, so that trying again
            // writes the same folder, not one more beside it on every try.
            if !self.latest_is(&name) {
                let _ = fs::remove_dir_all(root.join(&name));
                return Err(e);
            }
        }
        crate::fail_point!("checkpoint-after-switch", "");
        self.prune_checkpoints(&name, &state.abandoned);
        Ok(root.join(name))
    }

    /// Makes `ck` (one of this run's checkpoint folders) the run's latest, as a new checkpoint
    /// would be: a resume that goes back to it commits to it at once, so that a trainer that
    /// stops before its first new checkpoint leaves the run where it went back to, never at
    /// the branch it left (whose logs are dropped already).
    pub fn switch_latest_to(&self, ck: &Checkpoint) -> Result<()> {
        let Some(name) = ck
            .dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return Ok(());
        };
        if ck.dir().parent() != Some(self.checkpoints_dir().as_path()) {
            return Ok(());
        }
        if self.latest_is(&name) {
            return Ok(());
        }
        self.point_latest_at(&name)?;
        if let Ok(cfg) = ck.load_config() {
            self.follow_config(&cfg)?;
        }
        Ok(())
    }

    /// Saves `config` as the settings the run goes on with from checkpoint `ck` (a resume's
    /// new stop step or learning rate) at once, so that a trainer stopped before its next
    /// checkpoint does not lose them: into `ck`'s config.json and, where `ck` is the run's
    /// latest, the run's own. Each file is replaced whole.
    pub fn save_settings_from(&self, ck: &Checkpoint, config: &TrainConfig) -> Result<()> {
        let json = serde_json::to_string_pretty(config)?;
        super::dir::write_atomic(&ck.file(CONFIG_FILE), json.as_bytes())?;
        // In the flat layout the checkpoint's config.json is the run's.
        let Some(name) = ck.name() else {
            return Ok(());
        };
        if self.latest_is(name) {
            self.follow_config(config)?;
        }
        Ok(())
    }

    /// Whether the run's `latest` pointer names checkpoint folder `name`.
    fn latest_is(&self, name: &str) -> bool {
        fs::read_to_string(self.file(LATEST_FILE)).is_ok_and(|now| now.trim() == name)
    }

    /// Switches the run's `latest` pointer to checkpoint folder `name` (the commit of a
    /// checkpoint: written whole, then renamed into place).
    fn point_latest_at(&self, name: &str) -> Result<()> {
        files::write_bytes(&self.file(LATEST_FILE), format!("{name}\n").as_bytes())
            .with_context(|| format!("cannot write {}", self.file(LATEST_FILE).display()))
    }

    /// The run's own config.json follows its latest checkpoint's (listings read it).
    fn follow_config(&self, config: &TrainConfig) -> Result<()> {
        super::dir::write_atomic(
            &self.file(CONFIG_FILE),
            serde_json::to_string_pretty(config)?.as_bytes(),
        )
    }

    /// The checkpoint folders (complete or not) at or past `from`'s step other than `from`
    /// itself, oldest first: what a run resumed from `from` goes back past, and drops at its
    /// next checkpoint (see [`Self::prune_checkpoints`]).
    pub fn checkpoints_past(&self, from: &Checkpoint) -> Vec<String> {
        let own = from
            .dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        self.checkpoint_names()
            .into_iter()
            .filter(|n| Some(n) != own.as_ref() && sort_key(n).0 >= from.state.step)
            .collect()
    }

    /// Refuses a folder that holds a run, as a new run's: it is never started over, also when
    /// its newest checkpoint cannot be read (its older checkpoints and its history stay).
    pub fn check_holds_no_run(&self) -> Result<()> {
        let dir = self.path().display();
        match self.latest_checkpoint() {
            Ok(Some(ck)) => bail!(
                "{dir} already holds a run (checkpoint at step {}); continue it with --resume or pick another run directory",
                ck.state.step
            ),
            Ok(None) if self.has_checkpoint_folders() => bail!(
                "{dir} already holds checkpoints of a run (in {}); pick another run directory",
                self.checkpoints_dir().display()
            ),
            Ok(None) => Ok(()),
            Err(e) if self.has_checkpoint_folders() => bail!(
                "{dir} already holds a run whose newest checkpoint cannot be read ({e:#}); nothing was changed: pick another run directory, or continue the run from an older checkpoint with --resume {}/step-N",
                self.checkpoints_dir().display()
            ),
            Err(e) => bail!(
                "{dir} already holds a run whose checkpoint cannot be read ({e:#}); nothing was changed: pick another run directory"
            ),
        }
    }

    /// The run's checkpoint folder of step `step`, where it is still there (the newest of that
    /// step: a run that went back and trained past it again writes `step-N.1`).
    pub fn checkpoint_of_step(&self, step: usize) -> Option<PathBuf> {
        self.checkpoint_names()
            .into_iter()
            .rev()
            .find(|n| sort_key(n).0 == step && !n.starts_with(TEMP_PREFIX))
            .map(|n| self.checkpoints_dir().join(n))
            .filter(|p| p.join(super::dir::STATE_FILE).is_file())
    }

    /// The names of the checkpoint folders in `checkpoints/` (complete or not), oldest first.
    pub fn checkpoint_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.checkpoints_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("step-"))
            .collect();
        names.sort_by_key(|n| sort_key(n));
        names
    }

    /// `e`, with the run's other complete-looking checkpoints named where there are some (newest
    /// first, `but` aside: the one that failed, else the one `latest` names), so that a damaged
    /// checkpoint is not the end of the run: `--resume RUN/checkpoints/step-N` goes on from
    /// another (`sample --checkpoint` draws from it).
    pub fn with_other_checkpoints(&self, e: anyhow::Error, but: Option<&Path>) -> anyhow::Error {
        // Without `but`, the one `latest` names failed.
        let named = fs::read_to_string(self.file(LATEST_FILE))
            .ok()
            .map(|n| self.checkpoints_dir().join(n.trim()));
        let failed = but.map(Path::to_path_buf).or(named);
        // Without `latest` no checkpoint failed: the error says which to go on from already.
        let Some(failed) = failed else {
            return e;
        };
        let others: Vec<PathBuf> = self
            .checkpoint_names()
            .into_iter()
            .rev()
            .map(|n| self.checkpoints_dir().join(n))
            .filter(|d| *d != failed && d.join(STATE_FILE).is_file())
            .collect();
        match others.first() {
            None => e,
            Some(newest) => {
                let more = match others.len() {
                    1 => String::new(),
                    2 => ", or the other one there".to_string(),
                    n => format!(", or one of {} more there", n - 1),
                };
                anyhow::anyhow!(
                    "{}; another checkpoint of the run may be whole: {}{more} ({FLAGS_TAKING_A_CHECKPOINT})",
                    crate::errors::one_line(&e),
                    newest.display()
                )
            }
        }
    }

    /// Removes checkpoints older than the last [`KEEP_CHECKPOINTS`] (by step, `latest` always
    /// kept), the `abandoned` ones and any at or past `latest`'s step (left by a branch the run
    /// went back from: after `--resume RUN/checkpoints/step-N`, the first new checkpoint drops
    /// the later ones, so the spare is the newest of this branch's past, never a step of the
    /// abandoned one), and temporary folders and files left by interrupted writes; returns a
    /// notice for each leftover removed.
    pub fn prune_checkpoints(&self, latest: &str, abandoned: &[String]) -> Vec<String> {
        let root = self.checkpoints_dir();
        let mut notices = self.remove_leftovers();
        // By step (zero-padded), then by the `.k` suffix.
        let mut complete = self.checkpoint_names();
        complete.retain(|n| n != latest);
        let latest_step = sort_key(latest).0;
        let (past, abandoned): (Vec<String>, Vec<String>) = complete
            .into_iter()
            .partition(|n| sort_key(n).0 < latest_step && !abandoned.contains(n));
        let complete = past;
        // The ones kept: complete ones first, newest first, then any that cannot be opened (a
        // damaged checkpoint is never kept over a complete one: after a resume from an older
        // checkpoint past a damaged newer one, the older stays the spare).
        let (good, bad): (Vec<String>, Vec<String>) = complete
            .into_iter()
            .rev()
            .partition(|n| Checkpoint::open(&root.join(n)).is_ok());
        let keep_others = KEEP_CHECKPOINTS.saturating_sub(1);
        let dropped: Vec<String> = good
            .into_iter()
            .chain(bad)
            .skip(keep_others)
            .chain(abandoned)
            .collect();
        for n in dropped {
            if let Err(e) = fs::remove_dir_all(root.join(&n)) {
                notices.push(format!("cannot remove old checkpoint {n}: {e}"));
            }
        }
        let _ = files::sync_dir(&root);
        notices
    }

    /// Removes temporary checkpoint folders and temporary files of interrupted writes (left by
    /// a crash); returns a notice for each.
    pub fn remove_leftovers(&self) -> Vec<String> {
        let mut notices = Vec::new();
        let root = self.checkpoints_dir();
        for e in fs::read_dir(&root).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(TEMP_PREFIX) && fs::remove_dir_all(e.path()).is_ok() {
                notices.push(format!(
                    "removed an incomplete checkpoint left by an interrupted write ({n})"
                ));
            }
        }
        for e in fs::read_dir(self.path()).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if files::is_temp_name(&n) && e.path().is_file() && fs::remove_file(e.path()).is_ok() {
                notices.push(format!(
                    "removed a temporary file left by an interrupted write ({n})"
                ));
            }
        }
        notices
    }
}

/// The step and branch number a checkpoint folder's name says (`step-100` and `step-000100`
/// are step 100; `step-000100.1` its branch 1); `None` for any other name.
fn step_of_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("step-")?;
    let (step, k) = rest.split_once('.').unwrap_or((rest, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(step) && digits(k)) {
        return None;
    }
    Some((step.parse().ok()?, k.parse().ok()?))
}

fn sort_key(name: &str) -> (usize, usize) {
    let rest = name.trim_start_matches("step-");
    let (step, k) = rest.split_once('.').unwrap_or((rest, "0"));
    (step.parse().unwrap_or(0), k.parse().unwrap_or(0))
}

fn sync_file(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", path.display()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint of `run` at `step` holding one small file.
    fn write_step(run: &crate::store::RunDir, step: usize) -> Result<PathBuf> {
        let state = crate::store::RunState {
            step,
            ..Default::default()
        };
        run.write_checkpoint(&TrainConfig::default(), &state, &["w.txt"], &mut |_, p| {
            Ok(fs::write(p, format!("{step}"))?)
        })
    }

    /// A step's checkpoint is found while it is kept, the newest of that step where a run went
    /// back and wrote it again, and not once pruned.
    #[test]
    fn a_steps_checkpoint_is_found_while_it_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let run = crate::store::RunDir::create(&d.path().join("run")).unwrap();
        let write = |step: usize| write_step(&run, step).unwrap();
        let ten = write(10);
        assert_eq!(run.checkpoint_of_step(10), Some(ten));
        assert_eq!(run.checkpoint_of_step(11), None);
        write(20);
        let again = write(20);
        assert!(again.ends_with("step-000020.1"), "{again:?}");
        assert_eq!(run.checkpoint_of_step(20), Some(again));
        write(30);
        write(40);
        assert_eq!(run.checkpoint_of_step(10), None, "pruned");
    }

    /// A checkpoint whose switch fails (the run's `latest` or config.json cannot be replaced:
    /// here folders stand in their way) leaves `latest` where it was and no folder behind:
    /// trying again, as a trainer does for an hour, writes the same folder, not one more on
    /// every try.
    #[test]
    fn a_failed_switch_leaves_no_folder_and_tries_again_in_the_same_one() {
        let d = tempfile::tempdir().unwrap();
        let run = crate::store::RunDir::create(&d.path().join("run")).unwrap();
        let write = |step: usize| write_step(&run, step);
        write(10).unwrap();
        let latest = || fs::read_to_string(run.file(LATEST_FILE)).unwrap_or_default();
        assert_eq!(latest().trim(), "step-000010");
        for blocked in [LATEST_FILE, CONFIG_FILE] {
            let kept = fs::read(run.file(blocked)).unwrap();
            fs::remove_file(run.file(blocked)).unwrap();
            fs::create_dir_all(run.file(blocked).join("in-the-way")).unwrap();
            for _ in 0..3 {
                let err = write(20).unwrap_err();
                assert!(format!("{err:#}").contains(blocked), "{err:#}");
                assert_eq!(run.checkpoint_names(), ["step-000010"], "{blocked}");
            }
            fs::remove_dir_all(run.file(blocked)).unwrap();
            fs::write(run.file(blocked), kept).unwrap();
            assert_eq!(latest().trim(), "step-000010", "{blocked}");
        }
        write(20).unwrap();
        assert_eq!(latest().trim(), "step-000020");
        assert!(run.checkpoint_names().contains(&"step-000020".to_string()));
    }

    #[test]
    fn a_checkpoint_name_says_its_step_padded_or_not() {
        assert_eq!(step_of_name("step-000100"), Some((100, 0)));
        assert_eq!(step_of_name("step-100"), Some((100, 0)));
        assert_eq!(step_of_name("step-000100.1"), Some((100, 1)));
        for other in [
            "step-", "step-x", "step-10a", "step-1.", "stop-100", "step-1.b",
        ] {
            assert_eq!(step_of_name(other), None, "{other}");
        }
    }
}
