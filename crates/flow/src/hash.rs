//! The one hash of this crate: a folded 64×64→128-bit multiply over pairs
//! of key words (the wyhash / foldhash construction), written here rather
//! than taken from a crate because every cache hashes *our* fixed-layout
//! words, often only a masked subset of them, and the pairs are independent
//! so the multiplies pipeline (about 1 cycle per word on x86-64). It is not
//! keyed against adversarial input: the caches bound their probe lengths
//! instead (a set-associative EMC, linear probing capped by load factor).

use crate::key::KEY_WORDS;

/// Per-position constants (digits of π, as in wyhash's secret), so that a
/// word's value is hashed together with its position.
const K: [u64; 20] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
    0x9216_d5d9_8979_fb1b,
    0xd131_0ba6_98df_b5ac,
    0x2ffd_72db_d01a_dfb7,
    0xb8e1_afed_6a26_7e96,
    0xba7c_9045_f12c_7f99,
    0x24a1_9947_b391_6cf7,
    0x0801_f2e2_858e_fc16,
    0x6369_20d8_7157_4e69,
    0xa458_fea3_f493_3d7e,
    0x0d95_748f_728e_b658,
    0x718b_cd58_8215_4aee,
    0x7b54_a41d_c25a_59b5,
];

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Hashes six words as three independent multiplies and a sum, with no
/// final mix: each folded 128-bit product already spreads every input bit
/// over its upper half, and XOR-folding brings that into the lower half
/// (the exact-match cache takes its set from the low bits and its tag from
/// the high ones). Used where latency counts: an EMC hit waits for it.
#[inline(always)]
pub(crate) fn hash_six(w: &[u64; 6]) -> u64 {
    fold_mul(w[0] ^ K[0], w[1] ^ K[1])
        .wrapping_add(fold_mul(w[2] ^ K[2], w[3] ^ K[3]))
        .wrapping_add(fold_mul(w[4] ^ K[4], w[5] ^ K[5]))
}

/// [`hash_six`] over four words: two multiplies.
#[inline(always)]
pub(crate) fn hash_four(w: &[u64; 4]) -> u64 {
    fold_mul(w[0] ^ K[0], w[1] ^ K[1]).wrapping_add(fold_mul(w[2] ^ K[2], w[3] ^ K[3]))
}

/// [`hash_six`] over eight words: four multiplies.
#[inline(always)]
pub(crate) fn hash_eight(w: &[u64; 8]) -> u64 {
    fold_mul(w[0] ^ K[0], w[1] ^ K[1])
        .wrapping_add(fold_mul(w[2] ^ K[2], w[3] ^ K[3]))
        .wrapping_add(fold_mul(w[4] ^ K[4], w[5] ^ K[5]))
        .wrapping_add(fold_mul(w[6] ^ K[6], w[7] ^ K[7]))
}

/// Hashes a compact masked key: the words a mask touches, in key order.
/// Equal sequences hash equally, and [`hash_gather`] of a key gives the
/// same value as this over the key's masked words. No final mix, as in
/// [`hash_six`]: a megaflow probe per subtable waits for this hash, and
/// the folded products already spread every bit.
#[cfg(test)]
pub(crate) fn hash_compact(w: &[u64]) -> u64 {
    let n = w.len().min(K.len() - 1);
    let mut acc = 0u64;
    let mut j = 0;
    while j + 1 < n {
        acc = acc.wrapping_add(fold_mul(w[j] ^ K[j], w[j + 1] ^ K[j + 1]));
        j += 2;
    }
    if j < n {
        acc = acc.wrapping_add(fold_mul(w[j] ^ K[j], K[j + 1]));
    }
    acc
}

/// `hash_compact` (the tests' reference) of `key[idx[j]] & mask[j]` for `j < n`, without
/// building the compact form. `idx` and `mask` are fixed-size arrays whose
/// entries from `n` on are 0 (a zero mask), so that an odd `n` is padded
/// with a zero word exactly as `hash_compact` pads it, and the loop runs
/// over whole pairs with no bounds checks but the key read.
#[inline(always)]
pub(crate) fn hash_gather<const N: usize>(key: &[u64; N], idx: &[u8; N], mask: &[u64; N], n: usize) -> u64 {
    let pairs = n.div_ceil(2).min(N / 2).min(K.len() / 2);
    // Indices come from our own masks (always < N), never from packets,
    // so the index cannot panic.
    let word = |j: usize| key[usize::from(idx[j])] & mask[j];
    let mut acc = 0u64;
    for p in 0..pairs {
        acc = acc.wrapping_add(fold_mul(word(2 * p) ^ K[2 * p], word(2 * p + 1) ^ K[2 * p + 1]));
    }
    acc
}

/// A key word's index, as a type whose values are all below
/// [`KEY_WORDS`]: indexing a key with it needs no
/// bounds check (the compiler knows the enum's range), which matters in
/// the megaflow probe's inner loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
pub(crate) enum Word {
    W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10, W11, W12, W13, W14, W15, W16, W17,
}

impl Word {
    /// Every word, in key order.
    pub(crate) const ALL: [Word; crate::key::KEY_WORDS] = {
        use Word::*;
        [W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10, W11, W12, W13, W14, W15, W16, W17]
    };
}

/// The megaflow index's hash of `key[idx[j]] & mask[j]` for `j < n`: one
/// multiply per word by an odd per-position constant, summed, then one
/// multiply-xorshift to spread the sum (the index takes its bucket from
/// the low bits and its signature from the top ones). About four
/// instructions per word plus five, against about ten per word for
/// [`hash_gather`]: a tuple-space search computes it once per subtable it
/// visits, so it is the bulk of a lookup over many subtables. The caller's
/// masks are zero from word `n` on.
#[inline(always)]
pub(crate) fn hash_masked(
    key: &[u64; KEY_WORDS],
    idx: &[Word; KEY_WORDS],
    mask: &[u64; KEY_WORDS],
    mult: &[u64; KEY_WORDS],
    n: usize,
) -> u64 {
    // Words from `n` on have a zero mask, so hashing them adds nothing:
    // four unrolled lengths cover nearly every mask with predictable
    // branches (a five-tuple, the commonest, is five words).
    if n <= 4 {
        hash_n::<4>(key, idx, mask, mult)
    } else if n == 5 {
        hash_n::<5>(key, idx, mask, mult)
    } else if n <= 6 {
        hash_n::<6>(key, idx, mask, mult)
    } else if n <= 8 {
        hash_n::<8>(key, idx, mask, mult)
    } else {
        hash_n::<KEY_WORDS>(key, idx, mask, mult)
    }
}

/// The multipliers [`hash_masked`] wants: odd per-position constants.
pub(crate) const MULTIPLIERS: [u64; KEY_WORDS] = {
    let mut m = [0u64; KEY_WORDS];
    let mut j = 0;
    while j < KEY_WORDS {
        m[j] = K[j] | 1;
        j += 1;
    }
    m
};

/// [`hash_masked`] for masks of at most `N` words, unrolled.
#[inline(always)]
pub(crate) fn hash_n<const N: usize>(
    key: &[u64; KEY_WORDS],
    idx: &[Word; KEY_WORDS],
    mask: &[u64; KEY_WORDS],
    mult: &[u64; KEY_WORDS],
) -> u64 {
    let mut acc = 0u64;
    for j in 0..N.min(KEY_WORDS) {
        acc = acc.wrapping_add((key[idx[j] as usize] & mask[j]).wrapping_mul(mult[j]));
    }
    finish(acc)
}

/// The multiplier of [`hash_masked`]'s final mix.
const FINISH: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline(always)]
fn finish(acc: u64) -> u64 {
    let h = (acc ^ (acc >> 32)).wrapping_mul(FINISH);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_bit_changes_spread() {
        let base = [0u64; 6];
        let h0 = hash_six(&base);
        let mut seen = std::collections::HashSet::new();
        for w in 0..6 {
            for bit in 0..64 {
                let mut k = base;
                k[w] |= 1 << bit;
                let h = hash_six(&k);
                assert_ne!(h, h0);
                assert!(seen.insert(h), "collision at word {w} bit {bit}");
                // The cache sets come from the low bits, the tags from the high.
                assert!(seen.len() < 2 || (h as u16) != (h0 as u16) || (h >> 48) != (h0 >> 48));
            }
        }
        let key = [5u64, 0, 7, 9, 11, 0];
        let idx = [0u8, 2, 4, 0, 0, 0];
        let mask = [u64::MAX, 0xff, u64::MAX, 0, 0, 0];
        assert_eq!(hash_gather(&key, &idx, &mask, 3), hash_compact(&[5, 7, 11]));
        assert_eq!(hash_gather(&key, &idx, &mask, 2), hash_compact(&[5, 7]));
        assert_ne!(hash_compact(&[5, 7, 11]), hash_compact(&[5, 7]));
        assert_ne!(hash_compact(&[5, 7, 11]), hash_compact(&[5, 11, 7]));
    }

    #[test]
    fn masked_hash_spreads_single_bits_over_bucket_and_signature_bits() {
        let idx = Word::ALL;
        // As a subtable builds it: zero from word `n` (6) on.
        let mut mask = [0u64; 18];
        mask[..6].fill(u64::MAX);
        let base = [0u64; 18];
        let h0 = hash_masked(&base, &idx, &mask, &MULTIPLIERS, 6);
        let mut buckets = std::collections::HashSet::new();
        let mut sigs = std::collections::HashSet::new();
        for w in 0..6 {
            for bit in 0..64 {
                let mut k = base;
                k[w] |= 1 << bit;
                let h = hash_masked(&k, &idx, &mask, &MULTIPLIERS, 6);
                assert_ne!(h, h0, "word {w} bit {bit}");
                buckets.insert(h & 0xfff);
                sigs.insert(h >> 54);
            }
        }
        // 384 one-bit keys: most land in distinct buckets and signatures.
        assert!(buckets.len() > 300, "{}", buckets.len());
        assert!(sigs.len() > 250, "{}", sigs.len());
        // Words beyond `n` (masked out) do not count.
        let mut k = base;
        k[7] = 99;
        assert_eq!(hash_masked(&k, &idx, &mask, &MULTIPLIERS, 6), h0);
    }
}
