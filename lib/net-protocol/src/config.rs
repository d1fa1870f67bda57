//! What the tool writes into the virtualisers and the stack (from `[net]`),
//! as byte arrays of a fixed size at a known symbol, and how each side
//! reads them back. A PD wired by hand finds its symbol all zero: a
//! virtualiser then has no clients, a stack no cells and no address.
//!
//! Every encoding starts with a magic word; decoding checks it and every
//! count, so a wrong or missing configuration is an error, not a guess.

use crate::wiring::{BUFFERS, BUFFER_SIZE, MAX_CELLS, MAX_CLIENTS};
use crate::Mac;

/// Bytes of a name kept (longer names are cut).
pub const NAME_LEN: usize = 16;
/// Port rules per list (listen, connect) of a cell.
pub const MAX_RULES: usize = 8;

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp = 1,
    Udp = 2,
}

impl Proto {
    pub fn from_u8(b: u8) -> Option<Proto> {
        match b {
            1 => Some(Proto::Tcp),
            2 => Some(Proto::Udp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A port of a protocol: what a cell may listen on or connect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub proto: Proto,
    pub port: u16,
}

impl Rule {
    /// Parses `tcp/80`, `udp/7`.
    pub fn parse(s: &str) -> Option<Rule> {
        let (proto, port) = s.split_once('/')?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return None,
        };
        let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
        Some(Rule { proto, port })
    }
}

/// A name cut to [`NAME_LEN`] bytes, NUL-padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Name([u8; NAME_LEN]);

impl Name {
    pub fn new(s: &str) -> Name {
        let mut n = [0; NAME_LEN];
        let len = s.len().min(NAME_LEN);
        n[..len].copy_from_slice(&s.as_bytes()[..len]);
        Name(n)
    }

    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.0[..len]).unwrap_or("?")
    }
}

/// Why an encoding does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// All zero: nothing was patched.
    Unpatched,
    /// Not an encoding of this version.
    Magic,
    /// A count or field out of range.
    Field(&'static str),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::Unpatched => f.write_str("the configuration was not patched in"),
            ConfigError::Magic => f.write_str("the configuration's magic is wrong"),
            ConfigError::Field(w) => write!(f, "the configuration's {w} is out of range"),
        }
    }
}

/// A cursor over an encoding.
struct Cursor<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.b[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.b[self.at..self.at + N]);
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
}

fn check_magic(b: &[u8], magic: &[u8; 8]) -> Result<(), ConfigError> {
    if b.iter().all(|x| *x == 0) {
        return Err(ConfigError::Unpatched);
    }
    if &b[..8] != magic {
        return Err(ConfigError::Magic);
    }
    Ok(())
}

/// The names of the system's PDs, in the description's order (as many as
/// fit), which the tool writes into every cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PdNames {
    pub names: [Name; Self::MAX],
}

impl PdNames {
    pub const MAX: usize = 32;
    pub const SIZE: usize = Self::MAX * NAME_LEN;

    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> PdNames {
        let mut out = [Name::default(); Self::MAX];
        for (slot, n) in out.iter_mut().zip(names) {
            *slot = Name::new(n);
        }
        PdNames { names: out }
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        for (chunk, n) in out.chunks_mut(NAME_LEN).zip(&self.names) {
            chunk.copy_from_slice(&n.0);
        }
        out
    }

    pub fn decode(b: &[u8; Self::SIZE]) -> PdNames {
        let mut names = [Name::default(); Self::MAX];
        for (n, chunk) in names.iter_mut().zip(b.chunks(NAME_LEN)) {
            n.0.copy_from_slice(chunk);
        }
        PdNames { names }
    }

    /// The names, without the empty ones.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(Name::as_str)
            .filter(|n| !n.is_empty())
    }
}

/// A virtualiser's clients: each one's name, MAC and buffers, client i on
/// channel `1 + i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clients {
    pub count: usize,
    pub names: [Name; MAX_CLIENTS],
    pub macs: [Mac; MAX_CLIENTS],
    /// The buffers of each of the client's two data regions (1 to
    /// [`BUFFERS`]): a region is that many [`BUFFER_SIZE`] buffers.
    pub buffers: [u16; MAX_CLIENTS],
    /// The buffers of the loopback data region between the virtualisers
    /// (0: none, frames go to the driver alone; else 1 to [`BUFFERS`]).
    pub loopback: u16,
}

impl Clients {
    pub const MAGIC: [u8; 8] = *b"septaNV3";
    /// Bytes of the encoding.
    pub const SIZE: usize = 8 + 1 + MAX_CLIENTS * (NAME_LEN + 6 + 2) + 2;
    pub const EMPTY: Clients = Clients {
        count: 0,
        names: [Name([0; NAME_LEN]); MAX_CLIENTS],
        macs: [[0; 6]; MAX_CLIENTS],
        buffers: [BUFFERS as u16; MAX_CLIENTS],
        loopback: 0,
    };

    /// Bytes of each of client `i`'s data regions.
    pub fn data_size(&self, i: usize) -> usize {
        usize::from(self.buffers[i]) * BUFFER_SIZE as usize
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut c = Cursor { b: &mut out, at: 0 };
        c.put(&Self::MAGIC);
        c.put(&[self.count as u8]);
        for i in 0..MAX_CLIENTS {
            c.put(&self.names[i].0);
            c.put(&self.macs[i]);
            c.put(&self.buffers[i].to_le_bytes());
        }
        c.put(&self.loopback.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8; Self::SIZE]) -> Result<Clients, ConfigError> {
        check_magic(b, &Self::MAGIC)?;
        let mut r = Reader { b, at: 8 };
        let mut c = Clients::EMPTY;
        c.count = r.u8() as usize;
        if c.count > MAX_CLIENTS {
            return Err(ConfigError::Field("client count"));
        }
        for i in 0..MAX_CLIENTS {
            c.names[i] = Name(r.take());
            c.macs[i] = r.take();
            c.buffers[i] = u16::from_le_bytes(r.take());
            if i < c.count && !(1..=BUFFERS as u16).contains(&c.buffers[i]) {
                return Err(ConfigError::Field("client buffers"));
            }
        }
        c.loopback = r.u16();
        if c.loopback > BUFFERS as u16 {
            return Err(ConfigError::Field("loopback buffers"));
        }
        Ok(c)
    }

    /// The client whose MAC is `mac`.
    pub fn by_mac(&self, mac: &Mac) -> Option<usize> {
        self.macs[..self.count].iter().position(|m| m == mac)
    }
}

/// How the stack gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Address {
    /// By DHCP.
    Dhcp,
    /// Fixed: address, prefix length, gateway (0.0.0.0: none).
    Static {
        ip: [u8; 4],
        prefix: u8,
        gateway: [u8; 4],
    },
}

/// One cell of the stack: its name and what it may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub name: Name,
    pub listen: [Option<Rule>; MAX_RULES],
    pub connect: [Option<Rule>; MAX_RULES],
}

impl Cell {
    pub const EMPTY: Cell = Cell {
        name: Name([0; NAME_LEN]),
        listen: [None; MAX_RULES],
        connect: [None; MAX_RULES],
    };

    /// Whether the cell may listen on (bind) `proto`/`port`.
    pub fn may_listen(&self, proto: Proto, port: u16) -> bool {
        self.listen.contains(&Some(Rule { proto, port }))
    }

    /// Whether the cell may connect (send, for UDP) to `proto`/`port`.
    pub fn may_connect(&self, proto: Proto, port: u16) -> bool {
        self.connect.contains(&Some(Rule { proto, port }))
    }
}

/// The stack's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    pub mac: Mac,
    pub address: Address,
    pub cells: usize,
    pub cell: [Cell; MAX_CELLS],
}

const RULE_BYTES: usize = 3;
const CELL_BYTES: usize = NAME_LEN + 2 * MAX_RULES * RULE_BYTES;

impl Stack {
    pub const MAGIC: [u8; 8] = *b"septaNS1";
    /// Bytes of the encoding.
    pub const SIZE: usize = 8 + 6 + 1 + 4 + 1 + 4 + 1 + MAX_CELLS * CELL_BYTES;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let mut c = Cursor { b: &mut out, at: 0 };
        c.put(&Self::MAGIC);
        c.put(&self.mac);
        match self.address {
            Address::Dhcp => c.put(&[0; 10]),
            Address::Static {
                ip,
                prefix,
                gateway,
            } => {
                c.put(&[1]);
                c.put(&ip);
                c.put(&[prefix]);
                c.put(&gateway);
            }
        }
        c.put(&[self.cells as u8]);
        let rule = |r: &Option<Rule>| match r {
            Some(r) => {
                let p = r.port.to_le_bytes();
                [r.proto as u8, p[0], p[1]]
            }
            None => [0; RULE_BYTES],
        };
        for cell in &self.cell {
            c.put(&cell.name.0);
            for r in cell.listen.iter().chain(&cell.connect) {
                c.put(&rule(r));
            }
        }
        out
    }

    pub fn decode(b: &[u8; Self::SIZE]) -> Result<Stack, ConfigError> {
        check_magic(b, &Self::MAGIC)?;
        let mut r = Reader { b, at: 8 };
        let mac = r.take();
        let kind = r.u8();
        let ip = r.take();
        let prefix = r.u8();
        let gateway = r.take();
        let address = match kind {
            0 => Address::Dhcp,
            1 if prefix <= 32 => Address::Static {
                ip,
                prefix,
                gateway,
            },
            _ => return Err(ConfigError::Field("address")),
        };
        let cells = r.u8() as usize;
        if cells > MAX_CELLS {
            return Err(ConfigError::Field("cell count"));
        }
        let mut cell = [Cell::EMPTY; MAX_CELLS];
        for c in &mut cell {
            c.name = Name(r.take());
            for slot in c.listen.iter_mut().chain(c.connect.iter_mut()) {
                let proto = r.u8();
                let port = r.u16();
                *slot = match (proto, Proto::from_u8(proto)) {
                    (0, _) => None,
                    (_, Some(proto)) => Some(Rule { proto, port }),
                    (_, None) => return Err(ConfigError::Field("rule")),
                };
            }
        }
        Ok(Stack {
            mac,
            address,
            cells,
            cell,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_round_trip_and_find_macs() {
        let mut c = Clients::EMPTY;
        c.count = 2;
        c.names[0] = Name::new("net_stack");
        c.macs[0] = [0x52, 0x54, 0, 0, 0, 1];
        c.names[1] = Name::new("a_very_long_name_indeed");
        c.macs[1] = [0x52, 0x54, 0, 0, 0, 2];
        c.buffers[1] = 128;
        c.loopback = 64;
        let d = Clients::decode(&c.encode()).unwrap();
        assert_eq!(d, c);
        assert_eq!(d.data_size(0), 512 << 10);
        assert_eq!(d.data_size(1), 256 << 10);
        assert_eq!(d.names[1].as_str(), "a_very_long_name");
        assert_eq!(d.by_mac(&[0x52, 0x54, 0, 0, 0, 2]), Some(1));
        assert_eq!(d.by_mac(&[0; 6]), None, "unused slots match nothing");
        assert_eq!(
            Clients::decode(&[0; Clients::SIZE]),
            Err(ConfigError::Unpatched)
        );
        let mut bad = c.encode();
        bad[8] = 17;
        assert_eq!(
            Clients::decode(&bad),
            Err(ConfigError::Field("client count"))
        );
        // A client's buffers: none, or more than its queues hold.
        let at = 9 + 2 * (NAME_LEN + 6 + 2) - 2;
        for n in [0u16, BUFFERS as u16 + 1] {
            let mut bad = c.encode();
            bad[at..at + 2].copy_from_slice(&n.to_le_bytes());
            assert_eq!(
                Clients::decode(&bad),
                Err(ConfigError::Field("client buffers"))
            );
        }
        // More loopback buffers than its queues hold.
        let mut bad = c.encode();
        bad[Clients::SIZE - 2..].copy_from_slice(&(BUFFERS as u16 + 1).to_le_bytes());
        assert_eq!(
            Clients::decode(&bad),
            Err(ConfigError::Field("loopback buffers"))
        );
    }

    #[test]
    fn the_stack_round_trips_with_its_policy() {
        let mut cell = Cell::EMPTY;
        cell.name = Name::new("http");
        cell.listen[0] = Rule::parse("tcp/80");
        cell.connect[0] = Rule::parse("udp/53");
        let s = Stack {
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            address: Address::Static {
                ip: [10, 0, 2, 15],
                prefix: 24,
                gateway: [10, 0, 2, 2],
            },
            cells: 1,
            cell: [cell; MAX_CELLS],
        };
        let d = Stack::decode(&s.encode()).unwrap();
        assert_eq!(d, s);
        assert!(d.cell[0].may_listen(Proto::Tcp, 80));
        assert!(!d.cell[0].may_listen(Proto::Udp, 80));
        assert!(!d.cell[0].may_listen(Proto::Tcp, 81));
        assert!(d.cell[0].may_connect(Proto::Udp, 53));
        let dhcp = Stack {
            address: Address::Dhcp,
            ..s
        };
        assert_eq!(
            Stack::decode(&dhcp.encode()).unwrap().address,
            Address::Dhcp
        );
        let mut bad = s.encode();
        bad[14] = 7;
        assert_eq!(Stack::decode(&bad), Err(ConfigError::Field("address")));
        bad = s.encode();
        bad[0] ^= 1;
        assert_eq!(Stack::decode(&bad), Err(ConfigError::Magic));
    }

    #[test]
    fn pd_names_round_trip() {
        let n = PdNames::new(["http", "net_stack", "timer_driver"]);
        let d = PdNames::decode(&n.encode());
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            ["http", "net_stack", "timer_driver"]
        );
    }

    #[test]
    fn rules_parse_strictly() {
        assert_eq!(
            Rule::parse("udp/7"),
            Some(Rule {
                proto: Proto::Udp,
                port: 7
            })
        );
        for bad in ["tcp/0", "tcp/65536", "sctp/80", "tcp80", "tcp/", "tcp/-1"] {
            assert_eq!(Rule::parse(bad), None, "{bad}");
        }
    }
}
