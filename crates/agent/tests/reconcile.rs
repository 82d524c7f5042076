//! The reconciler over a synthetic host (memory plumbing, memory switch):
//! every vnic type goes `bound` → `active` with the intended VF settings,
//! a second pass changes nothing, errors are sentences, releases unplug,
//! and physical networks may share a PF only with disjoint VF ranges.
//! The same code against real kernels: `crates/sluice/tests/agent_reconcile.rs`
//! (TAPs and macvtap in a network namespace) and `agent_lab.rs` (igb VFs).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sluice_agent::api::{App, router};
use sluice_agent::host::VfReset;
use sluice_agent::model::{Port, PortState};
use sluice_agent::plumb::VfRef;
use sluice_agent::serve::{Config, open};
use sluice_agent::store::Kind;
use sluice_sriov::{LinkState, Vlan, VlanProto};
use tower::ServiceExt;

struct Env {
    _dir: tempfile::TempDir,
    app: App,
}

fn env(vfs: u32) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    sluice_agent::testhost::igb_pf(&sys, "0000:01:00.0", "enp1s0", vfs, 0).unwrap();
    sluice_agent::testhost::igb_pf(&sys, "0000:02:00.0", "enp2s0", 2, 1).unwrap();
    let mut cfg = Config::new(dir.path().join("state"));
    cfg.sysfs_root = sys;
    cfg.vf_reset = VfReset::ClaimOnly;
    let app = open(&cfg).unwrap();
    Env { _dir: dir, app }
}

async fn call(app: &App, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

async fn ok(app: &App, method: &str, path: &str, body: Value) -> Value {
    let (st, v) = call(app, method, path, Some(body)).await;
    assert!(st.is_success(), "{method} {path}: {st} {v}");
    v
}

fn port(app: &App, id: &str) -> Port {
    app.store.get(Kind::Port, id).unwrap().unwrap()
}

async fn pass(app: &App) -> sluice_agent::reconcile::PassReport {
    let r = app.reconciler.clone();
    tokio::task::spawn_blocking(move || r.pass()).await.unwrap().unwrap()
}

#[tokio::test]
async fn every_vnic_type_goes_active_and_a_second_pass_changes_nothing() {
    let e = env(4);
    let a = &e.app;
    ok(a, "POST", "/v1/physnets", json!({"name": "phys", "device_specs": [{"pf": "enp1s0"}, {"pf": "enp2s0"}]})).await;
    ok(a, "POST", "/v1/networks", json!({"name": "net", "physnet": "phys", "segment": {"type": "vlan", "id": 100}}))
        .await;
    ok(a, "POST", "/v1/networks", json!({"name": "vx", "segment": {"type": "vxlan", "vni": 5000}})).await;
    ok(a, "POST", "/v1/qos-policies", json!({"id": "gold", "egress": {"rate_kbps": 250_500}})).await;
    for (id, vnic) in [("d1", "direct"), ("m1", "macvtap"), ("f1", "virtio-forwarder"), ("n1", "normal")] {
        let v = ok(
            a,
            "POST",
            "/v1/ports",
            json!({"id": id, "network": "net", "owner": "vm1", "vnic_type": vnic, "qos_policy": "gold",
                   "mac": format!("02:00:00:00:00:{:02x}", id.as_bytes()[0])}),
        )
        .await;
        assert_eq!(v["status"]["state"], "bound", "{v}");
    }
    ok(a, "POST", "/v1/ports", json!({"id": "o1", "network": "vx", "owner": "vm1"})).await;
    ok(a, "POST", "/v1/ports", json!({"id": "p1", "network": "net", "owner": "vm2", "vnic_type": "direct-physical"}))
        .await;

    let r = pass(a).await;
    assert_eq!((r.ports, r.active, r.errors, r.changed), (6, 6, 0, 6), "{r:?}");
    for id in ["d1", "m1", "f1", "n1", "o1", "p1"] {
        assert_eq!(port(a, id).status.state, PortState::Active, "{id}: {:?}", port(a, id).status);
    }
    // The VF settings the port needs, read back from the (memory) host.
    let d1 = port(a, "d1");
    let b = d1.binding.as_ref().unwrap();
    assert_eq!(b.pf_bus_id, "0000:01:00.0", "VFs come from the PF not held whole");
    let host = a.reconciler.plumbing();
    let r = VfRef { pf_bus_id: &b.pf_bus_id, vf: b.vf };
    let c = host.vf_config(r).unwrap();
    assert_eq!((c.mac.to_string().as_str(), c.vlan.id, c.max_tx_rate), ("02:00:00:00:00:64", 100, 251));
    assert_eq!((c.spoofchk, c.trust, c.link_state), (Some(true), Some(false), Some(LinkState::Auto)));
    assert_eq!(host.vf_function(r).unwrap().driver.as_deref(), Some("vfio-pci"));
    let m1 = port(a, "m1");
    let mb = m1.binding.as_ref().unwrap();
    let f = host.vf_function(VfRef { pf_bus_id: &mb.pf_bus_id, vf: mb.vf }).unwrap();
    assert_eq!(f.driver.as_deref(), Some("igbvf"));
    let mv = host.macvtap("mvtm1").unwrap().unwrap();
    assert!(mv.passthrough && mv.up && mv.lower == f.netdev, "{mv:?}");
    let reason = d1.status.reason.unwrap();
    assert!(reason.contains("synthetic host"), "{reason}");
    // direct-physical took the whole second PF: no VF of it is allocated.
    let p1 = port(a, "p1");
    assert_eq!(p1.pf_binding.as_ref().unwrap().pf_bus_id, "0000:02:00.0");
    let (_, pool) = call(a, "GET", "/v1/pools/phys", None).await;
    for s in pool["vfs"].as_array().unwrap() {
        if s["pf_bus_id"] == "0000:02:00.0" {
            assert!(s["holder"].is_null(), "{s}");
        }
    }
    // Switch ports: normal with the VLAN, overlay without, forwarder in
    // front of its VF netdev.
    let sw = a.reconciler.switch();
    let n1 = sw.attached("n1").unwrap().unwrap();
    assert_eq!((n1.tap.as_str(), n1.vlan, n1.uplink.as_deref()), ("tapn1", Some(100), None));
    assert_eq!(sw.attached("o1").unwrap().unwrap().vlan, None);
    let f1 = sw.attached("f1").unwrap().unwrap();
    assert_eq!(f1.vlan, None, "the VF tags for a forwarder");
    assert!(f1.uplink.is_some());
    assert!(sw.attached("d1").unwrap().is_none());

    // Idempotent: nothing changes on the next pass.
    let r = pass(a).await;
    assert_eq!((r.active, r.errors, r.changed), (6, 0, 0), "{r:?}");

    // Release unplugs: the switch port goes, the VF is free again.
    let (st, _) = call(a, "DELETE", "/v1/ports/f1", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(sw.attached("f1").unwrap().is_none());
    let (st, _) = call(a, "DELETE", "/v1/ports/p1", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    // The second PF is free again and can be taken whole; the first cannot,
    // while VFs of it are in use.
    ok(a, "POST", "/v1/ports", json!({"id": "p2", "network": "net", "owner": "vm2", "vnic_type": "direct-physical"}))
        .await;
    assert_eq!(port(a, "p2").pf_binding.unwrap().pf_bus_id, "0000:02:00.0");
    let (st, v) = call(
        a,
        "POST",
        "/v1/ports",
        Some(json!({"id": "p3", "network": "net", "owner": "vm3", "vnic_type": "direct-physical"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["field"], "network");
    assert!(v["error"].as_str().unwrap().contains("no PF free for a direct-physical port"), "{v}");
}

#[tokio::test]
async fn vf_settings_follow_the_port_and_its_qos() {
    let e = env(2);
    let a = &e.app;
    ok(a, "POST", "/v1/physnets", json!({"name": "phys", "device_specs": [{"pf": "enp1s0"}]})).await;
    ok(a, "POST", "/v1/networks", json!({"name": "net", "physnet": "phys", "segment": {"type": "vlan", "id": 42}}))
        .await;
    ok(a, "POST", "/v1/qos-policies", json!({"id": "q", "egress": {"rate_kbps": 1500}, "ingress": {"rate_kbps": 9}}))
        .await;
    ok(
        a,
        "POST",
        "/v1/ports",
        json!({"id": "d", "network": "net", "owner": "vm", "vnic_type": "direct",
        "mac": "02:11:22:33:44:55", "qos_policy": "q"}),
    )
    .await;
    let p = port(a, "d");
    let q: sluice_agent::model::QosPolicy = a.store.get(Kind::QosPolicy, "q").unwrap().unwrap();
    let want = sluice_agent::reconcile::vf_settings(&p, Some(&q)).unwrap();
    assert_eq!(want.mac.unwrap().to_string(), "02:11:22:33:44:55");
    assert_eq!(want.vlan, Some(Vlan::new(42, 0, VlanProto::Dot1Q).unwrap()));
    assert_eq!((want.spoofchk, want.trust, want.link_state), (Some(true), Some(false), Some(LinkState::Auto)));
    assert_eq!(want.max_tx_rate, Some(2), "1500 kbit/s rounds up to 2 Mbit/s");
    pass(a).await;
    let p = port(a, "d");
    assert_eq!(p.status.state, PortState::Active);
    let reason = p.status.reason.unwrap();
    assert!(reason.contains("a VF enforces only the egress rate"), "{reason}");
    // A change in the host is repaired by the next pass.
    let b = p.binding.unwrap();
    let r = VfRef { pf_bus_id: &b.pf_bus_id, vf: b.vf };
    let host = a.reconciler.plumbing();
    host.configure_vf(r, &sluice_sriov::VfSettings::clean(sluice_sriov::MacAddr::ZERO)).unwrap();
    host.bind_vf(r, None).unwrap();
    let rep = pass(a).await;
    assert_eq!((rep.active, rep.changed), (1, 0), "status stays active: {rep:?}");
    assert_eq!(host.vf_config(r).unwrap().vlan.id, 42);
    assert_eq!(host.vf_function(r).unwrap().driver.as_deref(), Some("vfio-pci"));
}

#[tokio::test]
async fn a_tap_name_clash_is_an_error_sentence_naming_both_ports() {
    let e = env(1);
    let a = &e.app;
    ok(a, "POST", "/v1/networks", json!({"name": "vx", "segment": {"type": "vxlan", "vni": 7}})).await;
    ok(a, "POST", "/v1/ports", json!({"id": "instance-0001-a", "network": "vx", "owner": "vm"})).await;
    ok(a, "POST", "/v1/ports", json!({"id": "instance-0001-b", "network": "vx", "owner": "vm"})).await;
    let r = pass(a).await;
    assert_eq!((r.active, r.errors), (1, 1), "{r:?}");
    let b = port(a, "instance-0001-b");
    assert_eq!(b.status.state, PortState::Error);
    let reason = b.status.reason.unwrap();
    assert!(
        reason.contains("instance-0001-b maps to TAP tapinstance-00")
            && reason.contains("port instance-0001-a already uses"),
        "{reason}"
    );
    assert!(reason.starts_with(char::is_uppercase), "{reason}");
    let (_, m) = call(a, "GET", "/metrics", None).await;
    let m = m.as_str().unwrap();
    assert!(m.contains("sluice_agent_ports{state=\"error\"} 1"), "{m}");
    assert!(m.contains("sluice_agent_ports{state=\"active\"} 1"), "{m}");
    assert!(m.contains("sluice_agent_reconcile_errors_total 1"), "{m}");
    // Start-up pass + this one.
    assert!(m.contains("sluice_agent_reconcile_passes_total 2"), "{m}");
    // Releasing the first fixes the second on the next pass.
    call(a, "DELETE", "/v1/ports/instance-0001-a", None).await;
    pass(a).await;
    assert_eq!(port(a, "instance-0001-b").status.state, PortState::Active);
}

#[derive(Debug)]
struct DatapathCounters;

impl sluice_agent::api::MetricsSource for DatapathCounters {
    fn write_metrics(&self, out: &mut String) {
        out.push_str(
            "# HELP sluice_dp_rx_packets_total Packets received.\n# TYPE sluice_dp_rx_packets_total counter\n",
        );
        out.push_str("sluice_dp_rx_packets_total{port=\"tapn1\"} 7\n");
    }
}

#[tokio::test]
async fn metrics_show_states_pools_reconcile_counters_and_registered_sources() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    sluice_agent::testhost::igb_pf(&sys, "0000:01:00.0", "enp1s0", 4, 0).unwrap();
    let mut cfg = Config::new(dir.path().join("state"));
    cfg.sysfs_root = sys;
    cfg.vf_reset = VfReset::ClaimOnly;
    let extras = sluice_agent::serve::Extras { switch: None, metrics: vec![std::sync::Arc::new(DatapathCounters)] };
    let a = &sluice_agent::serve::open_with(&cfg, extras).unwrap();
    ok(a, "POST", "/v1/physnets", json!({"name": "phys", "device_specs": [{"pf": "enp1s0", "last_vf": 2}]})).await;
    ok(a, "POST", "/v1/networks", json!({"name": "net", "physnet": "phys", "segment": {"type": "flat"}})).await;
    ok(a, "POST", "/v1/ports", json!({"id": "d", "network": "net", "owner": "vm", "vnic_type": "direct"})).await;
    ok(a, "POST", "/v1/ports", json!({"id": "n", "network": "net", "owner": "vm"})).await;
    let (_, m) = call(a, "GET", "/metrics", None).await;
    let m = m.as_str().unwrap().to_string();
    for line in [
        "sluice_agent_ports{state=\"bound\"} 2",
        "sluice_agent_ports{state=\"active\"} 0",
        "sluice_agent_pool_size{pool=\"phys\"} 3",
        "sluice_agent_pool_vfs{pool=\"phys\",state=\"used\"} 1",
        "sluice_agent_pool_vfs{pool=\"phys\",state=\"free\"} 2",
        "sluice_agent_reconcile_passes_total 1",
        "sluice_dp_rx_packets_total{port=\"tapn1\"} 7",
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in:\n{m}");
    }
    pass(a).await;
    let (_, m) = call(a, "GET", "/metrics", None).await;
    let m = m.as_str().unwrap();
    assert!(m.lines().any(|l| l == "sluice_agent_ports{state=\"active\"} 2"), "{m}");
    assert!(m.lines().any(|l| l == "sluice_agent_reconcile_passes_total 2"), "{m}");
    assert!(m.lines().any(|l| l == "sluice_agent_reconcile_errors_total 0"), "{m}");
    // Every family has HELP and TYPE lines.
    for l in m.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(m.contains(&format!("# TYPE {name} ")), "no TYPE for {name}");
    }
}

#[tokio::test]
async fn physnets_share_a_pf_only_with_disjoint_vf_ranges() {
    let e = env(6);
    let a = &e.app;
    ok(
        a,
        "POST",
        "/v1/physnets",
        json!({"name": "red", "device_specs": [{"pf": "enp1s0", "first_vf": 0, "last_vf": 2}]}),
    )
    .await;
    // Closed range 0..=2: the rest of the PF stays for other physnets.
    // Overlap (VF 2), named by PCI address this time: refused, naming both.
    let (st, v) = call(
        a,
        "POST",
        "/v1/physnets",
        Some(json!({"name": "blue", "device_specs": [{"pf": "enp2s0"}, {"pf": "0000:01:00.0", "first_vf": 2}]})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "device_specs[1]");
    assert_eq!(
        v["error"],
        "device_specs[1] of physical network blue selects VF 2 of PF enp1s0 (0000:01:00.0), which physical network \
         red selects too; physical networks sharing a PF must select disjoint VF ranges (first_vf, last_vf, exclude_vfs)"
    );
    let (st, _) = call(a, "GET", "/v1/physnets/blue", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "a refused physnet leaves nothing behind");
    // Disjoint by exclusion: accepted.
    ok(
        a,
        "POST",
        "/v1/physnets",
        json!({"name": "blue", "device_specs": [{"pf": "0000:01:00.0", "first_vf": 2, "exclude_vfs": [2]}]}),
    )
    .await;
    // Blue's range is open (3..=255): it overlaps even where no VF exists
    // yet (VF 9 of a 6-VF PF), so VFs created later never land in two pools.
    let (st, v) = call(
        a,
        "POST",
        "/v1/physnets",
        Some(json!({"name": "green", "device_specs": [{"pf": "enp1s0", "first_vf": 9, "last_vf": 9}]})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("selects VF 9 of PF enp1s0 (0000:01:00.0), which physical network blue"),
        "{v}"
    );
    // Independent pools: exhausting red leaves blue's VFs free.
    ok(a, "POST", "/v1/networks", json!({"name": "rn", "physnet": "red", "segment": {"type": "vlan", "id": 10}})).await;
    ok(a, "POST", "/v1/networks", json!({"name": "bn", "physnet": "blue", "segment": {"type": "vlan", "id": 20}}))
        .await;
    for i in 0..3 {
        ok(
            a,
            "POST",
            "/v1/ports",
            json!({"id": format!("r{i}"), "network": "rn", "owner": "vm", "vnic_type": "direct"}),
        )
        .await;
    }
    let (st, v) =
        call(a, "POST", "/v1/ports", Some(json!({"id": "r3", "network": "rn", "owner": "vm", "vnic_type": "direct"})))
            .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(v["error"], "pool exhausted: pool red has 0 of 3 VFs free");
    let b =
        ok(a, "POST", "/v1/ports", json!({"id": "b0", "network": "bn", "owner": "vm", "vnic_type": "direct"})).await;
    assert_eq!((b["binding"]["pool"].as_str(), b["binding"]["vf"].as_u64()), (Some("blue"), Some(3)));
    let (_, blue) = call(a, "GET", "/v1/pools/blue", None).await;
    let vfs: Vec<u64> = blue["vfs"].as_array().unwrap().iter().map(|s| s["vf"].as_u64().unwrap()).collect();
    assert_eq!(vfs, [3, 4, 5]);
    pass(a).await;
    assert_eq!(port(a, "b0").status.state, PortState::Active);
    assert_eq!(port(a, "r0").status.state, PortState::Active);
    // A shared PF cannot be given whole while either physnet uses a VF of it.
    let (st, v) = call(
        a,
        "POST",
        "/v1/ports",
        Some(json!({"id": "whole", "network": "bn", "owner": "vm", "vnic_type": "direct-physical"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
}
