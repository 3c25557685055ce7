//! The FUSE transport: serves a [`ZusFs`] on /dev/fuse with the `fuser` crate.
//!
//! - `mount`: the kernel mount (mount(2) on /dev/fuse, type `fuse.zpmfs`) and unmount.
//! - `ops`: the request handlers (decode, call the filesystem, reply once).
//! - `convert`: protocol values to and from the filesystem's types.
//! - `pin`: one worker thread per CPU, pinned.
//!
//! Durability: the kernel is never given the writeback cache, so a write reaches zpmfs (and is
//! durable) before write(2) returns. Files are opened with FOPEN_DIRECT_IO when the kernel
//! allows mmap on such files (FUSE_DIRECT_IO_ALLOW_MMAP), so file data also stays out of the
//! page cache; on older kernels the page cache is write-through.

mod acl;
pub mod convert;
pub mod mount;
mod ops;
pub mod pin;

use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fuser::{Notifier, Session, SessionACL};

use crate::fs_api::ZusFs;

/// The result of the filesystem's unmount, set when the FUSE session is destroyed.
pub type UnmountResult = Arc<OnceLock<Result<(), String>>>;

/// A [`ZusFs`] as a fuser filesystem.
pub struct FuseServer<F: ZusFs + 'static> {
    fs: Arc<F>,
    /// How long the kernel may cache attributes and entries.
    ttl: Duration,
    /// Open files with FOPEN_DIRECT_IO (decided at INIT).
    direct_io: bool,
    /// The kernel sends the file's current flags with each write (ABI 7.9 and later).
    write_flags_reliable: bool,
    /// FUSE_POSIX_ACL negotiated: ACLs are enforced by the kernel, kept in step by zus.
    posix_acl: bool,
    next_fh: AtomicU64,
    pin: pin::Pinner,
    unmounted: UnmountResult,
    /// Tells the kernel to drop cached attributes that zus changed on its own (set once the
    /// session exists).
    notifier: Arc<OnceLock<Notifier>>,
    /// The filesystem spans several NUMA nodes: allocations follow the caller's CPU, not the
    /// worker's (a worker serves whoever's request it reads).
    numa_placement: bool,
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
}

impl<F: ZusFs + 'static> FuseServer<F> {
    pub fn new(fs: Arc<F>, cfg: &ServeConfig) -> (FuseServer<F>, UnmountResult) {
        let unmounted = UnmountResult::default();
        let numa_placement = fs.node_stats().len() > 1;
        let server = FuseServer {
            numa_placement,
            fs,
            ttl: cfg.ttl,
            direct_io: false,
            write_flags_reliable: false,
            posix_acl: false,
            next_fh: AtomicU64::new(1),
            pin: pin::Pinner::new(cfg.cpus.clone()),
            unmounted: unmounted.clone(),
            notifier: Arc::default(),
        };
        (server, unmounted)
    }
}

/// Start a FUSE session on `dev_fuse` (a descriptor of a fresh mount): answers the kernel's
/// INIT before it returns, so the mount is usable once this returns Ok. Serve it with
/// `Session::run`, which returns when the filesystem is unmounted; the server's `destroy`
/// then unmounts the filesystem, with the result in the returned [`UnmountResult`].
pub fn start_session<F: ZusFs + 'static>(
    fs: Arc<F>,
    dev_fuse: OwnedFd,
    cfg: &ServeConfig,
) -> std::io::Result<(Session<FuseServer<F>>, UnmountResult)> {
    let (server, unmounted) = FuseServer::new(fs, cfg);
    let notifier = server.notifier.clone();
    let acl = if cfg.allow_other { SessionACL::All } else { SessionACL::Owner };
    let mut config = fuser::Config::default();
    config.n_threads = Some(cfg.threads.max(1));
    config.clone_fd = true;
    config.acl = acl;
    let session = Session::from_fd(server, dev_fuse, acl, config)?;
    let _ = notifier.set(session.notifier());
    Ok((session, unmounted))
}
