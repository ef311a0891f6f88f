#!/bin/bash
# Kernel-matrix test of the netns plugin (and an ip-per-task smoke), run inside each guest by
# test/vm/run-matrix.sh (or on the host: it cleans up after itself). Builds nothing: the host's
# build (dist/, build/bpf/) is visible through the shared root. Node is ~40x slower under TCG,
# so there are exactly two hook runs: one createRuntime for a container with its own netns that
# enables netns and ip-per-task together, and one poststop.
#   pass: auto gives netkit where the kernel has it (6.7+; fails if a netkit kernel gets veth)
#   and veth before; TCP crosses the pair both ways (v4 and v6); ip-per-task's address and
#   programs are there; after poststop no device, route, address, pin or record remains.
# Last line: "focused: PASS|FAIL kernel=<release> device=<kind> attach=<how> (<failures>)".
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NODE=$ROOT/.tools/bin/node
PY=/usr/bin/python3
rel=$(uname -r)
fails=()
fail() { fails+=("$1"); echo "FAIL: $1"; }
ok() { echo "ok: $1"; }

work=$(mktemp -d /tmp/tw-focused.XXXXXX)
cg2=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -1)
cg=$cg2/tw-focused-$$
bpffs=$work/bpf
id=tw-focused-$$
tag=$(printf '%x' $(( ($$ % 250) + 2 )))
host4=10.124.$(( ($$ % 250) + 2 )).254
host6=fd00:7a5d:0:$tag::fffe
spid=""
cleanup() {
  [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
  [ -d "$cg" ] && { echo 1 > "$cg/cgroup.kill" 2>/dev/null; sleep 0.2; rmdir "$cg" 2>/dev/null; }
  ip addr del "$host4/32" dev lo 2>/dev/null
  ip addr del "$host6/128" dev lo 2>/dev/null
  umount -l "$bpffs" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$bpffs" && mount -t bpf bpf "$bpffs"
mkdir "$cg"
# The host netns of a guest has only lo: give it addresses to be reached at and to speak from.
ip link set lo up
ip addr add "$host4/32" dev lo
ip addr add "$host6/128" dev lo nodad
$PY - "$ROOT/oci-config/config.example.json" "$work" "$bpffs" "$tag" "$(( ($$ % 250) + 2 ))" > "$work/config.json" <<'PYEOF'
import json, sys
src, work, bpffs, tag, n4 = sys.argv[1:]
c = json.load(open(src))
c.update(bpffs=bpffs, runDir=f"{work}/run", logFile=f"{work}/taskwire.log", logLevel="debug", policyDir=f"{work}/policies")
c["pools"] = {"default": {"ip6": f"fd00:7a5c:0:{tag}::/112", "ip4": f"10.123.{n4}.0/24"}}
print(json.dumps(c))
PYEOF

sh -c "echo \$\$ > $cg/cgroup.procs && exec unshare -n sleep 600" & spid=$!
for _ in $(seq 100); do [ "$(readlink /proc/$spid/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.05; done
netns=/proc/$spid/ns/net

state() { printf '{"ociVersion":"1.0.2","id":"%s","status":"%s","pid":%s,"bundle":"/tmp","annotations":{"io.taskwire.netns":"auto","io.taskwire.ip-per-task":"auto"}}' "$id" "$1" "$2"; }
t0=$(date +%s.%N)
if ! state creating "$spid" | env -i "$NODE" "$ROOT/dist/taskwire-hook.js" createRuntime --config "$work/config.json"; then
  fail "createRuntime"
fi
echo "createRuntime took $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s"
rec=$work/run/containers/$id.json
summary() { $PY -c "import json,sys; r=json.load(open('$rec')); print(next(p['summary'] for p in r['plugins'] if p['name']==sys.argv[1]).get(sys.argv[2]))" "$1" "$2" 2>/dev/null; }
device=$(summary netns device); attach=$(summary netns attach); hostdev=$(summary netns hostDevice)
ip4=$(summary netns ip4); ip6=$(summary netns ip6); ipt6=$(summary ip-per-task ip6)
echo "netns: device=$device attach=$attach host=$hostdev ip4=$ip4 ip6=$ip6; ip-per-task ip6=$ipt6"

# Which device this kernel must give: netkit from 6.7 on when the kernel config has it.
want=veth
cfg=""
for f in "/boot/config-$rel" "/var/cache/taskwire-vm/$rel/config"; do [ -r "$f" ] && { cfg=$f; break; }; done
if [ -n "$cfg" ] && grep -q '^CONFIG_NETKIT=y' "$cfg"; then want=netkit; fi
[ "$device" = "$want" ] && ok "device $device (expected $want)" || fail "device is '$device', expected $want"

# TCP both ways, both families. With netkit the peer drops everything until a program is
# attached, so traffic out of the container also proves the peer program is there.
tcp() { # netns-of-server server-addr client-netns client-target
  local port=$(( 20000 + RANDOM % 20000 ))
  local srv=(env); [ -n "$1" ] && srv=(nsenter "--net=$1")
  local cli=(env); [ -n "$3" ] && cli=(nsenter "--net=$3")
  "${srv[@]}" $PY -c "
import socket,sys
a=sys.argv[1]; s=socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind((a,int(sys.argv[2]))); s.listen(); s.settimeout(20); c,_=s.accept(); c.sendall(c.recv(16))" "$2" $port &
  local sp=$!
  local got
  got=$("${cli[@]}" $PY -c "
import socket,sys,time
for i in range(100):
  try: s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=10); break
  except ConnectionRefusedError: time.sleep(0.1)
s.sendall(b'ping'); print(s.recv(16).decode())" "$4" $port 2>&1)
  wait $sp
  [ "$got" = ping ]
}
[ -n "$ip4" ] && { tcp "$netns" "$ip4" "" "$ip4" && ok "TCP host -> container v4" || fail "TCP host -> container v4"; }
[ -n "$ip6" ] && { tcp "$netns" "$ip6" "" "$ip6" && ok "TCP host -> container v6" || fail "TCP host -> container v6"; }
[ -n "$ip4" ] && { tcp "" "$host4" "$netns" "$host4" && ok "TCP container -> host v4" || fail "TCP container -> host v4"; }
[ -n "$ip6" ] && { tcp "" "$host6" "$netns" "$host6" && ok "TCP container -> host v6" || fail "TCP container -> host v6"; }

# ip-per-task smoke: its address on lo, its programs on the cgroup.
ip -br addr show dev lo | grep -qw "$ipt6" && ok "ip-per-task address on lo" || fail "ip-per-task address $ipt6 not on lo"
nprog=$(bpftool cgroup show "$cg" 2>/dev/null | grep -c tw_ipt)
[ "$nprog" -gt 0 ] && ok "ip-per-task: $nprog programs on the cgroup" || fail "ip-per-task: no programs on the cgroup"

# poststop after the container is gone, the way runtimes do it.
kill -9 "$spid"; wait "$spid" 2>/dev/null; spid=""
printf '{"ociVersion":"1.0.2","id":"%s","status":"stopped","bundle":"/tmp"}' "$id" | env -i "$NODE" "$ROOT/dist/taskwire-hook.js" poststop --config "$work/config.json" || fail "poststop"
sleep 0.3
ip link show "$hostdev" >/dev/null 2>&1 && fail "host device $hostdev remains" || ok "host device gone"
[ -n "$ip4" ] && [ -n "$(ip route show "$ip4/32")" ] && fail "route $ip4/32 remains"
[ -n "$ipt6" ] && ip -br addr show dev lo | grep -qw "$ipt6" && fail "ip-per-task address remains"
[ -e "$rec" ] && fail "record remains"
left=$(find "$bpffs/taskwire" -mindepth 1 -path '*/_shared' -prune -o -print 2>/dev/null)
[ -n "$left" ] && fail "pins remain: $left" || ok "no pins, record, device or route left"

if [ ${#fails[@]} -eq 0 ]; then
  echo "focused: PASS kernel=$rel device=$device attach=$attach"
else
  echo "focused: FAIL kernel=$rel device=${device:-?} attach=${attach:-?} ($(IFS=';'; echo "${fails[*]}"))"
  [ -f "$work/taskwire.log" ] && tail -5 "$work/taskwire.log"
  exit 1
fi
