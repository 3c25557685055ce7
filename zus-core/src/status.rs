//! `zus status MOUNTPOINT`: what a running zus says about its mount, over a Unix socket the
//! server keeps in /run/zpmfs (root only): space, and per NUMA node of a device set the
//! blocks, free blocks, and where each node's CPUs' allocations went (local, spilled); over
//! FUSE, the channel requests travel by (io_uring or /dev/fuse) and how many each carried.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fs_api::ZusFs;
use crate::fuse::channel::ChannelStats;

const DIR: &str = "/run/zpmfs";

/// The socket of the zus serving `mountpoint` (canonical): named by a hash of the path, since
/// a socket path is at most 107 bytes.
pub fn socket_path(mountpoint: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    mountpoint.hash(&mut h);
    PathBuf::from(format!("{DIR}/mnt-{:016x}.sock", h.finish()))
}

/// The report, one `key=value ...` line per item.
pub fn report<F: ZusFs>(fs: &F, mountpoint: &Path, fuse: Option<&ChannelStats>) -> String {
    let mut out = format!("mountpoint={}\n", mountpoint.display());
    if let Some(stats) = fuse {
        out.push_str(&stats.report());
    }
    if let Ok(st) = fs.statfs() {
        out.push_str(&format!("blocks={} free={} avail={}\n", st.blocks, st.blocks_free, st.blocks_avail));
    }
    let nodes = fs.node_stats();
    out.push_str(&format!("numa_nodes={}\n", nodes.len().max(1)));
    for n in nodes {
        out.push_str(&format!(
            "node={} blocks={} free={} local={} spilled={}\n",
            n.node, n.blocks, n.free, n.local, n.spilled
        ));
    }
    out
}

/// Answer `zus status` for `mountpoint` until the process ends. The socket is removed by
/// [`stop`]; a stale one left by a killed zus is replaced.
pub fn serve<F: ZusFs + 'static>(
    fs: Arc<F>,
    mountpoint: &Path,
    fuse: Option<Arc<ChannelStats>>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(DIR)?;
    std::fs::set_permissions(DIR, std::fs::Permissions::from_mode(0o700))?;
    let path = socket_path(mountpoint);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let mnt = mountpoint.to_path_buf();
    std::thread::Builder::new().name("zus-status".into()).spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(report(&*fs, &mnt, fuse.as_deref()).as_bytes());
        }
    })?;
    Ok(())
}

/// Remove the status socket of `mountpoint` (at unmount).
pub fn stop(mountpoint: &Path) {
    let _ = std::fs::remove_file(socket_path(mountpoint));
}

/// `zus status MOUNTPOINT`: print the report; the exit status.
pub fn status_main(mountpoint: &Path) -> i32 {
    let mnt = match mountpoint.canonicalize() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("zus: cannot open {}: {e}", mountpoint.display());
            return 1;
        }
    };
    let path = socket_path(&mnt);
    let mut conn = match UnixStream::connect(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "zus: no zus answers for {} ({}: {e}); is it a zpmfs mount served over FUSE, and are you root?",
                mnt.display(),
                path.display()
            );
            return 1;
        }
    };
    let mut text = String::new();
    if let Err(e) = conn.read_to_string(&mut text) {
        eprintln!("zus: reading the status of {}: {e}", mnt.display());
        return 1;
    }
    print!("{text}");
    0
}
