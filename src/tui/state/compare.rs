//! State of the Compare screen: one run per schedule, trained in turn or round-robin, then
//! sampled from the same noise and stepped through together.

use crate::schedule::BetaSchedule;

use super::super::workers::Frames;
use super::run::RunProgress;
use super::sample::{FrameCursor, SampleStatus};

/// Steps a round-robin run trains before the next one takes over.
pub const ROUND_ROBIN_QUANTUM: usize = 20;

/// One schedule's run and samples.
#[derive(Debug, Clone)]
pub struct CompareSlot {
    /// Schedule of this run.
    pub schedule: BetaSchedule,
    /// Its training progress.
    pub run: RunProgress,
    /// Status of its sampling.
    pub sample_status: SampleStatus,
    /// Its frames.
    pub frames: Option<Frames>,
}

/// State of the Compare screen.
#[derive(Debug, Clone)]
pub struct CompareState {
    /// One slot per schedule, in [`BetaSchedule::ALL`] order.
    pub slots: Vec<CompareSlot>,
    /// Slot currently training.
    pub active: Option<usize>,
    /// The user paused the comparison.
    pub paused: bool,
    /// Steps the active slot did since it took over.
    pub since_switch: usize,
    /// Shared playback cursor of the four denoising sequences.
    pub cursor: FrameCursor,
}

impl Default for CompareState {
    fn default() -> Self {
        Self {
            slots: BetaSchedule::ALL
                .iter()
                .map(|&schedule| CompareSlot {
                    schedule,
                    run: RunProgress::default(),
                    sample_status: SampleStatus::Idle,
                    frames: None,
                })
                .collect(),
            active: None,
            paused: false,
            since_switch: 0,
            cursor: FrameCursor::default(),
        }
    }
}

impl CompareState {
    /// Index of a schedule's slot.
    pub fn index_of(&self, schedule: BetaSchedule) -> Option<usize> {
        self.slots.iter().position(|s| s.schedule == schedule)
    }

    /// Whether any run has a live worker.
    pub fn any_active(&self) -> bool {
        self.slots.iter().any(|s| s.run.is_active())
    }

    /// Whether every run finished.
    pub fn all_finished(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.run.state == super::run::RunState::Finished)
    }

    /// The next slot after `from` (cyclically) that has not finished or failed.
    pub fn next_unfinished(&self, from: usize) -> Option<usize> {
        let n = self.slots.len();
        (1..=n).map(|k| (from + k) % n).find(|&i| {
            !matches!(
                self.slots[i].run.state,
                super::run::RunState::Finished | super::run::RunState::Failed(_)
            )
        })
    }

    /// Length of the longest frame sequence.
    pub fn frame_len(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.frames.as_ref().map(|f| f.len()))
            .max()
            .unwrap_or(0)
    }
}
