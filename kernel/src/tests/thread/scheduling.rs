//! Scheduling: priorities, preemption by a higher-priority thread, round
//! robin, budget enforcement with the release queue, Yield, SchedControl's
//! errors and SchedContext invocations.

use super::{Sys, MS, SCHED_CONTROL};
use crate::machine::{self, Op};
use crate::object::sched_context::Sc;
use crate::object::tcb::ThreadState;
use crate::sched;
use septa_abi::{syscall as sys, Error, Label, ObjectType};

#[test]
fn a_resumed_higher_priority_thread_runs_at_once() {
    let mut s = Sys::new();
    let low = s.thread(100, Some((MS, MS)));
    let high = s.thread(200, Some((MS, MS)));
    s.resume(low);
    assert_eq!(s.cur(), s.root.tcb, "the root (255) keeps running");
    // Root lowers itself below both: the higher one runs.
    let r = s.call(
        s.root.tcb,
        super::ROOT_TCB,
        Label::TcbSetPriority,
        &[50],
        &[super::ROOT_TCB],
    );
    assert_eq!(r.info.label(), 0);
    assert_eq!(s.cur(), low.tcb);
    s.syscall(low.tcb, sys::YIELD);
    assert_eq!(
        s.cur(),
        low.tcb,
        "yielding with nobody else at its priority"
    );
    // The higher thread preempts the lower one when resumed from it.
    s.load(low.tcb, high.tcb_slot, Label::TcbResume.number(), &[], &[]);
    s.syscall(low.tcb, sys::CALL);
    assert_eq!(s.cur(), high.tcb);
    assert_eq!(low.tcb.state(), ThreadState::Running);
    assert!(low.tcb.is_queued());
}

#[test]
fn equal_priorities_take_turns_when_their_time_slice_ends() {
    let mut s = Sys::new();
    let a = s.thread(100, Some((MS, MS)));
    let b = s.thread(100, Some((MS, MS)));
    s.resume(a);
    s.resume(b);
    s.call(
        s.root.tcb,
        super::ROOT_TCB,
        Label::TcbSetPriority,
        &[0],
        &[super::ROOT_TCB],
    );
    let first = s.cur();
    assert!(first == a.tcb || first == b.tcb);
    let other = if first == a.tcb { b.tcb } else { a.tcb };
    // Its 1 ms round-robin slice runs out: the other one runs.
    let now = sched::cur_time();
    s.tick(now + sched::us_to_ticks(MS) + 1);
    assert_eq!(s.cur(), other);
    s.tick(sched::cur_time() + sched::us_to_ticks(MS) + 1);
    assert_eq!(s.cur(), first);
}

#[test]
fn a_thread_out_of_budget_waits_in_the_release_queue_for_its_refill() {
    let mut s = Sys::new();
    // 2 ms every 10 ms.
    let t = s.thread(100, Some((2 * MS, 10 * MS)));
    s.resume(t);
    s.call(
        s.root.tcb,
        super::ROOT_TCB,
        Label::TcbSetPriority,
        &[0],
        &[super::ROOT_TCB],
    );
    assert_eq!(s.cur(), t.tcb);
    let start = sched::cur_time();
    let _ = machine::take_log();
    // The timer comes 10 ticks late: the overrun delays the refill too.
    let overrun = 10;
    s.tick(start + sched::us_to_ticks(2 * MS) + overrun);
    assert!(t.tcb.in_release_queue(), "spent its budget");
    assert_eq!(s.cur(), s.root.tcb, "the root (priority 0) runs meanwhile");
    // The timer was set for the refill: one period after the budget began.
    let deadlines: Vec<u64> = machine::take_log()
        .into_iter()
        .filter_map(|o| {
            if let Op::Deadline(d) = o {
                Some(d)
            } else {
                None
            }
        })
        .collect();
    let refill = start + sched::us_to_ticks(10 * MS) + overrun;
    assert!(
        deadlines.contains(&refill),
        "deadlines {deadlines:?}, refill at {refill}"
    );
    // Not yet at 9 ms; released at 10 ms.
    s.tick(start + sched::us_to_ticks(9 * MS));
    assert_eq!(s.cur(), s.root.tcb);
    s.tick(refill);
    assert_eq!(s.cur(), t.tcb);
    assert!(!t.tcb.in_release_queue());
}

#[test]
fn yield_gives_up_the_head_refill() {
    let mut s = Sys::new();
    let t = s.thread(100, Some((2 * MS, 10 * MS)));
    s.resume(t);
    s.call(
        s.root.tcb,
        super::ROOT_TCB,
        Label::TcbSetPriority,
        &[0],
        &[super::ROOT_TCB],
    );
    assert_eq!(s.cur(), t.tcb);
    s.syscall(t.tcb, sys::YIELD);
    assert!(t.tcb.in_release_queue());
    assert_eq!(s.cur(), s.root.tcb);
}

#[test]
fn idle_runs_when_nothing_else_can() {
    let mut s = Sys::new();
    // The root waits on a notification nobody signals.
    let n = s.make(ObjectType::Notification, 0);
    s.load(s.root.tcb, n, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::WAIT);
    assert!(sched::is_idle(s.cur()));
    assert_eq!(s.root.tcb.state(), ThreadState::BlockedOnNotification);
}

#[test]
fn configure_flags_checks_its_arguments_as_sel4_does() {
    let mut s = Sys::new();
    let sc = s.make(ObjectType::SchedContext, 8);
    let root = s.root.tcb;
    let max = sched::max_period_us();
    let min = sched::min_budget_us();
    let cfg = |s: &Sys, args: &[u64], caps: &[u64]| {
        s.call(
            root,
            SCHED_CONTROL,
            Label::SchedControlConfigureFlags,
            args,
            caps,
        )
    };
    let r = cfg(&s, &[MS, MS, 0, 0, 0], &[]);
    assert_eq!(r.info.label(), Error::TruncatedMessage as u64);
    let r = cfg(&s, &[MS, MS, 0, 0], &[sc]);
    assert_eq!(r.info.label(), Error::TruncatedMessage as u64);
    let r = cfg(&s, &[max + 1, MS, 0, 0, 0], &[sc]);
    assert_eq!(
        (r.info.label(), r.mrs.clone()),
        (Error::RangeError as u64, vec![min, max])
    );
    let r = cfg(&s, &[1, MS, 0, 0, 0], &[sc]);
    assert_eq!(
        (r.info.label(), r.mrs.clone()),
        (Error::RangeError as u64, vec![min, max])
    );
    let r = cfg(&s, &[2 * MS, MS, 0, 0, 0], &[sc]);
    assert_eq!(
        (r.info.label(), r.mrs.clone()),
        (Error::RangeError as u64, vec![min, MS]),
        "budget above period reports the period as the maximum"
    );
    let r = cfg(&s, &[MS, MS, 0, 0, 0], &[super::ROOT_TCB]);
    assert_eq!(
        (r.info.label(), r.mrs.clone()),
        (Error::InvalidCapability as u64, vec![1])
    );
    // A 2^8-byte SC holds (256 - 96) / 16 = 10 refills: 8 extra at most.
    let r = cfg(&s, &[MS, 2 * MS, 9, 0, 0], &[sc]);
    assert_eq!(
        (r.info.label(), r.mrs.clone()),
        (Error::RangeError as u64, vec![0, 8])
    );
    let r = cfg(&s, &[MS, 2 * MS, 8, 7, 1], &[sc]);
    assert_eq!(r.info.label(), 0);
    let sc = Sc::new(s.paddr(sc));
    assert_eq!((sc.refill_max(), sc.badge(), sc.sporadic()), (10, 7, true));
}

#[test]
fn consumed_reports_microseconds_and_resets() {
    let mut s = Sys::new();
    let t = s.thread(100, Some((2 * MS, 10 * MS)));
    s.resume(t);
    s.call(
        s.root.tcb,
        super::ROOT_TCB,
        Label::TcbSetPriority,
        &[0],
        &[super::ROOT_TCB],
    );
    assert_eq!(s.cur(), t.tcb);
    let start = sched::cur_time();
    s.tick(start + sched::us_to_ticks(2 * MS) + 10);
    assert_eq!(s.cur(), s.root.tcb);
    let sc = t.sc_slot.unwrap();
    let r = s.call(s.root.tcb, sc, Label::SchedContextConsumed, &[], &[]);
    assert_eq!(r.info.label(), 0);
    assert_eq!(r.mrs.len(), 1);
    assert!(
        (2 * MS..2 * MS + 20).contains(&r.mrs[0]),
        "consumed {}",
        r.mrs[0]
    );
    let r = s.call(s.root.tcb, sc, Label::SchedContextConsumed, &[], &[]);
    assert_eq!(r.mrs, vec![0]);
}

/// Consumed reports at most what converts without overflow and keeps the
/// rest (seL4's `schedContext_updateConsumed`).
#[test]
fn consumed_takes_at_most_what_converts() {
    let mut s = Sys::new();
    let t = s.thread(100, Some((2 * MS, 10 * MS)));
    let slot = t.sc_slot.unwrap();
    let sc = Sc::new(s.paddr(slot));
    let max = sched::max_ticks_to_us();
    sc.set_consumed(u64::MAX);
    let r = s.call(s.root.tcb, slot, Label::SchedContextConsumed, &[], &[]);
    assert_eq!(r.mrs, vec![sched::ticks_to_us(max)]);
    assert_eq!(sc.consumed(), u64::MAX - max);
    sc.set_consumed(250);
    let r = s.call(s.root.tcb, slot, Label::SchedContextConsumed, &[], &[]);
    assert_eq!(r.mrs, vec![sched::ticks_to_us(250)]);
    assert_eq!(sc.consumed(), 0);
}

#[test]
fn sched_context_bind_and_unbind_errors() {
    let mut s = Sys::new();
    let t = s.thread(100, None);
    let sc = s.make(ObjectType::SchedContext, 8);
    let root = s.root.tcb;
    let r = s.call(root, sc, Label::SchedContextBind, &[], &[]);
    assert_eq!(r.info.label(), Error::TruncatedMessage as u64);
    let r = s.call(root, sc, Label::SchedContextBind, &[], &[sc]);
    assert_eq!(
        (r.info.label(), r.mrs.clone()),
        (Error::InvalidCapability as u64, vec![1])
    );
    // The root's own SC cannot be unbound by the root.
    let r = s.call(root, super::ROOT_SC, Label::SchedContextUnbind, &[], &[]);
    assert_eq!(r.info.label(), Error::IllegalOperation as u64);
    let r = s.call(root, sc, Label::SchedContextBind, &[], &[t.tcb_slot]);
    assert_eq!(r.info.label(), 0);
    let r = s.call(root, sc, Label::SchedContextBind, &[], &[t.tcb_slot]);
    assert_eq!(
        r.info.label(),
        Error::IllegalOperation as u64,
        "already bound"
    );
    let r = s.call(
        root,
        sc,
        Label::SchedContextUnbindObject,
        &[],
        &[super::ROOT_TCB],
    );
    assert_eq!(
        r.info.label(),
        Error::IllegalOperation as u64,
        "not bound to it"
    );
    let r = s.call(
        root,
        sc,
        Label::SchedContextUnbindObject,
        &[],
        &[t.tcb_slot],
    );
    assert_eq!(r.info.label(), 0);
    assert_eq!(t.tcb.sched_context(), 0);
}

#[test]
fn a_pending_interrupt_preempts_a_long_revoke_and_the_call_restarts() {
    let mut s = Sys::new();
    // Many objects under one untyped: revoking them takes several rounds.
    let ut = s.make(ObjectType::Untyped, 16);
    let first = s.slot();
    for _ in 1..120 {
        s.slot();
    }
    let r = s.call(
        s.root.tcb,
        ut,
        Label::UntypedRetype,
        &[ObjectType::Endpoint as u64, 0, 0, 0, first, 120],
        &[super::ROOT_CNODE_COPY],
    );
    assert_eq!(r.info.label(), 0, "{r:?}");
    machine::set_pending_irq(Some(machine::TIMER_IRQ));
    s.load(
        s.root.tcb,
        super::ROOT_CNODE_COPY,
        Label::CNodeRevoke.number(),
        &[ut, 64],
        &[],
    );
    s.syscall(s.root.tcb, sys::CALL);
    assert_eq!(
        s.root.tcb.state(),
        ThreadState::Running,
        "restarted at once: it is the only thread"
    );
    assert_eq!(
        s.root.tcb.reg(crate::context::Reg::NEXT_IP),
        s.root.tcb.reg(crate::context::Reg::FAULT_IP),
        "resumes at the svc"
    );
    assert!(!s.fx.slot(first).is_empty(), "preempted before the end");
    // Re-executing finishes it.
    s.syscall(s.root.tcb, sys::CALL);
    assert_eq!(s.reply(s.root.tcb).info.label(), 0);
    assert!(s.fx.slot(first + 119).is_empty());
}

#[test]
fn a_thread_whose_budget_is_spent_at_entry_retries_the_call() {
    let mut s = Sys::new();
    let t = s.thread(100, Some((2 * MS, 10 * MS)));
    s.resume(t);
    s.call(
        s.root.tcb,
        super::ROOT_TCB,
        Label::TcbSetPriority,
        &[0],
        &[super::ROOT_TCB],
    );
    assert_eq!(s.cur(), t.tcb);
    // 3 ms later (no timer came), it makes a call: the budget is gone.
    machine::set_now(sched::cur_time() + sched::us_to_ticks(3 * MS));
    let n = s.make_as(t, ObjectType::Notification);
    let _ = n;
    assert!(t.tcb.in_release_queue());
    assert_eq!(
        t.tcb.state(),
        ThreadState::Restart,
        "re-executes the call later"
    );
}

impl Sys {
    /// `t` (current) calls Retype on the fixture's untyped: used to make a
    /// thread do something.
    fn make_as(&mut self, t: super::Thread, ty: ObjectType) -> u64 {
        let n = self.slot();
        self.load(
            t.tcb,
            super::super::UT,
            septa_abi::Label::UntypedRetype.number(),
            &[ty as u64, 0, 0, 0, n, 1],
            &[super::ROOT_CNODE_COPY],
        );
        self.syscall(t.tcb, sys::CALL);
        n
    }
}

/// The FPU ops of the machine's log since the last look.
fn fpu_ops() -> Vec<Op> {
    machine::take_log()
        .into_iter()
        .filter(|op| matches!(op, Op::FpuEnable(_) | Op::FpuSave(_) | Op::FpuLoad(_)))
        .collect()
}

#[test]
fn fpu_state_moves_only_when_a_thread_uses_the_fpu_after_a_switch() {
    let mut s = Sys::new();
    let a = s.thread(100, Some((MS, MS)));
    let b = s.thread(100, Some((MS, MS)));
    s.resume(a);
    s.resume(b);
    let _ = fpu_ops();
    // A thread the FPU does not belong to runs with it off.
    s.call(
        s.root.tcb,
        super::ROOT_TCB,
        Label::TcbSetPriority,
        &[0],
        &[super::ROOT_TCB],
    );
    let first = s.cur();
    let second = if first == a.tcb { b.tcb } else { a.tcb };
    assert_eq!(fpu_ops(), [Op::FpuEnable(false)]);
    // Its first FP instruction traps: nobody owned the FPU, so its state is
    // loaded and the FPU turned on.
    assert!(sched::handle_fpu_trap());
    assert_eq!(
        fpu_ops(),
        [Op::FpuEnable(true), Op::FpuLoad(first.fpu_paddr())]
    );
    assert_eq!(sched::with(|st| st.fpu_owner.get()), Some(first));
    // Switching away and back without another FP user moves nothing: the
    // other thread runs with the FPU off, the owner with it on.
    s.syscall(first, sys::YIELD);
    assert_eq!(s.cur(), second);
    assert_eq!(fpu_ops(), [Op::FpuEnable(false)]);
    s.syscall(second, sys::YIELD);
    assert_eq!(s.cur(), first);
    assert_eq!(fpu_ops(), [Op::FpuEnable(true)]);
    // The other thread uses the FPU: the owner's state is saved first.
    s.syscall(first, sys::YIELD);
    assert!(sched::handle_fpu_trap());
    assert_eq!(
        fpu_ops(),
        [
            Op::FpuEnable(false),
            Op::FpuEnable(true),
            Op::FpuSave(first.fpu_paddr()),
            Op::FpuLoad(second.fpu_paddr())
        ]
    );
    assert_eq!(sched::with(|st| st.fpu_owner.get()), Some(second));
    // A thread that sets fpuDisabled gives its state back (saved), and
    // from then on gets no FPU: its trap is a fault.
    let slot = if second == a.tcb {
        a.tcb_slot
    } else {
        b.tcb_slot
    };
    let r = s.call(second, slot, Label::TcbSetFlags, &[0, 1], &[]);
    assert_eq!(r.info.label(), 0);
    assert_eq!(
        fpu_ops(),
        [
            Op::FpuEnable(true),
            Op::FpuSave(second.fpu_paddr()),
            Op::FpuEnable(false)
        ]
    );
    assert!(!sched::handle_fpu_trap());
    assert_eq!(sched::with(|st| st.fpu_owner.get()), None);
}

/// A domain schedule of three entries, each thread never blocking: the
/// timer fires at the end of each entry's time, and in each entry only its
/// domain's thread runs (or idle, when it has none ready).
#[test]
fn domains_take_turns_for_their_scheduled_time() {
    let mut s = Sys::new();
    let dom_slot = super::FIRST_FREE - 1;
    crate::cte::write_boot_slot(s.fx.slot(dom_slot), &crate::cap::Cap::Domain);
    // Threads in domains 1 and 2, 1 s budgets so only domains switch them.
    let a = s.thread(100, Some((1_000_000, 1_000_000)));
    let b = s.thread(100, Some((1_000_000, 1_000_000)));
    let root = s.root.tcb;
    for (t, d) in [(a, 1), (b, 2)] {
        let r = s.call(root, dom_slot, Label::DomainSetSet, &[d], &[t.tcb_slot]);
        assert_eq!(r.info.label(), 0);
        s.resume(t);
    }
    let ticks = |ms: u64| sched::us_to_ticks(ms * MS);
    for (i, (d, ms)) in [(0, 3), (1, 4), (2, 2)].into_iter().enumerate() {
        let r = s.call(
            root,
            dom_slot,
            Label::DomainScheduleConfigure,
            &[i as u64, d, ticks(ms)],
            &[],
        );
        assert_eq!(r.info.label(), 0, "entry {i}");
    }
    let r = s.call(root, dom_slot, Label::DomainScheduleSetStart, &[0], &[]);
    assert_eq!(r.info.label(), 0);
    // Root, in domain 0, stops taking part (no reply: it is suspended).
    s.call(root, super::ROOT_TCB, Label::TcbSuspend, &[], &[]);
    let mut now = sched::cur_time();
    let mut seen = vec![];
    for _ in 0..9 {
        let deadline = machine::take_log()
            .into_iter()
            .filter_map(|op| match op {
                Op::Deadline(t) => Some(t),
                _ => None,
            })
            .next_back()
            .expect("a deadline for the current entry");
        let cur = s.cur();
        let who = if cur == a.tcb {
            "a"
        } else if cur == b.tcb {
            "b"
        } else {
            "idle"
        };
        seen.push((who, (deadline - now) * 1000 / ticks(1)));
        now = deadline;
        s.tick(now);
    }
    // Domain 0 is idle (the root is suspended): 3 ms of idle, then a's
    // 4 ms, b's 2 ms, and again.
    let want = [("idle", 3000), ("a", 4000), ("b", 2000)];
    for (i, got) in seen.iter().enumerate().skip(1) {
        let (who, us) = want[i % 3];
        assert_eq!(got.0, who, "turn {i}: {seen:?}");
        assert!(got.1.abs_diff(us) <= 50, "turn {i}: {seen:?}");
    }
}
