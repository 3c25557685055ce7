#!/bin/bash
# zpmfs-vm: --rootfs
# The Debian guest root (build-guest.sh --rootfs), the one fstests runs in: its tools are there,
# modules load from its /lib/modules, and xfs and ext4 mount with DAX on /dev/pmem0.
set -euo pipefail

# shellcheck source=/dev/null
. /etc/os-release
echo "$PRETTY_NAME, kernel $(uname -r)"
for t in bash perl xfs_io mkfs.xfs fio getfattr setfacl killall bc gawk ndctl numactl \
	taskset strace python3 quota dbench; do
	command -v "$t" >/dev/null || { echo "FAIL: $t missing"; exit 1; }
done
id fsgqa >/dev/null && id 123456-fsgqa >/dev/null && id fsgqa2 >/dev/null
test -b /dev/pmem0 || { echo "FAIL: no /dev/pmem0"; exit 1; }
modprobe xfs
mkfs.xfs -q -f -m reflink=0 /dev/pmem0
mkdir -p /mnt/pm
mount -o dax=always /dev/pmem0 /mnt/pm
grep ' /mnt/pm ' /proc/mounts
grep -q ' /mnt/pm xfs .*dax' /proc/mounts || { echo "FAIL: xfs not DAX"; exit 1; }
xfs_io -f -c 'pwrite -q 0 1m' -c 'fsync' -c 'stat' /mnt/pm/f | grep -E 'fsxattr.xflags|stat.size'
fio --name=w --filename=/mnt/pm/fio --size=8m --bs=4k --rw=randwrite --ioengine=psync \
	--direct=1 --runtime=2 --time_based=0 --output-format=terse >/dev/null
echo "fio ok"
umount /mnt/pm
if dmesg | grep -E 'Oops|BUG:|WARNING:|Call Trace'; then
	echo "FAIL: kernel warnings in dmesg"
	exit 1
fi
echo "rootfs-smoke: OK"
