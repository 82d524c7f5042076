//! Memory for the fast path: [`HugePages`], a global allocator that puts
//! every large block on transparent huge pages and leaves the rest to the
//! system allocator.
//!
//! Why: at a million flows a packet's lookup reads a random line of the
//! megaflow index (16 MB) and of the slab (over 100 MB). On 4 KB pages each
//! of those reads is also a TLB miss, and in a virtual machine the page walk
//! is nested; the example `memory_floor` in `sluice-flow` measures that
//! walk at about half of the memory cost of such a lookup on the machines we
//! measure on. On 2 MB pages a 128 MB slab is 64 TLB entries and the walks
//! go away. DPDK, OVS-DPDK and VPP put their tables on huge pages for the
//! same reason; they use hugetlbfs, which needs pages reserved by the
//! operator. Transparent huge pages need nothing reserved: a block gets
//! them when `madvise(MADV_HUGEPAGE)` is called on it before it is touched
//! and the kernel's THP mode is `always` or `madvise` (see [`thp_mode`]).
//! Where the kernel has none, or none free, the same block is simply
//! backed by small pages.
//!
//! The sans-IO crates (`sluice-flow` above all) allocate their tables with
//! `Vec` and never make a system call; a binary that wants their tables on
//! huge pages installs this allocator:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: sluice_mem::HugePages = sluice_mem::HugePages;
//! ```
//!
//! Blocks of [`HUGE_THRESHOLD`] bytes or more are mapped on their own,
//! aligned to [`HUGE_PAGE`] and rounded up to a whole number of huge pages
//! ([`HugePages::footprint`] says how much that is), advised, and unmapped
//! when freed; a growing `Vec` of that size is moved into a freshly
//! advised block (not `mremap`ed, which would keep its small pages).
//! Smaller blocks go to [`std::alloc::System`] unchanged. Hand-written
//! (about a hundred lines) because the general-purpose allocators that can
//! use large pages (mimalloc, jemalloc) would also replace the allocator of
//! every small allocation in the process, which we do not want to change.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

/// The transparent huge page size of x86-64 and of 4 KB-page AArch64. On a
/// kernel whose huge pages are larger, blocks still work; they just are
/// not huge-page aligned and keep small pages.
pub const HUGE_PAGE: usize = 2 << 20;

/// Blocks of at least this many bytes are mapped on huge pages. At this
/// size the rounding up to whole huge pages wastes at most half a block;
/// smaller blocks would waste more and gain less (a 1 MB table is 256
/// small-page TLB entries, which the second-level TLB holds).
pub const HUGE_THRESHOLD: usize = HUGE_PAGE;

/// Whether large blocks mapped from now on are advised for huge pages.
static ADVISE: AtomicBool = AtomicBool::new(true);

/// Whether large blocks mapped from now on get huge pages (the default), or
/// small pages as from the system allocator: for measuring what huge pages
/// are worth (`memory_floor`, `million` and the `pipeline` benchmark of
/// `sluice-flow` take `small`). Safe to change at any time: large blocks
/// are mapped and freed the same way either way, only the advice differs.
pub fn set_huge_pages(on: bool) {
    ADVISE.store(on, Ordering::Relaxed);
}

/// The global allocator (see the crate docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct HugePages;

impl HugePages {
    /// Whether a block of layout `l` is mapped on huge pages.
    #[inline]
    fn is_huge(l: Layout) -> bool {
        l.size() >= HUGE_THRESHOLD
    }

    /// The bytes a block of layout `l` takes from the system: its size
    /// rounded up to whole huge pages when it is mapped on its own, else
    /// its size (the system allocator's own overhead not counted).
    pub const fn footprint(l: Layout) -> usize {
        if l.size() >= HUGE_THRESHOLD { l.size().next_multiple_of(HUGE_PAGE) } else { l.size() }
    }

    /// A fresh mapping for a huge block of layout `l` (zeroed, as fresh
    /// anonymous memory is), or null.
    fn map_for(l: Layout) -> *mut u8 {
        Self::map(Self::footprint(l), l.align().max(HUGE_PAGE))
    }

    /// Maps `len` bytes (a multiple of [`HUGE_PAGE`]) aligned to `align`
    /// (a power of two, at least [`HUGE_PAGE`]), advised for huge pages;
    /// null if the system has no memory for it.
    fn map(len: usize, align: usize) -> *mut u8 {
        let Some(reserve) = len.checked_add(align) else { return ptr::null_mut() };
        // SAFETY: an anonymous private mapping at an address the kernel
        // chooses touches no existing memory.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                reserve,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return ptr::null_mut();
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(align);
        let (head, tail) = (aligned - start, reserve - (aligned - start) - len);
        // The head and the tail lie inside the mapping just made (`head` +
        // `len` + `tail` = `reserve`) and outside the part we keep; both
        // start and end on page boundaries because `align` and `len` are
        // multiples of the page size, and so is `reserve`.
        if head > 0 {
            // SAFETY: see above; nothing references the head.
            unsafe { libc::munmap(raw, head) };
        }
        if tail > 0 {
            // SAFETY: see above; nothing references the tail.
            unsafe { libc::munmap((aligned + len) as *mut libc::c_void, tail) };
        }
        // Before any page is touched: the first touch of each 2 MB range
        // then faults in a huge page. An error (a kernel without THP)
        // leaves small pages, which is still correct memory.
        if ADVISE.load(Ordering::Relaxed) {
            // SAFETY: advice on a range we own; it changes no contents.
            unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        }
        aligned as *mut u8
    }
}

// SAFETY: huge blocks are fresh anonymous mappings of at least the
// requested size, aligned to at least the requested alignment, owned by
// nobody else until `dealloc` unmaps exactly that range (the same layout
// gives the same length); whether a block is huge depends only on its
// layout's size, so every block is freed by the side that made it. Small
// blocks are `System`'s, with the caller's arguments unchanged.
unsafe impl GlobalAlloc for HugePages {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if Self::is_huge(l) {
            Self::map_for(l)
        } else {
            // SAFETY: the caller's contract (`l` has non-zero size).
            unsafe { System.alloc(l) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if Self::is_huge(l) {
            Self::map_for(l)
        } else {
            // SAFETY: the caller's contract.
            unsafe { System.alloc_zeroed(l) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if Self::is_huge(l) {
            // SAFETY: `p` is a block `map` made for this layout, so
            // `footprint(l)` bytes from `p` are exactly that mapping.
            unsafe { libc::munmap(p.cast(), Self::footprint(l)) };
        } else {
            // SAFETY: a small block comes from `System` with layout `l`.
            unsafe { System.dealloc(p, l) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `l.align()` is a
        // valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, l.align()) };
        if !Self::is_huge(l) && !Self::is_huge(new) {
            // SAFETY: the caller's contract, and `p` is `System`'s.
            return unsafe { System.realloc(p, l, new_size) };
        }
        if Self::is_huge(l) && Self::is_huge(new) && Self::footprint(l) == Self::footprint(new) {
            return p;
        }
        // SAFETY: `new` is a valid non-zero layout (the caller's contract).
        let q = unsafe { self.alloc(new) };
        if !q.is_null() {
            // SAFETY: `p` holds `l.size()` readable bytes, `q` has room for
            // `new_size`, and they are distinct live blocks.
            unsafe { ptr::copy_nonoverlapping(p, q, l.size().min(new_size)) };
            // SAFETY: `p` is the caller's live block of layout `l`, now copied.
            unsafe { self.dealloc(p, l) };
        }
        q
    }
}

/// The kernel's transparent huge page mode (`always`, `madvise` or
/// `never`), for logs and reports; `None` if the kernel has no THP.
pub fn thp_mode() -> Option<String> {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = s.find('[')? + 1;
    let end = start + s[start..].find(']')?;
    Some(s[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    /// The `AnonHugePages` and `VmFlags` lines of the mapping holding `p`,
    /// from the kernel's own account (`/proc/self/smaps`).
    fn smaps_of(p: *const u8) -> (usize, String) {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let a = p as usize;
        let mut inside = false;
        let (mut huge_kb, mut flags) = (None, None);
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-')
                && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo <= a && a < hi;
                continue;
            }
            if !inside {
                continue;
            }
            if let Some(v) = line.strip_prefix("AnonHugePages:") {
                huge_kb = v.trim().trim_end_matches("kB").trim().parse().ok();
            }
            if let Some(v) = line.strip_prefix("VmFlags:") {
                flags = Some(v.trim().to_string());
            }
        }
        (huge_kb.expect("the block's mapping is in smaps"), flags.expect("smaps has VmFlags"))
    }

    /// A block from `HugePages`, freed on drop, so that each test's
    /// `unsafe` stays in one place.
    struct Block {
        p: *mut u8,
        l: Layout,
    }

    impl Block {
        fn new(size: usize, align: usize, zeroed: bool) -> Block {
            let l = Layout::from_size_align(size, align).unwrap();
            let p = if zeroed {
                // SAFETY: `l` has a non-zero size.
                unsafe { HugePages.alloc_zeroed(l) }
            } else {
                // SAFETY: as above.
                unsafe { HugePages.alloc(l) }
            };
            assert!(!p.is_null(), "{size} bytes allocated");
            Block { p, l }
        }

        fn bytes(&mut self) -> &mut [u8] {
            // SAFETY: `p` is a live block of `l.size()` bytes that only
            // this `Block` uses (zeroed or written before being read, in
            // these tests: `alloc` memory is read only after a write).
            unsafe { std::slice::from_raw_parts_mut(self.p, self.l.size()) }
        }

        fn resize(&mut self, size: usize) {
            // SAFETY: `p` is live with layout `l`, and `size` with `l`'s
            // alignment is a valid non-zero layout.
            let q = unsafe { HugePages.realloc(self.p, self.l, size) };
            assert!(!q.is_null());
            self.p = q;
            self.l = Layout::from_size_align(size, self.l.align()).unwrap();
        }
    }

    impl Drop for Block {
        fn drop(&mut self) {
            // SAFETY: `p` is live with layout `l` and is not used after.
            unsafe { HugePages.dealloc(self.p, self.l) }
        }
    }

    /// Serializes the tests that depend on the process-wide advice switch.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_large_block_is_aligned_advised_and_on_huge_pages() {
        let mut b = {
            let _serial = SERIAL.lock().unwrap();
            Block::new(8 * MB + 100, 64, true)
        };
        assert_eq!(HugePages::footprint(b.l), 10 * MB);
        assert_eq!(b.p as usize % HUGE_PAGE, 0, "a huge block starts on a huge page");
        assert!(b.bytes().iter().all(|&x| x == 0), "alloc_zeroed gives zeros");
        b.bytes().fill(0xa5);
        let (huge_kb, flags) = smaps_of(b.p);
        assert!(flags.split_whitespace().any(|f| f == "hg"), "the mapping is advised for huge pages: {flags}");
        if matches!(thp_mode().as_deref(), Some("always" | "madvise")) {
            assert!(huge_kb >= 2048, "an 8 MB block written whole has huge pages (THP on), got {huge_kb} kB");
        }
    }

    #[test]
    fn without_the_advice_a_large_block_keeps_small_pages() {
        // The switch is process-wide and tests run in parallel threads: it
        // is off only around this allocation, under the lock that the
        // other test checking the advice also takes.
        let mut b = {
            let _serial = SERIAL.lock().unwrap();
            set_huge_pages(false);
            let b = Block::new(8 * MB, 64, false);
            set_huge_pages(true);
            b
        };
        b.bytes().fill(1);
        let (huge_kb, flags) = smaps_of(b.p);
        assert!(!flags.split_whitespace().any(|f| f == "hg"), "not advised: {flags}");
        // `always` mode may still give huge pages; `madvise` mode must not.
        if thp_mode().as_deref() == Some("madvise") {
            assert_eq!(huge_kb, 0);
        }
    }

    #[test]
    fn small_blocks_are_the_system_allocators() {
        let mut b = Block::new(HUGE_THRESHOLD - 1, 8, false);
        assert_eq!(HugePages::footprint(b.l), b.l.size());
        b.bytes().fill(1);
    }

    #[test]
    fn a_vec_keeps_its_contents_across_the_threshold_both_ways() {
        // Through `realloc`: small → huge → bigger huge → same footprint → small.
        let mut b = Block::new(MB, 8, false);
        let pattern = |i: usize| (i * 7 + i / 4096) as u8;
        for (i, x) in b.bytes().iter_mut().enumerate() {
            *x = pattern(i);
        }
        for size in [3 * MB, 9 * MB, 9 * MB + 4096, MB / 2] {
            b.resize(size);
            let kept = size.min(MB);
            for i in (0..kept).step_by(997) {
                assert_eq!(b.bytes()[i], pattern(i), "byte {i} after realloc to {size}");
            }
            if size >= HUGE_THRESHOLD {
                assert_eq!(b.p as usize % HUGE_PAGE, 0);
                b.bytes()[size - 1] = 9; // the whole new size is writable
            }
        }
    }

    #[test]
    fn large_alignments_are_kept() {
        let b = Block::new(4 * MB, 8 * MB, false);
        assert_eq!(b.p as usize % (8 * MB), 0);
    }

    #[test]
    fn the_thp_mode_is_read() {
        // This kernel has THP (the CI and lab kernels do); the mode is one of three.
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            assert!(matches!(thp_mode().as_deref(), Some("always" | "madvise" | "never")), "{:?}", thp_mode());
        }
    }
}
