//! # septa-cells: what everyone who deals with cells agrees on
//!
//! A cell is a workload declared in `system.toml` (`[cell.NAME]`) with
//! exactly the CPU, memory and services it may use. The tool expands it
//! into a PD and what that PD needs; the cell's program (on `septa-cell`)
//! finds its peers and heap through symbols the tool patches; the monitor
//! keeps statistics for every PD in a table a trusted statistics PD maps
//! read-only. This crate is the one place those agree:
//!
//! - [`Band`]: the priority bands a cell may run in;
//! - [`peers`]: the table of a cell's channels, by the name of the PD at
//!   the other end, patched into the cell's image;
//! - [`heap`]: where a cell's heap is and the symbols that say so;
//! - [`stats`]: the statistics table the monitor writes, and the request
//!   with which the statistics PD asks it to refresh;
//! - [`kv`]: a cell's key-value namespace, as the store confines it.
//!
//! Owns: layouts and numbers. Must not: make system calls or touch memory
//! it is not handed (it works on byte slices), so it is host-tested as is.
#![no_std]
#![forbid(unsafe_code)]

pub mod counters;
pub mod kv;
pub mod peers;
pub mod stats;

/// A cell's priority band: cells run below every driver, virtualiser and
/// system service (which sit at 100 and up), in one of three ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    Low,
    Normal,
    High,
}

impl Band {
    pub const ALL: [Band; 3] = [Band::Low, Band::Normal, Band::High];

    pub fn name(self) -> &'static str {
        match self {
            Band::Low => "low",
            Band::Normal => "normal",
            Band::High => "high",
        }
    }

    pub fn from_name(name: &str) -> Option<Band> {
        Band::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The priorities of the band, inclusive; a cell without a `priority`
    /// gets the lowest.
    pub fn range(self) -> core::ops::RangeInclusive<u8> {
        match self {
            Band::Low => 10..=39,
            Band::Normal => 40..=69,
            Band::High => 70..=99,
        }
    }
}

/// A cell's heap: one region mapped read-write at [`heap::VADDR`], its
/// address and size patched into the cell's image at the symbols named
/// here (the tool's `setvar_vaddr` and `setvar_size`).
pub mod heap {
    /// Where the tool maps a cell's heap.
    pub const VADDR: u64 = 0x20_0000_0000;
    /// Symbol set to the heap's virtual address (0: no heap).
    pub const VADDR_SYMBOL: &str = "septa_cell_heap";
    /// Symbol set to the heap's size in bytes.
    pub const SIZE_SYMBOL: &str = "septa_cell_heap_size";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_are_disjoint_and_below_services() {
        for (i, a) in Band::ALL.iter().enumerate() {
            assert_eq!(Band::from_name(a.name()), Some(*a));
            assert!(*a.range().end() < 100);
            for b in &Band::ALL[i + 1..] {
                assert!(a.range().end() < b.range().start());
            }
        }
        assert_eq!(Band::from_name("urgent"), None);
    }
}
