//! Per-CPU undo journals for operations that touch several inodes (rename, link, unlink,
//! rmdir, log compaction). Each entry names an 8-byte commit word (a log tail, a log head)
//! and its old value. The journal's count word is its commit point: while it is non-zero
//! the operation is in flight, and recovery restores every named word to its old value.

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::layout::{journal, BLOCK_SIZE, JOURNAL_RECORDS};
use crate::persist::PmRegion;

/// The journals of all CPUs (kept in DRAM: where they are and who holds each).
pub struct Journals {
    first_block: u64,
    locks: Vec<Mutex<()>>,
}

impl Journals {
    pub fn new(first_block: u64, cpus: u32) -> Journals {
        Journals { first_block, locks: (0..cpus.max(1)).map(|_| Mutex::new(())).collect() }
    }

    /// Atomically set every `(device offset, new value)` word: all or none survive a crash.
    pub fn update_words(&self, pm: &PmRegion, cpu: usize, words: &[(u64, u64)]) -> Result<()> {
        if words.len() > JOURNAL_RECORDS {
            return Err(Error::Invalid("journal transaction too large"));
        }
        if words.len() == 1 {
            let (off, new) = words[0];
            pm.store_u64(off, new)?;
            pm.persist(off, 8);
            return Ok(());
        }
        let idx = cpu % self.locks.len();
        let _held = self.locks[idx].lock();
        let base = (self.first_block + idx as u64) * BLOCK_SIZE;
        let mut rec = Vec::with_capacity(words.len() * 16);
        for &(off, _) in words {
            rec.extend_from_slice(&off.to_le_bytes());
            rec.extend_from_slice(&pm.read_u64(off)?.to_le_bytes());
        }
        pm.write(base + journal::RECORDS, &rec)?;
        pm.persist(base + journal::RECORDS, rec.len() as u64);
        pm.store_u64(base + journal::COUNT, words.len() as u64)?;
        pm.persist(base + journal::COUNT, 8);
        for &(off, new) in words {
            pm.store_u64(off, new)?;
            pm.flush(off, 8);
        }
        pm.fence();
        pm.store_u64(base + journal::COUNT, 0)?;
        pm.persist(base + journal::COUNT, 8);
        Ok(())
    }

    /// Empty every journal without rolling anything back: for an image on which no operation
    /// can be in flight (a clean one), so that what a journal holds is stale.
    pub fn forget(&self, pm: &PmRegion) -> Result<()> {
        for idx in 0..self.locks.len() {
            let count = (self.first_block + idx as u64) * BLOCK_SIZE + journal::COUNT;
            pm.store_u64(count, 0)?;
            pm.persist(count, 8);
        }
        Ok(())
    }

    /// Roll back every journal that holds an operation in flight. Idempotent: a crash during
    /// recovery leaves the count set and the next mount restores the same old values again.
    /// `valid_word` says whether an offset may be named by a journal (inside an inode table).
    pub fn recover(&self, pm: &PmRegion, valid_word: impl Fn(u64) -> bool) -> Result<u32> {
        let mut rolled = 0;
        for idx in 0..self.locks.len() {
            let base = (self.first_block + idx as u64) * BLOCK_SIZE;
            let count = pm.read_u64(base + journal::COUNT)?;
            if count == 0 {
                continue;
            }
            if count as usize > JOURNAL_RECORDS {
                return Err(Error::Corrupt(format!("journal {idx}: record count {count} is impossible")));
            }
            for r in 0..count {
                let at = base + journal::RECORDS + r * 16;
                let off = pm.read_u64(at)?;
                let old = pm.read_u64(at + 8)?;
                if off % 8 != 0 || !valid_word(off) {
                    return Err(Error::Corrupt(format!("journal {idx}: record names offset {off}")));
                }
                pm.store_u64(off, old)?;
                pm.flush(off, 8);
            }
            pm.fence();
            pm.store_u64(base + journal::COUNT, 0)?;
            pm.persist(base + journal::COUNT, 8);
            rolled += 1;
        }
        Ok(rolled)
    }
}
