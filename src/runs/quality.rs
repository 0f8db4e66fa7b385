//! A run's preview scores (`quality.jsonl`, written by the lab as previews are scored), read
//! back by the lab's screens and `ddpm-lab runs`.

use std::path::Path;

use crate::store::QUALITY_FILE;

/// The last readable score of `quality.jsonl` (torn or foreign lines are skipped).
pub fn last_quality(dir: &Path) -> Option<(usize, crate::eval::Quality)> {
    quality_lines(dir)?.into_iter().next_back()
}

/// Every readable score of `quality.jsonl`, by step (one a step: the last written; torn or
/// foreign lines are skipped); empty where there is no such file.
pub fn quality_history(dir: &Path) -> Vec<(usize, crate::eval::Quality)> {
    let mut all = quality_lines(dir).unwrap_or_default();
    // Stable: of scores at one step, the last written stays last.
    all.sort_by_key(|(step, _)| *step);
    let mut by_step: Vec<(usize, crate::eval::Quality)> = Vec::with_capacity(all.len());
    for (step, q) in all {
        match by_step.last_mut() {
            Some(last) if last.0 == step => last.1 = q,
            _ => by_step.push((step, q)),
        }
    }
    by_step
}

/// The readable lines of `quality.jsonl` in file order; `None` without the file.
fn quality_lines(dir: &Path) -> Option<Vec<(usize, crate::eval::Quality)>> {
    #[derive(serde::Deserialize)]
    struct Line {
        step: usize,
        quality: crate::eval::Quality,
    }
    let text = std::fs::read_to_string(dir.join(QUALITY_FILE)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| serde_json::from_str::<Line>(l).ok())
            .map(|l| (l.step, l.quality))
            .collect(),
    )
}
