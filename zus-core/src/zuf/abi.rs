//! Rust mirror of kernel/zuf_abi.h, the one source of truth of what zuf.ko and zus exchange.
//! `tests/zuf_abi.rs` compiles a C program against the header and checks every size, offset
//! and constant here against it. Change both together and bump [`ZUF_ABI_VERSION`].

pub const ZUF_ABI_VERSION: u32 = 9;
pub const ZUF_DEVICE_NAME: &str = "zuf";

pub const ZUF_FS_NAME_MAX: usize = 16;
pub const ZUF_PATH_MAX: usize = 256;
pub const ZUF_OPTIONS_MAX: usize = 512;
pub const ZUF_NAME_MAX: usize = 256;
pub const ZUF_MAX_CPUS: usize = 256;
pub const ZUF_OP_BUF_SIZE: usize = 16384;
pub const ZUF_WINDOW_OFFSET: u64 = 1 << 20;
pub const ZUF_WINDOW_SIZE: u64 = 4 << 20;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ZufRegisterFs {
    pub abi_version: u32,
    pub flags: u32,
    pub fs_name: [u8; ZUF_FS_NAME_MAX],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ZufNumaMap {
    pub nr_cpus: u32,
    pub nr_nodes: u32,
    pub cpu_to_node: [u16; ZUF_MAX_CPUS],
}

pub const ZUF_M_NONE: u32 = 0;
pub const ZUF_M_MOUNT: u32 = 1;
pub const ZUF_M_UMOUNT: u32 = 2;
pub const ZUF_M_REMOUNT: u32 = 3;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ZufMountReq {
    pub op: u32,
    pub result: i32,
    pub sb_id: u64,
    pub flags: u64,
    pub dev_size: u64,
    pub root_ino: u64,
    pub block_size: u32,
    pub pad: u32,
    pub dev_path: [u8; ZUF_PATH_MAX],
    pub options: [u8; ZUF_OPTIONS_MAX],
    pub message: [u8; ZUF_PATH_MAX],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ZufPmemFd {
    pub sb_id: u64,
    pub fd: i32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ZufZtInit {
    pub cpu: u32,
    pub flags: u32,
}

/// ZufZtInit.flags: the polling channel (serves the other CPUs' calls; one per server).
pub const ZUF_ZT_POLL: u32 = 0x1;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ZufZtWait {
    pub prev_result: i32,
    pub prev_len: u32,
}

/// Linux's _IOC encoding: direction, size, type, number.
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((ZUF_IOC_MAGIC as u64) << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
pub const ZUF_IOC_MAGIC: u8 = b'Z';
pub const ZUF_IOC_REGISTER_FS: u64 = ioc(IOC_WRITE, 1, std::mem::size_of::<ZufRegisterFs>());
pub const ZUF_IOC_NUMA_MAP: u64 = ioc(IOC_READ, 2, std::mem::size_of::<ZufNumaMap>());
pub const ZUF_IOC_MOUNT_WAIT: u64 = ioc(IOC_READ | IOC_WRITE, 3, std::mem::size_of::<ZufMountReq>());
pub const ZUF_IOC_PMEM_FD: u64 = ioc(IOC_READ | IOC_WRITE, 4, std::mem::size_of::<ZufPmemFd>());
pub const ZUF_IOC_ZT_INIT: u64 = ioc(IOC_WRITE, 5, std::mem::size_of::<ZufZtInit>());
pub const ZUF_IOC_ZT_WAIT: u64 = ioc(IOC_READ | IOC_WRITE, 6, std::mem::size_of::<ZufZtWait>());

/// Operation codes (enum zuf_op).
pub mod op {
    pub const LOOKUP: u32 = 1;
    pub const GETATTR: u32 = 2;
    pub const SETATTR: u32 = 3;
    pub const MKNOD: u32 = 4;
    pub const MKDIR: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const READLINK: u32 = 7;
    pub const LINK: u32 = 8;
    pub const UNLINK: u32 = 9;
    pub const RMDIR: u32 = 10;
    pub const RENAME: u32 = 11;
    pub const READDIR: u32 = 12;
    pub const READ: u32 = 13;
    pub const WRITE: u32 = 14;
    pub const FSYNC: u32 = 15;
    pub const FALLOCATE: u32 = 16;
    pub const LLSEEK: u32 = 17;
    pub const STATFS: u32 = 18;
    pub const SETXATTR: u32 = 19;
    pub const GETXATTR: u32 = 20;
    pub const LISTXATTR: u32 = 21;
    pub const REMOVEXATTR: u32 = 22;
    pub const GET_BLOCK: u32 = 23;
    pub const OPEN: u32 = 24;
    pub const RELEASE: u32 = 25;
    pub const EVICT: u32 = 26;
    pub const FIEMAP: u32 = 27;
    pub const TMPFILE: u32 = 28;
    pub const CREATE: u32 = 29;
    pub const MAX: u32 = 30;
}

pub const ZUF_EVICT_BATCH: usize = 16;
pub const ZUF_F_APPEND: u32 = 0x1;
pub const ZUF_F_DATASYNC: u32 = 0x2;
pub const ZUF_F_FOR_WRITE: u32 = 0x4;
pub const ZUF_F_EXCL: u32 = 0x1;
pub const ZUF_F_RENAME_NOREPLACE: u32 = 0x1;
pub const ZUF_F_RENAME_EXCHANGE: u32 = 0x2;
pub const ZUF_F_RENAME_WHITEOUT: u32 = 0x4;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZufTime {
    pub sec: i64,
    pub nsec: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZufAttr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: ZufTime,
    pub mtime: ZufTime,
    pub ctime: ZufTime,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
    pub flags: u32,
    pub generation: u32,
    /// Creation time (statx's btime).
    pub btime: ZufTime,
}

pub const ZUF_IFLAGS: u32 = 0x0001_00f8;

pub const ZUF_SET_MODE: u32 = 0x01;
pub const ZUF_SET_UID: u32 = 0x02;
pub const ZUF_SET_GID: u32 = 0x04;
pub const ZUF_SET_SIZE: u32 = 0x08;
pub const ZUF_SET_ATIME: u32 = 0x10;
pub const ZUF_SET_MTIME: u32 = 0x20;
pub const ZUF_SET_ATIME_NOW: u32 = 0x40;
pub const ZUF_SET_MTIME_NOW: u32 = 0x80;
pub const ZUF_SET_CTIME: u32 = 0x100;
pub const ZUF_SET_FLAGS: u32 = 0x200;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZufSetattr {
    pub valid: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: ZufTime,
    pub mtime: ZufTime,
    pub ctime: ZufTime,
    pub flags: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZufStatfs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZufDirent {
    pub ino: u64,
    pub next_offset: u64,
    pub reclen: u16,
    pub r#type: u8,
    pub name_len: u8,
    pub pad: u32,
}

/// One extent of a FIEMAP reply.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZufExtent {
    pub logical: u64,
    pub physical: u64,
    pub length: u64,
    pub flags: u32,
    pub pad: u32,
}

pub const ZUF_EXTENT_LAST: u32 = 0x1;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ZufOpBuf {
    pub op: u32,
    pub flags: u32,
    pub sb_id: u64,
    pub ino: u64,
    pub ino2: u64,
    pub offset: u64,
    pub len: u64,
    pub window_off: u64,
    pub mode: u32,
    pub rdev: u32,
    pub uid: u32,
    pub gid: u32,
    pub name_len: u32,
    pub name2_len: u32,
    pub name: [u8; ZUF_NAME_MAX],
    pub name2: [u8; ZUF_NAME_MAX],
    pub set: ZufSetattr,
    /// Unlinked inodes the kernel dropped since its last call: released before this one.
    pub nr_evict: u32,
    pub pad2: u32,
    pub evict: [u64; ZUF_EVICT_BATCH],
    pub result: i32,
    pub pad: u32,
    pub out_len: u64,
    pub out_offset: u64,
    pub attr: ZufAttr,
    pub statfs: ZufStatfs,
}

const _: () = assert!(std::mem::size_of::<ZufOpBuf>() <= ZUF_OP_BUF_SIZE);

/// Where a polling channel's handshake lies in its operation buffer.
pub const ZUF_POLL_CTL_OFF: usize = 8192;

/// A polling channel's handshake (struct zuf_poll_ctl): `posted` is the kernel's, `answered`
/// the server's, each on its own cache line.
#[repr(C)]
#[derive(Debug, Default)]
pub struct ZufPollCtl {
    pub posted: std::sync::atomic::AtomicU64,
    pub pad1: [u64; 7],
    pub answered: std::sync::atomic::AtomicU64,
    pub pad2: [u64; 7],
}

const _: () = assert!(std::mem::size_of::<ZufOpBuf>() <= ZUF_POLL_CTL_OFF);
const _: () = assert!(ZUF_POLL_CTL_OFF + std::mem::size_of::<ZufPollCtl>() <= ZUF_OP_BUF_SIZE);
