//! Stress over a real mount: threads creating, writing, truncating, linking, renaming,
//! unlinking and removing directories in the same directories for ZPMFS_STRESS_SECS seconds
//! (default 5; `make stress` runs 10 minutes). Each thread owns its names (t<thread>-<n>), so
//! a model per thread says what every system call must return and what the tree must hold;
//! shared names all threads fight over are checked for consistency only (whole 512-byte
//! records). Checked at the end, after unmount and mount, and after zus is killed with
//! SIGKILL; fsck.zpmfs -n finds the image clean each time.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zpmfs_tests::*;

const THREADS: u64 = 4;
const SHARED_DIRS: usize = 3;
const MAX_NAMES: usize = 120;
const MAX_SIZE: u64 = 32 << 10;
const RECORD: usize = 512;

fn stress_secs() -> u64 {
    std::env::var("ZPMFS_STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5)
}

#[derive(Debug, Clone, PartialEq)]
enum Obj {
    File(Vec<u8>),
    Dir,
    Symlink(PathBuf),
}

/// A directory of the model: a shared one (by index) or one of the thread's own (by inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Dir {
    Shared(usize),
    Own(u64),
}

/// One thread's names, exactly: no other thread touches them.
struct Model {
    root: PathBuf,
    prefix: String,
    next: u64,
    /// (parent, name) -> inode number.
    names: BTreeMap<(Dir, String), u64>,
    objs: HashMap<u64, Obj>,
}

type Key = (Dir, String);

impl Model {
    fn fresh(&mut self) -> String {
        self.next += 1;
        format!("{}{}", self.prefix, self.next)
    }
    fn dir_path(&self, d: Dir) -> PathBuf {
        match d {
            Dir::Shared(i) => self.root.join(format!("d{i}")),
            Dir::Own(ino) => {
                let (k, _) = self.names.iter().find(|(_, &i)| i == ino).expect("own directory has a name");
                self.path(k)
            }
        }
    }
    fn path(&self, k: &Key) -> PathBuf {
        self.dir_path(k.0).join(&k.1)
    }
    fn own_dirs(&self) -> Vec<Dir> {
        self.objs.iter().filter(|(_, o)| **o == Obj::Dir).map(|(&i, _)| Dir::Own(i)).collect()
    }
    fn links(&self, ino: u64) -> usize {
        self.names.values().filter(|&&i| i == ino).count()
    }
    fn is_empty_dir(&self, ino: u64) -> bool {
        !self.names.keys().any(|(p, _)| *p == Dir::Own(ino))
    }
    fn pick(&self, rng: &mut Rng, accept: impl Fn(&Obj) -> bool) -> Option<(Key, u64)> {
        let c: Vec<_> = self.names.iter().filter(|(_, i)| accept(&self.objs[i])).collect();
        if c.is_empty() {
            return None;
        }
        c.get(rng.below(c.len() as u64) as usize).map(|(k, i)| ((*k).clone(), **i))
    }
    fn unname(&mut self, key: &Key) {
        let ino = self.names.remove(key).unwrap();
        if self.links(ino) == 0 {
            self.objs.remove(&ino);
        }
    }
}

/// The result of a system call against what the model says (None: no error).
#[track_caller]
fn same<T>(got: std::io::Result<T>, want: Option<i32>, what: &str) -> bool {
    match (got, want) {
        (Ok(_), None) => true,
        (Err(e), Some(w)) if e.raw_os_error() == Some(w) => false,
        (Ok(_), Some(w)) => {
            panic!("{what}: succeeded, the model says {}", std::io::Error::from_raw_os_error(w))
        }
        (Err(e), w) => panic!("{what}: {e}, the model says {w:?}"),
    }
}

fn own_op(m: &mut Model, rng: &mut Rng) {
    let shared = |rng: &mut Rng| Dir::Shared(rng.below(SHARED_DIRS as u64) as usize);
    let any = |m: &Model, rng: &mut Rng| {
        let mut all: Vec<Dir> = (0..SHARED_DIRS).map(Dir::Shared).collect();
        all.extend(m.own_dirs());
        all[rng.below(all.len() as u64) as usize]
    };
    let is_file = |o: &Obj| matches!(o, Obj::File(_));
    let full = m.names.len() >= MAX_NAMES;
    match rng.below(14) {
        0 | 1 if !full => {
            let k = (any(m, rng), m.fresh());
            fs::File::create_new(m.path(&k)).unwrap();
            let ino = fs::metadata(m.path(&k)).unwrap().ino();
            m.names.insert(k, ino);
            m.objs.insert(ino, Obj::File(Vec::new()));
        }
        2 if !full && m.own_dirs().len() < 6 => {
            let k = (shared(rng), m.fresh());
            fs::create_dir(m.path(&k)).unwrap();
            let ino = fs::metadata(m.path(&k)).unwrap().ino();
            m.names.insert(k, ino);
            m.objs.insert(ino, Obj::Dir);
        }
        3 if !full => {
            let k = (any(m, rng), m.fresh());
            let target = PathBuf::from(format!("target/{}", rng.below(1 << 40)));
            std::os::unix::fs::symlink(&target, m.path(&k)).unwrap();
            let ino = fs::symlink_metadata(m.path(&k)).unwrap().ino();
            m.names.insert(k, ino);
            m.objs.insert(ino, Obj::Symlink(target));
        }
        4 | 5 => {
            let Some((k, ino)) = m.pick(rng, is_file) else { return };
            let off = rng.below(MAX_SIZE - 8192);
            let len = 1 + rng.below(8192) as usize;
            let bytes = rng.bytes(len);
            OpenOptions::new().write(true).open(m.path(&k)).unwrap().write_all_at(&bytes, off).unwrap();
            if let Some(Obj::File(data)) = m.objs.get_mut(&ino) {
                let end = off as usize + len;
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[off as usize..end].copy_from_slice(&bytes);
            }
        }
        6 => {
            let Some((k, ino)) = m.pick(rng, is_file) else { return };
            let size = rng.below(MAX_SIZE);
            OpenOptions::new().write(true).open(m.path(&k)).unwrap().set_len(size).unwrap();
            if let Some(Obj::File(data)) = m.objs.get_mut(&ino) {
                data.resize(size as usize, 0);
            }
        }
        7 if !full => {
            let Some((k, ino)) = m.pick(rng, is_file) else { return };
            let new = (any(m, rng), m.fresh());
            fs::hard_link(m.path(&k), m.path(&new)).unwrap();
            m.names.insert(new, ino);
        }
        8 => {
            let Some((k, _)) = m.pick(rng, |o| *o != Obj::Dir) else { return };
            fs::remove_file(m.path(&k)).unwrap();
            m.unname(&k);
        }
        9 | 10 => rename(m, rng),
        11 => {
            let Some((k, ino)) = m.pick(rng, |o| *o == Obj::Dir) else { return };
            let want = if m.is_empty_dir(ino) { None } else { Some(libc::ENOTEMPTY) };
            if same(fs::remove_dir(m.path(&k)), want, "rmdir") {
                m.unname(&k);
            }
        }
        _ => {
            let Some((k, ino)) = m.pick(rng, |_| true) else { return };
            check_name(m, &k, ino);
        }
    }
}

/// Rename to a fresh name or over another of the thread's names, as POSIX says.
fn rename(m: &mut Model, rng: &mut Rng) {
    let Some((src, sino)) = m.pick(rng, |_| true) else { return };
    let src_dir = m.objs[&sino] == Obj::Dir;
    let dst = if rng.below(2) == 0 { m.pick(rng, |_| true).map(|(k, _)| k) } else { None };
    let dst = dst.unwrap_or_else(|| {
        // Own directories live only in shared ones, so no rename can make a loop.
        let mut all: Vec<Dir> = (0..SHARED_DIRS).map(Dir::Shared).collect();
        if !src_dir {
            all.extend(m.own_dirs());
        }
        (all[rng.below(all.len() as u64) as usize], m.fresh())
    });
    if src_dir && !matches!(dst.0, Dir::Shared(_)) {
        return;
    }
    let dino = m.names.get(&dst).copied();
    let want = match dino {
        None => None,
        Some(d) if d == sino => None,
        // The VFS refuses first a target that is an ancestor of the source.
        Some(d) if src.0 == Dir::Own(d) => Some(libc::ENOTEMPTY),
        Some(d) => match (src_dir, m.objs[&d] == Obj::Dir) {
            (false, false) => None,
            (false, true) => Some(libc::EISDIR),
            (true, false) => Some(libc::ENOTDIR),
            (true, true) if m.is_empty_dir(d) => None,
            (true, true) => Some(libc::ENOTEMPTY),
        },
    };
    let r = fs::rename(m.path(&src), m.path(&dst));
    if !same(r, want, &format!("rename {src:?} -> {dst:?}")) || dino == Some(sino) {
        return;
    }
    if dino.is_some() {
        m.unname(&dst);
    }
    m.names.remove(&src);
    m.names.insert(dst, sino);
}

#[track_caller]
fn check_name(m: &Model, k: &Key, ino: u64) {
    let p = m.path(k);
    let meta = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(meta.ino(), ino, "{}: inode", p.display());
    match &m.objs[&ino] {
        Obj::File(data) => {
            assert!(meta.is_file(), "{}", p.display());
            assert_eq!(meta.nlink() as usize, m.links(ino), "{}: link count", p.display());
            let got = fs::read(&p).unwrap();
            assert!(got == *data, "{}: content ({} bytes, model {})", p.display(), got.len(), data.len());
        }
        Obj::Dir => assert!(meta.is_dir(), "{}", p.display()),
        Obj::Symlink(t) => assert_eq!(fs::read_link(&p).unwrap(), *t, "{}", p.display()),
    }
}

fn check_model(m: &Model) {
    let mut dirs: Vec<Dir> = (0..SHARED_DIRS).map(Dir::Shared).collect();
    dirs.extend(m.own_dirs());
    for d in dirs {
        let mut got: Vec<String> = fs::read_dir(m.dir_path(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(&m.prefix) || matches!(d, Dir::Own(_)))
            .collect();
        got.sort();
        let mut want: Vec<String> = m.names.keys().filter(|(p, _)| *p == d).map(|(_, n)| n.clone()).collect();
        want.sort();
        assert_eq!(got, want, "{}: names of {}", m.dir_path(d).display(), m.prefix);
    }
    for (k, &ino) in &m.names {
        check_name(m, k, ino);
    }
}

/// Names s0..s5 in the shared directories: any thread creates, links, renames, unlinks or
/// writes a record; only "not there" and "already there" may fail.
fn shared_op(root: &Path, rng: &mut Rng) {
    let mut pick = || root.join(format!("d{}/s{}", rng.below(SHARED_DIRS as u64), rng.below(6)));
    let (a, b) = (pick(), pick());
    let r = match rng.below(5) {
        0 => fs::File::create_new(&a).map(|_| ()),
        1 => fs::remove_file(&a),
        2 => fs::rename(&a, &b),
        3 => fs::hard_link(&a, &b),
        _ => {
            let rec = rng.below(16) * RECORD as u64;
            let v = 1 + rng.below(255) as u8;
            OpenOptions::new().write(true).open(&a).and_then(|f| f.write_all_at(&[v; RECORD], rec))
        }
    };
    if let Err(e) = r {
        assert!(matches!(e.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists), "{}: {e}", a.display());
    }
}

fn check_shared(root: &Path) {
    for d in 0..SHARED_DIRS {
        for e in fs::read_dir(root.join(format!("d{d}"))).unwrap() {
            let e = e.unwrap();
            if !e.file_name().to_string_lossy().starts_with('s') {
                continue;
            }
            let data = fs::read(e.path()).unwrap();
            for (i, r) in data.chunks(RECORD).enumerate() {
                assert!(r.iter().all(|&b| b == r[0]), "{}: record {i} is torn", e.path().display());
            }
        }
    }
}

/// Unmount (or, with `crash`, SIGKILL zus and unmount the dead mount); fsck.zpmfs -n clean.
fn stop_and_fsck(t: &TestFs, crash: bool) {
    if crash {
        assert!(t.kill_server() > 0);
        if !run(Command::new("umount").arg(&t.mnt)).success() {
            run(Command::new("umount").arg("-l").arg(&t.mnt)).ok();
        }
        // Recovery first (mount and unmount), then the check.
        t.mount();
        t.unmount();
    } else {
        t.unmount();
    }
    let out = run(Command::new(bin("fsck.zpmfs")).args(["-n", "-f"]).arg(&t.image)).ok();
    assert!(out.stdout.contains(" 0 problem(s)"), "fsck.zpmfs -n -f:\n{}", out.text());
}

#[test]
fn threads_in_shared_directories_match_their_models_over_fuse() {
    let t = TestFs::with_size("stress", "256M");
    for d in 0..SHARED_DIRS {
        fs::create_dir(t.path(&format!("d{d}"))).unwrap();
    }
    let secs = stress_secs();
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let (root, stop, ops) = (t.mnt.clone(), stop.clone(), ops.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(1000 + i);
                let mut m = Model {
                    root: root.clone(),
                    prefix: format!("t{i}-"),
                    next: 0,
                    names: BTreeMap::new(),
                    objs: HashMap::new(),
                };
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if rng.below(8) == 0 {
                        shared_op(&root, &mut rng);
                    } else {
                        own_op(&mut m, &mut rng);
                    }
                    n += 1;
                }
                ops.fetch_add(n, Ordering::Relaxed);
                m
            })
        })
        .collect();
    while started.elapsed() < Duration::from_secs(secs) && !threads.iter().any(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let models: Vec<Model> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!(
        "stress over FUSE: {} system calls by {THREADS} threads in {:.1} s; {} names at the end",
        ops.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        models.iter().map(|m| m.names.len()).sum::<usize>()
    );
    let check = || {
        models.iter().for_each(check_model);
        check_shared(&t.mnt);
    };
    check();
    stop_and_fsck(&t, false);
    t.mount();
    check();
    stop_and_fsck(&t, true);
    t.mount();
    check();
}

/// Regression: zus freed an unlinked inode, and gave its number to the next create, while the
/// kernel still held it (a path walk in progress); the kernel then failed the walk's open with
/// EIO. Now zus holds every inode the kernel knows until FORGET, as a local filesystem would.
#[test]
fn open_racing_unlink_and_create_of_the_same_name_never_fails_with_eio() {
    let t = TestFs::new("stress-forget");
    let path = t.path("f");
    let stop = Arc::new(AtomicBool::new(false));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = fs::File::create_new(&path);
                    let _ = fs::remove_file(&path);
                }
            })
        })
        .collect();
    let opens: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(3) {
                    let r = OpenOptions::new().write(true).open(&path).and_then(|f| f.write_all_at(b"x", 0));
                    if let Err(e) = r {
                        assert_eq!(e.kind(), ErrorKind::NotFound, "open and write of a racing name: {e}");
                    }
                }
            })
        })
        .collect();
    let r: Vec<_> = opens.into_iter().map(|h| h.join()).collect();
    stop.store(true, Ordering::Relaxed);
    churn.into_iter().for_each(|h| h.join().unwrap());
    assert!(r.iter().all(|r| r.is_ok()), "an opener failed");
}
