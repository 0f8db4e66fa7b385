//! The vendored candle-core's op census (`candle_core::census`), which `examples/op_census`
//! and `ddpm-lab bench` use to count the ops, and so the GPU kernel launches, of each
//! workload. Its own test binary: the census counts the ops of every thread of the process, so
//! it holds one test.

use std::collections::BTreeMap;

use candle_core::{census, Device, Tensor};
use ddpm_lab::bench::{BenchModel, BenchOptions};
use ddpm_lab::model;

#[test]
fn the_census_counts_each_op_once_under_its_name_while_open() {
    let dev = Device::Cpu;
    census::open();
    let a = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &dev).unwrap();
    let b = a.exp().unwrap();
    let c = (&a + &b).unwrap();
    // A view runs nothing; a transposed copy does.
    let m = c.reshape((2, 2)).unwrap();
    let mt = m.t().unwrap().contiguous().unwrap();
    let s = mt.sum_all().unwrap();
    let counts = census::close();
    let expected: BTreeMap<&str, usize> = [
        ("from_host", 1),
        ("exp", 1),
        ("add", 1),
        ("copy", 1),
        ("reduce", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
    assert!(
        (s.to_scalar::<f32>().unwrap()
            - (10.0 + 1f32.exp() + 2f32.exp() + 3f32.exp() + 4f32.exp()))
        .abs()
            < 1e-3
    );

    // A composite run as one op counts once, under its own name, nested or not.
    census::open();
    let e = census::as_one("stand-in", || {
        let inner = census::as_one("inner", || a.exp().unwrap());
        (&inner + &a).unwrap().sqr().unwrap()
    });
    let _ = (&e * &a).unwrap();
    assert_eq!(
        census::close(),
        [("stand-in", 1), ("mul", 1)]
            .into_iter()
            .collect::<BTreeMap<_, _>>()
    );

    // Closed, it counts nothing; opened again, it starts empty.
    let _ = (&a * &b).unwrap();
    census::open();
    assert!(census::close().is_empty());
    census::open();
    let _ = (&a * &b).unwrap().sqr().unwrap();
    assert_eq!(
        census::close(),
        [("mul", 1), ("sqr", 1)]
            .into_iter()
            .collect::<BTreeMap<_, _>>()
    );

    bench_counts_the_ops_of_each_workload();
}

/// `ddpm-lab bench`'s op counts: its forward pass's is that of the same model's forward pass
/// counted here, and a training step and a sampling step run more.
fn bench_counts_the_ops_of_each_workload() {
    let opts = BenchOptions {
        model: BenchModel::Tiny,
        batch_size: 4,
        forward_batch: 3,
        sample_batch: 2,
        sample_steps: 5,
        warmup: 1,
        repeats: 1,
        sample_repeats: 1,
        ..BenchOptions::default()
    };
    let report = ddpm_lab::bench::run(&opts).unwrap();
    let dev = Device::Cpu;
    let config = opts.model.unet_config();
    let (_, varmap) = model::new_trainable(&config, opts.seed, &dev).unwrap();
    let unet = model::detached_copy(&varmap, &config, &dev).unwrap();
    let s = opts.model.image_size();
    let x = Tensor::zeros((3, config.channels, s, s), candle_core::DType::F32, &dev).unwrap();
    let t = model::timesteps_tensor(&[0, 1, 2], &dev).unwrap();
    census::open();
    unet.forward(&x, &t).unwrap();
    let forward_counts = census::close();
    let forward: usize = forward_counts.values().sum();
    assert!(forward > 20, "{forward} ops");
    assert_eq!(report.ops_forward, Some(forward as f64));
    let train = report.ops_train_step.unwrap();
    assert!(
        train > 2.0 * forward as f64,
        "{train} ops to train, {forward} to infer"
    );
    // A sampling step is a forward pass and the step's few ops (its run's setup shared out).
    let step = report.ops_sample_step.unwrap();
    assert!(
        step > forward as f64 && step < forward as f64 + 20.0,
        "{step} {forward}"
    );
    // By name, the forward pass's counts are the census's here, and each workload's add up to
    // its total.
    let by_name = &report.ops_by_name;
    let counted: BTreeMap<&str, f64> = forward_counts
        .iter()
        .map(|(&k, &n)| (k, n as f64))
        .collect();
    assert_eq!(by_name.forward, counted);
    for (counts, total) in [
        (&by_name.train_step, train),
        (&by_name.forward, forward as f64),
        (&by_name.sample_step, step),
    ] {
        assert!(counts.len() > 3, "{counts:?}");
        assert!(
            (counts.values().sum::<f64>() - total).abs() < 1e-9,
            "{counts:?}"
        );
    }
    // A training step runs the backward pass's ops, which a forward pass does not.
    assert!(
        by_name
            .train_step
            .keys()
            .any(|k| !by_name.forward.contains_key(k)),
        "{by_name:?}"
    );
}
