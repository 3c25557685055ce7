// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-dir.c - readdir: the server writes struct zuf_dirent records into kernel pages mapped
 * in the window; each record is checked before it reaches dir_emit. The position is the
 * server's opaque cookie (next_offset).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include "zuf.h"

#define ZUF_READDIR_BYTES	PAGE_SIZE

/* Emit the records of one batch; returns 0, 1 when the caller's buffer is full, or -EIO. */
static int zuf_emit_batch(struct dir_context *ctx, const char *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const struct zuf_dirent *de = (const void *)(buf + pos);
		const char *name = (const char *)(de + 1);
		size_t reclen;

		if (len - pos < sizeof(*de))
			return -EIO;
		reclen = de->reclen;
		if (reclen < sizeof(*de) + de->name_len || reclen > len - pos ||
		    !IS_ALIGNED(reclen, 8) || !de->name_len || !de->ino ||
		    memchr(name, '/', de->name_len) || memchr(name, '\0', de->name_len))
			return -EIO;
		if (!dir_emit(ctx, name, de->name_len, de->ino, de->type & 15))
			return 1;
		ctx->pos = de->next_offset;
		pos += reclen;
	}
	return 0;
}

static int zuf_iterate(struct file *file, struct dir_context *ctx)
{
	struct inode *dir = file_inode(file);
	struct zuf_io io = { .server_writes = true };
	int err;

	err = zuf_io_alloc_kernel(&io, ZUF_READDIR_BYTES);
	if (err)
		return err;
	for (;;) {
		struct zuf_call op = { .op = ZUF_OP_READDIR, .ino = dir->i_ino,
				     .offset = ctx->pos, .len = ZUF_READDIR_BYTES, .io = &io };
		loff_t before = ctx->pos;

		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		err = zuf_dispatch(ZUF_SB(dir->i_sb), &op);
		if (err)
			break;
		if (op.out_len > ZUF_READDIR_BYTES) {
			err = -EIO;
			break;
		}
		if (!op.out_len)
			break;		/* end of directory */
		/* the records are in one kernel page; the server cannot change them now */
		err = zuf_emit_batch(ctx, page_address(io.pages[0]), op.out_len);
		if (err)
			break;
		if (ctx->pos == before) {
			err = -EIO;	/* no progress: a looping server */
			break;
		}
		memset(page_address(io.pages[0]), 0, PAGE_SIZE);
	}
	zuf_io_free_kernel(&io);
	if (err == -EIO)
		pr_warn_ratelimited("bad readdir reply for directory %lu\n", dir->i_ino);
	return err < 0 ? err : 0;
}

static loff_t zuf_dir_llseek(struct file *file, loff_t offset, int whence)
{
	return generic_file_llseek_size(file, offset, whence, LLONG_MAX, LLONG_MAX);
}

static int zuf_dir_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	struct inode *dir = file_inode(file);
	struct zuf_call op = { .op = ZUF_OP_FSYNC, .ino = dir->i_ino,
			     .flags = datasync ? ZUF_F_DATASYNC : 0 };

	return zuf_dispatch(ZUF_SB(dir->i_sb), &op);
}

const struct file_operations zuf_dir_fops = {
	.llseek		= zuf_dir_llseek,
	.read		= generic_read_dir,
	.iterate_shared	= zuf_iterate,
	.fsync		= zuf_dir_fsync,
	.unlocked_ioctl	= zuf_ioctl_file,
	.compat_ioctl	= compat_ptr_ioctl,
};
