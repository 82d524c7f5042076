//! GRE (RFC 2784 with the key and sequence extensions of RFC 2890): the
//! flags word, the protocol type (0x6558 for gretap's Ethernet frames), and
//! the optional checksum, key and sequence number.

use crate::checksum;
use crate::ethernet::EtherType;
use crate::field::{put_u16, put_u32, u16_at, u32_at};
use crate::{Error, Result};

/// The header without optional fields.
pub const MIN_HEADER_LEN: usize = 4;
const FLAG_C: u16 = 0x8000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
/// Bits 1 (routing, RFC 1701) and 3-12 (reserved0) must be zero in RFC
/// 2784/2890 GRE.
const RESERVED0: u16 = 0x4000 | 0x0ff8;

/// A view of a GRE header.
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
    /// Fails unless the buffer holds the header with the optional fields
    /// its flags announce.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN || b.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    #[inline]
    fn flags(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 0)
    }
    /// Checksum present.
    #[inline]
    pub fn has_checksum(&self) -> bool {
        self.flags() & FLAG_C != 0
    }
    /// Key present.
    #[inline]
    pub fn has_key(&self) -> bool {
        self.flags() & FLAG_K != 0
    }
    /// Sequence number present.
    #[inline]
    pub fn has_seq(&self) -> bool {
        self.flags() & FLAG_S != 0
    }
    /// The version (must be 0).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.flags() & 7) as u8
    }
    /// The protocol type of the payload.
    #[inline]
    pub fn protocol(&self) -> EtherType {
        EtherType::from(u16_at(self.buffer.as_ref(), 2))
    }
    /// Header length with its optional fields.
    #[inline]
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN
            + 4 * (usize::from(self.has_checksum()) + usize::from(self.has_key()) + usize::from(self.has_seq()))
    }
    /// The checksum, if present.
    pub fn checksum(&self) -> Option<u16> {
        self.has_checksum().then(|| u16_at(self.buffer.as_ref(), 4))
    }
    /// The key, if present.
    pub fn key(&self) -> Option<u32> {
        let at = 4 + 4 * usize::from(self.has_checksum());
        self.has_key().then(|| u32_at(self.buffer.as_ref(), at))
    }
    /// The sequence number, if present.
    pub fn seq(&self) -> Option<u32> {
        let at = 4 + 4 * (usize::from(self.has_checksum()) + usize::from(self.has_key()));
        self.has_seq().then(|| u32_at(self.buffer.as_ref(), at))
    }
    /// The payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// True when there is no checksum, or it is right over the whole buffer
    /// (header and payload).
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || checksum::verify(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes the checksum over header and payload (if the C flag is set).
    pub fn fill_checksum(&mut self) {
        if self.has_checksum() {
            let b = self.buffer.as_mut();
            put_u16(b, 4, 0);
            let c = checksum::checksum(b);
            put_u16(b, 4, c);
        }
    }
}

/// A GRE header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GreRepr {
    /// Payload protocol (`TransparentEthernet` for gretap).
    pub protocol: EtherType,
    /// Whether a checksum is carried (its value is computed by
    /// [`Packet::fill_checksum`]).
    pub checksum: bool,
    /// The key, if carried.
    pub key: Option<u32>,
    /// The sequence number, if carried.
    pub seq: Option<u32>,
}

impl GreRepr {
    /// Reads a version-0 header without routing.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<GreRepr> {
        p.check_len()?;
        if p.version() != 0 {
            return Err(Error::Malformed(crate::error::Malformed::GreVersion));
        }
        if p.flags() & RESERVED0 != 0 {
            return Err(Error::Malformed(crate::error::Malformed::GreReservedBits));
        }
        Ok(GreRepr { protocol: p.protocol(), checksum: p.has_checksum(), key: p.key(), seq: p.seq() })
    }
    /// Header length with the optional fields.
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN
            + 4 * (usize::from(self.checksum) + usize::from(self.key.is_some()) + usize::from(self.seq.is_some()))
    }
    /// Writes the header (a checksum, if any, as zero: write the payload
    /// and call [`Packet::fill_checksum`]).
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let hl = self.header_len();
        if buf.len() < hl {
            return Err(Error::Truncated);
        }
        let flags = (if self.checksum { FLAG_C } else { 0 })
            | (if self.key.is_some() { FLAG_K } else { 0 })
            | (if self.seq.is_some() { FLAG_S } else { 0 });
        put_u16(buf, 0, flags);
        put_u16(buf, 2, self.protocol.into());
        let mut at = 4;
        if self.checksum {
            put_u32(buf, at, 0);
            at += 4;
        }
        if let Some(k) = self.key {
            put_u32(buf, at, k);
            at += 4;
        }
        if let Some(s) = self.seq {
            put_u32(buf, at, s);
        }
        Ok(())
    }
}
