//! A debug console over the `DebugPutChar` system call. Only the debug
//! configuration has it (`KernelPrinting`); in the others these macros
//! print nothing, as libmicrokit's `microkit_dbg_puts` does.

use core::fmt;

use crate::syscall;

/// `fmt::Write` to the kernel's debug console.
#[derive(Clone, Copy, Debug, Default)]
pub struct DebugWriter;

impl fmt::Write for DebugWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        syscall::debug_put_str(s);
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    // Writing to the console cannot fail.
    let _ = fmt::Write::write_fmt(&mut DebugWriter, args);
}

/// `print!` to the kernel's debug console.
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => { $crate::debug::_print(format_args!($($arg)*)) };
}

/// `println!` to the kernel's debug console.
#[macro_export]
macro_rules! debug_println {
    () => { $crate::debug_print!("\n") };
    ($($arg:tt)*) => { $crate::debug::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use crate::host::{self, HostKernel, Regs};
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::vec::Vec;

    struct Console(Rc<RefCell<Vec<u8>>>);
    impl HostKernel for Console {
        fn syscall(&mut self, regs: &mut Regs) {
            assert_eq!(regs.syscall(), septa_abi::syscall::DEBUG_PUT_CHAR);
            self.0.borrow_mut().push(regs.x[0] as u8);
        }
    }

    #[test]
    fn println_puts_each_byte() {
        let out = Rc::new(RefCell::new(Vec::new()));
        host::set_kernel(Box::new(Console(out.clone())));
        crate::debug_println!("pd {} up", 3);
        let want: &[u8] = if septa_abi::CONFIG.printing() {
            b"pd 3 up\n"
        } else {
            b""
        };
        assert_eq!(&out.borrow()[..], want);
    }
}
