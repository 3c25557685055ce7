// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-acl.c - POSIX ACLs. The server keeps them as the xattrs system.posix_acl_access and
 * system.posix_acl_default, in the kernel's xattr format; the kernel parses them, caches them
 * in the inode, checks permissions with them, and applies the rules that tie an ACL to the
 * file mode: a new inode's mode and ACLs from its directory's default ACL (posix_acl_create,
 * which also applies the umask once SB_POSIXACL is set), the mode an access ACL implies, and
 * chmod's effect on the access ACL.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/slab.h>
#include <linux/xattr.h>
#include "zuf.h"

static void zuf_acl_name(int type, struct qstr *q)
{
	const char *name = type == ACL_TYPE_ACCESS ? XATTR_NAME_POSIX_ACL_ACCESS :
						     XATTR_NAME_POSIX_ACL_DEFAULT;

	*q = (struct qstr)QSTR_INIT(name, strlen(name));
}

struct posix_acl *zuf_get_acl(struct inode *inode, int type, bool rcu)
{
	struct posix_acl *acl;
	struct qstr q;
	ssize_t size;
	void *buf;

	if (rcu)
		return ERR_PTR(-ECHILD);
	zuf_acl_name(type, &q);
	size = zuf_xattr_fetch(inode, ZUF_OP_GETXATTR, &q, NULL, 0);
	if (size == -ENODATA)
		return NULL;
	if (size < 0)
		return ERR_PTR(size);
	buf = kmalloc(size ? size : 1, GFP_KERNEL);
	if (!buf)
		return ERR_PTR(-ENOMEM);
	/* a value that grew since the size probe: -ERANGE, as getxattr(2) says */
	size = zuf_xattr_fetch(inode, ZUF_OP_GETXATTR, &q, buf, size);
	if (size == -ENODATA)
		acl = NULL;
	else if (size < 0)
		acl = ERR_PTR(size);
	else
		acl = posix_acl_from_xattr(&init_user_ns, buf, size);
	kfree(buf);
	if (IS_ERR(acl) && PTR_ERR(acl) == -EINVAL) {
		pr_warn_ratelimited("inode %lu: the server holds a malformed ACL\n", inode->i_ino);
		acl = ERR_PTR(-EIO);
	}
	return acl;
}

/* Store @acl (NULL: remove it) on the server; the caller updates the cache. */
static int zuf_store_acl(struct inode *inode, struct posix_acl *acl, int type)
{
	struct qstr q;
	void *value = NULL;
	int size = 0;
	int err;

	zuf_acl_name(type, &q);
	if (acl) {
		size = posix_acl_xattr_size(acl->a_count);
		value = kmalloc(size, GFP_KERNEL);
		if (!value)
			return -ENOMEM;
		err = posix_acl_to_xattr(&init_user_ns, acl, value, size);
		if (err < 0)
			goto out;
	}
	err = zuf_xattr_store(inode, &q, value, size, 0);
	if (!acl && err == -ENODATA)
		err = 0;
out:
	kfree(value);
	return err;
}

int zuf_set_acl(struct user_namespace *mnt_userns, struct inode *inode, struct posix_acl *acl,
		int type)
{
	umode_t mode = inode->i_mode;
	int err;

	if (type == ACL_TYPE_ACCESS && acl) {
		err = posix_acl_update_mode(mnt_userns, inode, &mode, &acl);
		if (err)
			return err;
	}
	err = zuf_store_acl(inode, acl, type);
	if (!err && mode != inode->i_mode) {
		/* the server stamps ctime, with the clock of its other stamps */
		struct zuf_setattr set = { .valid = ZUF_SET_MODE, .mode = mode & 07777 };
		struct zuf_call op = { .op = ZUF_OP_SETATTR, .ino = inode->i_ino, .set = &set };

		err = zuf_attr_call(inode, &op);
		zuf_attr_stale(inode);
	}
	if (!err)
		set_cached_acl(inode, type, acl);
	return err;
}

/* Before a create in @dir: the mode the new inode gets, and the ACLs it is to inherit. */
int zuf_acl_prepare(struct inode *dir, umode_t *mode, struct posix_acl **default_acl,
		    struct posix_acl **acl)
{
	return posix_acl_create(dir, mode, default_acl, acl);
}

/* After the create: store what zuf_acl_prepare gave (and release it). */
int zuf_acl_init(struct inode *inode, struct posix_acl *default_acl, struct posix_acl *acl)
{
	int err = 0;

	if (default_acl) {
		err = zuf_store_acl(inode, default_acl, ACL_TYPE_DEFAULT);
		if (!err)
			set_cached_acl(inode, ACL_TYPE_DEFAULT, default_acl);
		posix_acl_release(default_acl);
	}
	if (acl) {
		if (!err)
			err = zuf_store_acl(inode, acl, ACL_TYPE_ACCESS);
		if (!err)
			set_cached_acl(inode, ACL_TYPE_ACCESS, acl);
		posix_acl_release(acl);
	}
	return err;
}
