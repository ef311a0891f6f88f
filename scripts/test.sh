#!/usr/bin/env bash
# Sets up a bare machine (scripts/setup.sh) and runs every test: type check, unit, then the
# privileged suites (real kernel, runc, podman) one file at a time. With CI=true a privileged
# suite that cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(pwd)/.tools/bin:$PATH"
echo "== type check" >&2
node node_modules/typescript/bin/tsc --noEmit -p .
echo "== tests" >&2
node node_modules/jest/bin/jest.js --ci --runInBand "$@"
