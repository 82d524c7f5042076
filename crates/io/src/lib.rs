//! `sluice-io`: the switch's ports, each an implementation of
//! [`sluice_datapath::Port`].
//!
//! - [`MemPort`]: a connected pair of in-memory rings (like a veth pair) for
//!   tests and benchmarks; moves buffers, copies nothing.
//! - [`AfPacketPort`]: an AF_PACKET socket bound to one interface, receiving
//!   through a TPACKET_V3 (block) ring and sending with `sendmmsg`.
//! - [`TapPort`]: a multiqueue TAP device with virtio-net headers, the way a
//!   VM's vhost-less backend sees it.
//! - [`AfXdpPort`]: an AF_XDP socket on one interface queue, fed by a tiny
//!   hand-assembled XDP redirect program (native mode where the driver has
//!   it, zero-copy where the driver supports it, copy mode otherwise).
//!
//! Every syscall and every `unsafe` block lives in the private `sys` module;
//! the ports above are safe code over it. Ports own their file descriptors
//! and mappings and release them on drop.
//!
//! This crate must not make forwarding decisions (that is the datapath
//! pipeline) and must not log per packet: ports count drops by
//! [`DropReason`](sluice_datapath::DropReason) instead.

mod afpacket;
mod afxdp;
mod csum;
mod error;
mod mem;
mod sys;
mod tap;

pub use afpacket::{AfPacketConfig, AfPacketPort};
pub use afxdp::{AfXdpConfig, AfXdpPort, XdpAttach, XdpMode};
pub use error::OpenError;
pub use mem::MemPort;
pub use sys::wait_readable;
pub use tap::{TapConfig, TapPort};
