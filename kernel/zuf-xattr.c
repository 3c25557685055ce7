// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-xattr.c - extended attributes of the user., trusted. and security. namespaces: the
 * server stores them under their full names; values and name lists travel through kernel
 * pages mapped in the window. The system.posix_acl_* names go through the VFS's ACL
 * handlers to zuf-acl.c, which stores them the same way.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/xattr.h>
#include <linux/posix_acl_xattr.h>
#include "zuf.h"

/* Copy @len bytes out of (to_pages false: into) the io pages. */
static void zuf_io_memcpy(struct zuf_io *io, void *buf, size_t len, bool to_pages)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < io->nr_pages && done < len; i++) {
		size_t n = min_t(size_t, PAGE_SIZE, len - done);

		if (to_pages)
			memcpy(page_address(io->pages[i]), buf + done, n);
		else
			memcpy(buf + done, page_address(io->pages[i]), n);
		done += n;
	}
}

static int zuf_xattr_name(const struct xattr_handler *h, const char *name, char *full,
			  struct qstr *q)
{
	int len = snprintf(full, XATTR_NAME_MAX + 1, "%s%s", h->prefix, name);

	if (len > XATTR_NAME_MAX || len >= ZUF_NAME_MAX)
		return -ERANGE;
	q->name = full;
	q->len = len;
	return 0;
}

/* GETXATTR or LISTXATTR into @buf of @size (0: only ask how much). */
ssize_t zuf_xattr_fetch(struct inode *inode, u32 opcode, const struct qstr *name,
			       void *buf, size_t size)
{
	struct zuf_io io = { .server_writes = true };
	struct zuf_call op = { .op = opcode, .ino = inode->i_ino, .name = name };
	ssize_t err;

	size = min_t(size_t, size, XATTR_SIZE_MAX);
	if (size) {
		err = zuf_io_alloc_kernel(&io, size);
		if (err)
			return err;
		op.io = &io;
		op.len = size;
	}
	err = zuf_dispatch(ZUF_SB(inode->i_sb), &op);
	if (!err && (op.out_len > XATTR_SIZE_MAX || (size && op.out_len > size)))
		err = -EIO;
	if (!err) {
		if (size)
			zuf_io_memcpy(&io, buf, op.out_len, false);
		err = op.out_len;
	}
	if (size)
		zuf_io_free_kernel(&io);
	return err;
}

static int zuf_xattr_get(const struct xattr_handler *h, struct dentry *dentry,
			 struct inode *inode, const char *name, void *buf, size_t size)
{
	char *full;
	struct qstr q;
	int err;

	full = kmalloc(XATTR_NAME_MAX + 1, GFP_KERNEL);
	if (!full)
		return -ENOMEM;
	err = zuf_xattr_name(h, name, full, &q);
	if (!err)
		err = zuf_xattr_fetch(inode, ZUF_OP_GETXATTR, &q, buf, size);
	kfree(full);
	return err;
}

/* SETXATTR of @value (@size bytes) under the full name @q, or REMOVEXATTR when @value is NULL. */
int zuf_xattr_store(struct inode *inode, const struct qstr *q, const void *value, size_t size,
		    int flags)
{
	struct zuf_io io = { .server_writes = false };
	struct zuf_call op = { .ino = inode->i_ino, .flags = flags, .name = q };
	int err;

	if (size > XATTR_SIZE_MAX)
		return -E2BIG;
	if (!value) {
		op.op = ZUF_OP_REMOVEXATTR;
	} else {
		op.op = ZUF_OP_SETXATTR;
		op.len = size;
		if (size) {
			err = zuf_io_alloc_kernel(&io, size);
			if (err)
				return err;
			zuf_io_memcpy(&io, (void *)value, size, true);
			op.io = &io;
		}
	}
	err = zuf_dispatch(ZUF_SB(inode->i_sb), &op);
	if (op.io)
		zuf_io_free_kernel(&io);
	if (!err)
		inode->i_ctime = current_time(inode);
	zuf_attr_stale(inode);	/* after the local ctime: the server's is the one to show */
	return err;
}

static int zuf_xattr_set(const struct xattr_handler *h, struct user_namespace *mnt_userns,
			 struct dentry *dentry, struct inode *inode, const char *name,
			 const void *value, size_t size, int flags)
{
	struct qstr q;
	char *full;
	int err;

	if (size > XATTR_SIZE_MAX)
		return -E2BIG;
	full = kmalloc(XATTR_NAME_MAX + 1, GFP_KERNEL);
	if (!full)
		return -ENOMEM;
	err = zuf_xattr_name(h, name, full, &q);
	if (!err)
		err = zuf_xattr_store(inode, &q, value, size, flags);
	kfree(full);
	return err;
}

ssize_t zuf_listxattr(struct dentry *dentry, char *buf, size_t size)
{
	return zuf_xattr_fetch(d_inode(dentry), ZUF_OP_LISTXATTR, NULL, buf, size);
}

static bool zuf_trusted_list(struct dentry *dentry)
{
	return capable(CAP_SYS_ADMIN);
}

static const struct xattr_handler zuf_user_xattr = {
	.prefix	= XATTR_USER_PREFIX,
	.get	= zuf_xattr_get,
	.set	= zuf_xattr_set,
};

static const struct xattr_handler zuf_trusted_xattr = {
	.prefix	= XATTR_TRUSTED_PREFIX,
	.list	= zuf_trusted_list,
	.get	= zuf_xattr_get,
	.set	= zuf_xattr_set,
};

static const struct xattr_handler zuf_security_xattr = {
	.prefix	= XATTR_SECURITY_PREFIX,
	.get	= zuf_xattr_get,
	.set	= zuf_xattr_set,
};

const struct xattr_handler *zuf_xattr_handlers[] = {
	&posix_acl_access_xattr_handler,
	&posix_acl_default_xattr_handler,
	&zuf_user_xattr,
	&zuf_trusted_xattr,
	&zuf_security_xattr,
	NULL,
};
