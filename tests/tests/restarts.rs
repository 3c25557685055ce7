//! zus killed with SIGKILL under a mixed load, again and again, over FUSE: every operation that
//! returned success before the kill is still there after the next mount.
//!
//! Each worker thread owns a directory and runs creates (write + fsync), overwrites, truncates,
//! renames (some over an existing file), hard links, unlinks, mkdirs and setxattrs on it. After
//! each call returns it applies the call to its model of the directory and appends a line to
//! its log outside the mount (zpmfs is synchronous: a call that returned is durable). zus is
//! then killed at a random moment, the dead mount unmounted, the image mounted (which recovers),
//! unmounted, checked by `fsck.zpmfs -n -f` (which must find nothing), mounted again, and the
//! directories compared with the models: names, contents, hard-link groups, link counts, xattrs.
//!
//! The one call per worker that was in flight at the kill may or may not have happened: what
//! is there must be its state before or after, wholly (a rename, a write, a truncate, an xattr;
//! a create whose write had not returned may leave an empty file), and the model then takes it.
//!
//! `ZPMFS_KILL_CYCLES` sets the number of kills (default 10); `make kill-test` runs 200.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zpmfs_tests::*;

const WORKERS: usize = 4;
/// Live files per worker at most, so the image never fills.
const MAX_FILES: usize = 40;
const MAX_DIRS: usize = 6;
const XATTR_NAMES: [&str; 3] = ["user.a", "user.b", "user.c"];

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn setxattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let (p, n) = (cstr(path), CString::new(name).unwrap());
    // SAFETY: valid C strings and a buffer of value.len() bytes, all outliving the call.
    let rc = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Every xattr of `path`: name -> value.
fn xattrs(path: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let p = cstr(path);
    let mut names = vec![0u8; 4096];
    // SAFETY: `names` has the length passed; `p` is a valid C string.
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = BTreeMap::new();
    for name in names[..n as usize].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        // SAFETY: as above, `value` has the length passed.
        let len =
            unsafe { libc::lgetxattr(p.as_ptr(), cname.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        if len < 0 {
            return Err(std::io::Error::last_os_error());
        }
        value.truncate(len as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The model of one worker's directory

#[derive(Clone, Debug, Default, PartialEq)]
struct Inode {
    data: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// What a worker's directory holds: paths relative to the mount.
#[derive(Clone, Debug, Default)]
struct Model {
    /// File path -> inode id (hard links share one).
    names: BTreeMap<String, usize>,
    inodes: BTreeMap<usize, Inode>,
    dirs: BTreeSet<String>,
    next_id: usize,
}

impl Model {
    fn inode(&self, path: &str) -> &Inode {
        &self.inodes[&self.names[path]]
    }
    fn inode_mut(&mut self, path: &str) -> &mut Inode {
        let id = self.names[path];
        self.inodes.get_mut(&id).unwrap()
    }
    fn add_file(&mut self, path: &str, data: Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        self.inodes.insert(id, Inode { data, xattrs: BTreeMap::new() });
        self.names.insert(path.to_string(), id);
    }
    fn remove_name(&mut self, path: &str) {
        if let Some(id) = self.names.remove(path) {
            if !self.names.values().any(|v| *v == id) {
                self.inodes.remove(&id);
            }
        }
    }
    fn links(&self, id: usize) -> u64 {
        self.names.values().filter(|v| **v == id).count() as u64
    }
}

/// One operation, with what it needs to be applied to the model.
#[derive(Clone, Debug)]
enum Op {
    Create { path: String, data: Vec<u8> },
    Pwrite { path: String, offset: usize, data: Vec<u8> },
    Truncate { path: String, len: usize },
    Rename { from: String, to: String },
    Link { from: String, to: String },
    Unlink { path: String },
    Mkdir { path: String },
    Setxattr { path: String, name: String, value: Vec<u8> },
}

impl Op {
    /// The model after this operation happened.
    fn apply(&self, m: &mut Model) {
        match self {
            Op::Create { path, data } => m.add_file(path, data.clone()),
            Op::Pwrite { path, offset, data } => {
                let d = &mut m.inode_mut(path).data;
                if d.len() < offset + data.len() {
                    d.resize(offset + data.len(), 0);
                }
                d[*offset..offset + data.len()].copy_from_slice(data);
            }
            Op::Truncate { path, len } => m.inode_mut(path).data.resize(*len, 0),
            // rename(2) between two links of one inode does nothing.
            Op::Rename { from, to } if m.names.get(to) == Some(&m.names[from]) => {}
            Op::Rename { from, to } => {
                let id = m.names[from];
                m.remove_name(to);
                m.names.remove(from);
                m.names.insert(to.clone(), id);
            }
            Op::Link { from, to } => {
                let id = m.names[from];
                m.names.insert(to.clone(), id);
            }
            Op::Unlink { path } => m.remove_name(path),
            Op::Mkdir { path } => {
                m.dirs.insert(path.clone());
            }
            Op::Setxattr { path, name, value } => {
                m.inode_mut(path).xattrs.insert(name.clone(), value.clone());
            }
        }
    }

    /// The line for the log: the operation without its data.
    fn describe(&self) -> String {
        match self {
            Op::Create { path, data } => format!("create+write+fsync {path} {} bytes", data.len()),
            Op::Pwrite { path, offset, data } => {
                format!("pwrite+fdatasync {path} at {offset}, {}", data.len())
            }
            Op::Truncate { path, len } => format!("truncate {path} to {len}"),
            Op::Rename { from, to } => format!("rename {from} -> {to}"),
            Op::Link { from, to } => format!("link {from} -> {to}"),
            Op::Unlink { path } => format!("unlink {path}"),
            Op::Mkdir { path } => format!("mkdir {path}"),
            Op::Setxattr { path, name, value } => format!("setxattr {path} {name} ({} bytes)", value.len()),
        }
    }

    /// Do it on the mount; Ok once every call it makes has returned success.
    fn run(&self, mnt: &Path) -> std::io::Result<()> {
        let p = |rel: &str| mnt.join(rel);
        match self {
            Op::Create { path, data } => {
                let f = OpenOptions::new().write(true).create_new(true).open(p(path))?;
                f.write_all_at(data, 0)?;
                f.sync_all()
            }
            Op::Pwrite { path, offset, data } => {
                let f = OpenOptions::new().write(true).open(p(path))?;
                f.write_all_at(data, *offset as u64)?;
                f.sync_data()
            }
            Op::Truncate { path, len } => OpenOptions::new().write(true).open(p(path))?.set_len(*len as u64),
            Op::Rename { from, to } => fs::rename(p(from), p(to)),
            Op::Link { from, to } => fs::hard_link(p(from), p(to)),
            Op::Unlink { path } => fs::remove_file(p(path)),
            Op::Mkdir { path } => fs::create_dir(p(path)),
            Op::Setxattr { path, name, value } => setxattr(&p(path), name, value),
        }
    }
}

/// A random operation that makes sense on `m`.
fn choose(m: &Model, rng: &mut Rng, seq: &mut u64) -> Op {
    let files: Vec<&String> = m.names.keys().collect();
    let dirs: Vec<&String> = m.dirs.iter().collect();
    let mut new_name = |rng: &mut Rng| {
        *seq += 1;
        format!("{}/f{}", dirs[rng.below(dirs.len() as u64) as usize], seq)
    };
    let roll = rng.below(100);
    if files.len() < 3 || (roll < 30 && files.len() < MAX_FILES) {
        let len = match rng.below(6) {
            0 => EDGE_SIZES[rng.below(EDGE_SIZES.len() as u64) as usize].min(65536),
            _ => rng.below(24 * 1024) as usize,
        };
        return Op::Create { path: new_name(rng), data: rng.bytes(len) };
    }
    let file = files[rng.below(files.len() as u64) as usize].clone();
    match roll {
        0..=44 => {
            let len = m.inode(&file).data.len();
            let offset = rng.below(len as u64 + 4096) as usize;
            let n = 1 + rng.below(16 * 1024) as usize;
            Op::Pwrite { path: file, offset, data: rng.bytes(n) }
        }
        45..=54 => Op::Truncate { path: file, len: rng.below(48 * 1024) as usize },
        55..=66 => {
            // A third of the renames replace another file.
            let to = if rng.below(3) == 0 {
                files[rng.below(files.len() as u64) as usize].clone()
            } else {
                new_name(rng)
            };
            if to == file {
                return Op::Unlink { path: file };
            }
            Op::Rename { from: file, to }
        }
        67..=74 if files.len() < MAX_FILES => Op::Link { from: file, to: new_name(rng) },
        75..=86 => Op::Unlink { path: file },
        87..=89 if dirs.len() < MAX_DIRS => {
            *seq += 1;
            Op::Mkdir { path: format!("{}/d{seq}", dirs[rng.below(dirs.len() as u64) as usize]) }
        }
        _ => {
            let name = XATTR_NAMES[rng.below(XATTR_NAMES.len() as u64) as usize].to_string();
            let len = 1 + rng.below(200) as usize;
            Op::Setxattr { path: file, name, value: rng.bytes(len) }
        }
    }
}

/// What a worker hands back at the end of a cycle.
struct Worked {
    model: Model,
    rng: Rng,
    seq: u64,
    completed: u64,
    /// The operation that failed, and how.
    in_flight: Option<(Op, String)>,
    /// Whether it failed before zus was killed (a bug).
    failed_early: bool,
}

/// Run operations until one fails (zus is killed); log each completed one.
fn work(mnt: PathBuf, log: PathBuf, mut w: Worked, killed: Arc<AtomicBool>, cycle: usize) -> Worked {
    let mut log = BufWriter::new(OpenOptions::new().create(true).append(true).open(log).expect("open log"));
    w.completed = 0;
    loop {
        let op = choose(&w.model, &mut w.rng, &mut w.seq);
        match op.run(&mnt) {
            Ok(()) => {
                op.apply(&mut w.model);
                w.completed += 1;
                writeln!(log, "cycle {cycle}: {}", op.describe()).expect("write log");
            }
            Err(e) => {
                writeln!(log, "cycle {cycle}: IN FLIGHT at the kill: {} ({e})", op.describe()).expect("log");
                // The flag is set before the kill: still false, the failure came first.
                w.failed_early = !killed.load(Ordering::SeqCst);
                w.in_flight = Some((op, e.to_string()));
                log.flush().expect("flush log");
                return w;
            }
        }
        if w.completed > 1_000_000 {
            panic!("a worker ran a million operations without meeting the kill");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing a directory with its model

/// A file as found on the mount.
#[derive(Debug, Clone)]
struct Found {
    ino: u64,
    nlink: u64,
    inode: Inode,
}

/// Every file and directory under `rel` (relative to `mnt`).
fn scan(mnt: &Path, rel: &str, files: &mut BTreeMap<String, Found>, dirs: &mut BTreeSet<String>) {
    dirs.insert(rel.to_string());
    let mut entries: Vec<_> = fs::read_dir(mnt.join(rel))
        .unwrap_or_else(|e| panic!("readdir {rel}: {e}"))
        .map(|e| e.expect("readdir entry").file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    for name in entries {
        let child = format!("{rel}/{name}");
        let path = mnt.join(&child);
        let meta = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {child}: {e}"));
        if meta.is_dir() {
            scan(mnt, &child, files, dirs);
        } else {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("read {child}: {e}"));
            let xattrs = xattrs(&path).unwrap_or_else(|e| panic!("xattrs of {child}: {e}"));
            files
                .insert(child, Found { ino: meta.ino(), nlink: meta.nlink(), inode: Inode { data, xattrs } });
        }
    }
}

/// Check that what the in-flight `op` left is one of the states it may leave, and make the
/// model what is there. Returns the problems.
fn settle_in_flight(
    op: &Op,
    m: &mut Model,
    found: &BTreeMap<String, Found>,
    dirs: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |why: String| problems.push(format!("in-flight {}: {why}", op.describe()));
    let mut after = m.clone();
    op.apply(&mut after);
    match op {
        Op::Create { path, data } => {
            if let Some(f) = found.get(path) {
                // Created and not yet written, or written: one write(2) is one FUSE request.
                if !f.inode.data.is_empty() && f.inode.data != *data {
                    bad(format!(
                        "{} bytes there, neither none nor the {} written",
                        f.inode.data.len(),
                        data.len()
                    ));
                }
                m.add_file(path, f.inode.data.clone());
            }
        }
        Op::Pwrite { path, .. } | Op::Truncate { path, .. } => match found.get(path) {
            Some(f) => {
                let (old, new) = (&m.inode(path).data, &after.inode(path).data);
                // zpmfs claims each call wholly done or wholly absent (docs/CRASH-TESTING.md).
                if f.inode.data != *old && f.inode.data != *new {
                    bad(format!(
                        "{} bytes there are neither old nor new ({} / {})",
                        f.inode.data.len(),
                        old.len(),
                        new.len()
                    ));
                }
                m.inode_mut(path).data = f.inode.data.clone();
            }
            None => bad("the file is gone".into()),
        },
        Op::Rename { from, to } => {
            let moved = m.inode(from).clone();
            match (found.get(from), found.get(to)) {
                (None, Some(t)) if t.inode == moved => *m = after,
                (Some(f), t) if f.inode == moved => {
                    let old_to = m.names.get(to).map(|_| m.inode(to).clone());
                    if t.map(|t| t.inode.clone()) != old_to {
                        bad(format!("{from} is still there but {to} changed"));
                    }
                }
                (f, t) => bad(format!(
                    "neither before nor after: {from} there: {}, {to} there: {}",
                    f.is_some(),
                    t.is_some()
                )),
            }
        }
        Op::Link { from, to } => match (found.get(from), found.get(to)) {
            (Some(_), None) => {}
            (Some(f), Some(t)) if f.ino == t.ino => *m = after,
            _ => bad(format!("{from} gone, or {to} is another file")),
        },
        Op::Unlink { path } => {
            if found.get(path).is_none() {
                *m = after;
            }
        }
        Op::Mkdir { path } => {
            if dirs.contains(path) {
                *m = after;
            }
        }
        Op::Setxattr { path, name, value } => match found.get(path).map(|f| f.inode.xattrs.get(name)) {
            Some(Some(v)) if v == value => *m = after,
            Some(v) if v == m.inode(path).xattrs.get(name) => {}
            _ => bad(format!("{name} is neither the old nor the new value")),
        },
    }
    problems
}

/// Compare the mount with the model; return the problems, and the number of names checked.
fn compare(m: &Model, found: &BTreeMap<String, Found>, dirs: &BTreeSet<String>) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let on_disk: BTreeSet<&String> = dirs.iter().collect();
    let wanted: BTreeSet<&String> = m.dirs.iter().collect();
    if on_disk != wanted {
        problems.push(format!("directories differ: want {wanted:?}, found {on_disk:?}"));
    }
    let mut ino_of: BTreeMap<usize, u64> = BTreeMap::new();
    for (path, id) in &m.names {
        let Some(f) = found.get(path) else {
            problems.push(format!("missing: {path}"));
            continue;
        };
        let want = &m.inodes[id];
        if f.inode.data != want.data {
            problems.push(format!(
                "{path}: {} bytes, want {} (or different bytes)",
                f.inode.data.len(),
                want.data.len()
            ));
        }
        if f.inode.xattrs != want.xattrs {
            problems.push(format!(
                "{path}: xattrs {:?}, want {:?}",
                f.inode.xattrs.keys(),
                want.xattrs.keys()
            ));
        }
        if f.nlink != m.links(*id) {
            problems.push(format!("{path}: {} links, want {}", f.nlink, m.links(*id)));
        }
        if let Some(ino) = ino_of.insert(*id, f.ino) {
            if ino != f.ino {
                problems.push(format!("{path}: not the same inode as its hard links"));
            }
        }
    }
    for path in found.keys().filter(|p| !m.names.contains_key(*p)) {
        problems.push(format!("unexpected: {path}"));
    }
    (problems, m.names.len() + m.dirs.len())
}

/// Count each line of `text`, its numbers and paths left out, so that like lines add up.
fn tally(counts: &mut BTreeMap<String, usize>, text: &str) {
    for line in text.lines() {
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| {
                if w.contains('/') {
                    "PATH".into()
                } else if w.chars().any(|c| c.is_ascii_digit()) {
                    "N".into()
                } else {
                    w.to_string()
                }
            })
            .collect();
        *counts.entry(words.join(" ")).or_default() += 1;
    }
}

/// Unmount a mount whose server is dead: umount, lazily if it must.
fn umount_dead(t: &TestFs) {
    if !run(Command::new("umount").arg(&t.mnt)).success() {
        run(Command::new("umount").arg("-l").arg(&t.mnt)).ok();
    }
    assert!(!is_mount_point(&t.mnt), "{} still mounted", t.mnt.display());
}

#[test]
fn kill_9_under_load_loses_no_completed_operation() {
    let cycles: usize = std::env::var("ZPMFS_KILL_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let t = TestFs::with_size("restarts", "128M");
    // The workers' logs stay behind when the test fails (they name every completed call).
    let logs = std::env::temp_dir().join(unique("restarts-logs"));
    fs::create_dir(&logs).unwrap();
    let fsck = bin("fsck.zpmfs");
    let mut rng = Rng::new(0x5eed);
    let mut workers: Vec<Worked> = (0..WORKERS)
        .map(|k| {
            let dir = format!("w{k}");
            fs::create_dir(t.path(&dir)).unwrap();
            let model = Model { dirs: [dir].into(), ..Default::default() };
            Worked {
                model,
                rng: Rng::new(k as u64 + 1),
                seq: 0,
                completed: 0,
                in_flight: None,
                failed_early: false,
            }
        })
        .collect();
    let (mut total_ops, mut names_checked) = (0u64, 0usize);
    let mut in_flight: BTreeMap<String, usize> = BTreeMap::new();
    let (mut raw_fsck, mut recoveries) = (BTreeMap::new(), BTreeMap::new());
    let start = Instant::now();

    for cycle in 0..cycles {
        let killed = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = workers
            .drain(..)
            .enumerate()
            .map(|(k, mut w)| {
                w.in_flight = None;
                let log = logs.join(format!("w{k}.log"));
                // This cycle's log and the one before; older ones would only fill /tmp.
                let _ = fs::rename(&log, logs.join(format!("w{k}.previous.log")));
                let (mnt, killed) = (t.mnt.clone(), killed.clone());
                std::thread::spawn(move || work(mnt, log, w, killed, cycle))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
        killed.store(true, Ordering::SeqCst);
        assert!(t.kill_server() > 0, "cycle {cycle}: found no zus serving {}", t.mnt.display());
        let deadline = Instant::now() + Duration::from_secs(30);
        while handles.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            handles.iter().all(|h| h.is_finished()),
            "cycle {cycle}: a worker still runs 30 s after the kill"
        );
        workers = handles.into_iter().map(|h| h.join().expect("worker panicked")).collect();
        for (k, w) in workers.iter().enumerate() {
            let (op, err) = w.in_flight.as_ref().unwrap();
            assert!(
                !w.failed_early,
                "cycle {cycle}: worker {k} failed before the kill: {} ({err}); logs in {}",
                op.describe(),
                logs.display()
            );
            total_ops += w.completed;
        }

        umount_dead(&t);
        // The crashed image as it is: fsck checks the state mount's recovery will produce, so
        // it must find nothing here either.
        let out = run(Command::new(&fsck).args(["-n", "-v"]).arg(&t.image));
        assert!(out.success(), "cycle {cycle}: fsck -n -v on the crashed image:\n{}", out.text());
        tally(&mut raw_fsck, &out.text());
        // Mounting recovers; a clean unmount after that leaves nothing for fsck to find.
        let out = t.try_mount(&[]);
        assert!(
            out.success() && is_mount_point(&t.mnt),
            "cycle {cycle}: mount after the kill: {}",
            out.text()
        );
        tally(&mut recoveries, &out.text());
        t.unmount();
        let out = run(Command::new(&fsck).args(["-n", "-f"]).arg(&t.image));
        assert!(
            out.success(),
            "cycle {cycle}: fsck -n -f after recovery and a clean unmount:\n{}",
            out.text()
        );
        t.mount();

        let mut problems = Vec::new();
        for (k, w) in workers.iter_mut().enumerate() {
            let (mut found, mut dirs) = (BTreeMap::new(), BTreeSet::new());
            scan(&t.mnt, &format!("w{k}"), &mut found, &mut dirs);
            let (op, _) = w.in_flight.clone().unwrap();
            // Whatever the in-flight call left: check it, then take it as the new truth.
            let before = (w.model.names.clone(), w.model.inodes.clone(), w.model.dirs.clone());
            problems.extend(settle_in_flight(&op, &mut w.model, &found, &dirs));
            let happened = before != (w.model.names.clone(), w.model.inodes.clone(), w.model.dirs.clone());
            let kind = op.describe().split(' ').next().unwrap_or_default().to_string();
            *in_flight
                .entry(format!("{kind}: {}", if happened { "done" } else { "not done" }))
                .or_default() += 1;
            let (p, n) = compare(&w.model, &found, &dirs);
            problems.extend(p.into_iter().map(|p| format!("worker {k}: {p}")));
            names_checked += n;
        }
        assert!(
            problems.is_empty(),
            "cycle {cycle}: {} problems after the kill and recovery (logs in {}); the first:\n{}",
            problems.len(),
            logs.display(),
            problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        if (cycle + 1) % 25 == 0 {
            eprintln!(
                "{} kills survived, {total_ops} operations, {:.0} s",
                cycle + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "{cycles} kills survived in {:.1} s: {total_ops} completed operations, {names_checked} names \
         compared, {} in-flight operations settled",
        start.elapsed().as_secs_f64(),
        in_flight.values().sum::<usize>()
    );
    eprintln!("the calls in flight at the kills: {in_flight:#?}");
    eprintln!("fsck -n -v on the crashed images said: {raw_fsck:#?}");
    eprintln!("the mounts after the kills said: {recoveries:#?}");
    let _ = fs::remove_dir_all(&logs);
}
