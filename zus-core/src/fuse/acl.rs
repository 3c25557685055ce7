//! POSIX ACLs over FUSE. With FUSE_POSIX_ACL the kernel enforces ACLs itself (it reads them
//! through getxattr) but leaves three duties to the server: a new inode inherits its
//! directory's default ACL (and the umask applies only where there is none, hence
//! FUSE_DONT_MASK), setting an access ACL sets the mode it implies, and chmod updates the
//! access ACL. The rules themselves are in `pmfs::acl`.

use pmfs::acl::{self, Acl};
use pmfs::Error;

use super::handlers::Handlers;
use crate::fs_api::{Caller, Ino, Result, SetAttr, XattrFlags, ZusFs};

/// What to create a new inode with: its mode, and the ACL xattrs to give it right after.
pub struct Creation {
    pub mode: u32,
    pub xattrs: Vec<(&'static [u8], Vec<u8>)>,
}

impl<F: ZusFs + 'static> Handlers<F> {
    /// The directory's default ACL, if it has one.
    fn default_acl(&self, dir: Ino) -> Result<Option<(Acl, Vec<u8>)>> {
        match self.fs.getxattr(dir, acl::DEFAULT_XATTR) {
            Ok(raw) => Ok(Some((Acl::parse(&raw)?, raw))),
            Err(Error::NoAttr) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Mode and ACLs for a new inode of `mode` (type and permission bits) in `parent`.
    pub(super) fn creation(&self, parent: Ino, mode: u32, umask: u32, is_dir: bool) -> Result<Creation> {
        if !self.posix_acl() {
            // The kernel applied the umask already.
            return Ok(Creation { mode, xattrs: Vec::new() });
        }
        match self.default_acl(parent)? {
            None => Ok(Creation { mode: mode & !(umask & 0o777), xattrs: Vec::new() }),
            Some((default, raw)) => {
                let inherited = acl::inherit(&default, mode);
                let mut xattrs = Vec::new();
                if let Some(access) = inherited.access {
                    xattrs.push((acl::ACCESS_XATTR, access.encode()));
                }
                if is_dir {
                    xattrs.push((acl::DEFAULT_XATTR, raw));
                }
                Ok(Creation { mode: inherited.mode, xattrs })
            }
        }
    }

    /// Give a just-created inode its inherited ACLs.
    pub(super) fn finish_creation(&self, ino: Ino, c: &Creation) -> Result<()> {
        for (name, value) in &c.xattrs {
            self.fs.setxattr(ino, name, value, XattrFlags::default())?;
        }
        Ok(())
    }

    /// setxattr of an access ACL: the mode follows it, and an ACL the mode says all of is not
    /// kept (as ext4 does). As with chmod, setgid goes when the caller is neither in the file's
    /// group nor root (the kernel would say so with FUSE_SETXATTR_EXT, which fuser lacks).
    pub(super) fn set_access_acl(
        &self,
        ino: Ino,
        value: &[u8],
        flags: XattrFlags,
        who: Caller,
    ) -> Result<()> {
        let a = Acl::parse(value)?;
        let attr = self.fs.getattr(ino)?;
        let perm = attr.perm as u32;
        let mut mode = (perm & !0o777) | a.mode_bits();
        if mode & libc::S_ISGID != 0 && who.uid != 0 && !in_group(who, attr.gid) {
            mode &= !libc::S_ISGID;
        }
        if mode != perm {
            self.fs.setattr(ino, &SetAttr { mode: Some(mode), ..Default::default() })?;
        }
        if a.is_plain() {
            match self.fs.removexattr(ino, acl::ACCESS_XATTR) {
                Ok(()) | Err(Error::NoAttr) => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            self.fs.setxattr(ino, acl::ACCESS_XATTR, value, flags)
        }
    }

    /// After chmod: the access ACL's base entries (the mask for the group) follow the mode.
    pub(super) fn chmod_acl(&self, ino: Ino, mode: u32) -> Result<()> {
        let raw = match self.fs.getxattr(ino, acl::ACCESS_XATTR) {
            Ok(raw) => raw,
            Err(Error::NoAttr) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut a = Acl::parse(&raw)?;
        a.chmod(mode);
        self.fs.setxattr(ino, acl::ACCESS_XATTR, &a.encode(), XattrFlags::default())
    }
}

/// Whether the caller is in `gid`, by its primary group or its supplementary groups (read from
/// /proc, as libfuse's fuse_req_getgroups does; a caller already gone counts as not in it).
fn in_group(who: Caller, gid: u32) -> bool {
    if who.gid == gid {
        return true;
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", who.pid)).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|groups| groups.split_whitespace().any(|g| g.parse() == Ok(gid)))
}
