//! Per-CPU inode tables on PM. CPU c's table is a two-level index (a root block of pointers
//! to index blocks of pointers to inode blocks of 32 PM inodes). Inode numbers interleave the
//! CPUs: ino = local_index * cpus + c + 1, so the root directory (CPU 0, index 0) is 1.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::alloc::Allocator;
use crate::error::{Error, Result};
use crate::layout::{inode, BLOCK_SIZE, INODES_PER_BLOCK, INODES_PER_CPU, INODE_SIZE, PTRS_PER_BLOCK};
use crate::persist::PmRegion;
use crate::vfs::Ino;

struct CpuTable {
    /// The level-1 index block (fixed at mkfs).
    root: u64,
    /// Inode blocks in local order (kept in DRAM, rebuilt from the index at mount).
    blocks: RwLock<Vec<u64>>,
    /// Free local indices, lowest last (popped first).
    free: Mutex<Vec<u64>>,
}

/// All inode tables (kept in DRAM: the index, free slots, the live count).
pub struct InodeTables {
    cpus: u64,
    tables: Vec<CpuTable>,
    live: AtomicU64,
}

impl InodeTables {
    /// Read every table's index and every inode's state word: which inodes are live.
    pub fn load(
        pm: &PmRegion,
        roots_block: u64,
        cpus: u32,
        data: (u64, u64),
    ) -> Result<(InodeTables, Vec<Ino>)> {
        let cpus = cpus as u64;
        let mut tables = Vec::new();
        let mut live = Vec::new();
        let in_data = |b: u64| b >= data.0 && b < data.1;
        // A table that points into itself would have inodes written over its index.
        let mut seen = HashSet::new();
        let mut once = |b: u64, c: u64, what: &str| -> Result<()> {
            if seen.insert(b) {
                return Ok(());
            }
            Err(Error::Corrupt(format!("inode table {c}: {what} block {b} is used twice")))
        };
        for c in 0..cpus {
            let root = pm.read_u64(roots_block * BLOCK_SIZE + c * 8)?;
            if !in_data(root) {
                return Err(Error::Corrupt(format!(
                    "inode table {c}: root block {root} outside the data area"
                )));
            }
            once(root, c, "root")?;
            let mut blocks = Vec::new();
            'outer: for i in 0..PTRS_PER_BLOCK {
                let l2 = pm.read_u64(root * BLOCK_SIZE + i * 8)?;
                if l2 == 0 {
                    break;
                }
                if !in_data(l2) {
                    return Err(Error::Corrupt(format!(
                        "inode table {c}: index block {l2} outside the data area"
                    )));
                }
                once(l2, c, "index")?;
                for j in 0..PTRS_PER_BLOCK {
                    let b = pm.read_u64(l2 * BLOCK_SIZE + j * 8)?;
                    if b == 0 {
                        break 'outer;
                    }
                    if !in_data(b) {
                        return Err(Error::Corrupt(format!(
                            "inode table {c}: inode block {b} outside the data area"
                        )));
                    }
                    once(b, c, "inode")?;
                    blocks.push(b);
                }
            }
            let mut free = Vec::new();
            for (bi, &b) in blocks.iter().enumerate() {
                for s in 0..INODES_PER_BLOCK {
                    let local = bi as u64 * INODES_PER_BLOCK + s;
                    let state = pm.read_u64(b * BLOCK_SIZE + s * INODE_SIZE + inode::STATE)?;
                    if state == inode::LIVE {
                        live.push(local * cpus + c + 1);
                    } else {
                        free.push(local);
                    }
                }
            }
            free.reverse();
            tables.push(CpuTable { root, blocks: RwLock::new(blocks), free: Mutex::new(free) });
        }
        let n = live.len() as u64;
        Ok((InodeTables { cpus, tables, live: AtomicU64::new(n) }, live))
    }

    fn locate(&self, ino: Ino) -> Option<(usize, u64)> {
        let n = ino.checked_sub(1)?;
        Some(((n % self.cpus) as usize, n / self.cpus))
    }

    /// Device offset of `ino`'s PM inode, if its table block exists.
    pub fn offset(&self, ino: Ino) -> Option<u64> {
        let (c, local) = self.locate(ino)?;
        let blocks = self.tables.get(c)?.blocks.read();
        let b = *blocks.get((local / INODES_PER_BLOCK) as usize)?;
        Some(b * BLOCK_SIZE + (local % INODES_PER_BLOCK) * INODE_SIZE)
    }

    /// Whether `off` is an 8-byte word inside some inode (journals may only name those).
    pub fn is_inode_word(&self, off: u64) -> bool {
        let block = off / BLOCK_SIZE;
        self.tables.iter().any(|t| t.blocks.read().contains(&block))
    }

    /// Inodes in use.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
    /// Free slots in existing blocks (more can be added while blocks are free).
    pub fn free_slots(&self) -> u64 {
        self.tables.iter().map(|t| t.free.lock().len() as u64).sum()
    }

    /// Every inode block (for the allocator rebuild) and index block.
    pub fn metadata_blocks(&self, pm: &PmRegion) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for t in &self.tables {
            out.push(t.root);
            for i in 0..PTRS_PER_BLOCK {
                let l2 = pm.read_u64(t.root * BLOCK_SIZE + i * 8)?;
                if l2 == 0 {
                    break;
                }
                out.push(l2);
            }
            out.extend(t.blocks.read().iter().copied());
        }
        Ok(out)
    }

    /// Take a free slot on `cpu`'s table (growing it by one block when full). The PM inode is
    /// not yet live: the caller writes it and then sets its state word.
    pub fn allocate(&self, pm: &PmRegion, alloc: &Allocator, cpu: usize) -> Result<(Ino, u64)> {
        let c = cpu % self.tables.len();
        let t = &self.tables[c];
        let mut free = t.free.lock();
        if free.is_empty() {
            self.grow(pm, alloc, c, &mut free)?;
        }
        let local = free.pop().ok_or(Error::NoSpace)?;
        drop(free);
        self.live.fetch_add(1, Ordering::Relaxed);
        let ino = local * self.cpus + c as u64 + 1;
        let off = self.offset(ino).ok_or_else(|| Error::Corrupt(format!("inode {ino}: slot vanished")))?;
        Ok((ino, off))
    }

    fn grow(&self, pm: &PmRegion, alloc: &Allocator, c: usize, free: &mut Vec<u64>) -> Result<()> {
        let t = &self.tables[c];
        let mut blocks = t.blocks.write();
        let n = blocks.len() as u64;
        if (n + 1) * INODES_PER_BLOCK > INODES_PER_CPU {
            return Err(Error::NoSpace);
        }
        let (i, j) = (n / PTRS_PER_BLOCK, n % PTRS_PER_BLOCK);
        let root_slot = t.root * BLOCK_SIZE + i * 8;
        let mut l2 = pm.read_u64(root_slot)?;
        if l2 == 0 {
            l2 = alloc.alloc_one(c)?;
            pm.zero_nt(l2 * BLOCK_SIZE, BLOCK_SIZE)?;
            pm.fence();
            pm.store_u64(root_slot, l2)?;
            pm.persist(root_slot, 8);
        }
        let b = alloc.alloc_one(c)?;
        pm.zero_nt(b * BLOCK_SIZE, BLOCK_SIZE)?;
        pm.fence();
        pm.store_u64(l2 * BLOCK_SIZE + j * 8, b)?;
        pm.persist(l2 * BLOCK_SIZE + j * 8, 8);
        blocks.push(b);
        free.extend((n * INODES_PER_BLOCK..(n + 1) * INODES_PER_BLOCK).rev());
        Ok(())
    }

    /// Take `ino`'s slot out of the free list (fsck recreating the root in its own slot).
    pub fn mark_live(&self, ino: Ino) {
        if let Some((c, local)) = self.locate(ino) {
            let mut free = self.tables[c].free.lock();
            if let Some(i) = free.iter().position(|&l| l == local) {
                free.remove(i);
                self.live.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Mark an inode free on PM (its state word) and return its slot.
    pub fn release(&self, pm: &PmRegion, ino: Ino) -> Result<()> {
        let off = self.offset(ino).ok_or(Error::NotFound)?;
        pm.store_u64(off + inode::STATE, 0)?;
        pm.persist(off + inode::STATE, 8);
        if let Some((c, local)) = self.locate(ino) {
            self.tables[c].free.lock().push(local);
        }
        self.live.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }
}
