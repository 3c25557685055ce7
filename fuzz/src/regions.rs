//! The metadata regions of a seed image, found by reading it with pmfs's own decoders. An
//! edit names a region and an offset inside it, so edits land on bytes something parses
//! rather than on file data or free space.

use pmfs::device::Device;
use pmfs::itable::InodeTables;
use pmfs::layout::{self, state, InodeCreation, Superblock, BLOCK_SIZE, INODE_SIZE, JOURNAL_RECORDS};
use pmfs::log;
use pmfs::vfs::{FileKind, Ino};

use crate::scratch::Scratch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// The superblock or its replica (256 bytes each).
    Superblock,
    /// The state block: clean flag, mount count, saved-allocator header.
    State,
    /// One u64 per CPU: the inode-table roots.
    InodeRoots,
    /// A per-CPU undo journal (count word and records).
    Journal,
    /// The free extents a clean unmount saved.
    SaveArea,
    /// An inode-table index block (level 1 or 2): the pointers in use and the next one.
    TableIndex,
    /// One 128-byte PM inode.
    Inode { dir: bool },
    /// A log page of an inode, up to a little past its last entry.
    LogPage { dir: bool },
}

impl RegionKind {
    pub fn is_log(self) -> bool {
        matches!(self, RegionKind::Inode { .. } | RegionKind::LogPage { .. })
    }
    pub fn is_dir_log(self) -> bool {
        matches!(self, RegionKind::Inode { dir: true } | RegionKind::LogPage { dir: true })
    }
    pub fn any(self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Device offset of the first byte.
    pub off: u64,
    pub len: u64,
    pub kind: RegionKind,
    /// The inode an inode or log-page region belongs to.
    pub ino: Option<Ino>,
}

fn u64_at(image: &[u8], off: u64) -> u64 {
    let o = off as usize;
    image.get(o..o + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// Pointers in use in an index block, and the slot after them.
fn index_region(image: &[u8], block: u64) -> Region {
    let used =
        (0..layout::PTRS_PER_BLOCK).take_while(|i| u64_at(image, block * BLOCK_SIZE + i * 8) != 0).count();
    let len = ((used as u64 + 1) * 8).min(BLOCK_SIZE);
    Region { off: block * BLOCK_SIZE, len, kind: RegionKind::TableIndex, ino: None }
}

/// Every metadata region of `image`, which must be a sound zpmfs image.
pub fn find(image: &[u8]) -> pmfs::Result<Vec<Region>> {
    let blocks = image.len() as u64 / BLOCK_SIZE;
    let sb = Superblock::decode(&image[..Superblock::SIZE], blocks)?;
    let mut out = vec![
        Region { off: 0, len: Superblock::SIZE as u64, kind: RegionKind::Superblock, ino: None },
        Region { off: BLOCK_SIZE, len: Superblock::SIZE as u64, kind: RegionKind::Superblock, ino: None },
        Region { off: layout::STATE_BLOCK * BLOCK_SIZE, len: 40, kind: RegionKind::State, ino: None },
        Region {
            off: sb.inode_roots * BLOCK_SIZE,
            len: sb.cpus as u64 * 8,
            kind: RegionKind::InodeRoots,
            ino: None,
        },
    ];
    for c in 0..sb.cpus as u64 {
        let len = layout::journal::RECORDS + JOURNAL_RECORDS as u64 * 16;
        out.push(Region { off: (sb.journals + c) * BLOCK_SIZE, len, kind: RegionKind::Journal, ino: None });
    }
    let saved = u64_at(image, layout::STATE_BLOCK * BLOCK_SIZE + state::SAVED_EXTENTS);
    let save_len = (saved.max(1) * 16).min(sb.save_blocks * BLOCK_SIZE);
    out.push(Region {
        off: sb.save_start * BLOCK_SIZE,
        len: save_len,
        kind: RegionKind::SaveArea,
        ino: None,
    });
    for c in 0..sb.cpus as u64 {
        let root = u64_at(image, sb.inode_roots * BLOCK_SIZE + c * 8);
        out.push(index_region(image, root));
        for i in 0..layout::PTRS_PER_BLOCK {
            let l2 = u64_at(image, root * BLOCK_SIZE + i * 8);
            if l2 == 0 {
                break;
            }
            out.push(index_region(image, l2));
        }
    }

    let scratch = Scratch::new("regions");
    scratch.put(image);
    let dev = Device::open(scratch.path(), false)?;
    let pm = dev.map()?;
    let data = (sb.data_start, sb.blocks);
    let (itables, live) = InodeTables::load(&pm, sb.inode_roots, sb.cpus, data)?;
    for ino in live {
        let Some(off) = itables.offset(ino) else { continue };
        let raw = &image[off as usize..(off + INODE_SIZE) as usize];
        let dir = InodeCreation::decode(raw, ino)
            .is_ok_and(|c| FileKind::from_mode(c.mode) == Some(FileKind::Directory));
        out.push(Region { off, len: INODE_SIZE, kind: RegionKind::Inode { dir }, ino: Some(ino) });
        let head = u64_at(image, off + layout::inode::LOG_HEAD);
        let tail = u64_at(image, off + layout::inode::LOG_TAIL);
        let replayed = log::replay_partial(&pm, ino, head, tail, data)?;
        for &page in &replayed.pages {
            let len =
                if tail / BLOCK_SIZE == page { (tail % BLOCK_SIZE + 64).min(BLOCK_SIZE) } else { BLOCK_SIZE };
            out.push(Region {
                off: page * BLOCK_SIZE,
                len,
                kind: RegionKind::LogPage { dir },
                ino: Some(ino),
            });
        }
    }
    Ok(out)
}
