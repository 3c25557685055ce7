//! The server half of the ZUF transport without the kernel: operations built as zuf.ko builds
//! them, in a buffer and a window of ordinary memory, served against a real zpmfs image.

use std::path::PathBuf;

use zus_core::fs_api::ZusFs;
use zus_core::zuf::abi::*;
use zus_core::zuf::dispatch::serve;
use zus_core::zuf::sys::{anonymous, Mapping};

struct Img(PathBuf);
impl Drop for Img {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn fresh(tag: &str) -> (Img, pmfs::Fs) {
    let path = PathBuf::from(format!("/dev/shm/zuf-dispatch-{tag}-{}.img", std::process::id()));
    std::fs::File::create(&path).unwrap().set_len(32 << 20).unwrap();
    let dev = pmfs::device::Device::open(&path, true).unwrap();
    pmfs::format::format(&dev, &Default::default()).unwrap();
    drop(dev);
    let fs = <pmfs::Fs as ZusFs>::mount(std::slice::from_ref(&path), &Default::default()).unwrap();
    (Img(path), fs)
}

fn blank(op: u32, ino: u64) -> ZufOpBuf {
    ZufOpBuf {
        op,
        flags: 0,
        sb_id: 1,
        ino,
        ino2: 0,
        offset: 0,
        len: 0,
        window_off: 0,
        mode: 0,
        rdev: 0,
        uid: 0,
        gid: 0,
        name_len: 0,
        name2_len: 0,
        name: [0; ZUF_NAME_MAX],
        name2: [0; ZUF_NAME_MAX],
        set: Default::default(),
        nr_evict: 0,
        pad2: 0,
        evict: [0; ZUF_EVICT_BATCH],
        result: 0,
        pad: 0,
        out_len: 0,
        out_offset: 0,
        attr: Default::default(),
        statfs: Default::default(),
    }
}

fn named(op: u32, ino: u64, name: &str) -> ZufOpBuf {
    let mut b = blank(op, ino);
    b.name[..name.len()].copy_from_slice(name.as_bytes());
    b.name_len = name.len() as u32;
    b
}

fn run(fs: &pmfs::Fs, op: &mut ZufOpBuf, window: &mut Mapping) -> i32 {
    serve(fs, op, window)
}

#[test]
fn create_write_read_readdir_and_get_block_through_the_window() {
    let (_img, fs) = fresh("io");
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    let mut op = named(op::MKNOD, 1, "file");
    op.mode = libc::S_IFREG | 0o640;
    op.uid = 7;
    assert_eq!(run(&fs, &mut op, &mut window), 0);
    let ino = op.attr.ino;
    assert_eq!(op.attr.mode, libc::S_IFREG | 0o640);
    assert_eq!(op.attr.uid, 7);

    // WRITE: the data sits in the window at window_off, as the application's pages would.
    window.slice(100, 5000).unwrap().fill(0x42);
    let mut w = blank(op::WRITE, ino);
    w.offset = 10;
    w.len = 5000;
    w.window_off = 100;
    assert_eq!(run(&fs, &mut w, &mut window), 0);
    assert_eq!((w.out_len, w.out_offset, w.attr.size), (5000, 10, 5010));

    let mut r = blank(op::READ, ino);
    r.len = 8192;
    r.window_off = 8192;
    assert_eq!(run(&fs, &mut r, &mut window), 0);
    assert_eq!(r.out_len, 5010);
    let got = window.slice(8192, 5010).unwrap();
    assert!(got[..10].iter().all(|&b| b == 0) && got[10..].iter().all(|&b| b == 0x42));

    let mut d = blank(op::READDIR, 1);
    d.len = 4096;
    assert_eq!(run(&fs, &mut d, &mut window), 0);
    let recs = window.slice(0, d.out_len).unwrap().to_vec();
    let mut names = Vec::new();
    let mut at = 0;
    while at < recs.len() {
        let reclen = u16::from_ne_bytes([recs[at + 16], recs[at + 17]]) as usize;
        let n = recs[at + 19] as usize;
        names.push(String::from_utf8(recs[at + 24..at + 24 + n].to_vec()).unwrap());
        at += reclen;
    }
    assert_eq!(names, vec![".", "..", "file"]);

    let mut g = blank(op::GET_BLOCK, ino);
    g.offset = 4096;
    assert_eq!(run(&fs, &mut g, &mut window), 0);
    assert_eq!(g.out_offset % 4096, 0);
    let mut hole = blank(op::GET_BLOCK, ino);
    hole.offset = 1 << 20;
    assert_eq!(run(&fs, &mut hole, &mut window), -libc::ENODATA);
}

#[test]
fn hostile_requests_get_errors_not_panics() {
    let (_img, fs) = fresh("hostile");
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    let mut op = named(op::LOOKUP, 1, "x");
    op.name_len = 300;
    assert_eq!(run(&fs, &mut op, &mut window), -libc::EINVAL);
    let mut w = blank(op::WRITE, 1);
    w.window_off = ZUF_WINDOW_SIZE - 10;
    w.len = 100;
    assert_eq!(run(&fs, &mut w, &mut window), -libc::EINVAL);
    let mut bad = blank(999, 1);
    assert_eq!(run(&fs, &mut bad, &mut window), -libc::EOPNOTSUPP);
    let mut ghost = blank(op::GETATTR, 123_456);
    assert_eq!(run(&fs, &mut ghost, &mut window), -libc::ENOENT);
    let mut x = named(op::GETXATTR, 1, "user.none");
    assert_eq!(run(&fs, &mut x, &mut window), -libc::ENODATA);
}

#[test]
fn fiemap_lists_the_file_s_extents_with_the_last_one_marked() {
    let (_img, fs) = fresh("fiemap");
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    let mut op = named(op::MKNOD, 1, "sparse");
    op.mode = libc::S_IFREG | 0o644;
    assert_eq!(run(&fs, &mut op, &mut window), 0);
    let ino = op.attr.ino;
    // Data at pages 0-1 and at page 10, a hole between.
    window.slice(0, 8192).unwrap().fill(0x61);
    for (offset, len) in [(0u64, 8192u64), (10 * 4096, 4096)] {
        let mut w = blank(op::WRITE, ino);
        w.offset = offset;
        w.len = len;
        assert_eq!(run(&fs, &mut w, &mut window), 0);
    }
    let extents = |offset: u64, window_bytes: u64, window: &mut Mapping| {
        let mut f = blank(op::FIEMAP, ino);
        f.offset = offset;
        f.len = window_bytes;
        f.window_off = 8192;
        assert_eq!(run(&fs, &mut f, window), 0);
        let recs = window.slice(8192, f.out_len).unwrap().to_vec();
        recs.chunks_exact(32)
            .map(|r| {
                let word = |at: usize| u64::from_ne_bytes(r[at..at + 8].try_into().unwrap());
                (word(0), word(8), word(16), u32::from_ne_bytes(r[24..28].try_into().unwrap()))
            })
            .collect::<Vec<_>>()
    };
    let all = extents(0, 4096, &mut window);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!((all[0].0, all[0].2, all[0].3), (0, 8192, 0));
    assert_eq!((all[1].0, all[1].2, all[1].3), (40960, 4096, ZUF_EXTENT_LAST));
    assert!(all.iter().all(|e| e.1 % 4096 == 0 && e.1 > 0), "device offsets: {all:?}");
    // From inside the hole: only the last extent. A window of one record: the first only,
    // not marked last.
    assert_eq!(extents(5 * 4096, 4096, &mut window), vec![all[1]]);
    assert_eq!(extents(0, 32, &mut window), vec![all[0]]);
    // A window outside the mapping is refused.
    let mut bad = blank(op::FIEMAP, ino);
    bad.len = 4096;
    bad.window_off = ZUF_WINDOW_SIZE;
    assert_eq!(run(&fs, &mut bad, &mut window), -libc::EINVAL);
}

/// O_TMPFILE as zuf.ko sends it: TMPFILE answers a nameless regular file (link count 0) that
/// the server holds for the kernel until EVICT; LINK names it; one never named is freed at
/// its EVICT.
#[test]
fn tmpfile_is_held_until_evict_and_link_names_it() {
    let (_img, fs) = fresh("tmpfile");
    let m = zus_core::zuf::Mounted::new(fs);
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    let mut op = blank(op::TMPFILE, 1);
    op.mode = libc::S_IFREG | 0o600;
    assert_eq!(m.serve(&mut op, &mut window), 0);
    let (ino, attr) = (op.attr.ino, op.attr);
    assert_eq!((attr.mode, attr.nlink), (libc::S_IFREG | 0o600, 0));
    assert!(m.fs.readdir(1, 0, 100).unwrap().iter().all(|e| e.ino != ino), "no directory names it");

    let mut w = blank(op::WRITE, ino);
    window.slice(0, 5000).unwrap().fill(0x33);
    w.len = 5000;
    assert_eq!(m.serve(&mut w, &mut window), 0);
    let mut link = named(op::LINK, ino, "t");
    link.ino2 = 1;
    assert_eq!(m.serve(&mut link, &mut window), 0);
    assert_eq!(link.attr.nlink, 1);
    let mut evict = blank(op::EVICT, ino);
    assert_eq!(m.serve(&mut evict, &mut window), 0);
    let named_now = m.fs.lookup(1, b"t").unwrap();
    assert_eq!((named_now.ino, named_now.size, named_now.nlink), (ino, 5000, 1));

    // Never named: its EVICT frees it.
    let mut op = blank(op::TMPFILE, 1);
    op.mode = libc::S_IFREG | 0o644;
    assert_eq!(m.serve(&mut op, &mut window), 0);
    let gone = op.attr.ino;
    assert!(m.fs.getattr(gone).is_ok(), "held while the kernel has it");
    let mut evict = blank(op::EVICT, gone);
    assert_eq!(m.serve(&mut evict, &mut window), 0);
    assert!(m.fs.getattr(gone).is_err(), "freed at its EVICT");
}

/// RENAME_WHITEOUT (overlayfs, fstests generic/078): the file moves, and a 0:0 character
/// device takes its old name.
#[test]
fn rename_whiteout_leaves_a_whiteout_at_the_old_name() {
    let (_img, fs) = fresh("whiteout");
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    let mut create = named(op::MKNOD, 1, "a");
    create.mode = libc::S_IFREG | 0o644;
    assert_eq!(run(&fs, &mut create, &mut window), 0);
    let moved = create.attr.ino;
    let mut rename = named(op::RENAME, 1, "a");
    rename.ino2 = 1;
    rename.name2[..1].copy_from_slice(b"b");
    rename.name2_len = 1;
    rename.flags = ZUF_F_RENAME_WHITEOUT;
    assert_eq!(run(&fs, &mut rename, &mut window), 0);
    assert_eq!(fs.lookup(1, b"b").unwrap().ino, moved);
    let w = fs.lookup(1, b"a").unwrap();
    assert_eq!((w.kind, w.rdev), (pmfs::vfs::FileKind::CharDevice, 0));
    // An unknown flag is refused, not ignored.
    rename.flags = 0x80;
    assert_eq!(run(&fs, &mut rename, &mut window), -libc::EINVAL);
}

/// zuf.ko does not look a rename's target up: the reply names the inode that lost the name,
/// with its link count after the rename, so that the kernel can update it where it caches it
/// under another name; ino 0 when the name was free, for an exchange, or when the replaced
/// inode is gone already (nothing held it).
#[test]
fn rename_reports_the_inode_it_replaced() {
    let (_img, fs) = fresh("replaced");
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    for n in ["a", "b", "x", "y"] {
        let mut create = named(op::MKNOD, 1, n);
        create.mode = libc::S_IFREG | 0o644;
        assert_eq!(run(&fs, &mut create, &mut window), 0);
    }
    let b = fs.lookup(1, b"b").unwrap().ino;
    let mut link = named(op::LINK, b, "c");
    link.ino2 = 1;
    assert_eq!(run(&fs, &mut link, &mut window), 0);
    let rename = |from: &str, to: &str, flags: u32, window: &mut Mapping| {
        let mut r = named(op::RENAME, 1, from);
        r.ino2 = 1;
        r.name2[..to.len()].copy_from_slice(to.as_bytes());
        r.name2_len = to.len() as u32;
        r.flags = flags;
        r.attr.ino = 999; // whatever the buffer held before: the reply must overwrite it
        assert_eq!(run(&fs, &mut r, window), 0, "rename {from} -> {to}");
        r.attr
    };
    // b also has the name c: it survives with one link, and the reply says so.
    let replaced = rename("a", "b", 0, &mut window);
    assert_eq!((replaced.ino, replaced.nlink, replaced.mode), (b, 1, libc::S_IFREG | 0o644));
    assert_eq!(rename("b", "fresh", 0, &mut window).ino, 0);
    assert_eq!(rename("fresh", "c", ZUF_F_RENAME_EXCHANGE, &mut window).ino, 0);
    // y had one name and nothing held it open: freed by the rename, so nothing to report.
    assert_eq!(rename("x", "y", 0, &mut window).ino, 0);
    assert!(fs.lookup(1, b"x").is_err());

    // Held by the kernel (it made q, so it caches q's inode): kept with no link until its
    // EVICT, and reported with link count 0.
    let m = zus_core::zuf::Mounted::new(fs);
    for n in ["p", "q"] {
        let mut create = named(op::MKNOD, 1, n);
        create.mode = libc::S_IFREG | 0o600;
        assert_eq!(m.serve(&mut create, &mut window), 0);
    }
    let q = m.fs.lookup(1, b"q").unwrap().ino;
    let mut r = named(op::RENAME, 1, "p");
    r.ino2 = 1;
    r.name2[0] = b'q';
    r.name2_len = 1;
    assert_eq!(m.serve(&mut r, &mut window), 0);
    assert_eq!((r.attr.ino, r.attr.nlink), (q, 0));
    assert!(m.fs.getattr(q).is_ok(), "held while the kernel has it");
    let mut evict = blank(op::EVICT, q);
    assert_eq!(m.serve(&mut evict, &mut window), 0);
    assert!(m.fs.getattr(q).is_err(), "freed at its EVICT");
}

/// chattr over zuf.ko: a SETATTR of ZUF_SET_FLAGS alone sets them and answers them in the
/// attributes; mixed with other attributes, or a flag zpmfs does not keep, it is refused.
#[test]
fn setattr_of_chattr_flags_sets_them_alone() {
    let (_img, fs) = fresh("chattr");
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    let mut create = named(op::MKNOD, 1, "f");
    create.mode = libc::S_IFREG | 0o644;
    assert_eq!(run(&fs, &mut create, &mut window), 0);
    let ino = create.attr.ino;
    let mut set = blank(op::SETATTR, ino);
    set.set.valid = ZUF_SET_FLAGS;
    set.set.flags = pmfs::iflags::APPEND | pmfs::iflags::NODUMP;
    assert_eq!(run(&fs, &mut set, &mut window), 0);
    assert_eq!(set.attr.flags, pmfs::iflags::APPEND | pmfs::iflags::NODUMP);
    assert_eq!(fs.getattr(ino).unwrap().flags, set.set.flags);
    set.set.valid = ZUF_SET_FLAGS | ZUF_SET_MODE;
    assert_eq!(run(&fs, &mut set, &mut window), -libc::EINVAL);
    set.set.valid = ZUF_SET_FLAGS;
    set.set.flags = 0x4; // compress
    assert_eq!(run(&fs, &mut set, &mut window), -libc::EOPNOTSUPP);
    // Append-only refuses a write that is not an append (the file is empty: not at 100).
    let mut write = blank(op::WRITE, ino);
    write.offset = 100;
    write.len = 4;
    assert_eq!(run(&fs, &mut write, &mut window), -libc::EPERM);
}

/// File handles over zuf.ko: the kernel opens one with a GETATTR of its inode number. A number
/// no inode has, or a freed one, answers ENOENT (the kernel's ESTALE), never EIO or a panic;
/// a live one answers its generation, which a reused number changes.
#[test]
fn getattr_by_number_tells_freed_and_reused_inodes_apart() {
    let (_img, fs) = fresh("handles");
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    for ino in [0, 2, 3, 999, 1 << 20, 1 << 40, u64::MAX] {
        let mut get = blank(op::GETATTR, ino);
        let r = run(&fs, &mut get, &mut window);
        assert!(r == -libc::ENOENT || r == -libc::EINVAL, "GETATTR of inode {ino}: {r}");
    }
    let mut create = named(op::MKNOD, 1, "f");
    create.mode = libc::S_IFREG | 0o644;
    assert_eq!(run(&fs, &mut create, &mut window), 0);
    let (ino, generation) = (create.attr.ino, create.attr.generation);
    let mut get = blank(op::GETATTR, ino);
    assert_eq!(run(&fs, &mut get, &mut window), 0);
    assert_eq!(get.attr.generation, generation);
    assert_eq!(run(&fs, &mut named(op::UNLINK, 1, "f"), &mut window), 0);
    let mut again = named(op::MKNOD, 1, "g");
    again.mode = libc::S_IFREG | 0o644;
    assert_eq!(run(&fs, &mut again, &mut window), 0);
    if again.attr.ino == ino {
        assert_ne!(again.attr.generation, generation, "a reused number kept its generation");
    } else {
        assert_eq!(run(&fs, &mut blank(op::GETATTR, ino), &mut window), -libc::ENOENT);
    }
}

#[test]
fn create_finds_or_makes_a_regular_file_in_one_operation() {
    let (_img, fs) = fresh("create");
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    let create = |name: &str, mode: u32, flags: u32| {
        let mut op = named(op::CREATE, 1, name);
        op.mode = mode;
        op.flags = flags;
        op.uid = 7;
        op
    };
    // A new name: made, owned by the caller, out_len 1.
    let mut op = create("f", libc::S_IFREG | 0o640, 0);
    assert_eq!(run(&fs, &mut op, &mut window), 0);
    let ino = op.attr.ino;
    assert_eq!((op.out_len, op.attr.mode, op.attr.uid), (1, libc::S_IFREG | 0o640, 7));
    // The same name again: found, not made (out_len 0), mode untouched; with EXCL, EEXIST.
    let mut again = create("f", libc::S_IFREG | 0o600, 0);
    assert_eq!(run(&fs, &mut again, &mut window), 0);
    assert_eq!((again.out_len, again.attr.ino, again.attr.mode), (0, ino, libc::S_IFREG | 0o640));
    let mut excl = create("f", libc::S_IFREG | 0o600, ZUF_F_EXCL);
    assert_eq!(run(&fs, &mut excl, &mut window), -libc::EEXIST);
    // A directory's name is found as it is (the kernel's open then says EISDIR).
    let mut d = named(op::MKDIR, 1, "d");
    d.mode = libc::S_IFDIR | 0o755;
    assert_eq!(run(&fs, &mut d, &mut window), 0);
    let mut on_dir = create("d", libc::S_IFREG | 0o644, 0);
    assert_eq!(run(&fs, &mut on_dir, &mut window), 0);
    assert_eq!((on_dir.out_len, on_dir.attr.mode & libc::S_IFMT), (0, libc::S_IFDIR));
    // CREATE makes regular files only.
    let mut fifo = create("p", libc::S_IFIFO | 0o644, 0);
    assert_eq!(run(&fs, &mut fifo, &mut window), -libc::EINVAL);
    assert!(fs.lookup(1, b"p").is_err());
}

#[test]
fn an_unlinked_inode_the_kernel_dropped_is_freed_by_the_next_call_that_carries_it() {
    let (_img, fs) = fresh("evict");
    let m = zus_core::zuf::Mounted::new(fs);
    let mut window = anonymous(ZUF_WINDOW_SIZE as usize).unwrap();
    let free = |m: &zus_core::zuf::Mounted<pmfs::Fs>, window: &mut Mapping| {
        let mut s = blank(op::STATFS, 1);
        assert_eq!(m.serve(&mut s, window), 0);
        s.statfs.bfree
    };
    let before = free(&m, &mut window);
    let mut op = named(op::MKNOD, 1, "f");
    op.mode = libc::S_IFREG | 0o644;
    assert_eq!(m.serve(&mut op, &mut window), 0);
    let ino = op.attr.ino;
    window.slice(0, 1 << 20).unwrap().fill(7);
    let mut w = blank(op::WRITE, ino);
    w.len = 1 << 20;
    assert_eq!(m.serve(&mut w, &mut window), 0);
    assert_eq!(m.serve(&mut named(op::UNLINK, 1, "f"), &mut window), 0);
    // The kernel still holds it (an open descriptor): it lives on, blocks and all.
    assert_eq!(m.serve(&mut blank(op::GETATTR, ino), &mut window), 0);
    let held = free(&m, &mut window);
    assert!(held + 256 <= before, "1 MiB written: {before} -> {held} free blocks");
    // The kernel dropped it; the next call, whatever it is, carries that.
    let mut s = blank(op::STATFS, 1);
    s.nr_evict = 1;
    s.evict[0] = ino;
    assert_eq!(m.serve(&mut s, &mut window), 0);
    assert!(s.statfs.bfree >= held + 256, "blocks not given back: {held} -> {}", s.statfs.bfree);
    assert_ne!(m.serve(&mut blank(op::GETATTR, ino), &mut window), 0, "the inode outlived its release");
    // A count past the batch is a malformed call, refused before anything is served.
    let mut bad = named(op::MKNOD, 1, "g");
    bad.mode = libc::S_IFREG | 0o644;
    bad.nr_evict = ZUF_EVICT_BATCH as u32 + 1;
    assert_eq!(m.serve(&mut bad, &mut window), -libc::EINVAL);
    assert_eq!(m.serve(&mut named(op::LOOKUP, 1, "g"), &mut window), -libc::ENOENT);
}
