//! Hub downloads against a loopback mock Hub (no network): first download, cache hit with the
//! server gone, offline mode, 404, 500 bodies, truncated files, a server that never answers,
//! and a dead port. The mock serves `../shared/data/fashion-mnist/hub` the way hf-hub 1.0 expects
//! (see shared/docs/hub-protocol.md).

use crate::mock_hub;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ddpm_lab::data::{
    load_dataset, summarize, DataError, DataSource, DatasetSpec, LoadOptions, LoadProgress,
};
use mock_hub::*;

/// Options pointing at `endpoint` and a private cache, with an explicit dummy token (so no real
/// token is read) and a short watchdog.
fn opts(endpoint: &str, cache: &Path) -> LoadOptions {
    LoadOptions {
        endpoint: Some(endpoint.to_string()),
        cache_dir: Some(cache.to_path_buf()),
        token: Some(TOKEN.to_string()),
        network_timeout: Duration::from_millis(1500),
        retries: 0,
        ..LoadOptions::default()
    }
}

fn load(
    o: &LoadOptions,
) -> (
    Result<ddpm_lab::data::Dataset, DataError>,
    Vec<LoadProgress>,
) {
    let mut events = Vec::new();
    let r = load_dataset(&DatasetSpec::FashionMnist, o, &mut |p| events.push(p));
    (r, events)
}

fn snapshot(cache: &Path, file: &str) -> PathBuf {
    cache
        .join("datasets--zalando-datasets--fashion_mnist/snapshots")
        .join(COMMIT)
        .join(file)
}

fn blobs(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("datasets--zalando-datasets--fashion_mnist/blobs"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[test]
fn first_download_then_cache_hit_with_server_gone() {
    let Some(root) = hub_fixture() else { return };
    let hub = MockHub::start(&root);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let o = opts(&hub.url, &cache);

    let (r, events) = load(&o);
    let ds = r.expect("first download");
    assert_eq!(ds.train.len(), 8517);
    assert_eq!(ds.test.as_ref().map(|t| t.len()), Some(6978));
    assert_eq!(
        (ds.train.channels, ds.train.height, ds.train.width),
        (1, 28, 28)
    );
    assert_eq!(
        ds.train.label_counts(10),
        vec![794, 894, 865, 860, 817, 841, 866, 870, 851, 859]
    );
    assert_eq!(ds.label_names[0], "T-shirt/top");
    assert_eq!(
        ds.source,
        DataSource::Hub {
            repo: REPO.into(),
            revision: "refs/convert/parquet".into(),
            cache_dir: cache.clone()
        }
    );
    // Progress reached the full size of both files.
    for (file, size) in [(TRAIN, 4267928u64), (TEST, 3513488)] {
        assert!(
            events.iter().any(|e| matches!(e, LoadProgress::Downloading { file: f, done, total } if f == file && *done == size && *total == size)),
            "no complete progress for {file}: {events:?}"
        );
    }
    assert_eq!(events.last(), Some(&LoadProgress::Ready));
    // The standard cache layout (shared with the Python client).
    assert!(snapshot(&cache, TRAIN).is_symlink());
    let r = std::fs::read_to_string(
        cache.join("datasets--zalando-datasets--fashion_mnist/refs/refs/convert/parquet"),
    )
    .unwrap();
    assert_eq!(r.trim(), COMMIT);
    // Requests: listing, then HEAD+GET per file, all with our token.
    let seen = hub.seen();
    assert_eq!(seen[0].0, "GET");
    assert!(seen[0].1.starts_with(
        "/api/datasets/zalando-datasets/fashion_mnist/revision/refs%2Fconvert%2Fparquet"
    ));
    assert_eq!(
        seen.iter()
            .filter(|s| s.0 == "GET" && s.1.contains("/resolve/"))
            .count(),
        2
    );
    assert!(seen
        .iter()
        .all(|s| s.2.as_deref() == Some(&*format!("Bearer {TOKEN}"))));
    let summary = summarize(&ds);
    assert_eq!(summary.source.kind, "hub");
    assert_eq!(summary.splits[1].images, 6978);

    // Second run: the cache answers without a single request.
    let before = hub.seen().len();
    let (again, _) = load(&o);
    assert_eq!(again.expect("cache hit").train, ds.train);
    assert_eq!(
        hub.seen().len(),
        before,
        "a cached dataset touched the network"
    );

    // Third run: the server is gone; the cache answers.
    let url = hub.stop();
    let t0 = Instant::now();
    let (r2, _) = load(&opts(&url, &cache));
    let ds2 = r2.expect("cache hit with the server stopped");
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!(ds2.train, ds.train);
    assert_eq!(ds2.test, ds.test);
}

#[test]
fn offline_mode_uses_cache_only() {
    let Some(root) = hub_fixture() else { return };
    let hub = MockHub::start(&root);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let mut o = opts(&hub.url, &cache);
    o.offline = true;
    let t0 = Instant::now();
    let err = load(&o).0.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, DataError::NotCached { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("offline") && msg.contains("--dataset shapes") && msg.contains("HF_ENDPOINT"),
        "{msg}"
    );
    assert!(
        hub.seen().is_empty(),
        "offline mode made requests: {:?}",
        hub.seen()
    );
}

#[test]
fn missing_file_404_is_a_clear_error_and_not_remembered() {
    let Some(root) = hub_fixture() else { return };
    let hub = MockHub::start(&root);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    hub.set(Faults {
        not_found: vec![TRAIN.into()],
        ..Faults::default()
    });
    let err = load(&opts(&hub.url, &cache)).0.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Hub { .. }), "{msg}");
    assert!(msg.contains(TRAIN) && msg.contains("404"), "{msg}");
    // hf-hub's "does not exist" marker is not kept (it would poison the Python client's cache).
    let marker = cache
        .join("datasets--zalando-datasets--fashion_mnist/.no_exist")
        .join(COMMIT)
        .join(TRAIN);
    assert!(!marker.exists(), "{} left behind", marker.display());
    // The mirror is repaired: the next run downloads.
    hub.set(Faults::default());
    let ds = load(&opts(&hub.url, &cache))
        .0
        .expect("after the 404 is fixed");
    assert_eq!(ds.train.len(), 8517);
}

#[test]
fn error_body_of_a_500_is_never_used_and_a_retry_succeeds() {
    let Some(root) = hub_fixture() else { return };
    let hub = MockHub::start(&root);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    hub.set(Faults {
        get_500: vec![TEST.into()],
        ..Faults::default()
    });
    let err = load(&opts(&hub.url, &cache)).0.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::BadDownload { .. }), "{msg}");
    assert!(msg.contains(TEST) && msg.contains("removed"), "{msg}");
    assert!(!snapshot(&cache, TEST).exists() && !snapshot(&cache, TEST).is_symlink());
    assert!(
        blobs(&cache)
            .iter()
            .all(|b| std::fs::metadata(b).unwrap().len() > 4),
        "the 4-byte body stayed"
    );
    hub.set(Faults::default());
    let ds = load(&opts(&hub.url, &cache)).0.expect("a later good run");
    assert_eq!(ds.test.unwrap().len(), 6978);
}

#[test]
fn error_body_without_announced_size_is_caught_by_the_parquet_check() {
    let Some(root) = hub_fixture() else { return };
    let hub = MockHub::start(&root);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    hub.set(Faults {
        get_500: vec![TRAIN.into()],
        head_without_size: true,
        ..Faults::default()
    });
    let err = load(&opts(&hub.url, &cache)).0.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::BadDownload { .. }), "{msg}");
    assert!(
        msg.contains(TRAIN) && msg.contains("parquet") && msg.contains("removed"),
        "{msg}"
    );
    assert!(!snapshot(&cache, TRAIN).is_symlink());
    hub.set(Faults::default());
    assert_eq!(
        load(&opts(&hub.url, &cache)).0.expect("retry").train.len(),
        8517
    );
}

#[test]
fn truncated_parquet_is_rejected_and_removed() {
    let Some(root) = hub_fixture() else { return };
    let hub = MockHub::start(&root);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    hub.set(Faults {
        truncated: vec![TRAIN.into()],
        ..Faults::default()
    });
    let err = load(&opts(&hub.url, &cache)).0.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::BadDownload { .. }), "{msg}");
    assert!(msg.contains(TRAIN) && msg.contains("removed"), "{msg}");
    assert!(!snapshot(&cache, TRAIN).is_symlink());
    // The truncated blob is gone; the good test file stays.
    assert_eq!(blobs(&cache).len(), 1);
    hub.set(Faults::default());
    assert_eq!(
        load(&opts(&hub.url, &cache)).0.expect("retry").train.len(),
        8517
    );
}

#[test]
fn a_server_that_never_answers_fails_in_bounded_time() {
    let Some(root) = hub_fixture() else { return };
    let hub = MockHub::start(&root);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    hub.set(Faults {
        hang: true,
        ..Faults::default()
    });
    let mut o = opts(&hub.url, &cache);
    o.network_timeout = Duration::from_millis(800);
    let t0 = Instant::now();
    let err = load(&o).0.unwrap_err();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let msg = err.to_string();
    assert!(matches!(err, DataError::Network { .. }), "{msg}");
    assert!(
        msg.contains("no answer") && msg.contains("--dataset shapes"),
        "{msg}"
    );
    // Nothing was left behind that blocks a later run.
    hub.set(Faults::default());
    assert_eq!(
        load(&opts(&hub.url, &cache))
            .0
            .expect("after the hang")
            .train
            .len(),
        8517
    );
}

#[test]
fn a_dead_port_fails_fast_with_advice() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tmp = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let err = load(&opts(
        &format!("http://127.0.0.1:{port}"),
        &tmp.path().join("hub"),
    ))
    .0
    .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5));
    let msg = err.to_string();
    assert!(matches!(err, DataError::Network { .. }), "{msg}");
    for hint in [
        "HF_ENDPOINT",
        "--dataset PATH",
        "--dataset shapes",
        "127.0.0.1",
    ] {
        assert!(msg.contains(hint), "missing {hint}: {msg}");
    }
}

#[cfg(unix)]
#[test]
fn a_cache_written_by_another_client_is_used_offline() {
    // The layout the Python client writes: blobs, relative symlinks, refs.
    let Some(root) = hub_fixture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let repo = cache.join("datasets--zalando-datasets--fashion_mnist");
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs/refs/convert")).unwrap();
    std::fs::write(repo.join("refs/refs/convert/parquet"), COMMIT).unwrap();
    for f in [TRAIN, TEST] {
        let data = std::fs::read(root.join(f)).unwrap();
        let tag = etag(&data);
        std::fs::write(repo.join("blobs").join(&tag), &data).unwrap();
        let link = snapshot(&cache, f);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(format!("../../../../blobs/{tag}"), &link).unwrap();
    }
    let mut o = opts("http://127.0.0.1:9", &cache);
    o.offline = true;
    let ds = load(&o).0.expect("offline from a pre-filled cache");
    assert_eq!(ds.train.len(), 8517);
}

#[test]
fn a_download_that_stalls_midway_fails_in_bounded_time_and_a_retry_succeeds() {
    let Some(root) = hub_fixture() else { return };
    let hub = MockHub::start(&root);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    hub.set(Faults {
        stall_get: vec![TRAIN.into()],
        ..Faults::default()
    });
    let mut o = opts(&hub.url, &cache);
    o.network_timeout = Duration::from_millis(800);
    let t0 = Instant::now();
    let (r, events) = load(&o);
    let err = r.unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t0.elapsed()
    );
    assert!(matches!(err, DataError::Network { .. }), "{err}");
    // Bytes arrived before the stall, and the gauge saw them.
    assert!(events
        .iter()
        .any(|e| matches!(e, LoadProgress::Downloading { done, .. } if *done > 0)));
    assert!(!snapshot(&cache, TRAIN).is_symlink());
    // The cancelled download released its lock: a retry does not wait for it.
    hub.set(Faults::default());
    let t1 = Instant::now();
    assert_eq!(load(&o).0.expect("retry").train.len(), 8517);
    assert!(
        t1.elapsed() < Duration::from_secs(8),
        "retry took {:?}",
        t1.elapsed()
    );
}

/// A parquet file in the Hub layout with an `img` struct column (as CIFAR-10 has), written
/// with parquet's low-level writer.
fn write_image_parquet(path: &Path, pngs: &[Vec<u8>], labels: &[i64]) {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = "message schema { optional group img { optional binary bytes; optional binary path (UTF8); } optional int64 label; }";
    let schema = Arc::new(parquet::schema::parser::parse_message_type(schema).unwrap());
    let meta = r#"{"info":{"features":{"img":{"_type":"Image"},"label":{"names":["airplane","automobile","bird","cat","deer","dog","frog","horse","ship","truck"],"_type":"ClassLabel"}}}}"#;
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "huggingface".to_string(),
            meta.to_string(),
        )]))
        .build();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, Arc::new(props)).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let n = pngs.len();
    let mut k = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        match k {
            0 => {
                let v: Vec<ByteArray> = pngs.iter().map(|p| ByteArray::from(p.clone())).collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&vec![2; n]), None)
                    .unwrap();
            }
            1 => {
                col.typed::<ByteArrayType>()
                    .write_batch(&[], Some(&vec![1; n]), None)
                    .unwrap();
            }
            _ => {
                col.typed::<Int64Type>()
                    .write_batch(labels, Some(&vec![1; n]), None)
                    .unwrap();
            }
        }
        col.close().unwrap();
        k += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}

/// A 32×32 RGB PNG whose colour encodes `i`.
fn rgb_png(i: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([i as u8 * 20, x as u8 * 8, y as u8 * 8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[test]
fn cifar10_layout_rgb_with_img_column() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    for (split, n) in [("train", 10usize), ("test", 4)] {
        let pngs: Vec<Vec<u8>> = (0..n).map(rgb_png).collect();
        let labels: Vec<i64> = (0..n as i64).map(|i| i % 10).collect();
        write_image_parquet(
            &served.join(format!("plain_text/{split}/0000.parquet")),
            &pngs,
            &labels,
        );
    }
    let hub = MockHub::start(&served);
    let cache = tmp.path().join("hub");
    let ds =
        load_dataset(&DatasetSpec::Cifar10, &opts(&hub.url, &cache), &mut |_| {}).expect("cifar10");
    assert_eq!(
        (ds.train.channels, ds.train.height, ds.train.width),
        (3, 32, 32)
    );
    assert_eq!(ds.train.len(), 10);
    assert_eq!(ds.test.as_ref().unwrap().len(), 4);
    assert_eq!(ds.label_names[9], "truck");
    assert_eq!(ds.train.labels[3], 3);
    // CHW: image 3 has R = 60 everywhere, G = 8x, B = 8y.
    let p = ds.train.pixels(3);
    assert_eq!((p[0], p[1024 + 5], p[2048 + 32 * 7]), (60, 40, 56));
    assert!(hub
        .seen()
        .iter()
        .any(|s| s.1.contains("/datasets/uoft-cs/cifar10/resolve/")));
    // Asked for grey, the same data converts.
    let grey = LoadOptions {
        channels: Some(1),
        ..opts(&hub.url, &cache)
    };
    let g = load_dataset(&DatasetSpec::Cifar10, &grey, &mut |_| {}).unwrap();
    assert_eq!(g.train.channels, 1);
}
