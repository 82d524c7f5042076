//! A batch Toeplitz kernel for AVX-512F: 16 tuples at a time, nibble tables
//! looked up with `vpermd`.
//!
//! The hash is linear, so it is the XOR over the input's 4-bit nibbles of a
//! per-position table `T[pos][nibble]` (16 × u32: exactly one zmm register).
//! `vpermd` looks up 16 lanes in such a table at once, using only the low 4
//! bits of each index lane. So with 16 tuples transposed into lanes (one
//! gather per 32-bit word of the tuple), each nibble position costs a shift
//! and a `vpermd`, shared by all 16 tuples. The tuples are transposed with
//! in-register permutes (measured faster here than `vpgatherdd`). Words are
//! loaded little-endian;
//! the tables are built for that byte order, so no byte or bit reversal is
//! needed. This is the fastest path on CPUs with AVX-512 but without GFNI or
//! VPCLMULQDQ (Skylake-SP / Cascade Lake), and a good one on the others.
//!
//! On Skylake-SP / Cascade Lake, 512-bit instructions can lower the core's
//! clock a little (AVX-512 "light" licence for these integer ops) for a
//! while after use; measure end to end before enabling this in a mixed
//! workload, and keep bursts large enough to amortise it.
//!
//! All `unsafe` here is SIMD; [`Avx512Key::new`] records runtime detection.

use crate::tuple::{Ipv4Tuple, Ipv6Tuple};

/// Whether this CPU has AVX-512F.
pub(crate) fn is_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One nibble table: 16 × u32, one zmm.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct NibbleTable([u32; 16]);

/// Words (u32) hashed for IPv4 / IPv6 4-tuples.
const V4_WORDS: usize = 3;
const V6_WORDS: usize = 9;

/// Per-key nibble tables for the first 36 input bytes (9 words × 8 nibbles).
#[derive(Clone, Debug)]
pub(crate) struct Avx512Key {
    tables: Box<[[NibbleTable; 8]; V6_WORDS]>,
    enabled: bool,
}

impl Avx512Key {
    /// `contribution(byte, value)` is the hash of `value` at input byte `byte`.
    pub(crate) fn new(contribution: impl Fn(usize, u8) -> u32) -> Avx512Key {
        // Word w loaded little-endian: nibble k is byte 4w + k/2, the low
        // nibble of that byte when k is even, the high one when k is odd.
        let tables = Box::new(std::array::from_fn(|w| {
            std::array::from_fn(|k| {
                let byte = 4 * w + k / 2;
                NibbleTable(std::array::from_fn(|v| {
                    let value = if k % 2 == 0 { v as u8 } else { (v as u8) << 4 };
                    contribution(byte, value)
                }))
            })
        }));
        Avx512Key { tables, enabled: is_supported() }
    }

    /// Whether the CPU runs this kernel.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Hashes whole groups of 16 tuples; returns how many were hashed (a
    /// multiple of 16, or 0 without AVX-512F).
    pub(crate) fn hash_v4_batch(&self, tuples: &[Ipv4Tuple], out: &mut [u32]) -> usize {
        let n = tuples.len().min(out.len()) / 16 * 16;
        if !self.enabled || n == 0 {
            return 0;
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `enabled` means avx512f was detected on this CPU.
            unsafe { x86::batch_v4(&self.tables, tuples[..n].as_ptr().cast(), &mut out[..n]) };
            n
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            0
        }
    }

    /// As [`Avx512Key::hash_v4_batch`], for IPv6.
    pub(crate) fn hash_v6_batch(&self, tuples: &[Ipv6Tuple], out: &mut [u32]) -> usize {
        let n = tuples.len().min(out.len()) / 16 * 16;
        if !self.enabled || n == 0 {
            return 0;
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `enabled` means avx512f was detected on this CPU.
            unsafe { x86::batch_v6(&self.tables, tuples[..n].as_ptr().cast(), &mut out[..n]) };
            n
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            0
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m512i, _mm512_load_si512, _mm512_loadu_si512, _mm512_mask_permutexvar_epi64, _mm512_permutex2var_epi32,
        _mm512_permutex2var_epi64, _mm512_permutexvar_epi32, _mm512_set1_epi32, _mm512_setr_epi32, _mm512_setr_epi64,
        _mm512_shuffle_i64x2, _mm512_srli_epi32, _mm512_storeu_si512, _mm512_ternarylogic_epi32,
    };

    use super::{NibbleTable, V4_WORDS, V6_WORDS};

    /// XOR of three vectors in one `vpternlogd` (truth table 0x96).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<0x96>(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn table(t: &NibbleTable) -> __m512i {
        // SAFETY: `NibbleTable` is 64 bytes and `align(64)`.
        unsafe { _mm512_load_si512(t.0.as_ptr().cast()) }
    }

    /// The hash of 16 tuples whose words are transposed into `words`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn hash16<const WORDS: usize>(tables: &[[NibbleTable; 8]; V6_WORDS], words: &[__m512i; WORDS]) -> __m512i {
        let mut acc = _mm512_set1_epi32(0);
        for (w, &x) in words.iter().enumerate() {
            let t = &tables[w];
            let l = |k: usize, v: __m512i| _mm512_permutexvar_epi32(v, table(&t[k]));
            // vpermd only reads the low 4 bits of each index lane.
            let n0 = l(0, x);
            let n1 = l(1, _mm512_srli_epi32::<4>(x));
            let n2 = l(2, _mm512_srli_epi32::<8>(x));
            let n3 = l(3, _mm512_srli_epi32::<12>(x));
            let n4 = l(4, _mm512_srli_epi32::<16>(x));
            let n5 = l(5, _mm512_srli_epi32::<20>(x));
            let n6 = l(6, _mm512_srli_epi32::<24>(x));
            let n7 = l(7, _mm512_srli_epi32::<28>(x));
            let a = xor3(n0, n1, n2);
            let b = xor3(n3, n4, n5);
            acc = xor3(acc, a, b);
            acc = xor3(acc, n6, n7);
        }
        acc
    }

    /// Transposes 4 vectors of `[t0 w0..w3 | t1 | t2 | t3]` (4 tuples × 4
    /// words each, tuples 0..16 in order) into vectors of one word for all
    /// 16 tuples: returns words `0..N` (N ≤ 4).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose4<const N: usize>(z: [__m512i; 4]) -> [__m512i; N] {
        // Words 0 and 1 (or 2 and 3) of 8 tuples from two source vectors.
        let idx01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
        let idx23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
        let a01 = _mm512_permutex2var_epi32(z[0], idx01, z[1]);
        let b01 = _mm512_permutex2var_epi32(z[2], idx01, z[3]);
        let mut out = [_mm512_set1_epi32(0); N];
        out[0] = _mm512_shuffle_i64x2::<0x44>(a01, b01);
        if N > 1 {
            out[1] = _mm512_shuffle_i64x2::<0xEE>(a01, b01);
        }
        if N > 2 {
            let a23 = _mm512_permutex2var_epi32(z[0], idx23, z[1]);
            let b23 = _mm512_permutex2var_epi32(z[2], idx23, z[3]);
            out[2] = _mm512_shuffle_i64x2::<0x44>(a23, b23);
            if N > 3 {
                out[3] = _mm512_shuffle_i64x2::<0xEE>(a23, b23);
            }
        }
        out
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(p: *const u32, i: usize) -> __m512i {
        // SAFETY: the callers pass a group base with at least 16·(i+1)
        // readable u32s (see `batch_v4` / `batch_v6`).
        unsafe { _mm512_loadu_si512(p.wrapping_add(16 * i).cast()) }
    }

    /// Hashes `out.len()` IPv4 tuples (a multiple of 16) starting at `base`.
    ///
    /// # Safety
    /// `base` must point to `out.len()` `Ipv4Tuple`s (4 u32 words each), and
    /// the CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn batch_v4(tables: &[[NibbleTable; 8]; V6_WORDS], base: *const u32, out: &mut [u32]) {
        for (g, chunk) in out.chunks_exact_mut(16).enumerate() {
            // SAFETY: group g is tuples 16g..16g+16: 64 words in range.
            let group = unsafe { base.add(g * 64) };
            let z = [load(group, 0), load(group, 1), load(group, 2), load(group, 3)];
            let words: [__m512i; V4_WORDS] = transpose4(z);
            let h = hash16::<V4_WORDS>(tables, &words);
            // SAFETY: `chunk` is 16 u32s (64 writable bytes).
            unsafe { _mm512_storeu_si512(chunk.as_mut_ptr().cast(), h) };
        }
    }

    /// Hashes `out.len()` IPv6 tuples (a multiple of 16) starting at `base`.
    ///
    /// # Safety
    /// `base` must point to `out.len()` `Ipv6Tuple`s (12 u32 words each), and
    /// the CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn batch_v6(tables: &[[NibbleTable; 8]; V6_WORDS], base: *const u32, out: &mut [u32]) {
        for (g, chunk) in out.chunks_exact_mut(16).enumerate() {
            // SAFETY: group g is tuples 16g..16g+16: 192 words in range.
            let group = unsafe { base.add(g * 192) };
            // Four tuples (48 words, 3 vectors) at a time; tuple t's 16-byte
            // chunk c is 128-bit block 3t + c. Gather chunk c of the four
            // tuples into one vector: blocks c, c+3, c+6, c+9.
            let mut chunks = [[_mm512_set1_epi32(0); 4]; 3];
            for q in 0..4 {
                let [ch0, ch1, ch2] = &mut chunks;
                let z0 = load(group, 3 * q);
                let z1 = load(group, 3 * q + 1);
                let z2 = load(group, 3 * q + 2);
                // qword indices: block b of z0 is 2b, 2b+1; of z1, 8+2b, 9+2b.
                let c0 = _mm512_permutex2var_epi64(z0, _mm512_setr_epi64(0, 1, 6, 7, 12, 13, 0, 0), z1);
                ch0[q] = _mm512_mask_permutexvar_epi64(c0, 0xC0, _mm512_setr_epi64(0, 0, 0, 0, 0, 0, 2, 3), z2);
                let c1 = _mm512_permutex2var_epi64(z0, _mm512_setr_epi64(2, 3, 8, 9, 14, 15, 0, 0), z1);
                ch1[q] = _mm512_mask_permutexvar_epi64(c1, 0xC0, _mm512_setr_epi64(0, 0, 0, 0, 0, 0, 4, 5), z2);
                let c2 = _mm512_permutex2var_epi64(z0, _mm512_setr_epi64(4, 5, 10, 11, 0, 0, 0, 0), z1);
                ch2[q] = _mm512_mask_permutexvar_epi64(c2, 0xF0, _mm512_setr_epi64(0, 0, 0, 0, 0, 1, 6, 7), z2);
            }
            let w0: [__m512i; 4] = transpose4(chunks[0]);
            let w1: [__m512i; 4] = transpose4(chunks[1]);
            let w2: [__m512i; 1] = transpose4(chunks[2]);
            let words = [w0[0], w0[1], w0[2], w0[3], w1[0], w1[1], w1[2], w1[3], w2[0]];
            let h = hash16::<V6_WORDS>(tables, &words);
            // SAFETY: `chunk` is 16 u32s (64 writable bytes).
            unsafe { _mm512_storeu_si512(chunk.as_mut_ptr().cast(), h) };
        }
    }
}
