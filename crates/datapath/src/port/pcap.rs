//! A port that writes every frame it moves to a pcap file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

use pcap_file::pcap::PcapHeader;
use pcap_file::{DataLink, Endianness, TsResolution};
use sluice_packet::BufferPool;

use super::{PacketBatch, Port, PortCapabilities, PortError, PortStats};

/// The snap length written in the file header: frames are captured whole.
const SNAPLEN: u32 = 65535;

/// Opening a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum PcapOpenError {
    /// The file could not be created.
    #[error("could not create the capture file {path}: {source}")]
    Create {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The pcap header could not be written.
    #[error("could not write the pcap header: {0}")]
    Header(pcap_file::PcapError),
}

/// Wraps a port and writes every frame it receives or transmits to a pcap
/// file (Ethernet link type, microsecond timestamps), readable by tcpdump
/// and Wireshark.
///
/// Received frames are written after the inner port returns them;
/// frames to send are written before they are handed to the inner port, so
/// the file shows what the switch tried to send. All frames of one batch
/// get one timestamp (the wall clock is read once per batch).
///
/// A write error does not stop the port: capture stops, the error is kept
/// ([`capture_error`](Self::capture_error)) and packets keep flowing.
///
/// The file header comes from `pcap-file`; records are written here
/// (16 bytes of native-endian header, then the frame) because
/// `pcap_file::pcap::PcapWriter` cannot flush without giving up its writer.
pub struct PcapPort<P, W: Write = BufWriter<File>> {
    inner: P,
    writer: Option<W>,
    error: Option<std::io::Error>,
    captured: u64,
}

impl<P: Port> PcapPort<P, BufWriter<File>> {
    /// Wraps `inner`, capturing into a new file at `path` (truncated if it
    /// exists).
    pub fn create(inner: P, path: impl AsRef<Path>) -> Result<Self, PcapOpenError> {
        let path = path.as_ref();
        let file =
            File::create(path).map_err(|source| PcapOpenError::Create { path: path.display().to_string(), source })?;
        PcapPort::new(inner, BufWriter::new(file))
    }
}

impl<P: Port, W: Write> PcapPort<P, W> {
    /// Wraps `inner`, capturing into `writer` (the pcap header is written now).
    pub fn new(inner: P, writer: W) -> Result<Self, PcapOpenError> {
        let mut writer = writer;
        let header = PcapHeader {
            snaplen: SNAPLEN,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        header.write_to(&mut writer).map_err(PcapOpenError::Header)?;
        Ok(PcapPort { inner, writer: Some(writer), error: None, captured: 0 })
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped port, mutably.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Frames written so far.
    pub fn captured(&self) -> u64 {
        self.captured
    }

    /// The write error that stopped the capture, if one did.
    pub fn capture_error(&self) -> Option<&std::io::Error> {
        self.error.as_ref()
    }

    /// Flushes buffered frames to the writer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.writer {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }

    /// Stops capturing and returns the inner port and the writer (flushed;
    /// `None` when capture stopped on an error). Dropping a `PcapPort`
    /// flushes too when the writer is a `BufWriter`.
    pub fn into_parts(mut self) -> (P, Option<W>) {
        let _ = self.flush();
        (self.inner, self.writer)
    }

    fn capture(&mut self, batch: &PacketBatch, from: usize) {
        let Some(writer) = &mut self.writer else { return };
        if from >= batch.len() {
            return;
        }
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO);
        // pcap's 32-bit seconds wrap in 2106; truncation is the format's.
        let sec = now.as_secs() as u32;
        let usec = now.subsec_micros();
        for buf in &batch.as_slice()[from..] {
            let data = buf.as_slice();
            let snap = &data[..data.len().min(SNAPLEN as usize)];
            let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
            let mut record = [0u8; 16];
            record[0..4].copy_from_slice(&sec.to_ne_bytes());
            record[4..8].copy_from_slice(&usec.to_ne_bytes());
            record[8..12].copy_from_slice(&(snap.len() as u32).to_ne_bytes());
            record[12..16].copy_from_slice(&orig_len.to_ne_bytes());
            if let Err(e) = writer.write_all(&record).and_then(|()| writer.write_all(snap)) {
                self.error = Some(e);
                self.writer = None;
                return;
            }
            self.captured += 1;
        }
    }
}

impl<P: Port, W: Write + Send> Port for PcapPort<P, W> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> PortCapabilities {
        self.inner.capabilities()
    }

    fn rx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        let start = batch.len();
        let n = self.inner.rx_batch(queue, pool, batch)?;
        self.capture(batch, start);
        Ok(n)
    }

    fn tx_batch(&mut self, queue: usize, pool: &mut BufferPool, batch: &mut PacketBatch) -> Result<usize, PortError> {
        self.capture(batch, 0);
        self.inner.tx_batch(queue, pool, batch)
    }

    fn poll_fd(&self, queue: usize) -> Option<BorrowedFd<'_>> {
        self.inner.poll_fd(queue)
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }
}

impl<P: std::fmt::Debug, W: Write> std::fmt::Debug for PcapPort<P, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapPort")
            .field("inner", &self.inner)
            .field("captured", &self.captured)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Loopback, frames};
    use super::*;
    use pcap_file::pcap::PcapReader;

    #[test]
    fn every_rx_and_tx_frame_lands_in_a_readable_pcap_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap.pcap");
        let mut pool = BufferPool::new(64, 2048, 128);
        let mut port = PcapPort::create(Loopback::default(), &path).unwrap();
        let mut batch = PacketBatch::new();
        frames(&mut pool, 0..10, &mut batch);
        assert_eq!(port.tx_batch(0, &mut pool, &mut batch).unwrap(), 10);
        assert_eq!(port.rx_batch(0, &mut pool, &mut batch).unwrap(), 10);
        assert_eq!(port.captured(), 20);
        let (_, writer) = port.into_parts();
        drop(writer);

        let mut reader = PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.header().datalink, DataLink::ETHERNET);
        let mut seen = Vec::new();
        while let Some(p) = reader.next_packet() {
            let p = p.unwrap();
            assert_eq!(p.orig_len as usize, p.data.len());
            seen.push(p.data.into_owned());
        }
        assert_eq!(seen.len(), 20);
        for (i, data) in seen.iter().enumerate() {
            let n = i % 10;
            assert_eq!(data, &vec![n as u8; 60 + n % 40], "frame {i}: tx order then rx order");
        }
        batch.recycle(&mut pool);
    }

    #[test]
    fn a_failing_writer_stops_capture_but_not_traffic() {
        struct Failing(usize);
        impl Write for Failing {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if self.0 < b.len() {
                    return Err(std::io::Error::other("disk full"));
                }
                self.0 -= b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut pool = BufferPool::new(64, 2048, 128);
        // Room for the 24-byte header and one 16 + 60-byte record.
        let mut port = PcapPort::new(Loopback::default(), Failing(24 + 16 + 60)).unwrap();
        let mut batch = PacketBatch::new();
        frames(&mut pool, 0..5, &mut batch);
        assert_eq!(port.tx_batch(0, &mut pool, &mut batch).unwrap(), 5);
        assert_eq!(port.captured(), 1);
        assert!(port.capture_error().is_some());
        assert_eq!(port.rx_batch(0, &mut pool, &mut batch).unwrap(), 5);
        assert_eq!(port.stats().tx_packets, 5);
    }
}
