//! Boot: from the loader's jump to the root task's first instruction.
//!
//! The loader enters `_start` with the seL4 boot contract: x0/x1 the root
//! task image's physical range, x2 physical minus virtual of that image, x3
//! its entry, x4/x5 the device tree. We switch to the kernel's own tables,
//! read the device tree, give the root task its address space, IPC buffer
//! and BootInfo, make its thread and the idle thread, and let the
//! scheduler start the root task at EL0.

use septa_abi::PAGE_BITS;

use super::mmu::{self, ptr};
use super::stage2;
use super::sysreg::{hcr, isb, pmu, sctlr_el1, write_sysreg};
use super::{console, trap};
use crate::bootmem::{FreeList, Region};
use crate::devicetree::DeviceTree;
use crate::object::sched_context::HEADER_BYTES;
use crate::object::tcb::TCB_BYTES;
use crate::{boot, kprintln, memory, print, sched};

const PAGE: u64 = 1 << PAGE_BITS;

/// QEMU `virt` defaults, used only when no device tree is given: RAM at
/// 1 GiB, 2 GiB of it, the PL011 at 0x0900_0000 (hw/arm/virt.c).
mod fallback {
    pub const RAM_BASE: u64 = 0x4000_0000;
    pub const RAM_SIZE: u64 = 2 << 30;
    pub const UART: u64 = 0x0900_0000;
    pub const GIC_DIST: u64 = 0x0800_0000;
    pub const GIC_CPU: u64 = 0x0801_0000;
    /// The GIC's virtual interface control (GICH).
    pub const GIC_HYP: u64 = 0x0803_0000;
}

/// GIC register windows of which the kernel keeps the first page: the
/// distributor, the CPU interface and the hypervisor control interface (in
/// the order of the device tree's `reg`).
const KERNEL_GIC_FRAMES: usize = 3;

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// The idle thread's TCB and scheduling context live in the kernel image
/// (seL4's `ksIdleThreadTCB` and `ksIdleThreadSC`), never in memory that
/// user level could retype.
/// Aligned for the largest TCB of any configuration (4 KiB with the
/// hardware debug API).
#[repr(C, align(4096))]
struct IdleTcb([u8; TCB_BYTES as usize]);
#[repr(C, align(128))]
struct IdleSc([u8; 128]);
static mut IDLE_TCB: IdleTcb = IdleTcb([0; TCB_BYTES as usize]);
static mut IDLE_SC: IdleSc = IdleSc([0; 128]);
const _: () = assert!(HEADER_BYTES + 2 * 16 <= 128);

#[no_mangle]
extern "C" fn kernel_boot(
    ui_p_start: u64,
    ui_p_end: u64,
    pv_offset: u64,
    v_entry: u64,
    dtb_p: u64,
    dtb_size: u64,
) -> ! {
    super::stack::plant_guard();
    if septa_abi::CONFIG.debug_build() {
        super::stack::paint();
    }
    mmu::init();
    // SAFETY: the window maps physical memory up to WINDOW_GIB GiB at
    // KERNEL_WINDOW_BASE (mmu::init), valid for the kernel's whole life.
    unsafe { memory::set_window(septa_abi::KERNEL_WINDOW_BASE, 0, mmu::WINDOW_GIB << 30) };
    // SAFETY: the loader copied a device tree of `dtb_size` bytes to `dtb_p`,
    // which the window maps, and nothing writes it while the kernel boots;
    // `DeviceTree::read` checks every offset against the slice.
    let blob = (dtb_p != 0).then(|| unsafe {
        core::slice::from_raw_parts(ptr(dtb_p) as *const u8, dtb_size as usize)
    });
    let dt = blob.and_then(|b| DeviceTree::read(b).ok());
    let uart = dt
        .as_ref()
        .and_then(|dt| dt.uart()?.reg?.regions().next())
        .map(|(address, _)| address)
        .unwrap_or(fallback::UART);
    console::init(ptr(uart));
    if septa_abi::CONFIG.printing() {
        kprintln!(
            "Septa kernel {} (seL4 16.0.0 ABI, aarch64 EL2, MCS, {} configuration)",
            env!("CARGO_PKG_VERSION"),
            septa_abi::CONFIG.name()
        );
    }
    let mut gic_regions = [
        (fallback::GIC_DIST, 0x1_0000),
        (fallback::GIC_CPU, 0x1_0000),
        (0, 0),
        (0, 0),
    ];
    let gic_node = dt.as_ref().and_then(|dt| dt.gic);
    if let Some(reg) = gic_node.and_then(|n| n.reg) {
        for (slot, r) in gic_regions.iter_mut().zip(reg.regions()) {
            *slot = r;
        }
    }
    super::gic::init(gic_regions[0].0, gic_regions[1].0);
    super::vcpu::init(if gic_regions[2].0 != 0 {
        gic_regions[2].0
    } else {
        fallback::GIC_HYP
    });
    super::timer::init();
    init_user_access();
    if septa_abi::CONFIG.hardware_debug_api() {
        super::debug::init();
    }

    let mut ram = FreeList::default();
    if let Some(reg) = dt.as_ref().and_then(|dt| dt.memory?.reg) {
        for (start, size) in reg.regions() {
            let _ = ram.add(Region::new(start, start.saturating_add(size)));
        }
    }
    if ram.regions().is_empty() {
        crate::kdebugln!("no memory in the device tree; assuming the QEMU virt default");
        let _ = ram.add(Region::new(
            fallback::RAM_BASE,
            fallback::RAM_BASE + fallback::RAM_SIZE,
        ));
    }
    let mut free = ram;
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

    // Device untypeds cover the physical address space outside RAM, less
    // the frames the kernel keeps for itself, as seL4 keeps them (its
    // `kernel_device_frames`): the first page of the GIC distributor, of
    // the CPU interface and of the hypervisor control interface (GICH).
    // The rest of each, and the virtual CPU interface (GICV) that a VMM
    // maps for its guest, go to user level.
    let mut devices = FreeList::default();
    let mut last = 0;
    for r in ram.regions() {
        let _ = devices.add(Region::new(last, r.start));
        last = r.end;
    }
    let _ = devices.add(Region::new(last, 1 << septa_abi::PHYS_ADDR_BITS));
    for (base, _) in gic_regions.into_iter().take(KERNEL_GIC_FRAMES) {
        if base != 0 {
            let _ = devices.remove(Region::new(base, base + PAGE));
        }
    }

    let input = boot::Input {
        image: Region::new(ui_p_start, ui_p_end),
        pv_offset,
        entry: v_entry,
        dtb: dt.as_ref().map(|_| (dtb_p, dtb_size)),
    };
    let rs = match boot::create(&mut free, devices.regions(), &input) {
        Ok(rs) => rs,
        Err(e) => {
            print::raw::str("kernel boot failed: cannot create the root task: ");
            e.print();
            print::raw::str("\n");
            super::trap::halt()
        }
    };
    configure_el2(&rs);
    let root = boot::init_root_thread(&rs);
    let idle_tcb = mmu::kernel_paddr(&raw const IDLE_TCB as u64);
    let idle_sc = mmu::kernel_paddr(&raw const IDLE_SC as u64);
    memory::zero(idle_tcb, TCB_BYTES);
    memory::zero(idle_sc, 128);
    sched::init(idle_tcb, idle_sc, Some(root));
    super::stack::check("at boot");
    if septa_abi::CONFIG.debug_build() {
        crate::kdebugln!(
            "kernel stack: {} of {} bytes used at boot",
            super::stack::high_water(),
            super::stack::size()
        );
    }
    crate::kdebugln!("starting the root task at {v_entry:#x}");
    sched::start();
    trap::return_to_current()
}

/// Configures EL2 for native threads and installs the root task's address
/// space (the scheduler switches address spaces from then on).
fn configure_el2(rs: &boot::RootServer) {
    // Native threads: stage 1 off with default cacheability, EL0 only,
    // EL1 translation registers trapped; guests get their own settings.
    write_sysreg!("hcr_el2", hcr::NATIVE);
    write_sysreg!("vtcr_el2", stage2::VTCR);
    // CPTR_EL2: RES1 bits only, so FP/SIMD does not trap (saved eagerly).
    write_sysreg!("cptr_el2", 0x33ff);
    // CPACR_EL1.FPEN = 0b11: EL0 may use FP/SIMD.
    write_sysreg!("cpacr_el1", 3 << 20);
    isb();
    // No VCPU loaded, the hardware set for native threads; the VCPU code's
    // PPIs unmasked, as seL4's `init_irqs` leaves them.
    crate::object::vcpu::boot_init();
    crate::object::irq::unmask_reserved();
    // Through the VMID allocator, so the VMID the root task runs with is
    // recorded and never handed to another address space.
    crate::object::vspace::set_vm_root(&crate::cap::Cap::VSpace {
        paddr: rs.vspace,
        mapped_asid: Some(rs.asid),
    });
}

/// What EL0 may touch of the generic timer, the caches and the PMU, as
/// seL4 16.0.0 sets it for Microkit's configurations
/// (`armv_init_user_access`, `armv_vcpu_boot_init`, `arm_init_ccnt`): the
/// physical counter and the EL1 physical timer are exported
/// (`KernelArmExportPCNTUser`, `KernelArmExportPTMRUser`), the virtual ones
/// are not; user cache maintenance and CTR_EL0 are allowed
/// (`AArch64UserCacheEnable`); in the benchmark configuration the PMU is
/// exported with the cycle counter running. The kernel's own timer is the
/// EL2 one (CNTHP), which nothing here exposes.
fn init_user_access() {
    super::vcpu::export_arch_timer();
    write_sysreg!("sctlr_el1", sctlr_el1::NATIVE);
    if septa_abi::CONFIG.export_pmu() {
        write_sysreg!("pmuserenr_el0", pmu::PMUSERENR_EN);
    }
    if septa_abi::CONFIG.track_utilisation() {
        write_sysreg!("pmcr_el0", pmu::PMCR_E | pmu::PMCR_P | pmu::PMCR_C);
        write_sysreg!("pmcntenset_el0", pmu::PMCNTEN_CYCLES);
    }
    isb();
}

fn halt_with(why: &str) -> ! {
    print::raw::str("kernel boot failed: ");
    print::raw::str(why);
    print::raw::str("\n");
    super::trap::halt()
}
