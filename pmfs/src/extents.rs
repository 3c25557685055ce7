//! A file's block map (kept in DRAM, rebuilt from the log): file page -> PM block, as runs.
//!
//! Two levels, so that finding a page costs a cache miss or two whatever the file's size or
//! fragmentation (a write looks up its page once): chunks of 512 pages (2 MiB) by number, each a
//! sorted array of its runs packed in 8 bytes, searched by halving. A fully fragmented 256 MiB
//! file is 128 chunks of 512 runs (4 KiB each); a general B-tree of its 65,536 runs cost a
//! descent of 160-220 ns, most of a write's time outside the persistence floor (docs/BENCHMARKS.md).
//! Runs never cross a chunk's edge; what the map hands out (`mappings`, `all`, `joined_from`)
//! joins runs that continue each other again. Chunk 0 lives inline, so a file under 2 MiB (most
//! files) costs one small allocation and no tree; an empty file costs nothing but a null pointer.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use crate::alloc::Extent;

const CHUNK_BITS: u32 = 9;
const CHUNK_PAGES: u64 = 1 << CHUNK_BITS;

/// Longest piece the map hands out, in pages: a log Write entry's count is 32 bits.
pub const MAX_RUN: u64 = u32::MAX as u64;
/// Blocks below this fit a run's word: 2^40 blocks, 4 PiB, far more than any PM device.
pub const BLOCK_LIMIT: u64 = 1 << 40;

/// A run inside a chunk, packed so that runs sort by their offset: offset in the chunk (9
/// bits), length - 1 (9 bits), first block (46 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run(u64);

const BLOCK_BITS: u32 = 46;

impl Run {
    fn new(off: u64, block: u64, pages: u64) -> Run {
        debug_assert!(off < CHUNK_PAGES && (1..=CHUNK_PAGES - off).contains(&pages) && block < BLOCK_LIMIT);
        Run(off << (BLOCK_BITS + CHUNK_BITS) | (pages - 1) << BLOCK_BITS | block)
    }
    fn off(self) -> u64 {
        self.0 >> (BLOCK_BITS + CHUNK_BITS)
    }
    fn pages(self) -> u64 {
        (self.0 >> BLOCK_BITS & (CHUNK_PAGES - 1)) + 1
    }
    fn block(self) -> u64 {
        self.0 & ((1 << BLOCK_BITS) - 1)
    }
    fn end(self) -> u64 {
        self.off() + self.pages()
    }
    /// `next` starts where this run ends, on the page and on the device.
    fn continued_by(self, next: Run) -> bool {
        self.end() == next.off() && self.block() + self.pages() == next.block()
    }
}

/// One chunk's runs, in order, never overlapping, adjacent ones joined when they continue each
/// other. Inline when it holds one run (a contiguous stretch of a file).
type Chunk = SmallVec<[Run; 1]>;

/// Mapped runs of a file; None while nothing is mapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtentMap(Option<Box<Chunks>>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Chunks {
    /// Pages 0..512: every file with data has them, usually only them.
    first: Chunk,
    /// Chunks 1.. that hold a run, by number.
    rest: BTreeMap<u64, Chunk>,
    /// Pages mapped (low 33 bits: a file has at most 2^32 pages) and runs held (high 31 bits,
    /// saturating: only log compaction's estimate of a snapshot reads it). One word, so that an
    /// inode's map is a pointer and the whole map one allocation.
    counts: u64,
}

const MAPPED_BITS: u32 = 33;
const MAPPED_MASK: u64 = (1 << MAPPED_BITS) - 1;
const RUNS_MAX: u64 = (1 << (64 - MAPPED_BITS)) - 1;

/// The mapped pieces of a range (see [`ExtentMap::mappings`]).
pub type Mappings = SmallVec<[Mapping; 4]>;

/// One mapped piece of a range: `pages` pages from file page `page` live from `block` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub page: u64,
    pub block: u64,
    pub pages: u64,
}

impl Mapping {
    fn end(&self) -> u64 {
        self.page + self.pages
    }
    /// Extend this piece by `next` when it continues it on the page and on the device.
    fn join(&mut self, next: &Mapping) -> bool {
        let joins = self.end() == next.page
            && self.block + self.pages == next.block
            && self.pages + next.pages <= MAX_RUN;
        if joins {
            self.pages += next.pages;
        }
        joins
    }
}

fn push_joined<A: smallvec::Array<Item = Mapping>>(out: &mut SmallVec<A>, m: Mapping) {
    if !out.last_mut().is_some_and(|l| l.join(&m)) {
        out.push(m);
    }
}

/// The index of the first run of `chunk` that ends after offset `lo` (chunk.len() if none).
/// Runs are sorted and disjoint inside 512 pages, so in a fragmented chunk the one for `lo`
/// sits near index lo * len / 512: that guess is probed first (one cache line; in a fully
/// fragmented chunk it is always right), and halving only runs when it misses.
fn first_ending_after(chunk: &[Run], lo: u64) -> usize {
    let g = (lo as usize * chunk.len()) >> CHUNK_BITS;
    if chunk.get(g).is_some_and(|r| r.end() > lo) && (g == 0 || chunk[g - 1].end() <= lo) {
        return g;
    }
    chunk.partition_point(|r| r.end() <= lo)
}

/// Put a run of first block `new` over offsets [lo, hi) of `chunk`, or leave them unmapped
/// (None). The blocks that were mapped there go to `freed`; returns how many pages that was.
fn splice(chunk: &mut Chunk, lo: u64, hi: u64, new: Option<u64>, freed: &mut impl FnMut(Extent)) -> u64 {
    // Runs i..j overlap [lo, hi).
    let i = first_ending_after(chunk, lo);
    let j = i + chunk[i..].iter().take_while(|r| r.off() < hi).count();
    if let Some(b) = new {
        // Random overwrites of a fragmented file: the range is exactly one run, and the new
        // blocks continue neither neighbour. Replace the run in place.
        let run = Run::new(lo, b, hi - lo);
        if j == i + 1
            && chunk[i].off() == lo
            && chunk[i].end() == hi
            && !(i > 0 && chunk[i - 1].continued_by(run))
            && !chunk.get(j).is_some_and(|&n| run.continued_by(n))
        {
            freed(Extent { start: chunk[i].block(), len: hi - lo });
            chunk[i] = run;
            return hi - lo;
        }
    } else if i == j {
        return 0;
    }
    let mut unmapped = 0;
    for r in &chunk[i..j] {
        let (a, e) = (r.off().max(lo), r.end().min(hi));
        freed(Extent { start: r.block() + (a - r.off()), len: e - a });
        unmapped += e - a;
    }
    // What replaces runs from..to: the cut runs' outer remainders, the new run, and (when a new
    // run may continue or be continued by them) the runs just around it.
    let (mut from, mut to) = (i, j);
    let mut seq: SmallVec<[Run; 4]> = SmallVec::new();
    if i < j && chunk[i].off() < lo {
        let r = chunk[i];
        seq.push(Run::new(r.off(), r.block(), lo - r.off()));
    } else if new.is_some() && i > 0 && chunk[i - 1].end() == lo {
        from = i - 1;
        seq.push(chunk[i - 1]);
    }
    if let Some(b) = new {
        seq.push(Run::new(lo, b, hi - lo));
    }
    if i < j && chunk[j - 1].end() > hi {
        let r = chunk[j - 1];
        seq.push(Run::new(hi, r.block() + (hi - r.off()), r.end() - hi));
    } else if new.is_some() && chunk.get(j).is_some_and(|r| r.off() == hi) {
        seq.push(chunk[j]);
        to = j + 1;
    }
    let mut joined: SmallVec<[Run; 4]> = SmallVec::new();
    for r in seq {
        match joined.last_mut() {
            Some(l) if l.continued_by(r) => *l = Run::new(l.off(), l.block(), l.pages() + r.pages()),
            _ => joined.push(r),
        }
    }
    let (had, has) = (to - from, joined.len());
    for (k, r) in joined.iter().take(had).enumerate() {
        chunk[from + k] = *r;
    }
    if has > had {
        chunk.insert_many(from + had, joined[had..].iter().copied());
    } else if had > has {
        chunk.drain(from + has..to);
    }
    unmapped
}

impl Chunks {
    fn mapped(&self) -> u64 {
        self.counts & MAPPED_MASK
    }
    fn runs(&self) -> u64 {
        self.counts >> MAPPED_BITS
    }
    fn count(&mut self, mapped: u64, unmapped: u64, runs_before: usize, runs_after: usize) {
        let m = self.mapped() + mapped - unmapped;
        debug_assert!(m <= MAPPED_MASK);
        let r = self.runs();
        let r = if r == RUNS_MAX {
            r // lost count: stays "very many"
        } else {
            (r + runs_after as u64).saturating_sub(runs_before as u64).min(RUNS_MAX)
        };
        self.counts = r << MAPPED_BITS | (m & MAPPED_MASK);
    }
    fn chunk(&self, c: u64) -> Option<&Chunk> {
        if c == 0 {
            Some(&self.first).filter(|ch| !ch.is_empty())
        } else {
            self.rest.get(&c)
        }
    }
    /// The chunks numbered from `a` through `b` that hold runs, in order.
    fn range(&self, a: u64, b: u64) -> impl Iterator<Item = (u64, &Chunk)> {
        let first = (a == 0 && !self.first.is_empty()).then_some((0, &self.first));
        let lo = a.max(1);
        let hi = if b < lo { lo } else { b + 1 };
        first.into_iter().chain(self.rest.range(lo..hi).map(|(&c, ch)| (c, ch)))
    }
    /// The stored run that holds `page`, as a mapping.
    fn holding(&self, page: u64) -> Option<Mapping> {
        let base = page & !(CHUNK_PAGES - 1);
        let off = page - base;
        let chunk = self.chunk(page >> CHUNK_BITS)?;
        let r = *chunk.get(first_ending_after(chunk, off))?;
        (r.off() <= off).then_some(Mapping { page: base + r.off(), block: r.block(), pages: r.pages() })
    }
    /// Stored runs that end after `page`, in order.
    fn runs_from(&self, page: u64) -> impl Iterator<Item = Mapping> + '_ {
        self.range(page >> CHUNK_BITS, u64::MAX >> CHUNK_BITS).flat_map(move |(c, chunk)| {
            let base = c << CHUNK_BITS;
            let lo = page.saturating_sub(base);
            let i = first_ending_after(chunk, lo);
            chunk[i..].iter().map(move |r| Mapping {
                page: base + r.off(),
                block: r.block(),
                pages: r.pages(),
            })
        })
    }
}

impl ExtentMap {
    /// Pages mapped in all.
    pub fn mapped_pages(&self) -> u64 {
        self.0.as_ref().map_or(0, |c| c.mapped())
    }

    /// Runs held (each inside one 2 MiB chunk): at least the pieces [`ExtentMap::all`] gives.
    pub fn run_count(&self) -> usize {
        self.0.as_ref().map_or(0, |c| c.runs() as usize)
    }

    /// The block backing `page`, if any.
    pub fn lookup(&self, page: u64) -> Option<u64> {
        let m = self.0.as_ref()?.holding(page)?;
        Some(m.block + (page - m.page))
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
        let Some(map) = self.0.as_mut() else { return };
        if count == 0 {
            return;
        }
        let end = page.saturating_add(count);
        let (a, b) = (page >> CHUNK_BITS, (end - 1) >> CHUNK_BITS);
        let mut cut = |c: u64, chunk: &mut Chunk| {
            let base = c << CHUNK_BITS;
            let (lo, hi) = (page.saturating_sub(base), (end - base).min(CHUNK_PAGES));
            let before = chunk.len();
            let unmapped = splice(chunk, lo, hi, None, freed);
            (unmapped, before, chunk.len())
        };
        let (mut unmapped, mut before, mut after) = (0, 0, 0);
        if a == 0 {
            let (u, x, y) = cut(0, &mut map.first);
            (unmapped, before, after) = (u, x, y);
        }
        let mut emptied: SmallVec<[u64; 2]> = SmallVec::new();
        let (lo, hi) = (a.max(1), b.saturating_add(1));
        if lo < hi {
            for (&c, chunk) in map.rest.range_mut(lo..hi) {
                let (u, x, y) = cut(c, chunk);
                (unmapped, before, after) = (unmapped + u, before + x, after + y);
                if chunk.is_empty() {
                    emptied.push(c);
                }
            }
        }
        for c in emptied {
            map.rest.remove(&c);
        }
        map.count(0, unmapped, before, after);
        if map.first.is_empty() && map.rest.is_empty() {
            self.0 = None;
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
        let map = self.0.get_or_insert_with(Default::default);
        let end = page.saturating_add(count);
        let mut p = page;
        while p < end {
            let c = p >> CHUNK_BITS;
            let base = c << CHUNK_BITS;
            let (lo, hi) = (p - base, (end - base).min(CHUNK_PAGES));
            let chunk = if c == 0 { &mut map.first } else { map.rest.entry(c).or_default() };
            let before = chunk.len();
            let unmapped = splice(chunk, lo, hi, Some(block + (p - page)), freed);
            let after = chunk.len();
            map.count(hi - lo, unmapped, before, after);
            p = base + hi;
        }
    }

    /// The mapped pieces inside [page, page+count), in order, joined where they continue each
    /// other. Inline for the usual few (a read of a page or two): no heap allocation per read.
    pub fn mappings(&self, page: u64, count: u64) -> Mappings {
        let mut out = Mappings::new();
        let Some(map) = self.0.as_ref() else { return out };
        if count == 0 {
            return out;
        }
        let end = page.saturating_add(count);
        let mut add = |c: u64, chunk: &Chunk| {
            let base = c << CHUNK_BITS;
            let (lo, hi) = (page.saturating_sub(base), (end - base).min(CHUNK_PAGES));
            let i = first_ending_after(chunk, lo);
            for r in chunk[i..].iter().take_while(|r| r.off() < hi) {
                let (a, e) = (r.off().max(lo), r.end().min(hi));
                push_joined(
                    &mut out,
                    Mapping { page: base + a, block: r.block() + (a - r.off()), pages: e - a },
                );
            }
        };
        let (a, b) = (page >> CHUNK_BITS, (end - 1) >> CHUNK_BITS);
        if a == b {
            // The usual read or write, inside one chunk: a lookup, not a range walk.
            if let Some(chunk) = map.chunk(a) {
                add(a, chunk);
            }
        } else {
            for (c, chunk) in map.range(a, b) {
                add(c, chunk);
            }
        }
        out
    }

    /// Every mapped piece, in page order, with runs that continue each other joined (up to
    /// [`MAX_RUN`] pages a piece).
    pub fn all(&self) -> Vec<Mapping> {
        let mut out: SmallVec<[Mapping; 0]> = SmallVec::new();
        if let Some(map) = self.0.as_ref() {
            for m in map.runs_from(0) {
                push_joined(&mut out, m);
            }
        }
        out.into_vec()
    }

    /// The mapped pieces from the one holding `page` (or the first after it) on, in order,
    /// joined as in [`ExtentMap::all`], at most `max` of them (fiemap); true when more follow.
    pub fn joined_from(&self, page: u64, max: usize) -> (Vec<Mapping>, bool) {
        let Some(map) = self.0.as_ref() else { return (Vec::new(), false) };
        // The piece holding `page` starts where the runs it joins start, maybe chunks earlier.
        let mut from = page;
        if let Some(mut h) = map.holding(page) {
            while h.page % CHUNK_PAGES == 0 && h.page > 0 {
                match map.holding(h.page - 1) {
                    Some(prev) if prev.end() == h.page && prev.block + prev.pages == h.block => h = prev,
                    _ => break,
                }
            }
            from = h.page;
        }
        let mut out: SmallVec<[Mapping; 0]> = SmallVec::new();
        for m in map.runs_from(from) {
            if out.last_mut().is_some_and(|l| l.join(&m)) {
                continue;
            }
            if out.len() == max {
                return (out.into_vec(), true);
            }
            out.push(m);
        }
        (out.into_vec(), false)
    }

    /// First mapped page at or after `page`.
    pub fn next_mapped(&self, page: u64) -> Option<u64> {
        self.0.as_ref()?.runs_from(page).next().map(|m| m.page.max(page))
    }

    /// First unmapped page at or after `page`.
    pub fn next_hole(&self, page: u64) -> u64 {
        let mut p = page;
        while let Some(m) = self.0.as_ref().and_then(|map| map.holding(p)) {
            p = m.end();
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(mut x: u64) -> u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^ (x << 17)
    }

    /// The canonical runs of a page -> block model: adjacent pages with consecutive blocks join.
    fn model_runs(model: &std::collections::BTreeMap<u64, u64>) -> Vec<Mapping> {
        let mut runs: Vec<Mapping> = Vec::new();
        for (&p, &b) in model {
            match runs.last_mut() {
                Some(r) if r.page + r.pages == p && r.block + r.pages == b => r.pages += 1,
                _ => runs.push(Mapping { page: p, block: b, pages: 1 }),
            }
        }
        runs
    }

    /// mappings() of a range gives exactly the model's pages in it.
    fn check_mappings(
        m: &ExtentMap,
        model: &std::collections::BTreeMap<u64, u64>,
        lo: u64,
        len: u64,
        round: u64,
    ) {
        let got: Vec<(u64, u64)> = m
            .mappings(lo, len)
            .iter()
            .flat_map(|r| (0..r.pages).map(move |i| (r.page + i, r.block + i)))
            .collect();
        let want: Vec<(u64, u64)> = model.range(lo..lo + len).map(|(&p, &b)| (p, b)).collect();
        assert_eq!(got, want, "round {round}: mappings({lo}, {len})");
    }

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
            x = xorshift(x);
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
            let runs = model_runs(&model);
            assert_eq!(m.all(), runs, "round {round}");
            assert_eq!(m.mapped_pages(), model.len() as u64);
            // mappings() of a random range: the model's pages in it, as maximal pieces.
            let (lo, len) = ((x >> 8) % 70, (x >> 16) % 12);
            check_mappings(&m, &model, lo, len, round);
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
    fn a_mapping_across_chunks_is_held_per_chunk_and_handed_out_joined() {
        let mut m = ExtentMap::default();
        let n = 3 * CHUNK_PAGES + 10;
        m.insert(5, 1 << 30, n);
        assert_eq!(m.run_count(), 4);
        assert_eq!(m.mapped_pages(), n);
        assert_eq!(m.all(), vec![Mapping { page: 5, block: 1 << 30, pages: n }]);
        assert_eq!(m.lookup(5 + n - 1), Some((1 << 30) + n - 1));
        assert_eq!(m.next_hole(5), 5 + n);
        assert_eq!(m.mappings(0, u64::MAX).as_slice(), [Mapping { page: 5, block: 1 << 30, pages: n }]);
        // From inside a later chunk: the whole piece, from where it starts.
        assert_eq!(m.joined_from(1100, 4).0, vec![Mapping { page: 5, block: 1 << 30, pages: n }]);
        let freed = m.remove(6, n - 2);
        assert_eq!(freed.iter().map(|e| e.len).sum::<u64>(), n - 2);
        assert_eq!(
            m.all().iter().map(|r| (r.page, r.pages)).collect::<Vec<_>>(),
            vec![(5, 1), (5 + n - 1, 1)]
        );
        assert_eq!(m.run_count(), 2);
        m.remove(0, u64::MAX);
        assert_eq!(m, ExtentMap::default(), "an emptied map holds nothing");
    }

    /// Every query against a page -> block model, over random writes and removals of up to
    /// 700 pages across four chunks (runs cut, joined and split at chunk edges).
    #[test]
    fn writes_and_removals_across_chunks_match_a_page_model() {
        use std::collections::BTreeMap as Model;
        let mut m = ExtentMap::default();
        let mut model: Model<u64, u64> = Model::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next_block = 10_000;
        for round in 0..6_000u64 {
            x = xorshift(x);
            let page = x % 2048;
            let count = match (x >> 12) % 8 {
                0 => 1 + (x >> 20) % 700,
                1 | 2 => 1 + (x >> 20) % 8,
                _ => 1,
            };
            // Often continue the block before, so runs join across the write's edges.
            let block = match ((x >> 40) % 3, page.checked_sub(1).and_then(|p| model.get(&p))) {
                (0, Some(&b)) => b + 1,
                _ => next_block,
            };
            next_block = next_block.max(block + count) + 3;
            let insert = (x >> 30) % 5 != 0;
            let freed = if insert { m.insert(page, block, count) } else { m.remove(page, count) };
            let mut freed: Vec<u64> = freed.iter().flat_map(|e| e.start..e.start + e.len).collect();
            freed.sort_unstable();
            let mut want: Vec<u64> = model.range(page..page + count).map(|(_, &b)| b).collect();
            want.sort_unstable();
            assert_eq!(freed, want, "round {round}: freed blocks");
            for p in page..page + count {
                if insert {
                    model.insert(p, block + (p - page));
                } else {
                    model.remove(&p);
                }
            }
            let runs = model_runs(&model);
            assert_eq!(m.all(), runs, "round {round}: all");
            assert_eq!(m.mapped_pages(), model.len() as u64, "round {round}");
            assert!(m.run_count() >= runs.len());
            let (lo, len) = ((x >> 8) % 2100, (x >> 16) % 900);
            check_mappings(&m, &model, lo, len, round);
            assert_eq!(m.lookup(lo), model.get(&lo).copied());
            assert_eq!(m.next_mapped(lo), model.range(lo..).next().map(|(&p, _)| p));
            let hole = (lo..).find(|p| !model.contains_key(p)).unwrap();
            assert_eq!(m.next_hole(lo), hole);
            let from = runs.iter().position(|r| r.page + r.pages > lo).unwrap_or(runs.len());
            let (got, more) = m.joined_from(lo, 3);
            assert_eq!(got, runs[from..(from + 3).min(runs.len())].to_vec(), "round {round}: joined_from");
            assert_eq!(more, runs.len() > from + 3);
        }
        assert_eq!(m.all().is_empty(), model.is_empty());
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
