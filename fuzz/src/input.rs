//! A fuzz input decoded into edits of a seed image, and the checksum fix-up after them.
//!
//! Layout: byte 0 picks the seed image; byte 1 holds flags (bit 0: recompute the checksums of
//! the regions edited; bits 1-7: the target's own choices); then edit records until the input
//! ends: region (u8, modulo the regions the target edits), offset (u16 LE, modulo the
//! region's length), control (u8: bit 7 xor instead of store, bits 0-3 the length - 1), then
//! that many bytes (fewer when the input ends). Bytes past the region's end are dropped.

use pmfs::layout::{self, state, BLOCK_SIZE, LOG_HEADER};

use crate::regions::{Region, RegionKind};

/// Flag bit 0: recompute checksums after editing, so edits reach past the checksum checks.
pub const FIX_CHECKSUMS: u8 = 1;
/// Enough to combine damage to several structures; more only slows a run down.
const MAX_EDITS: usize = 64;

#[derive(Debug, Clone, Copy)]
pub struct Edit<'a> {
    pub region: u8,
    pub offset: u16,
    pub xor: bool,
    pub bytes: &'a [u8],
}

#[derive(Debug)]
pub struct Input<'a> {
    pub seed: usize,
    pub flags: u8,
    pub edits: Vec<Edit<'a>>,
}

impl<'a> Input<'a> {
    pub fn parse(data: &'a [u8], seeds: usize) -> Input<'a> {
        let seed = data.first().map_or(0, |&b| b as usize % seeds.max(1));
        let flags = data.get(1).copied().unwrap_or(0);
        let mut edits = Vec::new();
        let mut rest = data.get(2..).unwrap_or_default();
        while rest.len() >= 4 && edits.len() < MAX_EDITS {
            let (region, offset, ctl) = (rest[0], u16::from_le_bytes([rest[1], rest[2]]), rest[3]);
            let len = ((ctl & 0x0f) as usize + 1).min(rest.len() - 4);
            edits.push(Edit { region, offset, xor: ctl & 0x80 != 0, bytes: &rest[4..4 + len] });
            rest = &rest[4 + len..];
        }
        Input { seed, flags, edits }
    }

    /// The target's own choices (flag bits 1-7).
    pub fn choice(&self) -> u8 {
        self.flags >> 1
    }

    /// Apply the edits to `image`, each to one of `regions`, then fix checksums if asked.
    /// Returns the regions edited.
    pub fn apply(&self, image: &mut [u8], regions: &[&Region]) -> Vec<Region> {
        if regions.is_empty() {
            return Vec::new();
        }
        let mut touched: Vec<Region> = Vec::new();
        for e in &self.edits {
            let r = *regions[e.region as usize % regions.len()];
            let start = r.off + e.offset as u64 % r.len;
            let end = (start + e.bytes.len() as u64).min(r.off + r.len).min(image.len() as u64);
            for (pos, &b) in (start..end).zip(e.bytes) {
                let byte = &mut image[pos as usize];
                *byte = if e.xor { *byte ^ b } else { b };
            }
            if !touched.contains(&r) {
                touched.push(r);
            }
        }
        if self.flags & FIX_CHECKSUMS != 0 {
            fix_checksums(image, &touched);
        }
        touched
    }

    /// The edits in words: seed, flags, and for each edit its region and device offset.
    pub fn explain(&self, seed: &str, regions: &[&Region]) -> String {
        let mut out = format!("seed {seed}, flags {:#04x}", self.flags);
        for e in &self.edits {
            let Some(r) = regions.get(e.region as usize % regions.len().max(1)) else { break };
            let at = r.off + e.offset as u64 % r.len;
            let how = if e.xor { "xor" } else { "set" };
            out += &format!("\n  {how} {:02x?} at {at} ({:?} at {}+{})", e.bytes, r.kind, r.off, at - r.off);
        }
        out
    }

    /// Encode an input (for the seed corpus).
    pub fn encode(seed: u8, flags: u8, edits: &[Edit]) -> Vec<u8> {
        let mut out = vec![seed, flags];
        for e in edits {
            let len = e.bytes.len().clamp(1, 16);
            out.push(e.region);
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.push(((len - 1) as u8) | if e.xor { 0x80 } else { 0 });
            out.extend_from_slice(&e.bytes[..len]);
        }
        out
    }
}

fn get_u64(image: &[u8], off: u64) -> Option<u64> {
    let o = usize::try_from(off).ok()?;
    Some(u64::from_le_bytes(image.get(o..o.checked_add(8)?)?.try_into().ok()?))
}

fn put_u32(image: &mut [u8], off: usize, v: u32) {
    image[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Recompute every checksum that covers a byte of `touched`, as the writer would have.
pub fn fix_checksums(image: &mut [u8], touched: &[Region]) {
    for r in touched {
        let off = r.off as usize;
        match r.kind {
            RegionKind::Superblock => {
                let c = crc32c::crc32c(&image[off..off + 252]);
                put_u32(image, off + 252, c);
            }
            RegionKind::Inode { .. } => {
                let c = crc32c::crc32c(&image[off + layout::inode::CREATION.start..off + layout::inode::CRC]);
                put_u32(image, off + layout::inode::CRC, c);
            }
            RegionKind::LogPage { .. } => fix_log_page(image, off - off % BLOCK_SIZE as usize),
            RegionKind::State | RegionKind::SaveArea => fix_saved_extents(image),
            RegionKind::InodeRoots | RegionKind::Journal | RegionKind::TableIndex => {}
        }
    }
}

/// Walk a log page's entries as replay would and give each a correct crc.
fn fix_log_page(image: &mut [u8], page: usize) {
    let end = page + BLOCK_SIZE as usize;
    let mut pos = page + LOG_HEADER as usize;
    while pos + 8 <= end && image[pos] != layout::kind::PAGE_END {
        let len = u16::from_le_bytes([image[pos + 2], image[pos + 3]]) as usize;
        if len < 8 || len % 8 != 0 || pos + len > end {
            break;
        }
        put_u32(image, pos + 4, 0);
        let c = crc32c::crc32c(&image[pos..pos + len]);
        put_u32(image, pos + 4, c);
        pos += len;
    }
}

/// The crc of the saved free extents, in the state block.
fn fix_saved_extents(image: &mut [u8]) {
    let st = layout::STATE_BLOCK * BLOCK_SIZE;
    let (Some(count), Some(start), Some(blocks)) =
        (get_u64(image, st + state::SAVED_EXTENTS), get_u64(image, 136), get_u64(image, 144))
    else {
        return;
    };
    let bytes = count.saturating_mul(16);
    let from = start.saturating_mul(BLOCK_SIZE);
    if bytes > blocks.saturating_mul(BLOCK_SIZE) || from.saturating_add(bytes) > image.len() as u64 {
        return;
    }
    let c = crc32c::crc32c(&image[from as usize..(from + bytes) as usize]) as u64;
    let at = (st + state::SAVED_CRC) as usize;
    image[at..at + 8].copy_from_slice(&c.to_le_bytes());
}
