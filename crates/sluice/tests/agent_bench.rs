//! Bind latency of a real `sluice serve` (ignored by default; run with
//! `cargo test -p sluice --test agent_bench -- --ignored --nocapture`).
//! Measures create-port round trips over the socket (store commit and,
//! for direct ports, the VF claim record; VF creation excluded).

mod agent_common;

use std::time::Instant;

use agent_common::{Host, setup};
use serde_json::json;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

#[test]
#[ignore = "benchmark"]
fn bind_latency() {
    let h = Host::new(63);
    let _s = h.serve();
    let c = h.client();
    setup(&c);
    for (vnic, n) in [("normal", 1000), ("direct", 1000)] {
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("{vnic}{i}");
            let body = json!({"id": id, "network": "net", "owner": "vm", "vnic_type": vnic}).to_string();
            let t = Instant::now();
            let r = c.request("POST", "/v1/ports", Some(body.as_bytes())).unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(r.status, 201);
            if vnic == "direct" {
                c.delete(&format!("/v1/ports/{id}")).unwrap();
            }
        }
        println!("{vnic}: n={n} p50={:.2} ms p99={:.2} ms", pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    }
}
