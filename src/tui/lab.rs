//! Starting the lab: flags that preset it, remembered settings, terminal set-up and restore
//! (normal exit, Ctrl-C, panic), graphics-protocol detection, and the main loop.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ratatui_image::picker::Picker;

use crate::export::show::graphics_terminal_likely;

use crate::device::DeviceSpec;
use crate::model::UnetConfig;
use crate::runs::RecipeFlags;
use crate::tui::input::TerminalInput;
use crate::tui::settings::{config_dir, LabSettings, ModelPreset, RecipeName, TrainSettings};
use crate::tui::state::{Notice, Topic};
use crate::tui::{run_app, ui, App, Engine, EventSource, ImageRenderer};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::{DefaultTerminal, Terminal};

/// Flags of the lab (the dataset, model-size and device flags of `ddpm-lab train`).
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct LabOptions {
    /// Dataset: fashion_mnist, mnist, cifar10, shapes (built-in, offline) or a path.
    #[arg(long, value_parser = crate::cli::dataset_arg())]
    pub dataset: Option<String>,
    /// Model size: tiny, small, quick, blog, current, current-sc or lucidrains (default: what the device
    /// trains quickly).
    #[arg(long)]
    pub model: Option<ModelPreset>,
    /// Device: cpu, cuda, cuda:N or metal.
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Resize (and centre-crop) every dataset's images to this square side (a folder of images
    /// of several sizes loads only so).
    #[arg(long)]
    pub image_size: Option<usize>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub recipe: RecipeFlags,
    /// Optimisation steps of a run.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of training runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory holding run directories (default: the remembered one, else $DDPM_LAB_RUNS,
    /// else ./runs).
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
    /// Draw images with unicode half-blocks even where the terminal has a graphics protocol.
    #[arg(long)]
    pub halfblocks: bool,
    /// Start with the remembered settings ignored (they are still saved on exit).
    #[arg(long)]
    pub fresh: bool,
}

impl LabOptions {
    /// Applies the flags on top of remembered settings (`custom_model`: an explicit UNet from
    /// model flags, replacing the size preset).
    pub fn apply(
        &self,
        s: &mut LabSettings,
        custom_model: Option<UnetConfig>,
    ) -> anyhow::Result<()> {
        if let Some(d) = &self.dataset {
            s.choose_dataset(d);
        }
        if let Some(device) = self.device {
            let new = device != s.train.device;
            s.train.device = device;
            if new && self.model.is_none() {
                // A new device gets the configuration it trains quickly.
                s.set_recipe(RecipeName::for_device(device));
            }
        }
        if let Some(m) = self.model {
            s.train.model = m;
            s.train.custom_model = None;
        }
        if let Some(c) = custom_model {
            c.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
            s.train.custom_model = Some(c);
        }
        if self.recipe != RecipeFlags::default() {
            // The same flags as `ddpm-lab train`, applied and checked the same way.
            let mut cfg = s.train.recipe(1);
            self.recipe.apply(&mut cfg);
            cfg.validate_hyperparameters()?;
            let model = s.train.model;
            s.train = TrainSettings::from_recipe(&cfg, s.train.preview_every);
            if s.train.custom_model.is_some() {
                s.train.model = model;
            }
        }
        if let Some(n) = self.steps {
            anyhow::ensure!(n >= 1, "--steps must be at least 1");
            s.train.steps = n;
            s.compare_steps = n;
        }
        if let Some(seed) = self.seed {
            s.train.seed = seed;
        }
        if let Some(r) = &self.runs_dir {
            s.runs_dir = Some(r.clone());
        }
        Ok(())
    }

    /// Remembered settings (unless `--fresh`, and following their recipe where it changed
    /// since: see [`LabSettings::follow_recipe`]) with the flags applied.
    pub fn settings(&self, custom_model: Option<UnetConfig>) -> anyhow::Result<LabStart> {
        let dir = config_dir().ok();
        let remembered = dir
            .as_ref()
            .filter(|d| !self.fresh && d.join(crate::tui::settings::SETTINGS_FILE).exists());
        // First start: the configuration the best available device trains quickly.
        let first = || {
            let mut s = LabSettings::default();
            s.train.device = best_device();
            s.set_recipe(RecipeName::for_device(s.train.device));
            s
        };
        let (mut settings, problems) = match remembered {
            Some(d) => LabSettings::load_checked(d, first()),
            None => (first(), Vec::new()),
        };
        let changes = settings.follow_recipe();
        let origin = settings.origin.clone();
        self.apply(&mut settings, custom_model)
            .context("invalid lab flags")?;
        // What the flags set (a new device's recipe, `--lr`) is not the recipe's doing.
        let updates = if settings.origin == origin {
            let kept = settings.changes_kept(changes);
            kept.iter().map(ToString::to_string).collect()
        } else {
            Vec::new()
        };
        Ok(LabStart {
            settings,
            config_dir: dir,
            problems,
            updates,
        })
    }
}

/// What the lab starts with.
pub struct LabStart {
    /// Its settings.
    pub settings: LabSettings,
    /// Where they are saved on exit (`None`: no config directory).
    pub config_dir: Option<PathBuf>,
    /// What was wrong with the remembered settings (see [`LabSettings::load_checked`]).
    pub problems: Vec<String>,
    /// Remembered settings that followed their recipe (see [`LabSettings::follow_recipe`]).
    pub updates: Vec<String>,
}

/// What to say where the runs directory the lab remembers (from an earlier `--runs-dir`) is
/// not the one `$DDPM_LAB_RUNS` names: the remembered one is used, and the user may not
/// expect that.
fn remembered_runs_dir_note(
    flag: Option<&std::path::Path>,
    remembered: Option<&std::path::Path>,
    env: Option<&std::ffi::OsStr>,
) -> Option<String> {
    let (None, Some(kept), Some(env)) = (flag, remembered, env) else {
        return None;
    };
    let env = std::path::Path::new(env);
    (kept != env).then(|| {
        format!(
            "runs are in {} (remembered from --runs-dir), not ${} = {}: --runs-dir {} uses that",
            kept.display(),
            crate::runs::RUNS_ENV,
            env.display(),
            env.display()
        )
    })
}

/// The fastest device this binary can use: CUDA or Metal when built in and present, else CPU.
pub fn best_device() -> DeviceSpec {
    // candle's `cuda_is_available()` only says the feature is compiled in; this one also asks
    // the driver, so a cuda build on a machine without a GPU picks the CPU.
    if crate::device::cuda_available() {
        DeviceSpec::Cuda(0)
    } else if cfg!(feature = "metal") && candle_core::utils::metal_is_available() {
        DeviceSpec::Metal
    } else {
        DeviceSpec::Cpu
    }
}

/// Opens the lab on the terminal with `engine` behind it, and restores the terminal when it
/// ends (normally, on Ctrl-C, or on a panic). Settings are saved on exit.
pub fn run_with(opts: LabOptions, start: LabStart, engine: Box<dyn Engine>) -> anyhow::Result<()> {
    let LabStart {
        settings,
        config_dir,
        problems: settings_problems,
        updates,
    } = start;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the lab needs an interactive terminal; use `ddpm-lab train` / `ddpm-lab sample` \
             to run headless"
        );
    }
    // Ask the terminal about graphics protocols only where one is likely: the query's reader
    // thread would otherwise keep waiting on stdin and swallow keys (tmux, plain xterm).
    let picker = (!opts.halfblocks && graphics_terminal_likely(|k| std::env::var(k).ok()))
        .then(Picker::from_query_stdio)
        .and_then(Result::ok);
    let mut app = App::new(settings, engine);
    app.autosave = config_dir
        .clone()
        .and_then(|dir| crate::tui::autosave::SettingsSaver::start(dir).ok());
    // The GPU the settings train on, and the first one (where cycling the device leads).
    let mut specs = vec![app.settings.train.device, DeviceSpec::Cuda(0)];
    specs.dedup();
    app.device_names = specs
        .into_iter()
        .filter_map(|spec| crate::device::describe(spec).map(|name| (spec, name)))
        .collect();
    if !settings_problems.is_empty() {
        let text = format!("settings: {}", settings_problems.join("; "));
        app.show(Notice::new(text, true).about(Topic::Sticky));
    } else if let Some(recipe) = app.settings.recipe().filter(|_| !updates.is_empty()) {
        let text = format!(
            "the {} recipe changed: {} (your own settings are kept)",
            recipe.name.name(),
            updates.join(", ")
        );
        // Said once, so it stays until the next message rather than a few seconds.
        app.show(Notice::new(text, false).about(Topic::Sticky));
    } else if let Some(text) = remembered_runs_dir_note(
        opts.runs_dir.as_deref(),
        app.settings.runs_dir.as_deref(),
        std::env::var_os(crate::runs::RUNS_ENV).as_deref(),
    ) {
        app.show(Notice::new(text, false).about(Topic::Sticky));
    }
    // Data loads in the background while the first frame is drawn.
    app.start();
    // Raw mode, alternate screen, mouse reports, and a panic hook that restores all three.
    let (mut terminal, guard) = TerminalGuard::enter().context("cannot set up the terminal")?;
    // SIGTERM, SIGHUP and an outside SIGINT (Ctrl-C itself is a key in raw mode): the main loop
    // sees the first and shuts down as on Ctrl-C (running runs are checkpointed); a second one
    // restores the terminal and exits at once.
    let _ = crate::signals::install(|n| {
        if n >= 2 {
            restore_terminal();
            crate::signals::end_as_signalled();
        }
    });
    let images = picker
        .map(ImageRenderer::with_picker)
        .unwrap_or_else(ImageRenderer::halfblocks);
    let first = terminal.draw(|f| ui::draw(f, &app, &images)).map(|_| ());
    app.dirty = true;
    let result = first.map_err(anyhow::Error::from).and_then(|_| {
        let mut input = TerminalInput::start().context("cannot read the terminal")?;
        run_guarded(&mut terminal, &mut app, &images, &mut input)
    });
    drop(guard);
    // The cursor comes back; a terminal that hung up cannot show it, and ratatui's own drop
    // would print `Failed to show the cursor` over the lab's last words: it is let go silently.
    if terminal.show_cursor().is_err() {
        std::mem::forget(terminal);
    } else {
        drop(terminal);
    }
    if result.is_err() {
        // The terminal failed (a hung-up terminal after SIGHUP cannot be drawn on) or the
        // loop panicked: running runs are still checkpointed before the process ends.
        finish_runs(&mut app);
    }
    // Panics of worker threads while the lab drew (each also reported inside the lab).
    for panic in take_worker_panics() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{panic}");
    }
    // The saves asked while the lab ran come before the last one.
    if let Some(saver) = app.autosave.take() {
        saver.finish();
    }
    if let Some(dir) = config_dir {
        if let Err(e) = app.settings_to_keep().save_to(&dir) {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "warning: settings not saved: {e}");
        }
    }
    // The terminal is restored: say where the runs are and how to go on from a shell (and
    // again what was wrong with the settings, which the lab showed).
    let mut message: Vec<String> = settings_problems
        .iter()
        .map(|p| format!("settings: {p}"))
        .collect();
    message.extend(exit_message(&app.session_runs()));
    if !message.is_empty() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{}", message.join("\n"));
    }
    result
}

/// What the lab prints when it ends: each run of the session (trained or opened) that has a
/// checkpoint, with the commands that continue and sample it, or what is wrong with it (read
/// from the run on disk, so they are what the run layer will find).
pub fn exit_message(runs: &[PathBuf]) -> Vec<String> {
    // A comparison goes on as a whole in the lab (each run with the same steps): said once,
    // with where each run stands, and no command that would train one run on its own.
    let mut comparisons: Vec<(PathBuf, Vec<String>)> = Vec::new();
    let mut single = Vec::new();
    // The runs on disk (a directory that holds no run is left out).
    for info in runs
        .iter()
        .filter_map(|dir| crate::runs::RunInfo::read(dir).ok())
    {
        let Some((base, schedule)) = crate::runs::comparison::comparison_of(&info.dir) else {
            single.push(info);
            continue;
        };
        let at = format!("{schedule} {}/{}", info.step, info.config.steps);
        match comparisons.iter_mut().find(|(b, _)| *b == base) {
            Some((_, runs)) => runs.push(at),
            None => comparisons.push((base, vec![at])),
        }
    }
    let mut lines: Vec<String> = comparisons
        .into_iter()
        .map(|(base, at)| {
            format!(
                "comparison saved in {} ({}): o on the lab's Runs screen opens it, c on Compare continues it",
                base.display(),
                at.join(", ")
            )
        })
        .collect();
    for info in single {
        // Where it stands on disk (it may only have been opened): what was saved, or what is
        // wrong with it and which checkpoint goes on.
        if let Some(problem) = &info.problem {
            lines.push(format!("run in {}: {problem}", info.dir.display()));
            continue;
        }
        lines.push(format!(
            "run in {} (step {} of {} saved)",
            info.dir.display(),
            info.step,
            info.config.steps
        ));
        let cmds = info.shell_commands();
        lines.push(format!("  continue: {}", cmds[0]));
        lines.push(format!("  sample:   {}", cmds[1]));
    }
    lines
}

/// The main loop ([`run_app`]) with a panic in it caught: the panic comes back as an error
/// (its message was printed by the panic hook once the terminal was given back), so the caller
/// can still checkpoint the running runs.
pub fn run_guarded<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    images: &ImageRenderer,
    events: &mut dyn EventSource,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    crate::catch_panic(|| run_app(terminal, app, images, events)).unwrap_or_else(|panic| {
        Err(anyhow::anyhow!(
            "the lab stopped on an internal error (a bug, please report it): {panic}"
        ))
    })
}

/// Gives the terminal back: mouse reports off, raw mode off, main screen. Safe to call more
/// than once, and silent: a terminal that has gone away cannot be restored, and printing that
/// (as `ratatui::restore` does with `eprintln!`) panics on the dead terminal before the runs
/// are checkpointed.
pub fn restore_terminal() {
    // Only once: leaving the alternate screen a second time moves the cursor back to where
    // the lab started, and what is printed next (a panic's message, the exit message) would
    // overwrite what was printed since.
    if IN_LAB_MODE.swap(false, std::sync::atomic::Ordering::SeqCst) {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
        // An empty alternate screen to leave: a terminal that grew while the lab ran (tmux)
        // can carry rows of it over into the main screen.
        let _ = crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
            crossterm::cursor::MoveTo(0, 0)
        );
        let _ = ratatui::try_restore();
    }
}

/// Whether the terminal is in the lab's mode (set by [`TerminalGuard::enter`], cleared by
/// [`restore_terminal`]).
static IN_LAB_MODE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Panic messages of worker threads raised while the lab owned the terminal.
static WORKER_PANICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Takes the worker panics kept so far (see [`TerminalGuard::enter`]).
fn take_worker_panics() -> Vec<String> {
    std::mem::take(&mut *WORKER_PANICS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Holds the terminal in the lab's mode (raw, alternate screen, mouse reports): dropping it
/// (normal exit, an error, a panic unwinding) restores the terminal.
struct TerminalGuard;

impl TerminalGuard {
    /// Takes the terminal, after installing the lab's panic hook. A panic on this (the UI)
    /// thread gives the terminal back silently, then prints as usual. A panic on any other
    /// thread leaves the screen alone: its owner catches it and reports it in the lab (a
    /// training worker's crash is a failed run, not the end of the lab), and its message is
    /// kept for when the lab has ended. ratatui's own hook (`ratatui::try_init`) would restore
    /// the terminal on any thread's panic and `eprintln!` when that fails.
    fn enter() -> std::io::Result<(DefaultTerminal, Self)> {
        let ui = std::thread::current().id();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == ui {
                restore_terminal();
                previous(info);
            } else {
                let thread = std::thread::current();
                let name = thread.name().unwrap_or("a worker");
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                WORKER_PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!(
                        "thread '{name}' panicked{at}: {}",
                        crate::panic_message(info.payload())
                    ));
            }
        }));
        let guard = TerminalGuard;
        IN_LAB_MODE.store(true, std::sync::atomic::Ordering::SeqCst);
        crossterm::terminal::enable_raw_mode()?;
        crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen)?;
        // Without mouse reports the lab still works by keys.
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture);
        let terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
        Ok((terminal, guard))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Shuts the app down without a terminal: stops every running run with a checkpoint and waits
/// for them (at most the app's shutdown grace period). A second signal still exits at once.
fn finish_runs(app: &mut App) {
    if !app.any_active() {
        return;
    }
    if app.lifecycle == crate::tui::state::Lifecycle::Running {
        app.begin_shutdown();
    }
    let step = std::time::Duration::from_millis(20);
    while !app.should_exit() {
        app.pump();
        app.tick(step);
        std::thread::sleep(step);
    }
}

/// Opens the lab with the real engine.
pub fn run(opts: LabOptions, custom_model: Option<UnetConfig>) -> anyhow::Result<()> {
    let start = opts.settings(custom_model)?;
    let engine = crate::tui::workers::lab_engine::LabEngine::new(start.settings.runs_root())
        .with_image_size(opts.image_size);
    run_with(opts, start, Box::new(engine))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_runs_dir_other_than_the_environments_is_said() {
        use std::ffi::OsStr;
        use std::path::Path;
        let note = remembered_runs_dir_note(None, Some(Path::new("/a")), Some(OsStr::new("/b")));
        assert_eq!(
            note.as_deref(),
            Some("runs are in /a (remembered from --runs-dir), not $DDPM_LAB_RUNS = /b: --runs-dir /b uses that")
        );
        assert_eq!(
            remembered_runs_dir_note(None, Some(Path::new("/a")), Some(OsStr::new("/a"))),
            None
        );
        assert_eq!(
            remembered_runs_dir_note(
                Some(Path::new("/c")),
                Some(Path::new("/c")),
                Some(OsStr::new("/b"))
            ),
            None,
            "asked for on the command line"
        );
        assert_eq!(
            remembered_runs_dir_note(None, None, Some(OsStr::new("/b"))),
            None
        );
    }

    /// A tiny run's configuration: 4 steps, checkpointed in milliseconds.
    fn tiny_run() -> crate::store::TrainConfig {
        crate::store::TrainConfig {
            model: crate::model::UnetConfig::tiny(),
            timesteps: 10,
            batch_size: 2,
            image_size: 8,
            steps: 4,
            ..Default::default()
        }
    }

    /// A comparison's runs are named once as a comparison (continued in the lab as a whole),
    /// with where each stands; a directory without a run is left out.
    #[test]
    fn the_exit_message_names_a_comparison_once() {
        use crate::runs::comparison::member;
        use crate::schedule::BetaSchedule;
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("20261206-061500-compare");
        let cfg = tiny_run();
        for s in [BetaSchedule::Linear, BetaSchedule::Cosine] {
            let mut t = crate::train::Trainer::new(cfg.clone(), Some(&member(&base, s))).unwrap();
            t.checkpoint().unwrap();
        }
        let lines = exit_message(&[
            member(&base, BetaSchedule::Linear),
            member(&base, BetaSchedule::Cosine),
            d.path().join("nothing"),
        ]);
        assert_eq!(
            lines,
            [format!(
                "comparison saved in {} (linear 0/4, cosine 0/4): o on the lab's Runs screen opens it, c on Compare continues it",
                base.display()
            )],
            "one line, no command that trains one run alone"
        );
    }

    /// A run of the session is said as it stands on disk: saved at its step, with the
    /// commands; with weights cut off, what is wrong, and no `sample` that would fail.
    #[test]
    fn the_exit_message_says_a_damaged_run_is_damaged() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("20261206-061500-linear");
        let cfg = tiny_run();
        let mut t = crate::train::Trainer::new(cfg, Some(&dir)).unwrap();
        let ck = t.checkpoint().unwrap().unwrap();
        let lines = exit_message(std::slice::from_ref(&dir));
        assert_eq!(
            lines[0],
            format!("run in {} (step 0 of 4 saved)", dir.display())
        );
        assert!(lines[2].contains("sample:"), "{lines:?}");
        let weights = ck.join(crate::store::WEIGHTS_FILE);
        let bytes = std::fs::read(&weights).unwrap();
        std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
        let lines = exit_message(std::slice::from_ref(&dir));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("is damaged"), "{lines:?}");
    }

    #[test]
    fn graphics_query_only_where_a_protocol_is_likely() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(graphics_terminal_likely(env(&[("TERM", "xterm-kitty")])));
        assert!(graphics_terminal_likely(env(&[(
            "TERM_PROGRAM",
            "iTerm.app"
        )])));
        assert!(!graphics_terminal_likely(env(&[(
            "TERM",
            "xterm-256color"
        )])));
        assert!(!graphics_terminal_likely(env(&[
            ("TERM", "xterm-kitty"),
            ("TMUX", "/tmp/tmux-0/default,1,0")
        ])));
        assert!(graphics_terminal_likely(env(&[
            ("TMUX", "x"),
            ("DDPM_LAB_IMAGES", "query")
        ])));
    }

    #[test]
    fn flags_override_remembered_settings() {
        let mut s = LabSettings::default();
        let args = LabOptions {
            dataset: Some("shapes".into()),
            device: Some(DeviceSpec::Cuda(0)),
            steps: Some(30),
            ..LabOptions::default()
        };
        args.apply(&mut s, None).unwrap();
        assert_eq!(s.dataset, "shapes");
        assert_eq!(
            s.train.model,
            ModelPreset::Blog,
            "a GPU gets the blog's model"
        );
        assert_eq!(s.train.steps, 30);
        let bad = LabOptions {
            recipe: RecipeFlags {
                timesteps: Some(1),
                ..RecipeFlags::default()
            },
            ..LabOptions::default()
        };
        assert!(bad
            .apply(&mut s, None)
            .unwrap_err()
            .to_string()
            .contains("--timesteps"));
    }
}
