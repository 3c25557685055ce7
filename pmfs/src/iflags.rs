//! Inode attribute flags, as chattr(1) sets them (FS_IOC_SETFLAGS values): which zpmfs keeps
//! and what immutable and append-only forbid. The rules are the VFS's (fs/namei.c, fs/attr.c,
//! fs/xattr.c, fs/open.c): zuf.ko's kernel side applies them too, FUSE's does not, so pmfs
//! enforces them itself for both.

use crate::{Error, Result};

/// FS_SYNC_FL: writes are synchronous (every zpmfs write already is).
pub const SYNC: u32 = 0x0000_0008;
/// FS_IMMUTABLE_FL: no change at all, to the inode or (for a directory) its entries.
pub const IMMUTABLE: u32 = 0x0000_0010;
/// FS_APPEND_FL: data may only be appended; the inode may not be removed or renamed.
pub const APPEND: u32 = 0x0000_0020;
/// FS_NODUMP_FL: kept for dump(8).
pub const NODUMP: u32 = 0x0000_0040;
/// FS_NOATIME_FL: reads never update atime (zpmfs never does).
pub const NOATIME: u32 = 0x0000_0080;
/// FS_DIRSYNC_FL: directory changes are synchronous (they already are).
pub const DIRSYNC: u32 = 0x0001_0000;

/// The flags zpmfs keeps; setting any other is EOPNOTSUPP, as for a flag ext4 does not know.
pub const SUPPORTED: u32 = SYNC | IMMUTABLE | APPEND | NODUMP | NOATIME | DIRSYNC;

/// Only a privileged caller (CAP_LINUX_IMMUTABLE) may set or clear these.
pub const PRIVILEGED: u32 = IMMUTABLE | APPEND;

/// Neither the inode nor its name may change: immutable or append-only (the VFS's
/// `may_delete`, `may_linkat`, xattr writes, chmod, chown and explicit times).
pub fn check_pinned(flags: u32) -> Result<()> {
    if flags & (IMMUTABLE | APPEND) != 0 {
        return Err(Error::NotPermitted);
    }
    Ok(())
}

/// Nothing in the inode may change (data, size, times, entries of a directory).
pub fn check_mutable(flags: u32) -> Result<()> {
    if flags & IMMUTABLE != 0 {
        return Err(Error::NotPermitted);
    }
    Ok(())
}

/// An open of a file with `flags`: immutable refuses writing and truncation; append-only
/// refuses truncation and writing other than O_APPEND.
pub fn check_open(flags: u32, write: bool, append: bool, truncate: bool) -> Result<()> {
    if flags & IMMUTABLE != 0 && (write || truncate) {
        return Err(Error::NotPermitted);
    }
    if flags & APPEND != 0 && (truncate || (write && !append)) {
        return Err(Error::NotPermitted);
    }
    Ok(())
}

/// Set `flags` on an inode that has `old`, as a caller that owns it (`owner`) or is root.
pub fn check_change(old: u32, new: u32, owner: bool, root: bool) -> Result<()> {
    if new & !SUPPORTED != 0 {
        return Err(Error::NotSupported);
    }
    if !owner && !root {
        return Err(Error::NotPermitted);
    }
    if (old ^ new) & PRIVILEGED != 0 && !root {
        return Err(Error::NotPermitted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_only_opens_only_for_appending() {
        assert!(check_open(APPEND, false, false, false).is_ok());
        assert!(check_open(APPEND, true, true, false).is_ok());
        assert!(check_open(APPEND, true, false, false).is_err());
        assert!(check_open(APPEND, true, true, true).is_err());
        assert!(check_open(IMMUTABLE, true, true, false).is_err());
        assert!(check_open(IMMUTABLE, false, false, false).is_ok());
    }

    #[test]
    fn only_root_sets_immutable_and_unknown_flags_are_unsupported() {
        assert!(check_change(0, IMMUTABLE, true, false).is_err());
        assert!(check_change(0, IMMUTABLE, false, true).is_ok());
        assert!(check_change(0, NODUMP, true, false).is_ok());
        assert!(check_change(0, NODUMP, false, false).is_err());
        assert_eq!(check_change(0, 0x0000_0004, true, true), Err(Error::NotSupported));
        // compress
    }
}
