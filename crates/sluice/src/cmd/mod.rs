//! One module per subcommand.

pub mod agent_client;
pub mod decode;
pub mod net;
pub mod pool;
pub mod port;
pub mod qos;
pub mod rss;
pub mod serve;
pub mod sg;
pub mod sriov;
pub mod xml;
