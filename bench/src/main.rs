//! zbench: the measuring half of `make bench` (bench/run.sh drives it, bench/report.py reads
//! what it prints: one JSON object per line).
//!
//! ```text
//! zbench floor    --dir DIR --threads T --secs S --mib M
//!     the persistence floor on a DRAM-emulated region (a file in DIR, mapped through
//!     pmfs::persist::PmRegion): a 4 KiB non-temporal copy + sfence, and a NOVA-style
//!     persisted append (4 KiB data nt-copy, fence, 64 B log entry nt-store, fence, 8 B tail
//!     store + flush, fence), then the same append under a per-file lock (a mutex taken
//!     before the data and released after the tail, as a filesystem serializes a file's writers)
//! zbench inproc   --image IMG --threads T --secs S --mib M
//!     zpmfs in-process (pmfs::Fs): 4 KiB writes, then reads, at random offsets of a
//!     preallocated M MiB file per thread
//! zbench meta     --dir DIR --files N --dirs D --threads T --target NAME
//!     create, stat, open/close, rename, unlink of N empty files (one directory when D = 1,
//!     else spread over D directories), through the system calls
//! zbench populate --image IMG --files N --per-dir K
//!     create N empty files, K per directory, in-process, and unmount cleanly
//! zbench sparse   --file PATH --writes W
//!     W 4 KiB writes at distinct random even page offsets of a sparse file (W extents)
//! zbench sizes
//!     the sizes of zpmfs's per-inode DRAM structures (for the memory figures)
//! zbench numa     --devices A:B --secs S --mib M --rounds R
//!     a device set (mkfs'd across A and B, one per NUMA node) in-process, one thread pinned
//!     to CPU 0: 4 KiB writes at random offsets of an M MiB file (each write places a new
//!     block) with placement on CPU 0's own node (the sysfs map), then with every CPU claimed
//!     by the other node (forced remote placement), alternating R times (compare medians);
//!     then, local again, writes until CPU 0's node is full, to show the spill counters
//! zbench switch   --secs S
//!     the round-trip floor on CPU 0: a system call, and a pipe ping-pong with another process
//!     and with a thread (switchcost.rs)
//! ```

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use pmfs::persist::{Backing, PmRegion};
use pmfs::vfs::{Caller, ROOT_INO};
use pmfs::{Fs, MountOptions};

mod switchcost;

const BLOCK: u64 = 4096;

/// Small, fast, good enough for offsets (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Per-operation latencies of one thread, in nanoseconds.
#[derive(Default)]
struct Lat(Vec<u64>);

impl Lat {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        self.0.push(t.elapsed().as_nanos() as u64);
        r
    }
}

/// Print one result line: op/s over the wall time of all threads, latency over every op.
fn report(target: &str, workload: &str, threads: usize, wall: Duration, lats: Vec<Lat>, extra: &str) {
    let mut all: Vec<u64> = lats.into_iter().flat_map(|l| l.0).collect();
    all.sort_unstable();
    let n = all.len();
    let pct = |p: f64| if n == 0 { 0.0 } else { all[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0 };
    let mean = if n == 0 { 0.0 } else { all.iter().sum::<u64>() as f64 / n as f64 / 1000.0 };
    let secs = wall.as_secs_f64();
    println!(
        "{{\"target\":\"{target}\",\"workload\":\"{workload}\",\"threads\":{threads},\"ops\":{n},\
         \"secs\":{secs:.3},\"ops_per_s\":{:.1},\"mean_us\":{mean:.3},\"p50_us\":{:.3},\"p99_us\":{:.3}{extra}}}",
        n as f64 / secs.max(1e-9),
        pct(0.50),
        pct(0.99)
    );
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills our own set and
    // CPU_ISSET only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pin the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !ok {
        die(&format!("sched_setaffinity(CPU {cpu}): {}", std::io::Error::last_os_error()));
    }
}

/// Run `body(thread, &mut Lat)` on `threads` threads started together, thread i pinned to the
/// i-th CPU this process may use (modulo their number), as fio's jobs are, so that a thread's
/// allocations and frees stay with its CPU's stripe and credit; returns the wall time.
fn run_threads<F>(threads: usize, body: F) -> (Duration, Vec<Lat>)
where
    F: Fn(usize, &mut Lat) + Sync,
{
    let barrier = Barrier::new(threads + 1);
    let cpus = allowed_cpus();
    let mut start = Instant::now();
    let lats = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, body, cpu) = (&barrier, &body, cpus[t % cpus.len()]);
                s.spawn(move || {
                    pin_to(cpu);
                    let mut lat = Lat(Vec::with_capacity(1 << 20));
                    barrier.wait();
                    body(t, &mut lat);
                    lat
                })
            })
            .collect();
        barrier.wait();
        start = Instant::now();
        handles.into_iter().map(|h| h.join().expect("bench thread panicked")).collect::<Vec<_>>()
    });
    (start.elapsed(), lats)
}

struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Args {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            if let Some(k) = k.strip_prefix("--") {
                m.insert(k.to_string(), it.next().cloned().unwrap_or_default());
            }
        }
        Args(m)
    }
    fn str(&self, k: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| die(&format!("--{k} is required")))
    }
    fn num(&self, k: &str, default: u64) -> u64 {
        self.0.get(k).map_or(default, |v| v.parse().unwrap_or_else(|_| die(&format!("--{k}: not a number"))))
    }
}

fn die(msg: &str) -> ! {
    eprintln!("zbench: {msg}");
    std::process::exit(2)
}

/// The persistence floor, on a file in `dir` (tmpfs: DRAM standing in for PM).
fn floor(a: &Args) {
    let dir = PathBuf::from(a.str("dir"));
    let threads = a.num("threads", 1) as usize;
    let secs = Duration::from_secs_f64(a.num("secs", 5) as f64);
    let data_bytes = a.num("mib", 256) << 20;
    let log_bytes: u64 = 1 << 20;
    let per_thread = data_bytes + log_bytes + BLOCK;
    let path = dir.join(format!("zbench-floor.{}", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
    let _ = std::fs::remove_file(&path);
    let len = per_thread * threads as u64;
    file.set_len(len).unwrap_or_else(|e| die(&format!("set_len: {e}")));
    let pm = PmRegion::map(&file, len, true, Backing::Dram, &path).unwrap_or_else(|e| die(&e.to_string()));
    // Touch every page first, so that page faults are not part of the figures.
    pm.zero_nt(0, len).unwrap_or_else(|e| die(&e.to_string()));
    pm.fence();
    let buf = vec![0x5au8; BLOCK as usize];
    let blocks = data_bytes / BLOCK;

    let (wall, lats) = run_threads(threads, |t, lat| {
        let base = t as u64 * per_thread;
        let mut rng = Rng::new(t as u64 + 1);
        let start = Instant::now();
        while start.elapsed() < secs {
            let off = base + rng.below(blocks) * BLOCK;
            lat.time(|| {
                pm.write_nt(off, &buf).expect("in range");
                pm.fence();
            });
        }
    });
    report("floor", "nt_copy_4k_fence", threads, wall, lats, "");

    // NOVA's persisted append, bare and then under a per-file lock as a filesystem holds one
    // (taken before the data, released after the tail). The release is an atomic
    // read-modify-write, which waits for every store ahead of it to drain to memory; the bare
    // append returns with that drain still under way and overlaps it with the next append.
    for locked in [false, true] {
        let file_locks: Vec<std::sync::Mutex<()>> = (0..threads).map(|_| Default::default()).collect();
        let (wall, lats) = run_threads(threads, |t, lat| {
            let base = t as u64 * per_thread;
            let log = base + data_bytes;
            let tail_off = log + log_bytes;
            let entries = log_bytes / 64;
            let mut rng = Rng::new(t as u64 + 7);
            let mut entry = [0u8; 64];
            let mut n = 0u64;
            let start = Instant::now();
            while start.elapsed() < secs {
                let off = base + rng.below(blocks) * BLOCK;
                entry[..8].copy_from_slice(&off.to_le_bytes());
                lat.time(|| {
                    let guard = locked.then(|| file_locks[t].lock().expect("not poisoned"));
                    pm.write_nt(off, &buf).expect("in range");
                    pm.fence();
                    pm.write_nt(log + (n % entries) * 64, &entry).expect("in range");
                    pm.fence();
                    pm.store_u64(tail_off, n + 1).expect("in range");
                    pm.flush(tail_off, 8);
                    pm.fence();
                    drop(guard);
                });
                n += 1;
            }
        });
        let workload = if locked { "nova_append_4k_locked" } else { "nova_append_4k" };
        report("floor", workload, threads, wall, lats, "");
    }
}

fn mount(image: &Path) -> Fs {
    Fs::mount(image, &MountOptions::default())
        .unwrap_or_else(|e| die(&format!("mount {}: {e}", image.display())))
}

/// zpmfs in-process: random 4 KiB writes then reads over a preallocated file per thread.
fn inproc(a: &Args) {
    let image = PathBuf::from(a.str("image"));
    let threads = a.num("threads", 1) as usize;
    let secs = Duration::from_secs_f64(a.num("secs", 5) as f64);
    let file_bytes = a.num("mib", 256) << 20;
    let fs = mount(&image);
    // Fault the whole mapping in first, as the floor touches its region: on real PM there is
    // no page to allocate on first touch, and on tmpfs that would otherwise be timed.
    let pm = fs.device_region();
    let mut byte = [0u8; 1];
    for off in (0..pm.len()).step_by(BLOCK as usize) {
        let _ = pm.read(off, &mut byte);
    }
    let mut inos = Vec::new();
    let chunk = vec![0xa5u8; 1 << 20];
    for t in 0..threads {
        let name = format!("inproc.{t}");
        let attr = match fs.lookup(ROOT_INO, name.as_bytes()) {
            Ok(a) => a,
            Err(_) => fs
                .mknod(ROOT_INO, name.as_bytes(), libc::S_IFREG | 0o644, 0, Caller::ROOT)
                .unwrap_or_else(|e| die(&format!("create {name}: {e}"))),
        };
        // Preallocate by writing the whole file once, as fio lays out its files.
        let mut off = 0;
        while off < file_bytes {
            fs.write(attr.ino, off, &chunk, false).unwrap_or_else(|e| die(&format!("prefill: {e}")));
            off += chunk.len() as u64;
        }
        inos.push(attr.ino);
    }
    let blocks = file_bytes / BLOCK;
    let buf = vec![0x3cu8; BLOCK as usize];
    let (wall, lats) = run_threads(threads, |t, lat| {
        let mut rng = Rng::new(t as u64 + 11);
        let start = Instant::now();
        while start.elapsed() < secs {
            let off = rng.below(blocks) * BLOCK;
            lat.time(|| fs.write(inos[t], off, &buf, false).expect("write"));
        }
    });
    report("zpmfs_inprocess", "randwrite_4k", threads, wall, lats, "");
    let (wall, lats) = run_threads(threads, |t, lat| {
        let mut rng = Rng::new(t as u64 + 13);
        let mut rbuf = vec![0u8; BLOCK as usize];
        let start = Instant::now();
        while start.elapsed() < secs {
            let off = rng.below(blocks) * BLOCK;
            lat.time(|| fs.read(inos[t], off, &mut rbuf).expect("read"));
        }
    });
    report("zpmfs_inprocess", "randread_4k", threads, wall, lats, "");
    fs.unmount().unwrap_or_else(|e| die(&format!("unmount: {e}")));
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in bench paths")
}

/// Metadata operations through the system calls on a mounted filesystem.
fn meta(a: &Args) {
    let root = PathBuf::from(a.str("dir"));
    let files = a.num("files", 10000) as usize;
    let dirs = a.num("dirs", 1).max(1) as usize;
    let threads = a.num("threads", 1).max(1) as usize;
    let target = a.str("target");
    let layout = if dirs == 1 { "onedir" } else { "spread" };
    let base = root.join(format!("meta-{layout}-{threads}"));
    let _ = std::fs::remove_dir_all(&base);
    for d in 0..dirs {
        std::fs::create_dir_all(base.join(format!("d{d}")))
            .unwrap_or_else(|e| die(&format!("mkdir {}: {e}", base.display())));
    }
    let per = files / threads;
    let path = |t: usize, i: usize, renamed: bool| {
        let n = t * per + i;
        base.join(format!("d{}", n % dirs)).join(format!("{}f{n:08}", if renamed { "r" } else { "" }))
    };
    let extra = format!(",\"files\":{files},\"dirs\":{dirs}");
    let phase = |name: &str, op: &(dyn Fn(&CStr, &CStr) -> libc::c_int + Sync)| {
        let (wall, lats) = run_threads(threads, |t, lat| {
            for i in 0..per {
                let (p, q) = (cpath(&path(t, i, false)), cpath(&path(t, i, true)));
                let r = lat.time(|| op(&p, &q));
                if r < 0 {
                    die(&format!("{name} {p:?}: {}", std::io::Error::last_os_error()));
                }
            }
        });
        report(&target, &format!("meta_{name}_{layout}"), threads, wall, lats, &extra);
    };
    // SAFETY (every closure below): the paths are NUL-terminated C strings that outlive the
    // call, `st` is a plain out-parameter, and each descriptor is ours and closed at once.
    phase("create", &|p, _| unsafe {
        let fd = libc::open(p.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY, 0o644);
        if fd >= 0 {
            libc::close(fd)
        } else {
            fd
        }
    });
    phase("stat", &|p, _| unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::stat(p.as_ptr(), &mut st)
    });
    phase("openclose", &|p, _| unsafe {
        let fd = libc::open(p.as_ptr(), libc::O_RDONLY);
        if fd >= 0 {
            libc::close(fd)
        } else {
            fd
        }
    });
    phase("rename", &|p, q| unsafe { libc::rename(p.as_ptr(), q.as_ptr()) });
    phase("unlink", &|_, q| unsafe { libc::unlink(q.as_ptr()) });
    let _ = std::fs::remove_dir_all(&base);
}

/// Create many empty files in-process (for the mount-time and memory measurements).
fn populate(a: &Args) {
    let image = PathBuf::from(a.str("image"));
    let files = a.num("files", 100_000);
    let per_dir = a.num("per-dir", 1000).max(1);
    let fs = mount(&image);
    let start = Instant::now();
    let mut dir = ROOT_INO;
    for i in 0..files {
        if i % per_dir == 0 {
            let name = format!("p{:06}", i / per_dir);
            dir = fs
                .mkdir(ROOT_INO, name.as_bytes(), 0o755, Caller::ROOT)
                .unwrap_or_else(|e| die(&format!("mkdir {name}: {e}")))
                .ino;
        }
        let name = format!("f{i:08}");
        fs.mknod(dir, name.as_bytes(), libc::S_IFREG | 0o644, 0, Caller::ROOT)
            .unwrap_or_else(|e| die(&format!("create {name}: {e}")));
    }
    let secs = start.elapsed().as_secs_f64();
    fs.unmount().unwrap_or_else(|e| die(&format!("unmount: {e}")));
    println!(
        "{{\"target\":\"zpmfs_inprocess\",\"workload\":\"populate\",\"files\":{files},\"per_dir\":{per_dir},\
         \"secs\":{secs:.3},\"ops_per_s\":{:.1}}}",
        files as f64 / secs.max(1e-9)
    );
}

/// W 4 KiB writes at distinct even pages of a sparse file: W separate extents.
fn sparse(a: &Args) {
    let path = PathBuf::from(a.str("file"));
    let writes = a.num("writes", 10000);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
    // A random permutation of page indices 0..W, each written at page 2k: no two adjacent.
    let mut pages: Vec<u64> = (0..writes).collect();
    let mut rng = Rng::new(99);
    for i in (1..pages.len()).rev() {
        pages.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let buf = vec![0x77u8; BLOCK as usize];
    let start = Instant::now();
    for p in pages {
        file.write_all_at(&buf, 2 * p * BLOCK).unwrap_or_else(|e| die(&format!("write: {e}")));
    }
    println!(
        "{{\"target\":\"sparse\",\"workload\":\"sparse_fill\",\"writes\":{writes},\"secs\":{:.3}}}",
        start.elapsed().as_secs_f64()
    );
}

/// Sizes of the DRAM structures that a cached inode and a directory entry cost.
fn sizes() {
    use std::mem::size_of;
    println!(
        "{{\"kind\":\"sizes\",\"inode_state\":{},\"dir_index\":{},\"extent_map\":{},\"log_state\":{},\"dir_slot\":{}}}",
        size_of::<pmfs::inode::InodeState>(),
        size_of::<pmfs::dir::DirIndex>(),
        size_of::<pmfs::extents::ExtentMap>(),
        size_of::<pmfs::log::LogState>(),
        size_of::<pmfs::dir::DirSlot>(),
    );
}

/// A device set, local against forced remote placement, from a thread on CPU 0.
fn numa(a: &Args) {
    let devices: Vec<PathBuf> = a.str("devices").split(':').map(PathBuf::from).collect();
    let secs = Duration::from_secs_f64(a.num("secs", 5) as f64);
    let file_bytes = a.num("mib", 64) << 20;
    let truth = pmfs::numa::NumaMap::from_sysfs();
    let here = truth.node_of(0);
    // Every CPU on some other node that holds a member: CPU 0's writes all go remote.
    let probe =
        Fs::mount_devices(&devices, &MountOptions { numa: Some(truth.clone()), ..Default::default() })
            .unwrap_or_else(|e| die(&format!("mount {}: {e}", a.str("devices"))));
    let nodes: Vec<u32> = probe.node_stats().iter().map(|s| s.node).collect();
    probe.unmount().unwrap_or_else(|e| die(&format!("unmount: {e}")));
    drop(probe);
    let Some(&far) = nodes.iter().find(|&&n| n != here) else {
        die(&format!("the set's members are all on node {here}: nothing is remote"))
    };
    if !nodes.contains(&here) {
        die(&format!("no member of the set is on CPU 0's node {here}"));
    }
    let remote =
        pmfs::numa::NumaMap { cpu_node: vec![far; truth.cpu_node.len()], distances: truth.distances.clone() };
    zus_core::fuse::pin::pin_to(0);
    let buf = vec![0x3cu8; BLOCK as usize];
    let rounds = a.num("rounds", 3).max(1);
    let runs = (0..rounds).flat_map(|_| [("zpmfs_numa_local", &truth), ("zpmfs_numa_remote", &remote)]);
    for (round, (target, map)) in runs.enumerate() {
        let fs = Fs::mount_devices(&devices, &MountOptions { numa: Some(map.clone()), ..Default::default() })
            .unwrap_or_else(|e| die(&format!("mount: {e}")));
        let name = format!("{target}.dat");
        let ino = fs
            .mknod(ROOT_INO, name.as_bytes(), libc::S_IFREG | 0o644, 0, Caller::ROOT)
            .unwrap_or_else(|e| die(&format!("create {name}: {e}")))
            .ino;
        let chunk = vec![0xa5u8; 1 << 20];
        for off in (0..file_bytes).step_by(chunk.len()) {
            fs.write(ino, off, &chunk, false).unwrap_or_else(|e| die(&format!("prefill: {e}")));
        }
        let blocks = file_bytes / BLOCK;
        let before = fs.node_stats();
        let mut rng = Rng::new(17);
        let mut lat = Lat::default();
        let start = Instant::now();
        while start.elapsed() < secs {
            let off = rng.below(blocks) * BLOCK;
            lat.time(|| fs.write(ino, off, &buf, false).expect("write"));
        }
        let wall = start.elapsed();
        let after = fs.node_stats();
        let placed: Vec<String> = after
            .iter()
            .zip(&before)
            .map(|(n, b)| format!("\"node{}_blocks\":{}", n.node, n.local + n.spilled - b.local - b.spilled))
            .collect();
        // Where this run's blocks went, by the node they were taken from.
        let on: Vec<String> = after
            .iter()
            .zip(&before)
            .map(|(n, b)| format!("\"node{}_free_delta\":{}", n.node, b.free as i64 - n.free as i64))
            .collect();
        let extra = format!(
            ",\"round\":{},\"cpu0_node\":{here},\"placed_on\":{},{},{}",
            round / 2,
            map.node_of(0),
            placed.join(","),
            on.join(",")
        );
        report(target, "randwrite_4k", 1, wall, vec![lat], &extra);
        fs.unlink(ROOT_INO, name.as_bytes()).unwrap_or_else(|e| die(&format!("unlink: {e}")));
        fs.unmount().unwrap_or_else(|e| die(&format!("unmount: {e}")));
    }
    // Spill: CPU 0 writes until its node is full; the rest goes to the other node, counted.
    let fs = Fs::mount_devices(&devices, &MountOptions { numa: Some(truth.clone()), ..Default::default() })
        .unwrap_or_else(|e| die(&format!("mount: {e}")));
    let mine = fs.node_stats().into_iter().find(|s| s.node == here).map_or(0, |s| s.free);
    let ino = fs
        .mknod(ROOT_INO, b"spill.dat", libc::S_IFREG | 0o644, 0, Caller::ROOT)
        .unwrap_or_else(|e| die(&format!("create: {e}")))
        .ino;
    let chunk = vec![0x5au8; 1 << 20];
    let want = (mine * BLOCK + (16 << 20)).min(fs.statfs().map_or(0, |s| s.blocks_avail * BLOCK));
    let mut off = 0;
    while off + chunk.len() as u64 <= want {
        fs.write(ino, off, &chunk, false).unwrap_or_else(|e| die(&format!("spill write at {off}: {e}")));
        off += chunk.len() as u64;
    }
    for s in fs.node_stats() {
        println!(
            "{{\"target\":\"zpmfs_numa_spill\",\"kind\":\"numa_spill\",\"node\":{},\"blocks\":{},\"free\":{},\"local\":{},\"spilled\":{},\"written_mib\":{}}}",
            s.node,
            s.blocks,
            s.free,
            s.local,
            s.spilled,
            off >> 20
        );
    }
    fs.unlink(ROOT_INO, b"spill.dat").unwrap_or_else(|e| die(&format!("unlink: {e}")));
    fs.unmount().unwrap_or_else(|e| die(&format!("unmount: {e}")));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let a = Args::parse(&args[2.min(args.len())..]);
    match args.get(1).map(String::as_str) {
        Some("floor") => floor(&a),
        Some("inproc") => inproc(&a),
        Some("meta") => meta(&a),
        Some("populate") => populate(&a),
        Some("sparse") => sparse(&a),
        Some("sizes") => sizes(),
        Some("numa") => numa(&a),
        Some("switch") => switchcost::switch(&a),
        _ => die("usage: zbench floor|inproc|meta|populate|sparse|sizes|numa|switch [--key value ...] (see bench/src/main.rs)"),
    }
}
