//! A file's block map (kept in DRAM, rebuilt from the log): file page -> PM block, as extents.

use std::collections::BTreeMap;

use crate::alloc::Extent;

/// Longest run one map entry holds, in pages (64 GiB): a run's length shares a word with its
/// first block, so an entry is 16 bytes (`make bench` measures DRAM per extent). Longer
/// contiguous mappings are kept as several runs; the largest a log entry can name (2^32
/// pages) takes 256.
pub const MAX_RUN: u64 = (1 << RUN_BITS) - 1;
const RUN_BITS: u32 = 24;
/// Blocks below this fit a run's word: 2^40 blocks, 4 PiB, far more than any PM device.
pub const BLOCK_LIMIT: u64 = 1 << (64 - RUN_BITS);

/// A run: its first block and its length in pages, packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run(u64);

impl Run {
    fn new(block: u64, pages: u64) -> Run {
        debug_assert!(block < BLOCK_LIMIT && (1..=MAX_RUN).contains(&pages));
        Run(block << RUN_BITS | pages)
    }
    fn block(self) -> u64 {
        self.0 >> RUN_BITS
    }
    fn pages(self) -> u64 {
        self.0 & MAX_RUN
    }
}

/// Mapped runs of a file: start page -> run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtentMap {
    runs: BTreeMap<u64, Run>,
    mapped: u64,
}

/// The mapped pieces of a range (see [`ExtentMap::mappings`]).
pub type Mappings = smallvec::SmallVec<[Mapping; 4]>;

/// One mapped piece of a range: `pages` pages from file page `page` live from `block` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub page: u64,
    pub block: u64,
    pub pages: u64,
}

impl ExtentMap {
    /// Pages mapped in all.
    pub fn mapped_pages(&self) -> u64 {
        self.mapped
    }
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// The block backing `page`, if any.
    pub fn lookup(&self, page: u64) -> Option<u64> {
        let (&s, &r) = self.runs.range(..=page).next_back()?;
        (page < s + r.pages()).then(|| r.block() + (page - s))
    }

    /// Unmap [page, page+count); returns the blocks that were mapped there.
    pub fn remove(&mut self, page: u64, count: u64) -> Vec<Extent> {
        let mut freed = Vec::new();
        self.remove_with(page, count, &mut |x| freed.push(x));
        freed
    }

    /// As [`ExtentMap::remove`], handing each unmapped extent to `freed` instead of
    /// collecting them (the write path frees them at once, with no vector per write).
    pub fn remove_with(&mut self, page: u64, count: u64, freed: &mut impl FnMut(Extent)) {
        // Nothing to unmap; going on would split the run around `page` for nothing.
        if count == 0 {
            return;
        }
        let end = page.saturating_add(count);
        let keys: Vec<u64> = self
            .runs
            .range(..end)
            .rev()
            .take_while(|(&s, r)| s + r.pages() > page || s >= page)
            .map(|(&s, _)| s)
            .collect();
        for s in keys {
            let r = self.runs[&s];
            let (b, n) = (r.block(), r.pages());
            if s + n <= page {
                continue;
            }
            self.runs.remove(&s);
            let cut_start = s.max(page);
            let cut_end = (s + n).min(end);
            if s < cut_start {
                self.runs.insert(s, Run::new(b, cut_start - s));
            }
            if cut_end < s + n {
                self.runs.insert(cut_end, Run::new(b + (cut_end - s), s + n - cut_end));
            }
            freed(Extent { start: b + (cut_start - s), len: cut_end - cut_start });
            self.mapped -= cut_end - cut_start;
        }
    }

    /// Map [page, page+count) to blocks [block, block+count); returns blocks it replaced.
    /// The caller keeps `block + count` below [`BLOCK_LIMIT`] (log replay refuses more).
    pub fn insert(&mut self, page: u64, block: u64, count: u64) -> Vec<Extent> {
        let mut freed = Vec::new();
        self.insert_with(page, block, count, &mut |x| freed.push(x));
        freed
    }

    /// As [`ExtentMap::insert`], handing each replaced extent to `freed`.
    pub fn insert_with(&mut self, page: u64, block: u64, count: u64, freed: &mut impl FnMut(Extent)) {
        // A damaged log can hold a write of no blocks: mapping it would leave an empty run.
        if count == 0 {
            return;
        }
        if let Some(old) = self.replace_run(page, block, count) {
            freed(old);
            return;
        }
        self.remove_with(page, count, freed);
        let mut start = page;
        let mut blk = block;
        let mut len = count;
        if let Some((&ps, &pr)) = self.runs.range(..page).next_back() {
            let (pb, pn) = (pr.block(), pr.pages());
            if ps + pn == page && pb + pn == block && pn + len <= MAX_RUN {
                self.runs.remove(&ps);
                start = ps;
                blk = pb;
                len += pn;
            }
        }
        if let Some(&nr) = self.runs.get(&(page + count)) {
            if nr.block() == block + count && len + nr.pages() <= MAX_RUN {
                self.runs.remove(&(page + count));
                len += nr.pages();
            }
        }
        while len > 0 {
            let n = len.min(MAX_RUN);
            self.runs.insert(start, Run::new(blk, n));
            start += n;
            blk += n;
            len -= n;
        }
        self.mapped += count;
    }

    /// The common case of random overwrites once a file's map is fragmented: [page, page+count)
    /// is exactly one run, and the new blocks join neither neighbour. Then the run's blocks are
    /// replaced in place, through the mutable reference the range walk hands out: one tree
    /// descent in all, instead of the general path's removal, splits and merge lookups (about
    /// ten). Returns the blocks replaced; None: take the general path (whose result this one
    /// equals whenever it applies).
    fn replace_run(&mut self, page: u64, block: u64, count: u64) -> Option<Extent> {
        let end = page.checked_add(count)?;
        let mut before = self.runs.range_mut(..=end).rev();
        let (&k, v) = before.next()?;
        let (next, cur_start, cur) = if k == end {
            let next = *v;
            let (&ck, cv) = before.next()?;
            (Some(next), ck, cv)
        } else {
            (None, k, v)
        };
        if count == 0 || cur_start != page || cur.pages() != count {
            return None;
        }
        if let Some((&ps, pr)) = before.next() {
            if ps + pr.pages() == page && pr.block() + pr.pages() == block && pr.pages() + count <= MAX_RUN {
                return None;
            }
        }
        if next.is_some_and(|nr| nr.block() == block + count && nr.pages() + count <= MAX_RUN) {
            return None;
        }
        let old = cur.block();
        *cur = Run::new(block, count);
        Some(Extent { start: old, len: count })
    }

    /// The mapped pieces inside [page, page+count), in order. Inline for the usual few (a
    /// read of a page or two): no heap allocation per read.
    pub fn mappings(&self, page: u64, count: u64) -> Mappings {
        let end = page.saturating_add(count);
        let mut out = Mappings::new();
        // Backwards from the last run that starts before `end`: one tree descent. Runs do not
        // overlap, so none before the first one that starts at or before `page` reaches it.
        for (&s, r) in self.runs.range(..end).rev() {
            let lo = s.max(page);
            let hi = (s + r.pages()).min(end);
            if lo < hi {
                out.push(Mapping { page: lo, block: r.block() + (lo - s), pages: hi - lo });
            }
            if s <= page {
                break;
            }
        }
        out.reverse();
        out
    }

    /// Every run, in page order.
    pub fn all(&self) -> Vec<Mapping> {
        self.runs.iter().map(|(&s, r)| Mapping { page: s, block: r.block(), pages: r.pages() }).collect()
    }

    /// Every run, in page order, with runs that continue each other (kept apart only by
    /// [`MAX_RUN`]) joined: what a person reading a report wants to see.
    pub fn all_joined(&self) -> Vec<Mapping> {
        let mut out: Vec<Mapping> = Vec::new();
        for m in self.all() {
            match out.last_mut() {
                Some(l) if l.page + l.pages == m.page && l.block + l.pages == m.block => l.pages += m.pages,
                _ => out.push(m),
            }
        }
        out
    }

    /// The mapped pieces from the one holding `page` (or the first after it) on, in order,
    /// with pieces that continue each other joined, at most `max` of them (fiemap); true when
    /// more follow.
    pub fn joined_from(&self, page: u64, max: usize) -> (Vec<Mapping>, bool) {
        use std::ops::Bound::{Excluded, Unbounded};
        let holding = self.runs.range(..=page).next_back().filter(|(&s, r)| page < s + r.pages());
        let after = self.runs.range((Excluded(page), Unbounded));
        let mut out: Vec<Mapping> = Vec::new();
        for (&s, r) in holding.into_iter().chain(after) {
            let m = Mapping { page: s, block: r.block(), pages: r.pages() };
            let full = out.len() == max;
            match out.last_mut() {
                Some(l) if l.page + l.pages == m.page && l.block + l.pages == m.block => l.pages += m.pages,
                _ if full => return (out, true),
                _ => out.push(m),
            }
        }
        (out, false)
    }

    /// First mapped page at or after `page`.
    pub fn next_mapped(&self, page: u64) -> Option<u64> {
        if self.lookup(page).is_some() {
            return Some(page);
        }
        self.runs.range(page..).next().map(|(&s, _)| s)
    }

    /// First unmapped page at or after `page`.
    pub fn next_hole(&self, page: u64) -> u64 {
        let mut p = page;
        while let Some((&s, r)) = self.runs.range(..=p).next_back() {
            if p < s + r.pages() {
                p = s + r.pages();
            } else {
                break;
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_and_overwrite_returns_old_blocks() {
        let mut m = ExtentMap::default();
        assert!(m.insert(0, 100, 4).is_empty());
        assert!(m.insert(4, 104, 2).is_empty());
        assert_eq!(m.run_count(), 1);
        let freed = m.insert(2, 500, 2);
        assert_eq!(freed, vec![Extent { start: 102, len: 2 }]);
        assert_eq!(m.lookup(1), Some(101));
        assert_eq!(m.lookup(2), Some(500));
        assert_eq!(m.lookup(4), Some(104));
        assert_eq!(m.lookup(6), None);
        assert_eq!(m.mapped_pages(), 6);
    }

    /// The in-place replacement of a whole run gives the map and the freed blocks the general
    /// path gives: checked against a page -> block model over random overwrites.
    #[test]
    fn overwrite_of_a_whole_run_matches_the_general_path() {
        use std::collections::BTreeMap as Model;
        let mut m = ExtentMap::default();
        let mut model: Model<u64, u64> = Model::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next_block = 1000;
        for round in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let page = x % 64;
            let count = if round % 3 == 0 { 1 + (x >> 20) % 4 } else { 1 };
            // Sometimes continue the previous allocation, or end just where the next page's
            // block starts, so that merges with either neighbour happen too.
            let block = match ((x >> 40) % 4, model.get(&(page + count))) {
                (0, _) => next_block,
                (1, Some(&b)) if b >= count => b - count,
                _ => next_block + 7,
            };
            next_block = next_block.max(block + count);
            let mut freed: Vec<u64> =
                m.insert(page, block, count).iter().flat_map(|e| e.start..e.start + e.len).collect();
            freed.sort_unstable();
            let mut want: Vec<u64> = (page..page + count).filter_map(|p| model.get(&p).copied()).collect();
            want.sort_unstable();
            assert_eq!(freed, want, "round {round}");
            for p in page..page + count {
                model.insert(p, block + (p - page));
            }
            // Canonical runs of the model: adjacent pages with consecutive blocks merge.
            let mut runs: Vec<Mapping> = Vec::new();
            for (&p, &b) in &model {
                match runs.last_mut() {
                    Some(r) if r.page + r.pages == p && r.block + r.pages == b => r.pages += 1,
                    _ => runs.push(Mapping { page: p, block: b, pages: 1 }),
                }
            }
            assert_eq!(m.all(), runs, "round {round}");
            assert_eq!(m.mapped_pages(), model.len() as u64);
            // mappings() of a random range: the model's pages in it, as maximal pieces.
            let (lo, len) = ((x >> 8) % 70, (x >> 16) % 12);
            let got: Vec<(u64, u64)> = m
                .mappings(lo, len)
                .iter()
                .flat_map(|r| (0..r.pages).map(move |i| (r.page + i, r.block + i)))
                .collect();
            let want: Vec<(u64, u64)> = model.range(lo..lo + len).map(|(&p, &b)| (p, b)).collect();
            assert_eq!(got, want, "round {round}: mappings({lo}, {len})");
        }
    }

    #[test]
    fn remove_splits_runs_and_holes_are_found() {
        let mut m = ExtentMap::default();
        m.insert(10, 1000, 10);
        let freed = m.remove(12, 3);
        assert_eq!(freed, vec![Extent { start: 1002, len: 3 }]);
        assert_eq!(m.mapped_pages(), 7);
        assert_eq!(m.next_hole(10), 12);
        assert_eq!(m.next_mapped(12), Some(15));
        assert_eq!(m.next_mapped(20), None);
        assert_eq!(
            m.mappings(11, 6).as_slice(),
            [Mapping { page: 11, block: 1001, pages: 1 }, Mapping { page: 15, block: 1005, pages: 2 }]
        );
        let all = m.remove(0, u64::MAX);
        assert_eq!(all.iter().map(|e| e.len).sum::<u64>(), 7);
        assert_eq!(m.mapped_pages(), 0);
    }

    #[test]
    fn a_mapping_longer_than_a_run_is_kept_as_several() {
        let mut m = ExtentMap::default();
        let n = 3 * MAX_RUN + 10;
        m.insert(5, 1 << 30, n);
        assert_eq!(m.run_count(), 4);
        assert_eq!(m.mapped_pages(), n);
        assert_eq!(m.lookup(5 + n - 1), Some((1 << 30) + n - 1));
        assert_eq!(m.next_hole(5), 5 + n);
        assert_eq!(m.mappings(0, u64::MAX).iter().map(|r| r.pages).sum::<u64>(), n);
        let freed = m.remove(6, n - 2);
        assert_eq!(freed.iter().map(|e| e.len).sum::<u64>(), n - 2);
        assert_eq!(
            m.all().iter().map(|r| (r.page, r.pages)).collect::<Vec<_>>(),
            vec![(5, 1), (5 + n - 1, 1)]
        );
    }

    #[test]
    fn joined_from_joins_stops_at_max_and_says_more_follow() {
        let mut m = ExtentMap::default();
        m.insert(0, 100, 2);
        m.insert(2, 102, 2); // continues the first run on the device: joined
        m.insert(10, 500, 1);
        m.insert(20, 600, 3);
        let (all, more) = m.joined_from(0, 10);
        assert!(!more);
        assert_eq!(
            all,
            vec![
                Mapping { page: 0, block: 100, pages: 4 },
                Mapping { page: 10, block: 500, pages: 1 },
                Mapping { page: 20, block: 600, pages: 3 }
            ]
        );
        // From inside a run: that run whole; from a hole: the next one.
        assert_eq!(m.joined_from(21, 10).0, vec![Mapping { page: 20, block: 600, pages: 3 }]);
        assert_eq!(m.joined_from(5, 1), (vec![Mapping { page: 10, block: 500, pages: 1 }], true));
        assert_eq!(m.joined_from(23, 10), (vec![], false));
    }
}
