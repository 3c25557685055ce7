//! How many data blocks are free, kept so that CPUs allocating and freeing at the same time do
//! not write one shared counter: a shared count plus a small credit per CPU (blocks already
//! claimed from the shared count, or freed on that CPU, that only its allocations draw on). A
//! 4 KiB copy-on-write allocates a block and frees one: with one shared counter (and shared
//! placement counters) two in-process writers on two CPUs made 1.47-1.51x the writes of one,
//! with per-CPU credit 1.80-1.81x (zbench inproc, 10 s, pinned threads; the persistence
//! floor's append 1.84-2.0x).
//!
//! The rules keep the sum of the shared count and the credits equal to the free blocks not
//! claimed by an allocation in progress: an allocation takes from its CPU's credit, else from
//! the shared count (with a batch more for the credit), else it calls every credit back and
//! tries the shared count once more, so it fails only when the blocks are truly gone. The
//! reserve lives in the shared count and never leaves it for a credit: a batch is taken only
//! while the reserve stays behind, a [`Pool::Normal`](crate::alloc::Pool) allocation takes from
//! the shared count only down to the reserve, an allocation from the reserve takes just what it
//! asks, and blocks freed while the reserve is short go back there first.

use std::sync::atomic::{AtomicU64, Ordering};

/// Blocks a CPU takes from the shared count at a time; it gives back what it holds past twice
/// this. Credit strands at most 2 x 64 blocks (512 KiB) per CPU while the device has room, and
/// none once it is full.
const BATCH: u64 = 64;

/// One CPU's credit, on cache lines of its own (128 bytes: the adjacent-line prefetcher pairs
/// lines).
#[repr(align(128))]
#[derive(Default)]
struct Credit(AtomicU64);

pub struct FreeCount {
    shared: AtomicU64,
    credit: Box<[Credit]>,
    /// Blocks only allocations from the reserve may take.
    reserve: u64,
}

impl FreeCount {
    /// A count of zero with credit for `cpus` CPUs (a CPU number is taken modulo it).
    pub fn new(cpus: usize) -> FreeCount {
        FreeCount {
            shared: AtomicU64::new(0),
            credit: (0..cpus.max(1)).map(|_| Credit::default()).collect(),
            reserve: 0,
        }
    }

    /// Keep the last `blocks` free blocks for allocations from the reserve.
    pub fn set_reserve(&mut self, blocks: u64) {
        self.reserve = blocks;
    }

    /// Blocks kept for allocations from the reserve.
    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    fn credit(&self, cpu: usize) -> &AtomicU64 {
        &self.credit[cpu % self.credit.len()].0
    }

    /// `n` blocks became free (on `cpu`); while the reserve is short, they refill it.
    pub fn add(&self, cpu: usize, n: u64) {
        if self.shared.load(Ordering::Acquire) < self.reserve {
            self.shared.fetch_add(n, Ordering::AcqRel);
            return;
        }
        let cell = self.credit(cpu);
        if cell.fetch_add(n, Ordering::AcqRel) + n > 2 * BATCH {
            if let Ok(held) =
                cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| (c > BATCH).then_some(BATCH))
            {
                self.shared.fetch_add(held - BATCH, Ordering::AcqRel);
            }
        }
    }

    /// Claim `want` blocks for an allocation on `cpu` (one that `may_use_reserve`, or one that
    /// must leave the reserve); false when there are not that many.
    pub fn claim(&self, cpu: usize, want: u64, may_use_reserve: bool) -> bool {
        let floor = if may_use_reserve { 0 } else { self.reserve };
        let cell = self.credit(cpu);
        if cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(want)).is_ok() {
            return true;
        }
        if self.take_shared(want + BATCH, self.reserve) {
            cell.fetch_add(BATCH, Ordering::AcqRel);
            return true;
        }
        if self.take_shared(want, floor) {
            return true;
        }
        // Near the limit: what other CPUs hold counts too.
        for c in self.credit.iter() {
            let held = c.0.swap(0, Ordering::AcqRel);
            self.shared.fetch_add(held, Ordering::AcqRel);
        }
        self.take_shared(want, floor)
    }

    fn take_shared(&self, n: u64, floor: u64) -> bool {
        self.shared
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| s.checked_sub(n).filter(|l| *l >= floor))
            .is_ok()
    }

    /// Blocks free now (exact when nothing allocates or frees meanwhile).
    pub fn total(&self) -> u64 {
        self.shared.load(Ordering::Acquire)
            + self.credit.iter().map(|c| c.0.load(Ordering::Acquire)).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_on_one_cpu_is_called_back_for_another_near_the_limit() {
        let f = FreeCount::new(4);
        f.add(0, 100); // all of it credit on CPU 0
        assert_eq!(f.total(), 100);
        assert!(f.claim(3, 100, false), "CPU 3 gets what CPU 0 holds");
        assert_eq!(f.total(), 0);
        assert!(!f.claim(1, 1, false));
        f.add(2, 1);
        assert!(f.claim(1, 1, false));
        assert!(!f.claim(1, 1, false));
    }

    #[test]
    fn a_big_free_goes_to_the_shared_count_and_the_reserve_holds_there() {
        let mut f = FreeCount::new(2);
        f.set_reserve(900);
        f.add(0, 1000);
        assert_eq!(f.total(), 1000);
        // Normal allocations leave the reserve of 900, credit called back to reach it.
        let mut got = 0;
        while f.claim(got as usize % 2, 1, false) {
            got += 1;
        }
        assert_eq!(got, 100, "claimed above a reserve of 900 of 1000");
        // Allocations from the reserve take the rest, one block at a time: none of it may turn
        // into credit that a Normal allocation could then take.
        let rest = f.total();
        for i in 0..rest {
            assert!(f.claim(i as usize, 1, true));
            assert!(!f.claim(i as usize, 1, false), "a Normal allocation took a reserve block");
        }
        assert_eq!(f.total(), 0);
        assert!(!f.claim(0, 1, true));
        // Blocks freed while the reserve is short refill it: Normal allocations cannot have them.
        f.add(1, 50);
        assert!(!f.claim(1, 1, false));
        assert!(f.claim(1, 50, true));
    }

    #[test]
    fn threads_claiming_and_freeing_never_create_or_lose_blocks() {
        let f = FreeCount::new(3);
        f.add(0, 500);
        let claimed = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..4usize {
                let (f, claimed) = (&f, &claimed);
                s.spawn(move || {
                    let mut held = 0u64;
                    for i in 0..20_000u64 {
                        let n = 1 + (i * 7 + t as u64) % 5;
                        if i % 3 != 2 && f.claim(t + i as usize, n, false) {
                            held += n;
                        } else if held >= n {
                            f.add(t * 5 + i as usize, n);
                            held -= n;
                        }
                    }
                    claimed.fetch_add(held, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(f.total() + claimed.load(Ordering::Relaxed), 500);
    }
}
