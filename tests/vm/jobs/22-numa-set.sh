#!/bin/bash
# A zpmfs device set in a guest with two NUMA nodes (one CPU and one NVDIMM each), over FUSE:
# mkfs.zpmfs across both NVDIMMs (each member's node from sysfs), mount naming only the
# second (the first is found by UUID), a writer pinned to each node's CPU, `zus status`
# shows each writer's blocks on its own node and no spill; kill -9 of zus under a writer,
# recovery, fsck of the whole set; then the local against forced-remote placement benchmark
# (zbench numa) on DAX files, one per node, with the spill counters of a full node.
# Devices are found by NUMA node: /dev/pmemN numbering need not follow NVDIMM order.
# zpmfs-vm: --numa --timeout 900 --extra @REPO@/target/release/zus:/usr/sbin/zus --extra @REPO@/target/release/mkfs-zpmfs:/usr/sbin/mkfs.zpmfs --extra @REPO@/target/release/fsck-zpmfs:/usr/sbin/fsck.zpmfs --extra @REPO@/target/release/zbench:/usr/sbin/zbench --extra /lib/x86_64-linux-gnu/libgcc_s.so.1:/lib/x86_64-linux-gnu/libgcc_s.so.1
set -uo pipefail

fail() { echo "FAIL: $*"; cat /tmp/zus.log 2>/dev/null | tail -20; dmesg | tail -20; exit 1; }
step() { echo; echo "== $*"; }
MNT=/mnt/set
zus_pids() { for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = zus ] && echo "${p#/proc/}"; done; }

for d in /sys/block/pmem*; do
	node="$(cat "$d/device/numa_node")"
	eval "PM$node=/dev/$(basename "$d")"
done
[ -n "${PM0:-}" ] && [ -n "${PM1:-}" ] || fail "want one NVDIMM on node 0 and one on node 1"
echo "node 0: $PM0, node 1: $PM1; CPUs: node0 $(cat /sys/devices/system/node/node0/cpulist), node1 $(cat /sys/devices/system/node/node1/cpulist)"
modprobe fuse 2>/dev/null
[ -c /dev/fuse ] || fail "no /dev/fuse in the guest"
mkdir -p "$MNT" /run

step "mkfs across both nodes"
mkfs.zpmfs -f "$PM0" "$PM1" | tee /tmp/mkfs.out || fail mkfs
grep -q "$PM0 .*NUMA node 0" /tmp/mkfs.out && grep -q "$PM1 .*NUMA node 1" /tmp/mkfs.out ||
	fail "mkfs did not take each member's node from sysfs"

step "mount naming only the second member"
zus mount "$PM1" "$MNT" >>/tmp/zus.log 2>&1 || fail "mount of $PM1"
grep " $MNT " /proc/mounts
zus status "$MNT" | tee /tmp/before || fail "zus status"

step "a writer pinned to each node"
for n in 0 1; do
	taskset -c "$n" dd if=/dev/urandom of="$MNT/node$n" bs=1M count=16 status=none || fail "writer on CPU $n"
done
zus status "$MNT" | tee /tmp/after
field() { sed -n "s/^node=$1 .*$2=\([0-9]*\).*/\1/p" "$3"; }
for n in 0 1; do
	local_blocks=$(($(field $n local /tmp/after) - $(field $n local /tmp/before)))
	echo "node $n: $local_blocks blocks allocated by its CPU on it, $(field $n spilled /tmp/after) spilled"
	[ "$local_blocks" -ge 4096 ] || fail "node $n: the 16 MiB its CPU wrote did not land on it"
	[ "$(field $n spilled /tmp/after)" = 0 ] || fail "node $n spilled"
done
sha0=$(sha256sum <"$MNT/node0") && sha1=$(sha256sum <"$MNT/node1")

step "kill -9 of zus under a writer, recovery, fsck of the set"
(taskset -c 1 dd if=/dev/zero of="$MNT/killed" bs=64k count=100000 status=none) 2>/dev/null &
W=$!
sleep 2
kill -9 $(zus_pids)
for _ in $(seq 50); do kill -0 $W 2>/dev/null || break; sleep 0.2; done
kill -0 $W 2>/dev/null && fail "writer hangs after zus died"
umount "$MNT" 2>/dev/null || umount -l "$MNT" || fail "umount after kill"
zus mount "$PM0" "$MNT" >>/tmp/zus.log 2>&1 || fail "mount after kill"
tail -1 /tmp/zus.log
[ "$(sha256sum <"$MNT/node0")" = "$sha0" ] && [ "$(sha256sum <"$MNT/node1")" = "$sha1" ] ||
	fail "completed writes changed after kill -9"
umount "$MNT" || fail umount
for _ in $(seq 50); do [ -z "$(zus_pids)" ] && break; sleep 0.2; done
fsck.zpmfs -n -f "$PM0" || fail "fsck of the set (from the first member)"
fsck.zpmfs -n -f "$PM1" || fail "fsck of the set (from the second member)"

step "local against forced-remote placement, and a full node (zbench numa)"
# DAX files, one on each node's NVDIMM: zpmfs maps them with MAP_SYNC and stores to the
# NVDIMM's memory directly, as on PM.
for n in 0 1; do
	dev=$(eval echo "\$PM$n")
	mkfs.ext4 -q -F -b 4096 "$dev" || fail "mkfs.ext4 $dev"
	mkdir -p "/mnt/dax$n" && mount -o dax "$dev" "/mnt/dax$n" || fail "mount dax $dev"
	truncate -s 160M "/mnt/dax$n/member.img"
done
mkfs.zpmfs -q --numa-nodes 0,1 /mnt/dax0/member.img /mnt/dax1/member.img || fail "mkfs on DAX files"
zbench numa --devices /mnt/dax0/member.img:/mnt/dax1/member.img --secs 4 --mib 32 --rounds 3 | tee /tmp/numa.json ||
	fail "zbench numa"
# The median of the rounds' mean latencies, remote over local.
median() { sed -n "s/.*\"target\":\"zpmfs_numa_$1\".*\"mean_us\":\([0-9.]*\).*/\1/p" /tmp/numa.json | sort -n | sed -n 2p; }
awk -v l="$(median local)" -v r="$(median remote)" 'BEGIN { printf "NUMA-RATIO remote/local median mean latency: %.2f (local %s us, remote %s us)\n", r / l, l, r }'
# Every round placed where it was told: local on node 0 only, remote on node 1 only.
grep '"target":"zpmfs_numa_local"' /tmp/numa.json | grep -v '"node0_blocks":[1-9][0-9]*,"node1_blocks":0,' &&
	fail "a local round placed blocks on node 1"
grep '"target":"zpmfs_numa_remote"' /tmp/numa.json | grep -v '"node0_blocks":0,"node1_blocks":[1-9]' &&
	fail "a remote round placed blocks on node 0"
grep -q '"target":"zpmfs_numa_spill".*"node":0,.*"spilled":[1-9]' /tmp/numa.json || fail "a full node 0 did not spill"
for n in 0 1; do umount "/mnt/dax$n"; done
echo "numa-set: OK"
