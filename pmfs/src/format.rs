//! mkfs: lay a fresh zpmfs onto a device.

use crate::device::Device;
use crate::error::Result;

/// Smallest device zpmfs formats (16 MiB).
pub const MIN_DEVICE_SIZE: u64 = 16 << 20;
/// Longest volume label in bytes.
pub const LABEL_MAX: usize = 63;

/// What mkfs.zpmfs asks for.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    pub label: String,
    /// None: a random UUID.
    pub uuid: Option<[u8; 16]>,
    /// Per-CPU inode tables and journals; None: this machine's CPU count.
    pub cpus: Option<u32>,
}

/// What a format produced.
#[derive(Debug, Clone)]
pub struct FormatSummary {
    pub uuid: [u8; 16],
    pub blocks: u64,
    pub block_size: u32,
    pub cpus: u32,
}

/// Write a new, empty zpmfs (root directory only) onto `dev`.
pub fn format(_dev: &Device, _opts: &FormatOptions) -> Result<FormatSummary> {
    todo!()
}
