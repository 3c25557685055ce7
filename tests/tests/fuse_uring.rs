//! FUSE over io_uring: zus mounted with `fuse_channel=uring` serves ordinary file work through
//! its per-CPU rings (`zus status` shows the rings carried the requests), unmounts cleanly and
//! leaves an image fsck finds clean; `fuse_channel=dev` never touches a ring; and with the
//! kernel's switch off, `auto` serves over /dev/fuse while `uring` refuses to mount.
//!
//! The switch (/sys/module/fuse/parameters/enable_uring) is set to Y when it is N and we are
//! root; where it cannot be, the tests that need it say so and skip. The whole suite runs over
//! either channel with `ZPMFS_FUSE_CHANNEL=uring` or `=dev` (see the README).

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use zpmfs_tests::*;

/// Held while a test depends on the switch staying as it is (shared) or flips it (exclusive),
/// so that tests of this file running side by side do not see it change under them.
struct SwitchLock {
    _held: File,
}

impl SwitchLock {
    fn take(exclusive: bool) -> SwitchLock {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/zpmfs-test-enable-uring.lock")
            .expect("lock file");
        let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        SwitchLock { _held: f }
    }
}

fn setxattr(path: &Path, name: &str, value: &[u8]) {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = CString::new(name).expect("name");
    // SAFETY: NUL-terminated strings and a buffer of value.len() bytes, all alive for the call.
    let rc = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(rc, 0, "setxattr {name} on {}: {}", path.display(), std::io::Error::last_os_error());
}

fn getxattr(path: &Path, name: &str) -> Vec<u8> {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = CString::new(name).expect("name");
    let mut buf = vec![0u8; 256];
    // SAFETY: as above; the kernel writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(rc >= 0, "getxattr {name} on {}: {}", path.display(), std::io::Error::last_os_error());
    buf.truncate(rc as usize);
    buf
}

fn fsck_clean(t: &TestFs) {
    let out = run(Command::new(bin("fsck.zpmfs")).args(["-n", "-f"]).arg(&t.image)).ok();
    assert!(out.text().contains(" 0 problem(s)"), "fsck.zpmfs -n -f:\n{}", out.text());
}

#[track_caller]
fn mount_with(t: &TestFs, channel: &str) {
    let out = t.try_mount(&["-o", &format!("fuse_channel={channel}")]);
    assert!(
        out.success() && is_mount_point(&t.mnt),
        "mount with fuse_channel={channel} failed:\n{}",
        out.text()
    );
}

/// The data a worker writes to file `i`: recognisable, different per file.
fn pattern(worker: usize, i: usize, len: usize) -> Vec<u8> {
    Rng::new((worker * 1000 + i) as u64 + 1).bytes(len)
}

/// Files, directories, renames, xattrs, truncates, fsyncs and a few threads at once.
fn file_work(root: &Path) {
    fs::create_dir(root.join("dir")).expect("mkdir");
    let a = root.join("dir/a");
    let data = pattern(0, 0, 300 * 1024);
    let mut f = File::create(&a).expect("create");
    f.write_all(&data).expect("write");
    f.sync_all().expect("fsync");
    drop(f);
    assert_bytes(&fs::read(&a).expect("read back"), &data, "dir/a");

    fs::rename(&a, root.join("dir/b")).expect("rename");
    let names: Vec<String> = fs::read_dir(root.join("dir"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["b"], "readdir after rename");

    let b = root.join("dir/b");
    setxattr(&b, "user.colour", b"blue");
    assert_eq!(getxattr(&b, "user.colour"), b"blue");

    let f = OpenOptions::new().write(true).open(&b).expect("open");
    f.set_len(1000).expect("truncate down");
    f.set_len(5000).expect("truncate up");
    f.sync_data().expect("fdatasync");
    drop(f);
    let got = fs::read(&b).expect("read truncated");
    assert_eq!(got.len(), 5000);
    assert_bytes(&got[..1000], &data[..1000], "kept part");
    assert!(got[1000..].iter().all(|&x| x == 0), "the extension reads as zeros");

    let mut f = OpenOptions::new().read(true).write(true).open(&b).expect("open rw");
    f.seek(SeekFrom::Start(4096)).expect("seek");
    f.write_all(b"middle").expect("write at offset");
    let mut back = [0u8; 6];
    f.seek(SeekFrom::Start(4096)).expect("seek");
    f.read_exact(&mut back).expect("read at offset");
    assert_eq!(&back, b"middle");

    std::thread::scope(|s| {
        for w in 1..=4 {
            s.spawn(move || {
                let dir = root.join(format!("w{w}"));
                fs::create_dir(&dir).expect("worker mkdir");
                for i in 0..40 {
                    let p = dir.join(format!("f{i}"));
                    let d = pattern(w, i, 1 + (i * 997) % 20000);
                    fs::write(&p, &d).expect("worker write");
                    assert_bytes(&fs::read(&p).expect("worker read"), &d, "worker file");
                    if i % 3 == 0 {
                        fs::remove_file(&p).expect("worker unlink");
                    }
                }
            });
        }
    });
    fs::remove_file(root.join("w1/f1")).expect("unlink");
    assert!(!root.join("w1/f1").exists());
}

/// What `file_work` leaves, checked after a remount.
fn check_left(root: &Path) {
    assert_eq!(fs::metadata(root.join("dir/b")).expect("dir/b").len(), 5000);
    for w in 1..=4usize {
        for i in 0..40usize {
            let p = root.join(format!("w{w}/f{i}"));
            let gone = i % 3 == 0 || (w == 1 && i == 1);
            assert_eq!(p.exists(), !gone, "{}", p.display());
            if !gone {
                assert_bytes(
                    &fs::read(&p).expect("read"),
                    &pattern(w, i, 1 + (i * 997) % 20000),
                    "after remount",
                );
            }
        }
    }
}

#[test]
fn ring_carries_ordinary_file_work() {
    let _lock = SwitchLock::take(false);
    if let Err(why) = ensure_fuse_uring() {
        eprintln!("SKIPPED: FUSE over io_uring unavailable: {why}");
        return;
    }
    let t = TestFs::formatted("uring-work", "256M");
    mount_with(&t, "uring");
    let before = zus_status(&t.mnt);
    assert!(before.contains("fuse_channel=io_uring"), "zus status:\n{before}");
    assert!(status_number(&before, "queues") >= 1, "zus status:\n{before}");

    file_work(&t.mnt);

    let after = zus_status(&t.mnt);
    let (ring, dev) = (status_number(&after, "requests_uring"), status_number(&after, "requests_dev"));
    // Everything but FORGET (and INTERRUPT) travels by the rings once they are registered.
    assert!(ring > 500, "the rings carried only {ring} requests:\n{after}");
    assert!(dev * 4 < ring, "/dev/fuse carried {dev} requests, the rings {ring}:\n{after}");

    t.unmount();
    fsck_clean(&t);
    mount_with(&t, "uring");
    check_left(&t.mnt);
    t.unmount();
    fsck_clean(&t);
}

#[test]
fn dev_channel_never_uses_the_ring() {
    let t = TestFs::formatted("uring-dev", "128M");
    mount_with(&t, "dev");
    fs::write(t.path("x"), b"over /dev/fuse").expect("write");
    assert_eq!(fs::read(t.path("x")).expect("read"), b"over /dev/fuse");
    let s = zus_status(&t.mnt);
    assert!(s.contains("fuse_channel=/dev/fuse"), "zus status:\n{s}");
    assert_eq!(status_number(&s, "requests_uring"), 0, "zus status:\n{s}");
    assert!(status_number(&s, "requests_dev") > 0, "zus status:\n{s}");
    t.unmount();
    fsck_clean(&t);
}

/// Puts the switch back as it was, whatever happens.
struct RestoreSwitch(String);

impl Drop for RestoreSwitch {
    fn drop(&mut self) {
        let _ = fs::write(ENABLE_URING, &self.0);
    }
}

#[test]
fn auto_falls_back_when_the_kernel_offers_no_ring() {
    if fuse_channel_from_env().as_deref() == Some("uring") {
        eprintln!(
            "SKIPPED: ZPMFS_FUSE_CHANNEL=uring: switching io_uring off would fail the other tests' mounts"
        );
        return;
    }
    let _lock = SwitchLock::take(true);
    let Ok(was) = fs::read_to_string(ENABLE_URING) else {
        eprintln!("SKIPPED: this kernel has no {ENABLE_URING}");
        return;
    };
    if fs::write(ENABLE_URING, "N").is_err() {
        eprintln!("SKIPPED: cannot set {ENABLE_URING} (not root?)");
        return;
    }
    let restore = RestoreSwitch(was.trim().to_string());

    let t = TestFs::formatted("uring-fallback", "128M");
    mount_with(&t, "auto");
    fs::write(t.path("x"), b"fell back").expect("write");
    assert_eq!(fs::read(t.path("x")).expect("read"), b"fell back");
    let s = zus_status(&t.mnt);
    assert!(s.contains("fuse_channel=/dev/fuse"), "zus status:\n{s}");
    assert_eq!(status_number(&s, "requests_uring"), 0, "zus status:\n{s}");
    t.unmount();
    fsck_clean(&t);

    // `uring` insists: no mount, and the reason.
    let out = t.try_mount(&["-o", "fuse_channel=uring"]);
    assert!(!out.success() && !is_mount_point(&t.mnt), "mounted without a ring:\n{}", out.text());
    assert!(out.text().contains("io_uring"), "the error names io_uring:\n{}", out.text());
    drop(restore);
}

/// open(dir, O_TMPFILE | O_RDWR, 0640): the descriptor, or the errno.
fn open_tmpfile(dir: &Path) -> Result<File, std::io::Error> {
    use std::os::fd::FromRawFd;
    let d = CString::new(dir.as_os_str().as_bytes()).expect("path");
    // SAFETY: a NUL-terminated path alive for the call; a descriptor we then own.
    let fd = unsafe { libc::open(d.as_ptr(), libc::O_TMPFILE | libc::O_RDWR, 0o640) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// linkat(fd, "", AT_FDCWD, to, AT_EMPTY_PATH): the way to name an O_TMPFILE file.
fn link_fd(f: &File, to: &Path) {
    let empty = CString::new("").expect("empty");
    let t = CString::new(to.as_os_str().as_bytes()).expect("path");
    // SAFETY: NUL-terminated strings alive for the call; no memory is written.
    let rc = unsafe {
        libc::linkat(f.as_raw_fd(), empty.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::AT_EMPTY_PATH)
    };
    assert_eq!(rc, 0, "linkat to {}: {}", to.display(), std::io::Error::last_os_error());
}

#[test]
fn o_tmpfile_works_over_the_ring_and_is_refused_over_dev_fuse() {
    let _lock = SwitchLock::take(false);
    if let Err(why) = ensure_fuse_uring() {
        eprintln!("SKIPPED: FUSE over io_uring unavailable: {why}");
        return;
    }
    let t = TestFs::formatted("uring-tmpfile", "128M");
    mount_with(&t, "uring");
    let free_before = statvfs_free(&t.mnt);
    // A nameless file: written, read back, then given a name that survives a remount.
    let mut f = open_tmpfile(&t.mnt).expect("O_TMPFILE over the ring");
    f.write_all(b"made nameless").expect("write");
    f.seek(SeekFrom::Start(0)).expect("seek");
    let mut back = String::new();
    f.read_to_string(&mut back).expect("read");
    assert_eq!(back, "made nameless");
    assert!(fs::read_dir(&t.mnt).expect("readdir").next().is_none(), "a tmpfile shows in the directory");
    link_fd(&f, &t.path("named"));
    drop(f);
    // Another, never named and 1 MiB: its blocks come back when it is closed.
    let mut g = open_tmpfile(&t.mnt).expect("second O_TMPFILE");
    g.write_all(&vec![7u8; 1 << 20]).expect("write 1 MiB");
    drop(g);
    t.unmount();
    fsck_clean(&t);
    mount_with(&t, "uring");
    assert_eq!(fs::read(t.path("named")).expect("named file after remount"), b"made nameless");
    let free_after = statvfs_free(&t.mnt);
    assert!(free_after + 16 >= free_before, "blocks free: {free_before} before, {free_after} after");
    t.unmount();
    fsck_clean(&t);
    // fuser has no FUSE_TMPFILE: over /dev/fuse the kernel is told ENOSYS and says EOPNOTSUPP.
    mount_with(&t, "dev");
    let err = open_tmpfile(&t.mnt).expect_err("O_TMPFILE over /dev/fuse");
    assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP), "{err}");
    t.unmount();
}

fn statvfs_free(dir: &Path) -> u64 {
    let p = CString::new(dir.as_os_str().as_bytes()).expect("path");
    // SAFETY: a zeroed statvfs the kernel fills; the path is NUL-terminated and alive.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(p.as_ptr(), &mut s) };
    assert_eq!(rc, 0, "statvfs: {}", std::io::Error::last_os_error());
    s.f_bfree as u64
}

/// statx(2) of `path` asking for everything: (mask, creation time, attributes).
fn statx_of(path: &Path) -> (u32, (i64, u32), u64) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: zeroed is a valid statx buffer; statx writes only into it.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a buffer of the right type, both alive for the call.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_ALL, &mut sx) };
    assert_eq!(rc, 0, "statx {}: {}", path.display(), std::io::Error::last_os_error());
    (sx.stx_mask, (sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec), sx.stx_attributes)
}

#[test]
fn statx_shows_the_creation_time_over_the_ring() {
    let _lock = SwitchLock::take(false);
    if let Err(why) = ensure_fuse_uring() {
        eprintln!("SKIPPED: FUSE over io_uring unavailable: {why}");
        return;
    }
    let t = TestFs::formatted("uring-statx", "64M");
    mount_with(&t, "uring");
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    fs::write(t.path("f"), b"x").expect("create");
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    let (mask, born, _) = statx_of(&t.path("f"));
    assert_ne!(mask & libc::STATX_BTIME, 0, "no btime in the statx mask {mask:#x}");
    let born_ns = born.0 as i128 * 1_000_000_000 + born.1 as i128;
    // zpmfs stamps with the coarse clock (the time of the last timer tick), as the kernel's
    // filesystems do: it lags the precise clock by a tick or a little more (4.4 ms seen with
    // 4 ms ticks), so allow 50 ms before `before`.
    let slack_ns = 50_000_000;
    assert!(
        (before.as_nanos() as i128 - slack_ns..=after.as_nanos() as i128).contains(&born_ns),
        "btime {born:?} is not between {before:?} less 50 ms and {after:?}"
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(t.path("f"), b"changed").expect("rewrite");
    run(Command::new("chmod").arg("600").arg(t.path("f"))).ok();
    assert_eq!(statx_of(&t.path("f")).1, born, "btime moved with a write and a chmod");
    t.unmount();
    // Over /dev/fuse fuser answers FUSE_STATX with ENOSYS: the kernel falls back to GETATTR,
    // which has no creation time, and says so in the mask.
    mount_with(&t, "dev");
    let (mask, _, _) = statx_of(&t.path("f"));
    assert_eq!(mask & libc::STATX_BTIME, 0, "btime over /dev/fuse: mask {mask:#x}");
    t.unmount();
    mount_with(&t, "uring");
    assert_eq!(statx_of(&t.path("f")).1, born, "btime after a remount");
    t.unmount();
    fsck_clean(&t);
}
