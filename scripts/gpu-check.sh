#!/usr/bin/env bash
# One visit to the GPU machine: checks and measures a cuda build of ddpm-lab there and writes
# every result into one JSON file, OUTDIR/gpu-check.json (logs go to OUTDIR/logs/).
#
# Usage: scripts/gpu-check.sh OUTDIR
#
# In order, each step under its own `timeout`, a failed step recorded and the next one run:
#   nvidia-smi → the binary (version, linked libraries) → every parameter's gradient on DEVICE
#   against the CPU (`check-device`, both UNets, then the blog's at CHECK_LARGE_BATCH; should the
#   first fail with ddpm-lab's CUDA setup and pass with CUDA's own, the rest runs with CUDA's own;
#   should it, or the large one alone, fail and pass without ddpm-lab's kernels, the ones that
#   fail alone are left out of the rest) → parity with the PyTorch fixtures (`forward` on
#   forward_case and on q_sample_case's x_t) → a training smoke run stopped with Ctrl-C after
#   TRAIN_SECONDS (the loss must fall) → its checkpoint sampled with DDIM and DDPM on DEVICE and on
#   the CPU with the same seed (the same images up to rounding) → training resumed on the CPU for 2
#   steps from that checkpoint, then sampled on DEVICE again → `ddpm-lab bench --json` and the same
#   workloads in PyTorch (scripts/pytorch_bench.py), strict float32, then both with TF32 (`--tf32`);
#   then, optional (not part of the report's `ok`), the gradients and the training and forward
#   times with each other conv algorithm (CONV_ALGOS, cuDNN's first), the training and forward
#   times with each CUDA device setting undone in turn (CUDA_AB), training with candle's own
#   backward pass (BACKWARD_AB), ddpm-lab with candle's stock ops (the A/B of
#   ops::device_conv), with each of its CUDA kernels switched off in turn (KERNEL_AB), `nsys`
#   summaries and `ncu` kernel times of its training step, and `ncu` kernel times of PyTorch's.
#   While each benchmark runs, nvidia-smi reads the GPU's used memory 10 times a second (peak over
#   the idle reading). The whole run stays under TOTAL_SECONDS.
#
#   DEVICE=cuda         device for every step (DEVICE=cpu tests the script on any machine)
#   DDPM_LAB=path       the binary (default: gpu-bin/ddpm-lab, else gpu-bin/ddpm-lab.gz or .xz
#                       unpacked, else target/cuda/release/ddpm-lab, else target/release/ddpm-lab;
#                       scripts/gpu-pack.sh packs it with gpu-bin/BUILT_FROM, whose commit the
#                       report gives as `built_from`; how to build and carry it: scripts/README.md)
#   SHARED=dir          the shared folder with fixtures/ and data/ (default: ../shared, else
#                       ./shared: only a shared/ inside the checkout travels to the GPU machine)
#   PYTHON=python3      python for the helpers and for PyTorch (needs torch, and einops or
#                       gpu-bin/einops-*.whl, for the last step)
#   BENCH_ARGS="..."    bench flags for both programs (default: training at batch 128, forward
#                       and 200-step sampling at batch 256, the blog's model)
#   TF32=1              also run both benchmarks with TF32 (TF32=0 skips them)
#   BENCH_STOCK=1       also time ddpm-lab's training and forward pass with candle's stock ops
#                       (`bench --stock-ops`: no ops::device_conv; BENCH_STOCK=0 skips it)
#   CUDA_AB="pool=release stream=per-thread"
#                       then, for each NAME=VALUE listed, ddpm-lab's training and forward pass
#                       with DDPM_LAB_CUDA_<NAME>=VALUE (CUDA's memory pool giving freed memory
#                       back at each sync; candle's per-thread stream with cudarc's events per
#                       allocation), to set against ddpm-lab's defaults (`cuda_setup_gain`);
#                       empty skips it
#   CONV_ALGOS="cudnn auto implicit implicit-fwd implicit-m32 implicit-m64"
#                       then, for each conv algorithm listed (DDPM_LAB_CONV_ALGO; the default is
#                       im2col), `check-device` with it, then ddpm-lab's training and forward
#                       pass with each (`conv_algo_gain`: over im2col; `cudnn` and `auto` also
#                       sample, as `bench` does, for `conv_algo_over_pytorch`, `cudnn` runs
#                       again with TF32 when TF32=1 (`cudnn_tf32` there), and `auto` gives
#                       each conv shape's timings: `conv_tuning`); empty skips it
#   NCU_CONV_ALGO=cudnn the conv algorithm of the last Nsight Compute profile (see NCU);
#                       empty skips that profile
#   KERNEL_AB="conv bias softmax linear_attention gelu depthwise depthwise_bias multi_tensor"
#                       then, for each of ddpm-lab's CUDA kernels listed, ddpm-lab's training
#                       and forward pass with that one switched off (DDPM_LAB_CUDA_KERNELS=-name,
#                       which leaves out the kernels that need it too: -depthwise times both
#                       depthwise kernels; `own_kernel_gain` in the report); empty skips it
#   KERNEL_NAMES="conv bias softmax linear_attention gelu depthwise depthwise_bias group_norm
#                       multi_tensor"
#                       the kernels checked one at a time when the first check fails
#                       (`kernels_left_out` in the report: those that failed alone), each with
#                       the kernel it needs (KERNEL_NEEDS below: a kernel that runs another's
#                       is off while that one is)
#   CHECK_LARGE_BATCH=256  the batch of the last gradient check (the benchmarks' largest);
#                       empty skips it
#   BACKWARD_AB=1       also time the training step with candle's own backward pass
#                       (DDPM_LAB_BACKWARD=plain), its speed and peak memory against
#                       ddpm-lab's releasing one (`backward_release_gain`; 0 skips it)
#   NSYS=1              last, if time is left and `nsys` is on PATH: Nsight Systems' kernel and
#                       CUDA API summaries of ddpm-lab's training step (NSYS=0 skips it)
#   NCU=1               then, likewise with `ncu` (Nsight Compute): the GPU time of each kernel
#                       of one training step, summed by kernel, of ddpm-lab and then of PyTorch,
#                       then of ddpm-lab with NCU_CONV_ALGO (NCU=0 skips them)
#   TRAIN_ARGS="..."    extra train flags (default: --batch-size 128, the blog's model)
#   TRAIN_SECONDS=30  TOTAL_SECONDS=470  PARITY_TOL=1e-4
#   CUDA_LIB_DIRS=a:b   where libcublas/libcurand/libnvrtc are (default: the nvidia/*/lib folders
#                       of PYTHON's site-packages, i.e. the libraries of the torch install)
#
# Tested without a GPU with:
#   DEVICE=cpu TRAIN_SECONDS=15 TRAIN_ARGS="--dim 16 --dim-mults 1,2 --batch-size 16" \
#   BENCH_ARGS="--config tiny --batch-size 8 --forward-batch 8 --sample-batch 2 --sample-steps 20" \
#   TF32=0 scripts/gpu-check.sh /tmp/gpu-check
set -uo pipefail

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  awk 'NR > 1 { if (!/^#/) exit; print }' "$0"
  exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" || exit 1
OUTDIR=$(cd "$1" && pwd)
mkdir -p "$OUTDIR/logs"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
HELPER="$PYTHON $REPO/scripts/gpu_check.py"
TRAIN_SECONDS=${TRAIN_SECONDS:-30}
TOTAL_SECONDS=${TOTAL_SECONDS:-470}
PARITY_TOL=${PARITY_TOL:-1e-4}
BENCH_ARGS=${BENCH_ARGS:---batch-size 128 --forward-batch 256 --sample-batch 256}
TF32=${TF32:-1}
BENCH_STOCK=${BENCH_STOCK:-1}
CUDA_AB=${CUDA_AB-pool=release stream=per-thread}
CONV_ALGOS=${CONV_ALGOS-cudnn auto implicit implicit-fwd implicit-m32 implicit-m64}
NCU_CONV_ALGO=${NCU_CONV_ALGO-cudnn}
KERNEL_AB=${KERNEL_AB-conv bias softmax linear_attention gelu depthwise depthwise_bias multi_tensor}
KERNEL_NAMES=${KERNEL_NAMES:-conv bias softmax linear_attention gelu depthwise depthwise_bias group_norm multi_tensor}
CHECK_LARGE_BATCH=${CHECK_LARGE_BATCH-256}
# Kernels that run another's kernels, each with the one it needs (ops::cuda::KERNEL_NEEDS; a test
# holds the two equal): `-depthwise` leaves the depthwise conv with a bias out too, and checking
# `depthwise_bias` alone means `DDPM_LAB_CUDA_KERNELS=depthwise,depthwise_bias`.
KERNEL_NEEDS="depthwise_bias:depthwise linear_attention:softmax"
BACKWARD_AB=${BACKWARD_AB:-1}
NSYS=${NSYS:-1}
NCU=${NCU:-1}
TRAIN_ARGS=${TRAIN_ARGS:---batch-size 128}
START=$(date +%s)
DEADLINE=$((START + TOTAL_SECONDS))

log() { echo "gpu-check: $*" >&2; }

case $CHECK_LARGE_BATCH in
  '' | *[!0-9]* | 0)
    [ -z "$CHECK_LARGE_BATCH" ] ||
      log "CHECK_LARGE_BATCH=$CHECK_LARGE_BATCH is not a batch size: the large check is skipped"
    CHECK_LARGE_BATCH= ;;
esac

# needs_of KERNEL: the kernel KERNEL needs (KERNEL_NEEDS), or nothing.
needs_of() {
  local pair
  for pair in $KERNEL_NEEDS; do
    [ "${pair%%:*}" != "$1" ] || echo "${pair#*:}"
  done
}

# The binary: the carried one first (gzipped, it fits the 64 MiB that travel).
BIN=${DDPM_LAB:-}
if [ -z "$BIN" ]; then
  if [ -x "$REPO/gpu-bin/ddpm-lab" ]; then
    BIN=$REPO/gpu-bin/ddpm-lab
  elif [ -f "$REPO/gpu-bin/ddpm-lab.gz" ] &&
    gzip -dc "$REPO/gpu-bin/ddpm-lab.gz" >"$WORK/ddpm-lab" && chmod +x "$WORK/ddpm-lab"; then
    BIN=$WORK/ddpm-lab
  elif [ -f "$REPO/gpu-bin/ddpm-lab.xz" ] &&
    $PYTHON -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$REPO/gpu-bin/ddpm-lab.xz" "$WORK/ddpm-lab" && chmod +x "$WORK/ddpm-lab"; then
    BIN=$WORK/ddpm-lab
  else
    for b in "$REPO/target/cuda/release/ddpm-lab" "$REPO/target/release/ddpm-lab"; do
      if [ -x "$b" ]; then BIN=$b; break; fi
    done
  fi
fi
# The commit a carried binary was built from (scripts/gpu-pack.sh writes it beside).
BUILT_FROM=
case "$BIN" in
  "$REPO"/gpu-bin/* | "$WORK"/*) BUILT_FROM=$(head -c 200 "$REPO/gpu-bin/BUILT_FROM" 2>/dev/null) ;;
esac

# The shared folder (fixtures, Fashion-MNIST): next to the repository on both machines, but
# look in the other usual places too.
if [ -z "${SHARED:-}" ]; then
  for s in "$REPO/../shared" "$REPO/shared" /work/shared; do
    if [ -d "$s/fixtures" ]; then SHARED=$(cd "$s" && pwd); break; fi
  done
fi
FIX=${SHARED:+$SHARED/fixtures}

# The cuda binary loads cuBLAS, cuRAND and NVRTC at run time: point it at the torch install's
# copies (CUDA 13, the same line as the build) unless told otherwise.
if [ "$DEVICE" != cpu ]; then
  CUDA_LIB_DIRS=${CUDA_LIB_DIRS:-$($PYTHON "$REPO/scripts/gpu_check.py" cuda-lib-dirs 2>/dev/null)}
  if [ -n "$CUDA_LIB_DIRS" ]; then
    export LD_LIBRARY_PATH="$CUDA_LIB_DIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi

# step NAME TIMEOUT CMD...: runs CMD with stdout/stderr/rc/seconds in $WORK/NAME.*, under
# `timeout` (never past the deadline; skipped when less than 5 s are left). Never fails.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - $(date +%s)))
  if [ "$left" -lt 5 ]; then
    echo "skipped: no time left of TOTAL_SECONDS=$TOTAL_SECONDS" >"$WORK/$name.skipped"
    log "$name skipped (out of time)"
    return 0
  fi
  [ "$limit" -le "$left" ] || limit=$left
  log "$name (at most ${limit}s): $*"
  printf '%s\n' "$*" >"$WORK/$name.cmd"
  local t0 t1 rc
  t0=$(date +%s%N)
  timeout -k 10 "$limit" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null
  rc=$?
  t1=$(date +%s%N)
  echo "$rc" >"$WORK/$name.rc"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }' >"$WORK/$name.secs"
  cp "$WORK/$name.out" "$OUTDIR/logs/$name.out" 2>/dev/null
  cp "$WORK/$name.err" "$OUTDIR/logs/$name.err" 2>/dev/null
  log "$name: rc=$rc in $(cat "$WORK/$name.secs")s"
}

# polled NAME TIMEOUT CMD...: `step`, with the GPU's used memory (MiB) read by nvidia-smi every
# 100 ms into $WORK/NAME.gpumem while it runs (the first reading is the idle one).
polled() {
  local name=$1 poller=
  if [ "$DEVICE" != cpu ] && command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 \
      >"$WORK/$name.gpumem" 2>/dev/null &
    poller=$!
    sleep 0.3
  fi
  step "$@"
  if [ -n "$poller" ]; then
    kill "$poller" 2>/dev/null
    wait "$poller" 2>/dev/null
  fi
}

# missing NAME WHY: records a step that cannot run (rc 127) without aborting.
missing() {
  echo "$2" >"$WORK/$1.err"
  : >"$WORK/$1.out"
  echo 127 >"$WORK/$1.rc"
  echo 0 >"$WORK/$1.secs"
  log "$1: $2"
}

# 1. The machine.
if command -v nvidia-smi >/dev/null 2>&1; then
  step nvidia_smi 20 nvidia-smi
else
  missing nvidia_smi "nvidia-smi not found"
fi

# 2. The binary: does it start, and what does it link (no libcuda with dynamic loading)?
if [ -n "$BIN" ]; then
  step binary 10 bash -c 'set -e; "$1" --version; ls -l "$1"; ldd "$1" || true' _ "$BIN"
else
  missing binary "no ddpm-lab binary: set DDPM_LAB or carry gpu-bin/ddpm-lab"
fi

# 3. Gradients: the blog UNet's output and every parameter's gradient on DEVICE against the
# CPU (`ddpm-lab check-device`: same weights, same inputs), then the same for today's UNet,
# then the blog UNet again at the benchmarks' batch (CHECK_LARGE_BATCH: the kernels' paths for
# large sizes, such as the conv's chunks and grids of several waves).
# The first GPU work of the run: should it fail with ddpm-lab's CUDA setup (src/device.rs: one
# shared stream without cudarc's events, a pool that keeps freed memory) and pass with CUDA's
# and candle's own, the rest of the run takes theirs (`cuda_setup_fallback` in the report).
# (On the CPU the two variables change nothing, so a failure there stays a failure.)
SETUP_FALLBACK=0
KERNELS_LEFT_OUT=

# passed NAME: whether step NAME ran and exited 0.
passed() { [ "$(cat "$WORK/$1.rc" 2>/dev/null)" = 0 ]; }

# search_kernels SUFFIX LIMIT ARGS...: after a failed check-device ARGS, finds ddpm-lab's
# kernels at fault, each check a step named check_deviceSUFFIX_... of at most LIMIT seconds.
# With none of them first; should that pass, each kernel alone (with the kernel it needs), and
# those that fail alone are left out for the rest of the run (all of them, should each pass
# alone), with those an earlier search left out, checked once more together
# (`kernels_left_out` in the report). Each small check takes about a second on the GPU.
search_kernels() {
  local suffix=$1 limit=$2
  shift 2
  step "check_device${suffix}_kernels_none" "$limit" env DDPM_LAB_CUDA_KERNELS=none "$BIN" \
    check-device --device "$DEVICE" --json "$@"
  passed "check_device${suffix}_kernels_none" || return 0
  local k needs found=
  for k in $KERNEL_NAMES; do
    needs=$(needs_of "$k")
    # A kernel whose needed one failed is off with it: nothing to check.
    case "$found," in *",-$needs,"*) [ -z "$needs" ] || continue ;; esac
    step "check_device${suffix}_kernel_$k" "$limit" \
      env DDPM_LAB_CUDA_KERNELS="${needs:+$needs,}$k" "$BIN" check-device --device "$DEVICE" \
      --json "$@"
    passed "check_device${suffix}_kernel_$k" || found="$found,-$k"
  done
  if [ -z "$found" ]; then
    KERNELS_LEFT_OUT=none
  else
    KERNELS_LEFT_OUT="${KERNELS_LEFT_OUT:+$KERNELS_LEFT_OUT}$found"
    KERNELS_LEFT_OUT=${KERNELS_LEFT_OUT#,}
  fi
  export DDPM_LAB_CUDA_KERNELS=$KERNELS_LEFT_OUT
  log "check-device passes without ddpm-lab's kernels: the run goes on with DDPM_LAB_CUDA_KERNELS=$DDPM_LAB_CUDA_KERNELS"
  step "check_device${suffix}_kernels_left_out" "$limit" "$BIN" check-device --device "$DEVICE" \
    --json "$@"
}

if [ -n "$BIN" ]; then
  step check_device 60 "$BIN" check-device --device "$DEVICE" --json
  if ! passed check_device; then
    step check_device_cuda_setup_undone 60 env DDPM_LAB_CUDA_STREAM=per-thread \
      DDPM_LAB_CUDA_POOL=release "$BIN" check-device --device "$DEVICE" --json
    if passed check_device_cuda_setup_undone; then
      export DDPM_LAB_CUDA_STREAM=per-thread DDPM_LAB_CUDA_POOL=release
      SETUP_FALLBACK=1
      log "check-device failed with ddpm-lab's CUDA setup and passed with CUDA's own: using it"
    else
      search_kernels "" 120
    fi
  fi
  step check_device_current 60 "$BIN" check-device --device "$DEVICE" --json --unet current
  if [ -n "$CHECK_LARGE_BATCH" ]; then
    step check_device_large 120 "$BIN" check-device --device "$DEVICE" --json \
      --batch "$CHECK_LARGE_BATCH"
    # Right at a few images, wrong at many: the kernels' large-size paths (also after the
    # first check's search, which may have left out another kernel). Each of the search's
    # checks gets at most twice the large check's time: it is the same check.
    if ! passed check_device_large && [ "$KERNELS_LEFT_OUT" != none ]; then
      search_kernels _large "$(awk -v s="$(cat "$WORK/check_device_large.secs")" \
        'BEGIN { l = int(2 * s) + 15; print (l > 120 ? 120 : l) }')" --batch "$CHECK_LARGE_BATCH"
    fi
  fi
else
  missing check_device "no ddpm-lab binary"
  missing check_device_current "no ddpm-lab binary"
fi

# 3b. Parity with the PyTorch fixtures: the UNet at init weights on forward_case's x and t, and
# on q_sample_case's x_t and t (its eps_convnext).
if [ -n "$BIN" ] && [ -n "$FIX" ] && [ -f "$FIX/forward_case.safetensors" ]; then
  step parity_forward 60 "$BIN" forward --device "$DEVICE" \
    --weights "$FIX/unet_convnext_init.safetensors" --input "$FIX/forward_case.safetensors" \
    --out "$WORK/parity_forward.safetensors"
  if $HELPER take "$FIX/q_sample_case.safetensors" "$WORK/q_sample_input.safetensors" x=x_t t=t \
    2>"$WORK/take.err"; then
    step parity_q_sample 60 "$BIN" forward --device "$DEVICE" \
      --weights "$FIX/unet_convnext_init.safetensors" --input "$WORK/q_sample_input.safetensors" \
      --out "$WORK/parity_q_sample.safetensors"
  else
    missing parity_q_sample "cannot build the input from q_sample_case: $(cat "$WORK/take.err")"
  fi
else
  missing parity_forward "no binary or no fixtures (SHARED=${SHARED:-not found})"
  missing parity_q_sample "no binary or no fixtures (SHARED=${SHARED:-not found})"
fi

# 4. Training smoke run: real Fashion-MNIST from the shared folder when there (no network on
# the GPU machine), else the built-in shapes; stopped with SIGINT (the lab's Ctrl-C: checkpoint
# and exit) after TRAIN_SECONDS.
DATASET=shapes
[ -n "${SHARED:-}" ] && [ -f "$SHARED/data/fashion-mnist/train-images-idx3-ubyte.gz" ] &&
  DATASET=$SHARED/data/fashion-mnist
if [ -n "$BIN" ]; then
  # --foreground: timeout otherwise sends SIGINT to the run and then again to its own process
  # group, and a second signal tells train to quit at once without its checkpoint.
  # shellcheck disable=SC2086
  step train $((TRAIN_SECONDS + 30)) bash -c \
    'exec timeout --foreground -s INT -k 20 "$1" "${@:2}"' _ "$TRAIN_SECONDS" \
    "$BIN" train --device "$DEVICE" --dataset "$DATASET" --steps 1000000 --json \
    --run-dir "$WORK/smoke-run" $TRAIN_ARGS
else
  missing train "no ddpm-lab binary"
fi

# 5. Sampling, and the checkpoint across devices: the smoke run's checkpoint (written on
# DEVICE) sampled on DEVICE and on the CPU with the same seed, by DDIM (deterministic) and by
# DDPM (its noise comes from the same seeded generator on both); then 2 more training steps on
# the CPU from that checkpoint, and the CPU's checkpoint sampled on DEVICE.
RUN=$WORK/smoke-run
if [ -n "$BIN" ] && [ -f "$RUN/latest" ]; then
  for sampler in ddim ddpm; do
    for side in device cpu; do
      name=sample_${sampler}_$side
      where=$DEVICE
      [ "$side" = cpu ] && where=cpu
      step "$name" 90 "$BIN" sample --checkpoint "$RUN" --device "$where" --sampler "$sampler" \
        --n 16 --seed 7 --json --out "$WORK/$name.png"
    done
  done
  saved=$(sed 's/[^0-9]//g; s/^0*//' "$RUN/latest")
  step resume_cpu 120 "$BIN" train --resume "$RUN" --device cpu --steps "$((${saved:-0} + 2))" \
    --json
  step sample_after_cpu 60 "$BIN" sample --checkpoint "$RUN" --device "$DEVICE" --sampler ddim \
    --steps 20 --n 4 --seed 7 --json --out "$WORK/sample_after_cpu.png"
  cp "$WORK"/sample_*.png "$OUTDIR/" 2>/dev/null
else
  for name in sample_ddim_device sample_ddim_cpu sample_ddpm_device sample_ddpm_cpu resume_cpu \
    sample_after_cpu; do
    missing "$name" "no checkpoint from the training smoke run"
  done
fi

# 6. ddpm-lab bench (strict float32).
if [ -n "$BIN" ]; then
  # shellcheck disable=SC2086
  polled bench 150 "$BIN" bench --device "$DEVICE" --json $BENCH_ARGS
else
  missing bench "no ddpm-lab binary"
fi

# 7. PyTorch on the same workloads and device (the speed reference). The blog's model needs
# einops, which the GPU machine's python may lack and cannot download: a pure-Python wheel
# carried in gpu-bin/ (see scripts/README.md) is importable straight from PYTHONPATH.
if ! $PYTHON -c 'import einops' 2>/dev/null; then
  for w in "$REPO"/gpu-bin/einops-*.whl; do
    if [ -f "$w" ]; then
      export PYTHONPATH="$w${PYTHONPATH:+:$PYTHONPATH}"
      break
    fi
  done
fi
# Importing torch takes seconds: asked once for both PyTorch steps.
HAVE_TORCH=0
$PYTHON -c 'import torch, einops' 2>/dev/null && HAVE_TORCH=1
if [ "$HAVE_TORCH" = 1 ]; then
  # shellcheck disable=SC2086
  polled pytorch_bench 150 $PYTHON "$REPO/scripts/pytorch_bench.py" --device "$DEVICE" \
    --threads "$(nproc)" --tf32 off $BENCH_ARGS
else
  missing pytorch_bench "$PYTHON cannot import torch and einops"
fi

# 8. Both again with TF32 (CUDA only).
if [ "$TF32" = 1 ] && [ "$DEVICE" != cpu ]; then
  if [ -n "$BIN" ]; then
    # shellcheck disable=SC2086
    polled bench_tf32 150 "$BIN" bench --device "$DEVICE" --json --tf32 $BENCH_ARGS
  else
    missing bench_tf32 "no ddpm-lab binary"
  fi
  if [ "$HAVE_TORCH" = 1 ]; then
    # shellcheck disable=SC2086
    polled pytorch_bench_tf32 150 $PYTHON "$REPO/scripts/pytorch_bench.py" --device "$DEVICE" \
      --threads "$(nproc)" --tf32 on $BENCH_ARGS
  else
    missing pytorch_bench_tf32 "$PYTHON cannot import torch and einops"
  fi
fi

# 8b. The CUDA conv's other algorithms (DDPM_LAB_CONV_ALGO): the gradients through each
# against the CPU's, then training and forward with each, to set against `bench` (im2col);
# optional, like 9, and first of the optional steps: cuDNN's convs are the figure a visit is
# most for.
if [ -n "$CONV_ALGOS" ] && [ -n "$BIN" ]; then
  # cuDNN explains its own errors on stderr (the step's log) should a call fail.
  algo_env() {
    echo "DDPM_LAB_CONV_ALGO=$1"
    if [ "$1" = cudnn ]; then
      echo CUDNN_LOGLEVEL_DBG=1
      echo CUDNN_LOGERR_DBG=1
      echo CUDNN_LOGDEST_DBG=stderr
    fi
  }
  # The gradients first: check-device's small batch takes the channel slices, and each
  # algorithm its own kernels (the channel tile, the weight gradient or not).
  for a in $CONV_ALGOS; do
    # shellcheck disable=SC2046
    step "check_device_conv_$a" 60 env $(algo_env "$a") "$BIN" \
      check-device --device "$DEVICE" --json
  done
  for a in $CONV_ALGOS; do
    # `cudnn` and `auto` run the whole benchmark, sampling too, as the `bench` step does: should
    # one win, the visit has every figure of README's table with it.
    only="--only train,forward --repeats 2"
    case $a in cudnn | auto) only="" ;; esac
    # shellcheck disable=SC2086,SC2046
    polled "bench_conv_$a" 150 env $(algo_env "$a") "$BIN" bench \
      --device "$DEVICE" --json $BENCH_ARGS $only
  done
  # cuDNN with TF32 too (its default math, tensor cores), beside PyTorch's TF32 run.
  case " $CONV_ALGOS " in
    *" cudnn "*)
      if [ "$TF32" = 1 ] && [ "$DEVICE" != cpu ]; then
        # shellcheck disable=SC2086,SC2046
        polled bench_conv_cudnn_tf32 150 env $(algo_env cudnn) "$BIN" bench \
          --device "$DEVICE" --json $BENCH_ARGS --tf32 --only train,forward --repeats 2
      fi
      ;;
  esac
fi

# 8a. ddpm-lab's CUDA device settings (src/device.rs), each undone in turn: training and
# forward with that setting as candle and CUDA have it, to set against `bench`; optional, like 9.
if [ -n "$CUDA_AB" ] && [ -n "$BIN" ]; then
  for setting in $CUDA_AB; do
    name=${setting%%=*}
    value=${setting#*=}
    var=DDPM_LAB_CUDA_$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
    # shellcheck disable=SC2086
    polled "bench_cuda_$(printf '%s' "$setting" | tr '=-' '__')" 120 env "$var=$value" "$BIN" \
      bench --device "$DEVICE" --json $BENCH_ARGS --only train,forward --repeats 2
  done
fi

# 8a'. Training's backward pass as candle has it (DDPM_LAB_BACKWARD=plain: every activation held
# to the pass's end) against ddpm-lab's, which releases each once the pass is done with it:
# the step's time and peak GPU memory (`backward_release_gain`); optional, like 9.
if [ "$BACKWARD_AB" = 1 ] && [ -n "$BIN" ]; then
  # shellcheck disable=SC2086
  polled bench_backward_plain 120 env DDPM_LAB_BACKWARD=plain "$BIN" bench --device "$DEVICE" \
    --json $BENCH_ARGS --only train --repeats 2
fi

# 9. ddpm-lab again with candle's stock ops (`--stock-ops`; on a GPU: the convs' backward
# through candle's conv-transpose kernels and the depthwise convs one per channel, instead of
# ops::device_conv), training and forward only: whether the device convs pay, in the same visit;
# optional (it does not decide the report's `ok`), so it runs after the comparisons with PyTorch.
if [ "$BENCH_STOCK" = 1 ] && [ -n "$BIN" ]; then
  # Fixed flags after BENCH_ARGS: a repeated flag takes its last value.
  # shellcheck disable=SC2086
  polled bench_stock 150 "$BIN" bench --device "$DEVICE" --json $BENCH_ARGS --stock-ops \
    --only train,forward --repeats 2
fi

# 9b. What each of ddpm-lab's CUDA kernels is worth, in the same visit: training and forward
# with that kernel switched off (its fallback: candle's ops or ops::device_conv); optional.
if [ -n "$KERNEL_AB" ] && [ -n "$BIN" ]; then
  for k in $KERNEL_AB; do
    # The kernels a failed check left out (step 3) stay out; one of them has nothing to time.
    case ",$KERNELS_LEFT_OUT," in *",-$k,"* | ,none,) continue ;; esac
    off="-$k"
    [ -n "$KERNELS_LEFT_OUT" ] && off="$KERNELS_LEFT_OUT,-$k"
    # shellcheck disable=SC2086
    polled "bench_without_$k" 120 env DDPM_LAB_CUDA_KERNELS="$off" "$BIN" bench \
      --device "$DEVICE" --json $BENCH_ARGS --only train,forward --repeats 2
  done
fi

# 10. Where the GPU's time goes in ddpm-lab's training step (optional, like 9: when Nsight
# Systems is there and time is left): kernel and CUDA API summaries of one warm-up and two
# timed steps (`nsys stats` report names changed in 2023.2; the old ones are tried after the
# new).
if [ "$NSYS" = 1 ] && [ -n "$BIN" ] && command -v nsys >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  step nsys_train 120 bash -c '
    set -e
    nsys profile -t cuda -s none --cpuctxsw none -f true -o "$1/nsys-train" \
      "$2" bench --device "$3" --json "${@:4}" --only train --warmup 1 --repeats 2 >/dev/null
    found=0
    for pair in "cuda_gpu_kern_sum gpukernsum" "cuda_api_sum cudaapisum"; do
      for r in $pair; do
        out=$(nsys stats -q -f csv -r "$r" "$1/nsys-train.nsys-rep" 2>/dev/null) || continue
        [ -n "$out" ] || continue
        echo "## $r (first 40 rows)"
        printf "%s\n" "$out" | head -41
        found=$((found + 1))
        break
      done
    done
    [ "$found" = 2 ]' _ "$WORK" "$BIN" "$DEVICE" $BENCH_ARGS
  # The report itself, for a closer look later (the summaries are in the JSON either way).
  cp "$WORK/nsys-train.nsys-rep" "$OUTDIR/logs/" 2>/dev/null
fi

# 11. Nsight Compute's GPU time per kernel for one training step (optional; where nsys is
# missing, as on the H200 machine, this is the profile). `--clock-control none` leaves the GPU's
# clocks as they are; one metric keeps it to one replay per kernel (about 40 s on the H200).
if [ "$NCU" = 1 ] && [ -n "$BIN" ] && command -v ncu >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  step ncu_train 120 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
    "$BIN" bench --device "$DEVICE" --json $BENCH_ARGS --only train --warmup 0 --repeats 1
fi
# 12. The same for PyTorch's training step: which kernels cuDNN and cuBLAS run for the same
# model, and how long each takes, the target per op (optional, like 11).
if [ "$NCU" = 1 ] && [ "$HAVE_TORCH" = 1 ] && command -v ncu >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  step ncu_torch_train 150 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
    $PYTHON "$REPO/scripts/pytorch_bench.py" --device "$DEVICE" --threads "$(nproc)" \
    --tf32 off $BENCH_ARGS --only train --warmup 0 --repeats 1
fi

# 13. And ddpm-lab's training step again with NCU_CONV_ALGO (optional, like 11): with cuDNN's
# convs (the default), what the rest of the step costs beside PyTorch's profile of step 12;
# with NCU_CONV_ALGO=implicit, the implicit kernels' times per launch, to tune them by (not
# `auto`: with no warm-up step, its timing runs would be in the profile).
if [ "$NCU" = 1 ] && [ -n "$NCU_CONV_ALGO" ] && [ -n "$BIN" ] && command -v ncu >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  step ncu_train_conv_algo 120 env DDPM_LAB_CONV_ALGO="$NCU_CONV_ALGO" ncu --clock-control none \
    --metrics gpu__time_duration.sum --csv \
    "$BIN" bench --device "$DEVICE" --json $BENCH_ARGS --only train --warmup 0 --repeats 1
fi

# The report: what this run was, then every step's result.
GC_STARTED=$(date -u -d "@$START" +%Y-%m-%dT%H:%M:%SZ) GC_DEVICE=$DEVICE GC_BINARY=$BIN \
  GC_BUILT_FROM=$BUILT_FROM \
  GC_SHARED=${SHARED:-} GC_FIXTURES=${FIX:-} GC_DATASET=$DATASET GC_LD=${LD_LIBRARY_PATH:-} \
  GC_PYTHONPATH=${PYTHONPATH:-} \
  GC_TRAIN_SECONDS=$TRAIN_SECONDS GC_TRAIN_ARGS=$TRAIN_ARGS GC_BENCH_ARGS=$BENCH_ARGS GC_TF32=$TF32 \
  GC_BENCH_STOCK=$BENCH_STOCK GC_KERNEL_AB=$KERNEL_AB GC_KERNEL_NAMES=$KERNEL_NAMES GC_CHECK_LARGE_BATCH=$CHECK_LARGE_BATCH GC_BACKWARD_AB=$BACKWARD_AB GC_CONV_ALGOS=$CONV_ALGOS \
  GC_CUDA_AB=$CUDA_AB GC_SETUP_FALLBACK=$SETUP_FALLBACK GC_KERNELS_LEFT_OUT=$KERNELS_LEFT_OUT \
  GC_TOL=$PARITY_TOL GC_TOTAL=$(($(date +%s) - START)) \
  $PYTHON -c '
import json, os, sys
e = os.environ
json.dump({
    "started": e["GC_STARTED"], "device": e["GC_DEVICE"], "binary": e["GC_BINARY"],
    "built_from": e["GC_BUILT_FROM"].strip() or None,
    "shared": e["GC_SHARED"], "fixtures": e["GC_FIXTURES"], "dataset": e["GC_DATASET"],
    "ld_library_path": e["GC_LD"], "pythonpath": e["GC_PYTHONPATH"],
    "train_seconds": float(e["GC_TRAIN_SECONDS"]),
    "train_args": e["GC_TRAIN_ARGS"], "bench_args": e["GC_BENCH_ARGS"],
    "tf32_runs": e["GC_TF32"] == "1" and e["GC_DEVICE"] != "cpu",
    "stock_run": e["GC_BENCH_STOCK"] == "1",
    "kernel_ab": e["GC_KERNEL_AB"].split(),
    "kernel_names": e["GC_KERNEL_NAMES"].split(),
    "check_large_batch": int(e["GC_CHECK_LARGE_BATCH"] or 0) or None,
    "backward_ab": e["GC_BACKWARD_AB"] == "1",
    "cuda_ab": e["GC_CUDA_AB"].split(),
    "cuda_setup_fallback": e["GC_SETUP_FALLBACK"] == "1",
    "kernels_left_out": [k.lstrip("-") for k in e["GC_KERNELS_LEFT_OUT"].split(",") if k]
    if e["GC_KERNELS_LEFT_OUT"] != "none" else e["GC_KERNEL_NAMES"].split(),
    "conv_algos": e["GC_CONV_ALGOS"].split(),
    "parity_tolerance": float(e["GC_TOL"]), "seconds_before_report": int(e["GC_TOTAL"]),
    "cpus": os.cpu_count(),
}, open(sys.argv[1], "w"))
' "$WORK/info.json"
$HELPER report "$WORK" "$OUTDIR/gpu-check.json"
