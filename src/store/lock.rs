//! One writer per run: an advisory lock on `RUN_DIR/lock`, held by the process that trains the
//! run for as long as it trains it. The lock is the operating system's (`flock` on Unix), so it
//! is released when the process ends, however it ends; the pid written into the file only
//! names the holder in the error a second trainer gets.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = "lock";

/// The exclusive right to train one run; released on drop.
#[derive(Debug)]
pub struct RunLock {
    file: fs::File,
}

impl RunLock {
    /// Takes the lock of the run in `dir`, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(busy(dir, &describe_holder(holder.trim())));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| write!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { file })
    }

    /// Refuses, as [`Self::acquire`] would, a run in `dir` that a process trains now (without
    /// taking the lock): to say so before the work that comes before taking it.
    pub fn check_free(dir: &Path) -> Result<()> {
        match Self::holder(dir) {
            Some(who) => Err(busy(dir, &who)),
            None => Ok(()),
        }
    }

    /// Whether some process holds the lock of the run in `dir` (without taking it).
    pub fn is_held(dir: &Path) -> bool {
        Self::holder(dir).is_some()
    }

    /// The process that holds the lock of the run in `dir`, as error messages name it
    /// (`pid 4242`, or `another process` where the file names none); `None` when nobody holds
    /// it. The lock is not taken.
    pub fn holder(dir: &Path) -> Option<String> {
        let mut f = fs::File::open(dir.join(LOCK_FILE)).ok()?;
        match f.try_lock_shared() {
            Ok(()) => {
                let _ = f.unlock();
                None
            }
            Err(_) => {
                let mut pid = String::new();
                let _ = f.read_to_string(&mut pid);
                Some(describe_holder(pid.trim()))
            }
        }
    }
}

/// The refusal of a run in `dir` that `who` trains (trying again later may succeed).
fn busy(dir: &Path, who: &str) -> anyhow::Error {
    crate::errors::Busy(format!(
        "run {} is being trained by {who}; open it read-only (the lab follows it live) or wait until it stops",
        dir.display()
    ))
    .into()
}

/// The holder named by the lock file's contents (its pid, or nothing).
fn describe_holder(pid: &str) -> String {
    if pid.is_empty() {
        "another process".to_string()
    } else {
        format!("pid {pid}")
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_until_the_first_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(d.path()).unwrap();
        assert!(RunLock::is_held(d.path()));
        let err = RunLock::acquire(d.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert_eq!(
            RunLock::holder(d.path()),
            Some(format!("pid {}", std::process::id()))
        );
        drop(first);
        assert!(!RunLock::is_held(d.path()));
        assert_eq!(RunLock::holder(d.path()), None);
        let _again = RunLock::acquire(d.path()).unwrap();
    }
}
