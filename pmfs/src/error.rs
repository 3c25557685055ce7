//! Errors of the filesystem core. Each maps to one errno; media corruption names what is corrupt.

use std::fmt;

/// An error returned by a filesystem operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// ENOENT
    NotFound,
    /// EEXIST
    Exists,
    /// ENOTDIR
    NotDir,
    /// EISDIR
    IsDir,
    /// ENOTEMPTY
    NotEmpty,
    /// ENOSPC: no free block, log page or inode slot.
    NoSpace,
    /// ENAMETOOLONG
    NameTooLong,
    /// EINVAL, with what was invalid.
    Invalid(&'static str),
    /// ENODATA: no such extended attribute.
    NoAttr,
    /// ERANGE: an xattr name too long, or a buffer too small.
    Range,
    /// E2BIG: an extended attribute value larger than a log page can hold.
    TooBig,
    /// EFBIG: beyond the largest file size.
    FileTooBig,
    /// EMLINK: too many hard links.
    TooManyLinks,
    /// EOPNOTSUPP
    NotSupported,
    /// EPERM
    NotPermitted,
    /// EACCES
    Access,
    /// EROFS
    ReadOnly,
    /// EXDEV-free: a rename would make a directory its own descendant (EINVAL in POSIX terms).
    Loop,
    /// ENXIO: SEEK_DATA/SEEK_HOLE at or past the end of file, or no data after the offset.
    NoSuchOffset,
    /// EIO: the media holds something impossible; the string names it.
    Corrupt(String),
    /// EIO from the device layer (open, map, msync), with the reason.
    Io(String),
}

/// Result of a filesystem operation.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The errno a transport should return for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::Exists => libc::EEXIST,
            Error::NotDir => libc::ENOTDIR,
            Error::IsDir => libc::EISDIR,
            Error::NotEmpty => libc::ENOTEMPTY,
            Error::NoSpace => libc::ENOSPC,
            Error::NameTooLong => libc::ENAMETOOLONG,
            Error::Invalid(_) | Error::Loop => libc::EINVAL,
            Error::NoAttr => libc::ENODATA,
            Error::TooBig => libc::E2BIG,
            Error::Range => libc::ERANGE,
            Error::FileTooBig => libc::EFBIG,
            Error::TooManyLinks => libc::EMLINK,
            Error::NotSupported => libc::EOPNOTSUPP,
            Error::NotPermitted => libc::EPERM,
            Error::Access => libc::EACCES,
            Error::ReadOnly => libc::EROFS,
            Error::NoSuchOffset => libc::ENXIO,
            Error::Corrupt(_) | Error::Io(_) => libc::EIO,
        }
    }
}

impl Error {
    /// The message without the "filesystem corrupt:" / "I/O error:" prefix, for wrapping
    /// into a more specific error.
    pub fn detail(&self) -> String {
        match self {
            Error::Corrupt(s) | Error::Io(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(what) => write!(f, "invalid argument: {what}"),
            Error::Corrupt(what) => write!(f, "filesystem corrupt: {what}"),
            Error::Io(what) => write!(f, "I/O error: {what}"),
            other => write!(f, "{}", std::io::Error::from_raw_os_error(other.errno())),
        }
    }
}

impl std::error::Error for Error {}
