//! `zus mount` end to end: a real image, a real FUSE mount, real system calls. Needs root and
//! /dev/fuse; elsewhere each test says it is skipped and passes.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ZUS: &str = env!("CARGO_BIN_EXE_zus");

fn can_mount() -> bool {
    let ok = nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists();
    if !ok {
        eprintln!("skipped: needs root and /dev/fuse");
    }
    ok
}

/// An image and a mount point, removed (and unmounted if need be) on drop.
struct Scratch {
    image: PathBuf,
    mnt: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let base = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let image = PathBuf::from(format!("{base}/zus-test-{name}-{}.img", std::process::id()));
        let mnt = PathBuf::from(format!("/tmp/zus-test-{name}-{}.mnt", std::process::id()));
        let f = fs::File::create(&image).expect("create image");
        f.set_len(64 << 20).expect("size image");
        let dev = pmfs::device::Device::open(&image, true).expect("open image");
        pmfs::format::format(&dev, &pmfs::format::FormatOptions { cpus: Some(2), ..Default::default() })
            .expect("format");
        fs::create_dir_all(&mnt).expect("mount point");
        Scratch { image, mnt }
    }

    fn mounted(&self) -> bool {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mnt = self.mnt.to_string_lossy().into_owned();
        info.lines().any(|l| l.split(' ').nth(4) == Some(mnt.as_str()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted() {
            let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir(&self.mnt);
        let _ = fs::remove_file(&self.image);
    }
}

/// Run a command, failing the test if it takes longer than `limit` (a hang is the bug).
fn run_with_limit(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn zus_mount(s: &Scratch, extra: &[&str]) -> Output {
    let mut cmd = Command::new(ZUS);
    cmd.arg("mount").args(extra).arg(&s.image).arg(&s.mnt);
    run_with_limit(&mut cmd, Duration::from_secs(60))
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unmount(s: &Scratch) {
    nix::mount::umount2(&s.mnt, nix::mount::MntFlags::empty()).expect("umount");
    // The server notices, unmounts zpmfs and exits; the image is clean once it is gone.
    let img = s.image.to_string_lossy().into_owned();
    wait_until("zus to exit", || {
        !fs::read_dir("/proc").into_iter().flatten().flatten().any(|e| {
            fs::read(e.path().join("cmdline"))
                .map(|c| c.windows(img.len()).any(|w| w == img.as_bytes()))
                .unwrap_or(false)
        })
    });
}

#[test]
fn mount_is_ready_when_zus_returns_and_umount_leaves_it_clean() {
    if !can_mount() {
        return;
    }
    let s = Scratch::new("ready");
    let out = zus_mount(&s, &[]);
    assert!(out.status.success(), "zus mount failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("zus: mounted") && line.contains("(clean,"), "{line}");
    // Ready at once: no retry loop here on purpose.
    let info = fs::read_to_string("/proc/self/mounts").expect("mounts");
    let entry = info.lines().find(|l| l.contains(&*s.mnt.to_string_lossy())).expect("in /proc/mounts");
    assert!(entry.contains(" fuse.zpmfs "), "{entry}");
    assert!(entry.starts_with(&*s.image.to_string_lossy()), "{entry}");

    let f = s.mnt.join("file");
    fs::write(&f, b"hello\n").expect("write");
    assert_eq!(fs::read(&f).expect("read"), b"hello\n");
    fs::create_dir(s.mnt.join("dir")).expect("mkdir");
    fs::rename(&f, s.mnt.join("dir/moved")).expect("rename");
    std::os::unix::fs::symlink("dir/moved", s.mnt.join("link")).expect("symlink");
    assert_eq!(fs::read(s.mnt.join("link")).expect("read via symlink"), b"hello\n");
    unmount(&s);

    let out = zus_mount(&s, &[]);
    assert!(out.status.success(), "remount failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(clean,"), "not clean after umount");
    assert_eq!(fs::read(s.mnt.join("dir/moved")).expect("read after remount"), b"hello\n");
    unmount(&s);
}

#[test]
fn cp_a_keeps_modes() {
    if !can_mount() {
        return;
    }
    let s = Scratch::new("cpa");
    let out = zus_mount(&s, &[]);
    assert!(out.status.success(), "zus mount failed: {}", String::from_utf8_lossy(&out.stderr));
    let src = PathBuf::from(format!("/tmp/zus-test-cpa-src-{}", std::process::id()));
    fs::write(&src, b"x").expect("source");
    fs::set_permissions(&src, fs::Permissions::from_mode(0o754)).expect("chmod source");
    let st = Command::new("cp").arg("-a").arg(&src).arg(s.mnt.join("copy")).status().expect("cp");
    let _ = fs::remove_file(&src);
    assert!(st.success());
    assert_eq!(fs::metadata(s.mnt.join("copy")).expect("stat").mode() & 0o7777, 0o754);
    unmount(&s);
}

#[test]
fn mount_failures_exit_nonzero_with_a_reason() {
    if !can_mount() {
        return;
    }
    let s = Scratch::new("fail");
    let out = zus_mount(&s, &["-o", "rw,bogus"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mount option 'bogus'"));

    let out = run_with_limit(
        Command::new(ZUS).args(["mount", "/nonexistent.img"]).arg(&s.mnt),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent.img"));

    let out = zus_mount(&s, &[]);
    assert!(out.status.success());
    let again = zus_mount(&s, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("busy"));
    unmount(&s);
}
