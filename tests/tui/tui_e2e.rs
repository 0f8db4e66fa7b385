//! End-to-end test of the real binary in tmux: start the lab on the built-in dataset, visit
//! every tab, train a tiny model (start, pause, resume), step through sample frames, quit, and
//! check that the process exits cleanly and leaves the terminal in cooked mode.
//!
//! Skips (with a notice) where tmux is not installed, except under `CI=true`, where it fails.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "lab"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.cmd(&["send-keys", "-t", "lab", k]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    /// Waits until the screen satisfies `pred`; panics with the screen after `secs`.
    fn wait(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                panic!("timed out after {secs}s waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for(&self, text: &str, secs: u64) -> String {
        self.wait(text, secs, |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The step shown in the Train screen's progress gauge (`step N/TOTAL`), if any.
fn progress_step(screen: &str) -> Option<u64> {
    screen.match_indices("step ").find_map(|(i, _)| {
        let rest = &screen[i + 5..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() || !rest[digits.len()..].starts_with('/') {
            return None;
        }
        digits.parse().ok()
    })
}

/// Skips the test where tmux is not installed; never in CI (`.ci/run` installs it).
fn tmux_missing() -> bool {
    if Command::new("tmux").arg("-V").output().is_err() {
        crate::common::skip(
            "tmux is not installed (apt-get install tmux): no end-to-end test of the lab",
            None,
        );
        return true;
    }
    false
}

/// Starts the lab in a fresh tmux server (120×40) with an isolated config dir, HOME and runs
/// directory under `dir`; after the lab exits the pane shows `EXIT=<status>` and whether the
/// terminal is back in canonical mode.
fn start_lab(dir: &Path, tag: &str, flags: &str) -> Tmux {
    start_lab_env(dir, tag, "", flags)
}

/// [`start_lab`] with more environment variables (`env`: `NAME='value' …`).
fn start_lab_env(dir: &Path, tag: &str, env: &str, flags: &str) -> Tmux {
    start_lab_sized(dir, tag, env, flags, (120, 40))
}

/// [`start_lab_env`] in a terminal of `(columns, rows)`.
fn start_lab_sized(dir: &Path, tag: &str, env: &str, flags: &str, size: (u16, u16)) -> Tmux {
    let bin = env!("CARGO_BIN_EXE_ddpm-lab");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let script = format!(
        "cd '{d}' && HOME='{home}' DDPM_LAB_CONFIG_DIR='{d}/config' TERM=xterm-256color {env} \
         '{bin}' --runs-dir '{d}/runs' {flags}; echo \"EXIT=$?\"; \
         stty -a | tr ' ;' '\\n\\n' | grep -x -- '-*icanon'; sleep 120",
        d = dir.display(),
        home = home.display(),
    );
    let tmux = Tmux {
        socket: format!("ddpm-lab-e2e-{tag}-{}", std::process::id()),
    };
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "lab",
        "-x",
        &size.0.to_string(),
        "-y",
        &size.1.to_string(),
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        out.status.success(),
        "tmux: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmux
}

/// Flags of a tiny run that trains for as long as a test needs it.
const LONG_TINY_RUN: &str =
    "--dataset shapes --model tiny --timesteps 10 --steps 20000 --batch-size 4";

/// Starts the lab with [`LONG_TINY_RUN`] and a run on the Train screen, once it has trained
/// `steps` steps.
fn lab_training(dir: &Path, tag: &str, steps: u64) -> Tmux {
    let tmux = start_lab(dir, tag, LONG_TINY_RUN);
    tmux.wait_for("status   ready", 30);
    tmux.keys(&["3", "Space"]);
    tmux.wait("training", 120, |s| {
        s.contains("RUNNING") && progress_step(s).is_some_and(|n| n >= steps)
    });
    tmux
}

/// The newest checkpoint of the one run under `dir/runs`.
fn the_runs_checkpoint(dir: &Path) -> ddpm_lab::store::Checkpoint {
    let run = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .next()
        .expect("a run directory")
        .path();
    ddpm_lab::store::RunDir::open(&run)
        .and_then(|r| r.require_checkpoint())
        .expect("a checkpoint")
}

/// Waits for the lab to exit and checks it exited with 0 and restored the terminal.
fn assert_clean_exit(tmux: &Tmux) {
    let s = tmux.wait_for("EXIT=", 60);
    assert!(s.contains("EXIT=0"), "{s}");
    let s = tmux.wait("stty output", 5, |s| {
        s.lines().any(|l| l.trim().ends_with("icanon"))
    });
    assert!(
        s.lines().any(|l| l.trim() == "icanon"),
        "terminal left in raw mode:\n{s}"
    );
}

/// Checks the lab's exit message (printed after the terminal is restored): the run directory
/// and the shell commands that continue and sample the run, which name a run on disk.
fn assert_exit_message(screen: &str, runs: &Path) {
    let line = |prefix: &str| -> String {
        screen
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in the exit message:\n{screen}"))
            .to_string()
    };
    assert!(
        line("run in ").contains(&runs.display().to_string()),
        "{screen}"
    );
    let cont = line("continue: ddpm-lab train --resume ");
    let dir = cont["continue: ddpm-lab train --resume ".len()..]
        .split(" --steps")
        .next()
        .unwrap();
    ddpm_lab::store::RunDir::open(Path::new(dir))
        .and_then(|r| r.require_checkpoint())
        .unwrap_or_else(|e| panic!("the continue command names no saved run ({e:#}):\n{screen}"));
    assert_eq!(
        line("sample:   ddpm-lab sample --checkpoint "),
        format!("sample:   ddpm-lab sample --checkpoint {dir}")
    );
}

fn frame_no(screen: &str) -> Option<usize> {
    let i = screen.find("frame ")?;
    let rest = &screen[i + 6..];
    rest.split('/').next()?.trim().parse().ok()
}

#[test]
fn lab_in_tmux_trains_samples_and_quits_cleanly() {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    let runs = tmp.path().join("runs");
    let tmux = start_lab(
        tmp.path(),
        "main",
        "--dataset shapes --model tiny --device cpu --timesteps 10 --steps 150 --batch-size 4",
    );

    // Data: the first frame comes at once; the built-in dataset loads in the background.
    let started = Instant::now();
    let s = tmux.wait_for("1 Data", 10);
    let first = started.elapsed();
    eprintln!("first frame seen after {first:?} (tmux start and polling included)");
    assert!(
        first < Duration::from_secs(5),
        "first frame after {first:?}"
    );
    assert!(s.contains("Dataset"), "{s}");
    tmux.wait_for("ready", 30);

    // Schedules.
    tmux.keys(&["2"]);
    tmux.wait_for("⚠ x_T=", 5);
    tmux.keys(&["Right", "+"]);
    // Train: start, pause, resume until finished.
    tmux.keys(&["3"]);
    tmux.wait_for("Configuration", 5);
    // No previews (the last field, down to "off"): 64 images each, they would take longer
    // than this whole tiny run on a busy machine.
    tmux.keys(&["Up", "Left", "Left", "Left", "Left"]);
    tmux.wait_for("preview every off", 5);
    tmux.keys(&["Space"]);
    tmux.wait("training to run", 60, |s| {
        s.contains("RUNNING") && s.contains("loss")
    });
    tmux.keys(&["Space"]);
    let paused = tmux.wait_for("PAUSED", 30);
    assert!(paused.contains("step "), "{paused}");
    tmux.keys(&["Space"]);
    tmux.wait_for("FINISHED", 180);

    // Sample: generate, then step through frames.
    tmux.keys(&["4"]);
    tmux.keys(&["-", "-", "-"]); // one image: fast on any CPU
    tmux.wait_for("images   1", 5);
    tmux.keys(&["g"]);
    let s = tmux.wait("frames", 120, |s| frame_no(s).is_some());
    let last = frame_no(&s).unwrap();
    tmux.keys(&["Home"]);
    tmux.wait("first frame", 5, |s| frame_no(s) == Some(1));
    tmux.keys(&["Right", "Right", "Left"]);
    tmux.wait("frame 2", 5, |s| frame_no(s) == Some(2));
    tmux.keys(&["PageDown"]);
    tmux.wait("frame 11", 5, |s| frame_no(s) == Some(last.min(11)));
    tmux.keys(&["End"]);
    tmux.wait("last frame", 5, |s| frame_no(s) == Some(last));
    // Export: a PNG grid and a GIF, paths shown.
    tmux.keys(&["e"]);
    let s = tmux.wait_for("exported into", 60);
    // The quick recipe recommends DDIM, which the Sample screen starts with; the files are
    // named after the checkpoint's step too, and after the steps DDIM ran: this run's T = 10,
    // not the 50 the screen asks for.
    assert!(s.contains("samples-step"), "{s}");
    assert!(s.contains("-ddim10-seed0-n1.png"), "{s}");
    // The images are scored where a classifier exists, and the screen says why not here.
    assert!(s.contains("no quality classifier for"), "{s}");

    // Compare and help.
    tmux.keys(&["5"]);
    tmux.wait_for("Loss by schedule", 5);
    tmux.keys(&["?"]);
    tmux.wait_for("? or Esc closes", 5);
    tmux.keys(&["Escape"]);

    // Quit: the run is saved, so no question; the shell sees exit status 0 and cooked mode,
    // after the run directory and how to go on with it.
    tmux.keys(&["q"]);
    assert_clean_exit(&tmux);
    assert_exit_message(&tmux.screen(), &runs);
    assert!(config.join("settings.json").exists(), "settings remembered");
    assert!(
        std::fs::read_dir(&runs).unwrap().count() >= 1,
        "a run directory was written"
    );
}

#[test]
fn ctrl_c_checkpoints_a_running_run_which_reopens_and_continues() {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tmux = lab_training(tmp.path(), "ctrlc", 2);
    tmux.keys(&["C-c"]);
    assert_clean_exit(&tmux);
    assert_exit_message(&tmux.screen(), &tmp.path().join("runs"));
    drop(tmux);
    let ck = the_runs_checkpoint(tmp.path());
    assert!(
        ck.state.step >= 2,
        "checkpoint written on Ctrl-C: {:?}",
        ck.state
    );
    assert!(ck.file("model.safetensors").exists());

    // A second session opens the run (o, Enter) and continues it (space).
    let tmux = start_lab(tmp.path(), "reopen", LONG_TINY_RUN);
    tmux.wait_for("status   ready", 30);
    tmux.keys(&["3", "o"]);
    tmux.wait_for("Open a run", 10);
    tmux.keys(&["Enter"]);
    tmux.wait_for("OPENED", 10);
    tmux.keys(&["Space"]);
    tmux.wait("training continues", 120, |s| {
        s.contains("RUNNING") && s.contains("loss")
    });
    tmux.keys(&["q"]);
    tmux.wait_for("Quit?", 10);
    tmux.keys(&["y"]);
    assert_clean_exit(&tmux);
}

#[test]
fn without_a_hub_the_lab_trains_on_the_builtin_set_and_switches_when_it_answers() {
    if tmux_missing() {
        return;
    }
    let Some(root) = crate::mock_hub::hub_fixture() else {
        return;
    };
    // A Hub that stopped: its port refuses connections, and the cache (under HOME) is empty.
    let url = crate::mock_hub::MockHub::start(&root).stop();
    let tmp = tempfile::tempdir().unwrap();
    let env = format!("HF_ENDPOINT='{url}' HF_HUB_OFFLINE=0");
    let flags =
        "--dataset fashion_mnist --model tiny --device cpu --timesteps 10 --steps 20 --batch-size 4";
    let tmux = start_lab_env(tmp.path(), "offline", &env, flags);
    let s = tmux.wait_for("Hub unreachable: shapes stand in", 90);
    assert!(
        s.contains("r retries · your copy: ddpm-lab --dataset DIR"),
        "{s}"
    );
    assert!(s.contains("status   ready") && s.contains("shapes"), "{s}");
    // The Data screen says it whole: where the images come from, and why.
    assert!(
        s.contains("source   built-in procedural set, no files"),
        "{s}"
    );
    assert!(
        s.contains("note     Hub unreachable (cannot connect"),
        "{s}"
    );
    // Its second line stays under the value column, as a person reads it.
    assert!(s.contains("│         (Connection refused"), "{s}");
    // Space trains at once, on the built-in set.
    tmux.keys(&["3", "Space"]);
    tmux.wait_for("FINISHED", 180);
    // The Hub is back: r on the Data screen downloads Fashion-MNIST and switches to it.
    let _hub = crate::mock_hub::MockHub::start_at(&root, url.trim_start_matches("http://"));
    tmux.keys(&["1", "r"]);
    let s = tmux.wait("Fashion-MNIST loaded", 120, |s| {
        s.contains("status   ready")
            && s.contains("data fashion_mnist")
            && s.contains("8517 images")
    });
    assert!(
        !s.contains("Hub unreachable"),
        "the fallback notice went with its cause:\n{s}"
    );
    tmux.keys(&["q"]);
    assert_clean_exit(&tmux);
    let s = tmux.screen();
    assert_exit_message(&s, &tmp.path().join("runs"));
    let run = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("run in "))
        .and_then(|l| l.split(" (step").next())
        .unwrap()
        .to_string();
    let cfg = ddpm_lab::store::RunDir::open(Path::new(&run))
        .and_then(|r| r.load_config())
        .unwrap();
    assert_eq!(cfg.dataset, "shapes", "the run says what it trained on");
}

#[test]
fn remembered_settings_follow_their_recipe_where_the_user_left_them() {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Settings saved by a lab from before 2026-12-03: the quick recipe had 650 steps of batch
    // 128 and T = 1000 then (and files did not say which recipe they came from); the user had changed the
    // learning rate.
    std::fs::create_dir_all(tmp.path().join("config")).unwrap();
    let legacy = r#"{"dataset": "shapes", "train": {"model": "quick", "steps": 650, "lr": 0.0005,
        "schedule": "cosine", "timesteps": 1000, "loss": "l2", "objective": "v",
        "batch_size": 128, "device": "cpu", "seed": 42}}"#;
    std::fs::write(tmp.path().join("config/settings.json"), legacy).unwrap();
    let tmux = start_lab(tmp.path(), "recipe", "");
    tmux.keys(&["3"]);
    // The notice, and the Train screen drawn whole (a capture can catch it half drawn).
    let notice =
        "the quick recipe changed: batch 128 → 32, steps 650 → 2100, T 1000 → 500 (your own settings are kept)";
    let s = tmux.wait("the notice on the Train screen", 60, |s| {
        s.contains(notice) && s.contains("preview every")
    });
    assert!(s.contains("steps         2100"), "{s}");
    assert!(s.contains("batch         32"), "{s}");
    assert!(s.contains("T             500"), "{s}");
    assert!(s.contains("lr            5e-4"), "{s}");
    tmux.keys(&["q"]);
    assert_clean_exit(&tmux);
    let saved = std::fs::read_to_string(tmp.path().join("config/settings.json")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved["train"]["steps"], 2100);
    assert_eq!(saved["train"]["batch_size"], 32);
    assert_eq!(saved["train"]["timesteps"], 500);
    assert_eq!(saved["train"]["lr"], 0.0005);
    assert_eq!(saved["origin"]["recipe"]["name"], "quick", "{saved}");
}

/// The real binary in a terminal that shrinks below 80×24 while a run trains: the screen says
/// so with its quit hint, the screens' keys do nothing there (space would pause the run
/// unseen), and back at full size the run is still training; then `x` stops it with a
/// checkpoint and the lab quits without asking.
#[test]
fn a_shrunk_terminal_ignores_the_screens_keys_and_x_stops_the_run() {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tmux = lab_training(tmp.path(), "shrink", 1);
    tmux.cmd(&["resize-window", "-t", "lab", "-x", "60", "-y", "20"]);
    let s = tmux.wait_for("too small: 60×20", 10);
    assert!(s.contains("press q to quit"), "{s}");
    tmux.keys(&["Space", "4"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux.cmd(&["resize-window", "-t", "lab", "-x", "120", "-y", "40"]);
    let s = tmux.wait_for("Progress RUNNING", 10);
    assert!(s.contains("Configuration"), "still on Train:\n{s}");
    tmux.keys(&["x"]);
    // Stopped short of its steps: the Progress box says so.
    tmux.wait_for("Progress STOPPED", 60);
    tmux.keys(&["q"]);
    assert_clean_exit(&tmux);
    let ck = the_runs_checkpoint(tmp.path());
    assert!(
        ck.state.step >= 1,
        "checkpoint written by x: {:?}",
        ck.state
    );
}

/// A lab started in a small terminal that then grows leaves nothing of its screen in the
/// shell's after quitting (tmux carried rows of it over: the lab now leaves an empty screen).
#[test]
fn a_terminal_that_grew_gets_its_screen_back_clean() {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tmux = start_lab_sized(tmp.path(), "grew", "", "--dataset shapes", (60, 20));
    tmux.wait_for("too small: 60×20", 20);
    tmux.cmd(&["resize-window", "-t", "lab", "-x", "80", "-y", "24"]);
    tmux.wait_for("Label counts", 20);
    tmux.keys(&["q"]);
    assert_clean_exit(&tmux);
    let s = tmux.screen();
    assert!(
        !s.lines()
            .any(|l| l.contains('│') || l.contains("Label counts")),
        "lab rows left behind:\n{s}"
    );
}
