//! The serial subsystem's client: `println!`, `log` and the panic message
//! through it when the system gives this PD one, and an API for PDs that
//! move bytes both ways (a shell, a VMM forwarding its guest's console).
//!
//! The system tool patches the symbols of `septa_serial_protocol::wiring::
//! client` when the PD is a client of `[serial]` (or wired by hand to the
//! same conventions): the address and size of its output queue's region and
//! its channel to the transmit virtualiser, and, if it takes input, the
//! same for its input queue and the receive virtualiser. Unpatched (zero),
//! the PD is no client and prints through the kernel's debug output.
//!
//! ## Output
//!
//! - `print!`/`println!`/`log` ([`crate::print`]) stage bytes in the
//!   output queue, a `\n` as `\r\n` (a UART console needs the carriage
//!   return, as sDDF's `sddf_putchar` and seL4's kernel console add it),
//!   publish each finished line, and at the end of each `print!` publish
//!   what is left and notify the virtualiser once. So a line is published
//!   whole, and the transmit virtualiser keeps it whole on the UART.
//! - When the queue is full, the sink notifies the virtualiser and tries
//!   again: the virtualiser runs at a higher priority than its clients (the
//!   tool gives it one), so it has emptied the queue into the driver's by
//!   then. If the queue is still full (a client above the virtualiser, or a
//!   UART that cannot keep up), the line is dropped whole, counted, and a
//!   note of how many bytes were lost goes out with the next line that
//!   fits. A line longer than the whole queue goes out in queue-sized
//!   pieces.
//! - [`write`] sends bytes as they are (no `\r` added), publishes them and
//!   notifies: what a PD forwarding someone else's output wants. When it
//!   takes less than it was given, [`wait_for_space`] asks the virtualiser
//!   for a notification on [`output_channel`] once room is made.
//!
//! ## Input
//!
//! The receive virtualiser notifies [`input_channel`] when it has put
//! bytes in the input queue; the PD's `notified` then calls [`read`] until
//! it returns 0. Reading frees space, and the virtualiser is notified if it
//! asked for that (sDDF's signalling rule).

use septa_queue::serial::{Consumer, Producer};
use septa_queue::{Idle, Shared};
use septa_serial_protocol::region;

use crate::pd_cell::PdRefCell;
use crate::{setvar, Channel, Setvar};

setvar! {
    static TX = "septa_serial_tx";
    static TX_SIZE = "septa_serial_tx_size";
    static TX_CHANNEL = "septa_serial_tx_channel";
    static RX = "septa_serial_rx";
    static RX_SIZE = "septa_serial_rx_size";
    static RX_CHANNEL = "septa_serial_rx_channel";
}

/// What a full queue cost, said on the next line that fits.
const DROPPED_NOTE: &str = " bytes of output dropped: the serial queue was full]\r\n";

/// The output queue, and what the line-buffered writer owes.
pub(crate) struct Output {
    q: Producer,
    /// Lines were published since the virtualiser was last notified.
    notify_owed: bool,
    /// The current line did not fit and is being dropped.
    dropping: bool,
    /// Bytes dropped and not yet reported.
    dropped: u64,
}

impl Output {
    pub(crate) fn new(q: Producer) -> Output {
        Output {
            q,
            notify_owed: false,
            dropping: false,
            dropped: 0,
        }
    }

    /// Stages `bytes` as `print!` output (`\n` as `\r\n`), publishing each
    /// finished line.
    pub(crate) fn print(&mut self, bytes: &[u8], notify: &mut impl FnMut()) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let run = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            // The bytes up to the line's end in one copy, while they fit.
            let fast = if self.dropping {
                0
            } else {
                self.q.stage_slice(&rest[..run]).unwrap_or(0)
            };
            for &b in &rest[fast..run] {
                self.put(b, notify);
            }
            rest = &rest[run..];
            if let [b'\n', tail @ ..] = rest {
                self.put(b'\r', notify);
                self.put(b'\n', notify);
                self.end_line();
                rest = tail;
            }
        }
    }

    fn put(&mut self, b: u8, notify: &mut impl FnMut()) {
        if self.dropping {
            self.dropped += 1;
            return;
        }
        if self.q.stage(b).is_ok() {
            return;
        }
        // Full. The virtualiser empties what is published as soon as it is
        // told (it runs above its clients).
        notify();
        self.notify_owed = false;
        if self.q.stage(b).is_ok() {
            return;
        }
        if self.q.staged() == self.q.capacity() {
            // This line alone fills the queue: it cannot go out whole.
            self.q.commit();
            notify();
            if self.q.stage(b).is_ok() {
                return;
            }
        }
        self.dropped += u64::from(self.q.staged()) + 1;
        self.q.unstage();
        self.dropping = true;
    }

    fn end_line(&mut self) {
        if self.dropping {
            self.dropping = false;
            return;
        }
        self.q.commit();
        self.notify_owed = true;
        if self.dropped > 0 {
            self.note_drops();
        }
    }

    /// Says how many bytes were lost, if the note fits now.
    fn note_drops(&mut self) {
        let mut digits = [0u8; 20];
        let mut n = self.dropped;
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let len = 1 + (digits.len() - at) + DROPPED_NOTE.len();
        if self.q.space().map_or(true, |s| (s as usize) < len) {
            return;
        }
        let staged = self.q.stage_slice(b"[").is_ok()
            && self.q.stage_slice(&digits[at..]).is_ok()
            && self.q.stage_slice(DROPPED_NOTE.as_bytes()).is_ok();
        if staged {
            self.q.commit();
            self.dropped = 0;
        } else {
            self.q.unstage();
        }
    }

    /// The end of a `print!`: publishes an unfinished line (a prompt) and
    /// notifies the virtualiser if anything was published.
    pub(crate) fn end_print(&mut self, notify: &mut impl FnMut()) {
        if self.q.staged() > 0 && !self.dropping {
            self.q.commit();
            self.notify_owed = true;
        }
        if self.notify_owed {
            self.notify_owed = false;
            notify();
        }
    }

    /// Sends `bytes` as they are; returns how many fit.
    pub(crate) fn write(&mut self, bytes: &[u8], notify: &mut impl FnMut()) -> usize {
        let n = self.q.stage_slice(bytes).unwrap_or(0);
        self.q.commit();
        if n > 0 || self.notify_owed {
            self.notify_owed = false;
            notify();
        }
        n
    }
}

struct Client {
    out: Output,
    out_channel: Channel,
    input: Option<(Consumer, Channel)>,
}

static CLIENT: PdRefCell<Option<Client>> = PdRefCell::new(None);

/// The region at a patched address, if wired.
fn region(vaddr: &Setvar, size: &Setvar) -> Option<Shared> {
    if vaddr.get() == 0 {
        return None;
    }
    // SAFETY: a non-zero value was written by the system tool from a map
    // of this PD (`setvar_vaddr` and `setvar_size` of the same map, as
    // `septa_serial_protocol::wiring` says), which stays mapped read-write
    // for the PD's whole life; the runtime touches it only through
    // `Shared`.
    unsafe { Shared::new(vaddr.as_ptr(), size.get() as usize) }
}

/// Becomes a client if the tool wired this PD as one: the print sink goes
/// through the output queue from now on. Called before the PD's `init`.
pub(crate) fn init() {
    let Some(tx) = region(&TX, &TX_SIZE) else {
        return;
    };
    let out = match region::producer(&tx) {
        Ok(q) => Output::new(q),
        Err(e) => {
            crate::println!(
                "{}: not a serial client: its output queue is unusable ({e})",
                crate::pd_name()
            );
            return;
        }
    };
    let input = region(&RX, &RX_SIZE).and_then(|rx| match region::consumer(&rx) {
        Ok(q) => Some((q, Channel::new(RX_CHANNEL.get() as u8))),
        Err(e) => {
            crate::println!(
                "{}: no serial input: its input queue is unusable ({e})",
                crate::pd_name()
            );
            None
        }
    });
    CLIENT.with(|c| {
        *c = Some(Client {
            out,
            out_channel: Channel::new(TX_CHANNEL.get() as u8),
            input,
        })
    });
    crate::print::set_sink(sink);
}

/// The print sink of a client.
fn sink(bytes: &[u8]) {
    let done = CLIENT.with(|c| match c {
        Some(c) => {
            let ch = c.out_channel;
            c.out.print(bytes, &mut || {
                let _ = ch.notify();
            });
            true
        }
        None => false,
    });
    // Reached from inside itself (a refused notify reports through the
    // sink), or not a client after all: the kernel's output.
    if done != Some(true) {
        crate::print::debug_console(bytes);
    }
}

/// The end of one `print!`: see the module comment.
pub(crate) fn end_print() {
    CLIENT.with(|c| {
        if let Some(c) = c {
            let ch = c.out_channel;
            c.out.end_print(&mut || {
                let _ = ch.notify();
            });
        }
    });
}

/// Whether the system made this PD a serial client.
pub fn connected() -> bool {
    CLIENT.with(|c| c.is_some()).unwrap_or(true)
}

/// The channel on which the transmit virtualiser says room was made
/// (after [`wait_for_space`]).
pub fn output_channel() -> Option<Channel> {
    CLIENT.with(|c| c.as_ref().map(|c| c.out_channel)).flatten()
}

/// The channel on which the receive virtualiser says input arrived; `None`
/// if this PD takes no input.
pub fn input_channel() -> Option<Channel> {
    CLIENT
        .with(|c| c.as_ref().and_then(|c| c.input.as_ref().map(|i| i.1)))
        .flatten()
}

/// The region of this PD's own output queue (its header, then its data),
/// if it is a client: the PD's memory, shared with the transmit
/// virtualiser. For tests that play a misbehaving client; writing it by
/// hand breaks this PD's own output and nobody else's.
pub fn output_region() -> Option<Shared> {
    region(&TX, &TX_SIZE)
}

/// The region of this PD's own input queue, if it takes input (see
/// [`output_region`]).
pub fn input_region() -> Option<Shared> {
    region(&RX, &RX_SIZE)
}

/// Sends `bytes` as they are (no `\r` added), after whatever `print!`
/// left unfinished; returns how many the queue took (0 if this PD is no
/// client).
pub fn write(bytes: &[u8]) -> usize {
    CLIENT
        .with(|c| match c {
            Some(c) => {
                let ch = c.out_channel;
                c.out.write(bytes, &mut || {
                    let _ = ch.notify();
                })
            }
            None => 0,
        })
        .unwrap_or(0)
}

/// Asks for a notification on [`output_channel`] once `want` bytes (at
/// most the queue's capacity) are free. Returns `true` if they are free
/// already (write again now; no notification will come), `false` if the
/// notification will come.
pub fn wait_for_space(want: u32) -> bool {
    CLIENT
        .with(|c| match c {
            Some(c) => !matches!(c.out.q.try_idle(want), Ok(Idle::Block)),
            None => true,
        })
        .unwrap_or(true)
}

/// Takes up to `buf.len()` bytes of input; returns how many (0: none
/// waiting, or no input).
pub fn read(buf: &mut [u8]) -> usize {
    CLIENT
        .with(|c| {
            let Some((q, ch)) = c.as_mut().and_then(|c| c.input.as_mut()) else {
                return 0;
            };
            let n = q.read(buf).unwrap_or(0);
            if n > 0 && q.take_signal_request() {
                let _ = ch.notify();
            }
            n
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use septa_queue::host::leak;
    use std::vec::Vec;

    fn pair(cap: u32) -> (Output, Consumer) {
        let r = leak(region::size(cap) as usize);
        (
            Output::new(region::producer(&r).unwrap()),
            region::consumer(&r).unwrap(),
        )
    }

    fn drain(c: &mut Consumer) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn lines_are_published_whole_with_carriage_returns() {
        let (mut out, mut c) = pair(64);
        let mut notes = 0;
        out.print(b"hello", &mut || notes += 1);
        assert_eq!(c.len().unwrap(), 0, "an unfinished line waits");
        out.print(b" world\nsecond", &mut || notes += 1);
        assert_eq!(drain(&mut c), b"hello world\r\n");
        out.end_print(&mut || notes += 1);
        assert_eq!(notes, 1, "one notification for the print");
        assert_eq!(drain(&mut c), b"second");
    }

    #[test]
    fn a_full_queue_is_emptied_by_the_virtualiser_it_notifies() {
        let (mut out, c) = pair(16);
        let c = std::cell::RefCell::new(c);
        let got = std::cell::RefCell::new(Vec::new());
        // The virtualiser, above the client: it drains as it is told.
        let mut virt = || got.borrow_mut().extend(drain(&mut c.borrow_mut()));
        for i in 0..10 {
            out.print(std::format!("line {i}\n").as_bytes(), &mut virt);
        }
        out.end_print(&mut virt);
        let text = std::string::String::from_utf8(got.into_inner()).unwrap();
        let want: std::string::String = (0..10).map(|i| std::format!("line {i}\r\n")).collect();
        assert_eq!(text, want);
    }

    #[test]
    fn lines_that_cannot_fit_are_dropped_whole_and_counted() {
        let (mut out, mut c) = pair(16);
        // A virtualiser that never runs (the client is above it).
        let mut asleep = || {};
        out.print(b"0123456789\n", &mut asleep); // 12 bytes
        out.print(b"abcdef\n", &mut asleep); // does not fit: dropped
        out.end_print(&mut asleep);
        assert_eq!(drain(&mut c), b"0123456789\r\n");
        out.print(b"x\n", &mut asleep);
        out.end_print(&mut asleep);
        assert_eq!(
            drain(&mut c),
            b"x\r\n",
            "the note does not fit a 16-byte queue"
        );
        let (mut out, mut c) = pair(64);
        out.print(&[b'y'; 70], &mut asleep);
        out.print(b"\nok\n", &mut asleep);
        out.end_print(&mut asleep);
        let got = drain(&mut c);
        assert_eq!(
            &got[..64],
            &[b'y'; 64],
            "a line longer than the queue goes in pieces"
        );
        assert!(got.len() == 64, "the rest of it was dropped: {got:?}");
        out.print(b"ok\n", &mut asleep);
        assert_eq!(
            std::string::String::from_utf8(drain(&mut c)).unwrap(),
            "ok\r\n[12 bytes of output dropped: the serial queue was full]\r\n"
        );
    }

    #[test]
    fn raw_writes_pass_bytes_as_they_are() {
        let (mut out, mut c) = pair(16);
        let mut notes = 0;
        assert_eq!(out.write(b"a\nb", &mut || notes += 1), 3);
        assert_eq!((drain(&mut c), notes), (b"a\nb".to_vec(), 1));
        assert_eq!(out.write(&[7; 20], &mut || notes += 1), 16);
    }
}
