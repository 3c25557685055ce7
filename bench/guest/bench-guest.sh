#!/bin/bash
# The guest half of `make bench`: runs in the Debian --rootfs guest (tests/vm/run-guest.sh),
# started by bench/guest/run.sh, which reads its output. Side by side on one guest: zpmfs over
# zuf.ko on /dev/pmem0 (each call to its CPU's server thread, then with the polling channel),
# ext4-DAX and xfs-DAX on /dev/pmem0, zpmfs over FUSE (image in the
# guest's /dev/shm) and tmpfs; fio 4 KiB random write and read (O_DIRECT, psync, as on the
# host) and zbench meta; beside them the round-trip floor (zbench switch) and zpmfs
# in-process. Prints zbench's JSON lines and one `FIOJSON NAME {...}` line per fio run.
# Under TCG absolute times mean nothing: compare only ratios within this run.
# zpmfs-vm: --rootfs --timeout 1800 --mem 3G --extra @REPO@/kernel/zuf.ko:/zuf/zuf.ko --extra @REPO@/target/release/zus:/usr/sbin/zus --extra @REPO@/target/release/mkfs-zpmfs:/usr/sbin/mkfs.zpmfs --extra @REPO@/target/release/zbench:/usr/sbin/zbench --extra /lib/x86_64-linux-gnu/libgcc_s.so.1:/lib/x86_64-linux-gnu/libgcc_s.so.1
set -uo pipefail

# Defaults (quick); bench/guest/run.sh passes /zbench/params to change them.
SECS=2
FILE_MIB=4
META_FILES=200
THREADS="1"
WORKLOADS="randwrite_4k"
# shellcheck source=/dev/null
[ -r /zbench/params ] && . /zbench/params

MNT=/mnt/bench
mkdir -p "$MNT"
T0=$(date +%s)
note() { echo "# [$(($(date +%s) - T0))s] $*"; }
fail() { echo "FAIL: $*"; dmesg | tail -30; exit 1; }

fio_job() { # target dir workload threads
	local target=$1 dir=$2 wl=$3 t=$4 spec out=/tmp/fio.json
	case $wl in
	randwrite_4k) spec="--rw=randwrite --bs=4k --direct=1 --overwrite=1 --time_based --size=${FILE_MIB}m" ;;
	randread_4k) spec="--rw=randread --bs=4k --direct=1 --time_based --size=${FILE_MIB}m" ;;
	append_4k_fdatasync) spec="--rw=write --bs=4k --file_append=1 --fdatasync=1 --size=${FILE_MIB}m --unlink=1" ;;
	seqwrite_64k) spec="--rw=write --bs=64k --direct=1 --overwrite=1 --time_based --size=${FILE_MIB}m" ;;
	seqread_64k) spec="--rw=read --bs=64k --direct=1 --time_based --size=${FILE_MIB}m" ;;
	esac
	# shellcheck disable=SC2086
	# Job i on vCPU i, as on the host (bench/run.sh says why).
	local run="fio --name=$wl --directory=$dir --ioengine=psync $spec --runtime=$SECS --numjobs=$t
		--cpus_allowed=0-$(($(nproc) - 1)) --cpus_allowed_policy=split
		--group_reporting --lat_percentiles=1 --randrepeat=0 --norandommap --fallocate=none
		--output-format=json --output=$out"
	# The guest's 6.1 tmpfs has no O_DIRECT: there the same job runs buffered (said so).
	if $run >/dev/null 2>/tmp/fio.err ||
		{ grep -q 'does not support direct' /tmp/fio.err && note "$target $wl: no O_DIRECT, buffered" &&
			$run --direct=0 >/dev/null 2>/tmp/fio.err; }; then
		echo "FIOJSON $target.$wl.$t $(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' $out)"
	else
		note "fio $target $wl $t failed: $(tail -2 /tmp/fio.err)"
	fi
	rm -f "$dir/$wl".*
}

run_target() { # target dir
	local t wl
	note "$1: fio"
	for t in $THREADS; do
		for wl in $WORKLOADS; do
			fio_job "$1" "$2" "$wl" "$t"
		done
	done
	note "$1: metadata"
	# On vCPU 0 as fio's job 0: off the CPU of zuf.ko's poller (guest_zpmfs_zuf_poll).
	taskset -c 0 zbench meta --dir "$2" --files "$META_FILES" --dirs 1 --threads 1 --target "$1" ||
		note "meta $1 onedir failed"
	taskset -c 0 zbench meta --dir "$2" --files "$META_FILES" --dirs 20 --threads 1 --target "$1" ||
		note "meta $1 spread failed"
}

echo "{\"kind\":\"guest_machine\",\"desc\":\"qemu TCG guest (-accel tcg,thread=multi -cpu max), $(nproc) vCPUs, $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo) GiB, Linux $(uname -r), NVDIMM $(($(cat /sys/block/pmem0/size) / 2048)) MiB fsdax, $(fio --version); $SECS s per fio run, $FILE_MIB MiB per file, $META_FILES files for metadata\"}"

# The floors under zpmfs over zuf.ko in this guest: a round trip between two tasks on one vCPU
# (what any hand-over to a server thread and back costs here), and zpmfs's own work per write
# in-process (image in /dev/shm, as for FUSE below).
zbench switch --secs "$SECS" | sed 's/"target":"switch_floor"/"target":"guest_switch_floor"/' ||
	note "zbench switch failed"
if mkfs.zpmfs -q -s 1G /dev/shm/inproc.img; then
	zbench inproc --image /dev/shm/inproc.img --threads 1 --secs "$SECS" --mib "$FILE_MIB" |
		sed 's/"target":"zpmfs_inprocess"/"target":"guest_zpmfs_inprocess"/' || note "zbench inproc failed"
	rm -f /dev/shm/inproc.img
else
	note "mkfs.zpmfs of the in-process image failed"
fi

# ext4-DAX
mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail mkfs.ext4
mount -o dax=always /dev/pmem0 "$MNT" || fail "mount ext4 dax"
grep -q " $MNT ext4 .*dax" /proc/mounts || fail "ext4 is not DAX"
run_target guest_ext4_dax "$MNT"
umount "$MNT"

# xfs-DAX
modprobe xfs
mkfs.xfs -q -f -m reflink=0 /dev/pmem0 || fail mkfs.xfs
mount -o dax=always /dev/pmem0 "$MNT" || fail "mount xfs dax"
grep -q " $MNT xfs .*dax" /proc/mounts || fail "xfs is not DAX"
run_target guest_xfs_dax "$MNT"
umount "$MNT"

# zpmfs over zuf.ko
insmod /zuf/zuf.ko || fail insmod
zus serve >>/tmp/zus.log 2>&1 &
ZUS=$!
for _ in $(seq 100); do grep -q zpmfs /proc/filesystems && break; sleep 0.1; done
grep -q zpmfs /proc/filesystems || { cat /tmp/zus.log; fail "zus did not register"; }
mkfs.zpmfs -f -q /dev/pmem0 || fail mkfs.zpmfs
mount -t zpmfs /dev/pmem0 "$MNT" || { cat /tmp/zus.log; fail "mount zpmfs"; }
run_target guest_zpmfs_zuf "$MNT"
umount "$MNT"
kill "$ZUS"
wait "$ZUS" 2>/dev/null

# zpmfs over zuf.ko with the polling channel on the last vCPU: the calls of fio's job 0 and of
# zbench meta (vCPU 0) are answered by the poller without a sleep or an address-space switch.
POLL_CPU=$(($(nproc) - 1))
printf '[zuf]\npoll_cpu = %d\n' "$POLL_CPU" >/tmp/zus-poll.toml
zus serve --config /tmp/zus-poll.toml >>/tmp/zus.log 2>&1 &
ZUS=$!
for _ in $(seq 100); do grep -q "polling for calls" /tmp/zus.log && break; sleep 0.1; done
mkfs.zpmfs -f -q /dev/pmem0 || fail mkfs.zpmfs
if grep -q "polling for calls" /tmp/zus.log && mount -t zpmfs /dev/pmem0 "$MNT"; then
	run_target guest_zpmfs_zuf_poll "$MNT"
	umount "$MNT"
else
	note "zus with a poller did not start or mount: $(tail -3 /tmp/zus.log)"
fi
kill "$ZUS"
wait "$ZUS" 2>/dev/null
rmmod zuf 2>/dev/null

# zpmfs over FUSE (the image in the guest's /dev/shm: DRAM, as the NVDIMM is under TCG)
if modprobe fuse 2>/dev/null && [ -c /dev/fuse ]; then
	mkfs.zpmfs -q -s 1G /dev/shm/zpmfs.img || fail "mkfs.zpmfs image"
	if zus mount /dev/shm/zpmfs.img "$MNT" >/dev/null; then
		run_target guest_zpmfs_fuse "$MNT"
		umount "$MNT"
	else
		note "zus mount over FUSE failed in the guest"
	fi
	rm -f /dev/shm/zpmfs.img
else
	note "no /dev/fuse in the guest: zpmfs over FUSE skipped"
fi

# tmpfs
mount -t tmpfs -o size=1G bench-tmpfs "$MNT"
run_target guest_tmpfs "$MNT"
umount "$MNT"

note "done"
if dmesg | grep -E 'Oops|BUG:|WARNING:|Call Trace'; then
	fail "kernel warnings in dmesg"
fi
echo "bench-guest: OK"
