//! Per-inode logs: chains of 4 KiB pages holding entries. New entries are written past the
//! tail (invisible), then [`commit_tail`] makes them part of the inode with one atomic 8-byte
//! store. Replay walks from the head page to the tail and returns the entries in order.

use crate::alloc::{Allocator, Pool};
use crate::error::{Error, Result};
use crate::layout::{self, kind, logpage, Entry, BLOCK_SIZE, LOG_HEADER, LOG_MAGIC};
use crate::persist::{PmRegion, CACHE_LINE};

/// Where an inode's log stands (kept in DRAM, mirrors the PM inode's tail). The head page is
/// read from the PM inode when needed (rarely: compaction, destroy, a first append), not kept
/// in DRAM, which `make bench` measures per inode.
#[derive(Debug, Clone, Default)]
pub struct LogState {
    /// Device offset of the next entry; 0 = empty.
    pub tail: u64,
    /// Pages in the chain (the pages themselves are on PM: [`chain_pages`]; not kept in DRAM,
    /// which `make bench` measures per inode).
    pub pages: u32,
    /// Entries in the log (to decide when to compact it).
    pub entries: u32,
}

/// Entries written past the tail but not yet committed.
#[must_use = "staged entries are invisible until their tail is committed"]
pub struct Staged {
    pub new_tail: u64,
    pub new_pages: Vec<u64>,
    pub new_head: Option<u64>,
    pub entries: u64,
}

fn page_of(off: u64) -> u64 {
    off / BLOCK_SIZE
}
fn in_page(off: u64) -> u64 {
    off % BLOCK_SIZE
}

/// With ordinary stores (once per page): its next-page word is stored again, ordinarily, when
/// the chain grows, and one kind of store to a word keeps the order of its values plain.
fn write_page_header(pm: &PmRegion, page: u64, owner: u64) -> Result<()> {
    let mut h = [0u8; LOG_HEADER as usize];
    h[logpage::OWNER as usize..logpage::OWNER as usize + 8].copy_from_slice(&owner.to_le_bytes());
    h[logpage::MAGIC as usize..logpage::MAGIC as usize + 4].copy_from_slice(&LOG_MAGIC.to_le_bytes());
    pm.write(page * BLOCK_SIZE, &h)?;
    pm.flush(page * BLOCK_SIZE, LOG_HEADER);
    Ok(())
}

/// The length an entry of `len` bytes takes at `pos`: grown (zero padding, inside its length
/// field and checksum) to end on a cache line. Readers take any length from a kind's minimum
/// on, so logs written packed, as before, read and extend the same.
fn padded_len(pos: u64, len: u64) -> u64 {
    (pos + len).next_multiple_of(CACHE_LINE) - pos
}

/// Write `entries` from `pos` on, moving to fresh pages as needed; returns the position
/// after the last entry. Durable after a fence. Each entry ends on a cache line, so the next
/// one fills whole lines, which go around the cache: an ordinary store into a line of fresh
/// log first reads it from memory (and the flush then evicts it), which cost a 4 KiB write
/// about 0.1 us and log compaction 200 ns per entry.
#[allow(clippy::too_many_arguments)]
fn append_entries(
    pm: &PmRegion,
    alloc: &Allocator,
    cpu: usize,
    pool: Pool,
    owner: u64,
    mut pos: u64,
    entries: &[Entry],
    new_pages: &mut Vec<u64>,
) -> Result<u64> {
    // Most entries (writes, attributes, short names) fit `small`; zeroing a page-sized buffer
    // per call was a measurable part of a 4 KiB write. Longer ones (xattr values) use `big`.
    let mut small = [0u8; 128];
    let mut big = Vec::new();
    for e in entries {
        let mut len = padded_len(pos, e.len() as u64);
        if in_page(pos) + len > BLOCK_SIZE || in_page(pos) == 0 {
            // Mark the rest of this page unused, so replay skips whatever an uncommitted
            // append left there, then link a fresh page.
            if in_page(pos) != 0 && in_page(pos) + 8 <= BLOCK_SIZE {
                pm.write(pos, &[kind::PAGE_END; 8])?;
                pm.flush(pos, 8);
            }
            let cur = if in_page(pos) == 0 { page_of(pos) - 1 } else { page_of(pos) };
            let page = alloc.alloc_one_from(cpu, pool)?;
            new_pages.push(page);
            write_page_header(pm, page, owner)?;
            pm.store_u64(cur * BLOCK_SIZE + logpage::NEXT, page)?;
            pm.flush(cur * BLOCK_SIZE + logpage::NEXT, 8);
            pos = page * BLOCK_SIZE + LOG_HEADER;
            len = padded_len(pos, e.len() as u64);
        }
        let bytes: &mut [u8] = if len as usize <= small.len() {
            &mut small[..len as usize]
        } else {
            big.resize(len as usize, 0);
            &mut big[..]
        };
        bytes.fill(0);
        e.encode_to(bytes);
        pm.write_nt(pos, bytes)?;
        pos += len;
    }
    Ok(pos)
}

/// Write `entries` after the log's tail and make them durable, without committing them.
/// A first page is linked from the inode's head field at once (a head with an empty tail is
/// an empty log). Returns what [`commit_tail`] and [`LogState::apply_staged`] need.
/// New pages come from `pool`. The fence that ends it also makes durable whatever the caller
/// stored before (the data blocks a Write entry maps: they are not fenced on their own, which
/// saves a 4 KiB write one of the three fences NOVA's protocol pays).
#[allow(clippy::too_many_arguments)]
pub fn stage(
    pm: &PmRegion,
    alloc: &Allocator,
    cpu: usize,
    pool: Pool,
    owner: u64,
    inode_off: u64,
    log: &LogState,
    entries: &[Entry],
) -> Result<Staged> {
    let mut new_pages = Vec::new();
    let mut new_head = None;
    let result = (|| {
        let head = if log.tail != 0 { 0 } else { read_head(pm, inode_off)? };
        let pos = if log.tail != 0 {
            log.tail
        } else if head != 0 {
            head * BLOCK_SIZE + LOG_HEADER
        } else {
            let page = alloc.alloc_one_from(cpu, pool)?;
            new_pages.push(page);
            write_page_header(pm, page, owner)?;
            pm.fence();
            pm.store_u64(inode_off + layout::inode::LOG_HEAD, page)?;
            pm.persist(inode_off + layout::inode::LOG_HEAD, 8);
            new_head = Some(page);
            page * BLOCK_SIZE + LOG_HEADER
        };
        let end = append_entries(pm, alloc, cpu, pool, owner, pos, entries, &mut new_pages)?;
        pm.fence();
        Ok(end)
    })();
    match result {
        Ok(new_tail) => Ok(Staged { new_tail, new_pages, new_head, entries: entries.len() as u64 }),
        Err(e) => {
            // Nothing was committed: give back every page this stage took, and unlink a head
            // it set (a crash before this point leaves a head with an empty tail, which mount
            // treats as an empty log).
            if new_head.is_some() {
                pm.store_u64(inode_off + layout::inode::LOG_HEAD, 0)?;
                pm.persist(inode_off + layout::inode::LOG_HEAD, 8);
            }
            for p in &new_pages {
                alloc.free(*p, 1);
            }
            Err(e)
        }
    }
}

/// Write a whole new chain holding `entries` (log compaction), linked from nowhere yet.
pub fn write_chain(
    pm: &PmRegion,
    alloc: &Allocator,
    cpu: usize,
    pool: Pool,
    owner: u64,
    entries: &[Entry],
) -> Result<Staged> {
    let mut new_pages = Vec::new();
    let result = (|| {
        let head = alloc.alloc_one_from(cpu, pool)?;
        new_pages.push(head);
        write_page_header(pm, head, owner)?;
        let at = head * BLOCK_SIZE + LOG_HEADER;
        let end = append_entries(pm, alloc, cpu, pool, owner, at, entries, &mut new_pages)?;
        pm.fence();
        Ok((head, end))
    })();
    match result {
        Ok((head, new_tail)) => {
            Ok(Staged { new_tail, new_pages, new_head: Some(head), entries: entries.len() as u64 })
        }
        Err(e) => {
            for p in &new_pages {
                alloc.free(*p, 1);
            }
            Err(e)
        }
    }
}

/// The commit point of a single-inode operation: store the new tail, flush, fence.
pub fn commit_tail(pm: &PmRegion, inode_off: u64, new_tail: u64) -> Result<()> {
    pm.store_u64(inode_off + layout::inode::LOG_TAIL, new_tail)?;
    pm.persist(inode_off + layout::inode::LOG_TAIL, 8);
    Ok(())
}

impl LogState {
    /// Record in DRAM what a committed stage added.
    pub fn apply_staged(&mut self, s: &Staged) {
        self.pages = self.pages.saturating_add(s.new_pages.len() as u32);
        self.tail = s.new_tail;
        self.entries = self.entries.saturating_add(s.entries as u32);
    }
}

/// The page that holds the entry ending at `tail` (a tail at a page boundary ends the page
/// before it).
fn last_page(tail: u64) -> u64 {
    if in_page(tail) == 0 {
        page_of(tail) - 1
    } else {
        page_of(tail)
    }
}

/// The first page of the log of the PM inode at `inode_off` (0: none).
fn read_head(pm: &PmRegion, inode_off: u64) -> Result<u64> {
    pm.read_u64(inode_off + layout::inode::LOG_HEAD)
}

/// Every page of the committed log of the PM inode at `inode_off`, head first, read from PM:
/// from the head along the next pointers to the tail's page (pages past it belong to no
/// committed entry). The chain was checked when the inode was loaded; a chain longer than
/// `log.pages` is damage.
pub fn chain_pages(pm: &PmRegion, inode_off: u64, log: &LogState) -> Result<Vec<u64>> {
    let head = read_head(pm, inode_off)?;
    if head == 0 {
        return Ok(Vec::new());
    }
    let mut pages = vec![head];
    if log.tail == 0 {
        return Ok(pages);
    }
    let last = last_page(log.tail);
    let mut page = head;
    while page != last {
        if pages.len() > log.pages as usize {
            return Err(Error::Corrupt(format!("log page chain from {head} does not reach its tail")));
        }
        page = pm.read_u64(page * BLOCK_SIZE + logpage::NEXT)?;
        pages.push(page);
    }
    Ok(pages)
}

/// A log read back as far as it is sound (for fsck).
pub struct Partial {
    /// Entries in order, each with its device offset.
    pub entries: Vec<(u64, Entry)>,
    pub state: LogState,
    /// The chain's pages that were reached (all of them when `error` is None), head first.
    pub pages: Vec<u64>,
    /// Where reading stopped early: the tail that keeps every sound entry, whether the head
    /// page itself is unusable, and why.
    pub error: Option<(u64, bool, Error)>,
}

/// Read back a log: every committed entry in order, its state, and the pages of the chain.
/// `data` is the allocatable block range; anything outside it is corruption.
pub fn replay(
    pm: &PmRegion,
    owner: u64,
    head: u64,
    tail: u64,
    data: (u64, u64),
) -> Result<(Vec<Entry>, LogState, Vec<u64>)> {
    let p = replay_partial(pm, owner, head, tail, data)?;
    if let Some((_, _, e)) = p.error {
        return Err(e);
    }
    Ok((p.entries.into_iter().map(|(_, e)| e).collect(), p.state, p.pages))
}

/// Read a log up to its tail or its first unsound part. Only device errors fail outright.
pub fn replay_partial(pm: &PmRegion, owner: u64, head: u64, tail: u64, data: (u64, u64)) -> Result<Partial> {
    let bad = |what: String| Error::Corrupt(format!("inode {owner} log: {what}"));
    let page_ok = |page: u64| -> Result<Option<Error>> {
        if page < data.0 || page >= data.1 {
            return Ok(Some(bad(format!("page {page} is outside the data area"))));
        }
        let magic = pm.read_u64(page * BLOCK_SIZE + logpage::MAGIC)? as u32;
        let who = pm.read_u64(page * BLOCK_SIZE + logpage::OWNER)?;
        if magic != LOG_MAGIC || who != owner {
            return Ok(Some(bad(format!("page {page} is not a log page of this inode"))));
        }
        Ok(None)
    };
    let mut out = Partial {
        entries: Vec::new(),
        state: LogState { tail, pages: 0, entries: 0 },
        pages: Vec::new(),
        error: None,
    };
    if head == 0 {
        if tail != 0 {
            out.error = Some((0, true, bad("tail without head".into())));
        }
        return Ok(out);
    }
    if let Some(e) = page_ok(head)? {
        out.error = Some((0, true, e));
        return Ok(out);
    }
    out.pages.push(head);
    if tail == 0 {
        out.state.pages = 1;
        return Ok(out);
    }
    // A chain that comes back to a page it passed loops; replaying round it until the chain
    // is as long as the data area would take hours on a large device.
    let mut visited = std::collections::HashSet::from([head]);
    let mut pos = head * BLOCK_SIZE + LOG_HEADER;
    let mut hdr = [0u8; 8];
    while pos != tail {
        let at_end = in_page(pos) == 0 || in_page(pos) + 8 > BLOCK_SIZE || {
            pm.read(pos, &mut hdr)?;
            hdr[0] == kind::PAGE_END
        };
        if at_end {
            if page_of(tail) == page_of(pos) && in_page(pos) != 0 {
                out.error = Some((pos, false, bad(format!("tail {tail} is past the end of its entries"))));
                break;
            }
            let cur = if in_page(pos) == 0 { page_of(pos) - 1 } else { page_of(pos) };
            let next = pm.read_u64(cur * BLOCK_SIZE + logpage::NEXT)?;
            if let Some(e) = page_ok(next)? {
                out.error = Some((pos, false, e));
                break;
            }
            if !visited.insert(next) {
                out.error = Some((pos, false, bad(format!("page chain loops back to page {next}"))));
                break;
            }
            out.pages.push(next);
            pos = next * BLOCK_SIZE + LOG_HEADER;
            continue;
        }
        let len = Entry::header_len(&hdr) as u64;
        if len < 8 || in_page(pos) + len > BLOCK_SIZE || (page_of(tail) == page_of(pos) && pos + len > tail) {
            out.error = Some((pos, false, bad(format!("entry at {pos} has a bad length {len}"))));
            break;
        }
        let mut buf = vec![0u8; len as usize];
        pm.read(pos, &mut buf)?;
        match Entry::decode(&buf) {
            // More pages than the data area holds is damage whatever the blocks, and replay
            // would spend time and memory on it: the block map holds a run per 2 MiB, and an
            // entry can name 2^32 pages. (Fewer pages mapped outside the data area are fsck's
            // to punch into holes.)
            Ok(Entry::Write { block, nblocks, .. }) if nblocks as u64 > data.1.saturating_sub(data.0) => {
                let what = format!("at {pos}: a write maps {nblocks} pages (at block {block}), more than the data area holds");
                out.error = Some((pos, false, bad(what)));
                break;
            }
            Ok(e) => out.entries.push((pos, e)),
            Err(e) => {
                out.error = Some((pos, false, bad(format!("at {pos}: {}", e.detail()))));
                break;
            }
        }
        pos += len;
    }
    out.state.entries = out.entries.len() as u32;
    out.state.pages = out.pages.len() as u32;
    Ok(out)
}
