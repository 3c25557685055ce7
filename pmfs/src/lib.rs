//! zpmfs: a log-structured persistent-memory filesystem.
//!
//! The library knows nothing of its transports: `zus` serves it over FUSE or zuf.ko through
//! the operations of [`Fs`]. See docs/FORMAT.md for the on-PM layout.

pub mod device;
pub mod error;
pub mod format;
pub mod fs;
pub mod persist;
pub mod probe;
pub mod vfs;

pub use error::{Error, Result};
pub use fs::{Fs, MountOptions, MountReport};
