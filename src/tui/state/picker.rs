//! The picker of earlier runs (`o` on Train): the list shown, and what it waits for from the
//! engine, which reads the disk on a worker thread.

use std::path::Path;

use super::super::workers::{OpenedComparison, OpenedRun, RunSummary};
use super::effect::Effect;

/// The list of earlier runs, while open.
#[derive(Debug, Clone, Default)]
pub struct RunPicker {
    /// Runs found.
    pub runs: Vec<RunSummary>,
    /// Highlighted row.
    pub selected: usize,
}

impl RunPicker {
    /// Moves the highlight by `delta` rows, clamped to the list.
    pub fn move_by(&mut self, delta: i32) {
        let n = self.runs.len() as i32;
        self.selected = (self.selected as i32 + delta).clamp(0, n - 1) as usize;
    }
}

/// What the run picker is waiting for from the engine.
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

impl PickerWait {
    /// `o`: asks the engine for the runs under `runs_root`; the picker opens when they arrive
    /// ([`PickerWait::on_runs`]), so a slow disk never holds up the UI. Refused while a run
    /// trains (`busy`); ignored while an answer is awaited.
    pub fn request(&mut self, busy: bool, runs_root: &Path) -> Vec<Effect> {
        if busy {
            return vec![Effect::error(super::RUN_IN_PROGRESS)];
        }
        if *self != PickerWait::Idle {
            return Vec::new();
        }
        *self = PickerWait::Listing;
        vec![
            Effect::ListRuns,
            Effect::info(format!("looking for runs in {}…", runs_root.display())),
        ]
    }

    /// The engine's list of runs: opens the picker on it, unless a run started meanwhile, with
    /// `named` highlighted where it is listed (the last run Train names, "o opens it").
    pub fn on_runs(
        &mut self,
        runs: Vec<RunSummary>,
        busy: bool,
        runs_root: &Path,
        named: Option<&Path>,
    ) -> Vec<Effect> {
        if *self != PickerWait::Listing {
            return Vec::new();
        }
        *self = PickerWait::Idle;
        if busy {
            return Vec::new();
        }
        if runs.is_empty() {
            return vec![Effect::error(format!(
                "no runs found in {}",
                std::path::absolute(runs_root)
                    .unwrap_or_else(|_| runs_root.to_path_buf())
                    .display()
            ))];
        }
        let selected = named
            .and_then(|n| runs.iter().position(|r| r.dir == n))
            .unwrap_or(0);
        vec![Effect::ShowPicker(RunPicker { runs, selected })]
    }

    /// Enter on `picker`: asks the engine for the highlighted run's configuration and history
    /// (they arrive at [`PickerWait::on_opened`]); for a run of a comparison, for every run of
    /// that comparison (at [`PickerWait::on_comparison_opened`]).
    pub fn open(&mut self, picker: RunPicker) -> Vec<Effect> {
        let Some(summary) = picker.runs.get(picker.selected) else {
            return Vec::new();
        };
        if let Some((base, _)) = crate::runs::comparison::comparison_of(&summary.dir) {
            *self = PickerWait::Opening(base.clone());
            let notice = Effect::info(format!("opening the comparison {}…", base.display()));
            return vec![Effect::OpenComparison(base), notice];
        }
        let dir = summary.dir.clone();
        *self = PickerWait::Opening(dir.clone());
        let notice = Effect::info(format!("opening {}…", dir.display()));
        vec![Effect::OpenRun(dir), notice]
    }

    /// The engine's answer to [`PickerWait::open`] for a comparison: its runs go to the
    /// Compare screen unless they could not be read or a run started meanwhile (`busy`).
    pub fn on_comparison_opened(
        &mut self,
        result: Result<OpenedComparison, String>,
        busy: bool,
    ) -> Vec<Effect> {
        self.answer(result, busy, "the comparison", |c| {
            Effect::ShowComparison(Box::new(c))
        })
    }

    /// The engine's answer to [`PickerWait::open`]: the run goes to the Train screen unless it
    /// could not be read or a run started meanwhile (`busy`).
    pub fn on_opened(&mut self, result: Result<OpenedRun, String>, busy: bool) -> Vec<Effect> {
        self.answer(result, busy, "run", |r| Effect::ShowRun(Box::new(r)))
    }

    /// An answer to the opening awaited: `show` it, or say why not (`what` could not be read,
    /// or a run started meanwhile); an answer nobody waits for any more is dropped.
    fn answer<T>(
        &mut self,
        result: Result<T, String>,
        busy: bool,
        what: &str,
        show: impl FnOnce(T) -> Effect,
    ) -> Vec<Effect> {
        let PickerWait::Opening(dir) = std::mem::replace(self, PickerWait::Idle) else {
            return Vec::new();
        };
        match result {
            Err(e) => vec![Effect::error(format!("cannot open {what}: {e}"))],
            Ok(_) if busy => vec![Effect::error(format!(
                "{} not opened: a run started meanwhile",
                dir.display()
            ))],
            Ok(opened) => vec![show(opened)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(dir: &str) -> RunSummary {
        RunSummary {
            dir: dir.into(),
            settings: None,
            dataset: None,
            step: 1,
            held_by: None,
            unsaved: false,
            problem: None,
        }
    }

    /// The run Train names as its last ("o opens it") is highlighted where it is listed.
    #[test]
    fn the_picker_starts_on_the_run_train_names() {
        let root = Path::new("runs");
        let two = || vec![summary("runs/a"), summary("runs/b")];
        let mut w = PickerWait::Listing;
        let fx = w.on_runs(two(), false, root, Some(Path::new("runs/b")));
        assert!(matches!(&fx[..], [Effect::ShowPicker(p)] if p.selected == 1));
        let mut w = PickerWait::Listing;
        let fx = w.on_runs(two(), false, root, Some(Path::new("runs/gone")));
        assert!(matches!(&fx[..], [Effect::ShowPicker(p)] if p.selected == 0));
    }

    #[test]
    fn lists_then_opens_and_drops_stale_answers() {
        let root = Path::new("runs");
        let mut w = PickerWait::Idle;
        assert!(matches!(w.request(true, root)[..], [Effect::Notify(_)]));
        assert!(matches!(w.request(false, root)[..], [Effect::ListRuns, _]));
        assert!(w.request(false, root).is_empty(), "already listing");
        let fx = w.on_runs(
            vec![summary("runs/a"), summary("runs/b")],
            false,
            root,
            None,
        );
        let Ok::<[Effect; 1], _>([Effect::ShowPicker(mut p)]) = fx.try_into() else {
            panic!("no picker")
        };
        assert_eq!(p.selected, 0);
        p.move_by(5);
        assert_eq!(p.selected, 1);
        assert!(matches!(&w.open(p)[..], [Effect::OpenRun(d), _] if d == Path::new("runs/b")));
        assert!(w
            .on_runs(vec![summary("runs/c")], false, root, None)
            .is_empty());
        assert!(matches!(
            w.on_opened(Err("x".into()), false)[..],
            [Effect::Notify(_)]
        ));
        assert_eq!(w, PickerWait::Idle);
        assert!(w.on_opened(Err("late".into()), false).is_empty());
    }

    /// A run of a comparison opens the whole comparison (on Compare), not the one run.
    #[test]
    fn a_comparison_run_opens_its_comparison() {
        let mut w = PickerWait::Idle;
        let p = RunPicker {
            runs: vec![summary("runs/20261206-061500-compare/cosine")],
            selected: 0,
        };
        let base = Path::new("runs/20261206-061500-compare");
        assert!(matches!(&w.open(p)[..], [Effect::OpenComparison(d), _] if d == base));
        let opened = OpenedComparison {
            base: base.to_path_buf(),
            runs: Vec::new(),
            settings: None,
            dataset: None,
        };
        assert!(matches!(
            &w.on_comparison_opened(Ok(opened.clone()), false)[..],
            [Effect::ShowComparison(c)] if c.base == base
        ));
        assert_eq!(w, PickerWait::Idle);
        assert!(
            w.on_comparison_opened(Ok(opened), false).is_empty(),
            "not asked"
        );
    }
}
