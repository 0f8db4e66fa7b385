#!/usr/bin/env bash
# Sample quality per training recipe at a training-time budget: trains each recipe for the
# number of steps the 2-core reference CPU trains in that many minutes (steps per minute
# measured there, below), then scores n samples with `ddpm-lab eval --json` and the recipe's own
# sampler (DDIM 50 steps for quick, DDPM for the blog's, or $SAMPLER, e.g. "--sampler ddim"),
# appending one JSON line per recipe and budget to the results file.
#
#   scripts/quality-recipes.sh [--minutes 2,5,10] [--n 1000] [--out quality.jsonl] [RECIPE ...]
#
# Budgets are step counts, not wall-clock limits, so a result does not depend on what else the
# machine runs (the lab's `budget` and `train --time-limit` stop on the clock instead). RECIPE
# names are the keys of the table below (default: quick blog old-tiny). Data: $DATA (default
# ../shared/data/fashion-mnist, real Fashion-MNIST images; the Hub name fashion_mnist works too).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=10
N=1000
OUT=quality-results.jsonl
DATA=${DATA:-../shared/data/fashion-mnist}
BIN=${BIN:-target/release/ddpm-lab}
RUNS=${RUNS:-runs/quality}
picked=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --n) N=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) picked+=("$1"); shift ;;
  esac
done

declare -A TRAIN PER_MIN
# The quick preset (the lab's CPU default): 650 steps of batch 128 in 10 minutes.
TRAIN[quick]="--preset quick"
PER_MIN[quick]=65
# The blog's recipe: its UNet, linear T=200, Huber, batch 128, Adam 1e-3 (462 steps in 35 min).
TRAIN[blog]="--preset blog"
PER_MIN[blog]=13.2
# The lab's CPU default before the quality work: tiny ConvNeXt UNet, batch 64, linear T=200,
# Huber, Adam 1e-3 (636 steps in 10 minutes).
TRAIN[old-tiny]="--model tiny --batch-size 64"
PER_MIN[old-tiny]=63.6
# Levers, one at a time against the quick preset.
TRAIN[quick-b64]="--preset quick --batch-size 64"
PER_MIN[quick-b64]=110
TRAIN[quick-eps]="--preset quick --objective noise"
PER_MIN[quick-eps]=65

# Today's blog UNet (seed 001: two scale-shift ResNet blocks and linear attention per stage)
# at the quick preset's width and recipe, without and with self-conditioning, and
# self-conditioning on the quick preset's own UNet. Steps per minute are ESTIMATES, not yet
# measured (today's UNet has two blocks and attention per stage; self-conditioning adds a
# no-grad forward on half the steps): before publishing a result, time each recipe beside
# quick in one run (`train --json` images_per_s) and pass 65 × that ratio in PER_MIN_*.
TRAIN[quick-current]="--preset quick --unet current"
PER_MIN[quick-current]=${PER_MIN_QUICK_CURRENT:-28}
TRAIN[quick-current-sc]="--preset quick --unet current --self-condition"
PER_MIN[quick-current-sc]=${PER_MIN_QUICK_CURRENT_SC:-24}
TRAIN[quick-sc]="--preset quick --self-condition"
PER_MIN[quick-sc]=${PER_MIN_QUICK_SC:-56}

[ ${#picked[@]} -gt 0 ] || picked=(quick blog old-tiny)
mkdir -p "$RUNS"
IFS=, read -r -a budgets <<< "$MINUTES"
for r in "${picked[@]}"; do
  [ -n "${TRAIN[$r]+x}" ] || { echo "unknown recipe $r (known: ${!TRAIN[*]})" >&2; exit 2; }
  for m in "${budgets[@]}"; do
    steps=$(python3 -c "print(round(${PER_MIN[$r]} * $m))")
    dir="$RUNS/$r-${m}min"
    rm -rf "$dir"
    echo "== $r, $m min = $steps steps: ${TRAIN[$r]}  ($(uptime))" >&2
    # shellcheck disable=SC2086
    "$BIN" train --dataset "$DATA" ${TRAIN[$r]} --steps "$steps" --time-limit 24h \
      --checkpoint-every 0 --run-dir "$dir" --json > "$dir.train.jsonl"
    # shellcheck disable=SC2086
    "$BIN" eval --checkpoint "$dir" --dataset "$DATA" --n "$N" ${SAMPLER:-} --json \
      --out "$dir.samples.png" \
      | python3 -c 'import json,sys; j=json.load(sys.stdin); j.update(recipe=sys.argv[1], minutes=float(sys.argv[2]), train_steps=int(sys.argv[3])); print(json.dumps(j))' \
        "$r" "$m" "$steps" | tee -a "$OUT"
  done
done
