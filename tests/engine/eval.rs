//! Sample quality: the shipped classifier against its stated accuracy, the scorer on real
//! images, and `ddpm-lab eval` as a user runs it (a tiny run, any score; bad input).

use crate::common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use common::ddpm;
use ddpm_lab::data::{load_dataset, DatasetSpec, LoadOptions};
use ddpm_lab::eval::{self, classifier, Classifier};

fn fashion() -> Option<(DatasetSpec, ddpm_lab::data::Dataset)> {
    let dir = common::shared("data/fashion-mnist")?;
    let spec = DatasetSpec::Path(dir);
    let ds = load_dataset(&spec, &LoadOptions::default(), &mut |_| {}).unwrap();
    Some((spec, ds))
}

#[test]
fn shipped_classifier_reaches_its_stated_accuracy() {
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/classifier/fashion_mnist.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let stated = card["test_accuracy"].as_f64().unwrap();
    assert!(stated > 0.85, "the card states {stated}");
    let model = Classifier::fashion_mnist(&Device::Cpu).unwrap();
    let Some((_, ds)) = fashion() else { return };
    let test = ds.test.as_ref().unwrap();
    assert_eq!(Some(test.len() as u64), card["test_images"].as_u64());
    let acc = classifier::accuracy(&model, test).unwrap();
    assert!(
        (acc - stated).abs() < 0.002,
        "accuracy {acc} vs stated {stated}"
    );
}

#[test]
fn real_images_score_as_real() {
    let Some((spec, ds)) = fashion() else { return };
    let scorer = eval::scorer_for(&spec, &ds.train).unwrap();
    let test = ds.test.as_ref().unwrap();
    let views: Vec<&[u8]> = (0..1000).map(|i| test.pixels(i)).collect();
    let real = scorer.score_pixels(&views).unwrap();
    assert!(real.recognised > 0.7, "{real:?}");
    let (lo, hi) = real.class_range();
    assert!(
        lo > 0.04 && hi < 0.16,
        "every class between 4% and 16%: {real:?}"
    );
    // The same images in another order score the same.
    let mut rev = views.clone();
    rev.reverse();
    let again = scorer.score_pixels(&rev).unwrap();
    assert!((again.frechet.unwrap() - real.frechet.unwrap()).abs() < 1e-6 * real.frechet.unwrap());
    assert_eq!(again.recognised, real.recognised);
    // Blank images are far from real ones and recognised as one class at most.
    let blank = vec![0u8; 784];
    let blanks: Vec<&[u8]> = (0..100).map(|_| blank.as_slice()).collect();
    let b = scorer.score_pixels(&blanks).unwrap();
    assert!(
        b.frechet.unwrap() > 10.0 * real.frechet.unwrap(),
        "{b:?} vs {real:?}"
    );
    assert_eq!(
        b.class_range().1,
        1.0,
        "all blank images get the same class"
    );
    // Too few images for a Fréchet distance: reported as none, not as a number.
    assert!(scorer.score_pixels(&views[..10]).unwrap().frechet.is_none());
    assert!(scorer.score_pixels(&[]).is_err());
}

#[test]
fn other_datasets_have_no_classifier() {
    for spec in [
        DatasetSpec::Shapes,
        DatasetSpec::Cifar10,
        DatasetSpec::Mnist,
    ] {
        let err = eval::classifier_for(&spec).unwrap_err().to_string();
        assert!(err.contains("no quality classifier"), "{err}");
    }
    assert!(eval::classifier_for(&DatasetSpec::FashionMnist).is_ok());
}

/// A folder whose path does not say Fashion-MNIST is taken for it by its images: real ones
/// (copied under another name) are scored, patterned ones with the same shape are refused.
#[test]
fn a_folder_is_taken_for_fashion_mnist_by_its_images_where_its_path_does_not_say() {
    let tmp = tempfile::tempdir().unwrap();
    let load = |dir: &Path| {
        let spec = DatasetSpec::Path(dir.to_path_buf());
        let ds = load_dataset(&spec, &LoadOptions::default(), &mut |_| {}).unwrap();
        (spec, ds)
    };
    let other = fake_idx(tmp.path(), "mydata-patterns");
    let (spec, ds) = load(&other);
    let err = eval::scorer_for(&spec, &ds.train)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("do not look like Fashion-MNIST"), "{err}");
    // The same folder under a name that says it is taken at its word.
    let named = tmp.path().join("fashion-named");
    std::fs::rename(&other, &named).unwrap();
    let (spec, ds) = load(&named);
    assert!(eval::scorer_for(&spec, &ds.train).is_ok());
    let Some(real) = common::shared("data/fashion-mnist") else {
        return;
    };
    let copy = tmp.path().join("mydata");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        std::fs::copy(real.join(f), copy.join(f)).unwrap();
    }
    let (spec, ds) = load(&copy);
    assert!(eval::scorer_for(&spec, &ds.train).is_ok());
}

/// A small Fashion-MNIST-shaped folder (grey 28×28, ten labels) made here, so the test needs no
/// download: `eval` picks the classifier by the folder's name.
fn fake_fashion(root: &Path) -> PathBuf {
    fake_idx(root, "fashion-mini")
}

/// Grey 28×28 IDX images of a pattern, labelled 0–9 in turn, in folder `name` under `root`.
fn fake_idx(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let n = 80u32;
    let pixels: Vec<u8> = (0..n as usize * 784)
        .map(|i| ((i * 37) % 256) as u8)
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for split in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte")),
            common::idx(2051, &[n, 28, 28], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{split}-labels-idx1-ubyte")),
            common::idx(2049, &[n], &labels),
        )
        .unwrap();
    }
    dir
}

#[test]
fn eval_cli_scores_a_tiny_run_and_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fake_fashion(tmp.path());
    let data_s = data.to_str().unwrap();
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let out = ddpm(
        &[
            "train",
            "--dataset",
            data_s,
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
            run_s,
        ],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = ddpm(
        &[
            "eval",
            "--checkpoint",
            run_s,
            "--n",
            "70",
            "--sampler",
            "ddim",
            "--steps",
            "2",
            "--json",
        ],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["n"], 70);
    assert_eq!(j["samples"]["n"], 70);
    assert!(j["samples"]["frechet"].as_f64().unwrap() >= 0.0);
    assert_eq!(j["real"]["n"], 70, "as many real images as samples");
    let fractions = j["samples"]["class_fractions"].as_array().unwrap();
    assert_eq!(fractions.len(), 10);
    let sum: f64 = fractions.iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-9);
    assert!(j["frechet_ratio"].as_f64().is_some());
    // What the samples and the baseline depend on is said (the batch size: samples after the
    // first batch differ with it): the batch drawn, all 70 at once under the default 250.
    assert_eq!(
        (j["batch_size"].as_u64(), j["real_split"].as_str()),
        (Some(70), Some("test"))
    );
    // Kept with the run.
    let kept = run.join("eval.jsonl");
    assert_eq!(j["kept_in"], kept.to_str().unwrap());

    // The table names the classes and the real baseline.
    let out = ddpm(
        &[
            "eval",
            "--checkpoint",
            run_s,
            "--n",
            "4",
            "--sampler",
            "ddim",
            "--steps",
            "2",
        ],
        tmp.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("recognised") && text.contains("real"),
        "{text}"
    );
    assert!(
        text.contains(&format!("kept in {}", kept.display())),
        "{text}"
    );
    // Both evaluations are kept; `runs` lists the larger of the step's (70 images, not 4).
    assert_eq!(std::fs::read_to_string(&kept).unwrap().lines().count(), 2);
    let out = ddpm(
        &["runs", "--runs-dir", tmp.path().to_str().unwrap(), "--json"],
        tmp.path(),
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (listed["name"].as_str(), listed["eval"]["n"].as_u64()),
        (Some("run"), Some(70))
    );
    assert_eq!(listed["eval"]["step"], 2);
    // The weights evaluated, to sample them.
    assert_eq!(
        listed["eval"]["checkpoint"],
        run.join("checkpoints/step-000002").display().to_string()
    );
    let kept_line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&kept)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            kept_line["batch_size"].as_u64(),
            kept_line["real_split"].as_str()
        ),
        (Some(4), Some("test")),
        "the last eval's 4 images, drawn in one batch"
    );

    // Data without a test split: the baseline is the training split's, and the table says so.
    let train_only = fake_idx(tmp.path(), "fashion-train-only");
    for f in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::remove_file(train_only.join(f)).unwrap();
    }
    let out = ddpm(
        &[
            "eval",
            "--checkpoint",
            run_s,
            "--n",
            "4",
            "--sampler",
            "ddim",
            "--steps",
            "2",
            "--dataset",
            train_only.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("real: training images ("),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let refuse = |args: &[&str], want: &str| {
        let out = ddpm(args, tmp.path());
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    };
    refuse(
        &["eval", "--checkpoint", run_s, "--n", "0"],
        "--n must be at least 1",
    );
    refuse(&["eval", "--checkpoint", run_s, "--n", "100000"], "at most");
    refuse(
        &[
            "eval",
            "--checkpoint",
            run_s,
            "--eta",
            "nan",
            "--sampler",
            "ddim",
        ],
        "--eta",
    );
    refuse(
        &["eval", "--checkpoint", run_s, "--dataset", "shapes"],
        "no quality classifier",
    );
    // A grid that cannot be written is refused before sampling: nothing is scored or kept.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = tmp.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        // As root a read-only folder takes files anyway: /sys, which takes none, stands in.
        let target = if std::fs::File::create(ro.join("t")).is_err() {
            ro.join("g.png")
        } else {
            PathBuf::from("/sys/ddpm-lab-g.png")
        };
        if target.parent().unwrap().is_dir() {
            let before = std::fs::read_to_string(&kept).unwrap().lines().count();
            refuse(
                &[
                    "eval",
                    "--checkpoint",
                    run_s,
                    "--n",
                    "4",
                    "--out",
                    target.to_str().unwrap(),
                ],
                &format!("cannot write {}", target.display()),
            );
            let after = std::fs::read_to_string(&kept).unwrap().lines().count();
            assert_eq!(before, after, "nothing was scored");
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A run without weights.
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::copy(run.join("config.json"), bare.join("config.json")).unwrap();
    refuse(
        &["eval", "--checkpoint", bare.to_str().unwrap()],
        "has no checkpoint yet (training stopped before its first one)",
    );
    refuse(
        &[
            "eval",
            "--checkpoint",
            tmp.path().join("nope").to_str().unwrap(),
        ],
        "does not exist",
    );
}

#[test]
fn preset_quick_and_time_limit_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fake_fashion(tmp.path());
    let run = tmp.path().join("quick");
    // The quick preset at a 1-second budget stops early, with a checkpoint.
    let out = ddpm(
        &[
            "train",
            "--preset",
            "quick",
            "--dataset",
            data.to_str().unwrap(),
            "--batch-size",
            "2",
            "--time-limit",
            "1s",
            "--run-dir",
            run.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("time limit reached"), "{err}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["objective"], "v");
    assert_eq!(cfg["model"]["block"], "resnet");
    assert_eq!(cfg["recommended_sampler"]["kind"], "ddim");
    let step = ddpm_lab::store::RunDir::open(&run)
        .unwrap()
        .require_checkpoint()
        .unwrap()
        .state
        .step;
    assert!(
        (1..ddpm_lab::presets::QUICK_STEPS).contains(&step),
        "stopped by the budget at step {step}"
    );
    // `--model` names the lab's model sizes.
    let out = ddpm(
        &["train", "--model", "huge", "--dataset", "shapes"],
        tmp.path(),
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("tiny, small, quick, blog, current, current-sc or lucidrains"));
    let out = ddpm(
        &["train", "--time-limit", "soon", "--dataset", "shapes"],
        tmp.path(),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
}

/// A run trained on a folder of images of several sizes (read at `--image-size`) is scored
/// against that folder read at the run's size: `eval` has no `--image-size`, and the folder
/// read as it is would be refused for its mixed sizes.
#[test]
fn eval_reads_a_mixed_size_folder_at_the_runs_size() {
    // Real garments (eval refuses images its classifier does not take for Fashion-MNIST).
    let Some((_, real)) = fashion() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("garments");
    let train = &real.train;
    for c in 0..10usize {
        // Class folders in label order (`0-T-shirt-top`, …).
        let d = data.join(format!(
            "{c}-{}",
            real.label_name(c as u32).replace('/', "-")
        ));
        std::fs::create_dir_all(&d).unwrap();
        let of_class = (0..train.len()).filter(|&i| train.labels[i] as usize == c);
        for (k, i) in of_class.take(8).enumerate() {
            let img = image::GrayImage::from_raw(28, 28, train.image(i).pixels).unwrap();
            // One image of another size among the 28×28 ones.
            let img = if c == 0 && k == 0 {
                image::imageops::resize(&img, 32, 32, image::imageops::FilterType::Triangle)
            } else {
                img
            };
            img.save(d.join(format!("{k}.png"))).unwrap();
        }
    }
    let (data_s, run) = (data.to_str().unwrap(), tmp.path().join("run"));
    let run_s = run.to_str().unwrap();
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(ddpm(
        &[
            "train",
            "--dataset",
            data_s,
            "--image-size",
            "28",
            "--dim",
            "4",
            "--dim-mults",
            "1,2",
            "--batch-size",
            "4",
            "--timesteps",
            "10",
            "--steps",
            "1",
            "--run-dir",
            run_s,
        ],
        tmp.path(),
    ));
    ok(ddpm(
        &[
            "eval",
            "--checkpoint",
            run_s,
            "--n",
            "4",
            "--sampler",
            "ddim",
            "--steps",
            "2",
        ],
        tmp.path(),
    ));
}
