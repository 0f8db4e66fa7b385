//! Input from the real terminal, read on a thread of its own.
//!
//! crossterm 0.29 never returns from `event::poll` once its terminal has hung up: the read of
//! the hung-up tty gives 0 bytes (or EIO) and its reader retries without end. The lab's main
//! loop used to call it directly, so a closed terminal froze the loop at full CPU: it never saw
//! the SIGHUP that followed and never checkpointed its runs. Here the reader asks the kernel
//! first whether the terminal hung up (and reports that as an error, which ends the lab the way
//! a terminal failure does: runs are checkpointed), and it runs on its own thread, so the main
//! loop keeps serving signals and workers even if crossterm gets stuck anyway in the instant
//! between that check and its read.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossterm::event::Event;

use super::EventSource;

/// How long the reader waits for input before it looks at its stop flag again.
const READ_SLICE: Duration = Duration::from_millis(50);

/// Terminal events from a reader thread (see the module doc). Dropping it stops the thread
/// within [`READ_SLICE`] (it is not joined: a thread stuck in crossterm ends with the process).
#[derive(Debug)]
pub struct TerminalInput {
    events: Receiver<io::Result<Event>>,
    stop: Arc<AtomicBool>,
}

impl TerminalInput {
    /// Starts reading the terminal (stdin) on a thread named `ddpm-input`.
    pub fn start() -> io::Result<Self> {
        let (tx, events) = mpsc::sync_channel(256);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        thread::Builder::new()
            .name("ddpm-input".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    let item = match read_event(READ_SLICE) {
                        Ok(None) => continue,
                        Ok(Some(event)) => Ok(event),
                        Err(e) => Err(e),
                    };
                    let failed = item.is_err();
                    if tx.send(item).is_err() || failed {
                        break;
                    }
                }
            })?;
        Ok(Self { events, stop })
    }
}

impl EventSource for TerminalInput {
    fn poll(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        match self.events.recv_timeout(timeout) {
            Ok(item) => item.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the terminal's input reader stopped",
            )),
        }
    }
}

impl Drop for TerminalInput {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One event within `timeout`, or an error once the terminal has hung up.
fn read_event(timeout: Duration) -> io::Result<Option<Event>> {
    if stdin_hung_up() {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the terminal hung up",
        ));
    }
    if crossterm::event::poll(timeout)? {
        crossterm::event::read().map(Some)
    } else {
        Ok(None)
    }
}

/// Whether stdin (the terminal crossterm reads when stdin is a tty, as the lab requires) has
/// hung up or failed, without waiting and without reading.
#[cfg(unix)]
pub fn stdin_hung_up() -> bool {
    fd_hung_up(libc::STDIN_FILENO)
}

/// Elsewhere crossterm's reader reports a lost console itself.
#[cfg(not(unix))]
pub fn stdin_hung_up() -> bool {
    false
}

/// Whether `fd` reports a hang-up, an error or an invalid descriptor.
#[cfg(unix)]
fn fd_hung_up(fd: libc::c_int) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `poll` on one valid, initialised `pollfd` with a zero timeout only writes its
    // `revents`.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_pipe_whose_writer_is_gone_has_hung_up_and_an_open_one_has_not() {
        let (reader, writer) = std::io::pipe().unwrap();
        assert!(!fd_hung_up(reader.as_raw_fd()), "open pipe");
        let mut w = writer;
        w.write_all(b"x").unwrap();
        assert!(!fd_hung_up(reader.as_raw_fd()), "open pipe with data");
        drop(w);
        assert!(fd_hung_up(reader.as_raw_fd()), "writer closed");
    }
}
