//! The Toeplitz hash: a bitwise reference, byte tables, and a carry-less
//! multiply (PCLMULQDQ) version picked at run time.
//!
//! Definition (Microsoft NDIS "RSS hashing functions"): walk the input bits
//! from the MSB of byte 0; for every 1 bit at position `i`, XOR the 32-bit key
//! window starting at key bit `i` into the result. The hash is linear over
//! GF(2), so it splits into per-byte table lookups, and it is a carry-less
//! product of the bit-reflected input with the key (see `clmul.rs`).
//!
//! Key bits past the end of the key count as zero in every implementation, so
//! every function here is total: any input length gives a defined hash (bytes
//! past `key.len()` contribute nothing).

use crate::key::{MAX_KEY_LEN, RssKey};
use crate::tuple::{Ipv4Tuple, Ipv6Tuple};

/// The bitwise reference: a direct transcription of the NDIS definition.
/// Slow (about one branch per input bit) and obviously right; everything else
/// is tested against it. Key bits past the end of `key` count as zero.
pub fn reference_hash(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |n: usize| -> u32 { key.get(n / 8).map_or(0, |byte| u32::from((byte >> (7 - n % 8)) & 1)) };
    // The left-most 32 bits of the (shifted) key.
    let mut window: u32 = (0..32).fold(0, |w, n| (w << 1) | key_bit(n));
    let mut result = 0u32;
    for (i, byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | key_bit(i * 8 + bit + 32);
        }
    }
    result
}

/// Which implementation computes a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Implementation {
    /// [`reference_hash`], bit by bit.
    Reference,
    /// One 256-entry table per input byte position (52 KiB per key).
    Table,
    /// PCLMULQDQ carry-less multiply (x86-64 with PCLMULQDQ and SSE4.1).
    Clmul,
    /// AVX-512F nibble tables, 16 tuples per step: a *batch* kernel. Single
    /// tuples (and the last `len % 16` of a batch) use [`Implementation::Clmul`].
    Avx512,
}

impl Implementation {
    /// Every implementation, slowest first.
    pub const ALL: [Implementation; 4] =
        [Implementation::Reference, Implementation::Table, Implementation::Clmul, Implementation::Avx512];

    /// A short lowercase name (for benchmark ids and the CLI).
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Reference => "reference",
            Implementation::Table => "table",
            Implementation::Clmul => "clmul",
            Implementation::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the implementation.
    pub fn is_available(self) -> bool {
        match self {
            Implementation::Reference | Implementation::Table => true,
            Implementation::Clmul => crate::clmul::is_supported(),
            Implementation::Avx512 => crate::avx512::is_supported() && crate::clmul::is_supported(),
        }
    }
}

/// Per-byte-position lookup tables: `tables[p][v]` is the hash of `v` placed
/// at byte `p` of the input.
type ByteTables = [[u32; 256]; MAX_KEY_LEN];

/// A Toeplitz hasher for one key: the per-key precomputation (tables and
/// carry-less-multiply constants) done once, then allocation-free hashing.
///
/// [`Toeplitz::hash_v4`], [`Toeplitz::hash_v6`] and [`Toeplitz::hash`] use
/// the fastest implementation this CPU has; the `*_using` forms pick one
/// explicitly (tests and benchmarks compare them).
#[derive(Clone)]
pub struct Toeplitz {
    key: RssKey,
    tables: Box<ByteTables>,
    clmul: crate::clmul::ClmulKey,
    avx512: crate::avx512::Avx512Key,
    fastest: Implementation,
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toeplitz").field("key", &self.key).field("fastest", &self.fastest).finish_non_exhaustive()
    }
}

impl Toeplitz {
    /// Precomputes everything for `key` (about 53 KiB, allocated once).
    pub fn new(key: &RssKey) -> Toeplitz {
        let mut tables: Box<ByteTables> = vec![[0u32; 256]; MAX_KEY_LEN]
            .into_boxed_slice()
            .try_into()
            .unwrap_or_else(|_| unreachable!("the vec has exactly MAX_KEY_LEN rows"));
        for (p, table) in tables.iter_mut().enumerate() {
            let windows: [u32; 8] = std::array::from_fn(|bit| key.window(p * 8 + bit));
            for (v, slot) in table.iter_mut().enumerate() {
                *slot = (0..8).filter(|bit| v & (0x80 >> bit) != 0).fold(0, |acc, bit| acc ^ windows[bit]);
            }
        }
        let fastest = if Implementation::Clmul.is_available() { Implementation::Clmul } else { Implementation::Table };
        let avx512 = crate::avx512::Avx512Key::new(|p, v| tables.get(p).map_or(0, |t| t[usize::from(v)]));
        Toeplitz { key: *key, tables, clmul: crate::clmul::ClmulKey::new(key), avx512, fastest }
    }

    /// The key this hasher was built for.
    pub fn key(&self) -> &RssKey {
        &self.key
    }

    /// The implementation [`Toeplitz::hash_v4`] and friends use on this CPU.
    pub fn fastest(&self) -> Implementation {
        self.fastest
    }

    /// Hashes an IPv4 tuple with the fastest implementation.
    #[inline]
    pub fn hash_v4(&self, tuple: &Ipv4Tuple) -> u32 {
        self.hash_v4_using(self.fastest, tuple)
    }

    /// Hashes an IPv6 tuple with the fastest implementation.
    #[inline]
    pub fn hash_v6(&self, tuple: &Ipv6Tuple) -> u32 {
        self.hash_v6_using(self.fastest, tuple)
    }

    /// Hashes any input (bytes past 52 contribute nothing) with the fastest
    /// implementation.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        self.hash_using(self.fastest, input)
    }

    /// Hashes a batch of IPv4 tuples into `out` (`out[i]` = hash of
    /// `tuples[i]`; extra elements of the longer slice are left alone) with
    /// the fastest batch kernel: AVX-512 16 at a time when the CPU has it,
    /// then CLMUL (or tables) for the rest.
    pub fn hash_v4_batch(&self, tuples: &[Ipv4Tuple], out: &mut [u32]) {
        self.hash_v4_batch_using(self.fastest_batch(), tuples, out);
    }

    /// Hashes a batch of IPv6 tuples into `out`, as [`Toeplitz::hash_v4_batch`].
    pub fn hash_v6_batch(&self, tuples: &[Ipv6Tuple], out: &mut [u32]) {
        self.hash_v6_batch_using(self.fastest_batch(), tuples, out);
    }

    /// The implementation [`Toeplitz::hash_v4_batch`] uses on this CPU.
    pub fn fastest_batch(&self) -> Implementation {
        if self.avx512.enabled() && self.fastest == Implementation::Clmul {
            Implementation::Avx512
        } else {
            self.fastest
        }
    }

    /// Batch hashing with `imp` (unavailable kernels fall back as in
    /// [`Toeplitz::hash_v4_using`]).
    pub fn hash_v4_batch_using(&self, imp: Implementation, tuples: &[Ipv4Tuple], out: &mut [u32]) {
        let done = if imp == Implementation::Avx512 { self.avx512.hash_v4_batch(tuples, out) } else { 0 };
        // `done` ≤ both lengths (the kernel hashes whole groups of both).
        let tuples = tuples.get(done..).unwrap_or(&[]);
        let out = out.get_mut(done..).unwrap_or(&mut []);
        let simd =
            matches!(imp, Implementation::Clmul | Implementation::Avx512) && self.clmul.hash_v4_batch(tuples, out);
        if !simd {
            for (t, h) in tuples.iter().zip(out.iter_mut()) {
                *h = self.hash_v4_using(imp, t);
            }
        }
    }

    /// Batch hashing of IPv6 tuples with `imp`.
    pub fn hash_v6_batch_using(&self, imp: Implementation, tuples: &[Ipv6Tuple], out: &mut [u32]) {
        let done = if imp == Implementation::Avx512 { self.avx512.hash_v6_batch(tuples, out) } else { 0 };
        // `done` ≤ both lengths (the kernel hashes whole groups of both).
        let tuples = tuples.get(done..).unwrap_or(&[]);
        let out = out.get_mut(done..).unwrap_or(&mut []);
        let simd =
            matches!(imp, Implementation::Clmul | Implementation::Avx512) && self.clmul.hash_v6_batch(tuples, out);
        if !simd {
            for (t, h) in tuples.iter().zip(out.iter_mut()) {
                *h = self.hash_v6_using(imp, t);
            }
        }
    }

    /// Hashes an IPv4 tuple with `imp`; [`Implementation::Clmul`] falls back
    /// to the tables on a CPU without PCLMULQDQ.
    #[inline]
    pub fn hash_v4_using(&self, imp: Implementation, tuple: &Ipv4Tuple) -> u32 {
        match imp {
            Implementation::Reference => reference_hash(self.key.as_bytes(), tuple.as_bytes()),
            Implementation::Table => self.table_v4(tuple),
            Implementation::Clmul | Implementation::Avx512 => {
                self.clmul.hash_v4(tuple).unwrap_or_else(|| self.table_v4(tuple))
            }
        }
    }

    /// Hashes an IPv6 tuple with `imp` (see [`Toeplitz::hash_v4_using`]).
    #[inline]
    pub fn hash_v6_using(&self, imp: Implementation, tuple: &Ipv6Tuple) -> u32 {
        match imp {
            Implementation::Reference => reference_hash(self.key.as_bytes(), tuple.as_bytes()),
            Implementation::Table => self.table_v6(tuple),
            Implementation::Clmul | Implementation::Avx512 => {
                self.clmul.hash_v6(tuple).unwrap_or_else(|| self.table_v6(tuple))
            }
        }
    }

    /// Hashes any input with `imp` (see [`Toeplitz::hash_v4_using`]).
    pub fn hash_using(&self, imp: Implementation, input: &[u8]) -> u32 {
        match imp {
            Implementation::Reference => reference_hash(self.key.as_bytes(), input),
            Implementation::Table => self.table_any(input),
            Implementation::Clmul | Implementation::Avx512 => {
                self.clmul.hash_any(input).unwrap_or_else(|| self.table_any(input))
            }
        }
    }

    #[inline]
    fn table_any(&self, input: &[u8]) -> u32 {
        input.iter().zip(self.tables.iter()).fold(0, |acc, (&b, table)| acc ^ table[usize::from(b)])
    }

    #[inline]
    fn table_v4(&self, tuple: &Ipv4Tuple) -> u32 {
        let b = tuple.as_bytes();
        let t = &*self.tables;
        let mut h = 0;
        // Fixed trip count: the compiler unrolls this completely.
        for p in 0..Ipv4Tuple::LEN {
            h ^= t[p][usize::from(b[p])];
        }
        h
    }

    #[inline]
    fn table_v6(&self, tuple: &Ipv6Tuple) -> u32 {
        let b = tuple.as_bytes();
        let t = &*self.tables;
        let mut h = 0;
        for p in 0..Ipv6Tuple::LEN {
            h ^= t[p][usize::from(b[p])];
        }
        h
    }

    /// The hash contribution of byte value `value` at input byte `position`
    /// (zero past the key). The port solver builds its matrices from these.
    pub(crate) fn byte_contribution(&self, position: usize, value: u8) -> u32 {
        self.tables.get(position).map_or(0, |t| t[usize::from(value)])
    }
}
