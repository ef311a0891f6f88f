#!/bin/bash
# Placeholder kernel-matrix test: kernel release, cgroup2 + bpffs mounted, netkit support.
# Run directly (host) or through test/vm/run-matrix.sh (guests). Exit 0 unless a mount is missing.
set -u
rc=0
echo "uname -r: $(uname -r)"

# fstype and mount point of each mount, from mountinfo (fields after the " - " separator).
mounts=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1), $5; break } }' /proc/self/mountinfo)
cg2=$(awk '$1 == "cgroup2" { print $2; exit }' <<<"$mounts")
bpffs=$(awk '$1 == "bpf" { print $2; exit }' <<<"$mounts")
if [ -n "$cg2" ]; then echo "cgroup2: $cg2"; else echo "cgroup2: NOT MOUNTED"; rc=1; fi
if [ -n "$bpffs" ]; then echo "bpffs: $bpffs"
# Not mounted (the dev host has none): a private bpffs in a throwaway mount namespace must work.
elif unshare -m sh -c 'd=$(mktemp -d) && mount -t bpf bpf "$d" && umount "$d"; r=$?; rmdir "$d"; exit $r' 2>/dev/null; then
  echo "bpffs: not mounted, but a private bpffs mounts fine"
else echo "bpffs: NOT MOUNTED and cannot be mounted"; rc=1; fi

# netkit: what the kernel says, then what iproute2 can do with it.
rel=$(uname -r)
cfg=""
for f in "/boot/config-$rel" "/var/cache/taskwire-vm/$rel/config"; do [ -r "$f" ] && { cfg=$f; break; }; done
kconf="unknown"
if [ -n "$cfg" ]; then kconf=$(grep -E '^CONFIG_NETKIT=' "$cfg" || echo "CONFIG_NETKIT unset"); kconf="$kconf ($cfg)"
elif [ -r /proc/config.gz ]; then kconf=$(zcat /proc/config.gz | grep -E '^CONFIG_NETKIT=' || echo "CONFIG_NETKIT unset")
fi
echo "kernel config: $kconf"
[ -d /sys/module/netkit ] && echo "/sys/module/netkit: present"
if modprobe -n -q netkit 2>/dev/null; then echo "modprobe netkit: available (module or built-in)"; fi

ip link del tw-vmtest >/dev/null 2>&1
if err=$(ip link add tw-vmtest type netkit 2>&1); then
  echo "netkit: yes (ip link add tw-vmtest type netkit worked: $(ip -o link show type netkit 2>/dev/null | awk -F': ' '{print $2}' | tr '\n' ' '))"
  ip link del tw-vmtest || { echo "could not delete tw-vmtest"; rc=1; }
else
  case $kconf in
    *CONFIG_NETKIT=y*|*CONFIG_NETKIT=m*) echo "netkit: yes in the kernel, but iproute2 ($(ip -V)) failed: $err" ;;
    *) echo "netkit: no ($err)" ;;
  esac
fi
exit $rc
