//! The on-PM format: every structure's byte layout, little-endian, with encode/decode.
//! docs/FORMAT.md draws the same picture; update it when anything here changes.
//!
//! Block 0 superblock, block 1 its replica, block 2 the state block (clean flag, saved
//! allocator), then the per-CPU journals and inode-table roots, the allocator save area, and
//! the data area where everything else (inode-table blocks, log pages, file data) is allocated.

use crate::error::{Error, Result};
use crate::vfs::Timespec;

/// Every block is 4 KiB.
pub const BLOCK_SIZE: u64 = 4096;
/// First 8 bytes of the superblock.
pub const MAGIC: [u8; 8] = *b"ZPMFS\0\x01\0";
/// Format version; mount refuses others.
pub const FORMAT_VERSION: u32 = 1;

pub const SUPER_BLOCK: u64 = 0;
pub const SUPER_REPLICA_BLOCK: u64 = 1;
pub const STATE_BLOCK: u64 = 2;

/// PM inode size; 32 per block.
pub const INODE_SIZE: u64 = 128;
pub const INODES_PER_BLOCK: u64 = BLOCK_SIZE / INODE_SIZE;
/// Pointers per index block of an inode table.
pub const PTRS_PER_BLOCK: u64 = BLOCK_SIZE / 8;
/// Inodes one CPU's table can hold (two index levels).
pub const INODES_PER_CPU: u64 = PTRS_PER_BLOCK * PTRS_PER_BLOCK * INODES_PER_BLOCK;

/// Log page header size; entries start here.
pub const LOG_HEADER: u64 = 32;
/// Log page magic, at byte 16 of each page.
pub const LOG_MAGIC: u32 = u32::from_le_bytes(*b"ZLOG");
/// Largest entry (must fit a page after its header).
pub const MAX_ENTRY: usize = (BLOCK_SIZE - LOG_HEADER) as usize;

/// Journal records per CPU journal (each names one 8-byte commit word and its old value).
pub const JOURNAL_RECORDS: usize = 32;

fn crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}
fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}
fn i64_at(b: &[u8], o: usize) -> i64 {
    u64_at(b, o) as i64
}
fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}
fn time_at(b: &[u8], o: usize) -> Timespec {
    Timespec { sec: i64_at(b, o), nsec: u32_at(b, o + 8).min(999_999_999) }
}
fn put_time(b: &mut [u8], o: usize, t: Timespec) {
    put64(b, o, t.sec as u64);
    put32(b, o + 8, t.nsec);
}

/// The superblock (blocks 0 and 1), written once by mkfs. Encoded size [`Superblock::SIZE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// @8 format version
    pub version: u32,
    /// @12 block size (always 4096)
    pub block_size: u32,
    /// @16 device size in blocks
    pub blocks: u64,
    /// @24 volume UUID
    pub uuid: [u8; 16],
    /// @40 volume label, NUL-padded
    pub label: [u8; 64],
    /// @104 number of per-CPU inode tables and journals
    pub cpus: u32,
    /// @108 feature flags (none defined; mount refuses unknown bits)
    pub flags: u32,
    /// @112 creation time, seconds
    pub created: i64,
    /// @120 block holding one u64 per CPU: that CPU's inode-table root (level-1 index) block
    pub inode_roots: u64,
    /// @128 first of `cpus` journal blocks
    pub journals: u64,
    /// @136 first block of the allocator save area
    pub save_start: u64,
    /// @144 blocks in the save area
    pub save_blocks: u64,
    /// @152 first block of the data area
    pub data_start: u64,
    /// @160 block of the device table ([`DeviceTable`]) when [`FLAG_DEVICE_SET`] is set, else 0
    pub device_table: u64,
    // @168..252 zero; @252 crc32c of bytes 0..252
}

/// Superblock flag: the filesystem spans several devices ([`DeviceTable`]). `blocks` then
/// counts the whole set: member i holds set blocks [start, start + blocks) of its entry.
pub const FLAG_DEVICE_SET: u32 = 1;
/// Flags this zpmfs understands; mount refuses an image with any other.
pub const KNOWN_FLAGS: u32 = FLAG_DEVICE_SET;

impl Superblock {
    pub const SIZE: usize = 256;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&MAGIC);
        put32(&mut b, 8, self.version);
        put32(&mut b, 12, self.block_size);
        put64(&mut b, 16, self.blocks);
        b[24..40].copy_from_slice(&self.uuid);
        b[40..104].copy_from_slice(&self.label);
        put32(&mut b, 104, self.cpus);
        put32(&mut b, 108, self.flags);
        put64(&mut b, 112, self.created as u64);
        put64(&mut b, 120, self.inode_roots);
        put64(&mut b, 128, self.journals);
        put64(&mut b, 136, self.save_start);
        put64(&mut b, 144, self.save_blocks);
        put64(&mut b, 152, self.data_start);
        put64(&mut b, 160, self.device_table);
        let c = crc(&b[..252]);
        put32(&mut b, 252, c);
        b
    }

    /// Decode and validate one copy. `device_blocks` is what the device really holds.
    pub fn decode(b: &[u8], device_blocks: u64) -> Result<Superblock> {
        if b.len() < Self::SIZE || b[0..8] != MAGIC {
            return Err(Error::Corrupt("no zpmfs superblock (bad magic)".into()));
        }
        if crc(&b[..252]) != u32_at(b, 252) {
            return Err(Error::Corrupt("superblock checksum mismatch".into()));
        }
        let sb = Superblock {
            version: u32_at(b, 8),
            block_size: u32_at(b, 12),
            blocks: u64_at(b, 16),
            uuid: b[24..40].try_into().unwrap_or([0; 16]),
            label: b[40..104].try_into().unwrap_or([0; 64]),
            cpus: u32_at(b, 104),
            flags: u32_at(b, 108),
            created: i64_at(b, 112),
            inode_roots: u64_at(b, 120),
            journals: u64_at(b, 128),
            save_start: u64_at(b, 136),
            save_blocks: u64_at(b, 144),
            data_start: u64_at(b, 152),
            device_table: u64_at(b, 160),
        };
        if sb.version != FORMAT_VERSION {
            return Err(Error::Corrupt(format!(
                "format version {} is not supported (this zpmfs reads version {FORMAT_VERSION})",
                sb.version
            )));
        }
        if sb.block_size as u64 != BLOCK_SIZE {
            return Err(Error::Corrupt(format!("block size {} is not 4096", sb.block_size)));
        }
        if sb.flags & !KNOWN_FLAGS != 0 {
            return Err(Error::Corrupt(format!("unknown feature flags {:#x}", sb.flags & !KNOWN_FLAGS)));
        }
        if sb.blocks > device_blocks {
            return Err(Error::Corrupt(format!(
                "superblock says {} blocks but the device holds only {device_blocks} (truncated image?)",
                sb.blocks
            )));
        }
        let meta_ok = sb.cpus >= 1
            && sb.cpus <= 4096
            && sb.inode_roots > STATE_BLOCK
            && sb.journals > STATE_BLOCK
            && sb.journals.checked_add(sb.cpus as u64).is_some_and(|e| e <= sb.data_start)
            && sb.inode_roots < sb.data_start
            && sb.save_start.checked_add(sb.save_blocks).is_some_and(|e| e <= sb.data_start)
            && sb.data_start < sb.blocks;
        if !meta_ok {
            return Err(Error::Corrupt("superblock fields point outside the metadata area".into()));
        }
        // Nor may the areas overlap (the sums are bounded above): saving the allocator would
        // overwrite a journal.
        let journals = sb.journals..sb.journals + sb.cpus as u64;
        let save = sb.save_start..sb.save_start + sb.save_blocks;
        let apart = sb.save_start > STATE_BLOCK
            && (journals.end <= save.start || save.end <= journals.start)
            && !journals.contains(&sb.inode_roots)
            && !save.contains(&sb.inode_roots);
        let table_ok = if sb.flags & FLAG_DEVICE_SET != 0 {
            sb.device_table > STATE_BLOCK
                && sb.device_table < sb.data_start
                && sb.device_table != sb.inode_roots
                && !journals.contains(&sb.device_table)
                && !save.contains(&sb.device_table)
        } else {
            sb.device_table == 0
        };
        if !apart || !table_ok {
            return Err(Error::Corrupt("superblock areas overlap".into()));
        }
        Ok(sb)
    }

    pub fn label_str(&self) -> String {
        let end = self.label.iter().position(|&c| c == 0).unwrap_or(self.label.len());
        String::from_utf8_lossy(&self.label[..end]).into_owned()
    }
}

/// Largest device set (members that fit the device table's block).
pub const MAX_MEMBERS: usize = 63;
/// First 8 bytes of the device table block.
pub const DEVICE_TABLE_MAGIC: [u8; 8] = *b"ZPMFSDT\x01";
/// First 8 bytes of a member header (blocks 0 and 1 of every member but the first).
pub const MEMBER_MAGIC: [u8; 8] = *b"ZPMFSMB\x01";
/// Blocks at the start of a member (but the first) that hold its header and the replica.
pub const MEMBER_HEADER_BLOCKS: u64 = 2;

/// One member of a device set, as the device table records it. Encoded in 48 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// @0 this member's own UUID
    pub uuid: [u8; 16],
    /// @16 first set block it holds
    pub start: u64,
    /// @24 how many
    pub blocks: u64,
    /// @32 the NUMA node it is attached to
    pub node: u32,
    // @36..48 zero
}

impl Member {
    const SIZE: usize = 48;
    /// The set blocks this member holds for data (its header blocks excluded).
    pub fn data_range(&self, index: usize, data_start: u64) -> (u64, u64) {
        let first = if index == 0 { data_start } else { self.start + MEMBER_HEADER_BLOCKS };
        (first, self.start + self.blocks)
    }
}

/// The device table (one block in the first member's metadata area): every member, in set
/// order. @0 magic, @8 count u32, @16 members (48 bytes each), @4092 crc32c of 0..4092.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTable {
    pub members: Vec<Member>,
}

impl DeviceTable {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_SIZE as usize];
        b[..8].copy_from_slice(&DEVICE_TABLE_MAGIC);
        put32(&mut b, 8, self.members.len() as u32);
        for (i, m) in self.members.iter().enumerate() {
            let o = 16 + i * Member::SIZE;
            b[o..o + 16].copy_from_slice(&m.uuid);
            put64(&mut b, o + 16, m.start);
            put64(&mut b, o + 24, m.blocks);
            put32(&mut b, o + 32, m.node);
        }
        let c = crc(&b[..4092]);
        put32(&mut b, 4092, c);
        b
    }

    /// Decode and check: members in order, each starting where the last ended, the first at
    /// block 0, together `set_blocks` long.
    pub fn decode(b: &[u8], set_blocks: u64) -> Result<DeviceTable> {
        let bad = |why: &str| Error::Corrupt(format!("device table: {why}"));
        if b.len() < BLOCK_SIZE as usize || b[..8] != DEVICE_TABLE_MAGIC {
            return Err(bad("bad magic"));
        }
        if crc(&b[..4092]) != u32_at(b, 4092) {
            return Err(bad("checksum mismatch"));
        }
        let count = u32_at(b, 8) as usize;
        if !(1..=MAX_MEMBERS).contains(&count) {
            return Err(bad(&format!("{count} members")));
        }
        let mut members = Vec::with_capacity(count);
        let mut next = 0u64;
        for i in 0..count {
            let o = 16 + i * Member::SIZE;
            let m = Member {
                uuid: b[o..o + 16].try_into().unwrap_or([0; 16]),
                start: u64_at(b, o + 16),
                blocks: u64_at(b, o + 24),
                node: u32_at(b, o + 32),
            };
            if m.start != next || m.blocks <= MEMBER_HEADER_BLOCKS {
                return Err(bad(&format!("member {i} does not follow member {}", i.max(1) - 1)));
            }
            next = m.start.checked_add(m.blocks).ok_or_else(|| bad("members past 2^64 blocks"))?;
            members.push(m);
        }
        if next != set_blocks {
            return Err(bad(&format!("members hold {next} blocks, the superblock says {set_blocks}")));
        }
        Ok(DeviceTable { members })
    }
}

/// What a member other than the first says about itself (its blocks 0 and 1), so that it can
/// be found by UUID and checked against the table. Encoded in [`MemberHeader::SIZE`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHeader {
    /// @8 the set's UUID (the first member's superblock UUID)
    pub set_uuid: [u8; 16],
    /// @24 this member's UUID
    pub uuid: [u8; 16],
    /// @40 its place in the set (1..)
    pub index: u32,
    /// @44 members in the set
    pub count: u32,
    /// @48 first set block it holds, @56 how many, @64 its NUMA node; @124 crc32c of 0..124
    pub start: u64,
    pub blocks: u64,
    pub node: u32,
}

impl MemberHeader {
    pub const SIZE: usize = 128;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..8].copy_from_slice(&MEMBER_MAGIC);
        b[8..24].copy_from_slice(&self.set_uuid);
        b[24..40].copy_from_slice(&self.uuid);
        put32(&mut b, 40, self.index);
        put32(&mut b, 44, self.count);
        put64(&mut b, 48, self.start);
        put64(&mut b, 56, self.blocks);
        put32(&mut b, 64, self.node);
        let c = crc(&b[..124]);
        put32(&mut b, 124, c);
        b
    }

    pub fn decode(b: &[u8]) -> Result<MemberHeader> {
        if b.len() < Self::SIZE || b[..8] != MEMBER_MAGIC {
            return Err(Error::Corrupt("no zpmfs member header (bad magic)".into()));
        }
        if crc(&b[..124]) != u32_at(b, 124) {
            return Err(Error::Corrupt("member header checksum mismatch".into()));
        }
        Ok(MemberHeader {
            set_uuid: b[8..24].try_into().unwrap_or([0; 16]),
            uuid: b[24..40].try_into().unwrap_or([0; 16]),
            index: u32_at(b, 40),
            count: u32_at(b, 44),
            start: u64_at(b, 48),
            blocks: u64_at(b, 56),
            node: u32_at(b, 64),
        })
    }
}

/// State block (block 2) fields, byte offsets.
pub mod state {
    /// u64 commit word: 1 = cleanly unmounted (saved allocator valid), 0 = mounted or crashed.
    pub const CLEAN: u64 = 0;
    /// u64: how many times mounted.
    pub const MOUNT_COUNT: u64 = 8;
    /// u64: free extents saved in the save area at the last clean unmount.
    pub const SAVED_EXTENTS: u64 = 16;
    /// u64: crc32c of the saved extents (low 32 bits).
    pub const SAVED_CRC: u64 = 24;
    /// u64: inodes in use at the last clean unmount.
    pub const SAVED_INODES: u64 = 32;
}

/// PM inode byte offsets (128 bytes each).
pub mod inode {
    /// u64 commit word: 0 free, [`LIVE`] in use.
    pub const STATE: u64 = 0;
    /// u64 first log page (block number), 0 = none yet.
    pub const LOG_HEAD: u64 = 8;
    /// u64 commit word: device byte offset where the next log entry goes; 0 = log empty.
    pub const LOG_TAIL: u64 = 16;
    pub const LIVE: u64 = 1;
    /// Bytes 24..68 are the creation record, covered by the crc at 68.
    pub const CREATION: std::ops::Range<usize> = 24..68;
    pub const CRC: usize = 68;
}

/// What an inode was created as: immutable after creation, crc-protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeCreation {
    /// @24
    pub generation: u32,
    /// @28 type and permission bits at creation
    pub mode: u32,
    /// @32
    pub uid: u32,
    /// @36
    pub gid: u32,
    /// @40
    pub rdev: u32,
    /// @44 reserved flags (0)
    pub flags: u32,
    /// @48 parent directory at creation
    pub parent: u64,
    /// @56 creation time (12 bytes)
    pub time: Timespec,
}

impl InodeCreation {
    /// Encode the whole 128-byte PM inode with state 0 and an empty log.
    pub fn encode(&self) -> [u8; INODE_SIZE as usize] {
        let mut b = [0u8; INODE_SIZE as usize];
        put32(&mut b, 24, self.generation);
        put32(&mut b, 28, self.mode);
        put32(&mut b, 32, self.uid);
        put32(&mut b, 36, self.gid);
        put32(&mut b, 40, self.rdev);
        put32(&mut b, 44, self.flags);
        put64(&mut b, 48, self.parent);
        put_time(&mut b, 56, self.time);
        let c = crc(&b[inode::CREATION]);
        put32(&mut b, inode::CRC, c);
        b
    }

    /// From the creation record's bytes ([`inode::CREATION`] of an inode checked when it was
    /// loaded), what its attributes show: generation, rdev and creation time.
    pub fn attr_fields(record: &[u8]) -> (u32, u32, Timespec) {
        let at = |field: usize| field - inode::CREATION.start;
        (u32_at(record, at(24)), u32_at(record, at(40)), time_at(record, at(56)))
    }

    pub fn decode(b: &[u8], ino: u64) -> Result<InodeCreation> {
        if crc(&b[inode::CREATION]) != u32_at(b, inode::CRC) {
            return Err(Error::Corrupt(format!("inode {ino}: checksum mismatch")));
        }
        Ok(InodeCreation {
            generation: u32_at(b, 24),
            mode: u32_at(b, 28),
            uid: u32_at(b, 32),
            gid: u32_at(b, 36),
            rdev: u32_at(b, 40),
            flags: u32_at(b, 44),
            parent: u64_at(b, 48),
            time: time_at(b, 56),
        })
    }
}

/// Log page header offsets.
pub mod logpage {
    /// u64 next page (block number), 0 = last.
    pub const NEXT: u64 = 0;
    /// u64 owning inode number (for fsck).
    pub const OWNER: u64 = 8;
    /// u32 [`super::LOG_MAGIC`].
    pub const MAGIC: u64 = 16;
}

/// Entry kinds (byte 0 of an entry). 0 marks the unused rest of a page.
pub mod kind {
    pub const PAGE_END: u8 = 0;
    pub const ATTR: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const PUNCH: u8 = 3;
    pub const LINK: u8 = 4;
    pub const DENTRY_ADD: u8 = 5;
    pub const DENTRY_DEL: u8 = 6;
    pub const PARENT: u8 = 7;
    pub const XATTR_SET: u8 = 8;
    pub const XATTR_DEL: u8 = 9;
    pub const XATTR_PART: u8 = 10;
}

/// One log entry, decoded (kept in DRAM). Every entry starts with an 8-byte header:
/// kind u8, reserved u8, total length u16 (a multiple of 8), crc32c u32 of the entry with
/// the crc field zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Attributes after a setattr (len 72): mode@8 uid@12 gid@16 flags@20 (chattr's, see
    /// [`crate::iflags`]; 0 in images made before them) size@24 atime@32 mtime@44 ctime@56.
    Attr {
        mode: u32,
        uid: u32,
        gid: u32,
        flags: u32,
        size: u64,
        atime: Timespec,
        mtime: Timespec,
        ctime: Timespec,
    },
    /// File pages [pgoff, pgoff+nblocks) now live in blocks [block, block+nblocks) (len 56):
    /// pgoff@8 block@16 nblocks@24 size@32 (file size after the write) mtime@40.
    Write { pgoff: u64, block: u64, nblocks: u32, size: u64, mtime: Timespec },
    /// File pages [pgoff, pgoff+npages) are holes again (len 40): pgoff@8 npages@16 mtime@24.
    Punch { pgoff: u64, npages: u64, mtime: Timespec },
    /// Link count (len 32): nlink@8 ctime@16.
    Link { nlink: u32, ctime: Timespec },
    /// A directory entry added (len 44+name rounded to 8): ino@8 cookie@16 kind@24
    /// name_len@25 time@32 name@44.
    DentryAdd { ino: u64, cookie: u64, kind: u8, time: Timespec, name: Vec<u8> },
    /// A directory entry removed (same layout as DentryAdd).
    DentryDel { ino: u64, cookie: u64, kind: u8, time: Timespec, name: Vec<u8> },
    /// A directory's parent changed (rename across directories) (len 16): parent@8.
    Parent { parent: u64 },
    /// An xattr set (len 24+name+value rounded): name_len@8 value_len@10 ctime@12 name@24 value.
    XattrSet { ctime: Timespec, name: Vec<u8>, value: Vec<u8> },
    /// An xattr removed: name_len@8 ctime@12 name@24.
    XattrDel { ctime: Timespec, name: Vec<u8> },
    /// The leading piece of a value too big for one entry (same layout as XattrSet): the
    /// following XattrPart/XattrSet entries of the same name, in the same commit, continue it.
    XattrPart { ctime: Timespec, name: Vec<u8>, value: Vec<u8> },
}

/// Longest value piece one xattr entry holds: with the longest name the entry stays well
/// inside a log page.
pub const XATTR_PIECE: usize = 3072;

/// The entries that set xattr `name` to `value`: one XattrSet, preceded by XattrPart pieces
/// when the value is longer than [`XATTR_PIECE`]. They must be committed together.
pub fn xattr_set_entries(ctime: Timespec, name: &[u8], value: &[u8]) -> Vec<Entry> {
    let pieces: Vec<&[u8]> = if value.is_empty() { vec![value] } else { value.chunks(XATTR_PIECE).collect() };
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let (name, value) = (name.to_vec(), v.to_vec());
            if i == last {
                Entry::XattrSet { ctime, name, value }
            } else {
                Entry::XattrPart { ctime, name, value }
            }
        })
        .collect()
}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

impl Entry {
    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Entry::Attr { .. } => 72,
            Entry::Write { .. } => 56,
            Entry::Punch { .. } => 40,
            Entry::Link { .. } => 32,
            Entry::DentryAdd { name, .. } | Entry::DentryDel { name, .. } => round8(44 + name.len()),
            Entry::Parent { .. } => 16,
            Entry::XattrSet { name, value, .. } | Entry::XattrPart { name, value, .. } => {
                round8(24 + name.len() + value.len())
            }
            Entry::XattrDel { name, .. } => round8(24 + name.len()),
        }
    }
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Encode with header and crc.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.len()];
        self.encode_to(&mut b);
        b
    }

    /// Encode into `b`, which is exactly [`Entry::len`] bytes and all zero (no allocation:
    /// the log's append path encodes every entry of every operation).
    pub fn encode_to(&self, b: &mut [u8]) {
        let mut b = b;
        let k = match self {
            Entry::Attr { mode, uid, gid, flags, size, atime, mtime, ctime } => {
                put32(&mut b, 8, *mode);
                put32(&mut b, 12, *uid);
                put32(&mut b, 16, *gid);
                put32(&mut b, 20, *flags);
                put64(&mut b, 24, *size);
                put_time(&mut b, 32, *atime);
                put_time(&mut b, 44, *mtime);
                put_time(&mut b, 56, *ctime);
                kind::ATTR
            }
            Entry::Write { pgoff, block, nblocks, size, mtime } => {
                put64(&mut b, 8, *pgoff);
                put64(&mut b, 16, *block);
                put32(&mut b, 24, *nblocks);
                put64(&mut b, 32, *size);
                put_time(&mut b, 40, *mtime);
                kind::WRITE
            }
            Entry::Punch { pgoff, npages, mtime } => {
                put64(&mut b, 8, *pgoff);
                put64(&mut b, 16, *npages);
                put_time(&mut b, 24, *mtime);
                kind::PUNCH
            }
            Entry::Link { nlink, ctime } => {
                put32(&mut b, 8, *nlink);
                put_time(&mut b, 16, *ctime);
                kind::LINK
            }
            Entry::DentryAdd { ino, cookie, kind: k, time, name }
            | Entry::DentryDel { ino, cookie, kind: k, time, name } => {
                put64(&mut b, 8, *ino);
                put64(&mut b, 16, *cookie);
                b[24] = *k;
                b[25] = name.len() as u8;
                put_time(&mut b, 32, *time);
                b[44..44 + name.len()].copy_from_slice(name);
                if matches!(self, Entry::DentryAdd { .. }) {
                    kind::DENTRY_ADD
                } else {
                    kind::DENTRY_DEL
                }
            }
            Entry::Parent { parent } => {
                put64(&mut b, 8, *parent);
                kind::PARENT
            }
            Entry::XattrSet { ctime, name, value } | Entry::XattrPart { ctime, name, value } => {
                b[8] = name.len() as u8;
                put16(&mut b, 10, value.len() as u16);
                put_time(&mut b, 12, *ctime);
                b[24..24 + name.len()].copy_from_slice(name);
                b[24 + name.len()..24 + name.len() + value.len()].copy_from_slice(value);
                if matches!(self, Entry::XattrSet { .. }) {
                    kind::XATTR_SET
                } else {
                    kind::XATTR_PART
                }
            }
            Entry::XattrDel { ctime, name } => {
                b[8] = name.len() as u8;
                put_time(&mut b, 12, *ctime);
                b[24..24 + name.len()].copy_from_slice(name);
                kind::XATTR_DEL
            }
        };
        b[0] = k;
        let len = b.len() as u16;
        put16(b, 2, len);
        let c = crc(b);
        put32(b, 4, c);
    }

    /// Length field of the entry header at the start of `b` (to know how much to read).
    pub fn header_len(b: &[u8]) -> usize {
        u16_at(b, 2) as usize
    }

    /// Decode one entry whose bytes are exactly `b` (as long as its header says).
    pub fn decode(b: &[u8]) -> Result<Entry> {
        let bad = |what: &str| Error::Corrupt(format!("log entry: {what}"));
        if b.len() < 8 || b.len() != u16_at(b, 2) as usize || b.len() % 8 != 0 {
            return Err(bad("bad length"));
        }
        let mut copy = b.to_vec();
        put32(&mut copy, 4, 0);
        if crc(&copy) != u32_at(b, 4) {
            return Err(bad("checksum mismatch"));
        }
        let need = |n: usize| if b.len() < n { Err(bad("too short for its kind")) } else { Ok(()) };
        let e = match b[0] {
            kind::ATTR => {
                need(72)?;
                let flags = u32_at(b, 20);
                if flags & !crate::iflags::SUPPORTED != 0 {
                    return Err(bad("attribute flags zpmfs does not know"));
                }
                Entry::Attr {
                    mode: u32_at(b, 8),
                    uid: u32_at(b, 12),
                    gid: u32_at(b, 16),
                    flags,
                    size: u64_at(b, 24),
                    atime: time_at(b, 32),
                    mtime: time_at(b, 44),
                    ctime: time_at(b, 56),
                }
            }
            kind::WRITE => {
                need(56)?;
                Entry::Write {
                    pgoff: u64_at(b, 8),
                    block: u64_at(b, 16),
                    nblocks: u32_at(b, 24),
                    size: u64_at(b, 32),
                    mtime: time_at(b, 40),
                }
            }
            kind::PUNCH => {
                need(40)?;
                Entry::Punch { pgoff: u64_at(b, 8), npages: u64_at(b, 16), mtime: time_at(b, 24) }
            }
            kind::LINK => {
                need(32)?;
                Entry::Link { nlink: u32_at(b, 8), ctime: time_at(b, 16) }
            }
            kind::DENTRY_ADD | kind::DENTRY_DEL => {
                need(44)?;
                let n = b[25] as usize;
                if n == 0 || 44 + n > b.len() {
                    return Err(bad("directory entry name length"));
                }
                let (ino, cookie, k, time) = (u64_at(b, 8), u64_at(b, 16), b[24], time_at(b, 32));
                let name = b[44..44 + n].to_vec();
                if b[0] == kind::DENTRY_ADD {
                    Entry::DentryAdd { ino, cookie, kind: k, time, name }
                } else {
                    Entry::DentryDel { ino, cookie, kind: k, time, name }
                }
            }
            kind::PARENT => {
                need(16)?;
                Entry::Parent { parent: u64_at(b, 8) }
            }
            kind::XATTR_SET | kind::XATTR_PART => {
                need(24)?;
                let (n, v) = (b[8] as usize, u16_at(b, 10) as usize);
                if n == 0 || 24 + n + v > b.len() {
                    return Err(bad("xattr lengths"));
                }
                let (ctime, name, value) =
                    (time_at(b, 12), b[24..24 + n].to_vec(), b[24 + n..24 + n + v].to_vec());
                if b[0] == kind::XATTR_SET {
                    Entry::XattrSet { ctime, name, value }
                } else {
                    Entry::XattrPart { ctime, name, value }
                }
            }
            kind::XATTR_DEL => {
                need(24)?;
                let n = b[8] as usize;
                if n == 0 || 24 + n > b.len() {
                    return Err(bad("xattr name length"));
                }
                Entry::XattrDel { ctime: time_at(b, 12), name: b[24..24 + n].to_vec() }
            }
            other => return Err(bad(&format!("unknown kind {other}"))),
        };
        Ok(e)
    }
}

/// Journal block offsets (one block per CPU).
pub mod journal {
    /// u64 commit word: number of valid records; 0 = no operation in flight.
    pub const COUNT: u64 = 0;
    /// Records start here: (device offset of an 8-byte word u64, its old value u64).
    pub const RECORDS: u64 = 64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trips_and_detects_corruption() {
        let sb = Superblock {
            version: FORMAT_VERSION,
            block_size: 4096,
            blocks: 1000,
            uuid: [7; 16],
            label: [0; 64],
            cpus: 2,
            flags: 0,
            created: 123,
            inode_roots: 3,
            journals: 4,
            save_start: 6,
            save_blocks: 2,
            data_start: 8,
            device_table: 0,
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b, 1000).unwrap(), sb);
        assert!(Superblock::decode(&b, 999).unwrap_err().to_string().contains("truncated"));
        let mut bad = b;
        bad[20] ^= 1;
        assert!(Superblock::decode(&bad, 1000).unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn every_entry_kind_round_trips() {
        let t = Timespec { sec: 5, nsec: 6 };
        let all = vec![
            Entry::Attr {
                mode: 0o100644,
                uid: 1,
                gid: 2,
                flags: crate::iflags::APPEND,
                size: 3,
                atime: t,
                mtime: t,
                ctime: t,
            },
            Entry::Write { pgoff: 9, block: 100, nblocks: 3, size: 40000, mtime: t },
            Entry::Punch { pgoff: 1, npages: 2, mtime: t },
            Entry::Link { nlink: 3, ctime: t },
            Entry::DentryAdd { ino: 5, cookie: 7, kind: 1, time: t, name: b"hello".to_vec() },
            Entry::DentryDel { ino: 5, cookie: 7, kind: 1, time: t, name: vec![b'x'; 255] },
            Entry::Parent { parent: 77 },
            Entry::XattrSet { ctime: t, name: b"user.a".to_vec(), value: vec![1; 3072] },
            Entry::XattrDel { ctime: t, name: b"user.a".to_vec() },
        ];
        for e in all {
            let b = e.encode();
            assert_eq!(b.len(), e.len());
            assert!(b.len() <= MAX_ENTRY);
            assert_eq!(Entry::decode(&b).unwrap(), e);
            let mut bad = b.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x80;
            bad[8] ^= 1;
            assert!(Entry::decode(&bad).is_err());
        }
    }

    #[test]
    fn inode_creation_round_trips() {
        let c = InodeCreation {
            generation: 3,
            mode: 0o40755,
            uid: 1,
            gid: 2,
            rdev: 0,
            flags: 0,
            parent: 1,
            time: Timespec { sec: 9, nsec: 1 },
        };
        let b = c.encode();
        assert_eq!(InodeCreation::decode(&b, 1).unwrap(), c);
        let mut bad = b;
        bad[30] ^= 1;
        assert!(InodeCreation::decode(&bad, 1).is_err());
    }
}
