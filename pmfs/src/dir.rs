//! A directory's name index (kept in DRAM, rebuilt from the log): the entries in readdir
//! order by cookie, each name stored once. Cookies only grow, so a readdir offset stays valid
//! while names come and go. A cookie is derived from a hash of the name, so a lookup by name
//! searches only the name's window of 256 cookies; the rare entry whose cookie lies outside
//! its window (a 256-way hash collision, or an image written before cookies were hashed)
//! is also listed by name on the side.

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

/// Hashed cookies stay below 2^60, so readdir offsets (cookie + 3) fit a signed 64-bit off_t.
const COOKIE_MASK: u64 = (1 << 60) - 1;
/// Cookies a name may take: its hash window.
const WINDOW: u64 = 0x100;

/// A name, inline when short (most are), so that an entry needs no allocation of its own.
#[derive(Debug, Clone)]
enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<[u8]>),
}

/// Longest name kept inline: the inline form is no larger than a boxed slice plus a tag.
const INLINE_NAME: usize = 22;

impl Name {
    fn new(name: &[u8]) -> Name {
        if name.len() <= INLINE_NAME {
            let mut bytes = [0u8; INLINE_NAME];
            bytes[..name.len()].copy_from_slice(name);
            Name::Inline { len: name.len() as u8, bytes }
        } else {
            Name::Heap(Box::from(name))
        }
    }
    fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..*len as usize],
            Name::Heap(b) => b,
        }
    }
}

/// What the index keeps per entry (the cookie is its key): 32 bytes.
#[derive(Debug, Clone)]
struct Entry {
    name: Name,
    /// The inode number, with the kind code in the top byte.
    ino_kind: u64,
}

/// Inode numbers an entry can hold (far more than the inode tables can).
const INO_LIMIT: u64 = 1 << 56;

impl Entry {
    fn new(name: &[u8], ino: Ino, kind: FileKind) -> Entry {
        Entry { name: Name::new(name), ino_kind: ino | (kind_code(kind) as u64) << 56 }
    }
    fn ino(&self) -> Ino {
        self.ino_kind & (INO_LIMIT - 1)
    }
    fn kind(&self) -> FileKind {
        kind_from_code((self.ino_kind >> 56) as u8).unwrap_or(FileKind::Regular)
    }
}

#[derive(Debug, Clone, Default)]
pub struct DirIndex {
    by_cookie: BTreeMap<u64, Entry>,
    /// Entries whose cookie is outside their name's window, by name (usually none).
    strays: Option<Box<HashMap<Box<[u8]>, u64>>>,
    next_cookie: u64,
    subdirs: u32,
    /// The directory's parent (its `..`).
    parent: Ino,
}

/// The first cookie of `name`'s window.
fn window_of(name: &[u8]) -> u64 {
    let hi = crc32c::crc32c(name) as u64;
    let lo = crc32c::crc32c_append(0x9e37_79b9, name) as u64;
    ((hi << 28) ^ lo) & COOKIE_MASK & !(WINDOW - 1)
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
    /// An empty index of a directory whose parent is `parent`.
    pub fn new(parent: Ino) -> DirIndex {
        DirIndex { parent, ..Default::default() }
    }
    pub fn parent(&self) -> Ino {
        self.parent
    }
    pub fn set_parent(&mut self, parent: Ino) {
        self.parent = parent;
    }

    /// The cookie of the entry named `name`, if any.
    fn cookie_of(&self, name: &[u8]) -> Option<u64> {
        let base = window_of(name);
        let found = self
            .by_cookie
            .range(base..base + WINDOW)
            .find(|(_, e)| e.name.as_bytes() == name)
            .map(|(&c, _)| c);
        found.or_else(|| self.strays.as_ref().and_then(|s| s.get(name).copied()))
    }

    fn slot(cookie: u64, e: &Entry) -> DirSlot {
        DirSlot { ino: e.ino(), cookie, kind: e.kind() }
    }

    pub fn get(&self, name: &[u8]) -> Option<DirSlot> {
        let c = self.cookie_of(name)?;
        self.by_cookie.get(&c).map(|e| Self::slot(c, e))
    }
    pub fn len(&self) -> usize {
        self.by_cookie.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_cookie.is_empty()
    }
    pub fn subdirs(&self) -> u32 {
        self.subdirs
    }

    /// The cookie for a new entry named `name`: its position in readdir order. Cookies come
    /// from a hash of the name, so a name removed and added again (renamed away and back
    /// during a readdir) lands where it was, and a readdir that keeps meeting renamed entries
    /// still ends. The low 8 bits resolve hash collisions.
    pub fn take_cookie(&mut self, name: &[u8]) -> u64 {
        let base = window_of(name);
        if let Some(c) = (base..base + WINDOW).find(|c| !self.by_cookie.contains_key(c)) {
            return c;
        }
        // 256 names with one hash: go past every hashed cookie.
        let c = self.next_cookie.max(COOKIE_MASK + 1);
        self.next_cookie = c + 1;
        c
    }

    pub fn add(&mut self, name: Vec<u8>, slot: DirSlot) -> Result<()> {
        // Past-the-hash cookies count up from 2^60 one per 256-way hash collision: one at
        // 2^62 or more comes from damage, and readdir's cookie + 3 must fit an off_t.
        if slot.cookie >= 1 << 62 {
            return Err(Error::Corrupt(format!(
                "directory entry {:?} has an impossible cookie {}",
                String::from_utf8_lossy(&name),
                slot.cookie
            )));
        }
        if slot.ino >= INO_LIMIT {
            return Err(Error::Corrupt(format!(
                "directory entry {:?} names impossible inode {}",
                String::from_utf8_lossy(&name),
                slot.ino
            )));
        }
        if self.cookie_of(&name).is_some() || self.by_cookie.contains_key(&slot.cookie) {
            return Err(Error::Corrupt(format!(
                "directory entry {:?} added twice",
                String::from_utf8_lossy(&name)
            )));
        }
        if slot.kind == FileKind::Directory {
            self.subdirs += 1;
        }
        if slot.cookie > COOKIE_MASK {
            self.next_cookie = self.next_cookie.max(slot.cookie + 1);
        }
        let base = window_of(&name);
        if !(base..base + WINDOW).contains(&slot.cookie) {
            self.strays.get_or_insert_with(Box::default).insert(Box::from(&name[..]), slot.cookie);
        }
        self.by_cookie.insert(slot.cookie, Entry::new(&name, slot.ino, slot.kind));
        Ok(())
    }

    pub fn remove(&mut self, name: &[u8]) -> Result<DirSlot> {
        let missing = || {
            Error::Corrupt(format!("removal of missing directory entry {:?}", String::from_utf8_lossy(name)))
        };
        let cookie = self.cookie_of(name).ok_or_else(missing)?;
        let e = self.by_cookie.remove(&cookie).ok_or_else(missing)?;
        if let Some(s) = self.strays.as_mut() {
            s.remove(name);
            if s.is_empty() {
                self.strays = None;
            }
        }
        if e.kind() == FileKind::Directory {
            self.subdirs -= 1;
        }
        Ok(Self::slot(cookie, &e))
    }

    /// Entries with cookie >= `from`, in cookie order, at most `max`.
    pub fn list_from(&self, from: u64, max: usize) -> Vec<(Vec<u8>, DirSlot)> {
        self.by_cookie
            .range(from..)
            .take(max)
            .map(|(&c, e)| (e.name.as_bytes().to_vec(), Self::slot(c, e)))
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
        for (i, n) in ["a", "b", "c", "d"].iter().enumerate() {
            let cookie = d.take_cookie(n.as_bytes());
            d.add(n.as_bytes().to_vec(), DirSlot { ino: 10 + i as u64, cookie, kind: FileKind::Regular })
                .unwrap();
        }
        let all: Vec<_> = d.list_from(0, 10).into_iter().map(|(n, s)| (n, s.cookie)).collect();
        assert_eq!(all.len(), 4);
        // Continue after the second entry, with the third removed and re-added meanwhile:
        // the rest is the same two names, each once.
        let (third, third_cookie) = all[2].clone();
        let slot = d.remove(&third).unwrap();
        let again = d.take_cookie(&third);
        assert_eq!(again, third_cookie);
        d.add(third.clone(), DirSlot { cookie: again, ..slot }).unwrap();
        let rest: Vec<_> = d.list_from(all[1].1 + 1, 10).into_iter().map(|(n, _)| n).collect();
        assert_eq!(rest, vec![all[2].0.clone(), all[3].0.clone()]);
        assert!(d.add(b"c".to_vec(), DirSlot { ino: 1, cookie: 50, kind: FileKind::Regular }).is_err());
    }

    #[test]
    fn colliding_cookies_get_the_next_slot() {
        let mut d = DirIndex::default();
        let c = d.take_cookie(b"x");
        d.add(b"x".to_vec(), DirSlot { ino: 1, cookie: c, kind: FileKind::Regular }).unwrap();
        // Another name that happened to hash the same takes the following slot.
        d.by_cookie.insert(c + 1, Entry::new(b"y", 2, FileKind::Regular));
        let c2 = d.take_cookie(b"x");
        assert_eq!(c2, c + 2);
        assert!(c2 < COOKIE_MASK);
    }

    #[test]
    fn an_entry_whose_cookie_is_outside_its_window_is_still_found() {
        // As an image from before cookies were hashed, or a 256-way collision, has them.
        let mut d = DirIndex::default();
        for (i, n) in [&b"old"[..], b"older"].iter().enumerate() {
            d.add(n.to_vec(), DirSlot { ino: 5 + i as u64, cookie: 3 + i as u64, kind: FileKind::Regular })
                .unwrap();
        }
        let c = d.take_cookie(b"new");
        d.add(b"new".to_vec(), DirSlot { ino: 9, cookie: c, kind: FileKind::Directory }).unwrap();
        assert_eq!(d.get(b"old").map(|s| (s.ino, s.cookie)), Some((5, 3)));
        assert_eq!(d.get(b"older").map(|s| s.ino), Some(6));
        assert_eq!(d.get(b"new").map(|s| s.ino), Some(9));
        assert!(d.add(b"old".to_vec(), DirSlot { ino: 7, cookie: c + 1, kind: FileKind::Regular }).is_err());
        assert_eq!(d.remove(b"old").unwrap().cookie, 3);
        assert_eq!(d.get(b"old"), None);
        assert_eq!((d.len(), d.subdirs()), (2, 1));
        d.remove(b"older").unwrap();
        assert!(d.strays.is_none(), "the side list goes once empty");
    }

    #[test]
    fn an_entry_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn short_and_long_names_round_trip() {
        let mut d = DirIndex::default();
        let long = vec![b'l'; 200];
        for (i, n) in
            [&b"a"[..], &[b's'; INLINE_NAME][..], &[b't'; INLINE_NAME + 1][..], &long[..]].iter().enumerate()
        {
            let cookie = d.take_cookie(n);
            d.add(n.to_vec(), DirSlot { ino: 1 + i as u64, cookie, kind: FileKind::Regular }).unwrap();
            assert_eq!(d.get(n).map(|s| s.ino), Some(1 + i as u64));
        }
        let mut names: Vec<Vec<u8>> = d.all().into_iter().map(|(n, _)| n).collect();
        names.sort();
        assert_eq!(
            names.iter().map(|n| n.len()).collect::<Vec<_>>(),
            vec![1, 200, INLINE_NAME, INLINE_NAME + 1]
        );
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
