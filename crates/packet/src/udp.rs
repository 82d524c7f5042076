//! UDP (RFC 768) with checksums over the IPv4 or IPv6 pseudo-header.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum::{self, Checksum};
use crate::field::{put_u16, u16_at};
use crate::ip::IpProtocol;
use crate::{Error, Result};

/// The UDP header's length.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
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
    /// Fails unless the buffer holds the header and the length it declares,
    /// and that length covers at least the header.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed(crate::error::Malformed::UdpLengthShort));
        }
        if b.len() < len {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 0)
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 2)
    }
    /// Length (header and payload).
    #[inline]
    pub fn len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 4)
    }
    /// True when the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    /// Checksum as on the wire (0: none, over IPv4).
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 6)
    }
    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
    fn sum(&self, pseudo: Checksum) -> u16 {
        let mut c = pseudo;
        c.add_bytes(&self.buffer.as_ref()[..usize::from(self.len())]).sum()
    }
    /// True when the checksum is right or absent (zero), over IPv4.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0
            || self.sum(checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, u32::from(self.len()))) == 0xffff
    }
    /// True when the checksum is right, over IPv6 (where it is mandatory).
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        self.checksum() != 0
            && self.sum(checksum::pseudo_header_v6(src, dst, IpProtocol::Udp, u32::from(self.len()))) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port (the checksum is the caller's: see
    /// [`checksum::update_u16`]).
    pub fn set_src_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), 0, v);
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), 2, v);
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), 6, v);
    }
    fn fill(&mut self, pseudo: Checksum) {
        self.set_checksum(0);
        let c = !self.sum(pseudo);
        // A computed zero is sent as all ones: zero means "no checksum".
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
    /// Computes the checksum with the IPv4 pseudo-header.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = u32::from(self.len());
        self.fill(checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, len));
    }
    /// Computes the checksum with the IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let len = u32::from(self.len());
        self.fill(checksum::pseudo_header_v6(src, dst, IpProtocol::Udp, len));
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A UDP header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Bytes of payload after the header.
    pub payload_len: u16,
}

impl UdpRepr {
    /// Reads the header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<UdpRepr> {
        p.check_len()?;
        Ok(UdpRepr { src_port: p.src_port(), dst_port: p.dst_port(), payload_len: p.len() - HEADER_LEN as u16 })
    }
    /// 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }
    /// Writes the header with a zero checksum (over IPv4: "no checksum").
    /// Write the payload, then call a `fill_checksum_*` if one is wanted.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if self.payload_len > u16::MAX - HEADER_LEN as u16 {
            return Err(Error::Malformed(crate::error::Malformed::UdpTooLong));
        }
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        put_u16(buf, 0, self.src_port);
        put_u16(buf, 2, self.dst_port);
        put_u16(buf, 4, self.payload_len + HEADER_LEN as u16);
        put_u16(buf, 6, 0);
        Ok(())
    }
}
