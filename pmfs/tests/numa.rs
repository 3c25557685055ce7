//! Device sets on the host: two image files standing for the PM of two NUMA nodes, and a
//! CPU map (CPU 0 on node 0, CPU 1 on node 1) standing for a two-socket machine. Each writer
//! is pinned to one CPU; its file's blocks must all lie on its node's image.

use std::path::PathBuf;

use pmfs::device::{with_placement_cpu, Device};
use pmfs::format::{format_set, FormatOptions};
use pmfs::fsck::{fsck_devices, FsckMode, FsckOptions};
use pmfs::layout::BLOCK_SIZE;
use pmfs::numa::NumaMap;
use pmfs::vfs::{Caller, Ino, ROOT_INO};
use pmfs::{Fs, MountOptions};

const ME: Caller = Caller::ROOT;
const MEMBER: u64 = 32 << 20;

/// Image files for a set, removed on drop.
struct SetImages {
    paths: Vec<PathBuf>,
}

impl SetImages {
    fn new(tag: &str, sizes: &[u64], nodes: &[u32]) -> SetImages {
        let paths = Self::files(tag, sizes);
        let devs: Vec<Device> = paths.iter().map(|p| Device::open(p, true).unwrap()).collect();
        let refs: Vec<&Device> = devs.iter().collect();
        format_set(&refs, nodes, &FormatOptions { cpus: Some(2), ..Default::default() }).unwrap();
        SetImages { paths }
    }
    fn files(tag: &str, sizes: &[u64]) -> Vec<PathBuf> {
        let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let p = PathBuf::from(format!("{dir}/pmfs-numa-{tag}-{}-{i}.img", std::process::id()));
                std::fs::File::create(&p).unwrap().set_len(size).unwrap();
                p
            })
            .collect()
    }
    fn mount(&self) -> Fs {
        Fs::mount_devices(&self.paths, &two_nodes()).unwrap()
    }
    fn check(&self) -> Vec<String> {
        let r = fsck_devices(&self.paths, &FsckOptions { mode: FsckMode::Check, force: true }, None).unwrap();
        r.problems.into_iter().map(|p| p.what).collect()
    }
}

impl Drop for SetImages {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// CPU 0 on node 0, CPU 1 on node 1.
fn two_nodes() -> MountOptions {
    MountOptions { numa: Some(NumaMap::from_cpu_nodes("0,1").unwrap()), ..Default::default() }
}

/// Run `f` on a thread pinned to `cpu` where the machine has it, else standing in for it.
fn on_cpu<R: Send>(cpu: usize, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            if cpu < cpus {
                let mut set = nix::sched::CpuSet::new();
                set.set(cpu).unwrap();
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
                f()
            } else {
                with_placement_cpu(Some(cpu), f)
            }
        })
        .join()
        .unwrap()
    })
}

/// The set block of every page of `ino`.
fn blocks_of(fs: &Fs, ino: Ino, bytes: u64) -> Vec<u64> {
    (0..bytes.div_ceil(BLOCK_SIZE))
        .map(|p| fs.get_data_block(ino, p * BLOCK_SIZE, false).unwrap().unwrap().device_offset / BLOCK_SIZE)
        .collect()
}

fn write_file(fs: &Fs, name: &[u8], bytes: u64, fill: u8) -> Ino {
    let ino = fs.mknod(ROOT_INO, name, libc::S_IFREG | 0o644, 0, ME).unwrap().ino;
    let chunk = vec![fill; 64 << 10];
    let mut off = 0;
    while off < bytes {
        let n = chunk.len().min((bytes - off) as usize);
        fs.write(ino, off, &chunk[..n], false).unwrap();
        off += n as u64;
    }
    ino
}

#[test]
fn each_writer_s_blocks_land_on_its_own_node() {
    let set = SetImages::new("place", &[MEMBER, MEMBER], &[0, 1]);
    let fs = set.mount();
    let member0 = MEMBER / BLOCK_SIZE;
    let a = on_cpu(0, || write_file(&fs, b"on-node-0", 4 << 20, 0xa0));
    let b = on_cpu(1, || write_file(&fs, b"on-node-1", 4 << 20, 0xb1));
    let (ba, bb) = (blocks_of(&fs, a, 4 << 20), blocks_of(&fs, b, 4 << 20));
    assert!(ba.iter().all(|&x| x < member0), "a block of the CPU 0 writer is on node 1");
    assert!(bb.iter().all(|&x| x >= member0), "a block of the CPU 1 writer is on node 0");
    let stats = fs.node_stats();
    assert_eq!(stats.iter().map(|s| s.node).collect::<Vec<_>>(), vec![0, 1]);
    assert!(stats[0].local >= 1024 && stats[1].local >= 1024, "{stats:?}");
    assert_eq!((stats[0].spilled, stats[1].spilled), (0, 0), "{stats:?}");
    let free: u64 = stats.iter().map(|s| s.free).sum();
    assert_eq!(free, fs.statfs().unwrap().blocks_free, "per-node free blocks add up to statfs");
    fs.unmount().unwrap();
    drop(fs);
    assert_eq!(set.check(), Vec::<String>::new());
    let fs = set.mount();
    let mut buf = vec![0u8; 4096];
    fs.read(b, (4 << 20) - 4096, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0xb1), "node 1's data after a clean remount");
}

#[test]
fn a_full_node_spills_to_the_other_and_counts_it() {
    let set = SetImages::new("spill", &[MEMBER, MEMBER], &[0, 1]);
    let fs = set.mount();
    // Node 1 holds 32 MiB less its header: 40 MiB from CPU 1 must spill about 8 MiB.
    let ino = on_cpu(1, || write_file(&fs, b"big", 40 << 20, 0x5a));
    let stats = fs.node_stats();
    assert!(stats[1].spilled >= (8 << 20) / BLOCK_SIZE - 16, "{stats:?}");
    assert!(stats[1].free < 64, "node 1 filled before spilling: {stats:?}");
    let mut buf = vec![0u8; 64 << 10];
    for off in (0..40u64 << 20).step_by(64 << 10) {
        fs.read(ino, off, &mut buf).unwrap();
        assert!(buf.iter().all(|&x| x == 0x5a), "data at {off} after spilling");
    }
    fs.unmount().unwrap();
    drop(fs);
    assert_eq!(set.check(), Vec::<String>::new());
}

#[test]
fn a_crash_is_recovered_across_the_set() {
    let set = SetImages::new("crash", &[MEMBER, MEMBER], &[0, 1]);
    let fs = set.mount();
    on_cpu(1, || write_file(&fs, b"kept", 1 << 20, 0x77));
    let gone = on_cpu(0, || write_file(&fs, b"unlinked", 1 << 20, 0x11));
    let _ = gone;
    fs.unlink(ROOT_INO, b"unlinked").unwrap();
    drop(fs); // no unmount: as if zus died
    let fs = set.mount();
    assert!(!fs.mount_report().was_clean);
    let ino = fs.lookup(ROOT_INO, b"kept").unwrap().ino;
    let mut buf = vec![0u8; 4096];
    fs.read(ino, 0, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0x77));
    assert!(fs.lookup(ROOT_INO, b"unlinked").is_err());
    fs.unmount().unwrap();
    drop(fs);
    assert_eq!(set.check(), Vec::<String>::new());
}

fn mount_error(paths: &[PathBuf]) -> String {
    match Fs::mount_devices(paths, &two_nodes()) {
        Ok(_) => panic!("mounted {paths:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_duplicated_or_foreign_member_is_refused_by_name() {
    let set = SetImages::new("members", &[MEMBER, MEMBER], &[0, 1]);
    let other = SetImages::new("other", &[MEMBER, MEMBER], &[0, 1]);
    let e = mount_error(&set.paths[..1]);
    assert!(e.contains("member 1 of 2") && e.contains("missing") && e.contains("NUMA node 1"), "{e}");
    let e = mount_error(&set.paths[1..]);
    assert!(e.contains("first member") && e.contains("missing"), "{e}");
    let e = mount_error(&[set.paths[0].clone(), other.paths[1].clone()]);
    assert!(e.contains("not one device set"), "{e}");
    let copy = PathBuf::from(format!("{}.copy", set.paths[1].display()));
    std::fs::copy(&set.paths[1], &copy).unwrap();
    let e = mount_error(&[set.paths[0].clone(), set.paths[1].clone(), copy.clone()]);
    std::fs::remove_file(&copy).unwrap();
    assert!(e.contains("both hold member 1"), "{e}");
    // Members may be named in any order.
    let fs = Fs::mount_devices(&[set.paths[1].clone(), set.paths[0].clone()], &two_nodes()).unwrap();
    assert_eq!(fs.node_stats().len(), 2);
}

#[test]
fn the_first_member_alone_says_it_is_part_of_a_set() {
    let set = SetImages::new("alone", &[MEMBER, MEMBER], &[0, 1]);
    // As zuf.ko would hand it over: the first device mapped on its own.
    let dev = Device::open(&set.paths[0], true).unwrap();
    let e = Fs::mount_mapped(dev.map().unwrap(), &set.paths[0], &MountOptions::default()).err().unwrap();
    assert!(e.to_string().contains("first member of a device set"), "{e}");
}

#[test]
fn a_damaged_member_header_is_named() {
    let set = SetImages::new("header", &[MEMBER, MEMBER], &[0, 1]);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&set.paths[1]).unwrap();
        // Both copies of the header: nothing says what the device is any more.
        f.write_all_at(&[0xff; 16], 20).unwrap();
        f.write_all_at(&[0xff; 16], 4096 + 20).unwrap();
    }
    let e = mount_error(&set.paths);
    assert!(e.contains(&set.paths[1].display().to_string()) && e.contains("not a zpmfs device"), "{e}");
}
