//! The kernel console: a PL011 reached through the kernel window. It serves
//! DebugPutChar and the kernel's own messages (debug build).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

static BASE: AtomicU64 = AtomicU64::new(0);

const DR: u64 = 0x00;
const FR: u64 = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// Starts printing on the PL011 whose registers are at kernel address `base`.
pub fn init(base: u64) {
    BASE.store(base, Ordering::Relaxed);
}

pub fn put_byte(b: u8) {
    let base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: `base` is a PL011 found in the device tree and mapped as device
    // memory in the kernel window; DR and FR are its data and flag registers.
    unsafe {
        while core::ptr::read_volatile((base + FR) as *const u32) & FR_TXFF != 0 {}
        core::ptr::write_volatile((base + DR) as *mut u32, b as u32);
    }
}

pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put_byte(b'\r');
            }
            put_byte(b);
        }
        Ok(())
    }
}

#[macro_export]
macro_rules! kprintln {
    ($($t:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::arch::aarch64::console::Console, $($t)*);
    }};
}
