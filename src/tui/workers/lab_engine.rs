//! The real engine behind the lab: dataset loading, training, speed estimates, sampling and
//! exports, each on its own thread, reporting through the app's channel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use crate::data::{load_dataset, DatasetSpec, ImageSet, LoadOptions, LoadProgress};
use crate::train::events::{TrainCommand, TrainEvent};
use crate::tui::settings::TrainSettings;

use super::{
    DataInfo, DataMsg, Engine, Estimate, ExportRequest, Frames, LoadStage, OpenedRun,
    RunSummary, SampleMsg, SampleRequest, Slot, TrainRequest, WorkerMsg,
};

/// Examples kept for the Data and Schedules screens.
pub const EXAMPLES: usize = 64;

/// The loaded dataset: its name and training images.
#[derive(Clone)]
struct Loaded {
    name: String,
    train: Arc<ImageSet>,
}

/// Engine running the real data layer, trainer and sampler on threads.
pub struct LabEngine {
    runs_root: PathBuf,
    loaded: Arc<Mutex<Option<Loaded>>>,
    generation: Arc<AtomicU64>,
}

impl LabEngine {
    /// An engine writing runs under `runs_root`.
    pub fn new(runs_root: PathBuf) -> Self {
        Self {
            runs_root,
            loaded: Arc::new(Mutex::new(None)),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    fn train_set(&self, dataset: &str) -> Result<Arc<ImageSet>, String> {
        match &*self.loaded.lock().expect("dataset lock") {
            Some(l) if l.name == dataset => Ok(l.train.clone()),
            Some(l) => Err(format!("{dataset} is not loaded ({} is)", l.name)),
            None => Err(format!("{dataset} is not loaded yet")),
        }
    }
}
