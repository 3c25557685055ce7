//! fsck: check every structure of an unmounted zpmfs and repair what can be repaired.
//!
//! Checks: both superblock copies; the inode tables; every live inode's creation record, log
//! chain and entry checksums; block ownership (no block used twice or outside the data area,
//! none leaked); directory entries against the inodes they name; the tree's connectivity;
//! link counts; directory parents; and, on a clean image, the saved allocator state.
//! Modes follow e2fsck: check only (-n), preen (-p: only the safe repairs), repair (-y).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use crate::dir::kind_code;
use crate::error::{Error, Result};
use crate::fs::{Fs, MountOptions};
use crate::inode::InodeState;
use crate::itable::InodeTables;
use crate::layout::{self, state, Entry, InodeCreation, Superblock, BLOCK_SIZE, STATE_BLOCK};
use crate::log;
use crate::recovery::{read_superblock, BlockMap};
use crate::vfs::{Caller, FileKind, Ino, Timespec, ROOT_INO};

/// How far fsck may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckMode {
    /// -n: change nothing.
    Check,
    /// -p: repair only what is safe without a human (superblock copies, link counts,
    /// directory parents, allocator state).
    Preen,
    /// -y: repair everything repairable.
    Repair,
}

#[derive(Debug, Clone, Copy)]
pub struct FsckOptions {
    pub mode: FsckMode,
    /// -f: check even a cleanly unmounted image.
    pub force: bool,
}

/// One inconsistency found.
#[derive(Debug, Clone)]
pub struct Problem {
    pub what: String,
    pub fixed: bool,
}

/// What fsck found and did.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    pub problems: Vec<Problem>,
    /// Things worth saying that are not inconsistencies (recovery that mount will do).
    pub notes: Vec<String>,
    pub was_clean: bool,
    /// Clean and not forced: nothing was checked beyond the superblock.
    pub skipped: bool,
    pub label: String,
    pub inodes: u64,
    pub blocks_used: u64,
    pub blocks: u64,
}

impl FsckReport {
    /// e2fsck's exit codes: 0 clean, 1 errors corrected, 4 errors left uncorrected.
    pub fn exit_code(&self) -> i32 {
        if self.problems.iter().any(|p| !p.fixed) {
            4
        } else if self.problems.is_empty() {
            0
        } else {
            1
        }
    }
}

/// A repair that needs the filesystem's own operations (entries appended to logs).
enum Action {
    /// Give a file page its own copy of a block another owner also claims.
    Clone {
        ino: Ino,
        page: u64,
        from: u64,
    },
    DelEntry {
        dir: Ino,
        name: Vec<u8>,
        ino: Ino,
        cookie: u64,
        kind: FileKind,
    },
    SetParent {
        dir: Ino,
        parent: Ino,
    },
    SetLink {
        ino: Ino,
        nlink: u32,
    },
    /// Unmap pages mapped outside the data area.
    Punch {
        ino: Ino,
        page: u64,
        pages: u64,
    },
    Reconnect {
        ino: Ino,
    },
    /// A directory or special file holding file data: unmap it (its blocks were never
    /// claimed) and, with `size`, set the size to 0.
    DropData {
        ino: Ino,
        size: bool,
    },
    DelXattr {
        ino: Ino,
        name: Vec<u8>,
    },
}

struct Checker {
    mode: FsckMode,
    report: FsckReport,
    /// -p met a problem it may not repair: like e2fsck, it repairs nothing after that (later
    /// repairs could rest on the damage it left, e.g. append to a log it did not cut).
    preen_stopped: bool,
}

impl Checker {
    fn may_fix(&self, preen_safe: bool) -> bool {
        self.mode == FsckMode::Repair || (self.mode == FsckMode::Preen && preen_safe && !self.preen_stopped)
    }
    /// Record a problem; true if the caller should repair it.
    fn problem(&mut self, what: String, preen_safe: bool) -> bool {
        let fix = self.may_fix(preen_safe);
        self.report.problems.push(Problem { what, fixed: fix });
        if !fix {
            self.stop_preening();
        }
        fix
    }
    /// Record a problem no mode repairs, so that no report counts it fixed.
    fn unfixable(&mut self, what: String) {
        self.report.problems.push(Problem { what, fixed: false });
        self.stop_preening();
    }
    fn stop_preening(&mut self) {
        if self.mode == FsckMode::Preen && !self.preen_stopped {
            self.preen_stopped = true;
            self.report.notes.push(
                "UNEXPECTED INCONSISTENCY: -p repairs nothing after a problem it may not repair; \
                 run fsck.zpmfs without -p or -a"
                    .into(),
            );
        }
    }
}

/// Check (and in repair modes, repair) the zpmfs on `path`, which must not be mounted.
pub fn fsck(path: &Path, opts: &FsckOptions) -> Result<FsckReport> {
    fsck_with_progress(path, opts, None)
}

/// As [`fsck`], calling `progress(inodes checked, inodes in use)` now and then.
pub fn fsck_with_progress(
    path: &Path,
    opts: &FsckOptions,
    progress: Option<&dyn Fn(u64, u64)>,
) -> Result<FsckReport> {
    fsck_devices(&[path.to_path_buf()], opts, progress)
}

/// As [`fsck_with_progress`], of the zpmfs on `paths`: one device, or members of a device set
/// (the others are found by UUID); the whole set is checked.
pub fn fsck_devices(
    paths: &[std::path::PathBuf],
    opts: &FsckOptions,
    progress: Option<&dyn Fn(u64, u64)>,
) -> Result<FsckReport> {
    let path = paths.first().map(|p| p.as_path()).unwrap_or(Path::new(""));
    let writable = opts.mode != FsckMode::Check;
    let mut notes = Vec::new();
    if writable {
        // An image that crashed gets the same recovery mount would give it, first.
        if let Ok(opened) = crate::set::open(paths, false) {
            let clean = opened.pm.read_u64(STATE_BLOCK * BLOCK_SIZE + state::CLEAN).unwrap_or(1);
            drop(opened);
            if clean != 1 {
                if let Ok(fs) = Fs::mount_devices(paths, &MountOptions::default()) {
                    let r = fs.mount_report();
                    fs.unmount()?;
                    notes.push(format!(
                        "recovered an unclean shutdown: {} journal(s) rolled back, {} orphan inode(s) freed",
                        r.journals_rolled_back, r.orphans_freed
                    ));
                }
            }
        }
    }
    let crate::set::Opened { devices, pm, table } = crate::set::open(paths, writable)?;
    let blocks = pm.len() / BLOCK_SIZE;
    let mut c =
        Checker { mode: opts.mode, report: FsckReport { notes, ..Default::default() }, preen_stopped: false };

    // Superblock and its replica.
    let mut b0 = [0u8; Superblock::SIZE];
    let mut b1 = [0u8; Superblock::SIZE];
    pm.read(0, &mut b0)?;
    pm.read(BLOCK_SIZE, &mut b1)?;
    let sb = match (Superblock::decode(&b0, blocks), Superblock::decode(&b1, blocks)) {
        (Ok(a), Ok(b)) if a == b => a,
        (Ok(a), _) => {
            if c.problem(
                "the superblock replica (block 1) is damaged or differs from the superblock".into(),
                true,
            ) {
                pm.write(BLOCK_SIZE, &a.encode())?;
                pm.persist(BLOCK_SIZE, Superblock::SIZE as u64);
            }
            a
        }
        (Err(e), Ok(b)) => {
            if c.problem(
                format!("the superblock (block 0) is bad ({}); the replica is good", e.detail()),
                true,
            ) {
                pm.write(0, &b.encode())?;
                pm.persist(0, Superblock::SIZE as u64);
            }
            b
        }
        (Err(_), Err(_)) => {
            return Err(read_superblock(&pm, path, false)
                .err()
                .unwrap_or(Error::Corrupt("no superblock".into())))
        }
    };
    c.report.label = sb.label_str();
    c.report.blocks = sb.blocks;
    let st_block = STATE_BLOCK * BLOCK_SIZE;
    let clean = pm.read_u64(st_block + state::CLEAN)? == 1;
    c.report.was_clean = clean;
    if clean && !opts.force && c.report.problems.is_empty() {
        c.report.skipped = true;
        c.report.inodes = pm.read_u64(st_block + state::SAVED_INODES)?;
        return Ok(c.report);
    }

    let data = (sb.data_start, sb.blocks);
    let (itables, live) = InodeTables::load(&pm, sb.inode_roots, sb.cpus, data)
        .map_err(|e| Error::Corrupt(format!("inode tables: {}", e.detail())))?;
    // Journals in flight: recovery will restore these words; read through them.
    let mut overrides: HashMap<u64, u64> = HashMap::new();
    if !clean {
        c.report
            .notes
            .push("not cleanly unmounted: checking the state that recovery at mount will produce".into());
        // Repairs append to logs, and rolling a journal back later would undo them: a repair
        // rolls the journals back now, as recovery would; a check reads through them.
        let rolled_back = writable
            && crate::journal::Journals::new(sb.journals, sb.cpus)
                .recover(&pm, |off| itables.is_inode_word(off))
                .is_ok();
        for j in 0..sb.cpus as u64 {
            if rolled_back {
                break;
            }
            let base = (sb.journals + j) * BLOCK_SIZE;
            let count = pm.read_u64(base + layout::journal::COUNT)?;
            // What recovery would refuse, fsck must too, else mount fails on an image it passed.
            let mut bad = (count as usize > layout::JOURNAL_RECORDS)
                .then(|| format!("impossible record count {count}"));
            let mut records = Vec::new();
            for r in 0..if bad.is_none() { count } else { 0 } {
                let at = base + layout::journal::RECORDS + r * 16;
                let (off, old) = (pm.read_u64(at)?, pm.read_u64(at + 8)?);
                if off % 8 != 0 || !itables.is_inode_word(off) {
                    bad = Some(format!("record {r} names offset {off}, which is not in an inode"));
                    break;
                }
                records.push((off, old));
            }
            match bad {
                None => overrides.extend(records),
                Some(why) => {
                    if c.problem(format!("journal {j}: {why}; its unfinished operation is dropped"), false) {
                        pm.store_u64(base + layout::journal::COUNT, 0)?;
                        pm.persist(base + layout::journal::COUNT, 8);
                    }
                }
            }
        }
    }
    let word =
        |off: u64| -> Result<u64> { overrides.get(&off).copied().map_or_else(|| pm.read_u64(off), Ok) };

    // Every live inode: creation record, then its log.
    let mut actions = Vec::new();
    let mut loaded: HashMap<Ino, InodeState> = HashMap::new();
    let mut log_pages: HashMap<Ino, Vec<u64>> = HashMap::new();
    let mut live = live;
    live.sort_unstable();
    let step = (live.len() as u64 / 10).max(10_000);
    for (n, &ino) in live.iter().enumerate() {
        if let (Some(p), true) = (progress, n as u64 % step == 0 && n > 0) {
            p(n as u64, live.len() as u64);
        }
        let Some(off) = itables.offset(ino) else { continue };
        let mut raw = [0u8; layout::INODE_SIZE as usize];
        pm.read(off, &mut raw)?;
        let st = InodeCreation::decode(&raw, ino).and_then(|cr| InodeState::new(ino, off, &cr));
        let mut st = match st {
            Ok(s) => s,
            Err(e) => {
                if c.problem(format!("inode {ino}: {}; the inode is cleared", e.detail()), false) {
                    itables.release(&pm, ino)?;
                }
                continue;
            }
        };
        let head = word(off + layout::inode::LOG_HEAD)?;
        let tail = word(off + layout::inode::LOG_TAIL)?;
        let partial = log::replay_partial(&pm, ino, head, tail, data)?;
        let mut stop = partial.error.as_ref().map(|(t, h, e)| (*t, *h, e.detail()));
        let total = partial.entries.len();
        let mut applied = 0;
        // Where the xattr value being pieced together started: a cut must not keep half of it.
        let mut piece_start: Option<(u64, usize)> = None;
        for (pos, e) in &partial.entries {
            if st.xattrs.piece().is_none() {
                piece_start = None;
            }
            if let Err(err) = st.apply(e) {
                stop = Some((*pos, false, format!("entry at {pos}: {}", err.detail())));
                break;
            }
            if piece_start.is_none() && st.xattrs.piece().is_some() {
                piece_start = Some((*pos, applied));
            }
            applied += 1;
        }
        if st.xattrs.take_piece().is_some() {
            let (pos, at) = piece_start.unwrap_or((0, 0));
            applied = at;
            let why = format!("entry at {pos}: an xattr value is not finished");
            stop = match stop {
                Some((_, head_bad, e)) => Some((pos, head_bad, format!("{e}; {why}"))),
                None => Some((pos, false, why)),
            };
        }
        st.log = partial.state;
        let mut pages = partial.pages;
        if let Some((good_tail, head_bad, why)) = stop {
            let dropped = total - applied;
            let msg = format!("inode {ino}: {why}; the log is cut there ({dropped} later entries dropped)");
            if c.problem(msg, false) {
                if head_bad {
                    pm.store_u64(off + layout::inode::LOG_HEAD, 0)?;
                    pm.store_u64(off + layout::inode::LOG_TAIL, 0)?;
                    st.log = log::LogState::default();
                    pages.clear();
                } else {
                    pm.store_u64(off + layout::inode::LOG_TAIL, good_tail)?;
                    st.log.tail = good_tail;
                    // Pages past the new tail's page hold only dropped entries: free them.
                    let tail_page = good_tail / layout::BLOCK_SIZE;
                    if let Some(i) = pages.iter().position(|&pg| pg == tail_page) {
                        pages.truncate(i + 1);
                    }
                    st.log.pages = pages.len() as u32;
                    st.log.entries = applied as u32;
                }
                pm.persist(off + layout::inode::LOG_HEAD, 16);
            }
        }
        if let Some(why) = invalid_symlink(&st, sb.data_start..sb.blocks) {
            // As e2fsck does: a symlink without a readable target is cleared, and the tree walk
            // below then removes the names that point to it.
            if c.problem(format!("symlink {ino}: {why}; the symlink is removed"), false) {
                itables.release(&pm, ino)?;
                continue;
            }
        }
        check_contents(&mut c, &mut st, &mut actions);
        log_pages.insert(ino, pages);
        loaded.insert(ino, st);
    }
    // Without a root nothing is reachable: recreate it (empty) and let everything else go to
    // /lost+found below. Only possible while its inode-table slot exists.
    let mut root_recreated = false;
    if loaded.get(&ROOT_INO).is_none_or(|r| r.kind != FileKind::Directory) {
        let Some(off) = itables.offset(ROOT_INO) else {
            return Err(Error::Corrupt(
                "the root directory's inode-table block is gone; cannot rebuild".into(),
            ));
        };
        let what = "the root directory (inode 1) is missing or unreadable; it is recreated empty and every other file goes to /lost+found";
        if !c.problem(what.into(), false) {
            return Ok(c.report);
        }
        // The old root's log (and its pages) goes with it: the new root's log is empty.
        loaded.remove(&ROOT_INO);
        log_pages.remove(&ROOT_INO);
        let creation = crate::format::write_root(&pm, off)?;
        itables.mark_live(ROOT_INO);
        loaded.insert(ROOT_INO, InodeState::new(ROOT_INO, off, &creation)?);
        root_recreated = true;
    }

    // Block ownership.
    let mut used = BlockMap::new(sb.blocks);
    used.claim(0, sb.data_start, &|| "metadata".into())?;
    for (start, n) in table.as_ref().map(crate::set::header_blocks).unwrap_or_default() {
        used.claim(start, n, &|| "a device set member's header".into())?;
    }
    for b in itables.metadata_blocks(&pm)? {
        if b >= sb.blocks || used.claim(b, 1, &|| String::new()).is_err() {
            c.unfixable(format!("inode table block {b} is used twice or outside the device"));
        }
    }
    let mut inos: Vec<Ino> = loaded.keys().copied().collect();
    inos.sort_unstable();
    for &ino in &inos {
        let st = &loaded[&ino];
        for &p in log_pages.get(&ino).map_or(&[][..], |v| v) {
            if used.claim(p, 1, &|| String::new()).is_err() {
                c.unfixable(format!("inode {ino}: log page {p} is also used by something else"));
            }
        }
        for m in st.extents.all() {
            let end = m.block + m.pages;
            // Pages mapped outside the data area become holes a run at a time: one damaged
            // entry can map billions of them.
            for (s, e) in [(m.block, end.min(sb.data_start)), (m.block.max(sb.blocks), end)] {
                if s < e {
                    let page = m.page + (s - m.block);
                    let what = format!("inode {ino}: file pages {page}+{} are in blocks {s}+{}, outside the data area; they become holes", e - s, e - s);
                    if c.problem(what, false) {
                        actions.push(Action::Punch { ino, page, pages: e - s });
                    }
                }
            }
            for b in m.block.max(sb.data_start)..end.min(sb.blocks) {
                let page = m.page + (b - m.block);
                if used.claim(b, 1, &|| String::new()).is_err() {
                    // As e2fsck does with blocks claimed twice: the later claimant gets its own
                    // copy, so the file the block really belongs to keeps its data either way.
                    let what = format!("inode {ino}: file page {page} is in block {b}, which is also used by something else; the file gets its own copy");
                    if c.problem(what, false) {
                        actions.push(Action::Clone { ino, page, from: b });
                    }
                }
            }
        }
    }

    // The tree from the root: entries, parents.
    let mut reached: HashSet<Ino> = HashSet::from([ROOT_INO]);
    let mut names: HashMap<Ino, u32> = HashMap::new();
    walk_tree(ROOT_INO, &loaded, &mut c, &mut actions, &mut reached, &mut names);

    // Unreachable inodes: orphans. After a crash, mount frees them; on a clean image they
    // are lost files, reconnected to /lost+found with everything below them, as e2fsck does:
    // directories first, each lost subtree by its topmost lost directory (found through
    // '..'), then the other files no directory (reconnected or not) validly names.
    let mut orphans: Vec<Ino> = loaded.keys().filter(|i| !reached.contains(i)).copied().collect();
    orphans.sort_unstable_by_key(|i| (loaded[i].kind != FileKind::Directory, *i));
    for ino in orphans {
        let st = &loaded[&ino];
        if (!clean && !root_recreated) || (st.kind != FileKind::Directory && st.nlink == 0) {
            c.report.notes.push(format!("inode {ino} is unlinked; mount frees it"));
            continue;
        }
        // Each round reconnects one more inode, so this ends; usually the first reaches `ino`.
        while !reached.contains(&ino) {
            let top = lost_subtree_top(ino, &loaded, &reached);
            let st = &loaded[&top];
            let what = format!(
                "inode {top} ({:?}, {} bytes) is not in any directory; it goes to /lost+found",
                st.kind, st.size
            );
            if c.problem(what, false) {
                actions.push(Action::Reconnect { ino: top });
            }
            // What it names is reachable again once it is reconnected: check and count it as such.
            reached.insert(top);
            if st.kind == FileKind::Directory {
                walk_tree(top, &loaded, &mut c, &mut actions, &mut reached, &mut names);
            }
        }
    }

    // Link counts, against every name the repaired tree will have.
    let mut named: Vec<(Ino, u32)> = names.into_iter().collect();
    named.sort_unstable();
    for (ino, n) in named {
        let have = loaded[&ino].nlink;
        if have != n && c.problem(format!("inode {ino}: link count is {have}, should be {n}"), true) {
            actions.push(Action::SetLink { ino, nlink: n });
        }
    }

    // The allocator state a clean unmount saved must be exactly the blocks nobody uses.
    let mut clear_clean = false;
    if clean {
        let count = pm.read_u64(st_block + state::SAVED_EXTENTS)?;
        let mut free = BlockMap::new(sb.blocks);
        let mut ok = count.saturating_mul(16) <= sb.save_blocks * BLOCK_SIZE;
        if ok {
            let mut bytes = vec![0u8; (count * 16) as usize];
            pm.read(sb.save_start * BLOCK_SIZE, &mut bytes)?;
            ok = crc32c::crc32c(&bytes) as u64 == pm.read_u64(st_block + state::SAVED_CRC)?;
            for ch in bytes.chunks_exact(16) {
                if !ok {
                    break;
                }
                let s = u64::from_le_bytes(ch[..8].try_into().unwrap_or_default());
                let l = u64::from_le_bytes(ch[8..].try_into().unwrap_or_default());
                ok = s >= sb.data_start
                    && s.checked_add(l).is_some_and(|e| e <= sb.blocks)
                    && free.claim(s, l, &|| String::new()).is_ok();
            }
        }
        if !ok {
            clear_clean |= c.problem("the saved free-space map is unreadable; it is rebuilt".into(), true);
        } else {
            let (mut both, mut leaked) = (0u64, 0u64);
            for b in sb.data_start..sb.blocks {
                match (used.is_used(b), free.is_used(b)) {
                    (true, true) => both += 1,
                    (false, false) => leaked += 1,
                    _ => {}
                }
            }
            if both > 0 {
                clear_clean |= c.problem(
                    format!("{both} blocks in use are also marked free; the free-space map is rebuilt"),
                    true,
                );
            }
            if leaked > 0 {
                clear_clean |= c.problem(
                    format!(
                        "{leaked} blocks are neither in use nor free (leaked); the free-space map is rebuilt"
                    ),
                    true,
                );
            }
        }
    }

    let mut blocks_used = 0;
    for b in 0..sb.blocks {
        blocks_used += used.is_used(b) as u64;
    }
    c.report.blocks_used = blocks_used;
    c.report.inodes = loaded.len() as u64;

    if !actions.is_empty() {
        drop(devices);
        apply_actions(pm, sb, itables, used, loaded, actions, !clean)?;
    } else if clear_clean {
        // The next mount rebuilds free space by recovery. On a clean image no operation is in
        // flight, so whatever a journal holds is stale: recovery must not roll it back.
        crate::journal::Journals::new(sb.journals, sb.cpus).forget(&pm)?;
        pm.store_u64(st_block + state::CLEAN, 0)?;
        pm.persist(st_block + state::CLEAN, 8);
    }
    Ok(c.report)
}

/// Walk the directories below `start`: check every entry against the inode it names, queue
/// removals of bad entries and fixes of wrong parents, and count the names of non-directories.
fn walk_tree(
    start: Ino,
    loaded: &HashMap<Ino, InodeState>,
    c: &mut Checker,
    actions: &mut Vec<Action>,
    reached: &mut HashSet<Ino>,
    names: &mut HashMap<Ino, u32>,
) {
    let mut queue = VecDeque::from([start]);
    while let Some(dir) = queue.pop_front() {
        let entries = loaded.get(&dir).and_then(|d| d.dir.as_ref()).map(|d| d.all()).unwrap_or_default();
        for (name, slot) in entries {
            let shown = String::from_utf8_lossy(&name).into_owned();
            let bad = match loaded.get(&slot.ino) {
                None => Some(format!("names inode {} which is not in use", slot.ino)),
                Some(t) if t.kind != slot.kind => {
                    Some(format!("says {:?} but inode {} is {:?}", slot.kind, slot.ino, t.kind))
                }
                Some(t) if t.kind == FileKind::Directory && reached.contains(&slot.ino) => {
                    Some(format!("is a second name of directory {}", slot.ino))
                }
                Some(t) if t.nlink == 0 => Some(format!("names removed inode {}", slot.ino)),
                _ => None,
            };
            if let Some(why) = bad {
                if c.problem(format!("directory {dir}: entry {shown:?} {why}; the entry is removed"), false) {
                    actions.push(Action::DelEntry {
                        dir,
                        name,
                        ino: slot.ino,
                        cookie: slot.cookie,
                        kind: slot.kind,
                    });
                }
                continue;
            }
            reached.insert(slot.ino);
            if slot.kind == FileKind::Directory {
                queue.push_back(slot.ino);
                let parent = loaded[&slot.ino].parent();
                if parent != dir
                    && c.problem(format!("directory {}: '..' is {parent}, should be {dir}", slot.ino), true)
                {
                    actions.push(Action::SetParent { dir: slot.ino, parent: dir });
                }
            } else {
                *names.entry(slot.ino).or_default() += 1;
            }
        }
    }
}

/// The topmost unreachable directory above `ino` (`ino` itself if it is not a directory): up
/// through '..' while the parent is an unreachable directory that names the child, stopping
/// where the chain loops.
fn lost_subtree_top(ino: Ino, loaded: &HashMap<Ino, InodeState>, reached: &HashSet<Ino>) -> Ino {
    let mut top = ino;
    let mut seen = HashSet::from([ino]);
    while let Some(p) = loaded.get(&top).filter(|s| s.kind == FileKind::Directory).map(|s| s.parent()) {
        let names_top = !reached.contains(&p)
            && loaded.get(&p).and_then(|d| d.dir.as_ref()).is_some_and(|d| {
                d.all().iter().any(|(_, sl)| sl.ino == top && sl.kind == FileKind::Directory)
            });
        if !names_top || !seen.insert(p) {
            break;
        }
        top = p;
    }
    top
}

/// Why a symlink's target cannot be read back whole, if it cannot: wrong length, pages not
/// mapped, or mapped outside the data area (which the block check would turn into holes).
fn invalid_symlink(st: &InodeState, data: std::ops::Range<u64>) -> Option<String> {
    if st.kind != FileKind::Symlink {
        return None;
    }
    let pages = st.size.div_ceil(BLOCK_SIZE);
    if st.size == 0 || st.size > crate::vfs::SYMLINK_MAX as u64 {
        return Some(format!("the target is {} bytes long", st.size));
    }
    if st.extents.mapped_pages() < pages {
        return Some("the target is missing".into());
    }
    let outside =
        st.extents.all().iter().any(|m| m.block < data.start || m.block.saturating_add(m.pages) > data.end);
    outside.then(|| "the target is stored outside the data area".into())
}

/// What an inode holds must suit its kind: a directory or special file has no data, extended
/// attributes have valid names and sizes (symlinks: `invalid_symlink`).
fn check_contents(c: &mut Checker, st: &mut InodeState, actions: &mut Vec<Action>) {
    let ino = st.ino;
    match st.kind {
        FileKind::Symlink | FileKind::Regular => {}
        _ => {
            if st.extents.mapped_pages() > 0 || (st.kind != FileKind::Directory && st.size != 0) {
                if c.problem(format!("inode {ino} ({:?}) holds file data; it is dropped", st.kind), false) {
                    // Unmapped now, before the block check: the blocks are nobody's (so free)
                    // unless another owner claims them, and then they stay that owner's.
                    st.extents.remove(0, u64::MAX / 2);
                    actions.push(Action::DropData { ino, size: st.kind != FileKind::Directory });
                }
            }
        }
    }
    for (name, value) in &st.xattrs {
        let ok_ns = [&b"user."[..], b"trusted.", b"security.", b"system.posix_acl_"]
            .iter()
            .any(|ns| name.starts_with(ns));
        if !ok_ns || name.len() > crate::vfs::XATTR_NAME_MAX || value.len() > crate::vfs::XATTR_VALUE_MAX {
            let shown = String::from_utf8_lossy(name).into_owned();
            if c.problem(
                format!("inode {ino}: extended attribute {shown:?} is invalid; it is removed"),
                false,
            ) {
                actions.push(Action::DelXattr { ino, name: name.clone() });
            }
        }
    }
}

/// Carry out repairs through the filesystem's own commit paths, then unmount cleanly (which
/// writes a fresh free-space map).
fn apply_actions(
    pm: crate::persist::PmRegion,
    sb: Superblock,
    itables: InodeTables,
    used: BlockMap,
    loaded: HashMap<Ino, InodeState>,
    actions: Vec<Action>,
    keep_unclean: bool,
) -> Result<()> {
    let alloc = crate::set::allocator(&pm, &sb, &crate::numa::NumaMap::single())?;
    let mut b = sb.data_start;
    while b < sb.blocks {
        if used.is_used(b) {
            b += 1;
            continue;
        }
        let s = b;
        while b < sb.blocks && !used.is_used(b) {
            b += 1;
        }
        alloc.free(s, b - s);
    }
    let fs = Fs::assemble(pm, sb, alloc, itables, false);
    for (ino, st) in loaded {
        fs.inode_cache_insert(ino, std::sync::Arc::new(parking_lot::RwLock::new(st)));
    }
    let now = Timespec::now();
    for a in actions {
        match a {
            Action::DelEntry { dir, name, ino, cookie, kind } => {
                let r = fs.inode(dir)?;
                let mut st = r.write();
                let e = Entry::DentryDel { ino, cookie, kind: kind_code(kind), time: now, name };
                fs.commit(&mut st, vec![e])?;
            }
            Action::SetParent { dir, parent } => {
                fs.commit(&mut fs.inode(dir)?.write(), vec![Entry::Parent { parent }])?
            }
            Action::SetLink { ino, nlink } => {
                fs.commit(&mut fs.inode(ino)?.write(), vec![Entry::Link { nlink, ctime: now }])?
            }
            Action::Punch { ino, page, pages } => {
                let r = fs.inode(ino)?;
                let mut st = r.write();
                let e = Entry::Punch { pgoff: page, npages: pages, mtime: now };
                // The blocks are outside the data area: nothing to free.
                fs.commit_without_freeing(&mut st, vec![e])?;
            }
            Action::DropData { ino, size } => {
                let r = fs.inode(ino)?;
                let mut st = r.write();
                let mut entries = vec![Entry::Punch { pgoff: 0, npages: u64::MAX / 2, mtime: now }];
                if size {
                    entries.push(st.resized(0, now));
                }
                fs.commit_without_freeing(&mut st, entries)?;
            }
            Action::Clone { ino, page, from } => {
                let r = fs.inode(ino)?;
                let mut st = r.write();
                let new = fs.alloc.alloc_one(crate::alloc::current_cpu())?;
                fs.pm.copy_within_nt(from * BLOCK_SIZE, new * BLOCK_SIZE, BLOCK_SIZE)?;
                fs.pm.fence();
                let e = Entry::Write { pgoff: page, block: new, nblocks: 1, size: st.size, mtime: st.mtime };
                // The old block is someone else's: remap without freeing it.
                fs.commit_without_freeing(&mut st, vec![e])?;
            }
            Action::DelXattr { ino, name } => {
                fs.commit(&mut fs.inode(ino)?.write(), vec![Entry::XattrDel { ctime: now, name }])?
            }
            Action::Reconnect { ino } => {
                let lf = match fs.lookup(ROOT_INO, b"lost+found") {
                    Ok(a) => a.ino,
                    Err(_) => fs.mkdir(ROOT_INO, b"lost+found", 0o700, Caller::ROOT)?.ino,
                };
                let kind = fs.inode(ino)?.read().kind;
                let name = format!("#{ino}").into_bytes();
                {
                    let r = fs.inode(lf)?;
                    let mut st = r.write();
                    let cookie = st.dir_mut()?.take_cookie(&name);
                    fs.commit(
                        &mut st,
                        vec![Entry::DentryAdd { ino, cookie, kind: kind_code(kind), time: now, name }],
                    )?;
                }
                let r = fs.inode(ino)?;
                let mut st = r.write();
                let mut fix = vec![Entry::Link { nlink: 1, ctime: now }];
                if kind == FileKind::Directory {
                    fix.push(Entry::Parent { parent: lf });
                }
                fs.commit(&mut st, fix)?;
            }
        }
    }
    fs.unmount()?;
    if keep_unclean {
        // A crashed image stays one, so mount's recovery still frees the orphans this check
        // left to it (the unmount above marked it clean).
        fs.pm.store_u64(STATE_BLOCK * BLOCK_SIZE + state::CLEAN, 0)?;
        fs.pm.persist(STATE_BLOCK * BLOCK_SIZE + state::CLEAN, 8);
    }
    Ok(())
}
