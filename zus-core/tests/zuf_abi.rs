//! The kernel ABI has one source of truth, kernel/zuf_abi.h: compile a C program against it
//! and check every size, field offset and constant of the Rust mirror.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

use zus_core::zuf::abi::*;

const PROBE: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include "zuf_abi.h"
#define S(t) printf("size %s %zu\n", #t, sizeof(struct t));
#define O(t, f) printf("off %s.%s %zu\n", #t, #f, offsetof(struct t, f));
#define C(c) printf("const %s %llu\n", #c, (unsigned long long)(c));
int main(void) {
  S(zuf_register_fs) O(zuf_register_fs, fs_name)
  S(zuf_numa_map) O(zuf_numa_map, cpu_to_node)
  S(zuf_mount_req) O(zuf_mount_req, sb_id) O(zuf_mount_req, flags) O(zuf_mount_req, dev_size)
  O(zuf_mount_req, root_ino) O(zuf_mount_req, block_size) O(zuf_mount_req, dev_path)
  O(zuf_mount_req, options) O(zuf_mount_req, message)
  S(zuf_pmem_fd) O(zuf_pmem_fd, fd)
  S(zuf_zt_init) S(zuf_zt_wait) O(zuf_zt_wait, prev_len)
  S(zuf_poll_ctl) O(zuf_poll_ctl, posted) O(zuf_poll_ctl, answered)
  S(zuf_time) S(zuf_attr) O(zuf_attr, atime) O(zuf_attr, mtime) O(zuf_attr, ctime) O(zuf_attr, mode)
  O(zuf_attr, nlink) O(zuf_attr, uid) O(zuf_attr, gid) O(zuf_attr, rdev) O(zuf_attr, blksize) O(zuf_attr, flags) O(zuf_attr, generation) O(zuf_attr, btime)
  S(zuf_setattr) O(zuf_setattr, size) O(zuf_setattr, atime) O(zuf_setattr, ctime) O(zuf_setattr, flags)
  S(zuf_statfs) O(zuf_statfs, ffree) O(zuf_statfs, bsize) O(zuf_statfs, namelen)
  S(zuf_extent) O(zuf_extent, physical) O(zuf_extent, length) O(zuf_extent, flags)
  S(zuf_dirent) O(zuf_dirent, next_offset) O(zuf_dirent, reclen) O(zuf_dirent, type) O(zuf_dirent, name_len)
  S(zuf_op_buf) O(zuf_op_buf, sb_id) O(zuf_op_buf, ino) O(zuf_op_buf, ino2) O(zuf_op_buf, offset)
  O(zuf_op_buf, len) O(zuf_op_buf, window_off) O(zuf_op_buf, mode) O(zuf_op_buf, rdev) O(zuf_op_buf, uid)
  O(zuf_op_buf, gid) O(zuf_op_buf, name_len) O(zuf_op_buf, name2_len) O(zuf_op_buf, name)
  O(zuf_op_buf, name2) O(zuf_op_buf, set) O(zuf_op_buf, nr_evict) O(zuf_op_buf, evict) O(zuf_op_buf, result) O(zuf_op_buf, out_len)
  O(zuf_op_buf, out_offset) O(zuf_op_buf, attr) O(zuf_op_buf, statfs)
  C(ZUF_ABI_VERSION) C(ZUF_FS_NAME_MAX) C(ZUF_PATH_MAX) C(ZUF_OPTIONS_MAX) C(ZUF_NAME_MAX)
  C(ZUF_MAX_CPUS) C(ZUF_OP_BUF_SIZE) C(ZUF_WINDOW_OFFSET) C(ZUF_WINDOW_SIZE)
  C(ZUF_IOC_REGISTER_FS) C(ZUF_IOC_NUMA_MAP) C(ZUF_IOC_MOUNT_WAIT) C(ZUF_IOC_PMEM_FD)
  C(ZUF_IOC_ZT_INIT) C(ZUF_IOC_ZT_WAIT) C(ZUF_ZT_POLL) C(ZUF_POLL_CTL_OFF)
  C(ZUF_M_NONE) C(ZUF_M_MOUNT) C(ZUF_M_UMOUNT) C(ZUF_M_REMOUNT)
  C(ZUF_OP_LOOKUP) C(ZUF_OP_GETATTR) C(ZUF_OP_SETATTR) C(ZUF_OP_MKNOD) C(ZUF_OP_MKDIR)
  C(ZUF_OP_SYMLINK) C(ZUF_OP_READLINK) C(ZUF_OP_LINK) C(ZUF_OP_UNLINK) C(ZUF_OP_RMDIR)
  C(ZUF_OP_RENAME) C(ZUF_OP_READDIR) C(ZUF_OP_READ) C(ZUF_OP_WRITE) C(ZUF_OP_FSYNC)
  C(ZUF_OP_FALLOCATE) C(ZUF_OP_LLSEEK) C(ZUF_OP_STATFS) C(ZUF_OP_SETXATTR) C(ZUF_OP_GETXATTR)
  C(ZUF_OP_LISTXATTR) C(ZUF_OP_REMOVEXATTR) C(ZUF_OP_GET_BLOCK) C(ZUF_OP_OPEN) C(ZUF_OP_RELEASE)
  C(ZUF_OP_EVICT) C(ZUF_OP_FIEMAP) C(ZUF_OP_TMPFILE) C(ZUF_OP_CREATE) C(ZUF_OP_MAX) C(ZUF_EVICT_BATCH) C(ZUF_EXTENT_LAST)
  C(ZUF_F_APPEND) C(ZUF_F_DATASYNC) C(ZUF_F_FOR_WRITE) C(ZUF_F_EXCL) C(ZUF_F_RENAME_NOREPLACE) C(ZUF_F_RENAME_EXCHANGE) C(ZUF_F_RENAME_WHITEOUT)
  C(ZUF_SET_MODE) C(ZUF_SET_UID) C(ZUF_SET_GID) C(ZUF_SET_SIZE) C(ZUF_SET_ATIME) C(ZUF_SET_MTIME)
  C(ZUF_SET_ATIME_NOW) C(ZUF_SET_MTIME_NOW) C(ZUF_SET_CTIME) C(ZUF_SET_FLAGS) C(ZUF_IFLAGS)
  return 0;
}
"#;

fn c_facts() -> HashMap<String, u64> {
    let dir = std::env::temp_dir().join(format!("zuf-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("probe.c");
    let bin = dir.join("probe");
    std::fs::write(&src, PROBE).unwrap();
    let kernel = concat!(env!("CARGO_MANIFEST_DIR"), "/../kernel");
    let cc = Command::new("cc")
        .args(["-Wall", "-Werror", "-I", kernel, "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("a C compiler (cc) is needed to check the ABI");
    assert!(cc.status.success(), "probe did not compile:\n{}", String::from_utf8_lossy(&cc.stderr));
    let out = Command::new(&bin).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut p = l.split_whitespace();
            let (_, key, val) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            (key.to_string(), val.parse().unwrap())
        })
        .collect()
}

#[test]
fn zuf_abi_matches_the_c_header() {
    let c = c_facts();
    let mut checked = 0;
    let mut check = |key: &str, rust: u64| {
        let want = *c.get(key).unwrap_or_else(|| panic!("{key} not printed by the probe"));
        assert_eq!(rust, want, "{key}: Rust says {rust}, the C header says {want}");
        checked += 1;
    };
    macro_rules! size {
        ($t:ty, $c:literal) => {
            check($c, size_of::<$t>() as u64)
        };
    }
    macro_rules! off {
        ($t:ty, $f:ident, $c:literal) => {
            check(concat!($c, ".", stringify!($f)), offset_of!($t, $f) as u64)
        };
    }
    size!(ZufRegisterFs, "zuf_register_fs");
    off!(ZufRegisterFs, fs_name, "zuf_register_fs");
    size!(ZufNumaMap, "zuf_numa_map");
    off!(ZufNumaMap, cpu_to_node, "zuf_numa_map");
    size!(ZufMountReq, "zuf_mount_req");
    for (f, o) in [
        ("sb_id", offset_of!(ZufMountReq, sb_id)),
        ("flags", offset_of!(ZufMountReq, flags)),
        ("dev_size", offset_of!(ZufMountReq, dev_size)),
        ("root_ino", offset_of!(ZufMountReq, root_ino)),
        ("block_size", offset_of!(ZufMountReq, block_size)),
        ("dev_path", offset_of!(ZufMountReq, dev_path)),
        ("options", offset_of!(ZufMountReq, options)),
        ("message", offset_of!(ZufMountReq, message)),
    ] {
        check(&format!("zuf_mount_req.{f}"), o as u64);
    }
    size!(ZufPmemFd, "zuf_pmem_fd");
    off!(ZufPmemFd, fd, "zuf_pmem_fd");
    size!(ZufZtInit, "zuf_zt_init");
    size!(ZufZtWait, "zuf_zt_wait");
    off!(ZufZtWait, prev_len, "zuf_zt_wait");
    size!(ZufPollCtl, "zuf_poll_ctl");
    off!(ZufPollCtl, posted, "zuf_poll_ctl");
    off!(ZufPollCtl, answered, "zuf_poll_ctl");
    size!(ZufTime, "zuf_time");
    size!(ZufAttr, "zuf_attr");
    off!(ZufAttr, atime, "zuf_attr");
    off!(ZufAttr, mtime, "zuf_attr");
    off!(ZufAttr, ctime, "zuf_attr");
    off!(ZufAttr, mode, "zuf_attr");
    off!(ZufAttr, nlink, "zuf_attr");
    off!(ZufAttr, uid, "zuf_attr");
    off!(ZufAttr, gid, "zuf_attr");
    off!(ZufAttr, rdev, "zuf_attr");
    off!(ZufAttr, blksize, "zuf_attr");
    off!(ZufAttr, flags, "zuf_attr");
    off!(ZufAttr, generation, "zuf_attr");
    off!(ZufAttr, btime, "zuf_attr");
    size!(ZufSetattr, "zuf_setattr");
    off!(ZufSetattr, size, "zuf_setattr");
    off!(ZufSetattr, atime, "zuf_setattr");
    off!(ZufSetattr, ctime, "zuf_setattr");
    off!(ZufSetattr, flags, "zuf_setattr");
    size!(ZufStatfs, "zuf_statfs");
    off!(ZufStatfs, ffree, "zuf_statfs");
    off!(ZufStatfs, bsize, "zuf_statfs");
    off!(ZufStatfs, namelen, "zuf_statfs");
    size!(ZufExtent, "zuf_extent");
    off!(ZufExtent, physical, "zuf_extent");
    off!(ZufExtent, length, "zuf_extent");
    off!(ZufExtent, flags, "zuf_extent");
    size!(ZufDirent, "zuf_dirent");
    off!(ZufDirent, next_offset, "zuf_dirent");
    off!(ZufDirent, reclen, "zuf_dirent");
    check("zuf_dirent.type", offset_of!(ZufDirent, r#type) as u64);
    off!(ZufDirent, name_len, "zuf_dirent");
    size!(ZufOpBuf, "zuf_op_buf");
    off!(ZufOpBuf, sb_id, "zuf_op_buf");
    off!(ZufOpBuf, ino, "zuf_op_buf");
    off!(ZufOpBuf, ino2, "zuf_op_buf");
    off!(ZufOpBuf, offset, "zuf_op_buf");
    off!(ZufOpBuf, len, "zuf_op_buf");
    off!(ZufOpBuf, window_off, "zuf_op_buf");
    off!(ZufOpBuf, mode, "zuf_op_buf");
    off!(ZufOpBuf, rdev, "zuf_op_buf");
    off!(ZufOpBuf, uid, "zuf_op_buf");
    off!(ZufOpBuf, gid, "zuf_op_buf");
    off!(ZufOpBuf, name_len, "zuf_op_buf");
    off!(ZufOpBuf, name2_len, "zuf_op_buf");
    off!(ZufOpBuf, name, "zuf_op_buf");
    off!(ZufOpBuf, name2, "zuf_op_buf");
    off!(ZufOpBuf, set, "zuf_op_buf");
    off!(ZufOpBuf, nr_evict, "zuf_op_buf");
    off!(ZufOpBuf, evict, "zuf_op_buf");
    off!(ZufOpBuf, result, "zuf_op_buf");
    off!(ZufOpBuf, out_len, "zuf_op_buf");
    off!(ZufOpBuf, out_offset, "zuf_op_buf");
    off!(ZufOpBuf, attr, "zuf_op_buf");
    off!(ZufOpBuf, statfs, "zuf_op_buf");
    for (name, v) in [
        ("ZUF_ABI_VERSION", ZUF_ABI_VERSION as u64),
        ("ZUF_FS_NAME_MAX", ZUF_FS_NAME_MAX as u64),
        ("ZUF_PATH_MAX", ZUF_PATH_MAX as u64),
        ("ZUF_OPTIONS_MAX", ZUF_OPTIONS_MAX as u64),
        ("ZUF_NAME_MAX", ZUF_NAME_MAX as u64),
        ("ZUF_MAX_CPUS", ZUF_MAX_CPUS as u64),
        ("ZUF_OP_BUF_SIZE", ZUF_OP_BUF_SIZE as u64),
        ("ZUF_WINDOW_OFFSET", ZUF_WINDOW_OFFSET),
        ("ZUF_WINDOW_SIZE", ZUF_WINDOW_SIZE),
        ("ZUF_IOC_REGISTER_FS", ZUF_IOC_REGISTER_FS),
        ("ZUF_IOC_NUMA_MAP", ZUF_IOC_NUMA_MAP),
        ("ZUF_IOC_MOUNT_WAIT", ZUF_IOC_MOUNT_WAIT),
        ("ZUF_IOC_PMEM_FD", ZUF_IOC_PMEM_FD),
        ("ZUF_IOC_ZT_INIT", ZUF_IOC_ZT_INIT),
        ("ZUF_IOC_ZT_WAIT", ZUF_IOC_ZT_WAIT),
        ("ZUF_ZT_POLL", ZUF_ZT_POLL as u64),
        ("ZUF_POLL_CTL_OFF", ZUF_POLL_CTL_OFF as u64),
        ("ZUF_M_NONE", ZUF_M_NONE as u64),
        ("ZUF_M_MOUNT", ZUF_M_MOUNT as u64),
        ("ZUF_M_UMOUNT", ZUF_M_UMOUNT as u64),
        ("ZUF_M_REMOUNT", ZUF_M_REMOUNT as u64),
        ("ZUF_OP_LOOKUP", op::LOOKUP as u64),
        ("ZUF_OP_GETATTR", op::GETATTR as u64),
        ("ZUF_OP_SETATTR", op::SETATTR as u64),
        ("ZUF_OP_MKNOD", op::MKNOD as u64),
        ("ZUF_OP_MKDIR", op::MKDIR as u64),
        ("ZUF_OP_SYMLINK", op::SYMLINK as u64),
        ("ZUF_OP_READLINK", op::READLINK as u64),
        ("ZUF_OP_LINK", op::LINK as u64),
        ("ZUF_OP_UNLINK", op::UNLINK as u64),
        ("ZUF_OP_RMDIR", op::RMDIR as u64),
        ("ZUF_OP_RENAME", op::RENAME as u64),
        ("ZUF_OP_READDIR", op::READDIR as u64),
        ("ZUF_OP_READ", op::READ as u64),
        ("ZUF_OP_WRITE", op::WRITE as u64),
        ("ZUF_OP_FSYNC", op::FSYNC as u64),
        ("ZUF_OP_FIEMAP", op::FIEMAP as u64),
        ("ZUF_OP_TMPFILE", op::TMPFILE as u64),
        ("ZUF_OP_CREATE", op::CREATE as u64),
        ("ZUF_EVICT_BATCH", ZUF_EVICT_BATCH as u64),
        ("ZUF_EXTENT_LAST", ZUF_EXTENT_LAST as u64),
        ("ZUF_OP_FALLOCATE", op::FALLOCATE as u64),
        ("ZUF_OP_LLSEEK", op::LLSEEK as u64),
        ("ZUF_OP_STATFS", op::STATFS as u64),
        ("ZUF_OP_SETXATTR", op::SETXATTR as u64),
        ("ZUF_OP_GETXATTR", op::GETXATTR as u64),
        ("ZUF_OP_LISTXATTR", op::LISTXATTR as u64),
        ("ZUF_OP_REMOVEXATTR", op::REMOVEXATTR as u64),
        ("ZUF_OP_GET_BLOCK", op::GET_BLOCK as u64),
        ("ZUF_OP_OPEN", op::OPEN as u64),
        ("ZUF_OP_RELEASE", op::RELEASE as u64),
        ("ZUF_OP_EVICT", op::EVICT as u64),
        ("ZUF_OP_MAX", op::MAX as u64),
        ("ZUF_F_APPEND", ZUF_F_APPEND as u64),
        ("ZUF_F_DATASYNC", ZUF_F_DATASYNC as u64),
        ("ZUF_F_FOR_WRITE", ZUF_F_FOR_WRITE as u64),
        ("ZUF_F_EXCL", ZUF_F_EXCL as u64),
        ("ZUF_F_RENAME_NOREPLACE", ZUF_F_RENAME_NOREPLACE as u64),
        ("ZUF_F_RENAME_EXCHANGE", ZUF_F_RENAME_EXCHANGE as u64),
        ("ZUF_F_RENAME_WHITEOUT", ZUF_F_RENAME_WHITEOUT as u64),
        ("ZUF_SET_MODE", ZUF_SET_MODE as u64),
        ("ZUF_SET_UID", ZUF_SET_UID as u64),
        ("ZUF_SET_GID", ZUF_SET_GID as u64),
        ("ZUF_SET_SIZE", ZUF_SET_SIZE as u64),
        ("ZUF_SET_ATIME", ZUF_SET_ATIME as u64),
        ("ZUF_SET_MTIME", ZUF_SET_MTIME as u64),
        ("ZUF_SET_ATIME_NOW", ZUF_SET_ATIME_NOW as u64),
        ("ZUF_SET_MTIME_NOW", ZUF_SET_MTIME_NOW as u64),
        ("ZUF_SET_CTIME", ZUF_SET_CTIME as u64),
        ("ZUF_SET_FLAGS", ZUF_SET_FLAGS as u64),
        ("ZUF_IFLAGS", ZUF_IFLAGS as u64),
    ] {
        check(name, v);
    }
    // Everything the probe printed was compared.
    assert_eq!(checked, c.len(), "the probe printed facts this test does not check");
}

#[test]
fn the_chattr_flags_zuf_carries_are_the_ones_pmfs_keeps() {
    assert_eq!(ZUF_IFLAGS, pmfs::iflags::SUPPORTED);
}
