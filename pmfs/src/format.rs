//! mkfs: lay a fresh zpmfs onto a device. Formatting is its own path, separate from
//! recovery; it ends by writing the superblock replica and then the superblock, so a device
//! whose format was interrupted is not mistaken for a filesystem.

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

/// Where the metadata goes for a device (or the first member of a set) of `blocks` blocks
/// (all members together) and `cpus` CPUs. A set's device table follows the save area.
fn plan(blocks: u64, cpus: u32, uuid: [u8; 16], label: &str, set: bool) -> Superblock {
    let mut l = [0u8; 64];
    l[..label.len()].copy_from_slice(label.as_bytes());
    let journals = 4;
    let save_start = journals + cpus as u64;
    let save_blocks = (blocks / 1024).clamp(2, 1024);
    let after_save = save_start + save_blocks;
    Superblock {
        version: FORMAT_VERSION,
        block_size: BLOCK_SIZE as u32,
        blocks,
        uuid,
        label: l,
        cpus,
        flags: if set { layout::FLAG_DEVICE_SET } else { 0 },
        created: Timespec::now().sec,
        inode_roots: 3,
        journals,
        save_start,
        save_blocks,
        data_start: after_save + set as u64,
        device_table: if set { after_save } else { 0 },
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
    format_set(&[dev], &[], opts)
}

/// Write a new, empty zpmfs across `devs`: one device, or a device set whose member i is on
/// NUMA node `nodes[i]` (0 where not given). The first member holds the metadata.
pub fn format_set(devs: &[&Device], nodes: &[u32], opts: &FormatOptions) -> Result<FormatSummary> {
    let Some(first) = devs.first() else { return Err(Error::Io("no device named".into())) };
    if devs.len() > layout::MAX_MEMBERS {
        return Err(Error::Io(format!("a device set has at most {} members", layout::MAX_MEMBERS)));
    }
    for dev in devs {
        if dev.size() < MIN_DEVICE_SIZE {
            return Err(Error::Io(format!(
                "{} is {} bytes; zpmfs needs at least {} bytes ({} MiB)",
                dev.path().display(),
                dev.size(),
                MIN_DEVICE_SIZE,
                MIN_DEVICE_SIZE >> 20
            )));
        }
    }
    if opts.label.len() > LABEL_MAX {
        return Err(Error::Invalid("label longer than 63 bytes"));
    }
    let cpus = opts
        .cpus
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
        .clamp(1, 256);
    let set = devs.len() > 1;
    let sizes: Vec<u64> = devs.iter().map(|d| d.size() / BLOCK_SIZE).collect();
    let blocks: u64 = sizes.iter().sum();
    let uuid = opts.uuid.unwrap_or_else(random_uuid);
    let sb = plan(blocks, cpus, uuid, &opts.label, set);
    let mut members = Vec::new();
    let mut start = 0;
    for (i, &n) in sizes.iter().enumerate() {
        let node = nodes.get(i).copied().unwrap_or(0);
        members.push(layout::Member {
            uuid: if i == 0 { uuid } else { random_uuid() },
            start,
            blocks: n,
            node,
        });
        start += n;
    }
    let table = layout::DeviceTable { members };
    let pm = if set {
        let parts: Vec<_> = devs
            .iter()
            .zip(&sizes)
            .map(|(d, &n)| (d.file(), n * BLOCK_SIZE, d.backing(), d.path()))
            .collect();
        crate::persist::PmRegion::map_parts(&parts, true)?
    } else {
        first.map()?
    };
    pm.zero_nt(0, (sb.data_start * BLOCK_SIZE).max(WIPE_BYTES))?;
    for (i, m) in table.members.iter().enumerate().skip(1) {
        // Each member's header (and replica) goes in its first blocks, over whatever was there.
        pm.zero_nt(m.start * BLOCK_SIZE, WIPE_BYTES.min(m.blocks * BLOCK_SIZE))?;
        let h = layout::MemberHeader {
            set_uuid: uuid,
            uuid: m.uuid,
            index: i as u32,
            count: table.members.len() as u32,
            start: m.start,
            blocks: m.blocks,
            node: m.node,
        };
        for b in 0..layout::MEMBER_HEADER_BLOCKS {
            pm.write((m.start + b) * BLOCK_SIZE, &h.encode())?;
            pm.flush((m.start + b) * BLOCK_SIZE, layout::MemberHeader::SIZE as u64);
        }
    }
    if set {
        let bytes = table.encode();
        pm.write(sb.device_table * BLOCK_SIZE, &bytes)?;
        pm.flush(sb.device_table * BLOCK_SIZE, BLOCK_SIZE);
    }
    pm.fence();
    let alloc = crate::set::allocator(&pm, &sb, &crate::numa::NumaMap::single())?;
    for (start, end) in alloc.areas() {
        alloc.free(start, end - start);
    }
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
    let data_blocks = alloc.total_blocks();
    let fs = Fs::assemble(pm, sb.clone(), alloc, itables, false);
    fs.save_allocator()?;
    let bytes = sb.encode();
    for b in [SUPER_REPLICA_BLOCK, SUPER_BLOCK] {
        fs.pm.write(b * BLOCK_SIZE, &bytes)?;
        fs.pm.persist(b * BLOCK_SIZE, bytes.len() as u64);
    }
    Ok(FormatSummary { uuid, blocks, block_size: BLOCK_SIZE as u32, cpus, data_blocks })
}
