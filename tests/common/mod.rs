//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::Tensor;

/// Why a test that needs `../shared` may skip in CI too: the data sets and PyTorch fixtures are
/// kept out of the repository, so a clone without that folder beside it cannot run these tests.
pub const NO_SHARED: &str =
    "this clone has no ../shared beside it (the data and fixtures are kept out of the repository)";

/// Skips the calling test: writes `SKIP <test>: <why>` to stderr (past the test harness's
/// capture, so it shows in a passing run). Under `CI=true` a skip fails the test instead, unless
/// `expected_in_ci` says why CI may lack what the test needs; the caller returns after this.
pub fn skip(why: &str, expected_in_ci: Option<&str>) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match (in_ci, expected_in_ci) {
        (true, None) => panic!("{test} would skip, which CI=true does not allow: {why}"),
        (true, Some(reason)) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {test}: {why} (expected in CI: {reason})"
            );
        }
        (false, _) => {
            let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
        }
    }
}

/// `../shared/<rel>` beside the project when it holds every one of `files`; otherwise the test
/// skips (see [`skip`]) and this is `None`. Without `../shared` at all the skip is expected
/// even in CI ([`NO_SHARED`]); a `../shared` that lacks the file fails under `CI=true`.
pub fn shared_with(rel: &str, files: &[&str]) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let dir = root.join(rel);
    let missing = std::iter::once(dir.clone())
        .chain(files.iter().map(|f| dir.join(f)))
        .find(|p| !p.exists());
    match missing {
        None => Some(dir),
        Some(p) => {
            let expected = (!root.is_dir()).then_some(NO_SHARED);
            skip(&format!("{} not found", p.display()), expected);
            None
        }
    }
}

/// `../shared/<rel>` (a file or folder), or `None` after skipping the test (see [`shared_with`]).
pub fn shared(rel: &str) -> Option<PathBuf> {
    shared_with(rel, &[])
}

/// Max |a − b| over all elements; NaN if any difference is NaN.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let d = (a - b)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    // NaN as soon as one element is NaN: candle's `max` skips NaNs, which would let a kernel
    // that leaves some outputs unwritten (NaN in debug builds) pass.
    d.iter().fold(0f32, |m, v| {
        if m.is_nan() || v.is_nan() {
            f32::NAN
        } else {
            m.max(v.abs())
        }
    })
}

/// An uncompressed IDX file: magic number, big-endian dimensions, then the data.
pub fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// Runs the real binary offline with `runs` as its runs root (and its Hub cache inside it).
pub fn ddpm(args: &[&str], runs: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ddpm-lab"))
        .args(args)
        .env("DDPM_LAB_RUNS", runs)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", runs.join("hf-home"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

/// The last line of `text` (a `--json` command's stdout) as JSON; `Null` where there is none or
/// it is not JSON, so that the caller's assertion shows the whole text.
pub fn last_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or_default()
}

/// The `step` of each step in `text`: the `"event": "step"` lines of `train --json`, or every
/// line of `metrics.jsonl` (one step per line, no `event`).
pub fn json_steps(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            if v.get("event").is_some_and(|e| e != "step") {
                return None;
            }
            Some(
                v["step"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no step in {l}")),
            )
        })
        .collect()
}
