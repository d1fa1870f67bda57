//! The transmit multiplexer: which client's bytes go to the driver's queue
//! next, whole lines at a time, with each line's prefix and colour. No
//! system calls here, so the host tests run it on real queues.
//!
//! The rule that keeps lines whole: a client's line (its bytes up to and
//! including a `\n`) is copied to the driver's queue only when all of it,
//! with its prefix and colour codes, fits; otherwise the client waits for
//! the driver to make room, and no other client's line overtakes it in the
//! meantime (the caller keeps waiting clients in order). Two cases cannot
//! be whole, and are handled so that the console stays readable:
//!
//! - bytes without a `\n` at the end of what a client published (a prompt,
//!   an echoed keystroke, a guest's console output): they go out as they
//!   are, and the console's line then belongs to that client. If another
//!   client's line comes before the owner finishes its own, the console's
//!   line is ended first (`\r\n`), so the newcomer's line starts on a line
//!   of its own, with its own prefix; the owner's continuation later gets
//!   its prefix again;
//! - a line longer than the driver's whole queue: it goes in pieces.
//!
//! A colour starts before each line's prefix and ends before its `\r\n`,
//! so every console line carries its own colour and none bleeds into the
//! next (another client's, or the kernel's).
//!
//! Every call moves at most one client queue's worth (a client that never
//! stops writing cannot starve the others), and never trusts the client:
//! a broken queue is a [`MuxError::Client`], and nothing is taken from it.

use septa_queue::serial::{Consumer, Producer, TransferError};
use septa_queue::PeerFault;
use septa_serial_protocol::config::{Label, RESET};

/// Where the console's current line stands.
#[derive(Debug, Default)]
pub struct Mux {
    /// The client whose unfinished line the console shows; `None` when the
    /// console is at the start of a line.
    owner: Option<usize>,
}

/// How far a client was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// Nothing more waits.
    Done,
    /// Bytes wait, but the client had its turn: serve the others first.
    Later,
    /// Its next line needs `want` bytes of room in the driver's queue.
    Blocked { want: u32 },
}

/// Whose queue broke the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuxError {
    Client(PeerFault),
    Driver(PeerFault),
}

/// The line break that ends another client's unfinished line.
const BREAK: &[u8] = b"\r\n";

impl Mux {
    /// The console at the start of a line.
    pub const fn new() -> Mux {
        Mux { owner: None }
    }

    /// Whether client `c` owns the console's unfinished line (it goes first
    /// when the driver makes room).
    pub fn owns_line(&self, c: usize) -> bool {
        self.owner == Some(c)
    }

    /// Moves client `c`'s waiting bytes to `to`; returns how it went and
    /// how many of the client's bytes moved. Everything staged is
    /// published before returning.
    pub fn serve(
        &mut self,
        c: usize,
        label: &Label,
        from: &mut Consumer,
        to: &mut Producer,
    ) -> Result<(Served, u32), MuxError> {
        let (colour, prefix) = (label.colour, label.prefix());
        let budget = from.capacity();
        let mut moved = 0u32;
        let result = loop {
            if moved >= budget {
                break Ok(Served::Later);
            }
            let waiting = match from.len() {
                Ok(0) => break Ok(Served::Done),
                Ok(n) => n.min(budget - moved),
                Err(f) => break Err(MuxError::Client(f)),
            };
            let (len, term) = match line(from, waiting) {
                Ok(l) => l,
                Err(f) => break Err(MuxError::Client(f)),
            };
            if len == 0 {
                break Ok(Served::Done);
            }
            let brk = matches!(self.owner, Some(o) if o != c);
            let start = self.owner != Some(c);
            let overhead = if brk { BREAK.len() } else { 0 }
                + if start { prefix.len() } else { 0 }
                + colour.map_or(0, |col| col.start().len() + RESET.len());
            let space = match to.space() {
                Ok(s) => s as usize,
                Err(f) => break Err(MuxError::Driver(f)),
            };
            let need = overhead + len as usize;
            let (body, term) = if need <= space {
                (len - term, term)
            } else if need > to.capacity() as usize && space > overhead {
                // It can never fit whole: send what fits now.
                ((space - overhead) as u32, 0)
            } else {
                break Ok(Served::Blocked {
                    want: need.min(to.capacity() as usize) as u32,
                });
            };
            // An empty body (a bare line end) needs no colour.
            let colour = colour.filter(|_| body > 0);
            // The room was checked: these stage in full.
            if brk {
                let _ = to.stage_slice(BREAK);
            }
            if let Some(col) = colour {
                let _ = to.stage_slice(col.start());
            }
            if start {
                let _ = to.stage_slice(prefix);
            }
            let mut n = match from.transfer(to, body) {
                Ok(n) => n,
                Err(TransferError::From(f)) => break Err(MuxError::Client(f)),
                Err(TransferError::To(f)) => break Err(MuxError::Driver(f)),
            };
            if colour.is_some() {
                let _ = to.stage_slice(RESET);
            }
            // A client may have taken bytes back meanwhile: then its line
            // did not end where it said.
            let whole = n == body && term > 0;
            if whole {
                n += match from.transfer(to, term) {
                    Ok(t) => t,
                    Err(TransferError::From(f)) => break Err(MuxError::Client(f)),
                    Err(TransferError::To(f)) => break Err(MuxError::Driver(f)),
                };
            }
            moved += n;
            self.owner = if whole { None } else { Some(c) };
            if n < body + term {
                break Ok(Served::Done);
            }
        };
        to.commit();
        from.commit();
        result.map(|s| (s, moved))
    }

    /// Puts a line of the virtualiser's own (ending `\r\n`) on the console,
    /// whole, or nothing if it does not fit now; returns whether it went.
    pub fn say(&mut self, text: &[u8], to: &mut Producer) -> bool {
        let brk = self.owner.is_some();
        let need = text.len() + if brk { BREAK.len() } else { 0 };
        if to.space().map_or(true, |s| (s as usize) < need) {
            return false;
        }
        if brk {
            let _ = to.stage_slice(BREAK);
        }
        let _ = to.stage_slice(text);
        to.commit();
        self.owner = None;
        true
    }
}

/// The length of the client's next line among its `waiting` bytes, and
/// how many of them end it (`\r\n`: 2, `\n`: 1; 0: no `\n`, it is all
/// that waits).
fn line(from: &mut Consumer, waiting: u32) -> Result<(u32, u32), PeerFault> {
    let mut buf = [0u8; 128];
    let mut at = 0u32;
    let mut last = 0u8;
    while at < waiting {
        let want = ((waiting - at) as usize).min(buf.len());
        let n = from.peek(at, &mut buf[..want])?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            let before = if i > 0 { buf[i - 1] } else { last };
            let len = at + i as u32 + 1;
            let term = if before == b'\r' && len >= 2 { 2 } else { 1 };
            return Ok((len, term));
        }
        last = buf[n - 1];
        at += n as u32;
    }
    Ok((at, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use septa_queue::host::leak;
    use septa_serial_protocol::config::Colour;
    use septa_serial_protocol::region;
    use std::string::String;
    use std::vec::Vec;

    fn queue(cap: u32) -> (Producer, Consumer) {
        let r = leak(region::size(cap) as usize);
        (region::producer(&r).unwrap(), region::consumer(&r).unwrap())
    }

    fn drain(c: &mut Consumer) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                return String::from_utf8(out).unwrap();
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    struct Rig {
        mux: Mux,
        clients: Vec<(Producer, Consumer, Label)>,
        driver: (Producer, Consumer),
    }

    impl Rig {
        fn new(labels: &[Label], client_cap: u32, driver_cap: u32) -> Rig {
            Rig {
                mux: Mux::default(),
                clients: labels
                    .iter()
                    .map(|l| {
                        let (p, c) = queue(client_cap);
                        (p, c, *l)
                    })
                    .collect(),
                driver: queue(driver_cap),
            }
        }

        fn write(&mut self, c: usize, bytes: &str) {
            self.clients[c].0.write(bytes.as_bytes()).unwrap();
        }

        fn serve(&mut self, c: usize) -> Served {
            let (_, from, label) = &mut self.clients[c];
            self.mux
                .serve(c, label, from, &mut self.driver.0)
                .unwrap()
                .0
        }

        fn uart(&mut self) -> String {
            drain(&mut self.driver.1)
        }
    }

    fn plain(n: usize) -> Vec<Label> {
        (0..n).map(|_| Label::EMPTY).collect()
    }

    #[test]
    fn whole_lines_go_out_in_each_clients_order() {
        let mut r = Rig::new(&plain(2), 64, 256);
        r.write(0, "a1\r\na2\r\n");
        r.write(1, "b1\r\n");
        assert_eq!(r.serve(1), Served::Done);
        assert_eq!(r.serve(0), Served::Done);
        assert_eq!(r.uart(), "b1\r\na1\r\na2\r\n");
    }

    #[test]
    fn prefixes_and_colours_mark_every_line() {
        let labels = [
            Label::new("a", "a| ", Some(Colour::Red)).unwrap(),
            Label::new("b", "b| ", None).unwrap(),
        ];
        let mut r = Rig::new(&labels, 64, 256);
        r.write(0, "one\r\ntwo\r\n");
        r.serve(0);
        r.write(1, "three\r\n");
        r.serve(1);
        assert_eq!(
            r.uart(),
            "\x1b[31ma| one\x1b[0m\r\n\x1b[31ma| two\x1b[0m\r\nb| three\r\n"
        );
        // An unfinished line is closed for colour too, and reopened.
        r.write(0, "half");
        r.serve(0);
        r.write(0, "\n");
        r.serve(0);
        assert_eq!(r.uart(), "\x1b[31ma| half\x1b[0m\n");
    }

    #[test]
    fn a_line_waits_until_it_fits_whole() {
        let mut r = Rig::new(&plain(2), 64, 16);
        r.write(0, "0123456789\r\n"); // 12
        r.write(1, "abcdefgh\r\n"); // 10: does not fit beside the first
        assert_eq!(r.serve(0), Served::Done);
        assert_eq!(r.serve(1), Served::Blocked { want: 10 });
        assert_eq!(r.uart(), "0123456789\r\n");
        assert_eq!(r.serve(1), Served::Done);
        assert_eq!(r.uart(), "abcdefgh\r\n");
    }

    #[test]
    fn an_unfinished_line_is_ended_before_another_clients_line() {
        let labels = [
            Label::new("shell", "sh> ", None).unwrap(),
            Label::new("log", "", None).unwrap(),
        ];
        let mut r = Rig::new(&labels, 64, 256);
        r.write(0, "login: ");
        r.serve(0);
        assert!(r.mux.owns_line(0));
        r.write(1, "link up\r\n");
        r.serve(1);
        r.write(0, "root\r\n");
        r.serve(0);
        assert_eq!(r.uart(), "sh> login: \r\nlink up\r\nsh> root\r\n");
        // The owner's own continuation carries on the same line.
        r.write(0, "a");
        r.serve(0);
        r.write(0, "b\r\n");
        r.serve(0);
        assert_eq!(r.uart(), "sh> ab\r\n");
    }

    #[test]
    fn a_line_longer_than_the_driver_queue_goes_in_pieces() {
        let mut r = Rig::new(&plain(1), 64, 16);
        r.write(0, &"x".repeat(40));
        r.write(0, "\r\n");
        let mut out = String::new();
        for _ in 0..10 {
            let s = r.serve(0);
            out += &r.uart();
            if s == Served::Done {
                break;
            }
        }
        assert_eq!(out, "x".repeat(40) + "\r\n");
    }

    #[test]
    fn a_busy_client_gets_one_queue_per_turn() {
        let mut r = Rig::new(&plain(1), 16, 256);
        r.write(0, "0123456789abcdef");
        assert_eq!(r.serve(0), Served::Later);
        r.write(0, "\r\n");
        assert_eq!(r.serve(0), Served::Done);
        assert_eq!(r.uart(), "0123456789abcdef\r\n");
    }

    #[test]
    fn a_client_that_breaks_its_queue_is_told_apart_from_the_driver() {
        let r = leak(region::size(64) as usize);
        let (mut p, mut c) = (region::producer(&r).unwrap(), region::consumer(&r).unwrap());
        p.write(b"fine\r\n").unwrap();
        // The client claims 2^31 bytes.
        r.write(0, &0x8000_0000u32.to_le_bytes()).unwrap();
        let (mut to, mut uart) = queue(256);
        let mut mux = Mux::default();
        let e = mux.serve(0, &Label::EMPTY, &mut c, &mut to).unwrap_err();
        assert!(
            matches!(e, MuxError::Client(PeerFault::Index { .. })),
            "{e:?}"
        );
        assert_eq!(drain(&mut uart), "");
        // Consistent again: served again.
        r.write(0, &6u32.to_le_bytes()).unwrap();
        assert_eq!(
            mux.serve(0, &Label::EMPTY, &mut c, &mut to),
            Ok((Served::Done, 6))
        );
        assert_eq!(drain(&mut uart), "fine\r\n");
    }

    #[test]
    fn the_virtualisers_own_lines_start_a_line() {
        let mut r = Rig::new(&plain(1), 64, 64);
        r.write(0, "half");
        r.serve(0);
        assert!(r.mux.say(b"virt: hello\r\n", &mut r.driver.0));
        r.write(0, " more\r\n");
        r.serve(0);
        assert_eq!(r.uart(), "half\r\nvirt: hello\r\n more\r\n");
        assert!(!r.mux.say(&[b'x'; 65], &mut r.driver.0));
    }
}
