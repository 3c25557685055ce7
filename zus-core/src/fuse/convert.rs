//! Conversions between the FUSE protocol's values and the [`crate::fs_api`] types: pure
//! functions, so each decoding rule is unit-tested without a mount.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};

use crate::fs_api::{Attr, Error, FallocMode, FileKind, RenameFlags, SeekWhence, Timespec, XattrFlags};

/// The errno a filesystem error is reported with.
pub fn errno(err: &Error) -> Errno {
    Errno::from_i32(err.errno())
}

pub fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Regular => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
    }
}

/// A stored time as a `SystemTime`, saturating instead of overflowing.
pub fn system_time(t: Timespec) -> SystemTime {
    let nsec = Duration::from_nanos(u64::from(t.nsec.min(999_999_999)));
    let whole = if t.sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(t.sec.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(t.sec.unsigned_abs()))
    };
    whole.and_then(|w| w.checked_add(nsec)).unwrap_or(UNIX_EPOCH)
}

pub fn timespec(t: SystemTime) -> Timespec {
    Timespec::from_system_time(t)
}

pub fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.btime), // macOS only: Linux FUSE has no creation time in attr
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// fallocate(2) mode bits to the modes zpmfs supports; anything else is EOPNOTSUPP.
pub fn falloc_mode(mode: i32) -> Result<FallocMode, Errno> {
    match mode {
        0 => Ok(FallocMode::Allocate { keep_size: false }),
        FALLOC_FL_KEEP_SIZE => Ok(FallocMode::Allocate { keep_size: true }),
        m if m == FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE => Ok(FallocMode::PunchHole),
        FALLOC_FL_ZERO_RANGE => Ok(FallocMode::ZeroRange { keep_size: false }),
        m if m == FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE => Ok(FallocMode::ZeroRange { keep_size: true }),
        _ => Err(Errno::EOPNOTSUPP),
    }
}

/// renameat2(2) flags: RENAME_NOREPLACE and RENAME_EXCHANGE (not both); others EINVAL.
pub fn rename_flags(bits: u32) -> Result<RenameFlags, Errno> {
    const NOREPLACE: u32 = libc::RENAME_NOREPLACE;
    const EXCHANGE: u32 = libc::RENAME_EXCHANGE;
    const WHITEOUT: u32 = libc::RENAME_WHITEOUT;
    if bits & !(NOREPLACE | EXCHANGE | WHITEOUT) != 0 || (bits & EXCHANGE != 0 && bits != EXCHANGE) {
        return Err(Errno::EINVAL);
    }
    Ok(RenameFlags {
        noreplace: bits & NOREPLACE != 0,
        exchange: bits & EXCHANGE != 0,
        whiteout: bits & WHITEOUT != 0,
    })
}

/// setxattr(2) flags: XATTR_CREATE and XATTR_REPLACE (not both); others EINVAL.
pub fn xattr_flags(flags: i32) -> Result<XattrFlags, Errno> {
    const CREATE: i32 = libc::XATTR_CREATE;
    const REPLACE: i32 = libc::XATTR_REPLACE;
    match flags {
        0 => Ok(XattrFlags::default()),
        CREATE => Ok(XattrFlags { create: true, replace: false }),
        REPLACE => Ok(XattrFlags { create: false, replace: true }),
        _ => Err(Errno::EINVAL),
    }
}

/// The POSIX ACL attributes, which zpmfs does not implement.
pub fn is_posix_acl(name: &[u8]) -> bool {
    name == b"system.posix_acl_access" || name == b"system.posix_acl_default"
}

/// How to answer a getxattr/listxattr of `len` bytes into a buffer of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum XattrAnswer {
    /// The caller probes with size 0: tell it the size.
    Size(u32),
    /// The value fits: send it.
    Data,
    /// ERANGE: the buffer is too small (or the value cannot be described).
    Range,
}

pub fn xattr_answer(len: usize, size: u32) -> XattrAnswer {
    match u32::try_from(len) {
        Err(_) => XattrAnswer::Range,
        Ok(len) if size == 0 => XattrAnswer::Size(len),
        Ok(len) if len > size => XattrAnswer::Range,
        Ok(_) => XattrAnswer::Data,
    }
}

/// What an lseek request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Seek {
    /// SEEK_DATA / SEEK_HOLE from this offset: the filesystem's business.
    Fs(u64, SeekWhence),
    /// SEEK_SET: the offset itself.
    Set(u64),
    /// SEEK_END: relative to the size, which the handler looks up.
    End(i64),
}

pub fn seek(offset: i64, whence: i32) -> Result<Seek, Errno> {
    match whence {
        libc::SEEK_DATA | libc::SEEK_HOLE => {
            // Like the VFS: a negative start has no data and no hole.
            let start = u64::try_from(offset).map_err(|_| Errno::ENXIO)?;
            let w = if whence == libc::SEEK_DATA { SeekWhence::Data } else { SeekWhence::Hole };
            Ok(Seek::Fs(start, w))
        }
        libc::SEEK_SET => u64::try_from(offset).map(Seek::Set).map_err(|_| Errno::EINVAL),
        libc::SEEK_END => Ok(Seek::End(offset)),
        // SEEK_CUR needs the file position, which only the kernel knows.
        _ => Err(Errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falloc_modes() {
        assert_eq!(falloc_mode(0), Ok(FallocMode::Allocate { keep_size: false }));
        assert_eq!(falloc_mode(1), Ok(FallocMode::Allocate { keep_size: true }));
        assert_eq!(falloc_mode(3), Ok(FallocMode::PunchHole));
        assert_eq!(falloc_mode(0x10), Ok(FallocMode::ZeroRange { keep_size: false }));
        assert_eq!(falloc_mode(0x11), Ok(FallocMode::ZeroRange { keep_size: true }));
        // PUNCH_HOLE must come with KEEP_SIZE; COLLAPSE_RANGE, INSERT_RANGE, UNSHARE: unsupported.
        for m in [2, 0x08, 0x20, 0x40, 0x12, -1, i32::MIN] {
            assert_eq!(falloc_mode(m), Err(Errno::EOPNOTSUPP), "mode {m:#x}");
        }
    }

    #[test]
    fn rename_flag_bits() {
        assert_eq!(rename_flags(0), Ok(RenameFlags::default()));
        assert_eq!(rename_flags(1), Ok(RenameFlags { noreplace: true, ..Default::default() }));
        assert_eq!(rename_flags(2), Ok(RenameFlags { exchange: true, ..Default::default() }));
        assert_eq!(
            rename_flags(5),
            Ok(RenameFlags { noreplace: true, whiteout: true, ..Default::default() })
        );
        assert_eq!(rename_flags(6), Err(Errno::EINVAL));
        for bits in [3, 7, 8, u32::MAX] {
            assert_eq!(rename_flags(bits), Err(Errno::EINVAL), "flags {bits:#x}");
        }
    }

    #[test]
    fn xattr_flag_bits() {
        assert_eq!(xattr_flags(0), Ok(XattrFlags::default()));
        assert_eq!(xattr_flags(1), Ok(XattrFlags { create: true, replace: false }));
        assert_eq!(xattr_flags(2), Ok(XattrFlags { create: false, replace: true }));
        assert_eq!(xattr_flags(3), Err(Errno::EINVAL));
        assert_eq!(xattr_flags(-1), Err(Errno::EINVAL));
    }

    #[test]
    fn posix_acl_names() {
        assert!(is_posix_acl(b"system.posix_acl_access"));
        assert!(is_posix_acl(b"system.posix_acl_default"));
        assert!(!is_posix_acl(b"user.posix_acl_access"));
        assert!(!is_posix_acl(b"system.posix_acl"));
    }

    #[test]
    fn xattr_size_probe_and_erange() {
        assert_eq!(xattr_answer(10, 0), XattrAnswer::Size(10));
        assert_eq!(xattr_answer(0, 0), XattrAnswer::Size(0));
        assert_eq!(xattr_answer(10, 9), XattrAnswer::Range);
        assert_eq!(xattr_answer(10, 10), XattrAnswer::Data);
        assert_eq!(xattr_answer(0, 4), XattrAnswer::Data);
    }

    #[test]
    fn seek_whence() {
        assert_eq!(seek(5, libc::SEEK_DATA), Ok(Seek::Fs(5, SeekWhence::Data)));
        assert_eq!(seek(5, libc::SEEK_HOLE), Ok(Seek::Fs(5, SeekWhence::Hole)));
        assert_eq!(seek(-1, libc::SEEK_DATA), Err(Errno::ENXIO));
        assert_eq!(seek(7, libc::SEEK_SET), Ok(Seek::Set(7)));
        assert_eq!(seek(-7, libc::SEEK_END), Ok(Seek::End(-7)));
        assert_eq!(seek(0, libc::SEEK_CUR), Err(Errno::EINVAL));
        assert_eq!(seek(0, 99), Err(Errno::EINVAL));
    }

    #[test]
    fn times_never_panic() {
        for sec in [i64::MIN, -1, 0, 1, i64::MAX] {
            for nsec in [0, 1, 999_999_999, u32::MAX] {
                let _ = system_time(Timespec { sec, nsec });
            }
        }
        let t = Timespec { sec: 1_700_000_000, nsec: 123 };
        assert_eq!(timespec(system_time(t)), t);
        let before = Timespec { sec: -2, nsec: 500 };
        assert_eq!(timespec(system_time(before)), before);
    }

    #[test]
    fn errors_map_to_errno() {
        assert_eq!(errno(&Error::NotFound), Errno::ENOENT);
        assert_eq!(errno(&Error::Corrupt("x".into())), Errno::EIO);
        assert_eq!(errno(&Error::NoAttr).code(), libc::ENODATA);
    }
}
