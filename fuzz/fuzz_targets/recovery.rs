#![no_main]
//! Crash recovery of a damaged image: every seed with its clean flag cleared, so each run
//! rolls back the journals, replays every live inode's log, walks the tree from the root,
//! frees orphans and rebuilds the free-space map. When that recovery succeeds the result
//! must be a sound filesystem: it is walked and changed, unmounted, and a second mount
//! (the clean path) must succeed and show exactly the same tree.

use libfuzzer_sys::fuzz_target;
use pmfs::layout::{state, BLOCK_SIZE, STATE_BLOCK};
use pmfs::{Fs, MountOptions};
use zpmfs_fuzz::regions::RegionKind;
use zpmfs_fuzz::{harness, init, walk};

fuzz_target!(init: init("recovery", RegionKind::any), |data: &[u8]| {
    let h = harness();
    let mut image = h.mutate(data, RegionKind::any).image;
    let clean = (STATE_BLOCK * BLOCK_SIZE + state::CLEAN) as usize;
    image[clean..clean + 8].fill(0);
    h.scratch.put(&image);
    let Ok(fs) = Fs::mount(h.scratch.path(), &MountOptions::default()) else { return };
    let walked = walk::walk(&fs);
    walk::modify(&fs, &walked);
    let before = walk::walk(&fs);
    if let Err(e) = fs.unmount() {
        panic!("unmount after a successful recovery failed: {e}");
    }
    drop(fs);
    let fs = match Fs::mount(h.scratch.path(), &MountOptions::default()) {
        Ok(fs) => fs,
        Err(e) => panic!("recovered and cleanly unmounted, but the next mount fails: {e}"),
    };
    let after = walk::walk(&fs);
    if before.lines != after.lines {
        let gone: Vec<&String> = before.lines.iter().filter(|l| !after.lines.contains(l)).collect();
        let new: Vec<&String> = after.lines.iter().filter(|l| !before.lines.contains(l)).collect();
        panic!("the tree changed across a clean unmount: {gone:?} became {new:?}");
    }
    let _ = fs.unmount();
});
