//! Toeplitz by carry-less multiplication (PCLMULQDQ), after VPP's idea.
//!
//! Number the input bits `d_0, d_1, …` from the MSB of byte 0 and the key bits
//! `k_0, k_1, …` likewise; hash bit `r` (from the MSB) is `⊕_i d_i·k_{i+r}`, a
//! correlation. Reflect the input so that bit `i` of a 64-bit lane holds
//! `d_{64w+i}` (a per-byte bit reversal of the little-endian load) and take
//! the key bits `64w … 64w+127` as a big-endian 128-bit number `B = B1:B0`.
//! Then in the carry-less product `a·B`, bit `96+q` is the lane's contribution
//! to hash bit `q` (LSB numbering). Splitting the product:
//! `(a·B)[96..128] = (a·B0)[96..128] ⊕ (a·B1)[32..64]`, so each 64-bit lane
//! costs two multiplies (one when the lane holds only 32 input bits), and the
//! products of all lanes are XORed before a single extraction.
//! An IPv4 4-tuple takes 3 multiplies, an IPv6 4-tuple 9.
//!
//! All `unsafe` here is SIMD: the `#[target_feature]` functions run only after
//! [`is_supported`] said yes, which [`ClmulKey::new`] records.

use crate::key::{MAX_KEY_LEN, RssKey};
use crate::tuple::{Ipv4Tuple, Ipv6Tuple};

/// Number of 64-bit input lanes covered (8 × 8 = 64 bytes ≥ 52 key bytes).
const LANES: usize = 8;

/// Whether this CPU has what the carry-less-multiply hash needs.
pub(crate) fn is_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Per-key constants: for lane `w`, `[B0, B1]` = key bytes `8w+8..8w+16` and
/// `8w..8w+8` as big-endian u64s (zero past the key).
#[derive(Clone, Debug)]
#[repr(C, align(16))]
pub(crate) struct ClmulKey {
    lanes: [[u64; 2]; LANES],
    enabled: bool,
}

impl ClmulKey {
    pub(crate) fn new(key: &RssKey) -> ClmulKey {
        let byte = |i: usize| -> u8 { if i < MAX_KEY_LEN { key.as_bytes().get(i).copied().unwrap_or(0) } else { 0 } };
        let be64 = |start: usize| -> u64 { (0..8).fold(0u64, |v, i| (v << 8) | u64::from(byte(start + i))) };
        let lanes = std::array::from_fn(|w| [be64(8 * w + 8), be64(8 * w)]);
        ClmulKey { lanes, enabled: is_supported() }
    }

    /// `None` when the CPU lacks PCLMULQDQ/SSE4.1.
    #[inline]
    pub(crate) fn hash_v4(&self, tuple: &Ipv4Tuple) -> Option<u32> {
        if !self.enabled {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `enabled` is true only when `is_supported()` detected
            // pclmulqdq, ssse3 and sse4.1 on this CPU.
            Some(unsafe { x86::hash_v4(self, tuple) })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = tuple;
            None
        }
    }

    #[inline]
    pub(crate) fn hash_v6(&self, tuple: &Ipv6Tuple) -> Option<u32> {
        if !self.enabled {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: as in `hash_v4`: the features were detected.
            Some(unsafe { x86::hash_v6(self, tuple) })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = tuple;
            None
        }
    }

    pub(crate) fn hash_any(&self, input: &[u8]) -> Option<u32> {
        if !self.enabled {
            return None;
        }
        // Bytes past the 64th meet only zero key bits (keys are ≤ 52 bytes).
        let mut buf = Lanes([0u8; 8 * LANES]);
        let n = input.len().min(buf.0.len());
        buf.0[..n].copy_from_slice(&input[..n]);
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: as in `hash_v4`: the features were detected.
            Some(unsafe { x86::hash_lanes(self, &buf) })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// Batch form: returns false (and leaves `out` alone) without CPU support.
    pub(crate) fn hash_v4_batch(&self, tuples: &[Ipv4Tuple], out: &mut [u32]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.enabled {
            // SAFETY: as in `hash_v4`: the features were detected.
            unsafe { x86::hash_v4_batch(self, tuples, out) };
            return true;
        }
        let _ = (tuples, out);
        false
    }

    /// Batch form: returns false (and leaves `out` alone) without CPU support.
    pub(crate) fn hash_v6_batch(&self, tuples: &[Ipv6Tuple], out: &mut [u32]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.enabled {
            // SAFETY: as in `hash_v4`: the features were detected.
            unsafe { x86::hash_v6_batch(self, tuples, out) };
            return true;
        }
        let _ = (tuples, out);
        false
    }
}

/// 64 zero-padded input bytes, aligned for vector loads.
#[repr(C, align(16))]
pub(crate) struct Lanes([u8; 8 * LANES]);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_extract_epi64, _mm_load_si128,
        _mm_or_si128, _mm_set1_epi8, _mm_setr_epi8, _mm_shuffle_epi8, _mm_srli_epi16, _mm_xor_si128,
    };

    use super::{ClmulKey, LANES, Lanes};
    use crate::tuple::{Ipv4Tuple, Ipv6Tuple};

    /// Reverses the bits of every byte (so a little-endian load becomes the
    /// reflected bit string `d_0 d_1 …` from bit 0 up).
    #[inline]
    #[target_feature(enable = "ssse3")]
    fn reflect(v: __m128i) -> __m128i {
        // rev4(n) in the low nibble table, rev4(n) << 4 in the high one.
        let rev_lo = _mm_setr_epi8(0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15);
        let rev_hi = _mm_setr_epi8(
            0x00,
            0x80u8 as i8,
            0x40,
            0xc0u8 as i8,
            0x20,
            0xa0u8 as i8,
            0x60,
            0xe0u8 as i8,
            0x10,
            0x90u8 as i8,
            0x50,
            0xd0u8 as i8,
            0x30,
            0xb0u8 as i8,
            0x70,
            0xf0u8 as i8,
        );
        let nib = _mm_set1_epi8(0x0f);
        let lo = _mm_and_si128(v, nib);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), nib);
        _mm_or_si128(_mm_shuffle_epi8(rev_hi, lo), _mm_shuffle_epi8(rev_lo, hi))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn key_lane(key: &ClmulKey, w: usize) -> __m128i {
        let p = key.lanes[w].as_ptr().cast::<__m128i>();
        // SAFETY: `lanes[w]` is 16 bytes, and 16-byte aligned because
        // `ClmulKey` is `align(16)` and starts with `lanes` (`repr(C)`).
        unsafe { _mm_load_si128(p) }
    }

    /// `(x.hi ^ y.lo) >> 32`: the hash from the two accumulated products.
    #[inline]
    #[target_feature(enable = "sse4.1")]
    fn finish(x: __m128i, y: __m128i) -> u32 {
        let hi = _mm_extract_epi64::<1>(x) as u64;
        let lo = _mm_cvtsi128_si64(y) as u64;
        ((hi ^ lo) >> 32) as u32
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    pub(super) fn hash_v4(key: &ClmulKey, tuple: &Ipv4Tuple) -> u32 {
        let p = tuple.padded().as_ptr().cast::<__m128i>();
        // SAFETY: `Ipv4Tuple` is 16 bytes, `align(16)`, zero past byte 12.
        let a = reflect(unsafe { _mm_load_si128(p) });
        let k0 = key_lane(key, 0);
        let k1 = key_lane(key, 1);
        let x = _mm_clmulepi64_si128::<0x00>(a, k0);
        let y = _mm_xor_si128(
            _mm_clmulepi64_si128::<0x10>(a, k0),
            // Lane 1 holds only 32 input bits: its B0 product misses bits 96+.
            _mm_clmulepi64_si128::<0x11>(a, k1),
        );
        finish(x, y)
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    pub(super) fn hash_v6(key: &ClmulKey, tuple: &Ipv6Tuple) -> u32 {
        let p = tuple.padded().as_ptr().cast::<__m128i>();
        // SAFETY: `Ipv6Tuple` is 48 bytes, `align(16)`: three aligned vectors.
        let a0 = reflect(unsafe { _mm_load_si128(p) });
        // SAFETY: as above, the second vector (bytes 16..32).
        let a1 = reflect(unsafe { _mm_load_si128(p.wrapping_add(1)) });
        // SAFETY: as above, the third vector (bytes 32..48, zero past 36).
        let a2 = reflect(unsafe { _mm_load_si128(p.wrapping_add(2)) });
        let (k0, k1, k2, k3, k4) =
            (key_lane(key, 0), key_lane(key, 1), key_lane(key, 2), key_lane(key, 3), key_lane(key, 4));
        let x = _mm_xor_si128(
            _mm_xor_si128(_mm_clmulepi64_si128::<0x00>(a0, k0), _mm_clmulepi64_si128::<0x01>(a0, k1)),
            _mm_xor_si128(_mm_clmulepi64_si128::<0x00>(a1, k2), _mm_clmulepi64_si128::<0x01>(a1, k3)),
        );
        let y = _mm_xor_si128(
            _mm_xor_si128(
                _mm_xor_si128(_mm_clmulepi64_si128::<0x10>(a0, k0), _mm_clmulepi64_si128::<0x11>(a0, k1)),
                _mm_xor_si128(_mm_clmulepi64_si128::<0x10>(a1, k2), _mm_clmulepi64_si128::<0x11>(a1, k3)),
            ),
            _mm_clmulepi64_si128::<0x10>(a2, k4),
        );
        finish(x, y)
    }

    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    pub(super) fn hash_lanes(key: &ClmulKey, buf: &Lanes) -> u32 {
        let p = buf.0.as_ptr().cast::<__m128i>();
        let zero = std::arch::x86_64::_mm_setzero_si128();
        let (mut x, mut y) = (zero, zero);
        for v in 0..LANES / 2 {
            // SAFETY: `Lanes` is 64 bytes, `align(16)`; v < 4.
            let a = reflect(unsafe { _mm_load_si128(p.wrapping_add(v)) });
            let ke = key_lane(key, 2 * v);
            let ko = key_lane(key, 2 * v + 1);
            x = _mm_xor_si128(x, _mm_clmulepi64_si128::<0x00>(a, ke));
            x = _mm_xor_si128(x, _mm_clmulepi64_si128::<0x01>(a, ko));
            y = _mm_xor_si128(y, _mm_clmulepi64_si128::<0x10>(a, ke));
            y = _mm_xor_si128(y, _mm_clmulepi64_si128::<0x11>(a, ko));
        }
        finish(x, y)
    }

    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    pub(super) fn hash_v4_batch(key: &ClmulKey, tuples: &[Ipv4Tuple], out: &mut [u32]) {
        for (t, h) in tuples.iter().zip(out.iter_mut()) {
            *h = hash_v4(key, t);
        }
    }

    #[target_feature(enable = "pclmulqdq,ssse3,sse4.1")]
    pub(super) fn hash_v6_batch(key: &ClmulKey, tuples: &[Ipv6Tuple], out: &mut [u32]) {
        for (t, h) in tuples.iter().zip(out.iter_mut()) {
            *h = hash_v6(key, t);
        }
    }
}
