//! Faults: the message each kind of fault sends to the fault handler (the
//! layouts of `septa_abi::fault`), replies that restart the thread and
//! write its registers, timeout faults, and threads without a handler.

use super::{Sys, Thread, MS, ROOT_TCB};
use crate::context::{Reg, SYSCALL_MESSAGE};
use crate::object::tcb::ThreadState;
use crate::{sched, syscall};
use septa_abi::fault as abi;
use septa_abi::{syscall as sys, Label, ObjectType};

/// A thread at priority 100 whose fault handler is `ep` (badged 0xfa),
/// running (the root lowered to 10), and the root's reply object.
fn faulting_thread(s: &mut Sys) -> (Thread, u64, u64) {
    let ep = s.make(ObjectType::Endpoint, 0);
    let fault_ep = s.slot();
    s.fx.mint(fault_ep, ep, septa_abi::CapRights::ALL, 0xfa)
        .unwrap();
    let t = s.thread(100, Some((5 * MS, 5 * MS)));
    let sc = t.sc_slot.unwrap();
    let r = s.call(
        s.root.tcb,
        t.tcb_slot,
        Label::TcbSetSchedParams,
        &[100, 100],
        &[ROOT_TCB, sc, fault_ep],
    );
    assert_eq!(r.info.label(), 0, "{r:?}");
    // The root waits for faults.
    let reply = s.make(ObjectType::Reply, 0);
    s.resume(t);
    s.root.tcb.set_reg(Reg::REPLY, reply);
    s.load(s.root.tcb, ep, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::RECV);
    assert_eq!(s.cur(), t.tcb);
    (t, ep, reply)
}

#[test]
fn an_unknown_syscall_sends_thirteen_words_and_a_label_0_reply_restarts() {
    let mut s = Sys::new();
    let (t, _, reply) = faulting_thread(&mut s);
    for i in 0..8u8 {
        t.tcb.set_reg(Reg(i), 0x100 + i as u64);
    }
    t.tcb.set_reg(Reg::SP, 0x7000);
    t.tcb.set_next_pc(0x4000);
    s.syscall(t.tcb, 1234);
    assert_eq!(t.tcb.state(), ThreadState::BlockedOnReply);
    assert_eq!(s.cur(), s.root.tcb);
    let r = s.reply(s.root.tcb);
    assert_eq!(r.badge, 0xfa);
    assert_eq!(r.info.label(), abi::UNKNOWN_SYSCALL);
    assert_eq!(r.info.length(), abi::unknown_syscall::LENGTH);
    let mut want: Vec<u64> = (0..8).map(|i| 0x100 + i).collect();
    want[7] = 1234; // x7 holds the number when the call traps
    want.extend([0x4000, 0x7000, 0x4004, crate::context::SPSR_USER, 1234]);
    assert_eq!(r.mrs, want);
    // Reply: new x0..x7 and a new pc; label 0 restarts.
    let mut regs: Vec<u64> = (0..8).map(|i| 0x900 + i).collect();
    regs.extend([0x5000, 0x8000, 0x5004, 0]);
    s.load(s.root.tcb, reply, 0, &regs, &[]);
    s.syscall(s.root.tcb, sys::SEND);
    assert_eq!(t.tcb.state(), ThreadState::Restart);
    assert!(!t.tcb.has_fault());
    for (i, r) in SYSCALL_MESSAGE.iter().enumerate() {
        let want = if *r == Reg::SPSR {
            crate::context::SPSR_USER
        } else {
            regs[i]
        };
        assert_eq!(t.tcb.reg(*r), want, "register {r:?}");
    }
    // It outranks the root? No (100 < 255): it waits in the ready queue.
    assert!(t.tcb.is_queued());
}

#[test]
fn a_reply_with_a_nonzero_label_stops_the_thread() {
    let mut s = Sys::new();
    let (t, _, reply) = faulting_thread(&mut s);
    crate::syscall::handle_vcpu_fault(crate::syscall::UNKNOWN_FAULT, 0);
    let r = s.reply(s.root.tcb);
    assert_eq!(r.info.label(), abi::USER_EXCEPTION);
    assert_eq!(r.info.length(), abi::user_exception::LENGTH);
    assert_eq!(
        r.mrs[abi::user_exception::NUMBER],
        crate::syscall::UNKNOWN_FAULT
    );
    assert_eq!(r.mrs[abi::user_exception::CODE], 0);
    s.load(s.root.tcb, reply, 1, &[], &[]);
    s.syscall(s.root.tcb, sys::SEND);
    assert_eq!(t.tcb.state(), ThreadState::Inactive);
}

#[test]
fn cap_faults_carry_the_lookup_failure() {
    let mut s = Sys::new();
    let (t, _, _) = faulting_thread(&mut s);
    // A guard mismatch: the root CNode's 56-bit guard is 0.
    let bad = 1u64 << 63;
    t.tcb.set_next_pc(0x6000);
    s.load(t.tcb, bad, 0, &[], &[]);
    s.syscall(t.tcb, sys::CALL);
    let r = s.reply(s.root.tcb);
    assert_eq!(r.info.label(), abi::CAP_FAULT);
    assert_eq!(r.mrs, vec![0x6000, bad, 0, 4, 64, 0, 56]);
    // In the receive phase, an empty slot is a missing capability.
    let empty = s.slot();
    let (t2, _, _) = faulting_thread(&mut s);
    let _ = t;
    s.load(t2.tcb, empty, 0, &[], &[]);
    s.syscall(t2.tcb, sys::WAIT);
    let r = s.reply(s.root.tcb);
    assert_eq!(r.info.label(), abi::CAP_FAULT);
    assert_eq!(r.mrs[1..], [empty, 1, 2, 0]);
}

#[test]
fn vm_faults_report_address_prefetch_flag_and_syndrome() {
    let mut s = Sys::new();
    let (t, _, _) = faulting_thread(&mut s);
    t.tcb.set_reg(Reg::FAULT_IP, 0x2000);
    syscall::handle_vm_fault(0xdead_0000, 0x9200_0007, false);
    let r = s.reply(s.root.tcb);
    assert_eq!(r.info.label(), abi::VM_FAULT);
    assert_eq!(r.mrs, vec![0x2000, 0xdead_0000, 0, 0x9200_0007]);
    assert_eq!(t.tcb.state(), ThreadState::BlockedOnReply);
}

#[test]
fn other_exceptions_are_vcpu_faults_in_a_hypervisor_build() {
    let mut s = Sys::new();
    let _ = faulting_thread(&mut s);
    // A trapped system register access (EC 0x18); a `brk` (EC 0x3c) would
    // be a debug exception in the debug configuration.
    syscall::handle_vcpu_fault(0x6230_e51b, 0);
    let r = s.reply(s.root.tcb);
    assert_eq!(
        (r.info.label(), r.mrs),
        (abi::VCPU_FAULT, vec![0x6230_e51b])
    );
}

#[test]
fn a_thread_without_a_fault_handler_is_stopped() {
    let mut s = Sys::new();
    let t = s.thread(100, Some((MS, MS)));
    s.resume(t);
    let r = s.call(
        s.root.tcb,
        ROOT_TCB,
        Label::TcbSetPriority,
        &[1],
        &[ROOT_TCB],
    );
    assert_eq!(r.info.label(), 0);
    assert_eq!(s.cur(), t.tcb);
    s.syscall(t.tcb, 4321);
    assert_eq!(t.tcb.state(), ThreadState::Inactive);
    assert_eq!(s.cur(), s.root.tcb);
}

#[test]
fn a_spent_budget_with_a_timeout_handler_is_a_timeout_fault() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let t = s.thread(100, None);
    let sc = s.make(ObjectType::SchedContext, 8);
    s.configure(sc, 2 * MS, 10 * MS, 0x7e, 0);
    let r = s.call(s.root.tcb, sc, Label::SchedContextBind, &[], &[t.tcb_slot]);
    assert_eq!(r.info.label(), 0);
    let r = s.call(
        s.root.tcb,
        t.tcb_slot,
        Label::TcbSetTimeoutEndpoint,
        &[],
        &[ep],
    );
    assert_eq!(r.info.label(), 0);
    let reply = s.make(ObjectType::Reply, 0);
    s.resume(t);
    s.root.tcb.set_reg(Reg::REPLY, reply);
    s.load(s.root.tcb, ep, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::RECV);
    assert_eq!(s.cur(), t.tcb);
    let start = sched::cur_time();
    s.tick(start + sched::us_to_ticks(2 * MS) + 5);
    assert_eq!(s.cur(), s.root.tcb);
    let r = s.reply(s.root.tcb);
    assert_eq!(r.info.label(), abi::TIMEOUT);
    assert_eq!(r.mrs[abi::timeout::DATA], 0x7e);
    assert!(
        (2 * MS..2 * MS + 10).contains(&r.mrs[abi::timeout::CONSUMED]),
        "{r:?}"
    );
    assert_eq!(t.tcb.state(), ThreadState::BlockedOnReply);
}
