#![no_main]
//! The per-inode log replay on its own, without mounting: for every live inode of the seed,
//! the creation record, the page chain from head to tail (`log::replay_partial`, what fsck
//! uses, against `log::replay`, what mount uses), and each entry given its meaning
//! (`InodeState::apply`). Edits go only to inodes and log pages, and the image is mapped
//! once per seed, so this is the fastest target. Two more checks: every decoded entry
//! encodes back to itself, and the entries that log compaction would write for the replayed
//! state (`InodeState::snapshot`) rebuild the same state.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pmfs::device::Device;
use pmfs::inode::InodeState;
use pmfs::itable::InodeTables;
use pmfs::layout::{self, Entry, InodeCreation, Superblock, BLOCK_SIZE, INODE_SIZE, MAX_ENTRY};
use pmfs::log;
use pmfs::persist::PmRegion;
use pmfs::vfs::Ino;
use zpmfs_fuzz::regions::RegionKind;
use zpmfs_fuzz::scratch::Scratch;
use zpmfs_fuzz::{harness, init};

/// A seed image mapped once, with where its live inodes are.
struct Mapped {
    _file: Scratch,
    pm: PmRegion,
    inodes: Vec<(Ino, u64)>,
    data: (u64, u64),
}

static MAPPED: OnceLock<Vec<Mapped>> = OnceLock::new();

fn mapped() -> &'static [Mapped] {
    MAPPED.get_or_init(|| {
        let map = |bytes: &[u8], name: &str| -> pmfs::Result<Mapped> {
            let file = Scratch::new(&format!("replay-{name}"));
            file.put(bytes);
            let pm = Device::open(file.path(), true)?.map()?;
            let sb = Superblock::decode(&bytes[..Superblock::SIZE], bytes.len() as u64 / BLOCK_SIZE)?;
            let data = (sb.data_start, sb.blocks);
            let (itables, live) = InodeTables::load(&pm, sb.inode_roots, sb.cpus, data)?;
            let inodes = live.iter().filter_map(|&i| itables.offset(i).map(|o| (i, o))).collect();
            Ok(Mapped { _file: file, pm, inodes, data })
        };
        harness().seeds.iter().map(|s| map(&s.bytes, s.name).expect("map a seed image")).collect()
    })
}

fn word(raw: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(raw[at as usize..at as usize + 8].try_into().unwrap_or([0; 8]))
}

/// Runs of contiguous pages in contiguous blocks, merged: two maps that send every page to
/// the same block compare equal however their runs were split.
fn merged_runs(st: &InodeState) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    for m in st.extents.all() {
        match out.last_mut() {
            Some(l) if l.0 + l.2 == m.page && l.1 + l.2 == m.block => l.2 += m.pages,
            _ => out.push((m.page, m.block, m.pages)),
        }
    }
    out
}

fn replay_one(pm: &PmRegion, ino: Ino, off: u64, data: (u64, u64)) {
    let mut raw = [0u8; INODE_SIZE as usize];
    pm.read(off, &mut raw).expect("read an inode");
    let Ok(creation) = InodeCreation::decode(&raw, ino) else { return };
    let Ok(mut st) = InodeState::new(ino, off, &creation) else { return };
    let (head, tail) = (word(&raw, layout::inode::LOG_HEAD), word(&raw, layout::inode::LOG_TAIL));
    let whole = log::replay(pm, ino, head, tail, data);
    let Ok(partial) = log::replay_partial(pm, ino, head, tail, data) else { return };
    assert_eq!(whole.is_ok(), partial.error.is_none(), "replay and replay_partial disagree");
    for (_, e) in &partial.entries {
        assert_eq!(Entry::decode(&e.encode()).as_ref(), Ok(e), "a decoded entry does not encode back");
        if st.apply(e).is_err() {
            return;
        }
    }
    // A log that ends inside an xattr value is refused by mount (and cut by fsck): it is
    // never compacted.
    if st.xattrs.piece().is_some() {
        return;
    }
    let mut again = InodeState::new(ino, off, &creation).expect("the same creation record");
    for e in st.snapshot() {
        assert!(e.len() <= MAX_ENTRY, "compaction would write an entry of {} bytes", e.len());
        if let Err(err) = again.apply(&e) {
            panic!("inode {ino}: compaction entry {e:?} does not apply: {err}");
        }
    }
    assert_eq!(merged_runs(&st), merged_runs(&again), "inode {ino}: compaction changes the block map");
    assert_eq!(st.dir.as_ref().map(|d| d.all()), again.dir.as_ref().map(|d| d.all()));
    assert_eq!(st.xattrs, again.xattrs);
    let attrs = |s: &InodeState| (s.size, s.nlink, s.perm, s.uid, s.gid, s.parent());
    assert_eq!(attrs(&st), attrs(&again), "inode {ino}: compaction changes the attributes");
}

fuzz_target!(init: init("log_replay", RegionKind::is_log), |data: &[u8]| {
    let edited = harness().mutate(data, RegionKind::is_log);
    let m = &mapped()[edited.input.seed];
    m.pm.write(0, &edited.image).expect("restore the seed image");
    // Only the inodes edited: the others replay as they did for the seed.
    for &(ino, off) in &m.inodes {
        if edited.touched.is_empty() || edited.touched.iter().any(|r| r.ino == Some(ino)) {
            replay_one(&m.pm, ino, off, m.data);
        }
    }
});
