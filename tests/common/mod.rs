//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::Tensor;

/// `../shared/<rel>` next to the project, if present (CI and developers have it; a fresh user
/// machine does not).
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found", p.display());
        None
    }
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
