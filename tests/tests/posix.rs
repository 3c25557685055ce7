//! POSIX semantics on a zpmfs mount, checked the way a user would: links, renames, xattrs,
//! sparse files and SEEK_HOLE/SEEK_DATA, a 1 TiB file, mmap, O_APPEND, fallocate, mknod.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;

use zpmfs_tests::*;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// renameat2(2); Err(errno).
fn renameat2(from: &Path, to: &Path, flags: u32) -> Result<(), i32> {
    let (a, b) = (cstr(from), cstr(to));
    // SAFETY: both are valid C strings that outlive the call.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// lseek(2) with SEEK_DATA / SEEK_HOLE; Err(errno).
fn seek(f: &File, offset: i64, whence: i32) -> Result<i64, i32> {
    // SAFETY: lseek on an fd we own.
    let r = unsafe { libc::lseek(f.as_raw_fd(), offset, whence) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// fallocate(2); panics with the errno on failure.
#[track_caller]
fn fallocate(f: &File, mode: i32, offset: i64, len: i64) {
    // SAFETY: fallocate on an fd we own.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), mode, offset, len) };
    assert_eq!(rc, 0, "fallocate(mode {mode:#x}, {offset}, {len}): {}", std::io::Error::last_os_error());
}

fn read_at(f: &File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

#[test]
fn hard_links_share_one_inode() {
    let t = TestFs::new("hardlink");
    let a = t.path("a");
    fs::write(&a, b"hello").unwrap();
    fs::create_dir(t.path("sub")).unwrap();
    fs::hard_link(&a, t.path("b")).unwrap();
    fs::hard_link(&a, t.path("sub/c")).unwrap();
    let (ma, mb) = (fs::metadata(&a).unwrap(), fs::metadata(t.path("sub/c")).unwrap());
    assert_eq!(ma.ino(), mb.ino());
    assert_eq!(ma.nlink(), 3);
    let stat = run(Command::new("stat").args(["-c", "%h"]).arg(&a)).ok();
    assert_eq!(stat.stdout.trim(), "3", "stat shows the link count");
    fs::OpenOptions::new().append(true).open(t.path("b")).unwrap().write_all(b" world").unwrap();
    assert_eq!(fs::read(t.path("sub/c")).unwrap(), b"hello world");
    fs::remove_file(&a).unwrap();
    assert_eq!(fs::metadata(t.path("b")).unwrap().nlink(), 2);
    fs::remove_file(t.path("b")).unwrap();
    assert_eq!(fs::metadata(t.path("sub/c")).unwrap().nlink(), 1);
    assert_eq!(fs::read(t.path("sub/c")).unwrap(), b"hello world");
    // A directory cannot be hard-linked.
    assert!(fs::hard_link(t.path("sub"), t.path("sub2")).is_err());
}

#[test]
fn symlinks_read_and_follow() {
    let t = TestFs::new("symlink");
    fs::create_dir_all(t.path("d/e")).unwrap();
    fs::write(t.path("d/e/target.txt"), b"through the link").unwrap();
    std::os::unix::fs::symlink("d/e/target.txt", t.path("ln")).unwrap();
    std::os::unix::fs::symlink("d/e", t.path("dirln")).unwrap();
    std::os::unix::fs::symlink("nowhere", t.path("dangling")).unwrap();
    let long_target = "x/".repeat(1000) + "end";
    std::os::unix::fs::symlink(&long_target, t.path("long")).unwrap();

    assert_eq!(fs::read_link(t.path("ln")).unwrap(), Path::new("d/e/target.txt"));
    assert_eq!(fs::read(t.path("ln")).unwrap(), b"through the link");
    assert_eq!(fs::read(t.path("dirln/target.txt")).unwrap(), b"through the link");
    assert!(fs::symlink_metadata(t.path("ln")).unwrap().file_type().is_symlink());
    assert_eq!(fs::symlink_metadata(t.path("ln")).unwrap().len(), "d/e/target.txt".len() as u64);
    assert!(fs::metadata(t.path("ln")).unwrap().is_file());
    assert!(fs::metadata(t.path("dangling")).is_err(), "following a dangling link fails");
    assert_eq!(fs::read_link(t.path("long")).unwrap(), Path::new(&long_target));
    let out = run(Command::new("readlink").arg("-f").arg(t.path("dirln"))).ok();
    assert_eq!(out.stdout.trim(), t.path("d/e").to_string_lossy());
}

#[test]
fn rename_over_an_existing_file_and_an_empty_dir() {
    let t = TestFs::new("rename");
    fs::write(t.path("new"), b"new contents").unwrap();
    fs::write(t.path("old"), b"old contents, longer").unwrap();
    let ino = fs::metadata(t.path("new")).unwrap().ino();
    fs::rename(t.path("new"), t.path("old")).unwrap();
    assert!(!t.path("new").exists());
    assert_eq!(fs::read(t.path("old")).unwrap(), b"new contents");
    assert_eq!(fs::metadata(t.path("old")).unwrap().ino(), ino);

    // A directory over an empty directory, into another directory.
    fs::create_dir_all(t.path("a/inner")).unwrap();
    fs::write(t.path("a/inner/f"), b"f").unwrap();
    fs::create_dir_all(t.path("b/empty")).unwrap();
    fs::rename(t.path("a/inner"), t.path("b/empty")).unwrap();
    assert_eq!(fs::read(t.path("b/empty/f")).unwrap(), b"f");
    assert!(!t.path("a/inner").exists());
    assert_eq!(fs::metadata(t.path("a")).unwrap().nlink(), 2, "a lost its subdirectory");
    assert_eq!(fs::metadata(t.path("b")).unwrap().nlink(), 3, "b has one subdirectory");

    // What must fail, and leave things as they were.
    fs::create_dir_all(t.path("full/x")).unwrap();
    fs::create_dir(t.path("d2")).unwrap();
    let e = fs::rename(t.path("d2"), t.path("full")).unwrap_err();
    assert!(
        matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)),
        "dir over non-empty dir: {e}"
    );
    let e = fs::rename(t.path("old"), t.path("d2")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EISDIR), "file over dir: {e}");
    let e = fs::rename(t.path("d2"), t.path("old")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "dir over file: {e}");
    let e = fs::rename(t.path("full"), t.path("full/x/inside")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "dir into itself: {e}");
    assert!(t.path("full/x").is_dir() && t.path("d2").is_dir());
    // mv as users run it.
    sh(&t.mnt, "mv old d2/ && test -f d2/old && mv d2 renamed && test -f renamed/old");
}

#[test]
fn rename_noreplace_and_exchange() {
    let t = TestFs::new("renameat2");
    fs::write(t.path("file"), b"file").unwrap();
    fs::write(t.path("other"), b"other").unwrap();
    fs::create_dir(t.path("dir")).unwrap();
    fs::write(t.path("dir/inside"), b"inside").unwrap();

    assert_eq!(renameat2(&t.path("file"), &t.path("other"), libc::RENAME_NOREPLACE), Err(libc::EEXIST));
    assert_eq!(fs::read(t.path("other")).unwrap(), b"other", "NOREPLACE left the target alone");
    renameat2(&t.path("file"), &t.path("fresh"), libc::RENAME_NOREPLACE).unwrap();
    assert_eq!(fs::read(t.path("fresh")).unwrap(), b"file");

    // Exchange a file and a directory.
    renameat2(&t.path("fresh"), &t.path("dir"), libc::RENAME_EXCHANGE).unwrap();
    assert_eq!(fs::read(t.path("dir")).unwrap(), b"file");
    assert_eq!(fs::read(t.path("fresh/inside")).unwrap(), b"inside");
    // Exchange with a missing name fails and changes nothing.
    assert_eq!(renameat2(&t.path("other"), &t.path("missing"), libc::RENAME_EXCHANGE), Err(libc::ENOENT));
    assert_eq!(fs::read(t.path("other")).unwrap(), b"other");

    // WHITEOUT (what overlayfs does on its upper layer): the old name becomes a 0:0 char device.
    renameat2(&t.path("other"), &t.path("fresh/moved"), libc::RENAME_WHITEOUT).unwrap();
    assert_eq!(fs::read(t.path("fresh/moved")).unwrap(), b"other");
    let w = fs::symlink_metadata(t.path("other")).unwrap();
    assert!(w.file_type().is_char_device(), "the whiteout is a character device");
    assert_eq!(w.rdev(), 0);
    t.unmount();
    t.mount();
    assert!(fs::symlink_metadata(t.path("other")).unwrap().file_type().is_char_device());
}

#[test]
fn user_xattrs_set_get_list_remove() {
    require_tool("getfattr");
    require_tool("setfattr");
    let t = TestFs::new("xattr");
    let f = t.path("f");
    fs::write(&f, b"data").unwrap();
    sh(&t.mnt, "setfattr -n user.color -v blue f && setfattr -n user.empty f && mkdir d && setfattr -n user.dir -v yes d");
    let big: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let (path, name_big) = (cstr(&f), CString::new("user.big").unwrap());
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe { libc::setxattr(path.as_ptr(), name_big.as_ptr(), big.as_ptr().cast(), big.len(), 0) };
    assert_eq!(rc, 0, "setxattr user.big: {}", std::io::Error::last_os_error());

    let mut buf = vec![0u8; 4096];
    // SAFETY: as above; getxattr writes at most buf.len() bytes.
    let n = unsafe { libc::getxattr(path.as_ptr(), name_big.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(n, big.len() as isize, "getxattr user.big: {}", std::io::Error::last_os_error());
    assert_eq!(&buf[..big.len()], &big[..]);

    let dump = sh(&t.mnt, "getfattr -d --absolute-names f");
    assert!(dump.contains("user.color=\"blue\""), "{dump}");
    assert!(dump.contains("user.empty"), "{dump}");
    assert!(dump.contains("user.big=0s"), "a binary value is dumped base64: {dump}");
    let dump = sh(&t.mnt, "getfattr -n user.dir --only-values d");
    assert_eq!(dump, "yes");

    // SAFETY: as above.
    let n = unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n > 0, "listxattr: {}", std::io::Error::last_os_error());
    let mut names: Vec<&[u8]> = buf[..n as usize].split(|b| *b == 0).filter(|s| !s.is_empty()).collect();
    names.sort();
    assert_eq!(names, [&b"user.big"[..], b"user.color", b"user.empty"]);

    // CREATE on an existing name, REPLACE on a missing one.
    let name_color = CString::new("user.color").unwrap();
    let name_none = CString::new("user.none").unwrap();
    // SAFETY: as above.
    let rc = unsafe {
        libc::setxattr(path.as_ptr(), name_color.as_ptr(), b"red".as_ptr().cast(), 3, libc::XATTR_CREATE)
    };
    assert_eq!((rc, errno()), (-1, libc::EEXIST));
    // SAFETY: as above.
    let rc = unsafe {
        libc::setxattr(path.as_ptr(), name_none.as_ptr(), b"x".as_ptr().cast(), 1, libc::XATTR_REPLACE)
    };
    assert_eq!((rc, errno()), (-1, libc::ENODATA));

    sh(&t.mnt, "setfattr -x user.color f");
    // SAFETY: as above.
    let n = unsafe { libc::getxattr(path.as_ptr(), name_color.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!((n, errno()), (-1, libc::ENODATA), "a removed attribute is gone");
    let dump = sh(&t.mnt, "getfattr -d f");
    assert!(!dump.contains("user.color") && dump.contains("user.empty"), "{dump}");
    // Attributes survive a rename.
    fs::rename(&f, t.path("g")).unwrap();
    assert!(sh(&t.mnt, "getfattr -d g").contains("user.big"));
}

#[test]
fn sparse_file_with_seek_hole_and_seek_data() {
    let t = TestFs::new("sparse");
    const GIB: u64 = 1 << 30;
    let f =
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(t.path("sparse")).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"at one gibibyte", GIB).unwrap();
    let m = f.metadata().unwrap();
    assert_eq!(m.len(), GIB + 15);
    assert!(m.blocks() * 512 < 1 << 20, "a sparse file uses little space: {} blocks", m.blocks());
    assert_bytes(&read_at(&f, 4096, 8192), &[0u8; 8192], "a hole");
    assert_eq!(read_at(&f, GIB - 10, 10), vec![0u8; 10]);
    assert_eq!(read_at(&f, GIB, 15), b"at one gibibyte");

    assert_eq!(seek(&f, 0, libc::SEEK_DATA), Ok(0));
    let hole = seek(&f, 0, libc::SEEK_HOLE).unwrap();
    assert!((4..=1 << 20).contains(&hole), "the first hole starts after the head block: {hole}");
    let data = seek(&f, hole, libc::SEEK_DATA).unwrap();
    assert!(data <= GIB as i64 && data > GIB as i64 - (2 << 20), "data resumes at 1 GiB: {data}");
    assert_eq!(seek(&f, GIB as i64, libc::SEEK_HOLE), Ok((GIB + 15) as i64), "end of file is a hole");
    assert_eq!(seek(&f, (GIB + 15) as i64, libc::SEEK_DATA), Err(libc::ENXIO));
    // cp --sparse keeps it sparse (it uses SEEK_DATA/SEEK_HOLE).
    sh(&t.mnt, "cp --sparse=always sparse copy");
    let copy = File::open(t.path("copy")).unwrap();
    assert_eq!(copy.metadata().unwrap().len(), GIB + 15);
    assert!(copy.metadata().unwrap().blocks() * 512 < 1 << 20, "the copy is sparse too");
    assert_eq!(
        (read_at(&copy, 0, 4), read_at(&copy, GIB, 15)),
        (b"head".to_vec(), b"at one gibibyte".to_vec())
    );
}

#[test]
fn one_tib_sparse_file() {
    let t = TestFs::new("tib");
    const TIB: u64 = 1 << 40;
    sh(&t.mnt, "truncate -s 1T big");
    let f = OpenOptions::new().read(true).write(true).open(t.path("big")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), TIB);
    f.write_all_at(b"Z", TIB - 1).unwrap();
    assert_eq!(f.metadata().unwrap().len(), TIB);
    assert_eq!(read_at(&f, TIB - 1, 1), b"Z");
    assert_bytes(&read_at(&f, TIB - 4097, 4096), &[0u8; 4096], "the hole before the last byte");
    let mut tail = Vec::new();
    let mut g = File::open(t.path("big")).unwrap();
    g.seek(SeekFrom::End(-1)).unwrap();
    g.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, b"Z");
    assert!(f.metadata().unwrap().blocks() * 512 < 1 << 20);
    let st = t.statvfs();
    assert!(st.f_bfree * st.f_frsize > 100 << 20, "1 TiB of hole costs no space");
}

#[test]
fn mmap_write_then_read() {
    let t = TestFs::new("mmap");
    let path = t.path("mapped");
    let len = 64 * 1024;
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    f.set_len(len as u64).unwrap();
    // SAFETY: a fresh shared mapping of `len` bytes of a file we hold open; unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
    let expected: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
    // SAFETY: the mapping is `len` bytes long, writable, and nothing else aliases it here.
    let mapped = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
    mapped.copy_from_slice(&expected);
    // SAFETY: p and len are those of the mapping above.
    assert_eq!(
        unsafe { libc::msync(p, len, libc::MS_SYNC) },
        0,
        "msync: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: as above; `mapped` is not used after this.
    assert_eq!(unsafe { libc::munmap(p, len) }, 0);
    drop(f);
    assert_bytes(&fs::read(&path).unwrap(), &expected, "read() after writing through the mapping");

    // And the other way: write(), then read through a fresh mapping.
    fs::write(&path, vec![0x5Au8; len]).unwrap();
    let f = File::open(&path).unwrap();
    // SAFETY: a read-only shared mapping of `len` bytes; unmapped below.
    let p =
        unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    assert_ne!(p, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
    // SAFETY: the mapping is `len` readable bytes.
    let seen = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec();
    // SAFETY: p and len are those of the mapping above.
    unsafe { libc::munmap(p, len) };
    assert!(seen.iter().all(|b| *b == 0x5A), "the mapping sees what write() stored");
}

#[test]
fn o_append_from_two_handles() {
    let t = TestFs::new("append");
    let path = t.path("log");
    fs::write(&path, b"start\n").unwrap();
    let mut a = OpenOptions::new().append(true).open(&path).unwrap();
    let mut b = OpenOptions::new().append(true).open(&path).unwrap();
    let mut expected = b"start\n".to_vec();
    for i in 0..100 {
        let (h, tag) = if i % 2 == 0 { (&mut a, 'A') } else { (&mut b, 'B') };
        let line = format!("{tag}{i:04}{}\n", ".".repeat(i % 37));
        h.write_all(line.as_bytes()).unwrap();
        expected.extend_from_slice(line.as_bytes());
    }
    assert_bytes(&fs::read(&path).unwrap(), &expected, "appends from two handles");
    // A pwrite-less append after a seek still goes to the end.
    a.seek(SeekFrom::Start(0)).unwrap();
    a.write_all(b"tail\n").unwrap();
    assert!(fs::read(&path).unwrap().ends_with(b"tail\n"));
    assert!(fs::read(&path).unwrap().starts_with(b"start\n"));
}

#[test]
fn fallocate_modes_keep_contents_right() {
    let t = TestFs::new("fallocate");
    let open = |name: &str| {
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(t.path(name)).unwrap()
    };

    // Default mode: allocates and extends.
    let f = open("alloc");
    fallocate(&f, 0, 0, 1 << 20);
    let m = f.metadata().unwrap();
    assert_eq!(m.len(), 1 << 20);
    assert!(m.blocks() * 512 >= 1 << 20, "1 MiB allocated: {} blocks", m.blocks());
    assert_bytes(&read_at(&f, 0, 1 << 20), &vec![0u8; 1 << 20], "a fallocated range");

    // KEEP_SIZE: allocates beyond the end, size unchanged, contents unchanged.
    let f = open("keep");
    f.write_all_at(&[0x11; 4096], 0).unwrap();
    fallocate(&f, libc::FALLOC_FL_KEEP_SIZE, 0, 256 * 1024);
    assert_eq!(f.metadata().unwrap().len(), 4096);
    assert_eq!(read_at(&f, 0, 4096), vec![0x11; 4096]);

    // PUNCH_HOLE (with KEEP_SIZE, as the kernel requires): zeros in the hole, the rest kept.
    let f = open("punch");
    f.write_all_at(&vec![0xAB; 64 * 1024], 0).unwrap();
    fallocate(&f, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 16 * 1024, 16 * 1024);
    assert_eq!(f.metadata().unwrap().len(), 64 * 1024);
    let all = read_at(&f, 0, 64 * 1024);
    assert!(all[..16 * 1024].iter().all(|b| *b == 0xAB));
    assert!(all[16 * 1024..32 * 1024].iter().all(|b| *b == 0), "the punched range reads as zeros");
    assert!(all[32 * 1024..].iter().all(|b| *b == 0xAB));
    assert_eq!(seek(&f, 0, libc::SEEK_HOLE), Ok(16 * 1024), "the punched range is a hole");
    // A partial-block punch zeroes just those bytes.
    fallocate(&f, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 40 * 1024 + 100, 50);
    let part = read_at(&f, 40 * 1024, 4096);
    assert!(part[..100].iter().all(|b| *b == 0xAB) && part[100..150].iter().all(|b| *b == 0));
    assert!(part[150..].iter().all(|b| *b == 0xAB));

    // ZERO_RANGE: zeros inside, extends the size past the end without KEEP_SIZE.
    let f = open("zero");
    f.write_all_at(&vec![0xCD; 64 * 1024], 0).unwrap();
    fallocate(&f, libc::FALLOC_FL_ZERO_RANGE, 4096 + 10, 8192);
    let all = read_at(&f, 0, 64 * 1024);
    assert!(all[..4106].iter().all(|b| *b == 0xCD));
    assert!(all[4106..4106 + 8192].iter().all(|b| *b == 0));
    assert!(all[4106 + 8192..].iter().all(|b| *b == 0xCD));
    fallocate(&f, libc::FALLOC_FL_ZERO_RANGE, 60 * 1024, 20 * 1024);
    assert_eq!(f.metadata().unwrap().len(), 80 * 1024);
    assert_bytes(&read_at(&f, 60 * 1024, 20 * 1024), &[0u8; 20 * 1024], "a zeroed range past the old end");
    fallocate(&f, libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE, 80 * 1024, 4096);
    assert_eq!(f.metadata().unwrap().len(), 80 * 1024);
}

#[test]
fn mknod_fifo_and_device_nodes() {
    let t = TestFs::new("mknod");
    let fifo = t.path("fifo");
    let c = cstr(&fifo);
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo: {}", std::io::Error::last_os_error());
    let m = fs::symlink_metadata(&fifo).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o777, 0o644);
    // Data passes through it (the pipe itself lives in the kernel).
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut w = OpenOptions::new().write(true).open(&writer_path).unwrap();
        w.write_all(b"through the fifo").unwrap();
    });
    let mut got = String::new();
    File::open(&fifo).unwrap().read_to_string(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got, "through the fifo");

    // Character device node (as root): type and rdev kept.
    let chr = cstr(&t.path("null"));
    // SAFETY: a valid C string.
    let rc = unsafe { libc::mknod(chr.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
    assert_eq!(rc, 0, "mknod c 1 3: {}", std::io::Error::last_os_error());
    let m = fs::symlink_metadata(t.path("null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (1, 3));
    sh(&t.mnt, "mkfifo p2 && test -p p2 && rm fifo p2 null");
    assert_eq!(fs::read_dir(&t.mnt).unwrap().count(), 0);
}

#[test]
fn file_sizes_around_block_boundaries_read_back() {
    let t = TestFs::new("sizes");
    let mut rng = Rng::new(9);
    for size in [0usize, 1, 511, 4095, 4096, 4097, 8191, 8192, 12289, 1 << 20, (1 << 20) + 3] {
        let data = rng.bytes(size);
        let p = t.path(&format!("f{size}"));
        fs::write(&p, &data).unwrap();
        assert_bytes(&fs::read(&p).unwrap(), &data, &format!("a file of {size} bytes"));
        // Overwrite a range that straddles a block boundary, then shrink and grow.
        if size > 4200 {
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            f.write_all_at(&[0xEE; 200], 4000).unwrap();
            let mut want = data.clone();
            want[4000..4200].fill(0xEE);
            assert_bytes(&fs::read(&p).unwrap(), &want, "overwrite across a block boundary");
            f.set_len(4050).unwrap();
            f.set_len(9000).unwrap();
            want.truncate(4050);
            want.resize(9000, 0);
            assert_bytes(&fs::read(&p).unwrap(), &want, "truncate down then up reads zeros past the old end");
        }
    }
    // Permissions and ownership changes stick.
    let p = t.path("f1");
    sh(&t.mnt, "chmod 0751 f1 && chown 1234:5678 f1 && TZ=UTC touch -d '2001-02-03 04:05:06.789' f1");
    let m = fs::metadata(&p).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o751, 1234, 5678));
    assert_eq!((m.mtime(), m.mtime_nsec()), (981173106, 789_000_000));
}

#[test]
fn write_by_another_user_drops_setuid_and_setgid() {
    let fs = TestFs::formatted("killsuid", DEFAULT_IMAGE_SIZE);
    let out = fs.try_mount(&["-o", "allow_other"]);
    assert!(out.success(), "mount -o allow_other: {}", out.text());
    let f = fs.path("suid");
    std::fs::write(&f, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o6777)).unwrap();
    require_tool("setpriv");
    let cmd = format!("echo more >> {}", f.display());
    let st = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", &cmd])
        .status()
        .unwrap();
    assert!(st.success(), "write as nobody failed");
    let mode = std::fs::metadata(&f).unwrap().permissions().mode();
    assert_eq!(mode & 0o6000, 0, "setuid/setgid survived a write by another user: {mode:o}");
    assert_eq!(std::fs::read(&f).unwrap(), b"#!/bin/sh\nmore\n");
}

/// fstests generic/355's cases: the unprivileged owner's O_DIRECT write drops setuid, and setgid
/// only where group execute is set; stat right after the write already shows it.
#[test]
fn owners_direct_write_drops_setuid_and_stat_shows_it_at_once() {
    let fs = TestFs::formatted("killsuid-dio", DEFAULT_IMAGE_SIZE);
    let out = fs.try_mount(&["-o", "allow_other"]);
    assert!(out.success(), "mount -o allow_other: {}", out.text());
    require_tool("setpriv");
    let f = fs.path("owned");
    std::fs::write(&f, b"this is a test\n").unwrap();
    std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
    for (before, after) in [(0o6644, 0o2644), (0o6744, 0o2744), (0o6654, 0o0654), (0o6754, 0o0754)] {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(before)).unwrap();
        let st = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "dd", "if=/dev/zero"])
            .arg(format!("of={}", f.display()))
            .args(["bs=4096", "count=1", "oflag=direct", "conv=notrunc", "status=none"])
            .status()
            .unwrap();
        assert!(st.success(), "O_DIRECT write as the owner failed");
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, after, "mode {before:o} after the owner's direct write is {mode:o}, not {after:o}");
    }
}

#[test]
fn an_open_directory_outlives_rmdir() {
    let fs = TestFs::new("opendir");
    let d = fs.path("d");
    std::fs::create_dir(&d).unwrap();
    let handle = File::open(&d).unwrap();
    std::fs::remove_dir(&d).unwrap();
    let meta = handle.metadata().expect("fstat of an open, removed directory");
    assert!(meta.is_dir());
    assert_eq!(meta.nlink(), 0);
    drop(handle);
    assert!(!d.exists());
}
