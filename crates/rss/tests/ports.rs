//! RSS-aware source-port selection: every returned port lands on the target
//! queue, and the solver finds a port whenever exhaustive search over all
//! 65536 ports finds one.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use sluice_rss::{Family, Ipv4Tuple, Ipv6Tuple, Outgoing, PortRange, PortSolver, Reta, RssKey, Toeplitz};

/// The reply's queue computed the slow, obvious way: build the reply tuple
/// (remote → local, local port in the destination-port field), hash it with
/// the bitwise reference, look the RETA up.
fn reply_queue_by_reference(key: &RssKey, reta: &Reta, conn: &Outgoing, port: u16) -> u16 {
    let hash = match *conn {
        Outgoing::V4 { local, remote, remote_port } => {
            sluice_rss::reference_hash(key.as_bytes(), Ipv4Tuple::new(remote, local, remote_port, port).as_bytes())
        }
        Outgoing::V6 { local, remote, remote_port } => {
            sluice_rss::reference_hash(key.as_bytes(), Ipv6Tuple::new(remote, local, remote_port, port).as_bytes())
        }
    };
    reta.queue(hash)
}

/// Exhaustive: all ports in `range` whose reply lands on `queue`, using the
/// fast hasher (itself checked against the reference elsewhere).
fn exhaustive(toeplitz: &Toeplitz, reta: &Reta, conn: &Outgoing, queue: u16, range: PortRange) -> BTreeSet<u16> {
    (range.low()..=range.high())
        .filter(|&p| {
            let hash = match *conn {
                Outgoing::V4 { local, remote, remote_port } => {
                    toeplitz.hash_v4(&Ipv4Tuple::new(remote, local, remote_port, p))
                }
                Outgoing::V6 { local, remote, remote_port } => {
                    toeplitz.hash_v6(&Ipv6Tuple::new(remote, local, remote_port, p))
                }
            };
            reta.queue(hash) == queue
        })
        .collect()
}

/// Random keys, and random keys with most bits of the port's key window
/// cleared (bytes 10..16 for IPv4, 34..40 for IPv6), which makes the port
/// matrix rank-deficient so that some queues cannot be reached at all.
fn any_key() -> impl Strategy<Value = RssKey> {
    let random = prop_oneof![prop::collection::vec(any::<u8>(), 40), prop::collection::vec(any::<u8>(), 52)];
    let sparse = (prop::collection::vec(any::<u8>(), 40), any::<u64>()).prop_map(|(mut bytes, mask)| {
        for (i, at) in (10..16).chain(34..40).enumerate() {
            // Keep about one bit in eight.
            let keep = (mask >> (i * 5 % 56)) & (mask >> ((i * 3 + 1) % 56)) & (mask >> ((i * 7 + 2) % 56));
            bytes[at] &= keep as u8;
        }
        bytes
    });
    prop_oneof![3 => random, 1 => sparse].prop_map(|bytes| RssKey::new(&bytes).unwrap())
}

fn any_reta() -> impl Strategy<Value = Reta> {
    prop_oneof![Just(64usize), Just(128), Just(512)].prop_flat_map(|size| {
        prop_oneof![
            (1u32..=16).prop_map(move |q| Reta::spread(q, size).unwrap()),
            prop::collection::vec(0u32..8, size).prop_map(|e| Reta::from_entries(&e).unwrap()),
        ]
    })
}

fn any_conn() -> impl Strategy<Value = Outgoing> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u16>()).prop_map(|(l, r, p)| Outgoing::V4 {
            local: Ipv4Addr::from(l),
            remote: Ipv4Addr::from(r),
            remote_port: p,
        }),
        (any::<u128>(), any::<u128>(), any::<u16>()).prop_map(|(l, r, p)| Outgoing::V6 {
            local: Ipv6Addr::from(l),
            remote: Ipv6Addr::from(r),
            remote_port: p,
        }),
    ]
}

fn any_range() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        Just(PortRange::ALL),
        Just(PortRange::new(49152, 65535).unwrap()),
        (any::<u16>(), 0u16..600).prop_map(|(lo, len)| PortRange::new(lo, lo.saturating_add(len)).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// Every port `pick` and `ports` return lands on the queue; `pick` finds
    /// a port exactly when one exists in the range.
    #[test]
    fn picked_ports_land_on_the_queue(
        key in any_key(),
        reta in any_reta(),
        conn in any_conn(),
        queue_seed in any::<u16>(),
        range in any_range(),
        seed in any::<u32>(),
    ) {
        let solver = PortSolver::new(&key, &reta);
        let queue = reta.entries()[usize::from(queue_seed) % reta.size()];
        let want = exhaustive(solver.toeplitz(), &reta, &conn, queue, range);
        match solver.pick(&conn, queue, range, seed) {
            Some(p) => {
                prop_assert!(range.contains(p));
                prop_assert_eq!(reply_queue_by_reference(&key, &reta, &conn, p), queue);
                prop_assert_eq!(solver.reply_queue(&conn, p), queue);
                prop_assert!(want.contains(&p));
            }
            None => prop_assert!(want.is_empty(), "pick found nothing, exhaustive found {:?}", want.iter().next()),
        }
        // The iterator yields each such port once and only such ports.
        let mut seen = BTreeSet::new();
        for p in solver.ports(&conn, queue, range) {
            prop_assert!(seen.insert(p), "port {} yielded twice", p);
        }
        prop_assert_eq!(seen, want);
    }

    /// Queues that are not in the RETA get no port and a clear error.
    #[test]
    fn absent_queues_get_nothing(key in any_key(), conn in any_conn(), queues in 1u32..8) {
        let reta = Reta::spread(queues, 128).unwrap();
        let solver = PortSolver::new(&key, &reta);
        let absent = queues as u16;
        prop_assert_eq!(solver.pick(&conn, absent, PortRange::ALL, 0), None);
        prop_assert_eq!(solver.ports(&conn, absent, PortRange::ALL).count(), 0);
        prop_assert!(solver.check_queue(absent).is_err());
        prop_assert!(solver.check_queue(0).is_ok());
    }
}

/// The whole 65536-port space for a handful of random keys (both families,
/// RETA 128 and 512): the solver's sets equal the exhaustive sets for every
/// queue, so together they partition the port space.
#[test]
fn solver_matches_exhaustive_search_over_all_ports() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let keys = prop::collection::vec(any::<u8>(), 52);
    for round in 0..4 {
        let bytes = keys.new_tree(&mut runner).unwrap().current();
        let key = RssKey::new(&bytes).unwrap();
        let reta = Reta::spread(if round % 2 == 0 { 4 } else { 6 }, if round < 2 { 128 } else { 512 }).unwrap();
        let solver = PortSolver::new(&key, &reta);
        let conns = [
            Outgoing::new(IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]), 80).unwrap(),
            Outgoing::new("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap(), 443).unwrap(),
        ];
        for conn in conns {
            let mut total = 0;
            for q in 0..=reta.max_queue() {
                let want = exhaustive(solver.toeplitz(), &reta, &conn, q, PortRange::ALL);
                let got: BTreeSet<u16> = solver.ports(&conn, q, PortRange::ALL).collect();
                assert_eq!(got.len(), want.len(), "round {round} queue {q}");
                assert_eq!(got, want, "round {round} queue {q}");
                total += got.len();
            }
            assert_eq!(total, 65536);
        }
    }
}

/// f-stack's default key: its 7 low port bits cannot reach every RETA index
/// on IPv4 (so DPDK's complement helper fails), but solving over all 16 bits
/// reaches all 128, checked by picking a port for every index.
#[test]
fn fstack_key_needs_the_full_solve() {
    let identity: Vec<u32> = (0..128).collect();
    let reta = Reta::from_entries(&identity).unwrap();
    let solver = PortSolver::new(&RssKey::FSTACK, &reta);
    let conn = Outgoing::new(IpAddr::from([192, 0, 2, 1]), IpAddr::from([198, 51, 100, 7]), 443).unwrap();
    // Count the indices reachable with the low 7 bits alone, by brute force.
    let base = solver.reply_queue(&conn, 0);
    let low_reach: BTreeSet<u16> = (0u16..128).map(|p| solver.reply_queue(&conn, p)).collect();
    assert!(low_reach.contains(&base));
    assert!(low_reach.len() < 128, "low bits reach {} indices", low_reach.len());
    assert_eq!(low_reach.len(), 1 << solver.low_bits_rank(Family::V4));
    assert_eq!(solver.rank(Family::V4), 7);
    for q in 0..128u16 {
        let p = solver.pick(&conn, q, PortRange::ALL, 0).expect("every index is reachable");
        assert_eq!(reply_queue_by_reference(&RssKey::FSTACK, &reta, &conn, p), q);
    }
}

/// Different seeds spread picks over different ports of the queue.
#[test]
fn seeds_vary_the_pick() {
    let reta = Reta::spread(4, 128).unwrap();
    let solver = PortSolver::new(&RssKey::MICROSOFT, &reta);
    let conn = Outgoing::new(IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]), 80).unwrap();
    let range = PortRange::new(49152, 65535).unwrap();
    let picks: BTreeSet<u16> = (0..64).filter_map(|s| solver.pick(&conn, 2, range, s * 7919)).collect();
    assert!(picks.len() > 16, "only {} distinct picks", picks.len());
}

/// A degenerate key (all zero bits where the port sits) reaches only the
/// base index: the solver reports rank 0 and picks only for that queue.
#[test]
fn rank_deficient_keys_are_reported_and_handled() {
    let key = RssKey::new(&[0u8; 40]).unwrap();
    let reta = Reta::spread(4, 64).unwrap();
    let solver = PortSolver::new(&key, &reta);
    assert_eq!(solver.rank(Family::V4), 0);
    assert_eq!(solver.rank(Family::V6), 0);
    let conn = Outgoing::new(IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]), 80).unwrap();
    let p = solver.pick(&conn, 0, PortRange::ALL, 5).expect("queue 0 owns index 0");
    assert_eq!(solver.reply_queue(&conn, p), 0);
    assert_eq!(solver.ports(&conn, 0, PortRange::ALL).count(), 65536);
    for q in 1..4 {
        assert_eq!(solver.pick(&conn, q, PortRange::ALL, 5), None);
    }
}

/// The claim behind solving over all 16 port bits: for random keys, the
/// `n × n` low-bit submatrix DPDK's helper needs is invertible only about
/// half the time, while the full `n × 16` matrix almost always has rank `n`.
#[test]
fn low_bits_fail_for_about_half_of_random_keys() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let keys = prop::collection::vec(any::<u8>(), 52);
    let reta = Reta::spread(4, 128).unwrap();
    let (mut low_ok, mut full_ok, n) = (0, 0, 400);
    for _ in 0..n {
        let key = RssKey::new(&keys.new_tree(&mut runner).unwrap().current()).unwrap();
        let solver = PortSolver::new(&key, &reta);
        for family in [Family::V4, Family::V6] {
            low_ok += usize::from(solver.low_bits_rank(family) == 7);
            full_ok += usize::from(solver.rank(family) == 7);
        }
    }
    let total = 2 * n;
    assert!((total * 35 / 100..=total * 65 / 100).contains(&low_ok), "low-bit full rank in {low_ok} of {total}");
    assert!(full_ok >= total * 98 / 100, "full rank in only {full_ok} of {total}");
}
