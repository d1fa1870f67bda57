//! The GICv2 distributor and CPU interface (QEMU `virt`'s default).
//!
//! The kernel owns the GIC: user level sees interrupts only through IRQ
//! handler caps and notifications. An interrupt is masked when it arrives
//! and stays masked until user level acknowledges it (IRQHandler Ack), as
//! seL4 does, so a level-triggered device cannot storm the kernel.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use septa_abi::irq::MAX_IRQ;

use super::mmu::{kernel_paddr, ptr};
use super::sysreg::read_sysreg;

static DIST: AtomicU64 = AtomicU64::new(0);
static CPU: AtomicU64 = AtomicU64::new(0);

const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
const GICD_ICPENDR: u64 = 0x280;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_ITARGETSR: u64 = 0x800;
const GICD_ICFGR: u64 = 0xc00;
const GICD_SGIR: u64 = 0xf00;
/// GICD_SGIR: the CPU target list starts at bit 16.
const SGIR_TARGET_SHIFT: u32 = 16;
const GICC_CTLR: u64 = 0x00;
const GICC_PMR: u64 = 0x04;
const GICC_BPR: u64 = 0x08;
const GICC_IAR: u64 = 0x0c;
const GICC_EOIR: u64 = 0x10;

/// First shared peripheral interrupt; below are SGIs (0-15) and PPIs (16-31).
pub const FIRST_SPI: u16 = 32;
/// INTIDs from here on are special (1023: spurious).
pub const SPURIOUS: u16 = 1020;

fn reg(base: &AtomicU64, off: u64) -> *mut u32 {
    (base.load(Ordering::Relaxed) + off) as *mut u32
}

fn write(base: &AtomicU64, off: u64, v: u32) {
    // SAFETY: `base` is the GIC block found in the device tree, mapped as
    // device memory in the kernel window; `off` is a register of it.
    unsafe { reg(base, off).write_volatile(v) }
}

fn read(base: &AtomicU64, off: u64) -> u32 {
    // SAFETY: as in `write`.
    unsafe { reg(base, off).read_volatile() }
}

static LINES: AtomicU64 = AtomicU64::new(0);

/// Number of interrupt lines the distributor implements.
pub fn lines() -> u16 {
    LINES.load(Ordering::Relaxed) as u16
}

/// Initialises distributor and CPU interface at physical `dist` and `cpu`:
/// every SPI off, level-triggered, routed to CPU 0, at one priority.
pub fn init(dist: u64, cpu: u64) {
    DIST.store(ptr(dist), Ordering::Relaxed);
    CPU.store(ptr(cpu), Ordering::Relaxed);
    write(&DIST, GICD_CTLR, 0);
    let lines = ((read(&DIST, GICD_TYPER) & 0x1f) + 1) * 32;
    LINES.store(lines as u64, Ordering::Relaxed);
    for i in (0..lines as u64).step_by(32) {
        write(&DIST, GICD_ICENABLER + i / 8, !0);
        write(&DIST, GICD_ICPENDR + i / 8, !0);
    }
    for i in (0..lines as u64).step_by(4) {
        write(&DIST, GICD_IPRIORITYR + i, 0xa0a0_a0a0);
        if i >= FIRST_SPI as u64 {
            write(&DIST, GICD_ITARGETSR + i, 0x0101_0101);
        }
    }
    for i in (FIRST_SPI as u64..lines as u64).step_by(16) {
        write(&DIST, GICD_ICFGR + i / 4, 0);
    }
    write(&DIST, GICD_CTLR, 1);
    write(&CPU, GICC_PMR, 0xff);
    write(&CPU, GICC_BPR, 0);
    write(&CPU, GICC_CTLR, 1);
}

pub fn enable(irq: u16) {
    write(
        &DIST,
        GICD_ISENABLER + (irq as u64 / 32) * 4,
        1 << (irq % 32),
    );
}

pub fn disable(irq: u16) {
    write(
        &DIST,
        GICD_ICENABLER + (irq as u64 / 32) * 4,
        1 << (irq % 32),
    );
}

/// Edge (true) or level (false) triggering of an SPI.
pub fn set_trigger(irq: u16, edge: bool) {
    if irq < FIRST_SPI {
        return;
    }
    let off = GICD_ICFGR + (irq as u64 / 16) * 4;
    let shift = (irq % 16) * 2 + 1;
    let v = read(&DIST, off);
    let v = if edge {
        v | (1 << shift)
    } else {
        v & !(1 << shift)
    };
    write(&DIST, off, v);
}

/// The pending interrupt with the highest priority, acknowledged; `None`
/// when it was spurious.
pub fn acknowledge() -> Option<u16> {
    let iar = read(&CPU, GICC_IAR);
    let irq = (iar & 0x3ff) as u16;
    if irq >= SPURIOUS {
        None
    } else {
        Some(irq)
    }
}

/// ISR_EL1.I: a physical IRQ is pending (read at EL2).
const ISR_I: u64 = 1 << 7;

/// Whether an interrupt waits at the CPU (the kernel runs with IRQs
/// masked, so one that arrived shows here until it is taken).
pub fn irq_pending() -> bool {
    read_sysreg!("isr_el1") & ISR_I != 0
}

/// Ends the active state of `irq` (priority drop and deactivation).
pub fn end_of_interrupt(irq: u16) {
    write(&CPU, GICC_EOIR, irq as u32);
}

/// Raises software-generated interrupt `irq` (0..16) at CPU interface
/// `target` (0..8), as an SGI signal cap's invocation asks.
pub fn send_sgi(irq: u8, target: u32) {
    write(
        &DIST,
        GICD_SGIR,
        (1 << (target + SGIR_TARGET_SHIFT)) | (irq as u32 & 0xf),
    );
}

/// Bytes of one capability slot (`seL4_SlotBits`).
const SLOT_BYTES: usize = 1 << septa_abi::SLOT_SIZE_BITS;
/// One slot per IRQ user level can name.
const IRQ_SLOTS: usize = MAX_IRQ as usize + 1;

/// The kernel's per-IRQ capability slots (seL4's `intStateIRQNode`): each
/// holds the notification cap its IRQ signals. They are ordinary slots of
/// the derivation tree, named by physical address, so they must be memory
/// the window reaches: a kernel static, in `.data` so that they start
/// all-zero (empty) whatever the loader does with BSS.
#[repr(C, align(32))]
struct IrqNode(UnsafeCell<[u8; IRQ_SLOTS * SLOT_BYTES]>);

// SAFETY: one core, interrupts masked in the kernel; the bytes are only
// reached through `memory::read`/`write` by physical address, never
// through a Rust reference.
unsafe impl Sync for IrqNode {}

#[link_section = ".data.septa_irq_node"]
static IRQ_NODE: IrqNode = IrqNode(UnsafeCell::new([0; IRQ_SLOTS * SLOT_BYTES]));

/// Physical address of the first IRQ slot. Exposes the static's
/// provenance, as the memory window's accesses by address require.
pub fn irq_node_paddr() -> u64 {
    kernel_paddr(IRQ_NODE.0.get().expose_provenance() as u64)
}
