//! Where the suite's lines go.
//!
//! In the debug configuration, the kernel's console (`DebugPutChar`). The
//! release and benchmark configurations have no kernel printing (seL4's
//! `KernelPrinting` is off, DebugPutChar is an unknown system call), so
//! there the suite maps the board's PL011, found in the device tree the
//! kernel hands over, into the root task's address space and writes to it
//! itself, polling its FIFO, as a driver would. Only the root thread prints
//! there; worker threads say nothing (they only ever print a panic, which
//! the root thread then reports as the case's failure).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_abi::CONFIG;
use septa_pl011::Pl011;
use septa_sel4::cap::cap_type::*;
use septa_sel4::{Cap, VmAttributes};

use crate::env::{self, Cx};
use crate::report::Failure;
use crate::{fail, space};

/// Where the PL011 is mapped in the root task's address space: far above
/// anything a case maps, and below the top of user space.
pub const UART_VADDR: u64 = 0xfe_0000_0000;

/// The mapped PL011, once [`init`] succeeded (0 until then).
static UART: AtomicU64 = AtomicU64::new(0);

/// Makes the suite's lines reach the console in configurations without
/// kernel printing: maps the PL011 at [`UART_VADDR`]. Nothing to do in the
/// debug configuration.
pub fn init(cx: &mut Cx) -> Result<(), Failure> {
    if CONFIG.printing() {
        return Ok(());
    }
    let Some(paddr) = env::fdt_device("arm,pl011", 0) else {
        fail!("no PL011 in the device tree");
    };
    let frame: Cap<SmallPage> = env::device_frame_at(cx, paddr)?;
    let attr = VmAttributes(0); // uncached: device memory
    space::map_frame(
        cx,
        env::infra_pool(),
        cx.root_vspace(),
        frame,
        UART_VADDR,
        space::rw(),
        attr,
    )?;
    UART.store(UART_VADDR, Relaxed);
    Ok(())
}

/// Writes `s` to the console.
pub fn write(s: &str) {
    if CONFIG.printing() {
        septa_sel4::syscall::debug_put_str(s);
        return;
    }
    let base = UART.load(Relaxed);
    if base == 0 || crate::thread::in_worker() {
        return;
    }
    // SAFETY: `base` is the PL011's register page, mapped read-write and
    // uncached by `init` for the rest of the suite.
    unsafe { Pl011::new(base as usize) }.write(s.as_bytes());
}

/// `fmt::Write` onto the console.
pub struct Out;

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write(s);
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let _ = fmt::Write::write_fmt(&mut Out, args);
}

/// A line on the suite's console.
#[macro_export]
macro_rules! outln {
    () => { $crate::console::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
