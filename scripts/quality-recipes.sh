#!/usr/bin/env bash
# Sample quality per training recipe at a training-time budget: trains each recipe for the
# number of steps the 2-core reference CPU trains in that many minutes (steps per minute
# measured there, below), then scores n samples with `ddpm-lab eval --json` and the recipe's own
# sampler (DDIM 50 steps for quick, DDPM for the blog's, or $SAMPLER, e.g. "--sampler ddim"),
# appending one JSON line per recipe and budget to the results file.
#
#   scripts/quality-recipes.sh [--minutes 2,5,10] [--n 1000] [--seed 0] [--out quality.jsonl] [RECIPE ...]
#   scripts/quality-recipes.sh --rates [--rate-steps 20] [RECIPE ...]
#
# --seed sets the training seed (initialisation, batches, timesteps, noise; sampling keeps eval's
# seed) so one recipe can be compared with another over several seeds.
#
# --rates measures the steps per minute of each RECIPE instead, side by side with quick-nosc
# (the quick preset without self-conditioning, the reference) on this machine (before and
# after, training seconds of the steps after the first three), and prints each recipe's PER_MIN
# on the reference scale: quick-nosc's 65 × (recipe / quick-nosc).
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
RATES=0
RATE_STEPS=20
SEED=0
picked=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --n) N=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --rates) RATES=1; shift ;;
    --rate-steps) RATE_STEPS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    *) picked+=("$1"); shift ;;
  esac
done

declare -A TRAIN PER_MIN
# The quick preset (the lab's CPU default): batch 32 and T = 500 since 2026-12-07, 2100 steps in
# 10 minutes. The recipes of the quick preset below are pinned to the T = 1000 of their time.
# Batch 32 trains 3.72× the steps per minute of batch 128 (two interleaved runs of 30 steps
# each on the 2-core Intel Xeon, 2026-12-07: 120/401 and 106/440 steps per minute), so 57 × 3.72.
TRAIN[quick]="--preset quick"
PER_MIN[quick]=212
# The quick preset at T = 1000, as it was on 2026-12-07 before T = 500 (T costs nothing per step).
TRAIN[quick-t1000]="--preset quick --timesteps 1000"
PER_MIN[quick-t1000]=212
# The quick preset at batch 128, as it was from 2026-12-03 to 2026-12-07: self-conditioned, 570
# steps in 10 minutes (0.878× the 65 steps per minute without, measured below).
TRAIN[quick-b128]="--preset quick --batch-size 128 --timesteps 1000"
PER_MIN[quick-b128]=57
# Other batch sizes of today's preset, from the same measurements: batch 64 1.72× batch 128's
# steps per minute (two runs of 30 steps), batch 16 6.45× (the interleaved runs above).
TRAIN[quick-sc-b64]="--preset quick --batch-size 64 --timesteps 1000"
PER_MIN[quick-sc-b64]=98
TRAIN[quick-sc-b16]="--preset quick --batch-size 16 --timesteps 1000"
PER_MIN[quick-sc-b16]=368
# The quick preset as it was before: without self-conditioning, 650 steps in 10 minutes. The
# levers below were measured against it, so they keep it.
TRAIN[quick-nosc]="--preset quick --no-self-condition --batch-size 128 --timesteps 1000"
PER_MIN[quick-nosc]=65
# The blog's recipe: its UNet, linear T=200, Huber, batch 128, Adam 1e-3 (462 steps in 35 min).
TRAIN[blog]="--preset blog"
PER_MIN[blog]=13.2
# The lab's CPU default before the quality work: tiny ConvNeXt UNet, batch 64, linear T=200,
# Huber, Adam 1e-3 (636 steps in 10 minutes).
TRAIN[old-tiny]="--model tiny --batch-size 64"
PER_MIN[old-tiny]=63.6
# Levers, one at a time against the quick preset of the time (batch 128, as are the recipes
# below: the preset's batch changed after they were measured).
TRAIN[quick-b64]="--preset quick --no-self-condition --batch-size 64 --timesteps 1000"
PER_MIN[quick-b64]=110
TRAIN[quick-eps]="--preset quick --no-self-condition --objective noise --batch-size 128 --timesteps 1000"
PER_MIN[quick-eps]=65

# Today's blog UNet (seed 001: two scale-shift ResNet blocks and linear attention per stage)
# at the quick preset's width and recipe, without and with self-conditioning, and
# self-conditioning on the quick preset's own UNet (now the quick preset itself). Steps per
# minute measured side by side with quick-nosc (then called quick) by `--rates` (two runs of 20 and 30 steps on the 2-core Intel Xeon, 2026-12-03; quick
# itself moved between 59 and 102 steps/min there, so the ratios, not the rates, carry over):
# today's UNet 0.335× quick in both runs, with self-conditioning 0.32–0.33×, self-conditioning
# on quick's UNet 0.77–1.05× over four runs, then 0.844× and 0.912× in two runs of 30 steps at
# load 0.5 (2026-12-03): 0.878× is the median of the six, 57.1 steps/min on the reference scale
# (quick's 57 above; `quick-sc` is kept as a name for the runs of that day).
TRAIN[quick-current]="--preset quick --no-self-condition --unet current --batch-size 128 --timesteps 1000"
PER_MIN[quick-current]=${PER_MIN_QUICK_CURRENT:-21.8}
TRAIN[quick-current-sc]="--preset quick --unet current --self-condition --batch-size 128 --timesteps 1000"
PER_MIN[quick-current-sc]=${PER_MIN_QUICK_CURRENT_SC:-21.2}
TRAIN[quick-sc]="--preset quick --self-condition --batch-size 128 --timesteps 1000"
PER_MIN[quick-sc]=${PER_MIN_QUICK_SC:-57.1}

[ ${#picked[@]} -gt 0 ] || picked=(quick blog old-tiny)
mkdir -p "$RUNS"
for r in "${picked[@]}"; do
  [ -n "${TRAIN[$r]+x}" ] || { echo "unknown recipe $r (known: ${!TRAIN[*]})" >&2; exit 2; }
done

# Steps per minute of training (not counting start-up) of recipe $1 over $RATE_STEPS steps.
rate() {
  local dir="$RUNS/rate-$1"
  rm -rf "$dir"
  # shellcheck disable=SC2086
  "$BIN" train --dataset "$DATA" ${TRAIN[$1]} --steps "$RATE_STEPS" --time-limit 24h \
    --checkpoint-every 0 --run-dir "$dir" --json \
    | python3 -c '
import json, sys
steps = [json.loads(l) for l in sys.stdin if l.startswith("{") and "\"loss\"" in l]
a, b = steps[2], steps[-1]
print(60 * (b["step"] - a["step"]) / (b["elapsed_s"] - a["elapsed_s"]))'
  rm -rf "$dir"
}

if [ "$RATES" = 1 ]; then
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores), $(uptime)" >&2
  before=$(rate quick-nosc)
  measured=()
  for r in "${picked[@]}"; do
    measured+=("$r=$(rate "$r")")
  done
  after=$(rate quick-nosc)
  python3 - "$before" "$after" "${PER_MIN[quick-nosc]}" "${measured[@]}" <<'PY'
import sys
before, after, ref = map(float, sys.argv[1:4])
quick = (before + after) / 2
print(f"quick-nosc here: {before:.1f} and {after:.1f} steps/min (reference scale: {ref:g})")
print("| recipe | steps/min here | / quick-nosc | PER_MIN (reference scale) |")
print("|---|---|---|---|")
for pair in sys.argv[4:]:
    name, v = pair.split("=")
    v = float(v)
    print(f"| {name} | {v:.1f} | {v / quick:.3f} | {ref * v / quick:.1f} |")
PY
  exit 0
fi

IFS=, read -r -a budgets <<< "$MINUTES"
for r in "${picked[@]}"; do
  for m in "${budgets[@]}"; do
    steps=$(python3 -c "print(round(${PER_MIN[$r]} * $m))")
    dir="$RUNS/$r-${m}min"
    [ "$SEED" = 0 ] || dir="$dir-seed$SEED"
    rm -rf "$dir"
    echo "== $r, $m min = $steps steps, seed $SEED: ${TRAIN[$r]}  ($(uptime))" >&2
    # shellcheck disable=SC2086
    "$BIN" train --dataset "$DATA" ${TRAIN[$r]} --steps "$steps" --seed "$SEED" --time-limit 24h \
      --checkpoint-every 0 --run-dir "$dir" --json > "$dir.train.jsonl"
    # shellcheck disable=SC2086
    "$BIN" eval --checkpoint "$dir" --dataset "$DATA" --n "$N" ${SAMPLER:-} --json \
      --out "$dir.samples.png" \
      | python3 -c 'import json,sys; j=json.load(sys.stdin); j.update(recipe=sys.argv[1], minutes=float(sys.argv[2]), train_steps=int(sys.argv[3]), seed=int(sys.argv[4])); print(json.dumps(j))' \
        "$r" "$m" "$steps" "$SEED" | tee -a "$OUT"
  done
done
