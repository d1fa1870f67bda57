//! # Virtual CPUs (hyp): a guest's EL1 state, its virtual timer and vGIC
//!
//! A VCPU object (`2^VCPU_SIZE_BITS` bytes, 4 KiB) holds what a guest owns
//! of the CPU beyond its general registers (which stay in its TCB): the EL1
//! system registers of `septa_abi::vcpu_reg`, the virtual timer, and the
//! GICv2 virtual CPU interface (hypervisor control, VM control, active
//! priorities and list registers). A TCB bound to a VCPU (VCPU SetTCB) runs
//! with HCR_EL2 set for a guest, so its SPSR may name EL1 and its stage 1
//! is its own; its VSpace is its stage-2 address space, as for any thread.
//!
//! Everything here follows seL4 16.0.0 (`src/arch/arm/object/vcpu.c`,
//! `armv/armv8-a/64/armv/vcpu.h`, `drivers/timer/generic_timer.c`),
//! including what seL4 does lazily:
//!
//! - **Lazy switching.** The VCPU whose state is in the hardware is the
//!   *current* VCPU; it is *active* while its thread runs. Switching to a
//!   native thread only disables it (HCR_EL2, SCTLR_EL1 and CPACR_EL1 back
//!   to native settings, the vGIC and the virtual timer off), leaving the
//!   other EL1 registers and the list registers in the hardware; switching
//!   back to the same guest re-enables it without a reload. Only a switch
//!   to another VCPU saves the current one into its object and loads the
//!   other. So ReadReg and WriteReg of the current VCPU reach the hardware,
//!   except for the registers that disabling saved into the object (SCTLR,
//!   CPACR and the timer registers), and InjectIRQ writes the hardware
//!   list register of the current VCPU but the object's copy of any other.
//! - **Native threads pay little**: with no VCPU bound to any thread a
//!   switch reads one word ([`switch_to`]); otherwise, while no VCPU is
//!   enabled, a switch between two native threads also reads the thread's
//!   VCPU link and one more word, and compares ([`switch`]).
//! - **VPPI events.** The virtual timer's PPI reaches the kernel while its
//!   guest runs; the kernel masks it, marks it masked in the VCPU and sends
//!   the thread a VPPIEvent fault. It stays masked, also across switches,
//!   until AckVPPI; disabling a VCPU masks it too.
//! - **VGIC maintenance.** Every injected interrupt asks for a maintenance
//!   interrupt when the guest ends it (the list register's EOI bit); the
//!   kernel clears that bit and sends a VGICMaintenance fault naming the
//!   list register.
//!
//! ## Layout
//!
//! | offset | what |
//! |---|---|
//! | `0x000` | the bound TCB, or 0 |
//! | `0x008` | GICH_HCR as the guest last had it |
//! | `0x010` | GICH_VMCR |
//! | `0x018` | GICH_APR |
//! | `0x020` | the virtual timer's PPI is masked (VPPI event not acknowledged) |
//! | `0x040` | the 64 list registers, a word each |
//! | `0x240` | the 24 VCPU registers |
//!
//! Zero rule: seL4's `vcpu_init` gives a new VCPU SCTLR's guest reset
//! value and the vGIC enabled; [`init_new`] does the same for each VCPU a
//! Retype creates. Everything else starts at zero, as in seL4.

use core::cell::Cell;

use crate::cap::Cap;
use crate::context::{sanitise_register, Reg};
use crate::error::{Exception, SyscallError};
use crate::fault::{handle_fault, Fault};
use crate::invocation::{Invocation, ReplyWords};
use crate::machine::{self, VgicReg};
use crate::object::irq;
use crate::object::tcb::Tcb;
use crate::{memory, sched};
use septa_abi::irq::{MAX_IRQ, VGIC_MAINTENANCE, VTIMER_EVENT};
use septa_abi::vcpu_reg as reg;
use septa_abi::{Label, CONFIG, VCPU_SIZE_BITS};

/// Bytes in a VCPU object.
pub const VCPU_BYTES: u64 = 1 << VCPU_SIZE_BITS;

const TCB: u64 = 0x000;
const VGIC_HCR: u64 = 0x008;
const VGIC_VMCR: u64 = 0x010;
const VGIC_APR: u64 = 0x018;
const VPPI_MASKED: u64 = 0x020;
const LRS: u64 = 0x040;
const REGS: u64 = LRS + 8 * MAX_LRS as u64;

/// List registers a GICv2 may have (`GIC_VCPU_MAX_NUM_LR`).
pub const MAX_LRS: usize = 64;
/// VCPU registers (`seL4_VCPUReg_Num`).
pub const NUM_REGS: usize = reg::COUNT as usize;

const _: () = assert!(REGS + 8 * NUM_REGS as u64 <= VCPU_BYTES);

/// The registers a switch between VCPUs saves and loads besides SCTLR,
/// CPACR and the timer (seL4's `seL4_VCPURegSaveRange`): TTBR0 .. SPSR_EL1.
const SAVE_RANGE: core::ops::RangeInclusive<usize> = reg::TTBR0 as usize..=reg::SPSR_EL1 as usize;

/// SCTLR_EL1 of a new VCPU (seL4's `SCTLR_EL1_VM`).
pub use septa_abi::kernel_config::VCPU_INITIAL_SCTLR as SCTLR_EL1_VM;

/// GICH_HCR.En: the virtual CPU interface is on.
const VGIC_HCR_EN: u32 = 1 << 0;
/// GICH_MISR.EOI: a list register with its EOI bit was ended.
const VGIC_MISR_EOI: u32 = 1 << 0;
/// GICH_VTR.ListRegs: list registers minus one.
const VGIC_VTR_LIST_REGS: u32 = 0x3f;

/// GICv2 list register fields (seL4's `virq` bitfield for GICv2).
mod lr {
    pub const VIRTUAL_ID_MASK: u32 = 0x3ff;
    pub const EOI: u32 = 1 << 19;
    pub const PRIORITY_SHIFT: u32 = 23;
    pub const STATE_SHIFT: u32 = 28;
    pub const STATE_MASK: u32 = 3;
    pub const GROUP1: u32 = 1 << 30;
    /// The states: 0 invalid, pending, active (3, pending and active, is
    /// not one of seL4's tags).
    pub const PENDING: u32 = 1;
    pub const ACTIVE: u32 = 2;
}

/// The state field of a list register value.
fn lr_state(v: u32) -> u32 {
    (v >> lr::STATE_SHIFT) & lr::STATE_MASK
}

/// A VCPU object, named by its physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vcpu(u64);

impl Vcpu {
    /// The VCPU at `paddr`, checked once here to lie in the window and be
    /// aligned, so that its words are reached without a check each.
    #[inline(always)]
    pub fn new(paddr: u64) -> Vcpu {
        debug_assert!(paddr != 0, "VCPU at 0");
        memory::check_object(paddr, VCPU_BYTES, VCPU_BYTES);
        Vcpu(paddr)
    }

    /// The VCPU a stored link names, if any (0 is none).
    #[inline(always)]
    pub fn from_link(paddr: u64) -> Option<Vcpu> {
        (paddr != 0).then(|| Vcpu::new(paddr))
    }

    #[inline(always)]
    pub fn paddr(self) -> u64 {
        self.0
    }

    fn link(v: Option<Vcpu>) -> u64 {
        v.map_or(0, |v| v.0)
    }

    /// The word at byte offset `off` (inside the object, a multiple of 8).
    #[inline(always)]
    fn read(self, off: u64) -> u64 {
        assert!(off + 8 <= VCPU_BYTES && off.is_multiple_of(8));
        // SAFETY: the word lies inside the VCPU object, whose range and
        // alignment `Vcpu::new` (the only constructor) checked, at an
        // offset that keeps it aligned.
        unsafe { memory::read_object_field(self.0, off) }
    }

    #[inline(always)]
    fn write(self, off: u64, v: u64) {
        assert!(off + 8 <= VCPU_BYTES && off.is_multiple_of(8));
        // SAFETY: as in `read`.
        unsafe { memory::write_object_field(self.0, off, v) }
    }

    /// The TCB bound to this VCPU.
    pub fn tcb(self) -> Option<Tcb> {
        Tcb::from_link(self.read(TCB))
    }

    fn set_tcb(self, t: Option<Tcb>) {
        self.write(TCB, Tcb::link(t))
    }

    /// Saved VCPU register `i` (`i < NUM_REGS`).
    pub fn reg(self, i: usize) -> u64 {
        self.read(REGS + 8 * i.min(NUM_REGS - 1) as u64)
    }

    pub fn set_reg(self, i: usize, v: u64) {
        self.write(REGS + 8 * i.min(NUM_REGS - 1) as u64, v)
    }

    /// Saved list register `i` (`i < MAX_LRS`).
    pub fn lr(self, i: usize) -> u32 {
        self.read(LRS + 8 * i.min(MAX_LRS - 1) as u64) as u32
    }

    pub fn set_lr(self, i: usize, v: u32) {
        self.write(LRS + 8 * i.min(MAX_LRS - 1) as u64, v as u64)
    }

    fn vgic(self, off: u64) -> u32 {
        self.read(off) as u32
    }

    fn set_vgic(self, off: u64, v: u32) {
        self.write(off, v as u64)
    }

    /// The virtual timer's PPI is masked until AckVPPI.
    pub fn vppi_masked(self) -> bool {
        self.read(VPPI_MASKED) != 0
    }

    fn set_vppi_masked(self, masked: bool) {
        self.write(VPPI_MASKED, masked as u64)
    }
}

/// The VCPU state of the (one) core: seL4's `armHSCurVCPU`,
/// `armHSVCPUActive` and `gic_vcpu_num_list_regs`.
#[derive(Debug)]
pub struct VcpuState {
    /// How many VCPUs are bound to a thread. While none is, no VCPU is
    /// loaded either (unbinding a loaded VCPU unloads it), and a thread
    /// switch reads this word alone ([`switch_to`]).
    bound: Cell<u64>,
    /// The VCPU whose registers are in the hardware (0: none), with
    /// [`ACTIVE`] set while it is enabled, i.e. its thread is the one
    /// running. One word, so a switch between native threads reads one
    /// word and compares ([`switch`]).
    loaded: Cell<u64>,
    /// List registers of the GIC's virtual interface.
    num_lrs: Cell<usize>,
}

/// In [`VcpuState::loaded`]: the loaded VCPU is enabled (VCPUs are 4 KiB
/// aligned, so bit 0 of their address is free).
const ACTIVE: u64 = 1;

crate::kernel_cells!(
    static STATE: VcpuState = VcpuState {
        bound: Cell::new(0),
        loaded: Cell::new(0),
        num_lrs: Cell::new(0),
    };
);

fn loaded() -> u64 {
    STATE.with(|s| s.loaded.get())
}

fn cur() -> Option<Vcpu> {
    Vcpu::from_link(loaded() & !ACTIVE)
}

fn set_cur(v: Option<Vcpu>, active: bool) {
    STATE.with(|s| s.loaded.set(Vcpu::link(v) | active as u64))
}

/// A VCPU is enabled: the current thread is a guest.
pub fn is_active() -> bool {
    loaded() & ACTIVE != 0
}

/// List registers the hardware has.
pub fn num_lrs() -> usize {
    STATE.with(|s| s.num_lrs.get())
}

/// Boot: count the list registers and leave the hardware set for native
/// threads with no VCPU loaded (seL4's `vcpu_boot_init`).
pub fn boot_init() {
    let vtr = machine::vgic_read(VgicReg::Vtr);
    let n = ((vtr & VGIC_VTR_LIST_REGS) as usize + 1).min(MAX_LRS);
    STATE.with(|s| s.num_lrs.set(n));
    disable(None);
    set_cur(None, false);
}

/// Set-up of a VCPU a Retype just created from zeroed memory (seL4's
/// `vcpu_init`): SCTLR's guest reset value and the vGIC enabled.
pub fn init_new(paddr: u64) {
    let v = Vcpu::new(paddr);
    v.set_reg(reg::SCTLR as usize, SCTLR_EL1_VM);
    v.set_vgic(VGIC_HCR, VGIC_HCR_EN);
}

// ---------------------------------------------------------------------------
// Saving, loading, enabling and disabling.

fn save_reg(v: Vcpu, r: u64) {
    v.set_reg(r as usize, machine::vcpu_hw_read(r as usize));
}

fn restore_reg(v: Vcpu, r: u64) {
    machine::vcpu_hw_write(r as usize, v.reg(r as usize));
}

/// Saves the virtual timer and stops it, and gives native threads their
/// timer access back (seL4's `save_virt_timer`).
fn save_virt_timer(v: Vcpu) {
    save_reg(v, reg::CNTV_CTL);
    machine::vcpu_hw_write(reg::CNTV_CTL as usize, 0);
    save_reg(v, reg::CNTV_CVAL);
    save_reg(v, reg::CNTVOFF);
    save_reg(v, reg::CNTKCTL_EL1);
    machine::export_arch_timer();
}

/// Loads the virtual timer, its PPI masked as the VCPU says, and starts it
/// (seL4's `restore_virt_timer`, without `VtimerUpdateVOffset`).
fn restore_virt_timer(v: Vcpu) {
    restore_reg(v, reg::CNTV_CVAL);
    restore_reg(v, reg::CNTKCTL_EL1);
    restore_reg(v, reg::CNTVOFF);
    if irq::is_irq_active(VTIMER_EVENT) {
        let irq = VTIMER_EVENT as machine::Irq;
        if v.vppi_masked() {
            machine::irq_mask(irq);
        } else {
            machine::irq_unmask(irq);
        }
    }
    restore_reg(v, reg::CNTV_CTL);
}

/// Stores the hardware state of `v` in its object; `active` says whether
/// it was enabled, else disabling stored part of it already (seL4's
/// `vcpu_save` with `armv_vcpu_save`).
fn save(v: Vcpu, active: bool) {
    machine::dsb();
    if active {
        save_reg(v, reg::SCTLR);
        v.set_vgic(VGIC_HCR, machine::vgic_read(VgicReg::Hcr));
        save_virt_timer(v);
    }
    v.set_vgic(VGIC_VMCR, machine::vgic_read(VgicReg::Vmcr));
    v.set_vgic(VGIC_APR, machine::vgic_read(VgicReg::Apr));
    for i in 0..num_lrs() {
        v.set_lr(i, machine::vgic_lr(i));
    }
    if active {
        save_reg(v, reg::CPACR);
    }
    for r in SAVE_RANGE {
        save_reg(v, r as u64);
    }
}

/// Loads `v` into the hardware and enables it (seL4's `vcpu_restore`).
fn restore(v: Vcpu) {
    machine::vgic_write(VgicReg::Hcr, 0);
    machine::isb();
    machine::vgic_write(VgicReg::Vmcr, v.vgic(VGIC_VMCR));
    machine::vgic_write(VgicReg::Apr, v.vgic(VGIC_APR));
    for i in 0..num_lrs() {
        machine::set_vgic_lr(i, v.lr(i));
    }
    for r in SAVE_RANGE {
        restore_reg(v, r as u64);
    }
    enable(v);
}

/// Turns the loaded `v` on for its guest (seL4's `vcpu_enable`); with the
/// hardware debug API the guest also takes its own debug exceptions.
fn enable(v: Vcpu) {
    restore_reg(v, reg::SCTLR);
    machine::set_hyp_mode(true);
    machine::vgic_write(VgicReg::Hcr, v.vgic(VGIC_HCR));
    if CONFIG.hardware_debug_api() {
        machine::debug_traps(false);
    }
    restore_reg(v, reg::CPACR);
    restore_virt_timer(v);
}

/// Turns the hardware back to native settings, saving first what native
/// threads would change of `v` if it is given (seL4's `vcpu_disable`);
/// with the hardware debug API, native threads' debug exceptions trap to
/// the kernel again.
#[inline(never)]
fn disable(v: Option<Vcpu>) {
    machine::dsb();
    if let Some(v) = v {
        v.set_vgic(VGIC_HCR, machine::vgic_read(VgicReg::Hcr));
        save_reg(v, reg::SCTLR);
        save_reg(v, reg::CPACR);
        machine::isb();
    }
    machine::vgic_write(VgicReg::Hcr, 0);
    machine::isb();
    machine::native_el1();
    machine::set_hyp_mode(false);
    if CONFIG.hardware_debug_api() {
        machine::debug_traps(true);
    }
    machine::fpu_enable_el01();
    if let Some(v) = v {
        save_virt_timer(v);
        machine::irq_mask(VTIMER_EVENT as machine::Irq);
    }
}

/// [`switch`] to the VCPU of `t`, the thread about to run (seL4's
/// `Arch_switchToThread`); with no VCPU bound anywhere, one word is read.
#[inline(always)]
pub fn switch_to(t: Tcb) {
    if STATE.with(|s| s.bound.get()) != 0 {
        switch(t.vcpu());
    }
}

/// [`switch`] for the idle thread, which has no VCPU (seL4's
/// `Arch_switchToIdleThread`).
#[inline(always)]
pub fn switch_to_idle() {
    if STATE.with(|s| s.bound.get()) != 0 {
        switch(0);
    }
}

/// Makes `new` (a thread's VCPU, or 0 for a native thread) the one the
/// hardware runs with (seL4's `vcpu_switch`). There is nothing to do when
/// `new` is loaded and enabled, or when `new` is 0 and no VCPU is
/// enabled: that is one load and a compare; the work is out of line.
#[inline(always)]
pub fn switch(new: u64) {
    let loaded = loaded();
    let done = if new == 0 {
        loaded & ACTIVE == 0
    } else {
        loaded == new | ACTIVE
    };
    if !done {
        switch_slow(new);
    }
}

#[cold]
#[inline(never)]
fn switch_slow(new: u64) {
    let active = is_active();
    let (cur, new) = (cur(), Vcpu::from_link(new));
    match new {
        Some(n) if cur != Some(n) => {
            if let Some(c) = cur {
                save(c, active);
            }
            restore(n);
            set_cur(Some(n), true);
        }
        Some(n) => {
            machine::isb();
            enable(n);
            set_cur(Some(n), true);
        }
        None => {
            // Leave the VCPU loaded, only disabled.
            disable(cur);
            set_cur(cur, false);
        }
    }
}

/// Forgets the current VCPU without saving it (seL4's
/// `vcpu_invalidate_active`).
fn invalidate_active() {
    if is_active() {
        disable(None);
    }
    set_cur(None, false);
}

/// Saves the current VCPU into its object and unloads it (seL4's
/// `vcpu_flush`): before another domain runs, or a thread moves to one.
#[inline(never)]
pub fn flush() {
    if let Some(c) = cur() {
        save(c, is_active());
        invalidate_active();
    }
}

/// [`flush`] if `t`'s VCPU is the current one (seL4's
/// `vcpu_flush_if_current`).
pub fn flush_if_current(t: Tcb) {
    if t.vcpu() == loaded() & !ACTIVE {
        flush();
    }
}

// ---------------------------------------------------------------------------
// Binding to a TCB.

/// Binds `v` and `t`, undoing either's previous binding (seL4's
/// `associateVCPUTCB`).
fn associate(v: Vcpu, t: Tcb) {
    if let Some(old) = Vcpu::from_link(t.vcpu()) {
        dissociate(old, t);
    }
    if let Some(old) = v.tcb() {
        dissociate(v, old);
    }
    t.set_vcpu(v.paddr());
    v.set_tcb(Some(t));
    STATE.with(|s| s.bound.set(s.bound.get() + 1));
    if sched::cur_thread_opt() == Some(t) {
        switch(v.paddr());
    }
}

/// Unbinds `v` from `t` (seL4's `dissociateVCPUTCB`): if `v` is loaded it
/// is dropped unsaved, and `t`'s SPSR is made a native thread's again.
#[inline(never)]
fn dissociate(v: Vcpu, t: Tcb) {
    if Some(v) == cur() {
        invalidate_active();
    }
    t.set_vcpu(0);
    v.set_tcb(None);
    STATE.with(|s| s.bound.set(s.bound.get() - 1));
    t.set_reg(
        Reg::SPSR,
        sanitise_register(Reg::SPSR, t.reg(Reg::SPSR), false),
    );
}

/// Clean-up when the last cap to a VCPU is deleted (seL4's
/// `vcpu_finalise`).
pub fn finalise(paddr: u64) {
    let v = Vcpu::new(paddr);
    if let Some(t) = v.tcb() {
        dissociate(v, t);
    }
}

/// Clean-up of a TCB that goes away (seL4's `Arch_prepareThreadDelete`,
/// the VCPU part).
pub fn prepare_thread_delete(t: Tcb) {
    if let Some(v) = Vcpu::from_link(t.vcpu()) {
        dissociate(v, t);
    }
}

// ---------------------------------------------------------------------------
// Registers.

/// The registers that disabling a VCPU saves into its object (seL4's
/// `vcpu_reg_saved_when_disabled`).
fn saved_when_disabled(field: u64) -> bool {
    matches!(
        field,
        reg::SCTLR | reg::CNTV_CTL | reg::CNTV_CVAL | reg::CNTVOFF | reg::CNTKCTL_EL1 | reg::CPACR
    )
}

/// Whether VCPU register `field` of `v` is in the hardware now: `v` is
/// loaded and the register was not saved when `v` was disabled.
fn in_hardware(v: Vcpu, field: u64) -> bool {
    cur() == Some(v) && (is_active() || !saved_when_disabled(field))
}

/// seL4's `readVCPUReg`.
fn read_vcpu_reg(v: Vcpu, field: u64) -> u64 {
    if in_hardware(v, field) {
        machine::vcpu_hw_read(field as usize)
    } else {
        v.reg(field as usize)
    }
}

/// seL4's `writeVCPUReg`.
fn write_vcpu_reg(v: Vcpu, field: u64, value: u64) {
    if in_hardware(v, field) {
        machine::vcpu_hw_write(field as usize, value)
    } else {
        v.set_reg(field as usize, value)
    }
}

// ---------------------------------------------------------------------------
// Invocations.

fn err<T>(e: SyscallError) -> Result<T, Exception> {
    Err(e.into())
}

/// The VCPU invocations (seL4's `decodeARMVCPUInvocation`). Arguments
/// (interface `seL4_ARM_VCPU`):
///
/// | invocation | MRs | extra caps |
/// |---|---|---|
/// | SetTCB | | the TCB |
/// | InjectIRQ | virq 0..16, priority 16..24, group 24..32, index 32..40 of one word | |
/// | ReadRegs | field | |
/// | WriteRegs | field, value | |
/// | AckVPPI | irq | |
pub fn decode_invocation(
    inv: &Invocation,
    cap: &Cap,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    let Cap::Vcpu { paddr } = *cap else {
        return err(SyscallError::IllegalOperation);
    };
    let v = Vcpu::new(paddr);
    match Label::from_u64(inv.label) {
        Some(Label::ArmVcpuSetTcb) => decode_set_tcb(inv, v),
        Some(Label::ArmVcpuReadReg) => {
            if inv.length() < 1 {
                return err(SyscallError::TruncatedMessage);
            }
            let field = checked_field(inv.arg(0))?;
            reply.push(read_vcpu_reg(v, field));
            Ok(())
        }
        Some(Label::ArmVcpuWriteReg) => {
            if inv.length() < 2 {
                return err(SyscallError::TruncatedMessage);
            }
            let field = checked_field(inv.arg(0))?;
            write_vcpu_reg(v, field, inv.arg(1));
            Ok(())
        }
        Some(Label::ArmVcpuInjectIrq) => decode_inject_irq(inv, v),
        Some(Label::ArmVcpuAckVppi) => decode_ack_vppi(inv, v),
        _ => err(SyscallError::IllegalOperation),
    }
}

/// A register index of ReadRegs or WriteRegs. seL4 reports a bad one as
/// argument 1, though it is the first argument.
fn checked_field(field: u64) -> Result<u64, Exception> {
    if field >= reg::COUNT {
        return err(SyscallError::InvalidArgument { index: 1 });
    }
    Ok(field)
}

fn decode_set_tcb(inv: &Invocation, v: Vcpu) -> Result<(), Exception> {
    let Some(slot) = inv.extra_cap(0) else {
        return err(SyscallError::TruncatedMessage);
    };
    let Cap::Tcb { paddr } = slot.cap() else {
        return err(SyscallError::IllegalOperation);
    };
    associate(v, Tcb::new(paddr));
    Ok(())
}

/// InjectIRQ (seL4's `decodeVCPUInjectIRQ`): the list register must be in
/// range and, as the VCPU object records it, not hold an active
/// interrupt.
fn decode_inject_irq(inv: &Invocation, v: Vcpu) -> Result<(), Exception> {
    if inv.length() < 1 {
        return err(SyscallError::TruncatedMessage);
    }
    let mr0 = inv.arg(0);
    let virq = mr0 & 0xffff;
    let priority = (mr0 >> 16) & 0xff;
    let group = (mr0 >> 24) & 0xff;
    let index = (mr0 >> 32) & 0xff;
    let range = |max| err(SyscallError::RangeError { min: 0, max });
    if virq > lr::VIRTUAL_ID_MASK as u64 {
        return range(lr::VIRTUAL_ID_MASK as u64);
    }
    if priority > 31 {
        return range(31);
    }
    if group > 1 {
        return range(1);
    }
    let n = num_lrs() as u64;
    if index >= n {
        return range(n.wrapping_sub(1));
    }
    let index = index as usize;
    if lr_state(v.lr(index)) == lr::ACTIVE {
        return err(SyscallError::DeleteFirst);
    }
    let value = (lr::PENDING << lr::STATE_SHIFT)
        | if group != 0 { lr::GROUP1 } else { 0 }
        | (priority as u32) << lr::PRIORITY_SHIFT
        | lr::EOI
        | virq as u32;
    if cur() == Some(v) {
        machine::set_vgic_lr(index, value);
    } else {
        v.set_lr(index, value);
    }
    Ok(())
}

/// AckVPPI (seL4's `decodeVCPUAckVPPI`): the IRQ must be in range and be
/// the virtual timer's; the VCPU's PPI is unmasked when it next runs.
fn decode_ack_vppi(inv: &Invocation, v: Vcpu) -> Result<(), Exception> {
    if inv.length() < 1 {
        return err(SyscallError::TruncatedMessage);
    }
    let irq = inv.arg(0);
    if irq > MAX_IRQ {
        return err(SyscallError::RangeError {
            min: 0,
            max: MAX_IRQ,
        });
    }
    if irq != VTIMER_EVENT {
        return err(SyscallError::InvalidArgument { index: 0 });
    }
    v.set_vppi_masked(false);
    Ok(())
}

// ---------------------------------------------------------------------------
// Interrupts and faults.

/// The kernel's reserved PPIs (seL4's `handleReservedIRQ`): the VGIC
/// maintenance interrupt and the virtual timer's.
pub fn handle_reserved_irq(irq: machine::Irq) {
    if irq as u64 == VGIC_MAINTENANCE {
        vgic_maintenance();
    } else if irq as u64 == VTIMER_EVENT {
        vppi_event(irq);
    }
}

/// Whether the current thread can take a fault from an interrupt now (MCS:
/// not if its budget check has just queued it, or it cannot run; the
/// interrupt is level-triggered and comes back).
fn current_takes_irq_fault() -> Option<Tcb> {
    let t = sched::cur_thread();
    (!t.is_queued() && sched::is_schedulable(t)).then_some(t)
}

/// The virtual timer fired while its guest ran (seL4's `VPPIEvent`).
fn vppi_event(irq: machine::Irq) {
    let Some(t) = current_takes_irq_fault() else {
        return;
    };
    let Some(v) = cur().filter(|_| is_active()) else {
        return;
    };
    machine::irq_mask(irq);
    v.set_vppi_masked(true);
    if t.state().is_runnable() {
        handle_fault(t, Fault::VppiEvent { irq: irq as u64 });
    }
}

/// The guest ended an interrupt whose list register asked for it (seL4's
/// `VGICMaintenance`): the EOI bit is cleared, in the hardware and the
/// VCPU's copy, and the thread gets a VGICMaintenance fault naming the list
/// register (none if the hardware names none, or one out of range).
fn vgic_maintenance() {
    let Some(t) = current_takes_irq_fault() else {
        return;
    };
    let Some(v) = cur().filter(|_| is_active()) else {
        crate::kdebugln!("Received VGIC maintenance without active VCPU!");
        return;
    };
    let eisr0 = machine::vgic_read(VgicReg::Eisr0);
    let eisr1 = machine::vgic_read(VgicReg::Eisr1);
    let misr = machine::vgic_read(VgicReg::Misr);
    let mut idx = None;
    if misr & VGIC_MISR_EOI != 0 {
        let found = if eisr0 != 0 {
            Some(eisr0.trailing_zeros() as usize)
        } else if eisr1 != 0 {
            Some(eisr1.trailing_zeros() as usize + 32)
        } else {
            None
        };
        if let Some(i) = found.filter(|&i| i < num_lrs()) {
            let mut value = machine::vgic_lr(i);
            if lr_state(value) <= lr::ACTIVE {
                value &= !lr::EOI;
            }
            machine::set_vgic_lr(i, value);
            v.set_lr(i, value);
            idx = Some(i as u64);
        }
    }
    if t.state().is_runnable() {
        handle_fault(t, Fault::VgicMaintenance { idx });
    }
}

/// PAR_EL1's output address bits (seL4's `PAR_EL1_MASK`).
const PAR_ADDRESS: u64 = 0x0000_ffff_ffff_f000;
const PAGE_OFFSET: u64 = (1 << septa_abi::PAGE_BITS) - 1;

/// The address a VM fault reports: while a guest runs, the guest-physical
/// address its stage 1 gives for `addr`, as seL4's `handleVMFault` asks
/// the MMU for it; for a native thread, `addr` itself.
pub fn fault_address(addr: u64) -> u64 {
    if is_active() {
        (machine::translate_s1(addr) & PAR_ADDRESS) | (addr & PAGE_OFFSET)
    } else {
        addr
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! What host tests need to see of the VCPU state.
    use super::*;

    pub fn reset() {
        STATE.with(|s| {
            s.bound.set(0);
            s.loaded.set(0);
            s.num_lrs.set(4);
        });
    }

    pub fn current() -> (Option<Vcpu>, bool) {
        (cur(), is_active())
    }

    pub fn vgic_hcr(v: Vcpu) -> u32 {
        v.vgic(VGIC_HCR)
    }

    pub const LR_PENDING: u32 = lr::PENDING << lr::STATE_SHIFT;
    pub const LR_ACTIVE: u32 = lr::ACTIVE << lr::STATE_SHIFT;
    pub const LR_EOI: u32 = lr::EOI;
}
