//! One FUSE worker thread per CPU, each pinned to its CPU.
//!
//! fuser spawns its workers itself (`Session::run`, threads named `fuser-0`, `fuser-1`, ...)
//! and offers no hook at thread start, so a worker pins itself when it handles its first
//! request: worker `i` takes the `i`-th CPU the process may run on. A worker that never gets a
//! request stays unpinned, which costs nothing since it only sleeps in read(2) on /dev/fuse.

use std::cell::Cell;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The CPUs this process may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect(),
        Err(_) => Vec::new(),
    }
}

/// How many worker threads to run: `configured`, or one per allowed CPU when 0.
pub fn worker_count(configured: usize, cpus: &[usize]) -> usize {
    if configured > 0 {
        configured
    } else {
        cpus.len().max(1)
    }
}

/// Pin the calling thread to `cpu` (the ZUF transport's per-CPU threads).
pub fn pin_to(cpu: usize) {
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        if let Err(e) = sched_setaffinity(Pid::from_raw(0), &set) {
            log::warn!("cannot pin thread to CPU {cpu}: {e}");
        }
    }
}

thread_local! {
    static PINNED: Cell<bool> = const { Cell::new(false) };
}

/// Pins the calling fuser worker to its CPU, once per thread.
#[derive(Debug, Clone)]
pub struct Pinner {
    cpus: Vec<usize>,
}

impl Pinner {
    pub fn new(cpus: Vec<usize>) -> Pinner {
        Pinner { cpus }
    }

    /// Cheap after the first call on a thread (one thread-local read).
    #[inline]
    pub fn pin_current(&self) {
        if PINNED.with(Cell::get) {
            return;
        }
        PINNED.with(|p| p.set(true));
        let Some(index) = worker_index(std::thread::current().name()) else {
            return;
        };
        if self.cpus.is_empty() {
            return;
        }
        let cpu = self.cpus[index % self.cpus.len()];
        let mut set = CpuSet::new();
        if set.set(cpu).is_ok() {
            if let Err(e) = sched_setaffinity(Pid::from_raw(0), &set) {
                log::warn!("cannot pin FUSE worker {index} to CPU {cpu}: {e}");
            } else {
                log::debug!("FUSE worker {index} pinned to CPU {cpu}");
            }
        }
    }
}

/// The index of a fuser worker from its thread name (`fuser-3` -> 3).
fn worker_index(name: Option<&str>) -> Option<usize> {
    name?.strip_prefix("fuser-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_names() {
        assert_eq!(worker_index(Some("fuser-0")), Some(0));
        assert_eq!(worker_index(Some("fuser-12")), Some(12));
        assert_eq!(worker_index(Some("fuser-bg")), None);
        assert_eq!(worker_index(Some("main")), None);
        assert_eq!(worker_index(None), None);
    }

    #[test]
    fn counts() {
        assert_eq!(worker_count(0, &[0, 1, 2]), 3);
        assert_eq!(worker_count(5, &[0, 1, 2]), 5);
        assert_eq!(worker_count(0, &[]), 1);
        assert!(!allowed_cpus().is_empty());
    }
}
