//! Command lines: `zus` and the mount(8) helper `mount.fuse.zpmfs`. Arguments are `OsString`s
//! so that paths which are not UTF-8 work.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub const ZUS_USAGE: &str = "\
usage: zus mount [--config FILE] [-o OPTIONS] [--foreground] DEVICE-OR-IMAGE MOUNTPOINT
       zus serve [--config FILE]
       zus status MOUNTPOINT
       zus --version | --help

`zus serve` registers the zpmfs filesystem type with zuf.ko (the kernel module) and serves
every `mount -t zpmfs /dev/pmemN MOUNTPOINT` until it is stopped; it stays in the foreground.

`zus status` prints what the zus serving MOUNTPOINT over FUSE says: the FUSE channel (io_uring
with its queues, or /dev/fuse) and the requests each carried, space, and per NUMA node of a
device set its blocks, free blocks, and allocations local to it or spilled elsewhere.

Mount the zpmfs image or PM device on MOUNTPOINT and serve it over FUSE. Without
--foreground, zus returns once the mount is ready and keeps serving in the background;
it unmounts cleanly on SIGTERM, SIGINT or umount of MOUNTPOINT.

  -c, --config FILE   configuration (default /etc/zpmfs/zus.toml when it exists)
  -o OPTIONS          comma-separated mount options:
                        ro, rw, allow_other, fsname=NAME (source shown in /proc/mounts),
                        source=PATH (image to serve; DEVICE is then only a name;
                          A:B:... names the members of a device set, as DEVICE may),
                        cpu_nodes=N:N:... (CPU i is on NUMA node N_i; default sysfs),
                        nosubtype (type `fuse` instead of `fuse.zpmfs`),
                        fuse_channel=auto|uring|dev (FUSE over io_uring where
                          the kernel offers it, io_uring or fail, /dev/fuse),
                        suid, dev (FUSE mounts default to nosuid,nodev), noexec, noatime,
                        relatime, sync, dirsync; defaults, auto, noauto, user, nouser,
                        nofail, _netdev and x-* are accepted and ignored
  -f, --foreground    stay in the foreground
  -V, --version       print the version
  -h, --help          print this help";

/// What `zus` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZusCommand {
    Help,
    Version,
    Mount(MountArgs),
    /// `zus serve`: serve zuf.ko.
    Serve {
        config: Option<PathBuf>,
    },
    /// `zus status MOUNTPOINT`.
    Status(PathBuf),
}

/// `zus mount ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountArgs {
    pub config: Option<PathBuf>,
    /// Each `-o` argument, in order.
    pub options: Vec<String>,
    pub foreground: bool,
    pub device: OsString,
    pub mountpoint: PathBuf,
}

/// A command line that does not parse; the message is for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Mount options must be text: mount(2) takes them as a C string of options.
fn option_text(v: &OsStr) -> Result<String, UsageError> {
    v.to_str().map(str::to_string).ok_or_else(|| usage("mount options must be valid UTF-8"))
}

/// Parse `zus`'s arguments (without the program name).
pub fn parse_zus(args: &[OsString]) -> Result<ZusCommand, UsageError> {
    let Some(first) = args.first() else {
        return Err(usage("missing command"));
    };
    match first.as_bytes() {
        b"-h" | b"--help" | b"help" => return Ok(ZusCommand::Help),
        b"-V" | b"--version" | b"version" => return Ok(ZusCommand::Version),
        b"mount" => {}
        b"serve" => {
            let mut config = None;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_bytes() {
                    b"-c" | b"--config" => {
                        config = Some(PathBuf::from(it.next().ok_or_else(|| usage("--config needs a file"))?))
                    }
                    b"-h" | b"--help" => return Ok(ZusCommand::Help),
                    _ => return Err(usage(format!("unknown argument '{}'", a.to_string_lossy()))),
                }
            }
            return Ok(ZusCommand::Serve { config });
        }
        b"status" => {
            return match &args[1..] {
                [m] if m.as_bytes() == b"-h" || m.as_bytes() == b"--help" => Ok(ZusCommand::Help),
                [m] => Ok(ZusCommand::Status(PathBuf::from(m))),
                _ => Err(usage("zus status needs exactly one argument: MOUNTPOINT")),
            };
        }
        _ => return Err(usage(format!("unknown command '{}'", first.to_string_lossy()))),
    }
    let mut config = None;
    let mut options = Vec::new();
    let mut foreground = false;
    let mut positional = Vec::new();
    let mut it = args[1..].iter();
    let mut only_positional = false;
    while let Some(arg) = it.next() {
        let b = arg.as_bytes();
        if only_positional || !b.starts_with(b"-") || b == b"-" {
            positional.push(arg.clone());
            continue;
        }
        match b {
            b"--" => only_positional = true,
            b"-h" | b"--help" => return Ok(ZusCommand::Help),
            b"-V" | b"--version" => return Ok(ZusCommand::Version),
            b"-f" | b"--foreground" => foreground = true,
            b"-c" | b"--config" => {
                let v = it.next().ok_or_else(|| usage("--config needs a file"))?;
                config = Some(PathBuf::from(v));
            }
            b"-o" | b"--options" => {
                let v = it.next().ok_or_else(|| usage("-o needs options"))?;
                options.push(option_text(v)?);
            }
            _ if b.starts_with(b"--config=") => {
                config = Some(PathBuf::from(OsStr::from_bytes(&b[b"--config=".len()..])));
            }
            _ if b.starts_with(b"-o") => options.push(option_text(OsStr::from_bytes(&b[2..]))?),
            _ => return Err(usage(format!("unknown argument '{}'", arg.to_string_lossy()))),
        }
    }
    let [device, mountpoint]: [OsString; 2] = positional
        .try_into()
        .map_err(|_| usage("zus mount needs exactly two arguments: DEVICE-OR-IMAGE MOUNTPOINT"))?;
    Ok(ZusCommand::Mount(MountArgs { config, options, foreground, device, mountpoint: mountpoint.into() }))
}

/// What mount(8) passes to `mount.fuse.zpmfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperArgs {
    pub device: OsString,
    pub mountpoint: OsString,
    pub options: Vec<OsString>,
}

/// Parse `mount.fuse.zpmfs DEVICE MOUNTPOINT [-o OPTIONS] [-n] [-s] [-f] [-v]` (options may
/// come first too). `-n`, `-s`, `-f`, `-v` are mount(8)'s and mean nothing here; `-t TYPE` and
/// `-N NAMESPACE` take a value, which is skipped.
pub fn parse_helper(args: &[OsString]) -> Result<HelperArgs, UsageError> {
    let mut options = Vec::new();
    let mut positional = Vec::new();
    let mut it = args.iter();
    let mut only_positional = false;
    while let Some(arg) = it.next() {
        let b = arg.as_bytes();
        if only_positional || !b.starts_with(b"-") || b == b"-" {
            positional.push(arg.clone());
            continue;
        }
        match b {
            b"--" => only_positional = true,
            b"-n" | b"-s" | b"-f" | b"-v" | b"-r" | b"-w" => {}
            b"-o" => options.push(it.next().ok_or_else(|| usage("-o needs options"))?.clone()),
            b"-t" | b"-N" => {
                it.next().ok_or_else(|| usage(format!("{} needs a value", arg.to_string_lossy())))?;
            }
            _ if b.starts_with(b"-o") => options.push(OsStr::from_bytes(&b[2..]).to_os_string()),
            _ => return Err(usage(format!("unknown argument '{}'", arg.to_string_lossy()))),
        }
    }
    let [device, mountpoint]: [OsString; 2] =
        positional.try_into().map_err(|_| usage("usage: mount.fuse.zpmfs DEVICE MOUNTPOINT [-o OPTIONS]"))?;
    Ok(HelperArgs { device, mountpoint, options })
}

impl HelperArgs {
    /// The arguments of the `zus` command that does the mount.
    pub fn zus_args(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["mount".into()];
        for o in &self.options {
            v.push("-o".into());
            v.push(o.clone());
        }
        v.push("--".into());
        v.push(self.device.clone());
        v.push(self.mountpoint.clone());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn zus_help_and_version() {
        assert_eq!(parse_zus(&args(&["--help"])), Ok(ZusCommand::Help));
        assert_eq!(parse_zus(&args(&["-V"])), Ok(ZusCommand::Version));
        assert_eq!(parse_zus(&args(&["mount", "--help"])), Ok(ZusCommand::Help));
        assert!(parse_zus(&args(&[])).is_err());
        assert!(parse_zus(&args(&["frobnicate"])).is_err());
    }

    #[test]
    fn zus_mount_full() {
        let c = parse_zus(&args(&[
            "mount",
            "--config",
            "/c.toml",
            "-o",
            "ro",
            "-oallow_other",
            "--foreground",
            "/dev/shm/x",
            "/mnt",
        ]))
        .expect("parses");
        assert_eq!(
            c,
            ZusCommand::Mount(MountArgs {
                config: Some("/c.toml".into()),
                options: vec!["ro".into(), "allow_other".into()],
                foreground: true,
                device: "/dev/shm/x".into(),
                mountpoint: "/mnt".into(),
            })
        );
    }

    #[test]
    fn zus_mount_minimal_and_options_after_positionals() {
        let ZusCommand::Mount(m) =
            parse_zus(&args(&["mount", "img", "/mnt", "-o", "rw", "--config=/x"])).expect("parses")
        else {
            panic!("not a mount");
        };
        assert_eq!(m.device, OsString::from("img"));
        assert_eq!(m.options, vec!["rw".to_string()]);
        assert_eq!(m.config, Some(PathBuf::from("/x")));
        assert!(!m.foreground);
    }

    #[test]
    fn zus_mount_errors() {
        assert!(parse_zus(&args(&["mount", "img"])).is_err());
        assert!(parse_zus(&args(&["mount", "a", "b", "c"])).is_err());
        assert!(parse_zus(&args(&["mount", "a", "b", "-o"])).is_err());
        assert!(parse_zus(&args(&["mount", "a", "b", "--config"])).is_err());
        let e = parse_zus(&args(&["mount", "--bogus", "a", "b"])).expect_err("bogus");
        assert!(e.0.contains("--bogus"));
    }

    #[test]
    fn zus_mount_double_dash() {
        let ZusCommand::Mount(m) = parse_zus(&args(&["mount", "--", "-dev", "/mnt"])).expect("parses") else {
            panic!("not a mount");
        };
        assert_eq!(m.device, OsString::from("-dev"));
    }

    #[test]
    fn zus_non_utf8_paths() {
        let dev = OsString::from(OsStr::from_bytes(b"/tmp/\xff.img"));
        let ZusCommand::Mount(m) =
            parse_zus(&[OsString::from("mount"), dev.clone(), OsString::from("/mnt")]).expect("parses")
        else {
            panic!("not a mount");
        };
        assert_eq!(m.device, dev);
        let bad_opt = OsString::from(OsStr::from_bytes(b"fsname=\xff"));
        assert!(parse_zus(&[OsString::from("mount"), "-o".into(), bad_opt, "a".into(), "b".into()]).is_err());
    }

    #[test]
    fn helper_as_mount8_calls_it() {
        let h = parse_helper(&args(&["/dev/shm/x.img", "/mnt/zpmfs", "-o", "rw,noatime"])).expect("parses");
        assert_eq!(h.device, OsString::from("/dev/shm/x.img"));
        assert_eq!(h.mountpoint, OsString::from("/mnt/zpmfs"));
        assert_eq!(h.zus_args(), args(&["mount", "-o", "rw,noatime", "--", "/dev/shm/x.img", "/mnt/zpmfs"]));
    }

    #[test]
    fn helper_options_first_and_mount8_flags() {
        let h = parse_helper(&args(&["-n", "-o", "ro", "-s", "dev", "mnt", "-f", "-v", "-t", "fuse.zpmfs"]))
            .expect("parses");
        assert_eq!(h.options, args(&["ro"]));
        assert_eq!(h.zus_args(), args(&["mount", "-o", "ro", "--", "dev", "mnt"]));
        let h = parse_helper(&args(&["dev", "mnt"])).expect("no options");
        assert_eq!(h.zus_args(), args(&["mount", "--", "dev", "mnt"]));
    }

    #[test]
    fn helper_errors() {
        assert!(parse_helper(&args(&["dev"])).is_err());
        assert!(parse_helper(&args(&["dev", "mnt", "-o"])).is_err());
        assert!(parse_helper(&args(&["dev", "mnt", "--weird"])).is_err());
    }
}
