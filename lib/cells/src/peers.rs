//! The peer table: a cell's channels, by the name of the PD at the other
//! end. The tool writes it at [`SYMBOL`] in the cell's image (an array of
//! [`MAX`] entries of [`ENTRY`] bytes); `septa-cell` reads it to turn a
//! name into a channel. An entry is the peer's name (NUL-padded, at most
//! [`NAME_LEN`] bytes), then the channel id, then flags ([`PP`]: the cell
//! may call the peer; [`NOTIFY`]: it may notify it). An empty name ends
//! the table.

/// The symbol in a cell's image.
pub const SYMBOL: &str = "septa_cell_peers";
/// Entries in the table: most channels a cell may be declared to have.
pub const MAX: usize = 16;
/// Bytes of an entry.
pub const ENTRY: usize = 64;
/// Most bytes of a peer's name.
pub const NAME_LEN: usize = ENTRY - 2;
/// Bytes of the table.
pub const SIZE: usize = MAX * ENTRY;

/// Flag: the cell may make protected procedure calls to the peer.
pub const PP: u8 = 1;
/// Flag: the cell may notify the peer.
pub const NOTIFY: u8 = 2;

/// One of a cell's channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer<'a> {
    pub name: &'a str,
    pub id: u8,
    pub flags: u8,
}

/// Why a table cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    TooMany,
    NameTooLong,
    EmptyName,
}

/// Writes `peers` as a table.
pub fn encode(peers: &[Peer<'_>]) -> Result<[u8; SIZE], TableError> {
    let mut t = [0u8; SIZE];
    if peers.len() > MAX {
        return Err(TableError::TooMany);
    }
    for (e, p) in t.chunks_exact_mut(ENTRY).zip(peers) {
        if p.name.is_empty() {
            return Err(TableError::EmptyName);
        }
        if p.name.len() > NAME_LEN {
            return Err(TableError::NameTooLong);
        }
        e[..p.name.len()].copy_from_slice(p.name.as_bytes());
        e[NAME_LEN] = p.id;
        e[NAME_LEN + 1] = p.flags;
    }
    Ok(t)
}

/// Looks `name` up in a table; `None` if the cell has no channel to it (or
/// the table is malformed there).
pub fn find<'t>(table: &'t [u8], name: &str) -> Option<Peer<'t>> {
    entries(table).find(|p| p.name == name)
}

/// The entries of a table, in order, up to the first empty or malformed
/// one.
pub fn entries(table: &[u8]) -> impl Iterator<Item = Peer<'_>> {
    table.chunks_exact(ENTRY).map_while(|e| {
        let len = e[..NAME_LEN]
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(NAME_LEN);
        let name = core::str::from_utf8(&e[..len]).ok()?;
        (!name.is_empty()).then_some(Peer {
            name,
            id: e[NAME_LEN],
            flags: e[NAME_LEN + 1],
        })
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn a_table_round_trips_and_ends_at_the_first_empty_entry() {
        let peers = [
            Peer {
                name: "counter",
                id: 0,
                flags: PP | NOTIFY,
            },
            Peer {
                name: "logger",
                id: 3,
                flags: NOTIFY,
            },
        ];
        let t = encode(&peers).unwrap();
        assert_eq!(entries(&t).collect::<Vec<_>>(), peers);
        assert_eq!(find(&t, "logger").map(|p| p.id), Some(3));
        assert_eq!(find(&t, "nobody"), None);
        assert_eq!(entries(&[0u8; SIZE]).count(), 0);
    }

    #[test]
    fn bad_tables_are_refused() {
        let long = "x".repeat(NAME_LEN + 1);
        let p = |name| Peer {
            name,
            id: 0,
            flags: 0,
        };
        assert_eq!(encode(&[p(&long)]), Err(TableError::NameTooLong));
        assert_eq!(encode(&[p("")]), Err(TableError::EmptyName));
        assert_eq!(encode(&[p("a"); MAX + 1]), Err(TableError::TooMany));
        assert!(encode(&[p("a"); MAX]).is_ok());
    }
}
