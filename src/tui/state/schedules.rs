//! State of the Schedules screen: T, the current timestep and the image being noised.

use crate::schedule::{BetaSchedule, ScheduleTables};

use super::super::event::Command;

/// Values of T that `+` / `−` step through.
pub const TIMESTEP_CHOICES: [usize; 8] = [10, 50, 100, 200, 300, 500, 1000, 2000];

/// `√ᾱ_T` above which x_T is flagged as still carrying the image.
pub const SIGNAL_FLAG: f64 = 0.05;

/// State of the Schedules screen.
#[derive(Debug, Clone)]
pub struct SchedulesState {
    /// Current T.
    pub timesteps: usize,
    /// The marked timestep `t`.
    pub t: usize,
    /// Tables of every schedule, in [`BetaSchedule::ALL`] order.
    pub tables: Vec<ScheduleTables>,
    /// Index of the example image being noised.
    pub image_index: usize,
    /// Seed of the noise ε shared by every schedule.
    pub noise_seed: u64,
}

impl SchedulesState {
    /// State for `timesteps` steps (clamped to at least 2), marking `t = T/2`.
    pub fn new(timesteps: usize) -> Self {
        let timesteps = timesteps.max(2);
        Self {
            timesteps,
            t: timesteps / 2,
            tables: Self::build(timesteps),
            image_index: 0,
            noise_seed: 0,
        }
    }

    fn build(timesteps: usize) -> Vec<ScheduleTables> {
        BetaSchedule::ALL
            .iter()
            .map(|&s| ScheduleTables::new(s, timesteps).expect("timesteps >= 2"))
            .collect()
    }

    /// Handles a command of the Schedules screen (`n_examples`: images of the dataset); what
    /// to say, where a key does nothing.
    pub fn handle(&mut self, cmd: Command, n_examples: usize) -> Option<String> {
        match cmd {
            Command::MoveT(delta) => self.move_t(delta),
            Command::ChangeT(dir) => {
                let before = self.timesteps;
                self.change_timesteps(dir);
                if self.timesteps == before {
                    return Some(format!(
                        "T = {before} is the {} the Schedules screen shows",
                        if dir < 0 {
                            "fewest steps"
                        } else {
                            "most steps"
                        }
                    ));
                }
            }
            Command::NextImage => self.next_image(n_examples),
            _ => {}
        }
        None
    }

    /// Moves `t` by `delta`, clamped to `0 … T−1`.
    pub fn move_t(&mut self, delta: i64) {
        let max = self.timesteps as i64 - 1;
        self.t = (self.t as i64 + delta).clamp(0, max) as usize;
    }

    /// Steps T up (`dir > 0`) or down through [`TIMESTEP_CHOICES`], keeping `t` at the same
    /// fraction of the process.
    pub fn change_timesteps(&mut self, dir: i32) {
        let next = if dir > 0 {
            TIMESTEP_CHOICES
                .iter()
                .copied()
                .find(|&c| c > self.timesteps)
        } else {
            TIMESTEP_CHOICES
                .iter()
                .rev()
                .copied()
                .find(|&c| c < self.timesteps)
        };
        if let Some(new_t) = next {
            let frac = self.t as f64 / (self.timesteps - 1) as f64;
            self.timesteps = new_t;
            self.tables = Self::build(new_t);
            self.t = (frac * (new_t - 1) as f64).round() as usize;
        }
    }

    /// Picks the next example image (and fresh noise).
    pub fn next_image(&mut self, n_examples: usize) {
        if n_examples > 0 {
            self.image_index = (self.image_index + 1) % n_examples;
        }
        self.noise_seed = self.noise_seed.wrapping_add(1);
    }

    /// Timesteps shown in the comparison: 0, T/4, T/2, 3T/4, T−1 and the marked `t`.
    pub fn columns(&self) -> [usize; 6] {
        let t = self.timesteps;
        [0, t / 4, t / 2, 3 * t / 4, t - 1, self.t]
    }

    /// Natural log of the SNR, clamped to a displayable range.
    pub fn log_snr(tables: &ScheduleTables, t: usize) -> f64 {
        tables.snr[t].ln().clamp(-25.0, 25.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_and_timesteps_move_within_bounds() {
        let mut s = SchedulesState::new(200);
        assert_eq!(s.t, 100);
        s.move_t(-1000);
        assert_eq!(s.t, 0);
        s.move_t(1000);
        assert_eq!(s.t, 199);
        s.change_timesteps(1);
        assert_eq!(s.timesteps, 300);
        assert_eq!(s.t, 299);
        assert_eq!(s.tables[0].timesteps(), 300);
        s.change_timesteps(-1);
        s.change_timesteps(-1);
        assert_eq!(s.timesteps, 100);
        assert_eq!(s.columns(), [0, 25, 50, 75, 99, 99]);
        for _ in 0..10 {
            s.change_timesteps(-1);
        }
        assert_eq!(s.timesteps, 10);
        // At either end the key says why it does nothing.
        let said = s.handle(Command::ChangeT(-1), 0).unwrap();
        assert_eq!(
            said,
            "T = 10 is the fewest steps the Schedules screen shows"
        );
        assert_eq!(s.handle(Command::ChangeT(1), 0), None);
        for _ in 0..10 {
            s.change_timesteps(1);
        }
        assert!(s
            .handle(Command::ChangeT(1), 0)
            .unwrap()
            .contains("2000 is the most"));
    }

    #[test]
    fn linear_at_200_keeps_signal() {
        let s = SchedulesState::new(200);
        let lin = &s.tables[0];
        assert!((lin.final_signal() - 0.36).abs() < 0.01);
        assert!(lin.final_signal() > SIGNAL_FLAG);
        assert!(s.tables[2].final_signal() < SIGNAL_FLAG);
    }
}
