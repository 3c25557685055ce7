//! The operations a crash test runs, over a small seeded tree, by path.

use pmfs::vfs::*;
use pmfs::{Error, Fs, Result};

const ME: Caller = Caller { uid: 0, gid: 0, pid: 1 };

/// One operation of a workload (paths are absolute inside the filesystem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create(&'static str),
    Mkdir(&'static str),
    Link(&'static str, &'static str),
    Unlink(&'static str),
    Rmdir(&'static str),
    Rename(&'static str, &'static str),
    RenameNoReplace(&'static str, &'static str),
    Exchange(&'static str, &'static str),
    /// rename with RENAME_WHITEOUT: a new inode appears at the old name in the same step.
    RenameWhiteout(&'static str, &'static str),
    Write {
        path: &'static str,
        off: u64,
        len: u64,
        byte: u8,
    },
    Append {
        path: &'static str,
        len: u64,
        byte: u8,
    },
    Truncate(&'static str, u64),
    Fallocate {
        path: &'static str,
        mode: FallocMode,
        off: u64,
        len: u64,
    },
    Chmod(&'static str, u32),
    Chown(&'static str, u32, u32),
    /// chattr: set the inode's flags (pmfs::iflags), which then refuse later changes.
    SetFlags(&'static str, u32),
    Symlink {
        target: &'static str,
        path: &'static str,
    },
    SetXattr(&'static str, &'static str, &'static str),
    RemoveXattr(&'static str, &'static str),
    /// An xattr value of `len` bytes of `byte`: longer than one log entry holds, so it is
    /// committed as several entries that must appear together or not at all.
    SetBigXattr(&'static str, &'static str, usize, u8),
    /// O_TMPFILE in the path's directory, `len` bytes of `byte` written, then linked at
    /// `path` (linkat): until the link, a crash must leave no trace.
    TmpfileLink {
        path: &'static str,
        len: u64,
        byte: u8,
    },
    /// A DAX mmap write fault: the page gets a block from get_data_block, then is stored to.
    MmapWrite {
        path: &'static str,
        off: u64,
    },
}

impl Op {
    /// The operation's kind, for per-kind figures.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Create(_) => "create",
            Op::Mkdir(_) => "mkdir",
            Op::Link(..) => "link",
            Op::Unlink(_) => "unlink",
            Op::Rmdir(_) => "rmdir",
            Op::Rename(..) => "rename",
            Op::RenameNoReplace(..) => "rename-noreplace",
            Op::Exchange(..) => "rename-exchange",
            Op::RenameWhiteout(..) => "rename-whiteout",
            Op::Write { .. } => "write",
            Op::Append { .. } => "append",
            Op::Truncate(..) => "truncate",
            Op::Fallocate { mode: FallocMode::Allocate { .. }, .. } => "fallocate",
            Op::Fallocate { mode: FallocMode::PunchHole, .. } => "punch-hole",
            Op::Fallocate { mode: FallocMode::ZeroRange { .. }, .. } => "zero-range",
            Op::Fallocate { mode: FallocMode::CollapseRange, .. } => "collapse-range",
            Op::Fallocate { mode: FallocMode::InsertRange, .. } => "insert-range",
            Op::Chmod(..) => "chmod",
            Op::Chown(..) => "chown",
            Op::SetFlags(..) => "chattr",
            Op::Symlink { .. } => "symlink",
            Op::SetXattr(..) => "setxattr",
            Op::RemoveXattr(..) => "removexattr",
            Op::SetBigXattr(..) => "setxattr-big",
            Op::TmpfileLink { .. } => "tmpfile-link",
            Op::MmapWrite { .. } => "mmap-write",
        }
    }
}

/// The tree every workload starts from.
pub fn seed_tree() -> Vec<Op> {
    vec![
        Op::Create("/a"),
        Op::Write { path: "/a", off: 0, len: 5000, byte: 1 },
        Op::Create("/b"),
        Op::Write { path: "/b", off: 0, len: 10, byte: 2 },
        Op::Mkdir("/d1"),
        Op::Create("/d1/c"),
        Op::Write { path: "/d1/c", off: 0, len: 4096, byte: 3 },
        Op::SetXattr("/d1/c", "user.x", "seed"),
        Op::Mkdir("/d2"),
        Op::Symlink { target: "a", path: "/s" },
        Op::Link("/b", "/d1/h"),
    ]
}

/// Every single operation the bounded-exhaustive tier tries (and pairs of them).
pub fn single_ops() -> Vec<Op> {
    vec![
        Op::Create("/d2/new"),
        Op::Mkdir("/d2/sub"),
        Op::Link("/a", "/d2/a2"),
        Op::Unlink("/b"),
        Op::Unlink("/d1/c"),
        Op::Rmdir("/d2"),
        Op::Rename("/a", "/d2/a"),
        Op::Rename("/a", "/b"),
        Op::Rename("/b", "/bb"),
        Op::Rename("/d1", "/d2/x"),
        Op::RenameNoReplace("/a", "/d2/z"),
        Op::Exchange("/a", "/d1/c"),
        Op::RenameWhiteout("/d1/c", "/d2/w"),
        Op::Append { path: "/a", len: 3000, byte: 4 },
        Op::Write { path: "/a", off: 100, len: 9000, byte: 5 },
        Op::Write { path: "/b", off: 8192, len: 4096, byte: 6 },
        Op::Truncate("/a", 10),
        Op::Truncate("/b", 100_000),
        Op::Fallocate { path: "/a", mode: FallocMode::Allocate { keep_size: true }, off: 0, len: 65536 },
        Op::Fallocate { path: "/a", mode: FallocMode::PunchHole, off: 1000, len: 3000 },
        Op::Fallocate { path: "/d1/c", mode: FallocMode::ZeroRange { keep_size: false }, off: 0, len: 8192 },
        Op::Fallocate { path: "/a", mode: FallocMode::CollapseRange, off: 0, len: 4096 },
        Op::Fallocate { path: "/a", mode: FallocMode::InsertRange, off: 4096, len: 8192 },
        Op::Chmod("/a", 0o600),
        Op::Chown("/b", 1000, 1000),
        Op::SetFlags("/a", pmfs::iflags::APPEND | pmfs::iflags::NODUMP),
        Op::Symlink { target: "/d1/c", path: "/d2/sl" },
        Op::SetXattr("/a", "user.n", "value"),
        Op::RemoveXattr("/d1/c", "user.x"),
        Op::SetBigXattr("/d1/c", "user.x", 9000, 7),
        Op::MmapWrite { path: "/b", off: 20480 },
        Op::TmpfileLink { path: "/d2/t", len: 9000, byte: 8 },
    ]
}

fn split(path: &str) -> (&str, &[u8]) {
    match path.rfind('/') {
        Some(0) => ("/", path[1..].as_bytes()),
        Some(i) => (&path[..i], path[i + 1..].as_bytes()),
        None => ("/", path.as_bytes()),
    }
}

/// Inode of a path.
pub fn resolve(fs: &Fs, path: &str) -> Result<Ino> {
    let mut ino = ROOT_INO;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        ino = fs.lookup(ino, part.as_bytes())?.ino;
    }
    Ok(ino)
}

fn parent_and_name<'a>(fs: &Fs, path: &'a str) -> Result<(Ino, &'a [u8])> {
    let (dir, name) = split(path);
    Ok((resolve(fs, dir)?, name))
}

/// Run one operation. Failures (ENOENT after an earlier unlink, say) are part of the
/// workload: the oracle sees the same failures.
pub fn apply(fs: &Fs, op: &Op, pm_store: &dyn Fn(u64, &[u8]) -> Result<()>) -> Result<()> {
    match op {
        Op::Create(p) => {
            let (d, n) = parent_and_name(fs, p)?;
            fs.mknod(d, n, libc::S_IFREG | 0o644, 0, ME).map(|_| ())
        }
        Op::Mkdir(p) => {
            let (d, n) = parent_and_name(fs, p)?;
            fs.mkdir(d, n, 0o755, ME).map(|_| ())
        }
        Op::Link(from, to) => {
            let ino = resolve(fs, from)?;
            let (d, n) = parent_and_name(fs, to)?;
            fs.link(ino, d, n).map(|_| ())
        }
        Op::Unlink(p) => {
            let (d, n) = parent_and_name(fs, p)?;
            fs.unlink(d, n)
        }
        Op::Rmdir(p) => {
            let (d, n) = parent_and_name(fs, p)?;
            fs.rmdir(d, n)
        }
        Op::Rename(a, b) | Op::RenameNoReplace(a, b) | Op::Exchange(a, b) | Op::RenameWhiteout(a, b) => {
            let flags = RenameFlags {
                noreplace: matches!(op, Op::RenameNoReplace(..)),
                exchange: matches!(op, Op::Exchange(..)),
                whiteout: matches!(op, Op::RenameWhiteout(..)),
            };
            let (d1, n1) = parent_and_name(fs, a)?;
            let (d2, n2) = parent_and_name(fs, b)?;
            fs.rename(d1, n1, d2, n2, flags)
        }
        Op::Write { path, off, len, byte } => {
            fs.write(resolve(fs, path)?, *off, &pattern(*len, *byte), false).map(|_| ())
        }
        Op::Append { path, len, byte } => {
            fs.write(resolve(fs, path)?, 0, &pattern(*len, *byte), true).map(|_| ())
        }
        Op::Truncate(p, size) => {
            fs.setattr(resolve(fs, p)?, &SetAttr { size: Some(*size), ..Default::default() }).map(|_| ())
        }
        Op::Fallocate { path, mode, off, len } => fs.fallocate(resolve(fs, path)?, *mode, *off, *len),
        Op::Chmod(p, mode) => {
            fs.setattr(resolve(fs, p)?, &SetAttr { mode: Some(*mode), ..Default::default() }).map(|_| ())
        }
        Op::SetFlags(p, flags) => fs.set_flags(resolve(fs, p)?, *flags, ME).map(|_| ()),
        Op::Chown(p, uid, gid) => fs
            .setattr(resolve(fs, p)?, &SetAttr { uid: Some(*uid), gid: Some(*gid), ..Default::default() })
            .map(|_| ()),
        Op::Symlink { target, path } => {
            let (d, n) = parent_and_name(fs, path)?;
            fs.symlink(d, n, target.as_bytes(), ME).map(|_| ())
        }
        Op::SetXattr(p, name, value) => {
            fs.setxattr(resolve(fs, p)?, name.as_bytes(), value.as_bytes(), XattrFlags::default())
        }
        Op::RemoveXattr(p, name) => fs.removexattr(resolve(fs, p)?, name.as_bytes()),
        Op::SetBigXattr(p, name, len, byte) => {
            fs.setxattr(resolve(fs, p)?, name.as_bytes(), &vec![*byte; *len], XattrFlags::default())
        }
        Op::TmpfileLink { path, len, byte } => {
            let (d, n) = parent_and_name(fs, path)?;
            let t = fs.tmpfile(d, libc::S_IFREG | 0o640, ME)?;
            fs.open(t.ino)?;
            let linked = fs.write(t.ino, 0, &pattern(*len, *byte), false).and_then(|_| fs.link(t.ino, d, n));
            fs.release(t.ino)?;
            linked.map(|_| ())
        }
        Op::MmapWrite { path, off } => {
            let ino = resolve(fs, path)?;
            let block = fs.get_data_block(ino, *off, true)?.ok_or(Error::NotFound)?;
            // What an application's store through a DAX mapping does, followed by msync's flush.
            pm_store(block.device_offset + off % 4096, b"mmap")
        }
    }
}

fn pattern(len: u64, byte: u8) -> Vec<u8> {
    (0..len).map(|i| byte.wrapping_add((i % 251) as u8)).collect()
}
