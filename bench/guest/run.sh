#!/bin/bash
# The guest part of `make bench`: boots the Debian --rootfs guest (tests/vm/, see
# docs/VM-TESTING.md) with an emulated NVDIMM, runs bench/guest/bench-guest.sh in it and stores
# its results under RESULTS_DIR/raw/guest/, where bench/report.py finds them. Then boots the
# two-node guest for the device-set job (tests/vm/jobs/22-numa-set.sh: local against forced
# remote placement, spill counters), whose results go to RESULTS_DIR/raw/guest-numa/.
#
#   bench/guest/run.sh RESULTS_DIR [--quick|--full]
#
# Needs root and the release binaries; runs tests/vm/setup-host.sh (installs only what is
# missing), builds the guest root once (cached) and zuf.ko (make -C kernel; ZUF_KO=PATH uses
# another build).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT=${1:?usage: bench/guest/run.sh RESULTS_DIR [--quick|--full]}
MODE=${2:---quick}
GUEST="${ZPMFS_VM_DIR:-/var/tmp/zpmfs-vm}"
export ZPMFS_VM_DIR="$GUEST"
JOB=$HERE/bench-guest.sh
RAW=$OUT/raw/guest
mkdir -p "$RAW"

for f in target/release/zus target/release/mkfs-zpmfs target/release/zbench; do
	[ -e "$REPO/$f" ] || { echo "bench-guest: missing $f (make build; make -C kernel)" >&2; exit 1; }
done

# What the guest job is told (it sources /zbench/params).
params=$RAW/params
if [ "$MODE" = --full ]; then
	cat >"$params" <<'P'
SECS=5
FILE_MIB=64
META_FILES=2000
THREADS="1 2"
WORKLOADS="randwrite_4k randread_4k"
P
else
	cat >"$params" <<'P'
SECS=2
FILE_MIB=4
META_FILES=200
THREADS="1"
WORKLOADS="randwrite_4k"
P
fi

"$REPO/tests/vm/setup-host.sh" >"$RAW/setup-host.log" 2>&1
if [ -z "${ZUF_KO:-}" ]; then
	make -s -C "$REPO/kernel" >"$RAW/kernel-build.log" 2>&1 || { echo "bench-guest: make -C kernel failed" >&2; exit 1; }
fi
"$REPO/tests/vm/build-guest.sh" --rootfs "$GUEST" >"$RAW/build-guest.log" 2>&1
# ZUF_KO=path uses another build of zuf.ko than kernel/zuf.ko.
read -r -a opts <<<"$(sed -n 's/^# zpmfs-vm:[[:space:]]*//p' "$JOB" |
	sed "s|@REPO@/kernel/zuf.ko|${ZUF_KO:-@REPO@/kernel/zuf.ko}|; s|@REPO@|$REPO|g" | tr '\n' ' ')"
rc=0
"$REPO/tests/vm/run-guest.sh" -q "${opts[@]}" --extra "$params:/zbench/params" "$JOB" >"$RAW/guest.log" 2>&1 || rc=$?

tr -d '\r' <"$RAW/guest.log" >"$RAW/guest.clean.log"
mv "$RAW/guest.clean.log" "$RAW/guest.log"
grep '^{' "$RAW/guest.log" >"$RAW/zbench.jsonl" || true
while read -r _ name json; do
	printf '%s\n' "$json" >"$RAW/fio.$name.json"
done < <(grep '^FIOJSON ' "$RAW/guest.log" || true)
grep '^# \|^FAIL' "$RAW/guest.log" >&2 || true
echo "bench-guest: exit $rc, $(grep -c '^FIOJSON ' "$RAW/guest.log" || true) fio runs, $(wc -l <"$RAW/zbench.jsonl") result lines; log $RAW/guest.log" >&2

NUMA_JOB=$REPO/tests/vm/jobs/22-numa-set.sh
NRAW=$OUT/raw/guest-numa
mkdir -p "$NRAW"
"$REPO/tests/vm/build-guest.sh" "$GUEST" >"$NRAW/build-guest.log" 2>&1
read -r -a nopts <<<"$(sed -n 's/^# zpmfs-vm:[[:space:]]*//p' "$NUMA_JOB" | sed "s|@REPO@|$REPO|g" | tr '\n' ' ')"
nrc=0
"$REPO/tests/vm/run-guest.sh" -q "${nopts[@]}" "$NUMA_JOB" >"$NRAW/guest.log" 2>&1 || nrc=$?
tr -d '\r' <"$NRAW/guest.log" | grep '^{"target":"zpmfs_numa' | sed 's/"target":"zpmfs_numa/"target":"guest_zpmfs_numa/' >"$NRAW/zbench.jsonl" || true
grep '^NUMA-RATIO\|^FAIL' "$NRAW/guest.log" >&2 || true
echo "bench-guest: two-node job exit $nrc, $(wc -l <"$NRAW/zbench.jsonl") result lines; log $NRAW/guest.log" >&2
[ "$rc" -ne 0 ] && exit "$rc"
exit "$nrc"
