//! The termination signals a long run must survive: SIGINT (Ctrl-C outside the lab), SIGTERM
//! (`kill`, systemd, job schedulers, `tmux kill-server`) and SIGHUP (a closed terminal).
//!
//! One handler for all three (the `ctrlc` crate with its `termination` feature), running on a
//! thread of its own, so it may do anything a thread may: `ddpm-lab train` asks its trainer to
//! checkpoint and stop; the lab's main loop sees [`received`] grow and starts the same shutdown
//! as Ctrl-C. A second signal means "now": the handler exits at once (status 130), leaving the
//! last complete checkpoint.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Signals received since the handler was installed.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

/// Exit status after a second signal (as a shell reports a process stopped by SIGINT).
pub const EXIT_AT_ONCE: i32 = 130;

/// The signals handled.
#[cfg(unix)]
const HANDLED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Installs the process's handler for SIGINT, SIGTERM and SIGHUP: each signal is counted (see
/// [`received`]) and `on_signal` runs with the count so far (1 for the first). A signal this
/// process was started with ignored stays ignored (`nohup` keeps SIGHUP away, a shell without
/// job control keeps SIGINT away from background jobs). Fails when a handler is already
/// installed.
pub fn install(mut on_signal: impl FnMut(usize) + Send + 'static) -> Result<(), ctrlc::Error> {
    #[cfg(unix)]
    let ignored: Vec<libc::c_int> = HANDLED.into_iter().filter(|&s| is_ignored(s)).collect();
    ctrlc::set_handler(move || {
        let n = RECEIVED.fetch_add(1, Ordering::SeqCst) + 1;
        on_signal(n);
    })?;
    #[cfg(unix)]
    for s in ignored {
        // SAFETY: puts back the disposition this process started with, for a valid signal.
        unsafe {
            libc::signal(s, libc::SIG_IGN);
        }
    }
    Ok(())
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
