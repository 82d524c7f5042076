//! The port abstraction: one trait, a few value types, and wrappers that
//! are just more ports.
//!
//! Modelled on smoltcp's `phy::Device`: a port says what it can do
//! ([`PortCapabilities`]), moves packets in batches, and counts what it
//! drops ([`PortStats`], [`DropReason`]) instead of logging per packet. A
//! pcap writer ([`PcapPort`]) and a fault injector ([`FaultInjector`]) wrap
//! any port and are ports themselves, so they stack.
//!
//! Buffers come from a per-thread [`BufferPool`]: receive takes empty buffers
//! from it (or hands over a buffer another port transmitted, for memory
//! rings), transmit gives every buffer back, whether the packet was sent or
//! dropped. Batches have a fixed capacity ([`PacketBatch`]), so moving
//! packets allocates nothing.

mod batch;
mod fault;
mod pcap;
mod stats;
#[cfg(test)]
mod testing;

use std::os::fd::BorrowedFd;

use sluice_packet::BufferPool;

pub use batch::{MAX_BATCH, PacketBatch};
pub use fault::{FaultConfig, FaultConfigError, FaultInjector, FaultStats};
pub use pcap::{PcapOpenError, PcapPort};
pub use stats::{DropCounters, DropReason, PortStats};

/// A packet port: a NIC queue set, a socket, a TAP, a memory ring.
///
/// One datapath thread owns a port (`&mut self`); ports are `Send` so the
/// owning thread can be chosen after they are opened.
///
/// When to call what:
/// - [`rx_batch`](Port::rx_batch) whenever the thread polls; `Ok(0)` means
///   nothing is waiting. After a few empty rounds the thread sleeps in
///   `poll(2)` on [`poll_fd`](Port::poll_fd) (readable = packets waiting).
/// - [`tx_batch`](Port::tx_batch) with what the pipeline decided to send.
/// - [`PortError::Closed`] from either means the port is gone for good (its
///   device was deleted): stop polling it and carry on with the others.
pub trait Port: Send {
    /// The port's name (the interface name for kernel-backed ports).
    fn name(&self) -> &str;

    /// What the port can do.
    fn capabilities(&self) -> PortCapabilities;

    /// Receives up to [`PacketBatch::remaining`] packets from rx queue
    /// `queue` into `batch`, taking empty buffers from `pool`, and returns
    /// how many it appended. When the pool runs dry the port drops what it
    /// cannot store and counts [`DropReason::NoBuffer`].
    fn rx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError>;

    /// Transmits every packet in `batch` on tx queue `queue`, emptying the
    /// batch and returning each buffer to `pool` (or, for memory rings,
    /// handing it to the peer). Returns how many packets were sent; the
    /// others were dropped and counted by reason.
    fn tx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError>;

    /// A file descriptor that polls readable when rx queue `queue` has
    /// packets (and reports an error when the port is closed), for sleeping
    /// when idle. `None` when the port cannot be waited on (busy-poll it).
    fn poll_fd(&self, queue: usize) -> Option<BorrowedFd<'_>>;

    /// A snapshot of the port's counters. Kernel-backed ports add the
    /// kernel's own drop counters here, which may cost a syscall: call it
    /// from the control path, not per batch.
    fn stats(&self) -> PortStats;
}

impl<P: Port + ?Sized> Port for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> PortCapabilities {
        (**self).capabilities()
    }
    fn rx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        (**self).rx_batch(queue, pool, batch)
    }
    fn tx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        (**self).tx_batch(queue, pool, batch)
    }
    fn poll_fd(&self, queue: usize) -> Option<BorrowedFd<'_>> {
        (**self).poll_fd(queue)
    }
    fn stats(&self) -> PortStats {
        (**self).stats()
    }
}

/// What a port can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortCapabilities {
    /// The link MTU: the largest L3 packet, Ethernet header not included.
    pub mtu: usize,
    /// The largest frame the port receives or sends whole (Ethernet header
    /// and one VLAN tag included). Longer frames are dropped as
    /// [`DropReason::Oversize`].
    pub max_frame: usize,
    /// Number of rx queues (valid `queue` arguments are `0..rx_queues`).
    pub rx_queues: usize,
    /// Number of tx queues.
    pub tx_queues: usize,
    /// Checksum and segmentation offloads.
    pub offloads: Offloads,
}

impl PortCapabilities {
    /// Capabilities of a plain Ethernet port with one queue each way and no
    /// offloads: `max_frame` is `mtu` plus an Ethernet header and a VLAN tag.
    pub fn ethernet(mtu: usize) -> PortCapabilities {
        PortCapabilities { mtu, max_frame: mtu + 18, rx_queues: 1, tx_queues: 1, offloads: Offloads::default() }
    }
}

/// Offload flags. All false means: received frames carry complete
/// checksums and are at most `max_frame` long, and frames to send must too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Received frames may say their L4 checksum is already verified.
    pub rx_checksum: bool,
    /// The port completes partial L4 checksums on transmit.
    pub tx_checksum: bool,
    /// The port segments large TCP frames on transmit (TSO).
    pub tso: bool,
    /// Received frames may be coalesced TCP segments (LRO/GRO).
    pub lro: bool,
}

/// Why a port operation failed as a whole (single packets are dropped and
/// counted instead, see [`DropReason`]).
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The port's device is gone; the port will never work again.
    #[error("port {port} is closed: {why}")]
    Closed {
        /// The port.
        port: String,
        /// What happened, as a phrase ("its device was deleted").
        why: &'static str,
    },
    /// A queue number out of range.
    #[error("port {port} has no queue {queue} (it has {queues})")]
    NoSuchQueue {
        /// The port.
        port: String,
        /// The queue asked for.
        queue: usize,
        /// How many it has.
        queues: usize,
    },
    /// An unexpected error from the operating system.
    #[error("could not {op} on port {port}: {source}")]
    Io {
        /// The port.
        port: String,
        /// What was being done ("receive", "transmit").
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
}
