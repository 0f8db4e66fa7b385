//! The real engine behind the lab: dataset loading, training, speed estimates, sampling and
//! exports, each on its own thread, reporting through the app's channel.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::data::{
    load_dataset, DataFingerprint, DatasetSpec, ImageSet, LoadOptions, LoadProgress,
};
use crate::eval::Scorer;
use crate::export::{save_denoising_gif, save_grid_png};
use crate::runs::quality::{last_quality, quality_history};
use crate::runs::{self, RunInfo, StopAt};
use crate::sampler::SamplerKind;
use crate::store::{previews, read_metrics_file, RunDir, TrainConfig, METRICS_FILE};
use crate::train::events::{TrainCommand, TrainEvent};
use crate::tui::settings::{SampleSettings, TrainSettings};

use super::{
    DataInfo, DataMsg, Engine, Estimate, ExportRequest, Frames, LoadStage, OpenedComparison,
    OpenedRun, RunRecord, RunSummary, SampleMsg, SampleRequest, Slot, TrainRequest, WorkerMsg,
    CURVE_POINTS,
};

/// Examples kept for the Data and Schedules screens.
pub const EXAMPLES: usize = 48;
/// Steps timed by a speed estimate (the first is a warm-up and not counted).
pub const ESTIMATE_STEPS: usize = 3;
/// Largest batch a speed estimate times.
pub const ESTIMATE_BATCH: usize = 16;
/// Images drawn at each preview: the Train screen shows the first few, and all of them are
/// scored for the quality curve (64 is the fewest a Fréchet distance is reported for).
pub const PREVIEW_IMAGES: usize = crate::eval::score::MIN_FRECHET_N;

/// How often a sampling worker sends the images it is denoising.
pub const SAMPLE_IMAGES_EVERY: Duration = Duration::from_millis(200);

/// The scorer of the loaded dataset, built on first use (on a worker thread: it classifies
/// the whole training split once).
type ScorerCache = Arc<Mutex<Option<(String, Arc<Scorer>)>>>;

/// The scorer for `dataset` when it is the loaded one and a classifier fits it.
fn scorer_for(
    cache: &ScorerCache,
    loaded: &Arc<Mutex<Option<Loaded>>>,
    dataset: &str,
) -> Result<Arc<Scorer>, String> {
    let mut c = cache.lock().expect("scorer lock");
    if let Some((name, s)) = c.as_ref() {
        if name == dataset {
            return Ok(s.clone());
        }
    }
    let set = match &*loaded.lock().expect("dataset lock") {
        Some(l) if l.name == dataset => l.train.clone(),
        _ => return Err(format!("{dataset} is not loaded: no score")),
    };
    let spec = DatasetSpec::parse_unchecked(dataset);
    let scorer =
        Arc::new(crate::eval::scorer_for(&spec, &set).map_err(|e| crate::errors::one_line(&e))?);
    *c = Some((dataset.to_string(), scorer.clone()));
    Ok(scorer)
}

/// The loaded dataset: its name, training images and their fingerprint (hashed on the data
/// thread, for the runs started on them).
#[derive(Clone)]
struct Loaded {
    name: String,
    train: Arc<ImageSet>,
    fingerprint: DataFingerprint,
}

impl Loaded {
    /// `train` loaded as `name`, fingerprinted (tens of milliseconds for 60 000 images: call
    /// it on a worker).
    fn new(name: String, train: ImageSet) -> Self {
        let fingerprint = train.fingerprint();
        Loaded {
            name,
            train: Arc::new(train),
            fingerprint,
        }
    }
}

/// Engine running the real data layer, trainer and sampler on threads.
pub struct LabEngine {
    runs_root: PathBuf,
    loaded: Arc<Mutex<Option<Loaded>>>,
    generation: Arc<AtomicU64>,
    scorer: ScorerCache,
    /// Every dataset's images resized to this side (`--image-size`: a folder of mixed sizes).
    image_size: Option<usize>,
}

impl LabEngine {
    /// The engine, loading every dataset with its images resized to `size` square (a folder of
    /// mixed sizes loads only so), or at their own size (`None`).
    pub fn with_image_size(self, size: Option<usize>) -> Self {
        Self {
            image_size: size,
            ..self
        }
    }

    /// An engine listing runs under `runs_root`.
    pub fn new(runs_root: PathBuf) -> Self {
        Self {
            runs_root,
            loaded: Arc::new(Mutex::new(None)),
            generation: Arc::new(AtomicU64::new(0)),
            scorer: Arc::new(Mutex::new(None)),
            image_size: None,
        }
    }

    fn train_set(&self, dataset: &str) -> Result<Loaded, String> {
        match &*self.loaded.lock().expect("dataset lock") {
            Some(l) if l.name == dataset => Ok(l.clone()),
            Some(l) => Err(format!("{dataset} is not loaded ({} is)", l.name)),
            None => Err(format!("{dataset} is not loaded yet")),
        }
    }
}

/// Training time between two checkpoints of a lab run: a crash loses at most this much, and
/// the Sample screen can draw from a run within minutes of its start.
pub const LAB_CHECKPOINT_INTERVAL_S: f64 = 120.0;

/// The engine's training configuration for the lab's settings on `set`.
pub fn train_config(s: &TrainSettings, dataset: &str, set: &ImageSet) -> TrainConfig {
    TrainConfig {
        dataset: dataset.to_string(),
        image_size: set.height,
        preview_count: PREVIEW_IMAGES,
        checkpoint_every: if s.steps > 1000 { 500 } else { 0 },
        checkpoint_interval_s: Some(LAB_CHECKPOINT_INTERVAL_S),
        ..s.recipe(set.channels)
    }
}

/// The lab's settings read back from a run's configuration.
pub fn settings_of(cfg: &TrainConfig) -> TrainSettings {
    TrainSettings::from_recipe(cfg, cfg.preview_every)
}

fn data_info(ds: &crate::data::Dataset) -> DataInfo {
    let set = &ds.train;
    let n = set.len();
    // Spread over the set (a fixed multiplicative hash, so the same examples every time).
    let examples = (0..EXAMPLES.min(n))
        .map(|i| (i * 2_654_435_761 + 17) % n)
        .map(|i| (set.image(i), set.labels[i] as usize))
        .collect();
    let n_labels = ds.label_names.len().max(set.n_labels());
    DataInfo {
        name: ds.name.clone(),
        source: ds.source.to_string(),
        notes: Vec::new(),
        n_train: n,
        n_test: ds.test.as_ref().map(|t| t.len()),
        shape: (set.channels, set.height, set.width),
        label_names: (0..n_labels as u32).map(|l| ds.label_name(l)).collect(),
        label_counts: set.label_counts(n_labels),
        examples,
    }
}

fn sampler_kind(s: &SampleSettings) -> SamplerKind {
    if s.ddim {
        SamplerKind::Ddim {
            steps: s.ddim_steps,
            eta: s.eta,
        }
    } else {
        SamplerKind::Ddpm
    }
}

fn run_sampling(
    req: &SampleRequest,
    watch: &mut crate::sampler::Watch,
    score: &dyn Fn(&str) -> Result<Arc<Scorer>, String>,
) -> anyhow::Result<Frames> {
    let loaded = runs::open_for_sampling(&req.run_dir, None, true)?;
    let d = runs::sample_batch_watching(
        &loaded,
        sampler_kind(&req.settings),
        req.settings.n.max(1),
        req.settings.seed,
        // Every frame: the Sample screen steps through them.
        &crate::sampler::KeepFrames::All,
        watch,
    );
    // The memory sampling held, back to the GPU's driver, as after a training run (the pool
    // keeps what is freed; the lab may sit idle, or another process want the GPU). Nothing to
    // do off CUDA.
    let (device, dataset) = (loaded.model.device().clone(), loaded.config.dataset.clone());
    let step = loaded.step;
    drop(loaded);
    let _ = crate::device::release_cached_memory(&device);
    let d = d?;
    let quality = score(&dataset).and_then(|s| {
        s.score_images(d.final_images())
            .map_err(|e| crate::errors::one_line(&e))
    });
    Ok(Frames {
        timesteps: d.timesteps,
        frames: d.frames,
        x0_preds: d.x0_preds,
        quality,
        step: Some(step),
    })
}

/// Scores preview images and appends the score to the run's `quality.jsonl`; `None` when the
/// data has no classifier.
fn score_preview(
    cache: &ScorerCache,
    loaded: &Arc<Mutex<Option<Loaded>>>,
    dataset: &str,
    step: usize,
    images: &[crate::imaging::Image8],
    run_dir: Option<&Path>,
) -> Option<TrainEvent> {
    let quality = scorer_for(cache, loaded, dataset)
        .ok()?
        .score_images(images)
        .ok()?;
    if let Some(dir) = run_dir {
        // A score that cannot be saved is still shown.
        let _ = runs::quality::record_quality(dir, step, &quality);
    }
    Some(TrainEvent::Scored { step, quality })
}

fn run_export(req: &ExportRequest) -> anyhow::Result<Vec<PathBuf>> {
    // The run the images came from (or the runs folder) is gone: making it again would leave
    // a folder of exports no listing shows, in the way of a run of that name.
    if let Some(run) = req
        .out_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.is_dir())
    {
        anyhow::bail!(
            "{} is gone (removed?): nothing exported; draw from a run that is there, then e",
            run.display()
        );
    }
    if req.out_dir.exists() && !req.out_dir.is_dir() {
        anyhow::bail!(
            "{} is a file, not the folder exports go to: move it away, then e again",
            req.out_dir.display()
        );
    }
    std::fs::create_dir_all(&req.out_dir)
        .with_context(|| format!("cannot create {}", req.out_dir.display()))?;
    let last = req.frames.frames.last().context("no frames to export")?;
    let cols = (last.len() as f64).sqrt().ceil() as usize;
    let png = req.out_dir.join(format!("{}.png", req.stem));
    save_grid_png(last, cols, 4, &png)?;
    let gif = req.out_dir.join(format!("{}.gif", req.stem));
    // As `sample --gif` writes it: a 1000-step DDPM sampling is not 1000 GIF frames.
    save_denoising_gif(&req.frames.frames, cols, &gif)?;
    Ok(vec![png, gif])
}

impl Engine for LabEngine {
    fn load_dataset(&mut self, dataset: &str, tx: Sender<WorkerMsg>) {
        let gen = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let generation = self.generation.clone();
        let loaded = self.loaded.clone();
        let name = dataset.to_string();
        let image_size = self.image_size;
        thread::Builder::new()
            .name("ddpm-data".into())
            .spawn(move || {
                let current = || generation.load(Ordering::SeqCst) == gen;
                let fail = |message: String| {
                    let _ = tx.send(WorkerMsg::Data(DataMsg::Failed {
                        name: name.clone(),
                        message,
                    }));
                };
                let spec: DatasetSpec = match name.parse() {
                    Ok(s) => s,
                    Err(e) => return fail(format!("{e}")),
                };
                let mut last: Option<(Instant, u64)> = None;
                let mut speed = 0.0;
                let mut last_sent = Instant::now() - Duration::from_secs(1);
                // Shown with the dataset's source on the Data screen (failures say it too).
                let mut notices: Vec<String> = Vec::new();
                let mut progress = |p: LoadProgress| {
                    let stage = match p {
                        LoadProgress::Resolving { .. } => LoadStage::Resolving,
                        LoadProgress::Downloading { file, done, total } => {
                            let now = Instant::now();
                            if let Some((t, d)) = last {
                                let dt = now.duration_since(t).as_secs_f64();
                                if dt >= 0.25 {
                                    speed = (done.saturating_sub(d)) as f64 / dt;
                                    last = Some((now, done));
                                }
                            } else {
                                last = Some((now, done));
                            }
                            // At most ~20 updates a second.
                            if now.duration_since(last_sent) < Duration::from_millis(50)
                                && done < total
                            {
                                return;
                            }
                            last_sent = now;
                            LoadStage::Downloading {
                                file,
                                done,
                                total: (total > 0).then_some(total),
                                bytes_per_s: speed,
                            }
                        }
                        LoadProgress::Decoding { .. } => LoadStage::Decoding,
                        LoadProgress::Notice { text } => {
                            notices.push(text);
                            return;
                        }
                        LoadProgress::Ready => return,
                    };
                    let _ = tx.send(WorkerMsg::Data(DataMsg::Progress {
                        name: name.clone(),
                        stage,
                    }));
                };
                let opts = LoadOptions {
                    image_size,
                    ..LoadOptions::default()
                };
                let result = match crate::catch_panic(|| load_dataset(&spec, &opts, &mut progress))
                {
                    Ok(r) => r,
                    Err(panic) => return fail(format!("loading crashed: {panic}")),
                };
                // A Hub dataset that cannot be reached: the built-in set stands in (the README's
                // promise), so training can start at once; `r` on the Data screen retries.
                let (result, fell_back, why) = match result {
                    Err(e) if spec.hub().is_some() && e.hub_unreachable() => (
                        crate::data::shapes::generate(&opts, &mut |_| {}),
                        Some(e.to_string()),
                        e.unreachable_why(),
                    ),
                    other => (other, None, None),
                };
                match result {
                    Ok(ds) => {
                        if !current() {
                            return;
                        }
                        let mut info = data_info(&ds);
                        if fell_back.is_none() {
                            info.name = name.clone();
                        } else {
                            // The failure's own words: a drop mid-download is not a Hub that
                            // never answered.
                            info.notes.push(match &why {
                                Some(why) => format!("Hub unreachable ({why}); r retries"),
                                None => "Hub unreachable; r retries".into(),
                            });
                        }
                        info.notes.extend(notices);
                        *loaded.lock().expect("dataset lock") =
                            Some(Loaded::new(info.name.clone(), ds.train));
                        let info = Box::new(info);
                        let msg = match fell_back {
                            Some(reason) => DataMsg::FellBack {
                                name: name.clone(),
                                reason,
                                info,
                            },
                            None => DataMsg::Ready(info),
                        };
                        let _ = tx.send(WorkerMsg::Data(msg));
                    }
                    Err(e) => fail(e.to_string()),
                }
            })
            .expect("cannot spawn the data thread");
    }

    fn start_training(
        &mut self,
        slot: Slot,
        req: TrainRequest,
        tx: Sender<WorkerMsg>,
    ) -> Result<Sender<TrainCommand>, String> {
        let Loaded {
            train: set,
            fingerprint,
            ..
        } = self.train_set(req.dataset())?;
        let stop = StopAt::Step(req.settings().steps);
        let request = match &req {
            TrainRequest::Resume {
                settings, run_dir, ..
            } => runs::TrainRequest::Resume {
                dir: run_dir.clone(),
                stop,
                device: Some(settings.device),
                time_limit_s: settings.time_limit_s,
                checkpoint_interval_s: Some(LAB_CHECKPOINT_INTERVAL_S),
                reset_optimizer: false,
                // The data loaded, which is the run's own unless its folder is gone (then the
                // lab trains it on what is loaded, if that fits, and says so).
                dataset: Some(req.dataset().to_string()),
                changes: Default::default(),
                branch: None,
            },
            TrainRequest::New {
                settings,
                dataset,
                run_dir,
            } => runs::TrainRequest::New {
                config: train_config(settings, dataset, &set),
                dir: run_dir.clone(),
                stop,
            },
        };
        // What a comparison trains with now, for when it is opened again: saved on the events
        // thread (a file synced to disk is no work for the UI's thread).
        let comparison = match (slot, runs::comparison::comparison_of(req.run_dir())) {
            (Slot::Compare(_), Some((base, _))) => {
                Some((base, train_config(req.settings(), req.dataset(), &set)))
            }
            _ => None,
        };
        // A new run's folder is made when it is named (see `claim_run_dir`): left empty by a
        // run that does not start, it goes again (a folder with anything in it stays).
        let new_dir = (!req.is_resume()).then(|| req.run_dir().to_path_buf());
        let forget_new_dir = move |dir: &Option<PathBuf>| {
            if let Some(d) = dir {
                let _ = std::fs::remove_dir(d);
            }
        };
        let prepared = request.prepare_known(set, Some(fingerprint)).map_err(|e| {
            forget_new_dir(&new_dir);
            crate::errors::one_line(&e)
        })?;
        // A full disk pauses the run, weights in memory, until `c` can save it (on Compare,
        // the comparison waits with it).
        let handle = prepared.holding_on_failed_checkpoints().spawn();
        let commands = handle.commands.clone();
        let (cache, loaded) = (self.scorer.clone(), self.loaded.clone());
        let dataset = req.dataset().to_string();
        thread::Builder::new()
            .name("ddpm-train-events".into())
            .spawn(move || {
                let mut run_dir: Option<PathBuf> = None;
                for mut event in handle.events.iter() {
                    match &mut event {
                        TrainEvent::Started {
                            run_dir: d,
                            notices,
                            ..
                        } => {
                            run_dir = d.clone();
                            if let Some((base, cfg)) = &comparison {
                                if let Err(e) = runs::comparison::save_config(base, cfg) {
                                    notices.push(format!(
                                        "the comparison's settings were not saved ({e:#}): opened again, it takes a run's"
                                    ));
                                }
                            }
                        }
                        TrainEvent::Failed { .. } if run_dir.is_none() => forget_new_dir(&new_dir),
                        // Scored on a thread of its own: building the scorer classifies the
                        // whole training split once, and step events must not wait for it.
                        TrainEvent::Preview { step, images } => {
                            let (cache, loaded, dataset) =
                                (cache.clone(), loaded.clone(), dataset.clone());
                            let (step, images, dir, tx) =
                                (*step, images.clone(), run_dir.clone(), tx.clone());
                            let _ =
                                thread::Builder::new()
                                    .name("ddpm-score".into())
                                    .spawn(move || {
                                        if let Some(event) = score_preview(
                                            &cache,
                                            &loaded,
                                            &dataset,
                                            step,
                                            &images,
                                            dir.as_deref(),
                                        ) {
                                            let _ = tx.send(WorkerMsg::Train { slot, event });
                                        }
                                    });
                        }
                        _ => {}
                    }
                    if tx.send(WorkerMsg::Train { slot, event }).is_err() {
                        // The lab is gone: stop (with a checkpoint).
                        let _ = handle.commands.send(TrainCommand::Stop);
                    }
                }
                handle.join();
            })
            .map_err(|e| e.to_string())?;
        Ok(commands)
    }

    fn estimate(&mut self, settings: TrainSettings, dataset: &str, tx: Sender<WorkerMsg>) {
        let set = match self.train_set(dataset) {
            Ok(l) => l.train,
            Err(e) => {
                let _ = tx.send(WorkerMsg::Estimated(Estimate {
                    settings,
                    result: Err(e),
                }));
                return;
            }
        };
        let mut cfg = train_config(&settings, dataset, &set);
        // Per-image cost barely depends on the batch size: time small batches so that even the
        // blog's model is measured in seconds on a CPU.
        cfg.batch_size = cfg.batch_size.min(ESTIMATE_BATCH);
        cfg.steps = ESTIMATE_STEPS;
        cfg.preview_every = 0;
        cfg.checkpoint_every = 0;
        cfg.checkpoint_interval_s = None;
        thread::Builder::new()
            .name("ddpm-estimate".into())
            .spawn(move || {
                let handle = match (runs::TrainRequest::Scratch { config: cfg }).prepare(set) {
                    Ok(p) => p.spawn(),
                    Err(e) => {
                        let result = Err(crate::errors::one_line(&e));
                        let _ = tx.send(WorkerMsg::Estimated(Estimate { settings, result }));
                        return;
                    }
                };
                let mut speeds = Vec::new();
                let mut error = None;
                for ev in handle.events.iter() {
                    match ev {
                        TrainEvent::Step(s) if s.step > 1 => speeds.push(s.images_per_s),
                        TrainEvent::Failed { message, .. } => error = Some(message),
                        _ => {}
                    }
                }
                handle.join();
                let result = match (error, speeds.is_empty()) {
                    (Some(e), _) => Err(e),
                    (None, true) => Err("no step was timed".into()),
                    (None, false) => Ok(speeds.iter().sum::<f64>() / speeds.len() as f64),
                };
                let _ = tx.send(WorkerMsg::Estimated(Estimate { settings, result }));
            })
            .expect("cannot spawn the estimate thread");
    }

    fn sample(&mut self, slot: Slot, req: SampleRequest, tx: Sender<WorkerMsg>) {
        let (cache, loaded) = (self.scorer.clone(), self.loaded.clone());
        thread::Builder::new()
            .name("ddpm-sample".into())
            .spawn(move || {
                let long_ago = Instant::now() - Duration::from_secs(1);
                let (mut last, mut last_images) = (long_ago, long_ago);
                // Where the lab's `x` stopped it.
                let mut stopped_at = None;
                let stop = req.stop.clone();
                // Counts at most ~20 times a second, the images being denoised ~5 times.
                let mut watch = |done: usize, total: usize, xt: &[crate::imaging::Image8]| {
                    if stop.is_raised() {
                        stopped_at = Some((done, total));
                        return ControlFlow::Break(());
                    }
                    let msg = if done < total && last_images.elapsed() >= SAMPLE_IMAGES_EVERY {
                        last_images = Instant::now();
                        SampleMsg::Denoising {
                            done,
                            total,
                            images: xt.to_vec(),
                        }
                    } else if done == total || last.elapsed() >= Duration::from_millis(50) {
                        SampleMsg::Progress { done, total }
                    } else {
                        return ControlFlow::Continue(());
                    };
                    last = Instant::now();
                    let _ = tx.send(WorkerMsg::Sample { slot, msg });
                    ControlFlow::Continue(())
                };
                let score = |dataset: &str| scorer_for(&cache, &loaded, dataset);
                let result = crate::catch_panic(|| run_sampling(&req, &mut watch, &score));
                let msg = match (result, stopped_at) {
                    (Ok(Ok(frames)), _) => SampleMsg::Done(Box::new(frames)),
                    (Ok(Err(_)), Some((done, total))) => SampleMsg::Stopped { done, total },
                    (Ok(Err(e)), None) => SampleMsg::Failed(crate::errors::one_line(&e)),
                    (Err(panic), _) => SampleMsg::Failed(format!("sampling crashed: {panic}")),
                };
                let _ = tx.send(WorkerMsg::Sample { slot, msg });
            })
            .expect("cannot spawn the sampling thread");
    }

    fn export(&mut self, req: ExportRequest, tx: Sender<WorkerMsg>) {
        thread::Builder::new()
            .name("ddpm-export".into())
            .spawn(move || {
                let result = match crate::catch_panic(|| run_export(&req)) {
                    Ok(exported) => exported.map_err(|e| crate::errors::one_line(&e)),
                    Err(panic) => Err(format!("the export crashed: {panic}")),
                };
                let _ = tx.send(WorkerMsg::Exported(result));
            })
            .expect("cannot spawn the export thread");
    }

    fn list_runs(&mut self, tx: Sender<WorkerMsg>) {
        let root = self.runs_root.clone();
        thread::Builder::new()
            .name("ddpm-list-runs".into())
            .spawn(move || {
                let _ = tx.send(WorkerMsg::Runs(find_runs(&root)));
            })
            .expect("cannot spawn the run-listing thread");
    }

    fn watch_run(
        &mut self,
        dir: &Path,
        from_step: usize,
        tx: Sender<WorkerMsg>,
    ) -> Option<Sender<()>> {
        let (stop_tx, stop_rx) = channel();
        let dir = dir.to_path_buf();
        thread::Builder::new()
            .name("ddpm-watch".into())
            .spawn(move || watch_loop(dir, from_step, tx, stop_rx))
            .ok()?;
        Some(stop_tx)
    }

    fn scan_runs(&mut self, tx: Sender<WorkerMsg>) {
        let root = self.runs_root.clone();
        thread::Builder::new()
            .name("ddpm-scan-runs".into())
            .spawn(move || {
                // Runs without a checkpoint too (one training now, one that crashed early):
                // their curves are there; opening one says why it cannot be.
                let records = runs::find_all_runs(&root).iter().map(record_of).collect();
                let _ = tx.send(WorkerMsg::RunTable(records));
            })
            .expect("cannot spawn the run-scanning thread");
    }

    fn read_last_run(&mut self, dir: &Path, tx: Sender<WorkerMsg>) {
        let dir = dir.to_path_buf();
        thread::Builder::new()
            .name("ddpm-last-run".into())
            .spawn(move || {
                if let Ok(info) = RunInfo::read(&dir) {
                    let _ = tx.send(WorkerMsg::LastRun(summary_of(&info)));
                }
            })
            .expect("cannot spawn the run-reading thread");
    }

    fn remove_run(&mut self, dir: &Path, tx: Sender<WorkerMsg>) {
        let dir = dir.to_path_buf();
        thread::Builder::new()
            .name("ddpm-remove-run".into())
            .spawn(move || {
                let result = runs::remove_run(&dir).map_err(|e| crate::errors::one_line(&e));
                let _ = tx.send(WorkerMsg::RunRemoved(result));
            })
            .expect("cannot spawn the run-removing thread");
    }

    fn open_run(&mut self, dir: &Path, tx: Sender<WorkerMsg>) {
        let dir = dir.to_path_buf();
        thread::Builder::new()
            .name("ddpm-open-run".into())
            .spawn(move || {
                let _ = tx.send(WorkerMsg::RunOpened(read_run(&dir)));
            })
            .expect("cannot spawn the run-reading thread");
    }

    fn open_comparison(&mut self, base: &Path, tx: Sender<WorkerMsg>) {
        let base = base.to_path_buf();
        thread::Builder::new()
            .name("ddpm-open-comparison".into())
            .spawn(move || {
                let _ = tx.send(WorkerMsg::ComparisonOpened(read_comparison(&base)));
            })
            .expect("cannot spawn the run-reading thread");
    }
}

/// The runs of the comparison at `base` that exist (those whose directory holds a
/// configuration; a schedule the comparison never reached has none); an error when none does
/// or one cannot be read.
fn read_comparison(base: &Path) -> Result<OpenedComparison, String> {
    let mut runs = Vec::new();
    for schedule in crate::schedule::BetaSchedule::ALL {
        let dir = crate::runs::comparison::member(base, schedule);
        if dir.join(crate::store::CONFIG_FILE).is_file() {
            let run = read_run(&dir).or_else(|e| {
                // Stopped before its first checkpoint: its configuration still says what it
                // trains (at step 0), and continuing starts it afresh.
                RunInfo::of(&RunDir::at(&dir))
                    .map(|info| OpenedRun {
                        summary: summary_of(&info),
                        history: Vec::new(),
                        quality: Vec::new(),
                        preview: None,
                        data_gone: false,
                    })
                    .map_err(|_| e)
            })?;
            runs.push((schedule, run));
        }
    }
    if runs.is_empty() {
        return Err(format!("{} holds no run of the comparison", base.display()));
    }
    let (settings, dataset) = match runs::comparison::load_config(base) {
        Ok(Some(cfg)) => (Some(settings_of(&cfg)), Some(cfg.dataset)),
        // Written before the comparison kept its own: a run's, with the furthest step any
        // of them was to train to.
        _ => {
            let first = &runs[0].1.summary;
            let steps = runs
                .iter()
                .filter_map(|(_, r)| r.summary.settings.as_ref().map(|s| s.steps))
                .max();
            let settings = first.settings.clone().map(|s| TrainSettings {
                steps: steps.unwrap_or(s.steps),
                ..s
            });
            (settings, first.dataset.clone())
        }
    };
    Ok(OpenedComparison {
        base: base.to_path_buf(),
        runs,
        settings,
        dataset,
    })
}

/// How often a watched run directory is read.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(1000);

/// What a watcher compares a run with: the step of its newest checkpoint and its stop step
/// when the watch began.
#[derive(Debug, Clone, Copy)]
struct WatchBaseline {
    saved: usize,
    stop_at: Option<usize>,
}

impl WatchBaseline {
    fn read(dir: &Path) -> Self {
        Self {
            saved: RunDir::at(dir).saved_step().unwrap_or(0),
            stop_at: RunDir::at(dir).load_config().ok().map(|c| c.steps),
        }
    }
}

/// Watches the run in `dir` (read on the watcher's thread, so the UI's never waits on it).
fn watch_loop(dir: PathBuf, last: usize, tx: Sender<WorkerMsg>, stop: Receiver<()>) {
    let baseline = WatchBaseline::read(&dir);
    watch_from(dir, last, baseline, tx, stop);
}

/// Follows the run in `dir` from `last` (its last step seen) and `baseline`: its new steps,
/// checkpoints, stop step and trainer, until told to stop.
fn watch_from(
    dir: PathBuf,
    mut last: usize,
    baseline: WatchBaseline,
    tx: Sender<WorkerMsg>,
    stop: Receiver<()>,
) {
    let slot = Slot::Main;
    let WatchBaseline {
        mut saved,
        mut stop_at,
    } = baseline;
    let stop_step = || RunDir::at(&dir).load_config().ok().map(|c| c.steps);
    let mut holder = None;
    loop {
        let now = crate::store::RunLock::holder(&dir);
        if now != holder {
            holder = now.clone();
            if tx.send(WorkerMsg::RunHolder(now)).is_err() {
                return;
            }
        }
        match stop.recv_timeout(WATCH_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if let Ok(stats) = read_metrics_file(&dir.join(METRICS_FILE)) {
            let from = last;
            for s in stats.into_iter().filter(|s| s.step > from) {
                last = s.step;
                let event = TrainEvent::Step(s);
                if tx.send(WorkerMsg::Train { slot, event }).is_err() {
                    return;
                }
            }
        }
        let step = RunDir::at(&dir).saved_step().unwrap_or(saved);
        if step > saved {
            saved = step;
            let event = TrainEvent::Checkpointed {
                step,
                path: dir.clone(),
            };
            if tx.send(WorkerMsg::Train { slot, event }).is_err() {
                return;
            }
        }
        // A trainer saves a new stop step when it resumes, and with each checkpoint.
        let now = stop_step();
        if now != stop_at {
            stop_at = now;
            if let Some(s) = now {
                if tx.send(WorkerMsg::RunStopStep(s)).is_err() {
                    return;
                }
            }
        }
    }
}

/// The runs under `root` as the run picker lists them.
fn find_runs(root: &Path) -> Vec<RunSummary> {
    runs::find_openable_runs(root)
        .iter()
        .map(summary_of)
        .collect()
}

/// One run's summary and metrics history, the directory opened once. A run a process trains
/// towards its first checkpoint is read all the same (followed live until it has one).
fn read_run(dir: &Path) -> Result<OpenedRun, String> {
    let read =
        runs::open_openable(dir).and_then(|run| Ok((RunInfo::of(&run)?, run.read_metrics()?)));
    read.map(|(info, history)| OpenedRun {
        quality: quality_history(&info.dir),
        preview: previews::latest_preview(&info.dir, info.config.model.channels),
        data_gone: info
            .config
            .dataset
            .parse::<crate::data::DatasetSpec>()
            .is_err(),
        summary: summary_of(&info),
        history,
    })
    .map_err(|e| crate::errors::one_line(&e))
}

/// One run as the Runs screen lists it: its loss as `ddpm-lab runs` gives it, its metrics
/// smoothed as the Train screen smooths them and reduced to a chart's worth of points, and its
/// latest preview score.
fn record_of(info: &RunInfo) -> RunRecord {
    let history = RunDir::at(&info.dir).read_metrics().unwrap_or_default();
    let smoothed =
        crate::tui::state::run::smoothed(history.iter().map(|s| (s.step as f64, s.loss)));
    RunRecord {
        summary: summary_of(info),
        last_loss: runs::recent_loss(&history),
        last_step: history.last().map_or(0, |s| s.step),
        quality: last_quality(&info.dir),
        eval: runs::quality::headline_eval(&info.dir),
        curve: crate::tui::ui::chart::downsample(&smoothed, CURVE_POINTS),
        bytes: runs::remove::size_of(&info.dir),
    }
}

fn summary_of(info: &RunInfo) -> RunSummary {
    RunSummary {
        dir: info.dir.clone(),
        settings: Some(settings_of(&info.config)),
        dataset: Some(info.config.dataset.clone()),
        step: info.step,
        held_by: crate::store::RunLock::holder(&info.dir),
        // None yet: not one whose newest checkpoint is damaged (resuming names its others).
        unsaved: !info.checkpointed && info.problem.is_none(),
        problem: info.problem.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSource, Dataset};
    use crate::store::QUALITY_FILE;
    use crate::tui::settings::ModelPreset;
    use crate::tui::workers::StopFlag;

    /// A run directory holding only its configuration (no checkpoint yet), in `d`.
    fn configured_run(d: &Path) -> PathBuf {
        let dir = d.join("run");
        RunDir::create(&dir)
            .unwrap()
            .save_config(&TrainConfig::default())
            .unwrap();
        dir
    }

    /// [`watch_loop`] of `dir` from `from_step` on a thread: what it sends, and what stops it
    /// (dropped, then the thread joined).
    fn watching(
        dir: &Path,
        from_step: usize,
    ) -> (Receiver<WorkerMsg>, Sender<()>, thread::JoinHandle<()>) {
        let (tx, rx) = channel();
        let (stop_tx, stop_rx) = channel();
        let watched = dir.to_path_buf();
        // The baseline is read before the test changes the run: the watcher's thread may
        // start late on a busy machine, and would take those changes for where it began.
        let baseline = WatchBaseline::read(dir);
        let watcher = thread::spawn(move || watch_from(watched, from_step, baseline, tx, stop_rx));
        (rx, stop_tx, watcher)
    }

    /// The watcher of a run says who trains it, and again once nobody does.
    #[test]
    fn the_watcher_says_who_trains_the_run() {
        let d = tempfile::tempdir().unwrap();
        let dir = configured_run(d.path());
        let lock = crate::store::RunLock::acquire(&dir).unwrap();
        let (rx, stop_tx, watcher) = watching(&dir, 0);
        let holder = |rx: &Receiver<WorkerMsg>| loop {
            match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
                WorkerMsg::RunHolder(h) => return h,
                _ => continue,
            }
        };
        assert_eq!(holder(&rx), Some(format!("pid {}", std::process::id())));
        drop(lock);
        assert_eq!(holder(&rx), None);
        drop(stop_tx);
        watcher.join().unwrap();
    }

    /// A run a process trains towards its first checkpoint is listed and read (to follow it
    /// live); once nobody trains it, it is neither.
    #[test]
    fn a_run_trained_before_its_first_checkpoint_opens_while_it_trains() {
        let d = tempfile::tempdir().unwrap();
        let dir = configured_run(d.path());
        let lock = crate::store::RunLock::acquire(&dir).unwrap();
        let opened = read_run(&dir).unwrap();
        assert!(opened.summary.unsaved);
        assert_eq!(opened.summary.step, 0);
        assert_eq!(find_runs(d.path()).len(), 1);
        drop(lock);
        let e = read_run(&dir).unwrap_err();
        assert!(e.contains("has no checkpoint yet"), "{e}");
        assert!(find_runs(d.path()).is_empty());
        // One whose `latest` is damaged has checkpoints: not "no checkpoint yet".
        let run = RunDir::at(&dir);
        run.write_checkpoint(
            &TrainConfig::default(),
            &crate::store::RunState::default(),
            &[crate::store::WEIGHTS_FILE],
            &mut |_, p| Ok(std::fs::write(p, b"weights")?),
        )
        .unwrap();
        std::fs::write(dir.join(crate::store::layout::LATEST_FILE), "garbage\n").unwrap();
        assert!(!read_run(&dir).unwrap().summary.unsaved);
    }

    /// The watcher of a run resumed elsewhere with a later stop step says so at the run's
    /// next checkpoint (whose config.json carries it).
    #[test]
    fn the_watcher_says_when_the_stop_step_moves() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("run");
        let run = RunDir::create(&dir).unwrap();
        let checkpoint = |steps: usize, step: usize| {
            let cfg = TrainConfig {
                steps,
                ..TrainConfig::default()
            };
            let state = crate::store::RunState {
                step,
                ..Default::default()
            };
            run.write_checkpoint(&cfg, &state, &[crate::store::WEIGHTS_FILE], &mut |_, p| {
                Ok(std::fs::write(p, b"weights")?)
            })
            .unwrap();
        };
        checkpoint(10, 1);
        let (rx, stop_tx, watcher) = watching(&dir, 1);
        checkpoint(20, 2);
        let moved = loop {
            match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
                WorkerMsg::RunStopStep(s) => break s,
                _ => continue,
            }
        };
        assert_eq!(moved, 20);
        // A trainer resuming with a later stop step saves it before any new checkpoint.
        let latest = run.latest_checkpoint().unwrap().unwrap();
        let later = TrainConfig {
            steps: 30,
            ..latest.load_config().unwrap()
        };
        run.save_settings_from(&latest, &later).unwrap();
        let moved = loop {
            match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
                WorkerMsg::RunStopStep(s) => break s,
                _ => continue,
            }
        };
        assert_eq!(moved, 30);
        drop(stop_tx);
        watcher.join().unwrap();
    }

    fn set(n: usize) -> ImageSet {
        ImageSet {
            images: (0..n * 28 * 28).map(|i| (i % 251) as u8).collect(),
            labels: (0..n as u32).map(|i| i % 3).collect(),
            channels: 1,
            height: 28,
            width: 28,
        }
    }

    /// A comparison's runs are read where they exist: one stopped before its first checkpoint
    /// is there at step 0 with its configuration; a folder without any run is an error.
    #[test]
    fn a_comparison_is_read_run_by_run() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("20261206-061500-compare");
        let err = read_comparison(&base).unwrap_err();
        assert!(err.ends_with("holds no run of the comparison"), "{err}");
        let cosine = runs::comparison::member(&base, crate::schedule::BetaSchedule::Cosine);
        let cfg = TrainConfig {
            steps: 300,
            ..TrainConfig::default()
        };
        RunDir::create(&cosine).unwrap().save_config(&cfg).unwrap();
        let opened = read_comparison(&base).unwrap();
        assert_eq!(opened.base, base);
        // No comparison.json (written before there was one): the run's settings.
        assert_eq!(opened.settings.as_ref().unwrap().steps, 300);
        let own = TrainConfig {
            steps: 40,
            lr: 5e-4,
            dataset: "shapes".into(),
            ..TrainConfig::default()
        };
        runs::comparison::save_config(&base, &own).unwrap();
        let with_own = read_comparison(&base).unwrap();
        assert_eq!(with_own.settings, Some(settings_of(&own)));
        assert_eq!(with_own.dataset.as_deref(), Some("shapes"));
        assert_eq!(opened.runs.len(), 1);
        let (schedule, run) = &opened.runs[0];
        assert_eq!(*schedule, crate::schedule::BetaSchedule::Cosine);
        assert_eq!(run.summary.dir, cosine);
        assert_eq!(run.summary.step, 0);
        assert_eq!(run.summary.settings.as_ref().unwrap().steps, 300);
        assert!(run.history.is_empty());
    }

    /// A comparison's run, once started, leaves the comparison's settings beside it (what
    /// opening the comparison again trains its other runs with); a run of the Train screen
    /// writes no comparison file.
    #[test]
    fn a_started_comparison_run_saves_the_comparisons_settings() {
        let d = tempfile::tempdir().unwrap();
        let mut engine = toy_engine(d.path());
        let settings = TrainSettings {
            lr: 7e-4,
            ..tiny_settings(2)
        };
        let base = d.path().join("20261206-090000-compare");
        let run = |engine: &mut LabEngine, slot: Slot, run_dir: PathBuf| {
            let (tx, rx) = std::sync::mpsc::channel();
            let req = TrainRequest::New {
                settings: settings.clone(),
                dataset: "toy".into(),
                run_dir,
            };
            engine.start_training(slot, req, tx).unwrap();
            let mut started_notices = None;
            for msg in rx.iter() {
                if let WorkerMsg::Train { event, .. } = msg {
                    match event {
                        TrainEvent::Started { notices, .. } => started_notices = Some(notices),
                        TrainEvent::Finished { .. } => break,
                        TrainEvent::Failed { message, .. } => panic!("{message}"),
                        _ => {}
                    }
                }
            }
            started_notices.expect("a Started event")
        };
        let cosine = crate::schedule::BetaSchedule::Cosine;
        let notices = run(
            &mut engine,
            Slot::Compare(cosine),
            runs::comparison::member(&base, cosine),
        );
        assert!(
            notices.iter().all(|n| !n.contains("not saved")),
            "{notices:?}"
        );
        let saved = runs::comparison::load_config(&base)
            .unwrap()
            .expect("comparison.json");
        // The runs' own schedules aside (the file names none).
        let want = TrainConfig {
            schedule: crate::schedule::BetaSchedule::ALL[0],
            ..train_config(&settings, "toy", &set(8))
        };
        assert_eq!(saved, want);
        assert_eq!(
            (saved.steps, saved.lr, saved.dataset.as_str()),
            (2, 7e-4, "toy")
        );
        // A Train-screen run is no comparison's.
        let single = d.path().join("20261206-090100-linear");
        run(&mut engine, Slot::Main, single.clone());
        assert!(runs::comparison::load_config(&single).unwrap().is_none());
        assert!(!d.path().join(runs::comparison::CONFIG_FILE).exists());
    }

    /// An engine with runs under `root` and 8 toy images loaded.
    fn toy_engine(root: &Path) -> LabEngine {
        let engine = LabEngine::new(root.to_path_buf());
        *engine.loaded.lock().unwrap() = Some(Loaded::new("toy".into(), set(8)));
        engine
    }

    /// A tiny model trained `steps` steps, without previews.
    fn tiny_settings(steps: usize) -> TrainSettings {
        TrainSettings {
            model: ModelPreset::Tiny,
            timesteps: 10,
            batch_size: 4,
            steps,
            preview_every: 0,
            ..TrainSettings::default()
        }
    }

    /// An engine over 8 toy images that has trained a tiny run of `steps` steps, without
    /// previews, in `root/20261206-110000-linear`.
    fn trained(root: &Path, steps: usize) -> (LabEngine, PathBuf) {
        let mut engine = toy_engine(root);
        let settings = tiny_settings(steps);
        let run_dir = root.join("20261206-110000-linear");
        let (tx, rx) = std::sync::mpsc::channel();
        let req = TrainRequest::New {
            settings,
            dataset: "toy".into(),
            run_dir: run_dir.clone(),
        };
        engine.start_training(Slot::Main, req, tx).unwrap();
        for msg in rx.iter() {
            match msg {
                WorkerMsg::Train {
                    event: TrainEvent::Finished { .. },
                    ..
                } => break,
                WorkerMsg::Train {
                    event: TrainEvent::Failed { message, .. },
                    ..
                } => panic!("{message}"),
                _ => {}
            }
        }
        (engine, run_dir)
    }

    /// A lab run records the fingerprint its loaded set was given on the data thread: starting
    /// it (on the UI's thread) does not hash the images again.
    #[test]
    fn a_lab_run_records_the_fingerprint_hashed_when_its_data_loaded() {
        let d = tempfile::tempdir().unwrap();
        let mut engine = toy_engine(d.path());
        let hashed = engine
            .loaded
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .fingerprint
            .clone();
        assert_eq!(hashed, set(8).fingerprint());
        // A marker only the loaded record holds: hashing again would record the real digest.
        let marker = DataFingerprint {
            blake3: "0".repeat(64),
            ..hashed
        };
        engine.loaded.lock().unwrap().as_mut().unwrap().fingerprint = marker.clone();
        let run_dir = d.path().join("20261207-060000-linear");
        let (tx, rx) = std::sync::mpsc::channel();
        let req = TrainRequest::New {
            settings: tiny_settings(1),
            dataset: "toy".into(),
            run_dir: run_dir.clone(),
        };
        engine.start_training(Slot::Main, req, tx).unwrap();
        for msg in rx.iter() {
            if let WorkerMsg::Train {
                event: TrainEvent::Finished { .. } | TrainEvent::Failed { .. },
                ..
            } = msg
            {
                break;
            }
        }
        let cfg = RunDir::open(&run_dir).unwrap().load_config().unwrap();
        assert_eq!(cfg.data_fingerprint, Some(marker));
    }

    /// An opened run brings its last preview from `previews/`, in its channels (the
    /// trainer's writing them is a test of the trainer's).
    #[test]
    fn an_opened_run_brings_its_last_preview() {
        let d = tempfile::tempdir().unwrap();
        let (_engine, run_dir) = trained(d.path(), 1);
        assert_eq!(read_run(&run_dir).unwrap().preview, None);
        let grey = |v: u8| crate::imaging::Image8 {
            width: 28,
            height: 28,
            channels: 1,
            pixels: vec![v; 28 * 28],
        };
        let images: Vec<_> = (0..5).map(|k| grey(40 * k)).collect();
        previews::save_preview(&run_dir, 1, &images).unwrap();
        assert_eq!(read_run(&run_dir).unwrap().preview, Some((1, images)));
    }

    /// A run whose lock a process holds is listed as trained now.
    #[test]
    fn a_held_run_is_listed_as_training() {
        let d = tempfile::tempdir().unwrap();
        let (_engine, run_dir) = trained(d.path(), 1);
        let record = || record_of(&RunInfo::read(&run_dir).unwrap());
        // The trainer lets go of the run as its thread ends, just after `Finished`.
        let free = Instant::now() + Duration::from_secs(10);
        while record().summary.held_by.is_some() && Instant::now() < free {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(record().summary.held_by.is_none());
        let _lock = crate::store::RunLock::acquire(&run_dir).unwrap();
        assert_eq!(
            record().summary.held_by,
            Some(format!("pid {}", std::process::id()))
        );
    }

    /// A sampling whose stop flag is raised ends after its step with `Stopped`, saying where;
    /// one left alone ends with its frames.
    #[test]
    fn a_raised_stop_flag_ends_the_sampling_after_its_step() {
        let d = tempfile::tempdir().unwrap();
        let (mut engine, run_dir) = trained(d.path(), 1);
        let sample = |engine: &mut LabEngine, stop: StopFlag| {
            let (tx, rx) = std::sync::mpsc::channel();
            let req = SampleRequest {
                run_dir: run_dir.clone(),
                settings: SampleSettings {
                    n: 1,
                    ddim: false,
                    ..SampleSettings::default()
                },
                stop,
            };
            engine.sample(Slot::Main, req, tx);
            rx.iter()
                .find_map(|m| match m {
                    WorkerMsg::Sample {
                        msg: msg @ (SampleMsg::Done(_) | SampleMsg::Stopped { .. } | SampleMsg::Failed(_)),
                        ..
                    } => Some(msg),
                    _ => None,
                })
                .expect("the sampling ends")
        };
        let stop = StopFlag::default();
        stop.raise();
        match sample(&mut engine, stop) {
            SampleMsg::Stopped { done, total } => assert_eq!((done, total), (1, 10)),
            other => panic!("not stopped: {other:?}"),
        }
        match sample(&mut engine, StopFlag::default()) {
            SampleMsg::Done(frames) => assert_eq!(frames.len(), 11),
            other => panic!("not done: {other:?}"),
        }
    }

    /// The lab exports what `sample --gif` writes: a 1000-step DDPM sampling makes a GIF of
    /// at most `DENOISING_GIF_FRAMES` frames (plus the held last one), not 1000.
    #[test]
    fn an_export_of_a_long_sampling_keeps_a_gif_of_60_frames() {
        use image::AnimationDecoder;
        let d = tempfile::tempdir().unwrap();
        let image = |v: u8| crate::imaging::Image8 {
            width: 4,
            height: 4,
            channels: 1,
            pixels: vec![v; 16],
        };
        let frames = Frames {
            timesteps: (0..=1000).rev().collect(),
            frames: (0..1001).map(|s| vec![image((s / 4) as u8); 4]).collect(),
            x0_preds: Vec::new(),
            quality: Err("not scored".into()),
            step: Some(10),
        };
        let req = ExportRequest {
            frames,
            out_dir: d.path().to_path_buf(),
            stem: "s".into(),
        };
        let written = run_export(&req).unwrap();
        assert_eq!(written, [d.path().join("s.png"), d.path().join("s.gif")]);
        let file = std::io::BufReader::new(std::fs::File::open(&written[1]).unwrap());
        let decoded = image::codecs::gif::GifDecoder::new(file)
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(
            decoded.len(),
            crate::export::gif::DENOISING_GIF_FRAMES + crate::export::gif::hold_repeats(80)
        );
        // An `exports` that is a file is said as such, not as `File exists (os error 17)`.
        let file = d.path().join("exports");
        std::fs::write(&file, "x").unwrap();
        let req = ExportRequest {
            out_dir: file,
            ..req
        };
        let e = run_export(&req).unwrap_err().to_string();
        assert!(e.contains("is a file, not the folder exports go to"), "{e}");
        // A run removed since its images were drawn is not made again.
        let gone = d.path().join("removed-run");
        let req = ExportRequest {
            out_dir: gone.join("exports"),
            ..req
        };
        let e = run_export(&req).unwrap_err().to_string();
        assert!(
            e.contains("removed-run is gone (removed?): nothing exported"),
            "{e}"
        );
        assert!(!gone.exists());
    }

    /// Scores are read by step, the last written of a step kept, torn lines skipped.
    #[test]
    fn a_runs_preview_scores_are_read_by_step() {
        let d = tempfile::tempdir().unwrap();
        assert!(quality_history(d.path()).is_empty());
        let line = |step: usize, recognised: f64| {
            let q = crate::eval::Quality {
                n: 8,
                frechet: None,
                recognised,
                class_fractions: vec![0.1; 10],
                mean_confidence: 0.5,
            };
            serde_json::json!({ "step": step, "quality": q }).to_string()
        };
        let text = [
            line(50, 0.2),
            line(25, 0.1),
            "{\"step\": 75, \"qual".to_string(),
            line(50, 0.3),
        ]
        .join("\n");
        std::fs::write(d.path().join(QUALITY_FILE), text).unwrap();
        let got: Vec<(usize, f64)> = quality_history(d.path())
            .into_iter()
            .map(|(s, q)| (s, q.recognised))
            .collect();
        assert_eq!(got, [(25, 0.1), (50, 0.3)]);
        assert_eq!(
            last_quality(d.path()).map(|(s, q)| (s, q.recognised)),
            Some((50, 0.3))
        );
    }

    #[test]
    fn settings_survive_the_run_config() {
        let data = set(4);
        for model in ModelPreset::ALL {
            let s = TrainSettings {
                model,
                timesteps: 300,
                ..TrainSettings::default()
            };
            let cfg = train_config(&s, "shapes", &data);
            assert_eq!(cfg.model, model.unet(1));
            assert_eq!((cfg.image_size, cfg.dataset.as_str()), (28, "shapes"));
            // A lab run is never more than two minutes of training from a checkpoint.
            assert_eq!(cfg.checkpoint_interval_s, Some(LAB_CHECKPOINT_INTERVAL_S));
            assert_eq!(settings_of(&cfg), s);
        }
        let custom = TrainSettings {
            custom_model: Some(crate::model::UnetConfig {
                dim: 12,
                ..crate::model::UnetConfig::tiny()
            }),
            ..TrainSettings::default()
        };
        assert_eq!(
            settings_of(&train_config(&custom, "x", &data)).custom_model,
            custom.custom_model
        );
    }

    /// A folder of images of two sizes loads only resized: refused at their own sizes with a
    /// message naming `--image-size`, which the lab takes.
    #[test]
    fn a_folder_of_mixed_sizes_loads_at_the_labs_image_size() {
        let d = tempfile::tempdir().unwrap();
        for (class, side) in [("a", 12u32), ("b", 20u32)] {
            let dir = d.path().join("imgs").join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..3u8 {
                image::GrayImage::from_pixel(side, side, image::Luma([40 * i]))
                    .save(dir.join(format!("{i}.png")))
                    .unwrap();
            }
        }
        let folder = d.path().join("imgs").display().to_string();
        let load = |engine: &mut LabEngine| {
            let (tx, rx) = std::sync::mpsc::channel();
            engine.load_dataset(&folder, tx);
            loop {
                match rx.recv_timeout(Duration::from_secs(30)).unwrap() {
                    WorkerMsg::Data(DataMsg::Ready(info)) => return Ok(info.shape),
                    WorkerMsg::Data(DataMsg::Failed { message, .. }) => return Err(message),
                    _ => {}
                }
            }
        };
        let e = load(&mut LabEngine::new(d.path().to_path_buf())).unwrap_err();
        assert!(e.contains("--image-size"), "{e}");
        let mut sized = LabEngine::new(d.path().to_path_buf()).with_image_size(Some(16));
        assert_eq!(load(&mut sized), Ok((1, 16, 16)));
    }

    #[test]
    fn data_info_summarises_the_training_split() {
        let ds = Dataset {
            name: "toy".into(),
            source: DataSource::BuiltIn,
            train: set(90),
            test: None,
            label_names: vec!["a".into(), "b".into(), "c".into()],
        };
        let info = data_info(&ds);
        assert_eq!(info.n_train, 90);
        assert_eq!(info.label_counts, vec![30, 30, 30]);
        assert_eq!(info.examples.len(), EXAMPLES.min(90));
        assert_eq!(info.shape, (1, 28, 28));
        let (img, label) = &info.examples[1];
        let i = (2_654_435_761usize + 17) % 90;
        assert_eq!(img, &ds.train.image(i));
        assert_eq!(*label, i % 3);
    }
}
