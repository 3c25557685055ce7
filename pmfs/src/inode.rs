//! An inode as the filesystem works with it (kept in DRAM): the creation record from PM plus
//! the state its log replays to. [`InodeState::apply`] is the one place that gives each log
//! entry its meaning, for live operations and for replay at mount alike.

use std::collections::BTreeMap;

use crate::alloc::Extent;
use crate::dir::{kind_from_code, DirIndex, DirSlot};
use crate::error::{Error, Result};
use crate::extents::ExtentMap;
use crate::layout::{Entry, InodeCreation, BLOCK_SIZE};
use crate::log::LogState;
use crate::vfs::{Attr, FileKind, Ino, Timespec, MAX_FILE_SIZE, XATTR_VALUE_MAX};

/// Extended attributes by name, and a big value being put together from XattrPart entries.
/// Boxed, and only while there is one: most inodes have none, and an empty box costs 8 bytes
/// of the inode where a map costs 24 (`make bench` measures DRAM per inode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xattrs(Option<Box<XattrStore>>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct XattrStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The value being pieced together: its name and the bytes so far.
    piece: Option<(Vec<u8>, Vec<u8>)>,
}

impl Xattrs {
    pub fn get(&self, name: &[u8]) -> Option<&Vec<u8>> {
        self.0.as_ref()?.map.get(name)
    }
    pub fn contains_key(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.map.is_empty())
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.0.iter().flat_map(|s| s.map.iter())
    }
    pub fn keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.iter().map(|(k, _)| k)
    }
    pub fn values(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.iter().map(|(_, v)| v)
    }
    pub fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        self.0.get_or_insert_with(Box::default).map.insert(name, value);
    }
    pub fn remove(&mut self, name: &[u8]) {
        if let Some(s) = self.0.as_mut() {
            s.map.remove(name);
        }
        self.drop_if_empty();
    }
    /// The unfinished value (name, bytes so far), if one is being pieced together.
    pub fn piece(&self) -> Option<&(Vec<u8>, Vec<u8>)> {
        self.0.as_ref()?.piece.as_ref()
    }
    pub fn piece_mut(&mut self) -> Option<&mut (Vec<u8>, Vec<u8>)> {
        self.0.as_mut()?.piece.as_mut()
    }
    pub fn start_piece(&mut self, name: Vec<u8>, bytes: Vec<u8>) {
        self.0.get_or_insert_with(Box::default).piece = Some((name, bytes));
    }
    pub fn take_piece(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        let piece = self.0.as_mut()?.piece.take();
        self.drop_if_empty();
        piece
    }
    fn drop_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|s| s.map.is_empty() && s.piece.is_none()) {
            self.0 = None;
        }
    }
}

impl<'a> IntoIterator for &'a Xattrs {
    type Item = (&'a Vec<u8>, &'a Vec<u8>);
    type IntoIter = Box<dyn Iterator<Item = Self::Item> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// An inode as kept in DRAM. What never changes after creation and is rarely asked for (the
/// generation, the device number) is read from the PM inode's creation record instead
/// (`Fs::attr_of`): `make bench` measures DRAM per inode, and this struct is most of it.
#[derive(Debug, Clone)]
pub struct InodeState {
    pub ino: Ino,
    /// Device offset of the PM inode.
    pub pm_off: u64,
    pub kind: FileKind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    /// chattr's flags ([`crate::iflags`]).
    pub flags: u32,
    /// Explicit link count (files); directories compute theirs from subdirectories.
    pub nlink: u32,
    pub size: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub extents: ExtentMap,
    /// Directories only. Boxed: a regular file pays 8 bytes for it, not the index's 88
    /// (`make bench` measures DRAM per inode).
    pub dir: Option<Box<DirIndex>>,
    pub xattrs: Xattrs,
    pub log: LogState,
    /// Open file handles; an unlinked inode lives until the last is released.
    pub open_count: u32,
    /// Freed on PM: a thread that fetched this inode before it was destroyed must not use it.
    pub dead: bool,
}

impl InodeState {
    /// A freshly created inode, before any log entry.
    pub fn new(ino: Ino, pm_off: u64, c: &InodeCreation) -> Result<InodeState> {
        let kind = FileKind::from_mode(c.mode)
            .ok_or_else(|| Error::Corrupt(format!("inode {ino}: bad file type in mode {:o}", c.mode)))?;
        Ok(InodeState {
            ino,
            pm_off,
            kind,
            perm: (c.mode & 0o7777) as u16,
            uid: c.uid,
            gid: c.gid,
            flags: 0,
            nlink: 1,
            size: 0,
            atime: c.time,
            mtime: c.time,
            ctime: c.time,
            extents: ExtentMap::default(),
            dir: (kind == FileKind::Directory).then(|| Box::new(DirIndex::new(c.parent))),
            xattrs: Xattrs::default(),
            log: LogState::default(),
            open_count: 0,
            dead: false,
        })
    }

    /// The parent directory of a directory (0 for other kinds, which do not keep one).
    pub fn parent(&self) -> Ino {
        self.dir.as_ref().map_or(0, |d| d.parent())
    }

    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Directory
    }

    /// Link count as stat shows it.
    pub fn links(&self) -> u32 {
        match &self.dir {
            Some(d) if self.nlink > 0 => 2 + d.subdirs(),
            _ => self.nlink,
        }
    }

    /// The attributes, given the three that live only in the creation record on PM.
    pub fn attr(&self, generation: u32, rdev: u32, btime: Timespec) -> Attr {
        Attr {
            ino: self.ino,
            generation,
            btime,
            size: self.size,
            blocks: self.extents.mapped_pages() * (BLOCK_SIZE / 512),
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            kind: self.kind,
            perm: self.perm,
            nlink: self.links(),
            uid: self.uid,
            gid: self.gid,
            flags: self.flags,
            rdev,
            blksize: BLOCK_SIZE as u32,
        }
    }

    pub fn dir_mut(&mut self) -> Result<&mut DirIndex> {
        let ino = self.ino;
        self.dir
            .as_deref_mut()
            .ok_or_else(|| Error::Corrupt(format!("inode {ino}: directory entry in a non-directory")))
    }

    /// Give one log entry its effect. Returns the data blocks it unmapped (for the caller to
    /// free when this is a live operation; replay drops them).
    pub fn apply(&mut self, e: &Entry) -> Result<Vec<Extent>> {
        let mut freed = Vec::new();
        self.apply_with(e, &mut |x| freed.push(x))?;
        Ok(freed)
    }

    /// As [`InodeState::apply`], handing each unmapped extent to `freed` as it goes (no
    /// vector per entry: the write path frees them straight into the allocator, replay drops
    /// them). An entry that fails unmaps nothing: every check comes before the map changes.
    pub fn apply_with(&mut self, e: &Entry, freed: &mut impl FnMut(Extent)) -> Result<()> {
        if self.xattrs.piece().is_some() && !matches!(e, Entry::XattrPart { .. } | Entry::XattrSet { .. }) {
            return Err(Error::Corrupt(format!("inode {}: an xattr value is cut short", self.ino)));
        }
        match e {
            Entry::Attr { mode, uid, gid, flags, size, atime, mtime, ctime } => {
                if *size > MAX_FILE_SIZE {
                    return Err(Error::Corrupt(format!(
                        "inode {}: size {size} is past the largest file",
                        self.ino
                    )));
                }
                self.perm = (*mode & 0o7777) as u16;
                self.uid = *uid;
                self.gid = *gid;
                self.flags = *flags;
                if *size != self.size {
                    let keep = size.div_ceil(BLOCK_SIZE);
                    self.extents.remove_with(keep, u64::MAX - keep, freed);
                    self.size = *size;
                }
                self.atime = *atime;
                self.mtime = *mtime;
                self.ctime = *ctime;
            }
            Entry::Write { pgoff, block, nblocks, size, mtime } => {
                // Bounds a live write never exceeds, so the block-map arithmetic cannot overflow.
                let pages = *nblocks as u64;
                let past_end = pgoff.checked_add(pages).is_none_or(|end| end > MAX_FILE_SIZE / BLOCK_SIZE);
                if block.checked_add(pages).is_none_or(|e| e > crate::extents::BLOCK_LIMIT) {
                    return Err(Error::Corrupt(format!(
                        "inode {}: write entry maps {nblocks} pages to block {block}, outside the data area",
                        self.ino
                    )));
                }
                if past_end || *size > MAX_FILE_SIZE {
                    return Err(Error::Corrupt(format!(
                        "inode {}: write entry maps {nblocks} pages at page {pgoff} to block {block} \
                         (size {size}), past the largest file",
                        self.ino
                    )));
                }
                self.extents.insert_with(*pgoff, *block, pages, freed);
                self.size = *size;
                self.mtime = *mtime;
                self.ctime = *mtime;
            }
            Entry::Punch { pgoff, npages, mtime } => {
                self.extents.remove_with(*pgoff, *npages, freed);
                self.mtime = *mtime;
                self.ctime = *mtime;
            }
            Entry::Link { nlink, ctime } => {
                self.nlink = *nlink;
                self.ctime = *ctime;
            }
            Entry::DentryAdd { ino, cookie, kind, time, name } => {
                let kind = kind_from_code(*kind).ok_or_else(|| {
                    Error::Corrupt(format!("inode {}: directory entry with kind {kind}", self.ino))
                })?;
                self.dir_mut()?.add(name.clone(), DirSlot { ino: *ino, cookie: *cookie, kind })?;
                self.mtime = *time;
                self.ctime = *time;
            }
            Entry::DentryDel { name, time, .. } => {
                self.dir_mut()?.remove(name)?;
                self.mtime = *time;
                self.ctime = *time;
            }
            // Only directories record a parent; log compaction keeps it for nothing else.
            Entry::Parent { parent } => {
                if !self.is_dir() {
                    return Err(Error::Corrupt(format!(
                        "inode {}: parent entry in a non-directory",
                        self.ino
                    )));
                }
                if let Some(d) = self.dir.as_mut() {
                    d.set_parent(*parent);
                }
            }
            Entry::XattrPart { name, value, .. } => match self.xattrs.piece_mut() {
                None => self.xattrs.start_piece(name.clone(), value.clone()),
                Some(p) if p.0 == *name && p.1.len() + value.len() <= XATTR_VALUE_MAX => {
                    p.1.extend_from_slice(value)
                }
                Some(_) => {
                    return Err(Error::Corrupt(format!("inode {}: xattr value pieces do not fit", self.ino)))
                }
            },
            Entry::XattrSet { ctime, name, value } => {
                // Refused before the piece is taken: an entry that fails leaves the state as it
                // was (fsck cuts a log where an unfinished value started).
                if self
                    .xattrs
                    .piece()
                    .is_some_and(|p| p.0 != *name || p.1.len() + value.len() > XATTR_VALUE_MAX)
                {
                    return Err(Error::Corrupt(format!("inode {}: xattr value pieces do not fit", self.ino)));
                }
                let value = match self.xattrs.take_piece() {
                    None => value.clone(),
                    Some((_, mut whole)) => {
                        whole.extend_from_slice(value);
                        whole
                    }
                };
                self.xattrs.insert(name.clone(), value);
                self.ctime = *ctime;
            }
            Entry::XattrDel { ctime, name } => {
                self.xattrs.remove(name);
                self.ctime = *ctime;
            }
        }
        Ok(())
    }

    /// The Attr entry of a size change made `now`: everything else as it is, mtime and ctime
    /// `now`.
    pub fn resized(&self, size: u64, now: Timespec) -> Entry {
        Entry::Attr {
            mode: self.kind.mode_bits() | self.perm as u32,
            uid: self.uid,
            gid: self.gid,
            flags: self.flags,
            size,
            atime: self.atime,
            mtime: now,
            ctime: now,
        }
    }

    /// The Attr entry of a chattr made `now`: everything else as it is, the flags `flags`.
    pub fn with_flags(&self, flags: u32, now: Timespec) -> Entry {
        Entry::Attr {
            mode: self.kind.mode_bits() | self.perm as u32,
            uid: self.uid,
            gid: self.gid,
            flags,
            size: self.size,
            atime: self.atime,
            mtime: self.mtime,
            ctime: now,
        }
    }

    /// Entries that rebuild this inode's state from nothing (for log compaction).
    pub fn snapshot(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for m in self.extents.all() {
            let mut page = m.page;
            let mut left = m.pages;
            while left > 0 {
                let n = left.min(u32::MAX as u64);
                out.push(Entry::Write {
                    pgoff: page,
                    block: m.block + (page - m.page),
                    nblocks: n as u32,
                    size: self.size,
                    mtime: self.mtime,
                });
                page += n;
                left -= n;
            }
        }
        if let Some(d) = &self.dir {
            for (name, s) in d.all() {
                out.push(Entry::DentryAdd {
                    ino: s.ino,
                    cookie: s.cookie,
                    kind: crate::dir::kind_code(s.kind),
                    time: self.mtime,
                    name,
                });
            }
            out.push(Entry::Parent { parent: self.parent() });
        }
        for (name, value) in &self.xattrs {
            out.extend(crate::layout::xattr_set_entries(self.ctime, name, value));
        }
        out.push(Entry::Link { nlink: self.nlink, ctime: self.ctime });
        out.push(Entry::Attr {
            mode: self.kind.mode_bits() | self.perm as u32,
            uid: self.uid,
            gid: self.gid,
            flags: self.flags,
            size: self.size,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        });
        out
    }

    /// How many entries a compacted log would hold.
    pub fn live_entries(&self) -> u64 {
        self.extents.run_count() as u64
            + self.dir.as_ref().map_or(0, |d| d.len() as u64 + 1)
            + self
                .xattrs
                .values()
                .map(|v| v.len().div_ceil(crate::layout::XATTR_PIECE).max(1) as u64)
                .sum::<u64>()
            + 2
    }
}

#[cfg(test)]
mod tests {
    /// Every cached inode pays this (docs/DESIGN.md; `make bench` measures DRAM per inode):
    /// a field that grows it should be a conscious choice.
    #[test]
    fn the_dram_state_of_an_inode_stays_128_bytes() {
        assert_eq!(std::mem::size_of::<super::InodeState>(), 128);
        // With the lock (and the Arc's two counts) one 152-byte allocation.
        assert_eq!(std::mem::size_of::<parking_lot::RwLock<super::InodeState>>() + 16, 152);
    }
}
