//! `sluice serve` as a real process: CLI round trip, socket mode, 1000
//! concurrent binds on a 63-VF pool.

mod agent_common;

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use agent_common::{Host, setup};
use serde_json::json;

#[test]
fn cli_round_trip_over_the_socket() {
    let h = Host::new(4);
    let _s = h.serve();
    let mode = std::fs::metadata(h.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let ok = |args: &[&str]| {
        let o = h.cli(args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    ok(&["net", "physnet-create", "phys", "--device", "enp1s0:0-2"]);
    ok(&["net", "create", "net", "--type", "vlan", "--segment", "100", "--physnet", "phys"]);
    ok(&["sg", "create", "web", "--rule", "ingress:tcp:80-443@10.0.0.0/8", "--rule", "egress"]);
    ok(&["qos", "create", "gold", "--egress-kbps", "100000", "--egress-burst-kb", "1000"]);
    let out = ok(&["sg", "list"]);
    assert!(out.lines().any(|l| l.starts_with("web") && l.trim_end().ends_with('2')), "{out}");
    let o = h.cli(&["qos", "create", "bad", "--ingress-kbps", "0"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("ingress.rate_kbps must be 1..=1000000000, got 0"));
    let out = ok(&[
        "port",
        "create",
        "p1",
        "--network",
        "net",
        "--owner",
        "vm-1",
        "--vnic-type",
        "direct",
        "--security-group",
        "web",
        "--qos-policy",
        "gold",
    ]);
    assert!(out.contains("enp1s0/0") && out.contains("bound"), "{out}");
    let out = ok(&["pool", "show", "phys"]);
    assert!(out.lines().any(|l| l.contains("vm-1") && l.contains("p1")), "{out}");
    assert_eq!(out.lines().count(), 4, "VFs 0..=2 only (device spec range): {out}");
    let out = ok(&["pool", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["vfs"].as_array().unwrap().len(), 3);
    // libvirt XML of the bound port validates.
    for form in ["hostdev", "failover", "plain-hostdev", "macvtap"] {
        let x = ok(&["xml", "p1", "--form", form, "--domain"]);
        let f = h.dir.path().join(format!("{form}.xml"));
        std::fs::write(&f, &x).unwrap();
        let v = std::process::Command::new("virt-xml-validate").arg(&f).arg("domain").output().unwrap();
        assert!(v.status.success(), "{form}: {x}\n{}", String::from_utf8_lossy(&v.stderr));
    }
    // Errors are sentences naming the field.
    let o = h.cli(&["net", "create", "bad", "--type", "vlan", "--segment", "5000", "--physnet", "phys"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("vlan segment must be 1..=4094, got 5000") && err.contains("segment.id"), "{err}");
    let o = h.cli(&["port", "delete", "p1", "--owner", "vm-2"]);
    assert!(!o.status.success());
    let o = h.cli(&["sg", "delete", "web"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("security group web is in use by port p1"));
    ok(&["port", "delete", "p1", "--owner", "vm-1"]);
    ok(&["sg", "delete", "web"]);
    ok(&["qos", "delete", "gold"]);
    let out = ok(&["port", "list"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    // The OpenAPI document is served.
    let doc = h.client().get("/v1/openapi.json").unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}

#[test]
fn thousand_concurrent_binds_on_63_vfs() {
    let h = Host::new(63);
    let _s = h.serve();
    setup(&h.client());
    let n = 1000;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let c = h.client();
            let b = barrier.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let body = json!({"id": format!("p{i}"), "network": "net", "owner": format!("vm{i}"),
                        "vnic_type": "direct"});
                    b.wait();
                    let r = c.request("POST", "/v1/ports", Some(body.to_string().as_bytes())).unwrap();
                    (r.status, r.json().unwrap())
                })
                .unwrap()
        })
        .collect();
    let results: Vec<(u16, serde_json::Value)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let bound = results.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(bound, 63);
    assert_eq!(refused.len(), n - 63, "other statuses: {:?}", results.iter().find(|(s, _)| ![201, 409].contains(s)));
    for (_, v) in refused {
        assert_eq!(v["error"], "pool exhausted: pool phys has 0 of 63 VFs free");
    }
    let pool = h.client().get("/v1/pools/phys").unwrap();
    let mut holders: Vec<String> =
        pool["vfs"].as_array().unwrap().iter().map(|v| v["holder"]["port"].as_str().unwrap().to_string()).collect();
    holders.sort();
    holders.dedup();
    assert_eq!(holders.len(), 63, "every VF held by a different port");
}

fn http_tcp(addr: &str, auth: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET /v1/pools HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn tcp_listener_requires_the_bearer_token() {
    let h = Host::new(2);
    let token = "0123456789abcdef-secret";
    let tf = h.dir.path().join("token");
    std::fs::write(&tf, format!("{token}\n")).unwrap();
    let port = 20000 + (std::process::id() % 30000);
    let addr = format!("127.0.0.1:{port}");
    let _s = h.serve_with(&["--tcp", &addr, "--token-file", tf.to_str().unwrap()]);
    assert!(http_tcp(&addr, None).starts_with("HTTP/1.1 401"));
    let r = http_tcp(&addr, Some("0123456789abcdef-secreT"));
    assert!(r.starts_with("HTTP/1.1 401") && r.contains("\"field\":\"Authorization\""), "{r}");
    assert!(http_tcp(&addr, Some(token)).starts_with("HTTP/1.1 200"));
    // The unix socket needs no token (its mode is the guard).
    assert!(h.client().get("/v1/pools").is_ok());
}
