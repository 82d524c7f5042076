//! Parses batches of 32 64-byte Eth/IPv4/UDP frames into a reused array of
//! `Headers`, as a datapath thread does, N times (default 1 million
//! batches). For instruction counting under `valgrind --tool=callgrind`,
//! where criterion's wall-clock figures are too noisy on a shared machine.
//!
//! `parse_loop N vlan6` parses 78-byte Eth/802.1Q/IPv6/TCP frames instead
//! (the general walk, which the IPv4 fast path leaves to).

use std::hint::black_box;

use sluice_packet::Headers;

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mut f = vec![0u8; 64];
    if std::env::args().nth(2).as_deref() == Some("vlan6") {
        f.resize(78, 0);
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        f[14..16].copy_from_slice(&100u16.to_be_bytes());
        f[16..18].copy_from_slice(&[0x86, 0xdd]);
        f[18] = 0x60;
        f[22..24].copy_from_slice(&20u16.to_be_bytes());
        f[24] = 6; // TCP
        f[25] = 64;
        f[58..62].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        f[70] = 0x50; // data offset 5
        f[71] = 0x02; // SYN
    } else {
        f[12] = 0x08; // IPv4
        f[14] = 0x45;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f[23] = 17; // UDP
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&5678u16.to_be_bytes());
        f[38..40].copy_from_slice(&26u16.to_be_bytes());
    }
    let frames = vec![f; 32];
    let mut out = [Headers::EMPTY; 32];
    let mut sum = 0u64;
    for _ in 0..n {
        for (slot, frame) in out.iter_mut().zip(black_box(&frames)) {
            let _ = slot.parse_into(frame);
        }
        sum += u64::from(black_box(&out)[31].payload_offset);
    }
    println!("{sum}");
}
