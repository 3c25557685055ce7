//! The file the targets mount: on tmpfs (memory, as PM would be), unlinked as soon as it is
//! open and reached through /proc/self/fd, so a fuzzer that dies leaves nothing behind.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub struct Scratch {
    file: File,
    path: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let named = PathBuf::from(format!("{dir}/zpmfs-fuzz-{}-{tag}.img", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&named)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", named.display()));
        let _ = std::fs::remove_file(&named);
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Scratch { file, path }
    }

    /// The path to hand to `Fs::mount` and `fsck`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make the file hold exactly `bytes`.
    pub fn put(&self, bytes: &[u8]) {
        let len = bytes.len() as u64;
        if self.file.metadata().map(|m| m.len()).unwrap_or(0) != len {
            self.file.set_len(len).expect("resize scratch image");
        }
        self.file.write_all_at(bytes, 0).expect("write scratch image");
    }

    pub fn get(&self) -> Vec<u8> {
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, 0).expect("read scratch image");
        buf
    }
}
