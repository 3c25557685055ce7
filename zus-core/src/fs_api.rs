//! The transport-neutral filesystem interface of zus.
//!
//! Every transport (FUSE today, zuf.ko later) decodes its requests into calls of [`ZusFs`] and
//! encodes the results back; a filesystem implementation knows nothing of the transports.
//! The methods mirror the VFS operations; every call is durable when it returns.

use std::path::Path;

pub use pmfs::vfs::*;
pub use pmfs::{Error, MountOptions, MountReport, Result};

/// A filesystem served by zus. Shared by all server threads, hence `&self` and `Send + Sync`.
pub trait ZusFs: Send + Sync {
    /// Mount the image or device at `paths` (several: the members of a device set).
    fn mount(paths: &[std::path::PathBuf], opts: &MountOptions) -> Result<Self>
    where
        Self: Sized;
    /// Mount a PM device someone else mapped (zuf.ko maps the device it owns into zus);
    /// `path` only names it in messages.
    fn mount_mapped(pm: pmfs::persist::PmRegion, path: &Path, opts: &MountOptions) -> Result<Self>
    where
        Self: Sized;
    /// What mount found and did (for the mount message).
    fn mount_report(&self) -> MountReport;
    /// Per NUMA node of a device set: blocks, free, local and spilled allocations.
    fn node_stats(&self) -> Vec<pmfs::alloc::NodeStats> {
        Vec::new()
    }
    /// Make the image clean; later calls fail.
    fn unmount(&self) -> Result<()>;

    fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr>;
    fn getattr(&self, ino: Ino) -> Result<Attr>;
    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr>;
    /// Set chattr's flags (FS_IOC_SETFLAGS values, pmfs::iflags), as `caller`.
    fn set_flags(&self, ino: Ino, flags: u32, caller: Caller) -> Result<Attr>;
    /// Create a non-directory inode; `mode` holds the type bits.
    fn mknod(&self, parent: Ino, name: &[u8], mode: u32, rdev: u32, caller: Caller) -> Result<Attr>;
    fn mkdir(&self, parent: Ino, name: &[u8], mode: u32, caller: Caller) -> Result<Attr>;
    fn symlink(&self, parent: Ino, name: &[u8], target: &[u8], caller: Caller) -> Result<Attr>;
    fn readlink(&self, ino: Ino) -> Result<Vec<u8>>;
    fn link(&self, ino: Ino, new_parent: Ino, new_name: &[u8]) -> Result<Attr>;
    fn unlink(&self, parent: Ino, name: &[u8]) -> Result<()>;
    fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<()>;
    /// Returns the inode that lost the name `new_name` (its link count dropped), if any: zuf.ko
    /// does not look a rename's target up first, so the reply tells it what was replaced.
    fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<Option<Ino>>;
    /// A regular file no directory names (O_TMPFILE), owned as if created in `parent`, with
    /// link count 0: the caller holds it ([`ZusFs::open`]) and [`ZusFs::link`] may name it.
    fn tmpfile(&self, parent: Ino, mode: u32, caller: Caller) -> Result<Attr>;
    /// The shutdown ioctl: every later call fails with EIO until unmount.
    fn shutdown(&self);
    /// An open handle keeps an unlinked inode alive until [`ZusFs::release`].
    fn open(&self, ino: Ino) -> Result<()>;
    fn release(&self, ino: Ino) -> Result<()>;
    /// Take `n` references, as [`ZusFs::open`] does, on the inode an earlier answer gave as
    /// `ino` with `generation`, in one step; NotFound, with nothing taken, if it is gone.
    fn hold(&self, ino: Ino, generation: u32, n: u32) -> Result<()>;
    /// Read into `buf` from `offset`; returns the bytes read (short at end of file).
    fn read(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize>;
    /// Write at `offset` (at end of file when `append`); returns (bytes written, offset written at).
    fn write(&self, ino: Ino, offset: u64, data: &[u8], append: bool) -> Result<(usize, u64)>;
    fn fsync(&self, ino: Ino, datasync: bool) -> Result<()>;
    fn fallocate(&self, ino: Ino, mode: FallocMode, offset: u64, len: u64) -> Result<()>;
    fn lseek(&self, ino: Ino, offset: u64, whence: SeekWhence) -> Result<u64>;
    /// Entries after `offset` (0 starts at the beginning), at most `max`.
    fn readdir(&self, ino: Ino, offset: u64, max: usize) -> Result<Vec<DirEntry>>;
    fn statfs(&self) -> Result<StatFs>;
    fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], flags: XattrFlags) -> Result<()>;
    fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>>;
    /// Names, each followed by a NUL byte (the listxattr(2) format).
    fn listxattr(&self, ino: Ino) -> Result<Vec<u8>>;
    fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<()>;
    /// Where the file's data lives on the device (fiemap, zuf.ko only): the extents that reach
    /// into [offset, offset + len), whole and in order, at most `max`.
    fn data_extents(&self, ino: Ino, offset: u64, len: u64, max: usize) -> Result<Vec<DataExtent>>;
    /// The PM block backing the page at `offset`, for DAX mmap (zuf.ko only).
    fn get_data_block(&self, ino: Ino, offset: u64, for_write: bool) -> Result<Option<DataBlock>>;
}

/// Log an error that means damage (the media holds something impossible) before a transport
/// turns it into EIO: the caller only sees EIO, the administrator needs the cause, as the
/// kernel logs "EXT4-fs error" lines.
pub fn log_damage(err: &Error) {
    if let Error::Corrupt(what) = err {
        log::error!("EIO: filesystem corrupt: {what}");
    }
}
