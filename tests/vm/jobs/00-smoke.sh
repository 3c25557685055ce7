#!/bin/bash
# Harness smoke test: /dev/pmem0 exists, is DAX-capable (ext4 mounts with -o dax), and a file
# written there reads back. Run alone: tests/vm/run-guest.sh tests/vm/jobs/00-smoke.sh
set -euo pipefail

echo "kernel $(uname -r), $(nproc) CPUs"
test -b /dev/pmem0 || { echo "FAIL: no /dev/pmem0"; ls /dev; exit 1; }
ndctl list -N
mkfs.ext4 -q -F -b 4096 /dev/pmem0
mkdir -p /mnt
mount -o dax /dev/pmem0 /mnt
grep ' /mnt ' /proc/mounts
grep ' /mnt ' /proc/mounts | grep -q dax || { echo "FAIL: /mnt not mounted with dax"; exit 1; }
dd if=/dev/urandom of=/tmp/data bs=64k count=16 status=none
cp /tmp/data /mnt/data
sync
umount /mnt
mount -o dax /dev/pmem0 /mnt
cmp /tmp/data /mnt/data
echo "read back $(stat -c %s /mnt/data) bytes after remount: $(md5sum </mnt/data | cut -d' ' -f1)"
umount /mnt
if dmesg | grep -E 'Oops|BUG:|WARNING:|Call Trace'; then
	echo "FAIL: kernel warnings in dmesg"
	exit 1
fi
echo "smoke: OK"
