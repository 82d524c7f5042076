//! Software prefetch (with `simd`, one of the crate's two `unsafe` modules).
//!
//! Why it is here: a megaflow lookup at a million entries waits on memory
//! twice (the index bucket, then the entry's slot). `lookup_batch` hides
//! that latency by asking for the memory of every key of a batch a whole
//! pass before it reads it, so that the misses of a whole batch are in flight
//! together (OVS's `dpcls` and DPDK's hash library do the same). Stable
//! Rust has no safe prefetch: `_mm_prefetch` is a `#[target_feature]`
//! function, callable only in `unsafe`. BENCHMARKS.md ("sluice-flow") has
//! the measured effect.

/// Hints the CPU to bring the cache line holding `*p` into all cache
/// levels. No effect on program state; a no-op off x86-64.
#[inline(always)]
pub(crate) fn read<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only needs SSE, which every x86-64 CPU has
    // (it is part of the x86_64 baseline the crate is compiled for). A
    // prefetch is a hint: it never faults, reads nothing into the program
    // and writes nothing, whatever the address; and the address comes from
    // a live reference anyway.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((p as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
