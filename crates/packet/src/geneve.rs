//! Geneve (RFC 8926): an 8-byte header with a 24-bit VNI, a protocol type,
//! and up to 252 bytes of TLV options, over UDP port 6081.

use crate::ethernet::EtherType;
use crate::field::{put_u16, put_u32, u16_at, u32_at};
use crate::{Error, Result};

/// The fixed header's length.
pub const MIN_HEADER_LEN: usize = 8;
/// The longest options field (6-bit length in 4-byte words).
pub const MAX_OPTIONS_LEN: usize = 252;
/// The IANA UDP port.
pub const UDP_PORT: u16 = 6081;

/// One Geneve option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    /// Option class.
    pub class: u16,
    /// Type (the high bit is "critical").
    pub kind: u8,
    /// The option data (a multiple of 4 bytes).
    pub data: &'a [u8],
}

/// Iterates over the options field; a malformed option yields one error and
/// stops.
#[derive(Debug, Clone)]
pub struct GeneveOptions<'a> {
    rest: &'a [u8],
}

impl<'a> GeneveOptions<'a> {
    /// Options from an options field.
    pub fn new(bytes: &'a [u8]) -> GeneveOptions<'a> {
        GeneveOptions { rest: bytes }
    }
}

impl<'a> Iterator for GeneveOptions<'a> {
    type Item = Result<GeneveOption<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < 4 {
            self.rest = &[];
            return Some(Err(Error::Truncated));
        }
        let len = 4 + usize::from(self.rest[3] & 0x1f) * 4;
        if self.rest.len() < len {
            self.rest = &[];
            return Some(Err(Error::Truncated));
        }
        let opt = GeneveOption { class: u16_at(self.rest, 0), kind: self.rest[2], data: &self.rest[4..len] };
        self.rest = &self.rest[len..];
        Some(Ok(opt))
    }
}

/// A view of a Geneve header.
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
    /// Fails unless the buffer holds the header with its options.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN || b.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// Version (must be 0).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 6
    }
    /// Options length in bytes.
    #[inline]
    pub fn options_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x3f) * 4
    }
    /// Header length with options.
    #[inline]
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options_len()
    }
    /// O: an OAM (control) packet.
    #[inline]
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[1] & 0x80 != 0
    }
    /// C: critical options present.
    #[inline]
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[1] & 0x40 != 0
    }
    /// Protocol type of the payload.
    #[inline]
    pub fn protocol(&self) -> EtherType {
        EtherType::from(u16_at(self.buffer.as_ref(), 2))
    }
    /// The network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 4) >> 8
    }
    /// The options bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    /// The payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// A Geneve header as a value, options included (as raw TLV bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeneveRepr {
    /// OAM packet.
    pub oam: bool,
    /// Critical options present.
    pub critical: bool,
    /// Payload protocol (`TransparentEthernet` for an Ethernet frame).
    pub protocol: EtherType,
    /// The 24-bit network identifier.
    pub vni: u32,
    /// Options, `options[..options_len]`.
    pub options: [u8; MAX_OPTIONS_LEN],
    /// Options length (a multiple of 4, at most 252).
    pub options_len: u8,
}

impl GeneveRepr {
    /// A header for an Ethernet payload without options.
    pub fn new(vni: u32) -> GeneveRepr {
        GeneveRepr {
            oam: false,
            critical: false,
            protocol: EtherType::TransparentEthernet,
            vni,
            options: [0; MAX_OPTIONS_LEN],
            options_len: 0,
        }
    }
    /// The options present.
    pub fn options(&self) -> &[u8] {
        &self.options[..usize::from(self.options_len).min(MAX_OPTIONS_LEN)]
    }
    /// Reads a version-0 header; the options must be well-formed TLVs.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<GeneveRepr> {
        p.check_len()?;
        if p.version() != 0 {
            return Err(Error::Malformed(crate::error::Malformed::GeneveVersion));
        }
        for opt in GeneveOptions::new(p.options()) {
            opt?;
        }
        let o = p.options();
        let mut options = [0u8; MAX_OPTIONS_LEN];
        options[..o.len()].copy_from_slice(o);
        Ok(GeneveRepr {
            oam: p.oam(),
            critical: p.critical(),
            protocol: p.protocol(),
            vni: p.vni(),
            options,
            options_len: o.len() as u8,
        })
    }
    /// Header length with options.
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options().len()
    }
    /// Writes the header.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if self.vni > 0x00ff_ffff {
            return Err(Error::Malformed(crate::error::Malformed::GeneveVniRange));
        }
        if !self.options_len.is_multiple_of(4) || usize::from(self.options_len) > MAX_OPTIONS_LEN {
            return Err(Error::Malformed(crate::error::Malformed::GeneveOptionsLength));
        }
        let hl = self.header_len();
        if buf.len() < hl {
            return Err(Error::Truncated);
        }
        buf[0] = self.options_len / 4;
        buf[1] = (u8::from(self.oam) << 7) | (u8::from(self.critical) << 6);
        put_u16(buf, 2, self.protocol.into());
        put_u32(buf, 4, self.vni << 8);
        buf[MIN_HEADER_LEN..hl].copy_from_slice(self.options());
        Ok(())
    }
}
