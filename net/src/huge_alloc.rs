//! A global allocator that maps very large allocations lazily.
//!
//! kafka-protocol 0.18 sizes a decoded array with `Vec::with_capacity(count)`
//! using the count straight from the wire (upstream PRs #152, #161, #200 are
//! open). A 20-byte Metadata request claiming 2^31 topics then asks for
//! ~150 GB up front; the allocation fails and Rust aborts the process. With
//! this allocator such a request gets address space that is never touched:
//! decoding fails on the missing bytes a few elements later, the vector is
//! freed, and only that connection is closed.
//!
//! Allocations from `HUGE_BYTES` up are anonymous `MAP_NORESERVE` mappings
//! (glibc already serves them with mmap; the difference is that memory is
//! committed only when touched); everything smaller goes to the system
//! allocator unchanged.

use std::alloc::{GlobalAlloc, Layout, System};

/// No legitimate allocation in the broker comes near this (requests are
/// capped at `socket_request_max_bytes`, reads at 16 MiB).
const HUGE_BYTES: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;

pub struct LazyHugeAlloc;

fn is_huge(layout: Layout) -> bool {
    layout.size() >= HUGE_BYTES && layout.align() <= PAGE_BYTES
}

// SAFETY: small allocations are delegated to `System`; huge ones are page-aligned
// anonymous mappings of at least `size` bytes, released with the same size.
unsafe impl GlobalAlloc for LazyHugeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_huge(layout) {
            // SAFETY: the caller's layout contract is passed on unchanged.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            ptr.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            // Fresh anonymous mappings are zero-filled.
            // SAFETY: the caller's layout contract is passed on unchanged.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: as above.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(layout) {
            // SAFETY: `ptr` came from `alloc` with this layout, so it is a mapping of `layout.size()` bytes.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc::realloc's contract: `new_size` rounded up to the
        // alignment does not overflow, and the alignment is the old, valid one.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_huge(layout), is_huge(new_layout)) {
            // SAFETY: `ptr` came from `System` with `layout`.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            // Moves the mapping without touching (and so committing) its pages.
            (true, true) => {
                // SAFETY: `ptr` is a mapping of `layout.size()` bytes made by `alloc`.
                let moved = unsafe { libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE) };
                if moved == libc::MAP_FAILED {
                    std::ptr::null_mut()
                } else {
                    moved.cast()
                }
            }
            _ => {
                // SAFETY: `new_layout` has a non-zero size (realloc's contract).
                let new_ptr = unsafe { self.alloc(new_layout) };
                if !new_ptr.is_null() {
                    // SAFETY: both blocks are live, distinct, and at least the copied length long;
                    // `ptr` was allocated here with `layout`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new_ptr
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_allocations_are_lazy_and_usable() {
        let layout = Layout::from_size_align(64 << 30, 8).unwrap();
        // SAFETY: allocate, touch two bytes, grow, free with matching layouts.
        unsafe {
            let ptr = LazyHugeAlloc.alloc(layout);
            assert!(!ptr.is_null(), "64 GiB of address space should be available lazily");
            *ptr = 7;
            *ptr.add(layout.size() - 1) = 9;
            let grown = LazyHugeAlloc.realloc(ptr, layout, layout.size() + 4096);
            assert_eq!((*grown, *grown.add(layout.size() - 1)), (7, 9));
            LazyHugeAlloc.dealloc(grown, Layout::from_size_align(layout.size() + 4096, 8).unwrap());
            let small = Layout::from_size_align(100, 8).unwrap();
            let p = LazyHugeAlloc.alloc_zeroed(small);
            assert_eq!(*p, 0);
            LazyHugeAlloc.dealloc(p, small);
        }
    }
}
