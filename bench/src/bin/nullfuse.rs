//! nullfuse: the FUSE transport floor. A filesystem that keeps its names and sizes in one
//! DRAM map and stores no data (reads return zeros, writes are answered at once), mounted and
//! served the way zus serves zpmfs: the same mount(2) data (zus-core's `fuse::mount`:
//! default_permissions, nosuid, nodev), the same fuser session settings (one cloned /dev/fuse
//! descriptor and worker per CPU, pinned as zus pins them), the same INIT capabilities
//! (FUSE_DIRECT_IO_ALLOW_MMAP so files open with FOPEN_DIRECT_IO, FUSE_PARALLEL_DIROPS, no
//! writeback cache) and the same 1 s attribute TTL. What zpmfs over FUSE costs beyond this
//! program is zpmfs (and its glue), not the transport.
//!
//! usage: nullfuse MOUNTPOINT      (stays in the foreground; `umount MOUNTPOINT` stops it)

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, Session, SessionACL, WriteFlags,
};
use std::sync::Mutex;
use zus_core::fuse::{mount, pin};
use zus_core::options::MountOpts;

const ROOT: u64 = 1;
const TTL: Duration = Duration::from_millis(1000);
/// Reads are answered from this (no data is kept); FUSE asks at most 1 MiB at a time.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

struct Node {
    kind: FileType,
    size: u64,
    perm: u16,
    parent: u64,
    children: HashMap<Vec<u8>, u64>,
}

struct NullFs {
    nodes: Mutex<HashMap<u64, Node>>,
    next_ino: AtomicU64,
    direct_io: bool,
    pin: pin::Pinner,
}

fn attr(ino: u64, n: &Node) -> FileAttr {
    let now = SystemTime::now();
    FileAttr {
        ino: INodeNo(ino),
        size: n.size,
        blocks: n.size.div_ceil(512),
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind: n.kind,
        perm: n.perm,
        nlink: if n.kind == FileType::Directory { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl NullFs {
    fn new() -> NullFs {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node { kind: FileType::Directory, size: 0, perm: 0o755, parent: ROOT, children: HashMap::new() },
        );
        NullFs {
            nodes: Mutex::new(nodes),
            next_ino: AtomicU64::new(ROOT + 1),
            direct_io: false,
            pin: pin::Pinner::new(pin::allowed_cpus()),
        }
    }

    fn make(&self, parent: INodeNo, name: &OsStr, kind: FileType, perm: u32) -> Result<FileAttr, Errno> {
        let mut nodes = self.nodes.lock().map_err(|_| Errno::EIO)?;
        let p = nodes.get_mut(&parent.0).ok_or(Errno::ENOENT)?;
        if p.children.contains_key(name.as_bytes()) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        p.children.insert(name.as_bytes().to_vec(), ino);
        let n =
            Node { kind, size: 0, perm: (perm & 0o7777) as u16, parent: parent.0, children: HashMap::new() };
        let a = attr(ino, &n);
        nodes.insert(ino, n);
        Ok(a)
    }

    fn remove(&self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let mut nodes = self.nodes.lock().map_err(|_| Errno::EIO)?;
        let ino = *nodes.get(&parent.0).and_then(|p| p.children.get(name.as_bytes())).ok_or(Errno::ENOENT)?;
        let n = nodes.get(&ino).ok_or(Errno::ENOENT)?;
        if dir && !n.children.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        nodes.remove(&ino);
        if let Some(p) = nodes.get_mut(&parent.0) {
            p.children.remove(name.as_bytes());
        }
        Ok(())
    }

    fn fopen(&self) -> FopenFlags {
        if self.direct_io {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }
}

impl Filesystem for NullFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // As zus-core/src/fuse/ops.rs: direct I/O where mmap stays allowed, parallel dirops.
        self.direct_io = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP).is_ok();
        if config.capabilities().contains(InitFlags::FUSE_PARALLEL_DIROPS) {
            let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.pin.pin_current();
        let Ok(nodes) = self.nodes.lock() else { return reply.error(Errno::EIO) };
        match nodes.get(&parent.0).and_then(|p| p.children.get(name.as_bytes())) {
            Some(&ino) => reply.entry(&TTL, &attr(ino, &nodes[&ino]), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.pin.pin_current();
        let Ok(nodes) = self.nodes.lock() else { return reply.error(Errno::EIO) };
        match nodes.get(&ino.0) {
            Some(n) => reply.attr(&TTL, &attr(ino.0, n)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.pin.pin_current();
        let Ok(mut nodes) = self.nodes.lock() else { return reply.error(Errno::EIO) };
        match nodes.get_mut(&ino.0) {
            Some(n) => {
                if let Some(s) = size {
                    n.size = s;
                }
                if let Some(m) = mode {
                    n.perm = (m & 0o7777) as u16;
                }
                reply.attr(&TTL, &attr(ino.0, n))
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        self.pin.pin_current();
        match self.make(parent, name, FileType::RegularFile, mode) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.pin.pin_current();
        match self.make(parent, name, FileType::Directory, mode) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.pin.pin_current();
        match self.remove(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.pin.pin_current();
        match self.remove(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.pin.pin_current();
        let Ok(mut nodes) = self.nodes.lock() else { return reply.error(Errno::EIO) };
        let Some(ino) = nodes.get_mut(&parent.0).and_then(|p| p.children.remove(name.as_bytes())) else {
            return reply.error(Errno::ENOENT);
        };
        let old =
            nodes.get_mut(&newparent.0).and_then(|p| p.children.insert(newname.as_bytes().to_vec(), ino));
        if let Some(old) = old {
            nodes.remove(&old);
        }
        if let Some(n) = nodes.get_mut(&ino) {
            n.parent = newparent.0;
        }
        reply.ok()
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.pin.pin_current();
        reply.opened(FileHandle(0), self.fopen())
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
        let file_size = self.nodes.lock().ok().and_then(|n| n.get(&ino.0).map(|n| n.size)).unwrap_or(0);
        let n = file_size.saturating_sub(offset).min(u64::from(size)).min(ZEROS.len() as u64) as usize;
        reply.data(&ZEROS[..n])
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.pin.pin_current();
        let end = offset + data.len() as u64;
        if let Ok(mut nodes) = self.nodes.lock() {
            if let Some(n) = nodes.get_mut(&ino.0) {
                n.size = n.size.max(end);
            }
        }
        reply.written(data.len() as u32)
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _owner: LockOwner, reply: ReplyEmpty) {
        reply.ok()
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.pin.pin_current();
        reply.ok()
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.pin.pin_current();
        reply.ok()
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty())
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        self.pin.pin_current();
        let Ok(nodes) = self.nodes.lock() else { return reply.error(Errno::EIO) };
        let Some(d) = nodes.get(&ino.0) else { return reply.error(Errno::ENOENT) };
        let mut names: Vec<(&Vec<u8>, &u64)> = d.children.iter().collect();
        names.sort();
        for (i, (name, &child)) in names.iter().enumerate().skip(offset as usize) {
            let kind = nodes.get(&child).map(|n| n.kind).unwrap_or(FileType::RegularFile);
            if reply.add(INodeNo(child), (i + 1) as u64, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok()
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 30, 1 << 30, 1 << 30, 1 << 20, 1 << 20, 4096, 255, 4096)
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.pin.pin_current();
        match self.make(parent, name, FileType::RegularFile, mode) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), self.fopen()),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.pin.pin_current();
        if mode & libc::FALLOC_FL_KEEP_SIZE == 0 {
            if let Ok(mut nodes) = self.nodes.lock() {
                if let Some(n) = nodes.get_mut(&ino.0) {
                    n.size = n.size.max(offset + length);
                }
            }
        }
        reply.ok()
    }
}

fn main() {
    let Some(mnt) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: nullfuse MOUNTPOINT");
        std::process::exit(2);
    };
    let mnt = match mount::check_mountpoint(&mnt) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("nullfuse: {e}");
            std::process::exit(1);
        }
    };
    let opts = MountOpts { subtype: false, fsname: Some("nullfuse".into()), ..MountOpts::default() };
    let (fd, fuse_mount) = match mount::mount(&mnt, OsStr::new("nullfuse"), &opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("nullfuse: {e}");
            std::process::exit(1);
        }
    };
    let cpus = pin::allowed_cpus();
    let mut config = fuser::Config::default();
    config.n_threads = Some(pin::worker_count(0, &cpus));
    config.clone_fd = true;
    config.acl = SessionACL::Owner;
    let session = match Session::from_fd(NullFs::new(), fd, SessionACL::Owner, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nullfuse: session: {e}");
            let _ = fuse_mount.unmount();
            std::process::exit(1);
        }
    };
    println!("nullfuse: mounted on {}", mnt.display());
    if let Err(e) = session.run() {
        eprintln!("nullfuse: {e}");
        let _ = fuse_mount.unmount();
        std::process::exit(1);
    }
}
