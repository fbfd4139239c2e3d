//! The global allocator: embedded-alloc's linked-list heap, wrapped to record peak use.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// Heap size. Generous on purpose: the exchange is measured, not squeezed (64 KiB of SRAM).
pub const HEAP_SIZE: usize = 32 * 1024;

/// A heap that counts what it hands out.
pub struct TrackingHeap {
    heap: LlffHeap,
    /// Bytes requested and not yet freed.
    requested: AtomicUsize,
    /// Highest `requested` seen.
    peak_requested: AtomicUsize,
    /// Highest `LlffHeap::used()` seen (block rounding included).
    peak_used: AtomicUsize,
    /// Allocations made.
    allocations: AtomicUsize,
}

impl TrackingHeap {
    pub const fn empty() -> Self {
        TrackingHeap {
            heap: LlffHeap::empty(),
            requested: AtomicUsize::new(0),
            peak_requested: AtomicUsize::new(0),
            peak_used: AtomicUsize::new(0),
            allocations: AtomicUsize::new(0),
        }
    }

    /// Gives the heap its memory; call once, before the first allocation.
    pub fn init(&self) {
        static mut MEMORY: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: called once from `main` before any allocation; MEMORY is used only here.
        unsafe {
            self.heap
                .init(core::ptr::addr_of_mut!(MEMORY) as usize, HEAP_SIZE)
        }
    }

    /// Bytes requested and not yet freed.
    pub fn requested(&self) -> usize {
        self.requested.load(Ordering::Relaxed)
    }

    /// Bytes the heap has in use now (block rounding included).
    pub fn used(&self) -> usize {
        self.heap.used()
    }

    /// Peak of requested bytes since the last [`reset_peak`](Self::reset_peak).
    pub fn peak_requested(&self) -> usize {
        self.peak_requested.load(Ordering::Relaxed)
    }

    /// Peak of the heap's own use since the last [`reset_peak`](Self::reset_peak).
    pub fn peak_used(&self) -> usize {
        self.peak_used.load(Ordering::Relaxed)
    }

    /// Allocations since the last [`reset_peak`](Self::reset_peak).
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Starts a new measurement from what is in use now.
    pub fn reset_peak(&self) {
        self.peak_requested
            .store(self.requested(), Ordering::Relaxed);
        self.peak_used.store(self.used(), Ordering::Relaxed);
        self.allocations.store(0, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for TrackingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.heap.alloc(layout);
        if !p.is_null() {
            let now = self.requested.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak_requested.fetch_max(now, Ordering::Relaxed);
            self.peak_used
                .fetch_max(self.heap.used(), Ordering::Relaxed);
            self.allocations.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.heap.dealloc(ptr, layout);
        self.requested.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    // `realloc` keeps GlobalAlloc's default (alloc, copy, dealloc), so both blocks count
    // while they coexist, as they do in the heap.
}
