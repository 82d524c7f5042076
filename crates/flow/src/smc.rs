//! The signature-match cache ([`Smc`]) and the frame form of a megaflow
//! ([`FrameForm`]): how a frame of the common shape finds its megaflow
//! without a flow key when the exact-match cache cannot hold its flows.
//!
//! At a million flows the exact-match cache (a few thousand entries)
//! misses on almost every packet, and each miss used to build an 18-word
//! flow key, hash it per subtable and walk the subtables: half again the
//! work of an exact-match hit, on top of the memory misses. OVS answers the
//! same problem with its signature-match cache (`smc-enable`): a big table
//! of 16-bit signatures of the microflow's hash, each naming a megaflow,
//! checked against the megaflow itself. This one does the same for
//! untagged IPv4 frames of the common shape, keyed by the hash of the
//! [`FrameKey`] that the exact-match cache already built:
//! - a hit costs the frame key and its hash (shared with the exact-match
//!   lookup), one bucket line of ten signatures, and the megaflow's
//!   first cache line, which holds the megaflow's key in frame form and
//!   the counters the hit updates next. No flow key, no subtable walk.
//! - the check is exact: a megaflow's frame form is the same match as its
//!   flow-key match, expressed on the frame key's words, for every frame
//!   of that shape ([`FrameForm`]; property-tested against
//!   [`FlowKey::extract`](crate::FlowKey::extract)). So a stale cell (its
//!   megaflow removed, its slot reused) can only name a megaflow that
//!   matches, or fail the check; the cache needs no invalidation.
//! - a miss falls through to the flow key and the megaflow cache, whose
//!   hit is then inserted (one cell, replacing round-robin in a full
//!   bucket).
//!
//! The frame form of a mask: every bit of a common-shape frame's flow key
//! is either a copy of a header bit (or of the input port) or a constant
//! ([`COPIES`] lists the copies, as `FlowKey`'s straight line writes
//! them). A masked flow-key match is therefore a masked match on the frame
//! key's words, plus conditions on constants that an entry either meets
//! for every such frame or for none. The frame-key words a mask touches
//! are packed into [`FRAME_WORDS`] words ([`FrameForm`]), so that an
//! entry's frame form fits its first cache line beside its counters.

use crate::frame::FrameKey;
use crate::key::{FlowKey, KEY_WORDS, Mask};
use crate::{prefetch, simd};

/// Words of an entry's frame form (in its slot's first cache line).
pub(crate) const FRAME_WORDS: usize = 3;

/// One byte of a common-shape frame's flow key that copies a byte of its
/// frame key: flow-key word, byte within it (0 = least significant), the
/// frame-key byte it copies (byte `8 * i + j` is byte `j` of frame-key word
/// `i`; bytes 48.. are the port word's), and which of that byte's bits it
/// keeps. `FlowKey::fill_common` writes these bytes; every other bit of
/// such a frame's key is the constant in [`CONSTANT`] (the metadata of
/// [`crate::Metadata::port`]: no tunnel, recirculation, conntrack or
/// registers).
const COPIES: [(u8, u8, u8, u8); 33] = [
    // in_port (word 0, bits 0..32): the port word's low four bytes.
    (0, 0, 48, 0xff),
    (0, 1, 49, 0xff),
    (0, 2, 50, 0xff),
    (0, 3, 51, 0xff),
    // nw_proto (word 3, bits 8..16): frame byte 23.
    (3, 1, 23, 0xff),
    // eth_dst (word 5, bits 16..64, big-endian): frame bytes 0..6.
    (5, 7, 0, 0xff),
    (5, 6, 1, 0xff),
    (5, 5, 2, 0xff),
    (5, 4, 3, 0xff),
    (5, 3, 4, 0xff),
    (5, 2, 5, 0xff),
    // nw_tos (bits 8..16) and nw_ttl (bits 0..8): frame bytes 15 and 22.
    (5, 1, 15, 0xff),
    (5, 0, 22, 0xff),
    // eth_src (word 6, bits 16..64): frame bytes 6..12.
    (6, 7, 6, 0xff),
    (6, 6, 7, 0xff),
    (6, 5, 8, 0xff),
    (6, 4, 9, 0xff),
    (6, 3, 10, 0xff),
    (6, 2, 11, 0xff),
    // tcp_flags (bits 0..9): TCP header bytes 12 and 13 (frame bytes 46
    // and 47), of which the frame key keeps the same nine bits, and which
    // it zeroes for UDP as the flow key does.
    (6, 1, 46, 0x01),
    (6, 0, 47, 0xff),
    // nw_src (word 7, bits 32..64): frame bytes 26..30.
    (7, 7, 26, 0xff),
    (7, 6, 27, 0xff),
    (7, 5, 28, 0xff),
    (7, 4, 29, 0xff),
    // nw_dst (word 9, bits 32..64): frame bytes 30..34.
    (9, 7, 30, 0xff),
    (9, 6, 31, 0xff),
    (9, 5, 32, 0xff),
    (9, 4, 33, 0xff),
    // tp_src and tp_dst (word 11, bits 32..64): frame bytes 34..38.
    (11, 7, 34, 0xff),
    (11, 6, 35, 0xff),
    (11, 5, 36, 0xff),
    (11, 4, 37, 0xff),
];

/// The flow key's bits that are not copies, for every common-shape frame:
/// all zero but the EtherType (word 3, bits 32..48).
const CONSTANT: [u64; KEY_WORDS] = {
    let mut c = [0u64; KEY_WORDS];
    c[3] = 0x0800 << 32;
    c
};

/// Frame-key bits that must be zero for an untagged frame: the tag bits of
/// the port word. Every frame form checks them, so that a tagged frame's
/// key (laid out differently) never passes for an untagged one's.
const UNTAGGED_CHECK: u64 = 0b11 << 32;

/// The flow-key bits that [`COPIES`] fill, per word (the rest are
/// [`CONSTANT`]).
const COPIED: [u64; KEY_WORDS] = {
    let mut c = [0u64; KEY_WORDS];
    let mut i = 0;
    while i < COPIES.len() {
        let (w, b, _, keep) = COPIES[i];
        c[w as usize] |= (keep as u64) << (8 * b as u32);
        i += 1;
    }
    c
};

/// A subtable's mask in frame form: which bits of each frame-key word it
/// keeps. The touched words are packed into [`FRAME_WORDS`] words in a
/// fixed way, so that packing costs a few ANDs and ORs and no lookups:
/// words 0 and 3 share the first (the MACs' first eight bytes; the source
/// address and the destination's first two bytes), words 1, 2 and 4 the
/// second (the source MAC's end, EtherType and TOS; TTL and protocol; the
/// destination's end and the ports), words 5 and 6 the third (the TCP
/// flags; the port word). A mask packs when the words sharing a packed
/// word keep disjoint bits: every mask over L3 and L4 fields and the
/// input port, and every one over L2 fields and the input port, but not
/// one that mixes the destination MAC with addresses, say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameForm {
    mask: [u64; 7],
}

impl FrameForm {
    /// The frame form of `mask`, or `None` when it does not pack.
    pub(crate) fn of(mask: &Mask) -> Option<FrameForm> {
        let m = mask.words();
        let mut fm = [0u64; 7];
        fm[6] = UNTAGGED_CHECK;
        for &(w, b, fb, keep) in &COPIES {
            let (w, b, fb) = (usize::from(w), u32::from(b), usize::from(fb));
            let bits = (m[w] >> (8 * b)) as u8 & keep;
            fm[fb / 8] |= u64::from(bits) << (8 * (fb % 8));
        }
        let disjoint = fm[0] & fm[3] == 0 && fm[1] & (fm[2] | fm[4]) == 0 && fm[2] & fm[4] == 0 && fm[5] & fm[6] == 0;
        disjoint.then_some(FrameForm { mask: fm })
    }

    /// The packed frame-key words of `k` under this form.
    #[inline(always)]
    pub(crate) fn pack(&self, k: &FrameKey) -> [u64; FRAME_WORDS] {
        let (w, m) = (k.words(), &self.mask);
        [(w[0] & m[0]) | (w[3] & m[3]), (w[1] & m[1]) | (w[2] & m[2]) | (w[4] & m[4]), (w[5] & m[5]) | (w[6] & m[6])]
    }

    /// The frame form of an entry whose mask is this form's and whose
    /// masked flow-key words are `key`: the packed words that exactly the
    /// frames it matches have, or `None` when no frame of the shape can
    /// match it (a constant it requires differs, such as another
    /// EtherType).
    pub(crate) fn entry(&self, mask: &Mask, key: &FlowKey) -> Option<[u64; FRAME_WORDS]> {
        let (m, v) = (mask.words(), key.words());
        for w in 0..KEY_WORDS {
            let fixed = m[w] & !COPIED[w];
            if v[w] & fixed != CONSTANT[w] & fixed {
                return None;
            }
        }
        // The frame key whose bytes are the entry's copied bytes.
        let mut fk = [0u64; 7];
        for &(w, b, fb, keep) in &COPIES {
            let (w, b, fb) = (usize::from(w), u32::from(b), usize::from(fb));
            let byte = (v[w] & m[w]) >> (8 * b) & 0xff;
            if byte & !u64::from(keep) != 0 {
                return None;
            }
            fk[fb / 8] |= byte << (8 * (fb % 8));
        }
        Some(self.pack(&FrameKey::from_words(fk)))
    }
}

/// Cells per bucket: ten signatures and slot numbers fill a cache line.
const CELLS: usize = 10;

/// A full bucket takes one offer in this many ([`Smc::insert`]).
const REPLACE_EVERY: u32 = 8;

/// Ten cells, one cache line: the signatures (the hash's top 16 bits)
/// and `slot + 1` of the megaflow each names (0: empty). Ten rather than
/// eight: with twice as many cells as flows, eight-cell buckets overflowed
/// for 1.2 % of a million flows, and each of their packets paid for a flow
/// key and a megaflow lookup (`examples/million`).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    sigs: [u16; CELLS],
    slots: [u32; CELLS],
}

const EMPTY: Bucket = Bucket { sigs: [0; CELLS], slots: [0; CELLS] };

/// Bit `j` set: cell `j` of `b` has signature `sig`. Two eight-lane
/// compares, of cells 0..8 and 2..10.
#[inline(always)]
fn matching(b: &Bucket, sig: u16) -> u32 {
    let low = b.sigs.first_chunk::<8>().map_or(0, |s| simd::lanes_equal(s, sig));
    let high = b.sigs.last_chunk::<8>().map_or(0, |s| simd::lanes_equal(s, sig));
    low | (high << (CELLS - 8))
}

/// What the signature-match cache counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmcStats {
    /// Lookups that found their megaflow.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Cells written.
    pub inserts: u64,
}

/// The signature-match cache (see the module docs): frame-key hashes to
/// megaflow slots, in buckets of ten cells.
pub struct Smc {
    buckets: Vec<Bucket>,
    /// The next cell to replace in a full bucket.
    clock: u32,
    stats: SmcStats,
}

impl Smc {
    /// A cache of at least `cells` cells (in a power of two of buckets;
    /// 0: none at all, every lookup misses and inserts do nothing).
    pub fn new(cells: usize) -> Smc {
        let buckets = if cells == 0 { 0 } else { cells.div_ceil(CELLS).next_power_of_two() };
        Smc { buckets: vec![EMPTY; buckets], clock: 0, stats: SmcStats::default() }
    }

    /// Cells.
    pub fn cells(&self) -> usize {
        self.buckets.len() * CELLS
    }

    /// What it counted.
    pub fn stats(&self) -> SmcStats {
        self.stats
    }

    /// Adds `hits` and `misses` to the counters.
    #[inline(always)]
    pub(crate) fn count(&mut self, hits: u64, misses: u64) {
        self.stats.hits += hits;
        self.stats.misses += misses;
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.buckets.fill(EMPTY);
    }

    #[inline(always)]
    fn bucket(&self, h: u64) -> Option<&Bucket> {
        // Bits 20.. for the bucket, 48.. for the signature: apart from the
        // exact-match cache's set bits, and from each other.
        self.buckets.get((h >> 20) as usize & self.buckets.len().wrapping_sub(1))
    }

    /// Asks for `h`'s bucket.
    #[inline(always)]
    pub(crate) fn prefetch(&self, h: u64) {
        if let Some(b) = self.bucket(h) {
            prefetch::read(b);
        }
    }

    /// The slots named by `h`'s signature in its bucket: bit `j` for cell `j`.
    #[inline(always)]
    pub(crate) fn candidates(&self, h: u64) -> u32 {
        self.bucket(h).map_or(0, |b| matching(b, signature(h)))
    }

    /// The slot in cell `j` of `h`'s bucket (`u32::MAX` for an empty cell).
    #[inline(always)]
    pub(crate) fn slot(&self, h: u64, j: u32) -> u32 {
        self.bucket(h).map_or(u32::MAX, |b| b.slots[j as usize % CELLS].wrapping_sub(1))
    }

    /// Remembers that frames hashing to `h` find their megaflow in `slot`:
    /// an empty cell if the bucket has one, else (at one offer in
    /// [`REPLACE_EVERY`]) the next in turn.
    pub(crate) fn insert(&mut self, h: u64, slot: u32) {
        let n = self.buckets.len();
        if n == 0 {
            return;
        }
        let sig = signature(h);
        let b = &mut self.buckets[(h >> 20) as usize & (n - 1)];
        let mut j = None;
        for c in 0..CELLS {
            if b.sigs[c] == sig && b.slots[c] == slot.wrapping_add(1) {
                return;
            }
            if j.is_none() && b.slots[c] == 0 {
                j = Some(c);
            }
        }
        let j = match j {
            Some(j) => j,
            None => {
                // A full bucket: replace one cell in [`REPLACE_EVERY`]
                // offers, in turn. Replacing on every offer lets the flows
                // of an overfull bucket evict each other forever (each miss
                // making the next); this keeps most residents hitting.
                self.clock = self.clock.wrapping_add(1);
                if !self.clock.is_multiple_of(REPLACE_EVERY) {
                    return;
                }
                (self.clock / REPLACE_EVERY) as usize % CELLS
            }
        };
        b.sigs[j] = sig;
        b.slots[j] = slot.wrapping_add(1);
        self.stats.inserts += 1;
    }
}

#[inline(always)]
fn signature(h: u64) -> u16 {
    (h >> 48) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::testing::{frame, tagged};
    use crate::key::{Field, Metadata};
    use proptest::prelude::*;
    use sluice_packet::Headers;

    fn flow_key(f: &[u8], port: u32) -> FlowKey {
        let mut h = Headers::EMPTY;
        FlowKey::extract(f, &Metadata::port(port), &mut h)
    }

    /// A mask of random fields, each whole or a random part of its bits.
    fn mask_of(fields: &[(usize, u64)]) -> Mask {
        let mut m = Mask::of(&[]);
        for &(f, bits) in fields {
            let field = Field::ALL[f % Field::ALL.len()];
            let d = field.def();
            let all = if d.bits >= 128 { u128::MAX } else { (1u128 << d.bits) - 1 };
            let v = if bits & 1 == 0 { all } else { u128::from(bits) & all };
            m.set(field, v);
        }
        m
    }

    /// Frame `b` of common shape changed at a few bytes that a flow key reads.
    fn edited(base: &[u8], edits: &[(u8, u8)]) -> Vec<u8> {
        const KEYED: [usize; 25] =
            [0, 1, 2, 5, 6, 9, 11, 15, 22, 23, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 46, 47, 40];
        let mut f = base.to_vec();
        for &(at, v) in edits {
            let i = KEYED[usize::from(at) % KEYED.len()];
            if i == 23 {
                continue;
            }
            f[i] = if i == 46 { (f[46] & 0xfe) | (v & 1) } else { v };
        }
        f
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The frame form is the flow-key match: a frame matches an entry
        /// (the masked flow key of another frame, or of the same frame with
        /// some bytes changed) by its flow key exactly when its packed
        /// frame-key words equal the entry's.
        #[test]
        fn frame_form_agrees_with_the_flow_key(
            seed in any::<u64>(),
            tcp in any::<bool>(),
            fields in proptest::collection::vec((any::<usize>(), any::<u64>()), 0..8),
            edits in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..4),
            ports in (0u32..3, 0u32..3),
        ) {
            let mask = mask_of(&fields);
            // (Masks over many scattered words do not pack: nothing to check.)
            let Some(form) = FrameForm::of(&mask) else { return Ok(()) };
            let a = frame(tcp, 64, seed);
            let b = edited(&a, &edits);
            let entry_key = flow_key(&a, ports.0).masked(&mask);
            let matches = flow_key(&b, ports.1).masked(&mask) == entry_key;
            let kb = FrameKey::extract(&b, ports.1).unwrap();
            let by_form = form.entry(&mask, &entry_key).is_some_and(|e| e == form.pack(&kb));
            prop_assert_eq!(matches, by_form, "mask {:?}", mask);
        }

        /// An entry that requires another constant (a different EtherType,
        /// a tunnel, a VLAN, a register) has no frame form, and indeed no
        /// frame of the shape matches it.
        #[test]
        fn entries_no_frame_can_match_have_no_frame_form(
            seed in any::<u64>(),
            field in prop::sample::select(vec![Field::EthType, Field::TunId, Field::Vlan1, Field::Reg0, Field::CtState, Field::NwFrag]),
            value in 1u64..0xffff,
        ) {
            let mask = Mask::of(&[Field::InPort, field, Field::Ipv4Src]);
            let form = FrameForm::of(&mask).unwrap();
            let f = frame(false, 64, seed);
            let key = flow_key(&f, 1).with(field, u128::from(value)).masked(&mask);
            let any_frame = flow_key(&f, 1).masked(&mask) == key;
            prop_assert_eq!(form.entry(&mask, &key).is_some(), any_frame);
        }
    }

    #[test]
    fn a_tagged_frame_key_never_passes_for_an_untagged_one() {
        let mask = Mask::of(&[Field::InPort, Field::Ipv4Src, Field::TpDst]);
        let form = FrameForm::of(&mask).unwrap();
        let f = frame(false, 64, 5);
        let entry = form.entry(&mask, &flow_key(&f, 1).masked(&mask)).unwrap();
        assert_eq!(entry, form.pack(&FrameKey::extract(&f, 1).unwrap()));
        for t in [tagged(&f, 7), tagged(&tagged(&f, 7), 9)] {
            assert_ne!(entry, form.pack(&FrameKey::extract(&t, 1).unwrap()));
        }
    }

    #[test]
    fn l3_l4_and_l2_masks_pack_and_mixed_ones_do_not() {
        let five = Mask::five_tuple();
        let l2 = [Field::InPort, Field::EthDst, Field::EthSrc, Field::EthType, Field::Vlan0];
        let mixed = [Field::InPort, Field::EthDst, Field::Ipv4Src];
        assert!(FrameForm::of(&five).is_some());
        assert!(FrameForm::of(&five.exact(Field::TcpFlags).exact(Field::NwTtl)).is_some());
        assert!(FrameForm::of(&Mask::of(&l2)).is_some());
        assert!(FrameForm::of(&Mask::of(&mixed)).is_none());
    }

    #[test]
    fn cells_insert_replace_and_name_their_slots() {
        let mut s = Smc::new(20);
        assert_eq!(s.cells(), 20);
        let h = |i: u64| (i << 48) | (3 << 20);
        for i in 1..=10 {
            s.insert(h(i), i as u32 * 10);
        }
        for i in 1..=10 {
            let c = s.candidates(h(i));
            assert_eq!(c.count_ones(), 1);
            assert_eq!(s.slot(h(i), c.trailing_zeros()), i as u32 * 10);
        }
        // The same again: no new cell.
        s.insert(h(1), 10);
        assert_eq!(s.stats().inserts, 10);
        // An eleventh replaces one, at the eighth offer.
        for _ in 0..REPLACE_EVERY {
            assert_eq!(s.candidates(h(11)), 0);
            s.insert(h(11), 110);
        }
        assert_eq!((1..=11).filter(|&i| s.candidates(h(i)) != 0).count(), 10);
        assert_ne!(s.candidates(h(11)), 0);
        s.clear();
        assert_eq!(s.candidates(h(11)), 0);
        let none = Smc::new(0);
        assert_eq!((none.cells(), none.candidates(h(1)), none.slot(h(1), 0)), (0, 0, u32::MAX));
    }
}
