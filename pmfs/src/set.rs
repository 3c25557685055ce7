//! Device sets: one zpmfs across several PM devices, one per NUMA node. The first member
//! holds the superblock, the metadata and the device table; every other member starts with
//! a header naming the set. Opening any member (or several) finds the rest by UUID among the
//! PM devices of the machine, checks each against the table, and maps them all one after
//! another into one region, so that set block numbers are offsets as on one device.

use std::path::{Path, PathBuf};

use crate::alloc::{Allocator, Area};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::layout::{DeviceTable, MemberHeader, Superblock, BLOCK_SIZE, FLAG_DEVICE_SET};
use crate::persist::PmRegion;

/// The devices of one zpmfs, opened (and locked while this lives) and mapped as one region.
pub struct Opened {
    pub devices: Vec<Device>,
    pub pm: PmRegion,
    /// The device table, for a set.
    pub table: Option<DeviceTable>,
}

impl Opened {
    /// The first member's path, for messages.
    pub fn path(&self) -> &Path {
        self.devices[0].path()
    }
}

/// What the first blocks of a device say it is.
enum Head {
    /// A superblock (either copy decodes); a set's first member, or a single-device zpmfs.
    First(Superblock),
    Member(MemberHeader),
    Other,
}

fn read_head(dev: &Device) -> Head {
    match dev.read_head(2 * BLOCK_SIZE as usize) {
        Ok(head) => classify(&head),
        Err(_) => Head::Other,
    }
}

/// What a device not named by the user holds, read without opening it as a [`Device`] (no
/// lock: another mounted zpmfs holds its devices locked, and waiting on each would stall).
fn peek_head(path: &Path) -> Head {
    use std::io::Read;
    let mut head = vec![0u8; 2 * BLOCK_SIZE as usize];
    match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)) {
        Ok(()) => classify(&head),
        Err(_) => Head::Other,
    }
}

fn classify(head: &[u8]) -> Head {
    for b in 0..2 {
        let at = b * BLOCK_SIZE as usize;
        let Some(bytes) = head.get(at..at + MemberHeader::SIZE.max(Superblock::SIZE)) else { continue };
        // The device size is checked once the set is known (a set's superblock counts all).
        if let Ok(sb) = Superblock::decode(bytes, u64::MAX) {
            return Head::First(sb);
        }
        if let Ok(h) = MemberHeader::decode(bytes) {
            return Head::Member(h);
        }
    }
    Head::Other
}

fn uuid_str(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The PM devices of this machine, to look for members that were not named.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/dev") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pmem =
                name.starts_with("pmem") && name[4..].bytes().all(|c| c.is_ascii_digit()) && name.len() > 4;
            if pmem || name.starts_with("dax") {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Open the zpmfs on `paths`: one device (a single-device zpmfs, or any member of a set),
/// or several members of one set (image files, which cannot be found by scanning).
pub fn open(paths: &[PathBuf], writable: bool) -> Result<Opened> {
    let Some(first_path) = paths.first() else {
        return Err(Error::Io("no device named".into()));
    };
    let mut given = Vec::new();
    for p in paths {
        let dev = Device::open(p, writable)?;
        let head = read_head(&dev);
        given.push((dev, head));
    }
    // A single device that is no set member: the classic path (its checks name the problem).
    let is_set = |h: &Head| match h {
        Head::First(sb) => sb.flags & FLAG_DEVICE_SET != 0,
        Head::Member(_) => true,
        Head::Other => false,
    };
    if given.len() == 1 && !is_set(&given[0].1) {
        let (dev, _) = given.pop().ok_or_else(|| Error::Io("no device".into()))?;
        let pm = dev.map()?;
        return Ok(Opened { devices: vec![dev], pm, table: None });
    }
    let set_of = |h: &Head| match h {
        Head::First(sb) => Some(sb.uuid),
        Head::Member(m) => Some(m.set_uuid),
        Head::Other => None,
    };
    let set = set_of(&given[0].1)
        .ok_or_else(|| Error::Corrupt(format!("{}: not a zpmfs device", first_path.display())))?;
    for (dev, head) in &given {
        match set_of(head) {
            None => return Err(Error::Corrupt(format!("{}: not a zpmfs device", dev.path().display()))),
            Some(u) if u != set => {
                return Err(Error::Corrupt(format!(
                    "{} belongs to zpmfs {}, but {} to {}: not one device set",
                    dev.path().display(),
                    uuid_str(&u),
                    first_path.display(),
                    uuid_str(&set)
                )))
            }
            Some(_) => {}
        }
    }
    // The first member: named, or found by the set's UUID.
    let mut first = given.iter().position(|(_, h)| matches!(h, Head::First(_)));
    if first.is_none() {
        for c in candidates() {
            if paths.contains(&c) {
                continue;
            }
            if !matches!(peek_head(&c), Head::First(sb) if sb.uuid == set) {
                continue;
            }
            let Ok(dev) = Device::open(&c, writable) else { continue };
            if let Head::First(sb) = read_head(&dev) {
                if sb.uuid == set {
                    given.push((dev, Head::First(sb)));
                    first = Some(given.len() - 1);
                    break;
                }
            }
        }
    }
    let Some(first) = first else {
        return Err(Error::Io(format!(
            "device set {}: its first member (which holds the superblock) is missing: name it, or attach it",
            uuid_str(&set)
        )));
    };
    let Head::First(sb) = &given[first].1 else {
        return Err(Error::Corrupt("device set: the first member has no superblock".into()));
    };
    let sb = sb.clone();
    let first_dev = &given[first].0;
    if sb.flags & FLAG_DEVICE_SET == 0 {
        return Err(Error::Io(format!(
            "{} holds a single-device zpmfs: mount it alone",
            first_dev.path().display()
        )));
    }
    let mut raw = vec![0u8; BLOCK_SIZE as usize];
    {
        use std::os::unix::fs::FileExt;
        first_dev
            .file()
            .read_exact_at(&mut raw, sb.device_table * BLOCK_SIZE)
            .map_err(|e| Error::Io(format!("cannot read {}: {e}", first_dev.path().display())))?;
    }
    let table = DeviceTable::decode(&raw, sb.blocks)
        .map_err(|e| Error::Corrupt(format!("{}: {}", first_dev.path().display(), e.detail())))?;
    let count = table.members.len();
    // Place every named device; two naming the same member is a copy, not a set.
    let mut slots: Vec<Option<usize>> = vec![None; count];
    slots[0] = Some(first);
    for (i, (dev, head)) in given.iter().enumerate() {
        let idx = match head {
            Head::First(_) if i == first => continue,
            Head::First(_) => 0,
            Head::Member(h) => h.index as usize,
            Head::Other => continue,
        };
        let Some(slot) = slots.get_mut(idx) else {
            return Err(Error::Corrupt(format!(
                "{}: says it is member {idx} of a set of {count}",
                dev.path().display()
            )));
        };
        if let Some(other) = *slot {
            if other != i {
                return Err(Error::Io(format!(
                    "{} and {} both hold member {idx} of device set {} (a copy?): name only one",
                    given[other].0.path().display(),
                    dev.path().display(),
                    uuid_str(&set)
                )));
            }
        }
        *slot = Some(i);
    }
    // Members not named: look for them among the machine's PM devices.
    if slots.iter().any(|s| s.is_none()) {
        for c in candidates() {
            if given.iter().any(|(d, _)| d.path() == c) {
                continue;
            }
            if !matches!(peek_head(&c), Head::Member(h) if h.set_uuid == set) {
                continue;
            }
            let Ok(dev) = Device::open(&c, writable) else { continue };
            if let Head::Member(h) = read_head(&dev) {
                let idx = h.index as usize;
                if h.set_uuid == set && idx < count && slots[idx].is_none() {
                    given.push((dev, Head::Member(h)));
                    slots[idx] = Some(given.len() - 1);
                }
            }
        }
    }
    for (idx, m) in table.members.iter().enumerate() {
        let Some(at) = slots[idx] else {
            return Err(Error::Io(format!(
                "device set {}: member {idx} of {count} (UUID {}, {} MiB, NUMA node {}) is missing: name it with the others, or attach it",
                uuid_str(&set),
                uuid_str(&m.uuid),
                m.blocks * BLOCK_SIZE >> 20,
                m.node
            )));
        };
        let (dev, head) = &given[at];
        if let Head::Member(h) = head {
            if h.uuid != m.uuid || h.start != m.start || h.blocks != m.blocks || h.count as usize != count {
                return Err(Error::Corrupt(format!(
                    "{}: its header does not match member {idx} of the device table",
                    dev.path().display()
                )));
            }
        }
        if dev.size() < m.blocks * BLOCK_SIZE {
            return Err(Error::Corrupt(format!(
                "{}: {} bytes, but member {idx} of the set holds {} (truncated?)",
                dev.path().display(),
                dev.size(),
                m.blocks * BLOCK_SIZE
            )));
        }
    }
    let mut ordered: Vec<Option<(Device, Head)>> = given.into_iter().map(Some).collect();
    let devices: Vec<Device> = slots
        .iter()
        .map(|s| s.and_then(|i| ordered[i].take()).map(|(d, _)| d))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::Io("device set: a member was lost while opening".into()))?;
    let parts: Vec<_> = devices
        .iter()
        .zip(&table.members)
        .map(|(d, m)| (d.file(), m.blocks * BLOCK_SIZE, d.backing(), d.path()))
        .collect();
    let pm = PmRegion::map_parts(&parts, writable)?;
    Ok(Opened { devices, pm, table: Some(table) })
}

/// The device table of a mapped set (None for one device).
pub fn table(pm: &PmRegion, sb: &Superblock) -> Result<Option<DeviceTable>> {
    if sb.flags & FLAG_DEVICE_SET == 0 {
        return Ok(None);
    }
    let mut raw = vec![0u8; BLOCK_SIZE as usize];
    pm.read(sb.device_table * BLOCK_SIZE, &mut raw)?;
    DeviceTable::decode(&raw, sb.blocks).map(Some)
}

/// The allocator for a mapped zpmfs (nothing free yet): one stripe per CPU on one device; on
/// a set, each member's data area on its node, split among that node's CPUs in `numa`.
pub fn allocator(pm: &PmRegion, sb: &Superblock, numa: &crate::numa::NumaMap) -> Result<Allocator> {
    let Some(table) = table(pm, sb)? else {
        return Ok(Allocator::new(sb.data_start, sb.blocks, sb.cpus));
    };
    let areas: Vec<Area> = table
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (start, end) = m.data_range(i, sb.data_start);
            Area { start, end, node: m.node }
        })
        .collect();
    Ok(Allocator::with_areas(&areas, numa))
}

/// Blocks of a set that belong to no data area: each member's header blocks.
pub fn header_blocks(table: &DeviceTable) -> Vec<(u64, u64)> {
    table.members.iter().skip(1).map(|m| (m.start, crate::layout::MEMBER_HEADER_BLOCKS)).collect()
}
