//! The crate's error type. Every message reads as a sentence, names the
//! field or object concerned and, for bad input, the allowed range.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while managing an SR-IOV NIC.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A user-supplied value is outside its allowed range or malformed.
    /// Raised before anything on the host is touched.
    #[error("{field} {problem}")]
    Invalid {
        /// The field, as the CLI and API name it (`vlan`, `qos`, `mac`, ...).
        field: &'static str,
        /// What is wrong, including the allowed range and the value given.
        problem: String,
    },

    /// The named PF does not exist under the sysfs root.
    #[error(
        "no SR-IOV physical function matches {0:?} (give a netdev name, a PCI address or a netdevsim device name; `sluice sriov list` shows them)"
    )]
    NoSuchPf(String),

    /// A VF index is not below the current VF count.
    #[error("VF index must be 0..={max} on {pf} (it has {numvfs} VFs), got {index}", max = .numvfs.saturating_sub(1))]
    NoSuchVf {
        /// PF name.
        pf: String,
        /// Requested index.
        index: u32,
        /// Current number of VFs.
        numvfs: u32,
    },

    /// A sysfs read or write failed.
    #[error("sysfs {op} of {path} failed: {source}")]
    Sysfs {
        /// `read`, `write`, `list` or `readlink`.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A sysfs file held something we could not parse.
    #[error("sysfs file {path} holds {content:?}, which is not {expected}")]
    SysfsParse {
        /// The file.
        path: PathBuf,
        /// What it held (trimmed).
        content: String,
        /// What was expected.
        expected: &'static str,
    },

    /// Changing the VF count would destroy VFs that exist (and may be in use).
    #[error(
        "{pf} has {current} VFs; changing to {requested} first removes all of them ({in_use}). Pass --force to do it anyway"
    )]
    DisruptiveChange {
        /// PF name.
        pf: String,
        /// Current VF count.
        current: u32,
        /// Requested VF count.
        requested: u32,
        /// Human description of what is in use.
        in_use: String,
    },

    /// Waiting for VFs (PCI functions, netdevs) timed out.
    #[error("timed out after {secs} s waiting for {what} on {pf}")]
    Timeout {
        /// PF name.
        pf: String,
        /// What was awaited.
        what: String,
        /// The bound that expired.
        secs: u64,
    },

    /// The driver link after a bind does not show the requested driver.
    #[error("binding {vf} to {driver} reported success but the VF is {actual}{hint}")]
    BindNotEffective {
        /// VF PCI address.
        vf: String,
        /// Requested driver.
        driver: String,
        /// What the driver link shows.
        actual: String,
        /// Extra explanation (e.g. no IOMMU).
        hint: String,
    },

    /// A netlink socket operation failed.
    #[error("netlink {op} failed: {source}")]
    Netlink {
        /// What we were doing.
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The kernel or driver refused a VF setting.
    #[error("{pf} refused {field} on VF {vf}: {meaning} (kernel: {errno_text}{extack})")]
    DriverRefused {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// The attribute refused.
        field: &'static str,
        /// What it means for this driver.
        meaning: String,
        /// strerror of the errno.
        errno_text: String,
        /// Extended ack message, formatted as `; "..."` or empty.
        extack: String,
    },

    /// A kernel request failed with an errno (not a VF attribute).
    #[error("{op} failed: {errno_text}{extack}")]
    Kernel {
        /// What we asked for.
        op: String,
        /// strerror of the errno.
        errno_text: String,
        /// Raw errno.
        errno: i32,
        /// Extended ack message, formatted as `: "..."` or empty.
        extack: String,
    },

    /// A reply from the kernel could not be decoded.
    #[error("could not decode the kernel's reply to {op}: {detail}")]
    Decode {
        /// The request.
        op: String,
        /// What was wrong.
        detail: String,
    },

    /// The value read back after a set differs from the value written.
    #[error("VF {vf} on {pf}: {field} reads back {got} after setting {want}")]
    Readback {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// The field.
        field: &'static str,
        /// Written.
        want: String,
        /// Read back.
        got: String,
    },

    /// The VF list the kernel returned is incomplete and could not be recovered.
    #[error("{pf} reports {num_vf} VFs but only {parsed} could be read from the kernel's VF list")]
    TruncatedVfList {
        /// PF name.
        pf: String,
        /// IFLA_NUM_VF.
        num_vf: u32,
        /// Parsed entries.
        parsed: u32,
    },

    /// A compare-and-reset found a different owner or generation.
    #[error("VF {vf} on {pf} is held by {actual}, not by {expected}; refusing to reset it")]
    StaleClaim {
        /// PF name.
        pf: String,
        /// VF index.
        vf: u32,
        /// Token the caller presented.
        expected: String,
        /// What the claim record says.
        actual: String,
    },

    /// Something the operation needs is not available on this PF.
    #[error("{0}")]
    Unsupported(String),

    /// An I/O error on Sluice's own state files.
    #[error("state file {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Error::Invalid { field, problem: problem.into() }
    }
}

/// `strerror` text for a positive errno.
pub(crate) fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}
