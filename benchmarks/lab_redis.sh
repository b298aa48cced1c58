#!/usr/bin/env bash
# Benchmark 1 of issue 13 on the benchmark lab's sites (../shared/bench: generated
# sites A and B, nginx and its latency server, measure.py): the redis backend's
# local workers against the process backend, same settings, alternating runs.
#   benchmarks/lab_redis.sh [PAIRS]        (run from the repository, in its venv)
# Starts a private redis-server on a Unix socket; prints the lab's table and, last,
#   ratio redis/process pages/s (median of pairs): A=x.xx B=y.yy
set -euo pipefail
LAB="${LAB:-$(cd "$(dirname "$0")/../.." && pwd)/shared/bench}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY_CRAWLER="$(command -v python)"
# shellcheck source=/dev/null
source "$LAB/lib.sh"
PAIRS="${1:-3}"
RES="${RES:-/tmp/bench-results/redis-$(date +%Y%m%d-%H%M%S)}"; mkdir -p "$RES"
redis-server --port 0 --unixsocket "$RES/redis.sock" --save '' --appendonly no --dir "$RES" >/dev/null &
REDIS_PID=$!
trap 'bench_servers_stop; kill $REDIS_PID' EXIT
bench_setup; bench_sites; bench_servers_start; bench_warm
for r in ${REGIMES:-A B}; do
  write_seeds "$r" "$RES/seeds-$r.txt"
  for p in $(seq 1 "$PAIRS"); do
    order=(process redis); [ $((p % 2)) -eq 0 ] && order=(redis process)
    for backend in "${order[@]}"; do
      extra=""; [ "$backend" = redis ] && extra="--backend redis --redis unix://$RES/redis.sock"
      bench_run "$RES/results.jsonl" "$r" "$backend" "$RES/$backend-$r.jsonl" -- bash -c \
        "cd $REPO && $PY_CRAWLER -m scraper $RES/seeds-$r.txt -O $RES/$backend-$r.jsonl --depth 1000 -q --per-host $(conc "$r") $extra"
    done
  done
done
"$PY" "$LAB/measure.py" report "$RES/results.jsonl" --ref process
"$PY" "$LAB/measure.py" ratio "$RES/results.jsonl" --other redis --ref process
