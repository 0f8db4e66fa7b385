//! Input handling: a key becomes a [`Command`] (depending on the screen and any overlay), and
//! the [`App`] routes the command to the screen it concerns. Both steps are tested without
//! rendering.

pub mod keys;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::{App, Overlay, Tab};

pub use keys::{KeyHelp, KEY_HELP};

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
    /// Train: open an earlier run.
    OpenRun,
    /// Train: highlight another field.
    SelectField(i32),
    /// Train: change the highlighted field.
    AdjustField(i32),
    /// Train: blog (`true`) or quick (`false`) configuration.
    Preset(bool),
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
    /// Sample: DDPM ↔ DDIM.
    ToggleSampler,
    /// Sample: more / fewer DDIM steps.
    DdimSteps(i32),
    /// Sample: more / fewer images.
    SampleCount(i32),
    /// Sample: another seed.
    NewSeed,
    /// Compare: start / pause / resume the four runs.
    CompareToggle,
    /// Compare: in turn ↔ round-robin.
    CompareMode,
    /// Compare: steps per run.
    CompareSteps(i32),
}

/// The command a key stands for in the app's current state (None: the key does nothing).
pub fn map_key(app: &App, key: KeyEvent) -> Option<Command> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
        return Some(Command::Interrupt);
    }
    if ctrl {
        return None;
    }
    let code = key.code;
    match app.overlay {
        Overlay::ConfirmQuit => {
            return match code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter | KeyCode::Char('q') => {
                    Some(Command::ConfirmQuit(true))
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    Some(Command::ConfirmQuit(false))
                }
                _ => None,
            }
        }
        Overlay::Help => {
            return match code {
                KeyCode::Char('?') | KeyCode::Esc | KeyCode::Char('q') => Some(Command::Close),
                _ => None,
            }
        }
        Overlay::None => {}
    }
    if app.picker.is_some() {
        return match code {
            KeyCode::Up | KeyCode::Char('k') => Some(Command::PickerMove(-1)),
            KeyCode::Down | KeyCode::Char('j') => Some(Command::PickerMove(1)),
            KeyCode::Enter => Some(Command::PickerOpen),
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('o') => Some(Command::Close),
            _ => None,
        };
    }
    // Global keys.
    match code {
        KeyCode::Char('q') => return Some(Command::Quit),
        KeyCode::Char('?') => return Some(Command::ToggleHelp),
        KeyCode::Tab => return Some(Command::CycleTab(1)),
        KeyCode::BackTab => return Some(Command::CycleTab(-1)),
        KeyCode::Char(c @ '1'..='5') => {
            return Some(Command::GoTo(Tab::ALL[(c as u8 - b'1') as usize]))
        }
        _ => {}
    }
    match app.tab {
        Tab::Data => match code {
            KeyCode::Char('d') | KeyCode::Right | KeyCode::Down => Some(Command::CycleDataset(1)),
            KeyCode::Char('D') | KeyCode::Left | KeyCode::Up => Some(Command::CycleDataset(-1)),
            KeyCode::Char('r') => Some(Command::ReloadDataset),
            _ => None,
        },
        Tab::Schedules => match code {
            KeyCode::Left => Some(Command::MoveT(-1)),
            KeyCode::Right => Some(Command::MoveT(1)),
            KeyCode::PageDown => Some(Command::MoveT(10)),
            KeyCode::PageUp => Some(Command::MoveT(-10)),
            KeyCode::Home => Some(Command::MoveT(i64::MIN / 2)),
            KeyCode::End => Some(Command::MoveT(i64::MAX / 2)),
            KeyCode::Char('+') | KeyCode::Char('=') => Some(Command::ChangeT(1)),
            KeyCode::Char('-') | KeyCode::Char('_') => Some(Command::ChangeT(-1)),
            KeyCode::Char('n') => Some(Command::NextImage),
            _ => None,
        },
        Tab::Train => match code {
            KeyCode::Char(' ') => Some(Command::TrainToggle),
            KeyCode::Char('c') => Some(Command::Checkpoint),
            KeyCode::Char('o') => Some(Command::OpenRun),
            KeyCode::Up | KeyCode::Char('k') => Some(Command::SelectField(-1)),
            KeyCode::Down | KeyCode::Char('j') => Some(Command::SelectField(1)),
            KeyCode::Left | KeyCode::Char('h') | KeyCode::Char('-') => {
                Some(Command::AdjustField(-1))
            }
            KeyCode::Right | KeyCode::Char('l') | KeyCode::Char('+') | KeyCode::Enter => {
                Some(Command::AdjustField(1))
            }
            KeyCode::Char('b') => Some(Command::Preset(true)),
            KeyCode::Char('B') => Some(Command::Preset(false)),
            KeyCode::Char('E') | KeyCode::Char('e') => Some(Command::Estimate),
            _ => None,
        },
        Tab::Sample | Tab::Compare => {
            let common = match code {
                KeyCode::Left => Some(Command::StepFrames(-1)),
                KeyCode::Right => Some(Command::StepFrames(1)),
                KeyCode::PageUp => Some(Command::StepFrames(-10)),
                KeyCode::PageDown => Some(Command::StepFrames(10)),
                KeyCode::Home => Some(Command::FirstFrame),
                KeyCode::End => Some(Command::LastFrame),
                KeyCode::Char('p') => Some(Command::TogglePlay),
                KeyCode::Char('g') => Some(Command::Generate),
                KeyCode::Char('s') => Some(Command::NewSeed),
                _ => None,
            };
            if common.is_some() {
                return common;
            }
            if app.tab == Tab::Sample {
                match code {
                    KeyCode::Char('e') => Some(Command::Export),
                    KeyCode::Char('k') => Some(Command::ToggleSampler),
                    KeyCode::Char(']') => Some(Command::DdimSteps(1)),
                    KeyCode::Char('[') => Some(Command::DdimSteps(-1)),
                    KeyCode::Char('+') | KeyCode::Char('=') => Some(Command::SampleCount(1)),
                    KeyCode::Char('-') => Some(Command::SampleCount(-1)),
                    _ => None,
                }
            } else {
                match code {
                    KeyCode::Char(' ') => Some(Command::CompareToggle),
                    KeyCode::Char('m') => Some(Command::CompareMode),
                    KeyCode::Char('+') | KeyCode::Char('=') => Some(Command::CompareSteps(1)),
                    KeyCode::Char('-') => Some(Command::CompareSteps(-1)),
                    _ => None,
                }
            }
        }
    }
}

/// Applies a command to the app (see [`App::apply`]).
pub fn apply(app: &mut App, cmd: Command) {
    app.apply(cmd);
}

/// Maps and applies a key; returns whether it did anything.
pub fn handle_key(app: &mut App, key: KeyEvent) -> bool {
    match map_key(app, key) {
        Some(cmd) => {
            apply(app, cmd);
            true
        }
        None => false,
    }
}
