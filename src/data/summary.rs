//! A serialisable summary of a loaded dataset (what `ddpm-lab data` prints, as text or JSON).

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::imageset::{DataSource, Dataset, ImageSet};

/// Where the data came from, flattened for JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSummary {
    /// "hub", "local" or "built-in".
    pub kind: String,
    /// Hub repository (`owner/name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Hub revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Hub cache folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Local path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// One line for people.
    pub description: String,
}

/// One split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    /// "train" or "test".
    pub name: String,
    /// Number of images.
    pub images: usize,
    /// Mean pixel value (0..255), to two decimals.
    pub mean_pixel: f64,
    /// Images per label id.
    pub label_counts: Vec<usize>,
}

/// One class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSummary {
    /// Label id.
    pub id: u32,
    /// Class name.
    pub name: String,
    /// Training images of this class.
    pub train: usize,
    /// Test images of this class, when there is a test split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<usize>,
}

/// Summary of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Dataset name.
    pub name: String,
    /// Where it came from.
    pub source: SourceSummary,
    /// Image channels (1 grey, 3 RGB).
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// The splits (train first).
    pub splits: Vec<SplitSummary>,
    /// The classes.
    pub labels: Vec<LabelSummary>,
}

/// Summary of one split.
fn split_summary(name: &str, set: &ImageSet, n_labels: usize) -> SplitSummary {
    SplitSummary {
        name: name.to_string(),
        images: set.len(),
        mean_pixel: (set.mean_pixel() * 100.0).round() / 100.0,
        label_counts: set.label_counts(n_labels),
    }
}

/// Summarises a dataset.
pub fn summarize(ds: &Dataset) -> DataSummary {
    let n = ds.label_names.len();
    let source = match &ds.source {
        DataSource::Hub {
            repo,
            revision,
            cache_dir,
        } => SourceSummary {
            kind: "hub".into(),
            repo: Some(repo.clone()),
            revision: Some(revision.clone()),
            cache_dir: Some(cache_dir.clone()),
            path: None,
            description: ds.source.to_string(),
        },
        DataSource::Local(p) => SourceSummary {
            kind: "local".into(),
            repo: None,
            revision: None,
            cache_dir: None,
            path: Some(p.clone()),
            description: ds.source.to_string(),
        },
        DataSource::BuiltIn => SourceSummary {
            kind: "built-in".into(),
            repo: None,
            revision: None,
            cache_dir: None,
            path: None,
            description: ds.source.to_string(),
        },
    };
    let mut splits = vec![split_summary("train", &ds.train, n)];
    if let Some(t) = &ds.test {
        splits.push(split_summary("test", t, n));
    }
    let labels = (0..n)
        .map(|i| LabelSummary {
            id: i as u32,
            name: ds.label_names[i].clone(),
            train: splits[0].label_counts[i],
            test: splits.get(1).map(|s| s.label_counts[i]),
        })
        .collect();
    DataSummary {
        name: ds.name.clone(),
        source,
        channels: ds.channels(),
        height: ds.train.height,
        width: ds.train.width,
        splits,
        labels,
    }
}

impl DataSummary {
    /// The summary as aligned text for the console.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "dataset   {}", self.name);
        let _ = writeln!(s, "source    {}", self.source.description);
        let kind = if self.channels == 1 { "grey" } else { "RGB" };
        let _ = writeln!(
            s,
            "images    {}×{}, {} channel(s) ({kind})",
            self.width, self.height, self.channels
        );
        for sp in &self.splits {
            let _ = writeln!(
                s,
                "{:<9} {} images, mean pixel {:.1}",
                sp.name, sp.images, sp.mean_pixel
            );
        }
        let has_test = self.splits.len() > 1;
        let _ = writeln!(
            s,
            "labels    {:>3}  {:<14} {:>7}{}",
            "id",
            "name",
            "train",
            if has_test { "    test" } else { "" }
        );
        for l in &self.labels {
            let test = l.test.map(|t| format!(" {t:>7}")).unwrap_or_default();
            let _ = writeln!(
                s,
                "          {:>3}  {:<14} {:>7}{test}",
                l.id, l.name, l.train
            );
        }
        s
    }
}
