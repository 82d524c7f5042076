//! VXLAN encapsulation and decapsulation in place, using a buffer's
//! headroom (the OVS `tnl_push` idea: build the outer headers once as a
//! template, then per packet copy it in front and patch the lengths, the
//! IPv4 checksum and the UDP source port).

use core::net::Ipv4Addr;

use crate::buffer::PacketBuf;
use crate::checksum;
use crate::ethernet::{EtherType, EthernetRepr, MacAddr};
use crate::field::{put_u16, u16_at};
use crate::ip::IpProtocol;
use crate::ipv4::Ipv4Repr;
use crate::udp::UdpRepr;
use crate::vxlan::VxlanRepr;
use crate::{Error, Result, ipv4, udp, vxlan};

/// Outer Ethernet + IPv4 + UDP + VXLAN, untagged.
pub const VXLAN_V4_OVERHEAD: usize = 14 + 20 + 8 + 8;

/// Prebuilt outer headers for VXLAN over IPv4.
#[derive(Debug, Clone, Copy)]
pub struct VxlanV4Template {
    bytes: [u8; VXLAN_V4_OVERHEAD],
    /// The template's IPv4 checksum, for a zero total length.
    csum_base: u16,
}

const IP_AT: usize = 14;
const UDP_AT: usize = IP_AT + 20;

impl VxlanV4Template {
    /// Outer headers from `src_mac` to `dst_mac` (the next hop), from
    /// `src` to `dst`, with `vni`, TTL 64, DF set, UDP checksum zero (as
    /// the kernel sends VXLAN over IPv4 by default).
    pub fn new(src_mac: MacAddr, dst_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, vni: u32) -> Result<VxlanV4Template> {
        let mut bytes = [0u8; VXLAN_V4_OVERHEAD];
        let rest = EthernetRepr::new(src_mac, dst_mac, EtherType::Ipv4).emit(&mut bytes)?;
        Ipv4Repr::new(src, dst, IpProtocol::Udp, 0).emit(rest)?;
        UdpRepr { src_port: 0, dst_port: vxlan::UDP_PORT, payload_len: 0 }.emit(&mut bytes[UDP_AT..])?;
        VxlanRepr { vni }.emit(&mut bytes[UDP_AT + 8..])?;
        // The IPv4 header as built has total length 20: keep the checksum
        // for total length 0 so each packet adds its own length.
        let csum_base = checksum::update_u16(u16_at(&bytes, IP_AT + 10), 20, 0);
        Ok(VxlanV4Template { bytes, csum_base })
    }

    /// Prepends the outer headers to the Ethernet frame in `buf`, with UDP
    /// source port `src_port` (RFC 7348 says: a hash of the inner flow, in
    /// the ephemeral range, so that the underlay spreads flows).
    #[inline]
    pub fn encap(&self, buf: &mut PacketBuf, src_port: u16) -> Result<()> {
        let inner = buf.len();
        let ip_total = inner + VXLAN_V4_OVERHEAD - IP_AT;
        if ip_total > usize::from(u16::MAX) {
            return Err(Error::Malformed(crate::error::Malformed::EncapTooLong));
        }
        let ip_total = ip_total as u16;
        let h = buf.push_front(VXLAN_V4_OVERHEAD)?;
        h.copy_from_slice(&self.bytes);
        put_u16(h, IP_AT + 2, ip_total);
        put_u16(h, IP_AT + 10, checksum::update_u16(self.csum_base, 0, ip_total));
        put_u16(h, UDP_AT, src_port);
        put_u16(h, UDP_AT + 4, ip_total - 20);
        Ok(())
    }
}

/// What decapsulation learned from the outer headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanV4Outer {
    /// Outer source address.
    pub src: Ipv4Addr,
    /// Outer destination address.
    pub dst: Ipv4Addr,
    /// Outer UDP source port.
    pub src_port: u16,
    /// The network identifier.
    pub vni: u32,
}

/// Strips untagged Ethernet + IPv4 (options allowed) + UDP 4789 + VXLAN
/// from the front of `buf`, leaving the inner frame, and returns the outer
/// fields. On error `buf` is unchanged.
#[inline]
pub fn vxlan_v4_decap(buf: &mut PacketBuf) -> Result<VxlanV4Outer> {
    let b = buf.as_slice();
    if b.len() < VXLAN_V4_OVERHEAD {
        return Err(Error::Truncated);
    }
    if u16_at(b, 12) != u16::from(EtherType::Ipv4) {
        return Err(Error::Malformed(crate::error::Malformed::OuterNotIpv4));
    }
    let ip = ipv4::Packet::new_checked(&b[IP_AT..])?;
    if ip.protocol() != IpProtocol::Udp || ip.fragment() != crate::ip::Fragment::No {
        return Err(Error::Malformed(crate::error::Malformed::OuterNotUdp));
    }
    let udp_at = IP_AT + ip.header_len();
    let u = udp::Packet::new_checked(&b[udp_at..IP_AT + usize::from(ip.total_len())])?;
    if u.dst_port() != vxlan::UDP_PORT {
        return Err(Error::Malformed(crate::error::Malformed::OuterNotVxlanPort));
    }
    let v = VxlanRepr::parse(&vxlan::Packet::new_checked(u.payload())?)?;
    let outer = VxlanV4Outer { src: ip.src(), dst: ip.dst(), src_port: u.src_port(), vni: v.vni };
    let strip = udp_at + udp::HEADER_LEN + vxlan::HEADER_LEN;
    let inner_len = usize::from(u.len()) - udp::HEADER_LEN - vxlan::HEADER_LEN;
    buf.pull_front(strip)?;
    buf.truncate(inner_len);
    Ok(outer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::{Headers, L3, L4};

    #[test]
    fn encap_then_decap_restores_the_inner_frame_and_the_outer_is_valid() {
        let t = VxlanV4Template::new(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(192, 168, 1, 1),
            Ipv4Addr::new(192, 168, 1, 2),
            42,
        )
        .unwrap();
        let inner: Vec<u8> = (0..60u8).collect();
        let mut buf = PacketBuf::new(2048, 128);
        buf.fill(&inner).unwrap();
        t.encap(&mut buf, 49152).unwrap();
        assert_eq!(buf.len(), 60 + VXLAN_V4_OVERHEAD);
        let ip = ipv4::Packet::new_checked(&buf.as_slice()[14..]).unwrap();
        assert!(ip.verify_checksum(), "incrementally patched checksum must verify");
        assert_eq!(usize::from(ip.total_len()), 60 + 36);
        let h = Headers::parse(buf.as_slice()).unwrap();
        assert_eq!(h.l3, L3::Ipv4);
        assert_eq!(h.l4, L4::Udp { src_port: 49152, dst_port: 4789 });
        assert_eq!(h.tunnel(buf.as_slice()), Some((42, VXLAN_V4_OVERHEAD)));
        let outer = vxlan_v4_decap(&mut buf).unwrap();
        assert_eq!(outer.vni, 42);
        assert_eq!(outer.src_port, 49152);
        assert_eq!(buf.as_slice(), &inner[..]);
        assert_eq!(buf.headroom(), 128);
    }

    #[test]
    fn decap_refuses_other_ports_and_leaves_the_buffer() {
        let t =
            VxlanV4Template::new(MacAddr::ZERO, MacAddr::ZERO, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1).unwrap();
        let mut buf = PacketBuf::new(512, 128);
        buf.fill(&[0u8; 14]).unwrap();
        t.encap(&mut buf, 1).unwrap();
        buf.as_mut_slice()[UDP_AT + 2] = 0x13; // dst port no longer 4789 (0x12b5)
        let before = buf.as_slice().to_vec();
        assert!(vxlan_v4_decap(&mut buf).is_err());
        assert_eq!(buf.as_slice(), &before[..]);
    }
}
