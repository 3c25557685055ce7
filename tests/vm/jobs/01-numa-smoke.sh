#!/bin/bash
# zpmfs-vm: --numa
# Two NUMA nodes, one CPU and one NVDIMM each: pmem0 must be on node 0 and pmem1 on node 1,
# and both DAX-capable. Run alone: tests/vm/run-guest.sh --numa tests/vm/jobs/01-numa-smoke.sh
set -euo pipefail

ls -d /sys/devices/system/node/node*
for n in 0 1; do
	echo "node$n: cpus $(cat /sys/devices/system/node/node$n/cpulist)"
done
for i in 0 1; do
	test -b /dev/pmem$i || { echo "FAIL: no /dev/pmem$i"; exit 1; }
	node="$(cat /sys/block/pmem$i/device/numa_node)"
	echo "pmem$i: numa_node $node"
	[ "$node" = "$i" ] || { echo "FAIL: pmem$i is on node $node, want $i"; exit 1; }
	mkfs.ext4 -q -F -b 4096 /dev/pmem$i
	mkdir -p /mnt/pm$i
	mount -o dax /dev/pmem$i /mnt/pm$i
	grep -q " /mnt/pm$i .*dax" /proc/mounts || { echo "FAIL: pmem$i not DAX"; exit 1; }
	# A writer pinned to the node's CPU.
	taskset -c "$i" dd if=/dev/zero of=/mnt/pm$i/f bs=1M count=8 status=none
	umount /mnt/pm$i
done
echo "numa-smoke: OK"
