//! Input handling: a key becomes a [`Command`] through the key table (depending on the screen
//! and any window), and the [`App`] routes the command to the screen it concerns. Both steps are
//! tested without rendering.

pub mod keys;
pub mod mouse;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::{App, Overlay, Tab};

pub use keys::{Binding, Key, KeyHelp, Scope, KEY_HELP};
pub use mouse::handle_mouse;

/// Everything a key can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `q`: quit (asking first when a run is unsaved).
    Quit,
    /// Ctrl-C: quit now, checkpointing running runs.
    Interrupt,
    /// Answer to the quit question.
    ConfirmQuit(bool),
    /// Go to a screen.
    GoTo(Tab),
    /// Next (`1`) or previous (`-1`) screen.
    CycleTab(i32),
    /// Show / hide the key overlay.
    ToggleHelp,
    /// Close the overlay or picker.
    Close,
    /// Data: next / previous built-in dataset.
    CycleDataset(i32),
    /// Data: load the current dataset again.
    ReloadDataset,
    /// Schedules: move t.
    MoveT(i64),
    /// Schedules: change T.
    ChangeT(i32),
    /// Schedules: another image.
    NextImage,
    /// Train: start / pause / resume.
    TrainToggle,
    /// Train: checkpoint now.
    Checkpoint,
    /// Train: checkpoint and end the run (running or paused), so that another can start.
    TrainStop,
    /// Train: open an earlier run.
    OpenRun,
    /// Train: highlight another field.
    SelectField(i32),
    /// Train: change the highlighted field.
    AdjustField(i32),
    /// Train: blog (`true`) or quick (`false`) configuration.
    Preset(bool),
    /// Train: the settings from before a run was opened come back.
    OwnSettings,
    /// Train: measure the time per epoch.
    Estimate,
    /// Run picker: move.
    PickerMove(i32),
    /// Run picker: open the highlighted run.
    PickerOpen,
    /// Sample / Compare: move through frames.
    StepFrames(i64),
    /// Sample / Compare: first frame.
    FirstFrame,
    /// Sample / Compare: last frame.
    LastFrame,
    /// Sample / Compare: play or pause.
    TogglePlay,
    /// Sample: generate; Compare: sample every run.
    Generate,
    /// Sample: export PNG and GIF.
    Export,
    /// Sample: stop the sampling under way (the images shown before stay).
    StopSampling,
    /// Sample: DDPM ↔ DDIM.
    ToggleSampler,
    /// Sample: more / fewer DDIM steps.
    DdimSteps(i32),
    /// Sample: a larger / smaller DDIM η (the noise each step adds back).
    DdimEta(i32),
    /// Sample: more / fewer images.
    SampleCount(i32),
    /// Sample, Compare: the next (`1`) or previous (`-1`) seed.
    NewSeed(i32),
    /// Compare: start / pause / resume the four runs.
    CompareToggle,
    /// Compare: checkpoint and end the comparison's runs, or stop its sampling.
    CompareStop,
    /// Compare: continue the comparison on screen (stopped, or opened from disk) to the steps
    /// per run.
    CompareContinue,
    /// Compare: in turn ↔ round-robin.
    CompareMode,
    /// Compare: steps per run.
    CompareSteps(i32),
    /// Sample / Compare: go to a frame (the mouse on the frame bar).
    SeekFrame(usize),
    /// Help: scroll by rows.
    HelpScroll(i32),
    /// Runs: move the highlight.
    RunsMove(i64),
    /// Runs: highlight a row (a mouse click).
    RunsSelect(usize),
    /// Runs: overlay the highlighted run's loss curve, or remove it.
    RunsToggle,
    /// Runs: overlay every run, or none.
    RunsToggleAll,
    /// Runs: open the highlighted run on the Train screen.
    RunsOpen,
    /// Runs: read the runs directory again.
    RunsRefresh,
    /// Runs: order the list by the next key (newest, loss, score).
    RunsSort,
    /// Runs: remove the highlighted run (asks first).
    RunsRemove,
    /// Answer to the "remove this run?" question.
    ConfirmRemove(bool),
}

/// The command a key stands for in the app's current state (None: the key does nothing): the
/// key table ([`KEY_HELP`]) looked up in the scopes that are live, in order of precedence.
pub fn map_key(app: &App, key: KeyEvent) -> Option<Command> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let key = Key {
        code: key.code,
        ctrl: key.modifiers.contains(KeyModifiers::CONTROL),
    };
    let window = match app.overlay {
        Overlay::ConfirmQuit => Some(Scope::ConfirmQuit),
        Overlay::ConfirmRemove(_) => Some(Scope::ConfirmRemove),
        Overlay::Help => Some(Scope::Help),
        Overlay::None => app.picker.is_some().then_some(Scope::Picker),
    };
    match window {
        Some(w) => keys::command(&[Scope::Always, w], key),
        None => keys::command(&[Scope::Always, Scope::Global, Scope::Screen(app.tab)], key),
    }
}

/// Applies a command to the app (see [`App::apply`]).
pub fn apply(app: &mut App, cmd: Command) {
    app.apply(cmd);
}

/// Whether `cmd` may act while the terminal is too small to draw the lab: quitting, the quit
/// question (which the small screen shows) and closing a window (help, the run picker: `q`
/// and Esc close them first), nothing on a screen the user cannot see.
pub fn allowed_in_small_terminal(cmd: Command) -> bool {
    matches!(
        cmd,
        Command::Quit
            | Command::Interrupt
            | Command::ConfirmQuit(_)
            | Command::ConfirmRemove(false)
            | Command::Close
    )
}

/// [`handle_key`] while the terminal is too small to draw the lab: only the keys of
/// [`allowed_in_small_terminal`] act.
pub fn handle_key_in_small_terminal(app: &mut App, key: KeyEvent) -> bool {
    match map_key(app, key) {
        Some(cmd) if allowed_in_small_terminal(cmd) => {
            apply(app, cmd);
            true
        }
        _ => false,
    }
}

/// Maps and applies a key; returns whether it did anything.
pub fn handle_key(app: &mut App, key: KeyEvent) -> bool {
    match map_key(app, key) {
        Some(cmd) => {
            app.key_handled();
            apply(app, cmd);
            true
        }
        None => {
            // A letter a screen has no use for is said to do nothing, rather than seem broken
            // (`e` exports on Sample, not on Compare), with where the screen's keys are.
            let plain = key.kind != KeyEventKind::Release
                && !key.modifiers.contains(KeyModifiers::CONTROL)
                && !key.modifiers.contains(KeyModifiers::ALT);
            let on_screen = app.overlay == Overlay::None && app.picker.is_none();
            match key.code {
                KeyCode::Char(c) if plain && on_screen && c.is_ascii_graphic() => {
                    app.key_handled();
                    app.notify(
                        format!("{c} does nothing on {}: ? lists the keys", app.tab.title()),
                        false,
                    );
                }
                _ => {}
            }
            false
        }
    }
}
