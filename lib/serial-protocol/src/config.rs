//! The virtualisers' labels: what each client is called (in reports of a
//! misbehaving client, and in the receive virtualiser's messages), the
//! prefix and colour its output lines get, and which client has the
//! keyboard first.
//!
//! The system tool encodes them from `[serial]` into the virtualisers'
//! [`wiring::virt::CONFIG`](crate::wiring::virt::CONFIG) symbol, a byte
//! array of [`SIZE`] bytes; a virtualiser wired by hand finds it all zero
//! and runs with [`Config::EMPTY`] (clients called by number, no prefix,
//! no colour, the keyboard with client 0).
//!
//! ```text
//! offset  size  field
//!      0     8  MAGIC
//!      8     1  first: the client with the keyboard at start
//!      9     3  zero
//!     12    49  label of client 0: name (32, NUL-padded), prefix (16,
//!               NUL-padded), colour (1: 0 none, else Colour as u8)
//!     61    49  label of client 1 ...               (MAX_CLIENTS labels)
//! ```

use crate::wiring::MAX_CLIENTS;

/// Marks an encoded configuration.
pub const MAGIC: [u8; 8] = *b"septaSV1";
/// Bytes of a client's name kept (longer names are cut).
pub const NAME_LEN: usize = 32;
/// Bytes of a prefix, at most.
pub const PREFIX_LEN: usize = 16;
const LABEL_SIZE: usize = NAME_LEN + PREFIX_LEN + 1;
const HEADER: usize = 12;
/// Bytes of an encoded configuration.
pub const SIZE: usize = HEADER + MAX_CLIENTS * LABEL_SIZE;

/// A colour for a client's output: an ANSI foreground colour, in sDDF's
/// palette order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Red = 1,
    Green = 2,
    Yellow = 3,
    Blue = 4,
    Magenta = 5,
    Cyan = 6,
}

/// Ends a coloured run of output.
pub const RESET: &[u8] = b"\x1b[0m";

impl Colour {
    /// The palette, in the order clients get it by default.
    pub const ALL: [Colour; 6] = [
        Colour::Red,
        Colour::Green,
        Colour::Yellow,
        Colour::Blue,
        Colour::Magenta,
        Colour::Cyan,
    ];

    /// The colour the palette gives client `i`.
    pub const fn nth(i: usize) -> Colour {
        Self::ALL[i % Self::ALL.len()]
    }

    /// The name a description uses.
    pub const fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Blue => "blue",
            Colour::Magenta => "magenta",
            Colour::Cyan => "cyan",
        }
    }

    /// The colour a description names.
    pub fn parse(name: &str) -> Option<Colour> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The escape sequence that starts it (`ESC [ 3n m`).
    pub const fn start(self) -> &'static [u8] {
        match self {
            Colour::Red => b"\x1b[31m",
            Colour::Green => b"\x1b[32m",
            Colour::Yellow => b"\x1b[33m",
            Colour::Blue => b"\x1b[34m",
            Colour::Magenta => b"\x1b[35m",
            Colour::Cyan => b"\x1b[36m",
        }
    }

    fn from_byte(b: u8) -> Option<Colour> {
        Self::ALL.into_iter().find(|c| *c as u8 == b)
    }
}

/// One client's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label {
    name: [u8; NAME_LEN],
    prefix: [u8; PREFIX_LEN],
    /// The colour of its output lines.
    pub colour: Option<Colour>,
}

/// A prefix longer than [`PREFIX_LEN`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixTooLong;

fn text(bytes: &[u8]) -> &[u8] {
    let len = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    &bytes[..len]
}

impl Label {
    /// No name, no prefix, no colour.
    pub const EMPTY: Label = Label {
        name: [0; NAME_LEN],
        prefix: [0; PREFIX_LEN],
        colour: None,
    };

    /// A label; the name is cut to [`NAME_LEN`] bytes, a prefix must fit
    /// [`PREFIX_LEN`].
    pub fn new(name: &str, prefix: &str, colour: Option<Colour>) -> Result<Label, PrefixTooLong> {
        if prefix.len() > PREFIX_LEN {
            return Err(PrefixTooLong);
        }
        let mut l = Label {
            colour,
            ..Label::EMPTY
        };
        let n = name.len().min(NAME_LEN);
        l.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        l.prefix[..prefix.len()].copy_from_slice(prefix.as_bytes());
        Ok(l)
    }

    /// The client's name (empty when wired by hand).
    pub fn name(&self) -> &[u8] {
        text(&self.name)
    }

    /// What each of its output lines starts with.
    pub fn prefix(&self) -> &[u8] {
        text(&self.prefix)
    }
}

/// Both virtualisers' configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The client that has the keyboard at start.
    pub first: u8,
    /// Client i's label.
    pub labels: [Label; MAX_CLIENTS],
}

impl Config {
    /// What a virtualiser wired by hand runs with.
    pub const EMPTY: Config = Config {
        first: 0,
        labels: [Label::EMPTY; MAX_CLIENTS],
    };

    /// The bytes the tool patches in.
    pub fn encode(&self) -> [u8; SIZE] {
        let mut out = [0u8; SIZE];
        out[..8].copy_from_slice(&MAGIC);
        out[8] = self.first;
        for (i, l) in self.labels.iter().enumerate() {
            let at = HEADER + i * LABEL_SIZE;
            out[at..at + NAME_LEN].copy_from_slice(&l.name);
            out[at + NAME_LEN..at + NAME_LEN + PREFIX_LEN].copy_from_slice(&l.prefix);
            out[at + NAME_LEN + PREFIX_LEN] = l.colour.map_or(0, |c| c as u8);
        }
        out
    }

    /// The configuration in `bytes`; [`Config::EMPTY`] if they do not
    /// start with [`MAGIC`] (a virtualiser wired by hand). An unknown
    /// colour reads as none.
    pub fn decode(bytes: &[u8; SIZE]) -> Config {
        let mut c = Config::EMPTY;
        c.decode_from(|i| bytes[i]);
        c
    }

    /// As [`decode`](Self::decode), in place, reading byte `i` of the
    /// encoding with `byte(i)` (from a patched static, without a copy of
    /// it on the stack).
    pub fn decode_from(&mut self, byte: impl Fn(usize) -> u8) {
        *self = Config::EMPTY;
        if (0..MAGIC.len()).any(|i| byte(i) != MAGIC[i]) {
            return;
        }
        self.first = byte(8);
        for (i, l) in self.labels.iter_mut().enumerate() {
            let at = HEADER + i * LABEL_SIZE;
            for (j, b) in l.name.iter_mut().enumerate() {
                *b = byte(at + j);
            }
            for (j, b) in l.prefix.iter_mut().enumerate() {
                *b = byte(at + NAME_LEN + j);
            }
            l.colour = Colour::from_byte(byte(at + NAME_LEN + PREFIX_LEN));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_survives_encoding() {
        let mut c = Config::EMPTY;
        c.first = 2;
        c.labels[0] = Label::new("greeter", "", None).unwrap();
        c.labels[2] = Label::new("shell", "sh| ", Some(Colour::Cyan)).unwrap();
        let long = "a-pd-name-much-longer-than-thirty-two-bytes";
        c.labels[31] = Label::new(long, "0123456789abcdef", Some(Colour::Red)).unwrap();
        let bytes = c.encode();
        assert_eq!(&bytes[..8], b"septaSV1");
        let d = Config::decode(&bytes);
        assert_eq!(d, c);
        assert_eq!(d.labels[2].name(), b"shell");
        assert_eq!(d.labels[2].prefix(), b"sh| ");
        assert_eq!(d.labels[31].name(), &long.as_bytes()[..NAME_LEN]);
        assert_eq!(d.labels[1], Label::EMPTY);
    }

    #[test]
    fn zeroes_read_as_the_empty_configuration() {
        assert_eq!(Config::decode(&[0; SIZE]), Config::EMPTY);
        let mut bytes = Config::EMPTY.encode();
        bytes[HEADER + NAME_LEN + PREFIX_LEN] = 99;
        assert_eq!(Config::decode(&bytes).labels[0].colour, None);
    }

    #[test]
    fn prefixes_are_bounded_and_colours_named() {
        assert_eq!(
            Label::new("a", "0123456789abcdefg", None),
            Err(PrefixTooLong)
        );
        assert_eq!(Colour::parse("magenta"), Some(Colour::Magenta));
        assert_eq!(Colour::parse("purple"), None);
        assert_eq!(Colour::nth(7), Colour::Green);
        assert_eq!(Colour::Red.start(), b"\x1b[31m");
        for c in Colour::ALL {
            assert_eq!(Colour::from_byte(c as u8), Some(c));
        }
    }
}
