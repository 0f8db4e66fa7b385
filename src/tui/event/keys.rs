//! The key table: one source for the help overlay, the status bar hints and the README.

/// One documented key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHelp {
    /// Screen it applies to ("global" for every screen).
    pub scope: &'static str,
    /// Key(s).
    pub keys: &'static str,
    /// What it does.
    pub action: &'static str,
}

const fn k(scope: &'static str, keys: &'static str, action: &'static str) -> KeyHelp {
    KeyHelp {
        scope,
        keys,
        action,
    }
}

/// Every key of the lab, by screen.
pub const KEY_HELP: &[KeyHelp] = &[
    k("global", "1-5 / Tab / Shift-Tab", "switch screen"),
    k("global", "?", "show / hide this help"),
    k("global", "q", "quit (asks first if a run is unsaved)"),
    k("global", "Ctrl-C", "quit now, checkpointing a running run"),
    k("Data", "d / →  ·  D / ←", "next / previous dataset"),
    k("Data", "r", "reload the dataset"),
    k("Schedules", "← / →", "move t by one step"),
    k(
        "Schedules",
        "PgUp / PgDn  ·  Home / End",
        "move t by 10  ·  to 0 / T−1",
    ),
    k("Schedules", "+ / −", "change T"),
    k("Schedules", "n", "another image (and noise)"),
    k("Train", "space", "start / pause / resume training"),
    k("Train", "↑ / ↓  ·  ← / →", "pick a setting  ·  change it"),
    k(
        "Train",
        "b / B",
        "blog configuration / quick one for this device",
    ),
    k("Train", "e", "measure the time per epoch"),
    k("Train", "c", "save a checkpoint now"),
    k(
        "Train",
        "o",
        "open an earlier run (Enter opens, space continues it)",
    ),
    k("Sample", "g", "generate samples from the run"),
    k(
        "Sample",
        "k  ·  [ / ]",
        "DDPM ↔ DDIM  ·  fewer / more DDIM steps",
    ),
    k("Sample", "+ / −  ·  s", "more / fewer images  ·  next seed"),
    k(
        "Sample",
        "← / →  ·  PgUp / PgDn",
        "step one frame  ·  ten frames",
    ),
    k(
        "Sample",
        "Home / End  ·  p",
        "first / last frame  ·  play / pause",
    ),
    k("Sample", "e", "export a PNG grid and an animated GIF"),
    k(
        "Compare",
        "space",
        "train one model per schedule / pause / resume",
    ),
    k(
        "Compare",
        "m  ·  + / −",
        "in turn ↔ round-robin  ·  steps per run",
    ),
    k(
        "Compare",
        "g  ·  s",
        "sample every run from the same noise  ·  next seed",
    ),
    k(
        "Compare",
        "← / →  PgUp / PgDn  Home / End  p",
        "step all four together, play",
    ),
];

/// Short hints for the status bar of a screen.
pub fn hints(scope: &str) -> &'static str {
    match scope {
        "Data" => "d/D dataset · r reload",
        "Schedules" => "←/→ t · +/− T · n image",
        "Train" => "space start/pause · ↑↓←→ edit · b blog · c ckpt · o open",
        "Sample" => "g generate · ←/→ PgUp/PgDn frames · p play · e export",
        "Compare" => "space train all · m mode · g sample · ←/→ p frames",
        _ => "",
    }
}
