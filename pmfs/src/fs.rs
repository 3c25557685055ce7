//! The filesystem operations the transports call: composes inodes, logs, directories, the
//! allocator and the journal. Every call is durable when it returns. Namespace operations
//! live here; file data is in file.rs, xattrs in xattr.rs, mount and unmount in recovery.rs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::alloc::{current_cpu, default_reserve, Allocator, Extent, Pool};
use crate::dir::{check_name, kind_code, DirSlot};
use crate::error::{Error, Result};
use crate::icache::InodeCache;
use crate::iflags;
use crate::inode::InodeState;
use crate::itable::InodeTables;
use crate::journal::Journals;
use crate::layout::{self, Entry, InodeCreation, Superblock, BLOCK_SIZE};
use crate::log::{self, Staged};
use crate::persist::PmRegion;
use crate::vfs::*;

/// How to mount.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// Refuse every change (EROFS). A read-only mount of an image that was not cleanly
    /// unmounted fails, since recovery would have to write.
    pub read_only: bool,
    /// Crash testing: record every PM store, flush and fence (mount's own included).
    pub recorder: Option<std::sync::Arc<crate::persist::Recorder>>,
    /// Which NUMA node each CPU is on, for a device set's placement; None: from sysfs.
    pub numa: Option<crate::numa::NumaMap>,
}

/// What mount found and did, for the mount message.
#[derive(Debug, Clone, Default)]
pub struct MountReport {
    /// The image was cleanly unmounted (allocator state loaded, no scan needed).
    pub was_clean: bool,
    /// Journals that held an unfinished multi-inode operation, rolled back.
    pub journals_rolled_back: u32,
    /// Inodes that were allocated but unreachable or unlinked, freed.
    pub orphans_freed: u64,
    /// Inodes in use after mount.
    pub inodes: u64,
    /// Blocks in use after mount (all metadata included).
    pub blocks_used: u64,
    /// The primary superblock was bad and was rewritten from the replica.
    pub superblock_repaired: bool,
}

pub(crate) type InodeRef = Arc<RwLock<InodeState>>;

/// A mounted zpmfs. Shared by all server threads (`&self` everywhere).
pub struct Fs {
    pub(crate) pm: PmRegion,
    pub(crate) sb: Superblock,
    pub(crate) alloc: Allocator,
    pub(crate) itables: InodeTables,
    pub(crate) journals: Journals,
    cache: InodeCache,
    /// Cross-directory renames take this, as the VFS's s_vfs_rename_mutex, so the ancestor
    /// check cannot race with another rename.
    rename_lock: Mutex<()>,
    pub(crate) read_only: bool,
    pub(crate) report: MountReport,
    pub(crate) unmounted: AtomicBool,
    /// The shutdown ioctl: every later call fails with EIO; unmount still works.
    pub(crate) shut_down: AtomicBool,
    /// The device files (a set has several), held open for their locks while mounted.
    pub(crate) device_files: Vec<std::fs::File>,
}

/// Write guards over several inodes, taken in inode-number order (no deadlock).
struct Locked {
    guards: Vec<(Ino, parking_lot::ArcRwLockWriteGuard<parking_lot::RawRwLock, InodeState>)>,
}

impl Locked {
    fn get(&mut self, ino: Ino) -> &mut InodeState {
        let i = self.guards.iter().position(|(i, _)| *i == ino).unwrap_or(0);
        &mut self.guards[i].1
    }
}

impl Fs {
    pub(crate) fn assemble(
        pm: PmRegion,
        sb: Superblock,
        alloc: Allocator,
        itables: InodeTables,
        read_only: bool,
    ) -> Fs {
        let journals = Journals::new(sb.journals, sb.cpus);
        let reserve = default_reserve(alloc.total_blocks());
        Fs {
            pm,
            sb,
            alloc: alloc.with_reserve(reserve),
            itables,
            journals,
            cache: InodeCache::new(),
            rename_lock: Mutex::new(()),
            read_only,
            report: MountReport::default(),
            unmounted: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
            device_files: Vec::new(),
        }
    }

    /// NUMA nodes the data area spans (1 on one device).
    pub fn numa_nodes(&self) -> usize {
        self.alloc.nodes()
    }

    /// Per NUMA node of a device set (one entry on one device): blocks, free blocks, and
    /// where each node's CPUs' allocations went since mount (local, spilled to another node).
    pub fn node_stats(&self) -> Vec<crate::alloc::NodeStats> {
        self.alloc.node_stats()
    }

    /// What mount found.
    pub fn mount_report(&self) -> MountReport {
        self.report.clone()
    }

    /// The mapped device, for direct (DAX-style) access to blocks that get_data_block handed
    /// out: transports and the crash simulator store through it like a mapping application.
    pub fn device_region(&self) -> &PmRegion {
        &self.pm
    }

    /// The superblock's label and UUID.
    pub fn label(&self) -> String {
        self.sb.label_str()
    }
    pub fn uuid(&self) -> [u8; 16] {
        self.sb.uuid
    }

    pub(crate) fn check_alive(&self) -> Result<()> {
        if self.unmounted.load(Ordering::Acquire) {
            return Err(Error::Io("filesystem is unmounted".into()));
        }
        if self.shut_down.load(Ordering::Acquire) {
            return Err(Error::Io("filesystem is shut down".into()));
        }
        Ok(())
    }

    /// The shutdown ioctl (XFS's and ext4's, fstests' godown): from now on every call fails
    /// with EIO until unmount, which still saves the allocator and marks the image clean.
    /// Every call that returned before is durable already, so nothing is flushed.
    pub fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_alive()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    /// Load an inode from PM: its creation record, then its log replayed; with the pages of
    /// its log chain (head first).
    pub(crate) fn load_inode_pages(&self, ino: Ino) -> Result<(InodeState, Vec<u64>)> {
        let off = self.itables.offset(ino).ok_or(Error::NotFound)?;
        if self.pm.read_u64(off + layout::inode::STATE)? != layout::inode::LIVE {
            return Err(Error::NotFound);
        }
        let mut raw = [0u8; layout::INODE_SIZE as usize];
        self.pm.read(off, &mut raw)?;
        let creation = InodeCreation::decode(&raw, ino)?;
        let mut st = InodeState::new(ino, off, &creation)?;
        let head = self.pm.read_u64(off + layout::inode::LOG_HEAD)?;
        let tail = self.pm.read_u64(off + layout::inode::LOG_TAIL)?;
        let (entries, logstate, pages) = log::replay(&self.pm, ino, head, tail, self.alloc.data_range())?;
        for e in &entries {
            st.apply_with(e, &mut |_| {})
                .map_err(|err| Error::Corrupt(format!("inode {ino}: {}", err.detail())))?;
        }
        if st.xattrs.piece().is_some() {
            return Err(Error::Corrupt(format!("inode {ino}: the log ends inside an xattr value")));
        }
        st.log = logstate;
        Ok((st, pages))
    }

    /// The inode, from the cache or loaded from PM.
    pub(crate) fn inode(&self, ino: Ino) -> Result<InodeRef> {
        // A load races with whoever has the inode cached, or had it until a destroy: what it
        // read may be freed by then (its log pages reused, its blocks free), and look like
        // damage. Load again: a race is over by then (a freed inode loads as ENOENT), damage
        // is not. A slot freed or created again while we read it was a race however often it
        // happens (each time someone else made progress); the same inode reading as damage
        // several times in a row is damage.
        let mut tries = 0;
        let mut damaged = 0;
        loop {
            if let Some(i) = self.cache.shard(ino).get(ino) {
                return Ok(i.clone());
            }
            // The generation before loading: an inode freed and created again from here on
            // shows a newer one below.
            let generation = self.generation_at(ino)?;
            match self
                .load_inode_pages(ino)
                .and_then(|(st, pages)| self.check_owned(&st, &pages).map(|()| st))
            {
                Ok(st) => {
                    let mut map = self.cache.shard(ino);
                    if let Some(i) = map.get(ino) {
                        return Ok(i.clone());
                    }
                    // Destroy marks the PM inode free before it leaves the cache: an inode
                    // freed (or freed and created again) since we read it must not come back.
                    if !self.is_live(ino)? || self.generation_at(ino)? != generation {
                        drop(map);
                        tries += 1;
                        if tries > 3 {
                            return Err(Error::NotFound);
                        }
                        continue;
                    }
                    let r = Arc::new(RwLock::new(st));
                    map.insert(ino, r.clone());
                    return Ok(r);
                }
                Err(Error::Corrupt(what)) => {
                    if !self.is_live(ino)? {
                        return Err(Error::NotFound);
                    }
                    if self.generation_at(ino)? == generation {
                        damaged += 1;
                        if damaged >= 3 {
                            return Err(Error::Corrupt(what));
                        }
                    }
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The generation in `ino`'s PM inode now (it leads the creation record); 0 for a slot
    /// whose table block does not exist.
    fn generation_at(&self, ino: Ino) -> Result<u32> {
        let Some(off) = self.itables.offset(ino) else { return Ok(0) };
        let mut raw = [0u8; 4];
        self.pm.read(off + layout::inode::CREATION.start as u64, &mut raw)?;
        Ok(u32::from_le_bytes(raw))
    }

    /// `st`'s attributes. The generation and the device number never change after creation
    /// and are read from the PM inode's creation record (they are not kept in DRAM).
    pub(crate) fn attr_of(&self, st: &InodeState) -> Result<Attr> {
        // A destroyed inode's PM slot may already belong to a new inode: never read it.
        if st.dead {
            return Err(Error::NotFound);
        }
        let mut raw = [0u8; layout::inode::CREATION.end - layout::inode::CREATION.start];
        self.pm.read(st.pm_off + layout::inode::CREATION.start as u64, &mut raw)?;
        let (generation, rdev, btime) = InodeCreation::attr_fields(&raw);
        Ok(st.attr(generation, rdev, btime))
    }

    pub(crate) fn inode_cache_insert(&self, ino: Ino, r: InodeRef) -> Option<InodeRef> {
        self.cache.shard(ino).insert(ino, r)
    }

    /// An inode loaded after mount must own only blocks the allocator counts as used: a block
    /// also on the free list means the image is damaged (two owners, or a bad free-space map),
    /// and using it would let the allocator hand it out again.
    fn check_owned(&self, st: &InodeState, log_pages: &[u64]) -> Result<()> {
        let bad = |what: &str, b: u64| {
            Error::Corrupt(format!("inode {}: {what} block {b} is marked free; run fsck.zpmfs", st.ino))
        };
        let (first, end) = self.alloc.data_range();
        for m in st.extents.all() {
            if m.block < first || m.block.checked_add(m.pages).is_none_or(|e| e > end) {
                return Err(Error::Corrupt(format!(
                    "inode {}: data blocks {}+{} are outside the data area; run fsck.zpmfs",
                    st.ino, m.block, m.pages
                )));
            }
            if self.alloc.any_free(m.block, m.pages) {
                return Err(bad("data", m.block));
            }
        }
        for &p in log_pages {
            if self.alloc.any_free(p, 1) {
                return Err(bad("log", p));
            }
        }
        Ok(())
    }

    /// Drop `st` (a destroyed inode's state, inside its cached lock) from the cache, unless
    /// its number caches another inode by now: destroy gives the slot back before this, and a
    /// create may already have made and cached a new inode in it, which must stay (uncached,
    /// a lookup would load a second copy of it, and a reference taken on that copy would be
    /// lost).
    pub(crate) fn forget_inode(&self, st: &InodeState) {
        let mut shard = self.cache.shard(st.ino);
        if shard.get(st.ino).is_some_and(|r| std::ptr::eq(r.data_ptr(), st)) {
            shard.remove(st.ino);
        }
    }

    pub(crate) fn cached_inodes(&self) -> Vec<InodeRef> {
        self.cache.all()
    }

    fn lock_all(&self, inos: &[Ino]) -> Result<Locked> {
        let mut inos = inos.to_vec();
        inos.sort_unstable();
        inos.dedup();
        let mut refs = Vec::with_capacity(inos.len());
        for &i in &inos {
            refs.push((i, self.inode(i)?));
        }
        Ok(Locked { guards: refs.into_iter().map(|(i, r)| (i, r.write_arc())).collect() })
    }

    /// Append entries to one inode's log and commit them (the single-inode commit point).
    /// Frees blocks the entries unmapped.
    pub(crate) fn commit(&self, st: &mut InodeState, entries: Vec<Entry>) -> Result<()> {
        self.commit_in(st, &entries, Pool::Normal)
    }

    /// As [`Fs::commit`], with new log pages from `pool`.
    pub(crate) fn commit_in(&self, st: &mut InodeState, entries: &[Entry], pool: Pool) -> Result<()> {
        self.commit_keeping(st, entries, pool, &[])
    }

    /// As [`Fs::commit_in`], where the entries move the blocks in `moved` (sorted by block)
    /// within the file: the entries that unmap their old places must not free them.
    pub(crate) fn commit_keeping(
        &self,
        st: &mut InodeState,
        entries: &[Entry],
        pool: Pool,
        moved: &[Extent],
    ) -> Result<()> {
        if st.dead {
            return Err(Error::NotFound);
        }
        let cpu = current_cpu();
        let stage = |st: &InodeState| {
            log::stage(&self.pm, &self.alloc, cpu, pool, st.ino, st.pm_off, &st.log, entries)
        };
        let staged = match stage(st) {
            // A full device: a log of mostly dead entries (a file chmod-ed over and over) is
            // compacted, which gives back pages, rather than failing the change.
            Err(Error::NoSpace) if st.log.entries as u64 >= 2 * st.live_entries() => {
                self.compact(st)?;
                stage(st)?
            }
            other => other?,
        };
        log::commit_tail(&self.pm, st.pm_off, staged.new_tail)?;
        st.log.apply_staged(&staged);
        if moved.is_empty() {
            self.apply_all(st, entries)?;
        } else {
            for e in entries {
                st.apply_with(e, &mut |x| self.free_except(x, moved))?;
            }
        }
        self.maybe_compact(st);
        Ok(())
    }

    /// Free `x` but for the parts of it in `keep` (sorted by block, not overlapping).
    fn free_except(&self, x: Extent, keep: &[Extent]) {
        let (mut at, end) = (x.start, x.start + x.len);
        let first = keep.partition_point(|k| k.start + k.len <= at);
        for k in &keep[first..] {
            if k.start >= end {
                break;
            }
            if k.start > at {
                self.alloc.free(at, k.start - at);
            }
            at = at.max(k.start + k.len);
        }
        if at < end {
            self.alloc.free(at, end - at);
        }
    }

    /// Like [`Fs::commit`], but blocks the entries unmap are not returned to the allocator
    /// (fsck dropping a mapping to a block that belongs to someone else).
    pub(crate) fn commit_without_freeing(&self, st: &mut InodeState, entries: Vec<Entry>) -> Result<()> {
        let cpu = current_cpu();
        let staged =
            log::stage(&self.pm, &self.alloc, cpu, Pool::Reserve, st.ino, st.pm_off, &st.log, &entries)?;
        log::commit_tail(&self.pm, st.pm_off, staged.new_tail)?;
        st.log.apply_staged(&staged);
        for e in &entries {
            st.apply_with(e, &mut |_| {})?;
        }
        Ok(())
    }

    fn apply_all(&self, st: &mut InodeState, entries: &[Entry]) -> Result<()> {
        for e in entries {
            st.apply_with(e, &mut |x| self.alloc.free(x.start, x.len))?;
        }
        Ok(())
    }

    /// Append entries to several inodes' logs and commit all tails atomically (journaled).
    /// New log pages come from `pool`.
    fn commit_many(&self, locked: &mut Locked, parts: Vec<(Ino, Vec<Entry>)>, pool: Pool) -> Result<()> {
        if parts.iter().any(|(i, _)| locked.get(*i).dead) {
            return Err(Error::NotFound);
        }
        let cpu = current_cpu();
        let mut staged: Vec<(Ino, Staged)> = Vec::new();
        for (ino, entries) in &parts {
            let st = locked.get(*ino);
            match log::stage(&self.pm, &self.alloc, cpu, pool, st.ino, st.pm_off, &st.log, entries) {
                Ok(s) => staged.push((*ino, s)),
                Err(e) => {
                    for (i, s) in staged {
                        self.abandon(locked.get(i), s);
                    }
                    return Err(e);
                }
            }
        }
        let words: Vec<(u64, u64)> = staged
            .iter()
            .map(|(i, s)| (locked.get(*i).pm_off + layout::inode::LOG_TAIL, s.new_tail))
            .collect();
        self.journals.update_words(&self.pm, cpu, &words)?;
        for ((ino, entries), (_, s)) in parts.iter().zip(staged.iter()) {
            let st = locked.get(*ino);
            st.log.apply_staged(s);
            self.apply_all(st, entries)?;
        }
        for (ino, _) in &parts {
            self.maybe_compact(locked.get(*ino));
        }
        Ok(())
    }

    /// Give back what an uncommitted stage took.
    fn abandon(&self, st: &InodeState, s: Staged) {
        if s.new_head.is_some() {
            let _ = self.pm.store_u64(st.pm_off + layout::inode::LOG_HEAD, 0);
            self.pm.persist(st.pm_off + layout::inode::LOG_HEAD, 8);
        }
        for p in s.new_pages {
            self.alloc.free(p, 1);
        }
    }

    /// Rewrite a log that is mostly dead entries as a fresh chain holding only the live state,
    /// then switch head and tail together through the journal.
    fn maybe_compact(&self, st: &mut InodeState) {
        let live = st.live_entries();
        let entries = st.log.entries as u64;
        if entries < 64 || entries < 4 * live || st.log.pages < 2 {
            return;
        }
        // Compaction is an optimisation: on failure (no space) the old log stays valid.
        let _ = self.compact(st);
    }

    pub(crate) fn compact(&self, st: &mut InodeState) -> Result<()> {
        let cpu = current_cpu();
        let old_pages = log::chain_pages(&self.pm, st.pm_off, &st.log)?;
        let entries = st.snapshot();
        // Compaction gives back more pages than it takes: it may use the reserve.
        let chain = log::write_chain(&self.pm, &self.alloc, cpu, Pool::Reserve, st.ino, &entries)?;
        let words = [
            (st.pm_off + layout::inode::LOG_HEAD, chain.new_head.unwrap_or(0)),
            (st.pm_off + layout::inode::LOG_TAIL, chain.new_tail),
        ];
        if let Err(e) = self.journals.update_words(&self.pm, cpu, &words) {
            for p in chain.new_pages {
                self.alloc.free(p, 1);
            }
            return Err(e);
        }
        for p in old_pages {
            self.alloc.free(p, 1);
        }
        st.log = log::LogState::default();
        st.log.apply_staged(&chain);
        Ok(())
    }

    /// Free everything of an inode whose last link and last open handle are gone.
    pub(crate) fn destroy(&self, st: &mut InodeState) -> Result<()> {
        let log_pages = log::chain_pages(&self.pm, st.pm_off, &st.log)?;
        self.itables.release(&self.pm, st.ino)?;
        for m in st.extents.all() {
            self.alloc.free(m.block, m.pages);
        }
        for p in log_pages {
            self.alloc.free(p, 1);
        }
        st.log = log::LogState::default();
        st.extents = Default::default();
        st.dead = true;
        self.forget_inode(st);
        Ok(())
    }

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr> {
        self.check_alive()?;
        if name.len() > NAME_MAX {
            return Err(Error::NameTooLong);
        }
        let p = self.inode(parent)?;
        loop {
            let slot = {
                let p = p.read();
                let dir = p.dir.as_ref().ok_or(Error::NotDir)?;
                match name {
                    b"." => DirSlot { ino: parent, cookie: 0, kind: FileKind::Directory },
                    b".." => DirSlot { ino: p.parent(), cookie: 0, kind: FileKind::Directory },
                    _ => dir.get(name).ok_or(Error::NotFound)?,
                }
            };
            match self.getattr(slot.ino) {
                Err(Error::NotFound) => {
                    // Removed since we looked (a racing unlink) is ENOENT. Named again is a racing
                    // create that got the freed inode number back (with the cookie, a hash of the
                    // name, the entry is the same): look again. Named by a dead inode is damage.
                    // The directory's read lock holds off unlink and create while we decide.
                    let p = p.read();
                    let still = p.dir.as_ref().and_then(|d| d.get(name)) == Some(slot);
                    if !still || name == b"." || name == b".." {
                        return Err(Error::NotFound);
                    }
                    if self.is_live(slot.ino)? {
                        continue;
                    }
                    return Err(Error::Corrupt(format!(
                        "directory {parent}: entry {:?} names inode {}, which is not in use; run fsck.zpmfs",
                        String::from_utf8_lossy(name),
                        slot.ino
                    )));
                }
                other => return other,
            }
        }
    }

    /// Whether `ino`'s PM inode is in use (read without taking its lock).
    fn is_live(&self, ino: Ino) -> Result<bool> {
        let Some(off) = self.itables.offset(ino) else { return Ok(false) };
        Ok(self.pm.read_u64(off + layout::inode::STATE)? == layout::inode::LIVE)
    }

    pub fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.check_alive()?;
        self.attr_of(&self.inode(ino)?.read())
    }

    pub fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        self.check_writable()?;
        let r = self.inode(ino)?;
        let mut st = r.write();
        iflags::check_mutable(st.flags)?;
        let explicit_time = |t: Option<TimeOrNow>| matches!(t, Some(TimeOrNow::At(_)));
        if set.mode.is_some()
            || set.uid.is_some()
            || set.gid.is_some()
            || set.size.is_some()
            || explicit_time(set.atime)
            || explicit_time(set.mtime)
        {
            iflags::check_pinned(st.flags)?;
        }
        let now = Timespec::now();
        let mut entries = Vec::new();
        let mut size = st.size;
        // Shrinking gives space back, so it may use the reserve: a full device can be truncated.
        let pool = if set.size.is_some_and(|s| s < st.size) { Pool::Reserve } else { Pool::Normal };
        if let Some(new_size) = set.size {
            match st.kind {
                FileKind::Regular => {}
                FileKind::Directory => return Err(Error::IsDir),
                _ => return Err(Error::Invalid("size of a non-regular file")),
            }
            if new_size > MAX_FILE_SIZE {
                return Err(Error::FileTooBig);
            }
            if new_size < st.size {
                entries.extend(self.zero_tail_of_last_page(&st, new_size, pool)?);
            }
            size = new_size;
        }
        let pick = |t: Option<TimeOrNow>, old: Timespec| match t {
            Some(TimeOrNow::Now) => now,
            Some(TimeOrNow::At(t)) => t,
            None => old,
        };
        let mtime = if set.size.is_some() && set.mtime.is_none() { now } else { pick(set.mtime, st.mtime) };
        entries.push(Entry::Attr {
            mode: st.kind.mode_bits() | set.mode.map_or(st.perm as u32, |m| m & 0o7777),
            uid: set.uid.unwrap_or(st.uid),
            gid: set.gid.unwrap_or(st.gid),
            flags: st.flags,
            size,
            atime: pick(set.atime, st.atime),
            mtime,
            ctime: set.ctime.unwrap_or(now),
        });
        self.commit_in(&mut st, &entries, pool)?;
        self.attr_of(&st)
    }

    /// Set chattr's `flags` (FS_IOC_SETFLAGS), as `caller`: see [`iflags::check_change`].
    /// The rest of the inode stays; ctime moves.
    pub fn set_flags(&self, ino: Ino, flags: u32, caller: Caller) -> Result<Attr> {
        self.check_writable()?;
        let r = self.inode(ino)?;
        let mut st = r.write();
        iflags::check_change(st.flags, flags, caller.uid == st.uid, caller.uid == 0)?;
        let entry = st.with_flags(flags, Timespec::now());
        self.commit(&mut st, vec![entry])?;
        self.attr_of(&st)
    }

    /// Create an inode of `mode`'s type under `parent` and link it as `name`.
    fn create(
        &self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        rdev: u32,
        caller: Caller,
        target: Option<&[u8]>,
    ) -> Result<Attr> {
        self.check_writable()?;
        check_name(name)?;
        let kind = FileKind::from_mode(mode).ok_or(Error::Invalid("file type"))?;
        let p = self.inode(parent)?;
        let mut pst = p.write();
        if pst.dir.is_none() {
            return Err(Error::NotDir);
        }
        if pst.nlink == 0 {
            return Err(Error::NotFound);
        }
        if pst.dir.as_ref().is_some_and(|d| d.get(name).is_some()) {
            return Err(Error::Exists);
        }
        iflags::check_mutable(pst.flags)?;
        if kind == FileKind::Directory && pst.links() >= LINK_MAX {
            return Err(Error::TooManyLinks);
        }
        let (perm, gid) = new_owner(&pst, kind, mode, caller);
        let (ino, off) = self.itables.allocate(&self.pm, &self.alloc, current_cpu())?;
        let made = self.init_inode(ino, off, kind.mode_bits() | perm, caller.uid, gid, rdev, parent);
        let made = made.and_then(|r| {
            let mut st = r.write();
            let time = st.ctime; // the creation time, before a symlink's target is written
            if let Some(t) = target {
                self.write_locked(&mut st, 0, t)?;
            }
            let cookie = pst.dir_mut()?.take_cookie(name);
            let add = Entry::DentryAdd { ino, cookie, kind: kind_code(kind), time, name: name.to_vec() };
            self.commit(&mut pst, vec![add])?;
            self.attr_of(&st)
        });
        self.made(ino, made)
    }

    /// Answer a just-made inode's attributes; or, if making it failed, give its slot and
    /// anything it took back (no directory names it).
    fn made(&self, ino: Ino, made: Result<Attr>) -> Result<Attr> {
        if made.is_err() {
            self.unmake(ino);
        }
        made
    }

    /// Give back the slot of an inode whose making failed, and anything it took.
    fn unmake(&self, ino: Ino) {
        let cached = self.cache.shard(ino).get(ino).cloned();
        match cached {
            Some(r) => {
                let _ = self.destroy(&mut r.write());
            }
            None => {
                let _ = self.itables.release(&self.pm, ino);
            }
        }
    }

    /// A regular file that no directory names (O_TMPFILE), owned as if created in `parent`:
    /// link count 0, so it lives while the caller holds it open ([`Fs::open`], [`Fs::hold`]),
    /// and is freed at the last release, at unmount, or by recovery after a crash, unless
    /// [`Fs::link`] names it first.
    pub fn tmpfile(&self, parent: Ino, mode: u32, caller: Caller) -> Result<Attr> {
        self.check_writable()?;
        if FileKind::from_mode(mode).is_some_and(|k| k != FileKind::Regular) {
            return Err(Error::Invalid("tmpfile of a type other than a regular file"));
        }
        let (perm, gid) = {
            let p = self.inode(parent)?;
            let pst = p.read();
            if pst.dir.is_none() {
                return Err(Error::NotDir);
            }
            if pst.nlink == 0 {
                return Err(Error::NotFound);
            }
            iflags::check_mutable(pst.flags)?;
            new_owner(&pst, FileKind::Regular, mode, caller)
        };
        let (ino, off) = self.itables.allocate(&self.pm, &self.alloc, current_cpu())?;
        let made = self.init_inode(ino, off, libc::S_IFREG | perm, caller.uid, gid, 0, parent);
        let made = made.and_then(|r| {
            let mut st = r.write();
            // Nameless from the start: a crash before this commit leaves an unreachable
            // inode, which recovery frees as it frees any orphan.
            let ctime = st.ctime;
            self.commit(&mut st, vec![Entry::Link { nlink: 0, ctime }])?;
            self.attr_of(&st)
        });
        self.made(ino, made)
    }

    /// Write a just-allocated inode slot's creation record, cache its DRAM state, and mark it
    /// live, in that order. Until a directory entry names it, it is an orphan that recovery
    /// frees.
    ///
    /// The order matters to a load racing with the create: a lookup that read the slot's
    /// earlier inode's number from a directory just before an unlink, and loads that number
    /// now. It finds the slot not live (NotFound), or finds it live and then this inode cached
    /// ([`Fs::inode`] looks at the cache again before caching what it loaded). Marked live
    /// first, the loader could cache a second copy of this inode, and the kernel's reference
    /// taken on that copy would be lost when [`Fs::made`]'s copy replaced it.
    #[allow(clippy::too_many_arguments)]
    fn init_inode(
        &self,
        ino: Ino,
        off: u64,
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u32,
        parent: Ino,
    ) -> Result<InodeRef> {
        let mut raw = [0u8; 4];
        self.pm.read(off + 24, &mut raw)?;
        let creation = InodeCreation {
            // The slot's last generation plus one: file handles of its earlier inode go stale.
            generation: u32::from_le_bytes(raw).wrapping_add(1),
            mode,
            uid,
            gid,
            rdev,
            flags: 0,
            parent,
            time: Timespec::now(),
        };
        self.pm.write(off, &creation.encode())?;
        self.pm.persist(off, layout::INODE_SIZE);
        let r = Arc::new(RwLock::new(InodeState::new(ino, off, &creation)?));
        self.cache.shard(ino).insert(ino, r.clone());
        self.pm.store_u64(off + layout::inode::STATE, layout::inode::LIVE)?;
        self.pm.persist(off + layout::inode::STATE, 8);
        Ok(r)
    }

    /// Create any non-directory inode: `mode` holds the type bits (S_IFREG, S_IFIFO, ...).
    pub fn mknod(&self, parent: Ino, name: &[u8], mode: u32, rdev: u32, caller: Caller) -> Result<Attr> {
        match FileKind::from_mode(mode) {
            Some(FileKind::Directory) | Some(FileKind::Symlink) => {
                Err(Error::Invalid("mknod of a directory or symlink"))
            }
            Some(_) => self.create(parent, name, mode, rdev, caller, None),
            None => self.create(parent, name, mode | libc::S_IFREG, rdev, caller, None),
        }
    }

    pub fn mkdir(&self, parent: Ino, name: &[u8], mode: u32, caller: Caller) -> Result<Attr> {
        self.create(parent, name, libc::S_IFDIR | (mode & 0o7777), 0, caller, None)
    }

    pub fn symlink(&self, parent: Ino, name: &[u8], target: &[u8], caller: Caller) -> Result<Attr> {
        if target.is_empty() {
            return Err(Error::NotFound);
        }
        if target.len() > SYMLINK_MAX {
            return Err(Error::NameTooLong);
        }
        self.create(parent, name, libc::S_IFLNK | 0o777, 0, caller, Some(target))
    }

    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        self.check_alive()?;
        let r = self.inode(ino)?;
        let st = r.read();
        if st.kind != FileKind::Symlink {
            return Err(Error::Invalid("not a symlink"));
        }
        // The size comes from the log: bound it before allocating a buffer that large.
        if st.size > SYMLINK_MAX as u64 {
            return Err(Error::Corrupt(format!(
                "symlink {ino}: target length {} is over {SYMLINK_MAX}; run fsck.zpmfs",
                st.size
            )));
        }
        let mut buf = vec![0u8; st.size as usize];
        let n = self.read_locked(&st, 0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn link(&self, ino: Ino, new_parent: Ino, new_name: &[u8]) -> Result<Attr> {
        self.check_writable()?;
        check_name(new_name)?;
        let mut l = self.lock_all(&[ino, new_parent])?;
        {
            let p = l.get(new_parent);
            let d = p.dir.as_ref().ok_or(Error::NotDir)?;
            if d.get(new_name).is_some() {
                return Err(Error::Exists);
            }
            if p.nlink == 0 {
                return Err(Error::NotFound);
            }
            iflags::check_mutable(p.flags)?;
        }
        iflags::check_pinned(l.get(ino).flags)?;
        let (kind, nlink) = {
            let s = l.get(ino);
            (s.kind, s.nlink)
        };
        if kind == FileKind::Directory {
            return Err(Error::NotPermitted);
        }
        // A link count of 0 with the inode still here: an O_TMPFILE file (or one unlinked
        // while open; the kernel refuses to link those) getting its first name.
        if l.get(ino).dead {
            return Err(Error::NotFound);
        }
        if nlink >= LINK_MAX {
            return Err(Error::TooManyLinks);
        }
        let now = Timespec::now();
        let cookie = l.get(new_parent).dir_mut()?.take_cookie(new_name);
        let add = Entry::DentryAdd { ino, cookie, kind: kind_code(kind), time: now, name: new_name.to_vec() };
        self.commit_many(
            &mut l,
            vec![(new_parent, vec![add]), (ino, vec![Entry::Link { nlink: nlink + 1, ctime: now }])],
            Pool::Normal,
        )?;
        self.attr_of(l.get(ino))
    }

    /// Look a name up and lock the parent and the child, re-checking after locking.
    fn lock_parent_child(&self, parent: Ino, name: &[u8]) -> Result<(Locked, DirSlot)> {
        loop {
            let slot = {
                let p = self.inode(parent)?;
                let p = p.read();
                let d = p.dir.as_ref().ok_or(Error::NotDir)?;
                d.get(name).ok_or(Error::NotFound)?
            };
            let mut l = self.lock_all(&[parent, slot.ino])?;
            let now = l.get(parent).dir.as_ref().and_then(|d| d.get(name));
            if now == Some(slot) {
                return Ok((l, slot));
            }
        }
    }

    fn drop_link(&self, l: &mut Locked, ino: Ino) -> Result<()> {
        let st = l.get(ino);
        if st.nlink == 0 && st.open_count == 0 {
            self.destroy(st)?;
        }
        Ok(())
    }

    pub fn unlink(&self, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_writable()?;
        if name == b"." || name == b".." {
            return Err(Error::Invalid("unlink of . or .."));
        }
        let (mut l, slot) = self.lock_parent_child(parent, name)?;
        check_removable(&mut l, parent, slot.ino)?;
        if slot.kind == FileKind::Directory {
            return Err(Error::IsDir);
        }
        let nlink = l.get(slot.ino).nlink.saturating_sub(1);
        self.remove_name(&mut l, parent, name, slot, nlink)
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_writable()?;
        if name == b"." {
            return Err(Error::Invalid("rmdir of ."));
        }
        if name == b".." {
            return Err(Error::NotEmpty);
        }
        let (mut l, slot) = self.lock_parent_child(parent, name)?;
        check_removable(&mut l, parent, slot.ino)?;
        if slot.kind != FileKind::Directory {
            return Err(Error::NotDir);
        }
        if !l.get(slot.ino).dir.as_ref().is_some_and(|d| d.is_empty()) {
            return Err(Error::NotEmpty);
        }
        self.remove_name(&mut l, parent, name, slot, 0)
    }

    /// Remove `name` from `parent` and set the inode's link count to `nlink`, atomically;
    /// free the inode if that was its last link and nothing holds it open.
    fn remove_name(&self, l: &mut Locked, parent: Ino, name: &[u8], slot: DirSlot, nlink: u32) -> Result<()> {
        let now = Timespec::now();
        let del = Entry::DentryDel {
            ino: slot.ino,
            cookie: slot.cookie,
            kind: kind_code(slot.kind),
            time: now,
            name: name.to_vec(),
        };
        // Removing a name must work on a full device: its log pages may come from the reserve.
        let parts = vec![(parent, vec![del]), (slot.ino, vec![Entry::Link { nlink, ctime: now }])];
        self.commit_many(l, parts, Pool::Reserve)?;
        self.drop_link(l, slot.ino)
    }

    /// Whether `dir` is `ancestor` or lies below it.
    fn is_within(&self, dir: Ino, ancestor: Ino) -> Result<bool> {
        let mut cur = dir;
        for _ in 0..100_000 {
            if cur == ancestor {
                return Ok(true);
            }
            if cur == ROOT_INO {
                return Ok(false);
            }
            cur = self.inode(cur)?.read().parent();
        }
        Err(Error::Corrupt(format!("directory {dir}: parent chain does not reach the root")))
    }

    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        self.rename_replacing(parent, name, new_parent, new_name, flags).map(|_| ())
    }

    /// [`Fs::rename`], saying which inode lost the name `new_name` to the renamed one (its
    /// link count dropped; None when the name was free, or with RENAME_EXCHANGE): a client
    /// that did not look the target up first (zuf.ko) learns what it replaced.
    pub fn rename_replacing(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<Option<Ino>> {
        self.check_writable()?;
        if flags.exchange && (flags.noreplace || flags.whiteout) {
            return Err(Error::Invalid("RENAME_EXCHANGE with RENAME_NOREPLACE or RENAME_WHITEOUT"));
        }
        if name == b"." || name == b".." {
            return Err(Error::Invalid("rename of . or .."));
        }
        check_name(new_name)?;
        let _serial = self.rename_lock.lock();
        let find = |dir: Ino, n: &[u8]| -> Result<Option<DirSlot>> {
            let d = self.inode(dir)?;
            let d = d.read();
            Ok(d.dir.as_ref().ok_or(Error::NotDir)?.get(n))
        };
        // Other renames are excluded; creates and unlinks are not, so re-check under locks.
        loop {
            let src = find(parent, name)?.ok_or(Error::NotFound)?;
            let dst = find(new_parent, new_name)?;
            if let Some(d) = dst {
                if d.ino == src.ino {
                    return Ok(None); // both names are links to the same inode: POSIX says do nothing
                }
            }
            if flags.exchange && dst.is_none() {
                return Err(Error::NotFound);
            }
            if flags.noreplace && dst.is_some() {
                return Err(Error::Exists);
            }
            // Ancestry only changes by rename, which we exclude: check it before locking
            // (walking parents takes read locks).
            if src.kind == FileKind::Directory
                && new_parent != parent
                && self.is_within(new_parent, src.ino)?
            {
                return Err(Error::Loop);
            }
            if let (Some(d), true) = (dst, flags.exchange) {
                if d.kind == FileKind::Directory && new_parent != parent && self.is_within(parent, d.ino)? {
                    return Err(Error::Loop);
                }
            }
            let mut inos = vec![parent, new_parent, src.ino];
            inos.extend(dst.map(|d| d.ino));
            let mut l = self.lock_all(&inos)?;
            let still = l.get(parent).dir.as_ref().and_then(|d| d.get(name)) == Some(src)
                && l.get(new_parent).dir.as_ref().and_then(|d| d.get(new_name)) == dst;
            if !still {
                continue;
            }
            return self.rename_locked(&mut l, parent, name, new_parent, new_name, src, dst, flags);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rename_locked(
        &self,
        l: &mut Locked,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        src: DirSlot,
        dst: Option<DirSlot>,
        flags: RenameFlags,
    ) -> Result<Option<Ino>> {
        let src_dir = src.kind == FileKind::Directory;
        if l.get(new_parent).nlink == 0 {
            return Err(Error::NotFound);
        }
        check_removable(l, parent, src.ino)?;
        match dst {
            Some(d) => check_removable(l, new_parent, d.ino)?,
            None => iflags::check_mutable(l.get(new_parent).flags)?,
        }
        if let (Some(d), false) = (dst, flags.exchange) {
            let dst_dir = d.kind == FileKind::Directory;
            if src_dir && !dst_dir {
                return Err(Error::NotDir);
            }
            if !src_dir && dst_dir {
                return Err(Error::IsDir);
            }
            if dst_dir && !l.get(d.ino).dir.as_ref().is_some_and(|x| x.is_empty()) {
                return Err(Error::NotEmpty);
            }
        }
        if src_dir
            && new_parent != parent
            && dst.is_none_or(|d| d.kind != FileKind::Directory)
            && l.get(new_parent).links() >= LINK_MAX
        {
            return Err(Error::TooManyLinks);
        }
        let now = Timespec::now();
        let del = |s: DirSlot, n: &[u8]| Entry::DentryDel {
            ino: s.ino,
            cookie: s.cookie,
            kind: kind_code(s.kind),
            time: now,
            name: n.to_vec(),
        };
        let mut parts: Vec<(Ino, Vec<Entry>)> = Vec::new();
        let mut push = |ino: Ino, e: Entry| match parts.iter_mut().find(|(i, _)| *i == ino) {
            Some((_, v)) => v.push(e),
            None => parts.push((ino, vec![e])),
        };
        // Deletions first: within one directory log they must precede the additions.
        push(parent, del(src, name));
        if let Some(d) = dst {
            push(new_parent, del(d, new_name));
        }
        // A replaced or exchanged entry gives its readdir position to the name that takes it.
        let c1 = match dst {
            Some(d) => d.cookie,
            None => l.get(new_parent).dir_mut()?.take_cookie(new_name),
        };
        push(
            new_parent,
            Entry::DentryAdd {
                ino: src.ino,
                cookie: c1,
                kind: kind_code(src.kind),
                time: now,
                name: new_name.to_vec(),
            },
        );
        let src_nlink = l.get(src.ino).nlink;
        push(src.ino, Entry::Link { nlink: src_nlink, ctime: now });
        if src_dir && parent != new_parent {
            push(src.ino, Entry::Parent { parent: new_parent });
        }
        let mut victim = None;
        if let Some(d) = dst {
            if flags.exchange {
                let c2 = src.cookie;
                push(
                    parent,
                    Entry::DentryAdd {
                        ino: d.ino,
                        cookie: c2,
                        kind: kind_code(d.kind),
                        time: now,
                        name: name.to_vec(),
                    },
                );
                let dn = l.get(d.ino).nlink;
                push(d.ino, Entry::Link { nlink: dn, ctime: now });
                if d.kind == FileKind::Directory && parent != new_parent {
                    push(d.ino, Entry::Parent { parent });
                }
            } else {
                let dn = if d.kind == FileKind::Directory { 0 } else { l.get(d.ino).nlink.saturating_sub(1) };
                push(d.ino, Entry::Link { nlink: dn, ctime: now });
                victim = Some(d.ino);
            }
        }
        // The whiteout: a new 0:0 character device at the old name, added in the same commit
        // (after the old name's removal in that directory's log).
        let whiteout = if flags.whiteout {
            let (ino, off) = self.itables.allocate(&self.pm, &self.alloc, current_cpu())?;
            match self.init_inode(ino, off, libc::S_IFCHR, 0, 0, 0, parent) {
                Ok(r) => {
                    let add = Entry::DentryAdd {
                        ino,
                        cookie: src.cookie,
                        kind: kind_code(FileKind::CharDevice),
                        time: now,
                        name: name.to_vec(),
                    };
                    match parts.iter_mut().find(|(i, _)| *i == parent) {
                        Some((_, v)) => v.push(add),
                        None => parts.push((parent, vec![add])),
                    }
                    Some(r)
                }
                Err(e) => {
                    self.unmake(ino);
                    return Err(e);
                }
            }
        } else {
            None
        };
        if let Err(e) = self.commit_many(l, parts, Pool::Normal) {
            if let Some(r) = whiteout {
                let _ = self.destroy(&mut r.write());
            }
            return Err(e);
        }
        if let Some(v) = victim {
            self.drop_link(l, v)?;
        }
        Ok(victim)
    }

    /// An open file handle keeps an unlinked inode alive until [`Fs::release`].
    pub fn open(&self, ino: Ino) -> Result<()> {
        self.check_alive()?;
        let r = self.inode(ino)?;
        let mut st = r.write();
        // Taken from the cache just before a destroy removed it: that inode is gone.
        if st.dead {
            return Err(Error::NotFound);
        }
        st.open_count += 1;
        Ok(())
    }

    /// Take `n` references, as [`Fs::open`] does, on the inode that an earlier call answered
    /// as `ino` with `generation`, in one step under its lock. If that inode was freed since,
    /// and its number perhaps given to a new inode, the name it was found by was gone by then:
    /// NotFound, and nothing is taken (a reference on the new inode would be one its holder
    /// never gives back, or, released again, one taken from the new inode's real holder).
    pub fn hold(&self, ino: Ino, generation: u32, n: u32) -> Result<()> {
        self.check_alive()?;
        let r = self.inode(ino)?;
        let mut st = r.write();
        if self.attr_of(&st)?.generation != generation {
            return Err(Error::NotFound);
        }
        st.open_count += n;
        Ok(())
    }

    pub fn release(&self, ino: Ino) -> Result<()> {
        self.check_alive()?;
        let r = self.inode(ino)?;
        let mut st = r.write();
        st.open_count = st.open_count.saturating_sub(1);
        if st.open_count == 0 && st.nlink == 0 && !self.read_only {
            self.destroy(&mut st)?;
        }
        Ok(())
    }

    /// Everything is durable when a call returns; this only checks that `ino` exists.
    pub fn fsync(&self, ino: Ino, _datasync: bool) -> Result<()> {
        self.check_alive()?;
        self.inode(ino).map(|_| ())
    }

    /// Entries after `offset` (0 starts at the beginning, with "." and ".."), at most `max`.
    /// Offsets: "." is followed by 1, ".." by 2, an entry with cookie c by c + 3.
    pub fn readdir(&self, ino: Ino, offset: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.check_alive()?;
        let r = self.inode(ino)?;
        let st = r.read();
        let d = st.dir.as_ref().ok_or(Error::NotDir)?;
        let mut out = Vec::new();
        if offset == 0 && out.len() < max {
            out.push(DirEntry { ino, next_offset: 1, kind: FileKind::Directory, name: b".".to_vec() });
        }
        if offset <= 1 && out.len() < max {
            out.push(DirEntry {
                ino: st.parent(),
                next_offset: 2,
                kind: FileKind::Directory,
                name: b"..".to_vec(),
            });
        }
        let from = offset.saturating_sub(2);
        for (name, s) in d.list_from(from, max - out.len()) {
            out.push(DirEntry { ino: s.ino, next_offset: s.cookie + 3, kind: s.kind, name });
        }
        Ok(out)
    }

    pub fn statfs(&self) -> Result<StatFs> {
        self.check_alive()?;
        let free = self.alloc.free_blocks();
        // The reserve is free but not available: only operations that give space back use it.
        let avail = free.saturating_sub(self.alloc.reserve());
        let free_inodes = self.itables.free_slots() + avail * layout::INODES_PER_BLOCK;
        Ok(StatFs {
            block_size: BLOCK_SIZE as u32,
            blocks: self.sb.blocks,
            blocks_free: free,
            blocks_avail: avail,
            files: self.itables.live() + free_inodes,
            files_free: free_inodes,
            name_max: NAME_MAX as u32,
        })
    }
}

/// A name of `victim` in `dir` may go (unlink, rmdir, rename from or over it): neither the
/// directory nor the inode is immutable or append-only (the VFS's `may_delete`).
fn check_removable(l: &mut Locked, dir: Ino, victim: Ino) -> Result<()> {
    iflags::check_pinned(l.get(dir).flags)?;
    iflags::check_pinned(l.get(victim).flags)
}

/// The permission bits and group of a new inode of `kind` in directory `pst`: a setgid
/// directory gives its group, and its setgid bit to subdirectories.
fn new_owner(pst: &InodeState, kind: FileKind, mode: u32, caller: Caller) -> (u32, u32) {
    let mut perm = mode & 0o7777;
    let mut gid = caller.gid;
    if pst.perm as u32 & libc::S_ISGID != 0 {
        gid = pst.gid;
        if kind == FileKind::Directory {
            perm |= libc::S_ISGID;
        }
    }
    (perm, gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller may take an inode from the cache just before a destroy removes it, and get
    /// its lock only after: that inode must answer NotFound, not take a reference or read a
    /// PM slot that a new inode may own by now.
    #[test]
    fn an_inode_destroyed_under_a_caller_answers_not_found() {
        let path = std::env::temp_dir().join(format!("zpmfs-dead-{}.img", std::process::id()));
        std::fs::File::create(&path).unwrap().set_len(32 << 20).unwrap();
        let dev = crate::device::Device::open(&path, true).unwrap();
        let opts = crate::format::FormatOptions { cpus: Some(2), ..Default::default() };
        crate::format::format(&dev, &opts).unwrap();
        drop(dev);
        let fs = Fs::mount(&path, &MountOptions::default()).unwrap();
        let caller = Caller { uid: 0, gid: 0, pid: 1 };
        let a = fs.mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, caller).unwrap();
        let stale = fs.inode(a.ino).unwrap();
        fs.unlink(ROOT_INO, b"f").unwrap();
        assert!(stale.read().dead);
        assert_eq!(fs.attr_of(&stale.read()), Err(Error::NotFound));
        assert_eq!(fs.open(a.ino), Err(Error::NotFound));
        drop(fs);
        let _ = std::fs::remove_file(&path);
    }

    /// Destroy gives the slot back before it leaves the cache, and a create on another CPU may
    /// make and cache a new inode in that slot in between: the destroy must not take the new
    /// inode out of the cache (a lookup would then load a second copy of it).
    #[test]
    fn a_destroy_leaves_the_new_inode_cached_in_its_slot() {
        let path = std::env::temp_dir().join(format!("zpmfs-forget-{}.img", std::process::id()));
        std::fs::File::create(&path).unwrap().set_len(32 << 20).unwrap();
        let dev = crate::device::Device::open(&path, true).unwrap();
        crate::format::format(&dev, &Default::default()).unwrap();
        drop(dev);
        let fs = Fs::mount(&path, &MountOptions::default()).unwrap();
        let caller = Caller { uid: 0, gid: 0, pid: 1 };
        let old = fs.mknod(ROOT_INO, b"old", libc::S_IFREG | 0o644, 0, caller).unwrap();
        let dying = fs.inode(old.ino).unwrap();
        // What a create in the freed slot leaves in the cache.
        let newer = Arc::new(RwLock::new(dying.read().clone()));
        fs.cache.shard(old.ino).insert(old.ino, newer.clone());
        fs.forget_inode(&dying.read());
        let cached = fs.cache.shard(old.ino).get(old.ino).cloned().expect("the new inode stays cached");
        assert!(Arc::ptr_eq(&cached, &newer));
        // Its own entry does go.
        fs.forget_inode(&newer.read());
        assert!(fs.cache.shard(old.ino).get(old.ino).is_none());
        drop(fs);
        let _ = std::fs::remove_file(&path);
    }
}
