//! Boot: from the loader's jump to the root task's first instruction.
//!
//! The loader enters `_start` with the seL4 boot contract: x0/x1 the root
//! task image's physical range, x2 physical minus virtual of that image, x3
//! its entry, x4/x5 the device tree. We switch to the kernel's own tables,
//! read the device tree, give the root task its address space, IPC buffer
//! and BootInfo, and drop to EL0.

use septa_abi::bootinfo::{BootInfo, BootInfoHeader, EXTRA_FDT};
use septa_abi::{PAGE_BITS, ROOT_CNODE_SIZE_BITS, VSPACE_SIZE_BITS};

use super::mmu::{self, ptr};
use super::stage2::{self, Attrs};
use super::sysreg::{hcr, isb, write_sysreg};
use super::{console, entry};
use crate::bootmem::{BootMemError, FreeList, Region};
use crate::context::{UserContext, SPSR_EL0};
use crate::kprintln;

const PAGE: u64 = 1 << PAGE_BITS;

/// QEMU `virt` defaults, used only when no device tree is given: RAM at
/// 1 GiB, 2 GiB of it, the PL011 at 0x0900_0000 (hw/arm/virt.c).
mod fallback {
    pub const RAM_BASE: u64 = 0x4000_0000;
    pub const RAM_SIZE: u64 = 2 << 30;
    pub const UART: u64 = 0x0900_0000;
    pub const GIC_DIST: u64 = 0x0800_0000;
    pub const GIC_CPU: u64 = 0x0801_0000;
}

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// The root task's register block. Until the scheduler owns threads, the
/// root task is the only thread.
pub static mut ROOT_CONTEXT: UserContext = UserContext {
    x: [0; 31],
    sp: 0,
    pc: 0,
    spsr: SPSR_EL0,
    tpidr_el0: 0,
    tpidrro_el0: 0,
};

#[no_mangle]
extern "C" fn kernel_boot(
    ui_p_start: u64,
    ui_p_end: u64,
    pv_offset: u64,
    v_entry: u64,
    dtb_p: u64,
    dtb_size: u64,
) -> ! {
    mmu::init();
    // SAFETY: the loader copied a device tree of `dtb_size` bytes to `dtb_p`,
    // which the window maps; `from_ptr` checks the header before use.
    let fdt = (dtb_p != 0)
        .then(|| unsafe { fdt::Fdt::from_ptr(ptr(dtb_p) as *const u8) }.ok())
        .flatten();
    let uart = fdt
        .as_ref()
        .and_then(|f| {
            f.chosen()
                .stdout()
                .or_else(|| f.find_compatible(&["arm,pl011"]))
        })
        .and_then(|n| n.reg()?.next())
        .map(|r| r.starting_address as u64)
        .unwrap_or(fallback::UART);
    console::init(ptr(uart));
    kprintln!(
        "Septa kernel {} (seL4 16.0.0 ABI, aarch64 EL2, MCS)",
        env!("CARGO_PKG_VERSION")
    );
    let gic = fdt
        .as_ref()
        .and_then(|f| {
            f.find_compatible(&["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a7-gic"])
        })
        .and_then(|n| {
            let mut r = n.reg()?;
            Some((
                r.next()?.starting_address as u64,
                r.next()?.starting_address as u64,
            ))
        })
        .unwrap_or((fallback::GIC_DIST, fallback::GIC_CPU));
    super::gic::init(gic.0, gic.1);
    super::timer::init();
    #[cfg(feature = "benchmark")]
    export_pmu();

    let mut free = FreeList::default();
    let mut ram_regions = 0;
    if let Some(f) = &fdt {
        for r in f.memory().regions() {
            let start = r.starting_address as u64;
            let size = r.size.unwrap_or(0) as u64;
            if free.add(Region::new(start, start + size)).is_ok() {
                ram_regions += 1;
            }
        }
    }
    if ram_regions == 0 {
        kprintln!("no memory in the device tree; assuming the QEMU virt default");
        let _ = free.add(Region::new(
            fallback::RAM_BASE,
            fallback::RAM_BASE + fallback::RAM_SIZE,
        ));
    }
    // SAFETY: linker symbols; only their addresses are taken.
    let (k_start, k_end) = unsafe {
        (
            &__kernel_start as *const u8 as u64,
            &__kernel_end as *const u8 as u64,
        )
    };
    let reserved = [
        Region::new(mmu::kernel_paddr(k_start), mmu::kernel_paddr(k_end)),
        Region::new(ui_p_start, ui_p_end),
        Region::new(
            dtb_p & !(PAGE - 1),
            (dtb_p + dtb_size + PAGE - 1) & !(PAGE - 1),
        ),
    ];
    for r in reserved {
        if free.remove(r).is_err() {
            halt_with("too many disjoint memory regions");
        }
    }

    match create_root_task(
        &mut free,
        ui_p_start,
        ui_p_end,
        pv_offset,
        v_entry,
        fdt.map(|_| (dtb_p, dtb_size)),
    ) {
        Ok(()) => {}
        Err(BootMemError::OutOfMemory { bytes, .. }) => halt_with_args(format_args!(
            "not enough memory for the root task ({bytes} bytes)"
        )),
        Err(BootMemError::TooManyRegions) => halt_with("too many disjoint memory regions"),
    }
    kprintln!("starting the root task at {v_entry:#x}");
    // SAFETY: ROOT_CONTEXT was just filled in and stays valid for the life
    // of the kernel; its address space is active.
    unsafe { entry::restore_user(&raw const ROOT_CONTEXT) }
}

fn zeroed(free: &mut FreeList, bytes: u64, align: u64) -> Result<u64, BootMemError> {
    let p = free.alloc(bytes, align)?;
    // SAFETY: `p` was just taken from free RAM, which the window maps.
    unsafe { core::ptr::write_bytes(ptr(p) as *mut u8, 0, bytes as usize) };
    Ok(p)
}

fn create_root_task(
    free: &mut FreeList,
    ui_p_start: u64,
    ui_p_end: u64,
    pv_offset: u64,
    v_entry: u64,
    dtb: Option<(u64, u64)>,
) -> Result<(), BootMemError> {
    let vspace = zeroed(free, 1 << VSPACE_SIZE_BITS, 1 << VSPACE_SIZE_BITS)?;
    let ipc_buffer = zeroed(free, PAGE, PAGE)?;
    let bootinfo = zeroed(free, PAGE, PAGE)?;
    // The extra BootInfo region: the device tree, behind its header.
    let header = core::mem::size_of::<BootInfoHeader>() as u64;
    let extra = match dtb {
        Some((dtb_p, dtb_size)) => {
            let len = (header + dtb_size + PAGE - 1) & !(PAGE - 1);
            let extra = zeroed(free, len, PAGE)?;
            // SAFETY: `extra` is fresh memory of `len` bytes; the DTB is
            // readable through the window and fits after the header.
            unsafe {
                (ptr(extra) as *mut BootInfoHeader).write(BootInfoHeader {
                    id: EXTRA_FDT,
                    len: header + dtb_size,
                });
                core::ptr::copy_nonoverlapping(
                    ptr(dtb_p) as *const u8,
                    (ptr(extra) + header) as *mut u8,
                    dtb_size as usize,
                );
            }
            Some((extra, len))
        }
        None => None,
    };

    let mut table_error = None;
    let mut alloc_table = || match zeroed(free, PAGE, PAGE) {
        Ok(t) => t,
        Err(e) => {
            table_error = Some(e);
            0
        }
    };
    let image = Attrs {
        writable: true,
        executable: true,
        cacheable: true,
    };
    let data = Attrs {
        writable: true,
        executable: false,
        cacheable: true,
    };
    let mut p = ui_p_start;
    while p < ui_p_end {
        stage2::map_page(
            vspace,
            p.wrapping_sub(pv_offset),
            p,
            image,
            &mut alloc_table,
        );
        p += PAGE;
    }
    let ui_v_end = ui_p_end.wrapping_sub(pv_offset);
    stage2::map_page(vspace, ui_v_end, ipc_buffer, data, &mut alloc_table);
    stage2::map_page(vspace, ui_v_end + PAGE, bootinfo, data, &mut alloc_table);
    let mut extra_len = 0;
    if let Some((extra, len)) = extra {
        for off in (0..len).step_by(PAGE as usize) {
            stage2::map_page(
                vspace,
                ui_v_end + 2 * PAGE + off,
                extra + off,
                data,
                &mut alloc_table,
            );
        }
        extra_len = len;
    }
    if let Some(e) = table_error {
        return Err(e);
    }

    // SAFETY: `bootinfo` is a fresh zeroed page; BootInfo fits in it.
    let bi = unsafe { &mut *(ptr(bootinfo) as *mut BootInfo) };
    bi.extra_len = extra_len;
    bi.node_id = 0;
    bi.num_nodes = 1;
    bi.ipc_buffer = ui_v_end;
    bi.init_thread_cnode_size_bits = ROOT_CNODE_SIZE_BITS as u64;

    // Native threads: stage 1 off with default cacheability, EL0 only,
    // EL1 translation registers trapped; guests get their own settings.
    write_sysreg!("hcr_el2", hcr::NATIVE);
    write_sysreg!("vtcr_el2", stage2::VTCR);
    // CPTR_EL2: RES1 bits only, so FP/SIMD does not trap (saved eagerly).
    write_sysreg!("cptr_el2", 0x33ff);
    // CPACR_EL1.FPEN = 0b11: EL0 may use FP/SIMD.
    write_sysreg!("cpacr_el1", 3 << 20);
    // CNTHCTL_EL2: EL0/EL1 may read the physical counter.
    write_sysreg!("cnthctl_el2", 0b11);
    isb();
    stage2::activate(vspace, 1);
    stage2::flush_current_vmid();

    let ctx_ptr = &raw mut ROOT_CONTEXT;
    // SAFETY: boot is single-threaded and the root task has not started.
    let ctx = unsafe { &mut *ctx_ptr };
    ctx.pc = v_entry;
    ctx.x[0] = ui_v_end + PAGE;
    ctx.spsr = SPSR_EL0;
    Ok(())
}

/// Benchmark build: EL0 may read and configure the PMU cycle counter
/// (PMUSERENR_EL0.EN and .CR), which runs from boot. Whether it counts
/// cycles spent at EL2 is the reader's choice (PMCCFILTR_EL0.NSH), as on
/// real seL4.
#[cfg(feature = "benchmark")]
fn export_pmu() {
    write_sysreg!("pmuserenr_el0", 0b101);
    // PMCR_EL0: E (enable) and C (reset the cycle counter).
    write_sysreg!("pmcr_el0", 0b101);
    write_sysreg!("pmcntenset_el0", 1 << 31);
    isb();
}

fn halt_with(why: &str) -> ! {
    halt_with_args(format_args!("{why}"))
}

fn halt_with_args(why: core::fmt::Arguments) -> ! {
    kprintln!("kernel boot failed: {why}");
    super::trap::halt()
}
