//! The rule classifier: tuple-space search over rules with priorities.
//!
//! Rules are grouped into *subtables*, one per distinct mask; each
//! subtable is a hash table from the masked key to the rules with that
//! match, best first. A lookup visits subtables in order of their highest
//! priority (ties: the most hit first) and stops as soon as the next
//! subtable cannot hold a rule better than the one found (*priority-aware
//! early exit*). It also returns the union of the masks of every subtable it
//! visited: the bits the decision depended on, from which the slow path
//! builds a megaflow that un-wildcards only those.
//!
//! Two rules with the same priority that both match are ordered by
//! insertion: the earlier one wins (OVS leaves this undefined; a defined
//! answer makes the classifier testable against a linear scan).
//!
//! [`Classifier`] is a plain value edited through `&mut`. For the datapath,
//! [`ClassifierWriter`] edits a private copy and [`publish`]es it as an
//! immutable snapshot through an `ArcSwap`: readers ([`ClassifierReader`])
//! load the current snapshot without a lock or an allocation and keep using
//! it while the control plane edits the next one (RCU-style).
//!
//! [`publish`]: ClassifierWriter::publish

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::hash::hash_gather;
use crate::key::{FlowKey, KEY_WORDS, Mask, Match};

/// A hasher for keys that already are good hashes (our masked-key hashes).
#[derive(Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type HashedMap<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// The handle of a rule: stable until the rule is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId {
    idx: u32,
    generation: u32,
}

impl core::fmt::Display for RuleId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "rule#{}.{}", self.idx, self.generation)
    }
}

/// A rule: a match, a priority (higher wins) and what to do (`T`).
#[derive(Debug, Clone)]
pub struct Rule<T> {
    id: RuleId,
    priority: u32,
    m: Match,
    seq: u64,
    /// What the rule decides (its actions, or whatever the slow path keeps).
    pub data: T,
}

impl<T> Rule<T> {
    /// Its handle.
    pub fn id(&self) -> RuleId {
        self.id
    }
    /// Its priority.
    pub fn priority(&self) -> u32 {
        self.priority
    }
    /// Its match.
    pub fn matching(&self) -> &Match {
        &self.m
    }
    /// True when `self` beats `other` (higher priority, then earlier insertion).
    #[inline]
    fn beats(&self, other: &Rule<T>) -> bool {
        self.priority > other.priority || (self.priority == other.priority && self.seq < other.seq)
    }
}

/// Why a classifier edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifierError {
    /// Same match and priority as an existing rule.
    #[error("a rule with the same match and priority {priority} already exists ({existing})")]
    Duplicate {
        /// The priority.
        priority: u32,
        /// The rule already there.
        existing: RuleId,
    },
    /// The id names no rule (deleted, or never issued by this classifier).
    #[error("{0} names no rule in this classifier (it was deleted or never added)")]
    NoSuchRule(RuleId),
    /// Too many rules.
    #[error("the classifier holds at most {0} rules")]
    Full(usize),
}

struct Subtable {
    mask: Mask,
    /// Indices of the words the mask touches.
    words: [u8; KEY_WORDS],
    /// The mask's non-zero words, compact (`mw[j]` masks word `words[j]`;
    /// zero from `n` on).
    mw: [u64; KEY_WORDS],
    /// How many words the mask touches.
    n: usize,
    /// Masked-key hash -> rule slots, best first.
    buckets: HashedMap<Vec<u32>>,
    /// Priority -> number of rules, for the maximum after deletes.
    prios: BTreeMap<u32, u32>,
    max_priority: u32,
    hits: AtomicU64,
}

impl Clone for Subtable {
    fn clone(&self) -> Self {
        Subtable {
            mask: self.mask,
            words: self.words,
            mw: self.mw,
            n: self.n,
            buckets: self.buckets.clone(),
            prios: self.prios.clone(),
            max_priority: self.max_priority,
            hits: AtomicU64::new(self.hits.load(Ordering::Relaxed)),
        }
    }
}

impl Subtable {
    fn new(mask: Mask) -> Subtable {
        let mut words = [0u8; KEY_WORDS];
        let mut mw = [0u64; KEY_WORDS];
        let mut n = 0;
        for (i, &w) in mask.words().iter().enumerate() {
            if w != 0 {
                words[n] = i as u8;
                mw[n] = w;
                n += 1;
            }
        }
        Subtable {
            mask,
            words,
            mw,
            n,
            buckets: HashedMap::default(),
            prios: BTreeMap::new(),
            max_priority: 0,
            hits: AtomicU64::new(0),
        }
    }

    #[inline(always)]
    fn hash(&self, key: &FlowKey) -> u64 {
        hash_gather(key.words(), &self.words, &self.mw, self.n)
    }
}

/// Rules, in subtables by mask (see the module docs).
pub struct Classifier<T> {
    slots: Vec<(u32, Option<Rule<T>>)>,
    free: Vec<u32>,
    subtables: Vec<Subtable>,
    by_mask: HashMap<Mask, u32>,
    /// Subtable indices in lookup order.
    order: Vec<u32>,
    len: usize,
    seq: u64,
    version: u64,
}

impl<T: Clone> Clone for Classifier<T> {
    fn clone(&self) -> Self {
        Classifier {
            slots: self.slots.clone(),
            free: self.free.clone(),
            subtables: self.subtables.clone(),
            by_mask: self.by_mask.clone(),
            order: self.order.clone(),
            len: self.len,
            seq: self.seq,
            version: self.version,
        }
    }
}

impl<T> Default for Classifier<T> {
    fn default() -> Self {
        Classifier::new()
    }
}

/// The most rules a classifier holds (slot indices are `u32`).
pub const MAX_RULES: usize = u32::MAX as usize - 1;

impl<T> Classifier<T> {
    /// An empty classifier.
    pub fn new() -> Classifier<T> {
        Classifier {
            slots: Vec::new(),
            free: Vec::new(),
            subtables: Vec::new(),
            by_mask: HashMap::new(),
            order: Vec::new(),
            len: 0,
            seq: 0,
            version: 0,
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True with no rules.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of subtables (distinct masks).
    pub fn subtable_count(&self) -> usize {
        self.subtables.len()
    }

    /// The version of this snapshot (incremented by each publish).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The rule `id`, if it exists.
    pub fn get(&self, id: RuleId) -> Option<&Rule<T>> {
        match self.slots.get(id.idx as usize) {
            Some((g, Some(r))) if *g == id.generation => Some(r),
            _ => None,
        }
    }

    /// Every rule, in no particular order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule<T>> {
        self.slots.iter().filter_map(|(_, r)| r.as_ref())
    }

    /// Adds a rule. Fails if a rule with the same match and priority exists.
    pub fn insert(&mut self, m: Match, priority: u32, data: T) -> Result<RuleId, ClassifierError> {
        if self.len >= MAX_RULES {
            return Err(ClassifierError::Full(MAX_RULES));
        }
        let mut created = false;
        let st_idx = match self.by_mask.get(m.mask()) {
            Some(&i) => i,
            None => {
                created = true;
                self.subtables.push(Subtable::new(*m.mask()));
                let i = (self.subtables.len() - 1) as u32;
                self.by_mask.insert(*m.mask(), i);
                self.order.push(i);
                i
            }
        };
        let st = &self.subtables[st_idx as usize];
        let h = st.hash(m.key());
        // Where in the bucket the rule goes: after every rule that beats it.
        let bucket = st.buckets.get(&h);
        if let Some(b) = bucket {
            for &s in b {
                if let (_, Some(r)) = &self.slots[s as usize]
                    && r.priority == priority
                    && r.m == m
                {
                    return Err(ClassifierError::Duplicate { priority, existing: r.id });
                }
            }
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.0 = slot.0.wrapping_add(1);
        let id = RuleId { idx, generation: slot.0 };
        self.seq += 1;
        slot.1 = Some(Rule { id, priority, m, seq: self.seq, data });
        let slots = &self.slots;
        let st = &mut self.subtables[st_idx as usize];
        let b = st.buckets.entry(h).or_default();
        // A new rule has the highest seq: it goes after every rule of equal or higher priority.
        let at = b.partition_point(|&s| matches!(&slots[s as usize].1, Some(r) if r.priority >= priority));
        b.insert(at, idx);
        *st.prios.entry(priority).or_insert(0) += 1;
        let old_max = st.max_priority;
        st.max_priority = st.prios.last_key_value().map_or(0, |(p, _)| *p);
        self.len += 1;
        if created || st.max_priority != old_max {
            self.sort();
        }
        Ok(id)
    }

    /// Replaces what rule `id` decides, keeping its match, priority and place.
    pub fn modify(&mut self, id: RuleId, data: T) -> Result<T, ClassifierError> {
        match self.slots.get_mut(id.idx as usize) {
            Some((g, Some(r))) if *g == id.generation => Ok(core::mem::replace(&mut r.data, data)),
            _ => Err(ClassifierError::NoSuchRule(id)),
        }
    }

    /// Deletes rule `id` and returns it.
    pub fn remove(&mut self, id: RuleId) -> Result<Rule<T>, ClassifierError> {
        let rule = match self.slots.get_mut(id.idx as usize) {
            Some((g, r @ Some(_))) if *g == id.generation => r.take(),
            _ => None,
        };
        let Some(rule) = rule else { return Err(ClassifierError::NoSuchRule(id)) };
        self.free.push(id.idx);
        self.len -= 1;
        // Invariant: every live rule's mask has a subtable (insert made it,
        // and a subtable is only dropped when its last rule goes).
        let Some(&st_idx) = self.by_mask.get(rule.m.mask()) else { return Ok(rule) };
        let st = &mut self.subtables[st_idx as usize];
        let h = st.hash(rule.m.key());
        if let Some(b) = st.buckets.get_mut(&h) {
            b.retain(|&s| s != id.idx);
            if b.is_empty() {
                st.buckets.remove(&h);
            }
        }
        if let Some(c) = st.prios.get_mut(&rule.priority) {
            *c -= 1;
            if *c == 0 {
                st.prios.remove(&rule.priority);
            }
        }
        let old_max = st.max_priority;
        st.max_priority = st.prios.last_key_value().map_or(0, |(p, _)| *p);
        if st.prios.is_empty() {
            self.drop_subtable(st_idx);
            self.sort();
        } else if st.max_priority != old_max {
            self.sort();
        }
        Ok(rule)
    }

    fn drop_subtable(&mut self, i: u32) {
        let st = self.subtables.swap_remove(i as usize);
        self.by_mask.remove(&st.mask);
        if let Some(moved) = self.subtables.get(i as usize) {
            self.by_mask.insert(moved.mask, i);
        }
        let last = self.subtables.len() as u32;
        self.order.retain(|&o| o != i);
        for o in &mut self.order {
            if *o == last {
                *o = i;
            }
        }
    }

    /// Puts subtables in lookup order: highest priority first, then most hit.
    fn sort(&mut self) {
        let st = &self.subtables;
        self.order.sort_by(|&a, &b| {
            let (a, b) = (&st[a as usize], &st[b as usize]);
            b.max_priority
                .cmp(&a.max_priority)
                .then_with(|| b.hits.load(Ordering::Relaxed).cmp(&a.hits.load(Ordering::Relaxed)))
        });
    }

    /// Re-ranks subtables of equal priority by their hits since the last
    /// call, and starts counting again.
    pub fn rank_by_hits(&mut self) {
        self.sort();
        for s in &self.subtables {
            s.hits.store(0, Ordering::Relaxed);
        }
    }

    /// The best rule matching `key`, adding to `wildcards` every mask bit
    /// the search consulted (whether or not a rule matched). No allocation,
    /// no lock; the hit counters are relaxed atomics.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, wildcards: &mut Mask) -> Option<&Rule<T>> {
        let mut best: Option<&Rule<T>> = None;
        for &i in &self.order {
            let st = &self.subtables[i as usize];
            if let Some(b) = best
                && st.max_priority < b.priority
            {
                break;
            }
            wildcards.union_with(&st.mask);
            let h = st.hash(key);
            let Some(bucket) = st.buckets.get(&h) else { continue };
            for &s in bucket {
                if let (_, Some(r)) = &self.slots[s as usize]
                    && r.m.matches(key)
                {
                    if best.is_none_or(|b| r.beats(b)) {
                        st.hits.fetch_add(1, Ordering::Relaxed);
                        best = Some(r);
                    }
                    break;
                }
            }
        }
        best
    }
}

/// What a [`ClassifierWriter::publish`] made visible.
#[derive(Debug, Clone)]
pub struct Published {
    /// The new snapshot's version.
    pub version: u64,
    /// The matches of every rule added, modified or deleted since the
    /// previous publish: megaflows overlapping none of them need no
    /// revalidation.
    pub changed: Vec<Match>,
}

/// The control plane's side of a shared classifier.
pub struct ClassifierWriter<T> {
    work: Classifier<T>,
    shared: Arc<ArcSwap<Classifier<T>>>,
    changed: Vec<Match>,
}

/// A datapath thread's side: loads the current snapshot.
pub struct ClassifierReader<T> {
    shared: Arc<ArcSwap<Classifier<T>>>,
}

impl<T> Clone for ClassifierReader<T> {
    fn clone(&self) -> Self {
        ClassifierReader { shared: Arc::clone(&self.shared) }
    }
}

impl<T> ClassifierReader<T> {
    /// The current snapshot: a lock-free, allocation-free load. Hold it for
    /// a batch, not forever (a held snapshot keeps its memory alive).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Classifier<T>>> {
        self.shared.load()
    }
}

impl<T: Clone> ClassifierWriter<T> {
    /// An empty shared classifier and its first reader.
    pub fn new() -> (ClassifierWriter<T>, ClassifierReader<T>) {
        let shared = Arc::new(ArcSwap::from_pointee(Classifier::new()));
        let w = ClassifierWriter { work: Classifier::new(), shared: Arc::clone(&shared), changed: Vec::new() };
        (w, ClassifierReader { shared })
    }

    /// Another reader.
    pub fn reader(&self) -> ClassifierReader<T> {
        ClassifierReader { shared: Arc::clone(&self.shared) }
    }

    /// The working copy (unpublished edits included).
    pub fn working(&self) -> &Classifier<T> {
        &self.work
    }

    /// [`Classifier::insert`] on the working copy.
    pub fn insert(&mut self, m: Match, priority: u32, data: T) -> Result<RuleId, ClassifierError> {
        let id = self.work.insert(m, priority, data)?;
        self.changed.push(m);
        Ok(id)
    }

    /// [`Classifier::modify`] on the working copy.
    pub fn modify(&mut self, id: RuleId, data: T) -> Result<T, ClassifierError> {
        let old = self.work.modify(id, data)?;
        if let Some(r) = self.work.get(id) {
            self.changed.push(r.m);
        }
        Ok(old)
    }

    /// [`Classifier::remove`] on the working copy.
    pub fn remove(&mut self, id: RuleId) -> Result<Rule<T>, ClassifierError> {
        let r = self.work.remove(id)?;
        self.changed.push(r.m);
        Ok(r)
    }

    /// Makes the working copy the current snapshot. Costs a copy of the
    /// classifier (O(rules)): batch edits, then publish once. Readers that
    /// hold the old snapshot keep it until they load again.
    pub fn publish(&mut self) -> Published {
        self.work.rank_by_hits();
        self.work.version += 1;
        self.shared.store(Arc::new(self.work.clone()));
        Published { version: self.work.version, changed: core::mem::take(&mut self.changed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Field;

    fn m(fields: &[(Field, u128)]) -> Match {
        let mut k = FlowKey::ZERO;
        let mut mask = Mask::CATCH_ALL;
        for &(f, v) in fields {
            k.set(f, v);
            mask.set(f, u128::MAX);
        }
        Match::new(&k, &mask)
    }

    #[test]
    fn priority_then_insertion_order_decides_and_wildcards_cover_visited_masks() {
        let mut c = Classifier::new();
        let low = c.insert(m(&[(Field::InPort, 1)]), 10, "low").unwrap();
        let high = c.insert(m(&[(Field::InPort, 1), (Field::TpDst, 80)]), 20, "high").unwrap();
        let _other = c.insert(m(&[(Field::EthType, 0x0806)]), 5, "arp").unwrap();
        let k = FlowKey::ZERO.with(Field::InPort, 1).with(Field::TpDst, 80);
        let mut wc = Mask::CATCH_ALL;
        assert_eq!(c.lookup(&k, &mut wc).unwrap().id(), high);
        // Early exit: the priority-5 subtable was never visited.
        assert!(wc.is_exact(Field::TpDst) && wc.is_exact(Field::InPort));
        assert!(!wc.is_exact(Field::EthType));
        let k2 = k.with(Field::TpDst, 81);
        let mut wc = Mask::CATCH_ALL;
        assert_eq!(c.lookup(&k2, &mut wc).unwrap().id(), low);
        assert!(c.insert(m(&[(Field::InPort, 1)]), 10, "dup").is_err());
        c.remove(high).unwrap();
        assert_eq!(c.lookup(&k, &mut Mask::CATCH_ALL.clone()).unwrap().id(), low);
        assert_eq!(c.remove(high).unwrap_err(), ClassifierError::NoSuchRule(high));
        assert_eq!(c.modify(low, "changed").unwrap(), "low");
        assert_eq!(c.lookup(&k, &mut Mask::CATCH_ALL.clone()).unwrap().data, "changed");
        assert_eq!(c.subtable_count(), 2);
    }

    #[test]
    fn published_snapshots_are_isolated_from_later_edits() {
        let (mut w, r) = ClassifierWriter::new();
        let id = w.insert(m(&[(Field::InPort, 3)]), 1, 7u32).unwrap();
        let k = FlowKey::ZERO.with(Field::InPort, 3);
        assert!(r.load().lookup(&k, &mut Mask::CATCH_ALL.clone()).is_none(), "unpublished edits are invisible");
        let p = w.publish();
        assert_eq!(p.changed.len(), 1);
        let snap = r.load_full_for_test();
        assert_eq!(snap.lookup(&k, &mut Mask::CATCH_ALL.clone()).unwrap().data, 7);
        w.remove(id).unwrap();
        let p2 = w.publish();
        assert_eq!(p2.version, p.version + 1);
        assert_eq!(snap.lookup(&k, &mut Mask::CATCH_ALL.clone()).unwrap().data, 7, "an old snapshot stays valid");
        assert!(r.load().lookup(&k, &mut Mask::CATCH_ALL.clone()).is_none());
    }

    #[test]
    fn readers_see_whole_versions_while_the_writer_edits() {
        // Every rule of version v carries data v: a reader that ever saw
        // two different values within one snapshot saw a torn update.
        let (mut w, r) = ClassifierWriter::new();
        let keys: Vec<FlowKey> = (0..8u32).map(|p| FlowKey::ZERO.with(Field::InPort, u128::from(p))).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let loads_seen = Arc::new(AtomicU64::new(0));
        let reader = {
            let (r, keys, stop, seen) = (r.clone(), keys.clone(), Arc::clone(&stop), Arc::clone(&loads_seen));
            std::thread::spawn(move || {
                let mut loads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seen.fetch_add(1, Ordering::Relaxed);
                    let snap = r.load();
                    let seen: Vec<u64> = keys
                        .iter()
                        .filter_map(|k| snap.lookup(k, &mut Mask::CATCH_ALL.clone()).map(|x| x.data))
                        .collect();
                    assert!(seen.windows(2).all(|p| p[0] == p[1]), "torn snapshot {seen:?}");
                    assert!(seen.is_empty() || seen.len() == keys.len());
                    loads += 1;
                }
                loads
            })
        };
        // Start editing only once the reader runs, and let it interleave.
        while loads_seen.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        let mut ids = Vec::new();
        for v in 1..=200u64 {
            std::thread::yield_now();
            for id in ids.drain(..) {
                w.remove(id).unwrap();
            }
            for k in &keys {
                ids.push(w.insert(Match::new(k, &Mask::of(&[Field::InPort])), 1, v).unwrap());
            }
            w.publish();
        }
        stop.store(true, Ordering::Relaxed);
        let loads = reader.join().unwrap();
        assert!(loads > 0);
        assert_eq!(r.load().version(), 200);
    }

    impl<T> ClassifierReader<T> {
        fn load_full_for_test(&self) -> Arc<Classifier<T>> {
            self.shared.load_full()
        }
    }
}
