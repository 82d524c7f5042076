//! Port throughput.
//!
//! - `mem_port/tx_rx_32x64B`: one MemPort pair, 64-byte frames in batches of
//!   32: transmit a batch on one end, receive it on the other, repeat (the
//!   same buffers circulate; nothing is allocated). Elements = frames.
//! - `mem_port/forward_32x64B`: two pairs and a forwarder in the middle
//!   (rx on one pair's end, tx into the other pair), the shape of a switch
//!   thread with two memory ports.
//! - `af_packet/veth_64B`: AF_PACKET ports on both ends of a veth pair in a
//!   fresh network namespace: 16384 frames of 60 bytes sent with sendmmsg in
//!   batches of 32 while receiving from the TPACKET_V3 ring of the peer; an
//!   element is a frame sent *and* received, by one thread. Needs root;
//!   skipped without.
//! - `af_xdp/veth_64B`: the same with AF_XDP ports (native XDP, copy mode).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_datapath::{MAX_BATCH, PacketBatch, Port};
use sluice_io::{AfPacketConfig, AfPacketPort, AfXdpPort, MemPort};
use sluice_packet::BufferPool;

/// A 60-byte Ethernet/IPv4/UDP frame (64 on the wire with the FCS).
fn frame() -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[198, 18, 0, 1]);
    f[30..34].copy_from_slice(&[198, 19, 0, 1]);
    f[34..36].copy_from_slice(&1024u16.to_be_bytes());
    f[36..38].copy_from_slice(&1024u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

fn filled_batch(pool: &mut BufferPool) -> PacketBatch {
    let mut batch = PacketBatch::new();
    refill(pool, &mut batch);
    batch
}

fn refill(pool: &mut BufferPool, batch: &mut PacketBatch) {
    while !batch.is_full() {
        let Some(mut b) = pool.get() else { break };
        b.fill(&frame()).expect("a 60-byte frame fits");
        let _ = batch.push(b);
    }
}

fn mem_ports(c: &mut Criterion) {
    let mut g = c.benchmark_group("mem_port");
    g.throughput(Throughput::Elements(MAX_BATCH as u64));

    let mut pool = BufferPool::with_defaults(256);
    let (mut a, mut b) = MemPort::pair("a", "b", 1024, 1500);
    let mut batch = filled_batch(&mut pool);
    g.bench_function("tx_rx_32x64B", |bench| {
        bench.iter(|| {
            let sent = a.tx_batch(0, &mut pool, &mut batch).unwrap_or(0);
            let got = b.rx_batch(0, &mut pool, &mut batch).unwrap_or(0);
            black_box((sent, got));
        })
    });
    assert_eq!(a.stats().drops.total(), 0);

    let (mut src, mut in_port) = MemPort::pair("src", "in", 1024, 1500);
    let (mut out_port, mut sink) = MemPort::pair("out", "sink", 1024, 1500);
    let mut gen_batch = filled_batch(&mut pool);
    let mut fwd_batch = PacketBatch::new();
    g.bench_function("forward_32x64B", |bench| {
        bench.iter(|| {
            let _ = src.tx_batch(0, &mut pool, &mut gen_batch);
            let _ = in_port.rx_batch(0, &mut pool, &mut fwd_batch);
            let _ = out_port.tx_batch(0, &mut pool, &mut fwd_batch);
            let got = sink.rx_batch(0, &mut pool, &mut gen_batch).unwrap_or(0);
            black_box(got);
        })
    });
    assert_eq!(out_port.stats().drops.total(), 0);
    g.finish();
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Sends FRAMES frames from one end of a veth pair and receives them on the
/// other, through ports `open` makes inside the namespace.
fn veth_pair_bench(c: &mut Criterion, group: &str, open: impl FnOnce() -> (Box<dyn Port>, Box<dyn Port>) + Send) {
    if !is_root() {
        eprintln!("{group} benchmark skipped: network namespaces need root");
        return;
    }
    let ns = sluice_testbed::Netns::new().expect("create a network namespace");
    ns.run(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]).expect("sysctl");
    ns.add_veth("v0", &ns, "v1").expect("create a veth pair");
    for dev in ["v0", "v1"] {
        ns.run(&["ethtool", "-K", dev, "gro", "off", "tso", "off", "gso", "off"]).expect("ethtool");
    }
    let (mut tx, mut rx) = ns.enter(open).expect("enter the namespace");
    const FRAMES: u64 = 16384;
    let mut pool = BufferPool::with_defaults(1024);
    let mut out = PacketBatch::new();
    let mut batch = PacketBatch::new();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(FRAMES));
    g.sample_size(20);
    g.bench_function("veth_64B", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let (mut sent, mut got) = (0u64, 0u64);
                let mut last_tx = Instant::now();
                while got < FRAMES {
                    if sent < FRAMES {
                        refill(&mut pool, &mut batch);
                        sent += tx.tx_batch(0, &mut pool, &mut batch).unwrap_or(0) as u64;
                        last_tx = Instant::now();
                    } else if last_tx.elapsed() > Duration::from_millis(200) {
                        break; // the rest was lost; the drop counters say where
                    }
                    got += rx.rx_batch(0, &mut pool, &mut out).unwrap_or(0) as u64;
                    out.recycle(&mut pool);
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    eprintln!("{group}: tx {:?}", tx.stats());
    eprintln!("{group}: rx {:?}", rx.stats());
}

fn af_packet(c: &mut Criterion) {
    let config = AfPacketConfig { block_size: 64 * 1024, block_count: 64, ..AfPacketConfig::default() };
    veth_pair_bench(c, "af_packet", move || {
        (
            Box::new(AfPacketPort::with_config("v0", config).expect("open v0")),
            Box::new(AfPacketPort::with_config("v1", config).expect("open v1")),
        )
    });
}

fn af_xdp(c: &mut Criterion) {
    veth_pair_bench(c, "af_xdp", || {
        (Box::new(AfXdpPort::open("v0").expect("open v0")), Box::new(AfXdpPort::open("v1").expect("open v1")))
    });
}

criterion_group!(benches, mem_ports, af_packet, af_xdp);
criterion_main!(benches);
