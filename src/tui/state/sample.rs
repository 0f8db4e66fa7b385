//! State of the Sample screen: the sampling job, its frames and the playback cursor.

use std::path::PathBuf;
use std::time::Duration;

use super::super::event::Command;
use super::super::settings::SampleSettings;
use super::super::workers::{ExportRequest, Frames, SampleMsg, Slot, StopFlag};
use super::effect::{Ctx, Effect, Topic};
use super::train::notch;

/// Time between two frames while playing.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(40);

/// Numbers of images that `+` / `−` step through.
const SAMPLE_COUNTS: [usize; 6] = [1, 4, 9, 16, 25, 36];
/// DDIM step counts that `[` / `]` step through.
const DDIM_STEPS: [usize; 7] = [10, 20, 25, 50, 100, 200, 500];
/// DDIM η values that `n` / `N` step through: 0 is deterministic, 1 adds back as much noise as
/// DDPM's steps do.
const DDIM_ETAS: [f64; 5] = [0.0, 0.2, 0.5, 0.8, 1.0];

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
    /// Stopped (`x`) after `done` of `total` steps; the frames shown are the earlier ones.
    Stopped {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
    },
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

    /// Goes to frame `i` (clamped) and stops playing (the mouse took over).
    pub fn seek(&mut self, i: usize) {
        if self.len > 0 {
            self.index = i.min(self.len - 1);
            self.playing = false;
        }
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

    /// Advances playback by `dt`; returns whether the frame, or whether it plays, changed
    /// (either is drawn). Playback stops on the last frame as it reaches it.
    pub fn tick(&mut self, dt: Duration) -> bool {
        if !self.playing {
            return false;
        }
        self.elapsed += dt;
        let mut changed = false;
        while self.elapsed >= FRAME_INTERVAL && self.index + 1 < self.len {
            self.elapsed -= FRAME_INTERVAL;
            self.index += 1;
            changed = true;
        }
        if self.index + 1 >= self.len {
            self.playing = false;
            changed = true;
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
    /// T of [`Self::source`] where the Train screen said it (a run opened there, which `u`
    /// may close while this screen goes on drawing from it).
    pub source_timesteps: Option<usize>,
    /// The run and settings the frames shown were drawn with (the screen's may have changed
    /// since).
    pub drawn_with: Option<SampleSettings>,
    /// The run the frames shown were drawn from.
    pub drawn_from: Option<PathBuf>,
    /// The run and settings of the job under way, theirs once it is done.
    pending: Option<(PathBuf, SampleSettings)>,
    /// What stops the job under way (`x`).
    stop: Option<StopFlag>,
    /// Frames of the latest job.
    pub frames: Option<Frames>,
    /// Playback position.
    pub cursor: FrameCursor,
    /// An export is running.
    pub exporting: bool,
    /// Result of the latest export.
    pub exported: Option<Result<Vec<PathBuf>, String>>,
    /// While sampling: the images being denoised and the steps done when they were sent.
    pub current: Option<(usize, Vec<crate::imaging::Image8>)>,
    /// While sampling: time since it began (advanced by the app's clock).
    pub elapsed: Duration,
}

/// `g` before the Train screen's run has a checkpoint (every line of the lab fits 80 columns).
pub const NO_CHECKPOINT_YET: &str =
    "this run has no checkpoint yet (one every 2 min of training; c on Train: now)";
/// `g` with no run trained or opened.
pub const NOTHING_TO_SAMPLE: &str =
    "nothing to sample yet: train a run (3) or open one (o on Train)";

/// What the Sample screen draws from (the router knows: see `App::sample_target`).
#[derive(Debug, Clone, PartialEq)]
pub enum SampleTarget {
    /// A run with a checkpoint; `step`: its newest, when it is the Train screen's run.
    Run {
        /// The run's directory.
        dir: PathBuf,
        /// Step of the checkpoint `g` samples, when known.
        step: Option<usize>,
    },
    /// The Train screen's run, training before its first checkpoint.
    Awaiting(PathBuf),
    /// No run trained or opened yet.
    Nothing,
}

/// What a stopped sampling leaves on screen, said after `sampling stopped…`: the images shown
/// before, where there are some (`kept`).
pub fn what_stays(kept: bool) -> &'static str {
    if kept {
        ": the images shown are the earlier ones"
    } else {
        " (g samples again)"
    }
}

/// Switches `s` to DDIM; whether it was on DDPM.
fn switch_to_ddim(s: &mut SampleSettings) -> bool {
    !std::mem::replace(&mut s.ddim, true)
}

/// The η of [`DDIM_ETAS`] after `eta` in direction `dir` (`n` up, `N` down); `eta` at the
/// ends (a remembered η between two values goes to the next one).
pub fn next_eta(eta: f64, dir: i32) -> f64 {
    let found = if dir > 0 {
        DDIM_ETAS.iter().copied().find(|&v| v > eta + 1e-9)
    } else {
        DDIM_ETAS.iter().rev().copied().find(|&v| v < eta - 1e-9)
    };
    found.unwrap_or(eta)
}

/// The seed after `seed` in direction `dir` (`s` up, `S` down, not below 0).
pub fn next_seed(seed: u64, dir: i32) -> u64 {
    if dir < 0 {
        seed.saturating_sub(1)
    } else {
        seed.wrapping_add(1)
    }
}

impl SampleState {
    /// The settings of the sampling under way (the screen's may have changed since).
    pub fn sampling_with(&self) -> Option<&SampleSettings> {
        match self.status {
            SampleStatus::Running { .. } => self.pending.as_ref().map(|(_, s)| s),
            _ => None,
        }
    }

    /// Handles a command of the Sample screen; `target` is what it draws from, a run of
    /// `timesteps` steps (DDIM takes at most that many).
    pub fn handle(
        &mut self,
        cmd: Command,
        target: SampleTarget,
        timesteps: usize,
        ctx: &mut Ctx,
    ) -> Vec<Effect> {
        let frame_keys = matches!(
            cmd,
            Command::StepFrames(_) | Command::FirstFrame | Command::LastFrame | Command::TogglePlay
        );
        if frame_keys && self.frames.as_ref().is_none_or(|f| f.is_empty()) {
            // Nothing to step through yet: say what brings frames.
            return vec![Effect::info(if self.is_sampling() {
                "the frames come once the sampling ends"
            } else {
                "no frames yet: g generates images (and their denoising to step through)"
            })];
        }
        let s = &mut ctx.settings.sample;
        match cmd {
            Command::StepFrames(delta) => self.cursor.step(delta),
            Command::FirstFrame => self.cursor.home(),
            Command::LastFrame => self.cursor.end(),
            Command::TogglePlay => self.cursor.toggle_play(),
            Command::Generate => {
                // What the sampler runs, and so what the frames and their files are named by.
                let drawn_with = s.for_run(timesteps);
                return self.generate(target, &drawn_with);
            }
            Command::Export => return self.export(ctx),
            Command::StopSampling => return self.stop(),
            Command::ToggleSampler => s.ddim = !s.ddim,
            // Steps and η are DDIM's: on DDPM (every one of the T steps, no η), the keys
            // switch to DDIM and say so.
            Command::DdimSteps(_) | Command::DdimEta(_) if switch_to_ddim(s) => {
                let what = if matches!(cmd, Command::DdimEta(_)) {
                    format!(", η = {} (DDPM has no η", s.eta)
                } else {
                    " (DDPM takes all T steps".to_string()
                };
                return vec![Effect::info(format!(
                    "sampler DDIM {} steps{what}; k switches back)",
                    s.ddim_steps
                ))];
            }
            Command::DdimSteps(dir) => s.ddim_steps = notch(&DDIM_STEPS, s.ddim_steps, dir),
            Command::DdimEta(dir) => s.eta = next_eta(s.eta, dir),
            Command::SampleCount(dir) => s.n = notch(&SAMPLE_COUNTS, s.n, dir),
            Command::NewSeed(dir) => s.seed = next_seed(s.seed, dir),
            _ => {}
        }
        Vec::new()
    }

    /// A sampling is under way.
    pub fn is_sampling(&self) -> bool {
        matches!(self.status, SampleStatus::Running { .. })
    }

    /// Advances the sampling clock; whether the screen changes (it does not by itself: the
    /// worker's progress redraws it).
    pub fn tick(&mut self, dt: Duration) -> bool {
        if self.is_sampling() {
            self.elapsed += dt;
        }
        false
    }

    /// Seconds left while sampling, from the pace so far (`None` before the first step).
    pub fn time_left_s(&self) -> Option<f64> {
        match self.status {
            SampleStatus::Running { done, total } if done > 0 && total >= done => {
                Some(self.elapsed.as_secs_f64() * (total - done) as f64 / done as f64)
            }
            _ => None,
        }
    }

    /// `g`: samples from `target` with `ctx_settings`.
    fn generate(&mut self, target: SampleTarget, ctx_settings: &SampleSettings) -> Vec<Effect> {
        if matches!(self.status, SampleStatus::Running { .. }) {
            return vec![Effect::error_about(
                Topic::WhileSampling,
                "already sampling: g again once it has finished",
            )];
        }
        let run_dir = match target {
            SampleTarget::Run { dir, .. } => dir,
            SampleTarget::Awaiting(_) => return vec![Effect::error(NO_CHECKPOINT_YET)],
            SampleTarget::Nothing => return vec![Effect::error(NOTHING_TO_SAMPLE)],
        };
        self.status = SampleStatus::Running { done: 0, total: 0 };
        self.current = None;
        self.elapsed = Duration::ZERO;
        if self.source.as_ref() != Some(&run_dir) {
            self.source_timesteps = None;
        }
        self.source = Some(run_dir.clone());
        self.pending = Some((run_dir.clone(), ctx_settings.clone()));
        self.cursor.playing = false;
        self.exported = None;
        let stop = StopFlag::default();
        self.stop = Some(stop.clone());
        // Said while it lasts, in place of what an earlier job or key left in the line.
        let sampler = if ctx_settings.ddim {
            format!("DDIM {} steps", ctx_settings.ddim_steps)
        } else {
            "DDPM".to_string()
        };
        vec![
            Effect::Sample {
                slot: Slot::Main,
                run_dir,
                stop,
            },
            Effect::info_about(
                Topic::Sampling,
                format!(
                    "sampling {} images with {sampler}… (x stops it)",
                    ctx_settings.n
                ),
            ),
        ]
    }

    /// `x`: stops the sampling under way after its current step.
    fn stop(&mut self) -> Vec<Effect> {
        match (&self.status, &self.stop) {
            (SampleStatus::Running { .. }, Some(stop)) => {
                stop.raise();
                vec![Effect::info_about(
                    Topic::Sampling,
                    "stopping the sampling…",
                )]
            }
            _ => vec![Effect::error(
                "nothing is sampling (x stops a sampling under way)",
            )],
        }
    }

    /// `e`: exports the frames as a PNG grid and a GIF into the run's `exports` directory,
    /// named after what they are: the checkpoint's step (when known), the sampler and the seed
    /// they were drawn with (not the screen's settings, which may have changed since).
    fn export(&mut self, ctx: &Ctx) -> Vec<Effect> {
        let Some(frames) = &self.frames else {
            return vec![Effect::error(
                "nothing to export: generate samples first (g)",
            )];
        };
        if self.exporting {
            return Vec::new();
        }
        if matches!(self.status, SampleStatus::Running { .. }) {
            return vec![Effect::error_about(
                Topic::WhileSampling,
                "sampling is under way: export once it has finished",
            )];
        }
        let out_dir = self
            .drawn_from
            .clone()
            .or_else(|| self.source.clone())
            .unwrap_or_else(|| ctx.settings.runs_root())
            .join("exports");
        let s = self.drawn_with.as_ref().unwrap_or(&ctx.settings.sample);
        let step = frames.step.map_or(String::new(), |n| format!("step{n}-"));
        // The number of images too: another count from the same seed is other samples.
        let n = frames.frames.last().map_or(0, Vec::len);
        let stem = if s.ddim {
            // η where it is not DDIM's deterministic 0: other noise, other samples.
            let eta = if s.eta > 0.0 {
                format!("-eta{}", s.eta)
            } else {
                String::new()
            };
            format!(
                "samples-{step}ddim{}{eta}-seed{}-n{n}",
                s.ddim_steps, s.seed
            )
        } else {
            format!("samples-{step}ddpm-seed{}-n{n}", s.seed)
        };
        let frames = frames.clone();
        self.exporting = true;
        vec![
            Effect::Export(ExportRequest {
                frames,
                out_dir,
                stem,
            }),
            Effect::info_about(Topic::Export, "exporting…"),
        ]
    }

    /// A message of the sampling worker.
    pub fn on_msg(&mut self, msg: SampleMsg) -> Vec<Effect> {
        match msg {
            SampleMsg::Progress { done, total } => {
                self.status = SampleStatus::Running { done, total }
            }
            SampleMsg::Denoising {
                done,
                total,
                images,
            } => {
                self.status = SampleStatus::Running { done, total };
                self.current = Some((done, images));
            }
            SampleMsg::Done(frames) => {
                if let Some((dir, settings)) = self.pending.take() {
                    self.drawn_from = Some(dir);
                    self.drawn_with = Some(settings);
                }
                self.status = SampleStatus::Ready;
                self.current = None;
                self.cursor = FrameCursor::new(frames.len());
                self.cursor.end();
                self.frames = Some(*frames);
            }
            SampleMsg::Stopped { done, total } => {
                self.pending = None;
                self.status = SampleStatus::Stopped { done, total };
                self.current = None;
                return vec![Effect::info(format!(
                    "sampling stopped at step {done} of {total}{}",
                    what_stays(self.frames.is_some())
                ))];
            }
            SampleMsg::Failed(e) => {
                self.pending = None;
                self.status = SampleStatus::Failed(e.clone());
                self.current = None;
                return vec![Effect::error(format!("sampling failed: {e}"))];
            }
        }
        Vec::new()
    }

    /// The end of an export: the files written, or why it failed.
    pub fn on_exported(&mut self, result: Result<Vec<PathBuf>, String>) -> Vec<Effect> {
        self.exporting = false;
        let notice = match &result {
            Ok(paths) => {
                // The files by name, then their folder once (the Sample screen lists the
                // paths whole).
                let names: Vec<String> = paths
                    .iter()
                    .map(|p| {
                        p.file_name()
                            .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
                    })
                    .collect();
                // The folder first: where the long names would cut it, they are cut instead.
                let dir = paths
                    .first()
                    .and_then(|p| p.parent())
                    .map_or(String::new(), |d| format!(" into {}:", d.display()));
                // One stem said once: `samples-….png and .gif`.
                let stem = |p: &PathBuf| p.file_stem().map(|s| s.to_os_string());
                let names = match paths.as_slice() {
                    [a, b] if stem(a) == stem(b) => {
                        let ext = b
                            .extension()
                            .map_or(String::new(), |e| e.to_string_lossy().into());
                        format!("{} and .{ext}", names[0])
                    }
                    _ => names.join(" and "),
                };
                Effect::info(format!("exported{dir} {names}"))
            }
            Err(e) => Effect::error(format!("export failed: {e}")),
        };
        self.exported = Some(result);
        vec![notice]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_steps_through_its_values_and_stops_at_the_ends() {
        assert_eq!(next_eta(0.0, 1), 0.2);
        assert_eq!(next_eta(0.2, -1), 0.0);
        assert_eq!(next_eta(0.0, -1), 0.0);
        assert_eq!(next_eta(1.0, 1), 1.0);
        // A remembered value between two goes to the next either way.
        assert_eq!(next_eta(0.3, 1), 0.5);
        assert_eq!(next_eta(0.3, -1), 0.2);
    }

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
        // The tick that reaches the last frame ends playback (and says so, to be drawn).
        assert!(c.tick(FRAME_INTERVAL * 2));
        assert_eq!(c.index, 4);
        assert!(!c.playing);
        assert!(!c.tick(FRAME_INTERVAL * 10));
        // Played from the last frame: from the first again.
        c.toggle_play();
        assert!(c.tick(FRAME_INTERVAL * 10));
        assert_eq!(c.index, 4);
        assert!(!c.playing);
        c.home();
        assert_eq!(c.index, 0);
        c.end();
        assert_eq!(c.index, 4);
    }
}
