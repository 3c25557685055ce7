/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zuf.h - zuf.ko internal declarations.
 *
 * Objects and their lifetimes:
 *   struct zuf_server   one running zus; created by the first /dev/zuf file that attaches,
 *                       dead when the last attached file is released. Superblocks hold a
 *                       reference, so a dead server's object outlives it until they unmount.
 *   struct zuf_fs_type  a static slot wrapping a struct file_system_type registered for a
 *                       server; static so that a superblock of a dead server can still reach
 *                       its s_type until it is unmounted (and the module cannot unload before).
 *   struct zuf_chan     one per served CPU: operation buffer, application window, the ZT.
 *   struct zuf_sb_info  one per mounted superblock.
 */
#ifndef _ZUF_H
#define _ZUF_H

#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/wait.h>
#include <linux/pfn_t.h>
#include <linux/uio.h>
#include "zuf_abi.h"

#define ZUF_MAX_FS_TYPES	4
/*
 * The window's last 64 KiB are the channel's own bounce pages, mapped into the server once
 * and never unmapped: I/O up to that size is copied through them instead of mapping the
 * application's pages, which costs a TLB shootdown per call. The rest maps pages per call.
 */
#define ZUF_BOUNCE_SIZE		(64UL << 10)
#define ZUF_BOUNCE_OFF		(ZUF_WINDOW_SIZE - ZUF_BOUNCE_SIZE)
#define ZUF_MAP_PAGES		(ZUF_BOUNCE_OFF >> PAGE_SHIFT)

struct zuf_server;

struct zuf_fs_type {
	struct file_system_type fst;
	char name[ZUF_FS_NAME_MAX];
	struct zuf_server *srv;		/* the server that registered it; NULL when free */
	bool registered;
	unsigned int nr_sbs;		/* superblocks alive (under zuf_lock) */
};

enum zuf_mstate {
	ZUF_MS_IDLE,			/* no request */
	ZUF_MS_PENDING,			/* posted, not yet taken by the mount thread */
	ZUF_MS_TAKEN,			/* the mount thread has it */
	ZUF_MS_DONE,			/* answered */
	ZUF_MS_ABANDONED,		/* taken, its caller gave up: discard the answer */
};

struct zuf_server {
	struct kref kref;
	spinlock_t lock;		/* dead, nr_files, chans[], the mount slot state */
	bool dead;
	unsigned int nr_files;		/* attached /dev/zuf files */
	u64 next_sb_id;
	struct list_head sbs;		/* zuf_sb_info.srv_list */
	struct zuf_fs_type *types[ZUF_MAX_FS_TYPES];
	struct zuf_chan **chans;	/* nr_cpu_ids entries */
	struct zuf_chan *poll_chan;	/* the polling channel, if the server runs one */

	/* mount rendezvous */
	struct mutex mount_mutex;	/* one request in flight */
	enum zuf_mstate mstate;
	struct zuf_mount_req mreq;	/* the request, then its answer */
	struct file *mtaker;		/* the file whose MOUNT_WAIT took it (never dereferenced) */
	wait_queue_head_t mount_srv_wq;	/* the mount thread waits for requests */
	wait_queue_head_t mount_wq;	/* callers wait for answers */
};

struct zuf_chan {
	struct kref kref;
	struct zuf_server *srv;
	unsigned int cpu;
	struct mutex mutex;		/* one dispatcher at a time */
	spinlock_t lock;		/* the fields below */
	bool dead;
	bool pending;			/* an op is posted, the ZT has not taken it */
	bool in_service;		/* the ZT took it and has not answered */
	bool done;			/* answered; result valid */
	bool abandoned;			/* the dispatcher gave up (killed) */
	int result;
	wait_queue_head_t zt_wq;	/* the ZT waits for ops */
	wait_queue_head_t done_wq;	/* the dispatcher waits for the answer */
	struct zuf_op_buf *buf;		/* vmalloc_user, ZUF_OP_BUF_SIZE */
	struct page *scratch;		/* what a stray window fault maps */
	void *bounce;			/* vmalloc_user, ZUF_BOUNCE_SIZE, at ZUF_BOUNCE_OFF */
	struct mm_struct *mm;		/* the server's mm (mmgrab), once the window is mapped */
	unsigned long win_addr;		/* the window's address in mm, 0 when not mapped */
	/* a polling channel (ZUF_ZT_POLL): the handshake in buf, and the last call posted */
	bool poll;
	struct zuf_poll_ctl *ctl;
	u64 poll_seq;			/* the last call posted: set under mutex, read by ZT_WAIT */
};

struct zuf_sb_info {
	struct zuf_server *srv;
	struct zuf_fs_type *zft;
	struct list_head srv_list;
	u64 sb_id;
	struct dax_device *dax;
	u64 dax_off;			/* partition start in the DAX device, bytes */
	u64 dev_size;
	void *pm_kaddr;			/* the whole device, kernel mapping */
	pfn_t pm_pfn;			/* its first PFN */
	u64 root_ino;
	bool mounted;			/* the server has it mounted: UMOUNT owed */
	bool shut_down;			/* the shutdown ioctl: every operation is EIO */
	/* unlinked inodes evicted since the last call, sent with the next (zuf_op_buf.evict) */
	spinlock_t evict_lock;
	unsigned int nr_evict;
	u64 evict[ZUF_EVICT_BATCH];
	char *options;
	struct list_head pmem_files;	/* zuf_pmem.list, under zuf_lock */
};

/* An fd from ZUF_IOC_PMEM_FD. */
struct zuf_pmem {
	struct list_head list;
	bool dead;			/* its superblock is gone (under zuf_lock) */
	struct address_space *mapping;	/* its own anon inode's, to revoke the mappings */
	unsigned long base_pfn;
	u64 size;
};

static inline struct zuf_sb_info *ZUF_SB(struct super_block *sb)
{
	return sb->s_fs_info;
}

/* An inode as zuf.ko keeps it: chattr's flags (FS_*_FL) as the server last answered them. */
struct zuf_inode_info {
	u32 flags;
	struct timespec64 btime;	/* creation time: the server's, never changes */
	struct inode vfs_inode;
};

static inline struct zuf_inode_info *ZUF_I(struct inode *inode)
{
	return container_of(inode, struct zuf_inode_info, vfs_inode);
}

/* Application data of one operation, mapped into the window. */
struct zuf_io {
	struct page **pages;
	unsigned int nr_pages;
	unsigned int off;		/* where the data starts in the first page */
	bool server_writes;		/* the server fills the pages (READ, GET*) */
	/*
	 * Bounced I/O (no pages): the data is copied between this user iterator and the
	 * channel's bounce pages under the channel's mutex, with page faults disabled (a fault
	 * on a zpmfs mapping would need the channel). A write whose source faults is not
	 * posted (fell_back: map the pages instead); a read's bytes past a faulting user page
	 * are handed back in spill for the caller to copy once the channel is free.
	 */
	struct iov_iter *bounce;
	bool fell_back;
	size_t copied;			/* bytes the bounce took from or gave to the iterator */
	void *spill;			/* kmalloc, spill_len bytes */
	size_t spill_len;
};

/* One operation: the kernel's arguments, then a snapshot of the server's reply. */
struct zuf_call {
	u32 op;
	u32 flags;
	u64 ino;
	u64 ino2;
	u64 offset;
	u64 len;
	u32 mode;
	u32 rdev;
	const struct qstr *name;
	const struct qstr *name2;
	const struct zuf_setattr *set;
	struct zuf_io *io;
	/* creates: the mount's idmapping, which maps the caller's fsuid/fsgid to the new owner */
	struct user_namespace *owner_ns;
	/* reply, copied out of the buffer once */
	int result;
	u64 out_len;
	u64 out_offset;
	struct zuf_attr attr;
	struct zuf_statfs statfs;
};

/* The private data of an open /dev/zuf. */
struct zuf_file {
	struct zuf_server *srv;		/* attached server, or NULL */
	struct zuf_chan *chan;		/* after ZT_INIT */
};

/* zuf-main.c */
extern struct mutex zuf_lock;
void zuf_server_put(struct zuf_server *srv);
bool zuf_server_dead(struct zuf_server *srv);

/* zuf-ctl.c */
long zuf_ioc_register_fs(struct file *file, void __user *arg);
long zuf_ioc_numa_map(struct file *file, void __user *arg);
long zuf_ioc_mount_wait(struct file *file, void __user *arg);
long zuf_ioc_pmem_fd(struct file *file, void __user *arg);
int zuf_mount_request(struct zuf_server *srv, struct zuf_mount_req *req);
void zuf_ctl_server_died(struct zuf_server *srv);
struct zuf_server *zuf_file_attach(struct file *file);
void zuf_pmem_revoke(struct zuf_sb_info *sbi);
void zuf_fs_type_put(struct zuf_fs_type *zft);

/* zuf-zt.c */
long zuf_ioc_zt_init(struct file *file, void __user *arg);
long zuf_ioc_zt_wait(struct file *file, void __user *arg);
int zuf_zt_mmap(struct file *file, struct vm_area_struct *vma);
void zuf_chan_release(struct zuf_chan *chan);
int zuf_dispatch(struct zuf_sb_info *sbi, struct zuf_call *op);
bool zuf_evict_later(struct zuf_sb_info *sbi, u64 ino);

/* zuf-ioctl.c */
long zuf_ioctl_file(struct file *file, unsigned int cmd, unsigned long arg);
int zuf_io_alloc_kernel(struct zuf_io *io, size_t len);
void zuf_io_free_kernel(struct zuf_io *io);

/* zuf-acl.c */
struct posix_acl;
struct posix_acl *zuf_get_acl(struct inode *inode, int type, bool rcu);
int zuf_set_acl(struct user_namespace *mnt_userns, struct inode *inode, struct posix_acl *acl,
		int type);
int zuf_acl_prepare(struct inode *dir, umode_t *mode, struct posix_acl **default_acl,
		    struct posix_acl **acl);
int zuf_acl_init(struct inode *inode, struct posix_acl *default_acl, struct posix_acl *acl);

/* zuf-fiemap.c */
struct fiemap_extent_info;
int zuf_fiemap(struct inode *inode, struct fiemap_extent_info *fieinfo, u64 start, u64 len);

/* zuf-super.c */
struct dentry *zuf_mount(struct file_system_type *fst, int flags, const char *dev_name,
			 void *data);
void zuf_kill_sb(struct super_block *sb);
int zuf_inode_cache_init(void);
void zuf_inode_cache_destroy(void);

/* zuf-inode.c */
extern const struct inode_operations zuf_file_iops;
extern const struct inode_operations zuf_special_iops;
extern const struct inode_operations zuf_symlink_iops;
struct inode *zuf_iget(struct super_block *sb, const struct zuf_attr *attr, bool created);
int zuf_check_attr(const struct zuf_attr *attr, u64 want_ino);
void zuf_apply_attr(struct inode *inode, const struct zuf_attr *attr);
void zuf_time_of(struct zuf_time *zt, const struct timespec64 *ts);
bool zuf_apply_reply_attr(struct inode *inode, const struct zuf_attr *attr);
int zuf_getattr(struct user_namespace *mnt_userns, const struct path *path,
		struct kstat *stat, u32 request_mask, unsigned int flags);
int zuf_setattr(struct user_namespace *mnt_userns, struct dentry *dentry,
		struct iattr *iattr);
int zuf_attr_call(struct inode *inode, struct zuf_call *op);
#define ZUF_ATTR_FRESH		1UL
void zuf_attr_stale(struct inode *inode);
int zuf_update_time(struct inode *inode, struct timespec64 *now, int flags);
struct fileattr;
int zuf_fileattr_get(struct dentry *dentry, struct fileattr *fa);
int zuf_fileattr_set(struct user_namespace *mnt_userns, struct dentry *dentry,
		     struct fileattr *fa);
void zuf_evict_inode(struct inode *inode);
int zuf_check_result(int result);

/* zuf-namei.c */
extern const struct inode_operations zuf_dir_iops;

/* zuf-dir.c */
extern const struct file_operations zuf_dir_fops;

/* zuf-file.c */
extern const struct file_operations zuf_file_fops;
extern const struct address_space_operations zuf_aops;

/* zuf-mmap.c */
int zuf_file_mmap(struct file *file, struct vm_area_struct *vma);

/* zuf-export.c */
extern const struct export_operations zuf_export_ops;

/* zuf-xattr.c */
extern const struct xattr_handler *zuf_xattr_handlers[];
ssize_t zuf_listxattr(struct dentry *dentry, char *buf, size_t size);
ssize_t zuf_xattr_fetch(struct inode *inode, u32 opcode, const struct qstr *name, void *buf,
			size_t size);
int zuf_xattr_store(struct inode *inode, const struct qstr *q, const void *value, size_t size,
		    int flags);

#endif /* _ZUF_H */
