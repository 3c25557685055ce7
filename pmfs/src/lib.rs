//! zpmfs: a log-structured persistent-memory filesystem.
//!
//! The library knows nothing of its transports: `zus` serves it over FUSE or zuf.ko through
//! the operations of [`Fs`]. See docs/FORMAT.md for the on-PM layout.
//!
//! Unsafe code lives only in [`device`] (system calls: the device, the CPU, the clock) and
//! [`persist`] (the mapping itself: stores, flushes, fences); the rest of the crate denies it.

#![deny(unsafe_code)]

pub mod acl;
pub mod alloc;
#[allow(unsafe_code)]
pub mod device;
pub mod dir;
pub mod error;
pub mod extents;
pub mod file;
pub mod format;
pub mod free_count;
pub mod fs;
pub mod fsck;
mod icache;
pub mod iflags;
pub mod inode;
pub mod itable;
pub mod journal;
pub mod layout;
pub mod log;
pub mod numa;
#[allow(unsafe_code)]
pub mod persist;
pub mod probe;
pub mod recovery;
pub mod set;
pub mod vfs;
pub mod xattr;

pub use error::{Error, Result};
pub use fs::{Fs, MountOptions, MountReport};
