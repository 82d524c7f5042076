//! The workload shared by the `flow` benchmark and the `million` example:
//! the frames of numbered flows, and the order their packets come in.
//! (Each user takes what it needs.)
#![allow(dead_code)]

use sluice_flow::Mask;

/// The megaflow mask of a five-tuple (with the port and EtherType): what
/// each of the flows' megaflows matches when every flow has its own.
pub fn five_tuple() -> Mask {
    Mask::five_tuple()
}

/// Bytes per frame.
pub const FRAME_LEN: usize = 64;

/// An IPv4/UDP frame for flow `i` (source address and port vary).
pub fn write_frame(f: &mut [u8; FRAME_LEN], i: u32) {
    f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..24].copy_from_slice(&[0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17]);
    f[24..26].copy_from_slice(&[0, 0]);
    f[26..30].copy_from_slice(&(0x0a00_0000 | (i >> 8)).to_be_bytes());
    f[30..34].copy_from_slice(&[10, 1, 0, 1]);
    f[34..36].copy_from_slice(&(1024 + (i & 0xff) as u16).to_be_bytes());
    f[36..38].copy_from_slice(&4789u16.to_be_bytes());
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
}

/// The flows of consecutive packets over `n` flows: flow `i * STRIDE mod
/// n` for packet `i`, a full-period stride (every flow once per `n`
/// packets, consecutive packets in unrelated flows), stepped without a
/// division: a 64-bit `div` per packet cost about 8 ns, over a quarter of
/// a cached packet's whole time, and it is not the classifier's.
#[derive(Clone, Copy)]
pub struct Flows {
    at: u64,
    step: u64,
    n: u64,
}

impl Flows {
    const STRIDE: u64 = 2_654_435_761;

    pub fn new(n: u32) -> Flows {
        let n = u64::from(n.max(1));
        Flows { at: 0, step: Self::STRIDE % n, n }
    }

    #[inline]
    pub fn next(&mut self) -> u32 {
        let f = self.at as u32;
        self.at += self.step;
        if self.at >= self.n {
            self.at -= self.n;
        }
        f
    }
}

/// Asks for the cache line holding `*p` (for the examples that measure
/// the memory system on its own; the crate's lookups use its own).
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is in the x86-64 baseline; a prefetch is a hint that
    // never faults and reads nothing into the program, and the address
    // comes from a live reference.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((p as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
