#!/usr/bin/env bash
# Runs the PyTorch reference (scripts/pytorch_bench.py, the blog's model) and `ddpm-lab bench`
# side by side on the same workloads and prints ddpm-lab / PyTorch throughput ratios.
#
# Usage: scripts/compare.sh [--config blog|resnet|current|lucidrains|tiny] [--batch-size N] [--threads N]
#                           [--repeats N] [--sample-repeats N] [--skip-torch]
#   VENV=path        virtualenv for PyTorch (default: ~/.cache/ddpm-lab/venv-bench, made once)
#   TORCH_SPEC=spec  what pip installs (default: torch, from PyPI)
#   DDPM_LAB=path    a built ddpm-lab binary (default: cargo build --release)
# Extra pip arguments (e.g. a CPU-only index) can be given in PIP_ARGS.
set -euo pipefail

cd "$(dirname "$0")/.."
CONFIG=blog
BATCH=128
THREADS=2
REPEATS=3
SAMPLE_REPEATS=1
SKIP_TORCH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG=$2; shift 2 ;;
    --batch-size) BATCH=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --sample-repeats) SAMPLE_REPEATS=$2; shift 2 ;;
    --skip-torch) SKIP_TORCH=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
  esac
done

VENV=${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ddpm-lab/venv-bench}
OUT=${OUT:-target/compare}
mkdir -p "$OUT"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores), load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- ddpm-lab ---
if [ -z "${DDPM_LAB:-}" ]; then
  cargo build --release --quiet
  DDPM_LAB=${CARGO_TARGET_DIR:-target}/release/ddpm-lab
fi
RAYON_NUM_THREADS=$THREADS "$DDPM_LAB" bench --json --config "$CONFIG" --batch-size "$BATCH" \
  --repeats "$REPEATS" --sample-repeats "$SAMPLE_REPEATS" >"$OUT/ddpm-lab.json"
echo "ddpm-lab: $(cat "$OUT/ddpm-lab.json")" >&2

# --- PyTorch ---
if [ "$SKIP_TORCH" = 0 ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet ${PIP_ARGS:-} "${TORCH_SPEC:-torch}" einops numpy safetensors
  fi
  # lucidrains' Unet is timed from the package itself.
  if [ "$CONFIG" = lucidrains ] && ! "$VENV/bin/python" -c 'import denoising_diffusion_pytorch' 2>/dev/null; then
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet ${PIP_ARGS:-} denoising-diffusion-pytorch
  fi
  "$VENV/bin/python" scripts/pytorch_bench.py --config "$CONFIG" --batch-size "$BATCH" \
    --threads "$THREADS" --repeats "$REPEATS" --sample-repeats "$SAMPLE_REPEATS" >"$OUT/pytorch.json"
  echo "pytorch: $(cat "$OUT/pytorch.json")" >&2
fi

# --- ratios ---
python3 - "$OUT/ddpm-lab.json" "$OUT/pytorch.json" "$SKIP_TORCH" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
theirs = None if sys.argv[3] == "1" else json.load(open(sys.argv[2]))
rows = [
    (f"train step, batch {ours['batch_size']} (img/s)", "train_images_per_s", True),
    (f"forward, batch {ours['forward_batch']} (img/s)", "forward_images_per_s", True),
    (f"{ours['sample_steps']}-step sampling, batch {ours['sample_batch']} (s)", "sample_seconds", False),
    ("peak RSS (MiB)", "peak_rss_mb", False),
]
print(f"| {ours['config']} | ddpm-lab | PyTorch | ratio (ddpm-lab speed / PyTorch) |")
print("|---|---|---|---|")
for name, key, higher_is_better in rows:
    a = ours.get(key)
    b = theirs.get(key) if theirs else None
    if a is None:
        continue
    if b:
        r = a / b if higher_is_better else b / a
        print(f"| {name} | {a:.2f} | {b:.2f} | {r:.2f}× |")
    else:
        print(f"| {name} | {a:.2f} | – | – |")
PY
