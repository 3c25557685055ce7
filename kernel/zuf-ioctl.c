// SPDX-License-Identifier: GPL-2.0
/*
 * zuf-ioctl.c - ioctls on files and directories of a zuf filesystem. The one served is the
 * shutdown ioctl that XFS and ext4 share (_IOR('X', 125, __u32), fstests' godown and
 * `xfs_io -x -c shutdown`): from then on every operation of the superblock fails with EIO
 * until it is unmounted. zpmfs is synchronous, so what every call before it returned is
 * already durable, and the three flags (flush data and log, flush the log, flush nothing)
 * ask for the same thing. Unknown ioctls are ENOTTY.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/capability.h>
#include "zuf.h"

#define ZUF_IOC_GOINGDOWN		_IOR('X', 125, __u32)
#define ZUF_GOING_FLAGS_NOLOGFLUSH	2	/* the largest flag value */

static long zuf_shutdown(struct super_block *sb, void __user *arg)
{
	struct zuf_sb_info *sbi = ZUF_SB(sb);
	u32 flags;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (get_user(flags, (u32 __user *)arg))
		return -EFAULT;
	if (flags > ZUF_GOING_FLAGS_NOLOGFLUSH)
		return -EINVAL;
	if (!xchg(&sbi->shut_down, true))
		pr_info("%s: shut down (flags %u); every operation fails with EIO until unmount\n",
			sb->s_id, flags);
	return 0;
}

long zuf_ioctl_file(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case ZUF_IOC_GOINGDOWN:
		return zuf_shutdown(file_inode(file)->i_sb, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}
