//! File data: reads, copy-on-write writes, truncation, fallocate, SEEK_DATA/SEEK_HOLE and
//! get_data_block. Data goes between the caller's buffer and PM in one copy; a write fills
//! freshly allocated blocks (old contents copied in for partial pages), fences, then commits
//! one log entry per new extent, and only then frees the blocks it replaced.

use crate::alloc::{current_cpu, Extent, Extents, Pool};
use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::iflags;
use crate::inode::InodeState;
use crate::layout::{Entry, BLOCK_SIZE};
use crate::vfs::*;

/// The entries of one copy-on-write: one per extent allocated, so almost always one or two,
/// kept inline (no heap allocation per write).
type Entries = smallvec::SmallVec<[Entry; 2]>;

impl Fs {
    /// Read from a locked inode (regular file or symlink).
    pub(crate) fn read_locked(&self, st: &InodeState, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if st.dead {
            return Err(Error::NotFound);
        }
        if offset >= st.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(st.size - offset) as usize;
        let buf = &mut buf[..n];
        let first = offset / BLOCK_SIZE;
        let last = (offset + n as u64 - 1) / BLOCK_SIZE;
        let mut filled = 0u64; // bytes of buf done
        let mut page = first;
        for m in st
            .extents
            .mappings(first, last - first + 1)
            .into_iter()
            .chain(std::iter::once(crate::extents::Mapping { page: last + 1, block: 0, pages: 0 }))
        {
            // Hole before this mapping: zeros.
            let hole_end = (m.page * BLOCK_SIZE).saturating_sub(offset).min(n as u64);
            if hole_end > filled {
                buf[filled as usize..hole_end as usize].fill(0);
                filled = hole_end;
            }
            if m.pages == 0 {
                break;
            }
            let start_in_file = offset + filled;
            let map_end_in_file = (m.page + m.pages) * BLOCK_SIZE;
            let take = (map_end_in_file - start_in_file).min(n as u64 - filled);
            let dev =
                (m.block + (start_in_file / BLOCK_SIZE - m.page)) * BLOCK_SIZE + start_in_file % BLOCK_SIZE;
            self.pm.read(dev, &mut buf[filled as usize..(filled + take) as usize])?;
            filled += take;
            page = m.page + m.pages;
        }
        let _ = page;
        Ok(n)
    }

    /// Read into `buf` from `offset`; returns the bytes read (short at end of file).
    pub fn read(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.check_alive()?;
        let r = self.inode(ino)?;
        let st = r.read();
        match st.kind {
            FileKind::Regular | FileKind::Symlink => self.read_locked(&st, offset, buf),
            FileKind::Directory => Err(Error::IsDir),
            _ => Err(Error::Invalid("read of a special file")),
        }
    }

    /// Fill `count` fresh blocks from `block` on, as file pages `page..`: `data` lands at byte
    /// `data_at` of the range, zeros (when `zero` is set) or the old contents everywhere else.
    #[allow(clippy::too_many_arguments)]
    fn fill_blocks(
        &self,
        st: &InodeState,
        page: u64,
        block: u64,
        count: u64,
        data: &[u8],
        data_at: u64,
        zero: bool,
    ) -> Result<()> {
        let data_end = data_at + data.len() as u64;
        for i in 0..count {
            let dev = (block + i) * BLOCK_SIZE;
            let lo = i * BLOCK_SIZE; // this page's range within the write range
            let hi = lo + BLOCK_SIZE;
            let d_lo = data_at.clamp(lo, hi);
            let d_hi = data_end.clamp(lo, hi);
            // Parts of the page outside [d_lo, d_hi): old contents or zeros.
            for (a, b) in [(lo, d_lo), (d_hi, hi)] {
                if a >= b {
                    continue;
                }
                let old = if zero { None } else { st.extents.lookup(page + i) };
                match old {
                    Some(ob) => self.pm.copy_within_nt(ob * BLOCK_SIZE + (a - lo), dev + (a - lo), b - a)?,
                    None => self.pm.zero_nt(dev + (a - lo), b - a)?,
                }
            }
            if d_lo < d_hi {
                self.pm.write_nt(
                    dev + (d_lo - lo),
                    &data[(d_lo - data_at) as usize..(d_hi - data_at) as usize],
                )?;
            }
        }
        Ok(())
    }

    /// Allocate fresh blocks from `pool` for pages [first, first+count) and fill them (see
    /// `fill_blocks`, with `data` starting at byte `data_off` of page `first`). Adds one Write
    /// entry per extent to `entries`, not yet committed, and returns the blocks; on error the
    /// blocks are given back and `entries` is as it was. (The entries go into the caller's
    /// vector rather than back in the result: moving them cost a 4 KiB write a tenth of its
    /// time outside the persistence floor.)
    #[allow(clippy::too_many_arguments)]
    fn cow_pages(
        &self,
        st: &InodeState,
        first: u64,
        count: u64,
        data: &[u8],
        data_off: u64,
        zero: bool,
        new_size: u64,
        pool: Pool,
        entries: &mut Entries,
    ) -> Result<Extents> {
        let exts = self.alloc.alloc_from(count, current_cpu(), pool)?;
        let now = Timespec::now();
        let had = entries.len();
        let mut page = first;
        let filled = (|| {
            for e in &exts {
                let rel = (page - first) * BLOCK_SIZE; // where this extent starts in the range
                let at = data_off as i128 - rel as i128;
                let (sub, sub_at) = if at >= 0 {
                    (data, at as u64)
                } else {
                    let skip = ((-at) as usize).min(data.len());
                    (&data[skip..], 0)
                };
                self.fill_blocks(st, page, e.start, e.len, sub, sub_at, zero)?;
                entries.push(Entry::Write {
                    pgoff: page,
                    block: e.start,
                    nblocks: e.len as u32,
                    size: new_size,
                    mtime: now,
                });
                page += e.len;
            }
            // No fence here: the one `log::stage` makes after writing the entries covers these
            // non-temporal stores too, and the tail commits only after it.
            Ok(())
        })();
        match filled {
            Ok(()) => Ok(exts),
            Err(e) => {
                entries.truncate(had);
                for x in exts {
                    self.alloc.free(x.start, x.len);
                }
                Err(e)
            }
        }
    }

    /// Commit entries for blocks `exts`; if the commit fails the blocks are given back.
    fn commit_data(&self, st: &mut InodeState, entries: &[Entry], exts: Extents) -> Result<()> {
        if let Err(e) = self.commit_in(st, entries, Pool::Normal) {
            for x in exts {
                self.alloc.free(x.start, x.len);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Write into a locked inode. Returns bytes written.
    pub(crate) fn write_locked(&self, st: &mut InodeState, offset: u64, data: &[u8]) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let end = offset.checked_add(data.len() as u64).ok_or(Error::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(Error::FileTooBig);
        }
        let first = offset / BLOCK_SIZE;
        let last = (end - 1) / BLOCK_SIZE;
        let new_size = st.size.max(end);
        let mut entries = Entries::new();
        let exts = self.cow_pages(
            st,
            first,
            last - first + 1,
            data,
            offset % BLOCK_SIZE,
            false,
            new_size,
            Pool::Normal,
            &mut entries,
        )?;
        self.commit_data(st, &entries, exts)?;
        Ok(data.len())
    }

    /// Write `data` at `offset` (at the end of file when `append`); returns (bytes written,
    /// offset written at).
    pub fn write(&self, ino: Ino, offset: u64, data: &[u8], append: bool) -> Result<(usize, u64)> {
        self.check_writable()?;
        let r = self.inode(ino)?;
        let mut st = r.write();
        match st.kind {
            FileKind::Regular => {}
            FileKind::Directory => return Err(Error::IsDir),
            _ => return Err(Error::Invalid("write to a special file")),
        }
        // Append-only: data goes at the end (an O_APPEND write), nowhere else.
        iflags::check_mutable(st.flags)?;
        if !append && offset != st.size {
            iflags::check_pinned(st.flags)?;
        }
        let at = if append { st.size } else { offset };
        let n = self.write_locked(&mut st, at, data)?;
        Ok((n, at))
    }

    /// When shrinking to `new_size`, the last kept page keeps bytes past the new end; copy it
    /// with those bytes zeroed so a later extension reads zeros there. Returns the entries
    /// (uncommitted; blocks are owned by them). The copy comes from `pool`.
    pub(crate) fn zero_tail_of_last_page(
        &self,
        st: &InodeState,
        new_size: u64,
        pool: Pool,
    ) -> Result<Vec<Entry>> {
        let within = new_size % BLOCK_SIZE;
        let page = new_size / BLOCK_SIZE;
        if within == 0 || st.extents.lookup(page).is_none() {
            return Ok(Vec::new());
        }
        let zeros = vec![0u8; (BLOCK_SIZE - within) as usize];
        // The entry keeps the old size: the Attr entry after it is what changes the size, and
        // only a size change drops the pages past the new end.
        let mut entries = Entries::new();
        self.cow_pages(st, page, 1, &zeros, within, false, st.size, pool, &mut entries)?;
        Ok(entries.into_vec())
    }

    /// Zero [from, to) inside one page by copy-on-write, if that page is mapped.
    fn zero_partial(&self, st: &mut InodeState, from: u64, to: u64) -> Result<()> {
        if from >= to || st.extents.lookup(from / BLOCK_SIZE).is_none() {
            return Ok(());
        }
        let zeros = vec![0u8; (to - from) as usize];
        let size = st.size;
        let mut entries = Entries::new();
        let exts = self.cow_pages(
            st,
            from / BLOCK_SIZE,
            1,
            &zeros,
            from % BLOCK_SIZE,
            false,
            size,
            Pool::Normal,
            &mut entries,
        )?;
        self.commit_data(st, &entries, exts)
    }

    pub fn fallocate(&self, ino: Ino, mode: FallocMode, offset: u64, len: u64) -> Result<()> {
        self.check_writable()?;
        if len == 0 {
            return Err(Error::Invalid("fallocate length 0"));
        }
        let end = offset.checked_add(len).ok_or(Error::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(Error::FileTooBig);
        }
        let r = self.inode(ino)?;
        let mut st = r.write();
        match st.kind {
            FileKind::Regular => {}
            FileKind::Directory => return Err(Error::IsDir),
            _ => return Err(Error::Invalid("fallocate of a special file")),
        }
        // As vfs_fallocate: append-only allows only allocation that changes no data.
        iflags::check_mutable(st.flags)?;
        if !matches!(mode, FallocMode::Allocate { .. }) {
            iflags::check_pinned(st.flags)?;
        }
        let first_full = offset.div_ceil(BLOCK_SIZE);
        let end_full = end / BLOCK_SIZE;
        match mode {
            FallocMode::Allocate { keep_size } => {
                let new_size = if keep_size { st.size } else { st.size.max(end) };
                self.allocate_holes(&mut st, offset / BLOCK_SIZE, end.div_ceil(BLOCK_SIZE), new_size)
            }
            FallocMode::PunchHole => {
                let end = end.min(st.size.max(end)); // punching past EOF is allowed and a no-op there
                if first_full > end_full {
                    return self.zero_partial(&mut st, offset, end);
                }
                self.zero_partial(&mut st, offset, first_full * BLOCK_SIZE)?;
                self.zero_partial(&mut st, end_full * BLOCK_SIZE, end)?;
                if end_full > first_full {
                    let punch = Entry::Punch {
                        pgoff: first_full,
                        npages: end_full - first_full,
                        mtime: Timespec::now(),
                    };
                    self.commit(&mut st, vec![punch])?;
                }
                Ok(())
            }
            FallocMode::ZeroRange { keep_size } => {
                let new_size = if keep_size { st.size } else { st.size.max(end) };
                if first_full > end_full {
                    self.zero_partial(&mut st, offset, end)?;
                } else {
                    self.zero_partial(&mut st, offset, first_full * BLOCK_SIZE)?;
                    self.zero_partial(&mut st, end_full * BLOCK_SIZE, end)?;
                    if end_full > first_full {
                        let mut entries = Entries::new();
                        let exts = self.cow_pages(
                            &st,
                            first_full,
                            end_full - first_full,
                            &[],
                            0,
                            true,
                            new_size,
                            Pool::Normal,
                            &mut entries,
                        )?;
                        self.commit_data(&mut st, &entries, exts)?;
                    }
                }
                self.allocate_holes(&mut st, offset / BLOCK_SIZE, end.div_ceil(BLOCK_SIZE), new_size)
            }
            FallocMode::CollapseRange => {
                if offset % BLOCK_SIZE != 0 || len % BLOCK_SIZE != 0 {
                    return Err(Error::Invalid("collapse range not block-aligned"));
                }
                if end >= st.size {
                    return Err(Error::Invalid("collapse range reaches the end of the file"));
                }
                let new_size = st.size - len;
                self.shift_pages(&mut st, offset / BLOCK_SIZE, len / BLOCK_SIZE, false, new_size)
            }
            FallocMode::InsertRange => {
                if offset % BLOCK_SIZE != 0 || len % BLOCK_SIZE != 0 {
                    return Err(Error::Invalid("insert range not block-aligned"));
                }
                if offset >= st.size {
                    return Err(Error::Invalid("insert range at or past the end of the file"));
                }
                let new_size =
                    st.size.checked_add(len).filter(|&n| n <= MAX_FILE_SIZE).ok_or(Error::FileTooBig)?;
                self.shift_pages(&mut st, offset / BLOCK_SIZE, len / BLOCK_SIZE, true, new_size)
            }
        }
    }

    /// Collapse (`up` false) or insert (`up` true) `count` pages at page `from`, in one commit:
    /// one Punch unmaps everything from `from` on (freeing only a collapsed range's blocks:
    /// the others move), then every mapped piece past the range is mapped again `count` pages
    /// lower or higher, to the same blocks, and the size is set. A crash leaves the file as
    /// it was or as it is after, never in between.
    fn shift_pages(&self, st: &mut InodeState, from: u64, count: u64, up: bool, new_size: u64) -> Result<()> {
        let now = Timespec::now();
        let moving = if up { from } else { from + count };
        let pieces = st.extents.mappings(moving, u64::MAX - moving);
        let end = pieces.last().map_or(moving, |m| m.page + m.pages);
        if up && end.checked_add(count).is_none_or(|e| e > MAX_FILE_SIZE / BLOCK_SIZE) {
            return Err(Error::FileTooBig);
        }
        let mut entries = Vec::with_capacity(pieces.len() + 2);
        if end > from {
            entries.push(Entry::Punch { pgoff: from, npages: end - from, mtime: now });
        }
        for m in &pieces {
            let to = if up { m.page + count } else { m.page - count };
            // Pieces hold at most MAX_RUN pages (a Run's limit), far below a Write's u32.
            entries.push(Entry::Write {
                pgoff: to,
                block: m.block,
                nblocks: m.pages as u32,
                size: new_size,
                mtime: now,
            });
        }
        entries.push(st.resized(new_size, now));
        let mut moved: Vec<Extent> = pieces.iter().map(|m| Extent { start: m.block, len: m.pages }).collect();
        moved.sort_by_key(|x| x.start);
        self.commit_keeping(st, &entries, Pool::Normal, &moved)
    }

    /// Give every hole in pages [first, end) a zeroed block; set the size to `new_size`.
    fn allocate_holes(&self, st: &mut InodeState, first: u64, end: u64, new_size: u64) -> Result<()> {
        let mut p = first;
        let mut entries = Entries::new();
        let mut all = Extents::new();
        while p < end {
            let hole = st.extents.next_hole(p);
            if hole >= end {
                break;
            }
            let hole_end = st.extents.next_mapped(hole).unwrap_or(end).min(end);
            match self.cow_pages(
                st,
                hole,
                hole_end - hole,
                &[],
                0,
                true,
                new_size,
                Pool::Normal,
                &mut entries,
            ) {
                Ok(x) => all.extend(x),
                Err(e) => {
                    for x in all {
                        self.alloc.free(x.start, x.len);
                    }
                    return Err(e);
                }
            }
            p = hole_end;
        }
        if entries.is_empty() && new_size != st.size {
            entries.push(st.resized(new_size, Timespec::now()));
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.commit_data(st, &entries, all)
    }

    pub fn lseek(&self, ino: Ino, offset: u64, whence: SeekWhence) -> Result<u64> {
        self.check_alive()?;
        let r = self.inode(ino)?;
        let st = r.read();
        if offset >= st.size {
            return Err(Error::NoSuchOffset);
        }
        let page = offset / BLOCK_SIZE;
        match whence {
            SeekWhence::Data => {
                let p = st.extents.next_mapped(page).ok_or(Error::NoSuchOffset)?;
                let at = offset.max(p * BLOCK_SIZE);
                if at >= st.size {
                    return Err(Error::NoSuchOffset);
                }
                Ok(at)
            }
            SeekWhence::Hole => Ok(offset.max(st.extents.next_hole(page) * BLOCK_SIZE).min(st.size)),
        }
    }

    /// Where the file's data lives (fiemap): the extents that reach into [offset, offset +
    /// len), whole and in order, at most `max`; the last one carries `last` when no data
    /// follows it in the file.
    pub fn data_extents(&self, ino: Ino, offset: u64, len: u64, max: usize) -> Result<Vec<DataExtent>> {
        self.check_alive()?;
        let r = self.inode(ino)?;
        let st = r.read();
        let end = offset.saturating_add(len);
        let (pieces, mut more) = st.extents.joined_from(offset / BLOCK_SIZE, max);
        let mut out = Vec::with_capacity(pieces.len());
        for m in pieces {
            if m.page.saturating_mul(BLOCK_SIZE) >= end {
                more = true;
                break;
            }
            out.push(DataExtent {
                offset: m.page * BLOCK_SIZE,
                device_offset: m.block * BLOCK_SIZE,
                len: m.pages * BLOCK_SIZE,
                last: false,
            });
        }
        if let (Some(l), false) = (out.last_mut(), more) {
            l.last = true;
        }
        Ok(out)
    }

    /// The PM block backing the page at `offset`; with `for_write` a hole gets a zeroed block.
    pub fn get_data_block(&self, ino: Ino, offset: u64, for_write: bool) -> Result<Option<DataBlock>> {
        if for_write {
            self.check_writable()?;
        } else {
            self.check_alive()?;
        }
        let r = self.inode(ino)?;
        if for_write {
            iflags::check_mutable(r.read().flags)?;
        }
        let page = offset / BLOCK_SIZE;
        if let Some(b) = r.read().extents.lookup(page) {
            return Ok(Some(DataBlock { device_offset: b * BLOCK_SIZE }));
        }
        if !for_write {
            return Ok(None);
        }
        let mut st = r.write();
        if st.kind != FileKind::Regular {
            return Err(Error::Invalid("mapping of a non-regular file"));
        }
        if let Some(b) = st.extents.lookup(page) {
            return Ok(Some(DataBlock { device_offset: b * BLOCK_SIZE }));
        }
        let size = st.size;
        let mut entries = Entries::new();
        let exts = self.cow_pages(&st, page, 1, &[], 0, true, size, Pool::Normal, &mut entries)?;
        self.commit_data(&mut st, &entries, exts)?;
        let b = st
            .extents
            .lookup(page)
            .ok_or_else(|| Error::Corrupt(format!("inode {ino}: page {page} not mapped after allocation")))?;
        Ok(Some(DataBlock { device_offset: b * BLOCK_SIZE }))
    }
}
