//! zus: the user-mode server of zpmfs.
//!
//! Filesystems implement the transport-neutral [`fs_api::ZusFs`] (zpmfs does, in [`zpmfs`]);
//! transports serve it: [`fuse`] over /dev/fuse (zuf.ko, the kernel transport, comes later).
//! [`server`] is `zus mount`: mount, serve, unmount cleanly.
//!
//! The only unsafe code is the fork in [`daemon`], the zuf.ko ABI, and the ring buffers that
//! FUSE over io_uring shares with the kernel (`fuse/uring/queue.rs`).

#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod fs_api;
pub mod fuse;
pub mod logger;
pub mod options;
pub mod server;
pub mod status;
pub mod zpmfs;
pub mod zuf;
