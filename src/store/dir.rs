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
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;

use super::{StepStats, TrainConfig};

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
/// `ddpm-lab eval`'s results on the run, one JSON object per evaluation.
pub const EVAL_FILE: &str = "eval.jsonl";

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

/// Writes `bytes` to `path` durably (see [`crate::files::replace_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_bytes(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The BLAKE3 digest of the file at `path`, in hex (see [`crate::store::RunState::digests`]).
pub fn file_digest(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(fs::File::open(path)?)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Loads a safetensors file onto `device`, refusing one that holds a NaN or an infinity
/// (sampling it would draw black images; resuming it would diverge at once), and one of a
/// checkpoint that is not what the checkpoint wrote (its digest, kept in the `state.json`
/// beside it, differs).
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let unreadable = || {
        format!(
            "cannot read {} (missing or corrupt checkpoint)",
            path.display()
        )
    };
    let bytes = fs::read(path).with_context(unreadable)?;
    if let Some(kept) = kept_digest(path) {
        let now = blake3::hash(&bytes).to_hex().to_string();
        if now != kept {
            bail!(
                "{} is damaged: it is not the file its checkpoint wrote (its BLAKE3 digest differs from the one in {STATE_FILE}); refusing to use it",
                path.display()
            );
        }
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).with_context(unreadable)?;
    check_finite(&tensors, path)?;
    Ok(tensors)
}

/// The digest the checkpoint beside `path` kept for it, if it kept one (`None` also where its
/// state cannot be read: opening the checkpoint says why).
fn kept_digest(path: &Path) -> Option<String> {
    let state = fs::read_to_string(path.with_file_name(STATE_FILE)).ok()?;
    let state: crate::store::RunState = serde_json::from_str(&state).ok()?;
    let name = path.file_name()?.to_str()?;
    state.digests.get(name).cloned()
}

/// Checks that every floating-point tensor of `tensors` is finite; `source` names them in the
/// error.
pub fn check_finite(tensors: &HashMap<String, Tensor>, source: &Path) -> Result<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let t = &tensors[name];
        if !t.dtype().is_float() {
            continue;
        }
        let s = t
            .to_dtype(candle_core::DType::F64)?
            .abs()?
            .sum_all()?
            .to_scalar::<f64>()?;
        if !s.is_finite() {
            bail!(
                "{}: tensor {name} holds NaN or infinite values; refusing to use it",
                source.display()
            );
        }
    }
    Ok(())
}

/// Saves named tensors as safetensors durably (see [`crate::files::replace_with`]).
pub fn save_tensors_atomic(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    crate::files::replace_with(path, None, |tmp| {
        candle_core::safetensors::save(tensors, tmp)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
    .with_context(|| format!("cannot write {}", path.display()))
}

/// The names a new run under `root` may take, in order: `{stamp}-{tag}`, then `-2`, `-3`, ….
fn fresh_names(root: &Path, tag: &str) -> impl Iterator<Item = PathBuf> {
    numbered(root.join(format!("{}-{tag}", crate::clock::utc_stamp())))
}

/// `base`, then `base-2`, `base-3` …: the names a new folder takes where `base` is taken.
pub(crate) fn numbered(base: PathBuf) -> impl Iterator<Item = PathBuf> {
    (1usize..).map(move |i| match i {
        1 => base.clone(),
        i => {
            let mut name = base.clone().into_os_string();
            name.push(format!("-{i}"));
            PathBuf::from(name)
        }
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

    /// Checks that a new run may be made in `path`: a folder that is missing, empty, or that
    /// holds a run of this lab stopped before its first checkpoint (started over; a run with
    /// a checkpoint is refused by the trainer). A folder of other files (a project's own
    /// config.json, say), or one inside another run, is refused: its files would be
    /// overwritten.
    pub fn check_new_run_path(path: &Path) -> Result<()> {
        Self::check_not_inside_a_run(path)?;
        if path.exists() && !path.is_dir() {
            bail!(
                "{} is a file, not a folder: name a new folder for the run",
                path.display()
            );
        }
        let Ok(entries) = fs::read_dir(path) else {
            // Missing (creating it says why it cannot be made).
            return Ok(());
        };
        let config = path.join(CONFIG_FILE);
        let checkpointed = path.join(super::layout::LATEST_FILE).exists()
            || path.join(super::layout::CHECKPOINTS_DIR).exists();
        if checkpointed {
            // A run: the trainer says what it holds.
            return Ok(());
        }
        if config.is_file() {
            return super::config::read_config_file(&config).map(|_| ()).with_context(|| {
                format!(
                    "{} holds a config.json that is no ddpm-lab run's: pick a new or empty folder for the run",
                    path.display()
                )
            });
        }
        // What a run writes before its config (or a crash left half-written).
        let run_files = [
            METRICS_FILE,
            QUALITY_FILE,
            super::lock::LOCK_FILE,
            super::previews::PREVIEWS_DIR,
        ];
        let others: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !run_files.contains(&n.as_str()) && !crate::files::is_temp_name(n))
            .collect();
        if !others.is_empty() {
            bail!(
                "{} is a folder of other files ({}): a run needs a new or empty folder, whose files it would not overwrite",
                path.display(),
                crate::model::state_dict::first_names(&others, 3)
            );
        }
        Ok(())
    }

    /// Refuses a `path` inside another run's folder (`RUN/checkpoints`, say).
    fn check_not_inside_a_run(path: &Path) -> Result<()> {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        for dir in absolute.ancestors().skip(1) {
            if dir.join(CONFIG_FILE).is_file() && dir.join(super::layout::LATEST_FILE).is_file() {
                bail!(
                    "{} is inside the run {}: pick a folder outside it",
                    path.display(),
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// A handle on `path` without any check (for writers of side logs before the first
    /// checkpoint, and readers that check what they need).
    pub(crate) fn at(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// Opens an existing run directory, checking that it holds a checkpoint. A run whose own
    /// config.json was lost opens on its checkpoints (each keeps a copy; the next one written
    /// puts it back).
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
        if !run.is_run() {
            bail!(
                "{} is not a run directory: {CONFIG_FILE} is missing",
                path.display()
            );
        }
        if !run.file(super::layout::LATEST_FILE).is_file()
            && !run.file(WEIGHTS_FILE).is_file()
            && !run.has_checkpoint_folders()
        {
            return Err(run.no_checkpoint_error());
        }
        Ok(run)
    }

    /// Why a run without a complete checkpoint has none, as an error: it is still training
    /// towards its first (by whom, and when it comes, as far as its configuration says: a
    /// [`crate::errors::Busy`] refusal, trying again later may succeed), or its training
    /// stopped before writing one.
    pub fn no_checkpoint_error(&self) -> anyhow::Error {
        let dir = self.path.display();
        let Some(who) = super::RunLock::holder(&self.path) else {
            return anyhow::anyhow!(
                "{dir} has no checkpoint yet (training stopped before its first one): nothing of it can be continued; `ddpm-lab train --run-dir {}` with the flags it was started with starts it again",
                crate::runs::shell_word(&dir.to_string())
            );
        };
        let when = match self.load_config() {
            Ok(cfg) => {
                let mut at = Vec::new();
                if cfg.checkpoint_every > 0 {
                    at.push(format!("at step {}", cfg.checkpoint_every));
                }
                if let Some(s) = cfg.checkpoint_interval_s {
                    at.push(format!(
                        "after {} of training",
                        crate::clock::human_duration(s)
                    ));
                }
                if at.is_empty() {
                    String::new()
                } else {
                    format!(" (it comes {}, whichever is first)", at.join(" or "))
                }
            }
            Err(_) => String::new(),
        };
        crate::errors::Busy(format!("{dir} has no checkpoint yet: {who} is training it and has not written its first one{when}; try again once it has")).into()
    }

    /// A fresh directory name under `root`: `runs/20261125-061500-linear`, or `…-linear-2`
    /// where that is taken. Only a name: [`Self::claim_fresh`] makes the folder.
    pub fn fresh_path(root: &Path, tag: &str) -> PathBuf {
        fresh_names(root, tag)
            .find(|p| !p.exists())
            .expect("the names never run out")
    }

    /// Makes a new, empty run folder under `root` named as [`Self::fresh_path`] names one, and
    /// returns its path. The folder is made at once (never one that exists), so runs started
    /// in the same second by several processes (a seed sweep) each get their own.
    pub fn claim_fresh(root: &Path, tag: &str) -> Result<PathBuf> {
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create the runs folder {}", root.display()))?;
        for p in fresh_names(root, tag) {
            match fs::create_dir(&p) {
                Ok(()) => return Ok(p),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create run directory {}", p.display()))
                }
            }
        }
        unreachable!("the names never run out")
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

    /// Reads the training configuration (checked: see [`super::config::parse_config`]).
    pub fn load_config(&self) -> Result<TrainConfig> {
        super::config::read_config_file(&self.file(CONFIG_FILE))
    }

    /// The step of the newest complete checkpoint (0 when there is none yet).
    pub fn saved_step(&self) -> Result<usize> {
        Ok(self.latest_checkpoint()?.map_or(0, |c| c.state.step))
    }

    /// Appends one line to the metrics log.
    pub fn append_metrics(&self, stats: &StepStats) -> Result<()> {
        self.append_line(METRICS_FILE, stats)
    }

    /// Appends `value` as one JSON line to the log `name` (created when missing). A line the
    /// disk has no room for is taken back whole, so that trying again later (see
    /// [`crate::train::Trainer`]) leaves no torn line before it.
    pub fn append_line(&self, name: &str, value: &impl Serialize) -> Result<()> {
        crate::fail_point!("append-line", name);
        let p = self.file(name);
        let mut line = serde_json::to_string(value)? + "\n";
        let cannot = || format!("cannot append to {}", p.display());
        let mut f = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&p)
            .with_context(cannot)?;
        let before = f.metadata().with_context(cannot)?.len();
        // A torn last line (a crash mid-write, or a fragment that could not be taken back)
        // stays a line of its own, which readers skip, instead of spoiling this one.
        if before > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::End(-1)).with_context(cannot)?;
            f.read_exact(&mut last).with_context(cannot)?;
            if last[0] != b'\n' {
                line.insert(0, '\n');
            }
        }
        // One write per line, so a crash can tear only the last line (readers skip it).
        let written = (|| -> Result<()> {
            // A disk that fills up part-way through the line (a test's stand-in).
            if let Some(msg) = fail::eval(&format!("append-line-torn:{name}"), |a| {
                a.unwrap_or_default()
            }) {
                f.write_all(&line.as_bytes()[..line.len() / 2])?;
                anyhow::bail!("{msg}");
            }
            f.write_all(line.as_bytes())?;
            Ok(())
        })();
        if written.is_err() {
            let _ = f.set_len(before);
        }
        written.with_context(cannot)
    }

    /// Reads the metrics log (lines that do not parse, e.g. a torn last line, are skipped).
    pub fn read_metrics(&self) -> Result<Vec<StepStats>> {
        read_metrics_file(&self.file(METRICS_FILE))
    }

    /// Drops the lines of the log `name` whose step is after `step` (written after the last
    /// checkpoint by a run that then crashed), so a resumed run continues its history exactly
    /// where the checkpoint left it. The file is cut at a line boundary; earlier lines are
    /// never rewritten, so they stay byte for byte what was first written. Returns the step of
    /// the last line kept (`None`: none, or no file).
    pub fn truncate_log(&self, name: &str, step: usize) -> Result<Option<usize>> {
        let p = self.file(name);
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
        };
        #[derive(serde::Deserialize)]
        struct Step {
            step: usize,
        }
        // Kept: up to the last line of a step at or before `step`. A torn last line (no
        // newline) or a line of a later step ends the kept part, and a line that is no step's
        // (a fragment a crash left) is kept only where a kept step's line follows it.
        let (mut keep, mut read, mut last) = (0, 0, None);
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if !line.ends_with(b"\n") {
                break;
            }
            read += line.len();
            match serde_json::from_slice::<Step>(line) {
                Ok(s) if s.step > step => break,
                Ok(s) => (keep, last) = (read, Some(s.step)),
                Err(_) => {}
            }
        }
        if keep < bytes.len() {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .with_context(|| format!("cannot open {}", p.display()))?;
            f.set_len(keep as u64)
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot truncate {}", p.display()))?;
        }
        Ok(last)
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

/// Whether a folder's name is hidden (`.removing-…`, a run whose removal was cut short, or
/// anything else run lists skip).
pub fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Lists run directories under `root` (hidden folders aside), newest first.
pub fn list_runs(root: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| !is_hidden(p) && RunDir::at(p).is_run())
        .map(|p| {
            // A run without its own config.json (lost) is dated by its newest checkpoint.
            let t = [
                p.join(CONFIG_FILE),
                p.join(super::layout::LATEST_FILE),
                p.clone(),
            ]
            .iter()
            .find_map(|f| fs::metadata(f).and_then(|m| m.modified()).ok())
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

    /// Runs started in the same second (a seed sweep of eight) each make a folder of their
    /// own; none is handed one that was there (an old run's, or another's just made).
    #[test]
    fn runs_started_together_each_claim_their_own_folder() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("runs");
        let old = RunDir::fresh_path(&root, "linear");
        fs::create_dir_all(&old).unwrap();
        let claimed: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| RunDir::claim_fresh(&root, "linear").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = claimed.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8, "{claimed:?}");
        for p in &claimed {
            assert_ne!(p, &old);
            assert!(
                p.is_dir() && fs::read_dir(p).unwrap().next().is_none(),
                "{p:?}"
            );
            let name = p.file_name().unwrap().to_string_lossy();
            assert!(name.contains("-linear"), "{name}");
        }
        // A runs folder that cannot be made says which.
        let file = d.path().join("a-file");
        fs::write(&file, "").unwrap();
        let err = RunDir::claim_fresh(&file.join("runs"), "linear").unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot create the runs folder"),
            "{err:#}"
        );
    }

    #[test]
    fn a_log_is_cut_after_the_last_line_of_the_step_resumed_from() {
        let d = tempfile::tempdir().unwrap();
        let run = RunDir::create(&d.path().join("run")).unwrap();
        let write = |text: &str| std::fs::write(run.file(METRICS_FILE), text).unwrap();
        let read = || std::fs::read_to_string(run.file(METRICS_FILE)).unwrap();
        // A fragment between kept steps stays (readers skip it); one after the last is cut,
        // as are later steps and a torn last line.
        write("{\"step\":1}\nbroken\n{\"step\":2}\ngarbage\n{\"step\":3}\n{\"ste");
        run.truncate_log(METRICS_FILE, 2).unwrap();
        assert_eq!(read(), "{\"step\":1}\nbroken\n{\"step\":2}\n");
        write("{\"step\":1}\n{\"step\":2}\ngarbage\n");
        run.truncate_log(METRICS_FILE, 2).unwrap();
        assert_eq!(read(), "{\"step\":1}\n{\"step\":2}\n");
        run.truncate_log(METRICS_FILE, 0).unwrap();
        assert_eq!(read(), "");
    }

    /// A run without a checkpoint: stopped before its first one, or still training towards it
    /// (then the message names the trainer and when the first checkpoint comes), from
    /// `RunDir::open` (resume) and `require_checkpoint` (sampling) alike.
    #[test]
    fn a_run_without_a_checkpoint_says_whether_it_is_still_training() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("run");
        let run = RunDir::create(&path).unwrap();
        run.save_config(&TrainConfig {
            checkpoint_every: 500,
            checkpoint_interval_s: Some(120.0),
            ..TrainConfig::default()
        })
        .unwrap();
        let stopped = RunDir::open(&path).unwrap_err().to_string();
        assert!(
            stopped.contains("has no checkpoint yet (training stopped before its first one): nothing of it can be continued; `ddpm-lab train --run-dir "),
            "{stopped}"
        );
        let _trainer = super::super::RunLock::acquire(&path).unwrap();
        let training = RunDir::open(&path).unwrap_err().to_string();
        let expected = format!(
            "has no checkpoint yet: pid {} is training it and has not written its first one \
             (it comes at step 500 or after 2m00s of training, whichever is first); try again \
             once it has",
            std::process::id()
        );
        assert!(training.ends_with(&expected), "{training}");
        let sampling = RunDir::at(&path)
            .require_checkpoint()
            .unwrap_err()
            .to_string();
        assert!(sampling.ends_with(&expected), "{sampling}");
    }

    /// Weights (written by safetensors through a private temporary file) get the mode of every
    /// other run file: `0666` less the umask, `0644` under the usual umask.
    #[cfg(unix)]
    #[test]
    fn every_run_file_has_the_same_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let run = RunDir::create(&d.path().join("run")).unwrap();
        let t = Tensor::zeros(3, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let tensors = HashMap::from([("w".to_string(), t)]);
        let state = crate::store::RunState::default();
        let names = [crate::store::WEIGHTS_FILE, crate::store::OPTIMIZER_FILE];
        let ck = run
            .write_checkpoint(&TrainConfig::default(), &state, &names, &mut |_, p| {
                Ok(candle_core::safetensors::save(&tensors, p)?)
            })
            .unwrap();
        save_tensors_atomic(&tensors, &run.file("exported.safetensors")).unwrap();
        run.append_metrics(&crate::store::StepStats {
            step: 1,
            epoch: 0,
            loss: 0.5,
            images_per_s: 1.0,
            elapsed_s: 1.0,
            lr: 1e-3,
            bucket_losses: Vec::new(),
        })
        .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let expected = crate::files::default_file_mode();
        let mut files: Vec<PathBuf> = fs::read_dir(&ck)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.extend(fs::read_dir(run.path()).unwrap().map(|e| e.unwrap().path()));
        files.retain(|p| p.is_file());
        assert!(files.len() >= 7, "{files:?}");
        for f in &files {
            assert_eq!(mode(f), expected, "{}", f.display());
        }
        if expected == 0o644 {
            assert_eq!(mode(&ck.join(crate::store::WEIGHTS_FILE)), 0o644);
        }
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
