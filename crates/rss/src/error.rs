//! Error types of the sans-IO core. Messages read as sentences and name the
//! field and the allowed values.

use thiserror::Error;

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The key has the wrong number of bytes.
    #[error("the RSS key must be 40 or 52 bytes long, got {0} bytes")]
    Length(usize),
    /// The key text is not hex.
    #[error("the RSS key must be hex digits (optionally separated by ':'): {0}")]
    Hex(String),
}

/// A RETA that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RetaError {
    /// The table size is not one of the supported sizes.
    #[error("the RETA size must be 64, 128 or 512, got {0}")]
    Size(usize),
    /// No queues.
    #[error("the number of queues must be between 1 and 65535, got {0}")]
    Queues(u32),
}

/// A port-selection request that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortError {
    /// The port range is empty or reversed.
    #[error("the port range must satisfy low <= high, got {low}-{high}")]
    Range {
        /// Lower bound given.
        low: u16,
        /// Upper bound given.
        high: u16,
    },
    /// The local and remote addresses are of different families.
    #[error("the local and remote addresses must both be IPv4 or both be IPv6")]
    MixedFamilies,
    /// The queue is not in the RETA at all.
    #[error("queue {queue} does not appear in the RETA (its entries name queues 0 to {max})")]
    QueueNotInReta {
        /// The queue asked for.
        queue: u16,
        /// Largest queue number in the RETA.
        max: u16,
    },
}
