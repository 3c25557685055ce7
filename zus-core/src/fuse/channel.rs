//! Which way requests travel between the kernel and zus: the /dev/fuse read/write loop, or
//! FUSE over io_uring (Linux 6.14 and later, when root has set
//! /sys/module/fuse/parameters/enable_uring), and how many requests each one carried.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The kernel's switch for FUSE over io_uring (off by default; root may set it to Y).
pub const ENABLE_URING_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// What the configuration asks for (`[fuse] channel`, mount option `fuse_channel=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelChoice {
    /// io_uring where the kernel offers it, else /dev/fuse.
    #[default]
    Auto,
    /// io_uring, or refuse to mount.
    Uring,
    /// /dev/fuse only.
    Dev,
}

impl ChannelChoice {
    pub fn parse(s: &str) -> Option<ChannelChoice> {
        match s {
            "auto" => Some(ChannelChoice::Auto),
            "uring" | "io_uring" => Some(ChannelChoice::Uring),
            "dev" | "dev_fuse" => Some(ChannelChoice::Dev),
            _ => None,
        }
    }
}

impl fmt::Display for ChannelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChannelChoice::Auto => "auto",
            ChannelChoice::Uring => "uring",
            ChannelChoice::Dev => "dev",
        })
    }
}

/// Whether the running kernel's FUSE module has io_uring switched on: `Err` says why not.
pub fn uring_enabled() -> Result<(), String> {
    match std::fs::read_to_string(ENABLE_URING_PARAM) {
        Ok(v) if v.trim() == "Y" || v.trim() == "1" => Ok(()),
        Ok(_) => Err(format!("{ENABLE_URING_PARAM} is N (as root: echo Y > {ENABLE_URING_PARAM})")),
        Err(_) => Err(format!(
            "this kernel has no FUSE over io_uring ({ENABLE_URING_PARAM} is missing; Linux 6.14+)"
        )),
    }
}

/// A counter on its own cache line, so that queues on different CPUs share none.
#[repr(align(128))]
#[derive(Default)]
struct PaddedCounter(AtomicU64);

/// Requests served per channel, for `zus status`.
#[derive(Default)]
pub struct ChannelStats {
    dev: PaddedCounter,
    /// One counter per io_uring queue; set when the rings are registered.
    uring: OnceLock<Box<[PaddedCounter]>>,
    /// Queues registered (0: requests travel over /dev/fuse).
    uring_queues: AtomicUsize,
}

impl ChannelStats {
    #[inline]
    pub fn count_dev(&self) {
        self.dev.0.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn count_uring(&self, qid: usize) {
        if let Some(c) = self.uring.get().and_then(|q| q.get(qid)) {
            c.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prepare the counters of `queues` io_uring queues (before they serve).
    pub fn prepare_uring(&self, queues: usize) {
        let _ = self.uring.set((0..queues).map(|_| PaddedCounter::default()).collect());
    }

    /// Every queue has registered: the kernel now sends requests through the rings.
    pub fn set_uring_active(&self, queues: usize) {
        self.uring_queues.store(queues, Ordering::Relaxed);
    }

    pub fn uring_queues(&self) -> usize {
        self.uring_queues.load(Ordering::Relaxed)
    }

    pub fn dev_requests(&self) -> u64 {
        self.dev.0.load(Ordering::Relaxed)
    }

    pub fn uring_requests(&self) -> u64 {
        self.uring.get().map_or(0, |q| q.iter().map(|c| c.0.load(Ordering::Relaxed)).sum())
    }

    /// The `zus status` line, e.g. `fuse_channel=io_uring queues=2 requests_uring=10 requests_dev=3`.
    pub fn report(&self) -> String {
        let queues = self.uring_queues();
        let channel = if queues > 0 { format!("io_uring queues={queues}") } else { "/dev/fuse".to_string() };
        format!(
            "fuse_channel={channel} requests_uring={} requests_dev={}\n",
            self.uring_requests(),
            self.dev_requests()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices() {
        assert_eq!(ChannelChoice::parse("auto"), Some(ChannelChoice::Auto));
        assert_eq!(ChannelChoice::parse("uring"), Some(ChannelChoice::Uring));
        assert_eq!(ChannelChoice::parse("dev"), Some(ChannelChoice::Dev));
        assert_eq!(ChannelChoice::parse("fast"), None);
        assert_eq!(ChannelChoice::default(), ChannelChoice::Auto);
    }

    #[test]
    fn counts_and_report() {
        let s = ChannelStats::default();
        s.count_dev();
        s.count_uring(0); // Not prepared: ignored.
        assert_eq!(s.report(), "fuse_channel=/dev/fuse requests_uring=0 requests_dev=1\n");
        s.prepare_uring(2);
        s.set_uring_active(2);
        s.count_uring(1);
        s.count_uring(1);
        s.count_uring(7); // No such queue: ignored, never a panic.
        assert_eq!(s.report(), "fuse_channel=io_uring queues=2 requests_uring=2 requests_dev=1\n");
    }
}
