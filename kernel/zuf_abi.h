/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * zuf_abi.h - the one definition of everything zuf.ko and the zus server exchange.
 *
 * The Rust server mirrors this file in zus-core/src/zuf/abi.rs; `cargo test -p zus-core
 * zuf_abi` compiles a C program against this header and checks every size, offset and
 * constant against the Rust definitions. Change both together and bump ZUF_ABI_VERSION.
 *
 * Control: zus opens /dev/zuf and
 *   ZUF_IOC_REGISTER_FS   registers a filesystem type ("zpmfs") on its behalf;
 *   ZUF_IOC_NUMA_MAP      learns CPUs and NUMA nodes;
 *   ZUF_IOC_MOUNT_WAIT    (the mount thread) replies to the previous mount request and sleeps
 *                         until the next (mount, umount, remount);
 *   ZUF_IOC_PMEM_FD       gets an fd whose mmap maps a mounted superblock's PM device.
 * Channels: one server thread per CPU opens /dev/zuf, calls ZUF_IOC_ZT_INIT for its CPU, maps
 * the channel (operation buffer at offset 0, application window at ZUF_WINDOW_OFFSET), and
 * loops on ZUF_IOC_ZT_WAIT, which returns the previous operation's result to the kernel and
 * sleeps until the next operation arrives in the buffer.
 * Polling (optional): one more server thread, pinned to a CPU of its own, calls ZT_INIT with
 * ZUF_ZT_POLL and serves calls from every other CPU without a system call or a sleep on
 * either side: the caller posts the operation and spins until the poller, spinning on the
 * buffer's zuf_poll_ctl, answers (see struct zuf_poll_ctl). A caller that finds the poller
 * busy, or runs on its CPU, uses its own CPU's channel as usual.
 */
#ifndef _ZUF_ABI_H
#define _ZUF_ABI_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define ZUF_ABI_VERSION		9
#define ZUF_DEVICE_NAME		"zuf"

#define ZUF_FS_NAME_MAX		16	/* bytes of a filesystem type name, NUL included */
#define ZUF_PATH_MAX		256	/* bytes of a device path, NUL included */
#define ZUF_OPTIONS_MAX		512	/* bytes of a mount option string, NUL included */
#define ZUF_NAME_MAX		256	/* bytes of a file name (255 + NUL) */
#define ZUF_MAX_CPUS		256
#define ZUF_OP_BUF_SIZE		16384	/* per-channel operation buffer (4 pages) */
#define ZUF_WINDOW_OFFSET	(1UL << 20)	/* mmap offset of the application window */
#define ZUF_WINDOW_SIZE		(4UL << 20)	/* application pages mapped per operation */

/* ---- control ---- */

struct zuf_register_fs {
	__u32 abi_version;		/* ZUF_ABI_VERSION of the server */
	__u32 flags;			/* 0 */
	char fs_name[ZUF_FS_NAME_MAX];	/* e.g. "zpmfs" */
};

struct zuf_numa_map {
	__u32 nr_cpus;			/* possible CPUs (<= ZUF_MAX_CPUS) */
	__u32 nr_nodes;			/* online NUMA nodes */
	__u16 cpu_to_node[ZUF_MAX_CPUS];
};

enum zuf_mount_op {
	ZUF_M_NONE = 0,			/* first call: no previous request to answer */
	ZUF_M_MOUNT = 1,
	ZUF_M_UMOUNT = 2,
	ZUF_M_REMOUNT = 3,
};

/* In: the answer to the previous request. Out: the next request. */
struct zuf_mount_req {
	__u32 op;			/* enum zuf_mount_op */
	__s32 result;			/* reply: 0 or -errno */
	__u64 sb_id;			/* kernel's handle of the superblock */
	__u64 flags;			/* MS_RDONLY etc. of the request */
	__u64 dev_size;			/* bytes of the PM device (kernel fills) */
	__u64 root_ino;			/* reply to MOUNT: the root directory's inode number */
	__u32 block_size;		/* reply to MOUNT: 4096 */
	__u32 pad;
	char dev_path[ZUF_PATH_MAX];
	char options[ZUF_OPTIONS_MAX];
	char message[ZUF_PATH_MAX];	/* reply: why a mount failed, for the kernel log */
};

struct zuf_pmem_fd {
	__u64 sb_id;			/* in */
	__s32 fd;			/* out: mmap it (length dev_size) to reach the PM */
	__u32 pad;
};

struct zuf_zt_init {
	__u32 cpu;			/* the CPU this thread is pinned to and serves */
	__u32 flags;			/* 0, or ZUF_ZT_POLL */
};

/* The polling channel: serves the other CPUs' calls; at most one per server. */
#define ZUF_ZT_POLL		0x1

struct zuf_zt_wait {
	__s32 prev_result;		/* 0 or -errno of the operation just served */
	__u32 prev_len;			/* bytes of reply written into the buffer */
};

#define ZUF_IOC_MAGIC		'Z'
#define ZUF_IOC_REGISTER_FS	_IOW(ZUF_IOC_MAGIC, 1, struct zuf_register_fs)
#define ZUF_IOC_NUMA_MAP	_IOR(ZUF_IOC_MAGIC, 2, struct zuf_numa_map)
#define ZUF_IOC_MOUNT_WAIT	_IOWR(ZUF_IOC_MAGIC, 3, struct zuf_mount_req)
#define ZUF_IOC_PMEM_FD		_IOWR(ZUF_IOC_MAGIC, 4, struct zuf_pmem_fd)
#define ZUF_IOC_ZT_INIT		_IOW(ZUF_IOC_MAGIC, 5, struct zuf_zt_init)
#define ZUF_IOC_ZT_WAIT		_IOWR(ZUF_IOC_MAGIC, 6, struct zuf_zt_wait)

/* ---- operations (in a channel's buffer) ---- */

enum zuf_op {
	ZUF_OP_LOOKUP = 1,	/* ino=dir, name -> attr */
	ZUF_OP_GETATTR,		/* ino -> attr */
	ZUF_OP_SETATTR,		/* ino, setattr -> attr */
	ZUF_OP_MKNOD,		/* ino=dir, name, create -> attr (any non-directory) */
	ZUF_OP_MKDIR,		/* ino=dir, name, create -> attr */
	ZUF_OP_SYMLINK,		/* ino=dir, name, target in window -> attr */
	ZUF_OP_READLINK,	/* ino -> target in window, len */
	ZUF_OP_LINK,		/* ino=target, dir2, name -> attr */
	ZUF_OP_UNLINK,		/* ino=dir, name */
	ZUF_OP_RMDIR,		/* ino=dir, name */
	ZUF_OP_RENAME,		/* ino=dir, name, dir2, name2, flags -> attr of what lost name2 */
	ZUF_OP_READDIR,		/* ino, offset -> dirents in window */
	ZUF_OP_READ,		/* ino, offset, len: data into window */
	ZUF_OP_WRITE,		/* ino, offset, len: data from window (flags: append) */
	ZUF_OP_FSYNC,		/* ino, flags: datasync */
	ZUF_OP_FALLOCATE,	/* ino, mode, offset, len */
	ZUF_OP_LLSEEK,		/* ino, offset, whence -> offset */
	ZUF_OP_STATFS,		/* -> statfs */
	ZUF_OP_SETXATTR,	/* ino, name, value in window, flags */
	ZUF_OP_GETXATTR,	/* ino, name -> value in window, len */
	ZUF_OP_LISTXATTR,	/* ino -> names in window, len */
	ZUF_OP_REMOVEXATTR,	/* ino, name */
	ZUF_OP_GET_BLOCK,	/* ino, offset, flags: write -> device offset of the PM block;
				 * a hole on a read fault: -ENODATA (map the zero page) */
	ZUF_OP_OPEN,		/* ino */
	ZUF_OP_RELEASE,		/* ino */
	ZUF_OP_EVICT,		/* ino: the kernel dropped its inode; until then the server
				 * keeps an unlinked inode alive (OPEN/RELEASE are not sent).
				 * Unlinked inodes are not sent this way: see evict[] */
	ZUF_OP_FIEMAP,		/* ino, offset, len (window bytes) -> zuf_extent records in
				 * window: the file's extents from the one holding offset on */
	ZUF_OP_TMPFILE,		/* ino=dir, create -> attr: a regular file no directory names
				 * (link count 0), held as any inode the kernel holds */
	ZUF_OP_CREATE,		/* ino=dir, name, mode, flags: EXCL -> attr of the regular file
				 * it made (out_len 1) or of what the name held (out_len 0):
				 * open(O_CREAT) of a name the kernel has not looked up */
	ZUF_OP_MAX
};

#define ZUF_EVICT_BATCH		16	/* evictions one call carries (zuf_op_buf.evict) */

#define ZUF_F_APPEND		0x1	/* WRITE at end of file */
#define ZUF_F_DATASYNC		0x2	/* FSYNC of data only */
#define ZUF_F_FOR_WRITE		0x4	/* GET_BLOCK for a write fault: allocate a hole */
#define ZUF_F_EXCL		0x1	/* CREATE: EEXIST if the name exists (O_EXCL) */
#define ZUF_F_RENAME_NOREPLACE	0x1	/* RENAME flags are renameat2's */
#define ZUF_F_RENAME_EXCHANGE	0x2
#define ZUF_F_RENAME_WHITEOUT	0x4

struct zuf_time {
	__s64 sec;
	__u32 nsec;
	__u32 pad;
};

/* Attributes of an inode, as replies carry them. */
struct zuf_attr {
	__u64 ino;
	__u64 size;
	__u64 blocks;			/* 512-byte units */
	struct zuf_time atime;
	struct zuf_time mtime;
	struct zuf_time ctime;
	__u32 mode;			/* type and permission bits */
	__u32 nlink;
	__u32 uid;
	__u32 gid;
	__u32 rdev;
	__u32 blksize;
	__u32 flags;			/* chattr's FS_*_FL, of ZUF_IFLAGS */
	__u32 generation;		/* tells inodes with one number apart (file handles) */
	struct zuf_time btime;		/* creation time (statx's btime) */
};

/* The chattr flags the server keeps: FS_SYNC, IMMUTABLE, APPEND, NODUMP, NOATIME, DIRSYNC. */
#define ZUF_IFLAGS		0x000100f8

#define ZUF_SET_MODE		0x01
#define ZUF_SET_UID		0x02
#define ZUF_SET_GID		0x04
#define ZUF_SET_SIZE		0x08
#define ZUF_SET_ATIME		0x10
#define ZUF_SET_MTIME		0x20
#define ZUF_SET_ATIME_NOW	0x40
#define ZUF_SET_MTIME_NOW	0x80
#define ZUF_SET_CTIME		0x100
#define ZUF_SET_FLAGS		0x200	/* alone: set chattr's flags to .flags */

struct zuf_setattr {
	__u32 valid;			/* ZUF_SET_* */
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u64 size;
	struct zuf_time atime;
	struct zuf_time mtime;
	struct zuf_time ctime;
	__u32 flags;			/* with ZUF_SET_FLAGS */
	__u32 pad;
};

struct zuf_statfs {
	__u64 blocks;
	__u64 bfree;
	__u64 bavail;
	__u64 files;
	__u64 ffree;
	__u32 bsize;
	__u32 namelen;
};

/* One directory entry in a READDIR reply (in the window), 8-byte aligned. */
struct zuf_dirent {
	__u64 ino;
	__u64 next_offset;		/* pass back as offset to continue after this entry */
	__u16 reclen;			/* bytes of this record, name included, rounded up to 8 */
	__u8 type;			/* DT_* */
	__u8 name_len;
	__u32 pad;
	/* name follows, not NUL-terminated */
};

/* One extent in a FIEMAP reply (in the window), whole, in file order. */
struct zuf_extent {
	__u64 logical;			/* byte offset in the file */
	__u64 physical;			/* byte offset in the device */
	__u64 length;			/* bytes */
	__u32 flags;			/* ZUF_EXTENT_* */
	__u32 pad;
};

#define ZUF_EXTENT_LAST		0x1	/* the file's last extent */

/*
 * The operation buffer: a header, then the arguments, then room for the reply. The kernel
 * writes everything but `result`; the server writes `result` and the reply fields. Data
 * (read, write, readdir, xattr values, symlink targets) goes through the window: the kernel
 * maps the application's pages there, and `window_off` is where the data starts in it.
 */
struct zuf_op_buf {
	__u32 op;			/* enum zuf_op */
	__u32 flags;			/* ZUF_F_* */
	__u64 sb_id;
	__u64 ino;			/* the inode the operation is on */
	__u64 ino2;			/* LINK, RENAME: second directory */
	__u64 offset;			/* READ, WRITE, READDIR, LLSEEK, FALLOCATE, GET_BLOCK */
	__u64 len;			/* bytes of data in the window / of the range */
	__u64 window_off;		/* where the data starts in the window */
	__u32 mode;			/* MKNOD, MKDIR; FALLOCATE mode; LLSEEK whence */
	__u32 rdev;
	__u32 uid;			/* caller's fsuid/fsgid, for new inodes */
	__u32 gid;
	__u32 name_len;
	__u32 name2_len;
	char name[ZUF_NAME_MAX];	/* LOOKUP, creates, LINK, UNLINK, RMDIR, RENAME; xattr name */
	char name2[ZUF_NAME_MAX];	/* RENAME: new name */
	struct zuf_setattr set;
	/*
	 * Unlinked inodes the kernel dropped since the last call: the server releases them (as
	 * EVICT) before serving this one. No name hands such an inode out again, so its release
	 * may wait for the next call instead of costing one of its own (an unlink's).
	 */
	__u32 nr_evict;
	__u32 pad2;
	__u64 evict[ZUF_EVICT_BATCH];
	/* reply */
	__s32 result;			/* 0 or -errno (also returned through ZT_WAIT) */
	__u32 pad;
	__u64 out_len;			/* bytes produced (READ, READLINK, xattrs, READDIR) */
	__u64 out_offset;		/* LLSEEK result; WRITE: offset written at; GET_BLOCK: device offset */
	struct zuf_attr attr;
	struct zuf_statfs statfs;
};

/*
 * A polling channel's handshake, at ZUF_POLL_CTL_OFF in its operation buffer. The kernel
 * fills the buffer, then stores the call's sequence number in `posted` (release); the poller
 * sees it change, serves, writes `result` and the reply fields into the buffer, then stores
 * the same number in `answered` (release); the caller spins until it reads it. A poller that
 * has seen no call for a while blocks in ZT_WAIT, which returns once posted != answered; the
 * kernel wakes it when it posts (it does not rely on the server to say it sleeps). The two
 * words are on cache lines of their own: each is written by one side only.
 */
#define ZUF_POLL_CTL_OFF	8192

struct zuf_poll_ctl {
	__u64 posted;			/* kernel: the last call put in the buffer */
	__u64 pad1[7];
	__u64 answered;			/* server: the last call answered */
	__u64 pad2[7];
};

#endif /* _ZUF_ABI_H */
