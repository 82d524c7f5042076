//! One module per subcommand.

pub mod decode;
pub mod rss;
pub mod sriov;
