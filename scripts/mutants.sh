#!/usr/bin/env bash
# The mutation score of tej-core (tej-core/MUTANTS.md): cargo-mutants, one
# source file at a time, each against tej-core's unit and integration tests
# (the settings in .cargo/mutants.toml). Too slow for CI: on a 2-core
# machine a file takes 10 to 60 minutes.
#
#   scripts/mutants.sh                      # decode, encode, assemble, session, proxy
#   scripts/mutants.sh tej-core/src/wire.rs # any files
#   JOBS=1 scripts/mutants.sh               # fewer parallel builds (default 2)
#
# Results go to mutants.out/<file>/mutants.out/ (missed.txt, caught.txt, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(tej-core/src/decode.rs tej-core/src/encode.rs tej-core/src/assemble.rs
    tej-core/src/session/mod.rs tej-core/src/proxy.rs)
fi
# A warm target dir is copied into each build directory, so that every
# mutant is an incremental build.
cargo test -p tej-core --lib --tests --no-run
for file in "${files[@]}"; do
  out="mutants.out/$(basename "$(dirname "$file")")-$(basename "$file" .rs)"
  mkdir -p "$out"
  nice -n 15 cargo mutants -p tej-core --file "$file" --copy-target=true \
    --timeout 180 --build-timeout 400 --jobs "${JOBS:-2}" --output "$out" || true
  printf '%s: %s\n' "$file" "$(tail -n 1 "$out/mutants.out/outcomes.json" >/dev/null 2>&1; \
    wc -l <"$out/mutants.out/caught.txt") caught, $(wc -l <"$out/mutants.out/missed.txt") missed, $(wc -l <"$out/mutants.out/timeout.txt") timeout, $(wc -l <"$out/mutants.out/unviable.txt") unviable"
done
