//! Shared by the library tests: fresh images on /dev/shm (memory, as PM would be).

use std::path::PathBuf;

use pmfs::device::Device;
use pmfs::format::{format, FormatOptions};
use pmfs::fsck::{fsck, FsckMode, FsckOptions};
use pmfs::{Fs, MountOptions};

pub struct Image {
    pub path: PathBuf,
}

impl Image {
    pub fn new(tag: &str, size: u64) -> Image {
        let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        Image::new_in(dir, tag, size)
    }

    /// An image in `dir`, e.g. on a disk filesystem where stores need msync to be durable.
    pub fn new_in(dir: &str, tag: &str, size: u64) -> Image {
        let path = PathBuf::from(format!("{dir}/pmfs-test-{tag}-{}.img", std::process::id()));
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        let dev = Device::open(&path, true).unwrap();
        format(&dev, &FormatOptions { cpus: Some(2), ..Default::default() }).unwrap();
        Image { path }
    }
    /// Unmount; fsck (forced, changing nothing) finds no problem and counts as used the
    /// blocks statfs said were used.
    #[allow(dead_code)] // not every test binary uses it
    pub fn unmount_and_fsck(&self, fs: Fs) {
        let st = fs.statfs().unwrap();
        fs.unmount().unwrap();
        drop(fs);
        let r = fsck(&self.path, &FsckOptions { mode: FsckMode::Check, force: true }).unwrap();
        assert!(r.problems.is_empty(), "fsck: {:?}", r.problems);
        assert_eq!(r.blocks_used, st.blocks - st.blocks_free, "fsck and statfs disagree on the blocks used");
    }

    pub fn mount(&self) -> Fs {
        Fs::mount(&self.path, &MountOptions::default()).unwrap()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
