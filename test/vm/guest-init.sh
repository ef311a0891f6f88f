#!/bin/busybox sh
# taskwire-vm initramfs /init (busybox). Loads the modules the 9p root needs, mounts the host
# root read-only over 9p with a tmpfs overlay on top, mounts the results share, and hands over
# to /run/taskwire-vm/stage2.sh (bash from the host root) with switch_root.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

fail() {
  echo "taskwire-vm init: $*"
  echo o > /proc/sysrq-trigger
  poweroff -f
}

for m in $(cat /mods/order); do
  insmod "/mods/$m" || fail "insmod $m failed"
done

P9="trans=virtio,version=9p2000.L,msize=262144"
i=0
until mount -t 9p -o "ro,$P9,cache=loose" hostroot /lower 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 50 ] || fail "cannot mount the hostroot 9p share"; sleep 0.1
done
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
  || fail "cannot mount the overlay root"

mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run
# /tmp stays the host's (seen through the overlay, written to its tmpfs upper): a checkout
# under /tmp, as CI's fresh clone may be, must be visible to the guest.
mkdir -p /newroot/run/taskwire-vm
mount -t 9p -o "$P9" twout /newroot/run/taskwire-vm || fail "cannot mount the twout 9p share"
[ -x /newroot/bin/bash ] || fail "no /bin/bash on the host root"
exec switch_root /newroot /bin/bash /run/taskwire-vm/stage2.sh
