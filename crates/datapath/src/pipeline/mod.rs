//! The fast path of one datapath thread: parse → exact-match cache →
//! megaflow cache → upcall to the slow path → actions, one batch of up to
//! [`MAX_BATCH`] packets at a time, with the actions run per flow.
//!
//! The caches are asked with frames ([`FlowCache::classify`]): a frame of
//! the common shape (untagged IPv4 UDP or TCP) that hits the exact-match
//! cache on its frame key gets no flow key and no parsed headers, unless
//! its actions need them (anything but a single output), in which case
//! they are built just before the actions run.
//!
//! [`Pipeline::process`] takes the batch a port received and leaves every
//! packet either in a [`TxQueues`] batch for its output port (the caller
//! transmits them) or back in the pool, counted in [`PipelineStats`] by why
//! it was dropped. Misses go to a [`SlowPath`] (for now the NORMAL bridge,
//! [`NormalSlowPath`]), whose decision is installed as a megaflow that
//! matches only the fields the decision consulted.
//!
//! Sans-IO: no syscalls, no clock reads (`now` is an argument, in
//! milliseconds), no locks and no allocation per packet. The slow path may
//! lock and allocate: it runs once per new flow, not per packet.

mod exec;
mod normal;

pub use normal::{NormalSlowPath, PortVlan, TraceReport};

use sluice_flow::{Action, Actions, FlowCache, FlowId, FlowKey, InsertPolicy, Mask, Metadata, Revalidation};
use sluice_packet::{BufferPool, Headers, PacketBuf};

use crate::port::{MAX_BATCH, PacketBatch};

/// A byte of the frame that the key extraction's fast path reads, on the
/// far side of the Ethernet and IPv4 headers from byte 0 (the UDP or TCP
/// destination port): touched up front with byte 0 (see `process`).
const PARSE_TOUCH: usize = 37;

/// A slow path's decision for a packet that missed the caches.
#[derive(Debug, Clone)]
pub struct Upcall {
    /// What to do with the packet (and, when cached, with its flow).
    pub actions: Actions,
    /// The fields the decision looked at: the megaflow's mask.
    pub mask: Mask,
    /// Whether the decision may be cached as a megaflow. False for
    /// decisions about the packet itself rather than its flow (a frame
    /// too short for Ethernet: its key says nothing that a mask could
    /// narrow to).
    pub cache: bool,
    /// When the decision drops, why (counted on this upcall; later hits of
    /// a cached drop count as [`PipelineDrop::FlowDrop`]).
    pub drop: Option<PipelineDrop>,
}

/// The slow path: decides what to do with a flow the caches do not know.
///
/// Shared by every datapath thread, so its methods take `&self` and an
/// implementation locks what it must inside. It runs once per new flow.
pub trait SlowPath: Send + Sync {
    /// Decides for the packet `frame` (already parsed into `headers`, with
    /// flow key `key`), received at `now`. May learn from it.
    fn upcall(&self, key: &FlowKey, headers: &Headers, frame: &[u8], now: u64) -> Upcall;

    /// A number that changes whenever a cached decision may have become
    /// wrong (a station learned, moved or aged out; a port or VLAN changed).
    /// Threads compare it between batches and [`Pipeline::revalidate`].
    fn generation(&self) -> u64;

    /// The decision for a cached megaflow's match now, without learning:
    /// keep it, replace its actions, or remove it.
    fn revalidate(&self, matching: &sluice_flow::Match, actions: &Actions, now: u64) -> Revalidation;

    /// Tells the slow path which stations sent traffic through cached
    /// megaflows since the last call: (in_port, outer VLAN field, source
    /// MAC). A learning slow path refreshes their age here, since cache
    /// hits never reach it.
    fn refresh(&self, _stations: &[(u32, u32, sluice_packet::MacAddr)], _now: u64) {}

    /// Periodic upkeep (about once a second): ageing and the like.
    fn housekeep(&self, _now: u64) {}
}

/// Why the pipeline dropped a packet (port-level drops are in
/// [`DropReason`](crate::DropReason)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PipelineDrop {
    /// Not a parseable Ethernet frame (too short, or a cut VLAN tag).
    Malformed,
    /// The input port is not on the bridge.
    UnknownPort,
    /// The input port's VLAN mode refused the frame.
    VlanRefused,
    /// A multicast or broadcast source MAC.
    MulticastSource,
    /// The destination was learned on the input port.
    SamePort,
    /// No other port carries the frame's VLAN.
    NoOutput,
    /// A cached megaflow whose action is drop.
    FlowDrop,
    /// The TTL or hop limit ran out.
    TtlExpired,
    /// An action this datapath does not execute yet (meter, conntrack,
    /// recirculate, tunnel pop, userspace).
    Unsupported,
    /// A VLAN pop on an untagged frame, or a rewrite of a field the packet
    /// does not have.
    BadAction,
    /// The packet could not be copied for a second output: the pool was
    /// empty.
    NoBuffer,
    /// An output to a port number that is not attached.
    NoSuchPort,
    /// The output port's transmit batch was full.
    TxQueueFull,
    /// Tunnel encapsulation failed (no headroom, or too long).
    Encap,
}

impl PipelineDrop {
    /// Every reason, in counter order.
    pub const ALL: [PipelineDrop; 14] = [
        PipelineDrop::Malformed,
        PipelineDrop::UnknownPort,
        PipelineDrop::VlanRefused,
        PipelineDrop::MulticastSource,
        PipelineDrop::SamePort,
        PipelineDrop::NoOutput,
        PipelineDrop::FlowDrop,
        PipelineDrop::TtlExpired,
        PipelineDrop::Unsupported,
        PipelineDrop::BadAction,
        PipelineDrop::NoBuffer,
        PipelineDrop::NoSuchPort,
        PipelineDrop::TxQueueFull,
        PipelineDrop::Encap,
    ];

    /// A short snake_case name for counters.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineDrop::Malformed => "malformed",
            PipelineDrop::UnknownPort => "unknown_port",
            PipelineDrop::VlanRefused => "vlan_refused",
            PipelineDrop::MulticastSource => "multicast_source",
            PipelineDrop::SamePort => "same_port",
            PipelineDrop::NoOutput => "no_output",
            PipelineDrop::FlowDrop => "flow_drop",
            PipelineDrop::TtlExpired => "ttl_expired",
            PipelineDrop::Unsupported => "unsupported_action",
            PipelineDrop::BadAction => "bad_action",
            PipelineDrop::NoBuffer => "no_buffer",
            PipelineDrop::NoSuchPort => "no_such_port",
            PipelineDrop::TxQueueFull => "tx_queue_full",
            PipelineDrop::Encap => "encap_failed",
        }
    }
}

impl std::fmt::Display for PipelineDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of one pipeline (one datapath thread).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Packets processed.
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
    /// Hits in the exact-match cache.
    pub emc_hits: u64,
    /// Hits in the megaflow cache (after an EMC miss), found through the
    /// signature-match cache or by flow key.
    pub megaflow_hits: u64,
    /// Packets that went to the slow path.
    pub upcalls: u64,
    /// Megaflows installed.
    pub installed: u64,
    /// Upcalls whose decision could not be installed (not cacheable, or
    /// the megaflow cache refused it); the packet was still handled.
    pub not_installed: u64,
    /// Packets handed to an output port's transmit batch (a flooded packet
    /// counts once per port).
    pub outputs: u64,
    /// Drops, indexed as [`PipelineDrop::ALL`].
    pub drops: [u64; PipelineDrop::ALL.len()],
    /// Megaflows removed or changed by revalidation.
    pub revalidated: u64,
    /// Megaflows removed for idleness.
    pub expired: u64,
}

impl PipelineStats {
    /// Drops for `reason`.
    pub fn drop_count(&self, reason: PipelineDrop) -> u64 {
        self.drops[reason as usize]
    }

    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds `other` into `self` (totals over threads).
    pub fn merge(&mut self, other: &PipelineStats) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.emc_hits += other.emc_hits;
        self.megaflow_hits += other.megaflow_hits;
        self.upcalls += other.upcalls;
        self.installed += other.installed;
        self.not_installed += other.not_installed;
        self.outputs += other.outputs;
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
        self.revalidated += other.revalidated;
        self.expired += other.expired;
    }

    #[inline]
    fn count_drop(&mut self, reason: PipelineDrop, n: u64) {
        self.drops[reason as usize] += n;
    }
}

/// Per output port transmit batches, filled by [`Pipeline::process`] and
/// emptied by the caller (which owns the ports) after each call.
#[derive(Debug)]
pub struct TxQueues {
    batches: Vec<PacketBatch>,
    dirty: Vec<u32>,
}

/// Packets one output port may collect from one call of
/// [`Pipeline::process`]: a full batch, twice (a list may output to a port
/// more than once).
pub const TX_QUEUE_CAPACITY: usize = 2 * MAX_BATCH;

impl TxQueues {
    /// Queues for port numbers `0..ports`; outputs to higher numbers are
    /// dropped as [`PipelineDrop::NoSuchPort`].
    pub fn new(ports: usize) -> TxQueues {
        TxQueues {
            batches: (0..ports).map(|_| PacketBatch::with_capacity(TX_QUEUE_CAPACITY)).collect(),
            dirty: Vec::with_capacity(ports),
        }
    }

    /// How many port numbers these queues cover.
    pub fn ports(&self) -> usize {
        self.batches.len()
    }

    /// The port numbers that have packets waiting, in first-output order.
    /// Take each with [`batch_mut`](Self::batch_mut), transmit, then call
    /// [`clear_dirty`](Self::clear_dirty).
    pub fn dirty(&self) -> &[u32] {
        &self.dirty
    }

    /// The batch of port `port`.
    pub fn batch_mut(&mut self, port: u32) -> Option<&mut PacketBatch> {
        self.batches.get_mut(port as usize)
    }

    /// Forgets the dirty list (after every batch in it was transmitted or
    /// recycled).
    pub fn clear_dirty(&mut self) {
        self.dirty.clear();
    }

    /// Empties every batch into `pool` (when ports went away).
    pub fn recycle_all(&mut self, pool: &mut BufferPool) {
        for b in &mut self.batches {
            b.recycle(pool);
        }
        self.dirty.clear();
    }

    /// Moves all of `batch` to port `port`'s queue, in order, when the port
    /// exists and all of it fits; otherwise moves nothing and says false.
    #[inline]
    fn push_batch(&mut self, port: u32, batch: &mut PacketBatch) -> bool {
        let Some(b) = self.batches.get_mut(port as usize) else {
            return false;
        };
        let was_empty = b.is_empty();
        if !b.append_all(batch) {
            return false;
        }
        if was_empty && !b.is_empty() {
            self.dirty.push(port);
        }
        true
    }

    #[inline]
    fn push(&mut self, port: u32, buf: PacketBuf) -> Result<(), (PacketBuf, PipelineDrop)> {
        let Some(b) = self.batches.get_mut(port as usize) else {
            return Err((buf, PipelineDrop::NoSuchPort));
        };
        let was_empty = b.is_empty();
        match b.push(buf) {
            Ok(()) => {
                if was_empty {
                    self.dirty.push(port);
                }
                Ok(())
            }
            Err(buf) => Err((buf, PipelineDrop::TxQueueFull)),
        }
    }
}

/// Sizes of a pipeline's caches.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    /// Exact-match cache entries.
    pub emc_entries: usize,
    /// Its insertion policy.
    pub emc_policy: InsertPolicy,
    /// Most megaflows held.
    pub flow_limit: usize,
    /// Seed of the EMC's admission randomness.
    pub seed: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            emc_entries: sluice_flow::emc::DEFAULT_ENTRIES,
            emc_policy: InsertPolicy::default(),
            flow_limit: sluice_flow::megaflow::DEFAULT_FLOW_LIMIT,
            seed: 0x5eed,
        }
    }
}

/// One datapath thread's fast path (see the module docs).
pub struct Pipeline {
    cache: FlowCache,
    keys: Box<[FlowKey; MAX_BATCH]>,
    headers: Box<[Headers; MAX_BATCH]>,
    flows: [Option<FlowId>; MAX_BATCH],
    /// Uncached upcall decisions of the batch in flight, by packet; empty
    /// between calls (only misses touch it).
    direct: [Option<Actions>; MAX_BATCH],
    stats: PipelineStats,
    generation: u64,
    emc_hits_seen: u64,
}

impl Pipeline {
    /// A pipeline with empty caches.
    pub fn new(config: PipelineConfig) -> Pipeline {
        Pipeline {
            cache: FlowCache::new(config.emc_entries, config.emc_policy, config.flow_limit, config.seed),
            keys: Box::new([FlowKey::ZERO; MAX_BATCH]),
            headers: Box::new([Headers::EMPTY; MAX_BATCH]),
            flows: [None; MAX_BATCH],
            direct: [const { None }; MAX_BATCH],
            stats: PipelineStats::default(),
            generation: 0,
            emc_hits_seen: 0,
        }
    }

    /// The counters.
    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    /// The caches (for dumps).
    pub fn cache(&self) -> &FlowCache {
        &self.cache
    }

    /// Processes `batch`, received on port `in_port`: every packet ends in
    /// `out` or back in `pool`. `batch` is empty afterwards.
    pub fn process(
        &mut self,
        in_port: u32,
        batch: &mut PacketBatch,
        pool: &mut BufferPool,
        slow: &dyn SlowPath,
        out: &mut TxQueues,
        now: u64,
    ) {
        if batch.len() > MAX_BATCH {
            // Only batches built with a larger capacity get here: the
            // pipeline's arrays hold MAX_BATCH; do the rest afterwards.
            let mut rest = PacketBatch::with_capacity(batch.len() - MAX_BATCH);
            for b in batch.drain_from(MAX_BATCH) {
                let _ = rest.push(b);
            }
            self.process(in_port, batch, pool, slow, out, now);
            self.process(in_port, &mut rest, pool, slow, out, now);
            return;
        }
        let n = batch.len();
        if n == 0 {
            return;
        }
        if slow.generation() != self.generation {
            self.revalidate(slow, now);
        }
        let bufs = &batch.as_slice()[..n];
        // Touch every frame's header bytes first: with many frames in
        // flight each one's first load misses cache (and the TLB), and
        // loads this close together overlap their misses, where the
        // extraction below (a long chain per packet) would wait for them
        // one or two packets at a time. (A plain load: this crate has no
        // `unsafe`, and stable Rust has no safe prefetch.)
        let mut touch = 0u8;
        let mut bytes = 0u64;
        for buf in bufs {
            let f = buf.as_slice();
            touch ^= f.first().copied().unwrap_or(0) ^ f.get(PARSE_TOUCH).copied().unwrap_or(0);
            bytes += f.len() as u64;
        }
        std::hint::black_box(touch);
        self.stats.bytes += bytes;
        self.stats.packets += n as u64;
        let flows = &mut self.flows[..n];
        // Bit i: keys[i] and headers[i] hold packet i's. Every miss has
        // them; a hit may not (a frame-key hit builds neither, nor does a
        // signature-match cache hit; a megaflow hit of the common shape
        // only the key; see the actions below).
        let extracted = self.cache.classify(bufs, in_port, &mut self.keys[..n], &mut self.headers[..n], flows);
        // Bit i: packet i missed both caches.
        let mut missed = 0u32;
        for (i, f) in flows.iter().enumerate() {
            missed |= u32::from(f.is_none()) << i;
        }
        let emc_hits = self.cache.emc_hits();
        let hits = (n as u32 - missed.count_ones()) as u64;
        let emc_delta = emc_hits - self.emc_hits_seen;
        self.emc_hits_seen = emc_hits;
        self.stats.emc_hits += emc_delta;
        self.stats.megaflow_hits += hits.saturating_sub(emc_delta);

        // Misses: a megaflow installed for an earlier miss of this batch may
        // already cover a later one; otherwise ask the slow path. Bit i of
        // `direct`: packet i runs `self.direct[i]`, an uncached decision.
        let mut direct = 0u32;
        let mut m = missed;
        while m != 0 {
            let i = m.trailing_zeros() as usize % MAX_BATCH;
            m &= m - 1;
            if let Some(id) = self.cache.megaflows.lookup(&self.keys[i]) {
                self.flows[i] = Some(id);
                self.stats.megaflow_hits += 1;
                continue;
            }
            self.stats.upcalls += 1;
            let frame = batch.as_slice()[i].as_slice();
            let up = slow.upcall(&self.keys[i], &self.headers[i], frame, now);
            if let Some(reason) = up.drop {
                self.stats.count_drop(reason, 1);
            }
            if up.cache
                && let Ok(id) = self.cache.megaflows.install(&self.keys[i], &up.mask, up.actions.clone(), now)
            {
                self.stats.installed += 1;
                self.flows[i] = Some(id);
                if up.drop.is_some() {
                    // Counted above; do not count it again as a flow drop.
                    self.direct[i] = Some(up.actions);
                    direct |= 1 << i;
                }
                continue;
            }
            self.stats.not_installed += 1;
            self.direct[i] = Some(up.actions);
            direct |= 1 << i;
        }

        // Group by flow and account each flow once; then run each packet's
        // actions in arrival order (so every output port sends in arrival
        // order), with each flow's action list looked up once per batch.
        // Uncached decisions (`direct`) run on their own packet only.
        const DIRECT: u8 = u8::MAX;
        let mut group_of = [DIRECT; MAX_BATCH];
        let mut group_flow = [None::<FlowId>; MAX_BATCH];
        let mut group_len = [0u64; MAX_BATCH];
        let mut group_bytes = [0u64; MAX_BATCH];
        let mut ngroups = 0usize;
        let mut last = DIRECT;
        // Packets in some group (not direct, with a flow).
        let mut grouped = 0usize;
        if missed == 0 && self.flows[1..n].iter().all(|&f| f == self.flows[0]) {
            // The common batch: every packet hit, all one flow.
            group_of[..n].fill(0);
            group_flow[0] = self.flows[0];
            group_len[0] = n as u64;
            group_bytes[0] = bytes;
            ngroups = 1;
            grouped = n;
        } else {
            for (i, buf) in batch.as_slice()[..n].iter().enumerate() {
                if direct & (1 << i) != 0 {
                    continue;
                }
                let Some(f) = self.flows[i] else { continue };
                let g = if last != DIRECT && group_flow[usize::from(last)] == Some(f) {
                    last
                } else {
                    match group_flow[..ngroups].iter().position(|&g| g == Some(f)) {
                        Some(g) => g as u8,
                        None => {
                            group_flow[ngroups] = Some(f);
                            ngroups += 1;
                            (ngroups - 1) as u8
                        }
                    }
                };
                group_of[i] = g;
                group_len[usize::from(g)] += 1;
                group_bytes[usize::from(g)] += buf.len() as u64;
                grouped += 1;
                last = g;
            }
        }
        for g in 0..ngroups {
            if let Some(id) = group_flow[g] {
                self.cache.megaflows.account(id, group_len[g], group_bytes[g], now);
            }
        }
        let megaflows = &self.cache.megaflows;
        let mut group_actions: [Option<&Actions>; MAX_BATCH] = [None; MAX_BATCH];
        for g in 0..ngroups {
            group_actions[g] = group_flow[g].and_then(|id| megaflows.actions(id));
        }
        // The common batch: one flow whose list is a single output. The
        // whole batch moves to that port's queue in one go, in order, when
        // it fits (what `exec::run` would do packet by packet).
        if grouped == n
            && ngroups == 1
            && let Some(a) = group_actions[0]
            && let [Action::Output(p)] = a.as_slice()
            && out.push_batch(*p, batch)
        {
            self.stats.outputs += n as u64;
            return;
        }
        for (i, buf) in batch.drain().enumerate() {
            let taken;
            let (actions, counted) = if direct & (1 << i) != 0
                && let Some(a) = self.direct[i].take()
            {
                // The upcall counted its own drop reason, if any.
                taken = a;
                (&taken, true)
            } else {
                match group_of[i] {
                    g if g != DIRECT => match group_actions[usize::from(g)] {
                        Some(a) => (a, false),
                        None => {
                            self.stats.count_drop(PipelineDrop::FlowDrop, 1);
                            pool.put(buf);
                            continue;
                        }
                    },
                    // A miss whose upcall result could not be used is
                    // always in `direct`; never leak a buffer all the same.
                    _ => {
                        self.stats.count_drop(PipelineDrop::FlowDrop, 1);
                        pool.put(buf);
                        continue;
                    }
                }
            };
            if extracted & (1 << i) == 0 && !matches!(actions.as_slice(), [Action::Output(_)]) {
                // A hit without its headers whose actions read the key or
                // the header offsets.
                self.keys[i].extract_into(buf.as_slice(), &Metadata::port(in_port), &mut self.headers[i]);
            }
            exec::run(actions, buf, &self.keys[i], &self.headers[i], pool, out, &mut self.stats, counted);
        }
    }

    /// Re-checks every megaflow against the slow path (after its
    /// generation changed), and drops stale EMC entries with them.
    pub fn revalidate(&mut self, slow: &dyn SlowPath, now: u64) {
        self.generation = slow.generation();
        let st = self.cache.megaflows.revalidate(&[sluice_flow::Match::CATCH_ALL], |m, a| slow.revalidate(m, a, now));
        self.stats.revalidated += (st.updated + st.removed) as u64;
    }

    /// Removes megaflows idle for more than `max_idle` ms; returns how many.
    pub fn expire(&mut self, now: u64, max_idle: u64) -> usize {
        let n = self.cache.megaflows.expire(now, max_idle);
        self.stats.expired += n as u64;
        n
    }

    /// The distinct (in_port, outer VLAN field, source MAC) of megaflows
    /// that match the source MAC and were used at or after `since`, for
    /// [`SlowPath::refresh`].
    pub fn active_stations(&self, since: u64) -> Vec<(u32, u32, sluice_packet::MacAddr)> {
        let mut v: Vec<_> = self
            .cache
            .megaflows
            .iter()
            .filter(|m| m.used >= since && m.matching.mask().is_exact(sluice_flow::Field::EthSrc))
            .map(|m| {
                let k = m.matching.key();
                (k.in_port(), k.get(sluice_flow::Field::Vlan0) as u32, k.eth_src())
            })
            .collect();
        v.sort_unstable_by_key(|&(p, vl, m)| (p, vl, m.0));
        v.dedup();
        v
    }

    /// Empties both caches.
    pub fn flush(&mut self) {
        self.cache.megaflows.clear();
        self.cache.clear_emc();
    }
}

#[cfg(test)]
mod tests;
