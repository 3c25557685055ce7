// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-mmap.c - DAX mmap. A fault asks the server for the PM block of the page (GET_BLOCK,
 * allocating on a write fault) and inserts that block's PFN into the application's VMA, so
 * loads and stores go straight to PM. Every operation is synchronous, so MAP_SYNC is
 * accepted. Faults hold the mapping's invalidate lock shared; write(2), truncate and hole
 * punching hold it exclusive while they unmap and free. A write fault stamps mtime and ctime, as
 * a write(2) does.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/pfn_t.h>
#include <linux/highmem.h>
#include <linux/uaccess.h>
#include "zuf.h"

/* The device offset of the block under @pgoff, checked; -ENODATA for a hole. */
static int zuf_get_block(struct inode *inode, pgoff_t pgoff, bool write, u64 *dev_off)
{
	struct zuf_sb_info *sbi = ZUF_SB(inode->i_sb);
	struct zuf_call op = { .op = ZUF_OP_GET_BLOCK, .ino = inode->i_ino,
			     .offset = (u64)pgoff << PAGE_SHIFT,
			     .flags = write ? ZUF_F_FOR_WRITE : 0 };
	int err;

	err = zuf_dispatch(sbi, &op);
	if (write)
		zuf_attr_stale(inode);	/* a block allocated: i_blocks */
	if (err)
		return err;
	if (!PAGE_ALIGNED(op.out_offset) || op.out_offset >= sbi->dev_size) {
		pr_warn_ratelimited("GET_BLOCK of inode %lu: device offset %llu outside the device\n",
				    inode->i_ino, op.out_offset);
		return -EIO;
	}
	*dev_off = op.out_offset;
	return 0;
}

static pfn_t zuf_pfn(struct zuf_sb_info *sbi, u64 dev_off)
{
	return __pfn_to_pfn_t(pfn_t_to_pfn(sbi->pm_pfn) + (dev_off >> PAGE_SHIFT),
			      sbi->pm_pfn.val & PFN_FLAGS_MASK);
}

/* A private mapping's write fault: hand the core a copy of the block to COW from. */
static vm_fault_t zuf_fault_cow(struct vm_fault *vmf, struct zuf_sb_info *sbi, int err,
				u64 dev_off)
{
	struct page *page;
	void *dst;
	vm_fault_t ret = VM_FAULT_LOCKED;

	page = alloc_page(GFP_HIGHUSER_MOVABLE);
	if (!page)
		return VM_FAULT_OOM;
	dst = kmap_local_page(page);
	if (err == -ENODATA)
		clear_page(dst);
	else if (copy_mc_to_kernel(dst, sbi->pm_kaddr + dev_off, PAGE_SIZE))
		ret = VM_FAULT_SIGBUS;
	kunmap_local(dst);
	if (ret != VM_FAULT_LOCKED) {
		put_page(page);
		return ret;
	}
	lock_page(page);
	vmf->page = page;
	return ret;
}

static vm_fault_t zuf_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct inode *inode = file_inode(vma->vm_file);
	struct super_block *sb = inode->i_sb;
	struct zuf_sb_info *sbi = ZUF_SB(sb);
	bool write = (vmf->flags & FAULT_FLAG_WRITE) && !vmf->cow_page;
	vm_fault_t ret;
	u64 dev_off = 0;
	int err;

	if (write) {
		sb_start_pagefault(sb);
		file_update_time(vma->vm_file);
	}
	filemap_invalidate_lock_shared(inode->i_mapping);
	if ((loff_t)vmf->pgoff << PAGE_SHIFT >= i_size_read(inode)) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	err = zuf_get_block(inode, vmf->pgoff, write, &dev_off);
	if (vmf->cow_page && (!err || err == -ENODATA)) {
		ret = zuf_fault_cow(vmf, sbi, err, dev_off);
	} else if (err == -ENODATA && !write) {
		/* a hole reads as zeros; a later write fault allocates */
		ret = vmf_insert_mixed(vma, vmf->address,
				       pfn_to_pfn_t(my_zero_pfn(vmf->address)));
	} else if (err) {
		ret = vmf_error(err);
	} else if (write) {
		ret = vmf_insert_mixed_mkwrite(vma, vmf->address, zuf_pfn(sbi, dev_off));
	} else {
		ret = vmf_insert_mixed(vma, vmf->address, zuf_pfn(sbi, dev_off));
	}
out:
	filemap_invalidate_unlock_shared(inode->i_mapping);
	if (write)
		sb_end_pagefault(sb);
	return ret;
}

/* A write to a page mapped read-only: make sure the server has a block for it. */
static vm_fault_t zuf_pfn_mkwrite(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct inode *inode = file_inode(vma->vm_file);
	struct super_block *sb = inode->i_sb;
	struct zuf_sb_info *sbi = ZUF_SB(sb);
	vm_fault_t ret = 0;
	u64 dev_off;
	int err;

	sb_start_pagefault(sb);
	file_update_time(vma->vm_file);
	filemap_invalidate_lock_shared(inode->i_mapping);
	if ((loff_t)vmf->pgoff << PAGE_SHIFT >= i_size_read(inode)) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	err = zuf_get_block(inode, vmf->pgoff, true, &dev_off);
	if (err) {
		ret = vmf_error(err);
		goto out;
	}
	if (pte_pfn(vmf->orig_pte) != pfn_t_to_pfn(zuf_pfn(sbi, dev_off))) {
		/* it was the zero page of a hole: drop it, the retried fault maps the block */
		unmap_mapping_pages(inode->i_mapping, vmf->pgoff, 1, false);
		ret = VM_FAULT_NOPAGE;
	}
	/* 0: the core makes the existing PTE writable */
out:
	filemap_invalidate_unlock_shared(inode->i_mapping);
	sb_end_pagefault(sb);
	return ret;
}

static const struct vm_operations_struct zuf_dax_vm_ops = {
	.fault		= zuf_fault,
	.page_mkwrite	= zuf_pfn_mkwrite,
	.pfn_mkwrite	= zuf_pfn_mkwrite,
};

int zuf_file_mmap(struct file *file, struct vm_area_struct *vma)
{
	file_accessed(file);
	vma->vm_ops = &zuf_dax_vm_ops;
	vma->vm_flags |= VM_MIXEDMAP;
	return 0;
}
