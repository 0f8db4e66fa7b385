//! Durable file replacement, shared by run directories, exports and the lab's settings.
//!
//! A file is written under a temporary name in its own directory, flushed to disk, renamed
//! over the target, and the directory is flushed too: after a crash or power loss the target
//! holds either its old bytes or the complete new ones, never a mix, and the rename itself
//! survives.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Distinguishes temporary files of concurrent writers within one process.
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Prefix of every temporary file this module creates (`.NAME.tmp-PID-N[.EXT]`).
pub const TEMP_MARK: &str = ".tmp-";

/// The directory a file path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes a directory's entries (new, renamed or removed files) to disk. A no-op where
/// directories cannot be opened for syncing (Windows).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The permissions `File::create` gives a new file in this process (`0666` less the umask,
/// usually `0644`), read once. The umask is read from `/proc/self/status` where Linux has it
/// (setting it to read it back would race with threads creating files), else assumed `022`.
#[cfg(unix)]
pub fn default_file_mode() -> u32 {
    static MODE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        let umask = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022);
        0o666 & !umask
    })
}

/// Gives a file written by a library that creates it private (safetensors writes through a
/// `0600` temporary file) the permissions of every other file of a run (see
/// [`default_file_mode`]). A no-op off Unix.
pub fn use_default_mode(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(default_file_mode()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Whether `name` is a temporary file left by [`replace_with`] (e.g. after a crash).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

/// Replaces `path` durably: `write` fills a fresh temporary path in the same directory (ending
/// in `.{ext}` when `ext` is given, for encoders that pick the format from the extension);
/// the file is then fsynced, renamed over `path`, and the directory fsynced. On failure the
/// temporary file is removed and `path` is left as it was.
///
/// A symlink stays a symlink: the file it points to is replaced. A path that is no regular
/// file (`/dev/stdout`, a FIFO, a device) is written into once the bytes are complete, never
/// replaced.
pub fn replace_with<E>(
    path: &Path,
    ext: Option<&str>,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), ReplaceError<E>> {
    // Opened through its links as they are (`/dev/stdout` names a pipe by a link that is no
    // path).
    let special = fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
    if special {
        return write_into(path, ext, write);
    }
    let target = link_target(path);
    let path = target.as_path();
    let name = path
        .file_name()
        .ok_or_else(|| {
            ReplaceError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path has no file name",
            ))
        })?
        .to_string_lossy()
        .into_owned();
    let dir = parent_dir(path);
    let tmp = dir.join(temp_name(&format!(".{name}"), ext));
    let result = write(&tmp).map_err(ReplaceError::Write).and_then(|()| {
        // The same permissions whatever library wrote it (see `use_default_mode`).
        use_default_mode(&tmp).map_err(ReplaceError::Io)?;
        // The writer may have closed the file without syncing it: reopen to flush.
        fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| fs::rename(&tmp, path))
            .map_err(ReplaceError::Io)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(&dir).map_err(ReplaceError::Io)
}

/// Whether `path` is where this process's standard output goes (`/dev/stdout`, or the
/// terminal or file it is): a file written there and `--json` would mix in one stream.
pub fn is_stdout(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::metadata(path), fs::metadata("/dev/stdout")) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Refuses `--json` beside an output file that is standard output (see [`is_stdout`]).
pub fn check_json_beside(json: bool, outputs: &[&Path]) -> anyhow::Result<()> {
    if let Some(p) = outputs.iter().find(|p| json && is_stdout(p)) {
        anyhow::bail!(
            "--json writes to standard output, and so would {}: drop --json, or write the file elsewhere",
            p.display()
        );
    }
    Ok(())
}

/// A fresh temporary file name, `{stem}.tmp-PID-N[.ext]` (see [`TEMP_MARK`]).
fn temp_name(stem: &str, ext: Option<&str>) -> String {
    let mut name = format!(
        "{stem}{TEMP_MARK}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    if let Some(ext) = ext {
        name.push('.');
        name.push_str(ext);
    }
    name
}

/// The path a write to `path` lands on: where a symlink points (followed to its end, relative
/// links from their own folder, a dangling one to the file it names), `path` otherwise.
fn link_target(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    // As the kernel does, give up on a loop after 40 links.
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => match fs::read_link(&p) {
                Ok(to) => p = parent_dir(&p).join(to),
                Err(_) => break,
            },
            _ => break,
        }
    }
    p
}

/// [`replace_with`] for a `target` that is no regular file (a FIFO, a terminal, a device):
/// `write` fills a temporary file in the system's temporary folder, whose bytes are then
/// written into `target` (opened for writing, neither created nor truncated).
fn write_into<E>(
    target: &Path,
    ext: Option<&str>,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), ReplaceError<E>> {
    let tmp = std::env::temp_dir().join(temp_name("ddpm-lab", ext));
    let result = write(&tmp).map_err(ReplaceError::Write).and_then(|()| {
        let mut from = fs::File::open(&tmp).map_err(ReplaceError::Io)?;
        let mut to = fs::OpenOptions::new()
            .write(true)
            .open(target)
            .map_err(ReplaceError::Io)?;
        io::copy(&mut from, &mut to)
            .and_then(|_| to.flush())
            .map_err(ReplaceError::Io)
    });
    let _ = fs::remove_file(&tmp);
    result
}

/// Why [`replace_with`] failed: the caller's writer, or the file system.
#[derive(Debug)]
pub enum ReplaceError<E> {
    /// The writer's own error.
    Write(E),
    /// Syncing, renaming or creating failed.
    Io(io::Error),
}

impl<E: std::fmt::Display> std::fmt::Display for ReplaceError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Write(e) => e.fmt(f),
            Self::Io(e) => e.fmt(f),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for ReplaceError<E> {}

/// Writes `bytes` to `path` durably (see [`replace_with`]).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(path, None, |tmp| -> io::Result<()> {
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
    .map_err(|e| match e {
        ReplaceError::Write(e) | ReplaceError::Io(e) => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_stays_and_the_file_it_names_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("target")).unwrap();
        let link = d.path().join("link.png");
        std::os::unix::fs::symlink("target/real.png", &link).unwrap();
        // Dangling at first: the file it names is created.
        write_bytes(&link, b"one").unwrap();
        write_bytes(&link, b"two").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            fs::read_to_string(d.path().join("target/real.png")).unwrap(),
            "two"
        );
        assert_eq!(names(d.path()), ["link.png", "target"]);
        assert_eq!(names(&d.path().join("target")), ["real.png"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_written_into_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("out.png");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        replace_with(&fifo, Some("png"), |tmp| fs::write(tmp, b"image bytes")).unwrap();
        assert_eq!(reader.join().unwrap(), b"image bytes");
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn replaces_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_bytes(&p, b"one").unwrap();
        write_bytes(&p, b"two").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(names(d.path()), vec!["a.json"]);
    }

    #[test]
    fn a_failing_writer_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.bin");
        write_bytes(&p, b"old").unwrap();
        let r = replace_with(&p, Some("png"), |tmp| {
            assert!(tmp.to_string_lossy().ends_with(".png"));
            assert!(is_temp_name(&tmp.file_name().unwrap().to_string_lossy()));
            fs::write(tmp, b"half").unwrap();
            Err("disk full")
        });
        assert!(matches!(r, Err(ReplaceError::Write("disk full"))));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(names(d.path()), vec!["a.bin"]);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nope").join("a.json");
        assert!(write_bytes(&p, b"x").is_err());
        assert!(!is_temp_name("a.json") && !is_temp_name(".a.json"));
    }
}
