//! Using a mounted filesystem the way a user would after mount: walk the tree from the root
//! (readdir, lookup, getattr, read, lseek, readlink, xattrs), then change it a little. Errors
//! are expected (the image is damaged); a panic, a hang or a runaway allocation is a finding.

use std::collections::{HashSet, VecDeque};

use pmfs::vfs::{Caller, FileKind, Ino, SeekWhence, SetAttr, XattrFlags, ROOT_INO};
use pmfs::Fs;

/// Inodes visited per walk: enough for every seed tree, bounded for damaged ones.
const MAX_INODES: usize = 128;
/// Bytes read from each file (from its start and around its last byte).
const READ_MAX: u64 = 16 << 10;

/// What a walk saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Walked {
    /// One line per name reached, in walk order, without times: a later mount of the same
    /// image must show the same lines.
    pub lines: Vec<String>,
    pub files: Vec<Ino>,
    pub dirs: Vec<Ino>,
}

fn read_some(fs: &Fs, ino: Ino, offset: u64, len: u64) -> String {
    let mut buf = vec![0u8; len.min(READ_MAX) as usize];
    match fs.read(ino, offset, &mut buf) {
        Ok(n) => format!("{n}@{offset}:{:08x}", crc32c::crc32c(&buf[..n.min(buf.len())])),
        Err(e) => format!("read@{offset}: {e}"),
    }
}

fn xattrs(fs: &Fs, ino: Ino) -> String {
    let names = match fs.listxattr(ino) {
        Ok(n) => n,
        Err(e) => return format!("listxattr: {e}"),
    };
    let mut out = String::new();
    for name in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
        let value = fs.getxattr(ino, name).map(|v| crc32c::crc32c(&v));
        out += &format!(" {}={value:x?}", String::from_utf8_lossy(name));
    }
    out
}

/// Everything a user could read about one inode, as a line.
fn describe(fs: &Fs, path: &str, ino: Ino) -> (String, Option<FileKind>) {
    let a = match fs.getattr(ino) {
        Ok(a) => a,
        Err(e) => return (format!("{path}: getattr: {e}"), None),
    };
    let mut line = format!(
        "{path} ino={} gen={} {:?} size={} blocks={} nlink={} perm={:o} uid={} gid={} rdev={}",
        a.ino, a.generation, a.kind, a.size, a.blocks, a.nlink, a.perm, a.uid, a.gid, a.rdev
    );
    match a.kind {
        FileKind::Regular => {
            line += &format!(" {}", read_some(fs, ino, 0, a.size));
            if a.size > READ_MAX {
                line += &format!(" {}", read_some(fs, ino, a.size - 1, 1));
            }
            let data = fs.lseek(ino, 0, SeekWhence::Data);
            let hole = fs.lseek(ino, 0, SeekWhence::Hole);
            line += &format!(" data={data:?} hole={hole:?}");
        }
        FileKind::Symlink => match fs.readlink(ino) {
            Ok(t) => line += &format!(" -> {:08x}/{}", crc32c::crc32c(&t), t.len()),
            Err(e) => line += &format!(" readlink: {e}"),
        },
        _ => {}
    }
    line += &xattrs(fs, ino);
    (line, Some(a.kind))
}

/// Walk the tree from the root, breadth first, at most [`MAX_INODES`] directories deep in all.
pub fn walk(fs: &Fs) -> Walked {
    let mut w = Walked::default();
    let mut seen = HashSet::from([ROOT_INO]);
    let mut queue = VecDeque::from([("".to_string(), ROOT_INO)]);
    w.lines.push(describe(fs, "/", ROOT_INO).0);
    while let Some((path, dir)) = queue.pop_front() {
        w.dirs.push(dir);
        let entries = match fs.readdir(dir, 0, MAX_INODES * 4) {
            Ok(e) => e,
            Err(e) => {
                w.lines.push(format!("{path}/: readdir: {e}"));
                continue;
            }
        };
        for e in entries.iter().filter(|e| e.name != b"." && e.name != b"..") {
            let child = format!("{path}/{}", String::from_utf8_lossy(&e.name));
            match fs.lookup(dir, &e.name) {
                Ok(a) if a.ino != e.ino => {
                    w.lines.push(format!("{child}: lookup gives {} not {}", a.ino, e.ino))
                }
                Ok(_) => {}
                Err(err) => {
                    w.lines.push(format!("{child}: lookup: {err}"));
                    continue;
                }
            }
            if !seen.insert(e.ino) || seen.len() > MAX_INODES {
                w.lines.push(format!("{child} -> ino {}", e.ino));
                continue;
            }
            let (line, kind) = describe(fs, &child, e.ino);
            w.lines.push(line);
            match kind {
                Some(FileKind::Directory) => queue.push_back((child, e.ino)),
                Some(FileKind::Regular) => w.files.push(e.ino),
                _ => {}
            }
        }
    }
    w
}

/// Change the filesystem a little, undoing what it adds: appends to some of the files
/// `walked` found, and a file and a directory created, used and removed in the root.
pub fn modify(fs: &Fs, walked: &Walked) {
    let me = Caller::ROOT;
    for &f in walked.files.iter().take(2) {
        if let Ok(a) = fs.getattr(f) {
            let _ = fs.write(f, a.size.min(1 << 20), b"appended by the fuzzer", false);
        }
    }
    if let Ok(a) = fs.mknod(ROOT_INO, b"fuzz-probe", libc::S_IFREG | 0o644, 0, me) {
        let _ = fs.write(a.ino, 0, &[0x5a; 6000], false);
        let _ = fs.setxattr(a.ino, b"user.fuzz", b"1", XattrFlags::default());
        let _ = fs.setattr(a.ino, &SetAttr { size: Some(100), ..Default::default() });
        let _ = fs.unlink(ROOT_INO, b"fuzz-probe");
    }
    if fs.mkdir(ROOT_INO, b"fuzz-dir", 0o755, me).is_ok() {
        let _ = fs.rmdir(ROOT_INO, b"fuzz-dir");
    }
}
