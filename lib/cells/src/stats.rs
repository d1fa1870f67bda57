//! The statistics table: what the monitor knows of every top-level PD, in
//! a frame it writes and the statistics PD maps read-only.
//!
//! The statistics PD asks for a refresh with a call on its monitor
//! endpoint, label [`REFRESH_LABEL`]; the monitor (priority 255) reads each
//! PD's scheduling context (`SchedContextConsumed`, which every MCS
//! configuration has, unlike the benchmark configuration's utilisation
//! tracking), adds what it learnt from faults, writes the whole table and
//! only then replies, so the table never changes while the statistics PD
//! reads it between two calls.
//!
//! Layout, little-endian: a [`HEADER`]-byte header (magic, version, entry
//! count, refresh count), then one [`ENTRY`]-byte [`Entry`] per PD in the
//! spec's order.

/// Label of the refresh request (not a fault label, nor 0, which a
/// passive PD sends when its `init` is done).
pub const REFRESH_LABEL: u64 = 0x7374_6174;

/// The statistics PD's channel to its console driver (its first; the
/// timer's is the next free one).
pub const CONSOLE_CHANNEL: u8 = 0;

pub const MAGIC: u32 = u32::from_le_bytes(*b"SSTA");
pub const VERSION: u32 = 1;
pub const HEADER: usize = 32;
pub const ENTRY: usize = 64;
/// Bytes of a PD's name kept in the table (longer names are cut).
pub const NAME_LEN: usize = 24;

/// The most entries a table of `size` bytes holds.
pub const fn capacity(size: usize) -> usize {
    size.saturating_sub(HEADER) / ENTRY
}

/// What a PD is doing, as the monitor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum State {
    #[default]
    Running,
    /// Stopped by its policy (or the whole system halted).
    Stopped,
    /// A passive server, running on its callers' time.
    Passive,
}

impl State {
    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> State {
        match c {
            1 => State::Stopped,
            2 => State::Passive,
            _ => State::Running,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Stopped => "stopped",
            State::Passive => "passive",
        }
    }
}

/// One PD's line of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Entry {
    pub name: [u8; NAME_LEN],
    /// Microseconds its scheduling context has consumed since boot.
    pub cpu_us: u64,
    pub budget_us: u32,
    pub period_us: u32,
    /// Faults the monitor received (timeouts not counted).
    pub faults: u32,
    pub restarts: u32,
    /// Times the PD ran out of budget before its period ended (timeout
    /// faults: only cells have a timeout endpoint).
    pub overruns: u32,
    pub state: State,
    pub cell: bool,
    pub priority: u8,
}

impl Entry {
    /// An entry named `name` (cut to [`NAME_LEN`] bytes), all counters 0.
    pub fn named(name: &str) -> Entry {
        let mut e = Entry::default();
        let mut len = name.len().min(NAME_LEN);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        e.name[..len].copy_from_slice(&name.as_bytes()[..len]);
        e
    }

    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }

    fn write(&self, b: &mut [u8]) {
        b[..NAME_LEN].copy_from_slice(&self.name);
        b[24..32].copy_from_slice(&self.cpu_us.to_le_bytes());
        b[32..36].copy_from_slice(&self.budget_us.to_le_bytes());
        b[36..40].copy_from_slice(&self.period_us.to_le_bytes());
        b[40..44].copy_from_slice(&self.faults.to_le_bytes());
        b[44..48].copy_from_slice(&self.restarts.to_le_bytes());
        b[48..52].copy_from_slice(&self.overruns.to_le_bytes());
        b[52] = self.state.code();
        b[53] = u8::from(self.cell);
        b[54] = self.priority;
        b[55..ENTRY].fill(0);
    }

    fn read(b: &[u8]) -> Entry {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut name = [0; NAME_LEN];
        name.copy_from_slice(&b[..NAME_LEN]);
        let mut cpu = [0; 8];
        cpu.copy_from_slice(&b[24..32]);
        Entry {
            name,
            cpu_us: u64::from_le_bytes(cpu),
            budget_us: u32_at(32),
            period_us: u32_at(36),
            faults: u32_at(40),
            restarts: u32_at(44),
            overruns: u32_at(48),
            state: State::from_code(b[52]),
            cell: b[53] != 0,
            priority: b[54],
        }
    }
}

/// Writes the header and `entries` (as many as fit) into `table`; returns
/// how many were written.
pub fn write(table: &mut [u8], refreshes: u64, entries: &[Entry]) -> usize {
    if table.len() < HEADER {
        return 0;
    }
    let n = entries.len().min(capacity(table.len()));
    table[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    table[4..8].copy_from_slice(&VERSION.to_le_bytes());
    table[8..12].copy_from_slice(&(n as u32).to_le_bytes());
    table[12..16].fill(0);
    table[16..24].copy_from_slice(&refreshes.to_le_bytes());
    table[24..HEADER].fill(0);
    for (e, b) in entries[..n]
        .iter()
        .zip(table[HEADER..].chunks_exact_mut(ENTRY))
    {
        e.write(b);
    }
    n
}

/// Why a table cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    TooShort,
    BadMagic,
    BadVersion(u32),
    /// It claims more entries than its size holds.
    BadCount(u32),
}

/// A table as read: its refresh count and entries.
pub struct Table<'a> {
    bytes: &'a [u8],
    pub count: usize,
    pub refreshes: u64,
}

impl<'a> Table<'a> {
    pub fn read(bytes: &'a [u8]) -> Result<Table<'a>, ReadError> {
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
        let count = u32_at(8);
        if count as usize > capacity(bytes.len()) {
            return Err(ReadError::BadCount(count));
        }
        let mut r = [0; 8];
        r.copy_from_slice(&bytes[16..24]);
        Ok(Table {
            bytes,
            count: count as usize,
            refreshes: u64::from_le_bytes(r),
        })
    }

    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.bytes[HEADER..]
            .chunks_exact(ENTRY)
            .take(self.count)
            .map(Entry::read)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// An entry with every field set.
    pub(crate) fn sample(name: &str) -> Entry {
        let mut e = Entry::named(name);
        e.cpu_us = 123_456_789;
        e.budget_us = 2000;
        e.period_us = 10_000;
        e.faults = 3;
        e.restarts = 2;
        e.overruns = 77;
        e.state = State::Stopped;
        e.cell = true;
        e.priority = 45;
        e
    }

    #[test]
    fn a_table_round_trips() {
        let a = sample("spinner");
        let b = Entry::named("a_name_longer_than_twenty_four_bytes");
        let mut page = [0xffu8; 4096];
        assert_eq!(write(&mut page, 9, &[a, b]), 2);
        let t = Table::read(&page).unwrap();
        assert_eq!(t.refreshes, 9);
        let got: Vec<Entry> = t.entries().collect();
        assert_eq!(got, [a, b]);
        assert_eq!(got[1].name(), "a_name_longer_than_twent");
    }

    #[test]
    fn only_what_fits_is_written_and_bad_tables_are_refused() {
        let mut small = [0u8; HEADER + 2 * ENTRY];
        assert_eq!(write(&mut small, 0, &[Entry::default(); 5]), 2);
        assert_eq!(Table::read(&small).unwrap().count, 2);
        small[8] = 3;
        assert_eq!(Table::read(&small).err(), Some(ReadError::BadCount(3)));
        small[0] = 0;
        assert_eq!(Table::read(&small).err(), Some(ReadError::BadMagic));
        assert_eq!(Table::read(&small[..4]).err(), Some(ReadError::TooShort));
    }
}

/// The statistics as text, the way the statistics PD writes them to its
/// console and `cargo septa top` reads them: a frame is a header line,
/// one line per PD, and an end line.
///
/// ```text
/// septa-stats REFRESH NOW_NS
/// NAME cell|pd STATE PRIORITY BUDGET_US PERIOD_US CPU_US FAULTS RESTARTS OVERRUNS
/// septa-stats-end
/// ```
pub mod text {
    use super::{Entry, State};
    use core::fmt::{self, Write};

    pub const HEADER: &str = "septa-stats";
    pub const END: &str = "septa-stats-end";

    /// Writes a frame's header line.
    pub fn header(o: &mut impl Write, refresh: u64, now_ns: u64) -> fmt::Result {
        writeln!(o, "{HEADER} {refresh} {now_ns}")
    }

    /// Writes an entry's line.
    pub fn entry(o: &mut impl Write, e: &Entry) -> fmt::Result {
        writeln!(
            o,
            "{} {} {} {} {} {} {} {} {} {}",
            e.name(),
            if e.cell { "cell" } else { "pd" },
            e.state.name(),
            e.priority,
            e.budget_us,
            e.period_us,
            e.cpu_us,
            e.faults,
            e.restarts,
            e.overruns
        )
    }

    /// A header line's refresh count and time.
    pub fn parse_header(line: &str) -> Option<(u64, u64)> {
        let mut w = line.split_ascii_whitespace();
        if w.next()? != HEADER {
            return None;
        }
        let r = w.next()?.parse().ok()?;
        let t = w.next()?.parse().ok()?;
        w.next().is_none().then_some((r, t))
    }

    /// An entry line, back into an entry (`None` if malformed).
    pub fn parse_entry(line: &str) -> Option<Entry> {
        let mut w = line.split_ascii_whitespace();
        let mut e = Entry::named(w.next()?);
        e.cell = match w.next()? {
            "cell" => true,
            "pd" => false,
            _ => return None,
        };
        e.state = match w.next()? {
            "running" => State::Running,
            "stopped" => State::Stopped,
            "passive" => State::Passive,
            _ => return None,
        };
        e.priority = w.next()?.parse().ok()?;
        e.budget_us = w.next()?.parse().ok()?;
        e.period_us = w.next()?.parse().ok()?;
        e.cpu_us = w.next()?.parse().ok()?;
        e.faults = w.next()?.parse().ok()?;
        e.restarts = w.next()?.parse().ok()?;
        e.overruns = w.next()?.parse().ok()?;
        w.next().is_none().then_some(e)
    }

    #[cfg(test)]
    mod tests {
        extern crate std;
        use super::*;
        use std::string::String;

        #[test]
        fn lines_round_trip() {
            let e = super::super::tests::sample("worker");
            let mut s = String::new();
            header(&mut s, 3, 4_000_000_000).unwrap();
            entry(&mut s, &e).unwrap();
            let mut lines = s.lines();
            assert_eq!(
                parse_header(lines.next().unwrap()),
                Some((3, 4_000_000_000))
            );
            assert_eq!(parse_entry(lines.next().unwrap()), Some(e));
            assert_eq!(parse_entry("worker cell running 1"), None);
            assert_eq!(parse_header("septa-stats x 1"), None);
        }
    }
}
