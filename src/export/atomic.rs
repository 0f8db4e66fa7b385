//! Atomic file writes: render into a temporary sibling of the target, then rename it over the
//! target, so readers never see a half-written file and a failed export leaves nothing behind.

use std::fs;
use std::path::Path;

use crate::files::{self, ReplaceError};

use super::ExportError;

/// Writes `path` atomically and durably (see [`crate::files::replace_with`]). `render`
/// receives a fresh temporary path in the same directory, ending in `.{temp_ext}` (some
/// encoders pick the format from the extension), and must write the complete file there. On
/// failure the temporary file is removed and the error is returned.
pub(crate) fn write_atomically<F>(path: &Path, temp_ext: &str, render: F) -> Result<(), ExportError>
where
    F: FnOnce(&Path) -> Result<(), ExportError>,
{
    check_folder(path)?;
    files::replace_with(path, Some(temp_ext), |tmp| {
        // Creating the file up front turns an unwritable directory into a plain I/O error
        // that names the target, before any rendering work is done.
        fs::File::create(tmp).map_err(|error| ExportError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        render(tmp)
    })
    .map_err(|e| match e {
        ReplaceError::Write(e) => e,
        ReplaceError::Io(error) => ExportError::Io {
            path: path.to_path_buf(),
            error,
        },
    })
}

/// Errs unless `path` could be written by [`write_atomically`]: not a directory, in a folder
/// that exists (whether it is writable shows only when writing).
pub(crate) fn check_folder(path: &Path) -> Result<(), ExportError> {
    if path.is_dir() {
        return Err(ExportError::IsADirectory {
            path: path.to_path_buf(),
        });
    }
    let dir = files::parent_dir(path);
    if !dir.is_dir() {
        return Err(ExportError::NoSuchDirectory {
            path: path.to_path_buf(),
            dir,
        });
    }
    Ok(())
}

/// Errs where no file can be made in `path`'s folder (read-only, not permitted, a file system
/// that takes none), so that a command finds out before the work whose result it would hold.
/// A file is made there and removed at once.
pub(crate) fn check_writable(path: &Path) -> Result<(), ExportError> {
    let dir = files::parent_dir(path);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let probe = dir.join(format!(".ddpm-lab-probe-{}-{nanos}", std::process::id()));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(ExportError::Io {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// Lower-case extension of `path`, if any.
pub(crate) fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// Accepts `path` when its extension is one of `allowed` (lower case) or when it has none.
pub(crate) fn check_extension(
    path: &Path,
    allowed: &[&str],
    expected: &'static str,
) -> Result<(), ExportError> {
    match extension(path) {
        None => Ok(()),
        Some(ext) if allowed.contains(&ext.as_str()) => Ok(()),
        Some(_) => Err(ExportError::UnsupportedFormat {
            path: path.to_path_buf(),
            expected,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_render_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.png");
        let err = write_atomically(&target, "png", |tmp| {
            fs::write(tmp, b"partial").unwrap();
            Err(ExportError::Render {
                path: target.clone(),
                message: "boom".into(),
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn success_replaces_target_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.png");
        fs::write(&target, b"old").unwrap();
        write_atomically(&target, "png", |tmp| {
            assert_eq!(tmp.parent(), Some(dir.path()));
            assert!(tmp.to_string_lossy().ends_with(".png"));
            fs::write(tmp, b"new").map_err(|error| ExportError::Io {
                path: tmp.to_path_buf(),
                error,
            })
        })
        .unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A folder no file can be made in is found before any work: as root permissions do
    /// not stop a write, /sys (which takes no new file) stands in where it exists.
    #[test]
    fn an_unwritable_folder_is_found_up_front() {
        let dir = tempfile::tempdir().unwrap();
        check_writable(&dir.path().join("x.png")).unwrap();
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "probe left behind"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let ro = dir.path().join("ro");
            fs::create_dir(&ro).unwrap();
            fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
            let readonly_refuses = fs::File::create(ro.join("t")).is_err();
            let target = if readonly_refuses {
                ro.join("x.png")
            } else {
                std::path::PathBuf::from("/sys/ddpm-lab-x.png")
            };
            if target.parent().unwrap().is_dir() {
                let e = check_writable(&target).unwrap_err().to_string();
                assert!(
                    e.starts_with(&format!("cannot write {}", target.display())),
                    "{e}"
                );
            }
            fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn extension_check() {
        assert!(check_extension(Path::new("a.PNG"), &["png"], ".png").is_ok());
        assert!(check_extension(Path::new("a"), &["png"], ".png").is_ok());
        let err = check_extension(Path::new("a.jpg"), &["png"], ".png").unwrap_err();
        assert!(err.to_string().contains("a.jpg"), "{err}");
    }
}
