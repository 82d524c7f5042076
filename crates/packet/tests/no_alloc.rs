//! The hot path allocates nothing: once a pool is built, taking buffers,
//! filling them, walking their headers, encapsulating and decapsulating
//! VXLAN, rewriting fields with incremental checksums and giving buffers
//! back makes no heap allocation. A counting global allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_packet::encap::{VxlanV4Template, vxlan_v4_decap};
use sluice_packet::ethernet::{EtherType, EthernetRepr, MacAddr};
use sluice_packet::ipv4::{self, Ipv4Repr};
use sluice_packet::udp::UdpRepr;
use sluice_packet::{BufferPool, Headers, IpProtocol, L4};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the only
// addition is a relaxed counter increment, which cannot affect soundness.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout` (above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn batches_through_the_pool_allocate_nothing() {
    // Setup may allocate: the pool, the frame template, the tunnel template.
    let mut pool = BufferPool::with_defaults(64);
    let mut frame = [0u8; 60];
    let rest = EthernetRepr::new(MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]), EtherType::Ipv4)
        .emit(&mut frame)
        .unwrap();
    Ipv4Repr::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), IpProtocol::Udp, 26).emit(rest).unwrap();
    UdpRepr { src_port: 1, dst_port: 2, payload_len: 18 }.emit(&mut rest[20..]).unwrap();
    let tunnel = VxlanV4Template::new(
        MacAddr([2, 0, 0, 0, 1, 1]),
        MacAddr([2, 0, 0, 0, 1, 2]),
        Ipv4Addr::new(192, 168, 0, 1),
        Ipv4Addr::new(192, 168, 0, 2),
        7,
    )
    .unwrap();
    let mut batch = Vec::with_capacity(32);

    let before = ALLOCS.load(Ordering::Relaxed);
    let mut seen = 0u64;
    for round in 0..1000u32 {
        while batch.len() < 32 {
            let mut b = pool.get().expect("the pool holds 64 buffers");
            b.fill(&frame).unwrap();
            batch.push(b);
        }
        for b in batch.iter_mut() {
            let h = Headers::parse(b.as_slice()).unwrap();
            if let L4::Udp { dst_port, .. } = h.l4 {
                seen += u64::from(dst_port);
            }
            let mut ip = ipv4::Packet::new_checked(&mut b.as_mut_slice()[14..]).unwrap();
            ip.set_ttl(63);
            ip.set_dst(Ipv4Addr::from(round));
            tunnel.encap(b, 49152).unwrap();
            let outer = vxlan_v4_decap(b).unwrap();
            assert_eq!(outer.vni, 7);
        }
        for b in batch.drain(..) {
            pool.put(b);
        }
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(seen, 2 * 32 * 1000);
    assert_eq!(after - before, 0, "the per-packet path allocated {} times", after - before);
    assert_eq!(pool.available(), 64);
}
