//! Block allocator (kept in DRAM): the data area is split into one stripe per CPU, each with
//! its own free-extent list behind its own lock, so CPUs allocate without contending. A CPU
//! allocates from its own stripe and steals from the others only when its own is empty.
//! (NUMA placement: on a one-node machine every stripe is on node 0; per-node devices come
//! with the NUMA issue.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// A run of contiguous blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

#[derive(Default)]
struct FreeList {
    /// start -> length, non-overlapping, coalesced.
    runs: BTreeMap<u64, u64>,
}

impl FreeList {
    fn insert(&mut self, start: u64, len: u64) {
        let mut start = start;
        let mut len = len;
        if let Some((&ps, &pl)) = self.runs.range(..start).next_back() {
            if ps + pl == start {
                self.runs.remove(&ps);
                start = ps;
                len += pl;
            }
        }
        if let Some(&nl) = self.runs.get(&(start + len)) {
            self.runs.remove(&(start + len));
            len += nl;
        }
        self.runs.insert(start, len);
    }

    /// Take up to `want` blocks from one run: the first run at least `want` long, else the longest.
    fn take(&mut self, want: u64) -> Option<Extent> {
        let pick = self
            .runs
            .iter()
            .find(|(_, &l)| l >= want)
            .or_else(|| self.runs.iter().max_by_key(|(_, &l)| l))
            .map(|(&s, &l)| (s, l))?;
        let (s, l) = pick;
        self.runs.remove(&s);
        let n = l.min(want);
        if l > n {
            self.runs.insert(s + n, l - n);
        }
        Some(Extent { start: s, len: n })
    }

    /// Remove a specific range (used when rebuilding from saved state); false if not all free.
    fn contains(&self, start: u64, len: u64) -> bool {
        match self.runs.range(..=start).next_back() {
            Some((&s, &l)) => s + l >= start + len,
            None => false,
        }
    }
}

/// Which blocks an allocation may take. Everyday allocations leave the reserve alone, so that
/// operations that give space back (unlink, rmdir, truncate, log compaction) still get the log
/// page or the copied page they need on a device that is otherwise full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Normal,
    Reserve,
}

/// The reserve of an allocator over `total` blocks: 1/128 of them, at least 64 and at most
/// 8192 (32 MiB). Enough for the log pages of thousands of unlinks of files that free no block.
pub fn default_reserve(total: u64) -> u64 {
    (total / 128).clamp(64, 8192).min(total / 4)
}

/// The allocator of the data area [first, end).
pub struct Allocator {
    first: u64,
    end: u64,
    stripe_len: u64,
    stripes: Vec<Mutex<FreeList>>,
    /// Blocks free and not claimed by an allocation in progress (never more than the stripes
    /// hold: frees add here after inserting, allocations subtract before taking).
    free: AtomicU64,
    /// Blocks only [`Pool::Reserve`] allocations may take.
    reserve: u64,
}

impl Allocator {
    /// An allocator with nothing free; call [`Allocator::free`] for each free run.
    pub fn new(first: u64, end: u64, cpus: u32) -> Allocator {
        let cpus = cpus.max(1) as u64;
        let stripe_len = ((end - first) / cpus).max(1);
        Allocator {
            first,
            end,
            stripe_len,
            stripes: (0..cpus).map(|_| Mutex::new(FreeList::default())).collect(),
            free: AtomicU64::new(0),
            reserve: 0,
        }
    }

    /// Keep the last `blocks` free blocks for [`Pool::Reserve`] allocations.
    pub fn with_reserve(mut self, blocks: u64) -> Allocator {
        self.reserve = blocks;
        self
    }

    /// Blocks kept for [`Pool::Reserve`].
    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    fn stripe_of(&self, block: u64) -> usize {
        (((block - self.first) / self.stripe_len) as usize).min(self.stripes.len() - 1)
    }

    fn stripe_end(&self, s: usize) -> u64 {
        if s + 1 == self.stripes.len() {
            self.end
        } else {
            self.first + (s as u64 + 1) * self.stripe_len
        }
    }

    /// Blocks free now.
    pub fn free_blocks(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }
    /// Blocks in the data area.
    pub fn total_blocks(&self) -> u64 {
        self.end - self.first
    }
    pub fn data_range(&self) -> (u64, u64) {
        (self.first, self.end)
    }

    /// Return blocks to the free lists (split at stripe boundaries).
    pub fn free(&self, start: u64, len: u64) {
        let mut s = start;
        let end = start + len;
        while s < end {
            if s < self.first || s >= self.end {
                return;
            }
            let idx = self.stripe_of(s);
            let e = end.min(self.stripe_end(idx));
            self.stripes[idx].lock().insert(s, e - s);
            self.free.fetch_add(e - s, Ordering::Relaxed);
            s = e;
        }
    }

    /// Allocate `want` blocks as one or more extents, preferring `cpu`'s stripe.
    /// All or nothing: on ENOSPC nothing stays allocated.
    pub fn alloc(&self, want: u64, cpu: usize) -> Result<Vec<Extent>> {
        self.alloc_from(want, cpu, Pool::Normal)
    }

    /// As [`Allocator::alloc`], from `pool`.
    pub fn alloc_from(&self, want: u64, cpu: usize, pool: Pool) -> Result<Vec<Extent>> {
        let floor = if pool == Pool::Reserve { 0 } else { self.reserve };
        // Claim the count first: threads racing for the last blocks cannot both get them, and
        // a Normal allocation cannot dip into the reserve.
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                f.checked_sub(want).filter(|l| *l >= floor)
            })
            .map_err(|_| Error::NoSpace)?;
        let mut got = Vec::new();
        let mut need = want;
        let n = self.stripes.len();
        // The claimed blocks are in the stripes, but a racing free may put them in a stripe this
        // loop has passed already: go round a few times.
        for i in 0..4 * n {
            let idx = (cpu + i) % n;
            let mut list = self.stripes[idx].lock();
            while need > 0 {
                match list.take(need) {
                    Some(ext) => {
                        need -= ext.len;
                        got.push(ext);
                    }
                    None => break,
                }
            }
            if need == 0 {
                return Ok(got);
            }
        }
        for e in got {
            self.free(e.start, e.len);
        }
        self.free.fetch_add(need, Ordering::AcqRel);
        Err(Error::NoSpace)
    }

    /// Allocate exactly one block.
    pub fn alloc_one(&self, cpu: usize) -> Result<u64> {
        Ok(self.alloc(1, cpu)?[0].start)
    }

    /// Allocate exactly one block from `pool`.
    pub fn alloc_one_from(&self, cpu: usize, pool: Pool) -> Result<u64> {
        Ok(self.alloc_from(1, cpu, pool)?[0].start)
    }

    /// Whether a run is entirely free (for consistency checks).
    pub fn is_free(&self, start: u64, len: u64) -> bool {
        if start < self.first || start + len > self.end {
            return false;
        }
        self.stripes[self.stripe_of(start)].lock().contains(start, len)
    }

    /// Whether any block of [start, start+len) is free (a consistency check on load).
    pub fn any_free(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len).min(self.end);
        let mut s = start.max(self.first);
        while s < end {
            let idx = self.stripe_of(s);
            let e = end.min(self.stripe_end(idx));
            let list = self.stripes[idx].lock();
            if let Some((&rs, &rl)) = list.runs.range(..e).next_back() {
                if rs + rl > s {
                    return true;
                }
            }
            s = e;
        }
        false
    }

    /// Every free run, in block order (for saving at unmount).
    pub fn free_runs(&self) -> Vec<Extent> {
        let mut out: Vec<Extent> = Vec::new();
        for s in &self.stripes {
            for (&start, &len) in s.lock().runs.iter() {
                out.push(Extent { start, len });
            }
        }
        out.sort_by_key(|e| e.start);
        out
    }
}

pub use crate::device::current_cpu;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_from_own_stripe_then_steals_and_coalesces() {
        let a = Allocator::new(100, 200, 2);
        a.free(100, 100);
        assert_eq!(a.free_blocks(), 100);
        let e = a.alloc(10, 1).unwrap();
        assert_eq!(e, vec![Extent { start: 150, len: 10 }]);
        let all = a.alloc(90, 0).unwrap();
        assert_eq!(all.iter().map(|e| e.len).sum::<u64>(), 90);
        assert_eq!(a.free_blocks(), 0);
        assert_eq!(a.alloc(1, 0), Err(Error::NoSpace));
        for e in all.iter().chain(e.iter()) {
            a.free(e.start, e.len);
        }
        assert_eq!(a.free_blocks(), 100);
        assert_eq!(a.free_runs(), vec![Extent { start: 100, len: 50 }, Extent { start: 150, len: 50 }]);
    }

    #[test]
    fn failed_allocation_gives_everything_back() {
        let a = Allocator::new(0, 10, 1);
        a.free(0, 10);
        assert!(a.alloc(11, 0).is_err());
        assert_eq!(a.free_blocks(), 10);
        assert!(a.is_free(0, 10));
    }

    #[test]
    fn reserve_is_left_to_reserve_allocations() {
        let a = Allocator::new(0, 100, 2).with_reserve(10);
        a.free(0, 100);
        assert_eq!(a.alloc(91, 0), Err(Error::NoSpace));
        let most = a.alloc(90, 0).unwrap();
        assert_eq!(a.alloc_one(1), Err(Error::NoSpace));
        let rest = a.alloc_from(10, 1, Pool::Reserve).unwrap();
        assert_eq!(a.free_blocks(), 0);
        for e in most.iter().chain(rest.iter()) {
            a.free(e.start, e.len);
        }
        assert_eq!(a.free_blocks(), 100);
    }

    #[test]
    fn threads_racing_for_the_last_blocks_get_each_exactly_once() {
        let a = std::sync::Arc::new(Allocator::new(0, 1000, 4));
        a.free(0, 1000);
        let got: Vec<Vec<Extent>> = (0..8)
            .map(|t| {
                let a = a.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    while let Ok(e) = a.alloc(1 + t % 3, t as usize) {
                        mine.extend(e);
                    }
                    mine
                })
            })
            .map(|h| h.join().unwrap())
            .collect();
        let mut blocks: Vec<u64> = got.iter().flatten().flat_map(|e| e.start..e.start + e.len).collect();
        blocks.sort_unstable();
        let n = blocks.len();
        blocks.dedup();
        assert_eq!(blocks.len(), n, "a block was handed out twice");
        assert_eq!(n, 1000, "every block is handed out once the racing is over");
        assert_eq!(a.free_blocks(), 0);
    }
}
