//! RSS-aware source-port selection for a fixed key.
//!
//! A process that owns one RX queue must pick the local port of each outgoing
//! connection so that the *reply* (remote → local, local port in the
//! destination-port field) lands on its queue. By linearity the reply hash is
//! `B ⊕ L(P)`: `B` hashes the fixed fields, `L` is linear in the 16 port
//! bits. The RETA index is the low `n` bits, so `idx(P) = b ⊕ M·P` with `M` an
//! `n × 16` matrix over GF(2) that depends only on the key and the family.
//!
//! [`PortSolver::new`] Gaussian-eliminates `M` once per key, choosing pivot
//! port bits greedily from the least significant bit. It stores a particular
//! solution for every reachable `n`-bit target (a 2^n table) and a null-space
//! basis whose vectors have distinct leading bits (the non-pivot bits). Every
//! port with `idx(P) = t` is then `sol[t ⊕ b] ⊕ span(null)`, and because each
//! null vector's leading bit is its own free bit, the coset is *ordered* like
//! the binary numbers of its coordinates: the smallest port ≥ x in a coset is
//! a binary search of `16 − rank` steps.
//!
//! DPDK's helper instead XORs a complement into the `n` low port bits only,
//! which needs the `n × n` low-bit submatrix to be invertible: true for about
//! half of random keys, false for f-stack's default key on IPv4. Solving over
//! all 16 bits works for any key whose full `M` has rank `n`; if the rank is
//! lower, only `2^rank` indices are reachable and [`PortSolver::rank`] says so.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::PortError;
use crate::key::RssKey;
use crate::reta::{MAX_RETA_SIZE, Reta};
use crate::toeplitz::Toeplitz;
use crate::tuple::{Ipv4Tuple, Ipv6Tuple, V4_DPORT_OFFSET, V6_DPORT_OFFSET};

/// Address family of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: the reply's destination port sits at input bit 80.
    V4,
    /// IPv6: the reply's destination port sits at input bit 272.
    V6,
}

/// An outgoing connection whose local (source) port is still free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outgoing {
    /// IPv4 connection.
    V4 {
        /// Our address (the source of the outgoing packets).
        local: Ipv4Addr,
        /// The peer's address.
        remote: Ipv4Addr,
        /// The peer's port (the destination port of outgoing packets).
        remote_port: u16,
    },
    /// IPv6 connection.
    V6 {
        /// Our address.
        local: Ipv6Addr,
        /// The peer's address.
        remote: Ipv6Addr,
        /// The peer's port.
        remote_port: u16,
    },
}

impl Outgoing {
    /// A connection from `local` to `remote:remote_port`; both addresses must
    /// be of the same family.
    pub fn new(local: IpAddr, remote: IpAddr, remote_port: u16) -> Result<Outgoing, PortError> {
        match (local, remote) {
            (IpAddr::V4(local), IpAddr::V4(remote)) => Ok(Outgoing::V4 { local, remote, remote_port }),
            (IpAddr::V6(local), IpAddr::V6(remote)) => Ok(Outgoing::V6 { local, remote, remote_port }),
            _ => Err(PortError::MixedFamilies),
        }
    }

    /// The family of both addresses.
    pub fn family(&self) -> Family {
        match self {
            Outgoing::V4 { .. } => Family::V4,
            Outgoing::V6 { .. } => Family::V6,
        }
    }
}

/// An inclusive port range `low..=high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    low: u16,
    high: u16,
}

impl PortRange {
    /// Every port, 0 to 65535.
    pub const ALL: PortRange = PortRange { low: 0, high: u16::MAX };

    /// `low..=high`; fails when `low > high`.
    pub fn new(low: u16, high: u16) -> Result<PortRange, PortError> {
        if low > high {
            return Err(PortError::Range { low, high });
        }
        Ok(PortRange { low, high })
    }

    /// Lowest port in the range.
    pub fn low(&self) -> u16 {
        self.low
    }

    /// Highest port in the range.
    pub fn high(&self) -> u16 {
        self.high
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

/// The port-to-index matrix of one family, eliminated.
#[derive(Clone)]
struct PortMatrix {
    /// Full 32-bit hash contributions of the port's high and low byte.
    hi: [u32; 256],
    lo: [u32; 256],
    /// Particular solution for each `n`-bit target, `NONE` if unreachable.
    sol: [u16; MAX_RETA_SIZE],
    reachable: [bool; MAX_RETA_SIZE],
    /// Null-space basis, ascending by leading bit; `null[i]`'s leading bit
    /// is free bit `i` of the coset coordinates.
    null: [u16; 16],
    nulls: u8,
    rank: u8,
    low_rank: u8,
}

impl PortMatrix {
    fn new(toeplitz: &Toeplitz, dport_offset: usize, bits: u32) -> PortMatrix {
        let hi = std::array::from_fn(|v| toeplitz.byte_contribution(dport_offset, v as u8));
        let lo = std::array::from_fn(|v| toeplitz.byte_contribution(dport_offset + 1, v as u8));
        let mask = (1u32 << bits) - 1;
        let col = |j: u32| -> usize {
            let p = 1u16 << j;
            ((hi[usize::from(p >> 8)] ^ lo[usize::from(p & 0xff)]) & mask) as usize
        };
        let mut m = PortMatrix {
            hi,
            lo,
            sol: [0; MAX_RETA_SIZE],
            reachable: [false; MAX_RETA_SIZE],
            null: [0; 16],
            nulls: 0,
            rank: 0,
            low_rank: 0,
        };
        m.reachable[0] = true;
        // The reachable targets so far, in the order they were found.
        let mut found = [0u16; MAX_RETA_SIZE];
        let mut count = 1usize;
        for j in 0..16 {
            let c = col(j);
            if m.reachable[c] {
                // Dependent on lower pivots: a free bit with a null vector.
                m.null[usize::from(m.nulls)] = (1u16 << j) ^ m.sol[c];
                m.nulls += 1;
            } else {
                // New pivot: every reachable target gains a twin.
                for i in 0..count {
                    let y = usize::from(found[i]) ^ c;
                    m.reachable[y] = true;
                    m.sol[y] = m.sol[usize::from(found[i])] | (1u16 << j);
                    found[count + i] = y as u16;
                }
                count *= 2;
                m.rank += 1;
            }
            if j + 1 == bits {
                m.low_rank = m.rank;
            }
        }
        m
    }

    /// The hash contribution of port `p`.
    #[inline]
    fn contribution(&self, p: u16) -> u32 {
        self.hi[usize::from(p >> 8)] ^ self.lo[usize::from(p & 0xff)]
    }

    /// The coset element with coordinates `z`.
    #[inline]
    fn element(&self, p0: u16, z: u32) -> u16 {
        // Branch-free: the coordinates are data, and mispredicted branches
        // would dominate a pick.
        let mut p = p0;
        for (i, &v) in self.null[..usize::from(self.nulls)].iter().enumerate() {
            p ^= v & 0u16.wrapping_sub(((z >> i) & 1) as u16);
        }
        p
    }

    /// The smallest coordinates `z` with `element(p0, z) >= x`, if any.
    /// Elements grow with `z` (see the module doc), so this is a binary
    /// search that sets coordinate bits from the top.
    #[inline]
    fn first_at_least(&self, p0: u16, x: u16) -> Option<u32> {
        if p0 >= x {
            return Some(0);
        }
        // Invariant: element(p0, z) < x.
        let (mut z, mut p) = (0u32, p0);
        for i in (0..u32::from(self.nulls)).rev() {
            let q = p ^ self.null[i as usize];
            let below = q < x;
            z |= u32::from(below) << i;
            p = if below { q } else { p };
        }
        let next = z + 1;
        (next < (1u32 << self.nulls)).then_some(next)
    }
}

/// Per-key, per-RETA state for picking RSS-aware source ports: both families
/// eliminated, and the RETA indices grouped by queue. Build once, then every
/// query is allocation-free.
#[derive(Clone)]
pub struct PortSolver {
    toeplitz: Toeplitz,
    reta: Reta,
    /// RETA indices sorted by (queue, index).
    by_queue: [u16; MAX_RETA_SIZE],
    v4: Box<PortMatrix>,
    v6: Box<PortMatrix>,
}

impl std::fmt::Debug for PortSolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortSolver")
            .field("key", self.toeplitz.key())
            .field("reta_size", &self.reta.size())
            .field("rank_v4", &self.v4.rank)
            .field("rank_v6", &self.v6.rank)
            .finish_non_exhaustive()
    }
}

impl PortSolver {
    /// The one-time setup for `key` and `reta`.
    pub fn new(key: &RssKey, reta: &Reta) -> PortSolver {
        let toeplitz = Toeplitz::new(key);
        let bits = reta.bits();
        let v4 = Box::new(PortMatrix::new(&toeplitz, V4_DPORT_OFFSET, bits));
        let v6 = Box::new(PortMatrix::new(&toeplitz, V6_DPORT_OFFSET, bits));
        let mut by_queue = [0u16; MAX_RETA_SIZE];
        for (i, slot) in by_queue.iter_mut().take(reta.size()).enumerate() {
            *slot = i as u16;
        }
        let entries = reta.entries();
        by_queue[..reta.size()].sort_by_key(|&i| (entries[usize::from(i)], i));
        PortSolver { toeplitz, reta: reta.clone(), by_queue, v4, v6 }
    }

    /// The hasher for this key.
    pub fn toeplitz(&self) -> &Toeplitz {
        &self.toeplitz
    }

    /// The RETA this solver was built for.
    pub fn reta(&self) -> &Reta {
        &self.reta
    }

    /// Rank of the `n × 16` port matrix: `2^rank` RETA indices can be reached
    /// by choosing the port (all of them when it equals `reta().bits()`).
    pub fn rank(&self, family: Family) -> u32 {
        u32::from(self.matrix(family).rank)
    }

    /// Rank using only the `n` low port bits, which is what DPDK's
    /// `rte_thash_get_complement` needs to be `n` (for info and tests).
    pub fn low_bits_rank(&self, family: Family) -> u32 {
        u32::from(self.matrix(family).low_rank)
    }

    /// The queue the reply of `conn` lands on when it uses `local_port`.
    #[inline]
    pub fn reply_queue(&self, conn: &Outgoing, local_port: u16) -> u16 {
        let m = self.matrix(conn.family());
        self.reta.queue(self.reply_base(conn) ^ m.contribution(local_port))
    }

    /// A local port in `range` whose reply lands on `queue`, or `None` if
    /// there is none. `seed` varies the answer (pass a counter or a random
    /// number; each seed gives a deterministic port), so a caller whose
    /// port is busy can ask again with another seed or walk [`Self::ports`].
    pub fn pick(&self, conn: &Outgoing, queue: u16, range: PortRange, seed: u32) -> Option<u16> {
        let m = self.matrix(conn.family());
        let b = self.reply_base(conn) as usize;
        let targets = self.indices_of(queue);
        if targets.is_empty() {
            return None;
        }
        let mask = self.reta.size() - 1;
        let span = u32::from(range.high - range.low) + 1;
        let start_port = range.low + (seed.rotate_left(16) % span) as u16;
        let first = seed as usize % targets.len();
        let (before, after) = targets.split_at(first);
        for &t in after.iter().chain(before) {
            let y = (usize::from(t) ^ b) & mask;
            if !m.reachable[y] {
                continue;
            }
            let p0 = m.sol[y];
            for from in [start_port, range.low] {
                if let Some(z) = m.first_at_least(p0, from) {
                    let p = m.element(p0, z);
                    if p <= range.high {
                        return Some(p);
                    }
                }
            }
        }
        None
    }

    /// Every local port in `range` whose reply lands on `queue`, coset by
    /// coset (ascending within each coset, not overall; sort if you need
    /// order). No allocation.
    pub fn ports(&self, conn: &Outgoing, queue: u16, range: PortRange) -> Ports<'_> {
        Ports {
            matrix: self.matrix(conn.family()),
            targets: self.indices_of(queue),
            base: self.reply_base(conn) as usize,
            mask: self.reta.size() - 1,
            range,
            next_target: 0,
            coset: None,
        }
    }

    /// Checks that `queue` appears in the RETA.
    pub fn check_queue(&self, queue: u16) -> Result<(), PortError> {
        if self.indices_of(queue).is_empty() {
            Err(PortError::QueueNotInReta { queue, max: self.reta.max_queue() })
        } else {
            Ok(())
        }
    }

    fn matrix(&self, family: Family) -> &PortMatrix {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// RETA indices whose entry is `queue`, ascending.
    fn indices_of(&self, queue: u16) -> &[u16] {
        let sorted = &self.by_queue[..self.reta.size()];
        let entries = self.reta.entries();
        let lo = sorted.partition_point(|&i| entries[usize::from(i)] < queue);
        let hi = sorted.partition_point(|&i| entries[usize::from(i)] <= queue);
        &sorted[lo..hi]
    }

    /// The reply's hash with local port 0.
    #[inline]
    fn reply_base(&self, conn: &Outgoing) -> u32 {
        match *conn {
            Outgoing::V4 { local, remote, remote_port } => {
                self.toeplitz.hash_v4(&Ipv4Tuple::new(remote, local, remote_port, 0))
            }
            Outgoing::V6 { local, remote, remote_port } => {
                self.toeplitz.hash_v6(&Ipv6Tuple::new(remote, local, remote_port, 0))
            }
        }
    }
}

/// Iterator over the ports of [`PortSolver::ports`].
#[derive(Debug, Clone)]
pub struct Ports<'a> {
    matrix: &'a PortMatrix,
    targets: &'a [u16],
    base: usize,
    mask: usize,
    range: PortRange,
    next_target: usize,
    /// Current coset: its particular solution and next coordinates.
    coset: Option<(u16, u32)>,
}

impl std::fmt::Debug for PortMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortMatrix")
            .field("rank", &self.rank)
            .field("null", &&self.null[..usize::from(self.nulls)])
            .finish_non_exhaustive()
    }
}

impl Iterator for Ports<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        let m = self.matrix;
        loop {
            if let Some((p0, z)) = self.coset {
                if z < (1u32 << m.nulls) {
                    let p = m.element(p0, z);
                    if p <= self.range.high {
                        self.coset = Some((p0, z + 1));
                        return Some(p);
                    }
                }
                self.coset = None;
            }
            let &t = self.targets.get(self.next_target)?;
            self.next_target += 1;
            let y = (usize::from(t) ^ self.base) & self.mask;
            if m.reachable[y] {
                let p0 = m.sol[y];
                self.coset = m.first_at_least(p0, self.range.low).map(|z| (p0, z));
            }
        }
    }
}
