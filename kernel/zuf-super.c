// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-super.c - mount, umount, remount, statfs and show_options. The kernel opens the PM block
 * device exclusively, requires DAX, finds the device's PFN range, and asks the server's mount
 * thread to mount it (ZUF_M_MOUNT); the root inode comes from GETATTR of the root_ino it
 * answers. Unmount sends ZUF_M_UMOUNT and revokes the server's mappings of the device.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/blkdev.h>
#include <linux/backing-dev.h>
#include <linux/dax.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include "zuf.h"

#define ZUF_SUPER_MAGIC		0x5a504d46	/* "ZPMF" */
/* The superblock flags a server is told about (MS_* values), not the kernel's own. */
#define ZUF_SB_FLAGS		(SB_RDONLY | SB_SYNCHRONOUS | SB_MANDLOCK | SB_DIRSYNC | \
				 SB_NOATIME | SB_NODIRATIME | SB_LAZYTIME)

static int zuf_send_mount_op(struct zuf_sb_info *sbi, u32 op, unsigned long flags,
			     const char *dev_name, const char *options,
			     struct zuf_mount_req *req)
{
	int err;

	memset(req, 0, sizeof(*req));
	req->op = op;
	req->sb_id = sbi->sb_id;
	req->flags = flags;
	req->dev_size = sbi->dev_size;
	if (dev_name)
		strscpy(req->dev_path, dev_name, sizeof(req->dev_path));
	if (options)
		strscpy(req->options, options, sizeof(req->options));
	err = zuf_mount_request(sbi->srv, req);
	if (err)
		return err;
	req->message[sizeof(req->message) - 1] = '\0';
	return zuf_check_result(req->result);
}

static void zuf_send_umount(struct super_block *sb)
{
	struct zuf_sb_info *sbi = ZUF_SB(sb);
	struct zuf_mount_req *req;
	int err;

	if (!sbi->mounted)
		return;
	sbi->mounted = false;
	if (zuf_server_dead(sbi->srv))
		return;
	req = kmalloc(sizeof(*req), GFP_KERNEL);
	if (!req) {
		pr_err("%s: no memory for the umount request\n", sb->s_id);
		return;
	}
	err = zuf_send_mount_op(sbi, ZUF_M_UMOUNT, 0, NULL, NULL, req);
	if (err)
		pr_err("%s: server umount failed: %d%s%s\n", sb->s_id, err,
		       req->message[0] ? ": " : "", req->message);
	kfree(req);
}

static void zuf_put_super(struct super_block *sb)
{
	zuf_send_umount(sb);
	zuf_pmem_revoke(ZUF_SB(sb));
}

static int zuf_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct super_block *sb = dentry->d_sb;
	struct zuf_call op = { .op = ZUF_OP_STATFS };
	const struct zuf_statfs *st = &op.statfs;
	int err;

	err = zuf_dispatch(ZUF_SB(sb), &op);
	if (err)
		return err;
	if (st->bfree > st->blocks || st->bavail > st->bfree || st->ffree > st->files ||
	    st->bsize == 0 || st->bsize > PAGE_SIZE || !is_power_of_2(st->bsize)) {
		pr_warn_ratelimited("%s: bad statfs reply\n", sb->s_id);
		return -EIO;
	}
	buf->f_type = ZUF_SUPER_MAGIC;
	buf->f_bsize = st->bsize;
	buf->f_frsize = st->bsize;
	buf->f_blocks = st->blocks;
	buf->f_bfree = st->bfree;
	buf->f_bavail = st->bavail;
	buf->f_files = st->files;
	buf->f_ffree = st->ffree;
	buf->f_namelen = min_t(u32, st->namelen ? st->namelen : ZUF_NAME_MAX - 1,
			       ZUF_NAME_MAX - 1);
	buf->f_fsid = u64_to_fsid(huge_encode_dev(sb->s_bdev->bd_dev));
	return 0;
}

static int zuf_show_options(struct seq_file *m, struct dentry *root)
{
	struct zuf_sb_info *sbi = ZUF_SB(root->d_sb);

	if (sbi->options && sbi->options[0]) {
		seq_putc(m, ',');
		seq_escape(m, sbi->options, " \t\n\\");
	}
	return 0;
}

static int zuf_remount(struct super_block *sb, int *flags, char *data)
{
	struct zuf_sb_info *sbi = ZUF_SB(sb);
	struct zuf_mount_req *req;
	char *options = NULL;
	int err;

	if (data && strnlen(data, ZUF_OPTIONS_MAX) >= ZUF_OPTIONS_MAX)
		return -EINVAL;
	if (data) {
		options = kstrdup(data, GFP_KERNEL);
		if (!options)
			return -ENOMEM;
	}
	req = kmalloc(sizeof(*req), GFP_KERNEL);
	if (!req) {
		err = -ENOMEM;
		goto out;
	}
	err = sync_filesystem(sb);
	if (err)
		goto out;
	err = zuf_send_mount_op(sbi, ZUF_M_REMOUNT, *flags & ZUF_SB_FLAGS, NULL,
				data ? data : "", req);
	if (err) {
		pr_err("%s: remount refused: %d%s%s\n", sb->s_id, err,
		       req->message[0] ? ": " : "", req->message);
		goto out;
	}
	if (options)
		swap(options, sbi->options);
out:
	kfree(req);
	kfree(options);
	return err;
}

static struct kmem_cache *zuf_inode_cachep;

static struct inode *zuf_alloc_inode(struct super_block *sb)
{
	struct zuf_inode_info *zi = alloc_inode_sb(sb, zuf_inode_cachep, GFP_KERNEL);

	if (!zi)
		return NULL;
	zi->flags = 0;
	zi->btime = (struct timespec64){};
	return &zi->vfs_inode;
}

static void zuf_free_inode(struct inode *inode)
{
	kmem_cache_free(zuf_inode_cachep, ZUF_I(inode));
}

static void zuf_inode_once(void *obj)
{
	inode_init_once(&((struct zuf_inode_info *)obj)->vfs_inode);
}

int zuf_inode_cache_init(void)
{
	zuf_inode_cachep = kmem_cache_create("zuf_inode_cache", sizeof(struct zuf_inode_info), 0,
					     SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT, zuf_inode_once);
	return zuf_inode_cachep ? 0 : -ENOMEM;
}

void zuf_inode_cache_destroy(void)
{
	rcu_barrier();	/* free_inode runs after an RCU grace period */
	kmem_cache_destroy(zuf_inode_cachep);
}

static const struct super_operations zuf_sops = {
	.alloc_inode	= zuf_alloc_inode,
	.free_inode	= zuf_free_inode,
	.evict_inode	= zuf_evict_inode,
	.put_super	= zuf_put_super,
	.statfs		= zuf_statfs,
	.show_options	= zuf_show_options,
	.remount_fs	= zuf_remount,
};

/* Find the device's PM: DAX required, one contiguous PFN range. */
static int zuf_map_pm(struct super_block *sb, struct zuf_sb_info *sbi)
{
	long nr, avail;
	int id;

	sbi->dax = fs_dax_get_by_bdev(sb->s_bdev, &sbi->dax_off, NULL, NULL);
	if (!sbi->dax) {
		pr_err("%s: not a DAX device; zpmfs needs PM in fsdax mode (ndctl create-namespace --mode=fsdax)\n",
		       sb->s_id);
		return -EINVAL;
	}
	sbi->dev_size = bdev_nr_bytes(sb->s_bdev);
	if (sbi->dev_size < PAGE_SIZE || !PAGE_ALIGNED(sbi->dev_size) ||
	    !PAGE_ALIGNED(sbi->dax_off)) {
		pr_err("%s: device size %llu or offset %llu not page aligned\n", sb->s_id,
		       sbi->dev_size, sbi->dax_off);
		return -EINVAL;
	}
	nr = sbi->dev_size >> PAGE_SHIFT;
	id = dax_read_lock();
	avail = dax_direct_access(sbi->dax, sbi->dax_off >> PAGE_SHIFT, nr, DAX_ACCESS,
				  &sbi->pm_kaddr, &sbi->pm_pfn);
	dax_read_unlock(id);
	if (avail < 0) {
		pr_err("%s: dax_direct_access failed: %ld\n", sb->s_id, avail);
		sbi->pm_kaddr = NULL;
		return avail;
	}
	if (avail < nr) {
		pr_err("%s: PM is not one contiguous range (%ld of %ld pages)\n", sb->s_id,
		       avail, nr);
		sbi->pm_kaddr = NULL;
		return -EINVAL;
	}
	return 0;
}

/* Bind @sbi to the server of @zft. */
static int zuf_attach_sb(struct zuf_sb_info *sbi, struct zuf_fs_type *zft)
{
	struct zuf_server *srv;
	int err = 0;

	mutex_lock(&zuf_lock);
	srv = zft->srv;
	if (!srv || zuf_server_dead(srv)) {
		err = -EIO;
		goto out;
	}
	kref_get(&srv->kref);
	sbi->srv = srv;
	sbi->zft = zft;
	zft->nr_sbs++;
	spin_lock(&srv->lock);
	sbi->sb_id = srv->next_sb_id++;
	spin_unlock(&srv->lock);
	list_add(&sbi->srv_list, &srv->sbs);
out:
	mutex_unlock(&zuf_lock);
	return err;
}

static int zuf_fill_super(struct super_block *sb, struct zuf_fs_type *zft,
			  const char *dev_name, const char *data)
{
	struct zuf_call op = { .op = ZUF_OP_GETATTR };
	struct zuf_mount_req *req = NULL;
	struct zuf_sb_info *sbi;
	struct inode *root;
	int err;

	if (strlen(dev_name) >= ZUF_PATH_MAX)
		return -ENAMETOOLONG;
	if (data && strnlen(data, ZUF_OPTIONS_MAX) >= ZUF_OPTIONS_MAX)
		return -EINVAL;
	sbi = kzalloc(sizeof(*sbi), GFP_KERNEL);
	if (!sbi)
		return -ENOMEM;
	INIT_LIST_HEAD(&sbi->pmem_files);
	INIT_LIST_HEAD(&sbi->srv_list);
	spin_lock_init(&sbi->evict_lock);
	sb->s_fs_info = sbi;
	sbi->options = kstrdup(data ? data : "", GFP_KERNEL);
	if (!sbi->options)
		return -ENOMEM;
	err = zuf_attach_sb(sbi, zft);
	if (err)
		return err;

	sb->s_op = &zuf_sops;
	sb->s_xattr = zuf_xattr_handlers;
	sb->s_export_op = &zuf_export_ops;
	sb->s_flags |= SB_POSIXACL;	/* zuf-acl.c; the umask is applied there too */
	sb->s_magic = ZUF_SUPER_MAGIC;
	sb->s_maxbytes = MAX_LFS_FILESIZE;
	sb->s_time_gran = 1;
	if (!sb_set_blocksize(sb, PAGE_SIZE)) {
		pr_err("%s: cannot use a %lu-byte block size\n", sb->s_id, PAGE_SIZE);
		return -EINVAL;
	}
	err = zuf_map_pm(sb, sbi);
	if (err)
		return err;

	req = kmalloc(sizeof(*req), GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	err = zuf_send_mount_op(sbi, ZUF_M_MOUNT, sb->s_flags & ZUF_SB_FLAGS, dev_name,
				sbi->options, req);
	if (err) {
		pr_err("%s: mount failed: %d%s%s\n", sb->s_id, err,
		       req->message[0] ? ": " : "", req->message);
		goto out;
	}
	sbi->mounted = true;
	if (!req->root_ino || req->block_size != PAGE_SIZE) {
		pr_err("%s: bad mount reply (root %llu, block size %u)\n", sb->s_id,
		       req->root_ino, req->block_size);
		err = -EIO;
		goto out_umount;
	}
	sbi->root_ino = req->root_ino;

	op.ino = sbi->root_ino;
	err = zuf_dispatch(sbi, &op);
	if (err)
		goto out_umount;
	err = zuf_check_attr(&op.attr, sbi->root_ino);
	if (!err && !S_ISDIR(op.attr.mode))
		err = -EIO;
	if (err) {
		pr_err("%s: bad root inode from the server\n", sb->s_id);
		goto out_umount;
	}
	root = zuf_iget(sb, &op.attr, true);
	if (IS_ERR(root)) {
		err = PTR_ERR(root);
		goto out_umount;
	}
	sb->s_root = d_make_root(root);
	if (!sb->s_root) {
		err = -ENOMEM;
		goto out_umount;
	}
	goto out;

out_umount:
	zuf_send_umount(sb);
out:
	kfree(req);
	return err;
}

static int zuf_test_super(struct super_block *sb, void *data)
{
	return sb->s_bdev == data;
}

static int zuf_set_super(struct super_block *sb, void *data)
{
	sb->s_bdev = data;
	sb->s_dev = sb->s_bdev->bd_dev;
	sb->s_bdi = bdi_get(sb->s_bdev->bd_disk->bdi);
	return 0;
}

struct dentry *zuf_mount(struct file_system_type *fst, int flags, const char *dev_name,
			 void *data)
{
	struct zuf_fs_type *zft = container_of(fst, struct zuf_fs_type, fst);
	fmode_t mode = FMODE_READ | FMODE_EXCL;
	struct block_device *bdev;
	struct super_block *sb;
	int err;

	if (!(flags & SB_RDONLY))
		mode |= FMODE_WRITE;
	bdev = blkdev_get_by_path(dev_name, mode, fst);
	if (IS_ERR(bdev))
		return ERR_CAST(bdev);
	sb = sget(fst, zuf_test_super, zuf_set_super, flags | SB_NOSEC, bdev);
	if (IS_ERR(sb)) {
		err = PTR_ERR(sb);
		goto out_bdev;
	}
	if (sb->s_root) {
		/* already mounted: share it, unless modes differ or its server died */
		if (((flags ^ sb->s_flags) & SB_RDONLY) || zuf_server_dead(ZUF_SB(sb)->srv)) {
			err = zuf_server_dead(ZUF_SB(sb)->srv) ? -EIO : -EBUSY;
			deactivate_locked_super(sb);
			goto out_bdev;
		}
		up_write(&sb->s_umount);
		blkdev_put(bdev, mode);
		down_write(&sb->s_umount);
	} else {
		sb->s_mode = mode;
		snprintf(sb->s_id, sizeof(sb->s_id), "%pg", bdev);
		err = zuf_fill_super(sb, zft, dev_name, data);
		if (err) {
			deactivate_locked_super(sb);
			return ERR_PTR(err);
		}
		sb->s_flags |= SB_ACTIVE;
		bdev->bd_super = sb;
	}
	return dget(sb->s_root);

out_bdev:
	blkdev_put(bdev, mode);
	return ERR_PTR(err);
}

void zuf_kill_sb(struct super_block *sb)
{
	struct zuf_sb_info *sbi = ZUF_SB(sb);

	kill_block_super(sb);	/* evicts the inodes, put_super sends UMOUNT */
	if (!sbi)
		return;
	if (sbi->mounted)
		zuf_send_umount(sb);	/* a failed fill_super */
	zuf_pmem_revoke(sbi);
	if (sbi->dax)
		fs_put_dax(sbi->dax, NULL);
	if (sbi->srv) {
		mutex_lock(&zuf_lock);
		list_del(&sbi->srv_list);
		zuf_fs_type_put(sbi->zft);
		mutex_unlock(&zuf_lock);
		zuf_server_put(sbi->srv);
	}
	kfree(sbi->options);
	kfree(sbi);
	sb->s_fs_info = NULL;
}
