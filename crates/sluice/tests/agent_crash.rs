//! kill -9 of `sluice serve` at random points during a stream of binds and
//! releases, restarted each time: afterwards no VF is leaked (held in the
//! store or on the host without a port) and none is double-assigned, and
//! every port's status and host claim agree with the pool.

mod agent_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agent_common::{Host, setup};
use serde_json::{Value, json};
use sluice_sriov::ClaimStore;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Checks the invariants; with `settled`, every port must be `active` (the
/// start-up pass ran before the agent listened), else `bound` or `active`
/// (a pass may be behind the last binds), never `error`.
fn check_invariants(h: &Host, settled: bool) -> usize {
    let c = h.client();
    let ports: Vec<Value> = serde_json::from_value(c.get("/v1/ports").unwrap()).unwrap();
    let pool = c.get("/v1/pools/phys").unwrap();
    let claims = ClaimStore::new(h.state().join("sriov/claims"));
    let mut by_vf: BTreeMap<u64, String> = BTreeMap::new();
    for p in &ports {
        let id = p["id"].as_str().unwrap().to_string();
        let st = p["status"]["state"].as_str().unwrap();
        if settled {
            assert_eq!(st, "active", "{p}");
        } else {
            assert!(st == "bound" || st == "active", "{p}");
        }
        let b = &p["binding"];
        let vf = b["vf"].as_u64().unwrap();
        assert!(by_vf.insert(vf, id.clone()).is_none(), "VF {vf} double-assigned");
        let slot = &pool["vfs"][vf as usize];
        assert_eq!(slot["holder"]["port"], id.as_str(), "pool disagrees for VF {vf}");
        assert_eq!(slot["generation"], b["generation"]);
        let rec = claims.read("0000:01:00.0", u32::try_from(vf).unwrap()).unwrap();
        assert_eq!(rec.owner.as_deref(), Some(id.as_str()), "host claim of VF {vf}");
        assert_eq!(b["host_claim"]["generation"], rec.generation, "stored token of {id}");
    }
    for slot in pool["vfs"].as_array().unwrap() {
        let vf = slot["vf"].as_u64().unwrap();
        if by_vf.contains_key(&vf) {
            continue;
        }
        assert!(slot["holder"].is_null(), "VF {vf} leaked in the store: {slot}");
        let rec = claims.read("0000:01:00.0", u32::try_from(vf).unwrap()).unwrap();
        assert_eq!(rec.owner, None, "VF {vf} leaked on the host");
    }
    ports.len()
}

/// Four client threads binding and releasing ports p0..p11 at random
/// until `stop` or the server dies.
fn stream(h: &Host, seed: u64, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<usize>> {
    (0..4u64)
        .map(|w| {
            let c = h.client();
            let stop = stop.clone();
            let mut r = Rng((seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
            std::thread::spawn(move || {
                let mut ok = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("p{}", r.below(12));
                    let res = if r.below(2) == 0 {
                        let body =
                            json!({"id": id, "network": "net", "owner": format!("vm-{id}"), "vnic_type": "direct"});
                        c.request("POST", "/v1/ports", Some(body.to_string().as_bytes()))
                    } else {
                        c.request("DELETE", &format!("/v1/ports/{id}"), None)
                    };
                    match res {
                        // 5xx would be a bug; anything else is a legal answer.
                        Ok(r) => {
                            assert!(r.status < 500, "server error {}: {:?}", r.status, r.json());
                            ok += usize::from(r.status < 300);
                        }
                        Err(_) => break, // killed
                    }
                }
                ok
            })
        })
        .collect()
}

#[test]
fn concurrent_binds_and_releases_of_the_same_ids_stay_consistent() {
    let h = Host::new(8);
    let _s = h.serve();
    setup(&h.client());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = stream(&h, 0x5eed, &stop);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let done: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(done > 50, "only {done} successful operations");
    // No restart: the running agent itself must be consistent.
    check_invariants(&h, false);
}

#[test]
fn kill_9_during_binds_and_releases_leaks_nothing() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let h = Host::new(8);
    {
        let _s = h.serve();
        setup(&h.client());
    }
    let mut kills = 0;
    for round in 0..25 {
        let s = h.serve();
        check_invariants(&h, true);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = stream(&h, seed ^ round, &stop);
        std::thread::sleep(Duration::from_millis(5 + rng.below(150)));
        s.kill9();
        kills += 1;
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
    }
    let _s = h.serve();
    let n = check_invariants(&h, true);
    eprintln!("{kills} kills, {n} ports bound at the end");
    // Release everything: all VFs free in the store and on the host.
    let c = h.client();
    let ports: Vec<Value> = serde_json::from_value(c.get("/v1/ports").unwrap()).unwrap();
    let ids: BTreeSet<String> = ports.iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    for id in ids {
        c.delete(&format!("/v1/ports/{id}")).unwrap();
    }
    assert_eq!(check_invariants(&h, false), 0);
    let pool = c.get("/v1/pools/phys").unwrap();
    assert!(pool["vfs"].as_array().unwrap().iter().all(|v| v["holder"].is_null()));
}
