#!/bin/bash
# zuf.ko's polling channel (`[zuf] poll_cpu` in zus.toml): zus serve with a poller on CPU 1,
# mkfs.zpmfs, mount. Calls from CPU 0 go to the poller, calls from CPU 1 to CPU 1's own
# channel. Checks: fio writes and verifies data through both (4 KiB, bounced; 200 KiB, the
# application's pages mapped into the window); cowrace (stores through a mapping racing
# copy-on-write writes) finds no page of another file changed; the poller used CPU time for
# the CPU-0 calls, sleeps once calls stop (no CPU time over 2 s) and still answers the next
# call; a caller spinning for a stopped (SIGSTOP) server dies of kill -9 at once and calls go on
# after SIGCONT; kill -9 of zus under a writer on CPU 0 (spinning in the kernel for its answer)
# gives EIO at once, then every call EIO, umount works; no kernel warning.
# Built first by `make vm-test` (kernel module, release binaries, tests/vm/progs).
# zpmfs-vm: --rootfs --timeout 600 --extra @REPO@/kernel/zuf.ko:/zuf/zuf.ko --extra @REPO@/target/release/zus:/usr/sbin/zus --extra @REPO@/target/release/mkfs-zpmfs:/usr/sbin/mkfs.zpmfs --extra @REPO@/tests/vm/progs/cowrace:/zuf/cowrace --extra /lib/x86_64-linux-gnu/libgcc_s.so.1:/lib/x86_64-linux-gnu/libgcc_s.so.1
set -uo pipefail

M=/mnt/pm
DMESG0=$(dmesg | wc -l)
fail() { echo "FAIL: $*"; tail -20 /tmp/zus.log; dmesg | tail -30; exit 1; }
[ "$(nproc)" -ge 2 ] || fail "needs 2 CPUs"

# CPU time (ticks) of the zus thread named $1
ticks() {
	local t
	for t in /proc/"$ZUS"/task/*; do
		if [ "$(cat "$t/comm")" = "$1" ]; then
			awk '{ print $14 + $15 }' "$t/stat"
			return
		fi
	done
	echo -1
}
state() {
	local t
	for t in /proc/"$ZUS"/task/*; do
		[ "$(cat "$t/comm")" = "$1" ] && awk '{ print $3 }' "$t/stat"
	done
}

printf '[zuf]\npoll_cpu = 1\n' >/tmp/zus.toml
insmod /zuf/zuf.ko || fail insmod
zus serve --config /tmp/zus.toml >>/tmp/zus.log 2>&1 &
ZUS=$!
for _ in $(seq 100); do grep -qw zpmfs /proc/filesystems && break; sleep 0.1; done
grep -qw zpmfs /proc/filesystems || fail "zus did not register zpmfs"
grep -q "polling for calls from the other CPUs on cpu 1" /tmp/zus.log || fail "no poller started"
mkfs.zpmfs -f -q /dev/pmem0 || fail mkfs
mkdir -p $M
mount -t zpmfs /dev/pmem0 $M || fail mount

p0=$(ticks zt-poll-1)
for cpu in 0 1; do
	fio --name=v4k --directory=$M --ioengine=psync --rw=randwrite --bs=4k --direct=1 --size=8m \
		--verify=crc32c --do_verify=1 --cpus_allowed=$cpu >/tmp/fio.out 2>&1 ||
		{ tail -5 /tmp/fio.out; fail "4 KiB write+verify from cpu $cpu"; }
	fio --name=v200k --directory=$M --ioengine=psync --rw=randrw --bs=200k --size=16m \
		--verify=md5 --do_verify=1 --cpus_allowed=$cpu >/tmp/fio.out 2>&1 ||
		{ tail -5 /tmp/fio.out; fail "200 KiB read/write+verify from cpu $cpu"; }
	echo "cpu $cpu: 4 KiB and 200 KiB writes verified"
done
rm -f $M/v4k.* $M/v200k.*
p1=$(ticks zt-poll-1)
[ "$p1" -gt "$p0" ] || fail "the poller did no work ($p0 -> $p1 ticks)"
echo "the poller: $((p1 - p0)) ticks of CPU time for the CPU-0 calls"

/zuf/cowrace $M 10 || fail "cowrace"

# Idle: the poller falls asleep (1 ms without a call) and stays off the CPU.
sleep 1
i0=$(ticks zt-poll-1)
sleep 2
i1=$(ticks zt-poll-1)
[ "$(state zt-poll-1)" = S ] || fail "the poller is not asleep when idle (state $(state zt-poll-1))"
[ $((i1 - i0)) -le 2 ] || fail "the poller spins while idle ($((i1 - i0)) ticks in 2 s)"
taskset -c 0 stat $M >/dev/null || fail "a call after the poller slept"
echo "idle: the poller sleeps ($((i1 - i0)) ticks in 2 s) and wakes for the next call"

# A server that stops answering: a caller spinning for its answer dies of kill -9 at once;
# once the server runs again the abandoned call is answered and calls go on.
echo data >$M/f
kill -STOP $ZUS
taskset -c 0 cat $M/f >/dev/null 2>&1 &
C=$!
sleep 1
[ -d /proc/$C ] || fail "a call was answered by a stopped server"
kill -9 $C
for _ in $(seq 50); do [ -d /proc/$C ] || break; sleep 0.1; done
[ -d /proc/$C ] && fail "a caller spinning for a stopped server survives kill -9 for 5 s"
kill -CONT $ZUS
[ "$(taskset -c 0 cat $M/f)" = data ] || fail "calls after the server ran again"
echo "stopped server: the spinning caller died of kill -9, calls go on after SIGCONT"

# kill -9 under a writer on CPU 0: it spins in the kernel for its answer and must get EIO.
fio --name=k --directory=$M --ioengine=psync --rw=randwrite --bs=4k --direct=1 --size=4m \
	--time_based --runtime=60 --cpus_allowed=0 >/tmp/kill.out 2>&1 &
F=$!
sleep 2
kill -9 $ZUS
t0=$SECONDS
for _ in $(seq 100); do [ -d /proc/$F ] || break; sleep 0.1; done
[ -d /proc/$F ] && fail "fio still runs 10 s after kill -9 of the server"
wait $F && fail "fio succeeded with the server dead"
grep -q "Input/output error" /tmp/kill.out || { cat /tmp/kill.out; fail "fio did not get EIO"; }
stat $M >/dev/null 2>&1 && fail "a call succeeded with the server dead"
umount $M || fail "umount after kill -9"
echo "kill -9 under a polled writer: EIO after $((SECONDS - t0)) s, then EIO, umount ok"
rmmod zuf || fail rmmod
if dmesg | tail -n +"$((DMESG0 + 1))" |
	grep -E 'BUG|WARNING|Oops|general protection|refcount|Call Trace|Busy inodes|blocked for more than|soft lockup'; then
	fail "kernel warnings in dmesg"
fi
echo "zuf polling channel: OK"
