#!/usr/bin/env bash
# Line and region coverage of each fuzz target's corpus over the tej-core
# files it exercises (fuzz/README.md has the latest figures).
#
#   fuzz/coverage.sh                 # every target
#   fuzz/coverage.sh session_ops     # some
#
# Needs nightly with llvm-tools: rustup +nightly component add llvm-tools-preview
set -euo pipefail
cd "$(dirname "$0")"

llvm_bin="$(rustc +nightly --print sysroot)/lib/rustlib/$(rustc +nightly -vV | sed -n 's/^host: //p')/bin"
[ -x "$llvm_bin/llvm-cov" ] || rustup +nightly component add llvm-tools-preview
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')

# The tej-core files each target is there to exercise.
files_of() {
  case "$1" in
    decode_stream) echo 'decode.rs|assemble.rs' ;;
    roundtrip) echo 'encode.rs|frame.rs|decode.rs|assemble.rs' ;;
    session | session_ops) echo 'session/mod.rs|session/outbox.rs|session/deadlines.rs|session/outgoing.rs|session/send_queue/[a-z]*.rs|assemble.rs' ;;
    proxy) echo 'proxy.rs' ;;
  esac
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_stream roundtrip session session_ops proxy)
mkdir -p coverage
for target in "${targets[@]}"; do
  cargo +nightly fuzz coverage "$target" "corpus/$target" >"coverage/$target.log" 2>&1
  echo "== $target ($(ls "corpus/$target" | wc -l) inputs)"
  "$llvm_bin/llvm-cov" report "target/$triple/coverage/$triple/release/$target" \
    -instr-profile="coverage/$target/coverage.profdata" \
    --ignore-filename-regex='(\.cargo/registry|/rustc/|fuzz_targets)' |
    awk -v files="^($(files_of "$target"))\$" '$1 ~ files { printf "%-32s regions %5s, %8s covered   lines %5s, %8s covered\n", $1, $2, $4, $8, $10 }'
done
