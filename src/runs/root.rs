//! Where run directories live.

use std::path::{Path, PathBuf};

/// Environment variable naming the runs directory.
pub const RUNS_ENV: &str = "DDPM_LAB_RUNS";

/// The directory holding run directories: `configured` (the lab's `--runs-dir` or its
/// remembered setting) when given, else `$DDPM_LAB_RUNS`, else `./runs`.
pub fn runs_root(configured: Option<&Path>) -> PathBuf {
    runs_root_with(configured, std::env::var_os(RUNS_ENV).map(PathBuf::from))
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
