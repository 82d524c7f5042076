//! A fixed loop of key extraction + EMC hit, for instruction-level
//! profiling (`valgrind --tool=callgrind`), where the shared box's noise
//! does not reach: 1M packets, one at a time (`FlowCache::lookup`), or with
//! the argument `batch` in batches of 32 (`FlowCache::lookup_batch`), or
//! with `frames` in batches of 32 through frame keys
//! (`FlowCache::classify`), as a datapath thread does; `frames6` does the
//! same with IPv6/UDP frames (78 bytes), `frames6t` with those frames
//! carrying one 802.1Q tag, `framest` with the IPv4 frames carrying one,
//! and `framesq` with the IPv4 frames carrying two (QinQ: 802.1ad outside,
//! 802.1Q inside).

use std::hint::black_box;

use sluice_flow::{Actions, Field, FlowCache, FlowKey, InsertPolicy, Mask, Metadata};
use sluice_packet::Headers;

fn main() {
    let arg = std::env::args().nth(1);
    let batch = arg.as_deref() == Some("batch");
    let v6t = arg.as_deref() == Some("frames6t");
    let v6 = v6t || arg.as_deref() == Some("frames6");
    let qinq = arg.as_deref() == Some("framesq");
    let tagged = arg.as_deref() == Some("framest");
    let frames = v6 || arg.as_deref() == Some("frames");
    // Packets (the second argument; default 1M).
    let n: u32 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mut f = [0u8; 64];
    f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..24].copy_from_slice(&[0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17]);
    f[26..34].copy_from_slice(&[10, 0, 0, 7, 10, 1, 0, 1]);
    f[34..40].copy_from_slice(&[4, 7, 0x12, 0xb5, 0, 30]);
    let mut f6 = [0u8; 78];
    f6[..12].copy_from_slice(&f[..12]);
    f6[12..22].copy_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 24, 17, 64]);
    for (i, b) in f6[22..54].iter_mut().enumerate() {
        *b = 0x20 + i as u8;
    }
    f6[54..60].copy_from_slice(&[4, 7, 0x12, 0xb5, 0, 24]);
    let meta = Metadata::port(1);
    let mut h = Headers::EMPTY;
    let key = FlowKey::extract(&f, &meta, &mut h);
    let mut cache = FlowCache::new(8192, InsertPolicy::Always, 1 << 10, 1);
    let mask = Mask::of(&[Field::InPort, Field::EthType, Field::Ipv4Src, Field::TpSrc]);
    cache.megaflows.install(&key, &mask, Actions::output(2), 0).ok();
    cache.lookup(&key);
    let key6 = FlowKey::extract(&f6, &meta, &mut h);
    let mask6 = Mask::of(&[Field::InPort, Field::EthType, Field::Ipv6Src, Field::TpSrc]);
    cache.megaflows.install(&key6, &mask6, Actions::output(2), 0).ok();
    let mut hits = 0u32;
    const ONE_TAG: [u8; 4] = [0x81, 0x00, 0x00, 0x0a];
    if tagged {
        hits = classify(&mut cache, [with_tags::<64, 68>(&f, &ONE_TAG); 32], n);
    } else if qinq {
        let tags = [0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a];
        hits = classify(&mut cache, [with_tags::<64, 72>(&f, &tags); 32], n);
    } else if v6t {
        hits = classify(&mut cache, [with_tags::<78, 82>(&f6, &ONE_TAG); 32], n);
    } else if v6 {
        hits = classify(&mut cache, [f6; 32], n);
    } else if frames {
        hits = classify(&mut cache, [f; 32], n);
    } else if batch {
        let frames = [f; 32];
        let mut keys = [FlowKey::ZERO; 32];
        let mut slots = [Headers::EMPTY; 32];
        let mut out = [None; 32];
        for _ in 0..n / 32 {
            for ((k, h), f) in keys.iter_mut().zip(&mut slots).zip(black_box(&frames)) {
                k.extract_into(f, &meta, h);
            }
            cache.lookup_batch(&keys, &mut out);
            hits += out.iter().filter(|o| o.is_some()).count() as u32;
        }
    } else {
        let mut k = FlowKey::ZERO;
        for _ in 0..n {
            k.extract_into(black_box(&f), &meta, &mut h);
            hits += u32::from(cache.lookup(&k).is_some());
        }
    }
    println!("hits {hits}");
}

/// `f` with `tags` (TPID and TCI, outer first) after its MACs: `M` bytes,
/// `N` and the tags'.
fn with_tags<const N: usize, const M: usize>(f: &[u8; N], tags: &[u8]) -> [u8; M] {
    let mut t = [0u8; M];
    t[..12].copy_from_slice(&f[..12]);
    t[12..12 + tags.len()].copy_from_slice(tags);
    t[12 + tags.len()..].copy_from_slice(&f[12..]);
    t
}

/// `n` packets classified in batches of 32 copies of one frame; returns
/// the hits. Inlined into `main`, as its loop was before it was shared:
/// out of line the same loop counts 4 more instructions a packet.
#[inline(always)]
fn classify<const N: usize>(cache: &mut FlowCache, frames: [[u8; N]; 32], n: u32) -> u32 {
    let mut keys = [FlowKey::ZERO; 32];
    let mut slots = [Headers::EMPTY; 32];
    let mut out = [None; 32];
    let mut hits = 0;
    for _ in 0..n / 32 {
        cache.classify(black_box(&frames), 1, &mut keys, &mut slots, &mut out);
        hits += out.iter().filter(|o| o.is_some()).count() as u32;
    }
    hits
}
