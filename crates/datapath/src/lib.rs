//! `sluice-datapath`: the switch's datapath.
//!
//! For now this crate owns the [`port`] layer and the slow path's [`bridge`]
//! (NORMAL L2 learning with VLANs). The port layer is the [`Port`] trait that
//! every packet source and sink implements (batched receive and transmit of
//! pooled [`PacketBuf`](sluice_packet::PacketBuf)s, capabilities, a file
//! descriptor to sleep on, per-port counters), and the ports that wrap other
//! ports: [`PcapPort`] (capture to a pcap file) and [`FaultInjector`]
//! (seeded drop, corrupt, truncate, duplicate). The pipeline (parse, caches,
//! actions, PMD threads) is added here later.
//!
//! This crate must stay sans-IO: no syscalls, no clock reads, no locks and no
//! allocation on the per-packet path. The one exception is [`PcapPort`],
//! which writes to the `Write` it is given and reads the wall clock once per
//! batch for capture timestamps. Real ports (AF_PACKET, TAP, AF_XDP, memory
//! rings) live in `sluice-io`. No `unsafe` here.

#![forbid(unsafe_code)]

pub mod bridge;
pub mod pipeline;
pub mod pmd;
pub mod port;

pub use pipeline::{NormalSlowPath, Pipeline, PipelineConfig, PipelineDrop, PipelineStats, SlowPath, TxQueues, Upcall};
pub use pmd::{Datapath, DatapathConfig, DatapathError, PortInfo, ThreadStats};
pub use port::{
    DropCounters, DropReason, FaultConfig, FaultConfigError, FaultInjector, FaultStats, MAX_BATCH, Offloads,
    PacketBatch, PcapOpenError, PcapPort, Port, PortCapabilities, PortError, PortStats,
};
