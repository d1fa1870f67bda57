//! The key sequence that moves the keyboard from one client to another,
//! and the receive virtualiser's reading of it: sDDF 0.7's (its
//! `serial/components/virt_rx.c` and the defaults of its system
//! generator), so the same fingers work on both.
//!
//! Input goes to one client at a time, at first the one the description
//! names. Typing [`SWITCH`] (Ctrl-\\), then a client's number in decimal,
//! then [`END`] (Enter, which a terminal sends as `\r`) gives the keyboard
//! to that client. [`SWITCH`] twice sends one [`SWITCH`] to the current
//! client. Anything else after [`SWITCH`], more than [`MAX_DIGITS`] digits,
//! or a number that is no client's, is a mistake: the sequence is dropped
//! and the keyboard stays where it was.

/// Ctrl-\\ (ASCII FS): starts a switch.
pub const SWITCH: u8 = 0x1c;
/// Enter: ends the client's number.
pub const END: u8 = b'\r';
/// The longest client number (sDDF's `MAX_CLI_BASE_10`).
pub const MAX_DIGITS: usize = 4;
/// The sequence as a person types it, for banners and docs.
pub const HOW: &str = "Ctrl-\\, the number, Enter";

/// What one input byte does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Give this byte to the current client.
    Deliver(u8),
    /// The byte belongs to a switch sequence under way.
    Swallowed,
    /// The sequence asks for client `n` (which may not exist: the caller
    /// checks).
    SwitchTo(u32),
    /// The sequence was broken: this byte is no digit after [`SWITCH`].
    NotADigit(u8),
    /// The sequence was broken: the number grew past [`MAX_DIGITS`] or a
    /// byte that is neither a digit nor [`END`] came.
    BadNumber,
}

/// Where a switch sequence stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reader {
    state: State,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Normal,
    Switched,
    Number {
        value: u32,
        digits: usize,
    },
}

impl Reader {
    /// No sequence under way.
    pub const fn new() -> Reader {
        Reader {
            state: State::Normal,
        }
    }

    /// Reads one byte of input.
    pub fn feed(&mut self, b: u8) -> Event {
        let (next, event) = match (self.state, b) {
            (State::Normal, SWITCH) => (State::Switched, Event::Swallowed),
            (State::Normal, b) => (State::Normal, Event::Deliver(b)),
            (State::Switched, SWITCH) => (State::Normal, Event::Deliver(SWITCH)),
            (State::Switched, d @ b'0'..=b'9') => (
                State::Number {
                    value: u32::from(d - b'0'),
                    digits: 1,
                },
                Event::Swallowed,
            ),
            (State::Switched, b) => (State::Normal, Event::NotADigit(b)),
            (State::Number { value, .. }, END) => (State::Normal, Event::SwitchTo(value)),
            (State::Number { value, digits }, d @ b'0'..=b'9') if digits < MAX_DIGITS => (
                State::Number {
                    value: value * 10 + u32::from(d - b'0'),
                    digits: digits + 1,
                },
                Event::Swallowed,
            ),
            (State::Number { .. }, _) => (State::Normal, Event::BadNumber),
        };
        self.state = next;
        event
    }

    /// Whether a switch sequence is under way.
    pub fn in_sequence(&self) -> bool {
        self.state != State::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> ([u8; 32], usize, [Event; 32], usize) {
        let mut r = Reader::default();
        let (mut out, mut n) = ([0u8; 32], 0);
        let (mut events, mut m) = ([Event::Swallowed; 32], 0);
        for &b in input {
            match r.feed(b) {
                Event::Deliver(c) => {
                    out[n] = c;
                    n += 1;
                }
                Event::Swallowed => {}
                e => {
                    events[m] = e;
                    m += 1;
                }
            }
        }
        (out, n, events, m)
    }

    #[test]
    fn ordinary_bytes_pass_and_a_sequence_switches() {
        let (out, n, ev, m) = run(b"ab\x1c12\rcd");
        assert_eq!(&out[..n], b"abcd");
        assert_eq!(&ev[..m], [Event::SwitchTo(12)]);
    }

    #[test]
    fn switch_twice_sends_it_once() {
        let (out, n, _, m) = run(b"\x1c\x1cx");
        assert_eq!(&out[..n], b"\x1cx");
        assert_eq!(m, 0);
    }

    #[test]
    fn mistakes_drop_the_sequence_and_keep_the_keyboard() {
        let (out, n, ev, m) = run(b"\x1cqa\x1c1x b\x1c12345\rc\x1c7\r");
        // `q` after the switch, `x` inside the number and the fifth digit
        // end their sequences and are dropped with them; what follows is
        // ordinary input again (the `\r` after the fifth digit included).
        assert_eq!(&out[..n], b"a b\rc");
        assert_eq!(
            &ev[..m],
            [
                Event::NotADigit(b'q'),
                Event::BadNumber,
                Event::BadNumber,
                Event::SwitchTo(7)
            ]
        );
    }

    #[test]
    fn four_digits_are_the_most() {
        let (_, _, ev, m) = run(b"\x1c0031\r");
        assert_eq!(&ev[..m], [Event::SwitchTo(31)]);
        let mut r = Reader::default();
        for b in b"\x1c1" {
            r.feed(*b);
        }
        assert!(r.in_sequence());
        assert_eq!(r.feed(END), Event::SwitchTo(1));
        assert!(!r.in_sequence());
    }
}
