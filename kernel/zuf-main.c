// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-main.c - module init and exit, the /dev/zuf misc device, per-open file contexts, ioctl
 * dispatch, and server death: when the last /dev/zuf file of a server is released the server is
 * dead, its filesystem types are unregistered, and every waiting and later call gets -EIO.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/slab.h>
#include <linux/cpumask.h>
#include "zuf.h"

DEFINE_MUTEX(zuf_lock);			/* zuf_cur_srv, attachment, fs type slots */
static struct zuf_server *zuf_cur_srv;	/* the live server new files attach to */

static void zuf_server_free(struct kref *kref)
{
	struct zuf_server *srv = container_of(kref, struct zuf_server, kref);

	kfree(srv->chans);
	kfree(srv);
}

void zuf_server_put(struct zuf_server *srv)
{
	kref_put(&srv->kref, zuf_server_free);
}

bool zuf_server_dead(struct zuf_server *srv)
{
	return READ_ONCE(srv->dead);
}

static struct zuf_server *zuf_server_alloc(void)
{
	struct zuf_server *srv;

	srv = kzalloc(sizeof(*srv), GFP_KERNEL);
	if (!srv)
		return ERR_PTR(-ENOMEM);
	srv->chans = kcalloc(nr_cpu_ids, sizeof(*srv->chans), GFP_KERNEL);
	if (!srv->chans) {
		kfree(srv);
		return ERR_PTR(-ENOMEM);
	}
	kref_init(&srv->kref);
	spin_lock_init(&srv->lock);
	srv->next_sb_id = 1;
	INIT_LIST_HEAD(&srv->sbs);
	mutex_init(&srv->mount_mutex);
	srv->mstate = ZUF_MS_IDLE;
	init_waitqueue_head(&srv->mount_srv_wq);
	init_waitqueue_head(&srv->mount_wq);
	return srv;
}

/* Attach @file to the live server (creating one); returns it or an ERR_PTR. */
struct zuf_server *zuf_file_attach(struct file *file)
{
	struct zuf_file *zf = file->private_data;
	struct zuf_server *srv;

	mutex_lock(&zuf_lock);
	srv = zf->srv;
	if (srv)
		goto out;
	srv = zuf_cur_srv;
	if (!srv) {
		srv = zuf_server_alloc();
		if (IS_ERR(srv))
			goto out;
		zuf_cur_srv = srv;
	} else {
		kref_get(&srv->kref);
	}
	spin_lock(&srv->lock);
	srv->nr_files++;
	spin_unlock(&srv->lock);
	zf->srv = srv;
out:
	mutex_unlock(&zuf_lock);
	return srv;
}

/* The last file of @srv is gone: the server is dead. Called under zuf_lock. */
static void zuf_server_die(struct zuf_server *srv)
{
	int i;

	spin_lock(&srv->lock);
	srv->dead = true;
	spin_unlock(&srv->lock);
	if (zuf_cur_srv == srv)
		zuf_cur_srv = NULL;
	for (i = 0; i < ZUF_MAX_FS_TYPES; i++) {
		struct zuf_fs_type *zft = srv->types[i];
		int err;

		if (!zft)
			continue;
		srv->types[i] = NULL;
		if (zft->registered) {
			err = unregister_filesystem(&zft->fst);
			if (err)
				pr_err("unregister %s: %d\n", zft->name, err);
			zft->registered = false;
		}
		zft->srv = NULL;
	}
	zuf_ctl_server_died(srv);
	pr_info("server died: filesystems unregistered, calls fail with EIO\n");
}

static int zuf_open(struct inode *inode, struct file *file)
{
	struct zuf_file *zf;

	zf = kzalloc(sizeof(*zf), GFP_KERNEL);
	if (!zf)
		return -ENOMEM;
	file->private_data = zf;
	return 0;
}

static int zuf_release(struct inode *inode, struct file *file)
{
	struct zuf_file *zf = file->private_data;
	struct zuf_server *srv = zf->srv;
	bool last;

	if (zf->chan)
		zuf_chan_release(zf->chan);
	if (srv) {
		mutex_lock(&zuf_lock);
		spin_lock(&srv->lock);
		last = --srv->nr_files == 0;
		spin_unlock(&srv->lock);
		if (last)
			zuf_server_die(srv);
		mutex_unlock(&zuf_lock);
		zuf_server_put(srv);
	}
	kfree(zf);
	return 0;
}

static long zuf_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case ZUF_IOC_REGISTER_FS:
		return zuf_ioc_register_fs(file, uarg);
	case ZUF_IOC_NUMA_MAP:
		return zuf_ioc_numa_map(file, uarg);
	case ZUF_IOC_MOUNT_WAIT:
		return zuf_ioc_mount_wait(file, uarg);
	case ZUF_IOC_PMEM_FD:
		return zuf_ioc_pmem_fd(file, uarg);
	case ZUF_IOC_ZT_INIT:
		return zuf_ioc_zt_init(file, uarg);
	case ZUF_IOC_ZT_WAIT:
		return zuf_ioc_zt_wait(file, uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations zuf_dev_fops = {
	.owner		= THIS_MODULE,
	.open		= zuf_open,
	.release	= zuf_release,
	.unlocked_ioctl	= zuf_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= zuf_zt_mmap,
	.llseek		= noop_llseek,
};

static struct miscdevice zuf_miscdev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= ZUF_DEVICE_NAME,
	.fops	= &zuf_dev_fops,
	.mode	= 0600,
};

static int __init zuf_init(void)
{
	int err;

	err = zuf_inode_cache_init();
	if (err)
		return err;
	err = misc_register(&zuf_miscdev);
	if (err) {
		pr_err("cannot register /dev/%s: %d\n", ZUF_DEVICE_NAME, err);
		zuf_inode_cache_destroy();
		return err;
	}
	pr_info("loaded, ABI %d\n", ZUF_ABI_VERSION);
	return 0;
}

static void __exit zuf_exit(void)
{
	misc_deregister(&zuf_miscdev);
	zuf_inode_cache_destroy();
}

module_init(zuf_init);
module_exit(zuf_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("zuf: kernel shim of the zus user-mode filesystem server");
MODULE_AUTHOR("zpmfs");
