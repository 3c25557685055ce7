#!/bin/bash
# zpmfs benchmarks on this host: `make bench` (full) or `make bench-quick`.
#
#   bench/run.sh [--quick|--full] [--out DIR] [--threads "1 2 ..."] [--no-guest] [--fuse-only]
#
# Runs side by side, in one run: the persistence floor (zbench floor), zpmfs in-process
# (zbench inproc), zpmfs over FUSE (zus, image in /dev/shm) through /dev/fuse (zpmfs_fuse) and
# through FUSE over io_uring (zpmfs_fuse_uring, where the kernel has it switched on), the null FUSE server (nullfuse,
# the transport floor) and tmpfs; fio 4 KiB randwrite / randread (O_DIRECT, psync), 4 KiB
# append + fdatasync, 64 KiB sequential write and read; metadata (zbench meta); mount time
# after a clean unmount and after kill -9; zus memory per inode and per extent. fio job i runs
# on CPU i (a 1-job randwrite also unpinned for the FUSE transports). Writes
# bench/results/<date-time>/ (raw/, results.csv, summary.json, summary.md, plots/) and points
# bench/results/latest at it. Needs root (mounts), fio and the release binaries. Then, unless
# --no-guest, the guest part (bench/guest/run.sh: zuf.ko, ext4-DAX, xfs-DAX, FUSE and tmpfs in a
# qemu guest), whose results join the same summary. --fuse-only: only zpmfs over FUSE, both
# channels (no guest).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
BIN=$REPO/target/release
MODE=full
OUT=""
THREADS=""
GUEST=1
FUSE_ONLY=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) MODE=quick ;;
	--full) MODE=full ;;
	--out) OUT=$2; shift ;;
	--threads) THREADS=$2; shift ;;
	--no-guest) GUEST=0 ;;
	--fuse-only) FUSE_ONLY=1; GUEST=0 ;;
	*) echo "usage: bench/run.sh [--quick|--full] [--out DIR] [--threads LIST] [--no-guest] [--fuse-only]" >&2; exit 2 ;;
	esac
	shift
done

NCPU=$(nproc)
[ -n "$THREADS" ] || THREADS=$(seq -s ' ' 1 "$NCPU")
if [ $MODE = quick ]; then
	SECS=2          # seconds per fio job and per zbench measurement
	FILE_MIB=64     # file per job (random I/O range)
	META_FILES=10000
	MOUNT_FILES=100000
	SPARSE_WRITES=100000
	IMG_SIZE=4G
else
	SECS=15
	FILE_MIB=256
	META_FILES=100000
	MOUNT_FILES=1000000
	SPARSE_WRITES=1000000
	IMG_SIZE=8G     # in /dev/shm, fallocated: the machine needs that much memory free
fi
# Overrides for trying the harness out: BENCH_SECS, BENCH_FILE_MIB, BENCH_META_FILES,
# BENCH_MOUNT_FILES, BENCH_SPARSE_WRITES.
SECS=${BENCH_SECS:-$SECS}
FILE_MIB=${BENCH_FILE_MIB:-$FILE_MIB}
META_FILES=${BENCH_META_FILES:-$META_FILES}
MOUNT_FILES=${BENCH_MOUNT_FILES:-$MOUNT_FILES}
SPARSE_WRITES=${BENCH_SPARSE_WRITES:-$SPARSE_WRITES}

STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
[ -n "$OUT" ] || OUT=$REPO/bench/results/$STAMP
mkdir -p "$OUT/raw"
RAW=$OUT/raw
JSONL=$RAW/zbench.jsonl
: >"$JSONL"
WORK=/dev/shm/zbench.$$
MNT_ZPMFS=/tmp/zbench.$$/zpmfs
MNT_NULL=/tmp/zbench.$$/null
MNT_TMPFS=/tmp/zbench.$$/tmpfs
mkdir -p "$WORK" "$MNT_ZPMFS" "$MNT_NULL" "$MNT_TMPFS"
IMG=$WORK/zpmfs.img
ZUS_CONF=$REPO/configs/zus.toml
T0=$(date +%s)

log() { echo "[bench $(( $(date +%s) - T0 ))s] $*" >&2; }

cleanup() {
	for m in "$MNT_ZPMFS" "$MNT_NULL" "$MNT_TMPFS"; do
		mountpoint -q "$m" && { umount "$m" 2>/dev/null || umount -l "$m"; }
	done
	[ -n "${NULL_PID:-}" ] && kill "$NULL_PID" 2>/dev/null || true
	rm -rf "$WORK" "/tmp/zbench.$$"
}
trap cleanup EXIT

for b in zus mkfs-zpmfs zbench nullfuse; do
	[ -x "$BIN/$b" ] || { echo "missing $BIN/$b: run cargo build --release --workspace" >&2; exit 1; }
done
command -v fio >/dev/null || { echo "fio not found: make deps" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh mounts filesystems: run it as root" >&2; exit 1; }

# The pid of the zus serving image $1 (zus mount daemonizes; its command line names the image).
zus_pid() {
	local p
	for p in /proc/[0-9]*; do
		if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "^$BIN/zus mount .* $1 "; then
			basename "$p"
			return 0
		fi
	done
	return 1
}

# A field of /proc/PID/status in bytes (VmRSS, RssAnon, RssShmem, RssFile).
status_bytes() { awk -v k="$2:" '$1 == k { print $2 * 1024 }' "/proc/$1/status"; }

mem_line() { # what pid files extents
	local pid=$2
	echo "{\"kind\":\"mem\",\"what\":\"$1\",\"files\":$3,\"extents\":$4,\"vmrss\":$(status_bytes "$pid" VmRSS),\"rss_anon\":$(status_bytes "$pid" RssAnon),\"rss_shmem\":$(status_bytes "$pid" RssShmem),\"rss_file\":$(status_bytes "$pid" RssFile)}" >>"$JSONL"
}

# The FUSE channel of every zpmfs mount but zpmfs_fuse_uring's: /dev/fuse, as in the results
# from before the io_uring channel (zus's own default, auto, would take the rings where offered).
mount_zpmfs() { # image mountpoint [channel]
	"$BIN/zus" mount --config "$ZUS_CONF" -o "fuse_channel=${3:-dev}" "$1" "$2" >/dev/null
}

# Unmount zpmfs and wait for its zus to finish (it writes the clean state, then exits), so that
# the next mount of the image, and zus_pid, never meet the old server.
umount_zpmfs() {
	local pid
	pid=$(zus_pid "$IMG" || true)
	umount "$MNT_ZPMFS"
	if [ -n "$pid" ]; then
		for _ in $(seq 200); do [ -d "/proc/$pid" ] || break; sleep 0.05; done
	fi
}

fresh_zpmfs() { # size
	if mountpoint -q "$MNT_ZPMFS"; then umount_zpmfs; fi
	rm -f "$IMG"
	# Allocate the tmpfs pages up front (fallocate keeps them zero), so that no timed write
	# pays for allocating and zeroing a page on first touch, which real PM never does.
	fallocate -l "$1" "$IMG"
	"$BIN/mkfs-zpmfs" -q -s "$1" "$IMG"
}

# ---------------------------------------------------------------------------------------------
# fio: one job file per workload; numjobs threads each with its own file.
# Job i runs on CPU i (mod the CPUs): where a request's serving thread wakes relative to its
# caller then depends on the transport, not on where the scheduler last put fio. Unpinned, a
# 1-job FUSE run measures mostly that placement on this VM (idle vCPUs, no halt polling): the
# same null server gave a 6.4 us and a 40 us median in two runs. randwrite_4k_unpinned keeps
# that picture for the FUSE transports.
FIO_PIN="--cpus_allowed=0-$((NCPU - 1)) --cpus_allowed_policy=split"
fio_job() { # target dir workload threads
	local target=$1 dir=$2 wl=$3 t=$4 spec pin=$FIO_PIN
	case $wl in
	randwrite_4k) spec="--rw=randwrite --bs=4k --direct=1 --overwrite=1 --time_based --size=${FILE_MIB}m" ;;
	randwrite_4k_unpinned)
		spec="--rw=randwrite --bs=4k --direct=1 --overwrite=1 --time_based --size=${FILE_MIB}m"
		pin="" ;;
	randread_4k) spec="--rw=randread --bs=4k --direct=1 --time_based --size=${FILE_MIB}m" ;;
	append_4k_fdatasync) spec="--rw=write --bs=4k --file_append=1 --fdatasync=1 --size=${FILE_MIB}m --unlink=1" ;;
	seqwrite_64k) spec="--rw=write --bs=64k --direct=1 --overwrite=1 --time_based --size=${FILE_MIB}m" ;;
	seqread_64k) spec="--rw=read --bs=64k --direct=1 --time_based --size=${FILE_MIB}m" ;;
	esac
	# shellcheck disable=SC2086
	fio --name="$wl" --directory="$dir" --ioengine=psync $spec $pin --runtime="$SECS" --numjobs="$t" \
		--group_reporting --lat_percentiles=1 --randrepeat=0 --norandommap --fallocate=none \
		--output-format=json --output="$RAW/fio.$target.$wl.$t.json" >/dev/null 2>"$RAW/fio.$target.$wl.$t.err" ||
		log "fio $target $wl $t failed: $(tail -2 "$RAW/fio.$target.$wl.$t.err")"
	rm -f "$dir/$wl".*
}

FIO_WORKLOADS="randwrite_4k randread_4k append_4k_fdatasync seqwrite_64k seqread_64k"
fio_all() { # target dir [unpinned]
	local wl t
	for t in $THREADS; do
		for wl in $FIO_WORKLOADS; do
			fio_job "$1" "$2" "$wl" "$t"
		done
	done
	[ "${3:-}" != unpinned ] || fio_job "$1" "$2" randwrite_4k_unpinned 1
}

meta_all() { # target dir
	local t
	for t in $THREADS; do
		"$BIN/zbench" meta --dir "$2" --files "$META_FILES" --dirs 1 --threads "$t" --target "$1" >>"$JSONL"
		"$BIN/zbench" meta --dir "$2" --files "$META_FILES" --dirs 100 --threads "$t" --target "$1" >>"$JSONL"
	done
}

# ---------------------------------------------------------------------------------------------
log "mode $MODE, threads $THREADS, ${SECS}s per measurement, results in $OUT"
{
	echo "{\"kind\":\"machine\",\"mode\":\"$MODE\",\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"host\":\"$(hostname)\",\"kernel\":\"$(uname -r)\",\"cpus\":$NCPU,\"cpu_model\":\"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\",\"mem_gib\":$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),\"loadavg_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"secs\":$SECS,\"file_mib\":$FILE_MIB,\"meta_files\":$META_FILES,\"mount_files\":$MOUNT_FILES,\"sparse_writes\":$SPARSE_WRITES,\"threads\":\"$THREADS\",\"fio\":\"$(fio --version)\",\"commit\":\"$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +dirty)\"}"
} >>"$JSONL"

# (a) the persistence floor and (b) zpmfs in-process; beside them the round-trip floor
# (zbench switch: a system call, a pipe ping-pong between two processes or threads on CPU 0).
if [ $FUSE_ONLY -eq 0 ]; then
log "round-trip floor"
"$BIN/zbench" switch --secs "$SECS" >>"$JSONL"
for t in $THREADS; do
	log "floor, $t thread(s)"
	"$BIN/zbench" floor --dir /dev/shm --threads "$t" --secs "$SECS" --mib "$FILE_MIB" >>"$JSONL"
	log "in-process zpmfs, $t thread(s)"
	fresh_zpmfs "$IMG_SIZE"
	"$BIN/zbench" inproc --image "$IMG" --threads "$t" --secs "$SECS" --mib "$FILE_MIB" >>"$JSONL"
done
fi

# (c) zpmfs over FUSE.
log "zpmfs over FUSE: fio"
fresh_zpmfs "$IMG_SIZE"
mount_zpmfs "$IMG" "$MNT_ZPMFS"
fio_all zpmfs_fuse "$MNT_ZPMFS" unpinned
log "zpmfs over FUSE: metadata"
meta_all zpmfs_fuse "$MNT_ZPMFS"
umount_zpmfs

# (c2) zpmfs over FUSE over io_uring (Linux 6.14+, /sys/module/fuse/parameters/enable_uring=Y):
# the same jobs, the kernel handing each request to the ring of the caller's CPU.
if [ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" = Y ]; then
	log "zpmfs over FUSE over io_uring: fio"
	fresh_zpmfs "$IMG_SIZE"
	mount_zpmfs "$IMG" "$MNT_ZPMFS" uring
	"$BIN/zus" status "$MNT_ZPMFS" >"$RAW/zus_status.uring.before" 2>&1 || true
	fio_all zpmfs_fuse_uring "$MNT_ZPMFS" unpinned
	log "zpmfs over FUSE over io_uring: metadata"
	meta_all zpmfs_fuse_uring "$MNT_ZPMFS"
	"$BIN/zus" status "$MNT_ZPMFS" >"$RAW/zus_status.uring.after" 2>&1 || true
	umount_zpmfs
else
	log "skipping zpmfs over FUSE over io_uring: /sys/module/fuse/parameters/enable_uring is not Y (as root: echo Y > it)"
fi

if [ $FUSE_ONLY -eq 0 ]; then

# (d) the null FUSE server.
log "null FUSE: fio and metadata"
"$BIN/nullfuse" "$MNT_NULL" >"$RAW/nullfuse.log" 2>&1 &
NULL_PID=$!
for _ in $(seq 100); do mountpoint -q "$MNT_NULL" && break; sleep 0.05; done
mountpoint -q "$MNT_NULL" || { echo "nullfuse did not mount: $(cat "$RAW/nullfuse.log")" >&2; exit 1; }
fio_all null_fuse "$MNT_NULL" unpinned
meta_all null_fuse "$MNT_NULL"
umount "$MNT_NULL"
wait "$NULL_PID" || true
NULL_PID=""

# (e) tmpfs.
log "tmpfs: fio and metadata"
mount -t tmpfs -o size=75% zbench-tmpfs "$MNT_TMPFS"
fio_all tmpfs "$MNT_TMPFS"
meta_all tmpfs "$MNT_TMPFS"
umount "$MNT_TMPFS"

# ---------------------------------------------------------------------------------------------
# Memory: zus with nothing but the root, then with MOUNT_FILES files (mounted, then after every
# file was stat'ed, so every inode is in zus's cache); mount time clean and after kill -9.
log "memory baseline"
fresh_zpmfs "$IMG_SIZE"
mount_zpmfs "$IMG" "$MNT_ZPMFS"
ls -la "$MNT_ZPMFS" >/dev/null
mem_line empty "$(zus_pid "$IMG")" 0 0
umount_zpmfs

log "populating $MOUNT_FILES files (in-process)"
"$BIN/zbench" populate --image "$IMG" --files "$MOUNT_FILES" --per-dir 1000 >>"$JSONL"

mount_time() { # label
	local s e
	s=$(date +%s%N)
	mount_zpmfs "$IMG" "$MNT_ZPMFS"
	e=$(date +%s%N)
	echo "{\"kind\":\"mount\",\"what\":\"$1\",\"files\":$MOUNT_FILES,\"secs\":$(awk -v a="$s" -v b="$e" 'BEGIN {printf "%.4f", (b - a) / 1e9}')}" >>"$JSONL"
}

log "mount time after a clean unmount"
mount_time clean
pid=$(zus_pid "$IMG")
mem_line files_mounted "$pid" "$MOUNT_FILES" 0
find "$MNT_ZPMFS" >/dev/null
mem_line files_readdir "$pid" "$MOUNT_FILES" 0
du -s "$MNT_ZPMFS" >/dev/null
mem_line files_stat "$pid" "$MOUNT_FILES" 0

log "mount time after kill -9"
kill -9 "$pid"
for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.05; done
umount "$MNT_ZPMFS" 2>/dev/null || umount -l "$MNT_ZPMFS"
mount_time crash
mem_line files_after_crash_mount "$(zus_pid "$IMG")" "$MOUNT_FILES" 0
umount_zpmfs

log "memory per extent: $SPARSE_WRITES random 4 KiB writes into a sparse file"
fresh_zpmfs "$IMG_SIZE"
mount_zpmfs "$IMG" "$MNT_ZPMFS"
pid=$(zus_pid "$IMG")
: >"$MNT_ZPMFS/sparse"
mem_line sparse_before "$pid" 1 0
"$BIN/zbench" sparse --file "$MNT_ZPMFS/sparse" --writes "$SPARSE_WRITES" >>"$JSONL"
mem_line sparse_after "$pid" 1 "$SPARSE_WRITES"
umount_zpmfs

log "device set: local against forced-remote placement, spill of a full node (zbench numa; on a one-node host both members are the same DRAM)"
"$BIN/mkfs-zpmfs" -q --numa-nodes 0,1 -s 256M "$WORK/numa0.img" "$WORK/numa1.img"
"$BIN/zbench" numa --devices "$WORK/numa0.img:$WORK/numa1.img" --secs "$SECS" --mib 32 --rounds 3 >>"$JSONL"
rm -f "$WORK/numa0.img" "$WORK/numa1.img"
fi # FUSE_ONLY

HOST_SECS=$(( $(date +%s) - T0 ))
if [ $GUEST -eq 1 ]; then
	log "guest part (qemu, TCG): bench/guest/run.sh"
	g0=$(date +%s)
	grc=0
	bench/guest/run.sh "$OUT" "--$MODE" || grc=$?
	echo "{\"kind\":\"guest_status\",\"exit\":$grc,\"secs\":$(( $(date +%s) - g0 ))}" >>"$JSONL"
	[ $grc -eq 0 ] || log "guest part failed (exit $grc): see $OUT/raw/guest/; host results stand"
fi
echo "{\"kind\":\"done\",\"secs\":$(( $(date +%s) - T0 )),\"host_secs\":$HOST_SECS,\"loadavg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$JSONL"
log "report"
python3 "$REPO/bench/report.py" "$OUT"
if [ "$(dirname "$OUT")" = "$REPO/bench/results" ]; then
	ln -sfn "$(basename "$OUT")" "$REPO/bench/results/latest"
fi
log "done in $(( $(date +%s) - T0 ))s: $OUT/summary.md"
cat "$OUT/summary.md"
