// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-ctl.c - the control path: ZUF_IOC_REGISTER_FS (a filesystem type registered for the
 * server), ZUF_IOC_NUMA_MAP, the mount thread's request/answer rendezvous (ZUF_IOC_MOUNT_WAIT
 * and zuf_mount_request), and ZUF_IOC_PMEM_FD (an fd whose mmap maps a mounted device's PM).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/anon_inodes.h>
#include <linux/capability.h>
#include <linux/nodemask.h>
#include <linux/ctype.h>
#include <linux/mm.h>
#include "zuf.h"

/* Static: a dead server's superblock still points at its s_type until unmounted. */
static struct zuf_fs_type zuf_fs_types[ZUF_MAX_FS_TYPES];

static bool zuf_fs_name_ok(const char *name)
{
	size_t i, len = strnlen(name, ZUF_FS_NAME_MAX);

	if (len == 0 || len == ZUF_FS_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!(isalnum(c) || c == '_' || c == '-'))
			return false;
	}
	return true;
}

long zuf_ioc_register_fs(struct file *file, void __user *arg)
{
	struct zuf_register_fs reg;
	struct zuf_server *srv;
	struct zuf_fs_type *zft = NULL;
	int i, slot = -1, err;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&reg, arg, sizeof(reg)))
		return -EFAULT;
	if (reg.abi_version != ZUF_ABI_VERSION) {
		pr_err("server speaks ABI %u, this module %d\n", reg.abi_version,
		       ZUF_ABI_VERSION);
		return -EPROTO;
	}
	if (reg.flags || !zuf_fs_name_ok(reg.fs_name))
		return -EINVAL;
	srv = zuf_file_attach(file);
	if (IS_ERR(srv))
		return PTR_ERR(srv);

	mutex_lock(&zuf_lock);
	for (i = 0; i < ZUF_MAX_FS_TYPES; i++) {
		if (!srv->types[i]) {
			slot = i;
			break;
		}
	}
	for (i = 0; i < ZUF_MAX_FS_TYPES; i++) {
		struct zuf_fs_type *z = &zuf_fs_types[i];

		if (!z->srv && !z->registered && !z->nr_sbs) {
			zft = z;
			break;
		}
	}
	if (slot < 0 || !zft) {
		err = -ENOSPC;
		goto out;
	}
	strscpy(zft->name, reg.fs_name, sizeof(zft->name));
	zft->fst.name = zft->name;
	zft->fst.owner = THIS_MODULE;
	/*
	 * Idmapped mounts: the VFS maps ids for permission checks, stat, chown and ACLs; creates
	 * send the mapped owner (zuf_call.owner_ns).
	 */
	zft->fst.fs_flags = FS_REQUIRES_DEV | FS_ALLOW_IDMAP;
	zft->fst.mount = zuf_mount;
	zft->fst.kill_sb = zuf_kill_sb;
	err = register_filesystem(&zft->fst);
	if (err)
		goto out;
	zft->registered = true;
	zft->srv = srv;
	srv->types[slot] = zft;
	pr_info("registered filesystem type %s\n", zft->name);
out:
	mutex_unlock(&zuf_lock);
	return err;
}

/* A superblock of @zft is gone (zuf_lock held by the caller). */
void zuf_fs_type_put(struct zuf_fs_type *zft)
{
	WARN_ON_ONCE(!zft->nr_sbs);
	zft->nr_sbs--;
}

long zuf_ioc_numa_map(struct file *file, void __user *arg)
{
	struct zuf_numa_map *map;
	unsigned int cpu;
	long err = 0;

	if (nr_cpu_ids > ZUF_MAX_CPUS)
		return -E2BIG;
	map = kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map)
		return -ENOMEM;
	map->nr_cpus = nr_cpu_ids;
	map->nr_nodes = num_online_nodes();
	for_each_possible_cpu(cpu)
		map->cpu_to_node[cpu] = cpu_to_node(cpu);
	if (copy_to_user(arg, map, sizeof(*map)))
		err = -EFAULT;
	kfree(map);
	return err;
}

/* ---- mount rendezvous ---- */

/* An answer counts only from the file that took the request, and for that request's op. */
static void zuf_mount_take_answer(struct zuf_server *srv, struct file *file,
				  const struct zuf_mount_req *ans)
{
	spin_lock(&srv->lock);
	if (srv->mtaker != file || ans->op != srv->mreq.op)
		goto out;	/* stale or foreign */
	if (srv->mstate == ZUF_MS_TAKEN) {
		srv->mreq.result = ans->result;
		srv->mreq.root_ino = ans->root_ino;
		srv->mreq.block_size = ans->block_size;
		memcpy(srv->mreq.message, ans->message, sizeof(srv->mreq.message));
		srv->mreq.message[sizeof(srv->mreq.message) - 1] = '\0';
		srv->mstate = ZUF_MS_DONE;
		wake_up_all(&srv->mount_wq);
	} else if (srv->mstate == ZUF_MS_ABANDONED) {
		srv->mstate = ZUF_MS_IDLE;
		wake_up_all(&srv->mount_wq);
	}
out:
	spin_unlock(&srv->lock);
}

static bool zuf_mount_posted(struct zuf_server *srv)
{
	bool ret;

	spin_lock(&srv->lock);
	ret = srv->dead || srv->mstate == ZUF_MS_PENDING;
	spin_unlock(&srv->lock);
	return ret;
}

long zuf_ioc_mount_wait(struct file *file, void __user *arg)
{
	struct zuf_mount_req *req;
	struct zuf_server *srv;
	long err;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	srv = zuf_file_attach(file);
	if (IS_ERR(srv))
		return PTR_ERR(srv);
	req = kmalloc(sizeof(*req), GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	if (copy_from_user(req, arg, sizeof(*req))) {
		err = -EFAULT;
		goto out;
	}
	if (req->op != ZUF_M_NONE)
		zuf_mount_take_answer(srv, file, req);

	err = wait_event_interruptible(srv->mount_srv_wq, zuf_mount_posted(srv));
	if (err)
		goto out;
	spin_lock(&srv->lock);
	if (srv->dead || srv->mstate != ZUF_MS_PENDING) {
		err = srv->dead ? -EIO : -EAGAIN;
		spin_unlock(&srv->lock);
		goto out;
	}
	srv->mstate = ZUF_MS_TAKEN;
	srv->mtaker = file;
	memcpy(req, &srv->mreq, sizeof(*req));
	spin_unlock(&srv->lock);
	if (copy_to_user(arg, req, sizeof(*req))) {
		spin_lock(&srv->lock);
		if (srv->mstate == ZUF_MS_TAKEN) {
			srv->mstate = ZUF_MS_PENDING;
			wake_up(&srv->mount_srv_wq);
		}
		spin_unlock(&srv->lock);
		err = -EFAULT;
	}
out:
	kfree(req);
	return err;
}

static bool zuf_mstate_is(struct zuf_server *srv, enum zuf_mstate st)
{
	bool ret;

	spin_lock(&srv->lock);
	ret = srv->dead || srv->mstate == st;
	spin_unlock(&srv->lock);
	return ret;
}

/*
 * Send @req to the mount thread and wait for its answer, which is copied back into @req
 * (result, root_ino, block_size, message). Returns 0 when answered (the caller validates
 * req->result), -EIO when the server is or dies, -EINTR when the caller is killed.
 */
int zuf_mount_request(struct zuf_server *srv, struct zuf_mount_req *req)
{
	int err;

	err = mutex_lock_killable(&srv->mount_mutex);
	if (err)
		return -EINTR;
	/* An abandoned request's answer may still be owed: wait for it. */
	if (wait_event_killable(srv->mount_wq, zuf_mstate_is(srv, ZUF_MS_IDLE))) {
		err = -EINTR;
		goto out_unlock;
	}
	spin_lock(&srv->lock);
	if (srv->dead) {
		spin_unlock(&srv->lock);
		err = -EIO;
		goto out_unlock;
	}
	memcpy(&srv->mreq, req, sizeof(*req));
	srv->mreq.result = -EIO;
	srv->mtaker = NULL;
	srv->mstate = ZUF_MS_PENDING;
	spin_unlock(&srv->lock);
	wake_up(&srv->mount_srv_wq);

	err = wait_event_killable(srv->mount_wq, zuf_mstate_is(srv, ZUF_MS_DONE));
	spin_lock(&srv->lock);
	if (srv->mstate == ZUF_MS_DONE) {
		req->result = srv->mreq.result;
		req->root_ino = srv->mreq.root_ino;
		req->block_size = srv->mreq.block_size;
		memcpy(req->message, srv->mreq.message, sizeof(req->message));
		srv->mstate = ZUF_MS_IDLE;
		err = 0;
	} else if (srv->dead) {
		srv->mstate = ZUF_MS_IDLE;
		err = -EIO;
	} else {
		srv->mstate = srv->mstate == ZUF_MS_TAKEN ? ZUF_MS_ABANDONED : ZUF_MS_IDLE;
		err = -EINTR;
	}
	spin_unlock(&srv->lock);
out_unlock:
	mutex_unlock(&srv->mount_mutex);
	return err;
}

void zuf_ctl_server_died(struct zuf_server *srv)
{
	wake_up_all(&srv->mount_wq);
	wake_up_all(&srv->mount_srv_wq);
}

/* ---- PM mapping for the server ---- */

static int zuf_pmem_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct zuf_pmem *pm = file->private_data;
	unsigned long len = vma->vm_end - vma->vm_start;
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	int err;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (off > pm->size || len > pm->size - off)
		return -EINVAL;
	mutex_lock(&zuf_lock);
	if (pm->dead) {
		err = -EIO;
		goto out;
	}
	pm->mapping = file->f_mapping;
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTCOPY;
	err = remap_pfn_range(vma, vma->vm_start, pm->base_pfn + vma->vm_pgoff, len,
			      vma->vm_page_prot);
out:
	mutex_unlock(&zuf_lock);
	return err;
}

static int zuf_pmem_release(struct inode *inode, struct file *file)
{
	struct zuf_pmem *pm = file->private_data;

	mutex_lock(&zuf_lock);
	if (!pm->dead)
		list_del(&pm->list);
	mutex_unlock(&zuf_lock);
	kfree(pm);
	return 0;
}

static const struct file_operations zuf_pmem_fops = {
	.owner		= THIS_MODULE,
	.mmap		= zuf_pmem_mmap,
	.release	= zuf_pmem_release,
	.llseek		= noop_llseek,
};

long zuf_ioc_pmem_fd(struct file *file, void __user *arg)
{
	struct zuf_pmem_fd req;
	struct zuf_sb_info *sbi, *found = NULL;
	struct zuf_server *srv;
	struct zuf_pmem *pm;
	int fd;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	srv = zuf_file_attach(file);
	if (IS_ERR(srv))
		return PTR_ERR(srv);
	pm = kzalloc(sizeof(*pm), GFP_KERNEL);
	if (!pm)
		return -ENOMEM;

	mutex_lock(&zuf_lock);
	list_for_each_entry(sbi, &srv->sbs, srv_list) {
		if (sbi->sb_id == req.sb_id && sbi->pm_kaddr) {
			found = sbi;
			break;
		}
	}
	if (!found) {
		fd = -ENOENT;
		goto out_free;
	}
	pm->base_pfn = pfn_t_to_pfn(found->pm_pfn);
	pm->size = found->dev_size;
	/* Each fd its own inode, so that umount can revoke its mappings alone. */
	fd = anon_inode_getfd_secure("[zuf-pmem]", &zuf_pmem_fops, pm, O_RDWR | O_CLOEXEC,
				     NULL);
	if (fd < 0)
		goto out_free;
	list_add(&pm->list, &found->pmem_files);
	mutex_unlock(&zuf_lock);
	req.fd = fd;
	if (copy_to_user(arg, &req, sizeof(req)))
		return -EFAULT;	/* the fd stays installed; the server closes it or exits */
	return 0;

out_free:
	mutex_unlock(&zuf_lock);
	kfree(pm);
	return fd;
}

/* The superblock is going away: the server loses its mappings of the device. */
void zuf_pmem_revoke(struct zuf_sb_info *sbi)
{
	struct zuf_pmem *pm, *tmp;

	mutex_lock(&zuf_lock);
	list_for_each_entry_safe(pm, tmp, &sbi->pmem_files, list) {
		pm->dead = true;
		list_del(&pm->list);
		if (pm->mapping)
			unmap_mapping_range(pm->mapping, 0, 0, 1);
	}
	mutex_unlock(&zuf_lock);
}
