//! A server's per-client counters: what the network stack, the key-value
//! store and the block virtualiser count for each of their clients, in a
//! page the server writes and the statistics PD and the HTTP status cell
//! map read-only (`[stats]` adds the regions, `tools/sysdesc/src/stats.rs`).
//!
//! The server counts each client by the channel its call came on (its
//! badge), never by anything the client writes, so nothing a client does
//! changes another's counters. The server writes the page; a reader copies
//! it under a sequence count ([`read`]): odd while the server writes, so
//! a copy that saw it odd or changed is not used (a reader that outranks
//! the server cannot wait for it, and keeps what it read last).
//!
//! Layout, little-endian: a [`HEADER`]-byte header (magic, version, kind,
//! entry count, sequence, the server's name), then one [`ENTRY`]-byte entry
//! per client: its name ([`NAME_LEN`] bytes) and [`FIELDS`] counters.

use crate::stats::NAME_LEN;

pub const MAGIC: u32 = u32::from_le_bytes(*b"SCNT");
pub const VERSION: u32 = 1;
pub const HEADER: usize = 64;
/// Counters per client.
pub const FIELDS: usize = 6;
pub const ENTRY: usize = NAME_LEN + 8 * FIELDS;
/// Where the sequence count is.
pub const SEQ_AT: usize = 16;
/// The page a server's counters take (the region `[stats]` makes).
pub const PAGE: usize = 4096;
/// The most counter pages the statistics PD and the HTTP cell map: the
/// servers' first, then every PD's own IPC page ([`Kind::Ipc`]).
pub const MAX_SERVERS: usize = 64;

/// The symbols by which a server finds its page (0: not counted).
pub const VADDR_SYMBOL: &str = "septa_counters";
pub const SIZE_SYMBOL: &str = "septa_counters_size";
/// The symbols, indexed `[i]`, by which a reader finds page `i`.
pub const READER_VADDR_SYMBOL: &str = "septa_server_counters";
pub const READER_SIZE_SYMBOL: &str = "septa_server_counters_size";

/// The most entries a page of `size` bytes holds.
pub const fn capacity(size: usize) -> usize {
    size.saturating_sub(HEADER) / ENTRY
}

/// What kind of server counts, and so what its counters mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The network stack, per cell: sockets opened (listen, accept,
    /// connect, UDP bind that succeeded), calls and datagrams refused
    /// (every error but "would block"), of which denied by the cell's
    /// port rules, bytes sent and received through its sockets, and the
    /// connections it accepted.
    Net,
    /// The key-value store, per client: gets, puts, deletes that
    /// succeeded, requests refused (every error but "not found"), of
    /// which for the quota, and the bytes its namespace holds.
    Kv,
    /// The block virtualiser, per client: reads, writes, flushes,
    /// requests refused, bytes read and written.
    Blk,
    /// A PD's own IPC, counted by its runtime's event loop in a page of
    /// its own (one entry, the PD itself): times it was woken by
    /// notifications (one or more channels at once count once),
    /// protected calls it handled, protected calls it made, faults of
    /// its children it handled. A PD can misreport only itself.
    Ipc,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Net, Kind::Kv, Kind::Blk, Kind::Ipc];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Net => "net",
            Kind::Kv => "kv",
            Kind::Blk => "blk",
            Kind::Ipc => "ipc",
        }
    }

    pub fn from_name(n: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == n)
    }

    fn code(self) -> u32 {
        match self {
            Kind::Net => 1,
            Kind::Kv => 2,
            Kind::Blk => 3,
            Kind::Ipc => 4,
        }
    }

    fn from_code(c: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == c)
    }

    /// The counters' names, in order (at most [`FIELDS`]; an entry's
    /// values past them are unused).
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Net => &[
                "opened", "refused", "denied", "tx_bytes", "rx_bytes", "accepted",
            ],
            Kind::Kv => &[
                "gets",
                "puts",
                "deletes",
                "refused",
                "quota_refused",
                "bytes",
            ],
            Kind::Blk => &[
                "reads",
                "writes",
                "flushes",
                "refused",
                "read_bytes",
                "written_bytes",
            ],
            Kind::Ipc => &IPC_FIELDS,
        }
    }

    /// The index of counter `field`.
    pub fn field(self, field: &str) -> Option<usize> {
        self.fields().iter().position(|f| *f == field)
    }
}

/// The fields of [`Kind::Ipc`], in order; a PD's runtime adds to value
/// `i` of its page's one entry, at byte [`ipc_value_at`]`(i)`.
pub const IPC_FIELDS: [&str; 4] = ["notified", "ppc_in", "ppc_out", "child_faults"];
pub const IPC_NOTIFIED: usize = 0;
pub const IPC_PPC_IN: usize = 1;
pub const IPC_PPC_OUT: usize = 2;
pub const IPC_CHILD_FAULTS: usize = 3;
/// The symbols by which a PD's runtime finds its own IPC page (0: not
/// counted; `[stats]` maps one into every PD built on the runtime).
pub const IPC_VADDR_SYMBOL: &str = "septa_ipc_counters";
pub const IPC_SIZE_SYMBOL: &str = "septa_ipc_counters_size";

/// Where value `field` of a page's first entry is.
pub const fn ipc_value_at(field: usize) -> usize {
    HEADER + NAME_LEN + 8 * field
}

/// One client's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Entry {
    pub name: [u8; NAME_LEN],
    pub values: [u64; FIELDS],
}

impl Entry {
    /// An entry named `name` (cut to [`NAME_LEN`] bytes), all counters 0.
    pub fn named(name: &str) -> Entry {
        Entry {
            name: crate::stats::Entry::named(name).name,
            values: [0; FIELDS],
        }
    }

    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }

    fn write(&self, b: &mut [u8]) {
        b[..NAME_LEN].copy_from_slice(&self.name);
        for (v, o) in self.values.iter().zip(b[NAME_LEN..].chunks_exact_mut(8)) {
            o.copy_from_slice(&v.to_le_bytes());
        }
    }

    fn read(b: &[u8]) -> Entry {
        let mut e = Entry::default();
        e.name.copy_from_slice(&b[..NAME_LEN]);
        for (v, i) in e.values.iter_mut().zip(b[NAME_LEN..].chunks_exact(8)) {
            let mut w = [0; 8];
            w.copy_from_slice(i);
            *v = u64::from_le_bytes(w);
        }
        e
    }
}

/// Writes the whole page: header (with sequence `seq`, which the server
/// makes odd before and even after, [`SEQ_AT`]) and `entries`, as many as
/// fit; returns how many were written.
pub fn write(page: &mut [u8], kind: Kind, server: &str, seq: u64, entries: &[Entry]) -> usize {
    if page.len() < HEADER {
        return 0;
    }
    let n = entries.len().min(capacity(page.len()));
    page[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    page[4..8].copy_from_slice(&VERSION.to_le_bytes());
    page[8..12].copy_from_slice(&kind.code().to_le_bytes());
    page[12..16].copy_from_slice(&(n as u32).to_le_bytes());
    page[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_le_bytes());
    page[24..24 + NAME_LEN].copy_from_slice(&Entry::named(server).name);
    page[24 + NAME_LEN..HEADER].fill(0);
    for (e, b) in entries[..n]
        .iter()
        .zip(page[HEADER..].chunks_exact_mut(ENTRY))
    {
        e.write(b);
    }
    n
}

/// Why a page cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    TooShort,
    /// Not (yet) written: the server has not started, or counts nothing.
    BadMagic,
    BadVersion(u32),
    BadKind(u32),
    BadCount(u32),
    /// The server was writing it (an odd sequence count).
    Busy,
}

/// A page as read.
pub struct Page<'a> {
    bytes: &'a [u8],
    pub kind: Kind,
    pub count: usize,
    pub seq: u64,
    server: [u8; NAME_LEN],
}

/// The sequence count of a page's bytes (for a reader's second look).
pub fn seq(bytes: &[u8]) -> Option<u64> {
    let mut w = [0; 8];
    w.copy_from_slice(bytes.get(SEQ_AT..SEQ_AT + 8)?);
    Some(u64::from_le_bytes(w))
}

impl<'a> Page<'a> {
    /// Reads a copy of a page. A reader copies the page, reads it with
    /// this, then looks at the live sequence count again ([`seq`]): if it
    /// changed, the copy may mix two writes and is not used.
    pub fn read(bytes: &'a [u8]) -> Result<Page<'a>, ReadError> {
        if bytes.len() < HEADER {
            return Err(ReadError::TooShort);
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        if u32_at(0) != MAGIC {
            return Err(ReadError::BadMagic);
        }
        if u32_at(4) != VERSION {
            return Err(ReadError::BadVersion(u32_at(4)));
        }
        let kind = Kind::from_code(u32_at(8)).ok_or(ReadError::BadKind(u32_at(8)))?;
        let count = u32_at(12);
        if count as usize > capacity(bytes.len()) {
            return Err(ReadError::BadCount(count));
        }
        let seq = seq(bytes).unwrap_or(1);
        if seq % 2 == 1 {
            return Err(ReadError::Busy);
        }
        let mut server = [0; NAME_LEN];
        server.copy_from_slice(&bytes[24..24 + NAME_LEN]);
        Ok(Page {
            bytes,
            kind,
            count: count as usize,
            seq,
            server,
        })
    }

    /// The server's name.
    pub fn server(&self) -> &str {
        let len = self.server.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.server[..len]).unwrap_or("?")
    }

    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.bytes[HEADER..]
            .chunks_exact(ENTRY)
            .take(self.count)
            .map(Entry::read)
    }
}

/// A server's counters for up to `N` clients, and the page they go to.
pub struct Counters<const N: usize> {
    pub kind: Kind,
    entries: [Entry; N],
    len: usize,
    seq: u64,
    /// Changed since the last publication.
    pub dirty: bool,
}

impl<const N: usize> Counters<N> {
    pub const fn new(kind: Kind) -> Self {
        Counters {
            kind,
            entries: [Entry {
                name: [0; NAME_LEN],
                values: [0; FIELDS],
            }; N],
            len: 0,
            seq: 0,
            dirty: true,
        }
    }

    /// Adds client `name`; returns its index (`None` if there are `N`).
    pub fn add(&mut self, name: &str) -> Option<usize> {
        let slot = self.entries.get_mut(self.len)?;
        *slot = Entry::named(name);
        self.len += 1;
        self.dirty = true;
        Some(self.len - 1)
    }

    /// The clients' counters.
    pub fn entries(&self) -> &[Entry] {
        &self.entries[..self.len]
    }

    /// Counter `field` of client `i` (0 if either is out of range).
    pub fn get(&self, i: usize, field: usize) -> u64 {
        self.entries()
            .get(i)
            .and_then(|e| e.values.get(field))
            .copied()
            .unwrap_or(0)
    }

    /// Adds `by` to counter `field` of client `i` (nothing if either is
    /// out of range).
    pub fn add_to(&mut self, i: usize, field: usize, by: u64) {
        if let Some(v) = self.entries[..self.len]
            .get_mut(i)
            .and_then(|e| e.values.get_mut(field))
        {
            *v = v.wrapping_add(by);
            self.dirty |= by != 0;
        }
    }

    /// Sets counter `field` of client `i`.
    pub fn set(&mut self, i: usize, field: usize, to: u64) {
        if let Some(v) = self.entries[..self.len]
            .get_mut(i)
            .and_then(|e| e.values.get_mut(field))
        {
            self.dirty |= *v != to;
            *v = to;
        }
    }

    /// Publishes the counters if they changed, through `store` (which
    /// writes bytes at an offset of the page): the sequence count made
    /// odd, the page written, the count made even.
    pub fn publish(&mut self, server: &str, mut store: impl FnMut(usize, &[u8])) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.seq = (self.seq | 1).wrapping_add(2);
        store(SEQ_AT, &self.seq.to_le_bytes());
        let mut b = [0u8; ENTRY];
        for (i, e) in self.entries().iter().enumerate() {
            e.write(&mut b);
            store(HEADER + i * ENTRY, &b);
        }
        self.seq = self.seq.wrapping_add(1);
        let mut h = [0u8; HEADER];
        write(&mut h, self.kind, server, self.seq, &[]);
        h[12..16].copy_from_slice(&(self.len as u32).to_le_bytes());
        store(0, &h);
    }
}

/// The counters as text, the way the statistics PD adds them to its
/// frames (after the PD lines, `crate::stats::text`) and `cargo septa top`
/// reads them:
///
/// ```text
/// counters SERVER KIND CLIENT FIELD=VALUE ...
/// ```
pub mod text {
    use super::{Entry, Kind, FIELDS};
    use core::fmt::{self, Write};

    pub const WORD: &str = "counters";

    /// Writes client `e`'s line.
    pub fn entry(o: &mut impl Write, server: &str, kind: Kind, e: &Entry) -> fmt::Result {
        write!(o, "{WORD} {server} {} {}", kind.name(), e.name())?;
        for (f, v) in kind.fields().iter().zip(e.values) {
            write!(o, " {f}={v}")?;
        }
        writeln!(o)
    }

    /// A line, back: the server's name, the kind, the client's entry
    /// (`None` if malformed or not a counters line).
    pub fn parse(line: &str) -> Option<(&str, Kind, Entry)> {
        let mut w = line.split_ascii_whitespace();
        if w.next()? != WORD {
            return None;
        }
        let server = w.next()?;
        let kind = Kind::from_name(w.next()?)?;
        let mut e = Entry::named(w.next()?);
        for (i, f) in kind.fields().iter().enumerate() {
            let (name, v) = w.next()?.split_once('=')?;
            if name != *f {
                return None;
            }
            e.values[i] = v.parse().ok()?;
        }
        let _: [u64; FIELDS] = e.values;
        w.next().is_none().then_some((server, kind, e))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec;

    #[test]
    fn a_published_page_reads_back_and_a_busy_one_is_refused() {
        let mut page = vec![0u8; PAGE];
        let mut c: Counters<4> = Counters::new(Kind::Net);
        let a = c.add("web").unwrap();
        let b = c.add("a_name_longer_than_twenty_four_bytes").unwrap();
        c.add_to(a, 1, 5);
        c.add_to(b, 3, 1000);
        c.add_to(9, 0, 1);
        let mut writes = 0;
        c.publish("net_stack", |at, bytes| {
            writes += 1;
            page[at..at + bytes.len()].copy_from_slice(bytes);
        });
        assert_eq!(writes, 4);
        let p = Page::read(&page).unwrap();
        assert_eq!((p.kind, p.count, p.server()), (Kind::Net, 2, "net_stack"));
        assert_eq!(p.seq % 2, 0);
        let got: std::vec::Vec<Entry> = p.entries().collect();
        assert_eq!(got[0].name(), "web");
        assert_eq!(got[0].values, [0, 5, 0, 0, 0, 0]);
        assert_eq!(got[1].name(), "a_name_longer_than_twent");
        assert_eq!(got[1].values[3], 1000);
        // Unchanged: not written again.
        c.publish("net_stack", |_, _| panic!("written while clean"));
        // Caught mid-write: refused.
        let before = p.seq;
        c.add_to(a, 0, 1);
        c.publish("net_stack", |at, bytes| {
            if at == SEQ_AT {
                page[at..at + 8].copy_from_slice(bytes);
            }
        });
        assert!(matches!(Page::read(&page), Err(ReadError::Busy)));
        assert!(seq(&page).unwrap() > before);
        page[0] = 0;
        assert!(matches!(Page::read(&page), Err(ReadError::BadMagic)));
    }

    #[test]
    fn lines_round_trip() {
        let mut e = Entry::named("flooder");
        e.values = [1, 2, 3, 4, 5, 6];
        let mut s = String::new();
        text::entry(&mut s, "store", Kind::Kv, &e).unwrap();
        assert_eq!(
            s,
            "counters store kv flooder gets=1 puts=2 deletes=3 refused=4 quota_refused=5 bytes=6\n"
        );
        assert_eq!(text::parse(s.trim()), Some(("store", Kind::Kv, e)));
        assert_eq!(text::parse("counters store kv flooder gets=1"), None);
        assert_eq!(
            text::parse("counters store kv flooder puts=1 gets=2 deletes=3 refused=4 quota_refused=5 bytes=6"),
            None
        );
        assert_eq!(Kind::Blk.field("written_bytes"), Some(5));
        let mut e = Entry::named("server");
        e.values = [7, 2, 0, 1, 0, 0];
        let mut s = String::new();
        text::entry(&mut s, "server", Kind::Ipc, &e).unwrap();
        assert_eq!(
            s,
            "counters server ipc server notified=7 ppc_in=2 ppc_out=0 child_faults=1\n"
        );
        assert_eq!(text::parse(s.trim()), Some(("server", Kind::Ipc, e)));
        assert_eq!(ipc_value_at(IPC_PPC_OUT) % 8, 0);
    }
}
