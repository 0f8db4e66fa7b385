//! Where run directories live.

use std::path::{Path, PathBuf};

/// Environment variable naming the runs directory.
pub const RUNS_ENV: &str = "DDPM_LAB_RUNS";

/// The directory holding run directories: `configured` (the lab's `--runs-dir` or its
/// remembered setting) when given, else `$DDPM_LAB_RUNS`, else `./runs`.
pub fn runs_root(configured: Option<&Path>) -> PathBuf {
    runs_root_with(configured, std::env::var_os(RUNS_ENV).map(PathBuf::from))
}

/// The run `path` names: `path` itself where it exists, else the run of that name (or path)
/// under [`runs_root`], so `--resume 20261206-052012-linear` finds the run wherever
/// `$DDPM_LAB_RUNS` keeps it; `path` unchanged where neither exists (the error names it).
pub fn find_run(path: &Path) -> PathBuf {
    find_run_in(path, &runs_root(None))
}

fn find_run_in(path: &Path, root: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let under_root = root.join(path);
    // A checkpoint of a run there (`RUN/checkpoints/step-60`) goes with its run, even where
    // the folder is not there as written: resuming then finds it by its step, or names the
    // run's checkpoints.
    let run = crate::store::Checkpoint::run_dir_of(path);
    if under_root.exists() || (run != path && root.join(run).is_dir()) {
        under_root
    } else {
        path.to_path_buf()
    }
}

fn runs_root_with(configured: Option<&Path>, env: Option<PathBuf>) -> PathBuf {
    configured
        .map(Path::to_path_buf)
        .or(env.filter(|p| !p.as_os_str().is_empty()))
        .unwrap_or_else(|| PathBuf::from("runs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_found_by_its_path_then_by_its_name_under_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("runs");
        std::fs::create_dir_all(root.join("20261206-052012-linear/checkpoints/step-000004"))
            .unwrap();
        let name = Path::new("20261206-052012-linear");
        assert_eq!(find_run_in(name, &root), root.join(name));
        let ck = Path::new("20261206-052012-linear/checkpoints/step-000004");
        assert_eq!(find_run_in(ck, &root), root.join(ck));
        // A checkpoint named by its step, or one gone: under its run, for resuming to find
        // or to name the run's checkpoints.
        let by_step = Path::new("20261206-052012-linear/checkpoints/step-4");
        assert_eq!(find_run_in(by_step, &root), root.join(by_step));
        // Nothing of that name: the path as given, for the error to name.
        assert_eq!(find_run_in(Path::new("nope"), &root), Path::new("nope"));
        // A path that exists is itself, even where the root holds one of that name.
        assert_eq!(find_run_in(d.path(), &root), d.path());
    }

    #[test]
    fn configured_then_environment_then_default() {
        let env = Some(PathBuf::from("/env/runs"));
        assert_eq!(
            runs_root_with(Some(Path::new("/flag")), env.clone()),
            PathBuf::from("/flag")
        );
        assert_eq!(runs_root_with(None, env), PathBuf::from("/env/runs"));
        assert_eq!(runs_root_with(None, None), PathBuf::from("runs"));
        assert_eq!(
            runs_root_with(None, Some(PathBuf::new())),
            PathBuf::from("runs"),
            "an empty variable is unset"
        );
    }
}
