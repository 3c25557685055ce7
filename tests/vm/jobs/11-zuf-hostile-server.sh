#!/bin/bash
# zuf.ko against a hostile server (kernel/tests/zuf-hostile), no Rust side needed:
#  0. privilege: a process without CAP_SYS_ADMIN (uid 65534) cannot open /dev/zuf (0600),
#     and even through a root-opened fd or a 0666 node REGISTER_FS, MOUNT_WAIT, PMEM_FD and
#     ZT_INIT fail with EPERM, mount -t zpmfs with EPERM;
#  1. bad MOUNT answers fail the mount; then thousands of malformed replies (bad results,
#     lengths, device offsets, inode numbers and attributes, garbage buffers, replies of other
#     ops, bad dirents, answers to nothing, stray control calls) under a client doing stat,
#     open, read, write, readdir, mmap faults, lookup, create, rename, xattrs, ...: every call
#     gets success, EIO or an ordinary errno; umount with the server alive; kill -9 under load;
#  2. the server _exit()s with an operation in service;
#  3. the server stops answering: the client's call waits (no timeout in zuf.ko) until the
#     server is killed, then gets EIO;
#  4. a MOUNT answered with the wrong op code is ignored: the mount waits until the server
#     dies, then fails;
#  Rounds 1-3 also run a hostile polling channel on the last CPU (`-p`: the same bad replies,
#  wrong call numbers in `answered` before the right one, sleeps in ZT_WAIT, window remaps;
#  a second polling channel refused), which must answer at least 20 of the calls (the
#  client is not pinned);
#  5. a good server (zuf-ctl-test) mounts and serves; rmmod; dmesg has no
#     BUG/WARNING/Oops/general protection/kmemleak/refcount line.
# Built first: make -C kernel && make -C kernel test
# zpmfs-vm: --timeout 420 --append slub_debug=FZP --extra @REPO@/kernel/zuf.ko:/zuf/zuf.ko --extra @REPO@/kernel/tests/zuf-hostile:/zuf/zuf-hostile --extra @REPO@/kernel/tests/zuf-ctl-test:/zuf/zuf-ctl-test
set -uo pipefail

H=/zuf/zuf-hostile
T=/zuf/zuf-ctl-test
DMESG0=$(dmesg | wc -l)
fail() { echo "FAIL: $*"; dmesg | tail -40; exit 1; }
check_dmesg() {
	if dmesg | tail -n +"$((DMESG0 + 1))" |
		grep -E 'BUG|WARNING|Oops|general protection|kmemleak|refcount|Call Trace|Busy inodes|blocked for more than'; then
		fail "kernel warnings in dmesg ($1)"
	fi
}
# wait_gone PID SECS: wait until PID exited, at most SECS seconds
wait_gone() {
	local i
	for i in $(seq $(($2 * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}
ROUND=0
# Rounds 1-3 also run a (hostile) polling channel on the last CPU: calls from the others go to it.
POLL=$(($(nproc) - 1))
start_hostile() {	# options for zuf-hostile serve
	ROUND=$((ROUND + 1))
	rm -f /tmp/zh-ready /tmp/zh-hang /tmp/zh-stop
	$H serve "$@" /tmp/zh-stats.$ROUND >>/tmp/srv.log 2>&1 &
	SRV=$!
	for _ in $(seq 100); do [ -e /tmp/zh-ready ] && return 0; sleep 0.1; done
	cat /tmp/srv.log
	fail "hostile server not ready"
}
# mount_retry: the root GETATTR may get a hostile reply too; retry until mounted
mount_retry() {
	local i
	for i in $(seq 60); do
		if mount -t zpmfs /dev/pmem0 /mnt 2>/dev/null; then
			echo "mounted after $((i - 1)) failed attempts"
			return 0
		fi
	done
	fail "no mount in 60 attempts"
}
# run_client SECS SEED: the client in the background (CLI); output to /tmp/client.SEED
run_client() {
	rm -f /tmp/zh-stop /tmp/zh-progress
	$H client /mnt "$1" "$2" >/tmp/client.$2 2>&1 &
	CLI=$!
}
# end_client: stop it, it must exit within 20 s, with status 0 (no bad result)
where() {	# PID...: what each task waits on (kernel stack of the first)
	local p t
	for p in "$@"; do
		for t in /proc/$p/task/*; do
			echo "$t: $(cut -d' ' -f3 $t/stat 2>/dev/null) $(cat $t/wchan 2>/dev/null)"
		done
	done
	cat /proc/$1/stack 2>/dev/null
}
end_client() {
	touch /tmp/zh-stop
	wait_gone $CLI 20 || { where $CLI $SRV; fail "client still in a call 20 s after the stop: a hang"; }
	wait $CLI
	local rc=$?
	grep -v '^client-totals' /tmp/client.$1 | tail -4
	[ $rc -eq 0 ] || fail "client saw a bad result (rc $rc)"
}
after_death() {	# the server is dead: calls fail with EIO, umount works
	local out
	out=$(stat /mnt 2>&1) && fail "stat worked on a dead server"
	echo "$out" | grep -q 'Input/output error' || fail "stat on a dead server: $out"
	grep -qw zpmfs /proc/filesystems && fail "zpmfs still registered after the server died"
	umount /mnt || fail "umount after the server died"
	check_dmesg "after round $ROUND"
}

[ -f /zuf/zuf.ko ] && [ -x $H ] && [ -x $T ] || fail "missing files (see --extra above)"
insmod /zuf/zuf.ko || fail insmod
mkdir -p /mnt
T0=$SECONDS

echo "== 0: privilege"
$H priv || fail "privilege checks"
ls -l /dev/zuf

echo "== 1: bad MOUNT answers, then malformed replies under load, umount, kill -9 under load"
start_hostile -s 1 -m 6 -p $POLL
head -1 /tmp/srv.log
for i in 1 2 3 4 5 6; do
	mount -t zpmfs /dev/pmem0 /mnt 2>/dev/null && fail "mount $i worked with a bad MOUNT answer"
done
echo "6 bad MOUNT answers: 6 mounts failed"
dmesg | grep 'zuf: .*mount failed\|bad mount reply' | tail -3
mount_retry
# the client runs until the server has sent 3000 malformed replies (at least 8 s, at most 60 s)
run_client 120 11
for t in $(seq 60); do
	sleep 1
	kill -0 $CLI 2>/dev/null || break
	n=$($H stats /tmp/zh-stats.1 | awk '$1 == "hostile" { print $2 }')
	[ "$t" -ge 8 ] && [ "$n" -ge 3000 ] && break
done
end_client 11
umount /mnt || fail "umount with the hostile server alive"
echo "umount with the server alive: ok"
mount_retry
run_client 60 12
sleep $((2 + RANDOM % 4))
kill -9 $SRV
wait $SRV 2>/dev/null
echo "server killed under load"
sleep 2
end_client 12
after_death

echo "== 2: the server exits with an operation in service"
start_hostile -s 2 -d $((1000 + RANDOM % 1000)) -p $POLL
mount_retry
run_client 90 21
wait_gone $SRV 80 || {
	where $CLI $SRV
	echo "client calls so far: $(cat /tmp/zh-progress 2>/dev/null)"
	$H stats /tmp/zh-stats.$ROUND | tr '\n' ' '
	fail "server did not reach its exit point"
}
wait $SRV 2>/dev/null
echo "server exited mid-operation"
sleep 2
end_client 21
after_death

echo "== 3: the server stops answering"
start_hostile -s 3 -p $POLL
mount_retry
run_client 60 31
sleep 4
touch /tmp/zh-hang
sleep 3
p1=$(cat /tmp/zh-progress 2>/dev/null)
sleep 3
p2=$(cat /tmp/zh-progress 2>/dev/null)
kill -0 $CLI 2>/dev/null || fail "client ended although the server does not answer"
[ "$p1" = "$p2" ] || fail "client progressed ($p1 -> $p2) with no server answers"
echo "client waits in a call ($p2 calls done); kill -9 the server"
kill -9 $SRV
wait $SRV 2>/dev/null
end_client 31
after_death

echo "== 4: a MOUNT answered with the wrong op code"
start_hostile -s 4 -w
(mount -t zpmfs /dev/pmem0 /mnt >/tmp/mount.out 2>&1; echo "rc=$?" >>/tmp/mount.out) &
MNT=$!
sleep 3
kill -0 $MNT 2>/dev/null || { cat /tmp/mount.out; fail "mount finished after a wrong-op answer"; }
kill -9 $SRV
wait $SRV 2>/dev/null
wait_gone $MNT 10 || fail "mount still waiting 10 s after the server died"
cat /tmp/mount.out
grep -q 'rc=0' /tmp/mount.out && fail "mount succeeded"
grep -q ' /mnt ' /proc/mounts && fail "/mnt mounted"
check_dmesg "round 4"

echo "== 5: a good server mounts and serves"
rm -f /tmp/zuf-ready /tmp/zuf-hang /tmp/zuf-hang-write /tmp/zuf-hang-mount /tmp/zuf-evil \
	/tmp/zuf-evil-store /tmp/zuf-slow-write
$T serve >>/tmp/good.log 2>&1 &
GOOD=$!
for _ in $(seq 100); do [ -e /tmp/zuf-ready ] && break; sleep 0.1; done
mount -t zpmfs /dev/pmem0 /mnt || fail "mount with the good server"
[ "$(cat /mnt/hello)" = "hello from the fake zus" ] || fail "cat /mnt/hello"
ls /mnt >/dev/null || fail ls
$T mmap /mnt/data >/dev/null || fail "mmap checks"
echo x >/mnt/newfile && [ "$(cat /mnt/newfile)" = x ] || fail "create and read back"
umount /mnt || fail "umount"
kill $GOOD
wait $GOOD 2>/dev/null
echo "good server: mount, cat, ls, DAX mmap, create, umount: ok"
sleep 0.5
rmmod zuf || fail "rmmod"
echo "rmmod: ok"
check_dmesg "end"

echo "== figures"
$H stats /tmp/zh-stats.* >/tmp/stats
tr '\n' ' ' </tmp/stats | fold -w 100 -s; echo
val() { awk -v k="$1" '$1 == k { print $2 }' /tmp/stats; }
cat /tmp/client.* | awk '$1 == "client-totals" { c += $2; ok += $3; eio += $4; err += $5; bus += $6; bad += $7 }
	END { printf "client calls %d: ok %d, EIO %d, other errno %d, SIGBUS %d, bad %d\n", c, ok, eio, err, bus, bad }'
[ "$(val stray_unexpected)" = 0 ] || fail "a stray control call did not fail as it should"
[ "$(val hostile)" -ge 1000 ] || fail "only $(val hostile) hostile replies"
[ "$(val polled)" -ge 20 ] || fail "the polling channel answered only $(val polled) calls"
echo "dmesg: $(dmesg | tail -n +"$((DMESG0 + 1))" | grep -c 'zuf:') zuf lines, 0 BUG/WARNING/Oops/general protection/kmemleak/refcount"
echo "hostile replies $(val hostile) of $(val replies) answers ($(val polled) by the polling channel, $(val poll_wrong_number) of them after a wrong call number), $(val double_wait) answers to nothing/stolen, $(val stray_calls) stray calls; $((SECONDS - T0)) s"
echo "zuf hostile server: OK"
