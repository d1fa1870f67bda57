//! VCPUs: the invocations and their errors, binding, lazy switching
//! between guests and native threads (checked against the machine
//! double's pretend hardware), and the faults guests get (VGIC
//! maintenance, VPPI events, VM faults with guest-physical addresses).

use super::{Reply, Sys, Thread, MS, ROOT_TCB};
use crate::context::Reg;
use crate::machine::{self, Op, VgicReg};
use crate::object::tcb::ThreadState;
use crate::object::vcpu::test_support::{self as ts, LR_ACTIVE, LR_EOI, LR_PENDING};
use crate::object::vcpu::{Vcpu, SCTLR_EL1_VM};
use crate::{sched, syscall};
use septa_abi::fault as abi;
use septa_abi::irq::{MAX_IRQ, VTIMER_EVENT};
use septa_abi::vcpu_reg as reg;
use septa_abi::{syscall as sys, Error, Label, ObjectType};

/// EL1h with DAIF masked: what a guest starts with.
const SPSR_EL1H: u64 = 0x3c5;

fn err(r: &Reply) -> (u64, Vec<u64>) {
    (r.info.label(), r.mrs.clone())
}

/// A fresh system (the VCPU hardware at reset, no VCPU loaded) with an
/// empty machine log.
fn sys() -> Sys {
    let s = Sys::new();
    let _ = machine::take_log();
    s
}

fn vcpu(s: &mut Sys) -> (u64, Vcpu) {
    let slot = s.make(ObjectType::Vcpu, 0);
    (slot, Vcpu::new(s.paddr(slot)))
}

fn call(s: &Sys, cap: u64, label: Label, mrs: &[u64], caps: &[u64]) -> Reply {
    s.call(s.root.tcb, cap, label, mrs, caps)
}

fn read_reg(s: &Sys, v: u64, field: u64) -> u64 {
    let r = call(s, v, Label::ArmVcpuReadReg, &[field], &[]);
    assert_eq!(r.info.label(), 0, "ReadReg {field}: {r:?}");
    assert_eq!(r.mrs.len(), 1);
    r.mrs[0]
}

fn write_reg(s: &Sys, v: u64, field: u64, value: u64) {
    let r = call(s, v, Label::ArmVcpuWriteReg, &[field, value], &[]);
    assert_eq!(r.info.label(), 0, "WriteReg {field}: {r:?}");
}

fn inject(virq: u64, prio: u64, group: u64, index: u64) -> u64 {
    virq | prio << 16 | group << 24 | index << 32
}

/// A guest: a thread at priority 100 bound to a new VCPU, faulting to an
/// endpoint (badge 0xfa) the root waits on, started at EL1h; the root
/// blocks in Recv so the guest is the current thread. Returns the thread,
/// the VCPU's slot and object, the endpoint and the root's reply object.
fn running_guest(s: &mut Sys) -> (Thread, u64, Vcpu, u64, u64) {
    let ep = s.make(ObjectType::Endpoint, 0);
    let fault_ep = s.slot();
    s.fx.mint(fault_ep, ep, septa_abi::CapRights::ALL, 0xfa)
        .unwrap();
    let (t, vslot, v) = guest(s, fault_ep);
    let reply = s.make(ObjectType::Reply, 0);
    s.resume(t);
    wait_on(s, ep, reply);
    assert_eq!(s.cur(), t.tcb);
    (t, vslot, v, ep, reply)
}

/// A thread at priority 100 faulting to `fault_ep`, bound to a new VCPU,
/// with an EL1h SPSR; not started.
fn guest(s: &mut Sys, fault_ep: u64) -> (Thread, u64, Vcpu) {
    let t = s.thread(100, Some((5 * MS, 5 * MS)));
    let r = call(
        s,
        t.tcb_slot,
        Label::TcbSetSchedParams,
        &[100, 100],
        &[ROOT_TCB, t.sc_slot.unwrap(), fault_ep],
    );
    assert_eq!(r.info.label(), 0, "{r:?}");
    let (vslot, v) = vcpu(s);
    let r = call(s, vslot, Label::ArmVcpuSetTcb, &[], &[t.tcb_slot]);
    assert_eq!(r.info.label(), 0, "{r:?}");
    t.tcb.set_reg(Reg::SPSR, SPSR_EL1H);
    (t, vslot, v)
}

/// The root blocks receiving on `ep` with reply object `reply`.
fn wait_on(s: &Sys, ep: u64, reply: u64) {
    s.root.tcb.set_reg(Reg::REPLY, reply);
    s.load(s.root.tcb, ep, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::RECV);
}

/// The VCPU operations in the machine log.
fn vcpu_ops(log: &[Op]) -> Vec<Op> {
    log.iter()
        .filter(|o| {
            matches!(
                o,
                Op::VcpuRegWrite(..)
                    | Op::VgicWrite(..)
                    | Op::VgicLrWrite(..)
                    | Op::HypMode(_)
                    | Op::NativeEl1
                    | Op::FpuEnableEl01
                    | Op::ExportArchTimer
            )
        })
        .cloned()
        .collect()
}

#[test]
fn a_new_vcpu_has_the_guest_sctlr_and_nothing_else() {
    let mut s = sys();
    let (v, obj) = vcpu(&mut s);
    assert_eq!(read_reg(&s, v, reg::SCTLR), SCTLR_EL1_VM);
    for f in 1..reg::COUNT {
        assert_eq!(read_reg(&s, v, f), 0, "register {f}");
    }
    assert_eq!(ts::vgic_hcr(obj), 1, "vGIC enabled");
    // Not loaded: every register is kept in the object as written.
    for f in 0..reg::COUNT {
        write_reg(&s, v, f, 0x1111_0000_0000_0000 | f);
    }
    for f in 0..reg::COUNT {
        assert_eq!(read_reg(&s, v, f), 0x1111_0000_0000_0000 | f);
    }
    assert!(vcpu_ops(&machine::take_log()).is_empty());
}

#[test]
fn invocation_errors_are_those_of_sel4() {
    let mut s = sys();
    let (v, _) = vcpu(&mut s);
    let ep = s.make(ObjectType::Endpoint, 0);
    let t = s.thread(100, None);
    let truncated = (Error::TruncatedMessage as u64, vec![]);
    let r = call(&s, v, Label::ArmVcpuReadReg, &[], &[]);
    assert_eq!(err(&r), truncated);
    let r = call(&s, v, Label::ArmVcpuWriteReg, &[1], &[]);
    assert_eq!(err(&r), truncated);
    let r = call(&s, v, Label::ArmVcpuInjectIrq, &[], &[]);
    assert_eq!(err(&r), truncated);
    let r = call(&s, v, Label::ArmVcpuAckVppi, &[], &[]);
    assert_eq!(err(&r), truncated);
    let r = call(&s, v, Label::ArmVcpuSetTcb, &[], &[]);
    assert_eq!(err(&r), truncated);
    // A bad register index is reported as argument 1.
    let invalid1 = (Error::InvalidArgument as u64, vec![1]);
    let r = call(&s, v, Label::ArmVcpuReadReg, &[reg::COUNT], &[]);
    assert_eq!(err(&r), invalid1);
    let r = call(&s, v, Label::ArmVcpuWriteReg, &[reg::COUNT, 5], &[]);
    assert_eq!(err(&r), invalid1);
    // InjectIRQ ranges, in seL4's order.
    let range = |max: u64| (Error::RangeError as u64, vec![0, max]);
    for (word, max) in [
        (inject(1024, 0, 0, 0), 1023),
        (inject(5, 32, 0, 0), 31),
        (inject(5, 0, 2, 0), 1),
        (inject(5, 0, 0, 4), 3),
        (inject(1024, 32, 2, 4), 1023),
    ] {
        let r = call(&s, v, Label::ArmVcpuInjectIrq, &[word], &[]);
        assert_eq!(err(&r), range(max), "{word:#x}");
    }
    let r = call(&s, v, Label::ArmVcpuAckVppi, &[MAX_IRQ + 1], &[]);
    assert_eq!(err(&r), range(MAX_IRQ));
    let r = call(&s, v, Label::ArmVcpuAckVppi, &[26], &[]);
    assert_eq!(err(&r), (Error::InvalidArgument as u64, vec![0]));
    let r = call(&s, v, Label::ArmVcpuAckVppi, &[VTIMER_EVENT], &[]);
    assert_eq!(r.info.label(), 0);
    // SetTCB with something else than a TCB, and labels of other objects.
    let r = call(&s, v, Label::ArmVcpuSetTcb, &[], &[ep]);
    assert_eq!(err(&r), (Error::IllegalOperation as u64, vec![]));
    let r = call(&s, v, Label::TcbSuspend, &[], &[]);
    assert_eq!(err(&r), (Error::IllegalOperation as u64, vec![]));
    let r = call(&s, v, Label::ArmVcpuSetTcb, &[], &[t.tcb_slot]);
    assert_eq!(r.info.label(), 0);
}

#[test]
fn binding_lets_the_spsr_name_el1_and_unbinding_sanitises_it() {
    let mut s = sys();
    let (v, obj) = vcpu(&mut s);
    let t = s.thread(100, None);
    let (other, _) = vcpu(&mut s);
    let t2 = s.thread(100, None);
    let r = call(&s, v, Label::ArmVcpuSetTcb, &[], &[t.tcb_slot]);
    assert_eq!(r.info.label(), 0);
    assert_eq!(t.tcb.vcpu(), obj.paddr());
    assert_eq!(obj.tcb(), Some(t.tcb));
    // WriteRegisters keeps an EL1 SPSR for a thread with a VCPU.
    let mut regs = [0u64; 3];
    regs[2] = SPSR_EL1H | 0xf000_0000;
    let r = call(
        &s,
        t.tcb_slot,
        Label::TcbWriteRegisters,
        &[0, 3, 0, 0, regs[2]],
        &[],
    );
    assert_eq!(r.info.label(), 0);
    assert_eq!(t.tcb.reg(Reg::SPSR), SPSR_EL1H | 0xf000_0000);
    // Binding the VCPU to another thread unbinds it from the first, whose
    // SPSR keeps only its flags.
    let r = call(&s, v, Label::ArmVcpuSetTcb, &[], &[t2.tcb_slot]);
    assert_eq!(r.info.label(), 0);
    assert_eq!(t.tcb.vcpu(), 0);
    assert_eq!(
        t.tcb.reg(Reg::SPSR),
        0xf000_0000 | crate::context::SPSR_USER
    );
    assert_eq!(obj.tcb(), Some(t2.tcb));
    // Another VCPU for the same thread replaces the first.
    let r = call(&s, other, Label::ArmVcpuSetTcb, &[], &[t2.tcb_slot]);
    assert_eq!(r.info.label(), 0);
    assert_eq!(obj.tcb(), None);
    assert_eq!(t2.tcb.vcpu(), s.paddr(other));
    // Deleting the VCPU unbinds it; deleting a bound TCB unbinds its VCPU.
    s.fx.delete(other).unwrap();
    assert_eq!(t2.tcb.vcpu(), 0);
    let r = call(&s, v, Label::ArmVcpuSetTcb, &[], &[t2.tcb_slot]);
    assert_eq!(r.info.label(), 0);
    s.fx.delete(t2.tcb_slot).unwrap();
    assert_eq!(obj.tcb(), None);
}

#[test]
fn native_thread_switches_touch_no_vcpu_hardware() {
    let mut s = sys();
    let (v, _) = vcpu(&mut s);
    let lonely = s.thread(100, None);
    let r = call(&s, v, Label::ArmVcpuSetTcb, &[], &[lonely.tcb_slot]);
    assert_eq!(r.info.label(), 0);
    let _ = machine::take_log();
    // Two native threads trade the CPU by IPC, fast path and slow path.
    let ep = s.make(ObjectType::Endpoint, 0);
    let reply = s.make(ObjectType::Reply, 0);
    let server = s.thread(200, Some((5 * MS, 5 * MS)));
    s.resume(server);
    assert_eq!(s.cur(), s.root.tcb);
    server.tcb.set_reg(Reg::REPLY, reply);
    // Let the server run and wait.
    s.root.tcb.set_priority_raw(10);
    sched::reschedule_required();
    sched::schedule();
    sched::activate_thread();
    assert_eq!(s.cur(), server.tcb);
    wait_on_thread(&s, server, ep, reply);
    assert_eq!(s.cur(), s.root.tcb);
    for slow in [false, true] {
        s.slow = slow;
        s.load(s.root.tcb, ep, 0, &[1], &[]);
        s.syscall(s.root.tcb, sys::CALL);
        assert_eq!(s.cur(), server.tcb);
        s.load(server.tcb, reply, 0, &[2], &[]);
        server.tcb.set_reg(Reg::X0, ep);
        server.tcb.set_reg(Reg::REPLY, reply);
        s.syscall(server.tcb, sys::REPLY_RECV);
        assert_eq!(s.cur(), s.root.tcb);
    }
    assert_eq!(vcpu_ops(&machine::take_log()), vec![]);
    assert_eq!(ts::current(), (None, false));
}

fn wait_on_thread(s: &Sys, t: Thread, ep: u64, reply: u64) {
    t.tcb.set_reg(Reg::REPLY, reply);
    s.load(t.tcb, ep, 0, &[], &[]);
    s.syscall(t.tcb, sys::RECV);
}

#[test]
fn a_guest_loads_its_vcpu_and_leaving_it_only_disables_it() {
    let mut s = sys();
    let (_, vslot, v, _, _) = running_guest(&mut s);
    // Loaded and enabled: HCR in guest mode, the object's registers in
    // the hardware.
    assert_eq!(ts::current(), (Some(v), true));
    let hw = machine::vcpu_hw();
    assert!(hw.guest_mode);
    assert_eq!(hw.regs[reg::SCTLR as usize], SCTLR_EL1_VM);
    assert_eq!(hw.vgic[VgicReg::Hcr as usize], 1);
    // The guest runs: it changes TPIDR_EL1 and its timer.
    machine::with_vcpu_hw(|h| {
        h.regs[reg::TPIDR_EL1 as usize] = 0x7e57;
        h.regs[reg::CNTV_CTL as usize] = 1;
        h.regs[reg::CNTV_CVAL as usize] = 0x1234;
    });
    // A fault hands the CPU to the root: the VCPU is disabled, not saved.
    let _ = machine::take_log();
    syscall::handle_vcpu_fault(0x5e00_0000, 0);
    assert_eq!(s.cur(), s.root.tcb);
    assert_eq!(ts::current(), (Some(v), false));
    let log = machine::take_log();
    assert!(log.contains(&Op::HypMode(false)));
    assert!(log.contains(&Op::NativeEl1));
    assert!(log.contains(&Op::Mask(VTIMER_EVENT as u16)));
    let hw = machine::vcpu_hw();
    assert!(!hw.guest_mode);
    assert_eq!(hw.vgic[VgicReg::Hcr as usize], 0);
    assert_eq!(hw.regs[reg::CNTV_CTL as usize], 0, "timer stopped");
    // ReadReg: the timer was saved when disabled, TPIDR_EL1 is still only
    // in the hardware.
    assert_eq!(read_reg(&s, vslot, reg::TPIDR_EL1), 0x7e57);
    assert_eq!(v.reg(reg::TPIDR_EL1 as usize), 0);
    assert_eq!(read_reg(&s, vslot, reg::CNTV_CTL), 1);
    assert_eq!(read_reg(&s, vslot, reg::CNTV_CVAL), 0x1234);
    // WriteReg follows the same split.
    write_reg(&s, vslot, reg::TPIDR_EL1, 0xaaaa);
    assert_eq!(machine::vcpu_hw().regs[reg::TPIDR_EL1 as usize], 0xaaaa);
    write_reg(&s, vslot, reg::CNTV_CTL, 0);
    assert_eq!(v.reg(reg::CNTV_CTL as usize), 0);
    // InjectIRQ goes to the hardware list register of the loaded VCPU.
    let r = call(
        &s,
        vslot,
        Label::ArmVcpuInjectIrq,
        &[inject(42, 3, 1, 2)],
        &[],
    );
    assert_eq!(r.info.label(), 0);
    let want = LR_PENDING | 1 << 30 | 3 << 23 | LR_EOI | 42;
    assert_eq!(machine::vcpu_hw().lrs[2], want);
    assert_eq!(v.lr(2), 0, "the object's copy is not written");
}

#[test]
fn a_second_guest_saves_the_first_into_its_object() {
    let mut s = sys();
    let (g1, v1slot, v1, ep, _) = running_guest(&mut s);
    machine::with_vcpu_hw(|h| {
        h.regs[reg::TPIDR_EL1 as usize] = 0x1111;
        h.lrs[0] = LR_ACTIVE | 42;
    });
    syscall::handle_vcpu_fault(0x5e00_0000, 0);
    assert_eq!(s.cur(), s.root.tcb);
    // The first guest's list register is active, but the object says
    // otherwise until the VCPU is saved: InjectIRQ checks the object.
    let r = call(
        &s,
        v1slot,
        Label::ArmVcpuInjectIrq,
        &[inject(43, 0, 0, 1)],
        &[],
    );
    assert_eq!(r.info.label(), 0);
    // A second guest runs: the first VCPU is saved, the second loaded.
    let fault_ep = s.slot();
    s.fx.mint(fault_ep, ep, septa_abi::CapRights::ALL, 0xfb)
        .unwrap();
    let (t2, v2slot, v2) = guest(&mut s, fault_ep);
    write_reg(&s, v2slot, reg::TPIDR_EL1, 0x2222);
    s.resume(t2);
    let reply2 = s.make(ObjectType::Reply, 0);
    wait_on(&s, ep, reply2);
    assert_eq!(s.cur(), t2.tcb);
    assert_eq!(ts::current(), (Some(v2), true));
    assert_eq!(v1.reg(reg::TPIDR_EL1 as usize), 0x1111);
    assert_eq!(v1.lr(0), LR_ACTIVE | 42);
    assert_eq!(machine::vcpu_hw().regs[reg::TPIDR_EL1 as usize], 0x2222);
    assert_eq!(machine::vcpu_hw().lrs[0], 0);
    // Now the first VCPU's list register 0 is known to be in use.
    syscall::handle_vcpu_fault(0x5e00_0000, 0);
    assert_eq!(s.cur(), s.root.tcb);
    assert_eq!(g1.tcb.state(), ThreadState::BlockedOnReply);
    let r = call(
        &s,
        v1slot,
        Label::ArmVcpuInjectIrq,
        &[inject(44, 0, 0, 0)],
        &[],
    );
    assert_eq!(err(&r), (Error::DeleteFirst as u64, vec![]));
    let r = call(
        &s,
        v1slot,
        Label::ArmVcpuInjectIrq,
        &[inject(44, 0, 0, 1)],
        &[],
    );
    assert_eq!(r.info.label(), 0, "a pending list register may be replaced");
}

#[test]
fn vgic_maintenance_names_the_list_register_and_clears_its_eoi_bit() {
    let mut s = sys();
    let (g, _, v, _, _) = running_guest(&mut s);
    let ended = LR_EOI | 3 << 23 | 42;
    machine::with_vcpu_hw(|h| {
        h.lrs[2] = ended;
        h.vgic[VgicReg::Misr as usize] = 1;
        h.vgic[VgicReg::Eisr0 as usize] = 1 << 2;
    });
    g.tcb.set_next_pc(0x4000_0010);
    machine::set_pending_irq(Some(septa_abi::irq::VGIC_MAINTENANCE as u16));
    g.tcb.set_reg(Reg::FAULT_IP, 0x4000_0010);
    syscall::handle_interrupt_entry();
    assert_eq!(s.cur(), s.root.tcb);
    let r = s.reply(s.root.tcb);
    assert_eq!((r.badge, r.info.label()), (0xfa, abi::VGIC_MAINTENANCE));
    assert_eq!(r.mrs, vec![2]);
    assert_eq!(machine::vcpu_hw().lrs[2], ended & !LR_EOI);
    assert_eq!(v.lr(2), ended & !LR_EOI);
    assert!(machine::take_log().contains(&Op::Eoi(25)));
}

#[test]
fn vgic_maintenance_without_an_ended_list_register_names_none() {
    let mut s = sys();
    let (_, _, _, _, _) = running_guest(&mut s);
    machine::set_pending_irq(Some(septa_abi::irq::VGIC_MAINTENANCE as u16));
    syscall::handle_interrupt_entry();
    let r = s.reply(s.root.tcb);
    assert_eq!(
        (r.info.label(), r.mrs.clone()),
        (abi::VGIC_MAINTENANCE, vec![u64::MAX])
    );
}

#[test]
fn the_virtual_timer_is_a_vppi_event_masked_until_acknowledged() {
    let mut s = sys();
    let (g, vslot, v, ep, reply) = running_guest(&mut s);
    let _ = machine::take_log();
    machine::set_pending_irq(Some(VTIMER_EVENT as u16));
    syscall::handle_interrupt_entry();
    assert_eq!(s.cur(), s.root.tcb);
    let r = s.reply(s.root.tcb);
    assert_eq!(
        (r.badge, r.info.label(), r.mrs.clone()),
        (0xfa, abi::VPPI_EVENT, vec![27])
    );
    assert!(v.vppi_masked());
    let log = machine::take_log();
    assert!(log.contains(&Op::Mask(27)) && log.contains(&Op::Eoi(27)));
    // Replying resumes the guest: still masked.
    s.load(s.root.tcb, reply, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::SEND);
    wait_on(&s, ep, reply);
    assert_eq!(s.cur(), g.tcb);
    let log = machine::take_log();
    assert!(!log.contains(&Op::Unmask(27)), "{log:?}");
    // Acknowledged: unmasked when the guest runs again.
    syscall::handle_vcpu_fault(0x5e00_0000, 0);
    let r = call(&s, vslot, Label::ArmVcpuAckVppi, &[27], &[]);
    assert_eq!(r.info.label(), 0);
    assert!(!v.vppi_masked());
    s.load(s.root.tcb, reply, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::SEND);
    wait_on(&s, ep, reply);
    assert_eq!(s.cur(), g.tcb);
    assert!(machine::take_log().contains(&Op::Unmask(27)));
}

#[test]
fn the_virtual_timer_without_an_active_vcpu_is_only_ended() {
    let s = sys();
    machine::set_pending_irq(Some(VTIMER_EVENT as u16));
    syscall::handle_interrupt_entry();
    assert_eq!(s.cur(), s.root.tcb);
    let log = machine::take_log();
    assert!(
        !log.contains(&Op::Mask(27)) && log.contains(&Op::Eoi(27)),
        "{log:?}"
    );
}

#[test]
fn a_guests_vm_fault_reports_the_guest_physical_address() {
    let mut s = sys();
    let (g, _, _, _, _) = running_guest(&mut s);
    // The pretend stage 1 maps every page 0x8000_0000 higher.
    machine::with_vcpu_hw(|h| h.translate_offset = 0x8000_0000);
    g.tcb.set_reg(Reg::FAULT_IP, 0x1000);
    syscall::handle_vm_fault(0x1234_5678, 0x9200_0007, false);
    let r = s.reply(s.root.tcb);
    assert_eq!(r.info.label(), abi::VM_FAULT);
    assert_eq!(r.mrs, vec![0x1000, 0x9234_5678, 0, 0x9200_0007]);
}

#[test]
fn a_native_threads_vm_fault_reports_the_address_as_it_is() {
    let mut s = sys();
    machine::with_vcpu_hw(|h| h.translate_offset = 0x8000_0000);
    let ep = s.make(ObjectType::Endpoint, 0);
    let t = s.thread(100, Some((5 * MS, 5 * MS)));
    let fault_ep = s.slot();
    s.fx.mint(fault_ep, ep, septa_abi::CapRights::ALL, 1)
        .unwrap();
    let r = call(
        &s,
        t.tcb_slot,
        Label::TcbSetSchedParams,
        &[100, 100],
        &[ROOT_TCB, t.sc_slot.unwrap(), fault_ep],
    );
    assert_eq!(r.info.label(), 0);
    let reply = s.make(ObjectType::Reply, 0);
    s.resume(t);
    wait_on(&s, ep, reply);
    assert_eq!(s.cur(), t.tcb);
    syscall::handle_vm_fault(0x1234_5678, 0x9200_0007, false);
    assert_eq!(s.reply(s.root.tcb).mrs[1], 0x1234_5678);
}

#[test]
fn deleting_the_running_guests_vcpu_turns_the_hardware_back_to_native() {
    let mut s = sys();
    let (g, vslot, _, _, _) = running_guest(&mut s);
    syscall::handle_vcpu_fault(0x5e00_0000, 0);
    assert_eq!(s.cur(), s.root.tcb);
    s.fx.delete(vslot).unwrap();
    assert_eq!(g.tcb.vcpu(), 0);
    assert_eq!(ts::current(), (None, false));
    assert!(!machine::vcpu_hw().guest_mode);
}
