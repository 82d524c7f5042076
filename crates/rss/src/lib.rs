//! `sluice-rss`: receive-side scaling (RSS) as a NIC computes it.
//!
//! **Owns:** the Toeplitz hash (bitwise reference, byte tables, a PCLMULQDQ
//! carry-less-multiply version, and an AVX-512F batch kernel that hashes 16
//! tuples at a time, the SIMD ones chosen at run time), RSS keys
//! (40 and 52 bytes, symmetric keys and their weakness), the indirection
//! table (RETA) model `queue = RETA[hash & (size − 1)]`, and RSS-aware
//! source-port selection that works for any fixed key ([`PortSolver`]).
//! It also reads a real NIC's key and RETA, in the one I/O module
//! [`ethtool`] (ethtool netlink, with the ioctl as fallback).
//!
//! **Must not:** do I/O, allocate, lock or panic on the hot path. Everything
//! outside [`ethtool`] is sans-IO; per-key setup ([`Toeplitz::new`],
//! [`PortSolver::new`]) allocates once, and hashing, RETA lookups and port
//! picks allocate nothing, so the datapath can use them per packet.
//!
//! **Which hash to call.** [`Toeplitz::hash_v4`] / [`Toeplitz::hash_v6`] for
//! one tuple (CLMUL when the CPU has it, else tables);
//! [`Toeplitz::hash_v4_batch`] / [`Toeplitz::hash_v6_batch`] for a burst
//! (AVX-512F 16 at a time when present): the fastest path, and the one the
//! datapath's batches of 32 should use. There is no GFNI kernel: the machine
//! this was built and measured on (Cascade Lake) has no GFNI, so such a kernel
//! could not be tested here; DPDK's `rte_thash_gfni` design would slot in as
//! another [`Implementation`].
//!
//! ```
//! use sluice_rss::{Ipv4Tuple, RssKey, Toeplitz};
//! let t = Toeplitz::new(&RssKey::MICROSOFT);
//! let tuple = Ipv4Tuple::new(
//!     "66.9.149.187".parse().unwrap(),
//!     "161.142.100.80".parse().unwrap(),
//!     2794,
//!     1766,
//! );
//! // Microsoft's "Verifying the RSS Hash Calculation", IPv4 with TCP, row 1.
//! assert_eq!(t.hash_v4(&tuple), 0x51cc_c178);
//!
//! // Pick a local port whose reply lands on queue 3 of 8 (kernel default RETA).
//! use sluice_rss::{Outgoing, PortRange, PortSolver, Reta};
//! let solver = PortSolver::new(&RssKey::MICROSOFT, &Reta::spread(8, 128).unwrap());
//! let conn = Outgoing::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 443).unwrap();
//! let port = solver.pick(&conn, 3, PortRange::new(32768, 60999).unwrap(), 0).unwrap();
//! assert_eq!(solver.reply_queue(&conn, port), 3);
//! ```

mod avx512;
mod clmul;
pub mod error;
pub mod ethtool;
mod key;
mod ports;
mod reta;
mod toeplitz;
mod tuple;

pub use error::{KeyError, PortError, RetaError};
pub use key::{MAX_KEY_LEN, RssKey};
pub use ports::{Family, Outgoing, PortRange, PortSolver, Ports};
pub use reta::{MAX_RETA_SIZE, Reta};
pub use toeplitz::{Implementation, Toeplitz, reference_hash};
pub use tuple::{HashFields, Ipv4Tuple, Ipv6Tuple, V4_DPORT_OFFSET, V6_DPORT_OFFSET};
