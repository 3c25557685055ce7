//! One operation from zuf.ko: decode the buffer, call the filesystem, encode the reply.
//! The kernel is trusted no more than it must be: names, lengths and window ranges are
//! checked here and a bad request gets -EINVAL, never a panic.

use std::os::unix::ffi::OsStrExt;

use crate::fs_api::*;

use super::abi::*;
use super::sys::Mapping;

fn name(buf: &[u8; ZUF_NAME_MAX], len: u32) -> Result<&[u8]> {
    let len = len as usize;
    if len == 0 || len > NAME_MAX {
        return Err(Error::Invalid("name length from the kernel"));
    }
    Ok(&buf[..len])
}

fn time(t: ZufTime) -> Timespec {
    Timespec { sec: t.sec, nsec: t.nsec.min(999_999_999) }
}

fn ztime(t: Timespec) -> ZufTime {
    ZufTime { sec: t.sec, nsec: t.nsec, pad: 0 }
}

/// zuf_attr from the filesystem's attributes.
pub fn encode_attr(a: &Attr) -> ZufAttr {
    ZufAttr {
        ino: a.ino,
        size: a.size,
        blocks: a.blocks,
        atime: ztime(a.atime),
        mtime: ztime(a.mtime),
        ctime: ztime(a.ctime),
        mode: a.kind.mode_bits() | a.perm as u32,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: a.flags,
        generation: a.generation,
        btime: ztime(a.btime),
    }
}

/// Serve `op` against `fs`, with the application window `window`. Returns 0 or -errno and
/// fills the reply fields of `op`.
pub fn serve<F: ZusFs + ?Sized>(fs: &F, op: &mut ZufOpBuf, window: &mut Mapping) -> i32 {
    match serve_inner(fs, op, window) {
        Ok(()) => 0,
        Err(e) => {
            crate::fs_api::log_damage(&e);
            -e.errno()
        }
    }
}

fn data<'w>(window: &'w mut Mapping, op: &ZufOpBuf) -> Result<&'w mut [u8]> {
    if op.len > ZUF_WINDOW_SIZE {
        return Err(Error::Invalid("data longer than the window"));
    }
    window.slice(op.window_off, op.len).ok_or(Error::Invalid("data outside the window"))
}

fn put_out(window: &mut Mapping, op: &mut ZufOpBuf, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 > op.len {
        return Err(Error::Range);
    }
    let dst = data(window, op)?;
    dst[..bytes.len()].copy_from_slice(bytes);
    op.out_len = bytes.len() as u64;
    Ok(())
}

fn serve_inner<F: ZusFs + ?Sized>(fs: &F, op: &mut ZufOpBuf, window: &mut Mapping) -> Result<()> {
    let caller = Caller { uid: op.uid, gid: op.gid, pid: 0 };
    let ino = op.ino;
    match op.op {
        op::LOOKUP => op.attr = encode_attr(&fs.lookup(ino, name(&op.name, op.name_len)?)?),
        op::GETATTR => op.attr = encode_attr(&fs.getattr(ino)?),
        op::SETATTR => {
            let s = op.set;
            let v = s.valid;
            if v & ZUF_SET_FLAGS != 0 {
                if v != ZUF_SET_FLAGS {
                    return Err(Error::Invalid("SETATTR of chattr flags with other attributes"));
                }
                // zuf.ko calls this from vfs_fileattr_set, which checked the caller's right
                // (owner, CAP_LINUX_IMMUTABLE) as the server cannot: the caller is the kernel.
                op.attr = encode_attr(&fs.set_flags(ino, s.flags, Caller::ROOT)?);
                return Ok(());
            }
            let pick = |set: u32, now: u32, t: ZufTime| {
                if v & now != 0 {
                    Some(TimeOrNow::Now)
                } else if v & set != 0 {
                    Some(TimeOrNow::At(time(t)))
                } else {
                    None
                }
            };
            let set = SetAttr {
                mode: (v & ZUF_SET_MODE != 0).then_some(s.mode),
                uid: (v & ZUF_SET_UID != 0).then_some(s.uid),
                gid: (v & ZUF_SET_GID != 0).then_some(s.gid),
                size: (v & ZUF_SET_SIZE != 0).then_some(s.size),
                atime: pick(ZUF_SET_ATIME, ZUF_SET_ATIME_NOW, s.atime),
                mtime: pick(ZUF_SET_MTIME, ZUF_SET_MTIME_NOW, s.mtime),
                ctime: (v & ZUF_SET_CTIME != 0).then(|| time(s.ctime)),
            };
            op.attr = encode_attr(&fs.setattr(ino, &set)?);
        }
        op::MKNOD => {
            let n = name(&op.name, op.name_len)?;
            op.attr = encode_attr(&fs.mknod(ino, n, op.mode, op.rdev, caller)?);
        }
        op::TMPFILE => op.attr = encode_attr(&fs.tmpfile(ino, op.mode, caller)?),
        op::CREATE => {
            // open(O_CREAT) of a name the kernel has not looked up: what the name holds, or a
            // new regular file, in one round trip instead of LOOKUP then MKNOD.
            let n = name(&op.name, op.name_len)?;
            if op.mode & libc::S_IFMT != libc::S_IFREG {
                return Err(Error::Invalid("CREATE of something other than a regular file"));
            }
            let excl = op.flags & ZUF_F_EXCL != 0;
            let found = |fs: &F| match fs.lookup(ino, n) {
                Ok(_) if excl => Err(Error::Exists),
                other => other,
            };
            let (attr, created) = match found(fs) {
                Ok(a) => (a, false),
                Err(Error::NotFound) => match fs.mknod(ino, n, op.mode, 0, caller) {
                    Ok(a) => (a, true),
                    // Made by someone else since the lookup.
                    Err(Error::Exists) => (found(fs)?, false),
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            };
            op.attr = encode_attr(&attr);
            op.out_len = u64::from(created);
        }
        op::MKDIR => {
            let n = name(&op.name, op.name_len)?.to_vec();
            op.attr = encode_attr(&fs.mkdir(ino, &n, op.mode, caller)?);
        }
        op::SYMLINK => {
            let n = name(&op.name, op.name_len)?.to_vec();
            let target = data(window, op)?.to_vec();
            op.attr = encode_attr(&fs.symlink(ino, &n, &target, caller)?);
        }
        op::READLINK => {
            let t = fs.readlink(ino)?;
            put_out(window, op, &t)?;
        }
        op::LINK => {
            let n = name(&op.name, op.name_len)?.to_vec();
            op.attr = encode_attr(&fs.link(ino, op.ino2, &n)?);
        }
        op::UNLINK => fs.unlink(ino, name(&op.name, op.name_len)?)?,
        op::RMDIR => fs.rmdir(ino, name(&op.name, op.name_len)?)?,
        op::RENAME => {
            let flags = RenameFlags {
                noreplace: op.flags & ZUF_F_RENAME_NOREPLACE != 0,
                exchange: op.flags & ZUF_F_RENAME_EXCHANGE != 0,
                whiteout: op.flags & ZUF_F_RENAME_WHITEOUT != 0,
            };
            if op.flags & !(ZUF_F_RENAME_NOREPLACE | ZUF_F_RENAME_EXCHANGE | ZUF_F_RENAME_WHITEOUT) != 0 {
                return Err(Error::Invalid("rename flags"));
            }
            let (a, b) = (name(&op.name, op.name_len)?.to_vec(), name(&op.name2, op.name2_len)?.to_vec());
            // zuf.ko does not look the target up first: tell it what lost the name, with its
            // link count now, in case it caches that inode under another name. Freed already
            // (ino 0 then): the kernel held no reference, so it caches nothing of it.
            let replaced = fs.rename(ino, &a, op.ino2, &b, flags)?;
            op.attr = match replaced.map(|v| fs.getattr(v)) {
                Some(Ok(attr)) => encode_attr(&attr),
                _ => Default::default(),
            };
        }
        op::READDIR => {
            let dst = data(window, op)?;
            let mut used = 0usize;
            let mut offset = op.offset;
            loop {
                let batch = fs.readdir(ino, offset, 64)?;
                if batch.is_empty() {
                    break;
                }
                let mut full = false;
                for e in batch {
                    let rec = (24 + e.name.len()).div_ceil(8) * 8;
                    if used + rec > dst.len() {
                        full = true;
                        break;
                    }
                    let d = ZufDirent {
                        ino: e.ino,
                        next_offset: e.next_offset,
                        reclen: rec as u16,
                        r#type: FileKind::dirent_type(e.kind),
                        name_len: e.name.len() as u8,
                        pad: 0,
                    };
                    let out = &mut dst[used..used + rec];
                    out.fill(0);
                    out[0..8].copy_from_slice(&d.ino.to_ne_bytes());
                    out[8..16].copy_from_slice(&d.next_offset.to_ne_bytes());
                    out[16..18].copy_from_slice(&d.reclen.to_ne_bytes());
                    out[18] = d.r#type;
                    out[19] = d.name_len;
                    out[24..24 + e.name.len()].copy_from_slice(&e.name);
                    used += rec;
                    offset = e.next_offset;
                }
                if full {
                    break;
                }
            }
            op.out_len = used as u64;
        }
        op::READ => {
            let n = fs.read(ino, op.offset, data(window, op)?)?;
            op.out_len = n as u64;
        }
        op::WRITE => {
            let append = op.flags & ZUF_F_APPEND != 0;
            let (n, at) = {
                let src = data(window, op)?;
                fs.write(ino, op.offset, src, append)?
            };
            op.out_len = n as u64;
            op.out_offset = at;
            op.attr = encode_attr(&fs.getattr(ino)?);
        }
        op::FSYNC => fs.fsync(ino, op.flags & ZUF_F_DATASYNC != 0)?,
        op::FALLOCATE => {
            const KEEP_SIZE: u32 = 0x01;
            const PUNCH_HOLE: u32 = 0x02;
            const ZERO_RANGE: u32 = 0x10;
            const COLLAPSE_RANGE: u32 = 0x08;
            const INSERT_RANGE: u32 = 0x20;
            let mode = match op.mode {
                0 => FallocMode::Allocate { keep_size: false },
                KEEP_SIZE => FallocMode::Allocate { keep_size: true },
                m if m == PUNCH_HOLE | KEEP_SIZE => FallocMode::PunchHole,
                ZERO_RANGE => FallocMode::ZeroRange { keep_size: false },
                m if m == ZERO_RANGE | KEEP_SIZE => FallocMode::ZeroRange { keep_size: true },
                COLLAPSE_RANGE => FallocMode::CollapseRange,
                INSERT_RANGE => FallocMode::InsertRange,
                _ => return Err(Error::NotSupported),
            };
            fs.fallocate(ino, mode, op.offset, op.len)?;
            op.attr = encode_attr(&fs.getattr(ino)?);
        }
        op::LLSEEK => {
            let whence = match op.mode as i32 {
                libc::SEEK_DATA => SeekWhence::Data,
                libc::SEEK_HOLE => SeekWhence::Hole,
                _ => return Err(Error::Invalid("llseek whence")),
            };
            op.out_offset = fs.lseek(ino, op.offset, whence)?;
        }
        op::STATFS => {
            let s = fs.statfs()?;
            op.statfs = ZufStatfs {
                blocks: s.blocks,
                bfree: s.blocks_free,
                bavail: s.blocks_avail,
                files: s.files,
                ffree: s.files_free,
                bsize: s.block_size,
                namelen: s.name_max,
            };
        }
        op::SETXATTR => {
            let n = xattr_name(op)?;
            let value = data(window, op)?.to_vec();
            let flags = XattrFlags {
                create: op.flags & libc::XATTR_CREATE as u32 != 0,
                replace: op.flags & libc::XATTR_REPLACE as u32 != 0,
            };
            fs.setxattr(ino, &n, &value, flags)?;
        }
        op::GETXATTR => {
            let v = fs.getxattr(ino, &xattr_name(op)?)?;
            if op.len == 0 {
                op.out_len = v.len() as u64; // size probe
            } else {
                put_out(window, op, &v)?;
            }
        }
        op::LISTXATTR => {
            let v = fs.listxattr(ino)?;
            if op.len == 0 {
                op.out_len = v.len() as u64;
            } else {
                put_out(window, op, &v)?;
            }
        }
        op::REMOVEXATTR => fs.removexattr(ino, &xattr_name(op)?)?,
        op::GET_BLOCK => {
            let b = fs.get_data_block(ino, op.offset, op.flags & ZUF_F_FOR_WRITE != 0)?;
            match b {
                Some(b) => op.out_offset = b.device_offset,
                None => return Err(Error::NoAttr), // ENODATA: a hole; the kernel maps the zero page
            }
        }
        op::OPEN => fs.open(ino)?,
        op::RELEASE => fs.release(ino)?,
        op::EVICT => {}
        op::FIEMAP => {
            let dst = data(window, op)?;
            let record = std::mem::size_of::<ZufExtent>();
            let extents = fs.data_extents(ino, op.offset, u64::MAX - op.offset, dst.len() / record)?;
            for (e, out) in extents.iter().zip(dst.chunks_exact_mut(record)) {
                // Field by field at struct zuf_extent's offsets (checked by tests/zuf_abi.rs).
                out[0..8].copy_from_slice(&e.offset.to_ne_bytes());
                out[8..16].copy_from_slice(&e.device_offset.to_ne_bytes());
                out[16..24].copy_from_slice(&e.len.to_ne_bytes());
                let flags = if e.last { ZUF_EXTENT_LAST } else { 0 };
                out[24..28].copy_from_slice(&flags.to_ne_bytes());
                out[28..32].fill(0);
            }
            op.out_len = (extents.len() * record) as u64;
        }
        _ => return Err(Error::NotSupported),
    }
    Ok(())
}

fn xattr_name(op: &ZufOpBuf) -> Result<Vec<u8>> {
    let len = op.name_len as usize;
    if len == 0 || len >= ZUF_NAME_MAX {
        return Err(Error::Range);
    }
    Ok(std::ffi::OsStr::from_bytes(&op.name[..len]).as_bytes().to_vec())
}
