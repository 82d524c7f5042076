//! AF_XDP ports: an XDP program redirects an interface queue's frames into
//! a socket whose rings share memory (the UMEM) with user space.
//!
//! No crate did this here: `xsk-rs` needs the libxdp/libbpf C libraries
//! (and clang to build libxdp's BPF objects), and `aya` loads programs from
//! BPF ELF objects, which need a BPF toolchain too. The program we need is
//! six instructions (redirect to `xskmap[rx_queue_index]`, else pass to the
//! stack), so it is hand-assembled in `sys`, loaded with `bpf(2)` and
//! attached as a BPF link, which the kernel detaches when the port is
//! dropped (or its process dies): nothing is left behind on the interface.
//!
//! Mode: native (driver) XDP first, generic (skb) XDP if the driver has
//! none; zero-copy first when asked, copy mode when the driver cannot
//! (veth cannot: AF_XDP on veth is always copy mode). [`AfXdpPort::mode`]
//! says what was obtained.
//!
//! UMEM layout: `frame_count` frames of `frame_size`; the first half
//! circulates fill ring -> kernel -> rx ring -> us -> fill ring, the second
//! half is for transmit (free list -> tx ring -> completion ring -> free
//! list). Frames are copied into and out of pooled [`PacketBuf`]s (one copy
//! each way, like the other ports; in copy mode the kernel copies too).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use sluice_datapath::{DropReason, PacketBatch, Port, PortCapabilities, PortError, PortStats};
use sluice_packet::{BufferPool, PacketBuf};

use crate::error::OpenError;
use crate::sys::{self, Mmap, XskRing};

/// How often (in empty receive polls) the port checks that its socket is
/// still bound.
const CHECK_EVERY: u32 = 64;

/// How to attach the XDP program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpAttach {
    /// Native (driver) mode, else generic mode.
    #[default]
    NativeOrGeneric,
    /// Native mode only.
    Native,
    /// Generic (skb) mode only.
    Generic,
}

/// Options of an [`AfXdpPort`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// The interface rx/tx queue to bind.
    pub queue: u32,
    /// UMEM frames: a power of two, 64 to 65536 (half receive, half transmit).
    pub frame_count: u32,
    /// Bytes per UMEM frame: 2048 or 4096.
    pub frame_size: u32,
    /// Entries in each of the four rings: a power of two, 64 to 32768.
    pub ring_size: u32,
    /// How to attach the program.
    pub attach: XdpAttach,
    /// Try zero-copy first (falls back to copy mode).
    pub zero_copy: bool,
}

impl Default for AfXdpConfig {
    /// Queue 0, 4096 frames of 2048 bytes, rings of 2048, native-or-generic,
    /// zero-copy where the driver has it.
    fn default() -> AfXdpConfig {
        AfXdpConfig {
            queue: 0,
            frame_count: 4096,
            frame_size: 2048,
            ring_size: 2048,
            attach: XdpAttach::NativeOrGeneric,
            zero_copy: true,
        }
    }
}

/// What an [`AfXdpPort`] obtained from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpMode {
    /// The program runs in the driver (else generic skb mode).
    pub native: bool,
    /// The socket is bound in zero-copy mode (else copy mode).
    pub zero_copy: bool,
}

/// One AF_XDP ring mapping with cached indices.
#[derive(Debug)]
struct Ring {
    map: Mmap,
    producer: usize,
    consumer: usize,
    flags: usize,
    desc: usize,
    mask: u32,
}

impl Ring {
    fn new(
        fd: BorrowedFd<'_>,
        which: XskRing,
        off: sys::RingOffsets,
        entries: u32,
        desc_size: usize,
    ) -> std::io::Result<Ring> {
        let len = off.desc as usize + entries as usize * desc_size;
        let map = sys::xdp_map_ring(fd, which, len)?;
        let ring = Ring {
            map,
            producer: off.producer as usize,
            consumer: off.consumer as usize,
            flags: off.flags as usize,
            desc: off.desc as usize,
            mask: entries - 1,
        };
        // Check once that the index words are addressable, so that the
        // accessors below cannot fail later.
        if ring.map.word(ring.producer).is_none()
            || ring.map.word(ring.consumer).is_none()
            || ring.map.word(ring.flags).is_none()
        {
            return Err(std::io::Error::other("AF_XDP ring offsets outside the mapping"));
        }
        Ok(ring)
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        // Checked in `new`; a fallback keeps this total without a panic path.
        static ZERO: AtomicU32 = AtomicU32::new(0);
        self.map.word(offset).unwrap_or(&ZERO)
    }

    fn producer(&self) -> &AtomicU32 {
        self.word(self.producer)
    }

    fn consumer(&self) -> &AtomicU32 {
        self.word(self.consumer)
    }

    fn needs_wakeup(&self) -> bool {
        self.word(self.flags).load(Ordering::Relaxed) & sys::XDP_RING_NEED_WAKEUP != 0
    }

    fn slot(&self, index: u32, size: usize) -> usize {
        self.desc + (index & self.mask) as usize * size
    }
}

/// A port on one queue of a kernel interface through an AF_XDP socket.
///
/// Open it in the interface's network namespace. Deleting the interface
/// makes the port return [`PortError::Closed`].
#[derive(Debug)]
pub struct AfXdpPort {
    // Declared first so it drops first: detaches the program before the
    // socket goes away.
    _link: OwnedFd,
    _prog: OwnedFd,
    _xskmap: OwnedFd,
    name: String,
    fd: OwnedFd,
    rx: Ring,
    tx: Ring,
    fill: Ring,
    comp: Ring,
    umem: Mmap,
    frame_size: u64,
    /// Transmit frames not in flight.
    tx_free: Vec<u64>,
    mode: XdpMode,
    caps: PortCapabilities,
    stats: PortStats,
    empty_polls: u32,
    closed: bool,
}

impl AfXdpPort {
    /// Opens queue 0 of interface `name` with the default configuration.
    pub fn open(name: &str) -> Result<AfXdpPort, OpenError> {
        AfXdpPort::with_config(name, AfXdpConfig::default())
    }

    /// Opens interface `name` with `config`.
    pub fn with_config(name: &str, config: AfXdpConfig) -> Result<AfXdpPort, OpenError> {
        let invalid = |why: String| OpenError::Config { name: name.to_string(), why };
        if !config.frame_count.is_power_of_two() || !(64..=65536).contains(&config.frame_count) {
            return Err(invalid(format!("frame count {} must be a power of two from 64 to 65536", config.frame_count)));
        }
        if config.frame_size != 2048 && config.frame_size != 4096 {
            return Err(invalid(format!("frame size {} must be 2048 or 4096", config.frame_size)));
        }
        if !config.ring_size.is_power_of_two() || !(64..=32768).contains(&config.ring_size) {
            return Err(invalid(format!("ring size {} must be a power of two from 64 to 32768", config.ring_size)));
        }
        let setup = |what| OpenError::setup(what, name);
        let ifindex = sys::if_nametoindex(name).map_err(setup("find the interface"))?;
        let mtu = sys::interface_mtu(name).map_err(setup("read the MTU"))? as usize;
        let fd = sys::xdp_socket().map_err(setup("open an AF_XDP socket"))?;
        let umem_len = config.frame_count as usize * config.frame_size as usize;
        let umem = sys::anon_mapping(umem_len).map_err(setup("allocate the UMEM"))?;
        sys::xdp_umem_reg(fd.as_fd(), &umem, config.frame_size).map_err(setup("register the UMEM"))?;
        for which in [XskRing::Fill, XskRing::Completion, XskRing::Rx, XskRing::Tx] {
            sys::xdp_ring_size(fd.as_fd(), which, config.ring_size).map_err(setup("size the AF_XDP rings"))?;
        }
        let off = sys::xdp_mmap_offsets(fd.as_fd()).map_err(setup("read the AF_XDP ring offsets"))?;
        let n = config.ring_size;
        let map = |which, o, size| Ring::new(fd.as_fd(), which, o, n, size).map_err(setup("map the AF_XDP rings"));
        let rx = map(XskRing::Rx, off[0], 16)?;
        let tx = map(XskRing::Tx, off[1], 16)?;
        let fill = map(XskRing::Fill, off[2], 8)?;
        let comp = map(XskRing::Completion, off[3], 8)?;

        // Hand the receive half of the UMEM to the kernel.
        let fs = u64::from(config.frame_size);
        let rx_frames = (config.frame_count / 2).min(n);
        let tx_frames = (config.frame_count / 2).min(n);
        for i in 0..rx_frames {
            fill.map.write(fill.slot(i, 8), &(u64::from(i) * fs).to_ne_bytes());
        }
        fill.producer().store(rx_frames, Ordering::Release);
        let tx_base = u64::from(config.frame_count / 2) * fs;
        let tx_free: Vec<u64> = (0..u64::from(tx_frames)).map(|i| tx_base + i * fs).collect();

        let mut zero_copy = false;
        let mut bound = Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        if config.zero_copy {
            bound = sys::xdp_bind(fd.as_fd(), ifindex, config.queue, sys::XDP_ZEROCOPY | sys::XDP_USE_NEED_WAKEUP);
            zero_copy = bound.is_ok();
        }
        if bound.is_err() {
            bound = sys::xdp_bind(fd.as_fd(), ifindex, config.queue, sys::XDP_COPY | sys::XDP_USE_NEED_WAKEUP);
        }
        bound.map_err(setup("bind the AF_XDP socket"))?;

        let xskmap = sys::xskmap_create(config.queue + 1).map_err(setup("create the XSKMAP"))?;
        sys::map_update_u32(xskmap.as_fd(), config.queue, std::os::fd::AsRawFd::as_raw_fd(&fd) as u32)
            .map_err(setup("put the socket into the XSKMAP"))?;
        let prog = sys::xdp_redirect_prog(xskmap.as_fd()).map_err(setup("load the XDP redirect program"))?;
        let (link, native) = match config.attach {
            XdpAttach::Native => (sys::xdp_link(prog.as_fd(), ifindex, sys::XDP_FLAGS_DRV_MODE), true),
            XdpAttach::Generic => (sys::xdp_link(prog.as_fd(), ifindex, sys::XDP_FLAGS_SKB_MODE), false),
            XdpAttach::NativeOrGeneric => match sys::xdp_link(prog.as_fd(), ifindex, sys::XDP_FLAGS_DRV_MODE) {
                Ok(l) => (Ok(l), true),
                Err(_) => (sys::xdp_link(prog.as_fd(), ifindex, sys::XDP_FLAGS_SKB_MODE), false),
            },
        };
        let link = link.map_err(setup("attach the XDP program"))?;
        let max_frame = (mtu + 18).min(config.frame_size as usize - 256);
        Ok(AfXdpPort {
            _link: link,
            _prog: prog,
            _xskmap: xskmap,
            name: name.to_string(),
            fd,
            rx,
            tx,
            fill,
            comp,
            umem,
            frame_size: fs,
            tx_free,
            mode: XdpMode { native, zero_copy },
            caps: PortCapabilities { max_frame, ..PortCapabilities::ethernet(mtu) },
            stats: PortStats::default(),
            empty_polls: 0,
            closed: false,
        })
    }

    /// Native or generic XDP, zero-copy or copy mode.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// True once the port found its device gone.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn closed_error(&self) -> PortError {
        PortError::Closed { port: self.name.clone(), why: "its interface was deleted" }
    }

    /// Interprets an error from a wake-up syscall.
    fn kick_failed(&mut self, op: &'static str, e: std::io::Error) -> Result<(), PortError> {
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::EINTR) | Some(libc::ENETDOWN) => {
                Ok(())
            }
            Some(libc::ENXIO) | Some(libc::ENODEV) => {
                self.closed = true;
                Err(self.closed_error())
            }
            _ => Err(PortError::Io { port: self.name.clone(), op, source: e }),
        }
    }

    /// Returns a receive frame to the fill ring (never full: it has room for
    /// every receive frame).
    fn refill(&mut self, addr: u64) {
        let prod = self.fill.producer().load(Ordering::Relaxed);
        let base = addr - addr % self.frame_size;
        self.fill.map.write(self.fill.slot(prod, 8), &base.to_ne_bytes());
        self.fill.producer().store(prod.wrapping_add(1), Ordering::Release);
    }

    fn reclaim_completions(&mut self) {
        let prod = self.comp.producer().load(Ordering::Acquire);
        let mut cons = self.comp.consumer().load(Ordering::Relaxed);
        while cons != prod {
            if let Some(addr) = self.comp.map.read_u64(self.comp.slot(cons, 8)) {
                self.tx_free.push(addr);
            }
            cons = cons.wrapping_add(1);
        }
        self.comp.consumer().store(cons, Ordering::Release);
    }
}

fn copy_in(buf: &mut PacketBuf, data: &[u8]) -> bool {
    let spare = buf.spare_mut();
    if spare.len() < data.len() {
        return false;
    }
    spare[..data.len()].copy_from_slice(data);
    buf.set_len(data.len()).is_ok()
}

impl Port for AfXdpPort {
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
        let prod = self.rx.producer().load(Ordering::Acquire);
        let mut cons = self.rx.consumer().load(Ordering::Relaxed);
        let mut got = 0;
        while cons != prod && !batch.is_full() {
            let slot = self.rx.slot(cons, 16);
            let addr = self.rx.map.read_u64(slot).unwrap_or(0);
            let len = self.rx.map.read_u64(slot + 8).unwrap_or(0) as u32 as usize;
            cons = cons.wrapping_add(1);
            let reason = match (self.umem.bytes(addr as usize, len), pool.get()) {
                (None, buf) => {
                    if let Some(b) = buf {
                        pool.put(b);
                    }
                    Some(DropReason::Malformed)
                }
                (Some(_), None) => Some(DropReason::NoBuffer),
                (Some(data), Some(mut buf)) => {
                    if len > self.caps.max_frame || !copy_in(&mut buf, data) {
                        pool.put(buf);
                        Some(DropReason::Oversize)
                    } else if len < 14 {
                        pool.put(buf);
                        Some(DropReason::Runt)
                    } else {
                        self.stats.count_rx(len);
                        if let Err(buf) = batch.push(buf) {
                            pool.put(buf);
                        }
                        got += 1;
                        None
                    }
                }
            };
            if let Some(r) = reason {
                self.stats.count_drop(r, 1);
            }
            self.refill(addr);
        }
        self.rx.consumer().store(cons, Ordering::Release);
        if self.fill.needs_wakeup()
            && got > 0
            && let Err(e) = sys::xdp_kick_rx(self.fd.as_fd())
        {
            self.kick_failed("wake the receive path", e)?;
        }
        if got == 0 {
            if self.closed {
                return Err(self.closed_error());
            }
            self.empty_polls = self.empty_polls.wrapping_add(1);
            if self.empty_polls % CHECK_EVERY == 1
                && let Err(e) = sys::xdp_kick_rx(self.fd.as_fd())
            {
                self.kick_failed("poll the socket", e)?;
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
        self.reclaim_completions();
        let mut prod = self.tx.producer().load(Ordering::Relaxed);
        let mut sent = 0;
        for buf in batch.iter() {
            let len = buf.len();
            if len > self.caps.max_frame {
                self.stats.count_drop(DropReason::Oversize, 1);
                continue;
            }
            if len < 14 {
                self.stats.count_drop(DropReason::Runt, 1);
                continue;
            }
            // In-flight frames never outnumber the ring, so a free frame
            // means a free slot.
            let Some(addr) = self.tx_free.pop() else {
                self.stats.count_drop(DropReason::TxRingFull, 1);
                continue;
            };
            self.umem.write(addr as usize, buf.as_slice());
            let mut desc = [0u8; 16];
            desc[..8].copy_from_slice(&addr.to_ne_bytes());
            desc[8..12].copy_from_slice(&(len as u32).to_ne_bytes());
            self.tx.map.write(self.tx.slot(prod, 16), &desc);
            prod = prod.wrapping_add(1);
            self.stats.count_tx(len);
            sent += 1;
        }
        batch.recycle(pool);
        if sent > 0 {
            self.tx.producer().store(prod, Ordering::Release);
            if (self.tx.needs_wakeup() || !self.mode.zero_copy)
                && let Err(e) = sys::xdp_kick_tx(self.fd.as_fd())
            {
                self.kick_failed("transmit", e)?;
            }
            self.reclaim_completions();
        }
        Ok(sent)
    }

    fn poll_fd(&self, queue: usize) -> Option<BorrowedFd<'_>> {
        (queue == 0).then(|| self.fd.as_fd())
    }

    /// Our counters plus the kernel's drops on the socket: frames it could
    /// not put on the rx ring (full, or no fill-ring frame) count as
    /// [`DropReason::RxRingFull`], invalid descriptors as
    /// [`DropReason::Malformed`].
    fn stats(&self) -> PortStats {
        let mut s = self.stats;
        if let Ok(k) = sys::xdp_statistics(self.fd.as_fd()) {
            s.count_drop(DropReason::RxRingFull, k.rx_dropped.wrapping_add(k.rx_ring_full));
            s.count_drop(DropReason::Malformed, k.rx_invalid_descs.wrapping_add(k.tx_invalid_descs));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_are_refused_with_the_allowed_range() {
        let c = AfXdpConfig { ring_size: 100, ..AfXdpConfig::default() };
        let err = AfXdpPort::with_config("lo", c).unwrap_err().to_string();
        assert_eq!(err, "invalid configuration for lo: ring size 100 must be a power of two from 64 to 32768");
        let c = AfXdpConfig { frame_size: 1500, ..AfXdpConfig::default() };
        assert!(AfXdpPort::with_config("lo", c).is_err());
        let err = AfXdpPort::open("nosuchdev0").unwrap_err().to_string();
        assert!(err.starts_with("could not find the interface for nosuchdev0: "), "{err}");
    }
}
