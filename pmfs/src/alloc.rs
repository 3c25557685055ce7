//! Block allocator (kept in DRAM): the data area is split into stripes, each with its own
//! free-extent list behind its own lock, so CPUs allocate without contending. On one device
//! there is one stripe per CPU. On a device set each member's data area is on one NUMA node
//! and is split among that node's CPUs: a CPU allocates from its own stripe, then from the
//! other stripes of its node, and only then spills to other nodes, nearest first, which is
//! counted per node ([`NodeStats`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::free_count::FreeCount;

/// The extents of one allocation: almost always one or two, kept inline (no heap allocation
/// per write).
pub type Extents = smallvec::SmallVec<[Extent; 2]>;

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
    /// (length, start) of every run longer than one block: a multi-block allocation finds the
    /// shortest run that holds it without walking the one-block holes an aged filesystem is
    /// full of (that walk cost 0.6 ms per 64 KiB write among 50,000 holes). One-block runs
    /// stay out, so the usual 4 KiB overwrite (free one block, take one) never touches it.
    long: BTreeSet<(u64, u64)>,
    /// Blocks freed one at a time and not yet put in `runs` (at most [`SINGLES`]): a 4 KiB
    /// overwrite frees the old block and takes a new one, and a stack makes that pair two
    /// pushes and pops instead of two tree updates. They are not coalesced while they wait;
    /// everything that reads the whole list settles them into `runs` first.
    singles: Vec<u64>,
}

/// How many freed blocks a stripe keeps on its stack before they go to the tree.
const SINGLES: usize = 256;

impl FreeList {
    fn add_run(&mut self, start: u64, len: u64) {
        self.runs.insert(start, len);
        if len > 1 {
            self.long.insert((len, start));
        }
    }

    fn remove_run(&mut self, start: u64, len: u64) {
        self.runs.remove(&start);
        if len > 1 {
            self.long.remove(&(len, start));
        }
    }

    fn insert(&mut self, start: u64, len: u64) {
        let mut start = start;
        let mut len = len;
        if let Some((&ps, &pl)) = self.runs.range(..start).next_back() {
            if ps + pl == start {
                self.remove_run(ps, pl);
                start = ps;
                len += pl;
            }
        }
        if let Some(&nl) = self.runs.get(&(start + len)) {
            self.remove_run(start + len, nl);
            len += nl;
        }
        self.add_run(start, len);
    }

    /// Give back one block: onto the stack while it has room, else into the tree.
    fn insert_one(&mut self, block: u64) {
        if self.singles.len() < SINGLES {
            self.singles.push(block);
        } else {
            self.insert(block, 1);
        }
    }

    /// Put the stacked blocks into `runs`, coalesced.
    fn settle(&mut self) {
        while let Some(b) = self.singles.pop() {
            self.insert(b, 1);
        }
    }

    /// Take up to `want` blocks from one run: one block from the stack of freed blocks, else
    /// from the lowest run; more from the shortest run that holds them all (the lowest of
    /// equals), else from the longest, else one stacked block.
    fn take(&mut self, want: u64) -> Option<Extent> {
        if want <= 1 {
            if let Some(b) = self.singles.pop() {
                return Some(Extent { start: b, len: 1 });
            }
        }
        let lowest = |runs: &BTreeMap<u64, u64>| runs.iter().next().map(|(&s, &l)| (s, l));
        let stacked = |singles: &mut Vec<u64>| singles.pop().map(|b| Extent { start: b, len: 1 });
        let (s, l) = if want <= 1 {
            match lowest(&self.runs) {
                Some(run) => run,
                None => return stacked(&mut self.singles),
            }
        } else {
            match self.long.range((want, 0)..).next().or_else(|| self.long.iter().next_back()) {
                Some(&(l, s)) => (s, l),
                None => match lowest(&self.runs) {
                    Some(run) => run, // one-block runs only
                    None => return stacked(&mut self.singles),
                },
            }
        };
        self.remove_run(s, l);
        let n = l.min(want);
        if l > n {
            self.add_run(s + n, l - n);
        }
        Some(Extent { start: s, len: n })
    }

    /// Whether [start, start+len) is all free.
    fn contains(&mut self, start: u64, len: u64) -> bool {
        self.settle();
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

/// Part of the data area on one NUMA node (a device set member's data blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    pub start: u64,
    pub end: u64,
    pub node: u32,
}

/// Per NUMA node: its blocks and where its CPUs' allocations went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    pub node: u32,
    /// Data blocks on this node, and how many are free now.
    pub blocks: u64,
    pub free: u64,
    /// Blocks this node's CPUs allocated on this node ...
    pub local: u64,
    /// ... and on another node, because this one had none left (spills).
    pub spilled: u64,
}

struct Stripe {
    start: u64,
    end: u64,
    /// Index into `nodes`.
    node: usize,
    list: Mutex<FreeList>,
}

/// Where one CPU's allocations went, on cache lines of its own (every allocation counts
/// itself here: a counter shared by the CPUs would move between them on each one).
#[repr(align(128))]
#[derive(Default)]
struct CpuPlacement {
    local: AtomicU64,
    spilled: AtomicU64,
}

/// The allocator of the data area.
pub struct Allocator {
    first: u64,
    end: u64,
    /// In block order, not overlapping (gaps between areas belong to no stripe).
    stripes: Vec<Stripe>,
    /// The ids of the NUMA nodes with data areas (a stripe's `node` indexes this).
    nodes: Vec<u32>,
    /// Per CPU (modulo the length): the stripes to try, in order.
    order: Vec<Vec<usize>>,
    /// Per CPU, as `order`.
    placement: Box<[CpuPlacement]>,
    /// Blocks free and not claimed by an allocation in progress (never more than the stripes
    /// hold: frees add here after inserting, allocations subtract before taking), and the
    /// reserve that only [`Pool::Reserve`] allocations may take.
    free: FreeCount,
}

impl Allocator {
    /// An allocator over one device's data area [first, end), one stripe per CPU, with
    /// nothing free; call [`Allocator::free`] for each free run.
    pub fn new(first: u64, end: u64, cpus: u32) -> Allocator {
        let cpus = cpus.max(1) as u64;
        let len = ((end - first) / cpus).max(1);
        let mut stripes = Vec::new();
        for c in 0..cpus {
            let s = first + c * len;
            if s >= end {
                break;
            }
            let e = if c + 1 == cpus { end } else { (s + len).min(end) };
            stripes.push(Stripe { start: s, end: e, node: 0, list: Mutex::new(FreeList::default()) });
        }
        let n = stripes.len();
        let order = (0..n).map(|c| (0..n).map(|i| (c + i) % n).collect()).collect();
        Allocator::assemble(first, end, stripes, vec![0], order)
    }

    /// An allocator over areas on NUMA nodes: each area is split among the CPUs `numa` puts
    /// on its node. A CPU on a node without an area uses the nearest one that has.
    pub fn with_areas(areas: &[Area], numa: &crate::numa::NumaMap) -> Allocator {
        let mut areas = areas.to_vec();
        areas.sort_by_key(|a| a.start);
        let mut node_ids: Vec<u32> = areas.iter().map(|a| a.node).collect();
        node_ids.sort_unstable();
        node_ids.dedup();
        let cpus = numa.cpu_node.len().max(1);
        // Each CPU's home node: its own if it has an area, else the nearest that has.
        let home: Vec<usize> = (0..cpus)
            .map(|c| {
                let want = numa.node_of(c);
                (0..node_ids.len())
                    .min_by_key(|&i| (numa.distance(want, node_ids[i]), node_ids[i]))
                    .unwrap_or(0)
            })
            .collect();
        let mut stripes = Vec::new();
        for a in &areas {
            let node = node_ids.iter().position(|&n| n == a.node).unwrap_or(0);
            let k = (home.iter().filter(|&&h| h == node).count().max(1) as u64).min(a.end - a.start).max(1);
            let len = (a.end - a.start) / k;
            for j in 0..k {
                let s = a.start + j * len;
                let e = if j + 1 == k { a.end } else { s + len };
                stripes.push(Stripe { start: s, end: e, node, list: Mutex::new(FreeList::default()) });
            }
        }
        let order = (0..cpus)
            .map(|c| {
                let node = home[c];
                let mine: Vec<usize> = (0..stripes.len()).filter(|&i| stripes[i].node == node).collect();
                // The CPU's rank among its node's CPUs picks its own stripe.
                let rank = (0..c).filter(|&o| home[o] == node).count();
                let mut v: Vec<usize> = (0..mine.len()).map(|i| mine[(rank + i) % mine.len()]).collect();
                let mut others: Vec<usize> =
                    (0..stripes.len()).filter(|&i| stripes[i].node != node).collect();
                others.sort_by_key(|&i| numa.distance(node_ids[node], node_ids[stripes[i].node]));
                v.extend(others);
                v
            })
            .collect();
        let first = areas.first().map_or(0, |a| a.start);
        let end = areas.last().map_or(0, |a| a.end);
        Allocator::assemble(first, end, stripes, node_ids, order)
    }

    fn assemble(
        first: u64,
        end: u64,
        stripes: Vec<Stripe>,
        nodes: Vec<u32>,
        order: Vec<Vec<usize>>,
    ) -> Allocator {
        let cpus = order.len();
        let placement = (0..cpus).map(|_| CpuPlacement::default()).collect();
        Allocator { first, end, stripes, nodes, order, placement, free: FreeCount::new(cpus) }
    }

    /// The node (index into `nodes`) a CPU allocates on first.
    fn home(&self, cpu: usize) -> usize {
        self.stripes[self.order[cpu % self.order.len()][0]].node
    }

    /// NUMA nodes with data areas.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Per node: blocks, free blocks, local and spilled allocations since mount.
    pub fn node_stats(&self) -> Vec<NodeStats> {
        let mut out: Vec<NodeStats> =
            self.nodes.iter().map(|&id| NodeStats { node: id, ..Default::default() }).collect();
        for (cpu, p) in self.placement.iter().enumerate() {
            let n = &mut out[self.home(cpu)];
            n.local += p.local.load(Ordering::Relaxed);
            n.spilled += p.spilled.load(Ordering::Relaxed);
        }
        for s in &self.stripes {
            out[s.node].blocks += s.end - s.start;
            let mut list = s.list.lock();
            list.settle();
            out[s.node].free += list.runs.values().sum::<u64>();
        }
        out
    }

    /// Keep the last `blocks` free blocks for [`Pool::Reserve`] allocations.
    pub fn with_reserve(mut self, blocks: u64) -> Allocator {
        self.free.set_reserve(blocks);
        self
    }

    /// Blocks kept for [`Pool::Reserve`].
    pub fn reserve(&self) -> u64 {
        self.free.reserve()
    }

    /// The stripe holding `block`, if any (blocks between areas belong to none).
    fn stripe_of(&self, block: u64) -> Option<usize> {
        let i = self.stripes.partition_point(|s| s.start <= block).checked_sub(1)?;
        (block < self.stripes[i].end).then_some(i)
    }

    /// Blocks free now.
    pub fn free_blocks(&self) -> u64 {
        self.free.total()
    }
    /// Blocks in the data area.
    pub fn total_blocks(&self) -> u64 {
        self.stripes.iter().map(|s| s.end - s.start).sum()
    }
    /// From the first data block to past the last (areas of a device set have gaps between).
    pub fn data_range(&self) -> (u64, u64) {
        (self.first, self.end)
    }
    /// The data areas, in block order, merged where they touch.
    pub fn areas(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for s in &self.stripes {
            match out.last_mut() {
                Some(last) if last.1 == s.start => last.1 = s.end,
                _ => out.push((s.start, s.end)),
            }
        }
        out
    }

    /// Return blocks to the free lists (split at stripe boundaries; blocks outside every
    /// stripe are ignored).
    pub fn free(&self, start: u64, len: u64) {
        let mut s = start;
        let end = start.saturating_add(len);
        while s < end {
            let Some(idx) = self.stripe_of(s) else {
                // Skip to the next stripe's start, if any lies in the range.
                match self.stripes.iter().find(|st| st.start > s) {
                    Some(next) => s = next.start,
                    None => return,
                }
                continue;
            };
            let e = end.min(self.stripes[idx].end);
            let mut list = self.stripes[idx].list.lock();
            if e - s == 1 {
                list.insert_one(s);
            } else {
                list.insert(s, e - s);
            }
            drop(list);
            self.free.add(current_cpu(), e - s);
            s = e;
        }
    }

    /// Allocate `want` blocks as one or more extents, preferring `cpu`'s stripe.
    /// All or nothing: on ENOSPC nothing stays allocated.
    pub fn alloc(&self, want: u64, cpu: usize) -> Result<Extents> {
        self.alloc_from(want, cpu, Pool::Normal)
    }

    /// As [`Allocator::alloc`], from `pool`.
    pub fn alloc_from(&self, want: u64, cpu: usize, pool: Pool) -> Result<Extents> {
        // Claim the count first: threads racing for the last blocks cannot both get them, and
        // a Normal allocation cannot dip into the reserve.
        if !self.free.claim(cpu, want, pool == Pool::Reserve) {
            return Err(Error::NoSpace);
        }
        let mut got = Extents::new();
        let mut need = want;
        let order = &self.order[cpu % self.order.len()];
        let home = self.home(cpu);
        let n = order.len();
        // The claimed blocks are in the stripes, but a racing free may put them in a stripe this
        // loop has passed already: go round a few times.
        for i in 0..4 * n {
            let idx = order[i % n];
            let mut list = self.stripes[idx].list.lock();
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
                drop(list);
                let placed = &self.placement[cpu % self.placement.len()];
                for e in &got {
                    let node = self.stripes[self.stripe_of(e.start).unwrap_or(0)].node;
                    let counter = if node == home { &placed.local } else { &placed.spilled };
                    counter.fetch_add(e.len, Ordering::Relaxed);
                }
                return Ok(got);
            }
        }
        for e in got {
            self.free(e.start, e.len);
        }
        self.free.add(cpu, need);
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
        match self.stripe_of(start) {
            Some(i) => self.stripes[i].list.lock().contains(start, len),
            None => false,
        }
    }

    /// Whether any block of [start, start+len) is free (a consistency check on load).
    pub fn any_free(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        self.stripes.iter().filter(|st| st.start < end && start < st.end).any(|st| {
            let (s, e) = (start.max(st.start), end.min(st.end));
            let mut list = st.list.lock();
            list.settle();
            matches!(list.runs.range(..e).next_back(), Some((&rs, &rl)) if rs + rl > s)
        })
    }

    /// Every free run, in block order (for saving at unmount).
    pub fn free_runs(&self) -> Vec<Extent> {
        let mut out: Vec<Extent> = Vec::new();
        for s in &self.stripes {
            let mut list = s.list.lock();
            list.settle();
            for (&start, &len) in list.runs.iter() {
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
        assert_eq!(e.as_slice(), [Extent { start: 150, len: 10 }]);
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

    /// The length index holds exactly the runs longer than one block.
    fn index_matches(l: &FreeList) -> bool {
        let want: BTreeSet<(u64, u64)> =
            l.runs.iter().filter(|(_, &n)| n > 1).map(|(&s, &n)| (n, s)).collect();
        l.long == want
    }

    #[test]
    fn a_multi_block_take_skips_one_block_holes_for_the_shortest_run_that_fits() {
        let mut l = FreeList::default();
        for b in (0..2000).step_by(2) {
            l.insert(b, 1); // an aged filesystem: every other block free
        }
        l.insert(5000, 64);
        l.insert(3000, 20);
        l.insert(4000, 16);
        assert!(index_matches(&l));
        assert_eq!(l.take(16), Some(Extent { start: 4000, len: 16 }));
        assert_eq!(l.take(16), Some(Extent { start: 3000, len: 16 }));
        assert_eq!(l.take(1), Some(Extent { start: 0, len: 1 }));
        assert_eq!(l.take(100), Some(Extent { start: 5000, len: 64 })); // none fits: the longest
        assert_eq!(l.take(8), Some(Extent { start: 3016, len: 4 }));
        assert!(index_matches(&l));
        l.insert(3000, 16); // 3016..3020 went too: a run of its own again
        l.insert(1, 1); // 0 is taken; it joins the hole at 2
        assert!(index_matches(&l));
        assert_eq!(l.runs.get(&1), Some(&2));
    }

    #[test]
    fn blocks_freed_one_at_a_time_are_reused_first_and_coalesce_when_read() {
        let a = Allocator::new(0, 1000, 1);
        a.free(0, 1000);
        let blocks: Vec<u64> = (0..10).map(|_| a.alloc_one(0).unwrap()).collect();
        assert_eq!(blocks, (0..10).collect::<Vec<_>>());
        a.free(7, 1);
        a.free(3, 1);
        assert_eq!(a.alloc_one(0), Ok(3), "the last block freed is the next one taken");
        a.free(3, 1);
        for b in [4, 5, 6] {
            a.free(b, 1);
        }
        assert!(a.is_free(3, 5));
        assert!(!a.is_free(2, 2));
        assert_eq!(a.free_blocks(), 995);
        assert_eq!(a.free_runs(), vec![Extent { start: 3, len: 5 }, Extent { start: 10, len: 990 }]);
        // Only stacked blocks left: a multi-block allocation still gets them, one by one.
        let b = Allocator::new(0, 10, 1);
        for x in [1, 3, 5] {
            b.free(x, 1);
        }
        let got = b.alloc(3, 0).unwrap();
        let mut starts: Vec<u64> = got.iter().map(|e| e.start).collect();
        starts.sort_unstable();
        assert_eq!(starts, [1, 3, 5]);
        assert_eq!(b.alloc(1, 0), Err(Error::NoSpace));
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
