//! chattr(1) and xfs_io's chattr over FUSE: the kernel sends FS_IOC_GETFLAGS/SETFLAGS and
//! FS_IOC_FSGETXATTR/FSSETXATTR as FUSE_IOCTL after its own permission checks (owner,
//! CAP_LINUX_IMMUTABLE); these are their values and the fsxattr form of the flags.

use fuser::Errno;
use pmfs::iflags;

/// _IOR('f', 1, long) and its 32-bit-caller form _IOR('f', 1, int).
pub const GETFLAGS: [u32; 2] = [0x8008_6601, 0x8004_6601];
/// _IOW('f', 2, long) and _IOW('f', 2, int).
pub const SETFLAGS: [u32; 2] = [0x4008_6602, 0x4004_6602];
/// _IOR('X', 31, struct fsxattr) and _IOW('X', 32, struct fsxattr).
pub const FSGETXATTR: u32 = 0x801c_581f;
pub const FSSETXATTR: u32 = 0x401c_5820;

/// sizeof(struct fsxattr): xflags@0 extsize@4 nextents@8 projid@12 cowextsize@16 pad@20.
pub const FSXATTR_LEN: usize = 28;

/// FS_XFLAG_* and the FS_*_FL flag each stands for (the kernel's fileattr_fill_xflags).
const XFLAGS: [(u32, u32); 5] = [
    (0x08, iflags::IMMUTABLE),
    (0x10, iflags::APPEND),
    (0x20, iflags::SYNC),
    (0x40, iflags::NOATIME),
    (0x80, iflags::NODUMP),
];

/// The fsxattr that FS_IOC_FSGETXATTR answers for an inode with `flags`.
pub fn fsxattr_of(flags: u32) -> [u8; FSXATTR_LEN] {
    let x = XFLAGS.iter().filter(|(_, f)| flags & f != 0).fold(0, |x, (xf, _)| x | xf);
    let mut b = [0u8; FSXATTR_LEN];
    b[..4].copy_from_slice(&x.to_le_bytes());
    b
}

/// The flags an FS_IOC_FSSETXATTR of `b` sets on an inode that has `old` (DIRSYNC has no
/// xflag and stays as it is). Extent sizes and project ids zpmfs does not keep: EOPNOTSUPP.
pub fn flags_of_fsxattr(b: &[u8], old: u32) -> Result<u32, Errno> {
    let word = |at: usize| b.get(at..at + 4).map(|w| u32::from_le_bytes(w.try_into().expect("4 bytes")));
    let xflags = word(0).ok_or(Errno::EINVAL)?;
    if [4, 12, 16].iter().any(|&at| word(at).unwrap_or(0) != 0) {
        return Err(Errno::EOPNOTSUPP);
    }
    let known = XFLAGS.iter().fold(0, |x, (xf, _)| x | xf);
    if xflags & !known != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(XFLAGS.iter().filter(|(xf, _)| xflags & xf != 0).fold(old & iflags::DIRSYNC, |f, (_, fl)| f | fl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsxattr_round_trips_the_flags_it_can_say() {
        let flags = iflags::IMMUTABLE | iflags::NODUMP;
        assert_eq!(flags_of_fsxattr(&fsxattr_of(flags), iflags::DIRSYNC), Ok(flags | iflags::DIRSYNC));
        let mut b = fsxattr_of(0);
        b[12] = 1; // a project id
        assert_eq!(flags_of_fsxattr(&b, 0), Err(Errno::EOPNOTSUPP));
        assert_eq!(flags_of_fsxattr(&0x800u32.to_le_bytes(), 0), Err(Errno::EOPNOTSUPP));
        // DAX
    }
}
