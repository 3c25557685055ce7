//! The ZUF transport: zus serving zuf.ko. [`abi`] mirrors kernel/zuf_abi.h; [`sys`] is the raw
//! edge (ioctls, mappings); [`channel`] runs one pinned server thread per CPU; [`serve`]
//! registers the filesystem type and runs the mount thread.

pub mod abi;
pub mod channel;
pub mod dispatch;
pub mod sys;

use std::path::Path;
use std::sync::Arc;

use log::{error, info};
use parking_lot::RwLock;

use crate::fs_api::{MountOptions, ZusFs};
use abi::*;
use sys::ZufFile;

/// One mounted superblock: the filesystem, and the inodes the kernel holds in its cache.
/// zuf.ko sends no OPEN or RELEASE: an inode the kernel holds counts as open (so an unlinked
/// file stays readable through open descriptors) until the kernel sends EVICT.
pub struct Mounted<F> {
    pub fs: F,
    held: parking_lot::Mutex<std::collections::HashSet<u64>>,
}

impl<F: ZusFs> Mounted<F> {
    pub fn new(fs: F) -> Mounted<F> {
        Mounted { fs, held: parking_lot::Mutex::new(Default::default()) }
    }

    /// Serve one operation and keep the held-inode set up to date.
    pub fn serve(&self, op: &mut ZufOpBuf, window: &mut sys::Mapping) -> i32 {
        // Unlinked inodes the kernel dropped since its last call ride in this one.
        let Some(dropped) = op.evict.get(..op.nr_evict as usize) else {
            return -libc::EINVAL;
        };
        for &ino in dropped {
            self.release(ino);
        }
        if op.op == abi::op::EVICT {
            self.release(op.ino);
            return 0;
        }
        let result = dispatch::serve(&self.fs, op, window);
        let gives_inode = matches!(
            op.op,
            abi::op::LOOKUP
                | abi::op::GETATTR
                | abi::op::MKNOD
                | abi::op::MKDIR
                | abi::op::SYMLINK
                | abi::op::LINK
                | abi::op::TMPFILE
                | abi::op::CREATE
        );
        if result == 0 && gives_inode && op.attr.ino != 0 {
            let mut held = self.held.lock();
            // An inode freed between the answer and here was unlinked meanwhile: its name
            // is gone, and holding a number nothing owns would release someone else's later.
            if held.insert(op.attr.ino) && self.fs.open(op.attr.ino).is_err() {
                held.remove(&op.attr.ino);
                return -libc::ENOENT;
            }
        }
        result
    }

    /// The kernel dropped its inode `ino`: if it held it, the filesystem may free it now.
    fn release(&self, ino: u64) {
        if self.held.lock().remove(&ino) {
            let _ = self.fs.release(ino);
        }
    }
}

/// Mounted superblocks, by the kernel's handle.
pub struct Mounts<F> {
    /// By the kernel's superblock id. A server has a handful of mounts: a short list scanned
    /// on every call costs less than hashing the id (SipHash showed in the guest profile).
    list: RwLock<Vec<(u64, Arc<Mounted<F>>)>>,
}

impl<F> Mounts<F> {
    pub fn get(&self, sb_id: u64) -> Option<Arc<Mounted<F>>> {
        self.list.read().iter().find(|(id, _)| *id == sb_id).map(|(_, m)| m.clone())
    }

    fn insert(&self, sb_id: u64, m: Arc<Mounted<F>>) {
        let mut list = self.list.write();
        list.retain(|(id, _)| *id != sb_id);
        list.push((sb_id, m));
    }

    fn remove(&self, sb_id: u64) -> Option<Arc<Mounted<F>>> {
        let mut list = self.list.write();
        let at = list.iter().position(|(id, _)| *id == sb_id)?;
        Some(list.swap_remove(at).1)
    }
}

fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn put_c_str(dst: &mut [u8], s: &str) {
    let n = s.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
    dst[n] = 0;
}

/// Whether zuf.ko is loaded (its device exists).
pub fn available() -> bool {
    Path::new(sys::DEVICE).exists()
}

/// Register `fs_name` with zuf.ko, start a pinned ZT per CPU (and the polling thread on
/// `poll_cpu`), and serve mount requests until the kernel shuts the server down. Returns the
/// exit status.
pub fn serve<F: ZusFs + 'static>(fs_name: &str, cpus: &[usize], poll_cpu: Option<usize>) -> i32 {
    let ctl = match ZufFile::open() {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "zus: cannot open {} ({e}); is zuf.ko loaded? (`zus mount` serves over FUSE)",
                sys::DEVICE
            );
            return 1;
        }
    };
    let mut reg = ZufRegisterFs { abi_version: ZUF_ABI_VERSION, flags: 0, fs_name: [0; ZUF_FS_NAME_MAX] };
    put_c_str(&mut reg.fs_name, fs_name);
    if let Err(e) = ctl.ioctl(ZUF_IOC_REGISTER_FS, &mut reg) {
        eprintln!("zus: zuf.ko refused to register {fs_name}: {e}");
        return 1;
    }
    // The NUMA map, from the kernel: which node each CPU's channel (and its allocations) is on.
    let mut numa = ZufNumaMap { nr_cpus: 0, nr_nodes: 0, cpu_to_node: [0; ZUF_MAX_CPUS] };
    match ctl.ioctl(ZUF_IOC_NUMA_MAP, &mut numa) {
        Ok(_) => {
            let nodes: Vec<String> = cpus
                .iter()
                .filter(|&&c| c < ZUF_MAX_CPUS)
                .map(|&c| format!("cpu{c}:node{}", numa.cpu_to_node[c]))
                .collect();
            println!("zus: {} CPUs on {} NUMA node(s): {}", numa.nr_cpus, numa.nr_nodes, nodes.join(" "));
        }
        Err(e) => eprintln!("zus: zuf.ko gave no NUMA map ({e}); assuming one node"),
    }
    let mounts = Arc::new(Mounts::<F> { list: RwLock::new(Vec::new()) });
    for &cpu in cpus {
        if let Err(e) = start_channel(format!("zt-{cpu}"), cpu, &mounts, channel::run::<F>) {
            eprintln!("zus: cannot start the thread for cpu {cpu}: {e}");
            return 1;
        }
    }
    if let Some(cpu) = poll_cpu {
        if let Err(e) = start_channel(format!("zt-poll-{cpu}"), cpu, &mounts, channel::run_poller::<F>) {
            eprintln!("zus: cannot start the polling thread on cpu {cpu}: {e}");
            return 1;
        }
        println!("zus: polling for calls from the other CPUs on cpu {cpu}");
    }
    info!("zus: serving {fs_name} through zuf.ko on {} CPUs", cpus.len());
    mount_loop(&ctl, &mounts)
}

/// Run a channel's thread `name`, pinned to `cpu`, serving with `serve` until it stops.
fn start_channel<F: ZusFs + 'static>(
    name: String,
    cpu: usize,
    mounts: &Arc<Mounts<F>>,
    serve: fn(usize, Arc<Mounts<F>>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let m = mounts.clone();
    std::thread::Builder::new().name(name.clone()).spawn(move || {
        crate::fuse::pin::pin_to(cpu);
        if let Err(e) = serve(cpu, m) {
            error!("zus: {name} stopped: {e}");
        }
    })?;
    Ok(())
}

fn mount_loop<F: ZusFs + 'static>(ctl: &ZufFile, mounts: &Mounts<F>) -> i32 {
    let mut req: ZufMountReq = ZufMountReq {
        op: ZUF_M_NONE,
        result: 0,
        sb_id: 0,
        flags: 0,
        dev_size: 0,
        root_ino: 0,
        block_size: 0,
        pad: 0,
        dev_path: [0; ZUF_PATH_MAX],
        options: [0; ZUF_OPTIONS_MAX],
        message: [0; ZUF_PATH_MAX],
    };
    loop {
        if let Err(e) = ctl.ioctl(ZUF_IOC_MOUNT_WAIT, &mut req) {
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => {
                    req.op = ZUF_M_NONE;
                    continue;
                }
                Some(libc::ESHUTDOWN) => return 0,
                _ => {
                    eprintln!("zus: mount channel failed: {e}");
                    return 1;
                }
            }
        }
        let path = c_str(&req.dev_path);
        req.message = [0; ZUF_PATH_MAX];
        req.result = match req.op {
            ZUF_M_MOUNT => match mount_one::<F>(ctl, &req, &path) {
                Ok(fs) => {
                    println!("zus: mounted {path} ({})", crate::server::describe(&fs.mount_report()));
                    mounts.insert(req.sb_id, Arc::new(Mounted::new(fs)));
                    req.root_ino = pmfs::vfs::ROOT_INO;
                    req.block_size = 4096;
                    0
                }
                Err(e) => {
                    eprintln!("zus: cannot mount {path}: {e}");
                    put_c_str(&mut req.message, &e.to_string());
                    -e.errno()
                }
            },
            ZUF_M_UMOUNT => match mounts.remove(req.sb_id) {
                Some(m) => match m.fs.unmount() {
                    Ok(()) => {
                        println!("zus: unmounted {path}");
                        0
                    }
                    Err(e) => -e.errno(),
                },
                None => -libc::EINVAL,
            },
            ZUF_M_REMOUNT => 0,
            _ => -libc::EINVAL,
        };
    }
}

fn mount_one<F: ZusFs>(ctl: &ZufFile, req: &ZufMountReq, path: &str) -> pmfs::Result<F> {
    let mut pfd = ZufPmemFd { sb_id: req.sb_id, fd: -1, pad: 0 };
    ctl.ioctl(ZUF_IOC_PMEM_FD, &mut pfd).map_err(|e| pmfs::Error::Io(format!("PMEM_FD: {e}")))?;
    let file = sys::file_from_fd(pfd.fd).map_err(|e| pmfs::Error::Io(e.to_string()))?;
    let read_only = req.flags & libc::MS_RDONLY != 0;
    let pm = pmfs::persist::PmRegion::map(
        &file,
        req.dev_size,
        !read_only,
        pmfs::persist::Backing::Pmem,
        Path::new(path),
    )?;
    F::mount_mapped(pm, Path::new(path), &MountOptions { read_only, ..Default::default() })
}
