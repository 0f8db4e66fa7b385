//! State of the Data screen: which dataset is loading or loaded, and what it holds.

use super::super::settings::BUILTIN_DATASETS;
use super::super::workers::{DataInfo, LoadStage};

/// Loading status of the dataset.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum DataStatus {
    /// Nothing requested yet.
    #[default]
    Idle,
    /// Loading, at a stage.
    Loading(LoadStage),
    /// Loaded.
    Ready,
    /// Failed with a message.
    Failed(String),
}

/// State of the Data screen.
#[derive(Debug, Clone, Default)]
pub struct DataState {
    /// Dataset requested (name or path).
    pub requested: String,
    /// Status of that request.
    pub status: DataStatus,
    /// The loaded dataset, when ready.
    pub info: Option<DataInfo>,
}

impl DataState {
    /// The dataset after (`dir > 0`) or before the requested one among the built-ins.
    pub fn neighbour(&self, dir: i32) -> &'static str {
        let n = BUILTIN_DATASETS.len() as i32;
        match BUILTIN_DATASETS.iter().position(|d| *d == self.requested) {
            Some(i) => BUILTIN_DATASETS[(i as i32 + dir.signum()).rem_euclid(n) as usize],
            None => BUILTIN_DATASETS[0],
        }
    }

    /// Whether a dataset is ready to train on.
    pub fn ready(&self) -> bool {
        self.status == DataStatus::Ready && self.info.is_some()
    }

    /// Number of example images available.
    pub fn n_examples(&self) -> usize {
        self.info.as_ref().map_or(0, |i| i.examples.len())
    }
}
