//! The raw edge of the ZUF transport: /dev/zuf, its ioctls and its mappings. The only unsafe
//! code of the transport is here; everything above works with checked copies and slices.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::sync::atomic::{compiler_fence, Ordering};

use super::abi::{ZufOpBuf, ZufPollCtl, ZUF_OP_BUF_SIZE, ZUF_POLL_CTL_OFF};

pub const DEVICE: &str = "/dev/zuf";

/// An open /dev/zuf.
pub struct ZufFile(File);

impl ZufFile {
    pub fn open() -> io::Result<ZufFile> {
        OpenOptions::new().read(true).write(true).open(DEVICE).map(ZufFile)
    }

    /// Issue `req` with `arg` as its in/out structure. `T` must be the ABI struct `req` names.
    pub fn ioctl<T>(&self, req: u64, arg: &mut T) -> io::Result<i32> {
        // SAFETY: `arg` is a live, exclusively borrowed ABI struct of the size encoded in `req`
        // (the ABI test checks those sizes); the kernel reads and writes only that struct.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), req as libc::c_ulong, arg as *mut T) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }

    /// Map `len` bytes of this file at `offset` (the channel's buffer or window).
    pub fn map(&self, offset: u64, len: usize) -> io::Result<Mapping> {
        map_fd(self.0.as_raw_fd(), offset, len)
    }
}

/// Take ownership of a file descriptor the kernel returned (PMEM_FD).
pub fn file_from_fd(fd: i32) -> io::Result<File> {
    if fd < 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("kernel returned fd {fd}")));
    }
    // SAFETY: the kernel just installed this descriptor in our table for us alone.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn map_fd(fd: i32, offset: u64, len: usize) -> io::Result<Mapping> {
    // SAFETY: a new shared mapping of a descriptor we hold; the kernel chooses the address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            offset as i64,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Mapping { ptr: p as *mut u8, len })
}

/// Anonymous memory standing in for a channel's buffer or window (tests of the dispatcher
/// without zuf.ko).
pub fn anonymous(len: usize) -> io::Result<Mapping> {
    // SAFETY: a new private anonymous mapping; the kernel chooses the address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Mapping { ptr: p as *mut u8, len })
}

/// A mapping of kernel memory: a channel's operation buffer or its application window.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: each mapping is used by the one thread that owns its channel.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Copy the operation the kernel placed in the buffer.
    ///
    /// One memcpy: a volatile read of the 1 KiB struct compiled to about 2,400 single-byte
    /// loads and stores, the largest part of zus's own time per call in the guest profile.
    /// Volatile is not needed: the kernel wrote the buffer before ZT_WAIT returned and writes
    /// it again only after our next ZT_WAIT, and the compiler cannot move these accesses
    /// across those system calls (the fences below say so explicitly).
    pub fn read_op(&self) -> ZufOpBuf {
        assert!(self.len >= ZUF_OP_BUF_SIZE && std::mem::size_of::<ZufOpBuf>() <= ZUF_OP_BUF_SIZE);
        compiler_fence(Ordering::SeqCst);
        // SAFETY: the buffer is at least ZUF_OP_BUF_SIZE bytes (checked above) and page
        // aligned; ZufOpBuf is plain old data, so any bytes are a valid value. The kernel does
        // not write while we serve (it waits for our reply).
        unsafe { std::ptr::read(self.ptr as *const ZufOpBuf) }
    }

    /// Write the reply back into the buffer.
    pub fn write_op(&self, op: &ZufOpBuf) {
        assert!(self.len >= std::mem::size_of::<ZufOpBuf>());
        // SAFETY: as in read_op; we own the buffer until the next ZT_WAIT.
        unsafe { std::ptr::write(self.ptr as *mut ZufOpBuf, *op) };
        compiler_fence(Ordering::SeqCst);
    }

    /// A polling channel's handshake words in the operation buffer.
    pub fn poll_ctl(&self) -> &ZufPollCtl {
        assert!(self.len >= ZUF_POLL_CTL_OFF + std::mem::size_of::<ZufPollCtl>());
        // SAFETY: in bounds (checked) and 64-byte aligned (a page-aligned mapping plus 8192);
        // the words are atomics because the kernel writes `posted` while we read it, and reads
        // `answered` while we write it. The mapping outlives the reference.
        unsafe { &*(self.ptr.add(ZUF_POLL_CTL_OFF) as *const ZufPollCtl) }
    }

    /// The bytes [off, off+len) of the mapping, or None if they are not inside it.
    pub fn slice(&mut self, off: u64, len: u64) -> Option<&mut [u8]> {
        let end = off.checked_add(len)?;
        if end > self.len as u64 {
            return None;
        }
        // SAFETY: in bounds (checked); for the window, the kernel mapped the application's
        // pages there for the duration of this operation and only this thread touches them.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.add(off as usize), len as usize) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what map_fd mapped; no slice outlives &mut self.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}
