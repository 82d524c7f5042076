//! [`FlowCache`]: one datapath thread's caches chained — exact-match
//! cache, then megaflow cache — with the EMC filled by its policy from
//! megaflow hits.

use crate::emc::{Emc, InsertPolicy};
use crate::key::FlowKey;
use crate::megaflow::{BATCH, FlowId, MegaflowCache};

/// The per-thread cache set (see the module docs).
pub struct FlowCache {
    /// The exact-match cache.
    pub emc: Emc,
    /// The megaflow cache.
    pub megaflows: MegaflowCache,
}

impl FlowCache {
    /// An EMC of `emc_entries` with `policy` in front of a megaflow cache
    /// holding at most `flow_limit` entries.
    pub fn new(emc_entries: usize, policy: InsertPolicy, flow_limit: usize, seed: u64) -> FlowCache {
        FlowCache { emc: Emc::new(emc_entries, policy, seed), megaflows: MegaflowCache::new(flow_limit) }
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
    /// the missed keys are named by a bit mask, not copied).
    pub fn lookup_batch(&mut self, keys: &[FlowKey], out: &mut [Option<FlowId>]) {
        let n = keys.len().min(out.len()).min(BATCH);
        let mut hashes = [0u64; BATCH];
        for i in 0..n {
            hashes[i] = keys[i].hash();
        }
        let mut misses = 0u64;
        for i in 0..n {
            out[i] = self.emc.lookup(&keys[i], hashes[i]).filter(|&id| self.megaflows.contains(id));
            if out[i].is_none() {
                misses |= 1 << i;
            }
        }
        if misses == 0 {
            return;
        }
        self.megaflows.lookup_pending(keys, misses, out);
        let mut m = misses;
        while m != 0 {
            let i = m.trailing_zeros() as usize % BATCH;
            m &= m - 1;
            if let Some(id) = out[i] {
                self.emc.offer(&keys[i], hashes[i], id);
            }
        }
    }
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
}
