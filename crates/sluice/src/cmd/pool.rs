//! `sluice pool`: who holds which VF — what libvirt's pools cannot tell.

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::Value;

use super::agent_client::{Conn, cell, print_json, table};

/// Arguments of `sluice pool`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Every pool with its use.
    List,
    /// Every VF of a pool and who holds it.
    Show {
        /// Pool (physical network) name.
        name: String,
    },
}

/// Runs `sluice pool`.
pub fn run(args: Args) -> Result<()> {
    let c = args.conn.client();
    match args.cmd {
        Cmd::List => {
            let v = c.get("/v1/pools")?;
            if args.conn.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let vfs = p["vfs"].as_array().map_or(0, Vec::len);
                    let used = p["vfs"].as_array().into_iter().flatten().filter(|v| !v["holder"].is_null()).count();
                    vec![cell(&p["name"]), vfs.to_string(), used.to_string(), (vfs - used).to_string()]
                })
                .collect();
            table(&["POOL", "VFS", "USED", "FREE"], &rows);
        }
        Cmd::Show { name } => {
            let v = c.get(&format!("/v1/pools/{name}"))?;
            if args.conn.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v["vfs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s: &Value| {
                    vec![
                        cell(&s["pf"]),
                        cell(&s["vf"]),
                        cell(&s["pci_addr"]),
                        cell(&s["netdev"]),
                        cell(&s["numa_node"]),
                        cell(&s["generation"]),
                        cell(&s["holder"]["port"]),
                        cell(&s["holder"]["owner"]),
                    ]
                })
                .collect();
            table(&["PF", "VF", "PCI", "NETDEV", "NUMA", "GEN", "PORT", "OWNER"], &rows);
        }
    }
    Ok(())
}
