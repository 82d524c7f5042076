//! The reconciler against a real kernel, in a network namespace: a real
//! `sluice serve` (netlink mode, so TAP switch ports) plugs `normal` ports
//! as persistent TAPs, reports them `active`, repairs a TAP deleted behind
//! its back on the next periodic pass, removes the TAP on release, and
//! sweeps the TAP of a port released while it was down. The macvtap path
//! of `sluice-sriov` (passthrough on a lower netdev, as on a VF) runs in a
//! namespace too. VFs themselves: `agent_lab.rs` (QEMU lab, igb).

mod agent_common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_agent::client::Client;
use sluice_agent::plumb::{Plumbing, SriovPlumbing};
use sluice_testbed::Netns;

struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(ns: &Netns, h: &agent_common::Host) -> Agent {
    let _ = std::fs::remove_file(h.socket());
    let child = ns
        .command(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--reconcile-interval", "0.5", "--state-dir"])
        .arg(h.state())
        .arg("--sysfs-root")
        .arg(h.dir.path().join("sys"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(h.socket()).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "the agent did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Agent { child }
}

fn wait_state(c: &Client, id: &str, want: &str) -> Value {
    let t = Instant::now();
    loop {
        let p = c.get(&format!("/v1/ports/{id}")).unwrap();
        if p["status"]["state"] == want {
            return p;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "port {id} never became {want}: {p}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The switch ports `sluice dp show` lists: (name, type, vlan, closed).
fn dp_ports(h: &agent_common::Host) -> Vec<(String, String, String, bool)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["dp", "--json", "--socket"])
        .arg(h.state().join("dp.sock"))
        .arg("show")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["bridges"]["br0"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_string();
            (s("name"), s("type"), s("vlan"), p["closed"] == true)
        })
        .collect()
}

fn link(ns: &Netns, name: &str) -> Option<String> {
    ns.ip(&["-d", "link", "show", name]).ok()
}

#[test]
fn normal_ports_become_real_taps_and_are_repaired_and_removed() {
    let ns = Netns::new().unwrap();
    let h = agent_common::Host::new(2);
    let c = h.client();
    let mut agent = serve(&ns, &h);
    c.post("/v1/networks", &json!({"name": "vx", "segment": {"type": "vxlan", "vni": 42}})).unwrap();
    for id in ["vm1-port", "vm2-port"] {
        c.post("/v1/ports", &json!({"id": id, "network": "vx", "owner": "vm", "mac": "02:00:00:00:01:01"})).unwrap();
    }
    let p = wait_state(&c, "vm1-port", "active");
    assert!(p["status"]["reason"].is_null(), "{p}");
    let l = link(&ns, "tapvm1-port").expect("the TAP exists in the agent's namespace");
    assert!(l.contains("tun type tap") && l.contains(",UP"), "{l}");
    // The running switch holds the TAP's host side (AF_PACKET, as OVS
    // holds a tap as a system port); the VM's QEMU opens the TAP itself.
    let ports = dp_ports(&h);
    assert!(ports.contains(&("tapvm1-port".into(), "afpacket".into(), "trunk all".into(), false)), "{ports:?}");
    // Behind the agent's back: the periodic pass (0.5 s) re-creates it.
    ns.ip(&["link", "del", "tapvm1-port"]).unwrap();
    let t = Instant::now();
    while link(&ns, "tapvm1-port").is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "the TAP was not re-created");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.get("/v1/ports/vm1-port").unwrap()["status"]["state"], "active");
    // The switch let go of the deleted TAP and attached the new one.
    let t = Instant::now();
    while !dp_ports(&h).iter().any(|p| p.0 == "tapvm1-port" && !p.3) {
        assert!(t.elapsed() < Duration::from_secs(10), "the switch did not re-attach: {:?}", dp_ports(&h));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Release removes the TAP and the switch port.
    c.delete("/v1/ports/vm1-port").unwrap();
    assert!(link(&ns, "tapvm1-port").is_none());
    assert!(!dp_ports(&h).iter().any(|p| p.0 == "tapvm1-port"), "{:?}", dp_ports(&h));
    // A crash between plugging and storing a port leaves a TAP with a
    // record but no port: the start-up sweep removes it, keeps live
    // ports' TAPs, and never touches a TAP it did not make.
    wait_state(&c, "vm2-port", "active");
    let _ = agent.child.kill();
    let _ = agent.child.wait();
    drop(agent);
    ns.ip(&["tuntap", "add", "dev", "tapghost", "mode", "tap"]).unwrap();
    let ghost = json!({"port_id": "ghost", "tap": "tapghost", "mac": "02:00:00:00:00:99",
        "segment": {"type": "vxlan", "vni": 42}});
    std::fs::write(h.state().join("switch/tapghost.json"), ghost.to_string()).unwrap();
    ns.ip(&["tuntap", "add", "dev", "tapforeign", "mode", "tap"]).unwrap();
    let _agent = serve(&ns, &h);
    assert!(link(&ns, "tapghost").is_none(), "the leftover TAP is swept");
    assert!(link(&ns, "tapvm2-port").is_some(), "a live port's TAP survives the restart");
    assert!(link(&ns, "tapforeign").is_some(), "a TAP the agent did not make is never touched");
    let m = String::from_utf8(c.request("GET", "/metrics", None).unwrap().body).unwrap();
    assert!(m.contains("sluice_agent_ports{state=\"active\"} 1"), "{m}");
    assert!(m.contains("sluice_agent_reconcile_errors_total 0"), "{m}");
    c.delete("/v1/ports/vm2-port").unwrap();
    assert!(link(&ns, "tapvm2-port").is_none());
    let records = std::fs::read_dir(h.state().join("switch")).unwrap().count();
    assert_eq!(records, 0, "no TAP records left");
}

#[test]
fn macvtap_passthrough_on_a_lower_netdev() {
    let ns = Netns::new().unwrap();
    // A veth end stands in for the VF netdev (this kernel has no dummy driver).
    ns.ip(&["link", "add", "vf0", "type", "veth", "peer", "name", "vf0p"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plumb =
        SriovPlumbing::new(sluice_sriov::Host::new(sluice_sriov::SysfsRoot::new(dir.path()), dir.path().join("s")));
    let mac: sluice_sriov::MacAddr = "02:00:00:00:aa:01".parse().unwrap();
    let seen = ns
        .enter(|| {
            assert!(plumb.macvtap("mvtp1").unwrap().is_none());
            plumb.create_macvtap("mvtp1", "vf0", mac).unwrap();
            let m = plumb.macvtap("mvtp1").unwrap().unwrap();
            // A second passthrough macvtap on the same lower is refused.
            let e = plumb.create_macvtap("mvtp2", "vf0", mac).unwrap_err().to_string();
            (m, e)
        })
        .unwrap();
    let (m, e) = seen;
    assert_eq!(m.lower.as_deref(), Some("vf0"));
    assert!(m.passthrough && m.up, "{m:?}");
    assert_eq!(m.mac, Some(mac));
    assert!(e.contains("RTM_NEWLINK macvtap mvtp2"), "{e}");
    let l = ns.ip(&["-d", "link", "show", "mvtp1"]).unwrap();
    assert!(l.contains("macvtap mode passthru") && l.contains("02:00:00:00:aa:01"), "{l}");
    let lower = ns.ip(&["link", "show", "vf0"]).unwrap();
    assert!(lower.contains(",UP"), "the lower netdev is brought up: {lower}");
    ns.enter(|| plumb.delete_link("mvtp1").unwrap()).unwrap();
    assert!(ns.ip(&["link", "show", "mvtp1"]).is_err());
}
