//! A comparison: one run per beta schedule under one directory, as the lab's Compare screen
//! trains them (`runs/20261206-061500-compare/linear`, `…/cosine`, …), so that every part of
//! the lab finds a comparison's runs, and a comparison from a run, the same way.

use std::path::{Path, PathBuf};

use crate::schedule::BetaSchedule;

/// What a comparison's directory name ends with (after the time stamp).
pub const TAG: &str = "compare";

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
