//! One module per subcommand.

pub mod agent_client;
pub mod decode;
pub mod demo;
pub mod dp;
pub mod net;
pub mod pool;
pub mod port;
pub mod qos;
pub mod rss;
pub mod serve;
pub mod sg;
pub mod sriov;
pub mod xml;
