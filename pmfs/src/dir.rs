//! A directory's name index (kept in DRAM, rebuilt from the log): name -> entry, and the
//! readdir order by cookie. Cookies only grow, so a readdir offset stays valid while names
//! come and go.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::vfs::{FileKind, Ino, NAME_MAX};

/// One entry of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirSlot {
    pub ino: Ino,
    pub cookie: u64,
    pub kind: FileKind,
}

#[derive(Debug, Clone, Default)]
pub struct DirIndex {
    by_name: HashMap<Vec<u8>, DirSlot>,
    by_cookie: BTreeMap<u64, Vec<u8>>,
    next_cookie: u64,
    subdirs: u32,
}

/// Kind codes stored in directory entries.
pub fn kind_code(k: FileKind) -> u8 {
    match k {
        FileKind::Regular => 1,
        FileKind::Directory => 2,
        FileKind::Symlink => 3,
        FileKind::CharDevice => 4,
        FileKind::BlockDevice => 5,
        FileKind::Fifo => 6,
        FileKind::Socket => 7,
    }
}

pub fn kind_from_code(c: u8) -> Option<FileKind> {
    Some(match c {
        1 => FileKind::Regular,
        2 => FileKind::Directory,
        3 => FileKind::Symlink,
        4 => FileKind::CharDevice,
        5 => FileKind::BlockDevice,
        6 => FileKind::Fifo,
        7 => FileKind::Socket,
        _ => return None,
    })
}

/// Check a name a user gave for a new entry.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(Error::Invalid("file name"));
    }
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    Ok(())
}

impl DirIndex {
    pub fn get(&self, name: &[u8]) -> Option<DirSlot> {
        self.by_name.get(name).copied()
    }
    pub fn len(&self) -> usize {
        self.by_name.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
    pub fn subdirs(&self) -> u32 {
        self.subdirs
    }

    /// Reserve the cookie for the next entry added.
    pub fn take_cookie(&mut self) -> u64 {
        let c = self.next_cookie;
        self.next_cookie += 1;
        c
    }

    pub fn add(&mut self, name: Vec<u8>, slot: DirSlot) -> Result<()> {
        if self.by_name.contains_key(&name) || self.by_cookie.contains_key(&slot.cookie) {
            return Err(Error::Corrupt(format!(
                "directory entry {:?} added twice",
                String::from_utf8_lossy(&name)
            )));
        }
        if slot.kind == FileKind::Directory {
            self.subdirs += 1;
        }
        self.next_cookie = self.next_cookie.max(slot.cookie + 1);
        self.by_cookie.insert(slot.cookie, name.clone());
        self.by_name.insert(name, slot);
        Ok(())
    }

    pub fn remove(&mut self, name: &[u8]) -> Result<DirSlot> {
        let slot = self.by_name.remove(name).ok_or_else(|| {
            Error::Corrupt(format!("removal of missing directory entry {:?}", String::from_utf8_lossy(name)))
        })?;
        self.by_cookie.remove(&slot.cookie);
        if slot.kind == FileKind::Directory {
            self.subdirs -= 1;
        }
        Ok(slot)
    }

    /// Entries with cookie >= `from`, in cookie order, at most `max`.
    pub fn list_from(&self, from: u64, max: usize) -> Vec<(Vec<u8>, DirSlot)> {
        self.by_cookie
            .range(from..)
            .take(max)
            .filter_map(|(_, n)| self.by_name.get(n).map(|s| (n.clone(), *s)))
            .collect()
    }

    /// Every entry (for compaction and recovery).
    pub fn all(&self) -> Vec<(Vec<u8>, DirSlot)> {
        self.list_from(0, usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_keep_readdir_positions_across_changes() {
        let mut d = DirIndex::default();
        for n in ["a", "b", "c"] {
            let cookie = d.take_cookie();
            d.add(n.into(), DirSlot { ino: 10 + cookie, cookie, kind: FileKind::Regular }).unwrap();
        }
        let first = d.list_from(0, 2);
        assert_eq!(first.len(), 2);
        d.remove(b"a").unwrap();
        let cookie = d.take_cookie();
        d.add(b"d".to_vec(), DirSlot { ino: 99, cookie, kind: FileKind::Directory }).unwrap();
        let rest: Vec<_> = d.list_from(first[1].1.cookie + 1, 10).into_iter().map(|(n, _)| n).collect();
        assert_eq!(rest, vec![b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(d.subdirs(), 1);
        assert!(d.add(b"c".to_vec(), DirSlot { ino: 1, cookie: 50, kind: FileKind::Regular }).is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(check_name(b"").is_err());
        assert!(check_name(b"..").is_err());
        assert!(check_name(b"a/b").is_err());
        assert_eq!(check_name(&[b'x'; 256]), Err(Error::NameTooLong));
        assert!(check_name(&[0xff, 0xfe]).is_ok());
    }
}
