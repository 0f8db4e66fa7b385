//! Real signals against the real binary: SIGTERM and SIGHUP during `ddpm-lab train` and during
//! the lab in tmux. The first signal checkpoints and ends the process as that signal would have
//! (the run samples and resumes); a second one ends it at once; the lab always gives the
//! terminal back in cooked mode.
//!
//! The lab tests skip (with a notice; a failure under CI=true) where tmux is not installed.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ddpm-lab");

/// The binary offline, with its runs and Hub cache under `dir`, and the three signals at their
/// default disposition: ddpm-lab keeps a signal it was started with ignored (as under `nohup`),
/// and a test suite started under `nohup` would otherwise pass SIGHUP's ignoring on to it.
fn ddpm(dir: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(BIN);
    c.env("DDPM_LAB_RUNS", dir.join("runs"))
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", dir.join("hf-home"))
        .env("NO_COLOR", "1");
    // SAFETY: between fork and exec the closure only calls `signal`, which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        c.pre_exec(|| {
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    c
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run ddpm-lab");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn send(pid: u32, signal: libc::c_int) {
    // SAFETY: `kill` on the pid of a child this test spawned and has not reaped.
    let r = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(r, 0, "kill({pid}, {signal})");
}

/// Starts a long tiny training run with JSON lines; its events arrive on the receiver (read to
/// the end on a thread, so the child never blocks on a full pipe).
fn start_training(dir: &Path, run: &Path) -> (Child, Receiver<serde_json::Value>) {
    let mut child = ddpm(dir)
        .args([
            "train",
            "--dataset",
            "shapes",
            "--model",
            "tiny",
            "--timesteps",
            "20",
            "--batch-size",
            "8",
            "--steps",
            "100000",
            "--checkpoint-every",
            "0",
            "--json",
            "--run-dir",
        ])
        .arg(run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ddpm-lab train");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            if tx.send(v).is_err() {
                return; // the receiver is gone: close the pipe
            }
        }
    });
    (child, rx)
}

fn wait_for_step(rx: &Receiver<serde_json::Value>, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = rx.recv_timeout(left).expect("training events");
        if event["event"] != "step" {
            continue;
        }
        let step = event["step"].as_u64().expect("a step");
        if step >= at_least {
            return step;
        }
    }
}

/// Waits for the child, at most `secs` (then kills it and fails).
fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ddpm-lab did not exit within {secs}s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    s
}

/// The step a run directory's checkpoint was saved at, as `sample --json` reports it.
fn sampled_step(dir: &Path, run: &Path) -> u64 {
    let out = run_ok(
        ddpm(dir)
            .args([
                "sample",
                "--n",
                "1",
                "--sampler",
                "ddim",
                "--steps",
                "2",
                "--json",
            ])
            .arg("--checkpoint")
            .arg(run)
            .arg("--out")
            .arg(dir.join("sample.png")),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("sample --json prints one object");
    v["step"].as_u64().expect("the checkpoint's step")
}

/// `signal` during training (sent `copies` times at once, as `timeout` sends its SIGTERM to
/// the process and then to its group): a checkpoint that samples and resumes, and a process
/// that ends as killed by `signal` (so a script's `&&` stops there).
fn signal_checkpoints_and_resumes(signal: libc::c_int, name: &str, copies: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join(name);
    let (mut child, steps) = start_training(tmp.path(), &run);
    wait_for_step(&steps, 2);
    for _ in 0..copies {
        send(child.id(), signal);
    }
    let status = wait_exit(&mut child, 60);
    let err = stderr_of(&mut child);
    assert_eq!(
        status.signal(),
        Some(signal),
        "{name}: {status:?}; stderr: {err}"
    );
    assert!(
        err.contains("stopped by a signal: checkpoint at step"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let step = sampled_step(tmp.path(), &run);
    // Its last JSON line says so too.
    let end = steps.iter().last().expect("JSON events to the end");
    assert_eq!(
        (&end["event"], &end["reason"], end["step"].as_u64()),
        (&"end".into(), &"signal".into(), Some(step)),
        "{end}"
    );
    assert!(step >= 2, "{name}: checkpoint at step {step}");
    // The run continues from there.
    let out = run_ok(
        ddpm(tmp.path())
            .args(["train", "--json", "--steps"])
            .arg((step + 2).to_string())
            .arg("--resume")
            .arg(&run),
    );
    let last: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "step")
        .expect("steps after the resume");
    assert_eq!(last["step"].as_u64(), Some(step + 2), "{last}");
    assert_eq!(sampled_step(tmp.path(), &run), step + 2);
}

#[test]
fn sigterm_during_train_checkpoints_and_resumes_and_the_status_says_sigterm() {
    signal_checkpoints_and_resumes(libc::SIGTERM, "term", 1);
}

#[test]
fn a_sigterm_sent_twice_at_once_is_one_request_and_checkpoints() {
    signal_checkpoints_and_resumes(libc::SIGTERM, "echo", 2);
}

/// `timeout -s INT` sends its SIGINT to the process and then to its group: one request, not
/// Ctrl-C pressed twice (which lost a run before its first checkpoint).
#[test]
fn a_sigint_sent_twice_at_once_is_one_request_and_checkpoints() {
    signal_checkpoints_and_resumes(libc::SIGINT, "int-echo", 2);
}

#[test]
fn sighup_during_train_checkpoints_and_resumes_and_the_status_says_sighup() {
    signal_checkpoints_and_resumes(libc::SIGHUP, "hup", 1);
}

/// A signal while `train` waits for room on a full disk: the checkpoint that would stop it
/// cannot be written either, so it ends at once (the last complete checkpoint stays) instead
/// of waiting for room for up to an hour after a Ctrl-C.
#[test]
fn a_signal_while_the_disk_is_full_ends_train_with_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("full");
    // Steps 1-2 and their checkpoint are written; from step 3 on the disk is "full" (its
    // line is held and checkpointed at once, which fails).
    let mut child = ddpm(tmp.path())
        .env(
            "FAILPOINTS",
            "append-line:metrics.jsonl=2*off->return(No space left on device (os error 28))",
        )
        .args(["train", "--dataset", "shapes", "--model", "tiny"])
        .args(["--timesteps", "20", "--batch-size", "4", "--steps", "1000"])
        .args(["--checkpoint-every", "2", "--json", "--run-dir"])
        .arg(&run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ddpm-lab train");
    let mut stdout = child.stdout.take().unwrap();
    let events = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !said
        .iter()
        .any(|l: &String| l.contains("paused with the weights in memory"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        said.push(rx.recv_timeout(left).expect("the full disk said"));
    }
    send(child.id(), libc::SIGTERM);
    let status = wait_exit(&mut child, 30);
    said.extend(rx.iter());
    let err = said.join("\n");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}: {err}");
    assert!(
        err.contains("stopping, and the checkpoint at step 3 cannot be written")
            && err.contains("the last complete checkpoint in"),
        "{err}"
    );
    assert_eq!(sampled_step(tmp.path(), &run), 2);
    // The JSON stream ends as every run's does, with the step a resume goes on from.
    let events = events.join().unwrap();
    let last = crate::common::last_json(&events);
    assert_eq!(
        (&last["event"], &last["reason"], &last["step"]),
        (&"end".into(), &"signal".into(), &2.into()),
        "{events}"
    );
}

#[test]
fn a_second_signal_ends_train_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("twice");
    let (mut child, steps) = start_training(tmp.path(), &run);
    wait_for_step(&steps, 2);
    let sent = Instant::now();
    send(child.id(), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(30));
    send(child.id(), libc::SIGINT);
    let status = wait_exit(&mut child, 30);
    let err = stderr_of(&mut child);
    // Killed by the second signal (SIGINT) when it came before the checkpoint was done (almost
    // always), or by the last one received when the checkpoint was quicker: never a success.
    assert!(
        matches!(status.signal(), Some(libc::SIGINT | libc::SIGTERM)),
        "{status:?}; stderr: {err}"
    );
    // Its last line says what stays, whichever signal ended it: at step 2 the run has no
    // checkpoint yet (every 500 steps or 2 minutes), so nothing to continue from.
    let run_s = run.display().to_string();
    assert!(
        err.contains(&format!(
            "quitting at once, before the run's first checkpoint: nothing of {run_s} can be continued; start it again"
        )) || err.contains("stopped by a signal: checkpoint at step"),
        "{err}"
    );
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{:?}",
        sent.elapsed()
    );
    assert!(!err.contains("panicked"), "{err}");
    // The JSON stream ends as every run's does, whole lines to the last: an `end` event with
    // the step a resume goes on from (none at step 2, unless the stopping checkpoint won).
    let last = steps.iter().last().expect("JSON lines");
    assert_eq!(
        (&last["event"], &last["reason"], &last["run_dir"]),
        (&"end".into(), &"signal".into(), &run_s.as_str().into()),
        "{last}"
    );
    assert!(
        last["step"].is_null() || err.contains("stopped by a signal: checkpoint at step"),
        "{last}; {err}"
    );
}

/// A signal while `train` is still setting up (its set-up held by a failpoint) ends it at once:
/// stderr says nothing was trained, and the JSON stream still ends with an `end` event, its
/// run and step null.
#[test]
fn a_signal_before_training_starts_ends_train_with_an_end_event() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = ddpm(tmp.path())
        .args([
            "train",
            "--dataset",
            "shapes",
            "--model",
            "tiny",
            "--steps",
            "100",
            "--json",
        ])
        .env("FAILPOINTS", "train-prepare:0=sleep(20000)")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ddpm-lab train");
    std::thread::sleep(Duration::from_millis(500));
    send(child.id(), libc::SIGTERM);
    let status = wait_exit(&mut child, 10);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    let err = stderr_of(&mut child);
    assert!(
        err.contains("stopped before training started: nothing was trained or saved"),
        "{err}"
    );
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let last = crate::common::last_json(&out);
    assert_eq!(
        last,
        serde_json::json!({"event": "end", "reason": "signal", "run_dir": null, "step": null}),
        "{out}"
    );
}

#[test]
fn a_closed_stdout_stops_train_with_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("piped");
    let (mut child, steps) = start_training(tmp.path(), &run);
    wait_for_step(&steps, 2);
    // The reader thread ends at its next line once the receiver is gone, closing the pipe.
    drop(steps);
    let status = wait_exit(&mut child, 60);
    let err = stderr_of(&mut child);
    // Stopped short of its steps: it ends as a write to a closed pipe ends a program (141 in a
    // shell), not as a success.
    assert_eq!(
        status.signal(),
        Some(libc::SIGPIPE),
        "{status:?}; stderr: {err}"
    );
    assert!(
        err.contains("stdout was closed: checkpoint at step"),
        "{err}"
    );
    assert!(sampled_step(tmp.path(), &run) >= 2);
}

// ----- the lab in tmux ----------------------------------------------------------------------

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
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

    /// The pane with wrapped lines joined (long lines printed after the lab).
    fn joined_screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-J", "-t", "lab"]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.cmd(&["send-keys", "-t", "lab", k]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

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

    /// The pid of the lab: the child of the pane's shell.
    fn lab_pid(&self) -> u32 {
        let out = self.cmd(&["list-panes", "-t", "lab", "-F", "#{pane_pid}"]);
        let sh: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pane pid");
        let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
            .expect("the shell's children");
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the lab runs in the pane")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn tmux_missing() -> bool {
    if Command::new("tmux").arg("-V").output().is_err() {
        // .ci/run installs tmux, so CI never skips these.
        crate::common::skip(
            "tmux is not installed: the signal tests of the lab need it",
            None,
        );
        return true;
    }
    false
}

/// The lab in a fresh tmux server, with `env` (`NAME='value' ...`) added to its environment;
/// after it exits the pane shows `EXIT=<status>` and the terminal's `icanon` flag.
fn start_lab_with(dir: &Path, tag: &str, env: &str) -> Tmux {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let script = format!(
        "cd '{d}' && {env} HOME='{home}' DDPM_LAB_CONFIG_DIR='{d}/config' HF_HUB_OFFLINE=1 \
         TERM=xterm-256color '{BIN}' --runs-dir '{d}/runs' --dataset shapes --model tiny \
         --timesteps 10 --steps 20000 --batch-size 4; echo \"EXIT=$?\"; \
         stty -a | tr ' ;' '\\n\\n' | grep -x -- '-*icanon'; sleep 120",
        d = dir.display(),
        home = home.display(),
    );
    let tmux = Tmux {
        socket: format!("ddpm-lab-signals-{tag}-{}", std::process::id()),
    };
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "lab",
        "-x",
        "120",
        "-y",
        "40",
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

/// The step in the Train screen's progress gauge (`step N/TOTAL`).
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

/// Starts a run in the lab and waits for two steps.
fn lab_training(dir: &Path, tag: &str) -> Tmux {
    lab_training_with(dir, tag, "")
}

/// [`lab_training`] with `env` added to the lab's environment.
fn lab_training_with(dir: &Path, tag: &str, env: &str) -> Tmux {
    let tmux = start_lab_with(dir, tag, env);
    tmux.wait("the data", 60, |s| s.contains("status   ready"));
    tmux.keys(&["3", "Space"]);
    tmux.wait("two steps", 120, |s| {
        s.contains("RUNNING") && progress_step(s).is_some_and(|n| n >= 2)
    });
    tmux
}

/// The exit status the pane shows, and whether the terminal is back in canonical mode.
fn lab_exit(tmux: &Tmux) -> (String, bool) {
    let s = tmux.wait("the lab to exit", 60, |s| {
        s.contains("EXIT=") && s.lines().any(|l| l.trim().ends_with("icanon"))
    });
    let status = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("EXIT="))
        .unwrap_or_default()
        .to_string();
    (status, s.lines().any(|l| l.trim() == "icanon"))
}

fn the_run(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .next()
        .expect("a run directory")
        .path()
}

/// `signal` to the lab while it trains: the run is checkpointed, the terminal is restored and
/// the lab ends as killed by `signal` (the shell's status 128 + its number).
fn lab_signal_checkpoints(signal: libc::c_int, tag: &str) {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tmux = lab_training(tmp.path(), tag);
    send(tmux.lab_pid(), signal);
    let (status, cooked) = lab_exit(&tmux);
    assert_eq!(status, (128 + signal).to_string(), "{}", tmux.screen());
    assert!(cooked, "terminal left in raw mode:\n{}", tmux.screen());
    // Once the terminal is restored, the lab says where the run is and how to go on.
    let screen = tmux.screen();
    let run = the_run(tmp.path());
    for line in [
        format!("continue: ddpm-lab train --resume {}", run.display()),
        format!("sample:   ddpm-lab sample --checkpoint {}", run.display()),
    ] {
        assert!(screen.contains(&line), "no `{line}` on exit:\n{screen}");
    }
    drop(tmux);
    assert!(
        sampled_step(tmp.path(), &run) >= 2,
        "checkpoint written on the signal"
    );
}

#[test]
fn sigterm_to_the_lab_checkpoints_and_restores_the_terminal() {
    lab_signal_checkpoints(libc::SIGTERM, "term");
}

#[test]
fn sighup_to_the_lab_checkpoints_and_restores_the_terminal() {
    lab_signal_checkpoints(libc::SIGHUP, "hup");
}

#[test]
fn a_second_signal_ends_the_lab_at_once_with_the_terminal_restored() {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Its checkpoint takes 5 s: still saving when the second signal comes.
    let tmux = lab_training_with(
        tmp.path(),
        "twice",
        "FAILPOINTS='checkpoint-before-rename:=sleep(5000)'",
    );
    let pid = tmux.lab_pid();
    send(pid, libc::SIGTERM);
    // Past the window in which a repeat is taken for the same signal.
    std::thread::sleep(Duration::from_millis(700));
    send(pid, libc::SIGTERM);
    let (status, cooked) = lab_exit(&tmux);
    assert_eq!(
        status,
        (128 + libc::SIGTERM).to_string(),
        "{}",
        tmux.screen()
    );
    assert!(cooked, "terminal left in raw mode:\n{}", tmux.screen());
}

/// Whether process `pid` still runs: it exists and is not a zombie (an exited lab whose parent,
/// the pane's shell, is gone too may stay a zombie until someone reaps it).
fn runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .is_some_and(|state| state.trim_start().starts_with('Z'))
    })
}

/// The terminal itself goes away while the lab trains (a closed terminal window, `tmux
/// kill-server`, a dropped ssh session): its input hangs up and the lab gets SIGHUP. The lab
/// checkpoints the run and ends within seconds instead of spinning on the dead terminal.
#[test]
fn a_terminal_that_goes_away_ends_the_lab_with_the_run_checkpointed() {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tmux = lab_training(tmp.path(), "gone");
    let pid = tmux.lab_pid();
    drop(tmux); // kill-server: the pane's terminal closes under the lab
    let deadline = Instant::now() + Duration::from_secs(60);
    while runs(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let alive = runs(pid);
    if alive {
        send(pid, libc::SIGKILL);
        panic!("the lab still runs 60 s after its terminal went away");
    }
    let run = the_run(tmp.path());
    assert!(
        sampled_step(tmp.path(), &run) >= 2,
        "checkpoint written when the terminal went away"
    );
}

/// A training worker that crashes (a panic inside step 3) is a failed run inside the lab: the
/// lab keeps its screen (the terminal is not given back under it, and nothing is printed over
/// it), goes on answering keys, and prints the panic once it has ended.
#[test]
fn a_crashing_training_worker_is_a_failed_run_and_the_lab_goes_on() {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tmux = start_lab_with(
        tmp.path(),
        "worker-panic",
        "FAILPOINTS='train-step:3=panic(boom in step 3)'",
    );
    tmux.wait("the data", 60, |s| s.contains("status   ready"));
    tmux.keys(&["3", "Space"]);
    // The speed estimate's own run crashes at its step 3 too: wait for the main run's state.
    let screen = tmux.wait("the failed run", 120, |s| s.contains("run failed 2/"));
    assert!(
        screen.contains("training crashed: boom in step 3"),
        "{screen}"
    );
    assert!(
        !screen.contains("panicked"),
        "the panic was printed over the lab:\n{screen}"
    );
    tmux.keys(&["2"]);
    tmux.wait("the Schedules screen", 10, |s| s.contains("β_t"));
    // Nothing left to save: `q` quits without asking.
    tmux.keys(&["q"]);
    let (status, cooked) = lab_exit(&tmux);
    let screen = tmux.joined_screen();
    assert_eq!(status, "0", "{screen}");
    assert!(cooked, "terminal left in raw mode:\n{screen}");
    assert!(
        screen.contains("thread 'ddpm-train' panicked") && screen.contains("boom in step 3"),
        "the worker's panic is not printed after the lab:\n{screen}"
    );
}

/// A bug that panics the lab's own loop (here a key made to crash it) still ends with the
/// running run checkpointed, the terminal restored, the panic's message shown and a failing
/// exit status.
#[test]
fn a_panic_in_the_lab_checkpoints_the_runs_and_restores_the_terminal() {
    if tmux_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tmux = lab_training_with(
        tmp.path(),
        "ui-panic",
        "FAILPOINTS='lab-key:x=panic(ui boom)'",
    );
    tmux.keys(&["x"]);
    let (status, cooked) = lab_exit(&tmux);
    let screen = tmux.screen();
    assert_eq!(status, "1", "{screen}");
    assert!(cooked, "terminal left in raw mode:\n{screen}");
    assert!(
        screen.contains("ui boom") && screen.contains("internal error"),
        "{screen}"
    );
    let run = the_run(tmp.path());
    assert!(
        screen.contains(&format!(
            "continue: ddpm-lab train --resume {}",
            run.display()
        )),
        "{screen}"
    );
    drop(tmux);
    assert!(
        sampled_step(tmp.path(), &run) >= 2,
        "checkpoint written after the panic"
    );
}
