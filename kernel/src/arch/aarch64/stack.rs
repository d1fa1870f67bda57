//! The kernel's one stack, and the guard words at its low end.
//!
//! The kernel runs on one stack (`link.ld.in` sizes it) at the top of its
//! .bss, right above its globals: the ASID table is the last of them. The
//! kernel window is mapped in large blocks, so no unmapped page lies below
//! the stack and an overflow would silently overwrite those globals. Its
//! lowest words hold a known pattern instead, planted first thing at boot:
//! boot checks it before the root task starts (creating the root task is
//! the deepest path the kernel has), and the debug configuration checks it
//! at every return to user level. Either stops the kernel with a message
//! that says so rather than let it run on with corrupted state.

extern "C" {
    static mut __kernel_stack_bottom: u64;
    static __kernel_stack_top: u64;
}

/// What the debug configuration fills the unused stack with at boot, to
/// measure how deep boot went.
const PAINT: u64 = 0x5e97_a57a_c4ed_0000;

/// The guard's pattern: words no kernel frame is likely to hold.
const GUARD: [u64; 4] = [
    0x5e97_a57a_c4ed_0001,
    0x5e97_a57a_c4ed_0002,
    0x5e97_a57a_c4ed_0003,
    0x5e97_a57a_c4ed_0004,
];

fn guard_words() -> *mut u64 {
    &raw mut __kernel_stack_bottom
}

/// Writes the guard (boot, before any deep call).
pub fn plant_guard() {
    for (i, w) in GUARD.iter().enumerate() {
        // SAFETY: the lowest 32 bytes of the kernel stack, which the linker
        // script reserves in .bss and the kernel window maps; the frames in
        // use at this point lie far above them.
        unsafe { core::ptr::write_volatile(guard_words().add(i), *w) };
    }
}

/// The stack's size in bytes.
pub fn size() -> u64 {
    let top = &raw const __kernel_stack_top as u64;
    top - guard_words() as u64
}

/// Fills the stack below the caller's frame with [`PAINT`] (debug
/// configuration, at boot) so that [`high_water`] can tell how deep boot
/// went.
#[inline(never)]
pub fn paint() {
    let here = 0u64;
    // Stop well below this frame: what is painted is never in use.
    let end = (&raw const here as u64).saturating_sub(512);
    let mut w = guard_words() as u64 + (GUARD.len() * 8) as u64;
    while w < end {
        // SAFETY: a word of the kernel stack between the guard and the
        // frames in use, which nothing reads until it is in use itself.
        unsafe { core::ptr::write_volatile(w as *mut u64, PAINT) };
        w += 8;
    }
}

/// Bytes of the stack that have held a frame since [`paint`]: from the top
/// down to the lowest word no longer painted.
pub fn high_water() -> u64 {
    let top = guard_words() as u64 + size();
    let mut w = guard_words() as u64 + (GUARD.len() * 8) as u64;
    while w < top {
        // SAFETY: a word of the kernel stack below the frames in use (the
        // scan stops at the first word a frame has written).
        if unsafe { core::ptr::read_volatile(w as *const u64) } != PAINT {
            break;
        }
        w += 8;
    }
    top - w
}

/// Whether the guard is as planted: no frame has reached the stack's
/// lowest words.
pub fn guard_intact() -> bool {
    GUARD.iter().enumerate().all(|(i, w)| {
        // SAFETY: as in `plant_guard`; reading them has no side effect.
        unsafe { core::ptr::read_volatile(guard_words().add(i)) == *w }
    })
}

/// Stops the kernel if the guard has been overwritten; `when` says where
/// the check was made.
#[inline]
pub fn check(when: &str) {
    if !guard_intact() {
        panic!("kernel stack overflow: the guard at the stack's low end was overwritten ({when})");
    }
}
