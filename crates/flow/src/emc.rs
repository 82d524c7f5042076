//! The exact-match cache (EMC): a fixed-size, 4-way set-associative table
//! from a full flow key to a megaflow, in front of the megaflow cache.
//!
//! A set is chosen by the low bits of the key's hash; a way holds a 32-bit
//! tag (the high bits, never 0) and, apart, the full key, so a miss reads
//! one small tag array and a hit compares one key.
//!
//! The insertion policy decides how a million-flow churn is handled. OVS
//! inserts with probability 1/100 (`emc-insert-inv-prob`), which keeps the
//! cost of insertions low but lets the mice of a churn evict elephants as
//! readily as elephants get in. [`InsertPolicy::Frequency`] admits a key
//! only once a small count-min sketch (4 counters per EMC entry, halved
//! every `entries` offers) has seen it a few times on the miss path, and only over a
//! way whose own hits are fewer; a way that blocks an admission has its hit
//! count halved, so dead entries age out. Under uniform churn almost nothing
//! is admitted (no thrash, no insertion cost); the flows that recur get in
//! and stay.

use crate::key::FlowKey;
use crate::megaflow::FlowId;

/// Ways per set.
pub const WAYS: usize = 4;
/// The default number of entries (OVS: 8192).
pub const DEFAULT_ENTRIES: usize = 8192;

/// When a missed key is inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertPolicy {
    /// Never (the EMC is off).
    Never,
    /// On every miss.
    Always,
    /// With probability `1/inv` (OVS's policy; its default is 100).
    Probabilistic {
        /// The inverse probability.
        inv: u32,
    },
    /// Frequency-gated admission (this crate's default; see the module docs).
    Frequency {
        /// Sightings on the miss path before a key may be admitted.
        threshold: u8,
    },
}

impl Default for InsertPolicy {
    fn default() -> Self {
        InsertPolicy::Frequency { threshold: 3 }
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmcStats {
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that missed.
    pub misses: u64,
    /// Keys inserted.
    pub inserts: u64,
    /// Inserts that replaced a live entry.
    pub evictions: u64,
    /// Batches that skipped the cache, lookup and offer, because its hit
    /// rate was too low to pay for them ([`crate::FlowCache::lookup_batch`]).
    pub bypassed: u64,
}

#[derive(Clone, Copy, Default)]
struct SetMeta {
    tags: [u32; WAYS],
    hits: [u8; WAYS],
}

/// A key the cache can hold: a flow key, or a frame key
/// ([`crate::frame::FrameKey`]) for frames of the common shape.
pub trait ExactKey: Copy + PartialEq {
    /// A key that fills empty ways.
    const ZERO: Self;
    /// Equality, as the cache's hit path wants it compiled (branch-free).
    fn same(&self, other: &Self) -> bool;
}

impl ExactKey for FlowKey {
    const ZERO: FlowKey = FlowKey::ZERO;

    #[inline(always)]
    fn same(&self, other: &FlowKey) -> bool {
        same_key(self, other)
    }
}

/// One way: a key and its megaflow. A way is empty when its tag is 0 (its
/// contents are then never read).
#[derive(Clone, Copy)]
struct Entry<K> {
    key: K,
    flow: FlowId,
}

/// The ways of one set, starting on a cache line (a frame key's way is one
/// line; a flow key's set is ten).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Ways<K>([Entry<K>; WAYS]);

impl<K: ExactKey> Ways<K> {
    const EMPTY: Ways<K> = Ways([Entry { key: K::ZERO, flow: FlowId::DANGLING }; WAYS]);
}

/// The exact-match cache (see the module docs), keyed by flow keys unless
/// told otherwise.
pub struct Emc<K = FlowKey> {
    meta: Box<[SetMeta]>,
    /// One array of ways per set, so that a way index below [`WAYS`] needs
    /// no bounds check.
    entries: Box<[Ways<K>]>,
    set_mask: usize,
    policy: InsertPolicy,
    sketch: Box<[u8]>,
    sketch_ops: usize,
    rng: u64,
    stats: EmcStats,
}

/// The full-key compare of a hit: all 18 words XORed and ORed without a
/// branch, inlined into the lookup (a call cost more than the compare
/// saves). The OR is passed through [`core::hint::black_box`] before it is
/// tested: without that, once inlined, LLVM rewrites `OR of XORs == 0` as
/// 18 word compares and branches on each (seen in the disassembly, with
/// the probed key's words spilled around them); with it, the XORs and ORs
/// stay SSE2 vector operations on 16-byte pairs (both keys are 16-byte
/// aligned, as [`FlowKey`] is) and one test, at the cost of a stack round
/// trip. Measured with callgrind on `examples/extract_profile`.
#[inline(always)]
fn same_key(a: &FlowKey, b: &FlowKey) -> bool {
    // The probed key is read through an opaque reference too, so that its
    // words come from memory as aligned vectors rather than from whichever
    // general registers the hash left them in.
    let (a, b) = (a.words(), core::hint::black_box(b).words());
    let mut d = 0;
    for i in 0..a.len() {
        d |= a[i] ^ b[i];
    }
    core::hint::black_box(d) == 0
}

#[inline(always)]
fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32) | 1
}

impl<K: ExactKey> Emc<K> {
    /// A cache of `entries` (rounded up to a power of two, at least
    /// [`WAYS`]) with `policy`; `seed` drives the probabilistic policy.
    pub fn new(entries: usize, policy: InsertPolicy, seed: u64) -> Emc<K> {
        let entries = entries.max(WAYS).next_power_of_two();
        let sets = entries / WAYS;
        Emc {
            meta: vec![SetMeta::default(); sets].into_boxed_slice(),
            entries: vec![Ways::EMPTY; sets].into_boxed_slice(),
            set_mask: sets - 1,
            policy,
            sketch: vec![0; entries * 4].into_boxed_slice(),
            sketch_ops: 0,
            rng: seed | 1,
            stats: EmcStats::default(),
        }
    }

    /// Capacity in entries.
    pub fn capacity(&self) -> usize {
        self.entries.len() * WAYS
    }

    /// The policy.
    pub fn policy(&self) -> InsertPolicy {
        self.policy
    }

    /// Counters so far.
    pub fn stats(&self) -> EmcStats {
        self.stats
    }

    /// The megaflow cached for `key` (whose hash is `hash`: [`FlowKey::hash`]
    /// or [`crate::frame::FrameKey::hash`]). The caller checks the id is
    /// still live in its megaflow cache.
    #[inline]
    pub fn lookup(&mut self, key: &K, hash: u64) -> Option<FlowId> {
        let r = self.find(key, hash);
        if r.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        r
    }

    /// [`lookup`](Self::lookup) without the counters, for a batch that
    /// adds its hits and misses once ([`count`](Self::count)).
    #[inline(always)]
    pub(crate) fn find(&mut self, key: &K, hash: u64) -> Option<FlowId> {
        let set = hash as usize & self.set_mask;
        let (Some(m), Some(ways)) = (self.meta.get_mut(set), self.entries.get(set)) else {
            return None;
        };
        let tag = tag_of(hash);
        // Way by way with a branch each: the branches are predicted, so the
        // loads of a way's key start without waiting for the tag compare.
        for (w, way) in ways.0.iter().enumerate() {
            if m.tags[w] == tag && way.key.same(key) {
                // Saturating, as a compare and an add of the carry.
                m.hits[w] += u8::from(m.hits[w] < u8::MAX);
                return Some(way.flow);
            }
        }
        None
    }

    /// Adds a batch's hits and misses to the counters.
    #[inline(always)]
    pub(crate) fn count(&mut self, hits: u64, misses: u64) {
        self.stats.hits += hits;
        self.stats.misses += misses;
    }

    /// Counts a batch that skipped the cache (see [`crate::FlowCache`]).
    #[inline(always)]
    pub(crate) fn count_bypassed(&mut self) {
        self.stats.bypassed += 1;
    }

    /// Forgets `key`'s entry (after its megaflow went away).
    pub fn invalidate(&mut self, key: &K, hash: u64) {
        let set = hash as usize & self.set_mask;
        let tag = tag_of(hash);
        for w in 0..WAYS {
            if self.meta[set].tags[w] == tag && self.entries[set].0[w].key == *key {
                self.meta[set].tags[w] = 0;
                self.meta[set].hits[w] = 0;
            }
        }
    }

    /// Empties the cache (after a wholesale megaflow flush).
    pub fn clear(&mut self) {
        self.meta.fill(SetMeta::default());
        self.entries.fill(Ways::EMPTY);
    }

    #[inline]
    fn next_random(&mut self) -> u32 {
        // xorshift64*: seedable, no syscalls.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// Offers `key` (missed, then found in megaflow `flow`) for insertion;
    /// the policy decides. Returns true if it was inserted.
    #[inline]
    pub fn offer(&mut self, key: &K, hash: u64, flow: FlowId) -> bool {
        let set = hash as usize & self.set_mask;
        let tag = tag_of(hash);
        // A stale entry for this very key (its megaflow was replaced): refresh it in place.
        for w in 0..WAYS {
            if self.meta[set].tags[w] == tag && self.entries[set].0[w].key == *key {
                self.entries[set].0[w].flow = flow;
                return true;
            }
        }
        let (way, min_hits) = {
            let m = &self.meta[set];
            let mut way = 0;
            let mut min = u8::MAX;
            for w in 0..WAYS {
                if m.tags[w] == 0 {
                    way = w;
                    min = 0;
                    break;
                }
                if m.hits[w] < min {
                    min = m.hits[w];
                    way = w;
                }
            }
            (way, min)
        };
        let empty = self.meta[set].tags[way] == 0;
        let admit = match self.policy {
            InsertPolicy::Never => false,
            InsertPolicy::Always => true,
            InsertPolicy::Probabilistic { inv } => inv != 0 && (inv == 1 || self.next_random().is_multiple_of(inv)),
            InsertPolicy::Frequency { threshold } => {
                // A two-row count-min sketch with conservative update:
                // fewer false "recurring" verdicts for mice that share a counter.
                let len = self.sketch.len();
                let i = (hash >> 40) as usize & (len - 1);
                let j = (hash >> 16) as usize & (len - 1);
                let c = self.sketch[i].min(self.sketch[j]).saturating_add(1);
                if self.sketch[i] < c {
                    self.sketch[i] = c;
                }
                if self.sketch[j] < c {
                    self.sketch[j] = c;
                }
                self.sketch_ops += 1;
                // Halve often enough that each counter sees about one
                // increment per two halvings: a mouse must recur to pass.
                if self.sketch_ops >= len / 4 {
                    self.sketch_ops = 0;
                    for v in self.sketch.iter_mut() {
                        *v >>= 1;
                    }
                }
                if c < threshold {
                    false
                } else if empty || c > min_hits {
                    true
                } else {
                    // Contention ages the resident: it must keep earning its place.
                    self.meta[set].hits[way] >>= 1;
                    false
                }
            }
        };
        if !admit {
            return false;
        }
        if !empty {
            self.stats.evictions += 1;
        }
        self.stats.inserts += 1;
        self.meta[set].tags[way] = tag_of(hash);
        self.meta[set].hits[way] = 0;
        self.entries[set].0[way] = Entry { key: *key, flow };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Field;
    use crate::megaflow::MegaflowCache;
    use crate::{Actions, Mask};

    fn flows(n: u32) -> (MegaflowCache, Vec<FlowKey>, Vec<FlowId>) {
        let mut c = MegaflowCache::new(1 << 20);
        let mask = Mask::of(&[Field::InPort]);
        let keys: Vec<FlowKey> = (0..n).map(|i| FlowKey::ZERO.with(Field::InPort, u128::from(i))).collect();
        let ids = keys.iter().map(|k| c.install(k, &mask, Actions::output(1), 0).unwrap()).collect();
        (c, keys, ids)
    }

    #[test]
    fn always_policy_hits_after_insert_and_full_key_compare_guards_tags() {
        let (_c, keys, ids) = flows(8);
        let mut e = Emc::new(64, InsertPolicy::Always, 1);
        for (k, id) in keys.iter().zip(&ids) {
            assert!(e.lookup(k, k.hash()).is_none());
            assert!(e.offer(k, k.hash(), *id));
        }
        for (k, id) in keys.iter().zip(&ids) {
            assert_eq!(e.lookup(k, k.hash()), Some(*id));
        }
        // Same hash, different key: must miss.
        assert_eq!(e.lookup(&keys[1], keys[0].hash()), None);
        e.invalidate(&keys[2], keys[2].hash());
        assert_eq!(e.lookup(&keys[2], keys[2].hash()), None);
        assert_eq!(e.stats().hits, 8);
    }

    #[test]
    fn frequency_policy_keeps_recurring_flows_under_churn() {
        // 32 elephants recur every round; 50 000 mice each appear once.
        let (_c, keys, ids) = flows(50_032);
        let mut e = Emc::new(256, InsertPolicy::default(), 1);
        let mut hits_late = 0;
        for round in 0..1000usize {
            for i in 0..32 {
                let k = &keys[i];
                if e.lookup(k, k.hash()).is_some() {
                    hits_late += usize::from(round >= 500);
                } else {
                    e.offer(k, k.hash(), ids[i]);
                }
            }
            for j in 0..50 {
                let i = 32 + round * 50 + j;
                let k = &keys[i];
                if e.lookup(k, k.hash()).is_none() {
                    e.offer(k, k.hash(), ids[i]);
                }
            }
        }
        // In the second half, elephants hit nearly always.
        assert!(hits_late > 500 * 32 * 9 / 10, "elephant hits {hits_late} of {}", 500 * 32);
        // And mice were barely inserted.
        assert!(e.stats().inserts < 5_000, "inserts {}", e.stats().inserts);
    }
}
