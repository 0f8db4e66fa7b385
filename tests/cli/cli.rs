//! The headless CLI as a user runs it: the real binary, tiny configs, the built-in dataset.

use crate::common;

use std::process::Output;

use common::ddpm;

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A clean failure: non-zero exit, one `error:` line, no panic.
fn fails(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected failure, got success: {err}"
    );
    assert!(!err.contains("panicked"), "panicked: {err}");
    err
}

const TINY: &[&str] = &[
    "--dataset",
    "shapes",
    "--dim",
    "4",
    "--dim-mults",
    "1,2",
    "--batch-size",
    "4",
    "--timesteps",
    "10",
];

#[test]
fn train_sample_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let mut args = vec!["train"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--steps", "30", "--run-dir", run_s, "--json"]);
    let trained = ddpm(&args, tmp.path());
    let out = ok(&trained);
    // stdout holds JSON events (start, steps, checkpoints, end); stderr names the run for a
    // person too.
    let err = String::from_utf8_lossy(&trained.stderr);
    assert!(err.contains(&format!("→ {run_s}\n")), "{err}");
    assert!(err.contains(&format!("run saved in {run_s}\n")), "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"start"), "{kinds:?}");
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["checkpoint", "end"],
        "{kinds:?}"
    );
    assert_eq!(events[0]["run_dir"], run_s);
    assert_eq!(events[0]["start_step"], 0);
    assert_eq!(events[0]["total_steps"], 30);
    let end = events.last().unwrap();
    assert_eq!(
        (&end["step"], &end["run_dir"], &end["reason"]),
        (&30.into(), &run_s.into(), &"steps".into())
    );
    let checkpoint = &events[events.len() - 2];
    assert_eq!(checkpoint["step"], 30);
    assert!(
        checkpoint["path"]
            .as_str()
            .unwrap()
            .ends_with("step-000030"),
        "{checkpoint}"
    );
    let lines: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "step").collect();
    assert_eq!(lines.len(), 30);
    for key in ["step", "epoch", "loss", "images_per_s", "elapsed_s", "lr"] {
        assert!(lines[0].get(key).is_some(), "missing {key} in {}", lines[0]);
    }
    assert_eq!(lines[29]["step"], 30);
    for f in ["config.json", "metrics.jsonl", "latest"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    assert_eq!(latest.trim(), "step-000030");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["checkpoint_interval_s"], 120.0,
        "a checkpoint every 2 minutes of training by default"
    );
    for f in [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    ] {
        let p = run.join("checkpoints/step-000030").join(f);
        assert!(p.is_file(), "{} missing", p.display());
    }
    // `forward` on a checkpoint's weights takes the model from the config.json beside them
    // (no model flags: the blog's model would not fit these weights).
    let case = tmp.path().join("case.safetensors");
    let dev = candle_core::Device::Cpu;
    candle_core::safetensors::save(
        &std::collections::HashMap::from([
            (
                "x".to_string(),
                candle_core::Tensor::zeros((2, 1, 28, 28), candle_core::DType::F32, &dev).unwrap(),
            ),
            (
                "t".to_string(),
                candle_core::Tensor::new(&[1i64, 5], &dev).unwrap(),
            ),
        ]),
        &case,
    )
    .unwrap();
    let weights = run.join("checkpoints/step-000030/model.safetensors");
    let forward_out = tmp.path().join("forward-out.safetensors");
    let forward = |extra: &[&str]| {
        let mut a = vec!["forward", "--weights", weights.to_str().unwrap()];
        a.extend_from_slice(&["--input", case.to_str().unwrap()]);
        a.extend_from_slice(&["--out", forward_out.to_str().unwrap()]);
        a.extend_from_slice(extra);
        ddpm(&a, tmp.path())
    };
    let done = forward(&[]);
    ok(&done);
    assert!(
        String::from_utf8_lossy(&done.stderr).contains("note: the model of "),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stderr).contains("wrote `out` to "));
    let y = candle_core::safetensors::load(&forward_out, &dev).unwrap();
    assert_eq!(y["out"].dims(), [2, 1, 28, 28]);
    // The run itself, or its checkpoint folder, stands for that weights file.
    for given in [run.clone(), run.join("checkpoints/step-000030")] {
        let other = tmp.path().join("forward-run.safetensors");
        let mut a = vec!["forward", "--weights", given.to_str().unwrap()];
        a.extend_from_slice(&["--input", case.to_str().unwrap()]);
        a.extend_from_slice(&["--out", other.to_str().unwrap()]);
        ok(&ddpm(&a, tmp.path()));
        let z = candle_core::safetensors::load(&other, &dev).unwrap();
        assert_eq!(common::max_abs_diff(&z["out"], &y["out"]), 0.0, "{given:?}");
    }
    // Its output is never one of its inputs.
    let err = fails(&ddpm(
        &[
            "forward",
            "--weights",
            weights.to_str().unwrap(),
            "--input",
            case.to_str().unwrap(),
            "--out",
            case.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    assert!(err.contains("would overwrite an input"), "{err}");
    // Flags still change it, and weights that do not fit say which flags matter.
    let err = fails(&forward(&["--dim", "8"]));
    assert!(err.contains("init_conv.weight"), "{err}");
    assert!(
        err.contains("give the model flags the weights were trained with"),
        "{err}"
    );

    let out = ok(&ddpm(
        &["train", "--resume", run_s, "--steps", "40", "--json"],
        tmp.path(),
    ));
    let steps = common::json_steps(&out);
    assert_eq!(
        steps,
        (31..=40).collect::<Vec<_>>(),
        "resume continues from step 30"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 40);
    // A stop step the run has reached trains nothing: refused, not "done"; and flags that
    // only a new run uses are named as ignored.
    let out = ddpm(
        &[
            "train", "--resume", run_s, "--steps", "40", "--lr", "0.5", "--seed", "3", "--loss",
            "l1",
        ],
        tmp.path(),
    );
    let err = fails(&out);
    assert!(err.contains("at step 40 already"), "{err}");
    // With --json a usage error is an `error` event on stdout too (clap's exit status 2).
    let out = ddpm(
        &["train", "--json", "--steps", "3", "--epochs", "1"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let event: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).unwrap_or_default();
    assert_eq!(event["event"], "error", "{out:?}");
    assert!(
        event["message"].as_str().unwrap_or("").contains("--epochs"),
        "{event}"
    );
    // With --json a refusal before training is an `error` event on stdout too.
    let out = ddpm(
        &["train", "--resume", run_s, "--steps", "40", "--json"],
        tmp.path(),
    );
    fails(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = crate::common::last_json(&stdout);
    assert_eq!(last["event"], "error", "{stdout}");
    assert!(
        last["message"]
            .as_str()
            .unwrap_or("")
            .contains("at step 40 already"),
        "{stdout}"
    );
    assert!(
        err.contains("note: --loss, --seed are ignored with --resume"),
        "{err}"
    );
    // A branch from the earlier checkpoint trains beside the run, which keeps its later one.
    let from = run.join("checkpoints/step-000030");
    let out = ok(&ddpm(
        &[
            "train",
            "--resume",
            from.to_str().unwrap(),
            "--branch",
            "--steps",
            "32",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(common::json_steps(&out), [31, 32]);
    let branch = run.with_file_name(format!(
        "{}-from-30",
        run.file_name().unwrap().to_string_lossy()
    ));
    assert!(branch.join("checkpoints/step-000032").is_dir(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(run.join("latest")).unwrap().trim(),
        "step-000040"
    );
    assert!(from.is_dir());
    // The shipped classifier knows garments: a run on shapes is not scored against them.
    let eval = |run: &str| {
        fails(&ddpm(
            &[
                "eval",
                "--checkpoint",
                run,
                "--dataset",
                "fashion_mnist",
                "--n",
                "1",
            ],
            tmp.path(),
        ))
    };
    let err = eval(run_s);
    assert!(err.contains("this run trained on shapes"), "{err}");
    // The same run as if it had trained on Fashion-MNIST: offline, eval's advice leaves out
    // the built-in set, which has no quality classifier.
    let fashion = tmp.path().join("fashion-run");
    std::fs::create_dir_all(fashion.join("checkpoints")).unwrap();
    for f in ["config.json", "latest", "metrics.jsonl"] {
        std::fs::copy(run.join(f), fashion.join(f)).unwrap();
    }
    let ck = std::fs::read_to_string(run.join("latest")).unwrap();
    let (from, to) = (
        run.join("checkpoints").join(ck.trim()),
        fashion.join("checkpoints").join(ck.trim()),
    );
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    for cfg in [fashion.join("config.json"), to.join("config.json")] {
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, text.replace("\"shapes\"", "\"fashion_mnist\"")).unwrap();
    }
    let err = eval(fashion.to_str().unwrap());
    assert!(err.contains("--dataset PATH"), "{err}");
    assert!(!err.contains("--dataset shapes"), "{err}");
    let err = fails(&ddpm(
        &["train", "--dataset", "shapes", "--steps", "0"],
        tmp.path(),
    ));
    assert!(err.contains("--steps must be at least 1"), "{err}");
    let err = fails(&ddpm(
        &["train", "--dataset", "shapes", "--epochs", "0"],
        tmp.path(),
    ));
    assert!(err.contains("--epochs must be at least 1"), "{err}");

    let png = tmp.path().join("grid.png");
    let gif = tmp.path().join("denoise.gif");
    ok(&ddpm(
        &[
            "sample",
            "--checkpoint",
            run_s,
            "--n",
            "4",
            "--out",
            png.to_str().unwrap(),
            "--gif",
            gif.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    let img = image::open(&png).unwrap();
    assert!(img.width() > 28 && img.height() > 28);
    assert!(std::fs::metadata(&gif).unwrap().len() > 100);
    // All in one batch is the default; two at a time draws other images, GIF included.
    let in_batches = |batch: &str, name: &str| {
        let (p, g) = (
            tmp.path().join(format!("{name}.png")),
            tmp.path().join(format!("{name}.gif")),
        );
        let out = ok(&ddpm(
            &[
                "sample",
                "--checkpoint",
                run_s,
                "--n",
                "4",
                "--batch-size",
                batch,
                "--out",
                p.to_str().unwrap(),
                "--gif",
                g.to_str().unwrap(),
                "--json",
            ],
            tmp.path(),
        ));
        let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(j["batch_size"], batch.parse::<u64>().unwrap());
        (std::fs::read(p).unwrap(), std::fs::read(g).unwrap())
    };
    let (png4, gif4) = in_batches("4", "four");
    assert_eq!(png4, std::fs::read(&png).unwrap());
    assert_eq!(gif4, std::fs::read(&gif).unwrap());
    let (png2, gif2) = in_batches("2", "two");
    assert_ne!(png2, png4);
    assert_eq!(image::load_from_memory(&png2).unwrap().width(), img.width());
    let frames = |g: &[u8]| {
        use image::AnimationDecoder as _;
        let d = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(g)).unwrap();
        d.into_frames().count()
    };
    assert_eq!(frames(&gif2), frames(&gif4));

    let out = ok(&ddpm(
        &[
            "sample",
            "--checkpoint",
            run_s,
            "--n",
            "2",
            "--sampler",
            "ddim",
            "--steps",
            "5",
            "--out",
            png.to_str().unwrap(),
            "--json",
        ],
        tmp.path(),
    ));
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["step"], 40);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let err = fails(&ddpm(&["train", "--frobnicate"], d));
    assert!(err.contains("--frobnicate"), "{err}");
    let err = fails(&ddpm(&["train", "--schedule", "cosinus"], d));
    assert!(err.contains("cosinus"), "{err}");
    // A negative number is a bad value of its flag, not an unknown flag `-5`.
    let err = fails(&ddpm(&["train", "--steps", "-5"], d));
    assert!(err.contains("invalid value '-5' for '--steps"), "{err}");
    let err = fails(&ddpm(&["train", "--dataset", "shapes", "--lr", "-1"], d));
    assert!(
        err.contains("--lr must be a positive number, got -1"),
        "{err}"
    );
    // A list flag given twice is refused like any other flag (not the two lists joined).
    let err = fails(&ddpm(
        &["train", "--dim-mults", "1,2", "--dim-mults", "4"],
        d,
    ));
    assert!(err.contains("cannot be used multiple times"), "{err}");
    // A weights file with no folder in its name: the error names the folder it looked in.
    std::fs::write(d.join("afile.safetensors"), b"x").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddpm-lab"))
        .args(["sample", "--checkpoint", "afile.safetensors"])
        .current_dir(d)
        .output()
        .unwrap();
    let err = fails(&out);
    assert!(err.contains("error: . has no config.json"), "{err}");
    // TF32 is a CUDA setting: asked for on the CPU it is an error, not silently nothing.
    let missing = d.join("no-such-run");
    let missing = missing.to_str().unwrap();
    // A run that is not there is the error alone, without a note on the flags a resume
    // would ignore.
    let err = fails(&ddpm(&["train", "--resume", missing, "--model", "tiny"], d));
    assert!(err.contains("is not a run directory"), "{err}");
    assert!(!err.contains("ignored with --resume"), "{err}");
    for args in [
        &["train", "--tf32", "--device", "cpu"][..],
        &["sample", "--checkpoint", missing, "--tf32"][..],
    ] {
        let err = fails(&ddpm(args, d));
        assert!(err.contains("--tf32 is for CUDA"), "{args:?}: {err}");
    }
    let err = fails(&ddpm(
        &[
            "train",
            "--dataset",
            "shapes",
            "--batch-size",
            "0",
            "--steps",
            "1",
        ],
        d,
    ));
    assert!(err.contains("batch-size"), "{err}");
    let err = fails(&ddpm(
        &[
            "train",
            "--dataset",
            "shapes",
            "--dim-mults",
            "1,2,4,8",
            "--steps",
            "1",
        ],
        d,
    ));
    assert!(err.contains("divisible"), "{err}");
    let err = fails(&ddpm(
        &[
            "train",
            "--dataset",
            "shapes",
            "--device",
            "cuda",
            "--steps",
            "1",
        ],
        d,
    ));
    assert!(
        err.contains("`cuda` cargo feature") || err.contains("cuda"),
        "{err}"
    );
    // The device is opened before the data: a dataset that is not cached here (the Hub is
    // offline in tests) does not hide the device's error.
    let err = fails(&ddpm(
        &[
            "train",
            "--dataset",
            "cifar10",
            "--device",
            "cuda",
            "--steps",
            "1",
        ],
        d,
    ));
    assert!(err.to_lowercase().contains("cuda"), "{err}");
    assert!(!err.contains("cifar"), "{err}");

    let missing = d.join("nope");
    let err = fails(&ddpm(
        &["sample", "--checkpoint", missing.to_str().unwrap()],
        d,
    ));
    assert!(err.contains("does not exist"), "{err}");
    // A name found nowhere: both places looked in are said.
    for cmd in ["sample", "eval"] {
        let err = fails(&ddpm(&[cmd, "--checkpoint", "nosuchrun"], d));
        assert!(
            err.contains(
                "no run or checkpoint nosuchrun: not in this folder, nor in the runs folder"
            ),
            "{cmd}: {err}"
        );
    }

    // A corrupt checkpoint: config present, weights garbage.
    let run = d.join("corrupt");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("config.json"),
        serde_json::to_string(&ddpm_lab::train::TrainConfig::default()).unwrap(),
    )
    .unwrap();
    std::fs::write(run.join("model.safetensors"), b"not a safetensors file").unwrap();
    std::fs::write(
        run.join("state.json"),
        r#"{"step":5,"epoch":0,"seed":0,"elapsed_s":1.0}"#,
    )
    .unwrap();
    let err = fails(&ddpm(&["sample", "--checkpoint", run.to_str().unwrap()], d));
    assert!(err.contains("model.safetensors"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    // Refused in one line before any work: sizes that cannot fit in memory (an allocation
    // failure aborts the process with a backtrace), and output files that cannot be written
    // (before loading or sampling: here before the corrupt checkpoint is even read).
    let run = run.to_str().unwrap();
    let check_device = |batch| {
        [
            "check-device",
            "--device",
            "cpu",
            "--dim",
            "8",
            "--dim-mults",
            "1,2",
            "--batch",
            batch,
            "--size",
            "1024",
        ]
    };
    let run_config = format!("{run}/config.json");
    for (args, says) in [
        (&check_device("100000")[..], "--batch must be at most"),
        (&check_device("4096")[..], "needs about"),
        (
            &[
                "bench",
                "--config",
                "tiny",
                "--only",
                "sample",
                "--sample-steps",
                "100000000",
            ][..],
            "--sample-steps must be at most",
        ),
        (
            &["bench", "--config", "blog", "--forward-batch", "1000000"][..],
            "needs about",
        ),
        (
            &["sample", "--checkpoint", run, "--out", "s.jpg"][..],
            "s.jpg",
        ),
        (
            &["sample", "--checkpoint", run, "--gif", "nodir/x.gif"][..],
            "directory nodir does not exist",
        ),
        (
            &["eval", "--checkpoint", run, "--out", "grid.jpg"][..],
            "grid.jpg",
        ),
        (
            &["eval", "--checkpoint", run, "--batch-size", "0"][..],
            "--batch-size must be at least 1",
        ),
        (
            &["sample", "--checkpoint", &run_config][..],
            "config.json is not a weights file",
        ),
        (
            &[
                "forward",
                "--weights",
                "w.safetensors",
                "--input",
                "i.safetensors",
                "--out",
                "nodir/o.safetensors",
            ][..],
            "the folder nodir does not exist",
        ),
    ] {
        let err = fails(&ddpm(args, d));
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("model.safetensors"), "{args:?}: {err}");
    }
}

/// Weights from elsewhere (here a run's own, under a GaussianDiffusion's `model.` prefix, as
/// PyTorch would save them) become a run that samples exactly what the original does.
#[test]
fn imported_weights_sample_as_their_run_does() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = d.join("run");
    let mut args = vec!["train"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--steps", "3", "--run-dir", run.to_str().unwrap()]);
    let trained = ddpm(&args, d);
    ok(&trained);
    // stderr is a pipe here: no bar, but lines a log file keeps.
    let said = String::from_utf8_lossy(&trained.stderr);
    assert!(said.contains("step 3/3 · epoch 1/"), "{said}");
    assert!(said.contains("checkpoint at step 3 → "), "{said}");
    let dev = candle_core::Device::Cpu;
    let own =
        candle_core::safetensors::load(run.join("checkpoints/step-000003/model.safetensors"), &dev)
            .unwrap();
    let mut wrapped: std::collections::HashMap<String, candle_core::Tensor> = own
        .into_iter()
        .map(|(k, v)| (format!("model.{k}"), v))
        .collect();
    wrapped.insert(
        "betas".into(),
        candle_core::Tensor::zeros(10, candle_core::DType::F32, &dev).unwrap(),
    );
    let weights = d.join("diffusion.safetensors");
    candle_core::safetensors::save(&wrapped, &weights).unwrap();

    let import = |extra: &[&str]| {
        let mut a = vec!["import", "--weights", weights.to_str().unwrap()];
        a.extend_from_slice(&["--dataset", "shapes", "--timesteps", "10", "--step", "3"]);
        a.extend_from_slice(extra);
        ddpm(&a, d)
    };
    // The blog's model does not fit: the run is not made, and the message says why.
    let nope = d.join("nope");
    let err = fails(&import(&["--run-dir", nope.to_str().unwrap()]));
    assert!(err.contains("do not fit the model"), "{err}");
    assert!(!nope.exists());
    let done = import(&["--dim", "4", "--dim-mults", "1,2"]);
    // The run's directory on stdout, named as a run under the runs directory.
    let imported = ok(&done).trim().to_string();
    assert!(
        imported.starts_with(d.to_str().unwrap()) && imported.ends_with("-linear-import"),
        "{imported}"
    );
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(
        err.contains("from under `model.`") && err.contains("betas"),
        "{err}"
    );
    assert!(
        err.contains(&format!("ddpm-lab sample --checkpoint {imported}")),
        "{err}"
    );
    // A folder of data given relative to where the command runs (here, the crate's) is
    // recorded by its whole path, as `train` records it.
    let rel = d.join("rel");
    let a = [
        "import",
        "--weights",
        weights.to_str().unwrap(),
        "--dataset",
        "tests",
        "--timesteps",
        "10",
        "--dim",
        "4",
        "--dim-mults",
        "1,2",
        "--run-dir",
        rel.to_str().unwrap(),
    ];
    ok(&ddpm(&a, d));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rel.join("config.json")).unwrap()).unwrap();
    let whole = std::env::current_dir().unwrap().join("tests");
    assert_eq!(cfg["dataset"].as_str(), whole.to_str());

    let sample = |run: &str, png: &str| {
        let a = [
            "sample",
            "--checkpoint",
            run,
            "--n",
            "4",
            "--seed",
            "7",
            "--out",
            png,
        ];
        ok(&ddpm(&a, d));
        std::fs::read(png).unwrap()
    };
    let (a, b) = (d.join("a.png"), d.join("b.png"));
    assert_eq!(
        sample(run.to_str().unwrap(), a.to_str().unwrap()),
        sample(&imported, b.to_str().unwrap()),
        "the same images from the same weights"
    );
    let listed = ok(&ddpm(&["runs", "--json"], d));
    assert!(listed.contains("-linear-import\""), "{listed}");
}

#[test]
fn forward_reproduces_pytorch_and_names_mismatched_weights() {
    let (Some(w), Some(case)) = (
        common::shared("fixtures/unet_convnext_init.safetensors"),
        common::shared("fixtures/forward_case.safetensors"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let args = [
        "forward",
        "--weights",
        w.to_str().unwrap(),
        "--input",
        case.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    ok(&ddpm(&args, tmp.path()));
    let got = candle_core::safetensors::load(&out, &candle_core::Device::Cpu).unwrap();
    let want = candle_core::safetensors::load(&case, &candle_core::Device::Cpu).unwrap();
    let e = common::max_abs_diff(&got["out"], &want["out_convnext"]);
    assert!(e <= 1e-4, "forward differs from PyTorch by {e}");

    let mut bad: Vec<&str> = args.to_vec();
    bad.extend_from_slice(&["--dim", "32"]);
    let err = fails(&ddpm(&bad, tmp.path()));
    assert!(
        err.contains("init_conv.weight"),
        "should name the first mismatching tensor: {err}"
    );
}

#[test]
fn a_time_limit_ends_training_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut args = vec!["train"];
    args.extend_from_slice(TINY);
    let run_s = run.to_str().unwrap();
    args.extend_from_slice(&["--steps", "100000", "--time-limit", "0.001s"]);
    args.extend_from_slice(&["--run-dir", run_s]);
    let out = ddpm(&args, tmp.path());
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    // Stopped short of its steps, it says how to go on.
    assert!(
        err.contains("time limit reached at step ")
            && err.contains(" of 100000: run saved in ")
            && err.contains(&format!("continue with `ddpm-lab train --resume {run_s}`")),
        "{err}"
    );
    // Training on to the stop step is not a time limit.
    let mut args = vec!["train", "--resume", run_s, "--steps"];
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    let stop = (latest.trim()["step-".len()..].parse::<usize>().unwrap() + 1).to_string();
    args.push(&stop);
    let out = ddpm(&args, tmp.path());
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("done at step {stop}; run saved in")),
        "{err}"
    );
}

#[test]
fn runs_lists_the_runs_for_people_and_scripts() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runs");
    let root_s = root.to_str().unwrap();
    // A folder named that is not there, or is a file, is said as such (a typo is not an
    // empty folder); an empty folder has no runs.
    let err = fails(&ddpm(&["runs", "--runs-dir", root_s], tmp.path()));
    assert!(err.contains("does not exist"), "{err}");
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    let err = fails(&ddpm(
        &["runs", "--runs-dir", file.to_str().unwrap()],
        tmp.path(),
    ));
    assert!(err.contains("is not a folder"), "{err}");
    std::fs::create_dir(&root).unwrap();
    let empty = ok(&ddpm(&["runs", "--runs-dir", root_s], tmp.path()));
    assert_eq!(empty.trim(), format!("no runs in {root_s}"));
    for (name, schedule) in [("a-linear", "linear"), ("b-cosine", "cosine")] {
        let dir = root.join(name);
        let mut args = vec!["train"];
        args.extend_from_slice(TINY);
        args.extend_from_slice(&["--steps", "3", "--schedule", schedule]);
        args.extend_from_slice(&["--run-dir", dir.to_str().unwrap()]);
        ok(&ddpm(&args, tmp.path()));
    }
    // A preview score, as the lab writes it.
    let q = r#"{"step":3,"quality":{"n":64,"frechet":41.5,"recognised":0.52,"class_fractions":[],"mean_confidence":0.7}}"#;
    std::fs::write(root.join("b-cosine/quality.jsonl"), format!("{q}\n")).unwrap();
    let table = ok(&ddpm(&["runs", "--runs-dir", root_s], tmp.path()));
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name}:\n{table}"))
            .to_string()
    };
    for (name, schedule) in [("a-linear", "linear"), ("b-cosine", "cosine")] {
        let r = row(name);
        assert!(
            r.contains(schedule) && r.contains("3/3") && r.contains("shapes"),
            "{r}"
        );
    }
    assert!(row("b-cosine").contains("52% (step 3)"), "{table}");
    assert!(row("a-linear").contains("—"), "no score: {table}");
    // One object per line, each run's.
    let lines = ok(&ddpm(&["runs", "--runs-dir", root_s, "--json"], tmp.path()));
    let runs: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 2, "{lines}");
    let cosine = runs.iter().find(|r| r["name"] == "b-cosine").unwrap();
    assert_eq!(cosine["schedule"], "cosine");
    assert_eq!(
        (cosine["step"].as_u64(), cosine["steps"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(cosine["last_step"], 3);
    assert!(
        cosine["loss"].as_f64().is_some_and(f64::is_finite),
        "{cosine}"
    );
    assert_eq!(cosine["score"]["recognised"], 0.52);
    assert_eq!(cosine["training"], false);
    // `--dim 4` makes a UNet no `--model` names; its config says what it is.
    assert!(cosine["model_preset"].is_null(), "{cosine}");
    assert_eq!(cosine["model_config"]["dim"], 4, "{cosine}");
    let linear = runs.iter().find(|r| r["name"] == "a-linear").unwrap();
    assert!(linear["score"].is_null(), "{linear}");
}

#[test]
fn schedules_json_has_every_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(&ddpm(
        &["schedules", "--timesteps", "50", "--json"],
        tmp.path(),
    ));
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    for s in ["linear", "quadratic", "cosine", "sigmoid"] {
        for k in ["betas", "alphas_cumprod", "posterior_variance", "snr"] {
            assert_eq!(j[s][k].as_array().unwrap().len(), 50, "{s}.{k}");
        }
    }
}

#[test]
fn check_device_compares_the_gpu_route_with_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // On the CPU the checked side takes the GPU route (ops::device_conv): its gradients must
    // match the CPU kernels'.
    let small = [
        "--dim",
        "8",
        "--dim-mults",
        "1,2",
        "--size",
        "16",
        "--batch",
        "2",
    ];
    let args = [&["check-device", "--device", "cpu", "--json"][..], &small].concat();
    let out = ok(&ddpm(&args, d));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["input"], serde_json::json!([2, 1, 16, 16]), "{v}");
    assert_eq!(v["device"], "cpu", "named as --device names it: {v}");
    assert!(v["parameters"].as_u64().unwrap() > 50, "{v}");
    assert!(v["output_error"].as_f64().unwrap() < 1e-4, "{v}");
    assert!(v["worst_gradient"][1].as_f64().unwrap() < 1e-3, "{v}");
    assert!(v["worst_optimizer_step"][1].as_f64().unwrap() < 1e-4, "{v}");
    assert!(v["worst_ema_update"][1].as_f64().unwrap() < 1e-5, "{v}");
    // The plain report names the device and the worst parameter.
    let args = [&["check-device", "--device", "cpu"][..], &small].concat();
    let out = ok(&ddpm(&args, d));
    assert!(
        out.contains("checked cpu against the CPU")
            && out.contains("worst")
            && out.contains("EMA update"),
        "{out}"
    );
    // A size the UNet cannot halve, and an empty batch: one clear error each.
    let err = fails(&ddpm(
        &["check-device", "--device", "cpu", "--size", "15"],
        d,
    ));
    assert!(err.contains("15"), "{err}");
    let err = fails(&ddpm(
        &["check-device", "--device", "cpu", "--batch", "0"],
        d,
    ));
    assert!(err.contains("batch"), "{err}");
}

/// A run trained on a folder that moved trains on from its new place: `--dataset` with
/// `--resume` names it (checked to fit), and the run names it from then on.
#[test]
fn a_run_whose_data_folder_moved_resumes_from_its_new_place() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let old = d.join("imgs");
    for class in ["a", "b"] {
        std::fs::create_dir_all(old.join(class)).unwrap();
        for i in 0..4u8 {
            let img = image::GrayImage::from_fn(28, 28, |x, y| {
                image::Luma([(x as u8 * 9).wrapping_add(y as u8 * i)])
            });
            img.save(old.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    let mut args = vec!["train", "--dataset", old.to_str().unwrap()];
    args.extend_from_slice(&["--dim", "4", "--dim-mults", "1,2", "--batch-size", "4"]);
    args.extend_from_slice(&["--timesteps", "10", "--steps", "2", "--run-dir", run_s]);
    ok(&ddpm(&args, d));
    let new = d.join("imgs-moved");
    std::fs::rename(&old, &new).unwrap();
    let err = fails(&ddpm(&["train", "--resume", run_s, "--steps", "4"], d));
    assert!(
        err.contains(&format!(
            "the run was trained on {}, which is not there any more: --dataset PATH trains it on that data where it is now",
            old.display()
        )),
        "{err}"
    );
    let resumed = ddpm(
        &[
            "train",
            "--resume",
            run_s,
            "--steps",
            "4",
            "--dataset",
            new.to_str().unwrap(),
        ],
        d,
    );
    ok(&resumed);
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        said.contains("trains on") && said.contains("imgs-moved now"),
        "{said}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["dataset"], new.to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(run.join("latest")).unwrap().trim(),
        "step-000004"
    );
}

/// A damaged newest checkpoint is not the end of a run: resuming or sampling it names the
/// earlier checkpoint, and that one goes on.
#[test]
fn a_damaged_checkpoint_names_the_earlier_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    let mut args = vec!["train"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&[
        "--steps",
        "6",
        "--checkpoint-every",
        "3",
        "--run-dir",
        run_s,
    ]);
    ok(&ddpm(&args, d));
    let newest = run.join("checkpoints/step-000006/model.safetensors");
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let earlier = run.join("checkpoints/step-000003");
    let hint = format!(
        "another checkpoint of the run may be whole: {} (train goes on from it with --resume, sample and eval draw from it with --checkpoint)",
        earlier.display()
    );
    let err = fails(&ddpm(&["train", "--resume", run_s, "--steps", "9"], d));
    assert!(err.contains(&hint), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let png = d.join("s.png");
    let sample = |from: &str| {
        ddpm(
            &[
                "sample",
                "--checkpoint",
                from,
                "--n",
                "1",
                "--out",
                png.to_str().unwrap(),
            ],
            d,
        )
    };
    let err = fails(&sample(run_s));
    assert!(err.contains(&hint), "{err}");
    ok(&sample(earlier.to_str().unwrap()));
    ok(&ddpm(
        &[
            "train",
            "--resume",
            earlier.to_str().unwrap(),
            "--steps",
            "9",
        ],
        d,
    ));
}

/// `--name` puts a new run under the runs directory by that name; a path is refused.
#[test]
fn a_named_run_goes_under_the_runs_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let train = |name: &str| {
        ddpm(
            &[
                "train",
                "--dataset",
                "shapes",
                "--model",
                "tiny",
                "--timesteps",
                "10",
                "--batch-size",
                "4",
                "--steps",
                "1",
                "--name",
                name,
            ],
            tmp.path(),
        )
    };
    ok(&train("lr-sweep-1"));
    let run = tmp.path().join("lr-sweep-1");
    assert!(run.join("checkpoints/step-000001").is_dir());
    let err = fails(&train("lr-sweep-1"));
    assert!(err.contains("lr-sweep-1"), "a run there is refused: {err}");
    // Before the data is loaded: offline, the default set's download would fail first.
    let err = fails(&ddpm(
        &["train", "--name", "lr-sweep-1", "--steps", "1"],
        tmp.path(),
    ));
    assert!(err.contains("already holds a run"), "{err}");
    let err = fails(&train("../elsewhere"));
    assert!(err.contains("--name takes a plain folder name"), "{err}");
}
