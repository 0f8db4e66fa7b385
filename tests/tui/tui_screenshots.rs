//! Screenshots of the real lab for the README: runs the binary in tmux, visits every screen,
//! captures each with its colours (`capture-pane -e`) and renders it to
//! `assets/screenshots/<screen>.png` (half-blocks and braille drawn exactly, text in DejaVu
//! Sans Mono). Run by hand: `cargo test --test tui tui_screenshots -- --ignored --nocapture`.
//! The ANSI parser is tested on every run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// One terminal cell.
#[derive(Debug, Clone, PartialEq)]
struct Cell {
    ch: char,
    fg: (u8, u8, u8),
    bg: (u8, u8, u8),
    bold: bool,
}

const DEFAULT_FG: (u8, u8, u8) = (220, 220, 220);
const DEFAULT_BG: (u8, u8, u8) = (16, 16, 22);

/// xterm's 16 colours.
fn ansi16(i: u8) -> (u8, u8, u8) {
    const T: [(u8, u8, u8); 16] = [
        (0, 0, 0),
        (205, 49, 49),
        (13, 188, 121),
        (229, 229, 16),
        (36, 114, 200),
        (188, 63, 188),
        (17, 168, 205),
        (229, 229, 229),
        (102, 102, 102),
        (241, 76, 76),
        (35, 209, 139),
        (245, 245, 67),
        (59, 142, 234),
        (214, 112, 214),
        (41, 184, 219),
        (255, 255, 255),
    ];
    T[i as usize % 16]
}

fn ansi256(i: u8) -> (u8, u8, u8) {
    match i {
        0..=15 => ansi16(i),
        16..=231 => {
            let i = i - 16;
            let f = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            (f(i / 36), f(i / 6 % 6), f(i % 6))
        }
        _ => {
            let v = 8 + (i - 232) * 10;
            (v, v, v)
        }
    }
}

/// Parses `capture-pane -e` output (SGR colour codes) into rows of cells, `w` wide.
fn parse_ansi(text: &str, w: usize) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    let (mut fg, mut bg, mut bold, mut reverse) = (DEFAULT_FG, DEFAULT_BG, false, false);
    for line in text.lines() {
        let mut row = Vec::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' && chars.peek() == Some(&'[') {
                chars.next();
                let mut params = String::new();
                let mut fin = 'm';
                for c in chars.by_ref() {
                    if c.is_ascii_digit() || c == ';' || c == ':' {
                        params.push(c);
                    } else {
                        fin = c;
                        break;
                    }
                }
                if fin != 'm' {
                    continue;
                }
                let nums: Vec<u32> = params
                    .split([';', ':'])
                    .map(|p| p.parse().unwrap_or(0))
                    .collect();
                let mut i = 0;
                while i < nums.len() {
                    match nums[i] {
                        0 => {
                            (fg, bg, bold, reverse) = (DEFAULT_FG, DEFAULT_BG, false, false);
                        }
                        1 => bold = true,
                        22 => bold = false,
                        7 => reverse = true,
                        27 => reverse = false,
                        n @ 30..=37 => fg = ansi16((n - 30) as u8),
                        n @ 90..=97 => fg = ansi16((n - 90 + 8) as u8),
                        n @ 40..=47 => bg = ansi16((n - 40) as u8),
                        n @ 100..=107 => bg = ansi16((n - 100 + 8) as u8),
                        39 => fg = DEFAULT_FG,
                        49 => bg = DEFAULT_BG,
                        n @ (38 | 48) => {
                            let col = match nums.get(i + 1) {
                                Some(2) if i + 4 < nums.len() => {
                                    let c =
                                        (nums[i + 2] as u8, nums[i + 3] as u8, nums[i + 4] as u8);
                                    i += 4;
                                    Some(c)
                                }
                                Some(5) if i + 2 < nums.len() => {
                                    let c = ansi256(nums[i + 2] as u8);
                                    i += 2;
                                    Some(c)
                                }
                                _ => None,
                            };
                            if let Some(c) = col {
                                if n == 38 {
                                    fg = c;
                                } else {
                                    bg = c;
                                }
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                continue;
            }
            let (f, b) = if reverse { (bg, fg) } else { (fg, bg) };
            row.push(Cell {
                ch: c,
                fg: f,
                bg: b,
                bold,
            });
        }
        while row.len() < w {
            row.push(Cell {
                ch: ' ',
                fg,
                bg,
                bold: false,
            });
        }
        row.truncate(w);
        rows.push(row);
    }
    rows
}

const CW: i32 = 9;
const CH: i32 = 18;

fn rgb(c: (u8, u8, u8)) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// Draws cells to a PNG.
fn render_png(rows: &[Vec<Cell>], path: &Path, font: &str) {
    let w = rows.first().map_or(0, |r| r.len()) as u32;
    let h = rows.len() as u32;
    let root = BitMapBackend::new(path, (w * CW as u32, h * CH as u32)).into_drawing_area();
    root.fill(&rgb(DEFAULT_BG)).unwrap();
    for (y, row) in rows.iter().enumerate() {
        for (x, cell) in row.iter().enumerate() {
            let (x0, y0) = (x as i32 * CW, y as i32 * CH);
            let rect = |a: (i32, i32), b: (i32, i32), c: (u8, u8, u8)| {
                root.draw(&Rectangle::new([a, b], rgb(c).filled())).unwrap();
            };
            rect((x0, y0), (x0 + CW, y0 + CH), cell.bg);
            let c = cell.ch as u32;
            match cell.ch {
                ' ' => {}
                '▀' => rect((x0, y0), (x0 + CW, y0 + CH / 2), cell.fg),
                '▄' => rect((x0, y0 + CH / 2), (x0 + CW, y0 + CH), cell.fg),
                '█' => rect((x0, y0), (x0 + CW, y0 + CH), cell.fg),
                '▁'..='▇' => {
                    let k = (c - '▁' as u32 + 1) as i32;
                    rect((x0, y0 + CH - CH * k / 8), (x0 + CW, y0 + CH), cell.fg)
                }
                _ if (0x2800..=0x28ff).contains(&c) => {
                    let bits = c - 0x2800;
                    // Dot order: 1 2 3 7 in the left column, 4 5 6 8 in the right one.
                    const POS: [(i32, i32); 8] = [
                        (0, 0),
                        (0, 1),
                        (0, 2),
                        (1, 0),
                        (1, 1),
                        (1, 2),
                        (0, 3),
                        (1, 3),
                    ];
                    for (b, (dx, dy)) in POS.iter().enumerate() {
                        if bits & (1 << b) != 0 {
                            let px = x0 + 1 + dx * 4;
                            let py = y0 + 1 + dy * 4;
                            rect((px, py), (px + 3, py + 3), cell.fg);
                        }
                    }
                }
                '─' | '━' => rect((x0, y0 + CH / 2), (x0 + CW, y0 + CH / 2 + 1), cell.fg),
                '│' | '┃' => rect((x0 + CW / 2, y0), (x0 + CW / 2 + 1, y0 + CH), cell.fg),
                '┌' | '┐' | '└' | '┘' | '├' | '┤' | '┬' | '┴' | '┼' => {
                    let (cx, cy) = (x0 + CW / 2, y0 + CH / 2);
                    let up = matches!(cell.ch, '└' | '┘' | '├' | '┤' | '┴' | '┼');
                    let down = matches!(cell.ch, '┌' | '┐' | '├' | '┤' | '┬' | '┼');
                    let left = matches!(cell.ch, '┐' | '┘' | '┤' | '┬' | '┴' | '┼');
                    let right = matches!(cell.ch, '┌' | '└' | '├' | '┬' | '┴' | '┼');
                    if up {
                        rect((cx, y0), (cx + 1, cy + 1), cell.fg);
                    }
                    if down {
                        rect((cx, cy), (cx + 1, y0 + CH), cell.fg);
                    }
                    if left {
                        rect((x0, cy), (cx + 1, cy + 1), cell.fg);
                    }
                    if right {
                        rect((cx, cy), (x0 + CW, cy + 1), cell.fg);
                    }
                }
                ch => {
                    let color = rgb(cell.fg);
                    let style = TextStyle::from((font, CH - 4).into_font()).color(&color);
                    let _ = root.draw_text(&ch.to_string(), &style, (x0, y0 + 2));
                    if cell.bold {
                        let _ = root.draw_text(&ch.to_string(), &style, (x0 + 1, y0 + 2));
                    }
                }
            }
        }
    }
    root.present().unwrap();
}

#[test]
fn ansi_parser_reads_colours_and_pads() {
    let rows = parse_ansi(
        "\u{1b}[38;2;1;2;3m\u{1b}[48;5;196mA\u{1b}[0mB\u{1b}[7mC\n",
        4,
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0].fg, (1, 2, 3));
    assert_eq!(rows[0][0].bg, (255, 0, 0));
    assert_eq!(rows[0][1].fg, DEFAULT_FG);
    assert_eq!(rows[0][2].fg, DEFAULT_BG, "reverse video");
    assert_eq!(rows[0][3].ch, ' ');
}

struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn wait_for(&self, text: &str, secs: u64) {
        let start = Instant::now();
        while !self
            .cmd(&["capture-pane", "-p", "-t", "lab"])
            .contains(text)
        {
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.cmd(&["send-keys", "-t", "lab", k]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    fn shot(&self, name: &str, font: &str) -> PathBuf {
        std::thread::sleep(Duration::from_millis(400));
        let ansi = self.cmd(&["capture-pane", "-e", "-p", "-t", "lab"]);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.txt")), strip(&ansi)).unwrap();
        let path = dir.join(format!("{name}.png"));
        render_png(&parse_ansi(&ansi, 120), &path, font);
        eprintln!("wrote {}", path.display());
        path
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

fn strip(ansi: &str) -> String {
    parse_ansi(ansi, 120)
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| c.ch)
                .collect::<String>()
                .trim_end()
                .to_string()
                + "\n"
        })
        .collect()
}

/// Captures every screen of the real lab (needs tmux, DejaVu Sans Mono, and time: it trains).
#[test]
#[ignore]
fn capture_screenshots() {
    let font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";
    let Ok(bytes) = std::fs::read(font_path) else {
        crate::common::skip(&format!("{font_path} missing: no screenshots"), None);
        return;
    };
    if register_font(
        "lab-mono",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .is_err()
    {
        panic!("{font_path} is not a valid font");
    }
    let bin = env!("CARGO_BIN_EXE_ddpm-lab");
    // SHOT_RUNS_DIR=<runs directory>: only the Runs screen, over runs already on disk.
    if let Ok(runs) = std::env::var("SHOT_RUNS_DIR") {
        let t = Tmux(format!("ddpm-lab-shots-runs-{}", std::process::id()));
        let script = format!(
            "TERM=xterm-256color COLORTERM=truecolor '{bin}' --fresh --halfblocks \
             --dataset shapes --runs-dir '{runs}'; sleep 5"
        );
        t.cmd(&[
            "new-session",
            "-d",
            "-s",
            "lab",
            "-x",
            "120",
            "-y",
            "40",
            "sh",
            "-c",
            &script,
        ]);
        t.wait_for("1 Data", 30);
        t.keys(&["6"]);
        t.wait_for("Runs in", 30);
        t.keys(&["a"]);
        t.wait_for("marked runs", 10);
        t.shot("6-runs", "lab-mono");
        t.keys(&["q"]);
        return;
    }
    let dataset = std::env::var("SHOT_DATASET").unwrap_or_else(|_| "shapes".into());
    let extra = std::env::var("SHOT_ARGS").unwrap_or_default();
    let tmp = tempfile::tempdir().unwrap();
    // Previews every 10 steps so the Train screen shows some.
    std::fs::create_dir_all(tmp.path().join("cfg")).unwrap();
    std::fs::write(
        tmp.path().join("cfg/settings.json"),
        r#"{"train": {"preview_every": 10}, "sample": {"n": 4}}"#,
    )
    .unwrap();
    let script = format!(
        "cd '{d}' && DDPM_LAB_CONFIG_DIR='{d}/cfg' TERM=xterm-256color COLORTERM=truecolor '{bin}' \
         --halfblocks --dataset {dataset} --runs-dir '{d}/runs' {extra}; sleep 5",
        d = tmp.path().display()
    );
    let t = Tmux(format!("ddpm-lab-shots-{}", std::process::id()));
    t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "lab",
        "-x",
        "120",
        "-y",
        "40",
        "sh",
        "-c",
        &script,
    ]);
    t.wait_for("status   ready", 600);
    t.shot("1-data", "lab-mono");
    t.keys(&["2"]);
    for _ in 0..30 {
        t.keys(&["Right"]);
    }
    t.shot("2-schedules", "lab-mono");
    t.keys(&["3", "Space"]);
    t.wait_for("FINISHED", 3600);
    t.shot("3-train", "lab-mono");
    t.keys(&["4", "g"]);
    t.wait_for("shown: step", 1800);
    t.keys(&["Home"]);
    t.wait_for("frame 1/", 10);
    t.keys(&["PageDown"]);
    std::thread::sleep(Duration::from_millis(500));
    t.shot("4-sample", "lab-mono");
    t.keys(&["5", "Space"]);
    let compare_wait = std::env::var("SHOT_COMPARE_WAIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    t.wait_for("+,c: train on", compare_wait);
    t.keys(&["g"]);
    t.wait_for("frame ", 1800);
    std::thread::sleep(Duration::from_secs(20));
    t.keys(&["Home"]);
    t.wait_for("frame 1/", 10);
    t.keys(&["PageDown"]);
    t.shot("5-compare", "lab-mono");
    t.keys(&["?"]);
    t.shot("help", "lab-mono");
    // Runs: every run of this session (the Train run and the four Compare runs), all overlaid.
    t.keys(&["Escape", "6"]);
    t.wait_for("Runs in", 10);
    t.keys(&["a"]);
    t.wait_for("marked runs", 10);
    t.shot("6-runs", "lab-mono");
    t.keys(&["q"]);
}
