//! Finding runs: every run directory under a runs directory, with what a list shows of it.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::schedule::BetaSchedule;
use crate::store::{is_hidden, list_runs, RunDir, StepStats, TrainConfig, CONFIG_FILE};

/// Logged steps a run's loss in a list is the mean of (`runs`, the lab's Runs screen).
pub const RECENT_LOSS_STEPS: usize = 50;

/// A run's loss as its list shows it: the mean of its last [`RECENT_LOSS_STEPS`] logged steps
/// (`None` before its first).
pub fn recent_loss(history: &[StepStats]) -> Option<f64> {
    let tail = &history[history.len().saturating_sub(RECENT_LOSS_STEPS)..];
    (!tail.is_empty()).then(|| tail.iter().map(|s| s.loss).sum::<f64>() / tail.len() as f64)
}

/// What a run list shows of one run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: TrainConfig,
    /// Steps of its newest checkpoint (0 before the first).
    pub step: usize,
    /// Whether it has a checkpoint (one `latest` names).
    pub checkpointed: bool,
    /// Why its newest checkpoint cannot be read (`latest` or the checkpoint damaged), if so.
    pub problem: Option<String>,
}

impl RunInfo {
    /// Reads the run in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        Self::of(&RunDir::open(dir)?)
    }

    /// Reads an opened run. Its configuration is the run's config.json, or where that is
    /// damaged its newest checkpoint's (which resuming and sampling read), else the newest
    /// readable one of its checkpoint folders' (said as its problem): a run is listed, damaged
    /// as it may be, while anything of it can be read, so that it can be mended or removed.
    pub fn of(run: &RunDir) -> Result<Self> {
        // A damaged newest checkpoint is said with the checkpoint it can go on from.
        let (latest, problem) = match run.latest_checkpoint() {
            // Checkpoint folders without the pointer to the newest: what sampling and resuming
            // say of it (which one to go on from).
            Ok(None) if run.has_checkpoint_folders() => (
                None,
                run.require_checkpoint()
                    .err()
                    .map(|e| crate::errors::one_line(&e)),
            ),
            Ok(latest) => (latest, None),
            Err(e) => (
                None,
                Some(crate::errors::one_line(
                    &run.with_other_checkpoints(e, None),
                )),
            ),
        };
        // Weights cut off or zeroed (a disk that filled under another program, a copy
        // interrupted) are said here, not first by `sample` or a resume.
        let problem = problem.or_else(|| {
            let ck = latest.as_ref()?;
            [crate::store::WEIGHTS_FILE, crate::store::EMA_FILE]
                .iter()
                .map(|f| ck.file(f))
                .filter(|p| p.exists())
                .find_map(|p| crate::store::checkpoint::check_safetensors_whole(&p).err())
                .map(|e| crate::errors::one_line(&run.with_other_checkpoints(e, Some(ck.dir()))))
        });
        // A run whose training stopped before its first checkpoint holds nothing to go on
        // from (one a process trains now is on its way to it).
        let problem = problem.or_else(|| {
            let dead = latest.is_none()
                && !run.has_checkpoint_folders()
                && !crate::store::RunLock::is_held(run.path());
            dead.then(|| {
                "no checkpoint: training stopped before its first one, so nothing of it can be \
                 sampled or continued"
                    .to_string()
            })
        });
        let newest = || latest.as_ref().and_then(|ck| ck.load_config().ok());
        let (config, problem) = match run.load_config().map_err(|e| (e, newest())) {
            Ok(c) | Err((_, Some(c))) => (c, problem),
            Err((e, None)) => {
                let (name, c) = newest_readable_config(run).ok_or(e)?;
                let why = format!(
                    "its config.json and newest checkpoint's cannot be read; shown with the settings of {name}"
                );
                let problem = Some(match problem {
                    Some(p) => format!("{p}; {why}"),
                    None => why,
                });
                (c, problem)
            }
        };
        Ok(Self {
            dir: run.path().to_path_buf(),
            config,
            step: latest.as_ref().map_or(0, |c| c.state.step),
            checkpointed: latest.is_some(),
            problem,
        })
    }
}

/// The newest of `run`'s checkpoint folders whose configuration reads, with its name.
fn newest_readable_config(run: &RunDir) -> Option<(String, TrainConfig)> {
    run.checkpoint_names().into_iter().rev().find_map(|n| {
        let ck = crate::store::Checkpoint::open(&run.checkpoints_dir().join(&n)).ok()?;
        Some((n, ck.load_config().ok()?))
    })
}

/// The run in `dir` as the lab opens it: one with a checkpoint, or one a process trains
/// towards its first (followed live until it has one).
pub fn open_openable(dir: &Path) -> Result<RunDir> {
    match RunDir::open(dir) {
        Ok(run) => Ok(run),
        Err(_) if crate::store::RunLock::is_held(dir) => Ok(RunDir::at(dir)),
        Err(e) => Err(e),
    }
}

impl RunInfo {
    /// The shell commands that go on with this run after the lab: train it further (past its
    /// stop step when it reached it) and sample it.
    pub fn shell_commands(&self) -> Vec<String> {
        let dir = shell_word(&self.dir.display().to_string());
        let mut train = format!("ddpm-lab train --resume {dir}");
        if self.step >= self.config.steps {
            train += &format!(" --steps {}", self.config.steps.max(1) * 2);
        }
        vec![train, format!("ddpm-lab sample --checkpoint {dir}")]
    }
}

/// `s` as one shell word: unchanged when it is plain, else in single quotes.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:+,=@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Optimisation steps per epoch, read off two consecutive steps of a metrics history where an
/// epoch begins (`None` elsewhere). Step `n` (1-based) trains batch `n − 1`, the first of epoch
/// `e` exactly when `n − 1 = e · steps_per_epoch`; dividing the step by the epoch instead is
/// one step too many per epoch, and wrong altogether for a history that does not start at
/// step 1.
pub fn steps_per_epoch_between(prev: Option<&StepStats>, next: &StepStats) -> Option<usize> {
    let prev = prev?;
    let boundary = next.step == prev.step + 1 && next.epoch == prev.epoch + 1 && next.epoch > 0;
    (boundary && (next.step - 1).is_multiple_of(next.epoch))
        .then(|| (next.step - 1) / next.epoch)
        .filter(|&spe| spe > 0)
}

/// A run directory as run lists show it (the lab's and `ddpm-lab runs`): relative to the
/// runs directory `root` when inside it.
pub fn run_name(dir: &Path, root: &Path) -> String {
    dir.strip_prefix(root)
        .ok()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(dir)
        .display()
        .to_string()
}

/// Optimisation steps per epoch of a metrics history, where it crosses an epoch boundary.
pub fn steps_per_epoch(history: &[StepStats]) -> Option<usize> {
    history
        .windows(2)
        .find_map(|w| steps_per_epoch_between(Some(&w[0]), &w[1]))
}

/// The runs under `root` that can be opened (they have a checkpoint), newest first, then those
/// kept one directory further down (the lab's Compare runs); folders that are not readable
/// runs are left out.
pub fn find_runs(root: &Path) -> Vec<RunInfo> {
    run_dirs(root)
        .iter()
        .filter_map(|d| RunInfo::read(d).ok())
        .collect()
}

/// Like [`find_runs`], with the runs a process trains towards their first checkpoint as
/// well (step 0): what the lab can open and follow live.
pub fn find_openable_runs(root: &Path) -> Vec<RunInfo> {
    run_dirs(root)
        .iter()
        .filter_map(|d| RunInfo::of(&open_openable(d).ok()?).ok())
        .collect()
}

/// Like [`find_runs`], with the runs that have no checkpoint yet (training, or stopped before
/// their first) as well: their step is 0.
pub fn find_all_runs(root: &Path) -> Vec<RunInfo> {
    run_dirs(root)
        .iter()
        .filter_map(|d| RunInfo::of(&RunDir::at(d)).ok())
        .collect()
}

/// Every folder under `root` (and one level further down: a comparison's runs) with a run's
/// configuration, newest first across both levels (by the configuration's time, then name); a
/// comparison's runs together, where its newest is, in the schedules' order (linear,
/// quadratic, cosine, sigmoid) as the Compare screen shows them.
fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = list_runs(root);
    // A link back to the runs folder itself would list every run twice.
    let own = root.canonicalize().ok();
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let p = e.path();
            let back = own.is_some() && p.canonicalize().ok() == own;
            if p.is_dir() && !is_hidden(&p) && !p.join(CONFIG_FILE).exists() && !back {
                dirs.extend(list_runs(&p));
            }
        }
    }
    // A link to a run that is listed under its own name too (`best -> 20261207-…`) is that
    // run: listed once, under its own name (under the link's where the run is elsewhere).
    dirs.sort_by_key(|d| d.is_symlink());
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.canonicalize().unwrap_or_else(|_| d.clone())));
    let written = |d: &PathBuf| {
        std::fs::metadata(d.join(CONFIG_FILE))
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH)
    };
    // Each run's group: its comparison's folder, or the run itself; a group is as new as its
    // newest run.
    let mut keyed: Vec<(PathBuf, usize, std::time::SystemTime, PathBuf)> = dirs
        .into_iter()
        .map(|d| {
            let (group, rank) =
                super::comparison::comparison_of(&d).map_or((d.clone(), 0), |(base, schedule)| {
                    let rank = BetaSchedule::ALL.iter().position(|&s| s == schedule);
                    (base, rank.unwrap_or(0))
                });
            (group, rank, written(&d), d)
        })
        .collect();
    let mut newest: std::collections::HashMap<PathBuf, std::time::SystemTime> =
        std::collections::HashMap::new();
    for (group, _, time, _) in &keyed {
        let t = newest.entry(group.clone()).or_insert(*time);
        *t = (*t).max(*time);
    }
    keyed.sort_by(|a, b| {
        let key = |k: &(PathBuf, usize, std::time::SystemTime, PathBuf)| {
            (std::cmp::Reverse((newest[&k.0], k.0.clone())), k.1)
        };
        key(a).cmp(&key(b))
    });
    let dirs: Vec<PathBuf> = keyed.into_iter().map(|(_, _, _, d)| d).collect();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(step: usize, epoch: usize) -> StepStats {
        StepStats {
            step,
            epoch,
            loss: 0.1,
            images_per_s: 1.0,
            elapsed_s: step as f64,
            lr: 1e-3,
            bucket_losses: Vec::new(),
        }
    }

    /// The history the trainer writes for `steps` steps of `spe` batches an epoch, from step
    /// `from` on (a run resumed there).
    fn history(spe: usize, from: usize, steps: usize) -> Vec<StepStats> {
        (from + 1..=steps)
            .map(|n| stats(n, (n - 1) / spe))
            .collect()
    }

    #[test]
    fn a_runs_loss_is_the_mean_of_its_last_logged_steps() {
        assert_eq!(recent_loss(&[]), None);
        let mut h = history(10, 0, 120);
        for (i, s) in h.iter_mut().enumerate() {
            s.loss = i as f64;
        }
        // Steps 71..=120 logged losses 70..=119: their mean.
        assert_eq!(recent_loss(&h), Some(94.5));
        assert_eq!(recent_loss(&h[..3]), Some(1.0));
    }

    #[test]
    fn steps_per_epoch_is_read_off_the_first_boundary() {
        for spe in [1, 2, 67, 469] {
            assert_eq!(
                steps_per_epoch(&history(spe, 0, 3 * spe + 2)),
                Some(spe),
                "{spe}"
            );
            // A history that starts mid-run (resumed, or cut) gives the same answer.
            assert_eq!(
                steps_per_epoch(&history(spe, spe + spe / 2, 3 * spe + 2)),
                Some(spe)
            );
        }
        assert_eq!(
            steps_per_epoch(&history(67, 0, 60)),
            None,
            "no boundary yet"
        );
        // A gap across the boundary says nothing.
        assert_eq!(
            steps_per_epoch_between(Some(&stats(60, 0)), &stats(70, 1)),
            None
        );
    }

    #[test]
    fn shell_commands_continue_and_sample_the_run() {
        let mut info = RunInfo {
            dir: PathBuf::from("runs/20261202-cosine"),
            config: TrainConfig {
                steps: 150,
                ..TrainConfig::default()
            },
            step: 100,
            checkpointed: true,
            problem: None,
        };
        assert_eq!(
            info.shell_commands(),
            vec![
                "ddpm-lab train --resume runs/20261202-cosine".to_string(),
                "ddpm-lab sample --checkpoint runs/20261202-cosine".to_string(),
            ]
        );
        info.step = 150;
        info.dir = PathBuf::from("my runs/it's");
        assert_eq!(
            info.shell_commands()[0],
            r"ddpm-lab train --resume 'my runs/it'\''s' --steps 300"
        );
    }

    #[test]
    fn a_comparisons_runs_are_listed_together_in_the_schedules_order() {
        let root = tempfile::tempdir().unwrap();
        let cfg = TrainConfig::default();
        let now = std::time::SystemTime::now();
        // Seconds ago each run's configuration was written: the comparison's runs out of
        // order and either side of a lone run's.
        let runs = [
            ("old", 50),
            ("1-compare/linear", 40),
            ("1-compare/cosine", 25),
            ("1-compare/quadratic", 15),
            ("mid", 10),
            ("1-compare/sigmoid", 5),
        ];
        for (dir, secs) in runs {
            let run = RunDir::create(&root.path().join(dir)).unwrap();
            run.save_config(&cfg).unwrap();
            std::fs::File::options()
                .write(true)
                .open(root.path().join(dir).join(CONFIG_FILE))
                .unwrap()
                .set_modified(now - std::time::Duration::from_secs(secs))
                .unwrap();
        }
        let order: Vec<String> = find_all_runs(root.path())
            .into_iter()
            .map(|r| {
                r.dir
                    .strip_prefix(root.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            order,
            [
                "1-compare/linear",
                "1-compare/quadratic",
                "1-compare/cosine",
                "1-compare/sigmoid",
                "mid",
                "old"
            ]
        );
    }

    /// A run whose config.json is garbage, and whose newest checkpoint's cannot be read
    /// either (`latest` gone, or its config damaged), is still listed: with an older
    /// checkpoint's settings and a problem that says so, not left out without a word.
    #[test]
    fn a_run_whose_every_newest_config_is_damaged_is_listed_with_its_problem() {
        let root = tempfile::tempdir().unwrap();
        let cfg = TrainConfig::default();
        let run = RunDir::create(&root.path().join("damaged")).unwrap();
        run.save_config(&cfg).unwrap();
        let names = [crate::store::WEIGHTS_FILE];
        for step in [7, 9] {
            let state = crate::store::RunState {
                step,
                ..Default::default()
            };
            run.write_checkpoint(&cfg, &state, &names, &mut |_, p| {
                Ok(std::fs::write(p, b"weights")?)
            })
            .unwrap();
        }
        std::fs::write(run.file(CONFIG_FILE), "garbage").unwrap();
        let newest = run.checkpoints_dir().join("step-000009").join(CONFIG_FILE);
        let text = std::fs::read_to_string(&newest).unwrap();
        std::fs::write(&newest, text.replace("\"seed\": 0", "\"seed\": -1")).unwrap();
        let listed = find_all_runs(root.path());
        assert_eq!(listed.len(), 1, "listed");
        let problem = listed[0].problem.clone().unwrap_or_default();
        assert!(
            problem.contains("shown with the settings of step-000007"),
            "{problem}"
        );
        // `latest` gone as well: the same.
        std::fs::remove_file(run.file(crate::store::LATEST_FILE)).unwrap();
        let listed = find_all_runs(root.path());
        let problem = listed[0].problem.clone().unwrap_or_default();
        assert!(problem.contains("step-000007"), "{problem}");
        // Nothing readable at all: left out (there is nothing to show it with).
        std::fs::remove_dir_all(run.checkpoints_dir().join("step-000007")).unwrap();
        assert!(find_all_runs(root.path()).is_empty());
    }

    /// A run whose training stopped before its first checkpoint is listed with that as its
    /// problem (a script picking runs without one would take it); one a process trains
    /// towards its first is not.
    #[test]
    fn a_run_stopped_before_its_first_checkpoint_says_so() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("dead");
        RunDir::create(&dir)
            .unwrap()
            .save_config(&TrainConfig::default())
            .unwrap();
        let problem = || find_all_runs(root.path())[0].problem.clone();
        assert!(
            problem().is_some_and(|p| p.starts_with("no checkpoint: training stopped")),
            "{:?}",
            problem()
        );
        let _training = crate::store::RunLock::acquire(&dir).unwrap();
        assert_eq!(problem(), None);
    }

    /// Weights cut short, or zeroed, in the newest checkpoint are the run's problem in the
    /// listing (with the checkpoint to go on from), found from the file's header and length.
    #[test]
    fn cut_off_weights_are_a_runs_problem_in_the_listing() {
        let root = tempfile::tempdir().unwrap();
        let cfg = TrainConfig::default();
        let run = RunDir::create(&root.path().join("cut")).unwrap();
        run.save_config(&cfg).unwrap();
        let t = candle_core::Tensor::ones(64, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
        let tensors = std::collections::HashMap::from([("w".to_string(), t)]);
        for step in [7, 9] {
            let state = crate::store::RunState {
                step,
                ..Default::default()
            };
            run.write_checkpoint(&cfg, &state, &[crate::store::WEIGHTS_FILE], &mut |_, p| {
                Ok(candle_core::safetensors::save(&tensors, p)?)
            })
            .unwrap();
        }
        let problem = || find_all_runs(root.path())[0].problem.clone();
        assert_eq!(problem(), None, "whole weights");
        let weights = run
            .checkpoints_dir()
            .join("step-000009")
            .join(crate::store::WEIGHTS_FILE);
        let whole = std::fs::read(&weights).unwrap();
        for damaged in [
            whole[..whole.len() - 10].to_vec(),
            whole[..10].to_vec(),
            vec![0u8; whole.len()],
            Vec::new(),
        ] {
            std::fs::write(&weights, &damaged).unwrap();
            let p = problem().unwrap_or_default();
            assert!(
                p.contains("is damaged") && p.contains("step-000007"),
                "{} bytes: {p}",
                damaged.len()
            );
        }
    }

    #[test]
    fn runs_without_a_checkpoint_are_listed_only_where_asked() {
        let root = tempfile::tempdir().unwrap();
        let cfg = TrainConfig::default();
        // One with a checkpoint, one stopped before its first, and a Compare run below.
        let saved = RunDir::create(&root.path().join("saved")).unwrap();
        saved.save_config(&cfg).unwrap();
        let state = crate::store::RunState {
            step: 7,
            ..Default::default()
        };
        let names = [crate::store::WEIGHTS_FILE, crate::store::OPTIMIZER_FILE];
        saved
            .write_checkpoint(&cfg, &state, &names, &mut |_, p| {
                Ok(std::fs::write(p, b"weights")?)
            })
            .unwrap();
        for dir in ["early", "compare/linear"] {
            let run = RunDir::create(&root.path().join(dir)).unwrap();
            run.save_config(&cfg).unwrap();
        }
        // A link back to the runs folder lists nothing twice, nor does a link to a run (its
        // name sorts first); a link to a run kept elsewhere is listed.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(".", root.path().join("self")).unwrap();
            std::os::unix::fs::symlink("saved", root.path().join("a-link")).unwrap();
        }
        let names = |runs: Vec<RunInfo>| {
            let mut v: Vec<(String, usize)> = runs
                .iter()
                .map(|r| {
                    let name = r.dir.strip_prefix(root.path()).unwrap();
                    (name.display().to_string(), r.step)
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(find_runs(root.path())), vec![("saved".into(), 7)]);
        // Newest first across both levels: a comparison's run written last comes first.
        let now = std::time::SystemTime::now();
        let touch = |dir: &str, secs: u64| {
            let f = std::fs::File::options()
                .write(true)
                .open(root.path().join(dir).join(CONFIG_FILE))
                .unwrap();
            f.set_modified(now - std::time::Duration::from_secs(secs))
                .unwrap();
        };
        touch("saved", 30);
        touch("early", 20);
        touch("compare/linear", 10);
        let order: Vec<PathBuf> = find_all_runs(root.path())
            .into_iter()
            .map(|r| r.dir.strip_prefix(root.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            order,
            [
                PathBuf::from("compare/linear"),
                PathBuf::from("early"),
                PathBuf::from("saved")
            ]
        );
        assert_eq!(
            names(find_all_runs(root.path())),
            vec![
                ("compare/linear".into(), 0),
                ("early".into(), 0),
                ("saved".into(), 7)
            ]
        );
        #[cfg(unix)]
        {
            let elsewhere = tempfile::tempdir().unwrap();
            let run = RunDir::create(&elsewhere.path().join("kept")).unwrap();
            run.save_config(&cfg).unwrap();
            std::os::unix::fs::symlink(elsewhere.path().join("kept"), root.path().join("kept"))
                .unwrap();
            let listed = names(find_all_runs(root.path()));
            assert_eq!(listed.len(), 4, "{listed:?}");
            assert!(listed.contains(&("kept".into(), 0)), "{listed:?}");
        }
    }
}
