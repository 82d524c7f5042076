//! VXLAN (RFC 7348): an 8-byte header carrying a 24-bit network identifier
//! in front of an Ethernet frame, over UDP port 4789.

use crate::field::{put_u32, u32_at};
use crate::{Error, Result};

/// The VXLAN header's length.
pub const HEADER_LEN: usize = 8;
/// The IANA UDP port.
pub const UDP_PORT: u16 = 4789;
const FLAG_I: u8 = 0x08;

/// A view of a VXLAN header and the frame it carries.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }
    /// Wraps a buffer that holds the header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Fails unless the buffer holds 8 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Error::Truncated) } else { Ok(()) }
    }
    /// The flags byte (0x08: the VNI is valid).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// The network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 4) >> 8
    }
    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// A VXLAN header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanRepr {
    /// The 24-bit network identifier.
    pub vni: u32,
}

impl VxlanRepr {
    /// Reads the header: the I flag must be set (RFC 7348 §5); other flag
    /// and reserved bits are ignored on receipt, as the RFC says.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<VxlanRepr> {
        p.check_len()?;
        if p.flags() & FLAG_I == 0 {
            return Err(Error::Malformed(crate::error::Malformed::VxlanIFlagClear));
        }
        Ok(VxlanRepr { vni: p.vni() })
    }
    /// 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }
    /// Writes the header (flags 0x08, reserved zero).
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if self.vni > 0x00ff_ffff {
            return Err(Error::Malformed(crate::error::Malformed::VxlanVniRange));
        }
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        put_u32(buf, 0, u32::from(FLAG_I) << 24);
        put_u32(buf, 4, self.vni << 8);
        Ok(())
    }
}
