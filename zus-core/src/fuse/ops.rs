//! The /dev/fuse channel's side of each request, through fuser: take the decoded request,
//! call its handler (`handlers`), and reply exactly once; errors go back as their errno.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow as FuseTimeOrNow, Version, WriteFlags,
};

use super::convert::{self, file_attr};
use super::handlers::{Negotiated, OpResult, Opened, Origin, XattrValue};
use super::FuseServer;
use crate::fs_api::{Attr, Caller, SetAttr, TimeOrNow, ZusFs};

/// The generation the kernel keeps with an inode number: it puts it into file handles and
/// compares it when a handle is opened again, so a reused number gives ESTALE.
fn generation(a: &Attr) -> Generation {
    Generation(u64::from(a.generation))
}

thread_local! {
    /// Per-thread read buffer, reused so that reads do not allocate and zero a buffer each time.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn caller(req: &Request) -> Caller {
    Caller { uid: req.uid(), gid: req.gid(), pid: req.pid() }
}

fn origin(req: &Request) -> Origin {
    Origin::Task(req.pid())
}

fn bytes(name: &OsStr) -> &[u8] {
    name.as_bytes()
}

fn time_or_now(t: FuseTimeOrNow) -> TimeOrNow {
    match t {
        FuseTimeOrNow::Now => TimeOrNow::Now,
        FuseTimeOrNow::SpecificTime(t) => TimeOrNow::At(convert::timespec(t)),
    }
}

fn fopen(o: &Opened) -> FopenFlags {
    FopenFlags::from_bits_retain(o.open_flags)
}

impl<F: ZusFs + 'static> FuseServer<F> {
    fn reply_entry(&self, reply: ReplyEntry, r: OpResult<Attr>) {
        match r {
            Ok(attr) => reply.entry(&self.h.ttl(), &file_attr(&attr), generation(&attr)),
            Err(e) => reply.error(e),
        }
    }

    fn reply_attr(&self, reply: ReplyAttr, r: OpResult<Attr>) {
        match r {
            Ok(attr) => reply.attr(&self.h.ttl(), &file_attr(&attr)),
            Err(e) => reply.error(e),
        }
    }

    fn reply_empty(reply: ReplyEmpty, r: OpResult<()>) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn reply_open(reply: ReplyOpen, r: OpResult<Opened>) {
        match r {
            Ok(o) => reply.opened(FileHandle(o.fh), fopen(&o)),
            Err(e) => reply.error(e),
        }
    }

    fn reply_xattr(reply: ReplyXattr, r: OpResult<XattrValue>) {
        match r {
            Ok(XattrValue::Size(n)) => reply.size(n),
            Ok(XattrValue::Data(v)) => reply.data(&v),
            Err(e) => reply.error(e),
        }
    }

    /// Count a request this channel served (`zus status`).
    #[inline]
    fn served(&self) {
        self.stats.count_dev();
    }
}

impl<F: ZusFs + 'static> Filesystem for FuseServer<F> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let caps = config.capabilities();
        // FOPEN_DIRECT_IO keeps file data out of the page cache (every read and write reaches
        // zpmfs, where it is durable on return); before FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6)
        // it also forbade shared mmap, so use it only when the kernel allows mmap with it.
        // Otherwise plain write-through caching: the writeback cache is never requested, so
        // the kernel keeps no dirty data either way.
        let direct_io = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP).is_ok();
        // File handles (name_to_handle_at, NFS export): the kernel finds an inode it no longer
        // caches by looking up "." in it, and its parent by "..".
        if caps.contains(InitFlags::FUSE_EXPORT_SUPPORT) {
            let _ = config.add_capabilities(InitFlags::FUSE_EXPORT_SUPPORT);
        }
        // ioctls on directories too: the shutdown ioctl is aimed at the mount point.
        if caps.contains(InitFlags::FUSE_HAS_IOCTL_DIR) {
            let _ = config.add_capabilities(InitFlags::FUSE_HAS_IOCTL_DIR);
        }
        if caps.contains(InitFlags::FUSE_PARALLEL_DIROPS) {
            // zpmfs locks internally; lookups and readdirs in one directory may run in parallel.
            let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        }
        // POSIX ACLs: the kernel enforces them; zus inherits default ACLs at creation, which
        // needs the umask unapplied (FUSE_DONT_MASK), and keeps mode and ACL in step.
        let posix_acl = caps.contains(InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK)
            && config.add_capabilities(InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK).is_ok();
        // Not requested on purpose: FUSE_WRITEBACK_CACHE (dirty data in the page cache) and
        // FUSE_HANDLE_KILLPRIV(_V2) (the kernel clears setuid/setgid on write and chown).
        let write_flags_reliable = config.kernel_abi() >= Version(7, 9);
        self.h.set_negotiated(Negotiated { direct_io, write_flags_reliable, posix_acl });
        // The io_uring channel, where chosen and offered; the rings register once the INIT
        // reply has reached the kernel (after this returns).
        self.uring.negotiate(config)?;
        log::info!(
            "FUSE ABI {}.{}, direct I/O {}",
            config.kernel_abi().0,
            config.kernel_abi().1,
            if direct_io { "with mmap" } else { "unavailable (write-through page cache)" }
        );
        Ok(())
    }

    fn destroy(&mut self) {
        // The rings' threads end once the kernel has cancelled their commands; let them finish
        // the requests they hold before the filesystem goes.
        self.uring.stop();
        let r = self.h.unmount();
        if let Err(e) = &r {
            log::error!("unmount: {e}");
        }
        // Only the first destroy counts; fuser calls it once.
        let _ = self.unmounted.set(r.map_err(|e| e.to_string()));
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.served();
        self.reply_entry(reply, self.h.lookup(parent.0, bytes(name)));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.served();
        self.h.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.served();
        self.reply_attr(reply, self.h.getattr(ino.0));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<FuseTimeOrNow>,
        mtime: Option<FuseTimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.served();
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_or_now),
            mtime: mtime.map(time_or_now),
            ctime: ctime.map(convert::timespec),
        };
        self.reply_attr(reply, self.h.setattr(ino.0, &set));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.served();
        match self.h.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.served();
        let r = self.h.mknod(origin(req), caller(req), parent.0, bytes(name), mode, umask, rdev);
        self.reply_entry(reply, r);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        self.served();
        let r = self.h.mkdir(origin(req), caller(req), parent.0, bytes(name), mode, umask);
        self.reply_entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.served();
        Self::reply_empty(reply, self.h.unlink(parent.0, bytes(name)));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.served();
        Self::reply_empty(reply, self.h.rmdir(parent.0, bytes(name)));
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        self.served();
        let r = self.h.symlink(
            origin(req),
            caller(req),
            parent.0,
            bytes(link_name),
            target.as_os_str().as_bytes(),
        );
        self.reply_entry(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.served();
        Self::reply_empty(
            reply,
            self.h.rename(parent.0, bytes(name), newparent.0, bytes(newname), flags.bits()),
        );
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        self.served();
        self.reply_entry(reply, self.h.link(ino.0, newparent.0, bytes(newname)));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.served();
        Self::reply_open(reply, self.h.open(ino.0, flags.0));
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.served();
        let Ok(size) = usize::try_from(size) else {
            return reply.error(Errno::EINVAL);
        };
        READ_BUF.with(|cell| {
            let Ok(mut buf) = cell.try_borrow_mut() else {
                return reply.error(Errno::EIO);
            };
            if buf.len() < size {
                buf.resize(size, 0);
            }
            match self.h.read(ino.0, offset, &mut buf[..size]) {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(e),
            }
        })
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.served();
        match self.h.write(origin(req), ino.0, fh.0, offset, data, write_flags.bits(), flags.0) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.served();
        Self::reply_open(reply, self.h.opendir(ino.0));
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.served();
        Self::reply_empty(reply, self.h.release(ino.0));
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _owner: LockOwner, reply: ReplyEmpty) {
        self.served();
        Self::reply_empty(reply, self.h.flush());
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.served();
        Self::reply_empty(reply, self.h.release(ino.0));
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.served();
        Self::reply_empty(reply, self.h.fsync(ino.0, datasync));
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        self.served();
        match self.h.readdir(ino.0, offset) {
            Ok(entries) => {
                for e in &entries {
                    let name = OsStr::from_bytes(&e.name);
                    if reply.add(INodeNo(e.ino), e.next_offset, convert::file_type(e.kind), name) {
                        break; // The reply is full; the kernel asks again from this entry.
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.served();
        Self::reply_empty(reply, self.h.fsync(ino.0, datasync));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.served();
        match self.h.statfs() {
            Ok(s) => reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_avail,
                s.files,
                s.files_free,
                s.block_size,
                s.name_max,
                s.block_size,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.served();
        Self::reply_empty(reply, self.h.setxattr(caller(req), ino.0, bytes(name), value, flags));
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.served();
        Self::reply_xattr(reply, self.h.getxattr(ino.0, bytes(name), size));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.served();
        Self::reply_xattr(reply, self.h.listxattr(ino.0, size));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.served();
        Self::reply_empty(reply, self.h.removexattr(ino.0, bytes(name)));
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        self.served();
        Self::reply_empty(reply, self.h.access(ino.0));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.served();
        match self.h.create(origin(req), caller(req), parent.0, bytes(name), mode, umask, flags) {
            Ok((attr, o)) => reply.created(
                &self.h.ttl(),
                &file_attr(&attr),
                generation(&attr),
                FileHandle(o.fh),
                fopen(&o),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.served();
        match self.h.ioctl(caller(req), ino.0, cmd, in_data, out_size) {
            Ok(out) => reply.ioctl(0, &out),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.served();
        Self::reply_empty(reply, self.h.fallocate(origin(req), ino.0, offset, length, mode));
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        self.served();
        match self.h.lseek(ino.0, offset, whence) {
            Ok(off) => reply.offset(off),
            Err(e) => reply.error(e),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.served();
        if let Err(e) = self.h.copy_file_range() {
            reply.error(e);
        }
    }
}
