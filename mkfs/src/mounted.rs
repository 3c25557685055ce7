//! Is the device or image in use? mkfs refuses, even with -f, when it is mounted (found in
//! /proc/self/mountinfo by its path or, for a block device, by its major:minor), backs a
//! mounted loop device, or is held open by a process (a zus serving it, a VM using it as PM).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why the path must not be formatted now, if it must not.
pub fn in_use(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let rdev =
        meta.file_type().is_block_device().then(|| (libc::major(meta.rdev()), libc::minor(meta.rdev())));
    for m in mounts() {
        let same_source =
            m.source.starts_with('/') && fs::canonicalize(&m.source).ok().as_ref() == Some(&canonical);
        let same_dev = rdev.is_some() && m.dev == rdev;
        if same_source || same_dev {
            return Some(format!("it is mounted on {}", m.mount_point));
        }
    }
    if meta.file_type().is_file() {
        if let Some(loopdev) = loop_device_of(&canonical) {
            return Some(format!("it backs the loop device {}", loopdev.display()));
        }
    }
    holder_process(&canonical).map(|(pid, comm)| format!("it is open in process {pid} ({comm})"))
}

struct Mount {
    dev: Option<(u32, u32)>,
    mount_point: String,
    source: String,
}

/// The mounts of this process's namespace, from mountinfo (with major:minor), else from mounts.
fn mounts() -> Vec<Mount> {
    if let Ok(text) = fs::read_to_string("/proc/self/mountinfo") {
        return text.lines().filter_map(parse_mountinfo_line).collect();
    }
    let text = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let source = unescape(f.next()?);
            let mount_point = unescape(f.next()?);
            Some(Mount { dev: None, mount_point, source })
        })
        .collect()
}

/// `36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw`
fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let dev = Some((major.parse().ok()?, minor.parse().ok()?));
    let mount_point = unescape(fields.get(4)?);
    let dash = fields.iter().position(|f| *f == "-")?;
    let source = unescape(fields.get(dash + 2)?);
    Some(Mount { dev, mount_point, source })
}

/// The kernel writes space, tab, newline and backslash in mount tables as \ooo octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A loop device whose backing file is `file`.
fn loop_device_of(file: &Path) -> Option<PathBuf> {
    for entry in fs::read_dir("/sys/block").ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("loop") {
            continue;
        }
        let backing = fs::read_to_string(entry.path().join("loop/backing_file")).unwrap_or_default();
        if Path::new(backing.trim_end()) == file {
            return Some(PathBuf::from("/dev").join(&*name));
        }
    }
    None
}

/// Another process with `file` open (a file descriptor or a mapping).
fn holder_process(file: &Path) -> Option<(u32, String)> {
    let me = std::process::id();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let holds_fd = fs::read_dir(entry.path().join("fd"))
            .map(|fds| fds.flatten().any(|fd| fs::read_link(fd.path()).ok().as_deref() == Some(file)))
            .unwrap_or(false);
        let maps_it = || {
            let needle = file.to_string_lossy();
            fs::read_to_string(entry.path().join("maps"))
                .map(|maps| maps.lines().any(|l| l.ends_with(needle.as_ref())))
                .unwrap_or(false)
        };
        if holds_fd || maps_it() {
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some((pid, comm.trim().to_string()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let m = parse_mountinfo_line("36 35 98:0 / /mnt/my\\040disk rw,noatime shared:1 - ext4 /dev/sda1 rw")
            .unwrap();
        assert_eq!(m.dev, Some((98, 0)));
        assert_eq!(m.mount_point, "/mnt/my disk");
        assert_eq!(m.source, "/dev/sda1");
        let m = parse_mountinfo_line("50 1 0:52 / /mnt/zpmfs rw - fuse.zpmfs /dev/shm/zpmfs.img rw").unwrap();
        assert_eq!(m.source, "/dev/shm/zpmfs.img");
        assert!(parse_mountinfo_line("garbage").is_none());
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("a\\040b\\011c\\134"), "a b\tc\\");
        assert_eq!(unescape("plain\\"), "plain\\");
    }

    #[test]
    fn a_fresh_file_is_not_in_use() {
        // A new file is mounted nowhere and open in no other process.
        let dir = std::env::temp_dir().join(format!("mkfs-zpmfs-unit-{}", std::process::id()));
        fs::write(&dir, b"x").unwrap();
        assert_eq!(in_use(&dir), None);
        fs::remove_file(&dir).unwrap();
    }
}
