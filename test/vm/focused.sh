#!/bin/bash
# Kernel-matrix test of the netns plugin (and an ip-per-task smoke), run inside each guest by
# test/vm/run-matrix.sh (or on the host: it cleans up after itself). Builds nothing: the host's
# build (dist/, build/bpf/) is visible through the shared root. Node is ~40x slower under TCG,
# so there are exactly four hook runs, for two containers:
#   A, its own netns, with netns + ip-per-task: auto gives netkit where the kernel has it (6.7+;
#   fails if a netkit kernel gets veth) and veth before; TCP crosses the pair both ways (v4 and
#   v6); ip-per-task's address and programs are there.
#   B, the host netns, with ip-per-task + localhost-redirect + twfw + sysctl (their createRuntime
#   runs while A's checks run): every plugin's programs are on the cgroup and take effect, checked
#   by one python process and one unshare'd sh in B's cgroup: a wildcard bind lands on the task IP
#   (ip-per-task); [::1]:P and 127.0.0.1:P reach the task's own listener (localhost-redirect);
#   a connect to a port the policy drops fails with ECONNREFUSED while another port of the same
#   address works (twfw); inside `unshare -n`, a write the annotation's sysctl policy denies fails
#   with EPERM while one the policies allow succeeds (sysctl).
#   After both poststops no device, route, address, program, pin or record remains.
# Last lines: "matrix: <plugin>=<result> ..." (run-matrix.sh puts these in its table) and
# "focused: PASS|FAIL kernel=<release> device=<kind> attach=<how> (<failures>)".
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NODE=$ROOT/.tools/bin/node
PY=/usr/bin/python3
rel=$(uname -r)
fails=()
# Per-plugin verdicts for the table: a plugin is "fail" once any of its checks failed.
declare -A col=([netns]=pass [ip-per-task]=pass [localhost-redirect]=pass [twfw]=pass [sysctl]=pass)
fail() { fails+=("$1"); echo "FAIL: $1"; [ -n "${2:-}" ] && col[$2]=fail; }
ok() { echo "ok: $1"; }

work=$(mktemp -d /tmp/tw-focused.XXXXXX)
cg2=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -1)
cg=$cg2/tw-focused-$$
cgb=$cg2/tw-focused-$$-b
bpffs=$work/bpf
id=tw-focused-$$
idb=tw-focused-$$-b
tag=$(printf '%x' $(( ($$ % 250) + 2 )))
host4=10.124.$(( ($$ % 250) + 2 )).254
host6=fd00:7a5d:0:$tag::fffe
spid=""
bpid=""
cleanup() {
  [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
  [ -n "$bpid" ] && kill -9 "$bpid" 2>/dev/null
  for c in "$cg" "$cgb"; do
    [ -d "$c" ] && { echo 1 > "$c/cgroup.kill" 2>/dev/null; sleep 0.2; rmdir "$c" 2>/dev/null; }
  done
  ip addr del "$host4/32" dev lo 2>/dev/null
  ip addr del "$host6/128" dev lo 2>/dev/null
  umount -l "$bpffs" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$bpffs" && mount -t bpf bpf "$bpffs"
mkdir "$cg" "$cgb"
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
  fail "createRuntime (A)" netns
fi
echo "createRuntime (A) took $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s"

# B: a host-netns task in its own cgroup. Its createRuntime runs in the background while A is
# checked; the hook's lock serialises what must be serialised.
sh -c "echo \$\$ > $cgb/cgroup.procs && exec sleep 600" & bpid=$!
for _ in $(seq 100); do grep -qx "$bpid" "$cgb/cgroup.procs" 2>/dev/null && break; sleep 0.05; done
pdrop=$(( 40000 + RANDOM % 10000 )); ppass=$(( pdrop + 1 ))
$PY - "$idb" "$bpid" "$pdrop" > "$work/state-b.json" <<'PYEOF'
import json, sys
idb, pid, pdrop = sys.argv[1:]
ann = {
  "io.taskwire.ip-per-task": "auto",
  "io.taskwire.localhost-redirect": "true",
  "io.taskwire.twfw": json.dumps({"rules": [{"name": "no-drop-port", "direction": "egress", "action": "drop", "proto": "tcp", "ports": [int(pdrop)]}]}),
  # The host policy allows ping_group_range; the annotation may only tighten, and does.
  "io.taskwire.sysctl": json.dumps({"default": "allow", "rules": [{"name": "net.ipv4.ping_group_range", "access": "deny"}]}),
}
print(json.dumps({"ociVersion": "1.0.2", "id": idb, "status": "creating", "pid": int(pid), "bundle": "/tmp", "annotations": ann}))
PYEOF
tb=$(date +%s.%N)
( env -i "$NODE" "$ROOT/dist/taskwire-hook.js" createRuntime --config "$work/config.json" < "$work/state-b.json"; echo $? > "$work/rc-b"
  echo "createRuntime (B) took $(echo "$(date +%s.%N) - $tb" | bc 2>/dev/null || echo '?') s" ) &
bhook=$!

rec=$work/run/containers/$id.json
recb=$work/run/containers/$idb.json
summary() { $PY -c "import json,sys; r=json.load(open(sys.argv[3])); print(next(p['summary'] for p in r['plugins'] if p['name']==sys.argv[1]).get(sys.argv[2]))" "$1" "$2" "${3:-$rec}" 2>/dev/null; }
device=$(summary netns device); attach=$(summary netns attach); hostdev=$(summary netns hostDevice)
ip4=$(summary netns ip4); ip6=$(summary netns ip6); ipt6=$(summary ip-per-task ip6)
echo "netns: device=$device attach=$attach host=$hostdev ip4=$ip4 ip6=$ip6; ip-per-task ip6=$ipt6"

# Which device this kernel must give: netkit from 6.7 on when the kernel config has it.
want=veth
cfg=""
for f in "/boot/config-$rel" "/var/cache/taskwire-vm/$rel/config"; do [ -r "$f" ] && { cfg=$f; break; }; done
if [ -n "$cfg" ] && grep -q '^CONFIG_NETKIT=y' "$cfg"; then want=netkit; fi
[ "$device" = "$want" ] && ok "device $device (expected $want)" || fail "device is '$device', expected $want" netns

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
[ -n "$ip4" ] && { tcp "$netns" "$ip4" "" "$ip4" && ok "TCP host -> container v4" || fail "TCP host -> container v4" netns; }
[ -n "$ip6" ] && { tcp "$netns" "$ip6" "" "$ip6" && ok "TCP host -> container v6" || fail "TCP host -> container v6" netns; }
[ -n "$ip4" ] && { tcp "" "$host4" "$netns" "$host4" && ok "TCP container -> host v4" || fail "TCP container -> host v4" netns; }
[ -n "$ip6" ] && { tcp "" "$host6" "$netns" "$host6" && ok "TCP container -> host v6" || fail "TCP container -> host v6" netns; }

# ip-per-task smoke: its address on lo, its programs on the cgroup.
ip -br addr show dev lo | grep -qw "$ipt6" && ok "ip-per-task address on lo" || fail "ip-per-task address $ipt6 not on lo" ip-per-task
nprog=$(bpftool cgroup show "$cg" 2>/dev/null | grep -c tw_ipt)
[ "$nprog" -gt 0 ] && ok "ip-per-task: $nprog programs on the cgroup" || fail "ip-per-task: no programs on the cgroup" ip-per-task

# B: every plugin's BPF took effect.
wait "$bhook"
if [ "$(cat "$work/rc-b" 2>/dev/null)" != 0 ]; then
  for c in ip-per-task localhost-redirect twfw sysctl; do col[$c]=fail; done
  fail "createRuntime (B)"
fi
bip6=$(summary ip-per-task ip6 "$recb"); bip4=$(summary ip-per-task ip4 "$recb")
progs=$(bpftool cgroup show "$cgb" 2>/dev/null)
for pc in ip-per-task:tw_ipt localhost-redirect:tw_lr twfw:tw_fw sysctl:tw_sc; do
  n=$(grep -c "${pc#*:}" <<<"$progs")
  [ "$n" -gt 0 ] && ok "${pc%%:*}: $n programs on B's cgroup" || fail "${pc%%:*}: no programs on B's cgroup" "${pc%%:*}"
done
echo "B: ip6=$bip6 ip4=$bip4 drop port=$pdrop pass port=$ppass"
# One python process in B's cgroup. Listeners bound to an explicit address are left alone by
# ip-per-task, so the twfw pair listens on host6 and a refused connect can only be the policy.
# Each line it prints is "<plugin> ok|FAIL <what>".
# Exactly six verdicts are expected: fewer means the checker itself failed, which is a failure.
sh -c "echo \$\$ > $cgb/cgroup.procs && exec $PY - '$bip6' '$bip4' '$host6' $pdrop $ppass" > "$work/b-checks" 2>&1 <<'PYEOF'
import errno, socket, sys
ip6, ip4, host6, pdrop, ppass = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def say(plugin, good, what): print(plugin, "ok" if good else "FAIL", what, flush=True)
def listener(fam, addr, port=0, v6only=False):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port)); s.listen(8); s.settimeout(10)
    return s
def roundtrip(fam, srv, dst, port):
    c = socket.socket(fam, socket.SOCK_STREAM); c.settimeout(10)
    try:
        c.connect((dst, port)); a, _ = srv.accept(); c.sendall(b"ping"); a.sendall(a.recv(4))
        return "ok", c.getpeername()[0], c.recv(4).decode(), a.getsockname()[0]
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e)), None, None, None
    finally:
        c.close()
try:
    l6 = listener(socket.AF_INET6, "::", v6only=True); port = l6.getsockname()[1]
    say("ip-per-task", l6.getsockname()[0] == ip6, f"[::]:0 bound to {l6.getsockname()[0]} (task ip6 {ip6})")
    l4 = listener(socket.AF_INET, "0.0.0.0", port)
    say("ip-per-task", l4.getsockname()[0] == ip4, f"0.0.0.0:{port} bound to {l4.getsockname()[0]} (task ip4 {ip4})")
    r = roundtrip(socket.AF_INET6, l6, "::1", port)
    say("localhost-redirect", r == ("ok", "::1", "ping", ip6), f"[::1]:{port} reaches the task listener on its task IP, peer shown as ::1: {r}")
    r = roundtrip(socket.AF_INET, l4, "127.0.0.1", port)
    say("localhost-redirect", r == ("ok", "127.0.0.1", "ping", ip4), f"127.0.0.1:{port} reaches the task listener on its task IP: {r}")
    ld = listener(socket.AF_INET6, host6, pdrop); lp = listener(socket.AF_INET6, host6, ppass)
    r = roundtrip(socket.AF_INET6, ld, host6, pdrop)
    say("twfw", r[0] in ("ECONNREFUSED", "EPERM"), f"[{host6}]:{pdrop} (dropped by the policy) refused: {r[0]}")
    r = roundtrip(socket.AF_INET6, lp, host6, ppass)
    say("twfw", r[0] == "ok", f"[{host6}]:{ppass} (not dropped) connects: {r[0]}")
except Exception as e:
    say("ip-per-task", False, f"python check crashed: {e!r}")
PYEOF
nv=0
while read -r plugin verdict what; do
  case $verdict in
    ok) ok "$plugin: $what"; nv=$((nv + 1)) ;;
    FAIL) fail "$plugin: $what" "${col[$plugin]+$plugin}"; nv=$((nv + 1)) ;;
    *) echo "$plugin $verdict $what" ;;
  esac
done < "$work/b-checks"
[ "$nv" = 6 ] || { fail "B's checker gave $nv of 6 verdicts"; for c in ip-per-task localhost-redirect twfw; do col[$c]=fail; done; }
# sysctl: a netns of its own, so the allowed write changes nothing outside it.
# The denial comes at write(2), not open(2): coreutils echo reports the write's errno, sh's builtin does not.
sc=$(sh -c "echo \$\$ > $cgb/cgroup.procs && exec unshare -n sh -c '
  /bin/echo 1000 > /proc/sys/net/ipv4/ip_unprivileged_port_start && echo allowed=ok || echo allowed=fail
  /bin/echo \"1 0\" > /proc/sys/net/ipv4/ping_group_range && echo denied=written'" 2>&1)
grep -q allowed=ok <<<"$sc" && ok "sysctl: allowed write (ip_unprivileged_port_start=1000) passes" \
  || fail "sysctl: allowed write failed: $sc" sysctl
if grep -q 'Operation not permitted' <<<"$sc" && ! grep -q denied=written <<<"$sc"; then
  ok "sysctl: write of net.ipv4.ping_group_range (denied by the annotation) fails with EPERM"
else
  fail "sysctl: denied write did not fail with EPERM: $sc" sysctl
fi

# poststop after the containers are gone, the way runtimes do it; both at once.
kill -9 "$spid" "$bpid"; wait "$spid" "$bpid" 2>/dev/null; spid=""; bpid=""
poststop() { printf '{"ociVersion":"1.0.2","id":"%s","status":"stopped","bundle":"/tmp"}' "$1" | env -i "$NODE" "$ROOT/dist/taskwire-hook.js" poststop --config "$work/config.json"; }
poststop "$id" & pa=$!
poststop "$idb" & pb=$!
wait "$pa" || fail "poststop (A)" netns
wait "$pb" || fail "poststop (B)" twfw
sleep 0.3
ip link show "$hostdev" >/dev/null 2>&1 && fail "host device $hostdev remains" netns || ok "host device gone"
[ -n "$ip4" ] && [ -n "$(ip route show "$ip4/32")" ] && fail "route $ip4/32 remains" netns
for a in "$ipt6" "$bip6" "$bip4"; do
  [ -n "$a" ] && ip -br addr show dev lo | grep -qw "$a" && fail "ip-per-task address $a remains" ip-per-task
done
[ -e "$rec" ] && fail "record (A) remains" netns
[ -e "$recb" ] && fail "record (B) remains" twfw
[ -e "$work/run/twfw/$idb.json" ] && fail "twfw state remains" twfw
for c in "$cg" "$cgb"; do
  n=$(bpftool cgroup show "$c" 2>/dev/null | grep -c tw_)
  [ "$n" -gt 0 ] && fail "$n programs remain on $c"
done
left=$(find "$bpffs/taskwire" -mindepth 1 -path '*/_shared' -prune -o -print 2>/dev/null)
[ -n "$left" ] && fail "pins remain: $left" || ok "no pins, record, program, device or route left"

printf 'matrix:'; for c in netns ip-per-task localhost-redirect twfw sysctl; do
  v=${col[$c]}; [ "$c" = netns ] && [ "$v" = pass ] && v=$device/$attach
  printf ' %s=%s' "$c" "$v"
done; echo
if [ ${#fails[@]} -eq 0 ]; then
  echo "focused: PASS kernel=$rel device=$device attach=$attach"
else
  echo "focused: FAIL kernel=$rel device=${device:-?} attach=${attach:-?} ($(IFS=';'; echo "${fails[*]}"))"
  [ -f "$work/taskwire.log" ] && tail -5 "$work/taskwire.log"
  exit 1
fi
