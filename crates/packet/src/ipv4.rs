//! IPv4 (RFC 791): the header with its options and fragment fields.
//!
//! The view checks that the header length, the total length and the buffer
//! agree; after [`Packet::new_checked`] succeeds no accessor panics.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::field::{array, put_u16, u16_at};
use crate::ip::{Fragment, IpProtocol};
use crate::{Error, Result};

/// The length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// The longest options field (IHL 15 → 60-byte header).
pub const MAX_OPTIONS_LEN: usize = 40;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Fails unless the buffer holds the whole header and the total length
    /// it declares, and the version is 4. Bytes past the total length
    /// (Ethernet padding) are allowed and ignored by [`payload`](Self::payload).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4Version));
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4HeaderLengthShort));
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4TotalLengthShort));
        }
        if b.len() < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }
    /// The TOS byte: DSCP (upper 6 bits) and ECN (lower 2).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }
    /// Total length (header and payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::LENGTH)
    }
    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::IDENT)
    }
    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        u16_at(self.buffer.as_ref(), field::FLG_OFF) & 0x4000 != 0
    }
    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        u16_at(self.buffer.as_ref(), field::FLG_OFF) & 0x2000 != 0
    }
    /// The reserved (evil) bit.
    #[inline]
    pub fn reserved_flag(&self) -> bool {
        u16_at(self.buffer.as_ref(), field::FLG_OFF) & 0x8000 != 0
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (u16_at(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) << 3
    }
    /// Where this packet stands among fragments.
    #[inline]
    pub fn fragment(&self) -> Fragment {
        if self.frag_offset() != 0 {
            Fragment::Later
        } else if self.more_frags() {
            Fragment::First
        } else {
            Fragment::No
        }
    }
    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// The payload's protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }
    /// The header checksum as on the wire.
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::SRC))
    }
    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::DST))
    }
    /// The options bytes (between the fixed header and the payload).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    /// True when the header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..self.header_len()])
    }
    /// The payload, up to the total length (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the TTL, updating the checksum incrementally.
    pub fn set_ttl(&mut self, ttl: u8) {
        let b = self.buffer.as_mut();
        let old = u16_at(b, field::TTL);
        b[field::TTL] = ttl;
        let new = u16_at(b, field::TTL);
        let c = checksum::update_u16(u16_at(b, field::CHECKSUM), old, new);
        put_u16(b, field::CHECKSUM, c);
    }
    /// Sets the source address, updating the header checksum incrementally.
    /// (An L4 checksum covering it must be updated by the caller.)
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.set_addr(field::SRC, a);
    }
    /// Sets the destination address, updating the header checksum.
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.set_addr(field::DST, a);
    }
    fn set_addr(&mut self, at: usize, a: Ipv4Addr) {
        let b = self.buffer.as_mut();
        let old = crate::field::u32_at(b, at);
        crate::field::put_u32(b, at, a.to_bits());
        let c = checksum::update_u32(u16_at(b, field::CHECKSUM), old, a.to_bits());
        put_u16(b, field::CHECKSUM, c);
    }
    /// Recomputes the header checksum.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        put_u16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(&b[..hl]);
        put_u16(b, field::CHECKSUM, c);
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// An IPv4 header as a value.
///
/// The checksum is not part of it: `emit` computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Bytes of payload after the header.
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// Options, `options[..options_len]` (padded to a multiple of 4).
    pub options: [u8; MAX_OPTIONS_LEN],
    /// Length of the options (0..=40, a multiple of 4).
    pub options_len: u8,
}

impl Ipv4Repr {
    /// A plain header: no options, DF set, TTL 64.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload_len: u16) -> Ipv4Repr {
        Ipv4Repr {
            src,
            dst,
            protocol,
            payload_len,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            options: [0; MAX_OPTIONS_LEN],
            options_len: 0,
        }
    }

    /// The options that are present.
    pub fn options(&self) -> &[u8] {
        &self.options[..usize::from(self.options_len).min(MAX_OPTIONS_LEN)]
    }

    /// Reads a header. The checksum is not verified (a switch forwards what
    /// it is given; see [`Packet::verify_checksum`]); the reserved flag must
    /// be clear.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Ipv4Repr> {
        p.check_len()?;
        if p.reserved_flag() {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4ReservedFlag));
        }
        let opts = p.options();
        let mut options = [0u8; MAX_OPTIONS_LEN];
        options[..opts.len()].copy_from_slice(opts);
        Ok(Ipv4Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            payload_len: p.total_len() - p.header_len() as u16,
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            options,
            options_len: opts.len() as u8,
        })
    }

    /// Header length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options().len()
    }

    /// Header and payload length.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + usize::from(self.payload_len)
    }

    /// Writes the header (checksum included) into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let hl = self.header_len();
        if !self.options_len.is_multiple_of(4) || usize::from(self.options_len) > MAX_OPTIONS_LEN {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4OptionsLength));
        }
        if !self.frag_offset.is_multiple_of(8) {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4FragmentOffset));
        }
        let total = hl + usize::from(self.payload_len);
        if total > usize::from(u16::MAX) {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4TooLong));
        }
        if buf.len() < hl {
            return Err(Error::Truncated);
        }
        buf[field::VER_IHL] = 0x40 | (hl / 4) as u8;
        buf[field::TOS] = self.tos;
        put_u16(buf, field::LENGTH, total as u16);
        put_u16(buf, field::IDENT, self.ident);
        let flags = (u16::from(self.dont_frag) << 14) | (u16::from(self.more_frags) << 13);
        put_u16(buf, field::FLG_OFF, flags | (self.frag_offset >> 3));
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol.into();
        put_u16(buf, field::CHECKSUM, 0);
        buf[field::SRC..field::SRC + 4].copy_from_slice(&self.src.octets());
        buf[field::DST..field::DST + 4].copy_from_slice(&self.dst.octets());
        buf[MIN_HEADER_LEN..hl].copy_from_slice(self.options());
        let c = checksum::checksum(&buf[..hl]);
        put_u16(buf, field::CHECKSUM, c);
        Ok(())
    }

    /// The pseudo-header sum for this packet's L4 checksum.
    pub fn pseudo_header(&self) -> checksum::Checksum {
        checksum::pseudo_header_v4(self.src, self.dst, self.protocol, u32::from(self.payload_len))
    }
}
