#![no_main]
//! Mount of a damaged image, any seed, edits anywhere in the metadata: superblock and
//! replica checks, the state block, the saved free-space map and lazy inode loads (clean
//! seeds), journal rollback and the rebuild (crashed seeds); then the tree walked, changed,
//! unmounted and mounted again. Choice bit 0: mount read-only first (clean images only).

use libfuzzer_sys::fuzz_target;
use pmfs::{Fs, MountOptions};
use zpmfs_fuzz::regions::RegionKind;
use zpmfs_fuzz::{harness, init, walk};

fuzz_target!(init: init("mount", RegionKind::any), |data: &[u8]| {
    let h = harness();
    let m = h.mutate(data, RegionKind::any);
    h.scratch.put(&m.image);
    if m.input.choice() & 1 != 0 {
        if let Ok(fs) = Fs::mount(h.scratch.path(), &MountOptions { read_only: true, ..Default::default() }) {
            walk::walk(&fs);
            let _ = fs.unmount();
        }
    }
    let Ok(fs) = Fs::mount(h.scratch.path(), &MountOptions::default()) else { return };
    let walked = walk::walk(&fs);
    walk::modify(&fs, &walked);
    let _ = fs.unmount();
    drop(fs);
    if let Ok(fs) = Fs::mount(h.scratch.path(), &MountOptions::default()) {
        walk::walk(&fs);
        let _ = fs.unmount();
    }
});
