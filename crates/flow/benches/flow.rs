//! Criterion benchmarks for `sluice-flow` (figures in BENCHMARKS.md):
//! key extraction + EMC hit (one packet, and batches of 32); megaflow lookup at 1/10/50 subtables;
//! classifier insert/delete rate; extract+EMC+megaflow throughput at 1 vs
//! 1M flows for each EMC insertion policy (ours vs OVS's 1-in-100); and,
//! printed, memory per megaflow at 1M flows from a counting allocator. It
//! allocates as the `sluice` binary does (`sluice_mem::HugePages`: large
//! tables on transparent huge pages; `SLUICE_SMALL_PAGES=1` turns the
//! huge pages off for the lookup, classifier and pipeline benchmarks).
//!
//! Run: `CARGO_TARGET_DIR=/work/target-flow cargo bench -p sluice-flow`

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_flow::{
    Actions, Classifier, Field, FlowCache, FlowId, FlowKey, InsertPolicy, Mask, Match, MegaflowCache, Metadata,
};
mod common;

use common::{FRAME_LEN, Flows, five_tuple, write_frame};
use sluice_mem::HugePages;
use sluice_packet::Headers;

/// Counts live heap bytes, to measure (not estimate) memory per megaflow,
/// over the allocator the `sluice` binary uses (large tables on huge
/// pages), counting what each block takes from the system.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

fn footprint(l: Layout) -> isize {
    HugePages::footprint(l) as isize
}

// SAFETY: every method forwards to `HugePages` with the caller's arguments
// unchanged, so its guarantees carry over; the counter is only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(footprint(l), Ordering::Relaxed);
        // SAFETY: same contract as our caller's (`l` has non-zero size).
        unsafe { HugePages.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(footprint(l), Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { HugePages.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(footprint(l), Ordering::Relaxed);
        // SAFETY: `p` was allocated by `HugePages` with layout `l` (all our allocations forward to it).
        unsafe { HugePages.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new` with `l.align()` is a valid layout.
        let nl = unsafe { Layout::from_size_align_unchecked(new, l.align()) };
        LIVE.fetch_add(footprint(nl) - footprint(l), Ordering::Relaxed);
        // SAFETY: `p` came from `HugePages` with layout `l`; the caller upholds `new`'s rules.
        unsafe { HugePages.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Criterion measures this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`)
/// instead of wall time: the box is shared (load 5 on 2 cores while these
/// ran), and time spent descheduled is not the code's cost. Cache
/// interference from the neighbours still shows.
struct ThreadCpu(WallTime);

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is available on Linux");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = Duration;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns() - i)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        self.0.to_f64(v)
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

type Crit = Criterion<ThreadCpu>;

fn frame(i: u32) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    write_frame(&mut f, i);
    f
}

fn key_of(i: u32) -> FlowKey {
    let mut h = Headers::EMPTY;
    FlowKey::extract(&frame(i), &Metadata::port(1), &mut h)
}

fn extract_and_emc(c: &mut Crit) {
    let mut g = c.benchmark_group("extract");
    let f = frame(7);
    let meta = Metadata::port(1);
    let mut h = Headers::EMPTY;
    let mut k = FlowKey::ZERO;
    g.throughput(Throughput::Elements(1));
    g.bench_function("key_only", |b| {
        b.iter(|| {
            k.extract_into(black_box(&f), &meta, &mut h);
            black_box(&k);
        })
    });
    g.bench_function("headers_parse_only", |b| {
        b.iter(|| {
            let r = h.parse_into(black_box(&f));
            black_box((&h, r.is_ok()));
        })
    });
    let mut cache = FlowCache::new(8192, InsertPolicy::Always, 1 << 20, 1);
    let key = key_of(7);
    let id = cache.megaflows.install(&key, &five_tuple(), Actions::output(2), 0).unwrap();
    cache.lookup(&key);
    g.bench_function("emc_hit_only", |b| {
        b.iter(|| {
            let got = cache.lookup(black_box(&key));
            debug_assert_eq!(got, Some(id));
            black_box(got)
        })
    });
    g.bench_function("key_plus_emc_hit", |b| {
        b.iter(|| {
            k.extract_into(black_box(&f), &meta, &mut h);
            let got = cache.lookup(&k);
            debug_assert_eq!(got, Some(id));
            black_box(got)
        })
    });
    // As a datapath thread does it: 32 frames extracted into reused slots,
    // then one batched lookup. Throughput is per packet.
    let frames = vec![f; 32];
    let mut keys = vec![FlowKey::ZERO; 32];
    let mut slots = vec![Headers::EMPTY; 32];
    let mut out = [None; 32];
    g.throughput(Throughput::Elements(32));
    g.bench_function("key_plus_emc_hit_batch32", |b| {
        b.iter(|| {
            for ((k, h), f) in keys.iter_mut().zip(&mut slots).zip(black_box(&frames)) {
                k.extract_into(f, &meta, h);
            }
            cache.lookup_batch(&keys, &mut out);
            debug_assert!(out.iter().all(|o| *o == Some(id)));
            black_box(&out);
        })
    });
    // What the datapath does: frame keys, whose hits build no flow key.
    classify_hits(&mut g, "frame_key_plus_emc_hit_batch32", &mut cache, &frames, id);
    // The same from a trunk port: one 802.1Q tag (the five-tuple megaflow
    // matches it too).
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    t.extend_from_slice(&f[12..]);
    classify_hits(&mut g, "frame_key_plus_emc_hit_batch32_tagged", &mut cache, &vec![t; 32], id);
    // And from a provider's QinQ port: an 802.1ad tag outside the 802.1Q
    // one.
    let q = [&f[..12], &[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a][..], &f[12..]].concat();
    classify_hits(&mut g, "frame_key_plus_emc_hit_batch32_qinq", &mut cache, &vec![q; 32], id);
    // IPv6/UDP, 78 bytes, under an IPv6 five-tuple megaflow.
    let mut v6 = f[..12].to_vec();
    v6.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 24, 17, 64]);
    v6.extend((0..32u8).map(|i| 0x20 + i));
    v6.extend_from_slice(&[0x04, 0x00, 0x12, 0xb5, 0, 24, 0, 0]);
    v6.resize(78, 0);
    let mask6 = Mask::of(&[
        Field::InPort,
        Field::EthType,
        Field::NwProto,
        Field::Ipv6Src,
        Field::Ipv6Dst,
        Field::TpSrc,
        Field::TpDst,
    ]);
    let key6 = FlowKey::extract(&v6, &meta, &mut h);
    let id6 = cache.megaflows.install(&key6, &mask6, Actions::output(2), 0).unwrap();
    let mut t6 = v6[..12].to_vec();
    t6.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    t6.extend_from_slice(&v6[12..]);
    classify_hits(&mut g, "frame_key_plus_emc_hit_batch32_ipv6", &mut cache, &vec![v6; 32], id6);
    classify_hits(&mut g, "frame_key_plus_emc_hit_batch32_ipv6_tagged", &mut cache, &vec![t6; 32], id6);
    g.finish();
}

/// Benchmarks `classify` of a batch of `frames` that all hit the
/// exact-match cache on megaflow `id` (they are offered and admitted
/// first: the cache's policy must admit on the first or second offer).
fn classify_hits<B: AsRef<[u8]>>(
    g: &mut BenchmarkGroup<'_, ThreadCpu>,
    name: &str,
    cache: &mut FlowCache,
    frames: &[B],
    id: FlowId,
) {
    let mut keys = vec![FlowKey::ZERO; frames.len()];
    let mut slots = vec![Headers::EMPTY; frames.len()];
    let mut out = vec![None; frames.len()];
    for _ in 0..2 {
        cache.classify(frames, 1, &mut keys, &mut slots, &mut out);
    }
    g.bench_function(name, |b| {
        b.iter(|| {
            let built = cache.classify(black_box(frames), 1, &mut keys, &mut slots, &mut out);
            debug_assert!(built == 0 && out.iter().all(|o| *o == Some(id)));
            black_box(&out);
        })
    });
}

/// A cache with `n` subtables (masks differ in how much of nw_src they
/// match), 1000 entries each, and 1024 keys hitting them uniformly.
fn subtables(n: usize) -> (MegaflowCache, Vec<FlowKey>) {
    let mut c = MegaflowCache::new(1 << 20);
    let mut keys = Vec::new();
    for s in 0..n {
        let mut mask = Mask::of(&[Field::InPort, Field::EthType, Field::NwProto, Field::TpDst]);
        mask.set(Field::Ipv4Src, u128::from(u32::MAX << (s % 32)));
        if s >= 32 {
            mask.set(Field::TpSrc, 0xffff);
        }
        for e in 0..1000u32 {
            let k = key_of(e).with(Field::InPort, s as u128);
            c.install(&k, &mask, Actions::output(s as u32), 0).unwrap();
            if e < 1024 / n as u32 + 1 {
                keys.push(k);
            }
        }
    }
    // Interleave the keys across subtables.
    keys.sort_by_key(|k| k.hash());
    keys.truncate(1024);
    for k in &keys {
        c.lookup(k);
    }
    c.rank_subtables();
    (c, keys)
}

fn megaflow_lookup(c: &mut Crit) {
    choose_pages();
    let mut g = c.benchmark_group("megaflow_lookup");
    for n in [1usize, 10, 50] {
        let (mut cache, keys) = subtables(n);
        assert_eq!(cache.subtable_count(), n);
        g.throughput(Throughput::Elements(keys.len() as u64));
        g.bench_with_input(BenchmarkId::new("hit_uniform", n), &n, |b, _| {
            b.iter(|| {
                for k in &keys {
                    black_box(cache.lookup(k));
                }
            })
        });
        let misses: Vec<FlowKey> = keys.iter().map(|k| k.with(Field::TpDst, 1)).collect();
        g.bench_with_input(BenchmarkId::new("miss_all_probed", n), &n, |b, _| {
            b.iter(|| {
                for k in &misses {
                    black_box(cache.lookup(k));
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("hit_uniform_batch32", n), &n, |b, _| {
            let mut out = [None; 32];
            b.iter(|| {
                for chunk in keys.chunks(32) {
                    cache.lookup_batch(chunk, &mut out);
                    black_box(&out);
                }
            })
        });
    }
    g.finish();
}

fn classifier_rules(n: u32) -> Vec<(Match, u32)> {
    let masks: Vec<Mask> = (0..10)
        .map(|s| {
            let mut m = Mask::of(&[Field::InPort, Field::EthType, Field::TpDst]);
            m.set(Field::Ipv4Src, u128::from(u32::MAX << s));
            m
        })
        .collect();
    (0..n).map(|i| (Match::new(&key_of(i).with(Field::TpDst, u128::from(i)), &masks[i as usize % 10]), i % 7)).collect()
}

fn classifier_edits(c: &mut Crit) {
    choose_pages();
    let mut g = c.benchmark_group("classifier");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    const N: u32 = 200_000;
    let rules = classifier_rules(N);
    g.throughput(Throughput::Elements(u64::from(N)));
    g.bench_function("insert_200k", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let mut cl: Classifier<u32> = Classifier::new();
                let start = thread_cpu_ns();
                for (i, (m, p)) in rules.iter().enumerate() {
                    cl.insert(*m, *p, i as u32).unwrap();
                }
                t += Duration::from_nanos(thread_cpu_ns() - start);
                black_box(&cl);
            }
            t
        })
    });
    g.bench_function("delete_200k", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let mut cl: Classifier<u32> = Classifier::new();
                let ids: Vec<_> =
                    rules.iter().enumerate().map(|(i, (m, p))| cl.insert(*m, *p, i as u32).unwrap()).collect();
                let start = thread_cpu_ns();
                for id in ids {
                    cl.remove(id).unwrap();
                }
                t += Duration::from_nanos(thread_cpu_ns() - start);
                black_box(&cl);
            }
            t
        })
    });
    g.finish();
}

struct Pipeline {
    cache: FlowCache,
    frames: Vec<[u8; FRAME_LEN]>,
    keys: Vec<FlowKey>,
    headers: Vec<Headers>,
    out: Vec<Option<sluice_flow::FlowId>>,
    at: u64,
    flows: Flows,
}

impl Pipeline {
    /// `flows` microflows; megaflows under `mask` (the five-tuple: one
    /// per flow; source address only: 3907 for a million flows).
    fn new(flows: u32, policy: InsertPolicy, mask: Mask) -> Pipeline {
        let mut cache = FlowCache::new(8192, policy, 2_000_000, 7);
        let out = Actions::output(2);
        for i in 0..flows {
            let k = key_of(i);
            if cache.megaflows.lookup(&k).is_none() {
                cache.megaflows.install(&k, &mask, out.clone(), 0).unwrap();
            }
        }
        Pipeline {
            cache,
            frames: vec![[0; FRAME_LEN]; 32],
            keys: vec![FlowKey::ZERO; 32],
            headers: vec![Headers::EMPTY; 32],
            out: vec![None; 32],
            at: 0,
            flows: Flows::new(flows),
        }
    }

    /// One batch of 32: write the frames (as a NIC would), classify them
    /// (frame keys, then flow keys for what they miss).
    #[inline]
    fn batch(&mut self) -> usize {
        for j in 0..32 {
            write_frame(&mut self.frames[j], self.flows.next());
            self.at += 1;
        }
        self.cache.classify(&self.frames, 1, &mut self.keys, &mut self.headers, &mut self.out);
        let mut hit = 0;
        for (o, f) in self.out.iter().zip(&self.frames) {
            if let Some(id) = o {
                self.cache.megaflows.account(*id, 1, f.len() as u64, self.at);
                hit += 1;
            }
        }
        hit
    }
}

/// `SLUICE_SMALL_PAGES=1`: large blocks on 4 KB pages, to measure what
/// huge pages are worth (the `sluice` binary always asks for them).
fn choose_pages() {
    sluice_mem::set_huge_pages(std::env::var_os("SLUICE_SMALL_PAGES").is_none());
}

fn pipeline(c: &mut Crit) {
    choose_pages();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(32));
    g.sample_size(20);
    let policies = [
        ("frequency", InsertPolicy::default()),
        ("ovs_1_in_100", InsertPolicy::Probabilistic { inv: 100 }),
        ("emc_off", InsertPolicy::Never),
    ];
    for flows in [1u32, 1_000_000] {
        for (name, policy) in policies {
            let mut p = Pipeline::new(flows, policy, five_tuple());
            for _ in 0..50_000 {
                p.batch();
            }
            g.bench_function(BenchmarkId::new(name, flows), |b| {
                b.iter(|| {
                    let hits = p.batch();
                    debug_assert_eq!(hits, 32);
                    black_box(hits)
                })
            });
            let s = p.cache.frames.stats();
            eprintln!(
                "EMC {name} at {flows} flows: hit rate {:.1}%, inserts {} per 1000 lookups",
                100.0 * s.hits as f64 / (s.hits + s.misses).max(1) as f64,
                1000 * s.inserts / (s.hits + s.misses).max(1)
            );
        }
    }
    // A million microflows over 3907 megaflows (the slow path matched the
    // source address only, as a realistic rule set lets it).
    let by_src = Mask::of(&[Field::InPort, Field::EthType, Field::Ipv4Src]);
    for (name, policy) in policies {
        let mut p = Pipeline::new(1_000_000, policy, by_src);
        // Flow i has source address 10.0.0.0 + i/256.
        assert_eq!(p.cache.megaflows.len(), 999_999 / 256 + 1);
        for _ in 0..50_000 {
            p.batch();
        }
        g.bench_function(BenchmarkId::new(format!("{name}_3907_megaflows"), 1_000_000), |b| {
            b.iter(|| black_box(p.batch()))
        });
    }
    g.finish();
    // Mixed: half the packets from 1000 elephants, half from 1M mice.
    let mut g = c.benchmark_group("pipeline_mixed");
    g.throughput(Throughput::Elements(32));
    g.sample_size(20);
    for (name, policy) in policies {
        let mut p = Pipeline::new(1_000_000, policy, five_tuple());
        let mut elephants = Flows::new(1000);
        let mut mixed = |p: &mut Pipeline| {
            for j in 0..32 {
                let flow = if p.at.is_multiple_of(2) { elephants.next() } else { p.flows.next() };
                write_frame(&mut p.frames[j], flow);
                p.at += 1;
            }
            p.cache.classify(&p.frames, 1, &mut p.keys, &mut p.headers, &mut p.out);
            black_box(&p.out);
        };
        for _ in 0..50_000 {
            mixed(&mut p);
        }
        let before = p.cache.frames.stats();
        g.bench_function(name, |b| b.iter(|| mixed(&mut p)));
        let s = p.cache.frames.stats();
        let (h, m) = (s.hits - before.hits, s.misses - before.misses);
        eprintln!(
            "EMC {name}, 50% from 1000 elephants + 50% from 1M mice: hit rate {:.1}% (ideal 50%), inserts {} per 1000 lookups",
            100.0 * h as f64 / (h + m).max(1) as f64,
            1000 * (s.inserts - before.inserts) / (h + m).max(1)
        );
    }
    g.finish();
}

fn memory(_c: &mut Crit) {
    const N: u32 = 1_000_000;
    let keys: Vec<FlowKey> = (0..N).map(key_of).collect();
    let mask = five_tuple();
    let shared = Actions::output(2);
    let before = LIVE.load(Ordering::Relaxed);
    let mut c = MegaflowCache::new(2_000_000);
    for k in &keys {
        c.install(k, &mask, shared.clone(), 0).unwrap();
    }
    let used = LIVE.load(Ordering::Relaxed) - before;
    eprintln!("MEMORY megaflow cache, 1M entries, shared action list: {} bytes/megaflow", used / N as isize);
    drop(c);
    let before = LIVE.load(Ordering::Relaxed);
    let mut c = MegaflowCache::new(2_000_000);
    for (i, k) in keys.iter().enumerate() {
        let a = Actions::builder()
            .push(sluice_flow::Action::SetEthDst(sluice_packet::MacAddr([2, 0, 0, 0, (i >> 8) as u8, i as u8])))
            .push(sluice_flow::Action::Output(2))
            .build()
            .unwrap();
        c.install(k, &mask, a, 0).unwrap();
    }
    let used = LIVE.load(Ordering::Relaxed) - before;
    eprintln!("MEMORY megaflow cache, 1M entries, own 2-action list each: {} bytes/megaflow", used / N as isize);
    drop(c);
    // The signature-match cache a thread with room for those megaflows
    // has (`FlowCache::new` with the 2M flow limit the pipeline uses).
    let before = LIVE.load(Ordering::Relaxed);
    let smc = FlowCache::new(8192, InsertPolicy::default(), 2_000_000, 1).smc;
    let used = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "MEMORY signature-match cache, 2M flow limit: {} cells, {used} bytes ({} bytes/megaflow at 1M)",
        smc.cells(),
        used / N as isize
    );
    drop(smc);
    let before = LIVE.load(Ordering::Relaxed);
    let e: sluice_flow::Emc<FlowKey> = sluice_flow::Emc::new(8192, InsertPolicy::default(), 1);
    eprintln!("MEMORY EMC of flow keys, 8192 entries: {} bytes", LIVE.load(Ordering::Relaxed) - before);
    drop(e);
    let before = LIVE.load(Ordering::Relaxed);
    let e: sluice_flow::Emc<sluice_flow::FrameKey> = sluice_flow::Emc::new(8192, InsertPolicy::default(), 1);
    eprintln!("MEMORY EMC of frame keys, 8192 entries: {} bytes", LIVE.load(Ordering::Relaxed) - before);
    drop(e);
    let before = LIVE.load(Ordering::Relaxed);
    let e: sluice_flow::Emc<sluice_flow::FrameKey6> = sluice_flow::Emc::new(8192, InsertPolicy::default(), 1);
    eprintln!("MEMORY EMC of IPv6 frame keys, 8192 entries: {} bytes", LIVE.load(Ordering::Relaxed) - before);
    drop(e);
    // A datapath thread's caches as the switch makes them: the three EMCs
    // and the megaflow cache, empty.
    let before = LIVE.load(Ordering::Relaxed);
    let c = FlowCache::new(8192, InsertPolicy::default(), sluice_flow::megaflow::DEFAULT_FLOW_LIMIT, 1);
    eprintln!(
        "MEMORY FlowCache, 8192-entry EMCs, default flow limit, empty: {} bytes",
        LIVE.load(Ordering::Relaxed) - before
    );
    drop(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu(WallTime));
    targets = memory, extract_and_emc, megaflow_lookup, classifier_edits, pipeline
}
criterion_main!(benches);
