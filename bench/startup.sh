#!/usr/bin/env bash
# Time from start to /readyz answering 200, and resident memory once idle,
# for `passerelle run` on a fresh data directory (embedded SQLite and NATS).
# Usage: bench/startup.sh [runs]   (prints one line per run, then medians)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
bin="$(mktemp -d)/passerelle"
go build -o "$bin" ./services/passerelle
port=18090
ready=(); rss=()
for i in $(seq 1 "$runs"); do
  dir="$(mktemp -d)"
  start=$(date +%s%N)
  PASSERELLE_DATA_DIR="$dir" PASSERELLE_HTTP_ADDR="127.0.0.1:$port" PASSERELLE_MLLP_ADDR= "$bin" run >"$dir/log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.005; done
  end=$(date +%s%N)
  sleep 5
  kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  ms=$(( (end - start) / 1000000 ))
  echo "run $i: ready in ${ms} ms, idle RSS $((kb / 1024)) MB"
  ready+=("$ms"); rss+=("$((kb / 1024))")
  rm -rf "$dir"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: ready in $(median "${ready[@]}") ms, idle RSS $(median "${rss[@]}") MB"
