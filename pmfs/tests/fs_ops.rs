//! The filesystem library end to end: format, mount, every operation, unmount, mount again,
//! and mount after a simulated crash (dropping the mount without unmounting).

mod common;

use common::Image;
use pmfs::vfs::*;
use pmfs::Error;

const ME: Caller = Caller { uid: 1000, gid: 1000, pid: 1 };

fn create(fs: &pmfs::Fs, parent: Ino, name: &str) -> Ino {
    fs.mknod(parent, name.as_bytes(), libc::S_IFREG | 0o644, 0, ME).unwrap().ino
}

fn read_all(fs: &pmfs::Fs, ino: Ino) -> Vec<u8> {
    let size = fs.getattr(ino).unwrap().size as usize;
    let mut buf = vec![0u8; size];
    let n = fs.read(ino, 0, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn names(fs: &pmfs::Fs, dir: Ino) -> Vec<String> {
    let mut v: Vec<String> =
        fs.readdir(dir, 0, 10000).unwrap().into_iter().map(|e| String::from_utf8(e.name).unwrap()).collect();
    v.sort();
    v
}

#[test]
fn files_survive_unmount_and_remount() {
    let img = Image::new("remount", 64 << 20);
    let fs = img.mount();
    let d = fs.mkdir(ROOT_INO, b"dir", 0o755, ME).unwrap().ino;
    let f = create(&fs, d, "file");
    let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
    fs.write(f, 0, &data, false).unwrap();
    fs.write(f, 5000, b"hello", false).unwrap();
    fs.symlink(ROOT_INO, b"link", b"dir/file", ME).unwrap();
    fs.setxattr(f, b"user.k", b"v", XattrFlags::default()).unwrap();
    fs.unmount().unwrap();
    drop(fs);

    let fs = img.mount();
    assert!(fs.mount_report().was_clean);
    let d2 = fs.lookup(ROOT_INO, b"dir").unwrap();
    assert_eq!(d2.kind, FileKind::Directory);
    let f2 = fs.lookup(d2.ino, b"file").unwrap();
    let mut expect = data.clone();
    expect[5000..5005].copy_from_slice(b"hello");
    assert_eq!(read_all(&fs, f2.ino), expect);
    assert_eq!(fs.readlink(fs.lookup(ROOT_INO, b"link").unwrap().ino).unwrap(), b"dir/file");
    assert_eq!(fs.getxattr(f2.ino, b"user.k").unwrap(), b"v");
    assert_eq!(names(&fs, ROOT_INO), vec![".", "..", "dir", "link"]);
}

#[test]
fn crash_without_unmount_recovers_everything_committed() {
    let img = Image::new("crash", 64 << 20);
    let fs = img.mount();
    let a = create(&fs, ROOT_INO, "a");
    fs.write(a, 0, &vec![7u8; 10000], false).unwrap();
    let b = create(&fs, ROOT_INO, "b");
    fs.link(b, ROOT_INO, b"b2").unwrap();
    fs.unlink(ROOT_INO, b"b").unwrap();
    let free_before = fs.statfs().unwrap().blocks_free;
    // An open-unlinked file at crash time is an orphan: recovery frees it.
    let o = create(&fs, ROOT_INO, "orphan");
    fs.write(o, 0, &vec![1u8; 40960], false).unwrap();
    fs.open(o).unwrap();
    fs.unlink(ROOT_INO, b"orphan").unwrap();
    drop(fs); // no unmount: as if the power went out

    let fs = img.mount();
    let r = fs.mount_report();
    assert!(!r.was_clean);
    assert_eq!(r.orphans_freed, 1);
    assert_eq!(names(&fs, ROOT_INO), vec![".", "..", "a", "b2"]);
    assert_eq!(read_all(&fs, fs.lookup(ROOT_INO, b"a").unwrap().ino), vec![7u8; 10000]);
    assert_eq!(fs.lookup(ROOT_INO, b"b2").unwrap().nlink, 1);
    assert_eq!(fs.statfs().unwrap().blocks_free, free_before);
}

/// A transport learns of an inode from one call (lookup, create) and takes its reference in
/// the next: if the inode was freed in between and its number given to a new file, the
/// reference must not land on the new file, or that file is freed while still in use.
#[test]
fn hold_of_a_freed_inode_takes_nothing_even_when_its_number_is_reused() {
    let img = Image::new("hold", 32 << 20);
    let fs = img.mount();
    let old = fs.mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, ME).unwrap();
    fs.unlink(ROOT_INO, b"f").unwrap();
    assert_eq!(fs.hold(old.ino, old.generation, 1), Err(Error::NotFound));
    // Create until the number comes back (the inode table hands out freed slots first).
    let mut made = Vec::new();
    let new = loop {
        let name = format!("g{}", made.len());
        let a = fs.mknod(ROOT_INO, name.as_bytes(), libc::S_IFREG | 0o644, 0, ME).unwrap();
        made.push(name);
        if a.ino == old.ino {
            break a;
        }
        assert!(made.len() < 10_000, "inode {} never reused", old.ino);
    };
    assert_ne!(new.generation, old.generation);
    assert_eq!(fs.hold(old.ino, old.generation, 1), Err(Error::NotFound));
    let name = made.last().unwrap().as_bytes();
    fs.write(new.ino, 0, b"data", false).unwrap();
    fs.unlink(ROOT_INO, name).unwrap();
    // No stray reference: the new file went with its last link.
    assert_eq!(fs.getattr(new.ino), Err(Error::NotFound));

    // A hold with the right generation keeps an unlinked file until released, as open does.
    let h = fs.mknod(ROOT_INO, b"held", libc::S_IFREG | 0o644, 0, ME).unwrap();
    fs.hold(h.ino, h.generation, 2).unwrap();
    fs.unlink(ROOT_INO, b"held").unwrap();
    fs.release(h.ino).unwrap();
    assert_eq!(fs.getattr(h.ino).unwrap().nlink, 0);
    fs.release(h.ino).unwrap();
    assert_eq!(fs.getattr(h.ino), Err(Error::NotFound));
}

/// O_TMPFILE: a file no directory names, alive while held, freed at its last release, at
/// unmount, or by recovery after a crash; linked, it is an ordinary file.
#[test]
fn tmpfile_lives_while_held_and_can_be_linked() {
    let img = Image::new("tmpfile", 32 << 20);
    let fs = img.mount();
    let d = fs.mkdir(ROOT_INO, b"d", 0o2775, ME).unwrap().ino;
    fs.setattr(d, &SetAttr { gid: Some(4242), ..Default::default() }).unwrap();
    let t = fs.tmpfile(d, libc::S_IFREG | 0o600, ME).unwrap();
    assert_eq!((t.nlink, t.perm, t.gid), (0, 0o600, 4242), "a setgid directory gives its group");
    assert_eq!(names(&fs, d), vec![".", ".."]);
    fs.hold(t.ino, t.generation, 1).unwrap();
    fs.write(t.ino, 0, &vec![5u8; 20_000], false).unwrap();
    fs.link(t.ino, d, b"named").unwrap();
    fs.release(t.ino).unwrap();
    let named = fs.lookup(d, b"named").unwrap();
    assert_eq!((named.ino, named.nlink), (t.ino, 1));
    assert_eq!(read_all(&fs, t.ino), vec![5u8; 20_000]);

    // Never named: its space comes back at the last release.
    // Counted once the inode exists: its slot may have taken a new inode-table block (on
    // a CPU that had none), which stays; the log page its creation took comes back.
    let gone = fs.tmpfile(ROOT_INO, 0o644, ME).unwrap();
    let before = fs.statfs().unwrap().blocks_free;
    fs.open(gone.ino).unwrap();
    fs.write(gone.ino, 0, &vec![1u8; 40_960], false).unwrap();
    fs.release(gone.ino).unwrap();
    assert_eq!(fs.getattr(gone.ino), Err(Error::NotFound));
    assert_eq!(fs.statfs().unwrap().blocks_free, before + 1, "10 data blocks and the log page back");
    assert!(matches!(fs.tmpfile(ROOT_INO, libc::S_IFDIR | 0o755, ME), Err(Error::Invalid(_))));

    // Held at a crash: recovery frees it; the linked one stays.
    let orphan = fs.tmpfile(ROOT_INO, 0o644, ME).unwrap();
    fs.open(orphan.ino).unwrap();
    fs.write(orphan.ino, 0, &vec![2u8; 40_960], false).unwrap();
    drop(fs);
    let fs = img.mount();
    assert_eq!(fs.mount_report().orphans_freed, 1);
    assert_eq!(fs.getattr(orphan.ino), Err(Error::NotFound));
    assert_eq!(read_all(&fs, fs.lookup(d, b"named").unwrap().ino), vec![5u8; 20_000]);
    // Held at a clean unmount: freed then, and fsck agrees with statfs.
    let held = fs.tmpfile(ROOT_INO, 0o644, ME).unwrap();
    let base = fs.statfs().unwrap().blocks_free + 1; // its log page, as above
    fs.open(held.ino).unwrap();
    fs.write(held.ino, 0, &vec![3u8; 8192], false).unwrap();
    fs.unmount().unwrap();
    drop(fs);
    let fs = img.mount();
    assert_eq!(fs.getattr(held.ino), Err(Error::NotFound));
    assert_eq!(fs.statfs().unwrap().blocks_free, base, "the held tmpfile was freed at unmount");
    img.unmount_and_fsck(fs);
}

#[test]
fn rename_variants() {
    let img = Image::new("rename", 32 << 20);
    let fs = img.mount();
    let d1 = fs.mkdir(ROOT_INO, b"d1", 0o755, ME).unwrap().ino;
    let d2 = fs.mkdir(ROOT_INO, b"d2", 0o755, ME).unwrap().ino;
    let x = create(&fs, d1, "x");
    let y = create(&fs, d2, "y");
    // Over an existing file: y is replaced and freed.
    fs.rename(d1, b"x", d2, b"y", RenameFlags::default()).unwrap();
    assert_eq!(fs.lookup(d2, b"y").unwrap().ino, x);
    assert_eq!(fs.getattr(y), Err(Error::NotFound));
    // NOREPLACE.
    create(&fs, d1, "z");
    let nr = RenameFlags { noreplace: true, ..Default::default() };
    assert_eq!(fs.rename(d1, b"z", d2, b"y", nr), Err(Error::Exists));
    // EXCHANGE.
    let ex = RenameFlags { exchange: true, ..Default::default() };
    let z = fs.lookup(d1, b"z").unwrap().ino;
    fs.rename(d1, b"z", d2, b"y", ex).unwrap();
    assert_eq!(fs.lookup(d1, b"z").unwrap().ino, x);
    assert_eq!(fs.lookup(d2, b"y").unwrap().ino, z);
    // A directory into its own subtree.
    let sub = fs.mkdir(d1, b"sub", 0o755, ME).unwrap().ino;
    assert_eq!(fs.rename(ROOT_INO, b"d1", sub, b"loop", RenameFlags::default()), Err(Error::Loop));
    // A directory across parents: link counts and ".." follow.
    fs.rename(d1, b"sub", d2, b"sub", RenameFlags::default()).unwrap();
    assert_eq!(fs.getattr(d1).unwrap().nlink, 2);
    assert_eq!(fs.getattr(d2).unwrap().nlink, 3);
    assert_eq!(fs.lookup(sub, b"..").unwrap().ino, d2);
    // Over a non-empty directory.
    create(&fs, sub, "f");
    let e = fs.mkdir(ROOT_INO, b"e", 0o755, ME).unwrap().ino;
    assert_eq!(fs.rename(ROOT_INO, b"e", d2, b"sub", RenameFlags::default()), Err(Error::NotEmpty));
    let _ = e;
    // WHITEOUT: the old name becomes a 0:0 character device, in the same step.
    let wo = RenameFlags { whiteout: true, ..Default::default() };
    fs.rename(d2, b"y", ROOT_INO, b"moved", wo).unwrap();
    let w = fs.lookup(d2, b"y").unwrap();
    assert_eq!((w.kind, w.rdev), (FileKind::CharDevice, 0));
    assert_eq!(fs.lookup(ROOT_INO, b"moved").unwrap().ino, z);
    assert_eq!(
        fs.rename(
            d2,
            b"sub",
            ROOT_INO,
            b"q",
            RenameFlags { exchange: true, whiteout: true, noreplace: false }
        ),
        Err(Error::Invalid("RENAME_EXCHANGE with RENAME_NOREPLACE or RENAME_WHITEOUT"))
    );
    drop(fs);
    let fs = img.mount();
    assert_eq!(names(&fs, d2), vec![".", "..", "sub", "y"]);
    assert_eq!(fs.lookup(d2, b"y").unwrap().kind, FileKind::CharDevice);
    assert_eq!(fs.lookup(sub, b"..").unwrap().ino, d2);
}

#[test]
fn sparse_files_holes_and_fallocate() {
    let img = Image::new("sparse", 64 << 20);
    let fs = img.mount();
    let f = create(&fs, ROOT_INO, "sparse");
    fs.write(f, 1 << 40, b"end", false).unwrap(); // 1 TiB
    let a = fs.getattr(f).unwrap();
    assert_eq!(a.size, (1 << 40) + 3);
    assert_eq!(a.blocks, 8);
    assert_eq!(fs.lseek(f, 0, SeekWhence::Data).unwrap(), 1 << 40);
    assert_eq!(fs.lseek(f, 0, SeekWhence::Hole).unwrap(), 0);
    let mut b = [9u8; 3];
    fs.read(f, 1 << 30, &mut b).unwrap();
    assert_eq!(b, [0, 0, 0]);
    fs.read(f, 1 << 40, &mut b).unwrap();
    assert_eq!(&b, b"end");

    let g = create(&fs, ROOT_INO, "g");
    fs.write(g, 0, &vec![0xaa; 16384], false).unwrap();
    fs.fallocate(g, FallocMode::PunchHole, 1000, 8192).unwrap();
    let data = read_all(&fs, g);
    assert_eq!(data.len(), 16384);
    assert!(data[..1000].iter().all(|&c| c == 0xaa));
    assert!(data[1000..9192].iter().all(|&c| c == 0));
    assert!(data[9192..].iter().all(|&c| c == 0xaa));
    assert_eq!(fs.lseek(g, 4096, SeekWhence::Hole).unwrap(), 4096);
    fs.fallocate(g, FallocMode::Allocate { keep_size: true }, 0, 1 << 20).unwrap();
    assert_eq!(fs.getattr(g).unwrap().size, 16384);
    assert_eq!(fs.getattr(g).unwrap().blocks, (1 << 20) / 512);
    fs.fallocate(g, FallocMode::ZeroRange { keep_size: false }, 100, 100).unwrap();
    assert!(read_all(&fs, g)[100..200].iter().all(|&c| c == 0));
    fs.fallocate(g, FallocMode::Allocate { keep_size: false }, 0, 1 << 21).unwrap();
    assert_eq!(fs.getattr(g).unwrap().size, 1 << 21);
    // Truncate down to an unaligned size then up: the cut-off bytes read as zeros.
    fs.setattr(g, &SetAttr { size: Some(10), ..Default::default() }).unwrap();
    fs.setattr(g, &SetAttr { size: Some(8000), ..Default::default() }).unwrap();
    let d = read_all(&fs, g);
    assert!(d[..10].iter().all(|&c| c == 0xaa));
    assert!(d[10..].iter().all(|&c| c == 0));
    drop(fs);
    let fs = img.mount();
    assert_eq!(read_all(&fs, g), d);
}

#[test]
fn unlink_rmdir_and_space_comes_back() {
    let img = Image::new("space", 64 << 20);
    let fs = img.mount();
    let free0 = fs.statfs().unwrap().blocks_free;
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, ME).unwrap().ino;
    for i in 0..300 {
        let f = create(&fs, d, &format!("f{i}"));
        fs.write(f, 0, &vec![i as u8; 5000], false).unwrap();
    }
    assert_eq!(fs.rmdir(ROOT_INO, b"d"), Err(Error::NotEmpty));
    for i in 0..300 {
        fs.unlink(d, format!("f{i}").as_bytes()).unwrap();
    }
    fs.rmdir(ROOT_INO, b"d").unwrap();
    let free1 = fs.statfs().unwrap().blocks_free;
    // Inode-table blocks stay allocated; the root's log keeps its pages.
    assert!(free0 - free1 < 40, "{free0} -> {free1}");
    fs.unmount().unwrap();
    drop(fs);
    let fs = img.mount();
    assert_eq!(fs.statfs().unwrap().blocks_free, free1);
}

#[test]
fn long_logs_are_compacted_and_replay_the_same() {
    let img = Image::new("compact", 64 << 20);
    let fs = img.mount();
    let f = create(&fs, ROOT_INO, "f");
    for i in 0..5000u32 {
        fs.write(f, (i % 7) as u64 * 4096, &i.to_le_bytes(), false).unwrap();
    }
    let used = 64 * 256 - fs.statfs().unwrap().blocks_free;
    assert!(used < 200, "log not compacted: {used} blocks used");
    let before = read_all(&fs, f);
    drop(fs);
    let fs = img.mount();
    assert_eq!(read_all(&fs, f), before);
}

#[test]
fn full_device_gives_enospc_and_keeps_data() {
    let img = Image::new("full", 16 << 20);
    let fs = img.mount();
    let f = create(&fs, ROOT_INO, "big");
    let chunk = vec![0x5a; 1 << 20];
    let mut written = 0u64;
    loop {
        match fs.write(f, written, &chunk, false) {
            Ok((n, _)) => written += n as u64,
            Err(e) => {
                assert_eq!(e, Error::NoSpace);
                break;
            }
        }
    }
    assert!(written >= 12 << 20);
    let g = create(&fs, ROOT_INO, "small");
    let _ = g;
    fs.unlink(ROOT_INO, b"big").unwrap();
    let h = create(&fs, ROOT_INO, "again");
    fs.write(h, 0, &chunk, false).unwrap();
    drop(fs);
    let fs = img.mount();
    assert_eq!(read_all(&fs, fs.lookup(ROOT_INO, b"again").unwrap().ino), chunk);
}

#[test]
fn bad_superblock_is_repaired_from_replica_and_garbage_is_refused() {
    let img = Image::new("sb", 32 << 20);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&img.path).unwrap();
        f.write_all_at(&[0xff; 64], 10).unwrap();
    }
    let fs = img.mount();
    assert!(fs.mount_report().superblock_repaired);
    drop(fs);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&img.path).unwrap();
        f.write_all_at(&[0xff; 64], 10).unwrap();
        f.write_all_at(&[0xff; 64], 4096 + 10).unwrap();
    }
    let err = pmfs::Fs::mount(&img.path, &Default::default()).err().unwrap();
    assert!(err.to_string().contains("superblock"), "{err}");
}

#[test]
fn image_on_a_disk_filesystem_is_msynced_and_survives() {
    let img = Image::new_in(env!("CARGO_TARGET_TMPDIR"), "disk", 32 << 20);
    let fs = img.mount();
    let f = create(&fs, ROOT_INO, "f");
    fs.write(f, 100, b"on disk", false).unwrap();
    drop(fs);
    let fs = img.mount();
    let mut b = [0u8; 7];
    fs.read(fs.lookup(ROOT_INO, b"f").unwrap().ino, 100, &mut b).unwrap();
    assert_eq!(&b, b"on disk");
}

#[test]
fn a_mounted_image_cannot_be_mounted_again() {
    let img = Image::new("twice", 16 << 20);
    let fs = img.mount();
    let err = pmfs::Fs::mount(&img.path, &Default::default()).err().unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(fs);
    img.mount();
}

#[test]
fn truncate_down_then_up_reads_zeros_past_the_old_end() {
    let img = Image::new("trunc", 16 << 20);
    let fs = img.mount();
    let f = create(&fs, ROOT_INO, "f");
    fs.write(f, 0, &[0xaa; 12289], false).unwrap();
    fs.setattr(f, &SetAttr { size: Some(4050), ..Default::default() }).unwrap();
    fs.setattr(f, &SetAttr { size: Some(9000), ..Default::default() }).unwrap();
    let d = read_all(&fs, f);
    assert!(d[..4050].iter().all(|&c| c == 0xaa));
    assert_eq!(d[4050..].iter().position(|&c| c != 0), None);
    assert_eq!(fs.getattr(f).unwrap().blocks, 8);
    drop(fs);
    let fs = img.mount();
    assert_eq!(read_all(&fs, f), d);
}

/// Values up to 64 KiB (Linux's XATTR_SIZE_MAX) are stored in pieces committed together, and
/// thousands of attributes fit one file; both survive unmount, a crash, and log compaction.
#[test]
fn big_xattr_values_and_many_xattrs() {
    let img = Image::new("bigxattr", 64 << 20);
    let fs = img.mount();
    let f = create(&fs, ROOT_INO, "f");
    let big: Vec<u8> = (0..XATTR_VALUE_MAX as u32).map(|i| (i * 7 % 253) as u8).collect();
    fs.setxattr(f, b"user.big", &big, XattrFlags::default()).unwrap();
    fs.setxattr(f, b"user.edge", &big[..2 * pmfs::layout::XATTR_PIECE], XattrFlags::default()).unwrap();
    fs.setxattr(f, b"user.empty", b"", XattrFlags::default()).unwrap();
    let too_big = vec![0u8; XATTR_VALUE_MAX + 1];
    assert!(matches!(fs.setxattr(f, b"user.x", &too_big, XattrFlags::default()), Err(Error::TooBig)));
    for i in 0..1500 {
        fs.setxattr(f, format!("user.n{i}").as_bytes(), format!("v{i}").as_bytes(), XattrFlags::default())
            .unwrap();
    }
    let check = |fs: &pmfs::Fs| {
        assert_eq!(fs.getxattr(f, b"user.big").unwrap(), big);
        assert_eq!(fs.getxattr(f, b"user.edge").unwrap(), &big[..2 * pmfs::layout::XATTR_PIECE]);
        assert_eq!(fs.getxattr(f, b"user.empty").unwrap(), b"");
        assert_eq!(fs.getxattr(f, b"user.n1234").unwrap(), b"v1234");
        let l = fs.listxattr(f).unwrap();
        let names: Vec<&[u8]> = l
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty() && !n.starts_with(b"user.n") && *n != b"user.churn")
            .collect();
        assert_eq!(
            l.iter().filter(|&&b| b == 0).count() - names.len(),
            1500 + fs.getxattr(f, b"user.churn").is_ok() as usize
        );
        assert_eq!(
            names.len(),
            3,
            "{:?}",
            names.iter().map(|n| String::from_utf8_lossy(n)).collect::<Vec<_>>()
        );
    };
    check(&fs);
    drop(fs); // a crash: replay puts the pieces together
    let fs = img.mount();
    check(&fs);
    // Overwrite many times so the log is compacted (the snapshot writes the pieces again).
    for round in 0..40u8 {
        let v = vec![round; 40000];
        fs.setxattr(f, b"user.churn", &v, XattrFlags::default()).unwrap();
    }
    assert_eq!(fs.getxattr(f, b"user.churn").unwrap(), vec![39u8; 40000]);
    fs.unmount().unwrap();
    drop(fs);
    let fs = img.mount();
    check(&fs);
    assert_eq!(fs.getxattr(f, b"user.churn").unwrap(), vec![39u8; 40000]);
    fs.removexattr(f, b"user.big").unwrap();
    assert!(matches!(fs.getxattr(f, b"user.big"), Err(Error::NoAttr)));
    fs.unmount().unwrap();
    drop(fs);
    let r = pmfs::fsck::fsck(
        &img.path,
        &pmfs::fsck::FsckOptions { mode: pmfs::fsck::FsckMode::Check, force: true },
    )
    .unwrap();
    assert!(r.problems.is_empty(), "fsck after big xattrs: {:?}", r.problems);
}

/// The first byte of each page and the length, to compare files without printing them whole.
fn pages(data: &[u8]) -> (usize, Vec<u8>) {
    (data.len(), data.chunks(4096).map(|c| c[0]).collect())
}

#[test]
fn collapse_and_insert_range_move_the_data_and_keep_every_block_once() {
    let img = Image::new("shift", 64 << 20);
    let fs = img.mount();
    let f = create(&fs, ROOT_INO, "f");
    // Ten pages, each its own byte; page 4 a hole; a tail of 100 bytes on page 10.
    let mut model: Vec<u8> = (0..10 * 4096 + 100).map(|i| (i / 4096) as u8 + 1).collect();
    fs.write(f, 0, &model, false).unwrap();
    fs.fallocate(f, FallocMode::PunchHole, 4 * 4096, 4096).unwrap();
    model[4 * 4096..5 * 4096].fill(0);
    let free0 = fs.statfs().unwrap().blocks_free;

    // Collapse pages 2-3: everything after moves down two pages; two blocks come free.
    fs.fallocate(f, FallocMode::CollapseRange, 2 * 4096, 2 * 4096).unwrap();
    model.drain(2 * 4096..4 * 4096);
    assert_eq!(pages(&read_all(&fs, f)), pages(&model));
    assert!(read_all(&fs, f) == model);
    assert_eq!(fs.statfs().unwrap().blocks_free, free0 + 2);

    // Insert three pages at page 1: a hole opens there, the rest moves up; no block is used.
    fs.fallocate(f, FallocMode::InsertRange, 4096, 3 * 4096).unwrap();
    model.splice(4096..4096, vec![0u8; 3 * 4096]);
    assert_eq!(pages(&read_all(&fs, f)), pages(&model));
    assert!(read_all(&fs, f) == model);
    assert_eq!(fs.statfs().unwrap().blocks_free, free0 + 2);
    assert_eq!(fs.lseek(f, 4096, SeekWhence::Data).unwrap(), 4 * 4096);

    // What Linux refuses: unaligned ranges, a collapse reaching the end, an insert at the end.
    for (mode, off, len) in [
        (FallocMode::CollapseRange, 100, 4096),
        (FallocMode::CollapseRange, 0, model.len() as u64),
        (FallocMode::InsertRange, 4096, 100),
        (FallocMode::InsertRange, model.len() as u64, 4096),
    ] {
        assert!(matches!(fs.fallocate(f, mode, off, len), Err(Error::Invalid(_))), "{mode:?} {off} {len}");
    }
    assert_eq!(pages(&read_all(&fs, f)), pages(&model));
    assert!(read_all(&fs, f) == model);

    // After a crash (no unmount) the log replays to the same file, and fsck finds no block
    // claimed twice or lost, and counts the blocks statfs does.
    drop(fs);
    let fs = img.mount();
    assert_eq!(pages(&read_all(&fs, f)), pages(&model));
    assert!(read_all(&fs, f) == model);
    img.unmount_and_fsck(fs);
}

#[test]
fn chattr_flags_hold_after_compaction_a_crash_and_a_remount() {
    use pmfs::iflags::{APPEND, IMMUTABLE, NODUMP};
    let img = Image::new("chattr-flags", 64 << 20);
    let fs = img.mount();
    let log = create(&fs, ROOT_INO, "log");
    let frozen = create(&fs, ROOT_INO, "frozen");
    // Only root sets immutable or append-only; the owner may set the others.
    assert_eq!(fs.set_flags(log, APPEND, ME).unwrap_err(), Error::NotPermitted);
    fs.set_flags(log, APPEND | NODUMP, Caller::ROOT).unwrap();
    fs.set_flags(frozen, IMMUTABLE, Caller::ROOT).unwrap();
    assert_eq!(fs.set_flags(log, 0x4, Caller::ROOT).unwrap_err(), Error::NotSupported); // compress
                                                                                        // Appends, enough of them that the log is compacted (a snapshot keeps the flags).
    for i in 0..300u32 {
        fs.write(log, 0, &i.to_le_bytes(), true).unwrap();
    }
    assert_eq!(fs.write(log, 0, b"over", false).unwrap_err(), Error::NotPermitted);
    assert_eq!(fs.write(frozen, 0, b"x", true).unwrap_err(), Error::NotPermitted);
    assert_eq!(fs.unlink(ROOT_INO, b"log").unwrap_err(), Error::NotPermitted);
    assert_eq!(
        fs.setattr(frozen, &SetAttr { mode: Some(0o600), ..Default::default() }).unwrap_err(),
        Error::NotPermitted
    );
    drop(fs); // a crash: no unmount
    let fs = img.mount();
    assert_eq!(fs.getattr(log).unwrap().flags, APPEND | NODUMP);
    assert_eq!(fs.getattr(log).unwrap().size, 1200);
    assert_eq!(fs.getattr(frozen).unwrap().flags, IMMUTABLE);
    fs.set_flags(frozen, 0, Caller::ROOT).unwrap();
    fs.unlink(ROOT_INO, b"frozen").unwrap();
    img.unmount_and_fsck(fs);
    let fs = img.mount();
    assert_eq!(fs.getattr(log).unwrap().flags, APPEND | NODUMP);
    img.unmount_and_fsck(fs);
}

#[test]
fn creation_time_is_set_once_and_kept_across_changes_and_remounts() {
    let img = Image::new("btime", 64 << 20);
    let fs = img.mount();
    let before = Timespec::now();
    let f = create(&fs, ROOT_INO, "f");
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, ME).unwrap().ino;
    let after = Timespec::now();
    let born = fs.getattr(f).unwrap().btime;
    assert!(before <= born && born <= after, "btime {born:?} not between {before:?} and {after:?}");
    assert!(born <= fs.getattr(f).unwrap().ctime, "created after its first change");
    let dir_born = fs.getattr(d).unwrap().btime;
    assert!(before <= dir_born && dir_born <= after);

    // Past the coarse clock's step (a timer tick: up to 10 ms), so the change gets a later time.
    std::thread::sleep(std::time::Duration::from_millis(25));
    fs.write(f, 0, b"data", false).unwrap();
    let set = SetAttr { mode: Some(0o600), atime: Some(TimeOrNow::Now), ..Default::default() };
    let changed = fs.setattr(f, &set).unwrap();
    assert_eq!(changed.btime, born);
    assert!(changed.ctime > born && changed.mtime > born);
    fs.rename(ROOT_INO, b"f", d, b"g", RenameFlags::default()).unwrap();
    assert_eq!(fs.getattr(f).unwrap().btime, born);
    fs.unmount().unwrap();
    drop(fs);

    let fs = img.mount();
    let g = fs.lookup(d, b"g").unwrap();
    assert_eq!((g.ino, g.btime), (f, born));
    assert!(fs.getattr(ROOT_INO).unwrap().btime <= before, "the root was made by mkfs");
    assert_eq!(fs.getattr(d).unwrap().btime, dir_born);
}
