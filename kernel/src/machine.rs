//! The portable core's view of the machine.
//!
//! Threads: `fpu_enable`/`fpu_save`/`fpu_load` switch FP/SIMD state,
//! `irq_pending` answers preemption points, `irq_acknowledge`/`irq_eoi`
//! take an interrupt, `timer_ack` silences the kernel timer, `halt` stops
//! the machine (DebugHalt), `smc_call` makes an SMC call.
//!
//! The core never touches hardware itself: it calls these functions. On the
//! target they forward to `arch::aarch64`; in host tests they act on a
//! recording double, so a test can check that unmapping flushed the TLB or
//! that a budget expiry programmed the timer.
//!
//! Address spaces: `set_vspace_root` installs a thread's stage-2 root with
//! its VMID, `set_empty_vspace_root` the kernel's empty one (for threads
//! without a valid VSpace); `vmid_count` says how many VMIDs the hardware
//! tags TLB entries with, and `sync_table_entry` makes a page-table write
//! visible to the table walker. Interrupts: `irq_node` is the physical
//! address of the kernel's per-IRQ slots, `irq_lines` the number of lines
//! of the interrupt controller, `send_sgi` raises a software interrupt.
//!
//! Benchmark configuration: `cycles` reads the PMU cycle counter,
//! `clean_invalidate_caches`/`clean_invalidate_l1` flush the caches by
//! set and way (BenchmarkFlushCaches).
//!
//! Hardware debug (debug configuration): `debug_read`/`debug_write` reach
//! a breakpoint or watchpoint register pair, `debug_disable` clears one's
//! enable bit, `debug_single_step` sets MDSCR_EL1.SS, `debug_traps`
//! routes debug exceptions and register accesses to EL2 or not.
//!
//! Time is in ticks of the system counter (CNTPCT_EL0); `us_to_ticks` and
//! `ticks_to_us` convert. On QEMU `virt` the counter runs at 62.5 MHz.
//!
//! VCPUs (`object::vcpu`): `vcpu_hw_read`/`vcpu_hw_write` reach the EL1
//! system register behind each VCPU register index, `vgic_read`/`vgic_write`
//! and `vgic_lr`/`set_vgic_lr` the GICv2 hypervisor interface (GICH),
//! `set_hyp_mode` switches HCR_EL2 between native threads and guests,
//! `native_el1` puts back what native threads need of SCTLR_EL1 and
//! CPACR_EL1, `export_arch_timer` what they may use of the generic timer,
//! and `translate_s1` asks the MMU for a guest's IPA (AT S1E1R).

/// Interrupt ids handed to user level: SPIs and PPIs of the GIC.
pub type Irq = u16;

/// The word registers of the GICv2 virtual interface control block (GICH)
/// the VCPU code uses; list registers have their own accessors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicReg {
    /// GICH_HCR: hypervisor control (bit 0 enables the virtual interface).
    Hcr,
    /// GICH_VTR: how many list registers there are (read only).
    Vtr,
    /// GICH_VMCR: the guest's CPU interface state (PMR, enables, ...).
    Vmcr,
    /// GICH_MISR: why the maintenance interrupt is raised (read only).
    Misr,
    /// GICH_EISR0/1: list registers whose EOI raised it (read only).
    Eisr0,
    Eisr1,
    /// GICH_APR: the guest's active priorities.
    Apr,
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp {
    use super::Irq;
    use crate::arch::aarch64::{cache, debug, gic, stage2, timer, vcpu};

    pub fn now() -> u64 {
        timer::now()
    }
    pub fn counter_frequency() -> u64 {
        timer::frequency()
    }
    pub fn set_deadline(ticks: u64) {
        timer::set_deadline(ticks)
    }
    #[inline(always)]
    pub fn set_deadline_before_eret(ticks: u64) {
        timer::set_deadline_before_eret(ticks)
    }
    pub const TIMER_IRQ: Irq = timer::IRQ;
    pub fn timer_ack() {
        timer::disarm()
    }
    pub fn irq_pending() -> bool {
        gic::irq_pending()
    }
    pub fn irq_acknowledge() -> Option<Irq> {
        gic::acknowledge()
    }
    pub fn irq_eoi(irq: Irq) {
        gic::end_of_interrupt(irq)
    }
    pub fn fpu_enable(on: bool) {
        crate::arch::aarch64::fpu::enable(on)
    }
    pub fn fpu_save(paddr: u64) {
        crate::arch::aarch64::fpu::save(paddr)
    }
    pub fn fpu_load(paddr: u64) {
        crate::arch::aarch64::fpu::load(paddr)
    }
    pub fn halt() {
        crate::arch::aarch64::trap::halt()
    }
    pub fn smc_call(args: [u64; 8]) -> [u64; 8] {
        crate::arch::aarch64::smc::smc_call(args)
    }
    pub fn irq_mask(irq: Irq) {
        gic::disable(irq)
    }
    pub fn irq_unmask(irq: Irq) {
        gic::enable(irq)
    }
    pub fn irq_set_trigger(irq: Irq, edge: bool) {
        gic::set_trigger(irq, edge)
    }
    pub fn tlb_flush_vmid(vmid: u16) {
        stage2::flush_vmid(vmid)
    }
    pub fn tlb_flush_page(vmid: u16, vaddr: u64) {
        stage2::flush_page(vmid, vaddr)
    }
    pub fn clean_data(paddr: u64, len: u64) {
        cache::clean(paddr, len)
    }
    pub fn invalidate_data(paddr: u64, len: u64) {
        cache::invalidate(paddr, len)
    }
    pub fn clean_invalidate_data(paddr: u64, len: u64) {
        cache::clean_invalidate(paddr, len)
    }
    pub fn unify_instruction(paddr: u64, len: u64) {
        cache::unify_instruction(paddr, len)
    }
    pub fn clean_invalidate_caches() {
        cache::clean_invalidate_all()
    }
    pub fn clean_invalidate_l1(kind: u64) {
        cache::clean_invalidate_l1(kind)
    }
    #[inline(always)]
    pub fn cycles() -> u64 {
        crate::arch::aarch64::pmu::cycles()
    }
    pub fn put_char(c: u8) {
        crate::arch::aarch64::console::put_byte(c)
    }
    pub fn set_vspace_root(root: u64, vmid: u16) {
        stage2::activate(root, vmid)
    }
    pub fn set_empty_vspace_root() {
        stage2::activate(
            stage2::empty_root_paddr(),
            crate::object::vspace::vmid::EMPTY_VMID,
        )
    }
    pub fn vmid_count() -> u32 {
        stage2::vmid_count()
    }
    pub fn sync_table_entry(paddr: u64) {
        stage2::sync_entry(paddr)
    }
    pub fn irq_node() -> u64 {
        gic::irq_node_paddr()
    }
    pub fn irq_lines() -> u16 {
        gic::lines()
    }
    pub fn send_sgi(irq: u8, target: u32) {
        gic::send_sgi(irq, target)
    }
    pub fn vcpu_hw_read(reg: usize) -> u64 {
        vcpu::read_reg(reg)
    }
    pub fn vcpu_hw_write(reg: usize, v: u64) {
        vcpu::write_reg(reg, v)
    }
    pub fn vgic_read(r: super::VgicReg) -> u32 {
        vcpu::vgic_read(r)
    }
    pub fn vgic_write(r: super::VgicReg, v: u32) {
        vcpu::vgic_write(r, v)
    }
    pub fn vgic_lr(i: usize) -> u32 {
        vcpu::vgic_lr(i)
    }
    pub fn set_vgic_lr(i: usize, v: u32) {
        vcpu::set_vgic_lr(i, v)
    }
    pub fn set_hyp_mode(guest: bool) {
        vcpu::set_hyp_mode(guest)
    }
    pub fn native_el1() {
        vcpu::native_el1()
    }
    pub fn fpu_enable_el01() {
        vcpu::fpu_enable_el01()
    }
    pub fn export_arch_timer() {
        vcpu::export_arch_timer()
    }
    pub fn translate_s1(va: u64) -> u64 {
        vcpu::translate_s1(va)
    }
    pub fn dsb() {
        vcpu::dsb()
    }
    pub fn isb() {
        vcpu::isb()
    }
    pub fn debug_read(watch: bool, i: u64) -> (u64, u64) {
        debug::read(watch, i)
    }
    pub fn debug_write(watch: bool, i: u64, cr: u64, vr: u64) {
        debug::write(watch, i, cr, vr)
    }
    pub fn debug_disable(watch: bool, i: u64) {
        debug::disable(watch, i)
    }
    pub fn debug_single_step(on: bool) {
        debug::single_step(on)
    }
    pub fn debug_traps(on: bool) {
        debug::set_traps(on)
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod imp {
    //! The host double: a clock tests advance by hand and a log of the
    //! maintenance operations the core asked for.
    extern crate std;
    use super::Irq;
    use std::cell::RefCell;
    use std::vec::Vec;

    /// One recorded request to the machine.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Op {
        Deadline(u64),
        TimerAck,
        Eoi(Irq),
        FpuEnable(bool),
        FpuSave(u64),
        FpuLoad(u64),
        Halt,
        Smc([u64; 8]),
        Mask(Irq),
        Unmask(Irq),
        Trigger(Irq, bool),
        FlushVmid(u16),
        FlushPage(u16, u64),
        Clean(u64, u64),
        Invalidate(u64, u64),
        CleanInvalidate(u64, u64),
        Unify(u64, u64),
        /// BenchmarkFlushCaches: everything, or the level-1 caches of the
        /// kind given (bit 0 instruction, bit 1 data).
        FlushCaches(Option<u64>),
        PutChar(u8),
        /// A thread's address space made current: root and VMID.
        VSpaceRoot(u64, u16),
        /// The empty address space made current.
        EmptyVSpaceRoot,
        SendSgi(u8, u32),
        /// A VCPU register index written to its hardware register.
        VcpuRegWrite(usize, u64),
        /// A GICH word register written.
        VgicWrite(super::VgicReg, u32),
        /// A GICH list register written.
        VgicLrWrite(usize, u32),
        /// HCR_EL2 set for a guest (true) or for native threads (false).
        HypMode(bool),
        /// SCTLR_EL1 set back to what native threads run with.
        NativeEl1,
        /// CPACR_EL1 lets EL0 and EL1 use FP/SIMD.
        FpuEnableEl01,
        /// The timer access of native threads written back.
        ExportArchTimer,
        /// A debug register pair written: watchpoint?, index, control, value.
        DebugWrite(bool, u64, u64, u64),
        DebugSingleStep(bool),
        /// Debug exceptions and register accesses trap to EL2 (native
        /// threads) or not (a guest).
        DebugTraps(bool),
    }

    /// List registers of the pretended GIC's virtual interface: QEMU's 4.
    const DEFAULT_LIST_REGS: u32 = 4;

    /// The pretended VCPU hardware: the EL1 registers behind the VCPU
    /// register indices, the GICH registers, and what AT S1E1R answers.
    #[derive(Clone, Debug)]
    pub struct VcpuHw {
        pub regs: [u64; septa_abi::vcpu_reg::COUNT as usize],
        /// Indexed by `VgicReg as usize`.
        pub vgic: [u32; 7],
        pub lrs: [u32; 64],
        /// HCR_EL2 is in the guest setting.
        pub guest_mode: bool,
        /// What `translate_s1` returns for an address (PAR_EL1): by
        /// default the address itself, as with a guest's MMU off.
        pub translate_offset: u64,
    }

    impl Default for VcpuHw {
        fn default() -> Self {
            let mut vgic = [0; 7];
            vgic[super::VgicReg::Vtr as usize] = DEFAULT_LIST_REGS - 1;
            VcpuHw {
                regs: [0; septa_abi::vcpu_reg::COUNT as usize],
                vgic,
                lrs: [0; 64],
                guest_mode: false,
                translate_offset: 0,
            }
        }
    }

    /// What the double reports as the hardware's VMID count unless a test
    /// says otherwise: 8-bit VMIDs, as the Cortex-A53 has.
    const DEFAULT_VMIDS: u32 = 256;
    /// A GICv2 with QEMU `virt`'s 288 lines.
    const DEFAULT_IRQ_LINES: u16 = 288;

    struct State {
        now: u64,
        log: Vec<Op>,
        vmids: u32,
        irq_node: u64,
        irq_lines: u16,
        vcpu: VcpuHw,
    }

    impl Default for State {
        fn default() -> Self {
            State {
                now: 0,
                log: Vec::new(),
                vmids: DEFAULT_VMIDS,
                irq_node: 0,
                irq_lines: DEFAULT_IRQ_LINES,
                vcpu: VcpuHw::default(),
            }
        }
    }

    std::thread_local! {
        static STATE: RefCell<State> = RefCell::new(State::default());
    }

    fn record(op: Op) {
        STATE.with(|s| s.borrow_mut().log.push(op));
    }

    /// Test control: set the clock.
    pub fn set_now(ticks: u64) {
        STATE.with(|s| s.borrow_mut().now = ticks);
    }
    /// Test control: how many VMIDs the pretended hardware has (small
    /// numbers make VMID recycling easy to provoke).
    pub fn set_vmid_count(n: u32) {
        STATE.with(|s| s.borrow_mut().vmids = n);
    }
    /// Test control: where the kernel's IRQ slots are (arena memory; on
    /// the target they are a kernel static).
    pub fn set_irq_node(paddr: u64) {
        STATE.with(|s| s.borrow_mut().irq_node = paddr);
    }
    /// Test control: how many lines the pretended GIC has.
    pub fn set_irq_lines(n: u16) {
        STATE.with(|s| s.borrow_mut().irq_lines = n);
    }
    /// Test control: everything back to its defaults, log emptied.
    pub fn reset() {
        STATE.with(|s| *s.borrow_mut() = State::default());
    }
    /// Test control: take (and clear) the log of requests.
    pub fn take_log() -> Vec<Op> {
        STATE.with(|s| std::mem::take(&mut s.borrow_mut().log))
    }
    /// Test control: what was printed since the log was last taken (the
    /// log is taken).
    pub fn take_printed() -> std::string::String {
        take_log()
            .into_iter()
            .filter_map(|op| match op {
                Op::PutChar(c) => Some(c as char),
                _ => None,
            })
            .collect()
    }

    pub fn now() -> u64 {
        STATE.with(|s| s.borrow().now)
    }
    pub fn counter_frequency() -> u64 {
        // A round 100 MHz (100 ticks a microsecond) so tests read easily.
        100_000_000
    }
    pub fn set_deadline(ticks: u64) {
        record(Op::Deadline(ticks))
    }
    /// The same as [`set_deadline`] here (the target leaves out a
    /// synchronization that an exception return makes).
    pub fn set_deadline_before_eret(ticks: u64) {
        record(Op::Deadline(ticks))
    }
    std::thread_local! {
        static PENDING_IRQ: std::cell::Cell<Option<Irq>> = const { std::cell::Cell::new(None) };
    }
    /// Test control: make an interrupt pending (taken by the next
    /// `irq_acknowledge`).
    pub fn set_pending_irq(irq: Option<Irq>) {
        PENDING_IRQ.with(|p| p.set(irq));
    }
    /// The kernel timer's interrupt (the EL2 physical timer's PPI).
    pub const TIMER_IRQ: Irq = 26;
    pub fn timer_ack() {
        record(Op::TimerAck)
    }
    pub fn irq_pending() -> bool {
        PENDING_IRQ.with(|p| p.get().is_some())
    }
    pub fn irq_acknowledge() -> Option<Irq> {
        PENDING_IRQ.with(|p| p.take())
    }
    pub fn irq_eoi(irq: Irq) {
        record(Op::Eoi(irq))
    }
    pub fn fpu_enable(on: bool) {
        record(Op::FpuEnable(on))
    }
    pub fn fpu_save(paddr: u64) {
        record(Op::FpuSave(paddr))
    }
    pub fn fpu_load(paddr: u64) {
        record(Op::FpuLoad(paddr))
    }
    /// Stops the machine; the double records it and returns.
    pub fn halt() {
        record(Op::Halt)
    }
    /// An SMC call; the double records it and returns the arguments.
    pub fn smc_call(args: [u64; 8]) -> [u64; 8] {
        record(Op::Smc(args));
        args
    }
    pub fn irq_mask(irq: Irq) {
        record(Op::Mask(irq))
    }
    pub fn irq_unmask(irq: Irq) {
        record(Op::Unmask(irq))
    }
    pub fn irq_set_trigger(irq: Irq, edge: bool) {
        record(Op::Trigger(irq, edge))
    }
    pub fn tlb_flush_vmid(vmid: u16) {
        record(Op::FlushVmid(vmid))
    }
    pub fn tlb_flush_page(vmid: u16, vaddr: u64) {
        record(Op::FlushPage(vmid, vaddr))
    }
    pub fn clean_data(paddr: u64, len: u64) {
        record(Op::Clean(paddr, len))
    }
    pub fn invalidate_data(paddr: u64, len: u64) {
        record(Op::Invalidate(paddr, len))
    }
    pub fn clean_invalidate_data(paddr: u64, len: u64) {
        record(Op::CleanInvalidate(paddr, len))
    }
    pub fn unify_instruction(paddr: u64, len: u64) {
        record(Op::Unify(paddr, len))
    }
    pub fn clean_invalidate_caches() {
        record(Op::FlushCaches(None))
    }
    pub fn clean_invalidate_l1(kind: u64) {
        record(Op::FlushCaches(Some(kind)))
    }
    /// The cycle counter: the clock, as if one tick were one cycle.
    pub fn cycles() -> u64 {
        now()
    }
    pub fn put_char(c: u8) {
        record(Op::PutChar(c))
    }
    pub fn set_vspace_root(root: u64, vmid: u16) {
        record(Op::VSpaceRoot(root, vmid))
    }
    pub fn set_empty_vspace_root() {
        record(Op::EmptyVSpaceRoot)
    }
    pub fn vmid_count() -> u32 {
        STATE.with(|s| s.borrow().vmids)
    }
    /// Barriers only on the hardware; nothing to record.
    pub fn sync_table_entry(_paddr: u64) {}
    pub fn irq_node() -> u64 {
        STATE.with(|s| s.borrow().irq_node)
    }
    pub fn irq_lines() -> u16 {
        STATE.with(|s| s.borrow().irq_lines)
    }
    pub fn send_sgi(irq: u8, target: u32) {
        record(Op::SendSgi(irq, target))
    }

    /// Test control: the pretended VCPU hardware as it is now.
    pub fn vcpu_hw() -> VcpuHw {
        STATE.with(|s| s.borrow().vcpu.clone())
    }
    /// Test control: change the pretended VCPU hardware (what a guest or
    /// the GIC would have done while it ran).
    pub fn with_vcpu_hw(f: impl FnOnce(&mut VcpuHw)) {
        STATE.with(|s| f(&mut s.borrow_mut().vcpu))
    }
    pub fn vcpu_hw_read(reg: usize) -> u64 {
        STATE.with(|s| s.borrow().vcpu.regs[reg])
    }
    pub fn vcpu_hw_write(reg: usize, v: u64) {
        record(Op::VcpuRegWrite(reg, v));
        STATE.with(|s| s.borrow_mut().vcpu.regs[reg] = v)
    }
    pub fn vgic_read(r: super::VgicReg) -> u32 {
        STATE.with(|s| s.borrow().vcpu.vgic[r as usize])
    }
    pub fn vgic_write(r: super::VgicReg, v: u32) {
        record(Op::VgicWrite(r, v));
        STATE.with(|s| s.borrow_mut().vcpu.vgic[r as usize] = v)
    }
    pub fn vgic_lr(i: usize) -> u32 {
        STATE.with(|s| s.borrow().vcpu.lrs[i])
    }
    pub fn set_vgic_lr(i: usize, v: u32) {
        record(Op::VgicLrWrite(i, v));
        STATE.with(|s| s.borrow_mut().vcpu.lrs[i] = v)
    }
    pub fn set_hyp_mode(guest: bool) {
        record(Op::HypMode(guest));
        STATE.with(|s| s.borrow_mut().vcpu.guest_mode = guest)
    }
    /// SCTLR_EL1 of native threads in the double (seL4's
    /// `SCTLR_EL1_NATIVE`).
    pub const NATIVE_SCTLR: u64 = 0x34d5_9824;
    /// CNTKCTL_EL1 of native threads in the double (any value a guest is
    /// unlikely to choose).
    pub const NATIVE_CNTKCTL: u64 = 0x201;
    pub fn native_el1() {
        record(Op::NativeEl1);
        with_vcpu_hw(|h| h.regs[septa_abi::vcpu_reg::SCTLR as usize] = NATIVE_SCTLR)
    }
    pub fn fpu_enable_el01() {
        record(Op::FpuEnableEl01);
        with_vcpu_hw(|h| h.regs[septa_abi::vcpu_reg::CPACR as usize] |= 3 << 20)
    }
    pub fn export_arch_timer() {
        record(Op::ExportArchTimer);
        with_vcpu_hw(|h| h.regs[septa_abi::vcpu_reg::CNTKCTL_EL1 as usize] = NATIVE_CNTKCTL)
    }
    pub fn translate_s1(va: u64) -> u64 {
        STATE.with(|s| (va & !0xfff).wrapping_add(s.borrow().vcpu.translate_offset))
    }
    /// Barriers only on the hardware; nothing to record.
    pub fn dsb() {}
    pub fn isb() {}

    std::thread_local! {
        /// The pretended debug registers: 6 breakpoint pairs, 4 watchpoint
        /// pairs.
        static DEBUG_REGS: std::cell::RefCell<[(u64, u64); 10]> = const { std::cell::RefCell::new([(0, 0); 10]) };
    }
    fn debug_index(watch: bool, i: u64) -> usize {
        (i + if watch { 6 } else { 0 }) as usize
    }
    pub fn debug_read(watch: bool, i: u64) -> (u64, u64) {
        DEBUG_REGS.with(|r| r.borrow()[debug_index(watch, i)])
    }
    pub fn debug_write(watch: bool, i: u64, cr: u64, vr: u64) {
        DEBUG_REGS.with(|r| r.borrow_mut()[debug_index(watch, i)] = (cr, vr));
        record(Op::DebugWrite(watch, i, cr, vr))
    }
    pub fn debug_disable(watch: bool, i: u64) {
        DEBUG_REGS.with(|r| r.borrow_mut()[debug_index(watch, i)].0 &= !1);
    }
    pub fn debug_single_step(on: bool) {
        record(Op::DebugSingleStep(on))
    }
    pub fn debug_traps(on: bool) {
        record(Op::DebugTraps(on))
    }
}

pub use imp::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_double_records_requests_and_keeps_time() {
        set_now(500);
        assert_eq!(now(), 500);
        tlb_flush_page(3, 0x1000);
        set_deadline(700);
        assert_eq!(take_log(), [Op::FlushPage(3, 0x1000), Op::Deadline(700)]);
        assert!(take_log().is_empty());
    }
}
