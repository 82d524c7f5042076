use proptest::prelude::*;
use sluice_flow::{Action, Actions};
use sluice_packet::checksum;
use sluice_packet::{BufferPool, Headers, MacAddr};

use super::*;
use crate::bridge::{BridgeConfig, VlanMode, VlanSet};
use crate::port::PacketBatch;

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

/// Eth (optionally 802.1Q) / IPv4 / UDP, 64 bytes untagged, with valid checksums.
fn udp(src: [u8; 6], dst: [u8; 6], vlan: Option<u16>, sport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_at = f.len();
    let payload = [0u8; 18];
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f[ip_at + 2..ip_at + 4].copy_from_slice(&total.to_be_bytes());
    let c = checksum::checksum(&f[ip_at..ip_at + 20]);
    f[ip_at + 10..ip_at + 12].copy_from_slice(&c.to_be_bytes());
    let l4 = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&5000u16.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&payload);
    let mut ps = checksum::pseudo_header_v4(
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        sluice_packet::IpProtocol::Udp,
        u32::from(8 + payload.len() as u16),
    );
    ps.add_bytes(&f[l4..]);
    let c = ps.finish();
    f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    f
}

struct Rig {
    pipe: Pipeline,
    slow: NormalSlowPath,
    pool: BufferPool,
    out: TxQueues,
}

impl Rig {
    /// Ports 1, 2: access VLAN 10; port 3: access VLAN 20; port 4: trunk 10, 20.
    fn new() -> Rig {
        let slow = NormalSlowPath::new(BridgeConfig::default());
        slow.set_port(1, VlanMode::Access { vid: 10 });
        slow.set_port(2, VlanMode::Access { vid: 10 });
        slow.set_port(3, VlanMode::Access { vid: 20 });
        slow.set_port(4, VlanMode::Trunk { allowed: VlanSet::of([10, 20]), native: None });
        Rig {
            pipe: Pipeline::new(PipelineConfig::default()),
            slow,
            pool: BufferPool::with_defaults(256),
            out: TxQueues::new(8),
        }
    }

    /// Sends `frames` in on `port`; returns what each port got.
    fn send(&mut self, port: u32, frames: &[Vec<u8>], now: u64) -> Vec<(u32, Vec<Vec<u8>>)> {
        let mut batch = PacketBatch::new();
        for f in frames {
            let mut b = self.pool.get().unwrap();
            b.fill(f).unwrap();
            batch.push(b).unwrap();
        }
        self.pipe.process(port, &mut batch, &mut self.pool, &self.slow, &mut self.out, now);
        assert!(batch.is_empty());
        let mut got = Vec::new();
        let dirty: Vec<u32> = self.out.dirty().to_vec();
        for p in dirty {
            let b = self.out.batch_mut(p).unwrap();
            let frames = b.iter().map(|x| x.as_slice().to_vec()).collect();
            b.recycle(&mut self.pool);
            got.push((p, frames));
        }
        self.out.clear_dirty();
        got.sort();
        got
    }
}

#[test]
fn floods_in_the_vlan_then_forwards_to_the_learned_port_and_tags_on_trunks() {
    let mut r = Rig::new();
    let a_to_b = udp(A, B, None, 1);
    let got = r.send(1, std::slice::from_ref(&a_to_b), 0);
    // Unknown B: flooded to port 2 (untagged) and trunk port 4 (tagged 10), not to VLAN 20's port 3.
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], (2, vec![a_to_b.clone()]));
    assert_eq!(got[1], (4, vec![udp(A, B, Some(10), 1)]));
    // B answers from the trunk, tagged: unicast to A (learned on 1), untagged.
    let got = r.send(4, &[udp(B, A, Some(10), 1)], 1);
    assert_eq!(got, vec![(1, vec![udp(B, A, None, 1)])]);
    // A to B again: B is known on the trunk now; the flood megaflow was revalidated.
    let got = r.send(1, &[a_to_b.clone(), a_to_b.clone()], 2);
    assert_eq!(got, vec![(4, vec![udp(A, B, Some(10), 1); 2])]);
    let s = r.pipe.stats();
    assert_eq!(s.upcalls, 2, "the third batch is served from the caches: {s:?}");
    assert!(s.revalidated >= 1, "{s:?}");
    assert_eq!(s.packets, 4);
    assert_eq!(s.outputs, 5);
    assert_eq!(s.total_drops(), 0);
    // VLAN 20 never saw VLAN 10's traffic.
    let got = r.send(3, &[udp([2, 0, 0, 0, 0, 0xc], A, None, 1)], 3);
    assert_eq!(got, vec![(4, vec![udp([2, 0, 0, 0, 0, 0xc], A, Some(20), 1)])], "A is on VLAN 10 only");
}

#[test]
fn a_batch_of_many_flows_is_grouped_accounted_and_cached() {
    let mut r = Rig::new();
    r.send(2, &[udp(B, A, None, 1)], 0); // learn B on 2
    let frames: Vec<Vec<u8>> = (0..32).map(|i| udp(A, B, None, 100 + (i % 4))).collect();
    let got = r.send(1, &frames, 1);
    assert_eq!(got, vec![(2, frames.clone())], "order within the port is kept");
    // All 32 share one megaflow (the bridge does not look at ports): one upcall.
    assert_eq!(r.pipe.stats().upcalls, 2);
    let flows: Vec<_> = r.pipe.cache().megaflows.iter().map(|m| (m.packets, m.matching.to_string())).collect();
    assert!(flows.iter().any(|(p, m)| *p == 32 && m.contains("in_port=1")), "{flows:?}");
}

#[test]
fn malformed_frames_are_dropped_by_reason_and_not_cached() {
    let mut r = Rig::new();
    let mut cut_tag = udp(A, B, Some(10), 1);
    cut_tag.truncate(15);
    let got = r.send(4, &[vec![0xff; 10], cut_tag, udp(A, B, Some(30), 1)], 0);
    assert!(got.is_empty());
    let s = r.pipe.stats();
    assert_eq!(s.drop_count(PipelineDrop::Malformed), 2, "{s:?}");
    assert_eq!(s.drop_count(PipelineDrop::VlanRefused), 1, "VLAN 30 is not on the trunk");
    assert_eq!(s.installed, 1, "only the VLAN refusal is a flow decision");
    // A cached drop counts as a flow drop.
    r.send(4, &[udp(A, B, Some(30), 1)], 1);
    assert_eq!(r.pipe.stats().drop_count(PipelineDrop::FlowDrop), 1);
}

/// What one round sent: (port, frame), in send order.
type Sent = Vec<(u32, Vec<u8>)>;

fn actions_on(frame: &[u8], actions: Actions) -> (Sent, PipelineStats) {
    let (mut rounds, stats) = actions_on_rounds(&[frame.to_vec()], actions, 1);
    (rounds.remove(0), stats)
}

/// `frames` as one batch through a pipeline whose slow path answers
/// `actions`, `rounds` times, rotated by one each round (an EMC that
/// admits on every miss: the first round upcalls, the second hits
/// megaflows, the others the exact-match caches); what each round sent.
fn actions_on_rounds(frames: &[Vec<u8>], actions: Actions, rounds: usize) -> (Vec<Sent>, PipelineStats) {
    struct Fixed(Actions);
    impl SlowPath for Fixed {
        fn upcall(&self, _: &FlowKey, _: &Headers, _: &[u8], _: u64) -> Upcall {
            Upcall { actions: self.0.clone(), mask: Mask::EXACT, cache: true, drop: None }
        }
        fn generation(&self) -> u64 {
            0
        }
        fn revalidate(&self, _: &sluice_flow::Match, _: &Actions, _: u64) -> Revalidation {
            Revalidation::Keep
        }
    }
    let mut pipe = Pipeline::new(PipelineConfig { emc_policy: InsertPolicy::Always, ..PipelineConfig::default() });
    let mut pool = BufferPool::with_defaults(16);
    let mut out = TxQueues::new(4);
    let slow = Fixed(actions);
    let mut all = Vec::new();
    for r in 0..rounds {
        let mut batch = PacketBatch::new();
        for j in 0..frames.len() {
            let mut b = pool.get().unwrap();
            b.fill(&frames[(j + r) % frames.len()]).unwrap();
            batch.push(b).unwrap();
        }
        pipe.process(1, &mut batch, &mut pool, &slow, &mut out, 0);
        let mut got = Vec::new();
        for p in out.dirty().to_vec() {
            for b in out.batch_mut(p).unwrap().drain() {
                got.push((p, b.as_slice().to_vec()));
                pool.put(b);
            }
        }
        out.clear_dirty();
        all.push(got);
    }
    (all, pipe.stats())
}

fn ipv4_and_udp_checksums_ok(f: &[u8]) -> bool {
    let ip = &f[14..34];
    let mut ps = checksum::pseudo_header_v4(
        [ip[12], ip[13], ip[14], ip[15]].into(),
        [ip[16], ip[17], ip[18], ip[19]].into(),
        sluice_packet::IpProtocol::Udp,
        (f.len() - 34) as u32,
    );
    ps.add_bytes(&f[34..]);
    checksum::verify(ip) && ps.finish() == 0
}

#[test]
fn rewrites_keep_checksums_valid_and_copies_see_the_packet_as_it_was() {
    let f = udp(A, B, None, 7);
    let acts = Actions::builder()
        .push(Action::Output(3))
        .push(Action::SetIpv4Src([192, 168, 1, 1].into()))
        .push(Action::SetTpDst(53))
        .push(Action::DecTtl)
        .push(Action::SetEthDst(MacAddr(A)))
        .push(Action::PushVlan { tpid: 0x8100, tci: 42 })
        .push(Action::Output(2))
        .build()
        .unwrap();
    let (got, s) = actions_on(&f, acts);
    assert_eq!(s.outputs, 2);
    assert_eq!(got[0], (3, f.clone()), "the first output is a copy taken before the rewrites");
    let (port, g) = &got[1];
    assert_eq!(*port, 2);
    assert_eq!(&g[12..16], &[0x81, 0, 0, 42]);
    let mut untagged = g[..12].to_vec();
    untagged.extend_from_slice(&g[16..]);
    assert_eq!(&untagged[0..6], &A);
    assert_eq!(&untagged[26..30], &[192, 168, 1, 1]);
    assert_eq!(untagged[22], 63, "TTL decremented");
    assert_eq!(&untagged[36..38], &53u16.to_be_bytes());
    assert!(ipv4_and_udp_checksums_ok(&untagged), "checksums must be updated, not broken");
}

#[test]
fn exact_match_hits_run_the_same_actions_as_misses() {
    // Actions that read the key (the VXLAN source port is its hash) and
    // the header offsets (rewrites): an exact-match hit on the frame key
    // builds neither unless the actions need them.
    let vxlan = sluice_flow::TunnelSpec {
        kind: sluice_flow::TunnelKind::Vxlan,
        src_mac: MacAddr(A),
        dst_mac: MacAddr(B),
        src: [192, 0, 2, 1].into(),
        dst: [192, 0, 2, 2].into(),
        key: 77,
    };
    let lists = [
        Actions::builder()
            .push(Action::Output(3))
            .push(Action::SetIpv4Src([192, 168, 1, 1].into()))
            .push(Action::DecTtl)
            .push(Action::PushVlan { tpid: 0x8100, tci: 42 })
            .push(Action::Output(2))
            .build()
            .unwrap(),
        Actions::builder().tunnel_push(vxlan, 2).build().unwrap(),
        Actions::output(3),
    ];
    // Each packet lands in the slot another's key and offsets were in the
    // round before: stale ones would show (a UDP and a TCP frame, whose
    // rewrites differ; two VLAN-tagged frames, and two with a second,
    // 802.1ad tag outside, whose headers sit four and eight bytes further
    // on).
    let mut tcp = udp(B, A, None, 9);
    tcp[23] = 6;
    tcp[46..48].copy_from_slice(&[0x50, 0x18]);
    let tagged = [udp(A, B, Some(5), 7), udp(A, B, Some(6), 8)];
    let qinq = tagged.clone().map(|f| [&f[..12], &[0x88, 0xa8, 0x00, 0x64][..], &f[12..]].concat());
    for (n, acts) in lists.into_iter().enumerate() {
        for frames in [vec![udp(A, B, None, 7), tcp.clone()], tagged.to_vec(), qinq.to_vec()] {
            let (mut rounds, s) = actions_on_rounds(&frames, acts.clone(), 4);
            rounds.iter_mut().for_each(|r| r.sort());
            assert!(!rounds[0].is_empty(), "list {n}: the upcalls' packets were sent");
            for r in &rounds[1..] {
                assert_eq!(r, &rounds[0], "list {n}: a cached packet must be treated as the first");
            }
            assert_eq!((s.upcalls, s.megaflow_hits, s.emc_hits), (2, 2, 4), "list {n}");
        }
    }
}

#[test]
fn ttl_expiry_bad_actions_and_unsupported_actions_are_counted() {
    let mut f = udp(A, B, None, 7);
    f[22] = 1;
    let (_, s) = actions_on(&f, Actions::builder().push(Action::DecTtl).push(Action::Output(1)).build().unwrap());
    assert_eq!(s.drop_count(PipelineDrop::TtlExpired), 1);
    let (_, s) = actions_on(&f, Actions::builder().push(Action::PopVlan).push(Action::Output(1)).build().unwrap());
    assert_eq!(s.drop_count(PipelineDrop::BadAction), 1, "pop on an untagged frame");
    let (_, s) = actions_on(&f, Actions::builder().push(Action::Meter(1)).push(Action::Output(1)).build().unwrap());
    assert_eq!(s.drop_count(PipelineDrop::Unsupported), 1);
    let (_, s) = actions_on(&f, Actions::output(9));
    assert_eq!(s.drop_count(PipelineDrop::NoSuchPort), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
    /// Any bytes, on any port: no panic, no leaked buffer, and every packet
    /// is either sent or dropped with a reason.
    #[test]
    fn arbitrary_frames_are_all_accounted(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 1..32),
        port in 0u32..6,
    ) {
        let mut r = Rig::new();
        // Two-port bridge on VLAN 10 so that a forwarded frame has exactly one output.
        r.slow.remove_port(3);
        r.slow.remove_port(4);
        let total = r.pool.available();
        let got = r.send(port, &frames, 0);
        let s = r.pipe.stats();
        let sent: usize = got.iter().map(|(_, f)| f.len()).sum();
        prop_assert_eq!(s.packets as usize, frames.len());
        prop_assert_eq!(sent as u64, s.outputs);
        prop_assert_eq!(s.outputs + s.total_drops(), s.packets);
        prop_assert_eq!(r.pool.available(), total);
    }
}

#[test]
fn a_batch_larger_than_max_batch_is_processed_whole() {
    let mut r = Rig::new();
    let mut batch = PacketBatch::with_capacity(100);
    for i in 0..70 {
        let mut b = r.pool.get().unwrap();
        b.fill(&udp(A, B, None, i)).unwrap();
        batch.push(b).unwrap();
    }
    r.out = TxQueues::new(8);
    let total = r.pool.available() + 70;
    r.pipe.process(1, &mut batch, &mut r.pool, &r.slow, &mut r.out, 0);
    assert!(batch.is_empty());
    let s = r.pipe.stats();
    assert_eq!(s.packets, 70);
    assert_eq!(s.outputs + s.total_drops(), 70 * 2, "flooded to ports 2 and 4: {s:?}");
    let queued: usize = r.out.dirty().to_vec().iter().map(|&p| r.out.batch_mut(p).unwrap().len()).sum();
    assert_eq!(queued as u64 + s.drop_count(PipelineDrop::TxQueueFull), 140);
    for p in r.out.dirty().to_vec() {
        r.out.batch_mut(p).unwrap().recycle(&mut r.pool);
    }
    assert_eq!(r.pool.available(), total);
}

#[test]
fn a_batch_of_one_cached_flow_moves_whole_in_order_and_overflow_is_counted() {
    let mut r = Rig::new();
    // B answers once from port 2, so A's frames go to port 2 alone.
    r.send(2, &[udp(B, A, None, 1)], 0);
    let frames: Vec<Vec<u8>> = (0..MAX_BATCH as u8)
        .map(|i| {
            let mut f = udp(A, B, None, 7);
            // A payload byte: not in the flow key, so one flow.
            f[59] = i;
            f
        })
        .collect();
    // The first batch installs the megaflow; the second hits the caches.
    for now in [1, 2] {
        let got = r.send(1, &frames, now);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, 2);
        let order: Vec<u8> = got[0].1.iter().map(|f| f[59]).collect();
        assert_eq!(order, (0..MAX_BATCH as u8).collect::<Vec<_>>(), "arrival order");
    }
    let before = r.pipe.stats();
    assert_eq!(before.emc_hits + before.megaflow_hits, MAX_BATCH as u64 + (MAX_BATCH - 1) as u64);
    // Without draining the queues, the third batch of three finds port 2's
    // queue full: counted, and every buffer back in the pool.
    let total = r.pool.available();
    for _ in 0..3 {
        let mut batch = PacketBatch::new();
        for f in &frames {
            let mut b = r.pool.get().unwrap();
            b.fill(f).unwrap();
            batch.push(b).unwrap();
        }
        r.pipe.process(1, &mut batch, &mut r.pool, &r.slow, &mut r.out, 3);
    }
    let s = r.pipe.stats();
    assert_eq!(s.outputs - before.outputs, TX_QUEUE_CAPACITY as u64);
    assert_eq!(s.drop_count(PipelineDrop::TxQueueFull), MAX_BATCH as u64);
    assert_eq!(r.out.dirty(), &[2]);
    r.out.batch_mut(2).unwrap().recycle(&mut r.pool);
    r.out.clear_dirty();
    assert_eq!(r.pool.available(), total);
    let m = r.pipe.cache().megaflows.iter().find(|m| m.matching.key().in_port() == 1).unwrap();
    assert_eq!(m.packets, 5 * MAX_BATCH as u64, "accounted once per batch, all packets");
}
