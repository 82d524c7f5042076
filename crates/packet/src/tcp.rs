//! TCP (RFC 9293): ports, sequence numbers, flags, data offset and options.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum::{self, Checksum};
use crate::field::{put_u16, put_u32, u16_at, u32_at};
use crate::ip::IpProtocol;
use crate::{Error, Result};

/// The header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// The longest options field.
pub const MAX_OPTIONS_LEN: usize = 40;

/// TCP flags (the low 9 bits of the 16-bit word at offset 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// No more data.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronise sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgement field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer is significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// ECN nonce (historic, RFC 3540).
    pub const NS: TcpFlags = TcpFlags(0x100);

    /// True when every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// A TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list.
    EndOfList,
    /// No operation (padding).
    Nop,
    /// Maximum segment size.
    Mss(u16),
    /// Window scale shift.
    WindowScale(u8),
    /// SACK permitted.
    SackPermitted,
    /// SACK blocks (raw: pairs of 32-bit edges).
    Sack(&'a [u8]),
    /// Timestamps.
    Timestamps {
        /// Sender's timestamp.
        tsval: u32,
        /// Echoed timestamp.
        tsecr: u32,
    },
    /// Any other option: kind and data.
    Unknown {
        /// Option kind.
        kind: u8,
        /// The bytes after kind and length.
        data: &'a [u8],
    },
}

/// Iterates over the options field. A malformed option yields one error
/// and stops.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Options from an options field.
    pub fn new(bytes: &'a [u8]) -> TcpOptions<'a> {
        TcpOptions { rest: bytes }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, _) = self.rest.split_first()?;
        match kind {
            0 => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            1 => {
                self.rest = &self.rest[1..];
                return Some(Ok(TcpOption::Nop));
            }
            _ => {}
        }
        let len = match self.rest.get(1) {
            Some(&l) if l >= 2 && usize::from(l) <= self.rest.len() => usize::from(l),
            _ => {
                self.rest = &[];
                return Some(Err(Error::Malformed(crate::error::Malformed::TcpOptionOverrun)));
            }
        };
        let data = &self.rest[2..len];
        self.rest = &self.rest[len..];
        let opt = match (kind, data.len()) {
            (2, 2) => TcpOption::Mss(u16_at(data, 0)),
            (3, 1) => TcpOption::WindowScale(data[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n % 8 == 0 => TcpOption::Sack(data),
            (8, 8) => TcpOption::Timestamps { tsval: u32_at(data, 0), tsecr: u32_at(data, 4) },
            _ => TcpOption::Unknown { kind, data },
        };
        Some(Ok(opt))
    }
}

/// A view of a TCP segment.
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
    /// Fails unless the buffer holds the header its data offset declares
    /// (at least 20 bytes).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed(crate::error::Malformed::TcpDataOffsetShort));
        }
        if b.len() < hl {
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
    /// Sequence number.
    #[inline]
    pub fn seq(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 4)
    }
    /// Acknowledgement number.
    #[inline]
    pub fn ack(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 8)
    }
    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }
    /// The three reserved bits between data offset and flags.
    #[inline]
    pub fn reserved(&self) -> u8 {
        (self.buffer.as_ref()[12] >> 1) & 7
    }
    /// Flags.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(u16_at(self.buffer.as_ref(), 12) & 0x01ff)
    }
    /// Window.
    #[inline]
    pub fn window(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 14)
    }
    /// Checksum as on the wire.
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 16)
    }
    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 18)
    }
    /// The options field.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    /// The payload (to the end of the buffer: size the buffer by the IP
    /// length first).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    fn sum(&self, pseudo: Checksum) -> u16 {
        let mut c = pseudo;
        c.add_bytes(self.buffer.as_ref()).sum()
    }
    /// True when the checksum with the IPv4 pseudo-header is right.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let len = self.buffer.as_ref().len() as u32;
        self.sum(checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp, len)) == 0xffff
    }
    /// True when the checksum with the IPv6 pseudo-header is right.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let len = self.buffer.as_ref().len() as u32;
        self.sum(checksum::pseudo_header_v6(src, dst, IpProtocol::Tcp, len)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port (checksum is the caller's).
    pub fn set_src_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), 0, v);
    }
    /// Sets the destination port (checksum is the caller's).
    pub fn set_dst_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), 2, v);
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), 16, v);
    }
    /// Computes the checksum over the whole buffer with the IPv4 pseudo-header.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.buffer.as_ref().len() as u32;
        let c = !self.sum(checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp, len));
        self.set_checksum(c);
    }
    /// Computes the checksum over the whole buffer with the IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let len = self.buffer.as_ref().len() as u32;
        let c = !self.sum(checksum::pseudo_header_v6(src, dst, IpProtocol::Tcp, len));
        self.set_checksum(c);
    }
}

/// A TCP header as a value (payload and checksum excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options, `options[..options_len]`.
    pub options: [u8; MAX_OPTIONS_LEN],
    /// Options length (0..=40, a multiple of 4).
    pub options_len: u8,
}

impl TcpRepr {
    /// The options that are present.
    pub fn options(&self) -> &[u8] {
        &self.options[..usize::from(self.options_len).min(MAX_OPTIONS_LEN)]
    }
    /// Reads the header. Reserved bits must be zero.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<TcpRepr> {
        p.check_len()?;
        if p.reserved() != 0 {
            return Err(Error::Malformed(crate::error::Malformed::TcpReservedBits));
        }
        let o = p.options();
        let mut options = [0u8; MAX_OPTIONS_LEN];
        options[..o.len()].copy_from_slice(o);
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            urgent: p.urgent(),
            options,
            options_len: o.len() as u8,
        })
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options().len()
    }
    /// Writes the header with a zero checksum. Write the payload, then call
    /// a `fill_checksum_*` over header and payload.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if !self.options_len.is_multiple_of(4) || usize::from(self.options_len) > MAX_OPTIONS_LEN {
            return Err(Error::Malformed(crate::error::Malformed::TcpOptionsLength));
        }
        if self.flags.0 > 0x01ff {
            return Err(Error::Malformed(crate::error::Malformed::TcpFlagsRange));
        }
        let hl = self.header_len();
        if buf.len() < hl {
            return Err(Error::Truncated);
        }
        put_u16(buf, 0, self.src_port);
        put_u16(buf, 2, self.dst_port);
        put_u32(buf, 4, self.seq);
        put_u32(buf, 8, self.ack);
        put_u16(buf, 12, ((hl as u16 / 4) << 12) | self.flags.0);
        put_u16(buf, 14, self.window);
        put_u16(buf, 16, 0);
        put_u16(buf, 18, self.urgent);
        buf[MIN_HEADER_LEN..hl].copy_from_slice(self.options());
        Ok(())
    }
}
