//! The datapath on memory ports, one core: receive a batch of 32 64-byte
//! frames from memory port p1, run the pipeline (key extraction, EMC,
//! megaflow cache, upcalls to the NORMAL bridge on misses, actions), and
//! transmit to memory port p2 — the work of one datapath thread. The
//! generator and sink (rewriting each recycled frame to its next flow and
//! handing it back to p1) run in the same thread but outside the timed
//! section, measured per batch with the monotonic clock.
//!
//! Flows differ in IPv4 source and UDP source port; the NORMAL bridge
//! matches on L2, so they share one megaflow, and the exact-match cache
//! sees 1, 10k or 1M distinct keys. The "io only" row moves the same
//! batches p1 -> p2 with no pipeline: the ceiling of these ports.
//!
//! `cargo bench -p sluice-switch --bench pipeline`

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_datapath::bridge::{BridgeConfig, VlanMode};
use sluice_datapath::pipeline::{NormalSlowPath, Pipeline, PipelineConfig, TxQueues};
use sluice_datapath::{MAX_BATCH, PacketBatch, Port};
use sluice_io::MemPort;
use sluice_packet::BufferPool;

/// As in the `sluice` binary: large tables on transparent huge pages.
#[global_allocator]
static ALLOC: sluice_mem::HugePages = sluice_mem::HugePages;

const STATION_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const STATION_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn frame(i: u32) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&STATION_B);
    f[6..12].copy_from_slice(&STATION_A);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..24].copy_from_slice(&[0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17]);
    f[30..34].copy_from_slice(&[198, 19, 0, 1]);
    f[36..38].copy_from_slice(&5001u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    set_flow(&mut f, i);
    f
}

/// Flow `i`: source 198.18.x.y (i >> 16) and source port (i & 0xffff).
fn set_flow(f: &mut [u8], i: u32) {
    f[26..30].copy_from_slice(&(0xc612_0000 | (i >> 16)).to_be_bytes());
    f[34..36].copy_from_slice(&(i as u16).to_be_bytes());
}

struct Rig {
    gen_end: MemPort,
    p1: MemPort,
    p2: MemPort,
    sink: MemPort,
    pool: BufferPool,
    side_pool: BufferPool,
    pipe: Pipeline,
    slow: NormalSlowPath,
    txq: TxQueues,
    batch: PacketBatch,
    back: PacketBatch,
    flows: u32,
    next: u32,
}

impl Rig {
    fn new(flows: u32) -> Rig {
        let (gen_end, p1) = MemPort::pair("gen", "p1", 8192, 1500);
        let (p2, sink) = MemPort::pair("p2", "sink", 8192, 1500);
        let slow = NormalSlowPath::new(BridgeConfig::default());
        slow.set_port(1, VlanMode::Access { vid: 1 });
        slow.set_port(2, VlanMode::Access { vid: 1 });
        let mut r = Rig {
            gen_end,
            p1,
            p2,
            sink,
            pool: BufferPool::with_defaults(4096),
            side_pool: BufferPool::with_defaults(4096),
            pipe: Pipeline::new(PipelineConfig::default()),
            slow,
            txq: TxQueues::new(4),
            batch: PacketBatch::new(),
            back: PacketBatch::new(),
            flows,
            next: 0,
        };
        // Station B talks once from behind p2, so A's frames go by unicast.
        let mut reply = frame(0);
        reply[..6].copy_from_slice(&STATION_A);
        reply[6..12].copy_from_slice(&STATION_B);
        let mut b = r.side_pool.get().unwrap();
        b.fill(&reply).unwrap();
        r.back.push(b).unwrap();
        r.pipe.process(2, &mut r.back, &mut r.side_pool, &r.slow, &mut r.txq, 0);
        for p in r.txq.dirty().to_vec() {
            r.txq.batch_mut(p).unwrap().recycle(&mut r.side_pool);
        }
        r.txq.clear_dirty();
        // 64 batches in flight.
        for _ in 0..64 {
            for _ in 0..MAX_BATCH {
                let mut b = r.side_pool.get().unwrap();
                b.fill(&frame(r.next)).unwrap();
                r.next = (r.next + 1) % r.flows;
                r.back.push(b).unwrap();
            }
            r.gen_end.tx_batch(0, &mut r.side_pool, &mut r.back).unwrap();
        }
        r
    }

    /// Untimed: frames that reached the sink go back to the generator,
    /// each rewritten to the next flow.
    fn refill(&mut self) {
        self.sink.rx_batch(0, &mut self.side_pool, &mut self.back).unwrap();
        for b in self.back.as_mut_slice() {
            set_flow(b.as_mut_slice(), self.next);
            self.next += 1;
            if self.next == self.flows {
                self.next = 0;
            }
        }
        self.gen_end.tx_batch(0, &mut self.side_pool, &mut self.back).unwrap();
    }

    /// Timed: one datapath-thread step.
    #[inline(never)]
    fn step(&mut self, now: u64) -> usize {
        let n = self.p1.rx_batch(0, &mut self.pool, &mut self.batch).unwrap();
        self.pipe.process(1, &mut self.batch, &mut self.pool, &self.slow, &mut self.txq, now);
        for i in 0..self.txq.dirty().len() {
            let p = self.txq.dirty()[i];
            let b = self.txq.batch_mut(p).unwrap();
            let _ = self.p2.tx_batch(0, &mut self.pool, b);
        }
        self.txq.clear_dirty();
        n
    }

    #[inline(never)]
    fn io_only(&mut self) -> usize {
        let n = self.p1.rx_batch(0, &mut self.pool, &mut self.batch).unwrap();
        let _ = self.p2.tx_batch(0, &mut self.pool, &mut self.batch);
        n
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("datapath_mem");
    g.throughput(Throughput::Elements(MAX_BATCH as u64));
    g.measurement_time(Duration::from_secs(6));
    for flows in [1u32, 10_000, 1_000_000] {
        let mut rig = Rig::new(flows);
        // Warm the caches with a full cycle of the flows.
        for _ in 0..(flows as usize / MAX_BATCH + 1000) {
            rig.refill();
            rig.step(0);
        }
        g.bench_function(BenchmarkId::new("pipeline", flows), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    rig.refill();
                    let s = Instant::now();
                    let n = rig.step(1);
                    t += s.elapsed();
                    assert_eq!(n, MAX_BATCH, "the ring ran dry");
                }
                t
            })
        });
        let s = rig.pipe.stats();
        eprintln!(
            "STATS flows={flows}: packets {} emc_hits {} megaflow_hits {} upcalls {} megaflows {} drops {}",
            s.packets,
            s.emc_hits,
            s.megaflow_hits,
            s.upcalls,
            rig.pipe.cache().megaflows.len(),
            s.total_drops()
        );
    }
    let mut rig = Rig::new(1);
    g.bench_function("io_only", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                rig.refill();
                let s = Instant::now();
                let n = rig.io_only();
                t += s.elapsed();
                assert_eq!(n, MAX_BATCH);
            }
            t
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
