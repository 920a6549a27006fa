#!/usr/bin/env bash
# The mutation score of tej-core (tej-core/MUTANTS.md): cargo-mutants over
# decode, encode, assemble, the session and the PROXY parser, each mutant
# against tej-core's unit and integration tests (.cargo/mutants.toml). Not
# in CI: all 628 mutants take about an hour on 2 idle cores.
#
#   scripts/mutants.sh                     # every mutant of the five files
#   SHARD=0/8 scripts/mutants.sh           # every 8th (the sampled run in MUTANTS.md)
#   scripts/mutants.sh tej-core/src/wire.rs  # other files
#   JOBS=1 scripts/mutants.sh              # parallel builds (default 2)
#
# Results in mutants.out/ (missed.txt, caught.txt, timeout.txt, unviable.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(tej-core/src/decode.rs tej-core/src/encode.rs tej-core/src/assemble.rs
    tej-core/src/session/mod.rs tej-core/src/proxy.rs)
fi
args=(-p tej-core)
for file in "${files[@]}"; do args+=(--file "$file"); done
if [ -n "${SHARD:-}" ]; then args+=(--shard "$SHARD" --sharding round-robin); fi

# Build the tests once here, so that the build directories cargo-mutants
# copies start from a built target (--copy-target).
cargo test -p tej-core --lib --tests --no-run
nice -n 15 cargo mutants "${args[@]}" --copy-target=true \
  --timeout 240 --build-timeout 400 --jobs "${JOBS:-2}" --output .
