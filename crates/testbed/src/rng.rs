//! [`XorShift`]: deterministic pseudo-random input for tests and
//! benchmarks, without a dependency. Not for anything that needs real
//! randomness.

/// xorshift64* (Vigna): a seed gives the same sequence on every run.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next 64 random bits. A zero seed stays zero: seed with non-zero.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0; slightly biased for huge `n`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
