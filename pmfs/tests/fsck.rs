//! fsck on damaged images: it finds each kind of damage, repairs what it may in each mode,
//! and the repaired image mounts and checks clean.

mod common;

use std::os::unix::fs::FileExt;

use common::Image;
use pmfs::fsck::{fsck, FsckMode, FsckOptions};
use pmfs::vfs::*;

const ME: Caller = Caller { uid: 0, gid: 0, pid: 1 };

fn run(img: &Image, mode: FsckMode, force: bool) -> pmfs::fsck::FsckReport {
    fsck(&img.path, &FsckOptions { mode, force }).unwrap()
}

fn poke(img: &Image, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(&img.path).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

fn peek_u64(img: &Image, off: u64) -> u64 {
    let f = std::fs::File::open(&img.path).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

/// Device offset of an inode's PM record (inode tables: see docs/FORMAT.md).
fn inode_tail_offset(img: &Image, fs: &pmfs::Fs, ino: Ino) -> u64 {
    let _ = img;
    // The log tail word of `ino`: find it by its value, which getattr cannot tell us, so go
    // through the documented layout: roots block 3, CPU = (ino-1) % 2, local = (ino-1) / 2.
    let cpu = (ino - 1) % 2;
    let local = (ino - 1) / 2;
    let root = peek_u64(img, 3 * 4096 + cpu * 8);
    let l2 = peek_u64(img, root * 4096 + (local / (512 * 32)) * 8);
    let blk = peek_u64(img, l2 * 4096 + ((local / 32) % 512) * 8);
    let _ = fs;
    blk * 4096 + (local % 32) * 128 + 16
}

#[test]
fn clean_image_is_skipped_unless_forced_and_then_has_no_problems() {
    let img = Image::new("fsck-clean", 32 << 20);
    let fs = img.mount();
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, ME).unwrap().ino;
    let f = fs.mknod(d, b"f", libc::S_IFREG | 0o644, 0, ME).unwrap().ino;
    fs.write(f, 0, &[1u8; 10000], false).unwrap();
    fs.link(f, ROOT_INO, b"f2").unwrap();
    fs.unmount().unwrap();
    drop(fs);
    let r = run(&img, FsckMode::Check, false);
    assert!(r.skipped && r.exit_code() == 0);
    let r = run(&img, FsckMode::Check, true);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.inodes, 3);
}

#[test]
fn a_mounted_image_is_refused() {
    let img = Image::new("fsck-busy", 16 << 20);
    let fs = img.mount();
    let err = fsck(&img.path, &FsckOptions { mode: FsckMode::Check, force: true }).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(fs);
}

#[test]
fn corrupt_log_entry_is_found_and_cut_off() {
    let img = Image::new("fsck-log", 32 << 20);
    let fs = img.mount();
    let f = fs.mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, ME).unwrap().ino;
    fs.write(f, 0, b"first", false).unwrap();
    let tail_off = inode_tail_offset(&img, &fs, f);
    fs.setxattr(f, b"user.a", b"1", XattrFlags::default()).unwrap();
    fs.unmount().unwrap();
    drop(fs);
    // Flip a byte in the last entry (the xattr), just below the tail.
    let tail = peek_u64(&img, tail_off);
    poke(&img, tail - 3, &[0x5a]);
    let r = run(&img, FsckMode::Check, true);
    assert_eq!(r.exit_code(), 4, "{:?}", r.problems);
    assert!(
        r.problems.iter().any(|p| p.what.contains(&format!("inode {f}")) && p.what.contains("checksum")),
        "{:?}",
        r.problems
    );
    // Preen does not cut logs; -y does.
    assert_eq!(run(&img, FsckMode::Preen, true).exit_code(), 4);
    assert_eq!(run(&img, FsckMode::Repair, true).exit_code(), 1);
    assert_eq!(run(&img, FsckMode::Check, true).exit_code(), 0);
    let fs = img.mount();
    let mut b = [0u8; 5];
    fs.read(f, 0, &mut b).unwrap();
    assert_eq!(&b, b"first");
    assert_eq!(fs.getxattr(f, b"user.a"), Err(pmfs::Error::NoAttr));
}

#[test]
fn bad_superblock_copy_is_rewritten_by_preen() {
    let img = Image::new("fsck-sb", 16 << 20);
    poke(&img, 4096 + 30, &[0xff, 0xff]);
    let r = run(&img, FsckMode::Preen, false);
    assert_eq!(r.exit_code(), 1, "{:?}", r.problems);
    assert_eq!(run(&img, FsckMode::Check, true).exit_code(), 0);
}

#[test]
fn lost_file_goes_to_lost_and_found() {
    let img = Image::new("fsck-orphan", 32 << 20);
    let fs = img.mount();
    let root_tail_off = inode_tail_offset(&img, &fs, ROOT_INO);
    fs.mkdir(ROOT_INO, b"keep", 0o755, ME).unwrap();
    let before = peek_u64(&img, root_tail_off);
    let f = fs.mknod(ROOT_INO, b"lost", libc::S_IFREG | 0o600, 0, ME).unwrap().ino;
    fs.write(f, 0, b"precious", false).unwrap();
    fs.unmount().unwrap();
    drop(fs);
    // Roll the root's log back past the entry for "lost": the file is now in no directory.
    poke(&img, root_tail_off, &before.to_le_bytes());
    let r = run(&img, FsckMode::Check, true);
    assert_eq!(r.exit_code(), 4);
    assert!(r.problems.iter().any(|p| p.what.contains("not in any directory")), "{:?}", r.problems);
    assert_eq!(run(&img, FsckMode::Repair, true).exit_code(), 1);
    let r = run(&img, FsckMode::Check, true);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let fs = img.mount();
    let lf = fs.lookup(ROOT_INO, b"lost+found").unwrap().ino;
    let a = fs.lookup(lf, format!("#{f}").as_bytes()).unwrap();
    let mut b = [0u8; 8];
    fs.read(a.ino, 0, &mut b).unwrap();
    assert_eq!(&b, b"precious");
    assert_eq!(a.nlink, 1);
}

#[test]
fn crashed_image_is_checked_as_recovery_will_leave_it() {
    let img = Image::new("fsck-crash", 32 << 20);
    let fs = img.mount();
    let f = fs.mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, ME).unwrap().ino;
    fs.write(f, 0, b"x", false).unwrap();
    drop(fs);
    let r = run(&img, FsckMode::Check, false);
    assert!(!r.was_clean);
    assert_eq!(r.exit_code(), 0, "{:?}", r.problems);
    let r = run(&img, FsckMode::Preen, false);
    assert_eq!(r.exit_code(), 0, "{:?}", r.problems);
    assert!(r.notes.iter().any(|n| n.contains("recovered")), "{:?}", r.notes);
    assert!(run(&img, FsckMode::Check, false).skipped);
}

#[test]
fn unreadable_root_is_recreated_and_files_go_to_lost_and_found() {
    let img = Image::new("fsck-root", 32 << 20);
    let fs = img.mount();
    let root_rec = inode_tail_offset(&img, &fs, ROOT_INO) - 16;
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, ME).unwrap().ino;
    let f = fs.mknod(d, b"f", libc::S_IFREG | 0o644, 0, ME).unwrap().ino;
    fs.write(f, 0, b"survivor", false).unwrap();
    fs.unmount().unwrap();
    drop(fs);
    poke(&img, root_rec + 30, &[0x77]); // inside the creation record: its checksum fails
    assert!(pmfs::Fs::mount(&img.path, &Default::default()).is_err());
    let r = run(&img, FsckMode::Check, true);
    assert_eq!(r.exit_code(), 4);
    assert!(r.problems.iter().any(|p| p.what.contains("root directory")), "{:?}", r.problems);
    assert_eq!(run(&img, FsckMode::Repair, true).exit_code(), 1);
    let r = run(&img, FsckMode::Check, true);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let fs = img.mount();
    let lf = fs.lookup(ROOT_INO, b"lost+found").unwrap().ino;
    let d2 = fs.lookup(lf, format!("#{d}").as_bytes()).unwrap().ino;
    let f2 = fs.lookup(d2, b"f").unwrap().ino;
    let mut b = [0u8; 8];
    fs.read(f2, 0, &mut b).unwrap();
    assert_eq!(&b, b"survivor");
}
