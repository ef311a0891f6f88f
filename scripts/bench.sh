#!/usr/bin/env bash
# Runs the benchmarks: every bench/*.ts except lib.ts, or those named as arguments
# (scripts/bench.sh hook-latency datapath). Each is bundled with esbuild into .tools/ (koffi stays
# external and resolves from node_modules) and run with the project's Node as root. Results land
# in bench/results/<name>.json and bench/results/README.md. TW_BENCH_ROUNDS=N for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
NODE="$ROOT/.tools/bin/node"
ESBUILD="$ROOT/node_modules/.bin/esbuild"
[ -x "$NODE" ] || { echo "bench: $NODE missing (run scripts/setup.sh)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench: needs root (cgroups, bpffs, BPF programs)" >&2; exit 2; }
make -s all

if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for f in bench/*.ts; do
    n="$(basename "$f" .ts)"
    [ "$n" = lib ] || names+=("$n")
  done
fi

out="$ROOT/.tools/bench"
mkdir -p "$out"
status=0
for n in "${names[@]}"; do
  src="bench/$n.ts"
  [ -f "$src" ] || { echo "bench: no $src" >&2; status=2; continue; }
  echo "== $n" >&2
  js="$out/$n.js"
  "$ESBUILD" "$src" --bundle --platform=node --target=node20 --format=cjs --external:koffi --log-level=warning --outfile="$js"
  TW_ROOT="$ROOT" "$NODE" "$js" || status=1
done
exit $status
