//! The PD's own IPC counts (`septa_cells::counters::Kind::Ipc`): times it
//! was woken by notifications, protected calls it handled and made, faults
//! of its children it handled.
//!
//! Neither kernel counts these per thread outside its benchmark
//! configuration, and counting them in the kernel would cost every IPC;
//! so the PD counts its own, in user space, into a page of its own that
//! `[stats]` maps read-write here (setvars [`IPC_VADDR_SYMBOL`],
//! [`IPC_SIZE_SYMBOL`]) and read-only into the statistics PD and the HTTP
//! status cell. A PD can misreport only itself: no other PD writes its
//! page, and it writes no other's.
//!
//! Without `[stats]` the symbol stays 0 and nothing is counted: the cost
//! is then a test of a pointer already in a register (event loop) or of
//! a static (`pp_call`).

use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use septa_cells::counters::{self, Kind, IPC_SIZE_SYMBOL, IPC_VADDR_SYMBOL};

crate::setvar! {
    // `septa_cells::counters::IPC_VADDR_SYMBOL` and `IPC_SIZE_SYMBOL`.
    static PAGE_VADDR = "septa_ipc_counters";
    static PAGE_SIZE = "septa_ipc_counters_size";
}

const _: () = {
    assert!(matches!(IPC_VADDR_SYMBOL.as_bytes(), b"septa_ipc_counters"));
    assert!(matches!(
        IPC_SIZE_SYMBOL.as_bytes(),
        b"septa_ipc_counters_size"
    ));
};

/// The page's first value (null: not counted).
static VALUES: AtomicPtr<u64> = AtomicPtr::new(null_mut());

/// Writes the page's header and the PD's entry (all counts 0), if the
/// tool gave it a page; then counting starts.
pub(crate) fn init() {
    let (vaddr, size) = (PAGE_VADDR.get(), PAGE_SIZE.get() as usize);
    if vaddr == 0 || size < counters::PAGE || vaddr % 8 != 0 {
        return;
    }
    let name = crate::pd_name();
    let mut head = [0u8; counters::HEADER + counters::ENTRY];
    counters::write(
        &mut head,
        Kind::Ipc,
        name.as_str(),
        0,
        &[counters::Entry::named(name.as_str())],
    );
    let base = vaddr as *mut u8;
    for (i, b) in head.iter().enumerate() {
        // SAFETY: the tool mapped `size` (at least a page) bytes read-write
        // at `vaddr` for this PD's whole life, and only this PD writes
        // them; volatile, for other PDs read them.
        unsafe { base.add(i).write_volatile(*b) };
    }
    // SAFETY: inside the page, as above (`ipc_value_at(0)` < a page).
    let values = unsafe { base.add(counters::ipc_value_at(0)) } as *mut u64;
    VALUES.store(values, Ordering::Relaxed);
}

/// The page's first value, or null: the event loop keeps it.
#[inline(always)]
pub(crate) fn values() -> *mut u64 {
    VALUES.load(Ordering::Relaxed)
}

/// Adds one to value `field` of the page at `values` (nothing if null).
#[inline(always)]
pub(crate) fn count(values: *mut u64, field: usize) {
    if !values.is_null() {
        // SAFETY: non-null only as `init` set it: the PD's own page,
        // mapped read-write for its life, 8-byte aligned, with the
        // `IPC_FIELDS` values at `values`; `field` is one of them. Only
        // this (single-threaded) PD writes it.
        unsafe {
            let v = values.add(field);
            v.write_volatile(v.read_volatile().wrapping_add(1));
        }
    }
}
