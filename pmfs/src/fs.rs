//! The filesystem operations the transports call: composes inodes, logs, directories, files,
//! the allocator and the journal. Every call is durable when it returns.

use std::path::Path;

use crate::error::Result;
use crate::vfs::*;

/// How to mount.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// Refuse every change (EROFS); recovery still runs if the image was not cleanly unmounted?
    /// No: a read-only mount of an unclean image fails rather than writing.
    pub read_only: bool,
}

/// What mount found and did, for the mount message.
#[derive(Debug, Clone, Default)]
pub struct MountReport {
    /// The image was cleanly unmounted (allocator state loaded, no scan needed).
    pub was_clean: bool,
    /// Journals that held an unfinished multi-inode operation, rolled back.
    pub journals_rolled_back: u32,
    /// Inodes that were allocated but unreachable or unlinked, freed.
    pub orphans_freed: u64,
    /// Inodes in use after mount.
    pub inodes: u64,
    /// Blocks in use after mount.
    pub blocks_used: u64,
}

/// A mounted zpmfs. Shared by all server threads (`&self` everywhere).
pub struct Fs {
    _private: (),
}

impl Fs {
    /// Mount the zpmfs image on `path` (a /dev/pmem, /dev/dax or a file).
    pub fn mount(_path: &Path, _opts: &MountOptions) -> Result<Fs> {
        todo!()
    }
    /// What mount found.
    pub fn mount_report(&self) -> MountReport {
        todo!()
    }
    /// Save allocator state and mark the image clean. Later calls fail with EIO.
    pub fn unmount(&self) -> Result<()> {
        todo!()
    }
    pub fn lookup(&self, _parent: Ino, _name: &[u8]) -> Result<Attr> {
        todo!()
    }
    pub fn getattr(&self, _ino: Ino) -> Result<Attr> {
        todo!()
    }
    pub fn setattr(&self, _ino: Ino, _set: &SetAttr) -> Result<Attr> {
        todo!()
    }
    /// Create any non-directory inode: `mode` holds the type bits (S_IFREG, S_IFIFO, ...).
    pub fn mknod(&self, _parent: Ino, _name: &[u8], _mode: u32, _rdev: u32, _caller: Caller) -> Result<Attr> {
        todo!()
    }
    pub fn mkdir(&self, _parent: Ino, _name: &[u8], _mode: u32, _caller: Caller) -> Result<Attr> {
        todo!()
    }
    pub fn symlink(&self, _parent: Ino, _name: &[u8], _target: &[u8], _caller: Caller) -> Result<Attr> {
        todo!()
    }
    pub fn readlink(&self, _ino: Ino) -> Result<Vec<u8>> {
        todo!()
    }
    pub fn link(&self, _ino: Ino, _new_parent: Ino, _new_name: &[u8]) -> Result<Attr> {
        todo!()
    }
    pub fn unlink(&self, _parent: Ino, _name: &[u8]) -> Result<()> {
        todo!()
    }
    pub fn rmdir(&self, _parent: Ino, _name: &[u8]) -> Result<()> {
        todo!()
    }
    pub fn rename(
        &self,
        _parent: Ino,
        _name: &[u8],
        _new_parent: Ino,
        _new_name: &[u8],
        _flags: RenameFlags,
    ) -> Result<()> {
        todo!()
    }
    /// An open file handle keeps an unlinked inode alive until [`Fs::release`].
    pub fn open(&self, _ino: Ino) -> Result<()> {
        todo!()
    }
    pub fn release(&self, _ino: Ino) -> Result<()> {
        todo!()
    }
    /// Read into `buf` from `offset`; returns the bytes read (short at end of file).
    pub fn read(&self, _ino: Ino, _offset: u64, _buf: &mut [u8]) -> Result<usize> {
        todo!()
    }
    /// Write `data` at `offset` (at the end of file when `append`); returns (bytes written, offset written at).
    pub fn write(&self, _ino: Ino, _offset: u64, _data: &[u8], _append: bool) -> Result<(usize, u64)> {
        todo!()
    }
    /// Everything is durable when a call returns; this only checks that `ino` exists.
    pub fn fsync(&self, _ino: Ino, _datasync: bool) -> Result<()> {
        todo!()
    }
    pub fn fallocate(&self, _ino: Ino, _mode: FallocMode, _offset: u64, _len: u64) -> Result<()> {
        todo!()
    }
    pub fn lseek(&self, _ino: Ino, _offset: u64, _whence: SeekWhence) -> Result<u64> {
        todo!()
    }
    /// Entries after `offset` (0 starts at the beginning, with "." and ".."), at most `max`.
    pub fn readdir(&self, _ino: Ino, _offset: u64, _max: usize) -> Result<Vec<DirEntry>> {
        todo!()
    }
    pub fn statfs(&self) -> Result<StatFs> {
        todo!()
    }
    pub fn setxattr(&self, _ino: Ino, _name: &[u8], _value: &[u8], _flags: XattrFlags) -> Result<()> {
        todo!()
    }
    pub fn getxattr(&self, _ino: Ino, _name: &[u8]) -> Result<Vec<u8>> {
        todo!()
    }
    /// Names, each followed by a NUL byte (the listxattr(2) format).
    pub fn listxattr(&self, _ino: Ino) -> Result<Vec<u8>> {
        todo!()
    }
    pub fn removexattr(&self, _ino: Ino, _name: &[u8]) -> Result<()> {
        todo!()
    }
    /// The PM block backing the page at `offset`; with `for_write` a hole gets a zeroed block.
    pub fn get_data_block(&self, _ino: Ino, _offset: u64, _for_write: bool) -> Result<Option<DataBlock>> {
        todo!()
    }
}
