//! `scripts/gpu-pack.sh`, which packs what a visit to the GPU machine carries, run in a scratch
//! clone on a small stand-in binary (a real CUDA build takes most of an hour here): what it
//! writes, that it stays within what a run carries, and that it says so when it would not.

use std::path::Path;
use std::process::{Command, Output};

/// A scratch git repository holding the script, with one commit.
fn scratch_repo(dir: &Path) {
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-pack.sh"),
        scripts.join("gpu-pack.sh"),
    )
    .unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "scratch",
        ],
    ] {
        let ok = Command::new("git")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }
}

/// Runs the scratch repository's script on `binary` with `SHARED=shared`, no einops download,
/// plus `env`.
fn pack(repo: &Path, binary: &Path, shared: &Path, env: &[(&str, &str)]) -> Output {
    Command::new("bash")
        .arg(repo.join("scripts/gpu-pack.sh"))
        .arg(binary)
        .current_dir(repo)
        .env("SHARED", shared)
        .env("EINOPS", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// A stand-in `shared/`: the fixtures (`fixture_bytes` of random data in one) and the data.
fn fake_shared(dir: &Path, fixture_bytes: usize) {
    let fixtures = dir.join("fixtures");
    let data = dir.join("data/fashion-mnist");
    std::fs::create_dir_all(&fixtures).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..fixture_bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(fixtures.join("forward_case.safetensors"), noise).unwrap();
    std::fs::write(fixtures.join("README.md"), "not carried").unwrap();
    std::fs::write(data.join("train-images-idx3-ubyte.gz"), b"idx").unwrap();
}

#[test]
fn the_gpu_pack_script_packs_the_binary_and_the_shared_files_within_the_carry_limit() {
    let repo = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    scratch_repo(repo.path());
    fake_shared(shared.path(), 4096);
    // Any executable stands in for the CUDA build: `true`, which exits 0.
    let binary = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .expect("a `true` binary");
    let out = pack(repo.path(), binary, shared.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(r#"carry: ["gpu-bin", "shared"]"#),
        "{stdout}"
    );

    // The binary, compressed as gpu-check.sh unpacks it, still runs.
    let bin = repo.path().join("gpu-bin");
    let unpacked = repo.path().join("unpacked");
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "xz -dc '{}' > '{}' && chmod +x '{1}' && '{1}'",
            bin.join("ddpm-lab.xz").display(),
            unpacked.display()
        ))
        .status()
        .unwrap()
        .success();
    assert!(ok, "the packed binary does not unpack and run");
    assert!(!bin.join("ddpm-lab").exists(), "left uncompressed");
    // A binary given ready-made: what it was built from is the caller's to say (BUILT_FROM),
    // else unknown, with the checkout's commit beside it.
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let built_from = std::fs::read_to_string(bin.join("BUILT_FROM")).unwrap();
    assert_eq!(
        built_from.trim(),
        format!("unknown (a given binary; checkout at {head})")
    );
    // The fixtures (safetensors only) and the data, in the checkout's shared/.
    let copied = repo.path().join("shared");
    assert!(copied.join("fixtures/forward_case.safetensors").is_file());
    assert!(!copied.join("fixtures/README.md").exists());
    assert!(copied
        .join("data/fashion-mnist/train-images-idx3-ubyte.gz")
        .is_file());
    // Both folders ignored, each once, however often it runs.
    let again = pack(
        repo.path(),
        binary,
        shared.path(),
        &[("BUILT_FROM", "abc123")],
    );
    assert!(again.status.success());
    let built_from = std::fs::read_to_string(bin.join("BUILT_FROM")).unwrap();
    assert_eq!(built_from.trim(), "abc123");
    let exclude = std::fs::read_to_string(repo.path().join(".git/info/exclude")).unwrap();
    for line in ["/gpu-bin/", "/shared/"] {
        assert_eq!(
            exclude.lines().filter(|l| *l == line).count(),
            1,
            "{exclude}"
        );
    }
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).trim(),
        "?? unpacked",
        "the packed folders are ignored"
    );

    // Over what a run carries (here 1 MiB): an error that says so.
    fake_shared(shared.path(), 2 << 20);
    let over = pack(repo.path(), binary, shared.path(), &[("CARRY_MIB", "1")]);
    let stderr = String::from_utf8_lossy(&over.stderr);
    assert!(!over.status.success());
    assert!(stderr.contains("over the"), "{stderr}");
}
