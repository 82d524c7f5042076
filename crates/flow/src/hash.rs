//! The one hash of this crate: a folded 64×64→128-bit multiply over pairs
//! of key words (the wyhash / foldhash construction), written here rather
//! than taken from a crate because every cache hashes *our* fixed-layout
//! words, often only a masked subset of them, and the pairs are independent
//! so the multiplies pipeline (about 1 cycle per word on x86-64). It is not
//! keyed against adversarial input: the caches bound their probe lengths
//! instead (a set-associative EMC, linear probing capped by load factor).

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

/// Final mix: spreads the accumulated sum over all 64 bits.
#[inline(always)]
fn finish(acc: u64, len: usize) -> u64 {
    fold_mul(acc ^ 0xe703_7ed1_a0b4_28db ^ len as u64, 0x8ebc_6af0_9c88_c6e3)
}

/// Hashes a whole array of words (the exact-match cache's full-key hash).
#[inline(always)]
pub(crate) fn hash_array<const N: usize>(w: &[u64; N]) -> u64 {
    let mut acc = 0u64;
    let mut i = 0;
    while i + 1 < N {
        acc = acc.wrapping_add(fold_mul(w[i] ^ K[i % K.len()], w[i + 1] ^ K[(i + 1) % K.len()]));
        i += 2;
    }
    if i < N {
        acc = acc.wrapping_add(fold_mul(w[i] ^ K[i % K.len()], K[(i + 1) % K.len()]));
    }
    finish(acc, N)
}

/// Hashes a compact masked key: the words a mask touches, in key order.
/// Equal sequences hash equally, and [`hash_gather`] of a key gives the
/// same value as this over the key's masked words.
#[inline(always)]
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
    finish(acc, n)
}

/// [`hash_compact`] of `key[idx[j]] & mask[j]` for `j < idx.len()`,
/// without building the compact form (`mask` is compact: one word per index).
#[inline(always)]
pub(crate) fn hash_gather<const N: usize>(key: &[u64; N], idx: &[u8], mask: &[u64]) -> u64 {
    let n = idx.len().min(mask.len()).min(K.len() - 1);
    // Indices come from our own masks (always < N), never from packets.
    let word = |j: usize| key[usize::from(idx[j])] & mask[j];
    let mut acc = 0u64;
    let mut j = 0;
    while j + 1 < n {
        acc = acc.wrapping_add(fold_mul(word(j) ^ K[j], word(j + 1) ^ K[j + 1]));
        j += 2;
    }
    if j < n {
        acc = acc.wrapping_add(fold_mul(word(j) ^ K[j], K[j + 1]));
    }
    finish(acc, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_and_array_spread_single_bit_changes() {
        let base = [0u64; 18];
        let h0 = hash_array(&base);
        let mut seen = std::collections::HashSet::new();
        for w in 0..18 {
            for bit in 0..64 {
                let mut k = base;
                k[w] |= 1 << bit;
                let h = hash_array(&k);
                assert_ne!(h, h0);
                assert!(seen.insert(h), "collision at word {w} bit {bit}");
            }
        }
        let key = [5u64, 0, 7, 9, 11];
        let idx = [0u8, 2, 4];
        let mask = [u64::MAX, 0xff, u64::MAX];
        assert_eq!(hash_gather(&key, &idx, &mask), hash_compact(&[5, 7, 11]));
        assert_ne!(hash_compact(&[5, 7, 11]), hash_compact(&[5, 7]));
        assert_ne!(hash_compact(&[5, 7, 11]), hash_compact(&[5, 11, 7]));
    }
}
