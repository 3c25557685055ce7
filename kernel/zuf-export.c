// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-export.c - file handles (name_to_handle_at, open_by_handle_at, NFS export). A handle
 * holds the inode number (64 bits) and generation, and the parent's when asked for. Opening
 * one asks the server for that inode: a number it no longer uses or has given to a newer inode
 * (another generation) is ESTALE, never another file. An unlinked file still open is still
 * there (the kernel holds it), as on a local filesystem.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/exportfs.h>
#include <linux/fs.h>
#include "zuf.h"

/* Handle types: what newer kernels call FILEID_INO64_GEN and FILEID_INO64_GEN_PARENT. */
#define ZUF_FILEID		0x81
#define ZUF_FILEID_PARENT	0x82
#define ZUF_FH_WORDS		3	/* inode number low and high, generation */

static int zuf_encode_fh(struct inode *inode, __u32 *fh, int *max_len, struct inode *parent)
{
	int len = parent ? 2 * ZUF_FH_WORDS : ZUF_FH_WORDS;

	if (*max_len < len) {
		*max_len = len;
		return FILEID_INVALID;
	}
	fh[0] = lower_32_bits(inode->i_ino);
	fh[1] = upper_32_bits(inode->i_ino);
	fh[2] = inode->i_generation;
	if (parent) {
		fh[3] = lower_32_bits(parent->i_ino);
		fh[4] = upper_32_bits(parent->i_ino);
		fh[5] = parent->i_generation;
	}
	*max_len = len;
	return parent ? ZUF_FILEID_PARENT : ZUF_FILEID;
}

/* The dentry of the inode that the three words at @fh name, or ESTALE. */
static struct dentry *zuf_fh_dentry(struct super_block *sb, const __u32 *fh)
{
	u64 ino = fh[0] | (u64)fh[1] << 32;
	struct zuf_call op = { .op = ZUF_OP_GETATTR, .ino = ino };
	struct inode *inode;
	int err;

	if (!ino)
		return ERR_PTR(-ESTALE);
	inode = ilookup(sb, ino);
	if (!inode) {
		err = zuf_dispatch(ZUF_SB(sb), &op);
		if (err == -ENOENT || err == -EINVAL)	/* a number the server does not use */
			return ERR_PTR(-ESTALE);
		if (!err)
			err = zuf_check_attr(&op.attr, ino);
		if (err)
			return ERR_PTR(err);
		/*
		 * Unlinked, and the kernel no longer holds it: its release may be queued for the
		 * next call (zuf_evict_later), so the server could free it under a new inode.
		 */
		if (!op.attr.nlink)
			return ERR_PTR(-ESTALE);
		inode = zuf_iget(sb, &op.attr, false);
		if (IS_ERR(inode))
			return ERR_CAST(inode);
	}
	if (inode->i_generation != fh[2]) {
		iput(inode);
		return ERR_PTR(-ESTALE);
	}
	return d_obtain_alias(inode);
}

static struct dentry *zuf_fh_to_dentry(struct super_block *sb, struct fid *fid, int fh_len,
				       int fh_type)
{
	if ((fh_type != ZUF_FILEID && fh_type != ZUF_FILEID_PARENT) || fh_len < ZUF_FH_WORDS)
		return NULL;
	return zuf_fh_dentry(sb, fid->raw);
}

static struct dentry *zuf_fh_to_parent(struct super_block *sb, struct fid *fid, int fh_len,
				       int fh_type)
{
	if (fh_type != ZUF_FILEID_PARENT || fh_len < 2 * ZUF_FH_WORDS)
		return NULL;
	return zuf_fh_dentry(sb, fid->raw + ZUF_FH_WORDS);
}

/* A directory's parent: LOOKUP of "..". */
static struct dentry *zuf_get_parent(struct dentry *child)
{
	static const struct qstr dotdot = QSTR_INIT("..", 2);
	struct inode *dir = d_inode(child);
	struct zuf_call op = { .op = ZUF_OP_LOOKUP, .ino = dir->i_ino, .name = &dotdot };
	struct inode *inode;
	int err;

	err = zuf_dispatch(ZUF_SB(dir->i_sb), &op);
	if (!err)
		err = zuf_check_attr(&op.attr, 0);
	if (!err && !S_ISDIR(op.attr.mode))
		err = -EIO;
	if (err)
		return ERR_PTR(err);
	inode = zuf_iget(dir->i_sb, &op.attr, false);
	if (IS_ERR(inode))
		return ERR_CAST(inode);
	return d_obtain_alias(inode);
}

const struct export_operations zuf_export_ops = {
	.encode_fh	= zuf_encode_fh,
	.fh_to_dentry	= zuf_fh_to_dentry,
	.fh_to_parent	= zuf_fh_to_parent,
	.get_parent	= zuf_get_parent,
};
