//! ICMP for IPv4 (RFC 792): type, code, checksum and the 4-byte
//! rest-of-header (echo identifier and sequence, next-hop MTU, gateway).

use crate::checksum;
use crate::field::{put_u16, put_u32, u16_at, u32_at};
use crate::macros::enum_with_unknown;
use crate::{Error, Result};

/// Type, code, checksum and rest-of-header.
pub const HEADER_LEN: usize = 8;

enum_with_unknown! {
    /// The ICMPv4 message type.
    pub enum Icmpv4Type(u8) {
        /// Echo reply.
        EchoReply = 0,
        /// Destination unreachable.
        DstUnreachable = 3,
        /// Redirect.
        Redirect = 5,
        /// Echo request.
        EchoRequest = 8,
        /// Router advertisement.
        RouterAdvert = 9,
        /// Router solicitation.
        RouterSolicit = 10,
        /// Time exceeded.
        TimeExceeded = 11,
        /// Parameter problem.
        ParamProblem = 12,
        /// Timestamp request.
        Timestamp = 13,
        /// Timestamp reply.
        TimestampReply = 14,
    }
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }
    /// Wraps a buffer of at least 8 bytes.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Fails unless the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Error::Truncated) } else { Ok(()) }
    }
    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv4Type {
        Icmpv4Type::from(self.buffer.as_ref()[0])
    }
    /// Code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Checksum as on the wire.
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 2)
    }
    /// The rest-of-header word.
    #[inline]
    pub fn rest(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 4)
    }
    /// Echo identifier (upper half of rest-of-header).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 4)
    }
    /// Echo sequence number.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 6)
    }
    /// The data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True when the checksum over the whole buffer is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes the checksum over the whole buffer (header and data).
    pub fn fill_checksum(&mut self) {
        let b = self.buffer.as_mut();
        put_u16(b, 2, 0);
        let c = checksum::checksum(b);
        put_u16(b, 2, c);
    }
    /// The data after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// An ICMPv4 header as a value. The data after it is the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv4Repr {
    /// Message type.
    pub msg_type: Icmpv4Type,
    /// Code.
    pub code: u8,
    /// Rest-of-header (for echo: identifier << 16 | sequence).
    pub rest: u32,
}

impl Icmpv4Repr {
    /// An echo request.
    pub fn echo_request(ident: u16, seq: u16) -> Icmpv4Repr {
        Icmpv4Repr { msg_type: Icmpv4Type::EchoRequest, code: 0, rest: (u32::from(ident) << 16) | u32::from(seq) }
    }
    /// Reads the header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Icmpv4Repr> {
        p.check_len()?;
        Ok(Icmpv4Repr { msg_type: p.msg_type(), code: p.code(), rest: p.rest() })
    }
    /// 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }
    /// Writes the header with a zero checksum; write the data, then call
    /// [`Packet::fill_checksum`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        buf[0] = self.msg_type.into();
        buf[1] = self.code;
        put_u16(buf, 2, 0);
        put_u32(buf, 4, self.rest);
        Ok(())
    }
}
