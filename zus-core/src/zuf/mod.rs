//! The ZUF transport: zus serving zuf.ko. [`abi`] mirrors kernel/zuf_abi.h.

pub mod abi;
