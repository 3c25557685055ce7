//! The inode cache: every inode loaded into DRAM, found by its number.
//!
//! Inode numbers are dense (each CPU's inode table hands out slots from the bottom), so the
//! cache is an array by number rather than a hash map: a cached inode costs one 8-byte slot,
//! where a hash map entry (key, pointer, control byte, spare capacity) cost 20-38 bytes
//! (`make bench` measures DRAM per inode). The array is split into shards by number, each
//! behind its own lock, and each shard into chunks allocated when a number in them is first
//! cached and freed when their last inode leaves.

use parking_lot::{Mutex, MutexGuard};

use crate::fs::InodeRef;
use crate::vfs::Ino;

/// Shards, each with its own lock: neighbouring numbers fall in different shards, so threads
/// creating inodes side by side do not wait on one lock.
const SHARDS: u64 = 64;
/// Slots per chunk: 4 KiB of pointers.
const CHUNK: usize = 512;

struct Chunk {
    slots: [Option<InodeRef>; CHUNK],
    used: usize,
}

/// One shard: the inodes whose number is `shard` modulo [`SHARDS`], at index number / SHARDS.
#[derive(Default)]
pub(crate) struct Shard {
    chunks: Vec<Option<Box<Chunk>>>,
}

fn position(ino: Ino) -> (usize, usize) {
    let index = (ino / SHARDS) as usize;
    (index / CHUNK, index % CHUNK)
}

impl Shard {
    pub(crate) fn get(&self, ino: Ino) -> Option<&InodeRef> {
        let (c, s) = position(ino);
        self.chunks.get(c)?.as_ref()?.slots[s].as_ref()
    }

    /// Cache `r` as `ino`; returns what was cached there before.
    pub(crate) fn insert(&mut self, ino: Ino, r: InodeRef) -> Option<InodeRef> {
        let (c, s) = position(ino);
        if self.chunks.len() <= c {
            self.chunks.resize_with(c + 1, || None);
        }
        let chunk = self.chunks[c]
            .get_or_insert_with(|| Box::new(Chunk { slots: std::array::from_fn(|_| None), used: 0 }));
        let old = chunk.slots[s].replace(r);
        if old.is_none() {
            chunk.used += 1;
        }
        old
    }

    pub(crate) fn remove(&mut self, ino: Ino) -> Option<InodeRef> {
        let (c, s) = position(ino);
        let chunk = self.chunks.get_mut(c)?.as_mut()?;
        let old = chunk.slots[s].take()?;
        chunk.used -= 1;
        if chunk.used == 0 {
            self.chunks[c] = None;
            while matches!(self.chunks.last(), Some(None)) {
                self.chunks.pop();
            }
        }
        Some(old)
    }

    fn values(&self) -> impl Iterator<Item = &InodeRef> {
        self.chunks.iter().flatten().flat_map(|c| c.slots.iter().flatten())
    }
}

/// A shard's lock on cache lines of its own (128 bytes: the adjacent-line prefetcher pairs
/// lines), so threads working on inodes of different shards do not share a line.
#[repr(align(128))]
#[derive(Default)]
struct LockedShard(Mutex<Shard>);

pub(crate) struct InodeCache {
    shards: Vec<LockedShard>,
}

impl InodeCache {
    pub(crate) fn new() -> InodeCache {
        InodeCache { shards: (0..SHARDS).map(|_| LockedShard::default()).collect() }
    }

    /// The locked shard that holds `ino`.
    pub(crate) fn shard(&self, ino: Ino) -> MutexGuard<'_, Shard> {
        self.shards[(ino % SHARDS) as usize].0.lock()
    }

    /// Every cached inode.
    pub(crate) fn all(&self) -> Vec<InodeRef> {
        self.shards.iter().flat_map(|s| s.0.lock().values().cloned().collect::<Vec<_>>()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::RwLock;

    use super::*;
    use crate::inode::InodeState;
    use crate::layout::InodeCreation;

    fn inode(ino: Ino) -> InodeRef {
        let c = InodeCreation {
            generation: 1,
            mode: libc::S_IFREG | 0o644,
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            parent: 1,
            time: Default::default(),
        };
        Arc::new(RwLock::new(InodeState::new(ino, 4096, &c).unwrap()))
    }

    #[test]
    fn insert_get_remove_across_chunks_and_shards() {
        let cache = InodeCache::new();
        let numbers = [1u64, 2, 63, 64, 65, 64 * 512 - 1, 64 * 512, 64 * 512 * 7 + 5, 1 << 33];
        for &n in &numbers {
            assert!(cache.shard(n).insert(n, inode(n)).is_none());
        }
        for &n in &numbers {
            assert_eq!(cache.shard(n).get(n).unwrap().read().ino, n);
        }
        assert!(cache.shard(3).get(3).is_none());
        assert!(cache.shard(1 << 40).get(1 << 40).is_none());
        assert_eq!(cache.all().len(), numbers.len());
        // Replacing returns the old one and keeps the count.
        assert_eq!(cache.shard(64).insert(64, inode(64)).unwrap().read().ino, 64);
        for &n in &numbers {
            assert_eq!(cache.shard(n).remove(n).unwrap().read().ino, n);
            assert!(cache.shard(n).get(n).is_none());
            assert!(cache.shard(n).remove(n).is_none());
        }
        assert!(cache.all().is_empty());
        // Emptied chunks are freed.
        assert!(cache.shards.iter().all(|s| s.0.lock().chunks.is_empty()));
    }
}
