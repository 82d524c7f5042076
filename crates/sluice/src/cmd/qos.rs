//! `sluice qos`: QoS policies (stored now, enforced by the switch later).

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::json;

use super::agent_client::{Conn, cell, print_json, table};

/// Arguments of `sluice qos`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List QoS policies.
    List,
    /// Show one QoS policy.
    Show {
        /// Id.
        id: String,
    },
    /// Create a QoS policy.
    Create {
        /// Id.
        id: String,
        /// Ingress (towards the VM) rate in kbit/s.
        #[arg(long)]
        ingress_kbps: Option<u64>,
        /// Ingress burst in kbit.
        #[arg(long, default_value_t = 0, requires = "ingress_kbps")]
        ingress_burst_kb: u64,
        /// Egress (from the VM) rate in kbit/s.
        #[arg(long)]
        egress_kbps: Option<u64>,
        /// Egress burst in kbit.
        #[arg(long, default_value_t = 0, requires = "egress_kbps")]
        egress_burst_kb: u64,
    },
    /// Delete a QoS policy.
    Delete {
        /// Id.
        id: String,
    },
}

/// Runs `sluice qos`.
pub fn run(args: Args) -> Result<()> {
    let c = args.conn.client();
    let v = match args.cmd {
        Cmd::List => {
            let v = c.get("/v1/qos-policies")?;
            if !args.conn.json {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|q| {
                        vec![
                            cell(&q["id"]),
                            cell(&q["ingress"]["rate_kbps"]),
                            cell(&q["ingress"]["burst_kb"]),
                            cell(&q["egress"]["rate_kbps"]),
                            cell(&q["egress"]["burst_kb"]),
                        ]
                    })
                    .collect();
                table(&["ID", "IN_KBPS", "IN_BURST_KB", "OUT_KBPS", "OUT_BURST_KB"], &rows);
                return Ok(());
            }
            v
        }
        Cmd::Show { id } => c.get(&format!("/v1/qos-policies/{id}"))?,
        Cmd::Create { id, ingress_kbps, ingress_burst_kb, egress_kbps, egress_burst_kb } => {
            let mut body = json!({"id": id});
            if let Some(r) = ingress_kbps {
                body["ingress"] = json!({"rate_kbps": r, "burst_kb": ingress_burst_kb});
            }
            if let Some(r) = egress_kbps {
                body["egress"] = json!({"rate_kbps": r, "burst_kb": egress_burst_kb});
            }
            c.post("/v1/qos-policies", &body)?
        }
        Cmd::Delete { id } => {
            c.delete(&format!("/v1/qos-policies/{id}"))?;
            return Ok(());
        }
    };
    print_json(&v)
}
