//! `sluice-packet`: typed views over packet bytes, and values to parse them
//! into and emit them from.
//!
//! Every protocol module follows the same pattern (smoltcp's `wire`):
//! - `Packet<T: AsRef<[u8]>>` is a zero-copy view. `new_checked` (or
//!   `check_len`) proves the buffer holds the header and every length field
//!   in it; after that succeeds **no accessor panics, whatever the bytes**.
//!   Setters need `T: AsMut<[u8]>`.
//! - `…Repr` is the header as a plain value: `parse` reads it from a view,
//!   `emit` writes it into a buffer, `header_len`/`buffer_len` tell the size.
//!   Checksums are not part of a `Repr`: IPv4's is written by `emit`; L4
//!   checksums cover the payload, so they are filled in by the view's
//!   `fill_checksum*` once the payload is in place.
//! - Wire values are open enums ([`EtherType::Unknown`], …): input is never
//!   "impossible", only unknown.
//!
//! [`Headers::parse`] walks a whole frame from L2 to L4 in one pass, the
//! entry point for flow keys. [`PacketBuf`] and [`BufferPool`] carry packets
//! with headroom for encapsulation and recycle buffers across batches, and
//! [`encap`] pushes and pops VXLAN in place.
//!
//! This crate does no I/O, takes no locks and allocates only when a pool or
//! buffer is built. It has no `unsafe`.

#![forbid(unsafe_code)]

mod error;
mod field;
mod macros;

pub mod arp;
pub mod buffer;
pub mod checksum;
pub mod encap;
pub mod ethernet;
pub mod geneve;
pub mod gre;
pub mod headers;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vxlan;

pub use buffer::{BufferPool, PacketBuf};
pub use error::{Error, Malformed, Result};
pub use ethernet::{EtherType, EthernetRepr, MacAddr, VlanTag};
pub use headers::{Headers, L3, L4};
pub use ip::{Fragment, IpProtocol};
