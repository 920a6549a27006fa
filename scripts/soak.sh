#!/usr/bin/env bash
# The soak (not in CI): a `tej serve` under mixed load for a while, its
# resident memory, open fds, threads and connections sampled into a CSV.
#
#   scripts/soak.sh [--minutes N] [--runtime R] [--out DIR] [--release]
#
# Load (tej-examples' soak_load example): 32 MiB files, bursts of small
# frames on a long-lived connection, connection churn, hostile raw peers,
# and uploads through the fault proxy (fault_proxy example, mixed faults).
# Every 10 s a row: seconds,rss_kib,fds,threads,tcp_connections. At the
# end the first, middle, last and largest samples are printed; the CSV and
# the logs stay in DIR (default: a new directory under /tmp).
set -euo pipefail

minutes=30
runtime=tokio
out=""
profile=debug
cargo_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --runtime) runtime="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --release) profile=release; cargo_flags=(--release); shift ;;
    *) echo "usage: $0 [--minutes N] [--runtime R] [--out DIR] [--release]" >&2; exit 2 ;;
  esac
done
seconds=$((minutes * 60))
out="${out:-$(mktemp -d /tmp/tej-soak.XXXXXX)}"
mkdir -p "$out"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cargo build -q "${cargo_flags[@]}" -p tej-examples --bin tej --example fault_proxy --example soak_load
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$profile"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
proxy_port="$(free_port)"
saved="$out/saved"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$bin/tej" serve --bind "127.0.0.1:$port" --runtime "$runtime" --save-dir "$saved" \
  --reply ok --idle-timeout 30 --frame-timeout 60 >/dev/null 2>"$out/serve.log" &
server=$!
pids+=("$server")
"$bin/examples/fault_proxy" --listen "127.0.0.1:$proxy_port" --target "127.0.0.1:$port" \
  --fault mixed:2M --seed 7 >"$out/proxy.log" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

"$bin/examples/soak_load" --server "127.0.0.1:$port" --proxy "127.0.0.1:$proxy_port" \
  --seconds "$seconds" --runtime "$runtime" >"$out/load.log" 2>&1 &
load=$!
pids+=("$load")

csv="$out/samples.csv"
echo "seconds,rss_kib,fds,threads,tcp_connections" >"$csv"
sample() {
  local rss threads fds conns
  rss="$(awk '/^VmRSS/ {print $2}' "/proc/$server/status")"
  threads="$(awk '/^Threads/ {print $2}' "/proc/$server/status")"
  fds="$(ls "/proc/$server/fd" | wc -l)"
  conns="$(ss -Htn state established "( sport = :$port )" | wc -l)"
  echo "$1,$rss,$fds,$threads,$conns" >>"$csv"
}
start=$SECONDS
next=0
while kill -0 "$load" 2>/dev/null; do
  if [ $((SECONDS - start)) -ge "$next" ]; then
    sample $((SECONDS - start))
    next=$((next + 10))
    # Saved files are deleted as they age (the disk is not what is soaked);
    # hidden .part files are frames still arriving, left to the server.
    find "$saved" -type f -not -name '.*' -mmin +1 -delete 2>/dev/null || true
  fi
  sleep 1
done
# After the load: what the server holds once everything has ended.
sleep 40
sample $((SECONDS - start))
kill -0 "$server" || { echo "the server died; see $out/serve.log" >&2; exit 1; }
partial="$(find "$saved" -name '.*.part' 2>/dev/null | wc -l)"

cat "$out/load.log"
python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def show(label, row):
    print(f"{label:>7}: t={row['seconds']:>5}s rss={int(row['rss_kib'])/1024:.1f} MiB "
          f"fds={row['fds']} threads={row['threads']} conns={row['tcp_connections']}")
show("first", rows[0]); show("middle", rows[len(rows)//2]); show("last", rows[-2] if len(rows) > 1 else rows[-1])
show("idle", rows[-1])
print(f"    max: rss={max(int(r['rss_kib']) for r in rows)/1024:.1f} MiB "
      f"fds={max(int(r['fds']) for r in rows)} threads={max(int(r['threads']) for r in rows)}")
PY
echo "partial files left in the save dir after the load: $partial"
echo "samples: $csv"
