#!/bin/bash
# zpmfs over zuf.ko with the real server: insmod, `zus serve`, mkfs.zpmfs /dev/pmem0,
# mount -t zpmfs; ordinary use (tree, copy, tar with checksums, rename/link/symlink/xattr,
# sparse files and SEEK_HOLE, O_DIRECT at unaligned offsets); DAX mmap with MAP_SYNC; stores
# through a mapping racing write(2) of the same page never reach the freed block; file
# handles; chattr's immutable and append-only; umount,
# fsck.zpmfs clean, mount again; kill -9 zus under a writer (EIO, no hang, no kernel warning),
# restart, mount: every completed write is there; rmmod.
# Built first by `make vm-test` (kernel module, release binaries, tests/vm/progs).
# zpmfs-vm: --timeout 900 --extra @REPO@/kernel/zuf.ko:/zuf/zuf.ko --extra @REPO@/target/release/zus:/usr/sbin/zus --extra @REPO@/target/release/mkfs-zpmfs:/usr/sbin/mkfs.zpmfs --extra @REPO@/target/release/fsck-zpmfs:/usr/sbin/fsck.zpmfs --extra @REPO@/tests/vm/progs/daxmmap:/zuf/daxmmap --extra @REPO@/tests/vm/progs/fhandle:/zuf/fhandle --extra @REPO@/tests/vm/progs/rename:/zuf/rename --extra @REPO@/tests/vm/progs/cowrace:/zuf/cowrace --extra /lib/x86_64-linux-gnu/libgcc_s.so.1:/lib/x86_64-linux-gnu/libgcc_s.so.1
set -uo pipefail

fail() { echo "FAIL: $*"; dmesg | tail -40; exit 1; }
step() { echo; echo "== $*"; }
DMESG0=$(dmesg | wc -l)
check_dmesg() {
	if dmesg | tail -n +"$((DMESG0 + 1))" | grep -E 'Oops|BUG:|WARNING:|Call Trace|general protection'; then
		fail "kernel warnings in dmesg"
	fi
}
start_zus() {
	zus serve >>/tmp/zus.log 2>&1 &
	ZUS=$!
	for _ in $(seq 100); do grep -q zpmfs /proc/filesystems && return 0; sleep 0.1; done
	cat /tmp/zus.log
	fail "zus did not register zpmfs"
}

insmod /zuf/zuf.ko || fail insmod
start_zus
head -3 /tmp/zus.log
step "mkfs and mount"
mkfs.zpmfs -q /dev/pmem0 || fail mkfs
mkdir -p /mnt/pm
mount -t zpmfs /dev/pmem0 /mnt/pm || { cat /tmp/zus.log; fail mount; }
grep ' /mnt/pm ' /proc/mounts
cd /mnt/pm || fail cd

step "ordinary use"
mkdir -p tree/a/b tree/c
for i in $(seq 1 200); do head -c $((i * 97)) /dev/urandom > tree/a/f$i; done
for i in $(seq 1 50); do echo "file $i" > tree/a/b/g$i; done
(cd tree && find . -type f | sort | xargs md5sum) > /tmp/sums
cp -a tree copy || fail "cp -a"
(cd copy && md5sum -c -s /tmp/sums) || fail "copy differs"
echo "cp -a: $(wc -l < /tmp/sums) files, $(du -sk tree | cut -f1) KiB, checksums equal"
tar cf /tmp/t.tar tree && mkdir untar && tar xf /tmp/t.tar -C untar || fail tar
(cd untar/tree && md5sum -c -s /tmp/sums) || fail "tar round trip differs"
echo "tar round trip: $(stat -c %s /tmp/t.tar) bytes, checksums equal"
mv copy/a/f1 copy/c-moved && ln copy/a/f2 copy/hard && ln -s a/f3 copy/soft || fail "mv/ln"
[ "$(stat -c %h copy/hard)" = 2 ] || fail "link count"
cmp copy/soft tree/a/f3 || fail symlink
mv -f copy/a/f4 copy/a/f5 || fail "rename over"
cmp copy/a/f5 tree/a/f4 && [ ! -e copy/a/f4 ] || fail "rename over: content"
echo "rename, rename over a file, hard link (nlink 2), symlink: ok"
# zuf.ko does not look a rename's target up (one round trip, not two): the server replaces
# what the name holds and says what that was. Here the replaced file stays cached under its
# other name (held open through it) while its dentry under the target name is dropped, so only
# the reply can tell the kernel its new link count. /zuf/rename is one rename(2) (mv would stat
# the target first and so look it up).
one_rename() { /zuf/rename "$@" 2>&1; }
mkdir ren && echo new >ren/src && echo old >ren/dst && ln ren/dst ren/other || fail "rename setup"
exec 7<ren/other
sync && echo 2 >/proc/sys/vm/drop_caches
# (a stat now makes its cached attributes current: without the reply they would stay so)
[ "$(stat -c %h ren/other)" = 2 ] || fail "link count before the rename: $(stat -c %h ren/other), 2 expected"
one_rename ren/src ren/dst || fail "rename over a name not in the dcache"
[ "$(cat ren/dst)" = new ] && [ ! -e ren/src ] || fail "rename over an uncached name: content"
[ "$(stat -c %h ren/other)" = 1 ] || fail "the replaced file's link count: $(stat -c %h ren/other), 1 expected"
[ "$(cat <&7)" = old ] || fail "the replaced file through its other name"
exec 7<&-
mkdir ren/d1 ren/d2 ren/d3 && touch ren/d3/x && sync && echo 2 >/proc/sys/vm/drop_caches
one_rename ren/d1 ren/d2 || fail "a directory over an empty one"
[ "$(stat -c %h ren)" = 4 ] || fail "link count after a directory replaced one: $(stat -c %h ren), 4 expected"
out=$(one_rename ren/d2 ren/d3)
echo "$out" | grep -q "Directory not empty" || fail "a directory over a non-empty one: $out"
out=$(one_rename ren/dst ren/d3)
echo "$out" | grep -q "Is a directory" || fail "a file over a directory: $out"
# In a sticky directory the target is looked up, so that the VFS checks who may replace it.
chmod 1777 ren && echo root >ren/roots && touch ren/mine && chown 65534:65534 ren/mine || fail "sticky setup"
sync && echo 2 >/proc/sys/vm/drop_caches
out=$(one_rename ren/mine ren/roots 65534)
echo "$out" | grep -q "Operation not permitted" || fail "another user's file replaced in a sticky directory: $out"
[ "$(cat ren/roots)" = root ] || fail "sticky directory: the target changed"
rm -r ren
echo "rename over names not in the dcache (file, empty and non-empty directory), sticky directory: ok"
# POSIX ACLs (zuf-acl.c): an access ACL grants a named user and implies the group bits (its
# mask); a default ACL is inherited by new files, whose mode it decides instead of the umask;
# chmod rewrites the mask; all of it survives the remount below (checked there).
mkdir acl && setfacl -m u:1234:rw- copy/a/f7 && setfacl -d -m u:1234:r-x,m::rwx acl || fail "setfacl"
getfacl -cp copy/a/f7 | grep -q "^user:1234:rw-" || fail "access ACL not kept: $(getfacl -cp copy/a/f7)"
[ "$(stat -c %A copy/a/f7)" = "-rw-rw-r--" ] || fail "mode after the ACL: $(stat -c %A copy/a/f7) (mask rw- expected in the group bits)"
(umask 077 && touch acl/inherited && mkdir acl/subdir) || fail "create under a default ACL"
getfacl -cp acl/inherited | grep -q "^user:1234:r-x" || fail "default ACL not inherited: $(getfacl -cp acl/inherited)"
getfacl -cp acl/subdir | grep -q "^default:user:1234:r-x" || fail "default ACL not passed to a subdirectory"
[ "$(stat -c %a acl/inherited)" = 664 ] || fail "mode under a default ACL: $(stat -c %a acl/inherited) (the umask must not apply, 664 expected)"
(umask 022 && touch plain) && [ "$(stat -c %a plain)" = 644 ] || fail "umask without a default ACL: $(stat -c %a plain)"
chmod 640 copy/a/f7 && getfacl -cp copy/a/f7 | grep -q "^mask::r--" || fail "chmod did not rewrite the mask: $(getfacl -cp copy/a/f7)"
getfacl -cp copy/a/f7 > /tmp/acl.f7
echo "POSIX ACLs: access ACL and mask, default ACL inherited (mode 664 under umask 077), chmod: ok"
setfattr -n user.k -v val copy/a/f6 2>/dev/null && [ "$(getfattr --only-values -n user.k copy/a/f6)" = val ] && echo "xattr ok" || echo "xattr tools not in guest: skipped"
dd if=/dev/zero of=sparse bs=1 count=1 seek=$((1 << 30)) status=none || fail sparse
[ "$(stat -c %s sparse)" = $((1 << 30 | 1)) ] || fail "sparse size"
[ "$(stat -c %b sparse)" -le 16 ] || fail "sparse blocks"
echo "sparse: size $(stat -c %s sparse), $(stat -c %b sparse) blocks of 512 allocated"
dd if=/dev/urandom of=/tmp/odirect bs=4096 count=64 status=none
dd if=/tmp/odirect of=direct bs=4096 oflag=direct status=none || fail "O_DIRECT write"
dd if=direct of=/tmp/back bs=4096 iflag=direct status=none && cmp /tmp/odirect /tmp/back || fail "O_DIRECT read"
dd if=/tmp/odirect of=direct bs=1000 seek=3 count=5 conv=notrunc oflag=direct status=none || fail "unaligned O_DIRECT write"
dd if=/tmp/odirect of=/tmp/expect bs=1000 count=5 status=none
dd if=direct of=/tmp/got bs=1000 skip=3 count=5 iflag=direct status=none && cmp /tmp/expect /tmp/got || fail "unaligned O_DIRECT read back"
echo "O_DIRECT: 256 KiB aligned and 5 x 1000 bytes at offset 3000 written and read back"
# FIEMAP (ZUF_OP_FIEMAP): 8 KiB of data, a hole, 4 KiB at 1 MiB marked as the last extent.
xfs_io -f -c "pwrite -q 0 8192" -c "pwrite -q 1048576 4096" -c "fiemap -v" extents > /tmp/fiemap 2>&1 || fail "fiemap: $(cat /tmp/fiemap)"
grep -Eq "\[16\.\.2047\]: +hole" /tmp/fiemap && grep -Eq "\[2048\.\.2055\]: +[0-9]+\.\.[0-9]+ +8 +0x1\$" /tmp/fiemap &&
	[ "$(awk '$2 ~ /^\[/ && $3 != "hole" && $4 ~ /^[0-9]+$/ {n += $4} END {print n}' /tmp/fiemap)" = 24 ] ||
	fail "fiemap does not show 16 + 8 sectors of data around a hole, the last one flagged: $(cat /tmp/fiemap)"
echo "fiemap: $(grep -c '^ *[0-9]*:' /tmp/fiemap) extents (data, hole, last data), as written"
# O_TMPFILE (ZUF_OP_TMPFILE): a nameless file, written, then named by linkat; one never
# named gives its space back when closed.
xfs_io -T -c "pwrite -q -S 0x74 0 8192" -c "flink /mnt/pm/linked-tmp" /mnt/pm > /tmp/tmpfile 2>&1 ||
	fail "O_TMPFILE and flink: $(cat /tmp/tmpfile)"
[ "$(stat -c %s:%h linked-tmp)" = 8192:1 ] && [ "$(tr -d t < linked-tmp | wc -c)" = 0 ] ||
	fail "the linked tmpfile: $(stat linked-tmp)"
free_before=$(stat -f -c %f /mnt/pm)
xfs_io -T -c "pwrite -q 0 1m" /mnt/pm || fail "O_TMPFILE write"
free_after=$(stat -f -c %f /mnt/pm)
# Its 256 data blocks and its log come back; its inode slot may have taken a new block of
# the inode table of the CPU it ran on, which stays (a table never shrinks).
[ "$free_after" -ge $((free_before - 1)) ] || fail "a closed tmpfile kept its space: $free_before free blocks before, $free_after after"
echo "O_TMPFILE: 8 KiB written and linked by name; 1 MiB unnamed, freed on close ($free_before -> $free_after free blocks)"
echo "ordinary use OK"

step "DAX mmap"
/zuf/daxmmap /mnt/pm/mapped || fail "DAX mmap"
md5sum mapped > /tmp/mapped.sum
# write() copies on write and the server frees the old block: a store through a mapping that
# races the write must not land in that block once another file got it (it did, before the
# write ran under the invalidate lock: 2 to 20 pages of the other file per 20 s, by the load).
/zuf/cowrace /mnt/pm 30 || fail "stores through a mapping reached another file's block"
rm -f /mnt/pm/a /mnt/pm/b
# write() copies on write: a mapping of the page must see the new data, not the old block.
out=$(xfs_io -f -c "pwrite -q -S 0x61 0 4096" -c "mmap -rw 0 4096" -c "mread -v 0 4" \
	-c "pwrite -q -S 0x62 0 4096" -c "mread -v 0 4" /mnt/pm/coherent) || fail "xfs_io write/mmap"
echo "$out" | grep "^00000000:" | tail -1 | grep -q "62 62 62 62" || fail "a mapping still shows the old data after write(): $out"
# Truncate into a mapped page, then extend: past the old end it reads zeros, and a store
# through the mapping lands in the file's current block.
out=$(xfs_io -f -c "pwrite -q -S 0x61 0 8192" -c "mmap -rw 0 8192" -c "truncate 100" -c "truncate 8192" \
	-c "mread -v 96 8" -c "mwrite -S 0x63 0 4" -c "pread -v 0 4" /mnt/pm/truncated) || fail "xfs_io truncate/mmap"
echo "$out" | grep -q "^00000060:  61 61 61 61 00 00 00 00" || fail "bytes past a truncated end read back nonzero: $out"
echo "$out" | grep "^00000000:" | tail -1 | grep -q "63 63 63 63" || fail "a store through the mapping after truncate was lost: $out"
echo "write()/mmap coherence and truncate of a mapped page: ok"
# A store through a mapping stamps mtime and ctime, as write(2) does (fstests generic/080);
# the server keeps them, so they survive the remount below.
xfs_io -f -c "pwrite -q 0 4096" /mnt/pm/stamped || fail "xfs_io pwrite"
before=$(stat -c '%Y %Z' /mnt/pm/stamped)
sleep 1.1
xfs_io -c "mmap -w 0 4096" -c "mwrite -S 0x64 0 4" /mnt/pm/stamped || fail "xfs_io mwrite"
stat -c '%Y %Z' /mnt/pm/stamped > /tmp/stamped.times
echo "$before $(cat /tmp/stamped.times)" | awk '{ exit !($3 > $1 && $4 > $2) }' ||
	fail "a store through a mapping left mtime/ctime: before $before, after $(cat /tmp/stamped.times)"
echo "a store through a mapping stamps mtime and ctime: ok ($before -> $(cat /tmp/stamped.times))"
# Every change stamps ctime no earlier than mtime (fstests generic/423): both come from the
# server's clock, never one from the kernel's coarse clock and one from the server's.
xfs_io -f -c "pwrite -q 0 4096" /mnt/pm/ordered || fail "xfs_io pwrite"
# statx's creation time (STATX_BTIME 0x800), as "seconds.nanoseconds", or "none"
btime_of() {
	local out mask
	out=$(xfs_io -r -c 'statx -r' "$1") || { echo none; return; }
	mask=$(echo "$out" | sed -n 's/^stat.mask = //p')
	if [ $(( ${mask:-0} & 0x800 )) -ne 0 ]; then
		printf '%s.%09d\n' "$(echo "$out" | sed -n 's/^stat.btime.tv_sec = //p')" \
			"$(echo "$out" | sed -n 's/^stat.btime.tv_nsec = //p')"
	else
		echo none
	fi
}
btime_of /mnt/pm/ordered >/tmp/btime.ordered
ctime_not_before_mtime() {
	local m c	# seconds and nanoseconds as one number: %Y is whole seconds, %y has the fraction
	m=$(stat -c '%Y %y' /mnt/pm/ordered | sed -E 's/^([0-9]+) [^.]*\.([0-9]{9}).*/\1\2/')
	c=$(stat -c '%Z %z' /mnt/pm/ordered | sed -E 's/^([0-9]+) [^.]*\.([0-9]{9}).*/\1\2/')
	[ "$c" -ge "$m" ] || fail "after $*: ctime $c (ns) before mtime $m"
}
truncate -s 100 /mnt/pm/ordered && ctime_not_before_mtime truncate
touch -m /mnt/pm/ordered && ctime_not_before_mtime touch -m
chmod 600 /mnt/pm/ordered && ctime_not_before_mtime chmod
xfs_io -c "mmap -w 0 100" -c "mwrite -S 0x65 0 4" /mnt/pm/ordered && ctime_not_before_mtime mwrite
echo "ctime never before mtime after truncate, touch -m, chmod, a mapped store: ok"
born=$(cat /tmp/btime.ordered)
[ "$born" != none ] && [ "${born%.*}" -gt 1600000000 ] || fail "statx btime of a new file: $born"
[ "${born%.*}" -le "$(stat -c %Z /mnt/pm/ordered)" ] || fail "btime $born after ctime"
[ "$(btime_of /mnt/pm/ordered)" = "$born" ] || fail "btime moved: $born -> $(btime_of /mnt/pm/ordered)"
echo "statx btime set at creation ($born), unchanged by truncate, touch, chmod, a mapped store"

step "file handles"
/zuf/fhandle /mnt/pm || fail "file handles"

step "chattr: immutable and append-only"
# The VFS enforces them from the inode flags zuf.ko sets from the server's attributes.
echo data > /mnt/pm/frozen && echo log > /mnt/pm/journal || fail "create for chattr"
chattr +i /mnt/pm/frozen && chattr +a /mnt/pm/journal || fail "chattr +i / +a"
(echo more >> /mnt/pm/frozen) 2>/dev/null && fail "wrote to an immutable file"
rm -f /mnt/pm/frozen 2>/dev/null; [ -e /mnt/pm/frozen ] || fail "removed an immutable file"
touch /mnt/pm/frozen 2>/dev/null && fail "touched an immutable file"
echo more >> /mnt/pm/journal || fail "appending to an append-only file"
(echo over > /mnt/pm/journal) 2>/dev/null && fail "overwrote an append-only file"
[ "$(cat /mnt/pm/journal)" = "$(printf 'log\nmore')" ] || fail "append-only file: $(cat /mnt/pm/journal)"
lsattr_of() { lsattr -d "$1" | awk '{ gsub("-", "", $1); print $1 }'; }
[ "$(lsattr_of /mnt/pm/frozen) $(lsattr_of /mnt/pm/journal)" = "i a" ] ||
	fail "lsattr: $(lsattr -d /mnt/pm/frozen /mnt/pm/journal)"
# statx reports them too (STATX_ATTR_IMMUTABLE 0x10, APPEND 0x20, NODUMP 0x40; DAX aside)
statx_attrs() { echo $(( $(xfs_io -r -c 'statx -r' "$1" | sed -n 's/^stat.attributes = //p') & 0x70 )); }
[ "$(statx_attrs /mnt/pm/frozen) $(statx_attrs /mnt/pm/journal)" = "16 32" ] ||
	fail "statx attributes: $(xfs_io -r -c 'statx -r' /mnt/pm/frozen 2>&1 | grep attributes)"
echo "chattr +i refuses write, rm and touch; +a allows only appending; lsattr and statx show them"

step "umount, fsck, mount"
# What stat shows now (from zuf.ko's attribute cache where it is fresh) must be what the
# server has: after the remount every attribute comes from it.
(cd /mnt/pm && find . -exec stat -c '%n %s %b %h %a %u %g %Y %Z' {} + | sort) >/tmp/stat.before
cd / && umount /mnt/pm || fail umount
fsck.zpmfs -n -f /dev/pmem0 || fail "fsck after umount"
mount -t zpmfs /dev/pmem0 /mnt/pm || fail remount
(cd /mnt/pm/tree && md5sum -c -s /tmp/sums) || fail "tree after remount"
(cd /mnt/pm && md5sum -c -s /tmp/mapped.sum) || fail "mapped file after remount"
(cd /mnt/pm && find . -exec stat -c '%n %s %b %h %a %u %g %Y %Z' {} + | sort) >/tmp/stat.after
cmp -s /tmp/stat.before /tmp/stat.after ||
	fail "stat before the remount differs from the server's: $(diff /tmp/stat.before /tmp/stat.after | head -20)"
echo "stat of $(wc -l </tmp/stat.after) files before the remount equals the server's after it"
[ "$(stat -c '%Y %Z' /mnt/pm/stamped)" = "$(cat /tmp/stamped.times)" ] ||
	fail "times stamped by a mapped store after remount: $(stat -c '%Y %Z' /mnt/pm/stamped), not $(cat /tmp/stamped.times)"
getfacl -cp /mnt/pm/copy/a/f7 | cmp -s - /tmp/acl.f7 || fail "ACL after remount: $(getfacl -cp /mnt/pm/copy/a/f7)"
[ "$(btime_of /mnt/pm/ordered)" = "$(cat /tmp/btime.ordered)" ] ||
	fail "btime after remount: $(btime_of /mnt/pm/ordered), not $(cat /tmp/btime.ordered)"
[ "$(lsattr_of /mnt/pm/frozen) $(lsattr_of /mnt/pm/journal)" = "i a" ] ||
	fail "lsattr after remount: $(lsattr -d /mnt/pm/frozen /mnt/pm/journal)"
chattr -i /mnt/pm/frozen && chattr -a /mnt/pm/journal && rm /mnt/pm/frozen /mnt/pm/journal ||
	fail "chattr -i / -a and rm"

step "shutdown ioctl (fstests' godown)"
printf 'before shutdown\n' > /mnt/pm/durable || fail "write before shutdown"
xfs_io -x -c "shutdown -f" /mnt/pm || fail "shutdown ioctl"
cat /mnt/pm/durable > /dev/null 2>&1 && fail "a read after shutdown should fail with EIO"
err=$(touch /mnt/pm/after 2>&1) && fail "a create after shutdown should fail"
echo "$err" | grep -q "Input/output error" || fail "a create after shutdown: $err, not EIO"
cd / && umount /mnt/pm || fail "umount after shutdown"
fsck.zpmfs -n -f /dev/pmem0 || fail "fsck after shutdown"
mount -t zpmfs /dev/pmem0 /mnt/pm || fail "mount after shutdown"
[ "$(cat /mnt/pm/durable)" = "before shutdown" ] && [ ! -e /mnt/pm/after ] || fail "state after shutdown and remount"
echo "shutdown: reads and creates fail with EIO until umount; fsck clean; what came before is there"

step "kill -9 zus under a writer"
( i=0; while :; do echo "record $i" >> /mnt/pm/log || exit 0; echo $i > /tmp/done; i=$((i + 1)); done ) &
W=$!
sleep 2
kill -9 $ZUS
for _ in $(seq 50); do kill -0 $W 2>/dev/null || break; sleep 0.2; done
kill -0 $W 2>/dev/null && fail "writer still running: a call hangs"
stat /mnt/pm >/dev/null 2>&1 && fail "stat after the server died should fail"
echo "writer stopped with an error after $(cat /tmp/done) records"
umount /mnt/pm || umount -l /mnt/pm || fail "umount after server death"
check_dmesg
start_zus
mount -t zpmfs /dev/pmem0 /mnt/pm || fail "mount after restart"
last=$(cat /tmp/done)
grep -q "^record $last\$" /mnt/pm/log || fail "record $last completed but is missing"
echo "all $((last + 1)) completed records present"
cd / && umount /mnt/pm || fail "final umount"
kill $ZUS; wait $ZUS 2>/dev/null
rmmod zuf || fail rmmod
check_dmesg
echo "zuf-zpmfs: OK"
