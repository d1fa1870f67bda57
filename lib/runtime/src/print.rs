//! `print!`/`println!` for protection domains, through a swappable sink.
//!
//! The default sink is the kernel's debug console (`DebugPutChar`, one
//! system call per byte), which only the debug configuration has: in the
//! release and benchmark ones it prints nothing, as libmicrokit's
//! `microkit_dbg_puts` does. A PD that the system makes a serial client gets
//! the serial subsystem's sink before its `init` runs ([`crate::serial`]),
//! in every configuration; another console can be installed with
//! [`set_sink`], and one that maps the board's PL011 may print there itself
//! ([`print_to_pl011`]). The panic handler and the `log` backend write
//! through the same sink. Each `print!` ends with
//! [`crate::serial::end_print`], which publishes what the serial sink
//! staged, so one `println!` reaches the console as one whole line.

use core::fmt;

use crate::pd_cell::PdCell;

/// Where printed bytes go.
pub type Sink = fn(&[u8]);

/// The kernel's debug console.
pub fn debug_console(bytes: &[u8]) {
    for b in bytes {
        septa_sel4::syscall::debug_put_char(*b);
    }
}

static SINK: PdCell<Sink> = PdCell::new(debug_console);

static PL011: PdCell<Option<septa_pl011::Pl011>> = PdCell::new(None);

fn pl011_sink(bytes: &[u8]) {
    if let Some(uart) = PL011.get() {
        uart.write(bytes);
    }
}

/// Sends all further output to the PL011 whose registers this PD maps at
/// `base` (a device region's `setvar_device`), polling its FIFO: a console
/// for configurations without kernel printing.
///
/// # Safety
///
/// `base` must be the PD's uncached, writable mapping of a PL011's register
/// page, mapped for the rest of the PD's life.
pub unsafe fn print_to_pl011(base: usize) {
    // SAFETY: the caller's contract is `Pl011::new`'s.
    PL011.replace(Some(unsafe { septa_pl011::Pl011::new(base) }));
    set_sink(pl011_sink);
}

/// Sends all further output to `sink`; returns the previous sink.
pub fn set_sink(sink: Sink) -> Sink {
    SINK.replace(sink)
}

/// The current sink.
pub fn sink() -> Sink {
    SINK.get()
}

/// `fmt::Write` into the current sink.
#[derive(Clone, Copy, Debug, Default)]
pub struct Writer;

impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        (SINK.get())(s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    // The sinks cannot fail; an error could only come from a Display impl.
    let _ = fmt::Write::write_fmt(&mut Writer, args);
    crate::serial::end_print();
}

/// Prints to the PD's console (see [`set_sink`]).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::print::_print(format_args!($($arg)*)) };
}

/// Prints a line to the PD's console (see [`set_sink`]).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
pub(crate) mod test_sink {
    use std::string::String;
    use std::sync::Mutex;

    static OUT: Mutex<String> = Mutex::new(String::new());

    pub fn capture(bytes: &[u8]) {
        OUT.lock()
            .unwrap()
            .push_str(core::str::from_utf8(bytes).unwrap());
    }

    /// Installs the capturing sink and empties it.
    pub fn start() {
        super::set_sink(capture);
        OUT.lock().unwrap().clear();
    }

    pub fn take() -> String {
        core::mem::take(&mut *OUT.lock().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn println_goes_to_the_installed_sink() {
        let _g = crate::symbols::test_support::lock();
        test_sink::start();
        crate::println!("hello {}", 42);
        assert_eq!(test_sink::take(), "hello 42\n");
    }
}
