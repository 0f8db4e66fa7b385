//! Property tests: what a run reads from disk (config.json, state.json, metrics.jsonl) gives a
//! value or an error for any bytes or JSON, never a panic; and any configuration either passes
//! the validators and the memory budget (and then its estimate is within the limit) or is
//! refused with an error, never a panic.

use proptest::prelude::*;
use serde_json::{json, Value};

use ddpm_lab::model::{BlockKind, UnetConfig};
use ddpm_lab::runs::budget::{self, MAX_SAMPLE_BATCH};
use ddpm_lab::sampler::{KeepFrames, SamplerKind};
use ddpm_lab::store::{read_metrics_file, RunState, StepStats, TrainConfig};

/// Any JSON value, a few levels deep, with the numbers that break things (huge, negative,
/// fractional, the edges of u64).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(2),
            Just(u32::MAX as u64),
            Just(u64::MAX)
        ]
        .prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec(("[a-z_]{1,16}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// The fields of a run's files, so that mutations hit real keys.
const CONFIG_KEYS: &[&str] = &[
    "model",
    "schedule",
    "timesteps",
    "loss",
    "objective",
    "batch_size",
    "lr",
    "steps",
    "seed",
    "device",
    "dataset",
    "image_size",
    "flip",
    "ema_decay",
    "grad_clip",
    "warmup_steps",
    "min_snr_gamma",
    "preview_every",
    "preview_count",
    "preview_steps",
    "checkpoint_every",
    "checkpoint_interval_s",
    "time_limit_s",
    "recommended_sampler",
];
const MODEL_KEYS: &[&str] = &[
    "dim",
    "init_dim",
    "out_dim",
    "dim_mults",
    "channels",
    "with_time_emb",
    "resnet_block_groups",
    "block",
    "convnext_mult",
    "stage_attention",
];

/// A valid config.json with some of its fields (and its model's) replaced by anything.
fn mutated_config() -> impl Strategy<Value = Value> {
    let base = serde_json::to_value(TrainConfig::default()).unwrap();
    (
        prop::collection::vec((prop::sample::select(CONFIG_KEYS), any_json()), 0..4),
        prop::collection::vec((prop::sample::select(MODEL_KEYS), any_json()), 0..4),
    )
        .prop_map(move |(top, model)| {
            let mut v = base.clone();
            for (k, x) in top {
                v[k] = x;
            }
            if v["model"].is_object() {
                for (k, x) in model {
                    v["model"][k] = x;
                }
            }
            v
        })
}

/// Mostly usable values, else anything up to `wide` or any usize at all.
fn sized(usable: impl Strategy<Value = usize> + 'static, wide: usize) -> BoxedStrategy<usize> {
    prop_oneof![12 => usable, 1 => 0..=wide, 1 => any::<usize>()].boxed()
}

/// A configuration with every size drawn from usable to absurd.
fn any_config() -> impl Strategy<Value = TrainConfig> {
    (
        (
            sized((2usize..=32).prop_map(|d| 2 * d), 4096),
            sized(2usize..=1000, 200_000),
            sized(1usize..=256, 100_000),
            sized((1usize..=16).prop_map(|k| 8 * k), 4096),
        ),
        (
            prop::collection::vec(sized(1usize..=4, 128), 0..6),
            sized(prop_oneof![Just(1usize), Just(3)], 128),
            sized(1usize..=4, 128),
            prop::option::weighted(0.2, sized(4usize..=64, 100_000)),
            prop::option::weighted(0.2, sized(1usize..=6, 128)),
        ),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (dim, timesteps, batch, image),
                (mults, channels, groups, init_dim, out_dim),
                (resnet, time, attention, ema),
            )| {
                let mut c = TrainConfig {
                    model: UnetConfig {
                        dim,
                        init_dim,
                        out_dim,
                        dim_mults: mults,
                        channels,
                        with_time_emb: time,
                        resnet_block_groups: groups,
                        block: if resnet {
                            BlockKind::Resnet
                        } else {
                            BlockKind::Convnext
                        },
                        convnext_mult: groups,
                        stage_attention: attention,
                        // Today's UNet where the blocks are ResNet ones and attention is in
                        // every stage (the only layout it has).
                        arch: if resnet && attention && time {
                            ddpm_lab::model::Arch::Current
                        } else {
                            ddpm_lab::model::Arch::Blog
                        },
                        ..UnetConfig::default()
                    },
                    timesteps,
                    batch_size: batch,
                    image_size: image,
                    ..TrainConfig::default()
                };
                if ema {
                    c.ema_decay = Some(0.99);
                }
                c
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn run_files_parse_or_fail_from_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<TrainConfig>(&bytes);
        let _ = serde_json::from_slice::<RunState>(&bytes);
        let _ = serde_json::from_slice::<StepStats>(&bytes);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        let _ = read_metrics_file(&path);
    }

    #[test]
    fn run_files_parse_or_fail_from_any_json(v in any_json()) {
        let text = v.to_string();
        if let Ok(cfg) = serde_json::from_str::<TrainConfig>(&text) {
            let _ = cfg.validate();
        }
        let _ = serde_json::from_str::<RunState>(&text);
        let _ = serde_json::from_str::<StepStats>(&text);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let good = json!({"step": 1, "epoch": 0, "loss": 0.5, "images_per_s": 1.0,
                          "elapsed_s": 1.0, "lr": 0.001});
        std::fs::write(&path, format!("{good}\n{text}\n{good}\n")).unwrap();
        let read = read_metrics_file(&path).unwrap();
        prop_assert!(read.len() >= 2);
    }

    #[test]
    fn a_mutated_config_is_loaded_and_checked_or_refused(v in mutated_config()) {
        let Ok(cfg) = serde_json::from_value::<TrainConfig>(v) else { return Ok(()) };
        let limit = 8u128 << 30;
        if cfg.validate().is_ok() && budget::check_training_with(&cfg, Some(limit)).is_ok() {
            prop_assert!(budget::training(&cfg).total() <= limit);
        }
    }

    #[test]
    fn any_config_fits_the_budget_or_is_refused(
        cfg in any_config(),
        limit in prop_oneof![Just(1u128 << 20), Just(8u128 << 30), Just(1u128 << 40)],
    ) {
        let trains = cfg.validate().and_then(|_| budget::check_training_with(&cfg, Some(limit)));
        if trains.is_ok() {
            prop_assert!(budget::training(&cfg).total() <= limit);
            prop_assert!(budget::param_count(&cfg.model) > 0);
        } else {
            let msg = trains.unwrap_err().to_string();
            prop_assert!(!msg.is_empty() && !msg.contains('\n'), "{}", msg);
        }
    }

    #[test]
    fn any_sampling_request_fits_the_budget_or_is_refused(
        cfg in any_config(),
        n in prop_oneof![4 => 0usize..=64, 1 => any::<usize>()],
        batch in 1usize..=64,
        every_frame in any::<bool>(),
        ddim in prop::option::of(0usize..=1000),
        limit in prop_oneof![Just(1u128 << 20), Just(8u128 << 30), Just(1u128 << 40)],
    ) {
        let kind = match ddim {
            Some(steps) => SamplerKind::Ddim { steps, eta: 0.0 },
            None => SamplerKind::Ddpm,
        };
        let keep = if every_frame { KeepFrames::All } else { KeepFrames::last() };
        let ok = cfg.validate_limits().is_ok()
            && cfg.validate().is_ok()
            && kind.checked(cfg.timesteps).is_ok()
            && budget::check_sampling_with(&cfg, kind, n, batch, &keep, true, Some(limit)).is_ok();
        if ok {
            prop_assert!(n >= 1 && batch.min(n) <= MAX_SAMPLE_BATCH);
            prop_assert!(budget::sampling(&cfg, kind, n, batch, &keep).total() <= limit);
        }
    }
}
