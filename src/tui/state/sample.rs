//! State of the Sample screen: the sampling job, its frames and the playback cursor.

use std::path::PathBuf;
use std::time::Duration;

use super::super::workers::Frames;

/// Time between two frames while playing.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(40);

/// Status of a sampling job.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SampleStatus {
    /// Nothing sampled yet.
    #[default]
    Idle,
    /// Sampling: steps done of total.
    Running {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
    },
    /// Frames are ready.
    Ready,
    /// Sampling failed.
    Failed(String),
}

/// A position in a sequence of frames with play / pause.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameCursor {
    /// Current frame.
    pub index: usize,
    /// Number of frames.
    pub len: usize,
    /// Playing the animation.
    pub playing: bool,
    elapsed: Duration,
}

impl FrameCursor {
    /// A cursor over `len` frames at the first one.
    pub fn new(len: usize) -> Self {
        Self {
            len,
            ..Self::default()
        }
    }

    /// Moves by `delta` frames, clamped.
    pub fn step(&mut self, delta: i64) {
        if self.len == 0 {
            return;
        }
        self.index = (self.index as i64 + delta).clamp(0, self.len as i64 - 1) as usize;
    }

    /// First frame.
    pub fn home(&mut self) {
        self.index = 0;
    }

    /// Last frame.
    pub fn end(&mut self) {
        self.index = self.len.saturating_sub(1);
    }

    /// Plays or pauses; playing from the last frame restarts at the first.
    pub fn toggle_play(&mut self) {
        if self.len == 0 {
            return;
        }
        self.playing = !self.playing;
        if self.playing && self.index + 1 >= self.len {
            self.index = 0;
        }
        self.elapsed = Duration::ZERO;
    }

    /// Advances playback by `dt`; returns whether the frame changed.
    pub fn tick(&mut self, dt: Duration) -> bool {
        if !self.playing {
            return false;
        }
        self.elapsed += dt;
        let mut changed = false;
        while self.elapsed >= FRAME_INTERVAL {
            self.elapsed -= FRAME_INTERVAL;
            if self.index + 1 < self.len {
                self.index += 1;
                changed = true;
            } else {
                self.playing = false;
                break;
            }
        }
        changed
    }
}

/// State of the Sample screen.
#[derive(Debug, Clone, Default)]
pub struct SampleState {
    /// Status of the latest job.
    pub status: SampleStatus,
    /// Run the frames were drawn from.
    pub source: Option<PathBuf>,
    /// Frames of the latest job.
    pub frames: Option<Frames>,
    /// Playback position.
    pub cursor: FrameCursor,
    /// An export is running.
    pub exporting: bool,
    /// Result of the latest export.
    pub exported: Option<Result<Vec<PathBuf>, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_steps_clamps_and_plays_to_the_end() {
        let mut c = FrameCursor::new(5);
        c.step(-3);
        assert_eq!(c.index, 0);
        c.step(10);
        assert_eq!(c.index, 4);
        c.toggle_play();
        assert_eq!(c.index, 0);
        assert!(c.tick(FRAME_INTERVAL * 2));
        assert_eq!(c.index, 2);
        c.tick(FRAME_INTERVAL * 10);
        assert_eq!(c.index, 4);
        assert!(!c.playing);
        c.home();
        assert_eq!(c.index, 0);
        c.end();
        assert_eq!(c.index, 4);
    }
}
