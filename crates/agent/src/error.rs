//! Agent errors: sentences that name the offending field and what is
//! allowed, each with the HTTP status the API answers with.

/// Result with the agent's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the agent can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is out of range or malformed.
    #[error("{field} {reason}")]
    Invalid {
        /// Field path (`segment.id`, `mac`).
        field: String,
        /// What is wrong and what is allowed ("must be 1..=4094, got 5000").
        reason: String,
    },
    /// The request body is not valid JSON for the resource.
    #[error("request body is invalid: {message}")]
    Body {
        /// The field serde named, if any.
        field: Option<String>,
        /// serde's message.
        message: String,
    },
    /// A referenced object does not exist.
    #[error("{kind} {id} does not exist")]
    NotFound {
        /// Resource kind (`network`, `port`).
        kind: &'static str,
        /// Its id.
        id: String,
        /// The request field that referred to it, if any.
        field: Option<&'static str>,
    },
    /// An object with this id already exists.
    #[error("{kind} {id} already exists")]
    Exists {
        /// Resource kind.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The object is still referenced and cannot be deleted.
    #[error("{kind} {id} is in use by {user}")]
    InUse {
        /// Resource kind.
        kind: &'static str,
        /// Its id.
        id: String,
        /// Who uses it (`port p1`).
        user: String,
    },
    /// No free VF is left in the pool.
    #[error("pool exhausted: pool {pool} has 0 of {total} VFs free")]
    PoolExhausted {
        /// Pool (physical network) name.
        pool: String,
        /// VFs in the pool.
        total: usize,
    },
    /// No PF of the pool can be given whole to a `direct-physical` port.
    #[error(
        "pool exhausted: pool {pool} has no PF free for a direct-physical port ({total} PFs, each held whole or with VFs in use)"
    )]
    PfExhausted {
        /// Pool (physical network) name.
        pool: String,
        /// PFs in the pool.
        total: usize,
    },
    /// A release named an owner or generation that does not hold the port.
    #[error("stale release of port {port}: expected {expected}, the port is held by {actual}")]
    StaleRelease {
        /// Port id.
        port: String,
        /// What the caller presented.
        expected: String,
        /// What the store records.
        actual: String,
    },
    /// The host refused a VF operation (claim, reset).
    #[error("host: {0}")]
    Host(#[from] sluice_sriov::Error),
    /// The embedded store failed.
    #[error("store: {0}")]
    Store(String),
    /// The store was written by a newer agent.
    #[error("store schema version {found} is newer than this agent supports (up to {supported})")]
    SchemaTooNew {
        /// Version in the file.
        found: u64,
        /// Highest version this build knows.
        supported: u64,
    },
}

impl Error {
    /// An [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), reason: reason.into() }
    }

    /// The store error for any redb error.
    pub fn store(e: impl Into<redb::Error>) -> Self {
        Error::Store(e.into().to_string())
    }

    /// HTTP status code the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid { .. } | Error::Body { .. } => 400,
            Error::NotFound { field: Some(_), .. } => 400,
            Error::NotFound { field: None, .. } => 404,
            Error::Exists { .. }
            | Error::InUse { .. }
            | Error::PoolExhausted { .. }
            | Error::PfExhausted { .. }
            | Error::StaleRelease { .. } => 409,
            Error::Host(sluice_sriov::Error::StaleClaim { .. }) => 409,
            Error::Host(_) | Error::Store(_) | Error::SchemaTooNew { .. } => 500,
        }
    }

    /// The request field this error is about, if any.
    pub fn field(&self) -> Option<String> {
        match self {
            Error::Invalid { field, .. } => Some(field.clone()),
            Error::Body { field, .. } => field.clone(),
            Error::NotFound { field: Some(f), .. } => Some((*f).to_string()),
            Error::NotFound { kind, .. } | Error::InUse { kind, .. } => Some(path_param(kind).into()),
            Error::Exists { kind, .. } => Some(path_param(kind).into()),
            Error::Host(sluice_sriov::Error::StaleClaim { .. }) => Some("id".into()),
            Error::PoolExhausted { .. } | Error::PfExhausted { .. } => Some("network".into()),
            Error::StaleRelease { .. } => Some("generation".into()),
            _ => None,
        }
    }
}

/// The id field of a resource kind (`name` for networks, physical networks
/// and pools; `path` for an unknown route; else `id`).
fn path_param(kind: &str) -> &'static str {
    match kind {
        "network" | "physical network" | "pool" => "name",
        "route" => "path",
        _ => "id",
    }
}
