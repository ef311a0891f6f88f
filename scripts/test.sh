#!/usr/bin/env bash
# Sets up a bare machine (scripts/setup.sh) and runs every test: type check, unit, the privileged
# suites (real kernel, runc, podman), then the kernel matrix (Debian 6.1 and 6.12 under qemu, plus
# the host; test/vm/README.md). With CI=true a privileged suite that cannot run fails instead of
# skipping, and the kernel matrix always runs; elsewhere TASKWIRE_SKIP_VM=1 leaves it out.
# Extra arguments go to jest (e.g. scripts/test.sh test/unit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(pwd)/.tools/bin:$PATH"
echo "== type check" >&2
node node_modules/typescript/bin/tsc --noEmit -p .
echo "== tests" >&2
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
status=0
node node_modules/jest/bin/jest.js --ci --runInBand --json --outputFile="$summary" "$@" || status=$?
# The plain closing line CI reads, whatever the runner prints.
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`)' "$summary" || true
[ "$status" = 0 ] || exit "$status"
if [ $# -eq 0 ] && { [ "${CI:-}" = true ] || [ "${TASKWIRE_SKIP_VM:-0}" != 1 ]; }; then
  echo "== kernel matrix" >&2
  make -s vm-matrix
fi
