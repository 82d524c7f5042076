//! Property tests: for every header,
//! - `parse(emit(repr)) == repr` for any valid value, and
//! - for arbitrary bytes that parse, emitting the parsed value gives back
//!   the same bytes where the format has one encoding per value, and a
//!   value that parses to itself again everywhere else.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use sluice_packet::arp::{self, ArpOperation, ArpRepr};
use sluice_packet::ethernet::{EtherType, EthernetRepr, MacAddr, VlanTag};
use sluice_packet::geneve::{self, GeneveRepr};
use sluice_packet::gre::{self, GreRepr};
use sluice_packet::icmpv4::{self, Icmpv4Repr, Icmpv4Type};
use sluice_packet::icmpv6::{self, Icmpv6Repr, Icmpv6Type, NaFlags};
use sluice_packet::ipv4::{self, Ipv4Repr};
use sluice_packet::ipv6::{self, Ipv6Repr};
use sluice_packet::tcp::{self, TcpFlags, TcpRepr};
use sluice_packet::udp::{self, UdpRepr};
use sluice_packet::vxlan::{self, VxlanRepr};
use sluice_packet::{Headers, IpProtocol};

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}
fn ethertype() -> impl Strategy<Value = EtherType> {
    any::<u16>().prop_map(EtherType::from)
}
fn ipproto() -> impl Strategy<Value = IpProtocol> {
    any::<u8>().prop_map(IpProtocol::from)
}
fn v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}
fn v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}
/// Options of `max` bytes at most, a multiple of 4 long.
fn options<const N: usize>(max: usize) -> impl Strategy<Value = ([u8; N], u8)> {
    (0..=max / 4).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4)).prop_map(|v| {
        let mut a = [0u8; N];
        a[..v.len()].copy_from_slice(&v);
        (a, v.len() as u8)
    })
}

fn eth_repr() -> impl Strategy<Value = EthernetRepr> {
    let tag = (prop_oneof![Just(EtherType::Vlan), Just(EtherType::QinQ)], 0u8..8, any::<bool>(), 0u16..4096)
        .prop_map(|(tpid, pcp, dei, vid)| VlanTag { tpid, pcp, dei, vid });
    // The payload EtherType must not be a TPID, or it would read as a tag.
    let inner = ethertype().prop_filter("not a TPID", |t| !t.is_vlan());
    (mac(), mac(), proptest::collection::vec(tag, 0..=2), inner).prop_map(|(src, dst, tags, et)| {
        let mut r = EthernetRepr::new(src, dst, et);
        for t in tags {
            r.push_inner_tag(t).unwrap();
        }
        r
    })
}

fn ipv4_repr() -> impl Strategy<Value = Ipv4Repr> {
    (
        v4(),
        v4(),
        ipproto(),
        0u16..1400,
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<(bool, bool)>(),
        0u16..8192,
        options::<40>(40),
    )
        .prop_map(|(src, dst, protocol, payload_len, ttl, tos, ident, (df, mf), off, (options, options_len))| {
            Ipv4Repr {
                src,
                dst,
                protocol,
                payload_len,
                ttl,
                tos,
                ident,
                dont_frag: df,
                more_frags: mf,
                frag_offset: off << 3,
                options,
                options_len,
            }
        })
}

fn tcp_repr() -> impl Strategy<Value = TcpRepr> {
    (any::<(u16, u16, u32, u32)>(), 0u16..0x200, any::<(u16, u16)>(), options::<40>(40)).prop_map(
        |((src_port, dst_port, seq, ack), flags, (window, urgent), (options, options_len))| TcpRepr {
            src_port,
            dst_port,
            seq,
            ack,
            flags: TcpFlags(flags),
            window,
            urgent,
            options,
            options_len,
        },
    )
}

fn icmpv6_repr() -> impl Strategy<Value = Icmpv6Repr> {
    prop_oneof![
        any::<(u16, u16)>().prop_map(|(ident, seq)| Icmpv6Repr::EchoRequest { ident, seq }),
        any::<(u16, u16)>().prop_map(|(ident, seq)| Icmpv6Repr::EchoReply { ident, seq }),
        (v6(), proptest::option::of(mac()))
            .prop_map(|(target, source_lladdr)| Icmpv6Repr::NeighborSolicit { target, source_lladdr }),
        (any::<(bool, bool, bool)>(), v6(), proptest::option::of(mac())).prop_map(
            |((r, s, o), target, target_lladdr)| {
                Icmpv6Repr::NeighborAdvert {
                    flags: NaFlags { router: r, solicited: s, override_: o },
                    target,
                    target_lladdr,
                }
            }
        ),
        // Other messages: any type but those the parser gives their own variant.
        (any::<u8>(), any::<u8>(), any::<u32>())
            .prop_filter("canonical", |(t, c, _)| !matches!((t, c), (128 | 129, 0) | (135 | 136, _)))
            .prop_map(|(t, code, rest)| Icmpv6Repr::Other { msg_type: Icmpv6Type::from(t), code, rest }),
    ]
}

fn geneve_repr() -> impl Strategy<Value = GeneveRepr> {
    // Options as well-formed TLVs: class, type, and 0..=3 words of data each.
    let opt = (
        any::<u16>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..=3usize)
            .prop_flat_map(|w| proptest::collection::vec(any::<u8>(), w.len() * 4)),
    );
    (any::<(bool, bool)>(), ethertype(), 0u32..0x0100_0000, proptest::collection::vec(opt, 0..6)).prop_map(
        |((oam, critical), protocol, vni, opts)| {
            let mut r = GeneveRepr::new(vni);
            r.oam = oam;
            r.critical = critical;
            r.protocol = protocol;
            let mut n = 0usize;
            for (class, kind, data) in opts {
                r.options[n..n + 2].copy_from_slice(&class.to_be_bytes());
                r.options[n + 2] = kind;
                r.options[n + 3] = (data.len() / 4) as u8;
                r.options[n + 4..n + 4 + data.len()].copy_from_slice(&data);
                n += 4 + data.len();
            }
            r.options_len = n as u8;
            r
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ethernet_repr_round_trips(r in eth_repr()) {
        let mut b = vec![0xa5; r.header_len()];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&b).unwrap(), r);
    }

    #[test]
    fn arp_repr_round_trips(op in any::<u16>(), sm in mac(), si in v4(), tm in mac(), ti in v4()) {
        let r = ArpRepr { operation: ArpOperation::from(op), sender_mac: sm, sender_ip: si, target_mac: tm, target_ip: ti };
        let mut b = vec![0xa5; arp::PACKET_LEN];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(ArpRepr::parse(&arp::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn ipv4_repr_round_trips(r in ipv4_repr()) {
        let mut b = vec![0xa5; r.buffer_len()];
        r.emit(&mut b).unwrap();
        let p = ipv4::Packet::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn ipv6_repr_round_trips(src in v6(), dst in v6(), nh in ipproto(), len in 0u16..600, hl in any::<u8>(), tc in any::<u8>(), fl in 0u32..0x10_0000) {
        let r = Ipv6Repr { src, dst, next_header: nh, payload_len: len, hop_limit: hl, traffic_class: tc, flow_label: fl };
        let mut b = vec![0xa5; r.buffer_len()];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&ipv6::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn icmpv4_repr_round_trips(t in any::<u8>(), code in any::<u8>(), rest in any::<u32>(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let r = Icmpv4Repr { msg_type: Icmpv4Type::from(t), code, rest };
        let mut b = vec![0xa5; 8 + data.len()];
        r.emit(&mut b).unwrap();
        b[8..].copy_from_slice(&data);
        let mut p = icmpv4::Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(Icmpv4Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn icmpv6_repr_round_trips(r in icmpv6_repr(), src in v6(), dst in v6()) {
        let mut b = vec![0xa5; r.buffer_len()];
        r.emit(&mut b).unwrap();
        let mut p = icmpv6::Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(src, dst);
        prop_assert!(p.verify_checksum(src, dst));
        prop_assert_eq!(Icmpv6Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn udp_repr_round_trips(sp in any::<u16>(), dp in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..64), src in v6(), dst in v6(), s4 in v4(), d4 in v4()) {
        let r = UdpRepr { src_port: sp, dst_port: dp, payload_len: data.len() as u16 };
        let mut b = vec![0xa5; 8 + data.len()];
        r.emit(&mut b).unwrap();
        b[8..].copy_from_slice(&data);
        let mut p = udp::Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum_v6(src, dst);
        prop_assert!(p.verify_checksum_v6(src, dst));
        prop_assert_ne!(p.checksum(), 0);
        p.fill_checksum_v4(s4, d4);
        prop_assert!(p.verify_checksum_v4(s4, d4));
        prop_assert_eq!(UdpRepr::parse(&p).unwrap(), r);
    }

    #[test]
    fn tcp_repr_round_trips(r in tcp_repr(), data in proptest::collection::vec(any::<u8>(), 0..64), src in v4(), dst in v4()) {
        let mut b = vec![0xa5; r.header_len() + data.len()];
        r.emit(&mut b).unwrap();
        b[r.header_len()..].copy_from_slice(&data);
        let mut p = tcp::Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum_v4(src, dst);
        prop_assert!(p.verify_checksum_v4(src, dst));
        prop_assert_eq!(p.payload(), &data[..]);
        prop_assert_eq!(TcpRepr::parse(&p).unwrap(), r);
    }

    #[test]
    fn vxlan_repr_round_trips(vni in 0u32..0x0100_0000) {
        let r = VxlanRepr { vni };
        let mut b = [0xa5; 8];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(VxlanRepr::parse(&vxlan::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn gre_repr_round_trips(proto in ethertype(), csum in any::<bool>(), key in proptest::option::of(any::<u32>()), seq in proptest::option::of(any::<u32>()), data in proptest::collection::vec(any::<u8>(), 0..40)) {
        let r = GreRepr { protocol: proto, checksum: csum, key, seq };
        let mut b = vec![0xa5; r.header_len() + data.len()];
        r.emit(&mut b).unwrap();
        b[r.header_len()..].copy_from_slice(&data);
        let mut p = gre::Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(p.payload(), &data[..]);
        prop_assert_eq!(GreRepr::parse(&p).unwrap(), r);
    }

    #[test]
    fn geneve_repr_round_trips(r in geneve_repr()) {
        let mut b = vec![0xa5; r.header_len()];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(GeneveRepr::parse(&geneve::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    /// Bytes → value → bytes, for arbitrary bytes that parse. Formats with
    /// one encoding per value must give back the input exactly.
    #[test]
    fn parsed_bytes_emit_back(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(r) = EthernetRepr::parse(&bytes) {
            let mut b = vec![0; r.header_len()];
            r.emit(&mut b).unwrap();
            prop_assert_eq!(&b[..], &bytes[..r.header_len()]);
        }
        if let Ok(r) = ArpRepr::parse(&arp::Packet::new_unchecked(&bytes[..])) {
            let mut b = vec![0; 28];
            r.emit(&mut b).unwrap();
            prop_assert_eq!(&b[..], &bytes[..28]);
        }
        if let Ok(p) = udp::Packet::new_checked(&bytes[..]) {
            let r = UdpRepr::parse(&p).unwrap();
            let mut b = bytes.clone();
            r.emit(&mut b).unwrap();
            b[6..8].copy_from_slice(&bytes[6..8]);
            prop_assert_eq!(b, bytes.clone());
        }
        if let Ok(p) = tcp::Packet::new_checked(&bytes[..])
            && let Ok(r) = TcpRepr::parse(&p) {
                let mut b = bytes.clone();
                r.emit(&mut b).unwrap();
                b[16..18].copy_from_slice(&bytes[16..18]);
                prop_assert_eq!(b, bytes.clone());
            }
        if let Ok(p) = ipv6::Packet::new_checked(&bytes[..]) {
            let r = Ipv6Repr::parse(&p).unwrap();
            let mut b = bytes.clone();
            r.emit(&mut b).unwrap();
            prop_assert_eq!(b, bytes.clone());
        }
        if let Ok(p) = ipv4::Packet::new_checked(&bytes[..])
            && let Ok(r) = Ipv4Repr::parse(&p) {
                let mut b = bytes.clone();
                r.emit(&mut b).unwrap();
                b[10..12].copy_from_slice(&bytes[10..12]);
                prop_assert_eq!(b, bytes.clone());
            }
        if let Ok(p) = gre::Packet::new_checked(&bytes[..])
            && let Ok(r) = GreRepr::parse(&p) {
                let mut b = bytes.clone();
                r.emit(&mut b).unwrap();
                if r.checksum {
                    b[4..6].copy_from_slice(&bytes[4..6]);
                    // Reserved1 after the checksum is written as zero.
                    b[6..8].copy_from_slice(&bytes[6..8]);
                }
                prop_assert_eq!(b, bytes.clone());
            }
        if let Ok(p) = icmpv6::Packet::new_checked(&bytes[..])
            && let Ok(r) = Icmpv6Repr::parse(&p) {
                let mut b = vec![0; r.buffer_len()];
                r.emit(&mut b).unwrap();
                let again = Icmpv6Repr::parse(&icmpv6::Packet::new_checked(&b[..]).unwrap()).unwrap();
                prop_assert_eq!(again, r);
            }
        if let Ok(p) = geneve::Packet::new_checked(&bytes[..])
            && let Ok(r) = GeneveRepr::parse(&p) {
                let mut b = vec![0; r.header_len()];
                r.emit(&mut b).unwrap();
                prop_assert_eq!(GeneveRepr::parse(&geneve::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
            }
        // And the whole-frame walk never panics.
        let _ = Headers::parse(&bytes);
    }
}
