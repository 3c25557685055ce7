// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-fiemap.c - FIEMAP: where a file's data lives on the PM device. The server writes
 * struct zuf_extent records (whole extents, in file order, from the one holding the asked
 * offset on) into a kernel page mapped in the window; each record is checked before it
 * reaches fiemap_fill_next_extent, and the kernel keeps asking from the end of the last one
 * until the range is covered, the server marks the file's last extent, or the user's buffer
 * is full.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/fiemap.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include "zuf.h"

#define ZUF_FIEMAP_BYTES	PAGE_SIZE

/*
 * Report the records of one reply that reach into [*pos, end); only the first may start
 * before *pos (the extent holding it), and none may overlap the one before. Returns 1 when done (the
 * last extent, the end of the range, or the user's buffer full), 0 to ask again from *pos,
 * or -errno (-EIO for a record that cannot be true).
 */
static int zuf_fiemap_batch(struct zuf_sb_info *sbi, struct fiemap_extent_info *fieinfo,
			    const struct zuf_extent *ext, size_t n, u64 *pos, u64 end)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct zuf_extent *e = &ext[i];
		u32 flags = 0;
		int ret;

		if (!e->length || !IS_ALIGNED(e->logical | e->physical | e->length, PAGE_SIZE) ||
		    e->logical + e->length < e->logical || e->logical + e->length <= *pos ||
		    (i && e->logical < *pos) ||
		    e->physical >= sbi->dev_size || e->length > sbi->dev_size - e->physical ||
		    (e->flags & ~ZUF_EXTENT_LAST))
			return -EIO;
		if (e->logical >= end)
			return 1;
		if (e->flags & ZUF_EXTENT_LAST)
			flags |= FIEMAP_EXTENT_LAST;
		ret = fiemap_fill_next_extent(fieinfo, e->logical, e->physical, e->length, flags);
		if (ret)
			return ret < 0 ? ret : 1;
		*pos = e->logical + e->length;
		if (flags & FIEMAP_EXTENT_LAST)
			return 1;
	}
	return 0;
}

int zuf_fiemap(struct inode *inode, struct fiemap_extent_info *fieinfo, u64 start, u64 len)
{
	struct zuf_sb_info *sbi = ZUF_SB(inode->i_sb);
	struct zuf_io io = { .server_writes = true };
	u64 end;
	int err;

	err = fiemap_prep(inode, fieinfo, start, &len, 0);
	if (err)
		return err;
	end = start + len < start ? U64_MAX : start + len;
	err = zuf_io_alloc_kernel(&io, ZUF_FIEMAP_BYTES);
	if (err)
		return err;
	while (start < end) {
		struct zuf_call op = { .op = ZUF_OP_FIEMAP, .ino = inode->i_ino, .offset = start,
				     .len = ZUF_FIEMAP_BYTES, .io = &io };
		u64 before = start;

		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		err = zuf_dispatch(sbi, &op);
		if (err)
			break;
		if (op.out_len > ZUF_FIEMAP_BYTES || op.out_len % sizeof(struct zuf_extent)) {
			err = -EIO;
			break;
		}
		if (!op.out_len)
			break;		/* no data from start on */
		/* the records are in one kernel page; the server cannot change them now */
		err = zuf_fiemap_batch(sbi, fieinfo, page_address(io.pages[0]),
				       op.out_len / sizeof(struct zuf_extent), &start, end);
		if (err)
			break;
		if (start <= before) {
			err = -EIO;	/* no progress: a looping server */
			break;
		}
	}
	zuf_io_free_kernel(&io);
	if (err == -EIO)
		pr_warn_ratelimited("bad fiemap reply for inode %lu\n", inode->i_ino);
	return err < 0 ? err : 0;
}
