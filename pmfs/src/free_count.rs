//! How many data blocks are free, kept so that CPUs allocating and freeing at the same time do
//! not write one shared counter: a shared count plus a small credit per CPU (blocks already
//! claimed from the shared count, or freed on that CPU, that only its allocations draw on). A
//! 4 KiB copy-on-write allocates a block and frees one: with one shared counter (and shared
//! placement counters) two in-process writers on two CPUs made 1.57x the writes of one, with
//! per-CPU credit 1.67-1.72x (with no count at all 1.82x; the persistence floor's append 1.9x).
//!
//! The rules keep the sum of the shared count and the credits equal to the free blocks not
//! claimed by an allocation in progress: an allocation takes from its CPU's credit, else from
//! the shared count (with a batch more for the credit), else it calls every credit back and
//! tries the shared count once more, so it fails only when the blocks are truly gone. The
//! reserve lives in the shared count: a [`Pool::Normal`](crate::alloc::Pool) allocation takes
//! from there only while the reserve stays, and blocks freed while it is short go back there
//! first.

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
}

impl FreeCount {
    /// A count of zero with credit for `cpus` CPUs (a CPU number is taken modulo it).
    pub fn new(cpus: usize) -> FreeCount {
        FreeCount { shared: AtomicU64::new(0), credit: (0..cpus.max(1)).map(|_| Credit::default()).collect() }
    }

    fn credit(&self, cpu: usize) -> &AtomicU64 {
        &self.credit[cpu % self.credit.len()].0
    }

    /// `n` blocks became free (on `cpu`); while the shared count is below `floor` (the
    /// reserve), they refill it.
    pub fn add(&self, cpu: usize, n: u64, floor: u64) {
        if self.shared.load(Ordering::Acquire) < floor {
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

    /// Claim `want` blocks for an allocation on `cpu`, leaving at least `floor` in the shared
    /// count when it takes from there; false when there are not that many.
    pub fn claim(&self, cpu: usize, want: u64, floor: u64) -> bool {
        let cell = self.credit(cpu);
        if cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(want)).is_ok() {
            return true;
        }
        if self.take_shared(want + BATCH, floor) {
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
        f.add(0, 100, 0); // all of it credit on CPU 0
        assert_eq!(f.total(), 100);
        assert!(f.claim(3, 100, 0), "CPU 3 gets what CPU 0 holds");
        assert_eq!(f.total(), 0);
        assert!(!f.claim(1, 1, 0));
        f.add(2, 1, 0);
        assert!(f.claim(1, 1, 0));
        assert!(!f.claim(1, 1, 0));
    }

    #[test]
    fn a_big_free_goes_to_the_shared_count_and_the_floor_holds_there() {
        let f = FreeCount::new(2);
        f.add(0, 1000, 0);
        assert_eq!(f.total(), 1000);
        // Normal allocations leave the floor of 900, credit called back to get close to it.
        let mut got = 0;
        while f.claim(1, 7, 900) {
            got += 7;
        }
        assert!(got <= 100 && got > 100 - 7, "{got} claimed above a floor of 900 of 1000");
        // An allocation from the reserve (floor 0) takes the rest.
        let rest = f.total();
        assert!(f.claim(0, rest, 0));
        assert_eq!(f.total(), 0);
        // Blocks freed while the reserve is short refill it: Normal allocations cannot have them.
        f.add(1, 50, 900);
        assert!(!f.claim(1, 1, 900));
        assert!(f.claim(1, 50, 0));
    }

    #[test]
    fn threads_claiming_and_freeing_never_create_or_lose_blocks() {
        let f = FreeCount::new(3);
        f.add(0, 500, 0);
        let claimed = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..4usize {
                let (f, claimed) = (&f, &claimed);
                s.spawn(move || {
                    let mut held = 0u64;
                    for i in 0..20_000u64 {
                        let n = 1 + (i * 7 + t as u64) % 5;
                        if i % 3 != 2 && f.claim(t + i as usize, n, 0) {
                            held += n;
                        } else if held >= n {
                            f.add(t * 5 + i as usize, n, 0);
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
