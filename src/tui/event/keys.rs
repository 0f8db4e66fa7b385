//! The key table: the one source of what each key does ([`command`], behind `map_key`), of the
//! help overlay, and of README.md's key table ([`markdown_table`]). Each row binds keys to
//! commands and says, for people, which keys it shows and what they do.

use crossterm::event::KeyCode;

use super::super::state::Tab;
use super::Command;

/// Where a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere, even over a window.
    Always,
    /// On every screen, when no window is open.
    Global,
    /// On one screen, when no window is open.
    Screen(Tab),
    /// In the picker of earlier runs.
    Picker,
    /// Over the help window.
    Help,
    /// In the "quit?" question.
    ConfirmQuit,
    /// In the "remove this run?" question.
    ConfirmRemove,
    /// The mouse (rows whose "keys" are gestures, handled by [`super::mouse`]).
    Mouse,
}

impl Scope {
    /// Name shown in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Scope::Always | Scope::Global => "global",
            Scope::Screen(tab) => tab.title(),
            Scope::Picker => "run picker",
            Scope::Help => "help",
            Scope::ConfirmQuit => "quit?",
            Scope::ConfirmRemove => "remove run?",
            Scope::Mouse => "mouse",
        }
    }

    /// Whether the help overlay lists the scope (windows show their own keys).
    pub fn in_help(self) -> bool {
        matches!(
            self,
            Scope::Always | Scope::Global | Scope::Screen(_) | Scope::Mouse
        )
    }
}

/// A key press as the table knows it: a key code, with or without Ctrl (other modifiers,
/// such as the Shift of `B`, do not matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl is held.
    pub ctrl: bool,
}

impl Key {
    /// The key's name as the tables show it.
    pub fn name(self) -> String {
        let name = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char('-') => "−".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Left => "←".to_string(),
            KeyCode::Right => "→".to_string(),
            KeyCode::Up => "↑".to_string(),
            KeyCode::Down => "↓".to_string(),
            KeyCode::PageUp => "PgUp".to_string(),
            KeyCode::PageDown => "PgDn".to_string(),
            KeyCode::BackTab => "Shift-Tab".to_string(),
            other => format!("{other:?}"),
        };
        if self.ctrl {
            format!("Ctrl-{}", name.to_uppercase())
        } else {
            name
        }
    }
}

/// One key and the command it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The key.
    pub key: Key,
    /// Its command.
    pub command: Command,
}

/// One row of the key table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHelp {
    /// Where the keys work.
    pub scope: Scope,
    /// The keys, as shown.
    pub keys: &'static str,
    /// What they do.
    pub action: &'static str,
    /// Every key of the row and its command (some, such as vim's `j` / `k`, are not shown).
    pub bindings: &'static [Binding],
}

impl KeyHelp {
    /// Whether [`KeyHelp::keys`] shows `key` (by name, or in a range such as `1-5`).
    pub fn shows(&self, key: Key) -> bool {
        let name = key.name();
        self.keys
            .split_whitespace()
            .any(|token| covers(token, &name))
    }

    /// Names of the keys the row binds but does not show, each once.
    pub fn unshown(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for b in self.bindings.iter().filter(|b| !self.shows(b.key)) {
            let name = b.key.name();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// Whether a token of a row's keys (`q`, `PgUp`, `1-5`) stands for the key named `name`.
fn covers(token: &str, name: &str) -> bool {
    let range: Vec<char> = token.chars().collect();
    let one: Vec<char> = name.chars().collect();
    token == name || matches!((&range[..], &one[..]), ([lo, '-', hi], [c]) if lo <= c && c <= hi)
}

const fn key(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

const fn b(key: Key, command: Command) -> Binding {
    Binding { key, command }
}

const fn row(
    scope: Scope,
    keys: &'static str,
    action: &'static str,
    bindings: &'static [Binding],
) -> KeyHelp {
    KeyHelp {
        scope,
        keys,
        action,
        bindings,
    }
}

use Command as C;
use KeyCode as K;

const GLOBAL: Scope = Scope::Global;
const DATA: Scope = Scope::Screen(Tab::Data);
const SCHEDULES: Scope = Scope::Screen(Tab::Schedules);
const TRAIN: Scope = Scope::Screen(Tab::Train);
const SAMPLE: Scope = Scope::Screen(Tab::Sample);
const COMPARE: Scope = Scope::Screen(Tab::Compare);
const RUNS: Scope = Scope::Screen(Tab::Runs);

/// Every key of the lab: global keys, then each screen's, then those of the windows.
pub const KEY_HELP: &[KeyHelp] = &[
    row(
        GLOBAL,
        "1-6 / Tab / Shift-Tab",
        "switch screen",
        &[
            b(ch('1'), C::GoTo(Tab::Data)),
            b(ch('2'), C::GoTo(Tab::Schedules)),
            b(ch('3'), C::GoTo(Tab::Train)),
            b(ch('4'), C::GoTo(Tab::Sample)),
            b(ch('5'), C::GoTo(Tab::Compare)),
            b(ch('6'), C::GoTo(Tab::Runs)),
            b(key(K::Tab), C::CycleTab(1)),
            b(key(K::BackTab), C::CycleTab(-1)),
        ],
    ),
    row(
        GLOBAL,
        "?",
        "show / hide this help",
        &[b(ch('?'), C::ToggleHelp)],
    ),
    row(
        GLOBAL,
        "q",
        "quit (asks first if a run is unsaved)",
        &[b(ch('q'), C::Quit)],
    ),
    row(
        Scope::Always,
        "Ctrl-C",
        "quit now, checkpointing a running run",
        &[b(ctrl('c'), C::Interrupt), b(ctrl('C'), C::Interrupt)],
    ),
    row(
        DATA,
        "d / →  ·  D / ←",
        "next / previous dataset (and the folder of --dataset DIR)",
        &[
            b(ch('d'), C::CycleDataset(1)),
            b(key(K::Right), C::CycleDataset(1)),
            b(key(K::Down), C::CycleDataset(1)),
            b(ch('D'), C::CycleDataset(-1)),
            b(key(K::Left), C::CycleDataset(-1)),
            b(key(K::Up), C::CycleDataset(-1)),
        ],
    ),
    row(
        DATA,
        "r",
        "reload the dataset",
        &[b(ch('r'), C::ReloadDataset)],
    ),
    row(
        DATA,
        "space",
        "on to Train, where space trains a model on this data",
        &[b(ch(' '), C::GoTo(Tab::Train))],
    ),
    row(
        SCHEDULES,
        "← / →",
        "move t by one step",
        &[b(key(K::Left), C::MoveT(-1)), b(key(K::Right), C::MoveT(1))],
    ),
    row(
        SCHEDULES,
        "PgUp / PgDn  ·  Home / End",
        "move t by 10  ·  to 0 / T−1",
        &[
            b(key(K::PageUp), C::MoveT(-10)),
            b(key(K::PageDown), C::MoveT(10)),
            b(key(K::Home), C::MoveT(i64::MIN / 2)),
            b(key(K::End), C::MoveT(i64::MAX / 2)),
        ],
    ),
    row(
        SCHEDULES,
        "+ / −",
        "change the T shown (a new run's T is set on Train)",
        &[
            b(ch('+'), C::ChangeT(1)),
            b(ch('='), C::ChangeT(1)),
            b(ch('-'), C::ChangeT(-1)),
            b(ch('_'), C::ChangeT(-1)),
        ],
    ),
    row(
        SCHEDULES,
        "n",
        "another image (and noise)",
        &[b(ch('n'), C::NextImage)],
    ),
    row(
        TRAIN,
        "space",
        "start · pause · resume · continue (Progress's title says which)",
        &[b(ch(' '), C::TrainToggle)],
    ),
    row(
        TRAIN,
        "↑ / ↓  ·  ← / →",
        "pick a setting  ·  change it",
        &[
            b(key(K::Up), C::SelectField(-1)),
            b(ch('k'), C::SelectField(-1)),
            b(key(K::Down), C::SelectField(1)),
            b(ch('j'), C::SelectField(1)),
            b(key(K::Left), C::AdjustField(-1)),
            b(ch('h'), C::AdjustField(-1)),
            b(ch('-'), C::AdjustField(-1)),
            b(key(K::Right), C::AdjustField(1)),
            b(ch('l'), C::AdjustField(1)),
            b(ch('+'), C::AdjustField(1)),
            b(key(K::Enter), C::AdjustField(1)),
        ],
    ),
    row(
        TRAIN,
        "b / B",
        "blog configuration / quick one for this device",
        &[b(ch('b'), C::Preset(true)), b(ch('B'), C::Preset(false))],
    ),
    row(
        TRAIN,
        "e",
        "measure the time per epoch",
        &[b(ch('e'), C::Estimate), b(ch('E'), C::Estimate)],
    ),
    row(
        TRAIN,
        "c  ·  x",
        "checkpoint now  ·  stop the run (saved; space continues it)",
        &[b(ch('c'), C::Checkpoint), b(ch('x'), C::TrainStop)],
    ),
    row(
        TRAIN,
        "o",
        "open a run from disk (space continues it; comparisons on Compare)",
        &[b(ch('o'), C::OpenRun)],
    ),
    row(
        TRAIN,
        "u",
        "your own settings back after opening a run (closes the run)",
        &[b(ch('u'), C::OwnSettings)],
    ),
    row(
        SAMPLE,
        "g  ·  x",
        "generate samples from the run  ·  stop the sampling",
        &[b(ch('g'), C::Generate), b(ch('x'), C::StopSampling)],
    ),
    row(
        SAMPLE,
        "k  ·  [ / ]  ·  n / N",
        "DDPM ↔ DDIM  ·  fewer / more DDIM steps  ·  DDIM η up / down",
        &[
            b(ch('k'), C::ToggleSampler),
            b(ch('['), C::DdimSteps(-1)),
            b(ch(']'), C::DdimSteps(1)),
            b(ch('n'), C::DdimEta(1)),
            b(ch('N'), C::DdimEta(-1)),
        ],
    ),
    row(
        SAMPLE,
        "+ / −  ·  s / S",
        "more / fewer images  ·  next / previous seed",
        &[
            b(ch('+'), C::SampleCount(1)),
            b(ch('='), C::SampleCount(1)),
            b(ch('-'), C::SampleCount(-1)),
            b(ch('s'), C::NewSeed(1)),
            b(ch('S'), C::NewSeed(-1)),
        ],
    ),
    row(
        SAMPLE,
        "← / →  ·  PgUp / PgDn",
        "step one frame  ·  ten frames",
        &[
            b(key(K::Left), C::StepFrames(-1)),
            b(key(K::Right), C::StepFrames(1)),
            b(key(K::PageUp), C::StepFrames(-10)),
            b(key(K::PageDown), C::StepFrames(10)),
        ],
    ),
    row(
        SAMPLE,
        "Home / End  ·  p",
        "first / last frame  ·  play / pause",
        &[
            b(key(K::Home), C::FirstFrame),
            b(key(K::End), C::LastFrame),
            b(ch('p'), C::TogglePlay),
        ],
    ),
    row(
        SAMPLE,
        "e",
        "export a PNG grid and an animated GIF",
        &[b(ch('e'), C::Export)],
    ),
    row(
        COMPARE,
        "space",
        "train one model per schedule / pause / resume",
        &[b(ch(' '), C::CompareToggle)],
    ),
    row(
        COMPARE,
        "x",
        "stop the comparison (each run saved), or its sampling",
        &[b(ch('x'), C::CompareStop)],
    ),
    row(
        COMPARE,
        "c",
        "continue a stopped or opened comparison · save a held run",
        &[b(ch('c'), C::CompareContinue)],
    ),
    row(
        COMPARE,
        "m  ·  + / −",
        "in turn ↔ round-robin  ·  steps per run",
        &[
            b(ch('m'), C::CompareMode),
            b(ch('+'), C::CompareSteps(1)),
            b(ch('='), C::CompareSteps(1)),
            b(ch('-'), C::CompareSteps(-1)),
        ],
    ),
    row(
        COMPARE,
        "g  ·  s / S",
        "sample every run from the same noise  ·  next / previous seed",
        &[
            b(ch('g'), C::Generate),
            b(ch('s'), C::NewSeed(1)),
            b(ch('S'), C::NewSeed(-1)),
        ],
    ),
    row(
        COMPARE,
        "← / →  PgUp / PgDn  Home / End  p",
        "step all four together, play",
        &[
            b(key(K::Left), C::StepFrames(-1)),
            b(key(K::Right), C::StepFrames(1)),
            b(key(K::PageUp), C::StepFrames(-10)),
            b(key(K::PageDown), C::StepFrames(10)),
            b(key(K::Home), C::FirstFrame),
            b(key(K::End), C::LastFrame),
            b(ch('p'), C::TogglePlay),
        ],
    ),
    row(
        RUNS,
        "↑ / ↓  ·  PgUp / PgDn",
        "highlight another run  ·  ten rows on",
        &[
            b(key(K::Up), C::RunsMove(-1)),
            b(ch('k'), C::RunsMove(-1)),
            b(key(K::Down), C::RunsMove(1)),
            b(ch('j'), C::RunsMove(1)),
            b(key(K::PageUp), C::RunsMove(-10)),
            b(key(K::PageDown), C::RunsMove(10)),
            b(key(K::Home), C::RunsMove(i64::MIN / 2)),
            b(key(K::End), C::RunsMove(i64::MAX / 2)),
        ],
    ),
    row(
        RUNS,
        "space / Enter  ·  a",
        "overlay the run's loss curve or remove it  ·  all / none",
        &[
            b(ch(' '), C::RunsToggle),
            b(key(K::Enter), C::RunsToggle),
            b(ch('a'), C::RunsToggleAll),
        ],
    ),
    row(
        RUNS,
        "o  ·  r",
        "open it on Train (a comparison's on Compare)  ·  read again",
        &[b(ch('o'), C::RunsOpen), b(ch('r'), C::RunsRefresh)],
    ),
    row(
        RUNS,
        "s  ·  d / Delete",
        "order by newest, loss or score  ·  remove the run (asks first)",
        &[
            b(ch('s'), C::RunsSort),
            b(ch('d'), C::RunsRemove),
            b(key(K::Delete), C::RunsRemove),
        ],
    ),
    row(
        Scope::Mouse,
        "click a tab",
        "go to that screen",
        &[],
    ),
    row(
        Scope::Mouse,
        "wheel",
        "scroll the list of the screen or window (Runs, run picker, help, Train settings)  ·  step frames (Sample, Compare), move t (Schedules)",
        &[],
    ),
    row(
        Scope::Mouse,
        "click / drag the frame bar",
        "go to that frame (Sample, Compare)",
        &[],
    ),
    row(
        Scope::Mouse,
        "click a row",
        "highlight it (Runs, run picker, Train settings)",
        &[],
    ),
    row(
        Scope::Picker,
        "↑ / ↓",
        "highlight another run",
        &[
            b(key(K::Up), C::PickerMove(-1)),
            b(ch('k'), C::PickerMove(-1)),
            b(key(K::Down), C::PickerMove(1)),
            b(ch('j'), C::PickerMove(1)),
        ],
    ),
    row(
        Scope::Picker,
        "Enter",
        "open the highlighted run",
        &[b(key(K::Enter), C::PickerOpen)],
    ),
    row(
        Scope::Picker,
        "Esc / q",
        "close the picker",
        &[
            b(key(K::Esc), C::Close),
            b(ch('q'), C::Close),
            b(ch('o'), C::Close),
        ],
    ),
    row(
        Scope::Help,
        "↑ / ↓  ·  PgUp / PgDn",
        "scroll the help",
        &[
            b(key(K::Up), C::HelpScroll(-1)),
            b(ch('k'), C::HelpScroll(-1)),
            b(key(K::Down), C::HelpScroll(1)),
            b(ch('j'), C::HelpScroll(1)),
            b(key(K::PageUp), C::HelpScroll(-10)),
            b(key(K::PageDown), C::HelpScroll(10)),
        ],
    ),
    row(
        Scope::Help,
        "? / Esc / q",
        "close the help",
        &[
            b(ch('?'), C::Close),
            b(key(K::Esc), C::Close),
            b(ch('q'), C::Close),
        ],
    ),
    row(
        Scope::ConfirmQuit,
        "y / Enter",
        "quit, checkpointing running runs",
        &[
            b(ch('y'), C::ConfirmQuit(true)),
            b(ch('Y'), C::ConfirmQuit(true)),
            b(key(K::Enter), C::ConfirmQuit(true)),
            b(ch('q'), C::ConfirmQuit(true)),
        ],
    ),
    row(
        Scope::ConfirmQuit,
        "n / Esc",
        "stay",
        &[
            b(ch('n'), C::ConfirmQuit(false)),
            b(ch('N'), C::ConfirmQuit(false)),
            b(key(K::Esc), C::ConfirmQuit(false)),
        ],
    ),
    row(
        Scope::ConfirmRemove,
        "y",
        "remove the run and its files",
        &[b(ch('y'), C::ConfirmRemove(true)), b(ch('Y'), C::ConfirmRemove(true))],
    ),
    row(
        Scope::ConfirmRemove,
        "n / Esc / q",
        "keep it",
        &[
            b(ch('n'), C::ConfirmRemove(false)),
            b(ch('N'), C::ConfirmRemove(false)),
            b(key(K::Esc), C::ConfirmRemove(false)),
            b(ch('q'), C::ConfirmRemove(false)),
        ],
    ),
];

/// The command of `key` in the first of `scopes` (in order of precedence) that binds it.
pub fn command(scopes: &[Scope], key: Key) -> Option<Command> {
    scopes.iter().find_map(|&scope| {
        KEY_HELP
            .iter()
            .filter(|row| row.scope == scope)
            .flat_map(|row| row.bindings)
            .find(|b| b.key == key)
            .map(|b| b.command)
    })
}

/// The rows of the help overlay.
pub fn help_rows() -> impl Iterator<Item = &'static KeyHelp> {
    KEY_HELP.iter().filter(|row| row.scope.in_help())
}

/// README.md's key table, in Markdown: every row, with the keys it binds but does not show.
pub fn markdown_table() -> String {
    let mut out = String::from("| Screen | Keys | Action |\n|---|---|---|\n");
    for row in KEY_HELP {
        let unshown = row.unshown();
        let also = if unshown.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = unshown.iter().map(|n| format!("`{n}`")).collect();
            format!(" (also {})", names.join(" "))
        };
        out += &format!(
            "| {} | `{}`{also} | {} |\n",
            row.scope.label(),
            row.keys,
            row.action
        );
    }
    out
}

/// The keys of a window (help, picker, a question) as the status bar gives them while it is
/// open: each of its rows, `keys action`, within `width` characters where they fit (each
/// action cut to its first word where the whole rows do not).
pub fn window_hints(scope: Scope, width: usize) -> String {
    let rows = || KEY_HELP.iter().filter(move |r| r.scope == scope);
    let whole = rows()
        .map(|r| format!("{} {}", r.keys, r.action))
        .collect::<Vec<_>>()
        .join(" · ");
    if whole.chars().count() <= width {
        return whole;
    }
    rows()
        .map(|r| {
            let first = r.action.split([' ', ',']).next().unwrap_or(r.action);
            format!("{} {first}", r.keys)
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Short hints for the status bar of a screen.
pub fn hints(scope: &str) -> &'static str {
    match scope {
        "Data" => "d/D dataset · r reload · space on to Train",
        "Schedules" => "←/→ t · +/− T · n image",
        "Train" => "space start/pause · x stop · ↑↓←→ edit · b blog · c ckpt · o open",
        "Sample" => "g generate · x stop · ←/→ PgUp/PgDn frames · p play · e export",
        "Compare" => "space train/pause · x stop · c continue · m mode · g sample · ←/→ p frames",
        "Runs" => "↑↓ run · space overlay · o open · s sort · d remove · r reload",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scopes looked up together: each window alone, or a screen with the global keys.
    fn contexts() -> Vec<Vec<Scope>> {
        let mut v: Vec<Vec<Scope>> = [
            Scope::Picker,
            Scope::Help,
            Scope::ConfirmQuit,
            Scope::ConfirmRemove,
        ]
        .iter()
        .map(|&w| vec![Scope::Always, w])
        .collect();
        for tab in Tab::ALL {
            v.push(vec![Scope::Always, Scope::Global, Scope::Screen(tab)]);
        }
        v
    }

    #[test]
    fn a_windows_keys_fit_the_status_bar_at_80_columns() {
        // `keys: ` takes 6 of the 80.
        for scope in [
            Scope::Picker,
            Scope::Help,
            Scope::ConfirmQuit,
            Scope::ConfirmRemove,
        ] {
            let hint = window_hints(scope, 74);
            assert!(hint.chars().count() <= 74, "{scope:?}: {hint}");
            // Each of its keys is still given.
            for row in KEY_HELP.iter().filter(|r| r.scope == scope) {
                assert!(hint.contains(row.keys), "{scope:?}: {hint}");
            }
        }
        assert_eq!(
            window_hints(Scope::Picker, 74),
            "↑ / ↓ highlight · Enter open · Esc / q close"
        );
        assert!(window_hints(Scope::Picker, 200).contains("open the highlighted run"));
    }

    #[test]
    fn every_shown_key_is_bound_by_its_row() {
        for row in KEY_HELP.iter().filter(|r| r.scope != Scope::Mouse) {
            for token in row.keys.split_whitespace() {
                if token == "/" || token == "·" {
                    continue;
                }
                assert!(
                    row.bindings.iter().any(|b| covers(token, &b.key.name())),
                    "{:?} row {:?} shows {token:?}, which it does not bind",
                    row.scope,
                    row.keys
                );
            }
        }
    }

    #[test]
    fn no_key_is_bound_twice_where_it_is_looked_up() {
        for scopes in contexts() {
            let keys: Vec<Key> = KEY_HELP
                .iter()
                .filter(|r| scopes.contains(&r.scope))
                .flat_map(|r| r.bindings.iter().map(|b| b.key))
                .collect();
            for (i, k) in keys.iter().enumerate() {
                assert!(
                    !keys[i + 1..].contains(k),
                    "{} is bound twice in {scopes:?}",
                    k.name()
                );
            }
        }
    }

    #[test]
    fn keys_map_in_their_scope_only() {
        let train = [Scope::Always, Scope::Global, Scope::Screen(Tab::Train)];
        assert_eq!(command(&train, ch('E')), Some(Command::Estimate));
        assert_eq!(command(&train, ch('g')), None);
        assert_eq!(command(&train, ctrl('c')), Some(Command::Interrupt));
        assert_eq!(command(&[Scope::Always, Scope::Help], ch('3')), None);
        assert_eq!(command(&train, ch('x')), Some(Command::TrainStop));
        let compare = [Scope::Always, Scope::Global, Scope::Screen(Tab::Compare)];
        assert_eq!(command(&compare, ch('x')), Some(Command::CompareStop));
        let sample = [Scope::Always, Scope::Global, Scope::Screen(Tab::Sample)];
        assert_eq!(command(&sample, ch('x')), Some(Command::StopSampling));
        assert_eq!(command(&compare, ch('c')), Some(Command::CompareContinue));
        let runs = [Scope::Always, Scope::Global, Scope::Screen(Tab::Runs)];
        assert_eq!(command(&runs, ch('d')), Some(Command::RunsRemove));
        assert_eq!(command(&train, ch('d')), None);
        let ask = [Scope::Always, Scope::ConfirmRemove];
        assert_eq!(command(&ask, ch('y')), Some(Command::ConfirmRemove(true)));
        assert_eq!(command(&ask, key(K::Enter)), None, "only y removes");
        assert_eq!(help_rows().count(), 38);
        let row = KEY_HELP.iter().find(|r| r.keys == "1-6 / Tab / Shift-Tab");
        assert!(row.is_some_and(|r| r.unshown().is_empty()));
    }

    /// README.md's key table is [`markdown_table`]; `UPDATE_README=1` rewrites it.
    #[test]
    fn readme_key_table_matches_the_key_table() {
        const START: &str = "<!-- keys:start -->\n";
        const END: &str = "<!-- keys:end -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).expect("read README.md");
        let start = readme
            .find(START)
            .expect("README.md has <!-- keys:start -->")
            + START.len();
        let end = readme.find(END).expect("README.md has <!-- keys:end -->");
        let want = markdown_table();
        if readme[start..end] == want {
            return;
        }
        if std::env::var("UPDATE_README").as_deref() == Ok("1") {
            let updated = format!("{}{want}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).expect("write README.md");
            return;
        }
        panic!(
            "README.md's key table differs from src/tui/event/keys.rs; regenerate it with\n  \
             UPDATE_README=1 cargo test --lib readme_key_table\nExpected:\n{want}"
        );
    }
}
