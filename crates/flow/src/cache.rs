//! [`FlowCache`]: one datapath thread's caches chained — exact-match
//! cache, then megaflow cache — with the EMC filled by its policy from
//! megaflow hits.
//!
//! When the EMC does not earn its keep (a million flows in uniform churn:
//! almost every lookup misses, and the frequency policy admits almost
//! nothing), its lookups are pure cost. The batch path then *bypasses* it:
//! the hit rate is measured over windows of [`WINDOW`] EMC lookups, and
//! after a window below [`MIN_HIT_PER_MILLE`] the batches go straight to
//! the megaflow cache, except one in [`SAMPLE_EVERY`], which still runs the
//! whole EMC path (lookup and offer) so that flows that start to recur are
//! still admitted and the hit rate is still measured. A sampled window above
//! the threshold ends the bypass. Results never change, only cost: the
//! megaflow cache answers every lookup the EMC would have.

use crate::emc::{Emc, InsertPolicy};
use crate::key::FlowKey;
use crate::megaflow::{BATCH, FlowId, MegaflowCache};

/// EMC lookups per hit-rate window.
pub const WINDOW: u32 = 4096;
/// The hit rate, in thousandths, below which a window turns the bypass on
/// (and at or above which a sampled window turns it off): 5 %.
pub const MIN_HIT_PER_MILLE: u32 = 50;
/// While bypassing, one batch in this many runs the EMC path anyway.
pub const SAMPLE_EVERY: u32 = 16;

/// The per-thread cache set (see the module docs).
pub struct FlowCache {
    /// The exact-match cache.
    pub emc: Emc,
    /// The megaflow cache.
    pub megaflows: MegaflowCache,
    /// EMC lookups and hits of the current window (batch path only).
    window_lookups: u32,
    window_hits: u32,
    /// Skipping the EMC (see the module docs).
    bypass: bool,
    /// Batches since the last sampled one, while bypassing.
    since_sample: u32,
}

impl FlowCache {
    /// An EMC of `emc_entries` with `policy` in front of a megaflow cache
    /// holding at most `flow_limit` entries.
    pub fn new(emc_entries: usize, policy: InsertPolicy, flow_limit: usize, seed: u64) -> FlowCache {
        FlowCache {
            emc: Emc::new(emc_entries, policy, seed),
            megaflows: MegaflowCache::new(flow_limit),
            window_lookups: 0,
            window_hits: 0,
            bypass: false,
            since_sample: 0,
        }
    }

    /// True while batches skip the EMC (see the module docs).
    pub fn bypassing(&self) -> bool {
        self.bypass
    }

    /// The megaflow for `key`: EMC first, then the megaflow cache (offering
    /// a hit there to the EMC). `None` means an upcall. The EMC hit path
    /// is inlined into the caller; the megaflow path is not.
    #[inline(always)]
    pub fn lookup(&mut self, key: &FlowKey) -> Option<FlowId> {
        let h = key.hash();
        if let Some(id) = self.emc.lookup(key, h)
            && self.megaflows.contains(id)
        {
            return Some(id);
        }
        self.lookup_megaflow(key, h)
    }

    /// The EMC missed: the megaflow cache, then the offer. Out of line so
    /// that the hit path above stays small enough to inline.
    #[inline(never)]
    fn lookup_megaflow(&mut self, key: &FlowKey, h: u64) -> Option<FlowId> {
        let id = self.megaflows.lookup(key)?;
        self.emc.offer(key, h, id);
        Some(id)
    }

    /// [`lookup`](Self::lookup) for a batch of at most [`BATCH`] keys: EMC
    /// for all, then one staged megaflow lookup for the misses (in place:
    /// the missed keys are named by a bit mask, not copied). While the EMC
    /// is bypassed (see the module docs), most batches go to the megaflow
    /// cache directly, with the same results.
    pub fn lookup_batch(&mut self, keys: &[FlowKey], out: &mut [Option<FlowId>]) {
        let n = keys.len().min(out.len()).min(BATCH);
        let (keys, out) = (&keys[..n], &mut out[..n]);
        if self.bypass {
            self.since_sample += 1;
            if self.since_sample < SAMPLE_EVERY {
                self.emc.count_bypassed();
                out.fill(None);
                self.megaflows.lookup_pending(keys, low_bits(n), out);
                return;
            }
            self.since_sample = 0;
        }
        // One pass: hash, probe, check the megaflow is alive. A miss bit per
        // key instead of filtering `Option`s, and the counters added once.
        let mut misses = 0u64;
        let mut hits = 0u32;
        for (i, (k, o)) in keys.iter().zip(out.iter_mut()).enumerate() {
            *o = match self.emc.find(k, k.hash()) {
                Some(id) if self.megaflows.contains(id) => {
                    hits += 1;
                    Some(id)
                }
                _ => {
                    misses |= 1 << i;
                    None
                }
            };
        }
        let n = n as u32;
        self.emc.count(u64::from(hits), u64::from(n - hits));
        self.window_lookups += n;
        self.window_hits += hits;
        if self.window_lookups >= WINDOW {
            self.end_window();
        }
        if misses == 0 {
            return;
        }
        self.megaflows.lookup_pending(keys, misses, out);
        let mut m = misses;
        while m != 0 {
            let i = m.trailing_zeros() as usize % BATCH;
            m &= m - 1;
            if let (Some(k), Some(Some(id))) = (keys.get(i), out.get(i)) {
                // Recomputed rather than kept from the probe loop (measured:
                // keeping an array of hashes costs the hit path more than a
                // second hash costs a miss, which goes on to the megaflow
                // cache anyway).
                self.emc.offer(k, k.hash(), *id);
            }
        }
    }

    /// A window of EMC lookups is complete: bypass the EMC from now on if
    /// it hit too rarely, stop bypassing if it hit often enough.
    #[cold]
    fn end_window(&mut self) {
        self.bypass =
            u64::from(self.window_hits) * 1000 < u64::from(self.window_lookups) * u64::from(MIN_HIT_PER_MILLE);
        self.window_lookups = 0;
        self.window_hits = 0;
        self.since_sample = 0;
    }
}

/// The bit mask of the first `n` (at most 64) keys.
#[inline(always)]
fn low_bits(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Field;
    use crate::{Actions, Mask};

    #[test]
    fn emc_entries_follow_megaflow_replacement_and_batch_agrees() {
        let mut c = FlowCache::new(64, InsertPolicy::Always, 100, 1);
        let k = FlowKey::ZERO.with(Field::InPort, 1).with(Field::TpDst, 80);
        let mask = Mask::of(&[Field::InPort]);
        assert_eq!(c.lookup(&k), None);
        let a = c.megaflows.install(&k, &mask, Actions::output(1), 0).unwrap();
        assert_eq!(c.lookup(&k), Some(a));
        assert_eq!(c.emc.stats().inserts, 1);
        assert_eq!(c.lookup(&k), Some(a));
        assert_eq!(c.emc.stats().hits, 1);
        assert!(c.megaflows.remove(a));
        assert_eq!(c.lookup(&k), None, "a stale EMC entry must not resurrect a removed megaflow");
        let b = c.megaflows.install(&k, &mask, Actions::output(2), 0).unwrap();
        assert_eq!(c.lookup(&k), Some(b));
        assert_eq!(c.lookup(&k), Some(b));
        let keys: Vec<FlowKey> = (0..32u32).map(|i| k.with(Field::InPort, u128::from(i % 3))).collect();
        let mut out = [None; BATCH];
        c.lookup_batch(&keys, &mut out);
        for (k, o) in keys.iter().zip(out) {
            assert_eq!(o, c.lookup(k));
            assert_eq!(o.is_some(), k.in_port() == 1);
        }
        c.megaflows.clear();
        assert_eq!(c.lookup(&k), None);
    }

    #[test]
    fn bypass_under_churn_keeps_answers_and_ends_when_flows_recur() {
        // 100 000 microflows over 64 megaflows (one per input port).
        let mut c = FlowCache::new(8192, InsertPolicy::default(), 1000, 1);
        let mask = Mask::of(&[Field::InPort]);
        let key = |i: u32| {
            FlowKey::ZERO
                .with(Field::InPort, u128::from(i % 64))
                .with(Field::Ipv4Src, u128::from(i))
                .with(Field::TpSrc, 7)
        };
        let ids: Vec<FlowId> =
            (0..64).map(|p| c.megaflows.install(&key(p), &mask, Actions::output(1), 0).unwrap()).collect();
        let mut out = [None; BATCH];
        let mut x = 1u32;
        for _ in 0..2000 {
            let keys: Vec<FlowKey> = (0..BATCH)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    key((x >> 8) % 100_000)
                })
                .collect();
            c.lookup_batch(&keys, &mut out);
            for (k, o) in keys.iter().zip(&out) {
                assert_eq!(*o, Some(ids[k.in_port() as usize]));
            }
        }
        assert!(c.bypassing(), "uniform churn must turn the bypass on");
        let s = c.emc.stats();
        assert!(s.bypassed > 1500, "bypassed {} of 2000 batches", s.bypassed);

        // Four flows recur: the sampled batches admit them, a sampled
        // window sees them hit, and the bypass ends.
        let keys: Vec<FlowKey> = (0..BATCH as u32).map(|j| key(200_000 + j % 4)).collect();
        for _ in 0..4000 {
            c.lookup_batch(&keys, &mut out);
            for (k, o) in keys.iter().zip(&out) {
                assert_eq!(*o, Some(ids[k.in_port() as usize]));
            }
        }
        assert!(!c.bypassing(), "recurring flows must end the bypass");
        let (before, bypassed) = (c.emc.stats().hits, c.emc.stats().bypassed);
        c.lookup_batch(&keys, &mut out);
        assert_eq!(c.emc.stats().hits, before + BATCH as u64);
        assert_eq!(c.emc.stats().bypassed, bypassed);
    }
}
