#!/bin/bash
# What `make vm-test` runs: installs what the host needs, builds (or reuses) the guest, then
# boots one guest per job in tests/vm/jobs/*.sh, one at a time, and ends with the line
# `N passed, M failed` (exit status 1 when M > 0).
#
#   run-all.sh [NAME...]      only the jobs whose file name contains one of the NAMEs
#
# A job is a script run as root inside the guest (see run-guest.sh). A line starting with
# `# zpmfs-vm:` in it gives its run-guest.sh options (split on blanks; @REPO@ becomes the
# repository root), e.g. `# zpmfs-vm: --numa --timeout 600 --extra @REPO@/x:/usr/sbin/x`.
# ZPMFS_VM_EXTRA="FILE:GUESTPATH ..." adds --extra files to every job.
# ZPMFS_VM_DIR (default /var/tmp/zpmfs-vm) is where the guest is cached and logs are written.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
GUEST="${ZPMFS_VM_DIR:-/var/tmp/zpmfs-vm}"
export ZPMFS_VM_DIR="$GUEST"
t0=$SECONDS

jobs=()
for j in "$HERE"/jobs/*.sh; do
	[ -e "$j" ] || continue
	if [ $# -gt 0 ]; then
		keep=0
		for n in "$@"; do
			case "$(basename "$j")" in *"$n"*) keep=1 ;; esac
		done
		[ "$keep" -eq 1 ] || continue
	fi
	jobs+=("$j")
done
if [ "${#jobs[@]}" -eq 0 ]; then
	echo "run-all: no jobs matched"
	echo "0 passed, 0 failed"
	exit 1
fi

job_opts() { # the run-guest.sh options a job asks for
	sed -n 's/^# zpmfs-vm:[[:space:]]*//p' "$1" | sed "s|@REPO@|$REPO|g" | tr '\n' ' '
}

need_rootfs=0
for j in "${jobs[@]}"; do
	case " $(job_opts "$j") " in *" --rootfs "*) need_rootfs=1 ;; esac
done

s=$SECONDS
"$HERE/setup-host.sh"
echo "run-all: host setup $((SECONDS - s))s"
s=$SECONDS
if [ "$need_rootfs" -eq 1 ]; then
	"$HERE/build-guest.sh" --rootfs "$GUEST"
else
	"$HERE/build-guest.sh" "$GUEST"
fi
echo "run-all: guest build $((SECONDS - s))s"

extra=()
for e in ${ZPMFS_VM_EXTRA:-}; do
	extra+=(--extra "$e")
done

passed=0
failed=0
failures=()
for j in "${jobs[@]}"; do
	name="$(basename "$j" .sh)"
	read -r -a opts <<<"$(job_opts "$j")"
	echo
	echo "=== $name ${opts[*]}"
	s=$SECONDS
	rc=0
	"$HERE/run-guest.sh" "${opts[@]}" "${extra[@]}" "$j" || rc=$?
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "=== PASS $name ($((SECONDS - s))s)"
	else
		failed=$((failed + 1))
		failures+=("$name")
		what="exit status $rc"
		[ "$rc" -ne 124 ] || what="timed out"
		[ "$rc" -ne 125 ] || what="guest died without a job status"
		echo "=== FAIL $name: $what ($((SECONDS - s))s); logs in $GUEST/logs/$name.*.log"
	fi
done

echo
echo "run-all: total $((SECONDS - t0))s"
[ "$failed" -eq 0 ] || echo "run-all: failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
