//! Kernel debug output from the portable core, through
//! [`crate::machine::put_char`] (the console on the target, the request log
//! of the machine double in host tests). Lines end in CR LF, as the serial
//! console wants.

use core::fmt;

/// A `fmt::Write` onto the kernel console.
pub struct Out;

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        raw::str(s);
        Ok(())
    }
}

/// Printing without `core::fmt`: text, and numbers in decimal or as `0x`
/// hex (what `{}` and `{:#x}` print). The kernel's few messages of every
/// configuration (a trap, a panic, a failed boot) use these, so that the
/// configurations without printing do not carry `core::fmt`'s formatting
/// machinery for them.
pub mod raw {
    /// `s`, with `\n` as `\r\n`.
    #[inline(never)]
    pub fn str(s: &str) {
        for b in s.bytes() {
            byte(b);
        }
    }

    /// One byte, out of line (`\n` as `\r\n`).
    #[inline(never)]
    fn byte(b: u8) {
        super::put_user_char(b);
    }

    /// `n` in decimal.
    #[inline(never)]
    pub fn dec(mut n: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        while i > 0 {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &b in buf.iter().skip(i) {
            byte(b);
        }
    }

    /// `n` in hex after `0x`, lower case, as `{:#x}` prints it.
    #[inline(never)]
    pub fn hex(n: u64) {
        str("0x");
        // The top digit's shift: the top set bit's nibble (0 for 0).
        let mut shift = (63 - (n | 1).leading_zeros()) & !3;
        loop {
            let d = ((n >> shift) & 0xf) as u8;
            byte(if d < 10 { b'0' + d } else { b'a' - 10 + d });
            if shift == 0 {
                break;
            }
            shift -= 4;
        }
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

#[cfg(test)]
mod tests {
    use super::raw;
    use crate::machine;

    /// What `f` printed, through the machine double's log.
    fn printed(f: impl FnOnce()) -> String {
        let _ = machine::take_log();
        f();
        machine::take_printed()
    }

    #[test]
    fn raw_prints_what_core_fmt_prints() {
        for n in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            4096,
            0xdead_beef,
            1 << 63,
            u64::MAX,
        ] {
            assert_eq!(printed(|| raw::dec(n)), format!("{n}"));
            assert_eq!(printed(|| raw::hex(n)), format!("{n:#x}"));
        }
        assert_eq!(printed(|| raw::str("a\nb")), "a\r\nb");
    }

    #[test]
    fn a_boot_error_prints_as_its_debug_form() {
        use crate::boot::BootError;
        use crate::bootmem::BootMemError;
        for e in [
            BootError::Memory(BootMemError::TooManyRegions),
            BootError::Memory(BootMemError::OutOfMemory {
                bytes: 0x20_0000,
                align: 4096,
            }),
            BootError::OutOfSlots,
            BootError::BadImage,
        ] {
            assert_eq!(printed(|| e.print()), format!("{e:?}"));
        }
    }
}
