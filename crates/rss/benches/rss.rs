//! Criterion benchmarks for sluice-rss: every Toeplitz implementation side by
//! side on the same 1024 random tuples (throughput: independent hashes
//! XOR-accumulated, reported per hash), plus port picks and per-key setup.
//!
//! Run: `cargo bench -p sluice-rss`. Figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_rss::{Implementation, Ipv4Tuple, Ipv6Tuple, Outgoing, PortRange, PortSolver, Reta, RssKey, Toeplitz};

const N: usize = 1024;

/// A small deterministic generator (xorshift64*), so every run hashes the
/// same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn v4_tuples(rng: &mut Rng) -> Vec<Ipv4Tuple> {
    (0..N)
        .map(|_| {
            let r = rng.next();
            let s = rng.next();
            Ipv4Tuple::new(Ipv4Addr::from(r as u32), Ipv4Addr::from((r >> 32) as u32), s as u16, (s >> 16) as u16)
        })
        .collect()
}

fn v6_tuples(rng: &mut Rng) -> Vec<Ipv6Tuple> {
    (0..N)
        .map(|_| {
            let a = (u128::from(rng.next()) << 64) | u128::from(rng.next());
            let b = (u128::from(rng.next()) << 64) | u128::from(rng.next());
            let s = rng.next();
            Ipv6Tuple::new(Ipv6Addr::from(a), Ipv6Addr::from(b), s as u16, (s >> 16) as u16)
        })
        .collect()
}

fn hashes(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = Toeplitz::new(&RssKey::MICROSOFT);
    let v4 = v4_tuples(&mut rng);
    let v6 = v6_tuples(&mut rng);

    let mut g = c.benchmark_group("toeplitz_ipv4_4tuple");
    g.throughput(Throughput::Elements(N as u64));
    // One call per tuple (AVX-512 is batch-only, so it is not in this set).
    for imp in [Implementation::Reference, Implementation::Table, Implementation::Clmul]
        .into_iter()
        .filter(|i| i.is_available())
    {
        g.bench_function(format!("single/{}", imp.name()), |b| {
            b.iter(|| {
                let t = black_box(&t);
                black_box(&v4).iter().fold(0u32, |acc, x| acc ^ t.hash_v4_using(imp, x))
            })
        });
    }
    // One call per 1024 tuples.
    for imp in
        [Implementation::Table, Implementation::Clmul, Implementation::Avx512].into_iter().filter(|i| i.is_available())
    {
        g.bench_function(format!("batch/{}", imp.name()), |b| {
            let mut out = vec![0u32; N];
            b.iter(|| {
                black_box(&t).hash_v4_batch_using(imp, black_box(&v4), &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("toeplitz_ipv6_4tuple");
    g.throughput(Throughput::Elements(N as u64));
    // One call per tuple (AVX-512 is batch-only, so it is not in this set).
    for imp in [Implementation::Reference, Implementation::Table, Implementation::Clmul]
        .into_iter()
        .filter(|i| i.is_available())
    {
        g.bench_function(format!("single/{}", imp.name()), |b| {
            b.iter(|| {
                let t = black_box(&t);
                black_box(&v6).iter().fold(0u32, |acc, x| acc ^ t.hash_v6_using(imp, x))
            })
        });
    }
    // One call per 1024 tuples.
    for imp in
        [Implementation::Table, Implementation::Clmul, Implementation::Avx512].into_iter().filter(|i| i.is_available())
    {
        g.bench_function(format!("batch/{}", imp.name()), |b| {
            let mut out = vec![0u32; N];
            b.iter(|| {
                black_box(&t).hash_v6_batch_using(imp, black_box(&v6), &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn ports(c: &mut Criterion) {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let reta = Reta::spread(8, 128).unwrap();
    let range = PortRange::new(32768, 60999).unwrap();
    let mut g = c.benchmark_group("port_pick");
    for (name, key) in [("ms_key", RssKey::MICROSOFT), ("fstack_key", RssKey::FSTACK)] {
        let solver = PortSolver::new(&key, &reta);
        let conns: Vec<(Outgoing, u16, u32)> = (0..N)
            .map(|i| {
                let r = rng.next();
                let conn = if i % 2 == 0 {
                    Outgoing::V4 {
                        local: Ipv4Addr::from(r as u32),
                        remote: Ipv4Addr::from((r >> 32) as u32),
                        remote_port: rng.next() as u16,
                    }
                } else {
                    Outgoing::V6 {
                        local: Ipv6Addr::from(u128::from(r) << 3),
                        remote: Ipv6Addr::from(u128::from(rng.next()) << 7),
                        remote_port: rng.next() as u16,
                    }
                };
                (conn, (r % 8) as u16, rng.next() as u32)
            })
            .collect();
        g.throughput(Throughput::Elements(N as u64));
        g.bench_function(format!("pick_v4_v6_mixed/{name}"), |b| {
            b.iter(|| {
                let s = black_box(&solver);
                conns
                    .iter()
                    .fold(0u32, |acc, (conn, q, seed)| acc ^ u32::from(s.pick(conn, *q, range, *seed).unwrap_or(0)))
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("setup_per_key_and_reta", |b| {
        b.iter(|| PortSolver::new(black_box(&RssKey::FSTACK), black_box(&reta)))
    });
    g.bench_function("toeplitz_new_per_key", |b| b.iter(|| Toeplitz::new(black_box(&RssKey::FSTACK))));
    g.finish();
}

criterion_group!(benches, hashes, ports);
criterion_main!(benches);
