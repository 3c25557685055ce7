#!/bin/bash
# zuf.ko against a fake server (kernel/tests/zuf-ctl-test), no Rust side needed:
#  1. register, mount, ls, cat (sendfile), stat -f, DAX mmap with MAP_SYNC, remount, umount;
#  2. a misbehaving server: bad replies give EIO/SIGBUS, never a kernel warning; a server
#     store into a WRITE's source pages faults;
#     then four concurrent clients on both channels;
#  3. a writer killed while the server works on its pages: the server's later window accesses
#     are harmless and both channels serve again; an application killed while its call is in
#     flight dies at once;
#  4. kill -9 the server while a stat and a write are in flight: both get EIO, later calls
#     too, the type is unregistered, rmmod refuses while mounted, umount works;
#  5. kill -9 the server while a mount waits for it: the mount fails, the device is released;
#  6. a new server registers and serves a new mount; rmmod.
# The module and the test program must be built first:
#   make -C kernel && make -C kernel test
# zpmfs-vm: --timeout 300 --extra @REPO@/kernel/zuf.ko:/zuf/zuf.ko --extra @REPO@/kernel/tests/zuf-ctl-test:/zuf/zuf-ctl-test
set -uo pipefail

fail() { echo "FAIL: $*"; dmesg | tail -40; exit 1; }
T=/zuf/zuf-ctl-test

start_server() {
	rm -f /tmp/zuf-ready /tmp/zuf-hang /tmp/zuf-hang-write /tmp/zuf-hang-mount /tmp/zuf-evil \
		/tmp/zuf-evil-store /tmp/zuf-slow-write
	$T serve >>/tmp/srv.log 2>&1 &
	SRV=$!
	for _ in $(seq 100); do [ -e /tmp/zuf-ready ] && return 0; sleep 0.1; done
	cat /tmp/srv.log
	fail "fake server not ready"
}

[ -f /zuf/zuf.ko ] && [ -x $T ] || fail "missing /zuf/zuf.ko or $T (see --extra above)"
# only what the kernel says from here on counts (a --numa boot warns about its topology)
DMESG0=$(dmesg | wc -l)
insmod /zuf/zuf.ko || fail "insmod"
test -c /dev/zuf || fail "no /dev/zuf"
mkdir -p /mnt

echo "== 1: mount, ls, cat, stat -f, DAX mmap, remount"
start_server
head -2 /tmp/srv.log
grep -w zpmfs /proc/filesystems || fail "zpmfs not registered"
mount -t zpmfs -o fake=1 /dev/pmem0 /mnt || fail "mount"
grep ' /mnt ' /proc/mounts
ls -la /mnt || fail "ls"
[ "$(cat /mnt/hello)" = "hello from the fake zus" ] || fail "cat /mnt/hello"
cat /mnt/hello
stat -f /mnt || fail "stat -f"
$T mmap /mnt/data || fail "mmap checks"
$T touch /mnt/hello || fail "mmap of a hole"
echo "-- namespace operations"
mkdir /mnt/d || fail "mkdir"
echo "some text" >/mnt/d/f || fail "create"
echo "more" >>/mnt/d/f || fail "append"
[ "$(cat /mnt/d/f)" = "$(printf 'some text\nmore')" ] || fail "read back"
ln /mnt/d/f /mnt/d/g || fail "link"
[ "$(stat -c %h /mnt/d/f)" = 2 ] || fail "link count $(stat -c %h /mnt/d/f)"
ln -s f /mnt/d/s || fail "symlink"
[ "$(readlink /mnt/d/s)" = f ] || fail "readlink"
[ "$(cat /mnt/d/s)" = "$(cat /mnt/d/f)" ] || fail "read through the symlink"
mv /mnt/d/g /mnt/d/h || fail "rename"
mkdir /mnt/d/sub && mv /mnt/d/sub /mnt/sub2 || fail "rename a directory"
[ "$(stat -c %h /mnt)" = 4 ] || fail "root link count $(stat -c %h /mnt)"
rm /mnt/d/f || fail "unlink"
[ "$(stat -c %h /mnt/d/h)" = 1 ] || fail "link count after unlink"
truncate -s 3 /mnt/d/h || fail "truncate"
[ "$(cat /mnt/d/h)" = som ] || fail "truncated content"
chmod 600 /mnt/d/h && [ "$(stat -c %a /mnt/d/h)" = 600 ] || fail "chmod"
mknod /mnt/d/p p && [ -p /mnt/d/p ] || fail "mknod fifo"
rmdir /mnt/d 2>/dev/null && fail "rmdir of a non-empty directory"
$T xattr /mnt/d/h || fail "xattrs"
ls -la /mnt /mnt/d
rm -r /mnt/d /mnt/sub2 || fail "rm -r"
echo "-- 10 MiB through the 4 MiB window: read/write in 8 MiB calls, and sendfile"
dd if=/dev/urandom of=/tmp/big bs=1M count=10 2>/dev/null
dd if=/tmp/big of=/mnt/big bs=8M 2>/dev/null || fail "dd to /mnt/big"
dd if=/mnt/big of=/tmp/back bs=8M 2>/dev/null || fail "dd from /mnt/big"
cmp /tmp/big /tmp/back || fail "big file differs (read/write)"
cat /mnt/big >/tmp/back2 || fail "cat /mnt/big"
cmp /tmp/big /tmp/back2 || fail "big file differs (sendfile)"
cp /tmp/big /mnt/big2 && cmp /tmp/big /mnt/big2 || fail "cp"
md5sum /tmp/big /mnt/big /mnt/big2
rm /mnt/big /mnt/big2
ls /mnt
mount -o remount,ro /mnt || fail "remount ro"
grep -q ' /mnt zpmfs ro' /proc/mounts || fail "not ro after remount"
mount -o remount,rw /mnt || fail "remount rw"
grep ' /mnt ' /proc/mounts
umount /mnt || fail "umount"
echo "umount: ok"
sleep 1
grep -q 'PM mapping revoked after umount' /tmp/srv.log || fail "PM mapping not revoked"
echo "server's PM mapping revoked at umount: ok"

echo "== 1c: concurrent clients on both channels"
mount -t zpmfs /dev/pmem0 /mnt || fail "mount 1c"
CLIENTS=""
for i in 1 2 3 4; do
	(
		for r in 1 2 3 4 5; do
			dd if=/tmp/big of=/mnt/c$i bs=256k count=4 2>/dev/null || exit 1
			cmp -n 1048576 /tmp/big /mnt/c$i || exit 1
			stat /mnt/c$i >/dev/null && ls /mnt >/dev/null || exit 1
		done
	) &
	CLIENTS="$CLIENTS $!"
done
cfail=0
for p in $CLIENTS; do wait $p || cfail=1; done
[ $cfail -eq 0 ] || fail "a concurrent client failed"
rm /mnt/c1 /mnt/c2 /mnt/c3 /mnt/c4
echo "4 concurrent clients x 5 rounds: ok"

echo "== 2: a misbehaving server"
touch /tmp/zuf-evil
cat /mnt/hello && fail "cat worked with a bad READ reply"
# busybox ls ignores readdir errors: check that nothing was listed and why
[ -z "$(ls /mnt)" ] || fail "ls listed entries from a bad READDIR reply"
dmesg | grep -q 'zuf: bad readdir reply' || fail "no log line for the bad READDIR reply"
$T touch /mnt/data
[ $? -eq 3 ] || fail "no SIGBUS for a block past the device"
rm /tmp/zuf-evil
touch /tmp/zuf-evil-store
# Over 64 KiB the application's pages are mapped into the server, read-only.
dd if=/tmp/big of=/mnt/data bs=1M count=1 conv=notrunc 2>/dev/null && fail "write worked although the server failed it"
grep -q 'store into a WRITE.s source refused' /tmp/srv.log || fail "server could store into a WRITE's source"
# Up to 64 KiB the data is copied through the channel's bounce pages: a store changes the copy.
echo "app data" >/tmp/src
dd if=/tmp/src of=/mnt/data conv=notrunc 2>/dev/null && fail "write worked although the server failed it"
grep -q 'a store into a WRITE.s window went through' /tmp/srv.log || fail "the bounced WRITE never reached the server"
rm /tmp/zuf-evil-store
[ "$(cat /tmp/src)" = "app data" ] || fail "the application's buffer changed"
[ "$(cat /mnt/hello)" = "hello from the fake zus" ] || fail "cat after the bad replies"
echo "bad replies rejected: ok"

echo "== 3a: a writer killed while the server works on its pages"
touch /tmp/zuf-slow-write
dd if=/tmp/big of=/mnt/slow bs=1M count=1 2>/dev/null &
APP=$!
sleep 1.5
kill -9 $APP
wait $APP
echo "killed writer exited with $?"
sleep 3
rm /tmp/zuf-slow-write
grep -q 'slow WRITE reads its window' /tmp/srv.log || fail "the slow WRITE did not finish"
kill -0 $SRV || fail "the server died touching the window after the writer was killed"
for cpu in 0 1; do	# both channels serve again
	if command -v taskset >/dev/null; then
		taskset -c $cpu cat /mnt/hello >/dev/null || fail "channel of cpu $cpu after the kill"
	else
		cat /mnt/hello >/dev/null || fail "cat after the kill"
	fi
done
rm -f /mnt/slow

echo "== 3: an application killed while its call is in flight"
touch /tmp/zuf-hang
stat /mnt >/dev/null 2>&1 &
APP=$!
sleep 1
kill -0 $APP 2>/dev/null || fail "stat finished although the server hangs"
kill -9 $APP
wait $APP
echo "killed stat exited with $?"
kill -0 $APP 2>/dev/null && fail "killed stat still there"

echo "== 4: kill -9 the server while a stat and a write are in flight"
touch /tmp/zuf-hang-write
(stat /mnt >/tmp/stat.out 2>&1; echo "rc=$?" >>/tmp/stat.out) &
STAT=$!
(dd if=/dev/zero of=/mnt/data bs=4096 count=1 conv=notrunc >/tmp/dd.out 2>&1
 echo "rc=$?" >>/tmp/dd.out) &
DD=$!
sleep 2
kill -0 $STAT 2>/dev/null || fail "stat finished before the kill"
kill -0 $DD 2>/dev/null || fail "dd finished before the kill"
echo "stat and dd are waiting; kill -9 $SRV"
kill -9 $SRV
wait $SRV 2>/dev/null
wait $STAT
wait $DD
cat /tmp/stat.out /tmp/dd.out
grep -q 'Input/output error' /tmp/stat.out || fail "stat did not get EIO"
grep -q 'rc=1' /tmp/stat.out || fail "stat did not fail"
grep -q 'Input/output error' /tmp/dd.out || fail "dd did not get EIO"
ls /mnt 2>&1 | head -3
ls /mnt >/dev/null 2>&1 && fail "ls worked on a dead server"
stat /mnt/hello >/dev/null 2>&1 && fail "stat of a cached inode worked on a dead server"
grep -w zpmfs /proc/filesystems && fail "zpmfs still registered after server death"
rmmod zuf 2>/dev/null && fail "rmmod worked while mounted"
umount /mnt || fail "umount after server death"
echo "umount after server death: ok"

echo "== 5: kill -9 the server while a mount waits for it"
start_server
touch /tmp/zuf-hang-mount
(mount -t zpmfs /dev/pmem0 /mnt >/tmp/mount.out 2>&1; echo "rc=$?" >>/tmp/mount.out) &
MNT=$!
sleep 2
kill -0 $MNT 2>/dev/null || fail "mount finished although the server hangs"
kill -9 $SRV
wait $SRV 2>/dev/null
wait $MNT
cat /tmp/mount.out
grep -q 'rc=0' /tmp/mount.out && fail "mount succeeded without a server"
grep -q ' /mnt ' /proc/mounts && fail "/mnt mounted"

echo "== 6: a new server registers and serves a new mount"
start_server
mount -t zpmfs /dev/pmem0 /mnt || fail "mount 6"
ls /mnt || fail "ls 6"
$T mmap /mnt/data || fail "mmap checks 6"
umount /mnt || fail "umount 6"
kill $SRV
wait $SRV 2>/dev/null
sleep 0.5
rmmod zuf || fail "rmmod"
echo "rmmod: ok"
echo "--- server log"
cat /tmp/srv.log
echo "--- dmesg (zuf)"
dmesg | grep -i zuf
if dmesg | tail -n +$((DMESG0 + 1)) | grep -E 'Oops|BUG:|WARNING:|Call Trace'; then
	fail "kernel warnings in dmesg"
fi
echo "zuf fake server: OK"
