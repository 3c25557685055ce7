//! mkfs: lay a fresh zpmfs onto a device. Formatting is its own path, separate from
//! recovery; it ends by writing the superblock replica and then the superblock, so a device
//! whose format was interrupted is not mistaken for a filesystem.

use crate::alloc::Allocator;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::itable::InodeTables;
use crate::layout::{
    self, InodeCreation, Superblock, BLOCK_SIZE, FORMAT_VERSION, SUPER_BLOCK, SUPER_REPLICA_BLOCK,
};
use crate::vfs::{Timespec, ROOT_INO};

/// Smallest device zpmfs formats (16 MiB).
pub const MIN_DEVICE_SIZE: u64 = 16 << 20;
/// Longest volume label in bytes.
pub const LABEL_MAX: usize = 63;
/// Bytes wiped at the start of the device so no older signature survives (btrfs sits at 64 KiB).
const WIPE_BYTES: u64 = 128 << 10;

/// What mkfs.zpmfs asks for.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    pub label: String,
    /// None: a random UUID.
    pub uuid: Option<[u8; 16]>,
    /// Per-CPU inode tables and journals; None: this machine's CPU count.
    pub cpus: Option<u32>,
}

/// What a format produced.
#[derive(Debug, Clone)]
pub struct FormatSummary {
    pub uuid: [u8; 16],
    pub blocks: u64,
    pub block_size: u32,
    pub cpus: u32,
    pub data_blocks: u64,
}

/// A random version-4 UUID.
pub fn random_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    if !crate::device::random_bytes(&mut u) {
        let t = Timespec::now();
        u[..8].copy_from_slice(&(t.sec as u64).to_le_bytes());
        u[8..12].copy_from_slice(&t.nsec.to_le_bytes());
        u[12..16].copy_from_slice(&std::process::id().to_le_bytes());
    }
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Where the metadata goes for a device of `blocks` blocks and `cpus` CPUs.
fn plan(blocks: u64, cpus: u32, uuid: [u8; 16], label: &str) -> Superblock {
    let mut l = [0u8; 64];
    l[..label.len()].copy_from_slice(label.as_bytes());
    let journals = 4;
    let save_start = journals + cpus as u64;
    let save_blocks = (blocks / 1024).clamp(2, 1024);
    Superblock {
        version: FORMAT_VERSION,
        block_size: BLOCK_SIZE as u32,
        blocks,
        uuid,
        label: l,
        cpus,
        flags: 0,
        created: Timespec::now().sec,
        inode_roots: 3,
        journals,
        save_start,
        save_blocks,
        data_start: save_start + save_blocks,
    }
}

/// Write an empty root directory (owned by root, mode 0755) into the inode slot at `off` and
/// make it live: mkfs does, and fsck when the root is beyond reading.
pub(crate) fn write_root(pm: &crate::persist::PmRegion, off: u64) -> Result<InodeCreation> {
    let root = InodeCreation {
        generation: 1,
        mode: libc::S_IFDIR | 0o755,
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        parent: ROOT_INO,
        time: Timespec::now(),
    };
    pm.write(off, &root.encode())?;
    pm.persist(off, layout::INODE_SIZE);
    pm.store_u64(off + layout::inode::STATE, layout::inode::LIVE)?;
    pm.persist(off + layout::inode::STATE, 8);
    Ok(root)
}

/// Write a new, empty zpmfs (root directory only) onto `dev`.
pub fn format(dev: &Device, opts: &FormatOptions) -> Result<FormatSummary> {
    if dev.size() < MIN_DEVICE_SIZE {
        return Err(Error::Io(format!(
            "{} is {} bytes; zpmfs needs at least {} bytes ({} MiB)",
            dev.path().display(),
            dev.size(),
            MIN_DEVICE_SIZE,
            MIN_DEVICE_SIZE >> 20
        )));
    }
    if opts.label.len() > LABEL_MAX {
        return Err(Error::Invalid("label longer than 63 bytes"));
    }
    let cpus = opts
        .cpus
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
        .clamp(1, 256);
    let blocks = dev.size() / BLOCK_SIZE;
    let uuid = opts.uuid.unwrap_or_else(random_uuid);
    let sb = plan(blocks, cpus, uuid, &opts.label);
    let pm = dev.map()?;
    pm.zero_nt(0, (sb.data_start * BLOCK_SIZE).max(WIPE_BYTES))?;
    pm.fence();
    let alloc = Allocator::new(sb.data_start, blocks, cpus);
    alloc.free(sb.data_start, blocks - sb.data_start);
    for c in 0..cpus as u64 {
        let root = alloc.alloc_one(c as usize)?;
        pm.zero_nt(root * BLOCK_SIZE, BLOCK_SIZE)?;
        pm.store_u64(sb.inode_roots * BLOCK_SIZE + c * 8, root)?;
    }
    pm.fence();
    pm.persist(sb.inode_roots * BLOCK_SIZE, cpus as u64 * 8);
    let (itables, _) = InodeTables::load(&pm, sb.inode_roots, cpus, (sb.data_start, blocks))?;
    let (ino, off) = itables.allocate(&pm, &alloc, 0)?;
    if ino != ROOT_INO {
        return Err(Error::Corrupt(format!("mkfs: first inode is {ino}, not the root")));
    }
    write_root(&pm, off)?;
    let data_blocks = blocks - sb.data_start;
    let fs = Fs::assemble(pm, sb.clone(), alloc, itables, false);
    fs.save_allocator()?;
    let bytes = sb.encode();
    for b in [SUPER_REPLICA_BLOCK, SUPER_BLOCK] {
        fs.pm.write(b * BLOCK_SIZE, &bytes)?;
        fs.pm.persist(b * BLOCK_SIZE, bytes.len() as u64);
    }
    Ok(FormatSummary { uuid, blocks, block_size: BLOCK_SIZE as u32, cpus, data_blocks })
}
