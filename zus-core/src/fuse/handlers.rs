//! What each FUSE request does, apart from how it arrived and how it is answered: every
//! handler decodes nothing and replies nothing, it takes the request's values and returns a
//! typed result (an entry, attributes, a count, ...) or the errno to answer with. The /dev/fuse
//! channel (`ops`, through fuser) and the io_uring channel (`uring`) both call these, so the
//! two channels cannot drift apart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fuser::{Errno, INodeNo, Notifier};

use super::convert::{self, errno, Seek, XattrAnswer};
use super::fileattr;
use super::pin;
use crate::fs_api::{Attr, Caller, DirEntry, SetAttr, StatFs, ZusFs};

/// Directory entries asked of the filesystem per readdir request. The kernel asks for 32 KiB
/// of entries (about 1000 with short names); those that do not fit are asked again next time.
pub const READDIR_BATCH: usize = 512;

/// A file handle carries the O_APPEND bit of its open in its lowest bit.
const FH_APPEND: u64 = 1;

/// XFS_IOC_GOINGDOWN, which ext4 shares: _IOR('X', 125, __u32).
const IOC_GOINGDOWN: u32 = 0x8004_587d;

/// fuse_write_in.write_flags: a write from page writeback (mmap), not from write(2).
pub const WRITE_CACHE: u32 = 1 << 0;
/// fuse_write_in.write_flags: the writer is not the owner; drop setuid/setgid.
pub const WRITE_KILL_SUIDGID: u32 = 1 << 2;
/// fuse_open_out.open_flags: bypass the page cache.
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;

pub type OpResult<T> = Result<T, Errno>;

fn fs_err<T>(r: crate::fs_api::Result<T>) -> OpResult<T> {
    r.map_err(|e| {
        crate::fs_api::log_damage(&e);
        errno(&e)
    })
}

/// Where the request's caller runs, for NUMA placement of what the request allocates.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// Look the caller's CPU up (the /dev/fuse channel: any worker may read any request).
    Task(u32),
    /// The caller's CPU is known (the io_uring channel: a queue serves one CPU's callers).
    Cpu(usize),
}

/// An opened file or directory: the handle and the FOPEN_* flags to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    pub open_flags: u32,
}

/// The answer to getxattr/listxattr.
#[derive(Debug, PartialEq, Eq)]
pub enum XattrValue {
    /// The caller probed with size 0: the size it needs.
    Size(u32),
    /// The value (it fits the caller's buffer).
    Data(Vec<u8>),
}

/// The state the handlers share, whichever channel a request came through.
pub struct Handlers<F: ZusFs + 'static> {
    pub(super) fs: Arc<F>,
    /// How long the kernel may cache attributes and entries.
    ttl: Duration,
    /// Open files with FOPEN_DIRECT_IO (decided at INIT).
    direct_io: AtomicBool,
    /// The kernel sends the file's current flags with each write (ABI 7.9 and later).
    write_flags_reliable: AtomicBool,
    /// FUSE_POSIX_ACL negotiated: ACLs are enforced by the kernel, kept in step by zus.
    posix_acl: AtomicBool,
    next_fh: AtomicU64,
    pin: pin::Pinner,
    /// Tells the kernel to drop cached attributes that zus changed on its own (set once the
    /// session exists).
    pub(super) notifier: Arc<OnceLock<Notifier>>,
    /// The filesystem spans several NUMA nodes: allocations follow the caller's CPU, not the
    /// worker's (a /dev/fuse worker serves whoever's request it reads).
    numa_placement: bool,
}

/// What INIT decided, for the handlers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Negotiated {
    pub direct_io: bool,
    pub write_flags_reliable: bool,
    pub posix_acl: bool,
}

impl<F: ZusFs + 'static> Handlers<F> {
    pub fn new(fs: Arc<F>, ttl: Duration, cpus: Vec<usize>) -> Handlers<F> {
        let numa_placement = fs.node_stats().len() > 1;
        Handlers {
            fs,
            ttl,
            direct_io: AtomicBool::new(false),
            write_flags_reliable: AtomicBool::new(false),
            posix_acl: AtomicBool::new(false),
            next_fh: AtomicU64::new(1),
            pin: pin::Pinner::new(cpus),
            notifier: Arc::default(),
            numa_placement,
        }
    }

    /// Record what INIT negotiated (before any other request is served).
    pub fn set_negotiated(&self, n: Negotiated) {
        self.direct_io.store(n.direct_io, Ordering::Relaxed);
        self.write_flags_reliable.store(n.write_flags_reliable, Ordering::Relaxed);
        self.posix_acl.store(n.posix_acl, Ordering::Relaxed);
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(super) fn posix_acl(&self) -> bool {
        self.posix_acl.load(Ordering::Relaxed)
    }

    /// On a set spread over NUMA nodes: allocate, until the guard drops, on the node of the
    /// CPU the caller waits on.
    fn place(&self, origin: Origin) -> Option<pmfs::device::PlacementGuard> {
        self.numa_placement.then(|| match origin {
            Origin::Task(pid) => pmfs::device::place_as(pmfs::device::task_cpu(pid)),
            Origin::Cpu(cpu) => pmfs::device::place_as(Some(cpu)),
        })
    }

    /// Each entry the kernel is given is a reference it keeps until FORGET: hold the inode
    /// open for it, so that an unlinked inode, and its number, live on while the kernel (a
    /// path walk in progress, say) may still send requests for it, as zuf.ko's inodes do.
    fn entry(&self, r: crate::fs_api::Result<Attr>) -> OpResult<Attr> {
        fs_err(r.and_then(|attr| self.hold(&attr).map(|()| attr)))
    }

    /// Hold `attr`'s inode open for the kernel until FORGET. If it was freed, and its number
    /// perhaps reused, since `attr` was read, its name was gone at that moment: ENOENT is a
    /// true answer.
    fn hold(&self, attr: &Attr) -> crate::fs_api::Result<()> {
        self.fs.hold(attr.ino, attr.generation, 1)
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
            // The kernel changed nothing itself and keeps the old mode cached.
            self.invalidate_attributes(ino);
        }
        Ok(())
    }

    /// The kernel keeps an inode's attributes for the attribute timeout: after a change it
    /// did not make itself (and so did not note), tell it to ask again (offset -1:
    /// attributes only, no data).
    fn invalidate_attributes(&self, ino: u64) {
        if let Some(n) = self.notifier.get() {
            if let Err(e) = n.inval_inode(INodeNo(ino), -1, 0) {
                log::warn!("inode {ino}: cannot invalidate the kernel's attributes: {e}");
            }
        }
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

    fn new_fh(&self, flags: i32) -> u64 {
        let n = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let append = if flags & libc::O_APPEND != 0 { FH_APPEND } else { 0 };
        (n << 1) | append
    }

    fn fopen_flags(&self) -> u32 {
        if self.direct_io.load(Ordering::Relaxed) {
            FOPEN_DIRECT_IO
        } else {
            0
        }
    }

    fn xattr_value(value: Vec<u8>, size: u32) -> OpResult<XattrValue> {
        match convert::xattr_answer(value.len(), size) {
            XattrAnswer::Size(n) => Ok(XattrValue::Size(n)),
            XattrAnswer::Data => Ok(XattrValue::Data(value)),
            XattrAnswer::Range => Err(Errno::ERANGE),
        }
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> OpResult<Attr> {
        self.pin.pin_current();
        // "." arrives for any kind of inode when the kernel opens a file handle.
        let r = if name == b"." { self.fs.getattr(parent) } else { self.fs.lookup(parent, name) };
        self.entry(r)
    }

    pub fn forget(&self, ino: u64, nlookup: u64) {
        for _ in 0..nlookup {
            if self.fs.release(ino).is_err() {
                break;
            }
        }
    }

    pub fn getattr(&self, ino: u64) -> OpResult<Attr> {
        self.pin.pin_current();
        fs_err(self.fs.getattr(ino))
    }

    pub fn setattr(&self, ino: u64, set: &SetAttr) -> OpResult<Attr> {
        self.pin.pin_current();
        let r = self.fs.setattr(ino, set).and_then(|attr| match set.mode {
            Some(m) if self.posix_acl() => self.chmod_acl(ino, m).map(|()| attr),
            _ => Ok(attr),
        });
        fs_err(r)
    }

    pub fn readlink(&self, ino: u64) -> OpResult<Vec<u8>> {
        self.pin.pin_current();
        fs_err(self.fs.readlink(ino))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn mknod(
        &self,
        origin: Origin,
        caller: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> OpResult<Attr> {
        let _placed = self.place(origin);
        self.pin.pin_current();
        let r = self.create_with_acls(parent, name, mode, umask, |mode| {
            self.fs.mknod(parent, name, mode, rdev, caller)
        });
        self.entry(r)
    }

    pub fn mkdir(
        &self,
        origin: Origin,
        caller: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
    ) -> OpResult<Attr> {
        let _placed = self.place(origin);
        self.pin.pin_current();
        let mode = libc::S_IFDIR | (mode & 0o7777);
        let r = self.create_with_acls(parent, name, mode, umask, |mode| {
            self.fs.mkdir(parent, name, mode & 0o7777, caller)
        });
        self.entry(r)
    }

    pub fn unlink(&self, parent: u64, name: &[u8]) -> OpResult<()> {
        self.pin.pin_current();
        fs_err(self.fs.unlink(parent, name))
    }

    pub fn rmdir(&self, parent: u64, name: &[u8]) -> OpResult<()> {
        self.pin.pin_current();
        fs_err(self.fs.rmdir(parent, name))
    }

    pub fn symlink(
        &self,
        origin: Origin,
        caller: Caller,
        parent: u64,
        name: &[u8],
        target: &[u8],
    ) -> OpResult<Attr> {
        let _placed = self.place(origin);
        self.pin.pin_current();
        self.entry(self.fs.symlink(parent, name, target, caller))
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> OpResult<()> {
        self.pin.pin_current();
        let f = convert::rename_flags(flags)?;
        fs_err(self.fs.rename(parent, name, newparent, newname, f).map(|_| ()))
    }

    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> OpResult<Attr> {
        self.pin.pin_current();
        self.entry(self.fs.link(ino, newparent, newname))
    }

    pub fn open(&self, ino: u64, flags: i32) -> OpResult<Opened> {
        self.pin.pin_current();
        // The kernel knows nothing of chattr's flags over FUSE: immutable and append-only
        // files refuse opens that would write other than by appending.
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let attr = fs_err(self.fs.getattr(ino))?;
        fs_err(pmfs::iflags::check_open(
            attr.flags,
            write,
            flags & libc::O_APPEND != 0,
            flags & libc::O_TRUNC != 0,
        ))?;
        fs_err(self.fs.open(ino))?;
        Ok(Opened { fh: self.new_fh(flags), open_flags: self.fopen_flags() })
    }

    /// Read into `buf` (as many bytes as the request asked for); the count read.
    pub fn read(&self, ino: u64, offset: u64, buf: &mut [u8]) -> OpResult<usize> {
        self.pin.pin_current();
        let n = fs_err(self.fs.read(ino, offset, buf))?;
        Ok(n.min(buf.len()))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        origin: Origin,
        ino: u64,
        fh: u64,
        offset: u64,
        data: &[u8],
        write_flags: u32,
        open_flags: i32,
    ) -> OpResult<u32> {
        let _placed = self.place(origin);
        self.pin.pin_current();
        // Page writeback (mmap) writes pages where they are, never at the end of file. Else
        // the file's current flags (sent since ABI 7.9, and changed by fcntl F_SETFL) say
        // whether it appends; older kernels send none, so the flags of the open decide.
        let from_cache = write_flags & WRITE_CACHE != 0;
        let append = !from_cache
            && if self.write_flags_reliable.load(Ordering::Relaxed) {
                open_flags & libc::O_APPEND != 0
            } else {
                fh & FH_APPEND != 0
            };
        // A write by someone other than the owner (the kernel tells us so) drops setuid, and
        // setgid where group execute is set, as every local filesystem does; before the data
        // lands, so no moment has new data under the old privileges.
        if write_flags & WRITE_KILL_SUIDGID != 0 {
            fs_err(self.kill_suidgid(ino))?;
        }
        // Page writeback (from mmap) keeps them, as on a local filesystem.
        if !from_cache {
            fs_err(self.kill_caps(ino))?;
        }
        let (n, _at) = fs_err(self.fs.write(ino, offset, data, append))?;
        u32::try_from(n).map_err(|_| Errno::EIO)
    }

    pub fn opendir(&self, ino: u64) -> OpResult<Opened> {
        self.pin.pin_current();
        // An open directory handle keeps a removed directory alive until releasedir, as a file.
        fs_err(self.fs.open(ino))?;
        Ok(Opened { fh: 0, open_flags: 0 })
    }

    /// RELEASE and RELEASEDIR: drop the reference the open took.
    pub fn release(&self, ino: u64) -> OpResult<()> {
        self.pin.pin_current();
        fs_err(self.fs.release(ino))
    }

    /// FSYNC and FSYNCDIR.
    pub fn fsync(&self, ino: u64, datasync: bool) -> OpResult<()> {
        self.pin.pin_current();
        fs_err(self.fs.fsync(ino, datasync))
    }

    /// The entries after `offset`; the channel packs as many as fit its reply.
    pub fn readdir(&self, ino: u64, offset: u64) -> OpResult<Vec<DirEntry>> {
        self.pin.pin_current();
        fs_err(self.fs.readdir(ino, offset, READDIR_BATCH))
    }

    pub fn statfs(&self) -> OpResult<StatFs> {
        self.pin.pin_current();
        fs_err(self.fs.statfs())
    }

    pub fn setxattr(&self, caller: Caller, ino: u64, name: &[u8], value: &[u8], flags: i32) -> OpResult<()> {
        self.pin.pin_current();
        if convert::is_posix_acl(name) && !self.posix_acl() {
            // Without FUSE_POSIX_ACL the kernel would pass an ACL through as a plain attribute
            // and leave the mode alone; cp -a and others then believe the permissions were
            // set. Refuse like a filesystem without ACLs, so they chmod.
            return Err(Errno::EOPNOTSUPP);
        }
        let f = convert::xattr_flags(flags)?;
        if name == pmfs::acl::ACCESS_XATTR {
            fs_err(self.set_access_acl(ino, value, f, caller))
        } else {
            fs_err(self.fs.setxattr(ino, name, value, f))
        }
    }

    pub fn getxattr(&self, ino: u64, name: &[u8], size: u32) -> OpResult<XattrValue> {
        self.pin.pin_current();
        Self::xattr_value(fs_err(self.fs.getxattr(ino, name))?, size)
    }

    pub fn listxattr(&self, ino: u64, size: u32) -> OpResult<XattrValue> {
        self.pin.pin_current();
        Self::xattr_value(fs_err(self.fs.listxattr(ino))?, size)
    }

    pub fn removexattr(&self, ino: u64, name: &[u8]) -> OpResult<()> {
        self.pin.pin_current();
        fs_err(self.fs.removexattr(ino, name))
    }

    pub fn access(&self, ino: u64) -> OpResult<()> {
        // With default_permissions the kernel checks permissions itself and does not send
        // ACCESS; should one come, existence is all there is to check.
        self.pin.pin_current();
        fs_err(self.fs.getattr(ino).map(|_| ()))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        origin: Origin,
        caller: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> OpResult<(Attr, Opened)> {
        let _placed = self.place(origin);
        self.pin.pin_current();
        let mode = libc::S_IFREG | (mode & 0o7777);
        let attr = fs_err(self.create_with_acls(parent, name, mode, umask, |mode| {
            self.fs.mknod(parent, name, mode, 0, caller)
        }))?;
        // One reference for the entry (until FORGET), one for the file handle (until RELEASE).
        fs_err(self.fs.hold(attr.ino, attr.generation, 2))?;
        Ok((attr, Opened { fh: self.new_fh(flags), open_flags: self.fopen_flags() }))
    }

    /// O_TMPFILE (FUSE_TMPFILE, which only the io_uring channel decodes: fuser answers ENOSYS,
    /// and the kernel then says EOPNOTSUPP for the mount): a regular file no directory names,
    /// held as a create's is, so the last release frees it unless a LINK named it.
    pub fn tmpfile(
        &self,
        origin: Origin,
        caller: Caller,
        parent: u64,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> OpResult<(Attr, Opened)> {
        let _placed = self.place(origin);
        self.pin.pin_current();
        let c = fs_err(self.creation(parent, libc::S_IFREG | (mode & 0o7777), umask, false))?;
        let mut attr = fs_err(self.fs.tmpfile(parent, c.mode, caller))?;
        // One reference for the entry (until FORGET), one for the file handle (until RELEASE).
        fs_err(self.fs.hold(attr.ino, attr.generation, 2))?;
        if !c.xattrs.is_empty() {
            match self.finish_creation(attr.ino, &c).and_then(|()| self.fs.getattr(attr.ino)) {
                Ok(a) => attr = a, // setting the ACL changed ctime
                Err(e) => {
                    // Nobody will hold it: giving both references back frees it.
                    let _ = self.fs.release(attr.ino);
                    let _ = self.fs.release(attr.ino);
                    return Err(errno(&e));
                }
            }
        }
        Ok((attr, Opened { fh: self.new_fh(flags), open_flags: self.fopen_flags() }))
    }

    pub fn fallocate(&self, origin: Origin, ino: u64, offset: u64, length: u64, mode: i32) -> OpResult<()> {
        let _placed = self.place(origin);
        self.pin.pin_current();
        let m = convert::falloc_mode(mode)?;
        fs_err(self.fs.fallocate(ino, m, offset, length))
    }

    pub fn lseek(&self, ino: u64, offset: i64, whence: i32) -> OpResult<i64> {
        self.pin.pin_current();
        let off = match convert::seek(offset, whence)? {
            Seek::Fs(start, w) => fs_err(self.fs.lseek(ino, start, w))?,
            Seek::Set(off) => off,
            Seek::End(delta) => {
                fs_err(self.fs.getattr(ino))?.size.checked_add_signed(delta).ok_or(Errno::EINVAL)?
            }
        };
        i64::try_from(off).map_err(|_| Errno::EOVERFLOW)
    }

    /// Every write is durable when it returns: nothing to flush.
    pub fn flush(&self) -> OpResult<()> {
        Ok(())
    }

    /// The ioctls zpmfs answers; the bytes to reply with (at most `out_size`). The shutdown
    /// ioctl XFS and ext4 share (_IOR('X', 125, u32), fstests' godown), for root: every later
    /// call fails with EIO until unmount (its flag needs no work: every call was durable
    /// when it returned). chattr's flags, plain and as fsxattr. Other ioctls: ENOTTY.
    pub fn ioctl(
        &self,
        caller: Caller,
        ino: u64,
        cmd: u32,
        input: &[u8],
        out_size: u32,
    ) -> OpResult<Vec<u8>> {
        let out: Vec<u8> = match cmd {
            IOC_GOINGDOWN => {
                if caller.uid != 0 {
                    return Err(Errno::EPERM);
                }
                log::warn!("shut down by ioctl: every call fails with EIO until unmount");
                self.fs.shutdown();
                Vec::new()
            }
            c if fileattr::GETFLAGS.contains(&c) => {
                fs_err(self.fs.getattr(ino))?.flags.to_le_bytes().to_vec()
            }
            c if fileattr::SETFLAGS.contains(&c) => {
                let word = input.get(..4).ok_or(Errno::EINVAL)?;
                let flags = u32::from_le_bytes(word.try_into().expect("4 bytes"));
                fs_err(self.fs.set_flags(ino, flags, caller))?;
                self.invalidate_attributes(ino); // ctime moved
                Vec::new()
            }
            fileattr::FSGETXATTR => fileattr::fsxattr_of(fs_err(self.fs.getattr(ino))?.flags).to_vec(),
            fileattr::FSSETXATTR => {
                let old = fs_err(self.fs.getattr(ino))?.flags;
                fs_err(self.fs.set_flags(ino, fileattr::flags_of_fsxattr(input, old)?, caller))?;
                self.invalidate_attributes(ino);
                Vec::new()
            }
            _ => return Err(Errno::ENOTTY),
        };
        if out.len() > out_size as usize {
            return Err(Errno::EINVAL);
        }
        Ok(out)
    }

    /// ENOSYS makes the kernel copy through read and write, and stop asking.
    pub fn copy_file_range(&self) -> OpResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Unmount the filesystem (the session's end).
    pub fn unmount(&self) -> crate::fs_api::Result<()> {
        self.fs.unmount()
    }
}
