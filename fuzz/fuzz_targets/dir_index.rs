#![no_main]
//! The directory index rebuilt from a damaged directory log: edits go only to directories'
//! inodes and log pages of a mounted image. For every directory reached: readdir in one
//! call and in pages of 1 to 8 entries (choice bits) must agree, offsets must grow, every
//! name listed must look up to the inode listed, and a name added, removed and renamed
//! (new cookies over whatever the log left) must not panic.

use std::collections::{HashSet, VecDeque};

use libfuzzer_sys::fuzz_target;
use pmfs::vfs::{Caller, FileKind, Ino, RenameFlags, ROOT_INO};
use pmfs::{Fs, MountOptions};
use zpmfs_fuzz::regions::RegionKind;
use zpmfs_fuzz::{harness, init};

const MAX_DIRS: usize = 64;
const ALL: usize = 1 << 16;

fn check_dir(fs: &Fs, dir: Ino, batch: usize, queue: &mut VecDeque<Ino>, seen: &mut HashSet<Ino>) {
    let Ok(full) = fs.readdir(dir, 0, ALL) else { return };
    for pair in full.windows(2) {
        assert!(pair[0].next_offset < pair[1].next_offset, "directory {dir}: readdir offsets do not grow");
    }
    let mut paged = Vec::new();
    let mut offset = 0;
    for _ in 0..full.len() + 2 {
        let chunk = match fs.readdir(dir, offset, batch) {
            Ok(c) => c,
            Err(e) => panic!("directory {dir}: readdir from {offset} fails after a full readdir worked: {e}"),
        };
        assert!(chunk.len() <= batch, "directory {dir}: readdir returned more than asked");
        let Some(last) = chunk.last() else { break };
        offset = last.next_offset;
        paged.extend(chunk);
    }
    assert_eq!(paged, full, "directory {dir}: readdir in pages of {batch} differs from one readdir");
    for e in full.iter().filter(|e| e.name != b"." && e.name != b"..") {
        if let Ok(a) = fs.lookup(dir, &e.name) {
            assert_eq!(a.ino, e.ino, "directory {dir}: lookup and readdir disagree");
            if a.kind == FileKind::Directory && seen.len() < MAX_DIRS && seen.insert(a.ino) {
                queue.push_back(a.ino);
            }
        }
    }
    let me = Caller::ROOT;
    if fs.mknod(dir, b"fuzz-new", libc::S_IFREG | 0o644, 0, me).is_ok() {
        let _ = fs.readdir(dir, 0, ALL);
        let _ = fs.unlink(dir, b"fuzz-new");
    }
    if let Some(e) = full.iter().find(|e| e.name != b"." && e.name != b"..") {
        let flags = RenameFlags::default();
        if fs.rename(dir, &e.name, dir, b"fuzz-renamed", flags).is_ok() {
            let _ = fs.rename(dir, b"fuzz-renamed", dir, &e.name, flags);
        }
    }
}

fuzz_target!(init: init("dir_index", RegionKind::is_dir_log), |data: &[u8]| {
    let h = harness();
    let m = h.mutate(data, RegionKind::is_dir_log);
    h.scratch.put(&m.image);
    let Ok(fs) = Fs::mount(h.scratch.path(), &MountOptions::default()) else { return };
    let batch = 1 + (m.input.choice() % 8) as usize;
    let mut seen = HashSet::from([ROOT_INO]);
    let mut queue = VecDeque::from([ROOT_INO]);
    while let Some(dir) = queue.pop_front() {
        check_dir(&fs, dir, batch, &mut queue, &mut seen);
    }
    let _ = fs.unmount();
});
