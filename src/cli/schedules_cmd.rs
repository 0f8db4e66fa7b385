//! `ddpm-lab schedules`: inspect the beta schedules — a compact table by default, every
//! derived table as JSON (`--json`), or a chart of β_t, ᾱ_t and log-SNR (`--out`).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Map, Value};

use crate::export::save_schedule_chart;
use crate::schedule::{BetaSchedule, ScheduleTables};

/// Above this √ᾱ at the last step, x_T still visibly carries the image (the sampler starts
/// from pure noise, so training and sampling disagree).
pub const SIGNAL_LEFT_THRESHOLD: f64 = 0.05;

/// Largest `--timesteps` accepted (the tables are printed or plotted in full): a run's limit.
pub use crate::store::config::MAX_TIMESTEPS;

/// Arguments of `ddpm-lab schedules`.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulesArgs {
    /// Number of diffusion steps T.
    #[arg(long, default_value_t = 200)]
    pub timesteps: usize,
    /// Schedules to show (comma-separated: linear, quadratic, cosine, sigmoid); all by default.
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub schedule: Vec<BetaSchedule>,
    /// Print every table (betas, alphas_cumprod, posterior_variance, snr, ...) as one JSON
    /// object keyed by schedule name.
    #[arg(long)]
    pub json: bool,
    /// Write a chart of β_t, ᾱ_t and log-SNR to this file (.png, or .svg).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// Builds the tables of `schedules` (all four when empty, in the lab's order, repeats dropped)
/// with `timesteps` steps (2 ..= [`MAX_TIMESTEPS`]).
pub fn build_tables(
    schedules: &[BetaSchedule],
    timesteps: usize,
) -> anyhow::Result<Vec<ScheduleTables>> {
    // Said of the flag, before any schedule is built: no schedule has fewer than 2.
    anyhow::ensure!(
        timesteps >= 2,
        "--timesteps must be at least 2, got {timesteps}"
    );
    anyhow::ensure!(
        timesteps <= MAX_TIMESTEPS,
        "--timesteps {timesteps} is too large (at most {MAX_TIMESTEPS})"
    );
    let schedules = if schedules.is_empty() {
        &BetaSchedule::ALL[..]
    } else {
        schedules
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for &s in schedules {
        if seen.contains(&s) {
            continue;
        }
        seen.push(s);
        out.push(ScheduleTables::new(s, timesteps).with_context(|| format!("schedule {s}"))?);
    }
    Ok(out)
}

/// One JSON object keyed by schedule name; each value holds `timesteps` and every table of
/// [`ScheduleTables`] (`betas`, `alphas`, `alphas_cumprod`, `alphas_cumprod_prev`,
/// `sqrt_recip_alphas`, `sqrt_alphas_cumprod`, `sqrt_one_minus_alphas_cumprod`,
/// `posterior_variance`, `snr`) as arrays of length T.
pub fn schedules_json(tables: &[ScheduleTables]) -> Value {
    let mut root = Map::new();
    for t in tables {
        let mut obj = Map::new();
        obj.insert("timesteps".into(), Value::from(t.timesteps()));
        let columns: [(&str, &Vec<f64>); 9] = [
            ("betas", &t.betas),
            ("alphas", &t.alphas),
            ("alphas_cumprod", &t.alphas_cumprod),
            ("alphas_cumprod_prev", &t.alphas_cumprod_prev),
            ("sqrt_recip_alphas", &t.sqrt_recip_alphas),
            ("sqrt_alphas_cumprod", &t.sqrt_alphas_cumprod),
            (
                "sqrt_one_minus_alphas_cumprod",
                &t.sqrt_one_minus_alphas_cumprod,
            ),
            ("posterior_variance", &t.posterior_variance),
            ("snr", &t.snr),
        ];
        for (name, values) in columns {
            obj.insert(name.into(), Value::from(values.clone()));
        }
        root.insert(t.schedule.name().into(), Value::Object(obj));
    }
    Value::Object(root)
}

/// A compact human-readable summary: per schedule β_1, β_T, ᾱ_T and √ᾱ_T (the share of the
/// image left in x_T), flagging schedules whose x_T still carries signal (√ᾱ_T >
/// [`SIGNAL_LEFT_THRESHOLD`]). Steps are counted 1 … T as in the paper, README and the lab
/// (`betas[0]` is β_1; the JSON's arrays are indexed from 0).
pub fn format_table(tables: &[ScheduleTables]) -> String {
    let mut s = String::new();
    let mut ts: Vec<usize> = tables.iter().map(|t| t.timesteps()).collect();
    ts.dedup();
    let ts: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
    let _ = writeln!(s, "T = {}", ts.join(", "));
    let _ = writeln!(
        s,
        "{:<10} {:>10} {:>10} {:>10} {:>10}",
        "schedule", "β_1", "β_T", "ᾱ_T", "√ᾱ_T"
    );
    for t in tables {
        let last = t.timesteps() - 1;
        let signal = t.final_signal();
        let flag = if signal > SIGNAL_LEFT_THRESHOLD {
            format!(
                "  ! x_T still carries signal: x_T = {:.2}·x_0 + {:.2}·ε",
                signal, t.sqrt_one_minus_alphas_cumprod[last]
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "{:<10} {:>10.3e} {:>10.3e} {:>10.3e} {:>10}{}",
            t.schedule.name(),
            t.betas[0],
            t.betas[last],
            t.alphas_cumprod[last],
            crate::schedule::fmt_fraction(signal, 4, 3),
            flag
        );
    }
    s
}

/// Runs `ddpm-lab schedules`.
pub fn run(args: SchedulesArgs) -> anyhow::Result<()> {
    let tables = build_tables(&args.schedule, args.timesteps)?;
    crate::files::check_json_beside(
        args.json,
        &args.out.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
    )?;
    if let Some(path) = &args.out {
        save_schedule_chart(&tables, path)?;
        eprintln!("wrote {}", path.display());
    }
    if args.json {
        let json = serde_json::to_string(&schedules_json(&tables))?;
        println!("{json}");
    } else if args.out.is_none() {
        print!("{}", format_table(&tables));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Too few steps is said of the flag, not of the first schedule built.
    #[test]
    fn too_few_timesteps_are_said_of_the_flag() {
        for schedules in [&[][..], &[BetaSchedule::Cosine]] {
            for t in [0, 1] {
                let err = build_tables(schedules, t).unwrap_err().to_string();
                assert_eq!(err, format!("--timesteps must be at least 2, got {t}"));
            }
        }
        assert_eq!(build_tables(&[], 2).unwrap().len(), 4);
    }

    /// The table counts steps 1 … T, as the lab does: its last column is the lab's √ᾱ_T.
    #[test]
    fn the_table_names_the_last_step_t_as_the_lab_does() {
        let tables = build_tables(&[BetaSchedule::Linear], 200).unwrap();
        let text = format_table(&tables);
        let header: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(header, ["schedule", "β_1", "β_T", "ᾱ_T", "√ᾱ_T"]);
        let row: Vec<&str> = text.lines().nth(2).unwrap().split_whitespace().collect();
        let ac = tables[0].alphas_cumprod[199];
        assert_eq!(row[3], format!("{ac:.3e}"));
        assert_eq!(row[4], format!("{:.4}", ac.sqrt()));
    }

    /// Every number ends where its header ends (`2.428e-10` beside `4.036e-5` included), and
    /// a √ᾱ_T under 0.001 is not rounded to zero.
    #[test]
    fn the_columns_line_up_with_their_headers_at_t_1000() {
        let tables = build_tables(&[], 1000).unwrap();
        let text = format_table(&tables);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        // The end column of each whitespace-separated word, by displayed columns.
        let ends = |l: &str| -> Vec<usize> {
            let cols: Vec<char> = l.chars().collect();
            (0..cols.len())
                .filter(|&i| cols[i] != ' ' && cols.get(i + 1).is_none_or(|c| *c == ' '))
                .collect()
        };
        let header = ends(lines[0]);
        for row in &lines[1..] {
            assert_eq!(ends(row)[1..5], header[1..], "{text}");
        }
        let cosine = lines.iter().find(|l| l.starts_with("cosine")).unwrap();
        assert!(cosine.ends_with("1.558e-5"), "{text}");
    }
}
