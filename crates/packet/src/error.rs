//! The one error type of the packet library: small, `Copy`, and cheap to
//! return on the per-packet path.

use core::fmt;

/// Why bytes could not be read as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field in it
    /// claims).
    Truncated,
    /// A field holds a value the format does not allow; the text says which.
    Malformed(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("the packet is shorter than its headers say"),
            Error::Malformed(what) => write!(f, "malformed packet: {what}"),
        }
    }
}

impl std::error::Error for Error {}

/// The result of a parse.
pub type Result<T> = core::result::Result<T, Error>;
