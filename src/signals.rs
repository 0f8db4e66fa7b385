//! The termination signals a long run must survive: SIGINT (Ctrl-C outside the lab), SIGTERM
//! (`kill`, systemd, job schedulers, `tmux kill-server`) and SIGHUP (a closed terminal).
//!
//! One handler for all three, running on a thread of its own (signal-hook's iterator on Unix),
//! so it may do anything a thread may: `ddpm-lab train` asks its trainer to checkpoint and stop;
//! the lab's main loop sees [`received`] grow and starts the same shutdown as Ctrl-C. A second
//! signal means "now": the process ends at once, leaving the last complete checkpoint.
//!
//! Either way the process then ends as the signal would have ended it ([`end_as_signalled`]):
//! a shell sees 130 after SIGINT, 143 after SIGTERM, 129 after SIGHUP, so a script's `&&` or
//! `set -e` stops at an interrupted run instead of going on as if it had finished, and a shell
//! running a script knows its user pressed Ctrl-C.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// Signals received since the handler was installed.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

/// The number of the last signal received (0 before the first).
static LAST: AtomicI32 = AtomicI32::new(0);

/// SIGINT's number, for the exit status where no signal is known.
const SIGINT: i32 = 2;

/// The signals handled.
#[cfg(unix)]
const HANDLED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Installs the process's handler for SIGINT, SIGTERM and SIGHUP: each signal is counted (see
/// [`received`]) and `on_signal` runs with the count so far (1 for the first). A signal this
/// process was started with ignored stays ignored (`nohup` keeps SIGHUP away, a shell without
/// job control keeps SIGINT away from background jobs). Fails when a handler is already
/// installed.
pub fn install(mut on_signal: impl FnMut(usize) + Send + 'static) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::sync::atomic::AtomicBool;
        static INSTALLED: AtomicBool = AtomicBool::new(false);
        if INSTALLED.swap(true, Ordering::SeqCst) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a signal handler is already installed",
            ));
        }
        let handled: Vec<libc::c_int> = HANDLED.into_iter().filter(|&s| !is_ignored(s)).collect();
        let mut signals = signal_hook::iterator::Signals::new(&handled)?;
        std::thread::Builder::new()
            .name("ddpm-signals".into())
            .spawn(move || {
                let mut previous: Option<(libc::c_int, std::time::Instant)> = None;
                for signal in signals.forever() {
                    let now = std::time::Instant::now();
                    if is_echo(previous, signal, now) {
                        continue;
                    }
                    previous = Some((signal, now));
                    LAST.store(signal, Ordering::SeqCst);
                    let n = RECEIVED.fetch_add(1, Ordering::SeqCst) + 1;
                    on_signal(n);
                }
            })?;
        Ok(())
    }
    #[cfg(not(unix))]
    {
        ctrlc::set_handler(move || {
            LAST.store(SIGINT, Ordering::SeqCst);
            let n = RECEIVED.fetch_add(1, Ordering::SeqCst) + 1;
            on_signal(n);
        })
        .map_err(std::io::Error::other)
    }
}

/// How soon after a SIGTERM or SIGHUP the same signal is taken for an echo of it rather than
/// a second request ("now"): GNU `timeout` sends its SIGTERM to the process and then to its
/// whole group, and a closed terminal's SIGHUP comes from the kernel and again from the shell
/// that forwards it to its jobs, microseconds apart. A person asking twice takes longer.
#[cfg(unix)]
pub const ECHO_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

/// [`ECHO_WINDOW`] for SIGINT: `timeout -s INT` sends it twice as well, microseconds apart,
/// but Ctrl-C pressed twice means "now", and no hand presses it twice within 50 ms.
#[cfg(unix)]
pub const SIGINT_ECHO_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);

/// Whether `signal`, arriving `now`, repeats the `previous` one within [`ECHO_WINDOW`] (for
/// SIGINT, [`SIGINT_ECHO_WINDOW`]): the same signal sent twice by one sender.
#[cfg(unix)]
fn is_echo(
    previous: Option<(libc::c_int, std::time::Instant)>,
    signal: libc::c_int,
    now: std::time::Instant,
) -> bool {
    let window = if signal == libc::SIGINT {
        SIGINT_ECHO_WINDOW
    } else {
        ECHO_WINDOW
    };
    previous.is_some_and(|(sig, at)| sig == signal && now.saturating_duration_since(at) < window)
}

/// Whether `signal` is ignored (`SIG_IGN`) in this process.
#[cfg(unix)]
fn is_ignored(signal: libc::c_int) -> bool {
    // SAFETY: `sigaction` with a null new action only reads the current one into `old`, a
    // zeroed (valid) `sigaction` struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Ends the process as the last signal received would have ended it unhandled: its default
/// action is put back and it is raised again, so the parent sees a process killed by that
/// signal. Where that cannot be done (no signal recorded, another platform), exits with
/// 128 + the signal's number (130 for SIGINT). Runs no destructors and flushes nothing: a caller
/// that printed to stdout flushes it first (not from the handler's thread, where another thread
/// may hold stdout's lock).
pub fn end_as_signalled() -> ! {
    let signal = LAST.load(Ordering::SeqCst);
    #[cfg(unix)]
    if signal > 0 {
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    }
    std::process::exit(128 + if signal > 0 { signal } else { SIGINT })
}

/// Ends the process as a write to a closed pipe ends one that does not handle it (SIGPIPE; a
/// shell sees 141): for `train`, whose trainer checkpoints first when its stdout is closed.
pub fn end_as_broken_pipe() -> ! {
    #[cfg(unix)]
    {
        let _ = signal_hook::low_level::emulate_default_handler(libc::SIGPIPE);
        std::process::exit(128 + libc::SIGPIPE)
    }
    #[cfg(not(unix))]
    std::process::exit(1)
}

/// How many termination signals have arrived (0 where no handler is installed).
pub fn received() -> usize {
    RECEIVED.load(Ordering::SeqCst)
}

/// Restores the default action of SIGPIPE, so that a command whose stdout is closed (`ddpm-lab
/// schedules --json | head -c 300`) ends quietly, as Unix tools do, instead of panicking in
/// `println!` on the EPIPE error that Rust's ignored SIGPIPE turns it into. Sockets are not
/// concerned: the standard library sends with `MSG_NOSIGNAL`.
pub fn die_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: `signal` with a valid signal number and `SIG_DFL` only changes this process's
    // disposition of SIGPIPE; no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_repeated_sigterm_or_sighup_is_an_echo_and_a_second_ctrl_c_is_not() {
        let t0 = Instant::now();
        let soon = t0 + Duration::from_millis(2);
        let later = t0 + ECHO_WINDOW + Duration::from_millis(1);
        for sig in [libc::SIGTERM, libc::SIGHUP] {
            assert!(is_echo(Some((sig, t0)), sig, soon));
            assert!(!is_echo(Some((sig, t0)), sig, later), "asked again");
        }
        // `timeout -s INT`'s two sends are one; Ctrl-C pressed twice by a hand is two.
        assert!(is_echo(Some((libc::SIGINT, t0)), libc::SIGINT, soon));
        let pressed_again = t0 + Duration::from_millis(120);
        assert!(!is_echo(
            Some((libc::SIGINT, t0)),
            libc::SIGINT,
            pressed_again
        ));
        assert!(!is_echo(Some((libc::SIGTERM, t0)), libc::SIGHUP, soon));
        assert!(!is_echo(None, libc::SIGTERM, soon));
    }
}
