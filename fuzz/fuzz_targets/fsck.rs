#![no_main]
//! fsck of a damaged image, any seed, edits anywhere in the metadata: a check (-n -f), then
//! a repair (-y -f, or -p -f with choice bit 0). After a full repair that reports success,
//! the repair must be complete in one pass, as e2fsck's: fsck -n -f runs and finds nothing,
//! and the image mounts. (A repair that reports a problem it could not fix is not checked so;
//! the image only has to be safe to mount or refuse.)

use libfuzzer_sys::fuzz_target;
use pmfs::fsck::{fsck, FsckMode, FsckOptions};
use pmfs::{Fs, MountOptions};
use zpmfs_fuzz::regions::RegionKind;
use zpmfs_fuzz::{harness, init, walk};

fuzz_target!(init: init("fsck", RegionKind::any), |data: &[u8]| {
    let h = harness();
    let m = h.mutate(data, RegionKind::any);
    h.scratch.put(&m.image);
    let path = h.scratch.path();
    let _ = fsck(path, &FsckOptions { mode: FsckMode::Check, force: true });
    let mode = if m.input.choice() & 1 != 0 { FsckMode::Preen } else { FsckMode::Repair };
    let Ok(repaired) = fsck(path, &FsckOptions { mode, force: true }) else { return };
    if mode != FsckMode::Repair || repaired.problems.iter().any(|p| !p.fixed) {
        let _ = Fs::mount(path, &MountOptions::default()).map(|fs| walk::walk(&fs));
        return;
    }
    let left = match fsck(path, &FsckOptions { mode: FsckMode::Check, force: true }) {
        Ok(r) => r.problems,
        Err(e) => panic!("fsck -y succeeded but fsck -n then fails: {e}"),
    };
    if !left.is_empty() {
        let fixed: Vec<&str> = repaired.problems.iter().map(|p| p.what.as_str()).collect();
        let left: Vec<&str> = left.iter().map(|p| p.what.as_str()).collect();
        panic!("fsck -y repaired {fixed:?} but fsck -n then finds {left:?}");
    }
    match Fs::mount(path, &MountOptions::default()) {
        Ok(fs) => {
            walk::walk(&fs);
            let _ = fs.unmount();
        }
        Err(e) => panic!("fsck -y left an image that fsck -n calls clean but mount refuses: {e}"),
    }
});
