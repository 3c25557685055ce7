//! What survives: a clean unmount and mount again; zus killed with SIGKILL while a writer runs.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zpmfs_tests::*;

/// The user.* attributes of a path, sorted, with values.
fn xattrs(path: &Path) -> Vec<(String, String)> {
    let out =
        run(std::process::Command::new("getfattr").args(["-d", "--absolute-names", "-m", "-"]).arg(path))
            .ok();
    let mut v: Vec<(String, String)> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    v.sort();
    v
}

#[test]
fn unmount_and_mount_again_keeps_everything() {
    require_tool("getfattr");
    let t = TestFs::new("remount");
    fs::create_dir(t.path("tree")).unwrap();
    make_tree(&t.path("tree"), 600, 5);
    let mut rng = Rng::new(6);
    fs::write(t.path("big.bin"), rng.bytes(3 << 20)).unwrap();
    let sparse = OpenOptions::new().write(true).create(true).truncate(true).open(t.path("sparse")).unwrap();
    sparse.write_all_at(b"far away", 300 << 20).unwrap();
    drop(sparse);
    sh(&t.mnt, "setfattr -n user.note -v kept tree/name\\ with\\ spaces.txt && mkfifo tree/fifo");
    fs::rename(t.path("tree/dir1"), t.path("tree/dir1-renamed")).unwrap();
    fs::remove_dir_all(t.path("tree/dir2")).unwrap();
    let expected = manifest(&t.mnt);
    let expected_xattrs = xattrs(&t.path("tree/name with spaces.txt"));
    assert_eq!(expected_xattrs, [("user.note".to_string(), "\"kept\"".to_string())]);
    let st_before = t.statvfs();

    for round in 0..2 {
        t.unmount();
        t.mount();
        assert_same_tree(&expected, &manifest(&t.mnt));
        assert_eq!(xattrs(&t.path("tree/name with spaces.txt")), expected_xattrs, "round {round}");
        let st = t.statvfs();
        assert_eq!(st.f_ffree, st_before.f_ffree, "free inodes survive, round {round}");
        assert!(
            st.f_bfree >= st_before.f_bfree,
            "no blocks leak across a remount: {} -> {}",
            st_before.f_bfree,
            st.f_bfree
        );
    }
    // Still writable after the remount.
    fs::write(t.path("after"), b"after remount").unwrap();
    t.unmount();
    t.mount();
    assert_eq!(fs::read(t.path("after")).unwrap(), b"after remount");
}

/// Record `i` of the writer: its number, then a pattern that depends on it.
fn record(i: u64) -> Vec<u8> {
    let mut r = vec![0u8; 4096];
    r[..8].copy_from_slice(&i.to_le_bytes());
    for (j, b) in r[8..].iter_mut().enumerate() {
        *b = (i as usize * 31 + j) as u8;
    }
    r
}

#[test]
fn kill_9_of_zus_keeps_every_completed_write() {
    let t = TestFs::new("kill9");
    fs::create_dir(t.path("tree")).unwrap();
    make_tree(&t.path("tree"), 300, 7);
    let before = manifest(&t.path("tree"));

    // The writer: numbered 4 KiB records, each followed by fdatasync; after each completes its
    // count goes to a side file outside the mount.
    let side = ScratchDir::new("kill9-side");
    let side_file = side.path.join("completed");
    let completed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, side_file, completed, stop) =
            (t.path("records"), side_file.clone(), completed.clone(), stop.clone());
        std::thread::spawn(move || -> String {
            let f = match OpenOptions::new().write(true).create(true).truncate(true).open(&path) {
                Ok(f) => f,
                Err(e) => return format!("open: {e}"),
            };
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = f.write_all_at(&record(i), i * 4096) {
                    return format!("write of record {i}: {e}");
                }
                // SAFETY: fdatasync on an fd we own.
                if unsafe { libc::fdatasync(f.as_raw_fd()) } != 0 {
                    return format!("fdatasync after record {i}: {}", std::io::Error::last_os_error());
                }
                i += 1;
                completed.store(i, Ordering::SeqCst);
                append_line(&side_file, &i.to_string());
            }
            "stopped".to_string()
        })
    };
    let start = Instant::now();
    while completed.load(Ordering::SeqCst) < 300 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(completed.load(Ordering::SeqCst) >= 300, "the writer made progress before the kill");
    assert!(t.kill_server() > 0, "found the zus serving {}", t.mnt.display());
    // The writer must end on its own with an error; `stop` is only a deadline so that a writer
    // that never notices the dead server fails the test instead of hanging it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !writer.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let why = writer.join().unwrap();
    assert_ne!(why, "stopped", "the writer was still writing 20 s after zus died");

    let done: u64 = fs::read_to_string(&side_file).unwrap().lines().last().unwrap().parse().unwrap();
    // The dead mount: umount (lazy if it must), then mount again, which recovers.
    let out = run(std::process::Command::new("umount").arg(&t.mnt));
    if !out.success() {
        run(std::process::Command::new("umount").arg("-l").arg(&t.mnt)).ok();
    }
    assert!(!is_mount_point(&t.mnt));
    t.mount();

    let data = fs::read(t.path("records")).unwrap();
    assert!(
        data.len() as u64 >= done * 4096,
        "records file has {} bytes, {done} records completed",
        data.len()
    );
    for i in 0..done {
        let at = (i * 4096) as usize;
        assert!(
            data[at..at + 4096] == record(i)[..],
            "record {i} of {done} completed records is wrong after the kill"
        );
    }
    assert_same_tree(&before, &manifest(&t.path("tree")));
    // The tree is usable: write, rename, delete.
    fs::write(t.path("tree/new"), b"new").unwrap();
    fs::rename(t.path("tree/new"), t.path("tree/newer")).unwrap();
    fs::remove_dir_all(t.path("tree/dir0")).unwrap();
    assert_eq!(fs::metadata(t.path("records")).unwrap().nlink(), 1);
    // And a clean unmount after the recovery mounts clean again.
    t.unmount();
    t.mount();
    assert_eq!(fs::read(t.path("tree/newer")).unwrap(), b"new");
}

/// The shutdown ioctl XFS and ext4 share (fstests' godown), on the mount point: every later
/// call fails with EIO; unmount works; fsck finds nothing; what returned before is there.
#[test]
fn shutdown_ioctl_fails_later_calls_with_eio_and_keeps_what_came_before() {
    const IOC_GOINGDOWN: libc::c_ulong = 0x8004_587d;
    let t = TestFs::new("shutdown");
    fs::write(t.path("kept"), b"before the shutdown").unwrap();
    let dir = fs::File::open(&t.mnt).unwrap();
    let mut flags: u32 = 1; // flush the log: zpmfs has nothing to flush
                            // SAFETY: the ioctl reads (at most) the u32 that `flags` points to, which outlives the call.
    let r = unsafe { libc::ioctl(dir.as_raw_fd(), IOC_GOINGDOWN, &mut flags as *mut u32) };
    assert_eq!(r, 0, "shutdown ioctl: {}", std::io::Error::last_os_error());
    drop(dir);
    let err = fs::write(t.path("after"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "a create after shutdown: {err}");
    let err = fs::read(t.path("kept")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "a read after shutdown: {err}");
    t.unmount();
    let out = run(std::process::Command::new(bin("fsck.zpmfs")).args(["-n", "-f"]).arg(&t.image)).ok();
    assert!(out.stdout.contains(" 0 problem(s)"), "fsck.zpmfs -n -f:\n{}", out.text());
    t.mount();
    assert_eq!(fs::read(t.path("kept")).unwrap(), b"before the shutdown");
    assert!(!t.path("after").exists());
}
