#!/usr/bin/env bash
# The README's first command: set this machine up (scripts/setup.sh, cheap when already done),
# then run one real container with every taskwire plugin on and show what each did
# (scripts/demo.js). Everything the demo creates lives in one work directory with its own host
# config, run dir and bpffs, so it never touches an installed taskwire, and the trap below
# removes the container and that directory on any exit, failure or Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
[ "$(id -u)" = 0 ] || { echo "demo: needs root (loads BPF, runs containers): sudo bash scripts/demo.sh" >&2; exit 1; }

bash scripts/setup.sh
node="$root/.tools/bin/node"

work=$(mktemp -d /tmp/taskwire-demo.XXXXXX)
name="tw-demo-$$"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # The container first (its poststop frees addresses and pins), then whatever poststop could
  # not: gc is safe here because the config's run dir and bpffs belong to this demo alone.
  local c
  for c in "$name-host" "$name-private"; do   # scripts/demo.js names one container per network
    /usr/bin/podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
    /usr/sbin/runc delete --force "$c" >/dev/null 2>&1 || true
  done
  [ -f "$work/config.json" ] && "$node" dist/taskwire.js gc --config "$work/config.json" >/dev/null 2>&1 || true
  mountpoint -q "$work/bpffs" && umount -l "$work/bpffs"
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir "$work/bpffs"
mount -t bpf bpf "$work/bpffs"
# The example config, with this demo's bpffs, run dir and log.
"$node" -e '
  const fs = require("fs");
  const [example, work] = process.argv.slice(1);
  const cfg = JSON.parse(fs.readFileSync(example, "utf8"));
  Object.assign(cfg, { bpffs: work + "/bpffs", runDir: work + "/run", logFile: work + "/taskwire.log", policyDir: work + "/policies" });
  fs.writeFileSync(work + "/config.json", JSON.stringify(cfg, null, 2));
' oci-config/config.example.json "$work"

"$node" scripts/demo.js "$work" "$work/config.json" "$name"
