//! FUSE over io_uring (Linux 6.14+): the kernel hands each request to the queue of the CPU its
//! caller runs on, through an io_uring command that zus's thread on that CPU waits on, and the
//! reply goes back in the same entry; no read(2)/write(2) on /dev/fuse per request and no
//! hop to another CPU. FORGET and INTERRUPT still come through /dev/fuse, which fuser's session
//! keeps serving.
//!
//! - `abi`: the kernel's layout; `request`: decoding; `reply`: encoding (all safe code).
//! - `serve`: one request, through the handlers the /dev/fuse channel calls too.
//! - `queue`: one ring per CPU, its thread, its buffers (the only unsafe code).
//!
//! Start-up: INIT (fuser's handshake) asks for FUSE_OVER_IO_URING where the choice allows and
//! the kernel offers it; from then on the kernel holds new requests back until every queue has
//! registered, so `start` registers all of them right after the session starts; if any queue
//! fails, one bad REGISTER makes the kernel drop io_uring for the connection and requests
//! flow over /dev/fuse again (with `auto`; `uring` fails the mount instead).

mod abi;
mod queue;
mod reply;
mod request;
mod serve;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{InitFlags, KernelConfig};

use super::channel::{uring_enabled, ChannelChoice, ChannelStats};
use super::handlers::Handlers;
use crate::fs_api::ZusFs;

pub use serve::Access;

/// The largest write zus asks the kernel to send when the rings carry the requests: the
/// kernel's payload buffer must hold max(max_write, max_pages pages); this keeps each entry's
/// buffer at 1 MiB, which is also what the kernel's default page limit (256) allows per request.
const URING_MAX_WRITE: u32 = 1 << 20;

/// How long unmount waits for the queues to finish the requests they hold.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// The io_uring side of a session: what INIT decided, and the queues' threads.
pub struct UringChannel {
    choice: ChannelChoice,
    /// INIT asked the kernel for FUSE_OVER_IO_URING.
    negotiated: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl UringChannel {
    pub fn new(choice: ChannelChoice) -> UringChannel {
        UringChannel { choice, negotiated: AtomicBool::new(false), threads: Mutex::new(Vec::new()) }
    }

    /// At INIT: ask for io_uring where chosen and offered; with `uring`, an error if not.
    pub fn negotiate(&self, config: &mut KernelConfig) -> io::Result<()> {
        if self.choice == ChannelChoice::Dev {
            return Ok(());
        }
        let why_not = if !config.capabilities().contains(InitFlags::FUSE_OVER_IO_URING) {
            Some(uring_enabled().err().unwrap_or_else(|| "the kernel does not offer it at INIT".to_string()))
        } else if let Err(e) = io_uring::IoUring::<io_uring::squeue::Entry128>::builder().build(1) {
            Some(format!("cannot create an io_uring ({e}; see sysctl kernel.io_uring_disabled)"))
        } else {
            None
        };
        if let Some(why) = why_not {
            if self.choice == ChannelChoice::Uring {
                return Err(io::Error::other(format!("FUSE over io_uring is unavailable: {why}")));
            }
            log::info!("FUSE over io_uring unavailable ({why}); serving /dev/fuse");
            return Ok(());
        }
        let _ = config.set_max_write(URING_MAX_WRITE);
        config
            .add_capabilities(InitFlags::FUSE_OVER_IO_URING)
            .map_err(|_| io::Error::other("FUSE over io_uring: the kernel refused the capability"))?;
        self.negotiated.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// After the session's INIT reply reached the kernel: one queue per possible CPU,
    /// registered. Ok(queues) when the rings carry the requests, Ok(0) when /dev/fuse does
    /// (not negotiated, or `auto` and registration failed), Err with `uring` on failure.
    pub fn start<F: ZusFs + 'static>(
        &self,
        dev_fuse: OwnedFd,
        handlers: Arc<Handlers<F>>,
        stats: Arc<ChannelStats>,
        access: Access,
    ) -> io::Result<usize> {
        if !self.negotiated.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let queues = possible_cpus()?;
        let allowed = super::pin::allowed_cpus();
        stats.prepare_uring(queues);
        let dev_fuse = Arc::new(dev_fuse);
        let payload_len = payload_len();
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(queues);
        let mut failure = None;
        for qid in 0..queues {
            let Ok(qid16) = u16::try_from(qid) else {
                failure = Some(format!("{queues} CPUs: more queues than the protocol can name"));
                break;
            };
            let setup = queue::QueueSetup {
                qid: qid16,
                pin: allowed.contains(&qid),
                dev_fuse: dev_fuse.clone(),
                payload_len,
                handlers: handlers.clone(),
                stats: stats.clone(),
                access,
            };
            let tx = tx.clone();
            match std::thread::Builder::new()
                .name(format!("zus-uring-{qid}"))
                .spawn(move || queue::run(setup, tx))
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    failure = Some(format!("cannot start queue {qid}'s thread: {e}"));
                    break;
                }
            }
        }
        drop(tx);
        for _ in 0..threads.len() {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => failure = failure.or(Some(why)),
                Err(_) => {
                    failure = failure.or(Some("a queue did not answer within 10 s".to_string()));
                    break;
                }
            }
        }
        let Some(why) = failure else {
            *self.threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
            stats.set_uring_active(queues);
            log::info!("FUSE over io_uring: {queues} queues, {payload_len} byte buffers");
            return Ok(queues);
        };
        // The kernel waits for the ring until a REGISTER fails; make sure one did, so that
        // requests flow over /dev/fuse (and an unmount is not left hanging).
        queue::fall_back(&dev_fuse);
        if self.choice == ChannelChoice::Uring {
            // The session goes (and its mount with it); queues that registered end when the
            // kernel cancels their commands, nobody waits for them.
            return Err(io::Error::other(format!("FUSE over io_uring failed: {why}")));
        }
        *self.threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
        log::warn!("FUSE over io_uring failed ({why}); serving /dev/fuse");
        Ok(0)
    }

    /// At unmount: wait (a bounded time) for the queues' threads, which end when the kernel
    /// cancels their commands.
    pub fn stop(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let deadline = Instant::now() + STOP_WAIT;
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::warn!("FUSE over io_uring: a queue's thread still runs at unmount; not waiting for it");
            }
        }
    }
}

/// The kernel's queue count: num_possible_cpus(), from /sys/devices/system/cpu/possible.
fn possible_cpus() -> io::Result<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    parse_cpu_list(&text).ok_or_else(|| io::Error::other(format!("cannot parse the possible CPUs {text:?}")))
}

/// How many CPUs a list such as "0-3,6" names.
fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut n = 0usize;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()?.checked_sub(a.parse::<usize>().ok()?)? + 1,
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
    }
    (n > 0).then_some(n)
}

/// The payload buffer the kernel wants: at least max(FUSE_MIN_READ_BUFFER, max_write,
/// max_pages pages), max_pages being at most the module's max_pages_limit.
fn payload_len() -> usize {
    let page = 4096usize;
    let limit_pages = std::fs::read_to_string("/sys/module/fuse/parameters/max_pages_limit")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(256);
    // fuser asks for max_pages from max_write (and the readahead, at most 128 KiB here).
    let asked_pages = (URING_MAX_WRITE as usize).div_ceil(page);
    abi::MIN_READ_BUFFER.max(URING_MAX_WRITE as usize).max(limit_pages.min(asked_pages.max(32)) * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn payload_holds_a_max_write() {
        assert!(payload_len() >= URING_MAX_WRITE as usize);
    }
}
