//! The fault suite of checkpoints: a crash (a panic at a failpoint, leaving the disk as a killed
//! process would) or a full disk (a failpoint returning ENOSPC) at every step of a checkpoint
//! write, then a resume that must land on a complete checkpoint, bit-exact with an
//! uninterrupted run's weights at that step, and go on to the uninterrupted run's final
//! weights; plus the refusals of what resume cannot trust.
//!
//! A test binary of its own: failpoints are process-wide, so a crash configured here would fire
//! in any other test that checkpoints at the same time in the same process.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use ddpm_lab::model::UnetConfig;
use ddpm_lab::rng::LabRng;
use ddpm_lab::store::{RunDir, CHECKPOINTS_DIR, KEEP_CHECKPOINTS, METRICS_FILE};
use ddpm_lab::train::{var_tensors, BatchSource, ResumeOptions, TrainConfig, Trainer};
use fail::FailScenario;

/// Synthetic images, the same for a given step.
struct Synthetic;

impl BatchSource for Synthetic {
    fn steps_per_epoch(&self) -> usize {
        4
    }
    fn batch(&mut self, step: usize) -> Result<(Tensor, usize)> {
        let x = LabRng::new(20_000 + step as u64)
            .randn(&[4, 1, 8, 8], &Device::Cpu)?
            .tanh()?;
        Ok((x, step / 4))
    }
}

const EVERY: usize = 2;
const LAST: usize = 8;

fn cfg() -> TrainConfig {
    TrainConfig {
        model: UnetConfig::tiny(),
        timesteps: 20,
        batch_size: 4,
        image_size: 8,
        steps: LAST,
        seed: 11,
        ema_decay: Some(0.9),
        ..TrainConfig::default()
    }
}

/// Trains to `to`, checkpointing every [`EVERY`] steps.
fn train_to(t: &mut Trainer, to: usize) -> Result<()> {
    while t.step() < to {
        let (x, e) = Synthetic.batch(t.step())?;
        t.train_step(&x, e)?;
        if t.step().is_multiple_of(EVERY) {
            t.checkpoint()?;
        }
    }
    Ok(())
}

type Weights = HashMap<String, Vec<f32>>;

fn weights(t: &Trainer) -> Weights {
    var_tensors(t.varmap())
        .into_iter()
        .map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

/// The uninterrupted run: weights at every checkpoint step and the loss of every step.
fn reference() -> (HashMap<usize, Weights>, Vec<f64>) {
    let mut t = Trainer::new(cfg(), None).unwrap();
    let mut at = HashMap::new();
    let mut losses = Vec::new();
    while t.step() < LAST {
        let (x, e) = Synthetic.batch(t.step()).unwrap();
        losses.push(t.train_step(&x, e).unwrap().loss);
        if t.step().is_multiple_of(EVERY) {
            at.insert(t.step(), weights(&t));
        }
    }
    (at, losses)
}

/// Every temporary file or folder left anywhere in the run directory.
fn leftovers(run: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in [run.to_path_buf(), run.join(CHECKPOINTS_DIR)] {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') {
                out.push(n);
            }
        }
    }
    out
}

fn step_dirs(run: &Path) -> usize {
    std::fs::read_dir(run.join(CHECKPOINTS_DIR))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("step-"))
        .count()
}

/// Failpoints of one checkpoint write, in the order they are passed, and whether the new
/// checkpoint is complete (the pointer switched) once each is passed.
fn failpoints() -> Vec<(String, bool)> {
    let mut v = Vec::new();
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "ema.safetensors",
    ] {
        v.push((format!("checkpoint-before-file:{f}"), false));
        v.push((format!("checkpoint-before-sync:{f}"), false));
        v.push((format!("checkpoint-after-file:{f}"), false));
    }
    for f in ["config.json", "state.json"] {
        v.push((format!("checkpoint-after-file:{f}"), false));
    }
    v.push(("checkpoint-before-rename:".into(), false));
    v.push(("checkpoint-before-switch:".into(), false));
    v.push(("checkpoint-after-switch:".into(), true));
    v
}

#[test]
fn a_crash_or_a_full_disk_at_any_point_of_a_checkpoint_resumes_exactly() {
    let scenario = FailScenario::setup();
    let (at, losses) = reference();
    let (mut cases, mut crashes, mut exact) = (0, 0, 0);
    for (point, switched) in failpoints() {
        for action in [
            "panic(crash)",
            "return(No space left on device (os error 28))",
        ] {
            cases += 1;
            let tmp = tempfile::tempdir().unwrap();
            let run = tmp.path().join("run");
            let mut t = Trainer::new(cfg(), Some(&run)).unwrap();
            train_to(&mut t, 4).unwrap();
            fail::cfg(&point, action).unwrap();
            let outcome = catch_unwind(AssertUnwindSafe(|| train_to(&mut t, 6)));
            fail::remove(&point);
            match (&outcome, action.starts_with("panic")) {
                (Err(_), true) => crashes += 1,
                (Ok(Err(e)), false) => {
                    assert!(format!("{e:#}").contains("No space left"), "{point}: {e:#}")
                }
                _ => panic!("{point} with {action}: the failpoint was not reached"),
            }
            drop(t);
            let expect = if switched { 6 } else { 4 };
            let mut resumed = Trainer::resume(&run, None, None)
                .unwrap_or_else(|e| panic!("{point} {action}: resume refused: {e:#}"));
            assert_eq!(resumed.step(), expect, "{point} {action}");
            assert!(
                weights(&resumed) == at[&expect],
                "{point} {action}: weights differ from the uninterrupted run at step {expect}"
            );
            train_to(&mut resumed, LAST).unwrap();
            assert!(
                weights(&resumed) == at[&LAST],
                "{point} {action}: the resumed run does not end where the uninterrupted one does"
            );
            exact += 1;
            assert_eq!(leftovers(&run), Vec::<String>::new(), "{point} {action}");
            assert!(step_dirs(&run) <= KEEP_CHECKPOINTS, "{point} {action}");
            let history = RunDir::open(&run).unwrap().read_metrics().unwrap();
            let steps: Vec<usize> = history.iter().map(|s| s.step).collect();
            assert_eq!(steps, (1..=LAST).collect::<Vec<_>>(), "{point} {action}");
            let got: Vec<f64> = history.iter().map(|s| s.loss).collect();
            assert_eq!(got, losses, "{point} {action}: loss history");
        }
    }
    scenario.teardown();
    eprintln!(
        "fault suite: {cases} cases, {crashes} crashes injected, {} full disks, {exact} exact resumes",
        cases - crashes
    );
    assert_eq!(exact, cases);
}

/// A trained run at step 4 with checkpoints at 2 and 4; returns its directory.
fn trained(tmp: &Path) -> std::path::PathBuf {
    let run = tmp.join("run");
    let mut t = Trainer::new(cfg(), Some(&run)).unwrap();
    train_to(&mut t, 4).unwrap();
    run
}

fn refused(run: &Path, opts: ResumeOptions) -> String {
    match Trainer::resume_with(run, opts) {
        Ok(_) => panic!("resume of {} was accepted", run.display()),
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(!msg.contains('\n'), "one line: {msg}");
            msg
        }
    }
}

/// Checks that `--reset-optimizer` resumes `run`, restarting its EMA from the weights.
fn assert_ema_restarts(run: &Path) {
    let t = Trainer::resume_with(
        run,
        ResumeOptions {
            reset_optimizer: true,
            ..ResumeOptions::default()
        },
    )
    .unwrap();
    assert!(
        t.notices().iter().any(|n| n.contains("EMA restarts")),
        "{:?}",
        t.notices()
    );
}

/// Rewrites a checkpoint's state.json without the digests of its files, as checkpoints
/// written before digests were kept have it: the checks a file's contents get on loading
/// (NaN, the model's tensors) are then what finds a bad file, not its digest.
fn as_written_before_digests(ck: &Path) {
    let path = ck.join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(state.as_object_mut().unwrap().remove("digests").is_some());
    std::fs::write(&path, state.to_string()).unwrap();
}

fn latest_dir(run: &Path) -> std::path::PathBuf {
    RunDir::open(run)
        .unwrap()
        .require_checkpoint()
        .unwrap()
        .dir()
        .to_path_buf()
}

#[test]
fn resume_refuses_what_it_cannot_trust() {
    // Failpoints are process-wide: hold the scenario lock so the crash tests do not fire here.
    let _scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();

    // A missing state.json in the newest checkpoint.
    let run = trained(&tmp.path().join("a"));
    std::fs::remove_file(latest_dir(&run).join("state.json")).unwrap();
    assert!(refused(&run, ResumeOptions::default()).contains("state.json is missing"));
    // `train --resume` reads the configuration first: its error names the older checkpoint
    // too.
    let request = ddpm_lab::runs::TrainRequest::Resume {
        dir: run.clone(),
        stop: ddpm_lab::runs::StopAt::Configured,
        device: None,
        time_limit_s: None,
        checkpoint_interval_s: None,
        reset_optimizer: false,
        dataset: None,
        changes: Default::default(),
        branch: None,
    };
    let msg = format!("{:#}", request.base_config().unwrap_err());
    assert!(
        msg.contains("state.json is missing")
            && msg.contains("step-000002 (train goes on from it with --resume"),
        "{msg}"
    );

    // A damaged optimizer state: --reset-optimizer, or the checkpoint before it, whole, which
    // goes on exactly.
    let run = trained(&tmp.path().join("opt"));
    let opt = latest_dir(&run).join("optimizer.safetensors");
    std::fs::write(&opt, b"cut short").unwrap();
    let msg = refused(&run, ResumeOptions::default());
    assert!(
        msg.contains("--reset-optimizer")
            && msg.contains("another checkpoint of the run may be whole: ")
            && msg.contains("step-000002 (train goes on from it with --resume"),
        "{msg}"
    );

    // A NaN in the EMA weights.
    let run = trained(&tmp.path().join("b"));
    let ema = latest_dir(&run).join("ema.safetensors");
    let mut t = candle_core::safetensors::load(&ema, &Device::Cpu).unwrap();
    let (name, first) = t
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let nan = Tensor::full(f32::NAN, first.shape(), &Device::Cpu).unwrap();
    t.insert(name, nan);
    candle_core::safetensors::save(&t, &ema).unwrap();
    // Today's checkpoint knows its file was changed…
    let msg = refused(&run, ResumeOptions::default());
    assert!(
        msg.contains("ema.safetensors") && msg.contains("is not the file its checkpoint wrote"),
        "{msg}"
    );
    // … and one from before digests finds the NaN.
    as_written_before_digests(&latest_dir(&run));
    let msg = refused(&run, ResumeOptions::default());
    assert!(
        msg.contains("ema.safetensors") && msg.contains("NaN"),
        "{msg}"
    );
    // ... which --reset-optimizer accepts, restarting the EMA from the weights.
    assert_ema_restarts(&run);

    // EMA weights that are not the model's (a tensor missing, or one of another shape) are
    // refused as the weights are, naming the file and the checkpoint before it, instead of
    // being saved into every later checkpoint.
    for (case, missing) in [("missing", true), ("misshapen", false)] {
        let run = trained(&tmp.path().join(format!("b-{case}")));
        let ema = latest_dir(&run).join("ema.safetensors");
        let mut t = candle_core::safetensors::load(&ema, &Device::Cpu).unwrap();
        let name = t.keys().min().unwrap().clone();
        if missing {
            t.remove(&name);
        } else {
            t.insert(
                name.clone(),
                Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
            );
        }
        candle_core::safetensors::save(&t, &ema).unwrap();
        as_written_before_digests(&latest_dir(&run));
        let msg = refused(&run, ResumeOptions::default());
        assert!(
            msg.contains("ema.safetensors")
                && msg.contains(&name)
                && msg.contains("EMA weights cannot be restored")
                && msg.contains("step-000002 (train goes on from it with --resume"),
            "{msg}"
        );
        assert_ema_restarts(&run);
    }

    // A state.json of another step than its folder's.
    let run = trained(&tmp.path().join("b-step"));
    let state = latest_dir(&run).join("state.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    v["step"] = serde_json::json!(999);
    std::fs::write(&state, v.to_string()).unwrap();
    let msg = refused(&run, ResumeOptions::default());
    assert!(
        msg.contains("says step 999, but its checkpoint folder is step 4")
            && msg.contains("step-000002"),
        "{msg}"
    );

    // A config without timesteps.
    let run = trained(&tmp.path().join("c"));
    let cfg_file = latest_dir(&run).join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_file).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("timesteps");
    std::fs::write(&cfg_file, v.to_string()).unwrap();
    assert!(refused(&run, ResumeOptions::default()).contains("lacks \"timesteps\""));

    // A pointer to a checkpoint that is gone.
    let run = trained(&tmp.path().join("d"));
    std::fs::remove_dir_all(latest_dir(&run)).unwrap();
    assert!(refused(&run, ResumeOptions::default()).contains("missing"));

    // A run whose first checkpoint never completed.
    let run = tmp.path().join("e").join("run");
    let mut t = Trainer::new(cfg(), Some(&run)).unwrap();
    let (x, e) = Synthetic.batch(0).unwrap();
    t.train_step(&x, e).unwrap();
    drop(t);
    assert!(refused(&run, ResumeOptions::default()).contains("no checkpoint yet"));

    // Two trainers on one run: the second is refused while the first holds it.
    let run = trained(&tmp.path().join("f"));
    let first = Trainer::resume(&run, None, None).unwrap();
    let msg = refused(&run, ResumeOptions::default());
    assert!(msg.contains("being trained by pid"), "{msg}");
    drop(first);
    Trainer::resume(&run, None, None).unwrap();

    // A new run into a directory that holds one is refused (no silent overwrite).
    let run = trained(&tmp.path().join("g"));
    let err = Trainer::new(cfg(), Some(&run)).err().unwrap().to_string();
    assert!(err.contains("already holds a run"), "{err}");

    // Nor into a folder of other files, whose files it would overwrite, nor inside a run; an
    // empty folder is fine.
    let own = tmp.path().join("project");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("notes.txt"), "mine").unwrap();
    let err = format!("{:#}", Trainer::new(cfg(), Some(&own)).err().unwrap());
    assert!(err.contains("folder of other files (notes.txt)"), "{err}");
    std::fs::remove_file(own.join("notes.txt")).unwrap();
    std::fs::write(own.join("config.json"), r#"{"my":"own config"}"#).unwrap();
    let err = format!("{:#}", Trainer::new(cfg(), Some(&own)).err().unwrap());
    assert!(err.contains("no ddpm-lab run's"), "{err}");
    assert_eq!(
        std::fs::read_to_string(own.join("config.json")).unwrap(),
        r#"{"my":"own config"}"#,
        "left as it was"
    );
    let err = format!(
        "{:#}",
        Trainer::new(cfg(), Some(&run.join("checkpoints")))
            .err()
            .unwrap()
    );
    assert!(err.contains("is inside the run"), "{err}");
    std::fs::write(tmp.path().join("a-file"), "").unwrap();
    let err = format!(
        "{:#}",
        Trainer::new(cfg(), Some(&tmp.path().join("a-file")))
            .err()
            .unwrap()
    );
    assert!(err.contains("is a file, not a folder"), "{err}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    Trainer::new(cfg(), Some(&empty)).unwrap();
}

#[test]
fn a_run_whose_newest_checkpoint_is_damaged_is_kept_and_resumes_from_an_older_one() {
    let _scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let run = trained(tmp.path());
    let metrics = || std::fs::read_to_string(run.join(METRICS_FILE)).unwrap();
    let history = metrics();
    let older = run.join(CHECKPOINTS_DIR).join("step-000002");
    assert!(older.is_dir());
    // The newest checkpoint's state is damaged (a disk error, an edit).
    std::fs::write(latest_dir(&run).join("state.json"), "{ not json").unwrap();
    // A new run into that directory is refused, and nothing there changes: not the older
    // checkpoint, not the loss history.
    let err = format!("{:#}", Trainer::new(cfg(), Some(&run)).err().unwrap());
    assert!(
        err.contains("already holds a run whose newest checkpoint cannot be read"),
        "{err}"
    );
    assert!(err.contains("--resume"), "{err}");
    assert!(older.join("state.json").is_file());
    assert_eq!(metrics(), history);
    // Checkpoint folders without a readable `latest` count too.
    std::fs::remove_file(run.join(ddpm_lab::store::LATEST_FILE)).unwrap();
    let err = format!("{:#}", Trainer::new(cfg(), Some(&run)).err().unwrap());
    assert!(err.contains("already holds checkpoints"), "{err}");
    // Resuming the older checkpoint's folder continues the run itself (no run nested in the
    // folder): from step 2, its later lines dropped from the log, new checkpoints in the run.
    let mut t = Trainer::resume_with(&older, ResumeOptions::default()).unwrap();
    assert_eq!(t.step(), 2);
    assert_eq!(metrics().lines().count(), 2);
    // Its first checkpoint keeps the complete one it resumed from as the spare, not the
    // damaged one at a higher step.
    train_to(&mut t, 4).unwrap();
    assert_eq!(checkpoint_names(&run), ["step-000002", "step-000004.1"]);
    train_to(&mut t, 6).unwrap();
    drop(t);
    assert!(!older.join(CHECKPOINTS_DIR).exists(), "nothing nested");
    let resumed = RunDir::open(&run).unwrap().require_checkpoint().unwrap();
    assert_eq!(resumed.state.step, 6);
    assert_eq!(resumed.dir().parent().unwrap(), run.join(CHECKPOINTS_DIR));
    // A checkpoint folder named relative to its run (`cd RUN; --resume checkpoints/step-N`)
    // stands for the run "." itself.
    let rel = Path::new("checkpoints/step-000004.1");
    assert_eq!(ddpm_lab::store::Checkpoint::run_dir_of(rel), Path::new("."));
}

/// The checkpoint folders of `run`, sorted.
fn checkpoint_names(run: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run.join(CHECKPOINTS_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn going_back_to_an_older_checkpoint_drops_the_abandoned_branch_at_the_first_new_checkpoint() {
    let _scenario = FailScenario::setup();
    let (at, _) = reference();
    let tmp = tempfile::tempdir().unwrap();
    let run = trained(tmp.path());
    let metrics = || std::fs::read_to_string(run.join(METRICS_FILE)).unwrap();
    assert_eq!(checkpoint_names(&run), ["step-000002", "step-000004"]);
    // A checkpoint folder that is not there is named as such, with the ones that are.
    let missing = refused(
        &run.join(CHECKPOINTS_DIR).join("step-000003"),
        ResumeOptions::default(),
    );
    assert!(
        missing.ends_with(
            "step-000003 does not exist; the run's checkpoints are step-000002, step-000004"
        ),
        "{missing}"
    );
    // Named as the step is (`step-2`), or as the folder is (`step-000002`).
    let older = run.join(CHECKPOINTS_DIR).join("step-2");
    let mut t = Trainer::resume_with(&older, ResumeOptions::default()).unwrap();
    assert_eq!(t.step(), 2);
    assert_eq!(
        t.notices(),
        ["going back to step 2: the later checkpoint step-000004 is removed at this run's next checkpoint, and the logs and previews after step 2 are dropped now"]
    );
    // Until the new branch has a checkpoint of its own, the later one stays (a crash now
    // loses nothing that was there).
    assert_eq!(checkpoint_names(&run), ["step-000002", "step-000004"]);
    // Its first checkpoint drops it: the spare is step 2, where this branch came from, and
    // a resume of the run continues this branch.
    train_to(&mut t, 4).unwrap();
    assert_eq!(checkpoint_names(&run), ["step-000002", "step-000004.1"]);
    assert!(weights(&t) == at[&4], "the same steps again, bit-exact");
    drop(t);
    let steps = common::json_steps(&metrics());
    assert_eq!(
        steps,
        [1, 2, 3, 4],
        "one history, no step of the abandoned branch"
    );
    let mut t = Trainer::resume(&run, None, None).unwrap();
    assert_eq!(t.step(), 4);
    assert!(t.notices().is_empty(), "{:?}", t.notices());
    train_to(&mut t, 6).unwrap();
    assert_eq!(checkpoint_names(&run), ["step-000004.1", "step-000006"]);
}

/// A run trained to step 4 (checkpoints at 2 and 4), gone back to step 2 and trained to
/// step 5 without a checkpoint yet: the new branch's first checkpoint comes past step 4, the
/// abandoned branch's newest.
fn gone_back_and_past(tmp: &Path) -> (std::path::PathBuf, Trainer) {
    let run = trained(tmp);
    assert_eq!(checkpoint_names(&run), ["step-000002", "step-000004"]);
    let older = run.join(CHECKPOINTS_DIR).join("step-2");
    let mut t = Trainer::resume_with(&older, ResumeOptions::default()).unwrap();
    while t.step() < 5 {
        let (x, e) = Synthetic.batch(t.step()).unwrap();
        t.train_step(&x, e).unwrap();
    }
    (run, t)
}

/// The first checkpoint of `t` fails at failpoint `point`, as if the process died there.
fn killed_at(t: Trainer, point: &str) {
    let mut t = t;
    fail::cfg(point, "return(killed)").unwrap();
    assert!(t.checkpoint().is_err());
    fail::remove(point);
}

#[test]
fn the_abandoned_branch_is_dropped_even_below_the_first_new_checkpoint_and_after_a_crash() {
    let _scenario = FailScenario::setup();
    // Without a crash, the spare is step 2, where the new branch came from.
    let tmp = tempfile::tempdir().unwrap();
    let (run, mut t) = gone_back_and_past(tmp.path());
    t.checkpoint().unwrap();
    assert_eq!(checkpoint_names(&run), ["step-000002", "step-000005"]);
    train_to(&mut t, 6).unwrap();
    assert_eq!(checkpoint_names(&run), ["step-000005", "step-000006"]);

    // The process dies after the new checkpoint is in place, before the old branch is
    // dropped: the run, resumed from its newest, still knows which branch it left.
    let tmp = tempfile::tempdir().unwrap();
    let (run, t) = gone_back_and_past(tmp.path());
    killed_at(t, "checkpoint-after-switch:");
    assert_eq!(
        checkpoint_names(&run),
        ["step-000002", "step-000004", "step-000005"]
    );
    let mut t = Trainer::resume(&run, None, None).unwrap();
    assert_eq!(t.step(), 5);
    train_to(&mut t, 6).unwrap();
    assert_eq!(checkpoint_names(&run), ["step-000005", "step-000006"]);

    // Killed between writing the new branch's first checkpoint and switching to it: the run
    // stays on the branch it went back to (switched to when it went back), never on the one
    // it left, and its log has no gap.
    let tmp = tempfile::tempdir().unwrap();
    let (run, t) = gone_back_and_past(tmp.path());
    killed_at(t, "checkpoint-before-switch:");
    assert_eq!(
        checkpoint_names(&run),
        ["step-000002", "step-000004", "step-000005"]
    );
    let mut t = Trainer::resume(&run, None, None).unwrap();
    assert_eq!(t.step(), 2, "the branch it went back to");
    assert!(
        t.notices()[0].starts_with("continuing from step 2, the run's latest checkpoint: the later checkpoints step-000004, step-000005 (never switched to)"),
        "{:?}",
        t.notices()
    );
    train_to(&mut t, 6).unwrap();
    drop(t);
    assert_eq!(checkpoint_names(&run), ["step-000004.1", "step-000006"]);
    let steps = common::json_steps(&std::fs::read_to_string(run.join(METRICS_FILE)).unwrap());
    assert_eq!(steps, [1, 2, 3, 4, 5, 6], "one history, no gap");
}

#[test]
fn a_run_in_the_flat_layout_still_resumes_and_a_missing_optimizer_needs_the_flag() {
    let _scenario = FailScenario::setup();
    let (at, _) = reference();
    let tmp = tempfile::tempdir().unwrap();
    let run = trained(tmp.path());
    // Rewrite it as runs were written before checkpoints/: every file flat, no pointer.
    let ck = latest_dir(&run);
    for e in std::fs::read_dir(&ck).unwrap().flatten() {
        std::fs::copy(e.path(), run.join(e.file_name())).unwrap();
    }
    std::fs::remove_dir_all(run.join(CHECKPOINTS_DIR)).unwrap();
    std::fs::remove_file(run.join("latest")).unwrap();
    let mut t = Trainer::resume(&run, None, None).unwrap();
    assert_eq!(t.step(), 4);
    assert!(weights(&t) == at[&4]);
    train_to(&mut t, LAST).unwrap();
    assert!(weights(&t) == at[&LAST], "flat → new layout, bit-exact");
    drop(t);

    let flat = tmp.path().join("flat");
    let run2 = trained(&flat);
    let ck = latest_dir(&run2);
    for e in std::fs::read_dir(&ck).unwrap().flatten() {
        std::fs::copy(e.path(), run2.join(e.file_name())).unwrap();
    }
    std::fs::remove_dir_all(run2.join(CHECKPOINTS_DIR)).unwrap();
    std::fs::remove_file(run2.join("latest")).unwrap();
    std::fs::remove_file(run2.join("optimizer.safetensors")).unwrap();
    let msg = refused(&run2, ResumeOptions::default());
    assert!(msg.contains("--reset-optimizer"), "{msg}");
    let t = Trainer::resume_with(
        &run2,
        ResumeOptions {
            reset_optimizer: true,
            ..ResumeOptions::default()
        },
    )
    .unwrap();
    assert!(t.notices().iter().any(|n| n.contains("Adam restarts")));
    drop(t);

    // The same in the checkpoint layout: a deleted optimizer state is refused, then accepted
    // with the flag; sampling never needs it.
    let run3 = trained(&tmp.path().join("new"));
    std::fs::remove_file(latest_dir(&run3).join("optimizer.safetensors")).unwrap();
    let msg = refused(&run3, ResumeOptions::default());
    assert!(msg.contains("--reset-optimizer"), "{msg}");
    ddpm_lab::store::load_checkpoint(&run3, &Device::Cpu, true).unwrap();
    let t = Trainer::resume_with(
        &run3,
        ResumeOptions {
            reset_optimizer: true,
            ..ResumeOptions::default()
        },
    )
    .unwrap();
    assert!(t.notices().iter().any(|n| n.contains("Adam restarts")));
}

#[test]
fn resume_keeps_earlier_metric_lines_byte_for_byte() {
    let _scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let run = trained(tmp.path());
    // Two steps after the checkpoint, then a "crash" (the trainer is dropped).
    let mut t = Trainer::resume(&run, None, None).unwrap();
    for _ in 0..2 {
        let (x, e) = Synthetic.batch(t.step()).unwrap();
        t.train_step(&x, e).unwrap();
    }
    drop(t);
    let before = std::fs::read(run.join(METRICS_FILE)).unwrap();
    let t = Trainer::resume(&run, None, None).unwrap();
    assert_eq!(t.step(), 4);
    let after = std::fs::read(run.join(METRICS_FILE)).unwrap();
    assert!(
        before.starts_with(&after),
        "kept lines are the first bytes, unchanged"
    );
    let text = String::from_utf8(after).unwrap();
    assert_eq!(
        text.lines().count(),
        4,
        "lines after the checkpoint dropped"
    );
}

/// Holding on failed checkpoints (the lab's Train screen), a full disk pauses the run with its
/// weights in memory instead of ending it; once there is room, `c` saves it and the run goes
/// on to its end. A driver that goes away ends it with the error.
#[test]
fn a_full_disk_pauses_a_holding_run_until_a_checkpoint_can_be_written() {
    use ddpm_lab::train::events::{TrainCommand, TrainEvent};
    use std::sync::mpsc::channel;
    use std::time::Duration;
    let _scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let config = TrainConfig {
        checkpoint_every: EVERY,
        ..cfg()
    };
    let mut t = Trainer::new(config, Some(&run)).unwrap();
    t.hold_on_failed_checkpoints();
    let point = "checkpoint-before-file:model.safetensors";
    fail::cfg(point, "return(No space left on device (os error 28))").unwrap();
    let (etx, erx) = channel();
    let (ctx, crx) = channel();
    let worker = std::thread::spawn(move || t.run_loop(&mut Synthetic, &etx, &crx));
    let until = |want: &dyn Fn(&TrainEvent) -> bool| loop {
        let e = erx.recv_timeout(Duration::from_secs(60)).unwrap();
        if want(&e) {
            return e;
        }
    };
    match until(&|e| matches!(e, TrainEvent::CheckpointFailed { .. })) {
        TrainEvent::CheckpointFailed { step, message, .. } => {
            assert_eq!(step, EVERY);
            assert!(message.starts_with("No space left on device"), "{message}");
        }
        _ => unreachable!(),
    }
    until(&|e| matches!(e, TrainEvent::Paused { step } if *step == EVERY));
    // Asked again while the disk is still full: said again, still paused.
    ctx.send(TrainCommand::Checkpoint).unwrap();
    until(&|e| matches!(e, TrainEvent::CheckpointFailed { .. }));
    fail::remove(point);
    ctx.send(TrainCommand::Checkpoint).unwrap();
    until(&|e| matches!(e, TrainEvent::Checkpointed { step, .. } if *step == EVERY));
    ctx.send(TrainCommand::Resume).unwrap();
    until(&|e| matches!(e, TrainEvent::Finished { step, .. } if *step == LAST));
    worker.join().unwrap().unwrap();
    assert_eq!(
        std::fs::read_to_string(run.join("latest")).unwrap().trim(),
        format!("step-{LAST:06}")
    );

    // The final checkpoint cannot be written and the driver goes away: the error, not a hang.
    let run2 = tmp.path().join("run2");
    let mut t = Trainer::new(cfg(), Some(&run2)).unwrap();
    t.hold_on_failed_checkpoints();
    fail::cfg(point, "return(No space left on device (os error 28))").unwrap();
    let (etx, erx) = channel();
    let (ctx, crx) = channel::<TrainCommand>();
    let worker = std::thread::spawn(move || t.run_loop(&mut Synthetic, &etx, &crx));
    loop {
        if let TrainEvent::CheckpointFailed { step, .. } =
            erx.recv_timeout(Duration::from_secs(60)).unwrap()
        {
            assert_eq!(step, LAST);
            break;
        }
    }
    drop(ctx);
    let err = worker.join().unwrap().unwrap_err();
    fail::remove(point);
    assert!(format!("{err:#}").contains("No space left"), "{err:#}");
}

/// Trains `n` steps, with no checkpoint.
fn train_steps(t: &mut Trainer, n: usize) {
    for _ in 0..n {
        let (x, e) = Synthetic.batch(t.step()).unwrap();
        t.train_step(&x, e).unwrap();
    }
}

/// The steps of the run's metrics log, in file order.
fn logged_steps(run: &Path) -> Vec<usize> {
    ddpm_lab::store::read_metrics_file(&run.join(METRICS_FILE))
        .unwrap()
        .iter()
        .map(|s| s.step)
        .collect()
}

#[test]
fn a_disk_that_fills_up_between_checkpoints_holds_the_run_with_its_whole_history() {
    use ddpm_lab::train::events::{TrainCommand, TrainEvent};
    use std::sync::mpsc::channel;
    use std::time::Duration;
    let _scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // No checkpoint is due before the end: only the metrics line meets the full disk.
    let config = TrainConfig {
        checkpoint_every: 0,
        ..cfg()
    };
    let mut t = Trainer::new(config, Some(&run)).unwrap();
    t.hold_on_failed_checkpoints();
    let point = "append-line:metrics.jsonl";
    fail::cfg(
        point,
        "3*off->return(No space left on device (os error 28))",
    )
    .unwrap();
    let (etx, erx) = channel();
    let (ctx, crx) = channel();
    let worker = std::thread::spawn(move || t.run_loop(&mut Synthetic, &etx, &crx));
    let until = |want: &dyn Fn(&TrainEvent) -> bool| loop {
        let e = erx.recv_timeout(Duration::from_secs(60)).unwrap();
        if want(&e) {
            return e;
        }
    };
    // Step 4's line is not written: the run is held at once, not at its next checkpoint.
    match until(&|e| matches!(e, TrainEvent::CheckpointFailed { .. })) {
        TrainEvent::CheckpointFailed { step, message, .. } => {
            assert_eq!(step, 4);
            assert!(message.starts_with("No space left on device"), "{message}");
        }
        _ => unreachable!(),
    }
    until(&|e| matches!(e, TrainEvent::Paused { step } if *step == 4));
    assert_eq!(logged_steps(&run), [1, 2, 3]);
    // Room made: the checkpoint writes the missing line first.
    fail::remove(point);
    ctx.send(TrainCommand::Checkpoint).unwrap();
    until(&|e| matches!(e, TrainEvent::Checkpointed { step, .. } if *step == 4));
    assert_eq!(logged_steps(&run), [1, 2, 3, 4]);
    ctx.send(TrainCommand::Resume).unwrap();
    until(&|e| matches!(e, TrainEvent::Finished { step, .. } if *step == LAST));
    worker.join().unwrap().unwrap();
    assert_eq!(logged_steps(&run), (1..=LAST).collect::<Vec<_>>());
}

#[test]
fn a_trainer_that_cannot_ask_trains_on_and_writes_the_lines_it_kept_once_it_can() {
    let _scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut t = Trainer::new(cfg(), Some(&run)).unwrap();
    let point = "append-line:metrics.jsonl";
    // Steps 1 and 2 are written, then the disk is full for two tries (steps 3 and 4, whose
    // line waits behind 3's), then it has room again.
    fail::cfg(
        point,
        "2*off->2*return(No space left on device (os error 28))->off",
    )
    .unwrap();
    train_steps(&mut t, 3);
    assert_eq!(logged_steps(&run), [1, 2]);
    // A checkpoint cannot leave its steps out of the log: it fails while they cannot be
    // written, and writes them first once they can.
    let err = t.checkpoint().unwrap_err();
    assert!(format!("{err:#}").contains("No space left"), "{err:#}");
    assert!(!run.join("latest").exists());
    t.checkpoint().unwrap();
    assert_eq!(logged_steps(&run), [1, 2, 3]);
    train_to(&mut t, LAST).unwrap();
    fail::remove(point);
    assert_eq!(logged_steps(&run), (1..=LAST).collect::<Vec<_>>());
}

#[test]
fn a_line_the_disk_cut_short_is_taken_back_and_written_whole_later() {
    let _scenario = FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut t = Trainer::new(cfg(), Some(&run)).unwrap();
    // Step 2's line is half written when the disk fills up.
    let point = "append-line-torn:metrics.jsonl";
    fail::cfg(
        point,
        "1*off->1*return(No space left on device (os error 28))->off",
    )
    .unwrap();
    train_steps(&mut t, 3);
    fail::remove(point);
    let text = std::fs::read_to_string(run.join(METRICS_FILE)).unwrap();
    assert_eq!(text.lines().count(), 3, "no torn line left:\n{text}");
    assert_eq!(logged_steps(&run), [1, 2, 3]);
    // A fragment a crash left at the end stays a line of its own, which readers skip.
    std::fs::write(run.join(METRICS_FILE), text + "{\"step\":4,\"epo").unwrap();
    train_steps(&mut t, 1);
    assert_eq!(logged_steps(&run), [1, 2, 3, 4]);
}

/// A run whose own `config.json` is gone still has a config in each checkpoint: the run
/// samples from its newest, as one of them named does.
#[test]
fn a_run_without_its_own_config_samples_from_its_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let run = trained(tmp.path());
    let newest = latest_dir(&run);
    std::fs::remove_file(run.join("config.json")).unwrap();
    let whole = ddpm_lab::store::load_checkpoint(&run, &Device::Cpu, true).unwrap();
    let named = ddpm_lab::store::load_checkpoint(&newest, &Device::Cpu, true).unwrap();
    assert_eq!((whole.step, whole.ema), (named.step, named.ema));
    // A folder with neither is not a run: bare weights are imported.
    let bare = tmp.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    let err = ddpm_lab::store::load_checkpoint(&bare, &Device::Cpu, true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("has no config.json: pass a run directory"),
        "{err}"
    );
    // Its raw weights, named: what was asked for, without a word about the EMA's.
    let raw = ddpm_lab::store::load_checkpoint(
        &newest.join(ddpm_lab::store::WEIGHTS_FILE),
        &Device::Cpu,
        true,
    )
    .unwrap();
    assert!(!raw.ema);
    assert_eq!(raw.missing_ema(true), None);
    std::fs::remove_file(newest.join("ema.safetensors")).unwrap();
    let picked = ddpm_lab::store::load_checkpoint(&newest, &Device::Cpu, true).unwrap();
    assert!(picked.missing_ema(true).is_some(), "asked for, and gone");
}
