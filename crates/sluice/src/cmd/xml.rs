//! `sluice xml PORT`: libvirt XML for a bound port (asks the agent for the
//! port, renders with `sluice_agent::xml`).

use anyhow::{Context, Result};
use clap::Parser;
use sluice_agent::model::{Pool, Port};
use sluice_agent::xml::{Form, in_domain, pool_network, render};

use super::agent_client::Conn;

/// Arguments of `sluice xml`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    /// Port id (or pool name with --pool-network).
    name: String,
    /// hostdev, plain-hostdev, macvtap, ethernet, vhostuser or failover
    /// (default: the port's vnic type's natural form).
    #[arg(long)]
    form: Option<String>,
    /// Wrap the devices in a minimal <domain> (for virt-xml-validate).
    #[arg(long)]
    domain: bool,
    /// Print the <network> with <forward mode='hostdev'> for pool NAME.
    #[arg(long)]
    pool_network: bool,
}

/// Runs `sluice xml`.
pub fn run(args: Args) -> Result<()> {
    let c = args.conn.client();
    if args.pool_network {
        let pool: Pool = serde_json::from_value(c.get(&format!("/v1/pools/{}", args.name))?)
            .context("the agent sent a pool this client cannot read")?;
        print!("{}", pool_network(&pool));
        return Ok(());
    }
    let port: Port = serde_json::from_value(c.get(&format!("/v1/ports/{}", args.name))?)
        .context("the agent sent a port this client cannot read")?;
    let form = match &args.form {
        Some(f) => Form::parse(f)?,
        None => Form::default_for(port.spec.vnic_type),
    };
    let x = render(&port, form)?;
    print!("{}", if args.domain { in_domain(&x) } else { x });
    Ok(())
}
