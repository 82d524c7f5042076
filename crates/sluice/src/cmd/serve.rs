//! `sluice serve`: runs the switch (datapath threads, bridges, its control
//! socket) and the host agent (REST API on a unix socket) in one process.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use sluice_agent::host::VfReset;
use sluice_agent::serve::{Config, TcpListen};

/// Arguments of `sluice serve`.
#[derive(Debug, Parser)]
#[command(long_about = "Runs Sluice: the switch (datapath threads and bridges, from --switch-config or \
empty, with its control socket for `sluice dp`) and the host agent (the REST API under /v1/ on a unix \
socket, mode 0600, the intent store and the VF pools).")]
pub struct Args {
    /// State directory: store.redb, host claim records, and api.sock
    /// unless --socket is given.
    /// [default: /var/lib/sluice]
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Socket path (default DIR/api.sock with --state-dir, else
    /// /run/sluice/api.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Root of the sysfs tree (tests point this at a synthetic tree).
    #[arg(long, default_value = "/sys")]
    sysfs_root: PathBuf,
    /// How VFs are reset around assignment: over rtnetlink on the PF, or
    /// only the claim records (synthetic trees without PF netdevs).
    #[arg(long, value_enum, default_value_t = ResetMode::Netlink)]
    vf_reset: ResetMode,
    /// Also listen on TCP at this address (requires --token-file).
    #[arg(long, requires = "token_file")]
    tcp: Option<std::net::SocketAddr>,
    /// File holding the bearer token required on the TCP listener.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The switch's configuration (TOML: bridges, ports, VLANs); without
    /// it the switch starts with one empty bridge, br0.
    #[arg(long)]
    switch_config: Option<PathBuf>,
    /// The switch's control socket (default DIR/dp.sock with --state-dir,
    /// else /run/sluice/dp.sock).
    #[arg(long)]
    dp_socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ResetMode {
    Netlink,
    ClaimOnly,
}

/// Runs `sluice serve`.
pub fn run(args: Args) -> Result<()> {
    let socket = args.socket.unwrap_or_else(|| match &args.state_dir {
        Some(d) => d.join("api.sock"),
        None => PathBuf::from(sluice_agent::client::DEFAULT_SOCKET),
    });
    let tcp = match (args.tcp, &args.token_file) {
        (Some(addr), Some(f)) => {
            let token = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?
                .trim()
                .to_string();
            if token.len() < 16 {
                bail!("the token in {} must be at least 16 characters long, got {}", f.display(), token.len());
            }
            Some(TcpListen { addr, token })
        }
        _ => None,
    };
    let switch_config = match &args.switch_config {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            sluice_switch::SwitchConfig::from_toml(&text).with_context(|| format!("in {}", f.display()))?
        }
        None => sluice_switch::SwitchConfig::default(),
    };
    let dp_socket = args.dp_socket.unwrap_or_else(|| match &args.state_dir {
        Some(d) => d.join("dp.sock"),
        None => PathBuf::from(sluice_switch::control::DEFAULT_SOCKET),
    });
    let switch = std::sync::Arc::new(sluice_switch::Switch::start(switch_config).context("the switch did not start")?);
    let _control = sluice_switch::ControlServer::start(&dp_socket, switch.clone())
        .with_context(|| format!("cannot listen on {}", dp_socket.display()))?;
    tracing::info!(socket = %dp_socket.display(), "switch control socket ready");
    sluice_agent::serve::run(Config {
        tcp,
        state_dir: args.state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/sluice")),
        socket,
        sysfs_root: args.sysfs_root,
        vf_reset: match args.vf_reset {
            ResetMode::Netlink => VfReset::Netlink,
            ResetMode::ClaimOnly => VfReset::ClaimOnly,
        },
    })
}
