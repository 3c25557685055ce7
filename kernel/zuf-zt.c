// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-zt.c - the per-CPU channels between the VFS and the server's ZT threads.
 *
 * A ZT opens /dev/zuf, ZUF_IOC_ZT_INIT binds the file to a CPU's channel, mmap at offset 0
 * maps the channel's operation buffer and mmap at ZUF_WINDOW_OFFSET its application window.
 * A VFS call picks the channel of the CPU it runs on, writes the request into the buffer,
 * copies up to 64 KiB of user data into the window's bounce pages or maps the application's
 * pages (or kernel pages) into the window, wakes the ZT and waits killably. ZUF_IOC_ZT_WAIT
 * returns the previous result and sleeps for the next operation. Afterwards a read's bounced
 * bytes are copied out, or the mapped part of the window is zapped and the pages released. If the ZT's file is released (the
 * server died), the waiting call and every later one get -EIO.
 *
 * A polling channel (ZT_INIT with ZUF_ZT_POLL, one per server) is served by a thread that
 * spins on the buffer's zuf_poll_ctl from a CPU of its own. A call from any other CPU that
 * finds it free posts there and spins for the answer instead of sleeping: no wake-up and no
 * switch to the server's address space on the caller's CPU. The poller blocks in ZT_WAIT
 * only after a while without calls, and a call that finds it waiting there wakes it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/cred.h>
#include <linux/mnt_idmapping.h>
#include <linux/capability.h>
#include "zuf.h"

static void zuf_chan_free(struct kref *kref)
{
	struct zuf_chan *chan = container_of(kref, struct zuf_chan, kref);

	if (chan->mm)
		mmdrop(chan->mm);
	vfree(chan->buf);
	vfree(chan->bounce);
	if (chan->scratch)
		__free_page(chan->scratch);
	kfree(chan);
}

static void zuf_chan_put(struct zuf_chan *chan)
{
	kref_put(&chan->kref, zuf_chan_free);
}

long zuf_ioc_zt_init(struct file *file, void __user *arg)
{
	struct zuf_file *zf = file->private_data;
	struct zuf_zt_init init;
	struct zuf_server *srv;
	struct zuf_chan *chan;
	int err = 0;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&init, arg, sizeof(init)))
		return -EFAULT;
	if ((init.flags & ~ZUF_ZT_POLL) || init.cpu >= nr_cpu_ids || !cpu_possible(init.cpu))
		return -EINVAL;
	if (READ_ONCE(zf->chan))
		return -EBUSY;
	srv = zuf_file_attach(file);
	if (IS_ERR(srv))
		return PTR_ERR(srv);

	chan = kzalloc(sizeof(*chan), GFP_KERNEL);
	if (!chan)
		return -ENOMEM;
	kref_init(&chan->kref);
	chan->srv = srv;
	chan->cpu = init.cpu;
	mutex_init(&chan->mutex);
	spin_lock_init(&chan->lock);
	init_waitqueue_head(&chan->zt_wq);
	init_waitqueue_head(&chan->done_wq);
	chan->buf = vmalloc_user(ZUF_OP_BUF_SIZE);
	chan->scratch = alloc_page(GFP_KERNEL | __GFP_ZERO);
	chan->bounce = vmalloc_user(ZUF_BOUNCE_SIZE);
	if (!chan->buf || !chan->scratch || !chan->bounce) {
		err = -ENOMEM;
		goto out_put;
	}
	if (init.flags & ZUF_ZT_POLL) {
		BUILD_BUG_ON(sizeof(struct zuf_op_buf) > ZUF_POLL_CTL_OFF);
		BUILD_BUG_ON(ZUF_POLL_CTL_OFF + sizeof(struct zuf_poll_ctl) > ZUF_OP_BUF_SIZE);
		chan->poll = true;
		chan->ctl = (void *)chan->buf + ZUF_POLL_CTL_OFF;
	}

	/* zf->chan is set once, under srv->lock, so two racing ZT_INITs cannot both win */
	spin_lock(&srv->lock);
	if (srv->dead) {
		err = -EIO;
	} else if (zf->chan || (chan->poll ? srv->poll_chan : srv->chans[init.cpu])) {
		err = -EBUSY;
	} else {
		if (chan->poll)
			srv->poll_chan = chan;
		else
			srv->chans[init.cpu] = chan;
		WRITE_ONCE(zf->chan, chan);
	}
	spin_unlock(&srv->lock);
	if (err)
		goto out_put;
	return 0;

out_put:
	zuf_chan_put(chan);
	return err;
}

/* The ZT's file is released: fail what waits on the channel, forget it, drop it. */
void zuf_chan_release(struct zuf_chan *chan)
{
	struct zuf_server *srv = chan->srv;

	spin_lock(&chan->lock);
	chan->dead = true;
	spin_unlock(&chan->lock);
	wake_up_all(&chan->done_wq);
	wake_up_all(&chan->zt_wq);
	spin_lock(&srv->lock);
	if (srv->chans[chan->cpu] == chan)
		srv->chans[chan->cpu] = NULL;
	if (srv->poll_chan == chan)
		srv->poll_chan = NULL;
	spin_unlock(&srv->lock);
	zuf_chan_put(chan);
}

/* ---- the window VMA in the server ---- */

static vm_fault_t zuf_win_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct zuf_chan *chan = vma->vm_private_data;
	unsigned long off = vmf->address - vma->vm_start;

	/*
	 * The bounce pages: mapped writable at the first touch and left there (only the part
	 * below ZUF_BOUNCE_OFF is ever zapped). They hold nothing but this channel's I/O.
	 */
	if (off >= ZUF_BOUNCE_OFF)
		return vmf_insert_pfn_prot(vma, vmf->address,
					   vmalloc_to_pfn(chan->bounce + off - ZUF_BOUNCE_OFF),
					   vm_get_page_prot(vma->vm_flags));
	/* Outside an operation: the server sees a scratch page, never someone's data. */
	return vmf_insert_pfn_prot(vma, vmf->address, page_to_pfn(chan->scratch),
				   vm_get_page_prot(vma->vm_flags));
}

/*
 * A server store to a page it may only read (the source of a WRITE, which may be shared or
 * the zero page). Having this hook also keeps the VMA's default protection read-only, so
 * every writable PTE in the window is one zuf_win_map inserted writable on purpose.
 */
static vm_fault_t zuf_win_pfn_mkwrite(struct vm_fault *vmf)
{
	return VM_FAULT_SIGBUS;
}

static void zuf_win_close(struct vm_area_struct *vma)
{
	struct zuf_chan *chan = vma->vm_private_data;

	spin_lock(&chan->lock);
	if (chan->win_addr == vma->vm_start)
		chan->win_addr = 0;
	spin_unlock(&chan->lock);
}

static int zuf_win_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

static int zuf_win_mremap(struct vm_area_struct *vma)
{
	return -EINVAL;
}

static const struct vm_operations_struct zuf_win_vm_ops = {
	.fault		= zuf_win_fault,
	.pfn_mkwrite	= zuf_win_pfn_mkwrite,
	.close		= zuf_win_close,
	.may_split	= zuf_win_may_split,
	.mremap		= zuf_win_mremap,
};

int zuf_zt_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct zuf_file *zf = file->private_data;
	struct zuf_chan *chan = READ_ONCE(zf->chan);
	unsigned long len = vma->vm_end - vma->vm_start;
	int err = 0;

	if (!chan)
		return -EINVAL;
	if (vma->vm_pgoff == 0) {
		if (len > ZUF_OP_BUF_SIZE)
			return -EINVAL;
		return remap_vmalloc_range(vma, chan->buf, 0);
	}
	if (vma->vm_pgoff != ZUF_WINDOW_OFFSET >> PAGE_SHIFT || len != ZUF_WINDOW_SIZE ||
	    (vma->vm_flags & (VM_SHARED | VM_WRITE)) != (VM_SHARED | VM_WRITE))
		return -EINVAL;

	spin_lock(&chan->lock);
	if (chan->win_addr)
		err = -EBUSY;
	else if (chan->mm && chan->mm != current->mm)
		err = -EINVAL;
	if (!err) {
		if (!chan->mm) {
			mmgrab(current->mm);
			chan->mm = current->mm;
		}
		chan->win_addr = vma->vm_start;
	}
	spin_unlock(&chan->lock);
	if (err)
		return err;
	/*
	 * VM_PFNMAP, not VM_MIXEDMAP: zap_vma_ptes only zaps VM_PFNMAP VMAs, and the PTEs are
	 * special (no refcount, no rmap, not reachable by GUP or /proc/pid/mem with VM_IO).
	 */
	vma->vm_flags |= VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTCOPY | VM_DONTDUMP;
	vma->vm_ops = &zuf_win_vm_ops;
	vma->vm_private_data = chan;
	return 0;
}

/* The window VMA of @chan in @mm, or NULL; mmap lock held. */
static struct vm_area_struct *zuf_win_vma(struct zuf_chan *chan, struct mm_struct *mm)
{
	struct vm_area_struct *vma;
	unsigned long addr;

	spin_lock(&chan->lock);
	addr = chan->win_addr;
	spin_unlock(&chan->lock);
	if (!addr)
		return NULL;
	vma = vma_lookup(mm, addr);
	if (!vma || vma->vm_start != addr || vma->vm_ops != &zuf_win_vm_ops ||
	    vma->vm_private_data != chan || vma->vm_end - vma->vm_start != ZUF_WINDOW_SIZE)
		return NULL;
	return vma;
}

static int zuf_win_map(struct zuf_chan *chan, struct zuf_io *io)
{
	struct mm_struct *mm = chan->mm;
	struct vm_area_struct *vma;
	pgprot_t prot;
	unsigned int i;
	int err = 0;

	if (!mm || io->nr_pages > ZUF_MAP_PAGES || !mmget_not_zero(mm))
		return -EIO;
	mmap_read_lock(mm);
	vma = zuf_win_vma(chan, mm);
	if (!vma) {
		err = -EIO;
		goto out;
	}
	/* Pages the server only reads are mapped read-only: they may be shared. */
	prot = vm_get_page_prot(io->server_writes ? vma->vm_flags :
				vma->vm_flags & ~(VM_WRITE | VM_MAYWRITE));
	/* a PTE the server faulted in outside an operation would survive the insert */
	zap_vma_ptes(vma, vma->vm_start, (unsigned long)io->nr_pages << PAGE_SHIFT);
	for (i = 0; i < io->nr_pages; i++) {
		vm_fault_t ret;

		ret = vmf_insert_pfn_prot(vma, vma->vm_start + i * PAGE_SIZE,
					  page_to_pfn(io->pages[i]), prot);
		if (ret != VM_FAULT_NOPAGE) {
			err = ret == VM_FAULT_OOM ? -ENOMEM : -EIO;
			zap_vma_ptes(vma, vma->vm_start, i * PAGE_SIZE);
			break;
		}
	}
out:
	mmap_read_unlock(mm);
	mmput(mm);
	return err;
}

static void zuf_win_unmap(struct zuf_chan *chan, struct zuf_io *io)
{
	struct mm_struct *mm = chan->mm;
	struct vm_area_struct *vma;

	if (!mm || !mmget_not_zero(mm))
		return;		/* the server's address space is gone, and the window with it */
	mmap_read_lock(mm);
	vma = zuf_win_vma(chan, mm);
	if (vma)
		zap_vma_ptes(vma, vma->vm_start, (unsigned long)io->nr_pages << PAGE_SHIFT);
	mmap_read_unlock(mm);
	mmput(mm);
}

int zuf_io_alloc_kernel(struct zuf_io *io, size_t len)
{
	unsigned int i, nr = DIV_ROUND_UP(len, PAGE_SIZE);

	if (!nr || nr > ZUF_MAP_PAGES)
		return -EINVAL;
	io->pages = kcalloc(nr, sizeof(*io->pages), GFP_KERNEL);
	if (!io->pages)
		return -ENOMEM;
	io->off = 0;
	for (i = 0; i < nr; i++) {
		/* zeroed: the server never sees stale kernel memory */
		io->pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!io->pages[i]) {
			io->nr_pages = i;
			zuf_io_free_kernel(io);
			return -ENOMEM;
		}
	}
	io->nr_pages = nr;
	return 0;
}

void zuf_io_free_kernel(struct zuf_io *io)
{
	unsigned int i;

	for (i = 0; i < io->nr_pages; i++)
		__free_page(io->pages[i]);
	kfree(io->pages);
	io->pages = NULL;
	io->nr_pages = 0;
}

/* ---- the ZT's side ---- */

static bool zuf_zt_has_op(struct zuf_chan *chan)
{
	bool ret;

	spin_lock(&chan->lock);
	ret = chan->pending || chan->dead;
	spin_unlock(&chan->lock);
	return ret;
}

/* A call is posted and not answered: the kernel's own count against the server's answer. */
static bool zuf_poll_has_op(struct zuf_chan *chan)
{
	return READ_ONCE(chan->dead) || READ_ONCE(chan->poll_seq) != READ_ONCE(chan->ctl->answered);
}

/* The poller, after a while without calls: sleep until one is posted. */
static long zuf_poll_wait(struct zuf_chan *chan)
{
	long err = wait_event_interruptible(chan->zt_wq, zuf_poll_has_op(chan));

	if (err)
		return err;
	return READ_ONCE(chan->dead) ? -EIO : 0;
}

long zuf_ioc_zt_wait(struct file *file, void __user *arg)
{
	struct zuf_file *zf = file->private_data;
	struct zuf_chan *chan = READ_ONCE(zf->chan);
	struct zuf_zt_wait w;
	long err;

	if (!chan)
		return -EINVAL;
	if (chan->poll)
		return zuf_poll_wait(chan);
	if (copy_from_user(&w, arg, sizeof(w)))
		return -EFAULT;

	spin_lock(&chan->lock);
	if (chan->in_service) {
		chan->in_service = false;
		if (!chan->abandoned) {
			chan->result = w.prev_result;
			chan->done = true;
		}
		chan->abandoned = false;
		wake_up(&chan->done_wq);
	}
	spin_unlock(&chan->lock);

	/*
	 * Several threads of a (broken) server may wait on one channel's file: only the one
	 * that finds the operation still pending takes it, the others wait on.
	 */
	for (;;) {
		err = wait_event_interruptible(chan->zt_wq, zuf_zt_has_op(chan));
		if (err)
			return err;
		spin_lock(&chan->lock);
		if (chan->dead) {
			err = -EIO;
			break;
		}
		if (chan->pending) {
			chan->pending = false;
			chan->in_service = true;
			break;
		}
		spin_unlock(&chan->lock);
	}
	spin_unlock(&chan->lock);
	return err;
}

/* ---- the VFS's side ---- */

static struct zuf_chan *zuf_chan_pick(struct zuf_server *srv)
{
	unsigned int cpu = raw_smp_processor_id(), i;
	struct zuf_chan *chan = NULL;

	spin_lock(&srv->lock);
	for (i = 0; !srv->dead && i < nr_cpu_ids; i++) {
		struct zuf_chan *c = srv->chans[(cpu + i) % nr_cpu_ids];

		if (c && !READ_ONCE(c->dead)) {
			kref_get(&c->kref);
			chan = c;
			break;
		}
	}
	spin_unlock(&srv->lock);
	return chan;
}

static bool zuf_chan_idle(struct zuf_chan *chan)
{
	bool ret;

	spin_lock(&chan->lock);
	ret = !chan->in_service || chan->dead;
	spin_unlock(&chan->lock);
	return ret;
}

static bool zuf_chan_answered(struct zuf_chan *chan)
{
	bool ret;

	spin_lock(&chan->lock);
	ret = chan->done || chan->dead;
	spin_unlock(&chan->lock);
	return ret;
}

/* Queue the release of an unlinked inode for the next call; false when the queue is full. */
bool zuf_evict_later(struct zuf_sb_info *sbi, u64 ino)
{
	bool queued = false;

	spin_lock(&sbi->evict_lock);
	if (sbi->nr_evict < ZUF_EVICT_BATCH) {
		sbi->evict[sbi->nr_evict++] = ino;
		queued = true;
	}
	spin_unlock(&sbi->evict_lock);
	return queued;
}

/* Take the queued releases into @evict (ZUF_EVICT_BATCH long); returns how many. */
static unsigned int zuf_evict_take(struct zuf_sb_info *sbi, u64 *evict)
{
	unsigned int n;

	spin_lock(&sbi->evict_lock);
	n = sbi->nr_evict;
	memcpy(evict, sbi->evict, n * sizeof(*evict));
	sbi->nr_evict = 0;
	spin_unlock(&sbi->evict_lock);
	return n;
}

/*
 * Queue again the releases of a call the server never saw. What does not fit is lost: the
 * server keeps those inodes until unmount, which frees every unlinked one.
 */
static void zuf_evict_requeue(struct zuf_sb_info *sbi, const u64 *evict, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (!zuf_evict_later(sbi, evict[i]))
			pr_warn_ratelimited("release of inode %llu lost until unmount\n", evict[i]);
}

static void zuf_fill_buf(struct zuf_op_buf *buf, struct zuf_sb_info *sbi,
			 const struct zuf_call *op, const u64 *evict, unsigned int nr_evict)
{
	memset(buf, 0, sizeof(*buf));
	buf->nr_evict = nr_evict;
	memcpy(buf->evict, evict, nr_evict * sizeof(*evict));
	buf->op = op->op;
	buf->flags = op->flags;
	buf->sb_id = sbi->sb_id;
	buf->ino = op->ino;
	buf->ino2 = op->ino2;
	buf->offset = op->offset;
	buf->len = op->len;
	buf->window_off = op->io ? op->io->off : 0;
	buf->mode = op->mode;
	buf->rdev = op->rdev;
	if (op->owner_ns) {
		buf->uid = from_kuid_munged(&init_user_ns, mapped_fsuid(op->owner_ns, &init_user_ns));
		buf->gid = from_kgid_munged(&init_user_ns, mapped_fsgid(op->owner_ns, &init_user_ns));
	} else {
		buf->uid = from_kuid_munged(&init_user_ns, current_fsuid());
		buf->gid = from_kgid_munged(&init_user_ns, current_fsgid());
	}
	if (op->name) {
		buf->name_len = op->name->len;
		memcpy(buf->name, op->name->name, op->name->len);
	}
	if (op->name2) {
		buf->name2_len = op->name2->len;
		memcpy(buf->name2, op->name2->name, op->name2->len);
	}
	if (op->set)
		buf->set = *op->set;
	buf->result = -EIO;
}

/* Copy the reply out of the server-writable buffer once; validation uses the copy only. */
static void zuf_take_reply(struct zuf_call *op, const struct zuf_op_buf *buf)
{
	op->out_len = READ_ONCE(buf->out_len);
	op->out_offset = READ_ONCE(buf->out_offset);
	memcpy(&op->attr, &buf->attr, sizeof(op->attr));
	memcpy(&op->statfs, &buf->statfs, sizeof(op->statfs));
}

/* A server's result: 0 or a -errno a user may see. Anything else is a broken server. */
int zuf_check_result(int result)
{
	if (result == 0)
		return 0;
	if (result < 0 && result >= -MAX_ERRNO && result > -ERESTARTSYS)
		return result;
	pr_warn_ratelimited("server returned bad result %d\n", result);
	return -EIO;
}

/* A bounced WRITE: copy its data in before the op is posted (see struct zuf_io). */
static int zuf_bounce_in(struct zuf_chan *chan, struct zuf_call *op)
{
	struct zuf_io *io = op->io;
	size_t c;

	if (io->server_writes)
		return 0;
	if (op->len > ZUF_BOUNCE_SIZE)
		return -EINVAL;
	pagefault_disable();
	c = copy_from_iter(chan->bounce, op->len, io->bounce);
	pagefault_enable();
	io->copied = c;
	if (c == op->len)
		return 0;
	io->copied = 0;
	iov_iter_revert(io->bounce, c);
	io->fell_back = true;
	return -EFAULT;
}

/* A bounced READ: copy out what the server read, the faulting rest into io->spill. */
static void zuf_bounce_out(struct zuf_chan *chan, struct zuf_call *op)
{
	struct zuf_io *io = op->io;
	size_t n = min_t(u64, op->out_len, min_t(u64, op->len, ZUF_BOUNCE_SIZE));

	pagefault_disable();
	io->copied = copy_to_iter(chan->bounce, n, io->bounce);
	pagefault_enable();
	if (io->copied < n) {
		io->spill = kmemdup(chan->bounce + io->copied, n - io->copied, GFP_KERNEL);
		if (io->spill)
			io->spill_len = n - io->copied;
	}
}

/*
 * The polling channel, locked and ready for a call from this CPU, or NULL: there is none, it
 * runs on this CPU, another call has it, or a killed caller's call is still being served.
 */
static struct zuf_chan *zuf_poll_pick(struct zuf_server *srv)
{
	struct zuf_chan *chan;

	if (!READ_ONCE(srv->poll_chan))
		return NULL;
	spin_lock(&srv->lock);
	chan = srv->poll_chan;
	if (chan && (srv->dead || READ_ONCE(chan->dead) || chan->cpu == raw_smp_processor_id()))
		chan = NULL;
	if (chan)
		kref_get(&chan->kref);
	spin_unlock(&srv->lock);
	if (!chan)
		return NULL;
	if (!mutex_trylock(&chan->mutex))
		goto out_put;
	if (smp_load_acquire(&chan->ctl->answered) != chan->poll_seq) {
		mutex_unlock(&chan->mutex);
		goto out_put;
	}
	return chan;
out_put:
	zuf_chan_put(chan);
	return NULL;
}

/* Looks at the answer word between two cpu_relax() while spinning for a polled call. */
#define ZUF_POLL_LOOKS	64

/*
 * The call is in the locked polling channel's buffer: post it and spin until it is answered.
 * Returns 0 with the server's result in *@result, -EIO if the channel died, -EINTR if the
 * caller was killed (the call stays posted: the channel is skipped until the poller answers).
 */
static int zuf_poll_post_wait(struct zuf_chan *chan, int *result)
{
	struct zuf_poll_ctl *ctl = chan->ctl;
	u64 seq = chan->poll_seq + 1;

	smp_store_release(&ctl->posted, seq);
	WRITE_ONCE(chan->poll_seq, seq);
	/* a poller asleep in ZT_WAIT, or about to check poll_seq there (wq_has_sleeper fences) */
	if (wq_has_sleeper(&chan->zt_wq))
		wake_up(&chan->zt_wq);
	for (;;) {
		unsigned int i;

		/* several looks per cpu_relax: under emulation a PAUSE leaves the translated code */
		for (i = 0; i < ZUF_POLL_LOOKS && smp_load_acquire(&ctl->answered) != seq; i++)
			;
		if (i < ZUF_POLL_LOOKS) {
			*result = READ_ONCE(chan->buf->result);
			return 0;
		}
		if (READ_ONCE(chan->dead))
			return -EIO;
		if (fatal_signal_pending(current))
			return -EINTR;
		if (need_resched())
			cond_resched();
		else
			cpu_relax();
	}
}

/* Lock a ZT's channel once it is idle; on an error it is left unlocked. */
static int zuf_chan_lock_idle(struct zuf_chan *chan)
{
	if (mutex_lock_killable(&chan->mutex))
		return -EINTR;
	/* A call killed before its answer leaves the channel busy until the ZT answers. */
	if (wait_event_killable(chan->done_wq, zuf_chan_idle(chan))) {
		mutex_unlock(&chan->mutex);
		return -EINTR;
	}
	if (READ_ONCE(chan->dead)) {
		mutex_unlock(&chan->mutex);
		return -EIO;
	}
	return 0;
}

/*
 * The call is in the locked ZT channel's buffer: wake the ZT and sleep until it answers.
 * Returns as zuf_poll_post_wait; *@unseen is set when a killed caller took its call back
 * before the ZT saw it.
 */
static int zuf_zt_post_wait(struct zuf_chan *chan, int *result, bool *unseen)
{
	int err;

	spin_lock(&chan->lock);
	chan->done = false;
	chan->pending = true;
	spin_unlock(&chan->lock);
	wake_up(&chan->zt_wq);

	err = wait_event_killable(chan->done_wq, zuf_chan_answered(chan));
	spin_lock(&chan->lock);
	if (chan->done) {
		chan->done = false;
		*result = chan->result;
		err = 0;
	} else if (chan->dead) {
		err = -EIO;
	} else {
		/* killed: if the ZT has it, its answer is discarded */
		if (chan->pending) {
			chan->pending = false;
			*unseen = true;
		} else {
			chan->abandoned = true;
		}
		err = -EINTR;
	}
	spin_unlock(&chan->lock);
	return err;
}

/*
 * Run @op on the server. Returns 0 with the reply in @op, the server's -errno, or -EIO when
 * there is no live server, -EINTR when the caller was killed.
 */
int zuf_dispatch(struct zuf_sb_info *sbi, struct zuf_call *op)
{
	struct zuf_chan *chan;
	int err, result = -EIO;
	bool mapped = false, unseen = true;
	u64 evict[ZUF_EVICT_BATCH];
	unsigned int nr_evict = 0;

	if ((op->name && op->name->len >= ZUF_NAME_MAX) ||
	    (op->name2 && op->name2->len >= ZUF_NAME_MAX))
		return -ENAMETOOLONG;
	if (zuf_server_dead(sbi->srv) || READ_ONCE(sbi->shut_down))
		return -EIO;
	/* the polling channel when it is free for this CPU, else this CPU's own */
	chan = zuf_poll_pick(sbi->srv);
	if (!chan) {
		chan = zuf_chan_pick(sbi->srv);
		if (!chan)
			return -EIO;
		err = zuf_chan_lock_idle(chan);
		if (err)
			goto out_put;
	}
	nr_evict = zuf_evict_take(sbi, evict);
	zuf_fill_buf(chan->buf, sbi, op, evict, nr_evict);
	if (op->io && op->io->bounce) {
		err = zuf_bounce_in(chan, op);
		if (err)
			goto out_unlock;
	} else if (op->io) {
		err = zuf_win_map(chan, op->io);
		if (err)
			goto out_unlock;
		mapped = true;
	}

	unseen = false;
	if (chan->poll)
		err = zuf_poll_post_wait(chan, &result);
	else
		err = zuf_zt_post_wait(chan, &result, &unseen);
	if (!err) {
		zuf_take_reply(op, chan->buf);
		err = zuf_check_result(result);
	}
	if (!err && op->io && op->io->bounce && op->io->server_writes)
		zuf_bounce_out(chan, op);
	if (mapped)
		zuf_win_unmap(chan, op->io);
out_unlock:
	mutex_unlock(&chan->mutex);
	if (unseen && nr_evict && !zuf_server_dead(sbi->srv))
		zuf_evict_requeue(sbi, evict, nr_evict);
out_put:
	zuf_chan_put(chan);
	op->result = err;
	return err;
}
