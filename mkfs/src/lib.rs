//! mkfs.zpmfs: format a persistent-memory device or an image file with zpmfs.
//!
//! A library so that the pieces have unit tests (a binary named with a dot cannot be a test
//! crate): [`args`] parses the command line, [`mounted`] finds whether the target is in use,
//! [`cli`] runs the checks and the format.

pub mod args;
pub mod cli;
pub mod mounted;
