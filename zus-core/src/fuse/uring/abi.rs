//! The kernel's FUSE-over-io_uring layout (include/uapi/linux/fuse.h, Linux 6.14+) and the
//! FUSE structs the ring carries, as byte offsets: requests are read and replies written with
//! plain little-endian loads and stores, so a short or odd request is an error, never UB.

/// Size of `fuse_uring_req_header.in_out` (a fuse_in_header in, a fuse_out_header out).
pub const IN_OUT_HEADER_SZ: usize = 128;
/// Size of `fuse_uring_req_header.op_in` (the request's fixed per-op struct).
pub const OP_IN_OUT_SZ: usize = 128;
/// Offset of `ring_ent_in_out` (struct fuse_uring_ent_in_out) in the header.
pub const ENT_IN_OUT_OFF: usize = IN_OUT_HEADER_SZ + OP_IN_OUT_SZ;
/// sizeof(struct fuse_uring_req_header).
pub const REQ_HEADER_SZ: usize = ENT_IN_OUT_OFF + 32;
/// fuse_uring_ent_in_out fields.
pub const ENT_COMMIT_ID_OFF: usize = ENT_IN_OUT_OFF + 8;
pub const ENT_PAYLOAD_SZ_OFF: usize = ENT_IN_OUT_OFF + 16;

/// enum fuse_uring_cmd (the SQE's cmd_op).
pub const CMD_REGISTER: u32 = 1;
pub const CMD_COMMIT_AND_FETCH: u32 = 2;

/// FUSE_MIN_READ_BUFFER: the kernel's floor for the payload buffer.
pub const MIN_READ_BUFFER: usize = 8192;

/// struct fuse_uring_cmd_req in the SQE's 80-byte command area: flags, commit_id, qid.
pub fn cmd_req(commit_id: u64, qid: u16) -> [u8; 80] {
    let mut c = [0u8; 80];
    c[8..16].copy_from_slice(&commit_id.to_le_bytes());
    c[16..18].copy_from_slice(&qid.to_le_bytes());
    c
}

/// sizeof(struct fuse_out_header).
pub const OUT_HEADER_SZ: usize = 16;

/// Opcodes (enum fuse_opcode) that zus serves or must answer.
pub mod op {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FSYNC: u32 = 20;
    pub const SETXATTR: u32 = 21;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const REMOVEXATTR: u32 = 24;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const FSYNCDIR: u32 = 30;
    pub const ACCESS: u32 = 34;
    pub const CREATE: u32 = 35;
    pub const DESTROY: u32 = 38;
    pub const IOCTL: u32 = 39;
    pub const BATCH_FORGET: u32 = 42;
    pub const FALLOCATE: u32 = 43;
    pub const READDIRPLUS: u32 = 44;
    pub const RENAME2: u32 = 45;
    pub const LSEEK: u32 = 46;
    pub const COPY_FILE_RANGE: u32 = 47;
    pub const TMPFILE: u32 = 51;
    pub const STATX: u32 = 52;
}

/// fuse_setattr_in.valid bits.
pub mod fattr {
    pub const MODE: u32 = 1 << 0;
    pub const UID: u32 = 1 << 1;
    pub const GID: u32 = 1 << 2;
    pub const SIZE: u32 = 1 << 3;
    pub const ATIME: u32 = 1 << 4;
    pub const MTIME: u32 = 1 << 5;
    pub const ATIME_NOW: u32 = 1 << 7;
    pub const MTIME_NOW: u32 = 1 << 8;
    pub const CTIME: u32 = 1 << 10;
}

/// fuse_fsync_in.fsync_flags: only the data.
pub const FSYNC_FDATASYNC: u32 = 1;

/// Sizes of the reply structs (the kernel wants them exact).
pub const ATTR_SZ: usize = 88;
pub const ENTRY_OUT_SZ: usize = 40 + ATTR_SZ;
pub const ATTR_OUT_SZ: usize = 16 + ATTR_SZ;
pub const OPEN_OUT_SZ: usize = 16;
pub const WRITE_OUT_SZ: usize = 8;
pub const STATFS_OUT_SZ: usize = 80;
pub const LSEEK_OUT_SZ: usize = 8;
/// struct fuse_ioctl_out: result, flags, in_iovs, out_iovs.
pub const IOCTL_OUT_SZ: usize = 16;
/// struct fuse_statx_out: attr_valid, attr_valid_nsec, flags, spare[2], then struct fuse_statx
/// (256 bytes).
pub const STATX_OUT_SZ: usize = 32 + 256;
/// statx masks: the basic fields, and the creation time.
pub const STATX_BASIC_STATS: u32 = 0x7ff;
pub const STATX_BTIME: u32 = 0x800;
/// statx attributes zpmfs keeps (STATX_ATTR_IMMUTABLE, APPEND, NODUMP: the same bits as
/// chattr's FS_*_FL).
pub const STATX_ATTRS: u64 = 0x70;
/// struct fuse_dirent without its name.
pub const DIRENT_SZ: usize = 24;

/// Little-endian field access on a byte slice; `None` past its end.
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

/// Store `v` at `off`; the caller sized `b` for it (a reply struct in a buffer it checked).
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_uapi_header() {
        // struct fuse_uring_req_header: in_out[128], op_in[128], fuse_uring_ent_in_out (32).
        assert_eq!(REQ_HEADER_SZ, 288);
        assert_eq!(ENT_COMMIT_ID_OFF, 264);
        assert_eq!(ENT_PAYLOAD_SZ_OFF, 272);
        let c = cmd_req(0x0102_0304_0506_0708, 0x0a0b);
        assert_eq!(&c[0..8], &[0; 8]);
        assert_eq!(u64_at(&c, 8), Some(0x0102_0304_0506_0708));
        assert_eq!(&c[16..18], &0x0a0bu16.to_le_bytes());
        assert!(c[18..].iter().all(|&b| b == 0));
    }

    #[test]
    fn reads_past_the_end_are_none() {
        let b = [1u8, 0, 0, 0, 2];
        assert_eq!(u32_at(&b, 0), Some(1));
        assert_eq!(u32_at(&b, 2), None);
        assert_eq!(u64_at(&b, 0), None);
        assert_eq!(u32_at(&b, usize::MAX - 1), None);
    }
}
