//! Mount options (`-o a,b,c`) as `zus mount` and mount(8) pass them.

use std::fmt;
use std::path::PathBuf;

use crate::fuse::channel::ChannelChoice;

/// What the mount options ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOpts {
    /// `ro`: refuse changes (the kernel mount and the filesystem both read-only).
    pub read_only: bool,
    /// `allow_other`: users other than root may use the mount.
    pub allow_other: bool,
    /// `fsname=NAME`: the source shown in /proc/mounts.
    pub fsname: Option<String>,
    /// `source=PATH`: the image to serve, overriding the positional device (which may then be
    /// a tag such as xfstests' TEST_DEV). `PATH:PATH...` names the members of a device set.
    pub source: Option<PathBuf>,
    /// `cpu_nodes=N:N:...`: CPU i is on NUMA node N_i, for a device set's placement (default:
    /// sysfs). Lets one machine stand in for several nodes.
    pub cpu_nodes: Option<String>,
    /// Show the type as `fuse.zpmfs` (default) or, with `nosubtype`, as plain `fuse`.
    pub subtype: bool,
    /// `fuse_channel=auto|uring|dev`: how FUSE requests travel (overrides `[fuse] channel`).
    pub fuse_channel: Option<ChannelChoice>,
    /// Kernel mount flags. FUSE mounts default to nosuid,nodev as libfuse does; `suid` and
    /// `dev` lift that.
    pub flags: MountFlags,
}

/// The generic mount flags that change the kernel mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    pub noatime: bool,
    pub nodiratime: bool,
    pub relatime: bool,
    pub strictatime: bool,
    pub sync: bool,
    pub dirsync: bool,
}

impl Default for MountFlags {
    fn default() -> Self {
        MountFlags {
            nosuid: true,
            nodev: true,
            noexec: false,
            noatime: false,
            nodiratime: false,
            relatime: false,
            strictatime: false,
            sync: false,
            dirsync: false,
        }
    }
}

impl Default for MountOpts {
    fn default() -> Self {
        MountOpts {
            read_only: false,
            allow_other: false,
            fsname: None,
            source: None,
            cpu_nodes: None,
            subtype: true,
            fuse_channel: None,
            flags: MountFlags::default(),
        }
    }
}

/// A mount option that is not understood or is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionError {
    Unknown(String),
    Empty(&'static str),
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::Unknown(o) => write!(f, "unknown mount option '{o}'"),
            OptionError::Empty(o) => write!(f, "mount option '{o}=' needs a value"),
        }
    }
}

impl std::error::Error for OptionError {}

/// Options that mount(8) and fstab pass along and that mean nothing to a FUSE server.
const IGNORED: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "nofail",
    "_netdev",
    "async",
    "lazytime",
    "nolazytime",
    "silent",
    "loud",
    "default_permissions",
];

impl MountOpts {
    /// Parse comma-separated option strings (each `-o` argument is one string); later options
    /// override earlier ones.
    pub fn parse<'a>(lists: impl IntoIterator<Item = &'a str>) -> Result<MountOpts, OptionError> {
        let mut o = MountOpts::default();
        for opt in lists.into_iter().flat_map(|l| l.split(',')).filter(|s| !s.is_empty()) {
            o.apply(opt)?;
        }
        Ok(o)
    }

    fn apply(&mut self, opt: &str) -> Result<(), OptionError> {
        if let Some((key, value)) = opt.split_once('=') {
            match key {
                "fsname" if value.is_empty() => return Err(OptionError::Empty("fsname")),
                "fsname" => self.fsname = Some(value.to_string()),
                "source" if value.is_empty() => return Err(OptionError::Empty("source")),
                "source" => self.source = Some(PathBuf::from(value)),
                "cpu_nodes" => {
                    let list = value.replace(':', ",");
                    if pmfs::numa::NumaMap::from_cpu_nodes(&list).is_err() {
                        return Err(OptionError::Unknown(format!(
                            "{opt} (cpu_nodes= takes one NUMA node per CPU, colon-separated: cpu_nodes=0:1)"
                        )));
                    }
                    self.cpu_nodes = Some(list);
                }
                "fuse_channel" => match ChannelChoice::parse(value) {
                    Some(c) => self.fuse_channel = Some(c),
                    None => {
                        return Err(OptionError::Unknown(format!(
                            "{opt} (fuse_channel= takes auto, uring or dev)"
                        )))
                    }
                },
                k if k.starts_with("x-") => {}
                _ => return Err(OptionError::Unknown(opt.to_string())),
            }
            return Ok(());
        }
        let f = &mut self.flags;
        match opt {
            "ro" => self.read_only = true,
            "rw" => self.read_only = false,
            "allow_other" => self.allow_other = true,
            "nosubtype" => self.subtype = false,
            "suid" => f.nosuid = false,
            "nosuid" => f.nosuid = true,
            "dev" => f.nodev = false,
            "nodev" => f.nodev = true,
            "exec" => f.noexec = false,
            "noexec" => f.noexec = true,
            "atime" => {
                f.noatime = false;
                f.relatime = false;
            }
            "noatime" => f.noatime = true,
            "diratime" => f.nodiratime = false,
            "nodiratime" => f.nodiratime = true,
            "relatime" => f.relatime = true,
            "norelatime" => f.relatime = false,
            "strictatime" => f.strictatime = true,
            "nostrictatime" => f.strictatime = false,
            "sync" => f.sync = true,
            "dirsync" => f.dirsync = true,
            o if o.starts_with("x-") || IGNORED.contains(&o) => {}
            _ => return Err(OptionError::Unknown(opt.to_string())),
        }
        Ok(())
    }

    /// The filesystem type for mount(2): `fuse.zpmfs`, or `fuse` with `nosubtype`.
    pub fn fstype(&self) -> &'static str {
        if self.subtype {
            "fuse.zpmfs"
        } else {
            "fuse"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<MountOpts, OptionError> {
        MountOpts::parse([s])
    }

    #[test]
    fn defaults() {
        let o = parse("").expect("empty");
        assert_eq!(o, MountOpts::default());
        assert!(!o.read_only && !o.allow_other && o.subtype);
        assert!(o.flags.nosuid && o.flags.nodev && !o.flags.noexec);
        assert_eq!(o.fstype(), "fuse.zpmfs");
    }

    #[test]
    fn ro_rw_last_wins() {
        assert!(parse("ro").expect("ro").read_only);
        assert!(!parse("ro,rw").expect("ro,rw").read_only);
        assert!(MountOpts::parse(["rw", "ro"]).expect("two lists").read_only);
    }

    #[test]
    fn named_values() {
        let o = parse("fsname=/dev/pmem0,source=/dev/shm/x.img,allow_other").expect("parses");
        assert_eq!(o.fsname.as_deref(), Some("/dev/pmem0"));
        assert_eq!(o.source, Some(PathBuf::from("/dev/shm/x.img")));
        assert!(o.allow_other);
        // A value may itself contain '='.
        assert_eq!(parse("fsname=a=b").expect("parses").fsname.as_deref(), Some("a=b"));
        assert_eq!(parse("fsname="), Err(OptionError::Empty("fsname")));
        assert_eq!(parse("source="), Err(OptionError::Empty("source")));
    }

    #[test]
    fn fuse_channel() {
        assert_eq!(parse("").expect("parses").fuse_channel, None);
        assert_eq!(parse("fuse_channel=uring").expect("parses").fuse_channel, Some(ChannelChoice::Uring));
        assert_eq!(parse("fuse_channel=dev").expect("parses").fuse_channel, Some(ChannelChoice::Dev));
        assert_eq!(parse("fuse_channel=auto").expect("parses").fuse_channel, Some(ChannelChoice::Auto));
        let err = parse("fuse_channel=fast").expect_err("rejected");
        assert!(err.to_string().contains("auto, uring or dev"), "{err}");
    }

    #[test]
    fn nosubtype_gives_plain_fuse() {
        assert_eq!(parse("nosubtype").expect("parses").fstype(), "fuse");
    }

    #[test]
    fn generic_mount8_options_accepted() {
        let all = "defaults,auto,noauto,user,nouser,nofail,_netdev,dev,nodev,suid,nosuid,exec,\
                   noexec,atime,noatime,relatime,x-systemd.automount,x-foo=bar,default_permissions,\
                   async,sync,dirsync,lazytime";
        parse(all).expect("all generic options accepted");
    }

    #[test]
    fn flags_follow_options() {
        let o = parse("suid,dev,noexec,noatime,sync").expect("parses");
        assert!(!o.flags.nosuid && !o.flags.nodev && o.flags.noexec && o.flags.noatime && o.flags.sync);
        let o = parse("suid,nosuid").expect("parses");
        assert!(o.flags.nosuid);
    }

    #[test]
    fn unknown_option_is_named() {
        let err = parse("rw,bogus,ro").expect_err("bogus rejected");
        assert_eq!(err, OptionError::Unknown("bogus".into()));
        assert!(err.to_string().contains("'bogus'"));
        assert_eq!(parse("uid=0"), Err(OptionError::Unknown("uid=0".into())));
        assert_eq!(parse("RO"), Err(OptionError::Unknown("RO".into())));
    }

    #[test]
    fn empty_items_are_skipped() {
        assert!(parse(",ro,,").expect("parses").read_only);
    }
}
