//! Layouts and key paths for a megaflow table of a million entries, side by
//! side in a lean pipeline, to decide what is worth building into the
//! cache (a page-local layout; a lookup without flow keys).
//! The pipeline writes 32 frames, builds their flow keys, looks them up in
//! one five-tuple subtable with group prefetching, and accounts each hit.
//! There is no EMC and no bookkeeping: only the memory pattern and the work
//! around it. Only a key's first candidate is compared, so a fraction of a
//! percent of the packets miss (the hit counts printed say how many). This
//! is not the cache's code.
//!
//! - `separate` is the cache's layout: a 16 MB index of 8-cell buckets, then
//!   a 128-byte slot in a 128 MB slab. A lookup touches two random pages.
//! - `paged` keeps each bucket's entries in the bucket's own 4 KB page: 31
//!   slots, and a head of 31 signatures in the place of a 32nd slot. The
//!   head's place moves from page to page so that heads do not share cache
//!   sets. A lookup touches one random page.
//! - `staged` is `separate` with each key's bucket read, and its slot asked
//!   for, `D` keys after the key was built: the slot's miss overlaps the
//!   building of later keys instead of following the whole batch.
//! - `common` is `separate` with the flow key's straight line alone (no
//!   headers), as the cache builds the keys of a batch that may hit.
//! - `frame` is `separate` without flow keys: the five-tuple read straight
//!   from the frame's bytes (after the common-shape check), hashed and
//!   compared as three words (address and protocol, the other address and
//!   the ports, the input port). The best case of a frame-direct megaflow
//!   lookup: what a packet would cost if no flow key were built.
//! - `flat` is `frame` in one table: each entry's frame words and counters
//!   in one 64-byte line of a table twice the flows' size (128 MB at a
//!   million), probed linearly. A lookup touches one random line, not an
//!   index line and a slot. Its lines are asked for as each key is hashed;
//!   `burst` asks for a batch's 32 lines at once after its keys are hashed,
//!   and `ahead` does the same but compares them one batch later (so its
//!   last batch is never compared: 32 fewer hits).
//!
//! `layout_probe [flows] [D] [layout] [packets]` (default 1000000 8, every
//! layout, 4000000), five rounds; one round when a layout is named (for
//! callgrind: the difference between two packet counts is the cost of the
//! packets between them). BENCHMARKS.md ("Fifth round" to "Seventh
//! round") has the results.

use std::hint::black_box;
use std::time::Instant;

use sluice_flow::{FlowKey, Metadata};
use sluice_packet::Headers;

#[path = "../benches/common/mod.rs"]
mod common;

use common::{FRAME_LEN, Flows, five_tuple, prefetch, write_frame};

#[global_allocator]
static ALLOC: sluice_mem::HugePages = sluice_mem::HugePages;

/// An entry as the cache lays it out: 48 bytes of header, then key words.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Slot {
    generation: u32,
    subtable: u16,
    _pad: u16,
    hash: u64,
    actions: u64,
    packets: u64,
    bytes: u64,
    used: u64,
    words: [u64; 10],
}

impl Slot {
    /// Counts a hit of one frame at `now`.
    #[inline(always)]
    fn account(&mut self, now: u64) {
        self.packets += 1;
        self.bytes += FRAME_LEN as u64;
        self.used = self.used.max(now);
    }
}

const EMPTY: Slot =
    Slot { generation: 0, subtable: 0, _pad: 0, hash: 0, actions: 0, packets: 0, bytes: 0, used: 0, words: [0; 10] };

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    /// Eight 16-bit signatures.
    sigs: [u64; 2],
    cells: [u32; 8],
}

/// 32 slots; slot `p % 32` of page `p` is its head, whose last 64 bytes
/// (`words[2..10]`) hold a 16-bit signature per slot (0: free) and, in
/// the head's own lane, how many keys homed here went to a later page.
#[repr(C, align(4096))]
struct Page([Slot; 32]);

/// Bit `j` set: 16-bit lane `j` of `lanes` is `sig` (SSE2, as the cache
/// compares its buckets' signatures).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lanes_equal(lanes: &[u64], sig: u16) -> u32 {
    // SAFETY: SSE2 is in the x86-64 baseline this is compiled for.
    unsafe { lanes_equal_sse2(lanes, sig) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn lanes_equal_sse2(lanes: &[u64], sig: u16) -> u32 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16, _mm_set1_epi16,
    };
    let s = _mm_set1_epi16(sig as i16);
    let mut m = 0;
    for (c, pair) in lanes.chunks_exact(2).enumerate() {
        // SAFETY: the unaligned load reads the 16 bytes of `pair`, a live
        // shared reference.
        let v = unsafe { _mm_loadu_si128(pair.as_ptr().cast::<__m128i>()) };
        let eq = _mm_cmpeq_epi16(v, s);
        m |= (_mm_movemask_epi8(_mm_packs_epi16(eq, eq)) as u32 & 0xff) << (8 * c);
    }
    m
}

/// [`lanes_equal`] elsewhere.
#[cfg(not(target_arch = "x86_64"))]
fn lanes_equal(lanes: &[u64], sig: u16) -> u32 {
    let mut m = 0;
    for (j, w) in lanes.iter().enumerate() {
        for k in 0..4 {
            m |= u32::from((w >> (16 * k)) as u16 == sig) << (4 * j + k);
        }
    }
    m
}

/// The five-tuple mask's words, and the hash and compare the cache uses.
struct Subtable {
    at: [usize; 5],
    mask: [u64; 5],
}

impl Subtable {
    const MULTIPLIERS: [u64; 5] = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7345,
        0xa409_3822_299f_31d1,
        0x082e_fa98_ec4e_6c89,
        0x4528_21e6_38d0_1377,
    ];

    #[inline(always)]
    fn hash(&self, k: &FlowKey) -> u64 {
        let k = k.words();
        let mut acc = 0u64;
        for j in 0..5 {
            acc = acc.wrapping_add((k[self.at[j]] & self.mask[j]).wrapping_mul(Self::MULTIPLIERS[j]));
        }
        let h = (acc ^ (acc >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 29)
    }

    #[inline(always)]
    fn holds(&self, s: &Slot, k: &FlowKey) -> bool {
        let k = k.words();
        (0..5).fold(0, |d, j| d | (s.words[j] ^ (k[self.at[j]] & self.mask[j]))) == 0
    }

    fn slot(&self, k: &FlowKey, hash: u64) -> Slot {
        let mut words = [0; 10];
        for ((w, &at), &m) in words.iter_mut().zip(&self.at).zip(&self.mask) {
            *w = k.words()[at] & m;
        }
        Slot { generation: 1, hash, words, ..EMPTY }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Separate,
    Paged,
    Staged(usize),
    Common,
    Frame,
    /// The frame words inline in one line; when its lines are asked for.
    Flat(Ask),
}

/// When the `flat` layout asks for a batch's lines.
#[derive(Clone, Copy, PartialEq)]
enum Ask {
    /// As each key is hashed, between the keys' work.
    Interleaved,
    /// All 32 at once, after the batch's keys are hashed.
    Burst,
    /// All 32 at once, compared one batch later.
    Ahead,
}

/// A batch's frame words and lines, to be compared (`usize::MAX`: no line).
type Pending = ([[u64; 3]; 32], [usize; 32]);

/// A `flat` entry: the frame words inline with the counters, one line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line {
    words: [u64; 3],
    id: u32,
    generation: u32,
    packets: u64,
    bytes: u64,
    used: u64,
}

struct Tables {
    sub: Subtable,
    index: Vec<Bucket>,
    slab: Vec<Slot>,
    pages: Vec<Page>,
    /// The `frame` layout's index and slab (the `separate` layout, keyed
    /// by [`frame_words`]).
    findex: Vec<Bucket>,
    fslab: Vec<Slot>,
    flat: Vec<Line>,
}

/// A common-shape frame's five-tuple in frame order, as three words: the
/// source address with the protocol in the checksum's place, the
/// destination address and the ports, and the input port. `None` for a
/// frame of another shape.
#[inline(always)]
fn frame_words(f: &[u8], in_port: u32) -> Option<[u64; 3]> {
    sluice_packet::headers::fast_shape(f)?;
    let b = f.first_chunk::<40>()?;
    let w3 = u64::from_le_bytes(b[24..32].try_into().ok()?);
    let w4 = u64::from_le_bytes(b[32..40].try_into().ok()?);
    Some([(w3 & !0xffff) | u64::from(b[23]), w4 & 0xffff_ffff_ffff, u64::from(in_port)])
}

/// The hash of [`frame_words`], as the cache hashes a key's words.
#[inline(always)]
fn frame_hash(w: &[u64; 3]) -> u64 {
    let acc = w[0]
        .wrapping_mul(Subtable::MULTIPLIERS[0])
        .wrapping_add(w[1].wrapping_mul(Subtable::MULTIPLIERS[1]))
        .wrapping_add(w[2].wrapping_mul(Subtable::MULTIPLIERS[2]));
    let h = (acc ^ (acc >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// Puts slot `i` of hash `h` in the first free cell from its bucket on.
fn place(index: &mut [Bucket], h: u64, i: usize) {
    let cap = index.len() - 1;
    let mut b = h as usize & cap;
    loop {
        let bucket = &mut index[b];
        if let Some(j) = (0..8).find(|&j| bucket.cells[j] == 0) {
            bucket.sigs[j / 4] |= (h >> 48) << (16 * (j % 4));
            bucket.cells[j] = i as u32 + 1;
            return;
        }
        b = (b + 1) & cap;
    }
}

impl Tables {
    fn build(keys: &[FlowKey], frames: &[[u64; 3]], sub: Subtable) -> Tables {
        let n = keys.len();
        let buckets = (n * 2 / 8).next_power_of_two().max(1);
        let mut index = vec![Bucket { sigs: [0; 2], cells: [0; 8] }; buckets];
        let mut slab = vec![EMPTY; n];
        let mut findex = index.clone();
        let mut fslab = vec![EMPTY; n];
        for (i, w) in frames.iter().enumerate() {
            let h = frame_hash(w);
            fslab[i].generation = 1;
            fslab[i].hash = h;
            fslab[i].words[..3].copy_from_slice(w);
            place(&mut findex, h, i);
        }
        let mut flat = vec![
            Line { words: [0; 3], id: 0, generation: 0, packets: 0, bytes: 0, used: 0 };
            (n * 2).next_power_of_two()
        ];
        let fcap = flat.len() - 1;
        for (i, w) in frames.iter().enumerate() {
            let mut at = frame_hash(w) as usize & fcap;
            while flat[at].generation != 0 {
                at = (at + 1) & fcap;
            }
            flat[at] = Line { words: *w, id: i as u32, generation: 1, ..flat[at] };
        }
        let mut pages: Vec<Page> = (0..(n * 4 / 3).div_ceil(31).max(1)).map(|_| Page([EMPTY; 32])).collect();
        for (i, k) in keys.iter().enumerate() {
            let h = sub.hash(k);
            slab[i] = sub.slot(k, h);
            place(&mut index, h, i);
            let mut p = home(h, pages.len());
            loop {
                let head = p % 32;
                let lanes = &mut pages[p].0[head].words[2..10];
                let free = (0..32).find(|&j| j != head && (lanes[j / 4] >> (16 * (j % 4))) as u16 == 0);
                if let Some(j) = free {
                    lanes[j / 4] |= u64::from(page_sig(h)) << (16 * (j % 4));
                    pages[p].0[j] = sub.slot(k, h);
                    break;
                }
                lanes[head / 4] += 1 << (16 * (head % 4));
                p = (p + 1) % pages.len();
            }
        }
        Tables { sub, index, slab, pages, findex, fslab, flat }
    }

    /// One batch: its keys built, looked up and accounted; returns its hits.
    fn batch(&mut self, frames: &[[u8; FRAME_LEN]; 32], keys: &mut [FlowKey; 32], layout: Layout, now: u64) -> u64 {
        let meta = Metadata::port(1);
        let mut headers = Headers::EMPTY;
        let mut hashes = [0u64; 32];
        let mut cand = [usize::MAX; 32];
        let cap = self.index.len() - 1;
        let common = layout == Layout::Common;
        let (stage, delay) = match layout {
            Layout::Staged(d) => (true, d.min(31)),
            _ => (false, 0),
        };
        for (i, (k, f)) in keys.iter_mut().zip(frames).enumerate() {
            if common {
                k.extract_common(f, &meta);
            } else {
                k.extract_into(f, &meta, &mut headers);
            }
            let h = self.sub.hash(k);
            hashes[i] = h;
            if layout == Layout::Paged {
                let p = home(h, self.pages.len());
                prefetch(&self.pages[p].0[p % 32].words[2]);
            } else {
                prefetch(&self.index[h as usize & cap]);
            }
            if stage && i >= delay {
                cand[i - delay] = self.ask_slot(hashes[i - delay]);
            }
        }
        for i in 0..32 {
            if stage && i < 32 - delay {
                continue;
            }
            let h = hashes[i];
            cand[i] = if layout == Layout::Paged {
                let p = home(h, self.pages.len());
                let head = p % 32;
                let c = lanes_equal(&self.pages[p].0[head].words[2..10], page_sig(h)) & !(1 << head);
                if c != 0 { p * 32 + c.trailing_zeros() as usize } else { usize::MAX }
            } else {
                self.ask_slot(h)
            };
            if layout == Layout::Paged && cand[i] != usize::MAX {
                let s = &self.pages[cand[i] / 32].0[cand[i] % 32];
                prefetch(s);
                prefetch(&s.words[9]);
            }
        }
        let mut hits = 0;
        for (k, &c) in keys.iter().zip(&cand) {
            if c == usize::MAX {
                continue;
            }
            let s = if layout == Layout::Paged { &mut self.pages[c / 32].0[c % 32] } else { &mut self.slab[c] };
            if self.sub.holds(s, k) {
                s.account(now);
                hits += 1;
            }
        }
        hits
    }

    /// Reads the bucket of hash `h` and asks for its first candidate's slot.
    #[inline(always)]
    fn ask_slot(&self, h: u64) -> usize {
        ask(&self.index, &self.slab, h)
    }

    /// [`Tables::batch`] for the `frame` layout: no flow keys.
    fn batch_frames(&mut self, frames: &[[u8; FRAME_LEN]; 32], now: u64) -> u64 {
        let mut words = [[0u64; 3]; 32];
        let mut hashes = [0u64; 32];
        let mut cand = [usize::MAX; 32];
        let mut shaped = 0u32;
        let cap = self.findex.len() - 1;
        for (i, f) in frames.iter().enumerate() {
            if let Some(w) = frame_words(f, 1) {
                let h = frame_hash(&w);
                (words[i], hashes[i]) = (w, h);
                shaped |= 1 << i;
                prefetch(&self.findex[h as usize & cap]);
            }
        }
        let mut m = shaped;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            cand[i] = ask(&self.findex, &self.fslab, hashes[i]);
        }
        let mut hits = 0;
        for (w, &c) in words.iter().zip(&cand) {
            if c == usize::MAX {
                continue;
            }
            let s = &mut self.fslab[c];
            if (s.words[0] ^ w[0]) | (s.words[1] ^ w[1]) | (s.words[2] ^ w[2]) == 0 {
                s.account(now);
                hits += 1;
            }
        }
        hits
    }

    /// [`Tables::batch`] for the `flat` layout: the frame words and the
    /// counters in one line of a table twice the flows' size, probed
    /// linearly. `prev` is the batch that [`Ask::Ahead`] compares now.
    fn batch_flat(&mut self, frames: &[[u8; FRAME_LEN]; 32], now: u64, ask: Ask, prev: &mut Pending) -> u64 {
        let mut words = [[0u64; 3]; 32];
        let mut at = [usize::MAX; 32];
        let cap = self.flat.len() - 1;
        for (i, f) in frames.iter().enumerate() {
            if let Some(w) = frame_words(f, 1) {
                (words[i], at[i]) = (w, frame_hash(&w) as usize & cap);
                if ask == Ask::Interleaved {
                    prefetch(&self.flat[at[i]]);
                }
            }
        }
        if ask != Ask::Interleaved {
            for &a in at.iter().filter(|&&a| a != usize::MAX) {
                prefetch(&self.flat[a]);
            }
        }
        let (words, at) = if ask == Ask::Ahead { std::mem::replace(prev, (words, at)) } else { (words, at) };
        let mut hits = 0;
        for (w, &a) in words.iter().zip(&at) {
            if a == usize::MAX {
                continue;
            }
            let mut a = a;
            loop {
                let l = &mut self.flat[a];
                if (l.words[0] ^ w[0]) | (l.words[1] ^ w[1]) | (l.words[2] ^ w[2]) == 0 {
                    l.packets += 1;
                    l.bytes += FRAME_LEN as u64;
                    l.used = l.used.max(now);
                    hits += 1;
                    break;
                }
                if l.generation == 0 {
                    break;
                }
                a = (a + 1) & cap;
            }
        }
        hits
    }
}

/// Reads the bucket of hash `h` in `index` and asks for its first
/// candidate's slot in `slab`.
#[inline(always)]
fn ask(index: &[Bucket], slab: &[Slot], h: u64) -> usize {
    let b = &index[h as usize & (index.len() - 1)];
    let c = lanes_equal(&b.sigs, (h >> 48) as u16);
    let Some(&cell) = b.cells.get(c.trailing_zeros() as usize).filter(|&&c| c != 0) else { return usize::MAX };
    let idx = cell as usize - 1;
    let s = &slab[idx];
    prefetch(s);
    prefetch(&s.words[9]);
    idx
}

/// A layout's name, as the third argument picks it (and as printed, with
/// the distance after `staged`).
fn name(layout: Layout) -> &'static str {
    match layout {
        Layout::Separate => "separate",
        Layout::Paged => "paged",
        Layout::Staged(_) => "staged",
        Layout::Common => "common",
        Layout::Frame => "frame",
        Layout::Flat(Ask::Interleaved) => "flat",
        Layout::Flat(Ask::Burst) => "burst",
        Layout::Flat(Ask::Ahead) => "ahead",
    }
}

/// The page a hash lives in (its top bits: a multiply, not a division).
fn home(h: u64, pages: usize) -> usize {
    ((u128::from(h) * pages as u128) >> 64) as usize
}

/// A page's signature: the hash's low bits, which `home` does not use.
fn page_sig(h: u64) -> u16 {
    h as u16 | 1
}

fn main() {
    let mut args = std::env::args().skip(1);
    let flows: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000).max(1);
    let delay: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let mask = five_tuple();
    let (mut at, mut words, mut n) = ([0usize; 5], [0u64; 5], 0);
    for (i, &w) in mask.words().iter().enumerate().filter(|(_, w)| **w != 0) {
        assert!(n < 5, "the five-tuple mask spans five key words");
        (at[n], words[n], n) = (i, w, n + 1);
    }
    let meta = Metadata::port(1);
    let mut f = [0u8; FRAME_LEN];
    let mut h = Headers::EMPTY;
    let (keys, fwords): (Vec<FlowKey>, Vec<[u64; 3]>) = (0..flows)
        .map(|i| {
            write_frame(&mut f, i);
            (FlowKey::extract(&f, &meta, &mut h), frame_words(&f, 1).expect("the common shape"))
        })
        .unzip();
    let mut t = Tables::build(&keys, &fwords, Subtable { at, mask: words });
    drop((keys, fwords));
    let only = args.next();
    let packets: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4_000_000);
    let rounds = if only.is_some() { 1 } else { 5 };
    let all = [
        Layout::Separate,
        Layout::Paged,
        Layout::Staged(delay),
        Layout::Common,
        Layout::Frame,
        Layout::Flat(Ask::Interleaved),
        Layout::Flat(Ask::Burst),
        Layout::Flat(Ask::Ahead),
    ];
    for round in 0..rounds {
        for layout in all.into_iter().filter(|l| only.as_deref().is_none_or(|o| name(*l) == o)) {
            let (mut order, mut hits) = (Flows::new(flows), 0);
            let mut frames = [[0u8; FRAME_LEN]; 32];
            let mut keys = [FlowKey::ZERO; 32];
            let mut prev: Pending = ([[0u64; 3]; 32], [usize::MAX; 32]);
            let start = Instant::now();
            for b in 0..packets / 32 {
                for fr in &mut frames {
                    write_frame(fr, order.next());
                }
                hits += if layout == Layout::Frame {
                    t.batch_frames(black_box(&frames), b)
                } else if let Layout::Flat(ask) = layout {
                    t.batch_flat(black_box(&frames), b, ask, &mut prev)
                } else {
                    t.batch(black_box(&frames), &mut keys, layout, b)
                };
            }
            let ns = start.elapsed().as_nanos() as f64 / packets as f64;
            let label = match layout {
                Layout::Staged(d) => format!("staged {d}"),
                _ => name(layout).to_string(),
            };
            println!("round {round}: {flows} flows, {label}: {ns:.1} ns per packet, {hits} hits");
        }
    }
}
