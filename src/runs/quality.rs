//! A run's scores: its previews' (`quality.jsonl`, written by the lab as previews are scored)
//! and `ddpm-lab eval`'s (`eval.jsonl`), read back by the lab's screens and `ddpm-lab runs`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{Checkpoint, RunDir, CONFIG_FILE, EVAL_FILE, QUALITY_FILE};

/// One evaluation of a run, as `eval.jsonl` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// The checkpoint's step.
    pub step: usize,
    /// Whether the EMA weights were sampled.
    pub ema: bool,
    /// The sampler, as `sample --json` and `eval --json` give it.
    pub sampler: SamplerRecord,
    /// Images sampled.
    pub n: usize,
    /// Seed of the first batch.
    pub seed: u64,
    /// Images sampled at once: the samples after the first batch depend on it (absent in
    /// records kept before it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// The real images compared with.
    pub dataset: String,
    /// The split the real baseline came from: `test`, or `train` where the data has no test
    /// split (absent in records kept before it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_split: Option<String>,
    /// The samples' quality.
    pub samples: crate::eval::Quality,
    /// Real test images' quality (the baseline).
    pub real: crate::eval::Quality,
    /// `samples.frechet / real.frechet`.
    pub frechet_ratio: Option<f64>,
}

impl EvalRecord {
    /// The evaluation in a table cell: share recognised, the Fréchet distance where there is
    /// one, its step and images (`48% · FD 77.1 (step 600, n 1000)`), as `runs` and the lab's
    /// Runs screen show it.
    pub fn cell(&self) -> String {
        let fd = self.samples.frechet.map_or(String::new(), |f| {
            format!(" · FD {}", crate::eval::score::fmt_fd(f))
        });
        format!(
            "{:.0}%{fd} (step {}, n {})",
            self.samples.recognised * 100.0,
            self.step,
            self.n
        )
    }
}

/// The sampler of an [`EvalRecord`]: as `sample --json` gives it (`{"kind": "ddim", "steps":
/// 50, "eta": 0.0}`), or, in records kept before, in words (`ddim (50 steps)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SamplerRecord {
    /// The sampler itself.
    Kind(crate::sampler::SamplerKind),
    /// Its name in words (older records).
    Words(String),
}

/// The run a checkpoint path given to `eval` or `sample` belongs to (a run directory, one of
/// its checkpoint folders, or a weights file in either); `None` for loose weights.
pub fn run_of(path: &Path) -> Option<PathBuf> {
    [Some(path), path.parent()]
        .into_iter()
        .flatten()
        .map(Checkpoint::run_dir_of)
        .find(|r| r.join(CONFIG_FILE).is_file() && !Checkpoint::is_checkpoint_folder(r))
        .map(Path::to_path_buf)
}

/// Keeps an evaluation with its run (one line of `eval.jsonl`).
pub fn record_eval(run: &Path, record: &EvalRecord) -> anyhow::Result<()> {
    RunDir::at(run).append_line(EVAL_FILE, record)
}

/// The evaluation that says most of the run as it is: of those of its newest evaluated step,
/// the one of the most images (the last of equals), so that a quick `eval --n 50` after a
/// thorough one does not stand for the run. Torn or foreign lines are skipped.
pub fn headline_eval(dir: &Path) -> Option<EvalRecord> {
    let text = std::fs::read_to_string(dir.join(EVAL_FILE)).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<EvalRecord>(l).ok())
        .enumerate()
        .max_by_key(|(i, e)| (e.step, e.n, *i))
        .map(|(_, e)| e)
}

/// Keeps a preview's score with its run (one line of `quality.jsonl`).
pub fn record_quality(
    run: &Path,
    step: usize,
    quality: &crate::eval::Quality,
) -> anyhow::Result<()> {
    let line = serde_json::json!({ "step": step, "quality": quality });
    RunDir::at(run).append_line(QUALITY_FILE, &line)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_path_names_its_run() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("run");
        let ck = run.join("checkpoints/step-000004");
        std::fs::create_dir_all(&ck).unwrap();
        for dir in [&run, &ck] {
            std::fs::write(dir.join(CONFIG_FILE), "{}").unwrap();
        }
        std::fs::write(ck.join("model.safetensors"), b"").unwrap();
        for path in [run.clone(), ck.clone(), ck.join("model.safetensors")] {
            assert_eq!(run_of(&path).as_deref(), Some(run.as_path()), "{path:?}");
        }
        // Weights beside no run's configuration: no run to keep a result in.
        let loose = d.path().join("w.safetensors");
        std::fs::write(&loose, b"").unwrap();
        assert_eq!(run_of(&loose), None);
    }

    /// The newest step's evaluation of the most images stands for the run.
    #[test]
    fn the_headline_eval_is_the_newest_steps_largest() {
        let d = tempfile::tempdir().unwrap();
        let quality = |recognised: f64| crate::eval::Quality {
            n: 1,
            frechet: None,
            recognised,
            class_fractions: vec![1.0],
            mean_confidence: 0.5,
        };
        let record = |step: usize, n: usize, recognised: f64| EvalRecord {
            step,
            ema: true,
            sampler: SamplerRecord::Words("ddpm".into()),
            n,
            seed: 0,
            batch_size: None,
            dataset: "shapes".into(),
            real_split: None,
            samples: quality(recognised),
            real: quality(1.0),
            frechet_ratio: None,
        };
        assert_eq!(headline_eval(d.path()), None);
        let seen = |want: f64| headline_eval(d.path()).map(|e| e.samples.recognised) == Some(want);
        record_eval(d.path(), &record(100, 1000, 0.1)).unwrap();
        record_eval(d.path(), &record(100, 50, 0.2)).unwrap();
        assert!(
            seen(0.1),
            "a smaller eval of the same step does not replace it"
        );
        record_eval(d.path(), &record(100, 1000, 0.3)).unwrap();
        assert!(seen(0.3), "of equals, the last");
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join(EVAL_FILE))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"torn"))
            .unwrap();
        record_eval(d.path(), &record(200, 20, 0.4)).unwrap();
        assert!(seen(0.4), "a newer step, however small");
        record_eval(d.path(), &record(100, 5000, 0.5)).unwrap();
        assert!(seen(0.4), "an older step, however large");
    }

    /// The sampler is kept as `sample --json` gives it; records that said it in words still
    /// read.
    #[test]
    fn an_eval_records_sampler_is_an_object_and_old_words_still_read() {
        let kind = crate::sampler::SamplerKind::Ddim {
            steps: 50,
            eta: 0.0,
        };
        let json = serde_json::to_value(SamplerRecord::Kind(kind)).unwrap();
        assert_eq!(json, serde_json::to_value(kind).unwrap());
        assert_eq!(json["kind"], "ddim");
        let back: SamplerRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, SamplerRecord::Kind(kind));
        let old: SamplerRecord = serde_json::from_str("\"ddim (50 steps)\"").unwrap();
        assert_eq!(old, SamplerRecord::Words("ddim (50 steps)".into()));
    }
}
