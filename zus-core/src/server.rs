//! `zus mount`: mount zpmfs, mount FUSE, serve until unmounted or signalled, unmount cleanly.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

use crate::cli::MountArgs;
use crate::config::Config;
use crate::daemon::{self, Forked};
use crate::fs_api::{MountOptions, MountReport, ZusFs};
use crate::fuse::mount::{check_mountpoint, FuseMount};
use crate::fuse::{pin, start_session, ServeConfig};
use crate::options::MountOpts;

/// Everything checked before the server forks.
struct Plan {
    /// The image or device; several for a device set (`a:b`).
    images: Vec<PathBuf>,
    image: PathBuf,
    fsname: OsString,
    mountpoint: PathBuf,
    opts: MountOpts,
    serve: ServeConfig,
}

fn plan(args: &MountArgs) -> Result<Plan, String> {
    let config = Config::load_default_or(args.config.as_deref()).map_err(|e| e.to_string())?;
    let mut opts = MountOpts::parse(args.options.iter().map(String::as_str)).map_err(|e| e.to_string())?;
    opts.allow_other |= config.fuse.allow_other;
    crate::logger::init(&config.log).map_err(|e| format!("cannot open the log file: {e}"))?;

    let given = opts.source.clone().unwrap_or_else(|| PathBuf::from(&args.device));
    let mut images = Vec::new();
    for part in given.to_string_lossy().split(':').filter(|p| !p.is_empty()) {
        let p = PathBuf::from(part);
        images.push(p.canonicalize().map_err(|e| format!("cannot open {}: {}", p.display(), io_reason(&e)))?);
    }
    let image = images.first().cloned().ok_or_else(|| "no device or image given".to_string())?;
    let fsname = match (&opts.fsname, &opts.source) {
        (Some(name), _) => OsString::from(name),
        (None, Some(_)) => args.device.clone(),
        (None, None) => {
            OsString::from(images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"))
        }
    };
    let mountpoint = check_mountpoint(&args.mountpoint).map_err(|e| e.to_string())?;
    let cpus = pin::allowed_cpus();
    let serve = ServeConfig {
        ttl: config.fuse.attr_ttl(),
        threads: pin::worker_count(config.fuse.threads, &cpus),
        cpus,
        allow_other: opts.allow_other,
        channel: opts.fuse_channel.unwrap_or(config.fuse.channel),
    };
    Ok(Plan { images, image, fsname, mountpoint, opts, serve })
}

/// An I/O error's reason without the "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// `zus mount`; returns the exit status.
pub fn mount_main(args: &MountArgs) -> i32 {
    let plan = match plan(args) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("zus: {msg}");
            return 1;
        }
    };
    let ready_pipe = if args.foreground {
        None
    } else {
        match daemon::fork_and_wait() {
            Ok(Forked::Parent(status)) => return status,
            Ok(Forked::Child(pipe)) => Some(pipe),
            Err(msg) => {
                eprintln!("zus: {msg}");
                return 1;
            }
        }
    };
    serve::<pmfs::Fs>(&plan, ready_pipe)
}

/// `zus serve`: register zpmfs with zuf.ko and serve its mounts; returns the exit status.
pub fn serve_main(config: Option<&std::path::Path>) -> i32 {
    let cfg = match crate::config::Config::load_default_or(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zus: {e}");
            return 1;
        }
    };
    if let Err(e) = crate::logger::init(&cfg.log) {
        eprintln!("zus: cannot open the log: {e}");
        return 1;
    }
    let cpus = crate::fuse::pin::allowed_cpus();
    if let Some(p) = cfg.zuf.poll_cpu {
        if !cpus.contains(&p) {
            eprintln!("zus: [zuf] poll_cpu = {p} is not a CPU this server may run on ({cpus:?})");
            return 1;
        }
    }
    crate::zuf::serve::<pmfs::Fs>("zpmfs", &cpus, cfg.zuf.poll_cpu)
}

/// One line saying what mount found, e.g. "clean, 12 inodes, 3400 blocks used".
pub fn describe(r: &MountReport) -> String {
    let mut s = if r.was_clean { "clean".to_string() } else { "recovered".to_string() };
    if r.journals_rolled_back > 0 {
        s.push_str(&format!(", {} journals rolled back", r.journals_rolled_back));
    }
    if r.superblock_repaired {
        s.push_str(", superblock repaired from its replica");
    }
    if r.orphans_freed > 0 {
        s.push_str(&format!(", {} orphan inodes freed", r.orphans_freed));
    }
    s.push_str(&format!(", {} inodes, {} blocks used", r.inodes, r.blocks_used));
    s
}

fn fail(ready: Option<daemon::ReadyPipe>, msg: String) -> i32 {
    eprintln!("zus: {msg}");
    if let Some(p) = ready {
        p.failed();
    }
    1
}

fn serve<F: ZusFs + 'static>(plan: &Plan, ready: Option<daemon::ReadyPipe>) -> i32 {
    let numa = match plan.opts.cpu_nodes.as_deref().map(pmfs::numa::NumaMap::from_cpu_nodes).transpose() {
        Ok(n) => n,
        Err(e) => return fail(ready, e.to_string()),
    };
    let opts = MountOptions { read_only: plan.opts.read_only, numa, ..Default::default() };
    let fs = match F::mount(&plan.images, &opts) {
        Ok(fs) => Arc::new(fs),
        Err(e) => return fail(ready, format!("cannot mount {}: {e}", plan.image.display())),
    };
    // Block the termination signals before any thread starts, so that every thread inherits
    // the mask and only the signal thread's sigwait receives them.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        let _ = fs.unmount();
        return fail(ready, format!("cannot block signals: {e}"));
    }
    let (dev_fuse, fuse_mount) = match crate::fuse::mount::mount(&plan.mountpoint, &plan.fsname, &plan.opts) {
        Ok(m) => m,
        Err(e) => {
            let _ = fs.unmount();
            return fail(ready, e.to_string());
        }
    };
    let crate::fuse::Started { session, unmounted, stats } =
        match start_session(fs.clone(), dev_fuse, &plan.serve) {
            Ok(s) => s,
            Err(e) => {
                let _ = fuse_mount.unmount();
                let _ = fs.unmount();
                return fail(ready, format!("FUSE session on {} failed: {e}", plan.mountpoint.display()));
            }
        };
    println!(
        "zus: mounted {} on {} ({})",
        plan.image.display(),
        plan.mountpoint.display(),
        describe(&fs.mount_report())
    );
    let _ = std::io::stdout().flush();
    let fuse_mount = Arc::new(fuse_mount);
    if let Err(e) = crate::status::serve(fs.clone(), &plan.mountpoint, Some(stats)) {
        log::warn!("no status socket for `zus status` ({e})");
    }
    if let Err(e) = spawn_signal_thread(signals, fuse_mount.clone()) {
        log::warn!("no signal thread ({e}): stop zus with umount {}", plan.mountpoint.display());
    }
    if let Some(p) = ready {
        p.ready();
        daemon::detach_stdio();
    }

    let run = session.run();
    crate::status::stop(&plan.mountpoint);
    if let Err(e) = &run {
        log::error!("FUSE session ended with an error: {e}");
        // The kernel mount may still be there; it has no server any more.
        let _ = fuse_mount.unmount();
    }
    let status = match unmounted.get() {
        Some(Ok(())) => 0,
        Some(Err(e)) => {
            eprintln!("zus: unmount of {} failed: {e}", plan.image.display());
            1
        }
        None => match fs.unmount() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("zus: unmount of {} failed: {e}", plan.image.display());
                1
            }
        },
    };
    if status == 0 {
        log::info!("unmounted {} from {}", plan.image.display(), plan.mountpoint.display());
    }
    if run.is_err() {
        1
    } else {
        status
    }
}

/// The first SIGTERM, SIGINT or SIGHUP unmounts (which ends the session); a later one aborts
/// the FUSE connection in case open files keep the session alive.
fn spawn_signal_thread(signals: SigSet, mount: Arc<FuseMount>) -> std::io::Result<()> {
    std::thread::Builder::new().name("zus-signals".into()).spawn(move || {
        let mut seen = 0u32;
        while let Ok(sig) = signals.wait() {
            seen += 1;
            log::info!("{sig}: unmounting {}", mount.mountpoint().display());
            if seen == 1 {
                if let Err(e) = mount.unmount() {
                    log::error!("unmount of {} failed: {e}", mount.mountpoint().display());
                }
            } else {
                mount.abort_connection();
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_line() {
        let r = MountReport { was_clean: true, inodes: 12, blocks_used: 3400, ..Default::default() };
        assert_eq!(describe(&r), "clean, 12 inodes, 3400 blocks used");
        let r = MountReport {
            was_clean: false,
            journals_rolled_back: 1,
            orphans_freed: 2,
            inodes: 3,
            blocks_used: 4,
            ..Default::default()
        };
        assert_eq!(
            describe(&r),
            "recovered, 1 journals rolled back, 2 orphan inodes freed, 3 inodes, 4 blocks used"
        );
    }
}
