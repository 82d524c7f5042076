//! Ten million random and malformed frames through the running datapath
//! (its thread, memory ports, the NORMAL bridge): nothing panics, and every
//! frame is accounted for — forwarded, or dropped and counted by reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_datapath::bridge::{BridgeConfig, VlanMode, VlanSet};
use sluice_datapath::pipeline::NormalSlowPath;
use sluice_datapath::{Datapath, DatapathConfig, PacketBatch, PipelineDrop, Port};
use sluice_io::MemPort;
use sluice_packet::{BufferPool, PacketBuf};

use sluice_testbed::rng::XorShift as Rng;

/// A valid Eth/(802.1Q)/IPv4/UDP frame from one of two stations on port 1
/// to a station behind port 2 (never learned: the sink does not talk) or
/// to everyone.
fn valid(r: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    let src = 0x0a + r.below(2) as u8;
    let dst = if r.below(8) == 0 { [0xff; 6] } else { [2, 0, 0, 0, 0, 0x0c] };
    out.extend_from_slice(&dst);
    out.extend_from_slice(&[2, 0, 0, 0, 0, src]);
    if r.below(4) == 0 {
        out.extend_from_slice(&[0x81, 0x00, 0x00, 10]);
    }
    out.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    out.extend_from_slice(&(r.below(65536) as u16).to_be_bytes());
    out.extend_from_slice(&[0x13, 0x88, 0, 26, 0, 0]);
    out.resize(out.len() + 18, 0);
}

fn frame(r: &mut Rng, out: &mut Vec<u8>) {
    match r.below(10) {
        // Random bytes of any length, up to a little over the MTU.
        0..=2 => {
            out.clear();
            let n = r.below(1600) as usize;
            out.extend((0..n).map(|_| r.next_u64() as u8));
        }
        // Runts and cut headers.
        3 => {
            valid(r, out);
            let n = r.below(34) as usize;
            out.truncate(n);
        }
        // A valid frame with a few bytes overwritten anywhere (bad IHL,
        // lengths, EtherTypes, multicast sources, VLANs, ...).
        4..=6 => {
            valid(r, out);
            for _ in 0..1 + r.below(4) {
                let i = r.below(out.len() as u64) as usize;
                out[i] = r.next_u64() as u8;
            }
        }
        // Valid.
        _ => valid(r, out),
    }
}

#[test]
fn ten_million_bad_frames_are_forwarded_or_dropped_by_reason() {
    let total: u64 = std::env::var("SLUICE_MALFORMED_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let slow = Arc::new(NormalSlowPath::new(BridgeConfig::default()));
    // Port 1 is a trunk (VLAN 10 and native 1), port 2 an access port of VLAN 1.
    slow.set_port(1, VlanMode::Trunk { allowed: VlanSet::of([10]), native: Some(1) });
    slow.set_port(2, VlanMode::Access { vid: 1 });
    let dp =
        Datapath::start(DatapathConfig { spin_rounds: 100_000, ..DatapathConfig::default() }, slow.clone()).unwrap();
    let (mut gen_end, p1) = MemPort::pair("gen", "p1", 4096, 1500);
    let (p2, mut sink) = MemPort::pair("p2", "sink", 4096, 1500);
    dp.add_port_at(Some(1), Box::new(p1)).unwrap();
    dp.add_port_at(Some(2), Box::new(p2)).unwrap();

    let mut r = Rng(0x5eed_1234_abcd_0001);
    let mut bytes = Vec::with_capacity(2048);
    let mut gen_pool = BufferPool::new(64, 2048, 128);
    let mut sink_pool = BufferPool::new(8192, 2048, 128);
    let mut batch = PacketBatch::new();
    let mut out = PacketBatch::new();
    let mut received = 0u64;
    let t = Instant::now();
    let mut offered = 0u64;
    while offered < total {
        while !batch.is_full() && offered + (batch.len() as u64) < total {
            frame(&mut r, &mut bytes);
            let mut b = gen_pool.get().unwrap_or_else(|| PacketBuf::new(2048, 128));
            b.fill(&bytes).unwrap();
            batch.push(b).unwrap();
        }
        // A memory port refuses what its ring cannot hold (and runts and
        // oversize frames, as a NIC would): those never enter the switch, so
        // only what it took counts as offered.
        let before = gen_end.stats().tx_packets;
        let _ = gen_end.tx_batch(0, &mut gen_pool, &mut batch);
        offered += gen_end.stats().tx_packets - before;
        while sink.rx_batch(0, &mut sink_pool, &mut out).unwrap() > 0 {
            received += out.len() as u64;
            out.recycle(&mut sink_pool);
        }
        assert!(t.elapsed() < Duration::from_secs(900), "the datapath stalled");
    }
    // Wait until everything offered went through the pipeline.
    let settle = Instant::now();
    loop {
        while sink.rx_batch(0, &mut sink_pool, &mut out).unwrap() > 0 {
            received += out.len() as u64;
            out.recycle(&mut sink_pool);
        }
        let s = dp.thread_stats()[0].pipeline;
        if s.packets == offered || settle.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(120));
    }
    std::thread::sleep(Duration::from_millis(250));
    while sink.rx_batch(0, &mut sink_pool, &mut out).unwrap() > 0 {
        received += out.len() as u64;
        out.recycle(&mut sink_pool);
    }
    let elapsed = t.elapsed();
    let ports = dp.ports();
    let s = dp.thread_stats()[0].pipeline;
    let p1 = ports.iter().find(|p| p.no == 1).unwrap();
    let p2 = ports.iter().find(|p| p.no == 2).unwrap();
    eprintln!("{offered} frames in {elapsed:?}: pipeline {s:?}");
    for d in PipelineDrop::ALL {
        eprintln!("  {:<20} {}", d.as_str(), s.drop_count(d));
    }
    eprintln!("  p1 {:?}\n  p2 {:?}", p1.stats, p2.stats);
    assert_eq!(p1.stats.rx_packets, offered, "p1 received every offered frame");
    assert_eq!(s.packets, offered, "the pipeline saw every frame");
    // A two-port bridge sends a forwarded frame out once.
    assert_eq!(s.outputs + s.total_drops(), s.packets, "every frame forwarded or dropped with a reason");
    let p2_drops = p2.stats.drops.total();
    assert_eq!(p2.stats.tx_packets + p2_drops, s.outputs, "every output was sent or counted as a port drop");
    assert_eq!(received, p2.stats.tx_packets, "the sink got what p2 sent");
    assert!(s.outputs > offered / 4, "valid frames were forwarded: {}", s.outputs);
    assert!(s.drop_count(PipelineDrop::Malformed) > 0 && s.drop_count(PipelineDrop::MulticastSource) > 0);
    dp.stop();
}
