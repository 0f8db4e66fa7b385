//! The built-in shapes set and the batcher (determinism, epochs, flips, prefetch, resume).

use std::sync::Arc;

use candle_core::Device;
use ddpm_lab::data::{load_dataset, Batcher, DataSource, DatasetSpec, ImageSet, LoadOptions};

fn shapes(count: usize, seed: u64) -> ddpm_lab::data::Dataset {
    let opts = LoadOptions {
        shapes_count: count,
        seed,
        ..LoadOptions::default()
    };
    load_dataset(&DatasetSpec::Shapes, &opts, &mut |_| {}).unwrap()
}

#[test]
fn shapes_are_seeded_labelled_grey_28() {
    let a = shapes(120, 7);
    let b = shapes(120, 7);
    let c = shapes(120, 8);
    assert_eq!(a, b);
    assert_ne!(a.train.images, c.train.images);
    assert_eq!(a.source, DataSource::BuiltIn);
    assert!(a.source.to_string().contains("built-in"));
    assert!(a.is_builtin());
    assert_eq!(
        (a.train.channels, a.train.height, a.train.width),
        (1, 28, 28)
    );
    assert_eq!(a.train.len(), 120);
    assert_eq!(a.test.as_ref().unwrap().len(), 20);
    assert_eq!(
        a.label_names,
        vec!["circle", "ring", "square", "triangle", "cross", "stripes"]
    );
    assert_eq!(a.train.label_counts(6), vec![20; 6]);
    // Each image has a lit shape on a black background.
    for i in 0..a.train.len() {
        let px = a.train.pixels(i);
        let lit = px.iter().filter(|&&v| v > 100).count();
        let black = px.iter().filter(|&&v| v == 0).count();
        assert!(
            lit >= 15 && black >= 200,
            "image {i}: {lit} lit, {black} black"
        );
    }
    // The test split is not a copy of the train split.
    assert_ne!(a.test.as_ref().unwrap().pixels(0), a.train.pixels(0));
    // A ring covers less than the disc of the same class family on average.
    let mean_area = |class: u32| {
        let idx: Vec<usize> = (0..a.train.len())
            .filter(|&i| a.train.labels[i] == class)
            .collect();
        idx.iter()
            .map(|&i| a.train.pixels(i).iter().filter(|&&v| v > 50).count())
            .sum::<usize>() as f64
            / idx.len() as f64
    };
    assert!(mean_area(1) < mean_area(0));
}

#[test]
fn shapes_follow_geometry_options() {
    let opts = LoadOptions {
        shapes_count: 12,
        channels: Some(3),
        image_size: Some(32),
        ..LoadOptions::default()
    };
    let ds = load_dataset(&DatasetSpec::Shapes, &opts, &mut |_| {}).unwrap();
    assert_eq!(
        (ds.train.channels, ds.train.height, ds.train.width),
        (3, 32, 32)
    );
    let zero = LoadOptions {
        shapes_count: 0,
        ..LoadOptions::default()
    };
    assert!(load_dataset(&DatasetSpec::Shapes, &zero, &mut |_| {}).is_err());
}

/// A set of `n` 1×2×3 images whose pixels encode the image index.
fn tiny_set(n: usize) -> Arc<ImageSet> {
    let mut images = Vec::new();
    for i in 0..n {
        for k in 0..6 {
            images.push((i * 6 + k) as u8);
        }
    }
    Arc::new(ImageSet {
        images,
        labels: (0..n as u32).collect(),
        channels: 1,
        height: 2,
        width: 3,
    })
}

#[test]
fn epochs_cover_every_image_once_with_a_short_last_batch() {
    let b = Batcher::new(tiny_set(10), 4, 3, false, Device::Cpu);
    assert_eq!(b.steps_per_epoch(), 3);
    let mut epoch0 = Vec::new();
    for step in 0..3 {
        let batch = b.batch(step).unwrap();
        assert_eq!(batch.epoch, 0);
        assert_eq!(batch.step, step);
        assert_eq!(batch.x.dims(), &[if step == 2 { 2 } else { 4 }, 1, 2, 3]);
        epoch0.extend(batch.labels);
    }
    let mut sorted = epoch0.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<u32>>());
    assert_ne!(epoch0, (0..10).collect::<Vec<u32>>(), "not shuffled");
    let e1: Vec<u32> = (3..6).flat_map(|s| b.batch(s).unwrap().labels).collect();
    assert_eq!(b.batch(3).unwrap().epoch, 1);
    assert_ne!(e1, epoch0, "same order in two epochs");
    // Same seed, same batches; another seed, another order.
    let again = Batcher::new(tiny_set(10), 4, 3, false, Device::Cpu);
    assert_eq!(again.batch(4).unwrap().labels, b.batch(4).unwrap().labels);
    let other = Batcher::new(tiny_set(10), 4, 4, false, Device::Cpu);
    assert_ne!(
        (0..3)
            .flat_map(|s| other.batch(s).unwrap().labels)
            .collect::<Vec<_>>(),
        epoch0
    );
}

#[test]
fn pixels_are_scaled_to_minus_one_one_and_flips_mirror_rows() {
    let set = tiny_set(64);
    let plain = Batcher::new(set.clone(), 64, 1, false, Device::Cpu);
    let flipped = Batcher::new(set.clone(), 64, 1, true, Device::Cpu);
    let a = plain.batch(0).unwrap();
    let b = flipped.batch(0).unwrap();
    assert_eq!(a.labels, b.labels);
    let xa: Vec<Vec<f32>> = a.x.flatten_from(1).unwrap().to_vec2().unwrap();
    let xb: Vec<Vec<f32>> = b.x.flatten_from(1).unwrap().to_vec2().unwrap();
    let mut n_flipped = 0;
    for (k, &label) in a.labels.iter().enumerate() {
        let expect: Vec<f32> = set
            .pixels(label as usize)
            .iter()
            .map(|&v| v as f32 / 127.5 - 1.0)
            .collect();
        assert_eq!(xa[k], expect);
        let mirrored: Vec<f32> = expect
            .chunks(3)
            .flat_map(|r| r.iter().rev().copied())
            .collect();
        if xb[k] == mirrored {
            n_flipped += 1;
        } else {
            assert_eq!(xb[k], expect);
        }
    }
    assert!((16..=48).contains(&n_flipped), "{n_flipped} of 64 flipped");
    // Flips are reproducible.
    let again = Batcher::new(set, 64, 1, true, Device::Cpu)
        .batch(0)
        .unwrap();
    assert_eq!(
        again.x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        b.x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let all: Vec<f32> = a.x.flatten_all().unwrap().to_vec1().unwrap();
    assert!(all.iter().all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn prefetch_resumes_exactly() {
    let direct = Batcher::new(tiny_set(10), 3, 9, true, Device::Cpu);
    let expected: Vec<(Vec<u32>, Vec<f32>, usize)> = (5..12)
        .map(|s| {
            let b = direct.batch(s).unwrap();
            (
                b.labels,
                b.x.flatten_all().unwrap().to_vec1().unwrap(),
                b.epoch,
            )
        })
        .collect();
    let pre = Batcher::new(tiny_set(10), 3, 9, true, Device::Cpu).prefetch(5, 2);
    let got: Vec<(Vec<u32>, Vec<f32>, usize)> = pre
        .take(7)
        .map(|b| {
            let b = b.unwrap();
            (
                b.labels,
                b.x.flatten_all().unwrap().to_vec1().unwrap(),
                b.epoch,
            )
        })
        .collect();
    assert_eq!(got, expected);
    // Dropping a prefetcher whose thread is blocked on a full channel returns.
    let p = Batcher::new(tiny_set(10), 3, 9, true, Device::Cpu).prefetch(0, 1);
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(p);
}

#[test]
fn an_empty_set_gives_an_error_not_a_panic() {
    let empty = Arc::new(ImageSet {
        images: vec![],
        labels: vec![],
        channels: 1,
        height: 28,
        width: 28,
    });
    let b = Batcher::new(empty, 8, 0, true, Device::Cpu);
    assert_eq!(b.steps_per_epoch(), 0);
    assert!(b.batch(0).is_err());
    let mut p = b.prefetch(0, 2);
    assert!(p.next().unwrap().is_err());
    assert!(p.next().is_none());
}
