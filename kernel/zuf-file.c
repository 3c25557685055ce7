// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-file.c - regular files. No page cache holds file data: buffered and O_DIRECT reads and
 * writes both go to the server, in chunks of at most the window. Up to 64 KiB are copied
 * through the channel's bounce pages (zuf.h); larger chunks map the application's pages
 * into the server's window (zero copy). Kernel-internal buffers (kernel_read, splice pipes)
 * are bounced through kernel pages. fsync, fallocate (punch hole unmaps first)
 * and llseek SEEK_DATA/SEEK_HOLE are server calls too.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/falloc.h>
#include <linux/mman.h>
#include <linux/pagemap.h>
#include <linux/writeback.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/highmem.h>
#include <linux/sched/signal.h>
#include "zuf.h"

/* Pin the next chunk of a user iterator; returns its length or -errno. */
static ssize_t zuf_io_get_user(struct zuf_io *io, struct iov_iter *iter)
{
	size_t start;
	ssize_t got;

	/* one page less than the window: the data need not start on a page boundary */
	got = iov_iter_get_pages_alloc2(iter, &io->pages, ZUF_BOUNCE_OFF - PAGE_SIZE, &start);
	if (got <= 0)
		return got ? got : -EFAULT;
	io->off = start;
	io->nr_pages = DIV_ROUND_UP(start + got, PAGE_SIZE);
	return got;
}

static void zuf_io_put_user(struct zuf_io *io, bool dirty)
{
	unsigned int i;

	for (i = 0; i < io->nr_pages; i++) {
		if (dirty)
			set_page_dirty_lock(io->pages[i]);
		put_page(io->pages[i]);
	}
	kvfree(io->pages);
	io->pages = NULL;
}

/* Copy between a kernel iterator and bounce pages; returns bytes copied. */
static size_t zuf_io_copy(struct zuf_io *io, struct iov_iter *iter, size_t len, bool to_iter)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < io->nr_pages && done < len; i++) {
		size_t n = min_t(size_t, PAGE_SIZE, len - done), c;
		void *addr = kmap_local_page(io->pages[i]);

		/* copy, never copy_page_to_iter: a pipe would take the bounce page itself */
		if (to_iter)
			c = copy_to_iter(addr, n, iter);
		else
			c = copy_from_iter(addr, n, iter);
		kunmap_local(addr);
		done += c;
		if (c != n)
			break;
	}
	return done;
}

/*
 * Check a READ or WRITE reply of @op for @n bytes and take it: the bytes done, or -EIO for a
 * lying server; *@pos becomes where an append wrote, and a write's attributes are applied.
 */
static ssize_t zuf_rw_reply(struct inode *inode, struct zuf_call *op, bool write, bool append,
			    size_t n, loff_t *pos)
{
	/* a WRITE that wrote nothing and failed nothing would make write(2) return 0 */
	if (op->out_len > n || (write && !op->out_len) ||
	    (append && (op->out_offset > MAX_LFS_FILESIZE ||
			op->out_len > MAX_LFS_FILESIZE - op->out_offset))) {
		pr_warn_ratelimited("bad %s reply for inode %lu: %llu bytes of %zu at %llu\n",
				    write ? "WRITE" : "READ", inode->i_ino, op->out_len, n,
				    op->out_offset);
		return -EIO;
	}
	if (append)
		*pos = op->out_offset;
	if (write && !zuf_apply_reply_attr(inode, &op->attr) &&
	    *pos + op->out_len > i_size_read(inode))
		i_size_write(inode, *pos + op->out_len);
	return op->out_len;
}

/*
 * Send @op. A WRITE puts its data in fresh blocks (copy on write) and the server frees the
 * blocks it replaced, so no application mapping may point at those once the server answers:
 * the WRITE runs under the mapping's invalidate lock, which DAX faults take shared, after its
 * range is unmapped. A fault then waits and maps the new block. The caller has already
 * pinned or faulted in the user pages (faulting them in takes the same lock); a bounced copy
 * runs with page faults disabled and falls back when a source page is gone, for example
 * one of this very range just unmapped.
 */
static int zuf_send_rw(struct inode *inode, struct zuf_call *op, bool write)
{
	struct address_space *mapping = inode->i_mapping;
	int err;

	if (!write)
		return zuf_dispatch(ZUF_SB(inode->i_sb), op);
	filemap_invalidate_lock(mapping);
	if (mapping_mapped(mapping)) {
		loff_t start = op->offset & PAGE_MASK;
		/* an append writes at the end the server finds: 0 drops every mapping past start */
		loff_t len = (op->flags & ZUF_F_APPEND) ? 0 :
			     PAGE_ALIGN(op->offset + op->len) - start;

		unmap_mapping_range(mapping, start, len, 1);
	}
	err = zuf_dispatch(ZUF_SB(inode->i_sb), op);
	filemap_invalidate_unlock(mapping);
	return err;
}

/*
 * A READ or WRITE of all of @iter (at most ZUF_BOUNCE_SIZE, user memory) through the
 * channel's bounce pages. Returns the bytes done (the iterator advanced by exactly that) or
 * -errno; *@fell_back when the source faults, with nothing done: map its pages instead.
 */
static ssize_t zuf_rw_bounced(struct kiocb *iocb, struct iov_iter *iter, bool write,
			      loff_t *pos, bool *fell_back)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	struct zuf_io io = { .server_writes = !write, .off = ZUF_BOUNCE_OFF, .bounce = iter };
	size_t n = iov_iter_count(iter);
	struct zuf_call op = { .op = write ? ZUF_OP_WRITE : ZUF_OP_READ, .ino = inode->i_ino,
			     .offset = *pos, .len = n, .io = &io };
	bool append = write && (iocb->ki_flags & IOCB_APPEND);
	ssize_t done;
	int err;

	if (append)
		op.flags |= ZUF_F_APPEND;
	/* Fault the user pages in now, while no channel is held; a bad address takes the long way. */
	if (write ? fault_in_iov_iter_readable(iter, n) : fault_in_iov_iter_writeable(iter, n)) {
		*fell_back = true;
		return 0;
	}
	err = zuf_send_rw(inode, &op, write);
	if (io.fell_back) {
		*fell_back = true;
		return 0;
	}
	done = err ? err : zuf_rw_reply(inode, &op, write, append, n, pos);
	if (write) {
		zuf_attr_stale(inode);	/* last, after the reply's local size */
		/* give back what was copied in and the server did not take */
		iov_iter_revert(iter, io.copied - max_t(ssize_t, done, 0));
	} else if (done > 0) {
		/* the bytes past a faulting user page, copied now that the channel is free */
		if (io.spill)
			io.copied += copy_to_iter(io.spill, io.spill_len, iter);
		if (io.copied < done)
			done = io.copied ? io.copied : -EFAULT;
	} else {
		/* a reply found bad after its bytes were copied out: none of them count */
		iov_iter_revert(iter, io.copied);
	}
	kfree(io.spill);
	return done;
}

/*
 * One READ or WRITE of at most a window's worth of @iter at *@pos. Returns the bytes done
 * (the iterator advanced by exactly that) or -errno; *@pos is where the data was.
 */
static ssize_t zuf_rw_chunk(struct kiocb *iocb, struct iov_iter *iter, bool write,
			    loff_t *pos, size_t *asked)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	struct zuf_io io = { .server_writes = !write };
	struct zuf_call op = { .op = write ? ZUF_OP_WRITE : ZUF_OP_READ, .ino = inode->i_ino,
			     .offset = *pos, .io = &io };
	bool user = user_backed_iter(iter);
	bool append = write && (iocb->ki_flags & IOCB_APPEND);
	bool fell_back = false;
	ssize_t n, done = 0;
	int err;

	if (user && iov_iter_count(iter) <= ZUF_BOUNCE_SIZE) {
		*asked = iov_iter_count(iter);
		done = zuf_rw_bounced(iocb, iter, write, pos, &fell_back);
		if (!fell_back)
			return done;
	}
	if (user) {
		n = zuf_io_get_user(&io, iter);
		if (n < 0)
			return n;
	} else {
		n = min_t(size_t, iov_iter_count(iter), ZUF_BOUNCE_OFF);
		err = zuf_io_alloc_kernel(&io, n);
		if (err)
			return err;
		if (write && zuf_io_copy(&io, iter, n, false) != n) {
			iov_iter_revert(iter, n - iov_iter_count(iter));
			zuf_io_free_kernel(&io);
			return -EFAULT;
		}
	}
	op.len = n;
	*asked = n;
	if (append)
		op.flags |= ZUF_F_APPEND;

	err = zuf_send_rw(inode, &op, write);
	if (!err) {
		done = zuf_rw_reply(inode, &op, write, append, n, pos);
		if (done < 0) {
			err = done;
			done = 0;
		}
	}
	if (write)
		zuf_attr_stale(inode);	/* last, after the reply's local size */

	if (user) {
		zuf_io_put_user(&io, !write && done);
		iov_iter_revert(iter, n - done);
	} else {
		if (write)
			iov_iter_revert(iter, n - done);
		else if (done && zuf_io_copy(&io, iter, done, true) != done && !err)
			err = -EFAULT;
		zuf_io_free_kernel(&io);
	}
	if (err)
		return err;
	return done;
}

static ssize_t zuf_rw(struct kiocb *iocb, struct iov_iter *iter, bool write)
{
	loff_t pos = iocb->ki_pos;
	ssize_t total = 0, ret = 0;

	while (iov_iter_count(iter)) {
		size_t asked = 0;

		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		ret = zuf_rw_chunk(iocb, iter, write, &pos, &asked);
		if (ret <= 0)
			break;
		pos += ret;
		total += ret;
		/* a short chunk: end of file, or the server wrote less */
		if (ret < asked)
			break;
	}
	if (total) {
		iocb->ki_pos = pos;
		return total;
	}
	return ret;
}

static ssize_t zuf_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	if (!iov_iter_count(to))
		return 0;
	return zuf_rw(iocb, to, false);
}

static ssize_t zuf_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	ssize_t ret;

	if (iocb->ki_flags & IOCB_NOWAIT)
		return -EOPNOTSUPP;
	inode_lock(inode);
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out;
	ret = file_remove_privs(iocb->ki_filp);
	if (ret)
		goto out;
	/* each chunk unmaps what it replaces (zuf_send_rw) */
	ret = zuf_rw(iocb, from, true);
out:
	inode_unlock(inode);
	return ret;
}

static int zuf_open(struct inode *inode, struct file *file)
{
	file->f_mode |= FMODE_CAN_ODIRECT;
	return generic_file_open(inode, file);
}

static int zuf_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	struct inode *inode = file_inode(file);
	struct zuf_call op = { .op = ZUF_OP_FSYNC, .ino = inode->i_ino,
			     .flags = datasync ? ZUF_F_DATASYNC : 0 };

	return zuf_dispatch(ZUF_SB(inode->i_sb), &op);
}

static long zuf_fallocate(struct file *file, int mode, loff_t offset, loff_t len)
{
	struct inode *inode = file_inode(file);
	struct zuf_call op = { .op = ZUF_OP_FALLOCATE, .ino = inode->i_ino, .mode = mode,
			     .offset = offset, .len = len };
	bool frees = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE |
			     FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE);
	loff_t new_size = 0;
	int err;

	inode_lock(inode);
	/* A file that grows meets the size limit (RLIMIT_FSIZE: SIGXFSZ, EFBIG) as a write does. */
	if (mode & FALLOC_FL_INSERT_RANGE) {
		if (len > inode->i_sb->s_maxbytes - i_size_read(inode)) {
			inode_unlock(inode);
			return -EFBIG;
		}
		new_size = i_size_read(inode) + len;
	} else if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + len > i_size_read(inode)) {
		new_size = offset + len;
	}
	if (new_size) {
		err = inode_newsize_ok(inode, new_size);
		if (err) {
			inode_unlock(inode);
			return err;
		}
	}
	/* as a write: setuid, setgid (the VFS's rule) and file capabilities go first */
	err = file_remove_privs(file);
	if (err) {
		inode_unlock(inode);
		return err;
	}
	if (frees) {
		/* unmap first: no application keeps a mapping of a block the server frees */
		filemap_invalidate_lock(inode->i_mapping);
		unmap_mapping_range(inode->i_mapping, offset & PAGE_MASK,
				    (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) ?
				    0 : PAGE_ALIGN(offset + len) - (offset & PAGE_MASK), 1);
	}
	err = zuf_dispatch(ZUF_SB(inode->i_sb), &op);
	if (!err && !zuf_apply_reply_attr(inode, &op.attr) &&
	    !(mode & FALLOC_FL_KEEP_SIZE) && offset + len > i_size_read(inode))
		i_size_write(inode, offset + len);
	zuf_attr_stale(inode);	/* last, after the local size */
	if (frees)
		filemap_invalidate_unlock(inode->i_mapping);
	inode_unlock(inode);
	return err;
}

static loff_t zuf_llseek(struct file *file, loff_t offset, int whence)
{
	struct inode *inode = file_inode(file);
	struct zuf_call op = { .op = ZUF_OP_LLSEEK, .ino = inode->i_ino, .offset = offset,
			     .mode = whence };
	int err;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return generic_file_llseek(file, offset, whence);
	if (offset < 0)
		return -ENXIO;
	err = zuf_dispatch(ZUF_SB(inode->i_sb), &op);
	if (err)
		return err;
	if (op.out_offset > MAX_LFS_FILESIZE)
		return -EIO;
	return vfs_setpos(file, op.out_offset, inode->i_sb->s_maxbytes);
}

const struct file_operations zuf_file_fops = {
	.llseek		= zuf_llseek,
	.read_iter	= zuf_read_iter,
	.write_iter	= zuf_write_iter,
	.mmap		= zuf_file_mmap,
	.mmap_supported_flags = MAP_SYNC,
	.open		= zuf_open,
	.fsync		= zuf_fsync,
	.fallocate	= zuf_fallocate,
	.splice_read	= generic_file_splice_read,
	.splice_write	= iter_file_splice_write,
	.unlocked_ioctl	= zuf_ioctl_file,
	.compat_ioctl	= compat_ptr_ioctl,
};

const struct address_space_operations zuf_aops = {
	.direct_IO	= noop_direct_IO,
	.dirty_folio	= noop_dirty_folio,
};
