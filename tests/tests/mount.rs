//! Mounting the way users do: mount(8)'s helper mount.fuse.zpmfs, what /proc/mounts and df show.

use std::fs;
use std::process::Command;

use zpmfs_tests::*;

#[test]
fn mount_helper_called_as_mount8_calls_it() {
    let t = TestFs::formatted("helper", "32M");
    // `mount -t fuse.zpmfs IMAGE MNT -o rw` runs /sbin/mount.fuse.zpmfs with these arguments.
    run(Command::new(bin("mount.fuse.zpmfs")).arg(&t.image).arg(&t.mnt).args([
        "-o",
        "rw,noatime",
        "-t",
        "fuse.zpmfs",
    ]))
    .ok();
    assert!(is_mount_point(&t.mnt), "the helper mounted {}", t.mnt.display());
    let (fstype, source) = mount_entry(&t.mnt).unwrap();
    assert_eq!(fstype, "fuse.zpmfs", "/proc/mounts shows the type users mount with");
    assert_eq!(source, t.image.to_string_lossy(), "/proc/mounts shows the image as the source");
    fs::write(t.path("hello"), b"hello\n").unwrap();
    let df = sh(&t.mnt, "df -P . | tail -1");
    assert!(df.starts_with(&*t.image.to_string_lossy()), "df names the image: {df}");
    t.unmount();
    t.mount();
    assert_eq!(fs::read(t.path("hello")).unwrap(), b"hello\n");
}

#[test]
fn read_only_mount_refuses_changes() {
    let t = TestFs::with_size("ro", "32M");
    fs::write(t.path("f"), b"before").unwrap();
    t.unmount();
    let out = t.try_mount(&["-o", "ro"]);
    assert!(out.success(), "mount -o ro: {}", out.text());
    assert_eq!(fs::read(t.path("f")).unwrap(), b"before");
    let e = fs::write(t.path("g"), b"no").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
}

#[test]
fn remount_read_only_and_back_through_the_helper_keeps_one_server() {
    let t = TestFs::formatted("remount", "32M");
    run(Command::new(bin("mount.fuse.zpmfs")).arg(&t.image).arg(&t.mnt).args(["-o", "rw"])).ok();
    assert!(is_mount_point(&t.mnt));
    fs::write(t.path("before"), b"x").unwrap();
    let opts = |t: &TestFs| sh(&t.mnt, &format!("findmnt -n -o OPTIONS --mountpoint {}", t.mnt.display()));
    // mount(8) gave the helper no nosuid/nodev: the mount has neither, as with other filesystems.
    let o = opts(&t);
    assert!(!o.contains("nosuid") && !o.contains("nodev"), "{o}");
    // `mount -o remount,ro` runs the helper with the remount option.
    run(Command::new(bin("mount.fuse.zpmfs")).arg(&t.image).arg(&t.mnt).args(["-o", "remount,ro"])).ok();
    let o = opts(&t);
    assert!(o.split(',').any(|w| w == "ro"), "not read-only after remount,ro: {o}");
    let err = fs::write(t.path("after"), b"y").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    run(Command::new(bin("mount.fuse.zpmfs")).arg(&t.image).arg(&t.mnt).args(["-o", "remount,rw"])).ok();
    fs::write(t.path("after"), b"y").unwrap();
    assert_eq!(zus_pids(&t.mnt).len(), 1, "remount must not start a second server");
    t.unmount();
}
