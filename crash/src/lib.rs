//! Crash consistency by enumeration: record a workload's PM stores, flushes and fences, build
//! every image a power cut could leave (within bounds), and check each against an oracle.

pub mod check;
pub mod oracle;
pub mod sim;
pub mod workload;
