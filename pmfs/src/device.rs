//! Opening the thing zpmfs lives on and mapping it: /dev/pmemN, /dev/daxN.M, a file on a DAX
//! filesystem (MAP_SYNC), or a plain file (DRAM-emulated on tmpfs/hugetlbfs, else msync'd).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::persist::{Backing, PmRegion};

const TMPFS_MAGIC: i64 = 0x0102_1994;
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// What kind of thing a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A block device (/dev/pmemN); mapped through the page cache from user space, so msync'd.
    BlockDevice,
    /// A device-DAX character device (/dev/daxN.M): direct loads and stores to PM.
    DaxChar,
    /// A regular file (an image).
    File,
}

/// An opened device or image, not yet mapped.
pub struct Device {
    path: PathBuf,
    file: File,
    kind: DeviceKind,
    size: u64,
    writable: bool,
}

impl Device {
    /// Open `path` for reading, and for writing when `writable`.
    pub fn open(path: &Path, writable: bool) -> Result<Device> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))?;
        let meta = file.metadata().map_err(|e| Error::Io(format!("cannot stat {}: {e}", path.display())))?;
        let ft = meta.file_type();
        let (kind, size) = if ft.is_file() {
            (DeviceKind::File, meta.len())
        } else if ft.is_block_device() {
            (DeviceKind::BlockDevice, block_device_size(&file, path)?)
        } else if ft.is_char_device() {
            (DeviceKind::DaxChar, dax_char_size(meta.rdev(), path)?)
        } else {
            return Err(Error::Io(format!(
                "{} is neither a block device, a DAX character device nor a regular file",
                path.display()
            )));
        };
        lock_exclusive(&file, writable, path)?;
        Ok(Device { path: path.to_path_buf(), file, kind, size, writable })
    }

    /// Give up the device, keeping the file (and its lock) open.
    pub fn into_file(self) -> File {
        self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Read the first `len` bytes (or fewer, for a small device) without mapping.
    pub fn read_head(&self, len: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = len.min(self.size as usize);
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, 0)
            .map_err(|e| Error::Io(format!("cannot read {}: {e}", self.path.display())))?;
        Ok(buf)
    }

    /// How stores to it become durable, from what the device is.
    pub fn backing(&self) -> Backing {
        match self.kind {
            DeviceKind::DaxChar => Backing::Pmem,
            DeviceKind::BlockDevice => Backing::PageCache,
            DeviceKind::File => file_backing(&self.file),
        }
    }

    /// Map the whole device.
    pub fn map(&self) -> Result<PmRegion> {
        PmRegion::map(&self.file, self.size, self.writable, self.backing(), &self.path)
    }
}

/// One writer at a time: a second mount or a mkfs of a mounted image must fail, not corrupt.
/// Read-only opens share the lock with each other but not with a writer.
fn lock_exclusive(file: &File, writable: bool, path: &Path) -> Result<()> {
    let how = if writable { libc::LOCK_EX } else { libc::LOCK_SH };
    // A server that was just unmounted may still be saving its state and letting go of the
    // device: give it a moment (umount returns before the FUSE server has exited).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        // SAFETY: flock on an fd we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        }
        return Err(Error::Io(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            format!(
                "{} is in use (mounted, or being formatted or checked by another process)",
                path.display()
            )
        } else {
            format!("cannot lock {}: {err}", path.display())
        }));
    }
}

/// Memory-backed files need no msync; other files do unless MAP_SYNC works (a DAX filesystem).
fn file_backing(file: &File) -> Backing {
    // SAFETY: fstatfs writes into the zeroed struct we own; the fd is open for the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    if rc == 0 {
        let t = st.f_type as i64;
        if t == TMPFS_MAGIC || t == HUGETLBFS_MAGIC || t == RAMFS_MAGIC {
            return Backing::Dram;
        }
    }
    Backing::FileMaybeDax
}

fn block_device_size(file: &File, path: &Path) -> Result<u64> {
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 into `size`, which outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if rc != 0 {
        return Err(Error::Io(format!(
            "cannot get the size of {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(size)
}

fn dax_char_size(rdev: u64, path: &Path) -> Result<u64> {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let sys = format!("/sys/dev/char/{major}:{minor}/size");
    let text = std::fs::read_to_string(&sys).map_err(|_| {
        Error::Io(format!("{} is a character device but not a DAX device (no {sys})", path.display()))
    })?;
    text.trim().parse().map_err(|_| Error::Io(format!("unreadable size in {sys}: {text:?}")))
}

thread_local! {
    static PLACEMENT_CPU: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Run `f` as if on `cpu`: allocation places data on that CPU's NUMA node. A transport whose
/// server thread is not on the caller's CPU (FUSE) passes the caller's CPU this way.
pub fn with_placement_cpu<R>(cpu: Option<usize>, f: impl FnOnce() -> R) -> R {
    let _placed = place_as(cpu);
    f()
}

/// Until the guard drops, this thread allocates as if on `cpu` (None: where it runs).
pub fn place_as(cpu: Option<usize>) -> PlacementGuard {
    PlacementGuard { before: PLACEMENT_CPU.with(|c| c.replace(cpu)) }
}

/// Restores the thread's placement CPU on drop.
pub struct PlacementGuard {
    before: Option<usize>,
}

impl Drop for PlacementGuard {
    fn drop(&mut self) {
        PLACEMENT_CPU.with(|c| c.set(self.before));
    }
}

/// The CPU task `tid` last ran on (/proc/TID/stat, field 39): for a task blocked in a system
/// call, the CPU it waits on.
pub fn task_cpu(tid: u32) -> Option<usize> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(39 - 3).and_then(|f| f.parse().ok())
}

/// The CPU this thread runs on (or stands in for), for choosing a stripe, an inode table and
/// a journal.
pub fn current_cpu() -> usize {
    if let Some(c) = PLACEMENT_CPU.with(|c| c.get()) {
        return c;
    }
    // SAFETY: sched_getcpu takes no arguments and only reads the current CPU number.
    let c = unsafe { libc::sched_getcpu() };
    if c < 0 {
        0
    } else {
        c as usize
    }
}

/// The coarse wall clock (CLOCK_REALTIME_COARSE: the last timer tick) as seconds and
/// nanoseconds, or None where the kernel has no such clock.
pub fn coarse_realtime() -> Option<(i64, u32)> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only the timespec we pass, which lives on our stack.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    (rc == 0 && (0..1_000_000_000).contains(&ts.tv_nsec)).then_some((ts.tv_sec, ts.tv_nsec as u32))
}

/// Fill `buf` from the kernel's random source; false if it could not.
pub fn random_bytes(buf: &mut [u8]) -> bool {
    // SAFETY: getrandom writes at most buf.len() bytes into our own buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
    n == buf.len() as isize
}
