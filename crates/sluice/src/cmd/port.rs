//! `sluice port`: bind (create), release (delete), list and show ports.

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use super::agent_client::{Conn, cell, print_json, table};

/// Arguments of `sluice port`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List ports with their VF and status.
    List,
    /// Show one port.
    Show {
        /// Port id.
        id: String,
    },
    /// Bind a port: "a port on network X for VM Y".
    Create {
        /// Port id.
        id: String,
        /// Network name.
        #[arg(long)]
        network: String,
        /// Owner (VM uuid or pod id).
        #[arg(long)]
        owner: String,
        /// normal, direct, macvtap, direct-physical or virtio-forwarder.
        #[arg(long, default_value = "normal")]
        vnic_type: String,
        /// MAC (generated when absent).
        #[arg(long)]
        mac: Option<String>,
        /// Preferred NUMA node for the VF.
        #[arg(long)]
        numa_node: Option<i32>,
        /// Security group (repeatable).
        #[arg(long = "security-group")]
        security_groups: Vec<String>,
        /// QoS policy.
        #[arg(long)]
        qos_policy: Option<String>,
    },
    /// Release a port (and reset its VF).
    Delete {
        /// Port id.
        id: String,
        /// Only if the port has this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only if the port holds this VF allocation generation.
        #[arg(long)]
        generation: Option<u64>,
    },
}

fn row(p: &Value) -> Vec<String> {
    let b = &p["binding"];
    let vf = if b.is_null() { "-".into() } else { format!("{}/{}", cell(&b["pf"]), cell(&b["vf"])) };
    vec![
        cell(&p["id"]),
        cell(&p["network"]),
        cell(&p["vnic_type"]),
        cell(&p["mac"]),
        cell(&p["owner"]),
        vf,
        cell(&b["pci_addr"]),
        cell(&p["status"]["state"]),
    ]
}

const HEADER: [&str; 8] = ["ID", "NETWORK", "VNIC", "MAC", "OWNER", "VF", "PCI", "STATE"];

/// Runs `sluice port`.
pub fn run(args: Args) -> Result<()> {
    let c = args.conn.client();
    let v = match args.cmd {
        Cmd::List => {
            let v = c.get("/v1/ports")?;
            if !args.conn.json {
                let rows: Vec<Vec<String>> = v.as_array().into_iter().flatten().map(row).collect();
                table(&HEADER, &rows);
                return Ok(());
            }
            v
        }
        Cmd::Show { id } => c.get(&format!("/v1/ports/{id}"))?,
        Cmd::Create { id, network, owner, vnic_type, mac, numa_node, security_groups, qos_policy } => {
            let mut body = json!({"id": id, "network": network, "owner": owner, "vnic_type": vnic_type,
                "security_groups": security_groups});
            for (k, val) in [("mac", json!(mac)), ("numa_node", json!(numa_node)), ("qos_policy", json!(qos_policy))] {
                if !val.is_null() {
                    body[k] = val;
                }
            }
            c.post("/v1/ports", &body)?
        }
        Cmd::Delete { id, owner, generation } => {
            let mut q = Vec::new();
            if let Some(o) = owner {
                q.push(format!("owner={o}"));
            }
            if let Some(g) = generation {
                q.push(format!("generation={g}"));
            }
            let qs = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
            c.delete(&format!("/v1/ports/{id}{qs}"))?;
            if !args.conn.json {
                println!("released port {id}");
            }
            return Ok(());
        }
    };
    if args.conn.json {
        print_json(&v)
    } else {
        table(&HEADER, &[row(&v)]);
        // Why the port is bound (not plugged yet) or in error.
        if let Some(reason) = v["status"]["reason"].as_str() {
            println!("reason: {reason}");
        }
        Ok(())
    }
}
