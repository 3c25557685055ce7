//! POSIX ACLs as the kernel passes them in `system.posix_acl_access` / `system.posix_acl_default`
//! (the xattr format: a 4-byte version 2 header, then 8-byte entries tag, perm, id, all
//! little-endian), and the rules that tie an ACL to the file mode: a new inode's mode and ACL
//! from its directory's default ACL, the mode an access ACL implies, and chmod's effect on the
//! ACL. The transports apply them; zpmfs stores ACLs as ordinary xattrs.

use crate::error::{Error, Result};

const VERSION: u32 = 2;
const HEADER: usize = 4;
const ENTRY: usize = 8;

pub const USER_OBJ: u16 = 0x01;
pub const USER: u16 = 0x02;
pub const GROUP_OBJ: u16 = 0x04;
pub const GROUP: u16 = 0x08;
pub const MASK: u16 = 0x10;
pub const OTHER: u16 = 0x20;

/// xattr names of the two ACL kinds.
pub const ACCESS_XATTR: &[u8] = b"system.posix_acl_access";
pub const DEFAULT_XATTR: &[u8] = b"system.posix_acl_default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclEntry {
    pub tag: u16,
    /// rwx bits (0..=7).
    pub perm: u16,
    /// uid or gid for USER and GROUP entries; unused otherwise.
    pub id: u32,
}

/// A parsed ACL, entries in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl(pub Vec<AclEntry>);

impl Acl {
    /// Parse and validate an ACL xattr value: one USER_OBJ, GROUP_OBJ and OTHER, a MASK when
    /// there are named entries, no duplicate names, permissions within rwx.
    pub fn parse(value: &[u8]) -> Result<Acl> {
        let bad = Error::Invalid;
        if value.len() < HEADER || (value.len() - HEADER) % ENTRY != 0 {
            return Err(bad("POSIX ACL: length is not a header plus whole entries"));
        }
        if u32::from_le_bytes(value[..4].try_into().unwrap()) != VERSION {
            return Err(bad("POSIX ACL: unknown version"));
        }
        let mut entries = Vec::with_capacity((value.len() - HEADER) / ENTRY);
        for e in value[HEADER..].chunks_exact(ENTRY) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            if perm > 7 {
                return Err(bad("POSIX ACL: permission bits beyond rwx"));
            }
            entries.push(AclEntry { tag, perm, id });
        }
        let count = |t: u16| entries.iter().filter(|e| e.tag == t).count();
        if count(USER_OBJ) != 1 || count(GROUP_OBJ) != 1 || count(OTHER) != 1 || count(MASK) > 1 {
            return Err(bad("POSIX ACL: needs exactly one owner, owning group and other entry"));
        }
        if entries.iter().any(|e| ![USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER].contains(&e.tag)) {
            return Err(bad("POSIX ACL: unknown entry tag"));
        }
        let named = count(USER) + count(GROUP);
        if named > 0 && count(MASK) == 0 {
            return Err(bad("POSIX ACL: named entries need a mask entry"));
        }
        for t in [USER, GROUP] {
            let mut ids: Vec<u32> = entries.iter().filter(|e| e.tag == t).map(|e| e.id).collect();
            ids.sort_unstable();
            if ids.windows(2).any(|w| w[0] == w[1]) {
                return Err(bad("POSIX ACL: the same user or group twice"));
            }
        }
        Ok(Acl(entries))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + ENTRY * self.0.len());
        v.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.0 {
            v.extend_from_slice(&e.tag.to_le_bytes());
            v.extend_from_slice(&e.perm.to_le_bytes());
            v.extend_from_slice(&e.id.to_le_bytes());
        }
        v
    }

    fn perm_of(&self, tag: u16) -> Option<u16> {
        self.0.iter().find(|e| e.tag == tag).map(|e| e.perm)
    }

    /// The rwx bits (mode & 0o777) this access ACL implies: owner from USER_OBJ, group from the
    /// MASK when there is one (else GROUP_OBJ), other from OTHER.
    pub fn mode_bits(&self) -> u32 {
        let u = self.perm_of(USER_OBJ).unwrap_or(0) as u32;
        let g = self.perm_of(MASK).or_else(|| self.perm_of(GROUP_OBJ)).unwrap_or(0) as u32;
        let o = self.perm_of(OTHER).unwrap_or(0) as u32;
        (u << 6) | (g << 3) | o
    }

    /// True when the mode bits say everything this ACL says (only the three base entries), so
    /// it need not be stored.
    pub fn is_plain(&self) -> bool {
        self.0.iter().all(|e| matches!(e.tag, USER_OBJ | GROUP_OBJ | OTHER))
    }

    /// chmod: the base entries (and the mask in place of the owning group) follow `mode`.
    pub fn chmod(&mut self, mode: u32) {
        let has_mask = self.perm_of(MASK).is_some();
        for e in &mut self.0 {
            match e.tag {
                USER_OBJ => e.perm = ((mode >> 6) & 7) as u16,
                MASK => e.perm = ((mode >> 3) & 7) as u16,
                GROUP_OBJ if !has_mask => e.perm = ((mode >> 3) & 7) as u16,
                OTHER => e.perm = (mode & 7) as u16,
                _ => {}
            }
        }
    }
}

/// What a new inode gets from its directory's default ACL (POSIX 1003.1e, as Linux's
/// posix_acl_create): the requested mode narrowed by the ACL's base entries, the umask
/// ignored; the access ACL narrowed by the requested mode, stored only when it says more than
/// the mode does.
pub struct Inherited {
    /// Permission bits (and setuid/setgid/sticky as requested) to create with.
    pub mode: u32,
    /// The new inode's access ACL, when not plain.
    pub access: Option<Acl>,
}

pub fn inherit(default: &Acl, mode: u32) -> Inherited {
    let mut acl = default.clone();
    let mut mode = mode;
    let has_mask = acl.perm_of(MASK).is_some();
    for e in &mut acl.0 {
        match e.tag {
            USER_OBJ => {
                e.perm &= ((mode >> 6) & 7) as u16;
                mode &= ((e.perm as u32) << 6) | !0o700;
            }
            OTHER => {
                e.perm &= (mode & 7) as u16;
                mode &= (e.perm as u32) | !0o007;
            }
            MASK => {
                e.perm &= ((mode >> 3) & 7) as u16;
                mode &= ((e.perm as u32) << 3) | !0o070;
            }
            GROUP_OBJ if !has_mask => {
                e.perm &= ((mode >> 3) & 7) as u16;
                mode &= ((e.perm as u32) << 3) | !0o070;
            }
            _ => {}
        }
    }
    let access = (!acl.is_plain()).then_some(acl);
    Inherited { mode, access }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Acl {
        Acl(entries.iter().map(|&(tag, perm, id)| AclEntry { tag, perm, id }).collect())
    }

    #[test]
    fn round_trip_and_validation() {
        let a = acl(&[(USER_OBJ, 7, 0), (USER, 5, 1000), (GROUP_OBJ, 5, 0), (MASK, 5, 0), (OTHER, 0, 0)]);
        assert_eq!(Acl::parse(&a.encode()).unwrap(), a);
        let no_mask = acl(&[(USER_OBJ, 7, 0), (USER, 5, 1000), (GROUP_OBJ, 5, 0), (OTHER, 0, 0)]);
        assert!(Acl::parse(&no_mask.encode()).is_err());
        let two_owners = acl(&[(USER_OBJ, 7, 0), (USER_OBJ, 7, 0), (GROUP_OBJ, 5, 0), (OTHER, 0, 0)]);
        assert!(Acl::parse(&two_owners.encode()).is_err());
        assert!(Acl::parse(&[2, 0, 0, 0, 1]).is_err());
        assert!(Acl::parse(&[]).is_err());
        let mut bad_perm = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 5, 0), (OTHER, 0, 0)]).encode();
        bad_perm[6] = 9;
        assert!(Acl::parse(&bad_perm).is_err());
    }

    #[test]
    fn mode_bits_use_the_mask_for_the_group() {
        let a = acl(&[(USER_OBJ, 6, 0), (USER, 7, 1000), (GROUP_OBJ, 7, 0), (MASK, 4, 0), (OTHER, 1, 0)]);
        assert_eq!(a.mode_bits(), 0o641);
        assert!(!a.is_plain());
        assert!(acl(&[(USER_OBJ, 6, 0), (GROUP_OBJ, 4, 0), (OTHER, 4, 0)]).is_plain());
    }

    #[test]
    fn chmod_changes_the_mask_not_the_owning_group() {
        let mut a = acl(&[(USER_OBJ, 7, 0), (USER, 7, 1000), (GROUP_OBJ, 7, 0), (MASK, 7, 0), (OTHER, 7, 0)]);
        a.chmod(0o750);
        assert_eq!(a.mode_bits(), 0o750);
        assert_eq!(a.perm_of(GROUP_OBJ), Some(7));
        assert_eq!(a.perm_of(USER), Some(7));
    }

    #[test]
    fn inheritance_narrows_mode_and_acl_and_ignores_umask() {
        let d = acl(&[(USER_OBJ, 7, 0), (USER, 7, 1000), (GROUP_OBJ, 5, 0), (MASK, 7, 0), (OTHER, 0, 0)]);
        let i = inherit(&d, 0o100666);
        assert_eq!(i.mode, 0o100660);
        let a = i.access.expect("named entry kept");
        assert_eq!(a.perm_of(MASK), Some(6));
        assert_eq!(a.perm_of(USER_OBJ), Some(6));
        assert_eq!(a.perm_of(OTHER), Some(0));
        let plain = inherit(&acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 5, 0), (OTHER, 5, 0)]), 0o40777 | 0o2000);
        assert_eq!(plain.mode, 0o42755);
        assert!(plain.access.is_none());
    }
}
