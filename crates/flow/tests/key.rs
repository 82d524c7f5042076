//! Flow-key extraction from hand-built frames: each field lands where
//! `Field` says, and odd frames stop cleanly.

use core::net::{Ipv4Addr, Ipv6Addr};

use sluice_flow::key::{CT_ESTABLISHED, CT_TRACKED, FRAG_ANY, FRAG_LATER, TUN_F_KEY, TUN_F_PRESENT};
use sluice_flow::{Field, FlowKey, Mask, Match, Metadata, TunnelMeta};
use sluice_packet::Headers;

const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];

fn eth(vlans: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    for &(tpid, tci) in vlans {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ipv4(proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0xb8];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[63, proto, 0, 0, 10, 0, 0, 1, 192, 168, 7, 9]);
    h.extend_from_slice(l4);
    h
}

fn tcp(sp: u16, dp: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sp.to_be_bytes());
    t.extend_from_slice(&dp.to_be_bytes());
    t.extend_from_slice(&[0; 8]);
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn key_of(frame: &[u8], meta: &Metadata) -> FlowKey {
    let mut h = Headers::EMPTY;
    FlowKey::extract(frame, meta, &mut h)
}

#[test]
fn ipv4_tcp_with_two_vlan_tags() {
    let mut f = eth(&[(0x88a8, 0x2000 | 100), (0x8100, 7)], 0x0800);
    f.extend(ipv4(6, 0, &tcp(1234, 80, 0x12)));
    let k = key_of(&f, &Metadata::port(5));
    assert_eq!(k.get(Field::InPort), 5);
    assert_eq!(k.get(Field::EthDst), 0x0200_0000_00bb);
    assert_eq!(k.get(Field::EthSrc), 0x0200_0000_00aa);
    assert_eq!(k.get(Field::EthType), 0x0800);
    assert_eq!(k.get(Field::Vlan0), (0x88a8 << 16) | 0x2000 | 100);
    assert_eq!(k.get(Field::Vlan1), (0x8100 << 16) | 7);
    assert_eq!(k.vlan_vid(), Some(100));
    assert_eq!(k.get(Field::NwProto), 6);
    assert_eq!(k.get(Field::NwTos), 0xb8);
    assert_eq!(k.get(Field::NwTtl), 63);
    assert_eq!(k.get(Field::Ipv4Src), u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 1))));
    assert_eq!(k.get(Field::Ipv4Dst), u128::from(u32::from(Ipv4Addr::new(192, 168, 7, 9))));
    assert_eq!(k.get(Field::TpSrc), 1234);
    assert_eq!(k.get(Field::TpDst), 80);
    assert_eq!(k.get(Field::TcpFlags), 0x12);
    assert_eq!(k.get(Field::NwFrag), 0);
    let s = k.to_string();
    assert!(s.contains("nw_src=10.0.0.1,") && s.contains("tp_dst=80") && !s.contains("ipv6"), "{s}");
}

#[test]
fn fragments_and_metadata() {
    let mut f = eth(&[], 0x0800);
    f.extend(ipv4(17, 0x0010, &[1, 2, 3, 4, 5, 6, 7, 8]));
    let meta = Metadata {
        in_port: 2,
        recirc_id: 9,
        tunnel: TunnelMeta {
            id: 4242,
            src: Ipv4Addr::new(1, 1, 1, 1),
            dst: Ipv4Addr::new(2, 2, 2, 2),
            flags: TUN_F_PRESENT | TUN_F_KEY,
        },
        ct_state: CT_TRACKED | CT_ESTABLISHED,
        ct_zone: 7,
        ct_mark: 0xdead,
        regs: [1, 2, 3, 4],
    };
    let k = key_of(&f, &meta);
    assert_eq!(k.get(Field::NwFrag), u128::from(FRAG_ANY | FRAG_LATER));
    assert_eq!(k.get(Field::TpSrc), 0, "a later fragment has no ports");
    assert_eq!(k.get(Field::RecircId), 9);
    assert_eq!(k.get(Field::TunId), 4242);
    assert_eq!(k.get(Field::TunSrc), 0x0101_0101);
    assert_eq!(k.get(Field::TunDst), 0x0202_0202);
    assert_eq!(k.get(Field::TunFlags), u128::from(TUN_F_PRESENT | TUN_F_KEY));
    assert_eq!(k.get(Field::CtState), u128::from(CT_TRACKED | CT_ESTABLISHED));
    assert_eq!(k.get(Field::CtZone), 7);
    assert_eq!(k.get(Field::CtMark), 0xdead);
    assert_eq!([k.get(Field::Reg0), k.get(Field::Reg1), k.get(Field::Reg2), k.get(Field::Reg3)], [1, 2, 3, 4]);
    // Tunnel fields are ignored without the present flag.
    let k2 = key_of(&f, &Metadata { tunnel: TunnelMeta { flags: 0, ..meta.tunnel }, ..meta });
    assert_eq!(k2.get(Field::TunId), 0);
}

#[test]
fn arp_fields() {
    let mut f = eth(&[], 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&DST);
    f.extend_from_slice(&[10, 0, 0, 2]);
    let k = key_of(&f, &Metadata::port(1));
    assert_eq!(k.get(Field::NwProto), 2);
    assert_eq!(k.get(Field::Ipv4Src), 0x0a00_0001);
    assert_eq!(k.get(Field::Ipv4Dst), 0x0a00_0002);
    assert_eq!(k.get(Field::ArpSha), 0x0200_0000_00aa);
    assert_eq!(k.get(Field::ArpTha), 0x0200_0000_00bb);
    let m = Match::new(&k, &Mask::of(&[Field::EthType, Field::NwProto, Field::Ipv4Dst]));
    assert_eq!(m.to_string(), "arp_op=2,eth_type=0x806,arp_tpa=10.0.0.2");
}

#[test]
fn ipv6_neighbour_solicitation() {
    let target: Ipv6Addr = "fe80::1".parse().unwrap();
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&SRC);
    let mut f = eth(&[], 0x86dd);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    let src: Ipv6Addr = "fe80::2".parse().unwrap();
    let dst: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend(icmp);
    let k = key_of(&f, &Metadata::port(1));
    assert_eq!(k.get(Field::Ipv6Src), u128::from(src));
    assert_eq!(k.get(Field::Ipv6Dst), u128::from(dst));
    assert_eq!(k.get(Field::NwProto), 58);
    assert_eq!(k.get(Field::NwTtl), 255);
    assert_eq!(k.get(Field::TpSrc), 135);
    assert_eq!(k.get(Field::NdTarget), u128::from(target));
    assert_eq!(k.get(Field::ArpSha), 0x0200_0000_00aa);
    let s = k.to_string();
    assert!(s.contains("ipv6_src=fe80::2") && s.contains("nd_target=fe80::1") && s.contains("nd_sll="), "{s}");
}

#[test]
fn short_and_malformed_frames_keep_what_was_read() {
    let k = key_of(&[1, 2, 3], &Metadata::port(3));
    assert_eq!(k, FlowKey::ZERO.with(Field::InPort, 3));
    // IPv4 with a bad version: L2 fields only.
    let mut f = eth(&[], 0x0800);
    let mut ip = ipv4(6, 0, &tcp(1, 2, 0));
    ip[0] = 0x55;
    f.extend(ip);
    let k = key_of(&f, &Metadata::port(3));
    assert_eq!(k.get(Field::EthType), 0x0800);
    assert_eq!(k.get(Field::Ipv4Src), 0);
}

#[test]
fn mask_fields_are_inspectable_and_display_partial_masks() {
    let mut mask = Mask::of(&[Field::InPort, Field::EthType]);
    mask.set(Field::Ipv4Dst, 0xffff_ff00);
    assert_eq!(mask.fields().collect::<Vec<_>>(), vec![Field::InPort, Field::EthType, Field::Ipv4Dst]);
    assert!(mask.is_exact(Field::InPort) && !mask.is_exact(Field::Ipv4Dst));
    let k = FlowKey::ZERO.with(Field::InPort, 1).with(Field::EthType, 0x0800).with(Field::Ipv4Dst, 0x0a01_0203);
    let m = Match::new(&k, &mask);
    assert_eq!(m.to_string(), "in_port=1,eth_type=0x800,nw_dst=10.1.2.0/255.255.255.0");
    assert!(m.matches(&k.with(Field::Ipv4Dst, 0x0a01_02ff).with(Field::TpDst, 99)));
    assert!(!m.matches(&k.with(Field::Ipv4Dst, 0x0a01_0303)));
    assert_eq!(Match::CATCH_ALL.to_string(), "*");
    assert_eq!(mask.to_string(), "in_port,eth_type,nw_dst/255.255.255.0");
}
