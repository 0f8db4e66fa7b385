//! Saving the lab's settings while it runs, so that a lab killed outright (`kill -9`, a
//! crash) still names its last run at the next start; the UI thread never waits on the disk.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

use super::settings::LabSettings;

/// A thread that writes the settings it is given to the config directory, in the order given
/// (the file is replaced whole each time; see [`LabSettings::save_to`]).
#[derive(Debug)]
pub struct SettingsSaver {
    tx: Sender<LabSettings>,
    thread: JoinHandle<()>,
}

impl SettingsSaver {
    /// Starts the thread, writing into `dir`. A save that fails is left for the one on exit,
    /// which reports its error.
    pub fn start(dir: PathBuf) -> std::io::Result<Self> {
        let (tx, rx) = channel::<LabSettings>();
        let thread = std::thread::Builder::new()
            .name("ddpm-settings".into())
            .spawn(move || {
                while let Ok(mut settings) = rx.recv() {
                    // Only the newest of those waiting matters.
                    while let Ok(newer) = rx.try_recv() {
                        settings = newer;
                    }
                    let _ = settings.save_to(&dir);
                }
            })?;
        Ok(Self { tx, thread })
    }

    /// Asks for `settings` to be saved.
    pub fn save(&self, settings: LabSettings) {
        let _ = self.tx.send(settings);
    }

    /// Waits for the saves asked so far (before the lab's last save, which must come after).
    pub fn finish(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_settings_asked_for_are_on_disk_once_finished() {
        let d = tempfile::tempdir().unwrap();
        let saver = SettingsSaver::start(d.path().to_path_buf()).unwrap();
        for i in 0..5 {
            saver.save(LabSettings {
                last_run: Some(PathBuf::from(format!("/runs/{i}"))),
                ..LabSettings::default()
            });
        }
        saver.finish();
        let read = LabSettings::load_from(d.path()).unwrap();
        assert_eq!(read.last_run, Some(PathBuf::from("/runs/4")));
    }
}
