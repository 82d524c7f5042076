//! `sluice`: the one user-facing binary.
//!
//! Each subcommand lives in its own module under `cmd/` and owns its argument
//! struct; this file only dispatches. Subcommands that talk to the host
//! (sysfs, netlink) keep that code in the library crates, never here.

mod cmd;

/// Large tables (the megaflow index and slab, the exact-match caches) on
/// transparent huge pages; everything else from the system allocator.
#[global_allocator]
static ALLOC: sluice_mem::HugePages = sluice_mem::HugePages;

use clap::{Parser, Subcommand};

/// Sluice: fast, managed networking for VMs and containers on SR-IOV and
/// offloading NICs.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode packets from a pcap file layer by layer (a built-in sample
    /// capture when no file is given).
    Decode(cmd::decode::Args),
    /// RSS (Toeplitz) hashes, queues and RSS-aware source ports.
    Rss(cmd::rss::Args),
    /// Manage SR-IOV NICs: inventory, VF count, VF settings, reset, driver binding
    Sriov(cmd::sriov::Args),
    /// Run Sluice: the switch (datapath threads, control socket) and the
    /// host agent (REST API on a unix socket).
    Serve(cmd::serve::Args),
    /// See the switch at work: four namespace "VMs" on two VLANs, attached by
    /// AF_XDP and TAP ports; pings, a UDP burst, VLAN isolation, counters.
    /// Needs root; cleans up after itself.
    Demo(cmd::demo::Args),
    /// The switch datapath: show, dump-flows, trace, ports and VLANs at run
    /// time; `dp run` switches between interfaces in the foreground.
    Dp(cmd::dp::Args),
    /// (internal) UDP sender/receiver that `sluice demo` runs inside a namespace.
    #[command(hide = true, name = "demo-udp")]
    DemoUdp(cmd::demo::UdpArgs),
    /// Agent client: networks and physical networks.
    Net(cmd::net::Args),
    /// Agent client: bind, release and list ports.
    Port(cmd::port::Args),
    /// Agent client: VF pools — who holds which VF.
    Pool(cmd::pool::Args),
    /// Agent client: libvirt XML for a bound port.
    Xml(cmd::xml::Args),
    /// Agent client: security groups.
    Sg(cmd::sg::Args),
    /// Agent client: QoS policies.
    Qos(cmd::qos::Args),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => cmd::decode::run(args),
        Command::Rss(args) => cmd::rss::run(args),
        Command::Sriov(args) => cmd::sriov::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Dp(args) => cmd::dp::run(args),
        Command::DemoUdp(args) => cmd::demo::udp(args),
        Command::Net(args) => cmd::net::run(args),
        Command::Port(args) => cmd::port::run(args),
        Command::Pool(args) => cmd::pool::run(args),
        Command::Xml(args) => cmd::xml::run(args),
        Command::Sg(args) => cmd::sg::run(args),
        Command::Qos(args) => cmd::qos::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sluice: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
