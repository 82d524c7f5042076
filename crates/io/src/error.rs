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
