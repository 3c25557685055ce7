//! Stress: threads creating, writing, truncating, linking, renaming, unlinking and removing
//! directories in the same directories at once, for ZPMFS_STRESS_SECS seconds (default 3;
//! `make stress` runs it for 10 minutes). Each thread owns its names (t<thread>-<n>), so a
//! model per thread says exactly what every call must return and what the tree must hold; a
//! few shared names that all threads fight over are checked for consistency only (a file
//! whose every 512-byte record is whole). The tree must equal the models at the end, after a
//! crash (dropping the mount) and mount, and fsck must find nothing.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Image;
use pmfs::vfs::*;
use pmfs::{Error, Fs};

const ME: Caller = Caller { uid: 0, gid: 0, pid: 1 };
const THREADS: u64 = 6;
const SHARED_DIRS: usize = 4;
/// Names per thread, and bytes per file, at most (the image must not fill up).
const MAX_NAMES: usize = 150;
const MAX_SIZE: u64 = 32 << 10;
const RECORD: usize = 512;

fn stress_secs() -> u64 {
    std::env::var("ZPMFS_STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
    /// Between 1 and `max` bytes.
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let len = 1 + self.below(max);
        let seed = self.below(u64::MAX);
        (0..len).map(|i| (seed.wrapping_add(i).wrapping_mul(0x9e37_79b9) >> 24) as u8).collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Obj {
    File { data: Vec<u8>, xattr: Option<Vec<u8>> },
    Dir,
    Symlink(Vec<u8>),
}

/// One thread's names, exactly: no other thread touches them.
struct Model {
    prefix: String,
    next: u64,
    /// (parent, name) -> inode.
    names: BTreeMap<(Ino, String), Ino>,
    objs: HashMap<Ino, Obj>,
    /// The thread's own directories (each directly in a shared one), holding only its names.
    dirs: Vec<Ino>,
}

impl Model {
    fn fresh(&mut self) -> String {
        self.next += 1;
        format!("{}{}", self.prefix, self.next)
    }
    fn links(&self, ino: Ino) -> usize {
        self.names.values().filter(|&&i| i == ino).count()
    }
    fn is_empty_dir(&self, ino: Ino) -> bool {
        !self.names.keys().any(|(p, _)| *p == ino)
    }
    /// A random name of this thread whose object `pick` accepts.
    fn pick(&self, rng: &mut Rng, accept: impl Fn(&Obj) -> bool) -> Option<((Ino, String), Ino)> {
        let c: Vec<_> = self.names.iter().filter(|(_, i)| accept(&self.objs[i])).collect();
        c.get(rng.below(c.len() as u64) as usize).map(|(k, i)| ((*k).clone(), **i))
    }
    fn unname(&mut self, key: &(Ino, String)) {
        let ino = self.names.remove(key).unwrap();
        if self.links(ino) == 0 {
            self.objs.remove(&ino);
            self.dirs.retain(|&d| d != ino);
        }
    }
}

#[track_caller]
fn same<T: std::fmt::Debug>(got: Result<T, Error>, want: Result<(), Error>, what: &str) -> Option<T> {
    match (got, want) {
        (Ok(v), Ok(())) => Some(v),
        (Err(g), Err(w)) if g == w => None,
        (g, w) => panic!("{what}: got {g:?}, the model says {w:?}"),
    }
}

/// One random operation on the thread's own names, checked against the model.
fn own_op(fs: &Fs, m: &mut Model, rng: &mut Rng, shared: &[Ino]) {
    let any_parent = |m: &Model, rng: &mut Rng| {
        let all: Vec<Ino> = shared.iter().chain(m.dirs.iter()).copied().collect();
        all[rng.below(all.len() as u64) as usize]
    };
    let shared_parent = |rng: &mut Rng| shared[rng.below(shared.len() as u64) as usize];
    let is_file = |o: &Obj| matches!(o, Obj::File { .. });
    let full = m.names.len() >= MAX_NAMES;
    match rng.below(14) {
        0 | 1 if !full => {
            let (p, name) = (any_parent(m, rng), m.fresh());
            let a = fs.mknod(p, name.as_bytes(), libc::S_IFREG | 0o644, 0, ME).unwrap();
            m.names.insert((p, name), a.ino);
            m.objs.insert(a.ino, Obj::File { data: Vec::new(), xattr: None });
        }
        2 if !full && m.dirs.len() < 8 => {
            let (p, name) = (shared_parent(rng), m.fresh());
            let a = fs.mkdir(p, name.as_bytes(), 0o755, ME).unwrap();
            m.names.insert((p, name), a.ino);
            m.objs.insert(a.ino, Obj::Dir);
            m.dirs.push(a.ino);
        }
        3 if !full => {
            let (p, name) = (any_parent(m, rng), m.fresh());
            let target = format!("target/{}", rng.below(1 << 40)).into_bytes();
            let a = fs.symlink(p, name.as_bytes(), &target, ME).unwrap();
            m.names.insert((p, name), a.ino);
            m.objs.insert(a.ino, Obj::Symlink(target));
        }
        4 | 5 => {
            let Some((_, ino)) = m.pick(rng, is_file) else { return };
            let off = rng.below(MAX_SIZE - 8192);
            let bytes = rng.bytes(8192);
            fs.write(ino, off, &bytes, false).unwrap();
            if let Some(Obj::File { data, .. }) = m.objs.get_mut(&ino) {
                let end = off as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[off as usize..end].copy_from_slice(&bytes);
            }
        }
        6 => {
            let Some((_, ino)) = m.pick(rng, is_file) else { return };
            let size = rng.below(MAX_SIZE);
            fs.setattr(ino, &SetAttr { size: Some(size), ..Default::default() }).unwrap();
            if let Some(Obj::File { data, .. }) = m.objs.get_mut(&ino) {
                data.resize(size as usize, 0);
            }
        }
        7 if !full => {
            let Some((_, ino)) = m.pick(rng, is_file) else { return };
            let (p, name) = (any_parent(m, rng), m.fresh());
            fs.link(ino, p, name.as_bytes()).unwrap();
            m.names.insert((p, name), ino);
        }
        8 => {
            let Some((key, _)) = m.pick(rng, |o| !matches!(o, Obj::Dir)) else { return };
            fs.unlink(key.0, key.1.as_bytes()).unwrap();
            m.unname(&key);
        }
        9 | 10 => rename(fs, m, rng, shared),
        11 => {
            let Some((key, ino)) = m.pick(rng, |o| matches!(o, Obj::Dir)) else { return };
            let want = if m.is_empty_dir(ino) { Ok(()) } else { Err(Error::NotEmpty) };
            if same(fs.rmdir(key.0, key.1.as_bytes()), want, "rmdir").is_some() {
                m.unname(&key);
            }
        }
        12 => {
            let Some((_, ino)) = m.pick(rng, is_file) else { return };
            let v = rng.bytes(200);
            fs.setxattr(ino, b"user.model", &v, XattrFlags::default()).unwrap();
            if let Some(Obj::File { xattr, .. }) = m.objs.get_mut(&ino) {
                *xattr = Some(v);
            }
        }
        _ => {
            let Some((key, ino)) = m.pick(rng, |_| true) else { return };
            check_name(fs, m, &key, ino);
        }
    }
}

/// Rename one of the thread's names to a fresh name or over another of its names; the model
/// says what POSIX rename must do.
fn rename(fs: &Fs, m: &mut Model, rng: &mut Rng, shared: &[Ino]) {
    let Some((src, sino)) = m.pick(rng, |_| true) else { return };
    let src_dir = m.objs[&sino] == Obj::Dir;
    let dst = match rng.below(2) {
        0 => m.pick(rng, |_| true).map(|(k, _)| k),
        _ => None,
    };
    let dst = dst.unwrap_or_else(|| {
        // Own directories live only in shared ones, so no rename can make a loop.
        let all: Vec<Ino> =
            if src_dir { shared.to_vec() } else { shared.iter().chain(m.dirs.iter()).copied().collect() };
        (all[rng.below(all.len() as u64) as usize], m.fresh())
    });
    if src_dir && !shared.contains(&dst.0) {
        return;
    }
    let dino = m.names.get(&dst).copied();
    let want = match dino {
        None => Ok(()),
        Some(d) if d == sino => Ok(()),
        Some(d) => match (src_dir, m.objs[&d] == Obj::Dir) {
            (false, false) => Ok(()),
            (false, true) => Err(Error::IsDir),
            (true, false) => Err(Error::NotDir),
            (true, true) if m.is_empty_dir(d) => Ok(()),
            (true, true) => Err(Error::NotEmpty),
        },
    };
    let r = fs.rename(src.0, src.1.as_bytes(), dst.0, dst.1.as_bytes(), RenameFlags::default());
    if same(r, want, &format!("rename {src:?} -> {dst:?}")).is_none() || dino == Some(sino) {
        return; // refused, or two names of one inode: POSIX says do nothing
    }
    if dino.is_some() {
        m.unname(&dst);
    }
    m.names.remove(&src);
    m.names.insert(dst, sino);
}

/// What the fs says of one of a thread's names equals the model.
#[track_caller]
fn check_name(fs: &Fs, m: &Model, key: &(Ino, String), ino: Ino) {
    let a = fs.lookup(key.0, key.1.as_bytes()).unwrap_or_else(|e| panic!("{key:?}: {e:?}"));
    assert_eq!(a.ino, ino, "{key:?}: inode");
    match &m.objs[&ino] {
        Obj::File { data, xattr } => {
            assert_eq!(a.kind, FileKind::Regular, "{key:?}");
            assert_eq!(a.nlink as usize, m.links(ino), "{key:?}: link count");
            let mut buf = vec![0u8; a.size as usize];
            fs.read(ino, 0, &mut buf).unwrap();
            assert!(buf == *data, "{key:?}: content ({} bytes, model {})", buf.len(), data.len());
            assert_eq!(fs.getxattr(ino, b"user.model").ok(), *xattr, "{key:?}: xattr");
        }
        Obj::Dir => assert_eq!(a.kind, FileKind::Directory, "{key:?}"),
        Obj::Symlink(t) => assert_eq!(fs.readlink(ino).unwrap(), *t, "{key:?}"),
    }
}

/// The names each directory holds for this thread equal the model's, and each is right.
fn check_model(fs: &Fs, m: &Model, shared: &[Ino]) {
    for &dir in shared.iter().chain(m.dirs.iter()) {
        let mut got: Vec<String> = fs
            .readdir(dir, 2, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8(e.name).unwrap())
            .filter(|n| n.starts_with(&m.prefix) || !shared.contains(&dir))
            .collect();
        got.sort();
        let want: Vec<String> = m.names.keys().filter(|(p, _)| *p == dir).map(|(_, n)| n.clone()).collect();
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "directory {dir}, names of {}", m.prefix);
    }
    for (key, &ino) in &m.names {
        check_name(fs, m, key, ino);
    }
}

/// A shared name: create, unlink, rename, link or write, by any thread, or a listing of a shared
/// directory; only some outcomes are possible, and a shared file is made of whole records.
fn shared_op(fs: &Fs, rng: &mut Rng, shared: &[Ino]) {
    let dir = |rng: &mut Rng| shared[rng.below(shared.len() as u64) as usize];
    let name = |rng: &mut Rng| format!("s{}", rng.below(6));
    let (d, n) = (dir(rng), name(rng));
    let r = match rng.below(6) {
        0 => fs.mknod(d, n.as_bytes(), libc::S_IFREG | 0o644, 0, ME).map(|_| ()),
        1 => fs.unlink(d, n.as_bytes()),
        2 => fs.rename(d, n.as_bytes(), dir(rng), name(rng).as_bytes(), RenameFlags::default()),
        3 => pin(fs, d, &n).and_then(|ino| {
            let r = fs.link(ino, dir(rng), name(rng).as_bytes()).map(|_| ());
            fs.release(ino).and(r)
        }),
        4 => {
            // Every name listed resolves, unless it went away since.
            for e in fs.readdir(d, 0, usize::MAX).unwrap() {
                match fs.lookup(d, &e.name) {
                    Ok(_) | Err(Error::NotFound) => {}
                    Err(e) => panic!("lookup of a listed name: {e:?}"),
                }
            }
            Ok(())
        }
        _ => pin(fs, d, &n).and_then(|ino| {
            let rec = rng.below(16) * RECORD as u64;
            let r = fs.write(ino, rec, &[1 + rng.below(255) as u8; RECORD], false).map(|_| ());
            fs.release(ino).and(r)
        }),
    };
    if let Err(e) = r {
        assert!(matches!(e, Error::NotFound | Error::Exists), "shared name {n}: {e:?}");
    }
}

/// The inode a shared name holds, held open so that it is not freed, and its number given to
/// another thread's new inode, while we use it. (Through FUSE or zuf.ko the kernel's inode
/// locks and references do this; the library's calls take bare inode numbers.)
fn pin(fs: &Fs, dir: Ino, name: &str) -> Result<Ino, Error> {
    let ino = fs.lookup(dir, name.as_bytes())?.ino;
    fs.open(ino)?;
    if fs.lookup(dir, name.as_bytes()).map(|a| a.ino) != Ok(ino) {
        fs.release(ino)?;
        return Err(Error::NotFound);
    }
    Ok(ino)
}

fn check_shared(fs: &Fs, shared: &[Ino]) {
    for &dir in shared {
        for e in fs.readdir(dir, 2, usize::MAX).unwrap() {
            if !e.name.starts_with(b"s") {
                continue;
            }
            let a = fs.lookup(dir, &e.name).unwrap();
            assert_eq!(a.kind, FileKind::Regular);
            let mut buf = vec![0u8; a.size as usize];
            fs.read(a.ino, 0, &mut buf).unwrap();
            for (i, r) in buf.chunks(RECORD).enumerate() {
                assert!(r.iter().all(|&b| b == r[0]), "shared file: record {i} is torn");
            }
        }
    }
}

#[test]
fn threads_in_shared_directories_match_their_models() {
    let secs = stress_secs();
    let img = Image::new("stress", 128 << 20);
    let fs = Arc::new(img.mount());
    let shared: Vec<Ino> = (0..SHARED_DIRS)
        .map(|i| fs.mkdir(ROOT_INO, format!("d{i}").as_bytes(), 0o755, ME).unwrap().ino)
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (fs, shared, stop, ops) = (fs.clone(), shared.clone(), stop.clone(), ops.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let mut m = Model {
                    prefix: format!("t{t}-"),
                    next: 0,
                    names: BTreeMap::new(),
                    objs: HashMap::new(),
                    dirs: Vec::new(),
                };
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if rng.below(8) == 0 {
                        shared_op(&fs, &mut rng, &shared);
                    } else {
                        own_op(&fs, &mut m, &mut rng, &shared);
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
    let names: usize = models.iter().map(|m| m.names.len()).sum();
    eprintln!(
        "stress: {} operations by {THREADS} threads in {:.1} s; {names} names at the end",
        ops.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    models.iter().for_each(|m| check_model(&fs, m, &shared));
    check_shared(&fs, &shared);

    // A crash: every call had returned, so everything is there after recovery.
    drop(Arc::into_inner(fs).unwrap());
    let fs = img.mount();
    assert!(!fs.mount_report().was_clean);
    assert_eq!(fs.mount_report().orphans_freed, 0);
    models.iter().for_each(|m| check_model(&fs, m, &shared));
    check_shared(&fs, &shared);
    img.unmount_and_fsck(fs);
    let fs = img.mount();
    models.iter().for_each(|m| check_model(&fs, m, &shared));
    img.unmount_and_fsck(fs);
}

/// Regression: a lookup that found a name, lost its inode to a racing unlink, and then found
/// the name again, recreated with the same inode number (freed slots are reused first) and the
/// same readdir cookie (a hash of the name), reported the directory as damaged (EIO).
#[test]
fn lookup_racing_unlink_and_create_of_the_same_name_is_never_damage() {
    let img = Image::new("stress-lookup", 32 << 20);
    let fs = Arc::new(img.mount());
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, ME).unwrap().ino;
    fs.mknod(d, b"s", libc::S_IFREG | 0o644, 0, ME).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (fs, stop) = (fs.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                fs.unlink(d, b"s").unwrap();
                fs.mknod(d, b"s", libc::S_IFREG | 0o644, 0, ME).unwrap();
            }
        })
    };
    let start = Instant::now();
    let lookups: Vec<_> = (0..2)
        .map(|_| {
            let fs = fs.clone();
            std::thread::spawn(move || {
                while start.elapsed() < Duration::from_secs(1) {
                    match fs.lookup(d, b"s") {
                        Ok(_) | Err(Error::NotFound) => {}
                        Err(e) => panic!("lookup racing unlink and create: {e:?}"),
                    }
                }
            })
        })
        .collect();
    let r: Vec<_> = lookups.into_iter().map(|h| h.join()).collect();
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert!(r.iter().all(|r| r.is_ok()), "a lookup thread failed");
}
