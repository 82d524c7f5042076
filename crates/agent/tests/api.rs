//! In-process API tests: the router against the OpenAPI document, and the
//! bind/release path over a synthetic sysfs tree.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sluice_agent::api::{OPENAPI, ROUTES, router};
use sluice_agent::host::VfReset;
use sluice_agent::serve::{Config, open};
use tower::ServiceExt;

struct Env {
    _dir: tempfile::TempDir,
    app: axum::Router,
    cfg: Config,
}

fn env(vfs: u32) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    sluice_agent::testhost::igb_pf(&sys, "0000:01:00.0", "enp1s0", vfs, 0).unwrap();
    let cfg = Config {
        state_dir: dir.path().join("state"),
        socket: dir.path().join("state/api.sock"),
        sysfs_root: sys,
        vf_reset: VfReset::ClaimOnly,
        tcp: None,
        reconcile_interval: sluice_agent::serve::DEFAULT_RECONCILE_INTERVAL,
    };
    let app = router(open(&cfg).unwrap());
    Env { _dir: dir, app, cfg }
}

async fn call(app: &axum::Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn doc_routes() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "patch", "delete"] {
            if item.get(m).is_some() {
                out.push((m.to_string(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn every_route_is_documented_and_served() {
    let e = env(2);
    let mut ours: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    ours.sort();
    assert_eq!(ours, doc_routes(), "ROUTES and openapi.json differ");
    // Each documented route is served (not the fallback 404 / a 405).
    for (m, p) in &ours {
        let path = p.replace("{name}", "nope").replace("{id}", "nope");
        let body = (m == "post").then(|| json!({}));
        let (st, v) = call(&e.app, &m.to_uppercase(), &path, body).await;
        assert_ne!(st, StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        if st == StatusCode::NOT_FOUND {
            assert!(!v["error"].as_str().unwrap().starts_with("route"), "{m} {p} is not routed: {v}");
        }
    }
    let (st, v) = call(&e.app, "GET", "/v1/nothing", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("route"));
}

async fn setup(app: &axum::Router) {
    let (st, v) =
        call(app, "POST", "/v1/physnets", Some(json!({"name": "phys", "device_specs": [{"pf": "enp1s0"}]}))).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = call(
        app,
        "POST",
        "/v1/networks",
        Some(json!({"name": "net", "physnet": "phys", "segment": {"type": "vlan", "id": 100}})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn errors_name_the_field() {
    let e = env(2);
    setup(&e.app).await;
    let cases = [
        (
            "/v1/networks",
            json!({"name": "n2", "physnet": "phys", "segment": {"type": "vlan", "id": 5000}}),
            "segment.id",
        ),
        ("/v1/networks", json!({"name": "n2", "segment": {"type": "vlan", "id": 5}, "colour": 1}), "colour"),
        ("/v1/networks", json!({"name": "n2", "physnet": "nope", "segment": {"type": "flat"}}), "physnet"),
        ("/v1/ports", json!({"id": "p", "network": "net"}), "owner"),
        ("/v1/ports", json!({"id": "p", "network": "net", "owner": "vm", "vnic_type": "weird"}), "vnic_type"),
        ("/v1/ports", json!({"id": "p", "network": "gone", "owner": "vm"}), "network"),
        (
            "/v1/ports",
            json!({"id": "p", "network": "net", "owner": "vm", "security_groups": ["x"]}),
            "security_groups[0]",
        ),
        ("/v1/physnets", json!({"name": "p2", "device_specs": [{"pf": "eth9"}]}), "device_specs[0].pf"),
        ("/v1/qos-policies", json!({"id": "q", "egress": {"rate_kbps": 0}}), "egress.rate_kbps"),
        ("/v1/qos-policies", json!({"id": "q", "": 1}), "(empty field name)"),
        ("/v1/security-groups", json!({"id": "s", "rules": [{"direction": "up"}]}), "rules[0].direction"),
    ];
    for (path, body, field) in cases {
        let (st, v) = call(&e.app, "POST", path, Some(body.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body} -> {v}");
        assert_eq!(v["field"], field, "{body} -> {v}");
    }
    let (_, v) = call(
        &e.app,
        "POST",
        "/v1/networks",
        Some(json!({"name": "n2", "physnet": "phys", "segment": {"type": "vlan", "id": 5000}})),
    )
    .await;
    assert_eq!(v["error"], "segment.id vlan segment must be 1..=4094, got 5000");
}

#[tokio::test]
async fn bind_exhaust_release_and_metrics() {
    let e = env(3);
    setup(&e.app).await;
    for i in 0..3 {
        let (st, v) = call(
            &e.app,
            "POST",
            "/v1/ports",
            Some(json!({"id": format!("p{i}"), "network": "net", "owner": format!("vm{i}"), "vnic_type": "direct"})),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["vlan"], 100);
        assert_eq!(v["binding"]["host_claim"]["owner"], format!("p{i}"));
    }
    let (st, v) = call(
        &e.app,
        "POST",
        "/v1/ports",
        Some(json!({"id": "p9", "network": "net", "owner": "vm", "vnic_type": "direct"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(v["error"], "pool exhausted: pool phys has 0 of 3 VFs free");
    // A normal port needs no VF.
    let (st, _) = call(&e.app, "POST", "/v1/ports", Some(json!({"id": "n0", "network": "net", "owner": "vm"}))).await;
    assert_eq!(st, StatusCode::CREATED);
    // Release with the wrong owner is refused; the right one frees the VF.
    let (st, v) = call(&e.app, "DELETE", "/v1/ports/p1?owner=vm9", None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, v) = call(&e.app, "DELETE", "/v1/ports/p1?generation=x", None).await;
    assert_eq!((st, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("generation")), "{v}");
    let (st, _) = call(&e.app, "DELETE", "/v1/ports/p1?owner=vm1&generation=1", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = call(&e.app, "DELETE", "/v1/ports/p1", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, pool) = call(&e.app, "GET", "/v1/pools/phys", None).await;
    let held: Vec<&Value> = pool["vfs"].as_array().unwrap().iter().filter(|v| !v["holder"].is_null()).collect();
    assert_eq!(held.len(), 2);
    // The host claim of the released VF is gone.
    let claims = sluice_sriov::ClaimStore::new(e.cfg.state_dir.join("sriov/claims"));
    assert_eq!(claims.read("0000:01:00.0", 1).unwrap().owner, None);
    assert_eq!(claims.read("0000:01:00.0", 0).unwrap().owner.as_deref(), Some("p0"));
    let (st, m) = call(&e.app, "GET", "/metrics", None).await;
    assert_eq!(st, StatusCode::OK);
    let m = m.as_str().unwrap();
    assert!(m.contains("sluice_agent_ports{state=\"bound\"} 3"), "{m}");
    assert!(m.contains("sluice_agent_pool_vfs{pool=\"phys\",state=\"free\"} 1"), "{m}");
    // In use: the network and physnet cannot go.
    let (st, v) = call(&e.app, "DELETE", "/v1/physnets/phys", None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
}

#[tokio::test]
async fn restart_repairs_host_claims() {
    let e = env(2);
    setup(&e.app).await;
    let (st, _) = call(
        &e.app,
        "POST",
        "/v1/ports",
        Some(json!({"id": "a", "network": "net", "owner": "vm", "vnic_type": "direct"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    // Simulate crashes: the claim of port a lost, a leaked claim on VF 1.
    let claims = sluice_sriov::ClaimStore::new(e.cfg.state_dir.join("sriov/claims"));
    claims.release_with("0000:01:00.0", 0, None, true, || Ok(())).unwrap();
    claims.claim("0000:01:00.0", 1, "ghost").unwrap();
    drop(e.app);
    let app = open(&e.cfg).unwrap();
    let rep = sluice_agent::reconcile::claims(&app.store, &app.host).unwrap();
    assert_eq!(rep, Default::default(), "open() already repaired everything");
    assert_eq!(claims.read("0000:01:00.0", 0).unwrap().owner.as_deref(), Some("a"));
    assert_eq!(claims.read("0000:01:00.0", 1).unwrap().owner, None);
}
