//! The megaflow cache: masked entries (a key under a mask) to action
//! lists, looked up by tuple-space search like OVS's `dpcls`.
//!
//! Entries do not overlap, so the first hit wins and there are no
//! priorities; subtables (one per mask) are visited most-hit first
//! ([`MegaflowCache::rank_subtables`]). Each datapath thread owns one cache
//! and passes `&mut` on lookup, so hit counters and stats are plain
//! integers.
//!
//! Layout, for memory (≤ 256 bytes per entry at a million entries) and for
//! misses (a lookup at a million entries is bound by DRAM latency):
//! - a subtable keeps its entries' masked words *compactly* (only the words
//!   its mask touches, like OVS's miniflows) in one arena, each followed by
//!   a word naming the entry's slot;
//! - its index is an open-addressing table of 8-byte cells (32-bit hash
//!   tag, arena position) with linear probing;
//! - per-entry actions and stats live in a slab indexed by [`FlowId`].
//!
//! [`MegaflowCache::lookup_batch`] looks up to [`BATCH`] keys per subtable
//! in stages (all hashes, then all probes) so that the work of different
//! packets overlaps; in a subtable too big for the caches it runs them as a
//! software pipeline with prefetches (index cell, then arena entry, then
//! stats slot of packets a few places behind), so that the DRAM misses of
//! a batch are in flight together rather than one after the other.

use std::collections::HashMap;

use crate::actions::Actions;
use crate::hash::{hash_compact, hash_gather};
use crate::key::{FlowKey, KEY_WORDS, Mask, Match};
use crate::prefetch;

/// The most keys [`MegaflowCache::lookup_batch`] takes at once (a datapath batch).
pub const BATCH: usize = 32;
/// The most subtables (distinct masks) one cache holds.
pub const MAX_SUBTABLES: usize = 1024;
/// Index cells from which [`MegaflowCache::lookup_batch`] prefetches a
/// subtable's memory (1 MiB of cells: beyond the L2 cache of the machines
/// we measure on, with the arena several times that).
const PREFETCH_MIN_CELLS: usize = 1 << 17;
/// The default flow limit (OVS's configured `flow-limit`).
pub const DEFAULT_FLOW_LIMIT: usize = 200_000;

/// The handle of a megaflow: the slot and its generation, so a handle kept
/// (by the exact-match cache) after its entry was removed never finds a
/// successor in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId {
    idx: u32,
    generation: u32,
}

impl FlowId {
    /// An id no entry ever has (generations start at 1): fills empty
    /// exact-match cache ways.
    pub(crate) const DANGLING: FlowId = FlowId { idx: u32::MAX, generation: 0 };

    #[inline(always)]
    fn pack(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.idx)
    }
    #[inline(always)]
    fn unpack(v: u64) -> FlowId {
        FlowId { idx: v as u32, generation: (v >> 32) as u32 }
    }
}

impl core::fmt::Display for FlowId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ufid:{}.{}", self.idx, self.generation)
    }
}

/// Why a megaflow was not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MegaflowError {
    /// Too many distinct masks.
    #[error("the megaflow cache holds at most {MAX_SUBTABLES} distinct masks; this mask would be one more")]
    TooManyMasks,
    /// A flow limit of zero.
    #[error("the flow limit is 0, so no megaflow can be installed")]
    ZeroLimit,
}

/// What revalidation decided for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revalidation {
    /// Still right.
    Keep,
    /// Same match, new actions.
    Update(Actions),
    /// No longer right (its mask does not cover what the rules now consult).
    Remove,
}

/// What one [`MegaflowCache::revalidate`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevalidateStats {
    /// Entries compared against the changes.
    pub scanned: usize,
    /// Entries overlapping a change, handed to the check.
    pub checked: usize,
    /// Entries whose actions changed.
    pub updated: usize,
    /// Entries removed.
    pub removed: usize,
}

/// One entry as seen from outside: its match, actions and stats.
#[derive(Debug, Clone)]
pub struct Megaflow<'a> {
    /// Its handle.
    pub id: FlowId,
    /// Key and mask.
    pub matching: Match,
    /// What to do.
    pub actions: &'a Actions,
    /// Packets that hit it.
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
    /// When it was last hit (or installed), in the caller's ms.
    pub used: u64,
}

impl core::fmt::Display for Megaflow<'_> {
    /// One `dump-flows` line: `match, packets:…, bytes:…, used:…, actions:…`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}, packets:{}, bytes:{}, used:{}ms, actions:{}",
            self.matching, self.packets, self.bytes, self.used, self.actions
        )
    }
}

/// `repr(C)`: `used` is the last field, so that prefetching the slot's
/// first field and `used` brings in both lines a 48-byte slot may span.
#[repr(C)]
struct Slot {
    generation: u32,
    /// Subtable index; `u16::MAX` when the slot is free.
    subtable: u16,
    /// Entry position in the subtable's arena.
    pos: u32,
    actions: Option<Actions>,
    packets: u64,
    bytes: u64,
    used: u64,
}

const FREE: u16 = u16::MAX;

struct Subtable {
    mask: Mask,
    words: [u8; KEY_WORDS],
    /// The mask's non-zero words, compact (`mw[j]` masks word `words[j]`).
    mw: [u64; KEY_WORDS],
    n: usize,
    /// Cells: `hash32 << 32 | (pos + 1)`; 0 is empty.
    table: Vec<u64>,
    /// `n` masked words then the packed [`FlowId`], per entry.
    arena: Vec<u64>,
    len: usize,
    hits: u64,
}

#[inline(always)]
fn cell_pos(c: u64) -> usize {
    (c as u32 as usize).wrapping_sub(1)
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
        Subtable { mask, words, mw, n, table: vec![0; 16], arena: Vec::new(), len: 0, hits: 0 }
    }

    #[inline(always)]
    fn stride(&self) -> usize {
        self.n + 1
    }

    #[inline(always)]
    fn hash(&self, key: &FlowKey) -> u32 {
        hash_gather(key.words(), &self.words, &self.mw, self.n) as u32
    }

    #[inline(always)]
    fn entry_eq(&self, pos: usize, key: &FlowKey) -> bool {
        let k = key.words();
        let at = pos * self.stride();
        let Some(e) = self.arena.get(at..at + self.n) else { return false };
        let mut diff = 0;
        for ((e, &i), m) in e.iter().zip(&self.words).zip(&self.mw) {
            // `i` comes from our mask (always < KEY_WORDS): cannot panic.
            diff |= e ^ (k[usize::from(i)] & m);
        }
        diff == 0
    }

    #[inline(always)]
    fn id_at(&self, pos: usize) -> FlowId {
        FlowId::unpack(self.arena[pos * self.stride() + self.n])
    }

    /// Probes from cell `i` (already read as `c`) for `key` with hash `h`.
    #[inline(always)]
    fn probe_from(&self, key: &FlowKey, h: u32, mut c: u64) -> Option<FlowId> {
        let cap = self.table.len() - 1;
        let mut i = h as usize & cap;
        loop {
            if c == 0 {
                return None;
            }
            if (c >> 32) as u32 == h && self.entry_eq(cell_pos(c), key) {
                return Some(self.id_at(cell_pos(c)));
            }
            i = (i + 1) & cap;
            c = self.table[i];
        }
    }

    #[inline(always)]
    fn find(&self, key: &FlowKey) -> Option<FlowId> {
        let h = self.hash(key);
        self.probe_from(key, h, self.table[h as usize & (self.table.len() - 1)])
    }

    /// The pending keys of a batch in a subtable too big for the caches,
    /// as a software pipeline: key `t` is hashed (and its index cell
    /// prefetched) while key `t - D` has its cell read (and its arena
    /// entry prefetched) and key `t - 2D` is compared (and on a hit its
    /// stats slot prefetched), so that about `2D` DRAM misses are in
    /// flight at any time. Returns the keys still pending.
    fn lookup_deep(&mut self, keys: &[FlowKey], mut pending: u64, out: &mut [Option<FlowId>], slots: &[Slot]) -> u64 {
        const D: usize = 6;
        let cap = self.table.len() - 1;
        let mut list = [0u8; BATCH];
        let mut hashes = [0u32; BATCH];
        let mut m = 0;
        let mut p = pending;
        while p != 0 {
            list[m % BATCH] = (p.trailing_zeros() as usize % BATCH) as u8;
            m += 1;
            p &= p - 1;
        }
        for t in 0..m + 2 * D {
            if t < m {
                let i = usize::from(list[t % BATCH]) % BATCH;
                let h = self.hash(&keys[i]);
                hashes[i] = h;
                prefetch::read(&self.table[h as usize & cap]);
            }
            if t >= D && t - D < m {
                let i = usize::from(list[(t - D) % BATCH]) % BATCH;
                let h = hashes[i];
                let c = self.table[h as usize & cap];
                if c != 0 && (c >> 32) as u32 == h {
                    // The entry's first and last word (its id): it may span two lines.
                    let at = cell_pos(c) * self.stride();
                    if let Some(e) = self.arena.get(at) {
                        prefetch::read(e);
                    }
                    if let Some(e) = self.arena.get(at + self.n) {
                        prefetch::read(e);
                    }
                }
            }
            if t >= 2 * D {
                let i = usize::from(list[(t - 2 * D) % BATCH]) % BATCH;
                let h = hashes[i];
                if let Some(id) = self.probe_from(&keys[i], h, self.table[h as usize & cap]) {
                    out[i] = Some(id);
                    pending &= !(1 << i);
                    self.hits += 1;
                    if let Some(s) = slots.get(id.idx as usize) {
                        // A 48-byte slot may span two lines; the stats are at its end.
                        prefetch::read(s);
                        prefetch::read(&s.used);
                    }
                }
            }
        }
        pending
    }

    fn insert(&mut self, key: &FlowKey, id: FlowId) -> u32 {
        if (self.len + 1) * 4 > self.table.len() * 3 {
            self.grow();
        }
        let h = self.hash(key);
        let pos = self.len;
        let k = key.words();
        let m = self.mask.words();
        for &i in &self.words[..self.n] {
            self.arena.push(k[usize::from(i)] & m[usize::from(i)]);
        }
        self.arena.push(id.pack());
        self.len += 1;
        self.put_cell(h, pos);
        pos as u32
    }

    fn put_cell(&mut self, h: u32, pos: usize) {
        let cap = self.table.len() - 1;
        let mut i = h as usize & cap;
        while self.table[i] != 0 {
            i = (i + 1) & cap;
        }
        self.table[i] = (u64::from(h) << 32) | (pos as u64 + 1);
    }

    fn grow(&mut self) {
        let new_len = (self.table.len() * 2).max(16);
        let old = core::mem::replace(&mut self.table, vec![0; new_len]);
        for c in old {
            if c != 0 {
                self.put_cell((c >> 32) as u32, cell_pos(c));
            }
        }
    }

    /// The hash of the entry at `pos`, recomputed from its stored words.
    fn hash_at(&self, pos: usize) -> u32 {
        let at = pos * self.stride();
        hash_compact(&self.arena[at..at + self.n]) as u32
    }

    /// The cell index pointing at `pos`.
    fn cell_of(&self, pos: usize) -> Option<usize> {
        let cap = self.table.len() - 1;
        let mut i = self.hash_at(pos) as usize & cap;
        loop {
            let c = self.table[i];
            if c == 0 {
                return None;
            }
            if cell_pos(c) == pos {
                return Some(i);
            }
            i = (i + 1) & cap;
        }
    }

    /// Removes the entry at `pos`. Returns the id of the entry moved into
    /// `pos` (from the end of the arena), if any.
    fn remove(&mut self, pos: usize) -> Option<FlowId> {
        let cap = self.table.len() - 1;
        if let Some(mut hole) = self.cell_of(pos) {
            // Backward-shift deletion keeps linear probing tombstone-free.
            self.table[hole] = 0;
            let mut j = hole;
            loop {
                j = (j + 1) & cap;
                let c = self.table[j];
                if c == 0 {
                    break;
                }
                let home = (c >> 32) as usize & cap;
                // Move `c` into the hole unless its home lies cyclically in (hole, j].
                let in_range = if hole <= j { home > hole && home <= j } else { home > hole || home <= j };
                if !in_range {
                    self.table[hole] = c;
                    self.table[j] = 0;
                    hole = j;
                }
            }
        }
        let last = self.len - 1;
        self.len -= 1;
        let stride = self.stride();
        let moved = if pos != last {
            let cell = self.cell_of(last);
            self.arena.copy_within(last * stride..(last + 1) * stride, pos * stride);
            if let Some(ci) = cell {
                self.table[ci] = (self.table[ci] & !0xffff_ffff) | (pos as u64 + 1);
            }
            Some(self.id_at(pos))
        } else {
            None
        };
        self.arena.truncate(last * stride);
        moved
    }

    fn matching(&self, pos: usize) -> Match {
        let mut w = [0u64; KEY_WORDS];
        let at = pos * self.stride();
        for (j, &i) in self.words[..self.n].iter().enumerate() {
            w[usize::from(i)] = self.arena[at + j];
        }
        Match::new(&FlowKey::from_words(w), &self.mask)
    }
}

/// The megaflow cache (see the module docs).
pub struct MegaflowCache {
    slots: Vec<Slot>,
    free: Vec<u32>,
    subtables: Vec<Subtable>,
    by_mask: HashMap<Mask, u16>,
    order: Vec<u16>,
    len: usize,
    limit: usize,
    hand: usize,
    evictions: u64,
}

impl Default for MegaflowCache {
    fn default() -> Self {
        MegaflowCache::new(DEFAULT_FLOW_LIMIT)
    }
}

impl MegaflowCache {
    /// An empty cache holding at most `limit` entries.
    pub fn new(limit: usize) -> MegaflowCache {
        MegaflowCache {
            slots: Vec::new(),
            free: Vec::new(),
            subtables: Vec::new(),
            by_mask: HashMap::new(),
            order: Vec::new(),
            len: 0,
            limit,
            hand: 0,
            evictions: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True with no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of subtables (distinct masks).
    pub fn subtable_count(&self) -> usize {
        self.subtables.len()
    }

    /// The flow limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the flow limit (evicting on the next installs if lowered).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Entries evicted by the flow limit so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The live entry's slot.
    #[inline(always)]
    fn slot(&self, id: FlowId) -> Option<&Slot> {
        self.slots.get(id.idx as usize).filter(|s| s.generation == id.generation && s.subtable != FREE)
    }

    /// True while `id` names an installed entry.
    #[inline]
    pub fn contains(&self, id: FlowId) -> bool {
        self.slot(id).is_some()
    }

    /// The actions of entry `id`.
    #[inline]
    pub fn actions(&self, id: FlowId) -> Option<&Actions> {
        self.slot(id).and_then(|s| s.actions.as_ref())
    }

    /// The entry `id` with its match and stats.
    pub fn get(&self, id: FlowId) -> Option<Megaflow<'_>> {
        let s = self.slot(id)?;
        let st = &self.subtables[usize::from(s.subtable)];
        Some(Megaflow {
            id,
            matching: st.matching(s.pos as usize),
            actions: s.actions.as_ref()?,
            packets: s.packets,
            bytes: s.bytes,
            used: s.used,
        })
    }

    /// Every entry (for `dump-flows`), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Megaflow<'_>> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.subtable != FREE)
            .filter_map(|(i, s)| self.get(FlowId { idx: i as u32, generation: s.generation }))
    }

    /// The entry matching `key`, if any. Counts a hit on its subtable; the
    /// caller accounts packets with [`account`](Self::account).
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey) -> Option<FlowId> {
        for &si in &self.order {
            let st = &mut self.subtables[usize::from(si)];
            if let Some(id) = st.find(key) {
                st.hits += 1;
                return Some(id);
            }
        }
        None
    }

    /// Looks up `keys` (at most [`BATCH`]; the rest are ignored) into `out`,
    /// in stages so that the memory accesses of different keys overlap.
    pub fn lookup_batch(&mut self, keys: &[FlowKey], out: &mut [Option<FlowId>]) {
        let n = keys.len().min(out.len()).min(BATCH);
        out[..n].fill(None);
        self.lookup_pending(keys, (1u64 << n) - 1, out);
    }

    /// [`lookup_batch`](Self::lookup_batch) of the keys whose bit is set in
    /// `pending` (bits below `keys.len().min(out.len()).min(BATCH)`), writing
    /// only their `out` slots, and only on a hit.
    ///
    /// Per subtable: in a small one (in cache), all hashes and then all
    /// probes; in a big one, a prefetching software pipeline
    /// (`Subtable::lookup_deep`) so that at a million entries the DRAM
    /// misses of the batch are in flight together instead of one after
    /// the other, down to the entry's stats slot (which the caller's
    /// [`account`](Self::account) or [`actions`](Self::actions) reads next).
    pub(crate) fn lookup_pending(&mut self, keys: &[FlowKey], pending: u64, out: &mut [Option<FlowId>]) {
        let n = keys.len().min(out.len()).min(BATCH);
        let mut pending = pending & ((1u64 << n) - 1);
        let mut hashes = [0u32; BATCH];
        let slots = &self.slots;
        for &si in &self.order {
            if pending == 0 {
                break;
            }
            let st = &mut self.subtables[usize::from(si)];
            if st.table.len() >= PREFETCH_MIN_CELLS {
                pending = st.lookup_deep(keys, pending, out, slots);
                continue;
            }
            // A small subtable is in cache: all hashes, then all probes
            // (independent, so that the CPU overlaps them), no prefetch.
            let cap = st.table.len() - 1;
            let mut p = pending;
            while p != 0 {
                let i = p.trailing_zeros() as usize % BATCH;
                p &= p - 1;
                hashes[i] = st.hash(&keys[i]);
            }
            let mut p = pending;
            while p != 0 {
                let i = p.trailing_zeros() as usize % BATCH;
                p &= p - 1;
                let h = hashes[i];
                if let Some(id) = st.probe_from(&keys[i], h, st.table[h as usize & cap]) {
                    out[i] = Some(id);
                    pending &= !(1 << i);
                    st.hits += 1;
                }
            }
        }
    }

    /// Adds `packets` and `bytes` to entry `id` and marks it used at `now`.
    #[inline]
    pub fn account(&mut self, id: FlowId, packets: u64, bytes: u64, now: u64) {
        if let Some(s) = self.slots.get_mut(id.idx as usize)
            && s.generation == id.generation
            && s.subtable != FREE
        {
            s.packets += packets;
            s.bytes += bytes;
            s.used = s.used.max(now);
        }
    }

    /// Installs `actions` for every packet whose key equals `key` under
    /// `mask`. If `key` already hits an entry, that entry is kept and
    /// returned instead (entries never overlap; two upcalls for one flow
    /// race to the same answer). At the flow limit, the least recently
    /// used of a sample of entries is evicted first.
    pub fn install(&mut self, key: &FlowKey, mask: &Mask, actions: Actions, now: u64) -> Result<FlowId, MegaflowError> {
        if self.limit == 0 {
            return Err(MegaflowError::ZeroLimit);
        }
        for &si in &self.order {
            if let Some(id) = self.subtables[usize::from(si)].find(key) {
                return Ok(id);
            }
        }
        // Evict first: dropping an emptied subtable renumbers subtables.
        while self.len >= self.limit {
            self.evict_one();
        }
        let si = match self.by_mask.get(mask) {
            Some(&i) => i,
            None => {
                if self.subtables.len() >= MAX_SUBTABLES {
                    return Err(MegaflowError::TooManyMasks);
                }
                self.subtables.push(Subtable::new(*mask));
                let i = (self.subtables.len() - 1) as u16;
                self.by_mask.insert(*mask, i);
                self.order.push(i);
                i
            }
        };
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    subtable: FREE,
                    pos: 0,
                    actions: None,
                    packets: 0,
                    bytes: 0,
                    used: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.generation = slot.generation.wrapping_add(1);
        let id = FlowId { idx, generation: slot.generation };
        let pos = self.subtables[usize::from(si)].insert(key, id);
        let slot = &mut self.slots[idx as usize];
        slot.subtable = si;
        slot.pos = pos;
        slot.actions = Some(actions);
        slot.packets = 0;
        slot.bytes = 0;
        slot.used = now;
        self.len += 1;
        Ok(id)
    }

    /// Removes entry `id`; false if it was not installed.
    pub fn remove(&mut self, id: FlowId) -> bool {
        let Some(s) = self.slot(id) else { return false };
        let (si, pos) = (s.subtable, s.pos);
        let st = &mut self.subtables[usize::from(si)];
        if let Some(moved) = st.remove(pos as usize)
            && let Some(ms) = self.slots.get_mut(moved.idx as usize)
        {
            ms.pos = pos;
        }
        let empty = st.len == 0;
        let s = &mut self.slots[id.idx as usize];
        s.subtable = FREE;
        s.actions = None;
        self.free.push(id.idx);
        self.len -= 1;
        if empty {
            self.drop_subtable(si);
        }
        true
    }

    fn drop_subtable(&mut self, i: u16) {
        let st = self.subtables.swap_remove(usize::from(i));
        self.by_mask.remove(&st.mask);
        let last = self.subtables.len() as u16;
        self.order.retain(|&o| o != i);
        if let Some(moved) = self.subtables.get(usize::from(i)) {
            self.by_mask.insert(moved.mask, i);
            for o in &mut self.order {
                if *o == last {
                    *o = i;
                }
            }
            for p in 0..moved.len {
                let id = moved.id_at(p);
                if let Some(s) = self.slots.get_mut(id.idx as usize) {
                    s.subtable = i;
                }
            }
        }
    }

    /// Evicts the least recently used of the next 8 live entries after
    /// the clock hand (an approximate LRU that costs O(1) per eviction).
    fn evict_one(&mut self) {
        if self.len == 0 {
            return;
        }
        let n = self.slots.len();
        let mut best: Option<(u64, usize)> = None;
        let mut seen = 0;
        let mut i = self.hand % n;
        for _ in 0..n {
            let s = &self.slots[i];
            if s.subtable != FREE {
                if best.is_none_or(|(u, _)| s.used < u) {
                    best = Some((s.used, i));
                }
                seen += 1;
                if seen == 8 {
                    break;
                }
            }
            i = (i + 1) % n;
        }
        self.hand = i + 1;
        if let Some((_, i)) = best {
            let id = FlowId { idx: i as u32, generation: self.slots[i].generation };
            self.remove(id);
            self.evictions += 1;
        }
    }

    /// Removes every entry (a flush).
    pub fn clear(&mut self) {
        let limit = self.limit;
        let evictions = self.evictions;
        let generations: Vec<u32> = self.slots.iter().map(|s| s.generation).collect();
        *self = MegaflowCache::new(limit);
        self.evictions = evictions;
        // Keep generations so that old ids (held by an EMC) stay dead.
        for (i, g) in generations.into_iter().enumerate() {
            self.slots.push(Slot {
                generation: g,
                subtable: FREE,
                pos: 0,
                actions: None,
                packets: 0,
                bytes: 0,
                used: 0,
            });
            self.free.push(i as u32);
        }
    }

    /// Removes every entry not used since `now - max_idle`; returns how many.
    pub fn expire(&mut self, now: u64, max_idle: u64) -> usize {
        let dead: Vec<FlowId> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.subtable != FREE && now.saturating_sub(s.used) > max_idle)
            .map(|(i, s)| FlowId { idx: i as u32, generation: s.generation })
            .collect();
        for &id in &dead {
            self.remove(id);
        }
        dead.len()
    }

    /// Orders subtables most-hit first (call about once a second, like
    /// OVS's `dpcls_sort_subtable_vector`) and halves the counters so the
    /// ranking follows the recent traffic.
    pub fn rank_subtables(&mut self) {
        let st = &self.subtables;
        self.order.sort_by(|&a, &b| st[usize::from(b)].hits.cmp(&st[usize::from(a)].hits));
        for s in &mut self.subtables {
            s.hits /= 2;
        }
    }

    /// After the rules changed: hands every entry whose match overlaps one
    /// of `changed` (the matches of the rules added, modified or deleted)
    /// to `check`, which re-translates it and says whether it stands. The
    /// other entries are not re-translated: no packet they match can reach
    /// a changed rule.
    pub fn revalidate(
        &mut self,
        changed: &[Match],
        mut check: impl FnMut(&Match, &Actions) -> Revalidation,
    ) -> RevalidateStats {
        let mut stats = RevalidateStats::default();
        let mut remove = Vec::new();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.subtable == FREE {
                continue;
            }
            stats.scanned += 1;
            let m = self.subtables[usize::from(s.subtable)].matching(s.pos as usize);
            if !changed.iter().any(|c| c.overlaps(&m)) {
                continue;
            }
            stats.checked += 1;
            let Some(actions) = s.actions.as_ref() else { continue };
            match check(&m, actions) {
                Revalidation::Keep => {}
                Revalidation::Update(a) => {
                    self.slots[i].actions = Some(a);
                    stats.updated += 1;
                }
                Revalidation::Remove => remove.push(FlowId { idx: i as u32, generation: s.generation }),
            }
        }
        for id in remove {
            self.remove(id);
            stats.removed += 1;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Field;

    fn key(port: u32, dst: u16) -> FlowKey {
        FlowKey::ZERO.with(Field::InPort, u128::from(port)).with(Field::TpDst, u128::from(dst)).with(Field::TpSrc, 9)
    }

    #[test]
    fn install_lookup_remove_and_ids_do_not_resurrect() {
        let mut c = MegaflowCache::new(1000);
        let mask = Mask::of(&[Field::InPort, Field::TpDst]);
        let mut ids = Vec::new();
        for p in 0..200u16 {
            ids.push(c.install(&key(1, p), &mask, Actions::output(u32::from(p)), 0).unwrap());
        }
        assert_eq!(c.len(), 200);
        for p in 0..200u16 {
            let id = c.lookup(&key(1, p).with(Field::TpSrc, 1234)).unwrap();
            assert_eq!(c.actions(id).unwrap(), &Actions::output(u32::from(p)));
        }
        assert!(c.lookup(&key(2, 5)).is_none());
        // Remove every other entry: the survivors still resolve (swap-remove and backward shift).
        for (p, id) in ids.iter().enumerate() {
            if p % 2 == 0 {
                assert!(c.remove(*id));
            }
        }
        for p in 0..200u16 {
            let hit = c.lookup(&key(1, p));
            assert_eq!(hit.is_some(), p % 2 == 1, "port {p}");
            if let Some(id) = hit {
                assert_eq!(c.actions(id).unwrap(), &Actions::output(u32::from(p)));
            }
        }
        assert!(!c.remove(ids[0]));
        let again = c.install(&key(1, 0), &mask, Actions::output(0), 0).unwrap();
        assert_ne!(again, ids[0]);
        assert!(!c.contains(ids[0]));
        let dump: Vec<String> = c.iter().map(|m| m.to_string()).collect();
        assert_eq!(dump.len(), 101);
        assert!(dump.iter().any(|l| l.starts_with("in_port=1,tp_dst=0, packets:0") && l.ends_with("actions:output:0")));
    }

    #[test]
    fn overlapping_install_returns_the_existing_entry_and_batch_agrees() {
        let mut c = MegaflowCache::new(100);
        let a = c.install(&key(1, 80), &Mask::of(&[Field::InPort]), Actions::output(1), 0).unwrap();
        let b = c.install(&key(1, 80), &Mask::of(&[Field::InPort, Field::TpDst]), Actions::output(2), 0).unwrap();
        assert_eq!(a, b);
        assert_eq!(c.subtable_count(), 1);
        let _ = c.install(&key(2, 80), &Mask::of(&[Field::InPort, Field::TpDst]), Actions::output(2), 0).unwrap();
        let keys: Vec<FlowKey> = (0..BATCH as u32).map(|i| key(i % 4, 80 + (i as u16 % 2))).collect();
        let mut out = [None; BATCH];
        c.lookup_batch(&keys, &mut out);
        for (k, o) in keys.iter().zip(out) {
            assert_eq!(o, c.lookup(k));
        }
    }

    #[test]
    fn batch_in_a_subtable_beyond_the_prefetch_threshold_agrees() {
        // Enough entries for an index of at least PREFETCH_MIN_CELLS cells,
        // so that `lookup_batch` takes the prefetching pipeline.
        let mut c = MegaflowCache::new(1 << 20);
        let mask = Mask::of(&[Field::InPort, Field::TpDst]);
        let n = PREFETCH_MIN_CELLS as u32 / 2;
        for i in 0..n {
            c.install(&key(i, (i % 7) as u16), &mask, Actions::output(i), 0).unwrap();
        }
        assert!(c.subtables[0].table.len() >= PREFETCH_MIN_CELLS);
        // Hits and misses (wrong tp_dst), in odd batch sizes.
        let keys: Vec<FlowKey> =
            (0..1000u32).map(|j| key(j * 61 % n, (j * 61 % n % 7) as u16 + u16::from(j % 5 == 0))).collect();
        for len in [1, 7, 31, 32] {
            for chunk in keys.chunks(len) {
                let mut out = [None; BATCH];
                c.lookup_batch(chunk, &mut out);
                for (k, o) in chunk.iter().zip(out) {
                    assert_eq!(o, c.lookup(k));
                }
            }
        }
        let hits = keys.iter().filter(|k| c.lookup(k).is_some()).count();
        assert_eq!(hits, 800);
    }

    #[test]
    fn limit_evicts_least_recently_used_and_expiry_honours_now() {
        let mut c = MegaflowCache::new(16);
        let mask = Mask::of(&[Field::TpDst]);
        let ids: Vec<_> = (0..16u16).map(|p| c.install(&key(0, p), &mask, Actions::output(1), 100).unwrap()).collect();
        // Touch all but entry 3, later.
        for (i, id) in ids.iter().enumerate() {
            if i != 3 {
                c.account(*id, 1, 64, 200);
            }
        }
        c.install(&key(0, 99), &mask, Actions::output(1), 300).unwrap();
        assert_eq!(c.len(), 16);
        assert_eq!(c.evictions(), 1);
        assert!(!c.contains(ids[3]), "the idle entry in the sample is evicted");
        let stats = c.get(ids[0]).unwrap();
        assert_eq!((stats.packets, stats.bytes, stats.used), (1, 64, 200));
        assert_eq!(c.expire(1000, 750), 15);
        assert_eq!(c.len(), 1);
        assert_eq!(c.expire(1000, 750), 0);
    }

    #[test]
    fn revalidation_checks_only_overlapping_entries() {
        let mut c = MegaflowCache::new(100);
        let mask = Mask::of(&[Field::InPort, Field::TpDst]);
        for p in 0..10u16 {
            c.install(&key(1, p), &mask, Actions::output(1), 0).unwrap();
            c.install(&key(2, p), &mask, Actions::output(2), 0).unwrap();
        }
        let changed = [Match::new(&key(2, 0), &Mask::of(&[Field::InPort]))];
        let mut seen = 0;
        let st = c.revalidate(&changed, |m, _| {
            seen += 1;
            assert_eq!(m.key().in_port(), 2);
            if m.key().get(Field::TpDst) < 5 { Revalidation::Remove } else { Revalidation::Update(Actions::output(9)) }
        });
        assert_eq!(seen, 10);
        assert_eq!(st, RevalidateStats { scanned: 20, checked: 10, updated: 5, removed: 5 });
        assert_eq!(c.len(), 15);
        let id = c.lookup(&key(2, 7)).unwrap();
        assert_eq!(c.actions(id).unwrap(), &Actions::output(9));
    }
}
