//! A full device. Each way of filling it (file data, inodes, directory entries, xattrs, one
//! inode's log, threads racing for the last blocks) fails with ENOSPC where the space runs
//! out, loses nothing written before, and leaves an image that fsck passes and whose used
//! blocks fsck counts as statfs did. Deleting still works when no block is available (the
//! allocator keeps a reserve for it) and gives the space back.

mod common;

use std::sync::Arc;

use common::Image;
use pmfs::vfs::*;
use pmfs::{Error, Fs};

const ME: Caller = Caller { uid: 0, gid: 0, pid: 1 };
const SIZE: u64 = 16 << 20;
const PAGE: u64 = 4096;

/// What file `tag` holds at `offset`: no two files, and no two nearby offsets, look alike.
fn pattern(tag: u64, offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 9) ^ tag.wrapping_mul(0x9e37)) as u8)
        .collect()
}

fn read_all(fs: &Fs, ino: Ino) -> Vec<u8> {
    let size = fs.getattr(ino).unwrap().size as usize;
    let mut buf = vec![0u8; size];
    let n = fs.read(ino, 0, &mut buf).unwrap();
    assert_eq!(n, size);
    buf
}

fn avail(fs: &Fs) -> u64 {
    fs.statfs().unwrap().blocks_avail
}

fn file(fs: &Fs, dir: Ino, name: &str) -> Ino {
    fs.mknod(dir, name.as_bytes(), libc::S_IFREG | 0o644, 0, ME).unwrap().ino
}

/// A file of the pattern `tag`, `size` bytes long, named `name` in `dir`.
struct Written {
    dir: Ino,
    name: String,
    tag: u64,
    size: u64,
}

impl Written {
    #[track_caller]
    fn check(&self, fs: &Fs) {
        let a = fs.lookup(self.dir, self.name.as_bytes()).unwrap();
        assert_eq!(a.size, self.size, "{}: size", self.name);
        assert!(read_all(fs, a.ino) == pattern(self.tag, 0, self.size as usize), "{}: content", self.name);
    }
}

/// Write files of assorted sizes into `dir`, `chunk` bytes a call, until ENOSPC. The failing
/// call must come when the space it needs is really gone, and must leave its file unchanged.
fn fill_with_data(fs: &Fs, dir: Ino, chunk: u64) -> Vec<Written> {
    let mut files = Vec::new();
    for i in 0u64.. {
        let name = format!("f{i}");
        let ino = match fs.mknod(dir, name.as_bytes(), libc::S_IFREG | 0o644, 0, ME) {
            Ok(a) => a.ino,
            Err(e) => {
                assert_eq!(e, Error::NoSpace);
                assert!(avail(fs) <= 2, "create failed with {} blocks available", avail(fs));
                return files;
            }
        };
        files.push(Written { dir, name, tag: i, size: 0 });
        let want = 1 + (i * 7919) % (96 << 10);
        let w = files.last_mut().unwrap();
        while w.size < want {
            let n = chunk.min(want - w.size);
            match fs.write(ino, w.size, &pattern(i, w.size, n as usize), false) {
                Ok((done, _)) => w.size += done as u64,
                Err(e) => {
                    assert_eq!(e, Error::NoSpace);
                    // The pages the write touches, and a log page for its entry.
                    let pages = (w.size + n).div_ceil(PAGE) - w.size / PAGE + 1;
                    assert!(
                        avail(fs) < pages,
                        "a write of {pages} pages failed with {} available",
                        avail(fs)
                    );
                    assert_eq!(fs.getattr(ino).unwrap().size, w.size, "a failed write changed the size");
                    return files;
                }
            }
        }
    }
    unreachable!()
}

/// Fill the device with one file until only about `left` blocks are available.
fn ballast(fs: &Fs, left: u64) -> Written {
    let ino = file(fs, ROOT_INO, "ballast");
    let mut w = Written { dir: ROOT_INO, name: "ballast".into(), tag: 999, size: 0 };
    while avail(fs) > left + 1 {
        let n = (avail(fs) - left - 1).min(256) * PAGE;
        fs.write(ino, w.size, &pattern(w.tag, w.size, n as usize), false).unwrap();
        w.size += n;
    }
    w
}

#[test]
fn filling_with_data_stops_at_enospc_and_loses_nothing() {
    let img = Image::new("enospc-data", SIZE);
    let fs = img.mount();
    let start = fs.statfs().unwrap();
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, ME).unwrap().ino;
    let files = fill_with_data(&fs, d, 16 << 10);
    assert!(avail(&fs) < 6, "{} blocks left", avail(&fs));
    let bytes: u64 = files.iter().map(|w| w.size).sum();
    assert!(bytes > SIZE * 3 / 4, "only {bytes} bytes fit");
    eprintln!("data: {} files, {bytes} bytes, then ENOSPC with {} blocks available", files.len(), avail(&fs));
    files.iter().for_each(|w| w.check(&fs));
    img.unmount_and_fsck(fs);

    let fs = img.mount();
    files.iter().for_each(|w| w.check(&fs));
    for w in &files {
        fs.unlink(d, w.name.as_bytes()).unwrap();
    }
    fs.rmdir(ROOT_INO, b"d").unwrap();
    // Back to the start, less the inode table blocks the files' inodes needed.
    let end = fs.statfs().unwrap();
    let tables = files.len() as u64 / 32 + 4;
    assert!(end.blocks_free + tables >= start.blocks_free, "{} -> {}", start.blocks_free, end.blocks_free);
    // And the space can be filled again.
    let d = fs.mkdir(ROOT_INO, b"again", 0o755, ME).unwrap().ino;
    let again: u64 = fill_with_data(&fs, d, 64 << 10).iter().map(|w| w.size).sum();
    assert!(again + tables * PAGE * 4 >= bytes, "{bytes} bytes fitted the first time, {again} the second");
    img.unmount_and_fsck(fs);
}

#[test]
fn filling_with_inodes_stops_at_enospc_and_loses_nothing() {
    let img = Image::new("enospc-inodes", SIZE);
    let fs = img.mount();
    let b = ballast(&fs, 300);
    let dirs: Vec<Ino> =
        (0..4).map(|i| fs.mkdir(ROOT_INO, format!("d{i}").as_bytes(), 0o755, ME).unwrap().ino).collect();
    let files_before = fs.statfs().unwrap().files_free;
    let mut made = Vec::new();
    let err = loop {
        let i = made.len();
        let (d, name) = (dirs[i % 4], format!("inode-{i}"));
        // Mostly inodes that own no block; a symlink owns one for its target.
        let r = match i % 50 {
            0 => fs.symlink(d, name.as_bytes(), b"target", ME),
            n if n % 3 == 1 => fs.mkdir(d, name.as_bytes(), 0o700, ME),
            _ => fs.mknod(d, name.as_bytes(), libc::S_IFREG | 0o600, 0, ME),
        };
        match r {
            Ok(a) => made.push((d, name, a.ino)),
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::NoSpace);
    assert!(avail(&fs) <= 2, "{} blocks left", avail(&fs));
    assert!(made.len() > 1000, "only {} inodes", made.len());
    eprintln!("inodes: {} in 300 blocks, then ENOSPC with {} blocks available", made.len(), avail(&fs));
    assert!(files_before >= made.len() as u64, "statfs promised {files_before} inodes, {} fit", made.len());
    let check = |fs: &Fs| {
        for (d, name, ino) in &made {
            assert_eq!(fs.lookup(*d, name.as_bytes()).unwrap().ino, *ino, "{name}");
        }
        b.check(fs);
    };
    check(&fs);
    img.unmount_and_fsck(fs);

    let fs = img.mount();
    check(&fs);
    let used = fs.statfs().unwrap().blocks_free;
    for (i, (d, name, _)) in made.iter().enumerate() {
        if i % 50 % 3 == 1 {
            fs.rmdir(*d, name.as_bytes()).unwrap();
        } else {
            fs.unlink(*d, name.as_bytes()).unwrap();
        }
    }
    assert!(fs.statfs().unwrap().blocks_free >= used, "deleting took space");
    // Freed inode slots are used again: as many inodes fit as before.
    let mut again = 0;
    while fs.mknod(dirs[0], format!("again-{again}").as_bytes(), libc::S_IFREG, 0, ME).is_ok() {
        again += 1;
    }
    assert!(again + 100 >= made.len(), "{} inodes the first time, {again} the second", made.len());
    img.unmount_and_fsck(fs);
}

#[test]
fn filling_a_directory_with_entries_stops_at_enospc_and_loses_nothing() {
    let img = Image::new("enospc-dentries", SIZE);
    let fs = img.mount();
    let b = ballast(&fs, 60);
    let d = fs.mkdir(ROOT_INO, b"links", 0o755, ME).unwrap().ino;
    let target = file(&fs, ROOT_INO, "target");
    fs.write(target, 0, &pattern(7, 0, 5000), false).unwrap();
    let long = |i: usize| format!("{i:0>200}");
    let mut n = 0;
    let err = loop {
        match fs.link(target, d, long(n).as_bytes()) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::NoSpace);
    assert!(avail(&fs) == 0, "{} blocks left", avail(&fs));
    assert!(n > 500, "only {n} entries");
    eprintln!("directory entries: {n} links with 200-byte names in 60 blocks, then ENOSPC");
    let check = |fs: &Fs| {
        assert_eq!(fs.getattr(target).unwrap().nlink as usize, n + 1);
        assert_eq!(fs.readdir(d, 0, usize::MAX).unwrap().len(), n + 2);
        for i in 0..n {
            assert_eq!(fs.lookup(d, long(i).as_bytes()).unwrap().ino, target);
        }
        assert_eq!(read_all(fs, target), pattern(7, 0, 5000));
        b.check(fs);
    };
    check(&fs);
    img.unmount_and_fsck(fs);

    let fs = img.mount();
    check(&fs);
    for i in 0..n {
        fs.unlink(d, long(i).as_bytes()).unwrap();
    }
    fs.rmdir(ROOT_INO, b"links").unwrap();
    assert_eq!(fs.getattr(target).unwrap().nlink, 1);
    assert!(avail(&fs) > 50, "the directory's log pages came back: {} available", avail(&fs));
    img.unmount_and_fsck(fs);
}

#[test]
fn filling_with_xattrs_stops_at_enospc_and_loses_nothing() {
    let img = Image::new("enospc-xattrs", SIZE);
    let fs = img.mount();
    let b = ballast(&fs, 60);
    let files: Vec<Ino> = (0..3).map(|i| file(&fs, ROOT_INO, &format!("x{i}"))).collect();
    let value = |f: usize, j: usize| pattern((f * 1000 + j) as u64, 0, 1500);
    let mut set = Vec::new();
    let err = loop {
        let (f, j) = (set.len() % 3, set.len() / 3);
        match fs.setxattr(files[f], format!("user.k{j}").as_bytes(), &value(f, j), XattrFlags::default()) {
            Ok(()) => set.push((f, j)),
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::NoSpace);
    assert!(avail(&fs) == 0, "{} blocks left", avail(&fs));
    assert!(set.len() > 100, "only {} xattrs", set.len());
    eprintln!("xattrs: {} of 1500 bytes in 60 blocks, then ENOSPC", set.len());
    let check = |fs: &Fs| {
        for &(f, j) in &set {
            assert_eq!(fs.getxattr(files[f], format!("user.k{j}").as_bytes()).unwrap(), value(f, j));
        }
        b.check(fs);
    };
    check(&fs);
    img.unmount_and_fsck(fs);

    let fs = img.mount();
    check(&fs);
    for &(f, j) in &set {
        fs.removexattr(files[f], format!("user.k{j}").as_bytes()).unwrap();
    }
    for (f, &ino) in files.iter().enumerate() {
        assert!(fs.listxattr(ino).unwrap().is_empty());
        fs.unlink(ROOT_INO, format!("x{f}").as_bytes()).unwrap();
    }
    assert!(avail(&fs) > 50, "the xattrs' log pages came back: {} available", avail(&fs));
    img.unmount_and_fsck(fs);
}

#[test]
fn one_inode_log_fills_the_device_and_changes_that_free_nothing_still_work() {
    let img = Image::new("enospc-log", SIZE);
    let fs = img.mount();
    let other = file(&fs, ROOT_INO, "other");
    fs.write(other, 0, b"kept", false).unwrap();
    let b = ballast(&fs, 20);
    // Small xattrs: the only thing that grows is the log.
    let f = file(&fs, ROOT_INO, "log");
    let before = avail(&fs);
    let mut n = 0;
    let err = loop {
        match fs.setxattr(f, format!("user.{n:08}").as_bytes(), b"v", XattrFlags::default()) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::NoSpace);
    assert_eq!(avail(&fs), 0);
    assert!(n > 1000, "only {n} xattrs in 20 pages");
    eprintln!("one log: {n} small xattrs in 20 blocks, then ENOSPC; 6000 changes after that");
    // Changes that keep the log's size (a mostly dead log is compacted) go on working.
    for i in 0..3000u32 {
        fs.setattr(other, &SetAttr { mode: Some(0o600 | (i & 0o77)), ..Default::default() }).unwrap();
        fs.setxattr(other, b"user.counter", &i.to_le_bytes(), XattrFlags::default()).unwrap();
    }
    assert_eq!(fs.getxattr(other, b"user.counter").unwrap(), 2999u32.to_le_bytes());
    assert_eq!(fs.listxattr(f).unwrap().len(), n * 14);
    img.unmount_and_fsck(fs);

    let fs = img.mount();
    assert_eq!(fs.listxattr(f).unwrap().len(), n * 14);
    assert_eq!(fs.getattr(other).unwrap().perm, 0o600 | (2999 & 0o77));
    assert_eq!(read_all(&fs, other), b"kept");
    b.check(&fs);
    fs.unlink(ROOT_INO, b"log").unwrap();
    // Give or take a page of the other file's log, which changed 6000 times meanwhile.
    assert!(avail(&fs) + 2 >= before, "{before} blocks available before, {} after", avail(&fs));
    img.unmount_and_fsck(fs);
}

/// Regression: with no block available, unlink needed a log page for the inode it removed
/// and truncate a block for the copied last page, so a full device could not be emptied.
#[test]
fn unlink_rmdir_truncate_and_removexattr_work_with_no_block_available() {
    let img = Image::new("enospc-wedge", SIZE);
    let fs = img.mount();
    let empty_dir = fs.mkdir(ROOT_INO, b"empty", 0o755, ME).unwrap().ino;
    // Enough long xattr names that removing them needs fresh log pages before the log is
    // mostly dead (when a full device would compact it instead).
    let x = file(&fs, ROOT_INO, "x");
    for i in 0..300 {
        fs.setxattr(x, format!("user.{i:0>95}").as_bytes(), b"1", XattrFlags::default()).unwrap();
    }
    let big = file(&fs, ROOT_INO, "big");
    fs.write(big, 0, &pattern(1, 0, 40000), false).unwrap();
    let b = ballast(&fs, 0);
    // Use up what is left with inodes that own no block, so that nothing deleted below
    // frees a block before the next deletion needs one.
    let mut n = 0;
    while fs.mknod(ROOT_INO, format!("e{n}").as_bytes(), libc::S_IFREG, 0, ME).is_ok() {
        n += 1;
    }
    assert_eq!(avail(&fs), 0);
    assert_eq!(fs.write(x, 0, b"no", false), Err(Error::NoSpace));
    for i in 0..n {
        fs.unlink(ROOT_INO, format!("e{i}").as_bytes()).unwrap();
    }
    fs.rmdir(ROOT_INO, b"empty").unwrap();
    assert_eq!(fs.getattr(empty_dir), Err(Error::NotFound));
    for i in 0..300 {
        fs.removexattr(x, format!("user.{i:0>95}").as_bytes()).unwrap();
    }
    let cut = fs.setattr(big, &SetAttr { size: Some(10001), ..Default::default() }).unwrap();
    assert_eq!(cut.size, 10001);
    assert_eq!(read_all(&fs, big), pattern(1, 0, 10001));
    b.check(&fs);
    img.unmount_and_fsck(fs);
}

#[test]
fn threads_racing_for_the_last_blocks_lose_nothing() {
    let img = Image::new("enospc-race", SIZE);
    let fs = Arc::new(img.mount());
    let start = fs.statfs().unwrap();
    let d = fs.mkdir(ROOT_INO, b"race", 0o755, ME).unwrap().ino;
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let fs = fs.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                'files: for i in 0.. {
                    let tag = t * 100_000 + i;
                    let name = format!("t{t}-{i}");
                    let Ok(a) = fs.mknod(d, name.as_bytes(), libc::S_IFREG | 0o644, 0, ME) else { break };
                    mine.push(Written { dir: d, name, tag, size: 0 });
                    let w = mine.last_mut().unwrap();
                    for _ in 0..1 + i % 5 {
                        let n = 1 + (tag * 131) % 12288;
                        match fs.write(a.ino, w.size, &pattern(tag, w.size, n as usize), false) {
                            Ok(_) => w.size += n,
                            Err(e) => {
                                assert_eq!(e, Error::NoSpace);
                                break 'files;
                            }
                        }
                    }
                }
                mine
            })
        })
        .collect();
    let files: Vec<Written> = threads.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(avail(&fs) < 6, "{} blocks left", avail(&fs));
    eprintln!("race: 4 threads wrote {} files until ENOSPC, {} blocks left", files.len(), avail(&fs));
    files.iter().for_each(|w| w.check(&fs));
    let fs = Arc::into_inner(fs).unwrap();
    img.unmount_and_fsck(fs);

    let fs = Arc::new(img.mount());
    files.iter().for_each(|w| w.check(&fs));
    // Delete in parallel too, with the device full.
    let names: Vec<String> = files.iter().map(|w| w.name.clone()).collect();
    std::thread::scope(|s| {
        for part in names.chunks(names.len().div_ceil(4)) {
            let fs = &fs;
            s.spawn(move || part.iter().for_each(|n| fs.unlink(d, n.as_bytes()).unwrap()));
        }
    });
    fs.rmdir(ROOT_INO, b"race").unwrap();
    let end = fs.statfs().unwrap();
    let tables = files.len() as u64 / 32 + 4;
    assert!(end.blocks_free + tables >= start.blocks_free, "{} -> {}", start.blocks_free, end.blocks_free);
    let fs = Arc::into_inner(fs).unwrap();
    img.unmount_and_fsck(fs);
}
