#!/bin/bash
# taskwire-vm stage 2: PID 1 on the overlay root. Finishes the mounts, runs the command from
# /run/taskwire-vm/cmd in the directory named in /run/taskwire-vm/cwd, writes its output and
# exit status to the results share (/run/taskwire-vm, a 9p share of a host temp dir), powers off.
O=/run/taskwire-vm
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8 TASKWIRE_VM=1 TASKWIRE_VM_KERNEL="$(uname -r)"

off() {
  sync
  echo o > /proc/sysrq-trigger 2>/dev/null
  /bin/busybox poweroff -f
  sleep 10
}
trap off EXIT

mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
# devtmpfs has no /dev/fd: without it bash's process substitution <(...) fails.
ln -sfn /proc/self/fd /dev/fd 2>/dev/null
for i in 0:stdin 1:stdout 2:stderr; do ln -sfn "/proc/self/fd/${i%%:*}" "/dev/${i#*:}" 2>/dev/null; done
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t bpf -o mode=0700 bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# The guest kernel's modules, from the cache (visible through the 9p root), for modprobe.
rel=$(uname -r)
kc="$(cat "$O/cache" 2>/dev/null || echo /var/cache/taskwire-vm)/$rel"
if [ -d "$kc/lib/modules/$rel" ]; then
  mkdir -p "/lib/modules/$rel"
  mount --bind "$kc/lib/modules/$rel" "/lib/modules/$rel"
fi
if [ -f "$kc/config" ] && [ ! -e "/boot/config-$rel" ]; then
  mkdir -p /boot && cp "$kc/config" "/boot/config-$rel" 2>/dev/null
fi
ip link set lo up
hostname taskwire-vm 2>/dev/null

cd "$(cat "$O/cwd")" || { echo "taskwire-vm: cannot cd to $(cat "$O/cwd")"; echo 125 > "$O/status"; exit; }
echo "taskwire-vm: $(uname -r): up in $(cut -d' ' -f1 /proc/uptime)s, running: $(cat "$O/cmd")"
bash -c "$(cat "$O/cmd")" </dev/null 2>&1 | tee "$O/output"
rc=${PIPESTATUS[0]}
echo "$rc" > "$O/status.tmp" && mv "$O/status.tmp" "$O/status"
echo "taskwire-vm: exit status $rc after $(cut -d' ' -f1 /proc/uptime)s"
