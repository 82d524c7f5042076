//! Shared bits of the agent client subcommands (`port`, `pool`, `net`,
//! `xml`): the socket option, table printing.

use std::path::PathBuf;

use clap::Parser;
use sluice_agent::client::{Client, DEFAULT_SOCKET};

/// Where the agent listens.
#[derive(Debug, Parser)]
pub struct Conn {
    /// The agent's socket.
    #[arg(long, global = true, env = "SLUICE_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Conn {
    /// A client for the socket.
    pub fn client(&self) -> Client {
        Client::new(&self.socket)
    }
}

/// Prints rows as an aligned table under `header`.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.len());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells.iter().zip(&w).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// A JSON value as a table cell (`-` for null).
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints JSON.
pub fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
