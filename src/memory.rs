//! Giving freed memory back to the system.
//!
//! glibc's allocator keeps what a program frees for reuse, and it can hand back only the
//! free space at the top of each heap. After a burst (a thousand peers joining, each
//! told of every other; a flood fanned out to everyone) the freed queues and lines sit
//! between memory that is still live, so the host would stay at its high-water mark for
//! as long as it runs. `malloc_trim` walks the heaps and returns every whole free page.
//! Other allocators (musl, macOS, Windows) either do this themselves or have no such
//! call; there this does nothing.

/// Return the allocator's free pages to the system. It locks each heap in turn, so call
/// it when little else is happening, off the async workers.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free() {
    // SAFETY: `malloc_trim` takes no pointers and glibc serialises it with every other
    // allocator call; it is sound to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Return the allocator's free pages to the system: nothing to do here.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free() {}
