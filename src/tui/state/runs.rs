//! State of the Runs screen: every run on disk (read on a worker), the highlighted one, and
//! the runs whose loss curves are overlaid.

use std::path::PathBuf;

use super::super::event::Command;
use super::super::settings::TrainSettings;
use super::super::workers::RunRecord;
use super::effect::Effect;

/// The order of the Runs screen's list (`s` goes to the next).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunsOrder {
    /// Newest first, as the runs directory lists them.
    #[default]
    Newest,
    /// Lowest last loss first, runs of one kind of loss together (losses of different kinds
    /// are not comparable); runs without a loss last.
    Loss,
    /// Best latest preview score first: lowest Fréchet distance, then highest share
    /// recognised; runs without a score last.
    Score,
}

impl RunsOrder {
    /// The next order.
    pub fn next(self) -> Self {
        match self {
            RunsOrder::Newest => RunsOrder::Loss,
            RunsOrder::Loss => RunsOrder::Score,
            RunsOrder::Score => RunsOrder::Newest,
        }
    }

    /// What the screen's title says of it.
    pub fn label(self) -> &'static str {
        match self {
            RunsOrder::Newest => "newest first",
            RunsOrder::Loss => "by loss",
            RunsOrder::Score => "by preview score",
        }
    }

    /// Puts `runs` in this order, `listed` being their directories newest first; ties keep
    /// the newer first.
    fn arrange(self, runs: &mut [RunRecord], listed: &[PathBuf]) {
        let age = |r: &RunRecord| listed.iter().position(|d| *d == r.summary.dir);
        runs.sort_by_key(age);
        let kind = |r: &RunRecord| r.summary.settings.as_ref().map(TrainSettings::loss_kind);
        match self {
            RunsOrder::Newest => {}
            RunsOrder::Loss => runs.sort_by(|a, b| {
                let key = |r: &RunRecord| (r.last_loss.is_none(), kind(r));
                key(a).cmp(&key(b)).then_with(|| {
                    let loss = |r: &RunRecord| r.last_loss.unwrap_or(f64::INFINITY);
                    loss(a).total_cmp(&loss(b))
                })
            }),
            RunsOrder::Score => runs.sort_by(|a, b| {
                let fd = |r: &RunRecord| {
                    r.quality
                        .as_ref()
                        .map_or(f64::INFINITY, |(_, q)| q.frechet.unwrap_or(f64::MAX))
                };
                let recognised =
                    |r: &RunRecord| r.quality.as_ref().map_or(-1.0, |(_, q)| q.recognised);
                fd(a)
                    .total_cmp(&fd(b))
                    .then_with(|| recognised(b).total_cmp(&recognised(a)))
            }),
        }
    }
}

/// State of the Runs screen.
#[derive(Debug, Clone, Default)]
pub struct RunsState {
    /// Runs found, in [`Self::order`].
    pub runs: Vec<RunRecord>,
    /// The list's order.
    pub order: RunsOrder,
    /// The runs' directories as the runs directory lists them, newest first.
    listed: Vec<PathBuf>,
    /// Highlighted row.
    pub selected: usize,
    /// Runs whose curves are overlaid, in the order they were marked (their colours).
    pub marked: Vec<PathBuf>,
    /// A listing is on its way.
    pub scanning: bool,
    /// The runs were listed at least once.
    pub scanned: bool,
}

impl RunsState {
    /// Asks for the runs on disk again (ignored while a listing is on its way).
    pub fn refresh(&mut self) -> Vec<Effect> {
        if self.scanning {
            return Vec::new();
        }
        self.scanning = true;
        vec![Effect::ScanRuns]
    }

    /// The engine's list: keeps the highlight and the marks on runs that are still there.
    pub fn on_runs(&mut self, runs: Vec<RunRecord>) {
        let highlighted = self.highlighted().map(|r| r.summary.dir.clone());
        self.marked
            .retain(|d| runs.iter().any(|r| &r.summary.dir == d));
        self.listed = runs.iter().map(|r| r.summary.dir.clone()).collect();
        self.runs = runs;
        self.order.arrange(&mut self.runs, &self.listed);
        // A highlighted run that is gone (removed) hands the highlight to the one after it.
        let place = self.selected.min(self.runs.len().saturating_sub(1));
        self.highlight(highlighted, place);
        self.scanning = false;
        self.scanned = true;
    }

    /// Goes to the next order, keeping the highlighted run highlighted.
    pub fn next_order(&mut self) {
        self.order = self.order.next();
        let highlighted = self.highlighted().map(|r| r.summary.dir.clone());
        self.order.arrange(&mut self.runs, &self.listed);
        self.highlight(highlighted, 0);
    }

    /// Highlights the run in `dir` where it is listed, else the one at `otherwise`.
    fn highlight(&mut self, dir: Option<PathBuf>, otherwise: usize) {
        self.selected = dir
            .and_then(|d| self.runs.iter().position(|r| r.summary.dir == d))
            .unwrap_or(otherwise);
    }

    /// The highlighted run.
    pub fn highlighted(&self) -> Option<&RunRecord> {
        self.runs.get(self.selected)
    }

    /// Moves the highlight by `delta` rows, clamped to the list.
    pub fn move_by(&mut self, delta: i64) {
        let n = self.runs.len() as i64;
        if n > 0 {
            self.selected = (self.selected as i64 + delta).clamp(0, n - 1) as usize;
        }
    }

    /// Marks or unmarks the highlighted run.
    pub fn toggle(&mut self) {
        let Some(dir) = self.highlighted().map(|r| r.summary.dir.clone()) else {
            return;
        };
        match self.marked.iter().position(|d| *d == dir) {
            Some(i) => {
                self.marked.remove(i);
            }
            None => self.marked.push(dir),
        }
    }

    /// Marks every run, or none when all are marked.
    pub fn toggle_all(&mut self) {
        if !self.runs.is_empty() && self.marked.len() == self.runs.len() {
            self.marked.clear();
        } else {
            self.marked = self.runs.iter().map(|r| r.summary.dir.clone()).collect();
        }
    }

    /// Position of `dir` among the marked runs (its colour), if marked.
    pub fn mark_of(&self, dir: &std::path::Path) -> Option<usize> {
        self.marked.iter().position(|d| d == dir)
    }

    /// The runs whose curves are drawn: the marked ones, or the highlighted one when none is.
    pub fn charted(&self) -> Vec<(usize, &RunRecord)> {
        if self.marked.is_empty() {
            return self.highlighted().map(|r| (0, r)).into_iter().collect();
        }
        self.marked
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                self.runs
                    .iter()
                    .find(|r| &r.summary.dir == d)
                    .map(|r| (i, r))
            })
            .collect()
    }

    /// Handles a command of the Runs screen (opening a run is the router's: it crosses
    /// screens).
    pub fn handle(&mut self, cmd: Command) -> Vec<Effect> {
        match cmd {
            Command::RunsMove(d) => self.move_by(d),
            Command::RunsSelect(i) => self.selected = i.min(self.runs.len().saturating_sub(1)),
            Command::RunsToggle => self.toggle(),
            Command::RunsToggleAll => self.toggle_all(),
            Command::RunsRefresh => return self.refresh(),
            Command::RunsSort => self.next_order(),
            _ => {}
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::workers::RunSummary;

    fn rec(dir: &str) -> RunRecord {
        RunRecord {
            eval: None,
            summary: RunSummary {
                dir: dir.into(),
                settings: None,
                dataset: None,
                step: 10,
                held_by: None,
                unsaved: false,
                problem: None,
            },
            last_loss: Some(0.1),
            last_step: 10,
            quality: None,
            curve: vec![(1.0, 0.5), (10.0, 0.1)],
            bytes: 0,
        }
    }

    #[test]
    fn marks_overlay_and_survive_a_refresh() {
        let mut s = RunsState::default();
        assert!(matches!(s.refresh()[..], [Effect::ScanRuns]));
        assert!(s.refresh().is_empty(), "one listing at a time");
        s.on_runs(vec![rec("runs/a"), rec("runs/b"), rec("runs/c")]);
        assert_eq!(
            s.charted().len(),
            1,
            "the highlighted run when none is marked"
        );
        s.handle(Command::RunsMove(1));
        s.handle(Command::RunsToggle);
        s.handle(Command::RunsMove(5));
        s.handle(Command::RunsToggle);
        assert_eq!(s.selected, 2);
        let dirs: Vec<_> = s
            .charted()
            .iter()
            .map(|(i, r)| (*i, r.summary.dir.clone()))
            .collect();
        assert_eq!(dirs, vec![(0, "runs/b".into()), (1, "runs/c".into())]);
        // runs/b is gone and a new run came first: the highlight stays on runs/c.
        assert!(matches!(
            s.handle(Command::RunsRefresh)[..],
            [Effect::ScanRuns]
        ));
        s.on_runs(vec![rec("runs/d"), rec("runs/a"), rec("runs/c")]);
        assert_eq!(
            s.highlighted().unwrap().summary.dir,
            PathBuf::from("runs/c")
        );
        assert_eq!(s.marked, vec![PathBuf::from("runs/c")]);
        s.handle(Command::RunsToggle);
        assert!(s.marked.is_empty());
        s.handle(Command::RunsToggleAll);
        assert_eq!(s.marked.len(), 3);
        s.handle(Command::RunsToggleAll);
        assert!(s.marked.is_empty());
        s.handle(Command::RunsSelect(99));
        assert_eq!(s.selected, 2);
        // The highlighted run removed: the one that took its place is highlighted, not the
        // first; the last removed, the one before it.
        s.handle(Command::RunsSelect(1));
        s.handle(Command::RunsRefresh);
        s.on_runs(vec![rec("runs/d"), rec("runs/c")]);
        assert_eq!(
            s.highlighted().unwrap().summary.dir,
            PathBuf::from("runs/c")
        );
        s.handle(Command::RunsRefresh);
        s.on_runs(vec![rec("runs/d")]);
        assert_eq!(
            s.highlighted().unwrap().summary.dir,
            PathBuf::from("runs/d")
        );
    }
}
