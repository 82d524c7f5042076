use proptest::prelude::*;
use sluice_packet::{EtherType, EthernetRepr, MacAddr, VlanTag};

use super::*;

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

fn frame(src: MacAddr, dst: MacAddr, vid: Option<u16>) -> EthernetRepr {
    let mut e = EthernetRepr::new(src, dst, EtherType::Ipv4);
    if let Some(v) = vid {
        e.push_inner_tag(VlanTag::dot1q(v)).unwrap();
    }
    e
}

/// Ports 1, 2 access VLAN 10; port 3 access VLAN 20; port 4 trunk 10+20.
fn bridge() -> Bridge {
    let mut b = Bridge::new(BridgeConfig::default());
    b.set_port(PortId(1), VlanMode::Access { vid: 10 });
    b.set_port(PortId(2), VlanMode::Access { vid: 10 });
    b.set_port(PortId(3), VlanMode::Access { vid: 20 });
    b.set_port(PortId(4), VlanMode::Trunk { allowed: VlanSet::of([10, 20]), native: None });
    b
}

fn outputs(b: &mut Bridge, port: u16, e: &EthernetRepr, now: u64) -> Result<Vec<(PortId, Egress)>, BridgeDrop> {
    b.forward(PortId(port), e, now).0.map(|f| f.outputs.to_vec())
}

#[test]
fn unknown_destination_floods_its_vlan_then_learning_stops_the_flood() {
    let mut b = bridge();
    let out = outputs(&mut b, 1, &frame(mac(1), mac(2), None), 0).unwrap();
    assert_eq!(out, vec![(PortId(2), Egress::Untagged), (PortId(4), Egress::Tagged(10))]);
    // The reply comes from port 2; mac(1) is known on port 1 now.
    let out = outputs(&mut b, 2, &frame(mac(2), mac(1), None), 1).unwrap();
    assert_eq!(out, vec![(PortId(1), Egress::Untagged)]);
    // And now mac(2) is known: no more flooding.
    let (r, c) = b.forward(PortId(1), &frame(mac(1), mac(2), None), 2);
    let f = r.unwrap();
    assert!(!f.flooded);
    assert_eq!(f.outputs, &[(PortId(2), Egress::Untagged)]);
    assert_eq!(c, Consulted { in_port: true, vlan: true, dst_mac: true, src_mac: true });
}

#[test]
fn vlans_are_isolated_and_trunks_tag() {
    let mut b = bridge();
    let out = outputs(&mut b, 3, &frame(mac(3), MacAddr::BROADCAST, None), 0).unwrap();
    assert_eq!(out, vec![(PortId(4), Egress::Tagged(20))], "VLAN 20 never reaches ports 1 and 2");
    let out = outputs(&mut b, 4, &frame(mac(4), MacAddr::BROADCAST, Some(10)), 0).unwrap();
    assert_eq!(out, vec![(PortId(1), Egress::Untagged), (PortId(2), Egress::Untagged)]);
    assert_eq!(
        outputs(&mut b, 4, &frame(mac(4), mac(9), Some(30)), 0),
        Err(BridgeDrop::Ingress(IngressDrop::VlanNotAllowed))
    );
    assert_eq!(
        outputs(&mut b, 1, &frame(mac(1), mac(9), Some(10)), 0),
        Err(BridgeDrop::Ingress(IngressDrop::VlanNotAllowed))
    );
}

#[test]
fn station_moves_follow_the_vm() {
    let mut b = bridge();
    outputs(&mut b, 1, &frame(mac(1), MacAddr::BROADCAST, None), 0).unwrap();
    assert_eq!(b.station(10, mac(1), 0), Some(PortId(1)));
    let (r, _) = b.forward(PortId(2), &frame(mac(1), MacAddr::BROADCAST, None), 5);
    assert_eq!(r.unwrap().learned, Learned::Moved { from: PortId(1) });
    assert_eq!(b.station(10, mac(1), 5), Some(PortId(2)));
    assert_eq!(outputs(&mut b, 2, &frame(mac(9), mac(1), None), 6), Err(BridgeDrop::SamePort));
}

#[test]
fn bad_sources_and_unknown_ports_are_dropped_by_reason() {
    let mut b = bridge();
    assert_eq!(outputs(&mut b, 9, &frame(mac(1), mac(2), None), 0), Err(BridgeDrop::UnknownPort));
    assert_eq!(outputs(&mut b, 1, &frame(MacAddr::BROADCAST, mac(2), None), 0), Err(BridgeDrop::MulticastSource));
    let mut lone = Bridge::new(BridgeConfig::default());
    lone.set_port(PortId(1), VlanMode::Access { vid: 5 });
    assert_eq!(outputs(&mut lone, 1, &frame(mac(1), mac(2), None), 0), Err(BridgeDrop::NoOutput));
}

#[test]
fn removing_or_remoding_a_port_forgets_its_stations() {
    let mut b = bridge();
    outputs(&mut b, 1, &frame(mac(1), MacAddr::BROADCAST, None), 0).unwrap();
    b.set_port(PortId(1), VlanMode::Access { vid: 20 });
    assert_eq!(b.station(10, mac(1), 0), None);
    outputs(&mut b, 1, &frame(mac(1), MacAddr::BROADCAST, None), 0).unwrap();
    assert!(b.remove_port(PortId(1)));
    assert_eq!(b.station(20, mac(1), 0), None);
    assert!(!b.remove_port(PortId(1)));
}

fn mode() -> impl Strategy<Value = VlanMode> {
    prop_oneof![
        (1u16..5).prop_map(|vid| VlanMode::Access { vid }),
        (proptest::collection::vec(1u16..5, 0..4), proptest::option::of(1u16..5))
            .prop_map(|(a, native)| VlanMode::Trunk { allowed: VlanSet::of(a), native }),
    ]
}

proptest! {
    /// Whatever the ports, modes and traffic: a frame leaves only on ports
    /// that carry its VLAN, never on its input port, and tagged exactly when
    /// the output port is a trunk for a non-native VLAN.
    #[test]
    fn frames_never_leak_across_vlans(
        modes in proptest::collection::vec(mode(), 1..6),
        traffic in proptest::collection::vec((0u16..6, 1u8..6, 0u8..7, proptest::option::of(0u16..6)), 1..60),
    ) {
        let mut b = Bridge::new(BridgeConfig { mac_capacity: 16, mac_per_port: 4, mac_max_age_ms: 50 });
        for (i, m) in modes.iter().enumerate() {
            b.set_port(PortId(i as u16), m.clone());
        }
        for (now, (port, src, dst, vid)) in traffic.into_iter().enumerate() {
            let dst = if dst == 0 { MacAddr::BROADCAST } else { mac(dst) };
            let e = frame(mac(src), dst, vid);
            let in_mode = modes.get(usize::from(port)).cloned();
            if let Ok(f) = b.forward(PortId(port), &e, now as u64).0 {
                let in_mode = in_mode.expect("forwarded from a port that exists");
                prop_assert_eq!(in_mode.ingress(e.vlans().first()), Ok(f.vlan));
                for &(out, eg) in f.outputs {
                    prop_assert_ne!(out, PortId(port));
                    let m = &modes[usize::from(out.0)];
                    prop_assert_eq!(m.egress(f.vlan), Some(eg));
                }
            }
        }
    }
}
