//! The FUSE request handlers. Each one decodes its request, calls the [`ZusFs`] and replies
//! exactly once; filesystem errors go back as their errno.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow as FuseTimeOrNow, Version, WriteFlags,
};

use super::convert::{self, errno, file_attr, Seek, XattrAnswer};
use super::FuseServer;
use crate::fs_api::{Attr, Caller, SetAttr, TimeOrNow, ZusFs};

/// Directory entries asked of the filesystem per readdir request. The kernel asks for 32 KiB
/// of entries (about 1000 with short names); those that do not fit are asked again next time.
const READDIR_BATCH: usize = 512;

/// The generation the kernel keeps with an inode number: it puts it into file handles and
/// compares it when a handle is opened again, so a reused number gives ESTALE.
fn generation(a: &Attr) -> Generation {
    Generation(u64::from(a.generation))
}

/// A file handle carries the O_APPEND bit of its open in its lowest bit.
const FH_APPEND: u64 = 1;

thread_local! {
    /// Per-thread read buffer, reused so that reads do not allocate and zero a buffer each time.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn caller(req: &Request) -> Caller {
    Caller { uid: req.uid(), gid: req.gid(), pid: req.pid() }
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

impl<F: ZusFs + 'static> FuseServer<F> {
    /// On a set spread over NUMA nodes: allocate, until the guard drops, on the node of the
    /// CPU the caller waits on.
    fn place_for(&self, req: &Request) -> Option<pmfs::device::PlacementGuard> {
        self.numa_placement.then(|| pmfs::device::place_as(pmfs::device::task_cpu(req.pid())))
    }

    /// Each entry the kernel is given is a reference it keeps until FORGET: hold the inode
    /// open for it, so that an unlinked inode, and its number, live on while the kernel (a
    /// path walk in progress, say) may still send requests for it, as zuf.ko's inodes do.
    fn reply_entry(&self, reply: ReplyEntry, r: crate::fs_api::Result<Attr>) {
        match r.and_then(|attr| self.hold(&attr).map(|()| attr)) {
            Ok(attr) => reply.entry(&self.ttl, &file_attr(&attr), generation(&attr)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Hold `attr`'s inode open for the kernel. If it was freed, and its number perhaps reused,
    /// since `attr` was read, its name was gone at that moment: ENOENT is a true answer.
    fn hold(&self, attr: &Attr) -> crate::fs_api::Result<()> {
        self.fs.open(attr.ino)?;
        match self.fs.getattr(attr.ino) {
            Ok(now) if now.generation == attr.generation => Ok(()),
            _ => {
                let _ = self.fs.release(attr.ino);
                Err(crate::fs_api::Error::NotFound)
            }
        }
    }

    /// Create with the mode and ACLs that the directory's default ACL (or the umask) gives;
    /// a new inode whose ACLs cannot be set is removed again, so none is left half-made.
    fn create_with_acls(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
        make: impl FnOnce(u32) -> crate::fs_api::Result<Attr>,
    ) -> crate::fs_api::Result<Attr> {
        let is_dir = mode & libc::S_IFMT == libc::S_IFDIR;
        let c = self.creation(parent, mode, umask, is_dir)?;
        let attr = make(c.mode)?;
        if c.xattrs.is_empty() {
            return Ok(attr);
        }
        if let Err(e) = self.finish_creation(attr.ino, &c) {
            let _ = if is_dir { self.fs.rmdir(parent, name) } else { self.fs.unlink(parent, name) };
            return Err(e);
        }
        // Setting the ACL changed ctime; give the kernel the inode as it now is.
        self.fs.getattr(attr.ino)
    }

    /// Drop setuid, and setgid when group execute is set (should_remove_suid's rule).
    fn kill_suidgid(&self, ino: u64) -> crate::fs_api::Result<()> {
        let perm = self.fs.getattr(ino)?.perm as u32;
        let mut kill = libc::S_ISUID;
        if perm & libc::S_IXGRP != 0 {
            kill |= libc::S_ISGID;
        }
        if perm & kill != 0 {
            let set = crate::fs_api::SetAttr { mode: Some(perm & !kill), ..Default::default() };
            self.fs.setattr(ino, &set)?;
            // The kernel changed nothing itself and keeps the old mode cached for the
            // attribute timeout: tell it to ask again (offset -1: attributes only, no data).
            if let Some(n) = self.notifier.get() {
                if let Err(e) = n.inval_inode(INodeNo(ino), -1, 0) {
                    log::warn!("inode {ino}: cannot invalidate the kernel's attributes: {e}");
                }
            }
        }
        Ok(())
    }

    /// Drop the file's capabilities (security.capability), as file_remove_privs does on every
    /// write to a local file, whoever writes; with FOPEN_DIRECT_IO the kernel leaves it to us.
    fn kill_caps(&self, ino: u64) -> crate::fs_api::Result<()> {
        const CAPS: &[u8] = b"security.capability";
        if self.fs.getxattr(ino, CAPS).is_err() {
            return Ok(()); // The common case: a lookup under the read lock, nothing written.
        }
        match self.fs.removexattr(ino, CAPS) {
            Ok(()) | Err(crate::fs_api::Error::NoAttr) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn reply_empty(reply: ReplyEmpty, r: crate::fs_api::Result<()>) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn new_fh(&self, flags: i32) -> FileHandle {
        let n = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let append = if flags & libc::O_APPEND != 0 { FH_APPEND } else { 0 };
        FileHandle((n << 1) | append)
    }

    fn fopen_flags(&self) -> FopenFlags {
        if self.direct_io {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }

    fn reply_xattr(reply: ReplyXattr, value: &[u8], size: u32) {
        match convert::xattr_answer(value.len(), size) {
            XattrAnswer::Size(n) => reply.size(n),
            XattrAnswer::Data => reply.data(value),
            XattrAnswer::Range => reply.error(Errno::ERANGE),
        }
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
        self.direct_io = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP).is_ok();
        // File handles (name_to_handle_at, NFS export): the kernel finds an inode it no longer
        // caches by looking up "." in it, and its parent by "..".
        if caps.contains(InitFlags::FUSE_EXPORT_SUPPORT) {
            let _ = config.add_capabilities(InitFlags::FUSE_EXPORT_SUPPORT);
        }
        if caps.contains(InitFlags::FUSE_PARALLEL_DIROPS) {
            // zpmfs locks internally; lookups and readdirs in one directory may run in parallel.
            let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        }
        // POSIX ACLs: the kernel enforces them; zus inherits default ACLs at creation, which
        // needs the umask unapplied (FUSE_DONT_MASK), and keeps mode and ACL in step.
        self.posix_acl = caps.contains(InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK)
            && config.add_capabilities(InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK).is_ok();
        // Not requested on purpose: FUSE_WRITEBACK_CACHE (dirty data in the page cache) and
        // FUSE_HANDLE_KILLPRIV(_V2) (the kernel clears setuid/setgid on write and chown).
        self.write_flags_reliable = config.kernel_abi() >= Version(7, 9);
        log::info!(
            "FUSE ABI {}.{}, direct I/O {}",
            config.kernel_abi().0,
            config.kernel_abi().1,
            if self.direct_io { "with mmap" } else { "unavailable (write-through page cache)" }
        );
        Ok(())
    }

    fn destroy(&mut self) {
        let r = self.fs.unmount();
        if let Err(e) = &r {
            log::error!("unmount: {e}");
        }
        // Only the first destroy counts; fuser calls it once.
        let _ = self.unmounted.set(r.map_err(|e| e.to_string()));
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.pin.pin_current();
        // "." arrives for any kind of inode when the kernel opens a file handle.
        let r = if bytes(name) == b"." {
            self.fs.getattr(parent.0)
        } else {
            self.fs.lookup(parent.0, bytes(name))
        };
        self.reply_entry(reply, r);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        for _ in 0..nlookup {
            if self.fs.release(ino.0).is_err() {
                break;
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.pin.pin_current();
        match self.fs.getattr(ino.0) {
            Ok(attr) => reply.attr(&self.ttl, &file_attr(&attr)),
            Err(e) => reply.error(errno(&e)),
        }
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
        self.pin.pin_current();
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_or_now),
            mtime: mtime.map(time_or_now),
            ctime: ctime.map(convert::timespec),
        };
        let r = self.fs.setattr(ino.0, &set).and_then(|attr| match mode {
            Some(m) if self.posix_acl => self.chmod_acl(ino.0, m).map(|()| attr),
            _ => Ok(attr),
        });
        match r {
            Ok(attr) => reply.attr(&self.ttl, &file_attr(&attr)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.pin.pin_current();
        match self.fs.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
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
        let _placed = self.place_for(req);
        self.pin.pin_current();
        let r = self.create_with_acls(parent.0, bytes(name), mode, umask, |mode| {
            self.fs.mknod(parent.0, bytes(name), mode, rdev, caller(req))
        });
        self.reply_entry(reply, r);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let _placed = self.place_for(req);
        self.pin.pin_current();
        let mode = libc::S_IFDIR | (mode & 0o7777);
        let r = self.create_with_acls(parent.0, bytes(name), mode, umask, |mode| {
            self.fs.mkdir(parent.0, bytes(name), mode & 0o7777, caller(req))
        });
        self.reply_entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.pin.pin_current();
        Self::reply_empty(reply, self.fs.unlink(parent.0, bytes(name)));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.pin.pin_current();
        Self::reply_empty(reply, self.fs.rmdir(parent.0, bytes(name)));
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let _placed = self.place_for(req);
        self.pin.pin_current();
        let r = self.fs.symlink(parent.0, bytes(link_name), target.as_os_str().as_bytes(), caller(req));
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
        self.pin.pin_current();
        match convert::rename_flags(flags.bits()) {
            Ok(f) => Self::reply_empty(
                reply,
                self.fs.rename(parent.0, bytes(name), newparent.0, bytes(newname), f),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        self.pin.pin_current();
        self.reply_entry(reply, self.fs.link(ino.0, newparent.0, bytes(newname)));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.pin.pin_current();
        match self.fs.open(ino.0) {
            Ok(()) => reply.opened(self.new_fh(flags.0), self.fopen_flags()),
            Err(e) => reply.error(errno(&e)),
        }
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
        self.pin.pin_current();
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
            match self.fs.read(ino.0, offset, &mut buf[..size]) {
                Ok(n) => reply.data(&buf[..n.min(size)]),
                Err(e) => reply.error(errno(&e)),
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
        let _placed = self.place_for(req);
        self.pin.pin_current();
        // Page writeback (mmap) writes pages where they are, never at the end of file. Else
        // the file's current flags (sent since ABI 7.9, and changed by fcntl F_SETFL) say
        // whether it appends; older kernels send none, so the flags of the open decide.
        let append = !write_flags.contains(WriteFlags::FUSE_WRITE_CACHE)
            && if self.write_flags_reliable { flags.0 & libc::O_APPEND != 0 } else { fh.0 & FH_APPEND != 0 };
        // A write by someone other than the owner (the kernel tells us so) drops setuid, and
        // setgid where group execute is set, as every local filesystem does; before the data
        // lands, so no moment has new data under the old privileges.
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            if let Err(e) = self.kill_suidgid(ino.0) {
                reply.error(errno(&e));
                return;
            }
        }
        // Page writeback (from mmap) keeps them, as on a local filesystem.
        if !write_flags.contains(WriteFlags::FUSE_WRITE_CACHE) {
            if let Err(e) = self.kill_caps(ino.0) {
                reply.error(errno(&e));
                return;
            }
        }
        match self.fs.write(ino.0, offset, data, append) {
            Ok((n, _at)) => match u32::try_from(n) {
                Ok(n) => reply.written(n),
                Err(_) => reply.error(Errno::EIO),
            },
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.pin.pin_current();
        // An open directory handle keeps a removed directory alive until releasedir, as a file.
        match self.fs.open(ino.0) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.pin.pin_current();
        Self::reply_empty(reply, self.fs.release(ino.0));
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _owner: LockOwner, reply: ReplyEmpty) {
        // Every write is durable when it returns: nothing to flush.
        reply.ok();
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
        self.pin.pin_current();
        Self::reply_empty(reply, self.fs.release(ino.0));
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.pin.pin_current();
        Self::reply_empty(reply, self.fs.fsync(ino.0, datasync));
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        self.pin.pin_current();
        match self.fs.readdir(ino.0, offset, READDIR_BATCH) {
            Ok(entries) => {
                for e in &entries {
                    let name = OsStr::from_bytes(&e.name);
                    if reply.add(INodeNo(e.ino), e.next_offset, convert::file_type(e.kind), name) {
                        break; // The reply is full; the kernel asks again from this entry.
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.pin.pin_current();
        Self::reply_empty(reply, self.fs.fsync(ino.0, datasync));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.pin.pin_current();
        match self.fs.statfs() {
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
            Err(e) => reply.error(errno(&e)),
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
        self.pin.pin_current();
        if convert::is_posix_acl(bytes(name)) && !self.posix_acl {
            // Without FUSE_POSIX_ACL the kernel would pass an ACL through as a plain attribute
            // and leave the mode alone; cp -a and others then believe the permissions were
            // set. Refuse like a filesystem without ACLs, so they chmod.
            return reply.error(Errno::EOPNOTSUPP);
        }
        match convert::xattr_flags(flags) {
            Ok(f) if bytes(name) == pmfs::acl::ACCESS_XATTR => {
                Self::reply_empty(reply, self.set_access_acl(ino.0, value, f, caller(req)))
            }
            Ok(f) => Self::reply_empty(reply, self.fs.setxattr(ino.0, bytes(name), value, f)),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.pin.pin_current();
        match self.fs.getxattr(ino.0, bytes(name)) {
            Ok(value) => Self::reply_xattr(reply, &value, size),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.pin.pin_current();
        match self.fs.listxattr(ino.0) {
            Ok(names) => Self::reply_xattr(reply, &names, size),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.pin.pin_current();
        Self::reply_empty(reply, self.fs.removexattr(ino.0, bytes(name)));
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // With default_permissions the kernel checks permissions itself and does not send
        // ACCESS; should one come, existence is all there is to check.
        self.pin.pin_current();
        Self::reply_empty(reply, self.fs.getattr(ino.0).map(|_| ()));
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
        let _placed = self.place_for(req);
        self.pin.pin_current();
        let mode = libc::S_IFREG | (mode & 0o7777);
        let made = self.create_with_acls(parent.0, bytes(name), mode, umask, |mode| {
            self.fs.mknod(parent.0, bytes(name), mode, 0, caller(req))
        });
        let attr = match made {
            Ok(a) => a,
            Err(e) => return reply.error(errno(&e)),
        };
        // One reference for the entry (until FORGET), one for the file handle (until RELEASE).
        match self.fs.open(attr.ino).and_then(|()| self.fs.open(attr.ino)) {
            Ok(()) => reply.created(
                &self.ttl,
                &file_attr(&attr),
                generation(&attr),
                self.new_fh(flags),
                self.fopen_flags(),
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
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
        let _placed = self.place_for(req);
        self.pin.pin_current();
        match convert::falloc_mode(mode) {
            Ok(m) => Self::reply_empty(reply, self.fs.fallocate(ino.0, m, offset, length)),
            Err(e) => reply.error(e),
        }
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
        self.pin.pin_current();
        let r = match convert::seek(offset, whence) {
            Ok(Seek::Fs(start, w)) => self.fs.lseek(ino.0, start, w).map_err(|e| errno(&e)),
            Ok(Seek::Set(off)) => Ok(off),
            Ok(Seek::End(delta)) => match self.fs.getattr(ino.0) {
                Ok(a) => a.size.checked_add_signed(delta).ok_or(Errno::EINVAL),
                Err(e) => Err(errno(&e)),
            },
            Err(e) => Err(e),
        };
        match r.and_then(|off| i64::try_from(off).map_err(|_| Errno::EOVERFLOW)) {
            Ok(off) => reply.offset(off),
            Err(e) => reply.error(e),
        }
    }

    fn copy_file_range(
        &self,
        req: &Request,
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
        let _placed = self.place_for(req);
        // ENOSYS makes the kernel copy through read and write, and stop asking.
        reply.error(Errno::ENOSYS);
    }
}
