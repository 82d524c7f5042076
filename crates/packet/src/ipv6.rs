//! IPv6 (RFC 8200): the fixed header, and a walk over extension headers to
//! the upper-layer header.

use core::net::Ipv6Addr;

use crate::checksum;
use crate::field::{array, put_u16, u16_at, u32_at};
use crate::ip::{Fragment, IpProtocol};
use crate::{Error, Result};

/// The fixed header's length.
pub const HEADER_LEN: usize = 40;
/// The most extension headers [`walk_extensions`] follows before giving up
/// (a chain longer than this is an attack, not traffic).
pub const MAX_EXTENSIONS: usize = 8;

mod field {
    pub const VER_TC_FL: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Fails unless the buffer holds the fixed header and the payload length
    /// it declares, and the version is 6. (A jumbogram's zero payload length
    /// is not supported and reads as an empty payload.)
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed(crate::error::Malformed::Ipv6Version));
        }
        if b.len() < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (u32_at(self.buffer.as_ref(), field::VER_TC_FL) >> 20) as u8
    }
    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::VER_TC_FL) & 0x000f_ffff
    }
    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::LENGTH)
    }
    /// The first next-header value.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }
    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), field::SRC))
    }
    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), field::DST))
    }
    /// The payload (extension headers included), up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hop limit (IPv6 has no header checksum).
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    /// Sets the source address.
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fixed IPv6 header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The first next header (an extension header or the upper layer).
    pub next_header: IpProtocol,
    /// Bytes after the fixed header.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads the fixed header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Ipv6Repr> {
        p.check_len()?;
        Ok(Ipv6Repr {
            src: p.src(),
            dst: p.dst(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    /// 40.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header and payload length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len)
    }

    /// Writes the fixed header into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if self.flow_label > 0x000f_ffff {
            return Err(Error::Malformed(crate::error::Malformed::Ipv6FlowLabelRange));
        }
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let w = (6u32 << 28) | (u32::from(self.traffic_class) << 20) | self.flow_label;
        crate::field::put_u32(buf, field::VER_TC_FL, w);
        put_u16(buf, field::LENGTH, self.payload_len);
        buf[field::NXT_HDR] = self.next_header.into();
        buf[field::HOP_LIMIT] = self.hop_limit;
        buf[field::SRC..field::SRC + 16].copy_from_slice(&self.src.octets());
        buf[field::DST..field::DST + 16].copy_from_slice(&self.dst.octets());
        Ok(())
    }

    /// The pseudo-header sum for an upper-layer packet of `len` bytes.
    pub fn pseudo_header(&self, upper: IpProtocol, len: u32) -> checksum::Checksum {
        checksum::pseudo_header_v6(self.src, self.dst, upper, len)
    }
}

/// Where the extension-header chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The upper-layer protocol (TCP, UDP, ICMPv6, …; `Ipv6NoNxt`; `Esp`,
    /// whose contents are opaque; or `Ipv6Frag` left unfollowed in a later
    /// fragment).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the IPv6 payload.
    pub offset: usize,
    /// The fragment state (from a Fragment header, if any).
    pub fragment: Fragment,
    /// The fragment header's identification, if there was one.
    pub frag_ident: Option<u32>,
    /// Extension headers walked.
    pub extensions: u8,
}

/// True for the next-header values that are IPv6 extension headers with the
/// generic (next header, length) layout, plus Fragment and AH.
fn is_extension(p: IpProtocol) -> bool {
    matches!(
        p,
        IpProtocol::HopByHop
            | IpProtocol::Ipv6Route
            | IpProtocol::Ipv6Frag
            | IpProtocol::Ipv6Opts
            | IpProtocol::Ah
            | IpProtocol::Mobility
            | IpProtocol::Hip
            | IpProtocol::Shim6
    )
}

/// Walks the extension headers of an IPv6 payload (the bytes after the
/// fixed header) starting with `first`, to the upper-layer header.
///
/// A later fragment (non-zero offset) stops the walk at the fragment
/// header's next header without following it, since its upper-layer header
/// is in the first fragment. Never panics; a chain that runs past the
/// payload is [`Error::Truncated`], one longer than [`MAX_EXTENSIONS`] is
/// [`Error::Malformed`].
pub fn walk_extensions(first: IpProtocol, payload: &[u8]) -> Result<UpperLayer> {
    let mut up = UpperLayer { protocol: first, offset: 0, fragment: Fragment::No, frag_ident: None, extensions: 0 };
    while is_extension(up.protocol) {
        if usize::from(up.extensions) >= MAX_EXTENSIONS {
            return Err(Error::Malformed(crate::error::Malformed::TooManyIpv6Extensions));
        }
        let at = up.offset;
        if payload.len() < at + 8 {
            return Err(Error::Truncated);
        }
        let next = IpProtocol::from(payload[at]);
        let len = match up.protocol {
            IpProtocol::Ipv6Frag => {
                let off_flags = u16_at(payload, at + 2);
                let offset = off_flags & 0xfff8;
                let more = off_flags & 1 != 0;
                up.frag_ident = Some(u32_at(payload, at + 4));
                up.fragment = if offset != 0 {
                    Fragment::Later
                } else if more {
                    Fragment::First
                } else {
                    Fragment::No
                };
                8
            }
            // AH's length is in 4-octet units, minus 2.
            IpProtocol::Ah => (usize::from(payload[at + 1]) + 2) * 4,
            _ => (usize::from(payload[at + 1]) + 1) * 8,
        };
        if payload.len() < at + len {
            return Err(Error::Truncated);
        }
        up.extensions += 1;
        up.offset = at + len;
        up.protocol = next;
        if up.fragment == Fragment::Later {
            break;
        }
    }
    Ok(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_hop_by_hop_then_fragment_to_udp() {
        let mut p = vec![0u8; 8 + 8 + 8];
        p[0] = 44; // hop-by-hop -> fragment
        p[1] = 0;
        p[8] = 17; // fragment -> UDP
        p[10..12].copy_from_slice(&1u16.to_be_bytes()); // offset 0, M=1
        p[12..16].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        let up = walk_extensions(IpProtocol::HopByHop, &p).unwrap();
        assert_eq!(up.protocol, IpProtocol::Udp);
        assert_eq!(up.offset, 16);
        assert_eq!(up.fragment, Fragment::First);
        assert_eq!(up.frag_ident, Some(0xdead_beef));
        assert_eq!(up.extensions, 2);
    }

    #[test]
    fn later_fragment_stops_at_the_fragment_header() {
        let mut p = vec![0u8; 16];
        p[0] = 6;
        p[2..4].copy_from_slice(&(185u16 << 3).to_be_bytes());
        let up = walk_extensions(IpProtocol::Ipv6Frag, &p).unwrap();
        assert_eq!(up.fragment, Fragment::Later);
        assert_eq!(up.protocol, IpProtocol::Tcp);
        assert_eq!(up.offset, 8);
    }

    #[test]
    fn endless_or_truncated_chains_are_errors() {
        let p = vec![0u8; 200]; // hop-by-hop pointing at hop-by-hop forever
        assert!(matches!(walk_extensions(IpProtocol::HopByHop, &p), Err(Error::Malformed(_))));
        let mut q = vec![0u8; 8];
        q[1] = 3; // claims 32 bytes
        assert_eq!(walk_extensions(IpProtocol::Ipv6Opts, &q), Err(Error::Truncated));
    }
}
