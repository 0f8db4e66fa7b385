//! `ddpm-lab data` and `ddpm-lab train` against a loopback mock Hub, as a user would run them:
//! `HF_ENDPOINT=<mock> ddpm-lab data --json` into a fresh HF_HOME, then again with the mock down.

use crate::mock_hub;

use std::path::Path;
use std::process::{Command, Output};

use mock_hub::{hub_fixture, MockHub};

fn ddpm(args: &[&str], endpoint: &str, home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddpm-lab"))
        .args(args)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_TOKEN", mock_hub::TOKEN)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("DDPM_LAB_RUNS", home.join("runs"))
        .output()
        .expect("the binary runs")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn data_downloads_then_answers_from_cache_and_trains() {
    let Some(root) = hub_fixture() else { return };
    let home = tempfile::tempdir().unwrap();
    let hub = MockHub::start(&root);
    let first = json(&ddpm(&["data", "--json"], &hub.url, home.path()));
    let text = first.to_string();
    assert!(text.contains("zalando-datasets/fashion_mnist"), "{text}");
    assert!(text.contains("8517") && text.contains("6978"), "{text}");
    assert!(
        home.path()
            .join("hub/datasets--zalando-datasets--fashion_mnist/snapshots")
            .is_dir(),
        "the standard Hugging Face cache layout under HF_HOME/hub"
    );
    let dead = hub.stop();

    let second = json(&ddpm(&["data", "--json"], &dead, home.path()));
    assert_eq!(first, second, "the cached dataset answers the same");

    let run = home.path().join("run");
    let out = ddpm(
        &[
            "train",
            "--dataset",
            "fashion_mnist",
            "--dim",
            "4",
            "--dim-mults",
            "1,2",
            "--batch-size",
            "4",
            "--timesteps",
            "10",
            "--steps",
            "2",
            "--run-dir",
            run.to_str().unwrap(),
            "--json",
        ],
        &dead,
        home.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(r#""event":"step""#))
        .count();
    assert_eq!(steps, 2);
    let cfg = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(cfg.contains("fashion_mnist"));
}

#[test]
fn no_network_and_no_cache_fails_fast_with_advice() {
    let home = tempfile::tempdir().unwrap();
    let hub = MockHub::start(home.path());
    let dead = hub.stop();
    let started = std::time::Instant::now();
    let out = ddpm(&["data"], &dead, home.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.contains("shapes") && err.contains("HF_ENDPOINT"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
