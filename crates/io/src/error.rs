//! Errors from opening ports.

/// A port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A setup step failed: `what` reads as a phrase ("bind AF_PACKET socket").
    #[error("could not {what} for {name}: {source}")]
    Setup {
        /// The step.
        what: &'static str,
        /// The interface.
        name: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A configuration value out of range.
    #[error("invalid configuration for {name}: {why}")]
    Config {
        /// The interface.
        name: String,
        /// What is wrong, as a phrase naming the field and the allowed range.
        why: String,
    },
}

impl OpenError {
    pub(crate) fn setup<'a>(what: &'static str, name: &'a str) -> impl FnOnce(std::io::Error) -> OpenError + 'a {
        move |source| OpenError::Setup { what, name: name.to_string(), source }
    }
}

/// The shared start of a kernel port's `tx_batch`: a batch for a queue the
/// port lacks (`queue` is that error), or for a port whose device is gone
/// (`closed`, counted as [`DropReason::PortClosed`] drops), is emptied into
/// the pool and refused.
///
/// [`DropReason::PortClosed`]: sluice_datapath::DropReason::PortClosed
pub(crate) fn refuse_tx(
    queue: Result<(), sluice_datapath::PortError>,
    closed: Option<sluice_datapath::PortError>,
    stats: &mut sluice_datapath::PortStats,
    pool: &mut sluice_packet::BufferPool,
    batch: &mut sluice_datapath::PacketBatch,
) -> Result<(), sluice_datapath::PortError> {
    let refused = match (queue, closed) {
        (Err(e), _) => e,
        (Ok(()), Some(e)) => {
            stats.count_drop(sluice_datapath::DropReason::PortClosed, batch.len() as u64);
            e
        }
        (Ok(()), None) => return Ok(()),
    };
    batch.recycle(pool);
    Err(refused)
}
