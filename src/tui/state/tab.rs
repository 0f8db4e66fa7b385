//! Where the router stands: the current screen, the window over it, and the app's life.

use std::time::Duration;

/// The six screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Dataset source, examples, label counts.
    Data,
    /// Beta schedules side by side.
    Schedules,
    /// Configure and watch a training run.
    Train,
    /// Sample and step through denoising.
    Sample,
    /// One run per schedule, compared.
    Compare,
    /// Every run on disk, their loss curves overlaid.
    Runs,
}

impl Tab {
    /// Every tab, in order (number keys 1–6).
    pub const ALL: [Tab; 6] = [
        Tab::Data,
        Tab::Schedules,
        Tab::Train,
        Tab::Sample,
        Tab::Compare,
        Tab::Runs,
    ];

    /// Title shown in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Data => "Data",
            Tab::Schedules => "Schedules",
            Tab::Train => "Train",
            Tab::Sample => "Sample",
            Tab::Compare => "Compare",
            Tab::Runs => "Runs",
        }
    }

    /// Position in [`Tab::ALL`].
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|&t| t == self).unwrap_or(0)
    }

    /// The tab `delta` places further, wrapping around.
    pub fn cycle(self, delta: i32) -> Tab {
        let n = Tab::ALL.len() as i32;
        Tab::ALL[(self.index() as i32 + delta).rem_euclid(n) as usize]
    }
}

/// A window drawn over the current screen.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Overlay {
    /// None.
    #[default]
    None,
    /// Every key.
    Help,
    /// "A run is unsaved: quit?".
    ConfirmQuit,
    /// "Remove this run for good?" (the Runs screen's `d`), about the run in this folder.
    ConfirmRemove(std::path::PathBuf),
}

/// Where the app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifecycle {
    /// Normal operation.
    #[default]
    Running,
    /// Waiting for runs to checkpoint before exiting (time waited so far).
    ShuttingDown(Duration),
    /// The main loop should exit.
    Done,
}
