//! [`SizeClasses`], a faster allocator for guests, to opt in to.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// The smallest block: 16 bytes (2^4), which holds the link of a free list and meets
/// every alignment up to 16.
const MIN_SHIFT: u32 = 4;
/// The largest block of a size class: 64 KiB (2^16).
const MAX_SHIFT: u32 = 16;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// New blocks are cut from chunks taken from the system allocator: the first of 8 KiB,
/// each next one twice the last, up to 256 KiB. A fresh instance (one per call, for
/// modules run in isolation) starts small: a first chunk of 256 KiB grew the memory of
/// every such instance, which then cost 33-38 µs more than a live one instead of 16-19.
const FIRST_CHUNK: usize = 8 * 1024;
const LARGEST_CHUNK: usize = 256 * 1024;
const ALIGN: usize = 16;

/// An allocator for modules that allocate many small, short-lived values (JSON trees,
/// strings), which is what most Spark modules do. Opt in with
///
/// ```
/// #[cfg(target_arch = "wasm32")]
/// #[global_allocator]
/// static ALLOCATOR: spark_guest::SizeClasses = spark_guest::SizeClasses::new();
/// # fn main() {}
/// ```
///
/// A module built for `wasm32-wasip2` allocates through wasi-libc's dlmalloc, which
/// looks for a best fit and merges neighbours on every free: in the example's modules
/// that was a quarter of the time spent in guest code. Here every size up to 64 KiB
/// rounds up to a power of two, and each has a list of free blocks: allocating pops
/// one (or cuts a new one from a larger chunk), freeing pushes it back. The price is
/// memory: up to half of a block goes unused, and freed blocks stay in their size's
/// list, never merged nor handed back, so a module that once held many blocks of one
/// size keeps them for that size. An instance serves calls that allocate alike, and
/// the host replaces it after a million calls or any failure, so this stays bounded
/// for most modules; one that allocates widely varying sizes over a long life is
/// better served by the default. Larger blocks, and blocks aligned to more than 16
/// bytes, come from the default allocator.
///
/// It is `Sync`, and so usable as the global allocator, only on WebAssembly without
/// threads, where no two calls into it can overlap (hence the `cfg` above: a native
/// build, such as the module's own tests, keeps the default).
pub struct SizeClasses {
    state: UnsafeCell<State>,
}

struct State {
    /// The first free block of each class; each free block starts with the next.
    free: [*mut u8; CLASSES],
    /// The unused rest of the current chunk.
    next: *mut u8,
    end: *mut u8,
    /// The size of the next chunk.
    chunk: usize,
}

// SAFETY: WebAssembly without the atomics feature has one thread: no two calls into
// the allocator can overlap.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for SizeClasses {}

impl SizeClasses {
    pub const fn new() -> Self {
        Self {
            state: UnsafeCell::new(State {
                free: [ptr::null_mut(); CLASSES],
                next: ptr::null_mut(),
                end: ptr::null_mut(),
                chunk: FIRST_CHUNK,
            }),
        }
    }
}

impl Default for SizeClasses {
    fn default() -> Self {
        Self::new()
    }
}

/// The size class of `layout`, or `None` if the system allocator serves it.
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN || layout.size() > 1 << MAX_SHIFT {
        return None;
    }
    let shift = layout
        .size()
        .max(1 << MIN_SHIFT)
        .next_power_of_two()
        .trailing_zeros();
    Some((shift - MIN_SHIFT) as usize)
}

fn block_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

impl State {
    /// A block of `class`: a freed one, or a new one cut from the chunk.
    ///
    /// # Safety
    /// The free lists hold only blocks of their class that nothing uses.
    unsafe fn take(&mut self, class: usize) -> *mut u8 {
        let head = self.free[class];
        if !head.is_null() {
            // SAFETY: a free block starts with the link written by `give`.
            self.free[class] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let size = block_size(class);
        if (self.end as usize) - (self.next as usize) < size {
            // The rest of the old chunk (less than this block) is left unused.
            let chunk_size = self.chunk.max(size);
            // SAFETY: a non-zero size and a power-of-two alignment.
            let chunk =
                unsafe { System.alloc(Layout::from_size_align_unchecked(chunk_size, ALIGN)) };
            if chunk.is_null() {
                return chunk;
            }
            self.next = chunk;
            // SAFETY: the end of the chunk just allocated.
            self.end = unsafe { chunk.add(chunk_size) };
            self.chunk = (self.chunk * 2).min(LARGEST_CHUNK);
        }
        let block = self.next;
        // SAFETY: within the chunk, checked above.
        self.next = unsafe { block.add(size) };
        block
    }

    /// Puts a block of `class` back in its list.
    ///
    /// # Safety
    /// `block` came from `take(class)` and is no longer used.
    unsafe fn give(&mut self, block: *mut u8, class: usize) {
        // SAFETY: the block is at least 16 bytes, aligned to 16, and unused.
        unsafe { block.cast::<*mut u8>().write(self.free[class]) };
        self.free[class] = block;
    }
}

// SAFETY: blocks of a class are at least `layout.size()` bytes, aligned to 16 (chunks
// are, and every block size is a multiple of 16) where `layout.align()` is at most 16,
// and each is handed out once until it is freed. Other layouts go to `System`.
unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            // SAFETY: one thread (see `Sync`), so no other borrow of the state exists.
            Some(class) => unsafe { (*self.state.get()).take(class) },
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class(layout) {
            // SAFETY: as in `alloc`; the caller gives back a block of this layout.
            Some(class) => unsafe { (*self.state.get()).give(block, class) },
            None => unsafe { System.dealloc(block, layout) },
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's layout is valid and `new_size`, rounded to its alignment,
        // does not overflow (`GlobalAlloc::realloc`'s contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            (Some(old), Some(new)) if old == new => block,
            // SAFETY: both served by the system allocator, which may grow in place.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: a valid layout; the copy stays within both blocks.
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn sizes_round_up_to_a_class_and_large_or_aligned_ones_have_none() {
        assert_eq!(class(layout(1, 1)), Some(0));
        assert_eq!(class(layout(16, 8)), Some(0));
        assert_eq!(class(layout(17, 8)), Some(1));
        assert_eq!(class(layout(65_536, 8)), Some(CLASSES - 1));
        assert_eq!(class(layout(65_537, 8)), None);
        assert_eq!(class(layout(8, 32)), None);
    }

    #[test]
    fn a_block_larger_than_the_next_chunk_gets_a_chunk_of_its_own() {
        let allocator = SizeClasses::new();
        unsafe {
            let small = allocator.alloc(layout(16, 8));
            small.write_bytes(0x11, 16);
            let largest = layout(1 << MAX_SHIFT, 16);
            let block = allocator.alloc(largest);
            block.write_bytes(0xAB, largest.size());
            let bytes = std::slice::from_raw_parts(small, 16);
            assert!(bytes.iter().all(|&b| b == 0x11), "the large block overlaps");
            let next = allocator.alloc(layout(16, 8));
            let (start, end) = (block as usize, block as usize + largest.size());
            assert!(
                !(start..end).contains(&(next as usize)),
                "a block inside another"
            );
            allocator.dealloc(block, largest);
        }
    }

    #[test]
    fn blocks_are_distinct_aligned_reused_after_free_and_keep_data_on_realloc() {
        let allocator = SizeClasses::new();
        unsafe {
            let small = layout(24, 8);
            let blocks: Vec<*mut u8> = (0..10_000).map(|_| allocator.alloc(small)).collect();
            let mut sorted = blocks.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), blocks.len(), "a block was handed out twice");
            for (index, &block) in blocks.iter().enumerate() {
                assert_eq!(block as usize % ALIGN, 0);
                block.write_bytes(index as u8, small.size());
            }
            for (index, &block) in blocks.iter().enumerate() {
                let bytes = std::slice::from_raw_parts(block, small.size());
                assert!(
                    bytes.iter().all(|&b| b == index as u8),
                    "block {index} was overwritten"
                );
            }
            allocator.dealloc(blocks[7], small);
            assert_eq!(allocator.alloc(small), blocks[7], "a freed block is reused");

            // Growing keeps the contents: within a class, to another class, to the system.
            let grown = allocator.realloc(blocks[8], small, 30);
            assert_eq!(grown, blocks[8]);
            let moved = allocator.realloc(grown, layout(30, 8), 1_000);
            let large = allocator.realloc(moved, layout(1_000, 8), 100_000);
            let bytes = std::slice::from_raw_parts(large, small.size());
            assert!(bytes.iter().all(|&b| b == 8));
            allocator.dealloc(large, layout(100_000, 8));
        }
    }
}
