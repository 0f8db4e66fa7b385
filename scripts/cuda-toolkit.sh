#!/usr/bin/env bash
# Installs the CUDA 13.0 toolkit pieces that `cargo build --features cuda` needs (nvcc and its
# helpers, the runtime and CCCL headers) from NVIDIA's PyPI wheels into a cache folder, once,
# and prints the `export` lines that point a shell at it:
#
#   eval "$(scripts/cuda-toolkit.sh)"
#   cargo build --release --features cuda
#
# No GPU and no NVIDIA driver are needed: candle-kernels' build script only runs nvcc to turn
# its .cu files into PTX for CUDA_COMPUTE_CAP (90: H100/H200), and the binary loads the driver
# and the CUDA libraries (cuBLAS, cuRAND, NVRTC) at run time (cudarc's `dynamic-loading`, see
# vendor/candle-core/VENDORED.md), so nothing links against them.
#
# The versions are pinned to the CUDA 13.0 line on purpose: the GPU machine's driver (580)
# JIT-compiles PTX only up to the ISA of CUDA 13.0, and a newer nvcc emits PTX it refuses.
#
#   DDPM_LAB_CUDA_CACHE=dir  where the wheels go (default ~/.cache/ddpm-lab/cuda-13.0)
#   CUDA_COMPUTE_CAP=NN      the compute capability to compile for (default 90)
#   PIP_ARGS=...             extra pip arguments (an index URL, a proxy, ...)
#   CUDAFORGE_THREADS=N      parallel nvcc runs in candle-kernels' build (default: every core;
#                            cudaforge's own default is half of them, and nvcc is most of the
#                            first build: 26 min of CPU for the kernels)
#
# Progress goes to stderr; stdout carries only the export lines. A second call finds the
# marker file of a complete install and downloads nothing.
set -euo pipefail

CACHE=${DDPM_LAB_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ddpm-lab/cuda-13.0}
CAP=${CUDA_COMPUTE_CAP:-90}

# Every wheel puts its files under nvidia/cu13/ of the install folder. nvcc alone cannot
# compile: it needs cicc and libdevice (nvvm), crt/host_config.h and friends (crt), the
# runtime headers (cuda-runtime) and CCCL's headers (cccl), which candle's kernels include.
PACKAGES=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
)
# The marker records the package list, so changing a pin above reinstalls.
STAMP="$CACHE/.installed"
WANT="${PACKAGES[*]}"

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "cuda-toolkit: installing ${PACKAGES[*]} into $CACHE" >&2
  PY=${PYTHON:-python3}
  if ! "$PY" -m pip --version >/dev/null 2>&1; then
    # pip is missing (Debian's python3 without python3-pip): a throwaway venv brings its own.
    VENV="$CACHE.venv"
    if [ ! -x "$VENV/bin/python" ]; then
      "$PY" -m venv "$VENV" >&2 || {
        echo "cuda-toolkit: need pip or venv for $PY (apt-get install python3-pip python3-venv)" >&2
        exit 1
      }
    fi
    PY="$VENV/bin/python"
  fi
  # Into a fresh folder, renamed into place at the end, so an interrupted install is redone
  # rather than half used.
  TMP="$CACHE.tmp.$$"
  rm -rf "$TMP"
  mkdir -p "$TMP"
  trap 'rm -rf "$TMP"' EXIT
  # --no-deps: these wheels have no dependencies we need, and --target would otherwise pull
  # copies of anything they name. --only-binary: a wheel or nothing, never an sdist build.
  # shellcheck disable=SC2086
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --target "$TMP" ${PIP_ARGS:-} "${PACKAGES[@]}" >&2
  [ -x "$TMP/nvidia/cu13/bin/nvcc" ] || {
    echo "cuda-toolkit: the wheels did not provide nvidia/cu13/bin/nvcc" >&2
    exit 1
  }
  printf '%s' "$WANT" >"$TMP/.installed"
  rm -rf "$CACHE"
  mkdir -p "$(dirname "$CACHE")"
  mv "$TMP" "$CACHE"
  trap - EXIT
fi

ROOT="$CACHE/nvidia/cu13"
# candle-kernels also builds a static library of its MoE/GGUF kernels and asks the linker for
# `-lcudart`, with no search path. The wheels have no libcudart.so (only libcudart.so.13 and
# libcudart_static.a): a folder holding libcudart.a, the static runtime, answers that request
# without adding a run-time dependency (ddpm-lab calls none of those kernels, and the static
# runtime would load the driver with dlopen like the rest). The C compiler that drives the
# link reads LIBRARY_PATH.
mkdir -p "$CACHE/link"
ln -sfn "$ROOT/lib/libcudart_static.a" "$CACHE/link/libcudart.a"

# candle-kernels' build (cudaforge) finds the toolkit through CUDA_ROOT / CUDA_PATH and calls
# `nvcc` from PATH; CUDA_COMPUTE_CAP spares it asking nvidia-smi for the GPU's.
printf 'export CUDA_ROOT=%q\n' "$ROOT"
printf 'export CUDA_PATH=%q\n' "$ROOT"
printf 'export CUDA_COMPUTE_CAP=%q\n' "$CAP"
printf 'export PATH=%q:"$PATH"\n' "$ROOT/bin"
printf 'export LIBRARY_PATH=%q"${LIBRARY_PATH:+:$LIBRARY_PATH}"\n' "$CACHE/link"
printf 'export CUDAFORGE_THREADS=%q\n' "${CUDAFORGE_THREADS:-$(nproc 2>/dev/null || echo 2)}"
