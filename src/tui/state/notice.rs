//! The status line's message and how long it lives. A message belongs to what caused it (a
//! run starting, a dataset, a sampling job, …) and goes away when that cause ends, so the status
//! line never says "starting…" about a run that trains or shows the error of a dataset that is
//! no longer the one asked for. A message with no such cause passes after a few seconds.

use std::time::Duration;

/// How long a passing message stays (errors stay longer: they need reading).
pub const PASSING_INFO: Duration = Duration::from_secs(8);
/// How long a passing message stays at least before the next key clears it.
pub const READ_AT_LEAST: Duration = Duration::from_secs(2);
/// How long a passing error stays.
pub const PASSING_ERROR: Duration = Duration::from_secs(20);
/// How long the notice that a built-in set stands in for the dataset asked for is shown.
pub const FALLBACK_SHOWN: Duration = Duration::from_secs(30);

/// What a message is about: it stays while that lasts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Topic {
    /// Nothing that lasts: shown for [`PASSING_INFO`] (errors [`PASSING_ERROR`]).
    #[default]
    Passing,
    /// The Train screen's run is starting: until it trains, fails or stops.
    TrainStart,
    /// A refusal because runs train (a fixed setting): passing, and gone as soon as no run
    /// trains, when it no longer holds.
    WhileTraining,
    /// A refusal because the Sample screen samples: passing, and gone as soon as the sampling
    /// has ended.
    WhileSampling,
    /// The dataset `name`: while it is the one asked for and it failed or fell back.
    Dataset(String),
    /// Sampling on the Sample screen: while it runs.
    Sampling,
    /// Sampling the Compare runs: while any of them samples.
    CompareSampling,
    /// Stopping the Compare runs (`x`): while any of them is saving.
    CompareStopping,
    /// Stopping the Train screen's run (`x`): while it saves.
    TrainStopping,
    /// An export: while it runs.
    Export,
    /// Quitting: while the lab saves its runs.
    Shutdown,
    /// Stays until another message replaces it (e.g. problems with the settings file).
    Sticky,
}

/// A one-line message in the status area.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Text.
    pub text: String,
    /// Whether it reports an error.
    pub error: bool,
    /// What it is about (how long it stays).
    pub topic: Topic,
    /// How long it has been shown.
    pub age: Duration,
}

impl Notice {
    /// A passing message.
    pub fn new(text: impl Into<String>, error: bool) -> Self {
        Self {
            text: text.into(),
            error,
            topic: Topic::Passing,
            age: Duration::ZERO,
        }
    }

    /// The same message, about `topic`.
    pub fn about(self, topic: Topic) -> Self {
        Self { topic, ..self }
    }

    /// Whether a passing message has been shown long enough.
    pub fn passed(&self) -> bool {
        let ttl = if self.error {
            PASSING_ERROR
        } else {
            PASSING_INFO
        };
        matches!(
            self.topic,
            Topic::Passing | Topic::WhileTraining | Topic::WhileSampling
        ) && self.age >= ttl
    }
}
