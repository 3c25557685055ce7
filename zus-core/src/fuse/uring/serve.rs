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
    /// The effective uid zus runs as (the session's owner, as fuser takes it).
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
        Op::Statx => reply::statx(payload, &h.getattr(ino)?, ttl),
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
        Op::Tmpfile { mode, umask, flags } => {
            let (a, o) = h.tmpfile(origin, caller, ino, mode, umask, flags)?;
            reply::create(payload, &a, &o, ttl)
        }
        Op::Ioctl { cmd, input, out_size } => {
            let out = h.ioctl(caller, ino, cmd, input, out_size)?;
            reply::ioctl(payload, &out)
        }
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::fuse::uring::abi::{op, put_u32, put_u64, u32_at, u64_at};

    struct Img(PathBuf);
    impl Drop for Img {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn handlers(tag: &str) -> (Img, Handlers<pmfs::Fs>) {
        let path = PathBuf::from(format!("/dev/shm/uring-serve-{tag}-{}.img", std::process::id()));
        std::fs::File::create(&path).expect("image").set_len(32 << 20).expect("size");
        let dev = pmfs::device::Device::open(&path, true).expect("open");
        pmfs::format::format(&dev, &Default::default()).expect("format");
        drop(dev);
        let fs = <pmfs::Fs as ZusFs>::mount(std::slice::from_ref(&path), &Default::default()).expect("mount");
        (Img(path), Handlers::new(Arc::new(fs), Duration::from_secs(1), Vec::new()))
    }

    const ME: Access = Access { allow_other: false, owner: 0 };

    /// A ring entry as the kernel fills it; the reply's (error, payload length).
    fn request(
        h: &Handlers<pmfs::Fs>,
        opcode: u32,
        nodeid: u64,
        uid: u32,
        op_in: &[u8],
        payload_in: &[u8],
        payload: &mut [u8],
    ) -> (i32, usize) {
        let mut header = [0u8; abi::REQ_HEADER_SZ];
        put_u32(&mut header, 4, opcode);
        put_u64(&mut header, 8, 42);
        put_u64(&mut header, 16, nodeid);
        put_u32(&mut header, 24, uid);
        header[abi::IN_OUT_HEADER_SZ..abi::IN_OUT_HEADER_SZ + op_in.len()].copy_from_slice(op_in);
        put_u32(&mut header, abi::ENT_PAYLOAD_SZ_OFF, payload_in.len() as u32);
        payload[..payload_in.len()].copy_from_slice(payload_in);
        serve(h, ME, 0, &mut header, payload);
        assert_eq!(u64_at(&header, 8), Some(42), "the reply carries the request's unique");
        let len = u32_at(&header, abi::ENT_PAYLOAD_SZ_OFF).expect("size") as usize;
        assert_eq!(u32_at(&header, 0), Some((abi::OUT_HEADER_SZ + len) as u32));
        (u32_at(&header, 4).expect("error") as i32, len)
    }

    #[test]
    fn create_write_read_through_the_entry_layout() {
        let (_img, h) = handlers("rw");
        let mut payload = vec![0u8; 1 << 16];
        let (err, _) = request(&h, op::LOOKUP, 1, 0, &[], b"f\0", &mut payload);
        assert_eq!(err, -libc::ENOENT);

        let mut create_in = [0u8; 16];
        create_in[0..4].copy_from_slice(&(libc::O_RDWR as u32).to_le_bytes());
        create_in[4..8].copy_from_slice(&0o644u32.to_le_bytes());
        let (err, len) = request(&h, op::CREATE, 1, 0, &create_in, b"f\0", &mut payload);
        assert_eq!((err, len), (0, abi::ENTRY_OUT_SZ + abi::OPEN_OUT_SZ));
        let ino = u64_at(&payload, 0).expect("nodeid");
        assert_eq!(u32_at(&payload, 40 + 60), Some(libc::S_IFREG | 0o644));

        let mut write_in = [0u8; 40];
        write_in[8..16].copy_from_slice(&4096u64.to_le_bytes());
        write_in[16..20].copy_from_slice(&5u32.to_le_bytes());
        let (err, len) = request(&h, op::WRITE, ino, 0, &write_in, b"hello", &mut payload);
        assert_eq!((err, len), (0, abi::WRITE_OUT_SZ));
        assert_eq!(u32_at(&payload, 0), Some(5));

        let mut read_in = [0u8; 40];
        read_in[8..16].copy_from_slice(&4096u64.to_le_bytes());
        read_in[16..20].copy_from_slice(&100u32.to_le_bytes());
        let (err, len) = request(&h, op::READ, ino, 0, &read_in, b"", &mut payload);
        assert_eq!((err, len), (0, 5));
        assert_eq!(&payload[..5], b"hello");

        let (err, len) = request(&h, op::GETATTR, ino, 0, &[0u8; 16], b"", &mut payload);
        assert_eq!((err, len), (0, abi::ATTR_OUT_SZ));
        assert_eq!(u64_at(&payload, 16 + 8), Some(4101), "size");

        let mut readdir_in = [0u8; 40];
        readdir_in[16..20].copy_from_slice(&4096u32.to_le_bytes());
        let (err, len) = request(&h, op::READDIR, 1, 0, &readdir_in, b"", &mut payload);
        assert_eq!(err, 0);
        assert!(len > 0 && len <= 4096);
    }

    #[test]
    fn bad_requests_get_errors() {
        let (_img, h) = handlers("bad");
        let mut payload = vec![0u8; 4096];
        // A name without its NUL.
        assert_eq!(request(&h, op::LOOKUP, 1, 0, &[], b"abc", &mut payload).0, -libc::EINVAL);
        // A write shorter than it says.
        let mut write_in = [0u8; 40];
        write_in[16..20].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(request(&h, op::WRITE, 1, 0, &write_in, b"xy", &mut payload).0, -libc::EINVAL);
        // A read larger than the buffer.
        let mut read_in = [0u8; 40];
        read_in[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(request(&h, op::READ, 1, 0, &read_in, b"", &mut payload).0, -libc::EINVAL);
        // An opcode zus does not serve, and a stranger's request (fuser's EACCES rule).
        assert_eq!(request(&h, 9999, 1, 0, &[], b"", &mut payload).0, -libc::ENOSYS);
        assert_eq!(request(&h, op::GETATTR, 1, 1000, &[0u8; 16], b"", &mut payload).0, -libc::EACCES);
        // The kernel claiming more payload than the buffer holds.
        let mut header = [0u8; abi::REQ_HEADER_SZ];
        put_u32(&mut header, 4, op::LOOKUP);
        put_u32(&mut header, abi::ENT_PAYLOAD_SZ_OFF, 1 << 20);
        serve(&h, ME, 0, &mut header, &mut payload);
        assert_eq!(u32_at(&header, 4), Some((-libc::EINVAL) as u32));
    }
}
