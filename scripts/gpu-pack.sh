#!/usr/bin/env bash
# Packs what a visit to the GPU machine carries (scripts/README.md, "Carrying it to the GPU
# machine"), so that the visit's one run of scripts/gpu-check.sh finds everything:
#   gpu-bin/ddpm-lab.xz     the CUDA build, debug info stripped (symbol names kept for profilers)
#   gpu-bin/BUILT_FROM      the commit it was built from ("+changes" when the checkout had changes;
#                           for a BINARY given ready-made, $BUILT_FROM or "unknown (...)")
#   gpu-bin/einops-*.whl    the blog model's einops for PyTorch's side (that machine has no PyPI)
#   shared/fixtures/, shared/data/fashion-mnist/
#                           the PyTorch fixtures and the Fashion-MNIST IDX files, from SHARED
# Both folders are ignored through the clone's info/exclude (added if missing). It checks that
# they and the working tree fit the 64 MiB a run carries and prints the `carry` list.
#
# Usage: scripts/gpu-pack.sh [BINARY]
#   BINARY              a `--features cuda` release build to pack; without it the script builds
#                       one (scripts/cuda-toolkit.sh, then `cargo build --release --features
#                       cuda` into CARGO_TARGET_DIR, default target/cuda: long the first time)
# Environment:
#   SHARED=../shared    where the fixtures and the data come from (skipped with a note if
#                       missing: gpu-check.sh then runs without parity and on built-in data)
#   EINOPS=1            download the einops wheel with pip (0 skips it; a failed download is
#                       a note, not an error: the GPU machine's python may have einops)
#   CARRY_MIB=64        what a run may carry (the device tool's limit)
#   BUILT_FROM=commit   what a given BINARY was built from, for gpu-bin/BUILT_FROM
set -euo pipefail

if [ $# -gt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  awk 'NR > 1 { if (!/^#/) exit; print }' "$0"
  exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
# Paths given relative to where the script was called from.
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
SHARED=$(abs "${SHARED:-$REPO/../shared}")
bin=${1:+$(abs "$1")}
cd "$REPO"
EINOPS=${EINOPS:-1}
CARRY_LIMIT=$((${CARRY_MIB:-64} * 1024 * 1024))

fail() {
  echo "gpu-pack: $*" >&2
  exit 1
}

given=${bin:+1}
if [ -z "$bin" ]; then
  target=${CARGO_TARGET_DIR:-target/cuda}
  eval "$(scripts/cuda-toolkit.sh)"
  CARGO_TARGET_DIR=$target cargo build --release --features cuda
  bin=$target/release/ddpm-lab
fi
[ -f "$bin" ] && [ -x "$bin" ] || fail "no executable binary at $bin"

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for path in /gpu-bin/ /shared/; do
  grep -qxF "$path" "$exclude" 2>/dev/null || echo "$path" >>"$exclude"
done

mkdir -p gpu-bin
rm -f gpu-bin/ddpm-lab gpu-bin/ddpm-lab.gz gpu-bin/ddpm-lab.xz
strip --strip-debug -o gpu-bin/ddpm-lab "$bin"
xz -9 -T0 gpu-bin/ddpm-lab
# The commit the binary was built from: this checkout's, with "+changes" when it has changes
# (new files too); for a binary given ready-made, only the caller knows (BUILT_FROM=...).
commit=$(git rev-parse HEAD)
[ -z "$(git status --porcelain)" ] || commit="$commit+changes"
if [ -n "$given" ]; then
  commit=${BUILT_FROM:-"unknown (a given binary; checkout at $commit)"}
fi
echo "$commit" >gpu-bin/BUILT_FROM

if [ "$EINOPS" != 0 ]; then
  rm -f gpu-bin/einops-*.whl
  python3 -m pip download --quiet --no-deps --only-binary :all: einops -d gpu-bin >/dev/null 2>&1 ||
    echo "gpu-pack: note: einops not downloaded (no package index?); the GPU machine's python needs its own" >&2
fi

if [ -d "$SHARED/fixtures" ]; then
  mkdir -p shared/fixtures shared/data/fashion-mnist
  cp "$SHARED"/fixtures/*.safetensors shared/fixtures/
  if compgen -G "$SHARED/data/fashion-mnist/*.gz" >/dev/null; then
    cp "$SHARED"/data/fashion-mnist/*.gz shared/data/fashion-mnist/
  fi
else
  echo "gpu-pack: note: no $SHARED/fixtures: the visit runs without parity and on built-in data" >&2
fi

carry=(gpu-bin)
[ -d shared ] && carry+=(shared)
bytes=$(du -sb "${carry[@]}" | awk '{s += $1} END {print s}')
# The working tree travels too (tracked files and untracked ones git does not ignore).
tree=$(git ls-files -z --cached --others --exclude-standard |
  du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
bytes=$((bytes + ${tree:-0}))
[ "$bytes" -le "$CARRY_LIMIT" ] ||
  fail "${carry[*]} and the working tree hold $bytes bytes, over the $CARRY_LIMIT a run carries"
printf 'gpu-pack: %s MiB to carry, built from %s\n' "$((bytes / 1024 / 1024))" "$commit"
printf 'carry: ["%s"]\n' "$(IFS=,; echo "${carry[*]}" | sed 's/,/", "/g')"
echo 'then: scripts/gpu-check.sh "$OUT"'
