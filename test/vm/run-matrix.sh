#!/usr/bin/env bash
# taskwire kernel matrix: run one command on the host kernel and on Debian kernels booted
# under qemu (TCG), with the host root shared read-only over 9p and a tmpfs overlay on top.
#
#   test/vm/run-matrix.sh [--kernels "host 6.1 6.12"] [--timeout SECS] [--refresh] [--verbose] -- COMMAND...
#
# See test/vm/README.md. Needs root (qemu's 9p export of / and apt/dpkg for the kernel cache).
set -euo pipefail
shopt -s nullglob

PROG=${0##*/}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${TASKWIRE_VM_CACHE:-/var/cache/taskwire-vm}
KERNELS="host 6.1 6.12"
TIMEOUT=600
MEM=${TASKWIRE_VM_MEM:-2048}
SMP=${TASKWIRE_VM_SMP:-2}
REFRESH=0
VERBOSE=0

# Kernel series -> Debian suite that ships it. The suite's mirror is derived from the
# machine's own apt sources at run time; no host name is ever written into this file.
declare -A SERIES_SUITE=([6.1]=bookworm [6.12]=bookworm-backports [5.10]=bullseye)
# Modules the initramfs needs before the 9p root can be mounted (dependencies are resolved
# with modprobe --show-depends; built-in ones are skipped).
INITRD_MODULES="virtio_pci 9pnet_virtio 9p overlay"

usage() {
  sed -n '2,7s/^# \{0,1\}//p' "$0" >&2
  cat >&2 <<EOF
  --kernels LIST   space-separated: host, a series (${!SERIES_SUITE[*]}) or a cached release
                   name (default: "$KERNELS")
  --timeout SECS   per kernel, boot included (default: $TIMEOUT)
  --refresh        look for a newer kernel package even if one of the series is cached
  --verbose        print the whole serial console of each guest
EOF
  exit 2
}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --kernels) [ $# -ge 2 ] || usage; KERNELS=$2; shift 2 ;;
    --kernels=*) KERNELS=${1#*=}; shift ;;
    --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --refresh) REFRESH=1; shift ;;
    -v|--verbose) VERBOSE=1; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
[ $# -gt 0 ] || { log "no command given"; usage; }
[[ $TIMEOUT =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -gt 0 ] || die "--timeout wants a positive number of seconds"
[ "$(id -u)" = 0 ] || die "must run as root"

# The command as one shell string, run with `bash -c` on each kernel, from the caller's cwd.
CMD=$(printf '%q ' "$@")
CWD=$PWD

# ---------------------------------------------------------------------------------------
# Cleanup: nothing may outlive the script (qemu, timeout, the host run) and the temp dir goes.
TMP=$(mktemp -d /tmp/taskwire-vm.XXXXXX)
RUN_PGID=""   # process group of the current `timeout` (timeout puts itself in a new group)

kill_run() {
  local pg=$RUN_PGID i
  [ -n "$pg" ] || return 0
  kill -TERM -- "-$pg" 2>/dev/null || true
  for i in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 -- "-$pg" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL -- "-$pg" 2>/dev/null || true
  wait "$pg" 2>/dev/null || true
  RUN_PGID=""
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  kill_run
  rm -rf -- "$TMP" "$CACHE/.extract.$$"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'exit 143' TERM HUP

# ---------------------------------------------------------------------------------------
# Host tools, from Debian packages. `apt-get update` runs at most once per invocation and
# only when something has to be fetched.
APT_UPDATED=0
host_apt_update() {
  [ "$APT_UPDATED" = 1 ] && return 0
  log "apt-get update"
  apt-get -qq update >&2 || die "apt-get update failed"
  APT_UPDATED=1
}

ensure_tools() {
  local missing=() pair
  for pair in qemu-system-x86_64:qemu-system-x86 /usr/share/seabios/bios-256k.bin:seabios \
              depmod:kmod modprobe:kmod xz:xz-utils dpkg-deb:dpkg flock:util-linux \
              /bin/busybox:busybox-static gzip:gzip; do
    local what=${pair%%:*} pkg=${pair#*:}
    if [[ $what == /* ]]; then [ -e "$what" ] && continue
    else command -v "$what" >/dev/null && continue; fi
    [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  host_apt_update
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------------------------------
# Private apt configuration for suites the host does not carry (bookworm-backports, ...).
#
# Why a private config instead of a file in /etc/apt/sources.list.d: the host's apt state
# stays exactly as it was (nobody's `apt-get upgrade` starts seeing backports, nothing to
# remove afterwards, no race with other users of apt), the lists live in our cache dir, and
# the sources file itself sits in this run's temp dir and is deleted when the script exits.
HOST_CODENAME=$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")

# Print "URI SIGNED-BY" of the host's main Debian archive: the first deb822 stanza (or
# one-line entry) whose suite is the bare codename (or, failing that, any suite of it that
# is not -security).
derive_mirror() {
  local f
  {
    for f in /etc/apt/sources.list.d/*.sources; do cat "$f"; echo; done
  } | awk -v cn="$HOST_CODENAME" '
    function flush() {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "") {
        n = split(suites, s, /[ \t]+/)
        for (i = 1; i <= n; i++) {
          if (s[i] == cn && best == "") best = uris "\t" sb
          else if (s[i] !~ /security/ && any == "") any = uris "\t" sb
        }
      }
      types = uris = suites = sb = ""
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^Types:/     { sub(/^Types:[ \t]*/, "");     types = $0 }
    /^URIs:/      { sub(/^URIs:[ \t]*/, "");      split($0, u, /[ \t]+/); uris = u[1] }
    /^Suites:/    { sub(/^Suites:[ \t]*/, "");    suites = $0 }
    /^Signed-By:/ { sub(/^Signed-By:[ \t]*/, ""); sb = $0 }
    END { flush(); if (best != "") print best; else if (any != "") print any }
  ' > "$TMP/mirror"
  if [ ! -s "$TMP/mirror" ] && [ -r /etc/apt/sources.list ]; then
    # one-line format: deb [opts] URI suite components...
    awk -v cn="$HOST_CODENAME" '
      $1 == "deb" {
        sb = ""; i = 2
        if ($2 ~ /^\[/) { for (; i <= NF; i++) { if ($i ~ /signed-by=/) { sb = $i; sub(/.*signed-by=/, "", sb); sub(/\].*/, "", sb) } if ($i ~ /\]$/) { i++; break } } }
        if ($(i+1) == cn && best == "") best = $i "\t" sb
        else if ($(i+1) !~ /security/ && any == "") any = $i "\t" sb
      }
      END { if (best != "") print best; else if (any != "") print any }
    ' /etc/apt/sources.list > "$TMP/mirror"
  fi
  [ -s "$TMP/mirror" ] || die "cannot derive a Debian mirror from /etc/apt/sources.list{,.d}"
  cat "$TMP/mirror"
}

PRIV_APT_READY=""
# Sets up (once per run) a private apt config carrying the given suites; prints nothing.
priv_apt_setup() {
  local suites="$*" line uri sb
  [ "$PRIV_APT_READY" = "$suites" ] && return 0
  line=$(derive_mirror)
  uri=${line%%$'\t'*}; sb=${line#*$'\t'}
  # a keyring path (an inline key block, or nothing, falls back to Debian's archive keyring)
  [[ $sb == /* ]] || sb=/usr/share/keyrings/debian-archive-keyring.gpg
  mkdir -p "$TMP/apt/sources.list.d" "$TMP/apt/preferences.d" \
           "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$uri" "$suites" "$sb" > "$TMP/apt/sources.list.d/taskwire-vm.sources"
  cat > "$TMP/apt/apt.conf" <<EOF
Dir::Etc::sourcelist "/dev/null";
Dir::Etc::sourceparts "$TMP/apt/sources.list.d";
Dir::Etc::preferencesparts "$TMP/apt/preferences.d";
Dir::State::Lists "$CACHE/apt/lists";
Dir::Cache "$CACHE/apt/cache";
Dir::State::status "/dev/null";
APT::Sandbox::User "root";
EOF
  log "apt-get update (private: $suites)"
  APT_CONFIG=$TMP/apt/apt.conf apt-get -qq update >&2 || die "apt-get update of $suites failed"
  PRIV_APT_READY=$suites
}

# Fetch the package lists a series needs (once per run; in the main shell, not in $(...)).
apt_prepare() { # series
  if [ "${SERIES_SUITE[$1]}" = "$HOST_CODENAME" ]; then host_apt_update
  else priv_apt_setup "$(priv_suites)"; fi
}
# Run an apt command with the config that carries the series: the host's own config when
# the host already has the suite, else the private one.
apt_for() { # series cmd args...
  local series=$1; shift
  if [ "${SERIES_SUITE[$series]}" = "$HOST_CODENAME" ]; then "$@"
  else APT_CONFIG=$TMP/apt/apt.conf "$@"; fi
}
# All non-host suites of the requested kernels, so one private update serves them all.
priv_suites() {
  local k out=()
  for k in $KERNELS; do
    [ -n "${SERIES_SUITE[$k]:-}" ] || continue
    [ "${SERIES_SUITE[$k]}" = "$HOST_CODENAME" ] && continue
    [[ " ${out[*]} " == *" ${SERIES_SUITE[$k]} "* ]] || out+=("${SERIES_SUITE[$k]}")
  done
  echo "${out[*]}"
}

# Newest linux-image package of a series that has a candidate version (generic amd64 flavour;
# not cloud/rt, not -unsigned/-dbg).
resolve_pkg() { # series
  local series=$1 re pkg
  re="^linux-image-${series//./\\.}[.-][^ ]*-amd64\$"
  for pkg in $(apt_for "$series" apt-cache search --names-only "$re" | awk '{print $1}' \
               | grep -Ev -- '-(cloud|rt)-amd64$' | sort -rV); do
    if [[ $(apt_for "$series" apt-cache policy "$pkg") == *"Candidate: "[0-9]* ]]; then
      echo "$pkg"; return 0
    fi
  done
  return 1
}

# ---------------------------------------------------------------------------------------
# Kernel cache: $CACHE/<release>/{vmlinuz,config,initramfs.cpio.gz,lib/modules/<release>,.complete}
cached_release_for() { # series -> newest complete cached release, if any
  local d best=""
  for d in "$CACHE"/*/.complete; do
    d=${d%/.complete}; d=${d##*/}
    if [[ $d == "$1".* || $d == "$1"-* ]]; then
      best=$(printf '%s\n%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -1)
    fi
  done
  echo "$best"
}

build_initramfs() { # release dir
  local rel=$1 dir=$2 root="$TMP/initramfs-$1" m f n=0
  rm -rf "$root"; mkdir -p "$root"/{bin,dev,proc,sys,lower,rw,newroot,mods}
  cp /bin/busybox "$root/bin/busybox"
  mknod -m 600 "$root/dev/console" c 5 1
  mknod -m 666 "$root/dev/null" c 1 3
  : > "$root/mods/order"
  # modprobe --show-depends prints dependencies first; keep the first occurrence of each.
  for m in $INITRD_MODULES; do
    modprobe -d "$dir" -S "$rel" --show-depends "$m" || die "$rel: module $m not found"
  done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r f; do
    n=$((n + 1))
    local base; base=$(printf '%02d-%s' "$n" "${f##*/}"); base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
    case $f in
      *.ko.xz) xz -dc "$f" > "$root/mods/$base" ;;
      *.ko.zst) zstd -qdc "$f" > "$root/mods/$base" ;;
      *.ko.gz) gzip -dc "$f" > "$root/mods/$base" ;;
      *) cp "$f" "$root/mods/$base" ;;
    esac
    echo "$base" >> "$root/mods/order"
  done
  cp "$HERE/guest-init.sh" "$root/init"
  chmod 755 "$root/init"
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -1 > "$dir/initramfs.cpio.gz.new"
  mv "$dir/initramfs.cpio.gz.new" "$dir/initramfs.cpio.gz"
  rm -rf "$root"
}

# Download and unpack one kernel package into $CACHE/<release>; sets FETCHED_REL.
FETCHED_REL=""
fetch_kernel() { # series package
  local series=$1 pkg=$2 deb x rel dir
  log "$series: downloading $pkg"
  mkdir -p "$TMP/deb"
  (cd "$TMP/deb" && apt_for "$series" apt-get -qq download -o APT::Sandbox::User=root "$pkg" >&2) \
    || die "apt-get download $pkg failed"
  deb=$(ls "$TMP"/deb/*.deb | head -1)
  x="$CACHE/.extract.$$"
  rm -rf "$x"; mkdir -p "$x"
  dpkg-deb -x "$deb" "$x"
  rel=$(ls "$x/lib/modules" | head -1)
  [ -n "$rel" ] && [ -f "$x/boot/vmlinuz-$rel" ] || die "$pkg: unexpected package layout"
  dir="$CACHE/$rel"
  rm -rf "$dir"; mkdir -p "$dir/lib/modules"
  mv "$x/boot/vmlinuz-$rel" "$dir/vmlinuz"
  mv "$x/boot/config-$rel" "$dir/config"
  mv "$x/lib/modules/$rel" "$dir/lib/modules/$rel"
  echo "$pkg $(dpkg-deb -f "$deb" Version)" > "$dir/package"
  rm -rf "$x" "$TMP/deb"
  depmod -b "$dir" "$rel"
  FETCHED_REL=$rel
}

# Make sure a kernel is cached and its initramfs is current; sets KREL.
KREL=""
ensure_kernel() { # series-or-release
  local want=$1 rel="" dir pkg stamp
  if [ -f "$CACHE/$want/.complete" ]; then
    rel=$want
  elif [ -n "${SERIES_SUITE[$want]:-}" ]; then
    [ "$REFRESH" = 1 ] || rel=$(cached_release_for "$want")
    if [ -z "$rel" ]; then
      apt_prepare "$want"
      pkg=$(resolve_pkg "$want") || die "no linux-image package found for $want"
      rel=${pkg#linux-image-}
      if [ ! -f "$CACHE/$rel/.complete" ]; then
        fetch_kernel "$want" "$pkg"
        rel=$FETCHED_REL
      fi
    fi
  else
    die "unknown kernel '$want' (known series: ${!SERIES_SUITE[*]}, or a release cached in $CACHE)"
  fi
  dir="$CACHE/$rel"
  stamp=$(cat "$HERE/guest-init.sh" /bin/busybox | sha256sum | cut -d' ' -f1)
  if [ ! -f "$dir/.complete" ] || [ ! -f "$dir/initramfs.cpio.gz" ] \
     || [ "$(cat "$dir/initramfs.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "$rel: building initramfs"
    build_initramfs "$rel" "$dir"
    echo "$stamp" > "$dir/initramfs.stamp"
    touch "$dir/.complete"
  fi
  KREL=$rel
}

# ---------------------------------------------------------------------------------------
# Runs. Each run is `timeout` in its own process group (timeout calls setpgid itself), so
# the trap can kill qemu or the host command with everything they started.
RESULTS=()
FAILED=0

now() { date +%s.%N; }
strip_ansi() { sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# A command may print "matrix: key=value ..." lines; the last one becomes extra table columns.
COLS=()
record() { # label result seconds [output file]
  local m="" kv
  [ -n "${4:-}" ] && [ -f "$4" ] && m=$(strip_ansi < "$4" | tr -d '\r' | sed -n 's/^matrix: *//p' | tail -1)
  for kv in $m; do [[ " ${COLS[*]} " == *" ${kv%%=*} "* ]] || COLS+=("${kv%%=*}"); done
  RESULTS+=("$1|$2|$3|$m")
  [ "$2" = pass ] || FAILED=1
}

run_host() {
  local t0 rc=0 out="$TMP/host.out"
  printf '\n==== host (%s)\n' "$(uname -r)"
  t0=$(now)
  (cd "$CWD" && TASKWIRE_VM=0 TASKWIRE_VM_KERNEL=host \
     exec timeout -k 10 "$TIMEOUT" bash -c "$CMD" </dev/null >"$out" 2>&1) &
  RUN_PGID=$!
  # the subshell execs timeout, so $! is timeout's pid and (after its setpgid) its pgid
  wait "$RUN_PGID" || rc=$?
  RUN_PGID=""
  sed 's/^/[host] /' "$out"
  case $rc in
    0) record "host ($(uname -r))" pass "$(elapsed "$t0" "$(now)")" "$out" ;;
    124|137) record "host ($(uname -r))" timeout "$(elapsed "$t0" "$(now)")" "$out" ;;
    *) record "host ($(uname -r))" "fail($rc)" "$(elapsed "$t0" "$(now)")" "$out" ;;
  esac
}

run_vm() { # label release
  local label=$1 rel=$2 dir="$CACHE/$2" out="$TMP/out-$2" con="$TMP/console-$2.log" t0 rc=0 st
  rm -rf "$out"; mkdir -p "$out"
  cp "$HERE/guest-stage2.sh" "$out/stage2.sh"
  printf '%s' "$CMD" > "$out/cmd"
  printf '%s' "$CWD" > "$out/cwd"
  printf '%s' "$CACHE" > "$out/cache"
  printf '\n==== %s (%s)\n' "$label" "$rel"
  t0=$(now)
  timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -m "$MEM" -smp "$SMP" \
    -nographic -nodefaults -no-user-config -no-reboot -monitor none \
    -serial "file:$con" \
    -kernel "$dir/vmlinuz" -initrd "$dir/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 oops=panic loglevel=4 rdinit=/init 8250.nr_uarts=1 mitigations=off init_on_alloc=0 random.trust_cpu=on" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$out,mount_tag=twout,security_model=none" \
    </dev/null >"$TMP/qemu-$rel.log" 2>&1 &
  RUN_PGID=$!
  wait "$RUN_PGID" || rc=$?
  RUN_PGID=""
  local secs; secs=$(elapsed "$t0" "$(now)")
  [ -f "$out/output" ] && sed "s/^/[$label] /" "$out/output"
  if [ "$VERBOSE" = 1 ]; then
    echo "---- serial console ($label)"; strip_ansi < "$con" 2>/dev/null || true
  fi
  st=$(cat "$out/status" 2>/dev/null || true)
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    record "$label ($rel)" timeout "$secs" "$out/output"
  elif [ "$st" = 0 ]; then
    record "$label ($rel)" pass "$secs" "$out/output"
  elif [ -n "$st" ]; then
    record "$label ($rel)" "fail($st)" "$secs" "$out/output"
  else
    record "$label ($rel)" "fail(no status)" "$secs" "$out/output"
  fi
  if [ "$st" != 0 ] && [ "$VERBOSE" != 1 ]; then
    echo "---- last lines of the serial console ($label)"; strip_ansi < "$con" 2>/dev/null | tail -n 40 || true
    [ -s "$TMP/qemu-$rel.log" ] && { echo "---- qemu"; cat "$TMP/qemu-$rel.log"; }
  fi
  return 0
}

# ---------------------------------------------------------------------------------------
[ -n "${KERNELS// /}" ] || die "--kernels is empty"
for k in $KERNELS; do [ "$k" = host ] || { ensure_tools; break; }; done
mkdir -p "$CACHE"
declare -A REL=()
# One lock around the cache work so two runs do not extract into the same dir at once.
exec 9>"$CACHE/.lock"
flock 9
for k in $KERNELS; do
  [ "$k" = host ] && continue
  ensure_kernel "$k"
  REL[$k]=$KREL
done
flock -u 9
exec 9>&-

for k in $KERNELS; do
  if [ "$k" = host ]; then run_host; else run_vm "$k" "${REL[$k]}"; fi
done

declare -A W=()
for k in "${COLS[@]}"; do W[$k]=${#k}; done
for r in "${RESULTS[@]}"; do
  IFS='|' read -r a b c m <<<"$r"
  for kv in $m; do v=${kv#*=}; [ ${#v} -gt "${W[${kv%%=*}]}" ] && W[${kv%%=*}]=${#v}; done
done
printf '\n%-34s | %-16s | %-7s' kernel result seconds
for k in "${COLS[@]}"; do printf ' | %-*s' "${W[$k]}" "$k"; done; echo
printf '%s' "-----------------------------------+------------------+--------"
for k in "${COLS[@]}"; do printf -- '-+-%s' "$(printf '%*s' "${W[$k]}" '' | tr ' ' -)"; done; echo
for r in "${RESULTS[@]}"; do
  IFS='|' read -r a b c m <<<"$r"
  declare -A V=()
  for kv in $m; do V[${kv%%=*}]=${kv#*=}; done
  printf '%-34s | %-16s | %-7s' "$a" "$b" "$c"
  for k in "${COLS[@]}"; do printf ' | %-*s' "${W[$k]}" "${V[$k]:--}"; done; echo
  unset V
done
exit "$FAILED"
