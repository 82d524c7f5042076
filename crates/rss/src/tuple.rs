//! Hash inputs: IPv4 and IPv6 tuples laid out as the NIC hashes them.
//!
//! The Toeplitz input is `src IP ‖ dst IP ‖ src port ‖ dst port`, all in
//! network order (Microsoft "RSS hashing functions"). An address-only (L3)
//! hash is the same as the L4 hash with both ports zero, because zero input
//! bits contribute nothing; the types here use that to hold one layout for
//! both. The buffers are padded with zeros to a multiple of 16 bytes so the
//! SIMD hashes can load whole vectors without reading past the end.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Which tuple fields the NIC hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashFields {
    /// Source and destination address only (what fragments and non-TCP/UDP
    /// packets use, and what UDP uses when the NIC does not hash UDP ports).
    L3,
    /// Addresses and both L4 ports.
    L4,
}

/// The byte offset of the destination port in an IPv4 4-tuple hash input.
pub const V4_DPORT_OFFSET: usize = 10;
/// The byte offset of the destination port in an IPv6 4-tuple hash input.
pub const V6_DPORT_OFFSET: usize = 34;

/// An IPv4 hash input: 12 bytes used (8 for an L3-only hash), padded to 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, align(16))]
pub struct Ipv4Tuple {
    bytes: [u8; 16],
}

/// An IPv6 hash input: 36 bytes used (32 for an L3-only hash), padded to 48.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, align(16))]
pub struct Ipv6Tuple {
    bytes: [u8; 48],
}

impl Ipv4Tuple {
    /// Number of input bytes the NIC hashes for an IPv4 4-tuple.
    pub const LEN: usize = 12;

    /// A 4-tuple in packet order (source first).
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Ipv4Tuple {
        let mut bytes = [0u8; 16];
        bytes[0..4].copy_from_slice(&src.octets());
        bytes[4..8].copy_from_slice(&dst.octets());
        bytes[8..10].copy_from_slice(&sport.to_be_bytes());
        bytes[10..12].copy_from_slice(&dport.to_be_bytes());
        Ipv4Tuple { bytes }
    }

    /// An address-only (L3) input; hashes like a 4-tuple with zero ports.
    pub fn l3(src: Ipv4Addr, dst: Ipv4Addr) -> Ipv4Tuple {
        Ipv4Tuple::new(src, dst, 0, 0)
    }

    /// The input as the given hash type sees it: ports zeroed for
    /// [`HashFields::L3`].
    pub fn with_fields(mut self, fields: HashFields) -> Ipv4Tuple {
        if fields == HashFields::L3 {
            self.bytes[8..12].fill(0);
        }
        self
    }

    /// The tuple of the reverse direction (addresses and ports swapped).
    pub fn reversed(&self) -> Ipv4Tuple {
        Ipv4Tuple::new(self.dst(), self.src(), self.dport(), self.sport())
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3])
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7])
    }

    /// Source port.
    pub fn sport(&self) -> u16 {
        u16::from_be_bytes([self.bytes[8], self.bytes[9]])
    }

    /// Destination port.
    pub fn dport(&self) -> u16 {
        u16::from_be_bytes([self.bytes[10], self.bytes[11]])
    }

    /// The 12 hashed bytes.
    pub fn as_bytes(&self) -> &[u8; 12] {
        self.bytes.first_chunk::<12>().unwrap_or_else(|| unreachable!("16 >= 12"))
    }

    /// The 16-byte zero-padded buffer (for SIMD loads).
    pub(crate) fn padded(&self) -> &[u8; 16] {
        &self.bytes
    }
}

impl Ipv6Tuple {
    /// Number of input bytes the NIC hashes for an IPv6 4-tuple.
    pub const LEN: usize = 36;

    /// A 4-tuple in packet order (source first).
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Ipv6Tuple {
        let mut bytes = [0u8; 48];
        bytes[0..16].copy_from_slice(&src.octets());
        bytes[16..32].copy_from_slice(&dst.octets());
        bytes[32..34].copy_from_slice(&sport.to_be_bytes());
        bytes[34..36].copy_from_slice(&dport.to_be_bytes());
        Ipv6Tuple { bytes }
    }

    /// An address-only (L3) input; hashes like a 4-tuple with zero ports.
    pub fn l3(src: Ipv6Addr, dst: Ipv6Addr) -> Ipv6Tuple {
        Ipv6Tuple::new(src, dst, 0, 0)
    }

    /// The input as the given hash type sees it: ports zeroed for
    /// [`HashFields::L3`].
    pub fn with_fields(mut self, fields: HashFields) -> Ipv6Tuple {
        if fields == HashFields::L3 {
            self.bytes[32..36].fill(0);
        }
        self
    }

    /// The tuple of the reverse direction (addresses and ports swapped).
    pub fn reversed(&self) -> Ipv6Tuple {
        Ipv6Tuple::new(self.dst(), self.src(), self.dport(), self.sport())
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.bytes[0..16]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.bytes[16..32]);
        Ipv6Addr::from(a)
    }

    /// Source port.
    pub fn sport(&self) -> u16 {
        u16::from_be_bytes([self.bytes[32], self.bytes[33]])
    }

    /// Destination port.
    pub fn dport(&self) -> u16 {
        u16::from_be_bytes([self.bytes[34], self.bytes[35]])
    }

    /// The 36 hashed bytes.
    pub fn as_bytes(&self) -> &[u8; 36] {
        self.bytes.first_chunk::<36>().unwrap_or_else(|| unreachable!("48 >= 36"))
    }

    /// The 48-byte zero-padded buffer (for SIMD loads).
    pub(crate) fn padded(&self) -> &[u8; 48] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_layout_is_src_dst_sport_dport() {
        let t = Ipv4Tuple::new(Ipv4Addr::new(66, 9, 149, 187), Ipv4Addr::new(161, 142, 100, 80), 2794, 1766);
        assert_eq!(hex::encode(t.as_bytes()), "420995bba18e64500aea06e6", "Microsoft IPv4 vector #1 input");
        let r = t.reversed();
        assert_eq!(r.src(), t.dst());
        assert_eq!(r.sport(), t.dport());
        assert_eq!(r.reversed(), t);
        assert_eq!(t.with_fields(HashFields::L3).sport(), 0);
    }

    #[test]
    fn v6_layout_is_src_dst_sport_dport() {
        let t =
            Ipv6Tuple::new("3ffe:2501:200:1fff::7".parse().unwrap(), "3ffe:2501:200:3::1".parse().unwrap(), 2794, 1766);
        assert_eq!(
            hex::encode(t.as_bytes()),
            "3ffe250102001fff00000000000000073ffe25010200000300000000000000010aea06e6"
        );
        assert_eq!(t.reversed().reversed(), t);
        assert_eq!(t.with_fields(HashFields::L3).dport(), 0);
    }
}
