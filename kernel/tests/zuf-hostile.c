// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-hostile - a hostile zus for zuf.ko, the client that drives it, and a privilege check.
 *
 *   zuf-hostile serve STATS [options]
 *	Register "zpmfs" and answer the kernel, from one ZT per CPU, with malformed replies most
 *	of the time (and correct ones from a tiny namespace the rest, so that the client gets
 *	deeper): results out of range (positive, below -MAX_ERRNO, kernel-internal codes such as
 *	-ERESTARTSYS), lengths past what was asked, device offsets outside the device or not
 *	page aligned, attributes with unknown or foreign inode numbers, bad types, huge sizes,
 *	bad nanoseconds, retyped and reused inodes, garbage all over the operation buffer,
 *	replies shaped for another operation, bad READDIR records and looping cursors, bad
 *	statfs. Now and then a ZT unmaps its window with an operation in service and maps a new
 *	one. A second thread on every channel's file, poked out of ZT_WAIT by a signal every
 *	5 ms, calls ZT_WAIT again each time with a reply (answers to nothing, or to the other
 *	thread's operation), and a stray thread keeps making control calls that must
 *	fail (ZT_WAIT without ZT_INIT, a second ZT_INIT, bad CPUs, PMEM_FD of unknown
 *	superblocks, REGISTER_FS again, a bad ABI version, a bad name, mmap without a channel).
 *	Every reply is counted by kind in STATS, a file of counters mapped shared (so the counts
 *	survive kill -9). Options:
 *	  -s SEED     random seed (default 1)
 *	  -g PCT      percentage of correct replies (default 30)
 *	  -m N        the first N MOUNT requests get bad answers (bad result, -ERESTARTSYS,
 *	              root 0, block size 512, an unterminated message, a root that is a file)
 *	  -w          answer the first MOUNT with the wrong op code (the kernel must ignore it:
 *	              the mount waits until it is killed or the server dies)
 *	  -d N        _exit() from a ZT after N operations, with the operation in service
 *	  -p CPU      also a polling channel served from CPU (as hostile as the ZTs, and with
 *	              wrong call numbers in `answered` before the right one)
 *	While /tmp/zh-hang exists, no ZT answers any more (they sleep): the callers wait until
 *	the server dies. Writes /tmp/zh-ready when it serves.
 *
 *   zuf-hostile client DIR SECONDS [SEED]
 *	stat, open, read, write (also O_APPEND), getdents64, mmap read and write faults
 *	(SIGBUS caught), lookup of random names, readlink, create, mkdir, unlink, rmdir, rename,
 *	link, symlink, xattrs, statfs, SEEK_DATA/SEEK_HOLE, truncate, fallocate, fsync, chmod,
 *	utimes on DIR for SECONDS; counts what every call gave. A clean result is success, EIO
 *	or an ordinary errno (1..133); a bad one is an errno outside that range (a kernel code
 *	leaking out), a write of n > 0 bytes returning 0, a read returning more than asked.
 *	Writes the number of calls done so far to /tmp/zh-progress; stops early when
 *	/tmp/zh-stop exists. Exit 1 if any call was bad.
 *
 *   zuf-hostile stats FILE...     sum and print the counters of serve runs
 *
 *   zuf-hostile priv
 *	As root: open /dev/zuf, then in a child that dropped to uid/gid 65534 (no
 *	capabilities): opening /dev/zuf must fail with EACCES; with /dev/zuf made 0666 for the
 *	test, the open works but REGISTER_FS, MOUNT_WAIT, PMEM_FD and ZT_INIT on it and on the
 *	root-opened fd must fail with EPERM, and mount(2) of zpmfs with EPERM. Exit 0 if so.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <stddef.h>
#include <unistd.h>
#include "zuf_abi.h"

#define MAX_ERRNO	4095
#define MAX_LFS		0x7fffffffffffffffULL
#define DATA_INO	2
#define DATA_SIZE	65536
#define XATTR_SIZE_MAX	65536

/* ---- counters, in a shared file ---- */

enum {
	C_REPLIES,		/* every answer given through ZT_WAIT */
	C_GOOD,			/* correct answers */
	C_HOSTILE,		/* malformed answers (the kinds below) */
	C_BAD_RESULT,		/* result out of range or a kernel-internal code */
	C_ERRNO,		/* a random ordinary -errno (clean error expected) */
	C_GARBAGE,		/* random bytes over the reply (or the whole buffer) */
	C_WRONG_OP,		/* the reply of another operation */
	C_BAD_LEN,		/* out_len past what was asked / prev_len nonsense */
	C_ZERO_WRITE,		/* a WRITE of n > 0 bytes answered 0 bytes */
	C_BAD_BLOCK,		/* GET_BLOCK outside the device or unaligned */
	C_BAD_SEEK,		/* LLSEEK past MAX_LFS_FILESIZE */
	C_BAD_INO,		/* attr.ino 0, unknown, foreign, the directory itself */
	C_BAD_ATTR,		/* bad type, mode bits, size, nsec, nlink, chattr flags */
	C_RETYPE,		/* a known inode with another type; a create reusing an inode */
	C_BAD_DIRENT,		/* READDIR records: reclen, name_len, '/', ino 0, no progress, loop */
	C_BAD_LINK,		/* READLINK: empty, too long, NUL inside */
	C_BAD_STATFS,
	C_SLOW,			/* answered after a delay */
	C_DOUBLE,		/* a second ZT_WAIT on the channel (answer to nothing or stolen) */
	C_STRAY,		/* stray control calls that had to fail */
	C_STRAY_UNEXPECTED,	/* ... and did not fail as they should */
	C_BAD_MOUNT,		/* bad MOUNT answers */
	C_WRONG_MOUNT_OP,	/* MOUNT answered with the wrong op code */
	C_BAD_UMOUNT,		/* UMOUNT answered with a bad result */
	C_HUNG,			/* operations never answered (/tmp/zh-hang) */
	C_DIED,			/* _exit() with an operation in service */
	C_SIGBUS,		/* the server faulted in its window (read-only page, window gone) */
	C_REMAP,		/* window unmapped and mapped again, an operation in service */
	C_POLLED,		/* answers of the polling channel (-p) */
	C_POLL_WRONG,		/* ... with a wrong call number stored first */
	C_POLL_SLEEP,		/* the poller slept in ZT_WAIT */
	C_NR
};

static const char *const cname[C_NR] = {
	"replies", "good", "hostile", "bad_result", "random_errno", "garbage", "wrong_op",
	"bad_len", "zero_write", "bad_block", "bad_seek", "bad_ino", "bad_attr", "retype",
	"bad_dirent", "bad_readlink", "bad_statfs", "slow", "double_wait", "stray_calls",
	"stray_unexpected", "bad_mount", "wrong_mount_op", "bad_umount", "hung", "died",
	"server_fault", "window_remap", "polled", "poll_wrong_number", "poll_sleeps",
};

static volatile uint64_t *cnt;

static void count(int c)
{
	__atomic_fetch_add(&cnt[c], 1, __ATOMIC_RELAXED);
}

static void uncount(int c)
{
	__atomic_fetch_sub(&cnt[c], 1, __ATOMIC_RELAXED);
}

static void die(const char *what)
{
	fprintf(stderr, "zuf-hostile: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* xorshift64*, one state per thread */
static __thread uint64_t rs;
static __thread int whole_garbage;	/* garbage over the whole shared buffer */
/*
 * How much of the buffer that garbage covers: all of it, but for the polling channel, whose
 * handshake words it leaves alone. A poller that scribbled over `posted` would lose the
 * kernel's call and never answer it: a server that stops answering, which round 3 tests on
 * purpose (the caller waits, killable, until the server dies).
 */
static __thread size_t garbage_len = ZUF_OP_BUF_SIZE;

static uint64_t rnd(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return rs * 2685821657736338717ULL;
}

static unsigned int rn(unsigned int n)
{
	return rnd() % n;
}

static void rfill(void *p, size_t len)
{
	unsigned char *c = p;

	while (len--)
		*c++ = rnd() >> 32;
}

/* ---- the server ---- */

static uint64_t seed = 1, dev_size = 1 << 30, die_after;
static int poll_cpu = -1;
static unsigned int good_pct = 30, bad_mounts, wrong_mount_op;
static uint64_t nr_ops;

/* the namespace: root 1 {f 2, d 3, l 4 -> f} and what the client creates */
#define MAX_NODES	2048
struct node {
	uint64_t dir, ino;
	uint32_t mode;
	char name[ZUF_NAME_MAX];
};
static struct node nodes[MAX_NODES];
static unsigned int nr_nodes;
static uint64_t next_ino = 100;
static pthread_mutex_t ns_lock = PTHREAD_MUTEX_INITIALIZER;

static void ns_add(uint64_t dir, const char *name, uint64_t ino, uint32_t mode)
{
	struct node *n = &nodes[nr_nodes++ % MAX_NODES];

	n->dir = dir;
	n->ino = ino;
	n->mode = mode;
	snprintf(n->name, sizeof(n->name), "%s", name);
}

/* the mode of a known inode, 0 if unknown */
static uint32_t ns_mode(uint64_t ino)
{
	unsigned int i;

	for (i = 0; i < MAX_NODES; i++)
		if (nodes[i].ino == ino)
			return nodes[i].mode;
	return ino == 1 ? S_IFDIR | 0755 : 0;
}

static struct node *ns_find(uint64_t dir, const char *name, unsigned int len)
{
	unsigned int i;

	for (i = 0; i < MAX_NODES; i++)
		if (nodes[i].ino && nodes[i].dir == dir && strlen(nodes[i].name) == len &&
		    !memcmp(nodes[i].name, name, len))
			return &nodes[i];
	return NULL;
}

static void good_attr(struct zuf_attr *a, uint64_t ino, uint32_t mode)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = mode;
	a->nlink = S_ISDIR(mode) ? 2 : 1;
	a->size = ino == DATA_INO ? DATA_SIZE : S_ISLNK(mode) ? 1 : 0;
	a->blocks = a->size / 512;
	a->blksize = 4096;
	a->mtime.sec = a->ctime.sec = a->atime.sec = 1700000000;
}

/* A correct answer to @op (given what this server knows). */
static int answer_good(struct zuf_op_buf *op, char *win)
{
	uint32_t mode = 0;
	struct node *n;
	int err = 0;
	/* not across window stores: a SIGBUS there jumps out of this function */
	int locked = op->op != ZUF_OP_READLINK && op->op != ZUF_OP_READDIR &&
		     op->op != ZUF_OP_READ;

	if (locked)
		pthread_mutex_lock(&ns_lock);
	switch (op->op) {
	case ZUF_OP_LOOKUP:
		n = ns_find(op->ino, op->name, op->name_len);
		if (n)
			good_attr(&op->attr, n->ino, n->mode);
		else
			err = -ENOENT;
		break;
	case ZUF_OP_GETATTR:
	case ZUF_OP_SETATTR:
		mode = ns_mode(op->ino);
		if (mode)
			good_attr(&op->attr, op->ino, mode);
		else
			err = -ENOENT;
		break;
	case ZUF_OP_CREATE:
		n = ns_find(op->ino, op->name, op->name_len);
		if (n && !(op->flags & ZUF_F_EXCL)) {
			good_attr(&op->attr, n->ino, n->mode);
			op->out_len = 0;	/* found, not made */
			break;
		}
		op->out_len = 1;	/* EEXIST below, or made as by MKNOD */
		/* fall through */
	case ZUF_OP_MKNOD:
	case ZUF_OP_MKDIR:
	case ZUF_OP_SYMLINK: {
		char name[ZUF_NAME_MAX];

		if (ns_find(op->ino, op->name, op->name_len)) {
			err = -EEXIST;
			break;
		}
		memcpy(name, op->name, op->name_len);
		name[op->name_len] = '\0';
		mode = op->op == ZUF_OP_MKDIR ? S_IFDIR | (op->mode & 07777) :
		       op->op == ZUF_OP_SYMLINK ? S_IFLNK | 0777 : op->mode;
		ns_add(op->ino, name, next_ino, mode);
		good_attr(&op->attr, next_ino++, mode);
		break;
	}
	case ZUF_OP_READLINK:
		win[op->window_off] = 'f';
		op->out_len = 1;
		break;
	case ZUF_OP_LINK:
		mode = ns_mode(op->ino);
		good_attr(&op->attr, op->ino, mode ? mode : S_IFREG | 0644);
		op->attr.nlink = 2;
		break;
	case ZUF_OP_UNLINK:
	case ZUF_OP_RMDIR:
		n = ns_find(op->ino, op->name, op->name_len);
		if (n && n->ino > 4)
			n->ino = 0;
		else if (!n)
			err = -ENOENT;
		break;
	case ZUF_OP_READDIR: {
		static const char *const names[] = { ".", "..", "f", "d", "l" };
		static const uint64_t inos[] = { 1, 1, 2, 3, 4 };
		static const uint8_t types[] = { 4, 4, 8, 4, 10 };
		unsigned int i, pos = 0, max = op->ino == 1 ? 5 : 2;

		for (i = op->offset; i < max && pos + 32 <= op->len; i++) {
			struct zuf_dirent *de = (void *)(win + op->window_off + pos);

			de->ino = op->ino == 1 ? inos[i] : op->ino;
			de->next_offset = i + 1;
			de->name_len = strlen(names[i]);
			de->type = types[i];
			de->reclen = 32;
			memcpy(de + 1, names[i], de->name_len);
			pos += 32;
		}
		op->out_len = pos;
		break;
	}
	case ZUF_OP_READ:
		if (op->offset < DATA_SIZE && op->ino == DATA_INO) {
			op->out_len = DATA_SIZE - op->offset < op->len ? DATA_SIZE - op->offset :
				      op->len;
			memset(win + op->window_off, 'z', op->out_len < 8192 ? op->out_len : 8192);
		}
		break;
	case ZUF_OP_WRITE:
		op->out_len = op->len;
		op->out_offset = (op->flags & ZUF_F_APPEND) ? DATA_SIZE : op->offset;
		break;
	case ZUF_OP_LLSEEK:
		if (op->offset >= DATA_SIZE)
			err = -ENXIO;
		else
			op->out_offset = op->mode == SEEK_DATA ? op->offset : DATA_SIZE;
		break;
	case ZUF_OP_STATFS:
		op->statfs.blocks = 262144;
		op->statfs.bfree = op->statfs.bavail = 200000;
		op->statfs.files = op->statfs.ffree = 1000;
		op->statfs.bsize = 4096;
		op->statfs.namelen = 255;
		break;
	case ZUF_OP_GETXATTR:
	case ZUF_OP_REMOVEXATTR:
		err = -ENODATA;
		break;
	case ZUF_OP_GET_BLOCK:
		op->out_offset = (65536 + (op->offset & ~4095ULL)) % (1 << 20);
		break;
	default:	/* FSYNC, FALLOCATE, SETXATTR, LISTXATTR (empty), RENAME, EVICT */
		break;
	}
	if (locked)
		pthread_mutex_unlock(&ns_lock);
	count(C_GOOD);
	return err;
}

/* not 0, not a -errno a user may see: positive, below -MAX_ERRNO, kernel-internal codes */
static int pick_bad_result(void)
{
	static const int bad[] = { 1, 42, 4096, 0x7fffffff, -4096, -5000, -0x7fffffff - 1,
				   -512, -513, -514, -516, -517, -518, -521, -524, -529 };

	return bad[rn(sizeof(bad) / sizeof(bad[0]))];
}

static int pick_errno(void)
{
	static const int e[] = { -ENOSPC, -EACCES, -EPERM, -ENOENT, -EEXIST, -EINVAL, -EROFS,
				 -ENOTDIR, -EISDIR, -ENOTEMPTY, -EFBIG, -ENAMETOOLONG, -EIO };

	return e[rn(sizeof(e) / sizeof(e[0]))];
}

static int bad_result(void)
{
	count(C_BAD_RESULT);
	return pick_bad_result();
}

static int random_errno(void)
{
	count(C_ERRNO);
	return pick_errno();
}

/* A malformed attribute for @op (whatever op it is). */
static void bad_attr(struct zuf_op_buf *op)
{
	uint32_t known = ns_mode(op->ino);

	good_attr(&op->attr, op->ino ? op->ino : 2, known ? known : S_IFREG | 0644);
	switch (rn(14)) {
	case 0:
		op->attr.ino = 0;
		count(C_BAD_INO);
		break;
	case 1:
		op->attr.ino = 0xdeadbeef00ULL + rn(1000);	/* unknown cookie */
		count(C_BAD_INO);
		break;
	case 2:
		op->attr.ino = op->ino;		/* the directory itself (lookup, create) */
		count(C_BAD_INO);
		break;
	case 3:
		op->attr.ino = 1 + rn(4);	/* a known inode, maybe another type */
		op->attr.mode = rn(2) ? S_IFDIR | 0755 : S_IFREG | 0644;
		count(C_RETYPE);
		break;
	case 4:
		op->attr.mode = rn(2) ? 0644 : 0170644;	/* no type / type 0170000 */
		count(C_BAD_ATTR);
		break;
	case 5:
		op->attr.mode |= 1U << (16 + rn(16));	/* bits beyond the type */
		count(C_BAD_ATTR);
		break;
	case 6:
		op->attr.size = MAX_LFS + 1 + rn(1000);
		count(C_BAD_ATTR);
		break;
	case 7:
		op->attr.mtime.nsec = 1000000000 + rn(1000000);
		count(C_BAD_ATTR);
		break;
	case 8:
		op->attr.mode = (op->attr.mode & 07777) |
				(S_ISDIR(op->attr.mode) ? S_IFREG : S_IFDIR);	/* retyped */
		count(C_RETYPE);
		break;
	case 9:
		op->attr.nlink = rn(2) ? 0 : 0xffffffff;
		count(C_BAD_ATTR);
		break;
	case 10:
		op->attr.ino = ~0ULL - rn(4);
		count(C_BAD_INO);
		break;
	case 11:
		op->attr.flags = ZUF_IFLAGS | 1U << (17 + rn(15));	/* chattr flags it cannot keep */
		count(C_BAD_ATTR);
		break;
	case 12:
		op->attr.btime.nsec = 1000000000 + rn(1000000);
		count(C_BAD_ATTR);
		break;
	default:
		op->attr.mode = rn(2) ? S_IFLNK | 0777 : S_IFIFO | 0644;
		count(C_RETYPE);
		break;
	}
}

static void bad_dirents(struct zuf_op_buf *op, char *win)
{
	struct zuf_dirent *de = (void *)(win + op->window_off);

	count(C_BAD_DIRENT);
	memset(de, 0, 64);
	de->ino = 2;
	de->next_offset = op->offset + 1;
	de->reclen = 32;
	de->name_len = 1;
	((char *)(de + 1))[0] = 'x';
	op->out_len = 32;
	switch (rn(9)) {
	case 0:
		rfill(de, 256);
		op->out_len = 256;
		break;
	case 1:
		de->reclen = 0;
		break;
	case 2:
		de->reclen = 31;
		break;
	case 3:
		de->name_len = 200;
		break;
	case 4:
		((char *)(de + 1))[0] = '/';
		break;
	case 5:
		de->ino = 0;
		break;
	case 6:
		de->next_offset = op->offset;	/* no progress */
		break;
	case 7:
		de->next_offset = op->offset ^ 1;	/* a cursor looping between two positions */
		break;
	default:
		op->out_len = 4096 + rn(100000);	/* more than the page */
		break;
	}
}

/* A malformed answer to @op. */
static int answer_hostile(struct zuf_op_buf *op, char *win)
{
	unsigned int k = rn(10);

	count(C_HOSTILE);
	if (k == 0)
		return bad_result();
	if (k == 1)
		return random_errno();
	if (k == 2) {
		count(C_GARBAGE);
		if (rn(4) == 0) {
			whole_garbage = 1;	/* all of the shared buffer */
		} else {
			rfill(&op->result, sizeof(*op) - offsetof(struct zuf_op_buf, result));
			if (rn(2))
				return (int)rnd();
		}
		return 0;
	}
	if (k == 3) {
		/* the reply of another operation: as if it were op X */
		uint32_t real = op->op;
		int err;

		count(C_WRONG_OP);
		op->op = 1 + rn(ZUF_OP_MAX - 1);
		if (op->op == ZUF_OP_READ || op->op == ZUF_OP_READDIR || op->op == ZUF_OP_READLINK)
			op->op = ZUF_OP_GETATTR;	/* those write the window: not for a WRITE */
		err = answer_good(op, win);
		uncount(C_GOOD);
		op->op = real;
		return err;
	}
	if (k == 4) {
		count(C_BAD_LEN);
		switch (rn(4)) {
		case 0:
			op->out_len = op->len + 1 + rn(8192);
			break;
		case 1:
			op->out_len = ~0ULL - rn(10);
			break;
		case 2:
			op->out_len = 1ULL << (20 + rn(40));
			break;
		default:
			op->out_len = XATTR_SIZE_MAX + 1;
			break;
		}
		return 0;
	}
	if (k == 5) {
		count(C_SLOW);
		usleep(1000 + rn(20000));
		if (rn(2))
			return bad_result();
		uncount(C_HOSTILE);	/* late, but correct */
		return answer_good(op, win);
	}
	/* op-specific */
	switch (op->op) {
	case ZUF_OP_LOOKUP:
	case ZUF_OP_GETATTR:
	case ZUF_OP_SETATTR:
	case ZUF_OP_LINK:
		bad_attr(op);
		return 0;
	case ZUF_OP_CREATE:
		/* "made" with a count past 1, or "made" something that is not a regular file */
		good_attr(&op->attr, op->ino + 100 + rn(100), rn(2) ? S_IFREG | 0644 : S_IFDIR | 0755);
		op->out_len = S_ISDIR(op->attr.mode) ? 1 : 2 + rn(100);
		count(C_BAD_ATTR);
		return 0;
	case ZUF_OP_RENAME:
		/* "replaced" one of the rename's own directories, or malformed attributes */
		if (rn(2)) {
			good_attr(&op->attr, rn(2) ? op->ino : op->ino2, S_IFDIR | 0755);
			count(C_BAD_INO);
		} else {
			bad_attr(op);
		}
		return 0;
	case ZUF_OP_MKNOD:
	case ZUF_OP_MKDIR:
	case ZUF_OP_SYMLINK:
		if (rn(2)) {
			/* a create returning an inode the kernel already has */
			good_attr(&op->attr, 1 + rn(4), op->op == ZUF_OP_MKDIR ? S_IFDIR | 0755 :
				  op->op == ZUF_OP_SYMLINK ? S_IFLNK | 0777 : op->mode);
			count(C_RETYPE);
		} else {
			bad_attr(op);
		}
		return 0;
	case ZUF_OP_READ:
		op->out_len = op->len + 1 + rn(3) * 4096;
		count(C_BAD_LEN);
		return 0;
	case ZUF_OP_WRITE:
		switch (rn(4)) {
		case 0:
			op->out_len = 0;	/* wrote nothing, no error */
			count(C_ZERO_WRITE);
			break;
		case 1:
			op->out_len = op->len;
			op->out_offset = ~0ULL - rn(1000);	/* append offset overflow */
			count(C_BAD_LEN);
			break;
		case 2:
			op->out_len = op->len;
			bad_attr(op);
			break;
		default:
			op->out_len = op->len * 2 + 1;
			count(C_BAD_LEN);
			break;
		}
		return 0;
	case ZUF_OP_READDIR:
		bad_dirents(op, win);
		return 0;
	case ZUF_OP_READLINK:
		count(C_BAD_LINK);
		switch (rn(3)) {
		case 0:
			op->out_len = 0;
			break;
		case 1:
			op->out_len = 4096 + rn(3);
			break;
		default:
			memcpy(win + op->window_off, "a\0b", 3);
			op->out_len = 3;
			break;
		}
		return 0;
	case ZUF_OP_GET_BLOCK: {
		static const uint64_t off[] = { 1, 4095, 123456 };

		count(C_BAD_BLOCK);
		switch (rn(5)) {
		case 0:
			op->out_offset = dev_size;
			break;
		case 1:
			op->out_offset = dev_size + 4096 * (1 + rn(1000));
			break;
		case 2:
			op->out_offset = off[rn(3)];	/* unaligned */
			break;
		case 3:
			op->out_offset = ~0ULL & ~4095ULL;
			break;
		default:
			op->out_offset = 1ULL << (31 + rn(32));
			break;
		}
		return 0;
	}
	case ZUF_OP_LLSEEK:
		count(C_BAD_SEEK);
		op->out_offset = MAX_LFS + 1 + rn(1000);
		return 0;
	case ZUF_OP_STATFS:
		count(C_BAD_STATFS);
		answer_good(op, win);
		uncount(C_GOOD);
		switch (rn(4)) {
		case 0:
			op->statfs.bfree = op->statfs.blocks + 1;
			break;
		case 1:
			op->statfs.bsize = 0;
			break;
		case 2:
			op->statfs.bsize = 3000;
			break;
		default:
			op->statfs.ffree = op->statfs.files + 1;
			break;
		}
		return 0;
	case ZUF_OP_GETXATTR:
	case ZUF_OP_LISTXATTR:
		count(C_BAD_LEN);
		op->out_len = op->len ? op->len + 1 : XATTR_SIZE_MAX + 1 + rn(10);
		return 0;
	default:
		return bad_result();
	}
}

struct zt {
	int fd;
	unsigned int cpu;
	struct zuf_op_buf *op;
	char *win;
};

static int serve_op(struct zt *z)
{
	struct zuf_op_buf *op = z->op, local;
	int ret;
	uint64_t n = __atomic_add_fetch(&nr_ops, 1, __ATOMIC_RELAXED);

	if (exists("/tmp/zh-hang")) {
		count(C_HUNG);
		for (;;)
			pause();
	}
	if (die_after && n >= die_after) {
		count(C_DIED);
		_exit(9);	/* with the operation in service and its pages in the window */
	}
	/*
	 * Work on a snapshot: the other thread of the channel may be scribbling over the
	 * shared buffer (garbage replies), and this server must not crash on its own garbage
	 * (a name_len of 4 billion, a window_off far outside the window).
	 */
	local = *op;
	if (local.name_len >= ZUF_NAME_MAX)
		local.name_len = ZUF_NAME_MAX - 1;
	if (local.window_off >= 4096)
		local.window_off = 0;
	if (local.len > ZUF_WINDOW_SIZE - 4096)
		local.len = ZUF_WINDOW_SIZE - 4096;
	local.out_len = 0;
	local.out_offset = 0;
	memset(&local.attr, 0, sizeof(local.attr));
	whole_garbage = 0;
	if (local.op == ZUF_OP_EVICT || rn(100) < good_pct)
		ret = answer_good(&local, z->win);
	else
		ret = answer_hostile(&local, z->win);
	if (whole_garbage)
		rfill(op, garbage_len);
	else
		memcpy(&op->result, &local.result,
		       sizeof(local) - offsetof(struct zuf_op_buf, result));
	return ret;
}

static __thread sigjmp_buf bus_jmp;
static __thread volatile int bus_armed;

/* A store into a window page mapped read-only for this operation (or a stale one), or an
 * access to a window the other thread of the channel has just unmapped. */
static void on_server_sigbus(int sig)
{
	(void)sig;
	if (!bus_armed)
		_exit(7);
	siglongjmp(bus_jmp, 1);
}

static void on_poke(int sig)
{
	(void)sig;
}

/* serve_op, surviving a SIGBUS from the window: then the answer is -EIO. */
static int serve_op_safe(struct zt *z)
{
	int ret;

	if (sigsetjmp(bus_jmp, 1)) {
		bus_armed = 0;
		count(C_SIGBUS);
		return -EIO;
	}
	bus_armed = 1;
	ret = serve_op(z);
	bus_armed = 0;
	return ret;
}

static uint32_t prev_len(uint64_t out_len)
{
	count(C_REPLIES);
	return rn(8) ? (uint32_t)out_len : (uint32_t)rnd();	/* nonsense lengths too */
}

/*
 * A second waiter on the channel's file, poked out of ZT_WAIT by SIGUSR1 every few ms: each
 * return is followed by another ZT_WAIT carrying a reply, mostly to nothing (no operation
 * in service), sometimes to the first ZT's operation (stolen); operations it takes itself
 * it serves like the first.
 */
static void *double_thread(void *arg)
{
	struct zt *z = arg;
	struct zuf_zt_wait w = { .prev_result = -EIO };

	rs = seed * 7919 + z->cpu + 1000;
	for (;;) {
		if (ioctl(z->fd, ZUF_IOC_ZT_WAIT, &w) == 0) {
			w.prev_result = serve_op_safe(z);
			w.prev_len = prev_len(z->op->out_len);
			continue;
		}
		if (errno != EINTR)
			return NULL;	/* EIO: the channel is dead */
		count(C_DOUBLE);
		w.prev_result = rn(2) ? pick_bad_result() : rn(2) ? 0 : pick_errno();
		w.prev_len = rnd();
	}
	return NULL;
}

static void *poke_thread(void *arg)
{
	pthread_t *t = arg;

	for (;;) {
		usleep(5000);
		pthread_kill(*t, SIGUSR1);
	}
	return NULL;
}

/* Open /dev/zuf as channel @init of @z and map its operation buffer and window. */
static void open_channel(struct zt *z, struct zuf_zt_init *init)
{
	z->fd = open("/dev/zuf", O_RDWR | O_CLOEXEC);
	if (z->fd < 0 || ioctl(z->fd, ZUF_IOC_ZT_INIT, init))
		die("ZT_INIT");
	z->op = mmap(NULL, ZUF_OP_BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, z->fd, 0);
	z->win = mmap(NULL, ZUF_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, z->fd,
		      ZUF_WINDOW_OFFSET);
	if (z->op == MAP_FAILED || z->win == MAP_FAILED)
		die("mmap channel");
}

/* Drop @z's window, perhaps with an operation in service, and map a new one. */
static void remap_window(struct zt *z)
{
	count(C_REMAP);
	munmap(z->win, ZUF_WINDOW_SIZE);
	z->win = mmap(NULL, ZUF_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, z->fd,
		      ZUF_WINDOW_OFFSET);
	if (z->win == MAP_FAILED)
		die("mmap window again");
}

static void *zt_thread(void *arg)
{
	struct zt *z = arg;
	struct zuf_zt_init init = { .cpu = z->cpu };
	struct zuf_zt_wait w = { 0 };
	pthread_t t, *dt = malloc(sizeof(*dt));

	rs = seed * 104729 + z->cpu + 1;
	open_channel(z, &init);
	if (!dt || pthread_create(dt, NULL, double_thread, z) ||
	    pthread_create(&t, NULL, poke_thread, dt))
		die("pthread_create");
	for (;;) {
		if (ioctl(z->fd, ZUF_IOC_ZT_WAIT, &w)) {
			if (errno == EINTR)
				continue;
			die("ZT_WAIT");
		}
		w.prev_result = serve_op_safe(z);
		w.prev_len = prev_len(z->op->out_len);
		if (rn(200) == 0)
			remap_window(z);
	}
	return NULL;
}

/*
 * The polling channel (-p CPU), as hostile as the ZTs: it answers with the same mix of bad
 * replies, sometimes stores a wrong call number in `answered` before the right one (the
 * caller must keep waiting), sometimes sleeps in ZT_WAIT, now and then remaps its window.
 * A second polling channel must be refused (EBUSY).
 */
static void *poll_thread(void *arg)
{
	struct zt *z = arg;
	struct zuf_zt_init init = { .cpu = z->cpu, .flags = ZUF_ZT_POLL };
	struct zuf_poll_ctl *ctl;
	uint64_t answered = 0;
	int fd2;

	rs = seed * 15485863 + 1;
	garbage_len = ZUF_POLL_CTL_OFF;
	open_channel(z, &init);
	ctl = (struct zuf_poll_ctl *)((char *)z->op + ZUF_POLL_CTL_OFF);
	fd2 = open("/dev/zuf", O_RDWR | O_CLOEXEC);
	if (fd2 < 0 || ioctl(fd2, ZUF_IOC_ZT_INIT, &init) == 0 || errno != EBUSY)
		count(C_STRAY_UNEXPECTED);
	else
		count(C_STRAY);
	close(fd2);
	for (;;) {
		uint64_t posted = __atomic_load_n(&ctl->posted, __ATOMIC_ACQUIRE);
		int ret;

		if (posted == answered) {
			if (rn(20000) == 0) {
				struct zuf_zt_wait w = { 0 };

				count(C_POLL_SLEEP);
				if (ioctl(z->fd, ZUF_IOC_ZT_WAIT, &w) && errno != EINTR)
					die("poll ZT_WAIT");
			}
			__builtin_ia32_pause();
			continue;
		}
		ret = serve_op_safe(z);
		if (!whole_garbage)
			z->op->result = ret;
		count(C_REPLIES);
		count(C_POLLED);
		if (rn(20) == 0) {
			count(C_POLL_WRONG);
			__atomic_store_n(&ctl->answered, posted + 1 + rn(5), __ATOMIC_RELEASE);
			usleep(rn(300));
		}
		__atomic_store_n(&ctl->answered, posted, __ATOMIC_RELEASE);
		answered = posted;
		if (rn(300) == 0)
			remap_window(z);
	}
	return NULL;
}

/* Control calls that must fail; counts the ones that did not. */
static void stray_expect(long ret, int want, const char *what)
{
	count(C_STRAY);
	if (ret == 0 || errno != want) {
		count(C_STRAY_UNEXPECTED);
		fprintf(stderr, "zuf-hostile: stray %s: %ld errno %d, wanted errno %d\n", what,
			ret, ret ? errno : 0, want);
	}
}

static void *stray_thread(void *arg)
{
	(void)arg;
	rs = seed * 31 + 5;
	for (;;) {
		struct zuf_zt_init init = { .cpu = 0 };
		struct zuf_zt_wait w = { .prev_result = 0 };
		struct zuf_pmem_fd pfd = { .sb_id = 1000 + rn(1000) };
		struct zuf_register_fs reg = { .abi_version = ZUF_ABI_VERSION };
		int fd = open("/dev/zuf", O_RDWR | O_CLOEXEC);
		void *p;

		if (fd < 0)
			die("open /dev/zuf");
		stray_expect(ioctl(fd, ZUF_IOC_ZT_WAIT, &w), EINVAL, "ZT_WAIT without ZT_INIT");
		p = mmap(NULL, ZUF_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			 ZUF_WINDOW_OFFSET);
		stray_expect(p == MAP_FAILED ? -1 : 0, EINVAL, "mmap without a channel");
		stray_expect(ioctl(fd, ZUF_IOC_ZT_INIT, &init), EBUSY, "second ZT_INIT of cpu 0");
		init.cpu = 100000 + rn(1000);
		stray_expect(ioctl(fd, ZUF_IOC_ZT_INIT, &init), EINVAL, "ZT_INIT of a bad cpu");
		init.cpu = 0;
		init.flags = (1 + rn(100)) << 1;	/* any flag but ZUF_ZT_POLL */
		stray_expect(ioctl(fd, ZUF_IOC_ZT_INIT, &init), EINVAL, "ZT_INIT with unknown flags");
		stray_expect(ioctl(fd, ZUF_IOC_PMEM_FD, &pfd), ENOENT, "PMEM_FD of no superblock");
		strcpy(reg.fs_name, "zpmfs");
		stray_expect(ioctl(fd, ZUF_IOC_REGISTER_FS, &reg), EBUSY, "REGISTER_FS again");
		strcpy(reg.fs_name, "bad/name");
		stray_expect(ioctl(fd, ZUF_IOC_REGISTER_FS, &reg), EINVAL, "REGISTER_FS bad name");
		reg.abi_version = 999;
		stray_expect(ioctl(fd, ZUF_IOC_REGISTER_FS, &reg), EPROTO, "REGISTER_FS bad ABI");
		stray_expect(ioctl(fd, _IOWR(ZUF_IOC_MAGIC, 77, struct zuf_zt_wait), &w), ENOTTY,
			     "unknown ioctl");
		close(fd);
		usleep(50000);
	}
	return NULL;
}

static void *mount_thread(void *arg)
{
	struct zuf_mount_req *req = calloc(1, sizeof(*req));
	unsigned int nr_mounts = 0;
	int fd = open("/dev/zuf", O_RDWR | O_CLOEXEC);

	(void)arg;
	if (!req || fd < 0)
		die("mount thread");
	rs = seed * 13 + 7;
	req->op = ZUF_M_NONE;
	for (;;) {
		if (ioctl(fd, ZUF_IOC_MOUNT_WAIT, req)) {
			if (errno == EINTR)
				continue;
			die("MOUNT_WAIT");
		}
		fprintf(stderr, "zuf-hostile: mount op %u sb %llu\n", req->op,
			(unsigned long long)req->sb_id);
		req->result = 0;
		req->root_ino = 1;
		req->block_size = 4096;
		memset(req->message, 0, sizeof(req->message));
		if (req->op == ZUF_M_MOUNT) {
			dev_size = req->dev_size;
			if (wrong_mount_op && nr_mounts == 0) {
				count(C_WRONG_MOUNT_OP);
				req->op = ZUF_M_UMOUNT;	/* an answer to what was not asked */
			} else if (nr_mounts < bad_mounts) {
				count(C_BAD_MOUNT);
				switch (nr_mounts % 6) {
				case 0:
					req->result = 17;
					break;
				case 1:
					req->result = -512;	/* -ERESTARTSYS */
					break;
				case 2:
					req->root_ino = 0;
					break;
				case 3:
					req->block_size = 512;
					break;
				case 4:
					req->result = -EINVAL;
					memset(req->message, 'M', sizeof(req->message));
					break;
				default:
					req->root_ino = DATA_INO;	/* a regular file */
					break;
				}
			}
			nr_mounts++;
		} else if (req->op == ZUF_M_UMOUNT && rn(2)) {
			count(C_BAD_UMOUNT);
			req->result = rn(2) ? 99 : -ENOSPC;
		}
	}
	return NULL;
}

/* A channel's thread @fn, pinned to @cpu. */
static void start_channel(void *(*fn)(void *), unsigned int cpu)
{
	struct zt *z = calloc(1, sizeof(*z));
	pthread_attr_t attr;
	cpu_set_t set;
	pthread_t t;

	if (!z)
		die("calloc");
	z->cpu = cpu;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_attr_init(&attr);
	pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	if (pthread_create(&t, &attr, fn, z))
		die("pthread_create");
	pthread_attr_destroy(&attr);
}

static int serve(int argc, char **argv)
{
	struct zuf_register_fs reg = { .abi_version = ZUF_ABI_VERSION };
	struct zuf_numa_map map;
	unsigned int cpu;
	pthread_t t;
	int fd, sfd, opt;

	while ((opt = getopt(argc, argv, "s:g:m:wd:p:")) != -1) {
		switch (opt) {
		case 'p':
			poll_cpu = atoi(optarg);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'g':
			good_pct = atoi(optarg);
			break;
		case 'm':
			bad_mounts = atoi(optarg);
			break;
		case 'w':
			wrong_mount_op = 1;
			break;
		case 'd':
			die_after = strtoull(optarg, NULL, 0);
			break;
		default:
			return 2;
		}
	}
	if (optind != argc - 1)
		return 2;
	sfd = open(argv[optind], O_RDWR | O_CREAT, 0644);
	if (sfd < 0 || ftruncate(sfd, 4096))
		die(argv[optind]);
	cnt = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	if (cnt == MAP_FAILED)
		die("mmap stats");
	rs = seed;
	{
		struct sigaction sa = { .sa_handler = on_server_sigbus };

		sigaction(SIGBUS, &sa, NULL);
		sigaction(SIGSEGV, &sa, NULL);	/* the other ZT's window went away */
		sa.sa_handler = on_poke;	/* no SA_RESTART: ZT_WAIT returns EINTR */
		sigaction(SIGUSR1, &sa, NULL);
	}
	ns_add(1, "f", 2, S_IFREG | 0644);
	ns_add(1, "d", 3, S_IFDIR | 0755);
	ns_add(1, "l", 4, S_IFLNK | 0777);
	fd = open("/dev/zuf", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("open /dev/zuf");
	if (ioctl(fd, ZUF_IOC_NUMA_MAP, &map))
		die("NUMA_MAP");
	strcpy(reg.fs_name, "zpmfs");
	if (ioctl(fd, ZUF_IOC_REGISTER_FS, &reg))
		die("REGISTER_FS");
	if (pthread_create(&t, NULL, mount_thread, NULL))
		die("pthread_create");
	for (cpu = 0; cpu < map.nr_cpus; cpu++)
		start_channel(zt_thread, cpu);
	if (poll_cpu >= 0)
		start_channel(poll_thread, poll_cpu);
	sleep(1);
	if (pthread_create(&t, NULL, stray_thread, NULL))
		die("pthread_create");
	printf("zuf-hostile: serving zpmfs on %u channels, seed %llu, %u%% good replies\n",
	       map.nr_cpus, (unsigned long long)seed, good_pct);
	fflush(stdout);
	close(open("/tmp/zh-ready", O_CREAT | O_WRONLY, 0644));
	for (;;)
		pause();
	return 0;
}

static int stats(int argc, char **argv)
{
	uint64_t sum[C_NR] = { 0 };
	int i, c;

	for (i = 2; i < argc; i++) {
		uint64_t v[C_NR] = { 0 };
		int fd = open(argv[i], O_RDONLY);

		if (fd < 0 || read(fd, v, sizeof(v)) < 0)
			die(argv[i]);
		close(fd);
		for (c = 0; c < C_NR; c++)
			sum[c] += v[c];
	}
	for (c = 0; c < C_NR; c++)
		printf("%s %llu\n", cname[c], (unsigned long long)sum[c]);
	return 0;
}

/* ---- the client ---- */

enum { K_OK, K_EIO, K_ERR, K_SIGBUS, K_BAD, K_NR };

static const char *const opname[] = {
	"stat", "read", "write", "append", "readdir", "mmap-read", "mmap-write", "lookup",
	"readlink", "create", "mkdir", "unlink", "rmdir", "rename", "link", "symlink",
	"getxattr", "listxattr", "setxattr", "statfs", "lseek", "truncate", "fallocate",
	"fsync", "chmod", "utimes",
};
#define NR_CLIENT_OPS	(int)(sizeof(opname) / sizeof(opname[0]))

static uint64_t res[NR_CLIENT_OPS][K_NR];
static uint64_t errnos[4096];
static const char *dir;
static sigjmp_buf fault_jmp;

static void on_fault(int sig)
{
	(void)sig;
	siglongjmp(fault_jmp, 1);
}

static int bad_errno(int e)
{
	return e <= 0 || e > 133;
}

/* Record one call: @ret < 0 is -errno; @bad a wrong success. */
static void note(int opi, int ret, int bad)
{
	int e = ret < 0 ? -ret : 0;

	if (bad || (ret < 0 && bad_errno(e))) {
		res[opi][K_BAD]++;
		fprintf(stderr, "zuf-hostile client: BAD %s: ret %d%s\n", opname[opi], ret,
			bad ? " (wrong success)" : "");
	} else if (ret >= 0) {
		res[opi][K_OK]++;
	} else if (e == EIO) {
		res[opi][K_EIO]++;
	} else {
		res[opi][K_ERR]++;
	}
	if (e > 0 && e < 4096)
		errnos[e]++;
}

static int sysret(long r)
{
	return r < 0 ? -errno : 0;
}

static void path_of(char *buf, size_t len)
{
	static const char *const names[] = { "f", "d", "l", "d/x", "n0", "n1", "n2", "n3",
					     "d/n4", "nonexistent", "f/x" };

	snprintf(buf, len, "%s/%s", dir, names[rn(sizeof(names) / sizeof(names[0]))]);
}

static void client_op(int opi)
{
	char p[512], q[512], buf[16384];
	struct stat st;
	struct statfs sfs;
	int fd, r;
	ssize_t n;

	path_of(p, sizeof(p));
	path_of(q, sizeof(q));
	switch (opi) {
	case 0:
		note(opi, sysret(stat(rn(4) ? p : dir, &st)), 0);
		break;
	case 1:
	case 2:
	case 3:
		fd = open(rn(3) ? p : q, opi == 1 ? O_RDONLY : O_WRONLY | (opi == 3 ? O_APPEND : 0));
		if (fd < 0) {
			note(opi, -errno, 0);
			break;
		}
		if (opi == 1) {
			size_t want = rn(2) ? 4096 : sizeof(buf);

			n = pread(fd, buf, want, rn(3) ? 0 : rn(100000));
			note(opi, n < 0 ? -errno : 0, n > (ssize_t)want);
		} else {
			size_t want = 1 + rn(sizeof(buf));

			memset(buf, 'w', want);
			n = opi == 3 ? write(fd, buf, want) : pwrite(fd, buf, want, rn(100000));
			note(opi, n < 0 ? -errno : 0, n == 0 || n > (ssize_t)want);
		}
		close(fd);
		break;
	case 4:
		fd = open(rn(2) ? dir : p, O_RDONLY | O_DIRECTORY);
		if (fd < 0) {
			note(opi, -errno, 0);
			break;
		}
		for (r = 0; r < 32; r++) {	/* a looping cursor is the server's problem */
			n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
			if (n <= 0)
				break;
		}
		note(opi, n < 0 ? -errno : 0, 0);
		close(fd);
		break;
	case 5:
	case 6: {
		volatile char *m;

		snprintf(q, sizeof(q), "%s/f", dir);
		fd = open(q, O_RDWR);
		if (fd < 0) {
			note(opi, -errno, 0);
			break;
		}
		m = mmap(NULL, DATA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			note(opi, -errno, 0);
			close(fd);
			break;
		}
		if (sigsetjmp(fault_jmp, 1)) {
			res[opi][K_SIGBUS]++;
		} else {
			unsigned int off = rn(DATA_SIZE / 4096) * 4096;

			if (opi == 5)
				(void)m[off];
			else
				m[off] = 'm';
			note(opi, 0, 0);
		}
		munmap((void *)m, DATA_SIZE);
		close(fd);
		break;
	}
	case 7:
		snprintf(q, sizeof(q), "%s/name%u", dir, rn(50));
		note(opi, sysret(lstat(q, &st)), 0);
		break;
	case 8:
		snprintf(q, sizeof(q), "%s/l", dir);
		n = readlink(rn(4) ? q : p, buf, sizeof(buf));
		note(opi, n < 0 ? -errno : 0, n > (ssize_t)sizeof(buf));
		break;
	case 9:
		fd = open(p, O_CREAT | O_WRONLY | (rn(2) ? O_EXCL : 0), 0644);
		note(opi, fd < 0 ? -errno : 0, 0);
		if (fd >= 0)
			close(fd);
		break;
	case 10:
		note(opi, sysret(mkdir(p, 0755)), 0);
		break;
	case 11:
		note(opi, sysret(unlink(p)), 0);
		break;
	case 12:
		note(opi, sysret(rmdir(p)), 0);
		break;
	case 13:
		note(opi, sysret(rename(p, q)), 0);
		break;
	case 14:
		note(opi, sysret(link(p, q)), 0);
		break;
	case 15:
		note(opi, sysret(symlink("f", q)), 0);
		break;
	case 16:
		r = rn(2);	/* the size only, or the value */
		n = getxattr(p, "user.k", r ? buf : NULL, r ? sizeof(buf) : 0);
		note(opi, n < 0 ? -errno : 0, n > (ssize_t)sizeof(buf));
		break;
	case 17:
		n = listxattr(p, buf, rn(2) ? sizeof(buf) : 0);
		note(opi, n < 0 ? -errno : 0, n > (ssize_t)sizeof(buf));
		break;
	case 18:
		note(opi, sysret(setxattr(p, "user.k", "v", 1, 0)), 0);
		break;
	case 19:
		note(opi, sysret(statfs(dir, &sfs)), 0);
		break;
	case 20:
		fd = open(p, O_RDONLY);
		if (fd < 0) {
			note(opi, -errno, 0);
			break;
		}
		note(opi, sysret(lseek(fd, rn(70000), rn(2) ? SEEK_DATA : SEEK_HOLE)), 0);
		close(fd);
		break;
	case 21:
		note(opi, sysret(truncate(p, rn(100000))), 0);
		break;
	case 22:
		fd = open(p, O_WRONLY);
		if (fd < 0) {
			note(opi, -errno, 0);
			break;
		}
		r = posix_fallocate(fd, rn(10000), 1 + rn(10000));
		note(opi, r ? -r : 0, 0);
		close(fd);
		break;
	case 23:
		fd = open(p, O_RDONLY);
		if (fd < 0) {
			note(opi, -errno, 0);
			break;
		}
		note(opi, sysret(fsync(fd)), 0);
		close(fd);
		break;
	case 24:
		note(opi, sysret(chmod(p, 0600 + rn(0100))), 0);
		break;
	default:
		note(opi, sysret(utimes(p, NULL)), 0);
		break;
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int client(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_fault };
	uint64_t calls = 0, tot[K_NR] = { 0 };
	double t0 = now(), end, worst = 0;
	int i, r, e;

	dir = argv[2];
	end = t0 + atof(argv[3]);
	rs = argc > 4 ? strtoull(argv[4], NULL, 0) : 99;
	sigaction(SIGBUS, &sa, NULL);
	while (now() < end && !exists("/tmp/zh-stop")) {
		double t = now();

		client_op(rn(NR_CLIENT_OPS));
		calls++;
		if (now() - t > worst)
			worst = now() - t;
		if (calls % 64 == 0) {
			FILE *f = fopen("/tmp/zh-progress", "w");

			if (f) {
				fprintf(f, "%llu\n", (unsigned long long)calls);
				fclose(f);
			}
		}
	}
	for (i = 0; i < NR_CLIENT_OPS; i++)
		for (r = 0; r < K_NR; r++)
			tot[r] += res[i][r];
	printf("client: %llu calls in %.1f s: ok %llu, EIO %llu, other errno %llu, SIGBUS %llu, "
	       "bad %llu; slowest call %.2f s\n", (unsigned long long)calls, now() - t0,
	       (unsigned long long)tot[K_OK], (unsigned long long)tot[K_EIO],
	       (unsigned long long)tot[K_ERR], (unsigned long long)tot[K_SIGBUS],
	       (unsigned long long)tot[K_BAD], worst);
	printf("client-totals %llu %llu %llu %llu %llu %llu\n", (unsigned long long)calls,
	       (unsigned long long)tot[K_OK], (unsigned long long)tot[K_EIO],
	       (unsigned long long)tot[K_ERR], (unsigned long long)tot[K_SIGBUS],
	       (unsigned long long)tot[K_BAD]);
	printf("client: errnos:");
	for (e = 1; e < 4096; e++)
		if (errnos[e])
			printf(" %s=%llu", strerrorname_np(e) ? strerrorname_np(e) : "?",
			       (unsigned long long)errnos[e]);
	printf("\n");
	return tot[K_BAD] ? 1 : 0;
}

/* ---- privilege ---- */

static int priv_expect(long ret, int want, const char *what)
{
	if (ret == 0 || errno != want) {
		printf("priv: FAIL: %s: %ld errno %d (%s), wanted %s\n", what, ret,
		       ret ? errno : 0, ret ? strerror(errno) : "success", strerror(want));
		return 1;
	}
	printf("priv: %s: %s\n", what, strerror(errno));
	return 0;
}

static int priv_ioctls(int fd, const char *which)
{
	struct zuf_register_fs reg = { .abi_version = ZUF_ABI_VERSION };
	struct zuf_mount_req *req = calloc(1, sizeof(*req));
	struct zuf_pmem_fd pfd = { .sb_id = 1 };
	struct zuf_zt_init init = { .cpu = 0 };
	char what[128];
	int fails = 0;

	strcpy(reg.fs_name, "zpmfs");
	snprintf(what, sizeof(what), "REGISTER_FS on %s", which);
	fails += priv_expect(ioctl(fd, ZUF_IOC_REGISTER_FS, &reg), EPERM, what);
	snprintf(what, sizeof(what), "MOUNT_WAIT on %s", which);
	fails += priv_expect(ioctl(fd, ZUF_IOC_MOUNT_WAIT, req), EPERM, what);
	snprintf(what, sizeof(what), "PMEM_FD on %s", which);
	fails += priv_expect(ioctl(fd, ZUF_IOC_PMEM_FD, &pfd), EPERM, what);
	snprintf(what, sizeof(what), "ZT_INIT on %s", which);
	fails += priv_expect(ioctl(fd, ZUF_IOC_ZT_INIT, &init), EPERM, what);
	free(req);
	return fails;
}

static int priv(void)
{
	int rootfd = open("/dev/zuf", O_RDWR | O_CLOEXEC);
	int status, fails = 0;
	pid_t pid;

	if (rootfd < 0)
		die("open /dev/zuf as root");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			die("drop privileges");
		printf("priv: uid %d euid %d gid %d\n", getuid(), geteuid(), getgid());
		fails += priv_expect(open("/dev/zuf", O_RDWR) < 0 ? -1 : 0, EACCES,
				     "open /dev/zuf (mode 0600) as uid 65534");
		fails += priv_ioctls(rootfd, "root's /dev/zuf fd, as uid 65534");
		fails += priv_expect(mount("/dev/pmem0", "/mnt", "zpmfs", 0, NULL), EPERM,
				     "mount -t zpmfs as uid 65534");
		exit(fails ? 1 : 0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		fails++;
	/* even with the device node open to everyone, the calls need CAP_SYS_ADMIN */
	if (chmod("/dev/zuf", 0666))
		die("chmod /dev/zuf");
	pid = fork();
	if (pid == 0) {
		int fd;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			die("drop privileges");
		fd = open("/dev/zuf", O_RDWR);
		if (fd < 0) {
			printf("priv: FAIL: open of a 0666 /dev/zuf: %s\n", strerror(errno));
			exit(1);
		}
		exit(priv_ioctls(fd, "a 0666 /dev/zuf opened as uid 65534") ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		fails++;
	chmod("/dev/zuf", 0600);
	close(rootfd);
	printf("priv: %s\n", fails ? "FAIL" : "ok");
	return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 3 && !strcmp(argv[1], "serve"))
		return serve(argc - 1, argv + 1);
	if (argc >= 4 && !strcmp(argv[1], "client"))
		return client(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], "stats"))
		return stats(argc, argv);
	if (argc == 2 && !strcmp(argv[1], "priv"))
		return priv();
	fprintf(stderr, "usage: zuf-hostile serve [-s SEED] [-g PCT] [-m N] [-w] [-d N] [-p CPU] STATS |\n"
		"       client DIR SECONDS [SEED] | stats FILE... | priv\n");
	return 2;
}
