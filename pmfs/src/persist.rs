//! The persistence module: the one place that stores to PM, flushes cache lines and fences.
//!
//! A [`PmRegion`] is the checked view of a mapped device: every access is bounds-checked
//! against the mapping, and a store becomes durable only after `flush` + `fence` (or
//! `write_nt` + `fence`). Which flush instruction runs is chosen once per region (clwb, else
//! clflushopt, else clflush, from CPUID). When the backing is not memory (a page-cached block
//! device or a file on a non-DAX filesystem), `fence` also msyncs the pages this thread flushed.
//! Every persistent store in zpmfs goes through the methods below, so a recording mode for
//! crash testing can be added here without touching any caller.

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// Cache line size of every x86-64 CPU zpmfs runs on.
pub const CACHE_LINE: u64 = 64;
const PAGE: u64 = 4096;

/// What stands behind a mapping, which decides how stores become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Real PM mapped directly (device DAX, or a DAX file mapped with MAP_SYNC).
    Pmem,
    /// DRAM standing in for PM (a file on tmpfs or hugetlbfs): flush + fence as for PM.
    Dram,
    /// Page cache: fence must msync what was flushed.
    PageCache,
    /// A file whose filesystem may support MAP_SYNC; resolved to Pmem or PageCache at map time.
    FileMaybeDax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlushKind {
    Clwb,
    Clflushopt,
    Clflush,
}

fn detect_flush() -> FlushKind {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID leaf 7 is valid to query once leaf 0 reports max leaf >= 7.
        let max_leaf = std::arch::x86_64::__cpuid(0).eax;
        if max_leaf >= 7 {
            let ebx = std::arch::x86_64::__cpuid_count(7, 0).ebx;
            if ebx & (1 << 24) != 0 {
                return FlushKind::Clwb;
            }
            if ebx & (1 << 23) != 0 {
                return FlushKind::Clflushopt;
            }
        }
    }
    FlushKind::Clflush
}

thread_local! {
    /// Page ranges (region base, start, end) this thread flushed on a page-cache backing and
    /// that its next fence must msync.
    static DIRTY: RefCell<Vec<(usize, u64, u64)>> = const { RefCell::new(Vec::new()) };
}

/// A mapped device: raw memory, accessed only through bounds-checked methods.
pub struct PmRegion {
    base: *mut u8,
    len: u64,
    writable: bool,
    backing: Backing,
    flush_kind: FlushKind,
    /// Crash testing: every store, flush and fence is also logged here.
    recorder: Option<Arc<Recorder>>,
}

/// One persistence event, as the crash simulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmEvent {
    /// Ordinary (cached) store: durable once its lines are flushed and a fence follows.
    Store {
        off: u64,
        data: Vec<u8>,
    },
    /// Non-temporal store: durable once a fence follows.
    NtStore {
        off: u64,
        data: Vec<u8>,
    },
    /// Cache lines written back (no ordering until the next fence).
    Flush {
        off: u64,
        len: u64,
    },
    Fence,
    /// A workload marker (operation begin or end), from [`Recorder::mark`].
    Mark(u64),
}

/// Collects [`PmEvent`]s for the crash simulator (recording mode of the persistence module).
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<PmEvent>>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }
    fn push(&self, e: PmEvent) {
        self.events.lock().push(e);
    }
    /// Put a workload marker between events.
    pub fn mark(&self, m: u64) {
        self.push(PmEvent::Mark(m));
    }
    /// Events recorded so far.
    pub fn len(&self) -> usize {
        self.events.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Take everything recorded so far.
    pub fn take(&self) -> Vec<PmEvent> {
        std::mem::take(&mut *self.events.lock())
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recorder({} events)", self.len())
    }
}

// SAFETY: the mapping is shared memory that lives until Drop; all access goes through methods
// that copy bytes or use atomics, and the filesystem's locks order conflicting writers.
unsafe impl Send for PmRegion {}
unsafe impl Sync for PmRegion {}

impl PmRegion {
    /// Map `len` bytes of `file`. For [`Backing::FileMaybeDax`], tries MAP_SYNC first.
    pub fn map(file: &File, len: u64, writable: bool, backing: Backing, path: &Path) -> Result<PmRegion> {
        if len == 0 {
            return Err(Error::Io(format!("{} is empty", path.display())));
        }
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        let fd = file.as_raw_fd();
        let mut backing = backing;
        let mut base = libc::MAP_FAILED;
        if backing == Backing::FileMaybeDax {
            if writable {
                // SAFETY: a fresh mapping of an fd we hold open; the kernel picks the address.
                base = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len as usize,
                        prot,
                        libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
                        fd,
                        0,
                    )
                };
            }
            backing = if base == libc::MAP_FAILED { Backing::PageCache } else { Backing::Pmem };
        }
        if base == libc::MAP_FAILED {
            // SAFETY: as above.
            base = unsafe { libc::mmap(std::ptr::null_mut(), len as usize, prot, libc::MAP_SHARED, fd, 0) };
        }
        if base == libc::MAP_FAILED {
            return Err(Error::Io(format!(
                "cannot map {} ({} bytes): {}",
                path.display(),
                len,
                std::io::Error::last_os_error()
            )));
        }
        Ok(PmRegion {
            base: base as *mut u8,
            len,
            writable,
            backing,
            flush_kind: detect_flush(),
            recorder: None,
        })
    }

    /// Map the members of a device set one after another into one contiguous range, so that
    /// set block numbers are offsets as on a single device. Each length must be a multiple of
    /// the page size. The region's backing is the weakest of the members' (msync if any needs it).
    pub fn map_parts(parts: &[(&File, u64, Backing, &Path)], writable: bool) -> Result<PmRegion> {
        let total = parts.iter().map(|p| p.1).sum::<u64>();
        if parts.is_empty() || total == 0 || parts.iter().any(|p| p.1 == 0 || p.1 % PAGE != 0) {
            return Err(Error::Io("a device set's members must be non-empty whole pages".into()));
        }
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: an anonymous reservation the kernel places; no file, nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::Io(format!(
                "cannot reserve {total} bytes of address space: {}",
                std::io::Error::last_os_error()
            )));
        }
        let mut weakest = Backing::Pmem;
        let mut off = 0u64;
        for &(file, len, backing, path) in parts {
            // SAFETY: [base+off, base+off+len) lies inside the reservation made above, which
            // only this function knows of; MAP_FIXED replaces that part of it.
            let at = unsafe { (base as *mut u8).add(off as usize) } as *mut libc::c_void;
            let fd = file.as_raw_fd();
            let fixed = libc::MAP_SHARED | libc::MAP_FIXED;
            let mut got = libc::MAP_FAILED;
            let mut this = backing;
            if backing == Backing::FileMaybeDax {
                if writable {
                    // SAFETY: as above.
                    got = unsafe {
                        libc::mmap(
                            at,
                            len as usize,
                            prot,
                            libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC | libc::MAP_FIXED,
                            fd,
                            0,
                        )
                    };
                }
                this = if got == libc::MAP_FAILED { Backing::PageCache } else { Backing::Pmem };
            }
            if got == libc::MAP_FAILED {
                // SAFETY: as above.
                got = unsafe { libc::mmap(at, len as usize, prot, fixed, fd, 0) };
            }
            if got == libc::MAP_FAILED {
                let err = std::io::Error::last_os_error();
                // SAFETY: the whole reservation (and what was mapped into it) is ours to drop.
                unsafe { libc::munmap(base, total as usize) };
                return Err(Error::Io(format!("cannot map {} ({len} bytes): {err}", path.display())));
            }
            weakest = match (weakest, this) {
                (Backing::PageCache, _) | (_, Backing::PageCache) => Backing::PageCache,
                (Backing::Dram, _) | (_, Backing::Dram) => Backing::Dram,
                _ => Backing::Pmem,
            };
            off += len;
        }
        Ok(PmRegion {
            base: base as *mut u8,
            len: total,
            writable,
            backing: weakest,
            flush_kind: detect_flush(),
            recorder: None,
        })
    }

    /// Record every later store, flush and fence into `recorder` (crash testing).
    pub fn set_recorder(&mut self, recorder: Option<Arc<Recorder>>) {
        self.recorder = recorder;
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn backing(&self) -> Backing {
        self.backing
    }
    pub fn writable(&self) -> bool {
        self.writable
    }

    fn check(&self, off: u64, len: u64) -> Result<()> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::Corrupt(format!(
                "access of {len} bytes at offset {off} is outside the device ({} bytes)",
                self.len
            ))),
        }
    }

    fn check_write(&self, off: u64, len: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        self.check(off, len)
    }

    /// Copy bytes from PM into `buf`.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        self.check(off, buf.len() as u64)?;
        // SAFETY: bounds checked above; `buf` is a distinct DRAM buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(off as usize), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Read an aligned 8-byte word atomically (a commit word: tail, valid flag, journal count).
    pub fn read_u64(&self, off: u64) -> Result<u64> {
        self.check(off, 8)?;
        if off % 8 != 0 {
            return Err(Error::Corrupt(format!("unaligned commit word at offset {off}")));
        }
        // SAFETY: in bounds and 8-byte aligned (mmap returns page-aligned memory).
        let word = unsafe { &*(self.base.add(off as usize) as *const AtomicU64) };
        Ok(u64::from_le(word.load(Ordering::Acquire)))
    }

    /// Store bytes with ordinary (cached) stores; durable only after `flush` + `fence`.
    pub fn write(&self, off: u64, data: &[u8]) -> Result<()> {
        self.check_write(off, data.len() as u64)?;
        // SAFETY: bounds checked; the source is a DRAM buffer that cannot overlap the mapping
        // unless it was read from it, in which case copy_nonoverlapping's rule still holds
        // because callers never pass a slice of the mapping itself.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(off as usize), data.len()) };
        if let Some(r) = &self.recorder {
            r.push(PmEvent::Store { off, data: data.to_vec() });
        }
        Ok(())
    }

    /// Store an aligned 8-byte word atomically (the commit stores). Durable after flush + fence.
    pub fn store_u64(&self, off: u64, value: u64) -> Result<()> {
        self.check_write(off, 8)?;
        if off % 8 != 0 {
            return Err(Error::Corrupt(format!("unaligned commit word at offset {off}")));
        }
        // SAFETY: in bounds and 8-byte aligned.
        let word = unsafe { &*(self.base.add(off as usize) as *const AtomicU64) };
        word.store(value.to_le(), Ordering::Release);
        if let Some(r) = &self.recorder {
            r.push(PmEvent::Store { off, data: value.to_le_bytes().to_vec() });
        }
        Ok(())
    }

    /// Store bytes with non-temporal stores where aligned (block copies); durable after `fence`.
    pub fn write_nt(&self, off: u64, data: &[u8]) -> Result<()> {
        self.check_write(off, data.len() as u64)?;
        let len = data.len() as u64;
        // The 16-byte aligned middle goes around the cache; the ragged edges are ordinary
        // stores that we flush here, so the caller owes only a fence either way.
        let head = ((16 - off % 16) % 16).min(len);
        let body = (len - head) / 16 * 16;
        if head > 0 {
            self.write(off, &data[..head as usize])?;
            self.flush(off, head);
        }
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
            let mut i = 0u64;
            while i < body {
                // SAFETY: destination off+head+i is 16-byte aligned and within the checked
                // range; the source is read unaligned from the caller's slice, in bounds.
                unsafe {
                    let src = data.as_ptr().add((head + i) as usize) as *const __m128i;
                    let dst = self.base.add((off + head + i) as usize) as *mut __m128i;
                    _mm_stream_si128(dst, _mm_loadu_si128(src));
                }
                i += 16;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.write(off + head, &data[head as usize..(head + body) as usize])?;
            self.flush(off + head, body);
        }
        if self.backing == Backing::PageCache && body > 0 {
            self.note_dirty(off + head, body);
        }
        if let (Some(r), true) = (&self.recorder, body > 0) {
            r.push(PmEvent::NtStore {
                off: off + head,
                data: data[head as usize..(head + body) as usize].to_vec(),
            });
        }
        let tail = len - head - body;
        if tail > 0 {
            self.write(off + head + body, &data[(head + body) as usize..])?;
            self.flush(off + head + body, tail);
        }
        Ok(())
    }

    /// Zero a range with non-temporal stores; durable after `fence`.
    pub fn zero_nt(&self, off: u64, len: u64) -> Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        self.check_write(off, len)?;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(4096);
            self.write_nt(off + done, &ZEROS[..n as usize])?;
            done += n;
        }
        Ok(())
    }

    /// Copy `len` bytes within PM (copy-on-write of a partial block), non-temporally.
    pub fn copy_within_nt(&self, from: u64, to: u64, len: u64) -> Result<()> {
        let mut buf = [0u8; 4096];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(4096) as usize;
            self.read(from + done, &mut buf[..n])?;
            self.write_nt(to + done, &buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }

    /// Write back the cache lines of a range (no ordering until `fence`).
    pub fn flush(&self, off: u64, len: u64) {
        if len == 0 || self.check(off, len).is_err() {
            return;
        }
        let start = off & !(CACHE_LINE - 1);
        let end = off + len;
        #[cfg(target_arch = "x86_64")]
        {
            let mut line = start;
            // SAFETY (all three loops): each address is inside the mapping (checked range,
            // rounded down to its cache line, which lies in the same page); the flush
            // instructions only write back cache lines and never fault on mapped memory.
            match self.flush_kind {
                FlushKind::Clwb => {
                    while line < end {
                        unsafe {
                            std::arch::asm!("clwb [{}]", in(reg) self.base.add(line as usize), options(nostack))
                        };
                        line += CACHE_LINE;
                    }
                }
                FlushKind::Clflushopt => {
                    while line < end {
                        unsafe {
                            std::arch::asm!("clflushopt [{}]", in(reg) self.base.add(line as usize), options(nostack))
                        };
                        line += CACHE_LINE;
                    }
                }
                FlushKind::Clflush => {
                    while line < end {
                        unsafe { std::arch::x86_64::_mm_clflush(self.base.add(line as usize)) };
                        line += CACHE_LINE;
                    }
                }
            }
        }
        if self.backing == Backing::PageCache {
            self.note_dirty(off, len);
        }
        if let Some(r) = &self.recorder {
            r.push(PmEvent::Flush { off, len });
        }
    }

    fn note_dirty(&self, off: u64, len: u64) {
        let start = off & !(PAGE - 1);
        let end = (off + len).div_ceil(PAGE) * PAGE;
        let end = end.min(self.len.div_ceil(PAGE) * PAGE);
        DIRTY.with(|d| d.borrow_mut().push((self.base as usize, start, end)));
    }

    /// Order every earlier flush and non-temporal store before any later store (sfence);
    /// on a page-cache backing, msync what this thread flushed.
    pub fn fence(&self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: sfence has no operands and no memory-safety preconditions.
        unsafe {
            std::arch::x86_64::_mm_sfence()
        };
        if let Some(r) = &self.recorder {
            r.push(PmEvent::Fence);
        }
        if self.backing == Backing::PageCache {
            let ranges: Vec<(u64, u64)> = DIRTY.with(|d| {
                let mut d = d.borrow_mut();
                let mine: Vec<_> =
                    d.iter().filter(|r| r.0 == self.base as usize).map(|r| (r.1, r.2)).collect();
                d.retain(|r| r.0 != self.base as usize);
                mine
            });
            for (start, end) in coalesce(ranges) {
                // SAFETY: page-aligned range inside our own mapping.
                unsafe {
                    libc::msync(
                        self.base.add(start as usize) as *mut libc::c_void,
                        (end - start) as usize,
                        libc::MS_SYNC,
                    )
                };
            }
        }
    }

    /// Flush and fence a range: the usual way to make one structure durable.
    pub fn persist(&self, off: u64, len: u64) {
        self.flush(off, len);
        self.fence();
    }
}

fn coalesce(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

impl Drop for PmRegion {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range in `map` and nothing borrows it past Drop.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len as usize) };
    }
}
