// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-ctl-test - a minimal fake zus for testing zuf.ko without the Rust server.
 *
 *   zuf-ctl-test serve         register "zpmfs" and serve a tiny in-memory filesystem until
 *                              killed (create, mkdir, symlink, link, unlink, rmdir, rename,
 *                              truncate, one xattr per inode; regular files up to 16 MiB):
 *                              /      directory, inode 1
 *                              /hello inode 2, read-only text (GET_BLOCK: a hole)
 *                              /data  inode 3, 64 KiB kept in PM at device offset 64 KiB
 *                              (reads and writes copy between the window and the PM mapping
 *                              from ZUF_IOC_PMEM_FD; DAX faults get that block)
 *                              Faults to inject, while a file exists:
 *                                /tmp/zuf-hang        GETATTR of / never answers
 *                                /tmp/zuf-hang-write  WRITE never answers
 *                                /tmp/zuf-hang-mount  MOUNT never answers
 *                                /tmp/zuf-slow-write  WRITE waits 3 s before it reads
 *                                /tmp/zuf-evil-store  WRITE stores into its source pages
 *                                                     (must get SIGBUS; answers -EIO)
 *                                /tmp/zuf-evil        READ claims more bytes than asked,
 *                                                     GET_BLOCK points past the device,
 *                                                     READDIR sends a bad record
 *                              Writes /tmp/zuf-ready when its threads wait for work.
 *   zuf-ctl-test bench FILE N  mean fstat / 4 KiB pread / pwrite latency (informative).
 *   zuf-ctl-test xattr FILE    set, get, list, replace and remove user.color.
 *   zuf-ctl-test touch FILE    load a byte through a shared mapping (exit 3 on SIGBUS).
 *   zuf-ctl-test sendfile FILE copy FILE to stdout with sendfile(2).
 *   zuf-ctl-test mmap FILE     DAX mmap check on /data: MAP_SHARED_VALIDATE|MAP_SYNC, store
 *                              through the mapping and read back with pread, pwrite and read
 *                              back through the mapping, O_DIRECT at an unaligned offset.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sendfile.h>
#include <sys/xattr.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>
#include "zuf_abi.h"

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define ROOT_INO	1
#define HELLO_INO	2
#define DATA_INO	3
#define DATA_SIZE	65536
#define DATA_DEV_OFF	65536
#define XATTR_NAME_LEN	64

static const char hello[] = "hello from the fake zus\n";
static char *pm;		/* the device, from ZUF_IOC_PMEM_FD */
static pthread_mutex_t fs_lock = PTHREAD_MUTEX_INITIALIZER;

#define MAX_INODES	256
#define MAX_DENTS	1024
#define MAX_DATA	(16 << 20)

/* A tiny in-memory namespace; inode i lives in inodes[i - 1]. */
struct fnode {
	int used;
	__u32 mode, nlink, rdev;
	__u64 size;
	char *data;			/* regular files but /data, symlink targets */
	char xname[XATTR_NAME_LEN];	/* one xattr per inode */
	char xval[256];
	__u32 xlen;
	__s64 mtime;
};

struct fdent {
	int used;
	__u64 dir, ino;
	char name[ZUF_NAME_MAX];
};

static struct fnode inodes[MAX_INODES];
static struct fdent fdents[MAX_DENTS];

static void die(const char *what)
{
	fprintf(stderr, "zuf-ctl-test: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int open_zuf(void)
{
	int fd = open("/dev/zuf", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die("open /dev/zuf");
	return fd;
}

static struct fnode *inode_of(__u64 ino)
{
	if (ino < 1 || ino > MAX_INODES || !inodes[ino - 1].used)
		return NULL;
	return &inodes[ino - 1];
}

static __u64 new_inode(__u32 mode)
{
	__u64 i;

	for (i = 0; i < MAX_INODES; i++) {
		if (!inodes[i].used) {
			memset(&inodes[i], 0, sizeof(inodes[i]));
			inodes[i].used = 1;
			inodes[i].mode = mode;
			inodes[i].mtime = 1700000000;
			return i + 1;
		}
	}
	return 0;
}

static struct fdent *find_dent(__u64 dir, const char *name, __u32 len)
{
	int i;

	for (i = 0; i < MAX_DENTS; i++)
		if (fdents[i].used && fdents[i].dir == dir && strlen(fdents[i].name) == len &&
		    !memcmp(fdents[i].name, name, len))
			return &fdents[i];
	return NULL;
}

static int add_dent(__u64 dir, const char *name, __u32 len, __u64 ino)
{
	int i;

	if (!len || len >= ZUF_NAME_MAX)
		return -ENAMETOOLONG;
	for (i = 0; i < MAX_DENTS; i++) {
		if (!fdents[i].used) {
			fdents[i].used = 1;
			fdents[i].dir = dir;
			fdents[i].ino = ino;
			memcpy(fdents[i].name, name, len);
			fdents[i].name[len] = '\0';
			inodes[ino - 1].nlink++;
			if (S_ISDIR(inodes[ino - 1].mode))
				inodes[dir - 1].nlink++;
			return 0;
		}
	}
	return -ENOSPC;
}

static void drop_dent(struct fdent *d)
{
	struct fnode *n = inode_of(d->ino);

	d->used = 0;
	n->nlink--;
	if (S_ISDIR(n->mode)) {
		n->nlink = 0;
		inodes[d->dir - 1].nlink--;
	}
}

static int dir_empty(__u64 dir)
{
	int i;

	for (i = 0; i < MAX_DENTS; i++)
		if (fdents[i].used && fdents[i].dir == dir)
			return 0;
	return 1;
}

static void fs_init(void)
{
	__u64 root = new_inode(S_IFDIR | 0755), h, d;

	inodes[root - 1].nlink = 2;
	h = new_inode(S_IFREG | 0444);
	inodes[h - 1].data = strdup(hello);
	inodes[h - 1].size = sizeof(hello) - 1;
	add_dent(root, "hello", 5, h);
	d = new_inode(S_IFREG | 0666);
	inodes[d - 1].size = DATA_SIZE;
	add_dent(root, "data", 4, d);
}

static int fill_attr(struct zuf_attr *a, __u64 ino)
{
	struct fnode *n = inode_of(ino);

	if (!n)
		return -ENOENT;
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = n->mode;
	a->nlink = n->nlink;
	a->size = S_ISDIR(n->mode) ? 4096 : n->size;
	a->blocks = (a->size + 511) / 512;
	a->blksize = 4096;
	a->rdev = n->rdev;
	a->mtime.sec = a->ctime.sec = a->atime.sec = n->mtime;
	return 0;
}

static __u8 dtype(__u32 mode)
{
	return (mode & S_IFMT) >> 12;
}

/* Cookies: 0 ".", 1 "..", 2 + i for fdents[i]. */
static int do_readdir(struct zuf_op_buf *op, char *win)
{
	char *out = win + op->window_off;
	__u64 pos, used = 0;

	for (pos = op->offset; pos < 2 + MAX_DENTS; pos++) {
		const char *name;
		__u64 ino;
		size_t nl, rec;
		struct zuf_dirent *de = (void *)(out + used);

		if (pos < 2) {
			name = pos ? ".." : ".";
			ino = op->ino;
		} else {
			struct fdent *d = &fdents[pos - 2];

			if (!d->used || d->dir != op->ino)
				continue;
			name = d->name;
			ino = d->ino;
		}
		nl = strlen(name);
		rec = (sizeof(*de) + nl + 7) & ~7UL;
		if (used + rec > op->len)
			break;
		memset(de, 0, rec);
		de->ino = ino;
		de->next_offset = pos + 1;
		de->reclen = rec;
		de->type = dtype(inode_of(ino)->mode);
		de->name_len = nl;
		memcpy(de + 1, name, nl);
		used += rec;
	}
	op->out_len = used;
	return 0;
}

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void hang(const char *what)
{
	fprintf(stderr, "zuf-ctl-test: hanging in %s\n", what);
	for (;;)
		pause();
}

static int do_rw(struct zuf_op_buf *op, char *win, struct fnode *n)
{
	char *w = win + op->window_off;
	__u64 n_bytes, end;

	if (!S_ISREG(n->mode))
		return -EISDIR;
	if (op->op == ZUF_OP_READ) {
		if (op->offset >= n->size)
			return 0;
		n_bytes = n->size - op->offset < op->len ? n->size - op->offset : op->len;
		if (op->ino == DATA_INO) {
			if (!pm)
				return -EIO;
			memcpy(w, pm + DATA_DEV_OFF + op->offset, n_bytes);
		} else if (n->data) {
			memcpy(w, n->data + op->offset, n_bytes);
		} else {
			memset(w, 0, n_bytes);
		}
		op->out_len = n_bytes;
		return 0;
	}
	if (op->flags & ZUF_F_APPEND)
		op->offset = n->size;
	if (op->ino == DATA_INO) {
		if (op->offset >= DATA_SIZE)
			return -EFBIG;
		if (!pm)
			return -EIO;
		n_bytes = DATA_SIZE - op->offset < op->len ? DATA_SIZE - op->offset : op->len;
		memcpy(pm + DATA_DEV_OFF + op->offset, w, n_bytes);
	} else {
		if (op->offset >= MAX_DATA)
			return -EFBIG;
		n_bytes = MAX_DATA - op->offset < op->len ? MAX_DATA - op->offset : op->len;
		if (!n->data && !(n->data = calloc(1, MAX_DATA)))
			return -ENOMEM;
		memcpy(n->data + op->offset, w, n_bytes);
		end = op->offset + n_bytes;
		if (end > n->size)
			n->size = end;
	}
	op->out_len = n_bytes;
	op->out_offset = op->offset;
	return fill_attr(&op->attr, op->ino);
}

static int do_create(struct zuf_op_buf *op, char *win)
{
	__u64 ino;
	int err;

	if (!inode_of(op->ino) || !S_ISDIR(inode_of(op->ino)->mode))
		return -ENOTDIR;
	if (find_dent(op->ino, op->name, op->name_len))
		return -EEXIST;
	ino = new_inode(op->op == ZUF_OP_SYMLINK ? S_IFLNK | 0777 :
			op->op == ZUF_OP_MKDIR ? S_IFDIR | (op->mode & 07777) : op->mode);
	if (!ino)
		return -ENOSPC;
	inodes[ino - 1].rdev = op->rdev;
	if (op->op == ZUF_OP_MKDIR)
		inodes[ino - 1].nlink = 1;	/* "." ; add_dent adds the name */
	if (op->op == ZUF_OP_SYMLINK) {
		inodes[ino - 1].data = strndup(win + op->window_off, op->len);
		inodes[ino - 1].size = op->len;
	}
	err = add_dent(op->ino, op->name, op->name_len, ino);
	if (err) {
		inodes[ino - 1].used = 0;
		return err;
	}
	return fill_attr(&op->attr, ino);
}

static int do_rename(struct zuf_op_buf *op)
{
	struct fdent *from = find_dent(op->ino, op->name, op->name_len);
	struct fdent *to = find_dent(op->ino2, op->name2, op->name2_len);
	__u64 ino, replaced = 0;

	if (!from)
		return -ENOENT;
	if (op->flags & ZUF_F_RENAME_EXCHANGE) {
		if (!to)
			return -ENOENT;
		ino = from->ino;
		from->ino = to->ino;
		to->ino = ino;
		return 0;
	}
	if (to) {
		if (op->flags & ZUF_F_RENAME_NOREPLACE)
			return -EEXIST;
		if (S_ISDIR(inode_of(to->ino)->mode) && !dir_empty(to->ino))
			return -ENOTEMPTY;
		replaced = to->ino;
		drop_dent(to);
	}
	if (!op->name2_len || op->name2_len >= ZUF_NAME_MAX)
		return -ENAMETOOLONG;
	if (S_ISDIR(inode_of(from->ino)->mode)) {
		inodes[from->dir - 1].nlink--;
		inodes[op->ino2 - 1].nlink++;
	}
	from->dir = op->ino2;
	memcpy(from->name, op->name2, op->name2_len);
	from->name[op->name2_len] = '\0';
	/* what lost the name, for a kernel that did not look the target up */
	memset(&op->attr, 0, sizeof(op->attr));
	return replaced ? fill_attr(&op->attr, replaced) : 0;
}

static int do_xattr(struct zuf_op_buf *op, char *win, struct fnode *n)
{
	size_t nl = strlen(n->xname);

	switch (op->op) {
	case ZUF_OP_SETXATTR:
		if (op->len > sizeof(n->xval) || op->name_len >= sizeof(n->xname))
			return -ENOSPC;
		if (nl && (nl != op->name_len || memcmp(n->xname, op->name, nl)))
			return -ENOSPC;
		if ((op->flags & 1) && nl)		/* XATTR_CREATE */
			return -EEXIST;
		if ((op->flags & 2) && !nl)		/* XATTR_REPLACE */
			return -ENODATA;
		memcpy(n->xname, op->name, op->name_len);
		n->xname[op->name_len] = '\0';
		memcpy(n->xval, win + op->window_off, op->len);
		n->xlen = op->len;
		return 0;
	case ZUF_OP_GETXATTR:
		if (!nl || nl != op->name_len || memcmp(n->xname, op->name, nl))
			return -ENODATA;
		op->out_len = n->xlen;
		if (!op->len)
			return 0;
		if (op->len < n->xlen)
			return -ERANGE;
		memcpy(win + op->window_off, n->xval, n->xlen);
		return 0;
	case ZUF_OP_LISTXATTR:
		op->out_len = nl ? nl + 1 : 0;
		if (!op->len || !nl)
			return 0;
		if (op->len < nl + 1)
			return -ERANGE;
		memcpy(win + op->window_off, n->xname, nl + 1);
		return 0;
	default:	/* REMOVEXATTR */
		if (!nl || nl != op->name_len || memcmp(n->xname, op->name, nl))
			return -ENODATA;
		n->xname[0] = '\0';
		return 0;
	}
}

static int do_op_locked(struct zuf_op_buf *op, char *win)
{
	struct fnode *n = inode_of(op->ino);
	struct fdent *d;
	int err;

	switch (op->op) {
	case ZUF_OP_STATFS:
		op->statfs.blocks = 262144;
		op->statfs.bfree = 262000;
		op->statfs.bavail = 262000;
		op->statfs.files = MAX_INODES;
		op->statfs.ffree = MAX_INODES - 3;
		op->statfs.bsize = 4096;
		op->statfs.namelen = 255;
		return 0;
	case ZUF_OP_MKNOD:
	case ZUF_OP_MKDIR:
	case ZUF_OP_SYMLINK:
		return do_create(op, win);
	case ZUF_OP_CREATE: {	/* open(O_CREAT): what the name holds, or a new file */
		struct fdent *d = inode_of(op->ino) ? find_dent(op->ino, op->name, op->name_len) : NULL;

		if (d && (op->flags & ZUF_F_EXCL))
			return -EEXIST;
		op->out_len = !d;
		return d ? fill_attr(&op->attr, d->ino) : do_create(op, win);
	}
	case ZUF_OP_RENAME:
		return do_rename(op);
	}
	if (!n)
		return -ENOENT;
	switch (op->op) {
	case ZUF_OP_LOOKUP:
		d = find_dent(op->ino, op->name, op->name_len);
		return d ? fill_attr(&op->attr, d->ino) : -ENOENT;
	case ZUF_OP_GETATTR:
		return fill_attr(&op->attr, op->ino);
	case ZUF_OP_SETATTR:
		if (op->set.valid & ZUF_SET_MODE)
			n->mode = (n->mode & S_IFMT) | (op->set.mode & 07777);
		if (op->set.valid & ZUF_SET_SIZE) {
			if (op->ino == DATA_INO || op->set.size > MAX_DATA)
				return -EPERM;
			if (op->set.size < n->size && n->data)
				memset(n->data + op->set.size, 0, n->size - op->set.size);
			n->size = op->set.size;
		}
		if (op->set.valid & ZUF_SET_MTIME)
			n->mtime = op->set.mtime.sec;
		return fill_attr(&op->attr, op->ino);
	case ZUF_OP_READLINK:
		if (!S_ISLNK(n->mode))
			return -EINVAL;
		memcpy(win + op->window_off, n->data, n->size);
		op->out_len = n->size;
		return 0;
	case ZUF_OP_LINK:
		if (find_dent(op->ino2, op->name, op->name_len))
			return -EEXIST;
		err = add_dent(op->ino2, op->name, op->name_len, op->ino);
		return err ? err : fill_attr(&op->attr, op->ino);
	case ZUF_OP_UNLINK:
	case ZUF_OP_RMDIR:
		d = find_dent(op->ino, op->name, op->name_len);
		if (!d)
			return -ENOENT;
		if (op->op == ZUF_OP_RMDIR && !dir_empty(d->ino))
			return -ENOTEMPTY;
		drop_dent(d);
		return 0;
	case ZUF_OP_READDIR:
		return S_ISDIR(n->mode) ? do_readdir(op, win) : -ENOTDIR;
	case ZUF_OP_READ:
	case ZUF_OP_WRITE:
		if (op->ino == HELLO_INO && op->op == ZUF_OP_WRITE)
			return -EPERM;
		return do_rw(op, win, n);
	case ZUF_OP_GET_BLOCK:
		if (op->ino == HELLO_INO)
			return -ENODATA;
		if (op->ino != DATA_INO || op->offset >= DATA_SIZE)
			return -EINVAL;
		op->out_offset = DATA_DEV_OFF + (op->offset & ~4095ULL);
		return 0;
	case ZUF_OP_LLSEEK:
		if (op->offset >= n->size)
			return -ENXIO;
		op->out_offset = op->mode == SEEK_DATA ? op->offset : n->size;
		return 0;
	case ZUF_OP_SETXATTR:
	case ZUF_OP_GETXATTR:
	case ZUF_OP_LISTXATTR:
	case ZUF_OP_REMOVEXATTR:
		return do_xattr(op, win, n);
	case ZUF_OP_EVICT:
		if (!n->nlink && op->ino > DATA_INO) {
			free(n->data);
			n->used = 0;
		}
		return 0;
	case ZUF_OP_FSYNC:
	case ZUF_OP_FALLOCATE:
	case ZUF_OP_OPEN:
	case ZUF_OP_RELEASE:
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

static __thread sigjmp_buf store_jmp;

static void on_store_sigbus(int sig)
{
	(void)sig;
	siglongjmp(store_jmp, 1);
}

/* A WRITE's source pages are the application's: a store must fault (SIGBUS). */
static int store_into_source(volatile char *p)
{
	struct sigaction sa = { .sa_handler = on_store_sigbus }, old;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(store_jmp, 1)) {
		sigaction(SIGBUS, &old, NULL);
		fprintf(stderr, "zuf-ctl-test: store into a WRITE's source refused (SIGBUS)\n");
		return -EIO;
	}
	p[0] = 'X';
	sigaction(SIGBUS, &old, NULL);
	/* fine for a bounced WRITE (the channel's copy), a failure for mapped source pages */
	fprintf(stderr, "zuf-ctl-test: a store into a WRITE's window went through\n");
	return -EIO;
}

static int do_op(struct zuf_op_buf *op, char *win)
{
	int err;

	op->out_len = 0;
	if (exists("/tmp/zuf-evil")) {
		switch (op->op) {
		case ZUF_OP_READ:
			op->out_len = op->len + 4096;
			return 0;
		case ZUF_OP_GET_BLOCK:
			op->out_offset = 1ULL << 62;
			return 0;
		case ZUF_OP_READDIR:
			memset(win + op->window_off, 0xff, 64);
			op->out_len = 64;
			return 0;
		}
	}
	if (op->op == ZUF_OP_GETATTR && op->ino == ROOT_INO && exists("/tmp/zuf-hang"))
		hang("GETATTR");
	if (op->op == ZUF_OP_WRITE && exists("/tmp/zuf-hang-write"))
		hang("WRITE");
	if (op->op == ZUF_OP_WRITE && exists("/tmp/zuf-slow-write")) {
		fprintf(stderr, "zuf-ctl-test: slow WRITE\n");
		sleep(3);	/* the writer is killed meanwhile; then touch the window */
		fprintf(stderr, "zuf-ctl-test: slow WRITE reads its window: %02x\n",
			(unsigned char)win[op->window_off]);
	}
	if (op->op == ZUF_OP_WRITE && exists("/tmp/zuf-evil-store"))
		return store_into_source(win + op->window_off);
	pthread_mutex_lock(&fs_lock);
	err = do_op_locked(op, win);
	pthread_mutex_unlock(&fs_lock);
	return err;
}

static void *zt_thread(void *arg)
{
	unsigned int cpu = (unsigned long)arg;
	struct zuf_zt_init init = { .cpu = cpu };
	struct zuf_zt_wait w = { 0 };
	struct zuf_op_buf *op;
	char *win;
	int fd = open_zuf();

	if (ioctl(fd, ZUF_IOC_ZT_INIT, &init))
		die("ZT_INIT");
	op = mmap(NULL, ZUF_OP_BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	win = mmap(NULL, ZUF_WINDOW_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   ZUF_WINDOW_OFFSET);
	if (op == MAP_FAILED || win == MAP_FAILED)
		die("mmap channel");
	for (;;) {
		if (ioctl(fd, ZUF_IOC_ZT_WAIT, &w)) {
			if (errno == EINTR)
				continue;
			die("ZT_WAIT");
		}
		w.prev_result = do_op(op, win);
		op->result = w.prev_result;
		w.prev_len = op->out_len;
	}
	return NULL;
}

static sigjmp_buf revoke_jmp;

static void on_revoke_sigbus(int sig)
{
	(void)sig;
	siglongjmp(revoke_jmp, 1);
}

/* After umount the PM mapping must be gone: a load gets SIGBUS. */
static void *revoke_thread(void *arg)
{
	volatile char *p = arg;
	struct sigaction sa = { .sa_handler = on_revoke_sigbus };
	volatile int i;

	sigaction(SIGBUS, &sa, NULL);
	for (i = 0; i < 50; i++) {
		usleep(100000);
		if (sigsetjmp(revoke_jmp, 1)) {
			fprintf(stderr, "zuf-ctl-test: PM mapping revoked after umount\n");
			return NULL;
		}
		(void)p[0];
	}
	fprintf(stderr, "zuf-ctl-test: FAIL: PM still mapped 5 s after umount\n");
	return NULL;
}

static void check_revoked_later(char *old)
{
	pthread_t t;

	if (pthread_create(&t, NULL, revoke_thread, old) == 0)
		pthread_detach(t);
}

static void *mount_thread(void *arg)
{
	struct zuf_mount_req *req = calloc(1, sizeof(*req));
	int fd = open_zuf();

	(void)arg;
	if (!req)
		die("calloc");
	req->op = ZUF_M_NONE;
	for (;;) {
		if (ioctl(fd, ZUF_IOC_MOUNT_WAIT, req)) {
			if (errno == EINTR)
				continue;
			die("MOUNT_WAIT");
		}
		fprintf(stderr, "zuf-ctl-test: mount op %u sb %llu dev %s size %llu options '%s'\n",
			req->op, (unsigned long long)req->sb_id, req->dev_path,
			(unsigned long long)req->dev_size, req->options);
		req->result = 0;
		if (req->op == ZUF_M_MOUNT && exists("/tmp/zuf-hang-mount"))
			hang("MOUNT");
		if (req->op == ZUF_M_MOUNT) {
			struct zuf_pmem_fd pfd = { .sb_id = req->sb_id };
			char *p;

			if (ioctl(fd, ZUF_IOC_PMEM_FD, &pfd))
				die("PMEM_FD");
			p = mmap(NULL, req->dev_size, PROT_READ | PROT_WRITE, MAP_SHARED, pfd.fd,
				 0);
			if (p == MAP_FAILED) {
				req->result = -errno;
				snprintf(req->message, sizeof(req->message), "mmap PM: %s",
					 strerror(errno));
			} else {
				pthread_mutex_lock(&fs_lock);
				pm = p;
				pthread_mutex_unlock(&fs_lock);
				fprintf(stderr, "zuf-ctl-test: PM mapped, first bytes %02x %02x\n",
					(unsigned char)p[0], (unsigned char)p[1]);
			}
			close(pfd.fd);
			req->root_ino = ROOT_INO;
			req->block_size = 4096;
		} else if (req->op == ZUF_M_UMOUNT) {
			char *old;

			pthread_mutex_lock(&fs_lock);
			old = pm;
			pm = NULL;
			pthread_mutex_unlock(&fs_lock);
			/* answer first: the kernel revokes the mapping after the answer */
			if (old)
				check_revoked_later(old);
		}
	}
	return NULL;
}

static int serve(void)
{
	struct zuf_register_fs reg = { .abi_version = ZUF_ABI_VERSION };
	struct zuf_numa_map map;
	pthread_t t;
	unsigned int cpu, nr = 0;
	int fd = open_zuf();

	fs_init();
	if (ioctl(fd, ZUF_IOC_NUMA_MAP, &map))
		die("NUMA_MAP");
	printf("numa: %u cpus, %u nodes\n", map.nr_cpus, map.nr_nodes);
	strcpy(reg.fs_name, "zpmfs");
	if (ioctl(fd, ZUF_IOC_REGISTER_FS, &reg))
		die("REGISTER_FS");
	if (pthread_create(&t, NULL, mount_thread, NULL))
		die("pthread_create");
	for (cpu = 0; cpu < map.nr_cpus; cpu++) {
		pthread_attr_t attr;
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pthread_attr_init(&attr);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		if (pthread_create(&t, &attr, zt_thread, (void *)(unsigned long)cpu) == 0)
			nr++;
		pthread_attr_destroy(&attr);
	}
	printf("serving zpmfs with %u channels\n", nr);
	fflush(stdout);
	sleep(1);
	close(open("/tmp/zuf-ready", O_CREAT | O_WRONLY, 0644));
	for (;;)
		pause();
	return 0;
}

/* Is the page under @addr in a "Persistent Memory" range of /proc/iomem? -1: unknown. */
static int page_is_pm(const void *addr)
{
	unsigned long long ent, phys, lo, hi;
	char line[256];
	int fd, ret = 0;
	FILE *f;

	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return -1;
	if (pread(fd, &ent, 8, ((unsigned long)addr / 4096) * 8) != 8 || !(ent >> 63)) {
		close(fd);
		return -1;
	}
	close(fd);
	phys = (ent & ((1ULL << 55) - 1)) * 4096;
	if (!phys)
		return -1;
	f = fopen("/proc/iomem", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "Persistent Memory") &&
		    sscanf(line, " %llx-%llx", &lo, &hi) == 2 && phys >= lo && phys <= hi)
			ret = 1;
	fclose(f);
	printf("mapped page at physical %#llx: %s\n", phys, ret ? "in PM" : "not PM");
	return ret;
}

static int check_mmap(const char *path)
{
	char buf[4096], *p;
	int fd, dfd, fails = 0;
	void *dbuf;

	fd = open(path, O_RDWR);
	if (fd < 0)
		die(path);
	p = mmap(NULL, DATA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	if (p == MAP_FAILED)
		die("mmap MAP_SYNC");
	printf("mmap MAP_SYNC: ok\n");
	memcpy(p + 8192, "stored through the mapping", 26);
	if (pread(fd, buf, 26, 8192) != 26 || memcmp(buf, "stored through the mapping", 26)) {
		printf("FAIL: pread does not see the store\n");
		fails++;
	} else {
		printf("store via mapping, pread: ok\n");
	}
	if (page_is_pm(p + 8192) == 0) {
		printf("FAIL: the mapping is not PM\n");
		fails++;
	}
	if (pwrite(fd, "written with pwrite", 19, 12345) != 19)
		die("pwrite");
	if (memcmp(p + 12345, "written with pwrite", 19)) {
		printf("FAIL: mapping does not see pwrite\n");
		fails++;
	} else {
		printf("pwrite, load via mapping: ok\n");
	}
	/* a private mapping's first touch is a write: the COW fault copies the PM block */
	{
		char *q = mmap(NULL, DATA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);

		if (q == MAP_FAILED)
			die("mmap MAP_PRIVATE");
		if (pwrite(fd, "file text", 9, 3 * 4096) != 9)
			die("pwrite");
		q[3 * 4096 + 5] = 'T';
		if (memcmp(q + 3 * 4096, "file Text", 9) ||
		    pread(fd, buf, 9, 3 * 4096) != 9 || memcmp(buf, "file text", 9)) {
			printf("FAIL: MAP_PRIVATE write fault: mapping '%.9s' file '%.9s'\n",
			       q + 3 * 4096, buf);
			fails++;
		} else {
			printf("MAP_PRIVATE copy on write: ok\n");
		}
		munmap(q, DATA_SIZE);
	}
	dfd = open(path, O_RDONLY | O_DIRECT);
	if (dfd < 0)
		die("open O_DIRECT");
	if (posix_memalign(&dbuf, 4096, 8192))
		die("posix_memalign");
	if (pread(dfd, (char *)dbuf + 7, 19, 12345) != 19 ||
	    memcmp((char *)dbuf + 7, "written with pwrite", 19)) {
		printf("FAIL: O_DIRECT unaligned pread\n");
		fails++;
	} else {
		printf("O_DIRECT unaligned pread: ok\n");
	}
	close(dfd);
	munmap(p, DATA_SIZE);
	close(fd);
	return fails ? 1 : 0;
}

static void on_sigbus(int sig)
{
	(void)sig;
	write(1, "SIGBUS\n", 7);
	_exit(3);
}

/* Load the first byte of FILE through a shared mapping; SIGBUS exits 3. */
static int do_touch(const char *path)
{
	volatile char *p;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		die(path);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	signal(SIGBUS, on_sigbus);
	printf("first byte %02x\n", (unsigned char)p[0]);
	return 0;
}

/* The xattr calls on FILE: set, get, list, replace, remove. */
static int do_xattr_check(const char *path)
{
	char buf[256];
	ssize_t n;

	if (setxattr(path, "user.color", "blue", 4, XATTR_CREATE))
		die("setxattr");
	if (setxattr(path, "user.color", "red", 3, XATTR_CREATE) == 0 || errno != EEXIST)
		die("setxattr XATTR_CREATE on an existing name");
	n = getxattr(path, "user.color", NULL, 0);
	if (n != 4)
		die("getxattr size");
	n = getxattr(path, "user.color", buf, sizeof(buf));
	if (n != 4 || memcmp(buf, "blue", 4))
		die("getxattr");
	n = listxattr(path, buf, sizeof(buf));
	if (n != 11 || strcmp(buf, "user.color"))
		die("listxattr");
	if (setxattr(path, "user.color", "green", 5, XATTR_REPLACE))
		die("setxattr XATTR_REPLACE");
	n = getxattr(path, "user.color", buf, sizeof(buf));
	if (n != 5 || memcmp(buf, "green", 5))
		die("getxattr after replace");
	if (removexattr(path, "user.color"))
		die("removexattr");
	if (getxattr(path, "user.color", buf, sizeof(buf)) >= 0 || errno != ENODATA)
		die("getxattr after remove");
	printf("xattr set/get/list/replace/remove: ok\n");
	return 0;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Mean latency of N fstat, 4 KiB pread and 4 KiB pwrite calls on FILE (informative only). */
static int do_bench(const char *path, int n)
{
	char buf[4096] = { 0 };
	struct stat st;
	double t;
	int fd = open(path, O_RDWR), i;

	if (fd < 0)
		die(path);
	t = now_ns();
	for (i = 0; i < n; i++)
		if (fstat(fd, &st))
			die("fstat");
	printf("%s: fstat %.0f ns", path, (now_ns() - t) / n);
	t = now_ns();
	for (i = 0; i < n; i++)
		if (pread(fd, buf, 4096, (i % 8) * 4096) != 4096)
			die("pread");
	printf(", pread 4k %.0f ns", (now_ns() - t) / n);
	t = now_ns();
	for (i = 0; i < n; i++)
		if (pwrite(fd, buf, 4096, (i % 8) * 4096) != 4096)
			die("pwrite");
	printf(", pwrite 4k %.0f ns\n", (now_ns() - t) / n);
	close(fd);
	return 0;
}

/* sendfile(2) FILE to stdout: the splice path (busybox cat uses it). */
static int do_sendfile(const char *path)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		die(path);
	n = sendfile(1, fd, NULL, 1 << 20);
	if (n < 0)
		die("sendfile");
	fprintf(stderr, "sendfile: %zd bytes\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && !strcmp(argv[1], "serve"))
		return serve();
	if (argc == 4 && !strcmp(argv[1], "bench"))
		return do_bench(argv[2], atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "xattr"))
		return do_xattr_check(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "touch"))
		return do_touch(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "sendfile"))
		return do_sendfile(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "mmap"))
		return check_mmap(argv[2]);
	fprintf(stderr, "usage: zuf-ctl-test serve | mmap FILE | xattr FILE | touch FILE | sendfile FILE\n");
	return 2;
}
