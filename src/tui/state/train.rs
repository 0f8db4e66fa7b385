//! State of the Train screen: the editable configuration, the run, the epoch estimate and the
//! picker of earlier runs.

use crate::device::DeviceSpec;
use crate::schedule::BetaSchedule;

use crate::diffusion::{LossKind, Objective};

use super::super::settings::{ModelPreset, TrainSettings};
use super::super::workers::{Estimate, RunSummary};
use super::run::RunProgress;

/// One editable line of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Beta schedule.
    Schedule,
    /// T.
    Timesteps,
    /// Loss.
    Loss,
    /// Prediction target.
    Objective,
    /// Model size.
    Model,
    /// Batch size.
    Batch,
    /// Learning rate.
    Lr,
    /// Steps of the run.
    Steps,
    /// Training-time budget of one press of space.
    Budget,
    /// Device.
    Device,
    /// Seed.
    Seed,
    /// Preview interval.
    Preview,
}

impl Field {
    /// Every field, in display order.
    pub const ALL: [Field; 12] = [
        Field::Schedule,
        Field::Timesteps,
        Field::Loss,
        Field::Objective,
        Field::Model,
        Field::Batch,
        Field::Lr,
        Field::Steps,
        Field::Budget,
        Field::Device,
        Field::Seed,
        Field::Preview,
    ];

    /// Label shown in the table.
    pub fn label(self) -> &'static str {
        match self {
            Field::Schedule => "schedule",
            Field::Timesteps => "T",
            Field::Loss => "loss",
            Field::Objective => "objective",
            Field::Model => "model",
            Field::Batch => "batch",
            Field::Lr => "lr",
            Field::Steps => "steps",
            Field::Budget => "budget",
            Field::Device => "device",
            Field::Seed => "seed",
            Field::Preview => "preview every",
        }
    }

    /// The field's value in `s`, as shown.
    pub fn value(self, s: &TrainSettings) -> String {
        match self {
            Field::Schedule => s.schedule.name().to_string(),
            Field::Timesteps => s.timesteps.to_string(),
            Field::Loss => s.loss.to_string(),
            Field::Objective => s.objective.to_string(),
            Field::Model => s.model_name(),
            Field::Batch => s.batch_size.to_string(),
            Field::Lr => format!("{:.0e}", s.lr),
            Field::Steps => s.steps.to_string(),
            Field::Budget => match s.time_limit_s {
                Some(t) => format!("{:.0} min", t / 60.0),
                None => "none".to_string(),
            },
            Field::Device => s.device.to_string(),
            Field::Seed => s.seed.to_string(),
            Field::Preview => {
                if s.preview_every == 0 {
                    "never".to_string()
                } else {
                    format!("{} steps", s.preview_every)
                }
            }
        }
    }

    /// Changes the field in `s` one notch up (`dir > 0`) or down.
    pub fn adjust(self, s: &mut TrainSettings, dir: i32) {
        match self {
            Field::Schedule => s.schedule = cycle(&BetaSchedule::ALL, s.schedule, dir),
            Field::Timesteps => {
                s.timesteps = notch(&[10, 50, 100, 200, 300, 500, 1000], s.timesteps, dir)
            }
            Field::Loss => {
                s.loss = cycle(&[LossKind::Huber, LossKind::L1, LossKind::L2], s.loss, dir)
            }
            Field::Objective => {
                s.objective = cycle(
                    &[Objective::Noise, Objective::X0, Objective::V],
                    s.objective,
                    dir,
                )
            }
            Field::Model => {
                s.model = cycle(&ModelPreset::ALL, s.model, dir);
                s.custom_model = None;
            }
            Field::Batch => s.batch_size = notch(&[8, 16, 32, 64, 128, 256], s.batch_size, dir),
            Field::Lr => {
                const LRS: [f64; 6] = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3];
                let i = LRS
                    .iter()
                    .position(|&l| l >= s.lr * 0.999)
                    .unwrap_or(LRS.len() - 1);
                let i = (i as i32 + dir.signum()).clamp(0, LRS.len() as i32 - 1) as usize;
                s.lr = LRS[i];
            }
            Field::Steps => {
                s.steps = notch(
                    &[
                        20, 100, 200, 500, 650, 1000, 2000, 2345, 5000, 10000, 20000, 50000,
                    ],
                    s.steps,
                    dir,
                )
            }
            Field::Budget => {
                // Minutes; 0 = no budget.
                let cur = s
                    .time_limit_s
                    .map(|t| (t / 60.0).round() as usize)
                    .unwrap_or(0);
                let m = notch(&[0, 2, 5, 10, 20, 30, 60, 120], cur, dir);
                s.time_limit_s = (m > 0).then_some(m as f64 * 60.0);
            }
            Field::Device => {
                const DEVICES: [DeviceSpec; 3] =
                    [DeviceSpec::Cpu, DeviceSpec::Cuda(0), DeviceSpec::Metal];
                s.device = cycle(&DEVICES, s.device, dir)
            }
            Field::Seed => s.seed = (s.seed as i64 + dir as i64).max(0) as u64,
            Field::Preview => {
                s.preview_every = notch(&[0, 50, 100, 200, 469, 500, 1000], s.preview_every, dir)
            }
        }
    }
}

fn cycle<T: Copy + PartialEq>(all: &[T], cur: T, dir: i32) -> T {
    let i = all.iter().position(|&x| x == cur).unwrap_or(0) as i32;
    all[(i + dir.signum()).rem_euclid(all.len() as i32) as usize]
}

fn notch(values: &[usize], cur: usize, dir: i32) -> usize {
    if dir > 0 {
        values.iter().copied().find(|&v| v > cur).unwrap_or(cur)
    } else {
        values
            .iter()
            .rev()
            .copied()
            .find(|&v| v < cur)
            .unwrap_or(cur)
    }
}

/// The picker of earlier runs (`o`).
#[derive(Debug, Clone, Default)]
pub struct RunPicker {
    /// Runs found.
    pub runs: Vec<RunSummary>,
    /// Highlighted row.
    pub selected: usize,
}

/// What the run picker is waiting for from the engine (the disk is read on a worker thread).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PickerWait {
    /// Nothing asked.
    #[default]
    Idle,
    /// `o` was pressed: the list of runs is being read.
    Listing,
    /// This run was chosen: its configuration and history are being read.
    Opening(std::path::PathBuf),
}

/// State of the Train screen.
#[derive(Debug, Clone, Default)]
pub struct TrainState {
    /// The run.
    pub run: RunProgress,
    /// Highlighted configuration field.
    pub field: usize,
    /// Latest estimate of the training speed.
    pub estimate: Option<Estimate>,
    /// An estimate is being measured.
    pub estimating: bool,
    /// Whether the current run was opened from disk (continue with resume).
    pub opened: bool,
    /// Keeps the watcher of an opened run alive (dropping it stops the watcher).
    pub watch: Option<std::sync::mpsc::Sender<()>>,
}

impl TrainState {
    /// Whether the configuration may be edited (no worker alive).
    pub fn editable(&self) -> bool {
        !self.run.is_active()
    }

    /// The highlighted field.
    pub fn current_field(&self) -> Field {
        Field::ALL[self.field.min(Field::ALL.len() - 1)]
    }

    /// Moves the highlight.
    pub fn select(&mut self, delta: i32) {
        let n = Field::ALL.len() as i32;
        self.field = (self.field as i32 + delta).rem_euclid(n) as usize;
    }

    /// Seconds per epoch of `n_train` images, when the estimate matches `settings`.
    pub fn epoch_seconds(&self, settings: &TrainSettings, n_train: usize) -> Option<f64> {
        let e = self.estimate.as_ref()?;
        let same = e.settings.unet(1) == settings.unet(1)
            && e.settings.batch_size == settings.batch_size
            && e.settings.device == settings.device;
        match (&e.result, same) {
            (Ok(ips), true) if *ips > 0.0 => Some(n_train as f64 / ips),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cycle_and_clamp() {
        let mut s = TrainSettings {
            schedule: BetaSchedule::Linear,
            ..TrainSettings::default()
        };
        Field::Schedule.adjust(&mut s, 1);
        assert_eq!(s.schedule, BetaSchedule::Quadratic);
        Field::Schedule.adjust(&mut s, -1);
        Field::Schedule.adjust(&mut s, -1);
        assert_eq!(s.schedule, BetaSchedule::Sigmoid);
        s.batch_size = 256;
        Field::Batch.adjust(&mut s, 1);
        assert_eq!(s.batch_size, 256);
        Field::Batch.adjust(&mut s, -1);
        assert_eq!(s.batch_size, 128);
        s.lr = 1e-3;
        Field::Lr.adjust(&mut s, 1);
        assert_eq!(s.lr, 2e-3);
        assert_eq!(Field::Lr.value(&s), "2e-3");
        Field::Device.adjust(&mut s, 1);
        assert_eq!(s.device, DeviceSpec::Cuda(0));
        s.seed = 0;
        Field::Seed.adjust(&mut s, -1);
        assert_eq!(s.seed, 0);
        // The budget: 10 minutes by default on a CPU, up a notch, down to none.
        assert_eq!(Field::Budget.value(&s), "10 min");
        Field::Budget.adjust(&mut s, 1);
        assert_eq!(s.time_limit_s, Some(1200.0));
        for _ in 0..5 {
            Field::Budget.adjust(&mut s, -1);
        }
        assert_eq!(
            (s.time_limit_s, Field::Budget.value(&s).as_str()),
            (None, "none")
        );
        Field::Budget.adjust(&mut s, 1);
        assert_eq!(s.time_limit_s, Some(120.0));
    }
}
