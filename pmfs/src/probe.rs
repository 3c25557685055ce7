//! Recognise what a device already holds, so mkfs can refuse to overwrite it and mount can say
//! what it found instead of zpmfs.
//!
//! Each signature is a few magic bytes at a fixed offset, checked in the order of the
//! `SIGNATURES` table: filesystems first (several of them also carry the 0x55AA boot
//! signature at byte 510), partition tables last. Names follow blkid's TYPE/PTTYPE values.

/// How many leading bytes [`identify`] needs to see.
pub const PROBE_BYTES: usize = 64 * 1024 + 4096;

/// The zpmfs magic: the first 8 bytes of block 0 (and of its replica, block 1).
pub const ZPMFS_MAGIC: &[u8; 8] = b"ZPMFS\0\x01\0";

/// The name of the filesystem (or other signature) found in the first bytes of a device, if any.
///
/// `head` is the start of the device, ideally [`PROBE_BYTES`] long; a shorter head only finds
/// the signatures that fit in it.
pub fn identify(head: &[u8]) -> Option<&'static str> {
    SIGNATURES.iter().find_map(|(name, check)| check(head).then_some(*name))
}

/// A phrase for messages: "a zpmfs filesystem", "an ext4 filesystem", "a swap area".
pub fn describe(name: &str) -> String {
    match name {
        "swap" => "a swap area".to_string(),
        "crypto_LUKS" => "a LUKS encrypted volume".to_string(),
        "dos" => "a DOS (MBR) partition table".to_string(),
        "gpt" => "a GPT partition table".to_string(),
        "minix" => "a minix filesystem".to_string(), // said as a word, not letter by letter
        fs => {
            // "an" before the letters whose English names start with a vowel sound.
            let article = match fs.chars().next() {
                Some('a' | 'e' | 'f' | 'h' | 'i' | 'l' | 'm' | 'n' | 'o' | 'r' | 's' | 'x') => "an",
                _ => "a",
            };
            format!("{article} {fs} filesystem")
        }
    }
}

type Check = fn(&[u8]) -> bool;

/// Checked in order; the first match wins.
const SIGNATURES: &[(&str, Check)] = &[
    ("zpmfs", |h| at(h, 0, ZPMFS_MAGIC)),
    ("crypto_LUKS", |h| at(h, 0, b"LUKS\xba\xbe")),
    ("xfs", |h| at(h, 0, b"XFSB")),
    ("squashfs", |h| at(h, 0, b"hsqs")),
    ("btrfs", |h| at(h, 0x1_0040, b"_BHRfS_M")),
    ("f2fs", |h| at(h, 1024, &0xF2F5_2010u32.to_le_bytes())),
    ("ext4", |h| ext_kind(h) == Some("ext4")),
    ("ext3", |h| ext_kind(h) == Some("ext3")),
    ("ext2", |h| ext_kind(h) == Some("ext2")),
    ("iso9660", |h| at(h, 32769, b"CD001")),
    ("ntfs", |h| at(h, 3, b"NTFS    ")),
    ("vfat", |h| boot_signature(h) && (at(h, 54, b"FAT") || at(h, 82, b"FAT"))),
    ("swap", |h| at(h, 4086, b"SWAPSPACE2") || at(h, 4086, b"SWAP-SPACE")),
    ("bfs", |h| at(h, 0, &0x1BAD_FACEu32.to_le_bytes())),
    ("cramfs", |h| at(h, 0, &CRAMFS_MAGIC.to_le_bytes()) || at(h, 0, &CRAMFS_MAGIC.to_be_bytes())),
    ("minix", minix),
    ("gpt", |h| at(h, 512, b"EFI PART")),
    ("dos", mbr_with_partitions),
];

const CRAMFS_MAGIC: u32 = 0x28CD_3D45;

/// The minix superblock is at byte 1024: s_magic (u16) at +16 for versions 1 and 2 (14- or
/// 30-byte names), at +24 for version 3.
fn minix(h: &[u8]) -> bool {
    let v12 = h.get(1040..1042).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let v3 = h.get(1048..1050).map(|b| u16::from_le_bytes([b[0], b[1]]));
    matches!(v12, Some(0x137F | 0x138F | 0x2468 | 0x2478)) || v3 == Some(0x4D5A)
}

/// `magic` appears at `offset` of `head`.
fn at(head: &[u8], offset: usize, magic: &[u8]) -> bool {
    head.get(offset..offset + magic.len()) == Some(magic)
}

fn le32(head: &[u8], offset: usize) -> Option<u32> {
    let b = head.get(offset..offset + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The ext2 superblock starts at byte 1024.
const EXT_SB: usize = 1024;
/// s_magic, 0xEF53 little-endian.
const EXT_MAGIC_OFF: usize = EXT_SB + 0x38;
const EXT_FEATURE_COMPAT: usize = EXT_SB + 0x5C;
const EXT_FEATURE_INCOMPAT: usize = EXT_SB + 0x60;
const EXT_FEATURE_RO_COMPAT: usize = EXT_SB + 0x64;
/// COMPAT_HAS_JOURNAL: ext3 and later.
const EXT3_FEATURE_COMPAT_HAS_JOURNAL: u32 = 0x4;
/// What ext3 understands: FILETYPE, RECOVER, JOURNAL_DEV, META_BG.
const EXT3_FEATURE_INCOMPAT_SUPP: u32 = 0x2 | 0x4 | 0x8 | 0x10;
/// What ext3 understands: SPARSE_SUPER, LARGE_FILE, BTREE_DIR.
const EXT3_FEATURE_RO_COMPAT_SUPP: u32 = 0x1 | 0x2 | 0x4;

/// ext2, ext3 or ext4, told apart the way blkid does: a feature ext3 does not know makes it
/// ext4, else a journal makes it ext3.
fn ext_kind(head: &[u8]) -> Option<&'static str> {
    if !at(head, EXT_MAGIC_OFF, &0xEF53u16.to_le_bytes()) {
        return None;
    }
    let compat = le32(head, EXT_FEATURE_COMPAT)?;
    let incompat = le32(head, EXT_FEATURE_INCOMPAT)?;
    let ro_compat = le32(head, EXT_FEATURE_RO_COMPAT)?;
    if incompat & !EXT3_FEATURE_INCOMPAT_SUPP != 0 || ro_compat & !EXT3_FEATURE_RO_COMPAT_SUPP != 0 {
        Some("ext4")
    } else if compat & EXT3_FEATURE_COMPAT_HAS_JOURNAL != 0 {
        Some("ext3")
    } else {
        Some("ext2")
    }
}

/// 0x55AA at byte 510: a boot sector (FAT, NTFS) or an MBR.
fn boot_signature(head: &[u8]) -> bool {
    at(head, 510, &[0x55, 0xAA])
}

/// An MBR: the boot signature, four well-formed entries (boot flag 0x00 or 0x80) and at least
/// one with a non-zero partition type.
fn mbr_with_partitions(head: &[u8]) -> bool {
    if !boot_signature(head) {
        return false;
    }
    let entries: Vec<&[u8]> = (0..4).filter_map(|i| head.get(446 + 16 * i..446 + 16 * (i + 1))).collect();
    entries.len() == 4
        && entries.iter().all(|e| e[0] == 0x00 || e[0] == 0x80)
        && entries.iter().any(|e| e[4] != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Vec<u8> {
        vec![0u8; PROBE_BYTES]
    }

    fn put(h: &mut [u8], offset: usize, bytes: &[u8]) {
        h[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    fn ext(compat: u32, incompat: u32, ro_compat: u32) -> Vec<u8> {
        let mut h = head();
        put(&mut h, EXT_MAGIC_OFF, &[0x53, 0xEF]);
        put(&mut h, EXT_FEATURE_COMPAT, &compat.to_le_bytes());
        put(&mut h, EXT_FEATURE_INCOMPAT, &incompat.to_le_bytes());
        put(&mut h, EXT_FEATURE_RO_COMPAT, &ro_compat.to_le_bytes());
        h
    }

    #[test]
    fn bfs_cramfs_and_minix() {
        let mut h = head();
        put(&mut h, 0, &[0xCE, 0xFA, 0xAD, 0x1B]);
        assert_eq!(identify(&h), Some("bfs"));
        let mut h = head();
        put(&mut h, 0, &[0x45, 0x3D, 0xCD, 0x28]);
        assert_eq!(identify(&h), Some("cramfs"));
        for magic in [0x137Fu16, 0x138F, 0x2468, 0x2478] {
            let mut h = head();
            put(&mut h, 1040, &magic.to_le_bytes());
            assert_eq!(identify(&h), Some("minix"), "{magic:#x}");
        }
        let mut h = head();
        put(&mut h, 1048, &0x4D5Au16.to_le_bytes());
        assert_eq!(identify(&h), Some("minix"));
        assert_eq!(describe("minix"), "a minix filesystem");
    }

    #[test]
    fn zeroes_are_nothing() {
        assert_eq!(identify(&head()), None);
        assert_eq!(identify(&[]), None);
        assert_eq!(identify(&[0u8; 100]), None);
    }

    #[test]
    fn zpmfs() {
        let mut h = head();
        put(&mut h, 0, b"ZPMFS\0\x01\0");
        assert_eq!(identify(&h), Some("zpmfs"));
        // A short head (one block) is enough.
        assert_eq!(identify(&h[..4096]), Some("zpmfs"));
    }

    #[test]
    fn zpmfs_magic_must_match_exactly() {
        let mut h = head();
        put(&mut h, 0, b"ZPMFS\0\x02\0");
        assert_eq!(identify(&h), None);
    }

    #[test]
    fn ext2() {
        assert_eq!(identify(&ext(0, 0x2, 0x1 | 0x2)), Some("ext2"));
    }

    #[test]
    fn ext3() {
        assert_eq!(identify(&ext(EXT3_FEATURE_COMPAT_HAS_JOURNAL, 0x2, 0x1 | 0x2)), Some("ext3"));
    }

    #[test]
    fn ext4() {
        // What mkfs.ext4 sets: extents, 64bit, flex_bg; huge_file, dir_nlink, metadata_csum.
        assert_eq!(identify(&ext(0x3c, 0x2c2, 0x46b)), Some("ext4"));
        // An ro_compat feature alone (metadata_csum) also makes it ext4.
        assert_eq!(identify(&ext(EXT3_FEATURE_COMPAT_HAS_JOURNAL, 0x2, 0x400)), Some("ext4"));
    }

    #[test]
    fn xfs() {
        let mut h = head();
        put(&mut h, 0, b"XFSB");
        assert_eq!(identify(&h), Some("xfs"));
    }

    #[test]
    fn btrfs() {
        let mut h = head();
        put(&mut h, 0x1_0040, b"_BHRfS_M");
        assert_eq!(identify(&h), Some("btrfs"));
        // Beyond a short head: not seen, and no panic.
        assert_eq!(identify(&h[..0x1_0040 + 4]), None);
    }

    #[test]
    fn swap() {
        let mut h = head();
        put(&mut h, 4086, b"SWAPSPACE2");
        assert_eq!(identify(&h), Some("swap"));
        let mut h = head();
        put(&mut h, 4086, b"SWAP-SPACE");
        assert_eq!(identify(&h), Some("swap"));
    }

    #[test]
    fn vfat() {
        let mut h = head();
        put(&mut h, 54, b"FAT16   ");
        put(&mut h, 510, &[0x55, 0xAA]);
        assert_eq!(identify(&h), Some("vfat"));
        let mut h = head();
        put(&mut h, 82, b"FAT32   ");
        put(&mut h, 510, &[0x55, 0xAA]);
        assert_eq!(identify(&h), Some("vfat"));
        // Without the boot signature "FAT" alone is not enough.
        let mut h = head();
        put(&mut h, 82, b"FAT32   ");
        assert_eq!(identify(&h), None);
    }

    #[test]
    fn ntfs() {
        let mut h = head();
        put(&mut h, 3, b"NTFS    ");
        put(&mut h, 510, &[0x55, 0xAA]);
        assert_eq!(identify(&h), Some("ntfs"));
    }

    #[test]
    fn iso9660() {
        let mut h = head();
        put(&mut h, 32769, b"CD001");
        assert_eq!(identify(&h), Some("iso9660"));
    }

    #[test]
    fn luks() {
        let mut h = head();
        put(&mut h, 0, b"LUKS\xba\xbe\0\x02");
        assert_eq!(identify(&h), Some("crypto_LUKS"));
    }

    #[test]
    fn squashfs() {
        let mut h = head();
        put(&mut h, 0, b"hsqs");
        assert_eq!(identify(&h), Some("squashfs"));
    }

    #[test]
    fn f2fs() {
        let mut h = head();
        put(&mut h, 1024, &[0x10, 0x20, 0xF5, 0xF2]);
        assert_eq!(identify(&h), Some("f2fs"));
    }

    #[test]
    fn mbr_with_a_partition() {
        let mut h = head();
        put(&mut h, 510, &[0x55, 0xAA]);
        // First entry: bootable, type 0x83 (Linux).
        put(&mut h, 446, &[0x80, 0, 0, 0, 0x83]);
        assert_eq!(identify(&h), Some("dos"));
    }

    #[test]
    fn mbr_without_partitions_is_nothing() {
        let mut h = head();
        put(&mut h, 510, &[0x55, 0xAA]);
        assert_eq!(identify(&h), None);
        // A bad boot flag: not a partition table.
        put(&mut h, 446, &[0x12, 0, 0, 0, 0x83]);
        assert_eq!(identify(&h), None);
    }

    #[test]
    fn gpt_wins_over_its_protective_mbr() {
        let mut h = head();
        put(&mut h, 510, &[0x55, 0xAA]);
        put(&mut h, 446, &[0x00, 0, 2, 0, 0xEE]);
        put(&mut h, 512, b"EFI PART");
        assert_eq!(identify(&h), Some("gpt"));
    }

    #[test]
    fn descriptions_read_well() {
        assert_eq!(describe("ext4"), "an ext4 filesystem");
        assert_eq!(describe("zpmfs"), "a zpmfs filesystem");
        assert_eq!(describe("xfs"), "an xfs filesystem");
        assert_eq!(describe("btrfs"), "a btrfs filesystem");
        assert_eq!(describe("swap"), "a swap area");
        assert_eq!(describe("dos"), "a DOS (MBR) partition table");
    }
}
