//! Kernel debug output from the portable core, through
//! [`crate::machine::put_char`] (the console on the target, the request log
//! of the machine double in host tests). Lines end in CR LF, as the serial
//! console wants.

use core::fmt;

/// A `fmt::Write` onto the kernel console.
pub struct Out;

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                crate::machine::put_char(b'\r');
            }
            crate::machine::put_char(b);
        }
        Ok(())
    }
}

/// One byte of a thread's `DebugPutChar`: a `\n` goes out as `\r\n`, as
/// seL4's `kernel_putDebugChar` sends it (its `uart_console_putchar`).
pub fn put_user_char(b: u8) {
    if b == b'\n' {
        crate::machine::put_char(b'\r');
    }
    crate::machine::put_char(b);
}

/// Prints a line on the kernel console, in configurations with printing
/// (seL4's `printf` under `KernelPrinting`); elsewhere nothing.
#[macro_export]
macro_rules! kdebugln {
    ($($t:tt)*) => {{
        if septa_abi::CONFIG.printing() {
            use core::fmt::Write as _;
            let _ = writeln!($crate::print::Out, $($t)*);
        }
    }};
}
