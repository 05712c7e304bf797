#!/usr/bin/env bash
# Runs every benchmark and writes bench/RESULTS.md. Servers are pinned to
# core 0 (GOMAXPROCS=1), the load tools (wrk, vegeta) to core 1, at nice
# -20 where the user may raise priority (root). Needs wrk (Debian: apt-get
# install wrk). Bounded: about 10 minutes with the default 5 repeats.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/teesign" ./cmd/teesign
go build -o "$out/refserver" ./bench/refserver
go build -o "$out/report" ./bench/cmd/report
py=python3
python3 -c 'import cryptography' 2>/dev/null || py=/usr/bin/python3
"$out/report" -teesign "$out/teesign" -refserver "$out/refserver" -self "$out/report" -python "$py" "$@"
