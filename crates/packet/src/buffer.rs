//! Packet buffers with headroom, and a fixed-size pool that recycles them.
//!
//! A [`PacketBuf`] is one fixed-size allocation made when the pool is
//! built; the packet lives in a window of it, starting after some headroom
//! so that encapsulation prepends headers by moving the window start instead
//! of copying the packet. The [`BufferPool`] hands buffers out and takes
//! them back: after it is built, receiving, rewriting, encapsulating and
//! transmitting a batch allocates nothing.

use crate::{Error, Result};

/// Default headroom: enough for outer Ethernet + VLAN + IPv6 + UDP + Geneve
/// with some options (14 + 4 + 40 + 8 + 8 + 54 = 128).
pub const DEFAULT_HEADROOM: usize = 128;
/// Default buffer size: headroom plus a 9000-byte jumbo frame would waste
/// memory for most ports; 2048 fits a 1500-byte MTU frame with VLANs and a
/// tunnel's worth of headroom.
pub const DEFAULT_BUF_SIZE: usize = 2048;

/// One packet buffer: fixed storage and a window `[head, head + len)` in it.
#[derive(Debug)]
pub struct PacketBuf {
    storage: Box<[u8]>,
    head: usize,
    len: usize,
    /// Where `head` returns to on reset.
    base: usize,
}

impl AsRef<[u8]> for PacketBuf {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PacketBuf {
    /// A buffer of `size` bytes whose packet window starts after `headroom`.
    /// (This allocates: make buffers through a [`BufferPool`] on the hot path.)
    pub fn new(size: usize, headroom: usize) -> PacketBuf {
        let headroom = headroom.min(size);
        PacketBuf { storage: vec![0; size].into_boxed_slice(), head: headroom, len: 0, base: headroom }
    }

    /// The packet bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.head..self.head + self.len]
    }

    /// The packet bytes, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.head..self.head + self.len]
    }

    /// Packet length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the packet is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free in front of the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Bytes free after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.storage.len() - self.head - self.len
    }

    /// The whole storage size.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.storage.len()
    }

    /// Empties the buffer and restores its original headroom.
    #[inline]
    pub fn reset(&mut self) {
        self.head = self.base;
        self.len = 0;
    }

    /// Replaces the contents with `bytes` at the original headroom.
    pub fn fill(&mut self, bytes: &[u8]) -> Result<()> {
        self.reset();
        if bytes.len() > self.tailroom() {
            return Err(Error::Truncated);
        }
        self.storage[self.head..self.head + bytes.len()].copy_from_slice(bytes);
        self.len = bytes.len();
        Ok(())
    }

    /// Makes the packet `len` bytes long, exposing tailroom (whose contents
    /// are whatever was there) or dropping the end. For receive paths that
    /// write into [`spare_mut`](Self::spare_mut) and then commit a length.
    pub fn set_len(&mut self, len: usize) -> Result<()> {
        if self.head + len > self.storage.len() {
            return Err(Error::Truncated);
        }
        self.len = len;
        Ok(())
    }

    /// Everything from the packet start to the end of storage, for a
    /// receive call to write into before [`set_len`](Self::set_len).
    #[inline]
    pub fn spare_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.head..]
    }

    /// Grows the packet at the front by `n` bytes (taken from headroom) and
    /// returns them, for an encapsulating header to be written into.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Result<&mut [u8]> {
        if n > self.head {
            return Err(Error::Truncated);
        }
        self.head -= n;
        self.len += n;
        Ok(&mut self.storage[self.head..self.head + n])
    }

    /// Removes `n` bytes from the front (a decapsulated header).
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> Result<()> {
        if n > self.len {
            return Err(Error::Truncated);
        }
        self.head += n;
        self.len -= n;
        Ok(())
    }

    /// Appends bytes at the end.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() > self.tailroom() {
            return Err(Error::Truncated);
        }
        let end = self.head + self.len;
        self.storage[end..end + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    /// Shortens the packet to `len` bytes (no-op when already shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// A fixed set of equal buffers, handed out and taken back.
///
/// The pool is per thread (no locks): a datapath thread owns one and its
/// ports borrow from it. `get` on an empty pool returns `None` — the caller
/// drops the packet and counts it, as a NIC does when its ring is empty.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<PacketBuf>,
    total: usize,
    buf_size: usize,
    headroom: usize,
}

impl BufferPool {
    /// A pool of `count` buffers of `buf_size` bytes with `headroom`.
    pub fn new(count: usize, buf_size: usize, headroom: usize) -> BufferPool {
        let free = (0..count).map(|_| PacketBuf::new(buf_size, headroom)).collect();
        BufferPool { free, total: count, buf_size, headroom }
    }

    /// A pool with the default buffer size and headroom.
    pub fn with_defaults(count: usize) -> BufferPool {
        BufferPool::new(count, DEFAULT_BUF_SIZE, DEFAULT_HEADROOM)
    }

    /// Takes an empty buffer, if any is left.
    #[inline]
    pub fn get(&mut self) -> Option<PacketBuf> {
        self.free.pop()
    }

    /// Returns a buffer. One that did not come from a pool of this shape
    /// is dropped instead, so that the pool never holds odd buffers; a
    /// buffer beyond the pool's count is dropped too.
    #[inline]
    pub fn put(&mut self, mut buf: PacketBuf) {
        if buf.capacity() != self.buf_size || buf.base != self.headroom || self.free.len() >= self.total {
            return;
        }
        buf.reset();
        self.free.push(buf);
    }

    /// Buffers available now.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Buffers the pool was built with.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_pull_move_the_window_within_bounds() {
        let mut b = PacketBuf::new(64, 16);
        b.fill(&[1, 2, 3, 4]).unwrap();
        b.push_front(16).unwrap().fill(9);
        assert_eq!(b.len(), 20);
        assert_eq!(b.headroom(), 0);
        assert_eq!(b.push_front(1), Err(Error::Truncated));
        b.pull_front(16).unwrap();
        assert_eq!(b.as_slice(), &[1, 2, 3, 4]);
        assert_eq!(b.pull_front(5), Err(Error::Truncated));
        assert_eq!(b.extend_from_slice(&[0; 45]), Err(Error::Truncated));
        b.extend_from_slice(&[0; 44]).unwrap();
        assert_eq!(b.tailroom(), 0);
    }

    #[test]
    fn pool_recycles_and_refuses_foreign_buffers() {
        let mut pool = BufferPool::new(2, 256, 32);
        let mut a = pool.get().unwrap();
        let b = pool.get().unwrap();
        assert!(pool.get().is_none());
        a.fill(&[7; 10]).unwrap();
        a.push_front(8).unwrap();
        pool.put(a);
        let a = pool.get().unwrap();
        assert_eq!((a.len(), a.headroom()), (0, 32), "returned buffers are reset");
        pool.put(PacketBuf::new(128, 32));
        assert_eq!(pool.available(), 0, "a foreign buffer is not taken");
        pool.put(a);
        pool.put(b);
        assert_eq!(pool.available(), 2);
    }
}
