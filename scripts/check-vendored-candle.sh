#!/usr/bin/env bash
# Proves that vendor/candle-core is candle-core 0.11.1 as published plus exactly the changes that
# vendor/candle-core/VENDORED.md documents, and that the build uses that copy and nothing else:
#
#  (a) the published .crate (checksum checked) is unpacked, the files VENDORED.md says are left
#      out are removed, every vendor/candle-core/*.patch is applied (each must be named in
#      VENDORED.md and apply exactly, no fuzz), VENDORED.md and the patches themselves are copied
#      in, and the result must equal vendor/candle-core file for file (`diff -r`);
#  (b) `cargo tree`, with the default features and with `--features cuda`, finds one candle-core:
#      0.11.1 at vendor/candle-core, and cargo does not warn that the [patch] entry was not used.
#
# Prints one line and exits 0 when all holds; otherwise exits 1 with a one-line reason on stderr.
# Takes about 2 s once the crate is cached (first run: one `cargo fetch` of the crate).
# Run from anywhere: scripts/check-vendored-candle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

NAME=candle-core
VERSION=0.11.1
# SHA-256 of the published candle-core-0.11.1.crate: the registry index's `cksum` for 0.11.1.
SHA256=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325
VENDORED=vendor/candle-core
# Files of the published crate that the vendored copy leaves out (VENDORED.md names each): its
# tests, benches and examples, the lockfile and original manifest that cargo ignores in a
# dependency, and the packaging record `.cargo_vcs_info.json`. (`.cargo-ok` is not in the
# .crate at all: cargo writes it when it unpacks into ~/.cargo/registry/src, which is why this
# script unpacks the .crate itself instead of reading that folder.)
LEFT_OUT=(benches examples tests Cargo.lock Cargo.toml.orig .cargo_vcs_info.json)
CACHE="${DDPM_LAB_CACHE:-$HOME/.cache/ddpm-lab}"
CRATE_FILE="$CACHE/$NAME-$VERSION.crate"
# The reconstructed tree is kept here after each run, so a mismatch can be read with diff -r.
EXPECTED="$CACHE/$NAME-$VERSION-expected"

fail() {
  echo "check-vendored-candle: FAIL: $*" >&2
  exit 1
}

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]; }

mkdir -p "$CACHE"

# --- (a) the vendored tree against the published crate ----------------------------------------

# The .crate: our cached copy, else cargo's download cache, else cargo downloads it. cargo is
# used as the registry's client (it follows this machine's cargo configuration, and checks the
# download against the index): a throwaway package depending on =0.11.1, with our Cargo.lock so
# that candle-core's own dependencies resolve to the versions the project already uses.
find_in_cargo_cache() {
  local f
  for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$NAME-$VERSION.crate"; do
    if sha_ok "$f"; then
      cp "$f" "$CRATE_FILE.tmp" && mv "$CRATE_FILE.tmp" "$CRATE_FILE"
      return 0
    fi
  done
  return 1
}
if ! sha_ok "$CRATE_FILE" && ! find_in_cargo_cache; then
  fetch_dir="$CACHE/$NAME-$VERSION-fetch"
  mkdir -p "$fetch_dir"
  cat >"$fetch_dir/Cargo.toml" <<EOF
[package]
name = "fetch-pristine-candle-core"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "lib.rs"

[dependencies]
$NAME = "=$VERSION"
EOF
  : >"$fetch_dir/lib.rs"
  cp Cargo.lock "$fetch_dir/Cargo.lock"
  host=$(rustc -vV | sed -n 's/^host: //p')
  if ! log=$(cd "$fetch_dir" && cargo fetch --target "$host" 2>&1); then
    fail "could not download $NAME $VERSION with cargo fetch: $(grep -m1 -i error <<<"$log" || tail -n1 <<<"$log")"
  fi
  find_in_cargo_cache || fail "cargo fetch left no $NAME-$VERSION.crate with SHA-256 $SHA256 in cargo's cache"
fi
sha_ok "$CRATE_FILE" || fail "$CRATE_FILE does not have the published SHA-256 $SHA256"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$CRATE_FILE" -C "$work"
pristine="$work/$NAME-$VERSION"
[ -f "$pristine/Cargo.toml" ] || fail "$CRATE_FILE did not unpack to $NAME-$VERSION/"

doc="$VENDORED/VENDORED.md"
[ -f "$doc" ] || fail "$doc is missing"
for p in "${LEFT_OUT[@]}"; do
  [ -e "$pristine/$p" ] || fail "the published crate has no $p, yet the script leaves it out (update LEFT_OUT)"
  grep -qF -- "\`$p\`" "$doc" || fail "$doc does not name \`$p\` among the files left out"
  rm -rf "${pristine:?}/$p"
done

shopt -s nullglob
patches=("$VENDORED"/*.patch)
shopt -u nullglob
[ ${#patches[@]} -gt 0 ] || fail "no $VENDORED/*.patch found"
for p in "${patches[@]}"; do
  base=$(basename "$p")
  grep -qF -- "$base" "$doc" || fail "$doc does not document the patch $base"
  # git apply (present wherever the repo was cloned) applies exactly: no fuzz, no offset guessing
  # beyond what the hunks state. The ceiling keeps it from finding a repository above $work.
  if ! err=$(cd "$pristine" && GIT_CEILING_DIRECTORIES="$work" git apply --whitespace=nowarn "$ROOT/$p" 2>&1); then
    fail "$base does not apply to the published $NAME $VERSION: $(head -n1 <<<"$err")"
  fi
  cp "$p" "$pristine/"
done
cp "$doc" "$pristine/"

rm -rf "$EXPECTED"
cp -r "$pristine" "$EXPECTED"
if ! diffs=$(diff -rq "$EXPECTED" "$VENDORED" 2>&1); then
  n=$(wc -l <<<"$diffs")
  first=$(head -n1 <<<"$diffs" | sed "s#$EXPECTED#<expected>#g")
  fail "$VENDORED is not $NAME $VERSION + its documented patches ($n difference(s); first: $first; see: diff -r $EXPECTED $VENDORED)"
fi

# --- (b) what cargo resolves -----------------------------------------------------------------

want="$NAME v$VERSION ($ROOT/$VENDORED)"
for features in "" "cuda"; do
  label="cargo tree${features:+ --features $features}"
  args=(tree -e normal,build,dev --prefix none --format '{p}')
  [ -z "$features" ] || args+=(--features "$features")
  if ! out=$(cargo "${args[@]}" 2>"$work/stderr"); then
    fail "$label failed: $(grep -m1 -i error "$work/stderr" || tail -n1 "$work/stderr")"
  fi
  if grep -qi 'was not used' "$work/stderr"; then
    fail "$label: $(grep -m1 -i 'was not used' "$work/stderr")"
  fi
  found=$(grep "^$NAME v" <<<"$out" | sed 's/ (\*)$//' | sort -u || true)
  [ -n "$found" ] || fail "$label: no $NAME in the dependency tree"
  [ "$found" = "$want" ] || fail "$label: $NAME resolves to $(paste -sd';' <<<"$found" | sed 's/;/; /g'), expected only $want"
done

echo "check-vendored-candle: ok: $VENDORED = $NAME $VERSION + ${#patches[@]} documented patches; cargo tree (default, cuda) uses only it"
