//! A port that misbehaves on purpose, reproducibly.

use std::os::fd::BorrowedFd;

use sluice_packet::{BufferPool, PacketBuf};

use super::{DropReason, MAX_BATCH, PacketBatch, Port, PortCapabilities, PortError, PortStats};

/// What a [`FaultInjector`] does, and how often. Rates are probabilities
/// per packet in `0.0..=1.0`, drawn independently in this order: drop (the
/// packet goes no further), corrupt (flip one bit), truncate (cut to a random
/// shorter length, possibly zero), duplicate (deliver a copy right after).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Seed of the random sequence: the same seed and the same packets give
    /// the same faults.
    pub seed: u64,
    /// Probability of dropping a packet.
    pub drop_rate: f64,
    /// Probability of flipping one random bit.
    pub corrupt_rate: f64,
    /// Probability of truncating.
    pub truncate_rate: f64,
    /// Probability of duplicating.
    pub duplicate_rate: f64,
    /// Apply faults to received packets.
    pub on_rx: bool,
    /// Apply faults to transmitted packets.
    pub on_tx: bool,
}

impl Default for FaultConfig {
    /// No faults, both directions enabled, seed 0.
    fn default() -> FaultConfig {
        FaultConfig {
            seed: 0,
            drop_rate: 0.0,
            corrupt_rate: 0.0,
            truncate_rate: 0.0,
            duplicate_rate: 0.0,
            on_rx: true,
            on_tx: true,
        }
    }
}

/// A [`FaultConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultConfigError {
    /// A rate outside `0.0..=1.0` (or NaN).
    #[error("the {field} of {value} is outside the allowed range 0.0 to 1.0")]
    RateOutOfRange {
        /// Which rate (`drop rate`, …).
        field: &'static str,
        /// The value given.
        value: f64,
    },
}

impl FaultConfig {
    fn validate(&self) -> Result<(), FaultConfigError> {
        for (field, value) in [
            ("drop rate", self.drop_rate),
            ("corrupt rate", self.corrupt_rate),
            ("truncate rate", self.truncate_rate),
            ("duplicate rate", self.duplicate_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultConfigError::RateOutOfRange { field, value });
            }
        }
        Ok(())
    }
}

/// What a [`FaultInjector`] did. Its drops are also in the port's
/// [`PortStats::drops`] under [`DropReason::Injected`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Packets looked at.
    pub seen: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Packets with a bit flipped.
    pub corrupted: u64,
    /// Packets cut short.
    pub truncated: u64,
    /// Copies delivered.
    pub duplicated: u64,
    /// Duplicates not made because the pool was empty or the batch full.
    pub duplicate_skipped: u64,
}

/// Wraps a port and drops, corrupts, truncates and duplicates packets at
/// configured rates, deterministically for a given seed (like smoltcp's
/// `phy::FaultInjector`).
///
/// Counters: [`stats`](Port::stats) is the inner port's (what crossed the
/// device) plus this injector's drops under [`DropReason::Injected`];
/// [`fault_stats`](Self::fault_stats) says what was done.
#[derive(Debug)]
pub struct FaultInjector<P> {
    inner: P,
    config: FaultConfig,
    rng: SplitMix64,
    faults: FaultStats,
    scratch: Vec<PacketBuf>,
}

impl<P: Port> FaultInjector<P> {
    /// Wraps `inner` with the faults in `config`.
    pub fn new(inner: P, config: FaultConfig) -> Result<FaultInjector<P>, FaultConfigError> {
        config.validate()?;
        Ok(FaultInjector {
            inner,
            rng: SplitMix64(config.seed),
            config,
            faults: FaultStats::default(),
            scratch: Vec::with_capacity(MAX_BATCH * 2),
        })
    }

    /// What the injector has done so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.faults
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped port, mutably.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Unwraps the inner port.
    pub fn into_inner(self) -> P {
        self.inner
    }

    /// Applies faults to the packets of `batch` from `start` on.
    fn mangle(&mut self, pool: &mut BufferPool, batch: &mut PacketBatch, start: usize) {
        self.scratch.extend(batch.drain_from(start));
        let c = self.config;
        let total = self.scratch.len();
        for (i, mut buf) in self.scratch.drain(..).enumerate() {
            // Originals still to come after this one: a duplicate may only
            // take a slot none of them needs, so every original fits.
            let later = total - i - 1;
            self.faults.seen += 1;
            if self.rng.chance(c.drop_rate) {
                self.faults.dropped += 1;
                pool.put(buf);
                continue;
            }
            if self.rng.chance(c.corrupt_rate) && !buf.is_empty() {
                let bit = self.rng.below(buf.len() as u64 * 8) as usize;
                buf.as_mut_slice()[bit / 8] ^= 1 << (bit % 8);
                self.faults.corrupted += 1;
            }
            if self.rng.chance(c.truncate_rate) && !buf.is_empty() {
                let len = self.rng.below(buf.len() as u64) as usize;
                buf.truncate(len);
                self.faults.truncated += 1;
            }
            let duplicate = self.rng.chance(c.duplicate_rate);
            let copy = if duplicate && batch.remaining() > later + 1 { copy_of(pool, &buf) } else { None };
            // Cannot fail: this original's slot is reserved (see `later`).
            if let Err(buf) = batch.push(buf) {
                pool.put(buf);
            }
            if duplicate {
                match copy.map(|copy| batch.push(copy)) {
                    Some(Ok(())) => self.faults.duplicated += 1,
                    Some(Err(copy)) => {
                        pool.put(copy);
                        self.faults.duplicate_skipped += 1;
                    }
                    None => self.faults.duplicate_skipped += 1,
                }
            }
        }
    }
}

fn copy_of(pool: &mut BufferPool, buf: &PacketBuf) -> Option<PacketBuf> {
    let mut copy = pool.get()?;
    match copy.fill(buf.as_slice()) {
        Ok(()) => Some(copy),
        Err(_) => {
            pool.put(copy);
            None
        }
    }
}

impl<P: Port> Port for FaultInjector<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> PortCapabilities {
        self.inner.capabilities()
    }

    fn rx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        let start = batch.len();
        self.inner.rx_batch(queue, pool, batch)?;
        if self.config.on_rx {
            self.mangle(pool, batch, start);
        }
        Ok(batch.len() - start)
    }

    fn tx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        if self.config.on_tx {
            self.mangle(pool, batch, 0);
        }
        self.inner.tx_batch(queue, pool, batch)
    }

    fn poll_fd(&self, queue: usize) -> Option<BorrowedFd<'_>> {
        self.inner.poll_fd(queue)
    }

    fn stats(&self) -> PortStats {
        let mut s = self.inner.stats();
        s.count_drop(DropReason::Injected, self.faults.dropped);
        s
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast generator whose output
/// for a seed is fixed forever. Hand-written rather than taken from `rand`
/// because `rand`'s seeded generators do not promise the same sequence
/// across versions, and fault runs must replay exactly.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`. Draws nothing when `p` is 0, so a zero rate
    /// does not shift the sequence of the others.
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits as a float in [0, 1).
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A number in `0..n` (`n` > 0); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Loopback, frames};
    use super::*;

    fn run(config: FaultConfig, n: usize) -> (Vec<Vec<u8>>, FaultInjector<Loopback>, BufferPool) {
        let mut pool = BufferPool::new(4 * MAX_BATCH + 64, 2048, 128);
        let mut port = FaultInjector::new(Loopback::default(), config).unwrap();
        let mut out = Vec::new();
        let mut batch = PacketBatch::new();
        let mut i = 0;
        while i < n {
            let k = (n - i).min(MAX_BATCH / 2);
            frames(&mut pool, i..i + k, &mut batch);
            i += k;
            port.tx_batch(0, &mut pool, &mut batch).unwrap();
            while port.rx_batch(0, &mut pool, &mut batch).unwrap() > 0 {
                for b in batch.drain() {
                    out.push(b.as_slice().to_vec());
                    pool.put(b);
                }
            }
        }
        (out, port, pool)
    }

    fn config(seed: u64) -> FaultConfig {
        FaultConfig {
            seed,
            drop_rate: 0.1,
            corrupt_rate: 0.05,
            truncate_rate: 0.05,
            duplicate_rate: 0.05,
            on_rx: false,
            on_tx: true,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let (a, pa, _) = run(config(7), 2000);
        let (b, pb, _) = run(config(7), 2000);
        assert_eq!(a, b);
        assert_eq!(pa.fault_stats(), pb.fault_stats());
        let (c, _, _) = run(config(8), 2000);
        assert_ne!(a, c, "another seed, other faults");
    }

    #[test]
    fn rates_hold_within_tolerance_and_every_drop_is_counted() {
        let n = 20_000;
        let (out, port, pool) = run(config(42), n);
        let f = port.fault_stats();
        assert_eq!(f.seen, n as u64);
        let near = |count: u64, rate: f64, of: u64| {
            let expect = rate * of as f64;
            (count as f64 - expect).abs() < 5.0 * expect.sqrt() + 1.0
        };
        assert!(near(f.dropped, 0.1, f.seen), "{f:?}");
        let kept = f.seen - f.dropped;
        assert!(near(f.corrupted, 0.05, kept), "{f:?}");
        assert!(near(f.truncated, 0.05, kept), "{f:?}");
        assert!(near(f.duplicated + f.duplicate_skipped, 0.05, kept), "{f:?}");
        assert_eq!(port.stats().drops.get(DropReason::Injected), f.dropped);
        // Conservation: what came out is what went in, minus drops, plus copies.
        assert_eq!(out.len() as u64, f.seen - f.dropped + f.duplicated);
        assert_eq!(pool.available(), pool.total(), "no buffer leaked");
    }

    #[test]
    fn faults_apply_on_receive_too_and_bad_rates_are_refused() {
        let c = FaultConfig { seed: 1, drop_rate: 1.0, on_rx: true, on_tx: false, ..FaultConfig::default() };
        let (out, port, _) = run(c, 100);
        assert!(out.is_empty());
        assert_eq!(port.inner().stats().rx_packets, 100, "the inner port delivered them");
        assert_eq!(port.stats().drops.get(DropReason::Injected), 100);
        let bad = FaultConfig { corrupt_rate: 1.5, ..FaultConfig::default() };
        let err = FaultInjector::new(Loopback::default(), bad).unwrap_err();
        assert_eq!(err.to_string(), "the corrupt rate of 1.5 is outside the allowed range 0.0 to 1.0");
        let nan = FaultConfig { drop_rate: f64::NAN, ..FaultConfig::default() };
        assert!(FaultInjector::new(Loopback::default(), nan).is_err());
    }
}
