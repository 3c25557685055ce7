//! The types the filesystem operations take and return (kept in DRAM, transport-neutral).
//! Transports convert these to their protocol types; nothing here knows FUSE or zuf.ko.

use std::time::{SystemTime, UNIX_EPOCH};

/// Inode number as seen by users (st_ino). The root directory is [`ROOT_INO`].
pub type Ino = u64;
/// The root directory's inode number (as in FUSE).
pub const ROOT_INO: Ino = 1;
/// Longest file name in bytes.
pub const NAME_MAX: usize = 255;
/// Longest symlink target in bytes.
pub const SYMLINK_MAX: usize = 4095;
/// Longest extended attribute name and value in bytes.
pub const XATTR_NAME_MAX: usize = 255;
pub const XATTR_VALUE_MAX: usize = 65536;
/// Largest file size (16 TiB).
pub const MAX_FILE_SIZE: u64 = 1 << 44;
/// Most hard links to one inode.
pub const LINK_MAX: u32 = 65000;

/// A point in time with nanoseconds, as stored on PM. Packed to 12 bytes: every inode keeps
/// three in DRAM (`make bench` measures DRAM per inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[repr(C, packed(4))]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

impl Timespec {
    /// The time to stamp a change with: the coarse clock, as the kernel's own filesystems
    /// stamp theirs (current_time(): the time of the last timer tick, 1-10 ms steps). It is
    /// read from the vDSO's page whatever the clock source; CLOCK_REALTIME reads the clock
    /// source, which in a guest without a usable TSC (HPET under qemu TCG) is a system call and
    /// a device read of about 3 us, more than a 4 KiB write costs zpmfs there.
    pub fn now() -> Self {
        if let Some((sec, nsec)) = crate::device::coarse_realtime() {
            return Timespec { sec, nsec };
        }
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timespec { sec: d.as_secs() as i64, nsec: d.subsec_nanos() }
    }
    pub fn to_system_time(self) -> SystemTime {
        if self.sec >= 0 {
            UNIX_EPOCH + std::time::Duration::new(self.sec as u64, self.nsec)
        } else {
            UNIX_EPOCH - std::time::Duration::new(self.sec.unsigned_abs(), 0)
                + std::time::Duration::new(0, self.nsec)
        }
    }
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timespec { sec: d.as_secs() as i64, nsec: d.subsec_nanos() },
            Err(e) => {
                let d = e.duration();
                let mut sec = -(d.as_secs() as i64);
                let mut nsec = 0;
                if d.subsec_nanos() > 0 {
                    sec -= 1;
                    nsec = 1_000_000_000 - d.subsec_nanos();
                }
                Timespec { sec, nsec }
            }
        }
    }
}

/// The kind of an inode (the S_IFMT bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileKind {
    /// From the S_IFMT bits of a mode.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::Regular,
            libc::S_IFDIR => FileKind::Directory,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            _ => return None,
        })
    }
    /// The directory entry type (DT_*) of this kind, as readdir reports it.
    pub fn dirent_type(self) -> u8 {
        match self {
            FileKind::Regular => libc::DT_REG,
            FileKind::Directory => libc::DT_DIR,
            FileKind::Symlink => libc::DT_LNK,
            FileKind::CharDevice => libc::DT_CHR,
            FileKind::BlockDevice => libc::DT_BLK,
            FileKind::Fifo => libc::DT_FIFO,
            FileKind::Socket => libc::DT_SOCK,
        }
    }
    /// The S_IFMT bits of this kind.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::Regular => libc::S_IFREG,
            FileKind::Directory => libc::S_IFDIR,
            FileKind::Symlink => libc::S_IFLNK,
            FileKind::CharDevice => libc::S_IFCHR,
            FileKind::BlockDevice => libc::S_IFBLK,
            FileKind::Fifo => libc::S_IFIFO,
            FileKind::Socket => libc::S_IFSOCK,
        }
    }
}

/// Attributes of an inode (what stat(2) shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    /// Tells this inode apart from earlier ones with the same number (file handles).
    pub generation: u32,
    pub size: u64,
    /// Allocated space in 512-byte units.
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// Creation time (statx's btime): from the creation record, never changes.
    pub btime: Timespec,
    pub kind: FileKind,
    /// Permission bits (mode & 0o7777).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// chattr's flags ([`crate::iflags`]).
    pub flags: u32,
    pub rdev: u32,
    /// Preferred I/O size.
    pub blksize: u32,
}

/// A time to set: a given value or "now" (utimensat's UTIME_NOW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOrNow {
    Now,
    At(Timespec),
}

/// What setattr changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// Permission bits (the file type bits are ignored).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Truncate or extend to this size (regular files only).
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
    pub ctime: Option<Timespec>,
}

/// Who is calling: the owner of new inodes, and the identity for permission checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl Caller {
    pub const ROOT: Caller = Caller { uid: 0, gid: 0, pid: 0 };
}

/// rename(2) flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenameFlags {
    /// RENAME_NOREPLACE: fail with EEXIST if the target exists.
    pub noreplace: bool,
    /// RENAME_EXCHANGE: swap the two names atomically.
    pub exchange: bool,
    /// RENAME_WHITEOUT: leave a whiteout (a 0:0 character device, as overlayfs uses) at the
    /// old name, in the same atomic step.
    pub whiteout: bool,
}

/// fallocate(2) modes that zpmfs supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallocMode {
    /// Allocate (zeroed) blocks; extend the size unless `keep_size`.
    Allocate { keep_size: bool },
    /// FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: free the range, reads return zeros.
    PunchHole,
    /// FALLOC_FL_ZERO_RANGE: the range reads as zeros afterwards, blocks stay allocated.
    ZeroRange { keep_size: bool },
    /// FALLOC_FL_COLLAPSE_RANGE: the range goes and what follows moves down by its length
    /// (block-aligned, and ending before the end of the file).
    CollapseRange,
    /// FALLOC_FL_INSERT_RANGE: what follows the offset moves up, leaving a hole of the length
    /// (block-aligned, the offset inside the file).
    InsertRange,
}

/// lseek(2) whence values that need the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekWhence {
    Data,
    Hole,
}

/// setxattr(2) flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XattrFlags {
    /// XATTR_CREATE: fail if it exists.
    pub create: bool,
    /// XATTR_REPLACE: fail if it does not exist.
    pub replace: bool,
}

/// One directory entry as readdir returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: Ino,
    /// The offset to pass to the next readdir call to continue after this entry.
    /// Stable across concurrent changes to the directory.
    pub next_offset: u64,
    pub kind: FileKind,
    pub name: Vec<u8>,
}

/// statfs(2) figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFs {
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_avail: u64,
    pub files: u64,
    pub files_free: u64,
    pub name_max: u32,
}

/// Where a stretch of a file's data lives on the device (fiemap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataExtent {
    /// Byte offset in the file.
    pub offset: u64,
    /// Byte offset in the device.
    pub device_offset: u64,
    pub len: u64,
    /// The file's last extent.
    pub last: bool,
}

/// Where a file page lives on PM, for DAX mmap: the byte offset of its 4 KiB block in the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataBlock {
    pub device_offset: u64,
}
