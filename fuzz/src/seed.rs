//! Seed images, made at start-up by the real code: mkfs's format, operations through
//! [`pmfs::Fs`], then a clean unmount or a crash. The crashes are real too: the PM stores an
//! operation made are recorded and replayed onto the image as it was before, up to a cut
//! inside the operation. Each image is then cut down to its used blocks and some slack, so a
//! run copies and maps little.

use std::path::Path;

use pmfs::device::Device;
use pmfs::format::{format, FormatOptions, MIN_DEVICE_SIZE};
use pmfs::fsck::{fsck, FsckMode, FsckOptions};
use pmfs::layout::{self, state, Superblock, BLOCK_SIZE};
use pmfs::persist::{PmEvent, Recorder};
use pmfs::vfs::{Caller, FallocMode, Ino, RenameFlags, SetAttr, XattrFlags, ROOT_INO};
use pmfs::{Error, Fs, MountOptions, Result};

use crate::input::{Edit, Input, FIX_CHECKSUMS};
use crate::regions::{self, Region, RegionKind};
use crate::scratch::Scratch;
use crate::Harness;

pub struct SeedImage {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub regions: Vec<Region>,
}

/// Free blocks left past the last used one, for the targets that write after mounting.
const SLACK_BLOCKS: u64 = 24;
const UUID: [u8; 16] = *b"zpmfs-fuzz-seed!";
const ME: Caller = Caller::ROOT;
/// A workload marker: the operation to crash in starts here.
const OP_START: u64 = 1;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i % 251) as u8) | 1).collect()
}

fn mount(path: &Path, recorder: Option<std::sync::Arc<Recorder>>) -> Result<Fs> {
    Fs::mount(path, &MountOptions { recorder, ..Default::default() })
}

/// A small tree with every kind of inode and every kind of log entry: data with a hole and a
/// punched page, a truncation, hard links, short and long symlinks, special files, xattrs
/// set and removed, a directory moved to another parent, a directory whose log spans two
/// pages, and a file whose log was compacted.
fn populate(fs: &Fs) -> Result<()> {
    let reg = libc::S_IFREG | 0o644;
    let docs = fs.mkdir(ROOT_INO, b"docs", 0o755, ME)?.ino;
    let deep = fs.mkdir(docs, b"deep", 0o700, ME)?.ino;
    let a = fs.mknod(ROOT_INO, b"a", reg, 0, ME)?.ino;
    fs.write(a, 0, &pattern(1, 3 * 4096 + 100), false)?;
    fs.fallocate(a, FallocMode::PunchHole, 4096, 4096)?;
    let b = fs.mknod(docs, b"b", reg, 0, ME)?.ino;
    fs.write(b, 0, &pattern(2, 5000), false)?;
    fs.setattr(b, &SetAttr { size: Some(3000), ..Default::default() })?;
    let sparse = fs.mknod(ROOT_INO, b"sparse", reg, 0, ME)?.ino;
    fs.write(sparse, 6 * 4096, &pattern(3, 100), false)?;
    fs.link(a, deep, b"a-link")?;
    fs.symlink(ROOT_INO, b"short", b"docs/b", ME)?;
    fs.symlink(docs, b"long", &[b'L'; 300], ME)?;
    fs.mknod(ROOT_INO, b"fifo", libc::S_IFIFO | 0o600, 0, ME)?;
    fs.mknod(ROOT_INO, b"null", libc::S_IFCHR | 0o666, libc::makedev(1, 3) as u32, ME)?;
    let flags = XattrFlags::default();
    fs.setxattr(a, b"user.color", b"blue", flags)?;
    fs.setxattr(a, b"user.gone", b"x", flags)?;
    fs.removexattr(a, b"user.gone")?;
    fs.setxattr(docs, b"user.big", &pattern(4, 1000), flags)?;
    fs.mkdir(ROOT_INO, b"moved", 0o755, ME)?;
    fs.rename(ROOT_INO, b"moved", deep, b"moved", RenameFlags::default())?;
    let many = fs.mkdir(ROOT_INO, b"many", 0o755, ME)?.ino;
    // Long names fill the first log page with few inodes (each inode costs every run time).
    let name = |i: usize| format!("entry-{i:02}-{}", "n".repeat(200)).into_bytes();
    for i in 0..16 {
        fs.mknod(many, &name(i), reg, 0, ME)?;
    }
    for i in (0..16).step_by(5) {
        fs.unlink(many, &name(i))?;
    }
    let busy = fs.mknod(ROOT_INO, b"busy", reg, 0, ME)?.ino;
    for i in 0..40 {
        fs.setattr(busy, &SetAttr { mode: Some(0o600 + (i % 8)), ..Default::default() })?;
    }
    Ok(())
}

/// What the crashed image did after its last clean mount: more data, a new directory, and a
/// file unlinked while open (an orphan recovery must free).
fn work_then_crash(fs: &Fs) -> Result<()> {
    let a = fs.lookup(ROOT_INO, b"a")?.ino;
    fs.write(a, 8 * 4096, &pattern(5, 200), false)?;
    fs.mkdir(ROOT_INO, b"late", 0o755, ME)?;
    let open = fs.mknod(ROOT_INO, b"open-unlinked", libc::S_IFREG | 0o644, 0, ME)?.ino;
    fs.write(open, 0, &pattern(6, 4096), false)?;
    fs.open(open)?;
    fs.unlink(ROOT_INO, b"open-unlinked")
}

/// Run `op` on a mount of `base` while recording, and return `base` with the stores made
/// before event `cut(events)` applied: the image a crash at that point leaves.
fn crash_during(
    s: &Scratch,
    base: &[u8],
    op: impl Fn(&Fs) -> Result<()>,
    cut: impl Fn(&[PmEvent]) -> Option<usize>,
) -> Result<Vec<u8>> {
    s.put(base);
    let rec = Recorder::new();
    let fs = mount(s.path(), Some(rec.clone()))?;
    rec.mark(OP_START);
    op(&fs)?;
    drop(fs);
    let events = rec.take();
    let upto = cut(&events).ok_or_else(|| Error::Corrupt("seed: the cut point was not found".into()))?;
    let mut image = base.to_vec();
    for e in &events[..upto] {
        if let PmEvent::Store { off, data } | PmEvent::NtStore { off, data } = e {
            image[*off as usize..*off as usize + data.len()].copy_from_slice(data);
        }
    }
    Ok(image)
}

fn op_start(events: &[PmEvent]) -> usize {
    events.iter().position(|e| *e == PmEvent::Mark(OP_START)).unwrap_or(0)
}

fn stores_from(events: &[PmEvent], from: usize) -> impl Iterator<Item = (usize, u64, &[u8])> {
    events.iter().enumerate().skip(from).filter_map(|(i, e)| match e {
        PmEvent::Store { off, data } | PmEvent::NtStore { off, data } => Some((i, *off, data.as_slice())),
        _ => None,
    })
}

/// Cut a journaled operation after its journal count is set and its first word is stored:
/// recovery must roll the journal back.
fn journal_cut(journal_count: u64) -> impl Fn(&[PmEvent]) -> Option<usize> {
    move |events| {
        let mut stores = stores_from(events, op_start(events));
        stores.find(|&(_, off, data)| off == journal_count && data.iter().any(|&b| b != 0))?;
        stores.next().map(|(i, _, _)| i + 1)
    }
}

/// Cut a create after the new inode went live and before its directory entry committed: an
/// unreachable inode, which recovery must free.
fn create_cut(data_start: u64) -> impl Fn(&[PmEvent]) -> Option<usize> {
    move |events| {
        stores_from(events, op_start(events))
            .find(|&(_, off, data)| {
                off >= data_start * BLOCK_SIZE && off % layout::INODE_SIZE == 0 && data == 1u64.to_le_bytes()
            })
            .map(|(i, _, _)| i + 1)
    }
}

/// Cut `image` down to its last non-zero block and [`SLACK_BLOCKS`], with the superblock
/// copies saying so. A clean image is then mounted (rebuilding after the clean flag is
/// cleared) and unmounted, so its saved free-space map is the real code's for the new size.
fn shrink(s: &Scratch, mut image: Vec<u8>, clean: bool) -> Result<Vec<u8>> {
    let old_blocks = image.len() as u64 / BLOCK_SIZE;
    let used = image.chunks(BLOCK_SIZE as usize).rposition(|b| b.iter().any(|&x| x != 0)).unwrap_or(0);
    let blocks = (used as u64 + 1 + SLACK_BLOCKS).min(old_blocks);
    let mut sb = Superblock::decode(&image[..Superblock::SIZE], old_blocks)?;
    sb.blocks = blocks;
    let bytes = sb.encode();
    for copy in [layout::SUPER_BLOCK, layout::SUPER_REPLICA_BLOCK] {
        let at = (copy * BLOCK_SIZE) as usize;
        image[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    image.truncate((blocks * BLOCK_SIZE) as usize);
    if clean {
        let at = (layout::STATE_BLOCK * BLOCK_SIZE + state::CLEAN) as usize;
        image[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
        s.put(&image);
        let fs = mount(s.path(), None)?;
        fs.unmount()?;
        drop(fs);
        image = s.get();
    }
    Ok(image)
}

/// A seed must be sound: fsck finds nothing wrong, and it mounts.
fn verify(s: &Scratch, name: &str, image: &[u8]) -> Result<()> {
    s.put(image);
    let report = fsck(s.path(), &FsckOptions { mode: FsckMode::Check, force: true })?;
    if let Some(p) = report.problems.first() {
        return Err(Error::Corrupt(format!("seed image {name}: fsck found {}", p.what)));
    }
    s.put(image);
    drop(mount(s.path(), None)?);
    Ok(())
}

/// Build every seed image: clean, crashed between operations, crashed inside a journaled
/// rename, crashed inside a create.
pub fn build_all() -> Result<Vec<SeedImage>> {
    let s = Scratch::new("seed");
    s.put(&vec![0u8; MIN_DEVICE_SIZE as usize]);
    let opts = FormatOptions { label: "fuzz".into(), uuid: Some(UUID), cpus: Some(1) };
    format(&Device::open(s.path(), true)?, &opts)?;
    let fs = mount(s.path(), None)?;
    populate(&fs)?;
    fs.unmount()?;
    drop(fs);
    let clean = s.get();

    let fs = mount(s.path(), None)?;
    work_then_crash(&fs)?;
    drop(fs);
    let crashed = s.get();

    let sb = Superblock::decode(&clean[..Superblock::SIZE], clean.len() as u64 / BLOCK_SIZE)?;
    let rename = |fs: &Fs| {
        let docs: Ino = fs.lookup(ROOT_INO, b"docs")?.ino;
        let many: Ino = fs.lookup(ROOT_INO, b"many")?.ino;
        fs.rename(docs, b"b", many, b"b-moved", RenameFlags::default())
    };
    let journal = crash_during(&s, &clean, rename, journal_cut(sb.journals * BLOCK_SIZE))?;
    let create = |fs: &Fs| fs.mknod(ROOT_INO, b"half-made", libc::S_IFREG | 0o644, 0, ME).map(|_| ());
    let half = crash_during(&s, &clean, create, create_cut(sb.data_start))?;

    let mut out = Vec::new();
    for (name, image, was_clean) in [
        ("clean", clean, true),
        ("crashed", crashed, false),
        ("journal", journal, false),
        ("create", half, false),
    ] {
        let bytes = shrink(&s, image, was_clean)?;
        verify(&s, name, &bytes)?;
        let regions = regions::find(&bytes)?;
        out.push(SeedImage { name, bytes, regions });
    }
    Ok(out)
}

/// The starting corpus of a target: each seed image unchanged, and for each region it edits
/// one bit flipped at its start and one in its middle, checksums fixed. Returns the count.
pub fn write_seed_inputs(h: &Harness, dir: &Path, wanted: fn(RegionKind) -> bool) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut n = 0;
    let mut put = |name: String, bytes: Vec<u8>| -> std::io::Result<()> {
        n += 1;
        std::fs::write(dir.join(name), bytes)
    };
    for (i, seed) in h.seeds.iter().enumerate() {
        put(format!("seed-{}", seed.name), Input::encode(i as u8, 0, &[]))?;
        let regions: Vec<&Region> = seed.regions.iter().filter(|r| wanted(r.kind)).collect();
        for (r, region) in regions.iter().enumerate().take(256) {
            for (at, offset) in [("start", 0), ("middle", (region.len / 2) as u16)] {
                let edit = Edit { region: r as u8, offset, xor: true, bytes: &[1] };
                let name = format!("seed-{}-region{r}-{:?}-{at}", seed.name, region.kind)
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
                put(name, Input::encode(i as u8, FIX_CHECKSUMS, &[edit]))?;
            }
        }
    }
    Ok(n)
}
