//! Extended attributes: kept in the inode's log (set and remove entries), indexed in DRAM.

use crate::alloc::Pool;
use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::layout::Entry;
use crate::vfs::*;

/// Namespaces zpmfs stores. Others (e.g. "os2.") are refused with EOPNOTSUPP.
const NAMESPACES: [&[u8]; 4] = [b"user.", b"trusted.", b"security.", b"system.posix_acl_"];

fn check_xattr_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(Error::Invalid("empty xattr name"));
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(Error::Range);
    }
    if !NAMESPACES.iter().any(|ns| name.starts_with(ns) && name.len() > ns.len()) {
        return Err(Error::NotSupported);
    }
    Ok(())
}

impl Fs {
    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], flags: XattrFlags) -> Result<()> {
        self.check_writable()?;
        check_xattr_name(name)?;
        if value.len() > XATTR_VALUE_MAX {
            return Err(Error::TooBig);
        }
        let r = self.inode(ino)?;
        let mut st = r.write();
        crate::iflags::check_pinned(st.flags)?;
        let exists = st.xattrs.contains_key(name);
        if flags.create && exists {
            return Err(Error::Exists);
        }
        if flags.replace && !exists {
            return Err(Error::NoAttr);
        }
        self.commit(&mut st, crate::layout::xattr_set_entries(Timespec::now(), name, value))
    }

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.check_alive()?;
        check_xattr_name(name)?;
        let r = self.inode(ino)?;
        let st = r.read();
        st.xattrs.get(name).cloned().ok_or(Error::NoAttr)
    }

    /// Names, each followed by a NUL byte (the listxattr(2) format).
    pub fn listxattr(&self, ino: Ino) -> Result<Vec<u8>> {
        self.check_alive()?;
        let r = self.inode(ino)?;
        let st = r.read();
        let mut out = Vec::new();
        for name in st.xattrs.keys() {
            out.extend_from_slice(name);
            out.push(0);
        }
        Ok(out)
    }

    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        self.check_writable()?;
        check_xattr_name(name)?;
        let r = self.inode(ino)?;
        let mut st = r.write();
        crate::iflags::check_pinned(st.flags)?;
        if !st.xattrs.contains_key(name) {
            return Err(Error::NoAttr);
        }
        // Removing gives space back (once the log is compacted): it works on a full device.
        let del = Entry::XattrDel { ctime: Timespec::now(), name: name.to_vec() };
        self.commit_in(&mut st, &[del], Pool::Reserve)
    }
}
