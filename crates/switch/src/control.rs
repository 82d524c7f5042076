//! The switch's control socket (like OVS's `ovs-appctl` socket): a unix
//! socket, mode 0600, speaking one JSON request per line and answering one
//! JSON line each: `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`.
//! Requests (`cmd`): `show`, `add-port`, `del-port`, `set-vlan`,
//! `dump-flows`, `trace`, `macs`. Unknown fields are refused.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{PortConfig, VlanConfig};
use crate::switch::Switch;

/// The default socket path.
pub const DEFAULT_SOCKET: &str = "/run/sluice/dp.sock";

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Ports, bridges and threads with counters.
    Show,
    /// Open and attach a port.
    AddPort {
        /// The port.
        port: PortConfig,
    },
    /// Detach and close a port.
    DelPort {
        /// Its name.
        name: String,
    },
    /// Change a port's VLAN settings.
    SetVlan {
        /// Its name.
        name: String,
        /// The new settings.
        vlan: VlanConfig,
    },
    /// Megaflows of every datapath thread.
    DumpFlows,
    /// What the slow path would do with a packet.
    Trace {
        /// The packet spec (see `sluice_switch::spec`).
        packet: String,
    },
    /// Learned stations.
    Macs {
        /// One bridge, or all.
        #[serde(default)]
        bridge: Option<String>,
    },
}

fn handle(sw: &Switch, line: &str) -> Value {
    let req: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return json!({"ok": false, "error": format!("bad request: {e}")}),
    };
    let r: Result<Value, String> = match req {
        Request::Show => serde_json::to_value(sw.show()).map_err(|e| e.to_string()),
        Request::AddPort { port } => sw.add_port(port).map(|no| json!({"number": no})).map_err(|e| e.to_string()),
        Request::DelPort { name } => sw.remove_port(&name).map(|()| Value::Null).map_err(|e| e.to_string()),
        Request::SetVlan { name, vlan } => sw.set_vlan(&name, vlan).map(|()| Value::Null).map_err(|e| e.to_string()),
        Request::DumpFlows => {
            let names = sw.port_numbers();
            let threads: Vec<Value> =
                sw.dump_flows().into_iter().map(|(t, flows)| json!({"thread": t, "flows": flows})).collect();
            Ok(json!({"ports": names, "threads": threads}))
        }
        Request::Trace { packet } => sw
            .trace(&packet)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::to_value(t).map_err(|e| e.to_string())),
        Request::Macs { bridge } => sw
            .macs(bridge.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|m| serde_json::to_value(m).map_err(|e| e.to_string())),
    };
    match r {
        Ok(v) => json!({"ok": true, "result": v}),
        Err(e) => json!({"ok": false, "error": e}),
    }
}

/// A running control socket; removes its socket file when dropped.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Listens on `path` (replacing a stale socket file) and serves
    /// requests for `sw` on a thread.
    pub fn start(path: &Path, sw: Arc<Switch>) -> std::io::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("another switch is serving {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new().name("sluice-dpctl".into()).spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                let Ok(mut w) = conn.try_clone() else { continue };
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { break };
                    if line.trim().is_empty() {
                        continue;
                    }
                    let reply = handle(&sw, &line);
                    if writeln!(w, "{reply}").is_err() {
                        break;
                    }
                }
            }
        })?;
        Ok(ControlServer { path: path.to_path_buf(), stop, handle: Some(handle) })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = UnixStream::connect(&self.path); // wakes the accept loop
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends one request and returns the result (or the server's error).
pub fn request(path: &Path, req: &Request) -> Result<Value, String> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach the switch at {} ({e}); is `sluice serve` running? (--socket or SLUICE_DP_SOCKET)",
            path.display()
        )
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    writeln!(s, "{line}").map_err(|e| format!("cannot send to {}: {e}", path.display()))?;
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).map_err(|e| format!("no answer from {}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&reply).map_err(|e| format!("garbled answer from {}: {e}", path.display()))?;
    if v["ok"] == Value::Bool(true) {
        Ok(v["result"].clone())
    } else {
        Err(v["error"].as_str().unwrap_or("unknown error").to_string())
    }
}
