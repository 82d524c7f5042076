//! `sluice serve`: runs the host agent (REST API on a unix socket).
//!
//! Until the switch datapath exists, `serve` runs the agent only.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use sluice_agent::host::VfReset;
use sluice_agent::serve::{Config, TcpListen};

/// Arguments of `sluice serve`.
#[derive(Debug, Parser)]
#[command(long_about = "Runs the Sluice host agent: the REST API under /v1/ on a unix socket (mode 0600), \
the intent store and the VF pools. The switch datapath is not part of `serve` yet: for now it runs \
the agent only.")]
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
