//! A comparison: one run per beta schedule under one directory, as the lab's Compare screen
//! trains them (`runs/20261206-061500-compare/linear`, `…/cosine`, …), so that every part of
//! the lab finds a comparison's runs, and a comparison from a run, the same way.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::schedule::BetaSchedule;
use crate::store::TrainConfig;

/// What a comparison's directory name ends with (after the time stamp).
pub const TAG: &str = "compare";

/// The file in a comparison's directory holding the configuration its runs train with (the
/// schedule aside: it has no `schedule` field) and the step they train to: written each time
/// one of its runs starts, so that a comparison opened later goes on with its own settings,
/// data and steps.
pub const CONFIG_FILE: &str = "comparison.json";

/// Saves the configuration the comparison at `base` trains its runs with (atomically),
/// without `config`'s schedule: each run has its own, and the file would otherwise name the
/// schedule of whichever run started last.
pub fn save_config(base: &Path, config: &TrainConfig) -> Result<()> {
    std::fs::create_dir_all(base)?;
    let mut value = serde_json::to_value(config)?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("schedule");
    }
    let json = serde_json::to_string_pretty(&value)?;
    crate::store::write_atomic(&base.join(CONFIG_FILE), json.as_bytes())
}

/// The configuration saved by [`save_config`], with the first schedule standing in for the
/// runs' own (files written before the field was left out name one; it is not read either);
/// `None` for a comparison written before there was a file.
pub fn load_config(base: &Path) -> Result<Option<TrainConfig>> {
    let file = base.join(CONFIG_FILE);
    if !file.is_file() {
        return Ok(None);
    }
    let what = file.display().to_string();
    let text =
        std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {what} ({e})"))?;
    let mut value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{what} is not valid JSON ({e})"))?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "schedule".into(),
            serde_json::to_value(BetaSchedule::ALL[0])?,
        );
    }
    crate::store::config::parse_config(&value.to_string(), &what).map(Some)
}

/// The run of `schedule` in the comparison at `base`.
pub fn member(base: &Path, schedule: BetaSchedule) -> PathBuf {
    base.join(schedule.name())
}

/// The comparison `run` belongs to, and its schedule there: `run` is named after a schedule,
/// inside a folder whose name ends with `-compare`. `None` for any other run.
pub fn comparison_of(run: &Path) -> Option<(PathBuf, BetaSchedule)> {
    let schedule: BetaSchedule = run.file_name()?.to_str()?.parse().ok()?;
    let base = run.parent()?;
    let name = base.file_name()?.to_str()?;
    name.ends_with(&format!("-{TAG}"))
        .then(|| (base.to_path_buf(), schedule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comparisons_configuration_is_saved_beside_its_runs() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("20261206-061500-compare");
        assert!(
            load_config(&base).unwrap().is_none(),
            "written before there was one"
        );
        let cfg = TrainConfig {
            steps: 40,
            lr: 5e-4,
            dataset: "shapes".into(),
            ..TrainConfig::default()
        };
        save_config(&base, &cfg).unwrap();
        assert_eq!(load_config(&base).unwrap(), Some(cfg.clone()));
        // The runs' schedules are theirs: the file names none, whichever run wrote it.
        let text = std::fs::read_to_string(base.join(CONFIG_FILE)).unwrap();
        assert!(!text.contains("schedule"), "{text}");
        let cosine = TrainConfig {
            schedule: BetaSchedule::Cosine,
            ..cfg.clone()
        };
        save_config(&base, &cosine).unwrap();
        assert_eq!(
            std::fs::read_to_string(base.join(CONFIG_FILE)).unwrap(),
            text
        );
        assert_eq!(load_config(&base).unwrap(), Some(cfg.clone()));
        // A file written when it named the last run's schedule reads the same.
        let mut old = serde_json::to_value(&cosine).unwrap();
        old["steps"] = 41.into();
        std::fs::write(base.join(CONFIG_FILE), old.to_string()).unwrap();
        let read = load_config(&base).unwrap().unwrap();
        assert_eq!((read.schedule, read.steps), (BetaSchedule::Linear, 41));
    }

    #[test]
    fn a_comparison_run_is_a_schedule_inside_a_compare_folder() {
        let base = Path::new("runs/20261206-061500-compare");
        for s in BetaSchedule::ALL {
            assert_eq!(
                comparison_of(&member(base, s)),
                Some((base.to_path_buf(), s))
            );
        }
        assert_eq!(
            comparison_of(Path::new("runs/20261206-061500-linear")),
            None
        );
        assert_eq!(comparison_of(Path::new("runs/other/linear")), None);
        assert_eq!(
            comparison_of(Path::new("runs/20261206-compare/notes")),
            None
        );
        assert_eq!(comparison_of(Path::new("linear")), None);
    }
}
