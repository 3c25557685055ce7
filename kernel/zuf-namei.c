// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-namei.c - directory inode operations: VFS glue only. Every name operation is one
 * request to the server; the reply's attributes are checked and the dcache is updated.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/slab.h>
#include <linux/posix_acl.h>
#include "zuf.h"

/*
 * Link counts the kernel adjusts itself: never below zero, and never from the server's
 * U32_MAX up to zero (that would pass 0 without the superblock's s_remove_count knowing,
 * and destroying the inode would underflow it), whatever the server said. Under i_lock, as
 * zuf_apply_attr's set_nlink: a GETATTR or lookup reply applied without the inode lock can
 * set the count to 0 between the test and drop_nlink (seen in generic/011: WARNING in
 * drop_nlink from zuf_unlink).
 */
static void zuf_drop_nlink(struct inode *inode)
{
	spin_lock(&inode->i_lock);
	if (inode->i_nlink)
		drop_nlink(inode);
	spin_unlock(&inode->i_lock);
}

static void zuf_inc_nlink(struct inode *inode)
{
	spin_lock(&inode->i_lock);
	if (inode->i_nlink && inode->i_nlink < U32_MAX)
		inc_nlink(inode);
	spin_unlock(&inode->i_lock);
}

static void zuf_clear_nlink(struct inode *inode)
{
	spin_lock(&inode->i_lock);
	clear_nlink(inode);
	spin_unlock(&inode->i_lock);
}

static struct dentry *zuf_lookup(struct inode *dir, struct dentry *dentry, unsigned int flags)
{
	struct zuf_call op = { .op = ZUF_OP_LOOKUP, .ino = dir->i_ino, .name = &dentry->d_name };
	struct inode *inode = NULL;
	int err;

	/*
	 * A rename's target: RENAME itself finds and replaces what the name holds, and its reply
	 * says what that was (zuf_rename_names), so a LOOKUP first would be a second round trip.
	 * The dentry stays negative and unhashed; the rename's d_move puts the renamed one in its
	 * place (NFS does the same). Not in a sticky directory: there the VFS must see the target
	 * to check who may replace it (may_delete); what else it checks on a target the server
	 * checks itself (type, emptiness, immutable and append-only flags), and a mount point or
	 * swap file is always in the dcache.
	 */
	if ((flags & LOOKUP_RENAME_TARGET) && !(dir->i_mode & S_ISVTX))
		return NULL;
	err = zuf_dispatch(ZUF_SB(dir->i_sb), &op);
	if (err == -ENOENT)
		return d_splice_alias(NULL, dentry);
	if (err)
		return ERR_PTR(err);
	err = zuf_check_attr(&op.attr, 0);
	if (err)
		return ERR_PTR(err);
	if (op.attr.ino == dir->i_ino) {
		pr_warn_ratelimited("lookup in %lu returned the directory itself\n", dir->i_ino);
		return ERR_PTR(-EIO);
	}
	inode = zuf_iget(dir->i_sb, &op.attr, false);
	if (IS_ERR(inode))
		return ERR_CAST(inode);
	return d_splice_alias(inode, dentry);
}

/*
 * Create @dentry in @dir: MKNOD, MKDIR or SYMLINK (@target in the window); or, with @tmp,
 * TMPFILE: a regular file no directory names, opened as @tmp.
 */
static int zuf_new_inode(struct user_namespace *mnt_userns, struct inode *dir,
			 struct dentry *dentry, u32 opcode, umode_t mode, dev_t rdev,
			 const char *target, struct file *tmp)
{
	struct zuf_io io = { .server_writes = false };
	struct zuf_call op = { .op = opcode, .ino = dir->i_ino,
			     .name = tmp ? NULL : &dentry->d_name, .rdev = new_encode_dev(rdev),
			     .owner_ns = mnt_userns };
	struct posix_acl *default_acl = NULL, *acl = NULL;
	struct inode *inode;
	int err;

	/* the directory's default ACL (or the umask) decides the mode */
	err = zuf_acl_prepare(dir, &mode, &default_acl, &acl);
	if (err)
		return err;
	op.mode = mode;
	if (target) {
		size_t len = strlen(target);

		err = -ENAMETOOLONG;
		if (len >= PAGE_SIZE)
			goto out_acl;
		err = zuf_io_alloc_kernel(&io, PAGE_SIZE);
		if (err)
			goto out_acl;
		memcpy(page_address(io.pages[0]), target, len);
		op.len = len;
		op.io = &io;
	}
	err = zuf_dispatch(ZUF_SB(dir->i_sb), &op);
	if (target)
		zuf_io_free_kernel(&io);
	if (err)
		goto out_acl;
	err = zuf_check_attr(&op.attr, 0);
	if (err)
		goto out_acl;
	if (op.attr.ino == dir->i_ino || (op.attr.mode & S_IFMT) != (mode & S_IFMT)) {
		pr_warn_ratelimited("bad reply to a create in %lu\n", dir->i_ino);
		err = -EIO;
		goto out_acl;
	}
	if (tmp && op.attr.nlink != 0) {
		pr_warn_ratelimited("server named a tmpfile in %lu\n", dir->i_ino);
		err = -EIO;
		goto out_acl;
	}
	inode = zuf_iget(dir->i_sb, &op.attr, true);
	if (IS_ERR(inode)) {
		err = PTR_ERR(inode);
		goto out_acl;
	}
	if (S_ISDIR(mode))
		zuf_inc_nlink(dir);
	/*
	 * The inherited ACLs follow the create: a crash between the two leaves the new inode
	 * with its mode (already narrowed by the ACL's mask) and without the ACL entries.
	 */
	err = zuf_acl_init(inode, default_acl, acl);
	if (tmp) {
		/* d_tmpfile takes the one link a new inode has; the server's count is 0 */
		spin_lock(&inode->i_lock);
		set_nlink(inode, 1);
		spin_unlock(&inode->i_lock);
		zuf_attr_stale(inode);	/* getattr shows the server's count */
		d_tmpfile(tmp, inode);
		return err ? err : finish_open_simple(tmp, 0);
	}
	d_instantiate(dentry, inode);
	return err;

out_acl:
	posix_acl_release(default_acl);
	posix_acl_release(acl);
	return err;
}

/* zuf_new_inode, then @dir's attributes (size, times, a new subdirectory's link) are stale. */
static int zuf_new(struct user_namespace *mnt_userns, struct inode *dir, struct dentry *dentry,
		   u32 opcode, umode_t mode, dev_t rdev, const char *target, struct file *tmp)
{
	int err = zuf_new_inode(mnt_userns, dir, dentry, opcode, mode, rdev, target, tmp);

	/* last, after the local link count change: a GETATTR before it is not kept */
	zuf_attr_stale(dir);
	return err;
}

static int zuf_create(struct user_namespace *mnt_userns, struct inode *dir,
		      struct dentry *dentry, umode_t mode, bool excl)
{
	return zuf_new(mnt_userns, dir, dentry, ZUF_OP_MKNOD, (mode & 07777) | S_IFREG, 0, NULL,
		       NULL);
}

/*
 * open(O_CREAT) of a name the dentry cache does not know: one CREATE finds what the name holds
 * or makes a regular file, where LOOKUP then MKNOD would take two round trips. The VFS checked
 * the directory (may_o_create) before calling; it dropped O_CREAT where the caller may not
 * create, and then this is a plain lookup.
 */
static int zuf_create_open(struct inode *dir, struct dentry *dentry, struct file *file,
			   unsigned int flags, umode_t mode)
{
	struct zuf_call op = { .op = ZUF_OP_CREATE, .ino = dir->i_ino, .name = &dentry->d_name,
			     .flags = (flags & O_EXCL) ? ZUF_F_EXCL : 0,
			     .owner_ns = mnt_user_ns(file->f_path.mnt) };
	struct posix_acl *default_acl = NULL, *acl = NULL;
	struct dentry *res;
	struct inode *inode;
	bool created;
	int err;

	mode = (mode & 07777) | S_IFREG;
	err = zuf_acl_prepare(dir, &mode, &default_acl, &acl);
	if (err)
		return err;
	op.mode = mode;
	err = zuf_dispatch(ZUF_SB(dir->i_sb), &op);
	if (err)
		goto out_acl;
	err = zuf_check_attr(&op.attr, 0);
	if (err)
		goto out_acl;
	created = op.out_len == 1;
	if (op.out_len > 1 || op.attr.ino == dir->i_ino ||
	    (created && (op.attr.mode & S_IFMT) != S_IFREG)) {
		pr_warn_ratelimited("bad reply to a create in %lu\n", dir->i_ino);
		err = -EIO;
		goto out_acl;
	}
	inode = zuf_iget(dir->i_sb, &op.attr, created);
	if (IS_ERR(inode)) {
		err = PTR_ERR(inode);
		goto out_acl;
	}
	if (!created) {
		/* the name existed: the VFS opens it as after a lookup (EISDIR, O_TRUNC, ...) */
		posix_acl_release(default_acl);
		posix_acl_release(acl);
		res = d_splice_alias(inode, dentry);
		if (IS_ERR(res))
			return PTR_ERR(res);
		return finish_no_open(file, res);
	}
	/* the ACLs follow the create, as in zuf_new_inode */
	err = zuf_acl_init(inode, default_acl, acl);
	zuf_attr_stale(dir);
	res = d_splice_alias(inode, dentry);
	if (IS_ERR(res))
		return PTR_ERR(res);
	if (res) {
		/* a new regular file has no other alias: the server gave an inode in use */
		dput(res);
		return -EIO;
	}
	if (err)
		return err;
	file->f_mode |= FMODE_CREATED;
	return finish_open(file, dentry, NULL);

out_acl:
	posix_acl_release(default_acl);
	posix_acl_release(acl);
	return err;
}

static int zuf_atomic_open(struct inode *dir, struct dentry *dentry, struct file *file,
			   unsigned int flags, umode_t mode)
{
	struct dentry *res = NULL;
	int err;

	if ((flags & O_CREAT) && d_in_lookup(dentry))
		return zuf_create_open(dir, dentry, file, flags, mode);
	if (d_in_lookup(dentry)) {
		res = zuf_lookup(dir, dentry, 0);
		if (IS_ERR(res))
			return PTR_ERR(res);
	} else if (flags & O_CREAT) {
		/* a cached negative dentry: the name is free, as the VFS's ->create would see it */
		err = zuf_create(mnt_user_ns(file->f_path.mnt), dir, dentry, mode, flags & O_EXCL);
		if (err)
			return err;
		file->f_mode |= FMODE_CREATED;
		return finish_open(file, dentry, NULL);
	}
	return finish_no_open(file, res);
}

/* O_TMPFILE; linkat(2) may name it later (the VFS marks it I_LINKABLE, zuf_link links it). */
static int zuf_tmpfile(struct user_namespace *mnt_userns, struct inode *dir,
		       struct file *file, umode_t mode)
{
	return zuf_new(mnt_userns, dir, file->f_path.dentry, ZUF_OP_TMPFILE,
		       (mode & 07777) | S_IFREG, 0, NULL, file);
}

static int zuf_mknod(struct user_namespace *mnt_userns, struct inode *dir,
		     struct dentry *dentry, umode_t mode, dev_t rdev)
{
	if (S_ISDIR(mode) || S_ISLNK(mode))
		return -EINVAL;
	return zuf_new(mnt_userns, dir, dentry, ZUF_OP_MKNOD, mode, rdev, NULL, NULL);
}

static int zuf_mkdir(struct user_namespace *mnt_userns, struct inode *dir,
		     struct dentry *dentry, umode_t mode)
{
	return zuf_new(mnt_userns, dir, dentry, ZUF_OP_MKDIR, (mode & 07777) | S_IFDIR, 0, NULL,
		       NULL);
}

static int zuf_symlink(struct user_namespace *mnt_userns, struct inode *dir,
		       struct dentry *dentry, const char *target)
{
	return zuf_new(mnt_userns, dir, dentry, ZUF_OP_SYMLINK, S_IFLNK | 0777, 0, target, NULL);
}

static int zuf_link(struct dentry *old_dentry, struct inode *dir, struct dentry *dentry)
{
	struct inode *inode = d_inode(old_dentry);
	struct zuf_call op = { .op = ZUF_OP_LINK, .ino = inode->i_ino, .ino2 = dir->i_ino,
			     .name = &dentry->d_name };
	int err;

	err = zuf_dispatch(ZUF_SB(dir->i_sb), &op);
	zuf_attr_stale(dir);
	zuf_attr_stale(inode);
	if (err)
		return err;
	if (!zuf_apply_reply_attr(inode, &op.attr))
		zuf_inc_nlink(inode);
	zuf_attr_stale(inode);
	ihold(inode);
	d_instantiate(dentry, inode);
	return 0;
}

static int zuf_unlink(struct inode *dir, struct dentry *dentry)
{
	struct inode *inode = d_inode(dentry);
	struct zuf_call op = { .op = ZUF_OP_UNLINK, .ino = dir->i_ino, .name = &dentry->d_name };
	int err;

	err = zuf_dispatch(ZUF_SB(dir->i_sb), &op);
	zuf_attr_stale(dir);
	zuf_attr_stale(inode);
	if (err)
		return err;
	inode->i_ctime = current_time(inode);
	zuf_drop_nlink(inode);
	zuf_attr_stale(inode);
	return 0;
}

static int zuf_rmdir(struct inode *dir, struct dentry *dentry)
{
	struct inode *inode = d_inode(dentry);
	struct zuf_call op = { .op = ZUF_OP_RMDIR, .ino = dir->i_ino, .name = &dentry->d_name };
	int err;

	err = zuf_dispatch(ZUF_SB(dir->i_sb), &op);
	zuf_attr_stale(dir);
	zuf_attr_stale(inode);
	if (err)
		return err;
	zuf_clear_nlink(inode);
	zuf_drop_nlink(dir);
	zuf_attr_stale(inode);
	zuf_attr_stale(dir);
	return 0;
}

/*
 * A rename replaced an inode the kernel had not looked up under that name (zuf_lookup skips
 * a rename's target): if the kernel caches it under another name, take the link count the
 * server reports. Not an inode whose counts the caller adjusts itself.
 */
static void zuf_replaced_unseen(struct inode *old_dir, struct inode *new_dir,
				struct inode *moved, const struct zuf_attr *attr)
{
	struct inode *victim;

	if (zuf_check_attr(attr, 0) || attr->ino == old_dir->i_ino ||
	    attr->ino == new_dir->i_ino || attr->ino == moved->i_ino) {
		pr_warn_ratelimited("bad replaced inode %llu in a rename's reply\n", attr->ino);
		return;
	}
	victim = ilookup(old_dir->i_sb, attr->ino);
	if (!victim)
		return;
	zuf_apply_reply_attr(victim, attr);
	iput(victim);
}

static int zuf_rename_names(struct inode *old_dir, struct dentry *old_dentry,
			    struct inode *new_dir, struct dentry *new_dentry, unsigned int flags)
{
	struct inode *old_inode = d_inode(old_dentry);
	struct inode *new_inode = d_inode(new_dentry);
	struct zuf_call op = { .op = ZUF_OP_RENAME, .ino = old_dir->i_ino,
			     .name = &old_dentry->d_name, .ino2 = new_dir->i_ino,
			     .name2 = &new_dentry->d_name };
	int err;

	/* the VFS checked the combinations and CAP_MKNOD for a whiteout */
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
		return -EINVAL;
	if (flags & RENAME_NOREPLACE)
		op.flags |= ZUF_F_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		op.flags |= ZUF_F_RENAME_EXCHANGE;
	/* the server leaves a 0:0 character device at the old name; no dentry names it yet */
	if (flags & RENAME_WHITEOUT)
		op.flags |= ZUF_F_RENAME_WHITEOUT;
	err = zuf_dispatch(ZUF_SB(old_dir->i_sb), &op);
	if (err)
		return err;

	if (flags & RENAME_EXCHANGE) {
		if (old_dir != new_dir && S_ISDIR(old_inode->i_mode) !=
		    S_ISDIR(new_inode->i_mode)) {
			if (S_ISDIR(old_inode->i_mode)) {
				zuf_drop_nlink(old_dir);
				zuf_inc_nlink(new_dir);
			} else {
				zuf_drop_nlink(new_dir);
				zuf_inc_nlink(old_dir);
			}
		}
		return 0;
	}
	if (new_inode) {
		if (S_ISDIR(new_inode->i_mode))
			zuf_clear_nlink(new_inode);
		else
			zuf_drop_nlink(new_inode);
	} else if (op.attr.ino) {
		zuf_replaced_unseen(old_dir, new_dir, old_inode, &op.attr);
	}
	if (S_ISDIR(old_inode->i_mode)) {
		zuf_drop_nlink(old_dir);
		/* a directory that replaced one leaves new_dir's count as it was */
		if (!new_inode && !(op.attr.ino && S_ISDIR(op.attr.mode)))
			zuf_inc_nlink(new_dir);
	}
	return 0;
}

static int zuf_rename(struct user_namespace *mnt_userns, struct inode *old_dir,
		      struct dentry *old_dentry, struct inode *new_dir,
		      struct dentry *new_dentry, unsigned int flags)
{
	struct inode *old_inode = d_inode(old_dentry), *new_inode = d_inode(new_dentry);
	int err = zuf_rename_names(old_dir, old_dentry, new_dir, new_dentry, flags);

	/* last, after the local link count changes: a GETATTR before them is not kept */
	zuf_attr_stale(old_dir);
	zuf_attr_stale(new_dir);
	zuf_attr_stale(old_inode);
	zuf_attr_stale(new_inode);
	return err;
}

const struct inode_operations zuf_dir_iops = {
	.lookup		= zuf_lookup,
	.create		= zuf_create,
	.atomic_open	= zuf_atomic_open,
	.mknod		= zuf_mknod,
	.mkdir		= zuf_mkdir,
	.symlink	= zuf_symlink,
	.link		= zuf_link,
	.tmpfile	= zuf_tmpfile,
	.unlink		= zuf_unlink,
	.rmdir		= zuf_rmdir,
	.rename		= zuf_rename,
	.getattr	= zuf_getattr,
	.setattr	= zuf_setattr,
	.update_time	= zuf_update_time,
	.listxattr	= zuf_listxattr,
	.get_acl	= zuf_get_acl,
	.set_acl	= zuf_set_acl,
	.fileattr_get	= zuf_fileattr_get,
	.fileattr_set	= zuf_fileattr_set,
};
