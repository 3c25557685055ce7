//! Run a workload on a DRAM image while recording, then mount every crash image it could
//! leave and check it against the oracle: mount (recovery) succeeds, the tree equals the state
//! before or after the operation in flight (every completed operation wholly there), the
//! filesystem stays usable, and a crash during recovery recovers to the same tree.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use pmfs::device::Device;
use pmfs::format::{format, FormatOptions};
use pmfs::persist::Recorder;
use pmfs::vfs::{Caller, FileKind};
use pmfs::{Fs, MountOptions, Result};

use crate::oracle::{diff, snapshot, Snapshot};
use crate::sim::{enumerate, CrashImage, Phase};
use crate::workload::{apply, resolve, seed_tree, Op};

const IMAGE_SIZE: u64 = 16 << 20;

/// How thorough a case is.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// In-flight stores combined per crash image (0, 1 or 2).
    pub k: usize,
    /// Check a crash during recovery for every n-th crash image (0: never).
    pub recovery_every: usize,
}

/// What one workload produced.
#[derive(Debug, Default)]
pub struct CaseResult {
    pub images: usize,
    pub failures: Vec<String>,
    /// Crash images checked, by the kind of operation in flight ("between operations" when
    /// none was; "recovery" for crashes during recovery).
    pub per_kind: std::collections::BTreeMap<&'static str, usize>,
}

struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let id =
            format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
        Scratch { path: PathBuf::from(format!("{dir}/zpmfs-crash-{}-{id}-{tag}.img", std::process::id())) }
    }
    fn put(&self, bytes: &[u8]) {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&self.path);
        if let Ok(f) = f {
            let _ = f.set_len(bytes.len() as u64);
            let _ = f.write_all_at(bytes, 0);
        }
    }
    /// Write an image that is zero outside `pages` (4 KiB page numbers): a sparse file with
    /// only those pages written, far cheaper than writing the whole image each time.
    fn put_pages(&self, bytes: &[u8], pages: &[u64]) {
        let f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&self.path);
        if let Ok(f) = f {
            let _ = f.set_len(bytes.len() as u64);
            for &p in pages {
                let lo = (p * 4096) as usize;
                let hi = (lo + 4096).min(bytes.len());
                if lo < hi {
                    let _ = f.write_all_at(&bytes[lo..hi], lo as u64);
                }
            }
        }
    }
    fn get(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Pages that are non-zero in `base` or written by any event: every image built from them is
/// zero elsewhere.
fn touched_pages(base: &[u8], events: &[pmfs::persist::PmEvent]) -> Vec<u64> {
    use pmfs::persist::PmEvent;
    let mut pages: Vec<u64> = base
        .chunks(4096)
        .enumerate()
        .filter(|(_, c)| c.iter().any(|&b| b != 0))
        .map(|(i, _)| i as u64)
        .collect();
    for e in events {
        if let PmEvent::Store { off, data } | PmEvent::NtStore { off, data } = e {
            let end = off + data.len() as u64;
            pages.extend(off / 4096..end.div_ceil(4096));
        }
    }
    pages.sort_unstable();
    pages.dedup();
    pages
}

fn mount(path: &Path, recorder: Option<std::sync::Arc<Recorder>>) -> Result<Fs> {
    Fs::mount(path, &MountOptions { recorder, ..Default::default() })
}

fn run_ops(fs: &Fs, ops: &[Op], rec: Option<&Recorder>) {
    let pm_store = |off: u64, data: &[u8]| -> Result<()> {
        let pm = fs.device_region();
        pm.write(off, data)?;
        pm.persist(off, data.len() as u64);
        Ok(())
    };
    for (i, op) in ops.iter().enumerate() {
        if let Some(r) = rec {
            r.mark(2 * i as u64);
        }
        let _ = apply(fs, op, &pm_store);
        if let Some(r) = rec {
            r.mark(2 * i as u64 + 1);
        }
    }
}

/// The image every case starts from: formatted, seeded, cleanly unmounted.
pub fn seeded_image() -> Result<Vec<u8>> {
    let s = Scratch::new("seed");
    s.put(&vec![0u8; IMAGE_SIZE as usize]);
    format(&Device::open(&s.path, true)?, &FormatOptions { cpus: Some(2), ..Default::default() })?;
    let fs = mount(&s.path, None)?;
    run_ops(&fs, &seed_tree(), None);
    fs.unmount()?;
    drop(fs);
    Ok(s.get())
}

/// Make sure the recovered filesystem is usable: a file created and removed in every
/// directory, then unmount and mount again with the same tree.
fn usable(path: &Path, fs: Fs, snap: &Snapshot) -> std::result::Result<(), String> {
    let me = Caller::ROOT;
    for (p, n) in snap {
        if n.kind != FileKind::Directory {
            continue;
        }
        let dir = resolve(&fs, p).map_err(|e| format!("resolve {p}: {e}"))?;
        fs.mknod(dir, b"__probe__", libc::S_IFREG | 0o644, 0, me)
            .map_err(|e| format!("create in {p}: {e}"))?;
        fs.write(
            resolve(&fs, &format!("{}/__probe__", p.trim_end_matches('/'))).map_err(|e| e.to_string())?,
            0,
            b"x",
            false,
        )
        .map_err(|e| format!("write in {p}: {e}"))?;
        fs.unlink(dir, b"__probe__").map_err(|e| format!("unlink in {p}: {e}"))?;
    }
    fs.unmount().map_err(|e| format!("unmount: {e}"))?;
    drop(fs);
    let opts = pmfs::fsck::FsckOptions { mode: pmfs::fsck::FsckMode::Check, force: true };
    let report = pmfs::fsck::fsck(path, &opts).map_err(|e| format!("fsck -n -f: {e}"))?;
    if !report.problems.is_empty() {
        let found: Vec<&str> = report.problems.iter().map(|p| p.what.as_str()).collect();
        return Err(format!("fsck -n -f found: {}", found.join("; ")));
    }
    let fs = mount(path, None).map_err(|e| format!("mount after recovery and use: {e}"))?;
    if !fs.mount_report().was_clean {
        return Err("not clean after a clean unmount".into());
    }
    let again = snapshot(&fs).map_err(|e| format!("snapshot after remount: {e}"))?;
    if &again != snap {
        return Err(format!("tree changed across unmount: {}", diff(&again, snap)));
    }
    Ok(())
}

fn legal_states(base: &[u8], ops: &[Op]) -> Result<Vec<Snapshot>> {
    let s = Scratch::new("legal");
    s.put(base);
    let fs = mount(&s.path, None)?;
    let mut states = vec![snapshot(&fs)?];
    let pm_store = |off: u64, data: &[u8]| -> Result<()> {
        let pm = fs.device_region();
        pm.write(off, data)?;
        pm.persist(off, data.len() as u64);
        Ok(())
    };
    for op in ops {
        let _ = apply(&fs, op, &pm_store);
        states.push(snapshot(&fs)?);
    }
    Ok(states)
}

/// Check one crash image; returns which legal state it matched.
fn check_image(
    scratch: &Scratch,
    img: &[u8],
    pages: &[u64],
    allowed: &[&Snapshot],
) -> std::result::Result<Snapshot, String> {
    scratch.put_pages(img, pages);
    let fs = mount(&scratch.path, None).map_err(|e| format!("mount failed: {e}"))?;
    let snap = snapshot(&fs).map_err(|e| format!("tree unreadable: {e}"))?;
    if !allowed.iter().any(|a| **a == snap) {
        return Err(format!("tree matches no legal state: {}", diff(&snap, allowed[allowed.len() - 1])));
    }
    usable(&scratch.path, fs, &snap)?;
    Ok(snap)
}

/// Crash in the middle of recovering `img`: every crash image of recovery must recover to
/// `want` too (recovery is idempotent).
fn check_recovery_crash(
    scratch: &Scratch,
    img: &[u8],
    pages: &[u64],
    want: &Snapshot,
) -> std::result::Result<usize, String> {
    scratch.put_pages(img, pages);
    let rec = Recorder::new();
    let fs = mount(&scratch.path, Some(rec.clone())).map_err(|e| format!("mount failed: {e}"))?;
    drop(fs);
    let events = rec.take();
    let mut sub_pages = touched_pages(&[], &events);
    sub_pages.extend_from_slice(pages);
    sub_pages.sort_unstable();
    sub_pages.dedup();
    let mut failure = None;
    let n = enumerate(img, &events, 0, |c| {
        if failure.is_some() {
            return;
        }
        let sub = c.build();
        scratch.put_pages(&sub, &sub_pages);
        let r = mount(&scratch.path, None)
            .map_err(|e| format!("mount after a crash during recovery ({}): {e}", c.label))
            .and_then(|fs| snapshot(&fs).map_err(|e| e.to_string()));
        match r {
            Ok(s) if &s == want => {}
            Ok(s) => failure = Some(format!("recovery interrupted at fence {}: {}", c.fence, diff(&s, want))),
            Err(e) => failure = Some(e),
        }
    });
    failure.map_or(Ok(n), Err)
}

/// Run `ops` from `base`, and check every crash image.
pub fn run_case(base: &[u8], ops: &[Op], bounds: Bounds) -> Result<CaseResult> {
    let legal = legal_states(base, ops)?;
    let rec_run = Scratch::new("rec");
    rec_run.put(base);
    let rec = Recorder::new();
    let fs = mount(&rec_run.path, Some(rec.clone()))?;
    run_ops(&fs, ops, Some(&rec));
    drop(fs); // the power goes out
    let events = rec.take();
    let pages = touched_pages(base, &events);
    let scratch = Scratch::new("img");
    let mut result = CaseResult::default();
    let mut seen = 0usize;
    let mut per_kind = std::collections::BTreeMap::new();
    let visit = |c: &CrashImage| {
        seen += 1;
        let kind = match c.phase {
            Phase::During { index } => ops[index].kind(),
            Phase::Between { .. } => "between operations",
        };
        *per_kind.entry(kind).or_insert(0) += 1;
        let allowed: Vec<&Snapshot> = match c.phase {
            Phase::Between { done } => vec![&legal[done]],
            Phase::During { index } => vec![&legal[index], &legal[index + 1]],
        };
        let img = c.build();
        match check_image(&scratch, &img, &pages, &allowed) {
            Ok(matched) => {
                if bounds.recovery_every > 0 && seen % bounds.recovery_every == 0 {
                    match check_recovery_crash(&scratch, &img, &pages, &matched) {
                        Ok(n) => {
                            result.images += n;
                            *result.per_kind.entry("recovery").or_insert(0) += n;
                        }
                        Err(e) => result
                            .failures
                            .push(format!("{ops:?} crash at fence {} ({}): {e}", c.fence, c.label)),
                    }
                }
            }
            Err(e) => result
                .failures
                .push(format!("{ops:?} crash at fence {} ({}, {:?}): {e}", c.fence, c.label, c.phase)),
        }
    };
    result.images += enumerate(base, &events, bounds.k, visit);
    for (k, n) in per_kind {
        *result.per_kind.entry(k).or_insert(0) += n;
    }
    Ok(result)
}
