//! State of the Data screen: which dataset is loading or loaded, and what it holds.

use super::super::event::Command;
use super::super::workers::{DataInfo, DataMsg, LoadStage};
use super::effect::{Effect, Topic};

/// What the lab says when a Hub dataset could not be reached and the built-in set stands in:
/// how to try again, and how to train on a local copy instead (the user's folder where the
/// lab knows one: `d` picks it). Each fits an 80-column status line.
pub fn fallback_notice(own_folder: Option<&str>) -> String {
    match own_folder {
        Some(_) => "Hub unreachable: shapes stand in · r retries · d picks your folder".into(),
        None => "Hub unreachable: shapes stand in · r retries · your copy: ddpm-lab --dataset DIR"
            .into(),
    }
}

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
    /// Why the requested dataset could not be reached, while the built-in set stands in.
    pub fallback: Option<String>,
}

impl DataState {
    /// The dataset after (`dir > 0`) or before the requested one among `choices` (see
    /// [`crate::tui::settings::LabSettings::dataset_choices`]).
    pub fn neighbour(&self, dir: i32, choices: &[String]) -> String {
        let n = choices.len() as i32;
        match choices.iter().position(|d| *d == self.requested) {
            Some(i) => choices[(i as i32 + dir.signum()).rem_euclid(n) as usize].clone(),
            None => choices.first().cloned().unwrap_or_default(),
        }
    }

    /// Whether a dataset is ready to train on.
    pub fn ready(&self) -> bool {
        self.status == DataStatus::Ready && self.info.is_some()
    }

    /// Whether the requested dataset failed, or the built-in set stands in for it.
    pub fn has_problem(&self) -> bool {
        matches!(self.status, DataStatus::Failed(_)) || self.fallback.is_some()
    }

    /// Name of the dataset loaded (what runs train on): the requested one, or the built-in
    /// set standing in for it.
    pub fn loaded_name(&self) -> Option<&str> {
        self.info.as_ref().map(|i| i.name.as_str())
    }

    /// The dataset as the status bar names it.
    pub fn label(&self) -> String {
        let r = &self.requested;
        match (&self.status, self.loaded_name()) {
            (DataStatus::Idle, _) => "—".to_string(),
            (DataStatus::Loading(_), _) => format!("{r} (loading)"),
            (DataStatus::Ready, Some(n)) if self.fallback.is_some() => {
                format!("{n} (no {r}: offline)")
            }
            (DataStatus::Ready, _) => r.clone(),
            (DataStatus::Failed(_), _) => format!("{r} (failed)"),
        }
    }

    /// Number of example images available.
    pub fn n_examples(&self) -> usize {
        self.info.as_ref().map_or(0, |i| i.examples.len())
    }

    /// Handles a command of the Data screen; d/D cycle through `choices`.
    pub fn handle(&mut self, cmd: Command, choices: &[String]) -> Vec<Effect> {
        match cmd {
            Command::CycleDataset(dir) => vec![Effect::LoadDataset(self.neighbour(dir, choices))],
            Command::ReloadDataset => vec![Effect::LoadDataset(self.requested.clone())],
            _ => Vec::new(),
        }
    }

    /// Marks `name` as requested and loading (the router asks the engine for it).
    pub fn begin_load(&mut self, name: &str) {
        self.requested = name.to_string();
        self.status = DataStatus::Loading(LoadStage::Resolving);
        self.info = None;
        self.fallback = None;
    }

    /// Handles a message of the dataset loader; answers to earlier requests are dropped.
    pub fn on_msg(&mut self, msg: DataMsg, own_folder: Option<&str>) -> Vec<Effect> {
        match msg {
            DataMsg::Progress { name, stage } => {
                if name == self.requested {
                    self.status = DataStatus::Loading(stage);
                }
                Vec::new()
            }
            DataMsg::Ready(info) => {
                if info.name != self.requested
                    && !self.requested.ends_with(info.name.as_str())
                    && !matches!(self.status, DataStatus::Loading(_))
                {
                    // A late answer to an earlier request.
                    return Vec::new();
                }
                self.status = DataStatus::Ready;
                self.info = Some(*info);
                vec![Effect::DataReady]
            }
            DataMsg::Failed { name, message } => {
                if name != self.requested {
                    return Vec::new();
                }
                self.status = DataStatus::Failed(message.clone());
                vec![Effect::error_about(
                    Topic::Dataset(name.clone()),
                    format!("dataset {name}: {message}"),
                )]
            }
            DataMsg::FellBack { name, reason, info } => {
                if name != self.requested {
                    return Vec::new();
                }
                self.status = DataStatus::Ready;
                self.info = Some(*info);
                self.fallback = Some(reason);
                vec![
                    Effect::DataReady,
                    Effect::error_about(Topic::Dataset(name), fallback_notice(own_folder)),
                ]
            }
        }
    }
}
