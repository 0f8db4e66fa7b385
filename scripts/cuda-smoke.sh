#!/usr/bin/env bash
# Checks a `--features cuda` build of ddpm-lab on the machine at hand, GPU or not (CI has none):
# it links no CUDA library (cudarc loads them at run time), it starts, its CPU paths work
# (--help, schedules, a few training steps), and `--device cuda` either opens the GPU or fails
# with a one-line error, never a loader error or a panic.
#
# Usage: scripts/cuda-smoke.sh path/to/ddpm-lab
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 path/to/ddpm-lab (a --features cuda build)" >&2
  exit 2
fi
bin=$1
fail() {
  echo "cuda-smoke: FAILED: $*" >&2
  exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# No link-time CUDA dependency: the dynamic loader would refuse to start the binary without one.
if ldd "$bin" | grep -E 'lib(cuda|cublas|cublasLt|curand|nvrtc|cudart)\.so'; then
  fail "$bin links CUDA libraries (cudarc's dynamic-loading is off?)"
fi

"$bin" --help >/dev/null || fail "--help"
"$bin" schedules >/dev/null || fail "schedules"
"$bin" train --dataset shapes --dim 16 --dim-mults 1,2 --steps 3 --batch-size 4 \
  --run-dir "$tmp/run" --json >"$tmp/train.jsonl" || fail "CPU training"
[ "$(grep -c '"loss"' "$tmp/train.jsonl")" -eq 3 ] || fail "CPU training logged no 3 steps"

# `forward` opens the device before it reads its (here missing) files: the error says either
# that CUDA is not available (no driver, no GPU, no CUDA libraries) or, where a GPU opened,
# that the weights are missing. cuda_forward [VAR=VALUE...] runs it with those variables set,
# checks it failed with one error line and no crash, and prints the line.
cuda_forward() {
  local out rc lines
  set +e
  out=$(env "$@" timeout 120 "$bin" forward --device cuda --weights "$tmp/none.safetensors" \
    --input "$tmp/none.safetensors" --out "$tmp/out.safetensors" 2>&1)
  rc=$?
  set -e
  lines=$(printf '%s\n' "$out" | wc -l)
  case "$out" in
    *panicked* | *RUST_BACKTRACE* | *"error while loading shared libraries"*)
      fail "--device cuda $*: crashed (rc $rc): $out" ;;
  esac
  [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] ||
    fail "--device cuda $*: expected one error line and exit 1, got rc $rc: $out"
  printf '%s\n' "$out"
}
out=$(cuda_forward)
case "$out" in
  "error: CUDA device 0 is not available: "*) echo "cuda-smoke: no usable GPU here, as expected: $out" ;;
  *none.safetensors*) echo "cuda-smoke: a CUDA device opened (then the missing weights stopped forward)" ;;
  *) fail "--device cuda: unexpected error: $out" ;;
esac
# cuDNN's convs asked for: the same, or where a GPU opened and no cuDNN 9 loads, that error.
out=$(cuda_forward DDPM_LAB_CONV_ALGO=cudnn)
case "$out" in
  "error: CUDA device 0 is not available: "* | *"DDPM_LAB_CONV_ALGO=cudnn: "* | *none.safetensors*)
    echo "cuda-smoke: DDPM_LAB_CONV_ALGO=cudnn: $out" ;;
  *) fail "--device cuda with DDPM_LAB_CONV_ALGO=cudnn: unexpected error: $out" ;;
esac
echo "cuda-smoke: ok ($bin)"
