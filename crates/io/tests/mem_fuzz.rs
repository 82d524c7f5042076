//! Random and malformed frames through memory ports and a fault injector:
//! nothing panics, no buffer leaks, and every frame is either delivered or
//! counted as a drop with a reason.

use sluice_datapath::{DropReason, FaultConfig, FaultInjector, PacketBatch, Port};
use sluice_io::MemPort;
use sluice_packet::BufferPool;

use sluice_testbed::rng::XorShift as Rng;

#[test]
fn a_million_random_frames_are_delivered_or_counted() {
    const FRAMES: u64 = 1_000_000;
    let mut rng = Rng(0x5eed);
    let mut pool = BufferPool::new(512, 2048, 128);
    let (a, mut b) = MemPort::pair("a", "b", 64, 1500);
    let config = FaultConfig {
        seed: 99,
        drop_rate: 0.01,
        corrupt_rate: 0.01,
        truncate_rate: 0.02,
        duplicate_rate: 0.01,
        on_rx: false,
        on_tx: true,
    };
    let mut a = FaultInjector::new(a, config).unwrap();
    let mut batch = PacketBatch::new();
    let mut out = PacketBatch::new();
    let mut bytes = [0u8; 1920];
    let (mut offered, mut delivered) = (0u64, 0u64);
    while offered < FRAMES {
        while !batch.is_full() && offered < FRAMES {
            // Lengths 0..1920: runts, normal frames, oversize for MTU 1500.
            let len = (rng.next_u64() % 1920) as usize;
            for chunk in bytes[..len].chunks_mut(8) {
                let r = rng.next_u64().to_ne_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            let mut buf = pool.get().expect("the pool holds enough for two batches");
            buf.fill(&bytes[..len]).unwrap();
            batch.push(buf).unwrap();
            offered += 1;
        }
        let _ = a.tx_batch(0, &mut pool, &mut batch);
        // Receive only sometimes, so the ring also fills up.
        if !rng.next_u64().is_multiple_of(4) {
            delivered += b.rx_batch(0, &mut pool, &mut out).unwrap() as u64;
            out.recycle(&mut pool);
        }
    }
    while b.rx_batch(0, &mut pool, &mut out).unwrap() > 0 {
        delivered += out.len() as u64;
        out.recycle(&mut pool);
    }
    let f = a.fault_stats();
    let drops = a.stats().drops;
    assert_eq!(f.seen, FRAMES);
    assert_eq!(drops.get(DropReason::Injected), f.dropped);
    // Conservation: offered + copies = delivered + every counted drop.
    assert_eq!(FRAMES + f.duplicated, delivered + drops.total(), "{drops:?} {f:?}");
    assert!(drops.get(DropReason::Runt) > 0 && drops.get(DropReason::Oversize) > 0);
    assert!(drops.get(DropReason::TxRingFull) > 0);
    assert_eq!(b.stats().rx_packets, delivered);
    assert_eq!(pool.available(), pool.total(), "no buffer leaked");
}
