//! TAP ports: `/dev/net/tun` queues with virtio-net headers.
//!
//! Each queue is one file descriptor from `/dev/net/tun` attached with
//! `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE`, so a port may
//! have several queues (one per datapath thread), and frames carry the
//! 10-byte `virtio_net_hdr` a VM's virtio-net device would see.
//!
//! Offloads are turned off (`TUNSETOFFLOAD 0`): the kernel then segments
//! GSO frames and completes partial checksums *before* handing frames to us,
//! so every received header says "nothing to do" and is stripped; on
//! transmit we write an all-zero header (no GSO, checksum complete), which is
//! correct for every frame the switch produces. Accepting GSO/partial
//! checksums (fewer, larger frames) would need a `PacketBuf` that carries
//! offload metadata; see the crate report.
//!
//! There is no batched read or write for a TAP queue: receive is one
//! `read(2)` per frame until it would block, transmit one `writev(2)` per
//! frame.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use sluice_datapath::{DropReason, PacketBatch, Port, PortCapabilities, PortError, PortStats};
use sluice_packet::BufferPool;

use crate::error::OpenError;
use crate::sys;

/// Size of `struct virtio_net_hdr` (without `num_buffers`).
const VNET_HDR_LEN: usize = 10;
/// A header that asks for nothing: no GSO, checksum complete.
const ZERO_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`.
const GSO_NONE: u8 = 0;

/// Options of a [`TapPort`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapConfig {
    /// Queues to attach: 1 to 256.
    pub queues: usize,
}

impl Default for TapConfig {
    /// One queue.
    fn default() -> TapConfig {
        TapConfig { queues: 1 }
    }
}

/// A port on a TAP device.
///
/// The device may exist already (persistent, as `ip tuntap add … multi_queue
/// vnet_hdr` makes it) or is created by opening it and disappears when the
/// last queue closes. Deleting the device makes the port return
/// [`PortError::Closed`].
#[derive(Debug)]
pub struct TapPort {
    name: String,
    queues: Vec<OwnedFd>,
    caps: PortCapabilities,
    stats: PortStats,
    closed: bool,
}

impl TapPort {
    /// Opens (or creates) TAP device `name` with one queue, in the calling
    /// thread's network namespace.
    pub fn open(name: &str) -> Result<TapPort, OpenError> {
        TapPort::with_config(name, TapConfig::default())
    }

    /// Opens TAP device `name` with `config.queues` queues.
    pub fn with_config(name: &str, config: TapConfig) -> Result<TapPort, OpenError> {
        if !(1..=256).contains(&config.queues) {
            return Err(OpenError::Config {
                name: name.to_string(),
                why: format!("{} queues requested; a TAP device has 1 to 256", config.queues),
            });
        }
        let flags = sys::IFF_TAP | sys::IFF_NO_PI | sys::IFF_VNET_HDR | sys::IFF_MULTI_QUEUE;
        let mut queues = Vec::with_capacity(config.queues);
        for _ in 0..config.queues {
            let fd = sys::open_tap_queue(name, flags).map_err(OpenError::setup("attach a TAP queue", name))?;
            sys::tap_set_vnet_hdr_size(fd.as_fd(), VNET_HDR_LEN as libc::c_int)
                .map_err(OpenError::setup("set the virtio-net header size", name))?;
            sys::tap_set_offload(fd.as_fd(), 0).map_err(OpenError::setup("turn TAP offloads off", name))?;
            queues.push(fd);
        }
        let mtu = sys::interface_mtu(name).map_err(OpenError::setup("read the MTU", name))? as usize;
        let caps =
            PortCapabilities { rx_queues: config.queues, tx_queues: config.queues, ..PortCapabilities::ethernet(mtu) };
        Ok(TapPort { name: name.to_string(), queues, caps, stats: PortStats::default(), closed: false })
    }

    /// True once the port found its device gone.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn queue(&self, queue: usize) -> Result<BorrowedFd<'_>, PortError> {
        self.queues.get(queue).map(|q| q.as_fd()).ok_or_else(|| PortError::NoSuchQueue {
            port: self.name.clone(),
            queue,
            queues: self.queues.len(),
        })
    }

    fn closed_error(&self) -> PortError {
        PortError::Closed { port: self.name.clone(), why: "its TAP device was deleted" }
    }

    /// Maps an errno from a queue to "closed" or an I/O error.
    fn fail(&mut self, op: &'static str, e: std::io::Error) -> PortError {
        if matches!(e.raw_os_error(), Some(libc::EBADFD) | Some(libc::ENXIO) | Some(libc::ENODEV)) {
            self.closed = true;
            return self.closed_error();
        }
        PortError::Io { port: self.name.clone(), op, source: e }
    }
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> PortCapabilities {
        self.caps
    }

    fn rx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        self.queue(queue)?;
        if self.closed {
            return Err(self.closed_error());
        }
        let mut got = 0;
        while !batch.is_full() {
            let Some(mut buf) = pool.get() else {
                // Leave frames in the kernel's queue; when it overflows the
                // kernel drops and counts them (the TAP's tx_dropped).
                break;
            };
            let n = match sys::read(self.queues[queue].as_fd(), buf.spare_mut()) {
                Ok(n) => n,
                Err(e) => {
                    pool.put(buf);
                    if would_block(&e) {
                        break;
                    }
                    if matches!(e.raw_os_error(), Some(libc::EFAULT) | Some(libc::EINVAL)) {
                        // The frame did not fit the buffer; the kernel dropped it.
                        self.stats.count_drop(DropReason::Oversize, 1);
                        continue;
                    }
                    return Err(self.fail("receive", e));
                }
            };
            let ok = n >= VNET_HDR_LEN + 14 && buf.set_len(n).is_ok() && {
                let hdr = &buf.as_slice()[..VNET_HDR_LEN];
                // With offloads off the kernel never asks for GSO or a
                // checksum; a header that does is not one we can honour.
                hdr[1] == GSO_NONE && hdr[0] & F_NEEDS_CSUM == 0
            };
            if !ok {
                let reason = if n < VNET_HDR_LEN + 14 { DropReason::Runt } else { DropReason::Malformed };
                self.stats.count_drop(reason, 1);
                pool.put(buf);
                continue;
            }
            if n >= buf.capacity() - buf.headroom() {
                // Filled the buffer: the frame may have been cut.
                self.stats.count_drop(DropReason::Oversize, 1);
                pool.put(buf);
                continue;
            }
            // Cannot fail: n >= VNET_HDR_LEN was checked.
            let _ = buf.pull_front(VNET_HDR_LEN);
            self.stats.count_rx(buf.len());
            if let Err(buf) = batch.push(buf) {
                pool.put(buf);
            }
            got += 1;
        }
        Ok(got)
    }

    fn tx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        let queue_ok = self.queue(queue).map(|_| ());
        crate::error::refuse_tx(queue_ok, self.closed.then(|| self.closed_error()), &mut self.stats, pool, batch)?;
        let mut sent = 0;
        let mut result = Ok(());
        let total = batch.len();
        for (i, buf) in batch.as_slice().iter().enumerate() {
            let len = buf.len();
            if len > self.caps.max_frame {
                self.stats.count_drop(DropReason::Oversize, 1);
                continue;
            }
            if len < 14 {
                self.stats.count_drop(DropReason::Runt, 1);
                continue;
            }
            match sys::write2(self.queues[queue].as_fd(), &ZERO_HDR, buf.as_slice()) {
                Ok(_) => {
                    self.stats.count_tx(len);
                    sent += 1;
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => self.stats.count_drop(DropReason::TxRingFull, 1),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    // The device is down (no carrier to the kernel side).
                    self.stats.count_drop(DropReason::LinkDown, 1);
                }
                Err(e) => {
                    let err = self.fail("transmit", e);
                    let reason = if matches!(err, PortError::Closed { .. }) {
                        DropReason::PortClosed
                    } else {
                        DropReason::TxError
                    };
                    self.stats.count_drop(reason, (total - i) as u64);
                    result = Err(err);
                    break;
                }
            }
        }
        batch.recycle(pool);
        result.map(|()| sent)
    }

    fn poll_fd(&self, queue: usize) -> Option<BorrowedFd<'_>> {
        self.queues.get(queue).map(|q| q.as_fd())
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}
