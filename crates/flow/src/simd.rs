//! The megaflow index's signature compare, written with SSE2 intrinsics.
//!
//! Why by hand: a probe compares the eight 16-bit signatures of a
//! bucket with the key's, and every subtable that does not hold the key
//! costs one such compare, so it is the inner step of a tuple-space
//! search. Written as a plain Rust loop (see [`lanes_equal_portable`]),
//! LLVM leaves it scalar or builds a long mix of vector and scalar steps
//! (measured with callgrind: 46 instructions); with the intrinsics it is
//! one load, one compare, one pack and one `pmovmskb`. Stable Rust can only call the intrinsics in `unsafe`. SSE2
//! is part of the x86-64 baseline, so there is no runtime dispatch; other
//! targets use the portable loop.

/// Bit `j` (for `j < 8`) is set when `sigs[j] == want`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn lanes_equal(sigs: &[u16; 8], want: u16) -> u32 {
    // SAFETY: `lanes_equal_sse2` only needs SSE2, which every x86-64
    // target has (it is in the baseline this crate is compiled for).
    unsafe { lanes_equal_sse2(sigs, want) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn lanes_equal_sse2(sigs: &[u16; 8], want: u16) -> u32 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16, _mm_set1_epi16,
    };
    // SAFETY: the pointer comes from `sigs`, a live shared reference to
    // exactly the 16 bytes this unaligned load reads.
    let v = unsafe { _mm_loadu_si128(sigs.as_ptr().cast::<__m128i>()) };
    let eq = _mm_cmpeq_epi16(v, _mm_set1_epi16(want as i16));
    // Eight 16-bit lanes to eight bytes (the upper eight are copies).
    _mm_movemask_epi8(_mm_packs_epi16(eq, eq)) as u32 & 0xff
}

/// [`lanes_equal`] elsewhere.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn lanes_equal(sigs: &[u16; 8], want: u16) -> u32 {
    lanes_equal_portable(sigs, want)
}

/// The plain loop, for other targets and for the test that checks the
/// intrinsics against it.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
pub(crate) fn lanes_equal_portable(sigs: &[u16; 8], want: u16) -> u32 {
    let mut m = 0u32;
    for (j, &c) in sigs.iter().enumerate() {
        m |= u32::from(c == want) << j;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intrinsics_agree_with_the_loop() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut sigs = [0u16; 8];
            for c in &mut sigs {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Few distinct values (and the sign bit), so that matches are common.
                *c = ((x >> 8) as u16 & 0x7) | (x as u16 & 0x8000);
            }
            for want in [0u16, 1, 2, 7, 0x8000, 0x8003, 0xffff] {
                assert_eq!(lanes_equal(&sigs, want), lanes_equal_portable(&sigs, want), "{sigs:x?} {want}");
            }
        }
    }
}
