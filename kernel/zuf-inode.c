// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-inode.c - inodes: iget by the server's inode number, attributes from struct zuf_attr
 * (validated), getattr and setattr (truncate unmaps what it frees first), eviction, and the
 * inode operations of regular files, special files and symlinks.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/fileattr.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/pagemap.h>
#include <linux/posix_acl.h>
#include "zuf.h"

static bool zuf_type_ok(u32 mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK:
	case S_IFIFO: case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

/* Validate attributes from the server; @want_ino 0 accepts any inode number. */
int zuf_check_attr(const struct zuf_attr *attr, u64 want_ino)
{
	if (!attr->ino || (want_ino && attr->ino != want_ino) || !zuf_type_ok(attr->mode) ||
	    (attr->mode & ~(S_IFMT | 07777)) || attr->size > MAX_LFS_FILESIZE ||
	    attr->atime.nsec >= NSEC_PER_SEC || attr->mtime.nsec >= NSEC_PER_SEC ||
	    attr->ctime.nsec >= NSEC_PER_SEC || attr->btime.nsec >= NSEC_PER_SEC ||
	    (attr->flags & ~ZUF_IFLAGS)) {
		pr_warn_ratelimited("bad attributes from the server (ino %llu, wanted %llu, mode %o)\n",
				    attr->ino, want_ino, attr->mode);
		return -EIO;
	}
	return 0;
}

static struct timespec64 zuf_ts(const struct zuf_time *t)
{
	return (struct timespec64){ .tv_sec = t->sec, .tv_nsec = t->nsec };
}

/* Attributes of a checked @attr into @inode (whose type they match). */
void zuf_apply_attr(struct inode *inode, const struct zuf_attr *attr)
{
	inode->i_mode = (inode->i_mode & S_IFMT) | (attr->mode & 07777);
	inode->i_uid = make_kuid(&init_user_ns, attr->uid);
	inode->i_gid = make_kgid(&init_user_ns, attr->gid);
	spin_lock(&inode->i_lock);	/* against zuf-namei.c's link count updates */
	set_nlink(inode, attr->nlink);
	spin_unlock(&inode->i_lock);
	i_size_write(inode, attr->size);
	inode->i_blocks = attr->blocks;
	inode->i_atime = zuf_ts(&attr->atime);
	inode->i_mtime = zuf_ts(&attr->mtime);
	inode->i_ctime = zuf_ts(&attr->ctime);
	ZUF_I(inode)->btime = zuf_ts(&attr->btime);
	/*
	 * What the VFS enforces itself. S_SYNC and S_DIRSYNC stay off: every zpmfs change is
	 * durable when the server answers, and they would only add fsync round trips.
	 */
	WRITE_ONCE(ZUF_I(inode)->flags, attr->flags);
	inode_set_flags(inode,
			(attr->flags & FS_IMMUTABLE_FL ? S_IMMUTABLE : 0) |
			(attr->flags & FS_APPEND_FL ? S_APPEND : 0) |
			(attr->flags & FS_NOATIME_FL ? S_NOATIME : 0),
			S_IMMUTABLE | S_APPEND | S_NOATIME);
}

/*
 * Attributes a reply may carry (WRITE, FALLOCATE, LINK): applied when the server filled them
 * for this inode, ignored when it left them out (attr.ino 0 or another inode). Returns
 * whether they were applied.
 */
bool zuf_apply_reply_attr(struct inode *inode, const struct zuf_attr *attr)
{
	if (attr->ino != inode->i_ino || zuf_check_attr(attr, inode->i_ino))
		return false;
	if ((attr->mode ^ inode->i_mode) & S_IFMT) {
		pr_warn_ratelimited("server retyped inode %lu\n", inode->i_ino);
		return false;
	}
	zuf_apply_attr(inode, attr);
	/* an answer to another call: it may be older than a GETATTR already taken */
	zuf_attr_stale(inode);
	return true;
}

static void zuf_set_ops(struct inode *inode, const struct zuf_attr *attr)
{
	switch (inode->i_mode & S_IFMT) {
	case S_IFREG:
		inode->i_op = &zuf_file_iops;
		inode->i_fop = &zuf_file_fops;
		inode->i_mapping->a_ops = &zuf_aops;
		inode->i_flags |= S_DAX;
		break;
	case S_IFDIR:
		inode->i_op = &zuf_dir_iops;
		inode->i_fop = &zuf_dir_fops;
		break;
	case S_IFLNK:
		inode->i_op = &zuf_symlink_iops;
		break;
	default:
		inode->i_op = &zuf_special_iops;
		init_special_inode(inode, inode->i_mode, new_decode_dev(attr->rdev));
		break;
	}
}

/*
 * The inode of checked @attr, new or cached. @created: the server says it just made it, so
 * an inode the kernel already has means a broken server (a second name for a directory
 * would break the dcache).
 */
struct inode *zuf_iget(struct super_block *sb, const struct zuf_attr *attr, bool created)
{
	struct inode *inode;

	inode = iget_locked(sb, attr->ino);
	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode->i_state & I_NEW)) {
		if (created || ((inode->i_mode ^ attr->mode) & S_IFMT)) {
			pr_warn_ratelimited("server reused or retyped inode %llu\n", attr->ino);
			iput(inode);
			return ERR_PTR(-EIO);
		}
		zuf_apply_attr(inode, attr);
		zuf_attr_stale(inode);	/* a lookup's answer may be older than a GETATTR taken */
		return inode;
	}
	inode->i_mode = attr->mode;
	inode->i_generation = attr->generation;
	zuf_apply_attr(inode, attr);
	zuf_set_ops(inode, attr);
	/* nobody else has it yet: what the server just answered is all there is */
	inode->i_private = (void *)ZUF_ATTR_FRESH;
	unlock_new_inode(inode);
	return inode;
}

/*
 * The attribute cache (inode->i_private as a word): bit 0 says the inode's attributes are
 * the server's, so getattr needs no call; the bits above count the times they went stale.
 * Every call that may change attributes marks the inode stale as its last step, after any
 * local change (a link count, a size) and any answer it applied (answers to other calls may
 * be older than a GETATTR already taken); a GETATTR marks it fresh only if nothing went stale
 * while it was under way (the generation it started with is still there), so nothing older
 * than a change is ever kept as current.
 */
void zuf_attr_stale(struct inode *inode)
{
	void *seen, *old;

	if (!inode)
		return;
	seen = READ_ONCE(inode->i_private);
	do {
		old = seen;
		seen = cmpxchg(&inode->i_private, old, (void *)(((unsigned long)old | ZUF_ATTR_FRESH) + 1));
	} while (seen != old);
}

static void zuf_attr_fresh(struct inode *inode, unsigned long started)
{
	cmpxchg(&inode->i_private, (void *)(started & ~ZUF_ATTR_FRESH),
		(void *)(started | ZUF_ATTR_FRESH));
}

/*
 * Send @op, which answers @inode's attributes (GETATTR, SETATTR), and take them: checked, and
 * of the same file type, or the server is lying and the answer is EIO.
 */
int zuf_attr_call(struct inode *inode, struct zuf_call *op)
{
	int err;

	err = zuf_dispatch(ZUF_SB(inode->i_sb), op);
	if (!err)
		err = zuf_check_attr(&op->attr, inode->i_ino);
	if (!err && ((inode->i_mode ^ op->attr.mode) & S_IFMT))
		err = -EIO;
	if (!err)
		zuf_apply_attr(inode, &op->attr);
	return err;
}

/* Take the server's attributes, unless the cached ones are fresh and @force is not set. */
static int zuf_refresh(struct inode *inode, bool force)
{
	struct zuf_call op = { .op = ZUF_OP_GETATTR, .ino = inode->i_ino };
	unsigned long started = (unsigned long)READ_ONCE(inode->i_private);
	int err;

	if ((started & ZUF_ATTR_FRESH) && !force) {
		struct zuf_sb_info *sbi = ZUF_SB(inode->i_sb);

		/* a dead server or a shut down filesystem answers EIO, cached or not */
		if (zuf_server_dead(sbi->srv) || READ_ONCE(sbi->shut_down))
			return -EIO;
		return 0;
	}
	err = zuf_attr_call(inode, &op);
	if (!err)
		zuf_attr_fresh(inode, started);
	return err;
}

int zuf_getattr(struct user_namespace *mnt_userns, const struct path *path,
		struct kstat *stat, u32 request_mask, unsigned int flags)
{
	struct inode *inode = d_inode(path->dentry);
	u32 iflags;
	int err;

	/* statx(AT_STATX_FORCE_SYNC) asks the server whatever the cache says */
	err = zuf_refresh(inode, (flags & AT_STATX_SYNC_TYPE) == AT_STATX_FORCE_SYNC);
	if (err)
		return err;
	generic_fillattr(mnt_userns, inode, stat);
	stat->blksize = PAGE_SIZE;
	/* chattr's flags that statx reports */
	iflags = READ_ONCE(ZUF_I(inode)->flags);
	if (iflags & FS_APPEND_FL)
		stat->attributes |= STATX_ATTR_APPEND;
	if (iflags & FS_IMMUTABLE_FL)
		stat->attributes |= STATX_ATTR_IMMUTABLE;
	if (iflags & FS_NODUMP_FL)
		stat->attributes |= STATX_ATTR_NODUMP;
	stat->attributes_mask |= STATX_ATTR_APPEND | STATX_ATTR_IMMUTABLE | STATX_ATTR_NODUMP;
	stat->btime = ZUF_I(inode)->btime;
	stat->result_mask |= STATX_BTIME;
	return 0;
}

void zuf_time_of(struct zuf_time *zt, const struct timespec64 *ts)
{
	zt->sec = ts->tv_sec;
	zt->nsec = ts->tv_nsec;
}

int zuf_setattr(struct user_namespace *mnt_userns, struct dentry *dentry,
		struct iattr *iattr)
{
	struct inode *inode = d_inode(dentry);
	struct zuf_setattr set = {};
	struct zuf_call op = { .op = ZUF_OP_SETATTR, .ino = inode->i_ino, .set = &set };
	bool truncate = false;
	int err;

	err = setattr_prepare(mnt_userns, dentry, iattr);
	if (err)
		return err;
	if (iattr->ia_valid & ATTR_MODE) {
		set.valid |= ZUF_SET_MODE;
		set.mode = iattr->ia_mode & 07777;
	}
	if (iattr->ia_valid & ATTR_UID) {
		set.valid |= ZUF_SET_UID;
		set.uid = from_kuid(&init_user_ns, from_vfsuid(mnt_userns, i_user_ns(inode),
							       iattr->ia_vfsuid));
	}
	if (iattr->ia_valid & ATTR_GID) {
		set.valid |= ZUF_SET_GID;
		set.gid = from_kgid(&init_user_ns, from_vfsgid(mnt_userns, i_user_ns(inode),
							       iattr->ia_vfsgid));
	}
	if (iattr->ia_valid & ATTR_SIZE) {
		if (!S_ISREG(inode->i_mode))
			return -EINVAL;
		set.valid |= ZUF_SET_SIZE;
		set.size = iattr->ia_size;
		truncate = true;
	}
	if (iattr->ia_valid & ATTR_ATIME) {
		set.valid |= (iattr->ia_valid & ATTR_ATIME_SET) ? ZUF_SET_ATIME : ZUF_SET_ATIME_NOW;
		zuf_time_of(&set.atime, &iattr->ia_atime);
	}
	if (iattr->ia_valid & ATTR_MTIME) {
		set.valid |= (iattr->ia_valid & ATTR_MTIME_SET) ? ZUF_SET_MTIME : ZUF_SET_MTIME_NOW;
		zuf_time_of(&set.mtime, &iattr->ia_mtime);
	}
	/*
	 * ctime is never sent: the server stamps it with the clock it stamps mtime with, so a
	 * change cannot show a ctime older than its mtime (the VFS's ia_ctime is the coarse
	 * clock). A change of ctime alone is a SETATTR that sets nothing else.
	 */
	if (!set.valid && !(iattr->ia_valid & ATTR_CTIME))
		return 0;

	if (truncate) {
		/*
		 * No fault may map a block the server is about to free. The page holding the new
		 * end goes too: the server gives it a fresh copy with the bytes past the end zeroed.
		 */
		filemap_invalidate_lock(inode->i_mapping);
		if (iattr->ia_size < i_size_read(inode))
			unmap_mapping_range(inode->i_mapping,
					    round_down(iattr->ia_size, PAGE_SIZE), 0, 1);
	}
	err = zuf_attr_call(inode, &op);
	if (truncate)
		filemap_invalidate_unlock(inode->i_mapping);
	/* chmod rewrites the access ACL's owner, group (or mask) and other entries */
	if (!err && (iattr->ia_valid & ATTR_MODE))
		err = posix_acl_chmod(mnt_userns, inode, inode->i_mode);
	/* last: the answer applied above may be older than a GETATTR taken meanwhile */
	zuf_attr_stale(inode);
	return err;
}

/*
 * The VFS's time update. file_update_time in a DAX write fault: stores through a mapping
 * never reach the server, so the fault asks it to stamp mtime and ctime with its own clock
 * (the one every other change uses), and the server keeps them (no dirty inode here), so what
 * stat shows survives a remount. The VFS asks when the inode's times differ from its coarse
 * clock's @now, which the server's finer stamps always do; a stamp already inside @now's
 * tick is enough, which keeps this to one SETATTR per tick as ext4-DAX has. touch_atime
 * (readdir, readlink, mmap) changes nothing: zpmfs does not record access times of reads
 * (docs/DESIGN.md), and a SETATTR of atime alone would also move ctime.
 */
static bool zuf_stamped_in_tick(const struct timespec64 *t, const struct timespec64 *now)
{
	s64 ahead = timespec64_to_ns(t) - timespec64_to_ns(now);

	return ahead >= 0 && ahead < TICK_NSEC;
}

int zuf_update_time(struct inode *inode, struct timespec64 *now, int flags)
{
	struct zuf_setattr set = {};
	struct zuf_call op = { .op = ZUF_OP_SETATTR, .ino = inode->i_ino, .set = &set };
	int err;

	if ((flags & S_MTIME) && !zuf_stamped_in_tick(&inode->i_mtime, now))
		set.valid |= ZUF_SET_MTIME_NOW;	/* the server moves ctime with it */
	else if (!(flags & S_CTIME) || zuf_stamped_in_tick(&inode->i_ctime, now))
		return 0;
	err = zuf_attr_call(inode, &op);
	zuf_attr_stale(inode);
	return err;
}

/* chattr's flags (FS_IOC_GETFLAGS, FS_IOC_FSGETXATTR): always the server's. */
int zuf_fileattr_get(struct dentry *dentry, struct fileattr *fa)
{
	struct inode *inode = d_inode(dentry);
	struct zuf_call op = { .op = ZUF_OP_GETATTR, .ino = inode->i_ino };
	int err;

	err = zuf_attr_call(inode, &op);
	if (!err)
		fileattr_fill_flags(fa, op.attr.flags);
	return err;
}

/*
 * Set chattr's flags. vfs_fileattr_set has checked the caller (owner, CAP_LINUX_IMMUTABLE for
 * immutable and append-only) and holds the inode lock. Extent sizes, project ids and flags
 * the server does not keep: EOPNOTSUPP, as ext4 answers for what it lacks.
 */
int zuf_fileattr_set(struct user_namespace *mnt_userns, struct dentry *dentry,
		     struct fileattr *fa)
{
	struct inode *inode = d_inode(dentry);
	struct zuf_setattr set = { .valid = ZUF_SET_FLAGS, .flags = fa->flags };
	struct zuf_call op = { .op = ZUF_OP_SETATTR, .ino = inode->i_ino, .set = &set };
	int err;

	if (fileattr_has_fsx(fa) || (fa->flags & ~ZUF_IFLAGS))
		return -EOPNOTSUPP;
	err = zuf_attr_call(inode, &op);
	zuf_attr_stale(inode);
	return err;
}

void zuf_evict_inode(struct inode *inode)
{
	struct zuf_sb_info *sbi = ZUF_SB(inode->i_sb);
	struct zuf_call op = { .op = ZUF_OP_EVICT, .ino = inode->i_ino };
	int err;

	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
	if (zuf_server_dead(sbi->srv))
		return;
	/*
	 * An unlinked inode: no name hands it out again, so its release rides with the next call
	 * instead of costing a round trip of its own (an unlink's second). Inodes with names are
	 * released now: a LOOKUP on another CPU may hand the same one out again at any moment.
	 */
	if (!inode->i_nlink && zuf_evict_later(sbi, inode->i_ino))
		return;
	err = zuf_dispatch(sbi, &op);
	if (err && err != -EIO)
		pr_warn_ratelimited("evict of inode %lu: %d\n", inode->i_ino, err);
}

static const char *zuf_get_link(struct dentry *dentry, struct inode *inode,
				struct delayed_call *done)
{
	struct zuf_io io = { .server_writes = true };
	struct zuf_call op = { .op = ZUF_OP_READLINK, .ino = inode->i_ino, .len = PAGE_SIZE - 1,
			     .io = &io };
	char *target;
	int err;

	if (!dentry)
		return ERR_PTR(-ECHILD);
	err = zuf_io_alloc_kernel(&io, PAGE_SIZE);
	if (err)
		return ERR_PTR(err);
	err = zuf_dispatch(ZUF_SB(inode->i_sb), &op);
	if (!err && (op.out_len == 0 || op.out_len >= PAGE_SIZE ||
		     memchr(page_address(io.pages[0]), '\0', op.out_len)))
		err = -EIO;
	if (err) {
		target = ERR_PTR(err);
		goto out;
	}
	target = kmemdup_nul(page_address(io.pages[0]), op.out_len, GFP_KERNEL);
	if (!target) {
		target = ERR_PTR(-ENOMEM);
		goto out;
	}
	set_delayed_call(done, kfree_link, target);
out:
	zuf_io_free_kernel(&io);
	return target;
}

const struct inode_operations zuf_file_iops = {
	.getattr	= zuf_getattr,
	.setattr	= zuf_setattr,
	.update_time	= zuf_update_time,
	.listxattr	= zuf_listxattr,
	.get_acl	= zuf_get_acl,
	.set_acl	= zuf_set_acl,
	.fiemap		= zuf_fiemap,
	.fileattr_get	= zuf_fileattr_get,
	.fileattr_set	= zuf_fileattr_set,
};

const struct inode_operations zuf_special_iops = {
	.getattr	= zuf_getattr,
	.setattr	= zuf_setattr,
	.update_time	= zuf_update_time,
	.listxattr	= zuf_listxattr,
	.get_acl	= zuf_get_acl,
	.set_acl	= zuf_set_acl,
};

const struct inode_operations zuf_symlink_iops = {
	.get_link	= zuf_get_link,
	.getattr	= zuf_getattr,
	.setattr	= zuf_setattr,
	.update_time	= zuf_update_time,
	.listxattr	= zuf_listxattr,
};
