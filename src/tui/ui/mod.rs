//! Views: pure functions from the [`App`] to a frame, one file per screen or panel.

pub mod chart;
pub mod compare;
pub mod data;
pub mod help;
pub mod image;
pub mod runs;
pub mod sample;
pub mod schedules;
pub mod status;
pub mod tabs;
pub mod theme;
pub mod train;

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::state::{App, Overlay, Tab};
pub use image::ImageRenderer;

/// Smallest terminal the lab draws into.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// The tab bar, the screen's body and the status lines of a terminal of `area` (`None`: too
/// small to draw the lab). Drawing and the mouse use the same rectangles.
pub fn areas(area: Rect) -> Option<[Rect; 3]> {
    if !fits(area) {
        return None;
    }
    Some(
        Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(0),
            Constraint::Length(2),
        ])
        .areas(area),
    )
}

/// Whether a terminal of `area` is large enough for the lab.
pub fn fits(area: Rect) -> bool {
    area.width >= MIN_SIZE.0 && area.height >= MIN_SIZE.1
}

/// Where the run picker is drawn over `body` with `n` runs.
pub fn picker_area(body: Rect, n: usize) -> Rect {
    centered(body, 100, (n as u16 + 4).min(body.height))
}

/// Draws the whole lab.
pub fn draw(frame: &mut Frame, app: &App, images: &ImageRenderer) {
    let area = frame.area();
    let Some([tabs_area, body, status_area]) = areas(area) else {
        too_small(frame, area, app);
        return;
    };
    tabs::draw(frame, tabs_area, app);
    match app.tab {
        Tab::Data => data::draw(frame, body, app, images),
        Tab::Schedules => schedules::draw(frame, body, app, images),
        Tab::Train => train::draw(frame, body, app, images),
        Tab::Sample => sample::draw(frame, body, app, images),
        Tab::Compare => compare::draw(frame, body, app, images),
        Tab::Runs => runs::draw(frame, body, app),
    }
    if app.picker.is_some() {
        train::draw_picker(frame, body, app);
    }
    match app.overlay {
        Overlay::None => {}
        Overlay::Help => help::draw(frame, body, app),
        Overlay::ConfirmQuit => confirm_quit(frame, body, app),
        Overlay::ConfirmRemove(ref dir) => runs::confirm_remove(frame, body, app, dir),
    }
    // Last, over everything: a long message takes the row above the status lines.
    status::draw(frame, status_area, app, images);
}

/// What a terminal too small for the lab shows: its size and the size needed, how to quit,
/// and the quit question when it is open (only the quit keys act there: see
/// `event::handle_key_in_small_terminal`). Short lines, so that they fit from 40 columns on;
/// narrower, they wrap into the rows below.
fn too_small(frame: &mut Frame, area: Rect, app: &App) {
    let mut text = vec![
        Line::from("ddpm-lab"),
        Line::from(format!(
            "The terminal is too small: {}×{};",
            area.width, area.height
        )),
        Line::from(format!(
            "the lab needs at least {}×{}.",
            MIN_SIZE.0, MIN_SIZE.1
        )),
    ];
    if app.overlay == Overlay::ConfirmQuit {
        text.push(Line::from(""));
        text.push(Line::styled(
            "Quit? Running runs are checkpointed first.",
            Style::default().add_modifier(Modifier::BOLD),
        ));
        text.push(Line::from("y / Enter: save and quit · n / Esc: stay"));
    } else {
        text.push(Line::from("Enlarge the window, or press q to quit."));
    }
    let rows = text.len() as u16;
    let p = Paragraph::new(text)
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true });
    let y = area.height.saturating_sub(rows) / 2;
    frame.render_widget(
        p,
        Rect::new(area.x, area.y + y, area.width, area.height - y),
    );
}

/// A rectangle of `w`×`h` centred in `area` (clamped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// `text` cut to `max` characters by replacing its middle with `…`, keeping more of the end
/// (where run names differ: `…000000-linear`).
/// A run's name in at most `max` characters: whole where it fits, else without its stamp's
/// date (`…114539-compare/sigmoid`: runs of one day differ in the time), else cut in the
/// middle. A cut in the middle made two comparisons' runs read alike.
pub fn run_label(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_string();
    }
    if crate::clock::without_stamp(name) != name {
        // `YYYYmmdd-` goes; the time and the rest stay.
        let timed = format!("…{}", &name[9..]);
        if timed.chars().count() <= max {
            return timed;
        }
    }
    ellipsize_middle(name, max)
}

pub fn ellipsize_middle(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return text.to_string();
    }
    if max <= 1 {
        return "…".chars().take(max).collect();
    }
    let keep = max - 1;
    let head = keep / 3;
    let tail = keep - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// `text` cut to `max` characters, its end replaced by `…` when cut (a message that reads
/// from the left).
pub fn ellipsize_end(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        out.push('…');
    }
    out
}

/// A block title with a note (such as `½ scale`) after it, for a block `width` columns wide.
/// `titles` are the ways to say the title, longest first: the first that fits with the whole
/// note, or else with the note shrunk to its fraction (`quadratic · ⅓`), is used; else the
/// shortest title with the fraction; else the shortest title alone (the note goes before the
/// name is cut).
pub fn title_with_note(titles: &[&str], note: Option<String>, width: u16) -> String {
    let notes = note.map_or(Vec::new(), scale_ways);
    title_with_notes(titles, &notes, width)
}

/// The ways to say a scale note in a title, longest first: `½ scale`, then `½`.
pub fn scale_ways(note: String) -> Vec<String> {
    let short = note.strip_suffix(" scale").unwrap_or(&note).to_string();
    vec![note, short]
}

/// [`title_with_note`] with the ways to say the note given, longest first: each title with
/// each way in turn, then the shortest title with the shortest way, then the shortest title.
pub fn title_with_notes(titles: &[&str], notes: &[String], width: u16) -> String {
    title_with_notes_keeping(titles, notes, width, 0)
}

/// [`title_with_notes`] where the first `keep` titles say more than the note: the `keep`-th
/// alone is tried before a shorter title with the note (a schedule's score outlasts how many
/// of its images are shown).
pub fn title_with_notes_keeping(
    titles: &[&str],
    notes: &[String],
    width: u16,
    keep: usize,
) -> String {
    // Two border cells and the spaces around the title.
    let room = (width as usize).saturating_sub(4);
    let fits = |s: &String| s.chars().count() <= room;
    let shortest = titles.last().copied().unwrap_or_default();
    let Some(last) = notes.last() else {
        let fit = titles.iter().map(|t| t.to_string()).find(fits);
        return fit.unwrap_or_else(|| shortest.to_string());
    };
    titles
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            let alone = (i + 1 == keep).then(|| t.to_string());
            notes.iter().map(move |n| format!("{t} · {n}")).chain(alone)
        })
        .chain([format!("{shortest} {last}")])
        .find(fits)
        .unwrap_or_else(|| shortest.to_string())
}

pub use crate::runs::run_name;

/// A bordered block with the lab's title style.
pub fn block(title: &str) -> Block<'_> {
    block_titled(Line::styled(format!(" {title} "), theme::title()))
}

/// A bordered block with a title of several styles.
pub fn block_titled(title: Line<'_>) -> Block<'_> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(theme::DIM))
        .title(title)
}

fn confirm_quit(frame: &mut Frame, area: Rect, app: &App) {
    let r = centered(area, 62, 7);
    frame.render_widget(Clear, r);
    // Active and not paused: starting, training or saving.
    let training = app
        .runs()
        .any(|r| r.is_active() && r.state != crate::tui::state::run::RunState::Paused);
    // Asked while a run was stopping, the question may outlive what it asked about.
    let saving = "Quit? Running runs are checkpointed first.";
    let save_keys = "y / Enter: save and quit     n / Esc: stay";
    let (what, then, keys) = if app.runs().any(|r| r.is_held()) {
        // A run a full disk holds: quitting waits for its checkpoint, tried again every few
        // seconds, for the shutdown's grace period.
        (
            "A run is not saved: its checkpoint could not be written.",
            "Quit? It is tried again first (Ctrl-C then quits now).",
            save_keys,
        )
    } else if training {
        ("A run is training.", saving, save_keys)
    } else if app.any_active() {
        (
            "A run is paused.",
            "Quit? Paused runs are checkpointed first.",
            save_keys,
        )
    } else if app.has_unsaved() {
        (
            "A run has steps that are not in a checkpoint.",
            saving,
            save_keys,
        )
    } else {
        (
            "Every run is saved now.",
            "Quit?",
            "y / Enter: quit     n / Esc: stay",
        )
    };
    let text = vec![
        Line::from(what),
        Line::from(then),
        Line::from(""),
        Line::styled(keys, Style::default().add_modifier(Modifier::BOLD)),
    ];
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .block(block("Quit?")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_keep_their_distinctive_end() {
        let name = "20260101-000000-compare/quadratic";
        assert_eq!(ellipsize_middle(name, 40), name);
        let short = ellipsize_middle(name, 16);
        assert_eq!(short.chars().count(), 16);
        assert!(short.ends_with("quadratic"), "{short}");
        assert!(short.starts_with("20260"), "{short}");
        assert_eq!(ellipsize_middle(name, 1), "…");
        // A message keeps its start, and says it was cut.
        assert_eq!(ellipsize_end("exported a.png", 40), "exported a.png");
        assert_eq!(ellipsize_end("exported a.png", 8), "exporte…");
        assert_eq!(ellipsize_end("exported", 0), "");
        let root = std::path::Path::new("runs");
        assert_eq!(run_name(&root.join("a/b"), root), "a/b");
        assert_eq!(run_name(std::path::Path::new("/x/y"), root), "/x/y");
    }

    /// On Compare the score outlasts the count of images shown: the longest title found the
    /// note fitting a shorter title without the score first.
    #[test]
    fn a_kept_title_goes_alone_before_a_shorter_one_with_the_note() {
        let titles = [
            "quadratic  t = final · 6% recognised",
            "quadratic t=final 6%",
            "quadratic t=final",
            "quadratic",
        ];
        let notes = ["2/16".to_string()];
        // 28 columns leave 24: "quadratic t=final 6% · 2/16" needs 27.
        assert_eq!(
            title_with_notes(&titles, &notes, 28),
            "quadratic t=final · 2/16"
        );
        assert_eq!(
            title_with_notes_keeping(&titles, &notes, 28, 2),
            "quadratic t=final 6%"
        );
        assert_eq!(
            title_with_notes_keeping(&titles, &notes, 40, 2),
            "quadratic t=final 6% · 2/16"
        );
        assert_eq!(
            title_with_notes_keeping(&titles, &notes, 48, 2),
            "quadratic  t = final · 6% recognised · 2/16"
        );
    }

    #[test]
    fn a_title_keeps_its_name_first_and_its_note_shrinks_to_fit() {
        let note = || Some("⅓ scale".to_string());
        let long = ["quadratic  t = 989", "quadratic t=989"];
        assert_eq!(title_with_note(&["linear"], None, 10), "linear");
        assert_eq!(
            title_with_note(&long, note(), 40),
            "quadratic  t = 989 · ⅓ scale"
        );
        // 30 columns leave 26 for the title: the full form needs 28.
        assert_eq!(title_with_note(&long, note(), 30), "quadratic  t = 989 · ⅓");
        assert_eq!(title_with_note(&long, note(), 23), "quadratic t=989 · ⅓");
        assert_eq!(title_with_note(&long, note(), 21), "quadratic t=989 ⅓");
        // A Compare panel at 80 columns is 20 wide.
        assert_eq!(title_with_note(&long, note(), 20), "quadratic t=989");
        assert_eq!(title_with_note(&long, None, 20), "quadratic t=989");
        assert_eq!(title_with_note(&["quadratic"], note(), 17), "quadratic · ⅓");
        assert_eq!(title_with_note(&["quadratic"], note(), 16), "quadratic ⅓");
        assert_eq!(title_with_note(&["quadratic"], note(), 12), "quadratic");
    }
}
