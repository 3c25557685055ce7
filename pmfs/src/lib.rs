//! zpmfs: a log-structured persistent-memory filesystem.
//!
//! The library knows nothing of its transports: `zus` serves it over FUSE or zuf.ko through
//! the operations of [`Fs`]. See docs/FORMAT.md for the on-PM layout.

pub mod alloc;
pub mod device;
pub mod dir;
pub mod error;
pub mod extents;
pub mod file;
pub mod format;
pub mod fs;
pub mod fsck;
pub mod inode;
pub mod itable;
pub mod journal;
pub mod layout;
pub mod log;
pub mod persist;
pub mod probe;
pub mod recovery;
pub mod vfs;
pub mod xattr;

pub use error::{Error, Result};
pub use fs::{Fs, MountOptions, MountReport};
