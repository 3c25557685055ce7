//! Bad input to mount: each case fails with a non-zero exit and a message naming the problem,
//! leaves nothing mounted and no server running, and changes nothing on the device.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use zpmfs_tests::*;

/// Block 0 holds the superblock, block 1 its replica (docs/FORMAT.md).
const SUPERBLOCK: u64 = 0;
const SUPERBLOCK_REPLICA: u64 = 4096;

/// Overwrite bytes 8..72 of the superblock at `at` (past the magic, inside the checksummed part).
fn corrupt(image: &Path, at: u64) {
    let f = OpenOptions::new().write(true).open(image).unwrap();
    f.write_all_at(&[0x5A; 64], at + 8).unwrap();
}

/// Try `zus mount`, expect failure, and check the aftermath: not mounted, no server left, the
/// image unchanged. Returns the output, for the message checks.
#[track_caller]
fn mount_fails(t: &TestFs, extra: &[&str]) -> Output {
    let before = t.image.exists().then(|| sha256(&t.image));
    let out = t.try_mount(extra).fails();
    assert!(!is_mount_point(&t.mnt), "a failed mount left {} mounted", t.mnt.display());
    t.wait_for_server_exit(Duration::from_secs(5));
    assert!(zus_pids(&t.mnt).is_empty(), "a failed mount left a zus running");
    let after = t.image.exists().then(|| sha256(&t.image));
    assert_eq!(before, after, "a failed mount changed {}", t.image.display());
    out
}

fn says_image(out: &Output, t: &TestFs) {
    let image = t.image.to_string_lossy();
    assert!(out.text().contains(&*image), "the message names the image {image}:\n{}", out.text());
}

#[test]
fn corrupt_superblock_and_replica_is_refused() {
    let t = TestFs::formatted("bad-sb", "32M");
    corrupt(&t.image, SUPERBLOCK);
    corrupt(&t.image, SUPERBLOCK_REPLICA);
    let out = mount_fails(&t, &[]);
    out.says_one_of(&["superblock"]);
    says_image(&out, &t);
}

#[test]
fn corrupt_primary_superblock_mounts_from_the_replica() {
    let t = TestFs::with_size("bad-sb-primary", "32M");
    fs::write(t.path("kept"), b"kept across a bad primary superblock").unwrap();
    t.unmount();
    corrupt(&t.image, SUPERBLOCK);
    t.mount();
    assert_eq!(fs::read(t.path("kept")).unwrap(), b"kept across a bad primary superblock");
}

#[test]
fn truncated_image_is_refused() {
    let t = TestFs::with_size("truncated", "64M");
    fs::write(t.path("f"), vec![1u8; 1 << 20]).unwrap();
    t.unmount();
    OpenOptions::new().write(true).open(&t.image).unwrap().set_len(32 << 20).unwrap();
    let out = mount_fails(&t, &[]);
    out.says_one_of(&["truncated", "smaller", "shorter", "size"]);
    says_image(&out, &t);

    // Cut to less than one block: nothing to recognise at all.
    OpenOptions::new().write(true).open(&t.image).unwrap().set_len(100).unwrap();
    mount_fails(&t, &[]).says_one_of(&["truncated", "too small", "smaller", "size", "not a zpmfs"]);
}

#[test]
fn image_of_another_filesystem_is_refused_naming_it() {
    require_tool("mkfs.ext4");
    let t = TestFs::unformatted("ext4");
    fs::File::create(&t.image).unwrap().set_len(32 << 20).unwrap();
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&t.image)).ok();
    let out = mount_fails(&t, &[]);
    out.says_one_of(&["ext4", "not a zpmfs"]);
    says_image(&out, &t);
}

#[test]
fn unformatted_image_is_refused() {
    let t = TestFs::unformatted("zeros");
    fs::File::create(&t.image).unwrap().set_len(32 << 20).unwrap();
    let out = mount_fails(&t, &[]);
    out.says_one_of(&["not a zpmfs", "no zpmfs", "mkfs.zpmfs", "magic"]);
    says_image(&out, &t);
}

#[test]
fn bad_mount_option_is_refused_naming_it() {
    let t = TestFs::formatted("bad-opt", "32M");
    mount_fails(&t, &["-o", "frobnicate"]).says_one_of(&["frobnicate"]);
    mount_fails(&t, &["-o", "rw,cpus=banana"]).says_one_of(&["banana", "cpus"]);
}

#[test]
fn missing_device_is_refused() {
    let t = TestFs::unformatted("missing");
    let out = mount_fails(&t, &[]);
    out.says_one_of(&["No such file", "does not exist", "not found"]);
    says_image(&out, &t);
    assert!(!t.image.exists(), "a failed mount created the image");
}

#[test]
fn missing_mount_point_is_refused() {
    let t = TestFs::formatted("no-mnt", "32M");
    fs::remove_dir(&t.mnt).unwrap();
    let out = mount_fails(&t, &[]);
    out.says_one_of(&["No such file", "does not exist", "not found"]);
    assert!(out.text().contains(&*t.mnt.to_string_lossy()), "names the mount point:\n{}", out.text());
}

#[test]
fn busy_mount_point_is_refused() {
    let a = TestFs::new("busy-a");
    fs::write(a.path("mine"), b"a's file").unwrap();
    let b = TestFs::formatted("busy-b", "32M");
    let before = sha256(&b.image);
    let out = run(Command::new(bin("zus")).arg("mount").arg(&b.image).arg(&a.mnt)).fails();
    out.says_one_of(&["busy", "already", "mount point", "mountpoint"]);
    assert_eq!(sha256(&b.image), before, "the refused image is unchanged");
    assert_eq!(mount_entry(&a.mnt).map(|(_, src)| src), Some(a.image.to_string_lossy().into_owned()));
    assert_eq!(fs::read(a.path("mine")).unwrap(), b"a's file", "the mount already there still works");
}

#[test]
fn image_already_mounted_elsewhere_is_refused() {
    let a = TestFs::new("twice");
    fs::write(a.path("mine"), b"only one server").unwrap();
    let second = ScratchDir::new("twice-mnt");
    let out = run(Command::new(bin("zus")).arg("mount").arg(&a.image).arg(&second.path)).fails();
    out.says_one_of(&["in use", "already", "busy", "locked"]);
    assert!(!is_mount_point(&second.path));
    assert_eq!(fs::read(a.path("mine")).unwrap(), b"only one server");
}
