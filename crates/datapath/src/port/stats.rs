//! Per-port counters: packets and bytes each way, drops by reason.

/// Why a port dropped a packet. Counted in [`DropCounters`], never logged
/// per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The buffer pool was empty when a packet arrived.
    NoBuffer,
    /// The kernel or the peer dropped it because our receive ring was full.
    RxRingFull,
    /// The transmit ring or queue was full.
    TxRingFull,
    /// Longer than the port's `max_frame`.
    Oversize,
    /// Shorter than an Ethernet header.
    Runt,
    /// Received cut short (the ring slot or buffer was smaller than the frame).
    Truncated,
    /// Port metadata around the frame was invalid (a bad virtio-net header).
    Malformed,
    /// The link was down.
    LinkDown,
    /// The port was closed (its device deleted).
    PortClosed,
    /// The operating system refused to send it for another reason.
    TxError,
    /// A [`FaultInjector`](super::FaultInjector) dropped it on purpose.
    Injected,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 11] = [
        DropReason::NoBuffer,
        DropReason::RxRingFull,
        DropReason::TxRingFull,
        DropReason::Oversize,
        DropReason::Runt,
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::LinkDown,
        DropReason::PortClosed,
        DropReason::TxError,
        DropReason::Injected,
    ];

    /// A short snake_case name for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoBuffer => "no_buffer",
            DropReason::RxRingFull => "rx_ring_full",
            DropReason::TxRingFull => "tx_ring_full",
            DropReason::Oversize => "oversize",
            DropReason::Runt => "runt",
            DropReason::Truncated => "truncated",
            DropReason::Malformed => "malformed",
            DropReason::LinkDown => "link_down",
            DropReason::PortClosed => "port_closed",
            DropReason::TxError => "tx_error",
            DropReason::Injected => "injected",
        }
    }

    #[inline]
    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One counter per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    /// Counts `n` drops for `reason`.
    #[inline]
    pub fn add(&mut self, reason: DropReason, n: u64) {
        let c = &mut self.0[reason.index()];
        *c = c.wrapping_add(n);
    }

    /// Drops counted for `reason`.
    #[inline]
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.get(*r)))
    }

    /// Adds every counter of `other` to this one.
    pub fn merge(&mut self, other: &DropCounters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
}

/// A port's counters. Packets dropped by the port are in `drops`, not in the
/// rx/tx counts: `rx_packets` counts what was handed to the caller,
/// `tx_packets` what was handed to the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received and handed over.
    pub rx_packets: u64,
    /// Their bytes (Ethernet header included, FCS not).
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Drops by reason, both directions.
    pub drops: DropCounters,
}

impl PortStats {
    /// Counts one received packet of `bytes` bytes.
    #[inline]
    pub fn count_rx(&mut self, bytes: usize) {
        self.rx_packets = self.rx_packets.wrapping_add(1);
        self.rx_bytes = self.rx_bytes.wrapping_add(bytes as u64);
    }

    /// Counts one sent packet of `bytes` bytes.
    #[inline]
    pub fn count_tx(&mut self, bytes: usize) {
        self.tx_packets = self.tx_packets.wrapping_add(1);
        self.tx_bytes = self.tx_bytes.wrapping_add(bytes as u64);
    }

    /// Counts `n` drops for `reason`.
    #[inline]
    pub fn count_drop(&mut self, reason: DropReason, n: u64) {
        self.drops.add(reason, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_indexed_by_reason() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut d = DropCounters::default();
        d.add(DropReason::Oversize, 3);
        d.add(DropReason::Injected, 2);
        assert_eq!(d.get(DropReason::Oversize), 3);
        assert_eq!(d.total(), 5);
        let mut e = d;
        e.merge(&d);
        assert_eq!(e.get(DropReason::Injected), 4);
    }
}
