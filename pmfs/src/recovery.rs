//! Mount and unmount: find and check the superblock, roll back unfinished journals, and
//! rebuild the allocator: from the state saved by a clean unmount, or after a crash by
//! scanning every live inode's log from the root down (unreachable inodes are orphans and
//! are freed). Unmount frees unlinked-but-open inodes, saves the allocator, sets the clean flag.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::fs::{Fs, MountOptions};
use crate::inode::InodeState;
use crate::itable::InodeTables;
use crate::layout::{self, state, Superblock, BLOCK_SIZE, STATE_BLOCK, SUPER_BLOCK, SUPER_REPLICA_BLOCK};
use crate::persist::PmRegion;
use crate::vfs::{FileKind, Ino, ROOT_INO};

/// One bit per block, for the rebuild.
pub(crate) struct BlockMap {
    bits: Vec<u64>,
    /// The device's blocks: the last word of `bits` has room for up to 63 more.
    blocks: u64,
}

impl BlockMap {
    pub(crate) fn new(blocks: u64) -> BlockMap {
        BlockMap { bits: vec![0; blocks.div_ceil(64) as usize], blocks }
    }
    /// Mark blocks used; error if any already was (two owners) or is past the device.
    pub(crate) fn claim(&mut self, start: u64, len: u64, owner: &dyn Fn() -> String) -> Result<()> {
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.blocks)
            .ok_or_else(|| Error::Corrupt(format!("{}: blocks {start}+{len} are past the end", owner())))?;
        for b in start..end {
            let (w, bit) = ((b / 64) as usize, b % 64);
            let word = self
                .bits
                .get_mut(w)
                .ok_or_else(|| Error::Corrupt(format!("{}: block {b} is past the end", owner())))?;
            if *word & (1 << bit) != 0 {
                return Err(Error::Corrupt(format!("{}: block {b} is used twice", owner())));
            }
            *word |= 1 << bit;
        }
        Ok(())
    }
    pub(crate) fn is_used(&self, b: u64) -> bool {
        self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0
    }
}

pub(crate) fn read_superblock(pm: &PmRegion, path: &Path, writable: bool) -> Result<(Superblock, bool)> {
    let blocks = pm.len() / BLOCK_SIZE;
    let mut b0 = [0u8; Superblock::SIZE];
    let mut b1 = [0u8; Superblock::SIZE];
    pm.read(SUPER_BLOCK * BLOCK_SIZE, &mut b0)?;
    if blocks > SUPER_REPLICA_BLOCK {
        pm.read(SUPER_REPLICA_BLOCK * BLOCK_SIZE, &mut b1)?;
    }
    match (Superblock::decode(&b0, blocks), Superblock::decode(&b1, blocks)) {
        (Ok(sb), replica) => {
            if writable && replica.as_ref().map_or(true, |r| *r != sb) {
                pm.write(SUPER_REPLICA_BLOCK * BLOCK_SIZE, &sb.encode())?;
                pm.persist(SUPER_REPLICA_BLOCK * BLOCK_SIZE, Superblock::SIZE as u64);
            }
            Ok((sb, false))
        }
        (Err(_), Ok(sb)) => {
            if writable {
                pm.write(SUPER_BLOCK * BLOCK_SIZE, &sb.encode())?;
                pm.persist(SUPER_BLOCK * BLOCK_SIZE, Superblock::SIZE as u64);
            }
            Ok((sb, true))
        }
        (Err(e0), Err(_)) => {
            let set =
                Superblock::decode(&b0, u64::MAX).ok().filter(|sb| sb.flags & layout::FLAG_DEVICE_SET != 0);
            let hint = if let Some(sb) = set {
                format!(
                    "it is the first member of a device set of {} MiB, mapped alone ({} MiB): mount the whole set \
                     (zuf.ko maps one device; over FUSE name every member, source=A:B)",
                    sb.blocks * BLOCK_SIZE >> 20,
                    pm.len() >> 20
                )
            } else if b0[..8] != layout::MAGIC && b1[..8] != layout::MAGIC {
                let mut head = vec![0u8; (crate::probe::PROBE_BYTES as u64).min(pm.len()) as usize];
                pm.read(0, &mut head)?;
                match crate::probe::identify(&head) {
                    Some(other) => format!("it holds {}, not zpmfs", crate::probe::describe(other)),
                    None => "no zpmfs superblock found (format it with mkfs.zpmfs)".to_string(),
                }
            } else {
                format!("both superblock copies are bad ({e0}); run fsck.zpmfs")
            };
            Err(Error::Corrupt(format!("{}: {hint}", path.display())))
        }
    }
}

impl Fs {
    /// Mount the zpmfs on `path` (a /dev/pmem, /dev/dax or a file; any member of a device
    /// set, whose other members are found by UUID).
    pub fn mount(path: &Path, opts: &MountOptions) -> Result<Fs> {
        Fs::mount_devices(&[path.to_path_buf()], opts)
    }

    /// Mount the zpmfs on `paths`: one device, or members of one device set (image files
    /// cannot be found by scanning: name them all).
    pub fn mount_devices(paths: &[std::path::PathBuf], opts: &MountOptions) -> Result<Fs> {
        let opened = crate::set::open(paths, !opts.read_only)?;
        let path = opened.path().to_path_buf();
        if opened.pm.len() < 3 * BLOCK_SIZE {
            return Err(Error::Corrupt(format!(
                "{}: only {} bytes, too small to hold a zpmfs filesystem",
                path.display(),
                opened.pm.len()
            )));
        }
        let mut fs = Fs::mount_mapped(opened.pm, &path, opts)?;
        fs.device_files = opened.devices.into_iter().map(|d| d.into_file()).collect();
        Ok(fs)
    }

    /// Mount a device someone else opened and mapped (zuf.ko hands zus a mapping of the PM
    /// device it owns). `path` only names it in messages.
    pub fn mount_mapped(mut pm: PmRegion, path: &Path, opts: &MountOptions) -> Result<Fs> {
        if pm.len() < 3 * BLOCK_SIZE {
            return Err(Error::Corrupt(format!("{}: too small to hold a zpmfs filesystem", path.display())));
        }
        pm.set_recorder(opts.recorder.clone());
        let (sb, repaired) = read_superblock(&pm, path, !opts.read_only)?;
        let clean = pm.read_u64(STATE_BLOCK * BLOCK_SIZE + state::CLEAN)? == 1;
        if opts.read_only && !clean {
            return Err(Error::Io(format!(
                "{}: was not cleanly unmounted; mount it read-write once so recovery can run",
                path.display()
            )));
        }
        let data = (sb.data_start, sb.blocks);
        let (itables, live) = InodeTables::load(&pm, sb.inode_roots, sb.cpus, data)?;
        let numa = opts.numa.clone().unwrap_or_else(crate::numa::NumaMap::from_sysfs);
        let alloc = crate::set::allocator(&pm, &sb, &numa)
            .map_err(|e| Error::Corrupt(format!("{}: {}", path.display(), e.detail())))?;
        let mut fs = Fs::assemble(pm, sb, alloc, itables, opts.read_only);
        fs.report.superblock_repaired = repaired;
        if clean && fs.load_saved_allocator()? {
            fs.report.was_clean = true;
        } else {
            let itables = &fs.itables;
            fs.report.journals_rolled_back = fs.journals.recover(&fs.pm, |off| itables.is_inode_word(off))?;
            fs.rebuild(&live)?;
        }
        let root =
            fs.inode(ROOT_INO).map_err(|e| Error::Corrupt(format!("root directory: {}", e.detail())))?;
        if root.read().kind != FileKind::Directory {
            return Err(Error::Corrupt("root inode is not a directory".into()));
        }
        if !opts.read_only {
            let st = STATE_BLOCK * BLOCK_SIZE;
            let count = fs.pm.read_u64(st + state::MOUNT_COUNT)?;
            // Only informative: a damaged count wraps rather than failing the mount.
            fs.pm.store_u64(st + state::MOUNT_COUNT, count.wrapping_add(1))?;
            fs.pm.store_u64(st + state::CLEAN, 0)?;
            fs.pm.persist(st, 16);
        }
        fs.report.inodes = fs.itables.live();
        fs.report.blocks_used = fs.sb.blocks - fs.alloc.free_blocks();
        Ok(fs)
    }

    /// Load the free extents saved by a clean unmount. False if they do not check out.
    fn load_saved_allocator(&self) -> Result<bool> {
        let st = STATE_BLOCK * BLOCK_SIZE;
        let count = self.pm.read_u64(st + state::SAVED_EXTENTS)?;
        if count.saturating_mul(16) > self.sb.save_blocks * BLOCK_SIZE {
            return Ok(false);
        }
        let mut bytes = vec![0u8; (count * 16) as usize];
        self.pm.read(self.sb.save_start * BLOCK_SIZE, &mut bytes)?;
        if crc32c::crc32c(&bytes) as u64 != self.pm.read_u64(st + state::SAVED_CRC)? {
            return Ok(false);
        }
        let mut runs = Vec::with_capacity(count as usize);
        let mut prev_end = self.sb.data_start;
        for c in bytes.chunks_exact(16) {
            let start = u64::from_le_bytes(c[..8].try_into().unwrap_or_default());
            let len = u64::from_le_bytes(c[8..].try_into().unwrap_or_default());
            if start < prev_end || len == 0 || start.checked_add(len).is_none_or(|e| e > self.sb.blocks) {
                return Ok(false);
            }
            prev_end = start + len;
            runs.push((start, len));
        }
        for (s, l) in runs {
            self.alloc.free(s, l);
        }
        Ok(true)
    }

    /// Rebuild after a crash: load every live inode, walk the tree from the root, free what
    /// is unreachable, and give the allocator every block no reachable inode owns.
    fn rebuild(&mut self, live: &[Ino]) -> Result<()> {
        // Replaying the logs is the bulk of the work: one thread per CPU, each a share of the
        // inodes (the per-CPU tables share nothing, and neither do the logs).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(live.len() / 256 + 1);
        let chunk = live.len().div_ceil(threads.max(1)).max(1);
        let this = &*self;
        let results: Vec<Result<Vec<(InodeState, Vec<u64>)>>> = std::thread::scope(|s| {
            let handles: Vec<_> = live
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter().map(|&ino| this.load_inode_pages(ino)).collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Corrupt("log replay thread failed".into()))))
                .collect()
        });
        let mut loaded: HashMap<Ino, InodeState> = HashMap::with_capacity(live.len());
        // Log pages are not kept in DRAM after mount; the rebuild claims them once.
        let mut log_pages: HashMap<Ino, Vec<u64>> = HashMap::with_capacity(live.len());
        for part in results {
            for (st, pages) in part.map_err(|e| Error::Corrupt(format!("{}; run fsck.zpmfs", e.detail())))? {
                log_pages.insert(st.ino, pages);
                loaded.insert(st.ino, st);
            }
        }
        if !loaded.contains_key(&ROOT_INO) {
            return Err(Error::Corrupt("the root directory inode is not in use; run fsck.zpmfs".into()));
        }
        let mut reachable: HashMap<Ino, ()> = HashMap::with_capacity(loaded.len());
        let mut queue = VecDeque::from([ROOT_INO]);
        reachable.insert(ROOT_INO, ());
        while let Some(dir) = queue.pop_front() {
            let Some(d) = loaded.get(&dir).and_then(|s| s.dir.as_ref()) else { continue };
            for (name, slot) in d.all() {
                let child = loaded.get(&slot.ino).ok_or_else(|| {
                    Error::Corrupt(format!(
                        "directory {dir}: entry {:?} names inode {} which is not in use; run fsck.zpmfs",
                        String::from_utf8_lossy(&name),
                        slot.ino
                    ))
                })?;
                if child.kind != slot.kind {
                    return Err(Error::Corrupt(format!(
                        "directory {dir}: entry {:?} has the wrong type",
                        String::from_utf8_lossy(&name)
                    )));
                }
                // Unlink and rmdir remove the name and drop the count (to 0 for a directory:
                // removed) in one journaled step, so a name for an inode whose count is 0 is
                // damage; left alone, unmount would free the inode and leave the name dangling.
                if child.nlink == 0 {
                    return Err(Error::Corrupt(format!(
                        "directory {dir}: entry {:?} names inode {} whose link count is 0; run fsck.zpmfs",
                        String::from_utf8_lossy(&name),
                        slot.ino
                    )));
                }
                if reachable.insert(slot.ino, ()).is_none() && child.kind == FileKind::Directory {
                    queue.push_back(slot.ino);
                }
            }
        }
        let mut used = BlockMap::new(self.sb.blocks);
        used.claim(0, self.sb.data_start, &|| "metadata area".to_string())?;
        for b in self.itables.metadata_blocks(&self.pm)? {
            used.claim(b, 1, &|| "inode table".to_string())?;
        }
        let mut orphans = 0;
        for (ino, st) in loaded {
            if !reachable.contains_key(&ino) {
                // Freed without touching the allocator: its blocks are simply never claimed.
                self.itables.release(&self.pm, ino)?;
                orphans += 1;
                continue;
            }
            for &p in log_pages.get(&ino).map_or(&[][..], |v| v) {
                used.claim(p, 1, &|| format!("inode {ino} log"))?;
            }
            for m in st.extents.all() {
                used.claim(m.block, m.pages, &|| format!("inode {ino} data"))?;
            }
            self.insert_loaded(st);
        }
        let (first, end) = self.alloc.data_range();
        let mut b = first;
        while b < end {
            if used.is_used(b) {
                b += 1;
                continue;
            }
            let s = b;
            while b < end && !used.is_used(b) {
                b += 1;
            }
            self.alloc.free(s, b - s);
        }
        self.report.orphans_freed = orphans;
        Ok(())
    }

    fn insert_loaded(&self, st: InodeState) {
        let ino = st.ino;
        let _ = self.inode_cache_insert(ino, Arc::new(RwLock::new(st)));
    }

    /// Write the free extents to the save area and set the clean flag (the commit point of a
    /// clean unmount). False when they do not fit: the next mount then rebuilds by scanning.
    pub(crate) fn save_allocator(&self) -> Result<bool> {
        let runs = self.alloc.free_runs();
        let mut bytes = Vec::with_capacity(runs.len() * 16);
        for r in &runs {
            bytes.extend_from_slice(&r.start.to_le_bytes());
            bytes.extend_from_slice(&r.len.to_le_bytes());
        }
        let st = STATE_BLOCK * BLOCK_SIZE;
        if bytes.len() as u64 > self.sb.save_blocks * BLOCK_SIZE {
            // Left unclean, so that nobody trusts an older saved map (fsck repairs an image
            // that was clean without mounting it). Nothing is in flight at unmount: journals
            // hold nothing recovery should roll back.
            self.journals.forget(&self.pm)?;
            self.pm.store_u64(st + state::CLEAN, 0)?;
            self.pm.persist(st + state::CLEAN, 8);
            return Ok(false);
        }
        self.pm.write(self.sb.save_start * BLOCK_SIZE, &bytes)?;
        self.pm.flush(self.sb.save_start * BLOCK_SIZE, bytes.len() as u64);
        self.pm.store_u64(st + state::SAVED_EXTENTS, runs.len() as u64)?;
        self.pm.store_u64(st + state::SAVED_CRC, crc32c::crc32c(&bytes) as u64)?;
        self.pm.store_u64(st + state::SAVED_INODES, self.itables.live())?;
        self.pm.persist(st, 64);
        self.pm.store_u64(st + state::CLEAN, 1)?;
        self.pm.persist(st + state::CLEAN, 8);
        Ok(true)
    }

    /// Save allocator state and mark the image clean. Later calls fail with EIO.
    pub fn unmount(&self) -> Result<()> {
        if self.unmounted.swap(true, Ordering::AcqRel) || self.read_only {
            return Ok(());
        }
        for r in self.cached_inodes() {
            let mut st = r.write();
            if st.nlink == 0 {
                self.destroy(&mut st)?;
            }
        }
        self.save_allocator()?;
        Ok(())
    }
}
