//! ddpm-lab's CUDA kernels (`src/ops/cuda/*.cu`) run on the CPU: `tests/cuda_emulation/` builds
//! them as C++ with a header that emulates a launch (blocks in turn, a block's threads as OS
//! threads, `__syncthreads` and warp shuffles as barriers) and checks every kernel against plain
//! loops, with the launch shapes of the Rust side. On a GPU `ddpm-lab check-device` checks them
//! through the whole model; this catches a kernel's indexing or reduction mistake on any
//! machine, before a GPU visit. Needs a C++20 compiler (`CXX`, else `c++`), as the `cuda`
//! feature's nvcc does.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn cuda_kernels_match_plain_loops_under_cpu_emulation() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("kernels");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let out = Command::new(&cxx)
        .args([
            "-std=c++20",
            "-O1",
            "-pthread",
            "-Wall",
            "-Wno-unknown-pragmas",
            "-I",
        ])
        .arg(Path::new(ROOT).join("src/ops/cuda"))
        .args(["-x", "c++"])
        .arg(Path::new(ROOT).join("tests/cuda_emulation/kernels.cpp"))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C++ compiler {cxx}: {e}"));
    assert!(
        out.status.success(),
        "{cxx} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{report}");
    assert!(report.contains("0 failed"), "{report}");
    assert!(!report.contains("FAIL"), "{report}");
}

/// Every `.cu` file is included by the emulation test and every kernel in it is launched there,
/// so a new kernel cannot go untested on the CPU.
#[test]
fn the_emulation_test_covers_every_cuda_kernel() {
    let test =
        std::fs::read_to_string(Path::new(ROOT).join("tests/cuda_emulation/kernels.cpp")).unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(Path::new(ROOT).join("src/ops/cuda")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("cu") {
            continue;
        }
        files += 1;
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            test.contains(&format!("#include \"{name}\"")),
            "kernels.cpp does not include {name}"
        );
        let src = std::fs::read_to_string(&path).unwrap();
        for decl in src.split("extern \"C\" __global__ void").skip(1) {
            let mut decl = decl.trim_start();
            if let Some(rest) = decl.strip_prefix("__launch_bounds__") {
                decl = rest.split_once(')').map_or("", |(_, r)| r);
            }
            let kernel: String = decl
                .trim_start_matches(|c: char| c.is_whitespace() || c == '\\')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '#')
                .collect();
            // Kernels stamped out by a macro (`name##K`) are launched per K.
            let stem = kernel.split("##").next().unwrap();
            assert!(
                !stem.is_empty() && test.contains(stem),
                "kernels.cpp never launches {kernel} of {name}"
            );
        }
    }
    assert!(files >= 4, "found only {files} .cu files");
}
