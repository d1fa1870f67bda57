//! The hardware behind VCPUs: the EL1 system registers a guest owns, the
//! GICv2 virtual interface control block (GICH), and the HCR_EL2 settings
//! of guests and native threads. The portable core (`object::vcpu`)
//! decides when each is saved, loaded or switched, as seL4's `vcpu.c` and
//! `armv/vcpu.h` do; this module only performs the accesses.
//!
//! Register indices are seL4's `seL4_VCPUReg` (`septa_abi::vcpu_reg`).
//! Four of them (CONTEXTIDR, AFSR0, AFSR1, ESR) are 32-bit registers that
//! seL4 reads and writes through a 32-bit variable; they are masked the
//! same way here (their upper halves are RES0 anyway).

use core::sync::atomic::{AtomicU64, Ordering};

use septa_abi::vcpu_reg as r;

use super::mmu::ptr;
use super::sysreg::{cnthctl, cntkctl, hcr, isb as isb_, read_sysreg, sctlr_el1, write_sysreg};
use crate::machine::VgicReg;

/// The 32-bit registers among the VCPU registers.
const LOW32: u64 = 0xffff_ffff;

/// Reads the hardware register behind VCPU register `reg` (seL4's
/// `vcpu_hw_read_reg`); an index out of range reads as 0.
pub fn read_reg(reg: usize) -> u64 {
    match reg as u64 {
        r::SCTLR => read_sysreg!("sctlr_el1"),
        r::CPACR => read_sysreg!("cpacr_el1"),
        r::TTBR0 => read_sysreg!("ttbr0_el1"),
        r::TTBR1 => read_sysreg!("ttbr1_el1"),
        r::TCR => read_sysreg!("tcr_el1"),
        r::MAIR => read_sysreg!("mair_el1"),
        r::AMAIR => read_sysreg!("amair_el1"),
        r::CIDR => read_sysreg!("contextidr_el1") & LOW32,
        r::ACTLR => read_sysreg!("actlr_el1"),
        r::AFSR0 => read_sysreg!("afsr0_el1") & LOW32,
        r::AFSR1 => read_sysreg!("afsr1_el1") & LOW32,
        r::ESR => read_sysreg!("esr_el1") & LOW32,
        r::FAR => read_sysreg!("far_el1"),
        r::PAR => read_sysreg!("par_el1"),
        r::VBAR => read_sysreg!("vbar_el1"),
        r::TPIDR_EL1 => read_sysreg!("tpidr_el1"),
        r::VMPIDR_EL2 => read_sysreg!("vmpidr_el2"),
        r::SP_EL1 => read_sysreg!("sp_el1"),
        r::ELR_EL1 => read_sysreg!("elr_el1"),
        r::SPSR_EL1 => read_sysreg!("spsr_el1"),
        r::CNTV_CTL => read_sysreg!("cntv_ctl_el0"),
        r::CNTV_CVAL => read_sysreg!("cntv_cval_el0"),
        r::CNTVOFF => read_sysreg!("cntvoff_el2"),
        r::CNTKCTL_EL1 => read_sysreg!("cntkctl_el1"),
        _ => 0,
    }
}

/// Writes the hardware register behind VCPU register `reg` (seL4's
/// `vcpu_hw_write_reg`); an index out of range is ignored. The values
/// are a guest's own: none of these registers controls EL2.
pub fn write_reg(reg: usize, v: u64) {
    match reg as u64 {
        r::SCTLR => write_sysreg!("sctlr_el1", v),
        r::CPACR => write_sysreg!("cpacr_el1", v),
        r::TTBR0 => write_sysreg!("ttbr0_el1", v),
        r::TTBR1 => write_sysreg!("ttbr1_el1", v),
        r::TCR => write_sysreg!("tcr_el1", v),
        r::MAIR => write_sysreg!("mair_el1", v),
        r::AMAIR => write_sysreg!("amair_el1", v),
        r::CIDR => write_sysreg!("contextidr_el1", v & LOW32),
        r::ACTLR => write_sysreg!("actlr_el1", v),
        r::AFSR0 => write_sysreg!("afsr0_el1", v & LOW32),
        r::AFSR1 => write_sysreg!("afsr1_el1", v & LOW32),
        r::ESR => write_sysreg!("esr_el1", v & LOW32),
        r::FAR => write_sysreg!("far_el1", v),
        r::PAR => write_sysreg!("par_el1", v),
        r::VBAR => write_sysreg!("vbar_el1", v),
        r::TPIDR_EL1 => write_sysreg!("tpidr_el1", v),
        r::VMPIDR_EL2 => write_sysreg!("vmpidr_el2", v),
        r::SP_EL1 => write_sysreg!("sp_el1", v),
        r::ELR_EL1 => write_sysreg!("elr_el1", v),
        r::SPSR_EL1 => write_sysreg!("spsr_el1", v),
        r::CNTV_CTL => write_sysreg!("cntv_ctl_el0", v),
        r::CNTV_CVAL => write_sysreg!("cntv_cval_el0", v),
        r::CNTVOFF => write_sysreg!("cntvoff_el2", v),
        r::CNTKCTL_EL1 => write_sysreg!("cntkctl_el1", v),
        _ => {}
    }
}

// --- The GICv2 virtual interface control block ------------------------------

/// Kernel address of GICH (0 until [`init`]).
static GICH: AtomicU64 = AtomicU64::new(0);

const GICH_HCR: u64 = 0x000;
const GICH_VTR: u64 = 0x004;
const GICH_VMCR: u64 = 0x008;
const GICH_MISR: u64 = 0x010;
const GICH_EISR0: u64 = 0x020;
const GICH_EISR1: u64 = 0x024;
const GICH_APR: u64 = 0x0f0;
const GICH_LR: u64 = 0x100;
/// List registers GICH has room for (GICv2 allows 64).
const MAX_LRS: usize = 64;

/// Records where GICH is: physical `gich`, the interrupt controller's third
/// register region in the device tree (QEMU `virt`: 0x0803_0000).
pub fn init(gich: u64) {
    GICH.store(ptr(gich), Ordering::Relaxed);
}

fn gich_reg(off: u64) -> *mut u32 {
    (GICH.load(Ordering::Relaxed) + off) as *mut u32
}

fn offset(reg: VgicReg) -> u64 {
    match reg {
        VgicReg::Hcr => GICH_HCR,
        VgicReg::Vtr => GICH_VTR,
        VgicReg::Vmcr => GICH_VMCR,
        VgicReg::Misr => GICH_MISR,
        VgicReg::Eisr0 => GICH_EISR0,
        VgicReg::Eisr1 => GICH_EISR1,
        VgicReg::Apr => GICH_APR,
    }
}

pub fn vgic_read(reg: VgicReg) -> u32 {
    // SAFETY: GICH is the interrupt controller's block found in the device
    // tree, mapped as device memory in the kernel window (its first GiB);
    // `offset` names one of its registers.
    unsafe { gich_reg(offset(reg)).read_volatile() }
}

pub fn vgic_write(reg: VgicReg, v: u32) {
    // SAFETY: as in `vgic_read`; the read-only registers ignore writes.
    unsafe { gich_reg(offset(reg)).write_volatile(v) }
}

pub fn vgic_lr(i: usize) -> u32 {
    let i = i.min(MAX_LRS - 1) as u64;
    // SAFETY: as in `vgic_read`; list register `i` lies in GICH's block.
    unsafe { gich_reg(GICH_LR + 4 * i).read_volatile() }
}

pub fn set_vgic_lr(i: usize, v: u32) {
    let i = i.min(MAX_LRS - 1) as u64;
    // SAFETY: as in `vgic_lr`.
    unsafe { gich_reg(GICH_LR + 4 * i).write_volatile(v) }
}

// --- Modes and native settings ---------------------------------------------

/// HCR_EL2 for a guest (true) or for native threads (false), with the
/// synchronisation seL4 does after it.
pub fn set_hyp_mode(guest: bool) {
    write_sysreg!("hcr_el2", if guest { hcr::VCPU } else { hcr::NATIVE });
    isb_();
}

/// Puts back SCTLR_EL1 for native threads (seL4's `SCTLR_DEFAULT`).
pub fn native_el1() {
    write_sysreg!("sctlr_el1", sctlr_el1::NATIVE);
    isb_();
}

/// CPACR_EL1.FPEN: FP/SIMD at EL0 and EL1 not trapped to EL1.
const CPACR_FPEN: u64 = 3 << 20;

/// Lets EL0 and EL1 use FP/SIMD as far as CPACR_EL1 is concerned (seL4's
/// `enableFpuEL01`); whether they trap to EL2 is CPTR_EL2's business.
pub fn fpu_enable_el01() {
    let v = read_sysreg!("cpacr_el1");
    write_sysreg!("cpacr_el1", v | CPACR_FPEN);
}

/// CNTKCTL_EL1 and CNTHCTL_EL2 as native threads run with them, at boot
/// and whenever a guest's timer is saved (seL4's
/// `check_export_arch_timer`): the physical counter and the EL1 physical
/// timer exported (`KernelArmExportPCNTUser`, `KernelArmExportPTMRUser`),
/// the virtual ones not.
pub fn export_arch_timer() {
    write_sysreg!("cntkctl_el1", cntkctl::EL0PCTEN | cntkctl::EL0PTEN);
    write_sysreg!("cnthctl_el2", cnthctl::EL1PCTEN | cnthctl::EL1PCEN);
}

/// PAR_EL1 for an EL1 stage-1 translation of `va` (AT S1E1R), keeping
/// the guest's own PAR_EL1 (seL4's `addressTranslateS1`).
pub fn translate_s1(va: u64) -> u64 {
    let saved = read_sysreg!("par_el1");
    // SAFETY: an address translation only writes PAR_EL1, which is put
    // back below; it neither reads nor writes memory.
    unsafe { core::arch::asm!("at s1e1r, {}", "isb", in(reg) va, options(nostack)) };
    let par = read_sysreg!("par_el1");
    write_sysreg!("par_el1", saved);
    par
}

pub fn dsb() {
    // SAFETY: a barrier has no effect on memory contents.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

pub fn isb() {
    isb_();
}
