//! Internet checksums (RFC 1071): the IPv4 header sum, L4 sums with the IPv4
//! and IPv6 pseudo-headers, and incremental update of a rewritten field
//! (RFC 1624), which is what a switch uses when it changes an address or a
//! port and must not re-read the whole packet.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::ip::IpProtocol;

/// A running one's-complement sum. Feed it data, then [`finish`] for the
/// value that goes on the wire.
///
/// Every [`add_bytes`] call but the last must pass an even number of bytes
/// (a checksum is over 16-bit words; an odd chunk in the middle would shift
/// the words after it).
///
/// [`finish`]: Checksum::finish
/// [`add_bytes`]: Checksum::add_bytes
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checksum(u64);

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Checksum {
        Checksum(0)
    }

    /// Adds bytes as big-endian 16-bit words; an odd final byte is padded
    /// with zero.
    #[inline]
    pub fn add_bytes(&mut self, data: &[u8]) -> &mut Checksum {
        let mut acc = self.0;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            // Two 32-bit halves: each fits, and 2^32 of them cannot overflow.
            acc += (w >> 32) + (w & 0xffff_ffff);
        }
        let rest = chunks.remainder();
        let mut words = rest.chunks_exact(2);
        for w in &mut words {
            acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            acc += u64::from(*last) << 8;
        }
        self.0 = acc;
        self
    }

    /// Adds one 16-bit word.
    #[inline]
    pub fn add_u16(&mut self, v: u16) -> &mut Checksum {
        self.0 += u64::from(v);
        self
    }

    /// Adds one 32-bit value as two words.
    #[inline]
    pub fn add_u32(&mut self, v: u32) -> &mut Checksum {
        self.0 += u64::from(v >> 16) + u64::from(v & 0xffff);
        self
    }

    /// The folded 16-bit one's-complement sum (not yet complemented).
    #[inline]
    pub fn sum(self) -> u16 {
        fold(self.0)
    }

    /// The checksum to put in a header: the complement of the sum.
    #[inline]
    pub fn finish(self) -> u16 {
        !self.sum()
    }
}

#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of a block of data (an IPv4 header with its checksum field
/// zeroed, an ICMPv4 message, …).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    Checksum::new().add_bytes(data).finish()
}

/// True when `data`, checksum field included, sums to all ones.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    Checksum::new().add_bytes(data).sum() == 0xffff
}

/// The IPv4 pseudo-header sum for an L4 segment of `len` bytes.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, len: u32) -> Checksum {
    let mut c = Checksum::new();
    c.add_u32(src.to_bits()).add_u32(dst.to_bits()).add_u16(u16::from(u8::from(protocol))).add_u32(len);
    c
}

/// The IPv6 pseudo-header sum (RFC 8200 §8.1) for an upper-layer packet of
/// `len` bytes.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: IpProtocol, len: u32) -> Checksum {
    let mut c = Checksum::new();
    c.add_bytes(&src.octets()).add_bytes(&dst.octets()).add_u32(len).add_u16(u16::from(u8::from(next_header)));
    c
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit word covered by `csum`
/// changed from `old` to `new`. `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!csum) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// [`update_u16`] for a 32-bit field (an IPv4 address, a TCP sequence number).
#[inline]
pub fn update_u32(csum: u16, old: u32, new: u32) -> u16 {
    let acc = u64::from(!csum)
        + u64::from(!(old >> 16) as u16)
        + u64::from(!(old as u16))
        + u64::from(new >> 16)
        + u64::from(new & 0xffff);
    !fold(acc)
}

/// [`update_u16`] for a field of any even length (an IPv6 address, a MAC
/// inside an ND option). `old` and `new` must have the same even length.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    debug_assert!(old.len().is_multiple_of(2));
    let mut acc = u64::from(!csum);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        acc += u64::from(!u16::from_be_bytes([o[0], o[1]])) + u64::from(u16::from_be_bytes([n[0], n[1]]));
    }
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Checksum::new().add_bytes(&data).sum(), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// A real IPv4 header (from Wikipedia's worked example).
    #[test]
    fn ipv4_header_example() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(&h));
    }

    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
            s += u32::from(w);
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    proptest! {
        #[test]
        fn fast_sum_matches_word_by_word(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(checksum(&data), naive(&data));
        }

        #[test]
        fn split_sums_combine(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..150) {
            let cut = (cut * 2).min(data.len() & !1);
            let mut c = Checksum::new();
            c.add_bytes(&data[..cut]).add_bytes(&data[cut..]);
            prop_assert_eq!(c.finish(), checksum(&data));
        }

        /// Incremental update equals recomputation, for any data and any
        /// rewritten 16- or 32-bit field (RFC 1624's point: no -0 result).
        #[test]
        fn incremental_update_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 8..128),
            at in 0usize..60,
            new16 in any::<u16>(),
            new32 in any::<u32>(),
        ) {
            let at = (at * 2) % ((data.len() - 4) & !1);
            let before = checksum(&data);
            let old16 = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new16.to_be_bytes());
            prop_assert_eq!(update_u16(before, old16, new16), checksum(&data));

            let before = checksum(&data);
            let old32 = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            let old_bytes = data[at..at + 4].to_vec();
            data[at..at + 4].copy_from_slice(&new32.to_be_bytes());
            prop_assert_eq!(update_u32(before, old32, new32), checksum(&data));
            prop_assert_eq!(update_bytes(before, &old_bytes, &new32.to_be_bytes()), checksum(&data));
        }
    }
}
