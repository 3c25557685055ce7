//! What a user can observe of a tree, to compare a recovered image with the legal states.
//! Times and inode numbers are left out: they legitimately differ between runs.

use std::collections::BTreeMap;

use pmfs::vfs::*;
use pmfs::{Fs, Result};

/// One file as a user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: FileKind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    /// chattr's flags.
    pub flags: u32,
    pub nlink: u32,
    pub size: u64,
    /// crc32c of the contents (regular files), or the symlink target.
    pub content: Vec<u8>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Path -> node, for the whole tree.
pub type Snapshot = BTreeMap<String, Node>;

/// Walk the tree from the root.
pub fn snapshot(fs: &Fs) -> Result<Snapshot> {
    let mut out = BTreeMap::new();
    walk(fs, ROOT_INO, "/".to_string(), &mut out)?;
    Ok(out)
}

fn walk(fs: &Fs, ino: Ino, path: String, out: &mut Snapshot) -> Result<()> {
    let a = fs.getattr(ino)?;
    let content = match a.kind {
        FileKind::Regular => {
            let mut buf = vec![0u8; a.size.min(1 << 24) as usize];
            let n = fs.read(ino, 0, &mut buf)?;
            crc32c::crc32c(&buf[..n]).to_le_bytes().to_vec()
        }
        FileKind::Symlink => fs.readlink(ino)?,
        _ => Vec::new(),
    };
    let names = fs.listxattr(ino)?;
    let mut xattrs = Vec::new();
    for name in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
        xattrs.push((name.to_vec(), fs.getxattr(ino, name)?));
    }
    out.insert(
        path.clone(),
        Node {
            kind: a.kind,
            perm: a.perm,
            uid: a.uid,
            gid: a.gid,
            flags: a.flags,
            nlink: a.nlink,
            size: a.size,
            content,
            xattrs,
        },
    );
    if a.kind == FileKind::Directory {
        let mut offset = 2;
        loop {
            let batch = fs.readdir(ino, offset, 256)?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                offset = e.next_offset;
                let name = String::from_utf8_lossy(&e.name);
                let child = if path == "/" { format!("/{name}") } else { format!("{path}/{name}") };
                walk(fs, e.ino, child, out)?;
            }
        }
    }
    Ok(())
}

/// A short description of how two snapshots differ (first few paths).
pub fn diff(got: &Snapshot, want: &Snapshot) -> String {
    let mut lines = Vec::new();
    for (p, n) in got {
        match want.get(p) {
            None => lines.push(format!("unexpected {p}")),
            Some(w) if w != n => lines.push(format!("{p}: got {n:?}, want {w:?}")),
            _ => {}
        }
    }
    for p in want.keys().filter(|p| !got.contains_key(*p)) {
        lines.push(format!("missing {p}"));
    }
    lines.truncate(4);
    lines.join("; ")
}
