#!/bin/bash
# kill -9 restarts of zus over zuf.ko without data loss: mkfs.zpmfs, `zus serve`, mount; then
# N cycles of: a mixed workload (files written with known content through a temp file + sync
# and renamed into place, mkdir, mv, ln, rm, rmdir; each completed operation appended to a log
# on tmpfs, outside the mount), kill -9 zus at a random moment (the workload gets EIO and
# stops, nothing hangs), umount, restart zus, mount (recovery), check every completed
# operation of every cycle so far, clean umount, fsck.zpmfs -n (no problem), mount again.
# No kernel warning in dmesg; rmmod at the end.
# Cycles: 10; more with a file holding the number (ZPMFS_VM_EXTRA=FILE:/zuf/kill-cycles) or
# zuf_kill_cycles=N on the guest kernel command line (run-guest.sh --append; give a larger
# --timeout too), see docs/VM-TESTING.md.
# Built first by `make vm-test` (kernel module, release binaries).
# zpmfs-vm: --timeout 900 --extra @REPO@/kernel/zuf.ko:/zuf/zuf.ko --extra @REPO@/target/release/zus:/usr/sbin/zus --extra @REPO@/target/release/mkfs-zpmfs:/usr/sbin/mkfs.zpmfs --extra @REPO@/target/release/fsck-zpmfs:/usr/sbin/fsck.zpmfs --extra /lib/x86_64-linux-gnu/libgcc_s.so.1:/lib/x86_64-linux-gnu/libgcc_s.so.1
set -uo pipefail

M=/mnt/pm
LOG=/tmp/ops.log	# completed operations, one a line
PEND=/tmp/pending	# the operation under way (its paths are not checked)
CYCLES=10
[ -f /zuf/kill-cycles ] && CYCLES=$(cat /zuf/kill-cycles)
for a in $(cat /proc/cmdline); do
	case "$a" in zuf_kill_cycles=*) CYCLES=${a#zuf_kill_cycles=} ;; esac
done

DMESG0=$(dmesg | wc -l)
fail() { echo "FAIL: $*"; tail -20 /tmp/zus.log; dmesg | tail -40; exit 1; }
check_dmesg() {
	if dmesg | tail -n +"$((DMESG0 + 1))" |
		grep -E 'BUG|WARNING|Oops|general protection|kmemleak|refcount|Call Trace|Busy inodes|blocked for more than'; then
		fail "kernel warnings in dmesg ($1)"
	fi
}
start_zus() {
	zus serve >>/tmp/zus.log 2>&1 &
	ZUS=$!
	for _ in $(seq 100); do grep -qw zpmfs /proc/filesystems && return 0; sleep 0.1; done
	fail "zus did not register zpmfs"
}
wait_gone() {	# PID SECS
	local i
	for i in $(seq $(($2 * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}

# An operation returned success: log it, and it is no longer in flight. (One that failed
# stays in $PEND: the server may have done it before it died, see verify.)
done_op() {
	echo "$1" >>$LOG
	: >$PEND
}

# The workload of cycle $1, in $M/c$1, until a call fails because the server is gone.
workload() {
	local c=$1 d=$M/c$1 n=0 p q t content
	mkdir $d || exit 0
	echo "D $d" >>$LOG
	while :; do
		n=$((n + 1))
		case $((RANDOM % 8)) in
		0 | 1 | 2)	# a file with known content, through a temp file, synced, renamed
			if [ $((RANDOM % 3)) = 0 ]; then
				p=$d/s$((RANDOM % 3))/g$((RANDOM % 4))
			else
				p=$d/f$((RANDOM % 16))
			fi
			t=$d/.tmp$n
			content="c$c-n$n-$RANDOM$RANDOM"
			content="$content$content$content$content"
			echo "F $p $t $content" >$PEND
			printf '%s\n' "$content" >$t 2>/dev/null && sync && mv -f $t $p 2>/dev/null &&
				done_op "F $p $content"
			;;
		3)
			p=$d/s$((RANDOM % 3))
			echo "D $p" >$PEND
			mkdir $p 2>/dev/null && done_op "D $p"
			;;
		4)
			p=$d/f$((RANDOM % 16)) q=$d/f$((RANDOM % 16))
			[ $p = $q ] && continue
			[ -f $p ] || continue
			echo "M $p $q" >$PEND
			mv -f $p $q 2>/dev/null && done_op "M $p $q"
			;;
		5)
			p=$d/f$((RANDOM % 16)) q=$d/h$((RANDOM % 8))
			echo "L $p $q" >$PEND
			ln $p $q 2>/dev/null && done_op "L $p $q"
			;;
		6)
			p=$d/f$((RANDOM % 16))
			[ $((RANDOM % 2)) = 0 ] && p=$d/h$((RANDOM % 8))
			echo "R $p" >$PEND
			rm $p 2>/dev/null && done_op "R $p"
			;;
		7)
			p=$d/s$((RANDOM % 3))
			echo "R $p" >$PEND
			rmdir $p 2>/dev/null && done_op "R $p"
			;;
		esac
		# a failure because the server is gone ends the workload
		[ -d $d ] || exit 0
	done
}

# Every completed operation in $LOG must be there, exactly. The operation under way at the
# kill ($PEND) either took effect or did not (each is atomic): which one is read from the
# file system, it is appended to $LOG if it did, and then every path must match.
verify() {
	find $M -type d >/tmp/dirs
	find $M -type f >/tmp/files
	awk -v pend="$(cat $PEND 2>/dev/null)" -v resolved=/tmp/resolved '
	FILENAME == "/tmp/dirs" { isdir[$0] = 1; next }
	FILENAME == "/tmp/files" { isfile[$0] = 1; next }
	{ apply($0) }
	function apply(l,	f) {
		split(l, f, " ")
		if (f[1] == "F") st[f[2]] = "f" f[3]
		else if (f[1] == "D") st[f[2]] = "d"
		else if (f[1] == "M") { st[f[3]] = st[f[2]]; st[f[2]] = "-" }
		else if (f[1] == "L") st[f[3]] = st[f[2]]
		else if (f[1] == "R") st[f[2]] = "-"
	}
	function content(p,	line) {
		line = ""
		if (!(p in isfile) || (getline line < p) <= 0)
			line = "\001missing"
		close(p)
		return line
	}
	END {
		split(pend, pp, " ")
		done = 0
		if (pp[1] == "F") done = content(pp[2]) == pp[4]
		else if (pp[1] == "D") done = pp[2] in isdir
		else if (pp[1] == "M") done = !(pp[2] in isfile)
		else if (pp[1] == "L") done = (!(pp[3] in st) || st[pp[3]] == "-") && (pp[3] in isfile)
		else if (pp[1] == "R") done = !((pp[2] in isfile) || (pp[2] in isdir))
		if (done) {
			l = pp[1] == "F" ? "F " pp[2] " " pp[4] : pend
			apply(l)
			print l > resolved
		}
		bad = 0
		for (p in st) {
			s = st[p]
			if (s == "-") {
				if ((p in isdir) || (p in isfile)) { print "present but removed: " p; bad++ }
				absent++
			} else if (s == "d") {
				if (!(p in isdir)) { print "directory missing: " p; bad++ }
				dirs++
			} else {
				c = content(p)
				if (c == "\001missing") { print "file missing: " p; bad++ }
				else if ("f" c != s) { print "content differs: " p; bad++ }
				files++
			}
		}
		printf "%d files, %d directories, %d removed paths as logged, in-flight op %s: %d bad\n",
			files, dirs, absent, pend == "" ? "none" : done ? "done" : "not done", bad
		exit bad != 0
	}' /tmp/dirs /tmp/files $LOG
}

insmod /zuf/zuf.ko || fail insmod
start_zus
mkfs.zpmfs -q /dev/pmem0 || fail mkfs
mkdir -p $M
mount -t zpmfs /dev/pmem0 $M || fail mount
: >$LOG
echo "$CYCLES cycles"
T0=$SECONDS
survived=0
for c in $(seq 1 $CYCLES); do
	rm -f $PEND
	n0=$(wc -l <$LOG)
	workload $c &
	W=$!
	sleep "$((3 + RANDOM % 5)).$((RANDOM % 10))"
	kill -9 $ZUS
	wait $ZUS 2>/dev/null
	wait_gone $W 20 || fail "cycle $c: the workload still runs 20 s after the kill: a hang"
	wait $W 2>/dev/null
	out=$(stat $M 2>&1) && fail "cycle $c: stat worked with zus dead"
	echo "$out" | grep -q 'Input/output error' || fail "cycle $c: stat gave: $out"
	umount $M || fail "cycle $c: umount after the kill"
	check_dmesg "cycle $c after the kill"
	start_zus
	mount -t zpmfs /dev/pmem0 $M || fail "cycle $c: mount after restart (recovery)"
	rm -f /tmp/resolved
	res=$(verify) || { echo "$res"; fail "cycle $c: completed operations lost"; }
	[ -f /tmp/resolved ] && cat /tmp/resolved >>$LOG
	umount $M || fail "cycle $c: clean umount"
	fs=$(fsck.zpmfs -n -f /dev/pmem0 2>&1) || { echo "$fs"; fail "cycle $c: fsck"; }
	mount -t zpmfs /dev/pmem0 $M || fail "cycle $c: mount after fsck"
	survived=$c
	echo "cycle $c: $(($(wc -l <$LOG) - n0)) ops completed before kill -9; after recovery: $(echo "$res" | tail -1); fsck -n: ${fs##*: }"
done
umount $M || fail "final umount"
kill $ZUS
wait $ZUS 2>/dev/null
rmmod zuf || fail rmmod
check_dmesg "end"
echo "$survived of $CYCLES kill -9 cycles survived, $(wc -l <$LOG) completed operations checked, dmesg clean, $((SECONDS - T0)) s"
echo "zuf kill loop: OK"
