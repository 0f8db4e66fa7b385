//! `ddpm-lab runs`: the runs under the runs directory, newest first, as the lab's Runs screen
//! lists them; with `--json`, one object per run and line for scripts.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::json;

use crate::runs::{self, RunInfo};
use crate::store::{read_metrics_file, RunLock, METRICS_FILE};

#[derive(clap::Args, Debug, Clone)]
pub struct RunsArgs {
    /// Directory holding run directories [default: $DDPM_LAB_RUNS, else ./runs]
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
    /// One JSON object per run and line: dir, name, dataset, schedule, imported_betas (β of
    /// its own, from imported weights), timesteps, model, step (saved), steps (to train),
    /// last_step (logged), loss (mean of the last 50 logged), loss_kind, training, problem
    /// (why its newest checkpoint cannot be used, else null), score (the last preview's: step,
    /// recognised, frechet), eval (that of the newest step evaluated, its largest: step,
    /// sampler, n, recognised, frechet, frechet_ratio)
    #[arg(long)]
    pub json: bool,
}

/// One run as listed.
struct Listed {
    info: RunInfo,
    name: String,
    last_step: usize,
    loss: Option<f64>,
    training: bool,
    score: Option<(usize, crate::eval::Quality)>,
    eval: Option<runs::quality::EvalRecord>,
}

impl Listed {
    fn read(info: RunInfo, root: &Path) -> Self {
        let history = read_metrics_file(&info.dir.join(METRICS_FILE)).unwrap_or_default();
        let loss = runs::recent_loss(&history);
        Self {
            name: runs::run_name(&info.dir, root),
            last_step: history.last().map_or(0, |s| s.step),
            loss,
            training: RunLock::is_held(&info.dir),
            score: runs::quality::last_quality(&info.dir),
            eval: runs::quality::headline_eval(&info.dir),
            info,
        }
    }

    /// The loss the run trains on (`l2·v·snr`): values of other kinds are not comparable.
    fn loss_kind(&self) -> String {
        let c = &self.info.config;
        crate::diffusion::loss_kind_name(c.loss, c.objective, c.min_snr_gamma.is_some())
    }

    fn json(&self) -> serde_json::Value {
        let c = &self.info.config;
        json!({
            "dir": self.info.dir.display().to_string(),
            "name": self.name,
            "dataset": c.dataset,
            "schedule": c.schedule.name(),
            // β of its own (imported weights' `betas`): `schedule` is only the name it has.
            "imported_betas": c.betas.is_some(),
            "timesteps": c.timesteps,
            "model": crate::presets::describe_unet_compact(&c.model),
            // The `--model` name that makes this UNet (`null`: a custom one), and the UNet in
            // full, as run.json keeps it.
            "model_preset": crate::presets::ModelPreset::of_unet(&c.model).map(|p| p.name()),
            "model_config": c.model,
            // Unknown (`?` in the table) where the newest checkpoint cannot be read.
            "step": self.info.problem.is_none().then_some(self.info.step),
            "steps": c.steps,
            "problem": self.info.problem,
            "last_step": self.last_step,
            "loss": self.loss,
            "loss_kind": self.loss_kind(),
            "training": self.training,
            "score": self.score.as_ref().map(|(step, q)| json!({
                "step": step,
                "recognised": q.recognised,
                "frechet": q.frechet,
            })),
            "eval": self.eval.as_ref().map(|e| json!({
                "step": e.step,
                // The weights evaluated, to sample them (`null` once the run has moved past
                // them and their checkpoint went: `dir` is then another step's).
                "checkpoint": crate::store::RunDir::at(&self.info.dir)
                    .checkpoint_of_step(e.step)
                    .map(|p| p.display().to_string()),
                "sampler": e.sampler,
                "n": e.n,
                "recognised": e.samples.recognised,
                "frechet": e.samples.frechet,
                "frechet_ratio": e.frechet_ratio,
            })),
        })
    }

    /// The row's cells, in [`HEADER`] order.
    fn cells(&self) -> Vec<String> {
        let c = &self.info.config;
        let score = self.score.as_ref().map_or("—".to_string(), |(step, q)| {
            format!("{:.0}% (step {step})", q.recognised * 100.0)
        });
        vec![
            if self.training { "▶" } else { " " }.to_string(),
            self.name.clone(),
            c.dataset.clone(),
            c.schedule_label(),
            c.timesteps.to_string(),
            crate::presets::describe_unet_compact(&c.model),
            match &self.info.problem {
                Some(_) => format!("?/{}", c.steps),
                None => format!("{}/{}", self.info.step, c.steps),
            },
            self.loss.map_or("—".to_string(), |l| {
                format!("{l:.4} {}", self.loss_kind())
            }),
            score,
            self.eval.as_ref().map_or("—".to_string(), |e| e.cell()),
        ]
    }
}

/// The table's column names (the first marks runs a process trains now).
const HEADER: [&str; 10] = [
    "", "run", "dataset", "schedule", "T", "model", "saved", "loss", "score", "eval",
];

/// Lists the runs.
pub fn run(args: RunsArgs) -> anyhow::Result<()> {
    let root = runs::runs_root(args.runs_dir.as_deref());
    // A name that is not a folder is said as such: a typo must not pass for an empty folder.
    if root.exists() && !root.is_dir() {
        anyhow::bail!(
            "{} is not a folder: name the folder that holds the runs",
            root.display()
        );
    }
    if !root.exists() && args.runs_dir.is_some() {
        anyhow::bail!("{} does not exist", root.display());
    }
    let listed: Vec<Listed> = runs::find_all_runs(&root)
        .into_iter()
        .map(|info| Listed::read(info, &root))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        for l in &listed {
            writeln!(out, "{}", l.json()).context("cannot write to stdout")?;
        }
        return Ok(());
    }
    if listed.is_empty() {
        writeln!(out, "no runs in {}", root.display()).context("cannot write to stdout")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = std::iter::once(HEADER.map(String::from).to_vec())
        .chain(listed.iter().map(Listed::cells))
        .collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end()).context("cannot write to stdout")?;
    }
    // What `?` in `saved` stands for, and what to do about it.
    for l in &listed {
        if let Some(p) = &l.info.problem {
            writeln!(out, "\n{}: {p}", l.name).context("cannot write to stdout")?;
        }
    }
    writeln!(
        out,
        "\nsaved: the newest checkpoint's step of the steps to train · loss: mean of the last {} logged steps · score: the last preview's share recognised · eval: `ddpm-lab eval`'s of the newest step evaluated (its largest) · ▶ training now",
        runs::RECENT_LOSS_STEPS
    )
    .context("cannot write to stdout")?;
    Ok(())
}
