//! `scripts/gpu-check.sh`, the one prepared run on the GPU machine, run end to end with the CPU
//! as its device on tiny sizes: every step it can take here runs and reports, so a visit to the
//! GPU is not spent on a broken script.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ddpm-lab");

/// Runs `scripts/gpu-check.sh` into `out` with the CPU as its device, no TF32 runs and
/// `python3` (PyTorch is not needed: its steps are recorded as missing), plus `env`; the
/// report it wrote.
fn run_script(out: &std::path::Path, env: &[(&str, &str)]) -> serde_json::Value {
    let status = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-check.sh"))
        .arg(out)
        .env("DEVICE", "cpu")
        .env("TF32", "0")
        .env("PYTHON", "python3")
        .envs(env.iter().copied())
        .status()
        .expect("run bash");
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(out.join("gpu-check.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// [`run_script`] with the stand-in binary `stand_in` (no shared folder beside it: no fixtures,
/// the built-in dataset), a few seconds of training, tiny benchmarks and none of the optional
/// steps, plus `env`.
fn run_stand_in(
    out: &std::path::Path,
    stand_in: &std::path::Path,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let shared = stand_in.parent().unwrap().to_str().unwrap();
    let quick = [
        ("DDPM_LAB", stand_in.to_str().unwrap()),
        ("SHARED", shared),
        ("TRAIN_SECONDS", "3"),
        (
            "TRAIN_ARGS",
            "--dim 8 --dim-mults 1,2 --batch-size 4 --timesteps 10",
        ),
        (
            "BENCH_ARGS",
            "--config tiny --batch-size 2 --forward-batch 2 --sample-batch 1 --sample-steps 3",
        ),
        ("BENCH_STOCK", "0"),
        ("CONV_ALGOS", ""),
        ("CUDA_AB", ""),
        ("BACKWARD_AB", "0"),
        ("NSYS", "0"),
        ("NCU", "0"),
    ];
    let all: Vec<(&str, &str)> = quick.iter().chain(env).copied().collect();
    run_script(out, &all)
}

/// Writes the script `text` to `path`, executable.
fn write_executable(path: &std::path::Path, text: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_gpu_check_script_runs_every_step_on_the_cpu() {
    let Some(_fixtures) =
        crate::common::shared_with("fixtures", &["unet_convnext_init.safetensors"])
    else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    // A stand-in for Nsight Systems: `profile` runs the command after its options and leaves a
    // report file, `stats` prints a summary (checks how the script calls them).
    let tools = tempfile::tempdir().unwrap();
    let nsys = tools.path().join("nsys");
    write_executable(
        &nsys,
        r#"#!/usr/bin/env bash
case "$1" in
  profile)
    shift; o=
    while [ "${1#-}" != "$1" ]; do [ "$1" = -o ] && o=$2; shift 2; done
    "$@" && echo report > "$o.nsys-rep" ;;
  stats)
    for a in "$@"; do case "$a" in *.nsys-rep) [ -f "$a" ] || exit 1 ;; esac; done
    echo "Time (%),Total Time (ns),Instances,Name"; echo "60.0,1200,$#,fake_kernel" ;;
  *) exit 2 ;;
esac
"#,
    );
    // And for Nsight Compute: runs the command after its options (the training step only) and
    // prints --csv rows of kernel times as ncu does, in two units.
    let ncu = tools.path().join("ncu");
    write_executable(
        &ncu,
        r#"#!/usr/bin/env bash
while [ "${1#-}" != "$1" ]; do case "$1" in --csv) shift ;; *) shift 2 ;; esac; done
case " $* " in *" --only train "*) ;; *) exit 3 ;; esac
"$@" >/dev/null || exit 1
echo '==PROF== Disconnected'
echo '"ID","Kernel Name","Metric Name","Metric Unit","Metric Value"'
echo '"0","im2col_f32","gpu__time_duration.sum","usecond","1,500.00"'
echo '"1","group_norm_fwd","gpu__time_duration.sum","nsecond","1000"'
echo '"2","im2col_f32","gpu__time_duration.sum","usecond","500.00"'
"#,
    );
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let report = run_script(
        out.path(),
        &[
            ("DDPM_LAB", BIN),
            ("TRAIN_SECONDS", "8"),
            (
                "TRAIN_ARGS",
                "--dim 8 --dim-mults 1,2 --batch-size 8 --timesteps 10",
            ),
            (
                "BENCH_ARGS",
                "--config tiny --batch-size 4 --forward-batch 4 --sample-batch 2 --sample-steps 5",
            ),
            ("KERNEL_AB", "bias"),
            ("CUDA_AB", "stream=per-thread"),
            ("CHECK_LARGE_BATCH", "6"),
            ("CONV_ALGOS", "implicit auto cudnn"),
            ("PATH", &path),
        ],
    );
    let steps = &report["steps"];
    let ok = |name: &str| steps[name]["ok"].as_bool() == Some(true);
    // The smoke run trained and checkpointed (its loss need not fall in 8 s of a tiny model).
    assert!(
        steps["train_smoke"]["steps"].as_u64().unwrap_or(0) >= 4,
        "{}",
        steps["train_smoke"]
    );
    for name in [
        "binary",
        "parity_forward_case",
        "parity_q_sample_case",
        "sample_ddim_device_vs_cpu",
        "sample_ddpm_device_vs_cpu",
        "resume_cpu",
        "sample_after_cpu",
        "bench",
        "bench_stock",
        "bench_without_bias",
        "bench_cuda_stream_per_thread",
        "check_device_conv_implicit",
        "bench_conv_implicit",
        "check_device_conv_auto",
        "bench_conv_auto",
        "check_device_conv_cudnn",
        "bench_conv_cudnn",
        "nsys_train",
        "ncu_train",
        "ncu_train_conv_algo",
        "check_device",
        "check_device_current",
    ] {
        assert!(
            ok(name),
            "{name} failed: {}\n(train: {})",
            steps[name],
            steps["train_smoke"]
        );
    }
    for sampler in ["ddim", "ddpm"] {
        let s = &steps[format!("sample_{sampler}_device_vs_cpu")];
        assert_eq!(s["same_images"], true, "{s}");
        assert_eq!(
            s["max_level_diff"], 0,
            "the same device gives the same grid: {s}"
        );
        assert!(out
            .path()
            .join(format!("sample_{sampler}_cpu.png"))
            .is_file());
    }
    // The implicit conv against im2col: both ratios, from training and forward runs only.
    let gain = &report["conv_algo_gain"]["implicit"];
    assert!(
        gain["train_images_per_s"].as_f64().is_some_and(|r| r > 0.0)
            && gain["forward_images_per_s"]
                .as_f64()
                .is_some_and(|r| r > 0.0),
        "{report}"
    );
    // `auto` and `cudnn` run the whole benchmark, sampling too (the others training and
    // forward only), and are set against PyTorch's (no PyTorch here: no ratios).
    for a in ["auto", "cudnn"] {
        let bench = &steps[format!("bench_conv_{a}")];
        assert!(
            bench["result"]["sample_seconds"].as_f64().is_some(),
            "{bench}"
        );
        assert!(report["conv_algo_over_pytorch"][a].is_object(), "{report}");
    }
    assert!(report["conv_algo_over_pytorch"].get("implicit").is_none());
    // The CPU has no cuDNN to report, nor any of its algorithms.
    assert_eq!(report["cudnn"], serde_json::Value::Null, "{report}");
    assert_eq!(report["cudnn_algos"], serde_json::json!({}), "{report}");
    assert_eq!(
        steps["bench_conv_cudnn"]["result"]["cudnn_algos"],
        serde_json::json!([])
    );
    assert_eq!(
        steps["bench_conv_implicit"]["result"]["sample_seconds"],
        serde_json::Value::Null
    );
    // `auto` on the CPU times nothing (no CUDA conv): an empty table, reported as such.
    assert_eq!(
        steps["bench_conv_auto"]["result"]["conv_algo"],
        serde_json::Value::Null
    );
    assert_eq!(report["conv_tuning"], serde_json::json!({}), "{report}");
    // The host's share of the forward pass (on the CPU the host does all the work: near 1,
    // never over); the training step and sampling are not reported.
    let share = report["host_queue_share"]["forward"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(share > 0.5 && share <= 1.0, "{report}");
    assert_eq!(
        report["host_queue_share"].as_object().map(|o| o.len()),
        Some(1),
        "{report}"
    );
    // The ops each workload ran (the bench step's op census), PyTorch eager's beside them.
    let ops = &report["op_counts"];
    for workload in ["train_step", "forward", "sample_step"] {
        let n = ops["ddpm_lab"][workload].as_f64().unwrap_or(0.0);
        assert!(n > 10.0, "{workload}: {report}");
        assert!(
            ops["pytorch_eager_blog_unet"][workload]
                .as_u64()
                .unwrap_or(0)
                > 200
        );
    }
    // The A/B of ddpm-lab's own ops against candle's stock ones, training and forward only.
    assert_eq!(
        steps["bench_stock"]["result"]["sample_seconds"],
        serde_json::Value::Null
    );
    let own_over_stock = &report["own_ops_over_stock_ops"];
    assert!(
        own_over_stock["train_images_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{own_over_stock}"
    );
    let bias_gain = &report["own_kernel_gain"]["bias"];
    assert!(
        bias_gain["train_images_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{bias_gain}"
    );
    // The A/B of a CUDA device setting (read only where a CUDA device opens: here it runs
    // the same bench again), training and forward only.
    // The first check passed, so the run kept ddpm-lab's CUDA setup and never tried without.
    assert_eq!(report["cuda_setup_fallback"], false, "{report}");
    assert!(steps.get("check_device_cuda_setup_undone").is_none());
    let setup_gain = &report["cuda_setup_gain"]["stream=per-thread"];
    assert!(
        setup_gain["forward_images_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    assert_eq!(
        steps["bench_cuda_stream_per_thread"]["result"]["sample_seconds"],
        serde_json::Value::Null
    );
    // The A/B of the releasing backward pass against candle's own: training only.
    let backward_gain = &report["backward_release_gain"];
    assert!(
        backward_gain["train_images_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    assert_eq!(
        steps["bench_backward_plain"]["result"]["forward_seconds"],
        serde_json::Value::Null
    );
    let summaries = steps["nsys_train"]["summaries"]
        .as_str()
        .unwrap_or_default();
    assert!(
        summaries.contains("## cuda_gpu_kern_sum") && summaries.contains("## cuda_api_sum"),
        "{summaries}"
    );
    // ncu's rows summed by kernel, in milliseconds, the slowest first.
    let kernels = &steps["ncu_train"]["kernels"];
    assert_eq!(kernels["launches"], 3, "{kernels}");
    assert!(
        (kernels["gpu_ms"].as_f64().unwrap() - 2.001).abs() < 1e-9,
        "{kernels}"
    );
    assert_eq!(kernels["top"][0][0], "im2col_f32", "{kernels}");
    assert!(
        (kernels["top"][0][1].as_f64().unwrap() - 2.0).abs() < 1e-9,
        "{kernels}"
    );
    assert_eq!(kernels["top"][0][3], 2, "{kernels}");
    assert_eq!(kernels["top"][1][0], "group_norm_fwd", "{kernels}");
    // And by what they are, to set against PyTorch's profile (`ncu_torch_train`).
    let categories = &kernels["categories"];
    assert_eq!(categories["conv data movement"][1], 2, "{kernels}");
    assert_eq!(categories["normalisation"][1], 1, "{kernels}");
    // The gradients on the checked device (the GPU route, here on the CPU) matched the CPU's,
    // at the first check's batch and at CHECK_LARGE_BATCH's.
    assert_eq!(
        steps["check_device"]["result"]["ok"], true,
        "{}",
        steps["check_device"]
    );
    let large = &steps["check_device_large"]["result"];
    assert_eq!(large["ok"], true, "{large}");
    assert_eq!(large["input"][0], 6, "{large}");
    let resumed = steps["resume_cpu"]["steps"].as_array().unwrap();
    assert_eq!(resumed.len(), 2, "{}", steps["resume_cpu"]);
    assert_eq!(
        report["optional_failed"],
        serde_json::json!([]),
        "{}",
        report
    );
    assert!(report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f == "nvidia_smi" || f == "pytorch_bench" || f == "train_smoke"));
}

/// Should the first check fail with ddpm-lab's CUDA setup and pass with it undone, the rest of
/// the visit runs with it undone and the report says so: here with a stand-in binary whose
/// `check-device` fails unless `DDPM_LAB_CUDA_STREAM` is set, which logs what each call saw.
#[test]
fn a_first_check_that_fails_only_with_the_cuda_setup_runs_the_visit_without_it() {
    let out = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("calls.log");
    let stand_in = tools.path().join("ddpm-lab");
    write_executable(
        &stand_in,
        format!(
            r#"#!/usr/bin/env bash
echo "${{DDPM_LAB_CUDA_STREAM:-unset}} ${{DDPM_LAB_CUDA_POOL:-unset}} $1" >> "{log}"
if [ "$1" = check-device ] && [ -z "${{DDPM_LAB_CUDA_STREAM:-}}" ]; then
  echo "gradients differ" >&2; exit 1
fi
exec "{BIN}" "$@"
"#,
            log = log.display()
        ),
    );
    let report = run_stand_in(
        out.path(),
        &stand_in,
        &[("KERNEL_AB", ""), ("CHECK_LARGE_BATCH", "")],
    );
    let steps = &report["steps"];
    assert_eq!(report["cuda_setup_fallback"], true, "{report}");
    assert_eq!(steps["check_device"]["ok"], false, "{report}");
    assert_eq!(
        steps["check_device_cuda_setup_undone"]["ok"], true,
        "{report}"
    );
    // The failed check stays in the report's failures; the one that passed is optional.
    let failed = report["failed"].as_array().unwrap();
    assert!(failed.iter().any(|f| f == "check_device"), "{report}");
    assert_eq!(report["optional_failed"], serde_json::json!([]), "{report}");
    // Every call after the first check saw both settings undone, training and the benchmark
    // too.
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    let first = calls
        .iter()
        .position(|c| c.ends_with(" check-device"))
        .expect("check-device ran");
    assert_eq!(calls[first], "unset unset check-device", "{calls:?}");
    assert!(
        calls[first + 1..]
            .iter()
            .all(|c| c.starts_with("per-thread release ")),
        "{calls:?}"
    );
    for command in ["train", "sample", "bench"] {
        assert!(
            calls.iter().any(|c| c.ends_with(&format!(" {command}"))),
            "{command}: {calls:?}"
        );
    }
}

/// Should the first check fail with or without the CUDA setup, but pass without ddpm-lab's
/// kernels, each kernel is checked alone and the ones that fail alone stay out for the rest of
/// the visit: here with a stand-in binary whose `check-device` fails while `softmax` is on.
#[test]
fn a_first_check_that_fails_with_one_kernel_runs_the_visit_without_it() {
    visit_with_a_faulty_softmax(false);
}

/// The same when only the check at the benchmarks' batch fails (a kernel's path for large
/// sizes): the search runs at that batch.
#[test]
fn a_large_check_that_fails_with_one_kernel_runs_the_visit_without_it() {
    visit_with_a_faulty_softmax(true);
}

/// A visit with a stand-in binary whose `check-device` fails while the `softmax` kernel is on
/// (with `only_large`, only when given `--batch`), logging what each call saw.
fn visit_with_a_faulty_softmax(only_large: bool) {
    let out = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("calls.log");
    let stand_in = tools.path().join("ddpm-lab");
    write_executable(
        &stand_in,
        format!(
            r#"#!/usr/bin/env bash
k=${{DDPM_LAB_CUDA_KERNELS-unset}}
large=0
case " $* " in *" --batch "*) large=1 ;; esac
echo "$k $1 $large" >> "{log}"
on=0
case ",$k," in
  ,unset,) on=1 ;;
  *,-softmax,*) ;;
  *,softmax,*) on=1 ;;
  ,-*) on=1 ;;
esac
if [ "$1" = check-device ] && [ $on = 1 ] && [ {only_large} = 0 -o $large = 1 ]; then
  echo "gradients differ" >&2; exit 1
fi
exec "{BIN}" "$@"
"#,
            log = log.display(),
            only_large = only_large as u8,
        ),
    );
    let report = run_stand_in(
        out.path(),
        &stand_in,
        &[("KERNEL_AB", "bias softmax"), ("CHECK_LARGE_BATCH", "3")],
    );
    let steps = &report["steps"];
    assert_eq!(report["cuda_setup_fallback"], false, "{report}");
    assert_eq!(
        report["kernels_left_out"],
        serde_json::json!(["softmax"]),
        "{report}"
    );
    // The search's steps are named after the check that failed.
    let search = if only_large {
        "check_device_large"
    } else {
        "check_device"
    };
    let step = |name: &str| &steps[format!("{search}_{name}")];
    assert_eq!(step("kernels_none")["ok"], true, "{report}");
    assert_eq!(step("kernel_softmax")["ok"], false, "{report}");
    assert_eq!(step("kernel_gelu")["ok"], true, "{report}");
    // The depthwise conv with a bias is checked with the depthwise kernels it runs; the linear
    // attention's core runs the softmax kernels, off already: it is not checked.
    assert_eq!(step("kernel_depthwise_bias")["ok"], true, "{report}");
    assert!(step("kernel_linear_attention").is_null(), "{report}");
    assert_eq!(step("kernels_left_out")["ok"], true, "{report}");
    // The faults found are recorded, and the check that failed stays a failure.
    let failed = report["failed"].as_array().unwrap();
    let (first, setup_checked) = if only_large {
        ("check_device_large", vec![])
    } else {
        ("check_device", vec!["check_device_cuda_setup_undone"])
    };
    assert!(failed.iter().any(|f| f == first), "{report}");
    assert_eq!(
        failed.iter().any(|f| f == "check_device"),
        !only_large,
        "{report}"
    );
    let optional_failed: Vec<String> = setup_checked
        .into_iter()
        .map(String::from)
        .chain([format!("{search}_kernel_softmax")])
        .collect();
    assert_eq!(
        report["optional_failed"],
        serde_json::json!(optional_failed),
        "{report}"
    );
    // The search ran at the failed check's batch.
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    let large = if only_large { "1" } else { "0" };
    assert!(
        calls.contains(&format!("softmax check-device {large}").as_str()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!("depthwise,depthwise_bias check-device {large}").as_str()),
        "{calls:?}"
    );
    // After the search, every call ran without softmax; the kernel A/B times bias off beside
    // it, and does not time softmax (it is off already).
    let last_check = calls
        .iter()
        .position(|c| *c == format!("-softmax check-device {large}"))
        .expect("the check with softmax left out ran");
    let after = &calls[last_check..];
    assert!(
        after
            .iter()
            .all(|c| c.starts_with("-softmax ") || c.starts_with("-softmax,-bias ")),
        "{calls:?}"
    );
    assert!(after.contains(&"-softmax,-bias bench 0"), "{calls:?}");
    for command in ["train", "sample", "bench"] {
        assert!(
            after.iter().any(|c| *c == format!("-softmax {command} 0")),
            "{command}: {calls:?}"
        );
    }
    assert!(steps.get("bench_without_softmax").is_none(), "{report}");
}

/// `gpu_check.py conv-tuning` sums `bench --json`'s per-shape timings of `auto` per product.
#[test]
fn the_conv_tuning_summary_adds_each_candidates_times_per_product() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench.json");
    let shape = |product: &str, c: u32, hw: u32, times: serde_json::Value, chosen: &str| {
        serde_json::json!({
            "product": product, "n": 128, "c": c, "h": hw, "w": hw, "m": c, "k": 3,
            "stride": 1, "pad": 1, "times_ms": times, "chosen": chosen,
        })
    };
    let doc = serde_json::json!({ "conv_tuning": [
        shape("forward", 56, 28,
              serde_json::json!({"im2col": 2.0, "implicit-m32": 1.0, "implicit-m64": 1.5}),
              "implicit-m32"),
        // A shape without one candidate counts its im2col time for it.
        shape("forward", 112, 7,
              serde_json::json!({"im2col": 0.5, "implicit-m64": 0.75}), "im2col"),
        shape("weight_grad", 56, 28,
              serde_json::json!({"im2col": 3.0, "implicit-m32": 2.0, "implicit-m64": 2.5}),
              "implicit-m32"),
    ]});
    // A shape whose im2col run failed (out of memory, say) counts the kept time for it.
    let mut failed = shape(
        "weight_grad",
        112,
        7,
        serde_json::json!({"implicit-m32": 0.5, "implicit-m64": 0.25}),
        "implicit-m64",
    );
    failed["failed"] = serde_json::json!(["im2col"]);
    let mut doc = doc;
    doc["conv_tuning"].as_array_mut().unwrap().push(failed);
    std::fs::write(&bench, doc.to_string()).unwrap();
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu_check.py"))
        .arg("conv-tuning")
        .arg(&bench)
        .output()
        .expect("run python3");
    assert!(out.status.success(), "{out:?}");
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = serde_json::json!({
        "forward": {
            "shapes": 2,
            "kept": {"im2col": 1, "implicit-m32": 1},
            "failed": {},
            "ms": {"im2col": 2.5, "implicit-m32": 1.5, "implicit-m64": 2.25},
            "kept_ms": 1.5,
        },
        "weight_grad": {
            "shapes": 2,
            "kept": {"implicit-m32": 1, "implicit-m64": 1},
            "failed": {"im2col": 1},
            "ms": {"im2col": 3.25, "implicit-m32": 2.5, "implicit-m64": 2.75},
            "kept_ms": 2.25,
        },
    });
    assert_eq!(got, want);
}

/// A binary carried as `scripts/gpu-pack.sh` packs it (`gpu-bin/ddpm-lab.xz` beside
/// `gpu-bin/BUILT_FROM`) is the one the visit runs, and the report names the commit it was
/// built from; a binary given by `DDPM_LAB` names none. The script runs from a scratch copy of
/// `scripts/` (it finds `gpu-bin/` beside them) with no time to run its steps.
#[test]
fn a_carried_binary_is_unpacked_and_the_report_names_its_commit() {
    let repo = tempfile::tempdir().unwrap();
    let scripts = repo.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    for name in ["gpu-check.sh", "gpu_check.py"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(name),
            scripts.join(name),
        )
        .unwrap();
    }
    let gpu_bin = repo.path().join("gpu-bin");
    std::fs::create_dir_all(&gpu_bin).unwrap();
    // A stand-in binary, xz-compressed as gpu-pack.sh leaves it.
    let stand_in = gpu_bin.join("ddpm-lab");
    write_executable(&stand_in, "#!/bin/sh\necho stand-in 0.0\n");
    let ok = Command::new("xz")
        .arg(&stand_in)
        .status()
        .unwrap()
        .success();
    assert!(ok && gpu_bin.join("ddpm-lab.xz").is_file());
    std::fs::write(gpu_bin.join("BUILT_FROM"), "0123abc+changes\n").unwrap();
    let run = |env: &[(&str, &str)]| -> serde_json::Value {
        let out = repo.path().join("out");
        let status = Command::new("bash")
            .arg(scripts.join("gpu-check.sh"))
            .arg(&out)
            .env("DEVICE", "cpu")
            .env("TF32", "0")
            .env("PYTHON", "python3")
            .env("TOTAL_SECONDS", "0")
            .env_remove("DDPM_LAB")
            .envs(env.iter().copied())
            .status()
            .unwrap();
        assert!(status.success(), "{status:?}");
        serde_json::from_str(&std::fs::read_to_string(out.join("gpu-check.json")).unwrap()).unwrap()
    };
    let report = run(&[]);
    assert_eq!(report["built_from"], "0123abc+changes", "{report}");
    let binary = report["binary"].as_str().unwrap();
    assert!(
        binary.ends_with("/ddpm-lab") && !binary.contains("gpu-bin"),
        "{report}"
    );
    let given = run(&[("DDPM_LAB", BIN)]);
    assert_eq!(given["built_from"], serde_json::Value::Null, "{given}");
    assert_eq!(given["binary"], BIN, "{given}");
}
