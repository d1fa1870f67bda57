//! MCS scheduling (src/object/schedcontrol.c, src/object/schedcontext.c,
//! src/kernel/thread.c, src/kernel/sporadic.c): SchedControl_ConfigureFlags
//! and its limits, SchedContext bind/unbind/consumed/yield-to, priorities
//! and MCP, budgets, passive servers on donated contexts, timeout faults,
//! Yield.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_abi::kernel_config::mcs::{self, MAX_PERIOD_US, MIN_BUDGET_US};
use septa_abi::kernel_config::MAX_PRIORITY;
use septa_abi::{fault as labels, Label, MessageInfo, ObjectType};
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::invocation::Invocation;
use septa_sel4::{syscall, Cap, Error};

use crate::cases::util::{raw, reply, settle, ALL};
use crate::env::{Cx, SC_BITS};
use crate::report::Outcome;
use crate::thread::{self, mail, post, Sched, Spawn, MAIL};
use crate::watchdog;
use crate::{check, check_eq, check_err, fail, ok, Case};

pub const LABELS: &[Label] = &[
    Label::SchedControlConfigureFlags,
    Label::SchedContextBind,
    Label::SchedContextUnbind,
    Label::SchedContextUnbindObject,
    Label::SchedContextConsumed,
    Label::SchedContextYieldTo,
];

pub const CASES: &[Case] = &[
    Case {
        name: "sched/configure-budget-above-maximum",
        run: budget_above_max,
    },
    Case {
        name: "sched/configure-period-above-maximum",
        run: period_above_max,
    },
    Case {
        name: "sched/configure-budget-below-minimum",
        run: budget_below_min,
    },
    Case {
        name: "sched/configure-period-below-minimum",
        run: period_below_min,
    },
    Case {
        name: "sched/configure-budget-above-period",
        run: budget_above_period,
    },
    Case {
        name: "sched/configure-not-a-sched-context",
        run: configure_not_sc,
    },
    Case {
        name: "sched/configure-extra-refills",
        run: extra_refills,
    },
    Case {
        name: "sched/configure-truncated",
        run: configure_truncated,
    },
    Case {
        name: "sched/configure-limits-and-flags-accepted",
        run: configure_ok,
    },
    Case {
        name: "sched/sched-control-illegal-operation",
        run: control_illegal,
    },
    Case {
        name: "sched/bind-makes-thread-run",
        run: bind_runs,
    },
    Case {
        name: "sched/unbind-stops-thread",
        run: unbind_stops,
    },
    Case {
        name: "sched/bind-errors",
        run: bind_errors,
    },
    Case {
        name: "sched/unbind-object-errors",
        run: unbind_object_errors,
    },
    Case {
        name: "sched/unbind-current-thread",
        run: unbind_current,
    },
    Case {
        name: "sched/sched-context-illegal-operation",
        run: sc_illegal,
    },
    Case {
        name: "sched/consumed",
        run: consumed,
    },
    Case {
        name: "sched/yield-to-equal-priority-runs-it",
        run: yield_to_equal,
    },
    Case {
        name: "sched/yield-to-lower-priority-returns",
        run: yield_to_lower,
    },
    Case {
        name: "sched/yield-to-errors",
        run: yield_to_errors,
    },
    Case {
        name: "sched/yield-to-beyond-mcp",
        run: yield_to_mcp,
    },
    Case {
        name: "sched/yield-alternates-equal-priorities",
        run: yield_alternates,
    },
    Case {
        name: "sched/resumed-threads-queue-at-head",
        run: resumed_lifo,
    },
    Case {
        name: "sched/lowering-own-priority-lets-others-run",
        run: lower_own,
    },
    Case {
        name: "sched/mcp-limits-own-priority",
        run: mcp_own,
    },
    Case {
        name: "sched/budget-is-enforced",
        run: budget_enforced,
    },
    Case {
        name: "sched/timeout-fault",
        run: timeout_fault,
    },
    Case {
        name: "sched/round-robin-never-times-out",
        run: rr_no_timeout,
    },
    Case {
        name: "sched/passive-server-runs-on-callers-context",
        run: passive_server,
    },
    Case {
        name: "sched/donation-through-a-call-chain",
        run: call_chain,
    },
    Case {
        name: "sched/passive-thread-does-not-run",
        run: passive_idle,
    },
    Case {
        name: "sched/notification-lends-its-context",
        run: ntfn_sc,
    },
];

fn range(max: u64) -> Error {
    Error::RangeError {
        min: MIN_BUDGET_US,
        max,
    }
}

fn configure(cx: &Cx, sc: Cap<SchedContext>, budget: u64, period: u64) -> Result<(), Error> {
    cx.sched_control()
        .map_err(|_| Error::IllegalOperation)?
        .configure_flags(sc, budget, period, 0, 0, 0)
}

fn budget_above_max(cx: &mut Cx) -> Outcome {
    let sc = cx.sched_context()?;
    check_err!(
        configure(cx, sc, MAX_PERIOD_US + 1, MAX_PERIOD_US + 1),
        range(MAX_PERIOD_US)
    );
    Ok(())
}

fn period_above_max(cx: &mut Cx) -> Outcome {
    let sc = cx.sched_context()?;
    check_err!(
        configure(cx, sc, 1000, MAX_PERIOD_US + 1),
        range(MAX_PERIOD_US)
    );
    Ok(())
}

fn budget_below_min(cx: &mut Cx) -> Outcome {
    let sc = cx.sched_context()?;
    check_err!(
        configure(cx, sc, MIN_BUDGET_US - 1, 1000),
        range(MAX_PERIOD_US)
    );
    ok!(configure(cx, sc, MIN_BUDGET_US, 1000));
    Ok(())
}

fn period_below_min(cx: &mut Cx) -> Outcome {
    let sc = cx.sched_context()?;
    check_err!(
        configure(cx, sc, MIN_BUDGET_US, MIN_BUDGET_US - 1),
        range(MAX_PERIOD_US)
    );
    Ok(())
}

fn budget_above_period(cx: &mut Cx) -> Outcome {
    let sc = cx.sched_context()?;
    // The range's maximum is the period asked for.
    check_err!(configure(cx, sc, 2000, 1000), range(1000));
    Ok(())
}

fn configure_not_sc(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    check_err!(
        configure(cx, ep.cast(), 1000, 1000),
        Error::InvalidCapability { index: 1 }
    );
    Ok(())
}

fn extra_refills(cx: &mut Cx) -> Outcome {
    let control = cx.sched_control()?;
    let big = cx.sched_context()?;
    let most = mcs::max_refills(SC_BITS as u32) - mcs::MIN_REFILLS;
    check_err!(
        control.configure_flags(big, 1000, 10_000, most + 1, 0, 0),
        Error::RangeError { min: 0, max: most }
    );
    ok!(control.configure_flags(big, 1000, 10_000, most, 0, 0));
    let small: Cap<SchedContext> = cx.obj(
        ObjectType::SchedContext,
        u64::from(septa_abi::MIN_SCHED_CONTEXT_BITS),
    )?;
    check_err!(
        control.configure_flags(small, 1000, 10_000, 1, 0, 0),
        Error::RangeError { min: 0, max: 0 }
    );
    Ok(())
}

fn configure_truncated(cx: &mut Cx) -> Outcome {
    let control = cx.sched_control()?;
    let sc = cx.sched_context()?;
    let four = raw(Label::SchedControlConfigureFlags, &[1000, 1000, 0, 0]).cap(sc.cptr());
    check_err!(control.invoke(&four), Error::TruncatedMessage);
    let no_cap = raw(Label::SchedControlConfigureFlags, &[1000, 1000, 0, 0, 0]);
    check_err!(control.invoke(&no_cap), Error::TruncatedMessage);
    Ok(())
}

fn configure_ok(cx: &mut Cx) -> Outcome {
    let control = cx.sched_control()?;
    let sc = cx.sched_context()?;
    ok!(control.configure_flags(sc, MIN_BUDGET_US, MIN_BUDGET_US, 0, 0, 0));
    ok!(control.configure_flags(sc, MAX_PERIOD_US, MAX_PERIOD_US, 0, 0, 0));
    ok!(control.configure_flags(sc, 1000, MAX_PERIOD_US, 0, 0x77, mcs::FLAG_SPORADIC));
    // Reconfiguring a context bound to a thread is allowed too.
    let t = thread::spawn(cx, Spawn::new(|_| {}, 0).suspended())?;
    let Some(own) = t.sc else { fail!("no context") };
    ok!(control.configure_flags(own, 2000, 4000, 0, 0, 0));
    Ok(())
}

fn control_illegal(cx: &mut Cx) -> Outcome {
    let sc = cx.sched_context()?;
    let inv = raw(Label::SchedContextBind, &[1000, 1000, 0, 0, 0]).cap(sc.cptr());
    check_err!(cx.sched_control()?.invoke(&inv), Error::IllegalOperation);
    Ok(())
}

fn bind_runs(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        post(1, 1);
    }
    let t = thread::spawn(cx, Spawn::new(body, 0).sched(Sched::Passive))?;
    settle(cx)?;
    check_eq!(mail(1), 0, "ran without a context");
    let sc = cx.configured_sc(1000, 1000)?;
    ok!(sc.bind(t.tcb));
    t.join()?;
    Ok(())
}

fn unbind_stops(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(crate::cases::tcb::receiver, 0))?;
    settle(cx)?;
    let Some(sc) = t.sc else { fail!("no context") };
    ok!(sc.unbind());
    // The message is delivered, but the thread cannot run to record it.
    syscall::nb_send_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 1), [9, 0, 0, 0]);
    settle(cx)?;
    check_eq!(mail(1), 0, "ran without a context");
    ok!(sc.bind(t.tcb));
    settle(cx)?;
    check_eq!((mail(1), mail(2)), (1, 9), "after rebinding");
    Ok(())
}

fn bind_errors(cx: &mut Cx) -> Outcome {
    let a = thread::spawn(cx, Spawn::new(|_| {}, 0).suspended())?;
    let b = thread::spawn(cx, Spawn::new(|_| {}, 0).sched(Sched::Passive).suspended())?;
    let Some(a_sc) = a.sc else {
        fail!("no context")
    };
    // Bound to A already.
    check_err!(a_sc.bind(b.tcb), Error::IllegalOperation);
    // A has a context already.
    let fresh = cx.configured_sc(1000, 1000)?;
    check_err!(fresh.bind(a.tcb), Error::IllegalOperation);
    // Neither a TCB nor a notification.
    let ep = cx.endpoint()?;
    check_err!(
        fresh.bind(ep.cast::<Notification>()),
        Error::InvalidCapability { index: 1 }
    );
    check_err!(
        fresh.invoke(&Invocation::new(Label::SchedContextBind)),
        Error::TruncatedMessage
    );
    // Notifications: one context each, one notification per context.
    let n = cx.notification()?;
    ok!(fresh.bind(n));
    let other = cx.configured_sc(1000, 1000)?;
    check_err!(other.bind(n), Error::IllegalOperation);
    let n2 = cx.notification()?;
    check_err!(fresh.bind(n2), Error::IllegalOperation);
    Ok(())
}

fn unbind_object_errors(cx: &mut Cx) -> Outcome {
    let a = thread::spawn(cx, Spawn::new(|_| {}, 0).suspended())?;
    let b = thread::spawn(cx, Spawn::new(|_| {}, 0).suspended())?;
    let Some(a_sc) = a.sc else {
        fail!("no context")
    };
    check_err!(a_sc.unbind_object(b.tcb), Error::IllegalOperation);
    let n = cx.notification()?;
    check_err!(a_sc.unbind_object(n), Error::IllegalOperation);
    let ep = cx.endpoint()?;
    check_err!(
        a_sc.unbind_object(ep.cast::<Notification>()),
        Error::InvalidCapability { index: 1 }
    );
    check_err!(
        a_sc.invoke(&Invocation::new(Label::SchedContextUnbindObject)),
        Error::TruncatedMessage
    );
    ok!(a_sc.unbind_object(a.tcb));
    Ok(())
}

fn unbind_current(cx: &mut Cx) -> Outcome {
    check_err!(
        cx.root_sc().unbind_object(cx.root_tcb()),
        Error::IllegalOperation
    );
    check_err!(cx.root_sc().unbind(), Error::IllegalOperation);
    Ok(())
}

fn sc_illegal(cx: &mut Cx) -> Outcome {
    let sc = cx.sched_context()?;
    check_err!(
        sc.invoke(&Invocation::new(Label::SchedControlConfigureFlags)),
        Error::IllegalOperation
    );
    Ok(())
}

/// Burns time: `n` iterations the compiler cannot remove.
fn spin(n: u64) {
    let mut x = 0u64;
    for i in 0..n {
        x = core::hint::black_box(x.wrapping_add(i));
    }
    core::hint::black_box(x);
}

fn consumed(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        spin(200_000);
    }
    let t = thread::spawn(cx, Spawn::new(body, 0))?;
    t.join()?;
    let Some(sc) = t.sc else { fail!("no context") };
    let used = ok!(sc.consumed());
    check!(used > 0, "time consumed by a thread that ran: {used}");
    check_eq!(ok!(sc.consumed()), 0, "consumed again, nothing ran since");
    check!(ok!(cx.root_sc().consumed()) > 0, "the root's own context");
    Ok(())
}

fn yield_to_equal(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        post(1, 1);
    }
    // The root's round robin may end its slice between the spawn and the
    // YieldTo and run the equal-priority thread first: a host that stalls
    // QEMU moves its clock past a whole slice at once. Such a round proves
    // nothing either way, so it is run again (a fresh slice each time);
    // only a round where the thread had not run before the YieldTo counts.
    for _ in 0..5 {
        syscall::yield_now();
        let t = thread::spawn(cx, Spawn::new(body, 0).prio(MAX_PRIORITY))?;
        if mail(1) != 0 {
            t.join()?;
            post(1, 0);
            continue;
        }
        let Some(sc) = t.sc else { fail!("no context") };
        ok!(sc.yield_to());
        // The thread ran to completion before the caller came back.
        check_eq!(mail(1), 1, "after YieldTo");
        return Ok(());
    }
    fail!("the thread ran before the YieldTo in every round (slices end too soon)")
}

fn yield_to_lower(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        post(1, 1);
    }
    let t = thread::spawn(cx, Spawn::new(body, 0).prio(50))?;
    let Some(sc) = t.sc else { fail!("no context") };
    ok!(sc.yield_to());
    // Lower priority: it only moves to the head of its queue.
    check_eq!(mail(1), 0, "ran during YieldTo");
    t.join()?;
    Ok(())
}

fn yield_to_errors(cx: &mut Cx) -> Outcome {
    let unbound = cx.configured_sc(1000, 1000)?;
    check_err!(unbound.yield_to(), Error::IllegalOperation);
    check_err!(cx.root_sc().yield_to(), Error::IllegalOperation);
    Ok(())
}

fn yield_to_mcp(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let sc: Cap<SchedContext> = Cap::from_bits(mail(0));
        post(1, sc.yield_to().err().map_or(0, |e| e.code()));
    }
    let high = thread::spawn(cx, Spawn::new(|_| {}, 0).prio(60).suspended())?;
    let Some(sc) = high.sc else {
        fail!("no context")
    };
    post(0, sc.bits());
    // The caller's MCP (10) is below the target's priority (60).
    let t = thread::spawn(cx, Spawn::new(body, 0).prio(10).mcp(10))?;
    t.join()?;
    check_eq!(mail(1), Error::IllegalOperation.code());
    Ok(())
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A round-robin time slice no case outlasts (one second).
const LONG_SLICE_US: u64 = 1_000_000;

fn yielder(id: u64) {
    for _ in 0..3 {
        let k = SEQ.fetch_add(1, Relaxed) as usize;
        post(4 + k, id);
        syscall::yield_now();
    }
}

fn yield_alternates(cx: &mut Cx) -> Outcome {
    SEQ.store(0, Relaxed);
    // Long time slices: only the Yields, not the timer, switch threads.
    let long = Sched::Periodic {
        budget: LONG_SLICE_US,
        period: LONG_SLICE_US,
    };
    let a = thread::spawn(cx, Spawn::new(yielder, 1).sched(long))?;
    let b = thread::spawn(cx, Spawn::new(yielder, 2).sched(long))?;
    a.join()?;
    b.join()?;
    let seq: [u64; 6] = core::array::from_fn(|i| mail(4 + i));
    for w in seq.windows(2) {
        check!(
            w[0] != w[1],
            "Yield did not hand over to the other thread: {seq:?}"
        );
    }
    Ok(())
}

fn resumed_lifo(cx: &mut Cx) -> Outcome {
    fn record(id: u64) {
        let k = SEQ.fetch_add(1, Relaxed) as usize;
        post(4 + k, id);
    }
    SEQ.store(0, Relaxed);
    // A budget of a second: the 5 ms default can run out while QEMU's
    // vCPU waits for a loaded host, and a thread whose budget ends goes to
    // the tail of its queue, which would reorder the record.
    let long = Sched::Periodic {
        budget: 1_000_000,
        period: 1_000_000,
    };
    for id in 1..=3 {
        thread::spawn(cx, Spawn::new(record, id).sched(long))?;
    }
    settle(cx)?;
    // possibleSwitchTo puts a woken thread that does not preempt at the
    // head of its ready queue: the last resumed runs first.
    check_eq!([mail(4), mail(5), mail(6)], [3, 2, 1]);
    Ok(())
}

fn lower_own(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        post(1, 1);
    }
    thread::spawn(cx, Spawn::new(body, 0).prio(100))?;
    check_eq!(mail(1), 0, "ran before");
    ok!(cx.root_tcb().set_priority(cx.root_tcb(), 99));
    // The higher thread ran before the call returned.
    check_eq!(mail(1), 1, "after lowering the root below it");
    ok!(cx.root_tcb().set_priority(cx.root_tcb(), MAX_PRIORITY));
    Ok(())
}

fn mcp_own(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let me: Cap<Tcb> = Cap::from_bits(mail(0));
        post(1, me.set_priority(me, 60).err().map_or(0, |e| e.code()));
        post(2, me.set_priority(me, 40).err().map_or(0, |e| e.code()));
        post(3, me.set_mc_priority(me, 51).err().map_or(0, |e| e.code()));
    }
    let t = thread::spawn(cx, Spawn::new(body, 0).prio(20).mcp(50).suspended())?;
    post(0, t.tcb.bits());
    ok!(t.tcb.resume());
    t.join()?;
    let range = Error::RangeError { min: 0, max: 50 }.code();
    check_eq!([mail(1), mail(2), mail(3)], [range, 0, range]);
    Ok(())
}

fn budget_enforced(cx: &mut Cx) -> Outcome {
    fn hog(_: u64) {
        loop {
            MAIL[1].fetch_add(1, Relaxed);
        }
    }
    fn counter(_: u64) {
        spin(100_000);
        post(2, 1);
    }
    // The hog outranks the counter but may only run 1 ms in every 10.
    thread::spawn(
        cx,
        Spawn::new(hog, 0).prio(150).sched(Sched::Periodic {
            budget: 1000,
            period: 10_000,
        }),
    )?;
    let c = thread::spawn(cx, Spawn::new(counter, 0).prio(100))?;
    // Without budget enforcement the hog would starve the counter for ever.
    c.join()?;
    Ok(())
}

fn timeout_fault(cx: &mut Cx) -> Outcome {
    fn hog(_: u64) {
        loop {
            MAIL[1].fetch_add(1, Relaxed);
        }
    }
    let ep = cx.endpoint()?;
    let handler = cx.mint(ep, ALL, 0x7e)?;
    let budget = 2000;
    let t = thread::spawn(cx, Spawn::new(hog, 0).sched(Sched::Passive).suspended())?;
    let sc = cx.sched_context()?;
    ok!(cx
        .sched_control()?
        .configure_flags(sc, budget, 100_000, 0, 0x55, 0));
    ok!(t.tcb.set_timeout_endpoint(Some(handler)));
    ok!(sc.bind(t.tcb));
    ok!(t.tcb.resume());
    let r = cx.reply()?;
    let (info, badge) = syscall::recv(ep.cptr(), r);
    check_eq!(
        (info.label(), info.length(), badge),
        (labels::TIMEOUT, labels::timeout::LENGTH, 0x7e)
    );
    let f = Fault::from_ipc_buffer(info);
    let Fault::Timeout {
        badge: sc_badge,
        consumed,
    } = f
    else {
        fail!("expected a timeout fault got {f:?}");
    };
    check_eq!(sc_badge, 0x55, "scheduling context badge");
    check!(
        consumed >= budget / 2,
        "consumed {consumed} µs of a {budget} µs budget"
    );
    // A reply with label 0 restarts the thread; in its next period it uses
    // up its budget again. (How far it gets in between depends on the host:
    // QEMU's timer follows wall-clock time.)
    reply(r, 0, &[]);
    watchdog::extend(watchdog::DEFAULT_LIMIT_TICKS);
    let (info, badge) = syscall::recv(ep.cptr(), r);
    check_eq!(
        (info.label(), badge),
        (labels::TIMEOUT, 0x7e),
        "second fault"
    );
    let f = Fault::from_ipc_buffer(info);
    check!(
        matches!(f, Fault::Timeout { badge: 0x55, .. }),
        "second fault {f:?}"
    );
    Ok(())
}

fn rr_no_timeout(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        spin(2_000_000);
    }
    let ep = cx.endpoint()?;
    let handler = cx.mint(ep, ALL, 0x7f)?;
    let t = thread::spawn(
        cx,
        Spawn::new(body, 0)
            .sched(Sched::Periodic {
                budget: 200,
                period: 200,
            })
            .suspended(),
    )?;
    ok!(t.tcb.set_timeout_endpoint(Some(handler)));
    ok!(t.tcb.resume());
    t.join()?;
    let r = cx.reply()?;
    check_eq!(
        syscall::nb_recv(ep.cptr(), r).1,
        0,
        "a timeout fault for a round-robin context"
    );
    Ok(())
}

fn passive_server(cx: &mut Cx) -> Outcome {
    fn server(_: u64) {
        let ep: Cap<Endpoint> = Cap::from_bits(mail(0));
        let r: Cap<Reply> = Cap::from_bits(mail(1));
        let (_, _, mut mrs) = syscall::recv_with_mrs(ep.cptr(), r);
        loop {
            MAIL[2].fetch_add(1, Relaxed);
            let out = [mrs[0] * 2, 0, 0, 0];
            let (_, _, next) =
                syscall::reply_recv_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 1), out, r);
            mrs = next;
        }
    }
    fn client(_: u64) {
        let ep: Cap<Endpoint> = Cap::from_bits(mail(0));
        for x in [3u64, 4] {
            let (_, mrs) =
                syscall::call_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 1), [x, 0, 0, 0]);
            post(3 + x as usize, mrs[0]);
        }
    }
    let ep = cx.endpoint()?;
    let r = cx.reply()?;
    post(0, ep.bits());
    post(1, r.bits());
    let s = thread::spawn(cx, Spawn::new(server, 0).prio(150))?;
    settle(cx)?;
    // Blocked in its first receive: take its context away.
    let Some(ssc) = s.sc else { fail!("no context") };
    ok!(ssc.unbind_object(s.tcb));
    let c = thread::spawn(cx, Spawn::new(client, 0).prio(100))?;
    c.join()?;
    check_eq!(
        (mail(6), mail(7), mail(2)),
        (6, 8, 2),
        "replies and requests served"
    );
    // Back in its receive, the server has no context of its own.
    ok!(ssc.bind(s.tcb));
    Ok(())
}

fn call_chain(cx: &mut Cx) -> Outcome {
    /// Serves on the endpoint in mail `base` with the reply in mail
    /// `base + 1`; forwards to the endpoint in mail `base + 2` if non-zero.
    fn relay(base: u64) {
        let b = base as usize;
        let ep: Cap<Endpoint> = Cap::from_bits(mail(b));
        let r: Cap<Reply> = Cap::from_bits(mail(b + 1));
        let next = mail(b + 2);
        let (_, _, mut mrs) = syscall::recv_with_mrs(ep.cptr(), r);
        loop {
            let mut v = mrs[0] + base;
            if next != 0 {
                let (_, out) = syscall::call_with_mrs(
                    septa_sel4::CPtr::from_bits(next),
                    MessageInfo::new(0, 0, 0, 1),
                    [v, 0, 0, 0],
                );
                v = out[0];
            }
            let (_, _, n) = syscall::reply_recv_with_mrs(
                ep.cptr(),
                MessageInfo::new(0, 0, 0, 1),
                [v, 0, 0, 0],
                r,
            );
            mrs = n;
        }
    }
    fn client(_: u64) {
        let ep: Cap<Endpoint> = Cap::from_bits(mail(10));
        let (_, out) =
            syscall::call_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 1), [1000, 0, 0, 0]);
        post(20, out[0]);
    }
    // Server A (mail 10..) forwards to server B (mail 13..); both passive.
    let (ea, ra, eb, rb) = (cx.endpoint()?, cx.reply()?, cx.endpoint()?, cx.reply()?);
    for (i, v) in [ea.bits(), ra.bits(), eb.bits(), eb.bits(), rb.bits(), 0]
        .into_iter()
        .enumerate()
    {
        post(10 + i, v);
    }
    let a = thread::spawn(cx, Spawn::new(relay, 10).prio(150))?;
    let b = thread::spawn(cx, Spawn::new(relay, 13).prio(160))?;
    settle(cx)?;
    for t in [a, b] {
        let Some(sc) = t.sc else { fail!("no context") };
        ok!(sc.unbind_object(t.tcb));
    }
    let c = thread::spawn(cx, Spawn::new(client, 0).prio(100))?;
    c.join()?;
    // 1000 + 10 (A) + 13 (B): both ran, on the client's context.
    check_eq!(mail(20), 1023);
    Ok(())
}

fn passive_idle(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let n: Cap<Notification> = Cap::from_bits(mail(0));
        n.wait();
        post(1, 1);
    }
    let n = cx.notification()?;
    let nb = cx.mint(n, ALL, 1)?;
    post(0, n.bits());
    let t = thread::spawn(cx, Spawn::new(body, 0))?;
    settle(cx)?;
    let Some(sc) = t.sc else { fail!("no context") };
    ok!(sc.unbind_object(t.tcb));
    nb.signal();
    settle(cx)?;
    check_eq!(mail(1), 0, "a passive thread ran on a signal");
    ok!(sc.bind(t.tcb));
    t.join()?;
    Ok(())
}

fn ntfn_sc(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let n: Cap<Notification> = Cap::from_bits(mail(0));
        loop {
            let badge = n.wait();
            post(1, badge);
        }
    }
    let n = cx.notification()?;
    let nb = cx.mint(n, ALL, 0x2)?;
    post(0, n.bits());
    // Bound before it waits (a notification with waiters cannot be bound).
    let t = thread::spawn(cx, Spawn::new(body, 0).suspended())?;
    ok!(t.tcb.bind_notification(n));
    ok!(t.tcb.resume());
    settle(cx)?;
    let Some(sc) = t.sc else { fail!("no context") };
    // Passive now; the notification gets a context to lend.
    ok!(sc.unbind_object(t.tcb));
    let lent = cx.configured_sc(1000, 1000)?;
    ok!(lent.bind(n));
    nb.signal();
    settle(cx)?;
    check_eq!(mail(1), 0x2, "woken on the notification's context");
    Ok(())
}
