//! The kernel side of a FUSE mount: checks on the mount point, mount(2) on /dev/fuse, and
//! unmounting. zus mounts by itself (it runs as root; there is no fusermount3 here) because
//! fuser's own mount always uses type `fuse` and so cannot show `fuse.zpmfs`.

use std::ffi::OsString;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use crate::options::{MountFlags, MountOpts};

/// Why the FUSE mount could not be made.
#[derive(Debug)]
pub enum MountError {
    NoMountPoint(PathBuf),
    NotDirectory(PathBuf),
    Busy(PathBuf),
    Io(PathBuf, io::Error),
    DevFuse(io::Error),
    Syscall(PathBuf, Errno),
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::NoMountPoint(p) => write!(f, "mount point {} does not exist", p.display()),
            MountError::NotDirectory(p) => write!(f, "mount point {} is not a directory", p.display()),
            MountError::Busy(p) => {
                write!(f, "mount point {} is busy: something is already mounted there", p.display())
            }
            MountError::Io(p, e) => write!(f, "mount point {}: {e}", p.display()),
            MountError::DevFuse(e) => write!(f, "cannot open /dev/fuse: {e} (is the fuse module loaded?)"),
            MountError::Syscall(p, Errno::EPERM) => {
                write!(f, "cannot mount on {}: permission denied (zus must run as root)", p.display())
            }
            MountError::Syscall(p, Errno::EBUSY) => write!(f, "mount point {} is busy", p.display()),
            MountError::Syscall(p, e) => write!(f, "cannot mount on {}: {}", p.display(), e.desc()),
        }
    }
}

impl std::error::Error for MountError {}

/// Check that `mountpoint` is a directory with nothing mounted on it; returns its canonical path.
pub fn check_mountpoint(mountpoint: &Path) -> Result<PathBuf, MountError> {
    let meta = match std::fs::metadata(mountpoint) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MountError::NoMountPoint(mountpoint.to_path_buf()))
        }
        Err(e) => return Err(MountError::Io(mountpoint.to_path_buf(), e)),
    };
    if !meta.is_dir() {
        return Err(MountError::NotDirectory(mountpoint.to_path_buf()));
    }
    let canonical = mountpoint.canonicalize().map_err(|e| MountError::Io(mountpoint.to_path_buf(), e))?;
    let mountinfo = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
    if mount_points(&mountinfo).iter().any(|p| p == &canonical) {
        return Err(MountError::Busy(mountpoint.to_path_buf()));
    }
    Ok(canonical)
}

/// The mount points listed in /proc/self/mountinfo (field 5, octal escapes decoded).
fn mount_points(mountinfo: &[u8]) -> Vec<PathBuf> {
    mount_entries(mountinfo).into_iter().map(|(p, _)| p).collect()
}

/// Each mount of /proc/self/mountinfo: its mount point and its device as the kernel numbers
/// it (major << 20 | minor; fusectl names a FUSE connection by that number).
fn mount_entries(mountinfo: &[u8]) -> Vec<(PathBuf, u64)> {
    mountinfo
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut fields = line.split(|&b| b == b' ');
            let dev = fields.nth(2)?;
            let point = fields.nth(1)?;
            let (major, minor) = std::str::from_utf8(dev).ok()?.split_once(':')?;
            let dev = (major.parse::<u64>().ok()? << 20) | minor.parse::<u64>().ok()?;
            Some((PathBuf::from(OsString::from_vec(unescape_octal(point))), dev))
        })
        .collect()
}

/// Decode the `\040`-style escapes the kernel uses for spaces, tabs, newlines and backslashes.
fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 3 < s.len() && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = s[i + 1..i + 4].iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn ms_flags(read_only: bool, f: &MountFlags) -> MsFlags {
    let mut flags = MsFlags::empty();
    for (on, flag) in [
        (read_only, MsFlags::MS_RDONLY),
        (f.nosuid, MsFlags::MS_NOSUID),
        (f.nodev, MsFlags::MS_NODEV),
        (f.noexec, MsFlags::MS_NOEXEC),
        (f.noatime, MsFlags::MS_NOATIME),
        (f.nodiratime, MsFlags::MS_NODIRATIME),
        (f.relatime, MsFlags::MS_RELATIME),
        (f.strictatime, MsFlags::MS_STRICTATIME),
        (f.sync, MsFlags::MS_SYNCHRONOUS),
        (f.dirsync, MsFlags::MS_DIRSYNC),
    ] {
        if on {
            flags |= flag;
        }
    }
    flags
}

/// The fuse filesystem's own mount data. `default_permissions` is always on: the kernel checks
/// POSIX permissions, so the server need not.
fn mount_data(fd: i32, allow_other: bool) -> String {
    let mut data = format!(
        "fd={fd},rootmode={:o},user_id={},group_id={},default_permissions",
        libc::S_IFDIR,
        nix::unistd::getuid(),
        nix::unistd::getgid()
    );
    if allow_other {
        data.push_str(",allow_other");
    }
    data
}

/// A FUSE filesystem mounted by zus.
#[derive(Debug)]
pub struct FuseMount {
    mountpoint: PathBuf,
    /// The connection's number under /sys/fs/fuse/connections (the superblock's device).
    connection: Option<u64>,
}

/// Mount a FUSE filesystem on the (checked, canonical) `mountpoint`, showing `source` in
/// /proc/mounts. Returns the /dev/fuse descriptor the server must answer on.
pub fn mount(
    mountpoint: &Path,
    source: &std::ffi::OsStr,
    opts: &MountOpts,
) -> Result<(OwnedFd, FuseMount), MountError> {
    let dev = OpenOptions::new().read(true).write(true).open("/dev/fuse").map_err(MountError::DevFuse)?;
    let fd: OwnedFd = dev.into();
    let data = mount_data(fd.as_raw_fd(), opts.allow_other);
    let flags = ms_flags(opts.read_only, &opts.flags);
    nix::mount::mount(Some(source), mountpoint, Some(opts.fstype()), flags, Some(data.as_str()))
        .map_err(|e| MountError::Syscall(mountpoint.to_path_buf(), e))?;
    // Not stat(2): that would send GETATTR to a server that is not running yet, and hang.
    let info = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
    let connection =
        mount_entries(&info).into_iter().rev().find(|(p, _)| p == mountpoint).map(|(_, dev)| dev);
    Ok((fd, FuseMount { mountpoint: mountpoint.to_path_buf(), connection }))
}

impl FuseMount {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmount. If files are still open, detach the mount and abort the connection so the
    /// server can finish; either way the server's read on /dev/fuse then ends.
    pub fn unmount(&self) -> io::Result<()> {
        match nix::mount::umount2(&self.mountpoint, MntFlags::empty()) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EBUSY) => {
                log::warn!(
                    "{} is busy: detaching it; files still open end the session when they close \
                     (at once where fusectl is mounted on /sys/fs/fuse/connections)",
                    self.mountpoint.display()
                );
                let detach = nix::mount::umount2(&self.mountpoint, MntFlags::MNT_DETACH);
                self.abort_connection();
                match detach {
                    Ok(()) | Err(Errno::EINVAL) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Make every pending and later request of this mount fail (fusectl's abort file).
    pub fn abort_connection(&self) {
        let Some(id) = self.connection else { return };
        let path = format!("/sys/fs/fuse/connections/{id}/abort");
        if !Path::new(&path).exists() {
            return; // fusectl is not mounted: nothing to abort with.
        }
        if let Err(e) = std::fs::write(&path, b"1") {
            log::warn!("cannot abort the FUSE connection via {path}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing() {
        let info = b"22 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw\n\
                     36 22 0:32 / /mnt/with\\040space rw - tmpfs tmpfs rw\n\
                     37 22 0:33 / /mnt/back\\134slash rw - tmpfs tmpfs rw\n";
        let pts = mount_points(info);
        assert_eq!(
            pts,
            vec![PathBuf::from("/"), PathBuf::from("/mnt/with space"), PathBuf::from("/mnt/back\\slash")]
        );
        assert!(mount_points(b"garbage\n\n").is_empty());
        assert_eq!(mount_entries(info)[1], (PathBuf::from("/mnt/with space"), 32));
        assert_eq!(mount_entries(b"1 2 259:3 / /x rw - a b c")[0].1, (259 << 20) | 3);
        assert_eq!(unescape_octal(b"\\04"), b"\\04".to_vec());
        assert_eq!(unescape_octal(b"a\\777"), vec![b'a', b'?']);
    }

    #[test]
    fn mountpoint_checks() {
        assert!(matches!(
            check_mountpoint(Path::new("/nonexistent/zus-test")),
            Err(MountError::NoMountPoint(_))
        ));
        assert!(matches!(check_mountpoint(Path::new("/proc/self/status")), Err(MountError::NotDirectory(_))));
        // /proc is always a mount point.
        let err = check_mountpoint(Path::new("/proc")).expect_err("busy");
        assert!(matches!(err, MountError::Busy(_)));
        assert!(err.to_string().contains("busy"));
    }

    #[test]
    fn flags_and_data() {
        let o = MountOpts::default();
        assert_eq!(ms_flags(false, &o.flags), MsFlags::MS_NOSUID | MsFlags::MS_NODEV);
        assert!(ms_flags(true, &o.flags).contains(MsFlags::MS_RDONLY));
        let d = mount_data(7, true);
        assert!(d.starts_with("fd=7,rootmode=40000,"), "{d}");
        assert!(d.contains(",default_permissions"));
        assert!(d.ends_with(",allow_other"));
        assert!(!mount_data(7, false).contains("allow_other"));
    }
}
