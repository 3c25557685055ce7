//! Shared by the library tests: fresh images on /dev/shm (memory, as PM would be).

use std::path::PathBuf;

use pmfs::device::Device;
use pmfs::format::{format, FormatOptions};
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
    pub fn mount(&self) -> Fs {
        Fs::mount(&self.path, &MountOptions::default()).unwrap()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
