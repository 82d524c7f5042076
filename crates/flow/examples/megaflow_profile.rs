//! Megaflow lookups over `n` subtables (1000 entries each, 1024 keys hitting
//! them uniformly, as the `megaflow_lookup` benchmark builds them), for
//! instruction-level profiling under `valgrind --tool=callgrind`.
//!
//! `megaflow_profile [subtables] [rounds] [single|batch]` (default 10 1000 single).

use std::hint::black_box;

use sluice_flow::{Actions, Field, FlowKey, Mask, MegaflowCache};

fn key_of(i: u32, port: u32) -> FlowKey {
    FlowKey::ZERO
        .with(Field::InPort, u128::from(port))
        .with(Field::EthType, 0x0800)
        .with(Field::NwProto, 17)
        .with(Field::Ipv4Src, u128::from(0x0a00_0000 | (i >> 8)))
        .with(Field::Ipv4Dst, 0x0a01_0001)
        .with(Field::TpSrc, u128::from(1024 + (i & 0xff)))
        .with(Field::TpDst, 4789)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let batch = args.next().as_deref() == Some("batch");
    let mut c = MegaflowCache::new(1 << 20);
    let mut keys = Vec::new();
    for s in 0..n {
        let mut mask = Mask::of(&[Field::InPort, Field::EthType, Field::NwProto, Field::TpDst]);
        mask.set(Field::Ipv4Src, u128::from(u32::MAX << (s % 32)));
        if s >= 32 {
            mask.set(Field::TpSrc, 0xffff);
        }
        for e in 0..1000u32 {
            let k = key_of(e, s as u32);
            c.install(&k, &mask, Actions::output(s as u32), 0).unwrap();
            if e < 1024 / n as u32 + 1 {
                keys.push(k);
            }
        }
    }
    keys.sort_by_key(|k| k.hash());
    keys.truncate(1024);
    for k in &keys {
        c.lookup(k);
    }
    c.rank_subtables();
    let mut hits = 0u64;
    let mut out = [None; 32];
    for _ in 0..rounds {
        if batch {
            for chunk in keys.chunks(32) {
                c.lookup_batch(black_box(chunk), &mut out);
                hits += out.iter().filter(|o| o.is_some()).count() as u64;
            }
        } else {
            for k in &keys {
                hits += u64::from(c.lookup(black_box(k)).is_some());
            }
        }
    }
    println!("hits {hits} of {}", u64::from(rounds) * keys.len() as u64);
}
