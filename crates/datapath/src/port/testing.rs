//! A loopback port for the wrappers' unit tests: what is sent comes back.

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;

use sluice_packet::{BufferPool, PacketBuf};

use super::{DropReason, PacketBatch, Port, PortCapabilities, PortError, PortStats};

#[derive(Debug, Default)]
pub(crate) struct Loopback {
    pub(crate) queue: VecDeque<PacketBuf>,
    pub(crate) stats: PortStats,
}

impl Port for Loopback {
    fn name(&self) -> &str {
        "lo"
    }
    fn capabilities(&self) -> PortCapabilities {
        PortCapabilities::ethernet(1500)
    }
    fn rx_batch(&mut self, _q: usize, _pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        let mut n = 0;
        while !batch.is_full() {
            let Some(b) = self.queue.pop_front() else { break };
            self.stats.count_rx(b.len());
            batch.push(b).unwrap();
            n += 1;
        }
        Ok(n)
    }
    fn tx_batch(&mut self, _q: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        let mut n = 0;
        for b in batch.drain() {
            if b.len() > 1518 {
                self.stats.count_drop(DropReason::Oversize, 1);
                pool.put(b);
                continue;
            }
            self.stats.count_tx(b.len());
            self.queue.push_back(b);
            n += 1;
        }
        Ok(n)
    }
    fn poll_fd(&self, _q: usize) -> Option<BorrowedFd<'_>> {
        None
    }
    fn stats(&self) -> PortStats {
        self.stats
    }
}

/// Frames whose bytes say their index: `[i as u8; 60 + i % 40]`.
pub(crate) fn frames(pool: &mut BufferPool, range: std::ops::Range<usize>, batch: &mut PacketBatch) {
    for i in range {
        let mut b = pool.get().unwrap();
        b.fill(&vec![i as u8; 60 + i % 40]).unwrap();
        batch.push(b).unwrap();
    }
}
