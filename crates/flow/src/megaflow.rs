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
//! misses (a lookup at a million entries is bound by memory, and a lookup
//! over many subtables by the subtables that do *not* hold the key):
//! - every entry lives in one 128-byte, 128-byte-aligned `Slot` of a slab
//!   indexed by [`FlowId`]: in its first cache line its generation,
//!   actions, stats and its key in frame form (what a hit in the
//!   signature-match cache compares, `crate::smc`); in its second its
//!   masked key words (only the words its mask touches, like OVS's
//!   miniflows; up to [`INLINE`] of them, the rest of a wider mask in a
//!   side array). A hit reads one slot, and the accounting and the actions
//!   that follow it touch the same cache lines. (Before, the key words, the
//!   index and the stats were three separate arrays: three random lines per
//!   packet at a million flows.) Slots keep no hash: growing an index and
//!   removing an entry recompute it from the key words.
//! - a subtable's index is an array of 64-byte buckets of eight cells: a
//!   16-bit signature from the hash's top bits and a slot number each, and
//!   a count of the entries that overflowed past the bucket. A probe
//!   compares the eight signatures with one SSE2 compare (`simd`) and
//!   stops at the first bucket nobody overflowed past, so the usual
//!   subtable miss costs one hash, one bucket read and no unpredictable
//!   branch. The index is at most half full, so overflow is rare; a
//!   million-entry index is 16 MB.
//!
//! [`MegaflowCache::lookup_batch`] works subtable by subtable over the
//! whole batch, in passes: all hashes; every key's bucket compared into a
//! bit (maybe here, or certainly not); then only the maybes probed. When
//! the slab outgrows the caches the passes prefetch instead (each key's
//! bucket, then its candidate's slot), a whole pass ahead of the use, so
//! that the memory misses of a batch are in flight together.

use std::collections::HashMap;

use crate::actions::Actions;
use crate::frame::FrameKey;
use crate::hash::{MULTIPLIERS, Word, hash_masked, hash_n};
use crate::key::{FlowKey, KEY_WORDS, Mask, Match};
use crate::smc::{FRAME_WORDS, FrameForm};
use crate::{prefetch, simd};

/// The most keys [`MegaflowCache::lookup_batch`] takes at once (a datapath batch).
pub const BATCH: usize = 32;
/// The most subtables (distinct masks) one cache holds.
pub const MAX_SUBTABLES: usize = 1024;
/// The default flow limit (OVS's configured `flow-limit`).
pub const DEFAULT_FLOW_LIMIT: usize = 200_000;
/// The highest flow limit: slot numbers are 32-bit.
pub const MAX_FLOW_LIMIT: usize = u32::MAX as usize - 1;
/// Masked key words a slot holds itself; a mask that touches more words
/// keeps the rest in a side array (read only by such subtables).
pub const INLINE: usize = 8;
/// Slots from which [`MegaflowCache::lookup_batch`] prefetches (1 MiB of
/// slots: beyond the L2 cache of the machines we measure on).
const PREFETCH_MIN_SLOTS: usize = 1 << 13;

/// Cells per bucket.
const CELLS: usize = 8;

/// The positions of the set bits of `m`, lowest first (the keys of a
/// batch named by a bit mask), each below [`BATCH`].
#[inline(always)]
pub(crate) fn bits(mut m: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        if m == 0 {
            return None;
        }
        let i = m.trailing_zeros() as usize % BATCH;
        m &= m - 1;
        Some(i)
    })
}

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

    /// The slot it names.
    #[inline(always)]
    pub(crate) fn slot(self) -> u32 {
        self.idx
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

/// One entry, in two adjacent cache lines. The first holds what a hit
/// reads and writes: generation, actions, counters, and the entry's key in
/// frame form (what a signature-match cache hit compares, `crate::smc`).
/// The second holds the masked flow-key words (what a flow-key lookup
/// compares).
#[repr(C, align(128))]
struct Slot {
    generation: u32,
    /// Subtable index; [`FREE`] when the slot is free.
    subtable: u16,
    /// 1 when `frame` holds the entry's frame form (its subtable has one,
    /// and frames of the common shape can match it), else 0.
    framed: u16,
    actions: Option<Actions>,
    packets: u64,
    bytes: u64,
    used: u64,
    /// The packed frame-key words of the frames it matches
    /// ([`FrameForm::entry`]); for an entry of a subtable wider than
    /// [`INLINE`] words (which has no frame form), its key words from
    /// [`INLINE`] on.
    frame: [u64; FRAME_WORDS],
    /// The masked words its subtable's mask touches, in key order, then zeros.
    words: [u64; INLINE],
}

const _: () = assert!(core::mem::size_of::<Slot>() == 128);
const _: () = assert!(core::mem::offset_of!(Slot, words) == 64);

const FREE: u16 = u16::MAX;
/// Key words beyond those a slot holds ([`INLINE`], then [`FRAME_WORDS`]
/// in place of a frame form), kept in the side array.
const WIDE: usize = KEY_WORDS - INLINE - FRAME_WORDS;

/// Word `j` (at least [`INLINE`]) of the key of a wide entry in slot `s`,
/// whose side-array words are `wide`.
#[inline(always)]
fn wide_word(s: &Slot, wide: Option<&[u64; WIDE]>, j: usize) -> u64 {
    match j - INLINE {
        f if f < FRAME_WORDS => s.frame[f],
        f => wide.map_or(0, |w| w[(f - FRAME_WORDS) % WIDE]),
    }
}

impl Slot {
    const EMPTY: Slot = Slot {
        generation: 0,
        subtable: FREE,
        framed: 0,
        actions: None,
        packets: 0,
        bytes: 0,
        used: 0,
        frame: [0; FRAME_WORDS],
        words: [0; INLINE],
    };
}

/// Eight index cells, one cache line: their signatures (all a probe
/// compares to learn that a key is not here) and their slot numbers.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    /// 16-bit signatures from the hash's top bits (0 in an empty cell).
    sigs: [u16; CELLS],
    /// `slot + 1` per cell; 0 when empty.
    cells: [u32; CELLS],
    /// Entries stored beyond this bucket because it was full.
    overflow: u32,
}

const EMPTY_BUCKET: Bucket = Bucket { sigs: [0; CELLS], cells: [0; CELLS], overflow: 0 };

/// A key's signature: the hash's top 16 bits. A key whose signature is 0
/// also "matches" the empty cells of its bucket (their slot number, 0,
/// names no slot, so the compare rejects them): rare, and cheaper than
/// keeping signatures non-zero on every probe.
#[inline(always)]
fn signature(h: u64) -> u16 {
    (h >> 48) as u16
}

/// Bit `j` set: cell `j` has signature `sig`.
#[inline(always)]
fn matching_cells(b: &Bucket, sig: u16) -> u32 {
    simd::lanes_equal(&b.sigs, sig)
}

/// Bit `j` set: cell `j` is empty.
#[inline(always)]
fn empty_cells(b: &Bucket) -> u32 {
    let mut m = 0;
    for (j, &c) in b.cells.iter().enumerate() {
        m |= u32::from(c == 0) << j;
    }
    m
}

/// `repr(C)`: what a probe reads first (index, word count, positions,
/// masks, multipliers) comes first; the full mask last.
#[repr(C)]
struct Subtable {
    buckets: Vec<Bucket>,
    n: usize,
    hits: u64,
    words: [Word; KEY_WORDS],
    /// The mask's non-zero words, compact (`mw[j]` masks word `words[j]`).
    mw: [u64; KEY_WORDS],
    /// The hash's multipliers (copied here to sit next to the masks).
    mk: [u64; KEY_WORDS],
    len: usize,
    /// The mask in frame form, when it packs (`crate::smc`).
    frame: Option<FrameForm>,
    mask: Mask,
}

/// The slab and the side array of wide keys, borrowed together by probes.
struct Entries<'a> {
    slots: &'a [Slot],
    wide: &'a [[u64; WIDE]],
}

/// A batch lookup's per-key scratch, set up once per batch and reused by
/// every subtable it visits (instead of once per subtable).
struct Scratch {
    hashes: [u64; BATCH],
    cand: [u32; BATCH],
}

/// The first subtable of a lookup, started key by key as a caller builds
/// a batch's keys (see [`MegaflowCache::early`]).
pub(crate) struct Early<'a> {
    first: &'a Subtable,
}

impl Early<'_> {
    /// `key`'s hash in the first subtable, its bucket asked for.
    #[inline(always)]
    pub(crate) fn start(&self, key: &FlowKey) -> u64 {
        let h = self.first.hash(key);
        if let Some(b) = self.first.buckets.get(h as usize & (self.first.buckets.len() - 1)) {
            prefetch::read(b);
        }
        h
    }
}

impl Subtable {
    fn new(mask: Mask) -> Subtable {
        let mut words = [Word::W0; KEY_WORDS];
        let mut mw = [0u64; KEY_WORDS];
        let mut n = 0;
        for (i, &w) in mask.words().iter().enumerate() {
            if w != 0 {
                words[n] = Word::ALL[i];
                mw[n] = w;
                n += 1;
            }
        }
        Subtable {
            buckets: vec![EMPTY_BUCKET; 2],
            n,
            hits: 0,
            words,
            mw,
            mk: MULTIPLIERS,
            len: 0,
            // A wide entry keeps its words beyond INLINE where a frame
            // form would go.
            frame: if n <= INLINE { FrameForm::of(&mask) } else { None },
            mask,
        }
    }

    #[inline(always)]
    fn hash(&self, key: &FlowKey) -> u64 {
        hash_masked(key.words(), &self.words, &self.mw, &self.mk, self.n)
    }

    /// The hashes of the pending keys of a batch, into `hashes`.
    #[inline(always)]
    fn hash_pending(&self, keys: &[FlowKey], pending: u64, hashes: &mut [u64; BATCH]) {
        for i in bits(pending) {
            hashes[i] = self.hash(&keys[i]);
        }
    }

    /// The masked words of `key`, as a slot stores them.
    fn masked_words(&self, key: &FlowKey) -> [u64; KEY_WORDS] {
        let k = key.words();
        let mut out = [0u64; KEY_WORDS];
        for j in 0..self.n {
            out[j] = k[self.words[j] as usize] & self.mw[j];
        }
        out
    }

    /// Whether slot `idx` holds `key` under this subtable's mask.
    #[inline(always)]
    fn entry_eq(&self, e: &Entries<'_>, idx: usize, key: &FlowKey) -> bool {
        let Some(s) = e.slots.get(idx) else { return false };
        let k = key.words();
        let mut diff = 0;
        let inline = self.n.min(INLINE);
        for j in 0..inline {
            diff |= s.words[j] ^ (k[self.words[j] as usize] & self.mw[j]);
        }
        if self.n > INLINE {
            let w = e.wide.get(idx);
            if self.n > INLINE + FRAME_WORDS && w.is_none() {
                return false;
            }
            for j in INLINE..self.n {
                diff |= wide_word(s, w, j) ^ (k[self.words[j] as usize] & self.mw[j]);
            }
        }
        diff == 0
    }

    /// The slot holding `key` (whose hash is `h`), if any, for a mask of
    /// any width ([`probe_n`](Self::probe_n) unrolls the usual ones).
    #[inline(always)]
    fn probe(&self, e: &Entries<'_>, key: &FlowKey, h: u64) -> Option<u32> {
        self.probe_n::<0>(e, key, h)
    }

    /// [`probe`](Self::probe) from bucket `b`, whose matching cells are `m`.
    #[inline(never)]
    fn probe_from(&self, e: &Entries<'_>, key: &FlowKey, sig: u16, mut b: usize, mut m: u32) -> Option<u32> {
        let cap = self.buckets.len() - 1;
        loop {
            let bucket = &self.buckets[b];
            while m != 0 {
                let j = m.trailing_zeros() as usize % CELLS;
                m &= m - 1;
                let idx = bucket.cells[j].wrapping_sub(1);
                if self.entry_eq(e, idx as usize, key) {
                    return Some(idx);
                }
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = (b + 1) & cap;
            m = matching_cells(&self.buckets[b], sig);
        }
    }

    /// The slot holding `key`, if any: its hash and the probe, unrolled
    /// for the usual widths as [`lookup_deep`](Self::lookup_deep) is. (With
    /// the general loops, a lookup of one key over ten subtables took 509
    /// instructions instead of 452; callgrind on `examples/megaflow_profile
    /// 10`.)
    #[inline(always)]
    fn find(&self, e: &Entries<'_>, key: &FlowKey) -> Option<u32> {
        match self.n {
            0..=4 => self.find_n::<4>(e, key),
            5 => self.find_n::<5>(e, key),
            6 => self.find_n::<6>(e, key),
            7 | 8 => self.find_n::<8>(e, key),
            _ => self.find_n::<0>(e, key),
        }
    }

    /// [`find`](Self::find) for a mask of at most `N` (≤ 8) words (0: any
    /// width): the hash and the first candidate's compare, unrolled.
    #[inline(always)]
    fn find_n<const N: usize>(&self, e: &Entries<'_>, key: &FlowKey) -> Option<u32> {
        self.probe_n::<N>(e, key, self.hash_n::<N>(key))
    }

    /// [`hash`](Self::hash) for a mask of at most `N` words (0: any).
    #[inline(always)]
    fn hash_n<const N: usize>(&self, key: &FlowKey) -> u64 {
        if N == 0 { self.hash(key) } else { hash_n::<N>(key.words(), &self.words, &self.mw, &self.mk) }
    }

    /// The slot holding `key` (whose hash is `h`), if any, for a mask of
    /// at most `N` words (0: any width), the first candidate's compare
    /// unrolled. The usual answer in a tuple-space search, "not in this
    /// subtable", costs one bucket read and two tests; candidates and
    /// overflow go out of line.
    #[inline(always)]
    fn probe_n<const N: usize>(&self, e: &Entries<'_>, key: &FlowKey, h: u64) -> Option<u32> {
        let sig = signature(h);
        let b = h as usize & (self.buckets.len() - 1);
        let bucket = self.buckets.get(b)?;
        let m = matching_cells(bucket, sig);
        if m == 0 && bucket.overflow == 0 {
            return None;
        }
        // The usual hit: one candidate, and it is the key.
        if m != 0 {
            let idx = bucket.cells[m.trailing_zeros() as usize % CELLS].wrapping_sub(1);
            let eq = if N == 0 {
                self.entry_eq(e, idx as usize, key)
            } else {
                e.slots.get(idx as usize).is_some_and(|s| self.inline_eq::<N>(s, key))
            };
            if eq {
                return Some(idx);
            }
        }
        self.probe_from(e, key, sig, b, m & m.wrapping_sub(1))
    }

    /// The pending keys of a batch when the slab fits the caches, in three
    /// passes, no prefetch: all hashes; then every key's bucket compared,
    /// branch-free, into a bit per key that may be here (a signature
    /// matched, or the bucket overflowed); then only those keys probed. The
    /// keys are independent, so the CPU overlaps each pass's work, and the
    /// one unpredictable branch (is the key in this subtable?) is taken once
    /// per candidate instead of once per key. Unrolled for the usual widths,
    /// as [`find`](Self::find) is. Returns the keys still pending.
    #[inline(always)]
    fn lookup_shallow(
        &mut self,
        e: &Entries<'_>,
        keys: &[FlowKey],
        pending: u64,
        hashes: &mut [u64; BATCH],
        out: &mut [Option<FlowId>],
    ) -> u64 {
        match self.n {
            0..=4 => self.lookup_shallow_n::<4>(e, keys, pending, hashes, out),
            5 => self.lookup_shallow_n::<5>(e, keys, pending, hashes, out),
            6 => self.lookup_shallow_n::<6>(e, keys, pending, hashes, out),
            7 | 8 => self.lookup_shallow_n::<8>(e, keys, pending, hashes, out),
            _ => self.lookup_shallow_n::<0>(e, keys, pending, hashes, out),
        }
    }

    /// [`lookup_shallow`](Self::lookup_shallow) for a mask of at most `N`
    /// words (0: any).
    #[inline(always)]
    fn lookup_shallow_n<const N: usize>(
        &mut self,
        e: &Entries<'_>,
        keys: &[FlowKey],
        mut pending: u64,
        hashes: &mut [u64; BATCH],
        out: &mut [Option<FlowId>],
    ) -> u64 {
        let cap = self.buckets.len() - 1;
        for i in bits(pending) {
            hashes[i] = self.hash_n::<N>(&keys[i]);
        }
        let mut maybe = 0u64;
        for i in bits(pending) {
            let h = hashes[i];
            let b = &self.buckets[h as usize & cap];
            let here = matching_cells(b, signature(h)) | b.overflow;
            maybe |= u64::from(here != 0) << i;
        }
        for i in bits(maybe) {
            if let Some(idx) = self.probe_n::<N>(e, &keys[i], hashes[i]) {
                out[i] = Some(FlowId { idx, generation: e.slots.get(idx as usize).map_or(0, |s| s.generation) });
                pending &= !(1 << i);
                self.hits += 1;
            }
        }
        pending
    }

    /// The pending keys of a batch when the slab is too big for the
    /// caches, in three passes over the batch (group prefetching): hash
    /// every key and prefetch its bucket (or take both from `early`, done
    /// as the keys were built); read every bucket and prefetch its first
    /// candidate's slot (both lines); compare every key that may be here
    /// with its candidate. Between a prefetch and its use lies a whole pass
    /// over the batch (hundreds of nanoseconds), longer than a DRAM miss
    /// that also walks the page tables in a virtual machine, and the misses
    /// of a pass are all in flight together. Returns the keys still pending.
    #[inline(never)]
    fn lookup_deep(
        &mut self,
        e: &Entries<'_>,
        keys: &[FlowKey],
        pending: u64,
        early: Option<&[u64; BATCH]>,
        scratch: &mut Scratch,
        out: &mut [Option<FlowId>],
    ) -> u64 {
        // The compare unrolled for the usual widths (words past `n` are
        // zero in both the slot and the mask, so comparing them is free of
        // effect), as `hash_masked` unrolls the hash.
        if self.n <= 4 {
            self.lookup_deep_n::<4>(e, keys, pending, early, scratch, out)
        } else if self.n == 5 {
            self.lookup_deep_n::<5>(e, keys, pending, early, scratch, out)
        } else if self.n <= 6 {
            self.lookup_deep_n::<6>(e, keys, pending, early, scratch, out)
        } else if self.n <= 8 {
            self.lookup_deep_n::<8>(e, keys, pending, early, scratch, out)
        } else {
            self.lookup_deep_n::<0>(e, keys, pending, early, scratch, out)
        }
    }

    /// [`lookup_deep`](Self::lookup_deep) comparing `N` inline words (0:
    /// all of them, and the wide ones). The candidate found while
    /// prefetching is kept, so the last pass compares it straight away;
    /// a key that may be here but is not its first candidate (rare) takes
    /// the full probe.
    #[inline(always)]
    fn lookup_deep_n<const N: usize>(
        &mut self,
        e: &Entries<'_>,
        keys: &[FlowKey],
        mut pending: u64,
        early: Option<&[u64; BATCH]>,
        scratch: &mut Scratch,
        out: &mut [Option<FlowId>],
    ) -> u64 {
        let cap = self.buckets.len() - 1;
        let hashes = match early {
            // Hashed, and the buckets asked for, as the keys were built.
            Some(h) => h,
            None => {
                self.hash_pending(keys, pending, &mut scratch.hashes);
                for i in bits(pending) {
                    prefetch::read(&self.buckets[scratch.hashes[i] as usize & cap]);
                }
                &scratch.hashes
            }
        };
        // Per key: its first candidate (or none: every pending key's is
        // written, the scratch holds a previous subtable's), and whether
        // it may be here at all (a candidate, or overflow).
        let cand = &mut scratch.cand;
        let mut maybe = 0u64;
        for i in bits(pending) {
            let h = hashes[i];
            let bucket = &self.buckets[h as usize & cap];
            let c = matching_cells(bucket, signature(h));
            cand[i] = u32::MAX;
            if c != 0 {
                let idx = bucket.cells[c.trailing_zeros() as usize % CELLS].wrapping_sub(1);
                cand[i] = idx;
                if let Some(s) = e.slots.get(idx as usize) {
                    prefetch::read(s);
                    prefetch::read(&s.words[INLINE - 1]);
                }
            }
            maybe |= u64::from(c | bucket.overflow != 0) << i;
        }
        let before = pending;
        for i in bits(maybe) {
            let key = &keys[i];
            let idx = cand[i];
            let hit = match e.slots.get(idx as usize) {
                Some(s) if if N > 0 { self.inline_eq::<N>(s, key) } else { self.entry_eq(e, idx as usize, key) } => {
                    Some(FlowId { idx, generation: s.generation })
                }
                // Not the first candidate: the others and the overflow, or
                // not here (rare: a signature matched by chance).
                _ => self
                    .probe(e, key, hashes[i])
                    .map(|idx| FlowId { idx, generation: e.slots.get(idx as usize).map_or(0, |s| s.generation) }),
            };
            if hit.is_some() {
                out[i] = hit;
                pending &= !(1 << i);
            }
        }
        self.hits += u64::from((before & !pending).count_ones());
        pending
    }

    /// Whether slot `s` holds `key`, comparing the first `N` inline words
    /// only: right when the mask has at most `N` words (`N` ≤ [`INLINE`]).
    #[inline(always)]
    fn inline_eq<const N: usize>(&self, s: &Slot, key: &FlowKey) -> bool {
        let k = key.words();
        let mut diff = 0;
        for j in 0..N.min(INLINE) {
            diff |= s.words[j] ^ (k[self.words[j] as usize] & self.mw[j]);
        }
        diff == 0
    }

    /// Adds slot `idx` (hash `h`) to the index, growing it first past half full.
    fn insert(&mut self, e: &Entries<'_>, h: u64, idx: u32) {
        if (self.len + 1) * 2 > self.buckets.len() * CELLS {
            self.grow(e);
        }
        self.put(h, idx);
        self.len += 1;
    }

    fn put(&mut self, h: u64, idx: u32) {
        let sig = signature(h);
        let cap = self.buckets.len() - 1;
        let mut b = h as usize & cap;
        loop {
            let bucket = &mut self.buckets[b];
            let free = empty_cells(bucket);
            if free != 0 {
                let j = free.trailing_zeros() as usize % CELLS;
                bucket.sigs[j] = sig;
                bucket.cells[j] = idx + 1;
                return;
            }
            bucket.overflow += 1;
            b = (b + 1) & cap;
        }
    }

    fn grow(&mut self, e: &Entries<'_>) {
        let new_len = (self.buckets.len() * 2).max(2);
        let old = core::mem::replace(&mut self.buckets, vec![EMPTY_BUCKET; new_len]);
        for bucket in &old {
            for &c in &bucket.cells {
                if c != 0 {
                    let idx = c as usize - 1;
                    self.put(self.hash(&self.slot_key(&e.slots[idx], e.wide.get(idx))), c - 1);
                }
            }
        }
    }

    /// Takes slot `idx` (hash `h`) out of the index, and the overflow
    /// counts it left on the buckets it passed.
    fn remove(&mut self, h: u64, idx: u32) {
        let sig = signature(h);
        let cap = self.buckets.len() - 1;
        let home = h as usize & cap;
        let mut b = home;
        for _ in 0..=cap {
            let bucket = &mut self.buckets[b];
            if let Some(j) = (0..CELLS).find(|&j| bucket.sigs[j] == sig && bucket.cells[j] == idx + 1) {
                bucket.sigs[j] = 0;
                bucket.cells[j] = 0;
                let mut p = home;
                while p != b {
                    self.buckets[p].overflow -= 1;
                    p = (p + 1) & cap;
                }
                self.len -= 1;
                return;
            }
            b = (b + 1) & cap;
        }
    }

    /// The slots of this subtable's entries.
    fn slot_numbers(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets.iter().flat_map(|b| b.cells.iter()).filter(|&&c| c != 0).map(|&c| c - 1)
    }

    /// The masked key of the entry in slot `s` (its wide words in `wide`).
    /// (Slots keep no hash: growing and removing recompute it from this.)
    fn slot_key(&self, s: &Slot, wide: Option<&[u64; WIDE]>) -> FlowKey {
        let mut w = [0u64; KEY_WORDS];
        for (j, &i) in self.words[..self.n].iter().enumerate() {
            w[i as usize] = if j < INLINE { s.words[j] } else { wide_word(s, wide, j) };
        }
        FlowKey::from_words(w)
    }

    fn matching(&self, s: &Slot, wide: Option<&[u64; WIDE]>) -> Match {
        Match::new(&self.slot_key(s, wide), &self.mask)
    }
}

/// The megaflow cache (see the module docs).
pub struct MegaflowCache {
    slots: Vec<Slot>,
    /// Key words beyond [`INLINE`], by slot; empty until a subtable needs them.
    wide: Vec<[u64; WIDE]>,
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
    /// An empty cache holding at most `limit` entries (at most [`MAX_FLOW_LIMIT`]).
    pub fn new(limit: usize) -> MegaflowCache {
        MegaflowCache {
            slots: Vec::new(),
            wide: Vec::new(),
            free: Vec::new(),
            subtables: Vec::new(),
            by_mask: HashMap::new(),
            order: Vec::new(),
            len: 0,
            limit: limit.min(MAX_FLOW_LIMIT),
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

    /// Changes the flow limit (evicting on the next installs if lowered),
    /// at most [`MAX_FLOW_LIMIT`].
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(MAX_FLOW_LIMIT);
    }

    /// Entries evicted by the flow limit so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    #[inline(always)]
    fn entries(&self) -> Entries<'_> {
        Entries { slots: &self.slots, wide: &self.wide }
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
            matching: st.matching(s, self.wide.get(id.idx as usize)),
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

    #[inline(always)]
    fn id_of(&self, idx: u32) -> FlowId {
        FlowId { idx, generation: self.slots.get(idx as usize).map_or(0, |s| s.generation) }
    }

    /// The entry matching `key`, if any. Counts a hit on its subtable; the
    /// caller accounts packets with [`account`](Self::account).
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey) -> Option<FlowId> {
        let e = Entries { slots: &self.slots, wide: &self.wide };
        for &si in &self.order {
            let st = &mut self.subtables[usize::from(si)];
            if let Some(idx) = st.find(&e, key) {
                st.hits += 1;
                return Some(FlowId { idx, generation: e.slots.get(idx as usize).map_or(0, |s| s.generation) });
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
    /// Per subtable, in passes over the batch (see the module docs); with
    /// a slab beyond the caches, prefetching passes
    /// (`Subtable::lookup_deep`) so that at a million entries the memory
    /// misses of the batch are in flight together instead of one after the
    /// other, down to the entry's slot (which the caller's
    /// [`account`](Self::account) and [`actions`](Self::actions) read next).
    pub(crate) fn lookup_pending(&mut self, keys: &[FlowKey], pending: u64, out: &mut [Option<FlowId>]) {
        self.lookup_started(keys, pending, None, out);
    }

    /// For a caller that builds a batch's keys one at a time: when the
    /// slab is beyond the caches, the subtable a lookup visits first, so
    /// that each key's bucket there is asked for as soon as the key exists
    /// ([`Early::start`]) and arrives while the next keys are built. The
    /// hashes go back to [`lookup_started`](Self::lookup_started).
    #[inline]
    pub(crate) fn early(&self) -> Option<Early<'_>> {
        let first = *self.order.first()?;
        self.deep().then(|| Early { first: &self.subtables[usize::from(first)] })
    }

    /// Whether the slab is beyond the caches, so that lookups prefetch.
    #[inline]
    pub(crate) fn deep(&self) -> bool {
        self.slots.len() >= PREFETCH_MIN_SLOTS
    }

    /// [`lookup_pending`](Self::lookup_pending), given the first
    /// subtable's hash of every pending key from [`early`](Self::early)
    /// (whose buckets were prefetched then), or `None`.
    pub(crate) fn lookup_started(
        &mut self,
        keys: &[FlowKey],
        pending: u64,
        early: Option<&[u64; BATCH]>,
        out: &mut [Option<FlowId>],
    ) {
        let n = keys.len().min(out.len()).min(BATCH);
        let mut pending = pending & ((1u64 << n) - 1);
        let mut scratch = Scratch { hashes: [0; BATCH], cand: [u32::MAX; BATCH] };
        let e = Entries { slots: &self.slots, wide: &self.wide };
        let deep = self.deep();
        // `early` hashed for the first subtable in `order`, and only when deep.
        let mut early = early.filter(|_| deep);
        for &si in &self.order {
            if pending == 0 {
                break;
            }
            let st = &mut self.subtables[usize::from(si)];
            pending = if deep {
                st.lookup_deep(&e, keys, pending, early.take(), &mut scratch, out)
            } else {
                st.lookup_shallow(&e, keys, pending, &mut scratch.hashes, out)
            };
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

    /// The entry in slot `idx` if it matches the frame whose (untagged)
    /// frame key is `k`: its frame form compared (`crate::smc`), one cache
    /// line of the slot read. A signature-match cache cell names the slot.
    #[inline(always)]
    pub(crate) fn find_framed(&self, k: &FrameKey, idx: u32) -> Option<FlowId> {
        let s = self.slots.get(idx as usize)?;
        // A free slot's `framed` is 0.
        if s.framed == 0 {
            return None;
        }
        let p = self.subtables.get(usize::from(s.subtable))?.frame.as_ref()?.pack(k);
        let d = (p[0] ^ s.frame[0]) | (p[1] ^ s.frame[1]) | (p[2] ^ s.frame[2]);
        (d == 0).then_some(FlowId { idx, generation: s.generation })
    }

    /// Asks for the first cache line of slot `idx` (what
    /// [`find_framed`](Self::find_framed) and [`account`](Self::account) read).
    #[inline(always)]
    pub(crate) fn prefetch_slot(&self, idx: u32) {
        if let Some(s) = self.slots.get(idx as usize) {
            prefetch::read(s);
        }
    }

    /// True when entry `id` has a frame form (a signature-match cache cell
    /// naming it can hit).
    #[inline(always)]
    pub(crate) fn framed(&self, id: FlowId) -> bool {
        self.slot(id).is_some_and(|s| s.framed != 0)
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
        let e = self.entries();
        for &si in &self.order {
            if let Some(idx) = self.subtables[usize::from(si)].find(&e, key) {
                return Ok(self.id_of(idx));
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
                self.slots.push(Slot::EMPTY);
                (self.slots.len() - 1) as u32
            }
        };
        let st = &self.subtables[usize::from(si)];
        let h = st.hash(key);
        let words = st.masked_words(key);
        if st.n > INLINE + FRAME_WORDS {
            if self.wide.len() < self.slots.len() {
                self.wide.resize(self.slots.len(), [0; WIDE]);
            }
            self.wide[idx as usize].copy_from_slice(&words[INLINE + FRAME_WORDS..]);
        }
        let slot = &mut self.slots[idx as usize];
        slot.generation = slot.generation.wrapping_add(1);
        if slot.generation == 0 {
            slot.generation = 1;
        }
        slot.subtable = si;
        let frame = st.frame.and_then(|f| f.entry(mask, &key.masked(mask)));
        slot.framed = u16::from(frame.is_some());
        slot.frame = match frame {
            Some(f) => f,
            None => {
                let mut more = [0u64; FRAME_WORDS];
                more.copy_from_slice(&words[INLINE..INLINE + FRAME_WORDS]);
                more
            }
        };
        slot.actions = Some(actions);
        slot.packets = 0;
        slot.bytes = 0;
        slot.used = now;
        slot.words.copy_from_slice(&words[..INLINE]);
        let id = FlowId { idx, generation: slot.generation };
        let e = Entries { slots: &self.slots, wide: &self.wide };
        self.subtables[usize::from(si)].insert(&e, h, idx);
        self.len += 1;
        Ok(id)
    }

    /// Removes entry `id`; false if it was not installed.
    pub fn remove(&mut self, id: FlowId) -> bool {
        let Some(s) = self.slot(id) else { return false };
        let si = s.subtable;
        let st = &self.subtables[usize::from(si)];
        let h = st.hash(&st.slot_key(s, self.wide.get(id.idx as usize)));
        let st = &mut self.subtables[usize::from(si)];
        st.remove(h, id.idx);
        let empty = st.len == 0;
        let s = &mut self.slots[id.idx as usize];
        s.subtable = FREE;
        s.framed = 0;
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
            for idx in moved.slot_numbers() {
                if let Some(s) = self.slots.get_mut(idx as usize) {
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
            self.slots.push(Slot { generation: g, ..Slot::EMPTY });
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
            let m = self.subtables[usize::from(s.subtable)].matching(s, self.wide.get(i));
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

    /// Masks over `in_port` and `tp_dst` (and more), one per compare
    /// width the deep lookup unrolls: 2 words (up to 4), 5, 6, 8, and all
    /// of them (wider than a slot holds inline).
    fn one_mask_per_width() -> [Mask; 5] {
        let six = Mask::of(&[Field::InPort, Field::TpDst, Field::EthType, Field::Vlan0, Field::EthDst, Field::Ipv4Src]);
        [
            Mask::of(&[Field::InPort, Field::TpDst]),
            Mask::of(&[Field::InPort, Field::TpDst, Field::EthType, Field::EthDst, Field::Ipv4Src]),
            six,
            six.with(Field::Ipv4Dst, u128::MAX).with(Field::Reg0, u128::MAX),
            Mask::from_words([u64::MAX; KEY_WORDS]),
        ]
    }

    /// Entries of masks wider than a slot's inline words keep the rest in
    /// the slot's frame-form words, then the side array: every word counts.
    #[test]
    fn wide_entries_tell_every_word_apart() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Nine words (one in the frame-form words), eleven (all three, no
        // side array), all of them.
        let first = |n: usize| Mask::from_words(core::array::from_fn(|i| if i < n { u64::MAX } else { 0 }));
        for mask in [first(9), first(11), first(KEY_WORDS)] {
            let mut c = MegaflowCache::new(1 << 20);
            let keys: Vec<FlowKey> = (0..300).map(|_| FlowKey::from_words(core::array::from_fn(|_| next()))).collect();
            let ids: Vec<FlowId> = keys.iter().map(|k| c.install(k, &mask, Actions::output(1), 0).unwrap()).collect();
            for (k, id) in keys.iter().zip(&ids) {
                assert_eq!(c.lookup(k), Some(*id));
                assert_eq!(*c.get(*id).unwrap().matching.key(), k.masked(&mask));
                for w in (0..KEY_WORDS).filter(|&w| mask.words()[w] != 0) {
                    let mut words = *k.words();
                    words[w] ^= 1 << (next() % 64);
                    assert_eq!(c.lookup(&FlowKey::from_words(words)), None, "word {w}");
                }
            }
            for id in ids {
                assert!(c.remove(id));
            }
            assert!(c.is_empty());
        }
    }

    #[test]
    fn batch_in_a_subtable_beyond_the_prefetch_threshold_agrees() {
        // Enough entries for a slab of at least PREFETCH_MIN_SLOTS slots,
        // so that `lookup_batch` takes the prefetching pipeline; one mask
        // per compare width it unrolls (up to 4 words, 5, 6, 8, and a mask
        // wider than a slot holds inline).
        let masks = one_mask_per_width();
        let mut widths = Vec::new();
        for mask in &masks {
            let mut c = MegaflowCache::new(1 << 20);
            let n = PREFETCH_MIN_SLOTS as u32 * 2;
            for i in 0..n {
                c.install(&key(i, (i % 7) as u16), mask, Actions::output(i), 0).unwrap();
            }
            assert!(c.deep());
            widths.push(c.subtables[0].n);
            // Hits and misses (wrong tp_dst), in odd batch sizes.
            let keys: Vec<FlowKey> =
                (0..1000u32).map(|j| key(j * 61 % n, (j * 61 % n % 7) as u16 + u16::from(j % 5 == 0))).collect();
            for len in [1, 7, 31, 32] {
                for chunk in keys.chunks(len) {
                    let mut out = [None; BATCH];
                    c.lookup_batch(chunk, &mut out);
                    for (k, o) in chunk.iter().zip(out) {
                        assert_eq!(o, c.lookup(k), "{mask}");
                    }
                }
            }
            let hits = keys.iter().filter(|k| c.lookup(k).is_some()).count();
            assert_eq!(hits, 800, "{mask}");
        }
        assert_eq!(widths, [2, 5, 6, 8, KEY_WORDS]);
    }

    #[test]
    fn every_unrolled_compare_tells_colliding_keys_apart() {
        // The subtable hashes only its first word (the input port), so the
        // 256 keys of a port share a bucket chain and a signature, and
        // only the compare tells them apart; they differ in tp_dst alone,
        // the last word the compare reads. One mask per unrolled width.
        let masks = one_mask_per_width();
        for mask in &masks {
            let mut c = MegaflowCache::new(1 << 20);
            // The subtable exists from its first entry (hashed the usual
            // way, and never looked up); the rest hash the weak way.
            c.install(&key(1 << 20, 0), mask, Actions::drop_all(), 0).unwrap();
            c.subtables[0].mk = [0; KEY_WORDS];
            c.subtables[0].mk[0] = MULTIPLIERS[0];
            let mut ids = HashMap::new();
            let keys: Vec<FlowKey> = (0..600u32).map(|j| key(j * 7 % 64, (j * 13 % 300) as u16)).collect();
            // Checked with the slab in the caches (the shallow batch path),
            // then beyond them (the deep one).
            for (upto, deep) in [(PREFETCH_MIN_SLOTS as u32 / 2, false), (PREFETCH_MIN_SLOTS as u32 * 2, true)] {
                for i in ids.len() as u32..upto {
                    let k = key(i % 64, (i / 64) as u16);
                    ids.insert(k, c.install(&k, mask, Actions::output(i), 0).unwrap());
                }
                assert_eq!(c.deep(), deep);
                let mut out = [None; BATCH];
                for chunk in keys.chunks(BATCH) {
                    c.lookup_batch(chunk, &mut out);
                    for (k, o) in chunk.iter().zip(out) {
                        assert_eq!(o, ids.get(k).copied(), "{mask}: {k}");
                        assert_eq!(c.lookup(k), o, "{mask}: {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn churn_agrees_with_a_map_through_growth_overflow_and_removal() {
        // Random installs and removals over two masks (one wider than a
        // slot holds inline), checked against a plain map after every
        // step that could disturb the index: growth, overflow chains,
        // removals from the middle of a chain.
        let mut c = MegaflowCache::new(1 << 20);
        let narrow = Mask::of(&[Field::InPort, Field::TpDst]);
        let wide = Mask::from_words([u64::MAX; KEY_WORDS]);
        let mut live: HashMap<(u32, u16, bool), FlowId> = HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Wide keys on other ports, so that no key falls under both masks.
        let k = |p: u32, d: u16, w: bool| {
            if w { key(p + 100_000, d).with(Field::Reg3, 7).with(Field::NdTarget, 1 << 100) } else { key(p, d) }
        };
        for step in 0..40_000u32 {
            let r = next();
            let (p, d, w) = ((r % 3000) as u32, ((r >> 16) % 4) as u16, (r >> 32) % 5 == 0);
            let mask = if w { &wide } else { &narrow };
            if (r >> 40) % 3 == 0 {
                if let Some(id) = live.remove(&(p, d, w)) {
                    assert!(c.remove(id));
                }
            } else if let std::collections::hash_map::Entry::Vacant(v) = live.entry((p, d, w)) {
                v.insert(c.install(&k(p, d, w), mask, Actions::output(p), 0).unwrap());
            }
            if step % 997 == 0 || step > 39_000 {
                assert_eq!(c.len(), live.len());
                for (&(p, d, w), &id) in &live {
                    assert_eq!(c.lookup(&k(p, d, w)), Some(id), "step {step}: {p} {d} {w}");
                    assert_eq!(*c.get(id).unwrap().matching.key(), k(p, d, w).masked(if w { &wide } else { &narrow }));
                }
                assert_eq!(c.lookup(&k(5000, 0, false)), None);
            }
        }
        let keys: Vec<FlowKey> = live.keys().map(|&(p, d, w)| k(p, d, w)).take(BATCH).collect();
        let mut out = [None; BATCH];
        c.lookup_batch(&keys, &mut out);
        for (k, o) in keys.iter().zip(out) {
            assert_eq!(o, c.lookup(k));
            assert!(o.is_some());
        }
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
