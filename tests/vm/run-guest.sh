#!/bin/bash
# Boots Debian's cloud kernel in qemu (software emulation) with emulated NVDIMMs, runs one job
# script inside, prints its output and returns its exit status.
#
#   run-guest.sh [options] JOB.sh
#
#   --nvdimm SIZE[@FILE]   an emulated NVDIMM (repeatable; SIZE like 512M or 1G). Default: one
#                          of 1G (two of 512M with --numa). Images are sparse files in a temp
#                          dir, removed afterwards; with @FILE that file is used (created if
#                          missing) and kept, so a later boot sees the same PM.
#   --numa                 two NUMA nodes, one CPU and half the memory each; NVDIMM i goes to
#                          node i%2 (so pmem0 is on node 0, pmem1 on node 1).
#   --timeout SECS         kill the guest after SECS seconds (default 300): exit 124.
#   --extra FILE:GUESTPATH put a host file or directory at GUESTPATH in the guest (repeatable).
#   --rootfs               boot the debootstrapped Debian root (build-guest.sh --rootfs) instead
#                          of the busybox initramfs (writes go to a throw-away snapshot).
#   --mem SIZE             guest RAM (default 2G).   --smp N   vCPUs (default 2).
#   --append ARGS          extra kernel command line arguments.
#   --guest DIR            where build-guest.sh put the guest (default /var/tmp/zpmfs-vm).
#   --keep                 keep the run's temp dir (images, logs) and print its path.
#   -q, --quiet            do not stream the job output live; print it at the end.
#
# A guest whose job has printed nothing after ZPMFS_VM_BOOT_WAIT seconds (default 240) is
# taken to have stalled while booting (seen once under TCG, in early boot with other guests
# running) and is started again, once; the job itself may then be as quiet as it likes.
#
# In the guest the job runs as root after the NVDIMM modules are loaded and every namespace is
# fsdax (/dev/pmem0, /dev/pmem1, ...), with stdout and stderr on the second serial port. Its
# exit status is the last output line, `JOB-EXIT <n>`. The kernel console goes to
# GUEST/logs/JOBNAME.console.log (printed, last 50 lines, on failure).
# Exit status: the job's; 124 when the guest timed out; 125 when the guest ended without
# reporting one (kernel panic, init failure); 2 for bad usage.
set -euo pipefail

GUEST="${ZPMFS_VM_DIR:-/var/tmp/zpmfs-vm}"
TIMEOUT=300
MEM=2G
SMP=2
NUMA=0
ROOTFS=0
KEEP=0
QUIET=0
APPEND=""
NVDIMMS=()
EXTRAS=()

usage() {
	awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--nvdimm) NVDIMMS+=("${2:?--nvdimm needs SIZE}"); shift ;;
	--numa) NUMA=1 ;;
	--timeout) TIMEOUT="${2:?--timeout needs SECS}"; shift ;;
	--extra) EXTRAS+=("${2:?--extra needs FILE:GUESTPATH}"); shift ;;
	--rootfs) ROOTFS=1 ;;
	--mem) MEM="${2:?--mem needs SIZE}"; shift ;;
	--smp) SMP="${2:?--smp needs N}"; shift ;;
	--append) APPEND="${2:?--append needs ARGS}"; shift ;;
	--guest) GUEST="${2:?--guest needs DIR}"; shift ;;
	--keep) KEEP=1 ;;
	-q | --quiet) QUIET=1 ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) echo "run-guest.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
	shift
done
[ $# -eq 1 ] || usage
JOB="$1"
[ -f "$JOB" ] || { echo "run-guest.sh: no job script $JOB" >&2; exit 2; }
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || { echo "run-guest.sh: bad --timeout $TIMEOUT" >&2; exit 2; }

to_mib() { # 512M, 1G, 1024 (MiB) -> MiB
	local n="${1%[KkMmGgTt]}" u="${1: -1}"
	[[ "$n" =~ ^[0-9]+$ ]] || { echo "run-guest.sh: bad size $1" >&2; exit 2; }
	case "$u" in
	[Gg]) echo $((n * 1024)) ;;
	[Tt]) echo $((n * 1024 * 1024)) ;;
	[Kk]) echo $((n / 1024)) ;;
	*) echo "$n" ;;
	esac
}

KVER="$(cat "$GUEST/kernel-version" 2>/dev/null || true)"
INITRD="$GUEST/initramfs.cpio.zst"
KERNEL="/boot/vmlinuz-$KVER"
if [ -z "$KVER" ] || [ ! -s "$INITRD" ] || [ ! -r "$KERNEL" ]; then
	echo "run-guest.sh: no guest in $GUEST: run tests/vm/build-guest.sh first" >&2
	exit 1
fi
if [ "$ROOTFS" -eq 1 ] && [ ! -s "$GUEST/rootfs.img" ]; then
	echo "run-guest.sh: no $GUEST/rootfs.img: run tests/vm/build-guest.sh --rootfs" >&2
	exit 1
fi
QEMU="$(command -v qemu-system-x86_64 || true)"
[ -n "$QEMU" ] || { echo "run-guest.sh: qemu-system-x86_64 missing: run tests/vm/setup-host.sh" >&2; exit 1; }

if [ "${#NVDIMMS[@]}" -eq 0 ]; then
	if [ "$NUMA" -eq 1 ]; then NVDIMMS=(512M 512M); else NVDIMMS=(1G); fi
fi
if [ "$NUMA" -eq 1 ] && [ "$SMP" -lt 2 ]; then
	echo "run-guest.sh: --numa needs --smp 2 or more" >&2
	exit 2
fi

NAME="$(basename "$JOB" .sh)"
LOGDIR="$GUEST/logs"
mkdir -p "$LOGDIR"
CONSOLE="$LOGDIR/$NAME.console.log"
OUTLOG="$LOGDIR/$NAME.out.log"
RUN="$(mktemp -d /var/tmp/zpmfs-run.XXXXXX)"
QPID=""
TPID=""

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID" 2>/dev/null || true; fi
	if [ -s "$RUN/qemu.pid" ]; then
		local p
		p="$(cat "$RUN/qemu.pid")"
		if kill -0 "$p" 2>/dev/null; then
			kill "$p" 2>/dev/null || true
			sleep 1
			kill -9 "$p" 2>/dev/null || true
		fi
	fi
	if [ -n "$TPID" ]; then kill "$TPID" 2>/dev/null || true; fi
	if [ "$KEEP" -eq 1 ]; then
		echo "run-guest: kept $RUN" >&2
	else
		rm -rf "$RUN"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Memory layout: RAM, plus a hotplug slot per NVDIMM and room for them above maxmem.
mem_mib="$(to_mib "$MEM")"
nv_total=0
args=()
i=0
for spec in "${NVDIMMS[@]}"; do
	size="${spec%%@*}"
	if [ "$spec" != "$size" ]; then img="${spec#*@}"; else img="$RUN/pm$i.img"; fi
	mib="$(to_mib "$size")"
	nv_total=$((nv_total + mib))
	if [ ! -e "$img" ]; then
		truncate -s "${mib}M" "$img"
	elif [ "$(stat -c %s "$img")" -lt $((mib * 1024 * 1024)) ]; then
		truncate -s "${mib}M" "$img"
	fi
	node=""
	if [ "$NUMA" -eq 1 ]; then node=",node=$((i % 2))"; fi
	args+=(-object "memory-backend-file,id=nvmem$i,share=on,mem-path=$img,size=${mib}M"
		-device "nvdimm,id=nv$i,memdev=nvmem$i$node")
	i=$((i + 1))
done
slots=$((${#NVDIMMS[@]} + 2))
maxmem=$((mem_mib + nv_total + 1024))
args=(-m "${mem_mib}M,slots=$slots,maxmem=${maxmem}M" "${args[@]}")
if [ "$NUMA" -eq 1 ]; then
	half=$((mem_mib / 2))
	cpus0="0"
	cpus1="1"
	if [ "$SMP" -gt 2 ]; then
		cpus0="0-$((SMP / 2 - 1))"
		cpus1="$((SMP / 2))-$((SMP - 1))"
	fi
	args+=(-object "memory-backend-ram,id=ram0,size=${half}M"
		-object "memory-backend-ram,id=ram1,size=$((mem_mib - half))M"
		-numa "node,nodeid=0,cpus=$cpus0,memdev=ram0"
		-numa "node,nodeid=1,cpus=$cpus1,memdev=ram1")
fi

# The --extra files: one more (uncompressed) cpio after the prebuilt initramfs; the kernel
# unpacks both. /zpmfs-extras.list names them (a --rootfs boot copies them into the root).
initrd="$INITRD"
if [ "${#EXTRAS[@]}" -gt 0 ]; then
	st="$RUN/extras"
	mkdir -p "$st"
	chmod 755 "$st"
	: >"$st/zpmfs-extras.list"
	for e in "${EXTRAS[@]}"; do
		src="${e%%:*}"
		dst="${e#*:}"
		if [ "$src" = "$e" ] || [ -z "$dst" ] || [ "${dst#/}" = "$dst" ]; then
			echo "run-guest.sh: --extra wants FILE:/ABSOLUTE/GUESTPATH, got $e" >&2
			exit 2
		fi
		[ -e "$src" ] || { echo "run-guest.sh: --extra: no such file $src" >&2; exit 2; }
		mkdir -p "$st$(dirname "$dst")"
		cp -aL "$src" "$st$dst"
		echo "$dst" >>"$st/zpmfs-extras.list"
	done
	initrd="$RUN/initrd"
	cp "$INITRD" "$initrd"
	# Pad to a 512-byte boundary with zeros (the kernel skips zeros between archives).
	pad=$(((512 - $(stat -c %s "$initrd") % 512) % 512))
	head -c "$pad" /dev/zero >>"$initrd"
	(cd "$st" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >>"$initrd"
fi

cmdline="console=ttyS0 panic=-1 mitigations=off zpmfs.nvdimms=${#NVDIMMS[@]}"
if [ "$ROOTFS" -eq 1 ]; then
	cmdline="$cmdline zpmfs.root=/dev/vda"
	args+=(-drive "file=$GUEST/rootfs.img,if=virtio,format=raw,snapshot=on")
fi
[ -z "$APPEND" ] || cmdline="$cmdline $APPEND"

: >"$CONSOLE"
: >"$OUTLOG"
start=$SECONDS
BOOT_WAIT="${ZPMFS_VM_BOOT_WAIT:-240}"
launch() {
	# qemu's -snapshot overlay goes to TMPDIR: keep it in the run dir.
	TMPDIR="$RUN" timeout -k 5 "$TIMEOUT" "$QEMU" \
		-nodefaults -display none -no-reboot -no-user-config \
		-machine pc,nvdimm=on -accel tcg,thread=multi -cpu max -smp "$SMP" \
		"${args[@]}" \
		-kernel "$KERNEL" -initrd "$initrd" -append "$cmdline" \
		-fw_cfg "name=opt/zpmfs/job,file=$JOB" \
		-serial "file:$CONSOLE" -serial "file:$OUTLOG" \
		-pidfile "$RUN/qemu.pid" \
		</dev/null >"$RUN/qemu.stderr" 2>&1 &
	QPID=$!
}
# Until the job's first output, watch for a stalled boot.
boot_stalled() {
	local since=$SECONDS
	while kill -0 "$QPID" 2>/dev/null && [ ! -s "$OUTLOG" ]; do
		if [ $((SECONDS - since)) -ge "$BOOT_WAIT" ]; then
			kill "$QPID" 2>/dev/null || true
			return 0
		fi
		sleep 1
	done
	return 1
}
launch
if boot_stalled; then
	wait "$QPID" 2>/dev/null || true
	echo "run-guest: no output from the job ${BOOT_WAIT}s after boot began ($NAME): the boot stalled; starting the guest again (console of the stalled boot: $CONSOLE.stalled)" >&2
	cp "$CONSOLE" "$CONSOLE.stalled"
	: >"$CONSOLE"
	: >"$OUTLOG"
	launch
fi
if [ "$QUIET" -eq 0 ]; then
	tail -n +1 -f --pid="$QPID" "$OUTLOG" 2>/dev/null &
	TPID=$!
fi
qrc=0
wait "$QPID" || qrc=$?
QPID=""
if [ -n "$TPID" ]; then
	wait "$TPID" 2>/dev/null || true
	TPID=""
else
	cat "$OUTLOG"
fi
elapsed=$((SECONDS - start))

show_console() {
	echo "run-guest: kernel console log: $CONSOLE (last 50 lines follow)" >&2
	tail -n 50 "$CONSOLE" >&2
	if [ -s "$RUN/qemu.stderr" ]; then
		echo "run-guest: qemu said:" >&2
		cat "$RUN/qemu.stderr" >&2
	fi
}

if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
	echo "run-guest: guest timed out after ${TIMEOUT}s ($NAME); qemu killed" >&2
	show_console
	exit 124
fi
status="$(grep -a -o '^JOB-EXIT [0-9]\+' "$OUTLOG" | tail -n 1 | cut -d' ' -f2 || true)"
if [ -z "$status" ]; then
	echo "run-guest: guest ended without reporting a job exit status (qemu exit $qrc, ${elapsed}s)" >&2
	show_console
	exit 125
fi
if [ "$status" -ne 0 ]; then
	echo "run-guest: job $NAME failed with exit status $status (${elapsed}s)" >&2
	show_console
else
	echo "run-guest: job $NAME passed (${elapsed}s)" >&2
fi
exit "$status"
