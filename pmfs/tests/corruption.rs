//! Corruption tests (issue 3, item 6): for each on-PM structure, build a small real
//! filesystem, unmount it cleanly, damage that structure on purpose by writing bytes into the
//! image at offsets computed from the documented layout (docs/FORMAT.md), then check that
//! (a) mount refuses with a message naming the damage, or mounts when the damage is harmless
//! to it, and never panics; (b) fsck -n -f reports it (exit 4); (c) fsck -p repairs it when
//! the repair is preen-safe and leaves exit 4 otherwise, fsck -y repairs it (exit 1), a
//! following fsck -n -f is clean (exit 0), and what was not damaged is intact.
//! Plus a seeded sweep of random byte flips over the metadata: nothing may panic, and after
//! fsck -y the image checks clean (or fsck says it cannot work on it).

mod common;

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::Image;
use pmfs::fsck::{fsck, FsckMode, FsckOptions, FsckReport};
use pmfs::layout::{Entry, BLOCK_SIZE, LOG_HEADER};
use pmfs::vfs::*;
use pmfs::{Fs, MountOptions};

const ME: Caller = Caller { uid: 0, gid: 0, pid: 1 };
const IMAGE_SIZE: u64 = 16 << 20;
/// Per-CPU inode tables in these images (common::Image formats with 2).
const CPUS: u64 = 2;
const STATE: u64 = 2 * BLOCK_SIZE;
const A_LEN: usize = 3 * 4096 + 100;
const B_LEN: usize = 5000;
const C_LEN: usize = 700;
const MANY_XATTRS: usize = 60;

// ---------------------------------------------------------------------------------------
// Raw access to the image file.

fn poke(path: &Path, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

fn peek(path: &Path, off: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, off).unwrap();
    b
}

fn peek_u64(path: &Path, off: u64) -> u64 {
    u64::from_le_bytes(peek(path, off, 8).try_into().unwrap())
}

fn poke_u64(path: &Path, off: u64, v: u64) {
    poke(path, off, &v.to_le_bytes());
}

fn flip_bit(path: &Path, off: u64, bit: u8) {
    let b = peek(path, off, 1)[0];
    poke(path, off, &[b ^ (1 << bit)]);
}

fn zero_block(path: &Path, block: u64) {
    poke(path, block * BLOCK_SIZE, &[0u8; BLOCK_SIZE as usize]);
}

/// The level-2 index block (the first one) of CPU `cpu`'s inode table.
fn index_block(path: &Path, cpu: u64) -> u64 {
    let root = peek_u64(path, 3 * BLOCK_SIZE + cpu * 8);
    peek_u64(path, root * BLOCK_SIZE)
}

/// Device offset of `ino`'s 128-byte PM inode: roots block 3 -> level-1 index -> index
/// block -> inode block of 32 inodes; ino = local * cpus + cpu + 1.
fn inode_off(path: &Path, ino: Ino) -> u64 {
    let cpu = (ino - 1) % CPUS;
    let local = (ino - 1) / CPUS;
    let root = peek_u64(path, 3 * BLOCK_SIZE + cpu * 8);
    let l2 = peek_u64(path, root * BLOCK_SIZE + (local / (512 * 32)) * 8);
    let blk = peek_u64(path, l2 * BLOCK_SIZE + ((local / 32) % 512) * 8);
    blk * BLOCK_SIZE + (local % 32) * 128
}

fn log_head(path: &Path, ino: Ino) -> u64 {
    peek_u64(path, inode_off(path, ino) + 8)
}
fn log_tail(path: &Path, ino: Ino) -> u64 {
    peek_u64(path, inode_off(path, ino) + 16)
}

/// Walk a (sound) log: its pages, head first, and its entries with their device offsets.
fn read_log(path: &Path, ino: Ino) -> (Vec<u64>, Vec<(u64, Entry)>) {
    let head = log_head(path, ino);
    let tail = log_tail(path, ino);
    let mut pages = vec![head];
    let mut entries = Vec::new();
    let mut pos = head * BLOCK_SIZE + LOG_HEADER;
    while pos != tail {
        let inp = pos % BLOCK_SIZE;
        if inp == 0 || inp + 8 > BLOCK_SIZE || peek(path, pos, 1)[0] == 0 {
            let cur = if inp == 0 { pos / BLOCK_SIZE - 1 } else { pos / BLOCK_SIZE };
            let next = peek_u64(path, cur * BLOCK_SIZE);
            assert_ne!(next, 0, "test setup: log of inode {ino} ends before its tail");
            pages.push(next);
            pos = next * BLOCK_SIZE + LOG_HEADER;
            continue;
        }
        let hdr = peek(path, pos, 8);
        let len = Entry::header_len(&hdr) as u64;
        let e = Entry::decode(&peek(path, pos, len as usize)).unwrap();
        entries.push((pos, e));
        pos += len;
    }
    (pages, entries)
}

/// Append a crafted entry (correct crc) at `ino`'s tail and advance the tail past it, as a
/// committed single-inode append would.
fn append_entry(path: &Path, ino: Ino, e: &Entry) {
    let tail_off = inode_off(path, ino) + 16;
    let tail = peek_u64(path, tail_off);
    let bytes = e.encode();
    assert!(
        tail % BLOCK_SIZE != 0 && tail % BLOCK_SIZE + bytes.len() as u64 <= BLOCK_SIZE,
        "test setup: no room for the entry in inode {ino}'s last log page"
    );
    poke(path, tail, &bytes);
    poke_u64(path, tail_off, tail + bytes.len() as u64);
}

/// A copy of an image that is removed when dropped.
struct Scratch(PathBuf);
impl Scratch {
    fn of(src: &Path, tag: &str) -> Scratch {
        let p = PathBuf::from(format!("{}.{tag}", src.display()));
        sparse_copy(src, &p);
        Scratch(p)
    }
}

/// Copy only the parts of `src` that hold data (the images are mostly holes), which keeps
/// the sweep's hundreds of copies cheap.
fn sparse_copy(src: &Path, dst: &Path) {
    use std::os::fd::AsRawFd;
    let s = std::fs::File::open(src).unwrap();
    let len = s.metadata().unwrap().len();
    let d = std::fs::File::create(dst).unwrap();
    d.set_len(len).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        // SAFETY: lseek on a descriptor we own; no memory is passed.
        let data = unsafe { libc::lseek(s.as_raw_fd(), off as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(s.as_raw_fd(), data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len } else { (hole as u64).min(len) };
        let mut at = data as u64;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            s.read_exact_at(&mut buf[..n], at).unwrap();
            d.write_all_at(&buf[..n], at).unwrap();
            at += n as u64;
        }
        off = end;
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// The filesystem every test damages.

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32 * 77) as u8 ^ (i >> 8) as u8)
        .collect()
}

fn many_name(i: usize) -> Vec<u8> {
    format!("user.k{i:02}").into_bytes()
}
fn many_value(i: usize) -> Vec<u8> {
    vec![i as u8 + 1; 200]
}

/// Run the building thread on one CPU, so inodes land in a known per-CPU table and the
/// layout is the same on every run (where the machine has that CPU; else it is left alone).
struct Pin(Option<libc::cpu_set_t>);
impl Pin {
    fn save() -> Pin {
        // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills our own set.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let ok = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0;
            Pin(ok.then_some(set))
        }
    }
    fn to(&self, cpu: usize) {
        // SAFETY: as above; sched_setaffinity only reads our set.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}
impl Drop for Pin {
    fn drop(&mut self) {
        if let Some(set) = self.0 {
            // SAFETY: restores the mask read in save().
            unsafe {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
        }
    }
}

/// /d/              dir
/// /d/sub/          dir
/// /d/a             3 pages + 100 bytes, xattr user.x = "vx"
/// /d/many          10 bytes and 60 xattrs of 200 bytes (a log of several pages)
/// /b, /d/sub/b2    one file, two names, 5000 bytes
/// /c               700 bytes, one name
/// /sym -> d/a
/// d, sub, a, many are made on CPU 0 (odd inode numbers, with the root); b, c, sym on
/// CPU 1 (even numbers) where the machine has two CPUs.
struct Tree {
    img: Image,
    d: Ino,
    a: Ino,
    b: Ino,
    c: Ino,
    many: Ino,
}

fn build(tag: &str) -> Tree {
    let img = Image::new(&format!("corrupt-{tag}"), IMAGE_SIZE);
    let pin = Pin::save();
    pin.to(0);
    let fs = img.mount();
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, ME).unwrap().ino;
    let sub = fs.mkdir(d, b"sub", 0o755, ME).unwrap().ino;
    let _ = sub;
    let a = fs.mknod(d, b"a", libc::S_IFREG | 0o644, 0, ME).unwrap().ino;
    fs.write(a, 0, &pattern(1, A_LEN), false).unwrap();
    fs.setxattr(a, b"user.x", b"vx", XattrFlags::default()).unwrap();
    let many = fs.mknod(d, b"many", libc::S_IFREG | 0o644, 0, ME).unwrap().ino;
    fs.write(many, 0, b"many-data!", false).unwrap();
    for i in 0..MANY_XATTRS {
        fs.setxattr(many, &many_name(i), &many_value(i), XattrFlags::default()).unwrap();
    }
    pin.to(1);
    let b = fs.mknod(ROOT_INO, b"b", libc::S_IFREG | 0o600, 0, ME).unwrap().ino;
    fs.write(b, 0, &pattern(2, B_LEN), false).unwrap();
    fs.link(b, sub, b"b2").unwrap();
    let c = fs.mknod(ROOT_INO, b"c", libc::S_IFREG | 0o644, 0, ME).unwrap().ino;
    fs.write(c, 0, &pattern(3, C_LEN), false).unwrap();
    fs.symlink(ROOT_INO, b"sym", b"d/a", ME).unwrap();
    pin.to(0);
    fs.unmount().unwrap();
    drop(fs);
    drop(pin);
    let r = fsck(&img.path, &FsckOptions { mode: FsckMode::Check, force: true }).unwrap();
    assert!(r.problems.is_empty(), "test setup: the fresh image is not clean: {:?}", r.problems);
    Tree { img, d, a, b, c, many }
}

fn resolve(fs: &Fs, path: &str) -> pmfs::Result<Attr> {
    let mut at = fs.getattr(ROOT_INO)?;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = fs.lookup(at.ino, part.as_bytes())?;
    }
    Ok(at)
}

fn read_all(fs: &Fs, ino: Ino) -> pmfs::Result<Vec<u8>> {
    let size = fs.getattr(ino)?.size.min(1 << 20) as usize;
    let mut buf = vec![0u8; size];
    let n = fs.read(ino, 0, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Mount the repaired image and check every item not in `skip` is as built; then show the
/// filesystem is usable (create, write, remove in each directory), unmount, and check clean.
fn assert_intact(img: &Path, skip: &[&str]) {
    let fs = Fs::mount(img, &MountOptions::default()).expect("the repaired image mounts");
    let want = |p: &str| !skip.contains(&p);
    if want("/d") {
        assert_eq!(resolve(&fs, "/d").unwrap().kind, FileKind::Directory);
    }
    if want("/d/sub") {
        assert_eq!(resolve(&fs, "/d/sub").unwrap().kind, FileKind::Directory);
    }
    if want("/d/a") {
        let a = resolve(&fs, "/d/a").unwrap().ino;
        assert_eq!(read_all(&fs, a).unwrap(), pattern(1, A_LEN), "/d/a contents");
        assert_eq!(fs.getxattr(a, b"user.x").unwrap(), b"vx");
    }
    if want("/d/many") {
        let m = resolve(&fs, "/d/many").unwrap().ino;
        assert_eq!(read_all(&fs, m).unwrap(), b"many-data!");
        for i in 0..MANY_XATTRS {
            assert_eq!(fs.getxattr(m, &many_name(i)).unwrap(), many_value(i), "/d/many xattr {i}");
        }
    }
    if want("/b") {
        let b = resolve(&fs, "/b").unwrap();
        assert_eq!(read_all(&fs, b.ino).unwrap(), pattern(2, B_LEN), "/b contents");
        if want("/d/sub/b2") {
            assert_eq!(resolve(&fs, "/d/sub/b2").unwrap().ino, b.ino);
            assert_eq!(b.nlink, 2);
        }
    }
    if want("/c") {
        let c = resolve(&fs, "/c").unwrap();
        assert_eq!(read_all(&fs, c.ino).unwrap(), pattern(3, C_LEN), "/c contents");
        assert_eq!(c.nlink, 1);
    }
    if want("/sym") {
        let s = resolve(&fs, "/sym").unwrap().ino;
        assert_eq!(fs.readlink(s).unwrap(), b"d/a");
    }
    // Usable: a new file and directory in every surviving directory.
    for dir in ["/", "/d", "/d/sub"] {
        if !want(dir) {
            continue;
        }
        let Ok(at) = resolve(&fs, dir) else { continue };
        let f = fs.mknod(at.ino, b"new-file", libc::S_IFREG | 0o644, 0, ME).unwrap().ino;
        fs.write(f, 0, &pattern(9, 9000), false).unwrap();
        assert_eq!(read_all(&fs, f).unwrap(), pattern(9, 9000));
        fs.unlink(at.ino, b"new-file").unwrap();
        fs.mkdir(at.ino, b"new-dir", 0o755, ME).unwrap();
        fs.rmdir(at.ino, b"new-dir").unwrap();
    }
    fs.unmount().unwrap();
    drop(fs);
    let r = fsck(img, &FsckOptions { mode: FsckMode::Check, force: true }).unwrap();
    assert!(r.problems.is_empty(), "after use, the repaired image has problems: {:?}", r.problems);
    let fs = Fs::mount(img, &MountOptions::default()).expect("mounts again");
    fs.unmount().unwrap();
}

// ---------------------------------------------------------------------------------------
// The checks.

/// Every error met while reading the whole tree (directories, attributes, file contents,
/// symlinks, xattrs). Bounded, so a looping directory graph cannot hang it.
fn walk(fs: &Fs) -> Vec<String> {
    let mut errs = Vec::new();
    let mut seen = HashSet::from([ROOT_INO]);
    let mut queue = vec![ROOT_INO];
    let mut budget = 5000;
    while let Some(dir) = queue.pop() {
        let mut off = 0;
        loop {
            let list = match fs.readdir(dir, off, 64) {
                Ok(l) => l,
                Err(e) => {
                    errs.push(format!("readdir {dir}: {e}"));
                    break;
                }
            };
            if list.is_empty() {
                break;
            }
            for de in &list {
                off = de.next_offset;
                budget -= 1;
                if de.name == b"." || de.name == b".." {
                    continue;
                }
                let at = match fs.lookup(dir, &de.name) {
                    Ok(a) => a,
                    Err(e) => {
                        errs.push(format!("lookup {:?} in {dir}: {e}", String::from_utf8_lossy(&de.name)));
                        continue;
                    }
                };
                match at.kind {
                    FileKind::Directory => {
                        if seen.insert(at.ino) {
                            queue.push(at.ino);
                        }
                    }
                    FileKind::Regular => {
                        if let Err(e) = read_all(fs, at.ino) {
                            errs.push(format!("read {}: {e}", at.ino));
                        }
                    }
                    FileKind::Symlink => {
                        if let Err(e) = fs.readlink(at.ino) {
                            errs.push(format!("readlink {}: {e}", at.ino));
                        }
                    }
                    _ => {}
                }
                match fs.listxattr(at.ino) {
                    Ok(names) => {
                        for n in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
                            if let Err(e) = fs.getxattr(at.ino, n) {
                                errs.push(format!("getxattr {}: {e}", at.ino));
                            }
                        }
                    }
                    Err(e) => errs.push(format!("listxattr {}: {e}", at.ino)),
                }
            }
            if budget <= 0 {
                return errs;
            }
        }
    }
    errs
}

/// What mounting (a copy of) an image did.
enum Mounted {
    Refused(String),
    /// Mounted; the errors met reading the whole tree.
    Read(Vec<String>),
}

/// Mount a copy of `img` (clean flag cleared when `rebuild`, so mount scans every inode
/// instead of trusting the saved state), read the whole tree, unmount. Panics fail the test
/// with a message that says where.
fn try_mount(img: &Path, tag: &str, rebuild: bool) -> Mounted {
    let copy = Scratch::of(img, tag);
    if rebuild {
        poke_u64(&copy.0, STATE, 0);
    }
    let r = catch_unwind(AssertUnwindSafe(|| Fs::mount(&copy.0, &MountOptions::default())))
        .unwrap_or_else(|_| panic!("Fs::mount panicked ({tag}, rebuild={rebuild})"));
    match r {
        Err(e) => Mounted::Refused(e.to_string()),
        Ok(fs) => {
            let errs = catch_unwind(AssertUnwindSafe(|| walk(&fs)))
                .unwrap_or_else(|_| panic!("reading the mounted tree panicked ({tag}, rebuild={rebuild})"));
            catch_unwind(AssertUnwindSafe(|| {
                let _ = fs.unmount();
            }))
            .unwrap_or_else(|_| panic!("unmount panicked ({tag}, rebuild={rebuild})"));
            Mounted::Read(errs)
        }
    }
}

fn names(msg: &str, words: &[String]) -> bool {
    words.iter().all(|w| msg.contains(w.as_str()))
}

/// What mount must do with the damage.
#[derive(Clone, Copy, PartialEq)]
enum OnMount {
    /// Harmless to mount: it mounts and the whole tree reads without error.
    Fine,
    /// Mount refuses naming the damage, or mounts and reading the damaged object fails
    /// naming it.
    Named,
    /// As Named, but a mount that trusts the saved clean state may also not notice at all
    /// (it loads inodes lazily and checks neither block ownership nor that directory
    /// entries name live inodes): then it only must not panic. (What that lets through is
    /// in the ignored `finding_` tests.)
    NamedOrUnnoticed,
}

fn check_mount(img: &Path, tag: &str, rebuild: bool, expect: OnMount, words: &[String]) {
    let what = if rebuild { "mount with a full scan" } else { "mount of the clean image" };
    match (try_mount(img, tag, rebuild), expect) {
        (Mounted::Refused(e), OnMount::Fine) => panic!("{what}: refused harmless damage: {e}"),
        (Mounted::Read(errs), OnMount::Fine) => {
            assert!(errs.is_empty(), "{what}: mounted but reading fails: {errs:?}")
        }
        (Mounted::Refused(e), _) => {
            assert!(names(&e, words), "{what}: refused with {e:?}, not naming {words:?}")
        }
        (Mounted::Read(_), OnMount::NamedOrUnnoticed) => {}
        (Mounted::Read(errs), _) => assert!(
            errs.iter().any(|e| names(e, words)),
            "{what}: mounted and no error names {words:?}: {errs:?}"
        ),
    }
}

fn run_fsck(path: &Path, mode: FsckMode) -> pmfs::Result<FsckReport> {
    catch_unwind(AssertUnwindSafe(|| fsck(path, &FsckOptions { mode, force: true })))
        .unwrap_or_else(|_| panic!("fsck {mode:?} -f panicked on {}", path.display()))
}

/// (b) and (c): -n reports the damage naming it (exit 4); -p fixes it when `preen_safe`,
/// else leaves exit 4; -y fixes it (exit 1); -n -f afterwards is clean.
fn check_fsck(img: &Path, words: &[String], preen_safe: bool) {
    let r = run_fsck(img, FsckMode::Check).expect("fsck -n works on the image");
    assert_eq!(r.exit_code(), 4, "fsck -n -f: {:?}", r.problems);
    assert!(
        r.problems.iter().any(|p| names(&p.what, words)),
        "fsck -n -f: no problem names {words:?}: {:?}",
        r.problems
    );
    // -n changed nothing: the same again.
    assert_eq!(run_fsck(img, FsckMode::Check).unwrap().exit_code(), 4, "a second fsck -n -f");

    let copy = Scratch::of(img, "preen");
    let r = run_fsck(&copy.0, FsckMode::Preen).expect("fsck -p works on the image");
    if preen_safe {
        assert_eq!(r.exit_code(), 1, "fsck -p should fix it: {:?}", r.problems);
        let r = run_fsck(&copy.0, FsckMode::Check).unwrap();
        assert!(r.problems.is_empty(), "after fsck -p, fsck -n -f: {:?}", r.problems);
    } else {
        assert_eq!(r.exit_code(), 4, "fsck -p must leave it: {:?}", r.problems);
        assert!(r.problems.iter().any(|p| names(&p.what, words) && !p.fixed), "fsck -p: {:?}", r.problems);
    }

    let r = run_fsck(img, FsckMode::Repair).expect("fsck -y works on the image");
    assert_eq!(r.exit_code(), 1, "fsck -y: {:?}", r.problems);
    let r = run_fsck(img, FsckMode::Check).unwrap();
    assert!(r.problems.is_empty(), "after fsck -y, fsck -n -f: {:?}", r.problems);
    assert_eq!(r.exit_code(), 0);
}

/// The whole sequence for one kind of damage.
fn check_damage(img: &Path, mount_clean: OnMount, mount_scan: OnMount, words: &[String], preen_safe: bool) {
    check_mount(img, "mount-clean", false, mount_clean, words);
    check_mount(img, "mount-scan", true, mount_scan, words);
    check_fsck(img, words, preen_safe);
}

fn w(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Superblocks.

#[test]
fn superblock_bit_flip_is_repaired_from_the_replica() {
    let t = build("sb-flip");
    let p = &t.img.path;
    flip_bit(p, 20, 3); // device size in blocks
    check_damage(p, OnMount::Fine, OnMount::Fine, &w(&["superblock (block 0)", "checksum"]), true);
    assert_eq!(peek(p, 0, 256), peek(p, BLOCK_SIZE, 256));
    assert_intact(p, &[]);
}

#[test]
fn replica_bit_flip_is_repaired_from_the_superblock() {
    let t = build("replica-flip");
    let p = &t.img.path;
    flip_bit(p, BLOCK_SIZE + 110, 0); // feature flags
    check_damage(p, OnMount::Fine, OnMount::Fine, &w(&["replica (block 1)"]), true);
    assert_eq!(peek(p, 0, 256), peek(p, BLOCK_SIZE, 256));
    assert_intact(p, &[]);
}

#[test]
fn zeroed_superblock_is_rebuilt_from_the_replica() {
    let t = build("sb-zero");
    let p = &t.img.path;
    zero_block(p, 0);
    // Mount uses the replica and says so.
    let copy = Scratch::of(p, "m");
    let fs = Fs::mount(&copy.0, &MountOptions::default()).unwrap();
    assert!(fs.mount_report().superblock_repaired);
    drop(fs);
    check_damage(p, OnMount::Fine, OnMount::Fine, &w(&["superblock (block 0)", "magic"]), true);
    assert_intact(p, &[]);
}

#[test]
fn both_superblocks_zeroed_fail_cleanly() {
    let t = build("sb-both");
    let p = &t.img.path;
    zero_block(p, 0);
    zero_block(p, 1);
    for rebuild in [false, true] {
        match try_mount(p, "m", rebuild) {
            Mounted::Refused(e) => assert!(e.contains("superblock"), "{e}"),
            Mounted::Read(_) => panic!("mounted with no superblock"),
        }
    }
    for mode in [FsckMode::Check, FsckMode::Preen, FsckMode::Repair] {
        let e = run_fsck(p, mode).expect_err("fsck cannot work without a superblock");
        assert!(e.to_string().contains("superblock"), "fsck {mode:?}: {e}");
    }
    // Nothing was written: still no superblock.
    assert!(peek(p, 0, 8).iter().all(|&b| b == 0));
}

#[test]
fn both_superblocks_flipped_fail_cleanly() {
    let t = build("sb-both-flip");
    let p = &t.img.path;
    flip_bit(p, 16, 0);
    flip_bit(p, BLOCK_SIZE + 16, 0);
    let m = match try_mount(p, "m", false) {
        Mounted::Refused(e) => e,
        Mounted::Read(_) => panic!("mounted with both superblocks bad"),
    };
    assert!(m.contains("both superblock copies are bad") && m.contains("checksum"), "{m}");
    for mode in [FsckMode::Check, FsckMode::Repair] {
        let e = run_fsck(p, mode).expect_err("fsck cannot work without a superblock");
        assert!(e.to_string().contains("superblock"), "fsck {mode:?}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// Logs.

#[test]
fn every_entry_ends_on_a_cache_line_and_packed_logs_still_read_and_extend() {
    let t = build("packed");
    let p = &t.img.path;
    // What zpmfs writes: every entry (a directory's, a file's, xattr pieces) ends on a line.
    for ino in [t.d, t.a, t.many, t.c] {
        for (pos, e) in read_log(p, ino).1 {
            let len = Entry::header_len(&peek(p, pos, 8)) as u64;
            assert!(len >= e.len() as u64);
            assert_eq!((pos + len) % 64, 0, "inode {ino}: {e:?} at {pos} ({len} bytes)");
        }
    }
    // A log as zpmfs wrote it before padding: an entry of exactly its kind's length, which
    // leaves the tail in the middle of a line (a link count entry with a new ctime here).
    let marked = Timespec { sec: 1234, nsec: 0 };
    append_entry(p, t.c, &Entry::Link { nlink: 1, ctime: marked });
    let packed_tail = log_tail(p, t.c);
    assert_ne!(packed_tail % 64, 0, "test setup: the crafted entry ends on a line");

    // It mounts; a write after it lands at the old tail, padded to the next line; the data
    // and the mode read back after a remount, and fsck finds nothing.
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    assert_eq!(fs.getattr(t.c).unwrap().ctime, marked);
    fs.write(t.c, 100, b"after the packed entry", false).unwrap();
    fs.unmount().unwrap();
    drop(fs);
    let (_, entries) = read_log(p, t.c);
    let (pos, _) = entries.iter().find(|(pos, _)| *pos >= packed_tail).unwrap();
    assert_eq!(*pos, packed_tail);
    assert_eq!(log_tail(p, t.c) % 64, 0);
    let r = fsck(p, &FsckOptions { mode: FsckMode::Check, force: true }).unwrap();
    assert!(r.problems.is_empty(), "fsck: {:?}", r.problems);
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    let mut want = pattern(3, C_LEN);
    want[100..122].copy_from_slice(b"after the packed entry");
    assert_eq!(read_all(&fs, t.c).unwrap(), want);
}

#[test]
fn log_entry_bit_flip_is_found_by_its_checksum() {
    let t = build("entry-flip");
    let p = &t.img.path;
    // /d/a's log: its directory-independent entries are Write(s) then the xattr. Flip a
    // payload bit in the first Write: that entry and everything after it is lost.
    let (_, entries) = read_log(p, t.a);
    let (pos, _) = entries.iter().find(|(_, e)| matches!(e, Entry::Write { .. })).unwrap();
    flip_bit(p, pos + 20, 5);
    let words = w(&[&format!("inode {}", t.a), "checksum"]);
    check_damage(p, OnMount::Named, OnMount::Named, &words, false);
    assert_intact(p, &["/d/a", "/sym"]);
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    let a = resolve(&fs, "/d/a").unwrap().ino;
    assert!(read_all(&fs, a).unwrap().len() < A_LEN);
}

#[test]
fn a_log_that_ends_inside_a_big_xattr_value_is_cut_before_it() {
    let t = build("xattr-pieces");
    let p = &t.img.path;
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    fs.setxattr(t.a, b"user.big", &pattern(9, 10000), XattrFlags::default()).unwrap();
    fs.unmount().unwrap();
    drop(fs);
    // Its pieces, then the entry that finishes the value: end the log just before that one.
    let (_, entries) = read_log(p, t.a);
    assert!(entries.iter().any(|(_, e)| matches!(e, Entry::XattrPart { .. })), "test setup: no pieces");
    let (last, _) = entries.iter().rev().find(|(_, e)| matches!(e, Entry::XattrSet { .. })).unwrap();
    poke_u64(p, inode_off(p, t.a) + 16, *last);
    let words = w(&[&format!("inode {}", t.a), "xattr value"]);
    check_damage(p, OnMount::Named, OnMount::Named, &words, false);
    // Everything else is as built (user.x included); the unfinished value is gone.
    assert_intact(p, &[]);
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    assert!(matches!(fs.getxattr(t.a, b"user.big"), Err(pmfs::Error::NoAttr)));
}

/// /d/many's log pages.
fn many_pages(t: &Tree) -> Vec<u64> {
    let (pages, _) = read_log(&t.img.path, t.many);
    assert!(pages.len() >= 3, "test setup: /d/many's log has only {} pages", pages.len());
    pages
}

/// After a cut in /d/many's log: the xattrs before the cut are there, the later ones gone.
fn assert_many_cut(p: &Path) {
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    let m = resolve(&fs, "/d/many").unwrap().ino;
    assert_eq!(read_all(&fs, m).unwrap(), b"many-data!");
    let have = (0..MANY_XATTRS).filter(|&i| fs.getxattr(m, &many_name(i)).is_ok()).count();
    assert!(have > 0 && have < MANY_XATTRS, "{have} xattrs left");
    for i in 0..have {
        assert_eq!(fs.getxattr(m, &many_name(i)).unwrap(), many_value(i));
    }
}

#[test]
fn log_chain_cut_by_a_zeroed_next_pointer() {
    let t = build("chain-next");
    let p = &t.img.path;
    let pages = many_pages(&t);
    poke_u64(p, pages[1] * BLOCK_SIZE, 0);
    let words = w(&[&format!("inode {} log", t.many), "page 0"]);
    check_damage(p, OnMount::Named, OnMount::Named, &words, false);
    assert_intact(p, &["/d/many"]);
    assert_many_cut(p);
}

#[test]
fn log_chain_cut_by_a_zeroed_page() {
    let t = build("chain-page");
    let p = &t.img.path;
    let pages = many_pages(&t);
    zero_block(p, pages[1]);
    let words = w(&[&format!("inode {} log", t.many), &format!("page {}", pages[1]), "not a log page"]);
    check_damage(p, OnMount::Named, OnMount::Named, &words, false);
    assert_intact(p, &["/d/many"]);
    assert_many_cut(p);
}

#[test]
fn zeroed_head_log_page() {
    let t = build("chain-head");
    let p = &t.img.path;
    let pages = many_pages(&t);
    zero_block(p, pages[0]);
    let words = w(&[&format!("inode {} log", t.many), &format!("page {}", pages[0])]);
    check_damage(p, OnMount::Named, OnMount::Named, &words, false);
    // The whole log is gone: /d/many is an empty file now (or was dropped).
    assert_intact(p, &["/d/many"]);
}

#[test]
fn log_tail_past_the_last_entry() {
    let t = build("tail-past");
    let p = &t.img.path;
    let off = inode_off(p, t.c) + 16;
    let tail = peek_u64(p, off);
    assert!(tail % BLOCK_SIZE + 64 < BLOCK_SIZE);
    poke_u64(p, off, tail + 64);
    let words = w(&[&format!("inode {} log", t.c), "past the end"]);
    check_damage(p, OnMount::Named, OnMount::Named, &words, false);
    // Every entry before the bad tail is kept.
    assert_intact(p, &[]);
    assert_eq!(log_tail(p, t.c), tail);
}

#[test]
fn log_tail_into_another_page() {
    let t = build("tail-other");
    let p = &t.img.path;
    // /c's tail now points into /b's log page.
    let other = log_head(p, t.b);
    assert_ne!(other, log_head(p, t.c));
    poke_u64(p, inode_off(p, t.c) + 16, other * BLOCK_SIZE + 200);
    let words = w(&[&format!("inode {} log", t.c)]);
    check_damage(p, OnMount::Named, OnMount::Named, &words, false);
    assert_intact(p, &[]);
}

// ---------------------------------------------------------------------------------------
// Inodes and inode tables.

#[test]
fn inode_creation_record_bit_flip() {
    let t = build("creation");
    let p = &t.img.path;
    flip_bit(p, inode_off(p, t.c) + 29, 2); // mode, inside the crc-covered creation record
    let words = w(&[&format!("inode {}", t.c), "checksum"]);
    check_damage(p, OnMount::Named, OnMount::Named, &words, false);
    // The inode is cleared and its name removed; everything else is as it was.
    assert_intact(p, &["/c"]);
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    assert_eq!(resolve(&fs, "/c").unwrap_err(), pmfs::Error::NotFound);
}

#[test]
fn zeroed_inode_table_index_block_of_a_second_cpu() {
    let t = build("index-cpu1");
    let p = &t.img.path;
    let cpu = (t.b - 1) % CPUS;
    if cpu == 0 {
        eprintln!("single CPU: /b is in table 0 with the root; see the root-table test");
        return;
    }
    zero_block(p, index_block(p, cpu));
    // /b, /d/sub/b2, /c and /sym name inodes that are no longer in any table; mount names the
    // first it meets in readdir (hash) order.
    let words = w(&["names inode", "not in use"]);
    check_damage(p, OnMount::NamedOrUnnoticed, OnMount::Named, &words, false);
    assert_intact(p, &["/b", "/d/sub/b2", "/c", "/sym"]);
}

#[test]
fn zeroed_inode_table_index_block_of_the_root_fails_cleanly() {
    let t = build("index-cpu0");
    let p = &t.img.path;
    zero_block(p, index_block(p, 0));
    // The root directory is gone with its table: mount refuses, naming it.
    for rebuild in [false, true] {
        match try_mount(p, "m", rebuild) {
            Mounted::Refused(e) => assert!(e.contains("root"), "{e}"),
            Mounted::Read(_) => panic!("mounted without a root directory"),
        }
    }
    // fsck does not panic; today it gives up with an operational error naming the root
    // (see the finding below for what it should do).
    for mode in [FsckMode::Check, FsckMode::Preen, FsckMode::Repair] {
        match run_fsck(p, mode) {
            Err(e) => assert!(e.to_string().contains("root directory"), "fsck {mode:?}: {e}"),
            Ok(r) => assert_ne!(r.exit_code(), 0, "fsck {mode:?}: {:?}", r.problems),
        }
    }
}

#[test]
#[ignore = "known limit: with CPU 0's inode-table index block zeroed, the root's slot is gone and fsck stops with an operational error (exit 8: the root directory's inode-table block is gone; cannot rebuild); rebuilding an inode table from scanned blocks is not done yet"]
fn finding_zeroed_inode_table_index_block_of_the_root_is_repaired() {
    let t = build("index-cpu0-fix");
    let p = &t.img.path;
    zero_block(p, index_block(p, 0));
    check_fsck(p, &w(&["root directory"]), false);
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    let lf = fs.lookup(ROOT_INO, b"lost+found").unwrap().ino;
    let c = fs.lookup(lf, format!("#{}", t.c).as_bytes()).unwrap().ino;
    assert_eq!(read_all(&fs, c).unwrap(), pattern(3, C_LEN));
}

// ---------------------------------------------------------------------------------------
// Block ownership, link counts, directory entries.

/// /d/a's first data block, and /c made to claim it too (page 1, through a crafted Write
/// entry with a correct crc appended at /c's tail).
fn double_allocate(t: &Tree) -> u64 {
    let p = &t.img.path;
    let (_, a_entries) = read_log(p, t.a);
    let a_block = a_entries
        .iter()
        .find_map(|(_, e)| match e {
            Entry::Write { block, .. } => Some(*block),
            _ => None,
        })
        .unwrap();
    let mtime = Timespec { sec: 1, nsec: 0 };
    append_entry(p, t.c, &Entry::Write { pgoff: 1, block: a_block, nblocks: 1, size: 8192, mtime });
    a_block
}

#[test]
fn block_allocated_twice() {
    let t = build("double");
    let p = &t.img.path;
    let a_block = double_allocate(&t);
    // fsck names the higher-numbered of the two owners (the later claimant).
    let flagged = t.a.max(t.c);
    let words = w(&[&format!("inode {flagged}"), &format!("block {a_block}"), "also used"]);
    let scan_words = w(&[&format!("block {a_block}"), "used twice"]);
    check_mount(p, "mount-clean", false, OnMount::NamedOrUnnoticed, &words);
    check_mount(p, "mount-scan", true, OnMount::Named, &scan_words);
    check_fsck(p, &words, false);
    // Exactly one owner keeps the block; everything else is intact.
    assert_intact(p, &["/c", "/d/a", "/sym"]);
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    let c = resolve(&fs, "/c").unwrap().ino;
    let a = resolve(&fs, "/d/a").unwrap().ino;
    let (c_data, a_data) = (read_all(&fs, c).unwrap(), read_all(&fs, a).unwrap());
    let orig_a = pattern(1, A_LEN);
    assert_eq!(&c_data[..C_LEN], &pattern(3, C_LEN)[..]);
    assert_eq!(c_data.len(), 8192);
    assert_eq!(a_data.len(), A_LEN);
    assert_eq!(&a_data[4096..], &orig_a[4096..], "/d/a past its first page");
    // fsck gives the later claimant its own copy (as e2fsck does): both keep the bytes.
    let _ = flagged;
    assert_eq!(&c_data[4096..], &orig_a[..4096]);
    assert_eq!(a_data, orig_a);
}

#[test]
fn double_allocation_repair_keeps_the_undamaged_files_data() {
    let t = build("double-owner");
    let p = &t.img.path;
    double_allocate(&t);
    assert_eq!(run_fsck(p, FsckMode::Repair).unwrap().exit_code(), 1);
    assert_eq!(run_fsck(p, FsckMode::Check).unwrap().exit_code(), 0);
    // Only /c's log was damaged: /d/a must read as it was written.
    assert_intact(p, &["/c"]);
}

#[test]
#[ignore = "known limit: a clean mount only checks, as it loads an inode, that its blocks are not on the free list; a block claimed by two inodes that are both in use goes unnoticed until fsck (which clones it) or a crash-recovery mount (which refuses)"]
fn finding_clean_mount_lets_a_double_allocation_spread() {
    let t = build("double-spread");
    let p = &t.img.path;
    double_allocate(&t);
    let fs = match Fs::mount(p, &MountOptions::default()) {
        Err(e) => {
            assert!(e.to_string().contains("block"), "{e}");
            return;
        }
        Ok(fs) => fs,
    };
    let outcome = (|| -> pmfs::Result<()> {
        let c = resolve(&fs, "/c")?.ino;
        // Copy-on-write: /c's page 1 moves to a new block, the shared one is freed.
        fs.write(c, 4096, &[0xee; 4096], false)?;
        let n = fs.mknod(ROOT_INO, b"filler", libc::S_IFREG | 0o644, 0, ME)?.ino;
        fs.write(n, 0, &vec![0xdd; 64 * 4096], false)?;
        Ok(())
    })();
    if let Err(e) = outcome {
        assert!(matches!(e, pmfs::Error::Corrupt(_)), "{e}");
        return;
    }
    let a = resolve(&fs, "/d/a").unwrap().ino;
    assert_eq!(read_all(&fs, a).unwrap(), pattern(1, A_LEN), "/d/a was overwritten");
}

#[test]
fn wrong_link_count_is_preened() {
    let t = build("nlink");
    let p = &t.img.path;
    append_entry(p, t.c, &Entry::Link { nlink: 5, ctime: Timespec { sec: 1, nsec: 0 } });
    let words = w(&[&format!("inode {}: link count is 5, should be 1", t.c)]);
    check_damage(p, OnMount::Fine, OnMount::Fine, &words, true);
    assert_intact(p, &[]);
}

#[test]
fn directory_entry_naming_a_free_inode() {
    let t = build("dangling");
    let p = &t.img.path;
    // Inode 41 (CPU 0, slot 20 of the first inode block) exists in the table but is free.
    let ghost = 41;
    assert_eq!(peek_u64(p, inode_off(p, ghost)), 0, "test setup: inode {ghost} is in use");
    let e = Entry::DentryAdd {
        ino: ghost,
        cookie: 1000,
        kind: 1,
        time: Timespec { sec: 1, nsec: 0 },
        name: b"ghost".to_vec(),
    };
    append_entry(p, t.d, &e);
    let words =
        w(&[&format!("directory {}", t.d), "\"ghost\"", &format!("inode {ghost} which is not in use")]);
    check_damage(p, OnMount::NamedOrUnnoticed, OnMount::Named, &words, false);
    assert_intact(p, &[]);
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    assert_eq!(fs.lookup(t.d, b"ghost").unwrap_err(), pmfs::Error::NotFound);
}

#[test]
fn clean_mount_names_a_dangling_entry() {
    let t = build("dangling-lookup");
    let p = &t.img.path;
    let e = Entry::DentryAdd {
        ino: 41,
        cookie: 1000,
        kind: 1,
        time: Timespec { sec: 1, nsec: 0 },
        name: b"ghost".to_vec(),
    };
    append_entry(p, t.d, &e);
    let fs = match Fs::mount(p, &MountOptions::default()) {
        Err(e) => {
            assert!(e.to_string().contains("inode 41"), "{e}");
            return;
        }
        Ok(fs) => fs,
    };
    let err = fs.lookup(t.d, b"ghost").unwrap_err();
    assert!(err.to_string().contains("inode 41"), "lookup of the dangling entry: {err}");
}

// ---------------------------------------------------------------------------------------
// The saved free-space map.

/// The free extents saved in the save area (start, len) and where they are.
fn saved_map(p: &Path) -> (u64, Vec<(u64, u64)>) {
    let save_start = peek_u64(p, 136);
    let n = peek_u64(p, STATE + 16);
    let raw = peek(p, save_start * BLOCK_SIZE, n as usize * 16);
    let ext = raw
        .chunks_exact(16)
        .map(|c| {
            (u64::from_le_bytes(c[..8].try_into().unwrap()), u64::from_le_bytes(c[8..].try_into().unwrap()))
        })
        .collect();
    (save_start * BLOCK_SIZE, ext)
}

fn write_saved_map(p: &Path, at: u64, ext: &[(u64, u64)]) {
    let mut raw = Vec::new();
    for (s, l) in ext {
        raw.extend_from_slice(&s.to_le_bytes());
        raw.extend_from_slice(&l.to_le_bytes());
    }
    poke(p, at, &raw);
    poke_u64(p, STATE + 16, ext.len() as u64);
    poke_u64(p, STATE + 24, crc32c::crc32c(&raw) as u64);
}

fn free_blocks(p: &Path) -> u64 {
    let fs = Fs::mount(p, &MountOptions::default()).unwrap();
    let n = fs.statfs().unwrap().blocks_free;
    fs.unmount().unwrap();
    n
}

#[test]
fn leaked_block_is_preened() {
    let t = build("leak");
    let p = &t.img.path;
    let before = {
        let copy = Scratch::of(p, "count");
        free_blocks(&copy.0)
    };
    let (at, mut ext) = saved_map(p);
    // Drop the first free extent when it is one block; else take one block off its end.
    if ext[0].1 == 1 {
        ext.remove(0);
    } else {
        ext[0].1 -= 1;
    }
    write_saved_map(p, at, &ext);
    check_damage(
        p,
        OnMount::Fine,
        OnMount::Fine,
        &w(&["1 blocks are neither in use nor free", "leaked"]),
        true,
    );
    assert_eq!(free_blocks(p), before, "the leaked block is free again");
    assert_intact(p, &[]);
}

#[test]
fn saved_free_space_map_crc_broken() {
    let t = build("mapcrc");
    let p = &t.img.path;
    flip_bit(p, STATE + 24, 4);
    check_damage(p, OnMount::Fine, OnMount::Fine, &w(&["saved free-space map is unreadable"]), true);
    assert_intact(p, &[]);
}

// ---------------------------------------------------------------------------------------
// No panic on any image: seeded random byte flips over the metadata.

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Flip random bytes in copies of a good image; mount, fsck -n -f, fsck -y -f, fsck -n -f
/// and mount again each copy. A panic anywhere fails at once; the returned findings are
/// the copies where fsck -y left a problem that a following fsck -n -f still reports, or
/// left an image that checks clean but does not mount or read.
fn sweep(tag: &str) -> Vec<String> {
    const ITERATIONS: usize = 300;
    const SEED: u64 = 0x5eed_2d0c_f00d_0003;
    let t = build(tag);
    let p = &t.img.path;
    // Where to flip: the first 64 blocks (superblocks, state, roots, journals, save area,
    // and CPU 0's index, inode and log blocks), plus CPU 1's inode-table blocks and every
    // log page.
    let mut targets: Vec<u64> = (0..64).collect();
    for cpu in 0..CPUS {
        let root = peek_u64(p, 3 * BLOCK_SIZE + cpu * 8);
        let l2 = index_block(p, cpu);
        targets.extend([root, l2, peek_u64(p, l2 * BLOCK_SIZE)]);
    }
    for ino in [ROOT_INO, t.d, t.a, t.b, t.c, t.many] {
        targets.extend(read_log(p, ino).0);
    }
    targets.sort_unstable();
    targets.dedup();

    let mut rng = Rng(SEED);
    let mut findings = Vec::new();
    // How the copies fared: refused by mount, fsck -y operational error, repaired clean.
    let (mut refused, mut gave_up, mut clean) = (0, 0, 0);
    for i in 0..ITERATIONS {
        let img = Scratch::of(p, "iter");
        let q = &img.0;
        if i == 0 {
            let r = fsck(q, &FsckOptions { mode: FsckMode::Check, force: true }).unwrap();
            assert!(r.problems.is_empty(), "the undamaged copy: {:?}", r.problems);
        }
        let flips = 1 + rng.below(8);
        let mut done = Vec::new();
        for _ in 0..flips {
            let block = targets[rng.below(targets.len() as u64) as usize];
            // Half the flips land in the first 256 bytes, where most headers are.
            let within = if rng.below(2) == 0 { rng.below(256) } else { rng.below(BLOCK_SIZE) };
            let off = block * BLOCK_SIZE + within;
            let x = 1 + rng.below(255) as u8;
            let old = peek(q, off, 1)[0];
            poke(q, off, &[old ^ x]);
            done.push((off, x));
        }
        let what = format!("iteration {i}: xor (offset, byte) {done:?}");
        let m = catch_unwind(AssertUnwindSafe(|| try_mount(q, "m", false)));
        match m {
            Err(_) => panic!("{what}: mount panicked"),
            Ok(Mounted::Refused(_)) => refused += 1,
            Ok(Mounted::Read(_)) => {}
        }
        let r =
            catch_unwind(AssertUnwindSafe(|| fsck(q, &FsckOptions { mode: FsckMode::Check, force: true })));
        assert!(r.is_ok(), "{what}: fsck -n -f panicked");
        let r =
            catch_unwind(AssertUnwindSafe(|| fsck(q, &FsckOptions { mode: FsckMode::Repair, force: true })));
        let repaired = r.unwrap_or_else(|_| panic!("{what}: fsck -y -f panicked"));
        let after =
            catch_unwind(AssertUnwindSafe(|| fsck(q, &FsckOptions { mode: FsckMode::Check, force: true })))
                .unwrap_or_else(|_| panic!("{what}: fsck -n -f after -y panicked"));
        let m2 = catch_unwind(AssertUnwindSafe(|| try_mount(q, "m2", false)))
            .unwrap_or_else(|_| panic!("{what}: mount after fsck -y panicked"));
        match (&repaired, &after) {
            // Operational error: fsck says it cannot work on this image.
            (Err(e), _) => {
                gave_up += 1;
                eprintln!("sweep: {what}: fsck -y cannot work on it: {e}");
            }
            (Ok(_), Ok(a)) if a.exit_code() == 0 => match &m2 {
                Mounted::Read(errs) if errs.is_empty() => clean += 1,
                Mounted::Read(errs) => {
                    findings.push(format!("{what}: checks clean but reading fails: {errs:?}"))
                }
                Mounted::Refused(e) => findings.push(format!("{what}: checks clean but mount refuses: {e}")),
            },
            (Ok(y), Ok(a)) => findings.push(format!(
                "{what}: fsck -y gave {} ({:?}) but fsck -n -f then gives {}: {:?}",
                y.exit_code(),
                y.problems,
                a.exit_code(),
                a.problems
            )),
            (Ok(y), Err(e)) => findings.push(format!(
                "{what}: fsck -y gave {} ({:?}) but fsck -n -f then fails: {e}",
                y.exit_code(),
                y.problems
            )),
        }
    }
    eprintln!(
        "sweep: {ITERATIONS} damaged copies: mount refused {refused}; after fsck -y: {clean} clean and \
         readable, {gave_up} fsck operational errors, {} findings",
        findings.len()
    );
    // The sweep must mostly reach the repair paths, not stop at the superblock.
    assert!(clean > ITERATIONS / 2, "only {clean} of {ITERATIONS} copies were repaired");
    findings
}

#[test]
fn random_metadata_damage_never_panics() {
    let findings = sweep("sweep");
    if !findings.is_empty() {
        eprintln!(
            "{} sweep findings (see finding_random_metadata_damage_is_repaired_in_one_pass):",
            findings.len()
        );
        for f in &findings {
            eprintln!("  {f}");
        }
    }
}

#[test]
fn random_metadata_damage_is_repaired_in_one_pass() {
    let findings = sweep("sweep-strict");
    assert!(findings.is_empty(), "{} findings:\n{}", findings.len(), findings.join("\n"));
}

#[test]
fn lost_directory_holding_a_hard_link_is_repaired_in_one_pass() {
    let t = build("lost-dir-link");
    let p = &t.img.path;
    // /d's log loses everything from its first entry: /d/sub (holding /b's second name
    // b2), /d/a and /d/many are no longer in any directory.
    let (_, entries) = read_log(p, t.d);
    flip_bit(p, entries[0].0 + 9, 1);
    check_fsck(p, &w(&[&format!("inode {}", t.d), "checksum"]), false);
}
