//! `ddpm-lab schedules`: JSON output, the human table and the chart option, through the
//! library (no binary needed).

use ddpm_lab::cli::schedules_cmd::{
    build_tables, format_table, run, schedules_json, SchedulesArgs, SIGNAL_LEFT_THRESHOLD,
};
use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};

#[test]
fn json_has_every_schedule_with_tables_of_length_t() {
    let t = 200;
    let tables = build_tables(&[], t).unwrap();
    let json = schedules_json(&tables);
    let obj = json.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["cosine", "linear", "quadratic", "sigmoid"]);
    for s in BetaSchedule::ALL {
        let expected = ScheduleTables::new(s, t).unwrap();
        let entry = &obj[s.name()];
        assert_eq!(entry["timesteps"], t);
        for (name, want) in [
            ("betas", &expected.betas),
            ("alphas_cumprod", &expected.alphas_cumprod),
            ("posterior_variance", &expected.posterior_variance),
            ("snr", &expected.snr),
            ("sqrt_alphas_cumprod", &expected.sqrt_alphas_cumprod),
        ] {
            let got: Vec<f64> = entry[name]
                .as_array()
                .unwrap_or_else(|| panic!("{s}.{name} is not an array"))
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), t, "{s}.{name}");
            // serde_json writes f64 losslessly, so the values round-trip exactly.
            assert_eq!(&got, want, "{s}.{name}");
        }
    }
    // And through text, as `--json` prints it (serde_json's default parser may be one ulp off
    // for some numbers, hence the tolerance; the printed text itself is the shortest exact form).
    let text = serde_json::to_string(&json).unwrap();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    for s in BetaSchedule::ALL {
        let want = ScheduleTables::new(s, t).unwrap();
        let got = back[s.name()]["snr"].as_array().unwrap();
        assert_eq!(got.len(), t);
        for (g, w) in got.iter().zip(&want.snr) {
            let g = g.as_f64().unwrap();
            assert!((g - w).abs() <= 1e-15 * w.abs(), "{s}: {g} vs {w}");
        }
    }
}

#[test]
fn build_tables_keeps_order_and_drops_repeats() {
    let tables = build_tables(
        &[
            BetaSchedule::Cosine,
            BetaSchedule::Linear,
            BetaSchedule::Cosine,
        ],
        50,
    )
    .unwrap();
    let names: Vec<_> = tables.iter().map(|t| t.schedule).collect();
    assert_eq!(names, [BetaSchedule::Cosine, BetaSchedule::Linear]);
    let err = build_tables(&[], 1).unwrap_err();
    assert!(format!("{err:#}").contains("at least 2"), "{err:#}");
    let err = build_tables(&[], 10_000_000).unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
}

#[test]
fn table_flags_schedules_that_leave_signal() {
    let tables = build_tables(&[], 200).unwrap();
    let text = format_table(&tables);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{text}"))
            .to_string()
    };
    // Linear at T = 200: √ᾱ_T ≈ 0.36, flagged; cosine: ≈ 1e-4, not flagged.
    let linear = line("linear");
    assert!(linear.contains("0.36"), "{linear}");
    assert!(linear.contains("still carries signal"), "{linear}");
    assert!(
        linear.contains("1.000e-4") && linear.contains("2.000e-2"),
        "{linear}"
    );
    assert!(!line("cosine").contains("signal"), "{}", line("cosine"));
    assert!(text.starts_with("T = 200"));
    for t in &tables {
        let flagged = line(t.schedule.name()).contains("signal");
        assert_eq!(flagged, t.final_signal() > SIGNAL_LEFT_THRESHOLD);
    }
}

#[test]
fn run_writes_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("curves.png");
    run(SchedulesArgs {
        timesteps: 50,
        schedule: vec![BetaSchedule::Linear, BetaSchedule::Cosine],
        json: false,
        out: Some(out.clone()),
    })
    .unwrap();
    let img = image::open(&out).unwrap();
    assert!(img.width() > 100 && img.height() > 100);

    let err = run(SchedulesArgs {
        timesteps: 50,
        schedule: vec![],
        json: false,
        out: Some(dir.path().join("missing").join("c.png")),
    })
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn clap_parses_the_arguments() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: SchedulesArgs,
    }
    let cli = Cli::try_parse_from(["x", "--schedule", "cosine,linear", "--json"]).unwrap();
    assert_eq!(cli.args.timesteps, 200);
    assert!(cli.args.json);
    assert_eq!(
        cli.args.schedule,
        [BetaSchedule::Cosine, BetaSchedule::Linear]
    );
    assert!(Cli::try_parse_from(["x", "--schedule", "cosinus"]).is_err());
}
