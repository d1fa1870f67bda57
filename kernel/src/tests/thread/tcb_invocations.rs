//! TCB invocations: register access in the ABI's order, MCP checks, and
//! the errors seL4 reports, in its order.

use super::{Sys, MS, ROOT_TCB, SCHED_CONTROL};
use crate::context::{Reg, FRAME_REGISTERS, GP_REGISTERS, SPSR_USER};
use crate::object::tcb::ThreadState;
use septa_abi::{syscall as sys, Error, Label, ObjectType, TCB_REGISTER_COUNT};

fn err(r: &super::Reply) -> (u64, Vec<u64>) {
    (r.info.label(), r.mrs.clone())
}

#[test]
fn read_and_write_registers_use_the_abi_order() {
    let mut s = Sys::new();
    let t = s.thread(100, None);
    let root = s.root.tcb;
    let values: Vec<u64> = (0..TCB_REGISTER_COUNT as u64).map(|i| 0x1000 + i).collect();
    let mut args = vec![0, TCB_REGISTER_COUNT as u64];
    args.extend(&values);
    let r = s.call(root, t.tcb_slot, Label::TcbWriteRegisters, &args, &[]);
    assert_eq!(r.info.label(), 0);
    for (i, reg) in FRAME_REGISTERS
        .iter()
        .chain(GP_REGISTERS.iter())
        .enumerate()
    {
        let want = if *reg == Reg::SPSR {
            // Only the flags of SPSR may be chosen.
            (values[i] & 0xf000_0000) | SPSR_USER
        } else {
            values[i]
        };
        assert_eq!(t.tcb.reg(*reg), want, "register {reg:?}");
    }
    assert_eq!(t.tcb.reg(Reg::NEXT_IP), values[0], "pc written to both");
    let r = s.call(
        root,
        t.tcb_slot,
        Label::TcbReadRegisters,
        &[0, TCB_REGISTER_COUNT as u64],
        &[],
    );
    assert_eq!(r.info.label(), 0);
    assert_eq!(r.mrs.len(), TCB_REGISTER_COUNT);
    assert_eq!(r.mrs[0], values[0]);
    assert_eq!(r.mrs[2], SPSR_USER);
    assert_eq!(r.mrs[3..], values[3..]);
    let r = s.call(root, t.tcb_slot, Label::TcbReadRegisters, &[0, 3], &[]);
    assert_eq!(r.mrs, vec![values[0], values[1], SPSR_USER]);
}

#[test]
fn register_invocations_report_the_errors_in_order() {
    let mut s = Sys::new();
    let t = s.thread(100, None);
    let root = s.root.tcb;
    let n = TCB_REGISTER_COUNT as u64;
    let r = s.call(root, t.tcb_slot, Label::TcbReadRegisters, &[0], &[]);
    assert_eq!(err(&r), (Error::TruncatedMessage as u64, vec![]));
    let r = s.call(root, t.tcb_slot, Label::TcbReadRegisters, &[0, 0], &[]);
    assert_eq!(err(&r), (Error::RangeError as u64, vec![1, n]));
    let r = s.call(root, t.tcb_slot, Label::TcbReadRegisters, &[0, n + 1], &[]);
    assert_eq!(err(&r), (Error::RangeError as u64, vec![1, n]));
    let r = s.call(root, ROOT_TCB, Label::TcbReadRegisters, &[0, 1], &[]);
    assert_eq!(
        err(&r),
        (Error::IllegalOperation as u64, vec![]),
        "own registers"
    );
    let r = s.call(
        root,
        t.tcb_slot,
        Label::TcbWriteRegisters,
        &[0, 3, 1, 2],
        &[],
    );
    assert_eq!(err(&r), (Error::TruncatedMessage as u64, vec![]));
    let r = s.call(root, ROOT_TCB, Label::TcbWriteRegisters, &[0, 1, 1], &[]);
    assert_eq!(err(&r), (Error::IllegalOperation as u64, vec![]));
    let r = s.call(root, t.tcb_slot, Label::TcbCopyRegisters, &[0], &[]);
    assert_eq!(err(&r), (Error::TruncatedMessage as u64, vec![]));
    let r = s.call(
        root,
        t.tcb_slot,
        Label::TcbCopyRegisters,
        &[0],
        &[SCHED_CONTROL],
    );
    assert_eq!(err(&r), (Error::InvalidCapability as u64, vec![1]));
    let r = s.call_raw(root, t.tcb_slot, 200, &[], &[]);
    assert_eq!(err(&r), (Error::IllegalOperation as u64, vec![]));
}

#[test]
fn priorities_are_bounded_by_the_authoritys_mcp() {
    let mut s = Sys::new();
    let t = s.thread(100, None);
    let u = s.thread(100, None);
    let root = s.root.tcb;
    let r = s.call(
        root,
        t.tcb_slot,
        Label::TcbSetMcPriority,
        &[120],
        &[ROOT_TCB],
    );
    assert_eq!(r.info.label(), 0);
    assert_eq!(t.tcb.mcp(), 120);
    // With t as the authority, 121 is too high.
    let r = s.call(
        root,
        u.tcb_slot,
        Label::TcbSetPriority,
        &[121],
        &[t.tcb_slot],
    );
    assert_eq!(err(&r), (Error::RangeError as u64, vec![0, 120]));
    let r = s.call(
        root,
        u.tcb_slot,
        Label::TcbSetPriority,
        &[120],
        &[t.tcb_slot],
    );
    assert_eq!(r.info.label(), 0);
    assert_eq!(u.tcb.priority(), 120);
    let r = s.call(root, u.tcb_slot, Label::TcbSetPriority, &[1], &[]);
    assert_eq!(err(&r), (Error::TruncatedMessage as u64, vec![]));
    let r = s.call(
        root,
        u.tcb_slot,
        Label::TcbSetPriority,
        &[1],
        &[SCHED_CONTROL],
    );
    assert_eq!(err(&r), (Error::InvalidCapability as u64, vec![1]));
    // SetSchedParams checks the MCP first, then the priority.
    let sc = s.make(ObjectType::SchedContext, 8);
    let r = s.call(
        root,
        u.tcb_slot,
        Label::TcbSetSchedParams,
        &[121, 0],
        &[t.tcb_slot, sc, 0],
    );
    assert_eq!(err(&r), (Error::RangeError as u64, vec![0, 120]));
    let r = s.call(
        root,
        u.tcb_slot,
        Label::TcbSetSchedParams,
        &[0, 121],
        &[t.tcb_slot, sc, 0],
    );
    assert_eq!(err(&r), (Error::RangeError as u64, vec![0, 120]));
    let r = s.call(
        root,
        u.tcb_slot,
        Label::TcbSetSchedParams,
        &[0, 0],
        &[t.tcb_slot, ROOT_TCB, 0],
    );
    assert_eq!(err(&r), (Error::InvalidCapability as u64, vec![2]));
    let r = s.call(
        root,
        u.tcb_slot,
        Label::TcbSetSchedParams,
        &[0, 0],
        &[t.tcb_slot, sc, ROOT_TCB],
    );
    assert_eq!(err(&r), (Error::InvalidCapability as u64, vec![3]));
}

#[test]
fn a_blocked_thread_cannot_get_an_unconfigured_sched_context() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let t = s.thread(200, Some((MS, MS)));
    s.resume(t);
    let r = s.call(
        s.root.tcb,
        ROOT_TCB,
        Label::TcbSetPriority,
        &[10],
        &[ROOT_TCB],
    );
    assert_eq!(r.info.label(), 0);
    s.load(t.tcb, ep, 0, &[], &[]);
    s.syscall(t.tcb, sys::WAIT);
    let old = t.sc_slot.unwrap();
    let r = s.call(
        s.root.tcb,
        old,
        Label::SchedContextUnbindObject,
        &[],
        &[t.tcb_slot],
    );
    assert_eq!(r.info.label(), 0);
    let fresh = s.make(ObjectType::SchedContext, 8);
    let r = s.call(
        s.root.tcb,
        t.tcb_slot,
        Label::TcbSetSchedParams,
        &[0, 0],
        &[ROOT_TCB, fresh, 0],
    );
    assert_eq!(err(&r), (Error::IllegalOperation as u64, vec![]));
    let r = s.call(
        s.root.tcb,
        fresh,
        Label::SchedContextBind,
        &[],
        &[t.tcb_slot],
    );
    assert_eq!(err(&r), (Error::IllegalOperation as u64, vec![]));
}

#[test]
fn suspend_and_resume() {
    let mut s = Sys::new();
    let t = s.thread(100, Some((MS, MS)));
    let root = s.root.tcb;
    s.resume(t);
    assert_eq!(t.tcb.state(), ThreadState::Restart);
    assert!(t.tcb.is_queued());
    let r = s.call(root, t.tcb_slot, Label::TcbSuspend, &[], &[]);
    assert_eq!(r.info.label(), 0);
    assert_eq!(t.tcb.state(), ThreadState::Inactive);
    assert!(!t.tcb.is_queued());
    s.resume(t);
    // Suspending yourself: no reply, the thread just stops.
    s.load(root, ROOT_TCB, Label::TcbSuspend.number(), &[], &[]);
    s.syscall(root, sys::CALL);
    assert_eq!(root.state(), ThreadState::Inactive);
    assert_eq!(s.cur(), t.tcb);
}

#[test]
fn notification_binding_errors() {
    let mut s = Sys::new();
    let t = s.thread(100, None);
    let n = s.make(ObjectType::Notification, 0);
    let n2 = s.make(ObjectType::Notification, 0);
    let root = s.root.tcb;
    let r = s.call(root, t.tcb_slot, Label::TcbUnbindNotification, &[], &[]);
    assert_eq!(err(&r), (Error::IllegalOperation as u64, vec![]));
    let r = s.call(root, t.tcb_slot, Label::TcbBindNotification, &[], &[]);
    assert_eq!(err(&r), (Error::TruncatedMessage as u64, vec![]));
    let r = s.call(
        root,
        t.tcb_slot,
        Label::TcbBindNotification,
        &[],
        &[ROOT_TCB],
    );
    assert_eq!(err(&r), (Error::IllegalOperation as u64, vec![]));
    let ro = s.slot();
    s.fx.mint(
        ro,
        n,
        septa_abi::CapRights::new(false, false, false, true),
        0,
    )
    .unwrap();
    let r = s.call(root, t.tcb_slot, Label::TcbBindNotification, &[], &[ro]);
    assert_eq!(
        err(&r),
        (Error::IllegalOperation as u64, vec![]),
        "needs Read"
    );
    let r = s.call(root, t.tcb_slot, Label::TcbBindNotification, &[], &[n]);
    assert_eq!(r.info.label(), 0);
    let r = s.call(root, t.tcb_slot, Label::TcbBindNotification, &[], &[n2]);
    assert_eq!(
        err(&r),
        (Error::IllegalOperation as u64, vec![]),
        "already bound"
    );
    let u = s.thread(100, None);
    let r = s.call(root, u.tcb_slot, Label::TcbBindNotification, &[], &[n]);
    assert_eq!(
        err(&r),
        (Error::IllegalOperation as u64, vec![]),
        "notification taken"
    );
    let r = s.call(root, t.tcb_slot, Label::TcbUnbindNotification, &[], &[]);
    assert_eq!(r.info.label(), 0);
    assert_eq!(t.tcb.bound_notification(), 0);
}

#[test]
fn ipc_buffer_and_tls_and_flags() {
    let mut s = Sys::new();
    let t = s.thread(100, None);
    let frame = s.make(ObjectType::SmallPage, 0);
    let root = s.root.tcb;
    let r = s.call(
        root,
        t.tcb_slot,
        Label::TcbSetIpcBuffer,
        &[0x1234],
        &[frame],
    );
    assert_eq!(err(&r), (Error::AlignmentError as u64, vec![]));
    let r = s.call(
        root,
        t.tcb_slot,
        Label::TcbSetIpcBuffer,
        &[0x2000],
        &[ROOT_TCB],
    );
    assert_eq!(err(&r), (Error::IllegalOperation as u64, vec![]));
    let r = s.call(
        root,
        t.tcb_slot,
        Label::TcbSetIpcBuffer,
        &[0x2400],
        &[frame],
    );
    assert_eq!(r.info.label(), 0);
    assert_eq!(t.tcb.ipc_buffer(), 0x2400);
    assert!(matches!(
        t.tcb.slot(crate::object::tcb::BUFFER).cap(),
        crate::cap::Cap::Frame { mapped: None, .. }
    ));
    let r = s.call(root, t.tcb_slot, Label::TcbSetTlsBase, &[0xabc0], &[]);
    assert_eq!(r.info.label(), 0);
    assert_eq!(t.tcb.reg(Reg::TPIDR_EL0), 0xabc0);
    let r = s.call(root, t.tcb_slot, Label::TcbSetFlags, &[0, 0xff], &[]);
    assert_eq!(
        (r.info.label(), r.mrs.clone()),
        (0, vec![1]),
        "only fpuDisabled exists"
    );
    let r = s.call(root, t.tcb_slot, Label::TcbSetFlags, &[1, 0], &[]);
    assert_eq!(r.mrs, vec![0]);
}

#[test]
fn tcb_caps_are_refused_in_the_first_phase_of_combined_calls() {
    let mut s = Sys::new();
    let t = s.thread(100, None);
    let ep = s.make(ObjectType::Endpoint, 0);
    let reply = s.make(ObjectType::Reply, 0);
    let root = s.root.tcb;
    // NBSendRecv: send to x8 (a TCB cap: refused), then receive on x0.
    root.set_reg(Reg::REPLY, reply);
    s.load(root, ep, Label::TcbResume.number(), &[], &[]);
    root.set_reg(Reg::NB_SEND_RECV_DEST, t.tcb_slot);
    s.syscall(root, sys::NB_SEND_RECV);
    assert_eq!(t.tcb.state(), ThreadState::Inactive, "t was not resumed");
    assert_eq!(root.state(), ThreadState::BlockedOnReceive);
}

/// The hardware debug API (debug configuration only: elsewhere its labels
/// do not exist and the test has nothing to check).
#[test]
fn breakpoints_are_set_read_back_unset_and_loaded_when_the_thread_runs() {
    use crate::machine::{self, Op};
    use crate::object::tcb::debug;
    use septa_abi::hardware_debug::*;
    if !septa_abi::CONFIG.hardware_debug_api() {
        return;
    }
    let mut s = Sys::new();
    let t = s.thread(100, None);
    let root = s.root.tcb;
    let set = |mrs: &[u64]| s.call(root, t.tcb_slot, Label::TcbSetBreakpoint, mrs, &[]);
    let bad = set(&[0, 0x1000, INSTRUCTION_BREAKPOINT, 4, BREAK_ON_READ]);
    assert_eq!(err(&bad), (Error::InvalidArgument as u64, vec![3]));
    let bad = set(&[
        FIRST_WATCHPOINT + 4,
        0x1000,
        DATA_BREAKPOINT,
        4,
        BREAK_ON_READ,
    ]);
    assert_eq!(err(&bad), (Error::RangeError as u64, vec![0, 5]));
    assert_eq!(
        set(&[1, 0x2000, INSTRUCTION_BREAKPOINT, 0, BREAK_ON_READ])
            .info
            .label(),
        0
    );
    let w = FIRST_WATCHPOINT;
    assert_eq!(
        set(&[w, 0x3000, DATA_BREAKPOINT, 2, BREAK_ON_WRITE])
            .info
            .label(),
        0
    );
    let get = |bp| {
        s.call(root, t.tcb_slot, Label::TcbGetBreakpoint, &[bp], &[])
            .mrs
    };
    assert_eq!(
        get(1),
        vec![0x2000, INSTRUCTION_BREAKPOINT, 0, BREAK_ON_READ, 1]
    );
    assert_eq!(get(w), vec![0x3000, DATA_BREAKPOINT, 2, BREAK_ON_WRITE, 1]);
    // Loading the thread writes its two pairs: enabled, EL0 only, and the
    // bytes to match.
    let _ = machine::take_log();
    debug::restore(t.tcb);
    let log = machine::take_log();
    assert!(log.contains(&Op::DebugWrite(false, 1, 1 | 0b10 << 1 | 0xf << 5, 0x2000)));
    assert!(log.contains(&Op::DebugWrite(
        true,
        0,
        1 | 0b10 << 1 | 2 << 3 | 0x3 << 5,
        0x3000
    )));
    assert!(log.contains(&Op::DebugSingleStep(false)));
    // A watchpoint hit names its number; a brk carries no number.
    let esr = |ec: u64| ec << 26 | 1 << 25;
    assert_eq!(
        debug::debug_exception(t.tcb, esr(debug::ec::WATCHPOINT), 0x3000),
        Some(crate::fault::Fault::Debug {
            address: 0x3000,
            number: w,
            reason: DATA_BREAKPOINT
        })
    );
    assert!(matches!(
        debug::debug_exception(t.tcb, esr(debug::ec::BRK), 0),
        Some(crate::fault::Fault::Debug {
            reason: SOFTWARE_BREAK_REQUEST,
            number: 0,
            ..
        })
    ));
    let unset = s.call(root, t.tcb_slot, Label::TcbUnsetBreakpoint, &[1], &[]);
    assert_eq!(unset.info.label(), 0);
    assert_eq!(get(1), vec![0, INSTRUCTION_BREAKPOINT, 0, BREAK_ON_READ, 0]);
    // Single stepping: a stop every n instructions, counted down.
    let r = s.call(
        root,
        t.tcb_slot,
        Label::TcbConfigureSingleStepping,
        &[0, 2],
        &[],
    );
    assert_eq!(r.mrs, vec![1]);
    let step = esr(debug::ec::SINGLE_STEP);
    assert_eq!(debug::debug_exception(t.tcb, step, 0), None, "first of two");
    assert!(
        debug::debug_exception(t.tcb, step, 0).is_some(),
        "second of two"
    );
}
