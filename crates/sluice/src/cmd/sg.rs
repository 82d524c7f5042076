//! `sluice sg`: security groups (stored now, enforced by the switch later).

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use super::agent_client::{Conn, cell, print_json, table};

/// Arguments of `sluice sg`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List security groups.
    List,
    /// Show one security group.
    Show {
        /// Id.
        id: String,
    },
    /// Create a security group.
    Create {
        /// Id.
        id: String,
        /// Allow rule `DIRECTION[:PROTO[:PORT[-PORT]]][@CIDR]`, e.g.
        /// `ingress:tcp:22@10.0.0.0/8`; repeatable.
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// Rules are for IPv6.
        #[arg(long)]
        ipv6: bool,
    },
    /// Delete a security group.
    Delete {
        /// Id.
        id: String,
    },
}

fn rule(s: &str, ipv6: bool) -> Result<Value> {
    let (spec, cidr) = match s.split_once('@') {
        Some((a, c)) => (a, Some(c)),
        None => (s, None),
    };
    let mut parts = spec.split(':');
    let dir = parts.next().unwrap_or_default();
    if !matches!(dir, "ingress" | "egress") {
        bail!("--rule must start with ingress or egress, got {s:?}");
    }
    let mut r = json!({"direction": dir, "ethertype": if ipv6 { "ipv6" } else { "ipv4" }});
    if let Some(p) = parts.next() {
        r["protocol"] = json!(p);
    }
    if let Some(ports) = parts.next() {
        let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
        r["port_min"] = json!(lo.parse::<u32>()?);
        r["port_max"] = json!(hi.parse::<u32>()?);
    }
    if let Some(c) = cidr {
        r["remote_ip_prefix"] = json!(c);
    }
    Ok(r)
}

/// Runs `sluice sg`.
pub fn run(args: Args) -> Result<()> {
    let c = args.conn.client();
    let v = match args.cmd {
        Cmd::List => {
            let v = c.get("/v1/security-groups")?;
            if !args.conn.json {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|g| vec![cell(&g["id"]), g["rules"].as_array().map_or(0, Vec::len).to_string()])
                    .collect();
                table(&["ID", "RULES"], &rows);
                return Ok(());
            }
            v
        }
        Cmd::Show { id } => c.get(&format!("/v1/security-groups/{id}"))?,
        Cmd::Create { id, rules, ipv6 } => {
            let rules = rules.iter().map(|r| rule(r, ipv6)).collect::<Result<Vec<_>>>()?;
            c.post("/v1/security-groups", &json!({"id": id, "rules": rules}))?
        }
        Cmd::Delete { id } => {
            c.delete(&format!("/v1/security-groups/{id}"))?;
            return Ok(());
        }
    };
    print_json(&v)
}
