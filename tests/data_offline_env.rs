//! `HF_HUB_OFFLINE=1` keeps the loader off the network (its own test binary, since it sets a
//! process-wide variable).

use std::time::{Duration, Instant};

use ddpm_lab::data::{load_dataset, DataError, DatasetSpec, LoadOptions};

#[test]
fn hf_hub_offline_env_means_cache_only() {
    std::env::set_var("HF_HUB_OFFLINE", "1");
    // A listener that would record any connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        endpoint: Some(format!("http://{}", listener.local_addr().unwrap())),
        cache_dir: Some(tmp.path().join("hub")),
        token: Some("dummy".into()),
        ..LoadOptions::default()
    };
    let t0 = Instant::now();
    let err = load_dataset(&DatasetSpec::Mnist, &opts, &mut |_| {}).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, DataError::NotCached { .. }), "{err}");
    assert!(err.to_string().contains("ylecun/mnist"), "{err}");
    assert!(
        listener.accept().is_err(),
        "a connection was made while offline"
    );
}
