//! From a recorded event stream, the images a crash could leave. At every fence (just before
//! it takes effect) the durable image is the base plus every store made durable by an earlier
//! flush + fence or non-temporal store + fence; each store still in flight may or may not have
//! reached PM (a line can be evicted at any time). We enumerate: none of them, all of them,
//! each alone, and each pair (bounded by `k`). Ordinary stores are split into aligned 8-byte
//! units, so a larger metadata write can also tear.

use pmfs::persist::{PmEvent, CACHE_LINE};

/// Where in the workload a crash point lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// After `done` operations completed, none in flight.
    Between { done: usize },
    /// While operation `index` (0-based) was in flight.
    During { index: usize },
}

/// A store not yet known durable.
#[derive(Debug, Clone)]
struct Unit {
    off: u64,
    data: Vec<u8>,
    /// Flushed (or non-temporal): the next fence makes it durable.
    flushed: bool,
}

/// One image a crash could leave.
pub struct CrashImage<'a> {
    pub phase: Phase,
    /// Index of the fence this crash precedes.
    pub fence: usize,
    pub durable: &'a [u8],
    /// In-flight stores that did reach PM, to apply over `durable` in order.
    pub extra: Vec<(u64, &'a [u8])>,
    pub label: String,
}

impl CrashImage<'_> {
    pub fn build(&self) -> Vec<u8> {
        let mut img = self.durable.to_vec();
        for (off, data) in &self.extra {
            img[*off as usize..*off as usize + data.len()].copy_from_slice(data);
        }
        img
    }
}

fn units_of(off: u64, data: &[u8], out: &mut Vec<Unit>, flushed: bool, split: bool) {
    if !split || data.len() <= 8 {
        out.push(Unit { off, data: data.to_vec(), flushed });
        return;
    }
    let mut pos = 0usize;
    while pos < data.len() {
        let at = off + pos as u64;
        let n = ((8 - at % 8) as usize).min(data.len() - pos);
        out.push(Unit { off: at, data: data[pos..pos + n].to_vec(), flushed });
        pos += n;
    }
}

/// Walk the events; call `visit` for every crash image (bounded by `k` in-flight stores).
/// Marks are `2*i` (operation i begins) and `2*i+1` (it ended).
pub fn enumerate(base: &[u8], events: &[PmEvent], k: usize, mut visit: impl FnMut(&CrashImage)) -> usize {
    let mut durable = base.to_vec();
    let mut pending: Vec<Unit> = Vec::new();
    let mut phase = Phase::Between { done: 0 };
    let mut fence = 0usize;
    let mut images = 0usize;
    let crash =
        |durable: &[u8], pending: &[Unit], phase: Phase, fence: usize, visit: &mut dyn FnMut(&CrashImage)| {
            let mut n = 0;
            let mut emit = |extra: Vec<(u64, &[u8])>, label: String| {
                visit(&CrashImage { phase, fence, durable, extra, label });
                n += 1;
            };
            emit(Vec::new(), "none in flight".into());
            if pending.is_empty() {
                return n;
            }
            emit(pending.iter().map(|u| (u.off, u.data.as_slice())).collect(), "all in flight".into());
            if k >= 1 && pending.len() > 1 {
                for (i, u) in pending.iter().enumerate() {
                    emit(vec![(u.off, u.data.as_slice())], format!("only store {i}"));
                }
            }
            if k >= 2 && pending.len() > 2 && pending.len() <= 24 {
                for i in 0..pending.len() {
                    for j in i + 1..pending.len() {
                        let (a, b) = (&pending[i], &pending[j]);
                        emit(
                            vec![(a.off, a.data.as_slice()), (b.off, b.data.as_slice())],
                            format!("stores {i},{j}"),
                        );
                    }
                }
            }
            n
        };
    for ev in events {
        match ev {
            PmEvent::Store { off, data } => units_of(*off, data, &mut pending, false, data.len() <= 256),
            // Log entries and headers are non-temporal stores too: as metadata, they tear.
            PmEvent::NtStore { off, data } => units_of(*off, data, &mut pending, true, data.len() <= 256),
            PmEvent::Flush { off, len } => {
                let lo = off & !(CACHE_LINE - 1);
                let hi = (off + len).div_ceil(CACHE_LINE) * CACHE_LINE;
                for u in pending.iter_mut() {
                    if u.off < hi && u.off + u.data.len() as u64 > lo {
                        u.flushed = true;
                    }
                }
            }
            PmEvent::Fence => {
                images += crash(&durable, &pending, phase, fence, &mut visit);
                fence += 1;
                let mut still = Vec::new();
                for u in pending.drain(..) {
                    if u.flushed {
                        durable[u.off as usize..u.off as usize + u.data.len()].copy_from_slice(&u.data);
                    } else {
                        still.push(u);
                    }
                }
                pending = still;
            }
            PmEvent::Mark(m) => {
                phase = if m % 2 == 0 {
                    Phase::During { index: (*m / 2) as usize }
                } else {
                    Phase::Between { done: (*m / 2) as usize + 1 }
                };
            }
        }
    }
    images += crash(&durable, &pending, phase, fence, &mut visit);
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unflushed_stores_stay_in_flight_and_flushed_ones_land_at_the_fence() {
        let base = vec![0u8; 256];
        let events = vec![
            PmEvent::Store { off: 0, data: vec![1; 8] },
            PmEvent::Store { off: 128, data: vec![2; 8] },
            PmEvent::Flush { off: 0, len: 8 },
            PmEvent::Fence,
            PmEvent::Fence,
        ];
        let mut seen = Vec::new();
        enumerate(&base, &events, 1, |c| seen.push((c.fence, c.build()[0], c.build()[128], c.label.clone())));
        // Before fence 0 both stores may or may not be there.
        assert!(seen.iter().any(|s| s.0 == 0 && s.1 == 0 && s.2 == 0));
        assert!(seen.iter().any(|s| s.0 == 0 && s.1 == 1 && s.2 == 2));
        // After it, the flushed store is durable; the unflushed one is still optional.
        assert!(seen.iter().filter(|s| s.0 == 1).all(|s| s.1 == 1));
        assert!(seen.iter().any(|s| s.0 == 1 && s.2 == 0));
        assert!(seen.iter().any(|s| s.0 == 1 && s.2 == 2));
    }

    #[test]
    fn larger_stores_can_tear_at_eight_bytes() {
        let events = vec![PmEvent::Store { off: 0, data: vec![7; 16] }, PmEvent::Fence];
        let mut torn = false;
        enumerate(&[0u8; 64], &events, 1, |c| {
            let img = c.build();
            torn |= img[0] == 7 && img[8] == 0;
        });
        assert!(torn);
    }
}
