//! Replies written into a ring entry: the fuse_out_header into `in_out`, the reply structs
//! and data into the payload, and the payload's length into `ring_ent_in_out.payload_sz`.
//! Each writer checks that its struct fits the buffer and fails with ERANGE otherwise.

use std::time::{Duration, UNIX_EPOCH};

use fuser::Errno;

use super::abi::{self, put_u32, put_u64};
use crate::fs_api::{Attr, DirEntry, FileKind, StatFs, Timespec};
use crate::fuse::convert;
use crate::fuse::handlers::Opened;

/// A time as (seconds, nanoseconds), as fuser writes it for the /dev/fuse channel.
fn time_parts(t: Timespec) -> (i64, u32) {
    let st = convert::system_time(t);
    match st.duration_since(UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos()),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).map(|s| -s).unwrap_or(i64::MIN);
            if d.subsec_nanos() == 0 {
                (secs, 0)
            } else {
                (secs.saturating_sub(1), 1_000_000_000 - d.subsec_nanos())
            }
        }
    }
}

/// The mode the kernel wants: file type bits and permissions.
fn mode(a: &Attr) -> u32 {
    a.kind.mode_bits() | u32::from(a.perm)
}

/// The directory entry type (DT_*) of a kind.
fn dirent_type(kind: FileKind) -> u32 {
    u32::from(kind.dirent_type())
}

fn room(buf: &mut [u8], len: usize) -> Result<&mut [u8], Errno> {
    buf.get_mut(..len).ok_or(Errno::ERANGE)
}

/// struct fuse_attr (88 bytes) at the start of `b`.
fn put_attr(b: &mut [u8], a: &Attr) {
    let (at, atn) = time_parts(a.atime);
    let (mt, mtn) = time_parts(a.mtime);
    let (ct, ctn) = time_parts(a.ctime);
    put_u64(b, 0, a.ino);
    put_u64(b, 8, a.size);
    put_u64(b, 16, a.blocks);
    put_u64(b, 24, at as u64);
    put_u64(b, 32, mt as u64);
    put_u64(b, 40, ct as u64);
    put_u32(b, 48, atn);
    put_u32(b, 52, mtn);
    put_u32(b, 56, ctn);
    put_u32(b, 60, mode(a));
    put_u32(b, 64, a.nlink);
    put_u32(b, 68, a.uid);
    put_u32(b, 72, a.gid);
    put_u32(b, 76, a.rdev);
    put_u32(b, 80, a.blksize);
    put_u32(b, 84, 0);
}

/// struct fuse_entry_out.
pub fn entry(buf: &mut [u8], a: &Attr, ttl: Duration) -> Result<usize, Errno> {
    let b = room(buf, abi::ENTRY_OUT_SZ)?;
    put_u64(b, 0, a.ino);
    put_u64(b, 8, u64::from(a.generation));
    put_u64(b, 16, ttl.as_secs());
    put_u64(b, 24, ttl.as_secs());
    put_u32(b, 32, ttl.subsec_nanos());
    put_u32(b, 36, ttl.subsec_nanos());
    put_attr(&mut b[40..], a);
    Ok(abi::ENTRY_OUT_SZ)
}

/// struct fuse_attr_out.
pub fn attr(buf: &mut [u8], a: &Attr, ttl: Duration) -> Result<usize, Errno> {
    let b = room(buf, abi::ATTR_OUT_SZ)?;
    put_u64(b, 0, ttl.as_secs());
    put_u32(b, 8, ttl.subsec_nanos());
    put_u32(b, 12, 0);
    put_attr(&mut b[16..], a);
    Ok(abi::ATTR_OUT_SZ)
}

/// struct fuse_statx_out: every basic field and the creation time (the kernel asks for STATX
/// when a caller wants btime), with chattr's immutable, append-only and nodump as attributes.
pub fn statx(buf: &mut [u8], a: &Attr, ttl: Duration) -> Result<usize, Errno> {
    let b = room(buf, abi::STATX_OUT_SZ)?;
    b.fill(0);
    put_u64(b, 0, ttl.as_secs());
    put_u32(b, 8, ttl.subsec_nanos());
    let sx = &mut b[32..];
    put_u32(sx, 0, abi::STATX_BASIC_STATS | abi::STATX_BTIME);
    put_u32(sx, 4, a.blksize);
    put_u64(sx, 8, u64::from(a.flags) & abi::STATX_ATTRS);
    put_u32(sx, 16, a.nlink);
    put_u32(sx, 20, a.uid);
    put_u32(sx, 24, a.gid);
    put_u32(sx, 28, mode(a) & 0xffff); // u16 mode, then a u16 of padding
    put_u64(sx, 32, a.ino);
    put_u64(sx, 40, a.size);
    put_u64(sx, 48, a.blocks);
    put_u64(sx, 56, abi::STATX_ATTRS);
    // struct fuse_sx_time: i64 seconds, u32 nanoseconds, i32 reserved.
    for (at, t) in [(64, a.atime), (80, a.btime), (96, a.ctime), (112, a.mtime)] {
        let (s, ns) = time_parts(t);
        put_u64(sx, at, s as u64);
        put_u32(sx, at + 8, ns);
    }
    let (major, minor) = (libc::major(a.rdev as libc::dev_t), libc::minor(a.rdev as libc::dev_t));
    put_u32(sx, 128, major);
    put_u32(sx, 132, minor);
    Ok(abi::STATX_OUT_SZ)
}

/// struct fuse_open_out.
pub fn open(buf: &mut [u8], o: &Opened) -> Result<usize, Errno> {
    let b = room(buf, abi::OPEN_OUT_SZ)?;
    put_u64(b, 0, o.fh);
    put_u32(b, 8, o.open_flags);
    put_u32(b, 12, 0);
    Ok(abi::OPEN_OUT_SZ)
}

/// CREATE: struct fuse_entry_out then struct fuse_open_out.
pub fn create(buf: &mut [u8], a: &Attr, o: &Opened, ttl: Duration) -> Result<usize, Errno> {
    let n = entry(buf, a, ttl)?;
    Ok(n + open(&mut buf[n..], o)?)
}

/// struct fuse_write_out (also the 4-byte count of fuse_getxattr_out, padded alike).
pub fn count32(buf: &mut [u8], n: u32) -> Result<usize, Errno> {
    let b = room(buf, abi::WRITE_OUT_SZ)?;
    put_u32(b, 0, n);
    put_u32(b, 4, 0);
    Ok(abi::WRITE_OUT_SZ)
}

/// struct fuse_lseek_out.
pub fn offset(buf: &mut [u8], off: i64) -> Result<usize, Errno> {
    let b = room(buf, abi::LSEEK_OUT_SZ)?;
    put_u64(b, 0, off as u64);
    Ok(abi::LSEEK_OUT_SZ)
}

/// struct fuse_ioctl_out of an ioctl that succeeded (result 0), then its output `data`.
pub fn ioctl(buf: &mut [u8], data: &[u8]) -> Result<usize, Errno> {
    let b = room(buf, abi::IOCTL_OUT_SZ + data.len())?;
    b[..abi::IOCTL_OUT_SZ].fill(0);
    b[abi::IOCTL_OUT_SZ..].copy_from_slice(data);
    Ok(abi::IOCTL_OUT_SZ + data.len())
}

/// struct fuse_statfs_out (fuse_kstatfs), as fuser fills it (frsize = block size).
pub fn statfs(buf: &mut [u8], s: &StatFs) -> Result<usize, Errno> {
    let b = room(buf, abi::STATFS_OUT_SZ)?;
    b.fill(0);
    put_u64(b, 0, s.blocks);
    put_u64(b, 8, s.blocks_free);
    put_u64(b, 16, s.blocks_avail);
    put_u64(b, 24, s.files);
    put_u64(b, 32, s.files_free);
    put_u32(b, 40, s.block_size);
    put_u32(b, 44, s.name_max);
    put_u32(b, 48, s.block_size);
    Ok(abi::STATFS_OUT_SZ)
}

/// Raw bytes (readlink, xattr values): they must fit.
pub fn data(buf: &mut [u8], d: &[u8]) -> Result<usize, Errno> {
    room(buf, d.len())?.copy_from_slice(d);
    Ok(d.len())
}

/// As many struct fuse_dirent (each padded to 8 bytes) as fit in `max` bytes; the kernel
/// asks again from the first one left out.
pub fn dirents(buf: &mut [u8], max: usize, entries: &[DirEntry]) -> usize {
    let limit = max.min(buf.len());
    let mut used = 0;
    for e in entries {
        let Ok(namelen) = u32::try_from(e.name.len()) else { break };
        let len = (abi::DIRENT_SZ + e.name.len() + 7) & !7;
        if used + len > limit {
            break;
        }
        let b = &mut buf[used..used + len];
        put_u64(b, 0, e.ino);
        put_u64(b, 8, e.next_offset);
        put_u32(b, 16, namelen);
        put_u32(b, 20, dirent_type(e.kind));
        b[abi::DIRENT_SZ..abi::DIRENT_SZ + e.name.len()].copy_from_slice(&e.name);
        b[abi::DIRENT_SZ + e.name.len()..].fill(0);
        used += len;
    }
    used
}

/// Finish the reply: fuse_out_header {len, error, unique} and the payload size.
pub fn finish(header: &mut [u8], unique: u64, error: Option<Errno>, payload_len: usize) {
    let len = (abi::OUT_HEADER_SZ + payload_len) as u32;
    put_u32(header, 0, len);
    put_u32(header, 4, error.map_or(0, |e| (-e.code()) as u32));
    put_u64(header, 8, unique);
    put_u32(header, abi::ENT_PAYLOAD_SZ_OFF, payload_len as u32);
}

/// Seconds and nanoseconds now, for tests comparing with what the kernel would show.
#[cfg(test)]
fn now() -> Timespec {
    convert::timespec(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs_api::Timespec;

    fn attr_of(kind: FileKind) -> Attr {
        Attr {
            ino: 5,
            generation: 9,
            size: 100,
            blocks: 8,
            atime: Timespec { sec: 1, nsec: 2 },
            mtime: now(),
            ctime: Timespec { sec: -2, nsec: 500 },
            btime: Timespec { sec: 3, nsec: 4 },
            kind,
            perm: 0o644,
            nlink: 1,
            uid: 10,
            gid: 20,
            flags: 0,
            rdev: 0,
            blksize: 4096,
        }
    }

    #[test]
    fn statx_layout() {
        let mut b = [0xffu8; 300];
        let mut a = attr_of(FileKind::Regular);
        a.flags = 0x10 | 0x80; // immutable (a statx attribute) and noatime (not one)
        a.rdev = (8 << 8) | 3 | (0x100 << 12); // new_encode_dev(8, 0x103)
        assert_eq!(statx(&mut b, &a, Duration::from_millis(1500)), Ok(288));
        assert_eq!(abi::u64_at(&b, 0), Some(1)); // attr_valid
        assert_eq!(abi::u32_at(&b, 8), Some(500_000_000));
        assert_eq!(abi::u64_at(&b, 16), Some(0)); // spare
        let sx = &b[32..];
        assert_eq!(abi::u32_at(sx, 0), Some(0xfff)); // basic stats and btime
        assert_eq!(abi::u64_at(sx, 8), Some(0x10)); // attributes
        assert_eq!(abi::u32_at(sx, 28), Some(libc::S_IFREG | 0o644)); // u16 mode, u16 zero
        assert_eq!(abi::u64_at(sx, 32), Some(5)); // ino
        assert_eq!(abi::u64_at(sx, 56), Some(0x70)); // attributes_mask
        assert_eq!((abi::u64_at(sx, 80), abi::u32_at(sx, 88)), (Some(3), Some(4))); // btime
        assert_eq!((abi::u64_at(sx, 96), abi::u32_at(sx, 104)), (Some(-2i64 as u64), Some(500))); // ctime
        assert_eq!((abi::u32_at(sx, 128), abi::u32_at(sx, 132)), (Some(8), Some(0x103))); // rdev
        assert!(b[32 + 144..288].iter().all(|&x| x == 0), "spare bytes zeroed");
        assert_eq!(statx(&mut b[..200], &a, Duration::ZERO), Err(Errno::ERANGE));
    }

    #[test]
    fn entry_layout() {
        let mut b = [0u8; 256];
        let n = entry(&mut b, &attr_of(FileKind::Regular), Duration::from_millis(1500)).expect("fits");
        assert_eq!(n, 128);
        assert_eq!(abi::u64_at(&b, 0), Some(5)); // nodeid
        assert_eq!(abi::u64_at(&b, 8), Some(9)); // generation
        assert_eq!(abi::u64_at(&b, 16), Some(1)); // entry_valid
        assert_eq!(abi::u32_at(&b, 32), Some(500_000_000));
        assert_eq!(abi::u64_at(&b, 40), Some(5)); // attr.ino
        assert_eq!(abi::u64_at(&b, 40 + 24), Some(1)); // atime
        assert_eq!(abi::u32_at(&b, 40 + 48), Some(2)); // atimensec
        assert_eq!(abi::u32_at(&b, 40 + 60), Some(libc::S_IFREG | 0o644));
        assert_eq!(entry(&mut b[..100], &attr_of(FileKind::Regular), Duration::ZERO), Err(Errno::ERANGE));
    }

    #[test]
    fn times_match_fuser() {
        // fuser writes a time before 1970 as seconds and nanoseconds of a SystemTime.
        let (s, ns) = time_parts(Timespec { sec: -2, nsec: 500 });
        let back = convert::timespec(UNIX_EPOCH - Duration::from_secs(2) + Duration::from_nanos(500));
        assert_eq!((s, ns), (back.sec, back.nsec));
        assert_eq!(time_parts(Timespec { sec: 7, nsec: 8 }), (7, 8));
    }

    #[test]
    fn dirents_pad_and_stop_when_full() {
        let es: Vec<DirEntry> = (0..3)
            .map(|i| DirEntry {
                ino: 10 + i,
                next_offset: i + 1,
                kind: FileKind::Directory,
                name: b"abcd".to_vec(),
            })
            .collect();
        let mut b = [0xffu8; 200];
        // Each entry: 24 + 4 = 28, padded to 32.
        assert_eq!(dirents(&mut b, 70, &es), 64);
        assert_eq!(abi::u64_at(&b, 32), Some(11));
        assert_eq!(abi::u32_at(&b, 32 + 16), Some(4));
        assert_eq!(abi::u32_at(&b, 32 + 20), Some(u32::from(libc::DT_DIR)));
        assert_eq!(&b[32 + 28..64], &[0, 0, 0, 0]);
        assert_eq!(dirents(&mut b, 10, &es), 0);
    }

    #[test]
    fn header() {
        let mut h = [0u8; abi::REQ_HEADER_SZ];
        finish(&mut h, 77, Some(Errno::ENOENT), 0);
        assert_eq!(abi::u32_at(&h, 0), Some(16));
        assert_eq!(abi::u32_at(&h, 4), Some((-libc::ENOENT) as u32));
        assert_eq!(abi::u64_at(&h, 8), Some(77));
        finish(&mut h, 78, None, 8);
        assert_eq!(abi::u32_at(&h, 4), Some(0));
        assert_eq!(abi::u32_at(&h, abi::ENT_PAYLOAD_SZ_OFF), Some(8));
    }
}
