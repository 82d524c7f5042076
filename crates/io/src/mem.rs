//! In-memory port pairs, for tests and benchmarks.

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use sluice_datapath::{DropReason, MAX_BATCH, PacketBatch, Port, PortCapabilities, PortError, PortStats};
use sluice_packet::{BufferPool, PacketBuf};

/// Shortest frame a port carries: an Ethernet header.
const MIN_FRAME: usize = 14;

/// One direction of a pair: a bounded queue of buffers.
#[derive(Debug)]
struct Ring {
    queue: Mutex<Chunks>,
    capacity: usize,
}

/// The queue of one direction, in chunks of up to [`MAX_BATCH`] buffers,
/// so that a batch moves in and out as one copy of its handles (a
/// `VecDeque` of buffers moved them one by one, through the stack; that was
/// a quarter of a datapath thread's time on these ports). Every chunk but
/// the front one (partly received) and the back one (partly filled) is
/// full, so `capacity / MAX_BATCH + 2` chunks, all made up front, always
/// suffice.
#[derive(Debug)]
struct Chunks {
    /// Buffers in order, front chunk first; none of them empty.
    queue: VecDeque<PacketBatch>,
    /// Empty chunks.
    spare: Vec<PacketBatch>,
    /// Buffers queued.
    len: usize,
}

impl Chunks {
    fn new(capacity: usize) -> Chunks {
        let chunks = capacity.div_ceil(MAX_BATCH) + 2;
        Chunks {
            queue: VecDeque::with_capacity(chunks),
            spare: (0..chunks).map(|_| PacketBatch::new()).collect(),
            len: 0,
        }
    }

    /// Appends all of `batch`, in order (the caller checked the room).
    /// What does not fit (never, while the chunk invariant holds) stays
    /// in `batch`.
    fn push_all(&mut self, batch: &mut PacketBatch) {
        if let Some(back) = self.queue.back_mut() {
            self.len += back.take_front_of(batch, usize::MAX);
        }
        while !batch.is_empty() {
            let Some(mut c) = self.spare.pop() else { return };
            self.len += c.take_front_of(batch, usize::MAX);
            self.queue.push_back(c);
        }
    }

    /// Appends one buffer, or gives it back when no chunk is free (never,
    /// while the chunk invariant holds).
    fn push(&mut self, buf: PacketBuf) -> Result<(), PacketBuf> {
        let buf = match self.queue.back_mut() {
            Some(back) => match back.push(buf) {
                Ok(()) => {
                    self.len += 1;
                    return Ok(());
                }
                Err(buf) => buf,
            },
            None => buf,
        };
        let Some(mut c) = self.spare.pop() else { return Err(buf) };
        if let Err(buf) = c.push(buf) {
            self.spare.push(c);
            return Err(buf);
        }
        self.len += 1;
        self.queue.push_back(c);
        Ok(())
    }

    /// Moves buffers from the front to `batch`, as many as fit; returns how
    /// many.
    fn pop_into(&mut self, batch: &mut PacketBatch) -> usize {
        let mut n = 0;
        while !batch.is_full() {
            let Some(front) = self.queue.front_mut() else { break };
            n += batch.take_front_of(front, usize::MAX);
            if !front.is_empty() {
                break;
            }
            if let Some(c) = self.queue.pop_front() {
                self.spare.push(c);
            }
        }
        self.len -= n;
        n
    }
}

impl Ring {
    fn new(capacity: usize) -> Arc<Ring> {
        Arc::new(Ring { queue: Mutex::new(Chunks::new(capacity)), capacity })
    }

    fn lock(&self) -> MutexGuard<'_, Chunks> {
        // A poisoned lock only means another thread panicked while holding
        // it; the queue of buffers is still a valid queue.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One end of an in-memory link: what one end transmits, the other receives,
/// like a veth pair. Packets move by handing the buffer over (no copy); the
/// rings are allocated once and never grow.
///
/// Each direction is a bounded queue behind a mutex taken once per batch
/// (not per packet), so the ends may live on different threads. A full ring
/// drops on transmit ([`DropReason::TxRingFull`]); transmitting after the
/// peer was dropped is [`PortError::Closed`].
///
/// There is no file descriptor to sleep on: [`Port::poll_fd`] is `None`,
/// so a thread with memory ports busy-polls them.
#[derive(Debug)]
pub struct MemPort {
    name: String,
    tx: Arc<Ring>,
    rx: Arc<Ring>,
    caps: PortCapabilities,
    stats: PortStats,
}

impl MemPort {
    /// A connected pair with rings of `ring_size` packets each way and the
    /// given MTU (frames up to `mtu + 18` bytes pass).
    pub fn pair(name_a: &str, name_b: &str, ring_size: usize, mtu: usize) -> (MemPort, MemPort) {
        let ring_size = ring_size.max(1);
        let ab = Ring::new(ring_size);
        let ba = Ring::new(ring_size);
        let caps = PortCapabilities::ethernet(mtu);
        let a = MemPort { name: name_a.to_string(), tx: ab.clone(), rx: ba.clone(), caps, stats: PortStats::default() };
        let b = MemPort { name: name_b.to_string(), tx: ba, rx: ab, caps, stats: PortStats::default() };
        (a, b)
    }

    /// Packets waiting to be received on this end.
    pub fn pending(&self) -> usize {
        self.rx.lock().len
    }

    fn check_queue(&self, queue: usize) -> Result<(), PortError> {
        if queue != 0 {
            return Err(PortError::NoSuchQueue { port: self.name.clone(), queue, queues: 1 });
        }
        Ok(())
    }
}

impl Port for MemPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> PortCapabilities {
        self.caps
    }

    fn rx_batch(&mut self, queue: usize, _pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        self.check_queue(queue)?;
        let start = batch.len();
        let n = self.rx.lock().pop_into(batch);
        // Counted per batch: one add per packet, two stores per batch.
        let bytes = batch.as_slice()[start..].iter().fold(0u64, |a, b| a.wrapping_add(b.len() as u64));
        self.stats.rx_packets = self.stats.rx_packets.wrapping_add(n as u64);
        self.stats.rx_bytes = self.stats.rx_bytes.wrapping_add(bytes);
        Ok(n)
    }

    fn tx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        self.check_queue(queue)?;
        if Arc::strong_count(&self.tx) < 2 {
            let n = batch.len() as u64;
            self.stats.count_drop(DropReason::PortClosed, n);
            batch.recycle(pool);
            return Err(PortError::Closed { port: self.name.clone(), why: "its peer was dropped" });
        }
        let max = self.caps.max_frame;
        let mut ring = self.tx.lock();
        let room = self.tx.capacity - ring.len;
        let mut sent = 0;
        // Fast path: every frame is sendable and fits: one bulk move. One
        // branch-free pass checks the lengths and sums the bytes.
        if batch.len() <= room {
            let (bytes, sendable) = batch.iter().fold((0u64, true), |(bytes, ok), b| {
                let len = b.len();
                (bytes.wrapping_add(len as u64), ok & (len >= MIN_FRAME) & (len <= max))
            });
            if sendable {
                let n = batch.len();
                ring.push_all(batch);
                if batch.is_empty() {
                    self.stats.tx_packets = self.stats.tx_packets.wrapping_add(n as u64);
                    self.stats.tx_bytes = self.stats.tx_bytes.wrapping_add(bytes);
                    return Ok(n);
                }
                // Not reached while the chunk invariant holds; the rest is
                // sent (or dropped and counted) one by one below.
                let left = batch.iter().fold(0u64, |a, b| a.wrapping_add(b.len() as u64));
                self.stats.tx_packets = self.stats.tx_packets.wrapping_add((n - batch.len()) as u64);
                self.stats.tx_bytes = self.stats.tx_bytes.wrapping_add(bytes - left);
                sent = n - batch.len();
            }
        }
        for buf in batch.drain() {
            let len = buf.len();
            let reason = if len > max {
                DropReason::Oversize
            } else if len < MIN_FRAME {
                DropReason::Runt
            } else if ring.len >= self.tx.capacity {
                DropReason::TxRingFull
            } else {
                match ring.push(buf) {
                    Ok(()) => {
                        self.stats.count_tx(len);
                        sent += 1;
                        continue;
                    }
                    Err(buf) => {
                        self.stats.count_drop(DropReason::TxRingFull, 1);
                        pool.put(buf);
                        continue;
                    }
                }
            };
            self.stats.count_drop(reason, 1);
            pool.put(buf);
        }
        Ok(sent)
    }

    fn poll_fd(&self, _queue: usize) -> Option<BorrowedFd<'_>> {
        None
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pool: &mut BufferPool, len: usize, tag: u8) -> sluice_packet::PacketBuf {
        let mut b = pool.get().unwrap();
        b.fill(&vec![tag; len]).unwrap();
        b
    }

    #[test]
    fn what_one_end_sends_the_other_receives_in_order() {
        let mut pool = BufferPool::new(64, 2048, 128);
        let (mut a, mut b) = MemPort::pair("a", "b", 16, 1500);
        let mut batch = PacketBatch::new();
        for i in 0..5 {
            batch.push(frame(&mut pool, 60 + i, i as u8)).unwrap();
        }
        assert_eq!(a.tx_batch(0, &mut pool, &mut batch).unwrap(), 5);
        assert!(batch.is_empty());
        assert_eq!(b.pending(), 5);
        let mut got = PacketBatch::with_capacity(3);
        assert_eq!(b.rx_batch(0, &mut pool, &mut got).unwrap(), 3);
        let tags: Vec<u8> = got.iter().map(|p| p.as_slice()[0]).collect();
        assert_eq!(tags, [0, 1, 2]);
        got.recycle(&mut pool);
        assert_eq!(b.rx_batch(0, &mut pool, &mut got).unwrap(), 2);
        got.recycle(&mut pool);
        assert_eq!(b.rx_batch(0, &mut pool, &mut got).unwrap(), 0);
        assert_eq!(pool.available(), 64, "every buffer came back");
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!((sa.tx_packets, sa.tx_bytes), (5, 60 + 61 + 62 + 63 + 64));
        assert_eq!((sb.rx_packets, sb.rx_bytes), (5, sa.tx_bytes));
        // The other direction is independent.
        assert_eq!(a.rx_batch(0, &mut pool, &mut got).unwrap(), 0);
    }

    #[test]
    fn full_ring_oversize_and_runt_frames_are_dropped_and_counted() {
        let mut pool = BufferPool::new(64, 2048, 128);
        let (mut a, b) = MemPort::pair("a", "b", 4, 1500);
        let mut batch = PacketBatch::new();
        batch.push(frame(&mut pool, 1519, 1)).unwrap();
        batch.push(frame(&mut pool, 13, 2)).unwrap();
        batch.push(frame(&mut pool, 0, 3)).unwrap();
        for _ in 0..6 {
            batch.push(frame(&mut pool, 64, 4)).unwrap();
        }
        assert_eq!(a.tx_batch(0, &mut pool, &mut batch).unwrap(), 4);
        let d = a.stats().drops;
        assert_eq!(d.get(DropReason::Oversize), 1);
        assert_eq!(d.get(DropReason::Runt), 2);
        assert_eq!(d.get(DropReason::TxRingFull), 2);
        assert_eq!(pool.available(), 64 - 4);
        drop(b);
        batch.push(frame(&mut pool, 64, 5)).unwrap();
        let err = a.tx_batch(0, &mut pool, &mut batch).unwrap_err();
        assert!(matches!(err, PortError::Closed { .. }), "{err}");
        assert_eq!(a.stats().drops.get(DropReason::PortClosed), 1);
        assert!(a.tx_batch(1, &mut pool, &mut batch).is_err(), "queue 1 does not exist");
    }

    #[test]
    fn ends_work_from_two_threads() {
        let (mut a, mut b) = MemPort::pair("a", "b", 256, 1500);
        let total = 10_000u64;
        let sender = std::thread::spawn(move || {
            let mut pool = BufferPool::new(512, 256, 0);
            let mut batch = PacketBatch::new();
            let mut sent = 0u64;
            while sent < total {
                while !batch.is_full() && sent + (batch.len() as u64) < total {
                    let Some(mut buf) = pool.get() else { break };
                    buf.fill(&[0xab; 64]).unwrap();
                    let _ = batch.push(buf);
                }
                sent += a.tx_batch(0, &mut pool, &mut batch).unwrap() as u64;
                // Buffers cross to the other thread's pool; refill ours.
                while pool.available() < 64 {
                    pool.put(sluice_packet::PacketBuf::new(256, 0));
                }
            }
            a
        });
        let mut pool = BufferPool::new(0, 256, 0);
        let mut batch = PacketBatch::new();
        let mut got = 0u64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while got < total && std::time::Instant::now() < deadline {
            got += b.rx_batch(0, &mut pool, &mut batch).unwrap() as u64;
            batch.recycle(&mut pool);
        }
        let a = sender.join().unwrap();
        assert_eq!(got, total);
        assert_eq!((a.stats().tx_packets, b.stats().rx_packets), (total, total));
    }
}
