//! The edges of the real binary that used to crash or misbehave: a closed stdout, `--show`
//! into a file, absurd or too-large values on the command line and in a run's `config.json`
//! (refused with one line instead of "memory allocation failed", exit 134), a gzip IDX file
//! that inflates far past its header, and a corrupt cached parquet file with no network.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ddpm_lab::data::{load_dataset, DataError, DatasetSpec, LoadOptions, LoadProgress};

const BIN: &str = env!("CARGO_BIN_EXE_ddpm-lab");

/// The binary offline, with its runs and Hub cache under `dir`.
fn ddpm(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("DDPM_LAB_RUNS", dir.join("runs"))
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", dir.join("hf-home"))
        .env("NO_COLOR", "1");
    c
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run ddpm-lab")
}

/// Checks a refusal: exit status 1 (not an abort), one line on stderr holding `want`.
fn refused(out: &Output, want: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "status {:?}: {err}", out.status);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: ") && err.contains(want), "{err}");
    assert!(!err.contains("memory allocation"), "{err}");
    err
}

/// Checks that `out` succeeded, showing its stderr where it did not.
fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One image of `run` by DDIM in two steps, into `dir/s.png`, with `extra` flags.
fn sample_one(dir: &Path, run: &Path, extra: &[&str]) -> Output {
    output(
        ddpm(dir)
            .args(["sample", "--n", "1", "--sampler", "ddim", "--steps", "2"])
            .args(extra)
            .arg("--checkpoint")
            .arg(run)
            .arg("--out")
            .arg(dir.join("s.png")),
    )
}

/// A tiny trained run (2 steps, T = 20) in `dir/name`.
fn tiny_run(dir: &Path, name: &str) -> PathBuf {
    tiny_run_with(dir, name, &[])
}

/// [`tiny_run`] with more `train` flags.
fn tiny_run_with(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let run = dir.join(name);
    let out = output(
        ddpm(dir)
            .args(["train", "--dataset", "shapes", "--model", "tiny"])
            .args(extra)
            .args([
                "--timesteps",
                "20",
                "--batch-size",
                "4",
                "--steps",
                "2",
                "--json",
            ])
            .arg("--run-dir")
            .arg(&run),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of `run` whose `config.json` (the run's and its newest checkpoint's) has `field`
/// set to `value`.
fn edited(run: &Path, name: &str, field: &str, value: serde_json::Value) -> PathBuf {
    let dir = run.with_file_name(name);
    copy_tree(run, &dir);
    let latest = std::fs::read_to_string(dir.join("latest")).unwrap();
    let checkpoint = dir.join("checkpoints").join(latest.trim());
    for path in [dir.join("config.json"), checkpoint.join("config.json")] {
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg[field] = value.clone();
        std::fs::write(&path, cfg.to_string()).unwrap();
    }
    dir
}

#[test]
fn a_closed_stdout_ends_schedules_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = ddpm(tmp.path())
        // Far more than a pipe holds, so the write meets the closed pipe.
        .args(["schedules", "--json", "--timesteps", "20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 300];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    drop(child.stdout.take()); // `| head -c 300`
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "nothing on stderr: {err}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{:?}",
            out.status
        );
    }
    assert!(head.starts_with(b"{\""));
}

#[test]
fn show_draws_only_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data.txt");
    let out = output(
        ddpm(tmp.path())
            .args(["data", "--dataset", "shapes", "--show", "4"])
            .stdout(std::fs::File::create(&file).unwrap()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stdout is not one: no images drawn"), "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains('\x1b'),
        "no escape codes in the file: {text:?}"
    );
    assert!(text.contains("first 4 training images"), "{text}");

    let run = tiny_run(tmp.path(), "run");
    let file = tmp.path().join("sample.txt");
    let out = output(
        ddpm(tmp.path())
            .args([
                "sample",
                "--n",
                "2",
                "--sampler",
                "ddim",
                "--steps",
                "2",
                "--show",
            ])
            .arg("--checkpoint")
            .arg(&run)
            .arg("--out")
            .arg(tmp.path().join("s.png"))
            .stdout(std::fs::File::create(&file).unwrap()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stdout is not one: grid not drawn"), "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains('\x1b'),
        "no escape codes in the file: {text:?}"
    );
    assert!(tmp.path().join("s.png").is_file());
}

/// On a terminal that answers no query (`script`'s pseudo-terminal, with nobody typing),
/// `--show` draws half-blocks and ends: it waited without end for an answer about kitty's
/// graphics protocol.
#[test]
fn show_ends_on_a_terminal_that_answers_no_query() {
    let Ok(script) = which_script() else {
        crate::common::skip("no `script` (util-linux) to make a silent terminal", None);
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cmd = format!("{BIN} data --dataset shapes --show 2");
    let mut child = Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .env("DDPM_LAB_RUNS", tmp.path().join("runs"))
        .env("HF_HOME", tmp.path().join("hf-home"))
        .env("TERM", "xterm-256color")
        .env_remove("KITTY_WINDOW_ID")
        .env_remove("TERM_PROGRAM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`data --show` on a silent terminal did not end in 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(status.success(), "{status:?}: {text}");
    assert!(text.contains("first 2 training images"), "{text}");
    assert!(!text.contains("\x1b_G"), "no kitty query: {text:?}");
}

/// `script`, where the machine has it.
fn which_script() -> Result<PathBuf, ()> {
    ["/usr/bin/script", "/bin/script"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn a_dataset_path_that_is_not_utf8_is_refused_with_its_flag_and_why() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(std::ffi::OsStr::from_bytes(b"images-\xff"));
    std::fs::create_dir(&path).unwrap();
    for cmd in ["train", "data", "eval", "import", "--model"] {
        // `--model tiny --dataset …` opens the lab (no command).
        let args: &[&str] = if cmd == "--model" {
            &[cmd, "tiny"]
        } else {
            &[cmd]
        };
        let out = output(ddpm(tmp.path()).args(args).arg("--dataset").arg(&path));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("for '--dataset <DATASET>': not valid UTF-8, and a run records its data's path as text"),
            "{cmd}: {err}"
        );
    }
}

/// A run whose own config.json was lost is still a run: each checkpoint keeps a copy, which
/// listing, sampling and resuming read, and the next checkpoint writes it back.
#[test]
fn a_run_that_lost_its_config_is_listed_sampled_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_run(tmp.path(), "lost");
    std::fs::remove_file(run.join("config.json")).unwrap();
    let listed = output(
        ddpm(tmp.path())
            .args(["runs", "--json", "--runs-dir"])
            .arg(tmp.path()),
    );
    let text = String::from_utf8_lossy(&listed.stdout);
    let row: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["name"] == "lost")
        .unwrap_or_else(|| panic!("the run is listed: {text}"));
    assert_eq!(row["step"], 2, "{row}");
    succeeded(&sample_one(tmp.path(), &run, &[]));
    succeeded(&output(
        ddpm(tmp.path())
            .args(["train", "--steps", "3", "--resume"])
            .arg(&run),
    ));
    assert!(run.join("config.json").is_file(), "written back");
}

/// A damaged EMA: `sample` and `eval` say that `--no-ema` samples the raw weights, which do.
#[test]
fn a_damaged_ema_points_sample_at_the_raw_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_run_with(tmp.path(), "ema", &["--ema", "0.99"]);
    let ema = run.join("checkpoints/step-000002/ema.safetensors");
    std::fs::write(&ema, b"cut short").unwrap();
    let err = refused(&sample_one(tmp.path(), &run, &[]), "ema.safetensors");
    assert!(
        err.trim_end()
            .ends_with("; --no-ema samples the checkpoint's raw weights"),
        "{err}"
    );
    succeeded(&sample_one(tmp.path(), &run, &["--no-ema"]));
}

/// Without `latest`, the error names the newest checkpoint to go on from, once.
#[test]
fn a_run_without_latest_names_its_newest_checkpoint_once() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_run(tmp.path(), "nolatest");
    std::fs::remove_file(run.join("latest")).unwrap();
    let out = output(
        ddpm(tmp.path())
            .args(["train", "--steps", "3", "--resume"])
            .arg(&run),
    );
    let err = refused(&out, "has checkpoints but no latest naming the newest");
    let newest = run.join("checkpoints/step-000002");
    assert!(
        err.contains(&format!(
            "the newest is {} (train goes on from it with --resume, sample and eval draw from it with --checkpoint)",
            newest.display()
        ))
            && !err.contains("another checkpoint"),
        "{err}"
    );
}

#[test]
fn absurd_training_values_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let train = |extra: &[&str]| {
        output(
            ddpm(tmp.path())
                .args(["train", "--dataset", "shapes", "--steps", "2"])
                .args(extra)
                .arg("--run-dir")
                .arg(tmp.path().join("r")),
        )
    };
    refused(
        &train(&["--timesteps", "1000000000"]),
        "--timesteps must be at most 100000, got 1000000000",
    );
    refused(
        &train(&["--dim", "1000000"]),
        "dim must be at most 1024, got 1000000",
    );
    refused(
        &train(&["--batch-size", "1000000000"]),
        "--batch-size must be at most 65536, got 1000000000",
    );
    refused(&train(&["--dim-mults", "1,2,2,2,2,2,2,2,2"]), "dim_mults");
    // A stop step of years (a typo) is an error, not an ETA of 10⁸ hours.
    let out = output(
        ddpm(tmp.path())
            .args(["train", "--dataset", "shapes", "--epochs", "100000000000"])
            .arg("--run-dir")
            .arg(tmp.path().join("r")),
    );
    refused(&out, "must be at most 1000000000");
    refused(&train(&["--image-size", "100000"]), "between 4 and 1024");
    // Within the limits but beyond memory: 65 536 images a batch is ~700 GB of activations.
    if ddpm_lab::memory::available_memory().is_some_and(|m| m < 500_000_000_000) {
        let err = refused(
            &train(&["--model", "tiny", "--batch-size", "65536"]),
            "at --batch-size 65536 on 28×28 images needs about",
        );
        assert!(err.contains("of memory but only"), "{err}");
    }
}

#[test]
fn a_run_config_with_absurd_sizes_is_refused_by_sample_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_run(tmp.path(), "run");
    let sample = |dir: &Path, n: &str| {
        output(
            ddpm(tmp.path())
                .args(["sample", "--n", n, "--checkpoint"])
                .arg(dir)
                .arg("--out")
                .arg(tmp.path().join("s.png")),
        )
    };
    let resume = |dir: &Path| {
        output(
            ddpm(tmp.path())
                .args(["train", "--steps", "4", "--resume"])
                .arg(dir),
        )
    };
    let big_t = edited(&run, "big-t", "timesteps", 1_000_000_000.into());
    let want = "config.json: --timesteps must be at most 100000, got 1000000000";
    refused(&sample(&big_t, "1"), want);
    refused(&resume(&big_t), want);
    let big_image = edited(&run, "big-image", "image_size", 100_000.into());
    let want = "config.json: --image-size must be at most 1024 pixels";
    refused(&sample(&big_image, "1"), want);
    refused(&resume(&big_image), want);
    // 1024 px is allowed, but the tiny model's middle attention at 512×512 is terabytes.
    if ddpm_lab::memory::available_memory().is_some() {
        let large = edited(&run, "large", "image_size", 1024.into());
        let err = refused(
            &sample(&large, "1"),
            "sampling --n 1 images of 1×1024×1024 over 20 steps (final images kept) needs about",
        );
        assert!(err.contains("of memory but only"), "{err}");
        // More than one image: the error says how to draw fewer at a time.
        let err = refused(&sample(&large, "2"), "sampling --n 2 images");
        assert!(
            err.trim_end()
                .ends_with("available (--batch-size draws them a few at a time)"),
            "{err}"
        );
    }
    refused(
        &sample(&run, "100000"),
        "--n must be at most 10000 (a 100×100 grid), got 100000",
    );
}

#[test]
fn a_gzip_idx_longer_than_its_header_is_refused_without_inflating_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("idx");
    std::fs::create_dir_all(&data).unwrap();
    let header = |magic: u32, dims: &[u32]| {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    };
    // Two 28×28 images, then 256 MB of zeros (about 250 kB compressed).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&header(0x0803, &[2, 28, 28])).unwrap();
    gz.write_all(&[9u8; 2 * 784]).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        gz.write_all(&zeros).unwrap();
    }
    std::fs::write(
        data.join("train-images-idx3-ubyte.gz"),
        gz.finish().unwrap(),
    )
    .unwrap();
    let mut labels = header(0x0801, &[2]);
    labels.extend_from_slice(&[0, 1]);
    std::fs::write(data.join("train-labels-idx1-ubyte"), labels).unwrap();
    let started = std::time::Instant::now();
    let out = output(ddpm(tmp.path()).arg("data").arg("--dataset").arg(&data));
    refused(
        &out,
        "train-images-idx3-ubyte.gz: the gzip stream holds more than the 1584 bytes its IDX \
         header announces",
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_corrupt_cached_parquet_with_no_network_is_reported_when_removed() {
    let Some(root) = crate::mock_hub::hub_fixture() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let opts = |endpoint: &str| LoadOptions {
        endpoint: Some(endpoint.to_string()),
        cache_dir: Some(cache.clone()),
        token: Some(crate::mock_hub::TOKEN.to_string()),
        network_timeout: Duration::from_millis(1500),
        retries: 0,
        ..LoadOptions::default()
    };
    let hub = crate::mock_hub::MockHub::start(&root);
    load_dataset(&DatasetSpec::FashionMnist, &opts(&hub.url), &mut |_| {}).expect("download");
    drop(hub);
    // The cached training shard goes bad (a disk error, an interrupted copy, ...).
    let snapshot = cache
        .join("datasets--zalando-datasets--fashion_mnist/snapshots")
        .join(crate::mock_hub::COMMIT)
        .join(crate::mock_hub::TRAIN);
    let blob = std::fs::canonicalize(&snapshot).unwrap();
    std::fs::write(&blob, b"PAR1 this is not parquet PAR1").unwrap();
    // No network: a port nothing listens on.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut notices = Vec::new();
    let err = load_dataset(&DatasetSpec::FashionMnist, &opts(&dead), &mut |p| {
        if let LoadProgress::Notice { text } = p {
            notices.push(text);
        }
    })
    .unwrap_err();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains(crate::mock_hub::TRAIN) && notices[0].contains("was removed"),
        "{}",
        notices[0]
    );
    let msg = err.to_string();
    assert!(matches!(err, DataError::Network { .. }), "{msg}");
    assert!(
        msg.contains("cannot download")
            && msg.contains(&format!(
                "the cached {} was not a valid dataset file",
                crate::mock_hub::TRAIN
            ))
            && msg.contains("removed from the cache"),
        "{msg}"
    );
    assert!(!snapshot.exists());
}

/// A path that is not UTF-8 (which JSON cannot hold) is printed as it displays by `--json`,
/// never a panic; and `sample --out` into a symlink keeps the link.
#[cfg(unix)]
#[test]
fn json_output_takes_paths_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let odd = tmp.path().join(std::ffi::OsStr::from_bytes(b"bad\xffroot"));
    let run = tiny_run(&odd, "r");
    let listed = output(
        ddpm(tmp.path())
            .args(["runs", "--json", "--runs-dir"])
            .arg(&odd),
    );
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("bad\u{fffd}root"));
    std::fs::create_dir(tmp.path().join("images")).unwrap();
    let link = tmp.path().join("grid.png");
    std::os::unix::fs::symlink("images/real.png", &link).unwrap();
    let sampled = output(
        ddpm(tmp.path())
            .args(["sample", "--n", "1", "--json", "--checkpoint"])
            .arg(&run)
            .arg("--out")
            .arg(&link),
    );
    assert!(
        sampled.status.success(),
        "{}",
        String::from_utf8_lossy(&sampled.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&sampled.stdout).unwrap();
    assert!(line["checkpoint"]
        .as_str()
        .unwrap()
        .contains("bad\u{fffd}root"));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(tmp.path().join("images/real.png").is_file());
    // An output named relative to the folder it ran in is said whole.
    let sampled = output(
        ddpm(tmp.path())
            .current_dir(tmp.path())
            .args([
                "sample",
                "--n",
                "1",
                "--json",
                "--out",
                "rel.png",
                "--checkpoint",
            ])
            .arg(&run),
    );
    let line: serde_json::Value = serde_json::from_slice(&sampled.stdout).unwrap_or_default();
    let whole = std::path::absolute(tmp.path().join("rel.png")).unwrap();
    assert_eq!(line["out"], whole.display().to_string(), "{sampled:?}");
}

/// Resuming a run of a Hub dataset with no network offers what resume takes: not the
/// built-in set, which it refuses for such a run.
#[test]
fn an_offline_resume_does_not_offer_the_built_in_set() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_run(tmp.path(), "r");
    let hub_run = edited(&run, "hub", "dataset", serde_json::json!("fashion_mnist"));
    let out = output(
        ddpm(tmp.path())
            .args(["train", "--resume"])
            .arg(&hub_run)
            .args(["--steps", "4"]),
    );
    let err = refused(&out, "--dataset PATH");
    assert!(!err.contains("--dataset shapes"), "{err}");
}

/// A run that keeps an EMA, sampled from a checkpoint without its EMA file, says that its
/// raw weights draw the images (it used to say nothing).
#[test]
fn sampling_without_the_ema_file_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_run_with(tmp.path(), "ema", &["--ema", "0.9"]);
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    std::fs::remove_file(
        run.join("checkpoints")
            .join(latest.trim())
            .join("ema.safetensors"),
    )
    .unwrap();
    let out = output(
        ddpm(tmp.path())
            .args(["sample", "--n", "1", "--checkpoint"])
            .arg(&run)
            .arg("--out")
            .arg(tmp.path().join("g.png")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("has no EMA weights (ema.safetensors)"),
        "{err}"
    );
    // Its checkpoints folder is no checkpoint: the run is named instead.
    let out = output(
        ddpm(tmp.path())
            .args(["sample", "--n", "1", "--checkpoint"])
            .arg(run.join("checkpoints"))
            .arg("--out")
            .arg(tmp.path().join("g.png")),
    );
    refused(&out, "is the run's checkpoints folder: pass the run");
}

/// `runs` lists a run whose own config.json is damaged (its checkpoint's says the same), and
/// marks one whose `latest` is damaged `?` with why, instead of hiding the first and saying
/// `0` saved for the second.
#[test]
fn runs_lists_damaged_runs_and_says_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let run = tiny_run(&runs, "whole");
    let garbled = runs.join("garbled");
    copy_tree(&run, &garbled);
    std::fs::write(garbled.join("config.json"), "garbage").unwrap();
    let pointer = runs.join("pointer");
    copy_tree(&run, &pointer);
    std::fs::write(pointer.join("latest"), "nope\n").unwrap();
    let out = output(ddpm(tmp.path()).args(["runs"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} is listed:\n{text}"))
            .to_string()
    };
    assert!(row("garbled").contains(" 2/2 "), "{text}");
    assert!(row("pointer").contains(" ?/2 "), "{text}");
    assert!(
        text.contains("pointer: ") && text.contains("names checkpoint nope"),
        "{text}"
    );
}

/// `bench --device cuda` in a CPU-only binary says why in one line, without announcing a
/// benchmark first.
#[cfg(not(feature = "cuda"))]
#[test]
fn bench_on_a_device_the_binary_lacks_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = output(ddpm(tmp.path()).args(["bench", "--config", "tiny", "--device", "cuda"]));
    refused(&out, "needs a binary built with the `cuda` cargo feature");
}

/// `--json` and an output file that is standard output would mix in one stream: refused.
#[cfg(unix)]
#[test]
fn json_beside_an_output_on_stdout_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = output(ddpm(tmp.path()).args(["schedules", "--json", "--out", "/dev/stdout"]));
    refused(
        &out,
        "--json writes to standard output, and so would /dev/stdout",
    );
    // Nothing but the failure's own JSON line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let event: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_default();
    assert_eq!(event["event"], "error", "{stdout}");
}

#[test]
fn train_waits_for_room_on_a_full_disk_and_goes_on_with_its_whole_history() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("full");
    // Steps 1–3 are logged, then the disk is "full" for step 4's line and the checkpoint
    // that tries to write it, then there is room again.
    let out = output(
        ddpm(tmp.path())
            .env(
                "FAILPOINTS",
                "append-line:metrics.jsonl=3*off->2*return(No space left on device (os error 28))->off",
            )
            .args(["train", "--dataset", "shapes", "--model", "tiny"])
            .args(["--timesteps", "20", "--batch-size", "4", "--steps", "6"])
            .args(["--checkpoint-every", "0", "--json", "--run-dir"])
            .arg(&run),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("checkpoint at step 4 not written: No space left on device")
            && err.contains("paused with the weights in memory, trying again"),
        "{err}"
    );
    let steps: Vec<usize> = ddpm_lab::store::read_metrics_file(&run.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|s| s.step)
        .collect();
    assert_eq!(steps, (1..=6).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    assert_eq!(of("step"), 6, "one JSON line per step:\n{stdout}");
    assert_eq!(of("checkpoint_failed"), 1, "{stdout}");
    assert_eq!(events.last().unwrap()["reason"], "steps", "{stdout}");
    assert_eq!(
        std::fs::read_to_string(run.join("latest")).unwrap().trim(),
        "step-000006"
    );
}

/// A script reads why a command failed from its exit status and, with `--json`, from stdout:
/// 2 for a command line that does not parse, 75 while another process uses the run (trying
/// again later may work), 1 for every other failure, each with an `error` event.
#[test]
fn failures_have_distinct_exit_statuses_and_json_error_events() {
    let tmp = tempfile::tempdir().unwrap();
    let error_event = |out: &Output| -> String {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = crate::common::last_json(&stdout);
        assert_eq!(last["event"], "error", "{stdout}");
        last["message"].as_str().unwrap_or_default().to_string()
    };
    // Usage: a value that is no number.
    let out = output(ddpm(tmp.path()).args(["sample", "--json", "--n", "abc"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(error_event(&out).contains("--n"));
    // Failure: no such run.
    let out = output(ddpm(tmp.path()).args(["sample", "--json", "--checkpoint", "nosuchrun"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(error_event(&out).contains("nosuchrun"));
    let out = output(ddpm(tmp.path()).args(["eval", "--json", "--checkpoint", "nosuchrun"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(error_event(&out).contains("nosuchrun"));
    // A data path that is not there is bad input, as for `train`, not a usage error.
    let out = output(ddpm(tmp.path()).args(["data", "--json", "--dataset", "/no/such/data"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(error_event(&out).contains("/no/such/data"));
    // Busy: a run another process trains, before its first checkpoint and after.
    let run = tmp.path().join("busy");
    let cfg = ddpm_lab::store::TrainConfig {
        model: ddpm_lab::model::UnetConfig::tiny(),
        ..Default::default()
    };
    ddpm_lab::store::RunDir::create(&run)
        .unwrap()
        .save_config(&cfg)
        .unwrap();
    let lock = ddpm_lab::store::RunLock::acquire(&run).unwrap();
    let out = output(
        ddpm(tmp.path())
            .args(["sample", "--json", "--checkpoint"])
            .arg(&run),
    );
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert!(error_event(&out).contains("has no checkpoint yet"));
    drop(lock);
    let out = output(
        ddpm(tmp.path())
            .args(["sample", "--json", "--checkpoint"])
            .arg(&run),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "not busy once it stopped: {out:?}"
    );
    let trained = tiny_run(tmp.path(), "trained");
    let _lock = ddpm_lab::store::RunLock::acquire(&trained).unwrap();
    let out = output(
        ddpm(tmp.path())
            .args(["train", "--json", "--steps", "3", "--resume"])
            .arg(&trained),
    );
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert!(error_event(&out).contains("is being trained by pid"));
}

/// A run that fails after it started says where it stands in its `error` event: the steps
/// done, its folder, and the step a resume goes on from (null: no checkpoint yet).
#[test]
fn a_failed_runs_error_event_says_where_the_run_stands() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("diverged run");
    let out = output(
        ddpm(tmp.path())
            .args([
                "train",
                "--dataset",
                "shapes",
                "--model",
                "tiny",
                "--timesteps",
                "10",
            ])
            .args([
                "--batch-size",
                "4",
                "--steps",
                "50",
                "--lr",
                "1e12",
                "--json",
            ])
            .arg("--run-dir")
            .arg(&run),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = crate::common::last_json(&stdout);
    assert_eq!(last["event"], "error", "{stdout}");
    assert!(last["step"].as_u64().is_some_and(|s| s < 50), "{last}");
    assert_eq!(
        last["run_dir"],
        run.display().to_string(),
        "no shell quoting"
    );
    assert!(last["checkpoint_step"].is_null(), "{last}");
}

/// `--disk-wait 0` (a CI job that must not hang an hour): a checkpoint a full disk refuses
/// ends `train` at once, with an `error` event and the last complete checkpoint kept.
#[test]
fn train_with_no_disk_wait_gives_up_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("full");
    let started = std::time::Instant::now();
    let out = output(
        ddpm(tmp.path())
            .env(
                "FAILPOINTS",
                "append-line:metrics.jsonl=2*off->return(No space left on device (os error 28))",
            )
            .args(["train", "--dataset", "shapes", "--model", "tiny"])
            .args(["--timesteps", "20", "--batch-size", "4", "--steps", "50"])
            .args([
                "--checkpoint-every",
                "2",
                "--disk-wait",
                "0",
                "--json",
                "--run-dir",
            ])
            .arg(&run),
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = crate::common::last_json(&stdout);
    assert_eq!(last["event"], "error", "{stdout}");
    assert!(
        last["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with("(--disk-wait 0: no waiting for room)"),
        "{last}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("latest")).unwrap().trim(),
        "step-000002"
    );
    // Where the run stands, as for any failure after the start.
    assert_eq!(
        (&last["step"], &last["checkpoint_step"]),
        (&3.into(), &2.into()),
        "{last}"
    );
    assert_eq!(last["run_dir"], run.display().to_string());
}
