//! One queue of FUSE over io_uring: a thread pinned to its CPU with its own ring, holding
//! `DEPTH` entries registered with the kernel. A completion means a request landed in that
//! entry; the thread serves it and sends the reply back with COMMIT_AND_FETCH, which also
//! hands the entry back for the next request. The thread ends when the kernel cancels its
//! commands (unmount, or the connection aborted).
//!
//! The ring's buffers are raw memory shared with the kernel: this file holds the transport's
//! unsafe code, each block with the reason it is sound.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::abi;
use super::serve::{self, Access};
use crate::fs_api::ZusFs;
use crate::fuse::channel::ChannelStats;

/// Entries per queue: the thread serves one request at a time, the others let the kernel hand
/// over the next requests without waiting for a commit.
pub const DEPTH: usize = 2;

/// Bytes before the payload in an entry's mapping: the 288-byte request header, page-aligned
/// so that the payload starts on a page.
const HEADER_AREA: usize = 4096;

type Ring = IoUring<squeue::Entry128, cqueue::Entry>;

/// One entry's memory: header and payload in one anonymous mapping, which the kernel reads and
/// writes while the entry is armed (registered or committed, and not yet completed).
struct EntryMem {
    base: NonNull<u8>,
    payload_len: usize,
    /// The iovec pair REGISTER points the kernel at (header, payload).
    iov: Box<[libc::iovec; 2]>,
}

impl EntryMem {
    fn new(payload_len: usize) -> io::Result<EntryMem> {
        let len = HEADER_AREA + payload_len;
        // SAFETY: an anonymous private mapping at an address the kernel picks; no memory of
        // ours is involved. Pages are only touched (and allocated) when used.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let iov = Box::new([
            libc::iovec { iov_base: base.as_ptr().cast(), iov_len: abi::REQ_HEADER_SZ },
            // SAFETY: HEADER_AREA is inside the mapping of HEADER_AREA + payload_len bytes.
            libc::iovec { iov_base: unsafe { base.as_ptr().add(HEADER_AREA) }.cast(), iov_len: payload_len },
        ]);
        Ok(EntryMem { base, payload_len, iov })
    }

    /// The header and the payload, while the entry is ours: between its completion and the
    /// next commit.
    fn parts(&mut self) -> (&mut [u8], &mut [u8]) {
        // SAFETY: both ranges lie inside the mapping (header: its first REQ_HEADER_SZ bytes,
        // payload: the payload_len bytes from HEADER_AREA), do not overlap, and live as long
        // as `self`. `&mut self` rules out other Rust references to them, and the kernel only
        // writes them while the entry is armed, which it is not between a completion and the
        // commit this thread sends after it has dropped these slices.
        unsafe {
            (
                std::slice::from_raw_parts_mut(self.base.as_ptr(), abi::REQ_HEADER_SZ),
                std::slice::from_raw_parts_mut(self.base.as_ptr().add(HEADER_AREA), self.payload_len),
            )
        }
    }
}

impl Drop for EntryMem {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of this length, unmapped once. Entries are only
        // dropped when the kernel holds none of them (see `Queue::run`).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), HEADER_AREA + self.payload_len);
        }
    }
}

/// What a queue's thread needs.
pub struct QueueSetup<F: ZusFs + 'static> {
    pub qid: u16,
    /// Pin to this CPU (the queue's), when the process may run there.
    pub pin: bool,
    pub dev_fuse: Arc<OwnedFd>,
    pub payload_len: usize,
    pub handlers: Arc<crate::fuse::handlers::Handlers<F>>,
    pub stats: Arc<ChannelStats>,
    pub access: Access,
}

fn ring() -> io::Result<Ring> {
    // Completions are only reaped by this thread, which submits too: let the kernel defer its
    // task work to our waits (fewer interruptions); older kernels refuse the flags.
    let entries = (DEPTH as u32).next_power_of_two();
    match IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(entries) {
        Ok(r) => Ok(r),
        Err(_) => IoUring::builder().build(entries),
    }
}

/// Byte offset of `len` in struct io_uring_sqe (include/uapi/linux/io_uring.h).
const SQE_LEN_OFF: usize = 24;

/// The SQE with its `len` field set: REGISTER passes the iovec count there, and the io-uring
/// crate's UringCmd80 has no setter for it.
fn with_len(sqe: squeue::Entry128, len: u32) -> squeue::Entry128 {
    // SAFETY: Entry128 is #[repr(C)]: a struct io_uring_sqe (64 bytes) and 64 bytes more, no
    // padding, no pointers it owns, and every bit pattern is a valid value of it; the size is
    // checked by a test. `len` is the u32 at SQE_LEN_OFF of the first 64 bytes.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute::<squeue::Entry128, [u8; 128]>(sqe) };
    raw[SQE_LEN_OFF..SQE_LEN_OFF + 4].copy_from_slice(&len.to_ne_bytes());
    // SAFETY: as above, back to the type it came from.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

fn register_sqe(fd: i32, qid: u16, index: usize, mem: &EntryMem) -> squeue::Entry128 {
    let sqe = opcode::UringCmd80::new(types::Fd(fd), abi::CMD_REGISTER)
        .cmd(abi::cmd_req(0, qid))
        .addr(Some(mem.iov.as_ptr() as u64))
        .build()
        .user_data(index as u64);
    with_len(sqe, mem.iov.len() as u32)
}

fn commit_sqe(fd: i32, qid: u16, index: usize, commit_id: u64) -> squeue::Entry128 {
    opcode::UringCmd80::new(types::Fd(fd), abi::CMD_COMMIT_AND_FETCH)
        .cmd(abi::cmd_req(commit_id, qid))
        .build()
        .user_data(index as u64)
}

/// Create the ring and register the entries; `registered` gets Ok once the kernel took them
/// (or the reason it did not); then serve until the kernel cancels them.
pub fn run<F: ZusFs + 'static>(q: QueueSetup<F>, registered: Sender<Result<(), String>>) {
    let cpu = usize::from(q.qid);
    if q.pin {
        crate::fuse::pin::pin_to(cpu);
    }
    let mut ring = match ring() {
        Ok(r) => r,
        Err(e) => {
            let _ = registered.send(Err(format!("queue {cpu}: cannot create an io_uring: {e}")));
            return;
        }
    };
    let mut mems = Vec::with_capacity(DEPTH);
    for _ in 0..DEPTH {
        match EntryMem::new(q.payload_len) {
            Ok(m) => mems.push(m),
            Err(e) => {
                let _ = registered.send(Err(format!("queue {cpu}: cannot map a ring buffer: {e}")));
                return;
            }
        }
    }
    let fd = q.dev_fuse.as_raw_fd();
    for (i, m) in mems.iter().enumerate() {
        let sqe = register_sqe(fd, q.qid, i, m);
        // SAFETY: the SQE points at `m.iov` and the mapping it describes, which live in `mems`
        // until this function returns; it never returns while the kernel holds an entry
        // (buffers are leaked instead, below).
        if unsafe { ring.submission().push(&sqe) }.is_err() {
            let _ = registered.send(Err(format!("queue {cpu}: submission queue full")));
            return;
        }
    }
    if let Err(e) = ring.submit() {
        let _ = registered.send(Err(format!("queue {cpu}: cannot submit REGISTER: {e}")));
        return;
    }
    // REGISTER runs inline during submit: a refusal is already in the completion queue, while
    // an accepted entry completes only when a request lands in it.
    let mut early = Vec::new();
    let mut refused = None;
    for cqe in ring.completion() {
        if cqe.result() < 0 && refused.is_none() {
            refused = Some(io::Error::from_raw_os_error(-cqe.result()));
        }
        early.push(cqe);
    }
    if let Some(e) = refused {
        let _ = registered.send(Err(format!("queue {cpu}: the kernel refused REGISTER: {e}")));
        // Some entries may still be armed: keep their memory mapped for the kernel.
        std::mem::forget(mems);
        return;
    }
    let _ = registered.send(Ok(()));
    drop(registered);
    let armed = serve_loop(&q, &mut ring, &mut mems, fd, early);
    if armed > 0 {
        std::mem::forget(mems);
    }
    log::debug!("FUSE over io_uring: queue {cpu} done");
}

/// Serve completions until no entry is armed any more (or the ring fails); the number of
/// entries that may still be armed.
fn serve_loop<F: ZusFs + 'static>(
    q: &QueueSetup<F>,
    ring: &mut Ring,
    mems: &mut [EntryMem],
    fd: i32,
    mut pending: Vec<cqueue::Entry>,
) -> usize {
    let cpu = usize::from(q.qid);
    let mut armed = mems.len();
    loop {
        for cqe in pending.drain(..) {
            let index = cqe.user_data() as usize;
            let Some(mem) = mems.get_mut(index) else {
                log::error!("FUSE over io_uring: queue {cpu}: completion for unknown entry {index}");
                continue;
            };
            if cqe.result() < 0 {
                // ENOTCONN/ECONNABORTED/ECANCELED: unmounted or aborted; anything else is
                // logged, and the entry is lost to the kernel either way.
                armed -= 1;
                let e = -cqe.result();
                if e != libc::ENOTCONN && e != libc::ECONNABORTED && e != libc::ECANCELED {
                    log::error!(
                        "FUSE over io_uring: queue {cpu}: entry {index} ended: {}",
                        io::Error::from_raw_os_error(e)
                    );
                }
                continue;
            }
            let (header, payload) = mem.parts();
            let commit_id = abi::u64_at(header, abi::ENT_COMMIT_ID_OFF).unwrap_or(0);
            serve::serve(&q.handlers, q.access, cpu, header, payload);
            q.stats.count_uring(cpu);
            let sqe = commit_sqe(fd, q.qid, index, commit_id);
            // SAFETY: as for REGISTER: the entry's memory outlives the command (see `run`).
            // The queue has room: each armed entry has at most one command outstanding and
            // the ring has at least DEPTH slots.
            if unsafe { ring.submission().push(&sqe) }.is_err() {
                log::error!("FUSE over io_uring: queue {cpu}: submission queue full");
                armed -= 1;
            }
        }
        if armed == 0 {
            return 0;
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) || e.raw_os_error() == Some(libc::EAGAIN) => {}
            Err(e) => {
                log::error!("FUSE over io_uring: queue {cpu}: {e}; the queue stops");
                return armed;
            }
        }
        pending.extend(ring.completion());
    }
}

/// Submit a REGISTER the kernel must refuse (a queue number past the last), which makes it
/// give up io_uring for this connection and wake the requests waiting for the ring.
pub fn fall_back(dev_fuse: &OwnedFd) {
    let Ok(mut ring) = IoUring::<squeue::Entry128>::builder().build(1) else {
        log::error!("FUSE over io_uring: cannot create a ring to fall back to /dev/fuse");
        return;
    };
    let sqe = opcode::UringCmd80::new(types::Fd(dev_fuse.as_raw_fd()), abi::CMD_REGISTER)
        .cmd(abi::cmd_req(0, u16::MAX))
        .build();
    // SAFETY: the command carries no buffer (the kernel refuses the queue number before it
    // would look for one).
    if unsafe { ring.submission().push(&sqe) }.is_ok() {
        let _ = ring.submit_and_wait(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqe_len_lands_in_the_len_field() {
        assert_eq!(std::mem::size_of::<squeue::Entry128>(), 128);
        let sqe = with_len(opcode::UringCmd80::new(types::Fd(3), abi::CMD_REGISTER).build().user_data(9), 2);
        // SAFETY: as in `with_len`.
        let raw: [u8; 128] = unsafe { std::mem::transmute::<squeue::Entry128, [u8; 128]>(sqe) };
        assert_eq!(u32::from_ne_bytes(raw[24..28].try_into().expect("4 bytes")), 2);
        assert_eq!(i32::from_ne_bytes(raw[4..8].try_into().expect("4 bytes")), 3); // fd
        assert_eq!(u64::from_ne_bytes(raw[32..40].try_into().expect("8 bytes")), 9); // user_data
        assert_eq!(u32::from_ne_bytes(raw[8..12].try_into().expect("4 bytes")), abi::CMD_REGISTER);
        // cmd_op
    }
}
