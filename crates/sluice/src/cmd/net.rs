//! `sluice net`: physical networks (with device specs) and networks.

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use super::agent_client::{Conn, cell, print_json, table};

/// Arguments of `sluice net`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List networks.
    List,
    /// Create a network.
    Create {
        /// Name.
        name: String,
        /// flat, vlan, vxlan or gre.
        #[arg(long = "type", default_value = "vlan")]
        kind: String,
        /// VLAN id, VNI or GRE key.
        #[arg(long)]
        segment: Option<u32>,
        /// Physical network (flat and vlan).
        #[arg(long)]
        physnet: Option<String>,
    },
    /// Delete a network.
    Delete {
        /// Name.
        name: String,
    },
    /// List physical networks.
    Physnets,
    /// Create a physical network and its VF pool.
    PhysnetCreate {
        /// Name.
        name: String,
        /// Device spec `PF[:FIRST-LAST]` (PF netdev or PCI address); repeatable.
        #[arg(long = "device", required = true)]
        devices: Vec<String>,
        /// VF indexes to exclude (applied to every device spec).
        #[arg(long = "exclude-vf")]
        exclude: Vec<u32>,
    },
    /// Delete a physical network.
    PhysnetDelete {
        /// Name.
        name: String,
    },
}

fn device_spec(s: &str, exclude: &[u32]) -> Result<Value> {
    let (pf, range) = match s.rsplit_once(':') {
        Some((pf, r)) if r.contains('-') => (pf, Some(r)),
        _ => (s, None),
    };
    let mut v = json!({"pf": pf, "exclude_vfs": exclude});
    if let Some(r) = range {
        let Some((a, b)) = r.split_once('-') else { bail!("--device range must be FIRST-LAST, got {r:?}") };
        v["first_vf"] = json!(a.parse::<u32>()?);
        v["last_vf"] = json!(b.parse::<u32>()?);
    }
    Ok(v)
}

/// Runs `sluice net`.
pub fn run(args: Args) -> Result<()> {
    let c = args.conn.client();
    let out = match args.cmd {
        Cmd::List => {
            let v = c.get("/v1/networks")?;
            if !args.conn.json {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| {
                        let seg = &n["segment"];
                        let id = [&seg["id"], &seg["vni"], &seg["key"]].into_iter().find(|x| !x.is_null());
                        vec![cell(&n["name"]), cell(&seg["type"]), id.map_or("-".into(), cell), cell(&n["physnet"])]
                    })
                    .collect();
                table(&["NAME", "TYPE", "SEGMENT", "PHYSNET"], &rows);
                return Ok(());
            }
            v
        }
        Cmd::Create { name, kind, segment, physnet } => {
            let seg = match (kind.as_str(), segment) {
                ("flat", _) => json!({"type": "flat"}),
                ("vlan", Some(id)) => json!({"type": "vlan", "id": id}),
                ("vxlan", Some(vni)) => json!({"type": "vxlan", "vni": vni}),
                ("gre", Some(key)) => json!({"type": "gre", "key": key}),
                (k, _) => bail!("--type must be flat, vlan, vxlan or gre (with --segment), got {k:?}"),
            };
            let mut body = json!({"name": name, "segment": seg});
            if let Some(p) = physnet {
                body["physnet"] = json!(p);
            }
            c.post("/v1/networks", &body)?
        }
        Cmd::Delete { name } => {
            c.delete(&format!("/v1/networks/{name}"))?;
            return Ok(());
        }
        Cmd::Physnets => {
            let v = c.get("/v1/physnets")?;
            if !args.conn.json {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let specs: Vec<String> =
                            p["device_specs"].as_array().into_iter().flatten().map(|d| cell(&d["pf"])).collect();
                        vec![cell(&p["name"]), specs.join(",")]
                    })
                    .collect();
                table(&["NAME", "DEVICES"], &rows);
                return Ok(());
            }
            v
        }
        Cmd::PhysnetCreate { name, devices, exclude } => {
            let specs = devices.iter().map(|d| device_spec(d, &exclude)).collect::<Result<Vec<_>>>()?;
            c.post("/v1/physnets", &json!({"name": name, "device_specs": specs}))?
        }
        Cmd::PhysnetDelete { name } => {
            c.delete(&format!("/v1/physnets/{name}"))?;
            return Ok(());
        }
    };
    print_json(&out)
}
