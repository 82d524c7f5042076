//! The invariants every fuzz target checks, one function per parser:
//! arbitrary bytes never panic a parser, and whatever parses emits into
//! bytes that parse back to the same value.

use sluice_packet::arp::{self, ArpRepr};
use sluice_packet::encap;
use sluice_packet::ethernet::EthernetRepr;
use sluice_packet::geneve::{self, GeneveOptions, GeneveRepr};
use sluice_packet::gre::{self, GreRepr};
use sluice_packet::icmpv4::{self, Icmpv4Repr};
use sluice_packet::icmpv6::{self, Icmpv6Repr};
use sluice_packet::ipv4::{self, Ipv4Repr};
use sluice_packet::ipv6::{self, Ipv6Repr};
use sluice_packet::tcp::{self, TcpOptions, TcpRepr};
use sluice_packet::udp::{self, UdpRepr};
use sluice_packet::vxlan::{self, VxlanRepr};
use sluice_packet::{Headers, PacketBuf};

/// Emits `repr` into a fresh buffer of `len` bytes and parses it back.
macro_rules! round_trip {
    ($repr:expr, $len:expr, $view:path, $parse:path) => {{
        let r = $repr;
        let mut b = vec![0xa5u8; $len];
        r.emit(&mut b).expect("a parsed value must emit");
        let again =
            $parse(&<$view>::new_checked(&b[..]).expect("emitted bytes must check")).expect("emitted bytes must parse");
        assert_eq!(again, r);
    }};
}

pub fn ethernet(data: &[u8]) {
    if let Ok(r) = EthernetRepr::parse(data) {
        let mut b = vec![0u8; r.header_len()];
        r.emit(&mut b).unwrap();
        assert_eq!(EthernetRepr::parse(&b).unwrap(), r);
        assert_eq!(&b[..], &data[..r.header_len()]);
    }
}

pub fn arp(data: &[u8]) {
    if let Ok(p) = arp::Packet::new_checked(data)
        && let Ok(r) = ArpRepr::parse(&p)
    {
        round_trip!(r, arp::PACKET_LEN, arp::Packet<&[u8]>, ArpRepr::parse);
    }
}

pub fn ipv4(data: &[u8]) {
    if let Ok(p) = ipv4::Packet::new_checked(data) {
        let _ = (p.verify_checksum(), p.payload(), p.fragment(), p.options());
        if let Ok(r) = Ipv4Repr::parse(&p) {
            round_trip!(r, r.buffer_len(), ipv4::Packet<&[u8]>, Ipv4Repr::parse);
        }
    }
}

pub fn ipv6(data: &[u8]) {
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let _ = ipv6::walk_extensions(p.next_header(), p.payload());
        let r = Ipv6Repr::parse(&p).unwrap();
        round_trip!(r, r.buffer_len(), ipv6::Packet<&[u8]>, Ipv6Repr::parse);
    }
}

pub fn icmpv4(data: &[u8]) {
    if let Ok(p) = icmpv4::Packet::new_checked(data) {
        let _ = (p.verify_checksum(), p.payload());
        let r = Icmpv4Repr::parse(&p).unwrap();
        round_trip!(r, 8, icmpv4::Packet<&[u8]>, Icmpv4Repr::parse);
    }
}

pub fn icmpv6(data: &[u8]) {
    if let Ok(p) = icmpv6::Packet::new_checked(data) {
        for o in p.nd_options().flatten() {
            let _ = o.link_layer_addr();
        }
        if let Ok(r) = Icmpv6Repr::parse(&p) {
            round_trip!(r, r.buffer_len(), icmpv6::Packet<&[u8]>, Icmpv6Repr::parse);
        }
    }
}

pub fn udp(data: &[u8]) {
    if let Ok(p) = udp::Packet::new_checked(data) {
        let _ = p.payload();
        let r = UdpRepr::parse(&p).unwrap();
        round_trip!(r, 8 + usize::from(r.payload_len), udp::Packet<&[u8]>, UdpRepr::parse);
    }
}

pub fn tcp(data: &[u8]) {
    if let Ok(p) = tcp::Packet::new_checked(data) {
        let _ = p.payload();
        for o in TcpOptions::new(p.options()) {
            let _ = o;
        }
        if let Ok(r) = TcpRepr::parse(&p) {
            round_trip!(r, r.header_len(), tcp::Packet<&[u8]>, TcpRepr::parse);
        }
    }
}

pub fn vxlan(data: &[u8]) {
    if let Ok(p) = vxlan::Packet::new_checked(data)
        && let Ok(r) = VxlanRepr::parse(&p)
    {
        round_trip!(r, 8, vxlan::Packet<&[u8]>, VxlanRepr::parse);
    }
}

pub fn gre(data: &[u8]) {
    if let Ok(p) = gre::Packet::new_checked(data) {
        let _ = (p.verify_checksum(), p.payload(), p.key(), p.seq(), p.checksum());
        if let Ok(r) = GreRepr::parse(&p) {
            round_trip!(r, r.header_len(), gre::Packet<&[u8]>, GreRepr::parse);
        }
    }
}

pub fn geneve(data: &[u8]) {
    if let Ok(p) = geneve::Packet::new_checked(data) {
        for o in GeneveOptions::new(p.options()) {
            let _ = o;
        }
        if let Ok(r) = GeneveRepr::parse(&p) {
            round_trip!(r, r.header_len(), geneve::Packet<&[u8]>, GeneveRepr::parse);
        }
    }
}

/// The whole-frame walk and its helpers, then VXLAN decapsulation of the
/// same bytes.
pub fn frame(data: &[u8]) {
    if let Ok(h) = Headers::parse(data) {
        let _ = (h.nd(data), h.tunnel(data));
        assert!(usize::from(h.payload_offset) <= data.len());
    }
    let mut buf = PacketBuf::new(4096, 128);
    if buf.fill(data).is_ok() {
        let before = buf.len();
        match encap::vxlan_v4_decap(&mut buf) {
            Ok(_) => assert!(buf.len() < before),
            Err(_) => assert_eq!(buf.as_slice(), data),
        }
    }
}

/// Flow-key extraction never panics; the key agrees with a fresh parse
/// of the same bytes (and with the header-free straight line on the
/// frames it takes), its match on itself holds, and its display renders.
pub fn flow_key(data: &[u8]) {
    use sluice_flow::{Field, FlowKey, Mask, Match, Metadata};
    let meta = Metadata::port(data.len() as u32);
    let mut h = Headers::EMPTY;
    let k = FlowKey::extract(data, &meta, &mut h);
    assert_eq!(k.get(Field::InPort), data.len() as u128);
    if let Ok(h2) = Headers::parse(data) {
        assert_eq!(h, h2);
        assert_eq!(k.get(Field::EthType), u128::from(u16::from(h2.eth.ethertype)));
    }
    let mut again = FlowKey::ZERO;
    again.extract_into(data, &meta, &mut h);
    assert_eq!(again, k);
    // The header-free straight line: the same key, for exactly its frames.
    let mut common = FlowKey::ZERO;
    let taken = sluice_packet::headers::fast_tcp_flags(data).is_some();
    assert_eq!(common.extract_common(data, &meta), taken);
    assert_eq!(common, if taken { k } else { FlowKey::ZERO });
    assert_eq!(again.hash(), k.hash());
    assert!(Match::new(&k, &Mask::EXACT).matches(&k));
    let _ = k.to_string();
}

/// The frame key ([`sluice_flow::FrameKey`]): never panics; a frame has
/// one exactly when the flow-key extractor's straight line takes it (and
/// it is 48 bytes or more), or would with its one or two VLAN tags taken
/// out (52 or 56 bytes or more); and a one-byte change that leaves the frame
/// key equal leaves the flow key equal (the exact-match cache's
/// soundness). Likewise for the IPv6 frame key
/// ([`sluice_flow::FrameKey6`]), with the frames of
/// [`sluice_packet::headers::fast_shape_v6`] and its tagged variant. The
/// last two bytes of `data` say which byte to change and by how much; the
/// rest is the frame.
pub fn frame_key(data: &[u8]) {
    use sluice_flow::{FlowKey, FrameKey, FrameKey6, Metadata};
    let (frame, sel) = data.split_at(data.len().saturating_sub(2));
    let (at, delta) = match sel {
        [a, d] => (usize::from(*a), *d),
        _ => (0, 0),
    };
    let port = u32::from(delta) * 7;
    let key = FrameKey::extract(frame, port);
    let mut h = Headers::EMPTY;
    let tagged = frame.len() >= sluice_flow::frame::FRAME_KEY_BYTES + 4
        && sluice_packet::headers::fast_shape_tagged(frame).is_some();
    let double_tagged = frame.len() >= sluice_flow::frame::FRAME_KEY_BYTES + 8
        && sluice_packet::headers::fast_shape_double_tagged(frame).is_some();
    assert_eq!(
        key.is_some(),
        frame.len() >= sluice_flow::frame::FRAME_KEY_BYTES && h.parse_fast(frame) || tagged || double_tagged
    );
    if frame.is_empty() || delta == 0 {
        return;
    }
    let mut changed = frame.to_vec();
    let at = at % changed.len();
    changed[at] = changed[at].wrapping_add(delta);
    let meta = Metadata::port(port);
    if key.is_some() && FrameKey::extract(&changed, port) == key {
        let mut h2 = Headers::EMPTY;
        assert_eq!(FlowKey::extract(frame, &meta, &mut h), FlowKey::extract(&changed, &meta, &mut h2), "byte {at}");
    }
    // The same for IPv6 frame keys, which only IPv6 frames have.
    let key6 = FrameKey6::extract(frame, port);
    let shaped6 = sluice_packet::headers::fast_shape_v6(frame).or(sluice_packet::headers::fast_shape_v6_tagged(frame));
    assert_eq!(key6.is_some(), shaped6.is_some());
    assert!(key.is_none() || key6.is_none());
    if key6.is_some() && FrameKey6::extract(&changed, port) == key6 {
        let mut h2 = Headers::EMPTY;
        let (a, b) = (FlowKey::extract(frame, &meta, &mut h), FlowKey::extract(&changed, &meta, &mut h2));
        assert_eq!(a, b, "byte {at} (IPv6)");
    }
}
