//! The FUSE transport: serves a [`ZusFs`] over /dev/fuse with the `fuser` crate, and over FUSE
//! over io_uring (Linux 6.14+) where the kernel offers it.
//!
//! - `mount`: the kernel mount (mount(2) on /dev/fuse, type `fuse.zpmfs`) and unmount.
//! - `handlers`: what each request does, as typed results; both channels call them.
//! - `ops`: the /dev/fuse channel (fuser decodes, the handler runs, fuser replies once).
//! - `uring`: the io_uring channel (per-CPU rings, zus's own decoding and encoding).
//! - `channel`: the choice between them and the requests each carried (`zus status`).
//! - `convert`: protocol values to and from the filesystem's types.
//! - `fileattr`: chattr's ioctls (FS_IOC_GETFLAGS and the rest) and their fsxattr form.
//! - `pin`: one worker thread per CPU, pinned.
//!
//! Durability: the kernel is never given the writeback cache, so a write reaches zpmfs (and is
//! durable) before write(2) returns. Files are opened with FOPEN_DIRECT_IO when the kernel
//! allows mmap on such files (FUSE_DIRECT_IO_ALLOW_MMAP), so file data also stays out of the
//! page cache; on older kernels the page cache is write-through.

mod acl;
pub mod channel;
pub mod convert;
mod fileattr;
mod handlers;
pub mod mount;
mod ops;
pub mod pin;
mod uring;

use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fuser::{Session, SessionACL};

use crate::fs_api::ZusFs;
use channel::{ChannelChoice, ChannelStats};
use handlers::Handlers;
use uring::UringChannel;

/// The result of the filesystem's unmount, set when the FUSE session is destroyed.
pub type UnmountResult = Arc<OnceLock<Result<(), String>>>;

/// A [`ZusFs`] as a fuser filesystem (the /dev/fuse channel); the io_uring channel shares its
/// handlers.
pub struct FuseServer<F: ZusFs + 'static> {
    h: Arc<Handlers<F>>,
    unmounted: UnmountResult,
    uring: Arc<UringChannel>,
    stats: Arc<ChannelStats>,
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub ttl: Duration,
    /// Worker threads (at least 1), each with its own cloned /dev/fuse descriptor.
    pub threads: usize,
    /// The CPUs to pin worker `i` to (`cpus[i % len]`); empty: no pinning.
    pub cpus: Vec<usize>,
    pub allow_other: bool,
    /// /dev/fuse, io_uring, or io_uring where the kernel offers it.
    pub channel: ChannelChoice,
}

/// A started session: serve it with `session.run()`, which returns when the filesystem is
/// unmounted.
pub struct Started<F: ZusFs + 'static> {
    pub session: Session<FuseServer<F>>,
    pub unmounted: UnmountResult,
    /// Requests per channel, and which one carries them (`zus status`).
    pub stats: Arc<ChannelStats>,
}

/// Start a FUSE session on `dev_fuse` (a descriptor of a fresh mount): answers the kernel's
/// INIT and, where chosen and offered, registers the io_uring queues before it returns, so
/// the mount is usable once this returns Ok. Serve it with `Session::run`, which returns when
/// the filesystem is unmounted; the server's `destroy` then unmounts the filesystem, with the
/// result in the returned [`UnmountResult`].
pub fn start_session<F: ZusFs + 'static>(
    fs: Arc<F>,
    dev_fuse: OwnedFd,
    cfg: &ServeConfig,
) -> std::io::Result<Started<F>> {
    let h = Arc::new(Handlers::new(fs, cfg.ttl, cfg.cpus.clone()));
    let unmounted = UnmountResult::default();
    let uring = Arc::new(UringChannel::new(cfg.channel));
    let stats = Arc::new(ChannelStats::default());
    let server =
        FuseServer { h: h.clone(), unmounted: unmounted.clone(), uring: uring.clone(), stats: stats.clone() };
    let acl = if cfg.allow_other { SessionACL::All } else { SessionACL::Owner };
    let mut config = fuser::Config::default();
    config.n_threads = Some(cfg.threads.max(1));
    config.clone_fd = true;
    config.acl = acl;
    // The rings' commands go to the same connection, through a descriptor of its own.
    let ring_fd = dev_fuse.try_clone()?;
    let session = Session::from_fd(server, dev_fuse, acl, config)?;
    let _ = h.notifier.set(session.notifier());
    let access = uring::Access { allow_other: cfg.allow_other, owner: nix::unistd::geteuid().as_raw() };
    uring.start(ring_fd, h, stats.clone(), access)?;
    Ok(Started { session, unmounted, stats })
}
