//! The memory system's share of a megaflow hit at a million flows, alone:
//! the same access pattern as `MegaflowCache::lookup_batch` on a big slab
//! (one random 64-byte bucket line in a 16 MB index, then one random
//! 128-byte slot in a 128 MB slab that the bucket names), with the same
//! group prefetching over batches of 32, but no hashing, no compare and no
//! frames. What it prints is a floor for the 1M-flow pipeline benchmark on
//! this machine; BENCHMARKS.md ("sluice-flow") uses it.
//!
//! `memory_floor [index MB] [slab MB] [1|2 slot lines] [huge|small]`
//! (default 16 128 2 huge): `huge` allocates as the `sluice` binary does
//! (`sluice_mem::HugePages`: the tables on transparent huge pages),
//! `small` the same without the huge-page advice (4 KB pages).

use std::hint::black_box;
use std::time::Instant;

#[path = "../benches/common/mod.rs"]
mod common;

use common::prefetch;

#[global_allocator]
static ALLOC: sluice_mem::HugePages = sluice_mem::HugePages;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u64; 8]);

#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Slot([u64; 16]);

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().unwrap_or(0));
    let index_mb = args.next().filter(|&v| v > 0).unwrap_or(16);
    let slab_mb = args.next().filter(|&v| v > 0).unwrap_or(128);
    let both = args.next().unwrap_or(2) != 1;
    let small = std::env::args().nth(4).as_deref() == Some("small");
    sluice_mem::set_huge_pages(!small);
    let (nl, ns) = (index_mb << 14, slab_mb << 13);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let index: Vec<Line> = (0..nl).map(|_| Line([next() % ns as u64; 8])).collect();
    let slab: Vec<Slot> = (0..ns).map(|i| Slot([i as u64; 16])).collect();
    const PACKETS: usize = 4_000_000;
    let keys: Vec<u32> = (0..PACKETS).map(|_| (next() % nl as u64) as u32).collect();
    for round in 0..3 {
        let t = Instant::now();
        let mut acc = 0u64;
        for batch in keys.chunks(32) {
            for &k in batch {
                prefetch(&index[k as usize]);
            }
            let mut slots = [0usize; 32];
            for (s, &k) in slots.iter_mut().zip(batch) {
                *s = index[k as usize].0[0] as usize;
                prefetch(&slab[*s].0[0]);
                if both {
                    prefetch(&slab[*s].0[15]);
                }
            }
            for &s in &slots[..batch.len()] {
                acc = acc.wrapping_add(slab[s].0[0]).wrapping_add(if both { slab[s].0[15] } else { 0 });
            }
        }
        let ns_per = t.elapsed().as_nanos() as f64 / PACKETS as f64;
        println!(
            "round {round}: bucket line in {index_mb} MB, then {} slot line(s) in {slab_mb} MB, {} pages: {ns_per:.1} ns per packet",
            if both { 2 } else { 1 },
            if small { "4 KB" } else { "huge" }
        );
        black_box(acc);
    }
}
