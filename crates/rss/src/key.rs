//! RSS keys: 40- and 52-byte Toeplitz secrets, kept as bytes in wire order.

use std::fmt;

use crate::error::KeyError;

/// The largest key this crate handles (Intel X710/E810 use 52 bytes).
pub const MAX_KEY_LEN: usize = 52;

/// A Toeplitz RSS key of 40 or 52 bytes, in wire order (byte 0 is the
/// left-most byte of the secret, as `ethtool -x` prints it).
///
/// Keys written as arrays of `u32` flip byte order between projects (DPDK's
/// mlx5 default key is the mlx4 key with every word byte-swapped); this type
/// only ever holds the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RssKey {
    bytes: [u8; MAX_KEY_LEN],
    len: u8,
}

impl RssKey {
    /// The key from Microsoft's "Verifying the RSS Hash Calculation" (also the
    /// 82599 datasheet's verification suite and DPDK's Intel default).
    pub const MICROSOFT: RssKey = RssKey::from_array40([
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca,
        0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b,
        0xbe, 0xac, 0x01, 0xfa,
    ]);

    /// f-stack's default 40-byte key (the Mellanox Linux driver key, bytes
    /// `d1 81 c6 2c ...`). Its 7 low port bits alone cannot steer IPv4 replies,
    /// which is why [`crate::PortSolver`] solves over all 16 port bits.
    pub const FSTACK: RssKey = RssKey::from_array40([
        0xd1, 0x81, 0xc6, 0x2c, 0xf7, 0xf4, 0xdb, 0x5b, 0x19, 0x83, 0xa2, 0xfc, 0x94, 0x3e, 0x1a, 0xdb, 0xd9, 0x38,
        0x9e, 0x6b, 0xd1, 0x03, 0x9c, 0x2c, 0xa7, 0x44, 0x99, 0xad, 0x59, 0x3d, 0x56, 0xd9, 0xf3, 0x25, 0x3c, 0x06,
        0x2a, 0xdc, 0x1f, 0xfc,
    ]);

    /// The 40-byte symmetric key `6d5a` repeated (Woo & Park 2012).
    ///
    /// **Weakness:** with any key whose bit pattern repeats every 16 bits,
    /// the hash depends only on the XOR of all 16-bit words of the input, and
    /// its two 16-bit halves are equal. There are at most 2^16 distinct hash
    /// values, and colliding flows are trivial to construct (swap any two
    /// 16-bit words, or XOR the same value into two of them), which makes
    /// queue-flooding easy. Prefer RSS-aware source ports
    /// ([`crate::PortSolver`]) when the local side picks its ports.
    pub const SYMMETRIC: RssKey = RssKey::symmetric(0x6d5a, 40);

    const fn from_array40(key: [u8; 40]) -> RssKey {
        let mut bytes = [0u8; MAX_KEY_LEN];
        let mut i = 0;
        while i < 40 {
            bytes[i] = key[i];
            i += 1;
        }
        RssKey { bytes, len: 40 }
    }

    /// A symmetric key: the 16-bit `pattern` repeated to `len` bytes
    /// (`len` is clamped to 40 or 52: anything other than 52 gives 40).
    /// See [`RssKey::SYMMETRIC`] for the weakness of such keys.
    pub const fn symmetric(pattern: u16, len: usize) -> RssKey {
        let len = if len == 52 { 52 } else { 40 };
        let mut bytes = [0u8; MAX_KEY_LEN];
        let pair = pattern.to_be_bytes();
        let mut i = 0;
        while i < len {
            bytes[i] = pair[i % 2];
            i += 1;
        }
        RssKey { bytes, len: len as u8 }
    }

    /// A key from its bytes; it must be 40 or 52 bytes long.
    pub fn new(bytes: &[u8]) -> Result<RssKey, KeyError> {
        if bytes.len() != 40 && bytes.len() != 52 {
            return Err(KeyError::Length(bytes.len()));
        }
        let mut key = RssKey { bytes: [0; MAX_KEY_LEN], len: bytes.len() as u8 };
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(key)
    }

    /// Parses a key written in hex, with or without `:` separators (both
    /// `6d5a56da...` and ethtool's `6d:5a:56:da:...` work).
    pub fn from_hex(text: &str) -> Result<RssKey, KeyError> {
        let digits: String = text
            .trim()
            .trim_start_matches("0x")
            .chars()
            .filter(|c| *c != ':' && *c != '-' && !c.is_whitespace())
            .collect();
        let bytes = hex::decode(&digits).map_err(|err| KeyError::Hex(err.to_string()))?;
        RssKey::new(&bytes)
    }

    /// The key bytes (40 or 52 of them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The key length in bytes: 40 or 52.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a key has 40 or 52 bytes. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key as lowercase hex with `:` between bytes (ethtool's format).
    pub fn to_colon_hex(&self) -> String {
        let mut out = String::with_capacity(self.len() * 3);
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// True when the key repeats with a period of 16 bits, which makes the
    /// Toeplitz hash symmetric (and weak, see [`RssKey::SYMMETRIC`]).
    pub fn is_symmetric(&self) -> bool {
        let b = self.as_bytes();
        b.chunks_exact(2).all(|pair| pair == &b[..2])
    }

    /// The 32-bit key window starting at bit `bit` (bit 0 is the MSB of byte 0).
    /// Key bits past the end of the key read as zero.
    pub(crate) fn window(&self, bit: usize) -> u32 {
        let byte = bit / 8;
        let shift = bit % 8;
        let mut w: u64 = 0;
        for i in 0..5 {
            w = (w << 8) | u64::from(self.bytes.get(byte + i).copied().unwrap_or(0));
        }
        // Only the low 5 bytes are used: MAX_KEY_LEN bytes are stored, the rest zero.
        ((w << shift) >> 8) as u32
    }
}

impl Default for RssKey {
    fn default() -> Self {
        RssKey::MICROSOFT
    }
}

impl fmt::Debug for RssKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RssKey({})", self.to_colon_hex())
    }
}

impl fmt::Display for RssKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_colon_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms_parse_to_the_same_key() {
        let plain =
            RssKey::from_hex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")
                .unwrap();
        let colons = RssKey::from_hex(&RssKey::MICROSOFT.to_colon_hex()).unwrap();
        assert_eq!(plain, RssKey::MICROSOFT);
        assert_eq!(colons, RssKey::MICROSOFT);
    }

    #[test]
    fn wrong_lengths_are_rejected_with_the_length() {
        let err = RssKey::new(&[0u8; 41]).unwrap_err();
        assert_eq!(err, KeyError::Length(41));
        assert!(err.to_string().contains("41"));
        assert!(RssKey::from_hex("zz").is_err());
    }

    #[test]
    fn symmetric_keys_are_detected() {
        assert!(RssKey::SYMMETRIC.is_symmetric());
        assert!(RssKey::symmetric(0x1234, 52).is_symmetric());
        assert_eq!(RssKey::symmetric(0x1234, 52).len(), 52);
        assert!(!RssKey::MICROSOFT.is_symmetric());
    }

    #[test]
    fn window_matches_shifted_bytes() {
        let k = RssKey::MICROSOFT;
        assert_eq!(k.window(0), 0x6d5a56da);
        assert_eq!(k.window(8), 0x5a56da25);
        assert_eq!(k.window(4), 0xd5a56da2);
        // past the end: zeros shift in
        assert_eq!(k.window(39 * 8), 0xfa00_0000);
        assert_eq!(k.window(60 * 8), 0);
    }
}
