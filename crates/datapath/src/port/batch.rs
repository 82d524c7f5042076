//! Fixed-capacity batches of packet buffers.

use std::collections::VecDeque;

use sluice_packet::{BufferPool, PacketBuf};

/// The usual batch size: what one `rx_batch` / `tx_batch` call moves.
pub const MAX_BATCH: usize = 32;

/// Up to `capacity` packets, in order. The storage is allocated once, when
/// the batch is made; pushing, draining and refilling allocate nothing.
#[derive(Debug)]
pub struct PacketBatch {
    bufs: Vec<PacketBuf>,
    capacity: usize,
}

impl PacketBatch {
    /// An empty batch of [`MAX_BATCH`] packets.
    pub fn new() -> PacketBatch {
        PacketBatch::with_capacity(MAX_BATCH)
    }

    /// An empty batch holding at most `capacity` packets (at least one).
    pub fn with_capacity(capacity: usize) -> PacketBatch {
        let capacity = capacity.max(1);
        PacketBatch { bufs: Vec::with_capacity(capacity), capacity }
    }

    /// How many packets the batch can hold.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Packets in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// True when the batch holds no packets.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Room left.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.capacity - self.bufs.len()
    }

    /// True when no more packets fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.bufs.len() >= self.capacity
    }

    /// Appends a packet, or gives it back when the batch is full.
    #[inline]
    pub fn push(&mut self, buf: PacketBuf) -> Result<(), PacketBuf> {
        if self.is_full() {
            return Err(buf);
        }
        self.bufs.push(buf);
        Ok(())
    }

    /// Removes and returns the last packet.
    #[inline]
    pub fn pop(&mut self) -> Option<PacketBuf> {
        self.bufs.pop()
    }

    /// The packets, in order.
    #[inline]
    pub fn as_slice(&self) -> &[PacketBuf] {
        &self.bufs
    }

    /// The packets, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [PacketBuf] {
        &mut self.bufs
    }

    /// Iterates over the packets.
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, PacketBuf> {
        self.bufs.iter()
    }

    /// Removes the packets from `start` on, in order, leaving the first
    /// `start` in place (all of them when `start` is past the end).
    #[inline]
    pub fn drain_from(&mut self, start: usize) -> std::vec::Drain<'_, PacketBuf> {
        let start = start.min(self.bufs.len());
        self.bufs.drain(start..)
    }

    /// Removes every packet, in order.
    #[inline]
    pub fn drain(&mut self) -> std::vec::Drain<'_, PacketBuf> {
        self.bufs.drain(..)
    }

    /// Moves packets from the front of `queue` to the end of the batch, as
    /// many as fit, and returns how many moved. (A bulk move for ring-backed
    /// ports: no per-packet capacity checks.)
    #[inline]
    pub fn take_from_front(&mut self, queue: &mut VecDeque<PacketBuf>) -> usize {
        let n = self.remaining().min(queue.len());
        self.bufs.extend(queue.drain(..n));
        n
    }

    /// Moves every packet of `other` to the end of this batch, in order,
    /// and returns true; or, when they do not all fit, moves none and
    /// returns false. (One copy of the handles, no per-packet checks.)
    #[inline]
    pub fn append_all(&mut self, other: &mut PacketBatch) -> bool {
        if other.bufs.len() > self.remaining() {
            return false;
        }
        self.bufs.append(&mut other.bufs);
        true
    }

    /// Moves packets from the front of `other` to the end of this batch,
    /// in order, as many as fit and at most `max`; returns how many. (A
    /// bulk move: all of `other` is one copy of the handles.)
    #[inline]
    pub fn take_front_of(&mut self, other: &mut PacketBatch, max: usize) -> usize {
        let k = max.min(self.remaining()).min(other.bufs.len());
        if k == other.bufs.len() {
            self.bufs.append(&mut other.bufs);
        } else {
            self.bufs.extend(other.bufs.drain(..k));
        }
        k
    }

    /// Keeps only the packets `keep` says yes to; the others go back to `pool`.
    pub fn retain_or_recycle(&mut self, pool: &mut BufferPool, mut keep: impl FnMut(&mut PacketBuf) -> bool) {
        let mut i = 0;
        while i < self.bufs.len() {
            if keep(&mut self.bufs[i]) {
                i += 1;
            } else {
                pool.put(self.bufs.remove(i));
            }
        }
    }

    /// Returns every buffer to `pool`, leaving the batch empty.
    pub fn recycle(&mut self, pool: &mut BufferPool) {
        for buf in self.bufs.drain(..) {
            pool.put(buf);
        }
    }
}

impl Default for PacketBatch {
    fn default() -> PacketBatch {
        PacketBatch::new()
    }
}

impl<'a> IntoIterator for &'a PacketBatch {
    type Item = &'a PacketBuf;
    type IntoIter = std::slice::Iter<'a, PacketBuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.bufs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_refuses_past_capacity_and_drain_from_keeps_the_head() {
        let mut pool = BufferPool::new(8, 128, 16);
        let mut b = PacketBatch::with_capacity(3);
        for i in 0..3u8 {
            let mut buf = pool.get().unwrap();
            buf.fill(&[i]).unwrap();
            b.push(buf).unwrap();
        }
        let extra = pool.get().unwrap();
        let extra = b.push(extra).unwrap_err();
        pool.put(extra);
        assert!(b.is_full());
        let tail: Vec<u8> = b.drain_from(1).map(|p| p.as_slice()[0]).collect();
        assert_eq!(tail, [1, 2]);
        assert_eq!(b.len(), 1);
        b.retain_or_recycle(&mut pool, |_| false);
        assert!(b.is_empty());
        assert_eq!(pool.available(), 6, "two were dropped with the drained iterator");
    }
}
