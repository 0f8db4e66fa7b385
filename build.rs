//! Build script: with the `cuda` feature, compiles ddpm-lab's own CUDA kernels
//! (`src/ops/cuda/*.cu`) to PTX with `nvcc`, for `src/ops/cuda/` to embed. Without
//! it, does nothing.
//!
//! The PTX targets compute capability 7.5 (the oldest that CUDA 13's nvcc takes): the NVIDIA
//! driver compiles it for the GPU at hand when the module loads, so the kernels need no
//! `CUDA_COMPUTE_CAP` of their own. `nvcc` is found as candle-kernels finds it: `NVCC`, else
//! `CUDA_ROOT`/`CUDA_PATH`'s `bin/nvcc`, else `nvcc` on `PATH` (`scripts/cuda-toolkit.sh` sets
//! these up).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const KERNELS: &[&str] = &[
    "conv",
    "depthwise",
    "elementwise",
    "group_norm",
    "implicit_conv",
    "multi_tensor",
    "softmax",
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for var in ["NVCC", "CUDA_ROOT", "CUDA_PATH"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = env::var_os("NVCC").map(PathBuf::from).unwrap_or_else(|| {
        ["CUDA_ROOT", "CUDA_PATH"]
            .iter()
            .filter_map(env::var_os)
            .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("nvcc"))
    });
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in KERNELS {
        let src = format!("src/ops/cuda/{name}.cu");
        println!("cargo::rerun-if-changed={src}");
        let ptx = out.join(format!("{name}.ptx"));
        let status = Command::new(&nvcc)
            .args(["--ptx", "-arch=compute_75", "-O3", "-o"])
            .arg(&ptx)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} for {src}: {e} (the cuda feature needs CUDA's nvcc: \
                     eval \"$(scripts/cuda-toolkit.sh)\")",
                    nvcc.display()
                )
            });
        assert!(
            status.success(),
            "{} failed on {src}: {status}",
            nvcc.display()
        );
    }
}
