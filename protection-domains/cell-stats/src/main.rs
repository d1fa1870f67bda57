//! # cell-stats: the statistics PD
//!
//! What `[stats]` adds (`tools/sysdesc/src/stats.rs`). Each second (a
//! periodic timeout from the timer subsystem) it calls the monitor on its
//! monitor endpoint with `septa_cells::stats::REFRESH_LABEL`; the monitor
//! reads every PD's scheduling context, writes its table into the frame
//! this PD maps read-only, and answers. This PD copies the table, checks
//! it, and writes it as text (`septa_cells::stats::text`) to its virtio
//! console, where `cargo septa top` and the test harness read it.
//!
//! It trusts the monitor (which the whole system does) and nobody else:
//! no cell has a channel to it, to its console driver or to the table.
//! Owns nothing but its frame buffer; must not write the table (it cannot:
//! the mapping is read-only).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::fmt::Write;

use septa_cells::counters::{self, Page};
use septa_cells::stats::{self, text, Table};
use septa_runtime::septa_sel4::{syscall, CPtr, MessageInfo};
use septa_runtime::{mr_set, msginfo_new, println, protection_domain, timer};
use septa_runtime::{Channel, ChannelSet, Handler};
use septa_serial_protocol::calls::{self as console, MAX_BYTES};

septa_runtime::setvar! {
    static TABLE_VADDR = "stats_table_vaddr";
    static TABLE_SIZE = "stats_table_size";
}

septa_runtime::setvar_array! {
    // `septa_cells::counters::READER_VADDR_SYMBOL` and `READER_SIZE_SYMBOL`:
    // the servers' per-client counters, each page read-only.
    static COUNTERS: [counters::MAX_SERVERS] = "septa_server_counters";
    static COUNTERS_SIZE: [counters::MAX_SERVERS] = "septa_server_counters_size";
}

/// How often the table is refreshed and written.
const PERIOD_NS: u64 = 1_000_000_000;
/// The most of the table read (a page).
const TABLE_MAX: usize = 4096;
const CONSOLE: Channel = Channel::new(stats::CONSOLE_CHANNEL);

struct Stats {
    /// A frame: the PD lines, the servers' counters, each PD's own IPC
    /// counts (about 100 bytes a line).
    frame: heapless::String<16384>,
}

/// Writes `bytes` to the console, a message at a time.
fn write(bytes: &[u8]) {
    for chunk in bytes.chunks(MAX_BYTES) {
        let used = console::pack(chunk, mr_set);
        if CONSOLE
            .pp_call(msginfo_new(console::WRITE, used as u64))
            .is_err()
        {
            return;
        }
    }
}

/// Reads `out.len()` bytes of the page mapped at `base` from `at`.
///
/// # Safety
///
/// `base..base + at + out.len()` must be mapped readable.
unsafe fn copy_from(base: *const u8, at: usize, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: inside the mapping, as the caller says; volatile, for
        // its writer changes it while this PD runs.
        *b = unsafe { base.add(at + i).read_volatile() };
    }
}

/// Server `i`'s counters page, copied into `out` whole between two reads
/// of its sequence count that agree (the server writes it at its own
/// times; this PD outranks it, so a page caught mid-write is skipped, not
/// waited for); `None` if there is none or it was caught so.
fn copy_counters(i: usize, out: &mut [u8; counters::PAGE]) -> Option<usize> {
    let (vaddr, size) = (COUNTERS.get(i), COUNTERS_SIZE.get(i) as usize);
    if vaddr == 0 || size < counters::PAGE {
        return None;
    }
    let base = vaddr as *const u8;
    // SAFETY: the tool mapped the page, `size` bytes (at least a page),
    // read-only at `vaddr` (the setvars say so) for the PD's whole life.
    unsafe { copy_from(base, 0, out) };
    let mut again = [0u8; 8];
    // SAFETY: as above.
    unsafe { copy_from(base, counters::SEQ_AT, &mut again) };
    (counters::seq(out) == Some(u64::from_le_bytes(again))).then_some(out.len())
}

/// A copy of the table as the monitor last wrote it.
fn copy_table(out: &mut [u8; TABLE_MAX]) -> usize {
    let len = (TABLE_SIZE.get() as usize).min(TABLE_MAX);
    let base = TABLE_VADDR.as_ptr::<u8>();
    for (i, b) in out.iter_mut().take(len).enumerate() {
        // SAFETY: the tool mapped the table region, `len` bytes and more,
        // read-only at `base` (the setvars say so); the monitor writes it
        // only while this PD waits in its call, so the read races nothing.
        *b = unsafe { base.add(i).read_volatile() };
    }
    len
}

impl Stats {
    fn refresh(&mut self) {
        let monitor = CPtr::from_bits(septa_runtime::septa_sel4::abi::microkit::slot::MONITOR_EP);
        let reply = syscall::call(monitor, MessageInfo::new(stats::REFRESH_LABEL, 0, 0, 0));
        if reply.label() != 0 {
            println!(
                "stats: the monitor refused a refresh (label {})",
                reply.label()
            );
            return;
        }
        let now = timer::now().unwrap_or(0);
        let mut buf = [0u8; TABLE_MAX];
        let len = copy_table(&mut buf);
        let table = match Table::read(&buf[..len]) {
            Ok(t) => t,
            Err(e) => {
                println!("stats: the table is malformed: {e:?}");
                return;
            }
        };
        self.frame.clear();
        let _ = text::header(&mut self.frame, table.refreshes, now);
        for e in table.entries() {
            let _ = text::entry(&mut self.frame, &e);
        }
        let mut page = [0u8; counters::PAGE];
        for i in 0..counters::MAX_SERVERS {
            let Some(len) = copy_counters(i, &mut page) else {
                continue;
            };
            let Ok(p) = Page::read(&page[..len]) else {
                continue;
            };
            for e in p.entries() {
                let _ = counters::text::entry(&mut self.frame, p.server(), p.kind, &e);
            }
        }
        let _ = writeln!(self.frame, "{}", text::END);
        write(self.frame.as_bytes());
    }
}

impl Handler for Stats {
    fn notified(&mut self, channels: ChannelSet) {
        if timer::channel().is_some_and(|t| channels.contains(t)) {
            self.refresh();
        }
        // The console driver notifies when input arrives: none is read.
    }
}

fn init() -> Stats {
    if let Err(e) = timer::set_periodic(PERIOD_NS) {
        println!("stats: no periodic timeout: {e}");
    }
    println!("stats: writing the statistics every second to the console");
    Stats {
        frame: heapless::String::new(),
    }
}

protection_domain!(init);
