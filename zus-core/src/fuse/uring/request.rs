//! A request as the kernel left it in a ring entry: the fuse_in_header in `in_out`, the op's
//! fixed struct in `op_in`, the rest (names, data) in the payload. Decoding checks every length
//! against what the kernel said it copied, so a malformed request becomes an errno to answer
//! with, never a panic.

use fuser::Errno;

use super::abi::{self, fattr, op, u32_at, u64_at};
use crate::fs_api::{SetAttr, TimeOrNow, Timespec};

/// struct fuse_in_header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InHeader {
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl InHeader {
    pub fn parse(in_out: &[u8]) -> Option<InHeader> {
        Some(InHeader {
            opcode: u32_at(in_out, 4)?,
            unique: u64_at(in_out, 8)?,
            nodeid: u64_at(in_out, 16)?,
            uid: u32_at(in_out, 24)?,
            gid: u32_at(in_out, 28)?,
            pid: u32_at(in_out, 32)?,
        })
    }
}

/// One request, decoded.
#[derive(Debug, PartialEq)]
pub enum Op<'a> {
    Lookup {
        name: &'a [u8],
    },
    Forget {
        nlookup: u64,
    },
    Getattr,
    /// FUSE_STATX: the attributes with the creation time (whatever fields were asked for).
    Statx,
    Setattr(SetAttr),
    Readlink,
    Symlink {
        name: &'a [u8],
        target: &'a [u8],
    },
    Mknod {
        name: &'a [u8],
        mode: u32,
        rdev: u32,
        umask: u32,
    },
    Mkdir {
        name: &'a [u8],
        mode: u32,
        umask: u32,
    },
    Unlink {
        name: &'a [u8],
    },
    Rmdir {
        name: &'a [u8],
    },
    Rename {
        name: &'a [u8],
        newdir: u64,
        newname: &'a [u8],
        flags: u32,
    },
    Link {
        oldnodeid: u64,
        name: &'a [u8],
    },
    Open {
        flags: i32,
    },
    Read {
        offset: u64,
        size: u32,
    },
    Write {
        fh: u64,
        offset: u64,
        data: &'a [u8],
        write_flags: u32,
        flags: i32,
    },
    Statfs,
    Release,
    Fsync {
        datasync: bool,
    },
    Setxattr {
        name: &'a [u8],
        value: &'a [u8],
        flags: i32,
    },
    Getxattr {
        name: &'a [u8],
        size: u32,
    },
    Listxattr {
        size: u32,
    },
    Removexattr {
        name: &'a [u8],
    },
    Flush,
    Opendir,
    Readdir {
        offset: u64,
        size: u32,
    },
    Releasedir,
    Fsyncdir {
        datasync: bool,
    },
    Access,
    Create {
        name: &'a [u8],
        mode: u32,
        umask: u32,
        flags: i32,
    },
    /// O_TMPFILE: a create's fields; the name is the kernel's placeholder ("/").
    Tmpfile {
        mode: u32,
        umask: u32,
        flags: i32,
    },
    Ioctl {
        cmd: u32,
        input: &'a [u8],
        out_size: u32,
    },
    Fallocate {
        offset: u64,
        length: u64,
        mode: i32,
    },
    Lseek {
        offset: i64,
        whence: i32,
    },
    CopyFileRange,
    Destroy,
    /// An opcode zus does not serve: ENOSYS, as fuser answers (the kernel stops asking).
    Unsupported(u32),
}

/// The NUL-terminated string at the start of `b`, and what follows it.
fn cstr(b: &[u8]) -> Result<(&[u8], &[u8]), Errno> {
    let end = b.iter().position(|&c| c == 0).ok_or(Errno::EINVAL)?;
    Ok((&b[..end], &b[end + 1..]))
}

fn name(payload: &[u8]) -> Result<&[u8], Errno> {
    cstr(payload).map(|(n, _)| n)
}

fn field32(b: &[u8], off: usize) -> Result<u32, Errno> {
    u32_at(b, off).ok_or(Errno::EINVAL)
}

fn field64(b: &[u8], off: usize) -> Result<u64, Errno> {
    u64_at(b, off).ok_or(Errno::EINVAL)
}

/// A time as the request carries it (seconds, nanoseconds), converted as fuser converts it,
/// so both channels store the same value; out-of-range values saturate instead of panicking.
fn time(sec: u64, nsec: u32) -> Timespec {
    use std::time::{Duration, UNIX_EPOCH};
    let sec = sec as i64;
    let d = Duration::from_secs(sec.unsigned_abs()).checked_add(Duration::from_nanos(u64::from(nsec)));
    let t = d.and_then(|d| if sec >= 0 { UNIX_EPOCH.checked_add(d) } else { UNIX_EPOCH.checked_sub(d) });
    super::super::convert::timespec(t.unwrap_or(UNIX_EPOCH))
}

/// struct fuse_setattr_in (88 bytes) as the changes it asks for.
fn setattr(b: &[u8]) -> Result<SetAttr, Errno> {
    let valid = field32(b, 0)?;
    let at = |flag: u32, now: u32, sec_off: usize, nsec_off: usize| -> Result<Option<TimeOrNow>, Errno> {
        if valid & flag == 0 {
            return Ok(None);
        }
        if valid & now != 0 {
            return Ok(Some(TimeOrNow::Now));
        }
        Ok(Some(TimeOrNow::At(time(field64(b, sec_off)?, field32(b, nsec_off)?))))
    };
    Ok(SetAttr {
        mode: (valid & fattr::MODE != 0).then(|| field32(b, 68)).transpose()?,
        uid: (valid & fattr::UID != 0).then(|| field32(b, 76)).transpose()?,
        gid: (valid & fattr::GID != 0).then(|| field32(b, 80)).transpose()?,
        size: (valid & fattr::SIZE != 0).then(|| field64(b, 16)).transpose()?,
        atime: at(fattr::ATIME, fattr::ATIME_NOW, 32, 56)?,
        mtime: at(fattr::MTIME, fattr::MTIME_NOW, 40, 60)?,
        ctime: if valid & fattr::CTIME != 0 { Some(time(field64(b, 48)?, field32(b, 64)?)) } else { None },
    })
}

/// Decode the request whose fixed struct is `op_in` and whose variable part is `payload`
/// (exactly the bytes the kernel reported copying).
pub fn decode<'a>(opcode: u32, op_in: &'a [u8], payload: &'a [u8]) -> Result<Op<'a>, Errno> {
    let o = op_in;
    Ok(match opcode {
        op::LOOKUP => Op::Lookup { name: name(payload)? },
        op::FORGET => Op::Forget { nlookup: field64(o, 0)? },
        op::GETATTR => Op::Getattr,
        op::STATX => Op::Statx,
        op::SETATTR => Op::Setattr(setattr(o)?),
        op::READLINK => Op::Readlink,
        op::SYMLINK => {
            let (name, rest) = cstr(payload)?;
            Op::Symlink { name, target: cstr(rest)?.0 }
        }
        op::MKNOD => Op::Mknod {
            name: name(payload)?,
            mode: field32(o, 0)?,
            rdev: field32(o, 4)?,
            umask: field32(o, 8)?,
        },
        op::MKDIR => Op::Mkdir { name: name(payload)?, mode: field32(o, 0)?, umask: field32(o, 4)? },
        op::UNLINK => Op::Unlink { name: name(payload)? },
        op::RMDIR => Op::Rmdir { name: name(payload)? },
        op::RENAME | op::RENAME2 => {
            let (name, rest) = cstr(payload)?;
            let flags = if opcode == op::RENAME2 { field32(o, 8)? } else { 0 };
            Op::Rename { name, newdir: field64(o, 0)?, newname: cstr(rest)?.0, flags }
        }
        op::LINK => Op::Link { oldnodeid: field64(o, 0)?, name: name(payload)? },
        op::OPEN => Op::Open { flags: field32(o, 0)? as i32 },
        op::READ => Op::Read { offset: field64(o, 8)?, size: field32(o, 16)? },
        op::WRITE => {
            let size = field32(o, 16)? as usize;
            let data = payload.get(..size).ok_or(Errno::EINVAL)?;
            Op::Write {
                fh: field64(o, 0)?,
                offset: field64(o, 8)?,
                data,
                write_flags: field32(o, 20)?,
                flags: field32(o, 32)? as i32,
            }
        }
        op::STATFS => Op::Statfs,
        op::RELEASE => Op::Release,
        op::FSYNC => Op::Fsync { datasync: field32(o, 8)? & abi::FSYNC_FDATASYNC != 0 },
        op::SETXATTR => {
            // The 8-byte compat fuse_setxattr_in (size, flags): zus never asks for
            // FUSE_SETXATTR_EXT.
            let size = field32(o, 0)? as usize;
            let flags = field32(o, 4)? as i32;
            let (name, rest) = cstr(payload)?;
            Op::Setxattr { name, value: rest.get(..size).ok_or(Errno::EINVAL)?, flags }
        }
        op::GETXATTR => Op::Getxattr { name: name(payload)?, size: field32(o, 0)? },
        op::LISTXATTR => Op::Listxattr { size: field32(o, 0)? },
        op::REMOVEXATTR => Op::Removexattr { name: name(payload)? },
        op::FLUSH => Op::Flush,
        op::OPENDIR => Op::Opendir,
        op::READDIR => Op::Readdir { offset: field64(o, 8)?, size: field32(o, 16)? },
        op::RELEASEDIR => Op::Releasedir,
        op::FSYNCDIR => Op::Fsyncdir { datasync: field32(o, 8)? & abi::FSYNC_FDATASYNC != 0 },
        op::ACCESS => Op::Access,
        op::CREATE => Op::Create {
            name: name(payload)?,
            flags: field32(o, 0)? as i32,
            mode: field32(o, 4)?,
            umask: field32(o, 8)?,
        },
        op::TMPFILE => {
            Op::Tmpfile { flags: field32(o, 0)? as i32, mode: field32(o, 4)?, umask: field32(o, 8)? }
        }
        // struct fuse_ioctl_in: fh@0 flags@8 cmd@12 arg@16 in_size@24 out_size@28; the
        // input follows in the payload.
        op::IOCTL => {
            let in_size = field32(o, 24)? as usize;
            Op::Ioctl {
                cmd: field32(o, 12)?,
                input: payload.get(..in_size).ok_or(Errno::EINVAL)?,
                out_size: field32(o, 28)?,
            }
        }
        op::FALLOCATE => {
            Op::Fallocate { offset: field64(o, 8)?, length: field64(o, 16)?, mode: field32(o, 24)? as i32 }
        }
        op::LSEEK => Op::Lseek { offset: field64(o, 8)? as i64, whence: field32(o, 16)? as i32 },
        op::COPY_FILE_RANGE => Op::CopyFileRange,
        op::DESTROY => Op::Destroy,
        other => Op::Unsupported(other),
    })
}

/// Ops fuser lets through from a user other than the session's owner (the kernel may send
/// them with another uid); the /dev/fuse channel refuses the rest with EACCES, and so does
/// this one.
pub fn allowed_for_others(opcode: u32) -> bool {
    matches!(
        opcode,
        op::INIT
            | op::DESTROY
            | op::READ
            | op::READDIR
            | op::READDIRPLUS
            | op::BATCH_FORGET
            | op::FORGET
            | op::WRITE
            | op::FSYNC
            | op::FSYNCDIR
            | op::RELEASE
            | op::RELEASEDIR
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_in(fields: &[(usize, &[u8])]) -> [u8; 128] {
        let mut b = [0u8; 128];
        for (off, v) in fields {
            b[*off..*off + v.len()].copy_from_slice(v);
        }
        b
    }

    #[test]
    fn header() {
        let mut h = [0u8; 128];
        h[4..8].copy_from_slice(&op::LOOKUP.to_le_bytes());
        h[8..16].copy_from_slice(&42u64.to_le_bytes());
        h[16..24].copy_from_slice(&1u64.to_le_bytes());
        h[24..28].copy_from_slice(&1000u32.to_le_bytes());
        let hdr = InHeader::parse(&h).expect("parses");
        assert_eq!((hdr.opcode, hdr.unique, hdr.nodeid, hdr.uid), (op::LOOKUP, 42, 1, 1000));
        assert_eq!(InHeader::parse(&h[..20]), None);
    }

    #[test]
    fn names() {
        let o = [0u8; 128];
        assert_eq!(decode(op::LOOKUP, &o, b"abc\0"), Ok(Op::Lookup { name: b"abc" }));
        assert_eq!(decode(op::LOOKUP, &o, b"abc"), Err(Errno::EINVAL));
        assert_eq!(decode(op::LOOKUP, &o, b""), Err(Errno::EINVAL));
        assert_eq!(decode(op::SYMLINK, &o, b"l\0/t/x\0"), Ok(Op::Symlink { name: b"l", target: b"/t/x" }));
        assert_eq!(decode(op::SYMLINK, &o, b"l\0/t/x"), Err(Errno::EINVAL));
        let r = op_in(&[(0, &7u64.to_le_bytes()), (8, &1u32.to_le_bytes())]);
        assert_eq!(
            decode(op::RENAME2, &r, b"a\0b\0"),
            Ok(Op::Rename { name: b"a", newdir: 7, newname: b"b", flags: 1 })
        );
        assert_eq!(
            decode(op::RENAME, &r, b"a\0b\0"),
            Ok(Op::Rename { name: b"a", newdir: 7, newname: b"b", flags: 0 })
        );
    }

    #[test]
    fn write_data_must_be_there() {
        let o = op_in(&[(8, &4096u64.to_le_bytes()), (16, &3u32.to_le_bytes()), (32, &2u32.to_le_bytes())]);
        assert_eq!(
            decode(op::WRITE, &o, b"xyz"),
            Ok(Op::Write { fh: 0, offset: 4096, data: b"xyz", write_flags: 0, flags: 2 })
        );
        assert_eq!(decode(op::WRITE, &o, b"xy"), Err(Errno::EINVAL));
    }

    #[test]
    fn xattrs() {
        let o = op_in(&[(0, &2u32.to_le_bytes()), (4, &1u32.to_le_bytes())]);
        assert_eq!(
            decode(op::SETXATTR, &o, b"user.a\0hi"),
            Ok(Op::Setxattr { name: b"user.a", value: b"hi", flags: 1 })
        );
        assert_eq!(decode(op::SETXATTR, &o, b"user.a\0h"), Err(Errno::EINVAL));
        assert_eq!(decode(op::GETXATTR, &o, b"user.a\0"), Ok(Op::Getxattr { name: b"user.a", size: 2 }));
    }

    #[test]
    fn setattr_fields() {
        let valid = fattr::MODE | fattr::SIZE | fattr::ATIME | fattr::ATIME_NOW | fattr::MTIME;
        let o = op_in(&[
            (0, &valid.to_le_bytes()),
            (16, &123u64.to_le_bytes()),
            (40, &5u64.to_le_bytes()),
            (60, &6u32.to_le_bytes()),
            (68, &0o644u32.to_le_bytes()),
        ]);
        let Ok(Op::Setattr(s)) = decode(op::SETATTR, &o, b"") else { panic!("setattr") };
        assert_eq!(s.mode, Some(0o644));
        assert_eq!(s.size, Some(123));
        assert_eq!(s.uid, None);
        assert_eq!(s.atime, Some(TimeOrNow::Now));
        assert_eq!(s.mtime, Some(TimeOrNow::At(Timespec { sec: 5, nsec: 6 })));
        assert_eq!(s.ctime, None);
    }

    #[test]
    fn odd_input_never_panics() {
        let o = op_in(&[(0, &u32::MAX.to_le_bytes()), (16, &u32::MAX.to_le_bytes())]);
        for opcode in 0..64 {
            for payload in [&b""[..], b"\0", b"a", b"a\0b\0", &[0xff; 300]] {
                let _ = decode(opcode, &o, payload);
                let _ = decode(opcode, &o[..8], payload);
            }
        }
        // Times out of range saturate.
        let _ = time(u64::MAX, u32::MAX);
        let _ = time(1 << 63, 999_999_999);
    }
}
