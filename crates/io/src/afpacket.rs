//! AF_PACKET ports: a TPACKET_V3 receive ring and `sendmmsg` transmit.
//!
//! Receive: the kernel fills fixed-size *blocks* of a shared ring with
//! variable-length frames and hands a block to user space when it is full or
//! its retire timer (`retire_timeout_ms`) fires. That makes receive cheap
//! (one status check per block, no syscall) at the price of up to one timer
//! period of latency at low rates.
//!
//! Transmit uses `sendmmsg(2)`, one syscall per batch, not a TX ring. Both
//! copy each frame once (the ring from our buffer into the ring, sendmmsg
//! from our buffer into the skb), and a TPACKET_V3 TX ring is frame-based
//! anyway; sendmmsg needs no ring-slot status tracking, tells us how many
//! frames the kernel took and why it refused the next one (so every drop is
//! counted by reason), and leaves no half-sent frames in a shared ring when
//! the device disappears. `PACKET_QDISC_BYPASS` (on by default) sends
//! straight to the driver: a software switch queues in its own rings, and
//! veth has no qdisc to benefit from.
//!
//! The socket ignores outgoing frames (`PACKET_IGNORE_OUTGOING`), so what
//! the switch sends on a port never comes back in on it.
//!
//! Offloads: frames the local stack sent through a checksum-offloading
//! device arrive with a partial checksum (`TP_STATUS_CSUMNOTREADY`); the port
//! finishes it in software (see `csum`). GSO super-frames (a TSO sender on
//! the other side of a veth) are larger than a pool buffer and are dropped
//! as [`DropReason::Oversize`]: turn TSO/GSO off on the peer
//! (`ethtool -K peer tso off gso off`). VLAN tags the kernel moved into the
//! ring header are put back into the frame.

use std::cell::Cell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use sluice_datapath::{DropReason, PacketBatch, Port, PortCapabilities, PortError, PortStats};
use sluice_packet::{BufferPool, PacketBuf};

use crate::error::OpenError;
use crate::sys;

/// How often (in empty receive polls) the port asks the kernel whether its
/// device still exists.
const CHECK_EVERY: u32 = 64;
/// The page size the ring's block size must be a multiple of.
const PAGE: usize = 4096;
/// The nominal frame slot; TPACKET_V3 packs frames of any length into
/// blocks, this only has to be a valid slot size.
const FRAME_SIZE: usize = 2048;

/// Ring and socket options of an [`AfPacketPort`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Bytes per ring block: a multiple of 4096, at least 4096.
    pub block_size: usize,
    /// Blocks in the ring: at least 2.
    pub block_count: usize,
    /// Milliseconds after which the kernel hands over a partly filled
    /// block: the receive latency at low rates. At least 1.
    pub retire_timeout_ms: u32,
    /// Send straight to the driver, skipping the qdisc layer.
    pub qdisc_bypass: bool,
    /// Put the interface in promiscuous mode (a switch port must be).
    pub promiscuous: bool,
}

impl Default for AfPacketConfig {
    /// 32 blocks of 128 KiB (4 MiB, about 30k minimum-size frames), 1 ms
    /// retire timeout, qdisc bypass and promiscuous mode on.
    fn default() -> AfPacketConfig {
        AfPacketConfig {
            block_size: 128 * 1024,
            block_count: 32,
            retire_timeout_ms: 1,
            qdisc_bypass: true,
            promiscuous: true,
        }
    }
}

/// A port on a kernel network interface through an AF_PACKET socket.
///
/// Open it in the network namespace of the interface (the socket stays in
/// that namespace, whichever thread uses it later). Deleting the interface
/// makes [`rx_batch`](Port::rx_batch) and [`tx_batch`](Port::tx_batch)
/// return [`PortError::Closed`] (after frames already in the ring are
/// delivered); a link that is merely down drops transmitted frames as
/// [`DropReason::LinkDown`].
#[derive(Debug)]
pub struct AfPacketPort {
    name: String,
    fd: OwnedFd,
    ring: sys::Mmap,
    block_size: usize,
    block_count: usize,
    /// The block being read, or next to become ready.
    block: usize,
    /// Frames left to read in `block` (0: not yet taken from the kernel).
    left: u32,
    /// Offset of the next frame header within `block`.
    offset: usize,
    caps: PortCapabilities,
    stats: PortStats,
    /// Frames the kernel dropped because the ring was full, so far.
    kernel_drops: Cell<u64>,
    empty_polls: u32,
    closed: bool,
}

impl AfPacketPort {
    /// Opens interface `name` (in the calling thread's network namespace)
    /// with the default configuration.
    pub fn open(name: &str) -> Result<AfPacketPort, OpenError> {
        AfPacketPort::with_config(name, AfPacketConfig::default())
    }

    /// Opens interface `name` with `config`.
    pub fn with_config(name: &str, config: AfPacketConfig) -> Result<AfPacketPort, OpenError> {
        let invalid = |why: String| OpenError::Config { name: name.to_string(), why };
        if config.block_size < PAGE || !config.block_size.is_multiple_of(PAGE) || config.block_size > (1 << 30) {
            return Err(invalid(format!(
                "block size {} must be a multiple of {PAGE} between {PAGE} and 1 GiB",
                config.block_size
            )));
        }
        if !(2..=65536).contains(&config.block_count) {
            return Err(invalid(format!("block count {} must be between 2 and 65536", config.block_count)));
        }
        if !(1..=60_000).contains(&config.retire_timeout_ms) {
            return Err(invalid(format!(
                "retire timeout of {} ms must be between 1 and 60000 ms",
                config.retire_timeout_ms
            )));
        }
        let ring_len = config.block_size * config.block_count;

        let ifindex = sys::if_nametoindex(name).map_err(OpenError::setup("find the interface", name))?;
        let mtu = sys::interface_mtu(name).map_err(OpenError::setup("read the MTU", name))?;
        let fd = sys::packet_socket().map_err(OpenError::setup("open an AF_PACKET socket", name))?;
        let one: libc::c_int = 1;
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, sys::PACKET_VERSION, &sys::TPACKET_V3)
            .map_err(OpenError::setup("select TPACKET_V3", name))?;
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, sys::PACKET_IGNORE_OUTGOING, &one)
            .map_err(OpenError::setup("ignore outgoing frames (PACKET_IGNORE_OUTGOING)", name))?;
        if config.qdisc_bypass {
            sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, sys::PACKET_QDISC_BYPASS, &one)
                .map_err(OpenError::setup("enable PACKET_QDISC_BYPASS", name))?;
        }
        // Values checked above: these fit in u32.
        let req = sys::TpacketReq3 {
            block_size: config.block_size as u32,
            block_nr: config.block_count as u32,
            frame_size: FRAME_SIZE as u32,
            frame_nr: (ring_len / FRAME_SIZE) as u32,
            retire_blk_tov: config.retire_timeout_ms,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, sys::PACKET_RX_RING, &req)
            .map_err(OpenError::setup("set up the TPACKET_V3 receive ring", name))?;
        let ring = sys::Mmap::shared(fd.as_fd(), ring_len).map_err(OpenError::setup("map the receive ring", name))?;
        sys::bind_packet(fd.as_fd(), ifindex).map_err(OpenError::setup("bind the AF_PACKET socket", name))?;
        if config.promiscuous {
            let mreq = sys::PacketMreq {
                ifindex: ifindex as libc::c_int,
                kind: sys::PACKET_MR_PROMISC,
                alen: 0,
                address: [0; 8],
            };
            sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, sys::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(OpenError::setup("enable promiscuous mode", name))?;
        }
        let mtu = mtu as usize;
        Ok(AfPacketPort {
            name: name.to_string(),
            fd,
            ring,
            block_size: config.block_size,
            block_count: config.block_count,
            block: 0,
            left: 0,
            offset: 0,
            caps: PortCapabilities::ethernet(mtu),
            stats: PortStats::default(),
            kernel_drops: Cell::new(0),
            empty_polls: 0,
            closed: false,
        })
    }

    /// True once the port found its device gone.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn closed_error(&self) -> PortError {
        PortError::Closed { port: self.name.clone(), why: "its interface was deleted" }
    }

    /// Asks the kernel whether the device is still there, and clears a
    /// pending socket error (a link-down ENETDOWN) so that `poll` does not
    /// keep waking up for it.
    fn check_device(&mut self) -> Result<(), PortError> {
        let io = |source| PortError::Io { port: self.name.clone(), op: "query the socket", source };
        let ifindex = sys::bound_ifindex(self.fd.as_fd()).map_err(io)?;
        if ifindex < 0 {
            self.closed = true;
            return Err(self.closed_error());
        }
        let _ = sys::take_socket_error(self.fd.as_fd());
        Ok(())
    }

    fn status_offset(&self) -> usize {
        // tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1
        // whose first field is block_status.
        self.block * self.block_size + 8
    }

    /// Hands the current block back to the kernel and moves to the next.
    fn release_block(&mut self) {
        if let Some(w) = self.ring.word(self.status_offset()) {
            w.store(sys::TP_STATUS_KERNEL, Ordering::Release);
        }
        self.block = (self.block + 1) % self.block_count;
        self.left = 0;
    }

    fn accept(&mut self, hdr: FrameHeader, pool: &mut BufferPool, batch: &mut PacketBatch) {
        let start = self.block * self.block_size;
        let vlan = hdr.status & sys::TP_STATUS_VLAN_VALID != 0;
        let extra = if vlan { 4 } else { 0 };
        let snap = hdr.snaplen as usize;
        let reason = if snap < hdr.len as usize {
            Some(DropReason::Truncated)
        } else if snap < 14 {
            Some(DropReason::Runt)
        } else if snap + extra > self.caps.max_frame {
            Some(DropReason::Oversize)
        } else {
            None
        };
        if let Some(r) = reason {
            self.stats.count_drop(r, 1);
            return;
        }
        let Some(data) = self.ring.bytes(start + self.offset + hdr.mac as usize, snap) else {
            self.stats.count_drop(DropReason::Malformed, 1);
            return;
        };
        let Some(mut buf) = pool.get() else {
            self.stats.count_drop(DropReason::NoBuffer, 1);
            return;
        };
        if !copy_frame(&mut buf, data, vlan.then(|| hdr.vlan(sys::TP_STATUS_VLAN_TPID_VALID))) {
            self.stats.count_drop(DropReason::Oversize, 1);
            pool.put(buf);
            return;
        }
        if hdr.status & sys::TP_STATUS_CSUMNOTREADY != 0 {
            crate::csum::complete_partial(buf.as_mut_slice());
        }
        self.stats.count_rx(buf.len());
        if let Err(buf) = batch.push(buf) {
            // The caller checked for room; keep the pool whole regardless.
            self.stats.count_drop(DropReason::NoBuffer, 1);
            pool.put(buf);
        }
    }
}

/// The fields of a `tpacket3_hdr` the port uses.
#[derive(Debug, Clone, Copy)]
struct FrameHeader {
    next_offset: u32,
    snaplen: u32,
    len: u32,
    status: u32,
    mac: u16,
    vlan_tci: u32,
    vlan_tpid: u16,
}

impl FrameHeader {
    /// Size of `struct tpacket3_hdr`.
    const SIZE: usize = 48;

    fn parse(b: &[u8]) -> Option<FrameHeader> {
        let u32_at = |o: usize| Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?));
        let u16_at = |o: usize| Some(u16::from_ne_bytes(b.get(o..o + 2)?.try_into().ok()?));
        Some(FrameHeader {
            next_offset: u32_at(0)?,
            snaplen: u32_at(12)?,
            len: u32_at(16)?,
            status: u32_at(20)?,
            mac: u16_at(24)?,
            vlan_tci: u32_at(32)?,
            vlan_tpid: u16_at(36)?,
        })
    }

    /// The 802.1Q tag to put back: TPID (0x8100 unless the kernel says) and TCI.
    fn vlan(&self, tpid_valid: u32) -> [u8; 4] {
        let tpid = if self.status & tpid_valid != 0 && self.vlan_tpid != 0 { self.vlan_tpid } else { 0x8100 };
        let tci = (self.vlan_tci & 0xffff) as u16;
        let mut tag = [0u8; 4];
        tag[..2].copy_from_slice(&tpid.to_be_bytes());
        tag[2..].copy_from_slice(&tci.to_be_bytes());
        tag
    }
}

/// Copies `data` into `buf`, inserting `tag` after the MAC addresses.
/// False when it does not fit.
fn copy_frame(buf: &mut PacketBuf, data: &[u8], tag: Option<[u8; 4]>) -> bool {
    let total = data.len() + if tag.is_some() { 4 } else { 0 };
    let spare = buf.spare_mut();
    if spare.len() < total || data.len() < 12 {
        return false;
    }
    match tag {
        None => spare[..total].copy_from_slice(data),
        Some(tag) => {
            spare[..12].copy_from_slice(&data[..12]);
            spare[12..16].copy_from_slice(&tag);
            spare[16..total].copy_from_slice(&data[12..]);
        }
    }
    buf.set_len(total).is_ok()
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> PortCapabilities {
        self.caps
    }

    fn rx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        if queue != 0 {
            return Err(PortError::NoSuchQueue { port: self.name.clone(), queue, queues: 1 });
        }
        let before = batch.len();
        while !batch.is_full() {
            if self.left == 0 {
                let Some(status) = self.ring.word(self.status_offset()) else { break };
                if status.load(Ordering::Acquire) & sys::TP_STATUS_USER == 0 {
                    break;
                }
                let base = self.block * self.block_size;
                let desc = self.ring.bytes(base, 24).map(|d| {
                    let num = u32::from_ne_bytes([d[12], d[13], d[14], d[15]]);
                    let first = u32::from_ne_bytes([d[16], d[17], d[18], d[19]]);
                    (num, first as usize)
                });
                match desc {
                    Some((num, first)) if num > 0 && first < self.block_size => {
                        self.left = num;
                        self.offset = first;
                    }
                    _ => {
                        self.release_block();
                        continue;
                    }
                }
            }
            let base = self.block * self.block_size;
            let hdr = self
                .ring
                .bytes(base + self.offset, FrameHeader::SIZE.min(self.block_size - self.offset))
                .and_then(FrameHeader::parse);
            let Some(hdr) = hdr else {
                // A header that does not fit the block: give the rest of the
                // block up rather than read past it.
                self.stats.count_drop(DropReason::Malformed, u64::from(self.left));
                self.release_block();
                continue;
            };
            self.accept(hdr, pool, batch);
            self.left -= 1;
            let next = self.offset + hdr.next_offset as usize;
            if self.left == 0 {
                self.release_block();
            } else if hdr.next_offset == 0 || next >= self.block_size {
                self.stats.count_drop(DropReason::Malformed, u64::from(self.left));
                self.release_block();
            } else {
                self.offset = next;
            }
        }
        let got = batch.len() - before;
        if got == 0 {
            if self.closed {
                return Err(self.closed_error());
            }
            self.empty_polls = self.empty_polls.wrapping_add(1);
            if self.empty_polls % CHECK_EVERY == 1 {
                self.check_device()?;
            }
        } else {
            self.empty_polls = 0;
        }
        Ok(got)
    }

    fn tx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        let queue_ok =
            if queue == 0 { Ok(()) } else { Err(PortError::NoSuchQueue { port: self.name.clone(), queue, queues: 1 }) };
        crate::error::refuse_tx(queue_ok, self.closed.then(|| self.closed_error()), &mut self.stats, pool, batch)?;
        let mut result = Ok(0);
        let mut sent_total = 0;
        let mut frames: [&[u8]; sys::SEND_BATCH] = [&[]; sys::SEND_BATCH];
        let bufs = batch.as_slice();
        let mut next = 0;
        'outer: while next < bufs.len() {
            // Gather up to SEND_BATCH sendable frames.
            let mut n = 0;
            while next < bufs.len() && n < sys::SEND_BATCH {
                let len = bufs[next].len();
                next += 1;
                if len > self.caps.max_frame {
                    self.stats.count_drop(DropReason::Oversize, 1);
                } else if len < 14 {
                    self.stats.count_drop(DropReason::Runt, 1);
                } else {
                    frames[n] = bufs[next - 1].as_slice();
                    n += 1;
                }
            }
            let mut i = 0;
            while i < n {
                match sys::send_frames(self.fd.as_fd(), &frames[i..n]) {
                    Ok(0) => {
                        self.stats.count_drop(DropReason::TxError, (n - i) as u64);
                        break;
                    }
                    Ok(k) => {
                        for f in &frames[i..i + k] {
                            self.stats.count_tx(f.len());
                        }
                        sent_total += k;
                        i += k;
                    }
                    Err(e) => {
                        let left = (n - i) as u64;
                        match e.raw_os_error().unwrap_or(0) {
                            libc::EINTR => {}
                            libc::EMSGSIZE => {
                                self.stats.count_drop(DropReason::Oversize, 1);
                                i += 1;
                            }
                            libc::EAGAIN | libc::ENOBUFS => {
                                self.stats.count_drop(DropReason::TxRingFull, left);
                                break;
                            }
                            libc::ENETDOWN => {
                                self.stats.count_drop(DropReason::LinkDown, left);
                                break;
                            }
                            libc::ENXIO | libc::ENODEV => {
                                // The device went away (the socket was unbound).
                                let rest = left + bufs[next..].len() as u64;
                                result = match self.check_device() {
                                    Err(closed) => {
                                        self.stats.count_drop(DropReason::PortClosed, rest);
                                        Err(closed)
                                    }
                                    Ok(()) => {
                                        self.stats.count_drop(DropReason::TxError, rest);
                                        Err(PortError::Io { port: self.name.clone(), op: "transmit", source: e })
                                    }
                                };
                                break 'outer;
                            }
                            _ => {
                                let rest = left + bufs[next..].len() as u64;
                                self.stats.count_drop(DropReason::TxError, rest);
                                result = Err(PortError::Io { port: self.name.clone(), op: "transmit", source: e });
                                break 'outer;
                            }
                        }
                    }
                }
            }
        }
        batch.recycle(pool);
        result.map(|_: usize| sent_total)
    }

    fn poll_fd(&self, _queue: usize) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    fn stats(&self) -> PortStats {
        if let Ok(k) = sys::packet_stats(self.fd.as_fd()) {
            self.kernel_drops.set(self.kernel_drops.get() + u64::from(k.drops));
        }
        let mut s = self.stats;
        s.count_drop(DropReason::RxRingFull, self.kernel_drops.get());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vlan_tag_from_the_ring_header_is_put_back_after_the_macs() {
        let mut buf = PacketBuf::new(256, 32);
        let data: Vec<u8> = (0..60u8).collect();
        let hdr = FrameHeader {
            next_offset: 0,
            snaplen: 60,
            len: 60,
            status: sys::TP_STATUS_VLAN_VALID,
            mac: 0,
            vlan_tci: 0x2064,
            vlan_tpid: 0,
        };
        assert!(copy_frame(&mut buf, &data, Some(hdr.vlan(sys::TP_STATUS_VLAN_TPID_VALID))));
        let f = buf.as_slice();
        assert_eq!(f.len(), 64);
        assert_eq!(&f[..12], &data[..12]);
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x20, 0x64]);
        assert_eq!(&f[16..], &data[12..]);
        let qinq = FrameHeader { status: hdr.status | sys::TP_STATUS_VLAN_TPID_VALID, vlan_tpid: 0x88a8, ..hdr };
        assert_eq!(qinq.vlan(sys::TP_STATUS_VLAN_TPID_VALID)[..2], [0x88, 0xa8]);
    }

    #[test]
    fn frames_that_do_not_fit_are_refused_and_headers_parse_from_short_input() {
        let mut small = PacketBuf::new(64, 32);
        assert!(!copy_frame(&mut small, &[0u8; 40], None));
        assert!(!copy_frame(&mut small, &[0u8; 8], Some([0; 4])), "shorter than two MACs");
        assert!(FrameHeader::parse(&[0u8; 37]).is_none());
        assert!(FrameHeader::parse(&[0u8; 48]).is_some());
    }

    #[test]
    fn bad_configurations_are_refused_with_the_allowed_range() {
        let c = AfPacketConfig { block_size: 5000, ..AfPacketConfig::default() };
        let err = AfPacketPort::with_config("lo", c).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid configuration for lo: block size 5000 must be a multiple of 4096 between 4096 and 1 GiB"
        );
        let err = AfPacketPort::open("nosuchdev0").unwrap_err().to_string();
        assert!(err.starts_with("could not find the interface for nosuchdev0: "), "{err}");
    }
}
