//! Dataset names, options, the JSON summary and the `data` command's pieces.

use clap::Parser;
use ddpm_lab::cli::data_cmd::{examples_grid, DataArgs};
use ddpm_lab::data::spec::offline_env_value;
use ddpm_lab::data::{load_dataset, summarize, DataSummary, DatasetSpec, LoadOptions};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    data: DataArgs,
}

#[test]
fn dataset_names_parse_and_display() {
    assert_eq!(DatasetSpec::default(), DatasetSpec::FashionMnist);
    for (s, spec) in [
        ("fashion_mnist", DatasetSpec::FashionMnist),
        ("fashion-mnist", DatasetSpec::FashionMnist),
        ("MNIST", DatasetSpec::Mnist),
        ("cifar10", DatasetSpec::Cifar10),
        ("shapes", DatasetSpec::Shapes),
    ] {
        let parsed: DatasetSpec = s.parse().unwrap();
        assert_eq!(parsed, spec);
        assert_eq!(parsed.to_string().parse::<DatasetSpec>().unwrap(), spec);
    }
    let dir = tempfile::tempdir().unwrap();
    let p: DatasetSpec = dir.path().to_str().unwrap().parse().unwrap();
    assert_eq!(p, DatasetSpec::Path(dir.path().to_path_buf()));
    let err = "fashoin_mnist"
        .parse::<DatasetSpec>()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fashoin_mnist") && err.contains("shapes"),
        "{err}"
    );
    assert_eq!(DatasetSpec::Cifar10.hub().unwrap().channels, 3);
    assert_eq!(DatasetSpec::Mnist.hub().unwrap().repo, "ylecun/mnist");
    assert!(DatasetSpec::Shapes.hub().is_none());
}

#[test]
fn hf_hub_offline_values() {
    for v in ["1", "true", "TRUE", "yes", "on"] {
        assert!(offline_env_value(Some(v)), "{v}");
    }
    for v in [None, Some(""), Some("0"), Some("false"), Some("no")] {
        assert!(!offline_env_value(v), "{v:?}");
    }
}

#[test]
fn summary_of_the_builtin_set_as_json() {
    let opts = LoadOptions {
        shapes_count: 60,
        ..LoadOptions::default()
    };
    let ds = load_dataset(&DatasetSpec::Shapes, &opts, &mut |_| {}).unwrap();
    let s = summarize(&ds);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["name"], "shapes");
    assert_eq!(json["source"]["kind"], "built-in");
    assert!(json["source"].get("repo").is_none());
    assert_eq!(json["channels"], 1);
    assert_eq!(
        (json["height"].as_u64(), json["width"].as_u64()),
        (Some(28), Some(28))
    );
    assert_eq!(json["splits"][0]["name"], "train");
    assert_eq!(json["splits"][0]["images"], 60);
    assert_eq!(json["splits"][1]["images"], 10);
    assert_eq!(json["labels"][3]["name"], "triangle");
    assert_eq!(json["labels"][3]["train"], 10);
    let back: DataSummary = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
    let text = s.to_text();
    assert!(
        text.contains("built-in") && text.contains("stripes") && text.contains("28×28"),
        "{text}"
    );
}

#[test]
fn data_args_defaults_and_grid() {
    let cli = Cli::try_parse_from(["x"]).unwrap();
    assert_eq!(
        cli.data.dataset.parse::<DatasetSpec>().unwrap(),
        DatasetSpec::FashionMnist
    );
    assert!(!cli.data.json && !cli.data.offline && cli.data.show.is_none());
    let cli = Cli::try_parse_from([
        "x",
        "--dataset",
        "shapes",
        "--json",
        "--show",
        "5",
        "--image-size",
        "32",
        "--offline",
    ])
    .unwrap();
    assert_eq!(cli.data.dataset, "shapes");
    let o = cli.data.load_options();
    assert_eq!((o.image_size, o.offline), (Some(32), true));
    // A path that is not there parses (it is bad input, said when the command runs, exit 1).
    let cli = Cli::try_parse_from(["x", "--dataset", "/no/such/place"]).unwrap();
    assert!(cli.data.dataset.parse::<DatasetSpec>().is_err());
    let ds = load_dataset(
        &DatasetSpec::Shapes,
        &LoadOptions {
            shapes_count: 12,
            ..LoadOptions::default()
        },
        &mut |_| {},
    )
    .unwrap();
    let grid = examples_grid(&ds, 10);
    // 8 columns × 2 rows of 28×4 + 2 pixels.
    assert_eq!(grid.dimensions(), (8 * 114, 2 * 114));
}

#[test]
fn data_command_runs_on_the_builtin_set() {
    let cli = Cli::try_parse_from(["x", "--dataset", "shapes", "--json", "--seed", "3"]).unwrap();
    ddpm_lab::cli::data_cmd::run(cli.data).unwrap();
    let cli = Cli::try_parse_from(["x", "--dataset", "shapes", "--channels", "2"]).unwrap();
    let err = ddpm_lab::cli::data_cmd::run(cli.data).unwrap_err();
    assert!(format!("{err:#}").contains("channels"), "{err:#}");
}

#[test]
fn fallback_to_the_builtin_set_keeps_the_reason() {
    let empty = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        shapes_count: 12,
        ..LoadOptions::default()
    };
    let spec = DatasetSpec::Path(empty.path().to_path_buf());
    let (ds, why) = ddpm_lab::data::load_or_builtin(&spec, &opts, &mut |_| {}).unwrap();
    assert!(ds.is_builtin());
    assert!(
        matches!(why, Some(ddpm_lab::data::DataError::EmptyFolder { .. })),
        "{why:?}"
    );
    let (ds, why) =
        ddpm_lab::data::load_or_builtin(&DatasetSpec::Shapes, &opts, &mut |_| {}).unwrap();
    assert!(ds.is_builtin() && why.is_none());
}
