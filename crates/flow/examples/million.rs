//! The `pipeline` benchmark's loop (`benches/flow.rs`) on its own, for
//! profiling and for quick timing: batches of 32 frames written, classified
//! (`FlowCache::classify`) and accounted, over `flows` flows that each have
//! their own five-tuple megaflow. Allocates as the `sluice` binary does
//! (large tables on huge pages).
//!
//! `million [flows] [packets] [frequency|ovs|off] [active] [huge|small]`
//! (default 1000000 4000000 frequency, all flows active, huge): with
//! `active` below `flows`, packets cycle over that many of the installed
//! flows only (the same code path as at `flows`, with the memory it
//! touches in cache); `small` keeps the tables on 4 KB pages.
//! `SLUICE_SMC_CELLS=n` sizes the signature-match cache (0: none).

use std::hint::black_box;
use std::time::Instant;

use sluice_flow::{Actions, FlowCache, FlowKey, InsertPolicy, Metadata};
use sluice_packet::Headers;

#[path = "../benches/common/mod.rs"]
mod common;

use common::{FRAME_LEN, Flows, five_tuple, write_frame};

#[global_allocator]
static ALLOC: sluice_mem::HugePages = sluice_mem::HugePages;

fn main() {
    let mut args = std::env::args().skip(1);
    let flows: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let packets: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4_000_000);
    let policy = match args.next().as_deref() {
        Some("ovs") => InsertPolicy::Probabilistic { inv: 100 },
        Some("off") => InsertPolicy::Never,
        _ => InsertPolicy::default(),
    };
    let active: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(flows).clamp(1, flows.max(1));
    sluice_mem::set_huge_pages(args.next().as_deref() != Some("small"));
    let mask = five_tuple();
    let mut cache = FlowCache::new(8192, policy, 2_000_000, 7);
    if let Some(cells) = std::env::var("SLUICE_SMC_CELLS").ok().and_then(|v| v.parse().ok()) {
        cache.set_smc_cells(cells);
    }
    let mut f = [0u8; FRAME_LEN];
    let mut h = Headers::EMPTY;
    for i in 0..flows {
        write_frame(&mut f, i);
        let k = FlowKey::extract(&f, &Metadata::port(1), &mut h);
        cache.megaflows.install(&k, &mask, Actions::output(2), 0).expect("installs");
    }
    let (mut order, mut now) = (Flows::new(active), 0u64);
    for round in 0..3 {
        let t = Instant::now();
        let hits = run(&mut cache, &mut order, packets, &mut now);
        let ns = t.elapsed().as_nanos() as f64 / packets as f64;
        let smc = cache.smc.stats();
        println!(
            "round {round}: {flows} flows, {active} active, {hits} hits: {ns:.1} ns per packet (SMC so far: {} hits, {} misses)",
            smc.hits, smc.misses
        );
    }
}

/// The timed loop, out of line so that `--toggle-collect=million::run`
/// profiles it alone.
#[inline(never)]
fn run(cache: &mut FlowCache, order: &mut Flows, packets: u64, now: &mut u64) -> u64 {
    let mut frames = [[0u8; FRAME_LEN]; 32];
    let mut keys = [FlowKey::ZERO; 32];
    let mut headers = [Headers::EMPTY; 32];
    let mut out = [None; 32];
    let mut hits = 0u64;
    for _ in 0..packets / 32 {
        for fr in &mut frames {
            write_frame(fr, order.next());
        }
        *now += 32;
        cache.classify(black_box(&frames), 1, &mut keys, &mut headers, &mut out);
        for (o, fr) in out.iter().zip(&frames) {
            if let Some(id) = o {
                cache.megaflows.account(*id, 1, fr.len() as u64, *now);
                hits += 1;
            }
        }
    }
    hits
}
