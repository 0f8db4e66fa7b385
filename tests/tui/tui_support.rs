//! Test doubles for the lab's TUI tests: an engine that records what the app asks for (and
//! keeps the command channels so tests see pauses and stops), synthetic data and a synthetic
//! training run. Nothing here trains a model: tests inject the worker messages themselves.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use ddpm_lab::imaging::Image8;
use ddpm_lab::schedule::BetaSchedule;
use ddpm_lab::train::events::{FinishReason, StepStats, TrainCommand, TrainEvent, LOSS_BUCKETS};
use ddpm_lab::tui::event::handle_key;
use ddpm_lab::tui::settings::{LabSettings, TrainSettings};
use ddpm_lab::tui::state::{App, Tab};
use ddpm_lab::tui::ui::{self, ImageRenderer};
use ddpm_lab::tui::workers::{
    DataInfo, DataMsg, Engine, ExportRequest, Frames, OpenedComparison, OpenedRun, RunRecord,
    RunSummary, SampleRequest, Slot, TrainRequest, WorkerMsg,
};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// What the app asked the engine for.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Load(String),
    Train(Slot, TrainRequest),
    Estimate(TrainSettings),
    Sample(Slot, SampleRequest),
    Export(PathBuf, String),
    Watch(PathBuf, usize),
    ListRuns,
    OpenRun(PathBuf),
    OpenComparison(PathBuf),
    ScanRuns,
    ReadLastRun(PathBuf),
    RemoveRun(PathBuf),
}

/// Shared record of calls and the receivers of every training run's commands.
#[derive(Default)]
pub struct Record {
    pub calls: Vec<Call>,
    pub commands: Vec<(Slot, Receiver<TrainCommand>)>,
    pub runs: Vec<RunSummary>,
    /// What `scan_runs` answers (the Runs screen's table).
    pub records: Vec<RunRecord>,
    pub opened: Option<OpenedRun>,
    /// What `open_comparison` answers.
    pub comparison: Option<OpenedComparison>,
    /// Stop channels of watchers (disconnected once the app drops its handle).
    pub watchers: Vec<Receiver<()>>,
}

/// An engine that only records.
#[derive(Clone, Default)]
pub struct FakeEngine(pub Arc<Mutex<Record>>);

impl FakeEngine {
    pub fn calls(&self) -> Vec<Call> {
        self.0.lock().unwrap().calls.clone()
    }

    /// The first training request the app made for `slot`.
    pub fn first_train(&self, slot: Slot) -> Option<TrainRequest> {
        self.calls().into_iter().find_map(|c| match c {
            Call::Train(s, r) if s == slot => Some(r),
            _ => None,
        })
    }

    /// Commands received so far by the run(s) of `slot`.
    pub fn commands(&self, slot: Slot) -> Vec<TrainCommand> {
        let rec = self.0.lock().unwrap();
        rec.commands
            .iter()
            .filter(|(s, _)| *s == slot)
            .flat_map(|(_, rx)| rx.try_iter().collect::<Vec<_>>())
            .collect()
    }
}

impl FakeEngine {
    /// Offers one run on disk: `dir` at `step`, trained with `settings` on the built-in
    /// `shapes` set, its history steps 1 to `step` ([`stats`]); the run list holds it and
    /// opening it reads it.
    pub fn offer_run(&self, dir: &str, settings: TrainSettings, step: usize) -> RunSummary {
        let summary = RunSummary {
            dir: dir.into(),
            settings: Some(settings),
            dataset: Some("shapes".into()),
            step,
            held_by: None,
            unsaved: false,
            problem: None,
        };
        let mut rec = self.0.lock().unwrap();
        rec.runs = vec![summary.clone()];
        rec.opened = Some(OpenedRun {
            quality: Vec::new(),
            preview: None,
            data_gone: false,
            summary: summary.clone(),
            history: (1..=step).map(stats).collect(),
        });
        summary
    }
}

impl Engine for FakeEngine {
    fn load_dataset(&mut self, dataset: &str, _tx: Sender<WorkerMsg>) {
        self.0
            .lock()
            .unwrap()
            .calls
            .push(Call::Load(dataset.into()));
    }
    fn start_training(
        &mut self,
        slot: Slot,
        req: TrainRequest,
        _tx: Sender<WorkerMsg>,
    ) -> Result<Sender<TrainCommand>, String> {
        let (tx, rx) = channel();
        let mut rec = self.0.lock().unwrap();
        rec.calls.push(Call::Train(slot, req));
        rec.commands.push((slot, rx));
        Ok(tx)
    }
    fn estimate(&mut self, settings: TrainSettings, _dataset: &str, _tx: Sender<WorkerMsg>) {
        self.0.lock().unwrap().calls.push(Call::Estimate(settings));
    }
    fn sample(&mut self, slot: Slot, req: SampleRequest, _tx: Sender<WorkerMsg>) {
        self.0.lock().unwrap().calls.push(Call::Sample(slot, req));
    }
    fn export(&mut self, req: ExportRequest, _tx: Sender<WorkerMsg>) {
        self.0
            .lock()
            .unwrap()
            .calls
            .push(Call::Export(req.out_dir, req.stem));
    }
    /// Answers at once on `tx`, as a worker would (the app sees it on its next `pump`).
    fn list_runs(&mut self, tx: Sender<WorkerMsg>) {
        let mut rec = self.0.lock().unwrap();
        rec.calls.push(Call::ListRuns);
        let _ = tx.send(WorkerMsg::Runs(rec.runs.clone()));
    }
    fn watch_run(
        &mut self,
        dir: &Path,
        from_step: usize,
        _tx: Sender<WorkerMsg>,
    ) -> Option<Sender<()>> {
        let (tx, rx) = channel();
        let mut rec = self.0.lock().unwrap();
        rec.calls.push(Call::Watch(dir.to_path_buf(), from_step));
        rec.watchers.push(rx);
        Some(tx)
    }
    /// Answers at once on `tx`, as a worker would.
    fn scan_runs(&mut self, tx: Sender<WorkerMsg>) {
        let mut rec = self.0.lock().unwrap();
        rec.calls.push(Call::ScanRuns);
        let _ = tx.send(WorkerMsg::RunTable(rec.records.clone()));
    }
    /// Answers at once from the listed runs, as a worker would: nothing where the run is not
    /// among them (gone from disk).
    fn read_last_run(&mut self, dir: &Path, tx: Sender<WorkerMsg>) {
        let mut rec = self.0.lock().unwrap();
        rec.calls.push(Call::ReadLastRun(dir.to_path_buf()));
        if let Some(run) = rec.runs.iter().find(|r| r.dir == dir) {
            let _ = tx.send(WorkerMsg::LastRun(run.clone()));
        }
    }
    /// Answers at once on `tx`, as a worker would: the run leaves the listed runs and the
    /// table (one the table says a process holds stays, with the run layer's error).
    fn remove_run(&mut self, dir: &Path, tx: Sender<WorkerMsg>) {
        let mut rec = self.0.lock().unwrap();
        rec.calls.push(Call::RemoveRun(dir.to_path_buf()));
        let held = rec
            .records
            .iter()
            .any(|r| r.summary.dir == dir && r.summary.held_by.is_some());
        let result = if held {
            Err(format!(
                "run {} is being trained by pid 4242",
                dir.display()
            ))
        } else {
            rec.runs.retain(|r| r.dir != dir);
            rec.records.retain(|r| r.summary.dir != dir);
            Ok(ddpm_lab::runs::Removed {
                dir: dir.to_path_buf(),
                bytes: 3_400_000,
                comparison: None,
            })
        };
        let _ = tx.send(WorkerMsg::RunRemoved(result));
    }
    /// Answers at once on `tx`, as a worker would.
    fn open_run(&mut self, dir: &Path, tx: Sender<WorkerMsg>) {
        let mut rec = self.0.lock().unwrap();
        rec.calls.push(Call::OpenRun(dir.to_path_buf()));
        let result = rec
            .opened
            .clone()
            .filter(|o| o.summary.dir == dir)
            .ok_or_else(|| format!("{} is not a run", dir.display()));
        let _ = tx.send(WorkerMsg::RunOpened(result));
    }
    /// Answers at once on `tx`, as a worker would.
    fn open_comparison(&mut self, base: &Path, tx: Sender<WorkerMsg>) {
        let mut rec = self.0.lock().unwrap();
        rec.calls.push(Call::OpenComparison(base.to_path_buf()));
        let result = rec
            .comparison
            .clone()
            .filter(|c| c.base == base)
            .ok_or_else(|| format!("{} holds no run of the comparison", base.display()));
        let _ = tx.send(WorkerMsg::ComparisonOpened(result));
    }
}

/// The text of the message in the app's status line, if any.
pub fn notice(app: &App) -> Option<String> {
    app.notice.as_ref().map(|n| n.text.clone())
}

/// A deterministic 28×28 grey image: a filled square, disc or cross, by `kind`.
pub fn shape(kind: usize, shift: usize) -> Image8 {
    let (w, h) = (28, 28);
    let mut pixels = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as i32 - 14 - shift as i32 % 3, y as i32 - 14);
            let on = match kind % 3 {
                0 => dx.abs() < 8 && dy.abs() < 8,
                1 => dx * dx + dy * dy < 81,
                _ => dx.abs() < 3 || dy.abs() < 3,
            };
            if on {
                pixels[y * w + x] = 230;
            }
        }
    }
    Image8 {
        width: w,
        height: h,
        channels: 1,
        pixels,
    }
}

/// A synthetic dataset as the Data screen receives it.
pub fn data_info() -> DataInfo {
    DataInfo {
        name: "shapes".into(),
        source: "built-in (procedural)".into(),
        notes: Vec::new(),
        n_train: 6000,
        n_test: Some(1000),
        shape: (1, 28, 28),
        label_names: vec!["square".into(), "disc".into(), "cross".into()],
        label_counts: vec![2000, 2100, 1900],
        examples: (0..24).map(|i| (shape(i, i), i % 3)).collect(),
    }
}

/// Fashion-MNIST's ten labels with counts that differ (so each can be found on screen).
pub fn data_info_ten() -> DataInfo {
    let names = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];
    DataInfo {
        name: "fashion_mnist".into(),
        source: "Hub zalando-datasets/fashion_mnist (cache)".into(),
        notes: Vec::new(),
        n_train: 60_000,
        n_test: Some(10_000),
        shape: (1, 28, 28),
        label_names: names.iter().map(|n| n.to_string()).collect(),
        label_counts: ten_counts(),
        examples: (0..24).map(|i| (shape(i, i), i % 10)).collect(),
    }
}

/// The label counts of [`data_info_ten`].
pub fn ten_counts() -> Vec<usize> {
    (0..10).map(|i| 5_950 + 11 * i).collect()
}

/// Settings of the tests: a tiny CPU run on the shapes dataset.
/// The lab's default settings on the built-in set, with the blog's schedule (linear, T = 200)
/// that the key tests count steps and labels with.
pub fn settings() -> LabSettings {
    let mut s = LabSettings {
        dataset: "shapes".into(),
        runs_dir: Some(PathBuf::from("runs")),
        ..LabSettings::default()
    };
    s.train.schedule = ddpm_lab::schedule::BetaSchedule::Linear;
    s.train.timesteps = 200;
    // The tests draw with DDPM unless they say (the quick recipe recommends DDIM).
    s.sample.ddim = false;
    s
}

/// A fresh app with the fake engine, started, with a fixed run stamp.
pub fn app() -> (App, FakeEngine) {
    let engine = FakeEngine::default();
    let mut app = App::new(settings(), Box::new(engine.clone()));
    app.make_run_dir = Box::new(|root, tag| root.join(format!("20260101-000000-{tag}")));
    app.start();
    (app, engine)
}

/// Delivers the synthetic dataset.
pub fn load_data(app: &mut App) {
    app.handle_msg(WorkerMsg::Data(DataMsg::Ready(Box::new(data_info()))));
}

/// Stats of synthetic step `i` (loss decaying from ~0.5, as in the blog).
pub fn stats(i: usize) -> StepStats {
    let loss = 0.05 + 0.45 * (-(i as f64) / 30.0).exp() + 0.01 * ((i * 7 % 5) as f64 - 2.0);
    StepStats {
        step: i,
        epoch: (i - 1) / 50,
        loss,
        images_per_s: 1280.0, // batch 128 every 0.1 s, as elapsed_s says
        elapsed_s: i as f64 * 0.1,
        lr: 1e-3,
        bucket_losses: (0..LOSS_BUCKETS)
            .map(|b| Some(loss * (1.6 - b as f64 * 0.12)))
            .collect(),
    }
}

/// The events of a synthetic run from step `from + 1` to `to` (Started first when `from` is 0).
pub fn fake_run(from: usize, to: usize, total: usize) -> Vec<TrainEvent> {
    let mut v = Vec::new();
    if from == 0 {
        v.push(TrainEvent::Started {
            run_dir: Some("runs/20260101-000000-linear".into()),
            start_step: 0,
            total_steps: total,
            steps_per_epoch: 50,
            num_params: 123_456,
            notices: Vec::new(),
        });
    }
    for i in from + 1..=to {
        v.push(TrainEvent::Step(stats(i)));
        if i % 40 == 0 {
            v.push(TrainEvent::Preview {
                step: i,
                images: (0..8).map(|k| shape(k, i)).collect(),
            });
        }
    }
    v
}

/// Feeds training events of `slot` into the app.
pub fn feed(app: &mut App, slot: Slot, events: Vec<TrainEvent>) {
    for event in events {
        app.handle_msg(WorkerMsg::Train { slot, event });
    }
}

/// Starts the main run with space on the Train screen and feeds its steps 1 to `to` of
/// `total` (the data must be loaded).
pub fn start_main_run(app: &mut App, to: usize, total: usize) {
    app.tab = Tab::Train;
    handle_key(app, ch(' '));
    feed(app, Slot::Main, fake_run(0, to, total));
}

/// Starts the main run with space on the Train screen and feeds it five steps to a finish in
/// `run_dir`.
/// The worker's `Finished` event of a run saved in `run_dir`.
pub fn finished(step: usize, run_dir: impl Into<PathBuf>, why: FinishReason) -> TrainEvent {
    TrainEvent::Finished {
        step,
        run_dir: Some(run_dir.into()),
        why,
    }
}

/// `o` on Train, then Enter in the picker: opens the run the engine offers.
pub fn open_from_picker(app: &mut App) {
    handle_key(app, ch('o'));
    app.pump();
    handle_key(app, key(crossterm::event::KeyCode::Enter));
    app.pump();
}

pub fn train_main_run_to_the_end(app: &mut App, run_dir: &str) {
    start_main_run(app, 5, 5);
    feed(
        app,
        Slot::Main,
        vec![finished(5, run_dir, FinishReason::Steps)],
    );
}

/// A synthetic denoising: `n` images, frames from noise-like to clean.
pub fn frames(n: usize, steps: usize) -> Frames {
    let clean: Vec<Image8> = (0..n).map(|k| shape(k, 0)).collect();
    let frame_at = |f: usize| -> Vec<Image8> {
        clean
            .iter()
            .enumerate()
            .map(|(k, img)| {
                let mut out = img.clone();
                for (j, p) in out.pixels.iter_mut().enumerate() {
                    let noise = ((j * 31 + k * 17 + f * 7) % 256) as f64;
                    let a = f as f64 / steps as f64;
                    *p = (a * *p as f64 + (1.0 - a) * noise).round() as u8;
                }
                out
            })
            .collect()
    };
    Frames {
        timesteps: (0..=steps).map(|f| steps - f).collect(),
        frames: (0..=steps).map(frame_at).collect(),
        x0_preds: (0..=steps).map(|_| clean.clone()).collect(),
        quality: Err("not scored".into()),
        step: None,
    }
}

/// Renders the app into a `w`×`h` test terminal and returns the text of the screen.
pub fn render(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, app, &ImageRenderer::halfblocks()))
        .unwrap();
    format!("{}", term.backend())
}

/// Keys by name for tests.
pub fn key(code: crossterm::event::KeyCode) -> crossterm::event::KeyEvent {
    crossterm::event::KeyEvent::new(code, crossterm::event::KeyModifiers::NONE)
}

pub fn ch(c: char) -> crossterm::event::KeyEvent {
    key(crossterm::event::KeyCode::Char(c))
}

pub fn ctrl_c() -> crossterm::event::KeyEvent {
    crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('c'),
        crossterm::event::KeyModifiers::CONTROL,
    )
}

pub const ALL: [BetaSchedule; 4] = BetaSchedule::ALL;

/// The status bar (the line above the key hints) of the app drawn at `w`×`h`.
pub fn status_bar(app: &App, w: u16, h: u16) -> String {
    render(app, w, h)
        .lines()
        .rev()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}
