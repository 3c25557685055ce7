//! One request from a ring entry: decode it, call its handler, write the reply into the same
//! entry. The handlers are the ones the /dev/fuse channel calls (`fuse::handlers`).

use fuser::Errno;

use super::abi;
use super::reply;
use super::request::{self, InHeader, Op};
use crate::fs_api::{Caller, ZusFs};
use crate::fuse::handlers::{Handlers, OpResult, Origin, XattrValue};

/// Who may use the mount besides root's requests: decides fuser's EACCES rule.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// `allow_other`: anyone.
    pub allow_other: bool,
    /// The uid zus runs as (the session's owner).
    pub owner: u32,
}

/// Serve the request in `header` (a fuse_uring_req_header) and `payload`, which the kernel
/// filled, and leave the reply there. `cpu` is the queue's CPU: the caller's.
pub fn serve<F: ZusFs + 'static>(
    h: &Handlers<F>,
    access: Access,
    cpu: usize,
    header: &mut [u8],
    payload: &mut [u8],
) {
    let Some(hdr) = InHeader::parse(&header[..abi::IN_OUT_HEADER_SZ]) else {
        // Cannot happen with a 288-byte header; answer nothing sensible rather than panic.
        log::error!("FUSE over io_uring: request header unreadable");
        return;
    };
    let payload_sz = abi::u32_at(header, abi::ENT_PAYLOAD_SZ_OFF).unwrap_or(0) as usize;
    let r = if payload_sz > payload.len() {
        log::error!(
            "FUSE over io_uring: request {} (opcode {}) says {payload_sz} payload bytes, the buffer has {}",
            hdr.unique,
            hdr.opcode,
            payload.len()
        );
        Err(Errno::EINVAL)
    } else if !access.allow_other && hdr.uid != access.owner && !request::allowed_for_others(hdr.opcode) {
        Err(Errno::EACCES)
    } else {
        let mut op_in = [0u8; abi::OP_IN_OUT_SZ];
        op_in.copy_from_slice(&header[abi::IN_OUT_HEADER_SZ..abi::ENT_IN_OUT_OFF]);
        dispatch(h, &hdr, cpu, &op_in, payload, payload_sz)
    };
    match r {
        Ok(len) => reply::finish(header, hdr.unique, None, len),
        Err(e) => reply::finish(header, hdr.unique, Some(e), 0),
    }
}

/// Call the handler; the reply's payload length.
fn dispatch<F: ZusFs + 'static>(
    h: &Handlers<F>,
    hdr: &InHeader,
    cpu: usize,
    op_in: &[u8],
    payload: &mut [u8],
    payload_sz: usize,
) -> OpResult<usize> {
    let ino = hdr.nodeid;
    let caller = Caller { uid: hdr.uid, gid: hdr.gid, pid: hdr.pid };
    let origin = Origin::Cpu(cpu);
    let ttl = h.ttl();
    let op = match request::decode(hdr.opcode, op_in, &payload[..payload_sz]) {
        Ok(op) => op,
        Err(e) => {
            log::error!("FUSE over io_uring: malformed request {} (opcode {})", hdr.unique, hdr.opcode);
            return Err(e);
        }
    };
    // Requests that read the payload answer after the handler is done with it.
    match op {
        Op::Lookup { name } => {
            let a = h.lookup(ino, name)?;
            reply::entry(payload, &a, ttl)
        }
        Op::Forget { nlookup } => {
            h.forget(ino, nlookup);
            Ok(0)
        }
        Op::Getattr => reply::attr(payload, &h.getattr(ino)?, ttl),
        Op::Setattr(set) => reply::attr(payload, &h.setattr(ino, &set)?, ttl),
        Op::Readlink => reply::data(payload, &h.readlink(ino)?),
        Op::Symlink { name, target } => {
            let a = h.symlink(origin, caller, ino, name, target)?;
            reply::entry(payload, &a, ttl)
        }
        Op::Mknod { name, mode, rdev, umask } => {
            let a = h.mknod(origin, caller, ino, name, mode, umask, rdev)?;
            reply::entry(payload, &a, ttl)
        }
        Op::Mkdir { name, mode, umask } => {
            let a = h.mkdir(origin, caller, ino, name, mode, umask)?;
            reply::entry(payload, &a, ttl)
        }
        Op::Unlink { name } => h.unlink(ino, name).map(|()| 0),
        Op::Rmdir { name } => h.rmdir(ino, name).map(|()| 0),
        Op::Rename { name, newdir, newname, flags } => {
            h.rename(ino, name, newdir, newname, flags).map(|()| 0)
        }
        Op::Link { oldnodeid, name } => {
            let a = h.link(oldnodeid, ino, name)?;
            reply::entry(payload, &a, ttl)
        }
        Op::Open { flags } => reply::open(payload, &h.open(ino, flags)?),
        Op::Read { offset, size } => {
            // Straight into the ring's buffer: the data is copied once, by the kernel.
            let buf = payload.get_mut(..size as usize).ok_or(Errno::EINVAL)?;
            h.read(ino, offset, buf)
        }
        Op::Write { fh, offset, data, write_flags, flags } => {
            let n = h.write(origin, ino, fh, offset, data, write_flags, flags)?;
            reply::count32(payload, n)
        }
        Op::Statfs => reply::statfs(payload, &h.statfs()?),
        Op::Release | Op::Releasedir => h.release(ino).map(|()| 0),
        Op::Fsync { datasync } | Op::Fsyncdir { datasync } => h.fsync(ino, datasync).map(|()| 0),
        Op::Setxattr { name, value, flags } => h.setxattr(caller, ino, name, value, flags).map(|()| 0),
        Op::Getxattr { name, size } => xattr(payload, h.getxattr(ino, name, size)?),
        Op::Listxattr { size } => xattr(payload, h.listxattr(ino, size)?),
        Op::Removexattr { name } => h.removexattr(ino, name).map(|()| 0),
        Op::Flush => h.flush().map(|()| 0),
        Op::Opendir => reply::open(payload, &h.opendir(ino)?),
        Op::Readdir { offset, size } => {
            let entries = h.readdir(ino, offset)?;
            Ok(reply::dirents(payload, size as usize, &entries))
        }
        Op::Access => h.access(ino).map(|()| 0),
        Op::Create { name, mode, umask, flags } => {
            let (a, o) = h.create(origin, caller, ino, name, mode, umask, flags)?;
            reply::create(payload, &a, &o, ttl)
        }
        Op::Ioctl => h.ioctl().map(|()| 0),
        Op::Fallocate { offset, length, mode } => h.fallocate(origin, ino, offset, length, mode).map(|()| 0),
        Op::Lseek { offset, whence } => reply::offset(payload, h.lseek(ino, offset, whence)?),
        Op::CopyFileRange => h.copy_file_range().map(|()| 0),
        // The filesystem is unmounted when the session ends (fuser's destroy), as on /dev/fuse.
        Op::Destroy => Ok(0),
        Op::Unsupported(_) => Err(Errno::ENOSYS),
    }
}

fn xattr(payload: &mut [u8], v: XattrValue) -> OpResult<usize> {
    match v {
        XattrValue::Size(n) => reply::count32(payload, n),
        XattrValue::Data(d) => reply::data(payload, &d),
    }
}
