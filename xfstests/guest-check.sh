#!/bin/bash
# Runs inside the qemu guest (tests/vm/run-guest.sh --rootfs), started by `xfstests/run --zuf`
# or `xfstests/run --ext4-dax` through a small generated job script:
#
#   guest-check.sh TRANSPORT [check args...]      TRANSPORT: zuf | ext4-dax
#
# What the host put in the guest (--extra): the built fstests tree in /opt/fstests, this
# script and the exclude list in /opt/zpmfs-xfstests/, and for zuf: zuf.ko in /opt/zpmfs/,
# zus, mkfs.zpmfs and fsck.zpmfs in /usr/sbin (= /sbin: the Debian root is merged-/usr, so
# `mkfs -t zpmfs` and `fsck -t zpmfs` find them). Of the three NVDIMMs, two are TEST_DEV and
# SCRATCH_DEV and the smallest is the results device: the results (check's log,
# the .out.bad/.full/.dmesg of every failed test, dmesg, the zus log, fsck's verdict) go there
# as a gzipped tar behind a one-block header, which the host finds in the NVDIMM image file.
# check's output also goes live to the job output (the second serial port).
set -uo pipefail

transport=${1:?transport}
shift
FST=/opt/fstests
ME=/opt/zpmfs-xfstests
OUT=/tmp/xfstests-out
RESULTS_DEV=none
MAGIC=ZPMFS-XFSTESTS-RESULTS-V1
mkdir -p "$OUT"
: >"$OUT/check.log"
echo "unknown" >"$OUT/fsck_status"
echo "-1" >"$OUT/check_status"

say() { echo "guest-check: $*"; }

# The results device: block 0 is a header (magic, then size= and offset= of a gzipped tar of
# $OUT); the tar goes to the one of two slots the header does not point at, and the header is
# rewritten only after the tar is complete, so a guest killed at any moment (timeout) leaves
# the last complete snapshot readable. A snapshot is written every 5 minutes during the run
# and one at the end.
# Slots at 1 MiB and 257 MiB of the 512M NVDIMM (about 502 MiB once fsdax holds its memmap).
SLOT_BYTES=$((240 << 20))
# Under a lock: the snapshot loop and the final write never overlap (a loop killed mid-write
# leaves its writer running, and the final write waits for it). Prints the tar's size.
write_results()
{
	(
		flock 9 || exit 1
		[ -b "$RESULTS_DEV" ] || exit 1
		local offset size cur
		dmesg >"$OUT/dmesg.log" 2>&1
		[ -f /tmp/zus.log ] && cp /tmp/zus.log "$OUT/zus.log"
		# The evidence of each failed test so far: check writes .out.bad for an output
		# mismatch and .dmesg for kernel warnings, only for failures.
		local bad t f
		for bad in "$FST"/results/*/*.out.bad "$FST"/results/*/*.dmesg; do
			[ -f "$bad" ] || continue
			t=${bad#"$FST"/results/}
			t=${t%.out.bad}
			t=${t%.dmesg}
			mkdir -p "$OUT/$(dirname "$t")"
			for f in "$FST/results/$t".out.bad "$FST/results/$t".full "$FST/results/$t".dmesg; do
				[ -f "$f" ] && cp "$f" "$OUT/$(dirname "$t")/"
			done
		done
		tar -C "$OUT" -czf /tmp/results.tgz . 2>/dev/null
		size=$(stat -c %s /tmp/results.tgz)
		if [ "$size" -gt "$SLOT_BYTES" ]; then
			# Too big (huge .full files): keep the logs only.
			tar -C "$OUT" -czf /tmp/results.tgz --exclude='*.full' . 2>/dev/null
			size=$(stat -c %s /tmp/results.tgz)
		fi
		# The slot the header does not point at.
		cur=$(head -c 200 "$RESULTS_DEV" | tr -d '\0' | sed -n 's/^offset=//p')
		offset=$((1 << 20))
		[ "$cur" != "$offset" ] || offset=$((257 << 20))
		dd if=/tmp/results.tgz of="$RESULTS_DEV" bs=1M seek="$offset" oflag=seek_bytes \
			conv=fsync,notrunc status=none || exit 1
		{
			printf '%s\nsize=%s\noffset=%s\n' "$MAGIC" "$size" "$offset"
			head -c 4096 /dev/zero
		} | head -c 4096 >/tmp/results.hdr
		dd if=/tmp/results.hdr of="$RESULTS_DEV" bs=4096 count=1 conv=fsync,notrunc status=none || exit 1
		echo "$size"
	) 9>/tmp/results.lock
}

# shellcheck disable=SC2317  # run by the EXIT trap
save_results()
{
	local rc=$? size
	trap - EXIT
	[ -z "${progress:-}" ] || kill "$progress" 2>/dev/null
	if size=$(write_results); then
		say "results ($size bytes) written to $RESULTS_DEV"
	else
		say "could not write the results to $RESULTS_DEV"
	fi
	exit "$rc"
}
trap save_results EXIT

# The guest's /dev is a bare devtmpfs (no udev): add the links bash's process substitution
# (./check reads the exclude list through <(...)) and many tests rely on.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr

# /dev/pmemN names do not follow qemu's NVDIMM order (seen: the third NVDIMM as /dev/pmem1),
# so the devices are told apart by size: the results device is the smallest (the host makes
# it smaller than the others), TEST_DEV and SCRATCH_DEV are the other two in name order.
devs=()
for d in /dev/pmem[0-9]*; do
	[ -b "$d" ] && devs+=("$(blockdev --getsize64 "$d") $d")
done
[ "${#devs[@]}" -eq 3 ] || { say "want 3 pmem devices, have: ${devs[*]}"; RESULTS_DEV=none; exit 2; }
RESULTS_DEV=$(printf '%s\n' "${devs[@]}" | sort -n | head -n 1 | cut -d' ' -f2)
mapfile -t pair < <(printf '%s\n' "${devs[@]}" | cut -d' ' -f2 | grep -vx "$RESULTS_DEV" | sort -V)
TEST_DEV=${pair[0]}
SCRATCH_DEV=${pair[1]}
say "TEST_DEV $TEST_DEV, SCRATCH_DEV $SCRATCH_DEV, results on $RESULTS_DEV"
[ -x "$FST/check" ] || { say "no fstests tree in $FST"; exit 2; }

TEST_DIR=/mnt/test
SCRATCH_MNT=/mnt/scratch
mkdir -p "$TEST_DIR" "$SCRATCH_MNT"

case "$transport" in
zuf)
	insmod /opt/zpmfs/zuf.ko || { say "insmod zuf.ko failed"; exit 2; }
	# zpmfs_poll_cpu=N on the guest kernel command line (GUEST_OPTS="--append
	# zpmfs_poll_cpu=N"): zus answers the other CPUs' calls from a poller on CPU N.
	zus_conf=()
	for a in $(cat /proc/cmdline); do
		case "$a" in
		zpmfs_poll_cpu=*)
			printf '[zuf]\npoll_cpu = %s\n' "${a#zpmfs_poll_cpu=}" >/tmp/zus.toml
			zus_conf=(--config /tmp/zus.toml)
			say "zus polls on CPU ${a#zpmfs_poll_cpu=}"
			;;
		esac
	done
	zus serve "${zus_conf[@]}" >>/tmp/zus.log 2>&1 &
	for _ in $(seq 200); do grep -qw zpmfs /proc/filesystems && break; sleep 0.1; done
	grep -qw zpmfs /proc/filesystems || { cat /tmp/zus.log; say "zus did not register zpmfs"; exit 2; }
	mkfs.zpmfs -f -q "$TEST_DEV" || { say "mkfs.zpmfs $TEST_DEV failed"; exit 2; }
	# fstests knows nothing of zpmfs: for an unknown FSTYP it formats with
	# `yes | mkfs -t zpmfs -- $MKFS_OPTIONS $SCRATCH_DEV` (mkfs.zpmfs refuses to overwrite a
	# filesystem without -f), checks with `fsck -t zpmfs $FSCK_OPTIONS DEV` (-f: really
	# check a cleanly unmounted filesystem) and mounts with `mount -t zpmfs`.
	cat >"$FST/local.config" <<EOF
export FSTYP=zpmfs
export TEST_DEV=$TEST_DEV
export TEST_DIR=$TEST_DIR
export SCRATCH_DEV=$SCRATCH_DEV
export SCRATCH_MNT=$SCRATCH_MNT
export MKFS_OPTIONS="-f"
export FSCK_OPTIONS="-n -f"
EOF
	;;
ext4-dax)
	# 4 KiB blocks: DAX refuses any other block size.
	mkfs.ext4 -q -F -b 4096 "$TEST_DEV" || { say "mkfs.ext4 $TEST_DEV failed"; exit 2; }
	cat >"$FST/local.config" <<EOF
export FSTYP=ext4
export TEST_DEV=$TEST_DEV
export TEST_DIR=$TEST_DIR
export SCRATCH_DEV=$SCRATCH_DEV
export SCRATCH_MNT=$SCRATCH_MNT
export MKFS_OPTIONS="-b 4096"
export MOUNT_OPTIONS="-o dax"
export TEST_FS_MOUNT_OPTS="-o dax"
EOF
	;;
*)
	say "unknown transport $transport"
	exit 2
	;;
esac
cp "$FST/local.config" "$OUT/local.config"
cp "$ME/exclude" "$OUT/exclude"

say "$(uname -r), FSTYP from $transport; ./check -E exclude $*"
# Under TCG one test can take many minutes: every 5 minutes note in the kernel log (the
# host's logs/xfstests-TRANSPORT.console.log, and dmesg.log) the load and the processes in D
# state, so that a hang can be told from slowness; and write a results snapshot.
(
	while sleep 300; do
		{
			echo "guest-check: load $(cut -d' ' -f1-3 /proc/loadavg)," \
				"last: $(tail -n 1 "$OUT/check.log" | tr -s ' ' | cut -c1-60)"
			ps -eo stat=,pid=,comm=,wchan:32= | awk '$1 ~ /^D/ {print "guest-check:   D " $2 " " $3 " " $4}'
		} >/dev/kmsg 2>/dev/null
		write_results >/dev/null
	done
) &
progress=$!
t0=$(date +%s)
(cd "$FST" && ./check -E "$ME/exclude" "$@") 2>&1 | tee "$OUT/check.log"
check_status=${PIPESTATUS[0]}
kill "$progress" 2>/dev/null
echo "$check_status" >"$OUT/check_status"
echo "$(($(date +%s) - t0))" >"$OUT/check_elapsed"
cp "$FST/results/check.time" "$OUT/check.time" 2>/dev/null

# fstests leaves the test device mounted: unmount it and check it offline (it is never
# reformatted during the run, so it holds what every test left there).
for m in "$SCRATCH_MNT" "$TEST_DIR"; do
	mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }
done
case "$transport" in
zuf) fsck_cmd=(fsck.zpmfs -n -f "$TEST_DEV") ;;
ext4-dax) fsck_cmd=(e2fsck -f -n "$TEST_DEV") ;;
esac
if "${fsck_cmd[@]}" >"$OUT/fsck.log" 2>&1; then
	echo clean >"$OUT/fsck_status"
else
	echo "errors (exit $?)" >"$OUT/fsck_status"
fi
say "${fsck_cmd[*]}: $(cat "$OUT/fsck_status")"
if dmesg | grep -E 'Oops|BUG:|WARNING:|general protection' >"$OUT/kernel-warnings.log"; then
	say "kernel warnings in dmesg (kernel-warnings.log)"
fi
exit 0
