//! [`FlowCache`]: one datapath thread's caches chained — exact-match
//! cache, then megaflow cache — with the EMC filled by its policy from
//! megaflow hits.
//!
//! There are three exact-match caches of the same size and policy: one
//! keyed by frame keys ([`FrameKey`]: the header bytes of an IPv4 frame of
//! the common shape, untagged or with one or two VLAN tags), one by IPv6
//! frame keys ([`FrameKey6`]: IPv6 without extension headers, untagged or
//! with one tag), and one by flow keys for every other frame.
//! [`FlowCache::classify`] takes frames: a frame-key hit builds no flow key
//! at all; an untagged IPv4 frame that misses looks in the signature-match
//! cache ([`Smc`], `crate::smc`) next, with the same frame key, and a hit
//! there builds no flow key either (and is offered to the exact-match
//! cache); everything else builds its flow key and goes on as
//! [`FlowCache::lookup_batch`] does, and a megaflow hit is offered to the
//! caches its frame belongs to.
//!
//! When the EMC does not earn its keep (a million flows in uniform churn:
//! almost every lookup misses, and the frequency policy admits almost
//! nothing), its lookups are pure cost. The batch path then *bypasses* it:
//! the hit rate is measured over windows of [`WINDOW`] EMC lookups, and
//! after a window below [`MIN_HIT_PER_MILLE`] the batches go straight to
//! the megaflow cache, except one in [`SAMPLE_EVERY`], which still runs the
//! whole EMC path (lookup and offer) so that flows that start to recur are
//! still admitted and the hit rate is still measured, over shorter windows
//! ([`SAMPLED_WINDOW`]). A sampled window above the threshold ends the
//! bypass. Results never change, only cost: the signature-match and
//! megaflow caches answer every lookup the EMC would have.

use sluice_packet::Headers;

use crate::emc::{Emc, InsertPolicy};
use crate::frame::{FrameKey, FrameKey6};
use crate::key::{FlowKey, Metadata};
use crate::megaflow::{BATCH, FlowId, MegaflowCache, bits};
use crate::smc::Smc;

/// EMC lookups per hit-rate window.
pub const WINDOW: u32 = 4096;
/// The hit rate, in thousandths, below which a window turns the bypass on
/// (and at or above which a sampled window turns it off): 5 %.
pub const MIN_HIT_PER_MILLE: u32 = 50;
/// While bypassing, one batch in this many runs the EMC path anyway.
pub const SAMPLE_EVERY: u32 = 64;
/// EMC lookups per window while bypassing: 32 sampled batches of 32, so
/// that recurring flows end the bypass within about 2048 batches.
pub const SAMPLED_WINDOW: u32 = 1024;

/// The per-thread cache set (see the module docs).
pub struct FlowCache {
    /// The exact-match cache of flow keys.
    pub emc: Emc,
    /// The exact-match cache of frame keys ([`classify`](Self::classify)).
    pub frames: Emc<FrameKey>,
    /// The exact-match cache of IPv6 frame keys.
    pub frames6: Emc<FrameKey6>,
    /// The frame keys of the batch in flight (kept for the offers).
    frame_keys: Box<[FrameKey; BATCH]>,
    frame_keys6: Box<[FrameKey6; BATCH]>,
    /// Scratch: the missed keys' hashes in the megaflow cache's first
    /// subtable (`MegaflowCache::early`), kept here so that a batch of
    /// exact-match hits does not pay for clearing them.
    early_hashes: Box<[u64; BATCH]>,
    /// The megaflow cache.
    pub megaflows: MegaflowCache,
    /// The signature-match cache: untagged IPv4 frames of the common shape
    /// that miss the exact-match cache find their megaflow here without a
    /// flow key (`crate::smc`).
    pub smc: Smc,
    /// The frame-key hashes of the batch's frames that looked in the
    /// signature-match cache (kept for its inserts).
    smc_hashes: Box<[u64; BATCH]>,
    /// EMC lookups and hits of the current window (batch path only).
    window_lookups: u32,
    window_hits: u32,
    /// Skipping the EMC (see the module docs).
    bypass: bool,
    /// The current window's length: [`WINDOW`], or [`SAMPLED_WINDOW`]
    /// while bypassing.
    window_len: u32,
    /// Batches since the last sampled one, while bypassing.
    since_sample: u32,
}

impl FlowCache {
    /// An EMC of `emc_entries` with `policy` in front of a megaflow cache
    /// holding at most `flow_limit` entries.
    pub fn new(emc_entries: usize, policy: InsertPolicy, flow_limit: usize, seed: u64) -> FlowCache {
        FlowCache {
            emc: Emc::new(emc_entries, policy, seed),
            frames: Emc::new(emc_entries, policy, seed ^ 0x9e37_79b9_7f4a_7c15),
            frames6: Emc::new(emc_entries, policy, seed ^ 0x6a09_e667_f3bc_c909),
            frame_keys: Box::new([FrameKey::ZERO; BATCH]),
            frame_keys6: Box::new([FrameKey6::ZERO; BATCH]),
            early_hashes: Box::new([0; BATCH]),
            smc: Smc::new(smc_cells(flow_limit)),
            smc_hashes: Box::new([0; BATCH]),
            megaflows: MegaflowCache::new(flow_limit),
            window_lookups: 0,
            window_hits: 0,
            bypass: false,
            window_len: WINDOW,
            since_sample: 0,
        }
    }

    /// True while batches skip the EMC (see the module docs).
    pub fn bypassing(&self) -> bool {
        self.bypass
    }

    /// Hits in the exact-match caches so far.
    pub fn emc_hits(&self) -> u64 {
        self.emc.stats().hits + self.frames.stats().hits + self.frames6.stats().hits
    }

    /// Empties the exact-match caches (and the signature-match cache).
    pub fn clear_emc(&mut self) {
        self.emc.clear();
        self.frames.clear();
        self.frames6.clear();
        self.smc.clear();
    }

    /// Replaces the signature-match cache with an empty one of `cells`
    /// cells (0: none; [`new`](Self::new) sizes it for its flow limit).
    pub fn set_smc_cells(&mut self, cells: usize) {
        self.smc = Smc::new(cells);
    }

    /// Classifies a batch of at most [`BATCH`] frames received on `in_port`
    /// with no other metadata ([`Metadata::port`]): `out[i]` is frame
    /// `i`'s megaflow, or `None` for an upcall, as
    /// [`lookup_batch`](Self::lookup_batch) of the frames' flow keys
    /// would say.
    ///
    /// Bit `i` of the result says that `keys[i]` and `headers[i]` hold
    /// frame `i`'s key and headers; every frame that missed (`None`) has
    /// them. A frame that hit may have neither: a frame of the common shape
    /// that hits its exact-match cache gets no flow key, and one that hits
    /// a megaflow gets its key but not its headers. A caller whose actions
    /// need them for a hit extracts them itself ([`FlowKey::extract_into`]).
    pub fn classify<B: AsRef<[u8]>>(
        &mut self,
        frames: &[B],
        in_port: u32,
        keys: &mut [FlowKey],
        headers: &mut [Headers],
        out: &mut [Option<FlowId>],
    ) -> u64 {
        let n = frames.len().min(keys.len()).min(headers.len()).min(out.len()).min(BATCH);
        let (frames, out) = (&frames[..n], &mut out[..n]);
        let mut rest = Rest { meta: Metadata::port(in_port), keys: &mut keys[..n], headers: &mut headers[..n] };
        let all = low_bits(n);
        if self.skip_emc() {
            return self.classify_bypassing(frames, &mut rest, out, all);
        }
        // Frame keys first: bit i of `framed_miss` for a keyed frame that
        // missed, of `unframed` for a frame of another shape.
        let (mut framed_miss, mut unframed) = (0u64, 0u64);
        for (i, ((f, o), fk)) in frames.iter().zip(out.iter_mut()).zip(self.frame_keys.iter_mut()).enumerate() {
            *o = match FrameKey::untagged(f.as_ref(), in_port) {
                Some(k) => match self.frames.find(&k, k.hash()) {
                    Some(id) if self.megaflows.contains(id) => Some(id),
                    _ => {
                        // Kept for the offer (a hit's key is not needed).
                        *fk = k;
                        framed_miss |= 1 << i;
                        None
                    }
                },
                None => match tagged_lookup(
                    &mut Tagged { frames: &mut self.frames, megaflows: &self.megaflows },
                    f.as_ref(),
                    in_port,
                    fk,
                ) {
                    Some(Some(id)) => Some(id),
                    Some(None) => {
                        framed_miss |= 1 << i;
                        None
                    }
                    None => {
                        unframed |= 1 << i;
                        None
                    }
                },
            };
        }
        let framed = (all & !unframed).count_ones();
        let frame_hits = framed - framed_miss.count_ones();
        self.frames.count(u64::from(frame_hits), u64::from(framed - frame_hits));
        if framed_miss | unframed == 0 {
            self.count_window(n as u32, frame_hits);
            return 0;
        }
        self.classify_misses(frames, &mut rest, out, [framed_miss, unframed], frame_hits)
    }

    /// [`classify`](Self::classify) while bypassing the EMC: every frame's
    /// key (its headers too, for a frame not of the common shape, or that
    /// misses), then the megaflow cache. Out of line, as is the miss path
    /// below, so that the frame-key hit loop keeps its registers.
    #[inline(never)]
    fn classify_bypassing<B: AsRef<[u8]>>(
        &mut self,
        frames: &[B],
        rest: &mut Rest<'_>,
        out: &mut [Option<FlowId>],
        all: u64,
    ) -> u64 {
        out.fill(None);
        // The signature-match cache first, for the untagged frame keys.
        // Each key hashed, and its bucket asked for, as soon as it exists,
        // so that the buckets arrive while the next keys are built.
        let mut framed = 0u64;
        if self.smc_on() {
            let deep = self.megaflows.deep();
            for (i, ((f, fk), h)) in
                frames.iter().zip(self.frame_keys.iter_mut()).zip(self.smc_hashes.iter_mut()).enumerate()
            {
                if let Some(k) = FrameKey::untagged(f.as_ref(), rest.meta.in_port) {
                    *fk = k;
                    *h = k.hash();
                    if deep {
                        self.smc.prefetch(*h);
                    }
                    framed |= 1 << i;
                }
            }
        }
        let missed = self.smc_probe(framed, out);
        let pending = all & !(framed & !missed);
        if pending == 0 {
            return 0;
        }
        let (full, started) = if pending == all {
            self.build_keys::<B, true>(frames, rest, all, all)
        } else {
            self.build_keys::<B, false>(frames, rest, pending, pending)
        };
        self.megaflows.lookup_started(rest.keys, pending, started.then_some(&*self.early_hashes), out);
        for i in bits(missed) {
            if let Some(Some(id)) = out.get(i) {
                self.smc_insert(self.smc_hashes[i], *id);
            }
        }
        full | parse_missed(frames, rest.headers, out, pending & !full)
    }

    /// Whether frames look in the signature-match cache: when it has cells
    /// and the megaflow slab is beyond the CPU caches
    /// ([`MegaflowCache::deep`]). With the megaflows in cache, building a
    /// flow key and looking it up costs less than a random read of the
    /// 16 MB signature table (measured with a million microflows over 3907
    /// megaflows: BENCHMARKS.md, "Eighth round").
    #[inline(always)]
    fn smc_on(&self) -> bool {
        self.smc.cells() != 0 && self.megaflows.deep()
    }

    /// The signature-match cache for the untagged keyed frames in `which`
    /// (their keys in `frame_keys`), in three passes over the batch as the
    /// megaflow cache's deep lookup does: every key's hash (kept in
    /// `smc_hashes`), its bucket asked for; every bucket's first candidate,
    /// its slot's first line asked for; every candidate compared. Hits go
    /// to `out`; returns the frames that missed.
    #[inline(always)]
    fn smc_lookup(&mut self, which: u64, out: &mut [Option<FlowId>]) -> u64 {
        let deep = self.megaflows.deep();
        for i in bits(which) {
            let h = self.frame_keys[i].hash();
            self.smc_hashes[i] = h;
            if deep {
                self.smc.prefetch(h);
            }
        }
        self.smc_probe(which, out)
    }

    /// [`smc_lookup`](Self::smc_lookup) of frames whose hashes are in
    /// `smc_hashes` and whose buckets were asked for.
    #[inline(always)]
    fn smc_probe(&mut self, which: u64, out: &mut [Option<FlowId>]) -> u64 {
        if which == 0 {
            return 0;
        }
        let deep = self.megaflows.deep();
        let mut cand = [u32::MAX; BATCH];
        for i in bits(which) {
            let h = self.smc_hashes[i];
            let c = self.smc.candidates(h);
            if c != 0 {
                cand[i] = self.smc.slot(h, c.trailing_zeros());
                if deep {
                    self.megaflows.prefetch_slot(cand[i]);
                }
            }
        }
        let mut missed = which;
        for i in bits(which) {
            let k = &self.frame_keys[i];
            let hit = match self.megaflows.find_framed(k, cand[i]) {
                Some(id) => Some(id),
                // No candidate at all: no bucket to read again.
                None if cand[i] == u32::MAX => None,
                None => self.smc_others(k, self.smc_hashes[i]),
            };
            if let (Some(id), Some(o)) = (hit, out.get_mut(i)) {
                *o = Some(id);
                missed &= !(1 << i);
            }
        }
        let hits = (which & !missed).count_ones();
        self.smc.count(u64::from(hits), u64::from(missed.count_ones()));
        missed
    }

    /// The cells of `h`'s bucket past its first candidate (rare: two
    /// signatures equal by chance).
    #[cold]
    fn smc_others(&self, k: &FrameKey, h: u64) -> Option<FlowId> {
        let mut c = self.smc.candidates(h);
        c &= c.wrapping_sub(1);
        while c != 0 {
            let j = c.trailing_zeros();
            c &= c - 1;
            if let Some(id) = self.megaflows.find_framed(k, self.smc.slot(h, j)) {
                return Some(id);
            }
        }
        None
    }

    /// Remembers megaflow `id` for frames whose frame key hashes to `h`,
    /// if it has a frame form.
    #[inline(always)]
    fn smc_insert(&mut self, h: u64, id: FlowId) {
        if self.megaflows.framed(id) {
            self.smc.insert(h, id.slot());
        }
    }

    /// [`classify`](Self::classify) after the IPv4 frame keys, for the
    /// frames that missed (`framed_miss`) or have none (`unframed`): the
    /// IPv6 frame keys of the latter first. (Here rather than in the loop
    /// over IPv4 frame keys: three ways of doing it there each cost an
    /// IPv4 hit 2 to 8 instructions, callgrind on `examples/extract_profile
    /// frames`; here an IPv6 hit costs 248 instructions against 207 to
    /// 221 there, `frames6`.)
    #[inline(never)]
    fn classify_misses<B: AsRef<[u8]>>(
        &mut self,
        frames: &[B],
        rest: &mut Rest<'_>,
        out: &mut [Option<FlowId>],
        [framed_miss, unframed]: [u64; 2],
        frame_hits: u32,
    ) -> u64 {
        // The untagged IPv4 frames that missed: the signature-match cache,
        // its hits offered to the exact-match cache.
        let mut smc_which = 0u64;
        if self.smc_on() {
            for i in bits(framed_miss) {
                smc_which |= u64::from(self.frame_keys[i].is_untagged()) << i;
            }
        }
        let smc_missed = self.smc_lookup(smc_which, out);
        for i in bits(smc_which & !smc_missed) {
            if let Some(Some(id)) = out.get(i) {
                self.frames.offer(&self.frame_keys[i], self.smc_hashes[i], *id);
            }
        }
        let framed_miss = framed_miss & !(smc_which & !smc_missed);
        let (mut unframed, mut v6_miss, mut v6_hits) = (unframed, 0u64, 0u32);
        for i in bits(unframed) {
            let (Some(f), Some(o)) = (frames.get(i), out.get_mut(i)) else { continue };
            let Some(k) = FrameKey6::extract(f.as_ref(), rest.meta.in_port) else { continue };
            unframed &= !(1 << i);
            match self.frames6.find(&k, k.hash()) {
                Some(id) if self.megaflows.contains(id) => {
                    v6_hits += 1;
                    *o = Some(id);
                }
                _ => {
                    self.frame_keys6[i % BATCH] = k;
                    v6_miss |= 1 << i;
                }
            }
        }
        if v6_hits != 0 || v6_miss != 0 {
            self.frames6.count(u64::from(v6_hits), u64::from(v6_miss.count_ones()));
        }
        let (framed_miss, frame_hits) = (framed_miss | v6_miss, frame_hits + v6_hits);
        if framed_miss | unframed == 0 {
            self.count_window(frames.len() as u32, frame_hits);
            return 0;
        }
        // A keyed frame's key alone (its headers only if it misses the
        // megaflows too).
        let (full, started) = self.build_keys::<B, false>(frames, rest, framed_miss | unframed, framed_miss);
        let keys = &*rest.keys;
        let mut flow_hits = 0u32;
        let mut pending = framed_miss;
        for i in bits(unframed) {
            let (Some(k), Some(o)) = (keys.get(i), out.get_mut(i)) else { continue };
            match self.emc.find(k, k.hash()) {
                Some(id) if self.megaflows.contains(id) => {
                    flow_hits += 1;
                    *o = Some(id);
                }
                _ => pending |= 1 << i,
            }
        }
        self.emc.count(u64::from(flow_hits), u64::from(unframed.count_ones() - flow_hits));
        self.count_window(frames.len() as u32, frame_hits + flow_hits);
        if pending != 0 {
            self.megaflows.lookup_started(keys, pending, started.then_some(&*self.early_hashes), out);
            for i in bits(pending) {
                let (Some(k), Some(Some(id))) = (keys.get(i), out.get(i)) else { continue };
                if v6_miss & (1 << i) != 0 {
                    let fk = self.frame_keys6[i % BATCH];
                    self.frames6.offer(&fk, fk.hash(), *id);
                } else if framed_miss & (1 << i) != 0 {
                    let fk = self.frame_keys[i];
                    let h = fk.hash();
                    self.frames.offer(&fk, h, *id);
                    if smc_missed & (1 << i) != 0 {
                        self.smc_insert(h, *id);
                    }
                } else {
                    self.emc.offer(k, k.hash(), *id);
                }
            }
        }
        // (A tagged keyed frame got its headers with its key.)
        full | parse_missed(frames, rest.headers, out, framed_miss & !full)
    }

    /// Builds the keys of the frames in `which`, each one's first bucket
    /// asked for as soon as it exists (a lookup beyond the caches; see
    /// `MegaflowCache::early`): the straight line alone for the frames in
    /// `bare` that have the common shape, the key and the headers for the
    /// others. Returns the frames whose headers were filled, and whether
    /// the early hashes were taken. `ALL`: every frame, all bare (a
    /// bypassed batch); its loop then tests no bits, which saves 13
    /// instructions a packet (callgrind, `million`).
    #[inline(always)]
    fn build_keys<B: AsRef<[u8]>, const ALL: bool>(
        &mut self,
        frames: &[B],
        rest: &mut Rest<'_>,
        which: u64,
        bare: u64,
    ) -> (u64, bool) {
        let early = self.megaflows.early();
        let mut full = 0u64;
        // All frames walked, the others skipped: a zipped walk checks no
        // bounds.
        for (i, ((f, k), h)) in frames.iter().zip(rest.keys.iter_mut()).zip(rest.headers.iter_mut()).enumerate() {
            if !ALL && which & (1 << i) == 0 {
                continue;
            }
            if (!ALL && bare & (1 << i) == 0) || !k.extract_common(f.as_ref(), &rest.meta) {
                k.extract_into(f.as_ref(), &rest.meta, h);
                full |= 1 << i;
            }
            if let Some(e) = &early {
                self.early_hashes[i % BATCH] = e.start(k);
            }
        }
        (full, early.is_some())
    }

    /// Counts a batch's EMC lookups and hits into the window, and ends the
    /// window when it is full.
    #[inline(always)]
    fn count_window(&mut self, lookups: u32, hits: u32) {
        self.window_lookups += lookups;
        self.window_hits += hits;
        if self.window_lookups >= self.window_len {
            self.end_window();
        }
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
        if self.skip_emc() {
            out.fill(None);
            self.megaflows.lookup_pending(keys, low_bits(n), out);
            return;
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
        if self.window_lookups >= self.window_len {
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

    /// Whether this batch skips the EMC: while bypassing, all but one
    /// batch in [`SAMPLE_EVERY`] (counted as bypassed).
    #[inline(always)]
    fn skip_emc(&mut self) -> bool {
        if !self.bypass {
            return false;
        }
        self.since_sample += 1;
        if self.since_sample < SAMPLE_EVERY {
            self.emc.count_bypassed();
            return true;
        }
        self.since_sample = 0;
        false
    }

    /// A window of EMC lookups is complete: bypass the EMC from now on if
    /// it hit too rarely, stop bypassing if it hit often enough.
    #[cold]
    fn end_window(&mut self) {
        self.bypass =
            u64::from(self.window_hits) * 1000 < u64::from(self.window_lookups) * u64::from(MIN_HIT_PER_MILLE);
        self.window_len = if self.bypass { SAMPLED_WINDOW } else { WINDOW };
        self.window_lookups = 0;
        self.window_hits = 0;
        self.since_sample = 0;
    }
}

/// What a tagged frame's frame-key lookup reads and fills: the frame-key
/// EMC and the megaflows it answers with (one argument, so that
/// [`tagged_lookup`]'s arguments all travel in registers and it can hand
/// over to the key's builder with a jump).
struct Tagged<'a> {
    frames: &'a mut Emc<FrameKey>,
    megaflows: &'a MegaflowCache,
}

/// The frame-key lookup of a frame with one or two VLAN tags: `None` when it
/// has no frame key either, `Some(None)` for a miss (its key left in `fk`
/// for the offer). Out of line, so that [`FlowCache::classify`]'s loop
/// over untagged frames keeps its registers (with the tagged key inline
/// there, an untagged hit cost 2 ns more; with only [`FrameKey::tags`]
/// there, 13 instructions more, callgrind on `examples/extract_profile
/// frames`). It only tells the tags apart; the key is built in one of two
/// functions of its own, so that the frames turned away here (mostly IPv6
/// ones) pay for no register saves.
#[inline(never)]
fn tagged_lookup(t: &mut Tagged<'_>, frame: &[u8], in_port: u32, fk: &mut FrameKey) -> Option<Option<FlowId>> {
    match FrameKey::tags(frame) {
        1 => one_tag_lookup(t, frame, in_port, fk),
        2 => two_tags_lookup(t, frame, in_port, fk),
        _ => None,
    }
}

/// [`tagged_lookup`] of a frame with one tag.
#[inline(never)]
fn one_tag_lookup(t: &mut Tagged<'_>, frame: &[u8], in_port: u32, fk: &mut FrameKey) -> Option<Option<FlowId>> {
    Some(t.find(FrameKey::one_tag(frame, in_port)?, fk))
}

/// [`tagged_lookup`] of a frame that may have two tags.
#[inline(never)]
fn two_tags_lookup(t: &mut Tagged<'_>, frame: &[u8], in_port: u32, fk: &mut FrameKey) -> Option<Option<FlowId>> {
    Some(t.find(FrameKey::two_tags(frame, in_port)?, fk))
}

impl Tagged<'_> {
    /// The frame-key EMC's answer for `k`, `None` for a miss (`k` left in
    /// `fk` for the offer).
    #[inline(always)]
    fn find(&mut self, k: FrameKey, fk: &mut FrameKey) -> Option<FlowId> {
        match self.frames.find(&k, k.hash()) {
            Some(id) if self.megaflows.contains(id) => Some(id),
            _ => {
                *fk = k;
                None
            }
        }
    }
}

/// What [`FlowCache::classify`]'s miss paths fill besides the answers:
/// the keys and headers, and the metadata the keys are built with.
struct Rest<'a> {
    meta: Metadata,
    keys: &'a mut [FlowKey],
    headers: &'a mut [Headers],
}

/// The headers of the frames in `which` that missed both caches (their
/// keys were built without them); returns those frames' bits.
fn parse_missed<B: AsRef<[u8]>>(frames: &[B], headers: &mut [Headers], out: &[Option<FlowId>], which: u64) -> u64 {
    let mut parsed = 0;
    for i in bits(which) {
        if let (Some(f), Some(h), Some(None)) = (frames.get(i), headers.get_mut(i), out.get(i)) {
            // The key was built, so the result only repeats what it said.
            let _ = h.parse_into(f.as_ref());
            parsed |= 1 << i;
        }
    }
    parsed
}

/// The signature-match cache's cells for a flow limit: twice the limit
/// (so that a bucket rarely holds more flows than its ten cells), between
/// 1024 and 2M (16 MB, as much as a million-entry megaflow index: 16 bytes
/// a flow, which keeps a megaflow and its share of both within 256 bytes).
fn smc_cells(flow_limit: usize) -> usize {
    flow_limit.saturating_mul(2).clamp(1 << 10, 1 << 21)
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
    use sluice_packet::Headers;
    use sluice_packet::headers::fast_shape;

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

    /// Frames of every shape for flow `i`: the common shapes (IPv4 UDP, and
    /// TCP with a few flag values, untagged or with one or two VLAN tags of
    /// either TPID; IPv6 UDP and TCP, untagged or with one tag) and others
    /// (IPv6 with two tags, IPv6 EtherType on an IPv4 body, a UDP frame too
    /// short for a frame key, an ARP-sized runt).
    fn frame_of(i: u32) -> Vec<u8> {
        if i % 8 == 3 {
            let mut f = crate::frame::testing::frame_v6(i % 16 == 11, 80, u64::from(i / 8) + 1);
            f[22..26].copy_from_slice(&(i / 8).to_be_bytes());
            f[67] = [0x02, 0x10, 0x18][(i / 2 % 3) as usize];
            if i % 64 == 59 {
                f.truncate(70);
            }
            if i % 32 == 19 {
                f = crate::frame::testing::tagged(&f, 7);
            }
            if i % 64 == 27 {
                f = crate::frame::testing::tagged_as(&f, 0x88a8, 7);
            }
            if i % 128 == 35 {
                f = crate::frame::testing::tagged_as(&crate::frame::testing::tagged(&f, 7), 0x88a8, 100);
            }
            return f;
        }
        let mut f = crate::frame::testing::frame(i.is_multiple_of(2), 64, u64::from(i / 8) + 1);
        f[26..30].copy_from_slice(&(i / 8).to_be_bytes());
        f[47] = [0x02, 0x10, 0x18][(i / 2 % 3) as usize];
        match i % 8 {
            5 => match i % 32 {
                13 | 29 => f.splice(12..12, [0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x07]).for_each(drop),
                21 => f.splice(12..12, [0x88, 0xa8, 0x00, 0x07]).for_each(drop),
                _ => f.splice(12..12, [0x81, 0x00, 0x00, 0x07]).for_each(drop),
            },
            6 => f[12..14].copy_from_slice(&[0x86, 0xdd]),
            7 => {
                f.truncate(44);
                f[23] = 17;
                f[16..18].copy_from_slice(&30u16.to_be_bytes());
                f[38..40].copy_from_slice(&10u16.to_be_bytes());
            }
            _ => {}
        }
        if i % 64 == 63 {
            f.truncate(20);
        }
        f
    }

    /// Tagged TCP frames that differ only in their flags, under megaflows
    /// that match the flags: each frame-key hit answers its own flags'
    /// megaflow, with one tag or two.
    #[test]
    fn tagged_frame_keys_keep_tcp_flags_apart() {
        use crate::frame::testing::{frame, tagged, tagged_as};
        let mask = Mask::of(&[Field::InPort, Field::EthType, Field::Ipv4Src, Field::TcpFlags]);
        for tags in [1, 2] {
            let mut c = FlowCache::new(256, InsertPolicy::Always, 1000, 1);
            let frames: Vec<Vec<u8>> = [0x02u8, 0x10, 0x18]
                .iter()
                .map(|&flags| {
                    let mut f = frame(true, 64, 5);
                    f[47] = flags;
                    let f = tagged(&f, 7);
                    if tags == 2 { tagged_as(&f, 0x88a8, 100) } else { f }
                })
                .collect();
            let (mut keys, mut headers, mut out) = ([FlowKey::ZERO; 3], [Headers::EMPTY; 3], [None; 3]);
            let mut ids = Vec::new();
            for f in &frames {
                let k = FlowKey::extract(f, &Metadata::port(1), &mut Headers::EMPTY.clone());
                ids.push(c.megaflows.install(&k, &mask, Actions::output(1), 0).unwrap());
            }
            for round in 0..4 {
                // Each frame alone in its batch, in turn, then all three.
                for (f, id) in frames.iter().zip(&ids) {
                    c.classify(std::slice::from_ref(f), 1, &mut keys[..1], &mut headers[..1], &mut out[..1]);
                    assert_eq!(out[0], Some(*id), "{tags} tags, round {round}");
                }
                c.classify(&frames, 1, &mut keys, &mut headers, &mut out);
                assert_eq!(out.to_vec(), ids.iter().map(|&id| Some(id)).collect::<Vec<_>>(), "{tags} tags");
            }
            assert!(c.frames.stats().hits >= 12, "{tags} tags: {:?}", c.frames.stats());
        }
    }

    /// A signature-match cache cell outlives its megaflow, and the slot it
    /// names may hold another megaflow by the next lookup. The cell's frame
    /// is compared with that megaflow's frame form, so it finds the
    /// megaflow only if it matches: with the exact-match cache in the way,
    /// and bypassed.
    #[test]
    fn smc_cells_answer_only_with_megaflows_that_match() {
        use crate::frame::testing::frame;
        let five = Mask::five_tuple();
        let key = |f: &[u8]| FlowKey::extract(f, &Metadata::port(1), &mut Headers::EMPTY.clone());
        let classify = |c: &mut FlowCache, f: &Vec<u8>| {
            let mut out = [None];
            c.classify(std::slice::from_ref(f), 1, &mut [FlowKey::ZERO], &mut [Headers::EMPTY], &mut out);
            out[0]
        };
        let (a, b) = (frame(false, 64, 1), frame(true, 64, 2));
        for bypass in [false, true] {
            // An EMC that admits nothing, and megaflows enough for the
            // slab to be beyond the caches: every lookup reaches the SMC.
            let mut c = FlowCache::new(64, InsertPolicy::Never, 20_000, 1);
            let filler = FlowKey::ZERO.with(Field::InPort, 7).with(Field::EthType, 0x0800);
            for i in 0..10_000u32 {
                c.megaflows.install(&filler.with(Field::Ipv4Src, u128::from(i)), &five, Actions::output(1), 0).unwrap();
            }
            assert!(c.megaflows.deep());
            if bypass {
                let warm = c.megaflows.install(&key(&b), &five, Actions::output(9), 0).unwrap();
                let batch = vec![b.clone(); BATCH];
                let (mut keys, mut headers, mut out) = ([FlowKey::ZERO; BATCH], [Headers::EMPTY; BATCH], [None; BATCH]);
                while !c.bypassing() {
                    c.classify(&batch, 1, &mut keys, &mut headers, &mut out);
                }
                assert!(c.megaflows.remove(warm));
            }
            let hits = c.smc.stats().hits;
            let ida = c.megaflows.install(&key(&a), &five, Actions::output(1), 0).unwrap();
            assert_eq!(classify(&mut c, &a), Some(ida), "bypass {bypass}: the megaflow cache's hit");
            assert_eq!(classify(&mut c, &a), Some(ida), "bypass {bypass}: the SMC's hit");
            assert_eq!(c.smc.stats().hits, hits + 1, "bypass {bypass}");
            // Removed, and its slot taken by a megaflow that `a` does not match.
            assert!(c.megaflows.remove(ida));
            let idb = c.megaflows.install(&key(&b), &five, Actions::output(2), 0).unwrap();
            assert_eq!(idb.slot(), ida.slot());
            assert_eq!(classify(&mut c, &a), None, "bypass {bypass}");
            assert_eq!(classify(&mut c, &b), Some(idb), "bypass {bypass}");
            // Or by megaflows that `a` misses by one field, each in
            // another of the frame form's packed words: its source address,
            // its destination port, its input port.
            let mut near = Vec::new();
            for (byte, port) in [(Some(29), 1), (Some(37), 1), (None, 2)] {
                let mut f = a.clone();
                if let Some(at) = byte {
                    f[at] ^= 1;
                }
                near.push(FlowKey::extract(&f, &Metadata::port(port), &mut Headers::EMPTY.clone()));
            }
            let mut last = idb;
            for k in &near {
                assert!(c.megaflows.remove(last));
                last = c.megaflows.install(k, &five, Actions::output(4), 0).unwrap();
                assert_eq!(last.slot(), ida.slot());
                assert_eq!(classify(&mut c, &a), None, "bypass {bypass}: {k:?}");
            }
            // Then by one that `a` matches: the stale cell finds it.
            assert!(c.megaflows.remove(last));
            let port = c.megaflows.install(&key(&a), &Mask::of(&[Field::InPort]), Actions::output(3), 0).unwrap();
            assert_eq!(port.slot(), ida.slot());
            let hits = c.smc.stats().hits;
            assert_eq!(classify(&mut c, &a), Some(port), "bypass {bypass}");
            assert_eq!(c.smc.stats().hits, hits + 1, "bypass {bypass}");
        }
    }

    #[test]
    fn classify_agrees_with_the_megaflow_cache_on_every_shape() {
        let masks = [
            Mask::of(&[Field::InPort, Field::EthType]),
            Mask::of(&[Field::InPort, Field::EthType, Field::Ipv4Src, Field::TcpFlags]),
            Mask::of(&[Field::InPort, Field::EthDst, Field::EthSrc, Field::Vlan0, Field::EthType, Field::Ipv4Src]),
        ];
        for policy in [InsertPolicy::Always, InsertPolicy::default()] {
            let mut c = FlowCache::new(256, policy, 10_000, 3);
            let mut keys = [FlowKey::ZERO; BATCH];
            let mut headers = [Headers::EMPTY; BATCH];
            let mut out = [None; BATCH];
            let mut x = 7u32;
            // Double-tagged IPv4 frames that hit without a flow key built.
            let mut qinq_hits = 0;
            // Three phases: 600 flows (in the exact-match caches), churn
            // over 100 000 (a slab beyond the caches, the EMC bypassed),
            // then 5000 of those again (the signature-match cache's hits).
            let mut bypassed_in_churn = false;
            for round in 0..4000u32 {
                let flows = match round {
                    0..1500 => 600,
                    1500..3000 => 100_000,
                    _ => 5000,
                };
                bypassed_in_churn |= round == 2999 && c.bypassing();
                let frames: Vec<Vec<u8>> = (0..BATCH)
                    .map(|_| {
                        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        frame_of((x >> 8) % flows)
                    })
                    .collect();
                let port = 1 + round % 2;
                let extracted = c.classify(&frames, port, &mut keys, &mut headers, &mut out);
                let mut flow_keys = Vec::new();
                for (i, f) in frames.iter().enumerate() {
                    let mut h = Headers::EMPTY;
                    let k = FlowKey::extract(f, &Metadata::port(port), &mut h);
                    assert_eq!(out[i], c.megaflows.lookup(&k), "round {round} frame {i}");
                    if extracted & (1 << i) != 0 {
                        // (A reused `Headers` may keep stale VLAN tags past
                        // its tag count: compare what the actions read.)
                        let g = &headers[i];
                        assert_eq!(keys[i], k);
                        assert_eq!(
                            (g.eth.tag_count, g.l3, g.l3_offset, g.l4_offset, g.payload_offset, g.l4),
                            (h.eth.tag_count, h.l3, h.l3_offset, h.l4_offset, h.payload_offset, h.l4)
                        );
                    } else {
                        // Only a hit may come without its key and headers,
                        // and only a frame of the common shape (or with one
                        // or two tags, or IPv6).
                        assert!(out[i].is_some(), "round {round} frame {i}: a miss without its key");
                        qinq_hits +=
                            usize::from(f.len() > 20 && f[16..18] == [0x81, 0x00] && f[20..22] == [0x08, 0x00]);
                        assert!(
                            FrameKey::extract(f, port).is_some()
                                || FrameKey6::extract(f, port).is_some()
                                || fast_shape(f).is_some()
                        );
                    }
                    flow_keys.push(k);
                }
                for (i, k) in flow_keys.iter().enumerate() {
                    if out[i].is_none() && c.megaflows.lookup(k).is_none() {
                        // The slow path: install under one of the masks,
                        // the same one for every key of a port and
                        // EtherType (which all masks match), so that
                        // megaflows never overlap.
                        let m = &masks[(k.in_port() as usize + k.get(Field::EthType) as usize) % 3];
                        c.megaflows.install(k, m, Actions::output(1), 0).unwrap();
                    }
                }
                if round % 97 == 0 {
                    // Remove a few megaflows: no cache may answer with them.
                    let ids: Vec<FlowId> = c.megaflows.iter().map(|m| m.id).take(5).collect();
                    for id in ids {
                        c.megaflows.remove(id);
                    }
                }
            }
            let (f, f6, e) = (c.frames.stats(), c.frames6.stats(), c.emc.stats());
            assert!(
                f.hits > 5000 && f6.hits > 1000 && e.hits > 1000,
                "frame-key hits {} (IPv6: {}), flow-key hits {}",
                f.hits,
                f6.hits,
                e.hits
            );
            assert!(f6.inserts > 0 && f6.misses > 0, "{f6:?}");
            assert!(qinq_hits > 200, "{qinq_hits} double-tagged frames hit their frame keys");
            // Untagged frames that missed the exact-match cache found their
            // megaflows in the signature-match cache, which answered as the
            // megaflow cache does (above) while megaflows were removed and
            // their slots reused under it.
            let s = c.smc.stats();
            assert!(s.hits > 5000 && s.inserts > 5000, "{s:?}");
            // The later phases ran with a slab beyond the caches, where the
            // first subtable's buckets are asked for while keys are built.
            assert!(c.megaflows.deep(), "{} megaflows", c.megaflows.len());
            if policy == InsertPolicy::default() {
                assert!(bypassed_in_churn && e.bypassed > 0, "churn over 100 000 flows must turn the bypass on");
            }
        }
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
