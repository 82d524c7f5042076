//! Helpers shared by the `agent_*` tests: a real `sluice serve` process on
//! a synthetic sysfs tree.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_agent::client::Client;

/// A synthetic host (sysfs tree + state directory).
pub struct Host {
    /// Root of both.
    pub dir: tempfile::TempDir,
}

impl Host {
    /// A synthetic host with one igb-like PF `enp1s0` and `vfs` VFs.
    pub fn new(vfs: u32) -> Host {
        let dir = tempfile::tempdir().unwrap();
        sluice_agent::testhost::igb_pf(&dir.path().join("sys"), "0000:01:00.0", "enp1s0", vfs, 0).unwrap();
        Host { dir }
    }
    /// The agent's state directory.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    /// The agent's socket.
    pub fn socket(&self) -> PathBuf {
        self.state().join("api.sock")
    }
    /// A client for the socket.
    pub fn client(&self) -> Client {
        Client::new(self.socket())
    }
    /// Starts `sluice serve` and waits until it accepts connections.
    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }
    /// Starts `sluice serve` with extra arguments.
    pub fn serve_with(&self, extra: &[&str]) -> Server {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--vf-reset", "claim-only"])
            .args(extra)
            .arg("--state-dir")
            .arg(self.state())
            .arg("--sysfs-root")
            .arg(self.dir.path().join("sys"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let s = Server { child };
        wait_for(&self.socket());
        s
    }
    /// Runs a `sluice` client subcommand against the socket.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).env("SLUICE_SOCKET", self.socket()).output().unwrap()
    }
}

fn wait_for(sock: &Path) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if std::os::unix::net::UnixStream::connect(sock).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the agent did not listen on {} within 20 s", sock.display());
}

/// A running agent process (killed on drop).
pub struct Server {
    /// The process.
    pub child: Child,
}

impl Server {
    /// SIGKILL, as a crash.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates physnet `phys` over enp1s0 and VLAN network `net`.
pub fn setup(c: &Client) {
    c.post("/v1/physnets", &serde_json::json!({"name": "phys", "device_specs": [{"pf": "enp1s0"}]})).unwrap();
    c.post(
        "/v1/networks",
        &serde_json::json!({"name": "net", "physnet": "phys", "segment": {"type": "vlan", "id": 100}}),
    )
    .unwrap();
}
