//! Published test vectors: Microsoft's "Verifying the RSS Hash Calculation"
//! (also the 82599 datasheet §7.1.2.8.3 and DPDK `test_thash.c`) and VPP's
//! length suite, checked against every implementation this CPU can run.

use std::net::{Ipv4Addr, Ipv6Addr};

use sluice_rss::{HashFields, Implementation, Ipv4Tuple, Ipv6Tuple, RssKey, Toeplitz, reference_hash};

/// (destination, dst port, source, src port, L3 hash, L4 hash)
const V4: [(&str, u16, &str, u16, u32, u32); 5] = [
    ("161.142.100.80", 1766, "66.9.149.187", 2794, 0x323e8fc2, 0x51ccc178),
    ("65.69.140.83", 4739, "199.92.111.2", 14230, 0xd718262a, 0xc626b0ea),
    ("12.22.207.184", 38024, "24.19.198.95", 12898, 0xd2d0a5de, 0x5c2b394a),
    ("209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xafc7327f),
    ("202.188.127.2", 1303, "153.39.163.191", 44251, 0x5d1809c5, 0x10e828a2),
];

const V6: [(&str, u16, &str, u16, u32, u32); 3] = [
    ("3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2cc18cd5, 0x40207d3d),
    ("ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0f0c461c, 0xdde51bbf),
    ("fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, 0x4b61e985, 0x02d1feef),
];

fn implementations() -> impl Iterator<Item = Implementation> {
    Implementation::ALL.into_iter().filter(|i| i.is_available())
}

#[test]
fn microsoft_ipv4_vectors_hold_for_every_implementation() {
    let t = Toeplitz::new(&RssKey::MICROSOFT);
    for (dst, dport, src, sport, l3, l4) in V4 {
        let src: Ipv4Addr = src.parse().unwrap();
        let dst: Ipv4Addr = dst.parse().unwrap();
        let tuple = Ipv4Tuple::new(src, dst, sport, dport);
        for imp in implementations() {
            assert_eq!(t.hash_v4_using(imp, &tuple), l4, "{imp:?} L4 {src}");
            let l3_tuple = tuple.with_fields(HashFields::L3);
            assert_eq!(t.hash_v4_using(imp, &l3_tuple), l3, "{imp:?} L3 {src}");
            assert_eq!(t.hash_v4_using(imp, &Ipv4Tuple::l3(src, dst)), l3);
            // The generic byte-slice path, with the exact input lengths.
            assert_eq!(t.hash_using(imp, &tuple.as_bytes()[..8]), l3, "{imp:?} 8 B");
            assert_eq!(t.hash_using(imp, tuple.as_bytes()), l4, "{imp:?} 12 B");
        }
        assert_eq!(t.hash_v4(&tuple), l4);
    }
}

#[test]
fn microsoft_ipv6_vectors_hold_for_every_implementation() {
    let t = Toeplitz::new(&RssKey::MICROSOFT);
    for (dst, dport, src, sport, l3, l4) in V6 {
        let src: Ipv6Addr = src.parse().unwrap();
        let dst: Ipv6Addr = dst.parse().unwrap();
        let tuple = Ipv6Tuple::new(src, dst, sport, dport);
        for imp in implementations() {
            assert_eq!(t.hash_v6_using(imp, &tuple), l4, "{imp:?} L4 {src}");
            assert_eq!(t.hash_v6_using(imp, &Ipv6Tuple::l3(src, dst)), l3, "{imp:?} L3");
            assert_eq!(t.hash_using(imp, &tuple.as_bytes()[..32]), l3, "{imp:?} 32 B");
            assert_eq!(t.hash_using(imp, tuple.as_bytes()), l4, "{imp:?} 36 B");
        }
        assert_eq!(t.hash_v6(&tuple), l4);
    }
}

/// The vectors repeated to 37 tuples (two whole AVX-512 groups and a
/// remainder), through every batch kernel.
#[test]
fn batch_kernels_reproduce_the_vectors() {
    let t = Toeplitz::new(&RssKey::MICROSOFT);
    let v4: Vec<(Ipv4Tuple, u32)> = V4
        .iter()
        .cycle()
        .take(37)
        .map(|(d, dp, s, sp, _, l4)| (Ipv4Tuple::new(s.parse().unwrap(), d.parse().unwrap(), *sp, *dp), *l4))
        .collect();
    let v6: Vec<(Ipv6Tuple, u32)> = V6
        .iter()
        .cycle()
        .take(37)
        .map(|(d, dp, s, sp, _, l4)| (Ipv6Tuple::new(s.parse().unwrap(), d.parse().unwrap(), *sp, *dp), *l4))
        .collect();
    let (t4, want4): (Vec<_>, Vec<_>) = v4.into_iter().unzip();
    let (t6, want6): (Vec<_>, Vec<_>) = v6.into_iter().unzip();
    for imp in implementations() {
        let mut out = vec![0u32; 37];
        t.hash_v4_batch_using(imp, &t4, &mut out);
        assert_eq!(out, want4, "{imp:?} IPv4 batch");
        t.hash_v6_batch_using(imp, &t6, &mut out);
        assert_eq!(out, want6, "{imp:?} IPv6 batch");
    }
    let mut out = vec![0u32; 37];
    t.hash_v4_batch(&t4, &mut out);
    assert_eq!(out, want4);
    t.hash_v6_batch(&t6, &mut out);
    assert_eq!(out, want6);
}

/// VPP `src/vppinfra/test/toeplitz.c`: key = the Microsoft key repeated,
/// data = `00 01 02 …`, vector i = hash of the first i bytes.
#[test]
fn vpp_length_suite_matches() {
    let long_key: Vec<u8> = RssKey::MICROSOFT.as_bytes().iter().copied().cycle().take(240).collect();
    let data: Vec<u8> = (0..=255u8).collect();
    let expected = [
        (0usize, 0u32),
        (1, 0),
        (2, 0x2b6d12ad),
        (3, 0x9de4446e),
        (4, 0x061f00bf),
        (5, 0xad7ed8f7),
        (36, 0x91c89ae9),
        (40, 0xc1e7e513),
    ];
    // The first 52 bytes of the repeated key are a valid 52-byte key, and an
    // input of up to 48 bytes never reads key bits past byte 52.
    let key52 = RssKey::new(&long_key[..52]).unwrap();
    let t = Toeplitz::new(&key52);
    for (len, hash) in expected {
        assert_eq!(reference_hash(&long_key, &data[..len]), hash, "reference len {len}");
        for imp in implementations() {
            assert_eq!(t.hash_using(imp, &data[..len]), hash, "{imp:?} len {len}");
        }
    }
}

#[test]
fn the_fastest_batch_kernel_is_avx512_when_the_cpu_has_it() {
    let t = Toeplitz::new(&RssKey::MICROSOFT);
    if Implementation::Avx512.is_available() {
        assert_eq!(t.fastest_batch(), Implementation::Avx512);
    } else {
        assert_eq!(t.fastest_batch(), t.fastest());
    }
}

#[test]
fn the_fastest_implementation_is_clmul_when_the_cpu_has_it() {
    let t = Toeplitz::new(&RssKey::MICROSOFT);
    let expected = if Implementation::Clmul.is_available() { Implementation::Clmul } else { Implementation::Table };
    assert_eq!(t.fastest(), expected);
}
